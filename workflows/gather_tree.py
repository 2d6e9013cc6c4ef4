"""The shape of a gather tree: which inputs each gather job sums, level by level.

A tree of fan-in ``F`` over ``n`` leaves has ``ceil(n / F)`` nodes at level 1, each summing
at most ``F`` leaves, then ``ceil(nodes / F)`` at level 2, and so on until one node, the root,
at level ``height``. Groups on a level are contiguous and differ in size by at most one, so
no gather waits on many more inputs than its neighbours. One leaf still gets a root (level 1
with one input): the root normalises and writes the FITS files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    """One gather job: its level (1..height), index on the level, and the indices of the
    nodes (or leaves, on level 1) of the level below that it sums."""

    level: int
    index: int
    inputs: tuple[int, ...]


def split(n: int, fan_in: int) -> list[tuple[int, ...]]:
    """``n`` items in ``ceil(n / fan_in)`` contiguous groups, sizes differing by at most 1."""
    if n < 1:
        raise ValueError(f"a gather needs at least one input, got {n}")
    if fan_in < 2:
        raise ValueError(f"the fan-in must be at least 2, got {fan_in}")
    groups = math.ceil(n / fan_in)
    base, extra = divmod(n, groups)
    out, start = [], 0
    for g in range(groups):
        size = base + (1 if g < extra else 0)
        out.append(tuple(range(start, start + size)))
        start += size
    return out


def levels(leaves: int, fan_in: int) -> list[list[Node]]:
    """The tree over ``leaves`` leaves: ``levels[L - 1]`` holds the nodes of level L; the last
    level holds only the root."""
    tree: list[list[Node]] = []
    width = leaves
    while True:
        level = len(tree) + 1
        nodes = [Node(level, j, group) for j, group in enumerate(split(width, fan_in))]
        tree.append(nodes)
        if len(nodes) == 1:
            return tree
        width = len(nodes)


def root_inputs(leaves: list[str], fan_in: int, node: Callable[[int, int], str]) -> list[str]:
    """The names the root of the tree over ``leaves`` sums: leaves, or inner nodes named
    ``node(level, index)`` (what a level below the tree's own reads, without building it)."""
    tree, below = levels(len(leaves), fan_in), leaves
    for level in tree[:-1]:
        below = [node(n.level, n.index) for n in level]
    return [below[i] for i in tree[-1][0].inputs]
