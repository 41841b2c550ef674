"""Plotly figures for live prediction: per-face class probabilities and the valence/arousal circumplex."""
from __future__ import annotations

import plotly.graph_objects as go

from .faces import COLOURS

QUADRANTS = [(0.55, 0.9, "excited, happy"), (-0.55, 0.9, "angry, afraid"),
             (-0.55, -0.9, "sad, bored"), (0.55, -0.9, "calm, content")]


def prob_figure(result: dict, classes: list[str]) -> go.Figure:
    colours = [f"rgb{COLOURS[i % len(COLOURS)]}" for i in range(len(classes))]
    fig = go.Figure(go.Bar(x=result["probs"], y=classes, orientation="h", marker_color=colours,
                           text=[f"{p:.0%}" for p in result["probs"]], textposition="outside"))
    fig.update_layout(xaxis=dict(range=[0, 1.15], tickformat=".0%", title="probability"),
                      yaxis=dict(autorange="reversed"), height=300, margin=dict(l=10, r=10, t=30, b=10),
                      title=f"{result['label_name']} ({result['confidence']:.0%})")
    return fig


def live_circumplex_figure(results: list[dict]) -> go.Figure:
    """Valence (x) / arousal (y) points on the circumplex, both axes -1..1, with the quadrants named."""
    fig = go.Figure()
    fig.add_shape(type="circle", x0=-1, y0=-1, x1=1, y1=1, line=dict(color="lightgrey"))
    for x, y, text in QUADRANTS:
        fig.add_annotation(x=x, y=y, text=text, showarrow=False, font=dict(color="grey", size=11))
    fig.add_trace(go.Scatter(x=[r["valence"] for r in results], y=[r["arousal"] for r in results],
                             mode="markers+text", text=[f"face {i + 1}" for i in range(len(results))],
                             textposition="top center", marker=dict(size=14, color="crimson")))
    axis = dict(range=[-1.05, 1.05], zeroline=True, zerolinecolor="grey", dtick=0.5)
    fig.update_layout(xaxis=dict(title="valence", **axis), yaxis=dict(title="arousal", scaleanchor="x", **axis),
                      height=330, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    return fig
