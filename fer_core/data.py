"""Data readers: find the samples of a facial-expression data set on disk, split them, decode the images.

Four layouts are recognised (``detect_layout``): AffectNet's release layout (one folder, or the full release's
train_set/ and val_set/), FER+'s own layout, class folders (optionally under train/val/test) and a CSV manifest.
Every reader returns a ``DataIndex`` whose labels are in AffectNet order (``fer_core.labels``) and which counts
everything it left out, and why.
"""
from __future__ import annotations

import io
import math
import os
import re
import shlex
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from .images import (IMAGE_EXTS, ImageError, decode_images, files_under,  # noqa: F401  (part of this module's API)
                     NOT_SUPPORTED, load_image)
from .labels import CLASSES, NUMBERINGS, class_index, close_class, likely_numbering


class DataError(Exception):
    """Bad data location or contents; the message is one line meant for the user."""


@dataclass
class Sample:
    id: str
    path: str  # relative to the data root (absolute only for CSV rows that point outside it)
    label: int
    valence: float = math.nan
    arousal: float = math.nan
    split: str | None = None
    votes: tuple[float, ...] | None = None  # annotators' distribution over the 8 classes (FER+), AffectNet order
    landmarks: np.ndarray | None = None  # [68, 2] (x, y) in [-1, 1] across the image (AffectNet), see read_landmarks


@dataclass
class DataIndex:
    root: Path
    layout: str
    samples: list[Sample]
    has_va: bool
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    properties: pd.DataFrame | None = None  # a manifest's other columns (gender, age, camera, ...), indexed by id


SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
AFFECTNET_SENTINELS = {8: "None", 9: "Uncertain", 10: "No-Face"}
FERPLUS_SPLITS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
# FER+ vote columns, in FER+'s own order; the first eight are expression names class_index() knows.
FERPLUS_VOTES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                 "unknown", "not-a-face"]
CSV_PATH_COLS = ("path", "image", "file", "filename", "image_path")
CSV_LABEL_COLS = ("expression", "label", "class", "emotion")
MISSING_WORDS = {"na", "n/a", "#n/a", "none", "null", "nan"}  # how R, Excel and pandas write an empty number
LOOKED_FOR = ("AffectNet (images/ + annotations/, or train_set/ and val_set/ that hold them), "
              "FER+ (FER2013Train|Valid|Test/label.csv), class folders ([train|val|test/]<class>/*.jpg) or a CSV "
              "manifest (path, expression[, valence, arousal, split])")


def _count(skipped: dict, reason: str, n: int = 1) -> None:
    skipped[reason] = skipped.get(reason, 0) + n


def _split_name(name) -> str | None:
    return SPLIT_NAMES.get(str(name).strip().lower())


def separator(first_line: bytes) -> str:
    """A CSV's field separator, from its first line: a comma, or the semicolon or tab of a spreadsheet saved in some
    locales."""
    return max((",", ";", "\t"), key=lambda c: (first_line.count(c.encode()), c == ","))  # UTF-16's ASCII bytes too


def bom_encoding(start: bytes) -> str | None:
    """The encoding a file's byte-order mark names ("CSV UTF-8" from Excel starts with one; "Unicode text" is
    UTF-16), from its first bytes, or None where it has none."""
    if start[:3] == b"\xef\xbb\xbf":
        return "utf-8-sig"
    return "utf-16" if start[:2] in (b"\xff\xfe", b"\xfe\xff") else None


def _separator(csv_path: Path) -> str:
    try:
        with open(csv_path, "rb") as f:
            return separator(f.readline())
    except OSError:
        return ","


def _bom_encoding(csv_path: Path) -> str | None:
    try:
        with open(csv_path, "rb") as f:
            return bom_encoding(f.read(3))
    except OSError:
        return None


def _manifest_columns(csv_path: Path) -> tuple[str, str] | None:
    """(path column, label column) when the CSV's header makes it a manifest, else None."""
    try:
        header = pd.read_csv(csv_path, nrows=0, sep=_separator(csv_path),
                             encoding=_bom_encoding(csv_path) or "latin-1").columns
    except Exception:  # empty or not CSV at all: simply not a manifest
        return None
    cols = {str(c).strip().lower(): c for c in header}
    path_col = next((cols[c] for c in CSV_PATH_COLS if c in cols), None)
    label_col = next((cols[c] for c in CSV_LABEL_COLS if c in cols), None)
    return (path_col, label_col) if path_col is not None and label_col is not None else None


def _pixel_csv(csv_path: Path) -> bool:
    """Whether the CSV is FER2013's (emotion, pixels[, Usage]): images as rows of numbers, not files."""
    try:
        with open(csv_path, encoding="utf-8-sig", errors="replace") as f:
            header = f.readline(1000)
    except OSError:
        return False
    return {"emotion", "pixels"} <= {c.strip().lower() for c in header.split(",")}


def _affectnet_original(root: Path) -> str:
    """How to convert AffectNet's original release (training.csv / validation.csv with face boxes) when ``root`` is it
    or one of its CSVs, else ""."""
    lists = "Manually_Annotated_file_lists"
    csvs = [root] if root.is_file() else [*root.glob("*.csv"), *root.glob(f"{lists}/*.csv")]
    folder = root.parent if root.is_file() else root
    folder = folder.parent if folder.name == lists else folder
    for f in csvs:
        try:
            with open(f, encoding="utf-8-sig", errors="replace") as fh:
                first = fh.readline(200).strip().lower()
        except OSError:
            continue
        if first.startswith("subdirectory_filepath,face_x"):
            return (f"; {f.name} lists AffectNet's original release, whole pictures with face boxes: crop the faces "
                    f"first (python scripts/affectnet_csv_images.py {shlex.quote(str(folder))} --out DATA_FOLDER)")
    return ""


def _class_dirs(folder: Path) -> list[Path]:
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.isdigit() and class_index(d.name) is not None]


def _split_dirs(root: Path) -> list[Path]:
    return [d for d in sorted(root.iterdir()) if d.is_dir() and _split_name(d.name) and _class_dirs(d)]


def detect_layout(root) -> str:
    """'affectnet' | 'ferplus' | 'folders' | 'csv' for a data folder (or a manifest .csv file)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if root.is_file():
        if root.suffix.lower() == ".csv" and _manifest_columns(root):
            return "csv"
        raise DataError(f"not a data folder or CSV manifest with path and expression columns: {root}"
                        + _affectnet_original(root)
                        + (f"; it is FER2013's pixel CSV: write its images first (python scripts/fer2013_images.py "
                           f"{root} --out DATA_FOLDER)" if _pixel_csv(root) else ""))
    if affectnet_parts(root):
        return "affectnet"
    if any((root / d / "label.csv").is_file() for d in FERPLUS_SPLITS):
        return "ferplus"
    manifests = [p for p in sorted(root.glob("*.csv")) if _manifest_columns(p)]
    if len(manifests) > 1:
        raise DataError(f"several CSV manifests in {root} ({', '.join(p.name for p in manifests)}): pass one file")
    if manifests:
        return "csv"
    if _split_dirs(root) or _class_dirs(root):
        return "folders"
    if pixels := next((p for p in sorted(root.glob("*.csv")) if _pixel_csv(p)), None):
        raise DataError(f"no recognised data layout in {root}: {pixels.name} is FER2013's pixel CSV, whose images "
                        f"must be written first (python scripts/fer2013_images.py {pixels} --out DATA_FOLDER)")

    def shown(folder):
        return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]

    halves = [d for d in (root, *_release_folders(root)) if (d / "images").is_dir() != (d / "annotations").is_dir()]
    folders = []  # the folders that would be class folders: those in split folders (train/...), else these
    for p in shown(root):
        if p.name not in ("images", "annotations") and p not in halves:
            folders += [f"{p.name}/{q.name}" for q in shown(p)] if _split_name(p.name) else [p.name]
    numbered = {}  # folder holding numbered class folders -> their numbers
    for f in folders:
        parent, _, name = f.rpartition("/")
        if name.isdigit():
            numbered.setdefault(parent, []).append(int(name))
    if original := _affectnet_original(root):
        raise DataError(f"no recognised data layout in {root}{original}")
    raise DataError(f"no recognised data layout in {root}: looked for {LOOKED_FOR}"
                    + ("; its images have no labels here: `python -m fer_core.predict` classifies unlabelled images"
                       if any(p.suffix.lower() in IMAGE_EXTS for p in root.iterdir()) else "")
                    + "".join(f"; {'it' if d == root else d.name + '/'} has {have}/ but no {lack}/ beside it, which "
                              "AffectNet's layout needs" for d in halves
                              for have, lack in [("images", "annotations") if (d / "images").is_dir()
                                                 else ("annotations", "images")])
                    + (f"; its folders ({', '.join(folders[:8])}{', ...' if len(folders) > 8 else ''}) are no class "
                       f"names known here ({', '.join(CLASSES)}, or a synonym such as happiness or angry): rename "
                       "them, or list the images in a CSV manifest with their classes" if folders else "")
                    + (_numbered_hint(root, numbered) if numbered else ""))


def _numbered_hint(root: Path, numbered: dict[str, list[int]]) -> str:
    """What numbered class folders may mean, and the commands that name them as the likeliest data set numbers."""
    known = "; ".join(f"{name}: " + ", ".join(f"{k} {c}" for k, c in names.items())
                      for name, names in NUMBERINGS.items())
    numbers = sorted({k for ks in numbered.values() for k in ks})
    guess = likely_numbering(numbers)
    hint = (f". Numbered folders ({', '.join(map(str, numbers))}) mean different classes in different data sets "
            f"({known})")
    if guess:
        names = NUMBERINGS[guess]
        moves = " && ".join(f"(cd {shlex.quote(str(root / parent))} && "
                            + " && ".join(f"mv {k} {names[k]}" for k in sorted(ks)) + ")"
                            for parent, ks in numbered.items())
        hint += f". If these are {guess}'s, name them so: {moves}"
    return hint


def images_root(root) -> Path:
    """The folder a data set's image paths are relative to: a CSV manifest's own folder when ``root`` is the manifest
    file itself (as a run trained on ``--data manifest.csv`` records it), else ``root``."""
    root = Path(root).expanduser()
    return root.parent if root.is_file() else root


def read_dataset(root, layout: str = "auto") -> DataIndex:
    """Index a data set. Raises DataError for a wrong path, an unknown layout or a folder with no usable sample."""
    root = Path(root).expanduser().resolve()
    found = detect_layout(root) if layout == "auto" else layout
    if found not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}: the layouts read are auto, {', '.join(LAYOUTS)}")
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    index = READERS[found](root)
    if not index.samples:
        left = ("skipped " + ", ".join(f"{k}: {v}" for k, v in index.skipped.items()) if index.skipped else
                "no row below its header" if found == "csv" else "no image found")
        why = "".join(f"; {note}" for note in index.notes if not note.startswith("manifest "))
        raise DataError(f"no usable samples in {root} ({found} layout; {left}{why})")
    index.has_va = any(math.isfinite(s.valence) and math.isfinite(s.arousal) for s in index.samples)
    counts = np.bincount([s.label for s in index.samples], minlength=len(CLASSES))
    index.notes.insert(0, f"{found} layout at {index.root}: {len(index.samples)} samples ("
                       + ", ".join(f"{c} {n}" for c, n in zip(CLASSES, counts)) + ")")
    if index.skipped:
        index.notes.append("skipped: " + ", ".join(f"{k} {v}" for k, v in index.skipped.items()))
    return index


_NPY_SCALAR = re.compile(rb"\{'descr': '<U(\d+)', 'fortran_order': False, 'shape': \(\), \}")


def _npy_scalar(path: Path, kind):
    """Read a 0-d .npy annotation. The release stores *strings* ("3", "-0.17"); int()/float() reads both."""
    with open(path, "rb") as f:
        raw = f.read()
    # Fast path for the release's exact format (version 1 header, 0-d little-endian unicode): np.load costs
    # ~0.25 ms a file in header parsing, which over ~10k annotation files is most of the read time.
    if raw[:8] == b"\x93NUMPY\x01\x00":
        end = 10 + int.from_bytes(raw[8:10], "little")
        m = _NPY_SCALAR.match(raw, 10, end)
        if m and len(raw) - end == 4 * int(m.group(1)):
            return kind(raw[end:].decode("utf-32-le").rstrip("\x00"))
    return kind(np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False).item())


def _affectnet_dir(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "annotations").is_dir()


def _part_split(name: str) -> str | None:
    """The split an AffectNet release folder's name says (train_set, val_set, validation_set, Train, test, ...)."""
    return _split_name(name.lower().removesuffix("_set"))


def _release_folders(root: Path) -> list[Path]:
    """``root``'s sub-folders named as splits are (train_set/, val_set/, validation_set/, Train/, test/, ...)."""
    return [d for d in sorted(root.iterdir()) if d.is_dir() and _part_split(d.name)]


def affectnet_parts(root) -> dict[str, str | None]:
    """The AffectNet folders (images/ + annotations/) of a data set, sub-folder -> split: {"": None} for ``root``
    itself, else its split folders as the full release has them (train_set/ and val_set/; also train/, val/,
    validation_set/, test/, ...). The release's test set is not public, so papers report on its validation set: without
    a test folder, the val folder is the test split (make_split then carves val out of train). Without a train folder,
    no part has a split: one is drawn from them all, as from one folder. {} for neither."""
    root = Path(root)
    if _affectnet_dir(root):
        return {"": None}
    if not root.is_dir():
        return {}
    parts = {d.name: _part_split(d.name) for d in _release_folders(root) if _affectnet_dir(d)}
    if "train" not in parts.values():
        return dict.fromkeys(parts)
    if "test" not in parts.values():
        parts = {d: "test" if split == "val" else split for d, split in parts.items()}
    return parts


def affectnet_annotation(root, sample_id, kind: str) -> Path:
    """An AffectNet sample's annotation file: ``kind`` exp, val, aro or lnd; ``sample_id`` as _read_affectnet gives
    it ("635", or "val_set/635" in the full release)."""
    part, _, i = str(sample_id).rpartition("/")
    return Path(root) / part / "annotations" / f"{i}_{kind}.npy"


def _affectnet_record(ann_dir: Path, i: int, annotations: set):
    """(label, valence, arousal) for image id i, or a skip reason (str)."""
    if f"{i}_exp.npy" not in annotations:
        return "no expression annotation"
    try:
        label = _npy_scalar(ann_dir / f"{i}_exp.npy", lambda v: int(float(v)))
        va = [_npy_scalar(ann_dir / f"{i}_{k}.npy", float) if f"{i}_{k}.npy" in annotations else math.nan
              for k in ("val", "aro")]
    except (ValueError, OverflowError, OSError) as e:  # OverflowError: an expression of inf
        return f"unreadable annotation ({type(e).__name__})"
    if label in AFFECTNET_SENTINELS:
        return f"class {label} ({AFFECTNET_SENTINELS[label]})"
    if not 0 <= label < len(CLASSES):
        return f"class {label} (out of range)"
    if any(not -1 <= x <= 1 for x in va if x != -2 and not math.isnan(x)):
        return "valence/arousal not a number in [-1, 1]"
    # -2 is "not annotated": the expression stands, that value is unknown (NaN)
    return label, *(math.nan if x == -2 else x for x in va), -2 in va


def _read_affectnet(root: Path) -> DataIndex:
    parts = affectnet_parts(root)
    if not parts:
        raise DataError(f"not an AffectNet folder (needs images/ and annotations/, or train_set/ and val_set/ that "
                        f"hold them): {root}")
    release = [] if "" in parts else _release_folders(root)
    for d in release:
        if not _affectnet_dir(d):
            lacks = " and ".join(f"{sub}/" for sub in ("images", "annotations") if not (d / sub).is_dir())
            raise DataError(f"{d} has no {lacks}: each part of AffectNet's release holds images/ and annotations/ "
                            f"(a download or unpacking that did not finish?)")
    samples, skipped, not_annotated = [], {}, 0
    for part, split in parts.items():
        before, skipped_before = len(samples), dict(skipped)
        ann_dir, img_dir = root / part / "annotations", root / part / "images"
        annotations = set(os.listdir(ann_dir))
        images = {}
        for name in os.listdir(img_dir):
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTS and stem.isdigit():
                images[int(stem)] = name
        ids = sorted(images)
        # A few threads hide file-system latency on a cold cache (the full release: 290k images, four files each)
        chunks = [ids[k:k + 2000] for k in range(0, len(ids), 2000)]
        with ThreadPoolExecutor(max_workers=4) as pool, \
                tqdm(total=len(ids), desc=f"read {part or 'AffectNet'} annotations", unit="img",
                     disable=len(ids) < 20_000) as bar:
            records = {}
            for chunk, part_records in zip(chunks, pool.map(
                    lambda c: [_affectnet_record(ann_dir, i, annotations) for i in c], chunks)):
                records.update(zip(chunk, part_records))
                bar.update(len(chunk))
        prefix = f"{part}/" if part else ""
        for i in ids:
            rec = records[i]
            if isinstance(rec, str):
                _count(skipped, rec)
            else:
                samples.append(Sample(f"{prefix}{i}", f"{prefix}images/{images[i]}", rec[0], rec[1], rec[2], split))
                not_annotated += rec[3]
        orphans = {int(n.split("_")[0]) for n in annotations if n.endswith("_exp.npy") and n.split("_")[0].isdigit()}
        if orphans - images.keys():
            _count(skipped, "missing image", len(orphans - images.keys()))
        if part and len(samples) == before:  # the others would be split as if it were not there: say so instead
            why = ", ".join(f"{k} {n - skipped_before.get(k, 0)}" for k, n in skipped.items()
                            if n > skipped_before.get(k, 0)) or "no images"
            raise DataError(f"{root / part}: no usable sample in it ({why}); AffectNet's release needs each part "
                            f"whole")
    notes = [f"valence/arousal -2 (not annotated) for {not_annotated} images: their expression is used, that value "
             "is not"] if not_annotated else []
    if release and None in parts.values():
        notes.append(f"AffectNet folders {', '.join(f'{d}/' for d in parts)} without a train folder beside them: "
                     "a stratified split is drawn from their images, as from one folder's")
    elif release:
        as_test = [d for d, split in parts.items() if split == "test" and _part_split(d) == "val"]
        notes.append("AffectNet folders " + ", ".join(f"{d}/ as {split}" for d, split in parts.items())
                     + (f"; AffectNet's own test set is not public, so its validation set ({as_test[0]}/) is the test "
                        "split here, as papers report it, and val is carved from train" if as_test else ""))
    elif ignored := [d.name for d in _release_folders(root) if _affectnet_dir(d)]:
        notes.append(f"read {root}'s own images/ and annotations/; not read: {', '.join(f'{d}/' for d in ignored)} "
                     f"beside them (give one of those, or move them, to read them)")
    return DataIndex(root, "affectnet", samples, False, skipped, notes)


def read_landmarks(index: DataIndex, samples: list[Sample] | None = None) -> int:
    """Fill ``landmarks`` of an AffectNet index's samples from ``annotations/<id>_lnd.npy`` (68 points, pixel
    coordinates of the image) as [68, 2] (x, y) scaled to [-1, 1] across the image's width and height, the
    coordinates ``torch.nn.functional.affine_grid`` uses. Read on demand (only training with landmarks needs them).
    ``samples``: those of the index to read them for (default: all). Returns how many got landmarks; a missing or
    malformed file, or points far outside the image, leave a sample without."""
    if index.layout != "affectnet":
        return 0

    def one(s: Sample) -> None:
        path = affectnet_annotation(index.root, s.id, "lnd")
        try:
            pts = np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
            with Image.open(index.root / s.path) as im:  # the header only: the size the points are measured in
                w, h = im.size
        except (OSError, ValueError):
            return
        if pts.size != 136 or not np.isfinite(pts).all():
            return
        pts = pts.reshape(68, 2) / np.array([w, h], np.float32) * 2 - 1
        if np.abs(pts).max() <= 1.5:  # points far outside the image belong to another frame (an uncropped original)
            s.landmarks = pts

    samples = index.samples if samples is None else samples
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(tqdm(pool.map(one, samples), total=len(samples), desc="read landmarks", unit="img",
                  disable=len(samples) < 20_000))
    return sum(s.landmarks is not None for s in samples)


def _read_ferplus(root: Path) -> DataIndex:
    samples, skipped, notes = [], {}, []
    to_affectnet = np.array([class_index(n) for n in FERPLUS_VOTES[:8]])
    for folder, split in FERPLUS_SPLITS.items():
        csv_path = root / folder / "label.csv"
        if not csv_path.is_file():
            notes.append(f"FER+ {folder}/label.csv not found: no {split} images from it")
            continue
        try:
            df = pd.read_csv(csv_path, header=None, dtype={0: str, 1: str}, skipinitialspace=True)
        except Exception as e:
            raise DataError(f"cannot read {csv_path}: {e}") from None
        if df.shape[1] not in (11, 12):  # FER+'s own label.csv holds a face box; some of its converters leave it out
            raise DataError(f"{csv_path}: expected 12 columns (name, box, 10 votes) or 11 (name, 10 votes), found "
                            f"{df.shape[1]}")
        votes = df.iloc[:, -10:].to_numpy(dtype=float)
        if not np.isfinite(votes).all():  # a short row: pandas fills the missing counts with NaN
            raise DataError(f"{csv_path} row {int(np.flatnonzero(~np.isfinite(votes).all(axis=1))[0]) + 1}: "
                            f"not ten vote counts")
        top = votes.max(axis=1)
        tied = (votes == top[:, None]).sum(axis=1) > 1
        winner = votes.argmax(axis=1)
        present = set(os.listdir(root / folder))
        names = df.iloc[:, 0].str.strip().to_numpy()
        exists = np.array([n in present for n in names])
        # Ties and unknown/not-a-face winners are protocol exclusions; missing files are data faults.
        bad_vote = tied | (top <= 0)
        unknown = ~bad_vote & (winner >= 8)
        keep = ~bad_vote & ~unknown & exists
        for reason, mask in (("ferplus tie", bad_vote), ("ferplus unknown/not-a-face majority", unknown),
                             ("missing image", ~bad_vote & ~unknown & ~exists)):
            if mask.any():
                _count(skipped, reason, int(mask.sum()))
        prefix = folder.removeprefix("FER2013")
        dist = np.zeros((len(df), len(CLASSES)))
        dist[:, to_affectnet] = votes[:, :8]
        dist /= np.maximum(dist.sum(axis=1, keepdims=True), 1)
        for name, w, d in zip(names[keep], winner[keep], dist[keep]):
            samples.append(Sample(f"{prefix}/{os.path.splitext(name)[0]}", f"{folder}/{name}",
                                  int(to_affectnet[w]), math.nan, math.nan, split, tuple(d.tolist())))
    notes.append("FER+ majority vote: top vote wins; ties and unknown/not-a-face winners dropped "
                 "(--soft-labels trains on these images' vote distributions over the 8 classes instead)")
    return DataIndex(root, "ferplus", samples, False, skipped, notes)


def ferplus_votes(root) -> pd.DataFrame:
    """Every FER+ image's annotator votes (counts; ten annotators per image): one column per expression class in
    AffectNet order (labels.CLASSES), then "unknown" and "not a face"; indexed by id as the FER+ reader names them
    ("Test/fer0032220"). Empty where the folder has no FER+ label.csv."""
    columns = [*CLASSES, "unknown", "not a face"]
    named = [CLASSES[class_index(n)] for n in FERPLUS_VOTES[:8]] + columns[8:]  # label.csv's order, our names
    parts = []
    for folder in FERPLUS_SPLITS:
        csv_path = Path(root) / folder / "label.csv"
        if not csv_path.is_file():
            continue
        df = pd.read_csv(csv_path, header=None, dtype={0: str, 1: str}, skipinitialspace=True)
        prefix = folder.removeprefix("FER2013")
        ids = [f"{prefix}/{os.path.splitext(n.strip())[0]}" for n in df.iloc[:, 0]]
        parts.append(pd.DataFrame(df.iloc[:, -10:].to_numpy(dtype=float), index=ids, columns=named)[columns])
    return pd.concat(parts) if parts else pd.DataFrame(columns=columns, dtype=float)


def ferplus_paper_ids(root) -> set[str]:
    """Ids of the FER+ images the FER+ paper's majority protocol keeps (Barsoum et al., 2016, and its code's
    _process_data): votes of one annotator dropped as outliers, then the top class must hold more than half of the
    remaining votes and be an expression (not unknown or not-a-face). A subset of what _read_ferplus keeps, with the
    same labels; accuracies on it are the ones the paper's figures compare with."""
    table = ferplus_votes(root)
    votes = table.to_numpy(copy=True)
    votes[votes <= 1] = 0
    keep = (votes.max(axis=1) > 0.5 * votes.sum(axis=1)) & (votes.argmax(axis=1) < len(CLASSES))
    return set(table.index[keep])


def content_digest(data: bytes) -> bytes:
    """What tells two files' bytes apart (BLAKE2b, 16 bytes): byte-identical copies have the same."""
    import hashlib

    return hashlib.blake2b(data, digest_size=16).digest()


def copies_of(samples, root, files) -> set[str]:
    """The ids of ``samples`` (images under ``root``) that are one of ``files``, whatever layout, ids and file names
    either data set uses: the same file (a manifest or a symlink pointing at it) or a byte-identical copy. Only files
    of a size some sample has are read, each once."""
    def digest(path) -> bytes:
        return content_digest(Path(path).read_bytes())

    same, by_size = set(), {}
    for f in files:
        try:
            st = os.stat(f)  # through a symlink: the file it points at
        except OSError:  # a training image since removed: nothing to compare with
            continue
        by_size.setdefault(st.st_size, []).append(f)
        same.add((st.st_dev, st.st_ino))
    digests: dict[int, set[bytes]] = {}  # per size, the training files' contents: read the first time it is needed
    found = set()
    for s in samples:
        path = Path(root) / s.path
        try:
            st = path.stat()
            size = st.st_size
            if (st.st_dev, st.st_ino) in same:
                found.add(s.id)
            elif size in by_size:
                if size not in digests:
                    digests[size] = {digest(f) for f in by_size[size]}
                if digest(path) in digests[size]:
                    found.add(s.id)
        except OSError:  # an image not there: the reader or the decoder says so
            continue
    return found


def _images_under(folder: Path, unreadable: list | None = None) -> tuple[list[Path], list[Path]]:
    """(image files, files not read) in the folder and its subfolders (files_under: hidden ones left out, folders
    that cannot be read named in ``unreadable``). Files without an extension are not read (a data set's notes and
    licence files are often so named), nor HEIC photos (no decoder here), but they are counted, since an image may
    have lost its extension."""
    files = files_under(folder, unreadable)
    return ([p for p in files if p.suffix.lower() in IMAGE_EXTS],
            [p for p in files if not p.suffix or p.suffix.lower() in NOT_SUPPORTED])


def _read_folders(root: Path) -> DataIndex:
    samples, skipped, notes = [], {}, []
    split_dirs = _split_dirs(root)
    groups = [(d, _split_name(d.name)) for d in split_dirs] if split_dirs else [(root, None)]
    seen: set[str] = set()  # each file once: two class folders may be links to one folder
    real_dirs: dict[Path, str] = {}  # a folder's real path, found once for all its files

    def real(p: Path) -> str:
        if p.is_symlink():
            return os.path.realpath(p)
        if p.parent not in real_dirs:
            real_dirs[p.parent] = os.path.realpath(p.parent)
        return os.path.join(real_dirs[p.parent], p.name)

    no_suffix: list[Path] = []
    unreadable: list[str] = []
    for folder, split in groups:
        for d in sorted(p for p in folder.iterdir() if p.is_dir()):
            label = None if d.name.isdigit() else class_index(d.name)
            images, bare = _images_under(d, unreadable)
            if label is None:
                why = "numbered folders are ambiguous across data sets, name it" if d.name.isdigit() else \
                    "unknown class" + (f": {close}?" if (close := close_class(d.name)) else "")
                notes.append(f"ignored folder {d.relative_to(root).as_posix()}/ ({why}; {len(images)} images)")
                if images:
                    _count(skipped, f"unknown class folder '{d.name}'", len(images))
                continue
            no_suffix += bare
            for p in images:
                if (key := real(p)) in seen:
                    _count(skipped, "the same file twice (through a link)")
                    continue
                seen.add(key)
                rel = p.relative_to(root).as_posix()
                samples.append(Sample(rel, rel, label, math.nan, math.nan, split))
    if unreadable:  # their images are missing from the data: said, as a permission problem
        notes.append(f"not read: {len(unreadable)} folder{'s' * (len(unreadable) > 1)} that cannot be opened, e.g. "
                     f"{unreadable[0]}; their images are left out")
    for kind, files, fix in (("without an extension", [p for p in no_suffix if not p.suffix],
                              "name images .jpg, .png, ... to use them"),
                             ("in HEIC or HEIF (no decoder here)", [p for p in no_suffix if p.suffix],
                              "convert them to JPEG or PNG to use them")):
        if n := len(files):
            notes.append(f"not read: {n} file{'s' * (n > 1)} {kind} in class folders (e.g. "
                         f"{files[0].relative_to(root).as_posix()}); {fix}")
    if split_dirs:
        others = [d.name for d in root.iterdir() if d.is_dir() and d not in split_dirs]
        if others:
            notes.append(f"split folders used; ignored other folders: {', '.join(sorted(others))}")
    return DataIndex(root, "folders", samples, False, skipped, notes)


def _read_csv(root: Path) -> DataIndex:
    if root.is_file():
        csv_path = root
    else:
        found = [p for p in sorted(root.glob("*.csv")) if _manifest_columns(p)]
        if len(found) != 1:
            raise DataError(f"expected exactly one CSV manifest in {root}, found {len(found)}")
        csv_path = found[0]
    cols = _manifest_columns(csv_path)
    if cols is None:
        raise DataError(f"{csv_path}: header needs a path column ({'/'.join(CSV_PATH_COLS)}) "
                        f"and an expression column ({'/'.join(CSV_LABEL_COLS)})")
    base = csv_path.parent
    notes = [f"manifest {csv_path.name}"]
    sep, where = _separator(csv_path), None
    try:
        try:
            df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, sep=sep,
                             encoding=_bom_encoding(csv_path) or "utf-8-sig")
        except UnicodeDecodeError:  # a spreadsheet saved on Windows: its paths' accents are Windows-1252
            try:
                df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, sep=sep, encoding="cp1252")
            except UnicodeDecodeError:
                raise DataError(f"{csv_path}: not UTF-8 text (nor Windows-1252): save it as CSV UTF-8") from None
            notes.append(f"read {csv_path.name} as Windows-1252 text, not UTF-8")
    except pd.errors.ParserError as e:  # "Expected 2 fields in line 3, saw 3": a value holding the separator
        where = re.search(r"line \d+, saw \d+", str(e))
        df = None
    if df is None or not isinstance(df.index, pd.RangeIndex):  # every row one value longer: pandas made an index
        raise DataError(f"{csv_path}: a row has more values than the header{f' ({where[0]})' if where else ''}: a "
                        f"path or name holding the separator {sep!r} must be in double quotes, and no row may end "
                        "with one")
    lower = {str(c).strip().lower(): c for c in df.columns}
    samples, skipped, seen, odd_splits = [], {}, {}, set()
    not_annotated, missing, twice = 0, None, None

    def number(row, name):
        """The value in [-1, 1], NaN where empty (or NA, null, ...), -2 (AffectNet's "not annotated") as is, else
        None."""
        v = str(row.get(lower[name], "") if name in lower else "").strip().replace(",", ".")  # "0,5": a decimal comma
        try:
            x = float(v) if v and v.lower() not in MISSING_WORDS else math.nan
        except ValueError:
            return None
        return x if math.isnan(x) or -1 <= x <= 1 or x == -2 else None

    numbered = str(cols[1]).strip().lower() == "expression"  # AffectNet's own CSVs: its numbers, its order
    read = {cols[0], cols[1], *(lower[n] for n in ("valence", "arousal", "split") if n in lower)}
    others, properties = [c for c in df.columns if c not in read and str(c).strip()], []
    for row in df.to_dict("records"):
        rel = str(row[cols[0]]).strip()
        raw = str(row[cols[1]]).strip()
        is_number = raw.replace(".", "", 1).isdigit()
        if is_number and not numbered:
            raise DataError(f"{csv_path}: column '{cols[1]}' holds class numbers ('{raw}'), whose meaning differs "
                            "between data sets (AffectNet: 0 = Neutral, 1 = Happy; FER2013: 0 = Angry; RAF-DB: "
                            "1 = Surprise). Write class names (Happy, Sad, ...), or call the column 'expression' if "
                            "they are AffectNet's numbers: " + ", ".join(f"{i} = {c}" for i, c in enumerate(CLASSES)))
        label = class_index(raw)
        if label is None and is_number and float(raw).is_integer():
            label = class_index(int(float(raw)))  # "3.0" from a spreadsheet export
        if label is None:
            _count(skipped, f"unknown label '{raw}'" + (f" ({close}?)" if (close := close_class(raw)) else ""))
            continue
        valence, arousal = number(row, "valence"), number(row, "arousal")
        if valence is None or arousal is None:
            _count(skipped, "valence/arousal not a number in [-1, 1]")
            continue
        if valence == -2 or arousal == -2:  # not annotated: the expression stands, the value is unknown
            not_annotated += 1
            valence, arousal = (math.nan if x == -2 else x for x in (valence, arousal))
        if rel and "\\" in rel and not (base / rel).is_file():  # a path written on Windows
            rel = rel.replace("\\", "/")
        if not rel or not (base / rel).is_file():
            _count(skipped, "missing image")
            missing = missing or rel
            continue
        real = os.path.realpath(base / rel)  # "./a.jpg", "a.jpg", its absolute path and a link to it: one image
        if real in seen:
            first = seen[real]
            _count(skipped, "duplicate path" if first.label == label else "duplicate path with another label")
            if first.label != label and twice is None:
                twice = f"{rel} ({CLASSES[label]}), after {first.path} ({CLASSES[first.label]})"
            continue
        raw_split = str(row.get(lower["split"], "")).strip() if "split" in lower else ""
        split = _split_name(raw_split)
        if raw_split and split is None:
            odd_splits.add(raw_split)
        path = Path(rel).as_posix() if not os.path.isabs(rel) else rel
        samples.append(Sample(path, path, label, valence, arousal, split))
        seen[real] = samples[-1]
        properties.append([row[c] for c in others])
    if odd_splits:
        raise DataError(f"{csv_path}: split column values {', '.join(repr(v) for v in sorted(odd_splits))} are not "
                        f"train, val or test")
    assigned = sum(s.split is not None for s in samples)
    if 0 < assigned < len(samples):  # a split that covers only some images cannot be kept: say so, do not guess
        raise DataError(f"{csv_path}: the split column names a split for {assigned} of {len(samples)} images; give "
                        f"one for every image, or leave the column out for a stratified split")
    named = {s.split for s in samples} - {None}
    if named and "train" not in named:  # training would otherwise take images the user set aside for testing
        raise DataError(f"{csv_path}: the split column names no train image (only {', '.join(sorted(named))}); mark "
                        f"the training images train, or leave the column out for a stratified split")
    if named == {"train"}:
        notes.append("the split column names every image train: val and test parts are carved from them")
    if not_annotated:
        notes.append(f"valence/arousal -2 (not annotated) for {not_annotated} images: their expression is used, "
                     "that value is not")
    if missing:
        notes.append(f"missing image, e.g. {missing} (looked under {base}: a manifest's relative paths start from "
                     "its own folder)")
    if twice:
        notes.append(f"an image listed twice with two labels, e.g. {twice}: its first row is used, the other left "
                     f"out")
    properties = pd.DataFrame(properties, index=pd.Index([s.id for s in samples], name="id"),
                              columns=[str(c).strip() for c in others]) if others else None
    return DataIndex(base, "csv", samples, False, skipped, notes, properties)


# layout -> reader: what read_dataset reads (and detect_layout tells apart)
READERS = {"affectnet": _read_affectnet, "ferplus": _read_ferplus, "folders": _read_folders, "csv": _read_csv}
LAYOUTS = tuple(READERS)


def has_predefined_split(index: DataIndex) -> bool:
    """True when every sample carries a split, train and at least one of val and test among them (make_split then
    keeps it, and carves the missing one out of train)."""
    splits = {s.split for s in index.samples}
    return bool(splits) and None not in splits and "train" in splits and bool(splits & {"val", "test"})


def _carve(ids: list[str], labels: list[int], frac: float, seed: int) -> tuple[list[str], list[str]]:
    """Split ids into (kept, carved) with about frac carved (exactly frac ids when it is an int), stratified by label
    when the counts allow it."""
    from sklearn.model_selection import train_test_split

    if frac <= 0 or len(ids) < 2:
        return list(ids), []
    counts = np.bincount(labels)
    # Classes with a single sample cannot be stratified: they stay in the kept part.
    lone = {i for i, y in zip(ids, labels) if counts[y] < 2}
    rest = [(i, y) for i, y in zip(ids, labels) if i not in lone]
    for stratify in (True, False):
        try:
            kept, carved = train_test_split([i for i, _ in rest], test_size=frac, random_state=seed,
                                            stratify=[y for _, y in rest] if stratify else None)
            return sorted(kept + sorted(lone)), sorted(carved)
        except ValueError:  # fewer carved samples than classes, or too few samples left: try without strata
            continue
    return list(ids), []


def class_count_notes(by_split: dict[str, list[Sample]], given=()) -> tuple[str, list[str]]:
    """(images per class in each split, for the run log; warnings about classes a split has none of). ``given``: the
    parts the data or another run's split.csv gave as they are (the others were drawn here, stratified)."""
    parts = [k for k in ("train", "val", "test") if by_split.get(k)]
    counts = {k: np.bincount([s.label for s in by_split[k]], minlength=len(CLASSES)) for k in parts}
    absent = [c for i, c in enumerate(CLASSES) if not any(counts[k][i] for k in parts)]
    table = f"images per class ({'/'.join(parts)}): " + ", ".join(
        f"{c} {'/'.join(str(counts[k][i]) for k in parts)}" for i, c in enumerate(CLASSES) if c not in absent)
    warn = [f"no {', '.join(absent)} images: the model cannot learn {'them' if len(absent) > 1 else 'it'}, so "
            f"evaluated on such images later it gets every one wrong; the figures answer among all 8 "
            "classes (`python -m fer_core.evaluate --run RUN --only-data-classes` scores among the data's own, as "
            f"{len(CLASSES) - len(absent)}-class papers do)"] if absent else []
    untrained = [c for i, c in enumerate(CLASSES) if c not in absent and not counts["train"][i]]
    if untrained:
        warn.append(f"the train split has no {', '.join(untrained)} images, though "
                    f"{'/'.join(k for k in parts[1:])} {'have' if len(parts) > 2 else 'has'} some: the model cannot "
                    f"learn {'them' if len(untrained) > 1 else 'it'}, and every such image is counted wrong")
    for k in parts[1:]:
        thin = [c for i, c in enumerate(CLASSES) if counts["train"][i] and not counts[k][i]]
        if thin:
            why = "as given" if k in given else "too few to stratify"
            warn.append(f"the {k} split has no {', '.join(thin)} images ({why}): "
                        f"{'their' if len(thin) > 1 else 'its'} recall is not measured on {k}")
    if 0 < (n := len(by_split.get("val") or [])) < 100:
        warn.append(f"the val split has {n} images: one image moves its accuracy by {100 / n:.1f} points, so the best "
                    f"epoch (checkpoints/best.pt, which evaluate and predict use) is picked among close epochs "
                    f"largely by chance" + ("" if "val" in given else "; a larger --val-frac gives it more to go on"))
    return table, warn


def stratified_subset(samples: list[Sample], n: int, seed: int = 0) -> list[Sample]:
    """A seeded choice of ``n`` of ``samples`` with the classes in their proportions (all of them if n >= len)."""
    if n >= len(samples):
        return list(samples)
    _, chosen = _carve([s.id for s in samples], [s.label for s in samples], n, seed)
    keep = set(chosen)
    return [s for s in samples if s.id in keep]


def _fold(ids: list[str], labels: list[int], k: int, n: int, seed: int) -> tuple[list[str], list[str]]:
    """(rest, test) with test the k-th (1-based) of n folds, stratified by label: a class with fewer than n images
    is spread over as many folds as it has images, the others keep their shares in every fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(ids) < n:
        raise DataError(f"{n} folds need at least {n} images (have {len(ids)})")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")  # what the docstring says
        try:
            folds = list(StratifiedKFold(n_splits=n, shuffle=True, random_state=seed).split(np.zeros(len(ids)), labels))
        except ValueError:  # every class has fewer than n images: no strata to keep
            folds = list(KFold(n_splits=n, shuffle=True, random_state=seed).split(np.zeros(len(ids))))
    rest_idx, test_idx = folds[k - 1]
    return sorted(ids[i] for i in rest_idx), sorted(ids[i] for i in test_idx)


def make_split(index: DataIndex, val_frac=0.1, test_frac=0.1, seed=0, fold: tuple[int, int] | None = None
               ) -> dict[str, str]:
    """id -> 'train'/'val'/'test'. Keeps a predefined split; otherwise stratified by class and seeded.

    ``fold=(k, n)`` (cross-validation): the test part is the k-th (1-based) of n stratified seeded folds instead of
    ``test_frac``, so the n folds' test parts cover every image once."""
    if fold is not None:
        k, n = fold
        if not (n >= 2 and 1 <= k <= n):
            raise DataError(f"fold must be k/n with n >= 2 and 1 <= k <= n (got {k}/{n})")
        test_frac = 1 / n
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise DataError(f"--val-frac and --test-frac must each be in [0, 1) and sum below 1 "
                        f"(got {val_frac}, {test_frac})")
    samples = sorted(index.samples, key=lambda s: s.id)  # order-independent: same ids -> same split
    out = {}
    if has_predefined_split(index):
        if fold is not None:
            raise DataError("cross-validation folds need data without a predefined split, and this data has one "
                            "(train/val/test folders, FER+'s parts, AffectNet's train_set/ and val_set/, a split "
                            "column); its own test part is the test. To cross-validate anyway, give one part as --data "
                            "(its train folder), or a manifest without the split column")
        out = {s.id: s.split for s in samples}
        for part, frac in (("test", test_frac), ("val", val_frac)):  # a part the data does not name: from train
            if part not in out.values():
                train = [s for s in samples if out[s.id] == "train"]
                _, carved = _carve([s.id for s in train], [s.label for s in train], frac, seed)
                out.update({i: part for i in carved})
        return out
    ids, labels = [s.id for s in samples], [s.label for s in samples]
    if fold is None:
        rest, test = _carve(ids, labels, test_frac, seed)
    else:
        rest, test = _fold(ids, labels, *fold, seed)
    by_id = dict(zip(ids, labels))
    # val_frac is a fraction of the whole set, so it is rescaled to what is left after the test part.
    train, val = _carve(rest, [by_id[i] for i in rest], val_frac / (1 - test_frac) if val_frac else 0, seed)
    out.update({i: "train" for i in train})
    out.update({i: "val" for i in val})
    out.update({i: "test" for i in test})
    return out
