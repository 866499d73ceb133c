"""analyse: costs computed from the typed graph alone (no torch).

MACs are counted as `torch.utils.flop_counter` counts FLOPs / 2: convolutions and matmuls
only, bias excluded; elementwise ops (adds, gates), normalisation and pooling are 0 here.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.ir import Graph
from netc.ops import OPS, Cost


@dataclass(frozen=True)
class Totals:
    params: int
    buffers: int  # state_dict elements that are not parameters, num_batches_tracked included
    macs: int


def node_cost(graph: Graph, node_id: str) -> Cost:
    node = graph.node(node_id)
    if node.op == "input":
        return Cost()
    ins = [graph.node(i).shape for i in node.inputs]
    return OPS[node.op].cost(node.args, ins, node.shape)


def totals(graph: Graph) -> Totals:
    costs = [node_cost(graph, node.id) for node in graph]
    return Totals(sum(c.params for c in costs), sum(c.buffers for c in costs),
                  sum(c.macs for c in costs))


def human(count: float) -> str:
    """3 significant figures with K/M/G, as people quote model sizes."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= size:
            return f"{count / size:.3g} {unit}"
    return str(count)
