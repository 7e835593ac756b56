"""Calibration tests of quantile forecasts (trainables.quantiles' convention) on the test split.

A hit is an event the forecast says happens with probability p: y outside the 80 % band
(p = 0.2), below the 0.025 quantile or above the 0.975 quantile (p = 0.025 each). Per event:

- Kupiec (1995) proportion of failures on the step-1 hits: LR_pof ~ χ²(1);
- Christoffersen (1998) conditional coverage LR_cc = LR_pof + LR_ind ~ χ²(2), LR_ind the
  first-order Markov independence LR, its transitions counted within each time-ordered sequence
  (asset × fold), never across two;
- a coverage t-test over all h steps: per origin mean hit − p, Newey–West variance (Bartlett,
  h − 1 lags: trainables.metrics.hac_variance), reference N(0, 1).

A test runs only where it expects at least 5 hits (n·p ≥ 5); otherwise it is "untested" (None).
The verdict is Bonferroni over the tests that ran. The PIT histogram of step 1 is a diagnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from trainables.metrics import hac_variance
from trainables.quantiles import LEVELS, index

MIN_EXPECTED = 5  # fewer expected hits than this: the χ² / normal reference is not to be trusted


class CalibrationError(ValueError):
    """Inputs of inconsistent shapes."""


@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest class

    name: str
    stat: float
    pvalue: float
    n: int  # hit observations (origins × steps for the coverage test)
    hits: int
    expected: float  # the nominal hit rate p
    observed: float  # hits / n


def _pof(n: int, x: int, p: float) -> float:
    # xlogy(0, 0) = 0: the 0·ln 0 = 0 convention at x = 0 and x = n
    rate = x / n
    null = special.xlogy(n - x, 1 - p) + special.xlogy(x, p)
    fitted = special.xlogy(n - x, 1 - rate) + special.xlogy(x, rate)
    return float(max(0.0, -2 * (null - fitted)))  # max: rounding can make a zero LR −1e-16


def kupiec(hits: np.ndarray, p: float) -> Test | None:
    """Kupiec's proportion-of-failures test of the hit rate = p (χ²(1)); None when n·p < 5."""
    hits = np.asarray(hits, dtype=bool).ravel()
    n, x = len(hits), int(hits.sum())
    if n * p < MIN_EXPECTED:
        return None
    stat = _pof(n, x, p)
    return Test("kupiec", stat, float(stats.chi2.sf(stat, 1)), n, x, p, x / n)


def transitions(sequences: list[np.ndarray]) -> tuple[int, int, int, int]:
    """(n00, n01, n10, n11): hit-to-hit transition counts summed over the sequences, each counted
    within its own sequence (the last hit of one is not followed by the first of the next)."""
    counts = np.zeros((2, 2), dtype=int)
    for seq in sequences:
        seq = np.asarray(seq, dtype=bool).ravel().astype(int)
        np.add.at(counts, (seq[:-1], seq[1:]), 1)
    return int(counts[0, 0]), int(counts[0, 1]), int(counts[1, 0]), int(counts[1, 1])


def independence(sequences: list[np.ndarray]) -> float:
    """Christoffersen's LR_ind: first-order Markov hits against independent ones (χ²(1) alone).

    A row with no transitions (say no hit ever precedes another observation: n10 + n11 = 0)
    contributes 0 to both log-likelihoods, the standard convention."""
    n00, n01, n10, n11 = transitions(sequences)
    total = n00 + n01 + n10 + n11
    if total == 0:
        return 0.0
    pi = (n01 + n11) / total
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    null = special.xlogy(n00 + n10, 1 - pi) + special.xlogy(n01 + n11, pi)
    markov = (
        special.xlogy(n00, 1 - pi01)
        + special.xlogy(n01, pi01)
        + special.xlogy(n10, 1 - pi11)
        + special.xlogy(n11, pi11)
    )
    return float(max(0.0, -2 * (null - markov)))


def christoffersen(sequences: list[np.ndarray], p: float) -> Test | None:
    """Christoffersen's conditional coverage LR_pof + LR_ind (χ²(2)) over time-ordered hit
    sequences (one per asset × fold); LR_pof on all hits pooled. None when the pooled n·p < 5."""
    pooled = np.concatenate([np.asarray(s, dtype=bool).ravel() for s in sequences]) if sequences else np.zeros(0, bool)
    n, x = len(pooled), int(pooled.sum())
    if n * p < MIN_EXPECTED:
        return None
    stat = _pof(n, x, p) + independence(sequences)
    return Test("christoffersen", stat, float(stats.chi2.sf(stat, 2)), n, x, p, x / n)


def hac_coverage(hits: np.ndarray, p: float) -> Test | None:
    """Two-sided test of hit rate = p over all steps of an h-step forecast.

    `hits` is (origins, horizon). Per origin d = mean hit over the steps − p; the statistic is
    mean(d) / sqrt(hac_variance(d, h) / n), referred to N(0, 1) (asymptotic: no small-sample
    correction). Overlapping h-step forecasts make d correlated up to lag h − 1, hence the HAC
    variance. `n` of the result counts hit observations (origins × steps). None when fewer than
    5 hits are expected or when d is constant at 0; a constant non-zero d gives p-value 0."""
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise CalibrationError(f"hits must be (origins, horizon), got shape {hits.shape}")
    origins, h = hits.shape
    if origins * h * p < MIN_EXPECTED:
        return None
    d = hits.mean(axis=1) - p
    mean, var = float(d.mean()), hac_variance(d, h)
    if var < 1e-15:  # constant d (up to the rounding of its mean): only its sign can decide
        if abs(mean) < 1e-12:
            return None
        stat, pvalue = float(np.sign(mean) * np.inf), 0.0
    else:
        stat = mean / np.sqrt(var / origins)
        pvalue = float(2 * stats.norm.sf(abs(stat)))
    x = int(hits.sum())
    return Test("hac", float(stat), pvalue, origins * h, x, p, x / (origins * h))


# Expected share of each PIT bin: below q0.025, between consecutive levels, above q0.975.
PIT_SHARES = tuple(float(s) for s in np.diff([0.0, *LEVELS, 1.0]))


@dataclass(frozen=True)
class PIT:
    counts: tuple[int, ...]  # len(LEVELS) + 1 bins
    expected: tuple[float, ...]  # PIT_SHARES
    stat: float  # Pearson χ²; NaN when n = 0
    pvalue: float  # χ²(len(LEVELS)), a diagnostic only
    n: int


def pit(y: np.ndarray, q: np.ndarray) -> PIT:
    """PIT histogram of y (n,) among its quantiles q (n, len(LEVELS)), sorted.

    The bin of y is the number of quantiles ≤ y: a y equal to a quantile goes to the bin above
    it. Rows with any NaN quantile (or a NaN y) are dropped."""
    y, q = np.asarray(y, dtype="float64"), np.asarray(q, dtype="float64")
    if q.shape != (len(y), len(LEVELS)):
        raise CalibrationError(f"q must be ({len(y)}, {len(LEVELS)}), got shape {q.shape}")
    ok = np.isfinite(y) & np.isfinite(q).all(axis=1)
    y, q = y[ok], q[ok]
    counts = np.bincount((q <= y[:, None]).sum(axis=1), minlength=len(LEVELS) + 1)
    n = len(y)
    if n == 0:
        return PIT(tuple(int(c) for c in counts), PIT_SHARES, float("nan"), float("nan"), 0)
    expected = n * np.asarray(PIT_SHARES)
    stat = float(np.sum((counts - expected) ** 2 / expected))
    return PIT(tuple(int(c) for c in counts), PIT_SHARES, stat, float(stats.chi2.sf(stat, len(LEVELS))), n)


@dataclass(frozen=True)
class Event:
    """A hit: y below the `lower` level's quantile or above the `upper` one's (strictly, so a y on
    a band's edge is inside it). A band has both; a tail one."""

    name: str
    p: float
    lower: float | None
    upper: float | None

    @property
    def band(self) -> bool:
        return self.lower is not None and self.upper is not None

    def hits(self, y: np.ndarray, q: np.ndarray) -> np.ndarray:
        """1.0 / 0.0 per entry of y (any shape; q has one more axis at LEVELS), NaN where a needed
        quantile or y is NaN."""
        y, q = np.asarray(y, dtype="float64"), np.asarray(q, dtype="float64")
        hit, ok = np.zeros(y.shape, dtype=bool), np.isfinite(y)
        for level, below in ((self.lower, True), (self.upper, False)):
            if level is not None:
                edge = q[..., index(level)]
                hit |= y < edge if below else y > edge
                ok &= np.isfinite(edge)
        return np.where(ok, hit, np.nan)


EVENTS = (
    Event("80 % band", 0.2, 0.1, 0.9),
    Event("lower 2.5 % tail", 0.025, 0.025, None),
    Event("upper 2.5 % tail", 0.025, None, 0.975),
)
_BAND95 = Event("95 % band", 0.05, 0.025, 0.975)  # for the reported coverage only, not tested


def _json(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None  # JSON has no NaN or inf


@dataclass(frozen=True)
class Calibration:
    tests: list[Test]
    pit: PIT  # step 1; a diagnostic, not part of the word
    coverage80: float  # observed coverage of the 80 % band over all steps (NaN if none)
    coverage95: float
    word: str  # "calibrated", "miscalibrated: …" or "untested"

    def summary(self) -> dict:
        """JSON-ready: non-finite numbers become None."""
        return {
            "word": self.word,
            "coverage80": _json(self.coverage80),
            "coverage95": _json(self.coverage95),
            "tests": [
                {"name": t.name, "stat": _json(t.stat), "pvalue": _json(t.pvalue), "n": t.n, "observed": t.observed}
                for t in self.tests
            ],
            "pit": {"counts": list(self.pit.counts), "stat": _json(self.pit.stat), "pvalue": _json(self.pit.pvalue)},
        }


def _rate(hits: np.ndarray) -> float:
    return float(np.nanmean(hits)) if np.isfinite(hits).any() else float("nan")


def calibrate(y: np.ndarray, q: np.ndarray, sequence: np.ndarray, level: float = 0.05) -> Calibration:
    """The tests of every event (module doc) on y (n, h), q (n, h, len(LEVELS)); `sequence` (n,)
    labels each origin's time-ordered sequence (asset × fold), rows in time order within each.

    Rows whose needed quantiles are NaN are dropped per event (step 1 for Kupiec and
    Christoffersen, any step for the coverage test). The word names the most significant failing
    event (smallest p-value, then largest |stat|) with its observed rate over every available step."""
    y, q, sequence = np.asarray(y, dtype="float64"), np.asarray(q, dtype="float64"), np.asarray(sequence)
    if y.ndim != 2 or q.shape != (*y.shape, len(LEVELS)) or sequence.shape != (len(y),):
        raise CalibrationError(
            f"expected y (n, h), q (n, h, {len(LEVELS)}), sequence (n,); got {y.shape}, {q.shape}, {sequence.shape}"
        )
    labels = np.unique(sequence)
    ran: list[tuple[Test, Event]] = []
    for event in EVENTS:
        hits = event.hits(y, q)
        first = hits[:, 0]
        ok = np.isfinite(first)
        one = first[ok].astype(bool)
        seqs = [one[sequence[ok] == label] for label in labels]
        rows = np.isfinite(hits).all(axis=1)
        for test in (
            kupiec(one, event.p),
            christoffersen(seqs, event.p),
            hac_coverage(hits[rows].astype(bool), event.p),
        ):
            if test is not None:
                ran.append((_named(test, event), event))
    word = "untested"
    if ran:
        alpha = level / len(ran)  # Bonferroni over the tests that ran
        failed = sorted((t.pvalue, -abs(t.stat), k) for k, (t, _) in enumerate(ran) if t.pvalue < alpha)
        word = "calibrated"
        if failed:
            test, event = ran[failed[0][2]]
            rate = _rate(event.hits(y, q))
            word = (
                f"miscalibrated: {event.name} covers {1 - rate:.2f}"
                if event.band
                else f"miscalibrated: {event.name} hit {rate:.3f}"
            )
            rejected = {t.name for t, _ in ran if t.pvalue < alpha}
            if test.name.startswith("christoffersen") and f"kupiec {event.name}" not in rejected:
                # The rate itself passes: what fails is independence (misses come in runs).
                word += f", its misses cluster in time (Christoffersen p = {test.pvalue:.2g})"
    return Calibration(
        tests=[t for t, _ in ran],
        pit=pit(y[:, 0], q[:, 0]),
        coverage80=1 - _rate(EVENTS[0].hits(y, q)),
        coverage95=1 - _rate(_BAND95.hits(y, q)),
        word=word,
    )


def _named(test: Test, event: Event) -> Test:
    return Test(f"{test.name} {event.name}", test.stat, test.pvalue, test.n, test.hits, test.expected, test.observed)
