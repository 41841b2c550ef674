"""Confusion matrices (counts and row-normalised) with per-class precision/recall/F1, per run."""
import streamlit as st

from fer_core import report
from fer_core import runs as R
from views import _shared as S

st.title("Confusion matrices", anchor=False)
ctx = S.require_runs()
split = S.md(ctx.split)  # in Markdown: a tag from a file name, shown literally
have = S.note_missing(ctx, "metrics")
if not have:
    st.warning(f"None of the chosen runs has metrics_{split}.json.")
    st.stop()

st.header("Per class, side by side", anchor=False)
metric = st.radio("Metric", list(report.PER_CLASS_METRICS), format_func=report.PER_CLASS_METRICS.get,
                  horizontal=True, key="per_class_metric",
                  help="Recall: the share of a class's samples called that class. Precision: the share of the samples "
                  "called a class that are that class.")
metrics = {r.name: S.metrics(r, ctx.split) for r in have}
confusions = {n: m["confusion"] for n, m in metrics.items()}
S.chart(report.per_class_figure(report.per_class_comparison(confusions), metric, ctx.colors), width="stretch",
        alt=f"{report.PER_CLASS_METRICS[metric]} per class, each run")
groups = R.data_groups(have, metrics)
data_of = {n: key for key, names in groups.items() for n in names}
st.caption(f"Split **{split}**, from each run's confusion matrix. Error bars: Wilson 95% intervals "
           "(recall and precision); F1 has none."
           + (" The runs are on different data sets (" + ", ".join(sorted({S.md(k[0]) for k in groups}))
              + "): compare bars of runs on the same data only." if len(groups) > 1 else ""))

if len(have) >= 2:
    st.header("Where two runs differ", anchor=False)
    n_of = {r.name: S.metrics(r, ctx.split).get("n") or 0 for r in have}  # images each run was scored on
    names = [r.name for r in have]
    a_col, b_col = st.columns(2)
    paired = [n for n in names if len(groups[data_of[n]]) > 1]  # start on a run with a partner
    a = S.choice(a_col, "Run A", names, "cm_diff_a", default=names.index(paired[0]) if paired else 0)
    same = groups[data_of[a]]  # runs on other data do not compare
    b = S.choice(b_col, "Run B", same, "cm_diff_b", default=1 if same[0] == a else 0, help="Runs on the same data as A")
    if a == b:
        st.info("Pick two different runs." if len(same) > 1 else f"No other chosen run is on {S.md(a)}'s data "
                f"({S.md(data_of[a][0])}): choose one in the sidebar, or another run A.")
    else:
        S.chart(report.confusion_difference_figure(confusions[a], confusions[b], a, b), width="stretch")
        n, noise = report.share_noise(confusions[a])
        st.caption(f"Each cell: how much better A ({S.md(a)}) does than B ({S.md(b)}) on **{split}**, in shares of the "
                   "true class: on the diagonal, how much more often A gets the class right; off it, how much less "
                   "often A makes that mistake. Positive and blue where A does better, negative and red where it does "
                   f"worse. With {n:,} images of a class, one run's share of a half is itself uncertain by about "
                   f"±{noise:.2f} (95%), so the colours reach full strength only at twice that: read pale cells as "
                   "noise (the Model disagreement page tests two runs on the same images)."
                   + (f" A and B were scored on different numbers of images ({n_of[a]:,} and {n_of[b]:,}: e.g. a "
                      "pooled cross-validation beside a fixed split), so their differences mix two image sets."
                      if n_of[a] != n_of[b] else ""))

st.header("Per run", anchor=False)
cells = st.radio("Cells", ["shares", "counts"], horizontal=True, key="cm_cells",
                 format_func={"shares": "share of the true class", "counts": "image counts"}.get)
st.caption(f"Split **{split}**. Rows: true class; columns: predicted class. "
           + ("Shares are of each true class (the diagonal is per-class recall)." if cells == "shares" else
              "Each row adds up to the images of its true class."))
for tab, run in zip(st.tabs([S.md(r.name) for r in have]), have):
    with tab:
        m = S.metrics(run, ctx.split)
        matrix, pairs = st.columns([3, 2])
        with matrix:
            S.chart(report.confusion_figure(m["confusion"], cells == "shares", report.legend_label(run.name, 48)),
                    width="stretch", key=f"cm-{run.name}",
                    alt=f"Confusion matrix of {run.name}; its numbers are in the table below it")
            with st.expander("The matrix as a table"):
                st.dataframe(report.confusion_table(m["confusion"], cells == "shares"), width="stretch")
        with pairs:
            st.markdown("**Most frequent mistakes**")
            mistakes = report.confused_pairs(m["confusion"])
            picked = st.dataframe(mistakes, hide_index=True, width="stretch", on_select="rerun",
                                  selection_mode="single-row", key=f"mistakes-{run.name}",
                                  column_config={"share of the true class": st.column_config.NumberColumn(
                                      "share", format="%.2f", help="of the images of the true class, the share "
                                                                   "called the predicted class")})
            st.caption("Click a row (or, from the keyboard, Shift+Space on it) to see its faces in the Misclassified "
                       "gallery.")
            if picked.selection.rows and ctx.split in run.splits:  # the gallery shows the split's predictions
                row = mistakes.iloc[picked.selection.rows[0]]
                st.session_state.update(gallery_run=run.name, gallery_dim="expression", gallery_true=row["true"],
                                        gallery_pred=row["predicted"])
                st.switch_page("views/gallery.py")
        st.markdown("**Per class**")
        st.dataframe(report.as_text(report.per_class_table(m)), width="stretch", column_config={
            "support": st.column_config.Column(help="the class's images on this split"),
            "ROC AUC": st.column_config.Column(help="the chance that an image of the class gets a higher probability "
                                                    "for it than an image of another class (0.5: chance)"),
            "PR AUC": st.column_config.Column(help="area under the precision-recall curve; chance is the class's "
                                                   "share of the images")})
