"""What the two classification tasks (images, text) share: loss, weights, report.

`tasks/images.py` and `tasks/text.py` re-export these, so every task
module offers the same functions to `train.py`.
"""

import keras

from tfx_transfer import evaluate
from tfx_transfer.data import class_weights


def class_weight(data):
    """Returns `fit`'s class weights from the training labels, or None if balanced."""
    return class_weights.class_weights(data.splits["train"].labels, len(data.class_names))


def objective(model_config):
    """Returns `run_stages`' loss and metrics: cross-entropy on one-hot labels."""
    return {
        "loss": keras.losses.CategoricalCrossentropy(
            label_smoothing=model_config.label_smoothing
        ),
        "metrics": ("accuracy",),
    }


def write_report(model, test_data, data, prepared, stage_results, data_report, run_dir, header):
    """Writes the test report: per-class metrics and the confusion matrix."""
    return evaluate.write_report(
        model, test_data, data.class_names, stage_results, data_report, run_dir, header
    )
