"""Synthetic run folders that follow docs/run_folder.md, for dashboard tests and benchmarks.

Predictions come from a simple generative model: each sample's logits favour its true class by a
run-specific margin, plus extra confusion between classes people also confuse (Fear/Surprise,
Disgust/Anger, Contempt/Happy/Neutral). Valence/arousal sit around class centroids of the circumplex.
Metrics files are computed from those predictions with scikit-learn / krippendorff, so every number
the dashboard shows can be checked against the CSV it came from.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from fer_core.io import atomic_write_csv, atomic_write_json, atomic_write_text
from fer_core.labels import CLASSES, NUM_CLASSES

# Rough class centroids on the circumplex (valence, arousal).
VA_CENTROIDS = np.array([[0.0, 0.0], [0.7, 0.3], [-0.6, -0.3], [0.2, 0.7],
                         [-0.5, 0.7], [-0.6, 0.3], [-0.5, 0.6], [-0.3, 0.2]])
CONFUSABLE = [(3, 4), (5, 6), (7, 1), (7, 0), (0, 2)]


def _class_ids(rng, n: int) -> np.ndarray:
    weights = np.array([1.1, 1.3, 1.0, 1.0, 0.9, 0.8, 1.0, 0.7])
    return rng.choice(NUM_CLASSES, size=n, p=weights / weights.sum())


def make_predictions(ids, true, *, skill: float, has_va: bool, seed: int, path_fmt: str) -> pd.DataFrame:
    """Prediction rows with plausible softmax outputs; higher skill -> higher accuracy."""
    rng = np.random.default_rng(seed)
    n = len(true)
    logits = rng.normal(0, 1.0, (n, NUM_CLASSES))
    logits[np.arange(n), true] += skill * rng.gamma(2.0, 0.6, n)
    for a, b in CONFUSABLE:
        logits[true == a, b] += 0.8
        logits[true == b, a] += 0.8
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    df = pd.DataFrame({"id": [str(i) for i in ids], "path": [path_fmt.format(id=i) for i in ids],
                       "true": true, "pred": probs.argmax(1)})
    for k in range(NUM_CLASSES):
        df[f"prob_{k}"] = np.round(probs[:, k], 6)
    va_true = np.clip(VA_CENTROIDS[true] + rng.normal(0, 0.25, (n, 2)), -1, 1)
    va_pred = np.clip(0.4 * va_true + 0.4 * VA_CENTROIDS[df["pred"]] + rng.normal(0, 0.15, (n, 2)), -1, 1)
    df["valence_true"] = np.round(va_true[:, 0], 4) if has_va else np.nan
    df["arousal_true"] = np.round(va_true[:, 1], 4) if has_va else np.nan
    df["valence_pred"] = np.round(va_pred[:, 0], 4)
    df["arousal_pred"] = np.round(va_pred[:, 1], 4)
    return df


def _ccc(t, p) -> float:
    mt, mp = t.mean(), p.mean()
    return float(2 * np.mean((t - mt) * (p - mp)) / (t.var() + p.var() + (mt - mp) ** 2))


def _va_metrics(t, p) -> dict:
    return {"rmse": float(np.sqrt(np.mean((t - p) ** 2))), "mae": float(np.mean(np.abs(t - p))),
            "r2": float(skm.r2_score(t, p)), "pearson": float(np.corrcoef(t, p)[0, 1]),
            "sagr": float(np.mean(np.sign(t) == np.sign(p))), "ccc": _ccc(t, p)}


def compute_metrics(df: pd.DataFrame, *, split: str, data_root: str, n_boot: int = 100, seed: int = 0) -> dict:
    y, yhat = df["true"].to_numpy(), df["pred"].to_numpy()
    probs = df[[f"prob_{k}" for k in range(NUM_CLASSES)]].to_numpy()
    labels = list(range(NUM_CLASSES))
    p, r, f, s = skm.precision_recall_fscore_support(y, yhat, labels=labels, zero_division=0)
    per_class = {}
    for k, name in enumerate(CLASSES):
        present = (y == k).any()
        per_class[name] = {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k]),
                           "roc_auc": float(skm.roc_auc_score(y == k, probs[:, k])) if present else None,
                           "pr_auc": float(skm.average_precision_score(y == k, probs[:, k])) if present else None}
    has_va = df["valence_true"].notna().all()
    out = {
        "split": split, "n": int(len(df)), "data_root": data_root, "checkpoint": "best.pt", "tta": False,
        "accuracy": float(skm.accuracy_score(y, yhat)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, yhat)),
        "macro_f1": float(skm.f1_score(y, yhat, average="macro")),
        "weighted_f1": float(skm.f1_score(y, yhat, average="weighted")),
        "cohen_kappa": float(skm.cohen_kappa_score(y, yhat)),
        "krippendorff_alpha": float(krippendorff.alpha(reliability_data=np.vstack([y, yhat]),
                                                       level_of_measurement="nominal")),
        "roc_auc_macro": float(np.mean([c["roc_auc"] for c in per_class.values() if c["roc_auc"] is not None])),
        "pr_auc_macro": float(np.mean([c["pr_auc"] for c in per_class.values() if c["pr_auc"] is not None])),
        "per_class": per_class,
        "confusion": skm.confusion_matrix(y, yhat, labels=labels).tolist(),
        "valence": _va_metrics(df["valence_true"].to_numpy(), df["valence_pred"].to_numpy()) if has_va else None,
        "arousal": _va_metrics(df["arousal_true"].to_numpy(), df["arousal_pred"].to_numpy()) if has_va else None,
    }
    # Percentile bootstrap, as the engine does (fewer resamples here to keep fixtures quick).
    rng = np.random.default_rng(seed)
    boots: dict[str, list] = {"accuracy": [], "macro_f1": []}
    if has_va:
        boots.update({"valence_rmse": [], "arousal_rmse": [], "valence_ccc": [], "arousal_ccc": []})
    for _ in range(n_boot):
        i = rng.integers(0, len(df), len(df))
        boots["accuracy"].append(np.mean(y[i] == yhat[i]))
        boots["macro_f1"].append(skm.f1_score(y[i], yhat[i], average="macro"))
        if has_va:
            for dim in ("valence", "arousal"):
                t, q = df[f"{dim}_true"].to_numpy()[i], df[f"{dim}_pred"].to_numpy()[i]
                boots[f"{dim}_rmse"].append(np.sqrt(np.mean((t - q) ** 2)))
                boots[f"{dim}_ccc"].append(_ccc(t, q))
    out["ci95"] = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in boots.items()}
    return out


def make_history(epochs: int, *, skill: float, has_va: bool, seed: int) -> pd.DataFrame:
    """Per-epoch rows with decaying loss and saturating accuracy, plus a little noise."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    top = min(0.45 + 0.12 * skill, 0.9)
    train_acc = np.clip(top + 0.15 - 0.5 * np.exp(-e / 3) + rng.normal(0, 0.005, epochs), 0, 1)
    val_acc = np.clip(top - 0.45 * np.exp(-e / 3) + rng.normal(0, 0.01, epochs), 0, 1)
    rows = {"epoch": e, "train_loss": 0.7 + 1.5 * np.exp(-e / 4) + rng.normal(0, 0.02, epochs),
            "train_acc": train_acc, "val_loss": 0.9 + 1.3 * np.exp(-e / 4) + 0.01 * e + rng.normal(0, 0.03, epochs),
            "val_acc": val_acc}
    for dim in ("valence", "arousal"):
        rows[f"val_{dim}_rmse"] = 0.35 + 0.25 * np.exp(-e / 3) + rng.normal(0, 0.005, epochs) if has_va else np.nan
        rows[f"val_{dim}_ccc"] = 0.6 - 0.5 * np.exp(-e / 3) + rng.normal(0, 0.01, epochs) if has_va else np.nan
    df = pd.DataFrame(rows)
    ccc = (df["val_valence_ccc"] + df["val_arousal_ccc"]) / 2
    df["val_score"] = (df["val_acc"] + ccc) / 2 if has_va else df["val_acc"]
    df["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * (e - 1) / epochs))
    df["seconds"] = rng.normal(60, 3, epochs).round(1)
    return df.round(5)


def write_images(data_root: Path, paths, true, limit: int | None = None) -> None:
    """Small PNG stand-ins for face crops (a shaded disc whose hue follows the class)."""
    from PIL import Image, ImageDraw

    for rel, t in list(zip(paths, true))[:limit]:
        target = data_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (64, 64), (235, 235, 235))
        hue = int(t) * 30
        ImageDraw.Draw(img).ellipse((8, 6, 56, 60), fill=(200 - hue // 2, 120 + hue // 3, 90 + hue // 2))
        img.save(target)


def write_run(runs_dir, name: str, *, n: int = 400, skill: float = 1.5, has_va: bool = True,
              layout: str = "affectnet", backbone: str = "resnet18", epochs: int = 10,
              splits=("val", "test"), data_root=None, seed: int = 0, split_seed: int = 0,
              images: int | None = 0, n_boot: int = 100, created: datetime | None = None) -> Path:
    """One complete, finished run folder. ``split_seed`` fixes which ids land in each split, so runs
    sharing it are evaluated on the same samples (as after --split-from). Returns the folder."""
    folder = Path(runs_dir) / name
    data_root = Path(data_root) if data_root else folder.parent / "_data"
    path_fmt = "images/{id}.jpg" if layout == "affectnet" else "FER2013Test/fer{id}.png"
    created = created or datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=seed)
    split_rng = np.random.default_rng(split_seed)
    all_ids = split_rng.choice(max(5496, n * len(splits) * 2), size=n * len(splits), replace=False)
    split_rows, counts = [], {}
    for j, split in enumerate(splits):
        ids = all_ids[j * n:(j + 1) * n]
        if layout != "affectnet":
            ids = [f"{i:07d}" for i in ids]
        true = _class_ids(np.random.default_rng(split_seed + 100 + j), n)
        df = make_predictions(ids, true, skill=skill, has_va=has_va, seed=seed * 10 + j, path_fmt=path_fmt)
        if layout != "affectnet":
            df["id"] = "Test/fer" + df["id"]
        atomic_write_csv(folder / f"predictions_{split}.csv", df)
        atomic_write_json(folder / f"metrics_{split}.json",
                          compute_metrics(df, split=split, data_root=str(data_root), n_boot=n_boot, seed=0))
        split_rows.append(df[["id", "path"]].assign(split=split))
        counts[split] = n
        if images is None or images > 0:
            write_images(data_root, df["path"], df["true"], limit=images)
    atomic_write_csv(folder / "split.csv", pd.concat(split_rows))
    history = make_history(epochs, skill=skill, has_va=has_va, seed=seed)
    atomic_write_csv(folder / "history.csv", history)
    best = int(history["val_score"].idxmax())
    config = {
        "schema_version": 1, "name": name, "created": created.isoformat(), "backbone": backbone, "img_size": 112,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "classes": CLASSES,
        "weights": {"requested": "none", "loaded": "none (random init)"},
        "data": {"root": str(data_root), "layout": layout, "has_va": has_va, "n_samples": n * len(splits),
                 "skipped": {}},
        "split": {"seed": split_seed, "val_frac": 0.1, "test_frac": 0.1, "source": "stratified", "counts": counts},
        "args": {"epochs": epochs, "backbone": backbone, "seed": seed}, "preset": None, "device": "cpu",
        "hardware": "synthetic fixture", "status": "finished",
        "best": {"epoch": best + 1, "metric": "val_score", "value": float(history["val_score"][best])},
        "train_minutes": float(history["seconds"].sum() / 60),
    }
    atomic_write_json(folder / "config.json", config)
    atomic_write_text(folder / "train.log", f"synthetic fixture run {name}\n")
    return folder


def write_cv_folds(run: Path, out_dir: Path, prefix: str, first_stage: Path) -> list[Path]:
    """run's test predictions cut into the two folds of a 2-fold cross-validation, each started from first_stage's
    checkpoint (as the folds after one FER+ stage are), with their metrics and run's history (fold 2's val_acc 0.1
    higher)."""
    whole = pd.read_csv(Path(run) / "predictions_test.csv", dtype={"id": str})
    cfg = json.loads((Path(run) / "config.json").read_text())
    folders = []
    half = len(whole) // 2
    for k, part in enumerate((whole.iloc[:half], whole.iloc[half:]), start=1):
        folder = Path(out_dir) / f"{prefix}-fold{k}"
        folder.mkdir(parents=True)
        # each fold trained on twice as many images as it tests (its own share of a larger training set)
        split = {**cfg["split"], "source": "fold", "fold": k, "folds": 2,
                 "counts": {"train": 2 * len(part), "val": 0, "test": len(part)}}
        weights = {"requested": str(first_stage / "checkpoints" / "best.pt"), "loaded": "run (best.pt)"}
        atomic_write_json(folder / "config.json", {**cfg, "name": folder.name, "split": split, "weights": weights,
                                                   "train_minutes": 2.0 + k})
        atomic_write_csv(folder / "predictions_test.csv", part)
        atomic_write_json(folder / "metrics_test.json", compute_metrics(part.reset_index(drop=True), split="test",
                                                                        data_root=cfg["data"]["root"], n_boot=5))
        history = pd.read_csv(Path(run) / "history.csv")
        atomic_write_csv(folder / "history.csv", history.assign(val_acc=history["val_acc"] + 0.1 * (k - 1)))
        folders.append(folder)
    return folders


def make_fixture_runs(runs_dir, *, n: int = 300, data_root=None, images: int | None = None,
                      n_boot: int = 100, splits=("val", "test")) -> list[Path]:
    """Four runs: three on AffectNet-like data (same split, different skill) and one FER+-like run without
    valence/arousal. ``images`` limits how many image files are written per split (None = all, 0 = none)."""
    runs_dir = Path(runs_dir)
    data_root = Path(data_root) if data_root else runs_dir.parent / "data"
    specs = [("resnet50-affectnet", "resnet50", 2.2, True, "affectnet"),
             ("effb0-affectnet", "efficientnet_b0", 1.8, True, "affectnet"),
             ("mnv3-affectnet", "mobilenet_v3_large", 1.3, True, "affectnet"),
             ("resnet18-ferplus", "resnet18", 2.6, False, "ferplus")]
    return [write_run(runs_dir, name, n=n, skill=skill, has_va=va, layout=layout, backbone=bb, seed=i + 1,
                      data_root=data_root, images=images, n_boot=n_boot, epochs=8 + 2 * i, splits=splits)
            for i, (name, bb, skill, va, layout) in enumerate(specs)]


def write_broken_runs(runs_dir) -> dict[str, str]:
    """Folders that break the contract in different ways; returns folder name -> words the reason contains."""
    runs_dir = Path(runs_dir)
    (runs_dir / "bad-json").mkdir(parents=True, exist_ok=True)
    (runs_dir / "bad-json" / "config.json").write_text('{"schema_version": 1, "name": ')
    future = runs_dir / "future-schema"
    future.mkdir(parents=True, exist_ok=True)
    (future / "config.json").write_text(json.dumps({"schema_version": 99, "name": "future-schema",
                                                    "classes": CLASSES}))
    cols = runs_dir / "missing-columns"
    cols.mkdir(parents=True, exist_ok=True)
    (cols / "config.json").write_text(json.dumps({"schema_version": 1, "name": "missing-columns", "classes": CLASSES}))
    (cols / "history.csv").write_text("epoch,train_loss\n1,2.0\n")
    first_epoch = runs_dir / "first-epoch"  # what training has written before its first epoch ends
    first_epoch.mkdir(parents=True, exist_ok=True)
    (first_epoch / "train.log").write_text("decoded 100 images\n")
    (first_epoch / "split.csv").write_text("id,path,split\n")
    evaluation = runs_dir / "old-evaluation"  # an early evaluate --out wrote predictions and metrics alone
    evaluation.mkdir(parents=True, exist_ok=True)
    (evaluation / "predictions_test.csv").write_text("id,path,true,pred\n")
    for name, edit in (("data-null", {"data": None}), ("best-value-null", {"best": {"epoch": 3, "value": None}}),
                       ("backbone-list", {"backbone": []})):
        (runs_dir / name).mkdir(parents=True, exist_ok=True)  # fields edited by hand
        (runs_dir / name / "config.json").write_text(json.dumps({"schema_version": 1, "name": name, "classes": CLASSES,
                                                                 **edit}))
    odd = os.fsencode(runs_dir) + b"/bad-\xff-name"  # unpacked from a zip made elsewhere: not UTF-8
    os.makedirs(odd, exist_ok=True)
    with open(odd + b"/config.json", "w") as f:
        f.write(json.dumps({"schema_version": 1, "name": "odd", "classes": CLASSES}))
    return {"bad-json": "not valid JSON", "future-schema": "unsupported schema_version",
            "missing-columns": "lacks columns", "first-epoch": "training in its first epoch",
            "old-evaluation": "predictions without a config.json",
            "data-null": "config.json: data is not an object (null)",
            "best-value-null": "config.json: best.value is not a number (null)",
            "backbone-list": "config.json: backbone is not text ([])",
            "bad-\ufffd-name": "its name is not valid UTF-8"}


if __name__ == "__main__":  # python -m tests.fixture_runs /tmp/demo-runs  (for looking at the app by hand)
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fer-lab-demo/runs")
    print("\n".join(str(p) for p in make_fixture_runs(target, n=int(sys.argv[2]) if len(sys.argv) > 2 else 400)))
