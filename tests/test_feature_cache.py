"""The on-disk feature cache: hits skip the backbone, any change misses, writes are atomic."""

import dataclasses
import threading

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import conftest
from conftest import write_colour_images
from tfx_transfer import backbones, features, files, stages, tasks, train
from tfx_transfer.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, StageConfig
from tfx_transfer.data import Split, read_image_folder
from tfx_transfer.data.conll import Sentence, TokenData
from tfx_transfer.data.splits import LabelledData
from tfx_transfer.tasks import get_task

images, text, tokens = get_task("images"), get_task("text"), get_task("tokens")

SIZE = 64


def lite0_classifier():
    return conftest.lite0_classifier(size=SIZE, model_config=ModelConfig(dropout=0.0))


def pixels(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")
    return x, keras.utils.to_categorical(np.arange(n) % 3, 3)


@pytest.fixture
def calls(monkeypatch):
    """Counts backbone passes (`features.extract`) and keeps what each lookup returned."""
    counts = {"extract": 0, "returned": []}
    extract, load_or_extract = features.extract, features.load_or_extract

    def counting_extract(*args, **kwargs):
        counts["extract"] += 1
        return extract(*args, **kwargs)

    def recording_load_or_extract(*args, **kwargs):
        arrays = load_or_extract(*args, **kwargs)
        counts["returned"].append(arrays)
        return arrays

    monkeypatch.setattr(features, "extract", counting_extract)
    monkeypatch.setattr(features, "load_or_extract", recording_load_or_extract)
    return counts


def test_a_second_head_stage_loads_the_same_features_and_trains_the_same_head(
    tmp_path, calls, capsys
):
    x, y = pixels(24, seed=0)
    vx, vy = pixels(9, seed=1)
    train_data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    val_data = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(8)
    cache = features.FeatureCache(tmp_path / "features")
    head = [StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=2, patience=5)]

    def head_stage(run, perturb=False):
        keras.utils.set_random_seed(0)
        classifier = lite0_classifier()
        model, backbone = classifier.model, classifier.backbone
        # The same starting head every time: the seed alone does not repeat
        # the head's initial weights between builds in one process.
        probabilities = model.get_layer("probabilities")
        rng = np.random.default_rng(0)
        probabilities.set_weights(
            [rng.normal(0, 0.05, w.shape).astype("float32") for w in probabilities.weights]
        )
        if perturb:
            kernel = backbone.get_layer("top_conv").kernel
            kernel.assign(kernel + 1e-3)
        caching = features.Caching(
            views=1, batch_size=8, store=cache, key={"data": "pixels 24+9, seeds 0 and 1"}
        )
        stages.run_stages(
            classifier, head, train_data, val_data, tmp_path / run,
            objective=stages.Objective(), caching=caching, verbose=0,
        )
        return model.predict(vx, verbose=0)

    missed = head_stage("first")
    assert calls["extract"] == 2  # train and val
    assert "Saved train features to the feature cache" in capsys.readouterr().out

    hit = head_stage("second")
    assert calls["extract"] == 2  # The backbone did not run again.
    out = capsys.readouterr().out
    assert f"Loaded train features from the feature cache {cache.directory}" in out
    assert "Loaded val features from the feature cache" in out
    first, second = calls["returned"][:2], calls["returned"][2:]
    for computed, loaded in zip(first, second, strict=True):
        for a, b in zip(computed, loaded, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(missed, hit)

    # Other backbone weights: a miss, never the stale entry.
    head_stage("perturbed", perturb=True)
    assert calls["extract"] == 4
    assert len(list(cache.directory.iterdir())) == 4


def test_weights_fingerprint_is_stable_and_sees_one_changed_kernel():
    first, other = lite0_classifier().model, lite0_classifier()
    second, backbone = other.model, other.backbone
    before = features.weights_fingerprint(features.split_classifier(first)[0])
    extractor = features.split_classifier(second)[0]
    assert features.weights_fingerprint(extractor) == before
    kernel = backbone.get_layer("top_conv").kernel
    kernel.assign(kernel + 1e-6)
    assert features.weights_fingerprint(extractor) != before


def test_image_key_changes_with_one_image_one_label_the_size_or_augmentation(tmp_path):
    root = write_colour_images(tmp_path / "colours", per_class=4, size=16)
    config = RunConfig(
        data=DataConfig(path=str(root), image_size=32, val_fraction=0.25, test_fraction=0.25)
    )
    config = tasks.resolve(config)

    def key(config, data=None):
        data = data or read_image_folder(root, 0.25, 0.25, config.data.seed)
        return features.FeatureCache(tmp_path).key(
            images.feature_key(data, config, images.prepare_backbone(config))
        )

    base = key(config)
    assert key(config) == base
    bigger = dataclasses.replace(config, data=dataclasses.replace(config.data, image_size=48))
    assert key(bigger) != base
    augment = dataclasses.replace(config, augment=AugmentConfig(rotation=0.1))
    assert key(augment) != base

    data = read_image_folder(root, 0.25, 0.25, config.data.seed)
    labels = list(data.splits["train"].labels)
    labels[0] = (labels[0] + 1) % 3
    relabelled = Split(data.splits["train"].items, tuple(labels))
    splits = {**data.splits, "train": relabelled}
    assert key(config, dataclasses.replace(data, splits=splits)) != base

    # Same file names, one file's pixels changed.
    image = data.splits["train"].items[0]
    Image.fromarray(np.zeros((16, 16, 3), "uint8")).save(image)
    assert key(config) != base


def tiny_text_backbone(lowercase=True, extra_word="paris"):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", extra_word]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=16)
    spec = backbones.get_text_backbone_spec("minilm_l6")
    return backbones.TextBackbone(spec, "test", None, preprocessor)


def test_text_and_token_keys_cover_texts_tags_and_the_tokenizer():
    config = tasks.resolve(RunConfig(task="text"))
    texts = LabelledData(("a", "b"), {"train": Split(("the cat", "paris"), (0, 1)),
                                       "val": Split(("a cat",), (0,))})
    sentences = TokenData(("O", "B-loc", "I-loc"), {
        "train": [Sentence(("the", "cat"), ("O", "O"), "t:1")],
        "val": [Sentence(("Paris",), ("B-loc",), "v:1")],
    })
    base = tiny_text_backbone()
    text_key = text.feature_key(texts, config, base)
    token_key = tokens.feature_key(sentences, config, base)
    assert text_key == text.feature_key(texts, config, tiny_text_backbone())
    assert text_key != token_key
    for other in (tiny_text_backbone(lowercase=False), tiny_text_backbone(extra_word="rome")):
        assert text.feature_key(texts, config, other) != text_key
        assert tokens.feature_key(sentences, config, other) != token_key
    retagged = dataclasses.replace(sentences, splits={
        **sentences.splits, "val": [Sentence(("Paris",), ("O",), "v:1")]})
    assert tokens.feature_key(retagged, config, base) != token_key
    shorter = dataclasses.replace(config, data=dataclasses.replace(config.data, batch_size=4))
    assert text.feature_key(texts, shorter, base) != text_key


def small_extractor():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def small_dataset():
    x = np.arange(40, dtype="float32").reshape(10, 4)
    return tf.data.Dataset.from_tensor_slices((x, np.arange(10) % 2)).batch(4)


def test_a_save_that_fails_midway_leaves_nothing_behind(tmp_path, monkeypatch, capsys, calls):
    cache = features.FeatureCache(tmp_path / "features")
    description = {"data": "small"}
    key = cache.key(description)
    save, written = np.save, []

    def save_one_then_fail(*args, **kwargs):
        if written:
            raise OSError(28, "No space left on device")
        written.append(args[0])
        save(*args, **kwargs)

    monkeypatch.setattr(np, "save", save_one_then_fail)
    arrays = (np.ones((10, 3), "float32"), np.arange(10))
    with pytest.raises(OSError, match="No space"):
        cache.save(key, arrays, description)
    assert written and cache.load(key) is None
    assert list(cache.directory.iterdir()) == []  # No half entry, no temporary folder.

    # Training goes on with the computed features; the next run computes them again.
    written.clear()
    computed = features.load_or_extract(cache, description, small_extractor(), small_dataset())
    assert len(computed) == 2 and calls["extract"] == 1
    assert "Warning: could not write the feature cache" in capsys.readouterr().err
    assert list(cache.directory.iterdir()) == []


def truncate(entry):
    path = entry / "0.npy"
    path.write_bytes(path.read_bytes()[:-7])


def flip_a_byte(entry):
    path = entry / "0.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def add_an_array(entry):
    np.save(entry / "2.npy", np.zeros(3))


@pytest.mark.parametrize("damage", [
    lambda entry: (entry / "1.npy").unlink(),
    truncate,
    flip_a_byte,
    add_an_array,
    lambda entry: (entry / features.FeatureCache.META).write_text("{not json"),
], ids=["missing", "truncated", "flipped", "extra", "bad_meta"])
def test_a_broken_entry_is_recomputed_and_overwritten(tmp_path, capsys, calls, damage):
    cache = features.FeatureCache(tmp_path)
    description = {"data": "small"}
    first = features.load_or_extract(cache, description, small_extractor(), small_dataset())
    damage(tmp_path / cache.key(description))
    capsys.readouterr()

    again = features.load_or_extract(cache, description, small_extractor(), small_dataset())
    assert calls["extract"] == 2
    assert "ignoring broken feature cache entry" in capsys.readouterr().out
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # Overwritten with a good entry, which loads.
    loaded = cache.load(cache.key(description))
    assert loaded is not None and len(loaded) == 2
    assert [p.name for p in tmp_path.iterdir()] == [cache.key(description)]


def test_concurrent_writers_of_one_entry_do_not_crash(tmp_path):
    cache = features.FeatureCache(tmp_path)
    arrays = (np.random.default_rng(0).normal(size=(500, 64)).astype("float32"),)
    key = cache.key({"data": "shared"})
    errors = []

    def write():
        try:
            cache.save(key, arrays, {"data": "shared"})
        except Exception as error:  # noqa: BLE001 - any crash fails the test.
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cache.save(key, arrays, {"data": "shared"})  # Onto a good entry: keeps it.
    assert errors == []
    np.testing.assert_array_equal(cache.load(key)[0], arrays[0])
    assert [p.name for p in tmp_path.iterdir()] == [key]


@pytest.fixture
def small_run(tmp_path):
    root = write_colour_images(tmp_path / "colours", per_class=6, size=32)
    return RunConfig(
        output_dir=str(tmp_path / "runs"),
        run_name="colours",
        feature_views=2,
        data=DataConfig(path=str(root), image_size=32, batch_size=8,
                        val_fraction=0.25, test_fraction=0.25),
        stages=(StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=1),),
    )


def interrupt_the_head_stage(monkeypatch):
    """Stops a run as Ctrl-C would, once the head stage has its features."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "_run_stage", interrupted)


def test_a_second_run_with_another_learning_rate_loads_the_first_runs_features(
    small_run, monkeypatch, capsys, calls
):
    # The first run stops once its features are cached: what follows costs
    # time and does not touch the cache.
    with monkeypatch.context() as patch:
        interrupt_the_head_stage(patch)
        with pytest.raises(KeyboardInterrupt):
            train.run(small_run, verbose=1)
    assert calls["extract"] == 2
    assert "Saved train features to the feature cache" in capsys.readouterr().out

    faster = StageConfig(name="head", unfreeze=0, learning_rate=3e-2, epochs=1)
    result = train.run(
        dataclasses.replace(small_run, run_name="faster", stages=(faster,)), verbose=1
    )
    assert calls["extract"] == 2  # The backbone did not run again.
    out = capsys.readouterr().out
    assert f"Loaded train features from the feature cache {files.cache_dir()}" in out
    assert "Loaded val features from the feature cache" in out
    assert [s.name for s in result.stages] == ["head"] and result.saved_model.is_dir()


def feature_entries():
    folder = files.cache_dir() / "features"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_no_feature_cache_writes_nothing(small_run, monkeypatch, capsys, calls):
    before = feature_entries()
    interrupt_the_head_stage(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.run(dataclasses.replace(small_run, feature_cache=False), verbose=1)
    assert calls["extract"] == 2  # The features were computed, in memory only.
    assert feature_entries() == before
    assert "feature cache" not in capsys.readouterr().out
