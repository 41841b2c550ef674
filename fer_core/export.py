"""Export a trained FER Lab model to ONNX and check the export against PyTorch.

    python -m fer_core.export --run artifacts/runs/<name> [--out FILE.onnx]
    python -m fer_core.export --run artifacts/runs/<name> --model-dir models/default   # ship as the default model
    python -m fer_core.export --run artifacts/runs/<ensemble> --out FILE.onnx    # an ensemble folder: one model

The ONNX file carries the model's config.json (normalisation, input size, class names, provenance) in its
metadata, so a predictor needs nothing else. The batch axis is dynamic; the image side is the trained one.
An ensemble folder (written by scripts/ensemble.py --out) becomes one ONNX model that runs its members side by side
and averages their probabilities and valence/arousal, as the ensemble's own predictions were scored.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.special import softmax

from .io import atomic_torch_save, atomic_write_bytes, unwritable_folder

OPSET = 17
ROOT = Path(__file__).resolve().parent.parent  # the project root, where scripts/ensemble.py records members from
TOLERANCE = 1e-3  # max abs difference of logits / valence-arousal accepted between ONNX Runtime and PyTorch
TOLERANCE_FP16 = 2e-2  # with float16 weights: max abs difference of probabilities / valence-arousal, same argmax


def onnx_bytes(model: torch.nn.Module, config: dict, fp16_weights: bool = False) -> bytes:
    """Serialized ONNX model (opset 17, dynamic batch, config in the metadata; optionally float16 weights)."""
    import onnx

    size = int(config["img_size"])
    buf = io.BytesIO()
    model.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter warns about itself being the old path and about the SAME-padding arithmetic
        # being traced as constants; both are expected: the input side is fixed at the trained img_size.
        warnings.simplefilter("ignore")
        # dynamo=False: the dynamo exporter needs onnxscript, which is not a dependency of this project.
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), buf, dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["logits", "va"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "va": {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    if fp16_weights:
        _store_weights_fp16(proto.graph)
    return _with_config(proto, config)


def _with_config(proto, config: dict) -> bytes:
    """The serialized model with ``config`` in its metadata, where predictors read it."""
    from .inference import CONFIG_KEY

    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(config)
    describe(proto, config)
    return proto.SerializeToString()


def describe(proto, config: dict) -> None:
    """The model's description for any ONNX consumer: what goes in, what comes out, how FER Lab turns it into an
    answer, and the training data's licence where it is AffectNet's or FER+'s."""
    from . import __version__

    size, t = int(config["img_size"]), float((config.get("temperature") or {}).get("value", 1.0))
    mirror = (config.get("args") or {}).get("tta")
    mean, std = ([float(f"{v:.6g}") for v in config.get(k) or []] for k in ("mean", "std"))
    scaled = "" if mean == [0.0] * 3 and std == [1.0] * 3 else f", then minus mean {mean}, divided by std {std}"
    proto.producer_name, proto.producer_version = "FER Lab", __version__
    proto.doc_string = (
        f"Facial expression (8 classes, order in the fer_lab_config metadata's 'classes') and valence/arousal. "
        f"Input 'input': float32 [batch, 3, {size}, {size}], RGB, values 0-1{scaled}: a square face crop (a "
        f"square around the detector's box, its longer side) resized to {size}x{size} with PIL's bilinear filter. "
        f"Outputs: 'logits' [batch, 8], whose softmax is the class probabilities; 'va' "
        f"[batch, 2], valence and arousal in -1..1.")
    steps = (["averages the crop's and its mirror's probabilities and valence/arousal"] if mirror else []) + \
        ([f"applies the temperature T = {t:.4g} (p ** (1 / T), renormalised)"] if t != 1 else [])
    if steps:
        proto.doc_string += f" FER Lab's answer {', then '.join(steps)}."
    if (config.get("data") or {}).get("layout") in ("affectnet", "ferplus"):
        proto.doc_string += (" Trained on AffectNet or FER2013/FER+ images, licensed for non-commercial research "
                             "only: the model inherits that restriction.")


def _store_weights_fp16(graph) -> None:
    """Store the large float32 weights as float16, each with a Cast back to float32 in front of its use: half the file
    size, float32 arithmetic (ONNX Runtime folds the casts once when a session starts)."""
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < 1024:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + ".fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    for node in reversed(casts):
        graph.node.insert(0, node)


def compare(model: torch.nn.Module, data: bytes, size: int, batch: int = 4, seed: int = 0, mean=(0.0,) * 3,
            std=(1.0,) * 3) -> dict:
    """Max abs differences between PyTorch and ONNX Runtime outputs on random images: pixels uniform in [0, 1],
    normalised with the model's own ``mean`` and ``std``. (Random input in the normalised space itself would be a
    flat grey image to a model whose std is small, such as HSE's 1/255: every output alike, nothing checked.)"""
    import onnxruntime as ort

    x = np.random.default_rng(seed).random((batch, 3, size, size), dtype=np.float32)
    x = ((x - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))).astype(np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    logits_o, va_o = sess.run(None, {"input": x})
    with torch.inference_mode():
        logits_t, va_t = (t.numpy() for t in model.eval()(torch.from_numpy(x)))
    p_o, p_t = softmax(logits_o, axis=1), softmax(logits_t, axis=1)
    return {"inputs_told_apart": bool(np.ptp(logits_t, axis=0).max() > 1e-3),  # else the check compared nothing
            "max_abs_diff_logits": float(np.abs(logits_o - logits_t).max()),
            "max_abs_diff_va": float(np.abs(va_o - va_t).max()),
            "max_abs_diff_probs": float(np.abs(p_o - p_t).max()),
            "same_argmax": bool((p_o.argmax(1) == p_t.argmax(1)).all()), "batch": batch}


def _verified_onnx(src: Path, fp16_weights: bool) -> tuple[bytes, dict]:
    """(ONNX bytes, report) of a .pt checkpoint, checked against PyTorch on random input."""
    from .inference import load_checkpoint
    from .models import model_from_checkpoint

    model, cfg = model_from_checkpoint(load_checkpoint(src))
    data = onnx_bytes(model, cfg, fp16_weights)
    report = {"source": str(src), "bytes": len(data), "opset": OPSET, "fp16_weights": fp16_weights,
              **compare(model, data, int(cfg["img_size"]), mean=cfg["mean"], std=cfg["std"])}
    worst = max(report["max_abs_diff_probs" if fp16_weights else "max_abs_diff_logits"], report["max_abs_diff_va"])
    if worst > (TOLERANCE_FP16 if fp16_weights else TOLERANCE) or not report["same_argmax"]:
        raise RuntimeError(f"ONNX Runtime disagrees with PyTorch: {report}; nothing written")
    return data, report


def _fp16_weights(data: bytes) -> bool:
    """Whether an ONNX model stores weights as float16 (fer_core.export --fp16-weights)."""
    from onnx import TensorProto, load_from_string

    return any(i.data_type == TensorProto.FLOAT16 for i in load_from_string(data).graph.initializer)


def ensemble_config(path) -> dict | None:
    """The config.json of an ensemble folder (scripts/ensemble.py --out), or None for anything else."""
    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        return None
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    return cfg if cfg.get("status") == "ensemble" else None


def member_folder(folder: Path, recorded: str) -> Path:
    """A member's run folder as an ensemble folder's config.json records it (scripts/ensemble.py writes it relative to
    the project root, or absolute): an absolute path as it is, a relative one from the project root or from the
    ensemble folder; else the run of that name beside the ensemble folder. Raises ModelNotFound."""
    from .inference import ModelNotFound

    p = Path(recorded)
    tried = [*([p] if p.is_absolute() else [ROOT / p, folder / p]), folder.parent / p.name]
    for candidate in tried:
        if candidate.is_dir():
            return candidate
    raise ModelNotFound(f"{folder}: no such run folder for its member {recorded} (looked for "
                        f"{', '.join(map(str, dict.fromkeys(tried)))})")


def _stat(cfg: dict, key: str) -> np.ndarray:
    return np.asarray(cfg[key], np.float32).reshape(1, 3, 1, 1)


def ensemble_onnx(members: list[bytes], member_cfgs: list[dict], config: dict) -> bytes:
    """One ONNX model of the members side by side. Its input is the image in [0, 1] (config's mean 0, std 1); each
    member normalises it with its own mean/std inside the graph, and divides its logits by its temperature where
    fer_core.calibrate gave it one, as the member answers on its own (with flip TTA, which averages two calls, each
    view is scaled before the two are averaged, where a member scales their mean: close, not the same). Outputs:
    "logits", the log of the members' mean probabilities (a softmax gives that mean back), and "va", the mean
    valence/arousal of the members trained with them (trained_with_va; all members where none was)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .calibrate import temperature_of
    from .runs import trained_with_va

    nodes, inits, infos, probs, vas = [], [], [], [], []
    for i, (data, cfg) in enumerate(zip(members, member_cfgs)):
        g = onnx.compose.add_prefix(onnx.load_from_string(data), f"m{i}/").graph
        inits += [numpy_helper.from_array(_stat(cfg, stat), f"m{i}/{stat}") for stat in ("mean", "std")]
        inits.append(numpy_helper.from_array(np.asarray(temperature_of(cfg), np.float32), f"m{i}/temperature"))
        nodes += [helper.make_node("Sub", ["input", f"m{i}/mean"], [f"m{i}/centred"]),
                  helper.make_node("Div", [f"m{i}/centred", f"m{i}/std"], [g.input[0].name]), *g.node,
                  helper.make_node("Div", [f"m{i}/logits", f"m{i}/temperature"], [f"m{i}/scaled"]),
                  helper.make_node("Softmax", [f"m{i}/scaled"], [f"m{i}/probs"], axis=1)]
        inits += g.initializer
        infos += g.value_info
        probs.append(f"m{i}/probs")
        if trained_with_va(cfg):
            vas.append(f"m{i}/va")
    vas = vas or [f"m{i}/va" for i in range(len(members))]  # an untrained head's numbers: noise, left out
    inits += [numpy_helper.from_array(np.asarray(1 / len(members), np.float32), "one_over_n"),
              numpy_helper.from_array(np.asarray(1 / len(vas), np.float32), "one_over_va")]
    nodes += [helper.make_node("Sum", probs, ["probs_sum"]),
              helper.make_node("Mul", ["probs_sum", "one_over_n"], ["probs"]),
              helper.make_node("Log", ["probs"], ["logits"]),
              helper.make_node("Sum", vas, ["va_sum"]),
              helper.make_node("Mul", ["va_sum", "one_over_va"], ["va"])]
    size = int(config["img_size"])
    graph = helper.make_graph(
        nodes, "ensemble", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(config["classes"])]),
         helper.make_tensor_value_info("va", TensorProto.FLOAT, ["batch", 2])], inits, value_info=infos)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return _with_config(model, config)


def foreign_onnx(data: bytes, classes: list[str | None], va: str | int, config: dict, output: int = 0,
                 probabilities: bool = False) -> bytes:
    """Another tool's ONNX expression model wrapped as a FER Lab model: input "input" [batch, 3, S, S] (normalised
    with config's mean/std, as FER Lab feeds its own), outputs "logits" [batch, 8] in AffectNet order and "va"
    [batch, 2]. ``output``: which of its outputs holds the class scores; ``classes``: that output's columns, by name (a
    FER Lab class, or None for one FER Lab has no class for: left out); a FER Lab class the model lacks gets a logit of
    -10,000 (probability 0). ``probabilities``: the scores are probabilities, whose logarithm is taken. ``va``:
    "last2" (the scores' last two columns are valence and arousal), the number of its output that holds them, or
    "none" (the "va" output is zeros; config's data.has_va must then be False)."""
    import onnx
    from onnx import helper, numpy_helper

    from .labels import CLASSES

    original = onnx.load_from_string(data)
    g = onnx.compose.add_prefix(original, "m/").graph
    kept = [c for c in classes if c is not None]
    consts = {"m_columns": np.asarray([i for i, c in enumerate(classes) if c is not None], np.int64),
              "m_zero": np.asarray(0, np.float32), "m_absent": np.asarray(-10_000, np.float32),
              "m_first": np.asarray([0], np.int64),
              # the kept scores, then one column of -10,000 (a FER Lab class the model lacks), in AffectNet order
              "m_order": np.asarray([kept.index(c) if c in kept else len(kept) for c in CLASSES], np.int64)}
    scores = g.output[output].name
    nodes = [helper.make_node("Identity", ["input"], [g.input[0].name]), *g.node,
             helper.make_node("Gather", [scores, "m_columns"], ["m_kept"], axis=1)]
    if probabilities:
        consts["m_tiny"] = np.asarray(1e-12, np.float32)
        nodes += [helper.make_node("Max", ["m_kept", "m_tiny"], ["m_positive"]),
                  helper.make_node("Log", ["m_positive"], ["m_kept_logits"])]
    nodes += [helper.make_node("Gather", [scores, "m_first"], ["m_one"], axis=1),
              helper.make_node("Mul", ["m_one", "m_zero"], ["m_zeros"]),
              helper.make_node("Add", ["m_zeros", "m_absent"], ["m_filler"]),
              helper.make_node("Concat", ["m_kept_logits" if probabilities else "m_kept", "m_filler"], ["m_padded"],
                               axis=1),
              helper.make_node("Gather", ["m_padded", "m_order"], ["logits"], axis=1)]
    if va == "last2":
        consts["m_va_columns"] = np.asarray([len(classes), len(classes) + 1], np.int64)
        nodes.append(helper.make_node("Gather", [scores, "m_va_columns"], ["va"], axis=1))
    elif isinstance(va, int):
        nodes.append(helper.make_node("Identity", [g.output[va].name], ["va"]))
    else:
        nodes.append(helper.make_node("Concat", ["m_zeros", "m_zeros"], ["va"], axis=1))
    size = int(config["img_size"])
    graph = helper.make_graph(
        nodes, "imported", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", len(CLASSES)]),
         helper.make_tensor_value_info("va", onnx.TensorProto.FLOAT, ["batch", 2])],
        [*g.initializer, *(numpy_helper.from_array(v, k) for k, v in consts.items())], value_info=g.value_info)
    model = helper.make_model(graph, opset_imports=original.opset_import, ir_version=original.ir_version,
                              functions=original.functions)
    onnx.checker.check_model(model)
    return _with_config(model, config)


def _ensemble_bytes(folder: Path, config: dict, fp16_weights: bool) -> tuple[bytes, dict]:
    """(ONNX bytes, report) of an ensemble folder, whose members are the run folders its config.json names
    (member_folder). A member's exported checkpoints/best.onnx is used as it is where it is at least as new as its
    best.pt and stores its weights as asked (float16 or float32); else it is exported again from best.pt."""
    import onnx
    import onnxruntime as ort

    from .calibrate import temperature_of
    from .inference import ModelNotFound, onnx_config, resolve_model
    from .runs import trained_with_va

    members, cfgs, sources = [], [], []
    for m in config.get("members") or []:
        run = member_folder(folder, m["run"])
        src = resolve_model(run, backend="onnx")
        data = src.read_bytes() if src.suffix == ".onnx" else None
        pt = run / "checkpoints" / "best.pt"
        if data is not None and _fp16_weights(data) != fp16_weights and pt.is_file():
            src, data = pt, None  # an export at the other precision: not mixed into this one
        data = data if data is not None else _verified_onnx(src, fp16_weights)[0]
        members.append(data)
        cfgs.append(onnx_config({e.key: e.value for e in onnx.load_from_string(data).metadata_props}, src))
        sources.append(str(src))
    if len(members) < 2:
        raise ModelNotFound(f"{folder}: an ensemble folder needs two or more members in its config.json")
    for key, what in (("img_size", "input sizes"), ("classes", "classes")):
        if len({json.dumps(c[key]) for c in cfgs}) > 1:
            raise ValueError(f"{folder}: the members' {what} differ ({', '.join(str(c[key]) for c in cfgs)}); "
                             f"one ONNX model needs them equal")
    tta = {bool((c.get("args") or {}).get("tta")) for c in cfgs}
    if len(tta) > 1:
        raise ValueError(f"{folder}: some members were evaluated with flip TTA and some without")
    with_va = [trained_with_va(c) for c in cfgs]
    ens_cfg = {**config, "img_size": cfgs[0]["img_size"], "mean": [0.0] * 3, "std": [1.0] * 3,
               "args": {"tta": tta.pop()}, "data": {**(config.get("data") or {}), "has_va": any(with_va)},
               "member_models": [{k: c.get(k) for k in ("name", "backbone", "created", "mean", "std", "temperature")}
                                 for c in cfgs]}
    data = ensemble_onnx(members, cfgs, ens_cfg)
    # check: the ensemble's answer is the mean of the members' answers, each run on its own normalised input and
    # scaled by its own temperature
    size = int(ens_cfg["img_size"])
    x = np.random.default_rng(0).random((4, 3, size, size), dtype=np.float32)
    want_p, want_va = [], []
    for d, c, learned in zip(members, cfgs, with_va):
        xm = (x - _stat(c, "mean")) / _stat(c, "std")
        logits, va = ort.InferenceSession(d, providers=["CPUExecutionProvider"]).run(None, {"input": xm})
        want_p.append(softmax(logits / temperature_of(c), axis=1))
        if learned or not any(with_va):  # as ensemble_onnx averages them
            want_va.append(va)
    logits, va = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    p, want = softmax(logits, axis=1), np.mean(want_p, axis=0)
    report = {"source": ", ".join(sources), "bytes": len(data), "opset": OPSET, "fp16_weights": fp16_weights,
              "max_abs_diff_probs": float(np.abs(p - want).max()),
              "max_abs_diff_va": float(np.abs(va - np.mean(want_va, axis=0)).max()),
              "same_argmax": bool((p.argmax(1) == want.argmax(1)).all()), "batch": len(x)}
    if max(report["max_abs_diff_probs"], report["max_abs_diff_va"]) > 1e-4 or not report["same_argmax"]:
        raise RuntimeError(f"the ensemble model disagrees with its members' mean: {report}; nothing written")
    return data, report


def export_onnx(checkpoint_path_or_run, out_path, fp16_weights: bool = False) -> dict:
    """Export a checkpoint (a .pt file, a run folder or a run name), or an ensemble folder, to ``out_path``;
    verified before it is written.

    Returns a report: source, out, bytes and the max abs differences against PyTorch (an ensemble: against its
    members' mean). Raises ModelNotFound for a bad source and RuntimeError when ONNX Runtime disagrees with PyTorch
    beyond TOLERANCE (TOLERANCE_FP16 with float16 weights).
    """
    from .inference import ModelNotFound, resolve_model

    ens = ensemble_config(checkpoint_path_or_run)
    if ens is not None:
        data, report = _ensemble_bytes(Path(checkpoint_path_or_run), ens, fp16_weights)
    else:
        src = resolve_model(checkpoint_path_or_run, backend="torch")
        if src.suffix == ".onnx":
            raise ModelNotFound(f"{src} is already an ONNX file; give a run folder or a .pt checkpoint")
        data, report = _verified_onnx(src, fp16_weights)
    atomic_write_bytes(out_path, data)
    return {**report, "out": str(out_path)}


def ship_model(checkpoint_path_or_run, model_dir, fp16_weights: bool = False) -> dict:
    """Write ``model_dir``/model.pt (only "model" and "config": no optimizer state) and a verified model.onnx. An
    ensemble has no PyTorch form: only model.onnx is written, and an older model.pt there is removed."""
    from .inference import ModelNotFound, load_checkpoint, resolve_model

    if ensemble_config(checkpoint_path_or_run) is not None:
        report = export_onnx(checkpoint_path_or_run, Path(model_dir) / "model.onnx", fp16_weights)
        (Path(model_dir) / "model.pt").unlink(missing_ok=True)
        return report
    src = resolve_model(checkpoint_path_or_run, backend="torch")
    if src.suffix == ".onnx":
        raise ModelNotFound(f"{src} is an ONNX file; give a run folder or a .pt checkpoint")
    ckpt = load_checkpoint(src)
    data, report = _verified_onnx(src, fp16_weights)  # nothing is written unless ONNX Runtime agrees
    # model.onnx last: a folder's ONNX file answers where it is at least as new as its model.pt (resolve_model)
    atomic_torch_save(Path(model_dir) / "model.pt", {"model": ckpt["model"], "config": ckpt["config"]})
    atomic_write_bytes(Path(model_dir) / "model.onnx", data)
    return {**report, "out": str(Path(model_dir) / "model.onnx"), "model_pt": str(Path(model_dir) / "model.pt")}


def get_args_parser():
    p = argparse.ArgumentParser(prog="python -m fer_core.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=os.path.expanduser,
                   required=True, help="run folder (uses checkpoints/best.pt), run name, a .pt checkpoint, "
                                       "or an ensemble folder (scripts/ensemble.py --out)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--out", type=os.path.expanduser,
                   help="ONNX file to write (default: next to the checkpoint, e.g. "
                        "<run folder>/checkpoints/best.onnx)")
    g.add_argument("--model-dir", type=os.path.expanduser,
                   help="write model.pt (weights + config only) and model.onnx into this folder, "
                        "e.g. models/default")
    p.add_argument("--fp16-weights", action="store_true",
                   help="store the weights as float16 (half the file; computation stays float32)")
    return p


def output_problem(args) -> str | None:
    """What is wrong with --out or --model-dir, checked before any work, or None."""
    if args.model_dir:
        why = unwritable_folder(args.model_dir)
        return f"--model-dir {args.model_dir} {why}" if why else None
    if not args.out:
        return None
    out = Path(args.out)
    if out.is_dir():
        return f"--out {out} is a folder: give the file to write, e.g. {out / 'model.onnx'}"
    if out.suffix.lower() != ".onnx":
        return f"--out {out}: the file name must end in .onnx (fer_core.predict and the dashboard read .onnx files)"
    why = unwritable_folder(out.parent)
    return f"--out {out}: its folder {out.parent} {why}" if why else None


def other_run(out: Path, src: Path) -> str | None:
    """Whose checkpoints/ folder ``out`` is in, where that is another run's than the model's, or None."""
    from .evaluate import other_owner
    from .inference import model_config

    folder = out.parent.parent
    if out.parent.name != "checkpoints" or not (folder / "config.json").is_file():
        return None
    if src.is_dir():  # an ensemble folder: its own checkpoints/ only
        return None if folder.resolve() == src.resolve() else f"is in the checkpoints/ of {folder}"
    owner = other_owner(folder, None, src, model_config(src))
    return f"is in the checkpoints/ of {folder}, which {owner}" if owner else None


def main(args) -> int:
    from .inference import ModelNotFound, resolve_model

    problem = output_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        ensemble = ensemble_config(args.run) is not None
        src = Path(args.run) if ensemble else resolve_model(args.run, backend="torch")
        owner = args.out and other_run(Path(args.out), src)
        if owner:
            print(f"error: --out {args.out} {owner}: a model file there answers for that run (in predict and the "
                  f"dashboard). Give another --out", file=sys.stderr)
            return 2
        if args.model_dir:
            r = ship_model(src, args.model_dir, args.fp16_weights)
        else:
            default = src / "checkpoints" / "best.onnx" if ensemble else src.with_suffix(".onnx")
            if not args.out and (why := unwritable_folder(default.parent)):  # said before the export, not after
                print(f"error: {default.parent} {why}: give --out FILE.onnx in a folder you can write",
                      file=sys.stderr)
                return 2
            r = export_onnx(src, Path(args.out) if args.out else default, args.fp16_weights)
    except (ModelNotFound, RuntimeError, ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # files are written whole or not at all (atomic_write_bytes)
        print("interrupted: the file being written was left as it was", file=sys.stderr)
        return 130
    print(f"wrote {r['out']} ({r['bytes'] / 1e6:.1f} MB, opset {r['opset']}"
          f"{', float16 weights' if r['fp16_weights'] else ''}) from {r['source']}")
    if "model_pt" in r:
        print(f"wrote {r['model_pt']} (weights and config only)")
    if ensemble:
        print(f"the ensemble vs its members' mean on {r['batch']} random inputs: max abs diff probabilities "
              f"{r['max_abs_diff_probs']:.2e}, valence/arousal {r['max_abs_diff_va']:.2e}, "
              f"same argmax: {r['same_argmax']}")
    else:
        print(f"ONNX Runtime vs PyTorch on {r['batch']} random images: max abs diff logits "
              f"{r['max_abs_diff_logits']:.2e}, valence/arousal {r['max_abs_diff_va']:.2e}, probabilities "
              f"{r['max_abs_diff_probs']:.2e}, same argmax: {r['same_argmax']}")
        if not r["inputs_told_apart"]:
            print("warning: the model answered every random image alike, so this check compared little; try the "
                  "exported file on real faces (python -m fer_core.evaluate --run FILE.onnx)", file=sys.stderr)
    return 0


def cli():
    sys.exit(main(get_args_parser().parse_args()))


if __name__ == "__main__":
    cli()
