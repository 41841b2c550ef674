"""Augmentation over images decoded once into a uint8 tensor cache.

The original study decoded every JPEG with PIL on every epoch. Here each image is decoded once (at the training
size) and augmentation runs on small uint8 tensors, which is what makes CPU training affordable.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

AUGMENTATIONS = ["none", "v1", "v2"]


def train_transform(size: int, aug: str, mean, std):
    """v1: the study's random crop, flip, rotation and colour jitter; v2 adds perspective and random erasing."""
    ops = []
    if aug in ("v1", "v2"):
        ops += [v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomRotation(10),
                v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)]
    if aug == "v2":
        ops.append(v2.RandomPerspective(distortion_scale=0.2, p=0.3))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if aug == "v2":
        ops.append(v2.RandomErasing(p=0.25, scale=(0.02, 0.15)))
    return v2.Compose(ops)


def eval_transform(mean, std):
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class CachedDataset(Dataset):
    """Samples from a uint8 image tensor [N, 3, S, S] with labels and valence/arousal (NaN where absent)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, va: torch.Tensor, transform):
        self.images, self.labels, self.va, self.transform = images, labels, va, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i], self.va[i]


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get weight 0)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    w = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return w * (num_classes / max(w.sum().item(), 1e-8))


def cosine_lr(epoch_progress: float, total: float, warmup: float) -> float:
    """Multiplier for the learning rate: linear warm-up, then cosine annealing to zero."""
    if warmup > 0 and epoch_progress < warmup:
        return (epoch_progress + 1e-3) / warmup
    t = (epoch_progress - warmup) / max(total - warmup, 1e-8)
    return 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
