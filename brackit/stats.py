"""Robust statistics of scores over runs, after Agarwal et al. (2021), "Deep RL at the Edge of the
Statistical Precipice" (the rliable library), written with numpy alone.

Point estimates of a set of final scores ``values: [..., N]`` (N runs, pooled over tasks):

- ``iqm``: the interquartile mean (Section 4.3 of the paper);
- ``optimality_gap``: the mean shortfall from a target score gamma, ``mean(max(gamma - x, 0))``;
- ``performance_profile``: the fraction of runs whose score is above each threshold tau (the run-score
  distribution of Section 4.2, ``mean(x > tau)``);
- ``probability_of_improvement``: P(X > Y) of one group's runs over another's, the Mann-Whitney U statistic
  divided by n * m, with ties counted one half, averaged over the tasks both groups ran (Section 4.4).

Their uncertainty comes from the stratified bootstrap (``stratified_resamples``: strata = tasks, runs
resampled with replacement within each) and percentile intervals (``bootstrap_interval``, ``bootstrap_ci``,
``probability_of_improvement_ci``, ``curve_ci``). The probability of improvement resamples the two groups
independently within each task, as rliable's ``StratifiedIndependentBootstrap`` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from brackit.errors import ConfigError


def iqm(values: Any, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: sort, drop ``floor(n / 4)`` values at each end, average the rest.

    This is ``scipy.stats.trim_mean(values, 0.25)``, the definition rliable uses. For n not divisible by 4
    slightly more than the middle half is kept (n = 5: the middle 3, n = 6: the middle 4), without
    fractional weights; for n < 4 it is the plain mean.
    """
    values = np.sort(np.asarray(values, float), axis=axis)
    n = values.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty array")
    cut = n // 4
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def optimality_gap(values: Any, gamma: float = 100.0, axis: int = -1) -> np.ndarray:
    """``mean(max(gamma - x, 0))`` along ``axis``: how far the runs fall short of the score ``gamma``, with
    scores above it counting as gamma. gamma = 100 is the expert on the D4RL-normalized scale (rliable's
    default 1 is the same target on scores normalized to [0, 1])."""
    return np.maximum(gamma - np.asarray(values, float), 0.0).mean(axis=axis)


def performance_profile(values: Any, taus: Any) -> np.ndarray:
    """[..., T]: the fraction of the N scores of ``values: [..., N]`` strictly above each of ``taus: [T]``."""
    values, taus = np.asarray(values, float), np.asarray(taus, float)
    return (values[..., None, :] > taus[:, None]).mean(axis=-1)


def _pairwise_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[...]: the mean over the n * m pairs of ``x: [..., n]``, ``y: [..., m]`` of 1[x > y] + 1[x = y] / 2."""
    x, y = x[..., :, None], y[..., None, :]
    return (x > y).mean(axis=(-2, -1)) + 0.5 * (x == y).mean(axis=(-2, -1))


def probability_of_improvement(x_strata: Sequence[Any], y_strata: Sequence[Any]) -> float:
    """P(X > Y): the probability that a run of group X beats a run of group Y on the same task, ties counted
    one half, averaged over the tasks (``x_strata[i]`` and ``y_strata[i]``: the scores of task i)."""
    x_strata, y_strata = _paired_strata(x_strata, y_strata)
    return float(np.mean([_pairwise_improvement(x, y) for x, y in zip(x_strata, y_strata, strict=True)]))


def _paired_strata(
    x_strata: Sequence[Any], y_strata: Sequence[Any]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    x_strata = [np.asarray(x, float).ravel() for x in x_strata]
    y_strata = [np.asarray(y, float).ravel() for y in y_strata]
    if len(x_strata) != len(y_strata) or not x_strata:
        raise ValueError(
            f"one stratum of X per stratum of Y, at least one: got {len(x_strata)} and {len(y_strata)}"
        )
    if any(x.size == 0 for x in x_strata) or any(y.size == 0 for y in y_strata):
        raise ValueError("probability of improvement: every stratum needs at least one run of each group")
    return x_strata, y_strata


# ----------------------------------------------------------------------------------------- bootstrap


def stratified_resamples(strata: Sequence[np.ndarray], samples: int, rng: np.random.Generator) -> np.ndarray:
    """[samples, N] bootstrap resamples, N = total size: row b draws n_i values with replacement from each
    stratum i (columns in stratum order), so every resample keeps the per-stratum counts."""
    return np.concatenate([s[rng.integers(0, len(s), size=(samples, len(s)))] for s in strata], axis=1)


def _check(samples: int, confidence: float) -> None:
    if samples < 1:
        raise ConfigError(f"bootstrap samples must be at least 1, got {samples}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")


def _percentiles(estimates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval along axis 0 (NaN estimates ignored; NaN where all are)."""
    tail = 50.0 * (1.0 - confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: its interval is NaN
        low, high = np.nanpercentile(estimates, [tail, 100.0 - tail], axis=0)
    return low, high


def bootstrap_interval(
    strata: Sequence[Any],
    statistic: Callable[[np.ndarray], np.ndarray],
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of ``statistic`` of the pooled strata under the stratified bootstrap.

    ``statistic`` maps resamples [samples, N] to estimates [samples, ...] (e.g. ``iqm``, or
    ``lambda r: performance_profile(r, taus)``); returns (low, high), each of the estimates' trailing shape.
    """
    _check(samples, confidence)
    strata = [np.asarray(s, float).ravel() for s in strata if np.size(s)]
    if not strata:
        raise ValueError("a bootstrap interval needs at least one value")
    estimates = statistic(stratified_resamples(strata, samples, np.random.default_rng(seed)))
    return _percentiles(np.asarray(estimates, float), confidence)


def bootstrap_ci(
    strata: Sequence[Any],
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    statistic: Callable[[np.ndarray], np.ndarray] = iqm,
) -> tuple[float, float]:
    """Percentile confidence interval of a scalar ``statistic`` (default the IQM) of the pooled strata
    under the stratified bootstrap."""
    low, high = bootstrap_interval(strata, statistic, samples=samples, seed=seed, confidence=confidence)
    return float(low), float(high)


def probability_of_improvement_ci(
    x_strata: Sequence[Any],
    y_strata: Sequence[Any],
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``probability_of_improvement``: within each task the runs of X and those of Y
    are resampled independently, and the per-task probabilities averaged."""
    _check(samples, confidence)
    x_strata, y_strata = _paired_strata(x_strata, y_strata)
    rng = np.random.default_rng(seed)
    estimates = np.mean(
        [
            _pairwise_improvement(
                stratified_resamples([x], samples, rng), stratified_resamples([y], samples, rng)
            )
            for x, y in zip(x_strata, y_strata, strict=True)
        ],
        axis=0,
    )
    low, high = _percentiles(estimates, confidence)
    return float(low), float(high)


def curve_ci(
    runs: Any, samples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """([T], [T]): percentile interval of the mean over runs at each step of ``runs: [S, T]`` (NaN where a
    run has no value), resampling whole runs, so every step of a resample uses the same runs."""
    _check(samples, confidence)
    runs = np.asarray(runs, float)
    if runs.ndim != 2 or runs.shape[0] == 0:
        raise ValueError(f"curve_ci needs runs [S, T] with S >= 1, got shape {runs.shape}")
    present = ~np.isnan(runs)
    picks = stratified_resamples([np.arange(runs.shape[0])], samples, np.random.default_rng(seed))
    counts = np.zeros((samples, runs.shape[0]))  # [samples, S]: how often each run is drawn
    np.add.at(counts, (np.arange(samples)[:, None], picks), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a step none of the drawn runs reached: NaN
        estimates = (counts @ np.where(present, runs, 0.0)) / (counts @ present)
    return _percentiles(estimates, confidence)
