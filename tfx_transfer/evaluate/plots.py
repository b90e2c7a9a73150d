"""The report's figures: the confusion matrix and the training curves, as PNG."""

import io

import numpy as np
# Figures without pyplot: headless on servers and in CI, and a notebook's
# own backend (inline plots) is left as the user set it.
from matplotlib.figure import Figure
from sklearn import metrics as sk_metrics

from tfx_transfer.files import write_atomic


def plot_confusion_matrix(matrix, class_names, path):
    """Draws the confusion matrix with counts in the cells, saved as PNG."""
    matrix = np.asarray(matrix)
    size = max(5, 0.6 * len(class_names) + 2)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    sk_metrics.ConfusionMatrixDisplay(matrix, display_labels=list(class_names)).plot(
        ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45
    )
    axes.set_title("Confusion matrix (test split)")
    figure.tight_layout()
    _save(figure, path)


def plot_training_curves(stage_results, path):
    """Plots loss and accuracy over all stages' epochs, stages marked."""
    figure = Figure(figsize=(11, 4))
    loss_axes, acc_axes = figure.subplots(1, 2)
    offset = 0
    for result in stage_results:
        history = result.history
        epochs = np.arange(offset + 1, offset + len(history.get("loss", [])) + 1)
        if not len(epochs):
            continue
        for axes, key in ((loss_axes, "loss"), (acc_axes, "accuracy")):
            if key not in history:  # A contrastive stage logs its loss only.
                continue
            axes.plot(epochs, history[key], "o-", label=f"{result.name} train")
            if f"val_{key}" in history:
                axes.plot(epochs, history[f"val_{key}"], "s--", label=f"{result.name} val")
            if offset:
                axes.axvline(offset + 0.5, color="grey", linewidth=0.8)
        offset += len(epochs)
    for axes, title in ((loss_axes, "loss"), (acc_axes, "accuracy")):
        axes.set_xlabel("epoch (all stages)")
        axes.set_title(title)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def _save(figure, path):
    """Saves `figure` as a PNG at `path`, whole or not at all."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_atomic(path, buffer.getvalue())
