"""Photos saved on their side or upside down (no EXIF orientation to turn them by): does the detector's search over the
four turns (FaceDetector.detect's ``turned``, on for photos) find them upright, and what does it give back?

    python benchmarks/turned_photos.py [--model models/default] [--run artifacts/runs/hse-best] [--n 320]

Each of the run's test images (held out from the default model's training) is set in a grey frame twice its size, as
a face in a photo, turned by 0, 90, 180 and 270 degrees, and classified by Predictor.predict_faces with the search
and without it (``small_faces=False``, as video frames are). Prints, per turn: the share of images with a face found,
the share found upright (the turn undone exactly), accuracy against the labels, and the seconds per image.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fer_core.data import images_root, read_dataset  # noqa: E402
from fer_core.evaluate import saved_split  # noqa: E402
from fer_core.images import load_image  # noqa: E402
from fer_core.inference import Predictor  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model to classify with (default: the default model)")
    p.add_argument("--run", default=str(ROOT / "artifacts" / "runs" / "hse-best"),
                   help="a run whose split.csv names the test images (default: hse-best, a member of the default "
                        "model, on ../shared/data/affectnet8-4k)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "affectnet8-4k"))
    p.add_argument("--n", type=int, default=320, help="test images to use (default: all 320)")
    a = p.parse_args(argv)
    split = saved_split(Path(a.run))
    index = read_dataset(a.data)
    test = [s for s in index.samples if split.get(s.id) == "test"][:a.n]
    if not test:
        print(f"error: no test image of {a.run}'s split in {a.data}", file=sys.stderr)
        return 2
    predictor = Predictor(a.model) if a.model else Predictor()
    print(f"model: {predictor.path}; {len(test)} test images of {index.root}, each in a grey frame twice its size")
    root = images_root(index.root)
    photos = []
    for s in test:
        face = np.asarray(load_image(root / s.path))
        h, w = face.shape[:2]
        frame = np.full((2 * h, 2 * w, 3), 127, np.uint8)
        frame[h // 2:h // 2 + h, w // 2:w // 2 + w] = face
        photos.append((frame, s.label))
    print(f"{'turned by':>10} {'search':>7} {'face found':>11} {'found upright':>14} {'accuracy':>9} {'s/image':>8}")
    for k in range(4):
        for search in (False, True):
            found = upright = right = 0
            start = time.perf_counter()
            for frame, label in photos:
                r = predictor.predict_faces(np.ascontiguousarray(np.rot90(frame, k)), small_faces=search)[0]
                found += not r["whole_image"]
                upright += not r["whole_image"] and (k + r.get("turn", 0)) % 4 == 0
                right += r["label"] == label
            n = len(photos)
            print(f"{90 * k:>9}° {'on' if search else 'off':>7} {found / n:>11.1%} {upright / n:>14.1%} "
                  f"{right / n:>9.1%} {(time.perf_counter() - start) / n:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
