"""Image backbones: name -> builder, preprocessing, unfreezing order, weights.

Adding a backbone is one `BackboneSpec`: an entry in `BACKBONES`, or a
`register_backbone(spec)` call from user code. Every builder follows the
`keras.applications` signature, so one call builds any of them without
its classification top.
"""

import dataclasses
import functools
import hashlib
from pathlib import Path
from typing import Callable

import keras

from tfx_transfer.backbones import efficientnet_lite
from tfx_transfer.backbones import weights as weights_lib
from tfx_transfer.backbones.registry import (
    WeightsUnavailableError,
    is_network_error,
    register,
    registered,
)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and fine-tune it.

    Args:
        name: str. Registry key.
        builder: callable. `keras.applications`-style builder taking
            `include_top`, `weights` and `input_shape`.
        preprocessing: str. An `ImagePreprocessing` mode.
        image_size: int. The resolution its weights were trained at.
        unfreeze_groups: tuple of tuples of str. Layer-name prefixes, one
            group per block, from the top of the network down; stage
            `unfreeze=N` makes the first N groups trainable.
        bundled_weights: callable or None. Returns a local path to no-top
            ImageNet weights that ship with the package (no network).
        weights_file: str or None. Canonical file name of the Keras no-top
            ImageNet weights.
        weights_url: str or None. Where Keras downloads that file from.
        weights_hash: str or None. Its md5 as Keras publishes it.
        feature_blocks: tuple of str. Layer-name prefixes of blocks whose
            outputs the head reads too, average-pooled beside the top's:
            features from several depths (`multi_depth_network`).
    """

    name: str
    builder: Callable
    preprocessing: str
    image_size: int
    unfreeze_groups: tuple
    bundled_weights: Callable | None = None
    weights_file: str | None = None
    weights_url: str | None = None
    weights_hash: str | None = None
    feature_blocks: tuple = ()


def _groups(prefixes):
    return tuple((p,) if isinstance(p, str) else tuple(p) for p in prefixes)


def _resnet50_groups():
    blocks = []
    for stage, count in ((5, 3), (4, 6), (3, 4), (2, 3)):
        blocks += [f"conv{stage}_block{b}_" for b in range(count, 0, -1)]
    return _groups(blocks + ["conv1_"])


def _mobilenet_v2_groups():
    blocks = [("Conv_1", "out_relu")]
    blocks += [f"block_{b}_" for b in range(16, 0, -1)]
    return _groups(blocks + ["expanded_conv_", ("Conv1", "bn_Conv1")])


def _efficientnet_b0_groups():
    blocks = ["top_"]
    for stage, count in ((7, 1), (6, 4), (5, 3), (4, 3), (3, 2), (2, 2), (1, 1)):
        blocks += [f"block{stage}{chr(ord('a') + b)}_" for b in range(count)[::-1]]
    return _groups(blocks + ["stem_"])


_KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"

BACKBONES = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="efficientnet_lite0",
            builder=efficientnet_lite.EfficientNetLite0,
            preprocessing="lite",
            image_size=efficientnet_lite.IMAGE_SIZE,
            unfreeze_groups=_groups(efficientnet_lite.UNFREEZE_GROUPS),
            bundled_weights=functools.partial(
                efficientnet_lite.imagenet_weights_path, include_top=False
            ),
            # A linear probe on blocks 9-15 and the top beat the top alone by
            # 1.9 points (0.866 vs 0.847) on three Fashion-MNIST dev sets of
            # 700 training images (benchmarks/recipes.py).
            feature_blocks=tuple(f"block{i}_" for i in range(9, 16)),
        ),
        BackboneSpec(
            name="resnet50",
            builder=keras.applications.ResNet50,
            preprocessing="caffe",
            image_size=224,
            unfreeze_groups=_resnet50_groups(),
            weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            weights_url=_KERAS_WEIGHTS + "resnet/",
            weights_hash="4d473c1dd8becc155b73f8504c6f6626",
        ),
        BackboneSpec(
            name="mobilenet_v2",
            builder=keras.applications.MobileNetV2,
            preprocessing="tf",
            image_size=224,
            unfreeze_groups=_mobilenet_v2_groups(),
            weights_file=(
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
            ),
            weights_url=_KERAS_WEIGHTS + "mobilenet_v2/",
        ),
        BackboneSpec(
            name="efficientnet_b0",
            builder=keras.applications.EfficientNetB0,
            preprocessing="none",
            image_size=224,
            unfreeze_groups=_efficientnet_b0_groups(),
            weights_file="efficientnetb0_notop.h5",
            weights_url="https://storage.googleapis.com/keras-applications/",
            weights_hash="50bc09e76180e00e4465e1a485ddc09d",
        ),
    )
}


def multi_depth_network(network, blocks):
    """Returns `network` with the outputs of `blocks` beside its own, in that order.

    A block's output is that of its last layer (`network.layers` is in
    graph order). The layers are the network's own, so unfreezing and
    weights are shared.

    Args:
        network: keras.Model. A backbone without its top.
        blocks: sequence of str. Layer-name prefixes ("block9_").

    Returns:
        A `keras.Model` with outputs `[*block outputs, network.output]`;
        `network` itself when `blocks` is empty.

    Example:

    >>> multi = multi_depth_network(network, ("block14_", "block15_"))
    >>> len(multi.outputs)
    3
    """
    if not blocks:
        return network
    outputs = []
    for prefix in blocks:
        layers = [layer for layer in network.layers if layer.name.startswith(prefix)]
        if not layers:
            raise ValueError(f"Backbone '{network.name}' has no layer named {prefix}*.")
        outputs.append(layers[-1].output)
    return keras.Model(network.input, [*outputs, network.output], name=network.name)


def get_backbone_spec(name):
    """Returns the `BackboneSpec` registered under `name`."""
    return registered(BACKBONES, name, "backbone")


def register_backbone(spec):
    """Makes an image backbone available by name (`--backbone NAME`).

    Args:
        spec: BackboneSpec. Its builder takes `include_top`, `weights` and
            `input_shape` like `keras.applications`; its unfreeze groups
            name the layers of each block, top first.

    Returns:
        `spec`.

    Example:

    >>> register_backbone(BackboneSpec("tiny", tiny_builder, "tf", 64, (("conv2",), ("conv1",))))
    """
    return register(BACKBONES, spec, "backbone")


def resolve_weights(spec, weights):
    """Turns a `weights` setting into a local file, before any data is read.

    Args:
        spec: BackboneSpec.
        weights: str. "imagenet", "none", or a path to a weights file.

    Returns:
        A path to a weights file, or None for random initialisation.

    Raises:
        WeightsUnavailableError: "imagenet" could not be downloaded (no
            network) and no copy is cached; the message says what to do.
        FileNotFoundError: `weights` is a path that does not exist.
        weights_lib.WeightsIntegrityError: a file's hash is wrong.
    """
    if weights in (None, "none"):
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"Weights file for backbone '{spec.name}' not found: {path}"
            )
        if spec.weights_hash and path.name == spec.weights_file:
            _verify_keras_md5(path, spec.weights_hash)
        return str(path)
    if spec.bundled_weights is not None:
        return str(spec.bundled_weights())
    try:
        return keras.utils.get_file(
            spec.weights_file,
            spec.weights_url + spec.weights_file,
            cache_subdir="models",
            file_hash=spec.weights_hash,
        )
    except Exception as error:
        if not is_network_error(error):
            raise
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights of '{spec.name}' "
            f"({spec.weights_file}): {error}\n"
            f"This machine cannot reach the network. Either download "
            f"{spec.weights_url + spec.weights_file} elsewhere and pass "
            f"--weights /path/to/{spec.weights_file}, or use "
            f"--backbone efficientnet_lite0, whose ImageNet weights ship "
            f"with the package and need no network."
        ) from error


def _verify_keras_md5(path, expected):
    # Keras publishes md5 digests for its application weights; a file with
    # the canonical name must be that file, not a truncated download.
    actual = hashlib.md5(Path(path).read_bytes()).hexdigest()
    if actual != expected:
        raise weights_lib.WeightsIntegrityError(
            f"Weights file {path} is not the published Keras file: expected "
            f"md5 {expected}, got md5 {actual}. Download it again."
        )


def build_backbone(spec, weights_path, image_size):
    """Builds the backbone without its top, loading `weights_path`.

    Args:
        spec: BackboneSpec.
        weights_path: str or None. From `resolve_weights`.
        image_size: int. Square input resolution.

    Returns:
        A functional `keras.Model` mapping preprocessed images to a feature
        map, named "backbone".
    """
    backbone = spec.builder(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3)
    )
    if weights_path is not None:
        try:
            backbone.load_weights(weights_path)
        except Exception as error:
            raise ValueError(
                f"Could not load weights file {weights_path} into backbone "
                f"'{spec.name}' (is it the no-top weights of that "
                f"architecture?): {error}"
            ) from error
    backbone.name = "backbone"
    return backbone


@dataclasses.dataclass(frozen=True)
class ImageBackbone:
    """A resolved image backbone: what to build, from which weights, at what size.

    Args:
        spec: BackboneSpec.
        weights_path: str or None. Local weights file, or None for random.
        image_size: int. Square input resolution.
    """

    spec: BackboneSpec
    weights_path: str | None
    image_size: int

    @property
    def unfreeze_groups(self):
        return self.spec.unfreeze_groups

    def describe(self, weights):
        return (
            f"backbone {self.spec.name} ({weights} weights), "
            f"{self.image_size}x{self.image_size}"
        )

    def build(self):
        """Builds the Keras backbone (`build_backbone`)."""
        return build_backbone(self.spec, self.weights_path, self.image_size)


def prepare_image_backbone(name, weights, image_size=None):
    """Resolves a backbone name and weights setting, before any data is read.

    Args:
        name: str. A `BACKBONES` name.
        weights: str. "imagenet", "none" or a weights file path.
        image_size: int or None. None takes the backbone's own.

    Returns:
        An `ImageBackbone`.

    Example:

    >>> prepare_image_backbone("efficientnet_lite0", "imagenet").image_size
    224
    """
    spec = get_backbone_spec(name)
    return ImageBackbone(spec, resolve_weights(spec, weights), image_size or spec.image_size)
