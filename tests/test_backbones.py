import hashlib

import keras
import numpy as np
import pytest

import harness
from tfx_transfer import backbones
from tfx_transfer.config import DataConfig, ModelConfig, StageConfig
from tfx_transfer.backbones import weights


def test_local_weights_file_is_loaded(tmp_path):
    spec = backbones.get_backbone_spec("mobilenet_v2")
    source = backbones.build_backbone(spec, None, 96)
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    resolved = backbones.resolve_weights(spec, str(path))
    loaded = backbones.build_backbone(spec, resolved, 96)
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_weights_of_another_architecture_are_refused_by_name(tmp_path):
    lite = backbones.get_backbone_spec("efficientnet_lite0")
    path = tmp_path / "lite.weights.h5"
    backbones.build_backbone(lite, None, 96).save_weights(path)
    spec = backbones.get_backbone_spec("mobilenet_v2")
    with pytest.raises(ValueError, match="lite.weights.h5"):
        backbones.build_backbone(spec, str(path), 96)


def test_missing_weights_file_is_named(tmp_path):
    spec = backbones.get_backbone_spec("resnet50")
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        backbones.resolve_weights(spec, str(tmp_path / "nowhere.h5"))


def test_corrupt_copy_of_a_published_keras_file_is_refused_with_both_hashes(tmp_path):
    spec = backbones.get_backbone_spec("resnet50")
    path = tmp_path / spec.weights_file
    path.write_bytes(b"truncated download")
    actual = hashlib.md5(b"truncated download").hexdigest()
    with pytest.raises(weights.WeightsIntegrityError) as error:
        backbones.resolve_weights(spec, str(path))
    assert spec.weights_hash in str(error.value) and actual in str(error.value)


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        backbones.get_backbone_spec("vgg99")


def test_preprocessing_modes_match_the_reference_functions():
    import keras

    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        backbones.ImagePreprocessing("caffe")(x),
        keras.applications.resnet50.preprocess_input(x.copy()), atol=1e-4)
    np.testing.assert_allclose(
        backbones.ImagePreprocessing("tf")(x),
        keras.applications.mobilenet_v2.preprocess_input(x.copy()), atol=1e-5)
    np.testing.assert_allclose(backbones.ImagePreprocessing("lite")(x), (x - 127) / 128, atol=1e-6)


def tiny_convnet(include_top=False, weights=None, input_shape=None):
    """A two-block convnet with the keras.applications builder signature."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for index, filters in enumerate((8, 16), 1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"conv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{index}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{index}_relu")(x)
    return keras.Model(inputs, x, name="tiny_convnet")


@pytest.mark.slow
def test_a_registered_tiny_backbone_trains_through_the_harness(colour_folder, tmp_path, capsys):
    # Adding a backbone: one registry entry with its unfreeze groups, top first.
    spec = backbones.BackboneSpec(
        name="tiny_convnet", builder=tiny_convnet, preprocessing="tf", image_size=32,
        unfreeze_groups=(("conv2",), ("conv1",)),
    )
    backbones.register_backbone(spec)
    try:
        with pytest.raises(ValueError, match="already registered"):
            backbones.register_backbone(spec)
        data = DataConfig(path=str(colour_folder), batch_size=8, val_fraction=0.25,
                          test_fraction=0.25)
        plan = (StageConfig(name="head", unfreeze=0, learning_rate=3e-2, epochs=30, patience=30),
                StageConfig(name="fine_tune", unfreeze=2, learning_rate=1e-3, epochs=2))
        result = harness.train_tiny("images", tmp_path, data, stages=plan,
                                    model=ModelConfig(backbone="tiny_convnet", weights="none"))
        images = [path.read_bytes() for path in sorted(colour_folder.glob("*/001.png"))]
        harness.check_task_run(result, images, capsys)
        assert result.stages[1].trainable_weights == 2 + 2 * 2  # head + two convs (BN frozen)
        assert "tiny_convnet" in result.report
        # Random features of solid colours still separate them.
        assert result.metrics["accuracy"] >= 0.6, result.report
    finally:
        del backbones.BACKBONES["tiny_convnet"]


def test_only_a_failure_to_reach_the_network_is_called_one():
    import socket
    import urllib.error

    from tfx_transfer.backbones.registry import is_network_error

    assert is_network_error(socket.gaierror(-2, "Name or service not known"))
    assert is_network_error(urllib.error.URLError("refused"))
    try:  # keras.utils.get_file wraps the URLError in a plain Exception.
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as cause:
            raise Exception("URL fetch failure on https://x: None -- refused") from cause
    except Exception as wrapped:
        assert is_network_error(wrapped)
    assert not is_network_error(ValueError("bad shape (3, 3) for kernel"))
    assert not is_network_error(FileNotFoundError("no such file"))
