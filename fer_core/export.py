"""Export a trained FER Lab model to ONNX and check the export against PyTorch.

    python -m fer_core.export --run artifacts/runs/<name> [--out FILE.onnx]
    python -m fer_core.export --run artifacts/runs/<name> --model-dir models/default   # ship as the default model

The ONNX file carries the model's config.json (normalisation, input size, class names, provenance) in its
metadata, so a predictor needs nothing else. The batch axis is dynamic; the image side is the trained one.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .io import atomic_torch_save, atomic_write_bytes

OPSET = 17
CONFIG_KEY = "fer_lab_config"
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
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(config)
    return proto.SerializeToString()


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


def compare(model: torch.nn.Module, data: bytes, size: int, batch: int = 4, seed: int = 0) -> dict:
    """Max abs differences between PyTorch and ONNX Runtime outputs on random input."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    logits_o, va_o = sess.run(None, {"input": x})
    with torch.inference_mode():
        logits_t, va_t = (t.numpy() for t in model.eval()(torch.from_numpy(x)))
    p_o, p_t = _softmax(logits_o), _softmax(logits_t)
    return {"max_abs_diff_logits": float(np.abs(logits_o - logits_t).max()),
            "max_abs_diff_va": float(np.abs(va_o - va_t).max()),
            "max_abs_diff_probs": float(np.abs(p_o - p_t).max()),
            "same_argmax": bool((p_o.argmax(1) == p_t.argmax(1)).all()), "batch": batch}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def export_onnx(checkpoint_path_or_run, out_path, fp16_weights: bool = False) -> dict:
    """Export a checkpoint (a .pt file, a run folder or a run name) to ``out_path``; verified before it is written.

    Returns a report: source, out, bytes and the max abs differences against PyTorch. Raises ModelNotFound for
    a bad source and RuntimeError when ONNX Runtime disagrees with PyTorch beyond TOLERANCE (TOLERANCE_FP16 with
    float16 weights).
    """
    from .inference import ModelNotFound, load_checkpoint, resolve_model
    from .models import model_from_checkpoint

    src = resolve_model(checkpoint_path_or_run, backend="torch")
    if src.suffix == ".onnx":
        raise ModelNotFound(f"{src} is already an ONNX file; give a run folder or a .pt checkpoint")
    model, cfg = model_from_checkpoint(load_checkpoint(src))
    data = onnx_bytes(model, cfg, fp16_weights)
    report = {"source": str(src), "out": str(out_path), "bytes": len(data), "opset": OPSET,
              "fp16_weights": fp16_weights, **compare(model, data, int(cfg["img_size"]))}
    worst = max(report["max_abs_diff_probs" if fp16_weights else "max_abs_diff_logits"], report["max_abs_diff_va"])
    if worst > (TOLERANCE_FP16 if fp16_weights else TOLERANCE) or not report["same_argmax"]:
        raise RuntimeError(f"ONNX Runtime disagrees with PyTorch: {report}; nothing written")
    atomic_write_bytes(out_path, data)
    return report


def ship_model(checkpoint_path_or_run, model_dir, fp16_weights: bool = False) -> dict:
    """Write ``model_dir``/model.pt (only "model" and "config": no optimizer state) and a verified model.onnx."""
    from .inference import ModelNotFound, load_checkpoint, resolve_model

    src = resolve_model(checkpoint_path_or_run, backend="torch")
    if src.suffix == ".onnx":
        raise ModelNotFound(f"{src} is an ONNX file; give a run folder or a .pt checkpoint")
    ckpt = load_checkpoint(src)
    report = export_onnx(src, Path(model_dir) / "model.onnx", fp16_weights)
    atomic_torch_save(Path(model_dir) / "model.pt", {"model": ckpt["model"], "config": ckpt["config"]})
    return report


def get_args_parser():
    p = argparse.ArgumentParser(prog="python -m fer_core.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder (uses checkpoints/best.pt), run name, or a .pt checkpoint")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--out", help="ONNX file to write (default: next to the checkpoint, e.g. "
                                 "<run folder>/checkpoints/best.onnx)")
    g.add_argument("--model-dir", help="write model.pt (weights + config only) and model.onnx into this folder, "
                                       "e.g. models/default")
    p.add_argument("--fp16-weights", action="store_true",
                   help="store the weights as float16 (half the file; computation stays float32)")
    return p


def main(args) -> int:
    from .inference import ModelNotFound, resolve_model

    try:
        src = resolve_model(args.run, backend="torch")
        if args.model_dir:
            r = ship_model(src, args.model_dir, args.fp16_weights)
        else:
            r = export_onnx(src, Path(args.out) if args.out else src.with_suffix(".onnx"), args.fp16_weights)
    except (ModelNotFound, RuntimeError, ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {r['out']} ({r['bytes'] / 1e6:.1f} MB, opset {r['opset']}"
          f"{', float16 weights' if r['fp16_weights'] else ''}) from {r['source']}")
    if args.model_dir:
        print(f"wrote {Path(args.model_dir) / 'model.pt'} (weights and config only)")
    print(f"ONNX Runtime vs PyTorch on {r['batch']} random inputs: max abs diff logits {r['max_abs_diff_logits']:.2e}, "
          f"valence/arousal {r['max_abs_diff_va']:.2e}, probabilities {r['max_abs_diff_probs']:.2e}, "
          f"same argmax: {r['same_argmax']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
