"""Model disagreement: samples every chosen run gets wrong, samples only one run gets wrong, run vs run
(with a paired test of whether their difference is larger than the noise)."""
import plotly.express as px
import streamlit as st

from fer_core import report_errors as E
from fer_core import runs as R
from fer_core.metrics import format_p
from fer_core.report import plot_text
from views import _shared as S

MAX_IDS_SHOWN = 2000
st.title("Model disagreement", anchor=False)
ctx = S.require_runs()
split = S.md(ctx.split)  # in Markdown: a tag from a file name, shown literally
have = S.note_missing(ctx, "predictions")
if len(have) < 2:
    st.info("Choose at least two runs with predictions on this split in the sidebar to compare them.")
    st.stop()

kept, left_out, corr = S.disagreement(have, ctx.split)
if left_out and len(kept) >= 2:
    st.info(f"Left out {S.names(left_out)}: no sample ids in common with the images {S.names(kept)} all "
            "evaluated (other data, or another fold's test images), or other labels for them (relabelled data).")
if len(kept) < 2 or corr.empty:
    st.warning("The chosen runs share no sample ids on this split (different data sets or splits), "
               "so they cannot be compared sample by sample.")
    st.stop()
every = len(corr.dropna())
st.caption(f"On **{split}**. Every run wrong and only one run wrong: the {every:,} sample ids every compared run "
           "evaluated" + (f"; run vs run: each pair's shared ids ({len(corr):,} in all)." if every < len(corr)
                          else "."))

by_name = {r.name: r for r in have}
preds = {n: S.predictions(by_name[n], ctx.split) for n in kept}
if inside := R.members_among({n: by_name[n].config for n in kept}):
    st.warning(" ".join(f"{S.md(e)} averages {S.names(m)}, chosen too." for e, m in inside.items()) + " An ensemble "
               "and its members are not independent opinions: \"every run wrong\" and \"who is the odd one out\" "
               "count one model's view twice. Choose the ensemble or its members, not both.")
summary = E.disagreement_summary(corr)
left, right = st.columns(2)
with left:
    st.header(f"Every run wrong ({len(summary['all_wrong']):,})", anchor=False)
    all_wrong = E.failure_table(preds, summary["all_wrong"]["id"], same_wrong=True).sort_values(
        "label's probability", kind="stable")  # the labels the runs doubt most first
    if (votes := S.votes(by_name[kept[0]], ctx.split)) is not None:  # FER+: how its ten annotators voted
        all_wrong, backed = E.failure_votes(all_wrong, votes, kept[0])
    lead = ["id", "true", "label's probability", "same wrong answer"]  # then each run's answer; the download has more
    lead += ["annotators' votes"] if votes is not None else []
    columns = lead + [c for c in all_wrong if c not in lead and c != "path" and not c.endswith(": confidence")]
    st.dataframe(all_wrong[columns], width="stretch", hide_index=True, height=300)
    if len(all_wrong):
        same = int(all_wrong["same wrong answer"].sum())
        st.caption(f"{same:,} of them get the same wrong class from every run: the first labels to doubt. The "
                   "lowest label's probability (the runs' mean probability of the annotated class) comes first. "
                   "Leave doubted images out of training with `python -m fer_core.train ... --exclude` and this "
                   "download, and score on the test labels as they were: test labels changed where the models "
                   "disagreed with them make those models look better without changing them."
                   + (f" On FER+, at least two of the ten annotators chose the runs' class too for {backed:,} of "
                      f"those {same:,}: many are faces that read both ways rather than wrong labels."
                      if votes is not None and same else ""))
        st.download_button("Download these (CSV: paths, answers, confidences)",
                           all_wrong.to_csv(index=False), file_name=f"every-run-wrong-{ctx.split}.csv",
                           mime="text/csv", key="dl-every-wrong")
with right:
    only = summary["only_one_wrong"]
    st.header(f"Only one run wrong ({len(only):,})", anchor=False)
    st.dataframe(only, width="stretch", hide_index=True, height=300)
    if len(only):
        counts = only["wrong run"].value_counts().reindex(kept, fill_value=0)  # a run never alone in error: 0
        shown = [plot_text(n) for n in counts.index]  # the names as text in the labels and the hover
        fig = px.bar(x=counts.values, y=shown, orientation="h", labels={"x": "samples", "y": ""}, color=shown,
                     color_discrete_map={plot_text(n): c for n, c in ctx.colors.items()},
                     title="Who is the odd one out",
                     height=max(220, 80 + 28 * len(counts)))
        fig.update_layout(showlegend=False)
        fig.update_xaxes(tickformat=",d", dtick=1 if counts.max() <= 5 else None)  # counts: no 0.5 ticks
        S.chart(fig.update_layout(margin=dict(t=40, b=30)), width="stretch")

st.header("Run vs run", anchor=False)
pairs = E.pairwise_table(corr)
PAIR_ORDER = ["run A", "run B", "verdict", "Holm p", "McNemar p", "images", "A right, B wrong", "B right, A wrong",
              "both wrong", "both right"]
st.dataframe(pairs.style.format({"McNemar p": format_p, "Holm p": format_p}), width="stretch", hide_index=True,
             column_order=PAIR_ORDER,
             column_config={
                 "verdict": st.column_config.Column(help="A or B better: that run is right more often on the samples "
                                                    "only one of the two gets right, and Holm p is below 0.05. Within "
                                                    "noise: these samples cannot tell them apart."),
                 "Holm p": st.column_config.Column(help=f"McNemar p adjusted (Holm) for the {len(pairs)} pairs tested "
                                                   "together: read this one. Below 0.05: unlikely to be chance on "
                                                   "these samples."),
                 "McNemar p": st.column_config.Column(help="Exact McNemar test: how likely runs that are equally good "
                                                      "would split the samples only one gets right this unevenly "
                                                      "(this pair alone, unadjusted).")})
if len(pairs) > 1:
    st.caption(f"{len(pairs)} pairs are tested at once, so a raw p below 0.05 turns up by chance alone about once in "
               "20 pairs; Holm's adjustment keeps the chance of any false call below 5%.")
names = kept
a_col, b_col = st.columns(2)
a = S.choice(a_col, "Run A", names, "dis_a")
b = S.choice(b_col, "Run B", names, "dis_b", default=1)
if a == b:
    st.info("Pick two different runs.")
    st.stop()

try:
    result = S.paired(by_name[a], by_name[b], ctx.split)
except ValueError as e:
    st.error(f"{S.md(a)} and {S.md(b)} cannot be compared sample by sample: {S.md(e)}")
    st.stop()
table = E.paired_table(result, a, b)
st.markdown(f"**Is the difference real?** Each metric of A − B on the **{result['n']:,}** samples both runs "
            "evaluated, with a paired bootstrap 95% interval (1,000 resamples, the same samples drawn for both "
            f"runs). An interval that contains 0 means these samples cannot tell the two runs apart. With "
            f"{len(table)} metrics tested at once, one interval that only just leaves 0 is what chance alone often "
            "gives: read such a verdict as weak evidence. Accuracy's verdict is McNemar's exact test (below).")
own = {name: int(corr[name].notna().sum()) for name in (a, b)}
if max(own.values()) > result["n"]:
    st.caption(f"{S.md(a)} evaluated {own[a]:,} and {S.md(b)} {own[b]:,} images on {split}: the figures here are on "
               "the "
               f"{result['n']:,} both did, so they differ from the Overview's.")
# "A better" rather than the run's name, as in the table above: the interval beside it stays in view in a narrow window
shown = table.assign(verdict=table["verdict"].replace({f"{a} better": "A better", f"{b} better": "B better"}))
st.dataframe(shown, width="stretch", hide_index=True, column_order=["metric", "verdict", E.PAIRED_DIFF, a, b],
             column_config={
                 "verdict": st.column_config.Column(help=f"The run the 95% interval favours (A: {S.md(a)}, "
                                                    f"B: {S.md(b)}); within noise where it contains 0. For "
                                                    "accuracy, McNemar's exact test: within noise where p ≥ 0.05."),
                 E.PAIRED_DIFF: st.column_config.Column(help=f"{S.md(a)} − {S.md(b)}, and its paired bootstrap 95% "
                                                        "interval."),
                 a: st.column_config.NumberColumn(format="%.3f"),
                 b: st.column_config.NumberColumn(format="%.3f")})
st.caption(f"McNemar's exact test on the {result['a_only_right']} samples only {S.md(a)} gets right and the "
           f"{result['b_only_right']} only {S.md(b)} gets right: p = {format_p(result['mcnemar_p'])} (this pair alone, "
           "unadjusted).")
S.chart(E.paired_figure(table, a, b), width="stretch")
if folds := S.folds_compared(by_name[a], by_name[b], ctx.all_runs, ctx.split):
    diffs = folds["diffs"]
    st.markdown(f"**Fold by fold**: both are cross-validations on the same {len(diffs)} folds. Accuracy A − B in each "
                f"fold: {', '.join(f'{d:+.3f}' for d in diffs)}; mean {folds['mean']:+.3f}, corrected "
                f"resampled t-test t = {folds['t']:.2f}, p = {format_p(folds['p'])}.")
    st.caption("The bootstrap and McNemar's test above count only which images were drawn, with the models fixed. This "
               "test (Nadeau & Bengio, 2003) also counts how much each recipe's figure moves from one training set to "
               "another, so it is the one to quote when comparing the recipes rather than these particular models. "
               "With few folds it can tell apart only large differences.")

ids = E.pair_ids(corr, a, b)
st.markdown(f"**{len(ids):,}** samples that **{S.md(a)}** classifies correctly and **{S.md(b)}** does not "
            "(swap A and B for the other way round):")
if ids:
    shown = ids[:MAX_IDS_SHOWN]
    if len(ids) > len(shown):
        st.caption(f"First {len(shown):,} shown; the download holds all {len(ids):,}.")
    st.code(", ".join(shown), language=None, wrap_lines=True, height=150 if len(shown) > 60 else "content")
    st.download_button("Download these (CSV: path, true class, each run's answer and confidence)",
                       E.failure_table({a: preds[a], b: preds[b]}, ids).to_csv(index=False),
                       file_name=f"right-{a}_wrong-{b}.csv",
                       mime="text/csv", key=f"dl-{a}-{b}")
