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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000, help="prediction rows per run")
    parser.add_argument("--runs-dir", type=Path, default=None, help="where to write the runs (default: temp)")
    args = parser.parse_args(argv)

    from tests.fixture_runs import make_fixture_runs

    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="fer-lab-bench-")) / "runs"
    if not (runs_dir.is_dir() and any(runs_dir.glob("*/config.json"))):
        t = time.perf_counter()
        make_fixture_runs(runs_dir, n=args.rows, images=0, n_boot=5, splits=("val",))
        print(f"wrote 4 runs x {args.rows:,} rows to {runs_dir} in {time.perf_counter() - t:.1f} s")
    os.environ["FER_LAB_RUNS_DIR"] = str(runs_dir)

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def render(page: str) -> float:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
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
        st.cache_data.clear()
        cold = render(page)
        warm = render(page)
        rows.append((page, cold, warm))
    n_runs = sum(1 for _ in runs_dir.glob("*/config.json"))
    print(f"\nAppTest render time, {n_runs} run folders in {runs_dir}, the app's default choice of them (seconds)")
    print(f"{'page':<18}{'cold':>8}{'warm':>8}")
    for page, cold, warm in rows:
        print(f"{page:<18}{cold:>8.2f}{warm:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
