"""Plotly figures for live prediction: per-face class probabilities, the valence/arousal circumplex, and a video's
timeline."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .labels import VA_COLOURS, class_colour

QUADRANTS = [(0.55, 0.9, "excited, happy"), (-0.55, 0.9, "angry, afraid"),
             (-0.55, -0.9, "sad, bored"), (0.55, -0.9, "calm, content")]


def prob_figure(result: dict, classes: list[str]) -> go.Figure:
    colours = [class_colour(i) for i in range(len(classes))]
    fig = go.Figure(go.Bar(x=result["probs"], y=classes, orientation="h", marker_color=colours,
                           text=[f"{p:.0%}" for p in result["probs"]], textposition="outside"))
    fig.update_layout(xaxis=dict(range=[0, 1.15], tickformat=".0%", title="probability"),
                      yaxis=dict(autorange="reversed"), height=300, margin=dict(l=10, r=10, t=30, b=10),
                      title=f"{result['label_name']} ({result['confidence']:.0%})")
    return fig


def live_circumplex_figure(results: list[dict], labels: list[str] | None = None) -> go.Figure:
    """Valence (x) / arousal (y) points on the circumplex, both axes -1..1, with the quadrants named; ``labels``
    name the points (default: face 1, face 2, ...)."""
    fig = go.Figure()
    fig.add_shape(type="circle", x0=-1, y0=-1, x1=1, y1=1, line=dict(color="lightgrey"))
    for x, y, text in QUADRANTS:
        fig.add_annotation(x=x, y=y, text=text, showarrow=False, font=dict(color="grey", size=11))
    fig.add_trace(go.Scatter(x=[r["valence"] for r in results], y=[r["arousal"] for r in results],
                             mode="markers+text", text=labels or [f"face {i + 1}" for i in range(len(results))],
                             textposition="top center", marker=dict(size=14, color="crimson")))
    axis = dict(zeroline=True, zerolinecolor="grey", dtick=0.5)
    fig.update_layout(xaxis=dict(title="valence", range=[-1.05, 1.05], **axis),
                      yaxis=dict(title="arousal", scaleanchor="x", range=[-1.05, 1.2], **axis),  # room for a label
                      height=330, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    return fig


def timeline_figure(tl, classes: list[str], who: str = "") -> go.Figure:
    """A video's timeline (fer_core.video.timeline): valence and arousal above, the class probabilities stacked
    below, against time; grey bands where its person is not in view. ``who`` names the person in the titles."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.45, 0.55],
                        subplot_titles=(f"Valence and arousal{who and f' ({who})'}",
                                        f"Expression probabilities{who and f' ({who})'}"))
    for name, colour in VA_COLOURS.items():
        fig.add_trace(go.Scatter(x=tl["time_s"], y=tl[name], name=name, mode="lines+markers", marker_size=4,
                                 line=dict(color=colour),  # markers: a lone classified frame still shows
                                 connectgaps=False, legendgroup="va"), row=1, col=1)
    t, none = tl["time_s"].to_numpy(), tl["label_name"].isna().to_numpy()
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    for i, c in enumerate(classes):  # stacked bars, one per classified frame: a frame without a face stays empty
        fig.add_trace(go.Bar(x=t + step / 2, y=tl[c], width=step or None, name=c, legendgroup="p",
                             marker=dict(color=class_colour(i), line_width=0)), row=2, col=1)
    # grey bands where the person is not in view, from the first such frame to the next frame with them
    starts = [i for i in range(len(t)) if none[i] and (i == 0 or not none[i - 1])]
    for i in starts:
        j = next((k for k in range(i, len(t)) if not none[k]), None)
        fig.add_vrect(x0=t[i], x1=t[j] if j is not None else t[-1] + step, fillcolor="lightgrey", opacity=0.35,
                      line_width=0, layer="below", annotation_text=("not in view" if who else "no face") if i == starts[0] else None,
                      annotation_position="top left")
    fig.update_yaxes(range=[-1.05, 1.05], zeroline=True, zerolinecolor="grey", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title="time (s)", row=2, col=1)
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified", barmode="stack",
                      bargap=0)
    return fig
