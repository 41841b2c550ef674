"""Expression and valence/arousal over a video file: the faces in frames sampled at a fixed rate.

OpenCV (its FFmpeg build) decodes the file; every frame is grabbed, one every ``every`` seconds decoded and
classified as a photo is (faces detected afresh, each averaged with its mirror where the model was evaluated so).
The timeline follows the largest face of each sampled frame: faces are not tracked across frames, so a video with
several people mixes them where their sizes change places.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"}
DEFAULT_FPS = 25.0  # where a file does not say its frame rate
EVERY = 0.2  # seconds between classified frames, by default


class VideoError(Exception):
    """A video that cannot be opened or decoded; the message names the file and says why."""


def _open(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        reason = "no such file" if not Path(path).exists() else "not a video OpenCV's FFmpeg can decode"
        raise VideoError(f"{path}: cannot open as a video ({reason})")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if 0 < fps < 1000 else DEFAULT_FPS
    return cap, fps, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))


def predict_video(predictor, path, every: float = EVERY, tta: bool | None = None, progress=None,
                  on_frame=None) -> list[dict]:
    """One record per sampled frame: {"path", "frame", "time_s", "faces"} as Predictor.predict_faces gives them
    (largest face first; the whole frame, flagged, where no face was found). ``progress(done, total)`` is called
    after each sampled frame and at the end (total: the file's frame count, 0 where it does not say). Raises
    VideoError. ``on_frame(rgb, record)``, if given, sees each classified frame (to keep a thumbnail, say)."""
    import cv2

    if not every > 0:
        raise ValueError(f"the sampling interval must be positive, not {every}")
    cap, fps, total = _open(path)
    step = max(1, round(fps * every))
    records, i = [], 0
    try:
        while cap.grab():
            if i % step == 0:
                ok, bgr = cap.retrieve()
                if ok:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    records.append({"path": str(path), "frame": i, "time_s": round(i / fps, 3),
                                    "faces": predictor.predict_faces(rgb, tta=tta)})
                    if on_frame:
                        on_frame(rgb, records[-1])
                if progress:
                    progress(i + 1, total)
            i += 1
        if progress:
            progress(i, total)
    finally:
        cap.release()
    if not records:
        raise VideoError(f"{path}: no frame could be decoded")
    return records


def timeline(records: list[dict], classes: list[str]) -> pd.DataFrame:
    """One row per sampled frame of one video: time_s, frame, faces (how many were found), and the largest face's
    label_name, confidence, valence, arousal and one column per class probability; NaN where no face was found."""
    rows = []
    for r in records:
        f = r["faces"][0] if r["faces"] and not r["faces"][0]["whole_image"] else None
        row = {"time_s": r["time_s"], "frame": r["frame"], "faces": 0 if f is None else len(r["faces"]),
               "label_name": None if f is None else f["label_name"],
               "confidence": np.nan if f is None else f["confidence"],
               "valence": np.nan if f is None else f["valence"], "arousal": np.nan if f is None else f["arousal"]}
        row.update(zip(classes, map(float, f["probs"]) if f else [np.nan] * len(classes)))
        rows.append(row)
    return pd.DataFrame(rows)


def summary(tl: pd.DataFrame, classes: list[str]) -> dict:
    """What a video's timeline adds up to: frames sampled, frames with a face, each class's share of those
    frames (by the largest face's predicted class), mean valence and arousal."""
    found = tl[tl["faces"] > 0]
    shares = found["label_name"].value_counts(normalize=True).reindex(classes, fill_value=0.0)
    return {"frames": len(tl), "with_face": len(found), "seconds": float(tl["time_s"].max()) if len(tl) else 0.0,
            "shares": {c: float(v) for c, v in shares.items()},
            "valence": float(found["valence"].mean()) if len(found) else None,
            "arousal": float(found["arousal"].mean()) if len(found) else None}


def describe(name: str, s: dict, every: float) -> str:
    """One line for a video's summary."""
    if not s["with_face"]:
        return f"{name}: {s['frames']} frames sampled every {every:g} s over {s['seconds']:.1f} s; no face in any"
    top = max(s["shares"], key=s["shares"].get)
    return (f"{name}: {s['frames']} frames sampled every {every:g} s over {s['seconds']:.1f} s, a face in "
            f"{s['with_face']}; mostly {top} ({s['shares'][top]:.0%} of them), mean valence {s['valence']:+.2f}, "
            f"arousal {s['arousal']:+.2f}")
