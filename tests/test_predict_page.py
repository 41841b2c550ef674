"""The predict page in Streamlit's AppTest: model choice, uploads (good, no face, broken), snapshot."""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut, chelsea
from streamlit.testing.v1 import AppTest

from fer_core.inference import Predictor, read_image

from .test_inference import make_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "views" / "predict.py")


def _bytes(arr, fmt) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, fmt)
    return b.getvalue()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    (d / "tiny-run" / "checkpoints").mkdir(parents=True)
    make_checkpoint(d / "tiny-run" / "checkpoints" / "best.pt")
    return d


def page(monkeypatch, runs) -> AppTest:
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(runs))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def test_page_without_any_model_says_how_to_get_one(monkeypatch, tmp_path):
    if any((ROOT / "models" / "default" / f).is_file() for f in ("model.pt", "model.onnx")):
        pytest.skip("models/default holds a model in this checkout, so the page always has one")
    at = page(monkeypatch, tmp_path)
    assert len(at.error) == 1 and "fer_core.train" in at.error[0].value and "models/default" in at.error[0].value


def test_page_names_the_model_and_predicts_uploads(monkeypatch, runs_dir):
    import fer_core.predict
    from fer_core.images import ImageError
    from fer_core.labels import CLASSES

    tables, real = [], fer_core.predict.to_rows  # what the page's download button holds
    monkeypatch.setattr(fer_core.predict, "to_rows", lambda records: tables.append(real(records)) or tables[-1])
    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    info = at.info[0].value
    assert "tiny" in info and "mobilenet_v2" in info and "best.pt" in info and "ONNX Runtime" in info
    assert [t.label for t in at.tabs] == ["Photos", "Video", "Snapshot", "Live webcam"]
    jpg = _bytes(astronaut(), "JPEG")
    png = _bytes(chelsea(), "PNG")
    at.file_uploader[0].set_value([("astro.jpg", jpg, "image/jpeg"), ("cat.png", png, "image/png"),
                                   ("notes.jpg", b"just text", "image/jpeg"),
                                   ("cut.png", png[: len(png) // 3], "image/png")]).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2 and errors[0].startswith("Cannot read notes.jpg") and "cut.png" in errors[1]
    assert "cut short" in errors[1]
    # one CSV of every photo's faces, as python -m fer_core.predict --csv writes it
    assert "Download the predictions of these photos (CSV, one row per face)" in \
        [b.proto.label for b in at.get("download_button")]
    table = tables[-1]
    assert table["path"].tolist() == ["astro.jpg", "cat.png", "notes.jpg", "cut.png"]
    assert table["label_name"].iloc[0] in CLASSES and table["error"].iloc[:2].eq("").all()
    assert "cut short" in table["error"].iloc[3] and table["error"].iloc[2]
    with pytest.raises(ImageError) as e:  # the reason as the reader gives it, not escaped for Markdown
        read_image(b"just text", name="notes.jpg")
    assert table["error"].iloc[2] == str(e.value).removeprefix("notes.jpg: ")
    assert any("No face found" in w.value for w in at.warning)
    assert [c for i in at.get("image") for c in i.captions] == ["astro.jpg: 1 face(s)", "cat.png: 0 face(s)"]
    # what a screen reader says of each picture: the faces and the answers
    alts = [img.alt for i in at.get("image") for img in i.proto.imgs]
    assert alts[0].startswith("astro.jpg: face 1 ") and alts[0].endswith("%)")
    assert alts[1].startswith("cat.png: no face found; the whole picture reads as ")
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # probabilities + circumplex for the face and for the whole cat picture
    # the bars show what the engine predicts for that photo
    bars = json.loads(charts[0].proto.spec)["data"][0]["x"]
    torch_pred = Predictor(runs_dir / "tiny-run" / "checkpoints" / "best.pt", backend="torch")
    expected = torch_pred.predict_faces(read_image(jpg))
    assert np.allclose(bars, expected[0]["probs"], atol=1e-4)  # page: ONNX Runtime, here: PyTorch
    assert tables[-1].loc[0, ["x0", "y0", "x1", "y1"]].tolist() == list(expected[0]["box"])  # the file's pixels
    circ = json.loads(charts[1].proto.spec)
    assert circ["layout"]["xaxis"]["range"] == [-1.25, 1.25]
    assert abs(circ["data"][0]["x"][0] - expected[0]["valence"]) < 1e-4
    at.file_uploader[0].set_value([("IMG_0001.jpg", jpg, "image/jpeg"),  # one name from two folders
                                   ("IMG_0001.jpg", png, "image/jpeg")]).run()
    assert tables[-1]["path"].tolist() == ["IMG_0001.jpg", "IMG_0001 (2).jpg"]
    assert [c for i in at.get("image") for c in i.captions] == ["IMG_0001.jpg: 1 face(s)",
                                                                "IMG_0001 (2).jpg: 0 face(s)"]


def test_a_sample_photo_answers_without_an_upload(monkeypatch, runs_dir):
    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    assert not at.get("image")
    at.checkbox(key="sample_photo").check().run()
    assert not at.exception, at.exception
    assert [c for i in at.get("image") for c in i.captions] == ["astronaut.png: 1 face(s)"]
    at.file_uploader[0].set_value([("cat.png", _bytes(chelsea(), "PNG"), "image/png")]).run()
    assert [c for i in at.get("image") for c in i.captions] == ["cat.png: 0 face(s)"]  # an upload takes its place


def test_runs_of_one_name_in_two_folders_are_both_offered(monkeypatch, tmp_path):
    for root in ("lab-a", "lab-b"):
        (tmp_path / root / "run1" / "checkpoints").mkdir(parents=True)
        make_checkpoint(tmp_path / root / "run1" / "checkpoints" / "best.pt")
    monkeypatch.setenv("FER_LAB_RUNS_DIR", os.pathsep.join(str(tmp_path / r) for r in ("lab-a", "lab-b")))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert {"Run lab-a/run1", "Run lab-b/run1"} <= set(at.selectbox[0].options)


def test_snapshot_tab(monkeypatch, runs_dir):
    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    at.camera_input[0].set_value(("shot.jpg", _bytes(astronaut(), "JPEG"), "image/jpeg")).run()
    assert not at.exception, at.exception
    assert [c for i in at.get("image") for c in i.captions] == ["snapshot: 1 face(s)"]
    assert len(at.get("plotly_chart")) == 2


def test_where_it_looked_shows_the_occlusion_map_of_the_chosen_class(monkeypatch, runs_dir):
    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    jpg = _bytes(astronaut(), "JPEG")
    at.file_uploader[0].set_value([("astro.jpg", jpg, "image/jpeg")]).run()
    assert len(at.get("image")) == 1  # the map only on request
    [kept] = [at.session_state[k] for k in at.session_state if str(k).startswith("photo::")]
    assert "image" not in kept and [c.shape for c in kept["crops"]] == [(112, 112, 3)]  # not the photo's pixels
    at.toggle(key="up0-x0").set_value(True).run()
    assert not at.exception, at.exception
    assert [c for i in at.get("image") for c in i.captions][1] == "the 112 px crop the model saw"
    face = Predictor(runs_dir / "tiny-run" / "checkpoints" / "best.pt").predict_faces(read_image(jpg))[0]
    label = face["label_name"]
    assert at.selectbox(key="up0-x0-class").value == label
    assert any(m.value.startswith(f"P({label}) = {face['confidence']:.0%}.") for m in at.markdown)
    other = next(c for c in at.selectbox(key="up0-x0-class").options if c != label)
    at.selectbox(key="up0-x0-class").set_value(other).run()
    assert not at.exception, at.exception
    p_other = face["probs"][at.selectbox(key="up0-x0-class").options.index(other)]
    assert any(m.value.startswith(f"P({other}) = {p_other:.0%}.") for m in at.markdown)


def test_video_tab_draws_the_timeline_and_shows_each_classified_frame(monkeypatch, runs_dir, tmp_path):
    from .test_video import write_clip

    clip = write_clip(tmp_path / "clip.mp4").read_bytes()
    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    uploader = [u for u in at.get("file_uploader") if u.label == "Upload a video"][0]
    uploader.set_value(("notes.mp4", b"just text", "video/mp4")).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["Cannot read notes.mp4: cannot open as a video (not a video OpenCV's "
                                           "FFmpeg can decode)"]
    uploader = [u for u in at.get("file_uploader") if u.label == "Upload a video"][0]
    uploader.set_value(("clip.mp4", clip, "video/mp4")).run()
    assert not at.exception, at.exception
    # 3 s at 10 frames/s, one classified every 0.2 s: 15 frames, the astronaut in the first 10, then black
    assert at.success[0].value.startswith("clip.mp4: 15 frames sampled every 0.2 s over 2.8 s, a face in 10;")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    y = spec["data"][0]["y"]  # plotly sends numeric arrays base64-encoded
    valence = np.frombuffer(base64.b64decode(y["bdata"]), y["dtype"]) if isinstance(y, dict) else np.array(y, float)
    assert spec["data"][0]["name"] == "valence" and len(valence) == 15
    assert np.isnan(valence[10:]).all() and not np.isnan(valence[:10]).any()
    assert [c for i in at.get("image") for c in i.captions] == ["0.0 s (frame 0)"]
    labels = [b.label for b in at.get("download_button")]
    assert "Download the classified frames with their answers drawn (MP4)" in labels
    [video] = at.get("video")  # the 15 frames with their answers, at 5 a second: the clip's 3 s
    assert at.session_state[next(k for k in at.session_state if str(k).startswith("video::"))]["result"][
        "video"][4:8] == b"ftyp"  # an MP4 file
    at.get("select_slider")[-1].set_value(12).run()
    assert [c for i in at.get("image") for c in i.captions] == ["2.4 s (frame 24)"]
    assert [i.value for i in at.info if "No face" in i.value] == ["No face found in this frame."]
    assert not any("No face found" in w.value for w in at.warning)  # no answer for the whole frame instead
    # another interval is another analysis, with its own frames to look at
    at.get("select_slider")[0].set_value(1.0).run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("clip.mp4: 3 frames sampled every 1 s")
    assert [c for i in at.get("image") for c in i.captions] == ["0.0 s (frame 0)"]
    assert not [b for b in at.selectbox if b.label.startswith("Follow")]  # one person: nothing to choose
    [job] = [at.session_state[k] for k in at.session_state if str(k).startswith("video::")]
    [u for u in at.get("file_uploader") if u.label == "Upload a video"][0].set_value(None).run()  # removed
    assert job["cancel"] and not [k for k in at.session_state if str(k).startswith("video::")]  # its analysis stops


def test_video_tab_follows_the_chosen_person(monkeypatch, runs_dir, tmp_path):
    from .test_video import write_two_people

    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    uploader = [u for u in at.get("file_uploader") if u.label == "Upload a video"][0]
    uploader.set_value(("two.mp4", write_two_people(tmp_path / "two.mp4").read_bytes(), "video/mp4")).run()
    assert not at.exception, at.exception
    follow = [b for b in at.selectbox if b.label.startswith("Follow (2 people seen")][0]
    assert follow.options == ["Person 1 (in 10 of 10 frames)", "Person 2 (in 5 of 10 frames)"]
    assert "person 1 of 2 in 10;" in at.success[0].value
    follow.set_value(2).run()
    assert not at.exception, at.exception
    assert "person 2 of 2 in 5;" in at.success[0].value
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["annotations"][0]["text"] == "Valence and arousal (person 2)"
    at.get("select_slider")[-1].set_value(7).run()
    faces = [m.value.split(" detector")[0] for m in at.markdown if m.value.startswith("**Face")]
    assert faces == ["**Face 1 (person 2,", "**Face 2 (person 1,"]  # largest first, each named by person
    at.toggle(key="video_one_person").set_value(True).run()  # a participant's video: the largest face is theirs
    assert not at.exception, at.exception
    assert not [b for b in at.selectbox if b.label.startswith("Follow")]
    assert at.success[0].value.startswith("two.mp4: 10 frames sampled every 0.2 s over 1.8 s, a face in 10;")


def test_a_model_trained_without_valence_arousal_gives_none(monkeypatch, tmp_path):
    import torch

    from fer_core.faces import annotate
    from fer_core.predict import _table, to_rows

    (tmp_path / "no-va" / "checkpoints").mkdir(parents=True)
    path = make_checkpoint(tmp_path / "no-va" / "checkpoints" / "best.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["data"].update(layout="ferplus", has_va=False)  # e.g. a FER+ stage
    torch.save(ckpt, path)
    faces = Predictor(path, backend="torch").predict_faces(astronaut())
    assert faces and all(np.isnan(f["valence"]) and np.isnan(f["arousal"]) for f in faces)
    assert annotate(astronaut(), faces).shape == astronaut().shape
    table = _table(to_rows([{"path": "astro.jpg", "faces": faces}]))
    assert "nan" not in table and "–" in table

    at = page(monkeypatch, tmp_path)
    at.selectbox[0].set_value("Run no-va").run()
    at.file_uploader[0].set_value([("astro.jpg", _bytes(astronaut(), "JPEG"), "image/jpeg")]).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1  # the probabilities, no circumplex
    assert not any("valence" in m.value for m in at.markdown if m.value.startswith("**Face 1"))
    assert any(c.value.startswith("No valence/arousal: this model was trained on data without them")
               for c in at.caption)


def test_a_photo_is_analysed_once_and_runtimes_fit_the_model(monkeypatch, runs_dir):
    calls = []
    real = Predictor.predict_faces
    monkeypatch.setattr(Predictor, "predict_faces", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    at = page(monkeypatch, runs_dir)
    default = ROOT / "models" / "default"
    if (default / "model.onnx").is_file() and not (default / "model.pt").is_file():
        assert at.selectbox[1].options == ["ONNX Runtime"]  # PyTorch cannot run the ONNX-only default model
    at.selectbox[0].set_value("Run tiny-run").run()
    assert at.selectbox[1].options == ["ONNX Runtime", "PyTorch"]
    at.file_uploader[0].set_value([("astro.jpg", _bytes(astronaut(), "JPEG"), "image/jpeg")]).run()
    assert len(calls) == 1
    at.toggle[0].set_value(True).run()  # "Where it looked": the photo is not analysed again
    at.toggle[0].set_value(False).run()
    assert not at.exception and len(calls) == 1
    at.selectbox[1].set_value("PyTorch").run()  # another model answering: analysed again
    assert len(calls) == 2


def test_a_large_group_photo_is_drawn_at_the_size_it_is_shown(monkeypatch, runs_dir):
    """Labels drawn on a 4032 px photo and then shrunk to fit the page were 3-4 px tall."""
    import cv2

    from fer_core.labels import CLASS_COLOURS as COLOURS

    face = cv2.resize(astronaut()[40:200, 150:295], (200, 220), interpolation=cv2.INTER_AREA)
    photo = np.full((3024, 4032, 3), 120, np.uint8)
    for x, y in [(400 + 1300 * c, 500 + 1300 * r) for r in range(2) for c in range(3)]:
        photo[y:y + 220, x:x + 200] = face
    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    at.file_uploader[0].set_value([("group.jpg", _bytes(photo, "JPEG"), "image/jpeg")]).run()
    assert not at.exception, at.exception
    assert [c for i in at.get("image") for c in i.captions] == ["group.jpg: 6 face(s)"]
    [done] = [at.session_state[k] for k in at.session_state.keys() if str(k).startswith("photo::")]
    shown = done["shown"]
    assert max(shown.shape[:2]) == 1000  # about the width the page shows it at
    scale = 1000 / 4032
    for r in done["results"]:  # each label: a band of its face's colour above the box, at least 12 px tall
        x0, y0 = round(r["box"][0] * scale), round(r["box"][1] * scale)
        band = shown[y0 - 40:y0, x0:x0 + 60]
        assert ((band == COLOURS[r["label"]]).all(axis=-1).sum(axis=1) >= 10).sum() >= 12


def test_photo_formats_pil_reads_are_taken_and_heic_is_explained(monkeypatch, runs_dir):
    at = page(monkeypatch, runs_dir)
    at.selectbox[0].set_value("Run tiny-run").run()
    assert {".jfif", ".avif", ".heic"} <= set(at.file_uploader[0].proto.type)
    b = io.BytesIO()
    Image.fromarray(astronaut()).save(b, "AVIF")
    at.file_uploader[0].set_value([("astro.avif", b.getvalue(), "image/avif"),
                                   ("IMG_0001.HEIC", b"\0\0\0\x18ftypheic" + bytes(100), "image/heic")]).run()
    assert not at.exception, at.exception
    assert [c for i in at.get("image") for c in i.captions] == ["astro.avif: 1 face(s)"]
    assert [e.value for e in at.error] == ["Cannot read IMG_0001.HEIC: HEIC photos are not supported here (no decoder "
                                           "installed): convert it to JPEG or PNG first"]
    gif = io.BytesIO()
    Image.fromarray(astronaut()).save(gif, "GIF", save_all=True, append_images=[Image.fromarray(chelsea())])
    at.file_uploader[0].set_value([("anim.gif", gif.getvalue(), "image/gif")]).run()
    assert [c for i in at.get("image") for c in i.captions] == ["anim.gif: 1 face(s)"]
    assert [i.value for i in at.info][1:] == ["anim.gif holds 2 frames (an animation or a multi-page file); these are "
                                              "the first frame's faces. To follow its frames, convert it to a video "
                                              "(`ffmpeg -i anim.gif anim.mp4`) and upload that in the Video tab."]


def test_the_video_uploader_names_its_limit_and_the_way_round_it(monkeypatch, runs_dir):
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] >= 500  # a minute of phone video
    at = page(monkeypatch, runs_dir)
    assert any("python -m fer_core.predict VIDEO" in c.value for c in at.caption)


def test_the_live_tab_says_what_works_without_a_camera(monkeypatch, runs_dir):
    at = page(monkeypatch, runs_dir)
    [note] = [c.value for c in at.caption if "photos and videos work without one" in c.value]
    assert "Requested device not found" in note and "camera icon in the address bar" in note


def test_a_photo_the_model_trained_on_is_named_as_such(monkeypatch, tmp_path):
    import torch

    import fer_core.predict

    tables, real = [], fer_core.predict.to_rows  # what the page's download button holds
    monkeypatch.setattr(fer_core.predict, "to_rows", lambda records: tables.append(real(records)) or tables[-1])

    run = tmp_path / "runs" / "seen-run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = torch.load(make_checkpoint(run / "checkpoints" / "best.pt"), weights_only=True)
    ckpt["config"]["data"] = {"root": str(tmp_path / "data"), "layout": "folders"}
    torch.save(ckpt, run / "checkpoints" / "best.pt")
    (tmp_path / "data" / "Happy").mkdir(parents=True)
    seen = _bytes(astronaut(), "JPEG")
    (tmp_path / "data" / "Happy" / "a.jpg").write_bytes(seen)
    (run / "split.csv").write_text("id,path,split\nHappy/a.jpg,Happy/a.jpg,train\n")
    at = page(monkeypatch, tmp_path / "runs")
    at.selectbox[0].set_value("Run seen-run").run()
    at.file_uploader[0].set_value([("mine.jpg", seen, "image/jpeg"),
                                   ("cat.png", _bytes(chelsea(), "PNG"), "image/png")]).run()
    assert not at.exception, at.exception
    trained = [w.value for w in at.warning if "trained on" in w.value]
    assert len(trained) == 1 and trained[0].startswith("mine.jpg is an image the model trained on")
    notes = tables[-1].groupby("path")["note"].first()  # the download says it too, as the command line's CSV does
    assert fer_core.predict.TRAINED_ON in notes["mine.jpg"] and fer_core.predict.TRAINED_ON not in notes["cat.png"]
