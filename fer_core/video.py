"""Expression and valence/arousal over a video file: the faces in frames sampled at a fixed rate.

OpenCV (its FFmpeg build) decodes the file; every frame is grabbed, one every ``every`` seconds of the frames' own
timestamps decoded and classified as a photo is (faces detected afresh, each averaged with its mirror where the
model was evaluated so).
Faces are linked across the sampled frames into people by how much their boxes overlap (``People``), so a timeline
follows one person: by default the one seen in the most frames.
"""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .io import replace

VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"}
DEFAULT_FPS = 25.0  # where a file does not say its frame rate
EVERY = 0.2  # seconds between classified frames, by default


class VideoError(Exception):
    """A video that cannot be opened or decoded; the message names the file and says why."""


def _ascii_path(path) -> str:
    """The path as OpenCV can open it: on Windows it cannot open a path with letters outside ASCII (a user folder
    named "José", where uploads are kept), so there the file's short 8.3 name is asked for, where the disk has one."""
    if os.name != "nt" or str(path).isascii():
        return str(path)
    import ctypes

    buf = ctypes.create_unicode_buffer(32768)
    if ctypes.windll.kernel32.GetShortPathNameW(str(path), buf, len(buf)) and buf.value.isascii():
        return buf.value
    return str(path)


def _open(path):
    import cv2

    cap = cv2.VideoCapture(_ascii_path(path))
    if not cap.isOpened():
        reason = ("no such file" if not Path(path).exists() else "empty: 0 bytes" if Path(path).stat().st_size == 0
                  else "it has no frames" if _no_frames(path)
                  else _cut_mp4(path)
                  or ("OpenCV cannot open a path with letters outside ASCII on Windows: copy the video to a folder "
                      "whose path has none" if os.name == "nt" and not _ascii_path(path).isascii() else "")
                  or "not a video OpenCV's FFmpeg can decode")
        raise VideoError(f"{path}: cannot open as a video ({reason})")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if 0 < fps < 1000 else DEFAULT_FPS
    return cap, fps, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))


def _cut_mp4(path) -> str | None:
    """Why an MP4/MOV file (an "ftyp" box first) cannot be read, where its top-level boxes say: one runs past the
    end of the file, or the index ("moov", which phones and cameras write last) is missing; None otherwise."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            if f.read(8)[4:8] != b"ftyp":
                return None
            pos, seen = 0, set()
            while pos + 8 <= size:
                f.seek(pos)
                head = f.read(8)
                n, kind = int.from_bytes(head[:4], "big"), head[4:8]
                n = int.from_bytes(f.read(8), "big") if n == 1 else size - pos if n == 0 else n
                if n < 8:
                    return None
                if pos + n > size:
                    return "an MP4/MOV file cut short: an interrupted recording, download or copy?"
                seen.add(kind)
                pos += n
    except OSError:
        return None
    return None if b"moov" in seen else ("an MP4/MOV file without its index (the moov box, written last): cut short "
                                         "by an interrupted recording, download or copy?")


def _no_frames(path) -> bool:
    """Whether PyAV (streamlit-webrtc's decoder, where installed) reads the file as a container without a single
    video frame: OpenCV refuses to open an MP4 written with no frames as if it were no video at all."""
    try:
        import av

        with av.open(str(path)) as c:
            return all(s.frames == 0 for s in c.streams.video)
    except Exception:  # not installed, or not a container PyAV reads either
        return False


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _apart(a, b) -> float:
    """How far apart two boxes' centres are, in the larger box's width; infinite where one's area is over twice the
    other's (another face, nearer or further)."""
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    if min(area_a, area_b) <= 0 or max(area_a, area_b) > 2 * min(area_a, area_b):
        return math.inf
    dx, dy = (a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2
    return math.hypot(dx, dy) / max(a[2] - a[0], b[2] - b[0])


class People:
    """Numbers the faces of successive frames by person (1, 2, ... in order of first appearance): a face continues
    the person whose last box it overlaps most (IoU at least ``min_iou``), if that person was seen at most
    ``max_gap`` seconds before; each person takes at most one face per frame, the largest overlaps first. A face
    left over continues the nearest person left over whose last box, of about its size (half to twice its area), lies
    within one face's width of it, centre to centre (a face moving fast: two faces that close would overlap). Any
    other face starts a new person: one that jumps further than its width between two sampled frames, or stays out
    of view longer than ``max_gap``, comes back as a new person."""

    def __init__(self, min_iou: float = 0.3, max_gap: float = 1.0):
        self.min_iou, self.max_gap = min_iou, max_gap
        self._last: dict[int, tuple] = {}  # person -> (box, time seen)

    def assign(self, faces: list[dict], t: float) -> None:
        """Set ``face["person"]`` on each detected face (not on a whole-image result) seen at ``t`` seconds."""
        recent = {p: box for p, (box, seen) in self._last.items() if t - seen <= self.max_gap}
        detected = [(i, f) for i, f in enumerate(faces) if not f["whole_image"]]
        taken: set[int] = set()

        def take(pairs) -> None:  # the best pairs first: each face and each person once
            for _, i, p in pairs:
                if "person" not in faces[i] and p not in taken:
                    faces[i]["person"] = p
                    taken.add(p)

        take(sorted(((o, i, p) for i, f in detected for p, box in recent.items()
                     if (o := iou(f["box"], box)) >= self.min_iou), reverse=True))
        take(sorted((d, i, p) for i, f in detected if "person" not in f for p, box in recent.items()
                    if p not in taken and (d := _apart(f["box"], box)) <= 1))
        for f in faces:
            if not f["whole_image"]:
                if "person" not in f:
                    f["person"] = len(self._last) + 1
                self._last[f["person"]] = (f["box"], t)


class AnnotatedVideo:
    """The sampled frames of a video with their answers drawn on them (faces.annotate: box, person number, expression,
    valence/arousal, and the time), written as an H.264 MP4 video (PyAV), each frame at its time in the video, so that
    it plays in real time, in a browser or any player (the last lasts ``every`` seconds). ``add`` is predict_video's
    ``on_frame``. The file appears under its name once ``close`` has finished it; ``discard`` leaves nothing. Writing
    never stops the predictions: where it fails (a full disk, an encoder that refuses), ``error`` says why, the
    unfinished file goes, and the frames after are not drawn."""

    def __init__(self, path, every: float = EVERY, max_side: int = 1280):
        from fractions import Fraction

        # PyAV takes a rate of 32-bit integers; with each frame's time set, it says only how long the last one lasts
        self.rate = max(Fraction(1 / every).limit_denominator(1000), Fraction(1, 1000))
        self.path, self.max_side = Path(path), max_side
        self._partial = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}.mp4")
        self._out = self._stream = self._pts = None
        self.frames, self.error = 0, None

    def add(self, rgb: np.ndarray, record: dict) -> None:
        if self.error is None:
            try:
                self._add(rgb, record)
            except Exception as e:  # noqa: BLE001  PyAV's FFmpegError, OSError, ...: the video goes, not the run
                self._failed(e)

    def _add(self, rgb: np.ndarray, record: dict) -> None:
        from fractions import Fraction

        import av

        from .faces import annotate

        drawn = annotate(rgb, record["faces"], header=f"{record['time_s']:.1f} s", max_side=self.max_side)
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = av.open(str(self._partial), "w")
            self._stream = self._out.add_stream("libx264", rate=self.rate)
            self._stream.codec_context.time_base = Fraction(1, 1000)  # frames at their times, in milliseconds
            # even sides, as the encoder's 4:2:0 colour needs
            self._stream.width, self._stream.height = drawn.shape[1] // 2 * 2, drawn.shape[0] // 2 * 2
            # no B-frames: with them the file's duration, which players show, ends up short where frames are uneven
            self._stream.pix_fmt, self._stream.options = "yuv420p", {"crf": "20", "bf": "0"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(drawn[:self._stream.height, :self._stream.width]),
                                           format="rgb24")
        # a time going back (a spliced file) or repeated: the frame just after the one before
        pts = round(record["time_s"] * 1000)
        self._pts = pts if self._pts is None else max(pts, self._pts + 1)
        frame.pts, frame.time_base = self._pts, Fraction(1, 1000)
        self._out.mux(self._stream.encode(frame))
        self.frames += 1

    def _failed(self, e: Exception) -> None:
        self.error = f"{type(e).__name__}: {e}"
        self.discard()

    def close(self) -> bool:
        """Finish the file; False where there is none (no frame added, or writing failed: ``error``)."""
        if self._out is None or self.error is not None:
            return False
        try:
            self._out.mux(self._stream.encode())  # what the encoder still holds
            self._out.close()
            self._out = None
            replace(self._partial, self.path)
        except Exception as e:  # noqa: BLE001  as in add
            self._failed(e)
            return False
        return True

    def discard(self) -> None:
        """Leave no unfinished file (nothing to do after close)."""
        out, self._out = self._out, None
        try:
            if out is not None:
                out.close()
        except Exception:  # noqa: BLE001  a container that cannot even close: its file goes all the same
            pass
        finally:
            try:
                self._partial.unlink(missing_ok=True)
            except OSError:  # its folder could not be made: no file either
                pass


def predict_video(predictor, path, every: float = EVERY, progress=None, on_frame=None, warn=None,
                  one_person: bool = False, whole_image: bool = False) -> list[dict]:
    """One record per sampled frame: {"path", "frame", "time_s", "faces"} as Predictor.predict_faces gives them (largest
    face first; none where no face was found: the whole frame is no answer for anyone), each with its "person"
    number (``People``: a person may be out of view for two intervals, and at least a second). The first frame at
    or after each of the times 0, ``every``, 2 ``every``, ... of the stream's own clock is sampled, so variable
    and low frame rates are timed right (and the interval is the frames' own where they are further apart than
    ``every``). ``progress(done, total)`` is called after each sampled frame and at the end (total: the file's
    frame count, 0 where it does not say). Raises VideoError. ``on_frame(rgb, record)``, if given, sees each
    classified frame (to keep a thumbnail, say). ``one_person``: the video shows one person (a participant facing
    the camera), whose face is the largest in each frame; it is person 1 throughout, however long it was out of
    view, and other faces are left out. ``whole_image``: the frames are face crops already (a data set's aligned
    faces): each whole frame is classified, without detection, as person 1. ``warn(message)`` hears of a file
    that stops decoding before the frames it announces (default: a warning)."""
    import cv2

    if not 0 < every < math.inf:
        raise ValueError(f"the sampling interval must be positive and finite, not {every}")
    cap, fps, total = _open(path)
    # timestamps are rounded to the container's time base: a frame up to a quarter frame early is on time
    early = 0.25 / fps
    records, i, people, times, due = [], 0, People(), [], 0.0
    try:
        while cap.grab():
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)  # the grabbed frame's time; 0 or less where the stream gives none
            t = ms / 1000 if ms > 0 else i / fps
            if not times or t < times[-1]:  # a timestamp going back (a spliced file) restarts the count
                due = t
            if t >= due - early:
                ok, bgr = cap.retrieve()
                if ok:
                    while due <= t + early:  # the next time on the grid of every, every 2 every, ...
                        due += every
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    faces = predictor.predict_faces(rgb, whole_image=whole_image, small_faces=False, fallback=False)
                    if one_person or whole_image:
                        faces = [{**f, "person": 1} for f in faces[:1]]
                    # out of view for up to two of the real intervals between sampled frames (longer than
                    # ``every`` where the frames are further apart), and at least a second
                    people.max_gap = max(1.0, t - times[-2]) if len(times) > 1 else math.inf
                    people.assign(faces, t)
                    times.append(t)
                    records.append({"path": str(path), "frame": i, "time_s": round(t, 3), "faces": faces})
                    if on_frame:
                        on_frame(rgb, records[-1])
                if progress:
                    progress(i + 1, total)
            i += 1
        if progress:
            progress(i, total)
    finally:
        cap.release()
    if not i:
        raise VideoError(f"{path}: the video has no frames")
    if not records:
        raise VideoError(f"{path}: no frame could be decoded")
    if total and i < total - max(1, total // 100):  # frame counts may be estimates: a frame or 1% is no news
        message = (f"{path}: decoding stopped after {i:,} of the {total:,} frames the file announces (truncated or "
                   f"damaged?); the predictions cover the first {t:.1f} s")
        if warn:
            warn(message)
        else:
            warnings.warn(message, stacklevel=2)
    return records


def people(records: list[dict]) -> dict[int, int]:
    """Person number -> how many of one video's sampled frames show them, the most seen first."""
    return dict(Counter(f["person"] for r in records for f in r["faces"] if "person" in f).most_common())


def timeline(records: list[dict], classes: list[str], person: int | None = None) -> pd.DataFrame:
    """One row per sampled frame of one video: time_s, frame, faces (how many were found in it), and one person's
    label_name, confidence, valence, arousal and one column per class probability; NaN where that person is not
    in view. ``person``: a number from ``people``; by default the person seen in the most frames."""
    if person is None:
        person = next(iter(people(records)), None)
    rows = []
    for r in records:
        f = next((f for f in r["faces"] if person is not None and f.get("person") == person), None)
        row = {"time_s": r["time_s"], "frame": r["frame"], "faces": sum(not g["whole_image"] for g in r["faces"]),
               "label_name": None if f is None else f["label_name"],
               "confidence": np.nan if f is None else f["confidence"],
               "valence": np.nan if f is None else f["valence"], "arousal": np.nan if f is None else f["arousal"]}
        row.update(zip(classes, map(float, f["probs"]) if f else [np.nan] * len(classes)))
        rows.append(row)
    return pd.DataFrame(rows)


def summary(tl: pd.DataFrame, classes: list[str]) -> dict:
    """What a video's timeline adds up to: frames sampled, frames with its person in view, each class's share of
    those frames (by that person's predicted class), mean valence and arousal, and the mean confidence (the
    probability of each frame's predicted class: how sure the answers were)."""
    found = tl[tl["label_name"].notna()]
    shares = found["label_name"].value_counts(normalize=True).reindex(classes, fill_value=0.0)
    gaps = np.diff(tl["time_s"].to_numpy(float))
    return {"frames": len(tl), "with_face": len(found), "seconds": float(tl["time_s"].max()) if len(tl) else 0.0,
            # the real intervals between sampled frames: the frame rate may not allow the interval asked for
            "interval": (float(gaps.min()), float(gaps.max())) if len(gaps) else None,
            "shares": {c: float(v) for c, v in shares.items()},
            "valence": float(found["valence"].mean()) if len(found) else None,
            "arousal": float(found["arousal"].mean()) if len(found) else None,
            "confidence": float(found["confidence"].mean()) if len(found) else None}


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"


def _every(s: dict, every: float) -> str:
    """The interval the frames were really sampled at (``every``, asked for, where there was one frame only)."""
    lo, hi = (f"{float(f'{v:.2g}'):g}" for v in s.get("interval") or (every, every))  # two significant digits
    return f"every {lo} s" if lo == hi else f"every {lo} to {hi} s"


def describe(name: str, s: dict, every: float, person: int | None = None, n_people: int = 1) -> str:
    """One line for a video's summary; with several people, for ``person`` of ``n_people``."""
    if not s["with_face"]:
        return f"{name}: {_frames(s['frames'])} sampled {_every(s, every)} over {s['seconds']:.1f} s; no face in any"
    most = max(s["shares"].values())
    top = [c for c, v in s["shares"].items() if np.isclose(v, most)]  # a tie is no one class's
    mostly = (f"mostly {top[0]} ({most:.0%} of them" if len(top) == 1 else
              f"{', '.join(top[:-1])} and {top[-1]} equally often ({most:.0%} of them each")
    who = f"person {person} of {n_people} in" if n_people > 1 else "a face in"
    va = (f", mean valence {s['valence']:+.2f}, arousal {s['arousal']:+.2f}" if np.isfinite(s["valence"])
          else "")  # a model trained without valence/arousal gives none
    return (f"{name}: {_frames(s['frames'])} sampled {_every(s, every)} over {s['seconds']:.1f} s, {who} "
            f"{s['with_face']}; {mostly}, mean confidence {s['confidence']:.2f}){va}")
