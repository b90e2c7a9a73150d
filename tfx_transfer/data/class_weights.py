"""Class weights that balance the loss on an imbalanced training set."""

import numpy as np
from sklearn.utils.class_weight import compute_class_weight


def class_weights(labels, num_classes, imbalance_threshold=1.5):
    """Return balanced class weights, or None when the classes are balanced.

    Weights are sklearn's "balanced" ones, `n_examples / (num_classes *
    count)`, so a rare class's examples weigh more. They are only returned
    when the largest class outnumbers the smallest by more than
    `imbalance_threshold`; below that, weighting adds noise for no gain.

    Args:
        labels: sequence of int. the training labels, in `[0, num_classes)`.
        num_classes: int. the number of classes; each must occur.
        imbalance_threshold: float. largest/smallest class count ratio
            above which weights are returned.

    Returns:
        A dict `{class index: weight}` for `model.fit(class_weight=...)`,
        or None.

    Example:

    ```python
    class_weights([0, 0, 0, 0, 1], num_classes=2)  # {0: 0.625, 1: 2.5}
    class_weights([0, 1, 0, 1], num_classes=2)     # None
    ```
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels must be in [0, {num_classes}). Received: labels from "
            f"{labels.min()} to {labels.max()}"
        )
    counts = np.bincount(labels, minlength=num_classes)
    absent = np.flatnonzero(counts == 0).tolist()
    if absent:
        raise ValueError(
            f"Every class needs at least one training example. Received no "
            f"examples of classes {absent} (num_classes={num_classes})."
        )
    if counts.max() / counts.min() <= imbalance_threshold:
        return None
    classes = np.arange(num_classes)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}
