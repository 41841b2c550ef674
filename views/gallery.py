"""Misclassified gallery: filter, sort and page through mistakes (wrong classes, or the largest valence/arousal
errors); search ids to inspect samples."""
import re
from pathlib import Path

import numpy as np

import streamlit as st

from fer_core import report_errors as E
from fer_core.images import ImageError, load_square
from fer_core.inference import ModelNotFound, model_stamp
from fer_core.labels import CLASSES
from fer_core.report import code
from fer_core.runs import safe_image_path
from views import _shared as S

DIMS = ("valence", "arousal")
THUMB_PX = 140  # each thumbnail's width: the grid wraps as many as fit (six at 1280 px, two on a phone)
st.title("Misclassified gallery", anchor=False)
ctx = S.require_runs()
split = S.md(ctx.split)  # in Markdown: a tag from a file name, shown literally
have = S.note_missing(ctx, "predictions")
if not have:
    st.stop()
by_name = {r.name: r for r in have}


def show_image(path, root, alt: str, width=None) -> str | None:
    """Draw the image, named ``alt`` for a screen reader, if it resolves inside the data root and decodes; otherwise
    return why not: "no image" where there is none, "unreadable" (with a caption saying why) where it does not
    decode."""
    img = safe_image_path(root, path)
    if img is None:
        return "no image"
    try:
        thumb = S.thumbnail(str(img), img.stat().st_mtime_ns, 2 * THUMB_PX)  # sharp on high-density screens
    except (ImageError, OSError) as e:
        st.caption(f"Cannot show {code(path)}: {S.md(e)}")
        return "unreadable"
    st.image(thumb, width=width or "stretch", alt=alt)
    return None


def explain_sample(run, image_path, row):
    """On request, occlusion maps of the predicted and the true class, from the model behind the run's predictions
    where it is at hand."""
    model, owner = S.model_for_sample(run, str(row["id"]), ctx.all_runs)
    key = f"gallery-x-{run.name}-{row['id']}"
    if model is None:
        st.caption(f"No model of {S.md(owner)} here (no checkpoint in its folder, and the default model is another "
                   "run's):"
                   f" occlusion maps need one.")
        return
    if not st.toggle("Where it looked", key=key, help=S.OCCLUSION_HELP):
        return
    try:
        pred = S.crop_predictor(str(model), model_stamp(model))
    except (ModelNotFound, RuntimeError, ValueError, KeyError, OSError) as e:
        st.error(f"Cannot load the model of {S.md(owner)} ({code(model)}): {S.md(str(e)[:300])}")
        return
    try:
        crop = load_square(image_path, pred.img_size)
    except ImageError as e:
        st.error(f"Cannot read {code(image_path)}: {S.md(e)}")
        return
    st.caption(f"Model: {code(model)}, as it answers now (its probabilities may differ a little from the predictions "
               f"file's, e.g. after fer_core.calibrate).")
    for col, (what, k) in zip(st.columns(2), (("predicted", int(row["pred"])), ("true", int(row["true"])))):
        with col:
            st.markdown(f"**{what}: {CLASSES[k]}**")
            S.occlusion_panel(pred, crop, k)


# --- search: jump to one sample -------------------------------------------------------------
query = st.text_input("Find samples by id", key="gallery_query", placeholder="e.g. 635, 1410",
                      help="Ids separated by commas. Each: the exact id, its last part (fer0032220 finds "
                           "Test/fer0032220), or the number at its end (32220 finds it too).")
for q in [q.strip() for q in re.split(r"[,;]", query) if q.strip()]:  # several ids: "635, 1410"; an id may hold a space
    found_any = False
    for run in have:
        hits = E.find_sample(S.predictions(run, ctx.split), q)
        if hits.empty:
            continue
        found_any = True
        row = hits.iloc[0]
        root, _ = S.image_root(run, ctx.split)
        verdict = "correct" if row["true"] == row["pred"] else "wrong"
        confidence = row[f"prob_{row['pred']}"]
        st.markdown(f"**{S.md(run.name)}** · id {code(row['id'])} · true **{CLASSES[row['true']]}** → predicted "
                    f"**{CLASSES[row['pred']]}** (conf. {confidence:.2f}, {verdict})" + "".join(
                        f" · {dim} {row[f'{dim}_true']:+.2f} → {row[f'{dim}_pred']:+.2f}" for dim in DIMS
                        if np.isfinite([row[f"{dim}_true"], row[f"{dim}_pred"]]).all()))
        if (run_votes := S.votes(run, ctx.split)) is not None and str(row["id"]) in run_votes.index:
            st.caption(f"FER+ annotators' votes: {E.vote_text(run_votes.loc[str(row['id'])].to_numpy())}")
        pic, probs = st.columns([1, 3])
        with pic:
            why = show_image(row["path"], root, f"Face {row['id']}: labelled {CLASSES[row['true']]}, predicted "
                             f"{CLASSES[row['pred']]} ({confidence:.0%})", width=160)
            if why == "no image":
                st.caption(f"No image at {code(row['path'])} under {code(root)}.")
        with probs:
            st.dataframe(E.probability_table(row).style.format({"probability": "{:.3f}"}), hide_index=True,
                         width="stretch", height=320)
        if why is None:
            explain_sample(run, safe_image_path(root, row["path"]), row)
    if not found_any:
        st.warning(f"No sample with id {code(q)} in the {split} predictions of the chosen runs: it may be "
                   "in another split (the sidebar's Split), or not in this copy of the data.")
if query.strip():
    st.divider()

# --- filters ----------------------------------------------------------------------------------
# two rows, so that a run's name and the sort fit their boxes on a narrow window
c1, c5, c4 = st.columns([4, 2, 5])
c2, c3 = st.columns(2)
run_name = S.choice(c1, "Run", list(by_name), "gallery_run")
run = by_name[run_name]
votes = S.votes(run, ctx.split)  # FER+ only: how the ten annotators voted on each image
pred = S.predictions(run, ctx.split)
dims = E.annotated_dims(pred)
wanted = st.session_state.get("gallery_dim")
dim = S.choice(c5, "Mistakes in", ["expression", *dims], "gallery_dim",
               help="expression: the samples given the wrong class. valence or arousal (where the data annotates "
                    "them and the run predicts them): every sample annotated with it, right class or wrong, by how far "
                    "the prediction is from the annotation (both on -1 to 1).")
sorts = list(E.VA_SORTS) if dim in DIMS else [s for s in E.SORTS if votes is not None or s not in E.VOTE_SORTS]
sort = S.choice(c4, "Sort", sorts, "gallery_sort_va" if dim in DIMS else "gallery_sort")
seen = [CLASSES[c] for c in E.classes_seen(pred)]  # not Contempt on 7-class data and model
true_name = S.choice(c2, "True class", ["any", *seen], "gallery_true")
pred_name = S.choice(c3, "Predicted class", ["any", *seen], "gallery_pred")
classes = (None if true_name == "any" else CLASSES.index(true_name),
           None if pred_name == "any" else CLASSES.index(pred_name))
if wanted in DIMS and wanted not in dims:
    st.info(f"{S.md(run.name)} / {split} has no {wanted} both annotated and predicted (FER+ and class-folder data "
            "carry none, and some models predict none): showing its expression mistakes.")
if dim in DIMS:
    wrong = E.va_errors(pred, dim, *classes, sort)
    if wrong.empty:
        st.info(f"No sample of {S.md(run.name)} / {split} in these classes has an annotated and predicted {dim}.")
        st.stop()
    errors = E.va_error_summary(wrong)
    st.caption(f"{len(wrong):,} samples with {dim} annotated" + (" in the chosen classes" if classes != (None, None)
                                                                  else "")
               + f" (of {len(pred):,} in {S.md(run.name)} / {split}), right class or wrong; {dim} RMSE on them "
               f"{errors['rmse']:.3f}, mean error {errors['bias']:+.3f} (above 0: predicted too high on average).")
else:
    wrong = E.misclassified(pred, *classes, sort, votes)
    st.caption(f"{len(wrong):,} misclassified of {len(pred):,} samples in {S.md(run.name)} / {split}.")
    if wrong.empty:
        st.info("No misclassified samples match these filters.")
        st.stop()
if dim not in DIMS and votes is not None and (plausible := E.plausible_mistakes(wrong))[1]:
    st.caption(f"FER+ votes: on {plausible[0]:,} of these {plausible[1]:,} mistakes ({plausible[0] / plausible[1]:.0%})"
               " at least two of the annotators chose the predicted class too, so people disagreed on them as well.")

p1, p2 = st.columns([1, 4])
per_page = S.choice(p1, "Per page", [12, 24, 48], "gallery_per_page", default=1)
n_pages = -(-len(wrong) // per_page)
page = p2.number_input(f"Page (of {n_pages:,})", min_value=1, max_value=n_pages, step=1,
                       key=f"gallery_page-{run_name}-{dim}-{true_name}-{pred_name}-{sort}-{per_page}")
rows = wrong.iloc[(int(page) - 1) * per_page: int(page) * per_page]

# --- grid: only this page's images are opened -------------------------------------------------
root, source = S.image_root(run, ctx.split)
missing = 0
if dim in DIMS:
    st.caption(f"Under each image: its id, the annotated {dim}, the predicted {dim} and the error (predicted − "
               "annotated), then the true → predicted class.")
else:
    by_label = E.SORTS.get(sort, (None,))[0] == "true_prob"  # sorted by it: shown under each image too
    st.caption("Under each image: its id, the true class, the predicted class and conf., the probability the model "
               "gave its prediction" + (", then the probability it gave the true class" if by_label else "")
               + ("; then the annotators' votes." if votes is not None else "."))
grid = st.container(horizontal=True, wrap=True, gap="small")
for _, r in rows.iterrows():
    if dim in DIMS:
        alt = f"Face {r['id']}: {dim} annotated {r[f'{dim}_true']:+.2f}, predicted {r[f'{dim}_pred']:+.2f}"
        text = (f"{code(r['id'])}  \n{dim} **{r[f'{dim}_true']:+.2f}**  \npred **{r[f'{dim}_pred']:+.2f}** "
                f"({r['error']:+.2f})  \n{r['true_name']} → {r['pred_name']}")
    else:
        alt = f"Face {r['id']}: labelled {r['true_name']}, predicted {r['pred_name']} ({r['confidence']:.0%})"
        text = (f"{code(r['id'])}  \ntrue **{r['true_name']}**  \npred **{r['pred_name']}**  \n"
                f"conf. {r['confidence']:.2f}" + (f", true {r['true_prob']:.2f}" if by_label else ""))
    with grid.container(width=THUMB_PX, gap=None):
        if why := show_image(r["path"], root, alt):
            missing += why == "no image"
            st.markdown("<div style='aspect-ratio:1/1;border:1px dashed #bbb;border-radius:6px;display:flex;"
                        f"align-items:center;justify-content:center;color:#888'>{why}</div>",
                        unsafe_allow_html=True)
        st.markdown(text)
        if dim not in DIMS and votes is not None and r["votes"]:
            st.caption(f"votes: {r['votes']}")
if missing:
    st.info(f"{missing} of {len(rows)} images on this page were not found. "
            f"Looked under {code(root)} ({S.md(source)}); set **Data root for images** in the sidebar if the data "
            "lives elsewhere on this machine" + (": the data set's own folder, the one above `images/`" if root and
                                                 Path(root).name == "images" else "") + ".")

columns = ["id", *([f"{dim}_true", f"{dim}_pred", "error", "true_name", "pred_name"] if dim in DIMS else
                   ["true_name", "pred_name", "confidence", "true_prob", *(["votes", "pred_votes"] if votes is not None
                                                                           else [])]), "path"]
with st.expander("This page as a table"):
    st.dataframe(rows[columns], hide_index=True, width="stretch")
st.download_button(f"Download all {len(wrong):,} of these samples (CSV)", wrong[columns].to_csv(index=False),
                   file_name=f"{run_name}-{ctx.split}-{'mistakes' if dim not in DIMS else dim + '-errors'}.csv",
                   mime="text/csv", key="gallery_download")
