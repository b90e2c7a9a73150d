"""`run()`: config -> backbone -> data -> classifier -> stages -> report -> export.

Each step is one call on the task (`tfx_transfer.tasks.base.Task`) or on a
module every task shares; nothing downstream reaches back upstream.
"""

import dataclasses
import errno
import json
import os
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from tfx_transfer import (
    distribute,
    evaluate,
    export,
    features,
    few_shot,
    multiworker,
    precision,
    progress,
    stages,
    tasks,
)
from tfx_transfer.config import DataConfig, RunConfig
from tfx_transfer.config_files import load_config, save_config
from tfx_transfer.files import cache_dir, write_atomic

CONFIG_FILE = "config.yaml"
DATA_REPORT_FILE = "data_report.json"


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished run produced.

    Args:
        run_dir: Path. The run directory.
        metrics: dict. Test-set metrics (as in `metrics.json`).
        stages: list of `tfx_transfer.stages.StageResult`.
        saved_model: Path. The exported SavedModel folder.
        report: str. The text of `report.txt`.
    """

    run_dir: Path
    metrics: dict
    stages: list
    saved_model: Path
    report: str


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; `run_dir` is the folder that `--resume` continues.

    Args:
        run_dir: Path. The interrupted run's directory.
        resume: str. How to resume it, in words a user can follow.
    """

    def __init__(self, run_dir, resume):
        super().__init__(f"Run {run_dir} was interrupted; {resume}.")
        self.run_dir = Path(run_dir)
        self.resume = resume


class DiskFull(RuntimeError):
    """The disk filled up during a run; the message names the run and how to resume it."""


def disk_full(error):
    """Whether `error`, or one it was raised from, is a full disk (ENOSPC).

    TensorFlow and h5py report it in their own exception types, so the
    message is read as well as `errno`.

    Example:

    >>> disk_full(OSError(28, "No space left on device"))
    True
    """
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC or \
                "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def run(config=None, run_dir=None, verbose=progress.NORMAL):
    """Trains, evaluates and exports one classifier.

    Args:
        config: RunConfig or None. None uses the defaults (images task on
            the bundled data, EfficientNet-Lite0 with its bundled ImageNet
            weights); the task's defaults fill whatever it leaves as None.
        run_dir: str, Path or None. An existing run directory to resume;
            its `config.yaml` is used and `config` must be None.
        verbose: int. `tfx_transfer.progress.QUIET` (0: only the final
            report), `NORMAL` (1: the plan, a line per epoch, progress bars)
            or `VERBOSE` (2: also the seconds of each step).

    Returns:
        A `RunResult`.

    Raises:
        RunInterrupted: Ctrl-C, once the run directory exists (a
            `KeyboardInterrupt` naming it).
        DiskFull: a write found the disk full, once the run directory
            exists; every file written before is whole.

    Example:

    >>> result = run(RunConfig(data=DataConfig(path="my_photos/")))
    >>> result.metrics["accuracy"]
    """
    if run_dir is not None and config is not None:
        raise ValueError("Pass either `config` or a `run_dir` to resume, not both.")
    config = resume_config(run_dir) if run_dir is not None else (config or RunConfig())
    task = tasks.get_task(config.task)
    config = config.resolved(task.defaults)
    if (distribute.resolve(config.strategy, config.tpu)[0] == "multiworker"
            and run_dir is None and not config.run_name):
        raise ValueError("A multi-worker run needs --run-name, the same on every worker, so "
                         "that relaunched workers find the run to resume.")
    # Before anything else touches the devices: a multi-worker strategy sets
    # up its collective ops, a TPU its system, ahead of the first op.
    with progress.verbosity(verbose), progress.recording() as timings:
        distribution = distribute.create(config.strategy, config.tpu)
        progress.say(distribution.describe(config.data.batch_size))
        return _run_on(distribution, task, config, run_dir, timings)


def _run_on(distribution, task, config, run_dir, timings):
    # Layers take the policy when they are built; restored on return. Every
    # variable (backbone, head, optimizer, metrics) is created in the scope.
    with precision.dtype_policy(config.mixed_precision), distribution.strategy.scope():
        try:
            return _run(task, config, Path(run_dir) if run_dir else None, distribution, timings)
        except tf.errors.UnavailableError as error:
            if distribution.num_workers == 1:
                raise
            # TensorFlow's heartbeats found a worker gone; it names the worker.
            reason = error.message.split("\n")[0:2]
            raise RuntimeError(
                f"Worker {distribution.worker_index}: another worker stopped (preempted or "
                f"killed), so this one stops too: {' '.join(reason)} Relaunch every worker with "
                "the same command: the run resumes from its last backed-up epoch.") from error


def _run(task, config, run_dir, distribution, timings):
    started = time.time()
    # The backbone and its weights first: a missing download fails before any data is read.
    with progress.step("backbone"):
        backbone = task.prepare_backbone(config)
    for stage in config.stages:
        try:
            stages.check_unfreeze(backbone.unfreeze_groups, stage.unfreeze)
        except ValueError as error:
            raise ValueError(f"Stage '{stage.name}': {config.model.backbone}: {error}") from None
    keras.utils.set_random_seed(config.data.seed)
    if config.deterministic:
        # Process-wide and one-way: TensorFlow offers no switch back.
        tf.config.experimental.enable_op_determinism()
        progress.say("Deterministic: op determinism on, augmentation drawn in order.")
    with progress.step("data"):
        # Before the run directory exists: a run that fails on its input
        # (an empty folder, one class, a missing column) leaves nothing behind.
        data = few_shot.read_data(task, config)
    config, data, mode = few_shot.apply(config, data, task.defaults, backbone.unfreeze_groups)
    if mode.reason:
        progress.say(mode.reason)
    config = default_batch_cut(config, len(data.splits["train"]))
    check_batch_size(config.data.batch_size, len(data.splits["train"]))
    run_dir = prepare_run_dir(config, run_dir, distribution)
    progress.say(f"Run directory: {run_dir}")
    # config.yaml keeps the per-replica batch; the pipelines batch for all replicas.
    config = distribute.with_global_batch(config, distribution)
    try:
        return _train(task, config, run_dir, distribution, backbone, data, mode, timings,
                      started)
    except KeyboardInterrupt as interrupt:
        resume = (f"resume it with: python -m tfx_transfer train --resume {run_dir}"
                  if distribution.num_workers == 1 else
                  "relaunch every worker with the same command to resume it")
        raise RunInterrupted(run_dir, resume) from interrupt
    except Exception as error:
        if not disk_full(error):
            raise
        raise DiskFull(
            f"The disk is full (No space left on device). Run {run_dir} keeps every file it "
            "finished writing and its last backed-up epoch; free some space, then resume it "
            f"with: python -m tfx_transfer train --resume {run_dir}") from error



def _train(task, config, run_dir, distribution, backbone, data, mode, timings, started):
    with progress.step("data"):
        datasets = task.make_datasets(data, config, backbone)
        data_report = write_data_report(
            run_dir, data, datasets, few_shot=mode.report() if mode.on else None)
    datasets = distribute.distribute_datasets(
        datasets, distribution, config.data.batch_size, data_report["totals"]["train"])

    with progress.step("model"):
        classifier = task.build_classifier(backbone, data.num_classes, config.model)
    progress.say(stages.describe_plan(config.stages, classifier))
    stage_results = stages.run_stages(
        classifier, config.stages, datasets.train, datasets.val, run_dir,
        objective=task.objective(config, data),
        caching=feature_caching(task, config, data, backbone, distribution,
                                show_progress=progress.level() > progress.QUIET),
        jit_compile=config.jit_compile, verbose=progress.keras_verbose(),
        refit=config.refit_head, finished_weights=run_dir / export.KERAS_FILE,
        seed=config.data.seed,
    )

    with progress.step("baseline"):
        baseline = task.baseline(data, config, backbone)
    progress.say(f"Baseline ({baseline.name}) trained in {timings.seconds['baseline']:.0f} s.")
    header = (f"tfx_transfer {config.task} run {run_dir.name}: "
              f"{backbone.describe(config.model.weights)}, {data.num_classes} classes")
    if mode.on:
        header += f"\n{mode.reason}"
    with progress.step("evaluation"):
        metrics, report = task.write_report(
            classifier, datasets.test, data, stage_results, data_report, run_dir, header,
            baseline,
        )

    with progress.step("export"):
        saved_model = export.export_run(
            classifier.model, task.serving_fn(classifier, data.class_names), data.class_names,
            run_dir, track=task.export_objects(classifier),
        )
    if not config.keep_checkpoints:
        remove_checkpoints(run_dir)
    summary = f"\n{report}\nFinished in {time.time() - started:.0f} s.\n"
    if progress.level() == progress.VERBOSE:
        summary += "\n".join(timings.lines()) + "\n"
    print(f"{summary}Exported SavedModel: {saved_model}")
    if distribution.num_workers > 1:
        # Synchronous training: every worker must print the same fingerprint.
        progress.say(f"Worker {distribution.worker_index} of {distribution.num_workers}: weights "
                     f"fingerprint {features.weights_fingerprint(classifier.model)[:16]}")
    return RunResult(run_dir, metrics, stage_results, saved_model, report)


def remove_checkpoints(run_dir):
    """Removes what only an unfinished run needs: each stage's checkpoint and the epoch backups.

    Called once the export is complete: `model.keras` then holds the kept
    weights, which a resume of the finished run loads, and `saved_model/`
    is what evaluating and serving read. `stages.json` and the logs stay.
    """
    for folder in (run_dir / "checkpoints", run_dir / "backup"):
        shutil.rmtree(folder, ignore_errors=True)


def default_batch_cut(config, train_size):
    """Cuts the default batch size to a smaller training set, and says so.

    32 examples of 2 classes leave 22 to train on: the default batch must
    not refuse them. A batch size the user chose is left to
    `check_batch_size`, which refuses one larger than the set.
    """
    default = DataConfig().batch_size
    if config.data.batch_size != default or train_size >= default:
        return config
    progress.say(f"Batch size: the default {default} is more than the {train_size} training "
                 f"examples; batches of {train_size}.")
    return dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                batch_size=train_size))


def check_batch_size(batch_size, train_size):
    """Refuses a batch larger than the training set: each step would be the whole set."""
    if batch_size > train_size:
        raise ValueError(
            f"`data.batch_size` is {batch_size}, larger than the training set "
            f"({train_size} examples). Give a batch size of at most {train_size}; "
            "16 or 32 suit most small sets.")


def prepare_run_dir(config, run_dir, distribution):
    """The folder this process writes the run to: new, resumed, or a worker's own.

    A multi-worker run is named by `run_name`, the same on every worker, so
    that workers relaunched with the same command find and resume it; only
    the chief writes it (`tfx_transfer.multiworker.worker_run_dir`).
    """
    if distribution.num_workers == 1:
        return run_dir or new_run_dir(config)
    shared = Path(run_dir) if run_dir else Path(config.output_dir) / config.run_name
    if (shared / CONFIG_FILE).is_file() and load_config(shared / CONFIG_FILE) != config:
        raise ValueError(f"{shared} holds a run with another config.yaml; relaunch with the "
                         "same command to resume it, or give another --run-name.")
    if distribution.is_chief and not (shared / CONFIG_FILE).is_file():
        shared.mkdir(parents=True, exist_ok=True)
        save_config(config, shared / CONFIG_FILE)
    return multiworker.worker_run_dir(shared, distribution)


def new_run_dir(config):
    """Creates a fresh, uniquely named run directory holding the resolved `config.yaml`.

    The folder is filled under a hidden name and renamed into place, so a
    run directory always holds its config: one killed at any moment can be
    resumed, never a folder `--resume` cannot read.
    """
    name = config.run_name or (
        f"{config.task}-{config.model.backbone}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    root = Path(config.output_dir)
    run_dir, suffix = root / name, 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / f"{name}-{suffix}"
    staging = root / f".{run_dir.name}-{os.getpid()}-{time.time_ns()}"
    staging.mkdir(parents=True)  # Under the umask, as the run directory should be.
    save_config(config, staging / CONFIG_FILE)
    os.rename(staging, run_dir)
    return run_dir


def resume_config(run_dir):
    """Returns the `RunConfig` an earlier (maybe interrupted) run was started with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Cannot resume {run_dir}: it holds no {CONFIG_FILE}. Is it a run directory?"
        )
    return load_config(path)


def feature_caching(task, config, data, backbone, distribution=None, show_progress=False):
    """The `features.Caching` of a run, or None for the plain Keras loop.

    `show_progress` shows a bar while the backbone runs over the data.
    """
    if not config.cache_features:
        return None
    # Without random augmentation every pass gives the same features.
    views = config.feature_views if config.augment.enabled and task.augments else 1
    workers = distribution if distribution is not None and distribution.num_workers > 1 else None
    store = None
    if config.feature_cache and workers:
        # Each machine has its own cache: one worker loading while another
        # extracts would leave the other waiting in a collective for ever.
        progress.say("Feature cache on disk: off for a multi-worker run; the workers share the "
                     "backbone pass instead.")
    elif config.feature_cache:
        store = features.FeatureCache(cache_dir() / "features",
                                       max_bytes=int(config.feature_cache_max_gb * 1e9))
    return features.Caching(
        views=views, batch_size=config.data.batch_size, seed=config.data.seed, store=store,
        key=task.feature_key(data, config, backbone) if store else None, workers=workers,
        progress=show_progress,
    )


def write_data_report(run_dir, data, datasets, few_shot=None):
    """Writes `data_report.json` (the reader's and the pipelines' counts), prints a summary.

    `few_shot`, the mode's entry (`tfx_transfer.few_shot.Decision.report`),
    is added when the run is in it.
    """
    report = {**data.report(), **datasets.report}
    if few_shot is not None:
        report["few_shot"] = few_shot
    write_atomic(run_dir / DATA_REPORT_FILE, json.dumps(report, indent=2))
    sizes = ", ".join(f"{name} {count}" for name, count in report["totals"].items())
    text = (
        f"Data: {len(report['class_names'])} classes ({', '.join(report['class_names'])}); "
        f"{sizes} ({report['split_source']})"
    )
    skipped = report["skipped"]
    if skipped:
        text += f"\nSkipped {len(skipped)} unreadable example(s); see {DATA_REPORT_FILE}:"
        text += "".join(f"\n  {location}: {reason}" for location, reason in skipped[:10])
    if report.get("num_converted"):
        line = evaluate.converted_line(report)
        text += "\n" + line[0].upper() + line[1:]
    cut = datasets.report.get("tokenization", {})
    if any(cut.get("truncated_words", {}).values()):
        text += (f"\nTruncated {sum(cut['truncated_words'].values())} word(s) longer than a "
                 f"whole sequence ({sum(cut['truncated_pieces'].values())} wordpieces left out).")
    progress.say(text)
    return report
