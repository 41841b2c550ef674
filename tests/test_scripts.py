"""The command-line scripts behind docs/results.md, run as a user runs them, on synthetic run folders."""
from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_core import runs as R
from tests.fixture_runs import write_cv_folds, write_run

ROOT = Path(__file__).resolve().parent.parent
CLASS_NAMES = ["neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"]


def _run(script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {name: write_run(base, name, seed=seed, skill=skill, epochs=epochs, n=300, n_boot=20)
            for name, seed, skill, epochs in [("base", 0, 1.0, 10), ("base-s1", 1, 1.0, 10), ("better", 0, 3.0, 12)]}


def _accuracy(folder: Path) -> float:
    return json.loads((folder / "metrics_test.json").read_text())["accuracy"]


def test_results_table_lists_runs_and_their_seed_group(runs):
    out = _run("results_table.py", *runs.values(), "--split", "test")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for name, folder in runs.items():
        assert any(ln.startswith(f"| {name} | 300 | {_accuracy(folder):.3f} [") for ln in lines), name
    group = [ln for ln in lines if ln.startswith("| base (2 seeds) | base, base-s1 |")]
    mean = (_accuracy(runs["base"]) + _accuracy(runs["base-s1"])) / 2
    assert len(group) == 1 and f"| {mean:.3f} ± " in group[0]
    assert "FER+ paper's rule" not in lines[0] and lines[0].endswith("| train min, all stages |")
    # a FER+ run's table sets the paper's majority-rule accuracy beside the plain one
    out = _run("results_table.py", ROOT / "artifacts" / "runs" / "ferplus-hse", runs["base"])
    header, _, fer, base = out.stdout.splitlines()[:4]
    assert "| accuracy [95% CI] | FER+ paper's rule: n, accuracy [95% CI] |" in header
    assert "| 3137, 0.869 [0.857, 0.880] |" in fer and base.split(" | ")[3] == "–"


def test_results_table_tells_apart_folders_of_one_name(runs, tmp_path):
    shutil.copytree(runs["base"], tmp_path / "copy" / "base")
    out = _run("results_table.py", runs["base"], tmp_path / "copy" / "base", runs["base"])
    rows = [ln.split(" | ")[0] for ln in out.stdout.splitlines() if ln.startswith("| ") and " | 300 | " in ln]
    assert rows == [f"| {runs['base'].parent.name}/base", "| copy/base"]  # a folder given twice: once
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / "config.json").write_text((runs["base"] / "config.json").read_text())
    (tmp_path / "listed" / "metrics_test.json").write_text("[1, 2]")
    out = _run("results_table.py", runs["base"], tmp_path / "listed")
    assert "metrics_test.json does not hold a JSON object" in out.stderr and "Traceback" not in out.stderr


def test_results_table_prints_latex(runs, tmp_path):
    out = _run("results_table.py", *runs.values(), "--latex")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[2].startswith(r"\caption{Results on the test split (n = 300).")
    assert lines[6] == r"Metric & base & base-s1 & better \\"
    acc = next(ln for ln in lines if ln.startswith("Accuracy & ")).split(" & ")
    assert acc[3].startswith(rf"\textbf{{{_accuracy(runs['better']):.3f} [")  # the most skilled run in bold
    # then the recipe run with two seeds, as mean and standard deviation, nothing in bold
    second = lines[lines.index(r"\end{table}") + 2:]
    assert r"Metric & base (2 seeds) \\" in second and r"\end{table}" == second[-1]
    mean = (_accuracy(runs["base"]) + _accuracy(runs["base-s1"])) / 2
    row = next(ln for ln in second if ln.startswith("Accuracy & "))
    assert row.startswith(f"Accuracy & {mean:.3f} $\\pm$ ") and "textbf" not in "".join(second)
    # a run scored on other images is bolded in no one's stead: best values are marked among runs on one image set
    other = write_run(tmp_path, "other-images", seed=0, skill=6.0, n=300, n_boot=20, split_seed=7)
    out = _run("results_table.py", *runs.values(), other, "--latex")
    acc = next(ln for ln in out.stdout.splitlines() if ln.startswith("Accuracy & ")).split(" & ")
    assert acc[3].startswith(r"\textbf") and not acc[4].startswith(r"\textbf") and _accuracy(other) > _accuracy(
        runs["better"])
    assert "bold: the best value among the runs scored on the same images" in out.stdout
    out = _run("results_table.py", tmp_path / "nothing", "--latex")
    assert out.returncode == 2 and "none of the given folders" in out.stderr


def test_results_table_names_each_folder_it_skips_and_fails_when_none_is_left(runs, tmp_path):
    typo = tmp_path / "bsae"
    out = _run("results_table.py", runs["base"], typo)
    assert out.returncode == 0 and "| base | 300 |" in out.stdout and "bsae" not in out.stdout
    assert f"warning: skipped {typo}: no such folder" in out.stderr
    for args in ([typo], [runs["base"], "--split", "bogus"]):
        out = _run("results_table.py", *args)
        assert out.returncode == 2 and "nothing to show" in out.stderr and "| run |" not in out.stdout, args
        assert "Traceback" not in out.stderr
    assert "no metrics_bogus.json (it has test, val)" in out.stderr
    _halves(runs["base"], tmp_path)
    (tmp_path / "no-preds").mkdir()  # results, but no predictions to pool
    for f in ("config.json", "metrics_test.json"):
        (tmp_path / "no-preds" / f).write_text((tmp_path / "fold1" / f).read_text())
    out = _run("results_table.py", tmp_path / "fold0", tmp_path / "no-preds", typo, "--pool", "cv")
    assert out.returncode == 0 and "| cv (1 runs pooled) | 120 |" in out.stdout
    rows = {ln.split(" | ")[0]: ln.rstrip(" |").rsplit(" | ", 1)[1] for ln in out.stdout.splitlines()
            if ln.startswith("| ")}
    assert rows["| cv (1 runs pooled)"] == rows["| fold0"]  # the training minutes of the run pooled, not of both
    assert f"skipped {typo}: no such folder" in out.stderr
    assert f"left {tmp_path / 'no-preds'} out of --pool cv: no predictions_test.csv" in out.stderr
    assert "warning: --pool: 1 of 2 folds: the figures cover their images only" in out.stderr


def _halves(run, tmp_path):
    """Two "folds" of one run's test images, as run folders fold0 and fold1 (folds 1 and 2 of 2)."""
    whole = pd.read_csv(run / "predictions_test.csv", dtype={"id": str})
    cfg = json.loads((run / "config.json").read_text())
    for k, part in enumerate((whole.iloc[:120], whole.iloc[120:])):
        folder = tmp_path / f"fold{k}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**cfg, "split": {**cfg["split"], "fold": k + 1, "folds": 2}}))
        (folder / "metrics_test.json").write_text((run / "metrics_test.json").read_text())
        part.to_csv(folder / "predictions_test.csv", index=False)


def test_results_table_pools_runs_whose_test_parts_do_not_overlap(runs, tmp_path):
    _halves(runs["base"], tmp_path)
    out = _run("results_table.py", tmp_path / "fold0", tmp_path / "fold1", "--pool", "cv")
    assert out.returncode == 0, out.stderr
    row = [ln for ln in out.stdout.splitlines() if ln.startswith("| cv (2 runs pooled) |")]
    assert len(row) == 1 and row[0].startswith(f"| cv (2 runs pooled) | 300 | {_accuracy(runs['base']):.3f} [")
    out = _run("results_table.py", runs["base"], runs["base-s1"], "--pool", "cv")
    assert out.returncode == 1 and "base is not a cross-validation fold" in out.stderr  # as pool_folds.py says
    out = _run("results_table.py", tmp_path / "fold0", tmp_path / "fold0", "--pool", "cv")
    assert out.returncode == 1 and "fold0 and fold0 are both fold 1" in out.stderr
    # compare_runs pools comma-separated runs the same way: the two halves together are the whole run
    folds = f"{tmp_path / 'fold0'},{tmp_path / 'fold1'}"
    out = _run("compare_runs.py", runs["base"], folds)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("| fold0 +1 pooled | base | 300 | +0.000 [+0.000, +0.000] |")
    out = _run("compare_runs.py", runs["base"], f"{folds},{runs['base']}")
    assert out.returncode == 1 and "more than one of the pooled runs" in out.stderr


def test_results_table_names_a_cross_validation_after_its_folds(runs, tmp_path):
    _halves(runs["base"], tmp_path)
    for k in (1, 2):
        folder = tmp_path / f"cv-fold{k}"
        (tmp_path / f"fold{k - 1}").rename(folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg["split"].update(fold=k, folds=2)
        (folder / "config.json").write_text(json.dumps({**cfg, "name": folder.name}))
    out = _run("results_table.py", tmp_path / "cv-fold1", tmp_path / "cv-fold2", "--pool", "cv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(ln.startswith("| cv (2 runs pooled) | 300 |") for ln in lines)
    assert any(ln.startswith("| cv (2 folds) | cv-fold1–2 |") for ln in lines)  # not "cv-fold1 (2 folds)"


def test_compare_runs_prints_paired_differences(runs):
    out = _run("compare_runs.py", runs["base"], runs["better"])
    assert out.returncode == 0, out.stderr
    row = out.stdout.splitlines()[-1].split(" | ")
    assert row[0] == "| better" and row[1] == "base" and row[2] == "300" and "warning" not in out.stderr
    diff = _accuracy(runs["better"]) - _accuracy(runs["base"])
    assert row[3].startswith(f"{diff:+.3f} [")
    lo, hi = (float(x) for x in row[3].split("[")[1].rstrip("]").split(","))
    assert 0 < lo < diff < hi  # the much better run is better beyond the noise
    assert row[-1] == "<0.001 |"  # McNemar p, printed as the disagreement page prints it
    a, b = (pd.read_csv(runs[k] / "predictions_test.csv") for k in ("better", "base"))
    only = ((a.pred == a.true) & (b.pred != b.true)).sum(), ((b.pred == b.true) & (a.pred != a.true)).sum()
    assert row[-2] == f"{only[0]} / {only[1]}" and only[0] > only[1]
    out = _run("compare_runs.py", "--base", runs["base"], runs["base"], runs["better"])  # the base among the runs
    assert out.returncode == 0 and [ln.split(" | ")[0] for ln in out.stdout.splitlines()[2:]] == ["| better"]
    out = _run("compare_runs.py", runs["base"], runs["better"], runs["base"])  # two pairs: Holm's p beside each
    header, _, *rows = out.stdout.splitlines()
    assert header.endswith("| McNemar p | Holm p |") and all(r.endswith("| <0.001 | <0.001 |") for r in rows)
    # the same unremarkable pair twice: each raw p counts for two tests, so Holm's p is twice it
    out = _run("compare_runs.py", "--base", runs["base"], runs["base-s1"], runs["base-s1"])
    raw, holm = map(float, out.stdout.splitlines()[-1].rstrip(" |").split(" | ")[-2:])
    assert 0.05 < raw < 0.5 and holm == pytest.approx(min(1.0, 2 * raw), abs=2e-3)  # both printed to 3 places


def test_a_run_whose_name_holds_a_comma_is_one_run(runs, tmp_path):
    shutil.copytree(runs["better"], tmp_path / "lr1e-4,bs32")
    out = _run("compare_runs.py", runs["base"], tmp_path / "lr1e-4,bs32")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("| lr1e-4,bs32 | base | 300 |")


def test_compare_runs_says_what_is_wrong(runs, tmp_path):
    _halves(runs["base"], tmp_path)  # fold0: 120 of base's 300 test images
    out = _run("compare_runs.py", runs["base"], tmp_path / "fold0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("| fold0 | base | 120 of 120 / 300 | ")
    assert ("warning: fold0 vs base: only the 120 test images both runs predicted are compared: fold0 has 120 "
            "(0 left out), base 300 (180 left out)") in out.stderr
    out = _run("compare_runs.py", runs["base"], tmp_path / "nope")
    assert out.returncode == 1 and "error: nope vs base" in out.stderr and "Traceback" not in out.stderr
    out = _run("compare_runs.py", runs["base"])
    assert out.returncode == 2 and "at least two runs" in out.stderr


def test_ensemble_averages_the_members_predictions(runs):
    out = _run("ensemble.py", runs["base"], runs["better"], "--split", "test")
    assert out.returncode == 0, out.stderr
    a, b = (pd.read_csv(runs[n] / "predictions_test.csv") for n in ("base", "better"))
    cols = [f"prob_{k}" for k in range(8)]
    acc = ((a[cols].to_numpy() + b[cols].to_numpy()).argmax(1) == a["true"].to_numpy()).mean()
    last = out.stdout.splitlines()[-1]
    assert last.strip().startswith("ensemble (test split, n=300") and f"acc {acc:.4f}" in last
    assert all("(test split, n=300, " in ln for ln in out.stdout.splitlines())  # every line names its split
    assert _run("ensemble.py", runs["base"], runs["better"]).stdout == out.stdout  # test unless --split says not
    val = _run("ensemble.py", runs["base"], runs["better"], "--split", "val").stdout.splitlines()
    assert len(val) == 3 and all("(val split, n=300, " in ln for ln in val)
    assert "(default: test)" in _run("ensemble.py", "--help").stdout
    assert f"acc {_accuracy(runs['better']):.4f}" in out.stdout
    better = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("better (")][0]
    diff = acc - _accuracy(runs["better"])
    assert f"ensemble − it: accuracy {diff:+.3f} [" in better and "McNemar p" in better
    assert "warning" not in out.stderr


def test_ensemble_takes_valence_arousal_from_the_members_that_give_them(runs, tmp_path):
    nova = tmp_path / "nova"
    shutil.copytree(runs["better"], nova)
    df = pd.read_csv(nova / "predictions_test.csv", dtype={"id": str})
    df[["valence_pred", "arousal_pred"]] = np.nan  # trained without them
    df.to_csv(nova / "predictions_test.csv", index=False)
    out = _run("ensemble.py", runs["base"], nova, "--out", tmp_path / "ens")
    assert out.returncode == 0, out.stderr
    assert "warning: nova gives no valence/arousal: the ensemble's are the other members' average" in out.stderr
    ens = pd.read_csv(tmp_path / "ens" / "predictions_test.csv", dtype={"id": str}).set_index("id")
    base = pd.read_csv(runs["base"] / "predictions_test.csv", dtype={"id": str}).set_index("id")
    assert np.allclose(ens["valence_pred"], base.loc[ens.index, "valence_pred"], atol=1e-5)
    (tmp_path / "a-file").write_text("")
    for script in ("ensemble.py", "pool_folds.py"):  # an --out that cannot be made: said before any work
        out = _run(script, runs["base"], nova, "--out", tmp_path / "a-file" / "ens")
        assert out.returncode == 2 and f"--out {tmp_path / 'a-file' / 'ens'} is under {tmp_path / 'a-file'}, " \
            "which is a file" in out.stderr and "Traceback" not in out.stderr


def test_ensemble_warns_of_a_member_calibrated_after_its_predictions_were_written(runs, tmp_path):
    shutil.copytree(runs["base"], tmp_path / "base")
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    (tmp_path / "base" / "config.json").write_text(json.dumps({**config, "temperature": {"value": 1.5}}))
    out = _run("ensemble.py", tmp_path / "base", runs["better"])
    assert out.returncode == 0 and "warning: base's predictions_test.csv were written with temperature 1.00, but " \
                                   "its model now answers with 1.50: write them again" in out.stderr


def test_ensemble_takes_comma_separated_runs_together(runs, tmp_path):
    _halves(runs["base"], tmp_path)
    whole = _run("ensemble.py", runs["base"], runs["better"], "--split", "test")
    pooled = _run("ensemble.py", f"{tmp_path / 'fold0'},{tmp_path / 'fold1'}", runs["better"], "--split", "test")
    assert pooled.returncode == 0, pooled.stderr
    assert pooled.stdout.splitlines()[-1] == whole.stdout.splitlines()[-1]  # the same ensemble on the same 300 images
    assert "fold0 +1 pooled (test split, n=300" in pooled.stdout
    out = _run("ensemble.py", f"{tmp_path / 'fold0'},{tmp_path / 'fold1'}", runs["better"], "--soup")
    assert out.returncode == 2 and "single runs" in out.stderr


def test_ensemble_scores_members_on_the_images_it_scores_and_warns_when_some_are_left_out(runs, tmp_path):
    import re

    _halves(runs["base"], tmp_path)  # fold0: 120 of base's 300 test images
    out = _run("ensemble.py", runs["better"], tmp_path / "fold0")
    assert out.returncode == 0, out.stderr
    assert ("warning: only the 120 test images all members predicted are scored, the members on them too: better has "
            "300 (180 left out), fold0 has 120 (0 left out)") in out.stderr
    better, fold0, ens = out.stdout.splitlines()
    assert "better (test split, n=120 of 300, " in better and "fold0 (test split, n=120, " in fold0
    assert "ensemble (test split, n=120, " in ens
    acc = {name: float(re.search(r" acc (\S+) ", ln).group(1)) for name, ln in (("better", better), ("ens", ens))}
    diff = float(re.search(r"ensemble − it: accuracy (\S+) ", better).group(1))
    assert diff == pytest.approx(acc["ens"] - acc["better"], abs=1e-3)  # the figures side by side add up
    assert "warning" not in _run("ensemble.py", runs["base"], runs["better"]).stderr


def test_ensemble_refuses_runs_on_other_samples(runs, tmp_path):
    ferplus = write_run(tmp_path, "ferplus", layout="ferplus", has_va=False, n=50, n_boot=5)
    out = _run("ensemble.py", runs["base"], ferplus, "--split", "test")
    assert out.returncode == 1 and "share no sample ids" in out.stderr and "Traceback" not in out.stderr
    other_split = write_run(tmp_path, "other-split", split_seed=9, n=300, n_boot=5)  # some ids shared, other labels
    out = _run("ensemble.py", runs["base"], other_split, "--split", "test")
    assert out.returncode == 1 and "different true labels" in out.stderr


def test_ensemble_out_writes_a_run_folder_with_every_stages_minutes(runs, tmp_path):
    from fer_core.runs import validate_run

    stage2 = tmp_path / "stage2"  # "better" again, started from base's checkpoint (as a stage after FER+ would be)
    stage2.mkdir()
    cfg = json.loads((runs["better"] / "config.json").read_text())
    cfg["weights"] = {"requested": str(runs["base"] / "checkpoints" / "best.pt"), "loaded": "run base (best.pt)"}
    (stage2 / "config.json").write_text(json.dumps({**cfg, "name": "stage2"}))
    for f in ("predictions_val.csv", "predictions_test.csv"):
        (stage2 / f).write_text((runs["better"] / f).read_text())
    out = _run("ensemble.py", runs["base-s1"], stage2, "--split", "test", "--out", tmp_path / "ens")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == f"wrote {tmp_path / 'ens'}: the ensemble on test, val"
    run, problems = validate_run(tmp_path / "ens")
    assert run is not None and not problems and sorted(run.splits) == ["test", "val"]
    ens = run.config
    minutes = [json.loads((d / "config.json").read_text())["train_minutes"] for d in (runs["base-s1"], runs["base"])]
    assert ens["status"] == "ensemble" and [st["run"] for st in ens["members"][1]["stages"]] == ["base", "stage2"]
    assert ens["train_minutes"] == pytest.approx(minutes[0] + minutes[1] + cfg["train_minutes"], abs=1e-3)
    ens_m = json.loads((tmp_path / "ens" / "metrics_test.json").read_text())
    acc = ens_m["accuracy"]
    assert "data_root" not in ens_m  # stage2 has no metrics file to say which data it was scored on
    assert _run("ensemble.py", runs["base"], runs["base-s1"], "--out", tmp_path / "ens4").returncode == 0
    assert json.loads((tmp_path / "ens4" / "metrics_test.json").read_text())["data_root"] == \
        json.loads((runs["base"] / "metrics_test.json").read_text())["data_root"]  # the members', for the pages
    assert "ensemble (test split, n=300, accuracy 95% CI" in out.stdout
    assert f"acc {acc:.4f}" in out.stdout.splitlines()[-2]
    again = _run("ensemble.py", runs["base-s1"], stage2, "--out", tmp_path / "ens")
    assert again.returncode == 2 and "not empty" in again.stderr
    assert not (tmp_path / "ens" / "split.csv").exists()  # stage2 has no split.csv: the ensemble claims none
    (stage2 / "split.csv").write_bytes((runs["base-s1"] / "split.csv").read_bytes())
    assert _run("ensemble.py", runs["base-s1"], stage2, "--out", tmp_path / "ens2").returncode == 0
    assert (tmp_path / "ens2" / "split.csv").read_bytes() == (stage2 / "split.csv").read_bytes()
    assert _run("ensemble.py", runs["base"], stage2, "--out", tmp_path / "ens3").returncode == 0
    ens3 = json.loads((tmp_path / "ens3" / "config.json").read_text())
    assert ens3["train_minutes"] == pytest.approx(minutes[1] + cfg["train_minutes"], abs=1e-3)  # base: once


def test_ensemble_records_its_members_where_export_finds_them_from_anywhere(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("ensemble", ROOT / "scripts" / "ensemble.py")
    ensemble = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ensemble)
    assert ensemble.recorded_path(ROOT / "artifacts" / "runs" / "x") == "artifacts/runs/x"  # from the project root
    monkeypatch.chdir(tmp_path)
    assert ensemble.recorded_path(Path("a") / ".." / "b") == str(tmp_path / "b")  # given relative to elsewhere


def test_import_predictions_scores_another_tools_file_on_the_images_of_the_run_it_names(runs, tmp_path):
    from fer_core.labels import CLASSES
    from fer_core.metrics import compute_metrics

    theirs = pd.read_csv(runs["better"] / "predictions_test.csv", dtype={"id": str})  # base's images and truth
    names = ["neutral", "happiness", "sad", "surprise", "fear", "disgust", "angry", "contempt"]
    table = pd.DataFrame({"path": "C:\\faces\\" + theirs["path"].str.replace("/", "\\"), "true": 0})
    for k in [3, 0, 7, 1, 2, 6, 4, 5]:  # any column order
        table[names[k]] = theirs[f"prob_{k}"]
    table["valence"], table["arousal"] = theirs["valence_pred"], theirs["arousal_pred"]
    extra = table.iloc[:2].assign(path=["other/a.jpg", "other/b.jpg"])
    pd.concat([table.iloc[5:], extra]).to_csv(tmp_path / "theirs.csv", sep=";", index=False)
    out = _run("import_predictions.py", tmp_path / "theirs.csv", "--like", runs["base"], "--out", tmp_path / "imp",
               "--model", "their net")
    assert out.returncode == 0, out.stderr
    assert "2 of their 297 rows name no image" in out.stderr and "5 of the 300 images have no prediction" in out.stderr
    expected = compute_metrics(theirs.iloc[5:].reset_index(drop=True), n_boot=20, seed=0)
    got = json.loads((tmp_path / "imp" / "metrics_test.json").read_text())
    assert got["n"] == 295 and got["not_predicted"] == 5
    for key in ("accuracy", "macro_f1", "roc_auc_macro"):  # their "true" column of zeros is not the truth
        assert got[key] == pytest.approx(expected[key], abs=1e-6)
    assert got["valence"]["ccc"] == pytest.approx(expected["valence"]["ccc"], abs=1e-5)
    run, problems = R.validate_run(tmp_path / "imp")
    assert run is not None and not problems and run.splits == ["test"]
    cfg = run.config
    assert cfg["status"] == "imported" and cfg["backbone"] == "their net" and cfg["data"]["has_va"]
    assert cfg["imported"]["matched_by"] == "path" and cfg["imported"]["answers"].startswith("probabilities from")
    assert list(CLASSES) == cfg["classes"]
    again = _run("import_predictions.py", tmp_path / "theirs.csv", "--like", runs["base"], "--out", tmp_path / "imp")
    assert again.returncode == 2 and "is a run folder already" in again.stderr
    hard = pd.DataFrame({"id": theirs["id"], "pred": [CLASSES[k] for k in theirs["pred"]]})
    hard.to_csv(tmp_path / "hard.csv", index=False)
    assert _run("import_predictions.py", tmp_path / "hard.csv", "--like", runs["base"], "--out",
                tmp_path / "hard").returncode == 0
    ens = _run("ensemble.py", runs["base"], tmp_path / "hard")  # a sure vote in an average: said
    assert ens.returncode == 0 and "hard gives one class per image, not probabilities" in ens.stderr


def test_import_predictions_reads_a_spreadsheets_file_and_numbers_in_the_numbering_named(runs, tmp_path):
    pred = pd.read_csv(runs["better"] / "predictions_test.csv", dtype={"id": str})
    ferplus = [0, 1, 3, 2, 6, 5, 4, 7]  # AffectNet index -> FER+ number: Sad is 3, Surprise 2, Fear 6, Anger 4
    probs = pred[[f"prob_{k}" for k in range(8)]].to_numpy().round(2)  # rows 0.96-1.04 after rounding
    text = pd.DataFrame({"ID": pred["id"], "pred": [ferplus[k] for k in pred["pred"]],
                         "valence": [f"{v:.3f}".replace(".", ",") for v in pred["valence_pred"]]})
    text.loc[3, "valence"] = "#N/A"
    lines = text.to_csv(sep=";", index=False).splitlines() + [";;", ";;"]  # a spreadsheet's trailing empty rows
    (tmp_path / "fer.csv").write_text("\n".join(lines) + "\n", encoding="cp1252")
    out = _run("import_predictions.py", tmp_path / "fer.csv", "--like", runs["base"], "--out", tmp_path / "a",
               "--numbering", "ferplus")
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "a" / "metrics_test.json").read_text())
    assert m["accuracy"] == pytest.approx((pred["pred"] == pred["true"]).mean()) and m["n"] == 300
    assert m["valence"]["n"] == 299  # #N/A: not given
    named = pd.DataFrame({"path": "images/" + pred["id"] + ".jpg", **{CLASS_NAMES[k]: probs[:, k] for k in range(8)}})
    named.to_csv(tmp_path / "named.csv", index=False)
    assert _run("import_predictions.py", tmp_path / "named.csv", "--like", runs["base"], "--out",
                tmp_path / "b").returncode == 0  # rounded to two decimals: rescaled
    assert _run("import_predictions.py", tmp_path / "named.csv", "--like", runs["base"], "--out",
                tmp_path / "a").returncode == 2  # a run folder already


def test_import_predictions_takes_one_class_per_image_against_a_data_sets_labels(tmp_path):
    from tests.fixture_runs import write_images

    data = tmp_path / "data"
    true = [k % 8 for k in range(24)]
    paths = [f"img/{i:02d}.png" for i in range(24)]
    write_images(data, paths, true)
    pd.DataFrame({"path": paths, "expression": true}).to_csv(data / "labels.csv", index=False)
    pred = [t if i % 4 else (t + 1) % 8 for i, t in enumerate(true)]  # 18 of 24 right
    from fer_core.labels import CLASSES
    pd.DataFrame({"file": [p.split("/")[1] for p in paths], "pred": [CLASSES[k] for k in pred]}).to_csv(
        tmp_path / "hard.csv", index=False)
    out = _run("import_predictions.py", tmp_path / "hard.csv", "--data", data, "--out", tmp_path / "imp")
    assert out.returncode == 0, out.stderr
    assert "acc 0.7500" in out.stdout and "one class per image" in out.stdout
    m = json.loads((tmp_path / "imp" / "metrics_data-all.json").read_text())
    assert m["n"] == 24 and m["accuracy"] == 0.75 and m["valence"] is None


def _import_predictions():
    """scripts/import_predictions.py as a module, to call its main in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_predictions", ROOT / "scripts" / "import_predictions.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.mark.parametrize("table, words", [
    ({"id": ["A", "B"], "prob_0": [0.5, 0.2], "prob_1": [0.5, 0.8]}, "number the classes, and each data set numbers "
                                                                      "them differently: say whose numbers they are"),
    ({"id": ["A", "B"], "pred": [1, 3]}, "the pred column's values number the classes"),
    ({"id": ["A", "B"], "neutral": [2.0, -1.0], "happy": [-1.0, 2.0]}, "negative values: logits or scores"),
    ({"id": ["A", "B"], "neutral": [50, 20], "happy": [50, 80]}, "percentages"),
    ({"id": ["A", "B"], "neutral": [0.5, 0.2], "happy": [0.3, 0.2], "unknown": [0.2, 0.6]},
     "(not read: unknown) are not probabilities that sum to 1 in each row: their sums run from 0.4 to 0.8"),
    ({"id": ["A", "B"], "neutral": [0.5, None], "happy": [0.5, 0.3]}, "line 3 leaves some class columns empty"),
    ({"id": ["A", "B"], "neutral": [None, None], "happy": [None, None]}, "every row leaves the class columns empty"),
    ({"id": ["A", "B"], "pred": [None, None]}, "the rows that name an image of the data give no answer"),
    ({"id": ["A", "B"], "path": ["x/B.jpg", "x/A.jpg"], "pred": ["Sad", "Fear"]}, "its id and path columns name "
                                                                                  "different images on 2 rows"),
    ({"id": ["A", "B"], "pred": ["happy", "hapy"]}, "pred holds 'hapy' (line 3), not a class; did you mean Happy?"),
    ({"image_name": ["A", "B"], "pred": [1, 2]}, "no column names the images"),
    ({"id": ["x1", "x2"], "pred": [1, 2]}, "none of its 2 rows names an image"),
    ({"id": ["A", "A"], "pred": [1, 2]}, "is on two rows"),
    ({"id": ["A", "B"], "pred": ["Sad", "Fear"], "valence": [0.5, -2]}, "1 valence values outside [-1, 1]"),
    ({"id": ["A", "B"], "score": [1, 2]}, "no answer found"),
])
def test_import_predictions_refuses_a_file_it_cannot_score_and_writes_nothing(runs, tmp_path, capsys, table, words):
    script = _import_predictions()
    ids = pd.read_csv(runs["base"] / "predictions_test.csv", dtype={"id": str})["id"]
    pd.DataFrame(table).replace({"A": ids[0], "B": ids[1], "x/A.jpg": f"images/{ids[0]}.jpg",
                                 "x/B.jpg": f"images/{ids[1]}.jpg"}).to_csv(tmp_path / "bad.csv", index=False)
    assert script.main([str(tmp_path / "bad.csv"), "--like", str(runs["base"]), "--out", str(tmp_path / "imp")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "imp").exists()


def test_import_predictions_refuses_rows_longer_than_their_header_and_an_infinite_class_number(runs, tmp_path,
                                                                                              capsys):
    script = _import_predictions()
    ids = pd.read_csv(runs["base"] / "predictions_test.csv", dtype={"id": str})["id"]
    # a separator ending every row: pandas would take the ids for an index and read the classes as ids
    (tmp_path / "long.csv").write_text(f"id,pred\n{ids[0]},Happy,\n{ids[1]},Sad,\n")
    (tmp_path / "inf.csv").write_text(f"id,pred\n{ids[0]},1\n{ids[1]},inf\n")
    for table, numbering, words in [("long.csv", [], "long.csv: its rows have more values than the header: a value "
                                     "holding the separator ',' must be in double quotes, and no row may end with one"),
                                    ("inf.csv", ["--numbering", "affectnet"], "inf.csv: pred holds 'inf' (line 3), "
                                     "not a class\n")]:
        argv = [str(tmp_path / table), "--like", str(runs["base"]), "--out", str(tmp_path / "imp"), *numbering]
        assert script.main(argv) == 2
        assert words in capsys.readouterr().err
        assert not (tmp_path / "imp").exists()


def _run_on_a_full_disk(script: str, *args) -> subprocess.CompletedProcess:
    """The script run as it is, on a disk that fills as soon as a file is written (os.fsync refuses)."""
    fill = ("import errno, os, runpy, sys\n"
            "def full(fd): raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "os.fsync = full\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", fill, str(ROOT / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_a_run_folder_written_onto_a_full_disk_is_written_whole_or_not_at_all(runs, tmp_path):
    from fer_core.labels import CLASSES

    folds = write_cv_folds(runs["base"], tmp_path / "folds", "cv", first_stage=runs["base-s1"])
    theirs = pd.read_csv(runs["base"] / "predictions_test.csv", dtype={"id": str})
    theirs.assign(pred=[CLASSES[k] for k in theirs["pred"]])[["id", "pred"]].to_csv(tmp_path / "theirs.csv",
                                                                                  index=False)
    out = tmp_path / "out"
    for command in [("ensemble.py", runs["base"], runs["better"], "--out", out / "ens"),
                    ("pool_folds.py", *folds, "--out", out / "cv"),
                    ("import_predictions.py", tmp_path / "theirs.csv", "--like", runs["base"], "--out", out / "imp"),
                    ("import_model.py", _their_model(tmp_path / "enet_b0_8_va_mtl.onnx"), "--like", "hsemotion",
                     "--out", out / "hse.onnx")]:
        done = _run_on_a_full_disk(*command)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error: No space left on device (writing ") and \
            f" MB to {command[-1]}" in done.stderr, done.stderr  # the folder asked for, not a hidden one
        assert not out.exists() or not any(out.iterdir())  # no half folder, no hidden one, no temporary file


def test_pool_folds_writes_one_run_folder_scored_on_every_image(runs, tmp_path):
    from fer_core.report import run_details
    from fer_core.runs import validate_run

    folds = write_cv_folds(runs["base"], tmp_path, "cv", first_stage=runs["base-s1"])
    out = _run("pool_folds.py", *reversed(folds), "--out", tmp_path / "cv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("cv (2 of 2 folds pooled, n=300, accuracy 95% CI [")
    run, problems = validate_run(tmp_path / "cv")
    assert run is not None and not problems and run.splits == ["test"]
    pooled = pd.read_csv(tmp_path / "cv" / "predictions_test.csv", dtype={"id": str})
    base = pd.read_csv(runs["base"] / "predictions_test.csv", dtype={"id": str})
    assert pooled["id"].tolist() == base["id"].tolist()  # fold 1's images first, whatever the order given
    pooled_m = json.loads((tmp_path / "cv" / "metrics_test.json").read_text())
    assert pooled_m["accuracy"] == pytest.approx(_accuracy(runs["base"]))
    assert pooled_m["data_root"] == json.loads((folds[0] / "metrics_test.json").read_text())["data_root"]
    cfg = run.config
    first_minutes = json.loads((runs["base-s1"] / "config.json").read_text())["train_minutes"]
    assert cfg["status"] == "cross-validation" and cfg["split"]["folds"] == 2
    assert [f["fold"] for f in cfg["fold_runs"]] == [1, 2]
    assert cfg["train_minutes"] == pytest.approx(first_minutes + 3.0 + 4.0, abs=1e-3)  # the shared stage once
    details = run_details([run]).loc["cv"]
    assert details["train / val / test"] == "– / – / 300" and details["epochs"] == "–"

    # two cross-validations on the same folds ensemble like single runs, on every image
    write_cv_folds(runs["better"], tmp_path, "cv-better", first_stage=runs["base-s1"])
    assert _run("pool_folds.py", tmp_path / "cv-better-fold1", tmp_path / "cv-better-fold2",
                "--out", tmp_path / "cv-better").returncode == 0
    ens = _run("ensemble.py", tmp_path / "cv", tmp_path / "cv-better", "--out", tmp_path / "ens")
    assert ens.returncode == 0 and "ensemble (test split, n=300" in ens.stdout, ens.stderr


def test_compare_runs_tests_two_cross_validations_fold_by_fold(runs, tmp_path):
    from scipy import stats

    for name, run in (("cv", runs["base"]), ("cv-better", runs["better"])):
        write_cv_folds(run, tmp_path, name, first_stage=runs["base-s1"])
        assert _run("pool_folds.py", tmp_path / f"{name}-fold1", tmp_path / f"{name}-fold2",
                    "--out", tmp_path / name).returncode == 0
    out = _run("compare_runs.py", tmp_path / "cv", tmp_path / "cv-better")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "fold by fold" in ln)
    acc = lambda f: (f["pred"] == f["true"]).mean()  # noqa: E731
    read = lambda run: pd.read_csv(tmp_path / run / "predictions_test.csv")  # noqa: E731
    d = np.array([acc(read(f"cv-better-fold{k}")) - acc(read(f"cv-fold{k}")) for k in (1, 2)])
    t = d.mean() / np.sqrt((1 / 2 + 1 / 2) * d.var(ddof=1))  # two folds, each testing half as many as it trained on
    assert f"accuracy {d[0]:+.3f}, {d[1]:+.3f}; mean {d.mean():+.3f}" in line
    assert line.endswith(f"t = {t:.2f}, p = {2 * stats.t.sf(abs(t), 1):.3f}")
    # the same comma-separated; a fixed-split run beside a cross-validation gets no such line
    folds = [",".join(str(tmp_path / f"{n}-fold{k}") for k in (1, 2)) for n in ("cv", "cv-better")]
    assert line.split(" fold by fold ")[1] in _run("compare_runs.py", *folds).stdout
    assert "fold by fold" not in _run("compare_runs.py", runs["base"], tmp_path / "cv-better").stdout
    # folds are paired by the images they test, not by the order given
    reversed_folds = ",".join(str(tmp_path / f"cv-better-fold{k}") for k in (2, 1))
    swapped = _run("compare_runs.py", folds[0], reversed_folds).stdout  # listed in the order given
    assert f"accuracy {d[1]:+.3f}, {d[0]:+.3f}; mean {line.split('; mean ')[1]}" in swapped
    # folds that test other images (another split seed): nothing to pair
    one, two = (pd.read_csv(tmp_path / f"cv-better-fold{k}" / "predictions_test.csv", dtype={"id": str})
                for k in (1, 2))
    for k, part in ((1, one.iloc[1:]), (2, pd.concat([one.iloc[:1], two]))):
        shutil.copytree(tmp_path / f"cv-better-fold{k}", tmp_path / f"other-fold{k}")
        part.to_csv(tmp_path / f"other-fold{k}" / "predictions_test.csv", index=False)
    other = ",".join(str(tmp_path / f"other-fold{k}") for k in (1, 2))
    out = _run("compare_runs.py", folds[0], other)
    assert out.returncode == 0 and "fold by fold" not in out.stdout
    # a pooled folder moved away from its folds finds them where its config.json records them
    shutil.copytree(tmp_path / "cv", tmp_path / "elsewhere" / "cv")
    moved = _run("compare_runs.py", tmp_path / "elsewhere" / "cv", tmp_path / "cv-better").stdout
    assert line.split(" fold by fold ")[1] in moved


def test_pool_folds_refuses_runs_that_are_not_the_folds_of_one_cross_validation(runs, tmp_path):
    one, two = write_cv_folds(runs["base"], tmp_path, "cv", first_stage=runs["base-s1"])
    cfg = json.loads((two / "config.json").read_text())

    def refusal(second: Path, config: dict) -> str:
        with pytest.raises(ValueError) as e:
            R.check_folds([one, second], [json.loads((one / "config.json").read_text()), config])
        return str(e.value)

    better = json.loads((runs["better"] / "config.json").read_text())
    assert "not a cross-validation fold" in refusal(runs["better"], better)
    assert "are both fold 1" in refusal(two, {**cfg, "split": {**cfg["split"], "fold": 1}})
    assert "another number of folds" in refusal(two, {**cfg, "split": {**cfg["split"], "folds": 3}})
    (two / "config.json").write_text(json.dumps({**cfg, "args": {**cfg["args"], "epochs": 99}}))
    out = _run("pool_folds.py", one, two, "--out", tmp_path / "c")
    assert out.returncode == 1 and "trained with other arguments than cv-fold1 (epochs)" in out.stderr
    assert not (tmp_path / "c").exists()
    half = _run("pool_folds.py", one, "--out", tmp_path / "d")
    assert half.returncode == 0 and "warning: 1 of 2 folds" in half.stderr
    assert _run("pool_folds.py", one, "--out", tmp_path / "d").returncode == 2  # not empty: kept


def test_calibrate_refuses_pooled_folds_and_splits_it_cannot_fit_on_without_suggesting_what_fails(runs, tmp_path):
    def calibrate(*args):
        return subprocess.run([sys.executable, "-m", "fer_core.calibrate", *map(str, args), "--dry-run"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)

    folds = write_cv_folds(runs["base"], tmp_path, "cv", first_stage=runs["base-s1"])
    assert _run("pool_folds.py", *folds, "--out", tmp_path / "cv").returncode == 0
    out = calibrate("--run", tmp_path / "cv")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "fer_core.evaluate" not in out.stderr
    assert f"{tmp_path / 'cv'} is a pooled cross-validation" in out.stderr
    assert f"Calibrate each fold's run instead (python -m fer_core.calibrate --run FOLD_RUN, for each of {folds[0]}, " \
           f"{folds[1]})" in out.stderr
    out = calibrate("--run", runs["base"], "--split", "bogus")
    assert out.returncode == 2 and "fer_core.evaluate" not in out.stderr
    assert "has no predictions_bogus.csv: --split names the predictions to fit on" in out.stderr
    assert "(it has predictions for test, val; never fit on test)" in out.stderr
    out = calibrate("--run", runs["base"], "--split", "train")  # a run without weights cannot be evaluated on it
    assert out.returncode == 2 and "fer_core.evaluate" not in out.stderr and "no checkpoints/best.pt" in out.stderr
    assert calibrate("--run", runs["base"]).returncode == 0

    # predictions that are test images under another name, or another checkpoint's, are not fitted on
    run = tmp_path / "base"
    shutil.copytree(runs["base"], run)
    shutil.copy(run / "predictions_test.csv", run / "predictions_heldout.csv")  # evaluate --split test --tag heldout
    out = calibrate("--run", run, "--split", "heldout")
    assert out.returncode == 2 and "300 of the 300 images in" in out.stderr and "are test images of the run" in out.stderr
    assert calibrate("--run", run, "--split", "train").returncode == 2  # nothing to fit on yet: said, no traceback
    metrics = json.loads((run / "metrics_val.json").read_text())
    (run / "metrics_val.json").write_text(json.dumps({**metrics, "checkpoint": str(run / "checkpoints" / "last.pt")}))
    out = calibrate("--run", run)
    assert out.returncode == 2 and "checkpoints/last.pt wrote them, but the run answers with its best" in out.stderr


def test_cross_validate_trains_every_fold_then_pools_them_and_continues_after_a_stop(tmp_path):
    from tests.conftest import make_affectnet_dir

    make_affectnet_dir(tmp_path / "data", n_per_class=6, size=48)
    tiny = ["--data", "data", "--epochs", "1", "--backbone", "mobilenet_v2", "--img-size", "48", "--batch-size", "16",
            "--workers", "0", "--aug", "none"]

    def cross_validate(*args):  # from the data's folder: relative paths are the caller's
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "cross_validate.py"), *args],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    out = cross_validate("--folds", "2", "--name", "cv <i>x</i>", "--out", "runs", "--", *tiny)
    assert out.returncode == 2 and "argument --name: a run name is a folder name under --out" in out.stderr
    assert not (tmp_path / "runs").exists()
    out = cross_validate("--folds", "2", "--name", "cv", "--out", "runs", "--", *tiny)
    assert out.returncode == 0, out.stderr
    assert "fold 1/2: training runs/cv-fold1" in out.stdout and "fold 2/2: training runs/cv-fold2" in out.stdout
    pooled = json.loads((tmp_path / "runs" / "cv" / "config.json").read_text())
    assert [Path(f["run"]).name for f in pooled["fold_runs"]] == ["cv-fold1", "cv-fold2"]
    assert pooled["split"]["counts"]["test"] == 48  # every image tested once
    # the dashboard's command for it trains its folds again: cross_validate.py with the folds' own arguments
    from fer_core.runs import discover_runs, recipe_config, train_command
    from fer_core.train_args import get_args_parser

    runs = discover_runs(tmp_path / "runs")[0]
    cv = next(r for r in runs if r.name == "cv")
    command = shlex.split(train_command(cv.config, cv.path, recipe_config(cv, runs)))
    assert command[:7] == ["python", "scripts/cross_validate.py", "--folds", "2", "--out", str(tmp_path / "runs"),
                           "--name"] and command[7:9] == ["cv-again", "--"]
    parsed, fold_args = get_args_parser().parse_args(command[9:]), json.loads(
        (tmp_path / "runs" / "cv-fold1" / "config.json").read_text())["args"]
    assert parsed.data == str((tmp_path / "data").resolve()) and parsed.fold is None
    assert all(getattr(parsed, k) == v for k, v in fold_args.items() if getattr(parsed, k) is not None)
    again = cross_validate("--folds", "2", "--name", "cv", "--out", "runs", "--", *tiny)
    assert again.returncode == 2 and "exists already: this cross-validation is done" in again.stderr
    assert "(or add --final)" in again.stderr
    final = cross_validate("--folds", "2", "--name", "cv", "--out", "runs", "--final", "--", *tiny)
    assert final.returncode == 0, final.stderr
    assert "fold 1/2" not in final.stdout and "final model (no test part): training runs/cv-final" in final.stdout
    counts = json.loads((tmp_path / "runs" / "cv-final" / "config.json").read_text())["split"]["counts"]
    assert counts["test"] == 0 and counts["train"] + counts["val"] == 48
    ev = subprocess.run([sys.executable, "-m", "fer_core.evaluate", "--run", "runs/cv-final"], capture_output=True,
                        text=True, timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert ev.returncode == 2 and "has train, val parts only" in ev.stderr and "give --split val" in ev.stderr
    cmp = _run("compare_runs.py", tmp_path / "runs" / "cv-fold1", tmp_path / "runs" / "cv-final")
    assert cmp.returncode != 0 and "cv-final has no predictions on test (it has val: --split chooses)" in cmp.stderr
    again = cross_validate("--folds", "2", "--name", "cv", "--out", "runs", "--final", "--", *tiny)
    assert again.returncode == 0 and "runs/cv-final finished before, kept" in again.stdout
    other = cross_validate("--folds", "2", "--name", "cv", "--out", "runs", "--final", "--", *tiny, "--epochs", "2")
    assert other.returncode == 2 and "trained otherwise than these arguments ask" in other.stderr
    assert "fold 1 (runs/cv-fold1): epochs 1, not 2" in other.stderr and "runs/cv-final): epochs 1, not 2" in other.stderr

    # an interrupted cross-validation: fold 2 stopped, and the pooling cut off (an empty folder left)
    shutil.rmtree(tmp_path / "runs" / "cv")
    (tmp_path / "runs" / "cv").mkdir()
    config = tmp_path / "runs" / "cv-fold2" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "status": "stopped"}))
    out = cross_validate("--folds", "2", "--name", "cv", "--out", "runs", "--", *tiny)
    assert out.returncode == 0, out.stderr
    assert "fold 1/2: runs/cv-fold1 finished before, kept" in out.stdout
    assert "fold 2/2: resuming (stopped) runs/cv-fold2" in out.stdout
    assert json.loads(config.read_text())["status"] == "finished" and (tmp_path / "runs" / "cv").is_dir()

    import socket

    cut = tmp_path / "runs" / "cv2-fold1"  # a fold whose training is still in its first epoch: left alone
    cut.mkdir()
    (cut / R.CLAIM).write_text(f"{os.getpid()} {socket.gethostname()}")
    out = cross_validate("--folds", "2", "--name", "cv2", "--out", "runs", "--", *tiny)
    assert out.returncode == 1 and f"holds no finished epoch yet, and process {os.getpid()}" in out.stderr
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (cut / R.CLAIM).write_text(f"{gone.stdout.strip()} {socket.gethostname()}")  # killed in its first epoch
    out = cross_validate("--folds", "2", "--name", "cv2", "--out", "runs", "--", *tiny)
    assert out.returncode == 0, out.stderr
    assert "fold 1/2: runs/cv2-fold1 was cut off in its first epoch: trained again from the start" in out.stdout
    out = cross_validate("--folds", "2", "--name", "cv3", "--", *tiny, "--fold", "1/2")
    assert out.returncode == 2 and "--fold: this script chooses" in out.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_cross_validate_passes_a_sigterm_on_to_the_training_it_waits_for(tmp_path):
    import signal
    import time

    from tests.conftest import make_affectnet_dir

    make_affectnet_dir(tmp_path / "data", n_per_class=6, size=48)
    p = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "cross_validate.py"), "--folds", "2", "--name", "cv",
                          "--out", "runs", "--", "--data", "data", "--epochs", "500", "--backbone", "mobilenet_v2",
                          "--img-size", "48", "--weights", "none", "--workers", "0", "--aug", "none"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    config = tmp_path / "runs" / "cv-fold1" / "config.json"
    try:
        deadline = time.time() + 240
        while not config.is_file() and p.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)  # to the script alone, as `kill PID` does
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 128 + signal.SIGTERM and "run the same command again to continue from it" in err, err
    assert json.loads(config.read_text())["status"] == "stopped"  # the training stopped too, and kept its epochs


def test_every_fer_command_in_pyproject_answers_help(monkeypatch, capsys):
    import importlib
    import tomllib
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"fer-train", "fer-evaluate", "fer-predict", "fer-export", "fer-calibrate"}
    for name, target in scripts.items():
        module, func = target.split(":")
        monkeypatch.setattr(sys, "argv", [name, "--help"])
        with pytest.raises(SystemExit) as e:
            getattr(importlib.import_module(module), func)()
        assert e.value.code == 0 and "usage:" in capsys.readouterr().out, name


def test_scripts_refuse_an_out_that_is_a_file(runs, tmp_path):
    (tmp_path / "afile").write_text("notes")
    for script, args in (("ensemble.py", [runs["base"], runs["better"]]), ("pool_folds.py", [runs["base"]])):
        out = _run(script, *args, "--out", tmp_path / "afile")
        assert out.returncode == 2 and f"--out {tmp_path / 'afile'} is a file" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert (tmp_path / "afile").read_text() == "notes"


def _fer2013(tmp_path, usage=True, rows=None) -> Path:
    """A FER2013 pixel CSV: row i holds a 48x48 image of grey level 10 * i, emotion i % 7, in Training,
    PublicTest or PrivateTest by thirds (without the Usage column if ``usage`` is false)."""
    rows = rows or [(i % 7, " ".join([str(10 * i)] * 2304), ["Training", "PublicTest", "PrivateTest"][i * 3 // 9])
                    for i in range(9)]
    path = tmp_path / "fer2013.csv"
    lines = ["emotion,pixels" + (",Usage" if usage else "")]
    lines += [f"{e},{p}" + (f",{u}" if usage else "") for e, p, u in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fer2013_pixel_csv_becomes_class_folders_the_readers_take(tmp_path):
    from PIL import Image

    from fer_core.data import read_dataset

    out = _run("fer2013_images.py", _fer2013(tmp_path), "--out", tmp_path / "fer")
    assert out.returncode == 0, out.stderr
    assert "wrote 9 images to" in out.stdout and "train 3, val 3, test 3" in out.stdout
    index = read_dataset(tmp_path / "fer")
    got = {s.path: (s.label, s.split) for s in index.samples}
    # FER2013's codes 0-6 are Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral
    assert got == {"train/Anger/fer0000000.png": (6, "train"), "train/Disgust/fer0000001.png": (5, "train"),
                   "train/Fear/fer0000002.png": (4, "train"), "val/Happy/fer0000003.png": (1, "val"),
                   "val/Sad/fer0000004.png": (2, "val"), "val/Surprise/fer0000005.png": (3, "val"),
                   "test/Neutral/fer0000006.png": (0, "test"), "test/Anger/fer0000007.png": (6, "test"),
                   "test/Disgust/fer0000008.png": (5, "test")}
    img = np.asarray(Image.open(tmp_path / "fer" / "val" / "Sad" / "fer0000004.png"))
    assert img.shape == (48, 48) and (img == 40).all()
    out = _run("fer2013_images.py", _fer2013(tmp_path, usage=False), "--out", tmp_path / "plain")
    assert out.returncode == 0 and sorted(p.name for p in (tmp_path / "plain").iterdir())[:2] == ["Anger", "Disgust"]


def test_fer2013_with_ferplus_votes_becomes_the_ferplus_layout(tmp_path):
    from fer_core.data import read_dataset

    votes = [[0, 0, 7, 1, 0, 0, 2, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], [9, 1, 0, 0, 0, 0, 0, 0, 0, 0]] * 3
    names = [f"fer{i:07d}.png" if i % 3 != 1 else "" for i in range(9)]  # FER+ names no image it found no face in
    usage = ["Training", "PublicTest", "PrivateTest"]
    plus = tmp_path / "fer2013new.csv"
    plus.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                    + "".join(f"{usage[i * 3 // 9]},{names[i]},{','.join(map(str, votes[i]))}\n" for i in range(9)))
    out = _run("fer2013_images.py", _fer2013(tmp_path), "--ferplus", plus, "--out", tmp_path / "ferplus")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ferplus" / "FER2013Train" / "label.csv").read_text() == (
        'fer0000000.png,"(0, 0, 48, 48)",0,0,7,1,0,0,2,0,0,0\nfer0000002.png,"(0, 0, 48, 48)",9,1,0,0,0,0,0,0,0,0\n')
    index = read_dataset(tmp_path / "ferplus")
    assert index.layout == "ferplus" and sorted((s.id, s.label) for s in index.samples) == [
        ("Test/fer0000006", 3), ("Test/fer0000008", 0), ("Train/fer0000000", 3), ("Train/fer0000002", 0),
        ("Valid/fer0000003", 3), ("Valid/fer0000005", 0)]
    # one row fewer in FER+'s file: refused, and nothing is left behind
    plus.write_text("\n".join(plus.read_text().splitlines()[:-1]) + "\n")
    out = _run("fer2013_images.py", _fer2013(tmp_path), "--ferplus", plus, "--out", tmp_path / "short")
    assert out.returncode == 2 and "has 8 rows and" in out.stderr and "9:" in out.stderr
    assert not any(p.name.startswith((".short", "short")) for p in tmp_path.iterdir())
    # a row without its ten vote counts: named, and refused
    lines = plus.read_text().splitlines() + ["PrivateTest,fer0000008.png,1,2"]
    plus.write_text("\n".join(lines) + "\n")
    out = _run("fer2013_images.py", _fer2013(tmp_path), "--ferplus", plus, "--out", tmp_path / "short")
    assert out.returncode == 2 and "row 10: expected Usage, Image name and ten vote counts" in out.stderr


@pytest.mark.parametrize("pixels, message", [
    (" ".join(["1"] * 2000), "row 3: pixels holds 2000 values, expected 2304 (48x48)"),
    (" ".join(["300"] * 2304), "row 3: pixel values run from 300 to 300, expected 0 to 255"),
    (" ".join(["x"] * 2304), "row 3: pixels holds something other than whole numbers"),
])
def test_fer2013_bad_rows_are_named_and_leave_nothing_behind(tmp_path, pixels, message):
    good = (3, " ".join(["5"] * 2304), "Training")
    out = _run("fer2013_images.py", _fer2013(tmp_path, rows=[good, (3, pixels, "Training")]), "--out", tmp_path / "o")
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fer2013.csv"]  # no half-written data set


def test_fer2013_pixel_csv_given_as_data_says_how_to_convert_it(tmp_path):
    from fer_core.data import DataError, read_dataset

    csv_path = _fer2013(tmp_path)
    for given in (csv_path, tmp_path):
        with pytest.raises(DataError, match=r"FER2013's pixel CSV.*python scripts/fer2013_images.py"):
            read_dataset(given)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    out = _run("fer2013_images.py", csv_path, "--out", tmp_path / "taken")
    assert out.returncode == 2 and "exists and is not an empty folder" in out.stderr


def test_import_predictions_tells_apart_images_of_one_name_in_the_datas_parts(tmp_path):
    from fer_core.labels import CLASSES
    from tests.fixture_runs import write_images

    paths, true = [], []
    for part in ("train", "test"):
        for k, name in enumerate(CLASSES):
            for j in range(2):
                paths.append(f"{part}/{name.lower()}/{name.lower()}_{j}.png")  # the same names in both parts
                true.append(k)
    write_images(tmp_path / "data", paths, true)
    theirs = pd.DataFrame({"path": ["D:\\theirs\\" + p.replace("/", "\\") for p in paths],  # a copy on Windows
                           "pred": [CLASSES[k] if p.startswith("test") else CLASSES[(k + 1) % 8]
                                    for p, k in zip(paths, true)]})
    theirs.to_csv(tmp_path / "theirs.csv", index=False)
    out = _run("import_predictions.py", tmp_path / "theirs.csv", "--data", tmp_path / "data", "--split", "test",
               "--out", tmp_path / "imp")
    assert out.returncode == 0, out.stderr
    assert "acc 1.0000" in out.stdout and "[data-test, n=16]" in out.stdout  # the train rows are not test images
    assert "16 of their 32 rows name no image scored here" in out.stderr
    theirs.iloc[[0, 0]].assign(path=["train/neutral/neutral_0.png", "E:/copy/train/neutral/neutral_0.png"]).to_csv(
        tmp_path / "twice.csv", index=False)
    out = _run("import_predictions.py", tmp_path / "twice.csv", "--data", tmp_path / "data", "--out", tmp_path / "b")
    assert out.returncode == 2 and "lines 2 and 3 both name train/neutral/neutral_0.png" in out.stderr


def test_subgroups_prints_a_table_per_property_and_says_what_is_not_at_hand(tmp_path):
    run = write_run(tmp_path, "r", n=120, images=None, n_boot=5)
    ids = pd.read_csv(run / "predictions_test.csv", dtype={"id": str})["id"]
    (tmp_path / "groups.csv").write_text("id;camera\n" + "".join(f"{i};{'AB'[k % 2]}\n" for k, i in enumerate(ids)))
    out = _run("subgroups.py", run, "--groups", tmp_path / "groups.csv", "--bins", 3)
    assert out.returncode == 0, out.stderr
    # the stand-in images are one colour per class: eight brightness values, 15 images each
    assert "## brightness\n\nEvery value has fewer than 20 images: nothing to compare." in out.stdout
    camera = out.stdout.split("## camera\n")[1].strip().splitlines()
    assert camera[0].startswith("| group | images | r (p ") and [ln.split(" | ")[1] for ln in camera[2:]] == \
        [str((ids.index % 2 == 0).sum()), str((ids.index % 2 == 1).sum())]  # A, then B
    crossed = _run("subgroups.py", run, "--groups", tmp_path / "groups.csv", "--by", "camera", "--then", "brightness")
    assert crossed.returncode == 0 and "## camera · brightness\n" in crossed.stdout
    missing = _run("subgroups.py", run, "--by", "head roll")
    assert missing.returncode == 2 and "'head roll' not at hand; the runs' images give brightness" in missing.stderr
    bad = _run("subgroups.py", run, "--groups", tmp_path / "nope.csv")
    assert bad.returncode == 2 and "nope.csv: no such file" in bad.stderr


# ---------------------------------------------------------------- import_model.py

HSE_ORDER = ["Anger", "Contempt", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]


def _their_model(path: Path, n_classes: int = 8, va: bool = True, side: int = 32, batch="n", channels_last=False,
                 probabilities=False, embedding=False, half=False):
    """An ONNX model shaped as HSEmotion's: input "image" [batch, 3, side, side], one output of n_classes logits (then
    valence, arousal), no FER Lab metadata; or with probabilities instead of logits, an embedding [batch, 16] as its
    first output, a float16 input."""
    import torch

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(3 * 4 * 4, n_classes + 2 * va)

        def forward(self, x):
            x = x.permute(0, 3, 1, 2) if channels_last else x.float()
            features = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
            scores = self.fc(features)
            if probabilities:
                scores = torch.cat([scores[:, :n_classes].softmax(1), scores[:, n_classes:]], 1)
            return (features[:, :16], scores) if embedding else scores

    shape = (1, side, side, 3) if channels_last else (1, 3, side, side)
    with warnings.catch_warnings():  # the TorchScript exporter's notice that it is the old one
        warnings.simplefilter("ignore")
        torch.onnx.export(Theirs(), (torch.zeros(shape, dtype=torch.float16 if half else torch.float32),), str(path),
                          dynamo=False, input_names=["image"], output_names=["embedding", "scores"] if embedding else
                          ["scores"], dynamic_axes={"image": {0: batch}} if batch else None)
    return path


def test_import_model_answers_as_the_original_in_fer_labs_class_order(tmp_path):
    import onnxruntime as ort
    from scipy.special import softmax

    from fer_core.inference import Predictor
    from fer_core.labels import CLASSES

    theirs = _their_model(tmp_path / "enet_b0_8_va_mtl.onnx")
    out = _run("import_model.py", theirs, "--like", "hsemotion", "--out", tmp_path / "hse.onnx")
    assert out.returncode == 0, out.stderr
    assert "Anger, Contempt, Disgust, Fear, Happy, Neutral, Sad, Surprise" in out.stdout
    assert "valence/arousal: its scores' last two columns" in out.stdout
    crops = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    x = (crops.transpose(0, 3, 1, 2) / 255 - np.array([0.485, 0.456, 0.406])[:, None, None]) / \
        np.array([0.229, 0.224, 0.225])[:, None, None]
    scores = ort.InferenceSession(str(theirs)).run(None, {"image": x.astype(np.float32)})[0]
    p = Predictor(tmp_path / "hse.onnx", detector=None)
    assert p.img_size == 32 and p.has_va and not p.tta and p.temperature == 1
    assert p.info()["trained"].startswith("by its authors, not by FER Lab: imported from enet_b0_8_va_mtl.onnx "
                                          "(sha256 ")
    assert p.info()["init"] is None
    probs, va = p.predict_batch(crops)
    want = softmax(scores[:, :8].astype(np.float64), axis=1)[:, [HSE_ORDER.index(c) for c in CLASSES]]
    np.testing.assert_allclose(probs, want, atol=1e-5)
    np.testing.assert_allclose(va, scores[:, 8:], atol=1e-5)


def test_import_model_gives_a_class_the_model_lacks_probability_zero(tmp_path, affectnet_dir):
    from fer_core.inference import Predictor

    theirs = _their_model(tmp_path / "enet_b2_7.onnx", n_classes=7, va=False)
    out = _run("import_model.py", theirs, "--like", "hsemotion", "--out", tmp_path / "seven.onnx")
    assert out.returncode == 0, out.stderr
    assert "Contempt: not in the model, probability 0" in out.stdout and "valence/arousal: none" in out.stdout
    p = Predictor(tmp_path / "seven.onnx", detector=None)
    probs, _ = p.predict_batch(np.full((2, 32, 32, 3), 128, np.uint8))
    assert probs[:, 7].max() < 1e-6 and not p.has_va
    ev = subprocess.run([sys.executable, "-m", "fer_core.evaluate", "--run", tmp_path / "seven.onnx", "--data",
                         affectnet_dir, "--out", tmp_path / "scored"], capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr
    assert "seven is another tool's model: which images its authors trained it on cannot be told here" in ev.stderr
    ev = subprocess.run([sys.executable, "-m", "fer_core.evaluate", "--run", tmp_path / "seven.onnx", "--out",
                         tmp_path / "nowhere"], capture_output=True, text=True, timeout=120)
    assert ev.returncode == 2 and "names no data of its own: give --data DIR" in ev.stderr, ev.stderr
    pred = pd.read_csv(tmp_path / "scored" / "predictions_affectnet-all.csv")
    assert len(pred) == 48 and pred["valence_pred"].isna().all()
    found, problems = R.discover_runs(tmp_path)  # the dashboard lists it beside FER Lab's runs
    assert [r.name for r in found] == ["scored"] and not problems
    evaluated = json.loads((tmp_path / "scored" / "config.json").read_text())["evaluated_model"]
    assert evaluated["trained_on"] == "its authors' data (an imported model)"


def test_import_model_leaves_out_columns_named_dash(tmp_path):
    """A FER+ model's ten columns: its eight classes, unknown and not-a-face; the eight renormalised."""
    import onnxruntime as ort
    from scipy.special import softmax

    from fer_core.inference import Predictor
    from fer_core.labels import CLASSES

    theirs = _their_model(tmp_path / "ferplus.onnx", n_classes=10, va=False)
    ferplus = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    out = _run("import_model.py", theirs, "--classes", ",".join(ferplus + ["-", "-"]), "--mean", "0,0,0", "--std",
               "1,1,1", "--out", tmp_path / "fp.onnx")
    assert out.returncode == 0, out.stderr
    assert "Contempt, -, -) put in FER Lab's order; valence/arousal: none" in out.stdout
    crops = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    scores = ort.InferenceSession(str(theirs)).run(None, {"image": (crops.transpose(0, 3, 1, 2) / 255).astype(
        np.float32)})[0]
    names = ["Neutral", "Happy", "Surprise", "Sad", "Anger", "Disgust", "Fear", "Contempt"]
    want = softmax(scores[:, :8].astype(np.float64), axis=1)[:, [names.index(c) for c in CLASSES]]
    np.testing.assert_allclose(Predictor(tmp_path / "fp.onnx", detector=None).predict_batch(crops)[0], want,
                               atol=1e-5)


def test_import_model_takes_probabilities_and_finds_the_scores_among_other_outputs(tmp_path):
    """Probabilities (a softmax at its end) become logits whose softmax gives them back; an embedding output before
    the scores is passed over."""
    import onnxruntime as ort

    from fer_core.inference import Predictor
    from fer_core.labels import CLASSES

    theirs = _their_model(tmp_path / "probs.onnx", probabilities=True, embedding=True)
    out = _run("import_model.py", theirs, "--like", "hsemotion", "--out", tmp_path / "p.onnx")
    assert out.returncode == 0, out.stderr
    assert "its probabilities (Anger," in out.stdout and "valence/arousal: its scores' last two columns" in out.stdout
    crops = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = (crops.transpose(0, 3, 1, 2) / 255 - np.array([0.485, 0.456, 0.406])[:, None, None]) / \
        np.array([0.229, 0.224, 0.225])[:, None, None]
    scores = ort.InferenceSession(str(theirs)).run(["scores"], {"image": x.astype(np.float32)})[0]
    probs, va = Predictor(tmp_path / "p.onnx", detector=None).predict_batch(crops)
    np.testing.assert_allclose(probs, scores[:, [HSE_ORDER.index(c) for c in CLASSES]], atol=1e-5)
    np.testing.assert_allclose(va, scores[:, 8:], atol=1e-5)


def test_import_model_writes_no_file_over_another(tmp_path):
    theirs = _their_model(tmp_path / "theirs.onnx")
    before = theirs.read_bytes()
    out = _run("import_model.py", theirs, "--like", "hsemotion", "--out", theirs)
    assert out.returncode == 2 and "is the model itself" in out.stderr and theirs.read_bytes() == before
    assert _run("import_model.py", theirs, "--like", "hsemotion", "--out", tmp_path / "w.onnx").returncode == 0
    out = _run("import_model.py", theirs, "--like", "hsemotion", "--out", tmp_path / "w.onnx")
    assert out.returncode == 2 and "exists: name a new file, or give --force" in out.stderr
    assert _run("import_model.py", theirs, "--like", "hsemotion", "--out", tmp_path / "w.onnx", "--force"
                ).returncode == 0
    out = _run("import_model.py", tmp_path / "w.onnx", "--like", "hsemotion", "--out", tmp_path / "again.onnx")
    assert out.returncode == 2 and "is a FER Lab model already" in out.stderr


@pytest.mark.parametrize("case, args, says", [
    ("channels last", {"channels_last": True}, "channels first"),
    ("batch of one", {"batch": None}, "runs it on batches of any size"),
    ("seven columns, eight names", {"n_classes": 7, "va": False}, "no output has 8 columns"),
    ("half-precision input", {"half": True}, "its input is float16"),
])
def test_import_model_refuses_what_it_cannot_wrap_and_writes_nothing(tmp_path, case, args, says):
    theirs = _their_model(tmp_path / "theirs.onnx", **args)
    out = _run("import_model.py", theirs, "--classes", ",".join(HSE_ORDER), "--out", tmp_path / "x.onnx")
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, (case, out.stderr)
    assert not (tmp_path / "x.onnx").exists()


def test_import_model_bad_arguments_say_what_is_wrong(tmp_path):
    theirs = _their_model(tmp_path / "theirs.onnx")
    for args, says in [(["--classes", "anger,bored"], "'bored' is no class name known here"),
                       (["--classes", ",".join(HSE_ORDER), "--mean", "0.5,0.5"], "three numbers"),
                       (["--classes", ",".join(HSE_ORDER), "--mean", "nan,0,0"], "three numbers"),
                       (["--classes", ",".join(HSE_ORDER), "--std", "0,0,0"], "three standard deviations above 0"),
                       (["--classes", "joy,anger,happy"], "'joy' and 'happy' both name Happy"),
                       (["--classes", ",".join(HSE_ORDER), "--img-size", "0"], "between 16 and 1024 pixels"),
                       (["--classes", ",".join(HSE_ORDER), "--va", "output"], "--va output: no other output"),
                       (["--classes", ",".join(HSE_ORDER)], "give --va last2 if its last two are valence and arousal"),
                       (["--like", "hsemotion", "--scores", "logits"], "--scores logits: no such output (it has "
                                                                        "scores [batch, 10])"),
                       (["--img-size", "64", "--like", "hsemotion"], "--img-size 64, but the model takes 32 px"),
                       ([], "give --classes")]:
        out = _run("import_model.py", theirs, *args, "--out", tmp_path / "x.onnx")
        assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    out = _run("import_model.py", tmp_path / "junk.onnx", "--like", "hsemotion", "--out", tmp_path / "x.onnx")
    assert out.returncode == 2 and "not an ONNX model" in out.stderr
    out = _run("import_model.py", tmp_path / "missing.onnx", "--like", "hsemotion", "--out", tmp_path / "x.onnx")
    assert out.returncode == 2 and "cannot read it" in out.stderr
    assert not (tmp_path / "x.onnx").exists()


# ---------------------------------------------------------------- affectnet_csv_images.py

def _original_release(root: Path, header: bool = True) -> dict[str, np.ndarray]:
    """AffectNet's original layout: Manually_Annotated_Images/<sub>/<name>.jpg, whole pictures with the face somewhere
    in them, and Manually_Annotated_file_lists/training.csv (with its header) and validation.csv (without, as some
    copies have it). Returns each face's pixels by its CSV path."""
    from PIL import Image

    from tests.conftest import pattern_image

    rng = np.random.default_rng(0)
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    faces = {}
    for name, n in (("training.csv", 12), ("validation.csv", 5)):
        rows = []
        for k in range(n):
            label = k % 8
            face = pattern_image(label, 56, rng)
            canvas = rng.integers(0, 256, (100, 140, 3), dtype=np.uint8)
            x, y = 10 + 7 * k % 60, 5 + 3 * k % 30
            canvas[y:y + 56, x:x + 56] = face
            rel = f"{k % 3}/{name[:5]}{k}.png"
            (root / "Manually_Annotated_Images" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(canvas).save(root / "Manually_Annotated_Images" / rel)
            faces[rel] = face
            points = ";".join(f"{x + 28 + j % 5:.2f};{y + 28 + j % 7:.2f}" for j in range(68))
            rows.append([rel, x, y, 56, 56, points, label, f"{0.1 * label - 0.3:.3f}", "-2" if k == 1 else "0.25"])
        rows += [[f"0/{name[:5]}gone.jpg", 0, 0, 50, 50, "", 3, 0.1, 0.1],  # no such image
                 [rows[0][0], 0, 0, 50, 50, "", 9, -2, -2],                 # Uncertain
                 [rows[0][0], "NULL", 0, 50, 50, "", 1, 0.1, 0.1],          # a value missing
                 [*rows[2][:5], "NULL", 2, 0.1, 0.1],                       # no landmarks: the face is kept
                 [*rows[3][:6], 3, 7, 0.1]]                                 # valence out of its range
        with open(lists / name, "w", newline="") as f:
            w = csv.writer(f)
            if header or name == "training.csv":
                w.writerow(["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                            "facial_landmarks", "expression", "valence", "arousal"])
            w.writerows(rows)
    return faces


def test_affectnet_csv_images_writes_the_later_release_that_fer_lab_reads(tmp_path):
    from fer_core.data import read_dataset, read_landmarks
    from fer_core.images import load_image

    faces = _original_release(tmp_path / "AffectNet", header=False)
    out = _run("affectnet_csv_images.py", tmp_path / "AffectNet", "--out", tmp_path / "data")
    assert out.returncode == 0, out.stderr
    assert ("train_set: wrote 13 images; left out a value missing 1, class 9 (Uncertain) 1, image missing 1, "
            "valence or arousal outside [-1, 1] 1" in out.stdout)
    assert "val_set: wrote 6 images" in out.stdout
    index = read_dataset(tmp_path / "data")
    assert len(index.samples) == 19 and {s.split for s in index.samples} == {"train", "test"}
    by_id = {s.id: s for s in index.samples}
    sources = pd.read_csv(tmp_path / "data" / "train_set" / "sources.csv")
    assert list(sources["id"]) == [*range(12), 15]  # rows 12-14 left out
    s = by_id["train_set/3"]
    assert s.label == 3 and s.valence == pytest.approx(0.0) and s.arousal == 0.25
    assert np.isnan(by_id["train_set/1"].arousal)  # -2: not annotated
    crop = np.asarray(load_image(tmp_path / "data" / s.path), float)
    face = np.asarray(faces[sources.loc[3, "source"]], float)
    assert crop.shape == (224, 224, 3)
    small = np.asarray(load_image(tmp_path / "data" / s.path).resize((56, 56)), float)
    assert np.abs(small - face).mean() < 12, np.abs(small - face).mean()  # the face, not the background around it
    assert read_landmarks(index) == 17 and by_id["train_set/15"].landmarks is None
    assert np.allclose(by_id["train_set/3"].landmarks[0], [0, 0], atol=0.01)  # the box's centre, as given
    assert not list(tmp_path.glob(".data.partial*"))


def test_data_readers_point_the_original_release_to_the_converter(tmp_path):
    from fer_core.data import DataError, read_dataset

    _original_release(tmp_path / "AffectNet")
    for given in ("", "Manually_Annotated_file_lists", "Manually_Annotated_file_lists/training.csv"):
        with pytest.raises(DataError, match="lists AffectNet's original release, whole pictures with face boxes") as e:
            read_dataset(tmp_path / "AffectNet" / given)
        assert f"python scripts/affectnet_csv_images.py {tmp_path / 'AffectNet'} --out DATA_FOLDER" in str(e.value)


def test_affectnet_csv_images_says_what_is_wrong_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    out = _run("affectnet_csv_images.py", tmp_path / "empty", "--out", tmp_path / "data")
    assert out.returncode == 2 and "no training.csv or validation.csv" in out.stderr
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "training.csv").write_text("path,label\na.jpg,happy\n")
    out = _run("affectnet_csv_images.py", tmp_path / "odd", "--out", tmp_path / "data")
    assert out.returncode == 2 and "not one of AffectNet's CSVs" in out.stderr
    (tmp_path / "odd" / "training.csv").write_text("subDirectory_filePath,face_x,face_y,face_width,face_height,"
                                                   "facial_landmarks,expression,valence,arousal\n")
    out = _run("affectnet_csv_images.py", tmp_path / "odd", "--out", tmp_path / "data")
    assert out.returncode == 2 and "no image in training.csv (no row below the header)" in out.stderr
    _original_release(tmp_path / "moved")
    shutil.rmtree(tmp_path / "moved" / "Manually_Annotated_Images")
    out = _run("affectnet_csv_images.py", tmp_path / "moved", "--out", tmp_path / "data")
    assert out.returncode == 2 and "is in none of" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "data").exists()
    assert not list(tmp_path.glob(".data.partial*"))


def test_a_new_folder_appears_whole_or_not_and_finished_work_is_never_thrown_away(tmp_path):
    from fer_core.io import whole_folder

    with pytest.raises(ValueError):
        with whole_folder(tmp_path / "failed") as partial:
            (partial / "a.txt").parent.mkdir(parents=True)
            (partial / "a.txt").write_text("half")
            raise ValueError("bad row")
    assert list(tmp_path.iterdir()) == []
    with whole_folder(tmp_path / "done") as partial:
        partial.mkdir()
        (partial / "a.txt").write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["done"] and (tmp_path / "done" / "a.txt").read_text() == "whole"
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "theirs.txt").write_text("someone wrote here meanwhile")
    with pytest.raises(OSError, match=r"the finished folder is kept as .*\.taken\.partial-\d+; rename it to"):
        with whole_folder(tmp_path / "taken") as partial:
            partial.mkdir()
            (partial / "a.txt").write_text("hours of work")
    kept = next(tmp_path.glob(".taken.partial-*"))
    assert (kept / "a.txt").read_text() == "hours of work"


def test_cross_validate_takes_a_weights_path_however_it_is_typed(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("cross_validate", ROOT / "scripts" / "cross_validate.py")
    cv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cv)
    monkeypatch.chdir(tmp_path)
    fold = tmp_path / "runs" / "cv-fold1"
    fold.mkdir(parents=True)
    for recorded in ("stage1/checkpoints/best.pt", str(tmp_path / "stage1" / "checkpoints" / "best.pt")):
        (fold / "config.json").write_text(json.dumps({"args": {"weights": recorded}, "data": {"root": str(tmp_path)}}))
        for typed in ("stage1/checkpoints/best.pt", str(tmp_path / "stage1" / "checkpoints" / "best.pt")):
            assert cv._other_recipe(fold, ["--data", ".", "--weights", typed]) is None  # the same file
        assert "weights" in cv._other_recipe(fold, ["--data", ".", "--weights", "other/best.pt"])
