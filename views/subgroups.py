"""Subgroups: accuracy by a property of the image (light, contrast, blur, colour, size), of the face (head roll and
turn, from AffectNet's landmarks), of the labels (FER+ annotator agreement), whether it copies a training image, or by a
column of the user's own (a manifest's gender or camera column, or a CSV uploaded here)."""
import pandas as pd
import streamlit as st

from fer_core import runs as R
from fer_core import report_errors as E
from fer_core import subgroups as G
from fer_core.labels import CLASSES
from fer_core.report import MAX_BARS
from fer_core.tables import TableError, read_table
from views import _shared as S

st.title("Subgroups", anchor=False)
ctx = S.require_runs()
st.caption("Does a model fail more on dark, blurred, greyscale or turned faces, on faces its annotators disagreed "
           "on (FER+'s votes), or on a group of your own (gender, age, camera)? Accuracy per group, against what "
           "each group's mix of expressions alone would give.")
split = S.md(ctx.split)
have = S.note_missing(ctx, "predictions")
if not have:
    st.stop()
if len(have) > MAX_BARS:
    st.info(f"Showing the first {MAX_BARS} of the {len(have)} chosen runs, beyond which the chart's markers hide "
            f"each other: {S.names(r.name for r in have[MAX_BARS:])} left out.")
    have = have[:MAX_BARS]
preds = {r.name: S.predictions(r, ctx.split) for r in have}


@st.cache_data(show_spinner="Measuring the images…", max_entries=16)
def _properties(images: pd.DataFrame, root: str | None, layout: str | None, data: str | None, train: tuple
                ) -> dict[str, pd.Series]:
    return G.properties(images, root, layout, data, train)


@st.cache_data(show_spinner=False, max_entries=32)
def _training_files(run_dir: str, split_written: int | None, root: str | None) -> tuple:
    """G.training_files, read once per run folder and split.csv (a FER+ run's lists 27k files to look for)."""
    return tuple(G.training_files(run_dir, root))


@st.cache_data(show_spinner="Reading the groups file…", max_entries=8)
def _groups_file(data: bytes, name: str, pred: pd.DataFrame, root: str | None) -> dict[str, pd.Series]:
    return G.groups_file(read_table(data, name), pred, root, name)


def sources(run: R.Run) -> dict[str, pd.Series]:
    """Every property at hand for the run's images: property -> value per id (measured once for runs of the same
    images: the cache holds their ids and paths, not each run's answers)."""
    scored = S.metrics(run, ctx.split) or {}  # evaluated on other data: that data's layout, as image_root's root
    layout = scored.get("layout") or (run.config.get("data") or {}).get("layout")
    images, root = preds[run.name][["id", "path"]], S.image_root(run, ctx.split)[0]
    split_csv = run.path / "split.csv"
    train = _training_files(str(run.path), split_csv.stat().st_mtime_ns if split_csv.is_file() else None, root)
    return dict(_properties(images, root, layout, scored.get("data_root") or run.data_root, train))


found = {r.name: sources(r) for r in have}
with st.expander("Add your own groups (a CSV: an id or path column, then one column per property)"):
    upload = st.file_uploader("Groups file", type=["csv", "txt", "tsv"], key="groups_upload",
                              label_visibility="collapsed",
                              help="One row per image: its id (as the predictions name it, e.g. 635) or its path "
                                   "(e.g. images/635.jpg), then columns such as gender, age or camera.")
    if upload is not None:
        problems, matched = [], 0
        for r in have:
            try:
                own = _groups_file(upload.getvalue(), upload.name, preds[r.name], S.image_root(r, ctx.split)[0])
            except TableError as e:
                problems.append(str(e))
                continue
            matched = max(matched, len(next(iter(own.values()), ())))  # the images its rows name
            found[r.name].update({f"{c} (your file)": v for c, v in own.items()})
        if not matched:
            st.error(S.md(problems[0] if problems else f"{upload.name}: no column besides the one naming the images"))
        else:
            st.caption(f"{matched:,} of the {max(len(p) for p in preds.values()):,} images matched.")


@st.cache_data(show_spinner="Comparing the groups…", max_entries=16)
def _table(preds: dict[str, pd.DataFrame], values: dict[str, pd.Series], bins: int, called: int | None
           ) -> G.Subgroups:
    return G.subgroup_table(preds, values, bins, called)


def values_of(name: str) -> dict[str, pd.Series]:
    return {r: found[r][name] for r in found if name in found[r]}


usable = [name for name in dict.fromkeys(p for run_props in found.values() for p in run_props)
          if G.has_groups(values_of(name))]
if not usable:
    roots = {S.image_root(r, ctx.split)[0] for r in have}
    st.warning("Nothing to group the images by: the chosen runs' images are not at hand"
               + (f" (looked in {S.names(str(r) for r in roots if r)})" if any(roots) else "")
               + ". Set the sidebar's data root to your copy of the data, or upload a groups file above.")
    st.stop()

left, then_col, middle, right = st.columns([3, 3, 2, 2])
picked = S.choice(left, "Group the images by", usable, "subgroup_property",
                  help="Numbers are cut into bins of equal counts; words are groups as they are (groups of fewer "
                       f"than {G.MIN_GROUP} images pooled as {G.POOLED}).")
NONE = "(nothing more)"
then = S.choice(then_col, "and then by", [NONE, *(u for u in usable if u != picked)], "subgroup_then",
                help="Both properties together, gender by age say: each pair of groups is a group of its own "
                     f"(those of fewer than {G.MIN_GROUP} images pooled).")
measures = ["accuracy", *(f"called {CLASSES[c]}" for c in E.classes_seen(*preds.values()))]
measure = S.choice(middle, "Measure", measures, "subgroup_measure",
                   help="accuracy: the share answered right. called Anger (or another class): the share of the images "
                        "labelled otherwise that the run calls Anger, its false alarms: does it see anger in one "
                        "group's faces more than in another's?")
st.session_state.setdefault("subgroup_bins", 5)
bins = right.select_slider("Bins, for numbers", [3, 4, 5, 6, 8, 10], key="subgroup_bins",
                           help=f"Equal-count bins; fewer where a bin would hold under {G.MIN_GROUP} images. "
                                f"Numbers with {G.MAX_GROUPS} values or fewer (FER+ agreement: 0.3, 0.4, ... 1) "
                                "are groups as they are, whatever the bins.")
values = values_of(picked) if then == NONE else G.crossed(values_of(picked), values_of(then), bins)
result = _table(preds, values, bins, CLASSES.index(measure.removeprefix("called ")) if measure != "accuracy" else None)
if then != NONE:
    if result.table["group"].nunique() < 2:
        st.info(f"{S.md(picked)} and {S.md(then)} together leave no two groups of {G.MIN_GROUP} images or more: "
                "choose fewer bins, or one property alone.")
        st.stop()
    picked = f"{picked} · {then}"  # what the chart, the table and the downloads are of
about = "the two properties together: each pair of their groups is a group" if then != NONE else \
    G.DESCRIPTIONS.get(picked, "a column of your data or of the uploaded file")
st.caption(f"**{S.md(picked)}**: {about}. On **{split}**.")
if left_out := {r: n for r, n in result.left_out.items() if n}:
    st.info("Left out, for having no value of this property: " + ", ".join(
        f"{n:,} of {S.md(r)}'s {len(preds[r]):,} images" for r, n in left_out.items()) + ".")
if not result.same_images:
    st.info("The chosen runs were scored on different images: the bins are cut over all of them together. Choose "
            "runs scored on one data set for bins of their own.")
S.chart(G.subgroup_figure(result, picked, ctx.colors), width="stretch",
        alt=f"{measure.capitalize()} by {picked}, each run, with what its mix of classes alone would give")
what_dot = "accuracy" if measure == "accuracy" else \
    f"the share of images not labelled {measure.removeprefix('called ')} that the run {measure}"
st.caption(f"Dots: {what_dot}, with Wilson 95% intervals. Hollow diamonds: what the group's mix of classes "
           "alone would give (the run's rate for each class over the images shown, weighted by the group's "
           "classes): a group of mostly happy faces scores high whatever its light, so a gap between dot and "
           "diamond is what the property itself costs or gains. In the table, each cell is the share [95% "
           "interval], then that gap in percentage points (pts). The p-value asks whether such gaps are larger than "
           "chance would make them (a permutation test within classes); with several properties looked at, expect "
           "one in twenty under 0.05 by chance alone. A p-value over 0.05 or overlapping intervals do not show equal "
           "accuracy: groups of tens of images reveal only large gaps. Accuracy is agreement with the data set's "
           "annotators; for groups of people (gender, age), report the raw gaps between groups beside the gaps to "
           "the class mix: a group whose expressions are harder is still served worse.")
if G.POOLED in set(result.table["group"]):
    st.caption(f"{G.POOLED}: the groups of fewer than {G.MIN_GROUP} images each (or beyond the {G.MAX_GROUPS - 1} "
               "largest), together: too few images for an accuracy of their own.")
shown = G.display_table(result).reset_index()
st.dataframe(shown, width="stretch", hide_index=True, height=35 * (len(shown) + 1) + 3)  # every group, no scrolling
name = "-".join([picked, *([measure] if measure != "accuracy" else [])]).replace(" ", "-")
c1, c2 = st.columns(2)
c1.download_button("Download this table's numbers (CSV)", G.numbers_table(result, picked).to_csv(index=False),
                   file_name=f"subgroups-{name}-{ctx.split}.csv", mime="text/csv")
c2.download_button("Download each image's value, group and answers (CSV)",
                   G.images_table(preds, values, result, picked).to_csv(),
                   file_name=f"subgroups-{name}-{ctx.split}-images.csv", mime="text/csv")
