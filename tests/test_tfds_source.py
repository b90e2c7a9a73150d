"""`--data tfds:NAME`: real TFDS datasets built with TFDS's own API, trained offline."""

import json
import time

import pytest
import tensorflow_datasets as tfds
from click.testing import CliRunner

import harness
from conftest import COLOURS
from test_tokens_task import write_conll
from tfx_transfer import cli
from tfx_transfer.config import DataConfig, StageConfig
from tfx_transfer.data import conll, tfds_source

F = tfds.features
HEAD_ONLY = (StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3,
                         optimizer="lbfgs"),)


def _store(data_dir, name, features, splits):
    tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version="1.0.0", features=F.FeaturesDict(features),
        split_datasets={split: [(f"{split}-{i}", example) for i, example in enumerate(rows)]
                        for split, rows in splits.items()},
        data_dir=str(data_dir))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, colour_folder):
    root = tmp_path_factory.mktemp("tfds")
    names = sorted(COLOURS)
    images = [{"image": str(path), "label": names.index(path.parent.name),
               "shade": 0} for path in sorted(colour_folder.glob("*/*.png"))]
    _store(root, "tiny_colours",
           {"image": F.Image(shape=(None, None, 3)), "label": F.ClassLabel(names=names),
            # A second ClassLabel: inference must prefer "label".
            "shade": F.ClassLabel(names=["light", "dark"])},
           {"train": images[::2] + images[1::4], "test": images[3::4]})
    tickets = [(text, label) for label, templates in harness.TICKETS.items()
               for template in templates for text in (template.format(n) for n in range(4))]
    labels = sorted(harness.TICKETS)
    rows = [{"text": text, "label": labels.index(label)} for text, label in tickets]
    _store(root, "tiny_tickets", {"text": F.Text(), "label": F.ClassLabel(names=labels)},
           {"train": rows[::2], "validation": rows[1::4], "test": rows[3::4]})
    sentences = conll.read_conll(write_conll(root / "ner.conll"))
    tags = sorted({tag for s in sentences for tag in s.tags})
    rows = [{"tokens": list(s.words), "ner": [tags.index(t) for t in s.tags]} for s in sentences]
    _store(root, "tiny_ner", {"tokens": F.Sequence(F.Text()),
                              "ner": F.Sequence(F.ClassLabel(names=tags))},
           {"train": rows[:20], "test": rows[20:]})
    return root


def test_images_train_from_tfds_through_the_cli(data_dir, tmp_path):
    result = CliRunner().invoke(cli.main, [
        "train", "--task", "images", "--data", "tfds:tiny_colours", "--tfds-data-dir",
        str(data_dir), "--image-size", "64", "--batch-size", "8", "--epochs", "3",
        "--fine-tune-epochs", "0", "--no-augment", "--output-dir", str(tmp_path),
        "--run-name", "colours", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "colours" / "data_report.json").read_text())
    assert report["class_names"] == sorted(COLOURS)
    # TFDS's train and test kept (18 + 9 and 9), validation carved from train.
    totals = report["totals"]
    assert totals["test"] == 9 and totals["train"] + totals["val"] == 27
    metrics = json.loads((tmp_path / "colours" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8


def test_text_keeps_the_datasets_own_three_splits(data_dir, tmp_path):
    data = DataConfig(path="tfds:tiny_tickets:1.0.0", tfds_data_dir=str(data_dir),
                      sequence_length=16, batch_size=8)
    result = harness.train_tiny("text", tmp_path, data, stages=HEAD_ONLY)
    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert report["split_source"] == "files"
    assert report["totals"] == {"train": 18, "val": 9, "test": 9}
    assert sorted(report["class_names"]) == sorted(harness.TICKETS)


def test_tokens_read_words_and_tag_sequences(data_dir, tmp_path):
    data = DataConfig(path="tfds:tiny_ner", tfds_data_dir=str(data_dir),
                      sequence_length=16, batch_size=8)
    result = harness.train_tiny("tokens", tmp_path, data, stages=HEAD_ONLY)
    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert set(report["class_names"]) >= {"B-person", "I-person", "B-loc", "O"}
    assert report["totals"]["test"] == 10


def test_keys_are_inferred_or_overridden_and_named_when_wrong(data_dir):
    spec = "tfds:tiny_colours"
    files = tfds_source.materialize(spec, "images", data_dir=str(data_dir))
    assert sorted(p.name for p in (files["train"] / "train").iterdir()) == sorted(COLOURS)
    shades = tfds_source.materialize(spec, "images", data_dir=str(data_dir), label_key="shade")
    assert [p.name for p in (shades["train"] / "train").iterdir()] == ["light"]
    with pytest.raises(ValueError, match="--label-key 'colour'.*has no such feature.*shade"):
        tfds_source.materialize(spec, "images", data_dir=str(data_dir), label_key="colour")
    with pytest.raises(ValueError, match="is a Image, not a usable ClassLabel feature"):
        tfds_source.materialize(spec, "images", data_dir=str(data_dir), label_key="image")
    with pytest.raises(ValueError, match="has no Text feature"):
        tfds_source.materialize(spec, "text", data_dir=str(data_dir))


def test_an_unprepared_dataset_offline_names_the_data_dir_flag(tmp_path):
    if tfds_source.online():
        pytest.skip("this machine has a network: TFDS would download mnist")
    started = time.time()
    with pytest.raises(FileNotFoundError, match="not prepared.*--tfds-data-dir"):
        tfds_source.materialize("tfds:mnist", "images", data_dir=str(tmp_path))
    assert time.time() - started < 30


@pytest.mark.parametrize("bad", ["tfds:", "tfds:a:b:c", "tfds:../etc"])
def test_a_malformed_name_is_refused(bad):
    with pytest.raises(ValueError, match="not a TFDS dataset name"):
        tfds_source.parse_spec(bad)


def test_an_unknown_dataset_is_named(tmp_path):
    with pytest.raises(ValueError, match="no_such_dataset_xyz"):
        tfds_source.materialize("tfds:no_such_dataset_xyz", "text", data_dir=str(tmp_path))
