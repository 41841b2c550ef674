"""Streamlit-side glue shared by the analysis pages: cached loaders and the sidebar's choices.

Loaders are cached on (absolute path, mtime), so a file the engine rewrites is read again and
everything else is read once per server. The sidebar (drawn by app.py) stores its choices in
st.session_state["lab"]; pages read them through ``context()``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from fer_core import runs as R
from fer_core.calibrate import apply_temperature, temperature_of
from fer_core.data import FERPLUS_SPLITS, ferplus_votes
from fer_core.explain import describe_map, heat_overlay, occlusion_map, peak_region
from fer_core.images import thumbnail as thumbnail_of
from fer_core.metrics import PROB_COLS, calibration, fold_by_fold, paired_comparison
from fer_core.report import figure_name, md, run_colors, training_progress
from fer_core.report_errors import comparable_runs, correctness
from fer_core.report_roc import roc_and_pr
from fer_core.report_va import intensity_table

FIRST_RUN_COMMAND = "python -m fer_core.train --data ../shared/data/affectnet8-4k --preset hse-fast --name my-first-run"


MAX_DEFAULT_RUNS = 4  # runs chosen at first
# The camera button on every chart downloads an SVG: vector lines and text; heatmaps and dense scatters (WebGL) come
# inside it as pictures.
# the download as SVG (for a paper); box zoom, pan and reset kept, the buttons that repeat them left out: each one is a
# stop for the Tab key, eight on every chart
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg"},
                 "modeBarButtonsToRemove": ["zoomIn2d", "zoomOut2d", "autoScale2d", "select2d", "lasso2d"]}


def chart(fig, where=None, alt: str | None = None, **kwargs) -> None:
    """st.plotly_chart (in ``where``, a column or container, when given) with the download as SVG, named for a
    screen reader by ``alt`` (default: report.figure_name, its title or axes)."""
    (where or st).plotly_chart(fig, config=PLOTLY_CONFIG, alt=alt or figure_name(fig), **kwargs)


@dataclass
class LabContext:
    runs: list[R.Run] = field(default_factory=list)       # runs chosen in the sidebar
    all_runs: list[R.Run] = field(default_factory=list)   # every valid run found
    split: str | None = None
    data_root_override: str = ""
    problems: list[R.Problem] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)

    @property
    def colors(self) -> dict[str, str]:
        """Each chosen run's colour, the same on every page."""
        return run_colors([r.name for r in self.runs])


def names(items) -> str:
    """Run names (any folder names) as literal Markdown, comma-separated."""
    return ", ".join(map(md, items))


def context() -> LabContext:
    return st.session_state.get("lab") or LabContext()


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(path: str, mtime_ns: int, px: int):
    """An image as the gallery shows it, decoded with fer_core's limits (a huge or damaged file raises ImageError
    instead of taking the page down); ``mtime_ns`` renews it when the file changes."""
    return thumbnail_of(path, px)


# Entries per file: more than the runs a page draws at once, which otherwise evict each other on every click
@st.cache_data(show_spinner="Reading predictions…", max_entries=256)
def _predictions(path: str, mtime_ns: int) -> pd.DataFrame:
    return R.load_predictions(path)


@st.cache_data(show_spinner=False, max_entries=256)
def _metrics(path: str, mtime_ns: int) -> dict:
    return R.load_metrics(path)


@st.cache_data(show_spinner=False, max_entries=256)
def _history(path: str, mtime_ns: int) -> pd.DataFrame:
    return R.load_history(path)


@st.cache_data(show_spinner="Computing curves…", max_entries=256)
def _curves(path: str, mtime_ns: int) -> dict:
    return roc_and_pr(_predictions(path, mtime_ns))


@st.cache_data(show_spinner=False, max_entries=256)
def _calibration(path: str, mtime_ns: int, temperature: float = 1.0) -> dict:
    df = _predictions(path, mtime_ns)
    probs = df[PROB_COLS].to_numpy(float)
    return calibration(df["true"], df["pred"], apply_temperature(probs, temperature) if temperature != 1 else probs)


def calibration_of(run: R.Run, split: str) -> dict | None:
    """fer_core.metrics.calibration of a run's predictions on a split, cached on the file."""
    return _calibration(*R.file_key(run.predictions_path(split))) if split in run.splits else None


def scaled_calibration_of(run: R.Run, split: str) -> tuple[float, dict] | None:
    """(T, calibration after it) where the run has a temperature (fer_core.calibrate) and its predictions on the split
    were written without it; else None."""
    t = temperature_of(run.config)
    if t == 1 or split not in run.splits or (metrics(run, split) or {}).get("temperature", 1) != 1:
        return None
    return t, _calibration(*R.file_key(run.predictions_path(split)), t)


@st.cache_data(show_spinner="Comparing runs…", max_entries=16)
def _disagreement(files: tuple[tuple[str, str, int], ...]):
    kept, left_out = comparable_runs({name: _predictions(path, mtime) for name, path, mtime in files})
    by_name = {name: (path, mtime) for name, path, mtime in files}
    return kept, left_out, correctness({n: _predictions(*by_name[n]) for n in kept})


def disagreement(runs: list[R.Run], split: str):
    """(runs compared, runs left out for sharing no ids, correctness table) — cached on the files."""
    return _disagreement(tuple((r.name, *R.file_key(r.predictions_path(split))) for r in runs))


@st.cache_data(max_entries=16)
def _intensity(files: tuple[tuple[str, str, int], ...]) -> pd.DataFrame:
    return intensity_table({name: _predictions(path, mtime) for name, path, mtime in files})


def intensity(runs: list[R.Run], split: str) -> pd.DataFrame:
    """fer_core.report_va.intensity_table of the runs' predictions on a split, cached on the files."""
    return _intensity(tuple((r.name, *R.file_key(r.predictions_path(split))) for r in runs))


@st.cache_data(show_spinner="Bootstrapping the difference…", max_entries=32)
def _paired(a: tuple[str, int], b: tuple[str, int]) -> dict:
    return paired_comparison(_predictions(*a), _predictions(*b))


def paired(a: R.Run, b: R.Run, split: str) -> dict:
    """fer_core.metrics.paired_comparison of two runs' predictions on a split, cached on the files."""
    return _paired(R.file_key(a.predictions_path(split)), R.file_key(b.predictions_path(split)))


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def crop_predictor(path: str, stamp: tuple):
    """One Predictor without a face detector (for crops) per model file, shared by every session, on ONNX Runtime
    where it can (a checkpoint converted in memory: its occlusion maps take about two thirds of PyTorch's time);
    ``stamp`` (inference.model_stamp): a replaced or calibrated model loads again."""
    from fer_core.inference import Predictor

    try:
        return Predictor(path, backend="onnx", detector=None)
    except (ImportError, RuntimeError, ValueError):  # no onnxruntime, or a model it cannot run: PyTorch answers
        return Predictor(path, detector=None)


@st.cache_data(show_spinner=False, max_entries=64)
def _model_for_run(config: str, mtime_ns: int) -> str | None:
    from fer_core.inference import model_for_run as find

    found = find(Path(config).parent)
    return None if found is None else str(found)


def model_for_run(run: R.Run):
    """fer_core.inference.model_for_run, cached on the run's config.json."""
    found = _model_for_run(*R.file_key(run.path / "config.json"))
    return None if found is None else Path(found)


def model_for_sample(run: R.Run, sample_id: str, all_runs: list[R.Run]) -> tuple[Path | None, str]:
    """The weights behind one sample's prediction and the run they belong to: the run's own or, for a pooled
    cross-validation, those of the fold run (among ``all_runs``) whose test part holds the sample."""
    if not R.fold_run_names(run.config):
        return model_for_run(run), run.name
    for fold in R.fold_runs(run, all_runs)[0]:
        pred = predictions(fold, "test")
        if pred is not None and sample_id in set(pred["id"]):
            return model_for_run(fold), fold.name
    return None, run.name


def folds_compared(a: R.Run, b: R.Run, all_runs: list[R.Run], split: str) -> dict | None:
    """metrics.fold_by_fold of two pooled cross-validations' fold runs (among ``all_runs``), on the folds' test
    parts; None unless both have all their folds at hand and the folds test the same images."""
    if split != "test" or not (R.fold_run_names(a.config) and R.fold_run_names(b.config)):
        return None
    sides = []
    for run in (a, b):
        found, missing = R.fold_runs(run, all_runs)
        folds = [(predictions(f, "test"), ((f.config.get("split") or {}).get("counts") or {}).get("train"))
                 for f in found]
        if missing or any(p is None or not n for p, n in folds):
            return None
        sides.append(folds)
    return fold_by_fold(*sides)


@st.cache_data(show_spinner="Covering the face square by square…", max_entries=64)
def _occlusion(_predictor, model_key: str, crop, target: int) -> tuple:
    t = time.perf_counter()
    # each of the map's large batches hands back its memory: ONNX Runtime would hold about 600 MB for the next
    heat, base = occlusion_map(lambda x: _predictor.predict_batch(x, release_memory=True)[0], crop, target)
    return heat, base, time.perf_counter() - t


def occlusion_panel(pred, crop, target: int, width: int = 220) -> None:
    """The occlusion map of class ``target`` on a crop the model sees, with the words that read it, in the current
    container (cached per model, crop and class)."""
    heat, base, seconds = _occlusion(pred, f"{pred.path}:{pred.path.stat().st_mtime}:{pred.runtime}", crop, target)
    st.image(heat_overlay(crop, heat), width=width, caption=f"the {crop.shape[0]} px crop the model saw",
             alt=f"Where P({pred.classes[target]}) rests on the face: brightest in {peak_region(heat)} of the crop")
    st.markdown(describe_map(pred.classes[target], base, heat))
    st.caption(f"Map made in {seconds:.1f} s")


OCCLUSION_HELP = ("Occlusion map (Zeiler & Fergus, 2014): a square a quarter of the crop's side, in the face's mean "
                  "colour, covers it at each place of a grid (moved by an eighth) and the model answers again. Each "
                  "pixel shows the mean drop of the class's probability over the squares that hid it: bright where "
                  "the answer rests.")


def predictions(run: R.Run, split: str | None) -> pd.DataFrame | None:
    """The run's predictions on the split; None where it has none, or none that reads (note_missing says why)."""
    if split not in run.splits:
        return None
    try:
        return _predictions(*R.file_key(run.predictions_path(split)))
    except ValueError:
        return None


@st.cache_data(show_spinner="Reading the FER+ votes…", max_entries=4)
def _ferplus_votes(root: str, stamp: tuple) -> pd.DataFrame:
    return ferplus_votes(root)


def votes(run: R.Run, split: str | None) -> pd.DataFrame | None:
    """FER+'s annotator votes (data.ferplus_votes) for a run on FER+ data whose label.csv files are at hand under
    its image root; None otherwise."""
    if (run.config.get("data") or {}).get("layout") != "ferplus" or not (root := image_root(run, split)[0]):
        return None
    files = [Path(root) / folder / "label.csv" for folder in FERPLUS_SPLITS]
    stamp = tuple(R.file_key(f) for f in files if f.is_file())
    if not stamp:
        return None
    try:
        return _ferplus_votes(root, stamp)
    except (OSError, ValueError):  # a label.csv that is not FER+'s: the gallery goes on without votes
        return None


def metrics(run: R.Run, split: str | None) -> dict | None:
    if split not in run.metrics_splits:
        return None
    return _metrics(*R.file_key(run.metrics_path(split)))


def history(run: R.Run) -> pd.DataFrame | None:
    return _history(*R.file_key(run.history_path)) if run.has_history else None


def curves(run: R.Run, split: str, kind: str) -> dict | None:
    if split not in run.splits:
        return None
    return _curves(*R.file_key(run.predictions_path(split)))[kind]


def image_root(run: R.Run, split: str | None) -> tuple[str | None, str]:
    """(data root for this run's images, where that root came from); for data given as a CSV manifest file, the
    manifest's folder, which its image paths are relative to."""
    from fer_core.data import images_root

    ctx = context()
    if ctx.data_root_override.strip():
        root, source = ctx.data_root_override.strip(), "the sidebar's data root"
    elif (m := metrics(run, split)) and m.get("data_root"):
        root, source = m["data_root"], f"metrics_{split}.json data_root"
    else:
        root, source = run.data_root, "config.json data.root"
    return (str(images_root(root)) if root else root), source


REFRESH_S = 10  # how often a page waiting on a training run reads its folder again


def rerun_when(changed) -> None:
    """Ask ``changed()`` every REFRESH_S seconds, and run the whole app again (sidebar included) once it says yes."""
    @st.fragment(run_every=REFRESH_S)
    def watch() -> None:
        if changed():
            st.rerun()

    watch()


def still_training(run: R.Run) -> bool:
    """Whether the run's config.json, read now, still says it is training."""
    try:
        return json.loads((run.path / "config.json").read_text(encoding="utf-8")).get("status") == "running"
    except (OSError, ValueError):
        return False


def empty_state() -> None:
    """What to do when there is nothing to show yet; a run in its first epoch is named and shown once that ends."""
    ctx = context()
    starting = [p.path for p in ctx.problems if (p.path / "train.log").is_file()
                and not (p.path / "config.json").is_file()]
    if starting:
        one = len(starting) == 1
        st.info(f"{', '.join(f'**{md(p.name)}**' for p in starting)} {'is in its' if one else 'are in their'} first "
                f"epoch: this page shows {'it' if one else 'them'} when that epoch ends (read again every "
                f"{REFRESH_S} s).")
        rerun_when(lambda: any((p / "config.json").is_file() for p in starting))
        return
    st.info("No runs found yet. Train one from the project folder:")
    st.code(FIRST_RUN_COMMAND, language="bash")
    st.markdown("Preset names are listed by `python -m fer_core.train --help`. "
                "Runs are read from: " + ", ".join(f"`{r}`" for r in ctx.roots or [str(R.DEFAULT_RUNS_DIR)])
                + f" (set `{R.RUNS_DIR_ENV}` or add a folder in the sidebar to look elsewhere).")


def choice(where, label: str, options: list, key: str, default: int = 0, **kwargs):
    """A selectbox that keeps the user's choice across pages (app.py keeps its key alive) while that choice is
    still an option, and otherwise starts at ``options[default]``."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[min(default, len(options) - 1)]
    return where.selectbox(label, options, key=key, **kwargs)


def trainer_gone_text(run: R.Run) -> str:
    """What to say of a run marked as training whose training process has ended (runs.trainer_gone)."""
    return (f"**{md(run.name)}** is marked as training, but the process that trained it has ended without finishing "
            f"(killed, or its machine restarted): `python -m fer_core.train --resume {run.path}` continues it from "
            "its last epoch.")


def require_runs(need_split: bool = True) -> LabContext:
    """The sidebar's choices, or an explanation and st.stop() when there is nothing to draw."""
    ctx = context()
    if not ctx.all_runs:
        empty_state()
        st.stop()
    if not ctx.runs:
        st.info("Choose one or more runs in the sidebar, or start from the runs the dashboard opens with.")
        st.button("Show the default choice", on_click=lambda: st.session_state.update(
            _selected_runs_saved=R.opening_selection(ctx.roots, ctx.all_runs, MAX_DEFAULT_RUNS)))
        st.stop()
    if need_split and ctx.split is None:
        training = [r for r in ctx.runs if r.config.get("status") == "running"]
        for r in list(training):
            progress = training_progress(r.config, history(r), R.quiet_seconds(r), r.path)
            if R.trainer_gone(r.path):
                st.warning(trainer_gone_text(r))
            elif progress and progress["stale"]:
                st.warning(f"**{md(r.name)}** is marked as training: {progress['text']}.")
            else:
                continue
            training.remove(r)
        if training:
            one = len(training) == 1
            st.info(f"{', '.join(f'**{md(r.name)}**' for r in training)} {'is' if one else 'are'} still training: this "
                    f"page shows {'its' if one else 'their'} results when {'it ends' if one else 'they end'} (read "
                    f"again every {REFRESH_S} s); Training curves follows {'it' if one else 'them'} epoch by epoch.")
            rerun_when(lambda: not any(still_training(r) for r in training))
        elif not any(r.config.get("status") == "running" for r in ctx.runs):
            st.warning("None of the chosen runs has a predictions_<split>.csv: choose a run that has finished.")
        st.stop()
    return ctx


def note_missing(ctx: LabContext, kind: str = "predictions") -> list[R.Run]:
    """Chosen runs that have the split's file (for predictions: one that reads as the engine writes it); a caption
    names those that do not."""
    attr = "splits" if kind == "predictions" else "metrics_splits"
    have = [r for r in ctx.runs if ctx.split in getattr(r, attr)]
    lacking = [r for r in ctx.runs if r not in have]
    if kind == "predictions":
        for r in list(have):
            try:
                _predictions(*R.file_key(r.predictions_path(ctx.split)))
            except ValueError as e:  # a file damaged or edited by hand: named, not a traceback
                st.error(f"Not shown: {md(r.name)}, whose predictions file cannot be used: {md(e)}")
                have.remove(r)
    damaged = {p.path: p.reason for p in ctx.problems}
    for r in list(lacking):  # there, but not readable: said so, not taken for missing
        f = r.predictions_path(ctx.split) if kind == "predictions" else r.metrics_path(ctx.split)
        if f in damaged:
            st.error(f"Not shown: {md(r.name)}, whose {md(f.name)} cannot be used: {md(damaged[f])}.")
            lacking.remove(r)
    if lacking:
        elsewhere = sorted({s for r in lacking for s in getattr(r, attr)})
        st.info(f"Not shown: {names(r.name for r in lacking)}, which {'has' if len(lacking) == 1 else 'have'} no "
                f"{kind}_{md(ctx.split)} file"
                + (f", only {' and '.join(map(md, elsewhere))} (choose it as the sidebar's Split)"
                                              if elsewhere else "") + "."
                + (" A pooled cross-validation scores every image on test only." if any(
                    R.cross_validated(r.config) for r in lacking) else "")
                + "".join(f" {md(r.name)}'s training {'failed' if st_ == 'failed' else 'was stopped'} before its final "
                          f"evaluation (its train.log says why; --resume continues it)." for r in lacking
                          if (st_ := r.config.get("status")) in ("failed", "stopped")))
    return have
