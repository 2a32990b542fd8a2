"""Line plots over time as inline SVG text: what the dashboard draws, with nothing to load.

`time_plot(points, title, unit)` takes (unix time, value) pairs in time order and returns one
<svg> element: a polyline through the points, a circle on each (its <title> says the time and
value: the browser shows it on hover), the value axis from 0 to a round maximum, and the first
and last times under the time axis (UTC). No points gives a box that says so.
"""

import datetime
from html import escape

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36


def _round_up(v: float) -> float:
    """The smallest of 1, 2, 5 x 10^n at or above v (at least 1)."""
    step = 1.0
    while True:
        for m in (1, 2, 5):
            if m * step >= v:
                return m * step
        step *= 10


def _hhmm(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def _num(v: float) -> str:
    return "%d" % v if v == int(v) else "%.1f" % v


def time_plot(points: list[tuple[int, float]], title: str, unit: str) -> str:
    head = (
        '<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" role="img" aria-label="%s">'
        '<rect x="0" y="0" width="%d" height="%d" fill="#fff" stroke="#ccc"/>'
        '<text x="%d" y="18" font-size="13" font-weight="bold">%s</text>'
        % (W, H, W, H, escape(title), W, H, LEFT, escape(title))
    )
    if not points:
        return head + '<text x="%d" y="%d" font-size="13">no data</text></svg>' % (W // 2, H // 2)
    t0, t1 = points[0][0], points[-1][0]
    span = max(t1 - t0, 1)
    top = _round_up(max(v for _, v in points))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def xy(t: int, v: float) -> tuple[float, float]:
        return LEFT + pw * (t - t0) / span, TOP + ph * (1 - v / top)

    coords = [xy(t, v) for t, v in points]
    parts = [head]
    for frac in (0, 0.5, 1):  # value grid lines and labels
        y = TOP + ph * (1 - frac)
        parts.append(
            '<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
            '<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s %s</text>'
            % (LEFT, y, W - RIGHT, y, LEFT - 4, y + 4, _num(top * frac), escape(unit))
        )
    parts.append(
        '<text x="%d" y="%d" font-size="11">%s</text>'
        '<text x="%d" y="%d" font-size="11" text-anchor="end">%s UTC</text>'
        % (LEFT, H - 12, _hhmm(t0), W - RIGHT, H - 12, _hhmm(t1))
    )
    parts.append(
        '<polyline fill="none" stroke="#1f5fa8" stroke-width="2" points="%s"/>'
        % " ".join("%.1f,%.1f" % c for c in coords)
    )
    for (t, v), (x, y) in zip(points, coords):
        parts.append(
            '<circle cx="%.1f" cy="%.1f" r="3" fill="#1f5fa8"><title>%s UTC: %s %s</title></circle>'
            % (x, y, _hhmm(t), _num(v), escape(unit))
        )
    parts.append("</svg>")
    return "".join(parts)
