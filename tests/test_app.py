"""AppTest for every dashboard page on synthetic run folders (FER_LAB_RUNS_DIR points the app at them)."""
from __future__ import annotations

import base64
import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fer_core import report
from fer_core import runs as R
from fer_core.labels import CLASSES
from tests.fixture_runs import make_fixture_runs, write_broken_runs, write_cv_folds, write_run

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
# page file -> (title, plotly charts at least, dataframes at least)
PAGES = {
    "views/overview.py": ("Overview", 2, 2),
    "views/curves.py": ("Training curves", 4, 0),
    "views/confusion.py": ("Confusion matrices", 6, 4),
    "views/roc_pr.py": ("ROC, PR and calibration", 9, 1),
    "views/valence_arousal.py": ("Valence / arousal", 4, 1),
    "views/gallery.py": ("Misclassified gallery", 0, 1),
    "views/disagreement.py": ("Model disagreement", 2, 4),
    "views/subgroups.py": ("Subgroups", 1, 1),
}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    make_fixture_runs(base / "runs", n=200, data_root=base / "data", images=30, n_boot=10)
    return base / "runs"


def _app(monkeypatch, runs_dir) -> AppTest:
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _run_details(at):
    """The overview's run details table (the one with a "train / val / test" column)."""
    return next(d.value for d in at.dataframe if "train / val / test" in d.value.columns)


def _plotly(at) -> int:
    return len(at.get("plotly_chart"))


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders(monkeypatch, runs_dir, page):
    title, charts, frames = PAGES[page]
    at = _app(monkeypatch, runs_dir)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]
    assert _plotly(at) >= charts
    assert len(at.dataframe) >= frames
    if page == "views/overview.py":
        assert [b.proto.label for b in at.get("download_button")] == ["Download as a LaTeX table"]
    for chart in at.get("plotly_chart"):  # the camera button saves vector graphics, for a paper
        assert json.loads(chart.proto.config)["toImageButtonOptions"]["format"] == "svg"


# Streamlit 1.67's AppTest drops the entry script's elements from its tree after the first run of an
# st.navigation app, so sidebar choices cannot be changed from AppTest; tests/test_browser.py changes the
# split and the data root in a real browser instead.
def test_sidebar_offers_runs_and_splits(monkeypatch, runs_dir):
    at = _app(monkeypatch, runs_dir)
    assert set(at.multiselect(key="selected_runs").options) == {
        "resnet50-affectnet", "effb0-affectnet", "mnv3-affectnet", "resnet18-ferplus"}
    assert at.multiselect(key="selected_runs").value[0] == "resnet18-ferplus"  # newest first
    assert at.selectbox(key="split").options == ["val", "test"]
    assert "Results on val" in [h.value for h in at.header]


def test_split_starts_on_the_newest_runs_own(monkeypatch, tmp_path):
    """An evaluation folder (fer_core.evaluate --out on other data) holds only its own split: just made, it is the
    newest run, and the dashboard opens on that split, not on a val split it lacks."""
    from datetime import datetime, timezone

    make_fixture_runs(tmp_path / "runs", n=60, images=0, n_boot=5)
    write_run(tmp_path / "runs", "default-on-mine", n=60, splits=("mine-all",), n_boot=5,
              created=datetime(2027, 1, 1, tzinfo=timezone.utc))
    at = _app(monkeypatch, tmp_path / "runs")
    assert at.multiselect(key="selected_runs").value[0] == "default-on-mine"
    assert at.selectbox(key="split").options == ["val", "test", "mine-all"]
    assert at.selectbox(key="split").value == "mine-all"


def test_pages_show_runs_in_the_order_chosen(monkeypatch, tmp_path):
    """The first view puts the best of the other recipes before a newer, weaker one; the pages follow that order."""
    for name, skill, seed, backbone in [("strong", 3.0, 0, "resnet18"), ("weak", 0.5, 1, "mobilenet_v2"),
                                        ("newest", 1.0, 2, "efficientnet_b0")]:
        write_run(tmp_path, name, n=100, skill=skill, seed=seed, backbone=backbone, n_boot=5)
    at = _app(monkeypatch, tmp_path)
    assert at.multiselect(key="selected_runs").value == ["newest", "strong", "weak"]
    assert at.dataframe[0].value.index.tolist() == ["newest", "strong", "weak"]


def test_overview_says_when_runs_are_scored_on_different_numbers_of_images(monkeypatch, tmp_path):
    write_run(tmp_path, "fixed-split", n=100, seed=0, n_boot=5)
    write_run(tmp_path, "every-image", n=300, seed=1, n_boot=5)
    at = _app(monkeypatch, tmp_path)
    n = {name: json.loads((tmp_path / name / "metrics_val.json").read_text())["n"]
         for name in ("fixed-split", "every-image")}
    assert n["fixed-split"] < n["every-image"]
    assert [i.value for i in at.info] == [
        f"Scored on different numbers of images: fixed-split: {n['fixed-split']:,}; every-image: {n['every-image']:,}. "
        "Their figures come from different image sets (a pooled cross-validation scores every image, a fixed split "
        "only its own part), so a difference between them is not a paired comparison: the Model disagreement page "
        "compares runs on the images they share."]
    metrics = tmp_path / "fixed-split" / "metrics_val.json"  # as an import that left 20 images unanswered writes it
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "not_predicted": 20}))
    at = _app(monkeypatch, tmp_path)
    assert [w.value for w in at.warning if "leave images out" in w.value] == [
        f"Imported predictions that leave images out (no answer, e.g. no face found): fixed-split, 20 of "
        f"{n['fixed-split'] + 20:,}. Their figures cover the images they answered only, which may be the easier ones."]


def test_confusion_page_shows_where_two_runs_differ(monkeypatch, runs_dir):
    at = _app(monkeypatch, runs_dir)
    at.switch_page("views/confusion.py").run()
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text") for c in at.get("plotly_chart")]
    first, second = at.selectbox(key="cm_diff_a").value, at.selectbox(key="cm_diff_b").value
    assert f"A = {first} vs B = {second}" in titles
    assert "resnet18-ferplus" not in at.selectbox(key="cm_diff_b").options  # FER+ beside AffectNet: no comparison
    at.selectbox(key="cm_diff_b").set_value(first).run()
    assert "Pick two different runs." in [i.value for i in at.info] and not at.exception
    at.selectbox(key="cm_diff_a").set_value("resnet18-ferplus").run()
    assert any(i.value.startswith("No other chosen run is on resnet18-ferplus's data") for i in at.info)
    assert any("compare bars of runs on the same data only" in c.value for c in at.caption)


def test_valence_arousal_says_when_a_run_has_none(monkeypatch, runs_dir):
    at = _app(monkeypatch, runs_dir)
    at.switch_page("views/valence_arousal.py").run()
    warnings = " ".join(w.value for w in at.warning)
    assert "resnet18-ferplus" in warnings and "hold no annotated valence/arousal" in warnings
    assert "resnet50-affectnet" not in warnings


def test_valence_arousal_draws_as_many_points_as_chosen_and_says_why_a_run_has_none(monkeypatch, tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "large", n=2500, n_boot=2, splits=("val",))
    for name, status in [("imported", "imported"), ("no-va-head", "finished")]:
        folder = write_run(runs, name, n=200, n_boot=2, splits=("val",))
        pred = pd.read_csv(folder / "predictions_val.csv")
        pred[["valence_pred", "arousal_pred"]] = np.nan  # annotated, but not predicted
        pred.to_csv(folder / "predictions_val.csv", index=False)
        (folder / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()),
                                                        "status": status}))
    at = _app(monkeypatch, runs)
    at.switch_page("views/valence_arousal.py").run()
    assert sorted(w.value for w in at.warning) == [
        "**imported**: its imported predictions give no valence/arousal.",
        "**no-va-head**: the model was trained without valence/arousal, so its valence/arousal outputs are not "
        "scored."]
    at.selectbox(key="va_run").set_value("large").run()

    def drawn():  # the points of the predicted-against-annotated scatter, valence and arousal
        spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                    if any(t.get("type") == "scattergl" and t.get("name") == "valence"
                           for t in json.loads(c.proto.spec)["data"]))
        xs = [t["x"] for t in spec["data"] if t.get("type") == "scattergl"]  # plotly sends long arrays as bytes
        return [len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize if "bdata" in x else len(x)
                for x in xs]

    slider = at.select_slider(key="va_points")
    assert slider.options == ["1,000", "2,000", "2,500"] and slider.value == 2500 and drawn() == [2500, 2500]
    slider.set_value(1000).run()
    assert not at.exception and drawn() == [1000, 1000]


def test_gallery_search_jumps_to_id(monkeypatch, runs_dir):
    import pandas as pd

    sample = pd.read_csv(runs_dir / "resnet50-affectnet" / "predictions_val.csv", dtype={"id": str}).iloc[7]
    at = _app(monkeypatch, runs_dir)
    at.switch_page("views/gallery.py").run()
    at.text_input(key="gallery_query").input(sample["id"]).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert f"id `{sample['id']}`" in text
    at.text_input(key="gallery_query").input("no-such-id").run()
    assert any("No sample with id `no-such-id`" in w.value for w in at.warning)
    other = pd.read_csv(runs_dir / "resnet50-affectnet" / "predictions_val.csv", dtype={"id": str}).iloc[9]["id"]
    at.text_input(key="gallery_query").input(f"{sample['id']}, {other}; no-such-id").run()  # several at once
    text = " ".join(m.value for m in at.markdown)
    assert f"id `{sample['id']}`" in text and f"id `{other}`" in text
    assert [w.value for w in at.warning if "No sample with id" in w.value] == [
        "No sample with id `no-such-id` in the val predictions of the chosen runs: it may be in another split (the "
        "sidebar's Split), or not in this copy of the data."]


def test_gallery_filters_pages_and_images(monkeypatch, runs_dir):
    at = _app(monkeypatch, runs_dir)
    at.switch_page("views/gallery.py").run()
    assert len(at.get("image")) > 0  # fixture wrote the first 30 images of each split
    assert any("not found" in i.value and str(runs_dir.parent / "data") in i.value for i in at.info)
    at.selectbox(key="gallery_true").select("Fear").run()
    cells = [m.value for m in at.markdown if m.value.startswith("`")]
    assert cells and all("true **Fear**" in c for c in cells)
    alts = [img.alt for i in at.get("image") for img in i.proto.imgs]  # what a screen reader says of each face
    assert alts and all(a.startswith("Face ") and ": labelled Fear, predicted " in a and a.endswith("%)") for a in alts)
    # every chart has a name a screen reader can find: its title, or what its axes show
    at.switch_page("views/overview.py").run()
    names = [c.proto.alt for c in at.get("plotly_chart")]
    assert names and all(n and n != "chart" for n in names), names
    at.switch_page("views/gallery.py").run()
    at.selectbox(key="gallery_per_page").select(12).run()
    assert len([m for m in at.markdown if m.value.startswith("`")]) <= 12


def test_gallery_shows_the_largest_valence_errors(monkeypatch, runs_dir):
    import pandas as pd

    pred = pd.read_csv(runs_dir / "resnet50-affectnet" / "predictions_val.csv", dtype={"id": str})
    worst = pred.loc[(pred["valence_pred"] - pred["valence_true"]).abs().idxmax()]
    at = _app(monkeypatch, runs_dir)
    at.switch_page("views/gallery.py").run()
    at.selectbox(key="gallery_run").set_value("resnet50-affectnet").run()
    at.selectbox(key="gallery_dim").select("valence").run()
    assert not at.exception
    assert any(f"{len(pred):,} samples with valence annotated (of {len(pred):,} in" in c.value
               and "valence RMSE" in c.value for c in at.caption)
    cells = [m.value for m in at.markdown if m.value.startswith("`")]
    assert cells[0].startswith(f"`{worst['id']}`") and f"valence **{worst['valence_true']:+.2f}**" in cells[0]
    assert at.selectbox(key="gallery_sort_va").value == "Largest error first"
    at.selectbox(key="gallery_dim").select("expression").run()
    at.switch_page("views/valence_arousal.py").run()
    at.selectbox(key="va_run").set_value("resnet50-affectnet").run()
    at.button(key="va_gallery_arousal").click().run()  # the valence/arousal page opens the gallery on its run
    assert at.selectbox(key="gallery_dim").value == "arousal" and at.selectbox(key="gallery_run").value == \
        "resnet50-affectnet" and not at.exception
    at.switch_page("views/gallery.py").run()
    at.selectbox(key="gallery_run").set_value("resnet18-ferplus").run()  # FER+: no valence to show
    assert any("has no arousal both annotated and predicted" in i.value for i in at.info) and not at.exception
    assert at.selectbox(key="gallery_dim").options == ["expression"]
    ferplus = pd.read_csv(runs_dir / "resnet18-ferplus" / "predictions_val.csv", dtype={"id": str})
    seen = sorted(set(ferplus["true"]) | set(ferplus["pred"]))
    assert at.selectbox(key="gallery_true").options == ["any", *(CLASSES[c] for c in seen)]


def test_choices_made_on_a_page_are_there_on_return(monkeypatch, runs_dir):
    at = _app(monkeypatch, runs_dir)
    at.switch_page("views/gallery.py").run()
    at.selectbox(key="gallery_per_page").select(12).run()
    at.number_input[0].set_value(2).run()
    at.switch_page("views/overview.py").run()
    at.switch_page("views/gallery.py").run()
    assert at.number_input[0].value == 2  # the gallery's page too
    at.selectbox(key="gallery_true").select("Fear").run()
    at.switch_page("views/disagreement.py").run()
    names = at.selectbox(key="dis_b").options
    at.selectbox(key="dis_b").select(names[-1]).run()
    at.switch_page("views/overview.py").run()
    at.switch_page("views/gallery.py").run()
    assert at.selectbox(key="gallery_true").value == "Fear" and not at.exception
    assert not at.warning or all("Session State" not in w.value for w in at.warning)
    at.switch_page("views/disagreement.py").run()
    assert at.selectbox(key="dis_b").value == names[-1]


def test_empty_state(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path)
    text = " ".join(c.value for c in at.code)
    assert "python -m fer_core.train --data ../shared/data/affectnet8-4k --preset hse-fast --name my-first-run" in text
    assert any("--help" in m.value for m in at.markdown)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception and at.code, page


def test_empty_state_names_a_run_in_its_first_epoch(monkeypatch, tmp_path):
    (tmp_path / "my-first-run").mkdir()
    (tmp_path / "my-first-run" / "train.log").write_text("decoding images\n")
    at = _app(monkeypatch, tmp_path)
    assert [i.value for i in at.info] == ["**my-first-run** is in its first epoch: this page shows it when that epoch "
                                          "ends (read again every 10 s)."]
    assert not at.code


def test_broken_runs_listed_and_skipped(monkeypatch, runs_dir, tmp_path):
    broken_dir = tmp_path / "runs"
    reasons = write_broken_runs(broken_dir)
    monkeypatch.setenv("FER_LAB_RUNS_DIR", f"{runs_dir}:{broken_dir}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert len(at.multiselect(key="selected_runs").options) == 4
    [skipped] = [e for e in at.sidebar.expander if "Skipped" in e.label]
    listed = " ".join(m.value for m in skipped.markdown)
    for name, reason in reasons.items():
        assert report.md(name) in listed and report.md(reason) in listed  # as text, not Markdown
    at.switch_page("views/overview.py").run()
    assert not at.exception and _plotly(at) >= 2


def test_metrics_edited_by_hand_are_skipped_with_the_reason_and_every_page_renders(monkeypatch, tmp_path):
    runs = tmp_path / "runs"
    for seed, name in enumerate(("a", "b", "c")):
        write_run(runs, name, n=80, n_boot=2, seed=seed)
    edits = {"pr_auc_macro": ([], "pr_auc_macro is not a number ([])"),
             "ci95": ({"accuracy": [0.4, "x"]}, "ci95.accuracy is not an interval of two numbers ([0.4, \"x\"])"),
             "valence": ({"rmse": "0.3"}, "valence.rmse is not a number (\"0.3\")"),
             "confusion": ([[1] * 8] * 7, "confusion is not 8 rows of 8 counts"),
             "per_class": ({"Neutral": "x"}, "per_class is not an object of scores for each class")}
    for (run, split), (key, (value, reason)) in zip([("a", "val"), ("a", "test"), ("b", "test"), ("c", "val"),
                                                     ("c", "test")], edits.items()):
        path = runs / run / f"metrics_{split}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    at = _app(monkeypatch, runs)
    [skipped] = [e for e in at.sidebar.expander if "Skipped" in e.label]
    listed = " ".join(m.value for m in skipped.markdown)
    assert all(report.md(reason) in listed for _, reason in edits.values()), listed
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_run_details_name_the_teacher_and_the_precision(monkeypatch, tmp_path):
    make_fixture_runs(tmp_path / "runs", n=60, images=0, n_boot=5)
    details = _run_details(_app(monkeypatch, tmp_path / "runs"))
    assert "distilled from" not in details.columns and "weights" in details.columns
    at = _app(monkeypatch, tmp_path / "runs")  # the fixture runs differ in backbone, epochs and seed
    differ = next(d.value for d in at.dataframe if "--seed" in d.value.columns)
    assert "--backbone" in differ.columns and "--lr" not in differ.columns
    assert any(h.value == "Settings that differ" for h in at.subheader)
    cfg_file = tmp_path / "runs" / "resnet18-ferplus" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps({**cfg, "teacher": {"path": "artifacts/runs/big/checkpoints/best.pt"},
                                    "precision": "bfloat16 autocast"}))
    details = _run_details(_app(monkeypatch, tmp_path / "runs"))
    assert details.loc["resnet18-ferplus", "distilled from"] == "big"
    assert details.loc["resnet50-affectnet", "distilled from"] == ""
    # a CPU run from before precision was recorded trained in float32
    assert details.loc["resnet18-ferplus", "precision"] == "bfloat16 autocast"
    assert details.loc["resnet50-affectnet", "precision"] == "float32"


def test_an_ensemble_folder_shows_beside_its_members(monkeypatch, tmp_path):
    import subprocess
    import sys

    make_fixture_runs(tmp_path / "runs", n=60, images=0, n_boot=5)
    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "ensemble.py"), runs / "resnet50-affectnet",
                          runs / "effb0-affectnet", "--out", runs / "pair"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    at = _app(monkeypatch, runs)
    assert _run_details(at).loc["pair", "backbone"] == "resnet50 + efficientnet_b0"
    at.switch_page("views/curves.py").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any(c.startswith("No training curves for pair: an ensemble") for c in captions), captions
    assert not any("history.csv yet" in c for c in captions)


def _pooled_cv(run: Path, folds_dir: Path, out: Path) -> list[Path]:
    """run's test predictions cut into two fold runs in folds_dir, pooled by scripts/pool_folds.py into out; returns
    the fold folders."""
    import subprocess
    import sys

    folds = write_cv_folds(run, folds_dir, "cv", first_stage=run)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "pool_folds.py"), *folds, "--out", out],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folds


def test_a_pooled_cross_validation_shows_its_folds_on_the_curves_page(monkeypatch, tmp_path):
    import shutil

    make_fixture_runs(tmp_path / "trained", n=60, images=0, n_boot=5)
    folds = _pooled_cv(tmp_path / "trained" / "effb0-affectnet", tmp_path / "folds", tmp_path / "runs" / "cv")
    at = _app(monkeypatch, tmp_path / "runs")
    assert _run_details(at).loc["cv", "train / val / test"] == "– / – / 60"
    at.switch_page("views/curves.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "No training curves for cv: its fold runs (cv-fold1, cv-fold2) are not among the run folders read." \
        in [c.value for c in at.caption]
    assert [i.value for i in at.info] == ["Choose a run that trained (not an ensemble, evaluation or pooled "
                                          "cross-validation) to see its curves."]
    assert not at.warning

    for fold in folds:  # with its folds' runs at hand, it shows their mean curve
        shutil.copytree(fold, tmp_path / "runs" / fold.name)
    at = _app(monkeypatch, tmp_path / "runs")
    assert at.multiselect(key="selected_runs").value == ["cv"]  # its folds stand behind it
    at.session_state["_selected_runs_saved"] = ["cv", "cv-fold1", "cv-fold2"]
    at.run()
    at.switch_page("views/curves.py").run()
    assert not at.exception, [e.value for e in at.exception]
    accuracy = next(c for c in at.get("plotly_chart") if '"Accuracy"' in c.proto.spec)
    traces = json.loads(accuracy.proto.spec)["data"]
    assert {"cv (mean of 2 folds)", "cv-fold1", "cv-fold1 (train)", "cv-fold2"} <= {t.get("name") for t in traces}
    assert [t.get("fill") for t in traces].count("tonexty") == 1  # the folds' range around their mean
    assert any(c.value.startswith("cv pools the test predictions of 2 fold runs: its curves are the mean of 2 of "
                                  "them") for c in at.caption)

    # another folder holding a run named like fold 1: the fold beside the pooled folder is still the one used
    import os

    shutil.copytree(folds[0], tmp_path / "elsewhere" / "runs" / folds[0].name)
    at = _app(monkeypatch, f"{tmp_path / 'runs'}{os.pathsep}{tmp_path / 'elsewhere' / 'runs'}")
    at.multiselect(key="selected_runs").set_value(["cv"]).run()
    at.switch_page("views/curves.py").run()
    assert not at.exception, [e.value for e in at.exception]
    caption = next(c.value for c in at.caption if c.value.startswith("cv pools"))
    assert "the mean of 2 of them" in caption and f"{tmp_path.name}/runs/cv-fold1" in caption


def test_gallery_of_a_pooled_cross_validation_asks_the_fold_that_tested_the_sample(monkeypatch, tmp_path):
    import pandas as pd
    import torch

    from tests.test_inference import make_checkpoint

    make_fixture_runs(tmp_path / "trained", n=60, data_root=tmp_path / "data", images=None, n_boot=5)
    folds = _pooled_cv(tmp_path / "trained" / "resnet50-affectnet", tmp_path / "runs", tmp_path / "runs" / "cv")
    (folds[1] / "checkpoints").mkdir()  # only fold 2's model is at hand
    ckpt = torch.load(make_checkpoint(folds[1] / "checkpoints" / "best.pt"), weights_only=True)
    cfg = json.loads((folds[1] / "config.json").read_text())
    (folds[1] / "config.json").write_text(json.dumps({**cfg, **{k: ckpt["config"][k] for k in
                                                               ("backbone", "img_size", "mean", "std")}}))
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/gallery.py").run()
    at.selectbox(key="gallery_run").set_value("cv").run()
    for fold, shown in ((folds[0], False), (folds[1], True)):
        sample = pd.read_csv(fold / "predictions_test.csv", dtype={"id": str}).iloc[0]
        at.text_input(key="gallery_query").input(sample["id"]).run()
        assert not at.exception, [e.value for e in at.exception]
        no_model = any(c.value.startswith(f"No model of {fold.name} here") for c in at.caption)
        assert no_model != shown
        if shown:
            at.toggle(key=f"gallery-x-cv-{sample['id']}").set_value(True).run()
            assert not at.exception, [e.value for e in at.exception]
            assert [c for i in at.get("image") for c in i.captions].count("the 112 px crop the model saw") == 2
            assert any("cv-fold2/checkpoints/best.pt" in c.value for c in at.caption)


def test_calibration_shows_a_calibrated_run_with_and_without_its_temperature(monkeypatch, tmp_path):
    from fer_core import calibrate

    make_fixture_runs(tmp_path / "runs", n=200, images=0, n_boot=5)
    run = tmp_path / "runs" / "effb0-affectnet"
    assert calibrate.main(calibrate.get_args_parser().parse_args(["--run", str(run)])) == 0
    t = json.loads((run / "config.json").read_text())["temperature"]["value"]
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/roc_pr.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[-1].value
    scaled = f"effb0-affectnet, temperature {t:.2f}"
    assert scaled in table.index and "resnet50-affectnet, temperature" not in " ".join(table.index)
    assert table.loc[scaled, "accuracy"] == table.loc["effb0-affectnet", "accuracy"]
    assert table.loc[scaled, "NLL"] < table.loc["effb0-affectnet", "NLL"]  # fitted on this split (val): in-sample
    assert any("fitted on the val split" in c.value for c in at.caption)


def test_gallery_shows_where_the_model_looked_where_the_run_has_one(monkeypatch, tmp_path):
    import os

    import pandas as pd
    import torch

    from tests.test_inference import make_checkpoint

    make_fixture_runs(tmp_path / "runs", n=60, data_root=tmp_path / "data", images=60, n_boot=5)
    run = tmp_path / "runs" / "resnet50-affectnet"
    (run / "checkpoints").mkdir()
    ckpt = torch.load(make_checkpoint(run / "checkpoints" / "best.pt"), weights_only=True)
    cfg = json.loads((run / "config.json").read_text())  # the run's config.json describes its checkpoint
    (run / "config.json").write_text(json.dumps({**cfg, **{k: ckpt["config"][k] for k in
                                                           ("backbone", "img_size", "mean", "std")}}))
    sample = pd.read_csv(run / "predictions_val.csv", dtype={"id": str}).iloc[3]
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/gallery.py").run()
    at.text_input(key="gallery_query").input(sample["id"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("No model of effb0-affectnet here") for c in at.caption)
    assert "the 112 px crop the model saw" not in [c for i in at.get("image") for c in i.captions]  # on request
    at.toggle(key=f"gallery-x-resnet50-affectnet-{sample['id']}").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    text = [m.value for m in at.markdown]
    pred, true = CLASSES[sample["pred"]], CLASSES[sample["true"]]
    assert f"**predicted: {pred}**" in text and f"**true: {true}**" in text
    assert any(t.startswith(f"P({pred}) = ") for t in text) and any(t.startswith(f"P({true}) = ") for t in text)
    assert [c for i in at.get("image") for c in i.captions].count("the 112 px crop the model saw") == 2
    # a checkpoint that does not fit its run's config: a message, not a traceback
    (run / "config.json").write_text(json.dumps({**cfg, "backbone": "resnet50"}))
    best = run / "checkpoints" / "best.pt"
    os.utime(best, ns=(best.stat().st_atime_ns, best.stat().st_mtime_ns + 10**9))  # as a newly copied file
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/gallery.py").run()
    at.text_input(key="gallery_query").input(sample["id"]).run()
    at.toggle(key=f"gallery-x-resnet50-affectnet-{sample['id']}").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith("Cannot load the model of resnet50-affectnet") for e in at.error)


def _as_training(run: Path, epochs_done: int) -> None:
    """Turn a finished fixture run into one still training: the first epochs' history, no predictions yet."""
    import pandas as pd

    history = pd.read_csv(run / "history.csv")
    history.head(epochs_done).to_csv(run / "history.csv", index=False)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "status": "running"}))
    for f in [*run.glob("predictions_*.csv"), *run.glob("metrics_*.json")]:
        f.unlink()


def test_curves_page_follows_a_run_while_it_trains(monkeypatch, tmp_path):
    import os
    import time

    live = write_run(tmp_path / "runs", "live", epochs=10)
    quiet = write_run(tmp_path / "runs", "quiet", epochs=10, seed=1)
    _as_training(live, 3)
    _as_training(quiet, 2)
    hour_ago = time.time() - 3600
    for f in quiet.iterdir():
        os.utime(f, (hour_ago, hour_ago))
    at = _app(monkeypatch, tmp_path / "runs")
    assert set(at.multiselect(key="selected_runs").value) == {"live", "quiet"}
    assert [i.value for i in at.info] == ["**live** is still training: this page shows its results when it ends (read "
                                          "again every 10 s); Training curves follows it epoch by epoch."]
    # quiet for an hour, three epochs' time being minutes: every page says so, and how to go on
    assert [w.value for w in at.warning] == [
        f"**quiet** is marked as training: epoch 2 of 10 done. Nothing written for about 60 min: the training process "
        f"may have stopped without saying so (killed, or its machine off); `python -m fer_core.train --resume {quiet}` "
        f"continues it."]
    at.switch_page("views/curves.py").run()
    assert not at.exception, [e.value for e in at.exception]
    bars = at.get("progress")
    assert len(bars) == 1 and bars[0].proto.value == 30
    assert bars[0].proto.text.startswith("**live**: epoch 3 of 10 done, ")
    assert [w.value.split(":")[0] for w in at.warning] == ["**quiet**"]
    assert "Nothing written for about 60 min" in at.warning[0].value
    assert len(at.get("plotly_chart")) == len(report.HISTORY_PANELS)  # both runs' curves so far

    # the run finishes: the page shows it as any other run
    cfg = json.loads((live / "config.json").read_text())
    (live / "config.json").write_text(json.dumps({**cfg, "status": "finished"}))
    for f in quiet.iterdir():
        f.unlink()
    quiet.rmdir()
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/curves.py").run()
    assert not at.exception and not at.get("progress") and not at.warning


def test_overview_offers_the_cross_validations_when_none_is_chosen(monkeypatch, tmp_path):
    make_fixture_runs(tmp_path / "runs", n=60, images=0, n_boot=5)
    _pooled_cv(tmp_path / "runs" / "effb0-affectnet", tmp_path / "runs", tmp_path / "runs" / "cv")
    at = _app(monkeypatch, tmp_path / "runs")
    assert "cv" not in at.multiselect(key="selected_runs").value and at.selectbox(key="split").value == "val"
    assert any(i.value.startswith("Cross-validations pooled from their fold runs") and i.value.endswith(": cv.")
               for i in at.info)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="selected_runs").value == ["cv"] and at.selectbox(key="split").value == "test"
    assert not any(i.value.startswith("Cross-validations pooled") for i in at.info)
    assert at.dataframe[0].value.index.tolist() == ["cv"]


def test_a_run_without_the_chosen_split_is_named_with_the_split_it_has(monkeypatch, tmp_path):
    make_fixture_runs(tmp_path / "runs", n=60, images=0, n_boot=5)
    _pooled_cv(tmp_path / "runs" / "effb0-affectnet", tmp_path / "runs", tmp_path / "runs" / "cv")
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_selected_runs_saved"] = ["effb0-affectnet", "cv"]
    at.run()
    assert at.selectbox(key="split").value == "val"
    assert any(i.value.startswith("Not shown: cv, which has no metrics_val file, only test (choose it as the "
                                  "sidebar's Split). A pooled cross-validation") for i in at.info)


def test_with_no_run_chosen_a_button_brings_the_default_choice_back(monkeypatch, runs_dir):
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_selected_runs_saved"] = []
    at.run()
    assert any(i.value.startswith("Choose one or more runs") for i in at.info)
    at.button[0].click().run()
    assert len(at.multiselect(key="selected_runs").value) > 0 and at.title[0].value == "Overview"


def test_a_chosen_cross_validation_shows_its_folds_spread(monkeypatch, tmp_path):
    make_fixture_runs(tmp_path / "runs", n=60, images=0, n_boot=5)
    _pooled_cv(tmp_path / "runs" / "effb0-affectnet", tmp_path / "runs", tmp_path / "runs" / "cv")
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_selected_runs_saved"] = ["cv"]  # the folds themselves not chosen
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spread = next(d.value for d in at.dataframe if d.value.index.name == "recipe")
    assert spread.index.tolist() == ["cv (2 folds)"] and spread.at["cv (2 folds)", "runs"] == "cv-fold1–2"
    assert " ± " in spread.at["cv (2 folds)", "Accuracy"]
    from fer_core import runs as R

    runs = {r.name: r for r in R.discover_runs([tmp_path / "runs"])[0]}
    groups, added = R.spread_groups([runs["cv"], runs["cv-fold1"]], list(runs.values()))
    assert groups == [["cv-fold1", "cv-fold2"]] and list(added) == ["cv-fold2"]  # a chosen fold is not added again
    # the folds side by side: scored on different images, so none is called the best
    at.session_state["_selected_runs_saved"] = ["cv-fold1", "cv-fold2"]
    at.session_state["_split_saved"] = "test"
    at.run()
    assert not at.success and any("Not ranked: cv-fold1, cv-fold2" in c.value for c in at.caption)


def test_two_cross_validations_on_the_same_folds_are_compared_fold_by_fold(monkeypatch, tmp_path):
    import subprocess
    import sys

    import pandas as pd

    from fer_core.metrics import corrected_resampled_t

    runs = tmp_path / "runs"
    make_fixture_runs(runs, n=60, images=0, n_boot=5)
    for source, name in (("effb0-affectnet", "cv"), ("resnet50-affectnet", "cvb")):
        folds = write_cv_folds(runs / source, runs, name, first_stage=runs / source)
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "pool_folds.py"), *folds, "--out", runs / name],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(runs))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_selected_runs_saved"] = ["cv", "cvb"]
    at.session_state["_split_saved"] = "test"
    at.run()
    at.switch_page("views/disagreement.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert (at.selectbox(key="dis_a").value, at.selectbox(key="dis_b").value) == ("cv", "cvb")
    acc = {(name, k): (lambda f: (f["pred"] == f["true"]).mean())(pd.read_csv(runs / f"{name}-fold{k}" /
                                                                              "predictions_test.csv"))
           for name in ("cv", "cvb") for k in (1, 2)}
    diffs = [acc["cv", k] - acc["cvb", k] for k in (1, 2)]
    t, _ = corrected_resampled_t(diffs, 0.5)  # each fold tests half as many images as it trained on
    line = next(m.value for m in at.markdown if m.value.startswith("**Fold by fold**"))
    assert f"fold: {diffs[0]:+.3f}, {diffs[1]:+.3f};" in line and f"t = {t:.2f}" in line
    at.session_state["_selected_runs_saved"] = ["cv", "resnet50-affectnet"]  # one run: no folds to pair
    at.run()
    assert not at.exception and at.selectbox(key="dis_b").value == "resnet50-affectnet"
    assert not any(m.value.startswith("**Fold by fold**") for m in at.markdown)


def test_gallery_of_a_fer_plus_run_shows_the_annotators_votes(monkeypatch, tmp_path):
    import pandas as pd

    from fer_core.data import FERPLUS_VOTES
    from fer_core.labels import class_index

    run = write_run(tmp_path / "runs", "fp", n=60, layout="ferplus", has_va=False, data_root=tmp_path / "data",
                    images=10, n_boot=5)
    column = {class_index(n): j for j, n in enumerate(FERPLUS_VOTES[:8])}  # label.csv has FER+'s class order
    rows = []
    for split in ("val", "test"):
        for _, r in pd.read_csv(run / f"predictions_{split}.csv", dtype={"id": str}).iterrows():
            votes = [0] * 10
            votes[column[r["true"]]] += 6
            votes[column[r["pred"]]] += 3  # a second opinion for every prediction
            votes[8] += 1
            rows.append(f'{r["id"].split("/")[1]}.png,"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (tmp_path / "data" / "FER2013Test" / "label.csv").write_text("\n".join(rows) + "\n")
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/gallery.py").run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    n = len([m for m in at.markdown if m.value.startswith("`")])
    assert n and len([c for c in captions if c.startswith("votes: ")]) == n
    assert any(c.startswith("FER+ votes: on ") and "(100%)" in c for c in captions)
    at.selectbox(key="gallery_sort").select("Most annotators agreeing with the prediction first").run()
    assert not at.exception
    at.text_input(key="gallery_query").input(rows[0].split(".")[0].removeprefix("fer")).run()
    assert any(c.value.startswith("FER+ annotators' votes: ") for c in at.caption)


def test_a_damaged_predictions_file_is_named_not_a_traceback(monkeypatch, tmp_path):
    import pandas as pd

    for name, seed in (("good", 0), ("damaged", 1)):
        write_run(tmp_path / "runs", name, n=60, seed=seed, images=0, n_boot=5)
    path = tmp_path / "runs" / "damaged" / "predictions_val.csv"
    df = pd.read_csv(path, dtype={"id": str})
    df.loc[3, "prob_0"] = float("nan")  # e.g. edited by hand
    df.to_csv(path, index=False)
    at = _app(monkeypatch, tmp_path / "runs")
    for page in ("views/gallery.py", "views/roc_pr.py", "views/valence_arousal.py", "views/disagreement.py",
                 "views/overview.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page("views/gallery.py").run()
    assert any(e.value.startswith("Not shown: damaged, whose predictions file cannot be used: ") and
               "probabilities that are not finite" in e.value for e in at.error)
    assert not any("Not shown: damaged" in i.value for i in at.info)  # named once, for what is wrong


def test_text_from_run_folders_is_shown_literally_not_as_markdown(monkeypatch, tmp_path):
    """Names, paths and ids come from folders other people share: a link or an image in them must stay text."""
    import pandas as pd

    evil = "x[link](javascript:alert(1))**b**"
    root = tmp_path / "data` ![i](http://127.0.0.1:9/r.png) `"
    for name, seed in ((evil, 0), ("plain", 1)):
        write_run(tmp_path / "runs", name, n=60, seed=seed, images=3, n_boot=5, data_root=root)
    preds = tmp_path / "runs" / evil / "predictions_val.csv"
    df = pd.read_csv(preds, dtype={"id": str})
    df.loc[df["true"] != df["pred"], "id"] = [f"{i}` ![p](http://127.0.0.1:9/p.png) `" for i in
                                              range((df["true"] != df["pred"]).sum())]
    df.to_csv(preds, index=False)
    at = _app(monkeypatch, tmp_path / "runs")
    shown = []
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        shown += [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "header")
                  for e in at.get(kind)] + [t.label for t in at.tabs]
    text = "\n".join(shown)
    assert report.md(evil) in text and "[link](" not in text  # the name, escaped, and never a link
    assert "![" not in text.replace("` ![", "")  # images only inside code spans...
    assert all(m.count("``") % 2 == 0 for m in shown if "![" in m)  # ...fenced by more backticks than they hold


def test_gallery_names_images_it_cannot_show_and_goes_on(monkeypatch, tmp_path):
    from PIL import Image

    write_run(tmp_path / "runs", "r", n=40, images=None, n_boot=5, data_root=tmp_path / "data")
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 8000)).save(huge)  # 64 MP: over the decoder's limit, refused from its header
    for k, img in enumerate(sorted((tmp_path / "data" / "images").glob("*.jpg"))):
        if k % 2:
            img.write_bytes(img.read_bytes()[:img.stat().st_size // 2])  # cut short
        else:
            img.write_bytes(huge.read_bytes())
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/gallery.py").run()
    assert not at.exception, [e.value for e in at.exception]
    why = [c.value for c in at.caption if c.value.startswith("Cannot show")]
    assert any("pixels is over the limit" in w for w in why) and any("cut short" in w for w in why)
    assert any("unreadable" in m.value for m in at.markdown) and not at.get("image")
    assert not any("were not found" in i.value for i in at.info)  # there, only unreadable


def test_a_chosen_run_stays_chosen_when_an_extra_folder_brings_one_of_its_name(monkeypatch, tmp_path):
    write_run(tmp_path / "runs", "dlib-best", n=60, images=0, n_boot=5)
    write_run(tmp_path / "extra", "dlib-best", n=60, seed=1, images=0, n_boot=5)
    at = _app(monkeypatch, tmp_path / "runs")
    at.session_state["_selected_runs_saved"] = ["dlib-best"]  # the user's own choice
    at.text_area(key="extra_run_dirs").input(str(tmp_path / "extra")).run()
    assert not at.exception
    assert sorted(at.multiselect(key="selected_runs").options) == ["extra/dlib-best", "runs/dlib-best"]
    assert at.multiselect(key="selected_runs").value == ["runs/dlib-best"]  # the one chosen, under its longer name


def test_a_failed_run_is_said_to_have_failed_not_only_to_lack_results(monkeypatch, tmp_path):
    write_run(tmp_path / "runs", "good", n=60, images=0, n_boot=5)
    broke = write_run(tmp_path / "runs", "broke", n=60, seed=1, images=0, n_boot=5)
    for f in ("metrics_val.json", "metrics_test.json", "predictions_val.csv", "predictions_test.csv"):
        (broke / f).unlink()
    cfg = json.loads((broke / "config.json").read_text())
    (broke / "config.json").write_text(json.dumps({**cfg, "status": "failed"}))
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_selected_runs_saved"] = ["good", "broke"]
    at.run()
    assert not at.exception
    assert any("broke's training failed before its final evaluation" in i.value for i in at.info)


def test_pages_say_why_their_figures_differ_from_the_overview(monkeypatch, tmp_path):
    a = write_run(tmp_path / "runs", "flipped", n=120, seed=1)
    b = write_run(tmp_path / "runs", "partial", n=120, seed=2)
    cfg = json.loads((a / "config.json").read_text())
    (a / "config.json").write_text(json.dumps({**cfg, "args": {**cfg["args"], "tta": True}}))
    pred = b / "predictions_val.csv"
    lines = pred.read_text().splitlines(keepends=True)
    pred.write_text("".join(lines[:-40]))  # scored on 80 of the 120 validation images
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/curves.py").run()
    assert any(c.value.startswith("The epochs are scored on each image as it is; flipped was then evaluated with flip")
               for c in at.caption)
    at.switch_page("views/disagreement.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith(f"{at.selectbox(key='dis_a').value} evaluated ") and "the figures here are on the 80 "
               "both did, so they differ from the Overview's" in c.value for c in at.caption), \
        [c.value for c in at.caption]


def test_damaged_files_in_a_run_are_named_on_its_pages_and_leave_the_others_ranked(monkeypatch, tmp_path):
    import os

    for name, seed in (("good", 1), ("other", 2), ("damaged", 3)):
        write_run(tmp_path / "runs", name, n=80, seed=seed, n_boot=5)
    damaged = tmp_path / "runs" / "damaged"
    (damaged / "metrics_test.json").write_text("[]")  # valid JSON, not what evaluate writes
    lines = (damaged / "predictions_val.csv").read_text().splitlines(keepends=True)
    (damaged / "predictions_val.csv").write_text("".join(lines[:6]))  # 5 rows; its metrics say 80
    with open(os.fsencode(damaged) + b"/predictions_v\xe9l.csv", "w") as f:  # a stray file named on another system
        f.write("id\n")
    at = _app(monkeypatch, tmp_path / "runs")
    at.multiselect(key="selected_runs").set_value(["good", "other", "damaged"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("its name is not valid UTF-8" in m.value for e in at.sidebar.expander for m in e.markdown)
    at.selectbox(key="split").set_value("test").run()
    assert [e.value for e in at.error] == ["Not shown: damaged, whose metrics_test.json cannot be used: does not hold "
                                           "a JSON object."]
    at.selectbox(key="split").set_value("val").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("Not ranked: damaged, which has predictions for 5 images but metrics for 80 on val")
               for c in at.caption), [c.value for c in at.caption]
    assert any("by accuracy" in s.value for s in at.success)  # good and other are still ranked on their images
    for page in ("views/confusion.py", "views/roc_pr.py", "views/disagreement.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_a_run_whose_training_process_ended_is_not_said_to_be_training(monkeypatch, tmp_path):
    import socket
    import subprocess
    import sys

    run = write_run(tmp_path / "runs", "killed", epochs=10)
    _as_training(run, 3)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / R.CLAIM).write_text(f"{gone.stdout.strip()} {socket.gethostname()}")  # its process was killed
    at = _app(monkeypatch, tmp_path / "runs")
    gone_text = (f"**killed** is marked as training, but the process that trained it has ended without finishing "
                 f"(killed, or its machine restarted): `python -m fer_core.train --resume {run}` continues it from its "
                 "last epoch.")
    assert not at.info and [w.value for w in at.warning] == [gone_text]
    at.switch_page("views/curves.py").run()  # the curves page, which follows a training, says so too
    assert gone_text in [w.value for w in at.warning] and not at.get("progress") and not at.exception
    (run / R.CLAIM).write_text(f"{os.getpid()} {socket.gethostname()}")  # alive: still training
    at = _app(monkeypatch, tmp_path / "runs")
    assert not at.warning and "still training" in at.info[0].value


def test_many_runs_get_one_run_chooser_for_their_curves_and_a_warning(monkeypatch, tmp_path):
    for k in range(31):
        write_run(tmp_path / "runs", f"run{k:02d}", n=30, seed=k, n_boot=2, splits=("val",))
    at = _app(monkeypatch, tmp_path / "runs")
    at.multiselect(key="selected_runs").set_value([f"run{k:02d}" for k in range(8)]).run()
    assert not at.sidebar.warning
    at.switch_page("views/roc_pr.py").run()
    assert not at.exception and not at.tabs and at.selectbox(key="roc_run").value == "run00"
    assert _plotly(at) == 5  # both macro charts, the chosen run's ROC and PR, the reliability diagram
    at.selectbox(key="roc_run").set_value("run05").run()
    assert json.loads(at.get("plotly_chart")[2].proto.spec)["layout"]["title"]["text"].startswith("run05: ROC")
    at.multiselect(key="selected_runs").set_value([f"run{k:02d}" for k in range(31)]).run()
    assert at.sidebar.warning[0].value.startswith("31 runs chosen: every page draws each of them")


def test_seeds_tested_on_other_images_are_said_to_be(monkeypatch, tmp_path):
    runs = tmp_path / "runs"
    for name, seed, split_seed in (("r-s0", 0, 0), ("r-s1", 1, 0)):  # one split, as after --split-from
        write_run(runs, name, n=60, seed=seed, split_seed=split_seed, n_boot=5)
    at = _app(monkeypatch, runs)
    spread = next(d.value for d in at.dataframe if d.value.index.name == "recipe")
    assert spread.index.tolist() == ["r (2 seeds)"]
    assert not any("Some seeds were tested on other images" in c.value for c in at.caption)
    from fer_core.report import tested_on_other_images

    ids = {"a": ["1", "2"], "b": ["2", "1"], "c": ["3"], "d": None}
    assert not tested_on_other_images([["a", "b"]], ids) and tested_on_other_images([["a", "b"], ["a", "c"]], ids)
    assert tested_on_other_images([["a", "d"]], ids)
    write_run(runs, "r-s2", n=60, seed=2, split_seed=2, n_boot=5)  # a split of its own, drawn with its seed
    at = _app(monkeypatch, runs)
    assert any("Some seeds were tested on other images" in c.value for c in at.caption)


def test_a_run_added_while_a_session_is_open_changes_no_choice_in_it(monkeypatch, tmp_path):
    # on a shared server another student's new run used to take a place among the runs this session was shown
    runs = tmp_path / "runs"
    for k in range(3):
        write_run(runs, f"run{k}", n=60, n_boot=5, backbone=f"b{k}", created=datetime(2026, 1, 1 + k))
    at = _app(monkeypatch, runs)
    shown = list(at.multiselect(key="selected_runs").value)
    write_run(runs, "newcomer", n=60, n_boot=5, backbone="b9", created=datetime(2026, 2, 1))
    at.run()
    assert list(at.multiselect(key="selected_runs").value) == shown and "newcomer" not in shown
    assert "newcomer" in at.multiselect(key="selected_runs").options
    assert "newcomer" in _app(monkeypatch, runs).multiselect(key="selected_runs").value  # a new session: the newest


def test_roc_page_leaves_out_runs_that_give_one_class_per_image(monkeypatch, tmp_path):
    write_run(tmp_path, "scores", n=100, n_boot=5)
    hard = write_run(tmp_path, "hard", n=100, n_boot=5)
    for f in hard.glob("predictions_*.csv"):
        p = pd.read_csv(f, dtype={"id": str})
        p[[f"prob_{k}" for k in range(8)]] = np.eye(8)[p["pred"]]
        p.to_csv(f, index=False)
    at = _app(monkeypatch, tmp_path)
    at.switch_page("views/roc_pr.py").run()
    assert not at.exception
    assert any(i.value.startswith("Not shown: hard, whose predictions give one class per image") for i in at.info)
    assert [t.label for t in at.tabs] == ["scores"]


def test_overview_ranks_only_runs_scored_against_the_same_labels(monkeypatch, tmp_path):
    for name in ("plain", "other-seed"):
        write_run(tmp_path, name, n=100, n_boot=5, seed=len(name))
    relabelled = write_run(tmp_path, "relabelled", n=100, n_boot=5, seed=0)
    for f in relabelled.glob("predictions_*.csv"):  # the test labels changed to the model's answers where it erred
        p = pd.read_csv(f, dtype={"id": str})
        p["true"] = p["pred"]
        p.to_csv(f, index=False)
    at = _app(monkeypatch, tmp_path)
    best = " ".join(s.value for s in at.success)
    assert "relabelled" not in best.split(" — ")[0] and "Best on" in best
    assert any("Not ranked: relabelled" in c.value for c in at.caption)


def test_disagreement_shows_fer_plus_votes_for_the_images_every_run_gets_wrong(monkeypatch, tmp_path):
    data = tmp_path / "data"
    runs = [write_run(tmp_path / "runs", name, n=120, n_boot=5, layout="ferplus", data_root=data, images=0,
                      seed=seed, skill=0.3) for seed, name in enumerate(("a", "b"))]
    pred = pd.read_csv(runs[0] / "predictions_val.csv", dtype={"id": str})
    other = pd.read_csv(runs[1] / "predictions_val.csv", dtype={"id": str})
    ferplus_order = ["Neutral", "Happy", "Surprise", "Sad", "Anger", "Disgust", "Fear", "Contempt"]
    lines = []
    for (i, t), p in zip(pred[["id", "true"]].to_numpy(), pred["pred"]):
        votes = [0] * 10
        votes[ferplus_order.index(CLASSES[t])] += 7
        votes[ferplus_order.index(CLASSES[p])] += 3 if p != t else 0  # each wrong class backed by three annotators
        lines.append(f'{i.removeprefix("Test/")}.png,"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (data / "FER2013Test").mkdir(parents=True, exist_ok=True)
    (data / "FER2013Test" / "label.csv").write_text("\n".join(lines) + "\n")
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/disagreement.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "annotators' votes" in d.value.columns)
    same = ((pred["pred"] == other["pred"]) & (pred["pred"] != pred["true"])).sum()
    assert same and table["annotators' votes"].str.contains(" 3").sum() >= same
    assert any(f"chose the runs' class too for {same:,} of those {same:,}" in c.value for c in at.caption)


def test_disagreement_names_an_ensemble_chosen_with_its_own_members(monkeypatch, tmp_path):
    for seed, name in enumerate(("a", "b", "ens")):
        write_run(tmp_path / "runs", name, n=120, n_boot=5, seed=seed)
    config = tmp_path / "runs" / "ens" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "members": [{"run": "a"}, {"run": "other"}]}))
    at = _app(monkeypatch, tmp_path / "runs")
    at.switch_page("views/disagreement.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("ens averages a, chosen too" in w.value and "not independent opinions" in w.value for w in at.warning)


def test_overview_names_the_run_the_default_model_was_exported_from(monkeypatch, tmp_path):
    from fer_core.inference import SHIPPED_DIR, model_config

    name = model_config(SHIPPED_DIR / "model.onnx")["name"]  # the shipped model's run, here a stand-in of its name
    write_run(tmp_path / "runs", name, n=120, n_boot=5)
    write_run(tmp_path / "runs", "other", n=120, n_boot=5, seed=1)
    at = _app(monkeypatch, tmp_path / "runs")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"use out of the box, is the run **{name}**" in c.value for c in at.caption)


def test_subgroups_measure_the_false_alarms_of_each_class_the_runs_show(monkeypatch, runs_dir):
    import pandas as pd

    at = _app(monkeypatch, runs_dir)
    at.switch_page("views/subgroups.py").run()
    seen = set()
    for run in ("resnet50-affectnet", "effb0-affectnet", "mnv3-affectnet", "resnet18-ferplus"):
        pred = pd.read_csv(runs_dir / run / "predictions_val.csv")
        seen |= set(pred["true"]) | set(pred["pred"])
    measure = at.selectbox(key="subgroup_measure")
    assert measure.options == ["accuracy", *(f"called {CLASSES[c]}" for c in sorted(seen))]
    measure.select("called Anger").run()
    assert not at.exception and any("the share of images not labelled Anger that the run called Anger" in c.value
                                    for c in at.caption)
