"""Small helpers of the HTML report: escaping text from the store, writing numbers as the
terminal leaderboard does, inlining a PNG."""
from __future__ import annotations

import base64
import html

import numpy as np


def esc(value) -> str:
    """Text from the store, escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def number(value: float | None) -> str:
    """As the terminal leaderboard writes it: two decimals, or 1.2e-03 below 0.01."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.1e}" if 0 < abs(value) < 0.01 else f"{value:.2f}"


def header(titles) -> str:
    """A table's header row of ``titles`` (escaped)."""
    return "<tr>" + "".join(f"<th>{esc(title)}</th>" for title in titles) + "</tr>"


def image(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return (f'<img alt="{esc(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode("ascii")}">')
