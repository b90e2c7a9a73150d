"""Recipes on dev sets: the baseline, head only, fine-tune variants, the default.

The protocol behind each task's defaults (`tfx_transfer/tasks/defaults.py`).
Every row is a full `train.run` on a dev set that is not the bundled
demo's test split, scored on that dev set's own test split: accuracy with
its 95% Wilson interval, the baseline the report trains on the same
split, seconds of the whole run, and the trainable parameters of the
run's deepest stage. Seeds are fixed; the feature cache is shared, so
variants of one set pay for its frozen features once.

Dev sets:
- images `fmnist-N`: disjoint samples of Fashion-MNIST's *train* split
  (Debian's `dataset-fashion-mnist`, none of the bundled images): 70
  train, 15 val and 100 test images per class, as the bundled demo has
  70/15/15.
- text `mentions`: real tweets of the bundled WNUT-16, labelled by
  whether annotators marked an entity in them.
- text `bbc`: the bundled BBC News with its seeded split.

    python benchmarks/recipes.py --task images --sets 3
    python benchmarks/recipes.py --task text --sets mentions --variants default,head_only
"""

import argparse
import gzip
import json
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from tfx_transfer import bench, train
from tfx_transfer.config import DataConfig, RunConfig, StageConfig
from tfx_transfer.tasks import defaults

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle_boot")


def _head(task):
    return defaults.DEFAULTS[task].stages[0]


def variants(task):
    """Variant name -> stage plan; "default" is the task's own."""
    plan = defaults.DEFAULTS[task].stages
    head = _head(task)
    found = {"default": plan, "head_only": (head,), "head_no_refit": (head,)}
    if task == "images":
        found["ft2_lr1e-4_x4"] = (head, StageConfig("fine_tune", 2, 1e-4, 4, patience=2))
        found["ft4_lr3e-5_x6"] = (head, StageConfig("fine_tune", 4, 3e-5, 6, patience=2))
        found["adam_head"] = (StageConfig("head", 0, 1e-3, 10),)
    else:
        for depth, epochs in ((2, 2), (6, 3)):
            found[f"ft{depth}_x{epochs}"] = (head, StageConfig(
                "fine_tune", depth, 5e-5, epochs, patience=1, optimizer="adamw"))
        found["adam_head"] = (StageConfig("head", 0, 1e-2, 20, patience=3),)
    return found


def fashion_sets(root, count, per_class=(70, 15, 100), seed=0):
    """Writes `count` disjoint Fashion-MNIST train-split samples as train/val/test folders."""
    from PIL import Image

    with gzip.open(FASHION / "train-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = np.frombuffer(f.read(), np.uint8)
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as f:
        _, n, rows, cols = struct.unpack(">IIII", f.read(16))
        images = np.frombuffer(f.read(), np.uint8).reshape(n, rows, cols)
    rng = np.random.default_rng(seed)
    # The bundled demo holds the first 100 images of each class.
    pools = [rng.permutation(np.flatnonzero(labels == k)[100:]) for k in range(10)]
    folders = {}
    for number in range(count):
        folder = Path(root) / f"fmnist-{number}"
        for k, pool in enumerate(pools):
            taken = pool[number * sum(per_class):(number + 1) * sum(per_class)]
            start = 0
            for split, size in zip(("train", "val", "test"), per_class):
                out = folder / split / FASHION_CLASSES[k]
                out.mkdir(parents=True, exist_ok=True)
                for index in taken[start:start + size]:
                    Image.fromarray(images[index]).save(out / f"{index}.png")
                start += size
        folders[folder.name] = DataConfig(path=str(folder))
    return folders


def mentions_set(root, sizes=(150, 50, 300), seed=1):
    """The WNUT "names an entity?" split as train/val/test CSV files."""
    paths = bench.write_mentions_splits(root, dict(zip(("train", "val", "test"), sizes)), seed)
    return {"mentions": DataConfig(path=paths["train"], val_path=paths["val"],
                                   test_path=paths["test"], sequence_length=48)}


def row(name, variant, result, seconds):
    metrics = result.metrics
    stages = result.stages
    return {
        "set": name, "variant": variant,
        "accuracy": metrics["accuracy"], "interval": metrics["accuracy_interval"],
        "baseline": metrics["baseline"]["accuracy"], "seconds": seconds,
        "trainable_params": max(s.trainable_params for s in stages),
        "kept": [s.name for s in stages if s.kept][-1],
        "num_test": metrics["num_examples"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["images", "text"], default="images")
    parser.add_argument("--sets", default="3",
                        help="images: how many Fashion-MNIST dev sets; text: mentions,bbc")
    parser.add_argument("--variants", default=None, help="comma-separated; default all")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--json", default="recipes.json")
    args = parser.parse_args()
    root = Path(args.output_dir or tempfile.mkdtemp(prefix="recipes-"))
    if args.task == "images":
        sets = fashion_sets(root / "data", int(args.sets))
    else:
        sets = {}
        names = args.sets.split(",") if args.sets != "3" else ["mentions", "bbc"]
        if "mentions" in names:
            sets.update(mentions_set(root))
        if "bbc" in names:
            sets["bbc"] = DataConfig()
    chosen = variants(args.task)
    if args.variants:
        chosen = {k: chosen[k] for k in args.variants.split(",")}
    rows = []
    for name, data in sets.items():
        for variant, plan in chosen.items():
            config = RunConfig(task=args.task, output_dir=str(root / "runs"),
                               run_name=f"{name}-{variant}", data=data, stages=plan,
                               refit_head=variant != "head_no_refit")
            started = time.time()
            result = train.run(config, verbose=0)
            rows.append(row(name, variant, result, time.time() - started))
            print(json.dumps(rows[-1]), flush=True)
    print(format_table(rows))
    Path(args.json).write_text(json.dumps(rows, indent=2))


def format_table(rows):
    lines = [f"{'set':<12} {'variant':<16} {'accuracy':>8} {'95% interval':>15} "
             f"{'baseline':>8} {'seconds':>7} {'trainable':>10} kept"]
    for r in rows:
        lines.append(
            f"{r['set']:<12} {r['variant']:<16} {r['accuracy']:8.4f} "
            f"{r['interval'][0]:7.4f}-{r['interval'][1]:.4f} {r['baseline']:8.4f} "
            f"{r['seconds']:7.0f} {r['trainable_params']:10d} {r['kept']}")
    by_variant = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r["accuracy"] - r["baseline"])
    lines.append("\nMean gain over the baseline, per variant (over sets):")
    lines += [f"  {v:<16} {100 * np.mean(g):+.1f} points (sets: "
              f"{', '.join(f'{100 * x:+.1f}' for x in g)})" for v, g in by_variant.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
