"""The test-set report: sklearn metrics, confusion matrix, training curves.

Writes `metrics.json` (for machines), `report.txt` (for people),
`confusion_matrix.png` and `training_curves.png` into the run directory.
"""

import json
from pathlib import Path

import numpy as np
from sklearn import metrics as sk_metrics

from tfx_transfer.evaluate.intervals import (
    bootstrap_interval,
    paired_standard_error,
    verdict,
    wilson_interval,
)
from tfx_transfer.evaluate.plots import plot_training_curves
from tfx_transfer.files import write_atomic
from tfx_transfer.progress import predict_bar

# The normal quantile of a two-sided 95% interval.
Z95 = 1.959964


def predict_dataset(model, dataset):
    """Returns (true class ids, predicted probabilities) over `dataset`.

    Args:
        model: keras.Model. Maps images to probabilities.
        dataset: tf.data.Dataset. Batches of (images, one-hot labels), in a
            fixed order.

    Returns:
        A tuple of int array `[N]` and float array `[N, C]`.
    """
    # `predict`, not `predict_on_batch`: see `tfx_transfer.selection.correctness`.
    probabilities = model.predict(dataset, verbose=predict_bar("Evaluating on the test split:"))
    labels = [np.argmax(one_hot, axis=-1) for _, one_hot in dataset]
    return np.concatenate(labels), probabilities


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
    y_true = np.asarray(y_true)
    return {
        "num_examples": int(len(y_true)),
        "accuracy": float(sk_metrics.accuracy_score(y_true, y_pred)),
        "accuracy_interval": list(wilson_interval(int(np.sum(y_true == y_pred)), len(y_true))),
        "macro_f1": float(per_class["macro avg"]["f1-score"]),
        "macro_f1_interval": list(bootstrap_interval(
            lambda index: _macro_f1(y_true[index], y_pred[index], labels), len(y_true)
        )),
        "per_class": {name: per_class[name] for name in class_names},
        "confusion_matrix": sk_metrics.confusion_matrix(
            y_true, y_pred, labels=labels
        ).tolist(),
        "text_report": sk_metrics.classification_report(
            y_true, y_pred, labels=labels, target_names=list(class_names),
            digits=4, zero_division=0,
        ),
    }


def _macro_f1(y_true, y_pred, labels):
    return sk_metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)


def compare_to_baseline(model_correct, baseline_correct, metric="accuracy"):
    """The model's gain over the baseline on the same test units, with a 95% interval.

    Args:
        model_correct: array `[N]`. 1.0 where the model is right.
        baseline_correct: array `[N]`. 1.0 where the baseline is right.
        metric: str. What the gain is in, for the text.

    Returns:
        A dict: `metric`, `gain`, `interval` (normal, from the paired
        standard error) and `verdict` ("beats", "does not beat" or "is
        worse than": the interval above 0, across it, or below it).

    Example:

    >>> compare_to_baseline(np.ones(100), np.r_[np.ones(80), np.zeros(20)])["verdict"]
    'beats'
    """
    gain, error = paired_standard_error(baseline_correct, model_correct)
    low, high = gain - Z95 * error, gain + Z95 * error
    return {"metric": metric, "gain": gain, "interval": [low, high],
            "verdict": verdict((low, high))}


def baseline_text(baseline_metrics, comparison, score, interval):
    """The report's baseline lines: its score, and by how much the model beats it."""
    low, high = comparison["interval"]
    within = " (within the noise)" if comparison["verdict"] == "does not beat" else ""
    return (
        f"Baseline, {baseline_metrics['name']} ({baseline_metrics['details']}): "
        f"{score} {baseline_metrics[comparison['metric']]:.4f} "
        f"(95% interval {_interval(interval)})\n"
        f"The model {comparison['verdict']} the baseline{within}: "
        f"{100 * comparison['gain']:+.1f} points of {score} "
        f"(95% interval {100 * low:+.1f} to {100 * high:+.1f})."
    )


def _interval(interval):
    return f"{interval[0]:.4f}-{interval[1]:.4f}"


def converted_line(data_report):
    """One line naming the odd image formats a run converted, and how many of each."""
    kinds = ", ".join(f"{count} {kind}" for kind, count in data_report["converted"].items())
    return (f"converted {data_report['num_converted']} odd-format image(s): {kinds} "
            "(each file in data_report.json)")


def format_report(header, data_report, stage_results, body):
    """Returns `report.txt`: header, data, stages, then the task's own `body`."""
    lines = [header, ""]
    totals = data_report.get("totals", {})
    lines.append("Data: " + ", ".join(
        f"{split} {count}" for split, count in totals.items()
    ) + f"; skipped {data_report.get('num_skipped', 0)} unreadable example(s)")
    for location, reason in data_report.get("skipped", [])[:20]:
        lines.append(f"  skipped {location}: {reason}")
    if data_report.get("num_converted"):
        lines.append("  " + converted_line(data_report))
    lines.append("")
    lines.append("Stages:")
    tuned_on_train = False  # A contrastive stage has seen every training example.
    for result in stage_results:
        outcome = "kept" if result.kept else "discarded (no gain beyond the noise)"
        gain = (f" (gain {result.gain:+.4f}, standard error {result.gain_standard_error:.4f})"
                if result.gain_standard_error else "")
        chose = "".join(f" {key}={value:g}" for key, value in result.settings.items()
                        if not isinstance(value, (bool, str)))
        if result.settings.get("refit"):
            chose += ", then refitted on train + val"
        if result.settings.get("stopped"):
            chose += f"; stopped: {result.settings['stopped']}"
        score = ("n/a   " if result.val_accuracy is None else f"{result.val_accuracy:.4f}")
        if "folds" in result.settings:
            score += (f" ({result.settings['folds']}-fold cross-validated"
                      + ("; optimistic: the encoder was tuned on these examples"
                         if tuned_on_train else "") + ")")
        tuned_on_train = tuned_on_train or "pairs" in result.settings
        lines.append(
            f"  {result.name:<12} unfreeze={result.unfreeze:<3} "
            f"epochs={result.epochs_run:<3} val_accuracy={score}{gain}  {outcome}{chose}"
        )
    return "\n".join(lines + ["", body.rstrip()]) + "\n"


def write_files(run_dir, metrics, report, stage_results):
    """Writes `metrics.json` (stage summaries added), `report.txt` and the curves."""
    run_dir = Path(run_dir)
    metrics = {
        **metrics,
        "stages": [{k: v for k, v in vars(r).items() if k != "history"} for r in stage_results],
    }
    write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_atomic(run_dir / "report.txt", report)
    plot_training_curves(stage_results, run_dir / "training_curves.png")
    return metrics


def classification_body(metrics):
    """The report text of `classification_metrics`: accuracy, per-class table, matrix."""
    body = [
        f"Test accuracy: {metrics['accuracy']:.4f} (95% interval "
        f"{_interval(metrics['accuracy_interval'])}; {metrics['num_examples']} examples), "
        f"macro F1 {metrics['macro_f1']:.4f} ({_interval(metrics['macro_f1_interval'])})",
    ]
    if "baseline" in metrics:
        baseline = metrics["baseline"]
        body.append(baseline_text(baseline, metrics["vs_baseline"], "accuracy",
                                  baseline["accuracy_interval"]))
    body += [
        "",
        metrics["text_report"],
        "Confusion matrix (rows: true, columns: predicted):",
    ]
    body += confusion_lines(metrics["confusion_matrix"], list(metrics["per_class"]))
    return "\n".join(body)


def confusion_lines(matrix, class_names):
    """The confusion matrix as text, its rows and columns labelled with the class names.

    Column heads are cut to the cell width; the rows carry the full names.

    Example:

    >>> print("\\n".join(confusion_lines([[5, 1], [0, 7]], ["cat", "dog"])))
           cat  dog
      cat    5    1
      dog    0    7
    """
    cell = max(4, min(8, max(len(name) for name in class_names)),
               max(len(str(count)) for row in matrix for count in row))
    left = max(len(name) for name in class_names)
    lines = ["  " + " " * left + "".join(f" {name[:cell]:>{cell}}" for name in class_names)]
    lines += [f"  {name:>{left}}" + "".join(f" {count:>{cell}d}" for count in row)
              for name, row in zip(class_names, matrix)]
    return lines
