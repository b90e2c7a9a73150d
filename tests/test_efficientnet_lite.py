import shutil

import keras
import keras_hub
import numpy as np
import pytest
from PIL import Image
from skimage import data

from tfx_transfer.backbones import torch_state_dict, weights
from tfx_transfer.files import sha256_file
from tfx_transfer.backbones.efficientnet_lite import IMAGE_SIZE
from tfx_transfer.backbones.efficientnet_lite import UNFREEZE_GROUPS
from tfx_transfer.backbones.efficientnet_lite import EfficientNetLite0
from tfx_transfer.backbones.efficientnet_lite import assign_torch_weights
from tfx_transfer.backbones.efficientnet_lite import imagenet_weights_path
from tfx_transfer.backbones.efficientnet_lite import preprocess_input

_TOP_FILE = "efficientnet_lite0_imagenet_top.weights.h5"
_NOTOP_FILE = "efficientnet_lite0_imagenet_notop.weights.h5"


@pytest.fixture(scope="session")
def imagenet_home(tmp_path_factory):
    """A private cache, converted once for the whole session."""
    home = tmp_path_factory.mktemp("tfx_transfer_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFX_TRANSFER_HOME", str(home))
        imagenet_weights_path(include_top=True)
        imagenet_weights_path(include_top=False)
    return home


@pytest.fixture
def home(imagenet_home, monkeypatch):
    monkeypatch.setenv("TFX_TRANSFER_HOME", str(imagenet_home))
    return imagenet_home


@pytest.fixture
def private_home(imagenet_home, tmp_path, monkeypatch):
    """A copy of the converted cache that a test may damage."""
    copy = tmp_path / "home"
    shutil.copytree(imagenet_home, copy)
    monkeypatch.setenv("TFX_TRANSFER_HOME", str(copy))
    return copy


@pytest.fixture(scope="module")
def classifier(imagenet_home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFX_TRANSFER_HOME", str(imagenet_home))
        return EfficientNetLite0(include_top=True, weights="imagenet")


def _center_crop(image):
    """Shorter side to 256 (bicubic), then the central 224x224."""
    pil = Image.fromarray(image)
    scale = 256 / min(pil.size)
    width, height = (round(side * scale) for side in pil.size)
    pil = pil.resize((width, height), Image.BICUBIC)
    left, top = (width - IMAGE_SIZE) // 2, (height - IMAGE_SIZE) // 2
    pil = pil.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    return np.asarray(pil)


def _predict(model, image):
    batch = preprocess_input(_center_crop(image)[None])
    return model.predict(batch, verbose=0)


# === ImageNet predictions on real photos ===


def test_coffee_is_espresso(classifier):
    probabilities = _predict(classifier, data.coffee())

    assert probabilities.shape == (1, 1000)
    assert int(probabilities.argmax()) == 967
    # The checkpoint gives 0.951; a broken port lands far from it.
    assert 0.9 < probabilities[0, 967] < 0.99
    (name, _), *_ = keras_hub.utils.decode_imagenet_predictions(probabilities)[0]
    assert name == "espresso"


def test_chelsea_top3_are_cats(classifier):
    probabilities = _predict(classifier, data.chelsea())

    top3 = keras_hub.utils.decode_imagenet_predictions(probabilities, top=3)[0]
    assert {name for name, _ in top3} == {"tiger_cat", "Egyptian_cat", "tabby"}


# === Numbers against an independent numpy reference ===


def _same_padding(size, kernel, stride):
    # TensorFlow "same": output ceil(size / stride), any odd pixel of
    # padding goes at the end (PyTorch would pad both sides equally).
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x, kernel, stride, symmetric=False, depthwise=False):
    """Convolution of [n, h, w, c] with a torch-layout [o, i, kh, kw] kernel."""
    n, height, width, _ = x.shape
    kh, kw = kernel.shape[2:]
    if symmetric:
        pads = [(kh // 2, kh // 2), (kw // 2, kw // 2)]
    else:
        pads = [_same_padding(height, kh, stride), _same_padding(width, kw, stride)]
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_h = (x.shape[1] - kh) // stride + 1
    out_w = (x.shape[2] - kw) // stride + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = x[
                :,
                i : i + stride * (out_h - 1) + 1 : stride,
                j : j + stride * (out_w - 1) + 1 : stride,
            ]
            if depthwise:
                out = out + patch * kernel[:, 0, i, j]
            else:
                out = out + patch @ kernel[:, :, i, j].T
    return out


def _bn_relu6(x, state, prefix):
    scale = state[f"{prefix}.weight"] / np.sqrt(state[f"{prefix}.running_var"] + 1e-3)
    x = (x - state[f"{prefix}.running_mean"]) * scale + state[f"{prefix}.bias"]
    return np.clip(x, 0.0, 6.0)


def test_first_stage_matches_numpy_reference(home):
    state = torch_state_dict.load_torch_state_dict(weights.efficientnet_lite0_pth_path())
    state = {name: value.astype(np.float64) for name, value in state.items()}
    # Odd height and even width: TF pads (1, 1) and (0, 1) here.
    images = np.random.default_rng(0).uniform(-1, 1, (2, 33, 32, 3))
    model = EfficientNetLite0(include_top=False, input_shape=(33, 32, 3))
    probe = keras.Model(
        model.input,
        [
            model.get_layer("stem_activation").output,
            model.get_layer("block0_dw_activation").output,
        ],
    )

    stem, block0 = probe.predict(images.astype("float32"), verbose=0)

    stem_reference = _bn_relu6(
        _conv(images, state["_conv_stem.weight"], stride=2), state, "_bn0"
    )
    block0_reference = _bn_relu6(
        _conv(
            stem_reference,
            state["_blocks.0._depthwise_conv.weight"],
            stride=1,
            depthwise=True,
        ),
        state,
        "_blocks.0._bn1",
    )
    assert stem.shape == (2, 17, 16, 32)
    np.testing.assert_allclose(stem, stem_reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(block0, block0_reference, rtol=1e-5, atol=1e-5)
    # The reference can tell the paddings apart, so it would catch a port
    # that padded the PyTorch way.
    symmetric = _bn_relu6(
        _conv(images, state["_conv_stem.weight"], stride=2, symmetric=True),
        state,
        "_bn0",
    )
    assert np.abs(stem - symmetric).max() > 1e-2


# === Shapes, layer names, arguments ===


def test_notop_shapes_and_pooling(home):
    feature_map = EfficientNetLite0(include_top=False)
    pooled = EfficientNetLite0(include_top=False, pooling="avg")
    images = np.random.default_rng(1).uniform(-1, 1, (1, 224, 224, 3))

    assert feature_map.output_shape == (None, 7, 7, 1280)
    assert pooled.output_shape == (None, 1280)
    # Same weights land in both, whatever layers follow the backbone.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pooled(images)),
        keras.ops.convert_to_numpy(feature_map(images)).mean(axis=(1, 2)),
        rtol=1e-4,
        atol=1e-5,
    )


def test_unfreeze_groups_cover_every_weighted_layer_once():
    model = EfficientNetLite0(weights=None)
    names = [layer.name for layer in model.layers]

    assert UNFREEZE_GROUPS[0] == "top_" and UNFREEZE_GROUPS[-1] == "stem_"
    assert len(UNFREEZE_GROUPS) == 18
    for prefix in UNFREEZE_GROUPS:
        assert any(name.startswith(prefix) for name in names), prefix
    for layer in model.layers:
        groups = [p for p in UNFREEZE_GROUPS if layer.name.startswith(p)]
        assert len(groups) <= 1, (layer.name, groups)
        if layer.weights and layer.name != "predictions":
            assert groups, layer.name
    # Groups run from the top of the network down.
    first_index = [
        min(i for i, name in enumerate(names) if name.startswith(prefix))
        for prefix in UNFREEZE_GROUPS
    ]
    assert first_index == sorted(first_index, reverse=True)


def test_block_structure():
    model = EfficientNetLite0(weights=None, include_top=False)
    names = {layer.name for layer in model.layers}
    # Block 0 has expand ratio 1; the first block of a stage changes shape.
    assert "block0_expand_conv" not in names and "block1_expand_conv" in names
    adds = sorted(int(n[5:-4]) for n in names if n.endswith("_add"))
    assert adds == [2, 4, 6, 7, 9, 10, 12, 13, 14]
    assert not any("se_" in name for name in names)
    assert model.count_params() == 4_694_024 - 1280 * 1000 - 1000


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classes": 5}, "Received: classes=5"),
        ({"weights": "imagenet21k"}, "Received: weights='imagenet21k'"),
        ({"weights": "missing.weights.h5"}, "does not exist"),
        ({"weights": "model.keras"}, ".weights.h5"),
        ({"pooling": "min", "include_top": False}, "Received: pooling='min'"),
        ({"input_shape": (224, 224, 1)}, r"Received: input_shape=\(224, 224, 1\)"),
        ({"input_shape": (16, 16, 3)}, r"Received: input_shape=\(16, 16, 3\)"),
        ({"dropout_rate": 1.0}, "Received: dropout_rate=1.0"),
        ({"classes": 0, "weights": None}, "Received: classes=0"),
    ],
)
def test_invalid_arguments_fail_before_building(tmp_path, monkeypatch, kwargs, match):
    monkeypatch.setenv("TFX_TRANSFER_HOME", str(tmp_path / "home"))
    with pytest.raises(ValueError, match=match):
        EfficientNetLite0(**kwargs)
    # Nothing was converted or cached on the way to the error.
    assert not (tmp_path / "home").exists()


def test_weights_path_round_trip(tmp_path):
    model = EfficientNetLite0(weights=None, classes=3, input_shape=(64, 64, 3))
    path = tmp_path / "custom.weights.h5"
    model.save_weights(path)
    images = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3))

    restored = EfficientNetLite0(
        weights=str(path), classes=3, input_shape=(64, 64, 3)
    )

    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(images)),
        keras.ops.convert_to_numpy(model(images)),
        rtol=1e-6,
    )


def test_preprocess_input():
    pixels = np.array([[0, 127, 255]], "uint8")
    expected = np.array([[-127 / 128, 0.0, 1.0]], "float32")

    scaled = preprocess_input(pixels)

    assert isinstance(scaled, np.ndarray) and scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, expected)
    tensor = preprocess_input(keras.ops.convert_to_tensor(pixels))
    assert keras.ops.is_tensor(tensor)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), expected)


# === The converted-weights cache ===


def test_conversion_writes_both_variants_with_sidecars(home):
    for name in (_TOP_FILE, _NOTOP_FILE):
        path = home / "weights" / name
        sidecar = path.with_name(name + ".sha256")
        assert sidecar.read_text().strip() == sha256_file(path)
    assert imagenet_weights_path(include_top=True) == home / "weights" / _TOP_FILE


def test_tampered_cached_weights_are_refused(private_home):
    path = private_home / "weights" / _TOP_FILE
    expected = sha256_file(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    actual = sha256_file(path)

    with pytest.raises(weights.WeightsIntegrityError) as info:
        EfficientNetLite0(include_top=True, weights="imagenet")
    message = str(info.value)
    assert expected in message and actual in message and str(path) in message


@pytest.mark.parametrize("suffix", ["", ".sha256"])
def test_missing_cache_entry_is_rebuilt(private_home, suffix):
    path = private_home / "weights" / _NOTOP_FILE
    path.with_name(path.name + suffix).unlink()

    rebuilt = imagenet_weights_path(include_top=False)

    assert rebuilt == path
    sidecar = path.with_name(path.name + ".sha256")
    assert sidecar.read_text().strip() == sha256_file(path)
    model = EfficientNetLite0(include_top=False, weights=str(rebuilt))
    stem = model.get_layer("stem_conv").get_weights()[0]
    torch_stem = torch_state_dict.load_torch_state_dict(
        weights.efficientnet_lite0_pth_path()
    )["_conv_stem.weight"]
    np.testing.assert_array_equal(stem, torch_stem.transpose(2, 3, 1, 0))


# === Weight mapping fails loudly ===


@pytest.fixture(scope="module")
def torch_state():
    return torch_state_dict.load_torch_state_dict(weights.efficientnet_lite0_pth_path())


def test_assign_rejects_shape_mismatch(torch_state):
    model = EfficientNetLite0(weights=None, classes=10)
    with pytest.raises(ValueError, match="Shape mismatch") as info:
        assign_torch_weights(model, torch_state)
    assert "_fc.weight" in str(info.value)
    assert "predictions" in str(info.value)


def test_assign_rejects_unused_and_missing_tensors(torch_state):
    model = EfficientNetLite0(weights=None, include_top=False)

    extra = dict(torch_state, **{"_extra.weight": np.zeros(3, "float32")})
    with pytest.raises(ValueError, match="not used.*_extra.weight"):
        assign_torch_weights(model, extra)

    missing = dict(torch_state)
    del missing["_blocks.7._bn1.running_var"]
    with pytest.raises(ValueError, match="_blocks.7._bn1.running_var.*missing"):
        assign_torch_weights(model, missing)
