"""ROC and precision-recall curves, one-vs-rest per class and macro-averaged, per run; then calibration: how
well each run's confidence matches how often it is right."""
import pandas as pd
import streamlit as st

from fer_core.metrics import hard_answers
from fer_core.report import plot_text
from fer_core.report_roc import curve_figure, exact_aucs, macro_figure, reliability_figure
from views import _shared as S

st.title("ROC, PR and calibration", anchor=False)
ctx = S.require_runs()
split = S.md(ctx.split)  # in Markdown: a tag from a file name, shown literally
have = S.note_missing(ctx, "predictions")
if hard := [r for r in have if hard_answers(S.predictions(r, ctx.split))]:
    st.info(f"Not shown: {S.names(r.name for r in hard)}, whose predictions give one class per image and no "
            "probabilities (imported hard answers): ROC and PR curves and calibration need scores to rank by. "
            "Their accuracy and F1 are on the Overview.")
    have = [r for r in have if r not in hard]
if not have:
    st.stop()
st.caption(f"Split **{split}**. One-vs-rest per class, macro-averaged over the classes: every run's macro "
           "curve on one chart, then each run's classes (the thick dashed grey line is its macro average), in a tab "
           "per run, or for the run chosen below when there are more than six. "
           "Legend AUCs come from the metrics file (computed on every sample) where it exists. "
           "Click legend entries to hide classes.")
# ROC above PR, each the page's width: side by side, a chart with its legend below was too narrow to read.
if len(have) >= 2:
    colors = ctx.colors
    for kind in ("roc", "pr"):
        exact = {r.name: exact_aucs(S.metrics(r, ctx.split), kind).get("macro") for r in have}
        S.chart(macro_figure({r.name: S.curves(r, ctx.split, kind) for r in have}, kind, colors, exact),
                width="stretch", key=f"macro-{kind}")
# A tab per run draws every run's charts at once: with many runs, one chosen run's instead
MAX_TABS = 6
if len(have) <= MAX_TABS:
    places = zip(st.tabs([S.md(r.name) for r in have]), have)
else:
    by_name = {r.name: r for r in have}
    places = [(st.container(), by_name[S.choice(st, "Per-class curves of", list(by_name), "roc_run")])]
for place, run in places:
    with place:
        m = S.metrics(run, ctx.split)
        S.chart(curve_figure(S.curves(run, ctx.split, "roc"), "roc", f"{plot_text(run.name)}: ROC",
                             exact_aucs(m, "roc")), width="stretch", key=f"roc-{run.name}")
        S.chart(curve_figure(S.curves(run, ctx.split, "pr"), "pr", f"{plot_text(run.name)}: precision-recall",
                             exact_aucs(m, "pr")), width="stretch", key=f"pr-{run.name}")

st.header("Calibration", anchor=False)
cals, colors, scaled = {}, ctx.colors, {}
for r in have:
    cals[r.name] = S.calibration_of(r, ctx.split)
    # a run calibrated with fer_core.calibrate whose predictions here are raw: both, one under the other
    if (tc := S.scaled_calibration_of(r, ctx.split)) is not None:
        name = f"{r.name}, temperature {tc[0]:.2f}"
        cals[name], colors[name] = tc[1], colors[r.name]
        scaled[name] = (r.config["temperature"] or {}).get("fitted_on", "val")
S.chart(reliability_figure(cals, colors, dashed=set(scaled)), width="stretch")
rows = {run: {"ECE": c["ece"], "NLL": c["nll"], "Brier": c["brier"], "mean confidence": c["mean_confidence"],
              "accuracy": c["accuracy"]} for run, c in cals.items()}
st.dataframe(pd.DataFrame.from_dict(rows, orient="index").rename_axis("run"), width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.3f") for c in next(iter(rows.values()))})
st.caption("Confidence is the probability of the predicted class, in 15 equal-width bins; a point below the "
           "diagonal is a bin where the model is right less often than it says (over-confident), above it "
           "more often (under-confident). ECE is the gap averaged over the images; NLL and Brier score "
           "all eight probabilities. Lower is better for all three."
           + (" On a few hundred images a bin holds few of them, so ECE differences of a few hundredths are noise."
              if min((len(p) for r in have if (p := S.predictions(r, ctx.split)) is not None), default=0) < 1000
              else ""))
if scaled:
    st.caption("Dashed with open markers, \"temperature T\": the same predictions with the temperature fitted by "
               "`fer_core.calibrate` (every probability vector p becomes p^(1/T), renormalised; the predicted classes "
               "do not change). "
               "It was fitted on the " + " / ".join(sorted(set(scaled.values()))) + " split, to the lowest NLL: on "
               "that split the figures are in-sample, on the others held out, and ECE, which is not what it "
               "minimises, can still rise a little. The dashed curve is what Live prediction's "
               "percentages follow for that model.")
