"""Paired comparison of runs on the same samples: each metric's difference with a paired bootstrap 95% interval, the
images only one of the two answers right (each way: what McNemar's test weighs), and McNemar's exact test on accuracy
(with Holm's adjustment for the pairs tested together, where there are several). Prints a markdown table.

    python scripts/compare_runs.py artifacts/runs/A artifacts/runs/B artifacts/runs/C   # B − A, then C − B
    python scripts/compare_runs.py --base artifacts/runs/A artifacts/runs/B artifacts/runs/C   # B − A, C − A
    python scripts/compare_runs.py A-fold1,A-fold2,A-fold3 B-fold1,B-fold2,B-fold3   # cross-validation folds pooled

A comma-separated list of runs stands for their predictions taken together (e.g. the folds of one
cross-validation, whose test parts cover every image once); an image may appear in only one of them.

Two cross-validations on the same folds (pooled folders whose fold runs lie beside them, or comma-separated fold
runs) also get a fold-by-fold line: each fold's accuracy difference and the corrected resampled t-test (Nadeau &
Bengio, 2003), which counts how much a recipe's figure moves from one training set to another; the bootstrap and
McNemar's test count only which images were drawn.

Only the images both runs predicted are compared. Where that is fewer than either run has, the n column says so
("66 of 640 / 320": shared, then the run's and the other's count) and a warning names how many were left out.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fer_core.metrics import fold_by_fold, format_p, holm, paired_comparison  # noqa: E402
from fer_core.runs import cross_validated, pool_predictions, run_list, run_predictions, runs_label  # noqa: E402

COLUMNS = [("accuracy", "Δ accuracy"), ("macro_f1", "Δ macro-F1"), ("valence_ccc", "Δ V CCC"),
           ("arousal_ccc", "Δ A CCC"), ("valence_rmse", "Δ V RMSE"), ("arousal_rmse", "Δ A RMSE")]


def cell(m: dict | None) -> str:
    if not m or m["diff"] is None:
        return "–"
    ci = m["ci95"]
    return f"{m['diff']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")


def _fold_dir(pooled: Path, recorded: str) -> Path:
    """A fold run of a pooled folder: the run of its name beside the folder, else where its config.json records it
    (absolute, or relative to the project root or to here)."""
    p = Path(recorded)
    return next((c for c in (pooled.parent / p.name, p if p.is_absolute() else ROOT / p, p) if c.is_dir()),
                pooled.parent / p.name)


def fold_predictions(arg: str, split: str) -> list | None:
    """Each fold's (predictions, training images) of a cross-validation: comma-separated runs, or a pooled folder
    whose fold runs lie beside it or where it records them; None for anything else. The training images are those the
    fold's config.json counts (its validation part and what --limit left out are not trained on)."""
    parts = run_list(arg)
    if len(parts) == 1:
        try:
            config = json.loads((Path(arg) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        parts = [str(_fold_dir(Path(arg), f["run"])) for f in config.get("fold_runs") or []] \
            if cross_validated(config) else []
    if len(parts) < 2:
        return None
    try:
        return [(pool_predictions([Path(d) / f"predictions_{split}.csv"]),
                 json.loads((Path(d) / "config.json").read_text(encoding="utf-8"))["split"]["counts"]["train"])
                for d in parts]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fold_by_fold_line(new: str, old: str, split: str) -> str | None:
    """A line on the per-fold accuracy differences and their corrected resampled t-test, where both are
    cross-validations whose folds test the same images."""
    a, b = fold_predictions(new, split), fold_predictions(old, split)
    if not a or not b or not (folds := fold_by_fold(a, b)):
        return None
    diffs = folds["diffs"]
    return (f"{runs_label(new)} − {runs_label(old)}, fold by fold ({len(diffs)} folds, the same test images): "
            f"accuracy {', '.join(f'{d:+.3f}' for d in diffs)}; mean {folds['mean']:+.3f}, corrected "
            f"resampled t-test t = {folds['t']:.2f}, p = {format_p(folds['p'])}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--base", help="compare every run with this one (default: each with the one before it)")
    p.add_argument("--split", default="test", help="split to compare on (default: test)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    a = p.parse_args()
    pairs = [(a.base, r) for r in a.runs if r != a.base] if a.base else list(zip(a.runs, a.runs[1:]))
    if not pairs:
        p.error("give at least two runs, or --base and one run")
    lines, p_values = [], []
    for old, new in pairs:
        try:
            pred_new, pred_old = run_predictions(new, a.split), run_predictions(old, a.split)
            r = paired_comparison(pred_new, pred_old, n_boot=a.n_boot)
        except (OSError, ValueError) as e:
            print(f"error: {runs_label(new)} vs {runs_label(old)}: {e}", file=sys.stderr)
            return 1
        n = str(r["n"])
        if r["n"] < max(len(pred_new), len(pred_old)):
            n += f" of {len(pred_new)} / {len(pred_old)}"
            print(f"warning: {runs_label(new)} vs {runs_label(old)}: only the {r['n']} {a.split} images both runs "
                  f"predicted are compared: {runs_label(new)} has {len(pred_new)} ({len(pred_new) - r['n']} left out), "
                  f"{runs_label(old)} {len(pred_old)} ({len(pred_old) - r['n']} left out)", file=sys.stderr)
        lines.append(f"| {runs_label(new)} | {runs_label(old)} | {n} | "
                     + " | ".join(cell(r["metrics"].get(k)) for k, _ in COLUMNS)
                     + f" | {r['a_only_right']} / {r['b_only_right']} | {format_p(r['mcnemar_p'])} |")
        p_values.append(r["mcnemar_p"])
    several = len(lines) > 1  # pairs tested together: Holm's adjustment keeps the chance of any false call below 5%
    print("| run | compared with | n | " + " | ".join(h for _, h in COLUMNS) + " | right only here / only there "
          "| McNemar p |" + (" Holm p |" if several else ""))
    print("|" + "---|" * (len(COLUMNS) + 5 + several))
    print("\n".join(line + (f" {format_p(p)} |" if several else "") for line, p in zip(lines, holm(p_values))))
    folds = [line for old, new in pairs if (line := fold_by_fold_line(new, old, a.split))]
    if folds:
        print("\n" + "\n".join(folds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
