"""Cached frozen-backbone features for the head-only stage.

While the backbone is frozen its output never changes, yet the plain Keras
loop runs it forward for every example in every epoch. Here it runs once
over the training data (once per augmented view) and once over the
validation data; the head then trains on the stored features, which on a
CPU costs almost nothing. The head's layers are the classifier's own
layers, called on a new input, so once trained they are already in place
for the later stages and the export.

The cache lives in memory for one run: it is rebuilt from the current
weights and data every time, so it can never be stale.
"""

import keras
import numpy as np
import tensorflow as tf

HEAD_LAYERS = ("head_dropout", "head_hidden", "probabilities")


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
    parts = None
    for _ in range(views):
        for batch in dataset:
            inputs, *targets = batch
            row = (np.asarray(extractor.predict_on_batch(inputs)), *(np.asarray(t) for t in targets))
            parts = [[] for _ in row] if parts is None else parts
            for store, value in zip(parts, row):
                store.append(value)
    return tuple(np.concatenate(store) for store in parts)


def feature_dataset(arrays, batch_size, training, seed=42):
    """Batches stored feature arrays as a tf.data pipeline (reshuffled if training)."""
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    if training:
        dataset = dataset.shuffle(len(arrays[0]), seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def batch_size_of(dataset):
    """Returns the batch size a batched dataset was built with."""
    first = next(iter(dataset))
    return int(tf.shape(tf.nest.flatten(first[1])[0])[0])
