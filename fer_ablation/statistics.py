"""Statistics for the ablation tables: spread over seeds and paired tests against the baseline.

The one module that defines the statistical methods: pure functions on numbers and 0/1 correctness
arrays (numpy + scipy only, no torch), importable by the report and by training alike. The report
(`fer_ablation.report.rows`) only assembles table rows from them, fed with the records the runs
saved.

Methods (the README repeats them):

* Mean and spread over seeds: `mean_std` -- arithmetic mean and sample standard deviation
  (ddof = 1) of one metric over the seeds of a configuration.
* 95 % CI of accuracy, `accuracy_ci`: with n >= 2 seeds a Student t-interval over the seeds'
  accuracies (`t_interval`: mean +- t_{n-1, 0.975} s / sqrt(n)), i.e. the uncertainty of the
  mean due to training randomness. With a single seed that interval does not exist, so we give
  the Wilson score interval (`wilson_interval`) of the accuracy as a binomial proportion over the
  report split's samples -- the sampling uncertainty of one run's accuracy on a finite split.
  Both are clipped to [0, 1].
  The two answer different questions; the tables say which one a row uses ("t" or "Wilson").
* McNemar's exact test, `mcnemar_exact`, per seed pair: of the samples where the model and the
  baseline disagree on correctness (b: only the baseline right, c: only the model right), under
  H0 each is equally likely either way, so p = min(1, 2 P[Binomial(b + c, 1/2) <= min(b, c)]).
* Paired bootstrap, `paired_bootstrap`, over the report split's samples with the seeds kept paired:
  one resample of the sample indices is applied to every seed pair, and the statistic is the
  accuracy difference (model - baseline) averaged over the seed pairs. The 95 % CI is the
  percentile interval of n_boot = 10,000 resamples (fixed RNG seed); the two-sided p-value
  inverts that interval: p = min(1, 2 min(P*[delta* <= 0], P*[delta* >= 0])) with the usual
  +1 correction, so p < 0.05 exactly when 0 lies outside the 95 % percentile CI (up to the
  correction). This and McNemar hold the trained models fixed: they are per-seed diagnostics of
  report-split sample noise, not tests over retraining.
* Seed-level test, `seed_test` -- the verdict: the per-seed differences d_s = model_s - baseline_s
  (paired by seed), their mean with the Student t 95 % CI over the seed pairs, the two-sided paired
  t-test over the pairs (``scipy.stats.ttest_rel``) and, as an assumption-free check, the exact
  sign-flip permutation test of the mean difference (``scipy.stats.permutation_test``,
  permutation_type="samples": all 2^n sign patterns up to n = 16; its smallest possible p is
  2^(1-n), so it cannot go below 0.05 before 6 pairs).
* `holm`: Holm's step-down adjustment (Holm, "A simple sequentially rejective multiple test
  procedure", Scand. J. Statist. 6, 1979): with the m p-values sorted p_(1) <= ... <= p_(m),
  adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)).
* `seeds_for_power`: the smallest number of seed pairs n for which the two-sided paired t-test at
  alpha has the wanted power against a true mean difference `effect` with seed-to-seed SD `sd` of
  the differences: power(n) = P[|T| > t_{n-1, 1-alpha/2}] with T ~ noncentral t(df = n - 1,
  nc = (effect / sd) sqrt(n)) (``scipy.stats.nct``); Cohen (1988), "Statistical Power Analysis
  for the Behavioral Sciences", ch. 2.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

ALPHA = 0.05


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) over seeds; std is nan for a single value.

    Empty input gives (nan, nan).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size >= 2 else math.nan
    return mean, std


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Student t confidence interval of the mean: mean +- t_{n-1, (1+confidence)/2} * s / sqrt(n)
    (``scipy.stats.t.interval``).

    Needs n >= 2 values; with zero spread the interval collapses to the mean.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {x.size}")
    # The standard t's quantiles times s / sqrt(n), in the formula's order: passing loc/scale to
    # t.interval rounds differently in the last bits, which would change the committed table CSVs.
    t_low, t_high = _scipy_stats.t.interval(confidence, df=x.size - 1)
    mean, std = float(x.mean()), float(x.std(ddof=1))
    return mean + float(t_low) * std / math.sqrt(x.size), mean + float(t_high) * std / math.sqrt(x.size)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion successes / n
    (``scipy.stats.binomtest(successes, n).proportion_ci(method="wilson")``).

    centre = (p + z^2 / 2n) / (1 + z^2 / n), half = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n),
    with p = successes / n and z the standard normal (1 + confidence) / 2 quantile (Wilson, "Probable
    inference, the law of succession, and statistical inference", JASA 1927).
    """
    if n <= 0:
        raise ValueError(f"a Wilson interval needs n > 0 samples, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    ci = _scipy_stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # "t" (over seeds) | "Wilson" (over samples, single seed) | "" (no runs)


def accuracy_ci(accuracies, n_samples: int | None = None, confidence: float = 0.95) -> Interval:
    """95 % CI for accuracy: t-interval over seeds when n >= 2, Wilson over samples for one seed.

    `accuracies` are fractions, one per seed; `n_samples` is the split size (needed for one seed).
    The t-interval is clipped to [0, 1] (with 2-3 seeds it can reach past either end). No seeds
    (or one seed without a sample count) gives a nan interval.
    """
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.size >= 2:
        low, high = t_interval(acc, confidence)
        return Interval(max(0.0, low), min(1.0, high), "t")
    if acc.size == 1 and n_samples:
        correct = int(round(float(acc[0]) * n_samples))
        return Interval(*wilson_interval(correct, int(n_samples), confidence), "Wilson")
    return Interval(math.nan, math.nan, "")


@dataclass(frozen=True)
class McNemar:
    b: int  # only the baseline right
    c: int  # only the model right
    p_value: float


def mcnemar_exact(model_correct, baseline_correct) -> McNemar:
    """McNemar's exact test on paired 0/1 correctness over the same samples.

    Two-sided: p = min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)]) (``scipy.stats.binomtest``, whose
    two-sided p for a probability of 1/2 is this doubled tail); no discordant pairs gives p = 1.
    """
    m = np.asarray(model_correct, dtype=bool)
    r = np.asarray(baseline_correct, dtype=bool)
    if m.shape != r.shape:
        raise ValueError(f"paired arrays differ in shape: {m.shape} vs {r.shape}")
    b = int(np.sum(r & ~m))
    c = int(np.sum(m & ~r))
    if b + c == 0:
        return McNemar(b, c, 1.0)
    return McNemar(b, c, float(_scipy_stats.binomtest(c, b + c, 0.5).pvalue))


@dataclass(frozen=True)
class Bootstrap:
    delta: float  # mean over seed pairs of (model accuracy - baseline accuracy), fraction
    low: float
    high: float
    p_value: float
    n_boot: int
    n_seeds: int
    n_samples: int

    @property
    def significant(self) -> bool:
        """The 95 % (1 - alpha) bootstrap CI of the difference excludes 0."""
        return bool(self.low > 0 or self.high < 0)


def paired_bootstrap(
    model_correct,
    baseline_correct,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 1 - ALPHA,
    chunk: int = 1000,
) -> Bootstrap:
    """Paired bootstrap of the accuracy difference over samples, seeds kept paired.

    `model_correct`, `baseline_correct`: 0/1 arrays of shape [seeds, samples] (or [samples]),
    row s of both from the same seed, column i the same report-split sample. Every resample draws
    sample indices once and applies them to all seed pairs; its statistic is the mean over seed
    pairs of the accuracy difference. Because every seed sees the same indices this equals the
    mean over the resampled samples of d_i = mean_s (model_si - baseline_si), which is what is
    computed (in chunks of `chunk` resamples to bound memory on large splits). Inputs are
    correctness indicators (bool or 0/1).
    """
    m = np.atleast_2d(np.asarray(model_correct, dtype=bool))
    r = np.atleast_2d(np.asarray(baseline_correct, dtype=bool))
    if m.shape != r.shape:
        raise ValueError(f"paired arrays differ in shape: {m.shape} vs {r.shape}")
    n_seeds, n = m.shape
    if n == 0 or n_seeds == 0:
        raise ValueError("paired bootstrap needs at least one seed pair and one sample")
    # Integer sums keep the resampled differences exact, so "<= 0" / ">= 0" count ties correctly.
    d = (m.astype(np.int64) - r.astype(np.int64)).sum(axis=0)
    scale = n_seeds * n
    delta = float(d.sum() / scale)
    rng = np.random.default_rng(seed)
    sums = np.empty(n_boot, dtype=np.int64)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        sums[start:stop] = d[idx].sum(axis=1)
    boot = sums / scale
    tail = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(boot, [tail, 1 - tail]))
    below = (1 + np.count_nonzero(sums <= 0)) / (n_boot + 1)
    above = (1 + np.count_nonzero(sums >= 0)) / (n_boot + 1)
    p = min(1.0, 2 * min(below, above))
    return Bootstrap(delta, low, high, p, n_boot, n_seeds, n)


def macro_scores(targets, preds, num_classes: int) -> dict[str, float]:
    """Accuracy and macro precision / recall / F1 from labels, as the training records define them.

    Macro averages run over the classes present in the targets or the predictions (a class absent
    from both is left out); a class never predicted has precision 0, never present recall 0 --
    the convention of torchmetrics' macro averaging and scikit-learn with zero_division=0.
    """
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    if t.size == 0:
        raise ValueError("no samples to score")
    cm = np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    actual = cm.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (predicted + actual) > 0
    return {
        "accuracy": float(tp.sum() / t.size),
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "f1_macro": float(f1[present].mean()),
        "n": int(t.size),
    }


MIN_SEED_PAIRS = 3  # fewer seed pairs give no verdict: a t-test on 2 pairs has 1 degree of freedom


@dataclass(frozen=True)
class SeedTest:
    """Model minus baseline over seed pairs: a test over retraining, not over report-split images."""

    differences: tuple  # per seed pair, in the order given
    mean: float
    low: float  # Student t 95 % CI of the mean difference over seed pairs (nan with < 2 pairs)
    high: float
    p_value: float  # paired t-test (scipy.stats.ttest_rel), two-sided; nan with < 2 pairs
    p_permutation: float  # sign-flip permutation test of the mean, two-sided; nan with < 2 pairs
    sd: float  # sample SD (ddof = 1) of the differences; nan with < 2 pairs

    @property
    def n(self) -> int:
        return len(self.differences)


def seed_test(model, baseline, confidence: float = 1 - ALPHA) -> SeedTest:
    """Paired test over seeds: `model[s]` and `baseline[s]` are one metric of the runs with seed s."""
    m = np.asarray(model, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if m.shape != b.shape or m.ndim != 1:
        raise ValueError(f"seed_test needs two equal-length 1-D sequences, got shapes {m.shape} and {b.shape}")
    d = m - b
    if d.size == 0:
        raise ValueError("seed_test needs at least one seed pair")
    mean, sd = mean_std(d)
    low = high = p = p_perm = math.nan
    if d.size >= 2:
        low, high = t_interval(d, confidence)
        # Differences equal up to rounding make scipy warn of precision loss; the p it returns stands.
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(_scipy_stats.ttest_rel(m, b).pvalue)
        # Exact (every sign pattern) up to 16 pairs; beyond, 2^16 random sign patterns, fixed RNG.
        p_perm = float(_scipy_stats.permutation_test(
            (d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
            n_resamples=2**16, alternative="two-sided", rng=np.random.default_rng(0),
        ).pvalue)
    return SeedTest(tuple(float(x) for x in d), mean, low, high, p, p_perm, sd)


def holm(p_values) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order; nan entries are not tests (left nan, not counted in m)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"holm needs a 1-D sequence of p-values, got shape {p.shape}")
    valid = np.flatnonzero(~np.isnan(p))
    if ((p[valid] < 0) | (p[valid] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p_values!r}")
    adjusted = np.full(p.shape, math.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (order.size - i) * p[k]))
        adjusted[k] = running
    return [float(x) for x in adjusted]


def t_test_power(n: int, effect: float, sd: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs (see the module docstring)."""
    if n < 2:
        raise ValueError(f"a paired t-test needs n >= 2 pairs, got {n}")
    if not sd > 0:
        raise ValueError(f"the SD of the paired differences must be > 0, got {sd}")
    df = n - 1
    nc = effect / sd * math.sqrt(n)
    critical = _scipy_stats.t.ppf(1 - alpha / 2, df)
    return float(_scipy_stats.nct.sf(critical, df, nc) + _scipy_stats.nct.cdf(-critical, df, nc))


def seeds_for_power(effect: float, sd: float, alpha: float = ALPHA, power: float = 0.8,
                    max_n: int = 100_000) -> int | None:
    """Smallest n >= 2 seed pairs whose paired t-test reaches `power` at the true difference `effect`.

    Power grows with n, so the search doubles n until it is reached and then bisects. None when no
    n does: effect 0 or not finite, sd not finite or 0 (no spread measured: the calculation has
    nothing to go on), or more than max_n pairs needed.
    """
    if not (math.isfinite(effect) and math.isfinite(sd)) or effect == 0 or sd <= 0:
        return None
    low, high = 1, 2  # power(low) < wanted (n = 1 has no test), power(high) to be checked
    while t_test_power(high, effect, sd, alpha) < power:
        if high >= max_n:
            return None
        low, high = high, min(2 * high, max_n)
    while high - low > 1:
        mid = (low + high) // 2
        if t_test_power(mid, effect, sd, alpha) >= power:
            high = mid
        else:
            low = mid
    return high
