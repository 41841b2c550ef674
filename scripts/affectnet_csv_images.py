"""Turn AffectNet's original release (Manually_Annotated_Images/ with training.csv and validation.csv) into the layout
of its later release, which FER Lab reads: its face boxes cropped.

    python scripts/affectnet_csv_images.py AffectNet/ --out data/affectnet
    python -m fer_core.train --data data/affectnet --preset hse-fast

AffectNet/ is the folder that holds the release: training.csv and validation.csv (in it, or in
Manually_Annotated_file_lists/), and the images their first column names (subDirectory_filePath), found under
Manually_Annotated_Images/, Manually_Annotated/Manually_Annotated_Images/ or the folder itself. Each row also gives the
face's box (face_x, face_y, face_width, face_height, in the image's pixels), 68 landmarks (x;y;x;y...), the expression
(AffectNet's numbers 0-10) and valence and arousal (-2: not annotated). A CSV without its header line is read in that
column order.

--out gets train_set/ (training.csv's rows) and val_set/ (validation.csv's), each with images/<row>.jpg, the face box
cropped and squashed to 224x224 as the later release's crops are, and annotations/<row>_exp.npy, _val.npy, _aro.npy
and _lnd.npy (the landmarks in the crop's pixels), as that release writes them; <row> is the
row's number in its CSV (0 = the first row after the header), and sources.csv maps it back to the original file.
Rows of classes 8-10 (None, Uncertain, No-Face), rows with a value missing (NULL) or a valence or arousal outside
[-1, 1] (other than -2), an empty box, or an image that is missing or does not decode are left out and counted, as
the later release leaves the first out. --out must not exist yet, or be empty: the data set is written beside it and
appears under that name only once complete.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import shlex
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fer_core.data import AFFECTNET_SENTINELS  # noqa: E402
from fer_core.images import ImageError, _threads, load_image  # noqa: E402
from fer_core.io import converted, whole_folder  # noqa: E402
from fer_core.labels import CLASSES  # noqa: E402

COLUMNS = ["subdirectory_filepath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks", "expression",
           "valence", "arousal"]
SIDE = 224
PARTS = {"training.csv": "train_set", "validation.csv": "val_set"}
IMAGE_FOLDERS = ["Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images", "."]


class ConvertError(Exception):
    pass


def read_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """The CSV's rows (the first ``limit`` lines only, where given), without its header line where it has one."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in itertools.islice(csv.reader(f), limit) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConvertError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if rows and [c.strip().lower() for c in rows[0][:len(COLUMNS)]] == COLUMNS:
        rows = rows[1:]
    elif rows and not (len(rows[0]) == len(COLUMNS) and rows[0][1].strip().isdigit()):
        raise ConvertError(f"{path}: not one of AffectNet's CSVs (its columns: {', '.join(COLUMNS)}); its first line "
                           f"is {','.join(rows[0])[:120]!r}")
    return rows


def find_release(folder: Path) -> tuple[dict[str, Path], Path]:
    """({part: its CSV}, the folder the CSVs' image paths start from)."""
    csvs = {}
    for name, part in PARTS.items():
        found = [p for p in (folder / name, folder / "Manually_Annotated_file_lists" / name) if p.is_file()]
        if found:
            csvs[part] = found[0]
    if not csvs:
        raise ConvertError(f"{folder}: no training.csv or validation.csv in it or in its "
                           f"Manually_Annotated_file_lists/")
    first = next((row[0] for p in csvs.values() for row in read_rows(p, limit=2)[:1]), None)
    if first is None:
        raise ConvertError(f"{folder}: no image in {' or '.join(p.name for p in csvs.values())} (no row below the "
                           f"header)")
    for images in IMAGE_FOLDERS:
        if (folder / images / first).is_file():
            return csvs, (folder / images).resolve()
    raise ConvertError(f"{folder}: the CSVs' first image, {first}, is in none of "
                       f"{', '.join(str(folder / f) for f in IMAGE_FOLDERS)}")


def _number(text: str) -> float:
    return float(text.strip())


def convert_row(row: list[str], images: Path, out: Path, i: int) -> str | None:
    """Write row ``i``'s crop and annotations under ``out`` (a part folder); None, or why it was left out."""
    landmarks = COLUMNS.index("facial_landmarks")  # optional: a row without them keeps its face
    if len(row) < len(COLUMNS) or any(v.strip().upper() == "NULL" for k, v in enumerate(row[:len(COLUMNS)])
                                      if k != landmarks):
        return "a value missing"
    try:
        x, y, w, h = (int(round(_number(v))) for v in row[1:5])
        label, valence, arousal = int(_number(row[6])), _number(row[7]), _number(row[8])
    except (ValueError, OverflowError):  # OverflowError: an infinite coordinate
        return "a value not a number"
    if label in AFFECTNET_SENTINELS:
        return f"class {label} ({AFFECTNET_SENTINELS[label]})"
    if not 0 <= label < len(CLASSES):
        return f"class {label} (out of range)"
    if not all(v == -2 or -1 <= v <= 1 for v in (valence, arousal)):  # -2: not annotated
        return "valence or arousal outside [-1, 1]"
    try:
        image = load_image(images / row[0])
    except ImageError as e:
        return "image missing" if "not found" in str(e) else "image does not decode"
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, image.width), min(y + h, image.height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return "empty face box"
    image.crop((x0, y0, x1, y1)).resize((SIDE, SIDE), Image.BILINEAR).save(out / "images" / f"{i}.jpg", quality=95)
    ann = out / "annotations"
    for kind, value in (("exp", str(label)), ("val", f"{valence:g}"), ("aro", f"{arousal:g}")):
        np.save(ann / f"{i}_{kind}.npy", np.array(value))
    try:
        points = np.array([_number(v) for v in row[5].split(";") if v.strip()], np.float64)
    except ValueError:
        points = np.zeros(0)
    if points.size == 136:
        scale = np.tile([SIDE / (x1 - x0), SIDE / (y1 - y0)], 68)
        points = (points - np.tile([x0, y0], 68)) * scale
        np.save(ann / f"{i}_lnd.npy", points)
    return None


def convert(folder: Path, out: Path) -> dict[str, Counter]:
    """Write the later release's layout under ``out``, which holds only finished work: it is written to a hidden
    folder beside it, renamed to ``out`` at the end. Returns, per part, how many rows were written ("written") and
    how many left out, by reason."""
    csvs, images = find_release(folder)
    counts: dict[str, Counter] = {}
    with whole_folder(out) as partial:
        for part, path in csvs.items():
            rows = read_rows(path)
            for sub in ("images", "annotations"):
                (partial / part / sub).mkdir(parents=True, exist_ok=True)
            with ThreadPoolExecutor(max_workers=_threads()) as pool:  # PIL decodes and encodes without the GIL
                reasons = list(tqdm(pool.map(lambda k: convert_row(rows[k], images, partial / part, k),
                                             range(len(rows))), total=len(rows), desc=part, unit="img"))
            counts[part] = Counter(r or "written" for r in reasons)
            with open(partial / part / "sources.csv", "w", newline="") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["id", "source"])
                w.writerows((k, rows[k][0]) for k, r in enumerate(reasons) if r is None)
        if not any(c["written"] for c in counts.values()):
            raise ConvertError(f"{folder}: no row could be written ("
                               + "; ".join(f"{p}: {', '.join(f'{k} {n}' for k, n in c.items())}"
                                           for p, c in counts.items()) + ")")
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="the release's folder (training.csv, validation.csv and the images)")
    p.add_argument("--out", type=Path, required=True, help="the data folder to write (new, or empty)")
    a = p.parse_args(argv)
    if not a.folder.is_dir():
        p.error(f"{a.folder}: no such folder")
    if a.out.exists() and (not a.out.is_dir() or any(a.out.iterdir())):
        p.error(f"--out {a.out} exists and is not an empty folder: give a new one")
    counts, failed = converted(a.out, lambda: convert(a.folder, a.out), ConvertError)
    if failed is not None:
        return failed
    for part, c in counts.items():
        left = ", ".join(f"{k} {n:,}" for k, n in sorted(c.items()) if k != "written")
        print(f"{part}: wrote {c['written']:,} images" + (f"; left out {left}" if left else ""))
    print(f"next: python -m fer_core.train --data {shlex.quote(str(a.out))} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
