"""Cached backbone features: same head, same predictions, far less compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import lite0_classifier
from tfx_transfer import features, stages
from tfx_transfer.config import ModelConfig, StageConfig

SIZE = 64


def classifier(hidden_units=0, dropout=0.0):
    config = ModelConfig(dropout=dropout, hidden_units=hidden_units)
    return lite0_classifier(size=SIZE, model_config=config)


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(n) % 3, 3)
    return x, y


@pytest.mark.parametrize("hidden_units", [0, 16])
def test_split_classifier_computes_the_same_function(hidden_units):
    model = classifier(hidden_units).model
    extractor, head = features.split_classifier(model)
    x, _ = data(4)
    np.testing.assert_allclose(head(extractor(x)), model(x), atol=1e-6)
    assert extractor.output_shape == (None, 1280)
    # The head is the classifier's own layers, not a copy.
    assert {id(w) for w in head.weights} <= {id(w) for w in model.weights}


def test_cached_and_plain_head_stages_train_the_same_head(tmp_path):
    x, y = data()
    vx, vy = data(12, seed=1)
    # One batch per epoch, no dropout: the order examples come in cannot
    # matter, so both loops must land on the same weights.
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    val = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(len(vx))
    head_stage = [StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3, patience=5)]
    predictions = []
    for views in (0, 1):
        keras.utils.set_random_seed(0)
        model = classifier()
        caching = features.Caching(views=views, batch_size=len(x)) if views else None
        (result,) = stages.run_stages(
            model, head_stage, train, val, tmp_path / f"views{views}",
            objective=stages.Objective(), caching=caching, verbose=0,
        )
        assert result.trainable_weights == 2 and result.epochs_run == 3
        predictions.append(model.model.predict(vx, verbose=0))
    np.testing.assert_allclose(predictions[0], predictions[1], atol=1e-5)


def test_extract_stores_one_row_per_example_and_view():
    model = classifier().model
    extractor, _ = features.split_classifier(model)
    x, y = data(10)
    weights = np.linspace(0, 1, 10).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(4)
    feats, labels, stored_weights = features.extract(extractor, dataset, views=2)
    assert feats.shape == (20, 1280) and labels.shape == (20, 3)
    np.testing.assert_array_equal(stored_weights, np.concatenate([weights, weights]))
    np.testing.assert_allclose(feats[:10], feats[10:], atol=1e-6)
    # A worker whose share of the batches is empty gets zero rows of each array.
    empty = features.extract(extractor, dataset.take(0))
    assert [a.shape for a in empty] == [(0, 1280), (0, 3), (0,)]
    assert [a.dtype for a in empty] == [np.float32, labels.dtype, stored_weights.dtype]


def test_extract_shows_progress_in_examples_per_second(capsys):
    extractor, _ = features.split_classifier(classifier().model)
    x, y = data(10)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    quiet = features.extract(extractor, dataset)
    assert capsys.readouterr().out == ""
    shown = features.extract(extractor, dataset, views=2, progress="training")
    out = capsys.readouterr().out
    assert "Backbone features of training examples (2 augmented views):" in out
    assert "6/6" in out and "examples/s" in out
    np.testing.assert_allclose(shown[0][:10], quiet[0], atol=1e-6)
    # A stream of unknown length still ends its bar.
    unknown = dataset.filter(lambda *batch: True)
    features.extract(extractor, unknown, progress=True)
    assert "examples/s" in capsys.readouterr().out
