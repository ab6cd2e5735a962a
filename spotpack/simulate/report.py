"""The report: a terminal table, one self-contained HTML file with SVG charts, and raw JSON.

The HTML has no external reference at all (no script, font, stylesheet or
image URL): inline CSS and inline SVG drawn here, so the file can be mailed,
archived, or opened offline. Every number in it comes from :class:`Figures`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import orjson

from spotpack.simulate.metrics import TRUST_ORDER, Figures, Interruption

WIDTH, HEIGHT = 640, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 30, 46, 28
"""Plot area margins: the title and the legend sit above the plot, never on its lines."""
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
MARK_COLOR = "#f90"
CHAR_WIDTH = 6.2
"""Approximate width of a legend character at 11 px, to lay the legend out from the right."""

TIME_STEPS = (
    5, 10, 15, 20, 30,
    60, 120, 300, 600, 900, 1200, 1800,
    3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800,
)  # fmt: skip
"""Round time steps in seconds: 5 s .. 30 s, 1 .. 30 min, 1 .. 12 h, 1 d, 2 d, 1 week."""
MAX_TIME_INTERVALS = 9
MAX_VALUE_INTERVALS = 5


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _money(x: float) -> str:
    return f"${x:,.2f}"


def interruption_summary(f: Figures) -> str:
    """``9 (7 hit workloads, 7 survived; 2 on empty nodes)``; empty nodes only when some."""
    n = len(f.interruptions)
    if n == 0:
        return "0"
    empty = f"; {f.on_empty_nodes} on empty nodes" if f.on_empty_nodes else ""
    return f"{n} ({f.hit} hit workloads, {f.survived} survived{empty})"


def price_note(sources: Mapping[str, str]) -> str | None:
    """Where the spot prices of the run came from, said plainly; None when nothing ran on spot.

    All estimates: one sentence saying so. Mixed: each source with its types,
    most trustworthy first, and what an estimate is.
    """
    if not sources:
        return None
    by_source: dict[str, list[str]] = {}
    for itype, source in sources.items():
        by_source.setdefault(source, []).append(itype)
    advice = "not market prices ('spotpack catalog refresh' fetches live ones)"
    if set(by_source) == {"estimate"}:
        return f"spot prices: the catalog's estimates, {advice}"
    order = [*TRUST_ORDER, *sorted(set(by_source) - set(TRUST_ORDER))]
    parts = [f"{src} for {', '.join(sorted(by_source[src]))}" for src in order if src in by_source]
    tail = f" (estimates are the catalog's, {advice})" if "estimate" in by_source else ""
    return "spot prices: " + "; ".join(parts) + tail


def table_rows(f: Figures) -> list[tuple[str, str, str, str]]:
    """(metric, spotpack, baseline, difference) rows, the same in the terminal and the HTML."""

    def delta(a: float, b: float) -> str:
        return f"{100 * (1 - a / b):+.1f}% saved" if b > 0 else "-"

    p = f.pending
    return [
        (
            "total cost",
            _money(f.total_cost),
            _money(f.baseline_total_cost),
            delta(f.total_cost, f.baseline_total_cost),
        ),
        (
            "mean cost per hour",
            _money(f.mean_cost_per_hour),
            _money(f.baseline_mean_cost_per_hour),
            delta(f.mean_cost_per_hour, f.baseline_mean_cost_per_hour),
        ),
        ("spot share (node-hours)", _pct(f.spot_node_share), _pct(0.0), ""),
        ("spot share (cost)", _pct(f.spot_cost_share), _pct(0.0), ""),
        ("pods on spot (pod-hours)", _pct(f.spot_pod_share), _pct(0.0), ""),
        ("GPU memory allocated", _pct(f.gpu_mem_util), _pct(f.baseline_gpu_mem_util), ""),
        ("GPU cores allocated", _pct(f.gpu_core_util), _pct(f.baseline_gpu_core_util), ""),
        ("peak nodes", str(f.peak_nodes), str(f.baseline_peak_nodes), ""),
        (
            "pending p50 / p95 / max",
            f"{p.p50:.0f} / {p.p95:.0f} / {p.max:.0f} s",
            f"{f.baseline_pending_seconds:.0f} s each (modelled)",
            "",
        ),
        ("pods created / never bound", f"{p.pods} / {p.never_bound}", "-", ""),
        ("interruptions", interruption_summary(f), "0 (on-demand only)", ""),
    ]


BASELINE_LINE = (
    "baseline: the same live pods, each alone on the cheapest on-demand node, "
    "vGPU slices rounded up to whole GPUs"
)


def footer(f: Figures) -> list[str]:
    """Lines under the table: what the baseline is, where spot prices came from."""
    note = price_note(f.spot_price_sources)
    return [BASELINE_LINE, *([note] if note else [])]


def terminal_table(f: Figures) -> str:
    """The table printed at the end of a run: padded columns, then footer and notes."""
    rows = [("metric", "spotpack", "baseline", ""), *table_rows(f)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"scenario {f.scenario}: {f.duration:g} simulated seconds"]
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(footer(f))
    lines.extend(f"note: {n}" for n in f.notes)
    return "\n".join(lines)


def time_step(span: float) -> float:
    """The time-axis step: the smallest of :data:`TIME_STEPS` that cuts ``span`` seconds
    into at most 9 intervals (beyond a week: whole weeks)."""
    for step in TIME_STEPS:
        if span / step <= MAX_TIME_INTERVALS:
            return float(step)
    week = TIME_STEPS[-1]
    return float(week * math.ceil(span / week / MAX_TIME_INTERVALS))


def time_label(t: float, step: float) -> str:
    """A tick at ``t`` seconds in the unit of the step: s below a minute, min below an hour,
    h below a day, else d (``0``, ``5 min``, ``10 min`` ...)."""
    if t == 0:
        return "0"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if step >= size:
            return f"{t / size:g} {unit}"
    return f"{t:g} s"


def value_axis(peak: float, *, integer: bool = False) -> tuple[float, float]:
    """(top, step) of a value axis: ``step`` the smallest of 1, 2, 5 x 10^k (at least 1
    for counts) with ``ceil(peak / step) <= 5``; ``top = max(ceil(peak / step), 1) * step``."""
    if not peak > 0:
        return (1.0, 1.0) if integer else (1.0, 0.2)
    magnitude: float = 10.0 ** math.floor(math.log10(peak / MAX_VALUE_INTERVALS))
    step = 10.0 * magnitude
    for m in (1.0, 2.0, 5.0, 10.0):
        candidate = max(m * magnitude, 1.0) if integer else m * magnitude
        if math.ceil(peak / candidate - 1e-9) <= MAX_VALUE_INTERVALS:
            step = candidate
            break
    intervals = max(math.ceil(peak / step - 1e-9), 1)
    return round(intervals * step, 12), round(step, 12)


def _segments(xs: Sequence[float], ys: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive defined points (None leaves a gap)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


def _legend(entries: Sequence[tuple[str, str, bool]], right: float, y: float) -> list[str]:
    """Entries (name, colour, dashed) laid out leftwards from ``right`` on one row at ``y``."""
    parts = []
    x = right
    for name, color, dashed in reversed(entries):
        x -= len(name) * CHAR_WIDTH
        parts.append(
            f'<text x="{x:.1f}" y="{y}" fill="{color}" class="legend">{html.escape(name)}</text>'
        )
        dash = ' stroke-dasharray="3 3"' if dashed else ""
        parts.append(
            f'<line x1="{x - 18:.1f}" y1="{y - 4}" x2="{x - 4:.1f}" y2="{y - 4}" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
        )
        x -= 18 + 14
    return parts


def svg_chart(
    title: str,
    t: Sequence[float],
    lines: Sequence[tuple[str, Sequence[float | None]]],
    *,
    t_end: float | None = None,
    percent: bool = False,
    integer: bool = False,
    marks: Sequence[float] = (),
) -> str:
    """A line chart as an inline ``<svg>``.

    Time ticks at round steps (:func:`time_step`), value ticks at round
    numbers (:func:`value_axis`; whole numbers for counts, quarters for
    percentages), a None value leaves a gap, dashed marks at ``marks``, and
    the legend in a row above the plot area.
    """
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    defined = [v for _, vs in lines for v in vs if v is not None]
    top, step = (1.0, 0.25) if percent else value_axis(max(defined, default=0.0), integer=integer)
    t_hi = max(t_end if t_end is not None else (t[-1] if t else 1.0), 1e-9)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{LEFT}" y="16" class="title">{html.escape(title)}</text>',
    ]
    for i in range(round(top / step) + 1):
        v = min(i * step, top)
        y = TOP + h - h * v / top
        label = f"{100 * v:.0f}%" if percent else f"{round(v, 9):g}"
        parts.append(
            f'<text x="{LEFT - 5}" y="{y + 3.5:.1f}" class="tick" text-anchor="end">{label}</text>'
        )
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + w}" y2="{y:.1f}" class="grid"/>')
    t_step = time_step(t_hi)
    for k in range(math.floor(t_hi / t_step + 1e-9) + 1):
        tx = LEFT + w * k * t_step / t_hi
        parts.append(
            f'<line x1="{tx:.1f}" y1="{TOP + h}" x2="{tx:.1f}" y2="{TOP + h + 4}" class="axis"/>'
        )
        parts.append(
            f'<text x="{tx:.1f}" y="{TOP + h + 16}" class="tick" text-anchor="middle">'
            f"{time_label(k * t_step, t_step)}</text>"
        )
    parts.append(f'<line x1="{LEFT}" y1="{TOP + h}" x2="{LEFT + w}" y2="{TOP + h}" class="axis"/>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + h}" class="axis"/>')
    for m in marks:
        x = LEFT + w * m / t_hi
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + h}" class="mark"/>')
    xs = [LEFT + w * x / t_hi for x in t]
    legend: list[tuple[str, str, bool]] = []
    for n, (name, values) in enumerate(lines):
        color = COLORS[n % len(COLORS)]
        ys = [None if v is None else TOP + h - h * min(v, top) / top for v in values]
        for run in _segments(xs, ys):
            if len(run) == 1:
                ((x, y),) = run
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{color}"/>')
                continue
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        legend.append((name, color, False))
    if marks:
        legend.append(("interruption", MARK_COLOR, True))
    parts.extend(_legend(legend, LEFT + w, TOP - 10))
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:720px;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;margin:1em 0}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
.chart{width:100%;height:auto;margin:.5em 0}.title{font-weight:600;font-size:13px}
.tick{font-size:10px;fill:#555}.legend{font-size:11px}.axis{stroke:#333}
.grid{stroke:#eee}.mark{stroke:#f90;stroke-dasharray:3 3}.note{color:#555}
"""


def charts(f: Figures) -> list[str]:
    """The report's charts; the GPU ones only when some pod asked for GPUs."""
    s = f.series
    marks = [i.t for i in f.interruptions]
    end = f.duration
    out = [
        svg_chart(
            "cost per hour ($/h)",
            s.t,
            [("spotpack", s.cost), ("baseline", s.baseline_cost)],
            t_end=end,
            marks=marks,
        ),
        svg_chart("spot share of nodes", s.t, [("spot", s.spot_share)], t_end=end, percent=True),
    ]
    if f.gpu_requested:
        out += [
            svg_chart(
                "GPU memory allocated",
                s.t,
                [("spotpack", s.gpu_mem), ("baseline", s.baseline_gpu_mem)],
                t_end=end,
                percent=True,
            ),
            svg_chart(
                "GPU cores allocated",
                s.t,
                [("spotpack", s.gpu_cores), ("baseline", s.baseline_gpu_cores)],
                t_end=end,
                percent=True,
            ),
        ]
    out += [
        svg_chart(
            "pods pending",
            s.t,
            [("pending pods", [float(x) for x in s.pending])],
            t_end=end,
            integer=True,
            marks=marks,
        ),
        svg_chart(
            "nodes",
            s.t,
            [
                ("spotpack", [float(x) for x in s.nodes]),
                ("baseline", [float(x) for x in s.baseline_nodes]),
            ],
            t_end=end,
            integer=True,
            marks=marks,
        ),
    ]
    return out


def _survived_cell(event: Interruption) -> str:
    if not event.hit:
        return "- (no workload pods)"
    if event.survived:
        return f"yes, at {event.recovered_at:g} s"
    return "no"


def html_report(f: Figures, description: str = "") -> str:
    """The whole report as one HTML document (see the module docstring)."""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in table_rows(f)
    )
    events = "".join(
        f"<tr><td>{i.t:g} s</td><td>{html.escape(i.node)}</td>"
        f"<td>{html.escape(i.instance_type)}</td><td>{html.escape(i.reason)}</td>"
        f"<td>{html.escape(', '.join(i.affected) or '-')}</td>"
        f"<td>{html.escape(_survived_cell(i))}</td></tr>"
        for i in f.interruptions
    )
    under = "".join(f'<p class="note">{html.escape(line)}</p>' for line in footer(f)[1:])
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in f.notes)
    no_gpu = "" if f.gpu_requested else " No pod asked for GPUs: GPU figures are left out."
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>spotpack simulate: {html.escape(f.scenario)}</title><style>{CSS}</style>"
        f"</head><body><h1>spotpack simulate: {html.escape(f.scenario)}</h1>"
        f"<p>{html.escape(description)}</p>"
        f"<p>{f.duration:g} simulated seconds. Baseline: the same live pods, each alone on the "
        "cheapest on-demand node, vGPU slices rounded up to whole GPUs. Orange dashes mark "
        f"injected interruptions.{no_gpu}</p>"
        "<table><tr><th>metric</th><th>spotpack</th><th>baseline</th><th></th></tr>"
        f"{rows}</table>{under}{''.join(charts(f))}"
        "<h2>Interruptions</h2><table><tr><th>time</th><th>node</th><th>type</th>"
        f"<th>why</th><th>workloads on it</th><th>survived</th></tr>{events}</table>"
        f"{notes}</body></html>\n"
    )


def json_document(f: Figures) -> dict[str, Any]:
    """Every field of the figures plus the derived ones (properties ``asdict`` leaves out)."""
    doc: dict[str, Any] = asdict(f)
    doc["savings"] = f.savings
    doc["interruptions_hit"] = f.hit
    doc["interruptions_survived"] = f.survived
    doc["interruptions_on_empty_nodes"] = f.on_empty_nodes
    doc["gpu_requested"] = f.gpu_requested
    return doc


def json_bytes(f: Figures) -> bytes:
    """:func:`json_document` as indented JSON, for ``--json``."""
    return orjson.dumps(json_document(f), option=orjson.OPT_INDENT_2)


__all__ = [
    "charts",
    "html_report",
    "interruption_summary",
    "json_bytes",
    "json_document",
    "price_note",
    "svg_chart",
    "table_rows",
    "terminal_table",
    "time_label",
    "time_step",
    "value_axis",
]
