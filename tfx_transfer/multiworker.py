"""Multi-worker training on Keras' own `fit`: two marked workarounds, and where each worker writes.

Under a `MultiWorkerMirroredStrategy` with one device per worker, Keras
3.15's TensorFlow trainer fails before the first step (keras#20585):

1. `_maybe_symbolic_build` takes the first distributed batch and reduces
   it with `strategy.reduce("MEAN", batch, axis=None)`, which in
   multi-worker mode returns per-replica values that `_symbolic_build`
   cannot turn into symbolic inputs ("Attempt to convert a value
   (PerReplica...)").
2. `reduce_per_replica`, which averages each step's logs over workers,
   calls `strategy.reduce("MEAN", value, axis=0)` on scalar losses and
   metrics ("Invalid reduction dimension 0 for input with 0 dimensions").

`patch_keras_trainer` fixes both where they are, and nothing else: the
symbolic build gets this worker's local batch (only its shapes and dtypes
are read), and scalars are averaged with `axis=None`. Each patch applies
only in multi-worker mode, so single-process runs keep Keras' own code.
Both are checked by `tests/test_multiworker.py`, which trains two local
workers to identical weights; remove them once Keras fixes the bug.

Only the chief writes the run directory (`worker_run_dir`). The other
workers write into a temporary folder that starts as a copy of the chief's
run directory, so a relaunched worker resumes from the same finished
stages and the same mid-stage backup as the chief: training is
synchronous, so the chief's state is every worker's state.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

_PATCHED = {}


def patch_keras_trainer():
    """Applies the two multi-worker fixes to Keras' TensorFlow trainer (idempotent).

    Raises:
        RuntimeError: Keras is not 3.x, where these internals live.
    """
    if _PATCHED:
        return
    if not keras.__version__.startswith("3."):
        raise RuntimeError(f"The multi-worker fixes target Keras 3; found {keras.__version__}.")
    trainer = tf_trainer.TensorFlowTrainer
    original_build, original_reduce = trainer._maybe_symbolic_build, tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not _multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(
                lambda value: strategy.experimental_local_results(value)[0]
                if isinstance(value, tf.distribute.DistributedValues) else value,
                next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and _multi_worker(strategy):
            return tf.nest.map_structure(
                lambda value: strategy.reduce(
                    "MEAN", value, axis=None if value.shape.rank == 0 else 0),
                values)
        return original_reduce(values, strategy, reduction)

    trainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _PATCHED.update(build=original_build, reduce=original_reduce)


def _multi_worker(strategy):
    return tf_trainer._collective_all_reduce_multi_worker(strategy)


def worker_run_dir(shared, distribution):
    """The folder this worker writes: the run directory itself only for the chief.

    Args:
        shared: Path. The run directory (the chief's).
        distribution: `tfx_transfer.distribute.Distribution`.

    Returns:
        A Path: `shared` for the chief; for any other worker, a temporary
        folder (removed at exit) holding a copy of what `shared` holds now.
    """
    if distribution.is_chief:
        return shared
    own = Path(tempfile.mkdtemp(prefix=f"tfx_transfer-worker{distribution.worker_index}-"))
    atexit.register(shutil.rmtree, own, ignore_errors=True)
    target = own / shared.name
    if shared.is_dir():
        shutil.copytree(shared, target)
    else:
        target.mkdir()
    return target

