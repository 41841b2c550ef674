"""FER Lab dashboard: router and shared sidebar.

    streamlit run app.py

Runs are read from artifacts/runs, or from the folders in $FER_LAB_RUNS_DIR (os.pathsep-separated),
plus any folder added in the sidebar. The sidebar's run, split and data-root choices are stored in
st.session_state["lab"] and shared by every page.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core import runs as R
from fer_core.report import code
from views._shared import MAX_DEFAULT_RUNS, LabContext, md

SPLIT_ORDER = {"val": 0, "test": 1, "train": 2}

st.set_page_config(page_title="FER Lab", page_icon=":material/sentiment_satisfied:", layout="wide")

pages = [
    st.Page("views/overview.py", title="Overview", icon=":material/leaderboard:", default=True),
    st.Page("views/curves.py", title="Training curves", icon=":material/show_chart:"),
    st.Page("views/confusion.py", title="Confusion matrices", icon=":material/grid_on:"),
    st.Page("views/roc_pr.py", title="ROC, PR and calibration", icon=":material/ssid_chart:"),
    st.Page("views/valence_arousal.py", title="Valence / arousal", icon=":material/scatter_plot:"),
    st.Page("views/gallery.py", title="Misclassified gallery", icon=":material/photo_library:"),
    st.Page("views/disagreement.py", title="Model disagreement", icon=":material/compare_arrows:"),
    st.Page("views/subgroups.py", title="Subgroups", icon=":material/groups:"),
    st.Page("views/predict.py", title="Live prediction", icon=":material/photo_camera:"),
]
pg = st.navigation(pages)
st.set_page_config(page_title=f"{pg.title} · FER Lab")  # the browser tab, and a screen reader, say which page
# Streamlit forgets a widget's value when its page is left; writing these back keeps the user's choices
# (runs compared, gallery filters) for when they return. The pages check that a kept value is still an option.
MANY_RUNS = 30  # chosen runs beyond which pages grow slow and their charts crowded
KEPT = ("per_class_metric", "cm_diff_a", "cm_diff_b", "cm_cells", "dis_a", "dis_b", "gallery_query", "gallery_run",
        "gallery_true", "gallery_pred", "gallery_sort", "gallery_dim", "gallery_per_page", "gallery_page-", "va_run",
        "va_points", "predict_model", "predict_runtime", "roc_run", "video_one_person", "subgroup_")
for key in [k for k in st.session_state if str(k).startswith(KEPT)]:  # "gallery_page-...": one per filter choice
    st.session_state[key] = st.session_state[key]


def _remembered(key: str, options: list[str], fallback: list[str], first: list[str] | None = None) -> None:
    """Seed a widget's state from the last choice the user made, keeping only options that still exist.

    A widget's own state is reset when its options change (a run finishing an epoch, a folder added), so the
    choice is also kept under a second key that only the widget's on_change callback writes. A chosen run that
    another folder's run of its name has renamed "folder/name" stays chosen: the first of them in ``first``.
    """
    def still(v):
        return v if v in options else next((o for o in first or options if str(o).endswith(f"/{v}")), None)

    saved = st.session_state.get(f"_{key}_saved", fallback)
    st.session_state[key] = list(dict.fromkeys(m for v in saved if (m := still(v)))) if isinstance(saved, list) else \
        (saved if saved in options else (options[0] if options else None))


def _save(key: str) -> None:
    st.session_state[f"_{key}_saved"] = st.session_state[key]


with st.sidebar:
    # the tool's name as large text, not a heading: the page's own title is the first heading a screen reader meets
    st.html('<p style="font-size: 1.5rem; font-weight: 600; margin: 0">FER Lab</p>')
    # Runs are told apart by the ends of their names (-seed2, -cv5-fold1), which Streamlit's chips cut off; and the
    # box grows with the runs chosen instead of scrolling the first ones out of sight
    st.html('<style>[data-testid="stSidebar"] [data-testid="stMultiSelectTagsContainer"] [data-tag],'
            '[data-testid="stSidebar"] [data-testid="stMultiSelectTagsContainer"] [data-tag] > span'
            '{max-width: none; height: auto; white-space: normal; overflow-wrap: anywhere}'
            '[data-testid="stSidebar"] [data-testid="stMultiSelect"] div {max-height: none}'
            # keyboard focus plainly visible on the page links, radios, toggles, buttons, tabs and expanders
            # (Streamlit's ring is a faint grey, 1.5-2.1:1 on white)
            '[data-testid="stSidebarNavLink"]:focus-visible, label:has(input:focus-visible), button:focus-visible,'
            ' summary:focus-visible, [role="tab"]:focus-visible'
            '{outline: 2px solid #2563eb; outline-offset: 2px}</style>')
    extra = st.text_area("Extra run folders", key="extra_run_dirs", height=68,
                         placeholder="/path/to/runs (one per line)",
                         help="Folders holding run folders (or a run folder itself), one per line.")
    roots = [str(p) for p in R.runs_dirs_from_env()] + [ln.strip() for ln in extra.splitlines() if ln.strip()]
    all_runs, problems = R.discover_runs(roots)
    names = [r.name for r in all_runs]

    # runs renamed "folder/name" (another folder has one of their name): the first folder's first, for _remembered
    in_order = [r.name for root in roots for r in all_runs if r.path.resolve().is_relative_to(Path(root).resolve())] \
        if any("/" in n for n in names) else None
    # the runs a session opened with (worked out once): a run that someone else's training adds changes no page here
    if "_selected_runs_saved" not in st.session_state and (
            default := R.opening_selection(roots, all_runs, MAX_DEFAULT_RUNS)):
        st.session_state["_selected_runs_saved"] = default
    _remembered("selected_runs", names, st.session_state.get("_selected_runs_saved", []), first=in_order)
    chosen = st.multiselect("Runs", names, key="selected_runs", on_change=_save, args=("selected_runs",),
                            help="Newest first. Every page shows the runs chosen here. At first: the runs a folder's "
                            "featured.txt names (artifacts/runs: the default model and three others), until a "
                            "run newer than that file exists; then the newest run, then the best run of each other "
                            "recipe on the same data, the best first (by validation accuracy averaged with "
                            "valence/arousal CCC; a preset's plain run before its ablations). A pooled "
                            "cross-validation (scripts/pool_folds.py, e.g. hse-best-cv5) is scored on every image, on "
                            "its test split. Runs that appear later (a training that finishes, a folder added above) "
                            "join the choices, not the chosen.")
    by_name = {r.name: r for r in all_runs}
    runs = [by_name[name] for name in chosen]  # in the order chosen
    if len(runs) > MANY_RUNS:
        st.warning(f"{len(runs)} runs chosen: every page draws each of them, so some pages take a minute or more, "
                   "and their charts are hard to read. A dozen or so compare well.")

    splits = sorted({s for r in runs for s in r.splits}, key=lambda s: (SPLIT_ORDER.get(s, 9), s))
    if splits:  # at first, the first chosen run's first split (an evaluation folder may hold only its own)
        _remembered("split", splits, next((s for s in splits if s in runs[0].splits), splits[0]))
    split = st.selectbox("Split", splits, key="split", on_change=_save, args=("split",),
                         help="Splits with a predictions_<split>.csv in a chosen run.") if splits else None

    override = st.text_input("Data root for images", key="data_root_override",
                             placeholder="from each run's config.json",
                             help="Where the Misclassified gallery and Subgroups find image files. Empty: the "
                                  "data the split was evaluated on (its metrics file's data_root), else the "
                                  "run's config.json data.root.")

    st.caption("Reading runs from: " + ", ".join(code(r) for r in roots))
    if problems:
        with st.expander(f":warning: Skipped ({len(problems)})"):
            for p in problems:
                what = {"run": "run skipped", "folder": "not read"}.get(p.skipped, f"split '{p.skipped}' skipped")
                st.markdown(f"**{md(p.path.name)}** ({md(what)}): {md(p.reason)}  \n{code(p.path)}")

st.session_state["lab"] = LabContext(runs=runs, all_runs=all_runs, split=split, data_root_override=override or "",
                                     problems=problems, roots=roots)
pg.run()
