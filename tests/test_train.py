"""The whole pipeline and the command line, on small real data."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import harness
from conftest import write_colour_images
from tfx_transfer import backbones, classifier, cli, startup
from tfx_transfer.config import DataConfig, RunConfig
from tfx_transfer.config_files import save_config

SIZE = 64


@pytest.fixture(scope="module")
def finished_run(colour_folder, tmp_path_factory):
    data = DataConfig(path=str(colour_folder), image_size=SIZE, batch_size=8,
                      val_fraction=0.25, test_fraction=0.25)
    return harness.train_tiny("images", tmp_path_factory.mktemp("runs"), data)


@pytest.mark.slow
def test_images_task_passes_the_harness(finished_run, colour_folder, capsys):
    images = [path.read_bytes() for path in sorted(colour_folder.glob("*/000.png"))]
    served = harness.check_task_run(finished_run, images, capsys)
    assert [label.decode() for label in served["label"]] == ["blue", "green", "red"]
    assert (finished_run.run_dir / "confusion_matrix.png").is_file()
    metrics = json.loads((finished_run.run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 9
    # Solid colours are trivially separable with ImageNet features.
    assert metrics["accuracy"] >= 0.8
    assert "Test accuracy" in finished_run.report


def test_predict_command_prints_top_labels(finished_run, colour_folder):
    images = [sorted((colour_folder / name).iterdir())[0] for name in ("green", "red")]
    result = CliRunner().invoke(
        cli.main, ["predict", str(finished_run.run_dir), *map(str, images), "--top-k", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()[-2:]
    for image, line, colour in zip(images, lines, ("green", "red")):
        name, _, top = line.partition(": ")
        assert name == str(image)
        labels = [pair.split(" (")[0] for pair in top.split(", ")]
        assert labels[0] == colour and len(labels) == 2, line


def test_predict_names_a_file_that_is_not_an_image(finished_run, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all")
    result = CliRunner().invoke(cli.main, ["predict", str(finished_run.run_dir), str(bad)])
    assert result.exit_code != 0
    assert str(bad) in result.output and "Could not decode" in result.output


def test_predict_classifies_every_good_input_and_names_each_bad_one(finished_run, colour_folder,
                                                                   tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image at all")
    green = sorted((colour_folder / "green").iterdir())
    inputs = [str(green[0]), str(notes), str(tmp_path / "missing.jpg"), str(colour_folder / "red")]
    result = CliRunner().invoke(cli.main, ["predict", str(finished_run.run_dir), *inputs,
                                           "--json", "--top-k", "1"])
    assert result.exit_code == 1
    answers = json.loads(result.stdout)
    reds = sorted(str(p) for p in (colour_folder / "red").iterdir())
    # In order, the folder expanded: the bad inputs did not stop the later ones.
    assert [a["input"] for a in answers] == inputs[:3] + reds
    assert answers[0]["top_k"][0]["label"] == "green"
    assert "Could not decode" in answers[1]["error"]
    assert answers[2]["error"] == "no such image file"
    assert all(a["top_k"][0]["label"] == "red" for a in answers[3:])
    assert "2 of 15 input(s) failed." in result.stderr


def test_evaluate_scores_new_data_and_names_labels_the_model_does_not_know(finished_run,
                                                                            tmp_path):
    new = write_colour_images(tmp_path / "new", per_class=4, seed=5)
    purple = new / "purple"
    purple.mkdir()
    Image.new("RGB", (40, 40), (120, 20, 160)).save(purple / "000.png")
    run_dir = str(finished_run.run_dir)

    refused = CliRunner().invoke(cli.main, ["evaluate", run_dir, "--data", str(new)])
    assert refused.exit_code == 1
    assert "does not know: 'purple' (1)" in refused.output and "--skip-unknown-labels" in (
        refused.output)
    assert not (finished_run.run_dir / "evaluations").exists() or not any(
        (finished_run.run_dir / "evaluations").iterdir())

    result = CliRunner().invoke(cli.main, ["evaluate", run_dir, "--data", str(new),
                                           "--skip-unknown-labels"])
    assert result.exit_code == 0, result.output
    (folder,) = (finished_run.run_dir / "evaluations").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["num_examples"] == 12 and metrics["accuracy"] >= 0.8
    assert metrics["skipped_unknown_labels"] == {"purple": 1}
    assert (folder / "confusion_matrix.png").is_file()
    assert (folder / "report.txt").read_text() in result.output
    assert "Left out for labels the model does not know: purple (1)" in result.output
    # The run's own report is untouched.
    assert (finished_run.run_dir / "report.txt").read_text() == finished_run.report


def test_tflite_variants_are_written_and_scored_on_the_test_split(finished_run):
    run_dir = finished_run.run_dir
    result = CliRunner().invoke(cli.main, ["export", str(run_dir), "--format", "tflite"])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "tflite" / "export_report.json").read_text())
    assert report["test_examples"] == 9
    saved = report["saved_model"]["accuracy"]
    for variant in ("float32", "dynamic", "int8"):
        assert (run_dir / "tflite" / f"model_{variant}.tflite").is_file()
        scores = report["variants"][variant]
        assert scores["size_mb"] > 0 and scores["ms_per_image"] > 0
        assert variant in result.output
        # Solid colours: every variant gets them as the SavedModel does (one image of 9 = 11 points).
        assert scores["accuracy"] >= saved - 0.12, (variant, scores, saved)
    assert report["variants"]["int8"]["input_dtype"] == "uint8"
    assert report["variants"]["float32"]["input_dtype"] == "float32"
    assert report["variants"]["int8"]["size_mb"] < report["variants"]["float32"]["size_mb"] / 2
    assert (run_dir / "tflite" / "labels.txt").read_text() == (run_dir / "labels.txt").read_text()

    # The float model computes what the Keras model does, on the same pixels.
    from ai_edge_litert.interpreter import Interpreter

    model = keras.saving.load_model(run_dir / "model.keras")
    pixels = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
    interpreter = Interpreter(model_path=str(run_dir / "tflite" / "model_float32.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
    interpreter.invoke()
    np.testing.assert_allclose(
        interpreter.get_tensor(interpreter.get_output_details()[0]["index"]),
        model.predict(pixels, verbose=0), atol=1e-4)


def test_export_writes_tf_servings_layout_once_per_version(finished_run, tmp_path):
    args = ["export", str(finished_run.run_dir), "--serving-layout", str(tmp_path),
            "--name", "colours"]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "colours" / "1" / "saved_model.pb").is_file()
    assert "tensorflow/serving" in result.output
    again = CliRunner().invoke(cli.main, args)
    assert again.exit_code == 1 and "exists" in again.output
    assert CliRunner().invoke(cli.main, [*args, "--version", "2"]).exit_code == 0
    from tfx_transfer.serve import find_versions

    assert sorted(find_versions(tmp_path / "colours")) == [1, 2]


def test_help_documents_every_flag():
    result = CliRunner().invoke(cli.main, ["train", "--help"])
    assert result.exit_code == 0
    for param in cli.train_command.params:
        assert param.help, f"--{param.name} has no help text"
        assert param.opts[0] in result.output


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  batch_size: 4\n  seed: 7\nmodel:\n  dropout: 0.5\n")
    config = cli.config_from_flags(str(path), {"batch_size": 16, "epochs": 2, "fine_tune_epochs": 0})
    assert (config.data.batch_size, config.data.seed, config.model.dropout) == (16, 7, 0.5)
    assert [(s.name, s.epochs) for s in config.stages] == [("head", 2)]


def test_offline_imagenet_download_fails_clearly_before_reading_data(tmp_path):
    # The data folder is unusable (one class): the weights error must come first.
    (tmp_path / "data" / "only_class").mkdir(parents=True)
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras_home")}
    # As a user runs it, with no logging setting of their own.
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "tfx_transfer.train",
         "--backbone", "resnet50", "--data", str(tmp_path / "data"),
         "--output-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode != 0
    assert "cannot reach the network" in done.stderr
    assert "--weights" in done.stderr and "efficientnet_lite0" in done.stderr
    assert not (tmp_path / "runs").exists()
    # No double import of the entry point, and no CUDA probing on a machine
    # without an NVIDIA device: the first line is the run's own error.
    assert "found in sys.modules" not in done.stderr
    if not startup.has_nvidia_device():
        assert "cuda" not in done.stderr.lower(), done.stderr
        assert done.stderr.lstrip().startswith("Usage") or done.stderr.lstrip().startswith(
            "Error"), done.stderr[:300]


@pytest.mark.slow
def test_two_deterministic_seeded_runs_give_identical_weights(colour_folder, tmp_path):
    # Augmented, feature cache off: the head's features and the fine-tune's
    # batches are computed afresh in each run. In subprocesses, because op
    # determinism, once on, stays on for the whole process.
    config = RunConfig(
        data=DataConfig(path=str(colour_folder), image_size=SIZE, batch_size=8,
                        val_fraction=0.25, test_fraction=0.25, seed=7),
        stages=harness.SHORT_PLAN, feature_cache=False, output_dir=str(tmp_path),
    )
    save_config(config, tmp_path / "run.yaml")
    weights = []
    for name in ("first", "second"):
        subprocess.run(
            [sys.executable, "-m", "tfx_transfer.train", "--config", str(tmp_path / "run.yaml"),
             "--run-name", name, "--deterministic", "--quiet"],
            check=True, capture_output=True, timeout=300,
        )
        assert backbones.ImagePreprocessing and classifier.Standardize  # registered for loading
        model = keras.saving.load_model(tmp_path / name / "model.keras")
        weights.append(model.get_weights())
    assert len(weights[0]) == len(weights[1]) > 0
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)
