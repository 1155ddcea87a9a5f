"""An inline SVG of a compiled deployment: what runs where, and how requests and KV flow.

``deployment_svg(graph, pools) -> str`` draws two parts under one legend:

* the *topology*: one rounded box per machine node (name, GPU type, GPU link
  and its bandwidth) holding one square per GPU, coloured by the pool whose
  instance occupies it (grey: idle) and labelled with the instance index; the
  GPUs of one instance are outlined together. Networks are bars under the
  nodes they join, labelled with the link and its per-NIC bandwidth. Nodes wrap
  into rows of :data:`NODES_PER_ROW`.
* the *dataflow*, left to right: arrivals -> router (policy) -> one box per
  pool -> for disaggregation a KV-transfer box (bottleneck bandwidth and link,
  aggregated over the instance pairs) -> the decode router -> decode pool ->
  done.

``graph`` is what ``tokensim graph SPEC --format json`` prints, parsed;
``pools`` is one dict per pool in spec order with keys ``name``, ``role``,
``model``, ``dtype``, ``instances``, ``tp``, ``pp``, ``gpu`` and ``batching`` (and
``kv_tiers``, a pool's lower KV tiers, and ``autoscale``, how many of its instances may
serve, where it has them).
Coordinates are whole pixels of the viewBox, text widths are estimated from
character classes (a little wide on purpose), and every input is sorted
before it is drawn, so the same input gives the same string.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html import escape

from tokensim.lang.units import Dim, format_quantity

__all__ = ["IDLE_COLOR", "NODES_PER_ROW", "POOL_COLORS", "deployment_svg", "pool_colors"]

# Okabe-Ito, the colour-blind-safe palette, in the order pools get them.
POOL_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
IDLE_COLOR = "#D0D0D0"
# Networks: dark, unlike the pool colours, and told apart by dash as well.
NET_STYLES = (("#3B5B78", ""), ("#7A4F6E", "7 4"), ("#4F6B3A", "2 3"), ("#6B5B3A", "10 3 2 3"))
NODES_PER_ROW = 4

FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
INK, MUTED, LINE = "#1F2328", "#5B636B", "#8C959F"

MARGIN = 16
GPU_SIZE, GPU_GAP, GPUS_PER_ROW = 30, 6, 8
PAD = 12  # inside a box
LINE_H = 16  # one line of 12 px text
LANE_H = 34  # one network bar and its label, under a row of nodes
COL_GAP = 48  # between dataflow columns (room for an arrow)
ROW_GAP = 14  # between boxes stacked in one dataflow column
WRAP = 34  # characters per line of a policy text


def _bw(bps: float) -> str:
    return format_quantity(bps, Dim.BANDWIDTH)


def _natural(s: str) -> tuple:
    """Sort key where ``n2`` comes before ``n10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))


def _char_em(c: str) -> float:
    if c in "il.,:;|!'`[]()":
        return 0.38
    if c in "ftrjI -":
        return 0.42
    if c in "mwMW%@":
        return 0.96
    if c.isupper():
        return 0.7
    if c.isdigit():
        return 0.66
    return 0.6


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Estimated width in px of ``text`` at ``size`` px: on the wide side of
    common sans-serif fonts, so boxes sized by it hold their text."""
    return sum(_char_em(c) for c in text) * size * (1.14 if bold else 1.0)


def _wrap(text: str, width: int = WRAP) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _ink_on(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (#RRGGBB)."""
    lum = 0.0
    for weight, k in ((0.2126, 1), (0.7152, 3), (0.0722, 5)):
        c = int(color[k : k + 2], 16) / 255
        lum += weight * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return "#000000" if lum > 0.22 else "#FFFFFF"  # relative luminance, WCAG


def _tint(color: str, share: float = 0.16) -> str:
    """``color`` mixed with white, ``share`` of the colour kept."""
    rgb = (int(color[k : k + 2], 16) for k in (1, 3, 5))
    return "#" + "".join(f"{round(255 - (255 - c) * share):02X}" for c in rgb)


# ------------------------------------------------------------------ SVG pieces


def _e(s) -> str:
    return escape(str(s), quote=True)


def _rect(x, y, w, h, fill, stroke="none", rx=0, width=1) -> str:
    return (
        f'<rect x="{round(x)}" y="{round(y)}" width="{round(w)}" height="{round(h)}" '
        f'rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>'
    )


def _text(x, y, s, size=12, bold=False, fill=INK, anchor="start") -> str:
    attrs = ' font-weight="bold"' if bold else ""
    attrs += f' text-anchor="{anchor}"' if anchor != "start" else ""
    return (
        f'<text x="{round(x)}" y="{round(y)}" font-size="{size}" fill="{fill}"{attrs}>'
        f"{_e(s)}</text>"
    )


def _arrow(chain: list, stroke=LINE, width=1.5) -> list[str]:
    """A curve from the right side of the first box through the ghosts in
    ``chain`` to the left side of the last, with an arrowhead there."""
    x, y = chain[0].x + chain[0].w, chain[0].y + chain[0].h // 2
    d = [f"M{x},{y}"]
    for k, box in enumerate(chain[1:], start=1):
        tx, ty = box.x - (8 if k == len(chain) - 1 else 0), box.y + box.h // 2
        mid = (x + tx) // 2
        d.append(f"L{tx},{ty}" if ty == y else f"C{mid},{y} {mid},{ty} {tx},{ty}")
        x, y = tx, ty
        if box.ghost:
            x = box.x + box.w
            d.append(f"L{x},{y}")
    end = chain[-1]
    x2, y2 = end.x, end.y + end.h // 2
    return [
        f'<path d="{" ".join(d)}" fill="none" stroke="{stroke}" stroke-width="{width}"/>',
        f'<polygon points="{x2},{y2} {x2 - 8},{y2 - 5} {x2 - 8},{y2 + 5}" fill="{stroke}"/>',
    ]


# ------------------------------------------------------------------ reading the graph


@dataclass
class _Machine:
    name: str
    gpus: list[tuple[int, str]] = field(default_factory=list)  # (index, vertex id)
    gpu_type: str = ""
    link: str = ""
    nics: int = 0


@dataclass
class _Network:
    name: str
    link: str
    per_nic_Bps: float
    members: list[str]


def _index(vertex: str, sep: str) -> int:
    m = re.search(re.escape(sep) + r"(\d+)\]?$", vertex)
    return int(m.group(1)) if m else 0


def _span_key(span) -> tuple:
    """``file:line:col`` as a sort key (declaration order); no span sorts last."""
    parts = str(span).rsplit(":", 2) if span else []
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return (0, parts[0], int(parts[1]), int(parts[2]))
    return (1, "", 0, 0)


def _machines(topo: dict) -> dict[str, _Machine]:
    out: dict[str, _Machine] = {}
    for v in sorted(topo.get("nodes", []), key=lambda v: _natural(v["id"])):
        if "node" not in v:
            continue
        m = out.setdefault(v["node"], _Machine(v["node"]))
        if v.get("kind") == "gpu":
            m.gpus.append((_index(v["id"], "gpu"), v["id"]))
            m.gpu_type = m.gpu_type or str(v.get("gpu", ""))
        elif v.get("kind") == "nic":
            m.nics += int(v.get("lanes", 1))
    kinds = {v["id"]: v.get("kind") for v in topo.get("nodes", [])}
    links: dict[str, dict[str, str]] = {}
    for e in topo.get("edges", []):
        for a, b in ((e["source"], e["target"]), (e["target"], e["source"])):
            if kinds.get(a) == "gpu" and kinds.get(b) in ("switch", "host"):
                text = f"{e.get('link', '?')} {_bw(e.get('bandwidth_Bps', 0))}"
                links.setdefault(a.rsplit("/", 1)[0], {}).setdefault(kinds[b], text)
    first: dict[str, tuple] = {}
    for v in topo.get("nodes", []):
        if v.get("node") in out:
            key = (_span_key(v.get("span")), _natural(v["node"]))
            first[v["node"]] = min(first.get(v["node"], key), key)
    for m in out.values():
        m.gpus.sort()
        found = links.get(m.name, {})
        if "switch" in found:
            m.link = found["switch"]
        elif "host" in found:
            m.link = f"no GPU link · {found['host']} to host"
    return dict(sorted(out.items(), key=lambda kv: first[kv[0]]))


def _networks(topo: dict, machines: dict[str, _Machine]) -> list[_Network]:
    node_of = {v["id"]: v.get("node") for v in topo.get("nodes", [])}
    fabrics = sorted(
        (v["id"] for v in topo.get("nodes", []) if v.get("kind") == "fabric"), key=_natural
    )
    out = []
    for fab in fabrics:
        link, per_nic, members = fab.split(":", 1)[-1], 0.0, set()
        for e in topo.get("edges", []):
            if fab in (e["source"], e["target"]):
                other = e["target"] if e["source"] == fab else e["source"]
                if node_of.get(other) in machines:
                    members.add(node_of[other])
                link = e.get("link", link)
                per_nic = max(per_nic, e.get("bandwidth_Bps", 0) / max(1, e.get("lanes", 1)))
        order = [m for m in machines if m in members]
        out.append(_Network(fab, link, per_nic, order))
    return out


@dataclass
class _Flow:
    """The dataflow folded from instances to pools."""

    arrival_policy: str = ""
    entry: list[str] = field(default_factory=list)  # pools the arrival router feeds
    routers: dict[str, str] = field(default_factory=dict)  # pool -> its router's policy
    transfers: dict[tuple[str, str], list[tuple[float | None, str]]] = field(default_factory=dict)
    finish: list[str] = field(default_factory=list)  # pools whose requests end there


def _flow(flow: dict, order: list[str]) -> _Flow:
    verts = {v["id"]: v for v in flow.get("nodes", [])}
    pool_of = {k: v.get("pool") for k, v in verts.items() if v.get("kind") == "instance"}
    out = _Flow()
    if "router" in verts:
        out.arrival_policy = str(verts["router"].get("policy", ""))
    for k, v in verts.items():
        if v.get("kind") == "router" and k.startswith("router:"):
            out.routers[k.split(":", 1)[1]] = str(v.get("policy", ""))
    entry, finish = set(), set()
    for e in flow.get("edges", []):
        src, dst, kind = e["source"], e["target"], e.get("kind")
        if kind == "route" and src == "router" and dst in pool_of:
            entry.add(pool_of[dst])
        elif kind == "finish" and src in pool_of:
            finish.add(pool_of[src])
        elif kind == "transfer" and src in pool_of and dst in pool_of:
            paths = [p for p in e.get("paths") or [] if p and p.get("bottleneck_Bps")]
            narrow = min(paths, key=lambda p: p["bottleneck_Bps"], default=None)
            link = narrow.get("bottleneck_link", "") if narrow else ""
            pair = out.transfers.setdefault((pool_of[src], pool_of[dst]), [])
            pair.append((e.get("bottleneck_Bps"), link))
    out.entry = [p for p in order if p in entry]
    out.finish = [p for p in order if p in finish]
    out.transfers = dict(
        sorted(out.transfers.items(), key=lambda kv: (order.index(kv[0][1]), order.index(kv[0][0])))
    )
    return out


def _kv_label(edges: list[tuple[float | None, str]]) -> tuple[str, str]:
    """Bandwidth (``min..max`` when instance pairs differ) and bottleneck links."""
    bws = sorted(b for b, _ in edges if b)
    links = ", ".join(sorted({link for b, link in edges if b and link}, key=_natural))
    if not bws:
        return "on the same GPUs", ""
    lo, hi = _bw(bws[0]), _bw(bws[-1])
    return (lo if lo == hi else f"{lo} .. {hi}"), (f"via {links}" if links else "")


def pool_colors(graph: dict, pools: list[dict]) -> dict[str, str]:
    """Pool name -> colour: pools in spec order take :data:`POOL_COLORS` in turn
    (repeating past seven); a pool only the graph names comes after them."""
    names = [str(p["name"]) for p in pools]
    extra = {
        str(v["pool"])
        for v in graph.get("dataflow", {}).get("nodes", [])
        if v.get("kind") == "instance" and v.get("pool") not in names
    }
    names += sorted(extra, key=_natural)
    return {n: POOL_COLORS[k % len(POOL_COLORS)] for k, n in enumerate(names)}


# ------------------------------------------------------------------ drawing


@dataclass
class _Part:
    svg: list[str]
    w: int
    h: int


def _legend(x0: int, y0: int, width: int, pools: list[dict], colors, idle: bool) -> _Part:
    by_name = {str(p["name"]): p for p in pools}
    items = []
    for name, color in colors.items():
        role = by_name.get(name, {}).get("role", name)
        items.append((color, name if role == name else f"{name} ({role})"))
    if idle:
        items.append((IDLE_COLOR, "idle GPU"))
    svg, x, y, used = [], x0, y0, 0
    for color, label in items:
        w = 14 + 6 + math.ceil(text_width(label, 12)) + 18
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + 22
        svg.append(_rect(x, y, 14, 14, color, "#FFFFFF", rx=3))
        svg.append(_text(x + 20, y + 12, label))
        x += w
        used = max(used, x - x0)
    return _Part(svg, used, y + 14 - y0)


def _topology(x0: int, y0: int, graph: dict, colors: dict[str, str]) -> _Part:
    topo = graph.get("topology", {})
    machines = _machines(topo)
    networks = _networks(topo, machines)
    for m in machines.values():
        if m.nics and any(m.name in n.members for n in networks):
            m.link += f" · {m.nics} NIC{'s' * (m.nics != 1)}"
    occupant: dict[str, tuple[str, int, str]] = {}  # gpu -> (pool, index, instance)
    for v in graph.get("dataflow", {}).get("nodes", []):
        if v.get("kind") == "instance":
            for g in v.get("gpus") or []:
                occupant[g] = (str(v.get("pool")), _index(v["id"], "["), v["id"])
    if not machines:
        return _Part([_text(x0, y0 + 14, "no cluster", fill=MUTED)], 80, 20)

    titles = {
        m.name: (m.name, f" · {len(m.gpus)} × {m.gpu_type}" if m.gpus else " · no GPUs")
        for m in machines.values()
    }
    net_labels = [f"{n.link} · {_bw(n.per_nic_Bps)} per NIC" for n in networks]
    cols = max(1, min(GPUS_PER_ROW, max(len(m.gpus) for m in machines.values())))
    grid_w = cols * GPU_SIZE + (cols - 1) * GPU_GAP
    text_w = max(
        max(text_width(a, 13, True) + text_width(b, 13) for a, b in titles.values()),
        max(text_width(m.link, 11) for m in machines.values()),
    )
    net_w = max((text_width(t, 11) for t in net_labels), default=0) + 16 + 10 * len(networks)
    box_w = math.ceil(max(grid_w, text_w, net_w) + 2 * PAD)
    grid_top = PAD + LINE_H + 16 + 8
    names = list(machines)
    rows = [names[k : k + NODES_PER_ROW] for k in range(0, len(names), NODES_PER_ROW)]
    row_of = {n: r for r, row in enumerate(rows) for n in row}
    spanning = [n for n in networks if len({row_of[m] for m in n.members}) > 1]
    gutter = 8 + 10 * len(networks) if spanning else 0
    gap_y = 24 + LANE_H * len(networks)
    place: dict[str, tuple[int, int, int]] = {}  # node -> (x, y, height)
    y = y0
    for row in rows:
        gpu_rows = max(1, max(math.ceil(len(machines[n].gpus) / GPUS_PER_ROW) for n in row))
        box_h = grid_top + gpu_rows * (GPU_SIZE + GPU_GAP) - GPU_GAP + PAD
        for c, n in enumerate(row):
            place[n] = (x0 + gutter + c * (box_w + 24), y, box_h)
        y += box_h + gap_y
    svg: list[str] = []
    for name, m in machines.items():
        x, y, box_h = place[name]
        svg.append(_rect(x, y, box_w, box_h, "#F6F8FA", "#8C959F", rx=8))
        bold, rest = titles[name]
        svg.append(
            f'<text x="{x + PAD}" y="{y + PAD + 12}" font-size="13" fill="{INK}">'
            f'<tspan font-weight="bold">{_e(bold)}</tspan>{_e(rest)}</text>'
        )
        svg.append(_text(x + PAD, y + PAD + LINE_H + 12, m.link, size=11, fill=MUTED))
        cells = {}
        for k, (_, gpu) in enumerate(m.gpus):
            gx = x + PAD + (k % GPUS_PER_ROW) * (GPU_SIZE + GPU_GAP)
            gy = y + grid_top + (k // GPUS_PER_ROW) * (GPU_SIZE + GPU_GAP)
            cells[gpu] = (gx, gy)
            pool, inst, iid = occupant.get(gpu, ("", 0, ""))
            color = colors.get(pool, IDLE_COLOR) if pool else IDLE_COLOR
            tip = f"{gpu}: {iid}" if pool else f"{gpu}: idle"
            svg.append(f'<g class="gpu"><title>{_e(tip)}</title>')
            svg.append(_rect(gx, gy, GPU_SIZE, GPU_SIZE, color, rx=4))
            if pool:
                svg.append(
                    _text(gx + GPU_SIZE / 2, gy + 20, inst, 11, True, _ink_on(color), "middle")
                )
            svg.append("</g>")
        svg.extend(_groups(cells, m, occupant, colors))
    for k, net in enumerate(networks):
        svg.extend(_network(k, net, rows, place, box_w, x0, net_labels[k]))
    width = max(x + box_w for x, _, _ in place.values()) - x0
    height = max(y + h for _, y, h in place.values()) - y0
    return _Part(svg, width, height + (LANE_H * len(networks) + 6 if networks else 0))


def _groups(cells, machine: _Machine, occupant, colors) -> list[str]:
    """An outline around each run of GPUs of one instance within one grid row."""
    ids = [occupant.get(gpu, ("", 0, ""))[2] for _, gpu in machine.gpus]
    svg, start = [], 0
    for k in range(1, len(ids) + 1):
        if k < len(ids) and ids[k] and ids[k] == ids[start] and k % GPUS_PER_ROW:
            continue
        if k - start > 1 and ids[start]:
            (x1, y1), (x2, _) = cells[machine.gpus[start][1]], cells[machine.gpus[k - 1][1]]
            color = colors.get(occupant[machine.gpus[start][1]][0], IDLE_COLOR)
            w = x2 - x1 + GPU_SIZE + 6
            svg.append(_rect(x1 - 3, y1 - 3, w, GPU_SIZE + 6, "none", color, 6, 1.5))
        start = k
    return svg


def _network(k, net: _Network, rows, place, box_w, x0, label) -> list[str]:
    """Network ``k``: a bar under each row of nodes it joins, a drop from each
    member, a trunk in the left gutter joining the rows; the label under the
    first bar. Networks differ in colour and dash, not only colour."""
    color, dash = NET_STYLES[k % len(NET_STYLES)]
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    lines, dots, bars = [], [], []
    for row in rows:
        members = [n for n in row if n in net.members]
        if not members:
            continue
        y_bar = place[members[0]][1] + place[members[0]][2] + 14 + k * LANE_H
        drops = [place[n][0] + box_w - 16 - 10 * k for n in members]
        for n, x in zip(members, drops, strict=True):
            lines.append((x, place[n][1] + place[n][2], x, y_bar, 2))
            dots.append(f'<circle cx="{x}" cy="{y_bar}" r="3" fill="{color}"/>')
        bars.append((place[members[0]][0], max(drops), y_bar))
    if not bars:
        return []
    trunk = x0 + 4 + 10 * k
    for left, right, y in bars:
        lines.append((trunk if len(bars) > 1 else left, y, right, y, 3))
    if len(bars) > 1:
        lines.append((trunk, bars[0][2], trunk, bars[-1][2], 3))
    svg = [
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{color}" '
        f'stroke-width="{w}"{dash_attr}/>'
        for x1, y1, x2, y2, w in lines
    ]
    left, _, y = bars[0]
    return svg + dots + [_text(left + 4, y + 17, label, size=11, fill=color)]


@dataclass
class _Box:
    key: str
    lines: list[tuple[str, int, bool]]  # (text, size, bold)
    fill: str = "#FFFFFF"
    stroke: str = "#8C959F"
    band: str = ""  # a colour strip on the left (pools)
    round: bool = False  # a pill (arrivals, done)
    ghost: bool = False  # an invisible waypoint of an edge that skips columns
    x: int = 0
    y: int = 0
    w: int = 0
    h: int = 0

    def __post_init__(self):
        if self.ghost:
            self.h = 12
        else:
            inner = max(text_width(t, s, b) for t, s, b in self.lines)
            self.w = math.ceil(inner + 2 * PAD + (6 if self.band else 0))
            self.h = 2 * 10 + LINE_H * len(self.lines)  # even: centres on whole pixels


def _pool_box(name: str, info: dict | None, color: str) -> _Box:
    if info is None:
        return _Box(f"pool:{name}", [(name, 13, True)], _tint(color), color, color)
    get = {k: info.get(k, "?") for k in ("role", "model", "dtype", "instances", "gpu", "batching")}
    title = name if name == get["role"] else f"{name} · {get['role']}"
    pp = info.get("pp", 1)
    par = info.get("parallelism") or f"tp{info.get('tp', 1)}" + (f" pp{pp}" if pp != 1 else "")
    lines = [
        (title, 13, True),
        (f"{get['instances']} × {par} {get['model']} {get['dtype']}", 12, False),
        (f"on {get['gpu']} · {get['batching']}", 12, False),
    ]
    if info.get("autoscale"):
        lines.append((f"autoscaled: {info['autoscale']} serving", 12, False))
    if info.get("kv_tiers"):
        lines.append((f"KV tiers: {info['kv_tiers']}", 12, False))
    return _Box(f"pool:{name}", lines, _tint(color), color, color)


def _router_box(key: str, title: str, policy: str) -> _Box:
    lines = [(title, 12, True)] + [(t, 12, False) for t in _wrap(policy)]
    return _Box(key, lines, "#FFFFFF", "#57606A")


def _pill(key: str) -> _Box:
    return _Box(key, [(key, 12, True)], "#FFFFFF", "#57606A", round=True)


def _columns(graph: dict, pools: list[dict], colors) -> tuple[list[list[_Box]], list]:
    """The dataflow as columns of boxes, left to right, and the edges between
    them as (from key, to key, kind) with kind ``req`` or ``kv``."""
    info = {str(p["name"]): p for p in pools}
    order = list(colors)
    flow = _flow(graph.get("dataflow", {}), order)
    # stage of each pool: arrivals feed stage 0; a transfer feeds the next stage
    stage = {p: 0 for p in flow.entry}
    for _ in order:
        for src, dst in flow.transfers:
            if src in stage:
                stage[dst] = max(stage.get(dst, 0), stage[src] + 1)
    for p in flow.finish:
        stage.setdefault(p, 0)
    columns = [[_pill("arrivals")], [_router_box("router", "router", flow.arrival_policy)]]
    edges = [("arrivals", "router", "req")] + [("router", f"pool:{p}", "req") for p in flow.entry]
    for s in range(max(stage.values(), default=0) + 1):
        if s:
            chips, routers = [], []
            for (src, dst), pairs in flow.transfers.items():
                if stage.get(dst) != s:
                    continue
                bw, via = _kv_label(pairs)
                lines = [("KV transfer", 12, True), (bw, 12, False)]
                lines += [(t, 11, False) for t in _wrap(via)] if via else []
                chips.append(_Box(f"kv:{src}>{dst}", lines, "#FFF8E6", "#9A6700"))
                edges.append((f"pool:{src}", f"kv:{src}>{dst}", "kv"))
                edges.append((f"kv:{src}>{dst}", f"router:{dst}", "kv"))
                if all(r.key != f"router:{dst}" for r in routers):
                    policy = flow.routers.get(dst, "")
                    routers.append(_router_box(f"router:{dst}", f"{dst} router", policy))
                    edges.append((f"router:{dst}", f"pool:{dst}", "req"))
            columns += [chips, routers]
        here = [p for p in order if stage.get(p) == s]
        columns.append([_pool_box(p, info.get(p), colors.get(p, IDLE_COLOR)) for p in here])
    columns.append([_pill("done")])
    edges += [(f"pool:{p}", "done", "req") for p in flow.finish]
    return [c for c in columns if c], edges


def _route(columns: list[list[_Box]], edges: list) -> list[tuple[list[str], str]]:
    """Give every edge that skips columns a ghost box in each column between
    its ends, and order each column by where its boxes' predecessors sit (so
    edges cross as little as possible). Returns each edge as its chain of keys."""
    col = {b.key: k for k, c in enumerate(columns) for b in c}
    chains = []
    for a, b, kind in edges:
        if a not in col or b not in col:
            continue
        chain = [a]
        for k in range(col[a] + 1, col[b]):
            ghost = _Box(f"ghost:{a}>{b}:{k}", [], ghost=True)
            columns[k].append(ghost)
            chain.append(ghost.key)
        chains.append((chain + [b], kind))
    preds: dict[str, list[str]] = {}
    for chain, _ in chains:
        for u, v in zip(chain, chain[1:], strict=False):
            preds.setdefault(v, []).append(u)
    for k in range(1, len(columns)):
        rank = {b.key: r for r, b in enumerate(columns[k - 1])}
        n = len(columns[k])

        def centre(item, rank=rank, n=n):
            r, b = item
            before = [rank[p] for p in preds.get(b.key, []) if p in rank]
            return (sum(before) / len(before) if before else n, r)

        columns[k] = [b for _, b in sorted(enumerate(columns[k]), key=centre)]
    return chains


def _dataflow(x0: int, y0: int, graph: dict, pools: list[dict], colors) -> _Part:
    columns, edges = _columns(graph, pools, colors)
    if len(columns) <= 3:  # arrivals, router, done: no pool
        return _Part([_text(x0, y0 + 14, "no deployment", fill=MUTED)], 100, 20)
    chains = _route(columns, edges)
    height = max(sum(b.h for b in c) + ROW_GAP * (len(c) - 1) for c in columns)
    x = x0
    boxes: dict[str, _Box] = {}
    for c in columns:
        cw = max(b.w for b in c)
        y = y0 + (height - sum(b.h for b in c) - ROW_GAP * (len(c) - 1)) // 2
        for b in c:
            b.x, b.y = x + (cw - b.w) // 2, y
            if b.ghost:
                b.x, b.w = x, cw
            y += b.h + ROW_GAP
            boxes[b.key] = b
        x += cw + COL_GAP
    svg: list[str] = []
    for chain, kind in chains:
        stroke, width = ("#9A6700", 2.5) if kind == "kv" else (LINE, 1.5)
        svg.extend(_arrow([boxes[k] for k in chain], stroke, width))
    for b in boxes.values():
        if not b.ghost:
            svg.extend(_draw_box(b))
    return _Part(svg, x - COL_GAP - x0, height)


def _draw_box(b: _Box) -> list[str]:
    rx = b.h // 2 if b.round else 6
    svg = [_rect(b.x, b.y, b.w, b.h, b.fill, b.stroke, rx, 1.5)]
    if b.band:  # a strip along the left side, rounded like the box
        x, y, h = b.x, b.y, b.h
        svg.append(
            f'<path d="M{x + 6},{y} H{x + 7} V{y + h} H{x + 6} A6,6 0 0 1 {x},{y + h - 6} '
            f'V{y + 6} A6,6 0 0 1 {x + 6},{y} Z" fill="{b.band}"/>'
        )
    left = b.x + PAD + (6 if b.band else 0)
    for k, (t, size, bold) in enumerate(b.lines):
        y = b.y + 10 + LINE_H * k + 12
        if b.round:
            svg.append(_text(b.x + b.w / 2, y, t, size, bold, INK, "middle"))
        else:
            svg.append(_text(left, y, t, size, bold, INK if k == 0 else "#30363D"))
    return svg


def _heading(x, y, text) -> str:
    return (
        f'<text x="{x}" y="{y}" font-size="11" font-weight="bold" letter-spacing="1" '
        f'fill="{MUTED}">{_e(text.upper())}</text>'
    )


def deployment_svg(graph: dict, pools: list[dict]) -> str:
    """One inline ``<svg>`` (with ``<title>``, ``viewBox``, ``width="100%"``) of the
    deployment in ``graph`` (the JSON of ``tokensim graph``, parsed) and
    ``pools`` (one dict per pool, see the module docstring). Deterministic:
    the same input gives the same string."""
    colors = pool_colors(graph, pools)
    top = MARGIN
    # sizes first (they do not depend on where a part is drawn), then the parts
    topo_w = _topology(MARGIN, 0, graph, colors).w
    flow_w = _dataflow(MARGIN, 0, graph, pools, colors).w
    width = max(topo_w, flow_w, 420)
    gpus = {v["id"] for v in graph.get("topology", {}).get("nodes", []) if v.get("kind") == "gpu"}
    for v in graph.get("dataflow", {}).get("nodes", []):
        gpus -= set(v.get("gpus") or []) if v.get("kind") == "instance" else set()
    legend = _legend(MARGIN, top, width, pools, colors, idle=bool(gpus))
    y = top + legend.h + 24
    svg = list(legend.svg)
    svg.append(_heading(MARGIN, y, "topology"))
    topo = _topology(MARGIN, y + 12, graph, colors)
    svg += topo.svg
    y += 12 + topo.h + 30
    svg.append(_heading(MARGIN, y, "dataflow"))
    flow = _dataflow(MARGIN, y + 12, graph, pools, colors)
    svg += flow.svg
    y += 12 + flow.h
    w, h = width + 2 * MARGIN, y + MARGIN
    title = f"Deployment of {graph.get('spec', 'the spec')}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" '
        f'style="max-width: {w}px; height: auto" role="img" font-family="{_e(FONT)}">'
        f"<title>{_e(title)}</title>"
    )
    return "\n".join([head, *svg, "</svg>"]) + "\n"
