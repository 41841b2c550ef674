"""Near-copies in a data set: one photo twice, re-encoded, resized, recoloured, cropped a little or mirrored (see
fer_core/duplicates.py for how they are told apart). Prints how many pairs there are, which parts of the split they
join, and how many of them carry different labels; a validation or test image with a near-copy among the training
images flatters the model.

    python scripts/find_duplicates.py ../shared/data/ferplus                # its own train/val/test parts
    python scripts/find_duplicates.py ../shared/data/affectnet8-4k --run artifacts/runs/hse-best   # a run's split
    python scripts/find_duplicates.py DATA --run RUN --out pairs.csv --leaks leaks.csv

--out writes every pair (both images' id, path, part and label, their similarity, whether one is the other mirrored);
--leaks the training images that are near-copies of a validation or test image (or of one of its copies), which
`python -m fer_core.train ... --exclude leaks.csv` leaves out of training.

--pretrain OTHER looks for the validation and test images (every image, where the data has no parts: a
cross-validation tests each once) among the images of another data set that a first stage trains on, FER+ before
AffectNet: a model fine-tuned from that stage has seen those faces too. --out then writes those pairs, and --leaks
the other set's training images among them, for the first stage's --exclude:

    python scripts/find_duplicates.py ../shared/data/affectnet8-4k --pretrain ../shared/data/ferplus --leaks l.csv
    python -m fer_core.train --data ../shared/data/ferplus --preset ferplus-hse --exclude l.csv ...
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import duplicates as D  # noqa: E402
from fer_core.data import DataError, images_root, read_dataset  # noqa: E402
from fer_core.evaluate import saved_split  # noqa: E402
from fer_core.io import atomic_write_csv  # noqa: E402
from fer_core.labels import CLASSES  # noqa: E402
from fer_core.runs import cross_validated  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="the data set's folder (or CSV manifest), any layout fer_core reads")
    p.add_argument("--run", help="a run folder trained on this data: its split.csv gives the parts (default: the "
                   "data's own parts, if it has them)")
    p.add_argument("--threshold", type=float, default=D.THRESHOLD,
                   help=f"least similarity of a near-copy, 0 to 1 (default {D.THRESHOLD}); lower finds more, and "
                        "more pairs that are two people")
    p.add_argument("--out", help="write every pair to this CSV")
    p.add_argument("--leaks", help="write the training images with a near-copy among the validation or test images "
                   "to this CSV (id, path), for training's --exclude")
    p.add_argument("--pretrain", help="another data set a first stage trains on (e.g. FER+): find this data's "
                   "validation and test images (all, without parts) among its images; --out and --leaks are then of "
                   "those pairs and of its training images")
    a = p.parse_args(argv)
    if not 0 < a.threshold <= 1:
        p.error(f"--threshold must be over 0 and at most 1 (got {a.threshold})")
    for flag, path in (("--out", a.out), ("--leaks", a.leaks)):  # before the minutes of comparing, not after
        if path and (why := unwritable(Path(path))):
            p.error(f"{flag} {path}: {why}")
    if a.out and a.leaks and Path(a.out).resolve() == Path(a.leaks).resolve():
        p.error("--out and --leaks name the same file: give two")
    try:
        index = read_dataset(a.data)
        parts = [s.split for s in index.samples]
        if a.run:
            if not (Path(a.run) / "split.csv").is_file():
                raise DataError(f"{a.run} has no split.csv to give the parts" + (
                    " (a pooled cross-validation: give one of its fold runs, each with its own split)"
                    if cross_validated(read_config(a.run)) else ""))
            split = saved_split(Path(a.run))
            if not any(s.id in split for s in index.samples):
                raise DataError(f"{a.run}'s split.csv names none of the {len(index.samples)} images of {index.root}: "
                                "it was trained on other data")
            parts = [split.get(s.id) for s in index.samples]
    except KeyError as e:
        print(f"error: {a.run}/split.csv has no {e} column: not a run's split", file=sys.stderr)
        return 2
    except (DataError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.pretrain:
        return across(a, index, parts)
    if a.leaks and not ({"val", "test"} & set(parts) and "train" in parts):
        print(f"error: --leaks needs training and validation or test images: {index.root} has no parts of its own "
              "(give --run, a run folder trained on it)", file=sys.stderr)
        return 2
    root, samples = images_root(index.root), index.samples
    prints, bad = D.file_fingerprints([root / s.path for s in samples])
    pairs = D.near_copies(prints, threshold=a.threshold)
    relabelled = sum(samples[i].label != samples[j].label for i, j in zip(pairs["a"], pairs["b"]))
    print(f"{index.root}: {len(samples):,} images, {len(pairs):,} pairs of near-copies (similarity ≥ {a.threshold}) "
          f"among {len(set(pairs['a']) | set(pairs['b'])):,} images; pairs labelled two different classes: "
          f"{relabelled:,}")
    if bad:
        print(f"{len(bad)} images did not decode and were not compared (e.g. {samples[bad[0]].path})")
    if any(parts) and len(pairs):
        print("pairs by parts: " + ", ".join(f"{k} {n:,}" for k, n in D.part_pairs(pairs, parts).most_common()))
    n_train = parts.count("train")
    for part in ("val", "test"):
        if n_train and (n := parts.count(part)):
            copied = {i for i, j in zip(pairs["a"], pairs["b"]) for i, j in ((i, j), (j, i))
                      if parts[i] == part and parts[j] == "train"}
            print(f"{part}: {len(copied):,} of its {n:,} images have a near-copy among the {n_train:,} training images")
    try:
        if a.out:
            write_pairs(a.out, pairs, (samples, parts), (samples, parts))
        if a.leaks:
            # every training image of a same-photo group that holds a validation or test image, copied directly or not
            group = D.same_photo_groups(pairs, len(samples))
            held = {group[i] for i, k in enumerate(parts) if k in ("val", "test")}
            write_leaks(a.leaks, samples, [i for i, k in enumerate(parts) if k == "train" and group[i] in held],
                        "no training image copies a validation or test image: {path} not written",
                        "wrote {n} training images to {path}: their photo is also a validation or test image "
                        "(--exclude leaves them out of training)")
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def across(a, index, parts: list[str | None]) -> int:
    """--pretrain: this data's held-out images (every one where it has no parts) among the other set's images."""
    try:
        other = read_dataset(a.pretrain)
    except (DataError, OSError, ValueError) as e:
        print(f"error: --pretrain {a.pretrain}: {e}", file=sys.stderr)
        return 2
    held = [i for i, k in enumerate(parts) if k in ("val", "test")] or list(range(len(index.samples)))
    what = "validation and test images" if any(k in ("val", "test") for k in parts) else \
        "images (no parts given: each is a test image in a cross-validation)"
    mine = [index.samples[i] for i in held]
    theirs, other_parts = other.samples, [s.split for s in other.samples]
    prints, unread = D.file_fingerprints([images_root(index.root) / s.path for s in mine])
    other_prints, bad = D.file_fingerprints([images_root(other.root) / s.path for s in theirs])
    pairs = D.near_copies(prints, other_prints, a.threshold)
    copied = set(pairs["a"])
    copies = set(pairs["b"])  # the other set's images that copy one of these
    by_part = Counter(other_parts[j] or "no part" for j in copies).most_common()
    print(f"{index.root}: {len(copied):,} of its {len(mine):,} {what} have a near-copy among the {len(theirs):,} "
          f"images of {other.root} (similarity ≥ {a.threshold})"
          + (f", in {len(copies):,} of them" if copies else "")
          + (" (" + ", ".join(f"{k} {n:,}" for k, n in by_part) + ")" if copies and any(other_parts) else ""))
    for part in ("val", "test"):
        if ids := [mine[i].id for i in sorted(copied) if parts[held[i]] == part]:
            print(f"{part}: {len(ids):,}, ids {', '.join(ids[:20])}" + (", ..." if len(ids) > 20 else ""))
    for n, root in ((len(unread), index.root), (len(bad), other.root)):
        if n:
            print(f"{n} images of {root} did not decode and were not compared")
    try:
        if a.out:
            write_pairs(a.out, pairs, (mine, [parts[i] for i in held]), (theirs, other_parts))
        if a.leaks:
            trained = "train" if "train" in other_parts else None  # its training part, or all of it without parts
            write_leaks(a.leaks, theirs, sorted({j for j in pairs["b"] if other_parts[j] == trained}),
                        f"no training image of {other.root} copies one of these images: {{path}} not written",
                        f"wrote {{n}} training images of {other.root} to {{path}} (the first stage's --exclude "
                        "leaves them out)")
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def write_pairs(path, pairs, a_side, b_side) -> None:
    """--out: each pair's two images (id, path, part, label; the second's as copy_...), similarity and mirroring.
    ``a_side`` and ``b_side``: (samples, parts) that pairs' a and b rows index."""
    def side(rows, samples, parts, prefix=""):
        return {f"{prefix}id": [samples[i].id for i in rows], f"{prefix}path": [samples[i].path for i in rows],
                f"{prefix}split": [parts[i] for i in rows], f"{prefix}label": [CLASSES[samples[i].label] for i in rows]}
    table = pd.DataFrame({**side(pairs["a"], *a_side), **side(pairs["b"], *b_side, "copy_"),
                          "similarity": pairs["similarity"].round(4), "mirrored": pairs["mirrored"]})
    atomic_write_csv(path, table)
    print(f"wrote {len(table):,} pairs to {path}")


def write_leaks(path, samples, rows: list[int], none: str, done: str) -> None:
    """--leaks: the training images ``rows`` (id, path), for --exclude, then ``done`` said ("{n}" and "{path}" filled
    in; a folder's name may hold braces itself); ``none`` said instead where there are none."""
    if rows:
        atomic_write_csv(path, pd.DataFrame({"id": [samples[i].id for i in rows],
                                             "path": [samples[i].path for i in rows]}))
    print((done if rows else none).replace("{n}", f"{len(rows):,}").replace("{path}", str(path)))


def read_config(run: str) -> dict:
    """A run folder's config.json, or {} where it has none that reads."""
    try:
        config = json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def unwritable(path: Path) -> str | None:
    """Why a CSV cannot be written at ``path``, or None."""
    if path.is_dir():
        return "a folder, not a file"
    if not path.parent.is_dir():
        return f"no folder {path.parent}"
    if not os.access(path.parent, os.W_OK):
        return f"{path.parent} is not writable"
    return None

if __name__ == "__main__":
    sys.exit(main())
