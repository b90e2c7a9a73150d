"""Strategies: how `auto` resolves, the default's no-op, and a mirrored run end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import serve_in_fresh_process
from tfx_transfer import distribute
from tfx_transfer.config import RunConfig
from tfx_transfer.tasks.base import Datasets

TWO_WORKERS = json.dumps({"cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]},
                          "task": {"type": "worker", "index": 1}})

# Runs the command line in a process whose CPU is split into two logical
# devices, which must happen before TensorFlow initialises them.
_TWO_CPUS = """
import os, sys
# What the command line does before TensorFlow starts; here TensorFlow
# starts first (`tfx_transfer.startup.prepare_replicas`).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
if sys.argv[1] == "resolve":
    from tfx_transfer import distribute
    print(distribute.resolve("auto", tf_config="", environment={})[0])
else:
    from tfx_transfer.cli import main
    main(sys.argv[1:])
"""


def _environment():
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CONFIG", *distribute.TPU_ENVIRONMENT)}
    return {**environment, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _two_cpus(*args, timeout=300):
    return subprocess.run([sys.executable, "-c", _TWO_CPUS, *args], capture_output=True,
                          text=True, timeout=timeout, env=_environment())


def test_auto_is_the_default_strategy_on_one_device_without_a_cluster():
    assert distribute.resolve("auto", tf_config="", environment={}) == (
        "default", "auto: one device")


def test_auto_picks_multiworker_only_when_tf_config_names_several_workers():
    assert distribute.resolve("auto", tf_config=TWO_WORKERS, environment={})[0] == "multiworker"
    one = json.dumps({"cluster": {"worker": ["127.0.0.1:20001"]},
                      "task": {"type": "worker", "index": 0}})
    assert distribute.resolve("auto", tf_config=one, environment={})[0] == "default"


def test_auto_picks_a_tpu_only_when_one_is_named():
    assert distribute.resolve("auto", tf_config="", environment={"COLAB_TPU_ADDR": "x"}) == (
        "tpu", "auto: COLAB_TPU_ADDR is set")
    assert distribute.resolve("auto", tpu="local", tf_config="", environment={})[0] == "tpu"
    # A TPU outranks a cluster: TF_CONFIG on a TPU VM describes the TPU workers.
    assert distribute.resolve("auto", tpu="local", tf_config=TWO_WORKERS,
                              environment={})[0] == "tpu"


def test_an_explicit_strategy_is_taken_as_given_and_a_wrong_one_is_named():
    for name in ("default", "mirrored", "multiworker", "tpu"):
        assert distribute.resolve(name, tf_config=TWO_WORKERS) == (name, "asked for")
    with pytest.raises(ValueError, match="`strategy` must be one of"):
        distribute.resolve("horovod")
    with pytest.raises(ValueError, match="strategy"):
        RunConfig(strategy="horovod")


def test_tf_config_is_parsed_and_its_chief_found():
    spec = distribute.cluster_spec(TWO_WORKERS)
    assert distribute.num_workers(spec) == 2 and not distribute.is_chief(spec)
    first = {**spec, "task": {"type": "worker", "index": 0}}
    assert distribute.is_chief(first)
    with_chief = {"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]},
                  "task": {"type": "worker", "index": 0}}
    assert distribute.num_workers(with_chief) == 2 and not distribute.is_chief(with_chief)
    assert distribute.is_chief({**with_chief, "task": {"type": "chief", "index": 0}})
    assert distribute.cluster_spec("") == {}
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.cluster_spec("{worker: 1")
    with pytest.raises(ValueError, match='"cluster"'):
        distribute.cluster_spec('{"task": {}}')


def test_the_tpu_resolver_is_built_for_an_address_without_contacting_it():
    # No TPU here: this checks everything up to the connection, on loopback.
    resolver = distribute.tpu_resolver("grpc://127.0.0.1:8470")
    assert resolver.master() == "grpc://127.0.0.1:8470"


def test_the_default_strategy_changes_nothing():
    distribution = distribute.create("default")
    assert distribution.strategy is tf.distribute.get_strategy()
    assert distribution.num_replicas == 1 and distribution.is_chief
    config = RunConfig()
    # The same object: no rebatching, no copy of the config or the data.
    assert distribute.with_global_batch(config, distribution) is config
    assert "1 replica(s), global batch 32 (32 per replica)" in distribution.describe(32)
    datasets = _datasets(10, 4)
    assert distribute.distribute_datasets(datasets, distribution, 4, 10) is datasets


def _datasets(size, batch_size):
    split = tf.data.Dataset.from_tensor_slices((np.arange(size, dtype=np.float32),
                                                np.arange(size) % 2)).batch(batch_size)
    return Datasets(train=split, val=split, test=split)


def test_tpu_training_batches_are_full_and_static_and_workers_shard_by_element():
    # The TPU branch on the default strategy: only its datasets are checked here.
    tpu = distribute.Distribution("tpu", tf.distribute.get_strategy())
    datasets = distribute.distribute_datasets(_datasets(10, 4), tpu, 4, 10)
    assert datasets.train.element_spec[0].shape == (4,)  # XLA sees one static shape.
    assert [len(x) for x, _ in datasets.train] == [4, 4]  # The partial batch of 2 dropped.
    assert [len(x) for x, _ in datasets.val] == [4, 4, 2]  # Evaluation keeps every example.
    with pytest.raises(ValueError, match="holds 3 examples, fewer than the global batch of 4"):
        distribute.distribute_datasets(_datasets(3, 4), tpu, 4, 3)

    workers = distribute.Distribution("multiworker", tf.distribute.get_strategy(), num_workers=2)
    sharded = distribute.distribute_datasets(_datasets(10, 4), workers, 4, 10)
    for split in (sharded.train, sharded.val, sharded.test):
        assert (split.options().experimental_distribute.auto_shard_policy
                == tf.data.experimental.AutoShardPolicy.DATA)


@pytest.mark.parametrize("strategy, expected", [("mirrored", "0"), ("multiworker", "0"),
                                                ("default", "unset"), ("auto", "unset")])
def test_onednn_is_turned_off_before_tensorflow_only_when_replicas_may_split_batches(
        strategy, expected):
    script = ("import os; from tfx_transfer import startup; "
              f"startup.prepare_replicas({strategy!r}); "
              "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset'))")
    environment = {k: v for k, v in _environment().items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=environment, check=True)
    assert done.stdout.split()[-1] == expected


def test_auto_picks_mirrored_over_two_logical_devices():
    done = _two_cpus("resolve", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "mirrored"


@pytest.mark.slow
def test_a_mirrored_run_trains_and_serves_like_one_device(colour_folder, tmp_path):
    # Same global batch (2 replicas x 4 = 1 x 8), no dropout and no random
    # augmentation (drawn in parallel, so in no fixed order), so both runs
    # take the same steps up to float rounding.
    common = ["train", "--data", str(colour_folder), "--image-size", "32",
              "--val-fraction", "0.25", "--test-fraction", "0.25", "--output-dir",
              str(tmp_path), "--learning-rate", "0.01", "--epochs", "4",
              "--fine-tune-epochs", "0", "--dropout", "0", "--no-augment",
              # Without cached features the head trains with Adam in `fit`.
              "--no-cache-features"]
    mirrored = _two_cpus(*common, "--strategy", "mirrored", "--batch-size", "4",
                         "--run-name", "mirrored")
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    assert "Strategy: mirrored (asked for): 2 replica(s), global batch 8 (4 per replica)." in (
        mirrored.stdout)
    single = _two_cpus(*common, "--strategy", "default", "--batch-size", "8",
                       "--run-name", "single")
    assert single.returncode == 0, single.stderr[-3000:]
    assert "Strategy: default (asked for): 1 replica(s)" in single.stdout

    log = (tmp_path / "mirrored" / "logs" / "head.csv").read_text().splitlines()
    losses = [float(row.split(",")[log[0].split(",").index("loss")]) for row in log[1:]]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    # config.yaml keeps the per-replica batch, so a resume scales it again.
    assert "batch_size: 4" in (tmp_path / "mirrored" / "config.yaml").read_text()

    images = [path.read_bytes() for path in sorted(colour_folder.glob("*/00[0-3].png"))]
    served = [serve_in_fresh_process(tmp_path / name / "saved_model", image_bytes=images)
              for name in ("mirrored", "single")]
    np.testing.assert_array_equal(served[0]["label"], served[1]["label"])
    np.testing.assert_allclose(served[0]["probabilities"], served[1]["probabilities"],
                               atol=1e-3)
