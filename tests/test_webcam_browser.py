"""Live webcam in a real browser: headless chromium streams a fake camera through streamlit-webrtc to the
predict page, whose frame callback detects, classifies and draws; the frames must come back annotated.

Two cameras: chromium's built-in test pattern (no face: whole-image prediction, "no face found" banner) and a
.y4m clip of skimage's astronaut (one face). Screenshots go to $FER_LAB_SCREENSHOTS (default: pytest's tmp).
Skipped when playwright or chromium is missing.
"""
from __future__ import annotations

import importlib.util
import os
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from .streamlit_server import streamlit_server
from .test_inference import make_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FER_LAB_CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("streamlit_webrtc") is None, reason="streamlit-webrtc is not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]


def write_face_y4m(path: Path, frames: int = 10) -> Path:
    """A 640x480 YUV4MPEG2 clip of the astronaut photo (chromium loops it as its fake camera)."""
    from skimage.data import astronaut

    rgb = np.ascontiguousarray(cv2.resize(astronaut(), (640, 640), interpolation=cv2.INTER_AREA)[:480])
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("webcam")
    (base / "runs" / "tiny-run" / "checkpoints").mkdir(parents=True)
    make_checkpoint(base / "runs" / "tiny-run" / "checkpoints" / "best.pt")
    # no FER_LAB_STUN: the stream connects this machine's own addresses, as it does by default
    env = {"FER_LAB_RUNS_DIR": str(base / "runs")}
    with streamlit_server(env, log_path=base / "streamlit.log") as url:
        yield url, base


def _frames(page) -> int:
    vals = page.locator("[data-testid='stMetricValue']").all_inner_texts()
    return int(vals[0]) if vals and vals[0].strip().isdigit() else 0


def _start(page, frame, seconds: float = 60) -> int:
    """Press START; the frame count once 3 frames came back, or when ``seconds`` ran out."""
    frame.get_by_role("button", name="START").click()
    deadline = time.time() + seconds
    while _frames(page) < 3 and time.time() < deadline:
        page.wait_for_timeout(500)
    return _frames(page)


def _stream_report(page, frame, base: Path) -> str:
    """What a failed stream looked like: the component's buttons, its video element, the server log's tail."""
    try:
        buttons = frame.locator("button").all_inner_texts()
        video = frame.locator("video").evaluate(
            "v => ({time: v.currentTime, width: v.videoWidth, ready: v.readyState, paused: v.paused})")
    except Exception as e:  # the report must not hide the failure it describes
        buttons, video = "?", f"unreadable ({e})"
    log = (base / "streamlit.log").read_text(errors="replace").splitlines()[-25:]
    return f"buttons {buttons}, video {video}; server log tail:\n" + "\n".join(log)


@pytest.mark.parametrize("camera", ["test-pattern", "astronaut"])
def test_live_stream_comes_back_annotated(server, camera, tmp_path):
    from playwright.sync_api import sync_playwright

    url, base = server
    shots = Path(os.environ.get("FER_LAB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    if camera == "astronaut":
        args.append(f"--use-file-for-fake-video-capture={write_face_y4m(base / 'face.y4m')}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1700})
            ready = "[data-testid='stApp'][data-test-script-state='notRunning']"
            # through the app's navigation, as a user gets there (a deep link to /predict is left to the app's tests)
            page.goto(url)
            page.wait_for_selector(ready, timeout=90_000)
            page.locator("[data-testid='stSidebarNav']").get_by_text("Live prediction").click()
            page.get_by_role("tab", name="Live webcam").wait_for(timeout=90_000)
            page.wait_for_selector(ready, timeout=90_000)
            assert page.locator("[data-testid='stException']").count() == 0
            # the shipped default model answers first; the page says which model it is
            assert "Answering: " in page.locator("[data-testid='stAlert']").first.inner_text()
            page.get_by_role("tab", name="Live webcam").click()
            frame = page.frame_locator("iframe[title='streamlit_webrtc.component.webrtc_streamer']")
            first = _start(page, frame)
            if first < 3:  # WebRTC on a closed network: a user would press START again, and so does the test
                warnings.warn(f"no frames in 60 s after START, pressing it again; {_stream_report(page, frame, base)}")
                if frame.get_by_role("button", name="STOP").count():
                    frame.get_by_role("button", name="STOP").click()
                first = _start(page, frame)
            assert first >= 3, f"only {first} frames came back in 60 s, twice; {_stream_report(page, frame, base)}"
            deadline = time.time() + 30  # generous: on 2 busy cores a frame can take seconds
            while _frames(page) <= first + 2 and time.time() < deadline:
                page.wait_for_timeout(500)
            assert _frames(page) > first + 2, f"the frame counter stopped at {_frames(page)}"
            # the live panel's charts have drawn (plotly SVG present) at least once
            page.wait_for_function("() => document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg\")"
                                   ".length >= 2", timeout=45_000)
            page.screenshot(path=str(shots / f"webcam-{camera}-page.png"))
            video_png = shots / f"webcam-{camera}-video.png"
            for _ in range(10):  # a frame caught mid-decode on 2 busy cores can lack the footer: a few looks
                frame.locator("video").screenshot(path=str(video_png))
                if _footer(video_png)[0]:
                    break
                page.wait_for_timeout(1000)
            text = page.locator("[data-testid='stMain']").inner_text()
            if camera == "astronaut":
                assert "Face 1" in text and "No face found" not in text
            else:
                assert "No face found" in text and "Whole image" in text
            # side by side: the picture and the predictions both in the window's width
            box_video = frame.locator("video").bounding_box()
            box_panel = page.locator(".st-key-live-panel").bounding_box()
            assert box_panel["x"] > box_video["x"] + box_video["width"] - 1
            frame.get_by_role("button", name="STOP").click()
            # its last predictions stay, said to be from a stopped stream
            page.get_by_text("The stream is stopped: these are the faces of its last frame").wait_for(timeout=60_000)
            # and the stream over time, as a video's: its summary line, timeline and CSV
            page.get_by_text("The last stream over time").wait_for(timeout=60_000)
            summary = page.get_by_text("The webcam stream: ").inner_text()
            assert ("a face in" if camera == "astronaut" else "no face in any") in summary, summary
            page.get_by_role("button", name="Download the stream's predictions").wait_for(timeout=30_000)
            page.screenshot(path=str(shots / f"webcam-{camera}-stopped.png"))
        finally:
            browser.close()
    # the video shows the returned, annotated frames, not the camera's own picture
    shown, dark, white = _footer(video_png)
    assert shown, f"no frame-counter footer in {video_png} (dark {dark:.2f}, white {white:.3f})"


def _footer(video_png: Path) -> tuple[bool, float, float]:
    """Whether the callback's "frame N  M ms", white on black in the bottom-left corner, is in the screenshot (the
    camera's own picture has a green pattern or an orange space suit there); and the shares of dark and white."""
    shot = cv2.cvtColor(cv2.imread(str(video_png)), cv2.COLOR_BGR2RGB)
    h, w = shot.shape[:2]
    corner = shot[int(h * 0.93):, : int(w * 0.2)].reshape(-1, 3).astype(int)
    # The video codec blurs the thin text to light grey, so "white" means every channel above 150.
    dark, white = (corner.max(axis=1) < 60).mean(), (corner.min(axis=1) > 150).mean()
    return bool(dark > 0.4 and white > 0.005), dark, white
