"""Where a model looks: occlusion sensitivity (Zeiler & Fergus, 2014).

A square of the face is covered (with the face's mean colour, or a blurred copy of what is there), for every position
of the square on a grid, and the model asked again; where covering costs the probability of a class most, the model
relied on what was there. It needs only the model's answers, not its gradients, so it explains ONNX files and
ensembles as well as checkpoints. (captum's Occlusion does the same for PyTorch models only, and pins numpy below 2.)
"""
from __future__ import annotations

import numpy as np

FILLS = ("mean", "blur")  # what a covered square shows: see covering()


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window positions from one edge to the other; the last one flush with the far edge, so every pixel is covered."""
    return sorted({*range(0, size - window + 1, stride), size - window})


def covering(crop: np.ndarray, window: int, fill: str = "mean") -> np.ndarray:
    """What a covered square shows, as a full-size image to copy squares from: the crop's mean colour everywhere, or
    the crop under a Gaussian blur of sigma window/3 (shapes gone, colours and light kept)."""
    import cv2

    if fill == "mean":
        return np.broadcast_to(crop.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), crop.shape)
    if fill == "blur":
        return cv2.GaussianBlur(crop, (0, 0), sigmaX=window / 3, borderType=cv2.BORDER_REFLECT)
    raise ValueError(f"fill must be one of {', '.join(FILLS)}, not {fill!r}")


def occlusion_map(predict, crop: np.ndarray, target: int | str, window: int | None = None,
                  stride: int | None = None, batch: int = 32, fill: str = "mean") -> tuple[np.ndarray, float]:
    """(map [H, W], probability of ``target`` (a class's index or name) on the whole crop) for an RGB crop [H, W, 3]
    (uint8, or faces.as_uint8's other value ranges).

    ``predict``: uint8 crops [N, H, W, 3] -> probabilities [N, classes] (e.g. Predictor.predict_batch's first
    output). Each pixel of the map is the mean drop of the target's probability over the covered crops that hid it
    (negative where hiding it raised the probability). ``window`` defaults to a quarter of the crop's side, ``stride``
    to half the window (7-8 positions each way: 49-64 covered crops). ``fill``: see :func:`covering`.
    """
    from .faces import as_rgb_uint8
    from .labels import CLASSES

    crop = as_rgb_uint8(crop)
    if isinstance(target, str):
        if target not in CLASSES:
            raise ValueError(f"unknown class {target!r}; choose one of {', '.join(CLASSES)}")
        target = CLASSES.index(target)
    h, w = crop.shape[:2]
    window = window or max(1, min(h, w) // 4)
    stride = stride or max(1, window // 2)
    if not (0 < window <= min(h, w) and stride > 0):
        raise ValueError(f"window {window} and stride {stride} must be positive and fit the {w}x{h} crop")
    cover = covering(crop, window, fill)
    boxes = [(y, x) for y in _starts(h, window, stride) for x in _starts(w, window, stride)]
    first = predict(crop[None])
    if isinstance(first, tuple):  # Predictor.predict_batch itself: its probabilities
        raise TypeError("predict must return probabilities [N, classes] only: for Predictor.predict_batch, pass "
                        "lambda x: predictor.predict_batch(x)[0]")
    first = np.asarray(first)
    if not 0 <= target < first.shape[1]:
        raise ValueError(f"target {target} is not one of the model's {first.shape[1]} classes (0-{first.shape[1] - 1})")
    base = float(first[0, target])
    drop, count = np.zeros((h, w)), np.zeros((h, w))
    for i in range(0, len(boxes), batch):
        part = boxes[i:i + batch]
        covered = np.repeat(crop[None], len(part), axis=0)
        for k, (y, x) in enumerate(part):
            covered[k, y:y + window, x:x + window] = cover[y:y + window, x:x + window]
        probs = np.asarray(predict(covered))[:, target]
        for (y, x), p in zip(part, probs):
            drop[y:y + window, x:x + window] += base - float(p)
            count[y:y + window, x:x + window] += 1
    return drop / count, base


def heat_overlay(crop: np.ndarray, heat: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """The crop with the map's positive part laid over it in the inferno colour map, the largest drop brightest and
    most opaque (up to ``alpha``); where covering cost nothing the face shows as it is."""
    import cv2

    top = float(heat.max())
    scaled = np.clip(heat / top, 0, 1) if top > 0 else np.zeros_like(heat)
    colour = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]  # BGR -> RGB
    a = (alpha * np.sqrt(scaled))[..., None]
    return (np.asarray(crop, np.float32) * (1 - a) + colour * a).round().astype(np.uint8)


def peak_region(heat: np.ndarray) -> str:
    """Where on the crop the map is brightest, in words ("the lower middle"): a face crop's thirds are roughly
    brows and eyes, nose, mouth and chin."""
    h, w = heat.shape
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    row = ("upper", "middle", "lower")[min(2, 3 * y // h)]
    col = ("left", "middle", "right")[min(2, 3 * x // w)]
    return "the centre" if row == col == "middle" else f"the {row} {col}"


def describe_map(class_name: str, base: float, heat: np.ndarray) -> str:
    """One or two sentences on a map: the class's probability, the largest drop and where, and a rise worth
    naming."""
    top, rise = float(heat.max()), -float(heat.min())
    points = lambda x: f"{x * 100:.1f} points" if x < 0.015 else f"{x * 100:.0f} points"  # noqa: E731  not "0 points"
    text = (f"P({class_name}) = {base:.0%}. Covering the brightest parts lowers it by up to **{points(top)}**"
            + (": no single part matters much" if top < 0.05 else f", most in {peak_region(heat)} of the crop") + ".")
    if rise >= 0.05:
        text += f" Covering some part raises it by up to {points(rise)}."
    return text


def save_map(path, crop: np.ndarray, heat: np.ndarray) -> None:
    """A PNG of the crop and its overlay side by side, written atomically."""
    import io

    from PIL import Image

    from .io import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(np.concatenate([np.asarray(crop, np.uint8), heat_overlay(crop, heat)], axis=1)).save(buf, "PNG")
    atomic_write_bytes(path, buf.getvalue())
