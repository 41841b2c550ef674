"""Near-copies: found when one photo is re-encoded, resized, recoloured, cropped a little or mirrored, and not between
different pictures; the script's counts and files."""
from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from fer_core import duplicates as D

ROOT = Path(__file__).resolve().parents[1]


def photos(n: int, seed: int = 0) -> list[Image.Image]:
    """Distinct pictures: smooth random colour fields, 96 px."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((96, 96), Image.BICUBIC)
            for _ in range(n)]


def copies(originals: list[Image.Image]) -> list[Image.Image]:
    """Of the first four: re-encoded small, mirrored, recoloured, cropped by 4% each side."""
    a, b, c, d = originals[:4]
    return [a.resize((48, 48)), ImageOps.mirror(b), Image.eval(c, lambda v: int(40 + 0.7 * v)),
            d.crop((4, 4, 92, 92)).resize((96, 96))]


def save(images, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        paths.append(folder / f"{i}.jpg")
        im.save(paths[-1], quality=70)
    return paths


def test_near_copies_are_found_and_different_pictures_are_not(tmp_path):
    originals = photos(8)
    prints, bad = D.file_fingerprints(save(originals + copies(originals), tmp_path), progress=False)
    assert bad == []
    pairs = D.near_copies(prints)
    assert sorted(zip(pairs["a"], pairs["b"])) == [(0, 8), (1, 9), (2, 10), (3, 11)]
    assert pairs.set_index("a")["mirrored"].to_dict() == {0: False, 1: True, 2: False, 3: False}
    assert (pairs["similarity"] >= D.THRESHOLD).all() and (pairs["similarity"] <= 1 + 1e-5).all()
    # across two sets: the copies against the originals, each copy found once
    across = D.near_copies(prints[8:], prints[:8])
    assert sorted(zip(across["a"], across["b"])) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert D.held_out_copies({"train": prints[:8], "test": prints[8:]}) == {"test": {0, 1, 2, 3}}


def test_pairs_found_in_blocks_are_those_found_at_once(monkeypatch):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, D.SIDE * D.SIDE)).astype(np.float32)
    prints = np.concatenate([base, base[:7] + rng.normal(0, 0.05, (7, D.SIDE * D.SIDE)).astype(np.float32),
                             D._mirrored(base[3:5])])
    prints /= np.linalg.norm(prints, axis=1, keepdims=True)
    whole = D.near_copies(prints)
    assert len(whole) == 7 + 2 + 2  # each noisy copy and mirror with its original, and mirror 3 with copy 3 (4 too)
    for block in (1, 5, 37, 38, 100):  # a few rows at a time against the rest
        monkeypatch.setattr(D, "_BLOCK", block * len(prints))
        found = D.near_copies(prints).sort_values(["a", "b"], ignore_index=True)
        expected = whole.sort_values(["a", "b"], ignore_index=True)
        assert found[["a", "b", "mirrored"]].equals(expected[["a", "b", "mirrored"]])
        assert np.allclose(found["similarity"], expected["similarity"], atol=1e-5)
    assert D.near_copies(prints[:0]).empty and D.near_copies(prints, prints[:0]).empty


def test_flat_and_unreadable_images_match_nothing(tmp_path):
    step = np.full((64, 64, 3), 90, np.uint8)
    step[:, 32:] = 91  # a blank frame with one grey level's step: as flat as blank
    paths = save([Image.new("RGB", (32, 32), (90, 90, 90)), Image.new("RGB", (64, 64), (200, 10, 10)),
                  Image.fromarray(step)], tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    prints, bad = D.file_fingerprints([*paths, tmp_path / "broken.jpg"], progress=False)
    assert bad == [3] and not prints.any()
    assert D.near_copies(prints).empty


def run_script(*args) -> SimpleNamespace:
    """scripts/find_duplicates.py run in this process (its imports take seconds): returncode, stdout, stderr."""
    spec = importlib.util.spec_from_file_location("find_duplicates", ROOT / "scripts" / "find_duplicates.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = script.main(list(map(str, args)))
        except SystemExit as e:  # argparse's errors
            rc = e.code
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


def test_find_duplicates_counts_pairs_by_part_and_writes_the_leaks_for_exclude(tmp_path):
    originals = photos(8, seed=1)
    paths = save(originals + copies(originals), tmp_path / "faces")
    # the copies of pictures 0 and 1 are test images, of 2 a validation image, of 3 a training image relabelled
    parts = ["train"] * 6 + ["val", "test"] + ["test", "test", "val", "train"]
    pd.DataFrame({"path": [f"faces/{p.name}" for p in paths], "expression": [*range(8), 0, 1, 2, 5],
                  "split": parts}).to_csv(tmp_path / "data.csv", index=False)
    done = run_script(tmp_path / "data.csv", "--out", tmp_path / "pairs.csv", "--leaks", tmp_path / "leaks.csv")
    assert done.returncode == 0, done.stderr
    assert "4 pairs of near-copies" in done.stdout and "pairs labelled two different classes: 1" in done.stdout
    assert "train–test 2" in done.stdout and "train–val 1" in done.stdout and "train–train 1" in done.stdout
    assert "test: 2 of its 3 images have a near-copy among the 7 training images" in done.stdout
    assert "val: 1 of its 2 images" in done.stdout
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert len(pairs) == 4 and set(pairs.columns) >= {"id", "path", "copy_id", "copy_path", "similarity", "mirrored"}
    assert sorted(pd.read_csv(tmp_path / "leaks.csv")["path"]) == ["faces/0.jpg", "faces/1.jpg", "faces/2.jpg"]


def test_find_duplicates_refuses_leaks_without_parts_and_bad_input(tmp_path):
    originals = photos(8, seed=2)
    for i, im in enumerate(originals + copies(originals)):
        save([im], tmp_path / "faces" / ["Happy", "Sad"][i % 2] / str(i))
    done = run_script(tmp_path / "faces", "--leaks", tmp_path / "leaks.csv")
    assert done.returncode == 2 and "--leaks needs training and validation or test images" in done.stderr
    assert not (tmp_path / "leaks.csv").exists()
    done = run_script(tmp_path / "faces")
    assert done.returncode == 0 and "4 pairs of near-copies" in done.stdout and "pairs by parts" not in done.stdout
    done = run_script(tmp_path / "nowhere")
    assert done.returncode == 2 and "error: data folder not found" in done.stderr and "Traceback" not in done.stderr
    done = run_script(tmp_path / "faces", "--threshold", "1.5")
    assert done.returncode == 2 and "--threshold must be over 0 and at most 1" in done.stderr
    for args, message in [(["--out", tmp_path / "faces"], "--out {}: a folder, not a file"),
                          (["--out", tmp_path / "no" / "p.csv"], "--out {}: no folder"),
                          (["--out", tmp_path / "x.csv", "--leaks", tmp_path / "x.csv"], "name the same file")]:
        done = run_script(tmp_path / "faces", *args)
        assert done.returncode == 2 and message.format(args[1]) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "no").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "split.csv").write_text("image,part\nfaces/Happy/0/0.jpg,train\n")
    done = run_script(tmp_path / "faces", "--run", run)
    assert done.returncode == 2 and "split.csv has no 'id' column" in done.stderr
    (run / "split.csv").unlink()
    (run / "config.json").write_text('{"split": {"source": "cross-validation", "folds": 5}}')
    done = run_script(tmp_path / "faces", "--run", run)
    assert done.returncode == 2 and "a pooled cross-validation: give one of its fold runs" in done.stderr


def test_find_duplicates_writes_no_leaks_file_when_nothing_leaks(tmp_path):
    paths = save(photos(6, seed=3), tmp_path / "faces")
    pd.DataFrame({"path": [f"faces/{p.name}" for p in paths], "expression": range(6),
                  "split": ["train"] * 4 + ["val", "test"]}).to_csv(tmp_path / "data.csv", index=False)
    done = run_script(tmp_path / "data.csv", "--leaks", tmp_path / "leaks.csv")
    assert done.returncode == 0 and "0 pairs of near-copies" in done.stdout and "pairs by parts" not in done.stdout
    assert "test: 0 of its 1 images" in done.stdout and "leaks.csv not written" in done.stdout
    assert not (tmp_path / "leaks.csv").exists()


def test_find_duplicates_finds_held_out_images_in_a_pretraining_set(tmp_path):
    originals = photos(8, seed=4)
    paths = save(originals, tmp_path / "mine")
    pd.DataFrame({"path": [f"mine/{p.name}" for p in paths], "expression": range(8),
                  "split": ["train"] * 4 + ["val", "val", "test", "test"]}).to_csv(tmp_path / "mine.csv", index=False)
    # the first stage's set holds copies of 0 (a training image: no leak), 4 (val) and 6 (test), and 2 new pictures
    theirs = save([copies(originals)[0], ImageOps.mirror(originals[4]), originals[6].resize((48, 48)),
                   *photos(2, seed=5)], tmp_path / "theirs")
    pd.DataFrame({"path": [f"theirs/{p.name}" for p in theirs], "expression": range(5),
                  "split": ["train", "train", "val", "train", "test"]}).to_csv(tmp_path / "theirs.csv", index=False)
    done = run_script(tmp_path / "mine.csv", "--pretrain", tmp_path / "theirs.csv", "--out", tmp_path / "pairs.csv",
                      "--leaks", tmp_path / "leaks.csv")
    assert done.returncode == 0, done.stderr
    assert "2 of its 4 validation and test images have a near-copy among the 5 images" in done.stdout
    assert "in 2 of them (train 1, val 1)" in done.stdout and "val: 1, ids mine/4.jpg" in done.stdout
    assert "test: 1, ids mine/6.jpg" in done.stdout
    pairs = pd.read_csv(tmp_path / "pairs.csv", dtype=str)
    assert sorted(zip(pairs["path"], pairs["copy_path"])) == [("mine/4.jpg", "theirs/1.jpg"),
                                                              ("mine/6.jpg", "theirs/2.jpg")]
    assert list(pd.read_csv(tmp_path / "leaks.csv")["path"]) == ["theirs/1.jpg"]  # its training part only
    done = run_script(tmp_path / "mine.csv", "--pretrain", tmp_path / "nowhere")
    assert done.returncode == 2 and "error: --pretrain" in done.stderr and "Traceback" not in done.stderr


def test_held_out_copies_name_the_held_out_rows_and_a_frame_one_grey_level_from_flat_has_no_fingerprint():
    train = np.eye(5, D.SIDE * D.SIDE, dtype=np.float32)
    test = np.stack([np.zeros(D.SIDE * D.SIDE, np.float32), train[3]])  # its second row copies training row 3
    assert D.held_out_copies({"train": train, "test": test}) == {"test": {1}}
    almost_flat = np.full((2 * D.SIDE, 2 * D.SIDE, 3), 100, np.uint8)
    almost_flat[:, D.SIDE:] = 101
    assert not D.fingerprint(almost_flat).any()
