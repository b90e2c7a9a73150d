"""The token (NER) task end to end on a small real CoNLL file and MiniLM."""

import json

import keras
import pytest
from click.testing import CliRunner

from conftest import serve_in_fresh_process
from tfx_transfer import cli, train
from tfx_transfer.config import DataConfig, RunConfig, StageConfig, load_config
from tfx_transfer.tasks import tokens

PEOPLE = ["Alice", "Bob Marley", "Angela Merkel", "Barack Obama", "Zoë Tokenization"]
PLACES = ["Paris", "New York", "Berlin", "Kuala Lumpur", "Reykjavík"]
SENTENCE = "Barack Obama visited Paris last week with unbelievably many Tokenization experts"


def write_conll(path, repeats=6):
    lines = []
    for r in range(repeats):
        for i, person in enumerate(PEOPLE):
            place = PLACES[(i + r) % len(PLACES)]
            words = person.split() + ["flew", "to"] + place.split() + ["today", "!"]
            tags = (["B-person"] + ["I-person"] * (len(person.split()) - 1) + ["O", "O"]
                    + ["B-loc"] + ["I-loc"] * (len(place.split()) - 1) + ["O", "O"])
            lines += [f"{w}\t{t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ner")
    config = RunConfig(
        task="tokens",
        output_dir=str(folder / "runs"),
        run_name="ner",
        data=DataConfig(path=str(write_conll(folder / "train.conll")), sequence_length=16,
                        batch_size=8, val_fraction=0.2, test_fraction=0.2),
        stages=(
            StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3),
            StageConfig(name="fine_tune", unfreeze=1, learning_rate=1e-4, epochs=1,
                        optimizer="adamw"),
        ),
    )
    return train.run(config, verbose=0)


def test_run_reports_entity_metrics(finished_run):
    metrics = json.loads((finished_run.run_dir / "metrics.json").read_text())
    assert set(metrics["entity_types"]) == {"person", "loc"}
    assert 0.0 <= metrics["micro"]["f1"] <= 1.0
    assert metrics["token_accuracy"] > 0.5
    assert "Test entity micro F1" in finished_run.report
    assert "person" in (finished_run.run_dir / "report.txt").read_text()


def test_saved_model_in_fresh_process_gives_in_process_tags(finished_run):
    # Longer than the 16-piece sequence: the graph must cut it into chunks.
    sentences = [SENTENCE, "Alice flew to Berlin today !", "hello"]
    out = serve_in_fresh_process(finished_run.saved_model, text_ops=True, text=sentences)
    served = {
        key: [[piece.decode() for piece in row[:n]] for row, n in zip(out[key], out["num_words"])]
        for key in ("words", "tags")
    }
    assert served["words"] == [s.split() for s in sentences]

    model = keras.saving.load_model(finished_run.run_dir / "model.keras")
    config = load_config(finished_run.run_dir / "config.yaml")
    prepared = tokens.prepare_backbone(config)
    tag_names = (finished_run.run_dir / "labels.txt").read_text().splitlines()
    expected = tokens.predict_tags(model, prepared, [s.split() for s in sentences], tag_names)
    assert served["tags"] == expected


def test_predict_command_prints_entities(finished_run):
    result = CliRunner().invoke(cli.main, ["predict", str(finished_run.run_dir), SENTENCE])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(SENTENCE + ":")


def test_entity_spans_group_bio_tags():
    spans = tokens.entity_spans(
        ["Barack", "Obama", "visited", "New", "York", "and", "Paris", "Rome"],
        ["B-person", "I-person", "O", "B-loc", "I-loc", "O", "B-loc", "B-loc"],
        [0.9, 0.7, 1.0, 0.6, 0.8, 1.0, 0.5, 0.4],
    )
    assert [(t, k) for t, k, _ in spans] == [
        ("Barack Obama", "person"), ("New York", "loc"), ("Paris", "loc"), ("Rome", "loc"),
    ]
    assert spans[0][2] == pytest.approx(0.8)
    # A stray I- after O starts an entity, as conlleval reads it.
    assert tokens.entity_spans(["x", "y"], ["O", "I-loc"], [1.0, 1.0]) == [("y", "loc", 1.0)]
