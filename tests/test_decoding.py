"""BIO-constrained Viterbi decoding: always valid, and the most probable valid sequence."""

import itertools

import numpy as np

from tfx_transfer.decoding import bio_constraints, constrained_decode, is_valid_bio

TAGS = ["O", "B-person", "I-person", "B-geo-loc", "I-geo-loc"]


def _brute_force(probabilities):
    best, best_score = None, -np.inf
    for ids in itertools.product(range(len(TAGS)), repeat=len(probabilities)):
        if is_valid_bio([TAGS[i] for i in ids]):
            score = sum(np.log(max(probabilities[t, i], 1e-12)) for t, i in enumerate(ids))
            if score > best_score:
                best, best_score = ids, score
    return list(best)


def test_constraints_forbid_inside_tags_that_continue_nothing():
    start, transitions = bio_constraints(TAGS)
    assert start.tolist() == [True, True, False, True, False]
    assert transitions[TAGS.index("B-person"), TAGS.index("I-person")]
    assert not transitions[TAGS.index("B-person"), TAGS.index("I-geo-loc")]
    assert not transitions[TAGS.index("O"), TAGS.index("I-person")]


def test_decoding_fixes_a_crafted_invalid_sequence():
    # "Barack Obama visited Paris", badly: word by word the most probable tags
    # are B-person, I-geo-loc, O, I-person; two inside tags continue nothing.
    probabilities = np.array([[
        [0.05, 0.80, 0.10, 0.03, 0.02],
        [0.05, 0.20, 0.30, 0.05, 0.40],
        [0.90, 0.02, 0.02, 0.03, 0.03],
        [0.10, 0.05, 0.50, 0.30, 0.05],
    ]])
    argmax = [TAGS[i] for i in probabilities[0].argmax(-1)]
    assert not is_valid_bio(argmax)
    decoded = [TAGS[i] for i in constrained_decode(probabilities, [4], TAGS).numpy()[0]]
    assert decoded == ["B-person", "I-person", "O", "B-geo-loc"]


def test_decoding_is_the_most_probable_valid_sequence_and_never_invalid():
    rng = np.random.default_rng(0)
    for _ in range(60):
        width = int(rng.integers(1, 6))
        probabilities = rng.dirichlet(np.full(len(TAGS), 0.3), size=(1, width))
        decoded = constrained_decode(probabilities, [width], TAGS).numpy()[0].tolist()
        assert decoded == _brute_force(probabilities[0])
    # A padded batch, sentences of different lengths, one empty.
    probabilities = rng.dirichlet(np.full(len(TAGS), 0.2), size=(200, 12))
    lengths = rng.integers(0, 13, size=200)
    decoded = constrained_decode(probabilities, lengths, TAGS).numpy()
    assert decoded.shape == (200, 12)
    for row, length in zip(decoded, lengths):
        assert is_valid_bio([TAGS[i] for i in row[:length]])
    assert constrained_decode(np.zeros((2, 0, 5)), [0, 0], TAGS).shape == (2, 0)
