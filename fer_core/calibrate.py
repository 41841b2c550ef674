"""Temperature scaling: make a run's confidence match how often it is right, without changing a single prediction.

    python -m fer_core.calibrate --run artifacts/runs/NAME [--model models/default/model.onnx]

One number T is fitted on the run's validation predictions (predictions_val.csv) by minimising their negative
log-likelihood (Guo et al., 2017); every probability vector p becomes p^(1/T), renormalised. That is logits / T for
one network, and the same rescaling of the final (flip-averaged, member-averaged) probabilities otherwise. T < 1
sharpens an under-confident model, T > 1 softens an over-confident one; the class with the highest probability,
and so every accuracy figure, stays the same.

The run's config.json gets {"temperature": {"value": T, ...}}; its checkpoints (best.pt, best.onnx) read their
config from there, and fer_core.export copies it into exported files. ``--model FILE`` also writes T into a model
file exported from this run before (a .onnx or .pt of the same run, such as models/default/model.onnx).
Predictions files keep the raw probabilities until the run is evaluated again.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_torch_save, atomic_write_bytes, atomic_write_json, unwritable_folder
from .labels import NUM_CLASSES

T_RANGE = (0.05, 20.0)


def apply_temperature(probs, t: float) -> np.ndarray:
    """p^(1/t), renormalised per row: softmax(log p / t)."""
    from scipy.special import softmax

    return softmax(np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) / float(t), axis=1)


def temperature_of(config: dict) -> float:
    """The temperature a model's config carries (fer_core.calibrate wrote it), 1 where it has none."""
    return float((config.get("temperature") or {}).get("value") or 1.0)


def fit_temperature(y_true, probs) -> float:
    """The T in T_RANGE that minimises the mean negative log-likelihood of the true classes under
    apply_temperature(probs, T)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, np.float64)
    if y.size < 2 or probs.shape != (y.size, NUM_CLASSES):
        raise ValueError(f"need two or more rows of {NUM_CLASSES} probabilities and their true classes")
    rows = np.arange(y.size)

    def nll(log_t):
        return -np.log(np.clip(apply_temperature(probs, np.exp(log_t))[rows, y], 1e-12, None)).mean()

    res = minimize_scalar(nll, bounds=tuple(np.log(T_RANGE)), method="bounded", options={"xatol": 1e-5})
    t = float(np.exp(res.x))
    if not T_RANGE[0] * 1.01 < t < T_RANGE[1] / 1.01:
        right = int((probs.argmax(1) == y).sum())
        why = ("the model is right too often here to say how confident it should be: fit on a split where it makes "
               "mistakes" if t < 1 else "flattening them towards equal chances only helps, as for a model that has "
               "not learned the task yet: train it further before calibrating")
        raise ValueError(f"the likelihood keeps rising as T runs to {t:.3g} ({right} of {y.size} predictions right): "
                         f"{why}")
    return t


def _metrics(run: Path, split: str) -> dict:
    """The run's metrics_<split>.json, {} where it has none (or an unreadable one)."""
    try:
        return json.loads((run / f"metrics_{split}.json").read_text())
    except (OSError, ValueError):
        return {}


def applied_temperature(run: Path, split: str) -> float:
    """The temperature the run's predictions_<split>.csv was written with (1 for raw probabilities)."""
    return float(_metrics(run, split).get("temperature") or 1.0)


def stale_temperature(run: Path, split: str) -> str | None:
    """Where the run's model now answers with another temperature than its predictions_<split>.csv were written
    with (calibrated after they were written), what to do about it; else None."""
    try:
        now = temperature_of(json.loads((Path(run) / "config.json").read_text()))
    except (OSError, ValueError):
        return None
    then = applied_temperature(Path(run), split)
    if abs(now - then) < 1e-6:
        return None
    return (f"{Path(run).name}'s predictions_{split}.csv were written with temperature {then:.2f}, but its model "
            f"now answers with {now:.2f}: write them again (python -m fer_core.evaluate --run {run} --split {split})")


def answered_otherwise(run: Path, split: str) -> str | None:
    """How predictions_<split>.csv were made otherwise than the run's model answers (fer_core.evaluate with
    --checkpoint last, --img-size, --no-tta / --tta or --only-data-classes), or None."""
    m = _metrics(run, split)
    try:
        config = json.loads((Path(run) / "config.json").read_text())
        args, size = config.get("args") or {}, config.get("img_size")
    except (OSError, ValueError, AttributeError):
        return None
    if Path(str(m.get("checkpoint", ""))).stem == "last":
        return "checkpoints/last.pt wrote them, but the run answers with its best checkpoint"
    if m.get("img_size") and size and m["img_size"] != size:
        return f"they were made at {m['img_size']} px, but the run answers at {size} px"
    if "tta" in m and "tta" in args and bool(m["tta"]) != bool(args["tta"]):
        return (f"they were made {'with' if m['tta'] else 'without'} flip TTA, but the run answers "
                f"{'with' if args.get('tta') else 'without'} it")
    if m.get("only_data_classes"):
        return "they answer among the data's classes only (--only-data-classes), the run among all 8"
    return None


def fit_problem(run: Path, split: str) -> str | None:
    """Why the run's predictions_<split>.csv must not be fitted on, or None: test images are among them (by the
    run's split.csv, or its test predictions), or another checkpoint than the run's own wrote them."""
    from .evaluate import saved_split

    f = run / f"predictions_{split}.csv"
    if not f.is_file():
        return None  # read_predictions says how to write it
    test = {i for i, part in saved_split(run).items() if part == "test"} if (run / "split.csv").is_file() else set()
    if (run / "predictions_test.csv").is_file():
        test |= set(pd.read_csv(run / "predictions_test.csv", usecols=["id"], dtype=str)["id"])
    ids = set(pd.read_csv(f, usecols=["id"], dtype=str)["id"])
    if ids & test:
        return (f"{len(ids & test)} of the {len(ids)} images in {f} are test images of the run: T fitted on them "
                f"would be judged on them; fit on val (or train)")
    otherwise = answered_otherwise(run, split)
    if otherwise:
        return (f"{f}: {otherwise}, which the temperature is for: write them again with python -m fer_core.evaluate "
                f"--run {run} --split {split if split in ('train', 'val') else 'val'}")
    return None


def read_predictions(run: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(true classes, raw probabilities) of a run's predictions_<split>.csv, the temperature it was written with
    undone."""
    from .metrics import PROB_COLS
    from .runs import load_predictions

    f = run / f"predictions_{split}.csv"
    if not f.is_file():
        raise ValueError(f"{f} not found: evaluate the run on its {split} split first (python -m fer_core.evaluate "
                         f"--run {run} --split {split})")
    df = load_predictions(f)  # checked: classes 0-7, finite probabilities summing to 1
    probs = df[PROB_COLS].to_numpy(np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return df["true"].to_numpy(int), apply_temperature(probs, 1 / applied_temperature(run, split))


def _write_temperature(path: Path, entry: dict) -> None:
    """Put the temperature into a model file's config. Its modification time is kept: the weights are the same, and
    resolve_model picks between a run's best.pt and best.onnx by age."""
    st = path.stat()
    if path.suffix.lower() == ".onnx":
        import onnx

        from .export import describe
        from .inference import CONFIG_KEY

        proto = onnx.load(str(path))
        entry_meta = next(e for e in proto.metadata_props if e.key == CONFIG_KEY)
        config = {**json.loads(entry_meta.value), "temperature": entry}
        entry_meta.value = json.dumps(config)
        describe(proto, config)  # its temperature
        atomic_write_bytes(path, proto.SerializeToString())
    else:
        import torch

        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        atomic_torch_save(path, {**ckpt, "config": {**ckpt["config"], "temperature": entry}})
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def get_args_parser():
    p = argparse.ArgumentParser(prog="python -m fer_core.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=os.path.expanduser,
                   required=True, help="run folder, or a run name under artifacts/runs")
    p.add_argument("--split", default="val", help="predictions to fit T on (default val; never test, which is "
                                                  "what the fit is checked on)")
    p.add_argument("--model", type=lambda s: Path(os.path.expanduser(s)), action="append", default=[],
                   help="also write T into this model file exported from the run (.onnx or .pt); repeatable")
    p.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    return p


def main(args) -> int:
    from .inference import ModelNotFound, model_config, run_path
    from .metrics import calibration

    run = run_path(args.run)
    if not (run / "config.json").is_file():
        return _fail(f"{args.run}: not a run folder (no config.json)")
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as e:
        return _fail(f"{run / 'config.json'}: unreadable ({e})")
    if config.get("fold_runs"):
        folds = ", ".join(str(f["run"]) for f in config["fold_runs"])
        return _fail(f"{run} is a pooled cross-validation: its folds' test predictions taken together, with no "
                     f"validation predictions of one model and no weights of its own to calibrate. Calibrate each "
                     f"fold's run instead (python -m fer_core.calibrate --run FOLD_RUN, for each of {folds})")
    if args.split == "test":
        return _fail("--split test would fit T on the images it is judged on; fit on val (or train)")
    if not args.dry_run and (why := unwritable_folder(run)):  # said before the fit, not after it
        return _fail(f"{run} {why}, and the temperature goes into its config.json: --dry-run fits and reports "
                     "without writing, or calibrate a copy of the run folder made somewhere writable")
    if not (run / f"predictions_{args.split}.csv").is_file():
        problem = _no_predictions(run, args.split, config.get("status"))
        if problem:
            return _fail(problem)
    missing = [str(m) for m in args.model if not m.is_file()]
    if missing:
        return _fail(f"no such model file: {', '.join(missing)}")
    try:
        problem = fit_problem(run, args.split)
        if problem:
            return _fail(problem)
        y, probs = read_predictions(run, args.split)
        t = fit_temperature(y, probs)
    except ValueError as e:
        return _fail(str(e))
    print(f"{run.name}: temperature {t:.3f} fitted on {len(y)} {args.split} predictions "
          f"({'sharper' if t < 1 else 'softer'} probabilities; the predicted classes do not change)")
    worse = None
    for split in dict.fromkeys([args.split, "test"]):
        if split != args.split and (otherwise := answered_otherwise(run, split)):
            print(f"  {split}: not compared: {otherwise}")
            continue
        try:
            ys, ps = (y, probs) if split == args.split else read_predictions(run, split)
        except ValueError:
            continue
        before, after = (calibration(ys, ps.argmax(1), q) for q in (ps, apply_temperature(ps, t)))
        held = "held out" if split != args.split else "fitted on"
        if split != args.split and after["ece"] > before["ece"]:
            worse = (split, before, after)
        print(f"  {split} ({len(ys)} images, {held}): ECE {before['ece']:.3f} -> {after['ece']:.3f}, "
              f"NLL {before['nll']:.3f} -> {after['nll']:.3f}, mean confidence {before['mean_confidence']:.3f} -> "
              f"{after['mean_confidence']:.3f} (accuracy {before['accuracy']:.3f})")
    if worse:
        split, before, after = worse
        print(f"warning: on the held-out {split} images ECE rises ({before['ece']:.3f} -> {after['ece']:.3f}) "
              f"while NLL moves {before['nll']:.3f} -> {after['nll']:.3f}: T = {t:.2f} may not help this model (on "
              f"{len(y)} images the fit is noisy); the predicted classes stay the same either way", file=sys.stderr)
    if args.dry_run:
        return 0
    entry = {"value": round(t, 4), "fitted_on": args.split, "n": int(len(y)),
             "fitted": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    own_onnx = run / "checkpoints" / "best.onnx"  # best.pt reads the run's config.json; an ONNX file only itself
    written = list({Path(m).resolve(): Path(m) for m in [*([own_onnx] if own_onnx.is_file() else []),
                                                          *args.model]}.values())  # the run's ONNX named again: once
    try:
        for m in written:  # every file checked before any is written
            if m.suffix.lower() not in (".onnx", ".pt", ".pth"):
                raise ValueError(f"{m}: not a model file (.onnx, .pt or .pth)")
            cfg = model_config(m)
            if (cfg.get("name"), cfg.get("created")) != (config.get("name"), config.get("created")):
                raise ValueError(f"{m} holds {cfg.get('name')!r} (created {cfg.get('created')}), not the run "
                                 f"{config.get('name')!r} (created {config.get('created')}); nothing written")
        for m in written:
            _write_temperature(m, entry)
        atomic_write_json(run / "config.json", {**config, "temperature": entry})
    except (ValueError, OSError, ModelNotFound) as e:
        return _fail(str(e))
    print(f"wrote the temperature into {', '.join(map(str, [run / 'config.json', *written]))}")
    return 0


def _no_predictions(run: Path, split: str, status: str | None) -> str | None:
    """Why the run has no predictions_<split>.csv to fit on where evaluating it cannot help, or None where
    ``python -m fer_core.evaluate --run RUN --split SPLIT`` would write them."""
    from .inference import ModelNotFound, resolve_model

    have = sorted(f.stem[len("predictions_"):] for f in run.glob("predictions_*.csv"))
    if split not in ("train", "val"):
        return (f"{run} has no predictions_{split}.csv: --split names the predictions to fit on, those of the run's "
                f"val or train split (it has predictions for {', '.join(have) or 'no split'}; never fit on test)")
    try:
        resolve_model(run)
    except ModelNotFound:
        if status == "ensemble":
            return (f"{run} has no predictions_{split}.csv; to write them, export the ensemble first (python -m "
                    f"fer_core.export --run {run}), then python -m fer_core.evaluate --run {run} --split {split}")
        return (f"{run} has no predictions_{split}.csv, and no checkpoints/best.pt to write them with (the reference "
                f"runs in artifacts/runs ship without weights)")
    return None


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def cli():
    sys.exit(main(get_args_parser().parse_args()))


if __name__ == "__main__":
    cli()
