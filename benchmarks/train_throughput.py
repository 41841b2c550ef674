"""Training images/s: FER Lab's pipeline against a naive one in the original study's style, same model and size.

    python benchmarks/train_throughput.py --data ../shared/data/affectnet8-4k [--backbone efficientnet_lite0] [--img-size 112]

project: every image decoded once into a uint8 tensor cache, augmentation on tensors, no worker processes,
         channels-last weights (as fer_core.models.build_model returns them).
project, NCHW weights: the same with the weights in the default contiguous layout, to show what channels-last adds.
project, bf16:  the project pipeline under bfloat16 autocast (`--bf16`), where the CPU computes bfloat16 natively.
naive:   PIL decode + torchvision transforms per sample on every epoch, DataLoader with 2 workers (the study's setup),
         NCHW weights.
All run the same forward/backward/AdamW step; the figure is the median of the batches' images/s (loading included,
the range beside it) after one warm-up batch, with the CPU and its load average, which tell whether it can be trusted.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import data as fdata  # noqa: E402
from fer_core.models import build_model  # noqa: E402
from fer_core.train import multitask_loss  # noqa: E402
from fer_core.presets import BASE  # noqa: E402
from fer_core.transforms import BatchAugment, CachedDataset  # noqa: E402


class NaiveDataset(Dataset):
    def __init__(self, root, samples, size, mean, std):
        self.root, self.samples = Path(root), samples
        self.tf = T.Compose([T.Resize((size, size)), T.RandomResizedCrop(size, scale=(0.8, 1.0)), T.RandomHorizontalFlip(),
                             T.RandomRotation(10), T.ColorJitter(0.3, 0.3, 0.3), T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        img = Image.open(self.root / s.path).convert("RGB")
        return self.tf(img), s.label, torch.tensor([s.valence, s.arousal], dtype=torch.float32)


def images_per_second(model, loader, batches, augment=None, bf16=False) -> list[float]:
    """Images per second of each timed batch, loading included (from the end of one step to the end of the next)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    rates, t_prev = [], None
    for i, (x, y, va) in enumerate(loader):
        if augment is not None:
            x = augment(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, va_pred = model(x)
            loss = multitask_loss(logits.float(), va_pred.float(), y, va, BASE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        now = time.perf_counter()
        if i > 0:  # the first batch warms up (worker start, allocator) and is not counted
            rates.append(len(y) / (now - t_prev))
        t_prev = now
        if i >= batches:
            break
    return rates


def _cpu() -> str:
    """The CPU's model name (Linux), else what the platform says."""
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "affectnet8-4k"))
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--img-size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=12, help="timed batches per pipeline")
    a = p.parse_args()
    torch.manual_seed(0)
    index = fdata.read_dataset(a.data)
    samples = index.samples[: a.batch_size * (a.batches + 2)]
    model, info = build_model(a.backbone, "none")
    print(f"{a.backbone} at {a.img_size} px, batch {a.batch_size}, {torch.get_num_threads()} threads, "
          f"{a.batches} timed batches per pipeline")

    t0 = time.perf_counter()
    images, ok, _ = fdata.decode_images(index.root, samples, a.img_size, progress=False)
    decode_s = time.perf_counter() - t0
    labels = torch.tensor([samples[i].label for i in ok])
    va = torch.tensor([[samples[i].valence, samples[i].arousal] for i in ok], dtype=torch.float32)
    project = DataLoader(CachedDataset(images, labels, va), batch_size=a.batch_size, shuffle=True, num_workers=0)
    naive = DataLoader(NaiveDataset(index.root, samples, a.img_size, info.mean, info.std), batch_size=a.batch_size,
                       shuffle=True, num_workers=2)
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    augment = BatchAugment("v1", info.mean, info.std)
    ips_naive = images_per_second(nchw, naive, a.batches)
    ips_nchw = images_per_second(nchw, project, a.batches, augment)
    ips_project = images_per_second(copy.deepcopy(model), project, a.batches, augment)
    native_bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    ips_bf16 = images_per_second(model, project, a.batches, augment, bf16=True) if native_bf16 else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{_cpu()}, {os.cpu_count()} CPUs, load average {load:.1f} (above the CPU count, other work shares the "
          "cores and the figures below are low and spread)")
    print(f"{'pipeline':22s} {'img/s':>8s}  (median over the timed batches [slowest, fastest])")

    def row(name, rates, extra=""):
        print(f"{name:22s} {statistics.median(rates):8.1f}  [{min(rates):.1f}, {max(rates):.1f}]{extra}")

    row("naive", ips_naive)
    row("project, NCHW weights", ips_nchw)
    row("project", ips_project, f"   (+ one-off decode of {len(ok)} images: {decode_s:.2f} s, "
                                f"{len(ok) / decode_s:.0f} img/s)")
    if ips_bf16:
        row("project, bf16", ips_bf16)
    else:
        print(f"{'project, bf16':22s}    (this CPU has no native bfloat16)")
    print(f"ratio project/naive (medians): {statistics.median(ips_project) / statistics.median(ips_naive):.2f}x")


if __name__ == "__main__":
    main()
