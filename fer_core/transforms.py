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

AUGMENTATIONS = ["none", "v1", "v2"]


class BatchAugment:
    """uint8 [B, 3, S, S] -> normalised float batch, augmented per sample.

    v1 (the study's): random resized crop (area 0.8-1), horizontal flip, rotation +-10 deg, colour jitter 0.3.
    v2 adds a perspective-like warp (each corner moved up to 10% of the side, interpolated bilinearly across the
    image) and random erasing (p 0.25, 2-15% of the area).
    """

    def __init__(self, aug: str, mean, std):
        if aug not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {aug!r}; choose one of {', '.join(AUGMENTATIONS)}")
        self.aug = aug
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float().div_(255)
        if self.aug != "none":
            x = self._geometry(x, generator)
            x = self._colour(x, generator)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if self.aug == "v2":
            x = self._erase(x, generator)
        return x

    def _rand(self, n, lo, hi, g, device):
        return torch.rand(n, generator=g).to(device) * (hi - lo) + lo

    def _geometry(self, x, g):
        b, dev = x.shape[0], x.device
        side = self._rand(b, 0.8, 1.0, g, dev).sqrt()           # crop side for area 0.8-1
        ang = self._rand(b, -10, 10, g, dev) * math.pi / 180
        flip = torch.where(torch.rand(b, generator=g).to(dev) < 0.5, -1.0, 1.0)
        tx = self._rand(b, -1, 1, g, dev) * (1 - side)           # keep the crop inside the image
        ty = self._rand(b, -1, 1, g, dev) * (1 - side)
        cos, sin = torch.cos(ang) * side, torch.sin(ang) * side
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        if self.aug == "v2":
            # corner offsets (B, 2, 2, 2) interpolated over the grid: a cheap stand-in for a perspective transform
            corners = (torch.rand(b, 2, 2, 2, generator=g).to(dev) - 0.5) * 0.2
            warp = F.interpolate(corners.permute(0, 3, 1, 2), size=x.shape[-2:], mode="bilinear", align_corners=True)
            grid = grid + warp.permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

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


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float, normalised as in training."""
    return BatchAugment("none", mean, std)(images)


class CachedDataset(Dataset):
    """(uint8 image, label, valence/arousal with NaN where absent) from tensors already in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, va: torch.Tensor):
        self.images, self.labels, self.va = images, labels, va

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i], self.va[i]


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
