"""Bad configs, in a YAML file or as flags, are refused before any work, naming the key."""

import pytest
import yaml
from click.testing import CliRunner

from tfx_transfer import cli

HEAD = {"name": "head", "unfreeze": 0, "learning_rate": 0.01, "epochs": 1}


def stage(**changes):
    return {"stages": [{**HEAD, **changes}]}


# (config file contents, text the message must hold)
BAD_FILES = {
    "unknown key": ({"epochz": 3}, "unknown field(s) ['epochz']"),
    "unknown data key": ({"data": {"pathh": "x"}}, "data: unknown field(s) ['pathh']"),
    "unknown stage key": (stage(lr=1), "stages[0]: unknown field(s) ['lr']"),
    "epochs a word": (stage(epochs="five"), "`epochs` must be an integer"),
    "epochs a fraction": (stage(epochs=2.5), "`epochs` must be an integer"),
    "negative epochs": (stage(epochs=-1), "`epochs` must be >= 0"),
    "learning rate 0": (stage(learning_rate=0), "`learning_rate` must be > 0"),
    "learning rate a word": (stage(learning_rate="fast"), "`learning_rate` must be a number"),
    "negative patience": (stage(patience=-1), "`patience` must be >= 0"),
    "negative unfreeze": (stage(unfreeze=-2), "`unfreeze` must be >= 0"),
    "lbfgs unfrozen": (stage(unfreeze=1, optimizer="lbfgs"), "it needs unfreeze=0"),
    "unknown optimizer": (stage(optimizer="sgdx"), "`optimizer` must be one of"),
    "no stages": ({"stages": []}, "`stages` must hold at least one stage"),
    "same stage twice": ({"stages": [HEAD, HEAD]}, "Stage names must be unique"),
    "stages not a list": ({"stages": "head"}, "`stages` must be a list"),
    "batch size 0": ({"data": {"batch_size": 0}}, "`data.batch_size` must be >= 1"),
    "batch size a word": ({"data": {"batch_size": "big"}}, "`batch_size` must be an integer"),
    "image size 8": ({"data": {"image_size": 8}}, "`data.image_size` must be >= 32"),
    "val fraction 1.5": ({"data": {"val_fraction": 1.5}}, "`data.val_fraction` must be in (0, 1)"),
    "fractions leave nothing": ({"data": {"val_fraction": 0.5, "test_fraction": 0.5}},
                                "must be below 1 to leave examples to train on"),
    "seed a word": ({"data": {"seed": "abc"}}, "`seed` must be an integer"),
    "data a list": ({"data": [1, 2]}, "data must be a mapping"),
    "unknown strategy": ({"strategy": "gpu9"}, "`strategy` must be one of"),
    "unknown precision": ({"mixed_precision": "fp8"}, "`mixed_precision` must be one of"),
    "zero views": ({"feature_views": 0}, "`feature_views` must be >= 1"),
    "yes for a bool": ({"cache_features": "yes"}, "`cache_features` must be true or false"),
    "zero cache size": ({"feature_cache_max_gb": 0}, "`feature_cache_max_gb` must be > 0"),
    "dropout 2": ({"model": {"dropout": 2}}, "`model.dropout` must be in [0, 1)"),
    "not a mapping": ([1, 2], "the top level must be a mapping"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_config_file_is_refused_naming_the_file_and_key(name, tmp_path):
    contents, message = BAD_FILES[name]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(contents))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli.main, ["train", "--config", str(path), "--output-dir",
                                           str(runs)])
    assert result.exit_code == 1, result.output
    assert message in result.output and str(path) in result.output, result.output
    assert "Traceback" not in result.output and not runs.exists()


BAD_FLAGS = {
    "negative epochs": (["--epochs", "-1"], "'--epochs': -1 is not in the range x>=0"),
    "learning rate 0": (["--learning-rate", "0"], "'--learning-rate': 0.0 is not in the range"),
    "batch size 0": (["--batch-size", "0"], "'--batch-size': 0 is not in the range x>=1"),
    "image size 8": (["--image-size", "8"], "'--image-size': 8 is not in the range x>=32"),
    "val fraction 1.5": (["--val-fraction", "1.5"], "'--val-fraction': 1.5 is not in the range"),
    "unknown strategy": (["--strategy", "gpu9"], "'gpu9' is not one of"),
    "zero views": (["--feature-views", "0"], "'--feature-views': 0 is not in the range"),
    "unknown flag": (["--epochz", "3"], "No such option '--epochz'. Did you mean '--epochs'?"),
}


@pytest.mark.parametrize("name", list(BAD_FLAGS))
def test_a_bad_flag_is_a_usage_error_naming_the_flag(name, tmp_path):
    flags, message = BAD_FLAGS[name]
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli.main, ["train", *flags, "--output-dir", str(runs)])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert not runs.exists()


@pytest.mark.parametrize("flags, message", [
    (["--unfreeze", "99"], "Stage 'fine_tune': efficientnet_lite0: This backbone has 18 "
                           "blocks to unfreeze. Received: unfreeze=99"),
    # Few-shot mode (9 examples a class with validation) would cut the batch to the set.
    (["--batch-size", "500", "--no-few-shot"],
     "--batch-size is 500, larger than the training set (18 examples)"),
])
def test_a_value_only_the_backbone_or_data_can_refute_is_refused_before_the_run(
        colour_folder, tmp_path, flags, message):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli.main, [
        "train", "--data", str(colour_folder), "--image-size", "64", "--val-fraction", "0.25",
        "--test-fraction", "0.25", *flags, "--output-dir", str(runs)])
    assert result.exit_code == 1 and message in result.output, result.output
    assert not runs.exists()
