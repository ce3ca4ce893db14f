"""Statistics for the ablation tables: spread over seeds and paired tests against the baseline.

Pure functions on numbers and 0/1 correctness arrays (numpy + scipy only); the report
(`fer_ablation.report.statistics`) feeds them the records the runs saved.

Methods (the README repeats them):

* Mean and spread over seeds: `mean_std` -- arithmetic mean and sample standard deviation
  (ddof = 1) of one metric over the seeds of a configuration.
* 95 % CI of accuracy, `accuracy_ci`: with n >= 2 seeds a Student t-interval over the seeds'
  accuracies (`t_interval`: mean +- t_{n-1, 0.975} s / sqrt(n)), i.e. the uncertainty of the
  mean due to training randomness. With a single seed that interval does not exist, so we give
  the Wilson score interval (`wilson_interval`) of the accuracy as a binomial proportion over the
  validation samples -- the sampling uncertainty of one run's accuracy on a finite split.
  Both are clipped to [0, 1].
  The two answer different questions; the tables say which one a row uses ("t" or "Wilson").
* McNemar's exact test, `mcnemar_exact`, per seed pair: of the samples where the model and the
  baseline disagree on correctness (b: only the baseline right, c: only the model right), under
  H0 each is equally likely either way, so p = min(1, 2 P[Binomial(b + c, 1/2) <= min(b, c)]).
* Paired bootstrap, `paired_bootstrap`, over the validation samples with the seeds kept paired:
  one resample of the sample indices is applied to every seed pair, and the statistic is the
  accuracy difference (model - baseline) averaged over the seed pairs. The 95 % CI is the
  percentile interval of n_boot = 10,000 resamples (fixed RNG seed); the two-sided p-value
  inverts that interval: p = min(1, 2 min(P*[delta* <= 0], P*[delta* >= 0])) with the usual
  +1 correction, so p < 0.05 exactly when 0 lies outside the 95 % percentile CI (up to the
  correction). `significant` (alpha = 0.05) is driven by this bootstrap CI excluding 0.
"""

from __future__ import annotations

import math
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
    row s of both from the same seed, column i the same validation sample. Every resample draws
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
