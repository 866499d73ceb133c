"""The graph IR: one node per operation, on a `networkx.DiGraph`.

Edges carry reachability and give the topological order; the *order of a node's inputs*
lives on the node (`Node.inputs`), because a DiGraph's edges are unordered and cannot hold
`add(x, x)` twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import networkx as nx

from netc.shapes import Multi, Shape, format_shape
from netc.source import Span


@dataclass
class Node:
    id: str  # unique in the graph; a valid dotted path of identifiers and indices
    op: str  # an ops.OPS name, or "input"
    args: dict[str, Any]  # every argument of the op, defaults filled in
    inputs: tuple[str, ...]  # producer node ids, in the order the op takes them
    span: Span
    order: int  # creation (= source) order, the tie-break of the topological sort
    module: str | None = None  # qualified submodule name (state_dict prefix) if the op owns state
    scope: tuple[str, ...] = ()  # the named blocks/sequences this node sits in
    shape: Shape | Multi | None = None  # per-sample output shape; None after an error upstream
    # where its layer is registered (state_dict order) when that is not `order`: a labelled
    # layer bound to a name is registered where it is written, not where it is applied
    register_order: float | None = None

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        ins = ", ".join(self.inputs)
        return f"{self.id}: {format_shape(self.shape)} = {self.op}[{args}]({ins})"


@dataclass
class Region:
    """A named block application or labelled sequence: the nodes created while applying it,
    which the code generator lowers to one submodule with its own `forward` (a `Bottleneck`
    at `layer1.0`, an `nn.Sequential` at `layer1`)."""

    path: str  # the naming level it opened: `layer1.0`
    kind: str  # "block" or "sequence"
    name: str  # the block's name (the submodule's class); "" for a sequence
    # the node id of the tensor it was applied to, or a tuple of them: a block applied to a
    # list of tensors (`in` is the list; its forward takes a Python list)
    input: str | tuple[str, ...]
    output: str  # the node id of its result
    first: int  # nodes created while applying it have orders in (first, last]
    last: int
    span: Span  # where it was applied
    doc: str = ""  # the block's doc comment


@dataclass
class InputSpec:
    name: str
    shape: Shape
    span: Span


class Graph:
    """A network: nodes, the inputs it takes, and the node ids it returns."""

    def __init__(self, name: str = "net") -> None:
        self.name = name
        self.doc = ""
        self.g = nx.DiGraph()
        self.inputs: list[InputSpec] = []
        self.outputs: list[str] = []
        self.regions: list[Region] = []  # in the order they were left (inner first)
        self.spec_path: str | None = None  # the spec file it was compiled from
        self._order = 0

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.g

    def node(self, node_id: str) -> Node:
        return self.g.nodes[node_id]["node"]

    @property
    def last_order(self) -> int:
        return self._order

    def next_order(self) -> int:
        self._order += 1
        return self._order

    def add(self, node: Node) -> Node:
        assert node.id not in self.g, f"duplicate node id {node.id}"
        self.g.add_node(node.id, node=node)
        for index, producer in enumerate(node.inputs):
            # the operand positions this edge feeds (`add(x, x)` is one edge, two positions)
            if self.g.has_edge(producer, node.id):
                self.g.edges[producer, node.id]["index"].append(index)
            else:
                self.g.add_edge(producer, node.id, index=[index])
        return node

    def topo_order(self) -> list[Node]:
        """Nodes in dependency order, ties broken by source order (stable across runs)."""
        order = nx.lexicographical_topological_sort(self.g, key=lambda n: self.node(n).order)
        return [self.node(n) for n in order]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.topo_order())

    def consumers(self, node_id: str) -> list[Node]:
        return [self.node(n) for n in self.g.successors(node_id)]

    def check(self) -> None:
        """Structural invariants (like torch.fx `Graph.lint`); raises AssertionError."""
        assert nx.is_directed_acyclic_graph(self.g), "graph has a cycle"
        modules = [n.module for n in self if n.module]
        assert len(modules) == len(set(modules)), "two nodes own the same submodule name"
        for node in self:
            for index, producer in enumerate(node.inputs):
                assert producer in self.g, f"{node.id} reads missing {producer}"
                assert index in self.g.edges[producer, node.id]["index"], "edge index lost"
            assert self.g.in_degree(node.id) == len(set(node.inputs)), f"{node.id}: stray edge"
        for out in self.outputs:
            assert out in self.g, f"output {out} is not a node"
