"""Real-browser check: every page renders in headless chromium without an exception; screenshots saved.

Screenshots go to $FER_LAB_SCREENSHOTS (default: pytest's tmp folder). Skipped when playwright or a
chromium binary is missing.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fixture_runs import make_fixture_runs, write_broken_runs
from tests.streamlit_server import streamlit_server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("FER_LAB_CHROMIUM", "/usr/bin/chromium")
PAGES = {"overview": "Overview", "curves": "Training curves", "confusion": "Confusion matrices",
         "roc_pr": "ROC, PR and calibration", "valence_arousal": "Valence / arousal", "gallery": "Misclassified gallery",
         "disagreement": "Model disagreement", "subgroups": "Subgroups"}

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).is_file() and shutil.which("chromium") is None,
                       reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    make_fixture_runs(base / "runs", n=200, data_root=base / "data", images=40, n_boot=10)
    write_broken_runs(base / "runs")
    with streamlit_server({"FER_LAB_RUNS_DIR": str(base / "runs")}) as url:
        yield url


# Every element has loaded (no skeleton placeholders) and every plotly chart has drawn its SVG.
DRAWN = """() => !document.querySelector("[data-testid='stSkeleton']") &&
    [...document.querySelectorAll("[data-testid='stPlotlyChart']")].every(c => c.querySelector('.main-svg'))"""


def _screenshot(page, path: Path) -> None:
    """Wait until every plotly chart has drawn, then capture the whole page. Streamlit scrolls inside its
    main container, so the viewport is stretched to the content's height instead of using full_page."""
    for _ in range(2):  # twice: lazily loaded elements replace their skeletons in a second step
        page.wait_for_function(DRAWN, timeout=30_000)
        page.wait_for_timeout(300)
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll("[data-testid='stMain'], section")]
        .map(e => e.scrollHeight), 900)""")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 12_000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 900})


def test_every_page_renders_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("FER_LAB_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for name, title in PAGES.items():
            if title == "Overview":
                page.goto(server, wait_until="domcontentloaded")
            else:  # the sidebar's links keep the session, as a user's clicks do
                page.get_by_test_id("stSidebar").get_by_role("link", name=title).click()
            page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)
            _idle(page)
            _screenshot(page, shots / f"{name}.png")
            errors = page.locator("[data-testid='stException']")
            assert errors.count() == 0, f"page '{name}' shows: {errors.first.inner_text()[:500]}"
            assert page.locator("h1").first.inner_text().strip(), f"page '{name}' has no title"
        # Search jumps to one sample and shows its probabilities.
        page.get_by_test_id("stSidebar").get_by_role("link", name="Misclassified gallery").click()
        page.wait_for_selector("h1:has-text('Misclassified gallery')")
        _idle(page)
        box = page.get_by_role("textbox", name="Find samples by id")
        first_id = page.get_by_test_id("stMainBlockContainer").locator("code").first.inner_text()
        box.fill(first_id.strip("`"))
        box.press("Enter")
        page.wait_for_timeout(500)
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)
        assert page.get_by_text("predicted").count() > 0, "search did not show the sample"
        _screenshot(page, shots / "gallery_search.png")
        assert page.locator("[data-testid='stException']").count() == 0

        # Sidebar choices are shared by every page (AppTest cannot change them; see test_app.py).
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stSelectbox").filter(has_text="Split").click()
        page.get_by_role("option", name="test").click()
        _idle(page)
        sidebar.get_by_role("link", name="Confusion matrices").click()
        page.wait_for_selector("h1:has-text('Confusion matrices')")
        _idle(page)
        assert "Split test" in page.get_by_test_id("stMain").inner_text()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        root_box = sidebar.get_by_role("textbox", name="Data root for images")
        root_box.fill(str(elsewhere))
        root_box.press("Enter")
        _idle(page)
        sidebar.get_by_role("link", name="Misclassified gallery").click()
        page.wait_for_selector("h1:has-text('Misclassified gallery')")
        _idle(page)
        main_text = page.get_by_test_id("stMain").inner_text()
        assert str(elsewhere) in main_text and "test" in main_text
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()


def _idle(page) -> None:
    page.wait_for_timeout(400)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)


def test_a_video_analysis_goes_on_while_the_page_is_used(server, tmp_path):
    """Any click reruns the page; the analysis of an uploaded video runs on its own thread and is picked up again."""
    import re

    from playwright.sync_api import sync_playwright

    from tests.test_video import write_clip

    clip = write_clip(tmp_path / "long.mp4", face_frames=800, blank_frames=0)  # 80 s: too long to end meanwhile
    photo = tmp_path / "blank.png"
    from PIL import Image
    Image.new("RGB", (64, 64), "grey").save(photo)
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")

    def frames_done(page) -> int:
        text = page.get_by_test_id("stMain").inner_text()
        return int(found.group(1).replace(",", "")) if (found := re.search(r"frame ([\d,]+) of", text)) else -1

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_test_id("stSidebar").get_by_role("link", name="Live prediction").click()
        page.wait_for_selector("h1:has-text('Live prediction')", timeout=60_000)
        _idle(page)
        page.get_by_role("tab", name="Video").click()
        page.locator("input[type='file']").nth(1).set_input_files(str(clip))
        page.wait_for_function("() => /frame [1-9]\\d\\d of/.test(document.body.innerText)", timeout=120_000)
        before = frames_done(page)  # 100 or more of the 800 frames read
        page.get_by_role("tab", name="Photos").click()
        page.locator("input[type='file']").first.set_input_files(str(photo))  # reruns the page
        page.wait_for_function("() => document.body.textContent.includes('blank.png')", timeout=60_000)
        page.get_by_role("tab", name="Video").click()
        page.wait_for_function("() => /frame [\\d,]+ of/.test(document.querySelector('[data-testid=stMain]')"
                               ".innerText)", timeout=60_000)
        after = frames_done(page)
        assert after >= before >= 100, (before, after)  # it went on from where it was, it did not start again
        page.wait_for_selector("[data-testid='stAlert']:has-text('frames sampled')", timeout=300_000)
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()


@contextmanager
def _page_at(url: str, title: str):
    """A Chromium page on ``url``, once its title shows and it has settled; the browser is closed after."""
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)
            _idle(page)
            yield page
        finally:
            browser.close()


def test_a_row_of_the_most_frequent_mistakes_opens_the_gallery_on_them(server):
    with _page_at(f"{server}/confusion", "Confusion matrices") as page:
        mistakes = page.locator("[data-testid='stDataFrame']:visible").first  # the first run's, beside its matrix
        mistakes.wait_for(timeout=60_000)
        mistakes.scroll_into_view_if_needed()
        box = mistakes.bounding_box()
        first = page.get_by_test_id("stMain").inner_text()
        run = page.get_by_role("tab").first.inner_text()
        page.mouse.click(box["x"] + 12, box["y"] + 35 + 18)  # the first row's selection marker
        page.wait_for_selector("h1:has-text('Misclassified gallery')", timeout=60_000)
        _idle(page)
        main = page.get_by_test_id("stMain").inner_text()
        chosen = [page.get_by_test_id("stSelectbox").filter(has_text=label).inner_text().split("\n")[-1]
                  for label in ("True class", "Predicted class")]
    assert "Most frequent mistakes" in first
    # the gallery opens on that run, filtered on one pair of classes
    assert f"samples in {run} / " in main and "any" not in chosen and chosen[0] != chosen[1]


def test_subgroups_take_a_groups_file_and_say_what_is_wrong_with_a_bad_one(server, tmp_path):
    good, bad = tmp_path / "cameras.csv", tmp_path / "no-key.csv"
    good.write_text("id,camera\n" + "".join(f"{i},{'AB'[i % 2]}\n" for i in range(5000)))
    bad.write_text("image_no,camera\n1,A\n")
    with _page_at(f"{server}/subgroups", "Subgroups") as page:
        page.get_by_text("Add your own groups").click()
        page.locator("input[type='file']").set_input_files(str(bad))
        page.wait_for_selector("[data-testid='stAlert']:has-text('no column names the images')", timeout=30_000)
        page.locator("input[type='file']").set_input_files(str(good))
        page.wait_for_selector("text=images matched", timeout=30_000)
        page.get_by_test_id("stSelectbox").filter(has_text="Group the images by").click()
        page.get_by_role("option", name="camera (your file)").click()
        _idle(page)
        main = page.get_by_test_id("stMain").inner_text()
        errors = page.locator("[data-testid='stException']").count()
    assert errors == 0
    assert "camera (your file): a column of your data or of the uploaded file" in main
    assert "Download each image's value, group and answers (CSV)" in main
