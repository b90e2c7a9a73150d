"""Which stage to keep: a later, costlier stage must beat the kept one beyond the noise.

The rule: a stage replaces the kept one only if its validation accuracy
is higher by more than one paired standard error of the per-example
differences (`intervals.paired_standard_error`). On a tie within noise
the earlier stage stays: it is the cheaper model to have trained and it
was chosen with fewer looks at the validation set, so its score is the
less optimistic one. Both models are scored on the same validation
examples (tokens: the same words), so examples they both get right or
both get wrong cancel out of the noise.
"""

import dataclasses

import numpy as np

from tfx_transfer.evaluate.intervals import paired_standard_error

# Standard errors a gain must exceed to count.
MARGIN = 1.0


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether a stage is kept, and why.

    Args:
        kept: bool.
        gain: float. Its validation accuracy minus the kept stage's.
        standard_error: float. Paired standard error of that gain.
        reason: str. One sentence for the log and the report.
    """

    kept: bool
    gain: float
    standard_error: float
    reason: str


def decide(name, correct, best_name=None, best_correct=None, margin=MARGIN):
    """Applies the rule to a finished stage.

    Args:
        name: str. The stage's name.
        correct: array `[N]`. 1.0 where it is right on a validation unit.
        best_name: str or None. The kept stage so far; None keeps this one.
        best_correct: array `[N]` or None. The kept stage's correctness.
        margin: float. Standard errors the gain must exceed.

    Returns:
        A `Decision`.

    Example:

    >>> decide("fine_tune", np.ones(100), "head", np.r_[np.ones(99), 0.0]).kept
    False
    """
    if best_name is None:
        return Decision(True, 0.0, 0.0, f"stage '{name}' is the first: kept, validation "
                        f"accuracy {np.mean(correct):.4f}")
    gain, error = paired_standard_error(best_correct, correct)
    numbers = (f"validation accuracy {np.mean(correct):.4f} vs {np.mean(best_correct):.4f} "
               f"of '{best_name}' (gain {gain:+.4f}, standard error {error:.4f})")
    if gain > margin * error and gain > 0:
        return Decision(True, gain, error, f"stage '{name}' kept: {numbers}")
    why = "not better" if gain <= 0 else f"within {margin:g} standard error"
    return Decision(False, gain, error,
                    f"stage '{name}' discarded, '{best_name}' kept: {numbers}; {why}")


def correctness(model, dataset):
    """Scores `model` on every unit of `dataset`: 1.0 where right, 0.0 where wrong.

    Args:
        model: keras.Model. Outputs probabilities `[batch, C]` or
            `[batch, length, C]`.
        dataset: tf.data.Dataset of (inputs, labels[, sample weights]) in
            a fixed order; labels one-hot `[batch, C]` or ids. Units of
            sample weight 0 (padding, later wordpieces) are left out.

    Returns:
        A float array with one entry per scored unit, in dataset order.
    """
    # `predict`, not `predict_on_batch`, which under a MirroredStrategy
    # gives every replica the whole batch and returns the copies.
    predicted = np.argmax(model.predict(dataset, verbose=0), axis=-1)
    scores, start = [], 0
    for batch in dataset:
        _, labels, *weights = batch
        labels = np.asarray(labels)
        if labels.ndim > predicted.ndim:
            labels = labels.argmax(axis=-1)
        right = (predicted[start:start + len(labels)] == labels).astype(np.float32)
        start += len(labels)
        if weights:
            right = right[np.asarray(weights[0]) > 0]
        scores.append(right.reshape(-1))
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)
