"""Small SVG charts drawn on the server for the figures page (no script, no CDN).

Each chart is an ``<svg role="img">`` named by its ``<title>`` and described by its ``<desc>``
(``aria-labelledby``); the page keeps the table beside it for screen readers. A count below the
figures' minimum is never drawn at its height: it is a hatched bar up to the minimum's line,
labelled "<5", whatever the true count (0 to 4) is. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

INK = "#1d2530"
BAR = "#17324d"
HATCH = "#6b7785"
GRID = "#c9d0d8"


@dataclass
class Bar:
    label: str  # the axis label, e.g. "W48"
    title: str  # the hover text, e.g. "2026-W48: 7"
    value: int | None  # None: suppressed (below the minimum), drawn hatched


def nice_top(value: int) -> int:
    for step in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if value <= step:
            return step
    return ((value + 999) // 1000) * 1000


def bars(
    chart_id: str,
    title: str,
    description: str,
    items: Sequence[Bar],
    *,
    minimum: int,
    suppressed_label: str,
    top: int | None = None,
    width: int = 460,
    height: int = 170,
) -> Markup:
    """A vertical bar chart; ``top`` shares one scale between charts shown side by side."""
    left, right, above, below = 34, 8, 16, 30
    plot_w, plot_h = width - left - right, height - above - below
    highest = max((b.value or 0 for b in items), default=0)
    scale_top = top or nice_top(max(highest, minimum))
    slot = plot_w / max(len(items), 1)
    bar_w = max(min(slot * 0.7, 28), 2)
    every = max(1, round(len(items) / 13))  # at most ~13 week labels under the axis

    def y(value: float) -> float:
        return above + plot_h - plot_h * value / scale_top

    title_id, desc_id, hatch_id = f"{chart_id}-title", f"{chart_id}-desc", f"{chart_id}-hatch"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{escape(title_id)} {escape(desc_id)}">',
        f'<title id="{escape(title_id)}">{escape(title)}</title>',
        f'<desc id="{escape(desc_id)}">{escape(description)}</desc>',
        f'<defs><pattern id="{escape(hatch_id)}" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="#fff"/><line x1="0" y1="0" x2="0" y2="6" '
        f'stroke="{HATCH}" stroke-width="2.5"/></pattern></defs>',
    ]
    for tick in (0, scale_top // 2, scale_top):
        ty = y(tick)
        parts.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{left - 4}" y="{ty + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="{INK}">{tick}</text>'
        )
    for i, item in enumerate(items):
        x = left + i * slot + (slot - bar_w) / 2
        if item.value is None:
            top_y = y(minimum)
            parts.append(
                f'<g class="bar suppressed"><title>{escape(item.title)}</title>'
                f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{bar_w:.1f}" '
                f'height="{y(0) - top_y:.1f}" fill="url(#{escape(hatch_id)})" '
                f'stroke="{HATCH}" stroke-width="0.8"/></g>'
            )
        else:
            top_y = y(item.value)
            parts.append(
                f'<g class="bar" data-value="{item.value}"><title>{escape(item.title)}</title>'
                f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{bar_w:.1f}" '
                f'height="{y(0) - top_y:.1f}" fill="{BAR}"/></g>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - below + 13}" font-size="10" '
                f'text-anchor="middle" fill="{INK}">{escape(item.label)}</text>'
            )
    # The key: what a hatched bar means (never a value).
    parts.append(
        f'<rect x="{left}" y="{height - 11}" width="10" height="9" fill="url(#{escape(hatch_id)})" '
        f'stroke="{HATCH}" stroke-width="0.8"/>'
        f'<text x="{left + 14}" y="{height - 3}" font-size="10" fill="{INK}">'
        f"{escape(suppressed_label)}</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every text above is escaped)


@dataclass
class Row:
    label: str  # e.g. a kind of help
    value: float | None  # None: not shown (too few to give)
    text: str  # the value as written beside the bar, e.g. "3,0 h" or "not shown"


def rows(
    chart_id: str, title: str, description: str, items: Sequence[Row], *, width: int = 620
) -> Markup:
    """A horizontal bar chart, one labelled row per item; an item without a value has no bar,
    only its text."""
    label_w, right, row_h, above = 200, 90, 24, 6
    height = above * 2 + row_h * max(len(items), 1)
    plot_w = width - label_w - right
    highest = max((r.value for r in items if r.value is not None), default=0.0)
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{escape(title_id)} {escape(desc_id)}">',
        f'<title id="{escape(title_id)}">{escape(title)}</title>',
        f'<desc id="{escape(desc_id)}">{escape(description)}</desc>',
    ]
    for i, item in enumerate(items):
        top = above + i * row_h
        label = item.label if len(item.label) <= 30 else item.label[:29] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{top + 16}" font-size="12" text-anchor="end" '
            f'fill="{INK}">{escape(label)}</text>'
        )
        end: float = label_w
        if item.value is not None and highest > 0:
            length = max(plot_w * item.value / highest, 1)
            parts.append(
                f'<rect class="bar" x="{label_w}" y="{top + 4}" width="{length:.1f}" '
                f'height="{row_h - 8}" fill="{BAR}"><title>{escape(item.label)}: '
                f"{escape(item.text)}</title></rect>"
            )
            end = label_w + length
        parts.append(
            f'<text x="{end + 6:.1f}" y="{top + 16}" font-size="12" fill="{INK}">'
            f"{escape(item.text)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every text above is escaped)
