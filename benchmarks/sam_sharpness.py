"""How far can sharpness-aware minimisation move a backbone's weights before its gradient stops pointing anywhere
useful? For a few batches of real training images, prints the loss at the weights moved uphill by each radius and
the cosine between the gradient there (what SAM steps with) and the plain gradient, for SAM and its adaptive form,
as the mean over the batches.

    python benchmarks/sam_sharpness.py [--data ../shared/data/affectnet8-4k] [--backbone hse_face_mobilenet]

The model is the backbone with fresh heads, in training mode, as on the first step of a run; a cosine near 1 means
SAM's step is the plain step, near 0 a step in an unrelated direction. Radius 0 shows how much the dropout mask
alone changes the gradient.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core import data as fdata  # noqa: E402
from fer_core import train  # noqa: E402
from fer_core.models import build_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "affectnet8-4k"),
                   help="AffectNet-layout data folder (default: ../shared/data/affectnet8-4k beside the checkout)")
    p.add_argument("--backbone", default="hse_face_mobilenet")
    p.add_argument("--img-size", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=4, help="batches of a seeded stratified choice of images")
    p.add_argument("--radii", default="0,0.001,0.005,0.01,0.05,0.5",
                   help="comma-separated perturbation radii, relative to the weights' norm")
    a = p.parse_args()
    try:
        radii = [float(r) for r in a.radii.split(",")]
        index = fdata.read_dataset(a.data)
    except (ValueError, fdata.DataError) as e:
        p.error(str(e))
    samples = fdata.stratified_subset(index.samples, a.batch_size * a.batches, seed=0)
    images, ok, _ = fdata.decode_images(index.root, samples, a.img_size)
    torch.manual_seed(0)
    model, info = build_model(a.backbone, weights="imagenet")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (info.mean, info.std))
    xs = ((images.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last).split(a.batch_size)
    ys = torch.tensor([samples[i].label for i in ok]).split(a.batch_size)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # only for its parameter list
    scaler = torch.amp.GradScaler("cuda", enabled=False)

    def grad():
        return torch.cat([q.grad.flatten() for q in model.parameters() if q.grad is not None])

    def measure(x, y, rho, adaptive):
        """(loss at the moved weights, cosine of the two gradients) on one batch."""
        def forward_loss():
            logits, _ = model(x)
            moved.append(F.cross_entropy(logits, y))
            return moved[-1], logits

        moved = []
        opt.zero_grad(set_to_none=True)
        forward_loss()[0].backward()
        plain = grad()
        if rho > 0:
            train.sam_second_pass(model, opt, scaler, forward_loss, rho, adaptive=adaptive)
        else:  # the same forward and backward again: another dropout mask, nothing moved
            opt.zero_grad(set_to_none=True)
            forward_loss()[0].backward()
        return moved[-1].item(), F.cosine_similarity(plain, grad(), dim=0).item()

    print(f"{a.backbone} ({info.weights_loaded}), {a.batches} batches of {a.batch_size} images at {a.img_size} px")
    print(f"{'':9s} {'radius':>7s} {'loss there':>10s} {'cosine':>7s}  (per batch)")
    for adaptive in (False, True):
        for rho in radii:
            torch.manual_seed(1)
            runs = [measure(x, y, rho, adaptive) for x, y in zip(xs, ys)]
            cos = [c for _, c in runs]
            print(f"{'adaptive' if adaptive else 'plain':9s} {rho:7g} {sum(v for v, _ in runs) / len(runs):10.3f} "
                  f"{sum(cos) / len(cos):7.3f}  ({', '.join(f'{c:.2f}' for c in cos)})")


if __name__ == "__main__":
    main()
