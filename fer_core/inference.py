"""Expression and valence/arousal prediction for faces in photos and video frames.

Which model answers: an explicit run (a run folder, a run name under artifacts/runs, or a .pt/.onnx file), else
``models/default/`` (model.onnx, or model.pt). ONNX files run with ONNX Runtime (one session, 2 threads,
thread-safe); checkpoints run with PyTorch, or are converted to ONNX in memory with ``backend="onnx"``.
Inputs are prepared as in training: RGB, square, resized to the config's img_size, normalised by its mean/std.
"""
from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from .calibrate import apply_temperature, temperature_of
from .data import load_image
from .faces import DEFAULT_MARGIN, Face, FaceDetector, annotate, as_rgb_uint8, as_uint8, crop_face, resize_square
from .images import ImageError
from .labels import CLASSES
from .runs import runs_dirs_from_env, trained_with_va

DEFAULT_DIR = Path("models/default")
# Crops per model call. ONNX Runtime keeps the memory of the largest batch it ran for the session's life: a 200-face
# photo in one batch held the default model's process 2.6 GB larger from then on. 320 crops with their mirrors took
# 3.4 s and kept 136 MB in batches of 8, 3.5 s and 631 MB in batches of 32 (2 cores).
MAX_BATCH = 8
DETECT_SIDE = 640  # photos are searched for faces at this longest side (and small faces at faces.SMALL_FACE_SIDE)
SHIPPED_DIR = Path(__file__).resolve().parent.parent / DEFAULT_DIR  # the default model of this checkout
RUNS_DIR = Path("artifacts/runs")
MAX_PIXELS = 50_000_000
NO_FACE = "no face found — whole image"
TURNED = {1: "face on its side, turned upright to classify", 2: "face upside down, turned upright to classify",
          3: "face on its side, turned upright to classify"}  # by FaceDetector.detect's turn
HOW_TO_GET_A_MODEL = (
    "Train one (python -m fer_core.train --data DATA --preset hse-fast) and pass --run artifacts/runs/<name>, "
    "or ship a run as the default model: python -m fer_core.export --run RUN --model-dir models/default")


class ModelNotFound(Exception):
    """No usable model at the given place; the message says what to do."""


CONFIG_KEY = "fer_lab_config"  # the ONNX metadata entry that holds a FER Lab config


def onnx_config(meta: dict, source) -> dict:
    """The FER Lab config in an ONNX file's metadata (key -> value). Raises ModelNotFound."""
    if CONFIG_KEY not in meta:
        raise ModelNotFound(f"{source}: ONNX file without FER Lab config (export it with fer_core.export)")
    return json.loads(meta[CONFIG_KEY])


def _have_ort() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def list_runs(runs_dirs=(RUNS_DIR,)) -> list[Path]:
    """Run folders holding checkpoints/best.pt in the given folders (one folder, or a list; a folder may be a run
    itself), newest first."""
    if isinstance(runs_dirs, (str, os.PathLike)):
        runs_dirs = [runs_dirs]
    found = set()
    for d in map(Path, runs_dirs):
        best = [*d.glob("checkpoints/best.pt"), *d.glob("*/checkpoints/best.pt")]
        found.update(p.parent.parent.resolve() for p in best)
    return sorted(found, key=lambda p: (p / "checkpoints" / "best.pt").stat().st_mtime, reverse=True)


def run_path(run, root=None) -> Path:
    """``run`` as a path; a run name that is no path here means that run's folder under ``root``'s artifacts/runs,
    or (without a root) under $FER_LAB_RUNS_DIR's folders or ./artifacts/runs, as the dashboard finds runs."""
    p = Path(run)
    homes = [Path(root) / RUNS_DIR] if root else [*runs_dirs_from_env(), Path(RUNS_DIR)]
    return p if p.exists() else next((h / str(run) for h in homes if (h / str(run)).exists()), p)


def resolve_model(run=None, root=None, backend: str = "auto") -> Path:
    """The weights file that answers: ``run`` (folder, run name, .pt/.pth/.onnx file), else models/default/ under
    ``root``; without a root, the working folder's models/default/, else the one shipped beside the package."""
    want_onnx = backend == "onnx" or (backend == "auto" and _have_ort())
    if run:
        p = run_path(run, root)
        if p.is_file():
            if p.suffix.lower() not in (".pt", ".pth", ".onnx"):
                raise ModelNotFound(f"{run}: not a model file (.pt, .pth or .onnx)")
            return p
        if p.is_dir():
            for pt, ox in ((p / "checkpoints" / "best.pt", p / "checkpoints" / "best.onnx"),
                           (p / "model.pt", p / "model.onnx")):
                # an exported ONNX file next to the checkpoint is used when it is at least as new
                if want_onnx and ox.is_file() and (not pt.is_file() or ox.stat().st_mtime >= pt.stat().st_mtime):
                    return ox
                if pt.is_file():
                    return pt
            raise ModelNotFound(f"{run}: no checkpoints/best.pt in this folder. " + why_no_checkpoint(p))
        homes = [Path(root) / RUNS_DIR] if root else list(dict.fromkeys([*runs_dirs_from_env(), Path(RUNS_DIR)]))
        raise ModelNotFound(f"{run}: no such run folder or model file (run names are looked up in " + ", ".join(
            f"{h}" + ("" if h.is_dir() else " (a file, not a folder)" if h.exists() else " (no such folder)")
            for h in homes) + ")")
    d = Path(root or ".") / DEFAULT_DIR
    if root is None and not d.is_dir():
        d = SHIPPED_DIR
    for f in ([d / "model.onnx", d / "model.pt"] if want_onnx else [d / "model.pt"]):
        if f.is_file():
            return f
    if (d / "model.onnx").is_file():
        raise ModelNotFound(f"{d} holds model.onnx only, which runs with onnxruntime, not PyTorch"
                            f"{'' if _have_ort() else ': pip install onnxruntime'}")
    raise ModelNotFound(f"No model found: {d} holds no model.pt or model.onnx. {HOW_TO_GET_A_MODEL}")


def why_no_checkpoint(run_dir: Path) -> str:
    """What a run folder without weights most likely is, and what to do about it."""
    try:
        status = json.loads((run_dir / "config.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status == "running":
        return "The run is still in its first epoch: its checkpoint is written when the epoch ends."
    if status == "ensemble" and (run_dir / "checkpoints" / "best.onnx").is_file():
        return (f"It is an ensemble folder: its model is {run_dir / 'checkpoints' / 'best.onnx'}, which runs with "
                "ONNX Runtime only (--backend onnx or auto).")
    if status == "ensemble":
        return (f"It is an ensemble folder, without a checkpoint of its own: export it first (python -m "
                f"fer_core.export --run {run_dir} writes {run_dir / 'checkpoints' / 'best.onnx'}).")
    final = run_dir.parent / f"{run_dir.name}-final"  # scripts/cross_validate.py --final trains it there
    if status == "cross-validation" and (final / "checkpoints" / "best.pt").is_file():
        return (f"It is a pooled cross-validation, with no weights of its own; its final model, trained on every "
                f"image, is {final}.")
    if status == "cross-validation":
        return ("It is a pooled cross-validation: its folds' test predictions taken together, each image scored by "
                "another fold's model, with no weights of its own. Give one fold's run folder (listed under fold_runs "
                "in its config.json), or train its final model (scripts/cross_validate.py ... --final).")
    if status == "evaluation":
        return ("It holds one evaluation of a model, not the model: its config.json names the model file it scored "
                "(evaluated_model).")
    if status == "imported":
        return ("It holds predictions made outside FER Lab (scripts/import_predictions.py), not a model.")
    if status in ("finished", "stopped_early", "stopped", "failed"):
        return ("The folder holds the run's results but not its weights (the reference runs in artifacts/runs ship "
                "without them; docs/results.md has the command that trains each again). Leave out --run to use "
                "the default model.")
    return "Is this a FER Lab run folder?"


def model_stamp(path) -> tuple:
    """What changes when the answers of a model file change: the file (modification and change times: fer_core.calibrate
    rewrites a temperature into it and keeps its modification time), and for a run's checkpoint the run's config.json,
    where the temperature of a best.pt lives. A cache key for loaded models."""
    path = Path(path)
    run_config = path.parent.parent / "config.json"
    files = [path, *([run_config] if path.parent.name == "checkpoints" and run_config.is_file() else [])]
    return tuple((f.stat().st_mtime_ns, f.stat().st_ctime_ns) for f in files)


def model_config(path) -> dict:
    """The FER Lab config inside a model file (.onnx metadata, or a .pt checkpoint's "config"), without building the
    model. Raises ModelNotFound."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return load_checkpoint(path)["config"]
    import onnx

    try:
        meta = {e.key: e.value for e in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as e:  # onnx raises DecodeError and friends
        raise ModelNotFound(f"{path}: not an ONNX file exported by FER Lab ({type(e).__name__})") from None
    return onnx_config(meta, path)


def model_for_run(folder) -> Path | None:
    """The weights behind a run folder's predictions, where they are at hand: its own checkpoint or export, the model
    file an evaluation folder records, else the default model when that was exported from this very run (same name
    and creation time)."""
    try:
        return resolve_model(folder)
    except ModelNotFound:
        pass
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    em = (cfg.get("evaluated_model") or {}) if isinstance(cfg, dict) else {}
    if em.get("file"):  # a folder evaluate wrote for a model file: that file, where it still is and is that model
        from .runs import REPO_ROOT

        for p in (Path(em["file"]), REPO_ROOT / em["file"]):
            try:
                if p.is_file() and model_config(p).get("name") == em.get("name"):
                    return p
            except (ModelNotFound, OSError, ValueError):
                pass
        return None
    try:
        default = resolve_model(None)
        other = model_config(default)
    except (ModelNotFound, OSError, ValueError):
        return None
    return default if (other.get("name"), other.get("created")) == (cfg.get("name"), cfg.get("created")) else None


def load_checkpoint(path) -> dict:
    import torch

    try:
        with warnings.catch_warnings():  # torch warns of odd pickle protocols in random bytes before it fails
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelNotFound(f"{path}: no such file") from None
    except Exception as e:
        if "unsupported global" in str(e).lower():  # a pickle of Python objects: not loaded from a file of unknown origin
            raise ModelNotFound(f"{path}: holds Python objects besides tensors and plain values, which are not loaded "
                                f"from files (torch.load weights_only): not a FER Lab checkpoint") from None
        raise ModelNotFound(f"{path}: not a readable PyTorch checkpoint (damaged, cut short, or not a .pt file; "
                            f"{type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ModelNotFound(f"{path}: not a FER Lab checkpoint (needs 'model' and 'config' entries)")
    # Inside a run folder, its config.json has the last word: the checkpoint's copy was taken during training, before
    # the run finished (or was renamed).
    run_config = Path(path).parent.parent / "config.json"
    if Path(path).parent.name == "checkpoints" and run_config.is_file():
        try:
            ckpt["config"] = {**ckpt["config"], **json.loads(run_config.read_text())}
        except (OSError, ValueError):
            pass  # an unreadable config.json leaves the checkpoint's own copy, which is complete
    return ckpt


class _NamedBytes(io.BytesIO):
    """In-memory file whose str() is its name, so load_image's error messages name the upload."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __str__(self):
        return self.name

    __repr__ = __str__  # PIL puts repr(fp) into "cannot identify image file ..."


def read_image(source, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB uint8 array from a path or from bytes (an upload). Raises fer_core.images.ImageError with a one-line
    reason."""
    if isinstance(source, (bytes, bytearray)):
        source = _NamedBytes(bytes(source), name or "upload")
    return np.asarray(load_image(source, max_pixels=max_pixels))


MIN_SIDE = 16  # pixels: a picture smaller either way holds no face to find (FER's crops have 48)


class Tracker:
    """For video: run the detector on every ``reuse + 1``-th frame and reuse its boxes in between. Faces move
    little in 1-2 frames (33-66 ms at 30 fps), while detection is the costliest step of a frame."""

    def __init__(self, reuse: int = 2, max_side: int = 320):
        self.reuse, self.max_side = reuse, max_side
        self._faces: list[Face] = []
        self._age = reuse + 1  # detect on the first frame
        self._lock = threading.Lock()

    def faces(self, detector: FaceDetector, frame: np.ndarray) -> list[Face]:
        with self._lock:
            if self._age >= self.reuse:
                self._faces, self._age = detector.detect(frame, max_side=self.max_side), 0
            else:
                self._age += 1
            return list(self._faces)


class Predictor:
    """Loads one model and answers for faces, crops or whole images. One object can serve many threads.

    ``path``: a .pt/.pth/.onnx file, a run folder or run name, or None for the default model (resolve_model).
    ``threads``: an ONNX model's own threads; a PyTorch model sets torch.set_num_threads for the whole process
    (PyTorch has one pool). Images are RGB: uint8 arrays, floats 0-1, 16-bit arrays or PIL images."""

    def __init__(self, path=None, backend: str = "auto", detector="auto", detect_side: int | None = DETECT_SIDE,
                 margin: float = DEFAULT_MARGIN, threads: int = 2, tta: bool | None = None):
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend must be auto, onnx or torch, not {backend!r}")
        if path is None or not Path(path).is_file():  # a run folder or name, or the default model
            path = resolve_model(path, backend=backend)
        self.path, self.margin = Path(path), margin
        self._lock = threading.Lock()
        self._session = self._model = None
        converted = False
        if self.path.suffix.lower() == ".onnx":
            if backend == "torch":
                raise ValueError(f"{self.path} is an ONNX file: it runs with onnxruntime, not PyTorch")
            self._session = self._ort_session(str(self.path), threads)
            self.config = onnx_config(self._session.get_modelmeta().custom_metadata_map, self.path)
        else:
            from .models import model_from_checkpoint

            model, self.config = model_from_checkpoint(load_checkpoint(self.path))
            # auto keeps PyTorch for a checkpoint: converting costs seconds at load; export once to get ONNX speed
            if backend == "onnx":
                from .export import onnx_bytes

                self._session, converted = self._ort_session(onnx_bytes(model, self.config), threads), True
            else:
                import torch

                torch.set_num_threads(threads)
                self._model = model
        how = ", converted from the checkpoint in memory" if converted else ""
        self.runtime = f"ONNX Runtime ({threads} threads{how})" if self._session is not None else "PyTorch (eager)"
        self.img_size = int(self.config["img_size"])
        self.mean = np.asarray(self.config["mean"], np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(self.config["std"], np.float32).reshape(1, 3, 1, 1)
        self.classes = list(self.config.get("classes") or CLASSES)
        # flip TTA (the crop and its mirror averaged) as the run was evaluated, unless told otherwise
        self.tta = bool((self.config.get("args") or {}).get("tta")) if tta is None else tta
        # temperature scaling fitted on the run's validation predictions (fer_core.calibrate); 1 = raw probabilities
        self.temperature = temperature_of(self.config)
        # a model trained on data without valence/arousal (FER+, class folders) has an untrained head for them:
        # its numbers would be noise, so none are given
        self.has_va = trained_with_va(self.config)
        if detector == "auto" or isinstance(detector, str):
            detector = FaceDetector(detector, max_side=detect_side)
        self.detector: FaceDetector | None = detector
        ramp = np.linspace(0, 255, self.img_size, dtype=np.uint8)  # not flat: a model that standardises each
        probe = np.broadcast_to(ramp[None, None, :, None], (1, self.img_size, self.img_size, 3))  # image copes
        probs, va = self.predict_batch(probe)  # the first call allocates: now; and a broken model shows
        if not (np.isfinite(probs).all() and (np.isfinite(va).all() or not self.has_va)):
            raise ModelNotFound(f"{self.path} answers not-a-number for a grey ramp: its weights, or its "
                                f"normalisation (std {self.config['std']}), are broken. Nothing predicted with it")

    @staticmethod
    def _ort_session(model, threads: int):
        if not _have_ort():
            raise ModelNotFound("onnxruntime is not installed: pip install onnxruntime, or use the .pt model")
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        # no busy-waiting between runs: the detector and other sessions' threads need the same few cores
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own InvalidProtobuf, Fail, ... (not OSError or ValueError)
            what = model if isinstance(model, str) else "the model converted from the checkpoint"
            raise ModelNotFound(f"{what}: not a readable ONNX model ({type(e).__name__}: {str(e)[:160]})") from None

    # ------------------------------------------------------------------ description
    def info(self) -> dict:
        c = self.config
        data, w = c.get("data") or {}, c.get("weights") or {}
        n_train = ((c.get("split") or {}).get("counts") or {}).get("train")
        trained_on = f", {n_train:,} of them its training images" if n_train else ""
        trained = ", ".join(x for x in [
            f"{data.get('layout')} data at {data.get('root')} ({data.get('n_samples')} images{trained_on})"
            if data.get("root") else "",
            c.get("hardware") or "", c.get("created", "")[:10]] if x) or "unknown (no provenance in the config)"
        if imported := c.get("imported"):  # scripts/import_model.py: another tool's model
            trained = (f"by its authors, not by FER Lab: imported from {Path(imported['file']).name} (sha256 "
                       f"{imported['sha256'][:16]}) on {c.get('created', '')[:10]}; their training data and licence "
                       "apply")
        best = c.get("best") or {}
        metric = {"val_score": "validation score (mean of accuracy and valence/arousal CCC)" if trained_with_va(c)
                  else "validation accuracy"}.get(best.get("metric"), best.get("metric"))
        best = (f"epoch {best.get('epoch')}, {metric} {best['value']:.3f}"
                if isinstance(best.get("value"), (int, float)) else None)
        members = [m.get("name") for m in c.get("member_models") or []]  # an ensemble (fer_core.export)
        return {"name": c.get("name", self.path.stem), "backbone": c.get("backbone"), "img_size": self.img_size,
                "trained": trained, "init": None if members else w.get("loaded"), "members": members,
                "weights_file": str(self.path), "runtime": self.runtime,
                "best": best, "tta": self.tta, "temperature": self.temperature,
                "detector": self.detector.name if self.detector else "none (whole image)"}

    def describe(self) -> str:
        i = self.info()
        tta = ", flip TTA" if i["tta"] else ""
        tta += f", temperature {i['temperature']:.2f}" if i["temperature"] != 1 else ""
        return (f"model {i['name']} ({i['backbone']}, {i['img_size']} px{tta}) from {i['weights_file']} on "
                f"{i['runtime']}; "
                f"trained on {i['trained']}; faces: {i['detector']}")

    # ------------------------------------------------------------------ prediction
    def predict_batch(self, crops: np.ndarray, tta: bool | None = None,
                      release_memory: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """RGB crops [N, S, S, 3] at img_size (uint8, or faces.as_uint8's other value ranges) -> (probabilities [N, 8],
        valence/arousal [N, 2]). ``tta``: average each crop with its mirror (default: self.tta, as the run was
        evaluated); then the run's temperature, if it has one, rescales the probabilities. ``release_memory``: ONNX
        Runtime hands back the memory this batch took, which it keeps for the next otherwise (about 600 MB after the
        batches of an occlusion map of the default model: for a long-lived server, not worth holding)."""
        tta = self.tta if tta is None else tta
        crops, s = as_uint8(crops), self.img_size
        if crops.ndim != 4 or crops.shape[1:] != (s, s, 3):
            hint = (" (one crop: pass crop[None])" if crops.shape == (s, s, 3) else
                    " (channels first: pass crops.transpose(0, 2, 3, 1))" if crops.ndim == 4 and crops.shape[1] == 3
                    else "")
            raise ValueError(f"expected RGB crops [N, {s}, {s}, 3] at the model's size (faces.resize_square makes "
                             f"them; predict_crop takes any size), got shape {crops.shape}{hint}")
        if len(crops) > MAX_BATCH:  # ONNX Runtime keeps the memory of the largest batch it ran, for good
            parts = [self.predict_batch(crops[i:i + MAX_BATCH], tta, release_memory)
                     for i in range(0, len(crops), MAX_BATCH)]
            return np.concatenate([p for p, _ in parts]), np.concatenate([v for _, v in parts])
        x = np.ascontiguousarray(crops, dtype=np.float32).transpose(0, 3, 1, 2) / 255.0
        x = (x - self.mean) / self.std
        n = len(x)
        x = np.ascontiguousarray(np.concatenate([x, x[..., ::-1]]) if tta else x, dtype=np.float32)
        if self._session is not None:
            options = None
            if release_memory:
                import onnxruntime as ort

                options = ort.RunOptions()
                options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")  # at the run's end
            logits, va = self._session.run(None, {"input": x}, options)  # ORT sessions are safe to share across threads
        else:
            import torch

            with self._lock, torch.inference_mode():
                logits, va = (t.numpy() for t in self._model(torch.from_numpy(x)))
        from scipy.special import softmax

        p, va = softmax(logits.astype(np.float64), axis=1), np.asarray(va, np.float64)
        if tta:  # the mirrors' answers averaged in, as evaluation does
            p, va = (p[:n] + p[n:]) / 2, (va[:n] + va[n:]) / 2
        if self.temperature != 1:
            p = apply_temperature(p, self.temperature)
        return p.astype(np.float32), va.astype(np.float32)

    def _results(self, crops, boxes, scores, whole: bool, tta: bool | None = None) -> list[dict]:
        probs, va = self.predict_batch(np.stack(crops), tta)
        out = []
        for p, (v, a), box, s in zip(probs, va, boxes, scores):
            k = int(p.argmax())
            out.append({"box": tuple(int(b) for b in box), "score": s, "probs": [float(q) for q in p], "label": k,
                        "label_name": self.classes[k], "confidence": float(p[k]),
                        "valence": float(v) if self.has_va else math.nan,
                        "arousal": float(a) if self.has_va else math.nan,
                        "whole_image": whole, "note": NO_FACE if whole else None})
        return out

    def face_crop(self, image: np.ndarray, result: dict) -> np.ndarray:
        """The img_size crop of ``image`` that a result of predict_faces was classified from."""
        if result["whole_image"]:
            return resize_square(image, self.img_size)
        return crop_face(image, result["box"], self.margin, self.img_size, result.get("turn", 0))

    def predict_crop(self, crop: np.ndarray) -> dict:
        """One face picture (any size, RGB) taken as it is: resized to img_size and classified."""
        crop = as_rgb_uint8(crop)
        h, w = crop.shape[:2]
        return self._results([resize_square(crop, self.img_size)], [(0, 0, w, h)], [None], False)[0]

    def predict_faces(self, image: np.ndarray, whole_image: bool = False, tracker: Tracker | None = None,
                      tta: bool | None = None, small_faces: bool = True, fallback: bool = True) -> list[dict]:
        """Every detected face, largest first; the whole image (flagged, with NO_FACE) when none is found, unless
        ``fallback`` is off (video frames: a frame without a face has no answer). ``small_faces``: a large photo is
        also searched at a larger size for faces too small at detect_side (FaceDetector.detect; about a second on a
        12 MP photo) and a photo turned on its side or upside down is found as such, its faces turned upright to be
        classified ("turn", and a note; FaceDetector.detect's ``turned``): video frames turn both off, for speed.
        Raises ImageError for a picture under MIN_SIDE pixels either way, where it would answer for the whole of it
        (``whole_image`` classifies a crop that small)."""
        image = as_rgb_uint8(image)
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE and fallback and not whole_image:  # its whole-image answer: one for a few pixels
            raise ImageError(f"{w}x{h} pixels, too small to hold a face to find ({MIN_SIDE} or more each way)")
        faces = [] if whole_image or self.detector is None else (
            tracker.faces(self.detector, image) if tracker else
            self.detector.detect(image, small_faces=small_faces, turned=small_faces))
        if not faces and not fallback and not whole_image:
            return []
        if not faces:
            r = self._results([resize_square(image, self.img_size)], [(0, 0, w, h)], [None], True, tta)
            if whole_image:
                r[0]["note"] = "whole image (detection skipped)"
            return r
        crops = [crop_face(image, f.box, self.margin, self.img_size, f.turn) for f in faces]
        out = self._results(crops, [f.box for f in faces], [f.score for f in faces], False, tta)
        for r, f in zip(out, faces):
            if f.turn:
                r.update(turn=f.turn, note=TURNED[f.turn])
        return out


class LiveSession:
    """One video stream: the frame callback thread calls ``process``; the page polls ``snapshot`` from another
    thread, so the latest results sit behind a lock. Each face is classified once, without its mirror (TTA), so the
    stream keeps up with the camera: half the model time, for the same accuracy as with it on the shipped model's
    test and validation splits."""

    TTA = False
    RECORD_EVERY = 0.2  # seconds between the frames a stream keeps for its timeline (as a video's "every")
    RECORD_LIMIT = 18_000  # the last hour of them: about 20 MB

    def __init__(self, predictor: Predictor, reuse: int = 2, max_side: int = 320):
        self.predictor, self.tracker = predictor, Tracker(reuse, max_side)
        self._lock = threading.Lock()
        self._frames, self._results, self._ms = 0, [], []
        self._start_recording()

    def _start_recording(self) -> None:
        from collections import deque

        from .video import People

        self._started, self._people, self._record = None, People(), deque(maxlen=self.RECORD_LIMIT)

    def _keep(self, n: int, results: list[dict]) -> None:
        """Add the frame to the stream's record (fer_core.video's records: time_s, frame, faces with their person)
        when RECORD_EVERY has passed since the last one kept."""
        now = time.monotonic()
        self._started = self._started or now
        t = now - self._started
        if self._record and t - self._record[-1]["time_s"] < self.RECORD_EVERY:
            return
        faces = [dict(f) for f in results if not f["whole_image"]]  # a frame without a face: no answer for anyone
        self._people.assign(faces, t)
        self._record.append({"path": "webcam", "frame": n, "time_s": round(t, 3), "faces": faces})

    def process(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Detect, classify and draw on one RGB frame; the frame number is drawn too, so a viewer sees it advance."""
        t = time.perf_counter()
        results = self.predictor.predict_faces(frame_rgb, tracker=self.tracker, tta=self.TTA)
        ms = (time.perf_counter() - t) * 1000
        with self._lock:
            self._frames += 1
            self._results, n = results, self._frames
            self._ms = (self._ms + [ms])[-30:]
            self._keep(n, results)
        return annotate(frame_rgb, results, footer=f"frame {n}  {ms:.0f} ms")

    def reset(self) -> None:
        """Forget the frames counted so far and the last faces' boxes: a new stream starts."""
        with self._lock:
            self._frames, self._results, self._ms = 0, [], []
            self.tracker = Tracker(self.tracker.reuse, self.tracker.max_side)
            self._start_recording()

    def recording(self) -> list[dict]:
        """The stream's kept frames, a record each as fer_core.video.predict_video gives them: for
        video.timeline/summary and predict.to_rows."""
        with self._lock:
            return list(self._record)

    def snapshot(self) -> dict:
        with self._lock:
            ms = self._ms
            return {"frames": self._frames, "results": list(self._results),
                    "mean_ms": sum(ms) / len(ms) if ms else None}  # a frame that detects counts too
