"""Few-shot learning: the training pairs of SetFit's contrastive stage.

With a handful of labelled examples a class, SetFit (Tunstall et al.,
2022) first fine-tunes the sentence encoder on pairs of them, pulling
examples of a class together and pushing other classes apart, then fits
the classification head on the new embeddings. `contrastive_pairs` draws
those pairs; `benchmarks/few_shot.py` measures the recipe.
"""

import numpy as np


def contrastive_pairs(labels, rounds=20, seed=0, max_pairs=None):
    """Draws SetFit's pairs: per example and round, one partner of its class and one of another.

    Every example with a classmate takes part in every round, so the pairs
    are balanced: exactly half share a class (target 1.0), half do not
    (target 0.0). An example alone in its class has no positive partner
    and sits out, so that the balance holds.

    Args:
        labels: sequence of int. Each training example's class.
        rounds: int. Pairs drawn per example and per target (SetFit's
            `num_iterations`).
        seed: int. The same seed gives the same pairs.
        max_pairs: int or None. A bound on the count (kept balanced), for
            larger training sets where `2 * rounds * N` would be too many.

    Returns:
        A float32 array of shape `[P, 3]`: first index, second index and
        target cosine similarity, shuffled.

    Raises:
        ValueError: fewer than two classes, or no class with two examples.

    Example:

    >>> pairs = contrastive_pairs([0, 0, 1, 1], rounds=2, seed=0)
    >>> pairs.shape, float(pairs[:, 2].mean())
    ((16, 3), 0.5)
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"Contrastive pairs need at least 2 classes. Received: {classes.tolist()}")
    index = np.arange(len(labels))
    members = {c: index[labels == c] for c in classes}
    anchors = [i for i in index if len(members[labels[i]]) > 1]
    if not anchors:
        raise ValueError("Contrastive pairs need a class with at least 2 examples.")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(rounds):
        for i in anchors:
            same = members[labels[i]]
            pairs.append((i, rng.choice(same[same != i]), 1.0))
            pairs.append((i, rng.choice(index[labels != labels[i]]), 0.0))
    pairs = np.asarray(pairs, dtype="float32")
    if max_pairs is not None and len(pairs) > max_pairs:
        # Whole (positive, negative) couples, so the bound keeps the balance.
        keep = rng.choice(len(pairs) // 2, max_pairs // 2, replace=False)
        pairs = pairs.reshape(-1, 2, 3)[np.sort(keep)].reshape(-1, 3)
    return pairs[rng.permutation(len(pairs))]
