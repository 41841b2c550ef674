"""Tables and plotly figures for the dashboard's overview, training-curve and confusion pages.

Pure functions of metrics dicts and DataFrames (no streamlit), so they are testable without a browser.
ROC/PR curves live in report_roc.py, valence/arousal in report_va.py, error analysis in report_errors.py.
"""
from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative

from .labels import CLASSES
from .metrics import PAIR_VERDICT_P, mcnemar_p, proportion_ci
from .runs import training_precision

# (path into metrics JSON, column label, key in its ci95 or a dotted path to an interval, higher is better)
METRICS = [
    ("accuracy", "Accuracy", "accuracy", True),
    ("ferplus_paper_rule.accuracy", "Accuracy (FER+ paper's rule)", "ferplus_paper_rule.ci95", True),
    ("balanced_accuracy", "Balanced acc.", "balanced_accuracy", True),
    ("macro_f1", "Macro F1", "macro_f1", True),
    ("weighted_f1", "Weighted F1", "weighted_f1", True),
    ("cohen_kappa", "Cohen's kappa", "cohen_kappa", True),
    ("krippendorff_alpha", "Krippendorff alpha", "krippendorff_alpha", True),
    ("roc_auc_macro", "ROC AUC (macro)", "roc_auc_macro", True),
    ("valence.rmse", "Valence RMSE", "valence_rmse", False),
    ("valence.pearson", "Valence r", "valence_pearson", True),
    ("valence.ccc", "Valence CCC", "valence_ccc", True),
    ("valence.sagr", "Valence SAGR", "valence_sagr", True),
    ("arousal.rmse", "Arousal RMSE", "arousal_rmse", False),
    ("arousal.pearson", "Arousal r", "arousal_pearson", True),
    ("arousal.ccc", "Arousal CCC", "arousal_ccc", True),
    ("arousal.sagr", "Arousal SAGR", "arousal_sagr", True),
]
HIGHER_IS_BETTER = {label: hib for _, label, _, hib in METRICS}
# Ten run colours that each stand out 3:1 or more on the light theme's white and the dark theme's #0e1117 alike (WCAG
# 2.1's contrast for graphics), none of them grey (grey means noise here), ordered so that the first few, which most
# comparisons show, stay far apart under deuteranopia, protanopia and tritanopia too (Machado 2009, CAM02-UCS); then 34
# more
RUN_COLOURS = ["#5848e0", "#e87000", "#38a080", "#c078b8", "#b83018", "#984870", "#9878ff", "#007840", "#785098",
               "#70a050"]
PALETTE = RUN_COLOURS + qualitative.Plotly + qualitative.Dark24


def run_colors(names, given: dict[str, str] | None = None) -> dict[str, str]:
    """One colour per run: ``given``'s where it has one (the dashboard passes the colours of the runs chosen in its
    sidebar, so that a run looks the same on every page), otherwise the palette's next colour not in ``given``."""
    given = given or {}
    free = [c for c in PALETTE if c not in set(given.values())] or PALETTE
    out, k = {}, 0
    for n in names:
        if n not in out:
            out[n] = given.get(n) or free[k % len(free)]
            k += n not in given
    return out


def plot_text(text) -> str:
    """A name as Plotly text: shown as it is, where Plotly would read "<b>", "<a href=...>" or "<br>" in it as markup
    (a run's name is the user's)."""
    return html.escape(str(text), quote=False)


def legend_label(name: str, limit: int = 36) -> str:
    """A run's name cut in the middle to at most ``limit`` characters, so a long name does not squeeze the chart
    beside its legend (the hover text keeps the whole name), as Plotly text (plot_text)."""
    if len(name) > limit:
        half = (limit - 1) // 2
        name = f"{name[:half]}…{name[-(limit - 1 - half):]}"
    return plot_text(name)


def figure_name(fig: go.Figure) -> str:
    """What a chart shows, in words, for a screen reader: its title, else its axes' titles."""
    title = fig.layout.title.text or " against ".join(t for t in (fig.layout.yaxis.title.text,
                                                                  fig.layout.xaxis.title.text) if t)
    return html.unescape(re.sub(r"<[^>]+>", " ", title or "")).strip() or "chart"


def _get(d: dict | None, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


def results_table(metrics_by_run: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, ci95) — one row per run, one column per metric label. ci95 cells are (lo, hi) or None.

    Columns that are empty for every run (e.g. valence on FER+ only) are dropped.
    """
    values, cis = {}, {}
    for run, m in metrics_by_run.items():
        values[run] = {label: _get(m, path) for path, label, _, _ in METRICS}
        cis[run] = {label: tuple(ci) if isinstance(ci := _get(m, key if "." in key else f"ci95.{key}"), (list, tuple))
                    else None for _, label, key, _ in METRICS}
    vals = pd.DataFrame.from_dict(values, orient="index", dtype=float)
    vals.index.name = "run"
    keep = [c for c in vals.columns if vals[c].notna().any()]
    ci_df = pd.DataFrame.from_dict(cis, orient="index").reindex(columns=keep)
    ci_df.index.name = "run"
    return vals[keep], ci_df


def seed_summary(values: pd.DataFrame, groups: list[list[str]], digits: int = 3, fold_groups=()) -> pd.DataFrame:
    """One row per seed group, named after its runs' common name without a -sK / -seedK suffix where they share
    one, else after its first run: the runs, and each metric as "mean ± sd" (sample
    standard deviation across the group's runs). Groups whose first run is in ``fold_groups`` are the folds of
    one cross-validation and are named so, after the folds' common name without its -foldK suffix
    ("dlib-best-cv5 (5 folds)" for dlib-best-cv5-fold1..5) where they share one."""
    rows = {}
    for g in groups:
        sub = values.loc[[n for n in g if n in values.index]]
        if len(sub) < 2:
            continue
        row = {"runs": ", ".join(sub.index)}
        for col in values.columns:
            v = sub[col].dropna()
            row[col] = f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(v) > 1 else ""
        if g[0] in fold_groups:
            stems = {re.sub(r"-fold\d+$", "", n) for n in sub.index}
            if len(stems) == 1:  # "hse-best-cv5-fold1–5", not five names
                stem, ks = stems.pop(), sorted(int(re.search(r"(\d+)$", n).group(1)) for n in sub.index)
                row["runs"] = f"{stem}-fold" + (f"{ks[0]}–{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1))
                                                else ", ".join(map(str, ks)))
                rows[f"{stem} ({len(sub)} folds)"] = row
            else:
                rows[f"{g[0]} ({len(sub)} folds)"] = row
        else:
            stems = {re.sub(r"[-_](?:seed|s)\d+$", "", n) for n in sub.index}
            name = f"{stems.pop()} ({len(sub)} seeds)" if len(stems) == 1 else ""
            rows[name if name and name not in rows else f"{g[0]} ({len(sub)} seeds)"] = row  # names taken: the run's
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "recipe"
    return out


def value_ci(v, ci, digits: int = 3) -> str:
    """ "0.525 [0.472, 0.575]": a value with its 95% interval where there is one; "–" for no value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    ci = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if isinstance(ci, (tuple, list)) and len(ci) == 2 else ""
    return f"{v:.{digits}f}{ci}"


def display_table(values: pd.DataFrame, cis: pd.DataFrame, digits: int = 3):
    """The values as a pandas Styler that shows each with its 95% interval in one cell (value_ci), so that a table of
    many metrics stays readable, while a click on a column's name still sorts by the number."""
    styler = values.style
    for run in values.index:  # one call per row: a call per cell takes seconds for a few hundred runs
        styler.format({col: (lambda v, ci=cis.at[run, col] if col in cis else None: value_ci(v, ci, digits))
                       for col in values.columns}, subset=pd.IndexSlice[[run], :])
    return styler


# What the overview's less familiar columns mean, as the table's tooltips
COLUMN_HELP = {
    "Accuracy": "Share of the images whose predicted class is the annotated one (chance: about 1/8 with balanced "
                "classes)",
    "Macro F1": "Per class, the harmonic mean of precision (of the images called the class, the share that are) and "
                "recall (of the images of the class, the share found); averaged over the classes, each counting alike",
    "Weighted F1": "Per-class F1 averaged with each class weighted by its number of images",
    "Accuracy (FER+ paper's rule)": "FER+ data: accuracy on the images the FER+ paper's majority protocol keeps "
                                    "(one-vote labels dropped, the top class over half the rest), the figure to set "
                                    "beside its 0.84-0.85; Wilson 95% interval",
    "Balanced acc.": "Mean of the per-class recalls: accuracy as if every class had as many images",
    "Cohen's kappa": "Agreement with the labels beyond what chance agreement at these class frequencies gives (0: "
                   "chance, 1: perfect)",
    "Krippendorff alpha": "Agreement between model and labels as two nominal raters, corrected for chance (0: "
                          "chance, 1: perfect); with two raters and similar class frequencies it comes out all but "
                          "equal to Cohen's kappa",
    "ROC AUC (macro)": "Per class, the chance that an image of the class gets a higher probability for it than one "
                       "of another class; averaged over the classes (0.5: chance)",
    **{f"{d} {k}": v for d in ("Valence", "Arousal") for k, v in (
        ("RMSE", "Root-mean-square error against the annotation, on the [-1, 1] scale: lower is better"),
        ("r", "Pearson correlation with the annotation: follows the ups and downs, ignores offset and scale"),
        ("CCC", "Lin's concordance correlation: like r, but also penalises offset and scale (1: identical)"),
        ("SAGR", "Share of images whose predicted sign (positive or negative) is the annotated one"))},
}


def latex_caption(split: str, metrics: list[dict], grouped: bool = False, configs: list[dict] | None = None) -> str:
    """"Results on the <split> split" (or, for pooled cross-validations and their ensembles, on their out-of-fold
    predictions: metrics naming their folds, or ``configs`` saying so), with the sample count where every run was
    scored on as many samples, and how to read the table; ``grouped``: the best value is marked among the runs scored
    on the same images only (latex_table's ``groups``)."""
    from .runs import cross_validated, folds_of

    sizes = {m.get("n") for m in metrics if m} - {None}
    n = f" (n = {sizes.pop():,})" if len(sizes) == 1 else ""
    each = [len(m["folds"]) if m and m.get("folds") else folds_of(c) if c and cross_validated(c) else None
            for m, c in zip(metrics, configs or [None] * len(metrics))]
    folds = set(each)
    if None not in folds:
        where = (f"{folds.pop()}-fold" if len(folds) == 1 else "K-fold") + " cross-validation, every image predicted " \
            f"by the fold that did not train on it{n}"
    else:
        where = f"the {split} split{n}"
    among = " among the runs scored on the same images (other data, or other images, do not compare)" if grouped else ""
    return (f"Results on {where}. In brackets: percentile-bootstrap 95% intervals; bold: the best value{among}, which "
            "is not a test of a difference")


def _tex(text) -> str:
    """Text as TeX prints it: every character TeX treats specially escaped."""
    special = {"\\": r"\textbackslash{}", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}", "±": r"$\pm$"}
    return "".join(special.get(c) or ("\\" + c if c in "&%$#_{}" else c) for c in str(text))


def _tex_table(caption: str, columns: list[str], rows: list[str]) -> str:
    """A booktabs table of a metric column and ``columns`` (runs or recipes), scaled to the line beyond two."""
    wide = len(columns) > 2
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}",
                      *([r"\resizebox{\linewidth}{!}{%"] if wide else []),
                      r"\begin{tabular}{l" + "c" * len(columns) + "}", r"\toprule",
                      " & ".join(["Metric", *map(_tex, columns)]) + r" \\", r"\midrule", *rows,
                      r"\bottomrule", r"\end{tabular}", *(["}"] if wide else []), r"\end{table}"]) + "\n"


def latex_seed_table(summary: pd.DataFrame, split: str) -> str:
    """seed_summary's groups as a booktabs table: one row per metric, one column per recipe, mean $\\pm$ standard
    deviation across its seeds (or folds), nothing in bold: a spread is no ranking."""
    cols = [c for c in summary.columns if c != "runs"]
    rows = [" & ".join([_tex(col), *(_tex(summary.at[g, col]) or "--" for g in summary.index)]) + r" \\"
            for col in cols]
    caption = (f"Results on the {split} split: mean ± standard deviation across each recipe's runs, which differ "
               "only in the seed (or, for a cross-validation, in the fold)")
    return _tex_table(caption, list(summary.index), rows)


def latex_table(values: pd.DataFrame, cis: pd.DataFrame, caption: str, digits: int = 3,
                groups: list[list[str]] | None = None, n: dict[str, int] | None = None) -> str:
    """A booktabs LaTeX table for a paper: one row per metric, one column per run, each value with its 95% interval
    where known, the best value in bold (lowest for error metrics; every run that ties it as printed) within each of
    ``groups`` (runs scored on the same images, ranked_groups; default: all runs). ``n``: each run's number of images,
    a first row where they differ (latex_caption gives it where they agree). Needs \\usepackage{booktabs}, and
    graphicx for more than two runs, whose table is scaled to the line's width."""
    counts = [(n or {}).get(run) for run in values.index]
    lines = ([" & ".join(["Images", *(f"{c:,}".replace(",", "{,}") if c else "--" for c in counts)]) + r" \\"]
             if len(set(counts) - {None}) > 1 else [])
    for col in values.columns:
        top = {}  # each run's group's best value, as printed: ties all bold
        for group in groups or [list(values.index)]:
            sub = values.loc[group]
            if sub[col].notna().sum() > 1 and (best := best_run(sub, col)) is not None:
                top.update({run: round(sub.at[best, col], digits) for run in group})
        cells = []
        for run, v in values[col].items():
            if pd.isna(v):
                cells.append("--")
                continue
            ci = cis.at[run, col] if col in cis else None
            text = f"{v:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if isinstance(ci, tuple) else "")
            cells.append(rf"\textbf{{{text}}}" if round(v, digits) == top.get(run) else text)
        lines.append(" & ".join([_tex(col), *cells]) + r" \\")
    return _tex_table(caption, list(values.index), lines)


def best_run(values: pd.DataFrame, metric: str = "Accuracy") -> str | None:
    """Name of the best run by one metric (lowest for error metrics), None when nobody has it."""
    if metric not in values or values[metric].isna().all():
        return None
    col = values[metric]
    return str(col.idxmax() if HIGHER_IS_BETTER.get(metric, True) else col.idxmin())


WHISKER = "grey"  # error bars: Plotly's default near-black vanished on the dark theme


def md(text: str) -> str:
    """Any text (a run's name, a message) as literal Markdown: "$" would start LaTeX, "*" or "_" emphasis, "[" a
    link, ":red" one of Streamlit's colour directives. An "_" inside a word (mobilenet_v2) starts nothing, and is left
    as it is."""
    return re.sub(r"[\\`*\[\]$<>~|]|(?<![^\W_])_|_(?![^\W_])|:(?=[^\W\d_])", lambda m: "\\" + m[0], str(text))


def code(text) -> str:
    """Any text (a path, a sample id) as Markdown inline code, literal whatever it holds: fenced by more backticks
    than any run of them inside it, where a backslash would not escape one."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def best_run_lines(values: pd.DataFrame, metrics: dict, groups: dict, right: dict) -> tuple[list[str], list[str]]:
    """The overview's "best" lines (markdown), one per set of runs ranked together, and the runs left unranked.
    ``groups``: {(label, data root): run names} (runs.data_groups), since scores on different data do not compare;
    within one, only
    runs scored on the same images (``right``: {run: its answers' correctness, a boolean Series indexed by sample id,
    or None}, same_image_groups) are ranked, with the runs the best one is not told apart from (runs_within_noise)
    named as a tie, and the best by valence CCC."""
    layouts = [layout for layout, _ in groups]
    lines, unranked = [], []
    for (layout, root), on_data in groups.items():
        label = md(layout) + (f" at {code(root)}" if layouts.count(layout) > 1 else "")
        same = same_image_groups({n: None if right.get(n) is None else right[n].index for n in on_data})
        unranked += [n for names in same if len(names) == 1 and len(on_data) > 1 for n in names]
        for names in (g for g in same if len(g) > 1):
            sub = values.loc[names]
            best = best_run(sub, "Accuracy")
            if not best:
                continue
            line = f"**{md(best)}** by accuracy ({sub.at[best, 'Accuracy']:.3f})"
            if tied := runs_within_noise({n: right[n] for n in names}, best):
                shown = ", ".join(map(md, tied[:5])) + (f" and {len(tied) - 5} more" if len(tied) > 5 else "")
                line += (f", not told apart from {shown} on these images (McNemar's test, p ≥ 0.05: Model "
                         "disagreement pairs them)")
            best_va = best_run(sub, "Valence CCC")
            if best_va and "Arousal CCC" in sub:
                line += f", **{md(best_va)}** by valence CCC ({sub.at[best_va, 'Valence CCC']:.3f})"
            among = [f"on {label}"] if len(groups) > 1 else []
            among += [f"scored on the same {int(metrics[best]['n']):,} images"] if len(same) > 1 else []
            lines.append(line + (f" — among runs {', '.join(among)}" if among else ""))
    return lines, unranked


def tested_on_other_images(groups: list[list[str]], ids: dict) -> bool:
    """Whether the runs of some group (seed_groups) were scored on different images (``ids``: {run: sample ids or
    None}): runs that drew their split with their own seed, without --split-from."""
    return any(len({None if ids.get(n) is None else frozenset(ids[n]) for n in g}) > 1 for g in groups)


def unpaired_runs(ids: dict, metrics: dict) -> dict[str, str]:
    """{run: why} for the runs whose images cannot be told, so that they cannot be ranked with others: the sample ids
    come from the predictions file (``ids``: {run: ids or None}), which must be usable and agree with the metrics."""
    return {n: "has no usable predictions file" if i is None else
            f"has predictions for {len(i):,} images but metrics for {int(metrics[n]['n']):,}"
            for n, i in ids.items() if i is None or len(i) != metrics[n]["n"]}


def ranked_groups(groups: dict, ids: dict) -> list[list[str]]:
    """The runs that can be ranked together: per data set (``groups``: {(layout, data root): run names}), those
    scored on the same images (``ids``: {run: sample ids or None}, same_image_groups)."""
    return [g for on_data in groups.values() for g in same_image_groups({n: ids.get(n) for n in on_data})]


def same_image_groups(ids: dict) -> list[list[str]]:
    """Runs grouped by the set of sample ids they were scored on ({run: ids}, None for a run whose ids are not at
    hand: a group of its own), in the given order: only runs within a group can be ranked on the same images."""
    groups: dict = {}
    for run, i in ids.items():
        groups.setdefault(run if i is None else frozenset(map(str, i)), []).append(run)
    return list(groups.values())


def runs_within_noise(right: dict, best: str) -> list[str]:
    """The other runs that the best one is not told apart from on the images they share (``right``: {run: boolean
    Series of its answers' correctness, indexed by sample id}): McNemar's exact test of each pair, p at or above
    0.05. Each pair on its own, as the Model disagreement page's caption gives it: adjusted for all the runs chosen,
    a pair's verdict would turn on runs that have nothing to do with it."""
    out = []
    for r in (r for r in right if r != best):
        a, b = right[best].align(right[r], join="inner")
        if mcnemar_p(int((a & ~b).sum()), int((b & ~a).sum())) >= PAIR_VERDICT_P:
            out.append(r)
    return out


MAX_BARS = 6  # runs a grouped bar chart holds before its bars turn to slivers under their error bars


def _interval(cis: pd.DataFrame, run: str, m: str, v: float) -> tuple[float, float]:
    """(below, above) the value: its 95% interval's reach, 0 where there is none."""
    ci = cis.at[run, m] if m in cis else None
    return (v - ci[0], ci[1] - v) if isinstance(ci, tuple) else (0, 0)


def bar_figure(values: pd.DataFrame, cis: pd.DataFrame, metrics: list[str], title: str,
               colors: dict[str, str] | None = None) -> go.Figure:
    """Grouped bars: metrics on the x axis, one bar per run, 95% CI as error bars where known. Over MAX_BARS runs,
    interval_figure instead."""
    metrics = [m for m in metrics if m in values]
    if len(values) > MAX_BARS:
        return interval_figure(values, cis, metrics, title, colors)
    fig = go.Figure()
    colors = run_colors(values.index, colors)
    for run in values.index:
        if values.loc[run, metrics].isna().all():  # e.g. a FER+ run on a valence/arousal chart
            continue
        y = [values.at[run, m] for m in metrics]
        lo, hi = zip(*(_interval(cis, run, m, v) for m, v in zip(metrics, y)))
        fig.add_bar(name=legend_label(run), x=[f"{m} ↓" if not HIGHER_IS_BETTER.get(m, True) else m for m in metrics],
                    y=y, marker_color=colors[run],
                    error_y=dict(type="data", array=hi, arrayminus=lo, visible=any(hi), color=WHISKER),
                    hovertemplate="%{x}: %{y:.3f}<extra>" + plot_text(run) + "</extra>")
    fig.update_layout(title=title, barmode="group", margin_t=50, showlegend=True,  # one run too: named
                      yaxis_title="value (↓ after a name: lower is better)" if any(not HIGHER_IS_BETTER.get(m, True)
                                                                        for m in metrics) else "value")
    legend_below(fig, 300, axis_px=110)  # the metric names below the bars may be slanted
    return fig


def interval_figure(values: pd.DataFrame, cis: pd.DataFrame, metrics: list[str], title: str,
                    colors: dict[str, str] | None = None) -> go.Figure:
    """Many runs: a panel per metric, a row per run (named on the y axis, so no legend), its value as a dot in the
    run's colour with its 95% interval as a line."""
    from plotly.subplots import make_subplots

    colors = run_colors(values.index, colors)
    runs = [r for r in values.index if not values.loc[r, metrics].isna().all()]
    labels = [legend_label(r) for r in runs]  # names cut in the middle may meet: the full name where they do
    labels = [plot_text(r) if labels.count(lab) > 1 else lab for r, lab in zip(runs, labels)]
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[f"{m} ↓" if not HIGHER_IS_BETTER.get(m, True) else m for m in metrics])
    for col, m in enumerate(metrics, start=1):
        x = [values.at[r, m] for r in runs]
        lo, hi = zip(*(_interval(cis, r, m, v) for r, v in zip(runs, x))) if runs else ((), ())
        fig.add_scatter(x=x, y=labels, mode="markers", showlegend=False,
                        marker=dict(size=9, color=[colors[r] for r in runs]),
                        error_x=dict(type="data", array=hi, arrayminus=lo, visible=any(hi), color=WHISKER),
                        customdata=[plot_text(r) for r in runs],
                        hovertemplate=f"{m}: %{{x:.3f}}<extra>%{{customdata}}</extra>", row=1, col=col)
    fig.update_yaxes(autorange="reversed", type="category")  # the runs in the sidebar's order, top down
    fig.update_xaxes(nticks=4)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, margin=dict(t=80, l=10), height=110 + 24 * len(runs))
    return fig


def legend_below(fig: go.Figure, plot_px: int, axis_px: int) -> None:
    """A horizontal legend at the foot of the figure, under ``axis_px`` of x-axis labels, the figure grown by its rows,
    so more or longer run names take room below instead of from the plot. A legend that does not fit on one row
    (about 70 characters) wraps into columns as wide as its longest name."""
    widths = [len(t.name) + 6 for t in fig.data if t.showlegend is not False]
    rows = 1 if sum(widths) <= 70 else -(-len(widths) // max(1, 70 // max(widths)))
    fig.update_layout(height=plot_px + axis_px + 22 * rows + (fig.layout.margin.t or 50), margin_b=axis_px + 22 * rows,
                      legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, x=0,
                                  # columns of one width, as counted: without it, short names share a row
                                  entrywidth=7 * max(widths) if rows > 1 else None))


def runs_by_sample_count(metrics: dict[str, dict], names: list[str]) -> dict[int, list[str]]:
    """The runs among ``names`` grouped by how many samples their metrics were computed on, fewest first."""
    groups: dict[int, list[str]] = {}
    for name in names:
        if n := metrics[name].get("n"):
            groups.setdefault(n, []).append(name)
    return dict(sorted(groups.items()))


def mean_history(histories: list[pd.DataFrame]) -> pd.DataFrame:
    """Several runs' history.csv averaged epoch by epoch (the folds of one cross-validation); an epoch that only some
    runs reached (an early stop) is the mean of those. Each column ``c`` also gets ``c_min`` and ``c_max``, the
    runs' range, which the curves draw as a band."""
    by_epoch = pd.concat(histories).groupby("epoch")
    mean = by_epoch.mean(numeric_only=True)
    spread = [by_epoch[list(mean.columns)].agg(how).add_suffix(f"_{how}") for how in ("min", "max")]
    return pd.concat([mean, *spread], axis=1).reset_index()


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    return (f"about {seconds / 60:.0f} min" if seconds < 5400 else f"about {seconds / 3600:.0f} h" if seconds < 172800
            else f"about {seconds / 86400:.0f} days")


def training_progress(config: dict, history: pd.DataFrame | None, quiet_s: float,
                      run_dir: str | Path = "RUN_FOLDER") -> dict | None:
    """Where a run whose config.json says "running" stands: {"done", "total", "fraction", "text", "stale"}; None for
    any other run. ``quiet_s``: seconds since the run folder last changed (history.csv or train.log).

    A training process that was killed, or whose machine went off, leaves "running" behind: the run is called stale
    once nothing has been written for three epochs' time (at least ten minutes)."""
    if config.get("status") != "running":
        return None
    total = int((config.get("args") or {}).get("epochs") or 0)
    done = int(history["epoch"].max()) if history is not None and len(history) else 0
    per_epoch = float(history["seconds"].tail(3).median()) if done and "seconds" in history else None
    stale = per_epoch is not None and quiet_s > max(3 * per_epoch, 600)
    if stale:
        text = (f"epoch {done} of {total or '?'} done. Nothing written for {_minutes(quiet_s)}: the training process "
                f"may have stopped without saying so (killed, or its machine off); `python -m fer_core.train "
                f"--resume {run_dir}` continues it")
    elif done and done >= total:
        text = f"all {total} epochs done: scoring the best epoch on val and test"
    elif per_epoch:
        left = max((total - done) * per_epoch - quiet_s, 0)
        text = f"epoch {done} of {total} done, {per_epoch:.0f} s per epoch: {_minutes(left)} left"
    else:
        text = f"epoch {done} of {total or '?'} done" if done else "first epoch under way"
    return {"done": done, "total": total, "fraction": min(done / total, 1.0) if total else 0.0, "text": text,
            "stale": stale}


HISTORY_PANELS = {
    "Loss": [("train_loss", "train"), ("val_loss", "val")],
    "Validation score": [("val_score", "val")],  # what the kept epoch is chosen by (runs.selection_score)
    "Accuracy": [("train_acc", "train"), ("val_acc", "val")],
    "Learning rate": [("lr", "schedule")],
    "Valence CCC": [("val_valence_ccc", "val")],
    "Arousal CCC": [("val_arousal_ccc", "val")],
    "Valence RMSE": [("val_valence_rmse", "val")],
    "Arousal RMSE": [("val_arousal_rmse", "val")],
}


def history_figure(histories: dict[str, pd.DataFrame], panel: str,
                   colors: dict[str, str] | None = None, best: dict[str, int] | None = None) -> go.Figure | None:
    """Runs overlaid per epoch: solid = validation (or the learning-rate schedule), dotted = training, a star on the
    validation line at the epoch ``best`` names for the run (the one it kept); one legend entry per run, below the
    chart. None if no run has the columns."""
    fig = go.Figure()
    colors = run_colors(histories, colors)
    for run, h in histories.items():
        shown = False
        for col, part in reversed(HISTORY_PANELS[panel]):  # validation first: its line carries the legend entry
            if col not in h or h[col].isna().all():
                continue
            if part == "val" and f"{col}_min" in h:  # folds averaged: their range as a band behind the mean
                fig.add_scatter(x=h["epoch"], y=h[f"{col}_max"], mode="lines", line_width=0, legendgroup=run,
                                showlegend=False, hoverinfo="skip")
                fig.add_scatter(x=h["epoch"], y=h[f"{col}_min"], mode="lines", line_width=0, legendgroup=run,
                                showlegend=False, fill="tonexty", hoverinfo="skip",
                                fillcolor="rgba({}, {}, {}, 0.15)".format(*hex_to_rgb(colors[run])))
            fig.add_scatter(x=h["epoch"], y=h[col], name=legend_label(run) + (" (train)" if part == "train" else ""),
                            legendgroup=run, showlegend=not shown, mode="lines+markers", marker_size=5,
                            line=dict(color=colors[run], dash="dot" if part == "train" else "solid"))
            kept = h[h["epoch"] == (best or {}).get(run)]
            if part == "val" and len(kept):
                fig.add_scatter(x=kept["epoch"], y=kept[col], mode="markers", legendgroup=run, showlegend=False,
                                marker=dict(symbol="star", size=15, color=colors[run],
                                            line=dict(width=1, color="white")),
                                hovertemplate=f"the epoch {plot_text(run)} kept<extra></extra>")
            shown = True
    if not fig.data:
        return None
    last = max(int(h["epoch"].max()) for h in histories.values())
    fig.update_layout(title=panel, xaxis_title="epoch", yaxis_title=panel.lower(), hovermode="x unified", margin_t=50)
    legend_below(fig, 250, axis_px=60)
    fig.update_xaxes(tick0=1, dtick=max(1, round(last / 8)))  # whole epochs, not 1.5
    if panel == "Learning rate":
        fig.update_yaxes(exponentformat="e")  # 2.5e-4 as written on the command line, not 250µ
    return fig


def confusion_figure(confusion, normalise: bool = False, title: str = "") -> go.Figure:
    """Heat map with true classes on rows and predicted classes on columns; normalised rows sum to 1, and a class
    without images (FER2013 has no Contempt) has no shares: its row is left blank."""
    cm = _cells(confusion, normalise)
    if normalise:  # a class without images: blank on either theme
        text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in cm]
    else:
        text = [[f"{int(v)}" for v in row] for row in cm]
    # blues no darker than mid-blue, under near-black figures: 5.5:1 contrast or more in every cell, on either theme
    fig = go.Figure(go.Heatmap(z=cm, x=CLASSES, y=CLASSES, text=text, texttemplate="%{text}",
                               textfont=dict(size=13, color="#111111"),
                               colorscale=[[0, "#f7fbff"], [1, "#4292c6"]], zmin=0, zmax=1 if normalise else None,
                               showscale=False,  # every cell says its number
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", height=460,
                      yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain"),
                      xaxis=dict(constrain="domain", constraintoward="left"), margin=dict(t=50, b=40))
    return fig


def confusion_table(confusion, normalise: bool = False) -> pd.DataFrame:
    """The confusion matrix as a table (true classes on rows, predicted on columns), as confusion_figure shows it:
    for a screen reader, which reads a heat map's numbers as one flat string."""
    cm = _cells(confusion, normalise)
    table = pd.DataFrame(cm if normalise else cm.astype(int), index=CLASSES, columns=CLASSES)
    table.index.name = "true \\ predicted"
    return table.round(3)


def confused_pairs(confusion, n: int = 8) -> pd.DataFrame:
    """The ``n`` most frequent mistakes of a confusion matrix (true class on rows), most first: the true and the
    predicted class, its images and their share of the true class."""
    cm = np.asarray(confusion, dtype=int)
    shares = _row_shares(cm)
    cells = sorted(((cm[t, p], t, p) for t in range(len(cm)) for p in range(len(cm)) if t != p and cm[t, p]),
                   reverse=True)[:n]
    return pd.DataFrame({"true": [CLASSES[t] for _, t, _ in cells], "predicted": [CLASSES[p] for _, _, p in cells],
                         "images": [int(c) for c, _, _ in cells],
                         "share of the true class": [round(float(shares[t, p]), 3) for _, t, p in cells]},
                        columns=["true", "predicted", "images", "share of the true class"])


def _cells(confusion, normalise: bool) -> np.ndarray:
    """A confusion matrix's cells as counts, or as shares of each true class (NaN for a class without images)."""
    cm = np.asarray(confusion, dtype=float)
    if not normalise:
        return cm
    shares = _row_shares(cm)
    shares[cm.sum(axis=1) == 0] = np.nan
    return shares


def _row_shares(confusion) -> np.ndarray:
    cm = np.asarray(confusion, dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def confusion_difference_figure(conf_a, conf_b, a: str, b: str) -> go.Figure:
    """How much better run A does than run B in each cell of the row-normalised confusion matrix: A's share minus
    B's on the diagonal (right more often), B's minus A's off it (that mistake less often). Positive and blue where A
    is better, negative and red where it is worse; full colour only at twice share_noise or more, so that
    differences chance alone would make stay pale."""
    diff = _row_shares(conf_a) - _row_shares(conf_b)
    better = np.where(np.eye(len(diff), dtype=bool), diff, -diff)
    lim = max(float(np.abs(diff).max()), 2 * share_noise(conf_a)[1], 0.05)
    empty = (np.asarray(conf_a).sum(axis=1) == 0) | (np.asarray(conf_b).sum(axis=1) == 0)  # a class without images
    better[empty] = np.nan
    text = [["" if none else f"{v:+.2f}" for v in row]  # rounded first: no "-0.00" for -0.003
            for none, row in zip(empty, np.round(better, 2) + 0.0)]
    fig = go.Figure(go.Heatmap(z=better, x=CLASSES, y=CLASSES, text=text,
                               customdata=diff, texttemplate="%{text}", colorscale="RdBu", zmin=-lim, zmax=lim,
                               showscale=False,  # every cell says its number; the page says blue is better
                               hovertemplate="true %{y}<br>predicted %{x}<br>A better by %{text}<br>"
                                             "share A − B: %{customdata:+.2f}<extra></extra>"))
    fig.update_layout(title=f"A = {legend_label(a, 28)} vs B = {legend_label(b, 28)}", xaxis_title="predicted",
                      yaxis_title="true", height=460, margin=dict(t=50, b=40),
                      yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain"),
                      xaxis=dict(constrain="domain", constraintoward="left"))
    return fig


def share_noise(confusion) -> tuple[int, float]:
    """(the fewest images of one true class in a confusion matrix, the half-width of the Wilson 95% interval of a
    share of a half over that many): how far one run's share of a class moves by chance alone."""
    n = int(min(sum(row) for row in confusion if sum(row)))
    _, lo, hi = proportion_ci(n // 2, n)
    return n, (hi - lo) / 2


def as_text(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A table's numbers as text, an undefined one as "–": st.dataframe writes "None" for a missing number, whatever
    a Styler's na_rep says."""
    return table.map(lambda v: "–" if pd.isna(v) else f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def per_class_table(metrics: dict) -> pd.DataFrame:
    """Precision, recall, F1, support and AUCs per class, in AffectNet order."""
    rows = []
    for name in CLASSES:
        c = (metrics.get("per_class") or {}).get(name) or {}
        rows.append({"class": name, **{label: c.get(k) for k, label in (
            ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("support", "support"),
            ("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"))}})
    return pd.DataFrame(rows).set_index("class").apply(pd.to_numeric)  # None (never predicted) shows as "–"


PER_CLASS_METRICS = {"recall": "Recall", "precision": "Precision", "f1": "F1"}


def per_class_comparison(confusions: dict[str, list]) -> pd.DataFrame:
    """One row per run and class, from each run's confusion matrix (rows true, columns predicted, as the metrics files
    hold it): recall (hits / true samples of the class) and precision (hits / samples called the class) with Wilson
    95% intervals, F1, and the counts they come from."""
    rows = []
    for run, conf in confusions.items():
        conf = np.asarray(conf, dtype=int)
        for k, name in enumerate(CLASSES):
            hits, support, called = int(conf[k, k]), int(conf[k].sum()), int(conf[:, k].sum())
            row = {"run": run, "class": name, "support": support, "called": called,
                   "f1": 2 * hits / (support + called) if support else float("nan")}  # as metrics.py
            for metric, n in (("recall", support), ("precision", called)):
                row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = proportion_ci(hits, n)
            rows.append(row)
    return pd.DataFrame(rows)


def per_class_figure(table: pd.DataFrame, metric: str = "recall", colors: dict[str, str] | None = None) -> go.Figure:
    """Grouped bars: classes on the x axis, one bar per run; Wilson 95% intervals for recall and precision."""
    fig = go.Figure()
    runs = list(dict.fromkeys(table["run"]))
    colors = run_colors(runs, colors)
    for run in runs:
        t = table[table["run"] == run]
        err = None
        if f"{metric}_lo" in t:
            err = dict(type="data", array=t[f"{metric}_hi"] - t[metric], arrayminus=t[metric] - t[f"{metric}_lo"],
                       color=WHISKER)
        fig.add_bar(name=legend_label(run), x=t["class"], y=t[metric], marker_color=colors[run], error_y=err,
                    customdata=t[["support", "called"]],
                    hovertemplate="%{x}: %{y:.3f}<br>%{customdata[0]} true, %{customdata[1]} called<extra>"
                    + plot_text(run) + "</extra>")
    fig.update_layout(barmode="group", yaxis_title=PER_CLASS_METRICS[metric], yaxis_range=[0, 1], height=400,
                      legend=dict(orientation="h", yanchor="top", y=-0.15, x=0), margin=dict(t=30, b=40))
    return fig


def _teacher(config: dict) -> str:
    """The run (or checkpoint file) a run was distilled from, by name."""
    path = Path((config.get("teacher") or {}).get("path", ""))
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.name


def run_details(runs, recipes: dict[str, dict | None] | None = None) -> pd.DataFrame:
    """One row per run (fer_core.runs.Run): what it trained, on what, how long; a pooled cross-validation's epochs are
    its folds' where ``recipes`` (runs.recipe_config by run name) has them. The "evaluates", "distilled from",
    "trained on" (FER+ vote shares, --soft-labels) and "code" (the git commit that trained it) columns appear only
    when some run has one."""
    rows = []
    for r in runs:
        c = r.config
        data = c.get("data") or {}
        extra = data.get("extra")
        counts = (c.get("split") or {}).get("counts") or {}
        em = c.get("evaluated_model")  # a folder fer_core.evaluate wrote for a model file: which model it scored
        args = c.get("args") or ((recipes or {}).get(r.name) or {}).get("args") or {}
        # an ensemble, pooled folds, imported predictions: no size or epochs of their own
        na = "–" if c.get("members") or c.get("fold_runs") or c.get("imported") else None
        rows.append({
            "run": r.name,
            "evaluates": f"{em.get('name')} ({em.get('file')}"
                         + (f", trained on {em['trained_on']})" if em.get("trained_on") else ")") if em else "",
            "backbone": c.get("backbone"), "img size": c.get("img_size", na), "epochs": args.get("epochs", na),
            "train / val / test": " / ".join(f"{counts[k]:,}" if k in counts else "–"
                                             for k in ("train", "val", "test")) if counts else "",
            "data": data.get("layout"),
            "extra training data": f"{extra['n_train']:,} {extra['layout']} images" if extra else "",
            "trained on": "vote shares" if args.get("soft_labels") else "",
            "distilled from": _teacher(c), "weights": (c.get("weights") or {}).get("loaded"),
            "valence/arousal": r.has_va, "samples": data.get("n_samples"), "status": c.get("status"),
            "best epoch": (c.get("best") or {}).get("epoch", na), "train min": round(c.get("train_minutes") or 0, 1),
            "precision": training_precision(c), "preset": c.get("preset"), "created": c.get("created"),
            # the code that trained it, where recorded: "git 4c244b2" (its commit, shortened)
            "code": re.sub(r"^git ([0-9a-f]{7})[0-9a-f]+", r"git \1", (c.get("environment") or {}).get("code", ""))})
    details = pd.DataFrame(rows).set_index("run")
    for col in ("img size", "epochs", "best epoch"):  # numbers beside "–": text, so that the column has one type
        details[col] = details[col].map(lambda v: None if v is None else str(v))
    return details.drop(columns=[k for k in ("evaluates", "trained on", "distilled from", "code")
                                 if not details[k].any()])


def settings_that_differ(configs: dict[str, dict | None]) -> pd.DataFrame:
    """The training settings (config.json's args, and its preset) on which runs do not all agree, from each run's
    config (runs.recipe_config: a pooled cross-validation's are its folds'): one row per run with settings, one column
    per such setting, named by its flag (--lr), as text: "none" for a setting recorded empty, "–" where a run's
    config.json does not have it (a run made before the setting existed, which trained with its default, and is
    compared as having it), so that an ablation's change can be read at a glance. Ensembles and evaluations have no
    settings of their own and are left out; so are --workers (the speed, not the model) and the distillation settings
    where no run has a teacher. Empty where fewer than two runs have settings or all agree."""
    from .presets import resolve

    rows = {name: {"preset": c.get("preset"), **c["args"]} for name, c in configs.items() if c and c.get("args")}
    if len(rows) < 2:
        return pd.DataFrame()
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    unused = {"workers", *(() if any(row.get("teacher") for row in rows.values()) else ("kd_weight", "kd_temperature"))}
    defaults, missing = resolve(None, {}), object()

    def same(v):  # 0 and 0.0 alike, True and 1 not
        return ("flag", v) if isinstance(v, bool) else v if isinstance(v, str) or v is None else float(v)

    keep = [k for k in keys if k not in unused and
            len({same(defaults.get(k) if row.get(k, missing) is missing else row[k]) for row in rows.values()}) > 1]
    return pd.DataFrame({f"--{k.replace('_', '-')}": [
        "–" if row.get(k, missing) is missing else "none" if row[k] is None else str(row[k]) for row in rows.values()]
        for k in keep}, index=pd.Index(list(rows), name="run"))
