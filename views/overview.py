"""Overview: the chosen runs' results side by side, with 95% intervals, and the best run named."""
import pandas as pd
import streamlit as st

from fer_core import report
from fer_core import report_errors as E
from fer_core import runs as R
from fer_core.inference import ModelNotFound, model_config, resolve_model
from fer_core.report import code
from views import _shared as S

st.title("Overview", anchor=False)
ctx = S.require_runs()


@st.cache_data(show_spinner=False, max_entries=2)
def _default_run(path: str, changed: int) -> str | None:  # R.file_key: a new export is read again
    try:
        return model_config(path).get("name")
    except (ModelNotFound, OSError, ValueError):
        return None


try:
    default = resolve_model()  # the file Live prediction and fer_core.predict load without a --run
except ModelNotFound:
    default = None
if default and (name := _default_run(*R.file_key(default))) in {r.name for r in ctx.all_runs}:
    st.caption(f"The default model, which Live prediction and `fer_core.predict` use out of the box, is the run "
               f"**{S.md(name)}**" + ("." if name in {r.name for r in ctx.runs} else ": choose it in the sidebar to "
                                                                                     "see its figures here."))
split = S.md(ctx.split)  # in Markdown: a tag from a file name, shown literally
have = S.note_missing(ctx, "metrics")
if not have:
    st.warning(f"None of the chosen runs has metrics_{split}.json.")
    st.stop()

metrics = {r.name: S.metrics(r, ctx.split) for r in have}
values, cis = report.results_table(metrics)

# Scores on different data sets are not comparable, so the best run is named per data set; runs are ranked together
# only on the same images with the same labels (keyed by both: a run scored on relabelled images is not on a par).
correct = {r.name: None if (df := S.predictions(r, ctx.split)) is None else E.labelled_correctness(df)
           for r in have}
ids = {n: None if c is None else c.index for n, c in correct.items()}
unpaired = report.unpaired_runs(ids, metrics)  # not ranked; the others still are
groups = R.data_groups(have, metrics)
pairable = {k: kept for k, names in groups.items() if (kept := [n for n in names if n not in unpaired])}
lines, unranked = report.best_run_lines(values, metrics, pairable, correct)
if lines:
    st.success(f"Best on **{split}**: " + ("  \n".join(lines) if len(lines) == 1 else
                                               "  \n" + "  \n".join(f"- {ln}" for ln in lines)))
    if ctx.split == "test":
        st.caption("To choose a run, compare them on val (a cross-validation: on its folds' val parts): the test "
                   "figure of a run chosen by its test figure is optimistic.")
if unpaired:
    st.caption("Not ranked: " + "; ".join(f"{S.md(n)}, which {why} on {split}" for n, why in unpaired.items())
               + ": which images its figures are on cannot be told, so they are not paired with the others' "
               "(evaluate it again to write both files).")
if unranked:
    st.caption(f"Not ranked: {S.names(unranked)}, each scored on a set of {split} images (with their labels) that "
               "no other chosen run on its data was scored on as a whole (a cross-validation's folds, a whole "
               "cross-validation beside a fixed split's few hundred, another split, or labels changed): a ranking "
               "needs the same images and labels. Model disagreement pairs runs on the images they share.")

pooled = [r.name for r in ctx.all_runs if R.cross_validated(r.config)]
if pooled and not any(r.name in pooled for r in ctx.runs):
    def show_pooled() -> None:  # the sidebar (app.py) takes it as the user's own choice
        st.session_state.update(_selected_runs_saved=pooled, _split_saved="test")

    st.info("Cross-validations pooled from their fold runs score every image once, on the test split, with narrower "
            f"intervals than a fixed split's few hundred images: {S.names(pooled)}.")
    st.button("Show the cross-validations", on_click=show_pooled)

st.header(f"Results on {split}", anchor=False)
first = ["Accuracy", "Macro F1", "Valence CCC", "Arousal CCC", "Valence RMSE", "Arousal RMSE"]  # the headline
further = {}  # the columns after the headline ones, which a window of common width shows only when scrolled to
for (layout, root), names in groups.items():  # one table per data set: their scores do not compare
    if len(groups) > 1:
        st.markdown(f"**On {S.md(layout)}** ({code(root)})")
    sub = values.loc[names].dropna(axis=1, how="all")  # e.g. no valence/arousal columns for FER+
    further.update(dict.fromkeys(c for c in sub if c not in first))
    st.dataframe(report.display_table(sub, cis.loc[names]), width="stretch",
                 column_order=[c for c in first if c in sub] + [c for c in sub if c not in first],
                 column_config={c: st.column_config.Column(help=report.COLUMN_HELP.get(c), alignment="left")
                                for c in sub.columns})
st.caption("Each value with its percentile-bootstrap 95% interval in brackets, where the metrics file has one. "
           "RMSE: lower is better; every other column: higher is better. Hover a column's name for what it means."
           + (f" Scroll the table sideways for {', '.join(further)}." if further else ""))
if skipped := {n: m["not_predicted"] for n, m in metrics.items() if (m or {}).get("not_predicted")}:
    st.warning("Imported predictions that leave images out (no answer, e.g. no face found): " + "; ".join(
        f"{S.md(n)}, {k:,} of {k + metrics[n]['n']:,}" for n, k in skipped.items()) + ". Their figures cover the "
        "images they answered only, which may be the easier ones.")
for names in groups.values():
    by_count = report.runs_by_sample_count(metrics, names)
    if len(by_count) > 1:
        st.info("Scored on different numbers of images: " + "; ".join(
            f"{S.names(runs)}: {n:,}" for n, runs in by_count.items()) + ". Their figures come from "
            "different image sets (a pooled cross-validation scores every image, a fixed split only its own part), "
            "so a difference between them is not a paired comparison: the Model disagreement page compares runs on "
            "the images they share.")
ranked = report.ranked_groups(groups, ids)
st.download_button("Download as a LaTeX table",
                   report.latex_table(values, cis, report.latex_caption(
                       ctx.split, list(metrics.values()), grouped=len(ranked) > 1,
                       configs=[r.config for r in have]), groups=ranked,
                                      n={name: (m or {}).get("n") for name, m in metrics.items()}),
                   file_name=f"fer-lab-results-{ctx.split}.tex", mime="text/x-tex",
                   help="booktabs table: one row per metric, one column per run, 95% intervals, the best run in bold "
                        "(among runs scored on the same images)")

seeds, added = R.spread_groups(have, ctx.all_runs)  # a chosen cross-validation brings its folds
configs = {r.name: r.config for r in [*have, *added.values()]}
fold_values = pd.concat([values, report.results_table({n: S.metrics(f, "test") for n, f in added.items()})[0]]) \
    if added else values
if seeds:
    folds = {g[0] for g in seeds if R.folds_of(configs[g[0]])}
    st.header("Same recipe, different seeds" + (" or folds" if folds else ""), anchor=False)
    summary = report.seed_summary(fold_values, seeds, fold_groups=folds)
    st.dataframe(summary, width="stretch")
    st.download_button("Download as a LaTeX table", report.latex_seed_table(summary, ctx.split),
                       file_name=f"fer-lab-recipes-{ctx.split}.tex", mime="text/x-tex", key="latex_seeds",
                       help="booktabs table: one row per metric, one column per recipe, mean ± standard deviation "
                            "across its seeds (or folds)")
    st.caption("Runs whose training settings differ only in the seed, as mean ± standard deviation across seeds. "
               "The spread is how far retraining alone moves a figure: compare recipes by their means, and read "
               "differences between single runs smaller than it as ties."
               + (" The folds of one cross-validation (`--fold K/N`) form a group of their own: each fold is tested "
                  "on other images, so their spread also holds how much a figure depends on which images it is "
                  "measured on." if folds else "")
               + (" Some seeds were tested on other images (each drew its own split with its seed, without "
                  "`--split-from`): their spread also holds which images each was tested on."
                  if report.tested_on_other_images([g for g in seeds if g[0] not in folds], ids) else ""))

for (layout, root), names in groups.items():  # one pair of charts per data set: their scores do not compare
    if len(groups) > 1:
        st.markdown(f"**On {S.md(layout)}** ({code(root)})")
    sub, sub_cis = values.loc[names], cis.loc[names]
    # many runs: a row each (report.interval_figure), each chart the page's width so that their names fit
    left, right = st.columns(2) if len(sub) <= report.MAX_BARS else (st.container(), st.container())
    with left:
        S.chart(report.bar_figure(sub, sub_cis, ["Accuracy", "Balanced acc.", "Macro F1", "Cohen's kappa",
                                                 "Krippendorff alpha"], "Classification", ctx.colors),
                width="stretch", key=f"bars-cls-{layout}-{root}")
    with right:
        va_cols = [c for c in ("Valence RMSE", "Arousal RMSE", "Valence CCC", "Arousal CCC")
                   if c in sub and sub[c].notna().any()]
        if va_cols:
            S.chart(report.bar_figure(sub, sub_cis, va_cols, "Valence / arousal", ctx.colors),
                    width="stretch", key=f"bars-va-{layout}-{root}")
        else:
            st.info("No run on this data has valence/arousal predictions on this split: the data has no "
                    "annotations for them (e.g. FER+), or the runs were trained without them.")

st.header("Run details", anchor=False)
NAMES_IN_FULL = {"_index": st.column_config.Column(width="medium", pinned=True)}  # -seed2 and -fold3 in view
recipes = {r.name: R.recipe_config(r, ctx.all_runs) for r in ctx.runs}
st.dataframe(report.run_details(ctx.runs, recipes), width="stretch", column_config=NAMES_IN_FULL)
if not (differ := report.settings_that_differ(recipes)).empty:
    st.subheader("Settings that differ", anchor=False)
    st.dataframe(differ, width="stretch", column_config=NAMES_IN_FULL)
    st.caption("Each training flag (config.json's args) on which these runs do not all agree; a pooled "
               "cross-validation's are its folds'; ensembles and evaluations have none of their own and are not "
               "listed. none: set to nothing; –: not recorded (a run made before the flag existed, which trained with "
               "its default).")
commands = {r.name: R.train_command(r.config, r.path, recipes[r.name]) for r in ctx.runs}
if any(commands.values()):
    with st.expander("Train these runs again: the commands"):
        st.caption("From each run's config.json: its data, preset, split and every setting that differs from the "
                   "preset; for a pooled cross-validation, the scripts/cross_validate.py command that trains its "
                   "folds. A two-stage preset finds its first stage as the run did (under --out). Ensembles and "
                   "evaluations were not trained by one command: none is given.")
        for name, command in commands.items():
            if command:
                st.markdown(f"**{S.md(name)}**")
                st.code(command.replace(" --", " \\\n    --"), language="bash")  # a flag a line
