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

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfx_transfer.data.pipeline import batched

HEAD_LAYERS = ("head_dropout", "head_hidden", "probabilities")


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

    Example:

    >>> Caching(views=3, batch_size=32, store=FeatureCache(cache_dir() / "features"),
    ...         key=task.feature_key(data, config, backbone))
    """

    views: int = 1
    batch_size: int = 32
    seed: int = 42
    store: "FeatureCache | None" = None
    key: dict | None = None


def cached_head(model, train_data, val_data, caching):
    """Computes (or loads) the frozen backbone's features; returns the head to train on them.

    Args:
        model: keras.Model. The classifier, ending in the head layers.
        train_data: tf.data.Dataset. The (maybe augmented) training stream.
        val_data: tf.data.Dataset. The validation stream.
        caching: Caching.

    Returns:
        A tuple (head, train features dataset, val features dataset); the
        head's layers are the classifier's own.
    """
    started = time.time()
    extractor, head = split_classifier(model)
    views = caching.views
    if caching.store is None or caching.key is None:
        train = extract(extractor, train_data, views)
        val = extract(extractor, val_data)
    else:
        # Taken now, not when the run started: the weights the head sees.
        fingerprint = weights_fingerprint(extractor)
        train, val = (
            load_or_extract(
                caching.store,
                {**caching.key, "split": split, "views": n, "weights": fingerprint},
                extractor, dataset, n,
            )
            for split, dataset, n in (("train", train_data, views), ("val", val_data, 1))
        )
    print(
        f"Cached backbone features of {len(train[0])} training examples "
        f"({views} view(s)) and {len(val[0])} validation examples in "
        f"{time.time() - started:.0f} s; head-only stages train on them."
    )
    return (
        head,
        feature_dataset(train, caching.batch_size, training=True, seed=caching.seed),
        feature_dataset(val, caching.batch_size, training=False),
    )


def split_classifier(model):
    """Splits a classifier into a feature extractor and a head sharing its layers.

    The classifier must end in the layers `tfx_transfer.heads` builds
    ("head_dropout", an optional "head_hidden", "probabilities"), as every
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
    first = model.get_layer(HEAD_LAYERS[0])
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


def extract(extractor, dataset, views=1):
    """Runs `extractor` over `dataset` `views` times; returns the stored arrays.

    Each pass over a training stream draws fresh augmentations, so `views`
    passes store that many augmented views of every example.

    Args:
        extractor: keras.Model. From `split_classifier`.
        dataset: tf.data.Dataset of (inputs, labels) or (inputs, labels,
            sample weights) batches.
        views: int. Passes over `dataset`.

    Returns:
        A tuple of NumPy arrays: (features, labels) or (features, labels,
        sample weights), one row per example and view.
    """
    forward = _forward_function(extractor, dataset.element_spec[0])
    parts = None
    for _ in range(views):
        for batch in dataset:
            inputs, *targets = batch
            # float32 whatever the precision policy: numpy has no bfloat16.
            row = (np.asarray(forward(inputs), np.float32), *(np.asarray(t) for t in targets))
            parts = [[] for _ in row] if parts is None else parts
            for store, value in zip(parts, row):
                store.append(value)
    return tuple(np.concatenate(store) for store in parts)


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


class FeatureCache:
    """Stored feature arrays on disk, one folder per key, written atomically.

    An entry `<directory>/<key>/` holds one `.npy` file per array and a
    `meta.json` (description, shapes, dtypes, SHA-256 of each array,
    creation time). An entry that is missing a file, does not match its
    checksums or holds the wrong number of arrays is ignored with a
    warning, so the caller computes the features again and overwrites it.

    Args:
        directory: str or Path. Created on the first `save`.

    Example:

    >>> cache = FeatureCache(weights.cache_dir() / "features")
    >>> key = cache.key({"data": "...", "weights": weights_fingerprint(extractor)})
    >>> arrays = cache.load(key)  # None: not stored yet, or broken
    """

    FORMAT = 1  # Bump when the layout changes: old entries then never match.
    META = "meta.json"
    _BROKEN = (OSError, ValueError, KeyError, TypeError, EOFError)

    def __init__(self, directory):
        self.directory = Path(directory)

    def key(self, description):
        """Returns the key of a JSON-able `description`: SHA-256 of its sorted JSON."""
        text = json.dumps([self.FORMAT, description], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def load(self, key):
        """Returns the tuple of arrays stored under `key`, or None (absent or broken)."""
        entry = self.directory / key
        if not entry.exists():
            return None
        try:
            return self._read(entry)
        except self._BROKEN as error:
            print(f"Warning: ignoring broken feature cache entry {entry} "
                  f"({type(error).__name__}: {error}); computing its features again.")
            return None

    def save(self, key, arrays, description):
        """Stores `arrays` under `key`, with `description` in its meta.json.

        Everything is written to a hidden temporary sibling folder that is
        then renamed into place, so a reader never sees half an entry.

        Args:
            key: str. From `key(description)`.
            arrays: sequence of NumPy arrays.
            description: dict. JSON-able; what the features were made from.

        Returns:
            The entry's Path.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        # Hidden and named unlike a key: `load` never takes it for an entry.
        temp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=".tmp",
                                     dir=self.directory))
        try:
            meta = {"description": description, "shapes": [], "dtypes": [], "sha256": [],
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            for index, array in enumerate(arrays):
                array = np.ascontiguousarray(array)
                np.save(temp / f"{index}.npy", array, allow_pickle=False)
                meta["shapes"].append(list(array.shape))
                meta["dtypes"].append(str(array.dtype))
                meta["sha256"].append(hashlib.sha256(array).hexdigest())
            (temp / self.META).write_text(json.dumps(meta, indent=2))
            self._publish(temp, self.directory / key)
        finally:
            shutil.rmtree(temp, ignore_errors=True)  # Gone already if published.
        return self.directory / key

    def _read(self, entry):
        meta = json.loads((entry / self.META).read_text())
        if self.key(meta["description"]) != entry.name:
            raise ValueError("its description does not match its key")
        count = len(meta["shapes"])
        if len(list(entry.glob("*.npy"))) != count:
            raise ValueError(f"meta.json lists {count} arrays; the folder holds more or fewer")
        arrays = []
        for index, (shape, dtype, digest) in enumerate(
            zip(meta["shapes"], meta["dtypes"], meta["sha256"], strict=True)
        ):
            # No pickles: a cache folder must not be a way to run code.
            array = np.load(entry / f"{index}.npy", allow_pickle=False)
            if list(array.shape) != shape or str(array.dtype) != dtype:
                raise ValueError(
                    f"array {index} is {array.dtype}{array.shape}, not {dtype}{shape}"
                )
            # Renames are atomic but not durable: a power cut can leave a
            # truncated file behind the rename, which this catches.
            if hashlib.sha256(np.ascontiguousarray(array)).hexdigest() != digest:
                raise ValueError(f"array {index} does not match its SHA-256")
            arrays.append(array)
        return tuple(arrays)

    def _publish(self, temp, entry):
        for attempt in range(2):
            try:
                os.rename(temp, entry)  # Atomic; refused while `entry` exists.
                return
            except OSError:
                if not entry.is_dir():
                    raise
            if attempt or self._is_valid(entry):
                return  # A concurrent writer stored the same features first.
            # A broken entry, which `load` refused: moved aside, then replaced.
            stale = entry.with_name(f".{entry.name[:12]}.{uuid.uuid4().hex}.stale")
            with contextlib.suppress(FileNotFoundError):
                os.rename(entry, stale)
            shutil.rmtree(stale, ignore_errors=True)

    def _is_valid(self, entry):
        try:
            self._read(entry)
        except self._BROKEN:
            return False
        return True


def load_or_extract(cache, description, extractor, dataset, views=1):
    """Returns `extract(extractor, dataset, views)`, from `cache` when it holds them.

    Args:
        cache: FeatureCache.
        description: dict. JSON-able; everything the features depend on,
            including the extractor's `weights_fingerprint`.
        extractor: keras.Model. From `split_classifier`.
        dataset: tf.data.Dataset. As for `extract`.
        views: int. As for `extract`.

    Returns:
        The tuple of arrays `extract` returns.
    """
    key = cache.key(description)
    what = f"{description.get('split', 'the')} features"
    arrays = cache.load(key)
    if arrays is not None:
        print(f"Loaded {what} from the feature cache {cache.directory} (key {key[:12]}).")
        return arrays
    arrays = extract(extractor, dataset, views)
    try:
        cache.save(key, arrays, description)
        print(f"Saved {what} to the feature cache {cache.directory} (key {key[:12]}).")
    except OSError as error:
        # A full or read-only disk costs the next run time, not this one its result.
        print(f"Warning: could not write the feature cache {cache.directory}: {error}")
    return arrays
