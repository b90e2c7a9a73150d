"""The stage-selection rule: a later stage must beat the kept one beyond the noise."""

import numpy as np

from tfx_transfer import selection


def test_the_first_stage_is_kept():
    assert selection.decide("head", np.ones(10)).kept


def test_a_tie_within_noise_keeps_the_cheaper_earlier_stage():
    rng = np.random.default_rng(0)
    head = (rng.random(150) < 0.82).astype(float)
    # Two more right, one more wrong of 150: +0.7 points, well inside the noise.
    fine_tune = head.copy()
    wrong = np.flatnonzero(head == 0)[:2]
    right = np.flatnonzero(head == 1)[:1]
    fine_tune[wrong], fine_tune[right] = 1.0, 0.0
    decision = selection.decide("fine_tune", fine_tune, "head", head)
    assert fine_tune.mean() > head.mean()
    assert not decision.kept
    assert "within 1 standard error" in decision.reason
    assert "'head' kept" in decision.reason


def test_a_clear_gain_is_kept_and_a_loss_is_not():
    head = np.r_[np.ones(100), np.zeros(50)]
    better = np.r_[np.ones(130), np.zeros(20)]
    assert selection.decide("fine_tune", better, "head", head).kept
    worse = selection.decide("fine_tune", head[::-1] * 0, "head", head)
    assert not worse.kept and "not better" in worse.reason
