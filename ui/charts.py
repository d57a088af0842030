"""Plotly figures built from plain data; pages only place them."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

# --- training (Train page) ---------------------------------------------------------------------


def training_loss_figure(points: list[dict[str, Any]]) -> go.Figure:
    """Training loss by step: the first sign that a run learns (or does not)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p["step"] for p in points],
            y=[p["loss"] for p in points],
            mode="lines+markers",
            name="training loss",
        )
    )
    fig.update_layout(
        title="Training loss",
        xaxis_title="step",
        yaxis_title="loss",
        height=300,
        margin=dict(l=40, r=10, t=40, b=40),
    )
    return fig


def training_eval_figure(
    points: list[dict[str, Any]],
    first_stage: float | None = None,
    metrics: tuple[str, ...] = ("ndcg@10", "mrr@10"),
) -> go.Figure:
    """Validation metrics by step, with the first stage as a dashed line the reranker has to beat."""
    fig = go.Figure()
    for m in metrics:
        fig.add_trace(
            go.Scatter(
                x=[p["step"] for p in points],
                y=[p.get(m) for p in points],
                mode="lines+markers",
                name=m.upper(),
            )
        )
    if first_stage is not None:
        fig.add_hline(y=first_stage, line_dash="dash", annotation_text="first stage NDCG@10")
    fig.update_layout(
        title="Validation (reranked candidates)",
        xaxis_title="step",
        yaxis_title="score",
        yaxis_range=[0, 1],
        height=300,
        margin=dict(l=40, r=10, t=40, b=40),
    )
    return fig


# --- quality (Quality page) ----------------------------------------------------------------------

_QUALITY_COLOURS = {
    "train": "#4C78A8",
    "test": "#F58518",
    "paraphrase": "#B279A2",
    "near-duplicate of train": "#E45756",
    "positive": "#54A24B",
    "labelled negative": "#9D755D",
    "mined hard negative": "#E45756",
    "mined random negative": "#BAB0AC",
    "near-duplicate": "#B279A2",
}


def _hover_safe(text: str, width: int = 90, limit: int = 400) -> str:
    """User text for a hover label: HTML-escaped (plotly reads tags in hover text) and wrapped."""
    import html
    import textwrap

    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(text, width) or [""])


def embedding_map_figure(
    xy: Any,
    groups: list[str],
    texts: list[str],
    *,
    title: str,
    order: list[str] | None = None,
    height: int = 480,
) -> go.Figure:
    """A 2-D map of embeddings, one colour per group; hover shows the (escaped) text via customdata."""
    import numpy as np

    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    groups_arr = np.asarray(groups, dtype=object)
    names = order or sorted(set(groups))
    fig = go.Figure()
    for name in names:
        rows = np.flatnonzero(groups_arr == name)
        if not len(rows):
            continue
        fig.add_trace(
            go.Scattergl(
                x=xy[rows, 0],
                y=xy[rows, 1],
                mode="markers",
                name=f"{name} ({len(rows):,})",
                marker=dict(size=6 if len(xy) < 2000 else 4, color=_QUALITY_COLOURS.get(name), opacity=0.75),
                customdata=[[_hover_safe(texts[i])] for i in rows],
                hovertemplate="%{customdata[0]}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=70, b=10),
        showlegend=True,
        xaxis=dict(showticklabels=False, zeroline=False),
        yaxis=dict(showticklabels=False, zeroline=False),
        legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
        hoverlabel=dict(align="left"),
    )
    return fig


def _overlaid_bars(
    fig: go.Figure, arrays: dict[str, Any], edges: Any, colours: dict[str, str], opacity: float, x_hover: str
) -> None:
    """Histograms of several series on shared bin edges, as overlaid bars that keep each series' count."""
    import numpy as np

    width = edges[1] - edges[0]
    for name, a in arrays.items():
        counts, _ = np.histogram(a, bins=edges)
        fig.add_trace(
            go.Bar(
                x=edges[:-1] + width / 2,
                y=counts,
                width=width,
                name=f"{name} ({len(a):,})",
                marker_color=colours.get(name),
                opacity=opacity,
                hovertemplate=x_hover + ": %{y:,}<extra>" + name + "</extra>",
            )
        )


def binned_histogram_figure(
    series: dict[str, Any],
    *,
    title: str,
    xaxis: str,
    limit: int | None = None,
    limit_label: str = "context limit",
    bins: int = 60,
    height: int = 300,
) -> go.Figure:
    """Overlaid histograms binned in numpy (100k values stay a few hundred bars), with an optional limit line."""
    import numpy as np

    arrays = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v)}
    fig = go.Figure()
    if arrays:
        hi = max(float(a.max()) for a in arrays.values())
        if limit is not None:
            hi = max(hi, float(limit) * 1.05)
        edges = np.linspace(0, max(hi, 1.0), bins + 1)
        _overlaid_bars(fig, arrays, edges, _QUALITY_COLOURS, 0.7, "%{x:.0f}")
    if limit is not None:
        fig.add_vline(
            x=limit,
            line_dash="dash",
            line_color="#E45756",
            annotation_text=f"{limit_label} ({limit})",
            annotation_position="top right",
        )
    fig.update_layout(
        title=title,
        barmode="overlay",
        height=height,
        xaxis_title=xaxis,
        yaxis_title="count",
        margin=dict(l=40, r=10, t=40, b=40),
        legend=dict(orientation="h", y=-0.3),
        showlegend=True,
    )
    return fig


# --- evaluation (Evaluate page) --------------------------------------------------------------------


def eval_metric_figure(rows: list[dict[str, Any]], metric: str = "ndcg@10") -> go.Figure:
    """One metric per system with its bootstrap 95% interval: overlap is visible at a glance."""
    labels = [r["label"] for r in rows]
    means = [r["mean"] for r in rows]
    fig = go.Figure(
        go.Bar(
            x=means,
            y=[_hover_safe(x, 60, 120) for x in labels],
            orientation="h",
            error_x=dict(
                type="data",
                symmetric=False,
                array=[r["ci"][1] - r["mean"] for r in rows],
                arrayminus=[r["mean"] - r["ci"][0] for r in rows],
            ),
            marker_color=[
                {"first_stage": "#BAB0AC", "component": "#A0CBE8"}.get(str(r.get("kind")), "#4C78A8")
                for r in rows
            ],
            hovertemplate="%{x:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{metric.upper()} (realistic, 95% bootstrap interval)",
        xaxis_title=metric,
        height=120 + 40 * len(rows),
        margin=dict(l=10, r=10, t=40, b=40),
        yaxis=dict(autorange="reversed"),
    )
    return fig


def eval_change_histogram(
    deltas: list[float], *, title: str, metric: str = "ndcg@10", bins: int = 41
) -> go.Figure:
    """Per-query change of a metric: where the mean comes from (a few big wins, or many small ones)."""
    import numpy as np

    d = np.asarray(deltas, dtype=float)
    edges = np.linspace(-1.0, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(d, -1, 1), bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    colours = ["#E45756" if c < -1e-9 else "#54A24B" if c > 1e-9 else "#BAB0AC" for c in centres]
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=counts,
            width=edges[1] - edges[0],
            marker_color=colours,
            hovertemplate="change %{x:+.2f}: %{y} queries<extra></extra>",
        )
    )
    worse, same, better = int((d < -1e-9).sum()), int((abs(d) <= 1e-9).sum()), int((d > 1e-9).sum())
    fig.update_layout(
        title=f"{title} — worse {worse}, unchanged {same}, better {better}",
        xaxis_title=f"change in {metric} per query",
        yaxis_title="queries",
        height=300,
        margin=dict(l=40, r=10, t=40, b=40),
    )
    return fig


def eval_score_figure(
    relevant: list[float],
    non_relevant: list[float],
    *,
    title: str,
    threshold: float | None = None,
    bins: int = 40,
) -> go.Figure:
    """Score distributions of relevant vs non-relevant candidates (normalized), with a suggested cut-off."""
    fig = go.Figure()
    for name, values, colour in (
        ("relevant", relevant, "#54A24B"),
        ("non-relevant", non_relevant, "#E45756"),
    ):
        if len(values):
            fig.add_trace(
                go.Histogram(
                    x=list(values),
                    name=f"{name} ({len(values):,})",
                    nbinsx=bins,
                    opacity=0.6,
                    histnorm="probability",
                    marker_color=colour,
                )
            )
    if threshold is not None:
        fig.add_vline(
            x=threshold,
            line_dash="dash",
            line_color="#333",
            annotation_text=f"best-F1 cut-off on test labels ({threshold:.3f})",
            annotation_position="top left",
        )
    fig.update_layout(
        title=title,
        barmode="overlay",
        xaxis_title="score",
        yaxis_title="share of passages",
        height=300,
        margin=dict(l=40, r=10, t=40, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def reliability_figure(bins: list[dict[str, float]], *, title: str, labels: str = "test labels") -> go.Figure:
    """Predicted P(relevant) against the observed share relevant per bin: on the diagonal, a threshold means what
    it says; markers sized by how many pairs fall in the bin."""
    biggest = max((b["count"] for b in bins), default=1) or 1
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfectly calibrated",
            line=dict(dash="dash", color="#888"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[b["predicted"] for b in bins],
            y=[b["observed"] for b in bins],
            mode="lines+markers",
            name="relevance_score",
            marker=dict(size=[8 + 22 * (b["count"] / biggest) ** 0.5 for b in bins], color="#4C78A8"),
            customdata=[[b["lower"], b["upper"], b["count"]] for b in bins],
            hovertemplate="bin %{customdata[0]:.1f}-%{customdata[1]:.1f}: predicted %{x:.3f}, observed %{y:.3f}"
            " (%{customdata[2]} pairs)<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="predicted P(relevant) (mean relevance_score in the bin)",
        yaxis_title=f"observed share relevant ({_hover_safe(labels, 40, 40)})",
        xaxis_range=[0, 1],
        yaxis_range=[0, 1],
        height=380,
        margin=dict(l=40, r=10, t=40, b=40),
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


# --- mining (Mine page) ----------------------------------------------------------------------------


def mining_scores_figure(series: dict[str, Any], bins: int = 50) -> go.Figure:
    """Similarity of positives vs mined negatives: overlap is where false negatives hide and margins bite."""
    import numpy as np

    colours = {"positive": "#54A24B", "hard negative": "#E45756", "random negative": "#BAB0AC"}
    arrays = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v)}
    fig = go.Figure()
    if arrays:
        lo = min(float(a.min()) for a in arrays.values())
        hi = max(float(a.max()) for a in arrays.values())
        edges = np.linspace(min(lo, 0.0), max(hi, 1e-6), bins + 1)
        _overlaid_bars(fig, arrays, edges, colours, 0.65, "similarity %{x:.2f}")
    fig.update_layout(
        title="Similarity to the query: positives vs mined negatives",
        barmode="overlay",
        height=320,
        xaxis_title="cosine similarity (embedding model)",
        yaxis_title="count",
        margin=dict(l=40, r=10, t=40, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


# --- playground (Evaluate page) ------------------------------------------------------------------


def ranked_scores_figure(items: list[dict[str, Any]], *, title: str) -> go.Figure:
    """One ranked list as horizontal bars, best on top; labelled positives in green; hover shows escaped text."""
    labels = [
        f"#{it['rank']} "
        + ("★ " if it["positive"] else "")
        + (f"(↑{it['moved']})" if it["moved"] > 0 else f"(↓{-it['moved']})" if it["moved"] < 0 else "")
        for it in items
    ]
    fig = go.Figure(
        go.Bar(
            x=[it["score"] for it in items],
            y=labels,
            orientation="h",
            marker_color=["#54A24B" if it["positive"] else "#4C78A8" for it in items],
            customdata=[_hover_safe(it["text"], limit=300) for it in items],
            hovertemplate="%{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="score",
        yaxis_autorange="reversed",
        height=60 + 28 * len(items),
        margin=dict(l=10, r=10, t=40, b=40),
    )
    return fig
