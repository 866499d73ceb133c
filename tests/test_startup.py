"""What `netc check`, `netc summary` and `netc --help` import (they must start instantly:
bench/bench_check.py times them), and the IR's own graph against networkx, which it now
imports only on demand."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SPECS

# Modules a command must not import: torch is the project's rule for check and summary;
# networkx, rich, hydra and the sweep are startup time a check or a help text does not use.
HEAVY = ("torch", "networkx", "rich", "hydra", "omegaconf", "netc.sweep", "netc.codegen",
         "netc.load")

PROBE = """
import json, sys
from netc.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def imported(*argv: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                            cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    line = result.stdout.rsplit("MODULES ", 1)[1]
    return set(json.loads(line))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or
                  any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("argv", [
    ("check", "-q", str(SPECS / "resnet50.net")),
    ("summary", "--format", "json", str(SPECS / "resnet18.net")),
    ("--help",),
    ("build", "--help"),
])
def test_command_imports_only_what_it_uses(argv):
    assert heavy(imported(*argv)) == []


def test_help_does_not_import_the_compiler():
    modules = imported("--help")
    assert not {"netc.compiler", "netc.elaborate", "lark"} & modules


def test_sweep_still_parses_its_own_options():
    from netc.cli import make_parser

    args = make_parser(sweep_options=True).parse_args(["sweep", "--dry-run", "x.net"])
    assert args.command == "sweep"


def test_lazy_package_attributes():
    import netc

    assert callable(netc.build) and callable(netc.check) and netc.NetcError.__name__ == "NetcError"
    assert set(netc.__all__) <= set(dir(netc))
    with pytest.raises(AttributeError):
        netc.no_such_name  # noqa: B018


@pytest.mark.parametrize("stem", ["resnet18", "densenet121", "googlenet", "mobilenet_v2"])
def test_ir_graph_equals_its_networkx_view(stem):
    """The plain-dict IR gives networkx's order and edges: `g` is the DiGraph the IR used to
    be, built on demand."""
    import networkx as nx

    import netc

    graph = netc.compile(SPECS / f"{stem}.net").graph
    g = graph.g
    assert isinstance(g, nx.DiGraph) and len(g) == len(graph)
    order = list(nx.lexicographical_topological_sort(g, key=lambda n: graph.node(n).order))
    assert [n.id for n in graph.topo_order()] == order
    for node in graph:
        assert g.nodes[node.id]["node"] is node
        assert sorted(g.predecessors(node.id)) == sorted(set(node.inputs))
        for index, producer in enumerate(node.inputs):
            assert index in g.edges[producer, node.id]["index"]
        assert {c.id for c in graph.consumers(node.id)} == set(g.successors(node.id))
    graph.check()


def test_ir_rejects_a_cycle_and_a_missing_producer():
    from netc.ir import Graph, Node
    from netc.source import Span

    span = Span("x", 1, 1, 1, 2)
    graph = Graph()
    graph.add(Node("a", "relu", {}, ("b",), span, 1))
    graph.add(Node("b", "relu", {}, ("a",), span, 2))
    with pytest.raises(AssertionError, match="cycle"):
        graph.check()
    lonely = Graph()
    lonely.add(Node("a", "relu", {}, ("missing",), span, 1))
    with pytest.raises(AssertionError, match="missing"):
        lonely.check()
