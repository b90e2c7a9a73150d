"""LoRA: low-rank adapters on the encoder's attention query and value projections.

A stage with `lora_rank=r` freezes the whole encoder and trains, besides
the head, a pair of small matrices beside the query and value kernels of
its top `unfreeze` transformer layers (Hu et al., 2021): the layer
computes with `W + (alpha / r) A B`, where B starts at zero, so training
starts from the pretrained model. Keras' own adapters
(`EinsumDense.enable_lora`, on the layers keras-hub's `Backbone.enable_lora`
targets) factorise only the kernel's last axis, so a query adapter of
BERT-base would hold `768 x 12 x r + r x 64` weights; by default the
adapters here factorise the whole input and output instead, as PEFT and
the LoRA paper do (`768 x r + r x 768`): 6x fewer weights at r=8, and on
WNUT mentions a better score for them (`FACTORIZATION`, benchmarks/lora.py).

Keras has no way back from `enable_lora`, and a SavedModel of a LoRA layer
recomputes `W + A B` on every call. So when the stage ends its adapters
are saved on their own (`save_adapters`: rank, alpha, the base weights'
fingerprint, the head) and merged into the kernels (`merge`), which
leaves the layers as they were before: serving costs what it did, and the
run's later steps see the model they know. `load_adapters` puts a saved
adapter on the base model again.
"""

import contextlib
import types

import h5py
import keras
import numpy as np

from tfx_transfer.features import weights_fingerprint
from tfx_transfer.unfreezing import in_group

# The layers keras-hub's BERT-family backbones name as LoRA targets.
TARGETS = ("query", "value")
ADAPTERS_FILE = "adapters.lora.h5"
# "full" or "keras" (`enable`). Full: at rank 8 on WNUT mentions, 74,498
# trainable parameters (0.33%) and validation accuracy 0.790, against
# 446,210 (1.96%) and 0.744 for Keras' at learning rate 2e-3; 0.739 against
# 0.723 at 5e-4 (benchmarks/lora.py).
FACTORIZATION = "full"
# The head layers that train with the adapters, saved with them (PEFT's modules_to_save).
HEAD_LAYERS = ("head_standardize", "head_hidden", "probabilities")


def target_layers(encoder, unfreeze_groups, count):
    """The layers a LoRA stage adapts in the encoder's top `count` blocks.

    In a transformer, the attention's query and value projections; in a
    convolutional network, the pointwise (1x1) convolutions, which hold
    nearly all of an inverted-residual block's weights (the depthwise
    convolutions are too small to be worth factorising).

    Returns:
        A list of `keras.layers.EinsumDense` or `keras.layers.Conv2D`, in
        the encoder's order.
    """
    groups = unfreeze_groups[:count]
    return [layer for layer in encoder._flatten_layers(include_self=False)
            if _is_target(layer)
            and any(in_group(layer.path.split("/")[0], group) for group in groups)]


def _is_target(layer):
    if isinstance(layer, keras.layers.EinsumDense):
        return layer.name in TARGETS
    return (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
            and layer.groups == 1)


def enable(encoder, layers, rank, alpha=None, factorization=None):
    """Freezes `encoder` and puts trainable rank-`rank` adapters on `layers`.

    Args:
        encoder: keras.Model. The backbone inside the classifier.
        layers: from `target_layers`.
        rank: int. The adapters' rank.
        alpha: float or None. Scale `alpha / rank`; None is `rank` (scale 1).
        factorization: str or None. "keras": Keras' adapters, which
            factorise the kernel's last axis (`768 x 12 x r + r x 64` for
            a BERT-base query); "full": over the whole input and output,
            as PEFT and the LoRA paper (`768 x r + r x 768`). None:
            `FACTORIZATION`.
    """
    factorization = factorization or FACTORIZATION
    # keras-hub's recipe: the backbone trainable, every layer in it frozen,
    # then the targets' adapters (enable_lora freezes their kernels).
    encoder.trainable = True
    for layer in encoder._flatten_layers(include_self=False):
        layer.trainable = False
    for layer in layers:
        layer.trainable = True
        if factorization == "full" and isinstance(layer, keras.layers.EinsumDense):
            _enable_full(layer, rank, alpha)
        else:  # Keras' adapter of a 1x1 convolution is already `in x r + r x out`.
            layer.enable_lora(rank, lora_alpha=alpha)
        if layer.bias is not None:
            layer.bias.trainable = False  # PEFT's default (bias="none"): the adapters alone.
        # Keras saves a LoRA layer's kernel merged and loads its adapters as
        # zeros (keras#23244): a stage restored from a backup or checkpoint
        # would then train nothing. While LoRA is on, the layer saves and
        # loads its variables as they are.
        layer.save_own_variables = types.MethodType(keras.layers.Layer.save_own_variables, layer)
        layer.load_own_variables = types.MethodType(keras.layers.Layer.load_own_variables, layer)


def merge(layers):
    """Folds each layer's adapter into its kernel and removes it: the layer as before LoRA.

    The kernel becomes `W + (alpha / r) A B`; the adapter's variables leave
    the layer, so the model's weights are the list they were before
    `enable` (and `get_weights`/`set_weights` of earlier stages still fit).
    """
    for layer in layers:
        merged = np.asarray(layer.kernel)  # Keras' own sum, while LoRA is on.
        for adapter in (layer.lora_kernel_a, layer.lora_kernel_b):
            layer._untrack_variable(adapter)
        del layer.lora_kernel_a, layer.lora_kernel_b
        del layer.save_own_variables, layer.load_own_variables  # The class's again.
        layer.__class__ = getattr(type(layer), "_lora_base_class", type(layer))
        layer.lora_enabled = False
        layer._kernel.assign(merged.astype(layer._kernel.dtype))
        layer._kernel.trainable = True
        if layer.bias is not None:
            layer.bias.trainable = True


def _enable_full(layer, rank, alpha):
    """LoRA over the full input and output of a projection: `W + s reshape(A B)`.

    The query and value kernels of keras-hub's attention are `[hidden,
    heads, head_dim]`, the first axis the input. The layer's class becomes
    a subclass whose `kernel` adds the adapter; `merge` puts it back.
    """
    kernel = layer._kernel
    layer._tracker.unlock()
    layer.lora_kernel_a = layer.add_weight(
        name="lora_kernel_a", shape=(kernel.shape[0], rank), initializer="he_uniform",
        dtype="float32")
    layer.lora_kernel_b = layer.add_weight(
        name="lora_kernel_b", shape=(rank, int(np.prod(kernel.shape[1:]))),
        initializer="zeros", dtype="float32")
    layer._tracker.lock()
    kernel.trainable = False
    layer.lora_rank, layer.lora_alpha = rank, alpha or rank
    base = type(layer)
    if base not in _FULL_CLASSES:
        def adapted_kernel(self):
            delta = keras.ops.reshape(keras.ops.matmul(self.lora_kernel_a, self.lora_kernel_b),
                                      self._kernel.shape)
            scaled = (self.lora_alpha / self.lora_rank) * delta
            return self._kernel + keras.ops.cast(scaled, self._kernel.dtype)

        _FULL_CLASSES[base] = type(base.__name__, (base,), {
            "kernel": property(adapted_kernel), "_lora_base_class": base})
    layer.__class__ = _FULL_CLASSES[base]


_FULL_CLASSES = {}


def count_params(weights):
    return int(sum(np.prod(w.shape) for w in weights))


def describe_targets(layers):
    """"query, value" or "1x1 convolutions": what `layers` are, for the log."""
    dense = [layer for layer in layers if isinstance(layer, keras.layers.EinsumDense)]
    names = sorted({layer.name for layer in dense})
    return ", ".join(names + (["1x1 convolutions"] if len(dense) < len(layers) else []))


def describe_trainable(model):
    """PEFT's line: trainable params, all params, trainable %."""
    trainable, total = count_params(model.trainable_weights), count_params(model.weights)
    return (f"trainable params: {trainable:,} || all params: {total:,} || "
            f"trainable%: {100 * trainable / total:.4f}")


def save_adapters(path, layers, model, rank, alpha, base_fingerprint):
    """Writes the adapters and the head to `path` (`*.lora.h5`), before `merge`.

    Args:
        path: str or Path.
        layers: the LoRA layers, adapters still on.
        model: keras.Model. The classifier, for its head layers.
        rank: int.
        alpha: float. The scale's numerator (`rank` when none was given).
        base_fingerprint: str. `tfx_transfer.features.weights_fingerprint`
            of the encoder before the stage: what the adapter applies to.
    """
    with h5py.File(path, "w") as f:
        full = any(hasattr(type(layer), "_lora_base_class") for layer in layers)
        f.attrs.update({"rank": rank, "alpha": alpha, "base": base_fingerprint,
                        "factorization": "full" if full else "keras",
                        "format": "tfx_transfer.lora/1"})
        for layer in layers:
            group = f.create_group(f"adapters/{layer.path}")
            group["a"] = np.asarray(layer.lora_kernel_a)
            group["b"] = np.asarray(layer.lora_kernel_b)
        for layer in model.layers:
            if layer.name in HEAD_LAYERS:
                for i, value in enumerate(layer.get_weights()):
                    f[f"head/{layer.name}/{i}"] = value


def adapter_paths(f):
    """The layer paths an open adapter file (`save_adapters`) holds adapters for."""
    paths = []
    f["adapters"].visititems(
        lambda name, item: paths.append(name)
        if isinstance(item, h5py.Group) and "a" in item else None)
    return paths


def load_adapters(path, encoder, model, base_fingerprint):
    """Puts a saved adapter (and its head) on the base model, merged.

    Args:
        path: str or Path. A file `save_adapters` wrote.
        encoder: keras.Model. The base encoder, as it was before the stage.
        model: keras.Model. The classifier around it, its head replaced.
        base_fingerprint: str. The encoder's weights fingerprint, checked
            against the adapter's: an adapter on another base computes
            nonsense.

    Raises:
        ValueError: the adapter was trained on other base weights, or
            names layers this encoder lacks.
    """
    with h5py.File(path, "r") as f:
        if f.attrs["base"] != base_fingerprint:
            raise ValueError(
                f"{path} adapts base weights {f.attrs['base'][:16]}..., not these "
                f"({base_fingerprint[:16]}...): load it on the model it was trained from.")
        paths = adapter_paths(f)
        by_path = {layer.path: layer for layer in encoder._flatten_layers(include_self=False)}
        missing = [p for p in paths if p not in by_path]
        if missing:
            raise ValueError(f"{path} adapts layers this encoder lacks: {missing[:3]}")
        layers = [by_path[p] for p in paths]
        enable(encoder, layers, int(f.attrs["rank"]), float(f.attrs["alpha"]),
               str(f.attrs["factorization"]))
        for name, layer in zip(paths, layers):
            layer.lora_kernel_a.assign(f[f"adapters/{name}/a"][()])
            layer.lora_kernel_b.assign(f[f"adapters/{name}/b"][()])
        for name in f["head"]:
            weights = f[f"head/{name}"]
            model.get_layer(name).set_weights([weights[str(i)][()] for i in range(len(weights))])
    merge(layers)
    return layers


@contextlib.contextmanager
def adapting(classifier, stage, path):
    """A LoRA stage's adapters on the classifier's encoder, for the `with` block.

    On a normal exit the adapters are saved to `path` (`save_adapters`) and
    merged into the kernels; on an exception (an interrupted stage, whose
    backup holds them) merged only, so the classifier keeps its structure.

    Yields:
        The adapted layers.

    Raises:
        ValueError: the top `stage.unfreeze` blocks hold no layer LoRA
            adapts (`target_layers`).
    """
    encoder = classifier.backbone
    layers = target_layers(encoder, classifier.unfreeze_groups, stage.unfreeze)
    if not layers:
        raise ValueError(f"Stage '{stage.name}': LoRA adapts attention query and value "
                         f"projections and 1x1 convolutions, and the top {stage.unfreeze} "
                         "block(s) of this backbone have none.")
    base = weights_fingerprint(encoder)
    enable(encoder, layers, stage.lora_rank, stage.lora_alpha)
    try:
        yield layers
    except BaseException:
        merge(layers)
        raise
    save_adapters(path, layers, classifier.model, stage.lora_rank,
                  stage.lora_alpha or stage.lora_rank, base)
    merge(layers)
