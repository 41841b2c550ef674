"""How long each dashboard page takes to render with large runs.

    python benchmarks/dashboard_load.py [--rows 250000] [--runs-dir DIR]
    python benchmarks/dashboard_load.py --runs-dir artifacts/runs     # the shipped runs, as a fresh clone has them

Writes four synthetic runs (tests/fixture_runs.py; three with valence/arousal, one FER+-like without)
of --rows prediction rows each into a temporary folder (or --runs-dir, reused if it already holds runs),
then renders every page with Streamlit's AppTest in this process and prints a table:
  first = the first page of a fresh server process (Python imports included),
  cold = caches cleared before the page (CSV parsing and curve computation included),
  warm = the same page again (what a user sees when moving between pages, or after any click).
AppTest times the server side (the Python script) only; the browser's drawing is not included.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ["overview", "curves", "confusion", "roc_pr", "valence_arousal", "gallery", "disagreement"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=250_000, help="prediction rows per synthetic run")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="run folders to time (default: synthetic runs in a temporary folder, removed after)")
    args = parser.parse_args(argv)
    if args.runs_dir and not (args.runs_dir.is_dir() and any(args.runs_dir.glob("*/config.json"))):
        parser.error(f"--runs-dir {args.runs_dir} holds no run folders (from the checkout: --runs-dir artifacts/runs)")

    from tests.fixture_runs import make_fixture_runs

    tmp = None if args.runs_dir else tempfile.TemporaryDirectory(prefix="fer-lab-bench-")
    runs_dir = args.runs_dir or Path(tmp.name) / "runs"
    if tmp:
        t = time.perf_counter()
        make_fixture_runs(runs_dir, n=args.rows, images=0, n_boot=5, splits=("val",))
        print(f"wrote 4 synthetic runs x {args.rows:,} rows to {runs_dir} in {time.perf_counter() - t:.1f} s")
    os.environ["FER_LAB_RUNS_DIR"] = str(runs_dir)

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def render(page: str, cold: bool) -> float:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()  # the sidebar's choices; this first run shows the overview, which fills the caches
        if cold:
            st.cache_data.clear()
        t = time.perf_counter()
        if page != "overview":
            at.switch_page(f"views/{page}.py")
        at.run()
        elapsed = time.perf_counter() - t
        if at.exception:
            raise SystemExit(f"{page}: {at.exception[0].value}")
        return elapsed

    t = time.perf_counter()  # the first page of this process: imports (plotly, pyarrow, ...) included
    AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    print(f"first page of a fresh process (imports included): {time.perf_counter() - t:.2f} s")
    rows = []
    for page in PAGES:
        rows.append((page, render(page, cold=True), render(page, cold=False)))
    n_runs = sum(1 for _ in runs_dir.glob("*/config.json"))
    print(f"\nAppTest render time, {n_runs} run folders in {runs_dir}, the app's default choice of them (seconds)")
    print(f"{'page':<18}{'cold':>8}{'warm':>8}")
    for page, cold, warm in rows:
        print(f"{page:<18}{cold:>8.2f}{warm:>8.2f}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
