"""Bring a model's predictions made outside FER Lab (your own code, a published model, another tool) into it: scored
with the same metrics and written as a run folder that the dashboard compares with FER Lab's runs, image by image.

    python scripts/import_predictions.py theirs.csv --like artifacts/runs/hse-best-cv5 --out artifacts/runs/theirs
    python scripts/import_predictions.py theirs.csv --data ../shared/data/affectnet8-4k --out artifacts/runs/theirs

theirs.csv holds a row per image: an `id` or a `path` column (relative to the data folder, absolute, or the file name
alone where that is unique) and the answer, either probabilities per class (`prob_0` ... `prob_7` in AffectNet order,
or columns named by class: `neutral`, `happiness`, `sad`, ...; a class the model lacks counts as 0) or one class per
row (`pred`: a name, or AffectNet's number 0-7), and optionally `valence` and `arousal` (or `valence_pred`,
`arousal_pred`) in [-1, 1]. Comma-, semicolon- or tab-separated.

The truth never comes from their file. With --like RUN it is RUN's: the images of RUN's predictions on --split (test
by default; a cross-validation's pooled run has every image), so the two runs are scored on the same images. With
--data it is the data's: every image of it they predicted, or those of the data's own --split. Rows for other images
are left out and counted; images they did not predict are counted too, and the figures then cover fewer images.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import data as fdata  # noqa: E402
from fer_core.evaluate import predictions_frame  # noqa: E402
from fer_core.io import atomic_write_json, unwritable_folder  # noqa: E402
from fer_core.labels import CLASSES, NUM_CLASSES, class_index, close_class  # noqa: E402
from fer_core.metrics import summary_line, write_evaluation  # noqa: E402
from fer_core.runs import run_list, run_predictions, scored_data  # noqa: E402

KEYS = ("id", *fdata.CSV_PATH_COLS)
VA = {"valence": ("valence_pred", "valence"), "arousal": ("arousal_pred", "arousal")}


class Refused(ValueError):
    """Their file or the arguments cannot be scored; the message says why."""


def read_theirs(path: Path) -> pd.DataFrame:
    """Their CSV with every value as text, and lower-case column names."""
    sep = fdata._separator(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep,
                         encoding=fdata._bom_encoding(path) or "utf-8-sig")
    except FileNotFoundError:
        raise Refused(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise Refused(f"{path}: not UTF-8 text: save it as CSV UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise Refused(f"{path}: not a CSV table ({' '.join(str(e).split())[:160]})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if df.empty:
        raise Refused(f"{path}: no rows")
    return df


def numbers(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """A column as floats, NaN where empty; Refused naming the first value that is not a number."""
    values = pd.to_numeric(df[col].str.strip().replace({"": None, "NA": None, "nan": None}), errors="coerce")
    bad = values.isna() & ~df[col].str.strip().isin(["", "NA", "nan"])
    if bad.any():
        raise Refused(f"{path}: column {col!r} holds {df[col][bad].iloc[0]!r} (row {bad.idxmax() + 2}), not a number")
    return values.to_numpy(np.float64)


def class_answers(df: pd.DataFrame, path: Path) -> tuple[np.ndarray, str]:
    """[N, 8] probabilities in AffectNet order, and how they were read (said in config.json and printed)."""
    named = {c: class_index(c) for c in df.columns if not c.isdigit() and c not in KEYS}
    cols = {k: f"prob_{k}" for k in range(NUM_CLASSES) if f"prob_{k}" in df} or \
        {k: c for c, k in named.items() if k is not None and c not in ("pred", "prediction")}
    if len(cols) >= 2:
        if len(set(cols)) < len(cols) or len(cols) != len(set(cols.values())):
            raise Refused(f"{path}: two columns name the same class")
        probs = np.zeros((len(df), NUM_CLASSES))
        for k, c in cols.items():
            probs[:, k] = numbers(df, c, path)
        sums = probs.sum(1)
        if not np.isfinite(probs).all() or (probs < 0).any() or np.abs(sums - 1).max() > 0.01:
            raise Refused(f"{path}: the class columns ({', '.join(cols.values())}) are not probabilities: each row "
                          f"needs numbers from 0 to 1 that sum to 1 (their sums run from {np.nanmin(sums):.3g} to "
                          f"{np.nanmax(sums):.3g}); give softmax outputs, not logits or scores")
        lacking = [CLASSES[k] for k in range(NUM_CLASSES) if k not in cols]
        how = f"probabilities from {', '.join(cols.values())}" + (f" ({', '.join(lacking)}: 0)" if lacking else "")
        return probs / sums[:, None], how
    col = next((c for c in ("pred", "prediction", "predicted") if c in df), None)
    if col is None:
        raise Refused(f"{path}: no answer found: give probability columns (prob_0 ... prob_7, or columns named by "
                      f"class: {', '.join(c.lower() for c in CLASSES)}) or a pred column; its columns are "
                      f"{', '.join(df.columns)}")
    ks = df[col].map(class_index)
    if ks.isna().any():
        value = df[col][ks.isna()].iloc[0]
        near = close_class(value)
        raise Refused(f"{path}: {col} holds {value!r}, not a class (names or AffectNet's numbers 0-7)"
                      + (f"; did you mean {near}?" if near else ""))
    return np.eye(NUM_CLASSES)[ks.astype(int)], (f"one class per image ({col}): ROC and PR curves, calibration and "
                                                 "top-2 accuracy measure that hard answer")


def valence_arousal(df: pd.DataFrame, path: Path) -> np.ndarray:
    """[N, 2] valence and arousal, NaN where not given; Refused for values outside [-1, 1]."""
    va = np.full((len(df), 2), np.nan)
    for j, names in enumerate(VA.values()):
        if col := next((c for c in names if c in df), None):
            va[:, j] = numbers(df, col, path)
            if (outside := np.abs(va[:, j][np.isfinite(va[:, j])]) > 1).any():
                raise Refused(f"{path}: {outside.sum()} {col} values outside [-1, 1]; leave a cell empty where the "
                              "model gives none")
    return va


def rel_key(value: str) -> str:
    """A path as the data's relative paths are written: forward slashes (a Windows path's too), no leading ./"""
    value = value.strip().replace("\\", "/")
    return value[2:] if value.startswith("./") else value


def match_rows(df: pd.DataFrame, samples: list, root: Path | None, path: Path) -> tuple[list[int], list[int], str]:
    """For each of their rows, the index of its sample (or -1), then the samples none of their rows names, and the
    column that matched."""
    col = next((c for c in KEYS if c in df), None)
    if col is None:
        raise Refused(f"{path}: no column names the images: give an id or a path column ({', '.join(KEYS)}); its "
                      f"columns are {', '.join(df.columns)}")
    keys = df[col].map(rel_key)
    if keys.duplicated().any():
        raise Refused(f"{path}: {col} {keys[keys.duplicated()].iloc[0]!r} is on two rows")
    if col == "id":
        where = {s.id: i for i, s in enumerate(samples)}
    else:
        where = {s.path: i for i, s in enumerate(samples)}
        if root is not None:
            base = root if root.is_dir() else root.parent  # a manifest's paths are relative to its folder
            where.update({(base / s.path).resolve().as_posix(): i for i, s in enumerate(samples)})
    names = pd.Series([Path(s.path).name for s in samples])
    by_name = {} if col == "id" or names.duplicated().any() else {n: i for i, n in enumerate(names)}
    rows = [where.get(k, by_name.get(k.rsplit("/", 1)[-1], -1)) for k in keys]  # a file name alone, where unique
    missing = sorted(set(range(len(samples))) - set(rows))
    if all(r < 0 for r in rows):
        raise Refused(f"{path}: none of its {len(df)} rows names an image of the data by its {col} (theirs: "
                      f"{keys.iloc[0]!r}; the data's: {samples[0].id if col == 'id' else samples[0].path!r})")
    return rows, missing, col


def truth_from_run(run: str, split: str) -> tuple[list, dict, dict]:
    """The samples a run (or comma-separated folds) was scored on, with their truth; its config; its metrics' data
    fields."""
    folders = [Path(d) for d in run_list(run)]
    try:
        cfg = json.loads((folders[0] / "config.json").read_text(encoding="utf-8"))
        pred = run_predictions(run, split)
    except (OSError, ValueError) as e:
        raise Refused(f"--like {run}: {e}") from None
    samples = [fdata.Sample(id=r.id, path=r.path, label=int(r.true), valence=r.valence_true, arousal=r.arousal_true)
               for r in pred.itertuples()]
    return samples, cfg, scored_data([d / f"metrics_{split}.json" for d in folders])


def truth_from_data(root: Path, split: str | None) -> tuple[list, dict, str]:
    """The data's samples (of its own split, where given), the config's data fields and the file tag."""
    try:
        index = fdata.read_dataset(root)
    except fdata.DataError as e:
        raise Refused(str(e)) from None
    parts = {s.split for s in index.samples} - {None}
    if split not in (None, "all") and split not in parts:
        raise Refused(f"{root} has no {split} part of its own" + (f" (it has {', '.join(sorted(parts))})" if parts
                                                                   else ": --split all, or --like a run to score "
                                                                   "its test images"))
    samples = [s for s in index.samples if split in (None, "all") or s.split == split]
    tag = f"{index.root.stem if index.root.is_file() else index.root.name}-{split or 'all'}"
    data = {"root": str(index.root), "layout": index.layout, "has_va": index.has_va, "n_samples": len(index.samples)}
    return samples, data, tag


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("predictions", type=Path, help="their CSV: a row per image (see above)")
    truth = p.add_mutually_exclusive_group(required=True)
    truth.add_argument("--like", metavar="RUN", help="score on the images this run was scored on, with "
                       "its truth (a run folder; comma-separated folds taken together)")
    truth.add_argument("--data", type=Path, help="score against this data set's labels (any layout FER Lab reads)")
    p.add_argument("--split", help="with --like: the run's split (default test); with --data: the data's own split "
                   "(default: every image they predicted)")
    p.add_argument("--out", type=Path, required=True, help="the run folder to write (a new one)")
    p.add_argument("--model", help="what made the predictions, as the dashboard names its backbone "
                   "(e.g. 'HSEmotion enet_b0_8_va_mtl')")
    a = p.parse_args(argv)
    try:
        return run(a)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(a) -> int:
    if (a.out / "config.json").exists():
        raise Refused(f"--out {a.out} is a run folder already: give a new one")
    theirs = read_theirs(a.predictions)
    if a.like:
        tag = a.split or "test"
        samples, cfg, scored = truth_from_run(a.like, tag)
        data = {k: v for k, v in (cfg.get("data") or {}).items() if k in ("root", "layout", "n_samples")}
        root = Path(data["root"]) if data.get("root") else None
        extra = {"like": [Path(d).resolve().as_posix() for d in run_list(a.like)]}
    else:
        samples, data, tag = truth_from_data(a.data, a.split)
        root, scored, extra = Path(data["root"]), {"data_root": data["root"], "layout": data["layout"]}, {}
    rows, missing, key = match_rows(theirs, samples, root, a.predictions)
    probs, how = class_answers(theirs, a.predictions)
    va = valence_arousal(theirs, a.predictions)
    matched = [i for i, r in enumerate(rows) if r >= 0]
    df = predictions_frame([samples[rows[i]] for i in matched], probs[matched], va[matched])
    has_va = bool(np.isfinite(va).any() and np.isfinite(df[["valence_true", "arousal_true"]].to_numpy(float)).any())
    if problem := unwritable_folder(a.out):
        raise Refused(f"--out {a.out} {problem}")
    a.out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(a.predictions.read_bytes()).hexdigest()
    m = write_evaluation(a.out, tag, df, **scored, imported=a.predictions.resolve().as_posix(),
                         not_predicted=len(missing))
    atomic_write_json(a.out / "config.json", {
        "schema_version": 1, "name": a.out.resolve().name, "classes": CLASSES,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "imported",
        "backbone": a.model or "imported",
        "weights": {"requested": "imported", "loaded": f"predictions in {a.predictions.name}"},
        "data": {**data, "has_va": has_va},
        "imported": {"file": a.predictions.resolve().as_posix(), "sha256": digest, "rows": len(theirs),
                     "matched_by": key, "answers": how, **extra}})
    print(f"{a.out.name} [{tag}, n={m['n']}]: {summary_line(m)}")
    print(f"read {how}")
    if left := len(rows) - len(matched):
        example = theirs[key].iloc[rows.index(-1)]
        print(f"note: {left} of their {len(rows)} rows name no image scored here (e.g. {example!r}): left out",
              file=sys.stderr)
    if missing:
        print(f"note: {len(missing)} of the {len(samples)} images have no prediction in {a.predictions.name} (e.g. "
              f"{samples[missing[0]].path}): the figures cover the other {m['n']} only", file=sys.stderr)
    print(f"wrote {a.out / f'predictions_{tag}.csv'}, metrics_{tag}.json and config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
