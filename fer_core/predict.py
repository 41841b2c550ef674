"""Predict expression and valence/arousal for the faces in images and videos: the expression a face shows, as
AffectNet's annotators would label it, not what its person feels.

    python -m fer_core.predict photo.jpg clip.mp4 folder/ [--run RUN] [--csv out.csv] [--json out.json]
                               [--explain DIR] [--annotate DIR] [--every SECONDS] [--one-person]
                               [--summary people.csv]

Folders are searched recursively for image and video files. A video is sampled every ``--every`` seconds (default
0.2); its CSV rows carry the frame number, time and person (faces linked across frames by their boxes' overlap, or
with --one-person the largest face in each frame, with --whole-image the whole frame), a sampled frame without a
face gets a row with the note "no face found" and no answer, and a summary line is printed for each person in it
(--summary writes them as a CSV). A file that cannot be read is reported and skipped; the exit code is 2 when no
file at all could be processed (or the arguments/model are wrong), 0 otherwise.

--csv writes one row per face: path, [frame, time_s, person: videos only], face (1 = the largest, F1 on a picture),
x0, y0, x1, y1 (the box in the file's pixels, x1/y1 exclusive; the whole image where no face was found), det_score (the
detector's confidence that it is a face), label (AffectNet's class number), label_name, confidence (the
probability of label_name), valence, arousal (-1 to 1; empty for a model trained without them), prob_<class>
for the eight classes, note ("no face found — whole image" in a photo without a face) and error (why a file was
skipped).
--json holds the same per image, with each photo's size and the model's description.
"""
from __future__ import annotations

import argparse
import io
import itertools
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .faces import DETECTORS, FaceDetector
from .images import IMAGE_EXTS, NOT_SUPPORTED, ImageError, files_under, frame_count, upright_size
from .io import atomic_write_csv, atomic_write_json, streamed, unwritable_folder
from .labels import CLASSES
from .video import EVERY, VIDEO_EXTS, AnnotatedVideo, VideoError, describe, people, predict_video, summary, timeline


CROP_SIDE = 64  # photos this small are most likely face crops already
NO_FACE_IN_FRAME = "no face found"


def get_args_parser():
    p = argparse.ArgumentParser(prog="python -m fer_core.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image and video files and/or folders (searched recursively)")
    p.add_argument("--run", type=os.path.expanduser,
                   help="run folder, run name, or .pt/.onnx file (default: models/default/)")
    p.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                   help="auto: ONNX Runtime for .onnx files, PyTorch for checkpoints; onnx converts a checkpoint")
    p.add_argument("--detector", choices=["auto", *DETECTORS], default="auto", help="face detector (default auto)")
    p.add_argument("--min-score", type=float, default=0.5, metavar="S",
                   help="the detector's confidence, 0 to 1, that a box must reach to count as a face (default 0.5): "
                        "lower finds more of the hard faces (turned, dark, small), and more things that are not faces")
    p.add_argument("--whole-image", action="store_true",
                   help="skip face detection: classify each whole image, or each sampled video frame (face crops "
                        "already, such as a data set's aligned faces)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average each face's answer with its mirror image's (default: as the run was evaluated)")
    p.add_argument("--csv", type=os.path.expanduser,
                   metavar="OUT", help="write one row per face (or per failed file) to this CSV")
    p.add_argument("--summary", type=os.path.expanduser, metavar="OUT",
                   help="write one row per video and person to this CSV: frames sampled and in view, each class's "
                        "share of those frames, mean valence, arousal and confidence")
    p.add_argument("--json", type=os.path.expanduser,
                   metavar="OUT", help="write all results and the model description to this JSON file")
    p.add_argument("--explain", type=os.path.expanduser,
                   metavar="DIR",
                   help="also write each face's occlusion map for its predicted class into DIR, as a PNG of the crop "
                        "and the map side by side (about 50 more model answers per face; photos only)")
    p.add_argument("--annotate", type=os.path.expanduser, metavar="DIR",
                   help="also write each photo with its faces' boxes, expressions and valence/arousal drawn on it "
                        "into DIR, as a JPEG, and each video's sampled frames so, as an MP4 video that plays them in "
                        "real time (person numbers and times drawn too)")
    p.add_argument("--every", type=float, default=EVERY, metavar="SECONDS",
                   help=f"in videos, classify one frame every SECONDS (default {EVERY:g})")
    p.add_argument("--one-person", action="store_true",
                   help="each video shows one person (a participant facing the camera): the largest face in each "
                        "frame is theirs, however long it was out of view, and other faces are left out")
    return p


def _in_decoded_pixels(r: dict, image: np.ndarray, f: dict) -> dict:
    """The face with its box in the pixels of ``image``, the photo as read again: a record's boxes are in the file's
    pixels, and a large photo is decoded smaller."""
    if "decoded_at" not in r:
        return f
    w, h = r["size"]
    return {**f, "box": [round(v * s) for v, s in zip(f["box"], [image.shape[1] / w, image.shape[0] / h] * 2)]}


def _photos(records) -> list[tuple[int, dict]]:
    """(the file's place among those read, its record) for each photo read: what --annotate's and --explain's file
    names are numbered by (0003_name.jpg: the fourth file), as predict_files numbers an annotated video."""
    place = {p: k for k, p in enumerate(dict.fromkeys(r["path"] for r in records))}
    return [(place[r["path"]], r) for r in records if "faces" in r and "frame" not in r]


def write_annotated(records, out_dir) -> list[str]:
    """Each photo with its answers drawn on it (faces.annotate), as a JPEG (named as _photos says); returns the
    files."""
    from PIL import Image

    from .faces import annotate
    from .inference import read_image
    from .io import atomic_write_bytes

    written = []
    for k, r in _photos(records):
        image = read_image(r["path"])
        drawn = annotate(image, [_in_decoded_pixels(r, image, f) for f in r["faces"]])
        buf = io.BytesIO()
        Image.fromarray(drawn).save(buf, "JPEG", quality=92)
        name = Path(out_dir) / f"{k:04d}_{Path(r['path']).stem}.jpg"
        atomic_write_bytes(name, buf.getvalue())
        written.append(str(name))
    return written


def write_maps(predictor, records, out_dir) -> list[str]:
    """Occlusion maps (fer_core.explain) of every face's predicted class, one PNG per face; returns the files.
    Each record gets "maps", the PNG of each of its faces."""
    from tqdm import tqdm

    from .explain import occlusion_map, save_map
    from .inference import read_image

    out, written = Path(out_dir), []
    todo = [(k, r) for k, r in _photos(records) if r["faces"]]
    for k, r in tqdm(todo, desc="occlusion maps", unit="image", disable=len(todo) < 2):
        image = read_image(r["path"])
        r["maps"] = []
        for i, f in enumerate(r["faces"]):
            f = _in_decoded_pixels(r, image, f)
            crop = predictor.face_crop(image, f)
            heat, _ = occlusion_map(lambda x: predictor.predict_batch(x)[0], crop, f["label"])
            name = out / f"{k:04d}_{Path(r['path']).stem}_face{i + 1}_{f['label_name']}.png"
            save_map(name, crop, heat)
            r["maps"].append(str(name))
            written.append(str(name))
    return written


def collect_images(args_images, bare: list | None = None) -> list[Path]:
    """Files as given, plus every image and video file under each folder, in a stable order; missing paths kept
    so that they are reported like unreadable files, and so are HEIC photos (no decoder: they are named, not left
    out without a word). Files without an extension found in the folders are added to ``bare`` where given."""
    out = []
    for a in args_images:
        p = Path(a)
        if p.is_dir():
            unreadable: list[str] = []
            found = files_under(p, unreadable)
            for why in unreadable:  # its images, if any, are not answered: said, not left out without a word
                print(f"note: not read: the folder {why}", file=sys.stderr)
            out += [f for f in found if f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS | NOT_SUPPORTED.keys()]
            if bare is not None:
                bare += [f for f in found if not f.suffix]
        else:
            out.append(p)
    once: dict[str, Path] = {}  # a file named twice (or a folder and a file in it) is processed once
    for p in out:
        once.setdefault(os.path.realpath(p), p)
    return list(once.values())


def predict_files(predictor, files, whole_image: bool = False, every: float = EVERY,
                  one_person: bool = False, annotate_videos=None, annotated: list | None = None) -> list[dict]:
    """``files``: a path, or a list of them; a folder stands for its images and videos (collect_images). One record
    per image: {"path", "size" (its width and height, upright), "faces": [...], and "frames" where the file holds
    several, of which the first was read}, one per sampled video frame: {"path", "frame", "time_s", "faces"}, or
    {"path", "error"} for a file that cannot be read. Never raises for a bad file. to_rows makes them a table.
    ``annotate_videos``: a folder where each video's sampled frames are written with their answers drawn
    (video.AnnotatedVideo), named by the file's place in the list, as write_annotated names photos; ``annotated``
    gets the files written."""
    from tqdm import tqdm

    files = collect_images([files] if isinstance(files, (str, os.PathLike)) else files)
    records = []
    try:
        for n, f in enumerate(tqdm(files, desc="files", unit="file", disable=len(files) < 2)):
            records += _predict_file(predictor, f, n, whole_image, every, one_person, annotate_videos, annotated)
    except KeyboardInterrupt as e:  # the files done so far go with it: the command keeps them (main)
        e.records = records
        raise
    return records


def _predict_file(predictor, f, n, whole_image, every, one_person, annotate_videos, annotated) -> list[dict]:
    """predict_files' records of one file."""
    from tqdm import tqdm

    from .inference import read_image

    records = []
    try:
        if Path(f).suffix.lower() in VIDEO_EXTS:
            with tqdm(desc=Path(f).name, unit="frame", leave=None) as bar:
                def progress(done, total):
                    bar.total = total or None
                    bar.update(done - bar.n)
                drawn = (AnnotatedVideo(Path(annotate_videos) / f"{n:04d}_{Path(f).stem}.mp4", every)
                         if annotate_videos else None)
                try:
                    records += predict_video(predictor, f, every=every, progress=progress, one_person=one_person,
                                             whole_image=whole_image, on_frame=drawn.add if drawn else None,
                                             warn=lambda m: tqdm.write(f"warning: {m}", file=sys.stderr))
                except BaseException:
                    if drawn:
                        drawn.discard()
                    raise
                if drawn and drawn.close() and annotated is not None:
                    annotated.append(str(drawn.path))
                elif drawn and drawn.error:
                    tqdm.write(f"warning: {f}: its annotated video was not written ({drawn.error})",
                               file=sys.stderr)
        else:
            image = read_image(f)
            record = {"path": str(f), "size": list(upright_size(f)), "faces":
                      predictor.predict_faces(image, whole_image=whole_image)}
            if (frames := frame_count(f)) > 1:
                record["frames"] = frames  # only the first was read
            records.append(in_file_pixels(record, image.shape[1::-1]))
    except (ImageError, VideoError) as e:  # the readers' messages name the file; predict_faces's does not
        records.append({"path": str(f), "error": str(e) if str(e).startswith(str(f)) else f"{f}: {e}"})
    return records


TRAINED_ON = "an image the model trained on"


def trained_note(face: dict) -> dict:
    """The face's answer, its note saying that its image is one the model trained on."""
    return {**face, "note": "; ".join(filter(None, [face.get("note"), TRAINED_ON]))}


def training_files(predictor) -> list[str]:
    """The image files the model trained on, or a run its training went through did (a FER+ stage, an ensemble's
    members), as far as those runs' folders (split.csv) are at hand."""
    from .evaluate import training_paths
    from .runs import earlier_stages, model_run

    cfg = predictor.config
    own = model_run(cfg, predictor.path)
    trained = {}  # stages on one data set (an ensemble's members, their FER+ stages) list its files once
    for run, c in ([(own, cfg)] if own is not None else []) + earlier_stages(cfg):
        if not (root := (c.get("data") or {}).get("root")):
            continue
        try:
            trained.update(dict.fromkeys(map(str, training_paths(run, root))))
        except (OSError, ValueError, KeyError):  # no split.csv, or a damaged one: a side check
            continue
    return list(trained)


def trained_images(predictor, files) -> set[str]:
    """Those of ``files`` that the model trained on (training_files): the same files or byte-identical copies. Its
    answers on them are no held-out predictions."""
    from types import SimpleNamespace

    from . import data as fdata

    trained = training_files(predictor)
    photos = [SimpleNamespace(id=str(f), path=os.path.abspath(f)) for f in files]
    return fdata.copies_of(photos, "/", trained) if trained and photos else set()


def by_size(files: list[str]) -> dict[int, list[str]]:
    """Files by their size in bytes (those that can be read): what a photo's bytes are compared with."""
    sizes: dict[int, list[str]] = {}
    for f in files:
        try:
            sizes.setdefault(os.stat(f).st_size, []).append(f)
        except OSError:  # a training image since removed
            continue
    return sizes


def is_copy(data: bytes, sized: dict[int, list[str]]) -> bool:
    """Whether ``data`` (an upload's bytes, never written to disk) is byte-identical to one of the files (by_size):
    only files of its size are read."""
    from .data import content_digest

    digest = content_digest(data)
    for f in sized.get(len(data), ()):
        try:
            if content_digest(Path(f).read_bytes()) == digest:
                return True
        except OSError:
            continue
    return False


def in_file_pixels(record: dict, decoded: tuple[int, int]) -> dict:
    """The record with its faces' boxes in the file's own pixels (its "size") where the image was decoded smaller (a
    JPEG over the pixel limit), noting the decoded size as "decoded_at"."""
    size = record["size"]
    if tuple(decoded) == tuple(size):
        return record
    scale = [size[0] / decoded[0], size[1] / decoded[1]] * 2
    for face in record["faces"]:
        face["box"] = [round(v * s) for v, s in zip(face["box"], scale)]
    return {**record, "decoded_at": list(decoded)}


def to_rows(records) -> pd.DataFrame:
    """predict_files' records as the table ``--csv`` writes: a row per face (per frame, for videos), its box, class,
    confidence, valence/arousal and a probability per class (prob_Neutral ... prob_Contempt); for a sampled video
    frame without a face, one row with only its time and the note NO_FACE_IN_FRAME; a row with ``error`` for a file
    that could not be read."""
    rows = []
    for r in records:
        if "error" in r:
            rows.append({"path": r["path"], "error": r["error"]})
            continue
        if not r["faces"] and "frame" in r:  # a sampled frame without a face: said, so that it differs from none
            rows.append({"path": r["path"], "frame": r["frame"], "time_s": r["time_s"], "note": NO_FACE_IN_FRAME,
                         "error": ""})
        for i, f in enumerate(r["faces"]):
            x0, y0, x1, y1 = f["box"]
            rows.append({"path": r["path"], "frame": r.get("frame"), "time_s": r.get("time_s"), "face": i + 1,
                         "person": f.get("person"),
                         "x0": x0, "y0": y0, "x1": x1, "y1": y1, "det_score": f["score"], "label": f["label"],
                         "label_name": f["label_name"], "confidence": f["confidence"], "valence": f["valence"],
                         "arousal": f["arousal"],
                         **{f"prob_{c}": p for c, p in zip(CLASSES, f["probs"])}, "error": "",
                         "note": "; ".join(filter(None, [f["note"], r.get("frames") and
                                                         f"the first of its {r['frames']} frames"]))})
    cols = ["path", "frame", "time_s", "face", "person", "x0", "y0", "x1", "y1", "det_score", "label", "label_name",
            "confidence", "valence", "arousal", *[f"prob_{c}" for c in CLASSES], "note", "error"]
    if not any("frame" in r for r in records):  # photos only: no video columns
        cols = [c for c in cols if c not in ("frame", "time_s", "person")]
    df = pd.DataFrame(rows, columns=cols)
    # nullable integers: a failed file's empty cells must not turn every box coordinate into a float
    return df.astype({c: "Int64" for c in ["frame", "face", "person", "x0", "y0", "x1", "y1", "label"]
                      if c in cols})


def _table(df: pd.DataFrame) -> str:
    """The photos' faces, one line each (videos get a summary line of their own)."""
    ok = df[df["error"].fillna("") == ""]
    if "frame" in ok:
        ok = ok[ok["frame"].isna()]
    if ok.empty:
        return "(no predictions)"
    t = pd.DataFrame({"file": ok["path"], "face": ok["face"].astype(int),
                      "box": [f"{a},{b},{c},{d}" for a, b, c, d in ok[["x0", "y0", "x1", "y1"]].astype(int).values],
                      "expression": ok["label_name"], "conf": ok["confidence"].map("{:.2f}".format),
                      **{d: ok[d].map(lambda v: "–" if pd.isna(v) else f"{v:+.2f}") for d in ("valence", "arousal")},
                      "note": ok["note"]})
    return t.to_string(index=False)


def output_problem(args) -> str | None:
    """What is wrong with --csv, --json, --summary, --explain or --annotate, checked before any prediction, or
    None."""
    inputs = {os.path.realpath(a) for a in args.images}
    given = [(f, getattr(args, f)) for f in ("csv", "json", "summary") if getattr(args, f)]
    for (f1, a1), (f2, a2) in itertools.combinations(given, 2):
        if os.path.realpath(a1) == os.path.realpath(a2):
            return f"--{f1} and --{f2} both name {a1}: the second would replace the first"
    for flag in ("csv", "json", "summary"):
        out = getattr(args, flag)
        if not out:
            continue
        if Path(out).is_dir():
            return f"--{flag} {out} is a folder: give the file to write, e.g. {Path(out) / f'predictions.{flag}'}"
        if os.path.realpath(out) in inputs or Path(out).suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
            what = "is one of the inputs" if os.path.realpath(out) in inputs else "names an image or video file"
            return f"--{flag} {out} {what}: writing there would replace it (the file to write comes right after " \
                   f"--{flag})"
        why = not streamed(out) and unwritable_folder(Path(out).parent)
        if why:
            return f"--{flag} {out}: its folder {Path(out).parent} {why}"
    for flag in ("explain", "annotate"):
        why = getattr(args, flag) and unwritable_folder(getattr(args, flag))
        if why:
            return f"--{flag} {getattr(args, flag)} {why}"
    return None


def main(args) -> int:
    from .inference import DETECT_SIDE, SHIPPED_DIR, ModelNotFound, Predictor, resolve_model

    if not 0 < args.every < math.inf:  # nan and inf are no interval
        print(f"error: --every must be a positive number of seconds, not {args.every}", file=sys.stderr)
        return 2
    if not 0 <= args.min_score < 1:
        print(f"error: --min-score must be from 0 to below 1, not {args.min_score}", file=sys.stderr)
        return 2
    problem = output_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        path = resolve_model(args.run, backend=args.backend)
        detector = None if args.whole_image else FaceDetector(args.detector, max_side=DETECT_SIDE,
                                                              min_score=args.min_score)
        predictor = Predictor(path, backend=args.backend, detector=detector, tta=args.tta)
    except (ModelNotFound, ValueError, RuntimeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bare: list[Path] = []
    files = collect_images(args.images, bare)
    if bare:
        print(f"note: not read: {len(bare)} file{'s' * (len(bare) > 1)} without an extension (e.g. {bare[0]}); "
              "give images theirs (.jpg, .png, ...), or name such a file on its own to read it", file=sys.stderr)
    if not files:
        print(f"error: no image or video files in {' '.join(args.images)}", file=sys.stderr)
        return 2
    print(predictor.describe())
    if SHIPPED_DIR in Path(predictor.path).resolve().parents:
        print("note: the default model was trained on AffectNet and FER+ images: non-commercial research use only",
              file=sys.stderr)
    videos_drawn: list[str] = []
    try:
        records = predict_files(predictor, files, whole_image=args.whole_image, every=args.every,
                                annotate_videos=args.annotate, annotated=videos_drawn,
                                one_person=args.one_person)
    except KeyboardInterrupt as e:  # hours of a batch job are not thrown away: its files done so far are kept
        done = getattr(e, "records", [])
        if args.csv and done and not streamed(args.csv):
            partial = Path(args.csv).with_name(Path(args.csv).stem + ".partial.csv")
            try:
                atomic_write_csv(partial, to_rows(done))
                n = len({r["path"] for r in done})
                e.kept = (f"the answers for the {n} file{'s' * (n != 1)} done before it are in {partial} (the same "
                          f"command writes {args.csv} whole)")
            except OSError:
                pass
        raise
    seen = trained_images(predictor, [r["path"] for r in records if "size" in r])
    for r in records:
        if r["path"] in seen:
            r["faces"] = [trained_note(face) for face in r.get("faces", [])]
    if seen:
        print(f"note: {len(seen)} of these images the model trained on (or a run its training started from, or an "
              f"ensemble's member; the same files or copies), e.g. {next(iter(seen))}: its answers on them are not "
              "held-out predictions, and flatter it; the note column says which", file=sys.stderr)
    for r in records:
        if "error" in r:
            print(f"skipped: {r['error']}", file=sys.stderr)
        elif "frames" in r:
            print(f"note: {r['path']} holds {r['frames']} frames (an animation or a multi-page file): only the first "
                  f"was read; as a video (MP4, AVI...) its frames would be sampled", file=sys.stderr)
    df = to_rows(records)
    if any("frame" not in r and "faces" in r for r in records):
        print(_table(df))
    summaries = []  # a row per video and person, for --summary
    for video in dict.fromkeys(r["path"] for r in records if "frame" in r):
        frames = [r for r in records if r.get("path") == video and "frame" in r]
        seen = people(frames)
        for person in list(seen) or [None]:  # one line per person, the most seen first
            s = summary(timeline(frames, predictor.classes, person), predictor.classes)
            print(describe(video, s, args.every, person, len(seen)))
            summaries.append({"path": video, "person": person, "frames_sampled": s["frames"],
                              "frames_in_view": s["with_face"], "seconds": s["seconds"],
                              "mean_confidence": s["confidence"], "mean_valence": s["valence"],
                              "mean_arousal": s["arousal"], **{f"share_{c}": v for c, v in s["shares"].items()}})
    n_ok = len({r["path"] for r in records if "faces" in r})
    print(f"{n_ok} of {len(files)} files processed, {sum(len(r.get('faces', [])) for r in records)} predictions")
    photos = [r for r in records if "size" in r]
    if photos and not args.whole_image and max(max(r["size"]) for r in photos) <= CROP_SIDE:
        print(f"note: these photos are {CROP_SIDE} px or smaller, like FER2013's 48 px face crops: if they are faces "
              "already, --whole-image classifies each whole picture, as evaluation does, instead of a face found in "
              "it", file=sys.stderr)
    try:  # the tables first: drawing reads every photo again, and what it meets then must not cost them
        if args.csv:
            atomic_write_csv(args.csv, df)
        if args.summary:
            if summaries:
                atomic_write_csv(args.summary, pd.DataFrame(summaries).astype({"person": "Int64"}))
            else:
                print(f"note: --summary {args.summary} not written: it sums up videos, and none was read",
                      file=sys.stderr)
        videos = list(dict.fromkeys(r["path"] for r in records if "frame" in r))
        if args.explain:
            if videos:
                print(f"note: occlusion maps are made for photos only: the frames of {', '.join(videos)} were not "
                      f"explained", file=sys.stderr)
            if len(videos) < n_ok:  # photos among the files processed
                maps = write_maps(predictor, records, args.explain)
                print(f"wrote {len(maps)} occlusion maps into {args.explain}")
        if args.annotate:
            drawn = write_annotated(records, args.annotate)
            n, m = len(drawn), len(videos_drawn)
            what = ([f"{n} annotated photo{'s' * (n != 1)}"] if n or not m else []) + \
                ([f"{m} annotated video{'s' * (m != 1)}"] if m else [])
            print(f"wrote {' and '.join(what)} into {args.annotate}")
        if args.json:  # last: it names the occlusion maps written
            atomic_write_json(args.json, {"model": predictor.info(), "images": records})
    except (OSError, ImageError) as e:
        print(f"error: cannot write output: {e}", file=sys.stderr)
        return 2
    return 0 if n_ok else 2


def cli():
    """The command: a terminal closed (SIGHUP) or a job ended (SIGTERM) stops it as Ctrl-C does, leaving no
    unfinished file."""
    from .io import interrupted_code, stop_on_signals

    stop_on_signals()
    try:
        sys.exit(main(get_args_parser().parse_args()))
    except KeyboardInterrupt as e:
        print("interrupted: the files written so far are whole (the CSV, JSON and summary are written once every "
              "file has been read)"
              + (f"; {e.kept}" if getattr(e, "kept", None) else ""), file=sys.stderr)
        sys.exit(interrupted_code(e))


if __name__ == "__main__":
    cli()
