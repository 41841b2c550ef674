"""Train a multi-task FER model (8 expressions + valence/arousal) and write a complete run folder.

    python -m fer_core.train --data ../shared/data/affectnet8-4k --preset hse-fast --name my-run
    torchrun --nproc_per_node 2 -m fer_core.train --data DIR --preset resnet50-34e      (multi-GPU / multi-node)

Flags override the preset; the preset overrides the original study's recipe (AdamW lr 1e-4, weight decay 1e-5,
cosine annealing, label smoothing 0.1, MSE for valence/arousal, batch 32). See docs/run_folder.md for the output.
"""
from __future__ import annotations

# The command line of fer_core.train, apart from the training itself: `--help` and a mistyped flag answer from here
# before torch loads (seconds on a laptop).
import argparse
import os
from pathlib import Path

from .data import LAYOUTS
from .presets import AUGMENTATIONS, BACKBONES, DESCRIPTIONS, PRESETS

VA_LOSSES = ("mse", "ccc", "mse+ccc")
DEVICES = ("auto", "cpu", "cuda", "mps")
IMG_SIZES = (16, 1024)


def get_args_parser():
    presets = "\n".join(f"  {k:20s} {v}" for k, v in DESCRIPTIONS.items())
    p = argparse.ArgumentParser(prog="python -m fer_core.train", description=__doc__,
                                epilog="presets:\n" + presets, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", type=os.path.expanduser,
      help="data folder (AffectNet, FER+, class folders) or CSV manifest; required unless --resume")
    a("--layout", default="auto", choices=("auto", *LAYOUTS),
      help=f"auto (default), {', '.join(LAYOUTS)}")
    a("--preset", choices=list(PRESETS), help="a named recipe (listed below); flags given override it")
    a("--name", type=run_name, help="run name, the run folder's name under --out (default: <preset or "
                                      "backbone>-<date-time>)")
    a("--out", type=os.path.expanduser,
      default="artifacts/runs", help="parent folder of run folders (default artifacts/runs)")
    a("--resume", type=os.path.expanduser,
      metavar="RUN", help="continue the run folder RUN (a path, or a run name under --out) from "
      "checkpoints/last.pt, with its own settings: other flags must match them, except --epochs (to train longer), "
      "--workers, --device and --data (a copy of its data elsewhere)")
    a("--split-from", type=os.path.expanduser,
      metavar="RUN", help="reuse RUN's split.csv (a run folder, or a run name under --out) so runs "
                          "are compared on the same images")
    # None defaults: the preset or the study's recipe fills them (see presets.BASE)
    a("--backbone", choices=BACKBONES, help="network (default resnet50)")
    a("--weights", type=os.path.expanduser,
      help="imagenet (default; a two-stage preset's default is its first stage's run) or pretrained: "
           "the backbone's released weights (ImageNet; faces for dlib_face_resnet, hse_face_mobilenet, "
           "mobileface and facenet), none, or PATH to a state dict / FER Lab checkpoint, or a run folder (its "
           "checkpoints/best.pt)")
    a("--img-size", type=img_size, help=f"input side in pixels, {IMG_SIZES[0]} to {IMG_SIZES[1]} (default 224)")
    a("--epochs", type=_at_least(1), help="epochs (default 34)")
    a("--batch-size", type=_at_least(1), help="batch size per process (default 32)")
    a("--lr", type=_above_zero, help="AdamW learning rate (default 1e-4)")
    a("--weight-decay", type=float, help="AdamW weight decay (default 1e-5)")
    a("--head-lr-mult", type=float, help="learning-rate multiplier for the two heads (default 1)")
    a("--first-layer-lr-mult", type=float, metavar="M",
      help="layer-wise learning-rate decay: the backbone's first layer learns at M times --lr, its last at 1x, "
           "geometric in between (default 1: one rate for the whole backbone)")
    a("--warmup-epochs", type=float, help="linear warm-up before cosine annealing, in epochs (default 0)")
    a("--label-smoothing", type=float, help="cross-entropy label smoothing (default 0.1)")
    a("--va-weight", type=float, help="weight of the valence/arousal loss against cross-entropy (default 1)")
    a("--va-loss", choices=VA_LOSSES, help="valence/arousal loss: mse (default, the study's), ccc (1 - CCC per "
      "dimension over the batch), mse+ccc")
    a("--aug", choices=AUGMENTATIONS, help="v1: crop/flip/rotation/colour; v2: + erasing, perspective (default v1)")
    a("--class-balance", action=argparse.BooleanOptionalAction, default=None,
      help="weight cross-entropy by inverse class frequency (default off)")
    a("--soft-labels", action=argparse.BooleanOptionalAction, default=None,
      help="train on each image's annotator vote distribution where the data has one (FER+) (default off)")
    a("--mixup", type=float, metavar="A", help="mixup Beta(A, A) parameter for images, labels and valence/arousal, "
      "0 = off")
    a("--cutmix", type=float, metavar="A", help="CutMix Beta(A, A) parameter: each batch pastes a box of another "
      "image of the batch into every image, labels and valence/arousal mixed by area, 0 = off")
    a("--resize-from", metavar="PX", type=int, help="progressive resizing: training images start at PX pixels and "
      "grow evenly to --img-size over the first two thirds of the epochs, which end at full size; validation and "
      "evaluation always run at --img-size (default 0 = off)")
    a("--sam", metavar="RHO", type=float, help="adaptive sharpness-aware minimisation (ASAM; Kwon et al., 2021): each "
      "step takes its gradient at the weights moved uphill by RHO, measured relative to each weight's size (0.5-1 in "
      "the paper), which favours flat minima; two forward and backward passes per step, so epochs take about twice "
      "as long (default 0 = off)")
    a("--ema", type=float, help="keep an exponential moving average of the weights with this decay, 0 = off")
    a("--tta", action=argparse.BooleanOptionalAction, default=None,
      help="final predictions average the image and its mirror (default off)")
    a("--bf16", action=argparse.BooleanOptionalAction, default=None,
      help="on a CPU, train under bfloat16 autocast (weights and optimizer stay float32; validation and evaluation "
      "run in float32): up to 1.9x the images per second where the CPU computes bfloat16 natively (AVX512-BF16 or "
      "AMX), 1.25-2.1x shorter stages in measured runs; on CUDA, "
      "float16 AMP is always on (default off)")
    a("--dropout", type=float, help="dropout before the heads (default 0.2)")
    a("--early-stop", type=int, metavar="N", help="stop after N epochs without a better validation score, 0 = off")
    a("--workers", type=_at_least(0), help="DataLoader worker processes (default 2); they decode the images of data "
                                           "too large to hold decoded in memory")
    a("--seed", type=int, help="random seed for split, initialisation and augmentation (default 0)")
    a("--val-frac", type=float, help="validation fraction when the data has no split, or has none for val, which is "
      "then carved from train (default 0.1)")
    a("--test-frac", type=float, help="test fraction when the data has no split (default 0.1)")
    a("--fold", metavar="K/N", type=_fold_arg, help="cross-validation: test on the K-th of N stratified folds "
      "(seeded by --seed) instead of --test-frac; train K = 1..N (scripts/cross_validate.py runs them all) and pool "
      "their test predictions with scripts/pool_folds.py")
    a("--extra-data", type=os.path.expanduser,
      metavar="PATH", help="a second data set (any layout) whose training images join the training "
      "set, e.g. FER+ beside AffectNet; its validation/test images are not used; none = no second set")
    a("--extra-count", type=int, help="use this many of --extra-data's training images, a seeded random choice "
      "(default 0 = all)")
    a("--teacher", type=os.path.expanduser,
      metavar="RUN", help="distil from a trained model (a run folder or a checkpoint): each training "
      "batch also learns the teacher's softened class probabilities, and its valence/arousal where the data has none "
      "(e.g. --extra-data images)")
    a("--kd-weight", type=float, help="with --teacher: weight of the teacher's probabilities against the labels "
      "(default 0.5)")
    a("--kd-temperature", type=float, help="with --teacher: softmax temperature of the distillation (default 2)")
    a("--landmark-weight", metavar="W", type=float, help="also regress the 68 facial landmarks of AffectNet's "
      "annotations (<id>_lnd.npy) from the same features, with this weight against cross-entropy: extra supervision at "
      "training time only; the saved model and its predictions are the usual two heads (default 0 = off)")
    a("--limit", type=int, metavar="N", help="train on a seeded random N of the training images, classes in "
      "their proportions (quick trials, learning curves)")
    a("--exclude", metavar="CSV", type=os.path.expanduser, help="leave out of training the images a CSV names by "
      "its id or path column (labels you doubt: the Model disagreement page's downloads have both); images it names "
      "in val or test stay there, so the run is scored on the same images and labels as before")
    a("--device", default="auto", choices=DEVICES, help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    return p


def _number(kind, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a{' whole' if kind is int else ''} number, got {text!r}") from None


def _at_least(low: int):
    """An argparse type: a whole number of at least ``low``."""
    def parse(text: str) -> int:
        n = _number(int, text)
        if n < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, got {n}")
        return n
    return parse


def _above_zero(text: str) -> float:
    x = _number(float, text)
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return x


def img_size(text: str) -> int:
    n = _number(int, text)
    if not IMG_SIZES[0] <= n <= IMG_SIZES[1]:  # fer_core.evaluate reads --img-size with this too
        raise argparse.ArgumentTypeError(f"must be between {IMG_SIZES[0]} and {IMG_SIZES[1]} pixels, got {n}")
    return n


NAME_BYTES = 200  # a folder name may have 255 bytes: room is left for "-fold12", "-final", "-again", "-task7"
WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10))}


def run_name(text: str) -> str:
    """A folder name under --out that any system can hold, not a path that leads out of it."""
    size = len(text.encode("utf-8"))
    rules = [(text in ("", ".", "..") or "/" in text or "\\" in text, "without / or \\ or .."),
             (any(ord(c) < 32 or ord(c) == 127 for c in text), "without control characters (a line break, a tab)"),
             (any(c in '<>:"|?*' for c in text), 'without any of < > : " | ? * (Windows allows none in a name)'),
             (text != text.strip() or text.endswith("."), "not starting or ending with a space, nor ending with a dot"),
             (text.split(".")[0].lower() in WINDOWS_DEVICES, "not a device's name on Windows (CON, NUL, COM1, ...)"),
             (size > NAME_BYTES, f"of at most {NAME_BYTES} bytes, not {size}")]
    if why := next((why for broken, why in rules if broken), None):
        raise argparse.ArgumentTypeError(f"a run name is a folder name under --out, {why} (got {text[:80]!r})")
    return text


def _fold_arg(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 1/5, got {text!r}") from None
    if not (n >= 2 and 1 <= k <= n):
        raise argparse.ArgumentTypeError(f"need N >= 2 and 1 <= K <= N, got {text!r}")
    return k, n


RECIPE_KEYS = ["backbone", "weights", "img_size", "epochs", "batch_size", "lr", "weight_decay", "head_lr_mult",
               "first_layer_lr_mult", "warmup_epochs", "label_smoothing", "va_weight", "va_loss", "aug",
               "class_balance", "soft_labels", "mixup", "cutmix", "resize_from", "ema", "tta", "dropout", "early_stop",
               "workers", "seed", "val_frac", "test_frac", "extra_data", "extra_count", "teacher", "kd_weight",
               "kd_temperature", "bf16", "landmark_weight", "sam"]


def recorded_weights(weights):
    """--weights as a run records it: a file or run folder as its whole path, so that it is found again from any
    folder (and compared alike however it was typed); "imagenet", "pretrained", "none" and None as they are."""
    if weights in (None, "imagenet", "pretrained", "none"):
        return weights
    return Path(weights).resolve().as_posix()
