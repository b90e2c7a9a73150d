"""What a run prints: bars for every long step, --quiet, --verbose's timings."""

import re
import time

import pytest
from click.testing import CliRunner

from tfx_transfer import cli, progress

TINY = ["--image-size", "64", "--batch-size", "8", "--epochs", "3", "--no-augment",
        "--val-fraction", "0.25", "--test-fraction", "0.25"]


def test_nested_steps_count_once_so_the_seconds_add_up_to_the_wall_time():
    with progress.recording() as timings:
        started = time.perf_counter()
        with progress.step("stage head"):
            time.sleep(0.05)
            with progress.step("backbone features"):
                time.sleep(0.1)
        with progress.step("stage head"):  # Entered again: added up.
            time.sleep(0.05)
        wall = time.perf_counter() - started
    assert list(timings.seconds) == ["stage head", "backbone features"]
    assert timings.seconds["backbone features"] == pytest.approx(0.1, abs=0.03)
    assert timings.seconds["stage head"] == pytest.approx(0.1, abs=0.03)
    assert sum(timings.seconds.values()) == pytest.approx(wall, abs=0.01)
    lines = timings.lines()
    assert lines[0] == "Timings per step:" and lines[-1].split()[0] == "total"
    # Outside a recording a step costs nothing and records nothing.
    with progress.step("ignored"):
        pass


def test_quiet_silences_messages_and_bars_but_not_warnings(capsys):
    with progress.verbosity(progress.QUIET):
        progress.say("plan")
        assert progress.bar(3, "title") is None
        assert list(progress.tracked(iter("abc"), 3, "title")) == ["a", "b", "c"]
        assert progress.keras_verbose() == 0 and progress.predict_bar("title") == 0
        progress.warn("the disk is full")
    out, err = capsys.readouterr()
    assert out == "" and err == "Warning: the disk is full\n"
    with pytest.raises(ValueError, match="verbosity must be 0, 1 or 2"):
        with progress.verbosity(3):
            pass


def test_a_bar_ends_even_when_the_items_are_fewer_than_announced(capsys):
    items = list(progress.tracked(iter([1, 2]), 5, "Scoring:", unit_name="image"))
    out = capsys.readouterr().out
    assert items == [1, 2]
    assert out.startswith("Scoring:\n") and "2/5" in out


@pytest.fixture(scope="module")
def verbose_run(colour_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("progress")
    result = CliRunner().invoke(cli.main, [
        # No feature cache: an earlier test's features would be loaded, not computed.
        "train", "--data", str(colour_folder), *TINY, "--fine-tune-epochs", "1",
        "--no-feature-cache",
        "--output-dir", str(out), "--run-name", "loud", "--verbose"])
    assert result.exit_code == 0, result.output
    return out / "loud", result.stdout


@pytest.mark.slow
def test_every_long_step_shows_progress_and_verbose_adds_timings(verbose_run):
    _, out = verbose_run
    for title in ("Checking that 36 image files in", "Backbone features of train examples:",
                  "Backbone features of val examples:", "Evaluating on the test split:",
                  "Exporting labels.txt, model.keras and saved_model/"):
        assert title in out, title
    assert re.search(r"\d+/\d+ - \d+s - .* - accuracy: .* - val_accuracy: ", out), "no epoch line"
    timings = out[out.index("Timings per step:"):].splitlines()
    steps = {line.split("  ")[1].strip() for line in timings[1:] if line.startswith("  ")}
    assert {"data", "backbone features", "stage head", "stage fine_tune", "baseline",
            "evaluation", "export", "total"} <= steps
    total = float(re.search(r"total +([\d.]+) s", out).group(1))
    finished = float(re.search(r"Finished in (\d+) s", out).group(1))
    assert abs(total - finished) <= 3, (total, finished)


@pytest.mark.slow
def test_a_quiet_run_prints_only_the_final_report(verbose_run):
    run_dir, _ = verbose_run
    # Resumed after its last stage: the data check, baseline, evaluation and export run again.
    result = CliRunner().invoke(cli.main, ["train", "--resume", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    report = (run_dir / "report.txt").read_text().strip()
    lines = [line for line in result.stdout.strip().splitlines() if line]
    assert lines[0].startswith(f"tfx_transfer images run {run_dir.name}:")
    assert report.splitlines()[0] == lines[0]
    assert lines[-2].startswith("Finished in ") and lines[-1].startswith("Exported SavedModel:")
    assert "Timings" not in result.stdout and "Checking" not in result.stdout


def test_quiet_and_verbose_together_is_a_usage_error():
    result = CliRunner().invoke(cli.main, ["train", "--quiet", "--verbose"])
    assert result.exit_code == 2 and "--quiet and --verbose" in result.output
