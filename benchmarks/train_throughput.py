"""Training images/s: FER Lab's pipeline against a naive one in the original study's style, same model and size.

    python benchmarks/train_throughput.py --data ../shared/data/affectnet8-4k [--backbone efficientnet_lite0] [--img-size 112]

project: every image decoded once into a uint8 tensor cache, augmentation on tensors, no worker processes,
         channels-last weights (as fer_core.models.build_model returns them).
project, NCHW weights: the same with the weights in the default contiguous layout, to show what channels-last adds.
project, bf16:  the project pipeline under bfloat16 autocast (`--bf16`), where the CPU computes bfloat16 natively.
naive:   PIL decode + torchvision transforms per sample on every epoch, DataLoader with 2 workers (the study's setup),
         NCHW weights.
All run the same forward/backward/AdamW step; the figure is steady-state images/s after one warm-up batch.
"""
from __future__ import annotations

import argparse
import copy
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


def images_per_second(model, loader, batches, augment=None, bf16=False):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    n, t0 = 0, None
    for i, (x, y, va) in enumerate(loader):
        if augment is not None:
            x = augment(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, va_pred = model(x)
            loss = multitask_loss(logits.float(), va_pred.float(), y, va, BASE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i == 0:  # warm-up batch (worker start, allocator) not counted
            t0 = time.perf_counter()
            continue
        n += len(y)
        if i >= batches:
            break
    return n / (time.perf_counter() - t0)


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
    print(f"{'pipeline':22s} {'img/s':>8s}")
    print(f"{'naive':22s} {ips_naive:8.1f}")
    print(f"{'project, NCHW weights':22s} {ips_nchw:8.1f}")
    print(f"{'project':22s} {ips_project:8.1f}   (+ one-off decode of {len(ok)} images: {decode_s:.2f} s, "
          f"{len(ok) / decode_s:.0f} img/s)")
    print(f"{'project, bf16':22s} " + (f"{ips_bf16:8.1f}" if ips_bf16 else "   (this CPU has no native bfloat16)"))
    print(f"ratio project/naive: {ips_project / ips_naive:.2f}x")


if __name__ == "__main__":
    main()
