"""Plotly figures for live prediction: per-face class probabilities, the valence/arousal circumplex, and a video's
timeline."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .labels import VA_COLOURS, class_colour

# the quadrants' names in the corners, outside the unit circle, on two lines so that the two at the top (and the two
# at the bottom) do not meet on a narrow chart: (x, y, text, the end of the text at x, the edge of the text at y)
# The circumplex's dimensions, not feelings: a point is how a face looks, not what its person feels.
QUADRANTS = [(1.22, 1.22, "pleasant,<br>active", "right", "top"),
             (-1.22, 1.22, "unpleasant,<br>active", "left", "top"),
             (-1.22, -1.22, "unpleasant,<br>calm", "left", "bottom"),
             (1.22, -1.22, "pleasant,<br>calm", "right", "bottom")]
CIRCUMPLEX_RANGE = 1.25  # both axes: room outside the circle for the quadrants' names and a point's label
VA_STYLES = [("dash", "diamond"), ("dot", "square")]  # valence's and arousal's line dash and marker


def prob_figure(result: dict, classes: list[str]) -> go.Figure:
    colours = [class_colour(i) for i in range(len(classes))]
    fig = go.Figure(go.Bar(x=result["probs"], y=classes, orientation="h", marker_color=colours,
                           text=[f"{p:.0%}" for p in result["probs"]], textposition="outside"))
    fig.update_layout(xaxis=dict(range=[0, 1.15], tickformat=".0%", title="probability"),
                      yaxis=dict(autorange="reversed"), height=300, margin=dict(l=10, r=10, t=30, b=10),
                      title=f"{result['label_name']} ({result['confidence']:.0%})")
    return fig


def point_label_position(x: float) -> str:
    """Where a point's label goes: above it, or above and to its inside near the left or right edge, where a
    centred label would run off the chart."""
    return "top left" if x > 0.7 else "top right" if x < -0.7 else "top center"


def live_circumplex_figure(results: list[dict], labels: list[str] | None = None) -> go.Figure:
    """Valence (x) / arousal (y) points on the circumplex (values -1..1, the unit circle drawn), with the quadrants
    named in the corners outside it; ``labels`` name the points (default: face 1, face 2, ...)."""
    fig = go.Figure()
    fig.add_shape(type="circle", x0=-1, y0=-1, x1=1, y1=1, line=dict(color="lightgrey"), layer="below")
    for x, y, text, xanchor, yanchor in QUADRANTS:
        fig.add_annotation(x=x, y=y, text=text, showarrow=False, xanchor=xanchor, yanchor=yanchor, align=xanchor,
                           font=dict(size=12))  # the theme's text colour, light or dark
    xs = [r["valence"] for r in results]
    fig.add_trace(go.Scatter(x=xs, y=[r["arousal"] for r in results], mode="markers+text",
                             text=labels or [f"face {i + 1}" for i in range(len(results))],
                             textposition=[point_label_position(x) for x in xs], cliponaxis=False,
                             marker=dict(size=14, color="crimson")))
    lim = CIRCUMPLEX_RANGE
    axis = dict(zeroline=True, zerolinecolor="grey", tickvals=[-1, -0.5, 0, 0.5, 1], range=[-lim, lim])
    fig.update_layout(xaxis=dict(title="valence", **axis), yaxis=dict(title="arousal", scaleanchor="x", **axis),
                      height=330, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    return fig


def timeline_figure(tl, classes: list[str], who: str = "") -> go.Figure:
    """A video's timeline (fer_core.video.timeline): valence and arousal above (where the model gives them), the
    class probabilities stacked below, against time; grey bands where its person is not in view. ``who`` names the
    person in the titles."""
    from plotly.subplots import make_subplots

    has_va = bool(tl[list(VA_COLOURS)].notna().any().any())  # a model trained without them: the probabilities only
    rows = 2 if has_va else 1
    titles = ([f"Valence and arousal{who and f' ({who})'}"] if has_va else []) + \
        [f"Expression probabilities{who and f' ({who})'}"]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.45, 0.55] if has_va else None, subplot_titles=titles)
    # valence and arousal: dashed and dotted lines with their own marker shapes, in a legend of their own beside
    # their panel, so that they are not read as the Anger and Sad bars (similar colours) below
    for (name, colour), (dash, symbol) in zip(VA_COLOURS.items() if has_va else [], VA_STYLES):
        fig.add_trace(go.Scatter(x=tl["time_s"], y=tl[name], name=name, mode="lines+markers",
                                 marker=dict(size=6, symbol=symbol),  # markers: a lone classified frame still shows
                                 line=dict(color=colour, dash=dash, width=2.5), connectgaps=False, legendgroup="va",
                                 legend="legend"), row=1, col=1)
    t, none = tl["time_s"].to_numpy(), tl["label_name"].isna().to_numpy()
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    for i, c in enumerate(classes):  # stacked bars, one per classified frame: a frame without a face stays empty
        fig.add_trace(go.Bar(x=t + step / 2, y=tl[c], width=step or None, name=c, legendgroup="p",
                             marker=dict(color=class_colour(i), line_width=0), legend="legend2"), row=rows, col=1)
    # grey bands where the person is not in view, from the first such frame to the next frame with them
    starts = [i for i in range(len(t)) if none[i] and (i == 0 or not none[i - 1])]
    for i in starts:
        j = next((k for k in range(i, len(t)) if not none[k]), None)
        # the first band says what they are; a position without a text would draw plotly's "new text"
        said = dict(annotation_text="not in view" if who else "no face", annotation_position="top left")
        fig.add_vrect(x0=t[i], x1=t[j] if j is not None else t[-1] + step, fillcolor="lightgrey", opacity=0.35,
                      line_width=0, layer="below", **(said if i == starts[0] else {}))
    if has_va:
        fig.update_yaxes(range=[-1.05, 1.05], zeroline=True, zerolinecolor="grey", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=rows, col=1)
    fig.update_xaxes(title="time (s)", row=rows, col=1)
    top, bottom = fig.layout.yaxis.domain, fig.layout["yaxis2" if has_va else "yaxis"].domain  # each legend
    fig.update_layout(height=560 if has_va else 330, margin=dict(l=10, r=10, t=40, b=10),  # beside its own panel
                      hovermode="x unified", barmode="stack", bargap=0,
                      legend=dict(y=top[1], yanchor="top"), legend2=dict(y=bottom[1], yanchor="top"))
    return fig
