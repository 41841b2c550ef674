"""Augmentation over whole batches of images decoded once into a uint8 tensor cache.

The original study decoded every JPEG with PIL and augmented image by image on every epoch. Here each image is
decoded once (at the training size) and a batch is augmented in a handful of tensor operations: one
``grid_sample`` does crop, flip, rotation (and the perspective-like warp of v2) for the whole batch. Per-image
torchvision transforms cost ~20 ms per 112 px image on one core, more than the forward and backward pass of a small
network; the batched version costs a few ms per batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .presets import AUGMENTATIONS  # noqa: F401  (the names, where the command line reads them without torch)

# The 68-point (iBUG / Multi-PIE) landmark each landmark becomes in a mirrored face: jaw, brows, nose, eyes, mouth.
MIRROR_68 = ([*range(16, -1, -1)] + [*range(26, 16, -1)] + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
             + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
             + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


class BatchAugment:
    """uint8 [B, 3, S, S] -> normalised float batch, augmented per sample.

    v1 (the study's): random resized crop (area 0.8-1), horizontal flip, rotation +-10 deg, colour jitter 0.3.
    v2 adds a perspective-like warp (each corner moved up to 10% of the side, interpolated bilinearly across the
    image) and random erasing (p 0.25, 2-15% of the area).

    Given ``points`` [B, 68, 2] (landmarks in affine_grid's [-1, 1] coordinates, NaN where unknown), returns them
    moved with each image as well, renumbered in mirrored images so that each index names the same facial point.
    """

    def __init__(self, aug: str, mean, std):
        if aug not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {aug!r}; choose one of {', '.join(AUGMENTATIONS)}")
        self.aug = aug
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None, points=None):
        x = images.float().div_(255)
        if self.aug != "none":
            x, points = self._geometry(x, generator, points)
            x = self._colour(x, generator)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if self.aug == "v2":
            x = self._erase(x, generator)
        return x if points is None else (x, points)

    def _rand(self, n, lo, hi, g, device):
        return torch.rand(n, generator=g).to(device) * (hi - lo) + lo

    def _geometry(self, x, g, points=None):
        b, dev = x.shape[0], x.device
        side = self._rand(b, 0.8, 1.0, g, dev).sqrt()           # crop side for area 0.8-1
        ang = self._rand(b, -10, 10, g, dev) * math.pi / 180
        flip = torch.where(torch.rand(b, generator=g).to(dev) < 0.5, -1.0, 1.0)
        tx = self._rand(b, -1, 1, g, dev) * (1 - side)           # keep the crop inside the image
        ty = self._rand(b, -1, 1, g, dev) * (1 - side)
        cos, sin = torch.cos(ang) * side, torch.sin(ang) * side
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        corners = None
        if self.aug == "v2":
            # corner offsets (B, 2, 2, 2) interpolated over the grid: a cheap stand-in for a perspective transform
            corners = (torch.rand(b, 2, 2, 2, generator=g).to(dev) - 0.5) * 0.2
            warp = F.interpolate(corners.permute(0, 3, 1, 2), size=x.shape[-2:], mode="bilinear", align_corners=True)
            grid = grid + warp.permute(0, 2, 3, 1)
        if points is not None:
            points = _move_points(points, theta, corners, flip < 0)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False), points

    def _colour(self, x, g):
        b, dev = x.shape[0], x.device
        bright = self._rand(b, 0.7, 1.3, g, dev).view(b, 1, 1, 1)
        contrast = self._rand(b, 0.7, 1.3, g, dev).view(b, 1, 1, 1)
        sat = self._rand(b, 0.7, 1.3, g, dev).view(b, 1, 1, 1)
        x = x * bright
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        x = (x - gray.mean((2, 3), keepdim=True)) * contrast + gray.mean((2, 3), keepdim=True)
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        return ((x - gray) * sat + gray).clamp_(0, 1)

    def _erase(self, x, g):
        b, _, h, w = x.shape
        dev = x.device
        area = self._rand(b, 0.02, 0.15, g, dev)
        aspect = torch.exp(self._rand(b, math.log(0.3), math.log(3.3), g, dev))
        eh = (area * aspect).sqrt().clamp(max=1) * h
        ew = (area / aspect).sqrt().clamp(max=1) * w
        y0 = torch.rand(b, generator=g).to(dev) * (h - eh)
        x0 = torch.rand(b, generator=g).to(dev) * (w - ew)
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        box = (ys >= y0.view(b, 1, 1)) & (ys < (y0 + eh).view(b, 1, 1)) & \
              (xs >= x0.view(b, 1, 1)) & (xs < (x0 + ew).view(b, 1, 1))
        box &= (torch.rand(b, generator=g).to(dev) < 0.25).view(b, 1, 1)
        return x.masked_fill(box.unsqueeze(1), 0.0)  # 0 after normalisation = the data mean


def _move_points(points, theta, corners, mirrored):
    """Where the points land in the warped image. The grid maps an output position p to the input position
    A p + t (+ the bilinear corner offsets w(p) under v2); solve p = A^-1 (q - t - w(p)) with one fixed-point step."""
    a, t = theta[:, :, :2], theta[:, :, 2].unsqueeze(1)
    inv = torch.linalg.inv(a).transpose(1, 2)
    p = (points - t) @ inv
    if corners is not None:
        s = ((p + 1) / 2).clamp(0, 1)  # bilinear weights across the image (x, y), as F.interpolate spread the corners
        sx, sy = s[..., :1], s[..., 1:]
        c = corners.unsqueeze(1)  # [B, 1, y, x, 2]
        w = ((1 - sx) * (1 - sy) * c[:, :, 0, 0] + sx * (1 - sy) * c[:, :, 0, 1]
             + (1 - sx) * sy * c[:, :, 1, 0] + sx * sy * c[:, :, 1, 1])
        p = (points - t - w) @ inv
    return torch.where(mirrored.view(-1, 1, 1), p[:, MIRROR_68], p)


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float, normalised as in training."""
    return BatchAugment("none", mean, std)(images)


class CachedDataset(Dataset):
    """(uint8 image, label, valence/arousal with NaN where absent[, landmarks [68, 2], NaN where absent]) from
    tensors already in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, va: torch.Tensor, landmarks=None):
        self.images, self.labels, self.va, self.landmarks = images, labels, va, landmarks

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        item = self.images[i], self.labels[i], self.va[i]
        return item if self.landmarks is None else (*item, self.landmarks[i])


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get weight 0). ``labels`` are class indices
    or rows of class probabilities."""
    counts = labels.sum(0).float() if labels.ndim == 2 else torch.bincount(labels, minlength=num_classes).float()
    w = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return w * (num_classes / max(w.sum().item(), 1e-8))


def cosine_lr(epoch_progress: float, total: float, warmup: float) -> float:
    """Multiplier for the learning rate: linear warm-up, then cosine annealing to zero."""
    if warmup > 0 and epoch_progress < warmup:
        return (epoch_progress + 1e-3) / warmup
    t = (epoch_progress - warmup) / max(total - warmup, 1e-8)
    return 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
