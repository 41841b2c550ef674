"""Training curves: loss, accuracy and valence/arousal RMSE per epoch, runs overlaid; live while a run trains."""
import streamlit as st

from fer_core import report
from fer_core import runs as R
from views import _shared as S

st.title("Training curves", anchor=False)
ctx = S.require_runs(need_split=False)


def draw(runs: list[R.Run]) -> None:
    histories = {r.name: S.history(r) for r in runs if r.has_history}
    colors = ctx.colors
    untrained = [r.name for r in runs
                 if not r.has_history and r.config.get("status") in ("ensemble", "evaluation", "imported")]
    if untrained:
        st.caption(f"No training curves for {S.names(untrained)}: an ensemble, evaluation or imported folder "
                   "trains nothing here.")
    pooled = [r for r in runs if not r.has_history and R.fold_run_names(r.config)]
    for r in pooled:  # a cross-validation's curves: its folds' curves averaged epoch by epoch
        names = R.fold_run_names(r.config)
        folds = [f for f in R.fold_runs(r, ctx.all_runs)[0] if f.has_history]
        missing = [n for n in names if n not in {f.path.name for f in folds}]
        if folds:
            mean = f"{r.name} (mean of {len(folds)} folds)"
            histories[mean], colors[mean] = report.mean_history([S.history(f) for f in folds]), colors[r.name]
            st.caption(f"{S.md(r.name)} pools the test predictions of {len(names)} fold runs: its curves are the mean "
                       "of "
                       f"{len(folds)} of them, epoch by epoch, the shaded band their range "
                       f"({S.names(f.name for f in folds)}; choose them for each fold's own)"
                       + (f". Not among the run folders read, or without a history.csv: {S.names(missing)}."
                          if missing else "."))
        else:
            st.caption(f"No training curves for {S.md(r.name)}: its fold runs ({S.names(names)}) are not among the run "
                       "folders read.")
    lacking = [r.name for r in runs if not r.has_history and r.name not in untrained and r not in pooled]
    if lacking:
        st.caption(f"No history.csv yet for: {S.names(lacking)}.")
    if not histories:
        if lacking:
            st.warning("None of the chosen runs has a history.csv (no finished epoch yet).")
        else:
            st.info("Choose a run that trained (not an ensemble, evaluation or pooled cross-validation) to see its "
                    "curves.")
        return

    best_epochs = {r.name: b["epoch"] for r in runs if r.name in histories and (b := r.config.get("best"))}
    st.caption("Solid lines: validation (and the learning rate); dotted: training; a star: the epoch the run kept, at "
               "its best validation score. Click a legend entry to hide a run. The training loss is each recipe's "
               "own (label smoothing, mixup, soft labels); the validation loss is plain cross-entropy plus "
               "--va-weight × the valence/arousal MSE, so compare it with other runs' of the same --va-weight (1 "
               "unless changed), not with the training loss.")
    figures = {panel: report.history_figure(histories, panel, colors, best_epochs) for panel in report.HISTORY_PANELS}
    drawn = [panel for panel, fig in figures.items() if fig is not None]
    for row in range(0, len(drawn), 2):
        for col, panel in zip(st.columns(2), drawn[row:row + 2]):
            with col:
                S.chart(figures[panel], width="stretch", key=f"history-{panel}",
                        alt=f"Training curves: {panel} by epoch")
    with st.expander("The curves as tables (each run's history.csv)"):
        for name, history in histories.items():
            st.markdown(f"**{S.md(name)}**")
            st.dataframe(history, hide_index=True, width="stretch")
    if missing := [panel for panel in figures if panel not in drawn]:
        st.info(f"Not recorded for the chosen runs: {', '.join(missing)} (valence/arousal where their data has none; "
                "the others in runs trained before they were recorded).")

    best = [f"{S.md(r.name)} → {b['epoch']} ({b['value']:.3f})" for r in runs
            if r.name in histories and (b := r.config.get("best"))]
    if best:
        st.caption("Best epoch, the one each run kept (by its validation score: accuracy averaged with the mean of "
                   "valence and arousal CCC, or accuracy alone without them): " + ", ".join(best))
    flipped = [r.name for r in runs if r.name in histories and (r.config.get("args") or {}).get("tta")]
    if flipped:
        st.caption(f"The epochs are scored on each image as it is; {S.names(flipped)} "
                   f"{'was' if len(flipped) == 1 else 'were'} then evaluated with flip test-time augmentation (each "
                   "image averaged with its mirror), so the Overview's validation figures differ a little from the "
                   "best epoch's here.")


training = {r.name for r in ctx.runs if r.config.get("status") == "running"}
if not training:
    draw(ctx.runs)
else:
    @st.fragment(run_every=S.REFRESH_S)
    def live() -> None:
        runs = []
        for r in ctx.runs:
            if r.name in training:
                fresh = R.validate_run(r.path)[0]
                if fresh is None or fresh.config.get("status") != "running":
                    st.rerun()  # it finished or stopped: the sidebar's splits and every page change with it
                fresh.name, r = r.name, fresh
                p = report.training_progress(r.config, S.history(r), R.quiet_seconds(r), r.path)
                if R.trainer_gone(r.path):
                    st.warning(S.trainer_gone_text(r))
                elif p["stale"]:
                    st.warning(f"**{S.md(r.name)}**: {p['text']}")
                else:
                    st.progress(p["fraction"], text=f"**{S.md(r.name)}**: {p['text']}")
            runs.append(r)
        st.caption(f"Training runs are read again every {S.REFRESH_S} s.")
        draw(runs)

    live()
