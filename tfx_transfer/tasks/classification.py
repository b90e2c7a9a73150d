"""What the two classification tasks (images, text) share: loss, weights, report.

`tasks/images.py` and `tasks/text.py` re-export these, so every task
module offers the same functions to `train.py`. `data_key` is the part of
every task's `feature_key` (tokens too) that describes the data.
"""

import keras

from tfx_transfer import evaluate
from tfx_transfer.data import class_weights
from tfx_transfer.data.fingerprint import data_fingerprint


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


def data_key(task, data, config, files=False):
    """Returns what every task's features depend on besides its preprocessing.

    Args:
        task: str. The task's name.
        data: the task's data (`LabelledData` or `TokenData`).
        config: `tfx_transfer.config.RunConfig`, resolved.
        files: bool. The examples are file paths, whose bytes are hashed.

    Returns:
        A JSON-able dict: task, class names, digests of the train and val
        splits (`data_fingerprint`), batch size and seed.

    Example:

    >>> data_key("text", data, config)["train"]
    '3f5c...'
    """
    return {
        "task": task,
        "class_names": list(data.class_names),
        **{name: data_fingerprint(data.splits[name], files) for name in ("train", "val")},
        "batch_size": config.data.batch_size,
        "seed": config.data.seed,
    }


def write_report(model, test_data, data, prepared, stage_results, data_report, run_dir, header):
    """Writes the test report: per-class metrics and the confusion matrix."""
    return evaluate.write_report(
        model, test_data, data.class_names, stage_results, data_report, run_dir, header
    )
