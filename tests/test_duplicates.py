"""Near-copies: found when one photo is re-encoded, resized, recoloured, cropped a little or mirrored, and not between
different pictures; the script's counts and files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_flat_and_unreadable_images_match_nothing(tmp_path):
    paths = save([Image.new("RGB", (32, 32), (90, 90, 90)), Image.new("RGB", (64, 64), (200, 10, 10))], tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    prints, bad = D.file_fingerprints([*paths, tmp_path / "broken.jpg"], progress=False)
    assert bad == [2] and not prints.any()
    assert D.near_copies(prints).empty


def run_script(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "find_duplicates.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


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
