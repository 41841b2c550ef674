"""Evaluate a run's checkpoint, or a model file, on a split of its data or on another data set; write predictions
and metrics.

    python -m fer_core.evaluate --run artifacts/runs/NAME [--data DIR] [--split test] [--checkpoint best] [--no-tta]
    python -m fer_core.evaluate --data DIR --out FOLDER      # the shipped default model (models/default) on DIR
    python -m fer_core.evaluate --run RUN --data 7-CLASS-DIR --out FOLDER --only-data-classes   # a 7-class figure
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from pathlib import Path


def get_args_parser():
    from . import data as fdata
    from .train_args import IMG_SIZES, img_size

    p = argparse.ArgumentParser(prog="python -m fer_core.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=os.path.expanduser,
                   help="run folder written by fer_core.train, or a model file (.pt checkpoint, .onnx "
                        "export); default: the shipped default model, models/default")
    p.add_argument("--data", type=os.path.expanduser,
                   help="data folder to evaluate on (default: the model's own training data)")
    p.add_argument("--layout", default="auto", choices=("auto", *fdata.LAYOUTS),
                   help=f"layout of --data: auto, {', '.join(fdata.LAYOUTS)}")
    p.add_argument("--split", default=None, choices=("train", "val", "test", "all"),
                   help="train, val, test or all (default: test of the run's own split; all samples of other data "
                        "unless it has a predefined test split)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"],
                   help="which checkpoint of a run folder (default best)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average predictions over the image and its mirror (default: as the run was trained to)")
    p.add_argument("--temperature", action=argparse.BooleanOptionalAction, default=True,
                   help="rescale the probabilities by the temperature fitted with fer_core.calibrate, where the model "
                        "has one (default on; --no-temperature writes the raw probabilities)")
    p.add_argument("--only-data-classes", action="store_true",
                   help="answer only among the classes the data has: the probabilities of the others are dropped "
                        "and the rest renormalised before the argmax, e.g. to report a 7-class figure for an 8-class "
                        "model on RAF-DB or FER2013 (default: the model answers among all 8)")
    p.add_argument("--img-size", type=img_size, help=f"input size to evaluate at, {IMG_SIZES[0]} to {IMG_SIZES[1]} "
                   f"pixels (default: the size the run trained at)")
    p.add_argument("--out", type=os.path.expanduser,
                   help="folder for predictions/metrics (default: the run folder, also for a checkpoint in "
                        "its checkpoints/; needed for a model file elsewhere). Never another run's folder")
    p.add_argument("--tag", help="file name tag: predictions_<tag>.csv (default: split, or <data folder>-<split>); "
                                 "letters, digits, '.', '_', '+', '-'")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    return p


if __name__ == "__main__":  # --help and a mistyped flag answer before torch loads
    get_args_parser().parse_args()


import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import data as fdata
from .calibrate import apply_temperature, temperature_of
from .images import ImageError, fits_in_memory, load_square
from .io import atomic_write_json, disk_full, unwritable_folder
from .labels import CLASSES, NUM_CLASSES
from .metrics import summary_line, write_evaluation
from .models import model_from_checkpoint
from .transforms import normalise

TAG = re.compile(r"\w[\w.+-]*")  # a file-name part: no folders, no leading dot


def batches(n: int, size: int, progress: bool):
    """Start indices of the batches of n images, with a progress bar when asked and there are several."""
    return tqdm(range(0, n, size), desc="predict", unit="batch", disable=not progress or n <= size, leave=False)


@torch.no_grad()
def predict_arrays(model, images: torch.Tensor, mean, std, batch_size=128, device="cpu", tta=False, progress=False):
    """Softmax probabilities [N, 8] and valence/arousal [N, 2] for a uint8 image tensor; flip-TTA averages both views."""
    model.eval()
    probs, vas = [], []
    for i in batches(len(images), batch_size, progress):
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


def evaluate_samples(model, cfg, root, samples, device="cpu", tta=False, progress=True):
    """Decode, predict and build the predictions table; unreadable images are left out and returned."""
    images, ok, failures = fdata.decode_images(root, samples, cfg["img_size"], progress=progress,
                                               keep=fits_in_memory(len(samples), cfg["img_size"]))
    kept = [samples[i] for i in ok]
    probs, va = predict_arrays(model, images, cfg["mean"], cfg["std"], device=device, tta=tta, progress=progress)
    return predictions_frame(kept, probs, va), failures


def ferplus_paper_rule(df: pd.DataFrame, root) -> dict | None:
    """Accuracy on the predictions' images that the FER+ paper's majority protocol keeps (data.ferplus_paper_ids),
    with its Wilson 95% interval: the figure to set beside the paper's. None where none of them is such an image."""
    from .metrics import proportion_ci

    sub = df[df["id"].astype(str).isin(fdata.ferplus_paper_ids(root))]
    if sub.empty:
        return None
    k = int((sub["pred"] == sub["true"]).sum())
    acc, lo, hi = proportion_ci(k, len(sub))
    return {"n": len(sub), "accuracy": k / len(sub), "ci95": [lo, hi]}


def paper_rule_line(paper: dict) -> str:
    lo, hi = paper["ci95"]
    return (f"on the {paper['n']} of these images the FER+ paper's majority protocol keeps (one-vote labels dropped, "
            f"the top class over half the rest): accuracy {paper['accuracy']:.4f} [{lo:.3f}, {hi:.3f}]")


def saved_split(run: Path) -> dict[str, str]:
    """The run's own split: sample id -> "train" / "val" / "test", from its split.csv."""
    split_csv = pd.read_csv(Path(run) / "split.csv", dtype={"id": str})
    return dict(zip(split_csv["id"], split_csv["split"]))


def training_paths(run, root) -> list[Path]:
    """The files of the training images a run's split.csv names, under its data root ``root``. Raises OSError,
    ValueError or KeyError where split.csv is missing or damaged."""
    split = pd.read_csv(Path(run) / "split.csv", dtype=str)
    base = fdata.images_root(root)
    return [base / p for p in split.loc[split["split"] == "train", "path"].dropna()]


def same_data(index, root: Path, own_root: Path, run: Path | None, checks: int = 16) -> bool:
    """Whether data at another path is a copy of the model's training data: it holds every image id of the run's
    split, and where the model's own data is on this machine, a few of those ids (``checks``) are the same images
    there; without the run folder, it is a folder of the same name."""
    if run is None:
        return root.name == own_root.name
    split = pd.read_csv(Path(run) / "split.csv", dtype={"id": str, "path": str})
    here = {s.id: s for s in index.samples}
    if not set(split["id"]) <= set(here):
        return False
    # The same ids can be other pictures: full AffectNet numbers its training images as its validation set does.
    picked = split.sample(min(checks, len(split)), random_state=0)
    originals = [fdata.images_root(own_root) / p for p in picked["path"]]
    if not all(f.is_file() for f in originals):
        return True  # the original is not on this machine: its ids are all there is to go by
    try:  # the same pictures, also resized or saved again: at 32 px a copy saved at 112 px, JPEG quality 60, is 1.5
        # grey levels from its original on average, other AffectNet faces 30 or more (780 pairs)
        return all(np.abs(load_square(f, 32).astype(int) - load_square(index.root / here[i].path, 32)).mean() < 8
                   for f, i in zip(originals, picked["id"]))
    except ImageError:
        return False


def trained_on(samples, root: Path, run: Path | None, own_root: Path) -> set[str]:
    """The ids of ``samples`` (images under ``root``) that are images the run trained on (data.copies_of)."""
    return set() if run is None else fdata.copies_of(samples, root, training_paths(run, own_root))


def own_folder(args, path: Path) -> Path | None:
    """Where results go without --out: the --run folder, or the run folder whose checkpoints/ holds the model file."""
    if args.run and Path(args.run).is_dir():
        return Path(args.run)
    if args.run and path.parent.name == "checkpoints" and (path.parent.parent / "config.json").is_file():
        return path.parent.parent
    return None


def other_owner(out: Path, own: Path | None, path: Path, cfg: dict) -> str | None:
    """Whose results ``out`` holds, when they are not this model's: a run folder of another run, or the evaluation
    folder of another model file. None for a folder without config.json, this model's run or its evaluation folder."""
    if own is not None and out.resolve() == own.resolve():
        return None
    try:
        theirs = json.loads((out / "config.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "holds a config.json that cannot be read"
    if not isinstance(theirs, dict) or not theirs.get("name"):  # another tool's config.json
        return "holds a config.json that is not a run's"
    if theirs.get("status") == "evaluation":
        file = (theirs.get("evaluated_model") or {}).get("file")
        return None if file and Path(file).resolve() == path.resolve() else f"is the evaluation folder of {file}"
    if theirs.get("created") is not None and (theirs.get("name"), theirs.get("created")) == (cfg.get("name"),
                                                                                            cfg.get("created")):
        return None  # the run this model is (a copy of the run folder, an export of its checkpoint)
    return f"is the run folder of {theirs.get('name')}"


def other_results(out: Path, tag: str, ids: set, root: Path, foreign: bool) -> str | None:
    """What predictions_<tag>.csv / metrics_<tag>.json in ``out`` hold, when they are not a former evaluation of the
    same images (which may be replaced: a re-evaluation), or None."""
    pred, met = out / f"predictions_{tag}.csv", out / f"metrics_{tag}.json"
    if not pred.exists() and not met.exists():
        return None
    try:
        theirs = set(pd.read_csv(pred, dtype={"id": str}, usecols=["id"])["id"])
    except (OSError, ValueError):
        return f"{met.name} without a readable {pred.name}"
    try:
        data_root = json.loads(met.read_text()).get("data_root")
    except (OSError, ValueError, AttributeError):
        data_root = None
    if theirs != ids:
        return f"results on {len(theirs)} other images" + (f" of {data_root}" if data_root else "")
    if foreign and not (data_root and fdata.images_root(data_root).resolve() == fdata.images_root(root).resolve()):
        return f"results on images of {data_root or 'other data'} with the same ids"
    return None


def _load(args, device):
    """(path, config, run folder or None, predict(images, cfg, tta) -> (raw probs, va)) for --run."""
    from .export import ensemble_config
    from .inference import MAX_BATCH, ModelNotFound, Predictor, load_checkpoint, resolve_model, why_no_checkpoint

    run = Path(args.run) if args.run else None
    if run is not None and run.is_dir():
        path = run / "checkpoints" / f"{args.checkpoint}.pt"
        if ensemble_config(run) is not None:  # an ensemble has no checkpoint: its exported ONNX file answers
            path = run / "checkpoints" / "best.onnx"
            if not path.is_file():
                raise ModelNotFound(f"{run} is an ensemble folder, without a checkpoint of its own: export it first "
                                    f"(python -m fer_core.export --run {run} writes {path})")
        if not path.is_file() and (run / "checkpoints" / "best.pt").is_file():
            raise ModelNotFound(f"no checkpoint at {path}; {run / 'checkpoints'} holds best.pt: leave out "
                                f"--checkpoint {args.checkpoint}")
        if not path.is_file():
            raise ModelNotFound(f"no checkpoint at {path}. {why_no_checkpoint(run)}")
    else:
        if args.checkpoint != "best":
            raise ModelNotFound(f"--checkpoint {args.checkpoint} picks a checkpoint of a run folder, and "
                                f"{args.run or 'the default model'} is a model file: give its run folder")
        path = resolve_model(args.run)
    if path.suffix.lower() == ".onnx":
        predictor = Predictor(path, detector=None, tta=False)
        predictor.temperature = 1.0  # main applies the model's temperature, whichever file answers

        def predict(images, cfg, tta):  # at its own size: main refuses another --img-size for it
            predictor.tta = tta
            # MAX_BATCH at a time: the same predictions as larger batches, as fast, in a fraction of the memory
            parts = [predictor.predict_batch(images[i:i + MAX_BATCH].permute(0, 2, 3, 1).numpy())
                     for i in batches(len(images), MAX_BATCH, progress=True)]
            return tuple(np.concatenate(x) for x in zip(*parts))

        cfg = predictor.config
    else:
        model, cfg = model_from_checkpoint(load_checkpoint(path))
        model.to(device)

        def predict(images, cfg, tta):
            return predict_arrays(model, images, cfg["mean"], cfg["std"], device=device, tta=tta, progress=True)

    from .runs import model_run
    return path, cfg, model_run(cfg, path), predict


def main(args) -> int:
    from .inference import ModelNotFound, run_path
    from .runs import earlier_stages, trained_with_va
    from .train import Fail, pick_device  # one device policy for train and evaluate

    if args.tag is not None and not TAG.fullmatch(args.tag):
        return _fail(f"--tag {args.tag!r} is not a simple name: it becomes part of a file name "
                     f"(predictions_<tag>.csv), so use letters, digits, '.', '_', '+' and '-', not starting with '.'")
    if args.run:
        args.run = str(run_path(args.run))  # a run name means that run's folder, as for a path to it
    try:
        device = pick_device(args.device)
    except Fail as e:
        return _fail(str(e))
    try:
        path, cfg, run, predict = _load(args, device)
    except ModelNotFound as e:
        return _fail(str(e))
    except (RuntimeError, ValueError, KeyError) as e:  # a checkpoint that does not fit its own config, bad metadata
        why = ("its weights do not fit the network its config describes (missing, extra or differently shaped "
               "tensors)" if "state_dict" in str(e) else f"{type(e).__name__}: {str(e).splitlines()[0]}")
        return _fail(f"{args.run or 'the default model'} cannot be loaded as a model: {why}")
    missing = [k for k in ("img_size", "mean", "std") if k not in cfg]
    if missing:
        return _fail(f"{path}: its config lacks {', '.join(missing)}: not a model FER Lab wrote")
    trained_size = cfg["img_size"]
    if args.img_size is not None:
        if path.suffix.lower() == ".onnx" and args.img_size != trained_size:
            return _fail(f"{path} is an ONNX export at {trained_size} px: --img-size needs the checkpoint")
        cfg = dict(cfg, img_size=args.img_size)
    own_root = Path((cfg.get("data") or {}).get("root", ""))
    root = Path(args.data).resolve() if args.data else own_root
    if not args.data and not (cfg.get("data") or {}).get("root"):  # another tool's model (scripts/import_model.py)
        return _fail(f"{path} names no data of its own: give --data DIR, the labelled images to score it on")
    if not args.data and not own_root.exists():  # a folder, or a CSV manifest file
        return _fail(f"{path} was trained on {own_root}, which is not here: give --data DIR")
    own = own_folder(args, path)
    out = Path(args.out) if args.out else own
    if out is None:
        return _fail(f"give --out FOLDER: where to write the predictions and metrics of {path}")
    problem = unwritable_folder(out)
    if problem:
        return _fail(f"--out {out} {problem}" if args.out else
                     f"{out} {problem}, and the results go into the run's own folder: give --out FOLDER")
    owner = other_owner(out, own, path, cfg)
    if owner:
        return _fail(f"{out} {owner}, not of {cfg.get('name', path.stem)} ({path}): its config.json would describe "
                     f"another model than these results. Give a new --out folder")
    try:
        index = fdata.read_dataset(root, args.layout if args.data else cfg["data"]["layout"])
    except fdata.DataError as e:
        return _fail(str(e))
    foreign = root != own_root and not same_data(index, root, own_root, run)
    left_out: set[str] = set()
    if cfg.get("imported"):  # scripts/import_model.py: no split.csv says what its authors trained it on
        print(f"note: {cfg.get('name', path.stem)} is another tool's model: which images its authors trained it on "
              f"cannot be told here, so none are left out; if {root} holds some of them (AffectNet's training set, "
              "for a model trained on AffectNet), its figures on those flatter it", file=sys.stderr)
    if foreign:
        has_test = any(s.split == "test" for s in index.samples)
        split = args.split or ("test" if has_test else "all")
        assignment = {s.id: s.split for s in index.samples}
        same_files = trained_on(index.samples, index.root, run, own_root)
        for stage, theirs in earlier_stages(cfg):  # a first stage on FER+, an ensemble's members: theirs count too
            data = theirs.get("data") or {}
            if (stage / "split.csv").is_file() and data.get("root"):
                same_files |= trained_on(index.samples, index.root, stage, Path(data["root"]))
            if (data.get("extra") or {}).get("root") and Path(data["extra"]["root"]).resolve() == index.root:
                print(f"note: {theirs.get('name', stage.name)}, a stage of this model, mixed training images of "
                      f"{index.root} into its training: they may be among these images", file=sys.stderr)
        trained = {i for i, v in (saved_split(run).items() if run is not None else ()) if v == "train"}
        same_ids = sum(s.id in trained and s.id not in same_files for s in index.samples)
        in_split = [s for s in index.samples if split == "all" or s.split == split]
        these = f"these {len(in_split)} {'' if split == 'all' else split + ' '}images"
        n = sum(s.id in same_files for s in in_split)  # FER+'s train part, trained on, is not its test
        if same_files and args.split is None:
            left_out = same_files
            if n:
                print(f"note: left out {n} of {these}: {cfg.get('name')}, or a run its training started from, trained "
                      f"on them (the same files, or copies); --split {split} scores them too", file=sys.stderr)
        elif n:
            print(f"note: {n} of {these} are images {cfg.get('name')}, or a run its training started from, trained on "
                  f"(the same files, or copies): the figures will be flattering", file=sys.stderr)
        if same_ids:
            print(f"note: {same_ids} of these {len(index.samples)} images have the ids of images {cfg.get('name')} "
                  f"trained on; if they are the same images, the figures will be flattering", file=sys.stderr)
    else:
        split = args.split or "test"
        # the data's own parts, where the run used them all as they are (FER+): no split.csv needed to know them
        predefined = (cfg.get("split") or {}).get("source") == "predefined" and \
            {"train", "val", "test"} <= {s.split for s in index.samples}
        if run is None and split != "all" and not predefined:
            return _fail(f"{path} was trained on {root}, and its run folder (split.csv) is not here to say which "
                         f"images are its {split} images: evaluate on other data (--data), or --split all to score "
                         f"every image, its training images included")
        assignment = saved_split(run) if run is not None else {s.id: s.split for s in index.samples}
        if split == "all":
            print(f"note: --split all scores every image of {root}, including those {cfg.get('name', path.stem)} "
                  f"trained on", file=sys.stderr)
    in_part = [s for s in index.samples if split == "all" or assignment.get(s.id) == split]
    samples = [s for s in in_part if s.id not in left_out]
    if not samples:
        parts = sorted(set(assignment.values()) - {"unused", None})
        return _fail(f"no samples in split {split!r} of {root}" + (" besides the images the model trained on"
                                                                   if left_out else "")
                     + (f": {cfg.get('name')} has {', '.join(parts)} parts only (e.g. a final model trained with "
                        f"--test-frac 0); give --split {parts[-1]}, or evaluate on other data" if parts and not foreign
                        else ": this data has no split of its own; --split all scores every image"
                        if foreign and not parts else ""))
    for note in index.notes[1:]:  # what the reader skipped or ignored, as training says it
        whole = " (counted over the whole data set, all its splits)" if note.startswith("skipped: ") and \
            split != "all" else ""
        print(f"note: {note}{whole}", file=sys.stderr)
    tta = bool((cfg.get("args") or {}).get("tta")) if args.tta is None else args.tta
    tag = args.tag or (split if not foreign else f"{root.stem if root.is_file() else root.name}-{split}")
    differ = own_settings_differ(cfg, trained_size, tta, args, path)
    if differ and not args.tag:  # results made as the model answers, in its run folder or any other, stay as they are
        tag = f"{tag}-{'-'.join(differ)}"
        print(f"note: written as predictions_{tag}.csv: these settings differ from the ones the model answers with",
              file=sys.stderr)
    images, ok, failures = fdata.decode_images(index.root, samples, cfg["img_size"],  # too many: decoded as used
                                               keep=fits_in_memory(len(samples), cfg["img_size"]))
    if not ok:
        return _fail(f"none of the {len(samples)} images of {root} could be read")
    taken = other_results(out, tag, {samples[i].id for i in ok}, index.root, foreign)
    if taken:
        return _fail(f"{out / f'predictions_{tag}.csv'} holds {taken}, not a former evaluation of these "
                     f"{len(ok)}: it is not replaced. Give another --tag (predictions_<tag>.csv), or a new --out "
                     f"folder")
    probs, va = predict(images, cfg, tta)
    t = temperature_of(cfg) if args.temperature else 1.0  # fer_core.calibrate's, where the model has one
    if t != 1:
        probs = apply_temperature(probs, t).astype(np.float32)
    name = cfg.get("name", path.stem)
    in_data = np.bincount([samples[i].label for i in ok], minlength=NUM_CLASSES) > 0
    if args.only_data_classes:
        probs = np.where(in_data, probs, 0)
        probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    else:
        called = np.bincount(probs.argmax(1), minlength=NUM_CLASSES)
        for k in np.flatnonzero(~in_data & (called > 0)):
            print(f"note: none of these images is labelled {CLASSES[k]}; the model called {called[k]} of the "
                  f"{len(ok)} images {CLASSES[k]} (counted wrong); --only-data-classes answers among the data's "
                  "classes only", file=sys.stderr)
    learned_va = trained_with_va(cfg)
    if not learned_va:  # an untrained head: its numbers are noise, so none are given (as Predictor does)
        va = np.full_like(va, np.nan)
        if index.has_va:
            print(f"note: {name} was trained without valence/arousal: its valence/arousal outputs are not scored",
                  file=sys.stderr)
    df = predictions_frame([samples[i] for i in ok], probs, va)
    paper = ferplus_paper_rule(df, index.root) if index.layout == "ferplus" else None
    m = write_evaluation(out, tag, df, data_root=str(root), layout=index.layout, checkpoint=str(path), tta=tta,
                         img_size=cfg["img_size"], skipped_images=len(failures), temperature=t,
                         skipped_samples=index.skipped, left_out_trained=len(in_part) - len(samples),
                         only_data_classes=args.only_data_classes,
                         **({"ferplus_paper_rule": paper} if paper else {}))
    how = f", temperature {t:.3f}" if t != 1 else ""
    how += f", only the {in_data.sum()} classes in the data" if args.only_data_classes else ""
    print(f"{name} ({path}) on {root} [{split}, n={m['n']}, flip TTA {'on' if tta else 'off'}"
          f"{how}]: {summary_line(m)}")
    if paper:
        print(paper_rule_line(paper))
    if failures:
        print(f"{len(failures)} unreadable images skipped, e.g. {failures[0][0]}: {failures[0][1]}", file=sys.stderr)
    msg = f"wrote {out / f'predictions_{tag}.csv'} and metrics_{tag}.json"
    if not (out / "config.json").exists():  # a folder of its own: make it a run folder the dashboard reads
        atomic_write_json(out / "config.json", evaluation_config(cfg, path, index, out.resolve().name,
                                                                 index.has_va and learned_va))
        msg += f" and config.json: the dashboard shows it when {out.resolve().parent} is among its run folders"
    print(msg)
    if foreign and split != "all" and not args.tag:  # the data's own part, which runs trained on it call by its name
        print(f"note: a run whose data is {root} calls these images its {split} split: --tag {split} puts this "
              f"evaluation beside such runs in the dashboard", file=sys.stderr)
    return 0


def own_settings_differ(cfg: dict, trained_size: int, tta: bool, args, path: Path) -> list[str]:
    """Short names of the ways this evaluation differs from how the model answers (its size, flip TTA, all 8
    classes, its best checkpoint, its temperature): ["64px", "notta"]; [] where it does not."""
    return [name for name, differs in (
        (f"{cfg['img_size']}px", cfg["img_size"] != trained_size),
        ("tta" if tta else "notta", tta != bool((cfg.get("args") or {}).get("tta"))),
        ("dataclasses", args.only_data_classes),
        ("last", path.stem == "last"),  # --checkpoint last, or last.pt named as --run
        ("raw", not args.temperature and temperature_of(cfg) != 1)) if differs]


def evaluation_config(cfg: dict, path: Path, index, name: str, has_va: bool) -> dict:
    """config.json of a folder that holds only evaluations: the model's description and the data it was run on,
    without the model's training args (it trained nothing). has_va: whether its valence/arousal were scored (the
    data has them and the model learned them), which the dashboard reads. How each evaluation answered (size, flip
    TTA, the data's classes only) is in its metrics file."""
    from datetime import datetime, timezone

    keep = ("schema_version", "backbone", "img_size", "classes", "mean", "std", "weights", "hardware", "environment")
    return {**{k: cfg[k] for k in keep if k in cfg}, "name": name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "evaluation",
            "data": {"root": str(index.root), "layout": index.layout, "has_va": has_va,
                     "n_samples": len(index.samples)},
            "evaluated_model": {"file": str(path), "name": cfg.get("name"), "preset": cfg.get("preset"),
                                "trained_on": (cfg.get("data") or {}).get("root")
                                or ("its authors' data (an imported model)" if cfg.get("imported") else None)}}


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _stop(signum, frame):
    from .train import Interrupted
    raise Interrupted(signum)


def cli():
    args = get_args_parser().parse_args()
    signal.signal(signal.SIGTERM, _stop)  # kill, a job's end: stopped as Ctrl-C stops it
    try:
        sys.exit(main(args))
    except KeyboardInterrupt as e:  # every file is written whole or not at all (fer_core.io)
        print("\ninterrupted: no file was left half-written", file=sys.stderr)
        sys.exit(128 + getattr(e, "signum", signal.SIGINT))
    except OSError as e:
        if not (full := disk_full(e)):
            raise
        sys.exit(_fail(f"{full}: free some space there, or give another --out; no file was left half-written"))


if __name__ == "__main__":
    cli()
