"""The whole pipeline and the command line, on small real data."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tfx_transfer import cli, train
from tfx_transfer.config import DataConfig, RunConfig, StageConfig

SIZE = 64


@pytest.fixture(scope="module")
def finished_run(colour_folder, tmp_path_factory):
    config = RunConfig(
        output_dir=str(tmp_path_factory.mktemp("runs")),
        run_name="colours",
        data=DataConfig(path=str(colour_folder), image_size=SIZE, batch_size=8,
                        val_fraction=0.25, test_fraction=0.25),
        stages=(
            StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3),
            StageConfig(name="fine_tune", unfreeze=1, learning_rate=1e-4, epochs=1),
        ),
    )
    return train.run(config, verbose=0)


def test_run_writes_everything_a_user_needs(finished_run):
    run_dir = finished_run.run_dir
    for name in ("config.yaml", "data_report.json", "metrics.json", "report.txt",
                 "confusion_matrix.png", "training_curves.png", "labels.txt",
                 "model.keras", "saved_model/saved_model.pb", "stages.json",
                 "logs/head.csv", "checkpoints/head.weights.h5"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 9
    # Solid colours are trivially separable with ImageNet features.
    assert metrics["accuracy"] >= 0.8
    assert [s["name"] for s in metrics["stages"]] == ["head", "fine_tune"]
    assert "Test accuracy" in finished_run.report
    assert (run_dir / "report.txt").read_text() == finished_run.report


def test_resume_of_a_finished_run_trains_nothing_and_reproduces_it(finished_run, capsys):
    again = train.run(run_dir=finished_run.run_dir, verbose=0)
    assert "already finished" in capsys.readouterr().out
    assert again.metrics["accuracy"] == finished_run.metrics["accuracy"]
    assert again.stages == finished_run.stages


def test_predict_command_prints_top_labels(finished_run, colour_folder):
    image = sorted((colour_folder / "green").iterdir())[0]
    result = CliRunner().invoke(cli.main, ["predict", str(finished_run.run_dir), str(image), "--top-k", "2"])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"{image}: ")
    assert len(line.split("(")) == 3


def test_predict_names_a_file_that_is_not_an_image(finished_run, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all")
    result = CliRunner().invoke(cli.main, ["predict", str(finished_run.run_dir), str(bad)])
    assert result.exit_code != 0
    assert str(bad) in result.output and "Could not decode" in result.output


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
    done = subprocess.run(
        [sys.executable, "-m", "tfx_transfer.train", "--backbone", "resnet50",
         "--data", str(tmp_path / "data"), "--output-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode != 0
    assert "--weights" in done.stderr and "efficientnet_lite0" in done.stderr
    assert not (tmp_path / "runs").exists()
