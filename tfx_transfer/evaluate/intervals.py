"""95% intervals for test scores, and the paired standard error stage selection uses.

Accuracy is a binomial proportion: its interval is Wilson's score
interval (scipy), which stays inside [0, 1] and keeps its coverage on the
small test splits this package sees, where the normal approximation does
not. F1 scores are not proportions; their intervals come from a
percentile bootstrap over the test examples (or sentences), seeded, so a
report is reproducible.
"""

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 1000


def wilson_interval(successes, total, confidence=CONFIDENCE):
    """Returns Wilson's score interval of a binomial proportion.

    Args:
        successes: int. Correct predictions.
        total: int. All predictions; 0 gives (0.0, 1.0).
        confidence: float. Coverage of the interval.

    Returns:
        A tuple (low, high) of floats.

    Example:

    >>> [round(x, 4) for x in wilson_interval(127, 150)]
    [0.7804, 0.8956]
    """
    if total == 0:
        return 0.0, 1.0
    result = stats.binomtest(int(successes), int(total)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(result.low), float(result.high)


def bootstrap_interval(statistic, size, resamples=RESAMPLES, confidence=CONFIDENCE,
                       seed=0):
    """Returns a percentile-bootstrap interval of a statistic of `size` units.

    Each resample draws `size` unit indices with replacement and passes
    them to `statistic`, so one function serves any score over examples
    or sentences.

    Args:
        statistic: callable. Index array `[size]` -> float.
        size: int. Number of units (test examples, sentences).
        resamples: int. Bootstrap resamples.
        confidence: float. Coverage of the interval.
        seed: int. Seeds the resampling: the same inputs give the same interval.

    Returns:
        A tuple (low, high) of floats; (nan, nan) when `size` is 0.

    Example:

    >>> correct = np.array([1] * 8 + [0] * 2)
    >>> bootstrap_interval(lambda i: correct[i].mean(), 10)
    (0.5, 1.0)
    """
    if size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, size, size)) for _ in range(resamples)])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_standard_error(correct_a, correct_b):
    """Returns the mean gain of b over a and its standard error, on the same examples.

    The two models are scored on one validation set, so the noise that
    matters is that of the per-example differences: examples both get
    right or both get wrong cancel out. This is far tighter, and more
    honest, than comparing two independent binomial intervals.

    Args:
        correct_a: array `[N]`. 1.0 where model a is right, else 0.0 (or
            any per-example score).
        correct_b: array `[N]`. The same for model b.

    Returns:
        A tuple (gain, standard_error) of floats.

    Example:

    >>> paired_standard_error([1, 1, 0, 0], [1, 1, 1, 0])
    (0.25, 0.25)
    """
    difference = np.asarray(correct_b, float) - np.asarray(correct_a, float)
    if difference.size < 2:
        return float(difference.mean()) if difference.size else 0.0, float("inf")
    return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(difference.size))


def verdict(interval):
    """Says where a gain's 95% interval lies: "beats", "does not beat" or "is worse than".

    Example:

    >>> verdict((0.01, 0.05)), verdict((-0.02, 0.03))
    ('beats', 'does not beat')
    """
    low, high = interval
    return "beats" if low > 0 else "is worse than" if high < 0 else "does not beat"
