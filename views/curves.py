"""Training curves: loss, accuracy and valence/arousal RMSE per epoch, runs overlaid."""
import streamlit as st

from fer_core import report
from fer_core import runs as R
from views import _shared as S

st.title("Training curves")
ctx = S.require_runs(need_split=False)
histories = {r.name: S.history(r) for r in ctx.runs if r.has_history}
untrained = [r.name for r in ctx.runs if not r.has_history and r.config.get("status") in ("ensemble", "evaluation")]
if untrained:
    st.caption(f"No training curves for {', '.join(untrained)}: an ensemble or evaluation folder trains nothing.")
pooled = [r for r in ctx.runs if not r.has_history and R.fold_run_names(r.config)]
found = {r.name: r for r in ctx.all_runs}
for r in pooled:  # a cross-validation's curves: its folds' curves averaged epoch by epoch
    names = R.fold_run_names(r.config)
    folds = [found[n] for n in names if n in found and found[n].has_history]
    if folds:
        histories[f"{r.name} (mean of {len(folds)} folds)"] = report.mean_history([S.history(f) for f in folds])
        st.caption(f"{r.name} pools the test predictions of {len(names)} fold runs: its curves are their mean, "
                   f"epoch by epoch ({', '.join(f.name for f in folds)}; choose them for each fold's own).")
    else:
        st.caption(f"No training curves for {r.name}: its fold runs ({', '.join(names)}) are not among the run "
                   "folders read.")
lacking = [r.name for r in ctx.runs if not r.has_history and r.name not in untrained and r not in pooled]
if lacking:
    st.caption(f"No history.csv yet for: {', '.join(lacking)}.")
if not histories:
    if lacking:
        st.warning("None of the chosen runs has a history.csv (no finished epoch yet).")
    else:
        st.info("Choose a run that trained (not an ensemble, evaluation or pooled cross-validation) to see its curves.")
    st.stop()

st.caption("Solid lines: validation; dotted: training. Click a legend entry to hide a run.")
panels = list(report.HISTORY_PANELS)
for row in range(0, len(panels), 2):
    cols = st.columns(2)
    for col, panel in zip(cols, panels[row:row + 2]):
        with col:
            fig = report.history_figure(histories, panel)
            if fig is None:
                st.info(f"{panel}: not recorded for the chosen runs (no valence/arousal in their data).")
            else:
                st.plotly_chart(fig, width="stretch")

best = {name: r.config.get("best") for r in ctx.runs if (name := r.name) in histories}
st.caption("Best epoch by val_score: " + ", ".join(f"{n} → {b['epoch']} ({b['value']:.3f})"
                                                    for n, b in best.items() if b))
