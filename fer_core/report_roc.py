"""One-vs-rest ROC and precision-recall curves per class, plus the macro average, from a predictions frame.

Curves come from sklearn.metrics.roc_curve / precision_recall_curve. On large frames the scores are first
binned on a logit grid (about 1,000 thresholds, finer in both tails than a linear grid) and the bin counts
passed as sample weights: the curve is then exact at every bin edge, costs O(n) instead of a sort per class,
and has few enough points to draw. The AUC shown in legends is the exact value from the metrics file when
the caller passes one, otherwise the area under the drawn curve.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .labels import CLASS_DASHES, CLASSES, NUM_CLASSES, class_colour
from .report import legend_below, legend_label, plot_text

EXACT_MAX_ROWS = 20_000
_LOGIT_EDGES = np.linspace(-14, 14, 1121)  # 0.025-wide logit bins
GRID = np.linspace(0, 1, 201)
MACRO_COLOUR = "#999999"  # a mid grey: reads on a light and on a dark background, and is not Neutral's dark grey


def _binned(y: np.ndarray, s: np.ndarray):
    """Collapse (label, score) pairs into per-bin positive/negative weights at each bin's upper edge."""
    p = np.clip(s, 1e-7, 1 - 1e-7)
    z = np.log(p / (1 - p))
    # Index of the first edge >= z (what searchsorted gives), computed arithmetically on the uniform grid.
    step = _LOGIT_EDGES[1] - _LOGIT_EDGES[0]
    idx = np.clip(np.ceil((z - _LOGIT_EDGES[0]) / step - 1e-9), 0, len(_LOGIT_EDGES)).astype(np.intp)
    edges = 1 / (1 + np.exp(-np.append(_LOGIT_EDGES, 15.0)))
    pos = np.bincount(idx, weights=y, minlength=len(edges))
    neg = np.bincount(idx, minlength=len(edges)) - pos
    keep_p, keep_n = pos > 0, neg > 0
    scores = np.concatenate([edges[keep_p], edges[keep_n]])
    labels = np.concatenate([np.ones(keep_p.sum()), np.zeros(keep_n.sum())])
    return labels, scores, np.concatenate([pos[keep_p], neg[keep_n]])


def _thin(x: np.ndarray, y: np.ndarray, max_points: int):
    if len(x) <= max_points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(int))
    return x[keep], y[keep]


def roc_and_pr(pred: pd.DataFrame, max_points: int = 400) -> dict[str, dict[str, tuple]]:
    """{"roc": class_curves(.., "roc"), "pr": class_curves(.., "pr")} sharing one binning pass per class."""
    return class_curves(pred, ("roc", "pr"), max_points)


def class_curves(pred: pd.DataFrame, kind="roc", max_points: int = 400):
    """{class name: (x, y, area)} for classes present in the frame, plus "macro".

    ``kind`` is "roc" or "pr"; a tuple of both returns {kind: curves}.
    ROC: x = false-positive rate, y = true-positive rate. PR: x = recall, y = precision. The macro curve
    averages the per-class curves on a common x grid (the sklearn documentation's macro-average recipe).
    """
    from sklearn.metrics import auc, precision_recall_curve, roc_curve  # 2-3 s to import: only where needed

    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    for k in kinds:
        if k not in ("roc", "pr"):
            raise ValueError(f"kind must be 'roc' or 'pr', not {k!r}")
    true = pred["true"].to_numpy()
    big = len(pred) > EXACT_MAX_ROWS
    out: dict[str, dict] = {k: {} for k in kinds}
    interp: dict[str, list] = {k: [] for k in kinds}
    for c in range(NUM_CLASSES):
        y = (true == c).astype(float)
        if y.sum() == 0 or y.sum() == len(y):  # a curve needs both positives and negatives
            continue
        s = pred[f"prob_{c}"].to_numpy(dtype=np.float64)
        args = _binned(y, s) if big else (y, s, None)
        for k in kinds:
            if k == "roc":
                x, yv, _ = roc_curve(args[0], args[1], sample_weight=args[2])
            else:
                prec, rec, _ = precision_recall_curve(args[0], args[1], sample_weight=args[2])
                x, yv = rec[::-1], prec[::-1]  # increasing recall for interpolation and drawing
            interp[k].append(np.interp(GRID, x, yv))
            out[k][CLASSES[c]] = (*_thin(x, yv, max_points), float(auc(x, yv)))
    for k in kinds:
        if interp[k]:
            mean = np.mean(interp[k], axis=0)
            out[k]["macro"] = (GRID, mean, float(auc(GRID, mean)))
    return out[kind] if isinstance(kind, str) else out


def _unit_square(fig: go.Figure) -> None:
    """Both axes from 0 to 1 with a tick every 0.2 (1 included), drawn square at the left: a curve's shape, and the
    diagonal's, read true only at equal scales."""
    ticks = dict(range=[-0.01, 1.01], tick0=0, dtick=0.2, constrain="domain")
    fig.update_xaxes(**ticks, constraintoward="left")
    fig.update_yaxes(**ticks, scaleanchor="x", scaleratio=1)


def _curves_figure(lines: list[tuple], kind: str, title: str, classes=(NUM_CLASSES,)) -> go.Figure:
    """ROC or PR axes with one trace per (name, x, y, auc, line style), and the chance line: a random guess's,
    for PR the classes' mean share of the images (1 / k for each number k of classes the runs were scored on)."""
    hover = "FPR %{x:.3f}<br>TPR %{y:.3f}" if kind == "roc" else "recall %{x:.3f}<br>precision %{y:.3f}"
    fig = go.Figure()
    for name, x, y, area, line in lines:
        fig.add_scatter(x=x, y=y, mode="lines", name=f"{legend_label(name)} (AUC {area:.3f})", line=line,
                        hovertemplate=hover + f"<extra>{plot_text(name)}</extra>")
    if kind == "roc":
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color="grey", dash="dot"),
                        hoverinfo="skip")
    else:  # a random guess is as precise as its class is common: 1 / classes over them on average
        for k, dash in zip(sorted(set(classes) - {0}), ("dot", "dash", "dashdot", "longdash")):  # told apart
            fig.add_scatter(x=[0, 1], y=[1 / k] * 2, mode="lines", name=f"chance (macro: 1/{k})",
                            line=dict(color="grey", dash=dash), hoverinfo="skip")
    fig.update_layout(title=title, xaxis_title="false-positive rate" if kind == "roc" else "recall",
                      yaxis_title="true-positive rate" if kind == "roc" else "precision",
                      legend_font_size=12, margin_t=50)
    _unit_square(fig)
    legend_below(fig, 420, axis_px=60)  # below, not beside: long run names took the plot's width
    return fig


def curve_figure(curves: dict[str, tuple], kind: str, title: str, exact_auc: dict | None = None) -> go.Figure:
    """Per-class curves plus a bold dashed grey macro curve; legend entries carry the AUC (exact when given)."""
    exact_auc = exact_auc or {}
    macro = dict(width=4, color=MACRO_COLOUR, dash="dash")
    return _curves_figure([(name, x, y, area if exact_auc.get(name) is None else exact_auc[name],
                            macro if name == "macro" else dict(width=1.6, color=class_colour(CLASSES.index(name)),
                                                               dash=CLASS_DASHES[CLASSES.index(name)]))
                           for name, (x, y, area) in curves.items()], kind, title,
                          classes=[sum(name != "macro" for name in curves)])


def macro_figure(curves_by_run: dict[str, dict], kind: str, colors: dict[str, str],
                 exact_auc: dict[str, float] | None = None) -> go.Figure:
    """Each run's macro-average curve (class_curves' "macro") in its colour, to compare runs on one chart."""
    exact_auc = exact_auc or {}
    lines = [(run, *curves["macro"][:2], curves["macro"][2] if exact_auc.get(run) is None else exact_auc[run],
              dict(width=2.5, color=colors.get(run)))
             for run, curves in curves_by_run.items() if curves and "macro" in curves]
    classes = [sum(name != "macro" for name in c) for c in curves_by_run.values() if c]  # a line per class count
    return _curves_figure(lines, kind, f"Macro-average {'ROC' if kind == 'roc' else 'precision-recall'}, every run",
                          classes)


def exact_aucs(metrics: dict | None, kind: str) -> dict[str, float]:
    """AUCs from a metrics file (per class and macro), as the engine computed them on every row."""
    if not metrics:
        return {}
    key = "roc_auc" if kind == "roc" else "pr_auc"
    out = {name: c.get(key) for name, c in (metrics.get("per_class") or {}).items() if c.get(key) is not None}
    macro = metrics.get(f"{key}_macro")
    if macro is not None:
        out["macro"] = macro
    return out


def reliability_figure(calibrations: dict[str, dict], colors: dict[str, str], dashed=()) -> go.Figure:
    """Reliability diagram: per run, each confidence bin's accuracy against its mean confidence (marker area grows
    with the bin's rows); on the diagonal a model is right exactly as often as it says. Names in ``dashed`` get a
    dashed line and open markers."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line=dict(color="grey", dash="dot"),
                    hoverinfo="skip")
    for run, c in calibrations.items():
        b = c["bins"]
        n = np.array([x["n"] for x in b], dtype=float)
        fig.add_scatter(x=[x["confidence"] for x in b], y=[x["accuracy"] for x in b], mode="lines+markers",
                        name=f"{legend_label(run)} (ECE {c['ece']:.3f})",
                        line=dict(color=colors.get(run), width=1.6, dash="dash" if run in dashed else None),
                        marker=dict(size=5 + 20 * np.sqrt(n / n.max()), color=colors.get(run),  # open: told apart
                                    symbol="circle-open" if run in dashed else "circle"),  # in the legend too
                        customdata=[[x["lo"], x["hi"], x["n"]] for x in b],
                        hovertemplate="confidence %{customdata[0]:.2f}-%{customdata[1]:.2f}: %{customdata[2]} "
                                      "images<br>mean confidence %{x:.3f}<br>accuracy %{y:.3f}"
                                      f"<extra>{plot_text(run)}</extra>")
    fig.update_layout(title="Reliability: is the shown confidence how often it is right?",
                      xaxis_title="confidence (probability of the predicted class)", yaxis_title="accuracy",
                      legend_font_size=12, margin_t=50)
    _unit_square(fig)
    legend_below(fig, 420, axis_px=60)
    return fig
