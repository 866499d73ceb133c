"""The graph IR: one node per operation; `Graph.g` is it as a `networkx.DiGraph`.

Edges carry reachability and give the topological order; the *order of a node's inputs*
lives on the node (`Node.inputs`), because a DiGraph's edges are unordered and cannot hold
`add(x, x)` twice.

The nodes and edges are kept in plain dicts and the DiGraph is built on first use of
`Graph.g`: importing networkx costs more than checking ResNet-152, and `netc check` needs
only the sort and the consumers below.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Iterator

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
    # nodes created while applying it have orders in (first, last]; `first` is a little past
    # the last order before it, so that it also sorts among the layers declared around it
    first: float
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
        self._nodes: dict[str, Node] = {}
        # producer -> consumer -> the operand positions the edge feeds (`add(x, x)`: [0, 1])
        self._succ: dict[str, dict[str, list[int]]] = {}
        self._nx = None  # the networkx view, built by `g` and dropped by `add`
        self.inputs: list[InputSpec] = []
        self.outputs: list[str] = []
        self.regions: list[Region] = []  # in the order they were left (inner first)
        self.spec_path: str | None = None  # the spec file it was compiled from
        self._order = 0

    @property
    def g(self):
        """The graph as a `networkx.DiGraph` (node attribute `node`, edge attribute `index`),
        for analyses that want networkx; read it, change the graph through `add`."""
        if self._nx is None:
            import networkx as nx

            digraph = nx.DiGraph()
            for node_id, node in self._nodes.items():
                digraph.add_node(node_id, node=node)
            for producer, consumers in self._succ.items():
                for consumer, index in consumers.items():
                    digraph.add_edge(producer, consumer, index=index)
            self._nx = digraph
        return self._nx

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._nodes

    def node(self, node_id: str) -> Node:
        return self._nodes[node_id]

    @property
    def last_order(self) -> int:
        return self._order

    def next_order(self) -> int:
        self._order += 1
        return self._order

    def add(self, node: Node) -> Node:
        assert node.id not in self._nodes, f"duplicate node id {node.id}"
        self._nodes[node.id] = node
        self._succ.setdefault(node.id, {})  # a reader added first has made it already
        for index, producer in enumerate(node.inputs):
            # a producer not yet added is an error `check` reports (as a missing node)
            self._succ.setdefault(producer, {}).setdefault(node.id, []).append(index)
        self._nx = None
        return node

    def topo_order(self) -> list[Node]:
        """Nodes in dependency order, ties broken by source order (stable across runs): the
        order of networkx's `lexicographical_topological_sort` keyed on `Node.order`.
        Raises ValueError on a cycle."""
        indegree = {node_id: len(set(node.inputs)) for node_id, node in self._nodes.items()}
        ready = [(node.order, node_id) for node_id, node in self._nodes.items()
                 if not indegree[node_id]]
        heapq.heapify(ready)
        order = []
        while ready:
            _, node_id = heapq.heappop(ready)
            order.append(self._nodes[node_id])
            for consumer in self._succ.get(node_id, ()):
                indegree[consumer] -= 1
                if not indegree[consumer]:
                    heapq.heappush(ready, (self._nodes[consumer].order, consumer))
        if len(order) != len(self._nodes):
            raise ValueError("graph has a cycle")
        return order

    def __iter__(self) -> Iterator[Node]:
        return iter(self.topo_order())

    def consumers(self, node_id: str) -> list[Node]:
        return [self._nodes[n] for n in self._succ.get(node_id, ())]

    def check(self) -> None:
        """Structural invariants (like torch.fx `Graph.lint`); raises AssertionError."""
        for node in self._nodes.values():
            for producer in node.inputs:
                assert producer in self._nodes, f"{node.id} reads missing {producer}"
        try:
            nodes = self.topo_order()
        except ValueError:
            raise AssertionError("graph has a cycle") from None
        modules = [n.module for n in nodes if n.module]
        assert len(modules) == len(set(modules)), "two nodes own the same submodule name"
        for node in nodes:
            for index, producer in enumerate(node.inputs):
                assert index in self._succ[producer][node.id], "edge index lost"
        for out in self.outputs:
            assert out in self._nodes, f"output {out} is not a node"
