"""Valence/arousal figures and tables: predicted vs true, the 2-D circumplex, error distributions.

Large frames are drawn from a fixed random sample (the figure title says so) with WebGL scatter traces;
histograms are binned here with numpy so the browser never receives the raw rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .labels import CLASS_SYMBOLS, CLASSES, VA_COLOURS, class_colour
from .metrics import proportion_ci
from .report import legend_below, legend_label, plot_text, run_colors, value_ci

DIMS = ("valence", "arousal")
SUBTITLE_FONT = dict(size=13)  # make_subplots' default 16 px titles run together on a narrow screen
VA_SUMMARY = {"rmse": "RMSE", "mae": "MAE", "pearson": "Pearson r", "ccc": "CCC", "sagr": "SAGR", "r2": "R²"}


def _has(pred: pd.DataFrame, part: str) -> bool:
    return all(f"{d}_{part}" in pred and pred[f"{d}_{part}"].notna().any() for d in DIMS)


def has_va(pred: pd.DataFrame) -> bool:
    """True when the frame holds valence/arousal annotations and predictions of them (either alone is nothing to
    compare: data without annotations, or a model trained without them; no_va_reason says which)."""
    return _has(pred, "true") and _has(pred, "pred")


def no_va_reason(pred: pd.DataFrame) -> str | None:
    """Why a predictions frame has no valence/arousal to score: "untrained" (annotations, but a model trained without
    them), "unannotated" (data without them), or None when it has."""
    return None if has_va(pred) else "untrained" if _has(pred, "true") else "unannotated"


def sample_rows(pred: pd.DataFrame, max_points: int = 5000, seed: int = 0, dims=DIMS) -> tuple[pd.DataFrame, str]:
    """(rows annotated on ``dims`` to draw, note for the title). A fixed seed keeps the sample stable between
    reruns."""
    # Pick row positions first and copy only those: dropna/sample on the whole frame copies every row.
    valid = np.flatnonzero(pred[[f"{d}_true" for d in dims]].notna().all(axis=1).to_numpy())
    if len(valid) <= max_points:
        return pred.iloc[valid], f"all {len(valid):,} samples"
    pos = np.sort(np.random.default_rng(seed).choice(valid, max_points, replace=False))
    return pred.iloc[pos], f"random {max_points:,} of {len(valid):,} samples"


def _opacity(n: int) -> float:
    """Marker opacity for ``n`` points: 0.6 up to 2,000 (each point reads), then fainter, so that a dense cloud of a
    large split still shows where it is densest instead of one solid blot (0.3 at 8,000, at least 0.2)."""
    return float(np.clip(0.6 * np.sqrt(2000 / max(n, 1)), 0.2, 0.6))


def _square_panels(fig: go.Figure, cols: int, lim: float) -> None:
    """Fixed [-lim, lim] ranges on every panel, one unit as long across as up: a panel narrower than it is tall
    shrinks in height instead of stretching its y axis (plotly's default widens the range to fill the space)."""
    fig.update_xaxes(range=[-lim, lim], constrain="domain")
    fig.update_yaxes(range=[-lim, lim], constrain="domain", constraintoward="top")  # under its subplot title
    for col in range(1, cols + 1):
        fig.update_xaxes(scaleanchor="y", scaleratio=1, row=1, col=col)


def shrinkage(pred: pd.DataFrame, dim: str, bins: int = 10) -> dict | None:
    """How predictions of ``dim`` follow the annotations: the mean annotated and predicted value in each of ``bins``
    equal-count bins of the annotations, the slope of predicted on annotated, which is the correlation r times the
    ratio of their standard deviations (under 1 for any model short of exact), r and that ratio ({"slope", "r",
    "sd_ratio", "true", "pred"}); None under 3 annotated rows. A model fit for the least squared error has an SD
    ratio of r; a larger one spreads its predictions wider than their correlation warrants."""
    t, p = (pred[f"{dim}_{part}"].to_numpy(float) for part in ("true", "pred"))
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    if t.size < 3 or t.std() == 0:
        return None
    order = np.argsort(t, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, t.size)) if g.size]
    r = float(np.corrcoef(t, p)[0, 1]) if p.std() > 0 else 0.0
    return {"slope": float(np.cov(t, p, bias=True)[0, 1] / t.var()), "r": r, "sd_ratio": float(p.std() / t.std()),
            "true": [float(t[g].mean()) for g in groups], "pred": [float(p[g].mean()) for g in groups]}


def scatter_figure(pred: pd.DataFrame, run: str, max_points: int = 5000) -> go.Figure:
    """Predicted vs annotated valence and arousal side by side (one shared y axis), each over the rows annotated on
    it, with the identity line and the mean prediction in each tenth of the annotations (shrinkage)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[d.capitalize() for d in DIMS], horizontal_spacing=0.06,
                        shared_yaxes=True)
    notes = []
    for col, dim in enumerate(DIMS, start=1):
        rows, note = sample_rows(pred, max_points, dims=(dim,))
        notes.append(note)
        fig.add_trace(go.Scattergl(x=rows[f"{dim}_true"], y=rows[f"{dim}_pred"], mode="markers",
                                   marker=dict(size=5, opacity=_opacity(len(rows)), color=VA_COLOURS[dim]),
                                   name=dim, showlegend=False, customdata=rows["id"],
                                   hovertemplate="id %{customdata}<br>true %{x:.2f}<br>pred %{y:.2f}<extra></extra>"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=[-1, 1], y=[-1, 1], mode="lines", line=dict(color="grey", dash="dash"),
                                 name="identity", showlegend=col == 1, hoverinfo="skip"), row=1, col=col)
        if s := shrinkage(pred, dim):  # over every annotated row, not the sample drawn
            # Okabe and Ito's orange: apart from the points' red and blue, and seen on the light and dark themes
            fig.add_trace(go.Scatter(x=s["true"], y=s["pred"], mode="lines+markers",
                                     line=dict(color="#e69f00", width=3), marker=dict(size=8),
                                     name="mean predicted per tenth of the annotations", showlegend=col == 1,
                                     hovertemplate="annotated %{x:.2f} on average<br>predicted %{y:.2f} on average"
                                                   "<extra></extra>"), row=1, col=col)
            fig.add_annotation(text=f"slope {s['slope']:.2f} = r {s['r']:.2f} × SD ratio {s['sd_ratio']:.2f}",
                               xref=f"x{col if col > 1 else ''} domain", yref="y domain", x=0.02, y=0.98,
                               xanchor="left", yanchor="top", showarrow=False, font_color="#e69f00")
        fig.update_xaxes(title_text="annotated", row=1, col=col)
    fig.update_yaxes(title_text="predicted", row=1, col=1)
    _square_panels(fig, 2, 1.05)
    fig.update_annotations(font=SUBTITLE_FONT)
    note = notes[0] if notes[0] == notes[1] else f"valence: {notes[0]}; arousal: {notes[1]}"
    fig.update_layout(title=f"{plot_text(run)}: predicted vs annotated ({note})", margin_t=70)
    legend_below(fig, 340, axis_px=50)
    return fig


def circumplex_figure(pred: pd.DataFrame, run: str, max_points: int = 3000) -> go.Figure:
    """Annotated and predicted points on the valence (x) / arousal (y) plane, coloured by true class."""
    rows, note = sample_rows(pred, max_points)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["annotated", "predicted"], horizontal_spacing=0.06,
                        shared_yaxes=True)
    theta = np.linspace(0, 2 * np.pi, 181)
    for col, part in enumerate(("true", "pred"), start=1):
        for k, name in enumerate(CLASSES):
            sel = rows[rows["true"] == k]
            if sel.empty:
                continue
            fig.add_trace(go.Scattergl(x=sel[f"valence_{part}"], y=sel[f"arousal_{part}"], mode="markers",
                                       marker=dict(size=5, opacity=_opacity(len(rows)), color=class_colour(k),
                                                   symbol=CLASS_SYMBOLS[k]),
                                       name=name, legendgroup=name, showlegend=col == 1, customdata=sel["id"],
                                       hovertemplate="id %{customdata}<br>valence %{x:.2f}<br>"
                                                     "arousal %{y:.2f}<extra>" + name + "</extra>"),
                          row=1, col=col)
        fig.add_trace(go.Scatter(x=np.cos(theta), y=np.sin(theta), mode="lines", hoverinfo="skip",
                                 line=dict(color="lightgrey"), showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="valence", zeroline=True, zerolinecolor="grey", row=1, col=col)
        fig.update_yaxes(zeroline=True, zerolinecolor="grey", row=1, col=col)
    fig.update_yaxes(title_text="arousal", row=1, col=1)
    _square_panels(fig, 2, 1.1)
    fig.update_annotations(font=SUBTITLE_FONT)
    fig.update_layout(title=f"{plot_text(run)}: circumplex, coloured by true class ({note})",
                      legend_itemsizing="constant", margin_t=70)
    legend_below(fig, 340, axis_px=50)
    return fig


def error_figure(preds: dict[str, pd.DataFrame], bins: int = 60, colors: dict[str, str] | None = None) -> go.Figure:
    """Distribution of (predicted - annotated) per run, binned here; one panel per dimension, one shared y axis."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[d.capitalize() for d in DIMS], shared_yaxes=True,
                        horizontal_spacing=0.05, x_title="error (predicted − annotated)")
    colors = run_colors(preds, colors)
    edges = np.linspace(-2, 2, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for col, dim in enumerate(DIMS, start=1):
        for run, pred in preds.items():
            err = (pred[f"{dim}_pred"] - pred[f"{dim}_true"]).dropna().to_numpy()
            if err.size == 0:
                continue
            counts, _ = np.histogram(err, bins=edges)
            fig.add_trace(go.Scatter(x=centres, y=counts / err.size, mode="lines", line_shape="hvh",
                                     line=dict(color=colors[run]), name=legend_label(run), legendgroup=run,
                                     showlegend=col == 1,
                                     hovertemplate=f"error %{{x:.2f}}: %{{y:.1%}}<extra>{plot_text(run)}</extra>"),
                        row=1, col=col)
    fig.update_yaxes(title_text="share of samples", tickformat=".0%", row=1, col=1)
    fig.update_annotations(font=SUBTITLE_FONT)
    fig.update_layout(margin_t=40)
    legend_below(fig, 260, axis_px=60)  # the x title (x_title) sits 30 px under the tick labels
    return fig


def per_class_table(pred: pd.DataFrame) -> pd.DataFrame:
    """Valence and arousal by annotated class: how many samples, their mean annotated and mean predicted value (over
    the rows annotated on each dimension: does
    the model keep each class's place on the circumplex?), and RMSE and CCC within the class (how well it orders
    the faces of one class: low where its overall agreement comes mostly from telling the classes apart)."""
    from .metrics import ccc

    rows = {}
    for k, name in enumerate(CLASSES):
        sel = pred[pred["true"] == k]
        if sel.empty:
            continue
        row = {"n": len(sel)}
        for dim in DIMS:  # over the class's rows annotated (and predicted) on this dimension
            t, p = sel[f"{dim}_true"].to_numpy(float), sel[f"{dim}_pred"].to_numpy(float)
            t, p = t[np.isfinite(t) & np.isfinite(p)], p[np.isfinite(t) & np.isfinite(p)]
            row |= {f"{dim} annotated": t.mean() if t.size else None, f"{dim} predicted": p.mean() if p.size else None,
                    f"{dim} RMSE": float(np.sqrt(np.mean((p - t) ** 2))) if t.size else None,
                    f"{dim} CCC": ccc(t, p) if t.size else None}
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "annotated class"
    return out


NEUTRAL = CLASSES.index("Neutral")


def intensity_table(preds: dict[str, pd.DataFrame], n_bins: int = 5) -> pd.DataFrame:
    """How classification fares on mild and on strong expressions. Every sample not annotated Neutral is binned by its
    annotated intensity, the distance of (valence, arousal) from the circumplex's centre, into equal-count bins over
    all runs' samples. One row per run and bin: accuracy and the share called Neutral, with Wilson 95% intervals."""
    parts = []
    for run, pred in preds.items():
        p = pred[(pred["true"] != NEUTRAL) & pred["valence_true"].notna() & pred["arousal_true"].notna()]
        parts.append(pd.DataFrame({"run": run, "intensity": np.hypot(p["valence_true"], p["arousal_true"]),
                                   "right": p["pred"] == p["true"], "neutral": p["pred"] == NEUTRAL}))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if rows.empty:
        return pd.DataFrame()
    edges = np.unique(np.quantile(rows["intensity"], np.linspace(0, 1, n_bins + 1)))
    rows["bin"] = pd.cut(rows["intensity"], edges, include_lowest=True)
    out = []
    for (run, interval), g in rows.groupby(["run", "bin"], observed=True, sort=False):
        row = {"run": run, "bin": f"{interval.left:.2f}–{interval.right:.2f}", "left": interval.left, "n": len(g)}
        for what in ("right", "neutral"):
            row[what], row[f"{what}_lo"], row[f"{what}_hi"] = proportion_ci(int(g[what].sum()), len(g))
        out.append(row)
    order = {run: i for i, run in enumerate(preds)}
    return pd.DataFrame(sorted(out, key=lambda r: (order[r["run"]], r["left"])))


def intensity_figure(table: pd.DataFrame, colors: dict[str, str] | None = None) -> go.Figure:
    """Accuracy and the share called Neutral per intensity bin (intensity_table), one line per run."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["accuracy", "called Neutral"], horizontal_spacing=0.1,
                        x_title="annotated intensity (distance from the centre)")
    colors = run_colors(list(dict.fromkeys(table["run"])), colors)
    for col, what in enumerate(("right", "neutral"), start=1):
        for run, t in table.groupby("run", sort=False):
            fig.add_trace(go.Scatter(
                x=t["bin"], y=t[what], mode="lines+markers", line=dict(color=colors[run]), name=legend_label(run),
                legendgroup=run, showlegend=col == 1, customdata=t["n"],
                error_y=dict(type="data", array=t[f"{what}_hi"] - t[what], arrayminus=t[what] - t[f"{what}_lo"]),
                hovertemplate="intensity %{x}: %{y:.1%} of %{customdata}<extra>" + plot_text(run) + "</extra>"),
                row=1, col=col)
        fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=col)
    bins = list(dict.fromkeys(table["bin"]))
    # "0.24–0.60" over two lines, level: slanted labels of five bins took the x title's place on a narrow chart
    fig.update_xaxes(type="category", tickvals=bins, ticktext=[b.replace("–", "–<br>") for b in bins], tickangle=0)
    fig.update_annotations(font=SUBTITLE_FONT)
    fig.update_annotations(yshift=-44, selector=dict(text="annotated intensity (distance from the centre)"))
    fig.update_layout(margin_t=40, scattermode="group", scattergap=0.6)  # runs side by side
    legend_below(fig, 260, axis_px=80)
    return fig


def va_summary_table(metrics_by_run: dict[str, dict]) -> pd.DataFrame:
    """RMSE, MAE, Pearson r, CCC, SAGR and R² per dimension (rows) and run (columns), from the metrics files, as text:
    each figure with its bootstrap 95% interval where the metrics file has one ("0.382 [0.344, 0.421]"), "–" where
    it has no figure."""
    table = pd.DataFrame({run: {f"{dim.capitalize()} {label}": value_ci((m.get(dim) or {}).get(key),
                                                                        (m.get("ci95") or {}).get(f"{dim}_{key}"))
                                for dim in DIMS for key, label in VA_SUMMARY.items()}
                          for run, m in metrics_by_run.items()})
    table.columns.name = "run"
    return table
