"""docs/python.md's examples run as they are written, in a folder with the files they name."""
import re
from pathlib import Path

import pytest
from PIL import Image
from skimage.data import astronaut

from tests.conftest import make_affectnet_dir
from tests.test_video import write_clip

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    (d / "artifacts").symlink_to(ROOT / "artifacts")
    (d / "models").symlink_to(ROOT / "models")
    Image.fromarray(astronaut()).save(d / "photo.jpg")
    (d / "photos").mkdir()
    Image.fromarray(astronaut()).save(d / "photos" / "astronaut.png")
    make_affectnet_dir(d / "my-data", n_per_class=10, size=64)
    write_clip(d / "clip.mp4")
    return d


def test_the_examples_are_all_found():
    assert len(BLOCKS) >= 9


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[-1][:40] for b in BLOCKS])
def test_an_example_runs_as_written(block, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    exec(compile(block, str(DOC), "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out.strip()  # every example shows something


def test_the_model_file_alone_answers_as_fer_core_does(workdir, monkeypatch, capsys):
    import numpy as np

    from fer_core.inference import Predictor

    [block] = [b for b in BLOCKS if "onnxruntime" in b]
    monkeypatch.chdir(workdir)
    done = {"__name__": "__docs__"}
    exec(compile(block, str(DOC), "exec"), done)
    answer = Predictor("models/default/model.onnx", detector=None).predict_crop(Image.open("photo.jpg"))
    assert np.abs(done["p"] - answer["probs"]).max() < 1e-5
    assert abs(done["valence"] - answer["valence"]) < 1e-5 and abs(done["arousal"] - answer["arousal"]) < 1e-5
