"""The HTML report (--report-html): one self-contained file for a reviewer deciding whether to ship.

It holds, with no script and nothing fetched (a Content-Security-Policy forbids every request):
  - a summary (source, target, exit code, runtimes);
  - #rewrites: for each rewrite, pictures of the subgraph it changed, before and after;
  - #parity: the parity table with each output's grade and a histogram of its errors against the
    bound (rewriter/report/error_distribution.py);
  - #refusals: what has no older form, with each rule's guidance;
  - #notes.

Pictures are SVG we emit from a networkx layout (nodes in topological generations, placed by
networkx.multipartite_layout): networkx is already a dependency, so the report needs nothing
outside PyPI (Graphviz's `dot` would need a system package) and draws the same everywhere.
Parity fields are read from the report's JSON defensively: a field a newer parity adds (grades,
bounds) is shown when present, and its absence never breaks the page.
"""
from __future__ import annotations

import html
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from rewriter.report.conversion import Report
    from rewriter.report.subgraph import Subgraph

PICTURES_PER_RULE = 2  # the others of a rule are listed by place: they look alike
BEFORE_FILL, AFTER_FILL = "#f7c9c4", "#c3e6cd"  # nodes a rewrite removed or changed / added or changed
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header .meta{opacity:.85}main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:18px 0;padding:14px 20px}
h2{font-size:18px;margin:4px 0 12px}h3{font-size:15px;margin:16px 0 6px}
.ok{color:#137333}.bad{color:#b3261e}.warn{color:#8a5a00}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600}
.badge.ok{background:#e6f4ea}.badge.bad{background:#fce8e6}.badge.warn{background:#fef7e0}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e6e8eb;padding:5px 8px;text-align:left;
vertical-align:middle}th{background:#f1f3f5;font-weight:600}td.num{font-variant-numeric:tabular-nums}
code{background:#f1f3f5;border-radius:4px;padding:0 4px}
.pair{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.pair figure{margin:0;border:1px solid #e6e8eb;border-radius:6px;padding:6px;background:#fcfcfd}
figcaption{font-size:12px;color:#5f6b7a;margin-bottom:4px}
.rewrite{border-top:1px dashed #dde1e7;padding-top:8px;margin-top:10px}
.more{color:#5f6b7a;font-size:12px}ul.findings li{margin:6px 0}
.legend{font-size:12px;color:#5f6b7a}
.swatch{display:inline-block;width:10px;height:10px;border:1px solid #3c4650;vertical-align:middle}
"""


# --- graph pictures ----------------------------------------------------------------------
def _layout(sub: "Subgraph") -> dict[str, tuple[float, float]]:
    """(column, row) of each node: rows are topological generations, laid out by networkx."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(sub.nodes)
    graph.add_edges_from((src, dst) for src, dst, _ in sub.edges if src != dst)
    if nx.is_directed_acyclic_graph(graph):
        generations = list(nx.topological_generations(graph))
    else:  # a loop (NextIteration back edge): one row per node in name order keeps it legible
        generations = [[name] for name in sorted(graph)]
    for row, names in enumerate(generations):
        for name in names:
            graph.nodes[name]["row"] = row
    positions = nx.multipartite_layout(graph, subset_key="row", align="horizontal", scale=1.0)
    rows: dict[int, list[str]] = defaultdict(list)
    for name in graph:
        rows[graph.nodes[name]["row"]].append(name)
    placed: dict[str, tuple[float, float]] = {}
    for row, names in rows.items():
        for column, name in enumerate(sorted(names, key=lambda n: float(positions[n][0]))):
            placed[name] = (column - (len(names) - 1) / 2, float(row))
    return placed


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def graph_svg(sub: "Subgraph", highlight: Iterable[str], colour: str, title: str) -> str:
    """An inline SVG of the subgraph: highlighted nodes filled with `colour`, control edges dashed."""
    if not sub.nodes:
        return '<svg width="160" height="40" role="img"><text x="8" y="24" font-size="12">(no nodes)</text></svg>'
    placed = _layout(sub)
    box_w, box_h, gap_x, gap_y, pad = 150, 38, 24, 46, 12
    min_col = min(c for c, _ in placed.values())
    cols = max(c for c, _ in placed.values()) - min_col + 1
    rows = max(r for _, r in placed.values()) + 1
    width = int(cols * box_w + (cols - 1) * gap_x + 2 * pad)
    height = int(rows * box_h + (rows - 1) * gap_y + 2 * pad)

    def centre(name: str) -> tuple[float, float]:
        col, row = placed[name]
        return (pad + (col - min_col) * (box_w + gap_x) + box_w / 2, pad + row * (box_h + gap_y) + box_h / 2)

    marked = set(highlight)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{html.escape(title)}" font-family="system-ui,sans-serif">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#6b7785"/></marker></defs>']
    for src, dst, port in sub.edges:
        if src not in placed or dst not in placed or src == dst:
            continue
        (x1, y1), (x2, y2) = centre(src), centre(dst)
        y1 += box_h / 2 if y2 > y1 else -box_h / 2
        y2 -= box_h / 2 if y2 > y1 else -box_h / 2
        dash = ' stroke-dasharray="4 3"' if port is None else ""
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#6b7785" '
                     f'stroke-width="1.3"{dash} marker-end="url(#arrow)"><title>{html.escape(src)} → '
                     f'{html.escape(dst)}{"" if port is None else html.escape(port or ":0")}'
                     f'{" (control)" if port is None else ""}</title></line>')
    for name, op in sub.nodes.items():
        x, y = centre(name)
        fill, stroke = (colour, "#3c4650") if name in marked else ("#ffffff", "#9aa4af")
        parts.append(f'<g><title>{html.escape(name)} ({html.escape(op)})</title>'
                     f'<rect x="{x - box_w / 2:.1f}" y="{y - box_h / 2:.1f}" width="{box_w}" height="{box_h}" rx="6" '
                     f'fill="{fill}" stroke="{stroke}"/>'
                     f'<text x="{x:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="12" font-weight="600">'
                     f'{html.escape(_short(op, 22))}</text>'
                     f'<text x="{x:.1f}" y="{y + 12:.1f}" text-anchor="middle" font-size="10" fill="#5f6b7a">'
                     f'{html.escape(_short(name.rsplit("/", 1)[-1] if "/" in name else name, 24))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


# --- histograms ----------------------------------------------------------------------------
def histogram_svg(hist: Any) -> str:
    """Bars of the error-to-bound ratio by decade; the bound (ratio 1) is the red line."""
    try:
        counts = [int(c) for c in hist["counts"]]
        edges = [float(e) for e in hist["edges"]]
        equal = int(hist.get("equal", 0))
    except (KeyError, TypeError, ValueError):
        return ""
    if len(counts) != len(edges) + 1:
        return ""
    bars = [equal, *counts]
    labels = ["=", *[_decade(e) for e in edges], f">{_decade(edges[-1])}"]
    width, height, step, bar_w, base = 22 * len(bars) + 8, 70, 22, 18, 52
    top = max(bars) or 1
    first_over = 1 + next((i + 1 for i, e in enumerate(edges) if e >= 1.0), len(edges))  # bar index
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="errors against the bound" '
             'font-family="system-ui,sans-serif">']
    for i, (value, label) in enumerate(zip(bars, labels)):
        x = 4 + i * step
        h = 0.0 if value == 0 else max(2.0, 44 * value / top)
        fill = "#137333" if i == 0 else ("#b3261e" if i >= first_over else "#4f7cac")
        what = "equal bit for bit" if i == 0 else f"error/bound in ({labels[i - 1] if i > 1 else 0}, {label}]"
        parts.append(f'<rect x="{x}" y="{base - h:.1f}" width="{bar_w}" height="{h:.1f}" fill="{fill}">'
                     f'<title>{html.escape(what)}: {value} element(s)</title></rect>'
                     f'<text x="{x + bar_w / 2}" y="{base + 12}" text-anchor="middle" font-size="8" fill="#5f6b7a">'
                     f'{html.escape(label)}</text>')
    line_x = 4 + first_over * step - 2
    parts.append(f'<line x1="{line_x}" y1="4" x2="{line_x}" y2="{base}" stroke="#b3261e" stroke-dasharray="3 2">'
                 '<title>the bound: atol + rtol·|expected|</title></line></svg>')
    return "".join(parts)


def _decade(value: float) -> str:
    return f"{value:g}" if value >= 1 else f"1e{round(math.log10(value))}"


# --- the page ------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _e(value)


def _grade(output: dict[str, Any]) -> tuple[str, str]:
    """(text, css class) of an output's grade: the parity issue's grade when the report has one."""
    grade = output.get("grade") or output.get("status") or "?"
    good = {"match", "bit-identical", "within-noise", "within-tolerance", "exact"}
    return str(grade), ("ok" if grade in good else "bad")


def _rewrites(report: "Report") -> str:
    plan = report.plan
    if plan is None:
        return f"<p>Not part of this report ({_e(report.command)} rewrites nothing).</p>"
    applications = list(plan.applications)
    if not applications:
        return ("<p>No graph rewrite was applied.</p>" if plan.refusals
                else "<p>No graph rewrite: the model's graphs needed none for this target.</p>")
    by_rule: dict[str, list[Any]] = defaultdict(list)
    for app in applications:
        by_rule[app.rule].append(app)
    exact = {rule.id: rule.exact for rule in plan.rules} if plan is not None else {}
    out = [f'<p class="legend">Each picture shows the nodes the rule matched with their direct neighbours; '
           f'dashed arrows are control edges. Before: <span class="swatch" style="background:{BEFORE_FILL}"></span> '
           f'matched (removed or changed). After: <span class="swatch" style="background:{AFTER_FILL}"></span> '
           'added or changed.</p>']
    # The rewrites that touch the most nodes first: they are the ones a reviewer wants to see.
    def weight(item: tuple[str, list[Any]]) -> tuple[int, str]:
        return (-max(len(a.matched) + len(a.added) for a in item[1]), item[0])

    for rule, apps in sorted(by_rule.items(), key=weight):
        kind = "exact" if exact.get(rule, True) else "lossy (allowed by the user)"
        out.append(f'<h3 id="rule-{_e(rule)}"><code>{_e(rule)}</code> · {len(apps)} rewrite(s) · {kind}</h3>')
        for app in apps[:PICTURES_PER_RULE]:
            matched_text = ", ".join(f"<code>{_e(n)}</code> ({_e(app.ops.get(n, '?'))})" for n in app.matched.values())
            out.append(f'<div class="rewrite"><div>{_e(app.where)}: matched {matched_text}{_changes(app)}</div>')
            before, after = getattr(app, "graph_before", None), getattr(app, "graph_after", None)
            if before is not None and after is not None:
                matched = set(app.matched.values())
                edited = matched - set(app.removed) if (app.dropped_attrs or app.set_attrs or app.retyped) else set()
                out.append('<div class="pair">'
                           f'<figure><figcaption>before</figcaption>{graph_svg(before, matched, BEFORE_FILL, "before")}</figure>'
                           f'<figure><figcaption>after</figcaption>{graph_svg(after, set(app.added) | edited, AFTER_FILL, "after")}</figure>'
                           '</div>')
                if before.hidden or after.hidden:
                    out.append(f'<div class="more">{max(before.hidden, after.hidden)} more neighbour(s) not drawn</div>')
            else:
                out.append('<div class="more">(no picture recorded for this rewrite)</div>')
            out.append("</div>")
        if len(apps) > PICTURES_PER_RULE:
            rest = ", ".join(f"{_e(a.where)} <code>{_e(next(iter(a.matched.values()), ''))}</code>"
                             for a in apps[PICTURES_PER_RULE:PICTURES_PER_RULE + 30])
            more = len(apps) - PICTURES_PER_RULE
            out.append(f'<p class="more">and {more} more like these: {rest}{" …" if more > 30 else ""}</p>')
    return "".join(out)


def _changes(app: Any) -> str:
    parts = []
    if app.removed:
        parts.append("removed " + ", ".join(f"<code>{_e(n)}</code>" for n in app.removed))
    if app.added:
        parts.append("added " + ", ".join(f"<code>{_e(n)}</code> ({_e(op)})" for n, op in app.added.items()))
    for label, items in (("dropped attrs", app.dropped_attrs), ("set attrs", app.set_attrs), ("retyped", app.retyped)):
        if items:
            parts.append(f"{label} " + ", ".join(f"<code>{_e(i)}</code>" for i in items))
    return "; " + "; ".join(parts) if parts else ""


def _parity(data: dict[str, Any]) -> str:
    parity = data.get("parity") or {}
    if not isinstance(parity, dict) or "outputs" not in parity:
        why = (parity or {}).get("skipped", "not run") if isinstance(parity, dict) else "not run"
        if why == "not run" and data.get("exit_code") == 1:
            why = "the conversion was refused, so there is no output to run"
        return f"<p>Parity was not run: {_e(why)}.</p>"
    runtime = parity.get("runtime") or {}
    ok = parity.get("ok")
    source_side = parity.get("source_runtime")
    if isinstance(source_side, dict):  # which runtime ran the source (runtimes/source_runtime.py)
        source_side = source_side.get("describe") or source_side.get("version")
    out = [f'<p>Judged by <b>TensorFlow {_e(runtime.get("version", "?"))}</b> (its C++ loader, the real runtime; '
           f'wheel sha256 <code>{_e(str(runtime.get("wheel_sha256", ""))[:16])}…</code>), seed {_e(parity.get("seed"))}'
           + (f'; the source ran in {_e(source_side)}' if source_side else "")
           + f'. Verdict: <span class="badge {"ok" if ok else "bad"}">{"all outputs match" if ok else "FAILED"}</span></p>']
    if parity.get("load_error"):
        out.append(f'<p class="bad">The target could not load the model: {_e(parity["load_error"])}</p>')
    for name, error in sorted((parity.get("python_loader_function_errors") or {}).items()):
        out.append(f'<p class="bad">Function <code>{_e(name)}</code> refused by the target\'s importer: {_e(error)}</p>')
    outputs = parity.get("outputs") or []
    if outputs:
        out.append('<table><tr><th>signature</th><th>output</th><th>dtype</th><th>shape</th><th>grade</th>'
                   '<th>max abs err</th><th>max rel err</th><th>bound (absolute, or rtol / atol)</th>'
                   '<th>errors against the bound</th></tr>')
        for o in outputs:
            if not isinstance(o, dict):
                continue
            grade, css = _grade(o)
            bound = o.get("bound")
            if o.get("rtol") is not None:  # --rtol/--atol given, or a dtype judged by fixed tolerances
                tol = f"{_num(o.get('rtol'))} / {_num(o.get('atol'))}"
            elif bound is not None:  # the model's measured noise bound, and where it came from
                tol = (f"{_num(bound) if not isinstance(bound, dict) else _e(bound)}"
                       + (f'<div class="more">{_e(o.get("bound_origin"))}</div>' if o.get("bound_origin") else ""))
            else:
                tol = "exact"
            message = f'<div class="more">{_e(o.get("message"))}</div>' if o.get("message") else ""
            out.append(f'<tr><td>{_e(o.get("signature"))}</td><td>{_e(o.get("output"))}</td><td>{_e(o.get("dtype"))}</td>'
                       f'<td>{_e(o.get("shape"))}</td><td><span class="badge {css}">{_e(grade)}</span>{message}</td>'
                       f'<td class="num">{_num(o.get("max_abs_error"))}</td><td class="num">{_num(o.get("max_rel_error"))}</td>'
                       f'<td class="num">{tol}</td><td>{histogram_svg(o.get("error_histogram")) if o.get("error_histogram") else "exact comparison" if o.get("rtol") is None else ""}</td></tr>')
        out.append('</table><p class="legend">Histogram: elements equal bit for bit (green), then the error of each '
                   'other element divided by its bound (the measured noise bound of the model, or atol + rtol·|expected| '
                   'with --rtol/--atol), by decade; the dashed red line is '
                   'the bound, bars right of it (red) are out of tolerance.</p>')
    for skipped in parity.get("skipped") or []:
        out.append(f'<p class="bad">Not compared: {_e(skipped)}</p>')
    for key, error in sorted((parity.get("source_session_errors") or {}).items()):
        out.append(f'<p class="warn">The source fails on {_e(key)} too when loaded as a C++ loader does: {_e(error)}</p>')
    if parity.get("source_load_error"):
        out.append(f'<p class="warn">The source does not load in {_e(parity["source_load_error"])} either: the '
                   'export itself is the cause, not the conversion.</p>')
    loader = parity.get("python_loader")
    if isinstance(loader, dict) and "outputs" in loader:
        out.append(f'<h3>TensorFlow {_e(loader.get("version"))}\'s Python loader (tf.saved_model.load)</h3>')
        if loader.get("load_error"):
            out.append(f'<p class="bad">It failed to load the model: {_e(loader["load_error"])}</p>')
        out.append("<ul>" + "".join(
            f'<li>{_e(o.get("signature"))}/{_e(o.get("output"))}: <span class="badge {_grade(o)[1]}">{_e(_grade(o)[0])}</span></li>'
            for o in loader.get("outputs") or [] if isinstance(o, dict)) + "</ul>")
    return "".join(out)


def _refusals(data: dict[str, Any]) -> str:
    if "refusals" not in data:  # no plan: verify compares an existing pair
        return "<p>Not part of this report.</p>"
    refusals = data.get("refusals") or []
    if not refusals:
        return "<p>None: everything the target lacks has an exact rewrite.</p>"
    out = [f"<p>{len(refusals)} problem(s) have no exact older form; nothing was written. What to do is "
           "said in each:</p><ul class=\"findings\">"]
    for f in refusals:
        if not isinstance(f, dict):
            continue
        rule = f' · rule <code>{_e(f["rule"])}</code>' if f.get("rule") else ""
        since = f' · since TensorFlow {_e(f["since"])}' if f.get("since") else ""
        out.append(f'<li><b>{_e(f.get("op"))}</b> <code>{_e(f.get("node"))}</code> in {_e(f.get("where"))} '
                   f'<span class="badge bad">{_e(f.get("kind"))}</span>{rule}{since}<br>{_e(f.get("message"))}</li>')
    return "".join(out) + "</ul>"


def render(report: "Report") -> str:
    data = report.to_json()
    source, target = data.get("source") or {}, data.get("target") or {}
    code = data.get("exit_code", 0)
    verdict = {0: ("converted", "ok"), 1: ("refused", "bad"), 2: ("bad input", "bad"), 3: ("parity failed", "bad"),
               4: ("runtime unavailable", "warn")}.get(code, ("internal error", "bad"))
    notes = data.get("notes") or []
    object_graph = data.get("object_graph_rules_applied") or []
    sections = [
        ('summary', "Summary",
         f'<table><tr><th>input</th><td><code>{_e(data.get("input"))}</code></td></tr>'
         f'<tr><th>output</th><td><code>{_e(data.get("output"))}</code></td></tr>'
         f'<tr><th>TensorFlow</th><td>{_e(source.get("version", "?"))} → {_e(target.get("release", "?"))}</td></tr>'
         f'<tr><th>result</th><td><span class="badge {verdict[1]}">{verdict[0]}</span> exit code {_e(code)}'
         f'{" — " + _e(data.get("error")) if data.get("error") else ""}</td></tr>'
         f'<tr><th>rewrites</th><td>{len(data.get("rules_applied") or [])} graph rewrite(s), '
         f'{len(object_graph)} object-graph change(s)'
         f'{"; lossy rules allowed: " + _e(", ".join(data.get("lossy_rules_allowed") or [])) if data.get("lossy_rules_allowed") else ""}'
         f'</td></tr></table>'),
        ("rewrites", "Rewrites", _rewrites(report)),
        ("parity", "Parity in the target runtime", _parity(data)),
        ("refusals", "Refusals", _refusals(data)),
        ("notes", "Notes", ("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>") if notes else "<p>None.</p>"),
    ]
    body = "".join(f'<section id="{sid}"><h2>{title}</h2>{content}</section>' for sid, title, content in sections)
    source_path = Path(str(data.get("input") or "model"))
    # ".../my_model/saved_model" says less than "my_model/saved_model"
    shown = "/".join(source_path.parts[-2:]) if source_path.name == "saved_model" else source_path.name
    title = f"tfdowngrade report: {shown}"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f'<header><h1>{_e(title)}</h1><div class="meta">{_e(data.get("tool"))} · TensorFlow '
            f'{_e(source.get("version", "?"))} → {_e(target.get("release", "?"))}</div></header>'
            f"<main>{body}</main></body></html>\n")


def write_html(report: "Report", path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(render(report), "utf-8")
    os.replace(tmp, path)
