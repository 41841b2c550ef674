"""fer_core.evaluate's command line: where results go (and where they must not), manifest-file data, bad input."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fer_core import evaluate, train
from fer_core.labels import CLASSES
from tests.conftest import CLASS_VA, pattern_image

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--backbone", "mobileface", "--weights", "none", "--img-size", "32", "--batch-size", "16", "--workers", "0",
        "--aug", "none", "--epochs", "1"]


def write_manifest(folder: Path, n_per_class: int = 5, seed: int = 0) -> Path:
    """A CSV manifest (path, expression, valence, arousal) beside an img/ folder of its images; returns the file."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True)
    rows = []
    for k in range(n_per_class * 8):
        label = k % 8
        Image.fromarray(pattern_image(label, 32, rng)).save(folder / "img" / f"{k}.jpg", quality=92)
        rows.append({"path": f"img/{k}.jpg", "expression": CLASSES[label].lower(),
                     "valence": CLASS_VA[label][0], "arousal": CLASS_VA[label][1]})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def write_folders(folder: Path, n_per_class: int = 2, seed: int = 1) -> Path:
    """Class folders (<class>/<n>.jpg) of other images."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (folder / name.lower()).mkdir(parents=True)
        for k in range(n_per_class):
            Image.fromarray(pattern_image(label, 32, rng)).save(folder / name.lower() / f"{k}.jpg")
    return folder


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A run trained on a CSV manifest given as the file itself: (base folder, manifest file, run folder)."""
    base = tmp_path_factory.mktemp("ev")
    manifest = write_manifest(base / "data")
    rc = train.main(train.get_args_parser().parse_args(
        ["--data", str(manifest), "--out", str(base / "runs"), "--name", "csv", *TINY]))
    assert rc == 0
    return base, manifest, base / "runs" / "csv"


@pytest.fixture
def run(csv_run, tmp_path):
    """A copy of the run for one test to write into (the module's run stays as trained)."""
    return Path(shutil.copytree(csv_run[2], tmp_path / "runs" / "csv"))


def ev(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    rc = evaluate.main(evaluate.get_args_parser().parse_args([str(a) for a in argv]))
    return rc, capsys.readouterr().err


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_trained_on_a_manifest_file_evaluates_and_its_images_are_found(csv_run, run, capsys):
    from fer_core.data import images_root
    from fer_core.runs import safe_image_path

    _, manifest, _ = csv_run
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["root"] == str(manifest.resolve())  # the file, as it was given
    test_ids = sorted(pd.read_csv(run / "predictions_test.csv", dtype={"id": str})["id"])
    for argv in ([], ["--data", manifest], ["--data", manifest.parent]):
        rc, err = ev(capsys, "--run", run, *argv)
        assert rc == 0, err
        pred = pd.read_csv(run / "predictions_test.csv", dtype={"id": str})
        assert sorted(pred["id"]) == test_ids  # its own test split, re-evaluated in place
    root = json.loads((run / "metrics_test.json").read_text())["data_root"]
    assert root == str(manifest.parent.resolve())  # the folder its image paths are relative to
    # the training-time files name the manifest file: image paths resolve against its folder
    assert images_root(cfg["data"]["root"]) == manifest.parent.resolve()
    assert all(safe_image_path(images_root(cfg["data"]["root"]), p) for p in pred["path"])


def test_the_gallery_shows_the_images_of_a_run_trained_on_a_manifest_file(csv_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    base, _, _ = csv_run
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(base / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/gallery.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) > 0
    assert not any("not found" in i.value for i in at.info), [i.value for i in at.info]


def test_evaluate_never_replaces_another_runs_results(run, tmp_path, capsys):
    other = Path(shutil.copytree(run, tmp_path / "runs" / "other"))
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "name": "other", "created": "2027-01-01T00:00:00+00:00"}))
    before = files_of(other)
    rc, err = ev(capsys, "--run", run, "--out", other)
    assert rc == 2 and err.startswith("error: ") and "run folder of other" in err and "new --out" in err
    assert files_of(other) == before
    # nor another model's evaluation folder
    folders = write_folders(tmp_path / "faces")
    rc, err = ev(capsys, "--run", other, "--data", folders, "--split", "test", "--out", tmp_path / "ev-other")
    assert rc == 2 and "this data has no split of its own; --split all scores every image" in err, err
    assert ev(capsys, "--run", other, "--data", folders, "--out", tmp_path / "ev-other")[0] == 0
    before = files_of(tmp_path / "ev-other")
    rc, err = ev(capsys, "--run", run, "--data", folders, "--out", tmp_path / "ev-other")
    assert rc == 2 and "evaluation folder of" in err and files_of(tmp_path / "ev-other") == before
    # in its own folder: not over the results of another split, nor over those of its own data with other data
    mine = files_of(run)
    for argv in (["--data", folders, "--tag", "val"], ["--split", "val", "--tag", "test"]):
        rc, err = ev(capsys, "--run", run, *argv)
        assert rc == 2 and "not replaced" in err and "--tag" in err, err
    assert files_of(run) == mine
    # a fresh tag, a fresh folder, or the same images again (a re-evaluation) are fine
    assert ev(capsys, "--run", run, "--data", folders, "--tag", "faces2")[0] == 0
    assert ev(capsys, "--run", run, "--data", folders, "--tag", "faces2")[0] == 0
    assert ev(capsys, "--run", run, "--out", tmp_path / "fresh")[0] == 0
    assert ev(capsys, "--run", run, "--out", tmp_path / "fresh")[0] == 0
    assert (run / "predictions_faces2.csv").is_file() and (tmp_path / "fresh" / "predictions_test.csv").is_file()


def test_a_checkpoint_path_writes_into_its_own_run_folder(run, capsys):
    before = (run / "metrics_val.json").stat().st_mtime_ns
    rc, err = ev(capsys, "--run", run / "checkpoints" / "best.pt", "--split", "val")
    assert rc == 0, err
    assert (run / "metrics_val.json").stat().st_mtime_ns > before


@pytest.mark.parametrize("where", ["/proc/fer-lab-out", "file/sub", "file"])
def test_an_unusable_out_is_refused_before_any_work(run, tmp_path, capsys, monkeypatch, where):
    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)

    def no_work(*a, **k):
        raise AssertionError("decoded images for an --out that cannot take the results")

    monkeypatch.setattr(evaluate.fdata, "decode_images", no_work)
    rc, err = ev(capsys, "--run", run, "--out", where)
    assert rc == 2 and err.startswith(f"error: --out {where} ") and "Traceback" not in err, err


@pytest.mark.parametrize("tag", ["../../escape", "a/b", ".hidden", "..", ""])
def test_a_tag_that_is_not_a_simple_name_is_refused(run, tmp_path, capsys, tag):
    before = sorted(p.name for p in run.parent.parent.iterdir())
    mine = files_of(run)
    rc, err = ev(capsys, "--run", run, "--tag", tag)
    assert rc == 2 and "not a simple name" in err
    assert files_of(run) == mine and sorted(p.name for p in run.parent.parent.iterdir()) == before


def test_the_default_model_finds_its_run_from_any_working_folder(csv_run, tmp_path, monkeypatch, capsys):
    import fer_core.inference as I

    _, manifest, trained = csv_run
    checkout = tmp_path / "checkout"  # the default model shipped beside its run's folder
    (checkout / "models" / "default").mkdir(parents=True)
    shutil.copy(trained / "checkpoints" / "best.pt", checkout / "models" / "default" / "model.pt")
    shutil.copytree(trained, checkout / "artifacts" / "runs" / "csv", ignore=shutil.ignore_patterns("checkpoints"))
    monkeypatch.setattr(I, "SHIPPED_DIR", checkout / "models" / "default")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    rc, err = ev(capsys, "--data", manifest, "--out", "mine")
    assert rc == 0, err
    pred = pd.read_csv(tmp_path / "elsewhere" / "mine" / "predictions_test.csv", dtype={"id": str})
    assert sorted(pred["id"]) == sorted(pd.read_csv(trained / "predictions_test.csv", dtype={"id": str})["id"])


def test_a_corrupt_onnx_file_is_one_clear_line(tmp_path, capsys):
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model\n")
    rc, err = ev(capsys, "--run", fake, "--data", write_folders(tmp_path / "faces"), "--out", tmp_path / "ev")
    assert rc == 2 and err.startswith(f"error: {fake}: not a readable ONNX model") and "Traceback" not in err
    assert not (tmp_path / "ev").exists()


def test_a_pooled_cross_validation_is_named_as_such_when_given_as_the_model(tmp_path, capsys):
    pooled = tmp_path / "my-cv5"
    pooled.mkdir()
    (pooled / "config.json").write_text(json.dumps({"status": "cross-validation", "fold_runs": []}))
    rc, err = ev(capsys, "--run", pooled, "--data", write_folders(tmp_path / "faces"), "--out", tmp_path / "ev")
    assert rc == 2 and "It is a pooled cross-validation" in err and "Give one fold's run folder" in err


def test_images_the_model_trained_on_are_found_under_any_layout_and_left_out(csv_run, run, tmp_path, capsys):
    import os

    base, manifest, _ = csv_run
    split = pd.read_csv(run / "split.csv", dtype=str)
    train_paths = list(split.loc[split["split"] == "train", "path"])
    # the same images in class folders, as symlinks: beside new images of the same names (0.jpg, 1.jpg)
    folders = write_folders(tmp_path / "folders")
    labels = dict(zip(*pd.read_csv(manifest, dtype=str)[["path", "expression"]].T.values))
    for rel, label in labels.items():
        os.symlink(manifest.parent / rel, folders / label / f"from-{Path(rel).name}")
    n_all = 16 + len(labels)
    rc, err = ev(capsys, "--run", run, "--data", folders, "--out", tmp_path / "a")
    assert rc == 0, err
    assert (f"note: left out {len(train_paths)} of these {n_all} images: csv, or a run its training started from, "
            f"trained on them (the same files, or copies); --split all scores them too") in err
    pred = pd.read_csv(tmp_path / "a" / "predictions_folders-all.csv")
    assert len(pred) == n_all - len(train_paths)
    assert not {Path(p).name for p in pred["path"]} & {f"from-{Path(t).name}" for t in train_paths}
    assert json.loads((tmp_path / "a" / "metrics_folders-all.json").read_text())["left_out_trained"] == len(train_paths)

    # byte-identical copies count too, under the same name or another; --split all scores them, with a warning
    copies = write_folders(tmp_path / "copies")
    for rel, label in labels.items():
        shutil.copy(manifest.parent / rel, copies / label / f"copy-{Path(rel).name}")
        if rel in train_paths:
            shutil.copy(manifest.parent / rel, copies / label / Path(rel).name)
    rc, err = ev(capsys, "--run", run, "--data", copies, "--out", tmp_path / "b", "--split", "all")
    assert rc == 0, err
    n_copies = len(list(copies.rglob("*.jpg")))
    assert (f"note: {2 * len(train_paths)} of these {n_copies} images are images csv, or a run its training started "
            "from") in err
    assert len(pd.read_csv(tmp_path / "b" / "predictions_copies-all.csv")) == n_copies


def test_other_pictures_under_the_runs_ids_are_other_data(csv_run, run, tmp_path, capsys):
    """Full AffectNet numbers its training images as its validation set does: the ids alone do not make a copy."""
    _, manifest, _ = csv_run
    before = (run / "predictions_test.csv").read_bytes()
    copy = Path(shutil.copytree(manifest.parent, tmp_path / "copy"))  # the same images elsewhere: the run's own
    for img in (copy / "img").glob("*.jpg"):  # even saved again, at another size
        Image.open(img).resize((64, 64), Image.BICUBIC).save(img, quality=95)
    rc, err = ev(capsys, "--run", run, "--data", copy / "manifest.csv")
    assert rc == 0, err
    assert not list(run.glob("predictions_manifest-*.csv")) and not list(run.glob("predictions_copy-*.csv"))
    assert pd.read_csv(run / "predictions_test.csv")["id"].tolist() == pd.read_csv(io.BytesIO(before))["id"].tolist()
    (run / "predictions_test.csv").write_bytes(before)  # re-evaluated in place on its own test images
    other = Path(shutil.copytree(manifest.parent, tmp_path / "other"))
    write_manifest(tmp_path / "new", seed=7)
    for img in (other / "img").glob("*.jpg"):  # every id kept, each now another picture
        shutil.copy(tmp_path / "new" / "img" / img.name, img)
    rc, err = ev(capsys, "--run", run, "--data", other / "manifest.csv")
    assert rc == 0, err
    assert (run / "predictions_test.csv").read_bytes() == before  # the run's own results are not replaced
    assert (run / "predictions_manifest-all.csv").is_file()  # scored as other data: every image


def test_rows_the_reader_skips_are_said_and_recorded(run, tmp_path, capsys):
    data = tmp_path / "m"
    manifest = write_manifest(data, n_per_class=2, seed=3)
    df = pd.read_csv(manifest, dtype=str)
    df.loc[0, "expression"] = "Bored"
    df.loc[1, "path"] = "img/missing.jpg"
    df.loc[2, "valence"] = "abc"
    df.loc[3, "arousal"] = "5"
    df.to_csv(manifest, index=False)
    rc, err = ev(capsys, "--run", run, "--data", manifest, "--out", tmp_path / "out")
    assert rc == 0, err
    assert ("note: skipped: unknown label 'Bored' 1, missing image 1, valence/arousal not a number in [-1, 1] 2"
            in err)
    m = json.loads((tmp_path / "out" / "metrics_manifest-all.json").read_text())
    assert m["n"] == 12 and m["skipped_samples"] == {"unknown label 'Bored'": 1, "missing image": 1,
                                                     "valence/arousal not a number in [-1, 1]": 2}


def test_a_manifest_split_column_is_used_whole_or_refused(tmp_path, capsys):
    from fer_core import data as fdata

    manifest = write_manifest(tmp_path / "m", n_per_class=2)
    df = pd.read_csv(manifest)
    df["split"] = ["train", "val", "test", "bogus"] * 4
    df.to_csv(manifest, index=False)
    with pytest.raises(fdata.DataError, match="split column values 'bogus' are not train, val or test"):
        fdata.read_dataset(manifest)
    df["split"] = ["train", "val", "test", ""] * 4
    df.to_csv(manifest, index=False)
    with pytest.raises(fdata.DataError, match="names a split for 12 of 16 images"):
        fdata.read_dataset(manifest)
    df["split"] = ["train", "val", "test", "train"] * 3 + ["train", "val", "test", ""]  # one image left out
    df.to_csv(manifest, index=False)
    with pytest.raises(fdata.DataError, match="names a split for 15 of 16 images"):
        fdata.read_dataset(manifest)
    df["split"] = ["train", "valid", "test", "train"] * 4
    df.to_csv(manifest, index=False)
    assert {s.split for s in fdata.read_dataset(manifest).samples} == {"train", "val", "test"}


def test_a_model_trained_without_va_has_its_va_outputs_left_unscored(run, tmp_path, capsys):
    from fer_core.runs import discover_runs

    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["has_va"] = False  # as trained on FER+ or class folders: its valence/arousal head learned nothing
    (run / "config.json").write_text(json.dumps(cfg))
    data = write_manifest(tmp_path / "m", n_per_class=2, seed=3)  # annotated with valence/arousal
    rc, err = ev(capsys, "--run", run, "--data", data, "--out", tmp_path / "a")
    assert rc == 0, err
    assert err.count("note: csv was trained without valence/arousal: its valence/arousal outputs are not scored") == 1
    pred = pd.read_csv(tmp_path / "a" / "predictions_manifest-all.csv")
    assert pred[["valence_pred", "arousal_pred"]].isna().all().all()
    assert pred[["valence_true", "arousal_true"]].notna().all().all()
    m = json.loads((tmp_path / "a" / "metrics_manifest-all.json").read_text())
    assert m["valence"] is None and m["arousal"] is None
    assert not any(k.startswith(("valence", "arousal")) for k in m["ci95"])  # as for data without them
    assert json.loads((tmp_path / "a" / "config.json").read_text())["data"]["has_va"] is False
    assert [r.has_va for r in discover_runs([tmp_path / "a"])[0]] == [False]

    # --extra-data with valence/arousal taught them: they are scored
    cfg["data"]["extra"] = {"root": "/elsewhere/affectnet", "layout": "affectnet", "n_train": 100, "has_va": True}
    (run / "config.json").write_text(json.dumps(cfg))
    rc, err = ev(capsys, "--run", run, "--data", data, "--out", tmp_path / "b")
    assert rc == 0 and "trained without valence/arousal" not in err, err
    assert json.loads((tmp_path / "b" / "metrics_manifest-all.json").read_text())["valence"]["n"] == 16
    assert json.loads((tmp_path / "b" / "config.json").read_text())["data"]["has_va"] is True


def test_classes_the_data_lacks_are_said_and_can_be_left_out_of_the_answer(run, tmp_path, capsys, monkeypatch):
    from fer_core.metrics import PROB_COLS

    data = write_manifest(tmp_path / "m", n_per_class=3, seed=4)
    rows = pd.read_csv(data)
    rows[rows["expression"] != "contempt"].to_csv(data, index=False)  # 7 classes, as RAF-DB or FER2013
    real = evaluate.predict_arrays

    def drawn_to_contempt(*a, **k):  # every third image called Contempt
        probs, va = real(*a, **k)
        probs[::3, 7] += 2
        return probs / probs.sum(1, keepdims=True), va

    monkeypatch.setattr(evaluate, "predict_arrays", drawn_to_contempt)
    rc, err = ev(capsys, "--run", run, "--data", data, "--out", tmp_path / "a")
    assert rc == 0, err
    pred = pd.read_csv(tmp_path / "a" / "predictions_manifest-all.csv")
    called = int((pred["pred"] == 7).sum())
    assert called >= 7 and (f"note: none of these images is labelled Contempt; the model called {called} of the 21 "
                            f"images Contempt (counted wrong)") in err
    m = json.loads((tmp_path / "a" / "metrics_manifest-all.json").read_text())
    assert m["classes_in_data"] == CLASSES[:7] and m["only_data_classes"] is False

    capsys.readouterr()
    rc = evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(run), "--data", str(data), "--out", str(tmp_path / "b"), "--only-data-classes"]))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "labelled Contempt" not in err and "only the 7 classes in the data" in out
    pred = pd.read_csv(tmp_path / "b" / "predictions_manifest-all-dataclasses.csv")  # named for how it answered
    assert (pred["pred"] != 7).all() and (pred["prob_7"] == 0).all()
    assert np.allclose(pred[PROB_COLS].sum(axis=1), 1, atol=1e-4)
    assert json.loads((tmp_path / "b" / "metrics_manifest-all-dataclasses.json").read_text())["only_data_classes"]
    # both kinds of answer in one folder: neither replaces the other
    rc, err = ev(capsys, "--run", run, "--data", data, "--out", tmp_path / "b")
    assert rc == 0 and {p.name for p in (tmp_path / "b").glob("predictions_*.csv")} == {
        "predictions_manifest-all.csv", "predictions_manifest-all-dataclasses.csv"}


def test_evaluate_on_a_folders_own_test_part_says_how_to_sit_beside_runs_trained_there(run, tmp_path, capsys):
    data = tmp_path / "mine"
    write_folders(data / "train")
    write_folders(data / "test", seed=2)
    rc, err = ev(capsys, "--run", run, "--data", data, "--out", tmp_path / "ev")
    assert rc == 0 and (tmp_path / "ev" / "predictions_mine-test.csv").is_file()
    assert f"a run whose data is {data} calls these images its test split: --tag test puts this evaluation" in err
    rc, err = ev(capsys, "--run", run, "--data", data, "--out", tmp_path / "ev2", "--tag", "test")
    assert rc == 0 and (tmp_path / "ev2" / "predictions_test.csv").is_file() and "--tag test puts" not in err


class _LeftRight(torch.nn.Module):
    """Logit 0 and both valence and arousal are the left half's mean minus the right half's: a mirror turns their
    sign, so flip-TTA (the mirror, not upside down) averages them to 0, and its class probabilities are the same for
    an image and its mirror."""

    def forward(self, x):
        d = x[..., : x.shape[-1] // 2].mean((1, 2, 3)) - x[..., x.shape[-1] // 2:].mean((1, 2, 3))
        logits = torch.zeros(len(x), len(CLASSES))
        logits[:, 0] = 4 * d
        return logits, torch.stack([d, d], 1)


def test_flip_tta_averages_each_image_with_its_mirror_in_both_heads():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (3, 3, 16, 16), dtype=np.uint8))
    images[:, :, :, :8] //= 4  # a dark left half: the heads' answers are far from 0 without the mirror
    mean, std = [0.5] * 3, [0.25] * 3
    plain_p, plain_va = evaluate.predict_arrays(_LeftRight(), images, mean, std)
    assert np.abs(plain_va).min() > 0.5
    p, va = evaluate.predict_arrays(_LeftRight(), images, mean, std, tta=True)
    mirrored_p, _ = evaluate.predict_arrays(_LeftRight(), torch.flip(images, dims=[3]), mean, std, tta=True)
    assert np.allclose(va, 0, atol=1e-6)
    assert np.allclose(p, mirrored_p, atol=1e-6) and not np.allclose(p, plain_p)


def test_the_predictions_table_puts_valence_and_arousal_in_their_own_columns():
    from fer_core.data import Sample

    df = evaluate.predictions_frame([Sample("1", "a.jpg", 0, 0.2, -0.3)], np.eye(len(CLASSES))[[0]],
                                    np.array([[0.1, 0.9]]))
    assert df.loc[0, ["valence_true", "valence_pred", "arousal_true", "arousal_pred"]].tolist() == [0.2, 0.1, -0.3, 0.9]


def test_a_run_trained_with_tta_is_evaluated_with_it_unless_told_otherwise(run, capsys):
    cfg = json.loads((run / "config.json").read_text())
    cfg["args"]["tta"] = True
    (run / "config.json").write_text(json.dumps(cfg))
    rc, _ = ev(capsys, "--run", run, "--split", "val")
    assert rc == 0 and json.loads((run / "metrics_val.json").read_text())["tta"] is True
    rc, err = ev(capsys, "--run", run, "--split", "val", "--no-tta")
    assert rc == 0 and json.loads((run / "metrics_val-notta.json").read_text())["tta"] is False, err
