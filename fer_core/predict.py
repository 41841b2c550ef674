"""Predict expression and valence/arousal for the faces in images.

    python -m fer_core.predict photo.jpg folder/ [--run RUN] [--csv out.csv] [--json out.json] [--explain DIR]

Folders are searched recursively for image files. A file that cannot be read is reported and skipped; the exit
code is 2 when no file at all could be processed (or the arguments/model are wrong), 0 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .data import ImageError
from .faces import DETECTORS
from .io import atomic_write_csv, atomic_write_json
from .labels import CLASSES

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def get_args_parser():
    p = argparse.ArgumentParser(prog="python -m fer_core.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--run", help="run folder, run name, or .pt/.onnx file (default: models/default/)")
    p.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                   help="auto: ONNX Runtime for .onnx files, PyTorch for checkpoints; onnx converts a checkpoint")
    p.add_argument("--detector", choices=["auto", *DETECTORS], default="auto", help="face detector (default auto)")
    p.add_argument("--whole-image", action="store_true", help="skip face detection: classify each whole image")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average each face's answer with its mirror image's (default: as the run was evaluated)")
    p.add_argument("--csv", metavar="OUT", help="write one row per face (or per failed file) to this CSV")
    p.add_argument("--json", metavar="OUT", help="write all results and the model description to this JSON file")
    p.add_argument("--explain", metavar="DIR",
                   help="also write each face's occlusion map for its predicted class into DIR, as a PNG of the crop "
                        "and the map side by side (about 50 more model answers per face)")
    return p


def write_maps(predictor, records, out_dir) -> list[str]:
    """Occlusion maps (fer_core.explain) of every face's predicted class, one PNG per face; returns the files.
    Each record gets "maps", the PNG of each of its faces."""
    from tqdm import tqdm

    from .explain import occlusion_map, save_map
    from .inference import read_image

    out, written = Path(out_dir), []
    todo = [(k, r) for k, r in enumerate(records) if r.get("faces")]
    for k, r in tqdm(todo, desc="occlusion maps", unit="image", disable=len(todo) < 2):
        image = read_image(r["path"])
        r["maps"] = []
        for i, f in enumerate(r["faces"]):
            crop = predictor.face_crop(image, f)
            heat, _ = occlusion_map(lambda x: predictor.predict_batch(x)[0], crop, f["label"])
            name = out / f"{k:04d}_{Path(r['path']).stem}_face{i}_{f['label_name']}.png"
            save_map(name, crop, heat)
            r["maps"].append(str(name))
            written.append(str(name))
    return written


def collect_images(args_images) -> list[Path]:
    """Files as given, plus every image file under each folder, in a stable order; missing paths kept
    so that they are reported like unreadable files."""
    out = []
    for a in args_images:
        p = Path(a)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
        else:
            out.append(p)
    return out


def predict_files(predictor, files, whole_image: bool = False) -> list[dict]:
    """One record per file: {"path", "faces": [...]} or {"path", "error"}. Never raises for a bad image."""
    from .inference import read_image

    records = []
    for f in files:
        try:
            records.append({"path": str(f), "faces": predictor.predict_faces(read_image(f), whole_image=whole_image)})
        except ImageError as e:
            records.append({"path": str(f), "error": str(e)})
    return records


def to_rows(records) -> pd.DataFrame:
    rows = []
    for r in records:
        if "error" in r:
            rows.append({"path": r["path"], "error": r["error"]})
            continue
        for i, f in enumerate(r["faces"]):
            x0, y0, x1, y1 = f["box"]
            rows.append({"path": r["path"], "face": i, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                         "det_score": f["score"], "label": f["label"], "label_name": f["label_name"],
                         "confidence": f["confidence"], "valence": f["valence"], "arousal": f["arousal"],
                         **{f"prob_{c}": p for c, p in zip(CLASSES, f["probs"])}, "note": f["note"] or "", "error": ""})
    cols = ["path", "face", "x0", "y0", "x1", "y1", "det_score", "label", "label_name", "confidence", "valence",
            "arousal", *[f"prob_{c}" for c in CLASSES], "note", "error"]
    df = pd.DataFrame(rows, columns=cols)
    # nullable integers: a failed file's empty cells must not turn every box coordinate into a float
    return df.astype({c: "Int64" for c in ["face", "x0", "y0", "x1", "y1", "label"]})


def _table(df: pd.DataFrame) -> str:
    ok = df[df["error"].fillna("") == ""]
    if ok.empty:
        return "(no predictions)"
    t = pd.DataFrame({"file": ok["path"], "face": ok["face"].astype(int),
                      "box": [f"{a},{b},{c},{d}" for a, b, c, d in ok[["x0", "y0", "x1", "y1"]].astype(int).values],
                      "expression": ok["label_name"], "conf": ok["confidence"].map("{:.2f}".format),
                      "valence": ok["valence"].map("{:+.2f}".format), "arousal": ok["arousal"].map("{:+.2f}".format),
                      "note": ok["note"]})
    return t.to_string(index=False)


def main(args) -> int:
    from .inference import ModelNotFound, Predictor, resolve_model

    try:
        path = resolve_model(args.run, backend=args.backend)
        predictor = Predictor(path, backend=args.backend, detector=None if args.whole_image else args.detector,
                              tta=args.tta)
    except (ModelNotFound, ValueError, RuntimeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = collect_images(args.images)
    if not files:
        print(f"error: no image files in {' '.join(args.images)}", file=sys.stderr)
        return 2
    print(predictor.describe())
    records = predict_files(predictor, files, whole_image=args.whole_image)
    for r in records:
        if "error" in r:
            print(f"skipped: {r['error']}", file=sys.stderr)
    df = to_rows(records)
    print(_table(df))
    n_ok = sum("faces" in r for r in records)
    print(f"{n_ok} of {len(records)} files processed, {sum(len(r.get('faces', [])) for r in records)} predictions")
    try:
        if args.explain:
            maps = write_maps(predictor, records, args.explain)
            print(f"wrote {len(maps)} occlusion maps into {args.explain}")
        if args.csv:
            atomic_write_csv(args.csv, df)
        if args.json:
            atomic_write_json(args.json, {"model": predictor.info(), "images": records})
    except (OSError, ImageError) as e:
        print(f"error: cannot write output: {e}", file=sys.stderr)
        return 2
    return 0 if n_ok else 2


def cli():
    sys.exit(main(get_args_parser().parse_args()))


if __name__ == "__main__":
    cli()
