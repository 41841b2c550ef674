"""Bring another tool's ONNX expression model into FER Lab: wrapped as a FER Lab model file, which `fer_core.predict`,
`fer_core.evaluate` (and so the dashboard's comparisons) and the Live prediction page take like FER Lab's own.

    python scripts/import_model.py enet_b0_8_va_mtl.onnx --like hsemotion --out models/hsemotion-b0.onnx
    python scripts/import_model.py theirs.onnx --classes anger,disgust,fear,happy,sad,surprise,neutral \\
        --img-size 112 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --out models/theirs.onnx
    python -m fer_core.evaluate --run models/hsemotion-b0.onnx --data ../shared/data/affectnet8-4k \\
        --out artifacts/runs/hsemotion-b0     # scored on your data, a run folder the dashboard compares

The model must take float RGB images [batch, 3, S, S] (channels first, any batch size), scaled to 0-1 and then
normalised with --mean and --std, and give class scores, logits or probabilities (found from the values), one column
per class in the order --classes names them, in its first output with that many columns (or --scores NAME).
Valence and arousal, where it gives them, are that output's last two columns (HSEmotion's *_va_mtl models: --va
last2, which --like hsemotion implies) or another output of two columns (found from the shapes). A FER Lab class the
model lacks (7-class models have no Contempt) gets probability 0: evaluate with --only-data-classes on 7-class data.
`--like hsemotion` sets what HSEmotion's models (hsemotion-onnx) use: its classes in alphabetical order (Anger,
Contempt, Disgust, Fear, Happiness, Neutral, Sadness, Surprise; no Contempt for *_7 models) and ImageNet's mean and
std; the side is the one its input names.

The file written is checked against the original on random images before it is written: same answers, in FER Lab's class
order. That checks the wrapping, not the side, mean, std and colour order given: evaluating it on labelled faces does,
where it should score about as its authors report. Faces are cropped by FER Lab's detector with its margin, which may
differ from how the model's authors cropped theirs: a model can score a little lower here than in its paper.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core.export import foreign_onnx  # noqa: E402
from fer_core.io import atomic_write_bytes, unwritable_folder  # noqa: E402
from fer_core.labels import CLASSES, class_index, close_class  # noqa: E402
from fer_core.train import SCHEMA_VERSION  # noqa: E402
from fer_core.train_args import img_size  # noqa: E402

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HSEMOTION = {8: ["Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"],
             7: ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]}
TOLERANCE = 1e-4


class Refused(Exception):
    """The model or the arguments cannot be imported; the message says why."""


def triple(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"three numbers, one per colour channel (R,G,B), not {text!r}")
    return values


def spread(text: str) -> tuple[float, float, float]:
    values = triple(text)
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"three standard deviations above 0 (the pixels are divided by them), not "
                                         f"{text!r}")
    return values


def class_names(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    for c in names:
        if c != "-" and class_index(c) is None:
            near = close_class(c)
            raise argparse.ArgumentTypeError(f"{c!r} is no class name known here ({', '.join(CLASSES)}, or a synonym "
                                             f"such as happiness or angry){f'; {near}?' if near else ''}")
    named = [c for c in names if c != "-"]
    for i, c in enumerate(named):
        if (twin := next((d for d in named[:i] if class_index(d) == class_index(c)), None)) is not None:
            same = f"{twin!r} and {c!r} both name {CLASSES[class_index(c)]}" if twin != c else f"{c!r} is named twice"
            raise argparse.ArgumentTypeError(f"{same}: each class once, in the model's column order ({text})")
    return names


def get_args_parser():
    p = argparse.ArgumentParser(prog="python scripts/import_model.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="the other tool's .onnx file")
    p.add_argument("--out", type=Path, required=True, help="the FER Lab model file to write (.onnx)")
    p.add_argument("--like", choices=["hsemotion"], help="set --classes, --mean and --std as this tool's models have "
                                                         "them")
    p.add_argument("--classes", type=class_names, metavar="NAMES",
                   help="the model's output columns, comma-separated class names in its order; - for a column "
                        "FER Lab has no class for (FER+'s unknown, not a face): left out, the others' probabilities "
                        "renormalised")
    p.add_argument("--va", choices=["auto", "last2", "output", "none"], default="auto",
                   help="where valence/arousal come from: the scores' last two columns, another output of two "
                        "columns, or nowhere; auto (default): that other output where there is one, the last two "
                        "columns for --like hsemotion")
    p.add_argument("--scores", metavar="NAME", help="the output that holds the class scores, where several could "
                                                   "(default: the first with a column per class)")
    p.add_argument("--img-size", type=img_size, metavar="S", help="the input side, where the model does not fix it")
    p.add_argument("--mean", type=triple, metavar="R,G,B", help="per-channel mean of 0-1 pixels (default ImageNet's)")
    p.add_argument("--std", type=spread, metavar="R,G,B", help="per-channel std (default ImageNet's)")
    p.add_argument("--name", help="the model's name in FER Lab (default: --out's file name)")
    p.add_argument("--force", action="store_true", help="replace --out where it exists")
    return p


def _session(data: bytes):
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def read_model(path: Path):
    """(serialized model, its input's side or None where it does not fix it, its input's name)."""
    import onnx

    from fer_core.inference import CONFIG_KEY

    try:
        model = onnx.load(str(path))  # with its external data, where its weights are kept beside it
    except OSError as e:
        raise Refused(f"{path}: cannot read it ({e.strerror or e})") from None
    except Exception as e:  # protobuf's DecodeError and others: not an ONNX file
        raise Refused(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if any(e.key == CONFIG_KEY for e in model.metadata_props):
        raise Refused(f"{path} is a FER Lab model already: predict, evaluate and the Live page take it as it is")
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise Refused(f"{path}: {len(inputs)} inputs; an image model with one input is needed")
    kind = inputs[0].type.tensor_type.elem_type
    if kind != onnx.TensorProto.FLOAT:
        raise Refused(f"{path}: its input is {onnx.TensorProto.DataType.Name(kind).lower()}; FER Lab feeds float "
                      f"(32-bit) images: convert the model's input to float first")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] not in (3, None) or (dims[3] == 3 and dims[1] != 3):
        raise Refused(f"{path}: input shape {dims}; images [batch, 3, side, side] are needed (channels first)")
    side = dims[2] if dims[2] and dims[2] == dims[3] else None
    return model.SerializeToString(), side, inputs[0].name


def run_outputs(data: bytes, input_name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Its outputs, by name, for the images ``x``; Refused where it does not run on them."""
    session = _session(data)
    try:
        outputs = session.run(None, {input_name: x})
    except Exception as e:  # onnxruntime's own exception types
        raise Refused(f"the model does not run on a batch of {len(x)} {x.shape[-1]} px images ({type(e).__name__}: "
                      f"{str(e)[:200]}); FER Lab runs it on batches of any size") from None
    names = [o.name for o in session.get_outputs()]
    shapes = ", ".join(f"{n} {list(o.shape)}" for n, o in zip(names, outputs))
    if any(o.ndim != 2 or len(o) != len(x) for o in outputs):
        raise Refused(f"its outputs' shapes ({shapes}) are not all [batch, columns]")
    return dict(zip(names, outputs))


def choose_outputs(outputs: dict[str, np.ndarray], n_classes: int, va: str, scores: str | None,
                   last2: bool = False) -> tuple[int, str | int]:
    """(the output holding the class scores, where valence/arousal come from: "last2", an output's number or
    "none"). ``last2``: scores with two columns more than the classes end in valence and arousal (HSEmotion's
    models); otherwise --va last2 must say so."""
    widths = [o.shape[1] for o in outputs.values()]
    listed = ", ".join(f"{n} [batch, {w}]" for n, w in zip(outputs, widths))
    if scores is not None:
        if scores not in outputs:
            raise Refused(f"--scores {scores}: no such output (it has {listed})")
        k = list(outputs).index(scores)
        if widths[k] not in (n_classes, n_classes + 2):
            raise Refused(f"output {scores} has {widths[k]} columns, and {n_classes} classes were named")
    else:
        fits = [k for k, w in enumerate(widths) if w in (n_classes, n_classes + 2)]
        if not fits:
            raise Refused(f"no output has {n_classes} columns (or {n_classes + 2}, with valence and arousal) for the "
                          f"{n_classes} classes named; its outputs: {listed}. Give --classes in its order, and "
                          f"--scores NAME where several could be the scores")
        k = fits[0]
    others = [j for j, w in enumerate(widths) if j != k and w == 2]
    if va == "auto" and widths[k] == n_classes + 2 and not last2:
        raise Refused(f"output {list(outputs)[k]} has {widths[k]} columns for the {n_classes} classes named: give "
                      f"--va last2 if its last two are valence and arousal, or name every column in --classes (- for "
                      f"one FER Lab has no class for)")
    found = "last2" if widths[k] == n_classes + 2 else others[0] if others else "none"
    if va == "auto":
        return k, found
    if va == "last2" and widths[k] != n_classes + 2:
        raise Refused(f"--va last2: its scores have {widths[k]} columns, not {n_classes} classes and two more")
    if va == "output":
        if not others:
            raise Refused(f"--va output: no other output has two columns (its outputs: {listed})")
        return k, others[0]
    return k, va


def main(argv=None) -> int:
    a = get_args_parser().parse_args(argv)
    try:
        if a.out.suffix.lower() != ".onnx":
            raise Refused(f"--out {a.out}: name an .onnx file")
        if a.out.exists() and a.model.exists() and a.out.resolve() == a.model.resolve():
            raise Refused(f"--out {a.out} is the model itself: name a new file")
        if a.out.exists() and not a.force:
            raise Refused(f"--out {a.out} exists: name a new file, or give --force to replace it")
        if problem := unwritable_folder(a.out.parent):
            raise Refused(f"--out {a.out}: {problem}")
        data, side, input_name = read_model(a.model)
        if a.img_size and side and a.img_size != side:
            raise Refused(f"--img-size {a.img_size}, but the model takes {side} px images")
        side = side or a.img_size
        if not side:
            raise Refused("the model does not fix its input side: give --img-size")
        x = np.random.default_rng(0).normal(size=(4, 3, side, side)).astype(np.float32)
        theirs = run_outputs(data, input_name, x)
        classes = a.classes
        if classes is None and a.like == "hsemotion":
            width = (theirs[a.scores] if a.scores in theirs else next(iter(theirs.values()))).shape[1]
            classes = HSEMOTION[7] if width in (7, 9) else HSEMOTION[8]
        if classes is None:
            raise Refused("give --classes, the model's output columns in its order (or --like hsemotion)")
        k, va = choose_outputs(theirs, len(classes), a.va, a.scores, last2=a.like == "hsemotion")
        mean, std = a.mean or IMAGENET[0], a.std or IMAGENET[1]
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    scores = list(theirs.values())[k]
    n = len(classes)
    # probabilities (each row non-negative, summing to 1) are taken back to logits, which FER Lab's softmax expects
    probabilities = bool((scores[:, :n] >= 0).all() and np.allclose(scores[:, :n].sum(axis=1), 1, atol=1e-3))
    digest = hashlib.sha256(a.model.read_bytes()).hexdigest()
    names = [None if c == "-" else CLASSES[class_index(c)] for c in classes]
    va_name = ("its scores' last two columns" if va == "last2" else "none" if va == "none" else
               f"its output {list(theirs)[va]!r}")
    config = {"schema_version": SCHEMA_VERSION, "name": a.name or a.out.stem,
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "backbone": f"imported ONNX model ({a.model.name})", "img_size": side, "mean": list(mean),
              "std": list(std), "classes": list(CLASSES), "data": {"has_va": va != "none"},
              "imported": {"file": str(a.model), "sha256": digest, "scores": list(theirs)[k],
                           "columns": [c or "-" for c in names], "probabilities": probabilities,
                           "valence_arousal": va_name}}
    wrapped = foreign_onnx(data, names, va, config, output=k, probabilities=probabilities)
    logits, va_out = _session(wrapped).run(None, {"input": x})
    kept = [i for i, c in enumerate(names) if c]
    want = np.log(np.maximum(scores[:, kept], 1e-12)) if probabilities else scores[:, kept]
    diff = float(np.abs(logits[:, [CLASSES.index(names[i]) for i in kept]] - want).max())
    if va != "none":
        diff = max(diff, float(np.abs(va_out - (scores[:, n:] if va == "last2" else list(theirs.values())[va])).max()))
    if diff > TOLERANCE:
        print(f"error: the wrapped model differs from the original by {diff:.2g}; nothing written", file=sys.stderr)
        return 1
    try:
        atomic_write_bytes(a.out, wrapped)
    except OSError as e:  # the disk refused (full): written whole or not at all
        print(f"error: {e}", file=sys.stderr)
        return 1
    absent = [c for c in CLASSES if c not in names]
    print(f"wrote {a.out}: {a.model.name} at {side} px, mean {list(mean)} std {list(std)}; its "
          f"{'probabilities' if probabilities else 'scores'} ({', '.join(c or '-' for c in names)}) put in FER "
          f"Lab's order" + (f"; {', '.join(absent)}: not in the model, probability 0" if absent else "")
          + f"; valence/arousal: {va_name}. Checked against the original on 4 random images: largest difference "
          f"{diff:.1g}. That checks the wrapping only: the side, mean, std, RGB order and face crops it expects are "
          f"what you gave, and evaluating it on labelled faces is the test of those")
    print(f"next: python -m fer_core.evaluate --run {a.out} --data DATA --out artifacts/runs/{config['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
