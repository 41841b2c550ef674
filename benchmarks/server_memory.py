"""The dashboard server's memory while many short sessions use it, as on one server shared by a lab (Linux: /proc).

    python benchmarks/server_memory.py [--photos DIR] [--n 30]

Starts `streamlit run app.py` on the runs in artifacts/runs (or $FER_LAB_RUNS_DIR) and drives headless Chromium
(Debian's chromium) through two rounds of: --n distinct photo uploads on the live-prediction page, a new session
every 5 and an occlusion map ("Where it looked") on every third; --n gallery pages, a new session every 10; --n / 2
sessions that each add two runs and open three pages. Prints the server's resident memory after each phase and the
largest of those readings. Photos: --photos, default ../shared/data/affectnet8-4k/images.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.streamlit_server import streamlit_server  # noqa: E402
from tests.test_browser import CHROMIUM, _idle  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "data" / "affectnet8-4k" / "images"


def server_rss_mb() -> float:
    """Resident memory of this process's streamlit child, in MB."""
    me = str(os.getpid())
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "stat").read_text().rsplit(")", 1)[1].split()[1] == me \
                    and b"streamlit" in (d / "cmdline").read_bytes():
                return next(int(ln.split()[1]) for ln in (d / "status").read_text().splitlines()
                            if ln.startswith("VmRSS")) / 1024
        except (OSError, IndexError, StopIteration):
            continue
    raise RuntimeError("no streamlit server process found")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, default=PHOTOS, help="a folder of face photos (.jpg)")
    p.add_argument("--n", type=int, default=30, help="uploads and gallery pages per round (default 30)")
    a = p.parse_args(argv)
    photos = sorted(a.photos.glob("*.jpg"))
    if len(photos) < 2 * a.n:
        p.error(f"--photos {a.photos} holds {len(photos)} .jpg files; {2 * a.n} are needed (or a smaller --n)")
    if not Path("/proc/self/status").exists():
        p.error("reads the server's memory from /proc: Linux only")
    from playwright.sync_api import sync_playwright

    from fer_core.runs import discover_runs, runs_dirs_from_env

    names = [r.name for r in discover_runs(runs_dirs_from_env())[0]]
    peak, photo = 0.0, iter(photos)

    def report(phase):
        nonlocal peak
        rss = server_rss_mb()
        peak = max(peak, rss)
        print(f"{phase:<24} {rss:7.0f} MB", flush=True)

    with streamlit_server() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = None

        def session(title=None):
            nonlocal page
            if page is not None:
                page.context.close()
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("h1:has-text('Overview')", timeout=120_000)
            _idle(page)
            if title:
                page.get_by_test_id("stSidebar").get_by_role("link", name=title).click()
                page.wait_for_selector(f"h1:has-text('{title}')", timeout=120_000)
                _idle(page)

        report("server started")
        for rnd in (1, 2):
            for i in range(a.n):
                if i % 5 == 0:
                    session("Live prediction")
                f = next(photo)
                page.locator("input[type='file']").first.set_input_files(str(f))
                page.wait_for_function(f"() => document.body.innerText.includes('{f.name}: ')", timeout=120_000)
                _idle(page)
                if i % 3 == 0:
                    page.get_by_text("Where it looked").last.click()
                    page.wait_for_function("() => document.body.innerText.includes('crop the model saw')",
                                           timeout=120_000)
            report(f"round {rnd}: uploads")
            for i in range(a.n):
                if i % 10 == 0:
                    session("Misclassified gallery")
                box = page.get_by_role("spinbutton", name=re.compile("Page"))
                box.fill(str(i % 10 + 1 + (rnd - 1) * 10))
                box.press("Enter")
                _idle(page)
            report(f"round {rnd}: gallery pages")
            for i in range(a.n // 2):
                session()
                for name in names[(2 * i + (rnd - 1) * a.n) % len(names):][:2]:
                    box = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").locator("input")
                    box.click()
                    box.fill(name)
                    page.keyboard.press("Enter")
                    _idle(page)
                page.keyboard.press("Escape")
                for title in ("Confusion matrices", "ROC, PR and calibration", "Model disagreement"):
                    page.get_by_test_id("stSidebar").get_by_role("link", name=title).click(timeout=120_000)
                    page.wait_for_selector(f"h1:has-text('{title}')", timeout=120_000)
                    _idle(page)
            report(f"round {rnd}: run switches")
        browser.close()
    print(f"largest {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
