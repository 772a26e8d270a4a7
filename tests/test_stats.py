"""brackit.stats: each statistic against a hand computation with plain numpy and itertools."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats

from brackit.errors import ConfigError
from brackit.stats import (
    bootstrap_ci,
    bootstrap_interval,
    curve_ci,
    iqm,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_resamples,
)


def test_iqm_against_hand_computation_and_scipy():
    assert iqm([1.0, 2.0, 3.0, 100.0]) == 2.5  # n=4: drop one at each end, mean of 2 and 3
    assert iqm([100.0, 7, 6, 5, 4, 3, 2, 1]) == 4.5  # n=8: drop two at each end, mean of 3, 4, 5, 6
    assert iqm([5.0, 1, 4, 2, 3]) == 3.0  # n=5: floor(5/4) = 1 dropped at each end: mean of 2, 3, 4
    assert iqm([1.0, 2, 3]) == 2.0  # n<4: the plain mean
    rng = np.random.default_rng(0)
    for n in (5, 6, 7, 9, 10):
        x = rng.normal(size=n)
        np.testing.assert_allclose(iqm(x), scipy.stats.trim_mean(x, 0.25), rtol=1e-12)
    matrix = rng.normal(size=(3, 6))
    np.testing.assert_allclose(iqm(matrix, axis=1), scipy.stats.trim_mean(matrix, 0.25, axis=1), rtol=1e-12)


def test_optimality_gap_is_the_mean_shortfall_from_gamma():
    scores = np.array([20.0, 100.0, 130.0, 55.0])
    # max(100 - x, 0): 80, 0, 0 (above gamma counts as gamma), 45 -> mean 31.25
    assert optimality_gap(scores) == pytest.approx((80 + 0 + 0 + 45) / 4)
    assert optimality_gap(scores, gamma=50.0) == pytest.approx((30 + 0 + 0 + 0) / 4)
    # scores + 10 = 30, 110, 140, 65: shortfalls 70, 0, 0, 35 -> 26.25; one gap per row
    np.testing.assert_allclose(optimality_gap(np.stack([scores, scores + 10])), [31.25, 26.25])


def test_performance_profile_is_the_fraction_above_each_threshold():
    scores = np.array([10.0, 20.0, 20.0, 40.0, 70.0])
    taus = np.array([0.0, 10.0, 20.0, 39.9, 70.0, 100.0])
    expected = [np.mean([x > tau for x in scores]) for tau in taus]  # strictly above: 1, .8, .4, .4, 0, 0
    np.testing.assert_allclose(performance_profile(scores, taus), expected)
    assert expected == [1.0, 0.8, 0.4, 0.4, 0.0, 0.0]
    batch = performance_profile(np.stack([scores, scores - 100]), taus)  # [2, T]: one profile per row
    np.testing.assert_allclose(batch, [expected, np.zeros(6)])


def test_probability_of_improvement_on_two_tasks_of_three_runs():
    x = np.array([[1.0, 5.0, 3.0], [10.0, 10.0, 2.0]])  # [task, run]
    y = np.array([[2.0, 3.0, 4.0], [10.0, 1.0, 1.0]])
    per_task = [
        np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(x[task], y[task])])
        for task in range(2)
    ]
    # task 0: 1 beats none, 5 beats all 3, 3 beats 2 and ties 3 -> (0 + 3 + 1.5) / 9 = 0.5
    # task 1: 10 ties 10, beats 1, 1 (twice) -> 2 * 2.5, 2 beats 1, 1 -> (5 + 2) / 9
    assert per_task == pytest.approx([0.5, 7 / 9])
    assert probability_of_improvement(x, y) == pytest.approx(np.mean(per_task))
    assert probability_of_improvement(y, x) == pytest.approx(1 - np.mean(per_task))
    assert probability_of_improvement([x[0]], [x[0]]) == 0.5  # a group against itself: a coin flip
    # Tasks of different sizes: each task weighs the same, whatever its number of runs.
    assert probability_of_improvement([[1.0], [5.0, 5.0, 0.0]], [[0.0], [1.0]]) == pytest.approx(
        (1 + 2 / 3) / 2
    )
    with pytest.raises(ValueError, match="every stratum"):
        probability_of_improvement([[1.0], []], [[0.0], [1.0]])


def test_probability_of_improvement_ci():
    x, y = [np.array([1.0, 5.0, 3.0, 4.0])], [np.array([2.0, 3.0, 4.0, 0.0])]
    low, high = probability_of_improvement_ci(x, y, samples=1000, seed=1)
    assert 0.0 <= low <= probability_of_improvement(x, y) <= high <= 1.0 and low < high
    assert probability_of_improvement_ci(x, y, samples=1000, seed=1) == (low, high)
    # Every run of X above every run of Y, on both tasks: every resample says 1.
    separated = probability_of_improvement_ci([[5.0, 6.0], [9.0]], [[1.0, 2.0], [3.0, 4.0]], samples=200)
    assert separated == (1.0, 1.0)
    with pytest.raises(ConfigError, match="confidence"):
        probability_of_improvement_ci(x, y, confidence=1.5)


def test_stratified_resamples_keep_the_per_stratum_counts():
    strata = [np.array([0.1, 0.2, 0.3]), np.array([10.0, 11.0]), np.array([100.0])]
    resamples = stratified_resamples(strata, 500, np.random.default_rng(0))
    assert resamples.shape == (500, 6)
    assert np.all(np.isin(resamples[:, :3], strata[0]))  # columns in stratum order, drawn from their own
    assert np.all(np.isin(resamples[:, 3:5], strata[1]))
    assert np.all(resamples[:, 5] == 100.0)
    assert len(np.unique(resamples[:, :3])) == 3  # every value of a stratum gets drawn


def test_bootstrap_ci_contains_the_estimate_is_deterministic_and_narrows():
    rng = np.random.default_rng(1)
    few, many = rng.normal(50.0, 10.0, size=5), rng.normal(50.0, 10.0, size=80)
    low, high = bootstrap_ci([few], samples=1000, seed=3)
    assert low <= iqm(few) <= high
    assert bootstrap_ci([few], samples=1000, seed=3) == (low, high)
    assert bootstrap_ci([few], samples=1000, seed=4) != (low, high)
    many_low, many_high = bootstrap_ci([many], samples=1000, seed=3)
    assert many_high - many_low < (high - low) / 2
    # Stratified: a stratum with a single value is never resampled away, so the pooled IQM stays above it.
    assert bootstrap_ci([np.full(4, 1.0), np.array([0.0])], samples=200)[0] > 0.0
    assert bootstrap_ci([np.array([7.0])]) == (7.0, 7.0)
    with pytest.raises(ConfigError, match="at least 1"):
        bootstrap_ci([few], samples=0)


def test_bootstrap_ci_of_other_statistics():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    # Resamples of 5 values drawn from 5: the median is always one of them (the middle of an odd count).
    median_low, median_high = bootstrap_ci([values], samples=500, statistic=lambda r: np.median(r, axis=-1))
    assert {median_low, median_high} <= set(values) and median_low <= 3.0 <= median_high
    mean_low, mean_high = bootstrap_ci([values], samples=500, statistic=lambda r: np.mean(r, axis=-1))
    assert 1.0 < mean_low <= 22.0 <= mean_high < 100.0  # 22: the mean of 1, 2, 3, 4, 100
    # The optimality gap of scores that all reach gamma is 0 in every resample.
    assert bootstrap_ci([np.array([100.0, 120.0])], statistic=optimality_gap) == (0.0, 0.0)


def test_bootstrap_interval_of_a_performance_profile():
    scores = [np.array([10.0, 20.0, 30.0]), np.array([50.0, 60.0])]
    taus = np.array([0.0, 25.0, 100.0])
    low, high = bootstrap_interval(scores, lambda r: performance_profile(r, taus), samples=500, seed=0)
    assert low.shape == high.shape == (3,)
    assert (low[0], high[0]) == (1.0, 1.0) and (low[2], high[2]) == (0.0, 0.0)  # below all / above all
    # tau = 25: the second stratum's 2 runs are always above, the first's 3 runs give 0 to 3 more of 5.
    assert 2 / 5 <= low[1] <= performance_profile(np.concatenate(scores), taus)[1] <= high[1] <= 1.0


def test_curve_ci_resamples_whole_runs_and_skips_missing_values():
    runs = np.array([[1.0, 10.0, np.nan], [3.0, 10.0, 7.0], [2.0, 10.0, np.nan]])  # [S=3, T=3]
    low, high = curve_ci(runs, samples=500, seed=0)
    assert low[0] <= 2.0 <= high[0] and 1.0 <= low[0] and high[0] <= 3.0  # the mean of 1, 2, 3 lies inside
    assert (low[1], high[1]) == (10.0, 10.0)  # every run agrees
    assert (low[2], high[2]) == (7.0, 7.0)  # one run reached step 3: resamples without it are left out
    single_low, single_high = curve_ci(runs[:1, :2])
    np.testing.assert_array_equal(single_low, [1.0, 10.0])
    np.testing.assert_array_equal(single_high, [1.0, 10.0])
