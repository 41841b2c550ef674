"""Score an ensemble of runs on a split (test unless --split says otherwise): their predictions averaged (class
probabilities and valence/arousal), and with --soup also one model whose weights are the runs' weights averaged (a
uniform "model soup": the runs must share a backbone, and should start from the same checkpoint). Prints each member's
scores with the ensemble's paired difference in accuracy from it (95% bootstrap interval, McNemar's exact p), then the
ensemble's; each line names the split it scores. Only the images all members predicted are scored, each member's line
on them too ("n=320 of 3199": shared, then the member's own count), and a warning says how many were left out.

    python scripts/ensemble.py artifacts/runs/A artifacts/runs/B [...] [--split test] [--soup]
    python scripts/ensemble.py A-fold1,A-fold2,A-fold3 B-fold1,B-fold2,B-fold3 --split test   # folds pooled
    python scripts/ensemble.py artifacts/runs/A artifacts/runs/B --out artifacts/runs/A+B     # a folder the dashboard shows

A comma-separated member stands for several runs' predictions taken together (the folds of one cross-validation);
two cross-validations with the same folds then ensemble on every image.

--out DIR writes the ensemble's predictions and metrics on every split all members predicted, and a config.json
(status "ensemble") whose train_minutes add up every stage of every member, a stage members share once: each run,
and the runs whose checkpoints it started from (a FER+ stage), as far as their folders are at hand; and, where all
members share one split.csv, that split. `python -m fer_core.export --run DIR` then makes the ensemble one ONNX model.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fer_core.calibrate import stale_temperature  # noqa: E402
from fer_core.io import atomic_write_bytes, atomic_write_json, unwritable_folder, whole_folder  # noqa: E402
from fer_core.metrics import (PROB_COLS, align_predictions, compute_metrics, format_p, hard_answers,  # noqa: E402
                              paired_comparison, summary_line, write_evaluation)
from fer_core.runs import (load_predictions, run_list, run_predictions, runs_label, scored_data,  # noqa: E402
                           stages_minutes, training_precision, training_stages)

AVERAGED = PROB_COLS + ["valence_pred", "arousal_pred"]


def averaged_predictions(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The members' rows for the ids all of them predicted, with probabilities averaged, and valence/arousal over
    the members that give them (a member trained without them leaves them empty)."""
    rows = align_predictions(tables)
    out = rows[0].copy()
    for col in AVERAGED:
        values = np.array([r[col].to_numpy(dtype=float) for r in rows])
        given = np.isfinite(values).sum(axis=0)
        out[col] = np.where(given > 0, np.nansum(values, axis=0) / np.maximum(given, 1), np.nan)
    out["pred"] = out[PROB_COLS].to_numpy().argmax(1)
    return out


def soup_predictions(run_dirs: list[Path], split: str) -> pd.DataFrame:
    """Predictions on the first run's split of one model with the runs' best.pt weights averaged."""
    from fer_core import data as fdata
    from fer_core.evaluate import evaluate_samples, saved_split
    from fer_core.inference import ModelNotFound, load_checkpoint
    from fer_core.models import model_from_checkpoint

    missing = [str(d / "checkpoints" / "best.pt") for d in run_dirs if not (d / "checkpoints" / "best.pt").is_file()]
    if missing:
        raise ValueError(f"--soup needs each run's checkpoint (run folders in artifacts/ ship without them); "
                         f"missing: {', '.join(missing)}")
    try:
        ckpts = [load_checkpoint(d / "checkpoints" / "best.pt") for d in run_dirs]
    except ModelNotFound as e:  # damaged, or not a checkpoint: its one line, not a traceback
        raise ValueError(str(e)) from None
    backbones = {c["config"]["backbone"] for c in ckpts}
    if len(backbones) > 1:
        raise ValueError(f"a soup needs one backbone; these runs have {', '.join(sorted(backbones))}")
    model, cfg = model_from_checkpoint(ckpts[0])
    state = {k: (sum(c["model"][k] for c in ckpts) / len(ckpts) if v.is_floating_point() else v)
             for k, v in ckpts[0]["model"].items()}
    model.load_state_dict(state)
    index = fdata.read_dataset(cfg["data"]["root"], cfg["data"]["layout"])
    assignment = saved_split(run_dirs[0])
    samples = [s for s in index.samples if assignment.get(s.id) == split]
    df, _ = evaluate_samples(model, cfg, index.root, samples, tta=bool(cfg.get("args", {}).get("tta")))
    return df


def recorded_path(run: Path) -> str:
    """How config.json names a member run: relative to the project root when inside it, else absolute (so that
    fer_core.export finds it from wherever it runs)."""
    run = Path(os.path.abspath(run))
    return (run.relative_to(ROOT) if run.is_relative_to(ROOT) else run).as_posix()  # alike on every system


def write_ensemble(out: Path, run_dirs: list[Path]) -> list[str]:
    """The ensemble of single runs as a folder the dashboard reads; returns the splits written."""
    configs = [json.loads((d / "config.json").read_text(encoding="utf-8")) for d in run_dirs]
    splits = sorted(set.intersection(*({p.stem[len("predictions_"):] for p in d.glob("predictions_*.csv")}
                                       for d in run_dirs)))
    if not splits:
        raise ValueError("the runs have no split that all of them predicted")
    frames = {s: averaged_predictions([load_predictions(d / f"predictions_{s}.csv") for d in run_dirs]) for s in splits}
    members = [{"run": recorded_path(d), "stages": training_stages(d)} for d in run_dirs]
    first = configs[0]
    splits_csv = {(d / "split.csv").read_bytes() if (d / "split.csv").is_file() else None for d in run_dirs}
    one_split = len(splits_csv) == 1 and None not in splits_csv  # one split for all: the model knows its test images
    config = {
        "schema_version": first["schema_version"], "name": out.resolve().name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "ensemble",
        "backbone": " + ".join(str(c.get("backbone")) for c in configs), "classes": first["classes"],
        "weights": {"requested": "ensemble", "loaded": "mean of the predictions of " + ", ".join(d.name for d in run_dirs)},
        "data": first.get("data"), "hardware": first.get("hardware"),
        "split": first.get("split") if one_split else {"source": "the images all members predicted",
                                                       "counts": {s: len(df) for s, df in frames.items()}},
        "precision": " + ".join(p for p in dict.fromkeys(training_precision(c) for c in configs) if p),
        "train_minutes": stages_minutes(run_dirs), "members": members}  # a first stage members share, once
    with whole_folder(out) as partial:  # all its files, or none
        for s, df in frames.items():
            write_evaluation(partial, s, df, members=[d.name for d in run_dirs],
                             **scored_data(d / f"metrics_{s}.json" for d in run_dirs))
        if one_split:
            atomic_write_bytes(partial / "split.csv", splits_csv.pop())
        atomic_write_json(partial / "config.json", config)
    return splits


def line(label: str, split: str, df: pd.DataFrame, of: int | None = None) -> str:
    """One summary line; ``of``: how many images the member has, where it is scored on fewer (the shared ones)."""
    m = compute_metrics(df)
    lo, hi = m["ci95"]["accuracy"]
    n = f"{m['n']} of {of}" if of and of > m["n"] else m["n"]
    return f"{label} ({split} split, n={n}, accuracy 95% CI [{lo:.3f}, {hi:.3f}]): {summary_line(m)}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (comma-separated: taken together)")
    p.add_argument("--split", default="test", help="the split to score (default: test); --out writes every split")
    p.add_argument("--soup", action="store_true", help="also average the runs' weights (needs their checkpoints)")
    p.add_argument("--out", type=Path, help="write the ensemble as a run folder here (status \"ensemble\")")
    a = p.parse_args()
    if len(a.runs) < 2:
        p.error("give at least two runs")
    for flag in ("soup", "out"):
        if getattr(a, flag) and any(len(run_list(r)) > 1 for r in a.runs):
            p.error(f"--{flag} takes single runs: give run folders, not comma-separated runs")
    if a.out is not None and a.out.exists() and (not a.out.is_dir() or any(a.out.iterdir())):
        p.error(f"--out {a.out} " + ("exists and is not empty" if a.out.is_dir() else "is a file")
                + ": choose a new folder")
    if a.out is not None and (why := unwritable_folder(a.out)):  # said before the work, not after it
        p.error(f"--out {a.out} {why}")
    for r in a.runs:  # the members' answers as they give them now: an exported ensemble applies their temperatures
        for split in sorted({p.stem[len("predictions_"):] for p in Path(r).glob("predictions_*.csv")}
                            if a.out else [a.split]):
            stale = len(run_list(r)) == 1 and stale_temperature(Path(r), split)
            if stale:
                print(f"warning: {stale}", file=sys.stderr)
    try:
        tables = [run_predictions(r, a.split) for r in a.runs]
        shared = align_predictions(tables, names=[runs_label(r) for r in a.runs])  # the images the ensemble scores
        ensemble = averaged_predictions(shared)
        without = [runs_label(r) for r, t in zip(a.runs, shared) if t["valence_pred"].isna().all()]
        if without and len(without) < len(a.runs):
            print(f"warning: {', '.join(without)} give{'s' if len(without) == 1 else ''} no valence/arousal: the "
                  "ensemble's are the other members' average", file=sys.stderr)
        hard = [runs_label(r) for r, t in zip(a.runs, shared) if hard_answers(t)]
        if hard:  # imported answers without probabilities: a sure vote against the others' hedged ones
            print(f"warning: {', '.join(hard)} give{'s' if len(hard) == 1 else ''} one class per image, not "
                  "probabilities: in the average that sure vote outweighs the others' wherever they hedge, so the "
                  "ensemble mostly repeats it", file=sys.stderr)
        if any(len(t) > len(ensemble) for t in tables):
            print(f"warning: only the {len(ensemble)} {a.split} images all members predicted are scored, the members "
                  f"on them too: " + ", ".join(f"{runs_label(r)} has {len(t)} ({len(t) - len(ensemble)} left out)"
                                               for r, t in zip(a.runs, tables)), file=sys.stderr)
        for r, t, s in zip(a.runs, tables, shared):
            c = paired_comparison(ensemble, s)
            d = c["metrics"]["accuracy"]
            print(line(f"{runs_label(r):>24}", a.split, s, of=len(t)) + f"; ensemble − it: accuracy {d['diff']:+.3f} "
                  f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}], McNemar p {format_p(c['mcnemar_p'])}")
        print(line(f"{'ensemble':>24}", a.split, ensemble))
        if a.soup:  # scored on the ensemble's images: a member may have trained on others of the first's test part
            soup = soup_predictions([Path(r) for r in a.runs], a.split)
            print(line(f"{'soup':>24}", a.split, soup[soup["id"].isin(ensemble["id"])]))
        if a.out is not None:
            print(f"wrote {a.out}: the ensemble on {', '.join(write_ensemble(a.out, [Path(r) for r in a.runs]))}")
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
