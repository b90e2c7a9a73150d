import dataclasses
import re
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tfx_transfer import cli, tasks
from tfx_transfer.config import DataConfig, RunConfig, StageConfig, check_fractions
from tfx_transfer.config_files import load_config, save_config
from tfx_transfer.tasks.defaults import DEFAULTS


def test_round_trip_through_yaml(tmp_path):
    config = cli.with_stage_overrides(
        tasks.resolve(RunConfig(data=DataConfig(batch_size=8, path="x"))),
        head_epochs=3, unfreeze=4,
    )
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_overrides_leave_the_original_alone():
    config = RunConfig()
    changed = cli.with_overrides(config, {"data.batch_size": 8, "model.dropout": None})
    assert changed.data.batch_size == 8
    assert changed.model.dropout == config.model.dropout
    assert config.data.batch_size == 32


def test_unknown_field_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  batch_sise: 8\n")
    with pytest.raises(ValueError, match="batch_sise"):
        load_config(path)


def test_bad_value_says_what_was_received():
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        DataConfig(batch_size=0)
    with pytest.raises(ValueError, match="val_fraction"):
        DataConfig(val_fraction=0.6, test_fraction=0.5)


def test_one_fraction_rule_for_runs_and_readers():
    # A run needs both held-out splits; a reader may be asked for an empty one.
    with pytest.raises(ValueError, match=r"`data.val_fraction` must be in \(0, 1\)"):
        DataConfig(val_fraction=0.0, test_fraction=0.1)
    check_fractions(0.0, 0.1, allow_empty=True)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        check_fractions(-0.1, 0.1, allow_empty=True)
    # An explicit value is kept, never replaced by the task default.
    resolved = tasks.resolve(RunConfig(task="tokens", data=DataConfig(val_fraction=0.3,
                                                                       test_fraction=0.2)))
    assert (resolved.data.val_fraction, resolved.data.test_fraction) == (0.3, 0.2)


def test_fine_tune_epochs_zero_drops_later_stages():
    config = cli.with_stage_overrides(tasks.resolve(RunConfig()), fine_tune_epochs=0)
    assert [s.name for s in config.stages] == ["head"]
    with pytest.raises(ValueError, match="unfreeze"):
        cli.with_stage_overrides(config, unfreeze=2)


def _help_default(help_text, flag):
    """The `[default: ...]` of one flag in `--help`, whitespace collapsed."""
    text = " ".join(help_text.split())
    match = re.search(re.escape(flag) + r"\b.*?\[default: ([^\]]*)\]", text)
    assert match, flag
    return match.group(1)


def _per_task(shown):
    """{task: value} of "10 images, 20 text"; {} when one value stands for all."""
    parts = [part.split(" ") for part in shown.split(", ")]
    return {part[1]: part[0] for part in parts if len(part) == 2}


def test_help_shows_the_defaults_a_run_uses():
    result = CliRunner().invoke(cli.main, ["train", "--help"])
    assert result.exit_code == 0
    shown = {flag: _help_default(result.output, flag) for flag in (
        "--epochs", "--learning-rate", "--fine-tune-epochs", "--fine-tune-learning-rate",
        "--unfreeze", "--sequence-length", "--val-fraction", "--batch-size", "--backbone",
    )}
    for name, defaults in DEFAULTS.items():
        # What a run with no flags resolves to, task by task.
        config = cli.config_from_flags(None, {"task": name})
        head, fine_tune = config.stages
        expected = {
            "--epochs": head.epochs, "--learning-rate": head.learning_rate,
            "--fine-tune-epochs": fine_tune.epochs,
            "--fine-tune-learning-rate": fine_tune.learning_rate,
            "--unfreeze": fine_tune.unfreeze, "--sequence-length": config.data.sequence_length,
            "--val-fraction": config.data.val_fraction, "--backbone": config.model.backbone,
        }
        for flag, value in expected.items():
            if value is None:
                assert f" {name}" not in shown[flag], flag
                continue
            text = f"{value:g}" if isinstance(value, float) else str(value)
            assert _per_task(shown[flag]).get(name, shown[flag]) == text, (flag, shown[flag])
        assert defaults.stages == config.stages
    assert shown["--batch-size"] == str(RunConfig().data.batch_size)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["--data", "/no/such/folder"]])
def test_help_version_and_usage_errors_answer_without_tensorflow(args):
    # A fresh interpreter: whether TensorFlow got imported is what is measured.
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['python -m tfx_transfer.train', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('tfx_transfer.train', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print('EXIT', exit.code)\n"
        "print('TF', 'tensorflow' in sys.modules)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    assert "TF False" in done.stdout, done.stdout + done.stderr
    assert "RuntimeWarning" not in done.stderr and "found in sys.modules" not in done.stderr
    assert elapsed < 5, elapsed  # About a second; TensorFlow alone takes 6+.
    if args == ["--version"]:
        assert "0.1.0" in done.stdout
    elif args == ["--help"]:
        assert "EXIT 0" in done.stdout
    else:
        assert "does not exist" in done.stderr and "EXIT 2" in done.stdout


def test_a_task_that_lacks_a_step_fails_when_it_is_registered():
    from tfx_transfer.tasks.base import TASKS, register_task
    from tfx_transfer.tasks.classification import ClassificationTask

    class HalfTask(ClassificationTask):
        name = "half"
        defaults = DEFAULTS["images"]
        serving_input = "image_bytes"

        def read_data(self, data_config):
            raise AssertionError("never reached")

    with pytest.raises(TypeError, match=r"lacks the step\(s\) \['baseline', 'build_classifier'"):
        register_task(HalfTask)
    assert "half" not in TASKS
    with pytest.raises(TypeError, match="already registered"):
        register_task(type(tasks.get_task("images")))


def test_config_objects_are_never_mutated():
    config = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.task = "text"


def test_a_contrastive_stage_must_tune_the_encoder_and_few_shot_round_trips(tmp_path):
    with pytest.raises(ValueError, match="loss"):
        StageConfig("a", 1, 1e-3, 1, loss="triplet")
    with pytest.raises(ValueError, match="needs unfreeze > 0"):
        StageConfig("a", 0, 1e-3, 1, loss="contrastive")
    with pytest.raises(ValueError, match="optimizer adam or adamw"):
        StageConfig("a", 2, 1e-3, 1, loss="contrastive", optimizer="lbfgs")
    config = RunConfig(task="text", few_shot=True,
                       stages=(StageConfig("pairs", 7, 2e-5, 1, loss="contrastive"),))
    save_config(config, tmp_path / "run.yaml")
    assert load_config(tmp_path / "run.yaml") == config
