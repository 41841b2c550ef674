"""Train a multi-task FER model (8 expressions + valence/arousal) and write a complete run folder: the training. Its
command line and usage are in fer_core.train_args (python -m fer_core.train --help).
"""
from __future__ import annotations

import sys

if __name__ == "__main__":  # --help and a mistyped flag answer before torch loads
    from fer_core.train_args import get_args_parser as _parser

    _parser().parse_args()

import copy
import hashlib
import io
import itertools
import json
import logging
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from . import data as fdata
from . import duplicates
from .evaluate import (ferplus_paper_rule, paper_rule_line, predict_arrays, predictions_frame, same_data,
                       saved_split)
from .images import LazyImages, fits_in_memory
from .io import (atomic_torch_save, atomic_write_csv, atomic_write_json, disk_full, on_signals, replace,
                 unwritable_folder)
from .labels import CLASSES, NUM_CLASSES
from .metrics import ccc, summary_line, write_evaluation
from .models import (REGISTERED, WeightsUnavailable, WithLandmarks, build_model, model_from_checkpoint,
                     read_weights_file)
from .presets import PRESETS, resolve
from .runs import (CLAIM, REPO_ROOT, claim_holder, claim_job, process_alive, runs_dirs_from_env, selection_score,
                   trained_with_va)
from .train_args import (DEVICES, IMG_SIZES, RECIPE_KEYS, VA_LOSSES, get_args_parser,  # noqa: F401  (its API too)
                         recorded_weights)
from .transforms import BatchAugment, CachedDataset, class_weights, cosine_lr

SCHEMA_VERSION = 1
SPLIT_HEADER = "id,path,split"  # the first line of the split.csv a training writes
log = logging.getLogger("fer_core.train")




class Fail(Exception):
    """A problem the user must fix: one line, exit code 2. ``everywhere``: every torchrun process raises it alike,
    and only the first says it."""

    def __init__(self, message: str, everywhere: bool = False):
        super().__init__(message)
        self.everywhere = everywhere


class Diverged(Fail):
    """The weights blew up: resuming would blow up again, so a new run with a lower --lr is the way on."""


class AlreadyDone(Exception):
    """The run this command would train finished before (a requeued job's earlier step): nothing to do, exit 0."""


# An epoch's mean training loss above this has diverged, finite or not: cross-entropy over 8 classes starts near 2
# and the valence/arousal terms are bounded, so only logits hundreds apart get there (--lr 50 reached 1.8e13).
DIVERGED_LOSS = 1000.0


_UNDER_1 = ("lie in [0, 1)", lambda x: 0 <= x < 1)
_NOT_NEGATIVE = ("be 0 or more", lambda x: 0 <= x < float("inf"))  # NaN fails every comparison: refused too
LIMITS = {  # recipe value: (its range in words, the test); 0 turns ema, mixup, cutmix, sam and early_stop off
    "label_smoothing": _UNDER_1, "dropout": _UNDER_1, "ema": _UNDER_1, "weight_decay": _NOT_NEGATIVE,
    "mixup": _NOT_NEGATIVE, "cutmix": _NOT_NEGATIVE, "sam": _NOT_NEGATIVE, "early_stop": _NOT_NEGATIVE,
    "warmup_epochs": _NOT_NEGATIVE, "va_weight": _NOT_NEGATIVE,  # a negative weight would reward the error
    "head_lr_mult": ("be above 0", lambda x: 0 < x < float("inf")),
    "landmark_weight": _NOT_NEGATIVE, "extra_count": _NOT_NEGATIVE,
    "kd_temperature": ("be above 0", lambda x: 0 < x < float("inf")),
    "seed": ("lie between 0 and 2**32 - 1", lambda x: 0 <= x < 2 ** 32),  # what NumPy and scikit-learn take
}


def pick_device(name: str = "auto") -> str:
    """``name``, or for auto the first of cuda, mps and cpu that is there. A device that is not there raises Fail
    now: PyTorch would fail later, mid-run, with a traceback."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if name not in DEVICES:
        raise Fail(f"--device {name}: choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise Fail("--device cuda: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                   "use --device auto or cpu")
    if name == "mps" and not mps:
        raise Fail("--device mps: no Apple GPU is available here (torch.backends.mps.is_available() is False); "
                   "use --device auto or cpu")
    return name


class Interrupted(KeyboardInterrupt):
    """SIGTERM: stops a training the way Ctrl-C (SIGINT) does."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def main(args) -> int:
    run = {}  # what a failure leaves behind: filled in by _main as the run folder is made and trained
    try:
        return _run_main(args, run)
    finally:
        _release(run.get("dir"))


def _run_main(args, run: dict) -> int:
    try:
        return _main(args, run)
    except AlreadyDone as e:
        print(e, file=sys.stderr)
        return 0
    except (Fail, fdata.DataError, WeightsUnavailable, FileNotFoundError, ValueError) as e:
        kept = _wind_up(run, "failed", resumable=not isinstance(e, Diverged))
        if not (getattr(e, "everywhere", False) and int(os.environ.get("RANK", "0")) > 0):
            _report(run, f"error: {e}", kept)
        return 2
    except KeyboardInterrupt as e:
        kept = _wind_up(run, "stopped")
        if not run.get("rank"):  # torchrun's other processes stop with it, silently
            _report(run, f"interrupted {run.get('at') or 'before training started'}; "
                    f"{kept or 'nothing was kept: run the same command again to start over'}")
        return 128 + getattr(e, "signum", signal.SIGINT)
    except Exception as e:
        at = run.get("at") or "before training started"
        if why := _out_of_room(e, at):  # the machine's limits, not a bug: what to do, without a traceback
            _report(run, f"error: {why}", _wind_up(run, "failed"))
            return 2
        _report(run, f"failed {at}: {type(e).__name__}: {e}", _wind_up(run, "failed"))
        raise


def _out_of_room(e: Exception, at: str) -> str | None:
    """What to do about a full disk or too little memory, or None for any other error."""
    if full := disk_full(e):
        return (f"{full} {at}: free some space there (a checkpoint is written beside the one it "
                "replaces, so it needs room for both) or give another --out")
    # torch.OutOfMemoryError's words, the CPU allocator's, and a DataLoader worker's that the system killed ("worker
    # (pid N) is killed by signal: Killed"), most often for memory
    words = ("out of memory", "can't allocate memory", "killed by signal")
    if isinstance(e, MemoryError) or isinstance(e, RuntimeError) and any(w in str(e) for w in words):
        return (f"out of memory {at} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no detail'}): "
                "fewer --workers (each process holds batches of its own), or a new run with a lower --batch-size or "
                "--img-size (a resumed run keeps its own)")
    return None


def _wind_up(run: dict, status: str, resumable: bool = True) -> str | None:
    """After an error or an interruption: a run folder that this invocation created and that holds no finished epoch
    is removed; a run folder with one gets ``status`` in its config.json (where that still says running) and is kept
    for --resume (``resumable``; a diverged run is not: it would diverge again). Returns what is kept, or None:
    nothing (no folder was made, or no epoch finished)."""
    run_dir = run.get("dir")
    if run_dir is None or "created" not in run or run.get("rank"):
        return None
    cfg_file = run_dir / "config.json"
    try:
        if not cfg_file.is_file():
            if run["created"]:  # a folder that was there already is left as it is
                _close_log()
                _remove_made(run["created"], run_dir)
            return None
        cfg = json.loads(cfg_file.read_text())
        if cfg.get("status") == "running":
            cfg["status"] = status
            if not resumable:
                cfg["diverged"] = True  # --resume (and a requeued job) would only diverge again
            atomic_write_json(cfg_file, cfg)
    except (OSError, ValueError) as e:
        return f"could not mark {cfg_file} {status}: {e}"
    best = cfg.get("best", {}).get("epoch")
    kept = f"the best checkpoint so far (epoch {best}) is kept in {run_dir / 'checkpoints' / 'best.pt'}; " \
        if best else ""
    # a finished run trained longer and cut off before its first new epoch was saved: the file still says finished
    longer = f" --epochs {run['epochs']}" if cfg.get("status") in ("finished", "stopped_early") and \
        run.get("epochs") else ""
    if not resumable:
        return f"{kept}a new run (another --name) with a lower --lr starts again" if kept else None
    return f"{kept}resume with --resume {run_dir}{longer}"


def _report(run: dict, *lines) -> None:
    """The closing lines of a failed or interrupted run: on stderr, and in train.log when the folder is kept."""
    for line in filter(None, lines):
        if run.get("logging"):
            log.error(line)
        else:
            print(line, file=sys.stderr)


def _main(args, run: dict) -> int:
    if args.fold and args.split_from:
        raise Fail("--fold and --split-from both choose the split: give one of them")
    device = pick_device(args.device)
    rank, world = _init_distributed(device)
    if world > 1 and device == "cuda":  # before any collective: NCCL's use the current GPU
        local = os.environ.get("LOCAL_RANK") or os.environ.get("SLURM_LOCALID") or rank % torch.cuda.device_count()
        device = f"cuda:{int(local)}"
        torch.cuda.set_device(device)
    run_dir, cfg, start_epoch, ckpt = _prepare_run(args, rank, world)
    r = cfg["args"]
    run["epochs"] = r["epochs"]
    torch.manual_seed(r["seed"] + rank)

    index = fdata.read_dataset(cfg["data"]["root"], cfg["data"]["layout"])
    if r.get("landmark_weight"):
        if r.get("mixup") or r.get("cutmix"):
            raise Fail("--landmark-weight does not go with --mixup or --cutmix: a blend of two faces has no landmarks")
        if index.layout != "affectnet":
            raise Fail(f"--landmark-weight needs facial landmarks (AffectNet's annotations/<id>_lnd.npy, 68 points); "
                       f"{index.root} ({index.layout} layout) has none")
    assignment = _split(args, cfg, index, run_dir)
    before = (cfg.get("resumed") or [{}])[-1].get("data_before") if args.resume else None
    if before and not same_data(index, index.root, Path(before), run_dir):
        raise Fail(f"--data {index.root} is not a copy of the data {run_dir} trained on ({before}): it lacks some of "
                   "the run's images, or holds other pictures under their ids")
    by_split = {k: [s for s in index.samples if assignment.get(s.id) == k] for k in ("train", "val", "test")}
    if r.get("exclude") and not args.resume:  # resumed, the saved split.csv already marks them unused
        by_split["train"] = _excluded(r["exclude"], index, by_split, cfg)
    if r.get("limit") and args.resume and len(by_split["train"]) > r["limit"]:  # its split.csv names no "unused"
        raise Fail(f"{run_dir} was trained by an earlier version of FER Lab, whose --limit {r['limit']} did not "
                   f"record which of the {len(by_split['train'])} training images it took: going on would train on "
                   "other images. Train it again instead (same command, a new --name).")
    if r.get("limit"):
        by_split["train"] = fdata.stratified_subset(by_split["train"], r["limit"], r["seed"])
    if not by_split["train"] or not by_split["val"]:
        raise Fail(f"need training and validation images; split counts {[len(v) for v in by_split.values()]}")
    if r.get("landmark_weight") and not (n_landmarks := fdata.read_landmarks(index, by_split["train"])):
        raise Fail(f"--landmark-weight needs facial landmarks: none of the {len(by_split['train'])} training images "
                   f"has a readable annotations/<id>_lnd.npy of 68 points")

    # Everything above only reads: the run folder is made once the run is known to start.
    if rank == 0:  # a name the clock chose moves on where a run started in the same second took it meanwhile
        run_dir, run["created"] = _make_run_dir(run_dir, auto=not (args.name or args.resume or world > 1))
        cfg["name"] = run_dir.name
    run.update(dir=run_dir, rank=rank)
    _setup_logging(run_dir if rank == 0 else None)
    run["logging"] = rank == 0
    log.info("settings (preset %s, then the flags given): %s", cfg.get("preset") or "none",
             ", ".join(f"{k} {v}" for k, v in r.items()))
    if rank == 0 and args.resume:
        _resume_folder(run_dir, cfg, assignment, index)
    if rank == 0 and not args.resume:
        trained = {s.id for s in by_split["train"]}  # --limit and --exclude leave some out: they are "unused"
        rows = [{"id": s.id, "path": s.path,
                 "split": "unused" if assignment[s.id] == "train" and s.id not in trained else assignment[s.id]}
                for s in index.samples if s.id in assignment]
        atomic_write_csv(run_dir / "split.csv", pd.DataFrame(rows, columns=SPLIT_HEADER.split(",")))
    if r.get("landmark_weight"):
        log.info("landmarks for %d of %d training images (weight %g)", n_landmarks, len(by_split["train"]),
                 r["landmark_weight"])
    for k, n in index.skipped.items():
        log.info("skipped %d samples: %s", n, k)
    for note in index.notes[1:]:  # what the reader ignored (other folders, a missing FER+ part), besides the skipped
        if not note.startswith("skipped: "):
            log.info("%s", note)
    source = cfg["split"].get("source") or ""
    given = {"val", "test"} & ({s.split for s in index.samples} if source == "predefined" else
                               {"val", "test"} if source.startswith("run:") else set())
    table, cautions = fdata.class_count_notes(by_split, given)
    log.info("%s", table)
    for w in cautions:
        log.warning("warning: %s", w)
    if (ex := cfg["split"].get("excluded")) and not args.resume:
        log.info("--exclude %s: %d training images left out", ex["file"], ex["left_out"])
        if ex["kept_held_out"]:
            log.warning("warning: %d images it names are val or test images, and stay there: left out or relabelled "
                        "there, the run would be scored on other images or labels than the runs it is compared "
                        "with", ex["kept_held_out"])
        if ex["not_found"]:
            log.warning("warning: %d of its %d rows name no image of this data", ex["not_found"], ex["rows"])
    if cfg["split"].get("outside_source") and not args.resume:
        log.warning("warning: %d of these %d images are in none of %s's train, val or test parts (left out by its "
                    "--limit or --exclude, or not in its data): they are not used here either",
                    cfg["split"]["outside_source"],
                    len(index.samples), source.removeprefix("run:"))

    model, info = build_model(r["backbone"], "none" if ckpt else _weights_file(r["weights"]), dropout=r["dropout"])
    cfg.update(mean=info.mean, std=info.std)
    if r["img_size"] < getattr(model.features, "MIN_SIDE", 0):
        raise Fail(f"{r['backbone']} needs --img-size {model.features.MIN_SIDE} or more (got {r['img_size']})")
    if not ckpt:
        cfg["weights"] = {"requested": r["weights"], "loaded": info.weights_loaded}
        if r["weights"] not in ("imagenet", "pretrained", "none"):  # which file it was, should its path change
            with open(_weights_file(r["weights"]), "rb") as f:
                cfg["weights"]["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
        default = PRESETS.get(args.preset, {}).get("weights")
        if default and args.weights is None and Path(r["weights"]) != Path(default).resolve():  # found under --out
            log.info("preset %s: starting from %s, the first stage trained under --out", args.preset, r["weights"])
    if ckpt:  # the run's own weights go on from where they stopped, whatever the run started from
        log.info("resuming %s from its last checkpoint: %s (backbone %s, started from %s)", run_dir,
                 f"epoch {start_epoch} of {r['epochs']} next" if start_epoch <= r["epochs"] else
                 f"all {r['epochs']} epochs trained, the final evaluation next", r["backbone"],
                 cfg["weights"]["loaded"])
    else:
        log.info("backbone %s, weights: %s", r["backbone"], cfg["weights"]["loaded"])

    t0 = time.time()
    cache, held = {}, 0
    for k, samples in by_split.items():  # only the first process validates and evaluates
        samples = samples if k == "train" or rank == 0 else []
        keep = fits_in_memory(held + len(samples), r["img_size"], _local_processes())  # in order: train first
        held += len(samples) if keep else 0
        if not keep:
            log.info("%s images are decoded as they are used, not held in memory: %d decoded images at %d px (this "
                     "split's and those held before it) would take over half of the memory%s", k,
                     held + len(samples), r["img_size"],
                     "" if k != "train" else f" (--workers {r['workers']} decode them in parallel)" if r["workers"]
                     else "; --workers N would decode them in N processes beside training, which waits on one now")
        cache[k], failed = _decode(index.root, samples, r["img_size"], rank, k, keep)
        cfg["data"]["skipped"][f"unreadable image ({k})"] = failed
    cfg["split"]["counts"] = {k: len(v[1]) for k, v in cache.items()}  # the images each split really holds
    if not cfg["split"]["counts"]["train"] or (rank == 0 and not cfg["split"]["counts"]["val"]):
        raise Fail(f"no readable training or validation images in {index.root}: split counts "
                   f"{cfg['split']['counts']} (the log lists the unreadable ones)")
    if r.get("extra_data"):
        cache["train"] = _add_extra(cache["train"], cfg, r, rank, index.root, by_split["val"] + by_split["test"])
    log.info("decoded %s images in %.1f s", {k: len(v[1]) for k, v in cache.items()}, time.time() - t0)
    if rank == 0 and not args.resume:
        _near_copies(index.root, cache, cfg)
    if epoch_size(r, 1) < r["img_size"]:
        log.info("progressive resizing: training images %s px by epoch", [epoch_size(r, e) for e in
                                                                          range(1, r["epochs"] + 1)])

    teacher = _load_teacher(r["teacher"], index, by_split, cfg, device) if r.get("teacher") else None
    model.to(device)
    ema = _ema_model(model, r["ema"])
    train_set = _dataset(cache["train"], r.get("soft_labels", False), landmarks=bool(r.get("landmark_weight")))
    trained = WithLandmarks(model).to(device) if train_set.landmarks is not None else model
    opt = torch.optim.AdamW(_param_groups(trained, r), lr=r["lr"], weight_decay=r["weight_decay"])
    augment = BatchAugment(r["aug"], info.mean, info.std)
    # The order of the images and every random draw of an epoch (augmentation, mixup, dropout) follow from the seed
    # and the epoch alone: the same with any --workers, and a resumed run goes on as if it had not been stopped.
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=world, rank=rank, seed=r["seed"])
    loader = torch.utils.data.DataLoader(train_set, batch_size=r["batch_size"], sampler=sampler,
                                         num_workers=r["workers"], generator=torch.Generator().manual_seed(r["seed"]),
                                         # each process's share: one smaller than a batch keeps its one short batch
                                         drop_last=-(-len(train_set) // world) > r["batch_size"],
                                         persistent_workers=r["workers"] > 0, pin_memory=device.startswith("cuda"),
                                         worker_init_fn=_quiet_worker)
    total_steps = len(loader) * r["epochs"]
    if ema is not None and total_steps < 3 / (1 - r["ema"]):
        log.warning("EMA decay %g takes about %d steps to leave its starting weights behind, and this run has %d: "
                    "the saved EMA weights will lag behind training (lower --ema, or --ema 0 for short runs)", r["ema"],
                    round(3 / (1 - r["ema"])), total_steps)
    steps = max(len(loader), 1)
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if ema is not None and "ema" in ckpt:
            ema.load_state_dict(ckpt["ema"])
        if trained is not model and "landmark_head" in ckpt:
            trained.landmarks.load_state_dict(ckpt["landmark_head"])
    # A resumed run's schedule is rebuilt at the epoch it reached, not loaded from last.pt: --epochs may have grown,
    # and the saved state holds the old schedule's rate for the next step (0 at its end); the steps per epoch change
    # with the number of processes. With the same --epochs and processes the rebuilt schedule gives that same rate.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s / steps, r["epochs"], r["warmup_epochs"]),
                                              last_epoch=ckpt["epoch"] * steps - 1 if ckpt else -1)
    net = torch.nn.parallel.DistributedDataParallel(trained) if world > 1 else trained
    if world > 1:
        log.info("--batch-size %d is each process's: %d processes step on %d images in all, at --lr %g (for the same "
                 "recipe as one process, give --batch-size %d)", r["batch_size"], world, r["batch_size"] * world,
                 r["lr"], max(1, r["batch_size"] // world))
    cw = class_weights(train_set.labels, NUM_CLASSES).to(device) if r["class_balance"] else None
    if cw is not None:
        log.info("--class-balance: class weights %s", ", ".join(f"{c} {w:.2f}" for c, w in zip(CLASSES, cw.tolist())))
        present = cw[cw > 0]
        if present.numel() and float(present.max() - present.min()) < 0.01:
            log.warning("warning: the training images are balanced already%s, so --class-balance changes nothing "
                        "here", " (--limit draws as many of each class as it can)" if r.get("limit") else "")
    use_amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if use_amp and ckpt and "scaler" in ckpt:  # its loss scale goes on, not found again by skipping steps
        scaler.load_state_dict(ckpt["scaler"])
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # the fastest convolution algorithms for this run's fixed input size
    amp = ("cuda", torch.float16) if use_amp else ("cpu", torch.bfloat16) if _cpu_bf16(r, device) else None
    cfg["precision"] = {"cuda": "float16 AMP", "cpu": "bfloat16 autocast"}[amp[0]] if amp else "float32"

    history = _resumed_history(run_dir, ckpt) if ckpt else []
    best = cfg.get("best", {}).get("value", float("-inf"))
    since = max(cfg.get("best", {}).get("epoch", start_epoch - 1), cfg.get("best", {}).get("patience_from", 0))
    stale = start_epoch - 1 - since  # epochs since the best (or since going on after an early stop), resumed
    for epoch in range(start_epoch, r["epochs"] + 1):
        run["at"] = f"during epoch {epoch} of {r['epochs']}"
        t_ep = time.time()
        sampler.set_epoch(epoch)
        torch.manual_seed(int(np.random.SeedSequence([r["seed"], rank, epoch]).generate_state(1)[0]))
        tr = train_one_epoch(net, model, loader, augment, opt, sched, scaler, device, r, cw, ema, epoch, rank == 0,
                             teacher, amp)
        row = {"epoch": epoch, **tr}
        if tr["train_loss"] > DIVERGED_LOSS:  # every process: each trained alike; not saved, nor kept as best
            raise Diverged(f"the training loss averaged {tr['train_loss']:.3g} in epoch {epoch}: the weights diverged; "
                           f"train again with a lower --lr (this run's: {r['lr']:g})", everywhere=True)
        if rank == 0:
            judged = _eval_model(model, ema)
            if not all(torch.isfinite(q).all() for q in judged.parameters()):  # gone NaN in the epoch's last step
                raise Diverged(f"the weights became NaN or infinite in epoch {epoch}: they diverged; train again with "
                               f"a lower --lr (this run's: {r['lr']:g})")
            row.update(validate(judged, cache["val"], cfg, device, r))
            row["lr"] = opt.param_groups[-2]["lr"]  # the backbone's last group, at --lr (the heads' is last)
            row["seconds"] = round(time.time() - t_ep, 2)
            history.append(row)
            cfg["train_minutes"] = round(cfg.get("train_minutes", 0) + row["seconds"] / 60, 3)
            improved = row["val_score"] > best
            if improved:
                best, stale = row["val_score"], 0
                cfg["best"] = {"epoch": epoch, "metric": "val_score", "value": best}
            else:
                stale += 1
            _save(run_dir, cfg, history, model, ema, opt, sched, epoch, best, improved, trained, scaler)
            run["at"] = f"after epoch {epoch} of {r['epochs']} (saved)"
            log.info("epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f score %.4f | %.0f s%s",
                     epoch, r["epochs"], row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"],
                     row["val_score"], row["seconds"], "  *best*" if improved else "")
        stop = torch.tensor([int(r["early_stop"] > 0 and stale >= r["early_stop"])], device=_comm(device))
        if world > 1:
            dist.broadcast(stop, 0)
        if stop.item():
            if rank == 0:
                log.info("early stopping: no better validation score for %d epochs", r["early_stop"])
                cfg["status"] = "stopped_early"
            break

    run["at"] = "during the final evaluation"
    if rank == 0:
        _final_evaluation(run_dir, cfg, cache, device)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def train_one_epoch(net, model, loader, augment, opt, sched, scaler, device, r, cw, ema, epoch, show, teacher=None,
                    amp=None):
    """One pass over the training set; ``net`` is what trains (``model``, wrapped for DDP or with a landmark head),
    ``model`` what the EMA follows; ``amp`` = (device type, dtype) trains under autocast."""
    net.train()
    size = epoch_size(r, epoch)
    tot_loss = tot_correct = n = 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{r['epochs']}", leave=False, disable=not show, unit="batch")
    for x, y, va, *lnd in bar:
        x = x.to(device, non_blocking=True)
        x, lnd = augment(x, points=lnd[0].to(device)) if lnd else (augment(x), None)
        if size < x.shape[-1]:  # landmarks are in [-1, 1] image coordinates: a resize leaves them as they are
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        y, va = y.to(device), va.to(device)
        lam, perm = 1.0, None
        if r.get("mixup", 0) > 0:
            lam = float(torch.distributions.Beta(r["mixup"], r["mixup"]).sample())
            perm = torch.randperm(len(y), device=x.device)
            x = lam * x + (1 - lam) * x[perm]
            va = lam * va + (1 - lam) * va[perm]  # NaN (not annotated) stays NaN and is masked
        elif r.get("cutmix", 0) > 0:
            perm = torch.randperm(len(y), device=x.device)
            x, lam = cutmix(x, perm, float(torch.distributions.Beta(r["cutmix"], r["cutmix"]).sample()))
            va = lam * va + (1 - lam) * va[perm]
        with torch.no_grad(), torch.autocast(*(amp or ("cpu",)), enabled=amp is not None):
            taught = teacher(x) if teacher is not None else None
        if taught is not None:
            va = torch.where(torch.isfinite(va), va, taught[1])  # the teacher's valence/arousal where none is known

        def forward_loss():
            with torch.autocast(*(amp or ("cpu",)), enabled=amp is not None):
                logits, va_pred, *lnd_pred = net(x)
                loss = multitask_loss(logits.float(), va_pred.float(), y, va, r, cw, taught)
                if lnd_pred:
                    loss = loss + r["landmark_weight"] * landmark_loss(lnd_pred[0].float(), lnd)
                if perm is not None:
                    loss = lam * loss + (1 - lam) * multitask_loss(logits.float(), va_pred.float(), y[perm], va, r,
                                                                   cw, taught)
            return loss, logits

        loss, logits = forward_loss()
        if not torch.isfinite(loss):  # diverged: every later step would only spread the NaN
            raise Diverged(f"the training loss became {loss.item()} in epoch {epoch}, batch {bar.n + 1}: the weights "
                           f"diverged; train again with a lower --lr (this run's: {r['lr']:g})")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if r.get("sam", 0) > 0:
            sam_second_pass(net, opt, scaler, forward_loss, r["sam"])  # adaptive (ASAM)
        scaler.step(opt)
        scaler.update()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        tot_loss += loss.item() * len(y)
        tot_correct += (logits.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)).sum().item()
        n += len(y)
        bar.set_postfix(loss=f"{tot_loss / n:.3f}", acc=f"{tot_correct / n:.3f}")
    if dist.is_initialized():  # every process's share of the epoch
        totals = torch.tensor([tot_loss, tot_correct, n], dtype=torch.float64, device=_comm(device))
        dist.all_reduce(totals)
        tot_loss, tot_correct, n = totals.tolist()
    return {"train_loss": tot_loss / max(n, 1), "train_acc": tot_correct / max(n, 1)}


def sam_second_pass(net, opt, scaler, forward_loss, rho: float, adaptive: bool = True) -> None:
    """Sharpness-aware minimisation's second pass: move the weights a step of size ``rho`` uphill along the gradient
    that the first backward pass left (a scaled gradient gives the same direction), take the gradient there, and
    move back; the optimizer then steps from the original weights with that gradient. ``adaptive`` (ASAM, Kwon et
    al., 2021) measures the step relative to each weight's size (|w| + 0.01, the paper's), so that layers of small
    weights are not pushed as far as the rest: plain SAM's step at rho 0.05 kept HSE's network at chance. Batch-norm
    statistics are not updated by this pass, which sees the moved weights."""
    params = [q for g in opt.param_groups for q in g["params"] if q.grad is not None]
    sizes = [q.detach().abs() + 0.01 if adaptive else 1.0 for q in params]
    scaled = [q.grad * t for q, t in zip(params, sizes)]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(a) for a in scaled]))
    if not torch.isfinite(norm) or norm == 0:  # an overflowing float16 step: leave it to the scaler to skip
        return
    with torch.no_grad():
        moves = [a * t * (rho / norm) for a, t in zip(scaled, sizes)]
        for q, e in zip(params, moves):
            q.add_(e)
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    opt.zero_grad(set_to_none=True)
    scaler.scale(forward_loss()[0]).backward()
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    with torch.no_grad():
        for q, e in zip(params, moves):
            q.sub_(e)


def cutmix(x: torch.Tensor, perm: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """CutMix (Yun et al., 2019): a box of about (1 - lam) of the area, at a random centre and clipped to the image,
    taken from the images ``x[perm]``. Returns the images and lam recomputed as the area each image keeps."""
    h, w = x.shape[-2:]
    cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return x, 1 - (y1 - y0) * (x1 - x0) / (h * w)


def epoch_size(r: dict, epoch: int) -> int:
    """Training image side for a (1-based) epoch: --img-size, or with --resize-from PX a ramp from PX at the first
    epoch to --img-size at two thirds of the epochs and after, rounded to a multiple of 8."""
    start, full = r.get("resize_from") or 0, r["img_size"]
    if not start or start >= full:
        return full
    full_from = round(r["epochs"] * 2 / 3)  # the first epoch at full size
    if full_from <= 1:
        return full
    t = min(1.0, (epoch - 1) / (full_from - 1))
    return min(full, int(round((start + t * (full - start)) / 8) * 8))


def multitask_loss(logits, va_pred, y, va_true, r, cw=None, taught=None):
    """Cross-entropy with label smoothing plus the valence/arousal loss on the annotated entries (NaN masked). With a
    teacher's (logits, valence/arousal), the cross-entropy shares ``kd_weight`` of its place with the distillation
    term: KL divergence to the teacher's probabilities at temperature T, times T^2 (Hinton et al., 2015)."""
    loss = F.cross_entropy(logits, y, weight=cw, label_smoothing=r["label_smoothing"])
    if taught is not None:
        w, t = r["kd_weight"], r["kd_temperature"]
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(taught[0] / t, 1), reduction="batchmean") * t * t
        loss = (1 - w) * loss + w * kd
    if r["va_weight"] > 0 and torch.isfinite(va_true).any():
        loss = loss + r["va_weight"] * va_loss(va_pred, va_true, r.get("va_loss", "mse"))
    elif dist.is_initialized():  # DDP needs every parameter in the graph: a zero gradient for the unused head
        loss = loss + 0.0 * va_pred.sum()
    return loss


def landmark_loss(pred, true):
    """Smooth L1 over the known landmark coordinates (NaN rows masked): in [-1, 1] units, about 1 px at 112 px is
    0.018, so the loss is near-linear beyond a couple of pixels."""
    mask = torch.isfinite(true)
    if not mask.any():
        return 0.0 * pred.sum() if dist.is_initialized() else pred.new_zeros(())  # DDP: the head stays in the graph
    return F.smooth_l1_loss(pred[mask], true[mask], beta=0.05)


def va_loss(pred, true, kind="mse"):
    """MSE and/or 1 - CCC. CCC is what the field reports for valence/arousal; MSE alone pulls predictions towards
    the mean (low variance, low CCC), which 1 - CCC penalises. Each dimension uses its own annotated rows."""
    mask = torch.isfinite(true)
    total = pred.new_zeros(())
    if "mse" in kind:
        total = total + F.mse_loss(pred[mask], true[mask])
    if "ccc" in kind:
        terms = []
        for j in range(true.shape[1]):
            m = mask[:, j]
            if m.sum() >= 2:
                p, t = pred[m, j], true[m, j]
                cov = ((p - p.mean()) * (t - t.mean())).mean()
                terms.append(1 - 2 * cov / (p.var(unbiased=False) + t.var(unbiased=False) + (p.mean() - t.mean()) ** 2 + 1e-8))
        if terms:
            total = total + torch.stack(terms).mean()
    return total


@torch.no_grad()
def validate(model, split_cache, cfg, device, r):
    images, samples = split_cache
    probs, va = predict_arrays(model, images, cfg["mean"], cfg["std"], device=device)
    y = torch.tensor([s.label for s in samples])
    p = torch.from_numpy(probs)
    out = {"val_loss": F.nll_loss(p.clamp_min(1e-8).log(), y).item(), "val_acc": (p.argmax(1) == y).float().mean().item()}
    vt = torch.tensor([[s.valence, s.arousal] for s in samples], dtype=torch.float32)
    mask = torch.isfinite(vt) & (r["va_weight"] > 0)  # --va-weight 0: an untrained head, neither scored nor selected by
    cccs = []
    for j, k in enumerate(("valence", "arousal")):
        if mask[:, j].any():
            t, q = vt[mask[:, j], j], torch.from_numpy(va)[mask[:, j], j]
            out["val_loss"] += r["va_weight"] * F.mse_loss(q, t).item() / 2
            out[f"val_{k}_rmse"] = (q - t).pow(2).mean().sqrt().item()
            out[f"val_{k}_ccc"] = ccc(t.numpy(), q.numpy())
            cccs.append(out[f"val_{k}_ccc"])
    out["val_score"] = selection_score(out["val_acc"], cccs)
    return out


# --------------------------------------------------------------------------- helpers
def _comm(device: str) -> str:
    """Where tensors for the processes' collectives live: on the GPU for NCCL, on the CPU for gloo (MPS too)."""
    return device if device.startswith("cuda") else "cpu"


def _init_distributed(device: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        # the other processes wait while the first validates every epoch and evaluates at the end: tens of thousands
        # of images on full AffectNet, which can outlast NCCL's default 10 minutes
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=timedelta(hours=1))
    return (dist.get_rank() if world > 1 else 0), world


def _device_label(args, world: int) -> str:
    return pick_device(args.device) + (f" x{world}" if world > 1 else "")


def _environment() -> dict:
    """What a run trains with besides its arguments: the code (its git commit where it is a checkout), the packages
    whose versions change numbers, the CPU and the threads its convolutions use."""
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    root = Path(__file__).resolve().parents[1]
    code = f"fer-lab {pkg('fer-lab') or '?'}, not a git checkout"
    if (root / ".git").exists():
        try:
            git = [["git", "-C", str(root), *a] for a in (["rev-parse", "HEAD"], ["status", "--porcelain", "-uno"])]
            head, changes = (subprocess.run(c, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
                             for c in git)
            code = f"git {head}" + (" with uncommitted changes" if changes else "")
        except (OSError, subprocess.SubprocessError):
            code = f"fer-lab {pkg('fer-lab') or '?'}, a git checkout whose commit git could not read"
    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name")) or cpu
    except (OSError, StopIteration):
        pass
    return {"code": code, "python": platform.python_version(),
            **{k: pkg(k) for k in ("torch", "torchvision", "numpy", "scikit-learn", "onnxruntime")},
            "cpu": cpu or platform.machine(), "threads": torch.get_num_threads()}


def _saved(run_dir: Path) -> dict:
    """The run's config.json as saved (its status: finished, stopped_early, stopped, failed, running; "diverged"),
    {} where unreadable."""
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _not_ours(run_dir: Path) -> list[str]:
    """Files in a folder without config.json that a training would write over, other than what a training cut off in
    its first epoch leaves there (train.log, which is appended to, and its own split.csv): another tool's, kept."""
    clash = [p.name for pattern in ("history.csv", "checkpoints", "predictions_*.csv", "metrics_*.json")
             for p in sorted(run_dir.glob(pattern))]
    if (run_dir / "split.csv").is_file():
        try:
            with open(run_dir / "split.csv", encoding="utf-8", errors="replace") as f:
                ours = f.readline().strip() == SPLIT_HEADER
        except OSError:
            ours = False
        if not ours:
            clash.append("split.csv")
    return clash


def _prepare_run(args, rank, world=1):
    """Resolve the recipe and the run folder; for --resume, read both back from the folder."""
    if args.resume:
        run_dir = Path(args.resume)
        if Path(args.resume).name == args.resume and not run_dir.is_dir():  # a bare run name: that run under --out
            run_dir = Path(args.out) / args.resume
        last = run_dir / "checkpoints" / "last.pt"
        if not run_dir.is_dir():
            import difflib

            near = difflib.get_close_matches(run_dir.name, [d.name for d in run_dir.parent.glob("*") if d.is_dir()]
                                             if run_dir.parent.is_dir() else [], n=1)
            raise Fail(f"cannot resume: no run folder {run_dir}" + (f" (did you mean {near[0]}?)" if near else ""))
        if not last.is_file():
            raise Fail(f"cannot resume: no checkpoint at {last}")
        if _saved(run_dir).get("diverged"):
            raise Fail(f"cannot resume {run_dir}: its training diverged, and from its last checkpoint it would again; "
                       "train a new run (another --name) with a lower --lr")
        ckpt = read_weights_file(last, "cannot resume")
        if rank == 0:  # the one process that writes the run folder
            _settle_best(run_dir / "checkpoints", ckpt["epoch"])
        cfg = ckpt["config"]
        differ = _differ_from_run(args, cfg)
        if differ:
            raise Fail(f"--resume continues {run_dir} with the settings it was started with, and these flags differ "
                       f"from them: {'; '.join(differ)}. Leave them out (only --epochs, --workers, --device and "
                       f"--data, a copy of the run's data, may change), or train a new run")
        if args.epochs and args.epochs < ckpt["epoch"]:
            raise Fail(f"--epochs {args.epochs}: {run_dir} has trained {ckpt['epoch']} epochs already, and --resume "
                       f"only trains a run longer: give --epochs {ckpt['epoch']} or more, or leave it out")
        status = _saved(run_dir).get("status")
        if status in ("finished", "stopped_early") and not (args.epochs and args.epochs > ckpt["epoch"]):
            raise Fail(f"{run_dir} has nothing left to train: it " + (f"finished its {ckpt['epoch']} epochs"
                       if status == "finished" else f"stopped early after epoch {ckpt['epoch']}")
                       + f"; --epochs N (more than {ckpt['epoch']}) with --resume trains it longer")
        if status == "stopped_early":  # asked to go on: its patience counts from here, not from its best epoch
            cfg["best"] = {**cfg.get("best", {}), "patience_from": ckpt["epoch"]}
        if args.epochs:
            cfg["args"]["epochs"] = args.epochs
        if args.workers is not None:
            cfg["args"]["workers"] = args.workers
        moved = {}
        if args.data and str(Path(args.data).resolve()) != cfg["data"]["root"]:  # a copy elsewhere: node-local staging
            if not Path(args.data).exists():
                raise Fail(f"data folder not found: {args.data}")
            moved = {"data": str(Path(args.data).resolve()), "data_before": cfg["data"]["root"]}
            cfg["data"]["root"] = moved["data"]
        here, before = _device_label(args, world), str(cfg.get("device"))
        if before.split(", then ")[-1].split(" from epoch")[0] != here:  # resumed elsewhere: each is said
            cfg["device"] = f"{before}, then {here} from epoch {ckpt['epoch'] + 1}"
        cfg["status"] = "running"
        cfg.setdefault("resumed", []).append({"from_epoch": ckpt["epoch"] + 1, "environment": _environment(), **moved})
        return run_dir, cfg, ckpt["epoch"] + 1, ckpt
    if not args.data:
        raise Fail("--data is required (a data folder or CSV manifest), unless you --resume a run")
    r = resolve(args.preset, {k: getattr(args, k) for k in RECIPE_KEYS})
    r["limit"] = args.limit
    r["exclude"] = str(Path(args.exclude).resolve()) if args.exclude else None
    if args.limit is not None and args.limit < 1:
        raise Fail(f"--limit must be a number of training images, 1 or more (got {args.limit})")
    if not Path(args.data).exists():
        raise Fail(f"data folder not found: {args.data}")
    default = PRESETS.get(args.preset, {}).get("weights")
    if default and args.weights is None and r["weights"] == default:
        first = Path(default).parts[-3]  # artifacts/runs/<stage-1 preset>/checkpoints/best.pt
        mine = Path(args.out) / first / "checkpoints" / "best.pt"  # the first stage trained with this --out, first
        if mine.is_file():
            r["weights"] = mine.as_posix()
        elif not Path(default).is_file():
            looked = " or ".join(dict.fromkeys([str(mine), default]))
            raise Fail(f"preset {args.preset} starts from the best checkpoint of a {first} run, and there is none at "
                       f"{looked}: train the {first} preset first (python -m fer_core.train --data PATH/TO/FERPLUS "
                       f"--preset {first} --name {first} --out {args.out}), or give --weights PATH")
    if r.get("mixup") and r.get("cutmix"):
        raise Fail("--mixup and --cutmix do not go together: choose one")
    if r.get("resize_from") and not 16 <= r["resize_from"] < r["img_size"]:
        raise Fail(f"--resize-from must lie between 16 and --img-size ({r['img_size']}) pixels, or be 0 "
                   f"(got {r['resize_from']})")
    if not 0 < r["first_layer_lr_mult"] <= 1:
        raise Fail(f"--first-layer-lr-mult must lie in (0, 1] (got {r['first_layer_lr_mult']})")
    for k, (allowed, ok) in LIMITS.items():  # flags or the preset: refused before they fail or mistrain mid-run
        if not ok(r[k]):
            raise Fail(f"--{k.replace('_', '-')} must {allowed} (got {r[k]})")
    if r["warmup_epochs"] >= r["epochs"]:
        raise Fail(f"--warmup-epochs {r['warmup_epochs']:g} must be fewer than the run's {r['epochs']} epochs: the "
                   f"learning rate would still be rising when training ends")
    if not r.get("teacher") and (args.kd_weight is not None or args.kd_temperature is not None):
        raise Fail(f"--{'kd-weight' if args.kd_weight is not None else 'kd-temperature'} sets how a student learns "
                   f"from its teacher: give --teacher RUN (the model to distil from), or leave it out")
    if r.get("teacher") and not _teacher_file(r["teacher"]).is_file():
        raise Fail(f"--teacher: no checkpoint at {_teacher_file(r['teacher'])} (give a run folder holding "
                   f"checkpoints/best.pt, or a .pt file)")
    if r.get("teacher") and not (0 <= r["kd_weight"] <= 1 and r["kd_temperature"] > 0):
        raise Fail(f"--kd-weight must lie in [0, 1] and --kd-temperature be above 0 (got {r['kd_weight']}, "
                   f"{r['kd_temperature']})")
    if r.get("extra_data") == "none":
        r["extra_data"], r["extra_count"] = None, 0
    if r.get("extra_count") and not r.get("extra_data"):
        raise Fail(f"this recipe trains on {r['extra_count']} images of a second data set besides --data: give "
                   f"--extra-data PATH (FER+ for the cpu-best preset), or --extra-data none to train without it")
    if r.get("extra_data") and not Path(r["extra_data"]).exists():
        raise Fail(f"--extra-data folder not found: {r['extra_data']}")
    if r.get("extra_data") and Path(r["extra_data"]).resolve() == Path(args.data).resolve():
        raise Fail("--extra-data is the --data folder itself: its validation and test images would leak into training")
    if args.fold and args.test_frac is not None:
        raise Fail("--fold K/N tests on the K-th of N folds, so --test-frac does not apply: give one of them")
    if args.split_from and (args.val_frac is not None or args.test_frac is not None):
        raise Fail(f"--split-from reuses the split of {args.split_from}, so --val-frac and --test-frac do not apply: "
                   f"give one or the other")
    if r["weights"] not in ("imagenet", "pretrained", "none") and not Path(_weights_file(r["weights"])).is_file():
        raise Fail(f"weights file not found: {r['weights']}" + (" (a folder without checkpoints/best.pt)"
                                                                if Path(r["weights"]).is_dir() else ""))
    r["weights"] = recorded_weights(r["weights"])  # read from any folder later: predict and evaluate look for the
    # training images of the run it started from
    layout = fdata.detect_layout(args.data) if args.layout == "auto" else args.layout
    name = args.name or _auto_name(args.preset or r["backbone"], Path(args.out))
    try:
        exists = (Path(args.out) / name / "config.json").exists()
    except OSError as e:  # a name too long for the file system
        raise Fail(f"cannot make the run folder {Path(args.out) / name}: {e.strerror or e}") from None
    if dist.is_initialized():  # every process writes to (and reads from) the first's folder, and stops when it stops
        shared = [name, exists]
        dist.broadcast_object_list(shared, 0)
        name, exists = shared
    run_dir = Path(args.out) / name
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    if exists and restarts not in ("", "0") and args.name and (run_dir / "checkpoints" / "last.pt").is_file():
        if _saved(run_dir).get("status") in ("finished", "stopped_early"):  # a later step of the job script was cut off
            raise AlreadyDone(f"note: SLURM requeued this job (restart {restarts}), and {run_dir} finished before: "
                              "nothing to train")
        print(f"note: SLURM requeued this job (restart {restarts}): resuming {run_dir}", file=sys.stderr)
        args.resume = str(run_dir)  # the job script runs the command it started with: it goes on where it stopped
        return _prepare_run(args, rank, world)
    if exists:
        raise Fail(f"run folder {run_dir} exists already: choose another --name, or --resume it", everywhere=True)
    if clash := _not_ours(run_dir):
        raise Fail(f"{run_dir} holds {', '.join(clash)} but no config.json: it is no run to --resume, and training "
                   f"would write over them; choose another --name, or move them", everywhere=True)
    problem = unwritable_folder(run_dir)
    if problem:
        raise Fail(f"cannot make the run folder {run_dir} (--out {args.out}): it {problem}")
    cfg = {
        "schema_version": SCHEMA_VERSION, "name": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": r["backbone"], "img_size": r["img_size"], "classes": CLASSES, "preset": args.preset,
        "data": {"root": str(Path(args.data).resolve()), "layout": layout, "skipped": {}},
        "split": {"seed": r["seed"], "val_frac": r["val_frac"], "test_frac": r["test_frac"]},
        "args": r, "device": _device_label(args, world),
        "hardware": f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}"
                    + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""),
        "environment": _environment(),
        "status": "running", "train_minutes": 0.0,
    }
    if r["backbone"] in REGISTERED:  # code from outside FER Lab: which module, so the run can be built again
        cfg["plugin"] = REGISTERED[r["backbone"]][4]
    return run_dir, cfg, 1, None


def _differ_from_run(args, cfg: dict) -> list[str]:
    """The flags given with --resume that differ from the run's own settings, each as 'flag value (the run's: x)'."""
    ran = cfg["args"]
    split = cfg.get("split", {})
    given = {k: (getattr(args, k), ran.get(k)) for k in [*RECIPE_KEYS, "limit", "exclude"]
             if k not in ("epochs", "workers") and getattr(args, k) is not None}
    if "exclude" in given:  # as the run recorded it: the file's absolute path
        given["exclude"] = (str(Path(args.exclude).resolve()), ran.get("exclude"))
    if "weights" in given:  # a whole path, however either was typed (runs before that recorded it as typed)
        given["weights"] = (recorded_weights(args.weights), recorded_weights(ran.get("weights")))
    if given.get("extra_data", ("",))[0] == "none":
        given["extra_data"] = (None, ran.get("extra_data"))
    if args.layout != "auto":
        given["layout"] = (args.layout, cfg["data"]["layout"])
    for k in ("preset", "name"):
        if getattr(args, k):
            given[k] = (getattr(args, k), cfg.get(k))
    if args.split_from:
        given["split_from"] = (f"run:{Path(args.split_from).name}", split.get("source"))
    if args.fold:
        given["fold"] = ("%d/%d" % args.fold, f"{split['fold']}/{split['folds']}" if "fold" in split else None)
    return [f"--{k.replace('_', '-')} {mine} (the run's: {theirs})" for k, (mine, theirs) in given.items()
            if mine != theirs]


def _weights_file(weights: str) -> str:
    """--weights as build_model takes it: a run folder (recorded as given) means its checkpoints/best.pt."""
    own = Path(weights) / "checkpoints" / "best.pt"
    return str(own) if weights not in ("imagenet", "pretrained", "none") and own.is_file() else weights


def _teacher_file(path) -> Path:
    p = Path(path)
    return p / "checkpoints" / "best.pt" if p.is_dir() else p


def _excluded(path: str, index, by_split: dict, cfg: dict) -> list:
    """The training part without the images the --exclude CSV names (by id or path, as tables.match_rows reads
    it); what was left out is recorded under cfg["split"]["excluded"]. Val and test images stay where they are."""
    from .tables import TableError, match_rows, read_table

    try:
        rows, _ = match_rows(read_table(path, f"--exclude {path}"), [s.id for s in index.samples],
                             [s.path for s in index.samples], index.root, f"--exclude {path}")
    except TableError as e:
        raise Fail(str(e)) from None
    named = {index.samples[i].id for i in rows if i >= 0}
    train = [s for s in by_split["train"] if s.id not in named]
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    cfg["split"]["excluded"] = {"file": path, "sha256": digest, "rows": len(rows),
                                "left_out": len(by_split["train"]) - len(train), "not_found": sum(i < 0 for i in rows),
                                "kept_held_out": sum(s.id in named for k in ("val", "test") for s in by_split[k])}
    if not train:
        raise Fail(f"--exclude {path} names every training image: nothing left to train on")
    return train


def _split(args, cfg, index, run_dir):
    cfg["data"].update(has_va=index.has_va, n_samples=len(index.samples), layout=index.layout)
    cfg["data"]["skipped"].update(index.skipped)
    src = args.split_from if not args.resume else None
    if args.resume:
        return saved_split(run_dir)
    if src:
        if Path(src).name == src and not Path(src).is_dir():  # a bare run name: that run under --out, as --resume
            src = str(Path(args.out) / src)
        f = Path(src) / "split.csv"
        if not f.is_file():
            raise Fail(f"--split-from: no split.csv in {src}")
        assignment = saved_split(src)
        if not any(s.id in assignment for s in index.samples):
            raise Fail(f"--split-from: the split.csv of {src} shares no image ids with this data ({index.root}, "
                       f"{index.layout} layout): it was made on other data")
        outside = sum(assignment.get(s.id) not in ("train", "val", "test") for s in index.samples)
        if outside:
            cfg["split"]["outside_source"] = outside
        cfg["split"]["source"] = f"run:{Path(src).name}"
        try:  # the seed and fractions that made that split, not this run's own
            made = json.loads((Path(src) / "config.json").read_text()).get("split") or {}
            cfg["split"].update({k: made[k] for k in ("seed", "val_frac", "test_frac") if k in made})
        except (OSError, ValueError):
            pass
    else:
        predefined = {s.split for s in index.samples} if fdata.has_predefined_split(index) else set()
        for flag, split in (("test_frac", "test"), ("val_frac", "val")):
            if split in predefined and getattr(args, flag) is not None:
                raise Fail(f"{index.root} has its own {split} split ({index.layout} layout), so "
                           f"--{flag.replace('_', '-')} does not apply: leave it out")
        assignment = fdata.make_split(index, cfg["split"]["val_frac"], cfg["split"]["test_frac"], cfg["split"]["seed"],
                                      fold=args.fold)
        cfg["split"]["source"] = "predefined" if predefined else "stratified"
        if args.fold:
            k, n = args.fold
            cfg["split"].update(source="fold", fold=k, folds=n, test_frac=round(1 / n, 4))  # the K-th of N folds
    return assignment


def _add_extra(train_cache, cfg, r, rank, root, held_out):
    """Append --extra-data's training images (all, or a seeded random ``extra_count`` of them) to the training set,
    leaving out any that are this run's validation or test images (``held_out``, under ``root``) or copies of them."""
    index = fdata.read_dataset(r["extra_data"])
    pool = [s for s in index.samples if s.split in (None, "train")]
    same = fdata.copies_of(pool, index.root, [Path(root) / s.path for s in held_out])
    if same:
        pool = [s for s in pool if s.id not in same]
        log.warning("left out %d --extra-data images that are this run's validation or test images (the same files, "
                    "or copies): training on them would leak them", len(same))
    random.Random(r["seed"]).shuffle(pool)
    pool = pool[: r["extra_count"]] if r["extra_count"] else pool
    train_images, train_samples = train_cache
    keep = not isinstance(train_images, LazyImages) and fits_in_memory(len(train_samples) + len(pool), r["img_size"],
                                                                       _local_processes())
    if not keep and not isinstance(train_images, LazyImages):  # together they would not fit: both as they are used
        log.info("training images are decoded as they are used, not held in memory: with --extra-data's they would "
                 "take over half of this machine's memory")
        train_images = LazyImages([Path(root) / s.path for s in train_samples], r["img_size"])
    (images, samples), _ = _decode(index.root, pool, r["img_size"], rank, "extra", keep)
    cfg["data"]["extra"] = {"root": str(index.root.resolve()), "layout": index.layout, "n_train": len(samples),
                            "has_va": index.has_va}
    log.info("added %d training images from %s (%s layout)", len(samples), r["extra_data"], index.layout)
    return (train_images + images if not keep else torch.cat([train_images, images])), train_samples + samples


class Teacher:
    """A trained model that predicts on each augmented training batch (normalised for the student) for the student to
    learn from; its own normalisation and input size are applied first."""

    def __init__(self, model, cfg, student_cfg):
        self.model, self.size = model.eval(), cfg["img_size"]
        self.has_va = trained_with_va(cfg)  # an untrained valence/arousal head teaches nothing: NaN, as unannotated
        stats = [torch.tensor(c[k]).view(1, 3, 1, 1) for c in (student_cfg, cfg) for k in ("mean", "std")]
        self.scale, self.shift = stats[1] / stats[3], (stats[0] - stats[2]) / stats[3]

    @torch.no_grad()
    def __call__(self, x):
        x = x * self.scale.to(x.device) + self.shift.to(x.device)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        logits, va = self.model(x)
        return logits.float(), va.float() if self.has_va else torch.full_like(va, float("nan"), dtype=torch.float32)


def _load_teacher(path, index, by_split, cfg, device):
    """The --teacher model; refuses one that trained on this run's validation or test images, or chose its epoch by
    its test images: its predictions would carry them into training."""
    from .inference import ModelNotFound, load_checkpoint

    f = _teacher_file(path)
    if not f.is_file():
        raise Fail(f"--teacher: no checkpoint at {f} (give a run folder holding checkpoints/best.pt, or a .pt file)")
    try:
        model, tcfg = model_from_checkpoint(load_checkpoint(f))
    except ModelNotFound as e:
        raise Fail(f"--teacher: {e}") from None
    run = f.parent.parent if f.parent.name == "checkpoints" and (f.parent.parent / "split.csv").is_file() else None
    if run is None:
        log.warning("--teacher %s: no split.csv beside it, so it cannot be checked for having trained on this run's "
                    "validation or test images", path)
    elif same_data(index, Path(cfg["data"]["root"]), Path(tcfg["data"]["root"]), run):
        theirs = saved_split(run)
        ours = {s.id: k for k in ("val", "test") for s in by_split[k]}
        # it must not have trained on our validation or test images, nor chosen its epoch by our test images
        leak = sorted(i for i, k in ours.items() if theirs.get(i) == "train" or (k, theirs.get(i)) == ("test", "val"))
        if leak:
            raise Fail(f"--teacher {path} trained on (or chose its epoch by) {len(leak)} of this run's held-out "
                       f"images (id {leak[0]}, ...): distilling from it would leak them into training. Use a teacher "
                       f"trained on this run's split (--split-from the teacher's run, or the same --fold)")
    cfg["teacher"] = {"path": str(f), "backbone": tcfg["backbone"], "img_size": tcfg["img_size"]}
    log.info("distilling from %s (%s, %d px; weight %g, temperature %g)", f, tcfg["backbone"], tcfg["img_size"],
             cfg["args"]["kd_weight"], cfg["args"]["kd_temperature"])
    return Teacher(model.to(device), tcfg, cfg)


def _near_copies(root, cache, cfg) -> None:
    """Warn of validation and test images that are near-copies of training images (duplicates.py; FER+: 456 of its
    3,371 test images copy a training image), --extra-data's included, and record how many in config.json: the
    figures on them flatter the model. Compared as scripts/find_duplicates.py compares them, from the files."""
    base, extra = fdata.images_root(root), cfg["data"].get("extra")
    files = {k: [base / s.path for s in samples] for k, (_, samples) in cache.items()}
    if extra and extra["n_train"]:  # _add_extra appended them, under their own folder
        files["train"][-extra["n_train"]:] = [Path(extra["root"]) / s.path
                                              for s in cache["train"][1][-extra["n_train"]:]]
    t0 = time.time()
    found = duplicates.held_out_copies({k: duplicates.file_fingerprints(v)[0] for k, v in files.items()})
    cfg["split"]["near_copies"] = {k: len(v) for k, v in found.items()}
    log.info("checked the validation and test images for near-copies of training images in %.1f s",
             time.time() - t0)
    if any(found.values()):
        log.warning("warning: %s are near-copies of training images (the same photo, perhaps re-encoded, resized, "
                    "recoloured or mirrored): the figures on those parts are a little optimistic, as they are for "
                    "anyone using this split. scripts/find_duplicates.py lists them, and writes their training "
                    "copies for --exclude", " and ".join(f"{len(v)} of the {len(cache[k][1])} {k} images"
                                                        for k, v in found.items() if v))


def _local_processes() -> int:
    """Training processes on this machine (torchrun sets LOCAL_WORLD_SIZE): they share its memory."""
    return int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1)


def _decode(root, samples, size, rank, what="", keep=True):
    """((uint8 images, the samples that decoded), number that did not); each unreadable image is logged. ``keep``:
    held in memory, otherwise LazyImages."""
    images, ok, failures = fdata.decode_images(root, samples, size, progress=rank == 0, what=what, keep=keep)
    for path, why in failures:
        log.warning("unreadable image skipped: %s (%s)", path, why)
    return (images, [samples[i] for i in ok]), len(failures)


def _dataset(split_cache, soft=False, landmarks=False):
    """Targets are class indices, or with ``soft`` each image's vote distribution (one-hot for images without); with
    ``landmarks`` also each image's [68, 2] landmarks (NaN for images without, e.g. --extra-data's)."""
    images, samples = split_cache
    voted = sum(s.votes is not None for s in samples)
    if soft and voted:
        one_hot = np.eye(NUM_CLASSES, dtype=np.float32)
        labels = torch.tensor(np.array([s.votes if s.votes is not None else one_hot[s.label] for s in samples],
                                       dtype=np.float32))
        if voted < len(samples):
            log.info("--soft-labels: %d of %d training images have a vote distribution (FER+'s); the other %d train "
                     "on their single label", voted, len(samples), len(samples) - voted)
    else:
        if soft:
            log.warning("--soft-labels: none of the training images has a vote distribution (FER+'s images have); "
                        "training on the single labels")
        labels = torch.tensor([s.label for s in samples], dtype=torch.long)
    va = torch.tensor([[s.valence, s.arousal] for s in samples], dtype=torch.float32)
    lnd = None
    if landmarks:
        none = np.full((68, 2), np.nan, np.float32)
        lnd = torch.from_numpy(np.stack([none if s.landmarks is None else s.landmarks for s in samples]))
    return CachedDataset(images, labels, va, lnd)


def _param_groups(model, r):
    """The heads at --lr x --head-lr-mult; the backbone at --lr, or with --first-layer-lr-mult M one group per layer
    (per module that holds parameters, in order), from M x --lr at the first to --lr at the last."""
    heads = ("expression.", "va.", "landmarks.", "model.expression.", "model.va.")
    head = [p for n, p in model.named_parameters() if n.startswith(heads)]
    head_group = {"params": head, "lr": r["lr"] * r["head_lr_mult"]}
    m = r.get("first_layer_lr_mult", 1.0)
    if m == 1:
        return [{"params": [p for n, p in model.named_parameters() if not n.startswith(heads)]}, head_group]
    layers = {}  # module name -> its parameters, in the order the network holds them
    for n, p in model.named_parameters():
        if not n.startswith(heads):
            layers.setdefault(n.rpartition(".")[0], []).append(p)
    depth = max(len(layers) - 1, 1)
    return [*({"params": ps, "lr": r["lr"] * m ** (1 - i / depth)} for i, ps in enumerate(layers.values())),
            head_group]


def _cpu_bf16(r, device) -> bool:
    """Whether to train under bfloat16 autocast: asked for, on a CPU that computes it natively."""
    if not r.get("bf16") or device != "cpu":
        return False
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        log.warning("--bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where it would be slower than "
                    "float32; training in float32")
        return False
    return True


def _ema_model(model, decay):
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _eval_model(model, ema):
    """The weights to save and evaluate: the EMA copy when there is one."""
    return ema.module if ema is not None else model


def _save(run_dir, cfg, history, model, ema, opt, sched, epoch, best, improved, trained=None, scaler=None):
    """The epoch's checkpoints, then history.csv and config.json, which tell readers an epoch is done: a run stopped
    between the two can still be resumed, from last.pt and the history it holds. A new best.pt is written as
    best.next.pt and takes best.pt's place once last.pt is written, so that best.pt never holds an epoch last.pt
    does not (_settle_best finishes or drops that step for a run stopped in between)."""
    state = {"model": _eval_model(model, ema).state_dict(), "config": copy.deepcopy(cfg), "epoch": epoch, "best": best}
    ckpts = run_dir / "checkpoints"
    if improved:
        atomic_torch_save(ckpts / "best.next.pt", state)
    table = pd.DataFrame(history)
    state.update(optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                 history_csv=table.to_csv(index=False, lineterminator="\n"))
    if ema is not None:
        state.update(model=model.state_dict(), ema=ema.state_dict())
    if isinstance(trained, WithLandmarks):  # to resume with it; best.pt keeps only the model
        state["landmark_head"] = trained.landmarks.state_dict()
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    atomic_torch_save(ckpts / "last.pt", state)
    if improved:
        replace(ckpts / "best.next.pt", ckpts / "best.pt")
    atomic_write_csv(run_dir / "history.csv", table)
    atomic_write_json(run_dir / "config.json", cfg)


def _settle_best(ckpts: Path, epoch: int) -> None:
    """For a run stopped while an epoch was saved: a best.next.pt of the epoch last.pt holds becomes best.pt; one of
    a later epoch (stopped while last.pt was written) is dropped with that epoch."""
    nxt = ckpts / "best.next.pt"
    if nxt.is_file():
        if read_weights_file(nxt, "cannot resume")["epoch"] == epoch:
            replace(nxt, ckpts / "best.pt")
        else:
            nxt.unlink()


def _resumed_history(run_dir, ckpt) -> list[dict]:
    """The epochs last.pt holds: its own copy of the history, or (a checkpoint from before it kept one) history.csv
    up to its epoch."""
    f = io.StringIO(ckpt["history_csv"]) if "history_csv" in ckpt else run_dir / "history.csv"
    if not isinstance(f, io.StringIO) and not f.is_file():
        return []
    return [row for row in pd.read_csv(f).to_dict("records") if row["epoch"] <= ckpt["epoch"]]


def _final_evaluation(run_dir, cfg, cache, device):
    """Predictions and metrics of the best checkpoint on val and test."""
    best = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    model, _ = build_model(cfg["backbone"], "none")
    model.load_state_dict(best["model"])
    model.to(device).eval()
    tta = cfg["args"]["tta"]
    for split in ("val", "test"):
        images, samples = cache[split]
        if not samples:
            continue
        probs, va = predict_arrays(model, images, cfg["mean"], cfg["std"], device=device, tta=tta)
        if not trained_with_va(cfg):  # an untrained head's numbers are noise: left empty, as evaluate leaves them
            va = np.full_like(va, np.nan)
        df = predictions_frame(samples, probs, va)
        ferplus = cfg["data"]["layout"] == "ferplus" and ferplus_paper_rule(df, cfg["data"]["root"])
        m = write_evaluation(run_dir, split, df, data_root=cfg["data"]["root"], layout=cfg["data"]["layout"],
                             checkpoint="best.pt", tta=tta,
                             **({"ferplus_paper_rule": ferplus} if ferplus else {}))
        log.info("%s (best epoch %d, n=%d%s): %s", split, best["epoch"], m["n"],
                 ", flip TTA: each image averaged with its mirror, unlike the epochs' lines" if tta else "",
                 summary_line(m))
        if ferplus:
            log.info("%s %s", split, paper_rule_line(ferplus))
    if cfg["status"] == "running":
        cfg["status"] = "finished"
    atomic_write_json(run_dir / "config.json", cfg)
    log.info("run folder: %s  (%.1f min of training)", run_dir, cfg["train_minutes"])
    shown = any(run_dir.resolve().parent == Path(d).resolve() for d in runs_dirs_from_env())
    where = "" if shown else f"FER_LAB_RUNS_DIR={shlex.quote(str(run_dir.parent.resolve()))} "
    app = REPO_ROOT / "app.py"  # named whole where the command ran in another folder
    app = "app.py" if Path("app.py").resolve() == app else shlex.quote(str(app))
    log.info("next: the dashboard shows it (%sstreamlit run %s); python -m fer_core.evaluate --run %s --data "
             "OTHER_DATA scores it on other data", where, app, shlex.quote(str(run_dir)))


def _auto_name(base: str, out: Path) -> str:
    """BASE-YYYYmmdd-HHMMSS for a run without --name. The tasks of a SLURM array job start in the same second, so
    each adds its task id; a folder of that name there already (a run started in the same second) adds a count."""
    name = f"{base}-{datetime.now():%Y%m%d-%H%M%S}"
    if os.environ.get("SLURM_ARRAY_TASK_ID"):
        name += f"-task{os.environ['SLURM_ARRAY_TASK_ID']}"
    return next(n for n in itertools.chain([name], (f"{name}-{k}" for k in itertools.count(2)))
                if not (out / n).exists())


def _resume_folder(run_dir: Path, cfg: dict, assignment: dict, index) -> None:
    """A resumed run's folder, once claimed: the dashboard shows a stopped or failed run training from now on (not
    stopped until its first new epoch ends), the temp files of a write that a kill cut short go, and images of its
    split no longer in the data are named: its later epochs are trained and measured without them."""
    saved = _saved(run_dir)  # a finished run trained longer stays finished until an epoch is added
    if saved.get("status") in ("stopped", "failed"):
        atomic_write_json(run_dir / "config.json", {**saved, "status": "running"})
    if moved := cfg["resumed"][-1].get("data"):
        log.info("the data is at %s now (it was at %s)", moved, cfg["resumed"][-1]["data_before"])
    written = ("config.json", "history.csv", "split.csv", "last.pt", "best.pt", "best.next.pt")  # training's own files
    for tmp in [f for d in (run_dir, run_dir / "checkpoints") for w in written for f in d.glob(f".{w}.*.tmp")]:
        tmp.unlink(missing_ok=True)
    here = {s.id for s in index.samples}
    gone = [i for i, part in assignment.items() if part in ("train", "val", "test") and i not in here]
    if gone:
        log.warning("%d images of this run's split are not in %s now (e.g. %s): its next epochs train and validate "
                    "without them, so they are not measured on quite the same images as its first", len(gone),
                    cfg["data"]["root"], gone[0])


def _make_run_dir(run_dir: Path, auto: bool = False) -> tuple[Path, list[Path]]:
    """Make the run folder and claim it for this process (_claim); returns it and the folders this process made,
    uppermost first (removed again if the run fails before its first epoch ends; none where the run folder was there
    already). ``auto``: its name was chosen by the clock (_auto_name), so where another run started in the same second
    has made that folder since, this run takes the next count (NAME-2, NAME-3, ...) instead of stopping."""
    first, made = run_dir, []
    try:
        for d in [*reversed(run_dir.parents), run_dir]:  # one at a time: what another run made is not ours to remove
            try:
                d.mkdir()
                made.append(d)
            except FileExistsError:
                pass
        for k in itertools.count(2):
            if not auto or run_dir in made:
                break
            run_dir = first.with_name(f"{first.name}-{k}")
            try:
                run_dir.mkdir()
                made.append(run_dir)
            except FileExistsError:
                pass
        _claim(run_dir)
        (run_dir / "train.log").open("a").close()
    except OSError as e:
        _remove_made(made, run_dir)
        raise Fail(f"cannot make the run folder {run_dir} (--out {run_dir.parent}): {e.strerror or e}") from None
    return run_dir, made


def _remove_made(made: list[Path], run_dir: Path) -> None:
    """Remove what _make_run_dir made: the run folder, where it made it, and the folders above it where they are
    still empty (another run may have put its own folder there meanwhile)."""
    for d in reversed(made):
        if d == run_dir:
            shutil.rmtree(d, ignore_errors=True)
        else:
            try:
                d.rmdir()
            except OSError:
                break


CLAIM_WRITE_S = 5  # seconds an empty claim file is waited on: one being written, until then, not one left empty


def _claim(run_dir: Path) -> None:
    """Mark the run folder as trained by this process (runs.CLAIM: its id and host); Fail where another live process
    trains it (two trainings started into one --out and --name would write over each other's checkpoints and log). A
    claim left by a process of this machine that is gone is taken over, and so is one left by this SLURM job (a
    requeued job keeps its id, and may start on another node)."""
    claim = run_dir / CLAIM
    job = os.environ.get("SLURM_JOB_ID")
    empty_since = None
    while True:
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            held = claim_holder(run_dir)
            if held is None and time.monotonic() - (empty_since := empty_since or time.monotonic()) < CLAIM_WRITE_S:
                time.sleep(0.05)  # a claim that says nothing yet may be one made this moment, its id not yet written
                continue
            here = held is not None and held[1] == socket.gethostname()
            if held and job and claim_job(run_dir) == job and held[0] != os.getpid() and not (
                    here and process_alive(held[0])):
                log.info("taking over %s from process %s on %s: the same SLURM job %s, requeued", claim, *held, job)
            elif held and not here:
                raise Fail(f"{run_dir} is being trained by process {held[0]} on {held[1]}; if that training has "
                           f"ended, remove {claim}") from None
            elif held and held[0] != os.getpid() and process_alive(held[0]):
                raise Fail(f"{run_dir} is being trained by process {held[0]} (a training into the same --out and "
                           f"--name): wait for it to end, or stop it first, or give each run its own --name; if "
                           f"process {held[0]} is no training (its number reused since a restart), remove {claim}"
                           ) from None
            claim.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}" + (f" {job}" if job else ""))
        return


def _release(run_dir: Path | None) -> None:
    """Remove this process's claim on the run folder."""
    if run_dir and (claim_holder(run_dir) or (None,))[0] == os.getpid():
        (run_dir / CLAIM).unlink(missing_ok=True)


def _close_log():
    for h in list(log.handlers):
        if isinstance(h, logging.FileHandler):
            h.close()
            log.removeHandler(h)


def _setup_logging(run_dir):
    """Messages to stderr and, given the run folder, train.log; the other processes of a distributed run (no run
    folder) say only their errors, not the first process's lines again."""
    log.setLevel(logging.INFO if run_dir is not None else logging.ERROR)
    log.handlers.clear()
    log.propagate = False
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(h)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(run_dir / "train.log", encoding="utf-8")  # not the locale's code page (Windows)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)


def _quiet_worker(_):
    """DataLoader workers leave Ctrl-C, SLURM's SIGUSR1, SIGHUP and a first SIGTERM to the training process, which stops
    them after saving: SLURM and a terminal signal every process of the job at once."""
    on_signals(signal.SIG_IGN, ("SIGINT", "SIGUSR1", "SIGHUP"))
    if hasattr(signal, "SIGALRM"):  # POSIX
        signal.signal(signal.SIGTERM, _worker_sigterm)


def _worker_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one (the loader ending a stuck worker) ends it at once
    signal.alarm(15)  # and this one in 15 s: time for the trainer to stop, never a worker that outlives it


STOPS = ("SIGTERM", "SIGUSR1", "SIGHUP")  # the signals that stop a training as Ctrl-C does


def _on_sigterm(signum, frame):
    on_signals(signal.SIG_IGN, STOPS)  # a second one (sent to the job's group and passed on too) waits its turn
    raise Interrupted(signum)


def cli():
    """The command: a job ended (SIGTERM), SLURM's --signal=USR1@SECONDS warning before its time limit and a terminal
    closed (SIGHUP; not under nohup) stop it as Ctrl-C does, saved and resumable."""
    on_signals(_on_sigterm, STOPS)
    sys.exit(main(get_args_parser().parse_args()))


if __name__ == "__main__":
    cli()
