"""SetFit's contrastive pairs: balanced, seeded, bounded, and right about classes."""

import numpy as np
import pytest

from tfx_transfer.few_shot import contrastive_pairs

LABELS = [0] * 8 + [1] * 8 + [2] * 8


def test_pairs_are_balanced_and_each_target_tells_the_truth():
    pairs = contrastive_pairs(LABELS, rounds=20, seed=3)
    assert pairs.shape == (2 * 20 * len(LABELS), 3)
    first, second, target = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    labels = np.asarray(LABELS)
    assert target.mean() == 0.5
    assert np.array_equal(labels[first] == labels[second], target == 1.0)
    assert not np.any(first == second)  # never an example with itself
    # Every example anchors 20 positive and 20 negative pairs.
    assert np.array_equal(np.bincount(first[target == 1]), np.full(len(LABELS), 20))
    assert np.array_equal(np.bincount(first[target == 0]), np.full(len(LABELS), 20))


def test_the_same_seed_gives_the_same_pairs_and_another_seed_others():
    same = contrastive_pairs(LABELS, seed=5), contrastive_pairs(LABELS, seed=5)
    assert np.array_equal(*same)
    assert not np.array_equal(same[0], contrastive_pairs(LABELS, seed=6))


def test_a_bound_keeps_the_balance():
    pairs = contrastive_pairs(LABELS, rounds=20, seed=0, max_pairs=100)
    assert pairs.shape == (100, 3) and pairs[:, 2].mean() == 0.5


def test_an_example_alone_in_its_class_sits_out():
    pairs = contrastive_pairs([0, 0, 0, 1], rounds=4, seed=0)
    assert 3 not in pairs[:, 0] and pairs[:, 2].mean() == 0.5
    assert 3 in pairs[:, 1]  # still a negative partner for the others
    with pytest.raises(ValueError, match="at least 2 classes"):
        contrastive_pairs([1, 1, 1])
    with pytest.raises(ValueError, match="at least 2 examples"):
        contrastive_pairs([0, 1, 2])
