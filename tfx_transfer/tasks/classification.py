"""What the one-label-per-example tasks (images, text) share: loss, report, outputs."""

import keras
import numpy as np
import tensorflow as tf

from tfx_transfer import evaluate, stages
from tfx_transfer.data import class_weights
from tfx_transfer.tasks.base import Task


class ClassificationTask(Task):
    """A task that gives each example one of `num_classes` labels.

    Subclasses supply the backbone, the data and the serving input; this
    class supplies the objective (cross-entropy on one-hot labels, with
    class weights when the classes are imbalanced), the test report
    (per-class metrics and a confusion matrix) and the serving outputs.
    """

    def objective(self, config, data):
        weights = None
        if config.data.class_weights:
            weights = class_weights.class_weights(
                data.splits["train"].labels, len(data.class_names)
            )
        return stages.Objective(
            loss=keras.losses.CategoricalCrossentropy(
                label_smoothing=config.model.label_smoothing
            ),
            metrics=("accuracy",),
            class_weight=weights,
        )

    def evaluate(self, classifier, test_data, data, run_dir, baseline=None):
        y_true, probabilities = evaluate.predict_dataset(classifier.model, test_data)
        metrics = evaluate.classification_metrics(y_true, probabilities, data.class_names)
        if baseline is not None:
            predicted = np.asarray(baseline.predictions)
            scores = evaluate.classification_metrics(
                y_true, np.eye(len(data.class_names))[predicted], data.class_names
            )
            metrics["baseline"] = {
                "name": baseline.name, "details": baseline.details,
                **{key: scores[key] for key in
                   ("accuracy", "accuracy_interval", "macro_f1", "macro_f1_interval")},
            }
            metrics["vs_baseline"] = evaluate.compare_to_baseline(
                probabilities.argmax(axis=1) == y_true, predicted == y_true
            )
        evaluate.plot_confusion_matrix(
            metrics["confusion_matrix"], data.class_names, run_dir / "confusion_matrix.png"
        )
        return metrics, evaluate.classification_body(metrics)


def serving_outputs(probabilities, class_names):
    """The serving signature's outputs: `probabilities` `[N, C]` and `label` `[N]`.

    Args:
        probabilities: float tensor `[N, C]`.
        class_names: sequence of str. Index -> label, baked into the graph.

    Returns:
        A dict of the two tensors.
    """
    labels = tf.constant(list(class_names))
    return {
        "probabilities": probabilities,
        "label": tf.gather(labels, tf.argmax(probabilities, axis=-1)),
    }
