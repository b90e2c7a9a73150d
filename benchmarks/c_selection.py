"""Choosing the L-BFGS head's C: on the validation split, or by k-fold over train + val?

The issue behind it: 150 validation images are few, and k-fold over
train + val uses every labelled example to choose. On each Fashion-MNIST
dev set of `benchmarks/recipes.py` (70/15/100 images per class, none of
the bundled demo's), the multi-depth features of the default image
classifier are taken once, unaugmented, and the head's C is chosen three
ways, each then refitted on train + val at that C and scored on the set's
1,000 test images:

- `val`: C by validation log-loss (what `tfx_transfer.probe` does);
- `kfold5`: C by mean held-out log-loss over 5 stratified folds of
  train + val;
- `oracle`: the C best on the test split itself (a ceiling, not a rule).

    python benchmarks/c_selection.py --sets 3
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from sklearn import model_selection

from tfx_transfer import features, probe, tasks
from tfx_transfer.config import RunConfig
from tfx_transfer.data import pipeline

from recipes import fashion_sets  # noqa: E402 (benchmarks/ is the script's folder)


def set_features(data_config):
    """Unaugmented multi-depth features (train, val, test) of one dev set."""
    task = tasks.get_task("images")
    config = RunConfig(task="images", data=data_config).resolved(task.defaults)
    backbone = task.prepare_backbone(config)
    data = task.read_data(config.data)
    classifier = task.build_classifier(backbone, data.num_classes, config.model)
    extractor, _ = features.split_classifier(classifier.model)
    return [
        features.extract(extractor, pipeline.make_image_dataset(
            data.splits[split], backbone.image_size, 32, data.num_classes, training=False))
        for split in ("train", "val", "test")
    ], data.num_classes


def test_accuracy(x, y, x_test, y_test, c, num_classes):
    fit = probe.fit_probe((x, y), (x_test, y_test), num_classes, grid=(c,))
    return fit.scores[c]["val_accuracy"]


def kfold_c(x, y, num_classes, folds=5, seed=0):
    losses = {c: [] for c in probe.C_GRID}
    split = model_selection.StratifiedKFold(folds, shuffle=True, random_state=seed)
    for inner, held in split.split(x, y):
        fit = probe.fit_probe((x[inner], y[inner]), (x[held], y[held]), num_classes)
        for c, score in fit.scores.items():
            losses[c].append(score["val_loss"])
    return min(losses, key=lambda c: np.mean(losses[c]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="c-selection-"))
    rows = []
    for name, data_config in fashion_sets(root, args.sets).items():
        arrays, num_classes = set_features(data_config)
        (x, y), (x_val, y_val), (x_test, y_test) = [(a[0], a[1].argmax(1)) for a in arrays]
        both_x, both_y = np.concatenate([x, x_val]), np.concatenate([y, y_val])
        by_c = {c: test_accuracy(both_x, both_y, x_test, y_test, c, num_classes)
                for c in probe.C_GRID}
        chosen = {
            "val": probe.fit_probe((x, y), (x_val, y_val), num_classes).C,
            "kfold5": kfold_c(both_x, both_y, num_classes),
            "oracle": max(by_c, key=by_c.get),
        }
        row = {rule: (c, by_c[c]) for rule, c in chosen.items()}
        rows.append(row)
        print(name, "  ".join(f"{rule}: C={c:g} acc={acc:.4f}" for rule, (c, acc) in row.items()),
              flush=True)
    for rule in ("val", "kfold5", "oracle"):
        accs = [row[rule][1] for row in rows]
        print(f"{rule:<7} mean test accuracy {np.mean(accs):.4f} "
              f"(sets: {', '.join(f'{a:.4f}' for a in accs)})")


if __name__ == "__main__":
    main()
