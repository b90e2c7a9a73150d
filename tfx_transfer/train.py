"""`python -m tfx_transfer.train`: config -> data -> model -> stages -> report -> export.

Each step is one call; nothing downstream reaches back upstream. Run
`python -m tfx_transfer.train --help` for the flags.
"""

import dataclasses
import json
import time
from pathlib import Path

import keras

from tfx_transfer import export, features, precision, stages, tasks
from tfx_transfer.config import RunConfig, load_config, save_config
from tfx_transfer.weights import cache_dir

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


def new_run_dir(config):
    """Creates and returns a fresh, uniquely named run directory."""
    name = config.run_name or (
        f"{config.task}-{config.model.backbone}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    root = Path(config.output_dir)
    run_dir, suffix = root / name, 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / f"{name}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def resume_config(run_dir):
    """Returns the `RunConfig` an earlier (maybe interrupted) run was started with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Cannot resume {run_dir}: it holds no {CONFIG_FILE}. Is it a run directory?"
        )
    return load_config(path)


def run(config=None, run_dir=None, verbose=2):
    """Trains, evaluates and exports one classifier.

    Args:
        config: RunConfig or None. None uses the defaults (images task on
            the bundled data, EfficientNet-Lite0 with its bundled ImageNet
            weights); task defaults fill whatever it leaves as None.
        run_dir: str, Path or None. An existing run directory to resume;
            its `config.yaml` is used and `config` must be None.
        verbose: int. Keras progress verbosity (0 silent, 2 one line per epoch).

    Returns:
        A `RunResult`.

    Example:

    >>> result = run(RunConfig(data=DataConfig(path="my_photos/")))
    >>> result.metrics["accuracy"]
    """
    if run_dir is not None:
        if config is not None:
            raise ValueError("Pass either `config` or a `run_dir` to resume, not both.")
        run_dir = Path(run_dir)
        config = resume_config(run_dir)
    config = (config or RunConfig()).resolved()
    # Layers take the policy when built (the text encoder in
    # prepare_backbone, the head in build_classifier); restored on return.
    with precision.dtype_policy(config.mixed_precision):
        return _run(config, run_dir, verbose)


def _run(config, run_dir, verbose):
    task = tasks.get_task(config.task)
    started = time.time()

    # Config: the backbone and its weights are resolved first, so a missing
    # download fails before any data is read.
    prepared = task.prepare_backbone(config)
    for stage in config.stages:
        stages.check_unfreeze(prepared.unfreeze_groups, stage.unfreeze)
    keras.utils.set_random_seed(config.data.seed)
    if run_dir is None:
        run_dir = new_run_dir(config)
        save_config(config, run_dir / CONFIG_FILE)
    print(f"Run directory: {run_dir}")

    # Data.
    data = task.read_data(config.data)
    data_report = data.report()
    (run_dir / DATA_REPORT_FILE).write_text(json.dumps(data_report, indent=2))
    print(_describe_data(data_report))
    train_data, val_data, test_data = task.make_datasets(data, config, prepared)
    weights = task.class_weight(data) if config.data.class_weights else None

    # Model.
    model, backbone = task.build_classifier(prepared, len(data.class_names), config.model)

    # Stages.
    print(stages.describe_plan(config.stages, prepared.unfreeze_groups))
    stage_results = stages.run_stages(
        model,
        backbone,
        prepared.unfreeze_groups,
        config.stages,
        train_data,
        val_data,
        run_dir,
        class_weight=weights,
        **task.objective(config.model),
        jit_compile=config.jit_compile,
        verbose=verbose,
        feature_views=_feature_views(config, task),
        batch_size=config.data.batch_size,
        seed=config.data.seed,
        **_feature_cache(config, task, data, prepared),
    )

    # Evaluate.
    header = (
        f"tfx_transfer {config.task} run {run_dir.name}: "
        f"{prepared.describe(config.model.weights)}, {len(data.class_names)} classes"
    )
    metrics, report = task.write_report(
        model, test_data, data, prepared, stage_results, data_report, run_dir, header
    )

    # Export.
    saved_model = export.export_run(
        model,
        task.serving_fn(model, data.class_names, prepared),
        data.class_names,
        run_dir,
        track=task.export_objects(prepared),
    )
    print("\n" + report)
    print(f"Finished in {time.time() - started:.0f} s.")
    print(f"Exported SavedModel: {saved_model}")
    return RunResult(run_dir, metrics, stage_results, saved_model, report)


def _feature_views(config, task):
    if not config.cache_features:
        return 0
    # Without random augmentation every pass gives the same features.
    return config.feature_views if config.augment.enabled and task.AUGMENTS else 1


def _feature_cache(config, task, data, prepared):
    if not (config.cache_features and config.feature_cache):
        return {}
    return {
        "feature_cache": features.FeatureCache(cache_dir() / "features"),
        "feature_key": task.feature_key(data, config, prepared),
    }


def _describe_data(report):
    sizes = ", ".join(f"{name} {count}" for name, count in report["totals"].items())
    text = (
        f"Data: {len(report['class_names'])} classes ({', '.join(report['class_names'])}); "
        f"{sizes} ({report['split_source']})"
    )
    skipped = report["skipped"]
    if skipped:
        text += f"\nSkipped {len(skipped)} unreadable example(s); see {DATA_REPORT_FILE}:"
        text += "".join(f"\n  {location}: {reason}" for location, reason in skipped[:10])
    return text


if __name__ == "__main__":
    from tfx_transfer.cli import train_command

    train_command(prog_name="python -m tfx_transfer.train")
