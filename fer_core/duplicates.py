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
MIN_SPREAD = 2.0  # grey levels: a flatter image (a blank frame) gets no fingerprint, and matches nothing
_BLOCK = 25_000_000  # similarities computed at once: 100 MB of float32 for each of the direct and mirrored


def fingerprint(rgb: np.ndarray) -> np.ndarray:
    """float32 [SIDE * SIDE] fingerprint of a uint8 RGB image [2 * SIDE, 2 * SIDE, 3] (images.load_square's): its grey
    levels averaged over 2 x 2 pixels, the mean taken away, scaled to unit length; zeros for a (nearly) flat image."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    small = grey.reshape(SIDE, 2, SIDE, 2).mean(axis=(1, 3)).ravel()
    small -= small.mean()
    spread = float(np.sqrt((small ** 2).mean()))
    return small / (spread * np.sqrt(small.size)) if spread >= MIN_SPREAD else np.zeros_like(small)


def file_fingerprints(paths, progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """(float32 [N, SIDE * SIDE] fingerprints of the image files, the indices of those that did not decode: zeros,
    matching nothing)."""
    from tqdm import tqdm

    from .images import ImageError, _threads, load_square

    def one(path) -> np.ndarray | None:
        try:
            return fingerprint(load_square(path, 2 * SIDE))
        except ImageError:
            return None

    paths = list(paths)
    out = np.zeros((len(paths), SIDE * SIDE), np.float32)
    bad = []
    with ThreadPoolExecutor(max_workers=_threads()) as pool:
        for i, found in enumerate(tqdm(pool.map(one, paths), total=len(paths), desc="near-copy check", unit="img",
                                       disable=not progress or len(paths) < 1000)):
            if found is None:
                bad.append(i)
            else:
                out[i] = found
    return out, bad


def _mirrored(prints: np.ndarray) -> np.ndarray:
    return prints.reshape(-1, SIDE, SIDE)[:, :, ::-1].reshape(len(prints), SIDE * SIDE)


def near_copies(a: np.ndarray, b: np.ndarray | None = None, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Pairs of near-copies between fingerprints ``a`` and ``b`` (or within ``a``, each pair once): columns a and b
    (row numbers), similarity, mirrored (whether the match is of one with the other's mirror image), most similar
    first."""
    within = b is None
    b = a if within else b
    from tqdm import tqdm

    rows = []
    step = max(1, _BLOCK // max(len(b), 1))
    flipped = _mirrored(b)
    bar = tqdm(total=len(a), desc="near-copy check: compare", unit="img",
               disable=len(a) * len(b) < 1e9)  # over a minute here: 4,000 held-out images against 250,000
    for i in range(0, len(a), step):
        bar.update(min(step, len(a) - i))
        first = i if within else 0  # within one set, each block against the rows from its own on: each pair once
        direct, mirror = a[i:i + step] @ b[first:].T, a[i:i + step] @ flipped[first:].T
        best = np.maximum(direct, mirror)
        if within:  # and not an image with itself, nor a pair twice inside the block's own square
            m = len(best)
            best[:, :m][np.tril(np.ones((m, m), bool))] = -1
        ii, jj = np.nonzero(best >= threshold)
        rows += zip(ii + i, jj + first, best[ii, jj], mirror[ii, jj] > direct[ii, jj])
    bar.close()
    table = pd.DataFrame(rows, columns=["a", "b", "similarity", "mirrored"])
    table = table.astype({"a": int, "b": int, "similarity": float, "mirrored": bool})
    return table.sort_values(["similarity", "a", "b"], ascending=[False, True, True], ignore_index=True)


def same_photo_groups(pairs: pd.DataFrame, n: int) -> np.ndarray:
    """Each of ``n`` images' group: images joined by near-copy pairs, directly or through others, share one."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs["a"].to_numpy(), pairs["b"].to_numpy())), shape=(n, n))
    return connected_components(graph, directed=False)[1]


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
