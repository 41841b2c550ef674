"""Run discovery/validation and the pure figure/table builders behind the dashboard."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from fer_core import report, report_errors as E, report_roc, report_va as V
from fer_core import runs as R
from fer_core.labels import CLASSES
from tests.fixture_runs import make_predictions, write_broken_runs, write_run


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    write_run(base, "a", n=300, skill=2.0, seed=1, n_boot=10)
    write_run(base, "b", n=300, skill=1.0, seed=2, n_boot=10)
    write_run(base, "fer", n=300, has_va=False, layout="ferplus", seed=3, n_boot=10)
    return base


def test_discover_and_load(runs_dir):
    runs, problems = R.discover_runs([runs_dir])
    assert problems == []
    assert [r.name for r in runs] == ["fer", "b", "a"]  # newest first
    a = next(r for r in runs if r.name == "a")
    assert a.splits == ["test", "val"] and a.has_history and a.has_va
    pred = R.load_predictions(a.predictions_path("val"))
    assert len(pred) == 300 and pd.api.types.is_string_dtype(pred["id"]) and pred["prob_0"].dtype == "float32"
    assert np.allclose(pred[[f"prob_{k}" for k in range(8)]].sum(axis=1), 1, atol=1e-4)
    fer = R.load_predictions(next(r for r in runs if r.name == "fer").predictions_path("val"))
    assert fer["valence_true"].isna().all() and not V.has_va(fer) and V.has_va(pred)
    # from Python: one folder as a str or Path, not only a list
    assert [r.name for r in R.discover_runs(str(runs_dir))[0]] == [r.name for r in runs]
    assert R.run_predictions(a.path, "val")["id"].tolist() == pred["id"].tolist()
    with pytest.raises(ValueError, match="a folder; a predictions file is"):
        R.load_predictions(a.path)
    partial = runs_dir / ".c.partial-123"  # a run folder still being written (fer_core.io.whole_folder)
    shutil.copytree(a.path, partial, ignore=shutil.ignore_patterns("config.json"))
    try:
        assert R.discover_runs([runs_dir]) == (runs, [])  # neither a run nor a problem until it is whole
    finally:
        shutil.rmtree(partial)


def test_default_selection_newest_then_best_of_each_recipe(tmp_path):
    for name, skill, seed, backbone, layout in [("old-best", 3.0, 1, "resnet18", "affectnet"),
                                                ("old-weak", 0.5, 2, "resnet18", "affectnet"),
                                                ("other", 1.0, 3, "mobilenet_v2", "affectnet"),
                                                ("fer", 3.0, 4, "mobilenet_v2", "ferplus"),
                                                ("new", 1.0, 5, "resnet18", "affectnet")]:
        write_run(tmp_path, name, n=200, skill=skill, seed=seed, backbone=backbone, layout=layout, n_boot=10)
    runs, _ = R.discover_runs([tmp_path])
    assert [r.name for r in runs] == ["new", "fer", "other", "old-weak", "old-best"]
    # The newest; the best resnet18 run; the only mobilenet_v2 run on the same data (not the FER+ one); then the rest.
    assert R.default_selection(runs, 4) == ["new", "old-best", "other", "old-weak"]
    assert R.default_selection(runs, 2) == ["new", "old-best"]
    assert R.default_selection(runs, 5) == ["new", "old-best", "other", "old-weak", "fer"]
    assert R.default_selection(runs[1:2], 4) == ["fer"] and R.default_selection([], 4) == []
    # "Best" is what training keeps epochs by: accuracy averaged with the mean valence/arousal CCC.
    m = json.loads((tmp_path / "old-best" / "metrics_val.json").read_text())
    expected = (m["accuracy"] + (m["valence"]["ccc"] + m["arousal"]["ccc"]) / 2) / 2
    assert next(r for r in runs if r.name == "old-best").val_score == pytest.approx(expected)
    assert R.selection_score(0.5, [0.3, float("nan")]) == pytest.approx(0.4)
    assert R.selection_score(0.5, []) == 0.5  # no valence/arousal: accuracy alone


def test_a_featured_list_opens_the_dashboard_until_a_newer_run_is_trained(tmp_path):
    for name, seed in [("headline", 0), ("baseline", 1), ("ablation", 2)]:
        write_run(tmp_path, name, n=200, seed=seed, n_boot=10)
    runs, _ = R.discover_runs([tmp_path])
    assert R.opening_selection([tmp_path], runs, 4) == R.default_selection(runs, 4)  # no featured.txt
    (tmp_path / R.FEATURED).write_text("# shipped\nheadline  # the default model\n\nmissing\nbaseline\n")
    runs, _ = R.discover_runs([tmp_path])  # the file is not a run folder
    assert [r.name for r in runs] == ["ablation", "baseline", "headline"]
    assert R.opening_selection([tmp_path / "nowhere", tmp_path], runs, 4) == ["headline", "baseline"]
    assert R.opening_selection([tmp_path], runs, 1) == ["headline"]
    write_run(tmp_path, "mine", n=200, seed=3, n_boot=10, created=datetime.now(timezone.utc) + timedelta(minutes=1))
    runs, _ = R.discover_runs([tmp_path])
    assert R.opening_selection([tmp_path], runs, 4)[0] == "mine"  # trained after the list: the user's run leads


def test_default_selection_orders_the_other_recipes_best_first(tmp_path):
    # a newer but weaker recipe comes after an older, stronger one
    for name, skill, seed, backbone in [("strong", 3.0, 0, "resnet18"), ("weak", 0.5, 1, "mobilenet_v2"),
                                        ("newest", 1.0, 2, "efficientnet_b0")]:
        write_run(tmp_path, name, n=200, skill=skill, seed=seed, backbone=backbone, n_boot=10)
    runs, _ = R.discover_runs([tmp_path])
    assert [r.name for r in runs] == ["newest", "weak", "strong"]
    assert R.default_selection(runs, 3) == ["newest", "strong", "weak"]


def test_default_selection_puts_a_first_stage_after_the_run_that_started_from_it(tmp_path):
    write_run(tmp_path, "affectnet", n=200, seed=0, n_boot=10)
    write_run(tmp_path, "ferplus-stage", n=200, has_va=False, layout="ferplus", seed=1, n_boot=10)  # newest
    runs, _ = R.discover_runs([tmp_path])
    assert R.default_selection(runs, 2) == ["ferplus-stage", "affectnet"]  # nothing started from it yet
    cfg_path = tmp_path / "affectnet" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["args"] = {**(cfg.get("args") or {}), "weights": "artifacts/runs/ferplus-stage/checkpoints/best.pt"}
    cfg_path.write_text(json.dumps(cfg))
    runs, _ = R.discover_runs([tmp_path])
    assert R.default_selection(runs, 2) == ["affectnet", "ferplus-stage"]
    assert R.default_selection([r for r in runs if r.name == "ferplus-stage"], 2) == ["ferplus-stage"]


def test_default_selection_does_not_pick_the_luckiest_seed(tmp_path):
    # "lucky" repeats "base" with another seed and scores higher: it is the same recipe, so "base" represents it
    for name, skill, seed, backbone in [("base", 1.0, 0, "resnet18"), ("lucky", 3.0, 1, "resnet18"),
                                        ("newest", 1.0, 2, "mobilenet_v2")]:
        write_run(tmp_path, name, n=200, skill=skill, seed=seed, backbone=backbone, n_boot=10)
    runs, _ = R.discover_runs([tmp_path])
    by_name = {r.name: r for r in runs}
    assert by_name["lucky"].val_score > by_name["base"].val_score
    assert R.default_selection(runs, 2) == ["newest", "base"]
    assert R.default_selection(runs, 3) == ["newest", "base", "lucky"]


def test_default_selection_shows_the_plain_preset_before_its_ablations(tmp_path):
    # "ablation" ran the same preset with one setting changed and scored higher: the preset run still stands for it
    from fer_core.presets import resolve
    # "facenet" ran the preset on another backbone: a recipe of its own, shown beside the plain preset
    for name, skill, seed, preset, change in [("plain", 1.5, 0, "hse-best", {}),
                                              ("facenet", 0.5, 1, "hse-best", {"backbone": "facenet"}),
                                              ("ablation", 3.0, 2, "hse-best", {"epochs": 18}),
                                              ("newest", 1.0, 3, None, {})]:
        folder = write_run(tmp_path, name, n=200, skill=skill, seed=seed, n_boot=10)
        if preset:
            cfg = json.loads((folder / "config.json").read_text())
            args = {**resolve(preset, {}), "seed": seed, **change}
            cfg.update(preset=preset, backbone=args["backbone"], args=args)
            (folder / "config.json").write_text(json.dumps(cfg))
    runs, _ = R.discover_runs([tmp_path])
    by_name = {r.name: r for r in runs}
    assert by_name["ablation"].val_score > by_name["plain"].val_score > by_name["facenet"].val_score
    assert R.default_selection(runs, 2) == ["newest", "plain"]
    assert R.default_selection(runs, 4) == ["newest", "plain", "facenet", "ablation"]


def test_default_selection_puts_cross_validation_folds_last(tmp_path):
    for name, seed in [("fixed", 0), ("cv-fold1", 1), ("cv-fold2", 2)]:
        folder = write_run(tmp_path, name, n=100, seed=seed, n_boot=10)
        if name.startswith("cv"):
            cfg = json.loads((folder / "config.json").read_text())
            cfg["split"].update(source="fold", fold=seed, folds=2)
            (folder / "config.json").write_text(json.dumps(cfg))
    runs, _ = R.discover_runs([tmp_path])
    assert [r.name for r in runs][0] == "cv-fold2"  # the newest
    assert R.default_selection(runs, 3) == ["fixed", "cv-fold2", "cv-fold1"]
    assert R.default_selection([r for r in runs if r.name != "fixed"], 2) == ["cv-fold2", "cv-fold1"]
    # the folds pooled into one folder (scripts/pool_folds.py) come before the folds, after the fixed-split run
    pooled = next(r for r in runs if r.name == "cv-fold1")
    pooled = R.Run(name="cv", path=tmp_path / "cv", config={**pooled.config, "fold_runs": [{"run": "cv-fold1"}],
                                                             "split": {"source": "cross-validation", "folds": 2}})
    assert R.default_selection([*runs, pooled], 3) == ["fixed", "cv", "cv-fold2"]
    assert R.default_selection([r for r in [*runs, pooled] if r.name != "fixed"], 1) == ["cv"]
    assert R.default_selection(runs, 2) == ["fixed"]  # not one fold of two: a cross-validation's folds all or none
    whole = R.Run(name="cv", path=tmp_path / "cv", config={**pooled.config, "fold_runs": [
        {"run": "cv-fold1"}, {"run": "cv-fold2"}]})
    assert R.default_selection([*runs, whole], 4) == ["fixed", "cv"]  # its folds stand behind the pooled folder


def test_broken_folders_reported_with_reasons(tmp_path, runs_dir):
    reasons = write_broken_runs(tmp_path)
    (tmp_path / "not-a-run").mkdir()  # no run files at all: ignored silently
    runs, problems = R.discover_runs([tmp_path, runs_dir, tmp_path / "missing"])
    assert len(runs) == 3
    by_name = {p.path.name: p.reason for p in problems}
    for name, words in reasons.items():
        assert words in by_name[name]
    assert "does not exist" in by_name["missing"] and "not-a-run" not in by_name


def test_a_folder_of_runs_that_cannot_be_read_is_reported(tmp_path, runs_dir, monkeypatch):
    real = Path.iterdir

    def iterdir(folder):  # as for another user's folder (this suite may run as root, which reads every folder)
        if folder == tmp_path:
            raise PermissionError(13, "Permission denied", str(folder))
        return real(folder)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    runs, problems = R.discover_runs([tmp_path, runs_dir])
    assert len(runs) == 3 and [(p.path, p.reason, p.skipped) for p in problems] == [
        (tmp_path, "cannot be read (Permission denied)", "folder")]


def test_bad_split_files_drop_only_that_split(tmp_path):
    folder = write_run(tmp_path, "r", n=50, n_boot=2)
    (folder / "metrics_test.json").write_text("{oops")
    pd.read_csv(folder / "predictions_val.csv").drop(columns=["prob_3"]).to_csv(folder / "predictions_val.csv")
    run, problems = R.validate_run(folder)
    assert run.splits == ["test"] and run.metrics_splits == ["val"]
    assert {p.skipped for p in problems} == {"val", "test"}
    assert any("prob_3" in p.reason for p in problems)


def test_empty_or_cut_short_tables_are_reported_not_read(tmp_path):
    folder = write_run(tmp_path, "r", n=2000, n_boot=2, splits=("val", "test", "train"))
    text = (folder / "predictions_test.csv").read_bytes()
    (folder / "predictions_test.csv").write_bytes(text[:len(text) // 2])  # a copy cut off in the middle of a row
    (folder / "predictions_val.csv").write_text((folder / "predictions_val.csv").read_text().splitlines()[0] + "\n")
    (folder / "predictions_train.csv").write_bytes(b"")
    run, problems = R.validate_run(folder)
    assert run.splits == [] and run.has_history
    reasons = {p.skipped: p.reason for p in problems}
    assert reasons["val"] == "no rows, only the header" and reasons["train"] == "empty file"
    assert reasons["test"].endswith("fields: the file is cut short (copied or written incompletely)")

    history = (folder / "history.csv").read_text()
    (folder / "history.csv").write_text(history.splitlines()[0] + "\n")  # no epoch recorded yet: no curves
    assert not R.validate_run(folder)[0].has_history
    (folder / "history.csv").write_text(history[:-30])
    run, problems = R.validate_run(folder)
    assert run is None and "history.csv: its last line has" in problems[0].reason


def test_discovery_reads_a_folder_again_when_one_of_its_files_changes(tmp_path):
    folder = write_run(tmp_path, "r", n=50, n_boot=2)
    first = R.discover_runs([tmp_path])[0][0]
    first.name = "renamed"  # a caller's change to a found run does not reach the next discovery
    again = R.discover_runs([tmp_path])[0][0]
    assert again.name == "r" and again.splits == first.splits == ["test", "val"]
    (folder / "metrics_test.json").write_text("{oops")  # a file rewritten: read again
    runs, problems = R.discover_runs([tmp_path])
    assert runs[0].metrics_splits == ["val"] and [p.skipped for p in problems] == ["test"]


def test_safe_image_path_finds_images_inside_or_outside_the_root_and_nothing_else(tmp_path):
    (tmp_path / "root" / "images").mkdir(parents=True)
    (tmp_path / "root" / "images" / "1.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    root = tmp_path / "root"
    (tmp_path / "notes.txt").write_text("x")
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    assert R.safe_image_path(root, "images/1.jpg") == (root / "images" / "1.jpg").resolve()
    # a manifest may name images outside its folder, by ../, an absolute path or a link
    for path in ("../secret.jpg", "images/../../secret.jpg", str(tmp_path / "secret.jpg"), "link.jpg"):
        assert R.safe_image_path(root, path) == (tmp_path / "secret.jpg").resolve()
    assert R.safe_image_path(root, "../notes.txt") is None  # not an image: the gallery never opens it
    assert R.safe_image_path(root, "images/missing.jpg") is None
    assert R.safe_image_path(None, "images/1.jpg") is None


def test_results_table_best_run_and_bars(runs_dir):
    metrics = {n: R.load_metrics(runs_dir / n / "metrics_val.json") for n in ("a", "b", "fer")}
    values, cis = report.results_table(metrics)
    assert values.at["a", "Accuracy"] == pytest.approx(metrics["a"]["accuracy"])
    assert np.isnan(values.at["fer", "Valence RMSE"])
    lo, hi = cis.at["a", "Accuracy"]
    assert lo <= values.at["a", "Accuracy"] <= hi
    shown = report.display_table(values, cis)  # numbers underneath, so that sorting by a column sorts by value
    assert shown.data.equals(values)
    header, *rows = shown.to_string(delimiter="|").splitlines()
    cells = {row.split("|")[0]: dict(zip(header.split("|")[1:], row.split("|")[1:])) for row in rows}
    assert cells["a"]["Accuracy"] == f"{values.at['a', 'Accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"
    assert cells["fer"]["Valence RMSE"] == "–"
    assert report.best_run(values.loc[["a", "b"]], "Accuracy") == "a"  # higher skill wins
    assert report.best_run(values.loc[["a", "b"]], "Valence RMSE") == values.loc[["a", "b"], "Valence RMSE"].idxmin()
    fig = report.bar_figure(values, cis, ["Valence RMSE", "Valence CCC"], "va")
    assert {t.name for t in fig.data} == {"a", "b"}  # the FER+ run has nothing to draw here
    many = pd.concat([values.loc[["a"]].rename(index={"a": f"run{i}"}) for i in range(report.MAX_BARS + 1)])
    many_cis = pd.concat([cis.loc[["a"]].rename(index={"a": f"run{i}"}) for i in range(report.MAX_BARS + 1)])
    dots = report.bar_figure(many, many_cis, ["Accuracy", "Valence RMSE"], "t")  # too many runs for bars
    assert [t.type for t in dots.data] == ["scatter", "scatter"] and list(dots.data[0].y) == list(many.index)
    assert dots.data[0].error_x.arrayminus[0] == pytest.approx(values.at["a", "Accuracy"] - lo)
    assert [a.text for a in dots.layout.annotations] == ["Accuracy", "Valence RMSE ↓"]
    long = many.rename(index=lambda r: f"resnet50-affectnet-lr{r}-wd0.05-mixup0.2-seed1")  # alike where cut short
    rows = report.bar_figure(long, many_cis.rename(index=lambda r: f"resnet50-affectnet-lr{r}-wd0.05-mixup0.2-seed1"),
                             ["Accuracy"], "t").data[0].y
    assert len(set(rows)) == len(long)  # a row each


def test_results_table_shows_the_ferplus_paper_rule_where_a_run_has_it():
    paper = {"n": 9, "accuracy": 7 / 9, "ci95": [0.45, 0.94]}
    affectnet = {"accuracy": 0.5, "ci95": {"accuracy": [0.4, 0.6]}}
    values, cis = report.results_table({"a": affectnet})
    assert "Accuracy (FER+ paper's rule)" not in values  # an empty column is left out
    values, cis = report.results_table({"a": affectnet, "fer": {"accuracy": 0.7, "ferplus_paper_rule": paper}})
    assert values.at["fer", "Accuracy (FER+ paper's rule)"] == pytest.approx(7 / 9)
    assert cis.at["fer", "Accuracy (FER+ paper's rule)"] == (0.45, 0.94)
    assert cis.at["a", "Accuracy"] == (0.4, 0.6) and cis.at["fer", "Accuracy"] is None
    assert "Accuracy (FER+ paper's rule)" in report.COLUMN_HELP


def test_latex_table_bolds_the_best_run_per_metric(runs_dir):
    metrics = {n: R.load_metrics(runs_dir / n / "metrics_val.json") for n in ("a", "b", "fer")}
    values, cis = report.results_table(metrics)
    values = values.rename(index={"fer": "fer_plus & co"})
    cis = cis.rename(index={"fer": "fer_plus & co"})
    tex = report.latex_table(values, cis, "Results on val_split")
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table}[t]" and r"\caption{Results on val\_split}" in lines
    assert r"\begin{tabular}{lccc}" in lines and lines[-1] == r"\end{table}"
    assert "Metric & a & b & fer\\_plus \\& co \\\\" in lines  # names escaped
    acc = next(line for line in lines if line.startswith("Accuracy &")).rstrip(" \\").split(" & ")[1:]
    lo, hi = cis.at["a", "Accuracy"]
    assert acc[0] == rf"\textbf{{{values.at['a', 'Accuracy']:.3f} [{lo:.3f}, {hi:.3f}]}}"  # a has the most skill
    assert not any(c.startswith(r"\textbf") for c in acc[1:])
    rmse = next(line for line in lines if line.startswith("Valence RMSE &")).rstrip(" \\").split(" & ")[1:]
    best = values.loc[["a", "b"], "Valence RMSE"].idxmin()  # lower is better
    assert rmse[["a", "b"].index(best)].startswith(r"\textbf") and rmse[2] == "--"  # FER+ has no valence
    assert r"\resizebox{\linewidth}{!}{%" in lines  # three runs' intervals: scaled to fit the column
    assert r"\resizebox" not in report.latex_table(values.iloc[:2], cis.iloc[:2], "t")
    # images per run: a row of their own where they differ (the caption gives n where they agree)
    rows = report.latex_table(values, cis, "t", n=dict(zip(values.index, (300, 3199, 300)))).splitlines()
    assert rows[rows.index(r"\midrule") + 1] == r"Images & 300 & 3{,}199 & 300 \\"
    assert "Images" not in report.latex_table(values, cis, "t", n=dict.fromkeys(values.index, 300))
    tied = values.assign(Accuracy=0.41323)  # three runs right on as many images: all three bold
    acc = next(ln for ln in report.latex_table(tied, cis, "t").splitlines() if ln.startswith("Accuracy &"))
    assert acc.count(r"\textbf") == 3
    # runs on other data (FER+ beside AffectNet) are not ranked against each other: each group its own best
    fer = values.index[2]
    groups = report.ranked_groups({("affectnet", "/a"): ["a", "b"], ("ferplus", "/f"): [fer]},
                                  {"a": ["1", "2"], "b": ["2", "1"], fer: ["x"]})
    assert groups == [["a", "b"], [fer]]
    high = values.assign(Accuracy=[0.5, 0.4, 0.9])  # fer's 0.9 would be bold over all three
    acc = next(ln for ln in report.latex_table(high, cis, "t", groups=groups).splitlines()
               if ln.startswith("Accuracy &")).rstrip(" \\").split(" & ")[1:]
    assert [c.startswith(r"\textbf") for c in acc] == [True, False, False]
    assert "bold: the best value among the runs scored on the same images" in report.latex_caption(
        "test", [{"n": 320}], grouped=True)
    pooled = [{"n": 3199, "folds": ["f1", "f2", "f3", "f4", "f5"]}] * 2
    assert report.latex_caption("test", pooled).startswith("Results on 5-fold cross-validation, every image predicted "
                                                           "by the fold that did not train on it (n = 3,199).")
    assert report.latex_caption("test", [{"n": 320}]).startswith("Results on the test split (n = 320). In brackets")
    # an ensemble of two cross-validations names no folds in its metrics: its config says what it is
    cv = {"split": {"source": "cross-validation", "folds": 5}}
    assert report.latex_caption("test", [pooled[0], {"n": 3199}], configs=[cv, cv]).startswith(
        "Results on 5-fold cross-validation")
    assert report.latex_caption("test", [pooled[0], {"n": 3199}], configs=[cv, {}]).startswith(
        "Results on the test split (n = 3,199)")


def test_history_and_confusion_figures(runs_dir):
    hist = {n: R.load_history(runs_dir / n / "history.csv") for n in ("a", "fer")}
    assert hist["a"]["train_loss"].iloc[-1] < hist["a"]["train_loss"].iloc[0]
    assert len(report.history_figure(hist, "Loss").data) == 4
    assert [t.name for t in report.history_figure(hist, "Valence RMSE").data] == ["a"]
    assert report.history_figure({"fer": hist["fer"]}, "Arousal RMSE") is None
    starred = report.history_figure(hist, "Accuracy", best={"a": 3})
    star = [t for t in starred.data if t.marker.symbol == "star"]  # on a's validation line at epoch 3, only there
    assert len(star) == 1 and list(star[0].x) == [3] and star[0].y[0] == hist["a"].set_index("epoch")["val_acc"][3]
    cm = R.load_metrics(runs_dir / "a" / "metrics_val.json")["confusion"]
    z = np.array(report.confusion_figure(cm, normalise=True).data[0].z)
    assert np.allclose(z.sum(axis=1), 1)
    assert list(report.confusion_figure(cm).data[0].x) == CLASSES
    table = report.per_class_table(R.load_metrics(runs_dir / "a" / "metrics_val.json"))
    assert list(table.index) == CLASSES and table["support"].sum() == 300
    # a class without images (FER2013's Contempt): a blank row of shares, and "–" where the table has no figure
    seven = [row[:7] + [1] for row in cm[:7]] + [[0] * 8]
    fig = report.confusion_figure(seven, normalise=True).data[0]
    assert np.isnan(np.array(fig.z[7], dtype=float)).all() and list(fig.text[7]) == [""] * 8
    assert np.allclose(np.array(fig.z[:7]).sum(axis=1), 1)
    shares, counts = report.confusion_table(seven, True), report.confusion_table(seven)  # the heat map as a table
    assert np.allclose(shares.to_numpy()[:7], np.array(fig.z[:7]), atol=5e-4) and shares.loc["Contempt"].isna().all()
    assert counts.to_numpy().tolist() == seven and list(counts.columns) == CLASSES
    text = report.as_text(table.assign(recall=table["recall"].where(table.index != "Contempt")))
    assert text.at["Contempt", "recall"] == "–" and text.at["Happy", "support"] == str(table.at["Happy", "support"])
    assert text.at["Happy", "recall"] == f"{table.at['Happy', 'recall']:.3f}"


def test_exact_aucs_read_the_metrics_file(runs_dir):
    m = R.load_metrics(runs_dir / "a" / "metrics_val.json")
    for kind, key in (("roc", "roc_auc"), ("pr", "pr_auc")):
        expected = {c: v[key] for c, v in m["per_class"].items() if v[key] is not None} | {"macro": m[f"{key}_macro"]}
        assert report_roc.exact_aucs(m, kind) == expected
    assert report_roc.exact_aucs(m, "pr") != report_roc.exact_aucs(m, "roc")


@pytest.mark.parametrize("n", [400, 60_000])  # exact path and the binned path for large frames
def test_roc_curves_match_sklearn_auc(n):
    rng = np.random.default_rng(0)
    pred = make_predictions(np.arange(n), rng.integers(0, 8, n), skill=1.5, has_va=True, seed=0,
                            path_fmt="{id}.jpg")
    roc = report_roc.class_curves(pred, "roc")
    for k, name in enumerate(CLASSES):
        exact = roc_auc_score(pred["true"] == k, pred[f"prob_{k}"])
        assert roc[name][2] == pytest.approx(exact, abs=2e-3)
        assert len(roc[name][0]) <= 400
    # the macro curves: the mean over classes of scikit-learn's curves, read at the same false-positive rates/recalls
    y = pred["true"].to_numpy()
    mean_roc = np.mean([np.interp(report_roc.GRID, *roc_curve(y == k, pred[f"prob_{k}"])[:2]) for k in range(8)], 0)
    assert roc["macro"][1] == pytest.approx(mean_roc, abs=0.01)
    pr = report_roc.class_curves(pred, "pr")
    assert set(pr) == {*CLASSES, "macro"}
    for k, name in enumerate(CLASSES):
        prec, rec, _ = precision_recall_curve(y == k, pred[f"prob_{k}"])
        assert list(pr[name][0]) == sorted(pr[name][0])  # recall rising, as drawn
        assert pr[name][2] == pytest.approx(auc(rec, prec), abs=2e-3)
    mean_ap = np.mean([average_precision_score(y == k, pred[f"prob_{k}"]) for k in range(8)])
    assert pr["macro"][2] == pytest.approx(mean_ap, abs=0.02)
    fig = report_roc.curve_figure(roc, "roc", "t", {"Happy": 0.5})
    assert "Happy (AUC 0.500)" in [t.name for t in fig.data]
    with pytest.raises(ValueError):
        report_roc.class_curves(pred, "det")
    both = report_roc.macro_figure({"a": roc, "b": {}}, "roc", {"a": "#123456"}, {"a": 0.75})
    assert [t.name for t in both.data] == ["a (AUC 0.750)", "chance"]  # b has no macro curve: left out
    assert list(both.data[0].y) == pytest.approx(list(roc["macro"][1])) and both.data[0].line.color == "#123456"
    seven = {k: v for k, v in pr.items() if k != "Contempt"}  # data without Contempt: 7 classes drawn
    chance = [t for t in report_roc.curve_figure(seven, "pr", "t").data if t.name.startswith("chance")]
    assert chance[0].name == "chance (macro: 1/7)" and list(chance[0].y) == pytest.approx([1 / 7, 1 / 7])
    assert report_roc.macro_figure({"a": pr}, "pr", {}).data[-1].name == "chance (macro: 1/8)"
    mixed = report_roc.macro_figure({"a": pr, "b": seven}, "pr", {})  # runs scored on 8 and on 7 classes
    assert [t.name for t in mixed.data if t.name.startswith("chance")] == ["chance (macro: 1/7)", "chance (macro: 1/8)"]


def test_va_figures_sample_large_frames():
    n = 12_000
    pred = make_predictions(np.arange(n), np.random.default_rng(1).integers(0, 8, n), skill=1.0, has_va=True,
                            seed=1, path_fmt="{id}.jpg")
    fig = V.scatter_figure(pred, "r", max_points=5000)
    assert len(fig.data[0].x) == 5000 and "random 5,000 of 12,000" in fig.layout.title.text
    assert fig.data[0].type == "scattergl"
    circ = V.circumplex_figure(pred, "r", max_points=1000)
    assert sum(len(t.x) for t in circ.data if t.type == "scattergl") == 2000  # annotated + predicted
    err = V.error_figure({"r": pred})
    assert len(err.data[0].x) == 60  # binned here, not raw rows
    assert err.data[0].y.sum() == pytest.approx(1, abs=1e-3)


def test_va_shrinkage_and_the_classes_places_are_measured():
    rng = np.random.default_rng(5)
    true = np.repeat(np.arange(8), 50)
    t = rng.uniform(-1, 1, (400, 2))
    pred = pd.DataFrame({"id": np.arange(400).astype(str), "true": true, "pred": true,
                         "valence_true": t[:, 0], "arousal_true": t[:, 1],
                         "valence_pred": 0.5 * t[:, 0] + 0.1, "arousal_pred": t[:, 1]})
    s = V.shrinkage(pred, "valence")
    assert s["slope"] == pytest.approx(0.5) and s["sd_ratio"] == pytest.approx(0.5) and len(s["true"]) == 10
    assert np.allclose(s["pred"], 0.5 * np.array(s["true"]) + 0.1)  # the mean prediction in each tenth
    assert V.shrinkage(pred, "arousal")["slope"] == pytest.approx(1.0)
    pred.loc[:49, "valence_true"] = np.nan  # valence missing on 50 rows: each panel draws the rows annotated on it
    fig = V.scatter_figure(pred, "r")
    assert [len(tr.x) for tr in fig.data if tr.type == "scattergl"] == [350, 400]
    assert "valence: all 350 samples; arousal: all 400 samples" in fig.layout.title.text
    assert sum(bool(tr.name and "tenth" in tr.name) for tr in fig.data) == 2  # one line a panel
    assert "slope 0.50 = r 1.00 × SD ratio 0.50" in [a.text for a in fig.layout.annotations]
    table = V.per_class_table(pred)
    assert list(table.index) == CLASSES and table["n"].tolist() == [50] * 8
    # Neutral's 50 rows lost their valence above: no mean prediction of it either, over rows not annotated
    assert table.loc["Neutral", ["valence annotated", "valence predicted"]].isna().all()
    assert table.loc["Neutral", ["arousal annotated", "arousal predicted"]].notna().all()
    happy = pred[pred["true"] == 1]
    assert table.loc["Happy", "valence predicted"] == pytest.approx(happy["valence_pred"].mean())
    assert table.loc["Happy", "arousal CCC"] == pytest.approx(1.0) and table.loc["Happy", "arousal RMSE"] == 0


def test_misclassified_filters_sort_and_paging():
    pred = make_predictions(np.arange(500), np.random.default_rng(2).integers(0, 8, 500), skill=0.8,
                            has_va=False, seed=2, path_fmt="{id}.jpg")
    wrong = E.misclassified(pred)
    assert len(wrong) == int((pred["pred"] != pred["true"]).sum())
    assert wrong["confidence"].is_monotonic_decreasing
    fear = E.misclassified(pred, true_class=4, pred_class=3, sort="Least confident mistakes first")
    assert (fear["true_name"] == "Fear").all() and (fear["pred_name"] == "Surprise").all()
    assert fear["confidence"].is_monotonic_increasing
    by_id = E.misclassified(pred, sort="ID")
    assert by_id["id"].astype(int).is_monotonic_increasing
    pred["id"] = [f"Test/fer{int(i):07d}" if k % 2 else str(i) for k, i in enumerate(pred["id"])]  # FER+ beside
    by_id = E.misclassified(pred, sort="ID")  # the gallery orders ids as the disagreement page does
    assert list(by_id["id"]) == E.natural_sorted(by_id["id"])
    assert by_id["id"].str.extract(r"(\d+)$")[0].astype(int).is_monotonic_increasing


def test_largest_valence_arousal_errors():
    pred = make_predictions(np.arange(300), np.random.default_rng(3).integers(0, 8, 300), skill=0.8,
                            has_va=True, seed=3, path_fmt="{id}.jpg")
    pred.loc[5, "valence_true"] = np.nan  # not annotated: left out
    rows = E.va_errors(pred, "valence")
    assert len(rows) == 299 and "5" not in set(rows["id"])
    assert rows["abs_error"].is_monotonic_decreasing
    first = pred.set_index("id").loc[rows["id"].iloc[0]]
    assert rows["error"].iloc[0] == pytest.approx(first["valence_pred"] - first["valence_true"])
    assert rows["abs_error"].iloc[0] == pytest.approx((pred["valence_pred"] - pred["valence_true"]).abs().max())
    assert (rows["pred"] == rows["true"]).any() and (rows["pred"] != rows["true"]).any()  # right class or wrong
    high = E.va_errors(pred, "arousal", true_class=1, sort="Predicted too high first")
    assert (high["true_name"] == "Happy").all() and high["error"].is_monotonic_decreasing
    assert E.va_errors(pred, "arousal", sort="Predicted too low first")["error"].is_monotonic_increasing
    assert list(E.va_errors(pred, "valence", sort="ID")["id"].astype(int)) == sorted(set(range(300)) - {5})
    assert E.va_errors(pred.assign(valence_true=np.nan), "valence").empty  # FER+: no annotations
    summary = E.va_error_summary(rows)
    err = (pred["valence_pred"] - pred["valence_true"]).dropna()
    assert summary["rmse"] == pytest.approx(np.sqrt((err ** 2).mean())) and summary["bias"] == pytest.approx(err.mean())
    with pytest.raises(ValueError, match="valence or arousal"):
        E.va_errors(pred, "dominance")
    assert E.annotated_dims(pred) == ["valence", "arousal"]
    assert E.annotated_dims(pred.assign(valence_pred=np.nan)) == ["arousal"]  # a model without a valence head
    assert E.annotated_dims(pred.drop(columns=["valence_true", "arousal_true"])) == []


def test_the_classes_a_run_shows():
    pred = make_predictions(np.arange(200), np.arange(200) % 7, skill=2.0, has_va=False, seed=4, path_fmt="{id}.jpg")
    pred["pred"] = pred["pred"].where(pred["pred"] != 7, 0)  # a 7-class model never answers Contempt
    assert E.classes_seen(pred) == list(range(7))
    assert E.classes_seen(pred, pred.assign(pred=7)) == list(range(8))  # another run that calls Contempt


def test_misclassified_with_fer_plus_votes():
    pred = pd.DataFrame({"id": ["Test/a", "Test/b", "Test/c", "Test/d"], "path": ["a", "b", "c", "d"],
                         "true": [0, 1, 2, 3], "pred": [1, 1, 0, 0]})
    for k in range(8):
        pred[f"prob_{k}"] = [0.9 if k == p else 0.1 / 7 for p in pred["pred"]]
    pred.loc[3, "prob_0"], pred.loc[3, "prob_3"] = 0.5, 0.4 + 0.1 / 7
    votes = pd.DataFrame(0.0, index=["Test/a", "Test/b", "Test/c", "Test/d"], columns=[*CLASSES, "unknown", "not a face"])
    votes.loc["Test/a", ["Neutral", "Happy", "unknown"]] = [6, 3, 1]
    votes.loc["Test/c", ["Sad", "Neutral"]] = [9, 1]
    votes.loc["Test/d", ["Surprise", "Neutral"]] = [5, 5]
    wrong = E.misclassified(pred, votes=votes, sort="Most annotators agreeing with the prediction first")
    assert list(wrong["id"]) == ["Test/d", "Test/a", "Test/c"]  # 5, 3 and 1 votes for the predicted class
    assert list(wrong["votes"]) == ["Neutral 5, Surprise 5", "Neutral 6, Happy 3, unknown 1", "Sad 9, Neutral 1"]
    assert E.plausible_mistakes(wrong) == (2, 3)  # one annotator alone is an outlier in FER+'s protocol
    unknown = E.misclassified(pred, votes=votes.drop(index="Test/a"))  # an image without votes: none shown
    assert unknown.set_index("id").at["Test/a", "votes"] == "" and E.plausible_mistakes(unknown) == (1, 2)
    with pytest.raises(ValueError, match="needs FER\\+ votes"):
        E.misclassified(pred, sort="Most annotators agreeing with the prediction first")


def test_load_predictions_names_what_is_wrong_with_a_file(tmp_path):
    good = make_predictions(np.arange(20), np.arange(20) % 8, skill=1.0, has_va=True, seed=0, path_fmt="{id}.jpg")
    cases = {"nan": good.assign(prob_0=np.where(good.index == 3, np.nan, good["prob_0"])),
             "sum": good.assign(prob_0=np.where(good.index == 4, good["prob_0"] + 0.05, good["prob_0"])),  # 1.05
             "class": good.assign(pred=np.where(good.index == 2, 9, good["pred"])),
             "twice": pd.concat([good, good.iloc[:1]]), "empty": good.iloc[:0], "columns": good.drop(columns="prob_7"),
             "va": good.assign(valence_true=np.where(good.index < 3, -2.0, good["valence_true"]))}  # AffectNet's -2
    says = {"nan": "probabilities that are not finite", "sum": "do not sum to 1", "class": "outside 0-7",
            "twice": "an image id twice", "empty": "no rows", "columns": "lacks columns prob_7",
            "va": r"3 valence/arousal values outside \[-1, 1\] \(e.g. -2\); a value not annotated is an empty cell"}
    for case, df in cases.items():
        df.to_csv(tmp_path / f"{case}.csv", index=False)
        with pytest.raises(ValueError, match=f"{case}.csv: .*{says[case]}"):
            R.load_predictions(tmp_path / f"{case}.csv")
    (tmp_path / "text.csv").write_text("id,path,true\n1,a.jpg,happy\n")
    with pytest.raises(ValueError, match="text.csv: not a predictions file the engine writes"):
        R.load_predictions(tmp_path / "text.csv")
    good.to_csv(tmp_path / "good.csv", index=False)
    assert len(R.load_predictions(tmp_path / "good.csv")) == 20


def test_find_sample_by_id():
    pred = pd.DataFrame({"id": ["635", "6350", "Test/fer0000635"], "true": [0, 1, 2]})
    assert list(E.find_sample(pred, " 635 ")["id"]) == ["635"]
    assert list(E.find_sample(pred.iloc[1:], "635")["id"]) == ["Test/fer0000635"]
    assert E.find_sample(pred, "nope").empty and E.find_sample(pred, "").empty
    assert list(E.find_sample(pred, "fer0000635")["id"]) == ["Test/fer0000635"]  # without its split's prefix


def test_disagreement_tables():
    ids = [str(i) for i in range(6)]
    true = [0, 1, 2, 3, 4, 5]
    frame = lambda pred: pd.DataFrame({"id": ids, "true": true, "pred": pred})  # noqa: E731
    preds = {"x": frame([0, 1, 2, 0, 0, 0]), "y": frame([0, 0, 2, 3, 0, 0]), "z": frame([0, 1, 0, 3, 0, 1]),
             "other": pd.DataFrame({"id": ["Test/a"], "true": [0], "pred": [0]})}
    kept, left_out = E.comparable_runs(preds)
    assert kept == ["x", "y", "z"] and left_out == ["other"]
    relabelled = {**preds, "relabelled": frame([0, 1, 2, 3, 4, 5]).assign(true=[0, 1, 2, 3, 4, 0])}
    assert E.comparable_runs(relabelled) == (["x", "y", "z"], ["other", "relabelled"])  # right means another thing
    corr = E.correctness({k: preds[k] for k in kept})
    summary = E.disagreement_summary(corr)
    assert list(summary["all_wrong"]["id"]) == ["4", "5"]
    assert dict(zip(summary["only_one_wrong"]["id"], summary["only_one_wrong"]["wrong run"])) == {
        "1": "y", "2": "z", "3": "x"}
    pairs = E.pairwise_table(corr).set_index(["run A", "run B"])
    assert pairs.loc[("x", "y"), "A right, B wrong"] == 1 and pairs.loc[("x", "y"), "B right, A wrong"] == 1
    assert pairs.loc[("x", "y"), "McNemar p"] == 1.0  # one each way: no evidence either is better
    assert E.pair_ids(corr, "x", "z") == ["2"]
    assert (pairs["Holm p"] >= pairs["McNemar p"]).all()
    assert set(pairs["verdict"]) == {"within noise"}  # six samples: nothing stands out from chance
    # 40 samples, 20 of which only the second run gets right: Holm p well below 0.05, and it is named
    n = 40
    right = pd.DataFrame({"id": [str(i) for i in range(n)], "true": [0] * n, "pred": [0] * n})
    corr = E.correctness({"old": right.assign(pred=[1] * 20 + [0] * 20), "new": right})
    assert E.pairwise_table(corr)["verdict"].tolist() == ["B better"]


def test_runs_within_noise_of_the_best_are_those_mcnemar_cannot_tell_from_it():
    n = 320
    best = pd.Series([True] * 170 + [False] * 150, index=[str(i) for i in range(n)])
    close, near, far = best.copy(), best.copy(), best.copy()
    close.iloc[:15] = False  # 15 images only the best gets right, 5 only this one: exact McNemar p = 0.041
    close.iloc[170:175] = True
    near.iloc[:14] = False  # 14 to 5: p = 0.064
    near.iloc[170:175] = True
    far.iloc[:40] = False  # 40 to 0: p < 1e-11
    same = best.sample(frac=1, random_state=0)  # the same answers, in another order
    # each pair on its own: the other runs chosen do not change whether "close" is told apart
    assert report.runs_within_noise({"best": best, "close": close}, "best") == []
    tied = report.runs_within_noise({"best": best, "close": close, "near": near, "far": far, "same": same}, "best")
    assert tied == ["near", "same"]


def test_a_class_has_one_colour_on_every_chart():
    from fer_core.labels import class_colour
    from fer_core.report_live import prob_figure
    from fer_core.report_roc import curve_figure
    from fer_core.report_va import circumplex_figure

    roc = curve_figure({"Happy": ([0, 1], [0, 1], 0.5), "macro": ([0, 1], [0, 1], 0.5)}, "roc", "t")
    pred = pd.DataFrame({"id": ["a"], "true": [1], **{f"{d}_{p}": [0.1] for d in ("valence", "arousal")
                                                      for p in ("true", "pred")}})
    live = prob_figure({"probs": [0.1] * 8, "label_name": "Happy", "confidence": 0.1}, CLASSES)
    assert roc.data[0].line.color == circumplex_figure(pred, "r").data[0].marker.color == live.data[0].marker.color[1]
    assert roc.data[0].line.color == class_colour(1)


def test_valence_arousal_count_only_where_both_annotations_and_predictions_exist():
    from fer_core.report_va import has_va

    frame = pd.DataFrame({"valence_true": [0.1], "arousal_true": [0.2], "valence_pred": [0.3], "arousal_pred": [0.1]})
    assert has_va(frame)
    assert not has_va(frame.assign(valence_pred=float("nan"), arousal_pred=float("nan")))  # an untrained head
    assert not has_va(frame.assign(valence_true=float("nan"), arousal_true=float("nan")))  # data without them
    from fer_core.report_va import no_va_reason

    assert no_va_reason(frame) is None
    assert no_va_reason(frame.assign(valence_pred=float("nan"), arousal_pred=float("nan"))) == "untrained"
    assert no_va_reason(frame.assign(valence_true=float("nan"), arousal_true=float("nan"))) == "unannotated"


def test_valence_arousal_table_gives_each_figure_with_its_interval():
    from fer_core.report_va import va_summary_table

    m = {"valence": {"ccc": 0.6526, "r2": 0.38}, "arousal": None, "ci95": {"valence_ccc": [0.571, 0.722]}}
    table = va_summary_table({"run": m})
    assert table.at["Valence CCC", "run"] == "0.653 [0.571, 0.722]" and table.at["Valence R²", "run"] == "0.380"
    assert table.at["Arousal CCC", "run"] == "–"


def test_run_pairs_are_compared_on_the_images_both_evaluated():
    frame = lambda ids, pred: pd.DataFrame({"id": ids, "true": [0] * len(ids), "pred": pred})  # noqa: E731
    six = [str(i) for i in range(6)]
    corr = E.correctness({"pooled-a": frame(six, [0, 0, 1, 1, 0, 0]), "pooled-b": frame(six, [0, 1, 0, 1, 1, 1]),
                          "fold": frame(six[:3], [1, 1, 1])})  # one fold's test images: half of them
    pairs = E.pairwise_table(corr).set_index(["run A", "run B"])
    assert pairs.loc[("pooled-a", "pooled-b"), "images"] == 6  # not only the 3 the fold shares
    assert pairs.loc[("pooled-a", "pooled-b"), ["A right, B wrong", "B right, A wrong"]].tolist() == [3, 1]
    assert pairs.loc[("pooled-a", "fold"), "images"] == 3
    summary = E.disagreement_summary(corr)  # every run wrong / one run wrong: on the images all three evaluated
    assert list(summary["all_wrong"]["id"]) == [] and list(summary["only_one_wrong"]["id"]) == ["0"]
    assert E.pair_ids(corr, "pooled-a", "pooled-b") == ["1", "4", "5"]


def test_holm_adjusts_p_values_for_the_number_tested_together():
    # by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04, then kept non-decreasing
    assert E.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert E.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and E.holm([0.2]) == pytest.approx([0.2])


def test_metrics_fixture_is_consistent(runs_dir):
    m = json.loads((runs_dir / "a" / "metrics_val.json").read_text())
    pred = R.load_predictions(runs_dir / "a" / "predictions_val.csv")
    assert m["accuracy"] == pytest.approx((pred["pred"] == pred["true"]).mean())
    assert np.array(m["confusion"]).sum() == len(pred) == m["n"]


def test_live_figures_show_the_prediction():
    from fer_core.labels import CLASSES
    from fer_core.report_live import live_circumplex_figure, prob_figure

    probs = [0.05, 0.6, 0.05, 0.05, 0.05, 0.1, 0.05, 0.05]
    r = {"probs": probs, "label_name": "Happy", "confidence": 0.6, "valence": 0.4, "arousal": -0.2}
    bars = prob_figure(r, CLASSES)
    assert list(bars.data[0].x) == probs and list(bars.data[0].y) == CLASSES
    assert "Happy (60%)" in bars.layout.title.text
    circ = live_circumplex_figure([r])
    assert list(circ.data[0].x) == [0.4] and list(circ.data[0].y) == [-0.2]
    import math

    # a label near the right edge goes to the point's left; the quadrants are named outside the unit circle
    edge = live_circumplex_figure([r, {**r, "valence": 0.95}, {**r, "valence": -0.9}])
    assert list(edge.data[0].textposition) == ["top center", "top left", "top right"]
    assert all(math.hypot(a.x, a.y) > 1.4 for a in edge.layout.annotations)


def test_confusion_difference_is_a_minus_b_in_row_shares():
    a = [[8, 2] + [0] * 6, [0, 5] + [0] * 6] + [[0] * 8] * 6  # class 0: 8 of 10 right; class 1: 5 of 5
    b = [[5, 5] + [0] * 6, [1, 4] + [0] * 6] + [[0] * 8] * 6  # class 0: 5 of 10 right; class 1: 4 of 5
    fig = report.confusion_difference_figure(a, b, "new", "old")
    z = np.asarray(fig.data[0].z)  # coloured by what favours "new": more right, fewer of a mistake
    assert z[0, 0] == pytest.approx(0.3) and z[0, 1] == pytest.approx(0.3) and z[1, 0] == pytest.approx(0.2)
    assert np.isnan(z[2:]).all() and set(np.ravel(fig.data[0].text[2:])) == {""}  # classes without images: blank
    # 5 images of a class: a share moves by about ±0.35 by chance, so the colours saturate only at twice that
    assert fig.data[0].zmin == -fig.data[0].zmax == pytest.approx(-2 * 0.32583, abs=1e-4)  # Wilson, 2 of 5
    big = report.confusion_difference_figure([[r * 100 for r in row] for row in a],
                                             [[r * 100 for r in row] for row in b], "new", "old")
    assert big.data[0].zmax == pytest.approx(0.3)  # 500 images a class: the largest difference sets the scale
    # the cells show how much better "new" does, with the colour's sign; the hover adds the plain new − old
    assert [fig.data[0].text[0][0], fig.data[0].text[0][1]] == ["+0.30", "+0.30"]
    assert fig.data[0].text[0][2] == "+0.00"  # a cell where they agree, not "-0.00"
    near = report.confusion_difference_figure([[997, 3] + [0] * 6] + [[0] * 8] * 7,
                                              [[1000, 0] + [0] * 6] + [[0] * 8] * 7, "new", "old")
    assert near.data[0].text[0][:2] == ["+0.00", "+0.00"]  # -0.003 rounds to 0, not "-0.00"
    assert np.asarray(fig.data[0].customdata)[0, :2] == pytest.approx([0.3, -0.3])
    assert fig.layout.title.text == "A = new vs B = old"


def test_runs_by_sample_count_groups_runs_fewest_first():
    metrics = {"fixed": {"n": 320}, "cv": {"n": 3199}, "ens": {"n": 320}, "old": {}}
    assert report.runs_by_sample_count(metrics, ["cv", "fixed", "ens", "old"]) == {320: ["fixed", "ens"],
                                                                                    3199: ["cv"]}
    assert R.fold_run_names({"fold_runs": [{"run": "artifacts/runs/a-fold1"}, {"run": "/x/a-fold2"}]}) == \
        ["a-fold1", "a-fold2"]
    assert R.fold_run_names({}) == []


def test_runs_sharing_a_folder_name_get_names_that_tell_them_apart(tmp_path):
    for home in ("x", "y"):
        write_run(tmp_path / home / "runs", "hse-best", n=20, n_boot=2)
    write_run(tmp_path / "z", "hse-best", n=20, n_boot=2)
    runs, _ = R.discover_runs([tmp_path / "x" / "runs", tmp_path / "y" / "runs", tmp_path / "z"])
    assert sorted(r.name for r in runs) == ["x/runs/hse-best", "y/runs/hse-best", "z/hse-best"]


def test_fold_runs_prefers_the_folds_beside_the_pooled_folder(tmp_path):
    for home in ("a", "b"):
        write_run(tmp_path / home, "cv-fold1", n=20, n_boot=2)
    write_run(tmp_path / "a", "cv-fold2", n=20, n_boot=2)
    runs, _ = R.discover_runs([tmp_path / "b", tmp_path / "a"])
    pooled = R.Run("cv", tmp_path / "a" / "cv", {"fold_runs": [{"run": f"somewhere/cv-fold{k}"} for k in (1, 2, 3)]})
    found, missing = R.fold_runs(pooled, runs)
    assert [r.path for r in found] == [tmp_path / "a" / "cv-fold1", tmp_path / "a" / "cv-fold2"]
    assert missing == ["cv-fold3"]
    elsewhere = R.Run("cv", tmp_path / "c" / "cv", pooled.config)  # two candidates, neither beside it: not guessed
    assert R.fold_runs(elsewhere, runs) == ([next(r for r in runs if r.path.name == "cv-fold2")], ["cv-fold1", "cv-fold3"])


def test_long_run_names_are_cut_in_the_middle_in_legends_and_many_runs_keep_their_own_colours():
    long = "ablation-" + "x" * 80 + "-seed2"
    label = report.legend_label(long)
    assert len(label) == 36 and label.startswith("ablation-") and label.endswith("-seed2") and "…" in label
    assert report.legend_label("hse-best") == "hse-best"
    fig = report.history_figure({long: pd.DataFrame({"epoch": [1, 2], "val_acc": [0.3, 0.4]})}, "Accuracy")
    assert fig.data[0].name == label
    assert len(set(report.run_colors([f"run{i}" for i in range(30)]).values())) == 30


def test_a_run_keeps_its_colour_on_charts_that_show_only_some_of_the_runs():
    chosen = report.run_colors(["a", "b", "c"])
    assert report.run_colors(["c", "a"], chosen) == {"c": chosen["c"], "a": chosen["a"]}
    extra = report.run_colors(["b", "b (mean of 5 folds)"], chosen)  # a name not chosen: a colour no run has
    assert extra["b"] == chosen["b"] and extra["b (mean of 5 folds)"] not in chosen.values()
    fig = report.bar_figure(pd.DataFrame({"Accuracy": [0.5]}, index=["c"]), pd.DataFrame(), ["Accuracy"], "t", chosen)
    assert fig.data[0].marker.color == chosen["c"]


def test_share_noise_is_the_wilson_half_width_on_the_smallest_class():
    n, noise = report.share_noise([[30, 10], [20, 20], [0, 0]])  # an absent class does not count
    assert n == 40 and noise == pytest.approx(0.148, abs=0.001)
    assert report.share_noise([[300, 100], [200, 200]])[1] == pytest.approx(0.0488, abs=0.001)
    # the smallest class sets it: 5 images, where 2 of 5 has the Wilson half-width 1.96 * sqrt(0.4 * 0.6 / 5 +
    # 1.96^2 / 100) / (1 + 1.96^2 / 5)
    n, noise = report.share_noise([[8, 2], [0, 5]])
    assert n == 5 and noise == pytest.approx(0.32583, abs=1e-4)


def test_quiet_seconds_counts_from_the_newest_training_file(tmp_path):
    import os

    for name, t in (("history.csv", 1000.0), ("train.log", 1600.0), ("config.json", 1200.0)):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (t, t))
    assert R.quiet_seconds(R.Run("r", tmp_path, {}), now=2000.0) == 400.0


def test_mean_history_averages_folds_epoch_by_epoch():
    one = pd.DataFrame({"epoch": [1, 2, 3], "val_acc": [0.3, 0.4, 0.5], "lr": [1e-3, 5e-4, 1e-4]})
    two = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.5, 0.6], "lr": [1e-3, 5e-4]})  # stopped early
    mean = report.mean_history([one, two])
    assert mean["epoch"].tolist() == [1, 2, 3]
    assert mean["val_acc"].tolist() == pytest.approx([0.4, 0.5, 0.5])
    assert mean["val_acc_min"].tolist() == pytest.approx([0.3, 0.4, 0.5])
    assert mean["val_acc_max"].tolist() == pytest.approx([0.5, 0.6, 0.5])
    fig = report.history_figure({"cv (mean of 2 folds)": mean}, "Accuracy")
    band = [t for t in fig.data if t.fill == "tonexty"]  # the folds' range behind the mean line
    assert len(band) == 1 and list(band[0].y) == pytest.approx([0.3, 0.4, 0.5])


def test_training_progress_says_how_far_a_run_is_and_when_it_went_quiet():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "seconds": [90.0, 30.0, 32.0, 28.0]})
    config = {"status": "running", "args": {"epochs": 12}}
    p = report.training_progress(config, history, quiet_s=10)
    assert (p["done"], p["total"], p["fraction"], p["stale"]) == (4, 12, 4 / 12, False)
    assert p["text"] == "epoch 4 of 12 done, 30 s per epoch: about 4 min left"  # 8 x 30 s, 10 s of them gone
    assert report.training_progress(config, history, quiet_s=239)["text"].endswith("per epoch: under a minute left")
    quiet = report.training_progress(config, history, quiet_s=601)  # three epochs' time is 90 s: ten minutes rule
    assert quiet["stale"] and quiet["text"].startswith("epoch 4 of 12 done. Nothing written for about 10 min: ")
    assert "--resume" in quiet["text"] and "left" not in quiet["text"]
    assert not report.training_progress(config, history, quiet_s=599)["stale"]
    long_ago = report.training_progress(config, history, quiet_s=400 * 86400, run_dir="runs/r1")["text"]
    assert "Nothing written for about 400 days" in long_ago and "--resume runs/r1`" in long_ago
    assert "about 3 h" in report.training_progress(config, history, quiet_s=3 * 3600)["text"]
    done = report.training_progress({"status": "running", "args": {"epochs": 4}}, history, quiet_s=5)
    assert done["fraction"] == 1.0 and done["text"] == "all 4 epochs done: scoring the best epoch on val and test"
    assert report.training_progress({**config, "status": "finished"}, history, quiet_s=5) is None
    assert report.training_progress(config, None, quiet_s=5)["text"] == "first epoch under way"


def test_paired_table_verdicts_follow_the_interval_and_the_metric_direction():
    result = {"metrics": {
        "accuracy": {"a": 0.5, "b": 0.4, "diff": 0.1, "ci95": [0.05, 0.15]},
        "macro_f1": {"a": 0.5, "b": 0.49, "diff": 0.01, "ci95": [-0.02, 0.04]},
        "valence_rmse": {"a": 0.3, "b": 0.4, "diff": -0.1, "ci95": [-0.15, -0.05]},
        "arousal_rmse": {"a": 0.4, "b": 0.3, "diff": 0.1, "ci95": [0.05, 0.15]},
        "cohen_kappa": {"a": 0.45, "b": 0.43, "diff": 0.02, "ci95": [0.0004, 0.05]},
        "valence_ccc": {"a": 0.6, "b": 0.59, "diff": 0.01, "ci95": [0.0, 0.02]}},
        "a_only_right": 40, "b_only_right": 8, "mcnemar_p": 2e-6}
    table = E.paired_table(result, "new", "old").set_index("metric")
    # an end that three decimals would round to 0.000 keeps its sign visible, as the verdict rests on it
    assert table.loc["Cohen's kappa", ["95% CI", "verdict"]].tolist() == ["[+0.0004, +0.050]", "new better"]
    assert table.loc["valence CCC", ["95% CI", "verdict"]].tolist() == ["[+0.000, +0.020]", "within noise"]
    assert table.loc["accuracy", "verdict"] == "new better"
    assert table.loc["macro F1", "verdict"] == "within noise"
    assert table.loc["valence RMSE (lower is better)", "verdict"] == "new better"
    assert table.loc["arousal RMSE (lower is better)", "verdict"] == "old better"
    assert list(table.columns[:2]) == ["new", "old"]
    assert table.loc["accuracy", E.PAIRED_DIFF] == "+0.100 [+0.050, +0.150]"  # the value and its interval, one cell
    # accuracy's verdict is McNemar's: 15 to 5 (p = 0.041) names A, 14 to 5 (p = 0.064) does not, whatever the interval
    for only_a, only_b, p, ci, verdict in ((15, 5, 0.041, [-0.001, 0.06], "new better"),
                                           (14, 5, 0.064, [0.001, 0.06], "within noise"),
                                           (5, 15, 0.041, [-0.06, 0.001], "old better")):
        one = {"metrics": {"accuracy": {"a": 0.5, "b": 0.47, "diff": 0.03, "ci95": ci}}, "a_only_right": only_a,
               "b_only_right": only_b, "mcnemar_p": p}
        assert E.paired_table(one, "new", "old")["verdict"].tolist() == [verdict]
    fig = E.paired_figure(table.reset_index(), "new", "old")
    assert {t.name for t in fig.data} == {"new better", "within noise", "old better"}
    assert list(fig.layout.yaxis.categoryarray) == list(table.index)  # the table's order, not grouped by verdict


def test_seed_groups_join_runs_that_differ_only_in_seed():
    def cfg(seed, lr=1e-3, root="/data/a", workers=0):
        return {"data": {"root": root}, "args": {"lr": lr, "seed": seed, "workers": workers, "epochs": 5}}
    configs = {"base-s2": cfg(2), "other-lr": cfg(0, lr=5e-4), "base-s1": cfg(1, workers=2),
               "other-data": cfg(2, root="/b"), "base": cfg(0), "other-lr-s1": cfg(1, lr=5e-4),
               "no-args": {"data": {"root": "/data/a"}},
               "before-mixup": {"data": {"root": "/data/a"}, "args": {"lr": 5e-4, "seed": 2, "epochs": 5}},
               "other-lr-mixup": cfg(3, lr=5e-4) | {"args": {"lr": 5e-4, "seed": 3, "epochs": 5, "mixup": 0.2}}}
    # a config written before a flag existed lacks it: it groups with runs that have the flag off, or at its default
    configs["other-lr"]["args"].update(mixup=0.0, va_loss="mse", kd_temperature=2.0)
    assert R.seed_groups(configs) == [["base", "base-s1", "base-s2"],
                                      ["other-lr", "other-lr-s1", "before-mixup"]]
    # the folds of one cross-validation group apart from the same recipe on a fixed split
    configs.update({f"cv-fold{k}": cfg(0) | {"split": {"fold": k, "folds": 3}} for k in (2, 1, 3)})
    assert R.seed_groups(configs)[-1] == ["cv-fold1", "cv-fold2", "cv-fold3"]
    assert R.seed_groups(configs)[0] == ["base", "base-s1", "base-s2"]
    # a fold trained again, another cross-validation's fold, a same-seed copy: none is another seed or fold
    configs.update({"cv-fold1-again": configs["cv-fold1"], "cv3-fold1": configs["cv-fold1"], "base-copy": cfg(0)})
    assert R.seed_groups(configs)[-1] == ["cv-fold1", "cv-fold2", "cv-fold3"]
    assert R.seed_groups(configs)[0] == ["base", "base-s1", "base-s2"]


def test_seed_summary_gives_mean_and_sample_sd():
    values = pd.DataFrame({"Accuracy": [0.40, 0.44, 0.42, 0.5], "Valence CCC": [0.6, 0.6, float("nan"), 0.7]},
                          index=pd.Index(["a", "a1", "a2", "b"], name="run"))
    out = report.seed_summary(values, [["a", "a1", "a2"], ["b", "gone"]])
    assert list(out.index) == ["a (3 seeds)"]  # a group with one run left is no group
    assert out.loc["a (3 seeds)", "runs"] == "a, a1, a2"
    assert out.loc["a (3 seeds)", "Accuracy"] == "0.420 ± 0.020"
    assert out.loc["a (3 seeds)", "Valence CCC"] == "0.600 ± 0.000"
    assert list(report.seed_summary(values, [["a", "a1", "a2"]], fold_groups={"a"}).index) == ["a (3 folds)"]
    seeds = pd.DataFrame({"accuracy": [0.5, 0.6, 0.7]}, index=["r", "r-seed1", "r_s2"])
    assert list(report.seed_summary(seeds, [list(seeds.index)]).index) == ["r (3 seeds)"]  # named without -seedK
    two = pd.DataFrame({"accuracy": [0.5, 0.6, 0.7, 0.8]}, index=["r-s0", "r-s1", "r_seed0", "r_seed1"])
    out = report.seed_summary(two, [["r-s0", "r-s1"], ["r_seed0", "r_seed1"]])  # one name for two groups: both kept
    assert list(out.index) == ["r (2 seeds)", "r_seed0 (2 seeds)"]
    cv = pd.DataFrame({"accuracy": [0.5, 0.6]}, index=["r-cv5-fold1", "r-cv5-fold2"])
    assert list(report.seed_summary(cv, [list(cv.index)], fold_groups={"r-cv5-fold1"}).index) == ["r-cv5 (2 folds)"]
    five = pd.DataFrame({"accuracy": [0.5] * 4}, index=[f"r-cv5-fold{k}" for k in (1, 2, 4, 5)])  # fold 3 missing
    assert report.seed_summary(five, [list(five.index)], fold_groups={"r-cv5-fold1"})["runs"].tolist() == \
        ["r-cv5-fold1, 2, 4, 5"]
    assert report.seed_summary(five.iloc[:2], [list(five.index[:2])], fold_groups={"r-cv5-fold1"})["runs"].tolist() \
        == ["r-cv5-fold1–2"]


def test_run_details_show_optional_columns_only_where_a_run_has_one():
    from types import SimpleNamespace

    from fer_core.report import run_details

    old = SimpleNamespace(name="old", has_va=True, config={"device": "cpu", "args": {"epochs": 3}, "train_minutes": 2})
    taught = SimpleNamespace(name="taught", has_va=True, config={
        "device": "cpu", "args": {"epochs": 12}, "precision": "bfloat16 autocast",
        "teacher": {"path": "artifacts/runs/hse-best/checkpoints/best.pt"}})
    plain = run_details([old])
    assert not {"distilled from", "evaluates", "trained on", "code"} & set(plain.columns)
    assert plain.loc["old", "precision"] == "float32" and plain.loc["old", "epochs"] == "3"
    both = run_details([old, taught])
    assert list(both["distilled from"]) == ["", "hse-best"]
    assert both.loc["taught", "precision"] == "bfloat16 autocast"
    pair = SimpleNamespace(name="pair", has_va=True, config={"status": "ensemble", "members": [{"run": "a"}]})
    row = run_details([old, pair]).loc["pair"]
    assert (row["img size"], row["epochs"], row["best epoch"]) == ("–", "–", "–")  # not "None": it has none
    soft = SimpleNamespace(name="soft", has_va=False, config={"args": {"epochs": 3, "soft_labels": True}})
    assert list(run_details([old, soft])["trained on"]) == ["", "vote shares"]
    made = SimpleNamespace(name="made", has_va=True, config={"args": {"epochs": 3}, "environment": {
        "code": "git 4c244b2a91f0e7c3d5b6a8f9e0d1c2b3a4f5e6d7 with uncommitted changes"}})
    assert list(run_details([old, made])["code"]) == ["", "git 4c244b2 with uncommitted changes"]


def test_settings_that_differ_name_what_an_ablation_changed():
    from fer_core.report import settings_that_differ

    def config(**args):
        return {"preset": "cpu-fast", "args": {"backbone": "mobilenet_v2", "lr": 0.001, "epochs": 3, "workers": 2,
                                               "kd_weight": 0.5, **args}}

    old = config()
    del old["args"]["kd_weight"]
    new = config(lr=0.0005, workers=0, cutmix=0.0, kd_weight=1.0)  # cutmix 0: old's default; kd without a teacher
    table = settings_that_differ({"old": old, "new": new, "pair": {"members": []}, "cv, no fold here": None})
    assert list(table.index) == ["old", "new"] and list(table.columns) == ["--lr"]
    assert list(table["--lr"]) == ["0.001", "0.0005"]
    taught = config(teacher="runs/big/checkpoints/best.pt", kd_weight=1.0, epochs=3.0)  # 3.0 is 3
    table = settings_that_differ({"old": old, "taught": taught})
    assert set(table.columns) == {"--teacher", "--kd-weight"} and list(table["--kd-weight"]) == ["–", "1.0"]
    assert list(table["--teacher"]) == ["–", "runs/big/checkpoints/best.pt"]
    mixed = settings_that_differ({"a": config(extra_data=None, extra_count=0), "b": config(extra_data="x",
                                                                                         extra_count=500)})
    assert mixed.to_dict("list") == {"--extra-data": ["none", "x"], "--extra-count": ["0", "500"]}  # not 500.0
    assert settings_that_differ({"old": old, "same": config()}).empty and settings_that_differ({"old": old}).empty


def test_per_class_comparison_matches_sklearn_and_its_intervals_hold_the_value():
    from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

    true = np.random.default_rng(4).integers(0, 8, 400)
    true[true == 7] = 6  # no Contempt at all: its recall has no denominator
    preds = {name: make_predictions(np.arange(400), true, skill=skill, has_va=False, seed=seed, path_fmt="{id}.jpg")
             for name, skill, seed in (("a", 2.0, 4), ("b", 0.5, 5))}
    table = report.per_class_comparison({name: confusion_matrix(p["true"], p["pred"], labels=range(8))
                                         for name, p in preds.items()})
    assert list(table["run"].unique()) == ["a", "b"] and list(table["class"][:8]) == CLASSES
    for run, pred in preds.items():
        t = table[table["run"] == run].set_index("class")
        y, yhat = pred["true"], pred["pred"]
        labels = list(range(7))  # the classes that occur
        for metric, fn in (("recall", recall_score), ("precision", precision_score), ("f1", f1_score)):
            expected = fn(y, yhat, labels=labels, average=None, zero_division=np.nan)
            assert np.allclose(t[metric].to_numpy()[:7], expected, equal_nan=True)
        assert np.isnan(t.at["Contempt", "recall"]) and t.at["Contempt", "support"] == 0
        ok = t["recall"].notna()
        assert (t.loc[ok, "recall_lo"] <= t.loc[ok, "recall"]).all()
        assert (t.loc[ok, "recall"] <= t.loc[ok, "recall_hi"]).all()
    fig = report.per_class_figure(table, "recall")
    assert [bar.name for bar in fig.data] == ["a", "b"] and fig.data[0].error_y.array is not None
    assert report.per_class_figure(table, "f1").data[0].error_y.array is None


def test_intensity_table_bins_non_neutral_samples_by_distance_from_the_centre():
    pred = pd.DataFrame({"true": [0, 1, 1, 2, 2, 3, 3, 4], "pred": [0, 1, 0, 2, 0, 3, 3, 1],
                         "valence_true": [0.0, 0.1, 0.2, 0.3, 0.6, 0.6, 0.8, 0.9],
                         "arousal_true": [0.0, 0.0, 0.0, 0.4, 0.8, 0.8, 0.0, 0.0]})
    # non-neutral intensities 0.1 0.2 0.5 1.0 1.0 0.8 0.9 (the Neutral row is left out); median 0.8:
    # low bin 0.1 right, 0.2 called Neutral, 0.5 right, 0.8 right; high bin 0.9 wrong, 1.0 called Neutral, 1.0 right
    t = V.intensity_table({"r": pred, "fer": pred.assign(valence_true=np.nan)}, n_bins=2)
    assert list(t["run"]) == ["r", "r"] and t["n"].sum() == 7
    low, high = t.iloc[0], t.iloc[1]
    assert low["n"] == 4 and low["right"] == pytest.approx(3 / 4) and low["neutral"] == pytest.approx(1 / 4)
    assert high["n"] == 3 and high["right"] == pytest.approx(1 / 3) and high["neutral"] == pytest.approx(1 / 3)
    assert low["right_lo"] < low["right"] < low["right_hi"]
    fig = V.intensity_figure(t)
    assert len(fig.data) == 2 and list(fig.data[0].x) == list(t["bin"])
    assert V.intensity_table({"fer": pred.assign(valence_true=np.nan)}).empty


def test_runs_are_ranked_only_beside_runs_scored_on_the_same_images():
    groups = report.same_image_groups({"a": ["1", "2"], "fold1": [3, 4], "b": ["2", "1"], "fold2": ["5"], "x": None})
    assert groups == [["a", "b"], ["fold1"], ["fold2"], ["x"]]


def test_best_run_lines_rank_runs_per_data_set_and_image_set():
    values = pd.DataFrame({"Accuracy": [0.50, 0.40, 0.90], "Valence CCC": [0.6, 0.5, 0.9]},
                          index=["a", "b", "fold1"])
    metrics = {"a": {"n": 2}, "b": {"n": 2}, "fold1": {"n": 1}}
    groups = {("affectnet data", "/d"): ["a", "b", "fold1"]}
    right = {"a": pd.Series([True, False], index=["1", "2"]), "b": pd.Series([False, True], index=["2", "1"]),
             "fold1": pd.Series([True], index=["3"])}
    lines, unranked = report.best_run_lines(values, metrics, groups, right)
    assert unranked == ["fold1"]  # its images are no other run's: its 0.90 is not the best
    assert lines == ["**a** by accuracy (0.500), not told apart from b on these images (McNemar's test, p ≥ 0.05: "
                     "Model disagreement pairs them) — among runs scored on the same 2 images"]
    many = [f"r{k}" for k in range(8)]  # a long list of ties is cut short
    lines, _ = report.best_run_lines(pd.DataFrame({"Accuracy": [0.5] * 8}, index=many), {n: {"n": 2} for n in many},
                                     {("affectnet data", "/d"): many}, {n: right["a"] for n in many})
    assert "not told apart from r1, r2, r3, r4, r5 and 2 more on these images" in lines[0]


def test_data_groups_put_runs_by_the_data_they_were_scored_on():
    from types import SimpleNamespace

    runs = [SimpleNamespace(name=n, config={"data": {"layout": lay, "root": root}} if lay else {})
            for n, lay, root in (("a", "affectnet", "/d/a"), ("f", "ferplus", "/d/f"), ("b", "affectnet", "/d/a"),
                                 ("old", None, None))]
    assert R.data_groups(runs) == {("affectnet data", "/d/a"): ["a", "b"], ("ferplus data", "/d/f"): ["f"],
                                   ("? data", "?"): ["old"]}
    # the split shown may be an evaluation on other data: its metrics file says which, and how the run answered
    seven = [[5, 1, 0, 0, 0, 0, 0, 1]] * 7 + [[0] * 8]
    metrics = {"a": {"data_root": "/d/f", "layout": "ferplus"}, "b": {"data_root": "/d/f"},  # an older file
               "f": {"data_root": "/d/f", "layout": "ferplus"},
               "old": {"data_root": "/d/f", "layout": "ferplus", "only_data_classes": True, "confusion": seven}}
    assert R.data_groups(runs, metrics) == {("ferplus data", "/d/f"): ["a", "f", "b"],
                                            ("ferplus data, answers among its 7 classes only", "/d/f"): ["old"]}
    assert R.data_groups(runs, {"a": {"data_root": "/d/a"}}) == R.data_groups(runs)


def test_a_run_whose_minutes_are_not_known_is_read(tmp_path):
    folder = write_run(tmp_path, "ens", n=40, n_boot=2)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "train_minutes": None}))  # as ensemble.py may write
    run, problems = R.validate_run(folder)
    assert run is not None and problems == []


def test_importing_the_engine_with_output_captured_in_memory():
    import contextlib
    import importlib
    import io

    import fer_core

    with contextlib.redirect_stdout(io.StringIO()):  # a stream without an encoding
        importlib.reload(fer_core)


def test_run_names_are_literal_in_markdown():
    assert report.md("lr$1e-3 and $2") == "lr\\$1e-3 and \\$2"  # two "$" would start LaTeX
    assert report.md("**x**_<b>") == "\\*\\*x\\*\\*\\_\\<b\\>" and report.md("hse-best.v2") == "hse-best.v2"
    # ":red" starts one of Streamlit's colour directives; a time or a ratio's colon does not
    assert report.md("a :red[b] 1:2 https://x") == "a \\:red\\[b\\] 1:2 https://x"


def test_latex_table_writes_any_run_name_as_text(runs_dir):
    metrics = {n: R.load_metrics(runs_dir / n / "metrics_val.json") for n in ("a", "b")}
    values, cis = report.results_table(metrics)
    name = r"\input ^^2fetc~x"  # ^^2f is TeX's "/": read a file into the PDF
    tex = report.latex_table(values.rename(index={"a": name}), cis.rename(index={"a": name}), "c")
    assert r"\textbackslash{}input \textasciicircum{}\textasciicircum{}2fetc\textasciitilde{}x & b" in tex
    assert r"\input" not in tex


def test_any_text_is_literal_inline_code():
    assert report.code("/data/affectnet") == "`/data/affectnet`"
    assert report.code("x` ![p](http://h/p.png) `") == "`` x` ![p](http://h/p.png) ` ``"  # no way out of the span
    assert report.code("`a``") == "``` `a`` ```" and report.code("two\nlines") == "`two lines`"


def test_runs_whose_images_cannot_be_told_are_not_paired():
    ids = {"a": ["1", "2"], "b": None, "c": ["1"]}
    metrics = {"a": {"n": 2}, "b": {"n": 2}, "c": {"n": 2}}
    assert report.unpaired_runs(ids, metrics) == {"b": "has no usable predictions file",
                                                  "c": "has predictions for 1 images but metrics for 2"}


def test_runs_of_one_name_are_named_by_as_much_of_their_path_as_tells_them_apart():
    paths = [Path("/x/a/run1"), Path("/x/b/run1"), Path("/y/b/run1"), Path("/x/c/run2")]
    assert R.unique_names(paths) == ["a/run1", "x/b/run1", "y/b/run1", "run2"]


def test_stages_minutes_tells_runs_of_one_name_apart_by_folder(tmp_path):
    for lab, minutes in (("a", 10.0), ("b", 20.0)):
        (tmp_path / lab / "run1").mkdir(parents=True)
        (tmp_path / lab / "run1" / "config.json").write_text(json.dumps({"name": "run1", "train_minutes": minutes}))
    assert R.stages_minutes([tmp_path / "a" / "run1", tmp_path / "b" / "run1"]) == 30.0
    assert R.stages_minutes([tmp_path / "a" / "run1", tmp_path / "a" / "run1"]) == 10.0  # the same run: once


def test_markup_in_a_run_name_is_shown_as_text_in_charts():
    name = '<a href="https://x">link</a> <b>bold</b>'
    pred = make_predictions(np.arange(200), np.random.default_rng(4).integers(0, 8, 200), skill=1.0, has_va=True,
                            seed=4, path_fmt="{id}.jpg")
    values = pd.DataFrame({"Accuracy": [0.5]}, index=[name])
    bars = report.bar_figure(values, pd.DataFrame({"Accuracy": [None]}, index=[name]), ["Accuracy"], "t")
    scatter = V.scatter_figure(pred, name, 1000)
    from fer_core.metrics import compute_metrics

    m = compute_metrics(pred, n_boot=5)
    per_class = report.per_class_figure(report.per_class_comparison({name: m["confusion"]}))
    reliability = report_roc.reliability_figure({name: m["calibration"]}, {name: "#123456"})
    for text in (bars.data[0].name, bars.data[0].hovertemplate, scatter.layout.title.text,
                 V.error_figure({name: pred}).data[0].hovertemplate, per_class.data[0].hovertemplate,
                 *(t.hovertemplate for t in reliability.data if t.name and "ECE" in t.name)):
        assert "<a" not in text and "<b>bold" not in text and "&lt;a href" in text, text
    assert report.figure_name(scatter).startswith(name)  # a screen reader hears the name itself
    scaled = report_roc.reliability_figure({name: m["calibration"], "T": m["calibration"]}, {}, dashed={"T"})
    assert [t.marker.symbol for t in scaled.data[1:]] == ["circle", "circle-open"]  # same colour, told apart


def test_failure_table_gives_each_runs_answer_and_flags_a_wrong_class_every_run_gives():
    def run(pred, conf):
        probs = np.full((3, 8), 0.0)
        probs[np.arange(3), pred] = conf
        probs[:, 7 if max(pred) < 7 else 6] += 1 - np.array(conf)
        return pd.DataFrame({"id": ["1", "2", "3"], "path": ["a.jpg", "b.jpg", "c.jpg"], "true": [0, 1, 2],
                             "pred": pred, **{f"prob_{k}": probs[:, k] for k in range(8)}})

    table = E.failure_table({"A": run([1, 1, 3], [0.9, 0.8, 0.6]), "B": run([1, 0, 2], [0.7, 0.5, 0.55])},
                            ["1", "3"], same_wrong=True)
    assert table["path"].tolist() == ["a.jpg", "c.jpg"] and table["true"].tolist() == ["Neutral", "Sad"]
    assert table["A: predicted"].tolist() == ["Happy", "Surprise"]
    assert table["B: predicted"].tolist() == ["Happy", "Sad"]
    assert table["A: confidence"].tolist() == [0.9, 0.6]
    assert table["same wrong answer"].tolist() == [True, False]  # id 1: both say Happy; id 3: B is right
    assert table["label's probability"].tolist() == [0.0, 0.275]  # id 3 is Sad: A gives it 0, B 0.55
    assert "same wrong answer" not in E.failure_table({"A": run([1, 1, 3], [0.9, 0.8, 0.6])}, ["2"])


def test_confused_pairs_lists_the_most_frequent_mistakes_first():
    cm = np.zeros((8, 8), int)
    np.fill_diagonal(cm, 50)
    cm[2, 0], cm[7, 1], cm[4, 3] = 20, 10, 30  # Sad → Neutral, Contempt → Happy, Fear → Surprise
    table = report.confused_pairs(cm, n=2)
    assert table["true"].tolist() == ["Fear", "Sad"] and table["predicted"].tolist() == ["Surprise", "Neutral"]
    assert table["images"].tolist() == [30, 20] and table["share of the true class"].tolist() == [0.375, 0.286]
    assert report.confused_pairs(np.eye(8, dtype=int)).empty  # no mistakes: an empty table


def test_fer_plus_votes_beside_the_images_every_run_gets_wrong_and_runs_keyed_by_their_labels():
    probs = {f"prob_{k}": 0.125 for k in range(8)}
    a = pd.DataFrame({"id": ["Test/fer1", "Test/fer2"], "path": ["x", "y"], "true": [0, 1], "pred": [3, 2], **probs})
    table = E.failure_table({"a": a, "b": a.assign(pred=[3, 0])}, ["Test/fer1", "Test/fer2"], same_wrong=True)
    votes = pd.DataFrame(0.0, index=["Test/fer1", "Test/fer2"], columns=[*CLASSES, "unknown", "not a face"])
    votes.loc["Test/fer1", ["Neutral", "Surprise"]] = [8, 2]  # two chose the runs' one wrong class, Surprise
    votes.loc["Test/fer2", ["Happy", "Surprise"]] = [9, 1]
    shown, backed = E.failure_votes(table, votes, "a")
    assert shown.columns[2] == "annotators' votes" and shown["annotators' votes"].tolist() == \
        ["Neutral 8, Surprise 2", "Happy 9, Surprise 1"]
    assert table["same wrong answer"].tolist() == [True, False] and backed == 1
    keys = E.labelled_correctness(a).index.tolist()
    assert keys != E.labelled_correctness(a.assign(true=[0, 2])).index.tolist() and len(set(keys)) == 2


def test_an_ensemble_and_its_members_chosen_together_are_named():
    configs = {"ens": {"members": [{"run": "runs/a"}, {"run": "b"}]}, "a": {}, "c": {},
               "ens-old": {"members": ["a", "c"]}}
    assert R.members_among(configs) == {"ens": ["a"], "ens-old": ["a", "c"]}
    assert R.members_among({"ens": configs["ens"], "c": {}}) == {}


def test_the_first_ten_run_colours_stand_out_on_the_light_and_the_dark_theme():
    """WCAG 2.1's 3:1 for graphics, on white and on the dark theme's background (.streamlit/config.toml)."""
    from plotly.colors import hex_to_rgb

    from tests.conftest import contrast

    colours = list(report.run_colors([f"run{i}" for i in range(10)]).values())
    assert len(set(colours)) == 10
    for c in colours:
        assert min(contrast(hex_to_rgb(c), (255, 255, 255)), contrast(hex_to_rgb(c), (14, 17, 23))) >= 3, c


def test_a_pair_is_called_better_only_where_its_p_stays_under_0_05_after_holm():
    """A right where B is wrong 10 times, the reverse 2, both right 20; C answers as B. A-B's exact McNemar p is
    0.0386, under 0.05 alone, but 0.1157 once Holm adjusts it for the three pairs: within noise."""
    a = [1] * 10 + [0] * 2 + [1] * 20
    b = [0] * 10 + [1] * 2 + [1] * 20
    table = E.pairwise_table(pd.DataFrame({"A": a, "B": b, "C": b})).set_index(["run A", "run B"])
    assert table.loc[("A", "B"), "McNemar p"] == pytest.approx(0.0386, abs=1e-4)
    assert table.loc[("A", "B"), "Holm p"] == pytest.approx(0.1157, abs=1e-4)
    assert table.loc[("A", "B"), "verdict"] == "within noise"


def test_a_mistake_is_plausible_from_two_annotators_that_chose_its_class():
    assert E.plausible_mistakes(pd.DataFrame({"pred_votes": [2, 1, 3, np.nan]})) == (2, 3)


def test_per_class_valence_arousal_error_is_a_root_mean_square():
    pred = pd.DataFrame({"true": [0, 0], "valence_true": [0.0, 0.0], "valence_pred": [0.3, 0.4],
                         "arousal_true": [0.0, 0.0], "arousal_pred": [0.0, 0.0]})
    row = V.per_class_table(pred).loc[CLASSES[0]]
    assert row["valence RMSE"] == pytest.approx(np.sqrt(0.125)) and row["arousal RMSE"] == 0
