"""The token (NER) task end to end on a small real CoNLL file and MiniLM."""

import json

import pytest
from click.testing import CliRunner

import harness
from tfx_transfer import cli
from tfx_transfer.evaluate import entities as entity_metrics
from tfx_transfer.evaluate import new_data
from tfx_transfer.config import DataConfig, StageConfig
from tfx_transfer.config_files import load_config
from tfx_transfer.tasks import get_task

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
    data = DataConfig(path=str(write_conll(folder / "train.conll")), sequence_length=16,
                      batch_size=8, val_fraction=0.2, test_fraction=0.2)
    plan = (
        StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3),
        StageConfig(name="fine_tune", unfreeze=1, learning_rate=1e-4, epochs=1,
                    optimizer="adamw"),
    )
    return harness.train_tiny("tokens", folder / "runs", data, stages=plan)


@pytest.mark.slow
def test_tokens_task_passes_the_harness(finished_run, capsys):
    # Longer than the 16-piece sequence: the graph must cut it into chunks.
    sentences = [SENTENCE, "Alice flew to Berlin today !", "hello"]
    served = harness.check_task_run(finished_run, sentences, capsys)
    words = [[w.decode() for w in row[:n]] for row, n in zip(served["words"], served["num_words"])]
    assert words == [s.split() for s in sentences]


def test_the_tagger_finds_entities_and_beats_the_all_o_baseline(finished_run):
    metrics = json.loads((finished_run.run_dir / "metrics.json").read_text())
    assert set(metrics["entity_types"]) == {"person", "loc"}
    # A tagger that says "O" everywhere finds no entity (F1 0) and gets the
    # share of "O" words right; the trained one must do clearly better.
    config = load_config(finished_run.run_dir / "config.yaml")
    data = get_task("tokens").read_data(config.data)
    tags = [tag for sentence in data.splits["test"] for tag in sentence.tags]
    all_o = tags.count("O") / len(tags)
    assert metrics["token_accuracy"] > all_o + 0.2, (metrics["token_accuracy"], all_o)
    assert metrics["micro"]["f1"] > 0.5, metrics["micro"]
    per_type = metrics["entity_types"]
    assert per_type["person"]["f1"] > 0.5 and per_type["loc"]["f1"] > 0.5, per_type
    assert "Test entity micro F1" in finished_run.report
    assert "person" in (finished_run.run_dir / "report.txt").read_text()


def test_data_report_counts_chunks_and_what_it_cuts(finished_run):
    report = json.loads((finished_run.run_dir / "data_report.json").read_text())
    cut = report["tokenization"]
    # Every sentence of the test file fits 16 pieces: one chunk each, nothing cut.
    assert cut["chunks"]["test"] == report["sentences"]["test"]
    assert cut["truncated_words"] == {"train": 0, "val": 0, "test": 0}
    assert report["num_skipped"] == 0 and report["skipped"] == []


def test_predict_command_prints_entities(finished_run):
    result = CliRunner().invoke(cli.main, ["predict", str(finished_run.run_dir), SENTENCE])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(SENTENCE + ":")


def test_entity_spans_group_bio_tags():
    spans = entity_metrics.entity_spans(
        ["Barack", "Obama", "visited", "New", "York", "and", "Paris", "Rome"],
        ["B-person", "I-person", "O", "B-loc", "I-loc", "O", "B-loc", "B-loc"],
        [0.9, 0.7, 1.0, 0.6, 0.8, 1.0, 0.5, 0.4],
    )
    assert [(t, k) for t, k, _ in spans] == [
        ("Barack Obama", "person"), ("New York", "loc"), ("Paris", "loc"), ("Rome", "loc"),
    ]
    assert spans[0][2] == pytest.approx(0.8)
    # A stray I- after O starts an entity, as conlleval reads it.
    assert entity_metrics.entity_spans(["x", "y"], ["O", "I-loc"], [1.0, 1.0]) == [("y", "loc", 1.0)]


def test_evaluate_scores_a_new_conll_file_and_counts_unknown_types(finished_run, tmp_path):
    path = write_conll(tmp_path / "new.conll", repeats=1)
    with open(path, "a", encoding="utf-8") as f:
        f.write("Acme\tB-org\nhired\tO\nAlice\tB-person\n\n")
    with pytest.raises(ValueError, match="does not know: 'org' \\(1\\)"):
        new_data.evaluate_run(finished_run.run_dir, path)
    evaluation = new_data.evaluate_run(finished_run.run_dir, path, skip_unknown_labels=True)
    # The sentence with an unknown type is left out whole; the others are scored.
    assert evaluation.metrics["num_examples"] == len(PEOPLE)
    assert evaluation.metrics["skipped_unknown_labels"] == {"org": 1}
    assert evaluation.metrics["micro"]["f1"] > 0.5
    assert (evaluation.directory / "report.txt").read_text() == evaluation.report
    assert not (evaluation.directory / "confusion_matrix.png").exists()
