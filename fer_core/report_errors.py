"""Error analysis: misclassified samples and the largest valence/arousal errors (filter, sort, page, find by id),
and where runs disagree."""
from __future__ import annotations

import math
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .labels import CLASSES, NUM_CLASSES, PROB_COLS
from .metrics import PAIR_VERDICT_P, holm, mcnemar_p
from .report import plot_text

SORTS = {
    "Most confident mistakes first": ("confidence", False),
    "Least confident mistakes first": ("confidence", True),
    "Lowest probability on the true class first": ("true_prob", True),
    "ID": ("id", True),
    # with FER+'s annotator votes only
    "Most annotators agreeing with the prediction first": ("pred_votes", False),
}
VOTE_SORTS = ["Most annotators agreeing with the prediction first"]


def misclassified(pred: pd.DataFrame, true_class: int | None = None, pred_class: int | None = None,
                  sort: str = "Most confident mistakes first", votes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows where pred != true, with class names, the predicted class's probability (confidence) and the
    probability given to the true class; optionally filtered by true and/or predicted class. With FER+'s ``votes``
    (data.ferplus_votes), also each image's votes (with_votes)."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; choose one of {list(SORTS)}")
    if votes is None and sort in VOTE_SORTS:
        raise ValueError(f"sort {sort!r} needs FER+ votes")
    wrong = pred["pred"] != pred["true"]
    if true_class is not None:
        wrong &= pred["true"] == true_class
    if pred_class is not None:
        wrong &= pred["pred"] == pred_class
    rows = pred.loc[wrong, ["id", "path", "true", "pred"]].copy()
    probs = pred.loc[wrong, PROB_COLS].to_numpy()
    pos = np.arange(len(rows))
    rows["confidence"] = probs[pos, rows["pred"].to_numpy()]
    rows["true_prob"] = probs[pos, rows["true"].to_numpy()]
    rows["true_name"] = [CLASSES[i] for i in rows["true"]]
    rows["pred_name"] = [CLASSES[i] for i in rows["pred"]]
    if votes is not None:
        rows = with_votes(rows, votes)
    column, ascending = SORTS[sort]
    if column == "id":
        rows = rows.iloc[natural_order(rows["id"])]
    else:
        ties = [] if column == "confidence" else ["confidence"]  # then the most confident first
        rows = rows.sort_values([column, *ties], ascending=[ascending, *[False] * len(ties)], kind="stable")
    return rows.reset_index(drop=True)


VA_SORTS = {
    "Largest error first": ("abs_error", False),
    "Predicted too high first": ("error", False),
    "Predicted too low first": ("error", True),
    "ID": ("id", True),
}


def classes_seen(*preds: pd.DataFrame) -> list[int]:
    """The classes (indices, in order) that any of the predictions tables labels or predicts: the ones worth
    offering as a filter or a measure (a 7-class data set and model never show Contempt)."""
    return sorted({int(c) for p in preds for col in ("true", "pred") for c in pd.unique(p[col])})


def annotated_dims(pred: pd.DataFrame) -> list[str]:
    """"valence" and/or "arousal": those with at least one sample both annotated and predicted."""
    return [d for d in ("valence", "arousal") if f"{d}_true" in pred and f"{d}_pred" in pred
            and (pred[f"{d}_true"].notna() & pred[f"{d}_pred"].notna()).any()]


def va_errors(pred: pd.DataFrame, dim: str, true_class: int | None = None, pred_class: int | None = None,
              sort: str = "Largest error first") -> pd.DataFrame:
    """Every sample with ``dim`` ("valence" or "arousal") annotated and predicted, right class or wrong, with the
    annotation ("{dim}_true"), the prediction ("{dim}_pred"), ``error`` (prediction - annotation) and ``abs_error``;
    optionally filtered by true and/or predicted class; sorted by ``sort`` (VA_SORTS). The gallery's view of the
    valence/arousal heads' mistakes."""
    if dim not in ("valence", "arousal"):
        raise ValueError(f"unknown dimension {dim!r}; choose valence or arousal")
    if sort not in VA_SORTS:
        raise ValueError(f"unknown sort {sort!r}; choose one of {list(VA_SORTS)}")
    t, p = f"{dim}_true", f"{dim}_pred"
    if t not in pred or p not in pred:
        return pd.DataFrame(columns=["id", "path", "true", "pred", t, p, "error", "abs_error"])
    keep = pred[t].notna() & pred[p].notna()
    if true_class is not None:
        keep &= pred["true"] == true_class
    if pred_class is not None:
        keep &= pred["pred"] == pred_class
    rows = pred.loc[keep, ["id", "path", "true", "pred", t, p]].copy()
    rows["error"] = rows[p] - rows[t]
    rows["abs_error"] = rows["error"].abs()
    rows["true_name"] = [CLASSES[i] for i in rows["true"]]
    rows["pred_name"] = [CLASSES[i] for i in rows["pred"]]
    column, ascending = VA_SORTS[sort]
    if column == "id":
        rows = rows.iloc[natural_order(rows["id"])]
    else:
        rows = rows.sort_values(column, ascending=ascending, kind="stable")
    return rows.reset_index(drop=True)


def va_error_summary(rows: pd.DataFrame) -> dict:
    """{"rmse", "bias" (the mean error: above 0, predicted too high on average)} of va_errors' rows."""
    error = rows["error"].to_numpy(np.float64)
    return {"rmse": float(np.sqrt(np.mean(error ** 2))), "bias": float(error.mean())}


def find_sample(pred: pd.DataFrame, query: str) -> pd.DataFrame:
    """Rows whose id equals the query; failing that, whose last part equals it ("fer0000635" finds "Test/fer0000635"),
    or whose trailing number does ("635" finds it too). Empty when nothing matches."""
    q = str(query).strip()
    if not q:
        return pred.iloc[0:0]
    exact = pred[pred["id"] == q]
    if len(exact):
        return exact
    if not q.isdigit():
        return pred[pred["id"].astype(str).str.endswith("/" + q)]
    trailing = pred["id"].astype(str).str.extract(r"(\d+)\D*$")[0]
    return pred[pd.to_numeric(trailing, errors="coerce") == int(q)]


def probability_table(row: pd.Series) -> pd.DataFrame:
    """One sample's class probabilities, highest first, marking the true and predicted class."""
    table = pd.DataFrame({"class": CLASSES, "probability": [float(row[c]) for c in PROB_COLS]})
    table["true"] = [i == int(row["true"]) for i in range(NUM_CLASSES)]
    table["predicted"] = [i == int(row["pred"]) for i in range(NUM_CLASSES)]
    return table.sort_values("probability", ascending=False).reset_index(drop=True)


def with_votes(rows: pd.DataFrame, votes: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (from misclassified) with the FER+ annotators' votes for each image (data.ferplus_votes): "votes",
    as text ("Contempt 7, Anger 2, Disgust 1"), and "pred_votes", how many annotators chose the predicted class."""
    counts = votes.reindex(rows["id"].astype(str))
    rows = rows.copy()
    rows["votes"] = [vote_text(c) for c in counts.to_numpy()]
    table = counts[CLASSES].to_numpy()
    rows["pred_votes"] = table[np.arange(len(rows)), rows["pred"].to_numpy()]
    return rows


def vote_text(counts) -> str:
    """One image's votes, most first, classes without a vote left out: "Contempt 7, Anger 2, Disgust 1"; "" for
    an image without votes."""
    names = [*CLASSES, "unknown", "not a face"]
    if counts is None or not np.nansum(counts):
        return ""
    order = sorted(range(len(names)), key=lambda i: -counts[i])
    return ", ".join(f"{names[i]} {counts[i]:.0f}" for i in order if counts[i] > 0)


def plausible_mistakes(rows: pd.DataFrame, min_votes: int = 2) -> tuple[int, int]:
    """(mistakes whose predicted class at least ``min_votes`` annotators chose as well, mistakes with votes): a
    mistake a second annotator made too is a disagreement among people as much as an error. Two, because the FER+
    paper's protocol drops a class that only one annotator chose as an outlier."""
    known = rows["pred_votes"].notna()
    return int((rows.loc[known, "pred_votes"] >= min_votes).sum()), int(known.sum())


def comparable_runs(preds: dict[str, pd.DataFrame]) -> tuple[list[str], list[str]]:
    """(runs to compare, runs left out): the largest set of runs that all share sample ids with each other, and give
    those ids the same labels.

    Runs evaluated on different data (AffectNet vs FER+) share no ids; comparing them sample by sample is
    meaningless, so the biggest mutually overlapping group is kept (ties: the group of the earliest run). A run that
    labels a shared id otherwise (scored on relabelled data) is left out: right and wrong mean other things for it.
    """
    names = list(preds)
    # One hash pass over every id, then set logic on a boolean (id x run) presence matrix.
    all_ids = pd.concat([preds[n]["id"].astype(str) for n in names], ignore_index=True)
    codes, uniques = pd.factorize(all_ids)
    present = np.zeros((len(uniques), len(names)), dtype=bool)
    present[codes, np.repeat(np.arange(len(names)), [len(preds[n]) for n in names])] = True
    best: list[str] = []
    for i, run in enumerate(names):
        group, common = [run], present[:, i]
        for j, other in enumerate(names):
            shared = common & present[:, j]
            if j != i and shared.any():
                group.append(other)
                common = shared
        if len(group) > len(best):
            best = group
    order = list(preds)
    kept = sorted(best, key=order.index)
    truth = pd.Series(preds[kept[0]]["true"].to_numpy(), index=preds[kept[0]]["id"].astype(str)) if kept else None
    for run in kept[1:]:
        theirs = pd.Series(preds[run]["true"].to_numpy(), index=preds[run]["id"].astype(str))
        shared = theirs.index.intersection(truth.index)
        if (theirs[shared] != truth[shared]).any():
            kept.remove(run)
    return kept, [r for r in order if r not in kept]


def correctness(preds: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Ids evaluated by any run (index) x run (nullable bool column: predicted correctly; missing where the run did
    not evaluate the id), plus "true". disagreement_summary compares the ids every run evaluated; pairwise_table and
    pair_ids each pair's shared ids."""
    frames = [pd.Series((p["pred"] == p["true"]).to_numpy(), index=p["id"].astype(str), name=run, dtype="boolean")
              for run, p in preds.items()]
    table = pd.concat(frames, axis=1, join="outer") if frames else pd.DataFrame()
    if len(frames):
        truth = pd.concat([pd.Series(p["true"].to_numpy(), index=p["id"].astype(str)) for p in preds.values()])
        truth = truth[~truth.index.duplicated()]
        table["true"] = [CLASSES[i] for i in truth.reindex(table.index)]
    table.index.name = "id"
    return table


def labelled_correctness(pred: pd.DataFrame) -> pd.Series:
    """Whether each image was answered right, keyed by its id and its label together ("635\x1f3"): runs ranked
    together by these keys were scored on the same images with the same labels, not on relabelled copies."""
    return pd.Series((pred["pred"] == pred["true"]).to_numpy(),
                     index=pred["id"].astype(str) + "\x1f" + pred["true"].astype(str))


def failure_votes(table: pd.DataFrame, votes: pd.DataFrame, run: str) -> tuple[pd.DataFrame, int]:
    """A failure_table made with ``same_wrong`` with FER+'s annotator votes (data.ferplus_votes) as a column
    "annotators' votes" after the true class, and how many of the images every run gives one wrong class got at
    least two votes for that class (faces that read both ways rather than labels that are wrong). ``run``: a run of
    the table, whose "predicted" column names that class."""
    counts = votes.reindex(table["id"].astype(str))
    table = table.copy()
    table.insert(2, "annotators' votes", [vote_text(c) for c in counts.to_numpy()])
    answer = table[f"{run}: predicted"].map({c: i for i, c in enumerate(CLASSES)}).fillna(0).astype(int).to_numpy()
    backed = counts[CLASSES].to_numpy()[np.arange(len(counts)), answer] >= 2
    return table, int(backed[table["same wrong answer"].to_numpy(bool)].sum())


def _runs(corr: pd.DataFrame) -> list[str]:
    return [c for c in corr.columns if c != "true"]


def disagreement_summary(corr: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Among the ids every run evaluated: ids every run gets wrong, and ids exactly one run gets wrong (with that
    run's name)."""
    runs = _runs(corr)
    corr = corr.dropna(subset=runs)
    wrong = ~corr[runs].astype(bool)
    n_wrong = wrong.sum(axis=1)
    all_wrong = corr.loc[n_wrong == len(runs), ["true"]].reset_index()
    one = wrong[n_wrong == 1]
    only_one = pd.DataFrame({"id": one.index, "wrong run": one.idxmax(axis=1).to_numpy(),
                             "true": corr.loc[one.index, "true"].to_numpy()})
    return {"all_wrong": all_wrong, "only_one_wrong": only_one}


def failure_table(preds: dict[str, pd.DataFrame], ids, same_wrong: bool = False) -> pd.DataFrame:
    """The given ids as a table to relabel or report from: path and true class, then each run's predicted class and
    its confidence, and the runs' mean probability of the label (confident learning's self-confidence: the lower,
    the more the runs doubt the label); with ``same_wrong``, "same wrong answer": every run predicted one class, not
    the true one (a label to doubt)."""
    ids = pd.Index(ids, dtype=str, name="id")
    first = next(iter(preds.values())).set_index("id")
    table = pd.DataFrame({"path": first["path"].reindex(ids),
                          "true": [CLASSES[int(k)] if pd.notna(k) else None for k in first["true"].reindex(ids)]},
                         index=ids)
    answers, of_label = [], []
    labels = first["true"].reindex(ids).to_numpy()
    for run, p in preds.items():
        p = p.set_index("id").reindex(ids)
        answers.append(p["pred"])
        known = pd.notna(labels)
        of_label.append(np.full(len(ids), np.nan))
        of_label[-1][known] = p[PROB_COLS].to_numpy(float)[known, labels[known].astype(int)]
        table[f"{run}: predicted"] = [CLASSES[int(k)] if pd.notna(k) else None for k in p["pred"]]
        probs = p[PROB_COLS].to_numpy(float)
        table[f"{run}: confidence"] = np.round(np.nanmax(probs, axis=1) if len(p) else [], 3)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an id no run scored: NaN, not a warning
        table["label's probability"] = np.round(np.nanmean(of_label, axis=0), 3) if of_label else []
    if same_wrong:
        answers = pd.concat(answers, axis=1)
        table["same wrong answer"] = (answers.nunique(axis=1) == 1) & answers.notna().all(axis=1) & \
            (answers.iloc[:, 0] != first["true"].reindex(ids))
    return table.reset_index()


def pairwise_table(corr: pd.DataFrame) -> pd.DataFrame:
    """Per pair of runs, on the ids both evaluated ("images"): samples A gets right and B wrong, the reverse, both
    wrong, both right, the exact McNemar p of the first two (how often runs equally good would split that unevenly),
    that p adjusted for the number of pairs (holm), and the verdict it gives: "A better" or "B better" (the one
    right more often where only one is) when the adjusted p is below 0.05, else "within noise"."""
    runs = _runs(corr)
    x = corr[runs].to_numpy(float)
    right, wrong = (x == 1).astype(float), (x == 0).astype(float)  # NaN (not evaluated) in neither
    # every pair's counts at once, as products of the runs' indicator columns: the pairs grow with the runs squared
    rw, rr, ww = right.T @ wrong, right.T @ right, wrong.T @ wrong
    rows = []
    for i, j in combinations(range(len(runs)), 2):
        only_a, only_b = int(rw[i, j]), int(rw[j, i])
        rows.append({"run A": runs[i], "run B": runs[j], "images": only_a + only_b + int(rr[i, j] + ww[i, j]),
                     "A right, B wrong": only_a, "B right, A wrong": only_b, "both wrong": int(ww[i, j]),
                     "both right": int(rr[i, j]), "McNemar p": mcnemar_p(only_a, only_b)})
    table = pd.DataFrame(rows, columns=["run A", "run B", "images", "A right, B wrong", "B right, A wrong",
                                        "both wrong", "both right", "McNemar p"])
    table["Holm p"] = holm(table["McNemar p"].to_numpy())
    better = np.where(table["A right, B wrong"] > table["B right, A wrong"], "A better", "B better")
    table["verdict"] = np.where(table["Holm p"] < PAIR_VERDICT_P, better, "within noise")
    return table


def pair_ids(corr: pd.DataFrame, right: str, wrong: str) -> list[str]:
    """Ids the first run classifies correctly and the second does not."""
    both = corr[[right, wrong]].dropna()
    sel = both[right].astype(bool) & ~both[wrong].astype(bool)
    return natural_sorted(both.index[sel])


def natural_order(ids) -> np.ndarray:
    """Positions that order ids by their trailing number ("9" before "10", "Test/fer0000635" as 635), then as
    text; ids without a number come last."""
    ids = pd.Series(list(ids), dtype=object).astype(str)
    nums = pd.to_numeric(ids.str.extract(r"(\d+)\D*$")[0], errors="coerce").fillna(np.inf).to_numpy()
    return np.lexsort((ids.to_numpy(), nums))


def natural_sorted(ids) -> list[str]:
    """Ids in ``natural_order``."""
    ids = np.asarray(list(ids), dtype=object).astype(str)
    return ids[natural_order(ids)].tolist()


# Paired-comparison metrics as the page names them, and whether a smaller value is the better one.
PAIRED_LABELS = {"accuracy": ("accuracy", False), "macro_f1": ("macro F1", False),
                 "cohen_kappa": ("Cohen's kappa", False), "valence_ccc": ("valence CCC", False),
                 "arousal_ccc": ("arousal CCC", False), "valence_rmse": ("valence RMSE", True),
                 "arousal_rmse": ("arousal RMSE", True)}


def _signed(x: float) -> str:
    """x with a sign and three decimals, or more where three would show a non-zero end of an interval as 0.000
    (the verdict beside it rests on the sign)."""
    for decimals in (3, 4, 5):
        text = f"{x:+.{decimals}f}"
        if x == 0 or not math.isfinite(x) or float(text) != 0:
            return text
    return f"{x:+.1e}"


PAIRED_DIFF = "A − B [95% CI]"  # paired_table's column of the difference with its interval, as one text cell


def paired_table(result: dict, a: str, b: str) -> pd.DataFrame:
    """fer_core.metrics.paired_comparison as rows: metric, A, B, A − B, its paired 95% interval (as text, and
    its ends for the figure), the two as one text cell (PAIRED_DIFF: "+0.022 [+0.003, +0.041]"), and which run the
    interval favours ("within noise" when it contains 0). Accuracy's verdict is McNemar's exact test instead (p below
    0.05), the standard test of two classifiers on the same samples: a bootstrap interval's end near 0 moves with
    its random resamples, and the two can disagree there."""
    rows = []
    for key, m in result["metrics"].items():
        label, lower_better = PAIRED_LABELS[key]
        ci = m["ci95"] or [math.nan, math.nan]
        if key == "accuracy":
            verdict = "within noise" if result["mcnemar_p"] >= PAIR_VERDICT_P else (
                f"{a} better" if result["a_only_right"] > result["b_only_right"] else f"{b} better")
        elif ci[0] > 0 or ci[1] < 0:
            verdict = f"{a} better" if (ci[0] > 0) != lower_better else f"{b} better"
        else:
            verdict = "within noise"
        rows.append({"metric": label + (" (lower is better)" if lower_better else ""), a: m["a"], b: m["b"],
                     "A − B": m["diff"], "95% CI": f"[{_signed(ci[0])}, {_signed(ci[1])}]", "verdict": verdict,
                     "95% CI low": ci[0], "95% CI high": ci[1],
                     PAIRED_DIFF: f"{_signed(m['diff'])} [{_signed(ci[0])}, {_signed(ci[1])}]"})
    return pd.DataFrame(rows)


def paired_figure(table: pd.DataFrame, a: str, b: str) -> go.Figure:
    """Forest plot: each metric's A − B with its paired 95% interval; the line at 0 is "no difference". The metrics
    run down in the table's order (one trace per verdict would otherwise group them by verdict)."""
    colors = {"within noise": "#888888", f"{a} better": "#1f77b4", f"{b} better": "#d62728"}
    fig = go.Figure()
    for verdict, rows in table.groupby("verdict", sort=False):
        fig.add_trace(go.Scatter(
            x=rows["A − B"], y=rows["metric"], mode="markers", name=verdict,
            marker=dict(size=10, color=colors.get(verdict, "#888888")),
            error_x=dict(type="data", symmetric=False, array=rows["95% CI high"] - rows["A − B"],
                         arrayminus=rows["A − B"] - rows["95% CI low"])))
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_layout(title="A − B, paired 95% intervals", xaxis_title=plot_text(f"{a} − {b}"),
                      yaxis=dict(categoryorder="array", categoryarray=list(table["metric"]), autorange="reversed"),
                      height=80 + 40 * len(table),
                      margin=dict(t=50, b=40, l=10, r=10), legend=dict(orientation="h", y=-0.25))
    return fig
