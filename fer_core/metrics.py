"""Every metric the facial-expression field reports, computed from a predictions table (docs/run_folder.md).

Point estimates come from scikit-learn and the `krippendorff` package. Only the bootstrap re-derives the
metrics itself (classification ones from per-resample confusion matrices, valence/arousal ones from
weighted sums), because calling scikit-learn 1,000 times on 250,000 rows takes minutes. The tests check
those formulas against scikit-learn, krippendorff and regression_metrics.

Everything returned is plain Python (float, int, list, None) so it can go straight into a JSON file.
An undefined value (a class with no samples, a correlation with a constant input) is None, never NaN.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd

from .io import atomic_write_csv, atomic_write_json
from .labels import CLASSES, NUM_CLASSES, PROB_COLS


# scikit-learn and SciPy take 2-3 s to import: imported when first needed, so that the dashboard's first page,
# which reads metrics files, opens without them. The tests below use scipy.special's distribution functions, not
# scipy.stats, which takes 0.6 s more to import and is on the dashboard's first page otherwise.
def _skm():
    from sklearn import metrics

    return metrics


Z95 = 1.959963984540054  # the standard normal's 97.5% point


LABELS = list(range(NUM_CLASSES))
VA_DIMS = ("valence", "arousal")
# Bootstrap resamples are drawn in blocks of about this many indices, to bound memory (4M int64 = 32 MB).
_BLOCK_ELEMENTS = 4_000_000


def _num(x) -> float | None:
    """A plain float, or None where the value is undefined (NaN / inf)."""
    x = float(x)
    return x if math.isfinite(x) else None


def ccc(y_true, y_pred) -> float:
    """Lin's concordance correlation coefficient, 2·cov / (var_t + var_p + (mean_t - mean_p)²).

    Population (1/n) variances and covariance, as in the AffectNet and AFEW-VA papers. NaN when the
    input is empty or both series are the same constant (0/0); a constant predictor of a varying
    truth gives 0. NaN in the input propagates: drop missing rows first (regression_metrics does).
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"ccc: y_true has {t.size} values, y_pred {p.size}")
    if t.size == 0:
        return float("nan")
    mt, mp = t.mean(), p.mean()
    vt, vp = (x.var() if np.ptp(x) > 0 else 0.0 for x in (t, p))  # a constant's: 0, not a rounding error's 1e-33
    denom = vt + vp + (mt - mp) ** 2
    cov = np.mean((t - mt) * (p - mp)) if vt and vp else 0.0
    return float(2 * cov / denom) if denom > 0 else float("nan")


def sagr(y_true, y_pred) -> float:
    """Sign agreement: the share of samples where sign(pred) == sign(true).

    Zero is its own sign (numpy's sign: -1, 0, +1), the literal definition in the AffectNet paper: a true
    value of exactly 0 agrees only with a prediction of exactly 0, and a prediction of 0 never agrees
    with a non-zero truth. NaN for empty input.
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"sagr: y_true has {t.size} values, y_pred {p.size}")
    return float(np.mean(np.sign(t) == np.sign(p))) if t.size else float("nan")


def regression_metrics(y_true, y_pred) -> dict | None:
    """{"n", "rmse", "mae", "r2", "pearson", "sagr", "ccc"} over the rows where both values are finite.

    None when no row has a finite truth (the data carries no annotation for this dimension).
    r2 and pearson are None where undefined (fewer than 2 rows, or a constant series).
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"regression_metrics: y_true has {t.size} values, y_pred {p.size}")
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    if t.size == 0:
        return None
    pearson = r2 = None
    if t.size >= 2:
        # force_finite=False: R² of a constant truth is undefined, not the 0/1 scikit-learn substitutes.
        # a constant series by its range, which is exactly 0: its std is a rounding error's size, not 0, and
        # r2 and r came out as -1e32 and 1e-17
        if np.ptp(t) > 0:
            r2 = _num(_skm().r2_score(t, p, force_finite=False))
            if np.ptp(p) > 0:
                pearson = _num(np.corrcoef(t, p)[0, 1])
    return {"n": int(t.size), "rmse": _num(_skm().root_mean_squared_error(t, p)),
            "mae": _num(_skm().mean_absolute_error(t, p)), "r2": r2, "pearson": pearson,
            "sagr": _num(sagr(t, p)), "ccc": _num(ccc(t, p))}


def _is_number(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _check_labels(y, what: str) -> np.ndarray:
    try:
        a = np.asarray(y, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        name = next(v for v in np.asarray(y, dtype=object).ravel() if not _is_number(v))
        raise ValueError(f"{what}: class indices 0-{NUM_CLASSES - 1} (in CLASSES' order) are expected, not names such "
                         f"as {name!r}: map them with fer_core.labels.class_index") from None
    bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a >= NUM_CLASSES)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} value(s) are not class indices 0-{NUM_CLASSES - 1}, "
                         f"e.g. {a[bad][0]!r}")
    return a.astype(np.int64)


def classification_metrics(y_true, y_pred, probs) -> dict:
    """Expression metrics over all 8 classes (AffectNet order), whichever of them occur.

    Every macro average is over the classes in the truth (``classes_in_data``): macro F1 (not
    scikit-learn's default of truth or prediction), balanced accuracy and the AUCs. So a 7-class data set
    gives the 7-class macro F1 papers report, whatever else the model predicts: a prediction of a class
    the data lacks is counted wrong, as a miss of its true class, and not once more as an F1 of 0.
    Weighted F1 weighs each class by its support. Per class, precision that is 0/0 (no predictions) is
    None; recall, F1 and ROC/PR AUC (one-vs-rest) are None for a class absent from the truth (the AUCs
    also when every sample is that class); the macro AUCs are the mean over classes with a value.
    probs: (n, 8) class probabilities, or None for no AUCs.
    """
    y = _check_labels(y_true, "true")
    yhat = _check_labels(y_pred, "pred")
    if y.size != yhat.size:
        raise ValueError(f"true has {y.size} values, pred {yhat.size}")
    if y.size == 0:
        raise ValueError("no rows to score")
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (y.size, NUM_CLASSES):
            raise ValueError(f"probs must have shape ({y.size}, {NUM_CLASSES}), got {probs.shape}")
    prec, rec, f1, support = _skm().precision_recall_fscore_support(y, yhat, labels=LABELS, zero_division=np.nan)
    in_data = [k for k in LABELS if support[k]]
    per_class = {}
    for k, name in enumerate(CLASSES):
        roc = pr = None
        if probs is not None and 0 < support[k] < y.size:  # one-vs-rest needs positives and negatives
            roc = _num(_skm().roc_auc_score(y == k, probs[:, k]))
            pr = _num(_skm().average_precision_score(y == k, probs[:, k]))
        per_class[name] = {"precision": _num(prec[k]), "recall": _num(rec[k]),
                           "f1": _num(f1[k]) if support[k] else None,
                           "support": int(support[k]), "roc_auc": roc, "pr_auc": pr}
    rocs = [c["roc_auc"] for c in per_class.values() if c["roc_auc"] is not None]
    prs = [c["pr_auc"] for c in per_class.values() if c["pr_auc"] is not None]
    with warnings.catch_warnings():
        # Both are expected here and documented above: predicted classes the truth lacks, one class only.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        balanced = _num(_skm().balanced_accuracy_score(y, yhat))
    return {
        "accuracy": _num(_skm().accuracy_score(y, yhat)),
        "balanced_accuracy": balanced,
        "macro_f1": _num(_skm().f1_score(y, yhat, labels=in_data, average="macro", zero_division=0)),
        "weighted_f1": _num(_skm().f1_score(y, yhat, labels=in_data, average="weighted", zero_division=0)),
        # kappa and alpha are 0/0 when truth and prediction use one single class: None then.
        "cohen_kappa": _num(_skm().cohen_kappa_score(y, yhat)) if np.unique(np.r_[y, yhat]).size > 1 else None,
        "krippendorff_alpha": _krippendorff_nominal(y, yhat),
        "roc_auc_macro": _num(np.mean(rocs)) if rocs else None,
        "pr_auc_macro": _num(np.mean(prs)) if prs else None,
        "classes_in_data": [CLASSES[k] for k in in_data],
        "per_class": per_class,
        "confusion": _skm().confusion_matrix(y, yhat, labels=LABELS).tolist(),
    }


def calibration(y_true, y_pred, probs, n_bins: int = 15) -> dict:
    """Whether the confidence a model shows (the probability of its predicted class) is how often it is right.

    ECE is the count-weighted mean gap |accuracy - mean confidence| over ``n_bins`` equal-width confidence bins
    (Guo et al., 2017); NLL (log loss) and the multiclass Brier score (sum over classes, 0-2) come from
    scikit-learn. ``bins`` lists the non-empty bins: the reliability diagram.
    """
    y, yhat = _check_labels(y_true, "true"), _check_labels(y_pred, "pred")
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)  # predictions files round to 6 decimals
    conf = probs[np.arange(y.size), yhat]
    correct = (y == yhat).astype(np.float64)
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)  # (lo, hi], 0 in the first bin
    count = np.bincount(idx, minlength=n_bins)
    mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / np.maximum(count, 1)
    acc = np.bincount(idx, weights=correct, minlength=n_bins) / np.maximum(count, 1)
    return {
        "ece": float((count * np.abs(acc - mean_conf)).sum() / y.size),
        "nll": float(_skm().log_loss(y, probs, labels=LABELS)),
        "brier": float(_skm().brier_score_loss(y, probs, labels=LABELS)),
        "mean_confidence": float(conf.mean()),
        "accuracy": float(correct.mean()),
        "bins": [{"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": int(count[b]), "confidence": float(mean_conf[b]),
                  "accuracy": float(acc[b])} for b in map(int, np.flatnonzero(count))],
    }


def _krippendorff_nominal(y: np.ndarray, yhat: np.ndarray) -> float | None:
    """Alpha with truth and prediction as the two raters, nominal level; None when only one value occurs."""
    if np.unique(np.r_[y, yhat]).size < 2:
        return None
    # A fixed value domain skips the package's own (slow) scan for distinct values.
    return _num(krippendorff.alpha(reliability_data=np.vstack([y, yhat]), value_domain=LABELS,
                                   level_of_measurement="nominal"))


def _frame_arrays(pred_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(pred_df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(pred_df).__name__}")
    missing = [c for c in ["true", "pred", *PROB_COLS] if c not in pred_df.columns]
    if missing:
        raise ValueError(f"predictions table lacks column(s) {', '.join(missing)} (see docs/run_folder.md)")
    probs = pred_df[PROB_COLS].to_numpy(dtype=np.float64)
    sums_to_one = not len(probs) or (np.isfinite(probs).all() and probs.min() >= 0
                                     and np.abs(probs.sum(axis=1) - 1).max() < 1e-3)
    if not sums_to_one:
        raise ValueError("prob_0 ... prob_7 must be probabilities that sum to 1 in each row (softmax of the logits), "
                         "not logits, scores or empty cells")
    return _check_labels(pred_df["true"], "true"), _check_labels(pred_df["pred"], "pred"), probs


def _va_arrays(pred_df: pd.DataFrame, dim: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(truth, prediction) for one dimension, or None when the table has no such columns."""
    cols = [f"{dim}_true", f"{dim}_pred"]
    if not all(c in pred_df.columns for c in cols):
        return None
    return tuple(pd.to_numeric(pred_df[c], errors="coerce").to_numpy(dtype=np.float64) for c in cols)


def compute_metrics(pred_df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """The metrics_<split>.json content (docs/run_folder.md) except split, data_root, checkpoint and tta."""
    y, yhat, probs = _frame_arrays(pred_df)
    out = {"n": int(y.size), **classification_metrics(y, yhat, probs)}
    out["calibration"] = calibration(y, yhat, probs)
    for dim in VA_DIMS:
        va = _va_arrays(pred_df, dim)
        out[dim] = regression_metrics(*va) if va is not None else None
    out["ci95"] = bootstrap_ci(pred_df, n_boot=n_boot, seed=seed)
    return out


# ---------------------------------------------------------------- bootstrap
def confusion_stats(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Classification metrics of a stack of confusion matrices (..., 8, 8), rows true, vectorised.

    Same definitions as classification_metrics: macro F1 and balanced accuracy over the classes in
    each matrix's truth. Undefined values are NaN.
    """
    conf = np.asarray(conf, dtype=np.float64)
    n = conf.sum(axis=(-2, -1))
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    rows, cols = conf.sum(-1), conf.sum(-2)  # support, predicted count
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = tp.sum(-1) / n
        recall = np.where(rows > 0, tp / rows, np.nan)
        f1 = np.where(rows > 0, 2 * tp / (rows + cols), np.nan)
        pe = (rows * cols).sum(-1) / n**2
        kappa = (acc - pe) / (1 - pe)
        # Nominal alpha for two raters and no missing values, from the coincidence matrix C + Cᵀ
        # (2n pairable values, n_c = rows + cols): 1 - (2n - 1)·(off-diagonal coincidences) / Σ_{c≠k} n_c n_k.
        nc = rows + cols
        alpha = 1 - (2 * n - 1) * 2 * (n - tp.sum(-1)) / ((2 * n) ** 2 - (nc**2).sum(-1))
        return {"accuracy": acc, "balanced_accuracy": np.nanmean(recall, -1),
                "macro_f1": np.nanmean(f1, -1), "weighted_f1": np.nansum(f1 * rows, -1) / n,
                "cohen_kappa": kappa, "krippendorff_alpha": alpha}


# Per-row terms whose (resample-weighted) sums give every valence/arousal statistic.
_VA_TERMS = ("n", "t", "p", "tt", "pp", "tp", "abs_err", "agree")


def _va_terms(pred_df: pd.DataFrame, dim: str) -> np.ndarray | None:
    """(rows, len(_VA_TERMS)) terms, zero on rows without an annotation; None when no row has one."""
    va = _va_arrays(pred_df, dim)
    if va is None:
        return None
    keep = np.isfinite(va[0]) & np.isfinite(va[1])
    if not keep.any():
        return None
    t, p = np.where(keep, va[0], 0.0), np.where(keep, va[1], 0.0)
    # Centre both on the truth's mean: every statistic is shift-invariant, and the second moments then
    # lose no precision when variances are taken as E[x²] - E[x]².
    shift = t[keep].mean()
    tc, pc = np.where(keep, t - shift, 0.0), np.where(keep, p - shift, 0.0)
    terms = [keep, tc, pc, tc * tc, pc * pc, tc * pc, np.abs(t - p), keep & (np.sign(t) == np.sign(p))]
    return np.stack(terms, axis=1).astype(np.float64)


def va_stats(sums: np.ndarray) -> dict[str, np.ndarray]:
    """RMSE, MAE, Pearson r, SAGR and CCC from (..., len(_VA_TERMS)) sums of _va_terms rows."""
    s = dict(zip(_VA_TERMS, np.moveaxis(np.asarray(sums, dtype=np.float64), -1, 0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        m = {k: v / s["n"] for k, v in s.items() if k != "n"}
        vt, vp, cov = m["tt"] - m["t"] ** 2, m["pp"] - m["p"] ** 2, m["tp"] - m["t"] * m["p"]
        # a resample of constant values has a variance of rounding's size, not 0: r is undefined there
        varies = (vt > 1e-12 * m["tt"]) & (vp > 1e-12 * m["pp"])
        return {"rmse": np.sqrt(np.maximum(m["tt"] - 2 * m["tp"] + m["pp"], 0)), "mae": m["abs_err"],
                "pearson": np.where(varies, cov / np.sqrt(vt * vp), np.nan), "sagr": m["agree"],
                "ccc": 2 * cov / (vt + vp + (m["t"] - m["p"]) ** 2)}


def _percentile_ci(values: np.ndarray) -> list[float] | None:
    v = values[np.isfinite(values)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v.size else None


def _resample_weights(n: int, n_boot: int, seed: int):
    """Blocks of (b, n) weights: how often each row was drawn in each of n_boot resamples, deterministic per seed.

    One bincount over offset indices per block; every statistic is then a weighted sum over the original
    rows, which is much faster than gathering values.
    """
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        weights = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n)
        yield weights.reshape(b, n).astype(np.float64)


def _weighted_stats(codes: np.ndarray, va: dict[str, np.ndarray], weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every bootstrapped statistic for each row of weights (b, n); codes are confusion cells, va _va_terms."""
    conf = np.stack([np.bincount(codes, weights=w, minlength=NUM_CLASSES**2) for w in weights])
    stats = confusion_stats(conf.reshape(len(weights), NUM_CLASSES, NUM_CLASSES))
    for dim, terms in va.items():
        stats.update({f"{dim}_{k}": v for k, v in va_stats(weights @ terms).items()})
    return stats


def _bootstrap_inputs(pred_df: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    y, yhat, _ = _frame_arrays(pred_df)
    va = {dim: terms for dim in VA_DIMS if (terms := _va_terms(pred_df, dim)) is not None}
    return y * NUM_CLASSES + yhat, va


def bootstrap_ci(pred_df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Percentile-bootstrap 95% intervals {"accuracy": [lo, hi], ...}.

    Keys: accuracy, balanced_accuracy, macro_f1, weighted_f1, cohen_kappa, krippendorff_alpha, and for
    each annotated dimension <dim>_rmse, _mae, _pearson, _sagr, _ccc. Each resample draws the table's
    rows with replacement; valence/arousal use the annotated rows among those drawn. An interval is None
    when no resample defines the metric. Deterministic for a given table and seed. AUCs get no interval
    (they need a sort per resample).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    codes, va = _bootstrap_inputs(pred_df)
    if codes.size == 0:
        raise ValueError("no rows to resample")
    boots: dict[str, list[np.ndarray]] = {}
    for weights in _resample_weights(codes.size, n_boot, seed):
        for k, v in _weighted_stats(codes, va, weights).items():
            boots.setdefault(k, []).append(v)
    return {k: _percentile_ci(np.concatenate(v)) for k, v in boots.items()}


# Metrics a paired comparison reports, in this order (valence/arousal ones where both runs have them).
PAIRED_METRICS = ("accuracy", "macro_f1", "cohen_kappa", "valence_ccc", "arousal_ccc", "valence_rmse",
                  "arousal_rmse")


def align_predictions(tables: list[pd.DataFrame], names=None) -> list[pd.DataFrame]:
    """Each table cut to the sample ids all of them hold, rows in the same order (index reset).

    Raises ValueError when a table repeats an id, the tables share no id, or they give a shared id different labels.
    """
    names = names or [str(i + 1) for i in range(len(tables))]
    indexed = []
    for name, df in zip(names, tables):
        _frame_arrays(df)
        ids = df["id"].astype(str)
        if ids.duplicated().any():
            raise ValueError(f"run {name}'s predictions repeat sample id {ids[ids.duplicated()].iloc[0]!r}")
        indexed.append(df.set_axis(ids, axis=0))
    common = indexed[0].index
    for t in indexed[1:]:
        common = common.intersection(t.index, sort=False)
    if common.empty:
        raise ValueError("the runs share no sample ids (evaluated on different data or splits, or folds of one "
                         "cross-validation, each tested on other images: to average two cross-validations, give "
                         "their pooled folders, or their folds as comma lists)")
    rows = [t.loc[common].reset_index(drop=True) for t in indexed]
    if any((r["true"].to_numpy() != rows[0]["true"].to_numpy()).any() for r in rows[1:]):
        raise ValueError("the runs give different true labels for the same sample ids: not the same data")
    return rows


def hard_answers(pred: pd.DataFrame) -> bool:
    """Whether predictions give one class per image and no scores (every probability 0 or 1), as imported answers
    without probabilities do: ROC and PR curves and calibration then have nothing to rank or calibrate."""
    return bool(len(pred)) and bool(np.isin(pred[PROB_COLS].to_numpy(), (0, 1)).all())


def proportion_ci(k: int, n: int) -> tuple[float, float, float]:
    """k of n as a share with its Wilson 95% interval; NaNs when n is 0."""
    if n == 0:
        return (float("nan"),) * 3
    z2 = Z95 ** 2
    centre, spread = (k + z2 / 2) / (n + z2), Z95 * math.sqrt(k * (n - k) / n + z2 / 4) / (n + z2)
    return k / n, max(0.0, centre - spread), min(1.0, centre + spread)


def format_p(p: float) -> str:
    """A p-value as the tables print it: three decimals, "<0.001" below that."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: p of a split at least this uneven of the samples only one run gets right."""
    from scipy.special import bdtr  # the binomial distribution function: P(X <= k) of n draws at p

    n = only_a + only_b  # Binomial(n, 1/2) is symmetric: twice the tail beyond the smaller count
    return min(1.0, 2 * float(bdtr(min(only_a, only_b), n, 0.5))) if n else 1.0


PAIR_VERDICT_P = 0.05  # a verdict names the better run where McNemar's p, adjusted (holm) where several, is below this


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of p-values tested together: with 21 pairs of runs one raw p below 0.05 is
    expected by chance alone; an adjusted p below 0.05 keeps the chance of any false call below 5%."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    stepped = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = stepped
    return out


def corrected_resampled_t(diffs, test_train_ratio: float) -> tuple[float, float]:
    """(t, two-sided p) of the corrected resampled t-test (Nadeau & Bengio, 2003; Bouckaert & Frank, 2004) on the
    per-fold differences of two recipes cross-validated on the same folds. The folds' training sets overlap, so
    the plain t-test's variance is too small; the correction multiplies it by 1 + K * n_test / n_train. NaN for
    fewer than two folds."""
    from scipy.special import stdtr  # Student's t distribution function

    d = np.asarray(diffs, dtype=float)
    k = d.size
    if k < 2:
        return math.nan, math.nan
    var = (1 / k + test_train_ratio) * d.var(ddof=1)
    if var == 0:
        return (0.0, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
    t = float(d.mean() / math.sqrt(var))
    return t, float(2 * stdtr(k - 1, -abs(t)))


def fold_by_fold(folds_a: list, folds_b: list) -> dict | None:
    """Two cross-validations on the same folds, fold by fold: each fold's (test predictions, number of images it
    trained on), in any order. Returns {"diffs": accuracy of A's fold − B's fold testing the same images, in A's order,
    "mean": their mean, "t", "p": the corrected resampled t-test (corrected_resampled_t)}, or None where the folds do
    not pair up (other folds: another seed, another data set)."""
    if len(folds_a) < 2 or len(folds_a) != len(folds_b):
        return None
    by_ids = {frozenset(f["id"].astype(str)): f for f, _ in folds_b}
    pairs = [(f, by_ids.get(frozenset(f["id"].astype(str)))) for f, _ in folds_a]
    if any(g is None for _, g in pairs):
        return None
    diffs = [float((f["pred"] == f["true"]).mean() - (g["pred"] == g["true"]).mean()) for f, g in pairs]
    t, p = corrected_resampled_t(diffs, sum(len(f) / n_train for f, n_train in folds_a) / len(folds_a))
    return {"diffs": diffs, "mean": float(np.mean(diffs)), "t": t, "p": p}


def paired_comparison(pred_a: pd.DataFrame, pred_b: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Run A against run B on the sample ids both evaluated: is the difference larger than the noise?

    Returns {"n", "a_only_right", "b_only_right", "mcnemar_p", "metrics": {name: {"a", "b", "diff", "ci95"}}}.
    diff is A − B; ci95 is a paired percentile bootstrap (each resample draws the same rows for both runs,
    so what the two share cancels out and the interval is narrower than comparing two separate intervals).
    mcnemar_p is the exact (binomial) McNemar test on the samples exactly one of the two gets right.
    Raises ValueError when the tables share no ids, repeat an id, or disagree on a shared id's label.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    a, b = align_predictions([pred_a, pred_b], names=("A", "B"))
    (codes_a, va_a), (codes_b, va_b) = _bootstrap_inputs(a), _bootstrap_inputs(b)
    va_a = {k: v for k, v in va_a.items() if k in va_b}
    va_b = {k: v for k, v in va_b.items() if k in va_a}
    n = codes_a.size
    ones = np.ones((1, n))
    full_a, full_b = _weighted_stats(codes_a, va_a, ones), _weighted_stats(codes_b, va_b, ones)
    keys = [k for k in PAIRED_METRICS if k in full_a]
    diffs: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for weights in _resample_weights(n, n_boot, seed):
        sa, sb = _weighted_stats(codes_a, va_a, weights), _weighted_stats(codes_b, va_b, weights)
        for k in keys:
            diffs[k].append(sa[k] - sb[k])
    right_a = a["true"].to_numpy() == a["pred"].to_numpy()
    right_b = b["true"].to_numpy() == b["pred"].to_numpy()
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    p = mcnemar_p(only_a, only_b)
    out = {}
    for k in keys:
        va, vb = _num(full_a[k][0]), _num(full_b[k][0])
        out[k] = {"a": va, "b": vb, "diff": None if va is None or vb is None else va - vb,
                  "ci95": _percentile_ci(np.concatenate(diffs[k]))}
    return {"n": n, "a_only_right": only_a, "b_only_right": only_b, "mcnemar_p": p, "metrics": out}


def _fmt(x, spec: str) -> str:
    """A figure for a line of text; an undefined one (None, NaN: e.g. kappa with one class) as "–"."""
    return "–" if x is None or not math.isfinite(x) else format(x, spec)


def summary_line(m: dict) -> str:
    """The headline metrics on one line, as the command-line tools print them."""
    s = (f"acc {_fmt(m['accuracy'], '.4f')}  macro-F1 {_fmt(m['macro_f1'], '.4f')}  "
         f"kappa {_fmt(m['cohen_kappa'], '.4f')}")
    for k in ("valence", "arousal"):
        if m.get(k):
            s += f"  {k} RMSE {_fmt(m[k]['rmse'], '.3f')} CCC {_fmt(m[k]['ccc'], '.3f')}"
    if m.get("calibration"):
        s += f"  ECE {_fmt(m['calibration']['ece'], '.3f')}"
    return s


def write_evaluation(out_dir, tag: str, df: pd.DataFrame, **extra) -> dict:
    """Write predictions_<tag>.csv and metrics_<tag>.json (atomically) into a run folder; return the metrics."""
    metrics = {"split": tag, **extra, **compute_metrics(df)}
    atomic_write_csv(Path(out_dir) / f"predictions_{tag}.csv", df)
    atomic_write_json(Path(out_dir) / f"metrics_{tag}.json", metrics)
    return metrics
