"""Print the study-style results table (markdown) for run folders, with bootstrap 95% intervals, and below it
mean ± sd over runs that repeat one recipe with different seeds (or on different cross-validation folds).

    python scripts/results_table.py artifacts/runs/* [--split test]
    python scripts/results_table.py artifacts/runs/dlib-best-cv5-fold* --pool dlib-best-cv5

--pool NAME adds one row for the runs' predictions taken together: the N folds of one cross-validation (python -m
fer_core.train ... --fold K/N; refused otherwise, as by pool_folds.py), whose test parts cover every image once. In
the mean ± sd table below, a cross-validation's folds are one row named after them without their -foldK suffix
("dlib-best-cv5 (5 folds)").
--latex prints a LaTeX booktabs table instead (one row per metric, one column per run, best run in bold), the one
the dashboard's overview downloads, and below it the mean ± sd of each recipe with several seeds (or folds) as a
second table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import report, runs  # noqa: E402
from fer_core.metrics import compute_metrics  # noqa: E402

SEED_COLUMNS = ["Accuracy", "Macro F1", "Valence CCC", "Arousal CCC", "Valence RMSE", "Arousal RMSE"]


def fmt(m: dict, key: str, sub: str | None = None, ci_key: str | None = None) -> str:
    v = m.get(key) if sub is None else (m.get(key) or {}).get(sub)
    return report.value_ci(v, (m.get("ci95") or {}).get(ci_key) if ci_key else None)


def skip_reason(d: Path, split: str) -> str | None:
    """Why run folder ``d`` has no row for ``split``, or None when it has one."""
    if not d.is_dir():
        return "a file, not a run folder" if d.exists() else "no such folder"
    if not (d / "config.json").is_file():
        return "no config.json: not a run folder"
    if not (d / f"metrics_{split}.json").is_file():
        have = sorted(f.stem[len("metrics_"):] for f in d.glob("metrics_*.json"))
        return f"no metrics_{split}.json" + (f" (it has {', '.join(have)})" if have else " (it holds no results)")
    return None


def rows(run_dirs, split):
    """(name, config, metrics) of each folder that has results on ``split``; a warning on stderr for each that has
    not."""
    dirs = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))  # a folder given twice: one row
    names = [d.name for d in dirs]
    for d in dirs:
        why = skip_reason(d, split)
        if why is None:
            try:
                c, m = (json.loads((d / f).read_text()) for f in ("config.json", f"metrics_{split}.json"))
            except (OSError, ValueError) as e:
                why = f"unreadable config.json or metrics_{split}.json ({e})"
            else:
                if isinstance(c, dict) and isinstance(m, dict):
                    # folders of one name in other places (a copy beside the original): told apart by their parent
                    yield (d.name if names.count(d.name) == 1 else f"{d.parent.name}/{d.name}"), c, m
                    continue
                why = f"config.json or metrics_{split}.json does not hold a JSON object"
        print(f"warning: skipped {d}: {why}", file=sys.stderr)


def row_dirs(name: str, run_dirs, pool: str | None) -> list[Path]:
    """The run folders behind the row ``name``: a --pool row's, all of them; another row's, its own."""
    dirs = [Path(d) for d in run_dirs]
    return dirs if pool and name.startswith(f"{pool} (") else [d for d in dirs
                                                               if d.resolve().name == name.split("/")[-1]][:1]


def minutes(config: dict, dirs: list[Path]) -> str:
    """Training minutes of a row's run with the stages it started from (a FER+ stage; a --pool row's config holds
    them already), "–" where some stage does not say."""
    total = runs.stages_minutes(dirs) if len(dirs) == 1 else config.get("train_minutes")
    return "–" if total is None else f"{total:.1f}"


def labelled_ids(split: str, dirs: list[Path]):
    """The images (id and label together) a row was scored on, from its run folders' predictions; None where they
    are not at hand."""
    from fer_core.report_errors import labelled_correctness

    try:
        return labelled_correctness(runs.pool_predictions([d / f"predictions_{split}.csv" for d in dirs])).index
    except (OSError, ValueError, KeyError):
        return None


def pooled(run_dirs, split) -> tuple[dict, dict]:
    """(config, metrics with bootstrap intervals) of the folds of one cross-validation taken together, each image
    once: the config holds the training minutes of every fold and the first stage they share, as pool_folds.py
    counts them. Exits with a message where the runs are not the folds of one cross-validation."""
    dirs = [Path(d) for d in run_dirs]
    try:
        n_folds = runs.check_folds(dirs, [json.loads((d / "config.json").read_text(encoding="utf-8")) for d in dirs])
        df = runs.pool_predictions([d / f"predictions_{split}.csv" for d in dirs])
    except (OSError, ValueError) as e:
        sys.exit(f"error: --pool: {e}")
    if len(dirs) < n_folds:
        print(f"warning: --pool: {len(dirs)} of {n_folds} folds: the figures cover their images only",
              file=sys.stderr)
    return {"train_minutes": runs.stages_minutes(dirs)}, compute_metrics(df)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (their predictions_<split>.csv and metrics_<split>.json)")
    p.add_argument("--split", default="test", help="split to tabulate (default: test)")
    p.add_argument("--pool", metavar="NAME", help="add a row NAME for the runs' predictions taken together: the folds "
                                                  "of one cross-validation")
    p.add_argument("--latex", action="store_true", help="print a LaTeX booktabs table instead of markdown")
    a = p.parse_args()
    found = list(rows(a.runs, a.split))
    if not found:
        print(f"error: none of the given folders has config.json and metrics_{a.split}.json: nothing to show",
              file=sys.stderr)
        sys.exit(2)
    if a.pool:
        dirs = [d for d in a.runs if (Path(d) / f"predictions_{a.split}.csv").is_file()]
        for d in a.runs:
            if d not in dirs and skip_reason(Path(d), a.split) is None:  # the others were named above
                print(f"warning: left {d} out of --pool {a.pool}: no predictions_{a.split}.csv", file=sys.stderr)
        if dirs:
            found.append((f"{a.pool} ({len(dirs)} runs pooled)", *pooled(dirs, a.split)))
    configs = {name: c for name, c, _ in found}
    groups = runs.seed_groups(configs)
    summary = report.seed_summary(report.results_table({name: m for name, _, m in found})[0], groups,
                                  fold_groups={g[0] for g in groups if runs.folds_of(configs[g[0]])}) \
        if groups else pd.DataFrame()
    if a.latex:  # the best in bold among the runs scored on the same images with the same labels, as the overview
        ranked = report.same_image_groups({name: labelled_ids(a.split, row_dirs(name, a.runs, a.pool))
                                           for name, _, _ in found})
        caption = report.latex_caption(a.split, [m for _, _, m in found], grouped=len(ranked) > 1,
                                       configs=[c for _, c, _ in found])
        print(report.latex_table(*report.results_table({name: m for name, _, m in found}), caption, groups=ranked,
                                 n={name: m.get("n") for name, _, m in found}), end="")
        if not summary.empty:  # the recipes with several seeds: the table to quote when comparing recipes
            print("\n" + report.latex_seed_table(summary, a.split), end="")
        return
    paper = any(m.get("ferplus_paper_rule") for _, _, m in found)  # FER+: the figure to set beside its paper's
    print("| run | n | accuracy [95% CI] | " + ("FER+ paper's rule: n, accuracy [95% CI] | " if paper else "")
          + "macro-F1 [95% CI] | kappa | alpha | V RMSE | A RMSE | V MAE | A MAE "
          "| V r | A r | V SAGR | A SAGR | V CCC [95% CI] | A CCC [95% CI] | train min, all stages |")
    print("|" + "---|" * (17 + paper))
    for name, c, m in found:
        rule = m.get("ferplus_paper_rule") or {}
        rule = f"{rule['n']}, {report.value_ci(rule.get('accuracy'), rule.get('ci95'))} | " if rule else "– | "
        print(f"| {name} | {m['n']} | {fmt(m, 'accuracy', ci_key='accuracy')} | {rule if paper else ''}"
              f"{fmt(m, 'macro_f1', ci_key='macro_f1')} "
              f"| {fmt(m, 'cohen_kappa')} | {fmt(m, 'krippendorff_alpha')} "
              f"| {fmt(m, 'valence', 'rmse')} | {fmt(m, 'arousal', 'rmse')} | {fmt(m, 'valence', 'mae')} "
              f"| {fmt(m, 'arousal', 'mae')} | {fmt(m, 'valence', 'pearson')} | {fmt(m, 'arousal', 'pearson')} "
              f"| {fmt(m, 'valence', 'sagr')} | {fmt(m, 'arousal', 'sagr')} "
              f"| {fmt(m, 'valence', 'ccc', 'valence_ccc')} | {fmt(m, 'arousal', 'ccc', 'arousal_ccc')} "
              f"| {minutes(c, row_dirs(name, a.runs, a.pool))} |")
    if not summary.empty:
        cols = [c for c in SEED_COLUMNS if c in summary]
        print("\n| recipe | runs | " + " | ".join(cols) + " |")
        print("|" + "---|" * (len(cols) + 2))
        for recipe, r in summary.iterrows():
            print(f"| {recipe} | {r['runs']} | " + " | ".join(r[c] for c in cols) + " |")


if __name__ == "__main__":
    main()
