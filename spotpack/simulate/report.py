"""The report: a terminal table, one self-contained HTML file with SVG charts, and raw JSON.

The HTML has no external reference at all (no script, font, stylesheet or
image URL): inline CSS and inline SVG drawn here, so the file can be mailed,
archived, or opened offline. Every number in it comes from :class:`Figures`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import orjson

from spotpack.simulate.metrics import Figures

WIDTH, HEIGHT, PAD = 640, 220, 44
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _money(x: float) -> str:
    return f"${x:,.2f}"


def table_rows(f: Figures) -> list[tuple[str, str, str, str]]:
    """(metric, spotpack, baseline, difference) rows, the same in the terminal and the HTML."""

    def delta(a: float, b: float) -> str:
        return f"{100 * (1 - a / b):+.1f}% saved" if b > 0 else "-"

    p = f.pending
    survived = f"{f.survived}/{len(f.interruptions)} survived"
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
        ("interruptions", survived, "0 (on-demand only)", ""),
    ]


def terminal_table(f: Figures) -> str:
    rows = [("metric", "spotpack", "baseline", ""), *table_rows(f)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"scenario {f.scenario}: {f.duration:g} simulated seconds"]
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(
        "baseline: the same live pods, each alone on the cheapest on-demand node, "
        "vGPU slices rounded up to whole GPUs"
    )
    lines.extend(f"note: {n}" for n in f.notes)
    return "\n".join(lines)


def _scale(values: Sequence[float], lo: float, hi: float, size: float, flip: bool) -> list[float]:
    span = (hi - lo) or 1.0
    out = [(v - lo) / span * size for v in values]
    return [size - v for v in out] if flip else out


def nice_top(peak: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``peak`` (> 0): axis ticks at a
    quarter of it read as round numbers (0, 0.5, 1, 1.5, 2 rather than 0.868, 1.74)."""
    magnitude: float = 10.0 ** math.floor(math.log10(peak))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * magnitude >= peak * (1 - 1e-12):
            return step * magnitude
    return 10.0 * magnitude


def svg_chart(
    title: str,
    t: Sequence[float],
    lines: Sequence[tuple[str, Sequence[float]]],
    *,
    unit: str = "",
    percent: bool = False,
    marks: Sequence[float] = (),
) -> str:
    """A line chart as an inline ``<svg>``: axes, a few ticks, one polyline per series."""
    w, h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    all_values = [1e-9, *(v for _, vs in lines for v in vs)]
    hi = 1.0 if percent else nice_top(max(all_values))
    t_hi = max(t[-1] if t else 1.0, 1e-9)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{PAD}" y="18" class="title">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{PAD + h}" x2="{PAD + w}" y2="{PAD + h}" class="axis"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{PAD + h}" class="axis"/>',
    ]
    for i in range(5):
        v = hi * i / 4
        y = PAD + h - h * i / 4
        label = f"{100 * v:.0f}%" if percent else f"{v:g}{unit}"
        parts.append(
            f'<text x="{PAD - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{label}</text>'
        )
        parts.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{PAD + w}" y2="{y:.1f}" class="grid"/>')
        tx = PAD + w * i / 4
        parts.append(
            f'<text x="{tx:.1f}" y="{PAD + h + 16}" class="tick" text-anchor="middle">'
            f"{t_hi * i / 4 / 60:.0f} min</text>"
        )
    for m in marks:
        x = PAD + w * m / t_hi
        parts.append(f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{PAD + h}" class="mark"/>')
    xs = _scale(t, 0.0, t_hi, w, flip=False)
    for n, (name, values) in enumerate(lines):
        ys = _scale(values, 0.0, hi, h, flip=True)
        points = " ".join(f"{PAD + x:.1f},{PAD + y:.1f}" for x, y in zip(xs, ys, strict=True))
        color = COLORS[n % len(COLORS)]
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(
            f'<text x="{PAD + w - 4}" y="{PAD + 14 + 14 * n}" text-anchor="end" '
            f'fill="{color}" class="legend">{html.escape(name)}</text>'
        )
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


def html_report(f: Figures, description: str = "") -> str:
    """The whole report as one HTML document (see the module docstring)."""
    s = f.series
    marks = [i.t for i in f.interruptions]
    charts = [
        svg_chart(
            "cost per hour ($/h)",
            s.t,
            [("spotpack", s.cost), ("baseline", s.baseline_cost)],
            marks=marks,
        ),
        svg_chart("spot share of nodes", s.t, [("spot", s.spot_share)], percent=True),
        svg_chart(
            "GPU memory allocated",
            s.t,
            [("spotpack", s.gpu_mem), ("baseline", s.baseline_gpu_mem)],
            percent=True,
        ),
        svg_chart(
            "GPU cores allocated",
            s.t,
            [("spotpack", s.gpu_cores), ("baseline", s.baseline_gpu_cores)],
            percent=True,
        ),
        svg_chart("pods pending", s.t, [("pending pods", [float(x) for x in s.pending])]),
        svg_chart(
            "nodes",
            s.t,
            [
                ("spotpack", [float(x) for x in s.nodes]),
                ("baseline", [float(x) for x in s.baseline_nodes]),
            ],
            marks=marks,
        ),
    ]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in table_rows(f)
    )
    events = "".join(
        f"<tr><td>{i.t:g} s</td><td>{html.escape(i.node)}</td>"
        f"<td>{html.escape(i.instance_type)}</td><td>{html.escape(i.reason)}</td>"
        f"<td>{html.escape(', '.join(i.affected) or '-')}</td>"
        f"<td>{'yes, at ' + format(i.recovered_at, 'g') + ' s' if i.survived else 'no'}</td></tr>"
        for i in f.interruptions
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in f.notes)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>spotpack simulate: {html.escape(f.scenario)}</title><style>{CSS}</style>"
        f"</head><body><h1>spotpack simulate: {html.escape(f.scenario)}</h1>"
        f"<p>{html.escape(description)}</p>"
        f"<p>{f.duration:g} simulated seconds. Baseline: the same live pods, each alone on the "
        "cheapest on-demand node, vGPU slices rounded up to whole GPUs. Orange dashes mark "
        "injected interruptions.</p>"
        "<table><tr><th>metric</th><th>spotpack</th><th>baseline</th><th></th></tr>"
        f"{rows}</table>{''.join(charts)}"
        "<h2>Interruptions</h2><table><tr><th>time</th><th>node</th><th>type</th>"
        f"<th>why</th><th>workloads on it</th><th>survived</th></tr>{events}</table>"
        f"{notes}</body></html>\n"
    )


def json_document(f: Figures) -> dict[str, Any]:
    doc: dict[str, Any] = asdict(f)
    doc["savings"] = f.savings
    doc["interruptions_survived"] = f.survived
    return doc


def json_bytes(f: Figures) -> bytes:
    return orjson.dumps(json_document(f), option=orjson.OPT_INDENT_2)


__all__ = [
    "html_report",
    "json_bytes",
    "json_document",
    "svg_chart",
    "table_rows",
    "terminal_table",
]
