import pytest

from tfx_transfer.config import DataConfig, RunConfig, load_config, save_config


def test_round_trip_through_yaml(tmp_path):
    config = RunConfig(data=DataConfig(batch_size=8, path="x")).with_stage_overrides(
        head_epochs=3, unfreeze=4
    )
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_overrides_leave_the_original_alone():
    config = RunConfig()
    changed = config.with_overrides({"data.batch_size": 8, "model.dropout": None})
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


def test_fine_tune_epochs_zero_drops_later_stages():
    config = RunConfig().with_stage_overrides(fine_tune_epochs=0)
    assert [s.name for s in config.stages] == ["head"]
    with pytest.raises(ValueError, match="unfreeze"):
        config.with_stage_overrides(unfreeze=2)
