"""fer_ablation.statistics against hand-computed cases and independent float64 references."""

import math

import numpy as np
import pytest

from fer_ablation import statistics as stats


def test_mean_std_is_sample_std():
    mean, std = stats.mean_std([0.70, 0.72, 0.74])
    assert mean == pytest.approx(0.72)
    assert std == pytest.approx(0.02)  # sqrt((0.02^2 + 0 + 0.02^2) / 2)
    assert math.isnan(stats.mean_std([0.7])[1])
    assert all(math.isnan(v) for v in stats.mean_std([]))


def test_t_interval_by_hand():
    # mean 0.72, s = 0.02, n = 3; with 2 degrees of freedom the t quantile has the closed form
    # t_p = (2p - 1) / sqrt(2 p (1 - p)), here p = 0.975 -> 4.3027
    t = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    low, high = stats.t_interval([0.70, 0.72, 0.74])
    half = t * 0.02 / math.sqrt(3)
    assert low == pytest.approx(0.72 - half, abs=1e-12)
    assert high == pytest.approx(0.72 + half, abs=1e-12)
    # zero spread collapses to the mean
    assert stats.t_interval([0.5, 0.5]) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError):
        stats.t_interval([0.5])


@pytest.mark.parametrize("k,n", [(30, 40), (0, 40), (40, 40), (280, 379)])
def test_wilson_endpoints_solve_the_score_equation(k, n):
    # Wilson's interval is {p : (k/n - p)^2 <= z^2 p (1 - p) / n}; its endpoints meet it with equality.
    z = 1.959963984540054
    low, high = stats.wilson_interval(k, n)
    for p in (low, high):
        assert (k / n - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, abs=1e-12)
    assert low <= k / n <= high


def test_accuracy_ci_switches_method_with_seed_count():
    three = stats.accuracy_ci([0.70, 0.72, 0.74])
    assert three.method == "t" and (three.low, three.high) == pytest.approx(stats.t_interval([0.70, 0.72, 0.74]))
    one = stats.accuracy_ci([0.75], n_samples=40)
    assert one.method == "Wilson" and (one.low, one.high) == pytest.approx(stats.wilson_interval(30, 40))
    assert math.isnan(stats.accuracy_ci([]).low)
    wide = stats.accuracy_ci([0.2, 0.9])  # t_{1} = 12.7: clipped to [0, 1]
    assert (wide.low, wide.high) == (0.0, 1.0)


def test_mcnemar_exact_known_split():
    # b = 1 (only baseline right), c = 9 (only model right), 30 concordant samples
    baseline = np.array([1] * 1 + [0] * 9 + [1] * 20 + [0] * 10, dtype=bool)
    model = np.array([0] * 1 + [1] * 9 + [1] * 20 + [0] * 10, dtype=bool)
    result = stats.mcnemar_exact(model, baseline)
    assert (result.b, result.c) == (1, 9)
    assert result.p_value == pytest.approx(2 * (1 + 10) / 2**10)  # = 0.021484375
    assert result.p_value == pytest.approx(0.021484375)
    # symmetric in the roles, and no discordant pair gives p = 1
    assert stats.mcnemar_exact(baseline, model).p_value == pytest.approx(0.021484375)
    assert stats.mcnemar_exact(model, model).p_value == 1.0
    # b = c: p = 2 * P[Bin(10, .5) <= 5] > 1 -> capped at 1
    assert stats.mcnemar_exact([1] * 5 + [0] * 5, [0] * 5 + [1] * 5).p_value == 1.0


def test_bootstrap_identical_predictions():
    rng = np.random.default_rng(1)
    correct = rng.random((3, 40)) < 0.7
    result = stats.paired_bootstrap(correct, correct)
    assert (result.delta, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0
    assert not result.significant
    assert (result.n_boot, result.n_seeds, result.n_samples) == (10_000, 3, 40)


def test_bootstrap_model_right_wherever_baseline_wrong():
    baseline = np.tile(np.arange(40) % 2 == 0, (3, 1))  # right on half the samples
    model = np.ones((3, 40), dtype=bool)  # right on every sample
    result = stats.paired_bootstrap(model, baseline)
    assert result.delta == pytest.approx(0.5)
    assert result.low > 0 and result.significant
    assert result.p_value == pytest.approx(2 / 10_001)  # no resample reaches 0: the +1 floor
    # the opposite direction is significant too, with the mirrored interval
    reverse = stats.paired_bootstrap(baseline, model)
    assert reverse.high < 0 and (reverse.low, reverse.high) == pytest.approx((-result.high, -result.low))


def test_bootstrap_matches_explicit_per_seed_reference():
    rng = np.random.default_rng(7)
    model = rng.random((2, 30)) < 0.75
    baseline = rng.random((2, 30)) < 0.65
    n_boot = 2000
    result = stats.paired_bootstrap(model, baseline, n_boot=n_boot, seed=3, chunk=n_boot)
    # reference: the same resamples, each applied to every seed, accuracy difference averaged over seeds
    idx = np.random.default_rng(3).integers(0, 30, size=(n_boot, 30))
    boot = np.array([
        np.mean([model[s, i].mean() - baseline[s, i].mean() for s in range(2)]) for i in idx
    ]).round(12)  # exact ties at 0 despite float summation
    assert result.delta == pytest.approx(model.mean() - baseline.mean())
    assert (result.low, result.high) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])))
    below = (1 + (boot <= 0).sum()) / (n_boot + 1)
    above = (1 + (boot >= 0).sum()) / (n_boot + 1)
    assert result.p_value == pytest.approx(min(1.0, 2 * min(below, above)))
    # fixed seed: reproducible
    assert stats.paired_bootstrap(model, baseline, n_boot=n_boot, seed=3, chunk=n_boot) == result


def reference_scores(targets, preds, num_classes=7):
    """Per-class loops in plain Python floats (independent of stats.macro_scores)."""
    precisions, recalls, f1s = [], [], []
    for k in range(num_classes):
        tp = sum(1 for t, p in zip(targets, preds) if t == k and p == k)
        fp = sum(1 for t, p in zip(targets, preds) if t != k and p == k)
        fn = sum(1 for t, p in zip(targets, preds) if t == k and p != k)
        if tp + fp + fn == 0:
            continue  # class absent from targets and predictions
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {
        "accuracy": sum(t == p for t, p in zip(targets, preds)) / len(targets),
        "precision_macro": sum(precisions) / len(precisions),
        "recall_macro": sum(recalls) / len(recalls),
        "f1_macro": sum(f1s) / len(f1s),
        "n": len(targets),
    }


def test_macro_scores_match_reference():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 6, 50)  # class 6 neither a target nor predicted: left out of the macro mean
    preds = np.where(rng.random(50) < 0.6, targets, rng.integers(0, 6, 50))
    preds[preds == 4] = 0  # class 4 is a target but never predicted: precision 0 (not skipped)
    got = stats.macro_scores(targets, preds, 7)
    want = reference_scores(targets.tolist(), preds.tolist())
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("b,c", [(0, 3), (4, 11), (12, 12), (30, 17), (1, 60)])
def test_mcnemar_is_the_doubled_binomial_tail(b, c):
    # independent reference: exact binomial tail by math.comb
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    model = [0] * b + [1] * c
    baseline = [1] * b + [0] * c
    result = stats.mcnemar_exact(model, baseline)
    assert (result.b, result.c) == (b, c)
    assert result.p_value == pytest.approx(min(1.0, 2 * tail), rel=1e-12)


def test_holm_step_down_order_and_values():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1; a nan is no test: left out of m
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    got = stats.holm([0.2, math.nan, 0.01])
    assert got[0] == pytest.approx(0.2) and math.isnan(got[1]) and got[2] == pytest.approx(0.02)
    assert stats.holm([]) == []
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        stats.holm([0.2, 1.5])


def test_seed_test_matches_scipy_on_hand_made_numbers():
    import itertools

    from scipy import stats as scipy_stats

    model = [0.62, 0.70, 0.66, 0.71]
    baseline = [0.60, 0.64, 0.67, 0.65]
    result = stats.seed_test(model, baseline)
    d = np.array(model) - np.array(baseline)
    assert result.differences == pytest.approx(tuple(d)) and result.n == 4
    assert result.mean == pytest.approx(0.0325) and result.sd == pytest.approx(d.std(ddof=1))
    assert result.p_value == pytest.approx(scipy_stats.ttest_rel(model, baseline).pvalue, rel=1e-12)
    low, high = scipy_stats.t.interval(0.95, 3, loc=d.mean(), scale=d.std(ddof=1) / 2)
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-12)
    # the exact sign-flip test by enumeration: 16 sign patterns, |mean| at least the observed one
    flips = [abs(np.mean(np.array(signs) * d)) for signs in itertools.product((1, -1), repeat=4)]
    assert result.p_permutation == pytest.approx(np.mean([f >= abs(d.mean()) - 1e-12 for f in flips]))
    # d = (+0.02, +0.06, -0.01, +0.06): the observed signs, all flipped, and the -0.01 turned (either way)
    assert result.p_permutation == pytest.approx(4 / 16)


def test_seed_test_with_one_or_two_pairs():
    two = stats.seed_test([0.5, 0.7], [0.4, 0.5])
    assert two.n == 2 and two.mean == pytest.approx(0.15) and 0 < two.p_value < 1
    assert two.p_permutation == pytest.approx(0.5)  # 2 pairs: the smallest sign-flip p is 2 / 4
    assert stats.MIN_SEED_PAIRS == 3
    one = stats.seed_test([0.5], [0.4])
    assert one.mean == pytest.approx(0.1)
    assert all(math.isnan(v) for v in (one.low, one.high, one.p_value, one.p_permutation, one.sd))
    with pytest.raises(ValueError, match="equal-length"):
        stats.seed_test([0.5, 0.6], [0.4])
    with pytest.raises(ValueError, match="at least one"):
        stats.seed_test([], [])


def test_power_matches_textbook_sample_sizes():
    # Cohen (1988) / G*Power, paired t-test, two-sided alpha 0.05, power 0.8:
    # d = 0.8 -> 15 pairs, d = 0.5 -> 34, d = 0.2 -> 199
    assert stats.seeds_for_power(0.8, 1.0) == 15
    assert stats.seeds_for_power(0.5, 1.0) == 34
    assert stats.seeds_for_power(2.0, 4.0) == 34  # only effect / sd matters
    assert stats.seeds_for_power(-0.5, 1.0) == 34  # two-sided
    assert stats.seeds_for_power(0.2, 1.0) == 199
    assert stats.t_test_power(34, 0.5, 1.0) >= 0.8 > stats.t_test_power(33, 0.5, 1.0)
    # by hand for n = 2: P[|T'| > t_{1, .975}] with T' ~ nct(1, sqrt(2) d)
    from scipy import stats as scipy_stats
    crit = scipy_stats.t.ppf(0.975, 1)
    want = scipy_stats.nct.sf(crit, 1, 3 * math.sqrt(2)) + scipy_stats.nct.cdf(-crit, 1, 3 * math.sqrt(2))
    assert stats.t_test_power(2, 3.0, 1.0) == pytest.approx(want)
    for effect, sd in ((0.0, 1.0), (1.0, 0.0), (math.nan, 1.0), (1.0, math.nan)):
        assert stats.seeds_for_power(effect, sd) is None
    assert stats.seeds_for_power(0.001, 10.0, max_n=1000) is None
