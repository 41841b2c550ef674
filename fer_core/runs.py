"""Find, validate and load run folders (docs/run_folder.md) for the dashboard.

What is read here depends on the files on disk alone (and, for a run still training, on whether its process is
alive), so the app can cache results keyed on (path, mtime) and plain pytest can test it. A folder that breaks the
contract is reported with a reason instead of raising, so one bad run never hides the others.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import re
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .images import IMAGE_EXTS
from .labels import CLASSES, PROB_COLS
from .presets import BASE, PRESETS, resolve

SUPPORTED_SCHEMA_VERSIONS = {1}
RUNS_DIR_ENV = "FER_LAB_RUNS_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS_DIR = REPO_ROOT / "artifacts" / "runs"

VA_COLS = ["valence_true", "arousal_true", "valence_pred", "arousal_pred"]
PRED_REQUIRED = ["id", "path", "true", "pred", *PROB_COLS]
HISTORY_REQUIRED = ["epoch", "train_loss", "val_loss", "val_acc"]
CONFIG_REQUIRED = ["schema_version", "name", "classes"]
CONFIG_OBJECTS = ("data", "args", "split", "best", "weights", "temperature")  # where present: JSON objects
CONFIG_TEXTS = ("name", "created", "status", "backbone", "preset", "hardware", "device", "precision")  # or null
METRICS_REQUIRED = ["n", "accuracy", "confusion"]
METRIC_SCORES = ("n", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "cohen_kappa", "krippendorff_alpha",
                 "roc_auc_macro", "pr_auc_macro")  # the numbers of a metrics file the dashboard shows
# Files whose presence marks a folder as (the start of) a run even when config.json is unreadable.
RUN_MARKERS = ("config.json", "history.csv", "train.log", "split.csv", "predictions_*.csv")

# Explicit dtypes: no type sniffing on 250k rows, and ids stay strings ("0635" is not 635).
# "str" is pandas' default string dtype (pyarrow-backed where pyarrow is installed: ~2x faster to read).
PRED_DTYPES = {"id": "str", "path": "str", "true": "int16", "pred": "int16",
               **{c: "float32" for c in PROB_COLS}, **{c: "float32" for c in VA_COLS}}
_CSV_ENGINE = "pyarrow" if importlib.util.find_spec("pyarrow") else "c"


@dataclass
class Run:
    name: str
    path: Path
    config: dict
    splits: list[str] = field(default_factory=list)          # splits with usable predictions_<split>.csv
    metrics_splits: list[str] = field(default_factory=list)  # splits with a readable metrics_<split>.json
    has_history: bool = False
    val_score: float | None = None  # selection_score of metrics_val.json, read while validating the folder

    @property
    def has_va(self) -> bool:
        """Whether the run's valence/arousal were scored: its data has them, and it trained them (trained_with_va)."""
        return bool(self.config.get("data", {}).get("has_va", False)) and trained_with_va(self.config)

    @property
    def data_root(self) -> str | None:
        return self.config.get("data", {}).get("root")

    def predictions_path(self, split: str) -> Path:
        return self.path / f"predictions_{split}.csv"

    def metrics_path(self, split: str) -> Path:
        return self.path / f"metrics_{split}.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"


@dataclass
class Problem:
    """A folder (or one file in it) the dashboard skipped, with the reason in words."""
    path: Path
    reason: str
    skipped: str = "run"  # "run" when the whole folder is skipped, else the split name


def training_precision(config: dict) -> str:
    """How the training steps computed; runs from before it was recorded trained in float32 on a CPU."""
    cpu = str(config.get("device", "")).startswith("cpu")
    return config.get("precision") or ("float32" if cpu and config.get("args") else "")


def train_command(config: dict, run_dir: Path | None = None, fold: dict | None = None) -> str | None:
    """The fer_core.train command that trains a run's recipe again, from its config.json: its data, preset, split and
    every recorded argument that differs from the preset's value (not --workers, a choice of machine), under the name
    NAME-again beside it (the run's own folder exists). For a pooled cross-validation, given one of its folds'
    config.json (``fold``), the scripts/cross_validate.py command that trains every fold again. None for folders no
    single command wrote (ensembles, evaluations; a pooled cross-validation without a fold at hand)."""
    import shlex

    pooled = cross_validated(config)
    recipe = fold if pooled else config
    args, root = (recipe or {}).get("args"), ((recipe or {}).get("data") or {}).get("root")
    if not isinstance(args, dict) or "backbone" not in args or not root:
        return None
    preset = recipe.get("preset") if recipe.get("preset") in PRESETS else None
    base, split = resolve(preset, {}), recipe.get("split") or {}
    words, skip = ["--data", root, *(["--preset", preset] if preset else [])], {"workers"}
    source = str(split.get("source") or "")
    if source == "fold":
        words += [] if pooled else ["--fold", f"{split.get('fold')}/{split.get('folds')}"]
        skip.add("test_frac")
    elif source.startswith("run:"):  # --split-from: the run of that name beside this one, else this run's own copy
        beside = Path(run_dir).parent / source[4:] if run_dir else None
        words += ["--split-from", str(beside if (beside / "split.csv").is_file() else run_dir) if beside
                  else source[4:]]
        skip |= {"val_frac", "test_frac"}
    elif source == "predefined":  # the data's own parts; the fractions apply to none of them
        skip |= {"val_frac", "test_frac"}
    for k, v in args.items():
        if k in skip or (k not in base and k not in ("limit", "exclude")) or v == base.get(k):
            continue
        flag = "--" + k.replace("_", "-")
        words += [flag if v else f"--no-{flag[2:]}"] if isinstance(v, bool) else [flag, str(v)]
    out = Path(run_dir).parent if run_dir else None
    place = [*(["--out", str(out)] if out and out.resolve() != DEFAULT_RUNS_DIR.resolve() else []),
             "--name", f"{config.get('name') or 'run'}-again"]
    if pooled:
        folds = ["--folds", str(split.get("folds") or (config.get("split") or {}).get("folds"))]
        return "python scripts/cross_validate.py " + " ".join(shlex.quote(w) for w in [*folds, *place, "--", *words])
    return "python -m fer_core.train " + " ".join(shlex.quote(w) for w in [*words, *place])


def runs_dirs_from_env() -> list[Path]:
    """Folders to scan: $FER_LAB_RUNS_DIR (os.pathsep-separated) if set, else artifacts/runs."""
    env = os.environ.get(RUNS_DIR_ENV, "").strip()
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return [DEFAULT_RUNS_DIR]


def file_key(path: str | os.PathLike) -> tuple[str, int]:
    """(absolute path, mtime in ns): a cache key that changes whenever the file is rewritten."""
    p = Path(path).resolve()
    return str(p), p.stat().st_mtime_ns


def _read_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig") as f:  # a spreadsheet's byte-order mark is no part of the first name
        return [c.strip() for c in f.readline().strip().split(",")]


def _missing(have: list[str], need: list[str]) -> list[str]:
    return [c for c in need if c not in have]


def _table_problem(path: Path, need: list[str]) -> str | None:
    """Why a CSV file the engine writes cannot be read as one, judged from its header and its last line (a file cut
    short by a copy or a full disk ends in a partial row), without reading it all; None when it looks whole."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(size - 4096, 0))
        lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return "empty file"
    header = _read_header(path)
    if missing := _missing(header, need):
        if len(header) == 1 and ";" in header[0]:
            return "its columns are separated by ';' (saved by a spreadsheet?): the engine writes commas"
        return f"lacks columns {', '.join(missing)}"
    if size <= 4096 and len(lines) == 1:
        return "no rows, only the header"
    fields = len(next(csv.reader([lines[-1]])))
    if fields != len(header):
        return (f"its last line has {fields} of the header's {len(header)} fields: the file is cut short (copied or "
                f"written incompletely)")
    return None


def validate_run(folder: str | os.PathLike) -> tuple[Run | None, list[Problem]]:
    """Check one folder against the contract. Returns (run or None, problems found)."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        if (folder / "train.log").is_file():  # training writes config.json when each epoch ends
            return None, [Problem(folder, "no config.json yet: training in its first epoch (it shows once that epoch "
                                  "ends), or stopped before the end of it")]
        if any(folder.glob("predictions_*.csv")):
            return None, [Problem(folder, "predictions without a config.json: an evaluation folder written by an "
                                  "earlier version of FER Lab, or a run copied in part; python -m fer_core.evaluate "
                                  "writes a whole one")]
        return None, [Problem(folder, "no config.json (half-written run, or not a run folder)")]
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, [Problem(folder, f"config.json is not valid JSON ({e})")]
    if not isinstance(config, dict):
        return None, [Problem(folder, "config.json does not hold a JSON object")]
    missing = _missing(list(config), CONFIG_REQUIRED)
    if missing:
        return None, [Problem(folder, f"config.json lacks {', '.join(missing)}")]
    version = config["schema_version"]
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
        return None, [Problem(folder, f"unsupported schema_version {version!r} (this dashboard reads {known})")]
    if list(config["classes"]) != CLASSES:
        return None, [Problem(folder, f"classes {config['classes']} are not the AffectNet order {CLASSES}")]
    if problem := _config_problem(config):
        return None, [Problem(folder, f"config.json: {problem}")]

    run = Run(name=folder.name, path=folder, config=config)
    problems: list[Problem] = []
    if run.history_path.is_file():
        problem = _table_problem(run.history_path, HISTORY_REQUIRED)
        if problem and problem not in ("empty file", "no rows, only the header"):  # those: no epoch recorded yet
            return None, [Problem(folder, f"history.csv: {problem}")]
        run.has_history = not problem

    for pred_path in sorted(folder.glob("predictions_*.csv")):
        split = pred_path.stem[len("predictions_"):]
        if not _utf8(pred_path.name):
            problems.append(Problem(printable(pred_path), NOT_UTF8, skipped=printable(Path(split)).name))
            continue
        problem = _table_problem(pred_path, PRED_REQUIRED)
        if problem:
            problems.append(Problem(pred_path, problem, skipped=split))
        else:
            run.splits.append(split)
    for metrics_path in sorted(folder.glob("metrics_*.json")):
        split = metrics_path.stem[len("metrics_"):]
        if not _utf8(metrics_path.name):
            problems.append(Problem(printable(metrics_path), NOT_UTF8, skipped=printable(Path(split)).name))
            continue
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
            if problem := _metrics_problem(metrics):
                problems.append(Problem(metrics_path, problem, skipped=split))
                continue
            run.metrics_splits.append(split)
            if split == "val" and isinstance(metrics, dict) and isinstance(metrics.get("accuracy"), (int, float)):
                va = [metrics.get(k) for k in ("valence", "arousal")]
                run.val_score = selection_score(metrics["accuracy"], [d.get("ccc") for d in va if isinstance(d, dict)])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(Problem(metrics_path, f"not valid JSON ({e})", skipped=split))
    return run, problems


NOT_UTF8 = "its name is not valid UTF-8 (made on another system, or unpacked from a zip?): rename it"


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # bytes the file system gave that are not UTF-8, kept as surrogates
        return False


def printable(path: Path) -> Path:
    """The path with bytes that are not UTF-8 shown as the replacement character, so that it can be shown at all."""
    return Path(os.fsencode(path).decode("utf-8", "replace"))


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _config_problem(config: dict) -> str | None:
    """What in config.json is not of the kind the engine writes (a field edited by hand), or None."""
    for key in CONFIG_OBJECTS:
        if key in config and not isinstance(config[key], dict):
            return f"{key} is not an object ({json.dumps(config[key])[:40]})"
    if bad := next((k for k in CONFIG_TEXTS if config.get(k) is not None and not isinstance(config[k], str)), None):
        return f"{bad} is not text ({json.dumps(config[bad])[:40]})"
    if config.get("train_minutes") is not None and not _is_number(config["train_minutes"]):  # null: not known
        return f"train_minutes is not a number ({json.dumps(config['train_minutes'])[:40]})"
    if "best" in config and not _is_number(config["best"].get("value")):
        return f"best.value is not a number ({json.dumps(config['best'].get('value'))[:40]})"
    return None


def _metrics_problem(metrics) -> str | None:
    """What a metrics file lacks of what the engine writes, or None."""
    if not isinstance(metrics, dict):
        return "does not hold a JSON object"
    if missing := _missing(list(metrics), METRICS_REQUIRED):
        return f"lacks {', '.join(missing)}"
    if not (_is_number(metrics["accuracy"]) and _is_number(metrics["n"]) and isinstance(metrics["confusion"], list)):
        return "accuracy, n or confusion is not of the kind the engine writes"
    if len(metrics["confusion"]) != len(CLASSES) or not all(
            isinstance(row, list) and len(row) == len(CLASSES) and all(_is_number(c) for c in row)
            for row in metrics["confusion"]):
        return f"confusion is not {len(CLASSES)} rows of {len(CLASSES)} counts"
    per_class = metrics.get("per_class", {})
    if not isinstance(per_class, dict) or not all(
            isinstance(scores, dict) and all(v is None or _is_number(v) for v in scores.values())
            for scores in per_class.values()):
        return "per_class is not an object of scores for each class"
    scores = {k: v for k, v in metrics.items() if k in METRIC_SCORES}  # where present: a number, or null (none)
    intervals = metrics.get("ci95", {})
    if not isinstance(intervals, dict):
        return "ci95 is not an object"
    intervals = {f"ci95.{k}": ci for k, ci in intervals.items()}
    for k in ("valence", "arousal", "ferplus_paper_rule"):  # objects of numbers, or null where not scored
        if isinstance(metrics.get(k), dict):
            scores.update({f"{k}.{name}": v for name, v in metrics[k].items() if name != "ci95"})
            intervals.update({f"{k}.ci95": metrics[k]["ci95"]} if "ci95" in metrics[k] else {})
    if bad := next((k for k, v in scores.items() if v is not None and not _is_number(v)), None):
        return f"{bad} is not a number ({json.dumps(scores[bad])[:40]})"
    if bad := next((k for k, ci in intervals.items() if not (
            isinstance(ci, list) and len(ci) == 2 and all(x is None or _is_number(x) for x in ci))), None):
        return f"{bad} is not an interval of two numbers ({json.dumps(intervals[bad])[:40]})"
    return None


_VALIDATED: dict[Path, tuple[tuple, Run | None, list[Problem]]] = {}


def _validated(folder: Path) -> tuple[Run | None, list[Problem]]:
    """validate_run, read again only when a file in the folder changed (its name, size or time): the dashboard
    scans every folder on each click, and reading hundreds of unchanged folders again cost it 0.2-0.3 s."""
    try:
        stats = [(e.name, e.stat()) for e in os.scandir(folder)]
        stamp = tuple(sorted((name, st.st_mtime_ns, st.st_size) for name, st in stats))
    except OSError:
        return validate_run(folder)
    key = Path(os.path.abspath(folder))
    cached = _VALIDATED.get(key)
    if cached is None or cached[0] != stamp:
        cached = _VALIDATED[key] = (stamp, *validate_run(folder))
    _, run, problems = cached
    return (replace(run, splits=list(run.splits), metrics_splits=list(run.metrics_splits)) if run else None), problems


def discover_runs(roots: list[str | os.PathLike] | str | os.PathLike) -> tuple[list[Run], list[Problem]]:
    """Every run folder directly inside the given roots (one folder, or a list; a root may itself be a run folder).

    Folders with none of the run files are ignored silently; folders with some of them but a broken
    contract come back as problems. Runs are sorted newest first (config ``created``, then name).
    """
    runs: list[Run] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for root in [roots] if isinstance(roots, (str, os.PathLike)) else roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            problems.append(Problem(root, "is a file, not a folder of runs" if root.exists() else
                                    "folder does not exist", skipped="folder"))
            continue
        # a hidden folder is one still being written (fer_core.io.whole_folder), renamed to its name when whole
        try:
            candidates = [root] if (root / "config.json").is_file() else sorted(
                p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError as e:  # another user's folder, say
            problems.append(Problem(root, f"cannot be read ({e.strerror or e})", skipped="folder"))
            continue
        for folder in candidates:
            if not _utf8(folder.name):
                problems.append(Problem(printable(folder), NOT_UTF8))
                continue
            real = folder.resolve()
            if real in seen or not any(any(folder.glob(m)) for m in RUN_MARKERS):
                continue
            seen.add(real)
            run, found = _validated(folder)
            problems.extend(found)
            if run is not None:
                runs.append(run)
    _make_names_unique(runs)
    runs.sort(key=lambda r: (str(r.config.get("created", "")), r.name), reverse=True)
    return runs, problems


CLAIM = ".training"  # in a run folder while a process trains it: "PID HOST [SLURM_JOB_ID]" (fer_core.train)


def _claim_words(folder) -> list[str]:
    try:
        return (Path(folder) / CLAIM).read_text().split()
    except OSError:
        return []


def claim_holder(folder) -> tuple[int, str] | None:
    """(process id, host name) of the process that claimed the run folder for training, None where none did. A claim
    written with the id alone (by earlier versions) is taken to be this machine's."""
    words = _claim_words(folder)
    try:
        return int(words[0]), words[1] if len(words) > 1 else socket.gethostname()
    except (ValueError, IndexError):
        return None


def claim_job(folder) -> str | None:
    """The SLURM job whose process claimed the run folder, where it ran in one."""
    words = _claim_words(folder)
    return words[2] if len(words) > 2 else None


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine."""
    if pid <= 0:  # not a process id (0 would signal this process's group)
        return False
    if os.name == "nt":  # there os.kill(pid, 0) would end the process (TerminateProcess): ask Windows instead
        import ctypes
        from ctypes import wintypes

        kernel = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel.OpenProcess.restype = wintypes.HANDLE
        handle = kernel.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: another user's, alive
        code = ctypes.c_ulong()
        ok = kernel.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def trainer_gone(folder) -> bool:
    """Whether the process that claimed the run folder for training has ended (known only where it ran here)."""
    held = claim_holder(folder)
    return held is not None and held[1] == socket.gethostname() and not process_alive(held[0])


def trained_with_va(cfg: dict) -> bool:
    """Whether the model's valence/arousal outputs were trained: its data had them (assumed where the config does not
    say), or its --extra-data had, and --va-weight was not 0."""
    data = cfg.get("data") or {}
    if (cfg.get("args") or {}).get("va_weight") == 0:  # --va-weight 0: its loss never reached them
        return False
    return bool(data.get("has_va", True)) or bool((data.get("extra") or {}).get("has_va"))


def selection_score(accuracy: float, cccs: list) -> float:
    """What training keeps the best epoch by: accuracy, averaged with the mean valence/arousal CCC where there is one.

    An undefined CCC (None in a metrics file, NaN in training) counts as missing.
    """
    cccs = [c for c in cccs if isinstance(c, (int, float)) and c == c]
    return (accuracy + sum(cccs) / len(cccs)) / 2 if cccs else accuracy


# Config args that do not change what a run learns: runs that differ only in these repeat one recipe.
NOT_RECIPE = ("seed", "workers")


def folds_of(config: dict) -> int | None:
    """N for a run trained on one of N cross-validation folds (``--fold K/N``), else None."""
    return (config.get("split") or {}).get("folds")


def cross_validated(config: dict) -> bool:
    """Whether a folder holds a whole cross-validation's test predictions (every image once): folds pooled by
    scripts/pool_folds.py, or an ensemble of such folders."""
    return (config.get("split") or {}).get("source") == "cross-validation"


def members_among(configs: dict[str, dict]) -> dict[str, list[str]]:
    """For each ensemble among runs (name -> config), the other runs of them it averages: its answers are not an
    opinion of its own beside theirs."""
    out = {}
    for name, config in configs.items():
        members = [Path(str(m.get("run") if isinstance(m, dict) else m)).name for m in config.get("members") or []]
        if inside := [m for m in configs if m in members and m != name]:
            out[name] = inside
    return out


def fold_run_names(config: dict) -> list[str]:
    """The folder names of the fold runs a pooled cross-validation (scripts/pool_folds.py) holds, in fold order."""
    return [Path(f["run"]).name for f in config.get("fold_runs") or []]


def fold_runs(pooled: Run, runs: list[Run]) -> tuple[list[Run], list[str]]:
    """The fold runs of a pooled cross-validation found among ``runs`` by folder name (where several folders have
    that name, the one beside the pooled folder), in fold order; and the names of those not found."""
    found, missing = [], []
    for name in fold_run_names(pooled.config):
        same = [r for r in runs if r.path.name == name]
        beside = [r for r in same if r.path.parent == pooled.path.parent]
        pick = beside or (same if len(same) == 1 else [])
        if pick:
            found.append(pick[0])
        else:
            missing.append(name)
    return found, missing


def recipe_config(run: Run, runs: list[Run]) -> dict | None:
    """The config.json that holds a run's training settings: its own, or a pooled cross-validation's first fold's
    found among ``runs`` (its folds share them); None where that fold is not at hand."""
    if not run.config.get("fold_runs"):
        return run.config
    folds, _ = fold_runs(run, runs)
    return folds[0].config if folds else None


def seed_groups(configs: dict[str, dict]) -> list[list[str]]:
    """Runs on the same data whose training args are equal except for the seed, in groups of two or more,
    each ordered by seed (then fold, then name). The folds of one cross-validation (``--fold K/N``, named
    NAME-foldK as scripts/cross_validate.py names them) group together, apart from runs on a fixed split and from
    another cross-validation's folds. A group holds one run per seed (and fold): a second run of the same seed is a
    repeat of the same training, not another seed, and is left out. An arg that is off (None, 0, False) or at its
    default (presets.BASE) counts as absent, because configs written before a flag existed lack it."""
    groups: dict[str, dict[tuple, str]] = {}
    for name, c in sorted(configs.items()):
        args = c.get("args")
        if not isinstance(args, dict) or "seed" not in args:
            continue
        fold = (c.get("split") or {}).get("fold") if folds_of(c) else None
        key = json.dumps({"data": (c.get("data") or {}).get("root"), "folds": folds_of(c),
                          "cv": re.sub(r"-fold\d+$", "", name) if fold else None,
                          "args": {k: v for k, v in args.items()
                                   if k not in NOT_RECIPE and v not in (None, 0, False) and v != BASE.get(k)}},
                         sort_keys=True, default=str)
        seed = args["seed"] if isinstance(args["seed"], int) else 0
        groups.setdefault(key, {}).setdefault((seed, fold or 0), name)
    return [[name for _, name in sorted(g.items())] for g in groups.values() if len(g) > 1]


def data_groups(runs: list[Run], metrics: dict[str, dict | None] | None = None) -> dict[tuple[str, str], list[str]]:
    """Run names by the data they were scored on, keyed (label, data root), the label "LAYOUT data": scores on
    different data do not compare.
    The data is that of the run's metrics file for the split shown (``metrics``: {run name: metrics}; evaluate records
    the data it scored, which may be other than the run's own), else the run's own. A run that answered only among
    the classes its data has (evaluate --only-data-classes) is ranked apart: its accuracy is out of fewer choices."""
    scored = []  # (run, data root, its layout where a config or metrics file names it, how the run answered)
    for r in runs:
        data, m = r.config.get("data") or {}, (metrics or {}).get(r.name) or {}
        root = m.get("data_root") or data.get("root", "?")
        layout = m.get("layout") or (data.get("layout", "?") if root == data.get("root", "?") else None)
        answered = (f", answers among its {sum(1 for row in m.get('confusion') or [] if sum(row))} classes only"
                    if m.get("only_data_classes") else "")
        scored.append((r.name, root, layout, answered))
    known = {root: layout for _, root, layout, _ in reversed(scored) if layout}  # an older metrics file's data
    groups: dict[tuple[str, str], list[str]] = {}
    for name, root, layout, answered in scored:
        groups.setdefault((f"{layout or known.get(root) or Path(root).name} data{answered}", root), []).append(name)
    return groups


def spread_groups(chosen: list[Run], all_runs: list[Run]) -> tuple[list[list[str]], dict[str, Run]]:
    """Groups whose spread across runs the overview shows: the chosen runs that differ only in their seed
    (seed_groups), and each chosen pooled cross-validation's folds with test metrics, found among ``all_runs``
    whether chosen or not (papers report a cross-validation as the folds' mean ± sd). Returns the groups (run names)
    and the fold runs they add to the chosen ones."""
    groups = seed_groups({r.name: r.config for r in chosen})
    names, added = {r.name for r in chosen}, {}
    for r in chosen:
        folds = [f for f in fold_runs(r, all_runs)[0] if "test" in f.metrics_splits] \
            if cross_validated(r.config) else []
        if len(folds) > 1 and not any(set(g) == {f.name for f in folds} for g in groups):
            groups.append([f.name for f in folds])
            added.update({f.name: f for f in folds if f.name not in names})
    return groups, added


def default_selection(runs: list[Run], n: int) -> list[str]:
    """Runs to show before the user chooses: the newest run, then the best run (by validation selection_score) of
    each recipe (preset and backbone) trained on the same data as it, the best of them first, then the newest
    others (same data first); at most n. A seed repeat (a run that seed_groups puts after another) does not compete for
    best of its recipe: the luckiest of several seeds is noise, not a better recipe. Nor does a run that changed
    more of its preset's settings than another run of that preset: an ablation stands for its own question, the
    plain preset for the recipe.

    A user who just trained a run sees it beside the best of every other recipe, instead of only its siblings.
    Cross-validation folds (``--fold K/N``) come last, unless there is nothing else: each is tested on other images
    than the runs beside it; their pooled folders (scripts/pool_folds.py) come first among them. So do first stages
    (a FER+ run that another run started from): the later stage is the model. ``runs`` is newest first, as
    ``discover_runs`` returns it.
    """
    stages = _first_stages(runs)
    later = [r for r in runs if folds_of(r.config) or r.path.name in stages]
    pooled = [r for r in later if cross_validated(r.config)]  # a cross-validation's folds as one folder
    later = pooled + [r for r in later if r not in pooled]
    runs = [r for r in runs if r not in later] or pooled or later
    if not runs:
        return []
    repeats = {name for g in seed_groups({r.name: r.config for r in runs}) for name in g[1:]}

    def data(r: Run):
        d = r.config.get("data", {})
        return d.get("layout"), d.get("n_samples")

    def recipe(r: Run):
        """A preset on another backbone is a recipe of its own, not an ablation of the preset."""
        return r.config.get("preset"), r.config.get("backbone")

    def changed(r: Run) -> int:
        """How many of its preset's settings the run changed (0 without a known preset)."""
        preset, args = r.config.get("preset"), r.config.get("args") or {}
        if preset not in PRESETS:
            return 0
        return sum(k in args and k not in NOT_RECIPE and args[k] != v for k, v in resolve(preset, {}).items())

    def score(r: Run) -> float:
        return float("inf") if r.val_score is None else -r.val_score

    same = [r for r in runs if data(r) == data(runs[0])]
    bests = (min((r for r in same if recipe(r) == key and r.name not in repeats),
                 key=lambda r: (changed(r), score(r)), default=None) for key in dict.fromkeys(map(recipe, same)))
    chosen = [runs[0]]
    chosen += [r for r in sorted((b for b in bests if b is not None), key=score) if r not in chosen]
    chosen += [r for r in same if r not in chosen] + [r for r in runs if r not in same]
    # the fill: no fold whose cross-validation is pooled among the runs, and the folds of one cross-validation all or
    # none (the overview's mean ± sd over some of its folds would say nothing)
    in_pooled = {name for p in pooled for name in fold_run_names(p.config)}
    fill = [r for r in later if r not in chosen and r.path.name not in in_pooled]
    groups = {name: g for g in seed_groups({r.name: r.config for r in fill if folds_of(r.config)}) for name in g}
    allowed, count = set(), len(chosen)
    for r in fill:
        group = groups.get(r.name, [r.name]) if folds_of(r.config) else [r.name]
        if r.name not in allowed and count + len(group) <= n:
            allowed.update(group)
            count += len(group)
    chosen += [r for r in fill if r.name in allowed]
    return [r.name for r in chosen[:n]]


FEATURED = "featured.txt"  # in a folder of runs: the runs the dashboard opens with, one name per line


def opening_selection(roots: list[str | os.PathLike], runs: list[Run], n: int) -> list[str]:
    """The runs the dashboard opens with: the runs a folder's featured.txt names (one per line, # starts a comment; at
    most n), as long as no run was created after that file was written; otherwise default_selection. The shipped
    reference runs open with the headline models instead of the newest ablation, and a run the user trains takes
    over from them."""
    by_path = {r.path.resolve(): r.name for r in runs}
    for root in roots:
        file = Path(root).expanduser() / FEATURED
        try:
            wanted = [ln.split("#")[0].strip() for ln in file.read_text(encoding="utf-8").splitlines()]
            written = file.stat().st_mtime
        except (OSError, UnicodeDecodeError):
            continue
        names = [by_path[p] for p in ((file.parent / w).resolve() for w in wanted if w) if p in by_path]
        if names and not any(_created_after(r, written) for r in runs):
            return names[:n]
    return default_selection(runs, n)


def _created_after(run: Run, when: float) -> bool:
    try:
        return datetime.fromisoformat(str(run.config.get("created"))).timestamp() > when
    except ValueError:
        return False


def _first_stages(runs: list[Run]) -> set[str]:
    """Folder names of the runs whose checkpoint another run started from (``--weights RUN/checkpoints/best.pt``)."""
    weights = ((r.config.get("args") or {}).get("weights") for r in runs)
    return {Path(w).parent.parent.name for w in weights
            if isinstance(w, str) and Path(w).parent.name == "checkpoints"}


def unique_names(paths: list[Path]) -> list[str]:
    """The folders' names; folders sharing a name are each named by the fewest last parts of its path that no other
    of them ends with."""
    by_name: dict[str, list[Path]] = {}
    for p in paths:
        by_name.setdefault(p.name, []).append(p)
    names = []
    for p in paths:
        others = [o.parts for o in by_name[p.name] if o != p]
        k = next((k for k in range(1, len(p.parts) + 1) if all(o[-k:] != p.parts[-k:] for o in others)), len(p.parts))
        names.append(Path(*p.parts[-k:]).as_posix())
    return names


def _make_names_unique(runs: list[Run]) -> None:
    for r, name in zip(runs, unique_names([r.path for r in runs])):
        r.name = name


def load_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """predictions_<split>.csv with explicit dtypes; valence/arousal columns always present (NaN if empty). Raises
    ValueError naming the file where it is not one the engine writes: a missing column, no rows, a class outside
    0-7, probabilities that are not finite or do not sum to 1, an image twice, valence/arousal outside [-1, 1]."""
    if Path(path).is_dir():
        raise ValueError(f"{path}: a folder; a predictions file is a run folder's predictions_SPLIT.csv (or "
                         "run_predictions(folder, split))")
    try:
        header = _read_header(Path(path))
        if missing := _missing(header, PRED_REQUIRED):
            raise ValueError(f"lacks columns {', '.join(missing)}")
        df = pd.read_csv(path, dtype={c: t for c, t in PRED_DTYPES.items() if c in header}, engine=_CSV_ENGINE)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"{path}: not a predictions file the engine writes ({' '.join(str(e).split())[:200]})") \
            from None
    probs = df[PROB_COLS].to_numpy(np.float64)
    checks = [(df.empty, "no rows, only the header"),
              (not df[["true", "pred"]].isin(range(len(CLASSES))).all(axis=None),
               "a true or predicted class outside 0-7"),
              (not (np.isfinite(probs) & (probs >= 0) & (probs <= 1)).all(),
               "probabilities that are not finite numbers in [0, 1]"),
              (not df.empty and np.abs(probs.sum(axis=1) - 1).max() > 1e-3,
               "a row whose probabilities do not sum to 1"),
              (df["id"].duplicated().any(), "an image id twice")]
    for c in VA_COLS:
        if c not in df:
            df[c] = pd.Series(float("nan"), index=df.index, dtype="float32")
    va = df[VA_COLS].to_numpy(np.float64)
    if (outside := np.abs(va[np.isfinite(va)]) > 1 + 1e-6).any():  # AffectNet's -2, "not annotated", scored as -2
        checks.append((True, f"{outside.sum()} valence/arousal values outside [-1, 1] (e.g. "
                             f"{va[np.isfinite(va)][outside][0]:g}); a value not annotated is an empty cell"))
    if problem := next((why for failed, why in checks if failed), None):
        raise ValueError(f"{path}: {problem}")
    return df


def pool_predictions(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Several predictions CSVs taken together (e.g. the folds of one cross-validation, whose test parts cover every
    image once). Raises ValueError when an image is in more than one of them."""
    df = pd.concat([load_predictions(p) for p in paths], ignore_index=True)
    twice = df["id"][df["id"].duplicated()]
    if len(twice):
        raise ValueError(f"image {twice.iloc[0]} is in more than one of the pooled runs: runs taken together must each "
                         "have scored other images (the folds of a cross-validation); seeds of a recipe score the same "
                         "images: compare them one by one, or see their mean ± sd in scripts/results_table.py")
    return df


def run_predictions(arg: str | os.PathLike, split: str) -> pd.DataFrame:
    """One run's predictions on a split, or several comma-separated runs' taken together (pool_predictions). Raises
    ValueError naming the splits a run does have where it has none on this one."""
    paths = [Path(d) / f"predictions_{split}.csv" for d in run_list(arg)]
    for f in paths:
        if not f.is_file() and f.parent.is_dir():
            have = sorted(p.stem[len("predictions_"):] for p in f.parent.glob("predictions_*.csv"))
            raise ValueError(f"{f.parent} has no predictions on {split}" + (f" (it has {', '.join(have)}: "
                             "--split chooses)" if have else ""))
    return pool_predictions(paths)


FOLD_IGNORED_ARGS = ("workers",)  # data-loader processes: they change nothing a fold learns


def check_folds(run_dirs: list[Path], configs: list[dict]) -> int:
    """N of the cross-validation all the runs (folders, and their configs) belong to; ValueError naming the first run
    that does not fit."""
    first = configs[0]

    def recipe(c: dict) -> dict:
        return {k: v for k, v in (c.get("args") or {}).items() if k not in FOLD_IGNORED_ARGS}

    seen: dict[int, str] = {}
    for d, c in zip(run_dirs, configs):
        if not folds_of(c):
            raise ValueError(f"{d.name} is not a cross-validation fold (it trained without --fold K/N)")
        split, data = c.get("split") or {}, c.get("data") or {}
        for what, mine, theirs in [("number of folds", split.get("folds"), first["split"].get("folds")),
                                   ("split seed", split.get("seed"), first["split"].get("seed")),
                                   ("data", (data.get("root"), data.get("layout"), data.get("n_samples")),
                                    (first["data"].get("root"), first["data"].get("layout"),
                                     first["data"].get("n_samples")))]:
            if mine != theirs:
                raise ValueError(f"{d.name} has another {what} than {run_dirs[0].name} ({mine} against {theirs}): "
                                 "not a fold of the same cross-validation")
        if recipe(c) != recipe(first):
            diff = sorted(k for k in set(recipe(c)) | set(recipe(first)) if recipe(c).get(k) != recipe(first).get(k))
            raise ValueError(f"{d.name} trained with other arguments than {run_dirs[0].name} ({', '.join(diff)}): "
                             "the folds of one cross-validation share one recipe")
        k = split.get("fold")
        if k in seen:
            raise ValueError(f"{d.name} and {seen[k]} are both fold {k}")
        seen[k] = d.name
    return first["split"]["folds"]


def _stage_chain(run: str | os.PathLike) -> list[tuple[Path, dict]]:
    """(folder, config) of the run and, before it, of the runs whose best checkpoint it started from, first stage
    first. The chain stops at weights that are not a run folder's checkpoint (relative paths are read from the project
    root, where training runs)."""
    run, chain, seen = Path(run), [], set()
    while run.resolve() not in seen:
        seen.add(run.resolve())
        cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
        chain.insert(0, (run.resolve(), cfg))
        start = Path(str((cfg.get("weights") or {}).get("requested")))
        run = start.parent.parent if start.parent.name == "checkpoints" else start
        if not run.is_absolute():
            run = REPO_ROOT / run
        if not (run / "config.json").is_file():
            break
    return chain


def training_stages(run: str | os.PathLike) -> list[dict]:
    """The run and, before it, the runs whose best checkpoint it started from: [{"run", "train_minutes"}], first
    stage first (_stage_chain)."""
    return [{"run": cfg.get("name", folder.name), "train_minutes": cfg.get("train_minutes")}
            for folder, cfg in _stage_chain(run)]


def run_list(arg: str | os.PathLike) -> list[str]:
    """The run folders in an argument: one folder (its name may hold commas: "lr1e-4,bs32"), or several separated by
    commas, taken together."""
    return [str(arg)] if isinstance(arg, os.PathLike) or os.path.isdir(arg) else arg.split(",")


def runs_label(arg: str) -> str:
    """A short name for a run, or for comma-separated runs taken together."""
    names = [Path(d).name for d in run_list(arg)]
    return names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1} pooled"


def quiet_seconds(run: Run, now: float | None = None) -> float:
    """Seconds since training last wrote to the run folder (history.csv, train.log or config.json)."""
    import time

    files = [run.path / f for f in ("history.csv", "train.log", "config.json")]
    return (time.time() if now is None else now) - max(f.stat().st_mtime for f in files if f.is_file())


def load_history(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path).sort_values("epoch").reset_index(drop=True)


def load_metrics(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def safe_image_path(data_root: str | os.PathLike | None, rel_path: str | None) -> Path | None:
    """The image file a predictions CSV's path names: relative to data_root, or absolute (a manifest may name its
    images by absolute or ``../`` paths, or link to them). Only an existing file with an image file's extension:
    the gallery shows images, and a run folder from elsewhere cannot make it open other files."""
    if not data_root or not rel_path or not isinstance(rel_path, str):
        return None
    candidate = Path(data_root).expanduser() / rel_path  # an absolute rel_path replaces the root
    if candidate.suffix.lower() not in IMAGE_EXTS:
        return None
    return candidate.resolve() if candidate.is_file() else None


def scored_data(metrics_files) -> dict:
    """{"data_root", "layout"} that the given metrics files all record alike (the data an ensemble's members or a
    cross-validation's folds were scored on, which data_groups reads), with the keys they disagree on or lack left
    out."""
    found = []
    for f in metrics_files:
        try:
            m = json.loads(Path(f).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        found.append(m if isinstance(m, dict) else {})
    return {k: found[0][k] for k in ("data_root", "layout")
            if found and found[0].get(k) and all(m.get(k) == found[0][k] for m in found)}


def stages_minutes(run_dirs) -> float | None:
    """Training minutes of the runs and the runs they started from (training_stages), a first stage they share (a
    FER+ run) counted once, told apart by folder (two runs of one name in two folders are two stages); None where some
    stage does not say."""
    stages = {}
    for d in run_dirs:
        stages.update({folder: cfg.get("train_minutes") for folder, cfg in _stage_chain(d)})
    return round(sum(stages.values()), 3) if None not in stages.values() else None


def model_run(cfg: dict, path: str | os.PathLike) -> Path | None:
    """The run folder (with its split.csv) of the model file at ``path`` with config ``cfg``: the one whose
    checkpoints/ holds it, else the run it was exported from, where it is at hand (the same run: same creation time):
    in artifacts/runs under the working folder, else in this checkout's, beside the default model shipped here."""
    from .inference import RUNS_DIR, SHIPPED_DIR

    path = Path(path)
    if path.parent.name == "checkpoints" and (path.parent.parent / "split.csv").is_file():
        return path.parent.parent
    for runs in (RUNS_DIR, SHIPPED_DIR.parent.parent / RUNS_DIR):
        run = runs / str(cfg.get("name"))
        try:
            same = json.loads((run / "config.json").read_text()).get("created") == cfg.get("created")
        except (OSError, ValueError, AttributeError):
            continue
        if same and (run / "split.csv").is_file():
            return run
    return None


def earlier_stages(cfg: dict) -> list[tuple[Path, dict]]:
    """(run folder, config) of the runs a model's training went through before its own, where they are at hand: the
    runs whose checkpoint it started from (a FER+ stage), theirs in turn, and an ensemble's members with theirs. Run
    names are looked up as the dashboard finds runs; recorded paths are read from the project root (the shipped runs
    record them from there), and a path no longer there by its run's name, where that run's checkpoint is the file
    the training recorded (by its sha256; a reference run without checkpoints is taken at its word)."""
    from .inference import run_path

    found, seen, todo = [], set(), [cfg]

    def add(where, sha256: str | None = None) -> None:
        folder = Path(str(where))
        folder = folder if folder.is_absolute() or folder.is_dir() else REPO_ROOT / folder
        folder = folder if folder.is_dir() else run_path(str(where))
        if not folder.is_dir():  # a checkout moved since: found by its name, not another run of that name
            folder = run_path(folder.name)
            if sha256 and (ckpt := folder / "checkpoints" / "best.pt").is_file():
                with open(ckpt, "rb") as f:
                    if hashlib.file_digest(f, "sha256").hexdigest() != sha256:
                        return
        try:
            theirs = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(theirs, dict) and folder.resolve() not in seen:
            seen.add(folder.resolve())
            found.append((folder, theirs))
            todo.append(theirs)

    while todo:
        c = todo.pop()
        for member in (m for m in c.get("members") or [] if isinstance(m, dict)):
            add(member.get("run"))  # as recorded (a path), then by the names of its stages
            for stage in member.get("stages") or []:
                add(stage.get("run"))
        requested = (c.get("weights") or {}).get("requested")  # a run's checkpoint, or its folder
        if requested not in (None, "imagenet", "pretrained", "none", "ensemble"):
            start = Path(str(requested))
            add(start.parent.parent if start.parent.name == "checkpoints" else start, c["weights"].get("sha256"))
    return found
