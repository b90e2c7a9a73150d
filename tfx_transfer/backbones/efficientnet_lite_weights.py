"""EfficientNet-Lite0's PyTorch checkpoint, mapped tensor by tensor onto Keras.

Pure layout knowledge: which torch tensor feeds which Keras weight, and
how its axes move. `efficientnet_lite.imagenet_weights_path` uses it to
convert the checkpoint once into the weights cache.
"""



def _torch_sources(num_blocks):
    """Maps each Keras layer name to its torch tensors and their layout."""
    bn = ("weight", "bias", "running_mean", "running_var")
    sources = {
        "stem_conv": ("conv", ["_conv_stem.weight"]),
        "stem_bn": ("bn", [f"_bn0.{v}" for v in bn]),
        "top_conv": ("conv", ["_conv_head.weight"]),
        "top_bn": ("bn", [f"_bn1.{v}" for v in bn]),
        "predictions": ("dense", ["_fc.weight", "_fc.bias"]),
    }
    for i in range(num_blocks):
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
    from tfx_transfer.backbones import torch_state_dict, weights

    pth = weights.efficientnet_lite0_pth_path()
    model = EfficientNetLite0(weights=None)
    assign_torch_weights(model, torch_state_dict.load_torch_state_dict(pth))
    ```
    """
    # One depthwise convolution per MBConv block.
    sources = _torch_sources(sum(layer.name.endswith("_dwconv") for layer in model.layers))
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
