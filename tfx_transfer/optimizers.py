"""The optimizer each stage asks for: Adam, or AdamW with warm-up and cosine decay."""

import keras


def build_optimizer(stage, steps_per_epoch):
    """Returns the optimizer a stage asks for.

    Args:
        stage: `tfx_transfer.config.StageConfig`.
        steps_per_epoch: int. Training batches per epoch, to lay out the
            warm-up and decay of "adamw".

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    if stage.optimizer in ("adam", "lbfgs"):  # "lbfgs" here: its fallback, when it cannot fit.
        return keras.optimizers.Adam(stage.learning_rate)
    total = max(1, stage.epochs * steps_per_epoch)
    warmup = int(stage.warmup_fraction * total)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else stage.learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=stage.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=stage.weight_decay)
    # The BERT recipe: no decay on biases and LayerNorm scales/offsets.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def steps_per_epoch(dataset):
    """Batches in one pass over `dataset`, counted once if tf.data cannot tell."""
    steps = int(dataset.cardinality())
    if steps < 0:  # Unknown after a filter: count once.
        steps = sum(1 for _ in dataset)
    return steps
