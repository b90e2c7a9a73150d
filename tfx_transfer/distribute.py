"""The run's `tf.distribute` strategy, from `--strategy` and the environment.

`auto` picks, in this order:

- a TPU, when the environment names one (`--tpu`, `TPU_NAME`,
  `COLAB_TPU_ADDR`, or a Cloud TPU VM's `TPU_ACCELERATOR_TYPE`); only then
  is `TPUClusterResolver` built, so a machine without a TPU never waits on
  the Cloud metadata server;
- multi-worker, when `TF_CONFIG` names more than one worker;
- mirrored, when this process sees more than one GPU (or, without GPUs,
  more than one logical CPU device, as a test that splits the CPU does);
- the default strategy otherwise: no replicas, no copies, the same code
  path as no strategy at all.

Batch sizes are per replica: the pipelines batch `per_replica *
num_replicas` examples, and each step's gradient is the mean over that
global batch, so the learning rate that suits one device suits N as it
stands only if the per-replica batch stays the same (the README's
"Scaling out" says how to scale it).
"""

import dataclasses
import json
import os

import tensorflow as tf

from tfx_transfer.config import STRATEGIES
from tfx_transfer.progress import warn

# Environment variables that say a TPU is attached (Colab, Cloud TPU VMs, GKE).
TPU_ENVIRONMENT = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A strategy and where this process stands in it.

    Args:
        name: str. One of `STRATEGIES` except "auto": what was chosen.
        strategy: tf.distribute.Strategy. Build models, optimizers and
            metrics inside `strategy.scope()`.
        reason: str. Why it was chosen (for the log).
        is_chief: bool. Whether this process writes the run directory.
        worker_index: int. This worker's index (0 on one machine).
        num_workers: int. Workers in the cluster (1 on one machine).

    Example:

    >>> distribution = create("auto")
    >>> with distribution.strategy.scope():
    ...     model = build_model()
    """

    name: str
    strategy: tf.distribute.Strategy
    reason: str = ""
    is_chief: bool = True
    worker_index: int = 0
    num_workers: int = 1

    @property
    def num_replicas(self):
        return int(self.strategy.num_replicas_in_sync)

    def global_batch(self, per_replica_batch):
        """Examples per step over all replicas."""
        return per_replica_batch * self.num_replicas

    def describe(self, per_replica_batch):
        """One log line: strategy, why, replicas and the global batch."""
        workers = f", {self.num_workers} workers" if self.num_workers > 1 else ""
        return (
            f"Strategy: {self.name} ({self.reason}): {self.num_replicas} replica(s){workers}, "
            f"global batch {self.global_batch(per_replica_batch)} "
            f"({per_replica_batch} per replica)."
        )


def cluster_spec(tf_config=None):
    """The parsed `TF_CONFIG` (the environment's when None); {} when unset.

    Raises:
        ValueError: `TF_CONFIG` is not JSON, or has no cluster/task.
    """
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        return {}
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}. Received: {text!r}") from error
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise ValueError(f'TF_CONFIG must hold a "cluster" mapping. Received: {text!r}')
    return spec


def num_workers(spec):
    """Chief plus workers named in a parsed `TF_CONFIG`."""
    cluster = spec.get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def is_chief(spec):
    """Whether this task writes: the chief, or worker 0 when there is no chief."""
    task = spec.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if spec.get("cluster", {}).get("chief"):
        return kind == "chief"
    return kind == "worker" and index == 0


def resolve(requested, tpu=None, tf_config=None, environment=None):
    """The strategy `auto` stands for here, with the reason; others as given.

    Args:
        requested: str. One of `STRATEGIES`.
        tpu: str or None. The `--tpu` address ("local" on a TPU VM).
        tf_config: str or None. `TF_CONFIG`'s text; None reads it.
        environment: mapping or None. Environment variables; None is
            `os.environ`.

    Returns:
        A tuple (name, reason).

    Example:

    >>> resolve("auto", tf_config="")
    ('default', 'auto: one device')
    """
    if requested not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: {requested!r}")
    if requested != "auto":
        return requested, "asked for"
    environment = os.environ if environment is None else environment
    hints = [name for name in TPU_ENVIRONMENT if environment.get(name)]
    if tpu or hints:
        return "tpu", f"auto: {'--tpu' if tpu else hints[0]} is set"
    workers = num_workers(cluster_spec(tf_config))
    if workers > 1:
        return "multiworker", f"auto: TF_CONFIG names {workers} workers"
    devices = replica_devices()
    if len(devices) > 1:
        return "mirrored", f"auto: {len(devices)} devices ({', '.join(devices)})"
    return "default", "auto: one device"


def replica_devices():
    """The devices mirrored training would use: every GPU, else every logical CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def tpu_resolver(tpu):
    """A `TPUClusterResolver` for `--tpu` ("local", a gRPC address, a name, or None)."""
    address = None if tpu in (None, "") else tpu
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)


def create(requested="auto", tpu=None):
    """Creates the strategy a run trains under.

    Call it before anything else touches TensorFlow's devices: a
    multi-worker strategy must configure the collective ops before any
    op runs, and a TPU system must be initialised before it is used.

    Args:
        requested: str. One of `STRATEGIES`.
        tpu: str or None. The TPU to connect to, for "tpu" (and "auto").

    Returns:
        A `Distribution`.

    Example:

    >>> create("default").num_replicas
    1
    """
    name, reason = resolve(requested, tpu)
    if name == "default":
        return Distribution(name, tf.distribute.get_strategy(), reason)
    if name == "mirrored":
        devices = replica_devices()
        _check_cpu_kernels(devices)
        return Distribution(name, tf.distribute.MirroredStrategy(devices), reason)
    if name == "multiworker":
        spec = cluster_spec()
        if num_workers(spec) < 1 or "task" not in spec:
            raise ValueError(
                "--strategy multiworker needs TF_CONFIG with a cluster and this process's "
                'task, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}.'
            )
        # Listing logical devices would start the runtime, which must not
        # run before the collectives are configured: physical ones only.
        _check_cpu_kernels([] if tf.config.list_physical_devices("GPU") else ["CPU"])
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        from tfx_transfer import multiworker  # Keras internals, needed only here.

        multiworker.patch_keras_trainer()
        task = spec["task"]
        return Distribution(name, strategy, reason, is_chief=is_chief(spec),
                            worker_index=int(task.get("index", 0)), num_workers=num_workers(spec))
    resolver = tpu_resolver(tpu)
    if tpu not in (None, "", "local"):
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return Distribution(name, tf.distribute.TPUStrategy(resolver), reason)


def _check_cpu_kernels(devices):
    """Warns when replicas on CPUs run oneDNN (`tfx_transfer.startup.prepare_replicas`)."""
    if any("CPU" in device for device in devices) and (
            os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0"):
        warn("replicas on CPU devices with oneDNN on: a replica's empty last "
             "batch breaks oneDNN's Conv2D. Set TF_ENABLE_ONEDNN_OPTS=0 before TensorFlow "
             "starts (the command line does).")


def with_global_batch(config, distribution):
    """`config` with `data.batch_size` scaled from per replica to all replicas.

    The default strategy returns `config` itself: one device, nothing changes.
    """
    if distribution.num_replicas == 1:
        return config
    data = dataclasses.replace(
        config.data, batch_size=distribution.global_batch(config.data.batch_size))
    return dataclasses.replace(config, data=data)


def distribute_datasets(datasets, distribution, batch_size, train_size):
    """The run's datasets as `distribution` needs them (the same object on one device).

    - Several workers: each split is auto-sharded by element (DATA). FILE
      sharding needs a file-reading source (TFRecord files); these
      pipelines read images and tables from a tensor of paths or rows,
      which tf.data can only shard by element.
    - TPU: every training batch holds exactly `batch_size` examples, the
      last partial one dropped: XLA compiles one program per input shape.

    Args:
        datasets: `tfx_transfer.tasks.base.Datasets`.
        distribution: `Distribution`.
        batch_size: int. The global batch size of the pipelines.
        train_size: int. Examples in the training split.

    Returns:
        A `Datasets`.

    Raises:
        ValueError: on a TPU, the training split is smaller than one global batch.

    Example:

    >>> datasets = distribute_datasets(datasets, create("auto"), 256, len(train))
    """
    if distribution.num_workers > 1:
        datasets = dataclasses.replace(datasets, **{
            split: shard_by_data(getattr(datasets, split)) for split in ("train", "val", "test")})
    if distribution.name == "tpu":
        if train_size < batch_size:
            raise ValueError(
                f"On a TPU every training batch must be full, but the training split holds "
                f"{train_size} examples, fewer than the global batch of {batch_size}: lower "
                f"--batch-size (it is per replica; {distribution.num_replicas} replicas).")
        datasets = dataclasses.replace(
            datasets, train=datasets.train.rebatch(batch_size, drop_remainder=True))
    return datasets


def shard_by_data(dataset):
    """`dataset` set to be auto-sharded by element when a strategy distributes it."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
