"""Turn FER2013's pixel CSV (Kaggle's fer2013.csv: emotion, pixels, Usage) into image files FER Lab reads.

    python scripts/fer2013_images.py fer2013.csv --out data/fer2013                              # class folders
    python scripts/fer2013_images.py fer2013.csv --ferplus fer2013new.csv --out data/ferplus     # FER+'s layout

Without --ferplus: train/, val/ and test/ (FER2013's Training, PublicTest and PrivateTest rows), each with one
folder per class, labelled as FER2013 labels them (7 classes: it has no Contempt). A CSV without a Usage column (the
Kaggle competition's train.csv) gives class folders alone, and training carves its own split.

With --ferplus (FER+'s fer2013new.csv: ten annotators' votes for the same rows, in the same order): FER+'s layout,
FER2013Train/, FER2013Valid/ and FER2013Test/ with a label.csv of votes, as FER+'s own tooling writes it. The rows
FER+ gave no image name (not faces) are left out.

Images are 48x48 grayscale PNGs named fer<row>.png, the names FER+ uses. --out must not exist yet, or be empty: the
data set is written beside it and appears under that name only once complete.
"""
from __future__ import annotations

import argparse
import csv
import shlex
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fer_core.data import FERPLUS_SPLITS  # noqa: E402
from fer_core.io import converted, whole_folder  # noqa: E402
from fer_core.labels import NUMBERINGS  # noqa: E402

SIDE = 48
# FER2013's emotion codes, by the class names FER Lab reads from folder names
FER2013_CLASSES = list(NUMBERINGS["FER2013"].values())
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FERPLUS_FOLDER = {usage: folder for folder, split in FERPLUS_SPLITS.items() for usage, s in USAGE.items() if s == split}
FERPLUS_BOX = f"(0, 0, {SIDE}, {SIDE})"  # FER+'s label.csv gives each image's face box: the whole image


class ConvertError(Exception):
    pass


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    """A CSV's column names, stripped and lower-cased (Kaggle's icml_face_data.csv writes " Usage", " pixels"), and
    its rows."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f, skipinitialspace=True) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConvertError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    return [c.strip().lower() for c in rows[0]] if rows else [], rows[1:]


def _image(pixels: str, where: str) -> np.ndarray:
    values = pixels.split()
    if len(values) != SIDE * SIDE:
        raise ConvertError(f"{where}: pixels holds {len(values)} values, expected {SIDE * SIDE} ({SIDE}x{SIDE})")
    try:
        arr = np.array(values, dtype=np.int64)
    except ValueError:
        raise ConvertError(f"{where}: pixels holds something other than whole numbers") from None
    if arr.min() < 0 or arr.max() > 255:
        raise ConvertError(f"{where}: pixel values run from {arr.min()} to {arr.max()}, expected 0 to 255")
    return arr.astype(np.uint8).reshape(SIDE, SIDE)


def convert(fer_csv: Path, out: Path, ferplus_csv: Path | None = None) -> dict[str, int]:
    """Write the images (and FER+'s label.csv files) under ``out``, which holds only finished work: they are
    written to a hidden folder beside it, renamed to ``out`` at the end. Returns the images written per folder."""
    header, rows = _read(fer_csv)
    if not {"emotion", "pixels"} <= set(header):
        raise ConvertError(f"{fer_csv}: not FER2013's pixel CSV (needs the columns emotion and pixels; found "
                           f"{', '.join(header) or 'none'})")
    col = {c: header.index(c) for c in ("emotion", "pixels", "usage") if c in header}
    if ferplus_csv is not None:
        plus_header, plus_rows = _read(ferplus_csv)
        if plus_header[:2] != ["usage", "image name"] or len(plus_header) < 12:
            raise ConvertError(f"{ferplus_csv}: not FER+'s fer2013new.csv (needs the columns Usage, Image name, then "
                               f"the ten vote counts)")
        if len(plus_rows) != len(rows):
            raise ConvertError(f"{ferplus_csv} has {len(plus_rows):,} rows and {fer_csv} {len(rows):,}: FER+'s file "
                               f"holds one row for each of FER2013's, in the same order")
    counts: dict[str, int] = {}
    labels: dict[str, list[list[str]]] = {}
    with whole_folder(out) as partial:
        for i, row in enumerate(tqdm(rows, desc="images", unit=" img", leave=False)):
            where = f"{fer_csv} row {i + 2}"  # as a spreadsheet numbers it, the header being row 1
            if len(row) < len(header):
                raise ConvertError(f"{where}: {len(row)} columns, where the header names {len(header)}")
            if ferplus_csv is not None:
                usage, name, *votes = (v.strip() for v in plus_rows[i][:12]) if len(plus_rows[i]) >= 12 else [""] * 12
                if len(plus_rows[i]) < 12 or not all(v.isdigit() for v in votes):
                    raise ConvertError(f"{ferplus_csv} row {i + 2}: expected Usage, Image name and ten vote counts "
                                       f"(whole numbers), found {plus_rows[i]}"[:300])
                if not name:  # FER+ dropped it: not a face
                    continue
                if usage not in USAGE:
                    raise ConvertError(f"{ferplus_csv} row {i + 2}: Usage {usage!r} is none of {', '.join(USAGE)}")
                folder = FERPLUS_FOLDER[usage]
                labels.setdefault(folder, []).append([name, FERPLUS_BOX, *votes])
            else:
                code = row[col["emotion"]].strip()
                if not code.isdigit() or int(code) >= len(FER2013_CLASSES):
                    raise ConvertError(f"{where}: emotion {code!r} is not one of FER2013's codes 0-6")
                usage = row[col["usage"]].strip() if "usage" in col else None
                if usage is not None and usage not in USAGE:
                    raise ConvertError(f"{where}: Usage {usage!r} is none of {', '.join(USAGE)}")
                name = f"fer{i:07d}.png"
                folder = "/".join(filter(None, [USAGE.get(usage), FER2013_CLASSES[int(code)]]))
            (partial / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_image(row[col["pixels"]], where), "L").save(partial / folder / name)
            counts[folder] = counts.get(folder, 0) + 1
        if not counts:
            raise ConvertError(f"{fer_csv}: no images in it")
        for folder, entries in labels.items():
            with open(partial / folder / "label.csv", "w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows(entries)  # as FER+ writes it
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fer_csv", type=Path, help="FER2013's CSV (fer2013.csv, or Kaggle's train.csv)")
    p.add_argument("--ferplus", type=Path, metavar="FER2013NEW_CSV",
                   help="FER+'s fer2013new.csv: write FER+'s layout with its votes instead of FER2013's labels")
    p.add_argument("--out", type=Path, required=True, help="the data folder to write (new, or empty)")
    a = p.parse_args(argv)
    for f in (a.fer_csv, a.ferplus):
        if f is not None and not f.is_file():
            p.error(f"{f}: no such file")
    if a.out.exists() and (not a.out.is_dir() or any(a.out.iterdir())):
        p.error(f"--out {a.out} exists and is not an empty folder: give a new one")
    counts, failed = converted(a.out, lambda: convert(a.fer_csv, a.out, a.ferplus), ConvertError)
    if failed is not None:
        return failed
    parts: dict[str, int] = {}
    for folder, n in counts.items():
        parts[folder.split("/")[0]] = parts.get(folder.split("/")[0], 0) + n
    print(f"wrote {sum(counts.values()):,} images to {a.out}: " + ", ".join(f"{p} {n:,}" for p, n in parts.items()))
    print(f"next: python -m fer_core.train --data {shlex.quote(str(a.out))} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
