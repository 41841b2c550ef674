"""Accuracy by subgroup, as the dashboard's Subgroups page shows it: for each property of the images (brightness,
contrast, sharpness, colour, size; head roll and turn from AffectNet's landmarks; FER+ annotator agreement; whether the
image copies one of the run's training images; a CSV manifest's other columns; the columns of a --groups file), each
run's accuracy per group with its Wilson 95% interval, its gap to what the group's mix of classes alone would give, and
a permutation test within classes of whether the property matters. Prints markdown tables.

    python scripts/subgroups.py artifacts/runs/hse-best-cv5 --data ../shared/data/affectnet8-4k
    python scripts/subgroups.py RUN_A RUN_B --by brightness "head turn" --bins 4
    python scripts/subgroups.py RUN --groups groups.csv   # an id or path column, then one column per property
    python scripts/subgroups.py RUN --groups groups.csv --called Anger   # Anger seen in faces labelled otherwise
    python scripts/subgroups.py RUN --groups groups.csv --by gender --then age   # gender by age

The images are looked for where the run's metrics file says it was scored (else its config's data root), or under
--data. Looking at many properties, expect one in twenty p-values under 0.05 by chance alone.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import subgroups as G  # noqa: E402
from fer_core.data import images_root  # noqa: E402
from fer_core.labels import CLASSES, class_index, close_class  # noqa: E402
from fer_core.runs import run_predictions  # noqa: E402
from fer_core.tables import TableError, read_table  # noqa: E402


def data_of(run: Path, split: str, data: str | None) -> tuple[str | None, str | None, str | None]:
    """(the folder the run's image paths are relative to, its data's layout, the data root as given)."""
    config, metrics = ({}, {})
    for name, into in (("config.json", config), (f"metrics_{split}.json", metrics)):
        try:
            into.update(json.loads((run / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
    root = data or metrics.get("data_root") or (config.get("data") or {}).get("root")
    layout = metrics.get("layout") or (config.get("data") or {}).get("layout")
    return (str(images_root(root)) if root and Path(root).exists() else None), layout, root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (their predictions_<split>.csv)")
    p.add_argument("--split", default="test", help="the split whose predictions to group (default: test)")
    p.add_argument("--data", help="where the images are, if not where the runs were scored")
    p.add_argument("--by", nargs="+", metavar="PROPERTY", help="only these properties (default: every one at hand)")
    p.add_argument("--groups", help="a CSV of groups: an id or path column, then one column per property")
    p.add_argument("--then", metavar="PROPERTY", help="cross each property with this one (gender by age): each "
                   "pair of groups a group")
    p.add_argument("--bins", type=int, default=5, help="equal-count bins for numbers (default 5)")
    p.add_argument("--called", metavar="CLASS", help="instead of accuracy, how often each run calls this class an "
                   "image labelled otherwise (its false alarms: anger seen in one group's faces more than another's)")
    a = p.parse_args(argv)
    if a.bins < 2:
        p.error("--bins must be 2 or more")
    called = class_index(a.called) if a.called else None
    if a.called and called is None:
        near = close_class(a.called)
        p.error(f"--called {a.called}: not a class{f' ({near}?)' if near else ''}; the classes: {', '.join(CLASSES)}")
    preds, found = {}, {}
    try:
        groups = read_table(a.groups) if a.groups else None
        for run in a.runs:
            name = Path(run).name
            preds[name] = pred = run_predictions(run, a.split)
            root, layout, data = data_of(Path(run), a.split, a.data)
            found[name] = G.properties(pred, root, layout, data, G.training_files(run, root))
            if groups is not None:
                found[name].update(G.groups_file(groups, pred, root, a.groups))
    except (TableError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = list(dict.fromkeys(k for props in found.values() for k in props))
    unknown = [b for b in [*(a.by or []), *([a.then] if a.then else [])] if b not in names]
    if unknown or not names:
        print(f"error: {'no property at hand' if not names else ', '.join(map(repr, unknown)) + ' not at hand'}; "
              f"the runs' images give {', '.join(names) or 'none (give --data, the folder of the images)'}",
              file=sys.stderr)
        return 2
    for prop in [b for b in a.by or names if b != a.then]:
        values = {r: v[prop] for r, v in found.items() if prop in v}
        if a.then:
            values = G.crossed(values, {r: v[a.then] for r, v in found.items() if a.then in v}, a.bins)
            prop = f"{prop} · {a.then}"
        result = G.subgroup_table(preds, values, a.bins, called)
        groups = result.table["group"]
        if groups.nunique() < 2:
            one = groups.iloc[0] if len(groups) else None
            print(f"## {prop}\n\n" + ("No values" if one is None else f"Every value has fewer than {G.MIN_GROUP} "
                  "images" if one == G.POOLED else f"One group only ({one})") + ": nothing to compare.\n")
            continue
        shown = G.display_table(result).reset_index()
        print(f"## {prop}{'' if called is None else f' ({result.measure})'}\n\n| " + " | ".join(shown.columns) + " |\n|"
              + "---|" * len(shown.columns))
        print("\n".join("| " + " | ".join(map(str, row)) + " |" for row in shown.itertuples(index=False)))
        notes = [f"{n} of {r}'s {len(preds[r])} images have no value: left out"
                 for r, n in result.left_out.items() if n]
        notes += [] if result.same_images else ["the runs were scored on different images: bins cut over all of them"]
        print("".join(f"\n{note}." for note in notes), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
