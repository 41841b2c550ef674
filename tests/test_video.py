"""Videos: sampled frames, faces linked into people, a person's timeline, the predict CLI on a clip."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from skimage.data import astronaut

from fer_core import predict as predict_cli
from fer_core.inference import Predictor
from fer_core.report_live import timeline_figure
from fer_core.video import People, VideoError, describe, people, predict_video, summary, timeline

from .test_inference import make_checkpoint


def write_clip(path: Path, fps: float = 10, face_frames: int = 20, blank_frames: int = 10) -> Path:
    """An MPEG-4 clip: the astronaut for ``face_frames`` frames, then black."""
    rgb = np.ascontiguousarray(cv2.resize(astronaut(), (640, 640), interpolation=cv2.INTER_AREA)[:480])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for i in range(face_frames + blank_frames):
        writer.write(cv2.cvtColor(rgb if i < face_frames else np.zeros_like(rgb), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_two_people(path: Path, fps: int = 10) -> Path:
    """A clip of two astronauts: a smaller one on the left throughout, a larger one on the right from frame 10 on."""
    face = astronaut()
    left = np.ascontiguousarray(cv2.resize(face, (240, 240), interpolation=cv2.INTER_AREA))
    right = np.ascontiguousarray(cv2.resize(face, (320, 320), interpolation=cv2.INTER_AREA))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for i in range(20):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[120:360, 0:240] = left
        if i >= 10:
            frame[80:400, 310:630] = right
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_vfr(path: Path) -> Path:
    """A variable-frame-rate MPEG-4 clip (PyAV sets each frame's time): 20 frames 20 ms apart, then 10 frames 200 ms
    apart; OpenCV reports an average of 13.5 frames/s."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    times = [20 * k for k in range(20)] + [400 + 200 * k for k in range(10)]
    rgb = np.ascontiguousarray(cv2.resize(astronaut(), (320, 320), interpolation=cv2.INTER_AREA)[:240])
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=50)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for ms in times:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("video") / "best.pt"
    make_checkpoint(ckpt)
    return Predictor(ckpt, backend="torch")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def test_frames_are_sampled_at_the_interval_and_classified_like_photos(predictor, clip):
    seen, calls = [], []
    records = predict_video(predictor, clip, every=0.2, progress=lambda d, t: calls.append((d, t)),
                            on_frame=lambda rgb, r: seen.append((rgb.shape, r["frame"])))
    assert [r["frame"] for r in records] == list(range(0, 30, 2))
    assert [r["time_s"] for r in records][:3] == [0.0, 0.2, 0.4]
    assert seen == [((480, 640, 3), f) for f in range(0, 30, 2)]
    assert calls[-1] == (30, 30) and all(t == 30 for _, t in calls)
    # the first frame's face is the one a photo of that frame gives (the codec changes the pixels a little)
    first = records[0]["faces"]
    assert len(first) == 1 and not first[0]["whole_image"]
    photo = predictor.predict_faces(np.ascontiguousarray(cv2.resize(astronaut(), (640, 640))[:480]))[0]
    assert np.abs(np.array(first[0]["box"]) - photo["box"]).max() <= 8
    assert all(r["faces"] == [] for r in records[10:])  # black frames: no face, and no answer for the whole frame
    rows = predict_cli.to_rows(records[9:])  # the CSV: such a frame is a row of its own, its time and nothing else
    assert rows["note"].tolist() == ["", *[predict_cli.NO_FACE_IN_FRAME] * 5] and rows["time_s"].tolist()[1] == 2.0
    answers = rows.iloc[1:].drop(columns=["path", "frame", "time_s", "note", "error"])
    assert answers.isna().all().all() and rows.iloc[0]["label_name"] and "prob_Happy" in answers
    # a video without any face: nobody to follow, so no row takes the whole frame's answer for a face's
    black = timeline(records[10:], predictor.classes)
    assert list(black["faces"]) == [0] * 5 and black["valence"].isna().all() and black["label_name"].isna().all()
    assert len(predict_video(predictor, clip, every=1.0)) == 3  # one a second at 10 frames/s: frames 0, 10, 20
    # an interval that is no whole number of frames: the frames nearest after 0, 0.25, 0.5, ... s, so that the
    # intervals average 0.25 s and do not stretch to 0.3 s each
    frames = [r["frame"] for r in predict_video(predictor, clip, every=0.25)]
    assert frames == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]


def test_a_variable_frame_rate_is_sampled_and_timed_by_the_streams_clock(predictor, tmp_path):
    records = predict_video(predictor, write_vfr(tmp_path / "vfr.mp4"), every=0.2)
    # every 10th frame while they are 20 ms apart, then each one (200 ms apart), at the times the file gives them
    assert [r["frame"] for r in records] == [0, 10, *range(20, 30)]
    assert [r["time_s"] for r in records] == [round(0.2 * k, 3) for k in range(12)]
    line = describe("vfr.mp4", summary(timeline(records, predictor.classes), predictor.classes), 0.2)
    assert line.startswith("vfr.mp4: 12 frames sampled every 0.2 s over 2.2 s, a face in 12;")


def test_a_low_frame_rate_keeps_one_person_and_says_the_real_interval(predictor, tmp_path):
    """One frame every 2 s, asked for one every 0.2 s: each frame is sampled, the face is one person throughout."""
    records = predict_video(predictor, write_clip(tmp_path / "slow.mp4", fps=0.5, face_frames=5, blank_frames=0))
    assert [r["time_s"] for r in records] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert people(records) == {1: 5}
    line = describe("slow.mp4", summary(timeline(records, predictor.classes), predictor.classes), 0.2)
    assert line.startswith("slow.mp4: 5 frames sampled every 2 s over 8.0 s, a face in 5;")


def test_timeline_follows_the_largest_face_and_leaves_gaps(predictor, clip):
    records = predict_video(predictor, clip, every=0.2)
    tl = timeline(records, predictor.classes)
    assert len(tl) == 15 and list(tl["faces"]) == [1] * 10 + [0] * 5
    assert tl["valence"][:10].notna().all() and tl["valence"][10:].isna().all()
    assert np.allclose(tl.loc[0, predictor.classes].to_numpy(float), records[0]["faces"][0]["probs"])
    s = summary(tl, predictor.classes)
    assert s["frames"] == 15 and s["with_face"] == 10 and s["seconds"] == 2.8
    assert abs(sum(s["shares"].values()) - 1) < 1e-9
    assert s["valence"] == pytest.approx(tl["valence"].mean())
    fig = timeline_figure(tl, predictor.classes)
    assert [t.name for t in fig.data] == ["valence", "arousal", *predictor.classes]
    # the black second: one grey band per panel, from the first faceless frame to one step past the last
    assert {(s.x0, round(s.x1, 3)) for s in fig.layout.shapes} == {(2.0, 3.0)} and len(fig.layout.shapes) == 2


def face(box):
    return {"box": box, "whole_image": False}


def test_people_follow_overlapping_boxes_and_start_afresh_otherwise():
    linker = People(min_iou=0.3, max_gap=1.0)
    frames = [[face((100, 100, 200, 200))],
              [face((400, 100, 520, 220)), face((110, 105, 210, 205))],  # a second face; the first moved a little
              [face((120, 100, 220, 200)), face((405, 100, 525, 220))],  # the two swap places in the list
              [face((0, 0, 640, 480)) | {"whole_image": True}],  # no face: the whole frame, no person
              [face((125, 100, 225, 200))],  # back 0.4 s later: still person 1
              [face((300, 300, 400, 400))]]  # elsewhere, no overlap: someone new
    for k, faces in enumerate(frames):
        linker.assign(faces, 0.2 * k)
    assert [[f.get("person") for f in faces] for faces in frames] == [[1], [2, 1], [1, 2], [None], [1], [3]]
    # out of view longer than max_gap: a new person, even at the same place
    late = [face((125, 100, 225, 200))]
    linker.assign(late, 0.8 + 1.5)
    assert late[0]["person"] == 4
    records = [{"faces": faces} for faces in frames + [late]]
    assert people(records) == {1: 4, 2: 2, 3: 1, 4: 1}  # the most seen first, ties in order of first appearance


def test_people_follow_a_fast_face_that_no_longer_overlaps_but_not_a_jump_or_another_size():
    linker = People(min_iou=0.3, max_gap=1.0)
    # a 100 px face crossing at 80 px per sampled frame (IoU 0.11 from one to the next), and a still one
    frames = [[face((100 + 80 * k, 100, 200 + 80 * k, 200)), face((600, 300, 700, 400))] for k in range(5)]
    frames.append([face((700, 100, 960, 360))])  # a face of seven times the area near where the first was: another
    frames.append([face((1200, 100, 1300, 200))])  # a jump of seven widths: someone new
    for k, faces in enumerate(frames):
        linker.assign(faces, 0.2 * k)
    assert [[f["person"] for f in faces] for faces in frames] == [[1, 2]] * 5 + [[3], [4]]


def test_the_timeline_follows_one_person_not_the_largest_face(predictor, tmp_path, capsys):
    clip = write_two_people(tmp_path / "two.mp4")
    records = predict_video(predictor, clip, every=0.2)
    assert [len([f for f in r["faces"] if not f["whole_image"]]) for r in records] == [1] * 5 + [2] * 5
    assert people(records) == {1: 10, 2: 5}
    assert [r["faces"][0]["person"] for r in records[5:]] == [2] * 5  # the larger face comes first in the list
    tl = timeline(records, predictor.classes)  # person 1, the one seen most, on the left throughout
    lefts = [next(f for f in r["faces"] if f["person"] == 1) for r in records]
    assert np.allclose(tl["valence"], [f["valence"] for f in lefts]) and all(f["box"][0] < 100 for f in lefts)
    tl2 = timeline(records, predictor.classes, person=2)
    assert tl2["valence"][:5].isna().all() and tl2["valence"][5:].notna().all()
    assert list(tl2["faces"]) == [1] * 5 + [2] * 5  # faces in the frame, whoever is followed
    line = describe("two.mp4", summary(tl2, predictor.classes), 0.2, 2, 2)
    assert line.startswith("two.mp4: 10 frames sampled every 0.2 s over 1.8 s, person 2 of 2 in 5;")
    fig = timeline_figure(tl2, predictor.classes, who="person 2")
    assert {(s.x0, round(s.x1, 3)) for s in fig.layout.shapes} == {(0.0, 1.0)}
    assert fig.layout.annotations[-1].text == "not in view"
    gaps = tl2.copy()
    gaps.loc[7, ["label_name", "valence", "arousal"]] = None  # out of view twice: two bands, one text
    fig = timeline_figure(gaps, predictor.classes, who="person 2")
    assert {s.x0 for s in fig.layout.shapes} == {0.0, 1.4}  # a band in each panel
    # plotly.js writes "new text" on an annotation without one
    assert all(a.text for a in fig.layout.annotations) and [a.text for a in fig.layout.annotations].count(
        "not in view") == 2  # the first band's, in each panel
    # one person: the largest face of each frame is theirs, the other left out
    one = predict_video(predictor, clip, every=0.2, one_person=True)
    assert [[f["person"] for f in r["faces"]] for r in one] == [[1]] * 10 and people(one) == {1: 10}
    assert [r["faces"][0]["box"] for r in one] == [r["faces"][0]["box"] for r in records]
    # the CLI prints a line per person and writes the person into the CSV
    out = tmp_path / "two.csv"
    assert predict_cli.main(predict_cli.get_args_parser().parse_args(
        [str(clip), "--run", str(predictor.path), "--csv", str(out)])) == 0
    text = capsys.readouterr().out
    assert "person 1 of 2 in 10;" in text and "person 2 of 2 in 5;" in text
    assert predict_cli.main(predict_cli.get_args_parser().parse_args(
        [str(clip), "--run", str(predictor.path), "--csv", str(tmp_path / "one.csv"), "--one-person"])) == 0
    assert "two.mp4: 10 frames sampled every 0.2 s over 1.8 s, a face in 10;" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "one.csv")["person"].tolist() == [1] * 10
    # --summary: a row per video and person, the figures of its line
    assert predict_cli.main(predict_cli.get_args_parser().parse_args(
        [str(clip), "--run", str(predictor.path), "--summary", str(tmp_path / "sum.csv")])) == 0
    lines = capsys.readouterr().out
    rows = pd.read_csv(tmp_path / "sum.csv")
    assert rows["person"].tolist() == [1, 2] and rows["frames_in_view"].tolist() == [10, 5]
    assert (rows["frames_sampled"] == 10).all() and np.allclose(rows.filter(like="share_").sum(axis=1), 1)
    two = rows.iloc[1]
    assert "person 2 of 2 in 5; mostly" in lines and f"mean confidence {two['mean_confidence']:.2f}" in lines
    assert np.isclose(two["mean_valence"], tl2["valence"].mean()) and f"{two['mean_valence']:+.2f}" in lines
    assert predict_cli.main(predict_cli.get_args_parser().parse_args(
        [str(clip), "--csv", str(out), "--summary", str(out)])) == 2
    assert "--csv and --summary both name" in capsys.readouterr().err
    df = pd.read_csv(out)
    assert df.groupby("person")["frame"].count().to_dict() == {1: 10, 2: 5}


def test_bad_videos_are_named_and_explained(predictor, tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        predict_video(predictor, tmp_path / "missing.mp4")
    (tmp_path / "notes.mp4").write_text("just text")
    with pytest.raises(VideoError, match=r"notes\.mp4: cannot open as a video \(not a video"):
        predict_video(predictor, tmp_path / "notes.mp4")
    with pytest.raises(ValueError, match="must be positive"):
        predict_video(predictor, tmp_path / "notes.mp4", every=0)


def test_empty_and_truncated_videos_say_so(predictor, tmp_path):
    for name, fourcc in (("empty.mp4", "mp4v"), ("empty.avi", "MJPG")):  # OpenCV opens one of them, not the other
        cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48)).release()
        with pytest.raises(VideoError, match=rf"{name}: .*has no frames"):
            predict_video(predictor, tmp_path / name)
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"zero.mp4: cannot open as a video \(empty: 0 bytes\)"):
        predict_video(predictor, tmp_path / "zero.mp4")
    # the second half of an MJPEG AVI cut off: its header still announces 20 frames
    full = write_clip(tmp_path / "full.avi", face_frames=20, blank_frames=0)
    (tmp_path / "cut.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    heard, calls = [], []
    records = predict_video(predictor, tmp_path / "cut.avi", every=0.1, warn=heard.append,
                            progress=lambda d, t: calls.append((d, t)))
    n = len(records)
    assert 5 < n < 15 and calls[-1] == (n, 20)
    assert heard == [f"{tmp_path / 'cut.avi'}: decoding stopped after {n} of the 20 frames the file announces "
                     f"(truncated or damaged?); the predictions cover the first {(n - 1) / 10:.1f} s"]
    heard.clear()
    predict_video(predictor, full, warn=heard.append)  # a whole file: nothing to say
    assert heard == []
    # an MP4 cut short loses its index, written last: OpenCV cannot open it at all
    mp4 = write_clip(tmp_path / "full.mp4")
    (tmp_path / "cut.mp4").write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(VideoError, match=r"cut\.mp4: cannot open as a video \(an MP4/MOV file cut short"):
        predict_video(predictor, tmp_path / "cut.mp4")


def test_predict_cli_on_a_video_writes_a_row_per_face_per_frame(predictor, clip, tmp_path, capsys):
    (tmp_path / "notes.mp4").write_text("just text")
    out = tmp_path / "out.csv"
    rc = predict_cli.main(predict_cli.get_args_parser().parse_args(
        [str(clip), str(tmp_path / "notes.mp4"), "--run", str(predictor.path), "--every", "0.5", "--csv", str(out)]))
    text = capsys.readouterr()
    assert rc == 0
    assert "clip.mp4: 6 frames sampled every 0.5 s over 2.5 s, a face in 4;" in text.out
    assert "1 of 2 files processed" in text.out and "notes.mp4: cannot open as a video" in text.err
    df = pd.read_csv(out)
    rows = df[df["error"].isna()]
    assert list(rows["frame"]) == [0, 5, 10, 15, 20, 25] and list(rows["time_s"]) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert rows["note"].fillna("").str.contains("no face").sum() == 2
    assert df["error"].notna().sum() == 1
    # bad arguments: a clear message and exit code 2
    assert predict_cli.main(predict_cli.get_args_parser().parse_args([str(clip), "--every", "0"])) == 2
    assert "--every must be a positive number" in capsys.readouterr().err
    assert predict_cli.main(predict_cli.get_args_parser().parse_args([str(clip), "--every", "inf"])) == 2
    assert capsys.readouterr().err == "error: --every must be a positive number of seconds, not inf\n"
    # finite but longer than the clip: its first frame only
    assert predict_cli.main(predict_cli.get_args_parser().parse_args(
        [str(clip), "--run", str(predictor.path), "--every", "1e308"])) == 0
    assert "clip.mp4: 1 frame sampled every 1e+308 s over 0.0 s" in capsys.readouterr().out
    # a video of face crops already: each sampled frame classified whole, as one person, no face to detect
    assert predict_cli.main(predict_cli.get_args_parser().parse_args(
        [str(clip), "--run", str(predictor.path), "--whole-image", "--csv", str(tmp_path / "whole.csv")])) == 0
    assert "clip.mp4: 15 frames sampled every 0.2 s over 2.8 s, a face in 15;" in capsys.readouterr().out
    whole = pd.read_csv(tmp_path / "whole.csv")
    assert len(whole) == 15 and (whole["person"] == 1).all() and whole["label_name"].notna().all()
    assert (whole["note"] == "whole image (detection skipped)").all() and (whole["x1"] == 640).all()


def test_a_one_frame_video_reads_as_one_and_its_point_is_drawn():
    import pandas as pd

    from fer_core.report_live import live_circumplex_figure, timeline_figure
    from fer_core.video import describe

    s = {"frames": 1, "with_face": 1, "seconds": 0.0, "shares": {"Sad": 1.0}, "valence": -0.5, "arousal": -0.2,
         "confidence": 0.6}
    assert describe("one.mp4", s, 0.2).startswith("one.mp4: 1 frame sampled every 0.2 s")
    assert "mostly Sad (100% of them, mean confidence 0.60)" in describe("one.mp4", s, 0.2)
    assert "valence" not in describe("one.mp4", {**s, "valence": float("nan"), "arousal": float("nan")}, 0.2)
    tie = {**s, "frames": 2, "with_face": 2, "shares": {"Neutral": 0.0, "Happy": 0.5, "Sad": 0.5}}
    assert "; Happy and Sad equally often (50% of them each, mean confidence 0.60)" in describe("two.mp4", tie, 0.2)
    tl = pd.DataFrame({"time_s": [0.0], "label_name": ["Sad"], "valence": [-0.5], "arousal": [-0.2],
                       **{c: [1.0 if c == "Sad" else 0.0] for c in ("Neutral", "Sad")}})
    assert all("markers" in t.mode for t in timeline_figure(tl, ["Neutral", "Sad"]).data[:2])  # a lone point shows
    no_va = timeline_figure(tl.assign(valence=float("nan"), arousal=float("nan")), ["Neutral", "Sad"])
    assert [t.name for t in no_va.data] == ["Neutral", "Sad"] and "yaxis2" not in no_va.layout  # no empty panel
    assert [a.text for a in no_va.layout.annotations] == ["Expression probabilities"]
    face = {"valence": 0.3, "arousal": 0.1}
    assert list(live_circumplex_figure([face], ["P2"]).data[0].text) == ["P2"]


def test_a_video_analysis_stops_once_its_browser_tab_has_gone(predictor, clip, monkeypatch):
    import time

    from views import predict as page

    def run(alive):
        job = page.start_video_job(predictor, "clip.mp4", clip.read_bytes(), 0.1, alive=alive)
        deadline = time.monotonic() + 60
        while not job["cancel"] and job["result"] is None and job["error"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the thread returns at the next frame
        return job

    monkeypatch.setattr(page, "ORPHAN_S", 0)
    gone = run(lambda: False)
    assert gone["orphaned"] and gone["result"] is None and gone["done"] < 30
    assert gone["error"] == "clip.mp4: the analysis was stopped"  # a page still waiting on it stops waiting
    monkeypatch.setattr(page, "ORPHAN_S", 3600)  # a short drop is forgiven
    kept = run(lambda: False)
    assert not kept["cancel"] and len(kept["result"]["records"]) == 30
    assert page.session_alive()()  # outside a Streamlit server there is no tab to watch
    monkeypatch.setattr(page.tempfile, "tempdir", str(clip.parent / "no-such-folder"))  # TMPDIR gone, or full
    failed = run(lambda: True)
    assert failed["error"].startswith("clip.mp4: the upload could not be kept in the temporary folder ") and \
        "TMPDIR" in failed["error"]  # said on the page, where it waited for ever


def test_annotated_video_plays_each_frame_at_its_time(tmp_path):
    """Frames further apart than --every (a low or variable frame rate) keep their times, so it plays in real time;
    the last lasts --every; a time going back (a spliced file) follows the one before."""
    import av

    from fer_core.video import AnnotatedVideo

    drawn = AnnotatedVideo(tmp_path / "out" / "drawn.mp4", every=0.2)
    for t in (0.0, 0.5, 1.0, 3.0, 2.0):
        drawn.add(np.full((49, 65, 3), 90, np.uint8), {"time_s": t, "faces": []})
    assert drawn.close() and not list((tmp_path / "out").glob(".*"))
    with av.open(str(tmp_path / "out" / "drawn.mp4")) as c:
        stream = c.streams.video[0]
        times = [round(float(f.pts * f.time_base), 3) for f in c.decode(video=0)]
        assert (stream.width, stream.height) == (64, 48)  # even sides
        assert times == [0.0, 0.5, 1.0, 3.0, 3.001]
        assert float(stream.duration * stream.time_base) == pytest.approx(3.201, abs=0.002)
    empty = AnnotatedVideo(tmp_path / "none.mp4")
    assert not empty.close() and not (tmp_path / "none.mp4").exists()


def test_annotated_video_that_cannot_be_written_says_why_and_leaves_nothing(tmp_path):
    """Writing the video never stops the predictions: where it fails, ``error`` says why and no file is left."""
    from fer_core.video import AnnotatedVideo

    (tmp_path / "taken").write_text("a file where the folder would be")
    drawn = AnnotatedVideo(tmp_path / "taken" / "drawn.mp4")
    for t in (0.0, 0.2):
        drawn.add(np.zeros((48, 64, 3), np.uint8), {"time_s": t, "faces": []})
    assert not drawn.close() and "FileExistsError" in drawn.error and drawn.frames == 0
    for k, every in enumerate((1 / 3, 1 / 30, 0.0333333333, 5000.0)):  # rates PyAV takes as 32-bit integers only
        ok = AnnotatedVideo(tmp_path / f"every-{k}.mp4", every=every)
        ok.add(np.zeros((48, 64, 3), np.uint8), {"time_s": 0.0, "faces": []})
        assert ok.close() and ok.error is None, ok.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["every-0.mp4", "every-1.mp4", "every-2.mp4", "every-3.mp4",
                                                          "taken"]
