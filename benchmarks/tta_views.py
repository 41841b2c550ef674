"""Would more test-time views than the mirror help? For a trained run's checkpoint, scores its validation and test
images with the mirror alone (what `--tta` does) and with crops and rotations added, each view averaged with its
mirror, and prints accuracy, macro-F1 and valence/arousal CCC / RMSE for each set of views.

    python benchmarks/tta_views.py --run artifacts/runs/NAME

Views: the whole image; a centre crop and four corner crops of 90% of the side (training crops are 89-100% of
the side); rotations of +-5 degrees. Crops and rotations are resampled back to the input size.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import data as fdata  # noqa: E402
from fer_core.evaluate import model_from_checkpoint, predictions_frame, saved_split  # noqa: E402
from fer_core.inference import ModelNotFound, load_checkpoint, run_path  # noqa: E402
from fer_core.metrics import compute_metrics  # noqa: E402

D = 0.1  # corner crops of 90% of the side sit flush with two edges: 0.1 in affine_grid's [-1, 1] coordinates
VIEWS = {"whole": (1.0, 0, 0, 0), "centre": (0.9, 0, 0, 0), "top-left": (0.9, -D, -D, 0),
         "top-right": (0.9, D, -D, 0), "bottom-left": (0.9, -D, D, 0), "bottom-right": (0.9, D, D, 0),
         "rot+5": (1.0, 0, 0, 5), "rot-5": (1.0, 0, 0, -5)}
FIVE = ["centre", "top-left", "top-right", "bottom-left", "bottom-right"]
SETS = {"mirror (--tta)": ["whole"], "five crops": FIVE, "whole + five crops": ["whole", *FIVE],
        "whole + rotations": ["whole", "rot+5", "rot-5"], "all eight": list(VIEWS)}


def view(x: torch.Tensor, scale: float, tx: float, ty: float, degrees: float) -> torch.Tensor:
    if (scale, tx, ty, degrees) == (1.0, 0, 0, 0):
        return x
    a = math.radians(degrees)
    theta = torch.tensor([[scale * math.cos(a), -scale * math.sin(a), tx],
                          [scale * math.sin(a), scale * math.cos(a), ty]]).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run folder (or run name) with checkpoints/best.pt and split.csv; "
                   f"the views: {', '.join(VIEWS)}")
    a = p.parse_args()
    run = run_path(a.run)
    try:
        model, cfg = model_from_checkpoint(load_checkpoint(run / "checkpoints" / "best.pt"))
    except ModelNotFound as e:
        p.error(f"{e} (a run folder with its weights: the shipped reference runs have none)")
    model.eval()
    index = fdata.read_dataset(cfg["data"]["root"], cfg["data"]["layout"])
    assignment = saved_split(run)
    mean, std = (torch.tensor(cfg[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    print(f"{cfg['name']} ({cfg['backbone']}, {cfg['img_size']} px); each view averaged with its mirror")
    for split in ("val", "test"):
        samples = [s for s in index.samples if assignment.get(s.id) == split]
        images, ok, _ = fdata.decode_images(index.root, samples, cfg["img_size"], progress=False)
        kept = [samples[i] for i in ok]
        t0 = time.time()
        out = {}  # view -> (probabilities, valence/arousal), both mirror halves averaged
        with torch.no_grad():
            for name, geometry in VIEWS.items():
                probs, vas = [], []
                for i in range(0, len(images), 128):
                    x = (view(images[i:i + 128].float() / 255, *geometry) - mean) / std
                    (l1, v1), (l2, v2) = model(x), model(torch.flip(x, dims=[3]))
                    probs.append((l1.float().softmax(1) + l2.float().softmax(1)) / 2)
                    vas.append((v1.float() + v2.float()) / 2)
                out[name] = (torch.cat(probs).numpy(), torch.cat(vas).numpy())
        print(f"\n{split} (n={len(kept)}, {time.time() - t0:.0f} s for all views)")
        print(f"{'views':22s} {'accuracy':>8s} {'macro-F1':>8s} {'V CCC':>6s} {'A CCC':>6s} {'V RMSE':>6s} {'A RMSE':>6s}")
        for label, names in SETS.items():
            probs = np.mean([out[n][0] for n in names], 0)
            va = np.mean([out[n][1] for n in names], 0)
            m = compute_metrics(predictions_frame(kept, probs, va))
            print(f"{label:22s} {m['accuracy']:8.4f} {m['macro_f1']:8.4f} {m['valence']['ccc']:6.3f} "
                  f"{m['arousal']['ccc']:6.3f} {m['valence']['rmse']:6.3f} {m['arousal']['rmse']:6.3f}")


if __name__ == "__main__":
    main()
