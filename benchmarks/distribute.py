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

`--cached` times the default recipe instead (cached features: the frozen
backbone's pass, shared by the workers, then the L-BFGS head), with the
disk feature cache off, and also prints the seconds of the backbone pass.

    python benchmarks/distribute.py --epochs 2
    python benchmarks/distribute.py --cached --variants default,multiworker
"""

import argparse
import json
import os
import re
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


def _job(root, name, epochs, batch, cached):
    features = ["--no-feature-cache"] if cached else ["--no-cache-features"]
    return ["--output-dir", root, "--run-name", name, "--image-size", "96", "--batch-size",
            str(batch), "--epochs", str(epochs), "--fine-tune-epochs", "1", *features,
            "--quiet"]


def run_variant(name, root, epochs, cached=False, timeout=1800):
    """Runs one variant to completion; returns its wall seconds and test accuracy."""
    started = time.time()
    logs = [open(os.path.join(root, f"{name}-{index}.log"), "w+") for index in range(2)]
    if name == "default":
        processes = [subprocess.Popen(
            [sys.executable, "-m", "tfx_transfer.train", *_job(root, name, epochs, 16, cached),
             "--strategy", "default"], env=_environment(), stdout=logs[0])]
    elif name == "mirrored":
        processes = [subprocess.Popen(
            [sys.executable, "-c", _TWO_CPUS, "train", *_job(root, name, epochs, 8, cached),
             "--strategy", "mirrored"], env=_environment(), stdout=logs[0])]
    else:
        cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
        processes = [subprocess.Popen(
            [sys.executable, "-m", "tfx_transfer.train", *_job(root, name, epochs, 8, cached),
             "--strategy", "multiworker"], stdout=logs[index],
            env=_environment(TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}})))
            for index in range(2)]
    codes = [process.wait(timeout=timeout) for process in processes]
    if any(codes):
        raise RuntimeError(f"{name}: exit codes {codes}")
    seconds = time.time() - started
    metrics = json.loads(open(os.path.join(root, name, "metrics.json")).read())
    logs[0].seek(0)
    extraction = re.search(r"Cached backbone features of .* in (\d+) s", logs[0].read())
    return {"variant": name, "seconds": seconds, "accuracy": metrics["accuracy"],
            "backbone_pass_s": int(extraction.group(1)) if extraction else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="Head epochs (Keras fit).")
    parser.add_argument("--cached", action="store_true",
                        help="Cached features and the L-BFGS head (the default recipe).")
    parser.add_argument("--variants", default="default,mirrored,multiworker",
                        help="Comma-separated; the first is the baseline of the ratios.")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="distribute-")
    rows = [run_variant(name, root, args.epochs, args.cached)
            for name in args.variants.split(",")]
    base = rows[0]["seconds"]
    for row in rows:
        backbone = (f"  backbone pass {row['backbone_pass_s']} s"
                    if row["backbone_pass_s"] is not None else "")
        print(f"{row['variant']:<12} {row['seconds']:7.1f} s  x{row['seconds'] / base:.2f} of "
              f"{rows[0]['variant']}  test accuracy {row['accuracy']:.4f}{backbone}")


if __name__ == "__main__":
    main()
