"""ROC and precision-recall curves, one-vs-rest per class and macro-averaged, per run."""
import streamlit as st

from fer_core.report_roc import curve_figure, exact_aucs
from views import _shared as S

st.title("ROC and PR curves")
ctx = S.require_runs()
have = S.note_missing(ctx, "predictions")
st.caption(f"Split **{ctx.split}**. One-vs-rest per class; the dashed black line is the macro average. "
           "Legend AUCs come from the metrics file (computed on every sample) where it exists. "
           "Click legend entries to hide classes.")
for tab, run in zip(st.tabs([r.name for r in have]), have):
    with tab:
        m = S.metrics(run, ctx.split)
        left, right = st.columns(2)
        with left:
            st.plotly_chart(curve_figure(S.curves(run, ctx.split, "roc"), "roc", f"{run.name}: ROC",
                                         exact_aucs(m, "roc")), width="stretch", key=f"roc-{run.name}")
        with right:
            st.plotly_chart(curve_figure(S.curves(run, ctx.split, "pr"), "pr", f"{run.name}: precision-recall",
                                         exact_aucs(m, "pr")), width="stretch", key=f"pr-{run.name}")
