"""Staged unfreezing: the plan, and the loop that runs it.

Stage 1 trains the head on a frozen backbone; later stages unfreeze blocks
from the top down with a lower learning rate. BatchNormalization layers stay
frozen in every stage and, because the backbone is called with
`training=False`, in inference mode too: their moving statistics, learned on
ImageNet, are never overwritten by a small data set's batches. (LayerNorm,
which keeps no statistics, trains with its block.)

`run_stages(classifier, plan, train, val, run_dir, objective=...)` is the
whole interface: what the model learns (`Objective`), and whether head-only
stages train on cached features (`tfx_transfer.features.Caching`).

A stage keeps its weights only if it improves validation accuracy beyond
the noise (`tfx_transfer.selection`); otherwise the previous stage's
weights come back. Each finished stage is recorded in
`stages.json` with its weights, so an interrupted run resumes after the last
finished stage (and mid-stage, from Keras' `BackupAndRestore`).
"""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np

from tfx_transfer import contrastive, features, lora, optimizers, probe_stage, selection
from tfx_transfer.progress import say, step
from tfx_transfer.stage_types import Fitting, Objective, StageResult  # noqa: F401 (API)
from tfx_transfer.stage_callbacks import (
    fit_guarded,
    logged_history,
    save_weights_atomic,
    stage_callbacks,
)
from tfx_transfer.unfreezing import (  # noqa: F401 (the stage plan's API)
    check_unfreeze,
    describe_plan,
    in_group,
    set_trainable_blocks,
)

STATE_FILE = "stages.json"
KEPT_WEIGHTS = "kept.weights.h5"


def _read_state(run_dir):
    path = run_dir / STATE_FILE
    if not path.is_file():
        return {}
    return {entry["name"]: StageResult(**entry) for entry in json.loads(path.read_text())}


def _write_state(run_dir, results):
    path = run_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    tmp.replace(path)


def run_stages(
    classifier,
    plan,
    train_data,
    val_data,
    run_dir,
    *,
    objective,
    caching=None,
    callbacks=(),
    jit_compile=False,
    verbose=2,
    refit=False,
    finished_weights=None,
    seed=0,
):
    """Runs the staged plan on a classifier, resuming from `run_dir` if it can.

    Args:
        classifier: `tfx_transfer.classifier.Classifier`. Its model is
            trained in place.
        plan: sequence of `tfx_transfer.config.StageConfig`, run in order.
        train_data: tf.data.Dataset. Batches of (inputs, labels[, weights]).
        val_data: tf.data.Dataset. Same, for early stopping and selection.
        run_dir: str or Path. Checkpoints, logs and `stages.json` go here.
        objective: Objective. Loss, metrics and class weights.
        caching: `tfx_transfer.features.Caching` or None. None runs every
            stage through the whole model (the plain Keras loop); given,
            head-only stages train on backbone features computed once.
        callbacks: sequence of `keras.callbacks.Callback`. Added to every
            stage's own (checkpoints, early stopping, logs, backup).
        jit_compile: bool. XLA-compile the train step.
        verbose: int. Keras `fit` verbosity.
        refit: bool. When the kept stage is an "lbfgs" head, fit it once
            more on the training and validation features together, with
            the C that validation chose: more data for the final head, at
            the price of a validation score that is no longer held out
            (the test split still is).
        finished_weights: str, Path or None. Where a finished run keeps
            its model (`model.keras`), read on resume when the checkpoints
            were removed once it finished.
        seed: int. Draws a contrastive stage's pairs.

    Returns:
        A list of `StageResult`, one per stage, in order. On return the
        model holds the weights of the best kept stage.

    Example:

    >>> results = run_stages(classifier, config.stages, train, val, "runs/a",
    ...                      objective=Objective(), caching=Caching(views=3))
    >>> [r.kept for r in results]
    [True, False]
    """
    run_dir = Path(run_dir)
    model = classifier.model
    fitting = Fitting(run_dir, objective, jit_compile, verbose, tuple(callbacks), seed)
    done = _read_state(run_dir)
    kept_path = run_dir / "checkpoints" / KEPT_WEIGHTS
    kept_path.parent.mkdir(parents=True, exist_ok=True)
    if done and kept_path.is_file():
        model.load_weights(str(kept_path))
    elif done and finished_weights is not None and Path(finished_weights).is_file():
        with warnings.catch_warnings():
            # The file also holds the last stage's optimizer, which nothing
            # trains again; Keras warns when this model's optimizer differs.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(str(finished_weights))
    cached = None
    kept_weights = model.get_weights()
    results, best, best_correct = [], None, None
    for stage in plan:
        if stage.name in done:
            result = done[stage.name]
            say(f"Stage '{stage.name}' already finished; resuming after it.")
        elif stage.loss == "contrastive":
            with step(f"stage {stage.name}"):
                result = _run_contrastive_stage(classifier, stage, train_data, fitting)
            if result.kept:
                save_weights_atomic(model, kept_path)
                cached = None  # The encoder changed: its features are stale.
            else:
                model.set_weights(kept_weights)
        else:
            target, train, val = model, train_data, val_data
            on_features = stage.unfreeze == 0 and caching is not None
            if on_features:
                set_trainable_blocks(classifier.backbone, classifier.unfreeze_groups, 0)
                if cached is None:
                    with step("backbone features"):
                        cached = features.cached_head(model, train_data, val_data, caching)
                target, train, val = cached.head, cached.train, cached.val
            if best is not None and best_correct is None:  # Resumed after `best`.
                best_correct = selection.correctness(model, val_data)
            with step(f"stage {stage.name}"):
                if stage.optimizer == "lbfgs" and probe_stage.probe_applies(target, on_features, stage):
                    result, correct = probe_stage.fit_probe_stage(target, cached, stage, fitting)
                else:
                    result, correct = _run_stage(target, classifier, stage, train, val,
                                                 fitting, backup=target is model)
            decision = selection.decide(stage.name, correct, best and best.name, best_correct)
            result = dataclasses.replace(result, kept=decision.kept, gain=decision.gain,
                                         gain_standard_error=decision.standard_error)
            say(decision.reason[0].upper() + decision.reason[1:] + ".")
            if result.kept:
                best_correct = correct
                save_weights_atomic(model, kept_path)
                if stage.lora_rank:  # The adapter a user can ship for the base model.
                    (run_dir / "checkpoints" / f"{stage.name}.lora.h5").replace(
                        run_dir / lora.ADAPTERS_FILE)
                if stage.unfreeze:
                    cached = None  # The backbone changed: its features are stale.
            else:
                # From memory: the file also holds the optimizer of the stage
                # that wrote it, which Keras warns about loading into another.
                model.set_weights(kept_weights)
        results.append(result)
        _write_state(run_dir, results)
        if result.kept:
            # A contrastive stage has no validation score: the stage after
            # it, the head on the new embeddings, is judged as a first one.
            best, best_correct = (None, None) if stage.loss == "contrastive" else (
                result, best_correct)
            kept_weights = model.get_weights()
    if (refit and best is not None and "C" in best.settings and "folds" not in best.settings
            and not best.settings.get("refit")):
        with step(f"stage {best.name}"):
            cached = cached or features.cached_head(model, train_data, val_data, caching)
            results[results.index(best)] = probe_stage.refit_probe(cached, best, objective.class_weight)
        save_weights_atomic(model, kept_path)
        _write_state(run_dir, results)
    return results


def _run_stage(model, classifier, stage, train_data, val_data, fitting, backup=True):
    if not stage.lora_rank:
        set_trainable_blocks(classifier.backbone, classifier.unfreeze_groups, stage.unfreeze)
        return _fit_stage(model, stage, train_data, val_data, fitting, backup)
    # Scored with the adapters on; merged (and saved aside) when the stage ends.
    with lora.adapting(classifier, stage,
                       fitting.run_dir / "checkpoints" / f"{stage.name}.lora.h5") as adapted:
        return _fit_stage(model, stage, train_data, val_data, fitting, backup,
                          note=f"; LoRA rank {stage.lora_rank} on {len(adapted)} layers "
                               f"({lora.describe_targets(adapted)}): "
                               f"{lora.describe_trainable(model)}")


def _fit_stage(model, stage, train_data, val_data, fitting, backup, note=""):
    objective = fitting.objective
    # Recompiling is what makes the new trainable flags take effect.
    model.compile(
        optimizer=optimizers.build_optimizer(stage, optimizers.steps_per_epoch(train_data)),
        loss=objective.loss,
        metrics=list(objective.metrics or []),
        weighted_metrics=objective.weighted_metrics,
        jit_compile=fitting.jit_compile,
    )
    trainable = len(model.trainable_weights)
    say(
        f"\nStage '{stage.name}': {trainable} trainable weight tensors, "
        f"{'adam' if stage.optimizer == 'lbfgs' else stage.optimizer}, "
        f"learning rate {stage.learning_rate:g}{note}"
    )
    trainable_params = lora.count_params(model.trainable_weights)
    history, stopped = {}, None
    if stage.epochs > 0:
        fit, stopped = fit_guarded(
            model,
            stage_callbacks(stage, fitting.run_dir, fitting.verbose, backup)
            + list(fitting.callbacks),
            fitting.run_dir / "backup" / stage.name,
            x=train_data,
            validation_data=val_data,
            epochs=stage.epochs,
            class_weight=objective.class_weight,
            shuffle=False,  # The training pipeline reshuffles itself.
            verbose=fitting.verbose,
        )
        if stopped:
            say(f"Stage '{stage.name}' stopped: {stopped}.")
        # Every epoch, those before a resume included; `fit`'s own holds only its own.
        history = logged_history(fitting.run_dir / "logs" / f"{stage.name}.csv") or (
            {k: [float(v) for v in vs] for k, vs in fit.history.items()} if fit else {})
    # The restored best epoch, scored again rather than read from the logs.
    correct = selection.correctness(model, val_data)
    return StageResult(
        name=stage.name,
        unfreeze=stage.unfreeze,
        learning_rate=stage.learning_rate,
        trainable_weights=trainable,
        epochs_run=len(history.get("loss", [])),
        val_accuracy=float(np.mean(correct)),
        kept=False,
        history=history,
        settings={"stopped": stopped} if stopped else {},
        trainable_params=trainable_params,
    ), correct


def _run_contrastive_stage(classifier, stage, train_data, fitting):
    """SetFit's stage (`tfx_transfer.contrastive.run_stage`), as a `StageResult`."""
    fit, settings = contrastive.run_stage(classifier, stage, train_data, fitting.run_dir,
                                          fitting.verbose, fitting.callbacks, fitting.seed)
    trainable = classifier.backbone.trainable_weights
    return StageResult(
        name=stage.name, unfreeze=stage.unfreeze, learning_rate=stage.learning_rate,
        trainable_weights=len(trainable),
        epochs_run=len(fit.history.get("loss", [])) if fit else 0,
        val_accuracy=None, kept=fit is not None, history=fit.history if fit else {},
        settings=settings, trainable_params=lora.count_params(trainable),
    )
