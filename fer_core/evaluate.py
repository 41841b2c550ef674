"""Evaluate a run's checkpoint on a split of its data or on another data set; write predictions and metrics.

    python -m fer_core.evaluate --run artifacts/runs/NAME [--data DIR] [--split test] [--checkpoint best] [--tta]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data as fdata
from .io import atomic_write_csv, atomic_write_json
from .labels import NUM_CLASSES
from .models import model_from_checkpoint
from .transforms import normalise


@torch.no_grad()
def predict_arrays(model, images: torch.Tensor, mean, std, batch_size=128, device="cpu", tta=False):
    """Softmax probabilities [N, 8] and valence/arousal [N, 2] for a uint8 image tensor; flip-TTA averages both views."""
    model.eval()
    probs, vas = [], []
    for i in range(0, len(images), batch_size):
        x = normalise(images[i:i + batch_size].to(device), mean, std)
        logits, va = model(x)
        p = logits.float().softmax(1)
        if tta:
            logits_f, va_f = model(torch.flip(x, dims=[3]))
            p = (p + logits_f.float().softmax(1)) / 2
            va = (va + va_f) / 2
        probs.append(p.cpu())
        vas.append(va.float().cpu())
    if not probs:
        return np.zeros((0, NUM_CLASSES), np.float32), np.zeros((0, 2), np.float32)
    return torch.cat(probs).numpy(), torch.cat(vas).numpy()


def predictions_frame(samples, probs, va) -> pd.DataFrame:
    """The predictions_<split>.csv table (docs/run_folder.md)."""
    df = pd.DataFrame({
        "id": [s.id for s in samples],
        "path": [s.path for s in samples],
        "true": [s.label for s in samples],
        "pred": probs.argmax(1) if len(probs) else np.zeros(0, int),
    })
    for c in range(NUM_CLASSES):
        df[f"prob_{c}"] = probs[:, c].round(6)
    df["valence_true"] = [s.valence for s in samples]
    df["valence_pred"] = va[:, 0].round(5)
    df["arousal_true"] = [s.arousal for s in samples]
    df["arousal_pred"] = va[:, 1].round(5)
    return df


def write_evaluation(out_dir, tag: str, df: pd.DataFrame, **extra) -> dict:
    """Write predictions_<tag>.csv and metrics_<tag>.json (atomically); return the metrics."""
    from .metrics import compute_metrics

    metrics = {"split": tag, **extra, **compute_metrics(df)}
    atomic_write_csv(Path(out_dir) / f"predictions_{tag}.csv", df)
    atomic_write_json(Path(out_dir) / f"metrics_{tag}.json", metrics)
    return metrics


def evaluate_samples(model, cfg, root, samples, device="cpu", tta=False, progress=True):
    """Decode, predict and build the predictions table; unreadable images are left out and returned."""
    images, ok, failures = fdata.decode_images(root, samples, cfg["img_size"], progress=progress)
    kept = [samples[i] for i in ok]
    probs, va = predict_arrays(model, images, cfg["mean"], cfg["std"], device=device, tta=tta)
    return predictions_frame(kept, probs, va), failures


def summary_line(m: dict) -> str:
    s = f"acc {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  kappa {m['cohen_kappa']:.4f}"
    for k in ("valence", "arousal"):
        if m.get(k):
            s += f"  {k} RMSE {m[k]['rmse']:.3f} CCC {m[k]['ccc']:.3f}"
    return s


def get_args_parser():
    p = argparse.ArgumentParser(prog="python -m fer_core.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by fer_core.train")
    p.add_argument("--data", help="data folder to evaluate on (default: the run's own data)")
    p.add_argument("--layout", default="auto", help="layout of --data: auto, affectnet, ferplus, folders, csv")
    p.add_argument("--split", default=None,
                   help="train, val, test or all (default: test of the run's own split; all samples of other data "
                        "unless it has a predefined test split)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint (default best)")
    p.add_argument("--tta", action="store_true", help="average predictions over the image and its mirror")
    p.add_argument("--img-size", type=int, help="input size to evaluate at (default: the size the run trained at)")
    p.add_argument("--out", help="folder for predictions/metrics (default: the run folder)")
    p.add_argument("--tag", help="file name tag: predictions_<tag>.csv (default: split, or <data folder>-<split>)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    return p


def saved_split(run: Path) -> dict[str, str]:
    """The run's own split: sample id -> "train" / "val" / "test", from its split.csv."""
    split_csv = pd.read_csv(Path(run) / "split.csv", dtype={"id": str})
    return dict(zip(split_csv["id"], split_csv["split"]))


def main(args) -> int:
    from .train import pick_device  # one device policy for train and evaluate

    run = Path(args.run)
    ckpt_path = run / "checkpoints" / f"{args.checkpoint}.pt"
    if not ckpt_path.is_file():
        return _fail(f"no checkpoint at {ckpt_path} (is {run} a run folder written by fer_core.train?)")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model, cfg = model_from_checkpoint(ckpt)
    if args.img_size is not None:
        if not 16 <= args.img_size <= 1024:
            return _fail(f"--img-size must be between 16 and 1024 pixels, got {args.img_size}")
        cfg = dict(cfg, img_size=args.img_size)
    device = pick_device(args.device)
    model.to(device)
    own_root = Path(cfg["data"]["root"])
    root = Path(args.data).resolve() if args.data else own_root
    try:
        index = fdata.read_dataset(root, args.layout if args.data else cfg["data"]["layout"])
    except fdata.DataError as e:
        return _fail(str(e))
    foreign = root != own_root
    if foreign:
        has_test = any(s.split == "test" for s in index.samples)
        split = args.split or ("test" if has_test else "all")
        assignment = {s.id: s.split for s in index.samples}
    else:
        split = args.split or "test"
        assignment = saved_split(run)
    samples = [s for s in index.samples if split == "all" or assignment.get(s.id) == split]
    if not samples:
        return _fail(f"no samples in split {split!r} of {root}")
    tag = args.tag or (split if not foreign else f"{root.name}-{split}")
    df, failures = evaluate_samples(model, cfg, root, samples, device=device, tta=args.tta)
    if df.empty:
        return _fail(f"none of the {len(samples)} images of {root} could be read")
    m = write_evaluation(args.out or run, tag, df, data_root=str(root), checkpoint=ckpt_path.name, tta=args.tta,
                         img_size=cfg["img_size"], skipped_images=len(failures))
    print(f"{run.name} on {root} [{split}, n={m['n']}]: {summary_line(m)}")
    if failures:
        print(f"{len(failures)} unreadable images skipped, e.g. {failures[0][0]}: {failures[0][1]}", file=sys.stderr)
    print(f"wrote {Path(args.out or run) / f'predictions_{tag}.csv'} and metrics_{tag}.json")
    return 0


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
