"""Accuracy by subgroup (fer_core.subgroups): the image and face measures, the grouping and the class-adjusted test."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from fer_core import subgroups as G
from fer_core.metrics import format_p
from fer_core.tables import TableError, read_table
from tests.conftest import make_affectnet_dir, pattern_image, write_ferplus


def test_image_properties_tell_dark_from_bright_blurred_from_sharp_and_grey_from_colour(tmp_path):
    face = Image.fromarray(pattern_image(1, 96, np.random.default_rng(0)))
    files = {"sharp": face, "blurred": face.filter(ImageFilter.GaussianBlur(3)),
             "grey": face.convert("L"), "dark": Image.eval(face, lambda v: v // 4)}
    for name, im in files.items():
        im.save(tmp_path / f"{name}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths = {name: tmp_path / f"{name}.png" for name in [*files, "broken"]} | {"gone": None}
    t = G.image_properties(paths)
    assert t.loc["sharp", "sharpness"] > t.loc["blurred", "sharpness"] + 0.5  # log10: over 3 times the variance
    assert t.loc["dark", "brightness"] < t.loc["sharp", "brightness"] / 3
    assert t.loc["dark", "contrast"] < t.loc["sharp", "contrast"] / 3
    assert t.loc["grey", "colour"] == "greyscale" and t.loc["sharp", "colour"] == "colour"
    assert t.loc["sharp", "image size"] == 96
    for missing in ("broken", "gone"):
        assert t.loc[missing, ["brightness", "sharpness", "colour"]].isna().all()


def _face(roll_deg: float = 0.0, nose_shift: float = 0.0) -> np.ndarray:
    """68 iBUG points of a level, frontal face (jaw 0 and 16 at x = -1 and 1, nose tip 30 at x = nose_shift), turned
    in the image plane by roll_deg."""
    pts = np.zeros((68, 2))
    pts[0], pts[16], pts[30] = (-1, 0), (1, 0), (nose_shift, 0.3)
    pts[36:42], pts[42:48] = (-0.4, -0.2), (0.4, -0.2)
    r = math.radians(roll_deg)
    return pts @ np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]]) * 50 + 112


def test_head_pose_from_landmarks(tmp_path):
    assert G.head_pose(_face()) == (0.0, 0.0)
    roll, turn = G.head_pose(_face(roll_deg=-12, nose_shift=0.5))
    assert math.isclose(roll, 12, abs_tol=1e-6) and math.isclose(turn, 0.5, abs_tol=1e-6)  # (1.5 - 0.5) / 2
    for folder in ("annotations", "val_set/annotations"):
        (tmp_path / folder).mkdir(parents=True)
    np.save(tmp_path / "annotations/7_lnd.npy", _face(20).reshape(-1))
    np.save(tmp_path / "annotations/8_lnd.npy", np.zeros(10))
    np.save(tmp_path / "val_set/annotations/7_lnd.npy", _face(5).reshape(-1))  # the full release's ids: part/id
    t = G.landmark_properties(tmp_path, ["7", "8", "9", "val_set/7"])
    assert math.isclose(t.loc["7", "head roll"], 20) and t.loc[["8", "9"]].isna().all().all()
    assert math.isclose(t.loc["val_set/7", "head roll"], 5)


def test_numbers_are_binned_at_equal_counts_words_kept_and_small_groups_pooled():
    bins, order, ordered = G.groups_of(pd.Series(np.arange(100.0), index=[f"i{k}" for k in range(100)]))
    assert ordered and bins.value_counts().tolist() == [20] * 5 and bins["i0"] == "0–20" and bins["i99"] == "79–99"
    assert order == ["0–20", "20–40", "40–59", "59–79", "79–99"]
    few, order, _ = G.groups_of(pd.Series(np.arange(45.0)), n_bins=5)  # 9 images a bin would be too few
    assert order == ["0–22", "22–44"] and few.value_counts().tolist() == [23, 22]
    words = pd.Series(["m"] * 50 + ["f"] * 40 + ["x"] * 5 + ["other"] * 20 + [""] * 3 + [None] * 2)
    groups, order, ordered = G.groups_of(words)
    assert not ordered and groups.value_counts().to_dict() == {"m": 50, "f": 40, "other": 20, G.POOLED: 5}
    assert order == ["f", "m", "other", G.POOLED]  # in natural order, the pooled small groups last
    assert groups.isna().sum() == 5  # no value, no group
    ages = pd.Series(["65+"] * 30 + ["25-34"] * 40 + ["18-24"] * 20 + ["5-17"] * 25)
    assert G.groups_of(ages)[1] == ["5-17", "18-24", "25-34", "65+"]
    sizes, order, _ = G.groups_of(pd.Series([224.0] * 30 + [48.0] * 30))
    assert set(sizes) == {"224", "48"} and order == ["48", "224"]  # numbers in their order
    scales = pd.Series(np.r_[np.linspace(0, 4e-5, 50), np.linspace(0.5, 1, 50)])  # 4 decimals would not tell apart
    assert len(set(G.groups_of(scales, n_bins=4)[1])) == 4


def _images(rng, n, effect):
    """Two groups: group b holds mostly class 1, which the model gets right more often; ``effect`` adds accuracy to
    group b within every class."""
    group = rng.choice(["a", "b"], n)
    true = np.where(group == "b", rng.choice(2, n, p=[0.2, 0.8]), rng.choice(2, n, p=[0.8, 0.2]))
    right = rng.random(n) < np.where(true == 1, 0.8, 0.4) + np.where(group == "b", effect, 0)
    return true, right, group


def test_the_class_adjusted_test_sees_through_a_class_mix_and_finds_a_real_effect():
    rng = np.random.default_rng(0)
    true, right, group = _images(rng, 2000, effect=0.0)
    raw = pd.Series(right).groupby(group).mean()
    assert raw["b"] - raw["a"] > 0.15  # group b looks far easier, only for its classes
    assert G.class_adjusted_p(true, right, group) > 0.05
    true, right, group = _images(rng, 2000, effect=0.1)
    assert G.class_adjusted_p(true, right, group) < 0.01
    assert math.isnan(G.class_adjusted_p(true, right, ["a"] * 2000))


def test_subgroup_table_gives_every_run_the_same_bins_and_what_its_class_mix_expects():
    rng = np.random.default_rng(1)
    true, right, group = _images(rng, 400, effect=0.0)
    ids = [str(k) for k in range(400)]
    pred = pd.DataFrame({"id": ids, "true": true, "pred": np.where(right, true, 1 - true)})
    values = pd.Series(np.where(group == "b", "bright", "dark"), index=ids)
    other = pred.assign(pred=pred["true"])  # always right
    result = G.subgroup_table({"m": pred, "perfect": other}, {"m": values, "perfect": values})
    table, p = result.table, result.p_values
    assert not result.ordered and list(table["run"]) == ["m", "m", "perfect", "perfect"] and result.same_images
    m = table[table["run"] == "m"].set_index("group")
    for g in ("bright", "dark"):
        in_g = values == g
        assert m.loc[g, "n"] == in_g.sum() and math.isclose(m.loc[g, "accuracy"], right[in_g.to_numpy()].mean())
        recall = pd.Series(right).groupby(true).mean()
        assert math.isclose(m.loc[g, "expected"], recall[true[in_g.to_numpy()]].mean())
        assert m.loc[g, "lo"] < m.loc[g, "accuracy"] < m.loc[g, "hi"]
    assert (table[table["run"] == "perfect"]["accuracy"] == 1).all() and p["perfect"] == 1.0
    shown = G.display_table(result)
    assert list(shown.columns) == ["images", f"m (p {format_p(p['m'])})", "perfect (p 1.000)"]
    assert shown.loc["bright", "perfect (p 1.000)"] == "1.000 [" + f"{table['lo'].iloc[2]:.3f}, 1.000] +0.0 pts"
    assert shown.loc["bright"].iloc[1].endswith(" pts")
    fig = G.subgroup_figure(result, "light")
    drawn = {t.name: list(t.y) for t in fig.data if t.showlegend is not False and t.y[0] is not None}
    assert drawn == {"m": table["accuracy"].iloc[:2].tolist(), "perfect": [1.0, 1.0]}
    assert fig.layout.yaxis.range[1] == 1  # the intervals' span, at most 100%
    numbers = G.numbers_table(result, "light")
    assert list(numbers.columns) == ["run", "light", "n", "right", "accuracy", "ci95_low", "ci95_high", "expected",
                                     "gap_points", "p_class_adjusted"]
    assert numbers["right"].sum() == right.sum() + 400


def test_each_image_counts_once_towards_a_group_and_images_without_a_value_are_counted():
    ids = [str(k) for k in range(30)]
    pred = pd.DataFrame({"id": ids, "true": [k % 2 for k in range(30)], "pred": 0})
    values = pd.Series(["a"] * 12 + ["b"] * 15 + [None] * 3, index=ids)
    # three runs of the same 30 images: group a's 12 images stay under 20 however many runs are chosen
    result = G.subgroup_table({r: pred for r in "xyz"}, {r: values for r in "xyz"})
    assert set(result.table["group"]) == {G.POOLED} and result.left_out == {"x": 3, "y": 3, "z": 3}
    other_images = pred.assign(id=[f"o{k}" for k in range(30)])
    mixed = G.subgroup_table({"x": pred, "o": other_images},
                             {"x": values, "o": values.set_axis(other_images["id"])})
    assert not mixed.same_images and set(mixed.table["group"]) == {"a", "b"}  # 24 and 30 images: two groups


def test_a_groups_file_as_a_spreadsheet_writes_it_is_matched_to_the_images(tmp_path):
    pred = pd.DataFrame({"id": ["1", "2", "3"], "path": ["images/1.jpg", "images/2.jpg", "images/3.jpg"]})
    text = "Path;Gender;Age\r\nC:\\data\\images\\1.jpg;f;31\r\nimages\\2.jpg;;40\r\nimages/9.jpg;m;22\r\n"
    table = read_table(text.encode("utf-16"), "groups.csv")
    groups = G.groups_file(table, pred, None, "groups.csv")
    assert {k: v.dropna().to_dict() for k, v in groups.items()} == {"gender": {"1": "f"},
                                                                    "age": {"1": "31", "2": "40"}}
    assert list(groups["gender"].index) == ["1", "2"]  # a blank cell: the image has no group for that column
    excel = read_table("id;age;site\r\n1.0;18,5;NA\r\n2;#N/A;b\r\n2;#N/A;b\r\n".encode("cp1252"), "x.csv")
    found = G.groups_file(excel, pred, None, "x.csv")  # 1.0 is id 1; a row saved twice is one image's
    assert found["age"].dropna().to_dict() == {"1": "18.5"} and found["site"].isna().tolist() == [True, False]
    with pytest.raises(TableError, match="groups.csv: none of its 1 rows names an image of the data by its id"):
        G.groups_file(read_table(b"id,camera\n635,A\n", "groups.csv"), pred, None, "groups.csv")
    with pytest.raises(TableError, match="groups.csv: no column names the images"):
        G.groups_file(read_table(b"image_no,camera\n1,A\n", "groups.csv"), pred, None, "groups.csv")
    with pytest.raises(TableError, match="empty.csv: not a CSV table"):
        read_table(b"", "empty.csv")
    with pytest.raises(TableError, match="x.csv: two columns are named 'age'"):
        read_table(b"id,Age,age \n1,3,4\n", "x.csv")
    (tmp_path / "é.csv").write_bytes("path,camera\nimages/Élodie.jpg,Nikon\n".encode("cp1252"))  # not UTF-8
    assert read_table(tmp_path / "é.csv").to_dict("records") == [{"path": "images/Élodie.jpg", "camera": "Nikon"}]
    for source, words in [(tmp_path, "a folder: give a CSV file"), (tmp_path / "none.csv", "no such file"),
                          (b"id,camera\n,\n", "no rows"), (b"id;camera\n635;A;\n", "its rows have more values "
                           "than the header: a value holding the separator ';' must be in double quotes, and no row "
                           "may end with one")]:
        with pytest.raises(TableError, match=f"^t.csv: {words}$"):
            read_table(source, "t.csv")


def test_properties_at_hand_for_affectnet_data_and_for_a_manifest(tmp_path):
    data = make_affectnet_dir(tmp_path / "an", n_per_class=2, size=48)
    ids = sorted(p.stem for p in (data / "images").glob("*.jpg"))[:5]
    pred = pd.DataFrame({"id": ids, "path": [f"images/{i}.jpg" for i in ids]})
    found = G.properties(pred, data, "affectnet")
    assert set(found) == {*G.IMAGE_PROPERTIES, *G.FACE_PROPERTIES}
    assert found["brightness"].notna().all() and list(found["head roll"].index) == ids
    assert G.properties(pred, None, "affectnet") == {}  # no images at hand: nothing measured
    (data / "m.csv").write_text("path,expression,camera\n" + "".join(f"images/{i}.jpg,0,{'AB'[k % 2]}\n"
                                                                   for k, i in enumerate(ids)))
    manifest = G.properties(pred.assign(id=pred["path"]), data, "csv", data / "m.csv")
    assert manifest["camera"].tolist() == ["A", "B", "A", "B", "A"] and "brightness" in manifest
    some = G.properties(pred.assign(id=pred["path"]).iloc[:2], data, "csv", data / "m.csv")
    assert some["camera"].tolist() == ["A", "B"]  # the predictions' images only, not every row of the manifest
    # the manifest the run named is gone (data moved): the one in the images' folder is read
    moved = G.properties(pred.assign(id=pred["path"]), data, "csv", tmp_path / "gone" / "m.csv")
    assert moved["camera"].tolist() == ["A", "B", "A", "B", "A"]


def test_fer_plus_annotator_agreement_is_the_top_class_share_of_all_ten_votes(tmp_path):
    #        neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, not-a-face
    votes = {"fer0.png": [10, 0, 0, 0, 0, 0, 0, 0, 0, 0], "fer1.png": [0, 4, 3, 0, 0, 0, 0, 0, 3, 0],
             "fer2.png": [0, 0, 0, 6, 0, 0, 0, 0, 0, 4]}
    root = write_ferplus(tmp_path, {"Test": list(votes.items())})
    pred = pd.DataFrame({"id": ["Test/fer0", "Test/fer1", "Test/fer2"],
                         "path": ["FER2013Test/fer0.png", "FER2013Test/fer1.png", "FER2013Test/fer2.png"]})
    found = G.properties(pred, root, "ferplus")
    assert found[G.AGREEMENT].tolist() == [1.0, 0.4, 0.6]  # unknown and not-a-face votes count against it
    assert found["colour"].tolist() == ["greyscale"] * 3


def test_false_alarms_of_a_class_per_group_against_the_class_mix():
    # 0 Neutral and 2 Sad faces in groups a and b; the model calls group b's Neutral faces Anger (6) half the time
    n = 200
    ids = [str(k) for k in range(n)]
    group = np.array(["a", "b"] * (n // 2))
    true = np.array([0, 0, 2, 2] * (n // 4))
    pred = np.where((group == "b") & (true == 0) & (np.arange(n) % 8 == 1), 6, true)
    table = pd.DataFrame({"id": ids, "true": true, "pred": pred})
    table = pd.concat([table, pd.DataFrame({"id": ["x", "y"], "true": [6, 6], "pred": [6, 0]})])  # Anger itself
    values = pd.Series(np.r_[group, ["a", "b"]], index=[*ids, "x", "y"])
    result = G.subgroup_table({"m": table}, {"m": values}, called=6)
    rows = result.table.set_index("group")
    assert result.measure == "called Anger" and rows["n"].to_dict() == {"a": 100, "b": 100}  # Anger images left out
    assert rows.loc["a", "accuracy"] == 0 and rows.loc["b", "accuracy"] == 25 / 100
    assert rows.loc["b", "expected"] == rows.loc["a", "expected"]  # the same class mix: half Neutral, half Sad
    assert result.p_values["m"] < 0.01
    assert "share called Anger" in G.numbers_table(result, "site")


def test_two_properties_crossed_give_each_image_its_pair_of_groups():
    ids = [str(k) for k in range(100)]
    gender = pd.Series(["f", "m"] * 50, index=ids)
    age = pd.Series(np.arange(100.0), index=ids).where(lambda a: a != 7)  # one image without an age
    pairs = G.crossed({"r": gender, "other": gender}, {"r": age}, n_bins=2)
    assert list(pairs) == ["r"]  # only the runs that have both
    assert pairs["r"]["0"] == "f · 0–50" and pairs["r"]["99"] == "m · 50–99" and pd.isna(pairs["r"]["7"])
    pred = pd.DataFrame({"id": ids, "true": 0, "pred": 0})
    result = G.subgroup_table({"r": pred}, pairs)
    assert sorted(result.table["group"]) == ["f · 0–50", "f · 50–99", "m · 0–50", "m · 50–99"]
    assert result.table["n"].sum() == 99 and result.left_out == {"r": 1}


def test_a_property_is_offered_only_with_two_groups_of_its_own_and_each_image_downloads_once():
    ids = [str(k) for k in range(30)]
    small = pd.Series(["a"] * 12 + ["b"] * 18, index=ids)  # two runs of the same 30 images: still under 20 each
    assert not G.has_groups({"x": small, "y": small}) and not G.has_groups({})
    assert G.has_groups({"x": pd.Series(["a"] * 20 + ["b"] * 20, index=map(str, range(40)))})
    pred = pd.DataFrame({"id": ids, "path": [f"images/{i}.jpg" for i in ids], "true": 0, "pred": [0, 1] * 15})
    values = pd.Series(["a"] * 15 + ["b"] * 15, index=ids)
    result = G.subgroup_table({"x": pred, "y": pred}, {"x": values, "y": values})
    table = G.images_table({"x": pred, "y": pred}, {"x": values, "y": values}, result, "group")
    assert len(table) == 30 and list(table.columns) == ["path", "group (property)", "group", "true", "x: answer",
                                                        "x: right", "y: answer", "y: right"]
    assert table.loc["1", "x: answer"] == "Happy" and not table.loc["1", "x: right"] and table.loc["0", "true"] == \
        "Neutral"


def test_images_that_copy_a_training_image_are_a_group_from_the_runs_split(tmp_path):
    import json

    from tests.test_duplicates import copies, photos, save

    originals = photos(8)
    paths = save(originals + copies(originals), tmp_path / "data" / "faces")
    run = tmp_path / "run"
    run.mkdir()
    # training: pictures 0-5 and picture 3's copy; the predictions: pictures 6 and 7 and the copies of 0, 1, 2
    parts = ["train"] * 6 + ["test"] * 5 + ["train"]
    pd.DataFrame({"id": range(12), "path": [f"faces/{p.name}" for p in paths], "split": parts}).to_csv(
        run / "split.csv", index=False)
    (run / "config.json").write_text(json.dumps({"data": {"root": str(tmp_path / "gone")}}))
    assert G.training_files(run) == []  # its data is not here, and no other place is given
    train = G.training_files(run, tmp_path / "data")
    assert len(train) == 7 and all(f.exists() for f in train)
    pred = pd.DataFrame({"id": ["6", "7", "8", "9", "10", "99"],
                         "path": [f"faces/{i}.jpg" for i in (6, 7, 8, 9, 10, 99)]})
    found = G.properties(pred, tmp_path / "data", "csv", None, train)[G.COPIES]
    assert found.dropna().to_dict() == {"6": "no copy in training", "7": "no copy in training",
                                        "8": "copies a training image", "9": "copies a training image",
                                        "10": "copies a training image"}
    assert found.isna().tolist() == [False] * 5 + [True]  # its file is missing: no value
    assert G.COPIES not in G.properties(pred, tmp_path / "data", "csv")  # no training images given: not measured


def test_the_class_adjusted_p_is_never_0_and_groups_that_differ_only_in_class_mix_are_not_told_apart():
    # no shuffle reaches the observed split (all right in a, all wrong in b): p is 1 / (n_perm + 1), not 0
    assert G.class_adjusted_p(np.zeros(200), [1] * 100 + [0] * 100, ["a"] * 100 + ["b"] * 100) == \
        pytest.approx(1 / 2001)
    # a: 80 of class 0 (recall 0.9) and 20 of class 1 (recall 0.3); b the reverse; each group right exactly at its
    # classes' recall: its accuracy differs (0.78 and 0.42) only through its mix of classes
    true = [0] * 80 + [1] * 20 + [0] * 20 + [1] * 80
    right = [1] * 72 + [0] * 8 + [1] * 6 + [0] * 14 + [1] * 18 + [0] * 2 + [1] * 24 + [0] * 56
    assert G.class_adjusted_p(true, right, ["a"] * 100 + ["b"] * 100) == 1.0
