"""How much do a backbone's pretrained features know about expressions, before any fine-tuning? Freezes each
backbone at its released weights, takes its features of every image (averaged with the mirror's), and fits a
logistic regression (expression) and a ridge regression (valence, arousal, where the data has them) on them in
five-fold cross-validation: the same stratified folds `--fold K/5` trains on. Prints accuracy and valence/arousal
Pearson r per backbone, then for the features of several backbones side by side (do they know different things?).
Minutes, not hours: a quick screen before spending an hour fine-tuning a new backbone. `landmarks` in place of a
backbone probes the face's shape instead: AffectNet's 68 annotated points, centred, scaled, turned so the eyes are
level, with all their pairwise distances.

    python benchmarks/linear_probe.py --data ../shared/data/affectnet8-4k \\
        --backbones hse_face_mobilenet:150 dlib_face_resnet:112 mobileface:112 [--combine hse_face_mobilenet,mobileface]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import data as fdata  # noqa: E402
from fer_core.models import build_model  # noqa: E402
from fer_core.transforms import normalise  # noqa: E402


def features(backbone: str, size: int, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    """[N, D] pretrained features, each the mean of the image's and its mirror's."""
    model, info = build_model(backbone, weights="imagenet")
    print(f"{backbone} at {size} px: {info.weights_loaded}", flush=True)
    model.eval()
    out = []
    with torch.inference_mode():
        for i in tqdm(range(0, len(images), batch), desc=f"{backbone} features", unit="batch"):
            x = normalise(images[i:i + batch], info.mean, info.std)
            out.append(((model.features(x) + model.features(x.flip(3))) / 2).float().numpy())
    return np.concatenate(out)


def landmark_features(points: list[np.ndarray]) -> np.ndarray:
    """[N, 68 * 2 + 68 * 67 / 2] shape features of each face's [68, 2] points (see the module's doc)."""
    out = []
    for p in points:
        p = p - p.mean(0)
        p = p / np.sqrt((p ** 2).sum(1).mean())
        dx, dy = p[42:48].mean(0) - p[36:42].mean(0)  # left eye to right eye
        c, s_ = np.cos(np.arctan2(dy, dx)), np.sin(np.arctan2(dy, dx))
        p = p @ np.array([[c, -s_], [s_, c]])  # rotate by minus the eyes' angle
        out.append(np.concatenate([p.ravel(), np.linalg.norm(p[:, None] - p[None], axis=-1)[np.triu_indices(68, 1)]]))
    return np.stack(out)


def probe(X: np.ndarray, y: np.ndarray, va: np.ndarray | None, folds: list[np.ndarray], C: float) -> tuple[float, ...]:
    """(accuracy, valence r, arousal r) of the folds' test predictions pooled; r is nan without valence/arousal."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.empty_like(y)
    va_pred = None if va is None else np.empty_like(va)
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000)).fit(X[train], y[train])
        pred[test] = clf.predict(X[test])
        if va is not None:
            reg = make_pipeline(StandardScaler(), Ridge(alpha=X.shape[1])).fit(X[train], va[train])
            va_pred[test] = reg.predict(X[test])
    r = [np.nan] * 2 if va is None else [np.corrcoef(va_pred[:, k], va[:, k])[0, 1] for k in (0, 1)]
    return float((pred == y).mean()), *r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "affectnet8-4k"),
                   help="AffectNet-layout data folder (default: ../shared/data/affectnet8-4k beside the checkout)")
    p.add_argument("--backbones", nargs="+", default=["hse_face_mobilenet:150", "dlib_face_resnet:112",
                                                       "mobileface:112"], metavar="NAME:SIZE")
    p.add_argument("--combine", nargs="*", default=None, metavar="A,B",
                   help="backbone sets to probe side by side (default: all of them, and all but the last)")
    p.add_argument("--C", type=float, default=0.01, help="logistic regression's inverse regularisation")
    a = p.parse_args()
    try:
        index = fdata.read_dataset(a.data)
        splits = [fdata.make_split(index, fold=(k, 5)) for k in range(1, 6)]
    except fdata.DataError as e:  # also data with a split of its own (FER+): the probe needs its five folds
        print(f"error: {e}", file=sys.stderr)
        return 2
    samples = sorted(index.samples, key=lambda s: s.id)
    pos = {s.id: i for i, s in enumerate(samples)}
    folds = [np.array(sorted(pos[i] for i, part in sp.items() if part == "test")) for sp in splits]
    y = np.array([s.label for s in samples])
    va = np.array([[s.valence, s.arousal] for s in samples]) if index.has_va else None

    feats, by_size = {}, {}
    for spec in a.backbones:
        name, _, size = spec.partition(":")
        if name == "landmarks":
            n = fdata.read_landmarks(index)
            if n == 0:
                print("error: landmarks needs AffectNet's annotations/<id>_lnd.npy files", file=sys.stderr)
                return 2
            mean = np.mean([s.landmarks for s in samples if s.landmarks is not None], axis=0)
            feats[name] = landmark_features([s.landmarks if s.landmarks is not None else mean for s in samples])
            print(f"landmarks: {n} of {len(samples)} images' points (the others get the mean face)", flush=True)
            continue
        size = int(size or 112)
        if size not in by_size:
            images, _, failures = fdata.decode_images(index.root, samples, size)
            if failures:
                print(f"error: {len(failures)} unreadable images, e.g. {failures[0][0]}", file=sys.stderr)
                return 2
            by_size[size] = images
        t = time.perf_counter()
        feats[name] = features(name, size, by_size[size])
        print(f"  {feats[name].shape[1]}-d features in {time.perf_counter() - t:.0f} s", flush=True)

    names = list(feats)
    combos = [c.split(",") for c in a.combine] if a.combine is not None else \
        ([names, names[:-1]] if len(names) > 2 else [names] if len(names) == 2 else [])
    print(f"\nfive-fold linear probe on {len(y)} images (logistic regression C {a.C}, ridge alpha = feature count)")
    print(f"{'features':50s} {'dim':>5s} {'accuracy':>9s} {'valence r':>10s} {'arousal r':>10s}")
    for group in [[n] for n in names] + combos:
        X = np.hstack([feats[n] for n in group])
        acc, rv, ra = probe(X, y, va, folds, a.C)
        r = "".join(f"{'–' if np.isnan(v) else f'{v:.3f}':>11s}" for v in (rv, ra))
        print(f"{' + '.join(group):50s} {X.shape[1]:5d} {acc:9.3f}{r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
