"""Intervals and the paired standard error, against textbook values."""

import numpy as np
import pytest

from tfx_transfer.evaluate import compare_to_baseline
from tfx_transfer.evaluate.entities import compare_micro_f1, micro_f1_interval
from tfx_transfer.evaluate.intervals import (
    bootstrap_interval,
    paired_standard_error,
    wilson_interval,
)


def test_wilson_interval_matches_the_textbook_formula_for_127_of_150():
    # Wilson (1927): (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),
    # worked by hand for p = 127/150, z = 1.96: 0.7804 to 0.8956.
    low, high = wilson_interval(127, 150)
    assert low == pytest.approx(0.7804, abs=1e-4)
    assert high == pytest.approx(0.8956, abs=1e-4)
    z, n, p = 1.959964, 150, 127 / 150
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((center - half, center + half), abs=1e-6)


def test_wilson_interval_stays_inside_zero_and_one():
    assert wilson_interval(0, 20)[0] == 0.0
    assert wilson_interval(20, 20)[1] == pytest.approx(1.0)
    assert wilson_interval(20, 20)[0] > 0.8


def test_bootstrap_interval_is_seeded_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = (rng.random(100) < 0.8).astype(float)
    large = (rng.random(10_000) < 0.8).astype(float)
    first = bootstrap_interval(lambda i: small[i].mean(), len(small), seed=3)
    assert first == bootstrap_interval(lambda i: small[i].mean(), len(small), seed=3)
    wide = first[1] - first[0]
    narrow = np.subtract(*bootstrap_interval(lambda i: large[i].mean(), len(large))[::-1])
    assert 0.1 < wide < 0.25  # about 4 standard errors of 0.04
    assert narrow < wide / 5


def test_paired_standard_error_ignores_examples_both_models_agree_on():
    a = np.r_[np.ones(90), np.zeros(10)]
    b = np.r_[np.ones(90), np.ones(5), np.zeros(5)]
    gain, error = paired_standard_error(a, b)
    assert gain == pytest.approx(0.05)
    assert error == pytest.approx(np.std(b - a, ddof=1) / 10)
    # Unpaired binomial errors would be about three times larger.
    assert error < np.sqrt(0.9 * 0.1 / 100)


def test_comparison_with_a_baseline_says_beats_only_beyond_the_noise():
    truth = np.ones(200)
    clearly = compare_to_baseline(truth, np.r_[np.ones(150), np.zeros(50)])
    assert clearly["verdict"] == "beats" and clearly["interval"][0] > 0
    barely = compare_to_baseline(np.r_[np.ones(101), np.zeros(99)],
                                 np.r_[np.ones(100), np.zeros(100)])
    assert barely["verdict"] == "does not beat"
    assert compare_to_baseline(np.zeros(200), truth)["verdict"] == "is worse than"


def test_entity_f1_interval_and_comparison_resample_sentences():
    true = [["B-per", "I-per", "O"], ["O", "B-loc"]] * 30
    perfect = [list(s) for s in true]
    half = [["B-per", "I-per", "O"], ["O", "O"]] * 30
    low, high = micro_f1_interval(true, half)
    assert low < 2 / 3 < high
    assert micro_f1_interval(true, perfect) == (1.0, 1.0)
    comparison = compare_micro_f1(true, perfect, half)
    assert comparison["gain"] == pytest.approx(1 - 2 / 3)
    assert comparison["verdict"] == "beats"
