"""A picture of a flow: its nodes as boxes and its transitions as arrows, as server-side SVG.

Layered layout: a node's column is its distance (BFS) from the start node, its row its order
within that column; nodes nothing reaches get a last column of their own. Arrows to the next
column are straight curves; arrows back (loops, "back to menu") bend below the boxes. A box is
labelled with the first words of its text in the viewer's language (its id and whole text are in
its ``<title>``, shown on hover). Every text is escaped; the SVG carries a viewBox of its whole
content, which the page's script (``admin/static/flows.js``) pans and zooms.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from flows.model import Flow, Node
from flows.nodes import KINDS
from flows.nodes.base import texts_of

BOX_W, BOX_H = 168, 58
COL_GAP, ROW_GAP = 64, 22
MARGIN = 16
#: Fill per node kind (waiting kinds in blue, actions in yellow, endings in red...).
COLOURS = {
    "message": "#eef3f8",
    "menu": "#d7e7f7",
    "ask": "#d7e7f7",
    "branch": "#f1e8fa",
    "action": "#fbf0cf",
    "list": "#e2f2e5",
    "goto": "#e6e0f5",
    "end": "#f8dcdc",
}
MAX_LABEL = 22
#: Characters of a text line in a box (12 px type in a 168 px box).
LINE_CHARS = 25
#: Node kinds in the viewer's language (the YAML's ``type``).
KIND_NAMES = {
    "message": _l("message"),
    "menu": _l("menu"),
    "ask": _l("question"),
    "branch": _l("branch"),
    "action": _l("action"),
    "list": _l("list"),
    "goto": _l("go to"),
    "end": _l("end"),
}


@dataclass
class Edge:
    source: str
    target: str
    label: str = ""
    external: bool = False  # a goto into another flow


def edges_of(node: Node) -> list[Edge]:
    """The arrows leaving ``node``, labelled with the option number or outcome where known."""
    kind = KINDS.get(node.kind)
    if kind is None:
        return []
    found: list[Edge] = []
    spec = node.spec
    try:
        if node.kind == "menu" and isinstance(spec.get("options"), list):
            for i, option in enumerate(spec["options"], 1):
                if isinstance(option, dict) and isinstance(option.get("goto"), str):
                    found.append(Edge(node.id, option["goto"], str(i)))
        if node.kind == "action" and isinstance(spec.get("routes"), dict):
            for outcome, target in spec["routes"].items():
                if isinstance(target, str):
                    found.append(Edge(node.id, target, str(outcome)))
        labelled = {e.target for e in found}
        for target in kind.targets(node):
            if isinstance(target, str) and target not in labelled:
                found.append(Edge(node.id, target))
        for key in kind.flow_targets(node):
            found.append(Edge(node.id, f"flow:{key}", "", external=True))
    except (AttributeError, KeyError, TypeError):  # a malformed node: draw it without arrows
        return found
    return found


def layout(flow: Flow) -> dict[str, tuple[int, int]]:
    """node id -> (column, row)."""
    depth: dict[str, int] = {}  # insertion order is BFS discovery order
    if flow.start in flow.nodes:
        depth[flow.start] = 0
        queue = deque([flow.start])
        while queue:
            current = queue.popleft()
            for edge in edges_of(flow.nodes[current]):
                if edge.target in flow.nodes and edge.target not in depth:
                    depth[edge.target] = depth[current] + 1
                    queue.append(edge.target)
    last = max(depth.values(), default=-1) + 1
    for node_id in flow.nodes:
        depth.setdefault(node_id, last)
    rows: dict[int, int] = {}
    placed = {}
    # Within a column, BFS discovery order keeps siblings together; unreached nodes in file order.
    order = {node_id: i for i, node_id in enumerate(depth)}
    for node_id in sorted(flow.nodes, key=lambda n: (depth[n], order[n])):
        column = depth[node_id]
        placed[node_id] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    return placed


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(flow: Flow, node: Node, language: str) -> str:
    texts = texts_of(node.spec.get("text"))
    return " ".join(flow.text(texts, language).split()) if texts else ""


def first_words(text: str, lines: int = 2, width: int = LINE_CHARS) -> list[str]:
    """The first words of ``text`` on at most ``lines`` lines of ``width`` characters, the last
    ending in "…" when words are left over; a word longer than a line is cut."""
    found: list[str] = []
    for word in (_short(w, width) for w in text.split()):
        if found and len(found[-1]) + 1 + len(word) <= width:
            found[-1] += " " + word
        elif len(found) < lines:
            found.append(word)
        else:
            found[-1] = _short(found[-1] + " …", width)
            break
    return found


def _label(flow: Flow, node: Node, language: str) -> list[str]:
    """What the box says: its text's first words, else what it does."""
    text = _text(flow, node, language)
    if text:
        return first_words(text)
    spec = node.spec
    if node.kind == "action" and isinstance(spec.get("action"), str):
        return first_words(_("Action: %(name)s", name=spec["action"].replace("_", " ")))
    if node.kind == "goto" and isinstance(spec.get("flow"), str):
        return first_words(_("Go to the flow %(name)s", name=spec["flow"]))
    if node.kind == "branch":
        return [_("Branch")]
    if node.kind == "end":
        return [_("End")]
    return first_words(node.id.replace("_", " "))


def _tooltip(flow: Flow, node: Node, language: str) -> str:
    text = _text(flow, node, language)
    return f"{node.id} ({_kind_name(node.kind)})" + (f": {text}" if text else "")


def _kind_name(kind: str) -> str:
    return str(KIND_NAMES.get(kind, kind))


def render(
    flow: Flow, bad_nodes: frozenset[str] | set[str] = frozenset(), language: str | None = None
) -> Markup:
    """The flow as an ``<svg>`` element, its boxes labelled in ``language`` (the flow's default
    language when it has no text in it); nodes in ``bad_nodes`` are outlined in red."""
    language = language or flow.default_language
    places = layout(flow)
    externals: list[str] = []
    for node in flow.nodes.values():
        for edge in edges_of(node):
            if edge.external and edge.target not in externals:
                externals.append(edge.target)
    columns = max((c for c, _ in places.values()), default=0) + 1
    for i, target in enumerate(externals):  # other flows: one column at the right
        places[target] = (columns, i)
    if externals:
        columns += 1
    height_rows = max((r for _, r in places.values()), default=0) + 1

    def box(node_id: str) -> tuple[int, int]:
        column, row = places[node_id]
        return MARGIN + column * (BOX_W + COL_GAP), MARGIN + row * (BOX_H + ROW_GAP)

    width = MARGIN * 2 + columns * (BOX_W + COL_GAP) - COL_GAP
    height = MARGIN * 2 + height_rows * (BOX_H + ROW_GAP) - ROW_GAP + 40
    name = _("Graph of the flow %(key)s", key=flow.key)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(name)}">',
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
        "fill='#55606d'/></marker></defs>",
    ]
    bend = 0
    for node in flow.nodes.values():
        # A missing target is not drawn: the validator reports it and the node is outlined.
        drawn = [e for e in edges_of(node) if e.target in places]
        ahead = [e for e in drawn if places[e.target][0] > places[node.id][0]]
        for edge in drawn:
            x1, y1 = box(edge.source)
            x2, y2 = box(edge.target)
            sx: float
            sy: float
            tx: float
            ty: float
            lx: float
            ly: float
            forward = places[edge.target][0] > places[edge.source][0]
            if forward:
                # Arrows leave spread along the right side; labels sit by the target.
                share = (ahead.index(edge) + 1) / (len(ahead) + 1)
                sx, sy, tx, ty = x1 + BOX_W, y1 + BOX_H * share, x2, y2 + BOX_H / 2
                mid = (sx + tx) / 2
                d = f"M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} {mid:.0f},{ty:.0f} {tx:.0f},{ty:.0f}"
                lx, ly = tx - 18, ty - 5
            else:  # back or sideways: leave at the bottom, come back in at the bottom
                bend = (bend + 1) % 4
                sx, sy, tx, ty = x1 + BOX_W / 2, y1 + BOX_H, x2 + BOX_W / 2 + 12, y2 + BOX_H
                low = max(sy, ty) + 14 + bend * 5
                d = f"M{sx:.0f},{sy:.0f} C{sx:.0f},{low:.0f} {tx:.0f},{low:.0f} {tx:.0f},{ty:.0f}"
                lx, ly = sx + 4, sy + 12
            style = (
                'stroke="#55606d" stroke-width="1.2"'
                if forward
                else 'stroke="#8793a0" stroke-width="1.1" stroke-dasharray="5 3"'
            )
            parts.append(
                f'<path class="edge{"" if forward else " back"}" d="{d}" fill="none" {style} '
                'marker-end="url(#arrow)"/>'
            )
            if edge.label:
                parts.append(
                    f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="10" fill="#17324d">'
                    f"{escape(_short(edge.label, 12))}</text>"
                )
    for node_id in flow.nodes:
        node = flow.nodes[node_id]
        x, y = box(node_id)
        fill = COLOURS.get(node.kind, "#ffffff")
        bad = node_id in bad_nodes
        stroke = "#a4161a" if bad else ("#17324d" if node_id == flow.start else "#8793a0")
        lines = "".join(
            f'<text x="{x + 8}" y="{y + 17 + 15 * i}" font-size="12" font-weight="600" '
            f'fill="#1d2530">{escape(line)}</text>'
            for i, line in enumerate(_label(flow, node, language))
        )
        parts.append(
            f'<g class="node{" bad" if bad else ""}" data-node="{escape(node_id)}">'
            f"<title>{escape(_tooltip(flow, node, language))}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2.2 if bad or node_id == flow.start else 1}"/>'
            f"{lines}"
            f'<text x="{x + 8}" y="{y + 51}" font-size="10" fill="#46505c">'
            f"{escape(_short(_kind_line(node), 28))}</text></g>"
        )
    for target in externals:
        x, y = box(target)
        other = target.removeprefix("flow:")
        title, label = _("Another flow: %(key)s", key=other), _("flow %(key)s", key=other)
        parts.append(
            f'<g class="node external"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" '
            'rx="18" fill="#fff" stroke="#6b5fa8" stroke-dasharray="4 3"/>'
            f"<title>{escape(title)}</title>"
            f'<text x="{x + 10}" y="{y + 33}" font-size="12" fill="#3d3470">'
            f"{escape(_short(label))}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every text above is escaped)


def _kind_line(node: Node) -> str:
    """The small line under the label: the kind of node (its id is in the box's title)."""
    spec = node.spec
    if node.kind == "goto" and isinstance(spec.get("flow"), str):
        return f"{_kind_name('goto')} → {spec['flow']}"
    return _kind_name(node.kind)
