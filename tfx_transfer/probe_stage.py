"""The L-BFGS head stage: the softmax layer fitted exactly on cached features.

A head stage with `optimizer="lbfgs"` on cached backbone features solves
the regularised logistic regression (`tfx_transfer.probe`) instead of
running epochs of Adam; C is chosen on the validation split, or by
cross-validation over the training rows when there is none (few-shot mode).
"""

import dataclasses
import time

import numpy as np

from tfx_transfer import probe, selection
from tfx_transfer.progress import say
from tfx_transfer.stage_callbacks import save_weights_atomic
from tfx_transfer.stage_types import StageResult


def refit_probe(cached, result, class_weight):
    """Fits the kept L-BFGS head again on train + val features, at its chosen C."""
    both = [np.concatenate(parts) for parts in zip(cached.train_arrays, cached.val_arrays)]
    C = result.settings["C"]
    _, rows = probe.fit_dense_head(cached.head, both, cached.val_arrays, class_weight,
                                   grid=(C,))
    say(f"Head '{result.name}' fitted again on training + validation features "
        f"({rows} rows) at C={C:g}; its validation score is no longer held out.")
    return dataclasses.replace(result, settings={**result.settings, "refit": True})


def probe_applies(head, on_features, stage):
    """Whether an "lbfgs" stage can fit its head exactly; says why not, if not."""
    names = {layer.name for layer in head.layers}
    problem = ("the head has a hidden layer" if "head_hidden" in names
               else None if on_features else "features are not cached (--no-cache-features)")
    if problem:
        say(f"Stage '{stage.name}': {problem}, so the L-BFGS fit does not apply; "
            f"training with Adam at learning rate {stage.learning_rate:g} instead.")
    return problem is None


def fit_probe_stage(head, cached, stage, fitting):
    """Fits the softmax layer on the cached features (`tfx_transfer.probe`).

    Like any stage it leaves `logs/<stage>.csv` (here one row per C tried)
    and `checkpoints/<stage>.weights.h5`.
    """
    started = time.time()
    groups = None
    if not len(cached.val_arrays[0]):  # Cross-validated: the views of an example, one group.
        # Row i of every view is example i % N: few-shot mode's stream is not shuffled.
        examples = len(cached.train_arrays[0])
        groups = np.arange(examples) % max(examples // cached.views, 1)
    fit, rows = probe.fit_dense_head(head, cached.train_arrays, cached.val_arrays,
                                     fitting.objective.class_weight, groups=groups)
    # Without a validation split (few-shot mode) the rows' out-of-fold scores stand in.
    correct = fit.held_out_correct if fit.folds else selection.correctness(head, cached.val)
    chooser = (f"{fit.folds}-fold cross-validated log-loss over the training rows (accuracy "
               f"{fit.scores[fit.C]['val_accuracy']:.4f}, sd over folds "
               f"{fit.scores[fit.C]['fold_accuracy_sd']:.4f})" if fit.folds
               else "validation log-loss")
    say(f"\nStage '{stage.name}': softmax head fitted by L-BFGS on {rows} "
        f"cached feature rows in {time.time() - started:.0f} s; C={fit.C:g} chosen by "
        f"{chooser} of C in {list(fit.scores)}")
    history = {
        "C": list(fit.scores),
        **{key: [score[key] for score in fit.scores.values()]
           for key in ("val_loss", "val_accuracy")},
    }
    for folder in ("logs", "checkpoints"):
        (fitting.run_dir / folder).mkdir(parents=True, exist_ok=True)
    rows = zip(*history.values())
    (fitting.run_dir / "logs" / f"{stage.name}.csv").write_text(
        "\n".join([",".join(history), *(",".join(f"{v:g}" for v in row) for row in rows)]) + "\n")
    save_weights_atomic(head, fitting.run_dir / "checkpoints" / f"{stage.name}.weights.h5")
    return StageResult(
        name=stage.name, unfreeze=0, learning_rate=stage.learning_rate,
        trainable_weights=2, epochs_run=0, val_accuracy=float(np.mean(correct)),
        kept=False, history=history,
        settings={"C": fit.C, **({"folds": fit.folds, "fold_accuracy_sd": round(
            fit.scores[fit.C]["fold_accuracy_sd"], 4)} if fit.folds else {})},
        trainable_params=int(fit.kernel.size + fit.bias.size),
    ), correct
