"""Pool the folds of one cross-validation into one run folder the dashboard shows: the folds' test predictions
taken together, so that every image is predicted once, by the fold model that did not train on it, and scored as
one set (every image counts, so the intervals are narrower than one fold's or one fixed split's).

    python scripts/pool_folds.py artifacts/runs/hse-best-cv5-fold{1..5} --out artifacts/runs/hse-best-cv5

The runs must be the folds of one cross-validation (trained with --fold K/N): the same N, data, split seed and
training arguments, each K once. Fewer than N folds are pooled with a warning: the figures then cover their
images only. --out gets predictions_test.csv, metrics_test.json and a config.json with status
"cross-validation" (docs/run_folder.md). scripts/ensemble.py takes such folders as members like any run, which
ensembles two cross-validations on every image.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fer_core.io import atomic_write_json, unwritable_folder, whole_folder  # noqa: E402
from fer_core.metrics import summary_line, write_evaluation  # noqa: E402
from fer_core.runs import (check_folds, pool_predictions, scored_data, stages_minutes,  # noqa: E402
                           training_precision, training_stages)

def write_pooled(out: Path, run_dirs: list[Path]) -> tuple[dict, dict]:
    """The folds' test predictions as one run folder; returns its metrics and config."""
    configs = [json.loads((d / "config.json").read_text(encoding="utf-8")) for d in run_dirs]
    n_folds = check_folds(run_dirs, configs)
    order = sorted(range(len(run_dirs)), key=lambda i: configs[i]["split"]["fold"])
    run_dirs, configs = [run_dirs[i] for i in order], [configs[i] for i in order]
    df = pool_predictions([d / "predictions_test.csv" for d in run_dirs])
    first = configs[0]
    config = {
        "schema_version": first["schema_version"], "name": out.resolve().name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "cross-validation",
        "backbone": first.get("backbone"), "img_size": first.get("img_size"), "classes": first["classes"],
        "preset": first.get("preset"),
        "weights": {"requested": "cross-validation",
                    "loaded": f"{len(run_dirs)} of {n_folds} fold runs' models, each on the images it did not "
                              "train on"},
        "data": first.get("data"),
        "split": {"seed": first["split"].get("seed"), "source": "cross-validation", "folds": n_folds,
                  "counts": {"test": len(df)}},
        "hardware": first.get("hardware"), "precision": training_precision(first),
        "train_minutes": stages_minutes(run_dirs),
        "fold_runs": [{"run": Path(d).as_posix(), "fold": c["split"]["fold"], "stages": training_stages(d)}
                      for d, c in zip(run_dirs, configs)]}
    with whole_folder(out) as partial:  # all its files, or none
        metrics = write_evaluation(partial, "test", df, folds=[d.name for d in run_dirs],
                                   **scored_data(d / "metrics_test.json" for d in run_dirs))
        atomic_write_json(partial / "config.json", config)
    return metrics, config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="the fold run folders")
    p.add_argument("--out", type=Path, required=True, help="the pooled run folder to write (new or empty)")
    a = p.parse_args()
    if a.out.exists() and (not a.out.is_dir() or any(a.out.iterdir())):
        p.error(f"--out {a.out} " + ("exists and is not empty" if a.out.is_dir() else "is a file")
                + ": choose a new folder")
    if a.out is not None and (why := unwritable_folder(a.out)):  # said before the work, not after it
        p.error(f"--out {a.out} {why}")
    missing = [str(d) for d in a.runs if not (d / "config.json").is_file() or
               not (d / "predictions_test.csv").is_file()]
    if missing:
        p.error(f"not finished run folders (no config.json or predictions_test.csv): {', '.join(missing)}")
    try:
        m, cfg = write_pooled(a.out, a.runs)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n_folds, pooled = cfg["split"]["folds"], len(cfg["fold_runs"])
    if pooled < n_folds:
        print(f"warning: {pooled} of {n_folds} folds: the figures cover their images only", file=sys.stderr)
    lo, hi = m["ci95"]["accuracy"]
    print(f"{a.out.name} ({pooled} of {n_folds} folds pooled, n={m['n']}, accuracy 95% CI [{lo:.3f}, {hi:.3f}]): "
          f"{summary_line(m)}")
    print(f"wrote {a.out}: predictions_test.csv, metrics_test.json, config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
