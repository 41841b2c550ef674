"""Valence/arousal: predicted vs annotated, the circumplex, error distributions and agreement per run."""
import streamlit as st

from fer_core import report_va as V
from views import _shared as S

MOST_POINTS = 50_000  # four panels of 250,000 points took the page 33 s to send and draw, for a solid blot

st.title("Valence / arousal", anchor=False)
ctx = S.require_runs()
split = S.md(ctx.split)  # in Markdown: a tag from a file name, shown literally
have = S.note_missing(ctx, "predictions")
preds = {r.name: S.predictions(r, ctx.split) for r in have}
va_runs = [r for r in have if V.has_va(preds[r.name])]
for r in have:
    if r not in va_runs:
        reason = V.no_va_reason(preds[r.name])
        if reason == "untrained" and r.config.get("status") == "imported":
            st.warning(f"**{S.md(r.name)}**: its imported predictions give no valence/arousal.")
        elif reason == "untrained":
            st.warning(f"**{S.md(r.name)}**: the model was trained without valence/arousal, so its valence/arousal "
                       "outputs are not scored.")
        else:
            st.warning(f"**{S.md(r.name)}**: its {split} predictions hold no annotated valence/arousal (data "
                       "such as FER+ or class folders), so there is nothing to compare its valence/arousal outputs "
                       "against.")
if not va_runs:
    st.stop()

st.header(f"Agreement on {split}", anchor=False)
table = V.va_summary_table({r.name: S.metrics(r, ctx.split) or {} for r in va_runs})
st.dataframe(table.rename_axis("metric"), width="stretch", height=35 * (len(table) + 1) + 3)  # all rows, no scrolling
st.caption("From the metrics files, with their bootstrap 95% intervals (an interval's ends move by a few thousandths "
           "with the bootstrap's draw). CCC: concordance correlation; SAGR: share of samples whose predicted sign "
           "matches the annotated sign (an annotated 0 matches only a predicted 0); RMSE/MAE: lower is better.")

st.header("Error distributions", anchor=False)
S.chart(V.error_figure({r.name: preds[r.name] for r in va_runs}, colors=ctx.colors), width="stretch",
        alt="Valence and arousal errors: how many samples at each error, each run")

st.header("Mild and strong expressions", anchor=False)
if not (intensity := S.intensity(va_runs, ctx.split)).empty:
    S.chart(V.intensity_figure(intensity, ctx.colors), width="stretch",
            alt="Accuracy and share called Neutral by annotated intensity, each run")
st.caption("Samples not annotated Neutral, in equal-count bins of annotated intensity: how far their (valence, "
           "arousal) lies from the circumplex's centre. Does a model fail more on mild expressions, and does it take "
           "them for Neutral? Error bars: Wilson 95% intervals.")

st.header("Per run", anchor=False)
c1, c2 = st.columns([2, 3])
name = S.choice(c1, "Run", [r.name for r in va_runs], "va_run")
max_points = len(preds[name])
if max_points > 1000:  # large splits are drawn from a sample, of a size the user picks
    steps = [n for n in (1000, 2000, 5000, 10000, 20000) if n < max_points] + [min(max_points, MOST_POINTS)]
    if st.session_state.get("va_points") not in steps:
        st.session_state["va_points"] = min(5000, max_points)
    max_points = c2.select_slider("Points drawn", steps, key="va_points", format_func="{:,}".format,
                                  help="Large splits are drawn from a fixed random sample of this size; the last "
                                  + ("step draws every sample." if max_points <= MOST_POINTS else
                                     f"step draws {MOST_POINTS:,}, beyond which points only hide each other."))
for col, dim in zip(st.columns(2), ("valence", "arousal")):
    if col.button(f"The faces with the largest {dim} errors", key=f"va_gallery_{dim}", icon=":material/photo_library:",
                  help=f"Opens the Misclassified gallery on {S.md(name)}'s samples, largest {dim} error first."):
        st.session_state.update(gallery_run=name, gallery_dim=dim)
        st.switch_page("views/gallery.py")
S.chart(V.scatter_figure(preds[name], name, max_points), width="stretch")
st.caption("The orange line is the mean prediction in each tenth of the annotations: the strongest annotations are "
           "predicted milder on average. Any model short of exact does so: the line's slope is the correlation r "
           "times the SD ratio (the predictions' spread over the annotations'). A model fit for the least squared "
           "error has an SD ratio of r, and the lowest RMSE; one nearer 1 spreads its predictions as widely as the "
           "annotations, as the concordance correlation (CCC) rewards.")
S.chart(V.circumplex_figure(preds[name], name, max_points), width="stretch")
st.subheader(f"By annotated class: {S.md(name)}", anchor=False)
by_class = V.per_class_table(preds[name])
for place, dim in zip(st.columns(2), V.DIMS):  # a table per dimension: side by side, every column in view
    place.markdown(f"**{dim.capitalize()}**")
    shown = by_class[[*(["n"] if dim == V.DIMS[0] else []), *(f"{dim} {w}" for w in ("annotated", "predicted",
                                                                                      "RMSE", "CCC"))]]
    place.dataframe(shown.rename(columns=lambda c: c.removeprefix(f"{dim} ")), width="stretch",
                    column_config={w: st.column_config.NumberColumn(format="%.2f")
                                   for w in ("annotated", "predicted", "RMSE", "CCC")})
st.caption("Mean annotated against mean predicted value: does the model keep each class's place on the circumplex? "
           "CCC within a class: how well it orders the faces of one class; where it is low, its overall agreement "
           "comes mostly from telling the classes apart.")
