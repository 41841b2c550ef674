"""Do occlusion maps point at what the model's answer rests on? A deletion test (Petsiuk et al., 2018).

    python benchmarks/occlusion_faithfulness.py [--model FILE] [--run RUN] [--data ROOT] [--per-class 6]

For test images of a run (the default model's own run, ensemble-best, unless told), each map fill in
fer_core.explain.FILLS makes a map of the class the model predicted. Then the map's brightest pixels are removed
step by step (5% ... 50% of the crop) and the model asked again; removing means copying in the crop's "mean" or
"blur" covering, each in turn, so neither fill is only judged by its own kind of removal. The figure per map is the
area under the probability-against-fraction-removed curve, relative to the unremoved probability: the faster the
answer falls, the lower the area and the more faithful the map. A control map of random 8x8 blocks says what no
knowledge at all scores. Intervals: 95% percentile bootstrap over images (2,000 resamples), paired for differences.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core.explain import FILLS, covering, occlusion_map  # noqa: E402
from fer_core.images import load_square  # noqa: E402
from fer_core.inference import ModelNotFound, Predictor, resolve_model, run_path  # noqa: E402

FRACTIONS = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5])


def deletion_curve(predict, crop: np.ndarray, target: int, heat: np.ndarray, cover: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """P(target) with the top FRACTIONS of the map's pixels replaced by ``cover``, relative to the whole crop's."""
    order = np.argsort(-(heat + rng.uniform(0, 1e-9, heat.shape)).ravel())  # ties broken at random
    steps = []
    for f in FRACTIONS:
        out = crop.reshape(-1, 3).copy()
        idx = order[: int(round(f * order.size))]
        out[idx] = cover.reshape(-1, 3)[idx]
        steps.append(out.reshape(crop.shape))
    probs = np.asarray(predict(np.stack(steps)))[:, target]
    return probs / max(float(probs[0]), 1e-6)


def area(curve: np.ndarray) -> float:
    return float(np.trapezoid(curve, FRACTIONS) / (FRACTIONS[-1] - FRACTIONS[0]))


def ci(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (scipy, 2,000 resamples)."""
    from scipy.stats import bootstrap

    res = bootstrap((values,), np.mean, n_resamples=2000, method="percentile", random_state=rng)
    low, high = res.confidence_interval
    return float(low), float(high)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model file or run (default: the shipped default model)")
    ap.add_argument("--run", default=None, help="run whose predictions_test.csv picks the images (default: the "
                                                "run the model was trained or exported from)")
    ap.add_argument("--data", default=None, help="data root (default: the run's config.json)")
    ap.add_argument("--per-class", type=int, default=6, help="test images per true class (default 6)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        predictor = Predictor(resolve_model(args.model))
    except (ModelNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run = run_path(args.run or predictor.config.get("name", ""))
    if not (run / "predictions_test.csv").is_file():
        print(f"error: no predictions_test.csv in {run}; name a run with --run", file=sys.stderr)
        return 2
    root = Path(args.data or json.loads((run / "config.json").read_text()).get("data", {}).get("root", ""))
    with open(run / "predictions_test.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (len(r["id"]), r["id"]))  # numeric ids in numeric order
    by_class = [[r for r in rows if int(r["true"]) == c] for c in range(len(predictor.classes))]
    picked = [r for rs in by_class for r in rs[:args.per_class]]
    missing = [r["path"] for r in picked if not (root / r["path"]).is_file()]
    if missing:
        print(f"error: {len(missing)} images not under {root} (e.g. {missing[0]}); pass --data", file=sys.stderr)
        return 2
    print(f"model {predictor.path} ({predictor.runtime}, flip TTA {'on' if predictor.tta else 'off'}); "
          f"{len(picked)} test images of {run.name} from {root}")

    def predict(x):
        return predictor.predict_batch(x)[0]

    rng = np.random.default_rng(args.seed)
    maps = ("random",) + FILLS
    auc = {(m, d): [] for m in maps for d in FILLS}
    seconds = {m: [] for m in FILLS}
    for r in tqdm(picked, desc="images", unit="image"):
        crop = load_square(root / r["path"], predictor.img_size)
        target = int(np.argmax(predict(crop[None])[0]))
        window = crop.shape[0] // 4
        heats = {"random": cv2.resize(rng.uniform(size=(8, 8)), crop.shape[:2], interpolation=cv2.INTER_NEAREST)}
        for fill in FILLS:
            t = time.perf_counter()
            heats[fill], _ = occlusion_map(predict, crop, target, fill=fill)
            seconds[fill].append(time.perf_counter() - t)
        for d in FILLS:
            cover = covering(crop, window, d)
            for m in maps:
                auc[m, d].append(area(deletion_curve(predict, crop, target, heats[m], cover, rng)))

    print("\ndeletion area (relative P(predicted class) over 0-50% removed; lower = more faithful), mean [95% CI]")
    print(f"{'map':<8}" + "".join(f"{'removed by ' + d:>28}" for d in FILLS) + f"{'s per map':>12}")
    for m in maps:
        cells = []
        for d in FILLS:
            v = np.array(auc[m, d])
            lo, hi = ci(v, rng)
            cells.append(f"{v.mean():.3f} [{lo:.3f}, {hi:.3f}]")
        speed = f"{np.mean(seconds[m]):.2f}" if m in seconds else "-"
        print(f"{m:<8}" + "".join(f"{c:>28}" for c in cells) + f"{speed:>12}")
    print("\npaired differences (row minus column's map; negative = the row's map is more faithful)")
    for d in FILLS:
        for a, b in [(FILLS[1], FILLS[0])] + [(f, "random") for f in FILLS]:
            diff = np.array(auc[a, d]) - np.array(auc[b, d])
            lo, hi = ci(diff, rng)
            print(f"  removed by {d:<5} {a} - {b}: {diff.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
