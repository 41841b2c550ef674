"""Train every fold of an N-fold cross-validation, then pool them into one run folder the dashboard shows.

    python scripts/cross_validate.py --folds 5 --name my-cv5 -- --data ../shared/data/affectnet8-4k --preset hse-fast

Runs `python -m fer_core.train TRAIN_ARGS --fold K/N --name NAME-foldK --out OUT` for K = 1..N, one after the
other, then `scripts/pool_folds.py` into OUT/NAME. After an interruption, the same command continues: a finished
fold is kept, a fold that stopped or failed goes on with `--resume`, the others start. The arguments after `--` go
to every fold unchanged; the folds' split, name and folder are this script's to choose.

`--final` then trains the recipe once more with no test part (`--test-frac 0`; the validation part
stays, for the epoch the recipe keeps), as OUT/NAME-final: the model to use, whose expected accuracy is the
cross-validation's. Adding `--final` to a finished cross-validation's command trains just that model.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fer_core.train_args import run_name  # noqa: E402

# the folds run in the caller's folder, where relative paths in the arguments point, with this checkout importable
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
CHOSEN_HERE = ("--fold", "--name", "--out", "--resume", "--split-from")
DONE = ("finished", "stopped_early")
POOL_FILES = {"predictions_test.csv", "metrics_test.json"}  # what pool_folds.py writes before its config.json


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", type=int, required=True, help="N, the number of folds (2 or more)")
    p.add_argument("--name", required=True, type=run_name, help="the pooled run's name; fold K trains as NAME-foldK")
    p.add_argument("--out", type=Path, default=Path("artifacts/runs"),
                   help="parent folder of the run folders (default: artifacts/runs)")
    p.add_argument("--final", action="store_true",
                   help="then train NAME-final with the same arguments and no test part (every image in its train or "
                        "validation part): the model to use, whose recipe the cross-validation scored")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then fer_core.train's arguments")
    a = p.parse_args(argv)
    train_args = a.train_args[1:] if a.train_args[:1] == ["--"] else a.train_args
    if a.folds < 2:
        p.error(f"--folds must be 2 or more, got {a.folds}")
    if not train_args:
        p.error("give fer_core.train's arguments after --, e.g. -- --data DATA --preset hse-fast")
    taken = [t for t in train_args if t.split("=")[0] in CHOSEN_HERE]
    if taken:
        p.error(f"{', '.join(taken)}: this script chooses each fold's split, name and folder; leave it out")
    pooled = a.out / a.name
    pooled_done = False
    if pooled.exists():
        try:
            pooled_done = bool(json.loads((pooled / "config.json").read_text(encoding="utf-8")).get("fold_runs"))
        except (OSError, ValueError, AttributeError):
            pass
        if not pooled_done and pooled.is_dir() and all(f.name in POOL_FILES or f.name.endswith(".tmp")
                                                       for f in pooled.iterdir()):
            shutil.rmtree(pooled)  # pooling was cut off: it is done again below
        elif not (pooled_done and a.final):
            p.error(f"{pooled} exists already"
                    + (": this cross-validation is done, its folds pooled there" if pooled_done else "")
                    + "; choose another --name for a new one" + (" (or add --final)" if pooled_done else ""))

    folds = [a.out / f"{a.name}-fold{k}" for k in range(1, a.folds + 1)]
    final = a.out / f"{a.name}-final"
    stages = [*([] if pooled_done else [(f, [*train_args, "--fold", f"{k}/{a.folds}"], f"fold {k}/{a.folds}")
                                       for k, f in enumerate(folds, start=1)]),
              *([(final, [*train_args, "--test-frac", "0"], "final model (no test part)")] if a.final else [])]
    if pooled_done:  # the folds are pooled: the final model must be trained as they were
        stages.insert(0, (folds[0], [*train_args, "--fold", f"1/{a.folds}"], "fold 1"))
    mismatch = [f"{what} ({folder}): {why}" for folder, args, what in stages if (why := _other_recipe(folder, args))]
    if mismatch:
        print("error: these runs exist already, trained otherwise than these arguments ask:\n  " + "\n  ".join(mismatch)
              + "\ngive the arguments they were trained with, or another --name for a new cross-validation",
              file=sys.stderr)
        return 2
    try:
        for folder, args, what in stages:
            if folder in folds and pooled_done:
                continue
            rc = _train(folder, args, a.out, what)
            if rc:
                return rc
            if folder == folds[-1]:
                rc = subprocess.run([sys.executable, str(ROOT / "scripts" / "pool_folds.py"), *map(str, folds),
                                     "--out", str(pooled)], env=ENV).returncode
                if rc:
                    return rc
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    if a.final:
        print(f"final model: {final}; its expected figures are the cross-validation's, in {pooled}", flush=True)
    return 0


def _other_recipe(folder: Path, args: list[str]) -> str | None:
    """How the run already in ``folder`` was trained otherwise than fer_core.train ``args`` would train it (data,
    fold, recipe values; not --workers, nor a two-stage preset's first stage found under another --out), or None:
    no run there, the same recipe, or arguments training will refuse with its own message."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    from fer_core.presets import resolve
    from fer_core.train_args import RECIPE_KEYS, get_args_parser, recorded_weights

    try:
        given = get_args_parser().parse_args(args)
    except SystemExit:  # bad arguments: training says what is wrong
        return None
    want = {**resolve(given.preset, {k: getattr(given, k) for k in RECIPE_KEYS}), "limit": given.limit,
            "exclude": str(Path(given.exclude).resolve()) if given.exclude else None}
    want["data"] = str(Path(given.data).resolve()) if given.data else None
    had = {**(config.get("args") or {}), "data": (config.get("data") or {}).get("root")}
    want["weights"] = recorded_weights(want["weights"])  # a whole path, however either was typed
    if "weights" in had:
        had["weights"] = recorded_weights(had["weights"])
    skip = {"workers"} | (set() if given.weights else {"weights"})
    differ = [f"{k} {had[k]!r}, not {want[k]!r}" for k in want if k not in skip and k in had and had[k] != want[k]]
    split = config.get("split") or {}
    if given.fold and (split.get("fold"), split.get("folds")) != given.fold:
        differ.append(f"fold {split.get('fold')}/{split.get('folds')}, not {given.fold[0]}/{given.fold[1]}")
    return "; ".join(differ) or None


def _train(folder: Path, args: list[str], out: Path, what: str) -> int:
    """Train ``args`` into ``folder``; keep it if it finished before, resume it if it was cut off. Exit code."""
    from fer_core.runs import claim_holder, claim_job, trainer_gone

    config = folder / "config.json"
    if folder.exists() and not config.is_file():
        held, job = claim_holder(folder), os.environ.get("SLURM_JOB_ID")
        if held and not trainer_gone(folder) and not (job and claim_job(folder) == job):
            print(f"error: {folder} holds no finished epoch yet, and process {held[0]} on {held[1]} is training it: "
                  "wait for it to end, or stop it; if it has ended, remove the folder and run the same command again",
                  file=sys.stderr)
            return 1
        print(f"{what}: {folder} was cut off in its first epoch: trained again from the start", flush=True)
    try:
        status = json.loads(config.read_text(encoding="utf-8")).get("status") if config.is_file() else None
    except (OSError, ValueError) as e:
        print(f"error: {config} is not readable ({e})", file=sys.stderr)
        return 1
    if status in DONE:
        print(f"{what}: {folder} finished before, kept", flush=True)
        return 0
    train = [sys.executable, "-m", "fer_core.train"]
    if status:  # stopped, failed, or cut off while running: go on from its last finished epoch
        command, doing = [*train, "--resume", str(folder)], f"resuming ({status})"
    else:
        command, doing = [*train, *args, "--name", folder.name, "--out", str(out)], "training"
    print(f"{what}: {doing} {folder}", flush=True)
    # Ctrl-C reaches the training, which stops cleanly and keeps its folder for --resume; this script waits for it
    # (Python's subprocess would kill it 0.25 s later) and then says how to go on
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    try:
        # POSIX children inherit the ignored SIGINT: restored in them; Windows has no preexec_fn, nor that inheritance
        default_sigint = {} if os.name == "nt" else {"preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)}
        child = subprocess.Popen(command, env=ENV, **default_sigint)
        # SIGTERM (kill, a job's end) and SLURM's SIGUSR1 warning sent to this script alone: passed on, so that the
        # training stops cleanly too instead of going on alone
        for name in ("SIGTERM", "SIGUSR1"):
            if hasattr(signal, name):
                sig = getattr(signal, name)
                previous[sig] = signal.signal(sig, lambda signum, _: child.send_signal(signum))
        rc = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rc:
        print(f"error: {what} ended with exit code {rc}" + ("; mend what the error above names, then run the same "
              "command again to continue" if rc == 2 else "; run the same command again to continue from it"),
              file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
