"""What a stage is given and what it returns: `Objective`, `Fitting`, `StageResult`.

Kept apart from the loop (`tfx_transfer.stages`) so that the kinds of stage
it runs (`tfx_transfer.probe_stage`, ...) can build their results without
importing it back.
"""

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class StageResult:
    """What one stage did.

    Args:
        name: str. The stage's name.
        unfreeze: int. Backbone blocks that were trainable.
        learning_rate: float. Its learning rate.
        trainable_weights: int. Number of trainable weight tensors.
        epochs_run: int. Epochs actually run (early stopping may cut them).
        val_accuracy: float or None. Validation accuracy of its best epoch
            (cross-validated, for a head chosen so); None for a stage that
            has none (contrastive).
        kept: bool. Whether its weights were kept: it beat the kept stage
            before it beyond the noise (`tfx_transfer.selection`).
        history: dict. Per-epoch metrics from `fit` (an "lbfgs" stage: its
            C, val_loss and val_accuracy per C tried).
        gain: float. Validation accuracy gained over the stage kept before.
        gain_standard_error: float. The paired standard error of `gain`.
        settings: dict. What the stage chose (an "lbfgs" stage: its C).
        trainable_params: int. Number of trainable parameters.
    """

    name: str
    unfreeze: int
    learning_rate: float
    trainable_weights: int
    epochs_run: int
    val_accuracy: float
    kept: bool
    history: dict
    gain: float = 0.0
    gain_standard_error: float = 0.0
    settings: dict = dataclasses.field(default_factory=dict)
    trainable_params: int = 0


@dataclasses.dataclass(frozen=True)
class Objective:
    """What every stage optimises and watches: the task's loss and metrics.

    Args:
        loss: str or `keras.losses.Loss`.
        metrics: tuple. Compiled metrics; one of them, or of
            `weighted_metrics`, must log as "accuracy", which early stopping
            and stage selection watch on the validation data.
        weighted_metrics: tuple or None. Metrics weighted by the dataset's
            sample weights (the token task masks padding this way).
        class_weight: dict or None. Class id -> loss weight, for `fit`.

    Example:

    >>> Objective(keras.losses.CategoricalCrossentropy(), class_weight={0: 1.0, 1: 3.0})
    """

    loss: object = "categorical_crossentropy"
    metrics: tuple = ("accuracy",)
    weighted_metrics: tuple | None = None
    class_weight: dict | None = None


@dataclasses.dataclass(frozen=True)
class Fitting:
    """What every stage's `compile` and `fit` share."""

    run_dir: Path
    objective: Objective
    jit_compile: bool
    verbose: int
    callbacks: tuple
    seed: int = 0
