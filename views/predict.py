"""Predict: expression and valence/arousal for faces in photos, a video file, a snapshot, or the live webcam."""
from __future__ import annotations

import importlib.util
import io
import math
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # standalone runs (streamlit run views/predict.py, AppTest) start in views/
    sys.path.insert(0, str(ROOT))

from fer_core.faces import annotate  # noqa: E402
from fer_core.images import IMAGE_EXTS, NOT_SUPPORTED, ImageError, frame_count, upright_size  # noqa: E402
from fer_core.inference import (DEFAULT_DIR, LiveSession, ModelNotFound, Predictor,  # noqa: E402
                                list_runs, model_stamp, read_image, resolve_model)
from fer_core.predict import (TRAINED_ON, by_size, in_file_pixels, is_copy, to_rows, trained_note,  # noqa: E402
                              training_files)
from fer_core.report import code  # noqa: E402
from fer_core.report_live import live_circumplex_figure, prob_figure, timeline_figure  # noqa: E402
from fer_core.runs import runs_dirs_from_env, unique_names  # noqa: E402
from fer_core.video import (EVERY, VIDEO_EXTS, AnnotatedVideo, VideoError, describe, people,  # noqa: E402
                            predict_video, summary, timeline)
from views import _shared as S  # noqa: E402

# what the CLI reads, and HEIC/HEIF, let through to say that they are not supported and to convert them
IMAGE_TYPES = sorted(e.lstrip(".") for e in IMAGE_EXTS | NOT_SUPPORTED.keys())
# ONNX Runtime first when installed: PyTorch's OpenMP threads spin between calls and, sharing 2 cores with the
# WebRTC video codec, made live frames take seconds instead of tens of milliseconds.
RUNTIMES = ({"ONNX Runtime": "onnx"} if importlib.util.find_spec("onnxruntime") else {}) | {"PyTorch": "torch"}


@st.cache_resource(show_spinner="Loading the model (a checkpoint is converted to ONNX once)…", max_entries=4)
def get_predictor(path: str, backend: str, stamp: tuple) -> Predictor:
    """One Predictor per model file and backend, shared by every session (ONNX Runtime/PyTorch calls are
    thread-safe in it). ``stamp`` (inference.model_stamp) makes a replaced or calibrated model load again."""
    return Predictor(path, backend=backend)


def runs_dirs() -> list[Path]:
    """The folders the dashboard reads runs from ($FER_LAB_RUNS_DIR or artifacts/runs, plus the sidebar's)."""
    lab = st.session_state.get("lab")
    dirs = [Path(d) for d in (lab.roots if lab and lab.roots else [str(p) for p in runs_dirs_from_env()])]
    return [d if d.is_absolute() or d.exists() else ROOT / d for d in dirs]


def model_choices() -> dict[str, str]:
    """Label -> model argument for resolve_model (None = the default model): the default model, the other model files
    under models/ (another shipped run, a model scripts/import_model.py wrapped), then the runs."""
    out = {}
    if any((ROOT / DEFAULT_DIR / f).is_file() for f in ("model.pt", "model.onnx")):
        out[f"Default model ({DEFAULT_DIR})"] = None
    models = ROOT / DEFAULT_DIR.parent
    for f in sorted(models.glob("*")):
        if f.suffix.lower() in (".onnx", ".pt") or (f.is_dir() and f != ROOT / DEFAULT_DIR and any(
                (f / m).is_file() for m in ("model.pt", "model.onnx"))):
            out[f"Model {f.relative_to(ROOT).as_posix()}"] = str(f)
    found = list_runs(runs_dirs())
    for run, name in zip(found, unique_names(found)):  # runs of one name in two folders named as in the sidebar
        out[f"Run {name}"] = str(run)
    return out


def faces_alt(results: list[dict], classes: list[str]) -> str:
    """The faces boxed in a picture and what the model answered for each, in words (a screen reader's text for it)."""
    if not results:
        return "no face"
    if results[0]["whole_image"]:
        return f"no face found; the whole picture reads as {classes[results[0]['label']]}"
    return "; ".join(f"face {k} {classes[r['label']]} ({r['probs'][r['label']]:.0%})" for k, r in enumerate(results, 1))


def explain_face(predictor: Predictor, crop, result: dict, key: str) -> None:
    """On request, the occlusion map of one face (``crop``, as the model saw it): which parts of it the answer rests
    on."""
    if not st.toggle("Where it looked", key=key, help=S.OCCLUSION_HELP):
        return
    left, right = st.columns([1, 2])
    target = right.selectbox("Class", predictor.classes, index=result["label"], key=f"{key}-class")
    with left:
        S.occlusion_panel(predictor, crop, predictor.classes.index(target))


DETECTOR_HELP = ("Detector score: how sure the face detector is that this box holds a face (0 to 1), not how sure the "
                 "model is of the expression.")
VA_HELP = ("Valence: unpleasant (−1) to pleasant (+1); arousal: calm (−1) to excited (+1); as annotators would "
           "rate the face.")


def show_results(results: list[dict], classes: list[str], key: str, predictor: Predictor | None = None,
                 crops=None, stacked: bool = False) -> None:
    """Per face: probabilities, the circumplex point and, given the faces' crops, its occlusion map on request;
    ``stacked``: one above the other, for a narrow column (side by side there, the circumplex's corners collide)."""
    if not results:  # a video frame: no face, no answer
        st.info("No face found in this frame.")
    if results and results[0]["whole_image"]:
        st.warning("No face found — showing the prediction for the whole image, as if it were a face crop. For a "
                   "face cropped close (as AffectNet's and FER's images are) that is the right answer; for anything "
                   "else (a scene, an animal, a face too small to find) it means nothing.")
    for i, r in enumerate(results):
        left, right = (st.container(), st.container()) if stacked else st.columns(2)
        who = f"person {r['person']}, " if "person" in r else ""
        label = "Whole image" if r["whole_image"] else f"Face {i + 1} ({who}detector score {r['score']:.2f})" + (
            f" · {r['note']}" if r.get("turn") else "")
        help_ = None if r["whole_image"] else DETECTOR_HELP
        if math.isfinite(r["valence"]):
            left.markdown(f"**{label}** · valence {r['valence']:+.2f} · arousal {r['arousal']:+.2f}",
                          help=f"{help_ or ''} {VA_HELP}".strip())
            point = "whole image" if r["whole_image"] else f"P{r['person']}" if "person" in r else f"face {i + 1}"
            S.chart(live_circumplex_figure([r], [point]), right, key=f"{key}-c{i}")
        else:
            left.markdown(f"**{label}**", help=help_)
            right.caption("No valence/arousal: this model was trained on data without them, so its valence/arousal "
                          "outputs never learned anything.")
        S.chart(prob_figure(r, classes), left, key=f"{key}-p{i}")
        if crops is not None:
            explain_face(predictor, crops[i], r, key=f"{key}-x{i}")


SHOWN_SIDE = 1000  # the annotated photo is drawn at most this many pixels wide or high: about the page's width


@st.cache_data(show_spinner=False)
def sample_png() -> bytes:
    """A photo to try the page on without one at hand: scikit-image's astronaut (public domain)."""
    from PIL import Image
    from skimage.data import astronaut

    out = io.BytesIO()
    Image.fromarray(astronaut()).save(out, format="PNG")
    return out.getvalue()


@st.cache_resource(max_entries=4, show_spinner=False)
def training_sizes(path: str, created: str | None, _predictor: Predictor) -> dict[int, list[str]]:
    """The model's training files by size (predict.by_size), listed once per model file: an upload's bytes are
    compared in memory with those of its size only."""
    return by_size(training_files(_predictor))


def analysed(predictor: Predictor, name: str, data: bytes) -> tuple[str, dict]:
    """(session key, {"results", "shown", "crops"} or {"error"}) of an upload: decoded, its faces found and classified
    and the annotated picture made once per photo and model, not again at each click on the page. Only the
    picture as shown and the faces' crops are kept, not the photo's own pixels (a 48 MP photo is 144 MB)."""
    key = f"photo::{name}::{len(data)}::{hash(data)}::{predictor.path}::{predictor.runtime}"
    if key not in st.session_state:
        try:
            image = read_image(data, name=name)
            results = predictor.predict_faces(image)
        except ImageError as e:
            reason = str(e).removeprefix(name + ": ")
            st.session_state[key] = {"error": f"Cannot read {S.md(name)}: {S.md(reason)}", "reason": reason}
            return key, st.session_state[key]
        trained = is_copy(data, training_sizes(str(predictor.path), predictor.config.get("created"), predictor))
        # drawn at the size it is shown: labels drawn on a large photo would shrink with it to a few pixels
        shown = annotate(image, results, max_side=SHOWN_SIDE)
        st.session_state[key] = {"results": results, "shown": shown, "frames": frame_count(io.BytesIO(data)),
                                 "crops": [predictor.face_crop(image, r) for r in results],
                                 # a JPEG over the pixel limit is decoded smaller: the CSV gives the file's pixels
                                 "size": list(upright_size(io.BytesIO(data))), "decoded": image.shape[1::-1],
                                 "trained": trained}
    return key, st.session_state[key]


def predict_upload(predictor: Predictor, name: str, data: bytes, key: str) -> str:
    """Show one uploaded photo's faces and their predictions; returns the session key its analysis is kept under."""
    kept, done = analysed(predictor, name, data)
    if "error" in done:
        st.error(done["error"])
        return kept
    results = done["results"]
    faces = sum(not r["whole_image"] for r in results)
    st.image(done["shown"], caption=f"{S.md(name)}: {faces} face(s)",
             alt=f"{name}: {faces_alt(results, predictor.classes)}")
    if done["trained"]:
        st.warning(f"{S.md(name)} is {TRAINED_ON} (or a run its training started from did, or an ensemble's member; "
                   "the same file's bytes): its answer here is no held-out prediction, and flatters the model.")
    if done["frames"] > 1:
        st.info(f"{S.md(name)} holds {done['frames']} frames (an animation or a multi-page file); these are the first "
                "frame's faces. To follow its frames, convert it to a video (`ffmpeg -i anim.gif anim.mp4`) and "
                "upload that in the Video tab.")
    show_results(results, predictor.classes, key, predictor, done["crops"])
    return kept


def forget_photos_but(kept: set[str]) -> None:
    """Drop the analyses of photos no longer uploaded."""
    for old in [k for k in st.session_state if str(k).startswith("photo::") and k not in kept]:
        del st.session_state[old]


class _Cancelled(Exception):
    """A video analysis no longer wanted (another video, model or interval chosen)."""


def session_alive():
    """A test of whether this browser tab is still connected, callable from any thread."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():  # a bare script run: nothing to watch
        return lambda: True
    runtime, session = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session)


ORPHAN_S = 60  # a video analysis whose tab has been gone this long stops (a brief network drop reconnects)


def start_video_job(predictor: Predictor, name: str, data: bytes, every: float, alive=None,
                    one_person: bool = False) -> dict:
    """Classify the video's frames every ``every`` seconds on a thread of its own, so that using the page meanwhile
    (each click reruns it) does not throw the work away; it stops when cancelled, or once ``alive()`` (default: the
    tab is connected) has said no for ORPHAN_S seconds. The job: {"done", "total" (frames read, announced), "result"
    (analysis_result), "error", "cancel"}."""
    import threading
    import time

    import cv2

    job = {"done": 0, "total": 0, "result": None, "error": None, "cancel": False}
    thumbs, notes = [], []
    alive, gone_since = alive or session_alive(), [None]

    def progress(done, total):
        if alive():
            gone_since[0] = None
        elif gone_since[0] is None:
            gone_since[0] = time.monotonic()
        elif time.monotonic() - gone_since[0] >= ORPHAN_S:
            job["cancel"] = job["orphaned"] = True  # a tab that comes back starts it again (video_tab)
        if job["cancel"]:
            raise _Cancelled
        job["done"], job["total"] = done, total

    def keep(rgb, record):
        small = annotate(rgb, record["faces"], max_side=480)
        thumbs.append(cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))[1].tobytes())

    def analyse() -> None:
        folder = None
        try:  # OpenCV reads videos from files only
            folder = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
            path = Path(folder.name) / f"upload{Path(name).suffix}"
            path.write_bytes(data)
        except OSError as e:  # no room for the upload in the temporary folder, or no such folder
            job["error"] = (f"{name}: the upload could not be kept in the temporary folder {tempfile.gettempdir()} "
                            f"to be read ({e}): free space there, or start the dashboard with TMPDIR set to a folder "
                            "with room")
            if folder:
                folder.cleanup()
            return
        with folder as tmp:
            drawn = AnnotatedVideo(Path(tmp) / "annotated.mp4", every, max_side=960)

            def on_frame(rgb, record):
                keep(rgb, record)
                drawn.add(rgb, record)

            try:
                records = predict_video(predictor, path, every=every, progress=progress, on_frame=on_frame,
                                        one_person=one_person,
                                        warn=lambda m: notes.append(m.replace(str(path), name)))
                video = drawn.path.read_bytes() if drawn.close() else None
                if drawn.error:
                    notes.append(f"{name}: the video with the answers drawn could not be written ({drawn.error})")
            except _Cancelled:
                job["error"] = f"{name}: the analysis was stopped"  # ends any wait_for still looking
                return
            except VideoError as e:
                job["error"] = str(e).replace(str(path), name)
                return
            except Exception as e:  # noqa: BLE001  a failure must reach the page, not leave it waiting
                job["error"] = f"{name}: {type(e).__name__}: {e}"
                return
            finally:
                drawn.discard()
        for r in records:
            r["path"] = name
        job["result"] = {"records": records, "thumbs": thumbs, "video": video, "notes": notes,
                         "people": people(records),
                         "timelines": {}, "csv": to_rows(records).to_csv(index=False).encode()}

    def run() -> None:  # no Streamlit calls here: the page reads the job, so every end must set it
        try:
            analyse()
        except Exception as e:  # noqa: BLE001
            job["error"] = f"{name}: {type(e).__name__}: {e}"

    threading.Thread(target=run, daemon=True, name=f"video {name}").start()
    return job


def wait_for(job: dict, name: str) -> None:
    """A progress bar until the job ends; a click elsewhere reruns the page, which comes back here to the same job."""
    import time

    def state():
        if not job["total"]:
            return 0.0, f"Reading {S.md(name)}…"
        return min(job["done"] / job["total"], 1.0), (f"{S.md(name)}: frame {job['done']:,} of {job['total']:,} (the "
                                                      f"analysis goes on while you use the rest of the page)")

    bar = st.progress(*state())  # a rerun draws the frames already reached at once, not "Reading" again
    while job["result"] is None and job["error"] is None:
        bar.progress(*state())
        time.sleep(0.25)
    bar.empty()


def person_timeline(done: dict, person, classes: list[str], name: str, every: float):
    """One person's timeline and summary line, made the first time they are shown."""
    if person not in done["timelines"]:
        tl = timeline(done["records"], classes, person)
        done["timelines"][person] = tl, describe(S.md(name), summary(tl, classes), every, person, len(done["people"]))
    return done["timelines"][person]


def video_tab(predictor: Predictor) -> None:
    c1, c2 = st.columns([3, 1])
    clip = c1.file_uploader("Upload a video", type=sorted(e.lstrip(".") for e in VIDEO_EXTS))
    c1.caption(f"Up to {st.get_option('server.maxUploadSize')} MB here (about a minute of 4K phone video). Longer "
               f"videos: `python -m fer_core.predict VIDEO --csv out.csv` reads the file where it lies, at any "
               f"length.")
    every = c2.select_slider("Classify a frame every", options=[0.1, 0.2, 0.5, 1.0, 2.0], value=EVERY,
                             format_func=lambda v: f"{v:g} s",
                             help="Faces are detected afresh in each classified frame and linked into people by "
                                  "how much their boxes overlap from one classified frame to the next")
    one = c2.toggle("One person", key="video_one_person",
                    help="The video shows one person (a participant facing the camera): the largest face in each "
                         "frame is theirs, however long they looked away, and other faces are left out")
    key = clip and f"video::{clip.name}::{clip.size}::{predictor.path}::{predictor.runtime}::{every}::{one}"
    if clip is None or key not in st.session_state or st.session_state[key].get("orphaned"):
        for old in [k for k in st.session_state if str(k).startswith("video::")]:  # one video's frames kept at a time;
            st.session_state[old]["cancel"] = True  # a removed one's analysis stops
            del st.session_state[old]
    if clip is None:
        return
    if key not in st.session_state:  # new, or stopped while the tab was away
        st.session_state[key] = start_video_job(predictor, clip.name, clip.getvalue(), every, one_person=one)
    job = st.session_state[key]
    wait_for(job, clip.name)
    if job["error"]:
        st.error(f"Cannot read {S.md(job['error'])}")  # raw text until here: the name is the uploader's
        return
    done = job["result"]
    for note in done["notes"]:
        st.warning(S.md(note))
    records, classes, seen = done["records"], predictor.classes, done["people"]
    person = next(iter(seen), None)
    if len(seen) > 1:
        person = st.selectbox(f"Follow ({len(seen)} people seen; P1, P2, … on the frames)", list(seen),
                              format_func=lambda p: f"Person {p} (in {seen[p]} of {len(records)} frames)",
                              key=f"who::{key}",
                              help="A face that moves further than its own width between two classified "
                                   "frames, or is out of view for longer than two intervals (and at least a "
                                   "second), comes back as a new person")
    tl, line = person_timeline(done, person, classes, clip.name, every)
    (st.success if seen else st.warning)(line)  # no face in any frame: nothing to look at below
    S.chart(timeline_figure(tl, classes, who=f"person {person}" if len(seen) > 1 else ""),
            key="video-timeline")
    i = st.select_slider("Look at the frame at", options=range(len(records)), key=f"at::{key}",
                         format_func=lambda k: f"{records[k]['time_s']:.1f} s")
    r = records[i]
    st.image(done["thumbs"][i], caption=f"{r['time_s']:.1f} s (frame {r['frame']})",
             alt=f"Frame at {r['time_s']:.1f} s: {faces_alt(r['faces'], classes)}")
    show_results(r["faces"], classes, key="video-face")
    c1, c2 = st.columns(2)
    c1.download_button("Download the predictions (CSV, one row per face per classified frame)",
                       done["csv"], file_name=f"{Path(clip.name).stem}.csv", mime="text/csv")
    if done.get("video"):
        c2.download_button("Download the classified frames with their answers drawn (MP4)", done["video"],
                           file_name=f"{Path(clip.name).stem}-annotated.mp4", mime="video/mp4")
        with st.expander("Play the classified frames with their answers drawn, in real time"):
            st.video(done["video"], format="video/mp4")


def live_tab(predictor: Predictor) -> None:
    try:
        import av
        from streamlit_webrtc import WebRtcMode, webrtc_streamer
    except ImportError as e:
        st.error(f"The live webcam needs streamlit-webrtc and av ({e}). Photos and snapshots still work.")
        return
    state_key = f"live::{predictor.path}::{predictor.runtime}"
    if state_key not in st.session_state:
        st.session_state[state_key] = LiveSession(predictor)
    live: LiveSession = st.session_state[state_key]

    def callback(frame):  # runs on the stream's worker thread: no Streamlit calls here
        out = live.process(frame.to_ndarray(format="rgb24"))
        return av.VideoFrame.from_ndarray(out, format="rgb24")

    # The browser reports a missing or blocked camera in streamlit-webrtc's own words ("NotFoundError: Requested
    # device not found"), under a START button that looks as if it would work.
    st.caption("The live webcam and snapshots need a camera; photos and videos work without one. If START reports "
               "an error such as \"Requested device not found\" or the picture stays black, check that a camera is "
               "connected, that the browser may use it for this site (the camera icon in the address bar), and "
               "that no other program (a video call) is using it.")
    if predictor.runtime.startswith("PyTorch"):
        st.warning("The live stream runs on PyTorch here: its threads busy-wait between frames and "
                   "compete with the video codec, so on a few cores a frame can take seconds instead of tens of "
                   "milliseconds. Choose ONNX Runtime above for a smooth stream.")
    # This machine's own addresses only, as the dashboard answers on this machine only: streamlit-webrtc's default
    # asks STUN/TURN servers elsewhere (Google's; Hugging Face's with an HF_TOKEN in the environment, Cloudflare's or
    # Twilio's with theirs). FER_LAB_STUN=on lets it, for a dashboard served across networks.
    rtc = None if os.environ.get("FER_LAB_STUN", "").lower() in ("on", "1", "yes") else {"iceServers": []}
    video, results = st.columns(2)  # side by side on a wide screen: the picture and its predictions both in view
    try:
        with video:
            ctx = webrtc_streamer(key="fer-live", mode=WebRtcMode.SENDRECV, video_frame_callback=callback,
                                  media_stream_constraints={"video": True, "audio": False}, async_processing=True,
                                  rtc_configuration=rtc, server_rtc_configuration=rtc)
    except AttributeError as e:
        # streamlit-webrtc reaches into the server's session manager, which exists only under `streamlit run`
        # (not in AppTest / bare mode).
        st.warning(f"The live webcam needs the page served by `streamlit run app.py` ({e}).")
        return
    playing = bool(ctx.state.playing)
    # Refresh from the offer on, so the counter does not wait for the rerun that reports "playing".
    active = playing or bool(ctx.state.signalling)
    if active and not st.session_state.get("live_was_active"):
        live.reset()  # a new stream counts from its first frame
    st.session_state["live_was_active"] = active
    video.caption("Faces are detected at 320 px and the boxes reused for 2 frames between detections; each face is "
                  "classified once, without its mirror image, so the stream keeps up with the camera.")
    # The panel is drawn again every second; Streamlit fades what it is about to replace, which made it flicker.
    st.html("<style>.st-key-live-panel [data-stale='true'] {opacity: 1 !important; transition: none !important}"
            "</style>")

    @st.fragment(run_every=1.0 if active else None)
    def panel():
        snap = live.snapshot()
        a, b = st.columns(2)
        a.metric("Frames processed", snap["frames"])
        b.metric("ms per frame", f"{snap['mean_ms']:.0f}" if snap["mean_ms"] is not None else "–",
                 help="The mean over the last 30 frames, those that detect faces and those that reuse the boxes")
        if snap["results"] and not active:
            st.caption(f"The stream is stopped: these are the faces of its last frame (frame {snap['frames']}). "
                       "Press START to stream again.")
        if snap["results"]:
            show_results(snap["results"], predictor.classes, key="live", stacked=True)
        elif not active:
            st.info("Press START to stream your webcam; predictions appear here.")

    with results, st.container(key="live-panel"):
        panel()
    if not active and (frames := live.recording()):
        stream_record(frames, predictor.classes)


def stream_record(frames: list[dict], classes: list[str]) -> None:
    """A stopped stream over time, as a video's: its timeline, summary line and CSV."""
    seen = people(frames)
    person = next(iter(seen), None)
    tl = timeline(frames, classes, person)
    every = LiveSession.RECORD_EVERY
    st.subheader("The last stream over time", anchor=False)
    st.success(describe("The webcam stream", summary(tl, classes), every, person, len(seen)))
    S.chart(timeline_figure(tl, classes, who=f"person {person}" if len(seen) > 1 else ""), key="live-timeline")
    st.download_button(f"Download the stream's predictions (CSV, one row per face, a frame every {every:g} s; the "
                       "last hour at most)", to_rows(frames).to_csv(index=False).encode(), file_name="webcam.csv",
                       mime="text/csv")


def main() -> None:
    st.title("Live prediction", anchor=False)
    st.caption("The model names the expression a face shows, as its training data's annotators would label it "
               "(AffectNet's and FER+'s, for the default model), and rates its valence and arousal where it learned "
               "them: the look of a face, not what its person feels. For research and teaching, not "
               "for decisions about people; the default model's intended use and limits: models/default/README.md. "
               "The default model was trained on AffectNet and FER+ images: non-commercial research use only.")
    choices = model_choices()
    if not choices:
        where = ", ".join(code(d) for d in runs_dirs())
        st.error(f"No model to predict with: {DEFAULT_DIR}/ holds no model.pt or model.onnx and no run in {where} "
                 f"has checkpoints/best.pt. Train one (`python -m fer_core.train --data DATA --preset hse-fast`); it "
                 f"appears here once its first epoch is saved. Or ship a run as the default model: "
                 f"`python -m fer_core.export --run RUN --model-dir {DEFAULT_DIR}`.")
        return
    c1, c2 = st.columns([2, 1])  # room for "ONNX Runtime" in a narrow window
    label = S.choice(c1, "Model", list(choices), "predict_model")
    runtimes = list(RUNTIMES)
    try:
        resolve_model(choices[label], root=ROOT, backend="torch")
    except ModelNotFound:  # an ONNX file only (the shipped default model): PyTorch cannot run it
        runtimes = [r for r in runtimes if RUNTIMES[r] == "onnx"] or runtimes
    runtime = S.choice(c2, "Runtime", runtimes, "predict_runtime",
                       help="ONNX Runtime: a checkpoint is converted once when it is first chosen; faster per frame "
                            "and it does not busy-wait, which keeps the live stream smooth on few cores")
    backend = RUNTIMES[runtime]
    try:
        path = resolve_model(choices[label], root=ROOT, backend=backend)
        predictor = get_predictor(str(path), backend, model_stamp(path))
    except (ModelNotFound, ValueError, RuntimeError, KeyError, OSError) as e:
        st.error(f"Cannot load {S.md(label)}: {S.md(e)}")
        return
    i = predictor.info()
    st.info(f"**Answering: {S.md(i['name'])}** — {S.md(i['backbone'])}, {i['img_size']} px"
            f"{', flip test-time augmentation' if i['tta'] else ''}, on {i['runtime']}  \n"
            f"Weights file: {code(i['weights_file'])}")
    with st.expander("How this model was trained, and how faces are found"):
        st.markdown(f"Trained: {S.md(i['trained'])}"
                    + (f"  \nBackbone initialised from: {S.md(i['init'])}" if i["init"] else "")
                    + (f"  \nAn ensemble of {S.names(i['members'])}: their probabilities and valence/arousal "
                       "averaged" if i["members"] else "")
                    + (f"  \nCheckpoint: {i['best']}" if i["best"] else "")
                    + ("  \nFlip test-time augmentation: each face in photos, video frames and snapshots is "
                       "classified twice, as it is and mirrored, and the two answers averaged, as the run was "
                       "evaluated" if i["tta"] else "")
                    + (f"  \nConfidence calibrated: temperature {i['temperature']:.2f} (fer_core.calibrate; the "
                       "predicted classes are the same without it)" if i["temperature"] != 1 else "")
                    + f"  \nFace detector: {i['detector']}")

    photos, video, snap, live = st.tabs(["Photos", "Video", "Snapshot", "Live webcam"])
    kept = set()
    with photos:
        files = st.file_uploader("Upload one or more photos", type=IMAGE_TYPES, accept_multiple_files=True)
        if not files and st.checkbox("Or try a sample photo: astronaut Eileen Collins (NASA, public domain; shipped "
                                     "with scikit-image)", key="sample_photo"):
            files = [SimpleNamespace(name="astronaut.png", getvalue=sample_png)]  # as the uploader hands one over
        download, records, names = st.container(), [], Counter()
        for n, f in enumerate(files or []):
            names[f.name] += 1  # two photos of one name (from two folders) are told apart in the CSV too
            name = f.name if names[f.name] == 1 else f"{Path(f.name).stem} ({names[f.name]}){Path(f.name).suffix}"
            st.header(S.md(name), anchor=False)
            kept.add(key := predict_upload(predictor, name, f.getvalue(), key=f"up{n}"))
            done = st.session_state[key]
            records.append({"path": name, "error": done["reason"]} if "error" in done else in_file_pixels(
                {"path": name, "size": done["size"], "faces": [trained_note(r) if done["trained"] else dict(r)
                                                                 for r in done["results"]],
                 **({"frames": done["frames"]} if done["frames"] > 1 else {})}, done["decoded"]))
        if records:  # the table python -m fer_core.predict --csv writes
            which = "these photos" if len(records) > 1 else "this photo"
            download.download_button(f"Download the predictions of {which} (CSV, one row per face)",
                                     to_rows(records).to_csv(index=False).encode(), file_name="predictions.csv",
                                     mime="text/csv")
    with video:
        video_tab(predictor)
    with snap:
        shot = st.camera_input("Take a snapshot")
        if shot is not None:
            kept.add(predict_upload(predictor, "snapshot", shot.getvalue(), key="snap"))
    forget_photos_but(kept)
    with live:
        live_tab(predictor)


main()
