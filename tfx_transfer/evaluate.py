"""The test-set report: sklearn metrics, confusion matrix, training curves.

Writes `metrics.json` (for machines), `report.txt` (for people),
`confusion_matrix.png` and `training_curves.png` into the run directory.
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # Headless: runs on servers and in CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as sk_metrics  # noqa: E402


def predict_dataset(model, dataset):
    """Returns (true class ids, predicted probabilities) over `dataset`.

    Args:
        model: keras.Model. Maps images to probabilities.
        dataset: tf.data.Dataset. Batches of (images, one-hot labels), in a
            fixed order.

    Returns:
        A tuple of int array `[N]` and float array `[N, C]`.
    """
    labels, probabilities = [], []
    for images, one_hot in dataset:
        probabilities.append(model.predict_on_batch(images))
        labels.append(np.argmax(one_hot, axis=-1))
    return np.concatenate(labels), np.concatenate(probabilities)


def classification_metrics(y_true, probabilities, class_names):
    """Computes accuracy, per-class precision/recall/F1 and the confusion matrix.

    Args:
        y_true: int array `[N]`.
        probabilities: float array `[N, C]`.
        class_names: sequence of str, index -> name.

    Returns:
        A JSON-ready dict.

    Example:

    >>> classification_metrics(np.array([0, 1]), np.eye(2), ["a", "b"])["accuracy"]
    1.0
    """
    labels = list(range(len(class_names)))
    y_pred = np.argmax(probabilities, axis=-1)
    per_class = sk_metrics.classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names),
        output_dict=True, zero_division=0,
    )
    return {
        "num_examples": int(len(y_true)),
        "accuracy": float(sk_metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": float(per_class["macro avg"]["f1-score"]),
        "per_class": {name: per_class[name] for name in class_names},
        "confusion_matrix": sk_metrics.confusion_matrix(
            y_true, y_pred, labels=labels
        ).tolist(),
        "text_report": sk_metrics.classification_report(
            y_true, y_pred, labels=labels, target_names=list(class_names),
            digits=4, zero_division=0,
        ),
    }


def plot_confusion_matrix(matrix, class_names, path):
    """Draws the confusion matrix with counts in the cells, saved as PNG."""
    matrix = np.asarray(matrix)
    size = max(5, 0.6 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    sk_metrics.ConfusionMatrixDisplay(matrix, display_labels=list(class_names)).plot(
        ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45
    )
    axes.set_title("Confusion matrix (test split)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_training_curves(stage_results, path):
    """Plots loss and accuracy over all stages' epochs, stages marked."""
    figure, (loss_axes, acc_axes) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for result in stage_results:
        history = result.history
        epochs = np.arange(offset + 1, offset + len(history.get("loss", [])) + 1)
        if not len(epochs):
            continue
        for axes, key in ((loss_axes, "loss"), (acc_axes, "accuracy")):
            axes.plot(epochs, history[key], "o-", label=f"{result.name} train")
            if f"val_{key}" in history:
                axes.plot(epochs, history[f"val_{key}"], "s--", label=f"{result.name} val")
            if offset:
                axes.axvline(offset + 0.5, color="grey", linewidth=0.8)
        offset += len(epochs)
    for axes, title in ((loss_axes, "loss"), (acc_axes, "accuracy")):
        axes.set_xlabel("epoch (all stages)")
        axes.set_title(title)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def format_report(header, data_report, stage_results, body):
    """Returns `report.txt`: header, data, stages, then the task's own `body`."""
    lines = [header, ""]
    totals = data_report.get("totals", {})
    lines.append("Data: " + ", ".join(
        f"{split} {count}" for split, count in totals.items()
    ) + f"; skipped {data_report.get('num_skipped', 0)} unreadable example(s)")
    for location, reason in data_report.get("skipped", [])[:20]:
        lines.append(f"  skipped {location}: {reason}")
    lines.append("")
    lines.append("Stages:")
    for result in stage_results:
        verdict = "kept" if result.kept else "discarded (no improvement)"
        lines.append(
            f"  {result.name:<12} unfreeze={result.unfreeze:<3} "
            f"epochs={result.epochs_run:<3} val_accuracy={result.val_accuracy:.4f}  {verdict}"
        )
    return "\n".join(lines + ["", body.rstrip()]) + "\n"


def write_files(run_dir, metrics, report, stage_results):
    """Writes `metrics.json` (stage summaries added), `report.txt` and the curves."""
    run_dir = Path(run_dir)
    metrics = {
        **metrics,
        "stages": [{k: v for k, v in vars(r).items() if k != "history"} for r in stage_results],
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run_dir / "report.txt").write_text(report)
    plot_training_curves(stage_results, run_dir / "training_curves.png")
    return metrics


def classification_body(metrics):
    """The report text of `classification_metrics`: accuracy, per-class table, matrix."""
    body = [
        f"Test accuracy: {metrics['accuracy']:.4f} ({metrics['num_examples']} "
        f"examples), macro F1 {metrics['macro_f1']:.4f}",
        "",
        metrics["text_report"],
        "Confusion matrix (rows: true, columns: predicted):",
    ]
    body += ["  " + " ".join(f"{count:4d}" for count in row) for row in metrics["confusion_matrix"]]
    return "\n".join(body)
