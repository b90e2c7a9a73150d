"""Strategy overhead: one process vs mirrored on 2 logical CPUs vs 2 local workers.

Every variant trains the same job with the same global batch: the bundled
Fashion-MNIST demo, small images, the head trained by Keras' `fit`
(`--no-cache-features`) and one fine-tune epoch, so the strategy carries
every training step. Each variant is a fresh process (or two), timed from
launch to exit, in the same run:

- `default`: one process, one device, `--batch-size 16`;
- `mirrored`: one process whose CPU is split into 2 logical devices,
  `--batch-size 8` per replica;
- `multiworker`: 2 worker processes on 127.0.0.1 with TF_CONFIG,
  `--batch-size 8` per replica.

On a 2-core machine the replicas share the same cores, so the ratios
measure what the strategies cost (collectives, rebatching, a second copy
of the model), not a speed-up; on real GPUs each replica has its own
device and the step time falls instead.

    python benchmarks/distribute.py --epochs 2
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

_TWO_CPUS = """
import os, sys
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfx_transfer.cli import main
main(sys.argv[1:])
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(**extra):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**environment, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _job(root, name, epochs, batch):
    return ["--output-dir", root, "--run-name", name, "--image-size", "96", "--batch-size",
            str(batch), "--epochs", str(epochs), "--fine-tune-epochs", "1",
            "--no-cache-features", "--quiet"]


def run_variant(name, root, epochs, timeout=1800):
    """Runs one variant to completion; returns its wall seconds and test accuracy."""
    started = time.time()
    if name == "default":
        processes = [subprocess.Popen(
            [sys.executable, "-m", "tfx_transfer.train", *_job(root, name, epochs, 16),
             "--strategy", "default"], env=_environment(), stdout=subprocess.DEVNULL)]
    elif name == "mirrored":
        processes = [subprocess.Popen(
            [sys.executable, "-c", _TWO_CPUS, "train", *_job(root, name, epochs, 8),
             "--strategy", "mirrored"], env=_environment(), stdout=subprocess.DEVNULL)]
    else:
        cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
        processes = [subprocess.Popen(
            [sys.executable, "-m", "tfx_transfer.train", *_job(root, name, epochs, 8),
             "--strategy", "multiworker"], stdout=subprocess.DEVNULL,
            env=_environment(TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}})))
            for index in range(2)]
    codes = [process.wait(timeout=timeout) for process in processes]
    if any(codes):
        raise RuntimeError(f"{name}: exit codes {codes}")
    seconds = time.time() - started
    metrics = json.loads(open(os.path.join(root, name, "metrics.json")).read())
    return {"variant": name, "seconds": seconds, "accuracy": metrics["accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="Head epochs (Keras fit).")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="distribute-")
    rows = [run_variant(name, root, args.epochs)
            for name in ("default", "mirrored", "multiworker")]
    base = rows[0]["seconds"]
    for row in rows:
        print(f"{row['variant']:<12} {row['seconds']:7.1f} s  x{row['seconds'] / base:.2f} of "
              f"default  test accuracy {row['accuracy']:.4f}")


if __name__ == "__main__":
    main()
