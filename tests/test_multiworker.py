"""Two local workers under MultiWorkerMirroredStrategy, on 127.0.0.1 only."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

import harness
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


def _start_workers(args, count=2):
    """Starts `python -m tfx_transfer.train ARGS` as `count` workers on free loopback ports."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(count)]}
    processes = []
    for index in range(count):
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfx_transfer.train", *args], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def _finish(processes, timeout=480):
    """Waits for every worker; returns (exit code, output) of each."""
    outputs = []
    try:
        for process in processes:
            # A hung collective fails the test instead of hanging CI.
            outputs.append((process.wait(timeout=timeout), process.stdout.read()))
    finally:
        for process in processes:
            process.kill()
    return outputs


def _launch_workers(args, count=2, timeout=480):
    return _finish(_start_workers(args, count), timeout)


def test_a_multiworker_run_without_a_run_name_is_refused_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match="needs --run-name"):
        train.run(RunConfig(output_dir=str(tmp_path), data=DataConfig(path=str(tmp_path))))
    assert not any(tmp_path.iterdir())


def _fingerprints(outputs):
    """The weights fingerprint each worker printed, in worker order."""
    prints = [re.search(r"Worker (\d) of 2: weights fingerprint (\w+)", output)
              for _, output in outputs]
    assert all(prints), outputs[0][1][-3000:]
    assert [p.group(1) for p in prints] == ["0", "1"]
    return [p.group(2) for p in prints]


def _check_chief_only(outputs, tmp_path):
    for code, output in outputs:
        assert code == 0, output[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["mw"]
    run_dir = tmp_path / "mw"
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_two_workers_share_the_backbone_pass_and_end_with_the_same_model(colour_folder, tmp_path):
    outputs = _launch_workers([
        "--data", str(colour_folder), "--image-size", "32", "--batch-size", "4",
        "--val-fraction", "0.25", "--test-fraction", "0.25", "--strategy", "multiworker",
        "--output-dir", str(tmp_path), "--run-name", "mw", "--epochs", "2",
        "--fine-tune-epochs", "1",
    ])
    run_dir, metrics = _check_chief_only(outputs, tmp_path)
    train_size = json.loads((run_dir / "data_report.json").read_text())["totals"]["train"]
    for _, output in outputs:
        assert "Strategy: multiworker (asked for): 2 replica(s), 2 workers, global batch 8" in (
            output)
        assert "Feature cache on disk: off for a multi-worker run" in output
        cached = re.search(r"Cached backbone features of (\d+) training examples \((\d+) "
                           r"view\(s\)\) and (\d+) validation examples in \d+ s, the backbone "
                           r"pass shared by 2 workers", output)
        # Each worker ran half the batches and received all the features.
        assert cached, output[-3000:]
        assert int(cached.group(1)) == train_size * int(cached.group(2))
        assert int(cached.group(3)) == 9
    # The head fitted on the gathered features, then the fine-tune epoch in
    # Keras' fit (kept or rolled back alike), left the same model everywhere.
    first, second = _fingerprints(outputs)
    assert first == second
    # In order: predictions gathered from both workers line up with the labels.
    assert metrics["accuracy"] >= 0.8 and metrics["num_examples"] == 9
    stages = json.loads((run_dir / "stages.json").read_text())
    # The head is an L-BFGS fit on the features: it runs no Keras epochs.
    assert [(s["name"], s["epochs_run"]) for s in stages] == [("head", 0), ("fine_tune", 1)]


@pytest.mark.slow
def test_two_workers_fine_tune_a_text_encoder_to_the_same_weights(tmp_path):
    data = harness.write_tickets_csv(tmp_path / "tickets.csv")
    runs = tmp_path / "runs"
    outputs = _launch_workers([
        "--task", "text", "--data", str(data), "--sequence-length", "16", "--batch-size", "4",
        "--val-fraction", "0.25", "--test-fraction", "0.25", "--strategy", "multiworker",
        "--output-dir", str(runs), "--run-name", "mw", "--fine-tune-epochs", "1",
        "--unfreeze", "1",
    ])
    run_dir, metrics = _check_chief_only(outputs, runs)
    first, second = _fingerprints(outputs)
    assert first == second
    assert metrics["num_examples"] == 9 and metrics["accuracy"] >= 0.6, metrics
    assert (run_dir / "report.txt").is_file()


@pytest.mark.slow
def test_a_worker_killed_mid_stage_stops_the_other_and_both_resume_from_the_backup(colour_folder, tmp_path):
    args = ["--data", str(colour_folder), "--image-size", "32", "--batch-size", "4",
            "--val-fraction", "0.25", "--test-fraction", "0.25", "--strategy", "multiworker",
            "--output-dir", str(tmp_path), "--run-name", "mw", "--epochs", "8",
            "--learning-rate", "1e-4", "--fine-tune-epochs", "0", "--no-cache-features"]
    processes = _start_workers(args)
    backup = tmp_path / "mw" / "backup" / "head" / "training_metadata.json"
    deadline = time.time() + 300
    try:
        while not backup.is_file() and time.time() < deadline:
            assert all(p.poll() is None for p in processes), "a worker ended before the kill"
            time.sleep(0.2)
        assert backup.is_file(), "no epoch was backed up in time"
        processes[1].kill()  # One worker preempted: kill -9.
        # The other finds it gone by TensorFlow's heartbeats and stops, saying what to do.
        assert processes[0].wait(timeout=120) == 1
        survivor = processes[0].stdout.read()
        assert "another worker stopped (preempted or killed)" in survivor, survivor[-3000:]
        assert "Relaunch every worker with the same command" in survivor
        assert "Traceback" not in survivor
    finally:
        for process in processes:
            process.kill()
            process.wait()
    done_epochs = json.loads(backup.read_text())["epoch"]
    assert done_epochs >= 1

    outputs = _finish(_start_workers(args))
    _check_chief_only(outputs, tmp_path)
    epochs = [int(n) for n in re.findall(r"^Epoch (\d+)/8$", outputs[0][1], re.MULTILINE)]
    # It went on from the backed-up epoch; it did not start over.
    assert epochs and epochs[0] == done_epochs + 1, (done_epochs, epochs)
    # The head trained in Keras' fit on both workers, in step.
    first, second = _fingerprints(outputs)
    assert first == second
