"""Drawing a dataflow graph (`dfdsl lower FILE --emit graph --format ...`).

`render` writes a graph made by `dfdsl.graph_view.build_graph` (whose docstring lists the node,
edge and graph attributes read here) as Graphviz DOT, networkx node-link JSON, or, through
Graphviz's `dot` program, SVG or PNG. Declared tensors are filled by memory tier; layer calls,
kernels, loops and folds are DOT clusters.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import networkx as nx

from dfdsl.dialects import df
from dfdsl.errors import ProgramFailure

FORMATS = ("dot", "json", "svg", "png")

TIER_COLOURS = {"sram": "#b7e4c7", "hbm": "#a9c9f5", "ddr": "#f6c28b"}
"""Fill colour of a declared tensor by memory tier: on chip green, HBM blue, DDR orange."""
UNPLACED_COLOUR = "#e9ecef"
COLLECTIVE_COLOUR = "#e76f51"


DOT_TIMEOUT_S = 120
"""How long `dot` may take to lay out a graph (a folded model's takes well under a second)."""


_NODE_STYLE = {
    "operator": 'shape=box, style="rounded"',
    "stage": 'shape=box, style="rounded,filled", fillcolor="#f8f9fa"',
    "collective": f'shape=hexagon, style="filled,bold", fillcolor="{COLLECTIVE_COLOUR}", penwidth=2',
    df.InputOp.BUFFER_KIND: "shape=invhouse, style=filled",
    df.WeightOp.BUFFER_KIND: "shape=box, style=filled",
    df.KvCacheOp.BUFFER_KIND: "shape=cylinder, style=filled",
    "output": "shape=house, style=bold",
}
_CLUSTER_STYLE = {
    "layer": 'style="rounded"; color="#495057"',
    "kernel": 'style="rounded"; color="#495057"',
    "loop": 'style="rounded,bold"; color="#6a4c93"; penwidth=2',
    "fold": 'style="rounded,dashed,filled"; fillcolor="#f8f9fa"; color="#6a4c93"; penwidth=2',
}
_EDGE_STYLE = {
    "tensor": "",
    "argument": 'style=dashed, color="#868e96"',
    "pipeline": 'penwidth=2, color="#6a4c93"',
}
_DECL_KINDS_DRAWN = tuple(decl.BUFFER_KIND for decl in df.DECLS)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _node_line(node: str, attrs: dict) -> str:
    style = _NODE_STYLE[attrs["kind"]]
    extra = ""
    if attrs["kind"] in _DECL_KINDS_DRAWN:
        colour = TIER_COLOURS.get(attrs["tier"], UNPLACED_COLOUR)
        extra = f", fillcolor={_quote(colour)}, tooltip={_quote(attrs['tooltip'])}"
    return f"{_quote(node)} [label={_quote(attrs['label'])}, {style}{extra}];"


def _legend(graph: nx.MultiDiGraph) -> list[str]:
    """A box of the three tier colours (and `unplaced` when some declaration has no tier)."""
    tiers = list(TIER_COLOURS)
    if any(a["kind"] in _DECL_KINDS_DRAWN and not a["tier"] for _, a in graph.nodes(data=True)):
        tiers.append("")
    lines = ['subgraph "cluster_legend" {', '  label="memory tier"; style="rounded,dashed"; color="#adb5bd";']
    for tier in tiers:
        colour = TIER_COLOURS.get(tier, UNPLACED_COLOUR)
        lines.append(f'  {_quote("legend." + (tier or "unplaced"))} [label={_quote(tier or "unplaced")}, '
                     f'shape=box, style=filled, fillcolor={_quote(colour)}];')
    lines.append(f'  "legend.collective" [label="collective", {_NODE_STYLE["collective"]}];')
    # Invisible edges on one rank keep the entries in this order, left to right.
    names = [_quote("legend." + (tier or "unplaced")) for tier in tiers] + ['"legend.collective"']
    lines.append(f"  {{rank=same; {' -> '.join(names)} [style=invis];}}")
    lines.append("}")
    return lines


def to_dot(graph: nx.MultiDiGraph) -> str:
    """The graph as Graphviz DOT text, the same bytes for the same graph."""
    clusters = graph.graph["clusters"]
    nodes_in: dict[str, list[str]] = {"": []}
    children: dict[str, list[dict]] = {"": []}
    for cluster in clusters:
        nodes_in[cluster["id"]] = []
        children[cluster["id"]] = []
        children[cluster["parent"]].append(cluster)
    for node, attrs in graph.nodes(data=True):
        nodes_in[attrs["cluster"]].append(_node_line(node, attrs))

    def emit(cluster: dict, indent: str) -> list[str]:
        lines = [f"{indent}subgraph {_quote('cluster_' + cluster['id'])} {{",
                 f"{indent}  label={_quote(cluster['label'])}; {_CLUSTER_STYLE[cluster['kind']]};"]
        lines += [indent + "  " + line for line in nodes_in[cluster["id"]]]
        for child in children[cluster["id"]]:
            lines += emit(child, indent + "  ")
        return lines + [indent + "}"]

    lines = [
        f"digraph {_quote(graph.graph['name'])} {{",
        f"  graph [label={_quote(graph.graph['label'])}, labelloc=t, fontname=Helvetica, fontsize=16, "
        "rankdir=TB, nodesep=0.25, ranksep=0.35];",
        "  node [fontname=Helvetica, fontsize=11];",
        '  edge [fontname=Helvetica, fontsize=9, color="#495057"];',
    ]
    lines += ["  " + line for line in _legend(graph)]
    lines += ["  " + line for line in nodes_in[""]]
    for cluster in children[""]:
        lines += emit(cluster, "  ")
    for source, target, attrs in graph.edges(data=True):
        style = [f"label={_quote(attrs['label'])}"] if attrs["label"] else []
        style += [_EDGE_STYLE[attrs["kind"]]] if _EDGE_STYLE[attrs["kind"]] else []
        lines.append(f"  {_quote(source)} -> {_quote(target)}" + (f" [{', '.join(style)}]" if style else "") + ";")
    return "\n".join(lines + ["}"]) + "\n"


def to_json(graph: nx.MultiDiGraph) -> str:
    """networkx node-link data (`networkx.node_link_graph(data, edges="edges")` reads it back)."""
    return json.dumps(nx.node_link_data(graph, edges="edges"), indent=2, sort_keys=True) + "\n"


def run_dot(dot_text: str, fmt: str) -> bytes:
    """Graphviz's `dot -T<fmt>` over `dot_text`; `ProgramFailure` (E030) if `dot` is not installed,
    fails, or takes longer than `DOT_TIMEOUT_S`."""
    program = shutil.which("dot")
    if program is None:
        raise ProgramFailure(
            f"rendering {fmt} needs Graphviz's `dot` program, which is not on PATH",
            "install the Debian package `graphviz` (apt-get install graphviz), or ask for --format dot or json")
    command = f"{program} -T{fmt}"
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, check=False,
                              timeout=DOT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ProgramFailure(f"{command} did not finish within {DOT_TIMEOUT_S} s",
                             "draw fewer nodes (leave out --unfold), or ask for --format dot and run dot "
                             "yourself") from None
    except OSError as err:
        raise ProgramFailure(f"cannot run {command}: {err.strerror or err}",
                             "check that Graphviz is installed whole (apt-get install --reinstall graphviz)") from None
    if done.returncode != 0:
        raise ProgramFailure(f"{command} failed with exit status {done.returncode}: "
                             f"{done.stderr.decode(errors='replace').strip()}",
                             "ask for --format dot and run dot yourself to see more; a recent Graphviz may help")
    return done.stdout


def render(graph: nx.MultiDiGraph, fmt: str) -> str | bytes:
    """`graph` as `dot` or `json` text, `svg` text, or `png` bytes."""
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "json":
        return to_json(graph)
    if fmt == "svg":
        return run_dot(to_dot(graph), "svg").decode()
    if fmt == "png":
        return run_dot(to_dot(graph), "png")
    raise ValueError(f"unknown graph format {fmt!r}; formats are {', '.join(FORMATS)}")
