"""Screenshot every dashboard page on the real run folders (artifacts/runs or $FER_LAB_RUNS_DIR) in headless Chromium.

    python scripts/screenshots.py OUT_DIR [--photo face.jpg] [--video clip.mp4]

`--dark` shows the dark theme. The live-prediction page gets a photo uploaded (default: scikit-image's astronaut), and its Video tab a clip
(default: 2 s of two astronauts, the second from 1 s on).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.streamlit_server import streamlit_server  # noqa: E402
from tests.test_browser import CHROMIUM, PAGES, _idle, _screenshot  # noqa: E402
from tests.test_video import write_two_people  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder to write the PNGs into")
    p.add_argument("--photo", help="image to upload on the live-prediction page")
    p.add_argument("--video", help="video to upload on its Video tab")
    p.add_argument("--dark", action="store_true", help="in the dark theme (a browser that prefers dark)")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    photo = a.photo
    if photo is None:
        import skimage.data
        from PIL import Image

        photo = str(out / "astronaut.jpg")
        Image.fromarray(skimage.data.astronaut()).save(photo)

    from playwright.sync_api import sync_playwright

    with streamlit_server() as url:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 900},
                                    color_scheme="dark" if a.dark else "light")
            page.goto(url, wait_until="domcontentloaded")
            for name, title in {**PAGES, "predict": "Live prediction"}.items():
                page.get_by_test_id("stSidebar").get_by_role("link", name=title).click()
                page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)
                _idle(page)
                if name == "predict":
                    page.locator("input[type='file']").first.set_input_files(photo)
                    page.wait_for_timeout(1000)
                    _idle(page)
                shots = [name]
                _screenshot(page, out / f"{name}.png")
                if name == "predict":
                    page.get_by_role("tab", name="Video").click()
                    clip = a.video or str(write_two_people(out / "clip.mp4"))
                    page.locator("input[type='file']").nth(1).set_input_files(clip)
                    page.wait_for_selector("[data-testid='stAlert']:has-text('frames sampled')", timeout=120_000)
                    _idle(page)
                    _screenshot(page, out / "predict_video.png")
                    shots.append("predict_video")
                errors = page.locator("[data-testid='stException']").count()
                for shot in shots:
                    print(f"{shot:16s} {'EXCEPTION' if errors else 'ok'}  {out / f'{shot}.png'}")
            browser.close()


if __name__ == "__main__":
    main()
