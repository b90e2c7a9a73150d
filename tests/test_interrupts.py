"""Ctrl-C names the run and its --resume command; a bad input leaves no run behind."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tfx_transfer import cli

TINY = ["--image-size", "64", "--batch-size", "8", "--epochs", "3", "--fine-tune-epochs", "1",
        "--no-augment", "--val-fraction", "0.25", "--test-fraction", "0.25"]


def _wait_for(process, text, timeout=240):
    """Reads the process's stdout until a line holds `text`; returns what it read."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"{text!r} never printed:\n{''.join(seen)}")


@pytest.mark.slow
def test_ctrl_c_names_the_run_exits_130_and_the_printed_command_resumes_it(
        colour_folder, tmp_path):
    command = [sys.executable, "-m", "tfx_transfer", "train", "--data", str(colour_folder),
               *TINY, "--output-dir", str(tmp_path), "--run-name", "stopped", "--keep-checkpoints"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _wait_for(process, "Training plan:")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    run_dir = tmp_path / "stopped"
    assert process.returncode == 130, err
    resume = f"python -m tfx_transfer train --resume {run_dir}"
    assert f"Run {run_dir} was interrupted; resume it with: {resume}." in err
    assert "Traceback" not in err and "Aborted!" not in err
    # The command it printed finishes the run.
    finished = subprocess.run([sys.executable, *resume.split()[1:], "--quiet"],
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    assert "Test accuracy" in finished.stdout
    # --keep-checkpoints, read back from config.yaml, kept what a finished run removes.
    for name in ("kept.weights.h5", "head.weights.h5", "fine_tune.weights.h5"):
        assert (run_dir / "checkpoints" / name).is_file(), name
    assert (run_dir / "backup").is_dir()


@pytest.mark.parametrize("layout", ["one class", "empty folder"])
def test_a_run_that_fails_on_its_input_leaves_no_run_directory(colour_folder, tmp_path, layout):
    data = tmp_path / "photos"
    data.mkdir()
    if layout == "one class":
        (data / "red").symlink_to(colour_folder / "red")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli.main, ["train", "--data", str(data), *TINY,
                                           "--output-dir", str(runs)])
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_bad_table_leaves_no_run_directory(tmp_path):
    table = tmp_path / "posts.csv"
    table.write_text("body,topic\nhello there,a\ngood bye,b\n")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli.main, ["train", "--task", "text", "--data", str(table),
                                           "--output-dir", str(runs)])
    assert result.exit_code == 1 and "--text-column" in result.output, result.output
    assert not runs.exists() or list(runs.iterdir()) == []
