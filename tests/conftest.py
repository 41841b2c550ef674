"""Shared test helpers: tiny generated data sets with patterns a small model can learn in a few epochs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# One colour and one stripe direction/frequency per class (AffectNet order), so both a colour-only and a
# texture-only model can separate the classes.
CLASS_COLOURS = [(200, 200, 200), (240, 200, 40), (40, 60, 200), (240, 120, 20),
                 (120, 30, 160), (40, 160, 60), (210, 30, 30), (30, 170, 170)]
# Mean valence/arousal per class, roughly where the emotion sits on the circumplex.
CLASS_VA = [(0.0, 0.0), (0.7, 0.4), (-0.6, -0.3), (0.2, 0.7), (-0.5, 0.6), (-0.6, 0.3), (-0.7, 0.6), (-0.4, 0.2)]

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def contrast(a, b) -> float:
    """WCAG 2.1 contrast ratio of two RGB colours (0-255 each)."""
    def lum(c):
        lin = [(v / 255) / 12.92 if v <= 10 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def pattern_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 HxWx3 image: class colour, class stripes, random phase and noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = label * np.pi / 8
    freq = 2 + label % 4
    wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    colour = np.array(CLASS_COLOURS[label], dtype=np.float32)
    img = colour * (0.75 + 0.25 * wave[..., None]) + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_affectnet_dir(root, n_per_class: int = 6, size: int = 64, with_va: bool = True, seed: int = 0) -> Path:
    """Write an AffectNet release-layout folder (images/<id>.jpg, annotations/<id>_{exp,val,aro,lnd}.npy).

    Annotations are 0-d *string* arrays like the real release; ids are non-contiguous integers and the
    classes interleave. Valence/arousal are the class mean plus a little noise. Returns the root.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n_per_class * 8):
        label, sid = k % 8, 3 * k + 5
        Image.fromarray(pattern_image(label, size, rng)).save(root / "images" / f"{sid}.jpg", quality=92)
        ann = root / "annotations"
        np.save(ann / f"{sid}_exp.npy", np.array(str(label)))
        if with_va:
            v, a = np.clip(np.array(CLASS_VA[label]) + rng.normal(0, 0.08, 2), -1, 1)
            np.save(ann / f"{sid}_val.npy", np.array(f"{v:.6g}"))
            np.save(ann / f"{sid}_aro.npy", np.array(f"{a:.6g}"))
        np.save(ann / f"{sid}_lnd.npy", rng.uniform(0, size, 136))
    return root


def write_ferplus(root: Path, rows: dict[str, list[tuple[str, list[int]]]], missing=(), images=None) -> Path:
    """FER+'s layout: FER2013<split>/label.csv rows (name, box, 10 votes) and 48 px grayscale PNGs
    (uniform grey, or ``images[name]`` when given)."""
    for split, entries in rows.items():
        folder = root / f"FER2013{split}"
        folder.mkdir(parents=True)
        with open(folder / "label.csv", "w", newline="") as f:
            for name, votes in entries:
                f.write(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)) + "\n")
                if name not in missing:
                    pixels = images[name] if images else np.full((48, 48), 100, np.uint8)
                    Image.fromarray(pixels, "L").save(folder / name)
    return root


@pytest.fixture
def affectnet_dir(tmp_path) -> Path:
    return make_affectnet_dir(tmp_path / "affectnet")
