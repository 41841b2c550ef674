"""Bring a model's predictions made outside FER Lab (your own code, a published model, another tool) into it: scored
with the same metrics and written as a run folder that the dashboard compares with FER Lab's runs, image by image.

    python scripts/import_predictions.py theirs.csv --like artifacts/runs/hse-best-cv5 --out artifacts/runs/theirs
    python scripts/import_predictions.py theirs.csv --data ../shared/data/affectnet8-4k --out artifacts/runs/theirs

theirs.csv holds a row per image: an `id` or a `path` column (relative to the data folder, absolute, or the file name
alone where that is unique; both, where they agree) and the answer, either probabilities per class (columns named by
class: `neutral`, `happy` or `happiness`, `sad`, ...; a class the model lacks counts as 0; rows rounded to 0.05 of 1 are
rescaled) or one class per row (`pred`), and optionally `valence` and `arousal` (or `valence_pred`, `arousal_pred`) in
[-1, 1]. Classes given by number (`pred` 3, or `prob_0` ... `prob_7`) need --numbering: each data set numbers them its
own way (affectnet is FER Lab's own). A row with empty answer cells (no face found) counts as not predicted.
Comma-, semicolon- (with decimal commas) or tab-separated, UTF-8, UTF-16 or Windows-1252.

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
from fer_core.evaluate import ferplus_paper_rule, paper_rule_line, predictions_frame  # noqa: E402
from fer_core.io import atomic_write_json, unwritable_folder, whole_folder  # noqa: E402
from fer_core.labels import CLASSES, NUM_CLASSES, class_index, close_class  # noqa: E402
from fer_core.labels import NUMBERINGS as LABEL_NUMBERINGS  # noqa: E402
from fer_core.metrics import summary_line, write_evaluation  # noqa: E402
from fer_core.runs import run_list, run_predictions, scored_data  # noqa: E402
from fer_core.tables import KEYS, match_rows, read_table  # noqa: E402
from fer_core.tables import TableError as Refused  # noqa: E402  (their file or the arguments cannot be scored)

VA = {"valence": ("valence_pred", "valence"), "arousal": ("arousal_pred", "arousal")}


# What each number means, by the data set whose numbering a model learned (--numbering): a number alone cannot say.
NUMBERINGS = {"affectnet": dict(enumerate(CLASSES)),
              "ferplus": dict(enumerate(["Neutral", "Happy", "Surprise", "Sad", "Anger", "Disgust", "Fear",
                                         "Contempt"])),
              "fer2013": LABEL_NUMBERINGS["FER2013"], "rafdb": LABEL_NUMBERINGS["RAF-DB"]}
NUMBERED = ("--numbering affectnet (0 Neutral ... 7 Contempt, FER Lab's own files), ferplus (0 neutral, 1 happiness, "
            "2 surprise, 3 sadness, ...), fer2013 (0 Angry ... 6 Neutral) or rafdb (1 Surprise ... 7 Neutral)")
MISSING = fdata.MISSING_WORDS | {"", "-"}


def numbers(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """A column as floats, NaN where empty or written as missing (NA, #N/A, null, ...); Refused naming the first value
    that is not a number."""
    text = df[col].str.strip()
    if df.attrs.get("decimal_comma"):  # 0,53 from a spreadsheet that separates with semicolons
        text = text.str.replace(",", ".", regex=False)
    missing = text.str.lower().isin(MISSING)
    values = pd.to_numeric(text.where(~missing), errors="coerce")
    if (bad := values.isna() & ~missing).any():
        row = df.index[bad.to_numpy().argmax()] + 2
        raise Refused(f"{path}: column {col!r} holds {df[col][bad].iloc[0]!r} (line {row}), not a number")
    return values.to_numpy(np.float64)


def _numbered(numbering: str | None, what: str, path: Path) -> dict[int, int]:
    """Their class numbers -> AffectNet's indices, for --numbering; Refused where it is not given."""
    if numbering is None:
        raise Refused(f"{path}: {what} number the classes, and each data set numbers them differently: say whose "
                      f"numbers they are, {NUMBERED}; or name the classes instead")
    return {k: CLASSES.index(name) for k, name in NUMBERINGS[numbering].items()}


def class_answers(df: pd.DataFrame, path: Path, numbering: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """[N, 8] probabilities in AffectNet order, which rows give an answer at all (a face their tool did not find
    gives empty cells), and how they were read (said in config.json and printed)."""
    numbered = sorted(int(c[5:]) for c in df.columns if c.startswith("prob_") and c[5:].isdigit())
    if numbered:
        to = _numbered(numbering, f"the columns {', '.join(f'prob_{k}' for k in numbered)}", path)
        if unknown := [k for k in numbered if k not in to]:
            raise Refused(f"{path}: prob_{unknown[0]} is no class in the {numbering} numbering "
                          f"({min(to)}-{max(to)})")
        cols = {to[k]: f"prob_{k}" for k in numbered}
    else:
        cols = {}
        for c in df.columns:
            if c not in KEYS and c not in ("pred", "prediction", "predicted") and (k := class_index(c)) is not None \
                    and not c.isdigit():
                if k in cols:
                    raise Refused(f"{path}: the columns {cols[k]} and {c} both name {CLASSES[k]}")
                cols[k] = c
    used = set(cols.values()) | set(KEYS) | {c for names in VA.values() for c in names}
    others = [c for c in df.columns if c not in used and c not in ("pred", "prediction", "predicted", "true")]
    if len(cols) >= 2:
        probs = np.full((len(df), NUM_CLASSES), 0.0)
        for k, c in cols.items():
            probs[:, k] = numbers(df, c, path)
        given = np.isfinite(probs[:, list(cols)])
        answered = given.any(axis=1)
        if (partly := answered & ~given.all(axis=1)).any():
            raise Refused(f"{path}: line {df.index[partly.argmax()] + 2} leaves some class columns empty and fills "
                          "others: leave all of a row's empty where the model gave no answer")
        sums = np.where(answered, probs.sum(1), 1.0)
        ignored = f" (not read: {', '.join(others)})" if others else ""
        if (probs[answered] < 0).any():
            raise Refused(f"{path}: the class columns hold negative values: logits or scores, not probabilities; "
                          "give softmax outputs")
        if not answered.any():
            raise Refused(f"{path}: every row leaves the class columns empty: no answer to score")
        if np.abs(sums[answered] - 100).max() < 5:
            raise Refused(f"{path}: the class columns are percentages (rows sum to 100): give them divided by 100")
        if np.abs(sums - 1).max() > 0.05:  # rounded to two decimals, 8 classes may be 0.04 off
            raise Refused(f"{path}: the class columns{ignored} are not probabilities that sum to 1 in each row: their "
                          f"sums run from {sums[answered].min():.3g} to {sums[answered].max():.3g}")
        lacking = [CLASSES[k] for k in range(NUM_CLASSES) if k not in cols]
        how = f"probabilities from {', '.join(cols.values())}" + (f" ({', '.join(lacking)}: 0)" if lacking else "")
        return np.nan_to_num(probs) / sums[:, None], answered, how
    col = next((c for c in ("pred", "prediction", "predicted") if c in df), None)
    if col is None:
        raise Refused(f"{path}: no answer found: give probability columns (prob_0 ... prob_7 with --numbering, or "
                      f"columns named by class: {', '.join(c.lower() for c in CLASSES)}) or a pred column; its "
                      f"columns are {', '.join(df.columns)}")
    text = df[col].str.strip()
    answered = ~text.str.lower().isin(MISSING).to_numpy()
    as_number = pd.to_numeric(text, errors="coerce")
    is_number = np.isfinite(as_number) & (as_number == as_number.round())  # inf, 1e400: no class number
    to = _numbered(numbering, f"the {col} column's values", path) if is_number.any() else {}
    ks = [to.get(int(n)) if num else class_index(t) for t, n, num in zip(text, as_number, is_number)]
    if bad := [i for i, k in enumerate(ks) if k is None and answered[i]]:
        value = text.iloc[bad[0]]
        near = None if is_number.iloc[bad[0]] else close_class(value)
        raise Refused(f"{path}: {col} holds {value!r} (line {df.index[bad[0]] + 2}), not a class"
                      + (f" in the {numbering} numbering ({min(to)}-{max(to)})" if is_number.iloc[bad[0]] else "")
                      + (f"; did you mean {near}?" if near else ""))
    probs = np.zeros((len(df), NUM_CLASSES))
    probs[answered, [k for k, a in zip(ks, answered) if a]] = 1
    return probs, answered, (f"one class per image ({col}): ROC and PR curves, calibration and top-2 accuracy "
                             "measure that hard answer")


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


def truth_from_data(root: Path, split: str | None) -> tuple[list, list, dict, str]:
    """The data's samples, those of its own split (where given), the config's data fields and the file tag."""
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
    return index.samples, samples, data, tag


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
    p.add_argument("--numbering", choices=list(NUMBERINGS), help="whose class numbers a pred column or prob_0 ... "
                   "prob_7 columns use (needed for numbers; class names need none)")
    a = p.parse_args(argv)
    try:
        return run(a)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the disk refused (full, read-only): the folder is written whole or not at all
        print(f"error: {e}", file=sys.stderr)
        return 1


def run(a) -> int:
    if (a.out / "config.json").exists():
        raise Refused(f"--out {a.out} is a run folder already: give a new one")
    if a.out.is_dir() and any(a.out.iterdir()):
        raise Refused(f"--out {a.out} is a folder with files in it: give a new one")
    theirs = read_table(a.predictions)
    if a.like:
        tag = a.split or "test"
        samples, cfg, scored = truth_from_run(a.like, tag)
        pool = samples
        data = {k: v for k, v in (cfg.get("data") or {}).items() if k in ("root", "layout", "n_samples")}
        root = Path(data["root"]) if data.get("root") else None
        extra = {"like": [Path(d).resolve().as_posix() for d in run_list(a.like)]}
    else:
        pool, samples, data, tag = truth_from_data(a.data, a.split)
        root, scored, extra = Path(data["root"]), {"data_root": data["root"], "layout": data["layout"]}, {}
    # all the data's images: file names must tell them apart
    rows, key = match_rows(theirs, [s.id for s in pool], [s.path for s in pool], root, a.predictions)
    if pool is not samples:  # rows for the data's other parts: images not scored here
        at = {id(s): i for i, s in enumerate(samples)}
        rows = [at.get(id(pool[r]), -1) if r >= 0 else -1 for r in rows]
    probs, answered, how = class_answers(theirs, a.predictions, a.numbering)
    va = valence_arousal(theirs, a.predictions)
    matched = [i for i, r in enumerate(rows) if r >= 0 and answered[i]]
    if not matched:
        raise Refused(f"{a.predictions}: the rows that name an image of the data give no answer (empty cells)")
    # the images they did not answer, where the images to answer are known: a run's, or a data set's own split
    missing = sorted(set(range(len(samples))) - {rows[i] for i in matched}) if a.like or a.split else []
    df = predictions_frame([samples[rows[i]] for i in matched], probs[matched], va[matched])
    has_va = bool(np.isfinite(va).any() and np.isfinite(df[["valence_true", "arousal_true"]].to_numpy(float)).any())
    if problem := unwritable_folder(a.out):
        raise Refused(f"--out {a.out} {problem}")
    digest = hashlib.sha256(a.predictions.read_bytes()).hexdigest()
    paper = ferplus_paper_rule(df, root) if data.get("layout") == "ferplus" and root else None
    config = {
        "schema_version": 1, "name": a.out.resolve().name, "classes": CLASSES,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "imported",
        "backbone": a.model or f"imported from {a.predictions.name}",
        "weights": {"requested": "imported", "loaded": f"predictions in {a.predictions.name}"},
        "data": {**data, "has_va": has_va},
        "imported": {"file": a.predictions.resolve().as_posix(), "sha256": digest, "rows": len(theirs),
                     "matched_by": key, "answers": how, **extra}}
    with whole_folder(a.out) as partial:  # all its files, or none
        m = write_evaluation(partial, tag, df, **scored, imported=a.predictions.resolve().as_posix(),
                             not_predicted=len(missing), **({"ferplus_paper_rule": paper} if paper else {}))
        atomic_write_json(partial / "config.json", config)
    print(f"{a.out.name} [{tag}, n={m['n']}]: {summary_line(m)}")
    print(f"read {how}")
    if paper:
        print(paper_rule_line(paper))
    if left := sum(r < 0 for r in rows):
        example = theirs[key.split(" and ")[0]].iloc[rows.index(-1)]
        print(f"note: {left} of their {len(rows)} rows name no image scored here (e.g. {example!r}): left out",
              file=sys.stderr)
    if blank := int(sum(r >= 0 for r in rows) - len(matched)):
        print(f"note: {blank} of their rows give no answer (empty cells: no face found?): counted as not predicted",
              file=sys.stderr)
    if missing:
        print(f"note: {len(missing)} of the {len(samples)} images have no prediction in {a.predictions.name} (e.g. "
              f"{samples[missing[0]].path}): the figures cover the other {m['n']} only", file=sys.stderr)
    print(f"wrote {a.out / f'predictions_{tag}.csv'}, metrics_{tag}.json and config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
