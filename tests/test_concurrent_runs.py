"""Two runs started at once on the same data, with one empty cache: both finish, on whole entries."""

import json
import os
import subprocess
import sys

import pytest

from harness import check_files_whole
from tfx_transfer.feature_store import FeatureCache

TINY = ["--image-size", "48", "--batch-size", "8", "--epochs", "3", "--fine-tune-epochs", "0",
        "--val-fraction", "0.25", "--test-fraction", "0.25", "--seed", "0"]


@pytest.mark.slow
def test_two_runs_at_once_share_one_cache_and_both_finish(colour_folder, tmp_path):
    # A fresh home: both convert the backbone's weights and extract the same
    # features at the same moment, into the same cache entries.
    env = {**os.environ, "TFX_TRANSFER_HOME": str(tmp_path / "home")}
    processes = [
        subprocess.Popen([sys.executable, "-m", "tfx_transfer", "train", "--data",
                          str(colour_folder), *TINY, "--output-dir", str(tmp_path / "runs"),
                          "--run-name", name, "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in ("first", "second")
    ]
    outputs = [process.communicate(timeout=400) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    runs = [tmp_path / "runs" / name for name in ("first", "second")]
    for run_dir in runs:
        check_files_whole(run_dir, tmp_path / "home")
    cache = FeatureCache(tmp_path / "home" / "features")
    # One entry per split (and views), whichever run wrote it, each whole.
    keys = [entry["key"] for entry in cache.entries()]
    assert len(keys) == len(set(keys)) >= 2
    assert all(cache.load(key) is not None for key in keys)
    first, second = (json.loads((run / "metrics.json").read_text()) for run in runs)
    # Same data, seed and features: the same head, the same score.
    assert first["accuracy"] == second["accuracy"]
    assert first["stages"][0]["settings"] == second["stages"][0]["settings"]
