"""Two local workers under MultiWorkerMirroredStrategy, on 127.0.0.1 only."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tfx_transfer import train
from tfx_transfer.config import DataConfig, RunConfig


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch_workers(args, count=2, timeout=480):
    """Runs `python -m tfx_transfer.train ARGS` as `count` workers; returns their outputs."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(count)]}
    processes = []
    for index in range(count):
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfx_transfer.train", *args], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for process in processes:
            # A hung collective fails the test instead of hanging CI.
            outputs.append((process.wait(timeout=timeout), process.stdout.read()))
    finally:
        for process in processes:
            process.kill()
    return outputs


def test_a_multiworker_run_without_a_run_name_is_refused_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match="needs --run-name"):
        train.run(RunConfig(output_dir=str(tmp_path), data=DataConfig(path=str(tmp_path))))
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_two_workers_train_to_the_same_weights_and_only_the_chief_writes(colour_folder, tmp_path):
    outputs = _launch_workers([
        "--data", str(colour_folder), "--image-size", "64", "--batch-size", "4",
        "--val-fraction", "0.25", "--test-fraction", "0.25", "--strategy", "multiworker",
        "--output-dir", str(tmp_path), "--run-name", "mw", "--epochs", "2",
        "--fine-tune-epochs", "1", "--quiet",
        # The head then trains with Adam in Keras' fit (on features it is
        # an L-BFGS fit, the same on every worker whether or not they sync).
        "--no-cache-features",
    ])
    for code, output in outputs:
        assert code == 0, output[-3000:]
        assert "Strategy: multiworker (asked for): 2 replica(s), 2 workers, global batch 8" in (
            output)
    prints = [re.search(r"Worker (\d) of 2: weights fingerprint (\w+)", output)
              for _, output in outputs]
    assert [p.group(1) for p in prints] == ["0", "1"]
    # The head, always kept, was trained by fit on both workers in step.
    assert prints[0].group(2) == prints[1].group(2)
    assert [p.name for p in tmp_path.iterdir()] == ["mw"]
    run_dir = tmp_path / "mw"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # In order: predictions gathered from both workers line up with the labels.
    assert metrics["accuracy"] >= 0.8 and metrics["num_examples"] == 9
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    stages = json.loads((run_dir / "stages.json").read_text())
    assert [(s["name"], s["epochs_run"]) for s in stages] == [("head", 2), ("fine_tune", 1)]
