"""Cached frozen-backbone features for the head-only stage.

While the backbone is frozen its output never changes, yet the plain Keras
loop runs it forward for every example in every epoch. Here it runs once
over the training data (once per augmented view) and once over the
validation data; the head then trains on the stored features, which on a
CPU costs almost nothing. The head's layers are the classifier's own
layers, called on a new input, so once trained they are already in place
for the later stages and the export.

The features can also be kept on disk (`FeatureCache`), so a second run on
the same data (another head learning rate, or a resumed run) skips the
backbone. An entry's key covers everything its features depend on: the
extractor's weights and architecture (`weights_fingerprint`), the data and
the preprocessing outside the model, so a stale entry is never used.
"""

import dataclasses
import hashlib
import json
import time

import keras
import numpy as np
import tensorflow as tf

from tfx_transfer.data.pipeline import batched
from tfx_transfer.feature_store import FeatureCache
from tfx_transfer.progress import bar, say, warn

HEAD_LAYERS = ("head_standardize", "head_dropout", "head_hidden", "probabilities")


@dataclasses.dataclass(frozen=True)
class Caching:
    """How head-only stages train on cached backbone features.

    Args:
        views: int. Passes over the training stream; with augmentation
            each pass stores another augmented view of every example.
        batch_size: int. Batch size of the cached-feature pipelines.
        seed: int. Their shuffle seed.
        store: FeatureCache or None. Also keep the features on disk, so a
            later run with the same data, preprocessing and backbone
            weights loads them instead.
        key: dict or None. JSON-able description of the data and the
            preprocessing outside the model (a task's `feature_key`); the
            store is used only when this is given too.
        progress: bool. Show a progress bar (examples per second) while
            the backbone runs over the data.
        workers: `tfx_transfer.distribute.Distribution` or None. With
            several workers, each runs the backbone over its own share of
            the batches and every worker ends with all the features.

    Example:

    >>> Caching(views=3, batch_size=32, store=FeatureCache(cache_dir() / "features"),
    ...         key=task.feature_key(data, config, backbone))
    """

    views: int = 1
    batch_size: int = 32
    seed: int = 42
    store: "FeatureCache | None" = None
    key: dict | None = None
    workers: object = None
    progress: bool = False


@dataclasses.dataclass(frozen=True)
class CachedHead:
    """The head to train on cached features, and the features themselves.

    Args:
        head: keras.Model. Features -> probabilities; its layers are the
            classifier's own.
        train: tf.data.Dataset. Batches of the training features, reshuffled.
        val: tf.data.Dataset. Batches of the validation features, in order.
        train_arrays: tuple of NumPy arrays. (features, labels[, weights])
            of every training example and view.
        val_arrays: tuple of NumPy arrays. The same for validation.
        views: int. Passes over the training stream in `train_arrays`.
    """

    head: keras.Model
    train: object
    val: object
    train_arrays: tuple
    val_arrays: tuple
    views: int = 1


def cached_head(model, train_data, val_data, caching):
    """Computes (or loads) the frozen backbone's features; returns the head to train on them.

    Args:
        model: keras.Model. The classifier, ending in the head layers.
        train_data: tf.data.Dataset. The (maybe augmented) training stream.
        val_data: tf.data.Dataset. The validation stream.
        caching: Caching.

    Returns:
        A `CachedHead`.
    """
    started = time.time()
    extractor, head = split_classifier(model)
    views = caching.views
    if caching.store is None or caching.key is None:
        train = extract(extractor, train_data, views, caching.workers,
                        progress=caching.progress and "train")
        val = extract(extractor, val_data, workers=caching.workers,
                      progress=caching.progress and "val")
    else:
        # Taken now, not when the run started: the weights the head sees.
        fingerprint = weights_fingerprint(extractor)
        train, val = (
            load_or_extract(
                caching.store,
                {**caching.key, "split": split, "views": n, "weights": fingerprint},
                extractor, dataset, n, progress=caching.progress,
            )
            for split, dataset, n in (("train", train_data, views), ("val", val_data, 1))
        )
    shared = (f", the backbone pass shared by {caching.workers.num_workers} workers"
              if _sharded(caching.workers) else "")
    say(
        f"Cached backbone features of {len(train[0])} training examples "
        f"({views} view(s)) and {len(val[0])} validation examples in "
        f"{time.time() - started:.0f} s{shared}; head-only stages train on them."
    )
    return CachedHead(
        head,
        feature_dataset(train, caching.batch_size, training=True, seed=caching.seed),
        feature_dataset(val, caching.batch_size, training=False),
        train,
        val,
        views,
    )


def split_classifier(model):
    """Splits a classifier into a feature extractor and a head sharing its layers.

    The classifier must end in the layers `tfx_transfer.heads` builds
    ("head_standardize", "head_dropout", an optional "head_hidden",
    "probabilities"), as every
    task's does.

    Args:
        model: keras.Model. A functional classifier.

    Returns:
        A tuple (extractor, head) of `keras.Model`s with
        `head(extractor(x))` computing `model(x)`. Training `head` trains
        the classifier's own head layers.

    Example:

    >>> extractor, head = split_classifier(model)
    >>> np.allclose(head(extractor(x)), model(x))
    True
    """
    names = {layer.name for layer in model.layers}
    first = model.get_layer(next(name for name in HEAD_LAYERS if name in names))
    # The tensor that enters the head in the classifier's own graph; nodes
    # added by earlier splits come after it.
    features = first._inbound_nodes[0].input_tensors[0]
    extractor = keras.Model(model.input, features, name="feature_extractor")
    inputs = keras.Input(features.shape[1:], name="features")
    x = inputs
    for name in HEAD_LAYERS:
        if any(layer.name == name for layer in model.layers):
            x = model.get_layer(name)(x)
    return extractor, keras.Model(inputs, x, name="head")


def extract(extractor, dataset, views=1, workers=None, progress=False):
    """Runs `extractor` over `dataset` `views` times; returns the stored arrays.

    Each pass over a training stream draws fresh augmentations, so `views`
    passes store that many augmented views of every example.

    Args:
        extractor: keras.Model. From `split_classifier`.
        dataset: tf.data.Dataset of (inputs, labels) or (inputs, labels,
            sample weights) batches.
        views: int. Passes over `dataset`.
        workers: `tfx_transfer.distribute.Distribution` or None. With
            several workers, worker i runs every i-th batch and all of them
            receive every worker's rows (worker 0's first), so each ends
            with the same arrays.
        progress: bool or str. Show a Keras progress bar (examples per
            second); a string names the split in its title.

    Returns:
        A tuple of NumPy arrays: (features, labels) or (features, labels,
        sample weights), one row per example and view.
    """
    if _sharded(workers):
        dataset = dataset.shard(workers.num_workers, workers.worker_index)
    forward = _forward_function(extractor, dataset.element_spec[0])
    parts = None
    bar = _progress_bar(dataset, views, progress) if progress else None
    started, step, examples = time.time(), 0, 0
    for _ in range(views):
        for batch in dataset:
            inputs, *targets = batch
            if bar is not None:
                step, examples = step + 1, examples + int(targets[0].shape[0])
                bar.update(step, [("examples/s", examples / max(time.time() - started, 1e-6))])
            # float32 whatever the precision policy: numpy has no bfloat16.
            row = (np.asarray(forward(inputs), np.float32), *(np.asarray(t) for t in targets))
            parts = [[] for _ in row] if parts is None else parts
            for store, value in zip(parts, row):
                store.append(value)
    if parts is None:
        # No batch at all (a worker's share can be empty): zero rows of each,
        # shaped from the traced signature (oneDNN's Conv2D breaks on an
        # empty batch, so the model is not run on one).
        shape = forward.get_concrete_function().output_shapes
        parts = [[np.zeros((0, *shape[1:]), np.float32)]] + [
            [np.zeros((0, *spec.shape[1:]), spec.dtype.as_numpy_dtype)]
            for spec in dataset.element_spec[1:]]
    if bar is not None and bar.target is None:
        bar.update(step, finalize=True)
    arrays = tuple(np.concatenate(store) for store in parts)
    return gather_from_workers(arrays, workers.strategy) if _sharded(workers) else arrays


def _progress_bar(dataset, views, split):
    """A Keras progress bar over the batches of `views` passes (a line when not a terminal)."""
    batches = int(dataset.cardinality())
    name = split if isinstance(split, str) else "the"
    title = (f"Backbone features of {name} examples"
             + (f" ({views} augmented views)" if views > 1 else "") + ":")
    return bar(batches * views if batches >= 0 else None, title, unit_name="batch",
               stateful_metrics=["examples/s"])


def _sharded(workers):
    return workers is not None and workers.num_workers > 1


def gather_from_workers(arrays, strategy):
    """Every worker's rows of `arrays`, concatenated in worker order, on every worker.

    Args:
        arrays: tuple of NumPy arrays with the same trailing shape on every
            worker; the number of rows may differ (or be 0).
        strategy: tf.distribute.MultiWorkerMirroredStrategy.

    Returns:
        A tuple of NumPy arrays: worker 0's rows, then worker 1's, and so on.
    """
    # Replica ids run worker by worker; only each worker's first replica
    # contributes rows, so a worker with several devices is not counted twice.
    per_worker = len(strategy.extended.worker_devices)

    def gather(array):
        rows = tf.constant(array)
        values = strategy.experimental_distribute_values_from_function(
            lambda context: rows if context.replica_id_in_sync_group % per_worker == 0
            else rows[:0])
        return strategy.gather(values, axis=0).numpy()

    return tuple(gather(array) for array in arrays)


def _forward_function(extractor, input_spec):
    """The extractor's forward pass as a tf.function traced once per input spec.

    A batch dimension of None covers the last, smaller batch, and the
    function is kept on the extractor, so the training views and the
    validation pass share one trace (on a CPU a trace costs as much as
    dozens of batches of the head).
    """
    functions = extractor.__dict__.setdefault("_tfx_forward", {})
    key = repr(input_spec)
    if key not in functions:
        functions[key] = tf.function(
            lambda inputs: extractor(inputs, training=False), input_signature=[input_spec]
        )
    return functions[key]


def feature_dataset(arrays, batch_size, training, seed=42):
    """Batches stored feature arrays as a tf.data pipeline (reshuffled if training)."""
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    return batched(dataset, batch_size, shuffle_seed=seed if training else None)


def weights_fingerprint(model):
    """Returns a SHA-256 of a model's architecture and every weight's value.

    Args:
        model: keras.Model. Usually the extractor from `split_classifier`;
            its in-model preprocessing layers are part of its architecture.

    Returns:
        The hex digest, a str of 64 characters.

    Example:

    >>> before = weights_fingerprint(extractor)
    >>> extractor.weights[0].assign(extractor.weights[0] + 1.0)
    >>> weights_fingerprint(extractor) == before
    False
    """
    digest = hashlib.sha256(_architecture(model).encode("utf-8"))
    for variable in sorted(model.weights, key=lambda v: v.path):
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        digest.update(json.dumps([variable.path, value.shape, str(value.dtype)]).encode())
        digest.update(value)
    return digest.hexdigest()


def _architecture(model):
    # Keras numbers auto-named layers per process ("cast", then "cast_1"), so
    # the same model built twice in one process names them differently. Each
    # layer name becomes its order of first appearance: a renaming, which
    # keeps every difference of structure or configuration.
    config = json.loads(model.to_json())
    names = {}

    def collect(node):
        if isinstance(node, dict):
            layer = node.get("config")
            if isinstance(layer, dict) and isinstance(layer.get("name"), str):
                names.setdefault(layer["name"], f"#{len(names)}")
            node = list(node.values())
        for child in node if isinstance(node, list) else ():
            collect(child)

    def rename(node):
        if isinstance(node, dict):
            return {key: rename(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rename(value) for value in node]
        return names.get(node, node) if isinstance(node, str) else node

    collect(config)
    return json.dumps(rename(config), sort_keys=True)


def load_or_extract(cache, description, extractor, dataset, views=1, progress=False):
    """Returns `extract(extractor, dataset, views)`, from `cache` when it holds them.

    Args:
        cache: FeatureCache.
        description: dict. JSON-able; everything the features depend on,
            including the extractor's `weights_fingerprint`.
        extractor: keras.Model. From `split_classifier`.
        dataset: tf.data.Dataset. As for `extract`.
        views: int. As for `extract`.
        progress: bool. As for `extract`.

    Returns:
        The tuple of arrays `extract` returns.
    """
    key = cache.key(description)
    what = f"{description.get('split', 'the')} features"
    arrays = cache.load(key)
    if arrays is not None:
        say(f"Loaded {what} from the feature cache {cache.directory} (key {key[:12]}).")
        return arrays
    arrays = extract(extractor, dataset, views, progress=progress and what.split()[0])
    try:
        cache.save(key, arrays, description)
        say(f"Saved {what} to the feature cache {cache.directory} (key {key[:12]}).")
    except OSError as error:
        # A full or read-only disk costs the next run time, not this one its result.
        warn(f"could not write the feature cache {cache.directory}: {error}")
    return arrays
