"""Near-copies: one photo twice in a data set, re-encoded, resized, recoloured, cropped a little or mirrored. FER
sets hold many (FER2013 was gathered by web search; AffectNet too), and a test image whose near-copy is a training
image flatters the model: it has, in effect, seen that face with its label.

Each image becomes a fingerprint: squashed to SIDE x SIDE grey levels, its mean taken away, scaled to unit length. Two
images are near-copies when their fingerprints' dot product (the correlation of their grey levels) is at least
THRESHOLD, or the dot product of one with the other's mirror image is. Chosen by eye: on affectnet8-4k the 41 pairs
at 0.94 or more are all one photo twice, while 1 of the 7 pairs between 0.92 and 0.94 is two people; on FER+ 20 pairs
drawn at random between 0.93 and 0.95 were all one photo. Copies that differ in light, colour, size or a little
cropping match; the same person in another photo does not.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

SIDE = 32  # a fingerprint's side in pixels: 1,024 grey levels
THRESHOLD = 0.94
_BLOCK = 25_000_000  # similarities computed at once: 100 MB of float32


def fingerprints(images) -> np.ndarray:
    """float32 [N, SIDE * SIDE] fingerprints of uint8 images [N, 3, H, W] (a numpy array or torch tensor); a flat
    image (one grey level) gets zeros, which match nothing."""
    import torch
    import torch.nn.functional as F

    images = torch.as_tensor(images)
    out = np.zeros((len(images), SIDE * SIDE), np.float32)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for i in range(0, len(images), 1024):  # in batches: a float copy of all of full AffectNet would take 170 GB
        grey = (images[i:i + 1024].float() * weights).sum(1, keepdim=True)
        small = F.interpolate(grey, size=(SIDE, SIDE), mode="area").flatten(1)
        small -= small.mean(1, keepdim=True)
        norm = small.norm(dim=1, keepdim=True)
        out[i:i + 1024] = torch.where(norm > 1e-3, small / norm.clamp_min(1e-3), 0).numpy()
    return out


def file_fingerprints(paths, progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """(fingerprints of the image files, the indices of those that did not decode: zeros, matching nothing)."""
    from tqdm import tqdm

    from .images import ImageError, _threads, load_square

    side = 2 * SIDE  # decoded at twice the side, then averaged down as fingerprints() does for decoded images

    def one(path) -> np.ndarray | None:
        try:
            return load_square(path, side).transpose(2, 0, 1)
        except ImageError:
            return None

    paths = list(paths)
    with ThreadPoolExecutor(max_workers=_threads()) as pool:
        decoded = list(tqdm(pool.map(one, paths), total=len(paths), desc="fingerprints", unit="img",
                            disable=not progress or len(paths) < 1000))
    bad = [i for i, d in enumerate(decoded) if d is None]
    blank = np.zeros((3, side, side), np.uint8)
    return fingerprints(np.stack([blank if d is None else d for d in decoded]) if paths else
                        np.zeros((0, 3, side, side), np.uint8)), bad


def _mirrored(prints: np.ndarray) -> np.ndarray:
    return prints.reshape(-1, SIDE, SIDE)[:, :, ::-1].reshape(len(prints), -1)


def near_copies(a: np.ndarray, b: np.ndarray | None = None, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Pairs of near-copies between fingerprints ``a`` and ``b`` (or within ``a``, each pair once): columns a and b
    (row numbers), similarity, mirrored (whether the match is of one with the other's mirror image), most similar
    first."""
    within = b is None
    b = a if within else b
    rows = []
    step = max(1, _BLOCK // max(len(b), 1))
    flipped = _mirrored(b)
    for i in range(0, len(a), step):
        direct, mirror = a[i:i + step] @ b.T, a[i:i + step] @ flipped.T
        best = np.maximum(direct, mirror)
        if within:  # each pair once, and not an image with itself
            best[np.tril_indices(len(best), k=i, m=best.shape[1])] = -1
        ii, jj = np.nonzero(best >= threshold)
        rows += zip(ii + i, jj, best[ii, jj], mirror[ii, jj] > direct[ii, jj])
    table = pd.DataFrame(rows, columns=["a", "b", "similarity", "mirrored"])
    table = table.astype({"a": int, "b": int, "similarity": float, "mirrored": bool})
    return table.sort_values(["similarity", "a", "b"], ascending=[False, True, True], ignore_index=True)


def held_out_copies(prints: dict[str, np.ndarray], threshold: float = THRESHOLD) -> dict[str, set[int]]:
    """For each held-out part of fingerprints by part ("train", "val", "test"), the rows that are near-copies of a
    training image."""
    train = prints.get("train")
    if train is None or not len(train):
        return {k: set() for k in prints if k != "train"}
    return {k: set(near_copies(v, train, threshold)["a"]) for k, v in prints.items() if k != "train"}


def part_pairs(pairs: pd.DataFrame, parts: list[str | None]) -> Counter:
    """How many pairs join each two parts (train–test, train–train, ...), from each image's part (row -> part, None
    where the data has no split)."""
    order = {"train": 0, "val": 1, "test": 2}
    count = Counter()
    for a, b in zip(pairs["a"], pairs["b"]):
        x, y = sorted((parts[a] or "", parts[b] or ""), key=lambda p: (order.get(p, 3), p))
        count[f"{x or 'no part'}–{y or 'no part'}"] += 1
    return count
