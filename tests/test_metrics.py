"""fer_core.metrics: hand-checked CCC/SAGR, agreement with scikit-learn/krippendorff, bootstrap behaviour."""
from __future__ import annotations

import json

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from fer_core.labels import CLASSES, NUM_CLASSES
from fer_core.metrics import (PROB_COLS, bootstrap_ci, calibration, ccc, classification_metrics, compute_metrics,
                              confusion_stats, hard_answers, paired_comparison, regression_metrics, sagr,
                              summary_line, va_stats)


def pred_frame(n: int, seed: int = 0, classes=range(NUM_CLASSES), skill: float = 2.0, va: bool = True) -> pd.DataFrame:
    """A predictions table in the run-folder format: noisy but better-than-chance predictions."""
    rng = np.random.default_rng(seed)
    true = rng.choice(list(classes), size=n)
    logits = rng.normal(0, 1, (n, NUM_CLASSES))
    logits[np.arange(n), true] += skill
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    df = pd.DataFrame({"id": [str(i) for i in range(n)], "path": [f"{i}.jpg" for i in range(n)],
                       "true": true, "pred": probs.argmax(1)})
    for k, c in enumerate(PROB_COLS):
        df[c] = probs[:, k]
    for dim in ("valence", "arousal"):
        t = np.clip(rng.normal(0, 0.5, n), -1, 1)
        df[f"{dim}_true"] = t if va else np.nan
        df[f"{dim}_pred"] = np.clip(0.7 * t + rng.normal(0, 0.2, n), -1, 1)
    return df


def assert_plain_json(obj, where="metrics"):
    """Only dict/list/str/int/float/bool/None (no numpy scalars), and no NaN anywhere."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert isinstance(k, str), where
            assert_plain_json(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            assert_plain_json(v, f"{where}[{i}]")
    else:
        assert obj is None or type(obj) in (str, int, float, bool), f"{where}: {type(obj)}"
    json.dumps(obj, allow_nan=False)


# ------------------------------------------------------------------ CCC and SAGR by hand
def test_ccc_hand_calculation():
    # x = [1, 2, 3, 4], y = [2, 3, 3, 5]
    # means: 2.5 and 3.25
    # population variances: x: (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    #                       y: (1.5625 + 0.0625 + 0.0625 + 3.0625) / 4 = 1.1875
    # covariance: ((-1.5)(-1.25) + (-0.5)(-0.25) + (0.5)(-0.25) + (1.5)(1.75)) / 4 = 4.5 / 4 = 1.125
    # CCC = 2 * 1.125 / (1.25 + 1.1875 + (2.5 - 3.25)^2) = 2.25 / 3.0 = 0.75
    assert ccc([1, 2, 3, 4], [2, 3, 3, 5]) == pytest.approx(0.75)
    # Pearson r of the same data is 1.125 / sqrt(1.25 * 1.1875) = 0.9234: CCC also punishes the offset.
    assert regression_metrics([1, 2, 3, 4], [2, 3, 3, 5])["pearson"] == pytest.approx(1.125 / np.sqrt(1.25 * 1.1875))


def test_ccc_shifted_prediction_hand_calculation():
    # y = x + 1 with x = [0, 1, 2]: var_x = var_y = 2/3, cov = 2/3, mean gap 1
    # CCC = 2 * (2/3) / (2/3 + 2/3 + 1) = (4/3) / (7/3) = 4/7 although Pearson r = 1
    assert ccc([0, 1, 2], [1, 2, 3]) == pytest.approx(4 / 7)


def test_ccc_perfect_and_constant_predictor():
    x = np.array([-0.8, -0.1, 0.3, 0.6])  # mean 0, so -x is a perfect mirror image
    assert ccc(x, x) == pytest.approx(1.0)
    assert ccc(x, -x) == pytest.approx(-1.0)
    # A constant prediction has zero covariance with the truth, so CCC is 0 whatever the constant.
    assert ccc(x, np.full(4, 0.2)) == 0.0
    assert ccc(x, np.full(4, x.mean())) == 0.0
    # Both constant and equal: 0/0, undefined, whatever rounding leaves of their variances
    assert np.isnan(ccc([0.5, 0.5], [0.5, 0.5])) and np.isnan(ccc(np.full(10, 0.3), np.full(10, 0.3)))


def test_a_constant_series_whose_std_is_a_rounding_error_is_constant():
    # np.full(10, 0.3).std() is 5.6e-17, not 0: r2 and r came out as -1.6e32 and 1e-17, CCC as -5e-33
    m = regression_metrics(np.full(10, 0.3), np.linspace(-1, 1, 10))
    assert m["r2"] is None and m["pearson"] is None and m["ccc"] == 0.0
    rng = np.random.default_rng(1)
    n = 320
    pred = pd.DataFrame({"id": [str(i) for i in range(n)], "true": rng.integers(0, 8, n), "pred": 0,
                         **{f"prob_{k}": 1 / 8 for k in range(8)}, "valence_true": rng.uniform(-1, 1, n),
                         "valence_pred": -0.731, "arousal_true": rng.uniform(-1, 1, n),
                         "arousal_pred": rng.uniform(-1, 1, n)})
    m = compute_metrics(pred, n_boot=200)
    assert m["valence"]["pearson"] is None and m["ci95"].get("valence_pearson") is None  # not a CI of ±1e-8
    assert m["ci95"]["arousal_pearson"] is not None


def test_sagr_hand_calculation_and_zero():
    t = [0.5, -0.2, 0.0, 0.3, -0.7]
    p = [0.1, 0.4, 0.0, -0.1, -0.2]
    # same sign? yes, no, yes (0 and 0), no, yes -> 3 / 5
    assert sagr(t, p) == pytest.approx(0.6)
    # Zero is its own sign: a zero truth does not agree with a small positive or negative prediction.
    assert sagr([0.0, 0.0], [0.01, -0.01]) == 0.0
    assert sagr([0.4], [0.0]) == 0.0


def test_regression_metrics_drop_missing_rows_and_none_without_truth():
    t = [0.5, np.nan, -0.5, 0.25]
    p = [0.4, 0.9, -0.3, 0.25]
    m = regression_metrics(t, p)
    assert m["n"] == 3
    # errors 0.1, 0.2, 0.0 -> RMSE sqrt(0.05 / 3), MAE 0.1
    assert m["rmse"] == pytest.approx(np.sqrt(0.05 / 3))
    assert m["mae"] == pytest.approx(0.1)
    assert m["sagr"] == 1.0
    assert m["r2"] == pytest.approx(skm.r2_score([0.5, -0.5, 0.25], [0.4, -0.3, 0.25]))
    assert regression_metrics([np.nan, np.nan], [0.1, 0.2]) is None
    one = regression_metrics([0.3], [0.1])
    assert one["pearson"] is None and one["r2"] is None and one["rmse"] == pytest.approx(0.2)
    assert_plain_json(one)


# ------------------------------------------------------------------ classification
def test_perfect_prediction():
    df = pred_frame(200, seed=1)
    df["pred"] = df["true"]
    df["valence_pred"] = df["valence_true"]
    m = compute_metrics(df, n_boot=50)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "cohen_kappa", "krippendorff_alpha"):
        assert m[key] == pytest.approx(1.0), key
    assert m["valence"]["ccc"] == pytest.approx(1.0) and m["valence"]["rmse"] == pytest.approx(0.0)
    assert np.trace(np.array(m["confusion"])) == 200


def test_matches_scikit_learn_and_krippendorff():
    df = pred_frame(500, seed=2)
    m = compute_metrics(df, n_boot=20)
    y, yhat = df["true"].to_numpy(), df["pred"].to_numpy()
    assert m["n"] == 500
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat))
    assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(y, yhat))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, yhat, average="macro"))
    assert m["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=np.vstack([y, yhat]), level_of_measurement="nominal"))
    assert m["confusion"] == skm.confusion_matrix(y, yhat, labels=range(8)).tolist()
    happy = (y == 1)
    assert m["per_class"]["Happy"]["roc_auc"] == pytest.approx(skm.roc_auc_score(happy, df["prob_1"]))
    assert m["per_class"]["Happy"]["support"] == int(happy.sum())
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, yhat, average="weighted"))
    pr = [skm.average_precision_score(y == k, df[f"prob_{k}"]) for k in range(NUM_CLASSES)]
    assert [m["per_class"][c]["pr_auc"] for c in CLASSES] == pytest.approx(pr)
    assert m["pr_auc_macro"] == pytest.approx(np.mean(pr))
    assert m["valence"]["ccc"] == pytest.approx(ccc(df["valence_true"], df["valence_pred"]))
    assert_plain_json(m)


def test_krippendorff_known_case():
    # Two raters, nominal: truth [0,0,1,1,2,2], prediction [0,1,1,1,2,0].
    # Coincidences o_cc: 0-0: 2, 1-1: 4, 2-2: 2 (8 of 12 pairable values agree); totals n_c = 4, 5, 3.
    # alpha = 1 - (n - 1) * disagreeing / sum_{c != k} n_c n_k = 1 - 11 * 4 / (144 - 50) = 1 - 44/94
    y, yhat = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    expected = 1 - 44 / 94
    package = krippendorff.alpha(reliability_data=np.vstack([y, yhat]), level_of_measurement="nominal")
    assert package == pytest.approx(expected)
    probs = np.eye(NUM_CLASSES)[yhat]
    assert classification_metrics(y, yhat, probs)["krippendorff_alpha"] == pytest.approx(expected)
    conf = skm.confusion_matrix(y, yhat, labels=range(8))
    assert confusion_stats(conf)["krippendorff_alpha"] == pytest.approx(expected)


def test_absent_classes_give_none_aucs():
    df = pred_frame(300, seed=3, classes=[0, 1, 2, 6])  # no Surprise, Fear, Disgust, Contempt in the truth
    m = compute_metrics(df, n_boot=20)
    assert len(m["per_class"]) == 8 and list(m["per_class"]) == CLASSES
    assert np.array(m["confusion"]).shape == (8, 8)
    for name in ("Surprise", "Fear", "Disgust", "Contempt"):
        c = m["per_class"][name]
        assert c["support"] == 0 and c["roc_auc"] is None and c["pr_auc"] is None and c["recall"] is None
    present = [m["per_class"][n]["roc_auc"] for n in ("Neutral", "Happy", "Sad", "Anger")]
    assert all(a is not None for a in present)
    assert m["roc_auc_macro"] == pytest.approx(np.mean(present))
    assert_plain_json(m)


def test_single_class_truth_and_prediction():
    df = pred_frame(40, seed=4, classes=[1])
    df["pred"] = 1
    m = compute_metrics(df, n_boot=10)
    assert m["accuracy"] == 1.0
    assert m["cohen_kappa"] is None and m["krippendorff_alpha"] is None  # 0/0 with one class in use
    assert m["per_class"]["Happy"]["roc_auc"] is None  # no negatives
    assert m["roc_auc_macro"] is None
    assert_plain_json(m)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_macro_f1_averages_over_the_classes_in_the_data():
    df = pred_frame(400, seed=19, classes=range(7))  # 7-class data (RAF-DB, FER2013): no Contempt
    df.loc[::10, "pred"] = 7  # an 8-class model calls some images Contempt: each one wrong
    m = compute_metrics(df, n_boot=300)
    y, yhat = df["true"].to_numpy(), df["pred"].to_numpy()
    assert m["classes_in_data"] == CLASSES[:7]
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, yhat, labels=range(7), average="macro"))
    assert m["macro_f1"] == pytest.approx(np.mean([m["per_class"][c]["f1"] for c in CLASSES[:7]]))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yhat))  # over the same classes
    contempt = m["per_class"]["Contempt"]
    assert contempt["support"] == 0 and contempt["precision"] == 0  # called 40 times, never right
    assert contempt["recall"] is None and contempt["f1"] is None and contempt["roc_auc"] is None
    # the bootstrap follows the same definition
    assert confusion_stats(np.array(m["confusion"]))["macro_f1"] == pytest.approx(m["macro_f1"])
    lo, hi = m["ci95"]["macro_f1"]
    assert lo < m["macro_f1"] < hi
    assert_plain_json(m)


def test_summary_line_prints_undefined_figures_as_a_dash():
    df = pred_frame(40, seed=4, classes=[1])
    df["pred"] = 1
    m = compute_metrics(df, n_boot=10)  # one class in truth and prediction: kappa undefined
    assert m["cohen_kappa"] is None
    assert summary_line(m).startswith("acc 1.0000  macro-F1 1.0000  kappa –  valence RMSE ")
    m["macro_f1"], m["valence"]["ccc"], m["arousal"]["rmse"] = float("nan"), None, None
    line = summary_line(m)
    assert "macro-F1 –" in line and "CCC –" in line and "arousal RMSE – CCC" in line


def test_without_va_truth():
    m = compute_metrics(pred_frame(100, seed=5, va=False), n_boot=20)
    assert m["valence"] is None and m["arousal"] is None
    assert not any(k.startswith(("valence", "arousal")) for k in m["ci95"])
    assert_plain_json(m)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_confusion_stats_match_scikit_learn():
    rng = np.random.default_rng(6)
    y = rng.choice([0, 1, 2, 3, 5], size=400)
    yhat = np.where(rng.random(400) < 0.6, y, rng.choice([0, 1, 2, 4, 7], size=400))  # 4 and 7 only predicted
    conf = skm.confusion_matrix(y, yhat, labels=range(8))
    s = confusion_stats(conf[None])
    assert s["accuracy"][0] == pytest.approx(skm.accuracy_score(y, yhat))
    assert s["balanced_accuracy"][0] == pytest.approx(skm.balanced_accuracy_score(y, yhat))
    # macro F1 over the classes in the truth, as classification_metrics defines it (not scikit-learn's default)
    assert s["macro_f1"][0] == pytest.approx(skm.f1_score(y, yhat, labels=np.unique(y), average="macro"))
    assert s["macro_f1"][0] == pytest.approx(classification_metrics(y, yhat, None)["macro_f1"])
    assert s["weighted_f1"][0] == pytest.approx(skm.f1_score(y, yhat, average="weighted"))
    assert s["cohen_kappa"][0] == pytest.approx(skm.cohen_kappa_score(y, yhat))
    assert s["krippendorff_alpha"][0] == pytest.approx(
        krippendorff.alpha(reliability_data=np.vstack([y, yhat]), level_of_measurement="nominal"))


def test_va_stats_from_sums_match_regression_metrics():
    from fer_core.metrics import _va_terms

    df = pred_frame(300, seed=7)
    df.loc[::4, "valence_true"] = 0.0  # exactly 0: SAGR compares signs, and 0 has its own
    df.loc[::8, "valence_pred"] = 0.0
    df.loc[::5, "valence_true"] = np.nan  # partly annotated
    terms = _va_terms(df, "valence")
    stats = va_stats(terms.sum(0))  # weight 1 on every row = the original sample
    ref = regression_metrics(df["valence_true"], df["valence_pred"])
    for k in ("rmse", "mae", "pearson", "sagr", "ccc"):
        assert float(stats[k]) == pytest.approx(ref[k]), k


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_brackets_point_estimate_and_is_deterministic():
    df = pred_frame(800, seed=8)
    m = compute_metrics(df, n_boot=300, seed=0)
    ci = m["ci95"]
    for key, point in [("accuracy", m["accuracy"]), ("macro_f1", m["macro_f1"]),
                       ("cohen_kappa", m["cohen_kappa"]), ("krippendorff_alpha", m["krippendorff_alpha"]),
                       ("valence_rmse", m["valence"]["rmse"]), ("valence_ccc", m["valence"]["ccc"]),
                       ("arousal_ccc", m["arousal"]["ccc"]), ("arousal_sagr", m["arousal"]["sagr"])]:
        lo, hi = ci[key]
        assert lo < point < hi, key
        assert hi - lo < 0.2, key  # 800 rows: a few points wide, not the whole range
    assert bootstrap_ci(df, n_boot=300, seed=0) == ci
    assert bootstrap_ci(df, n_boot=300, seed=1) != ci


def test_bootstrap_draws_every_row():
    df = pred_frame(2, seed=0, va=False)
    df["true"], df["pred"] = [0, 1], [1, 1]  # the first wrong, the last right
    # resamples of two rows: both wrong, one of each, both right; none of them may leave the last row out
    assert tuple(bootstrap_ci(df, n_boot=200, seed=0)["accuracy"]) == (0.0, 1.0)


def test_bootstrap_width_shrinks_with_more_rows():
    small = bootstrap_ci(pred_frame(200, seed=9), n_boot=200)["accuracy"]
    large = bootstrap_ci(pred_frame(5000, seed=9), n_boot=200)["accuracy"]
    assert large[1] - large[0] < (small[1] - small[0]) / 2


def test_large_table_runs():
    m = compute_metrics(pred_frame(250_000, seed=10))
    assert m["n"] == 250_000
    assert set(m["ci95"]) >= {"accuracy", "macro_f1", "cohen_kappa", "valence_rmse", "valence_ccc",
                              "arousal_rmse", "arousal_ccc"}
    assert m["ci95"]["accuracy"][0] < m["accuracy"] < m["ci95"]["accuracy"][1]
    assert_plain_json(m)


# ------------------------------------------------------------------ calibration
def _confident(n: int, conf: float, n_right: int):
    """n rows whose predicted class (0) has probability conf, n_right of them right."""
    probs = np.full((n, NUM_CLASSES), (1 - conf) / (NUM_CLASSES - 1))
    probs[:, 0] = conf
    true = np.where(np.arange(n) < n_right, 0, 1)
    return true, np.zeros(n, int), probs


def test_calibration_gaps_by_hand():
    c = calibration(*_confident(100, 0.75, 75))  # right as often as it says
    assert c["ece"] == pytest.approx(0) and c["mean_confidence"] == 0.75
    assert c["bins"] == [{"lo": 0.7333333333333333, "hi": 0.8, "n": 100, "confidence": 0.75, "accuracy": 0.75}]
    over = calibration(*_confident(100, 0.9, 50))  # says 90%, right half the time
    assert over["ece"] == pytest.approx(0.4)
    # two bins, 100 rows at 0.9 (50 right) and 300 at 0.3 (90 right): ECE (100 * 0.4 + 300 * 0) / 400
    t1, p1, q1 = _confident(100, 0.9, 50)
    t2, p2, q2 = _confident(300, 0.3, 90)
    both = calibration(np.r_[t1, t2], np.r_[p1, p2], np.vstack([q1, q2]))
    assert both["ece"] == pytest.approx(0.1) and len(both["bins"]) == 2


def test_calibration_bins_are_closed_on_the_right_and_confidence_is_the_answer_s_own_probability():
    edge = calibration(*_confident(10, 0.6, 6))  # 0.6 is 9/15: the top of the ninth bin, (8/15, 9/15]
    assert [(b["lo"], b["hi"], b["n"]) for b in edge["bins"]] == [(8 / 15, 0.6, 10)]
    # an answer that is not the most probable class (imported or voted answers): its own probability is its confidence
    row = np.r_[0.7, 0.3, np.zeros(NUM_CLASSES - 2)]
    off = calibration([1, 1], [1, 1], np.vstack([row, row]))
    assert off["mean_confidence"] == pytest.approx(0.3) and off["ece"] == pytest.approx(0.7)
    # rows that a predictions file rounded so that they sum to 0.999 are taken as the model's whole distribution
    rounded = np.r_[0.5, 0.499, np.zeros(NUM_CLASSES - 2)]
    assert calibration([0, 0, 1, 1], [0] * 4, np.tile(rounded, (4, 1)))["mean_confidence"] == pytest.approx(0.5 / 0.999)


def test_calibration_scores_match_scikit_learn_and_uniform_guessing():
    df = pred_frame(500, seed=3)
    probs = df[PROB_COLS].to_numpy()
    c = compute_metrics(df, n_boot=10)["calibration"]
    assert c["nll"] == pytest.approx(skm.log_loss(df["true"], probs, labels=range(NUM_CLASSES)))
    assert c["brier"] == pytest.approx(skm.brier_score_loss(df["true"], probs, labels=range(NUM_CLASSES)))
    assert sum(b["n"] for b in c["bins"]) == 500
    uniform = calibration(np.arange(8), np.zeros(8, int), np.full((8, NUM_CLASSES), 1 / 8))
    assert uniform["nll"] == pytest.approx(np.log(8)) and uniform["brier"] == pytest.approx(7 / 8)
    assert uniform["ece"] == pytest.approx(0)  # says 1/8 and is right 1 time in 8


@pytest.mark.parametrize("t0", [0.5, 2.0])
def test_temperature_fit_recovers_the_temperature_the_labels_were_drawn_at(t0):
    from fer_core.calibrate import apply_temperature, fit_temperature

    rng = np.random.default_rng(int(t0 * 10))
    z = rng.normal(0, 2, (20000, NUM_CLASSES))
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    truth = apply_temperature(probs, t0)  # the labels follow softmax(z / t0); the model says softmax(z)
    y = (rng.random((len(z), 1)) > truth.cumsum(1)).sum(1)
    t = fit_temperature(y, probs)
    assert t == pytest.approx(t0, rel=0.05)
    scaled = apply_temperature(probs, t)
    assert (scaled.argmax(1) == probs.argmax(1)).all() and np.allclose(scaled.sum(1), 1)
    assert calibration(y, probs.argmax(1), scaled)["ece"] < calibration(y, probs.argmax(1), probs)["ece"] / 3
    assert np.allclose(apply_temperature(probs, 1.0), probs)


def test_temperature_fit_refuses_what_it_cannot_fit():
    from fer_core.calibrate import fit_temperature

    with pytest.raises(ValueError, match="two or more rows of 8 probabilities"):
        fit_temperature([0], np.full((1, NUM_CLASSES), 1 / 8))
    with pytest.raises(ValueError, match="two or more rows"):
        fit_temperature([0, 1], np.full((2, 3), 1 / 3))


# ------------------------------------------------------------------ paired comparison
def _flipped(df: pd.DataFrame, make_wrong: int, make_right: int) -> pd.DataFrame:
    """A copy where the first make_wrong correct rows become wrong and the first make_right wrong rows right."""
    out = df.copy()
    right = np.flatnonzero(out["pred"] == out["true"])
    wrong = np.flatnonzero(out["pred"] != out["true"])
    out.loc[right[:make_wrong], "pred"] = (out.loc[right[:make_wrong], "true"] + 1) % NUM_CLASSES
    out.loc[wrong[:make_right], "pred"] = out.loc[wrong[:make_right], "true"]
    return out


def test_paired_comparison_counts_difference_and_mcnemar():
    a = pred_frame(400, seed=13)
    b = _flipped(a, make_wrong=0, make_right=10)  # B gets 10 more right, A none that B misses
    r = paired_comparison(a, b, n_boot=300)
    assert (r["n"], r["a_only_right"], r["b_only_right"]) == (400, 0, 10)
    assert r["mcnemar_p"] == pytest.approx(2 * 0.5**10)  # exact two-sided binomial test, 0 of 10
    acc = r["metrics"]["accuracy"]
    assert acc["a"] == pytest.approx(compute_metrics(a, n_boot=1)["accuracy"])
    assert acc["diff"] == pytest.approx(-10 / 400)
    lo, hi = acc["ci95"]
    assert lo <= acc["diff"] <= hi < 0  # B is better in every resample
    assert r["metrics"]["valence_ccc"]["diff"] == pytest.approx(0)  # valence/arousal columns untouched
    assert_plain_json(r)


def test_paired_comparison_of_a_run_with_itself_is_zero():
    a = pred_frame(200, seed=14)
    r = paired_comparison(a, a.copy(), n_boot=100)
    assert r["mcnemar_p"] == 1.0 and r["a_only_right"] == r["b_only_right"] == 0
    for k, m in r["metrics"].items():
        assert m["diff"] == pytest.approx(0) and m["ci95"] == pytest.approx([0, 0]), k


def test_paired_interval_is_narrower_than_the_separate_ones():
    a = pred_frame(400, seed=15)
    b = _flipped(a, make_wrong=8, make_right=12)
    paired = paired_comparison(a, b, n_boot=300)["metrics"]["accuracy"]["ci95"]
    alone = bootstrap_ci(a, n_boot=300)["accuracy"]
    assert paired[1] - paired[0] < (alone[1] - alone[0]) / 2
    assert paired[0] < 0.01 < paired[1]  # B is 1 point better: inside the noise


def test_paired_comparison_aligns_on_shared_ids():
    a = pred_frame(300, seed=16)
    b = _flipped(a, make_wrong=5, make_right=20)
    ref = paired_comparison(a, b, n_boot=50)
    extra = pred_frame(5, seed=17).assign(id=lambda d: "x" + d["id"])
    shuffled = pd.concat([b.sample(frac=1, random_state=0), extra])
    got = paired_comparison(a.iloc[::-1], shuffled, n_boot=50)
    assert (got["n"], got["a_only_right"], got["b_only_right"]) == (300, ref["a_only_right"], ref["b_only_right"])
    for k in ref["metrics"]:
        assert got["metrics"][k]["diff"] == pytest.approx(ref["metrics"][k]["diff"]), k


def test_paired_comparison_rejects_tables_that_cannot_be_paired():
    a = pred_frame(30, seed=18)
    with pytest.raises(ValueError, match="share no sample ids"):
        paired_comparison(a, a.assign(id="other" + a["id"]))
    with pytest.raises(ValueError, match="different true labels"):
        paired_comparison(a, a.assign(true=(a["true"] + 1) % NUM_CLASSES))
    with pytest.raises(ValueError, match="repeat sample id '0'"):
        paired_comparison(a, pd.concat([a, a.iloc[:1]]))


# ------------------------------------------------------------------ bad input
def test_bad_input_is_rejected_clearly():
    df = pred_frame(20, seed=12)
    with pytest.raises(ValueError, match="prob_3"):
        compute_metrics(df.drop(columns="prob_3"))
    bad = df.copy()
    bad.loc[0, "true"] = 9
    with pytest.raises(ValueError, match="class indices"):
        compute_metrics(bad)
    with pytest.raises(ValueError, match="no rows"):
        compute_metrics(df.iloc[:0])
    with pytest.raises(ValueError, match="not names such as '[A-Za-z]+': map them with fer_core.labels.class_index"):
        compute_metrics(df.assign(true=[CLASSES[k] for k in df["true"]]))
    with pytest.raises(ValueError, match="not logits, scores or empty cells"):
        compute_metrics(df.assign(**{c: df[c] * 3 - 1 for c in PROB_COLS}))
    with pytest.raises(ValueError):
        ccc([1, 2, 3], [1, 2])


def test_wilson_interval_mcnemar_and_t_test_match_scipy_stats():
    from scipy.stats import binomtest, t as student_t

    from fer_core.metrics import corrected_resampled_t, mcnemar_p, proportion_ci

    for n in range(1, 60):
        for k in range(n + 1):
            ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            assert proportion_ci(k, n)[1:] == pytest.approx((ci.low, ci.high), abs=1e-12)
            assert mcnemar_p(k, n - k) == pytest.approx(binomtest(k, n, 0.5).pvalue, abs=1e-12)
    diffs = [0.01, 0.02, -0.005, 0.03, 0.0]
    t, p = corrected_resampled_t(diffs, 0.25)
    assert p == pytest.approx(2 * student_t.sf(abs(t), len(diffs) - 1), abs=1e-12)


def test_hard_answers_are_one_class_per_image_without_scores_and_an_empty_table_has_none():
    df = pred_frame(10)
    assert not hard_answers(df)
    df[PROB_COLS] = np.eye(NUM_CLASSES)[df["pred"]]
    assert hard_answers(df)
    assert not hard_answers(df.iloc[:0])
