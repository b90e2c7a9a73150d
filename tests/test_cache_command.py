"""The feature cache stays under its size bound; `cache list|clear` show and free it."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

from tfx_transfer import cli
from tfx_transfer.config import RunConfig
from tfx_transfer.feature_store import FeatureCache

MB = 1_000_000


def store(cache, name, megabytes=1, used=None):
    description = {"split": name, "views": 1}
    key = cache.key(description)
    cache.save(key, (np.zeros(megabytes * MB // 4, np.float32),), description)
    if used is not None:
        os.utime(cache.directory / key / cache.META, (used, used))
    return key


def test_the_least_recently_used_entries_go_first(tmp_path):
    cache = FeatureCache(tmp_path / "features", max_bytes=int(2.5 * MB))
    first, second = store(cache, "a", used=1000), store(cache, "b", used=2000)
    assert cache.load(first) is not None  # Used again: now the most recent.
    third = store(cache, "c")
    keys = [item["key"] for item in cache.entries()]
    assert keys == [first, third] and cache.load(second) is None
    # One entry larger than the bound is still kept: it was just computed.
    big = store(cache, "big", megabytes=3)
    assert [item["key"] for item in cache.entries()] == [big]
    assert not [p for p in cache.directory.iterdir() if p.name.startswith(".")]


def test_an_unbounded_cache_keeps_everything(tmp_path):
    cache = FeatureCache(tmp_path / "features")
    for name in "abc":
        store(cache, name)
    assert len(cache.entries()) == 3 and cache.evict() == []


def test_cache_list_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("TFX_TRANSFER_HOME", str(tmp_path))
    key = store(FeatureCache(tmp_path / "features"), "train", megabytes=2)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "lite0.weights.h5").write_bytes(b"x" * MB)
    listed = CliRunner().invoke(cli.main, ["cache", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"Cache: {tmp_path}" in listed.output
    assert "features/" in listed.output and "2.0 MB" in listed.output
    assert key[:12] in listed.output and "train split" in listed.output
    cleared = CliRunner().invoke(cli.main, ["cache", "clear", "features"])
    assert cleared.exit_code == 0 and "Removed" in cleared.output
    assert not (tmp_path / "features").exists() and (tmp_path / "weights").exists()
    assert CliRunner().invoke(cli.main, ["cache", "clear"]).exit_code == 0
    assert list(tmp_path.iterdir()) == []
    wrong = CliRunner().invoke(cli.main, ["cache", "clear", "everything"])
    assert wrong.exit_code == 2 and "'everything' is not one of" in wrong.output


def test_the_size_bound_must_be_positive():
    with pytest.raises(ValueError, match="feature_cache_max_gb` must be > 0"):
        RunConfig(feature_cache_max_gb=0)
    result = CliRunner().invoke(cli.main, ["train", "--feature-cache-max-gb", "0"])
    assert result.exit_code == 2 and "--feature-cache-max-gb" in result.output
