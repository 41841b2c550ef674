"""Accuracy by subgroup: does a model fail more on dark, blurred, greyscale or turned faces, on images the annotators
disagreed on, or on a group a user names (a manifest's gender, age or camera column)?

Each image gets a value of a property; numbers are cut into equal-count bins (about equal where values tie), words
kept as groups. Per run and group: accuracy with its Wilson 95% interval, and the accuracy expected from the group's
mix of classes alone (the run's recall of each class over the images with a value, weighted by how many of each the
group holds): a group of mostly Happy faces scores high whatever its light. One p-value per run asks whether accuracy
differs between the groups beyond what their class mix explains (a permutation test within classes). Instead of
accuracy, the same for how often a run calls one class the faces labelled otherwise (its false alarms).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .labels import CLASSES
from .metrics import proportion_ci
from .report import legend_below, legend_label, plot_text, run_colors
from .report_errors import natural_sorted

# property -> what it measures, as the page explains it
IMAGE_PROPERTIES = {
    "brightness": "the image's mean grey level (0 black, 255 white)",
    "contrast": "the spread (standard deviation) of its grey levels",
    "sharpness": "log10 of the variance of its Laplacian: low means blurred or upscaled from a small original",
    "colour": "greyscale when its mean saturation is under 10 of 255, else colour",
    "image size": "its shorter side in pixels",
}
FACE_PROPERTIES = {
    "head roll": "how far the line between the eyes tilts from level, in degrees (from the 68 landmarks)",
    "head turn": "how far the nose sits from the middle of the jaw line, 0 frontal, 1 or more the nose at or beyond "
                 "the jaw's edge (from the 68 landmarks, after levelling the eyes)",
}
AGREEMENT = "annotator agreement"  # FER+: the share of its annotators' votes the top class got
COPIES = "near-copy in training"
DESCRIPTIONS = {**IMAGE_PROPERTIES, **FACE_PROPERTIES,
                AGREEMENT: "the share of the ten FER+ annotators' votes that went to the image's top class",
                COPIES: "whether the image is a near-copy of one of the run's training images (the same photo, "
                        "perhaps re-encoded, resized, recoloured or mirrored; the training images its split.csv "
                        "names, not an earlier stage's)"}
GREY_SATURATION = 10  # mean HSV saturation under which an image is greyscale (JPEG noise tints a grey one to ~5)
MAX_GROUPS = 12  # named groups drawn; the smallest beyond these are pooled as POOLED
MIN_GROUP = 20  # images a named group needs to be drawn on its own: an accuracy of fewer swings by ±20 points
POOLED = "(smaller groups)"  # the groups under MIN_GROUP images, or beyond MAX_GROUPS, together


def _image_stats(path: Path) -> tuple[float, ...]:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # greyscale files come back as three equal channels
    if image is None:
        return (math.nan,) * len(IMAGE_PROPERTIES)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1].mean()
    sharpness = cv2.Laplacian(grey, cv2.CV_64F).var()
    return (float(grey.mean()), float(grey.std()), math.log10(sharpness) if sharpness > 0 else math.nan,
            float(saturation), float(min(grey.shape)))


def image_properties(paths: dict[str, Path | None]) -> pd.DataFrame:
    """IMAGE_PROPERTIES of each image (id -> its file; None or an unreadable file gives NaNs), indexed by id; colour
    as the words "greyscale" / "colour"."""
    ids = list(paths)
    with ThreadPoolExecutor(max_workers=4) as pool:  # cv2 decodes outside the GIL
        stats = list(pool.map(lambda i: _image_stats(paths[i]) if paths[i] else (math.nan,) * 5, ids))
    table = pd.DataFrame(stats, index=pd.Index(ids, name="id"), columns=list(IMAGE_PROPERTIES))
    table["colour"] = np.where(table["colour"].isna(), None,
                               np.where(table["colour"] < GREY_SATURATION, "greyscale", "colour"))
    return table


def head_pose(points: np.ndarray) -> tuple[float, float]:
    """(roll in degrees, turn) of a face from its 68 landmarks (iBUG order, x and y in any one scale), both as
    absolute values: roll, the eye line's tilt; turn, (a - b) / (a + b) where a and b are the nose tip's distances to
    the jaw's two ends along the levelled eye line."""
    eyes = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    dx, dy = eyes[1] - eyes[0]
    roll = math.atan2(dy, dx)
    c, s = math.cos(-roll), math.sin(-roll)
    x = points[:, 0] * c - points[:, 1] * s  # x along the levelled eye line
    a, b = x[30] - x[0], x[16] - x[30]
    return abs(math.degrees(roll)), (abs(a - b) / (a + b) if a + b > 0 else math.nan)


def landmark_properties(root: Path, ids) -> pd.DataFrame:
    """FACE_PROPERTIES from the ``annotations/<id>_lnd.npy`` files of the AffectNet data at ``root``, indexed by id;
    NaN where a file is missing or not 68 points."""
    from .data import affectnet_annotation

    def one(i: str) -> tuple[float, float]:
        try:
            points = np.load(affectnet_annotation(root, i, "lnd"), allow_pickle=False).astype(float).reshape(-1)
        except (OSError, ValueError):
            return math.nan, math.nan
        return head_pose(points.reshape(68, 2)) if points.size == 136 and np.isfinite(points).all() else \
            (math.nan, math.nan)

    ids = list(ids)
    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(one, ids))
    return pd.DataFrame(rows, index=pd.Index(ids, name="id"), columns=list(FACE_PROPERTIES))


def agreement(votes: pd.DataFrame) -> pd.Series:
    """The share of each image's votes that went to its top expression class (FER+: 0.3 to 1.0)."""
    counts = votes[CLASSES].to_numpy(float)
    total = votes.to_numpy(float).sum(axis=1)  # "unknown" and "not a face" votes count against agreement too
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.Series(counts.max(axis=1) / total, index=votes.index, name=AGREEMENT)


def training_files(run: str | Path, moved_to: str | Path | None = None) -> list[Path]:
    """The training images a run's split.csv names, under the data root its config.json names, or ``moved_to``
    where that is not on this machine; none where the split is missing or a tenth of the images are not there."""
    import json

    from .evaluate import training_paths

    try:
        root = (json.loads((Path(run) / "config.json").read_text(encoding="utf-8")).get("data") or {}).get("root")
        root = root if root and Path(root).exists() else moved_to
        files = training_paths(run, root) if root and Path(root).exists() else []
    except (OSError, ValueError, KeyError, AttributeError):
        return []
    there = [f for f in files if f.is_file()]
    return there if len(there) >= 0.9 * len(files) else []  # other data under that root: no answer, not a wrong one


def copies_in_training(files: dict[str, Path | None], train: list[Path]) -> pd.Series:
    """COPIES per id of the images (id -> its file, None where missing): whether each is a near-copy of a ``train``
    file (duplicates.py)."""
    from .duplicates import file_fingerprints, near_copies

    have = [i for i, f in files.items() if f]
    held, bad = file_fingerprints([files[i] for i in have], progress=False)
    found = set(near_copies(held, _training_prints(tuple(train)))["a"])
    values = pd.Series(None, index=pd.Index(list(files), name="id"), dtype=object, name=COPIES)
    values[have] = ["copies a training image" if k in found else "no copy in training" for k in range(len(have))]
    values[[have[k] for k in bad]] = None
    return values


@lru_cache(maxsize=2)
def _training_prints(train: tuple) -> np.ndarray:  # runs of one split share them: FER+'s 27k take 15 s
    from .duplicates import file_fingerprints

    return file_fingerprints(train, progress=False)[0]


def properties(pred: pd.DataFrame, root: str | Path | None, layout: str | None, data: str | Path | None = None,
               train: list[Path] | tuple = ()) -> dict[str, pd.Series]:
    """Every property at hand for a predictions table's images, property -> value per id: IMAGE_PROPERTIES where
    ``root`` (the folder its paths are relative to) holds the images; FACE_PROPERTIES for AffectNet data with its
    landmark files; AGREEMENT for FER+ data with its label.csv files; COPIES where ``train`` lists the run's training
    images (training_files); the other columns of a CSV manifest (``data``, the manifest or its folder)."""
    from .data import DataError, affectnet_parts, ferplus_votes, read_dataset
    from .runs import safe_image_path

    ids, out = pred["id"].astype(str), {}
    if root:
        files = {i: safe_image_path(root, p) for i, p in zip(ids, pred["path"])}
        if any(files.values()):
            out.update(image_properties(files).items())
        if layout == "affectnet" and affectnet_parts(root):
            out.update(landmark_properties(Path(root), ids).items())
        if layout == "ferplus" and not (votes := ferplus_votes(root)).empty:
            out[AGREEMENT] = agreement(votes).reindex(ids)
        if train and any(files.values()):
            out[COPIES] = copies_in_training(files, list(train))
    if layout == "csv":
        for manifest in (data, root):  # the manifest the run names, else the one in the images' folder
            if not (manifest and Path(manifest).exists()):
                continue
            try:
                table = read_dataset(manifest, "csv").properties
            except DataError:
                continue
            out.update({c: cleaned(table[c].reindex(ids)) for c in table} if table is not None else {})  # its rows
            break
    return out


def cleaned(values: pd.Series) -> pd.Series:
    """A column of text as a property: NA, #N/A, null and blanks as no value; decimal commas ("18,5" from a
    spreadsheet saved in some locales) as points where that makes more of the values numbers."""
    from .data import MISSING_WORDS

    v = values.astype(str).str.strip().where(values.notna())
    v = v.where(~v.str.lower().isin(MISSING_WORDS | {"", "-", "?"}))
    swapped = v.str.replace(",", ".", regex=False)
    more = pd.to_numeric(swapped, errors="coerce").count() > pd.to_numeric(v, errors="coerce").count()
    return swapped if more else v


def groups_file(table: pd.DataFrame, pred: pd.DataFrame, root: str | Path | None, name: str) -> dict[str, pd.Series]:
    """A groups table (tables.read_table: an id or path column, then one column per property) as property -> value
    per id of the predictions' images; tables.TableError where it names none of them."""
    from .tables import KEYS, match_rows

    table = table.drop_duplicates()  # a row saved twice is one image's
    rows, _ = match_rows(table, pred["id"].astype(str).tolist(), pred["path"].astype(str).tolist(),
                         Path(root) if root else None, name)
    ids = pred["id"].astype(str).to_numpy()
    keyed = table.assign(id=[ids[r] if r >= 0 else None for r in rows]).dropna(subset=["id"]).set_index("id")
    return {c: cleaned(keyed[c]) for c in table.columns if c not in KEYS}


def _decimals(edges) -> int:
    """Decimals that tell the closest two bin edges apart (0 for edges 20, 92, 112; 3 for 0.058, 0.132)."""
    gap = np.diff(edges).min()
    return int(min(4, max(0, 1 - math.floor(math.log10(gap))))) if gap > 0 else 0


def groups_of(values: pd.Series, n_bins: int = 5) -> tuple[pd.Series, list[str], bool]:
    """(each image's group as text, the groups in order, whether they are ordered: numbers). Numbers of more than
    MAX_GROUPS values (all but a few values of the column) are cut into ``n_bins`` equal-count bins, "0.2–0.5" (fewer
    where that would leave a bin under MIN_GROUP images, two at least);
    other values are groups as they are, numbers in their order and words in natural order, the smallest beyond
    MAX_GROUPS or under MIN_GROUP images pooled as POOLED, last. Missing values get no group (NaN)."""
    index, values = values.index, values.reset_index(drop=True)
    present = values.dropna()
    present = present[present.astype(str).str.strip() != ""]
    numbers = pd.to_numeric(present, errors="coerce")
    if len(present) and numbers.notna().mean() >= 0.95 and numbers.nunique() > MAX_GROUPS:
        numbers = numbers.dropna()
        n_bins = max(2, min(n_bins, len(numbers) // MIN_GROUP))  # bins of MIN_GROUP images or more, as groups
        edges = np.unique(np.quantile(numbers, np.linspace(0, 1, n_bins + 1)))
        if len(edges) > 2:
            bins, d = pd.cut(numbers, edges, include_lowest=True), _decimals(edges)
            labels = [f"{edges[i]:.{d}f}–{edges[i + 1]:.{d}f}" for i in range(len(edges) - 1)]
            if len(set(labels)) < len(labels):  # edges far apart in scale (4e-5 and 0.5): as many digits as needed
                labels = [f"{edges[i]:.4g}–{edges[i + 1]:.4g}" for i in range(len(edges) - 1)]
            named = bins.cat.rename_categories(labels).astype(object)
            return named.reindex(values.index).set_axis(index), labels, True
    text = present.map(lambda x: f"{x:.15g}" if isinstance(x, float) else str(x).strip())  # 224.0 -> "224"
    sizes = text.value_counts()
    named = [g for g in sizes.index[:MAX_GROUPS - 1 if len(sizes) > MAX_GROUPS else MAX_GROUPS]
             if sizes[g] >= MIN_GROUP]
    numeric = pd.to_numeric(pd.Series(named, dtype=object), errors="coerce")
    numbered = bool(named) and numeric.notna().all()  # 0.3, 0.4 ... 1 (FER+ agreement), 48 and 224 px: in order
    order = [named[i] for i in np.argsort(numeric.to_numpy(), kind="stable")] if numbered else natural_sorted(named)
    groups = text.where(text.isin(named), POOLED)
    return groups.reindex(values.index).set_axis(index), order + [POOLED] * (len(named) < len(sizes)), numbered


def has_groups(values: dict[str, pd.Series], n_bins: int = 5) -> bool:
    """Whether a property (its values per run) splits the runs' images, each counted once, into two groups or more:
    every image 224 px, or all from one camera, has nothing to compare."""
    every = pd.concat(values.values()) if values else pd.Series(dtype=object)
    return groups_of(every[~every.index.duplicated()], n_bins)[0].nunique() >= 2


def crossed(first: dict[str, pd.Series], second: dict[str, pd.Series], n_bins: int = 5) -> dict[str, pd.Series]:
    """Each image's pair of groups, "f · 20–92", per run that has both properties: the groups of each (groups_of,
    over all runs' images together, each counted once); an image without a group in either has none. Intersections
    (gender by age) whose pairs are then groups as words are: the small ones pooled."""
    def groups(values: dict[str, pd.Series]) -> pd.Series:
        every = pd.concat(values.values())
        return groups_of(every[~every.index.duplicated()], n_bins)[0]

    a, b = groups(first), groups(second)
    out = {}
    for run in (r for r in first if r in second):
        ids = first[run].index
        one, other = a.reindex(ids), b.reindex(ids)
        out[run] = (one + " · " + other).where(one.notna() & other.notna())
    return out


def class_adjusted_p(true, right, group, n_perm: int = 2000, seed: int = 0) -> float:
    """Permutation p-value for "accuracy differs between the groups more than their mixes of classes explain".

    Statistic: the sum over groups of (right_g - expected_g)² / n_g, where expected_g sums the run's recall of each
    image's class. Under the null, within each true class, which group an image is in has nothing to do with whether
    the model was right: group labels shuffled within a class (which keeps every expected_g) spread its right answers
    over the groups as a multivariate hypergeometric draw, drawn here directly, class by class."""
    true, right = np.asarray(true), np.asarray(right, bool)
    codes, uniques = pd.factorize(np.asarray(group, dtype=object))
    k = len(uniques)
    if k < 2:
        return math.nan
    n = np.bincount(codes, minlength=k)
    rng = np.random.default_rng(seed)
    observed, shuffled, expected = np.zeros(k), np.zeros((n_perm, k)), np.zeros(k)
    for c in np.unique(true):
        in_c = true == c
        sizes = np.bincount(codes[in_c], minlength=k)  # the class's images in each group
        hits = int(right[in_c].sum())
        observed += np.bincount(codes[in_c], weights=right[in_c], minlength=k)
        expected += sizes * hits / in_c.sum()
        shuffled += rng.multivariate_hypergeometric(sizes, hits, size=n_perm)

    def statistic(right_per_group: np.ndarray) -> np.ndarray:
        return (((right_per_group - expected) ** 2) / n).sum(axis=-1)

    at_least = int((statistic(shuffled) >= statistic(observed) - 1e-9).sum())
    return (1 + at_least) / (1 + n_perm)


@dataclass
class Subgroups:
    """subgroup_table's answer."""
    table: pd.DataFrame  # a row per run and group: n, right, accuracy, lo, hi (Wilson 95%), expected
    p_values: dict[str, float]  # per run: class_adjusted_p
    ordered: bool  # groups are bins of a number, or numbers: drawn as lines
    groups: pd.Series  # each image's group, by id
    left_out: dict[str, int]  # per run: images without a value of the property
    same_images: bool  # every run scored the same images (else the bins are cut over all of them together)
    measure: str = "accuracy"  # what "accuracy" and "right" count: "accuracy", or "called Anger" (false alarms)


def subgroup_table(preds: dict[str, pd.DataFrame], values: dict[str, pd.Series], n_bins: int = 5,
                   called: int | None = None) -> Subgroups:
    """Per run and group: images, accuracy with its Wilson 95% interval, and the accuracy expected from the group's
    class mix (the run's recall of each class over the images with a value, weighted by the group's classes); each
    run's class_adjusted_p. ``values`` holds each run's property per id; groups are cut over the images of all runs
    together (each image counted once), so every run has the same bins. With ``called`` (a class), the same for how
    often the run calls that class an image labelled otherwise (its false alarms: a model that sees anger in one
    group's neutral faces more than in another's), against how often it does so for each class over all images."""
    parts, left_out = [], {}
    for run, pred in preds.items():
        if (v := values.get(run)) is None:
            continue
        if called is not None:  # the images labelled otherwise
            pred = pred[pred["true"] != called]
        ids = pred["id"].astype(str)
        value = v.set_axis(v.index.astype(str)).reindex(ids).to_numpy()
        hit = pred["pred"] == (pred["true"] if called is None else called)  # right, or called that class
        parts.append(pd.DataFrame({"run": run, "id": ids.to_numpy(), "value": value, "true": pred["true"].to_numpy(),
                                   "right": hit.to_numpy()}))
    rows = pd.concat(parts, ignore_index=True) if parts else \
        pd.DataFrame(columns=["run", "id", "value", "true", "right"])
    images = rows.drop_duplicates("id")
    group, order, ordered = groups_of(images["value"].set_axis(images["id"]), n_bins)
    rows["group"] = rows["id"].map(group)
    out, p_values = [], {}
    for run, r in rows.groupby("run", sort=False):
        left_out[run] = int(r["group"].isna().sum())
        r = r.dropna(subset=["group"])
        recall = r.groupby("true")["right"].mean()
        p_values[run] = class_adjusted_p(r["true"].astype(int), r["right"], r["group"])
        for g, in_group in r.groupby("group", sort=False):
            acc, lo, hi = proportion_ci(k := int(in_group["right"].sum()), len(in_group))
            out.append({"run": run, "group": g, "n": len(in_group), "right": k, "accuracy": acc, "lo": lo, "hi": hi,
                        "expected": float(recall.reindex(in_group["true"]).mean())})
    runs = {run: i for i, run in enumerate(preds)}
    table = pd.DataFrame(out, columns=["run", "group", "n", "right", "accuracy", "lo", "hi", "expected"])
    table = table.sort_values(["run", "group"], key=lambda c: c.map(runs if c.name == "run" else order.index),
                              ignore_index=True)
    same = len({frozenset(r["id"]) for _, r in rows.groupby("run")}) <= 1
    measure = "accuracy" if called is None else f"called {CLASSES[called]}"
    return Subgroups(table, p_values, ordered, group.dropna(), left_out, same, measure)


def subgroup_figure(result: Subgroups, property_name: str, colors: dict[str, str] | None = None) -> go.Figure:
    """Accuracy per group with Wilson 95% intervals, one colour per run; a hollow diamond (dotted line) marks what
    the group's class mix alone would give. The y axis spans the intervals, not 0 to 100%: these are points, whose
    distance from each other is what is read."""
    table, mode = result.table, "lines+markers" if result.ordered else "markers"
    colors = run_colors(list(dict.fromkeys(table["run"])), colors)
    fig = go.Figure()
    for run, t in table.groupby("run", sort=False):
        label = legend_label(run)
        fig.add_trace(go.Scatter(
            x=t["group"], y=t["accuracy"], mode=mode, name=label, legendgroup=run, line=dict(color=colors[run]),
            marker=dict(size=9), customdata=t[["n", "expected"]],
            error_y=dict(type="data", array=t["hi"] - t["accuracy"], arrayminus=t["accuracy"] - t["lo"]),
            hovertemplate="%{x}: " + result.measure + " %{y:.1%} of %{customdata[0]} images (expected from its "
                          "classes %{customdata[1]:.1%})"
                          "<extra>" + plot_text(run) + "</extra>"))
        fig.add_trace(go.Scatter(
            x=t["group"], y=t["expected"], mode=mode, name=f"{label}: expected from its classes", legendgroup=run,
            showlegend=False, line=dict(color=colors[run], dash="dot", width=1),
            marker=dict(symbol="diamond-open", size=11, color=colors[run], line_width=2),
            hovertemplate="%{x}: %{y:.1%} expected from its mix of classes<extra>" + plot_text(run) + "</extra>"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="expected from the class mix",
                             marker=dict(symbol="diamond-open", size=11, color="grey", line_width=2), hoverinfo="skip"))
    groups = list(dict.fromkeys(table["group"]))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=groups, title=plot_text(property_name))
    low, high = np.nanmin(table[["lo", "expected"]].to_numpy()), np.nanmax(table[["hi", "expected"]].to_numpy())
    fig.update_yaxes(title=result.measure, tickformat=".0%", range=[max(0, low - 0.03), min(1, high + 0.03)])
    fig.update_layout(margin_t=30, scattermode="group", scattergap=0.6, height=420)
    legend_below(fig, 300, axis_px=60)
    return fig


def _gap(accuracy: float, expected: float) -> str:
    return f"{round(100 * (accuracy - expected), 1) + 0.0:+.1f} pts"  # + 0.0: no "-0.0"


def display_table(result: Subgroups) -> pd.DataFrame:
    """The figure's numbers as text, one row per group: its images, then per run its accuracy with the interval and
    the gap to what its class mix gives in percentage points, "0.516 [0.396, 0.634] -0.4 pts"; each run's p-value
    in its column's name."""
    from .metrics import format_p

    table = result.table
    out = pd.DataFrame(index=pd.Index(list(dict.fromkeys(table["group"])), name="group"))
    counts = table.pivot(index="group", columns="run", values="n").reindex(out.index)
    same = counts.nunique(axis=1, dropna=True).le(1).all()
    if same:
        out["images"] = counts.max(axis=1).astype(int)
    for run, t in table.groupby("run", sort=False):
        p = result.p_values[run]
        t = t.set_index("group")
        out[f"{run} (p {format_p(p) if math.isfinite(p) else '–'})"] = pd.Series(
            [f"{a:.3f} [{lo:.3f}, {hi:.3f}] {_gap(a, e)}" + ("" if same else f", {int(n)} images")
             for a, lo, hi, e, n in t[["accuracy", "lo", "hi", "expected", "n"]].to_numpy()], index=t.index)
    return out.fillna("–")


def images_table(preds: dict[str, pd.DataFrame], values: dict[str, pd.Series], result: Subgroups,
                 property_name: str) -> pd.DataFrame:
    """Each image of the runs (indexed by id): its path, its value of the property, its group, its true class, then
    per run its answer and whether that was right (for a CSV)."""
    column = f"{property_name} (property)" if property_name in ("path", "group", "true") else property_name
    table, names = pd.DataFrame(columns=["path", column, "group", "true"]), dict(enumerate(CLASSES))
    for run, run_values in values.items():
        p = preds[run].set_index(preds[run]["id"].astype(str).rename("id"))
        table = table.combine_first(pd.DataFrame({
            "path": p["path"], column: run_values.reindex(p.index), "group": result.groups.reindex(p.index),
            "true": p["true"].map(names), f"{run}: answer": p["pred"].map(names),
            f"{run}: right": p["pred"] == p["true"]}))
    return table[["path", column, "group", "true", *(c for c in table if c.endswith((": answer", ": right")))]]


def numbers_table(result: Subgroups, property_name: str) -> pd.DataFrame:
    """The figure's numbers as numbers, a row per run and group (for a CSV): images, right, accuracy and its
    interval, expected from the class mix, the gap in points, and the run's p-value."""
    t = result.table.assign(gap_points=lambda d: (100 * (d["accuracy"] - d["expected"])).round(2),
                            p_class_adjusted=lambda d: d["run"].map(result.p_values))
    named = {} if result.measure == "accuracy" else {"right": result.measure, "accuracy": f"share {result.measure}"}
    return t.rename(columns={"group": property_name, "lo": "ci95_low", "hi": "ci95_high", **named})
