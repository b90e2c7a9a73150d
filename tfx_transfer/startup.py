"""TensorFlow's start-up, without the lines that mean nothing on this machine.

On a machine without a GPU, importing TensorFlow prints CUDA probing lines
("Could not find cuda drivers", "failed call to cuInit") before the run's
own output. `TF_CPP_MIN_LOG_LEVEL=2` hides TensorFlow's INFO and WARNING
lines, but not these: the first are written by absl before its logging is
initialised, which no variable controls (abseil-cpp#1718), and the second
is logged as an ERROR, which only level 3 would hide, along with real errors.

So `import_tensorflow` imports TensorFlow and initialises its devices with
the process's stderr captured, then writes back every captured line except
those known start-up lines, and the cuInit error only when the machine has
no NVIDIA device at all. A user's own `TF_CPP_MIN_LOG_LEVEL` wins: when it
is set, nothing is filtered.
"""

import os
import re
import sys
import tempfile

# Read before `tfx_transfer/__init__.py` sets its default.
USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")

_STARTUP_NOISE = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r".*cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
    r".*cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"To enable the following instructions: .* rebuild TensorFlow",
    # Any INFO line absl writes before its logging is initialised ("I0000
    # 00:00:..."), such as oneDNN's "custom operations are on" on CPUs that
    # have it: the default level 2 means no INFO, which absl ignores here.
    r"I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ",
)
_NO_GPU_NOISE = (r".*cuda_platform\.cc:\d+\] failed call to cuInit",)


def set_environment_defaults():
    """Sets the TensorFlow logging default before it is imported; the user's own wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prepare_replicas(strategy):
    """Turns oneDNN off before TensorFlow starts when a run may split batches over replicas.

    A replica gets an empty batch when the last batch of a split is smaller
    than the replica count, and oneDNN's CPU `Conv2D` returns its input
    unchanged on an empty batch (checked with TF 2.21: `Conv2D(32, 3)` on
    `[0, 64, 64, 3]` gives `[0, 64, 64, 3]`), which breaks the next layer.
    TensorFlow's own CPU kernels are right. Only CPU kernels change: on GPUs
    the model runs in cuDNN either way. A user's own `TF_ENABLE_ONEDNN_OPTS`
    wins.

    Args:
        strategy: str. The run's `--strategy`.
    """
    several = strategy in ("mirrored", "multiworker") or (
        strategy == "auto" and os.environ.get("TF_CONFIG", "").strip())
    if several and "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def has_nvidia_device():
    """Whether the machine has an NVIDIA driver loaded (then cuInit errors are real)."""
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")


def import_tensorflow():
    """Imports TensorFlow and initialises its devices, dropping known start-up noise.

    Returns:
        The `tensorflow` module.

    Example:

    >>> tf = import_tensorflow()
    >>> tf.constant(1).numpy()
    1
    """
    if "tensorflow" in sys.modules or USER_LOG_LEVEL is not None:
        import tensorflow as tf

        return tf
    patterns = _STARTUP_NOISE + (() if has_nvidia_device() else _NO_GPU_NOISE)
    noise = re.compile("|".join(f"(?:{p})" for p in patterns))
    with tempfile.TemporaryFile(mode="w+b") as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # Where the CUDA platform is probed.
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(True)
                    if not noise.match(line)]
            sys.stderr.write("".join(kept))
    return tf


def import_module(name):
    """Imports a module that needs TensorFlow, with TensorFlow's start-up noise dropped."""
    import importlib

    import_tensorflow()
    return importlib.import_module(name)
