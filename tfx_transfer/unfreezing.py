"""Which backbone blocks a stage trains, and the plan as a person reads it.

Blocks are unfrozen from the top down (`BackboneSpec.unfreeze_groups`);
BatchNormalization layers stay frozen in every stage and, because the
backbone is called with `training=False`, in inference mode too.
"""

import keras


def check_unfreeze(unfreeze_groups, count):
    """Raises if a stage asks for more blocks than the backbone has."""
    if not 0 <= count <= len(unfreeze_groups):
        raise ValueError(
            f"This backbone has {len(unfreeze_groups)} blocks to unfreeze. "
            f"Received: unfreeze={count}"
        )


def in_group(layer_name, group):
    """Whether a layer belongs to an unfreeze group.

    A group entry ending in "_" is a prefix ("block15_"); any other entry
    names a layer and the layers named after it ("Conv_1", "Conv_1_bn"),
    so "transformer_layer_1" does not take in "transformer_layer_11".
    """
    return any(
        layer_name == entry
        or layer_name.startswith(entry if entry.endswith("_") else entry + "_")
        for entry in group
    )


def set_trainable_blocks(backbone, unfreeze_groups, count):
    """Makes the top `count` blocks of `backbone` trainable, except BatchNorm.

    Args:
        backbone: keras.Model. The backbone inside the classifier.
        unfreeze_groups: tuple of tuples of str. Layer-name prefixes per
            block, top first (`BackboneSpec.unfreeze_groups`).
        count: int. Blocks to unfreeze; 0 freezes the whole backbone.

    Example:

    >>> set_trainable_blocks(backbone, spec.unfreeze_groups, 2)
    """
    check_unfreeze(unfreeze_groups, count)
    if count == 0:
        backbone.trainable = False
        return
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = any(
            in_group(layer.name, group) for group in unfreeze_groups[:count]
        ) and not isinstance(layer, keras.layers.BatchNormalization)


def describe_plan(stages, classifier):
    """Returns the staged plan as lines a person can read.

    Args:
        stages: sequence of `tfx_transfer.config.StageConfig`.
        classifier: `tfx_transfer.classifier.Classifier`. For its blocks and
            its kind of normalization.
    """
    unfreeze_groups = classifier.unfreeze_groups
    lines = ["Training plan:"]
    for number, stage in enumerate(stages, 1):
        if stage.unfreeze == 0:
            what = "head only, backbone frozen"
        else:
            names = ", ".join(
                group[0].rstrip("_") for group in unfreeze_groups[: stage.unfreeze]
            )
            what = f"head + top {stage.unfreeze} backbone block(s) [{names}]"
            if stage.lora_rank:
                what = (f"head + rank-{stage.lora_rank} LoRA adapters in the top "
                        f"{stage.unfreeze} backbone block(s) [{names}], their weights frozen")
        if stage.loss == "contrastive":
            what = what.replace("head + top", "top")
            how = (f"SetFit's contrastive loss on pairs of training examples, dropout on "
                   f"(the head waits for the next stage), learning rate "
                   f"{stage.learning_rate:g} ({stage.optimizer}), {stage.epochs} pass(es)")
        elif stage.optimizer == "lbfgs":
            how = ("softmax head fitted by L-BFGS on cached features, its L2 strength "
                   "chosen by validation log-loss (cross-validated without a validation "
                   "split)")
        elif stage.epochs == 0:
            how = "off (0 epochs; --fine-tune-epochs N turns it on)"
        else:
            how = (f"learning rate {stage.learning_rate:g} ({stage.optimizer}); up to "
                   f"{stage.epochs} epochs, early stopping after {stage.patience}")
        lines.append(f"  stage {number} '{stage.name}': {what}; {how}")
    lines.append(_NORMALIZATION_NOTES.get(classifier.normalization, ""))
    lines.append("  A later stage is kept only if it beats the kept one on validation by "
                 "more than one paired standard error.")
    return "\n".join(line for line in lines if line)


_NORMALIZATION_NOTES = {
    "BatchNorm": "  BatchNorm layers stay frozen and in inference mode in every stage.",
    "LayerNorm": (
        "  LayerNorm layers train with their block; the encoder runs in "
        "inference mode (no dropout) in every stage."
    ),
}
