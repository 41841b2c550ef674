"""End-to-end: train -> run folder -> evaluate, resume, torchrun with 2 CPU processes, CLI errors, real data."""
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fer_core import evaluate, train
from fer_core import runs as R
from fer_core.data import read_dataset
from fer_core.transforms import MIRROR_68, BatchAugment, _move_points
from tests.conftest import make_affectnet_dir, pattern_image, write_ferplus

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# ImageNet MobileNetV2 ships offline; from random weights, BatchNorm statistics of a few dozen steps make eval useless.
TINY = ["--backbone", "mobilenet_v2", "--img-size", "48", "--batch-size", "16", "--workers", "0", "--lr", "1e-3",
        "--aug", "none", "--label-smoothing", "0"]


def run_train(*argv):
    return train.main(train.get_args_parser().parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    data = make_affectnet_dir(base / "data", n_per_class=10, size=48)
    rc = run_train("--data", data, "--out", base / "runs", "--name", "tiny", "--epochs", "5", *TINY)
    assert rc == 0
    return base, data, base / "runs" / "tiny"


def test_images_too_many_for_memory_are_decoded_as_they_are_used_with_the_same_result(tiny_run, tmp_path,
                                                                                     monkeypatch):
    base, data, run = tiny_run
    monkeypatch.setattr(train, "fits_in_memory", lambda n, size, processes=1: False)
    assert run_train("--data", data, "--out", tmp_path, "--name", "lazy", "--epochs", "5", *TINY) == 0
    log = (tmp_path / "lazy" / "train.log").read_text()
    assert "train images are decoded as they are used, not held in memory" in log
    assert "--workers N would decode them in N processes beside training" in log  # TINY trains with --workers 0
    assert "val images are decoded as they are used" in log
    for f in ("history.csv", "predictions_test.csv"):  # the same images, the same seed: the same run
        a, b = (pd.read_csv(r / f).drop(columns="seconds", errors="ignore") for r in (run, tmp_path / "lazy"))
        assert np.allclose(a.select_dtypes("number"), b.select_dtypes("number"), atol=1e-5, equal_nan=True), f


def test_run_folder_is_complete(tiny_run):
    _, data, run = tiny_run
    for f in ["config.json", "history.csv", "split.csv", "train.log", "predictions_val.csv", "predictions_test.csv",
              "metrics_val.json", "metrics_test.json", "checkpoints/best.pt", "checkpoints/last.pt"]:
        assert (run / f).is_file(), f
    assert not list(run.rglob("*.tmp")), "temp files left behind"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["schema_version"] == 1 and cfg["status"] == "finished"
    assert "MobileNet_V2_Weights.IMAGENET1K_V1" in cfg["weights"]["loaded"]
    assert cfg["data"]["layout"] == "affectnet" and cfg["data"]["has_va"]
    assert sum(cfg["split"]["counts"].values()) == 80
    hist = pd.read_csv(run / "history.csv")
    assert list(hist["epoch"]) == [1, 2, 3, 4, 5]
    assert {"train_loss", "val_acc", "val_valence_rmse", "val_arousal_ccc", "lr", "seconds"} <= set(hist.columns)
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    pred = pd.read_csv(run / "predictions_test.csv")
    assert list(pred.columns[:4]) == ["id", "path", "true", "pred"]
    assert pred[[f"prob_{c}" for c in range(8)]].sum(axis=1).sub(1).abs().max() < 1e-3
    assert pred["valence_pred"].between(-1, 1).all()
    m = json.loads((run / "metrics_test.json").read_text())
    assert m["n"] == len(pred) and m["valence"] is not None
    # the patterns are learnable: a few epochs must beat chance (1/8) on held-out images
    assert m["accuracy"] > 0.5, m["accuracy"]
    assert "EMA decay" not in (run / "train.log").read_text()
    ckpt = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["config"]["backbone"] == "mobilenet_v2"


def test_a_soup_averages_the_runs_weights_and_needs_one_backbone(tiny_run, tmp_path):
    base, data, run = tiny_run
    assert run_train("--data", data, "--out", tmp_path, "--name", "seed1", "--epochs", "2", "--seed", "1",
                     "--split-from", run, *TINY) == 0

    def soup(*runs):
        out = subprocess.run([sys.executable, ROOT / "scripts" / "ensemble.py", *runs, "--soup"], cwd=ROOT,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        lines = {ln.split(" (")[0].strip(): ln.split(" (", 1)[1].split(";")[0] for ln in out.stdout.splitlines()}
        return lines["soup"], lines

    alone, lines = soup(run, run)  # the weights averaged with themselves: the run's own answers
    assert alone == lines["tiny"] == lines["ensemble"]
    mixed, lines = soup(run, tmp_path / "seed1")
    assert mixed != lines["tiny"] and mixed != lines["seed1"] and soup(tmp_path / "seed1", run)[0] == mixed
    other = shutil.copytree(run, tmp_path / "other")
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "backbone": "resnet18"}))
    out = subprocess.run([sys.executable, ROOT / "scripts" / "ensemble.py", run, other, "--soup"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "error: a soup needs one backbone; these runs have mobilenet_v2, resnet18" in \
        out.stderr and "Traceback" not in out.stderr


def test_evaluate_on_other_folder(tiny_run, tmp_path):
    base, _, run = tiny_run
    other = make_affectnet_dir(tmp_path / "other", n_per_class=3, size=48, seed=7)
    args = evaluate.get_args_parser().parse_args(["--run", str(run), "--data", str(other)])
    assert evaluate.main(args) == 0
    pred = pd.read_csv(run / "predictions_other-all.csv")
    assert len(pred) == 24
    m = json.loads((run / "metrics_other-all.json").read_text())
    assert m["data_root"] == str(other.resolve()) and m["n"] == 24


def test_evaluate_counts_trained_on_images_within_the_split_scored(tiny_run, tmp_path, capsys):
    """The run's own data as a full release's train_set/: the val_set/ test split holds none of its training images."""
    _, data, run = tiny_run
    release = tmp_path / "release"
    release.mkdir()
    os.symlink(data, release / "train_set")
    make_affectnet_dir(release / "val_set", n_per_class=2, size=48, seed=7)
    for more in ([], ["--split", "test"]):
        capsys.readouterr()
        argv = ["--run", str(run), "--data", str(release), "--out", str(tmp_path / f"ev{len(more)}"), *more]
        assert evaluate.main(evaluate.get_args_parser().parse_args(argv)) == 0
        err = capsys.readouterr().err
        assert "trained on" not in err, err
        assert len(pd.read_csv(next((tmp_path / f"ev{len(more)}").glob("predictions_*.csv")))) == 16
        metrics = json.loads(next((tmp_path / f"ev{len(more)}").glob("metrics_*.json")).read_text())
        assert metrics.get("left_out_trained", 0) == 0  # none of the test split's images, whatever train_set holds
    argv = ["--run", str(run), "--data", str(release), "--out", str(tmp_path / "all"), "--split", "all"]
    assert evaluate.main(evaluate.get_args_parser().parse_args(argv)) == 0
    n_train = len(pd.read_csv(run / "split.csv").query("split == 'train'"))
    assert f"note: {n_train} of these 96 images are images tiny, or a run its training started from" in \
        capsys.readouterr().err


def test_predict_notes_the_images_the_model_trained_on(tiny_run, tmp_path, capsys):
    from fer_core import predict

    base, data, run = tiny_run
    split = pd.read_csv(run / "split.csv", dtype=str)
    seen, unseen = (data / split.loc[split["split"] == part, "path"].iloc[0] for part in ("train", "test"))
    shutil.copy(seen, tmp_path / "copy.png")  # the same bytes under another name
    args = predict.get_args_parser().parse_args(["--run", str(run), "--whole-image", "--csv", str(tmp_path / "p.csv"),
                                                 str(seen), str(unseen), str(tmp_path / "copy.png")])
    assert predict.main(args) == 0
    notes = pd.read_csv(tmp_path / "p.csv", keep_default_na=False).set_index("path")["note"]
    assert predict.TRAINED_ON in notes[str(seen)] and predict.TRAINED_ON in notes[str(tmp_path / "copy.png")]
    assert predict.TRAINED_ON not in notes[str(unseen)]
    assert "2 of these images the model trained on" in capsys.readouterr().err


def test_evaluate_says_how_to_evaluate_an_ensemble_folder(tmp_path, capsys):
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "config.json").write_text(json.dumps({"name": "ens", "status": "ensemble"}))
    assert evaluate.main(evaluate.get_args_parser().parse_args(["--run", str(tmp_path / "ens")])) == 2
    assert "an ensemble folder, without a checkpoint of its own: export it first" in capsys.readouterr().err


def test_evaluate_takes_a_run_name_as_its_folder(tiny_run, monkeypatch):
    base, _, run = tiny_run
    monkeypatch.chdir(base)  # runs live in artifacts/runs under the working folder
    (base / "artifacts").mkdir(exist_ok=True)
    (base / "artifacts" / "runs").symlink_to(run.parent, target_is_directory=True)
    before = (run / "metrics_val.json").stat().st_mtime_ns
    assert evaluate.main(evaluate.get_args_parser().parse_args(["--run", "tiny", "--split", "val"])) == 0
    assert (run / "metrics_val.json").stat().st_mtime_ns > before  # written into the run folder, no --out needed


def _run_to_calibrate(tiny_run, tmp_path):
    """A copy of the tiny run (the shared folder stays as it was) whose val predictions are wrong on three images."""
    run = shutil.copytree(tiny_run[2], tmp_path / "tiny")
    val = pd.read_csv(run / "predictions_val.csv")
    assert (val["pred"] == val["true"]).all()  # the patterns are easy: every val image right, nothing to fit T on
    val.loc[:2, "true"] = (val.loc[:2, "pred"] + 1) % 8
    val.to_csv(run / "predictions_val.csv", index=False)
    return run, val


def test_calibrate_writes_a_temperature_that_evaluate_export_and_predictor_apply(tiny_run, tmp_path, capsys):
    from fer_core import calibrate, export
    from fer_core.inference import Predictor

    run, val = _run_to_calibrate(tiny_run, tmp_path)
    def cal(*argv):
        return calibrate.main(calibrate.get_args_parser().parse_args([str(a) for a in argv]))

    with pytest.MonkeyPatch.context() as m:  # a shared install's run folder that its user cannot write: said first
        m.setattr(calibrate, "unwritable_folder", lambda f: "cannot be written to (Permission denied)" * (f == run))
        assert cal("--run", run) == 2
    assert f"{run} cannot be written to (Permission denied), and the temperature" in capsys.readouterr().err
    assert "temperature" not in json.loads((run / "config.json").read_text())
    assert export.main(export.get_args_parser().parse_args(["--run", str(run)])) == 0  # best.onnx, before T
    onnx_file, pt_mtime = run / "checkpoints" / "best.onnx", (run / "checkpoints" / "best.onnx").stat().st_mtime_ns
    raw_onnx = onnx_file.read_bytes()
    capsys.readouterr()
    assert cal("--run", run) == 0
    out, err = capsys.readouterr()
    assert "fitted on 8 val predictions" in out and "test (8 images, held out): ECE" in out
    before, after = map(float, re.search(r"held out\): ECE ([\d.]+) -> ([\d.]+)", out).groups())
    if before != after:  # warned exactly where held-out ECE rises
        assert ("ECE rises" in err) == (after > before)
    t = json.loads((run / "config.json").read_text())["temperature"]["value"]
    assert calibrate.T_RANGE[0] < t < calibrate.T_RANGE[1] and t != 1
    assert onnx_file.stat().st_mtime_ns == pt_mtime  # stamped, its age kept
    onnx_pred = Predictor(onnx_file, detector=None)
    assert onnx_pred.temperature == t and f"temperature {t:.2f}" in onnx_pred.describe()
    crops = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    p_cal, va_cal = onnx_pred.predict_batch(crops)
    onnx_pred.temperature = 1.0
    p_raw, va_raw = onnx_pred.predict_batch(crops)
    assert np.allclose(p_cal, calibrate.apply_temperature(p_raw, t), atol=1e-5) and np.array_equal(va_cal, va_raw)
    assert (p_cal.argmax(1) == p_raw.argmax(1)).all() and not np.allclose(p_cal, p_raw, atol=1e-3)

    def ev(tag, *more):
        argv = ["--run", str(run), "--split", "test", "--out", str(tmp_path / "ev"), "--tag", tag, *more]
        assert evaluate.main(evaluate.get_args_parser().parse_args(argv)) == 0
        return (pd.read_csv(tmp_path / "ev" / f"predictions_{tag}.csv"),
                json.loads((tmp_path / "ev" / f"metrics_{tag}.json").read_text()))

    (raw, m_raw), (scaled, m_cal) = ev("raw", "--no-temperature"), ev("cal")
    assert m_raw["temperature"] == 1 and m_cal["temperature"] == t
    assert (raw["pred"] == scaled["pred"]).all() and m_raw["accuracy"] == m_cal["accuracy"]
    cols = [f"prob_{k}" for k in range(8)]
    probs, want = raw[cols].to_numpy(), scaled[cols].to_numpy()
    # the files round to 6 decimals, which a power 1/T > 1 magnifies in probabilities near 1e-6: rows without them
    exact = probs.min(1) >= 1e-5
    assert exact.sum() >= 3 and np.allclose(want[exact], calibrate.apply_temperature(probs[exact], t), atol=1e-3)
    assert ((want.max(1) < probs.max(1)) == (t > 1)).all()
    # predictions written with T are refitted from their raw probabilities: the same T, not T on top of T
    val[cols] = calibrate.apply_temperature(val[cols].to_numpy(), t)
    val.to_csv(run / "predictions_val.csv", index=False)
    (run / "metrics_val.json").write_text(json.dumps({"temperature": t}))
    assert cal("--run", run, "--dry-run") == 0
    assert f"temperature {t:.3f} fitted" in capsys.readouterr().out
    # a single-run export carries the run's temperature
    assert export.main(export.get_args_parser().parse_args(["--run", str(run), "--out", str(tmp_path / "m.onnx")])) == 0
    assert Predictor(tmp_path / "m.onnx", detector=None).temperature == t
    assert raw_onnx != onnx_file.read_bytes()
    capsys.readouterr()  # the run's own ONNX named again with --model is written once, and named once
    assert cal("--run", run, "--model", onnx_file) == 0
    assert capsys.readouterr().out.count("best.onnx") == 1


def test_calibrate_bad_input_says_what_is_wrong_and_writes_nothing(tiny_run, tmp_path, capsys):
    from fer_core import calibrate

    run, val = _run_to_calibrate(tiny_run, tmp_path)
    before = (run / "config.json").read_bytes()

    def cal(*argv):
        rc = calibrate.main(calibrate.get_args_parser().parse_args([str(a) for a in argv]))
        return rc, capsys.readouterr().err

    assert cal("--run", tmp_path / "nope") == (2, f"error: {tmp_path / 'nope'}: not a run folder (no config.json)\n")
    assert "fit on val" in cal("--run", run, "--split", "test")[1]
    assert "no such model file" in cal("--run", run, "--model", tmp_path / "x.onnx")[1]
    other = tmp_path / "other.pt"
    ckpt = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    torch.save({**ckpt, "config": {**ckpt["config"], "name": "someone-else"}}, other)
    rc, err = cal("--run", run, "--model", other)
    assert rc == 2 and "holds 'someone-else'" in err and "nothing written" in err
    (tmp_path / "notes.txt").write_text("hi")
    assert "not a model file" in cal("--run", run, "--model", tmp_path / "notes.txt")[1]
    val["true"] = val["pred"]
    val.to_csv(run / "predictions_val.csv", index=False)
    assert "right too often here to say how confident it should be" in cal("--run", run)[1]  # every one right
    val["true"] = (val["pred"] + 1) % 8
    val.to_csv(run / "predictions_val.csv", index=False)
    assert "has not learned the task yet" in cal("--run", run)[1]  # every one wrong: flatter is always better
    (run / "predictions_val.csv").unlink()
    assert "evaluate the run on its val split first" in cal("--run", run)[1]
    assert (run / "config.json").read_bytes() == before and not list(run.rglob("*.tmp"))


def test_evaluate_at_another_size(tiny_run, tmp_path, capsys):
    _, _, run = tiny_run
    cfg = json.loads((run / "config.json").read_text())
    args = evaluate.get_args_parser().parse_args(["--run", str(run), "--split", "val", "--img-size", "40",
                                                  "--out", str(tmp_path)])
    assert evaluate.main(args) == 0
    m = json.loads((tmp_path / "metrics_val-40px.json").read_text())  # named for how it answered, in any folder
    assert m["img_size"] == 40 != cfg["img_size"]
    with pytest.raises(SystemExit) as e:
        evaluate.get_args_parser().parse_args(["--run", str(run), "--img-size", "3", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "argument --img-size: must be between 16 and 1024 pixels, got 3" in capsys.readouterr().err


def test_evaluate_in_the_run_folder_keeps_its_own_results_and_calibrate_refuses_others(tiny_run, tmp_path, capsys):
    from fer_core import calibrate

    run = shutil.copytree(tiny_run[2], tmp_path / "tiny")
    own = {f: (run / f).read_bytes() for f in ("predictions_val.csv", "metrics_val.json")}
    args = evaluate.get_args_parser().parse_args(["--run", str(run), "--split", "val", "--img-size", "40", "--tta"])
    assert evaluate.main(args) == 0
    assert "written as predictions_val-40px-tta.csv: these settings differ from the ones the model answers with" in \
        capsys.readouterr().err
    assert {f: (run / f).read_bytes() for f in own} == own
    assert json.loads((run / "metrics_val-40px-tta.json").read_text())["img_size"] == 40
    rc = calibrate.main(calibrate.get_args_parser().parse_args(["--run", str(run), "--split", "val-40px-tta"]))
    assert rc == 2 and "they were made at 40 px, but the run answers at 48 px" in capsys.readouterr().err
    # a model file has no last checkpoint; a run folder without last.pt is said to have best.pt
    assert evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(run / "checkpoints" / "best.pt"), "--checkpoint", "last", "--out", str(tmp_path / "o")])) == 2
    assert "picks a checkpoint of a run folder" in capsys.readouterr().err
    # last.pt named as the model: its results go beside the run's own too
    assert evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(run / "checkpoints" / "last.pt"), "--split", "val"])) == 0
    assert (run / "metrics_val-last.json").is_file() and {f: (run / f).read_bytes() for f in own} == own
    (run / "checkpoints" / "last.pt").unlink()
    assert evaluate.main(evaluate.get_args_parser().parse_args(["--run", str(run), "--checkpoint", "last"])) == 2
    assert "holds best.pt: leave out --checkpoint last" in capsys.readouterr().err


def test_evaluate_and_export_say_what_is_wrong_with_a_damaged_model(tiny_run, tmp_path, capsys):
    from fer_core import export

    ckpt = torch.load(tiny_run[2] / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    files = {"random.pt": bytes(range(256)) * 40, "text.pt": b"not a checkpoint"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({**ckpt, "model": {}}, tmp_path / "empty.pt")
    torch.save({**ckpt, "config": {k: v for k, v in ckpt["config"].items() if k != "img_size"}}, tmp_path / "nosize.pt")
    for name, why in [("random.pt", "not a readable PyTorch checkpoint (damaged, cut short, or not a .pt file"),
                      ("text.pt", "not a readable PyTorch checkpoint"),
                      ("empty.pt", "cannot be loaded as a model: its weights do not fit the network its config"),
                      ("nosize.pt", "its config lacks img_size")]:
        args = ["--run", str(tmp_path / name), "--data", str(tiny_run[1]), "--out", str(tmp_path / "ev")]
        assert evaluate.main(evaluate.get_args_parser().parse_args(args)) == 2, name
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and "weights_only` set to `False" not in err, (name, err)
    # an export into another run's checkpoints/ would answer for that run
    other = shutil.copytree(tiny_run[2], tmp_path / "other")
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "name": "other", "created": "2026-01-01T00:00:00+00:00"}))
    out = other / "checkpoints" / "best.onnx"
    assert export.main(export.get_args_parser().parse_args(["--run", str(tiny_run[2]), "--out", str(out)])) == 2
    assert "is the run folder of other: a model file there answers for that run" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "tool").mkdir()  # another tool's config.json
    (tmp_path / "tool" / "config.json").write_text(json.dumps({"learning_rate": 0.1}))
    assert evaluate.other_owner(tmp_path / "tool", None, out, cfg) == "holds a config.json that is not a run's"


def test_evaluate_a_model_file_on_other_data_and_on_its_own(tiny_run, tmp_path, capsys):
    from fer_core import export

    base, data, run = tiny_run
    onnx = tmp_path / "tiny.onnx"
    assert export.main(export.get_args_parser().parse_args(["--run", str(run), "--out", str(onnx)])) == 0
    other = make_affectnet_dir(tmp_path / "other", n_per_class=3, size=48, seed=7)

    def ev(*argv):
        capsys.readouterr()
        return evaluate.main(evaluate.get_args_parser().parse_args([str(a) for a in argv]))

    assert ev("--run", onnx, "--data", other) == 2 and "give --out" in capsys.readouterr().err
    assert ev("--run", onnx, "--data", other, "--out", tmp_path / "o") == 0
    assert ev("--run", run, "--data", other, "--out", tmp_path / "c") == 0
    o = pd.read_csv(tmp_path / "o" / "predictions_other-all.csv")
    c = pd.read_csv(tmp_path / "c" / "predictions_other-all.csv")
    assert len(o) == 24 and (o["pred"] == c["pred"]).all()
    from fer_core.runs import validate_run  # the folder is a run the dashboard reads, naming the model it scored

    ev_run, problems = validate_run(tmp_path / "o")
    assert not problems and ev_run.splits == ["other-all"] and ev_run.data_root == str(other.resolve())
    assert ev_run.config["evaluated_model"]["file"] == str(onnx) and "args" not in ev_run.config
    trained_with = json.loads((run / "config.json").read_text())["environment"]
    assert json.loads((tmp_path / "c" / "config.json").read_text())["environment"] == trained_with
    assert (o.filter(like="prob_") - c.filter(like="prob_")).abs().max().max() < 1e-4
    # on the data it trained on, a loose model file does not know its test images: no silent scoring of them all
    assert ev("--run", onnx, "--out", tmp_path / "o") == 2
    assert "split.csv" in capsys.readouterr().err
    assert ev("--run", onnx, "--out", tmp_path / "o", "--split", "all") == 0
    assert "including those tiny trained on" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "o" / "predictions_all.csv")) == 80
    # next to its run's checkpoint, the export finds the run's split
    assert ev("--run", run / "checkpoints" / "best.pt", "--out", tmp_path / "t") == 0
    t = pd.read_csv(tmp_path / "t" / "predictions_test.csv")
    assert sorted(t["id"].astype(str)) == sorted(pd.read_csv(run / "predictions_test.csv")["id"].astype(str))
    # a copy of the training data elsewhere is still the training data: its test split is scored, not all of it
    shutil.copytree(data, tmp_path / "moved")
    assert ev("--run", run, "--data", tmp_path / "moved", "--out", tmp_path / "m") == 0
    assert (tmp_path / "m" / "predictions_test.csv").is_file()
    for f in (tmp_path / "moved" / "images").glob("1*.jpg"):  # part of it: the images it trained on left out
        f.unlink()
    assert ev("--run", run, "--data", tmp_path / "moved", "--out", tmp_path / "m") == 0
    err = capsys.readouterr().err
    left = int(err.split("note: left out ")[1].split()[0])
    assert "of these 44 images: tiny, or a run its training started from, trained on them (the same files" in err
    assert len(pd.read_csv(tmp_path / "m" / "predictions_moved-all.csv")) == 44 - left > 0


def test_evaluate_leaves_out_what_a_stage_before_the_model_trained_on(tiny_run, tmp_path, capsys):
    _, data, first = tiny_run  # a first stage on `data`, then a second on other data, started from its checkpoint
    other = make_affectnet_dir(tmp_path / "other", n_per_class=4, size=32, seed=3)
    assert run_train("--data", other, "--out", tmp_path / "runs", "--name", "second", "--epochs", "1", *TINY,
                     "--weights", first) == 0
    weights = json.loads((tmp_path / "runs" / "second" / "config.json").read_text())["weights"]
    assert weights["sha256"] == hashlib.sha256((first / "checkpoints" / "best.pt").read_bytes()).hexdigest()
    capsys.readouterr()
    argv = ["--run", str(tmp_path / "runs" / "second"), "--data", str(data), "--out", str(tmp_path / "ev")]
    assert evaluate.main(evaluate.get_args_parser().parse_args(argv)) == 0
    split = pd.read_csv(first / "split.csv", dtype={"id": str})
    trained = set(split.loc[split["split"] == "train", "id"])
    assert f"note: left out {len(trained)} of these" in capsys.readouterr().err
    scored = set(pd.read_csv(tmp_path / "ev" / f"predictions_{data.name}-all.csv", dtype={"id": str})["id"])
    assert scored and not scored & trained


def test_trains_on_the_full_affectnet_release_and_tests_on_its_validation_set(tmp_path):
    data = tmp_path / "AffectNet"
    make_affectnet_dir(data / "train_set", n_per_class=8, size=48)
    make_affectnet_dir(data / "val_set", n_per_class=2, size=48, seed=1)
    assert run_train("--data", data, "--out", tmp_path / "runs", "--name", "full", "--epochs", "1", *TINY) == 0
    run = tmp_path / "runs" / "full"
    split = pd.read_csv(run / "split.csv", dtype=str)
    assert sorted(split.loc[split["split"] == "test", "id"]) == sorted(f"val_set/{3 * k + 5}" for k in range(16))
    assert set(split.loc[split["split"] != "test", "id"].str.split("/").str[0]) == {"train_set"}
    pred = pd.read_csv(run / "predictions_test.csv", dtype={"id": str})
    assert len(pred) == 16 and pred["path"].str.startswith("val_set/images/").all()
    assert "validation set (val_set/) is the test split" in (run / "train.log").read_text()


def test_split_from_reuses_assignment(tiny_run):
    base, data, run = tiny_run
    rc = run_train("--data", data, "--out", base / "runs", "--name", "same-split", "--epochs", "1",
                   "--split-from", run.name, "--seed", "5", *TINY)  # a run's name: that run under --out
    assert rc == 0
    a = pd.read_csv(run / "split.csv").sort_values("id").reset_index(drop=True)
    b = pd.read_csv(base / "runs" / "same-split" / "split.csv").sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    made = json.loads((base / "runs" / "same-split" / "config.json").read_text())["split"]
    assert made["source"] == "run:tiny" and made["seed"] == 0  # the seed that made the split, not --seed 5


def test_fold_trains_on_one_cross_validation_fold(tiny_run):
    base, data, _ = tiny_run
    assert run_train("--data", data, "--out", base / "runs", "--name", "fold2", "--epochs", "1", "--fold", "2/4",
                     *TINY) == 0
    run = base / "runs" / "fold2"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["split"]["source"] == "fold" and (cfg["split"]["fold"], cfg["split"]["folds"]) == (2, 4)
    assert cfg["split"]["counts"]["test"] == 20  # a quarter of 80 images
    tested = pd.read_csv(run / "predictions_test.csv", dtype={"id": str})["id"]
    split = pd.read_csv(run / "split.csv", dtype={"id": str})
    assert set(tested) == set(split["id"][split["split"] == "test"])


def test_resume_continues_history(tmp_path):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    assert run_train("--data", data, "--out", tmp_path, "--name", "r", "--epochs", "1", *TINY, "--weights", "none") == 0
    assert run_train("--resume", tmp_path / "r", "--epochs", "2") == 0
    hist = pd.read_csv(tmp_path / "r" / "history.csv")
    assert list(hist["epoch"]) == [1, 2]
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and "optimizer" in ckpt and "scheduler" in ckpt


def test_resume_refuses_flags_that_differ_from_the_run(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    argv = ["--data", data, "--out", tmp_path, "--name", "r", *TINY, "--weights", "none"]
    assert run_train(*argv, "--epochs", "1") == 0
    before = (tmp_path / "r" / "config.json").read_bytes()
    capsys.readouterr()
    assert run_train("--resume", tmp_path / "r", "--epochs", "2", "--backbone", "resnet18", "--lr", "0.5") == 2
    err = capsys.readouterr().err
    assert "these flags differ from them: --backbone resnet18 (the run's: mobilenet_v2); --lr 0.5 (the run's: " \
           "0.001)." in err and "Traceback" not in err
    assert (tmp_path / "r" / "config.json").read_bytes() == before
    # the run's own command line, with more epochs, continues it
    assert run_train(*argv, "--resume", tmp_path / "r", "--epochs", "2") == 0
    assert list(pd.read_csv(tmp_path / "r" / "history.csv")["epoch"]) == [1, 2]


def test_resume_with_more_epochs_trains_at_the_longer_schedules_rate(tmp_path, monkeypatch):
    from fer_core.transforms import cosine_lr

    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    assert run_train("--data", data, "--out", tmp_path, "--name", "r", "--epochs", "2", *TINY, "--weights", "none") == 0
    seen = {}  # epoch: (the rate its first step trains at, whether it changed the weights)
    real = train.train_one_epoch

    def one_epoch(*a, **k):
        model, opt, epoch = a[1], a[4], a[11]
        before = [q.detach().clone() for q in model.parameters()]
        lr = opt.param_groups[0]["lr"]
        out = real(*a, **k)
        seen[epoch] = lr, any(not torch.equal(b, q) for b, q in zip(before, model.parameters()))
        return out
    monkeypatch.setattr(train, "train_one_epoch", one_epoch)
    assert run_train("--resume", tmp_path / "r", "--epochs", "4") == 0
    # 24 training images in batches of 16: one step an epoch, so epoch 3 trains at step 2 of the 4-epoch schedule
    # (the 2-epoch schedule's rate there is 0), and history records the rate after its step, step 3's
    lr, changed = seen[3]
    assert lr == pytest.approx(1e-3 * cosine_lr(2, 4, 0)) and changed
    recorded = pd.read_csv(tmp_path / "r" / "history.csv")["lr"][2]
    assert recorded > 0 and recorded == pytest.approx(1e-3 * cosine_lr(3, 4, 0))


def test_resume_refuses_fewer_epochs_than_the_run_has_trained(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    assert run_train("--data", data, "--out", tmp_path, "--name", "r", "--epochs", "2", *TINY, "--weights", "none") == 0
    before = (tmp_path / "r" / "config.json").read_bytes()
    capsys.readouterr()
    assert run_train("--resume", tmp_path / "r", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert f"--epochs 1: {tmp_path / 'r'} has trained 2 epochs already, and --resume only trains a run longer: give " \
           f"--epochs 2 or more" in err and "Traceback" not in err
    assert (tmp_path / "r" / "config.json").read_bytes() == before
    # a finished run has nothing left to train: said, not trained and evaluated again
    for argv in ([], ["--epochs", "2"]):
        assert run_train("--resume", tmp_path / "r", *argv) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'r'} has nothing left to train: it finished its 2 epochs; --epochs N (more than 2)" in err
    assert (tmp_path / "r" / "config.json").read_bytes() == before


def test_a_run_is_the_same_with_any_workers_and_when_stopped_and_resumed(tmp_path, monkeypatch):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    random_draws = ["--aug", "v2", "--mixup", "0.4", "--dropout", "0.3", "--seed", "3", "--epochs", "3"]

    def trained(name, *argv):
        assert run_train("--data", data, "--out", tmp_path, "--name", name, *TINY, *random_draws, *argv) in (0, 130)
        return tmp_path / name

    def results(run):
        return pd.read_csv(run / "history.csv").drop(columns="seconds"), (run / "predictions_test.csv").read_bytes()

    once = results(trained("once"))
    assert once[0]["train_loss"].nunique() == 3
    pd.testing.assert_frame_equal(results(trained("workers", "--workers", "2"))[0], once[0])
    assert results(tmp_path / "workers")[1] == once[1]
    real = train.train_one_epoch

    def stopped_in_epoch_2(*a, **k):
        if a[11] == 2:  # the epoch argument
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train, "train_one_epoch", stopped_in_epoch_2)
    stopped = trained("stopped")
    assert len(pd.read_csv(stopped / "history.csv")) == 1
    monkeypatch.setattr(train, "train_one_epoch", real)
    assert run_train("--resume", stopped) == 0
    cfg = json.loads((stopped / "config.json").read_text())
    assert cfg["resumed"] == [{"from_epoch": 2, "environment": cfg["environment"]}]
    assert torch.__version__.startswith(cfg["environment"]["torch"]) and cfg["environment"]["threads"] >= 1
    assert cfg["environment"]["code"].startswith(("git ", "fer-lab "))
    resumed = results(stopped)
    pd.testing.assert_frame_equal(resumed[0], once[0])
    assert resumed[1] == once[1]
    # another seed draws otherwise
    assert not results(trained("seed4", "--seed", "4"))[0]["train_loss"].equals(once[0]["train_loss"])


def test_resume_goes_on_after_an_early_stop_and_an_interrupted_extension_says_how_to_resume(tmp_path, capsys,
                                                                                               monkeypatch):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    monkeypatch.setattr(train, "validate", lambda *a: {"val_loss": 1.0, "val_acc": 0.5, "val_score": 0.5})
    run = tmp_path / "r"
    assert run_train("--data", data, "--out", tmp_path, "--name", "r", "--epochs", "20", "--early-stop", "3", *TINY,
                     "--weights", "none") == 0
    assert len(pd.read_csv(run / "history.csv")) == 4  # the best at epoch 1, then three epochs without a better one
    real = train.train_one_epoch

    def cut_off_at(epoch):
        def one_epoch(*a, **k):
            if a[11] == epoch:  # the epoch argument
                raise KeyboardInterrupt
            return real(*a, **k)
        return one_epoch

    # trained longer, and cut off before its first new epoch is saved: the advice names the epochs asked for
    monkeypatch.setattr(train, "train_one_epoch", cut_off_at(5))
    capsys.readouterr()
    assert run_train("--resume", run, "--epochs", "20") == 130
    assert f"resume with --resume {run} --epochs 20" in capsys.readouterr().err
    # three more epochs of patience from epoch 4, kept across an interruption in epoch 6
    monkeypatch.setattr(train, "train_one_epoch", cut_off_at(6))
    assert run_train("--resume", run, "--epochs", "20") == 130
    monkeypatch.setattr(train, "train_one_epoch", real)
    assert run_train("--resume", run) == 0
    assert len(pd.read_csv(run / "history.csv")) == 7


def test_resume_says_where_it_goes_on_from(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    assert run_train("--data", data, "--out", tmp_path, "--name", "r", "--epochs", "1", *TINY, "--weights", "none") == 0
    err = capsys.readouterr().err
    assert all(f"decode {k} 48px" in err for k in ("train", "val", "test")), err[-500:]  # the bars say which
    assert run_train("--resume", tmp_path / "r", "--epochs", "2") == 0
    out = capsys.readouterr()
    assert f"resuming {tmp_path / 'r'} from its last checkpoint: epoch 2 of 2 next" in out.out + out.err
    assert f"next: the dashboard shows it (FER_LAB_RUNS_DIR={tmp_path} streamlit run app.py)" in out.out + out.err


def test_the_next_step_names_the_dashboard_whole_from_another_folder(tmp_path, monkeypatch, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    monkeypatch.chdir(tmp_path)  # a job's folder, not the project's
    assert run_train("--data", data, "--out", "runs", "--name", "r", "--epochs", "1", *TINY, "--weights", "none") == 0
    out = capsys.readouterr()
    assert f"next: the dashboard shows it (FER_LAB_RUNS_DIR={tmp_path / 'runs'} streamlit run {ROOT / 'app.py'})" in \
        out.out + out.err


def test_resume_takes_a_run_name_under_out(tmp_path, monkeypatch, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    runs = tmp_path / "artifacts" / "runs"
    assert run_train("--data", data, "--out", runs, "--name", "tinyr", "--epochs", "1", *TINY, "--weights", "none") == 0
    monkeypatch.chdir(tmp_path)  # no folder tinyr here: the run of that name under --out (default artifacts/runs)
    assert run_train("--resume", "tinyr", "--epochs", "2") == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert run_train("--resume", "tinyr", "--out", runs, "--epochs", "3") == 0
    assert list(pd.read_csv(runs / "tinyr" / "history.csv")["epoch"]) == [1, 2, 3]
    assert run_train("--resume", "tinry", "--out", runs, "--epochs", "4") == 2  # a typo
    assert f"cannot resume: no run folder {runs / 'tinry'} (did you mean tinyr?)" in capsys.readouterr().err


def _fail_at_epoch(monkeypatch, at, error):
    real = train.train_one_epoch

    def one_epoch(*a, **k):
        if a[11] == at:  # the epoch number
            raise error
        return real(*a, **k)
    monkeypatch.setattr(train, "train_one_epoch", one_epoch)


def test_interrupted_or_failed_training_is_marked_and_kept_for_resume(tmp_path, monkeypatch, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    argv = ["--data", data, "--out", tmp_path / "runs", "--epochs", "3", *TINY, "--weights", "none"]
    _fail_at_epoch(monkeypatch, 2, KeyboardInterrupt())
    assert run_train(*argv, "--name", "int") == 130
    run = tmp_path / "runs" / "int"
    err = capsys.readouterr().err
    assert f"interrupted during epoch 2 of 3; the best checkpoint so far (epoch 1) is kept in {run}/checkpoints/best.pt; " \
           f"resume with --resume {run}" in err and "Traceback" not in err
    assert json.loads((run / "config.json").read_text())["status"] == "stopped"
    assert "ERROR interrupted during epoch 2 of 3" in (run / "train.log").read_text()
    _fail_at_epoch(monkeypatch, 2, RuntimeError("a bug"))
    with pytest.raises(RuntimeError):  # an unforeseen error keeps its traceback, after the run is marked
        run_train(*argv, "--name", "err")
    assert json.loads((tmp_path / "runs" / "err" / "config.json").read_text())["status"] == "failed"
    log_text = (tmp_path / "runs" / "err" / "train.log").read_text()
    assert "failed during epoch 2 of 3: RuntimeError: a bug" in log_text
    capsys.readouterr()
    # a full disk and too little memory: what to do, in one line each, and the run kept for --resume
    for name, error, words in [
            ("disk", OSError(errno.ENOSPC, "No space left on device (writing 38.0 MB to x/last.pt)", "x/last.pt"),
             "error: No space left on device (writing 38.0 MB to x/last.pt) during epoch 2 of 3: free some space"),
            ("mem", RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
             "error: out of memory during epoch 2 of 3 (RuntimeError: DefaultCPUAllocator: can't allocate memory: you "
             "tried to allocate 9 GB): fewer --workers")]:
        _fail_at_epoch(monkeypatch, 2, error)
        assert run_train(*argv, "--name", name) == 2
        err = capsys.readouterr().err
        assert words in err and f"resume with --resume {tmp_path / 'runs' / name}" in err and "Traceback" not in err
    # before any epoch finished there is nothing to keep: the folder this run made goes
    _fail_at_epoch(monkeypatch, 1, KeyboardInterrupt())
    assert run_train(*argv, "--name", "early") == 130
    assert "interrupted during epoch 1 of 3; nothing was kept: run the same command again to start over" in \
        capsys.readouterr().err
    assert not (tmp_path / "runs" / "early").exists()
    monkeypatch.undo()
    assert run_train("--resume", run) == 0
    assert json.loads((run / "config.json").read_text())["status"] == "finished"
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2, 3]


def test_a_diverged_run_is_stopped_not_kept_as_best_and_not_sent_to_resume(tmp_path, monkeypatch, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    argv = ["--data", data, "--out", tmp_path / "runs", "--epochs", "3", *TINY, "--weights", "none"]
    real = train.train_one_epoch

    def blows_up(*a, **k):  # epoch 2's loss finite but huge, as --lr 50 made it (1.8e13)
        out = real(*a, **k)
        return {**out, "train_loss": 1.8e13} if a[11] == 2 else out
    monkeypatch.setattr(train, "train_one_epoch", blows_up)
    assert run_train(*argv, "--name", "div") == 2
    err = capsys.readouterr().err
    run = tmp_path / "runs" / "div"
    assert "error: the training loss averaged 1.8e+13 in epoch 2: the weights diverged; train again with a lower " \
           "--lr (this run's: 0.001)" in err and "a new run (another --name) with a lower --lr" in err
    assert "--resume" not in err
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1]  # epoch 2 is neither saved nor kept as best
    assert json.loads((run / "config.json").read_text())["best"]["epoch"] == 1
    monkeypatch.undo()
    assert run_train("--resume", run) == 2  # from its last checkpoint it would diverge again
    assert "its training diverged" in capsys.readouterr().err


def test_a_run_resumes_on_a_copy_of_its_data_elsewhere_and_after_a_slurm_requeue(tmp_path, monkeypatch, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    argv = ["--data", data, "--out", tmp_path / "runs", "--name", "r", "--epochs", "3", *TINY, "--weights", "none"]
    _fail_at_epoch(monkeypatch, 2, KeyboardInterrupt())
    assert run_train(*argv) == 130
    monkeypatch.undo()
    run = tmp_path / "runs" / "r"
    shutil.move(data, tmp_path / "staged")  # node-local staging: the data is elsewhere now
    (run / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"half")  # a write a kill cut short
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the job script runs its first command again
    assert run_train(*[str(tmp_path / "staged") if a == data else a for a in argv]) == 0
    assert "SLURM requeued this job (restart 1): resuming" in capsys.readouterr().err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["status"] == "finished" and cfg["data"]["root"] == str((tmp_path / "staged").resolve())
    assert cfg["resumed"][-1]["data_before"] == str(data.resolve()) and cfg["resumed"][-1]["from_epoch"] == 2
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2, 3]
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert "the data is at" in (run / "train.log").read_text()
    # requeued again after the run finished (a later step of the job script cut off): nothing to do
    assert run_train(*[str(tmp_path / "staged") if a == data else a for a in argv]) == 0
    assert "finished before: nothing to train" in capsys.readouterr().err
    # a folder that is not a copy of the run's data is refused
    monkeypatch.delenv("SLURM_RESTART_COUNT")
    shutil.copytree(tmp_path / "staged", tmp_path / "part")
    next((tmp_path / "part" / "images").iterdir()).unlink()
    assert run_train("--resume", run, "--epochs", "4", "--data", tmp_path / "part") == 2
    assert "is not a copy of the data" in capsys.readouterr().err


def test_a_run_stopped_while_saving_an_epoch_resumes_from_the_last_whole_one(tmp_path, monkeypatch):
    """SIGTERM while an epoch is saved: the files that say the epoch is done are written after its checkpoints."""
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    argv = ["--data", data, "--out", tmp_path / "runs", "--epochs", "3", *TINY, "--weights", "none"]
    real_save, real_validate, scores = train.atomic_torch_save, train.validate, iter([0.3, 0.5, 0.2, 0.1])

    def save(path, state):
        if path.name == "last.pt" and state["epoch"] == 2:
            raise KeyboardInterrupt  # as the SIGTERM handler does, mid-write
        return real_save(path, state)
    monkeypatch.setattr(train, "atomic_torch_save", save)
    monkeypatch.setattr(train, "validate", lambda *a: {**real_validate(*a), "val_score": next(scores)})
    assert run_train(*argv, "--name", "cut") == 130
    run = tmp_path / "runs" / "cut"

    def best_epochs():  # what config.json says is best, and what best.pt holds
        best = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
        return json.loads((run / "config.json").read_text())["best"]["epoch"], best["epoch"]
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1]  # epoch 2 was not whole: not listed
    assert best_epochs() == (1, 1)  # epoch 2 scored better, but it was cut off: best.pt is still epoch 1
    monkeypatch.setattr(train, "atomic_torch_save", real_save)
    assert run_train("--resume", run) == 0  # epoch 2 again scores 0.2, epoch 3 0.1: epoch 1 stays the best
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2, 3] and best_epochs() == (1, 1)
    assert not (run / "checkpoints" / "best.next.pt").exists()


def _new_group_with_default_sigint():
    os.setsid()  # a process group of its own, as a job's: a signal to it reaches the DataLoader workers too
    for sig in (signal.SIGINT, signal.SIGHUP):  # as in a terminal, even where the tests run under nohup
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("sig, workers", [(signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGUSR1, 0),
                                          (signal.SIGTERM, 2), (signal.SIGHUP, 0)],
                         ids=["SIGINT", "SIGTERM", "SIGUSR1 (SLURM's warning)", "SIGTERM to the workers too (SLURM)",
                              "SIGHUP (its terminal closed)"])
def test_ctrl_c_or_sigterm_stops_training_with_a_message(sig, workers, tmp_path):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    run = tmp_path / "runs" / "sig"
    p = subprocess.Popen([sys.executable, "-m", "fer_core.train", "--data", str(data), "--out", str(run.parent),
                          "--name", "sig", "--epochs", "500", *TINY, "--weights", "none", "--workers", str(workers)],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_new_group_with_default_sigint)
    try:
        deadline = time.time() + 240
        while not (run / "config.json").is_file() and p.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1 if workers else 0)  # the workers started
        os.killpg(p.pid, sig)
        err = p.communicate(timeout=120)[1]
    finally:
        p.kill()
    assert p.returncode == 128 + sig, err[-2000:]
    assert "Traceback" not in err and f"resume with --resume {run}" in err
    assert json.loads((run / "config.json").read_text())["status"] == "stopped"


def test_a_signal_the_command_was_started_ignoring_stays_ignored():
    from fer_core.io import stop_on_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it: to outlive its terminal
    try:
        stop_on_signals()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and callable(signal.getsignal(signal.SIGTERM))
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@pytest.mark.parametrize("argv, message", [
    (["--data", "/no/such/folder"], "not found"),
    (["--epochs", "1"], "--data is required"),
    (["--resume", "/no/such/run"], "cannot resume"),
    (["--data", ".", "--extra-count", "5"], "give --extra-data PATH"),
    (["--data", ".", "--extra-data", "/no/such/folder"], "--extra-data folder not found"),
    (["--data", ".", "--extra-data", "./"], "would leak into training"),
    (["--data", ".", "--fold", "1/5", "--split-from", "."], "--fold and --split-from both choose the split"),
    (["--data", ".", "--first-layer-lr-mult", "0"], "--first-layer-lr-mult must lie in (0, 1]"),
    (["--data", ".", "--kd-weight", "0.3"], "--kd-weight sets how a student learns from its teacher: give --teacher"),
    (["--data", ".", "--kd-temperature", "4"], "--kd-temperature sets how a student learns"),
    (["--data", ".", "--fold", "1/5", "--test-frac", "0.3"], "--test-frac does not apply"),
    (["--data", ".", "--split-from", ".", "--val-frac", "0.2"], "--val-frac and --test-frac do not apply"),
    (["--data", ".", "--teacher", "/no/such/run"], "--teacher: no checkpoint at /no/such/run"),
    (["--data", ".", "--weights", "/no/such/file.pt"], "weights file not found"),
    (["--data", ".", "--weights", "."], "weights file not found: . (a folder without checkpoints/best.pt)"),
    (["--data", ".", "--seed", "-1"], "--seed must lie between 0 and 2**32 - 1 (got -1)"),
    (["--data", ".", "--seed", str(2 ** 32)], "--seed must lie between 0 and 2**32 - 1"),
    (["--data", ".", "--epochs", "2", "--warmup-epochs", "5"], "--warmup-epochs 5 must be fewer than the run's 2"),
])
def test_cli_errors_are_one_clear_line(argv, message, capsys):
    assert run_train(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("flag, value, allowed", [
    ("--label-smoothing", "2", "lie in [0, 1)"),
    ("--ema", "1.5", "lie in [0, 1)"),
    ("--dropout", "1.5", "lie in [0, 1)"),
    ("--weight-decay", "-1", "be 0 or more"),
    ("--mixup", "-1", "be 0 or more"),
    ("--cutmix", "-1", "be 0 or more"),
    ("--sam", "-1", "be 0 or more"),
    ("--early-stop", "-1", "be 0 or more"),
    ("--warmup-epochs", "-1", "be 0 or more"),
    ("--va-weight", "-1", "be 0 or more"),
    ("--va-weight", "nan", "be 0 or more"),
    ("--head-lr-mult", "0", "be above 0"),
    ("--landmark-weight", "-1", "be 0 or more"),
    ("--extra-count", "-1", "be 0 or more"),
    ("--kd-temperature", "inf", "be above 0"),
])
def test_recipe_values_out_of_range_are_refused_before_training(flag, value, allowed, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_train("--data", ".", "--out", "runs", flag, value) == 2
    err = capsys.readouterr().err
    assert f"{flag} must {allowed} (got {value}" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    # a preset's value is checked as a flag's is
    monkeypatch.setitem(train.PRESETS, "cpu-fast", {**train.PRESETS["cpu-fast"], flag[2:].replace("-", "_"): -1})
    assert run_train("--data", ".", "--out", "runs", "--preset", "cpu-fast") == 2
    assert f"{flag} must {allowed} (got -1)" in capsys.readouterr().err


def test_device_that_is_not_here_is_one_clear_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        train.get_args_parser().parse_args(["--device", "bogus"])
    assert "argument --device: invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(train.Fail, match="--device bogus: choose one of auto, cpu, cuda, mps"):
        train.pick_device("bogus")  # evaluate passes its own --device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert train.pick_device("auto") == "cpu"
    with pytest.raises(train.Fail, match=r"--device mps: no Apple GPU is available here"):
        train.pick_device("mps")
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    assert run_train("--data", data, "--out", tmp_path / "runs", *TINY, "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert "--device cuda: no CUDA GPU is available here (torch.cuda.is_available() is False); use --device auto " \
           "or cpu" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "argument --epochs: must be 1 or more, got 0"),
    (["--batch-size", "0"], "argument --batch-size: must be 1 or more, got 0"),
    (["--workers", "-1"], "argument --workers: must be 0 or more, got -1"),
    (["--lr", "-1"], "argument --lr: must be above 0, got -1"),
    (["--lr", "nan"], "argument --lr: must be above 0, got nan"),
    (["--epochs", "two"], "argument --epochs: expected a whole number, got 'two'"),
    (["--img-size", "8"], "argument --img-size: must be between 16 and 1024 pixels, got 8"),
    (["--img-size", "2048"], "argument --img-size: must be between 16 and 1024 pixels, got 2048"),
    (["--name", "../escaped_run"], "argument --name: a run name is a folder name under --out"),
    (["--name", "a/b"], "argument --name: a run name is a folder name under --out"),
    (["--name", ".."], "argument --name: a run name is a folder name under --out"),
    (["--name", "a\\b"], "without / or \\ or .."),
    (["--name", "two\nlines"], "without control characters"),
    (["--name", "ends. "], "not starting or ending with a space, nor ending with a dot"),
    (["--name", "nul.txt"], "not a device's name on Windows"),
    (["--name", "lr:1e-3"], 'without any of < > : " | ? *'),
    (["--name", "é" * 101], "of at most 200 bytes, not 202"),
    (["--layout", "bogus"], "argument --layout: invalid choice: 'bogus'"),
])
def test_bad_values_are_refused_when_the_flags_are_read(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        train.get_args_parser().parse_args(["--data", ".", *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_runs_started_without_a_name_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    class Frozen(train.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 6, 1, 2, 3)
    monkeypatch.setattr(train, "datetime", Frozen)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert train._auto_name("hse-best", tmp_path) == "hse-best-20261206-010203"
    (tmp_path / "hse-best-20261206-010203").mkdir()
    (tmp_path / "hse-best-20261206-010203-2").mkdir()
    assert train._auto_name("hse-best", tmp_path) == "hse-best-20261206-010203-3"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")  # an array job's tasks start together
    assert train._auto_name("hse-best", tmp_path) == "hse-best-20261206-010203-task7"


def test_failed_starts_leave_no_run_folder_behind(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    (tmp_path / "text.jpg").write_text("not a checkpoint")
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "split.csv").write_text("id,path,split\nTrain/fer0000001,x.png,train\n")
    out = tmp_path / "runs" / "new"  # two levels this run would make

    def refused(*argv):
        capsys.readouterr()
        assert run_train("--data", data, "--out", out, "--name", "x", *TINY, *argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and not (tmp_path / "runs").exists(), argv
        return err

    refused("--layout", "ferplus")
    assert "--val-frac and --test-frac must each be" in refused("--val-frac", "0.6", "--test-frac", "0.5")
    assert "text.jpg is not a readable checkpoint" in refused("--weights", tmp_path / "text.jpg")
    assert f"the split.csv of {other} shares no image ids with this data" in refused("--split-from", other)
    # refused once the folder is made (the backbone's smallest input is known from the model): made, then removed
    assert "dlib_face_resnet needs --img-size 103 or more" in refused("--backbone", "dlib_face_resnet",
                                                                     "--weights", "none", "--img-size", "96")
    # a folder that was there before is the user's: it stays
    out.mkdir(parents=True)
    (out / "x").mkdir()
    (out / "x" / "notes.txt").write_text("mine")
    assert run_train("--data", data, "--out", out, "--name", "x", *TINY, "--backbone", "dlib_face_resnet",
                     "--weights", "none", "--img-size", "96") == 2
    assert (out / "x" / "notes.txt").read_text() == "mine"
    # an --out that cannot hold folders
    (tmp_path / "file.jpg").write_text("x")
    capsys.readouterr()
    assert run_train("--data", data, "--out", tmp_path / "file.jpg", "--name", "y", *TINY) == 2
    err = capsys.readouterr().err
    assert f"cannot make the run folder {tmp_path / 'file.jpg' / 'y'}" in err and "is a file, not a folder" in err
    assert (tmp_path / "file.jpg").read_text() == "x"
    # an --out with a folder name too long for the file system (255 bytes)
    assert run_train("--data", data, "--out", tmp_path / ("é" * 130), "--name", "y", *TINY) == 2
    err = capsys.readouterr().err
    assert "cannot make the run folder" in err and "File name too long" in err and "Traceback" not in err


def test_weights_must_be_a_checkpoint_of_this_backbone(tiny_run, tmp_path, capsys):
    base, data, run = tiny_run
    best = run / "checkpoints" / "best.pt"  # a mobilenet_v2 run
    argv = ["--data", data, "--out", tmp_path / "runs", "--name", "w", "--epochs", "1", *TINY]

    def refused(*more):
        capsys.readouterr()
        assert run_train(*argv, *more) == 2
        assert not (tmp_path / "runs").exists()
        return capsys.readouterr().err

    assert f"--weights {best} is a mobilenet_v2 checkpoint, and this run's backbone is resnet18: give --backbone " \
           f"mobilenet_v2" in refused("--weights", best, "--backbone", "resnet18")
    model = torch.load(best, map_location="cpu", weights_only=True)["model"]
    torch.save(model, tmp_path / "plain.pt")  # a state dict without a config: judged by the tensors that fit
    assert "fits only 0 of the " in refused("--weights", tmp_path / "plain.pt", "--backbone", "resnet18")
    few = {k: v for i, (k, v) in enumerate(model.items()) if i < 20 or not k.startswith("features.")}
    torch.save(few, tmp_path / "few.pt")
    n = sum(k.startswith("features.") for k in model)
    assert f"fits only 20 of the {n} tensors of the mobilenet_v2 backbone" in refused("--weights", tmp_path / "few.pt")
    # heads of another shape are normal (they are trained anew); the backbone fits
    other_heads = {**model, "expression.weight": torch.zeros(7, 1280), "expression.bias": torch.zeros(7)}
    torch.save(other_heads, tmp_path / "heads.pt")
    assert run_train(*argv, "--weights", tmp_path / "heads.pt") == 0
    loaded = json.loads((tmp_path / "runs" / "w" / "config.json").read_text())["weights"]["loaded"]
    assert loaded == f"file {tmp_path / 'heads.pt'} ({len(model) - 2} of {len(model)} tensors)"


@pytest.mark.parametrize("preset, first", [("cpu-best", "ferplus-pretrain"), ("dlib-best", "ferplus-dlib"),
                                           ("facenet-best", "ferplus-facenet")])
def test_preset_without_its_first_stage_says_what_to_run(preset, first, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no artifacts/runs/<first> here
    assert run_train("--data", ".", "--preset", preset) == 2
    assert f"train the {first} preset first (python -m fer_core.train --data PATH/TO/FERPLUS --preset {first}" in \
        capsys.readouterr().err


def test_two_stage_preset_finds_its_first_stage_under_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no artifacts/runs/ferplus-hse here
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=48)
    out = tmp_path / "x"
    capsys.readouterr()
    assert run_train("--data", data, "--preset", "hse-best", "--out", out, *TINY) == 2
    err = capsys.readouterr().err
    assert f"there is none at {out}/ferplus-hse/checkpoints/best.pt or artifacts/runs/ferplus-hse/checkpoints/" \
           "best.pt: train the ferplus-hse preset first" in err and "--weights" in err
    # the two stages, the tiny way, both under --out
    assert run_train("--data", data, "--preset", "ferplus-hse", "--out", out, "--name", "ferplus-hse", "--epochs", "1",
                     *TINY) == 0
    first = (out / "ferplus-hse" / "checkpoints" / "best.pt").as_posix()
    elsewhere = tmp_path / "artifacts" / "runs" / "ferplus-hse" / "checkpoints"  # an older first stage, not this one
    elsewhere.mkdir(parents=True)
    shutil.copy(first, elsewhere / "best.pt")
    assert run_train("--data", data, "--preset", "hse-best", "--out", "x", "--name", "s2", "--epochs", "1", *TINY) == 0
    cfg = json.loads((out / "s2" / "config.json").read_text())  # a relative --out: its first stage recorded whole
    assert cfg["args"]["weights"] == cfg["weights"]["requested"] == first
    assert cfg["weights"]["loaded"].startswith(f"file {first} (")
    assert f"starting from {first}, the first stage trained under --out" in (out / "s2" / "train.log").read_text()
    named = "artifacts/runs/ferplus-hse/checkpoints/best.pt"  # named with --weights: that one, as given
    assert run_train("--data", data, "--preset", "hse-best", "--out", out, "--name", "s3", "--epochs", "1",
                     "--weights", named, *TINY) == 0
    assert json.loads((out / "s3" / "config.json").read_text())["weights"]["requested"] == (tmp_path / named).as_posix()
    assert run_train("--resume", out / "s3", "--weights", named, "--epochs", "2") == 0  # as typed first: the same
    assert run_train("--data", data, "--preset", "hse-best", "--out", tmp_path / "y", "--name", "s4", "--epochs", "1",
                     *TINY) == 0  # no first stage under this --out: the preset's own, without a word of --out
    assert "under --out" not in (tmp_path / "y" / "s4" / "train.log").read_text()
    assert json.loads((tmp_path / "y" / "s4" / "config.json").read_text())["weights"]["requested"] == \
        (elsewhere / "best.pt").as_posix()
    monkeypatch.chdir(data)  # from another folder, predict and evaluate still find the first stage's training images
    assert [f.name for f, _ in R.earlier_stages(cfg)] == ["ferplus-hse"]
    moved = {**cfg, "weights": {**cfg["weights"], "requested": "/moved/x/ferplus-hse/checkpoints/best.pt"}}
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(out))  # the checkout moved: its first stage found by its name
    assert [f for f, _ in R.earlier_stages(moved)] == [out / "ferplus-hse"]
    other = tmp_path / "other" / "ferplus-hse"  # another run of that name, whose checkpoint is another file
    shutil.copytree(out / "ferplus-hse", other)
    (other / "checkpoints" / "best.pt").write_bytes(b"another model")
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(other.parent))
    assert R.earlier_stages(moved) == []


def test_first_layer_lr_mult_decays_the_backbone_rate_layer_by_layer():
    from fer_core.models import build_model
    model, _ = build_model("mobilenet_v2", weights="none")
    r = dict(lr=1e-3, head_lr_mult=4.0, first_layer_lr_mult=0.1)
    groups = train._param_groups(model, r)
    lrs = [g["lr"] for g in groups]
    assert len(groups) > 40 and lrs[0] == pytest.approx(1e-4) and lrs[-2] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(4e-3) and lrs == sorted(lrs)
    # every parameter once; the heads alone in the last group; the first group is the first convolution
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert {id(p) for p in groups[-1]["params"]} == {id(p) for p in [*model.expression.parameters(),
                                                                     *model.va.parameters()]}
    assert groups[0]["params"][0] is next(model.features.parameters())
    assert [g.get("lr", r["lr"]) for g in train._param_groups(model, {**r, "first_layer_lr_mult": 1})] == [1e-3, 4e-3]


def test_progressive_resizing_grows_to_full_size_and_refuses_a_bad_start(tmp_path, capsys):
    sizes = [train.epoch_size({"resize_from": 96, "img_size": 150, "epochs": 14}, e) for e in range(1, 15)]
    assert sizes == [96, 104, 112, 120, 120, 128, 136, 144] + [150] * 6
    assert train.epoch_size({"resize_from": 96, "img_size": 150, "epochs": 1}, 1) == 150  # one epoch: full size
    assert train.epoch_size({"resize_from": 0, "img_size": 150, "epochs": 14}, 1) == 150
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=48)
    argv = ["--data", data, "--out", tmp_path / "runs", "--epochs", "3", *TINY]
    assert run_train(*argv, "--name", "grow", "--resize-from", "24") == 0
    assert "training images [24, 48, 48] px by epoch" in (tmp_path / "runs" / "grow" / "train.log").read_text()
    assert json.loads((tmp_path / "runs" / "grow" / "config.json").read_text())["args"]["resize_from"] == 24
    capsys.readouterr()
    assert run_train(*argv, "--name", "bad", "--resize-from", "64") == 2
    assert "--resize-from must lie between 16 and --img-size (48)" in capsys.readouterr().err


def test_cutmix_pastes_one_box_and_mixes_by_its_area(tmp_path, capsys):
    torch.manual_seed(0)
    x = torch.stack([torch.full((3, 20, 10), float(i)) for i in range(4)])
    perm = torch.tensor([1, 2, 3, 0])
    mixed, lam = train.cutmix(x, perm, 0.75)
    pasted = mixed != x  # every image differs from itself exactly inside the box
    assert torch.equal(pasted[0], pasted[3]) and pasted[0].any() and (x == torch.arange(4.).view(4, 1, 1, 1)).all()
    assert lam == pytest.approx(1 - pasted[0].float().mean().item())
    assert torch.equal(mixed[pasted], x[perm][pasted])
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=48)
    argv = ["--data", data, "--out", tmp_path / "runs", "--epochs", "1", *TINY]
    assert run_train(*argv, "--name", "cut", "--cutmix", "1") == 0
    capsys.readouterr()
    assert run_train(*argv, "--name", "both", "--cutmix", "1", "--mixup", "0.2") == 2
    assert "--mixup and --cutmix do not go together" in capsys.readouterr().err


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_takes_the_gradient_uphill_and_steps_from_where_it_was(adaptive):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    x = torch.randn(8, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)

    def forward_loss():
        out = net(x)
        return (out ** 2).mean(), out

    before = [q.detach().clone() for q in net.parameters()]
    forward_loss()[0].backward()
    g = [q.grad.clone() for q in net.parameters()]
    stats = net[1].running_mean.clone()
    train.sam_second_pass(net, opt, scaler, forward_loss, rho=0.5, adaptive=adaptive)
    assert all(torch.allclose(q, b) for q, b in zip(net.parameters(), before))  # moved back
    assert torch.equal(net[1].running_mean, stats)  # the second pass leaves batch-norm statistics alone
    # the gradient left is the one at the weights moved by 0.5 uphill: along the normalised gradient (SAM), or
    # along it scaled by each weight's size (ASAM)
    t = [b.abs() + 0.01 if adaptive else torch.ones_like(b) for b in before]
    norm = torch.sqrt(sum(((a * w) ** 2).sum() for a, w in zip(g, t)))
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    ref.load_state_dict(net.state_dict())
    with torch.no_grad():
        for q, a, w in zip(ref.parameters(), g, t):
            q.add_(w * w * a * 0.5 / norm)
    (ref(x) ** 2).mean().backward()
    assert all(torch.allclose(q.grad, r.grad, atol=1e-6) for q, r in zip(net.parameters(), ref.parameters()))
    assert not all(torch.allclose(q.grad, a) for q, a in zip(net.parameters(), g))


def test_sam_trains_and_is_recorded(tmp_path):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=48)
    assert run_train("--data", data, "--out", tmp_path / "runs", "--epochs", "1", *TINY, "--name", "sam",
                     "--sam", "0.5") == 0
    assert json.loads((tmp_path / "runs" / "sam" / "config.json").read_text())["args"]["sam"] == 0.5


def test_dlib_backbone_below_its_smallest_input_is_one_clear_line(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    argv = ["--data", data, "--out", tmp_path, "--backbone", "dlib_face_resnet", "--weights", "none", "--img-size", "96"]
    assert run_train(*argv) == 2
    err = capsys.readouterr().err
    assert "dlib_face_resnet needs --img-size 103 or more" in err and "Traceback" not in err


def test_empty_folder_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    r = subprocess.run([sys.executable, "-m", "fer_core.train", "--data", str(tmp_path / "empty")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip()


def test_torchrun_two_cpu_processes(tmp_path):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "fer_core.train", "--data", str(data), "--out", str(tmp_path / "runs"), "--name", "ddp",
                        "--epochs", "2", "--device", "cpu", *TINY], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "runs" / "ddp"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["device"] == "cpu x2" and cfg["status"] == "finished"
    assert len(pd.read_csv(run / "history.csv")) == 2
    # the second process does not repeat the log
    assert r.stderr.count("backbone mobilenet_v2, weights:") == 1 and r.stderr.count("settings (preset") == 1
    # resumed in one process, with twice the steps per epoch: the schedule goes on from epoch 2 of 4, not 1
    assert run_train("--resume", run, "--epochs", "4", "--device", "cpu") == 0
    hist = pd.read_csv(run / "history.csv")
    assert hist["lr"].iloc[2] == pytest.approx(1e-3 * train.cosine_lr(3, 4, 0), rel=1e-3)
    assert json.loads((run / "config.json").read_text())["device"] == "cpu x2, then cpu from epoch 3"


def test_torchrun_trains_data_without_valence_arousal_and_refuses_a_taken_name_in_every_process(tmp_path):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32, with_va=False)  # FER+'s case
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "fer_core.train", "--data", str(data), "--out", str(tmp_path / "runs"), "--name", "no-va",
               "--epochs", "2", "--device", "cpu", *TINY]
    r = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]  # the unused valence/arousal head had stopped DDP at its 2nd step
    assert json.loads((tmp_path / "runs" / "no-va" / "config.json").read_text())["status"] == "finished"
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and again.stderr.count("exists already") == 1  # said once, by the first process
    assert "Connection closed by peer" not in again.stderr  # the second stops too, instead of waiting on the first


@pytest.mark.skipif(not (SHARED / "affectnet8-4k").is_dir(), reason="real data ../shared/data/affectnet8-4k absent")
def test_short_real_affectnet_run(tmp_path):
    rc = run_train("--data", SHARED / "affectnet8-4k", "--out", tmp_path, "--name", "real", "--epochs", "1",
                   "--limit", "128", "--backbone", "efficientnet_lite0", "--img-size", "64", "--workers", "0")
    assert rc == 0
    cfg = json.loads((tmp_path / "real" / "config.json").read_text())
    assert "EfficientNet-Lite0 ImageNet" in cfg["weights"]["loaded"]
    assert cfg["split"]["counts"] == {"train": 128, "val": 320, "test": 320}
    m = json.loads((tmp_path / "real" / "metrics_test.json").read_text())
    assert m["n"] == 320 and m["valence"]["rmse"] > 0


def test_va_loss_ccc_matches_metric_and_masks_missing():
    from fer_core.metrics import ccc
    g = torch.Generator().manual_seed(0)
    true = torch.rand(32, 2, generator=g) * 2 - 1
    pred = 0.5 * true + 0.3 * torch.rand(32, 2, generator=g)
    expected = 1 - (ccc(true[:, 0].numpy(), pred[:, 0].numpy()) + ccc(true[:, 1].numpy(), pred[:, 1].numpy())) / 2
    assert train.va_loss(pred, true, "ccc").item() == pytest.approx(expected, abs=1e-5)
    mse = torch.nn.functional.mse_loss(pred, true).item()
    assert train.va_loss(pred, true, "mse+ccc").item() == pytest.approx(mse + expected, abs=1e-5)
    # rows without annotation (NaN) are left out of each dimension, not turned into NaN losses
    holed = true.clone()
    holed[:4, 1] = float("nan")
    loss = train.va_loss(pred, holed, "ccc")
    assert torch.isfinite(loss)
    a = 1 - ccc(holed[4:, 1].numpy(), pred[4:, 1].numpy())
    assert loss.item() == pytest.approx((1 - ccc(true[:, 0].numpy(), pred[:, 0].numpy()) + a) / 2, abs=1e-5)


def test_soft_labels_train_on_vote_distributions(tmp_path):
    rng = np.random.default_rng(0)
    rows, images = {}, {}
    for split, n in (("Train", 4), ("Valid", 2), ("Test", 1)):
        rows[split] = []
        for k in range(8 * n):
            # FER+ vote order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, nf
            votes = [0] * 10
            votes[k % 8], votes[(k + 1) % 8] = 8, 2
            name = f"fer{split}{k:04d}.png"
            rows[split].append((name, votes))
            images[name] = pattern_image(k % 8, 48, rng).mean(axis=2).astype(np.uint8)
    data = write_ferplus(tmp_path / "fp", rows, images=images)
    rc = run_train("--data", data, "--out", tmp_path, "--name", "soft", "--epochs", "1", *TINY,
                   "--soft-labels", "--mixup", "0.2", "--class-balance", "--ema", "0.99")
    assert rc == 0
    cfg = json.loads((tmp_path / "soft" / "config.json").read_text())
    assert cfg["args"]["soft_labels"] is True
    # 32 images in batches of 16, one epoch: far too few steps for a 0.99 EMA, and the log says so.
    log = (tmp_path / "soft" / "train.log").read_text()
    assert "EMA decay 0.99 takes about 300 steps to leave its starting weights behind, and this run has 2" in log
    # the settings the run trained with, the class weights, and that these votes weigh every class alike
    assert "settings (preset none, then the flags given): backbone mobilenet_v2, weights imagenet" in log
    assert "--class-balance: class weights Neutral 1.00, Happy 1.00" in log
    assert "balanced already, so --class-balance changes nothing here" in log
    assert (tmp_path / "soft" / "predictions_test.csv").is_file()

    train_samples = [s for s in read_dataset(data).samples if s.split == "train"]
    targets = train._dataset((None, train_samples), soft=True).labels
    assert targets.shape == (len(train_samples), 8) and targets.dtype == torch.float32
    assert torch.allclose(targets.sum(1), torch.ones(len(train_samples)))
    assert (targets.argmax(1) == torch.tensor([s.label for s in train_samples])).all()
    assert torch.allclose(targets.max(1).values, torch.full((len(train_samples),), 0.8))
    # Data without votes (AffectNet) falls back to class indices.
    aff = read_dataset(make_affectnet_dir(tmp_path / "aff", n_per_class=1, size=32)).samples
    assert train._dataset((None, aff), soft=True).labels.dtype == torch.long


def test_extra_data_joins_training_only(tmp_path):
    rng = np.random.default_rng(0)
    rows, images = {}, {}
    for split, n in (("Train", 3), ("Valid", 1), ("Test", 1)):
        rows[split] = [(f"fer{split}{k:04d}.png", [10 if j == k % 8 else 0 for j in range(10)]) for k in range(8 * n)]
        images.update({name: pattern_image(k % 8, 48, rng).mean(axis=2).astype(np.uint8)
                       for k, (name, _) in enumerate(rows[split])})
    ferplus = write_ferplus(tmp_path / "fp", rows, images=images)
    data = make_affectnet_dir(tmp_path / "aff", n_per_class=4, size=48)
    rc = run_train("--data", data, "--out", tmp_path, "--name", "mix", "--epochs", "1", *TINY,
                   "--extra-data", ferplus, "--extra-count", "10")
    assert rc == 0
    cfg = json.loads((tmp_path / "mix" / "config.json").read_text())
    assert cfg["data"]["extra"]["n_train"] == 10 and cfg["data"]["extra"]["layout"] == "ferplus"
    assert "added 10 training images" in (tmp_path / "mix" / "train.log").read_text()
    # Validation and test stay the --data set's own.
    split = pd.read_csv(tmp_path / "mix" / "split.csv", dtype={"id": str})
    preds = pd.read_csv(tmp_path / "mix" / "predictions_test.csv", dtype={"id": str})
    assert set(preds["id"]) == set(split.loc[split["split"] == "test", "id"])


def test_extra_data_leaves_out_copies_of_held_out_images_and_an_untrained_va_head_is_not_scored(tmp_path):
    data = make_affectnet_dir(tmp_path / "aff", n_per_class=4, size=48)
    copy = shutil.copytree(data, tmp_path / "copy")  # the same images elsewhere: a copy, as --extra-data
    rc = run_train("--data", data, "--out", tmp_path, "--name", "leak", "--epochs", "1", *TINY, "--extra-data", copy,
                   "--va-weight", "0")
    assert rc == 0
    run = tmp_path / "leak"
    split = pd.read_csv(run / "split.csv", dtype={"id": str})
    held = int(split["split"].isin(["val", "test"]).sum())
    log = (run / "train.log").read_text()
    assert f"left out {held} --extra-data images that are this run's validation or test images" in log
    assert json.loads((run / "config.json").read_text())["data"]["extra"]["n_train"] == len(split) - held
    # --va-weight 0: the valence/arousal head never learned, so it is neither scored nor chooses the epoch
    hist = pd.read_csv(run / "history.csv")
    assert "val_valence_ccc" not in hist or hist["val_valence_ccc"].isna().all()
    assert (hist["val_score"] == hist["val_acc"]).all()
    assert json.loads((run / "metrics_test.json").read_text())["valence"] is None
    assert pd.read_csv(run / "predictions_test.csv")["valence_pred"].isna().all()


def test_weights_from_a_run_folder_are_recorded_as_given_so_resume_takes_the_same_flag(tiny_run, tmp_path):
    _, data, first = tiny_run
    argv = ["--data", data, "--out", tmp_path, "--name", "second", "--epochs", "1", *TINY, "--weights", first]
    assert run_train(*argv) == 0
    cfg = json.loads((tmp_path / "second" / "config.json").read_text())
    assert cfg["args"]["weights"] == str(first) and str(first / "checkpoints" / "best.pt") in cfg["weights"]["loaded"]
    assert run_train("--resume", tmp_path / "second", "--epochs", "2", "--weights", first) == 0


def test_a_teacher_without_trained_valence_arousal_teaches_none(tiny_run):
    from fer_core.inference import load_checkpoint
    from fer_core.models import model_from_checkpoint

    model, cfg = model_from_checkpoint(load_checkpoint(tiny_run[2] / "checkpoints" / "best.pt"))
    x = torch.rand(2, 3, cfg["img_size"], cfg["img_size"])
    assert torch.isfinite(train.Teacher(model, cfg, cfg)(x)[1]).all()
    untaught = {**cfg, "data": {**cfg["data"], "has_va": False}}  # trained on FER+, say
    logits, va = train.Teacher(model, untaught, cfg)(x)
    assert torch.isfinite(logits).all() and torch.isnan(va).all()  # its images stay unannotated, as without it


def test_limit_and_unreadable_images_show_in_the_split(tmp_path, capsys):
    from fer_core import data as fdata
    data = make_affectnet_dir(tmp_path / "aff", n_per_class=5, size=48)
    split_of = fdata.make_split(fdata.read_dataset(data))  # the split training makes (the same seed)
    broken = next(i for i, k in sorted(split_of.items()) if k == "val")
    (data / "images" / f"{broken}.jpg").write_bytes(b"not a jpeg")
    rc = run_train("--data", data, "--out", tmp_path, "--name", "lim", "--epochs", "1", "--limit", "16", *TINY)
    assert rc == 0
    cfg = json.loads((tmp_path / "lim" / "config.json").read_text())
    split = pd.read_csv(tmp_path / "lim" / "split.csv", dtype={"id": str})
    n = split["split"].value_counts().to_dict()
    assert n["train"] == 16 and n["train"] + n["unused"] == 40 - n["val"] - n["test"]
    assert split.set_index("id")["split"][broken] == "val"
    # the counts are the images each split really held: the unreadable one is left out of its split's count
    assert cfg["data"]["skipped"]["unreadable image (val)"] == 1
    assert cfg["split"]["counts"] == {"train": 16, "val": n["val"] - 1, "test": n["test"]}
    assert run_train("--resume", tmp_path / "lim", "--epochs", "2") == 0  # on the same 16
    split = pd.read_csv(tmp_path / "lim" / "split.csv", dtype={"id": str})
    # an earlier version's --limit marked every training image "train": resuming would train on another 16
    split.assign(split=split["split"].replace("unused", "train")).to_csv(tmp_path / "lim" / "split.csv", index=False)
    capsys.readouterr()
    assert run_train("--resume", tmp_path / "lim", "--epochs", "3") == 2
    err = capsys.readouterr().err
    assert "earlier version of FER Lab, whose --limit 16 did not record which of the" in err and "Traceback" not in err
    # a data set with its own test split refuses --test-frac instead of ignoring it
    rows = {sp: [(f"fer{sp}{k:04d}.png", [10 if j == k % 8 else 0 for j in range(10)]) for k in range(8)]
            for sp in ("Train", "Valid", "Test")}
    ferplus = write_ferplus(tmp_path / "fp", rows)
    capsys.readouterr()
    assert run_train("--data", ferplus, "--out", tmp_path, "--name", "fp-run", "--test-frac", "0.3", *TINY) == 2
    err = capsys.readouterr().err
    assert "has its own test split (ferplus layout), so --test-frac does not apply" in err and "Traceback" not in err
    assert not (tmp_path / "fp-run").exists()


def test_renamed_run_answers_by_its_folder_config(tiny_run, tmp_path):
    import shutil

    from fer_core.inference import load_checkpoint
    _, _, run = tiny_run
    copy = tmp_path / "renamed"
    shutil.copytree(run, copy)
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "name": "renamed"}))
    assert load_checkpoint(run / "checkpoints" / "best.pt")["config"]["name"] == "tiny"
    ckpt = load_checkpoint(copy / "checkpoints" / "best.pt")
    assert ckpt["config"]["name"] == "renamed" and ckpt["config"]["status"] == cfg["status"]


def test_distillation_term_pulls_towards_the_teacher():
    g = torch.Generator().manual_seed(0)
    teacher_logits, y = torch.randn(16, 8, generator=g), torch.randint(0, 8, (16,), generator=g)
    va_pred, va = torch.zeros(16, 2), torch.full((16, 2), float("nan"))
    r = {"label_smoothing": 0.1, "va_weight": 1.0, "va_loss": "mse+ccc", "kd_temperature": 2.0}
    taught = (teacher_logits, torch.zeros(16, 2))
    plain = train.multitask_loss(teacher_logits, va_pred, y, va, r)
    # weight 0: the labels alone; weight 1: the teacher alone, nothing left to learn when the student copies it
    labels_only = train.multitask_loss(teacher_logits, va_pred, y, va, {**r, "kd_weight": 0.0}, None, taught)
    assert labels_only.item() == pytest.approx(plain.item())
    assert train.multitask_loss(teacher_logits, va_pred, y, va, {**r, "kd_weight": 1.0}, None, taught).item() == \
        pytest.approx(0.0, abs=1e-6)
    other = train.multitask_loss(torch.randn(16, 8, generator=g), va_pred, y, va, {**r, "kd_weight": 1.0}, None, taught)
    assert other.item() > 0.1


def test_teacher_sees_its_own_normalisation_and_size():
    class Echo(torch.nn.Module):  # returns its input's per-channel mean as "logits" and its side as "valence"
        def forward(self, x):
            return x.mean((2, 3)), torch.full((len(x), 2), float(x.shape[-1]))

    student = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    teacher = train.Teacher(Echo(), {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "img_size": 24}, student)
    pixels = torch.full((2, 3, 48, 48), 0.75)   # in [0, 1]
    logits, va = teacher((pixels - 0.5) / 0.25)  # as the student's augmentation hands it over
    assert torch.allclose(logits, torch.full((2, 3), 0.75)) and (va == 24).all()


def test_distil_from_a_run_on_the_same_split_and_refuse_a_leaking_teacher(tiny_run, capsys):
    base, data, teacher = tiny_run
    rc = run_train("--data", data, "--out", base / "runs", "--name", "student", "--epochs", "1", *TINY,
                   "--split-from", teacher, "--teacher", teacher, "--kd-weight", "0.7")
    assert rc == 0
    cfg = json.loads((base / "runs" / "student" / "config.json").read_text())
    assert cfg["teacher"]["path"].endswith("best.pt") and cfg["args"]["kd_weight"] == 0.7
    assert "distilling from" in (base / "runs" / "student" / "train.log").read_text()
    # another split holds images the teacher trained on in its validation and test parts
    assert run_train("--data", data, "--out", base / "runs", "--name", "leak", "--epochs", "1", *TINY,
                     "--fold", "1/4", "--teacher", teacher) == 2
    err = capsys.readouterr().err
    assert "would leak them into training" in err and "Traceback" not in err
    assert run_train("--data", data, "--out", base / "runs", "--name", "bad", *TINY, "--teacher", teacher,
                     "--kd-weight", "2") == 2
    assert "--kd-weight must lie in [0, 1]" in capsys.readouterr().err


def test_bf16_trains_under_autocast_only_where_the_cpu_has_it(tmp_path, monkeypatch):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    seen = []
    real = train.multitask_loss
    monkeypatch.setattr(train, "multitask_loss", lambda *a, **k: seen.append(torch.is_autocast_enabled("cpu"))
                        or real(*a, **k))
    assert run_train("--data", data, "--out", tmp_path, "--name", "b", "--epochs", "1", *TINY, "--bf16",
                     "--device", "cpu") == 0
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert cfg["args"]["bf16"] and cfg["precision"] == ("bfloat16 autocast" if native else "float32")
    assert seen and all(s == native for s in seen)
    # without native support it says so and trains in float32
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    seen.clear()
    assert run_train("--data", data, "--out", tmp_path, "--name", "f", "--epochs", "1", *TINY, "--bf16",
                     "--device", "cpu") == 0
    assert json.loads((tmp_path / "f" / "config.json").read_text())["precision"] == "float32"
    assert "no native bfloat16" in (tmp_path / "f" / "train.log").read_text() and not any(seen)


@pytest.mark.parametrize("aug", ["v1", "v2"])
def test_landmarks_move_with_the_augmented_image(aug):
    # A bright 3x3 spot on each black image, and the spot's centre as every one of its 68 landmarks: after the
    # batch's crops, flips, rotations (and warps), the moved point must sit on the spot's brightest pixel.
    size, b = 64, 48
    g = torch.Generator().manual_seed(1)
    centres = torch.randint(20, 44, (b, 2), generator=g)
    images = torch.zeros(b, 3, size, size, dtype=torch.uint8)
    for i, (cx, cy) in enumerate(centres.tolist()):
        images[i, :, cy - 1:cy + 2, cx - 1:cx + 2] = 255
    points = ((centres.float() + 0.5) / size * 2 - 1).unsqueeze(1).repeat(1, 68, 1)
    x, moved = BatchAugment(aug, [0.5] * 3, [0.5] * 3)(images, g, points)
    bright = x.sum(1).flatten(1)
    peak = bright.argmax(1)
    seen = torch.stack([peak % size, peak // size], 1).float()
    want = (moved[:, 0] + 1) / 2 * size - 0.5
    visible = bright.max(1).values > 0  # random erasing may blank the spot
    assert visible.sum() > b // 2
    assert ((seen - want).abs()[visible] <= 1.5).all(), (seen - want).abs()[visible].max()


def test_mirrored_landmarks_are_renumbered_left_for_right():
    assert sorted(MIRROR_68) == list(range(68)) and all(MIRROR_68[MIRROR_68[i]] == i for i in range(68))
    assert MIRROR_68[36] == 45 and MIRROR_68[48] == 54 and MIRROR_68[30] == 30 and MIRROR_68[0] == 16
    # a horizontal flip alone (theta = diag(-1, 1)) moves point 36 to the mirrored x and gives it index 45's place
    points = torch.rand(1, 68, 2) * 2 - 1
    theta = torch.tensor([[[-1.0, 0, 0], [0, 1.0, 0]]])
    moved = _move_points(points, theta, None, torch.tensor([True]))
    assert torch.allclose(moved[0, 45], points[0, 36] * torch.tensor([-1.0, 1.0]))


def test_landmark_weight_trains_a_landmark_head_it_does_not_save(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=48)
    rc = run_train("--data", data, "--out", tmp_path / "runs", "--name", "lnd", "--epochs", "1", "--landmark-weight",
                   "0.5", *TINY[:-4], "--aug", "v2")
    assert rc == 0
    run = tmp_path / "runs" / "lnd"
    assert json.loads((run / "config.json").read_text())["args"]["landmark_weight"] == 0.5
    n_train = (pd.read_csv(run / "split.csv")["split"] == "train").sum()
    assert f"landmarks for {n_train} of {n_train} training images" in (run / "train.log").read_text()
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert not any("landmarks" in k for k in state)
    assert "landmark_head" in torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # --resume keeps it
    ferplus = write_ferplus(tmp_path / "ferplus", {"Train": [(f"a{i}.png", [5, 0, 0, 0, 0, 0, 0, 0, 0, 0]) for i in range(4)],
                                                   "Valid": [("b.png", [5, 0, 0, 0, 0, 0, 0, 0, 0, 0])]})
    assert run_train("--data", ferplus, "--out", tmp_path / "runs", "--landmark-weight", "1", *TINY) == 2
    err = capsys.readouterr().err
    assert "--landmark-weight needs facial landmarks" in err and "Traceback" not in err


def test_the_command_a_run_shows_trains_its_recipe_again(tiny_run):
    import shlex

    from fer_core.presets import resolve
    from fer_core.runs import train_command

    _, data, run = tiny_run
    cfg = json.loads((run / "config.json").read_text())
    command = train_command(cfg, run)
    assert command.startswith(f"python -m fer_core.train --data {data}") and "--workers" not in command
    args = train.get_args_parser().parse_args(shlex.split(command)[3:])
    again = resolve(args.preset, {k: getattr(args, k) for k in train.RECIPE_KEYS})
    assert {k: v for k, v in again.items() if k != "workers"} == \
        {k: v for k, v in cfg["args"].items() if k not in ("workers", "limit", "exclude")}
    assert (args.limit, args.exclude) == (cfg["args"]["limit"], cfg["args"]["exclude"])  # not recipe settings
    assert args.name == "tiny-again" and args.out == str(run.parent)
    # a shipped run: its preset and the split it reused, nothing else; a pooled cross-validation has no command
    shipped = ROOT / "artifacts" / "runs"
    hse = json.loads((shipped / "hse-best" / "config.json").read_text())
    assert train_command(hse, shipped / "hse-best").endswith(
        f"--preset hse-best --split-from {shipped / 'cpu-best'} --name hse-best-again")  # --out: the default
    assert train_command(json.loads((shipped / "hse-best-cv5" / "config.json").read_text())) is None
    # the run the split came from is not beside it: its own split.csv, the same split
    alone = tiny_run[0] / "alone" / "hse-best"
    alone.mkdir(parents=True)
    shutil.copy(shipped / "hse-best" / "split.csv", alone)
    assert f"--split-from {alone} --out" in train_command(hse, alone)


def test_a_ferplus_run_scores_the_papers_protocol_too_and_leaves_valence_arousal_empty(tmp_path):
    from fer_core.data import ferplus_paper_ids

    # votes in FER+'s order (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF)
    kept = [[7, 1, 1, 1, 0, 0, 0, 0, 0, 0], [0, 5, 4, 1, 0, 0, 0, 0, 0, 0],  # clear; 5 of 9 after the one vote goes
            [0, 0, 3, 2, 1, 1, 1, 1, 1, 0]]  # 3 of 5 once the single votes are dropped
    left = [[0, 4, 0, 3, 2, 1, 0, 0, 0, 0],  # plurality 4, but not over half of 9
            [1, 0, 0, 0, 0, 0, 0, 0, 2, 7]]  # not a face
    rows = {split: [(f"fer{split}{i:04d}.png", votes) for i, votes in enumerate((kept + left) * 3)]
            for split in ("Train", "Valid", "Test")}
    data = write_ferplus(tmp_path / "ferplus", rows)
    assert sorted(i for i in ferplus_paper_ids(data) if i.startswith("Test/")) == \
        sorted(f"Test/ferTest{i:04d}" for i in range(15) if i % 5 < 3)
    assert run_train("--data", data, "--out", tmp_path / "runs", "--name", "fp", "--epochs", "1", *TINY) == 0
    run = tmp_path / "runs" / "fp"
    m = json.loads((run / "metrics_test.json").read_text())
    assert m["n"] == 12 and m["ferplus_paper_rule"]["n"] == 9  # the not-a-face images are out of both
    pred = pd.read_csv(run / "predictions_test.csv")
    paper = pred[pred["id"].isin(ferplus_paper_ids(data))]
    assert m["ferplus_paper_rule"]["accuracy"] == pytest.approx((paper["pred"] == paper["true"]).mean())
    assert pred["valence_pred"].isna().all() and pred["arousal_pred"].isna().all()  # an untrained head: no numbers
    assert "FER+ paper's majority protocol" in (run / "train.log").read_text()
    # the model file alone, on its own data: FER+'s test part is the data's own, no split.csv needed
    shutil.copy(run / "checkpoints" / "best.pt", tmp_path / "fp.pt")
    assert evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(tmp_path / "fp.pt"), "--out", str(tmp_path / "ev")])) == 0
    again = json.loads((tmp_path / "ev" / "metrics_test.json").read_text())
    assert again["n"] == 12 and again["ferplus_paper_rule"] == m["ferplus_paper_rule"]


def test_a_diverging_training_stops_with_a_clear_message_and_keeps_no_nan_weights(tiny_run, capsys):
    base, data, _ = tiny_run
    rc = run_train("--data", data, "--out", base / "runs", "--name", "diverged", "--epochs", "3", *TINY,
                   "--lr", "1e12")
    err = capsys.readouterr().err
    assert rc == 2 and "diverged; train again with a lower --lr (this run's: 1e+12)" in err, err
    assert "Input contains NaN" not in err
    best = base / "runs" / "diverged" / "checkpoints" / "best.pt"
    if best.is_file():  # an epoch before the weights broke: finite
        state = torch.load(best, map_location="cpu", weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_paths_with_a_tilde_are_the_users_home(monkeypatch):
    from fer_core import evaluate, predict

    monkeypatch.setenv("HOME", "/home/someone")
    a = train.get_args_parser().parse_args(["--data", "~/data", "--out", "~/runs", "--resume", "~/runs/r"])
    assert (a.data, a.out, a.resume) == ("/home/someone/data", "/home/someone/runs", "/home/someone/runs/r")
    assert evaluate.get_args_parser().parse_args(["--run", "~/r"]).run == "/home/someone/r"
    assert predict.get_args_parser().parse_args(["x.jpg", "--csv", "~/p.csv"]).csv == "/home/someone/p.csv"
    assert train.get_args_parser().parse_args([]).out == "artifacts/runs"


def test_a_folder_that_is_no_run_keeps_its_files(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    mine = tmp_path / "runs" / "mine"
    mine.mkdir(parents=True)
    (mine / "history.csv").write_text("a,b\n")  # another tool's, with a name a training writes
    (mine / "notes.txt").write_text("my notes")
    capsys.readouterr()
    assert run_train("--data", data, "--out", tmp_path / "runs", "--name", "mine", "--epochs", "1", *TINY,
                     "--weights", "none") == 2
    assert "mine holds history.csv but no config.json: it is no run to --resume" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["history.csv", "notes.txt"]
    assert (mine / "history.csv").read_text() == "a,b\n"
    (mine / "history.csv").unlink()
    (mine / "split.csv").write_text("image,fold\n")  # another tool's split.csv
    assert run_train("--data", data, "--out", tmp_path / "runs", "--name", "mine", "--epochs", "1", *TINY,
                     "--weights", "none") == 2
    assert "mine holds split.csv but no config.json" in capsys.readouterr().err
    # what a training cut off in its first epoch leaves (its log and split.csv), in a folder made beforehand for a
    # job's own log: the same command trains there again
    (mine / "split.csv").write_text(f"{train.SPLIT_HEADER}\n")
    (mine / "train.log").write_text("an earlier start\n")
    assert run_train("--data", data, "--out", tmp_path / "runs", "--name", "mine", "--epochs", "1", *TINY,
                     "--weights", "none") == 0
    assert (mine / "config.json").is_file() and (mine / "notes.txt").read_text() == "my notes"
    assert (mine / "train.log").read_text().startswith("an earlier start\n")  # appended to, not lost


def test_a_run_folder_another_live_process_trains_is_refused(tmp_path, capsys, monkeypatch):
    import subprocess

    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    assert run_train("--data", data, "--out", tmp_path, "--name", "r", "--epochs", "1", *TINY, "--weights", "none") == 0
    assert not (tmp_path / "r" / train.CLAIM).exists()  # released at the end
    (tmp_path / "r" / train.CLAIM).write_text(str(os.getppid()))  # a live process training it (an older claim: no host)
    before = (tmp_path / "r" / "config.json").read_bytes()
    capsys.readouterr()
    assert run_train("--resume", tmp_path / "r", "--epochs", "2") == 2
    assert f"{tmp_path / 'r'} is being trained by process {os.getppid()}" in capsys.readouterr().err
    assert (tmp_path / "r" / "config.json").read_bytes() == before and (tmp_path / "r" / train.CLAIM).exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "r" / train.CLAIM).write_text(gone.stdout.strip())  # left by a process that has ended
    assert run_train("--resume", tmp_path / "r", "--epochs", "2") == 0
    assert not (tmp_path / "r" / train.CLAIM).exists()
    (tmp_path / "r" / train.CLAIM).write_text("4242 another-machine")  # on a shared disk: cannot be told, refused
    assert run_train("--resume", tmp_path / "r", "--epochs", "3") == 2
    assert "is being trained by process 4242 on another-machine; if that training has ended, remove" in \
        capsys.readouterr().err
    (tmp_path / "r" / train.CLAIM).write_text("4242 another-machine 7001")  # a SLURM job's, killed at its time limit
    monkeypatch.setenv("SLURM_JOB_ID", "7002")
    assert run_train("--resume", tmp_path / "r", "--epochs", "3") == 2  # another job: refused
    monkeypatch.setenv("SLURM_JOB_ID", "7001")
    import socket

    (tmp_path / "r" / train.CLAIM).write_text(f"{os.getppid()} {socket.gethostname()} 7001")  # alive here: a second
    assert run_train("--resume", tmp_path / "r", "--epochs", "3") == 2  # training in the same job, refused
    (tmp_path / "r" / train.CLAIM).write_text("4242 another-machine 7001")  # the job requeued on another node
    assert run_train("--resume", tmp_path / "r", "--epochs", "3") == 0
    assert not (tmp_path / "r" / train.CLAIM).exists()


def test_runs_named_by_the_clock_in_the_same_second_each_get_a_folder(tmp_path, monkeypatch):
    import socket
    import time

    from fer_core.runs import claim_holder

    first = tmp_path / "runs" / "hse-fast-20261206-223259"  # made, and trained, by a run started in the same second
    first.mkdir(parents=True)
    (first / train.CLAIM).write_text(f"{os.getppid()} {socket.gethostname()}")
    run_dir, made = train._make_run_dir(first, auto=True)
    assert run_dir == first.with_name(f"{first.name}-2") and made == [run_dir]
    assert claim_holder(run_dir)[0] == os.getpid() and claim_holder(first)[0] == os.getppid()
    train._release(run_dir)
    with pytest.raises(train.Fail, match="is being trained by process"):  # a name given: refused, as before
        train._make_run_dir(first)
    (first / train.CLAIM).write_text("")  # a claim made this moment, its process id not yet written: held a while
    monkeypatch.setattr(train, "CLAIM_WRITE_S", 0.5)
    start = time.monotonic()
    assert train._make_run_dir(first) == (first, [])  # then taken over, as one left empty
    assert time.monotonic() - start >= 0.4 and claim_holder(first)[0] == os.getpid()
    train._release(first)
    # a run that fails before its first epoch removes what it made, but not a folder another run made in it meanwhile
    sweep = tmp_path / "sweep"
    mine, made = train._make_run_dir(sweep / "r", auto=True)
    assert made == [sweep, mine]
    (sweep / "r-other").mkdir()  # another run's, started in the same second
    train._remove_made(made, mine)
    assert not mine.exists() and (sweep / "r-other").is_dir()


def test_help_and_a_mistyped_flag_answer_before_torch_loads():
    import subprocess

    for argv, rc in ((["--help"], 0), (["--epochs", "two"], 2)):
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "fer_core.train", *argv], capture_output=True,
                           text=True, cwd=Path(__file__).resolve().parents[1])
        assert r.returncode == rc, r.stderr[-500:]
        assert not any(line.split("|")[-1].strip() == "torch" for line in r.stderr.splitlines())
    assert "presets:" in subprocess.run([sys.executable, "-m", "fer_core.train", "--help"], capture_output=True,
                                        text=True).stdout


def test_val_and_test_images_that_copy_training_images_are_named_in_the_log(tmp_path):
    from PIL import Image, ImageOps

    from tests.test_duplicates import photos

    pictures = iter(photos(20))
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for name in ["happy", "sad"]:
            for i in range(n):
                folder = tmp_path / "data" / split / name
                folder.mkdir(parents=True, exist_ok=True)
                next(pictures).save(folder / f"{split}{i}.png")
    # test images that are training images under another name, one byte for byte, one mirrored and made smaller
    train = tmp_path / "data" / "train" / "happy"
    (tmp_path / "data" / "test" / "happy" / "test1.png").write_bytes((train / "train0.png").read_bytes())
    ImageOps.mirror(Image.open(train / "train1.png")).resize((48, 48)).save(tmp_path / "data" / "test" / "sad" /
                                                                           "test1.jpg")
    (tmp_path / "data" / "test" / "sad" / "test1.png").unlink()
    assert run_train("--data", tmp_path / "data", "--out", tmp_path / "runs", "--name", "dup", "--epochs", "1",
                     *TINY) == 0
    log = (tmp_path / "runs" / "dup" / "train.log").read_text()
    assert "warning: 2 of the 4 test images are near-copies of training images" in log
    assert "val images" not in log
    config = json.loads((tmp_path / "runs" / "dup" / "config.json").read_text())
    assert config["split"]["near_copies"] == {"val": 0, "test": 2}


PLUGIN = '''import torch.nn as nn
from fer_core.models import register_backbone


def tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), 8


register_backbone("tiny_cnn", tiny)
'''


def test_a_backbone_of_ones_own_trains_evaluates_and_says_what_it_needs(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "my_nets.py").write_text(PLUGIN)
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "lab"), str(ROOT)]),
           "FER_LAB_PLUGINS": "my_nets"}

    def cli(*argv, **changes):
        return subprocess.run([sys.executable, "-m", *map(str, argv)], capture_output=True, text=True,
                              env={**env, **changes}, cwd=tmp_path)

    common = ("fer_core.train", "--data", data, "--out", tmp_path / "runs", "--backbone", "tiny_cnn", "--epochs", 1,
              "--img-size", 32, "--workers", 0)
    no_weights = cli(*common, "--name", "first")
    assert no_weights.returncode == 2 and "tiny_cnn (registered by a plugin) has no pretrained weights: pass " \
        "--weights none" in no_weights.stderr and not (tmp_path / "runs" / "first" / "checkpoints").exists()
    trained = cli(*common, "--name", "mine", "--weights", "none")
    assert trained.returncode == 0, trained.stderr
    run = tmp_path / "runs" / "mine"
    assert json.loads((run / "config.json").read_text())["plugin"] == "my_nets"
    without = cli("fer_core.evaluate", "--run", run, "--out", tmp_path / "ev", FER_LAB_PLUGINS="")
    assert without.returncode != 0 and "set FER_LAB_PLUGINS=my_nets" in without.stderr
    assert cli("fer_core.evaluate", "--run", run, "--out", tmp_path / "ev").returncode == 0
    broken = cli("fer_core.evaluate", "--run", run, "--out", tmp_path / "ev2", FER_LAB_PLUGINS="my_nets,not_there")
    assert "FER_LAB_PLUGINS: not_there was not imported (ModuleNotFoundError" in broken.stderr
    assert broken.returncode == 0  # the module that failed is not the one this run needs
    as_file = cli("fer_core.evaluate", "--help", FER_LAB_PLUGINS=str(tmp_path / "lab" / "my_nets.py"))
    assert f"it names modules, not files: put {tmp_path / 'lab'} on PYTHONPATH and name my_nets" in as_file.stderr


def test_exclude_leaves_doubted_images_out_of_training_only(tmp_path, capsys):
    data = make_affectnet_dir(tmp_path / "data", n_per_class=4, size=32)
    common = ("--data", data, "--out", tmp_path, "--epochs", 1, *TINY, "--weights", "none")
    assert run_train(*common, "--name", "first") == 0
    split = pd.read_csv(tmp_path / "first" / "split.csv", dtype=str)
    train, test = split[split["split"] == "train"], split[split["split"] == "test"]
    doubted = tmp_path / "every-run-wrong-test.csv"  # as the Model disagreement page downloads it: path and more
    pd.DataFrame({"path": [*train["path"][:2], test["path"].iloc[0], "images/nope.jpg"],
                  "true class": "Happy"}).to_csv(doubted, index=False)
    assert run_train(*common, "--name", "clean", "--split-from", tmp_path / "first", "--exclude", doubted) == 0
    cleaned = pd.read_csv(tmp_path / "clean" / "split.csv", dtype=str).set_index("id")["split"]
    assert (cleaned[train["id"][:2]] == "unused").all() and cleaned[test["id"].iloc[0]] == "test"
    assert (cleaned != "unused").sum() == len(split) - 2  # val and test as they were
    excluded = json.loads((tmp_path / "clean" / "config.json").read_text())["split"]["excluded"]
    assert {k: excluded[k] for k in ("rows", "left_out", "not_found", "kept_held_out")} == \
        {"rows": 4, "left_out": 2, "not_found": 1, "kept_held_out": 1}
    log = (tmp_path / "clean" / "train.log").read_text()
    assert "2 training images left out" in log and "1 images it names are val or test images, and stay there" in log
    capsys.readouterr()
    (tmp_path / "ids.csv").write_text("image_no\n3\n")
    assert run_train(*common, "--name", "bad", "--exclude", tmp_path / "ids.csv") == 2
    assert "--exclude" in capsys.readouterr().err and not (tmp_path / "bad").exists()
