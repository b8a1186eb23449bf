"""Vectorised grid helpers shared by the floor loaders (NumPy only, no compiled code).

* :func:`grid_moves` builds the ``moves`` table of a floor from its cell types.
* :func:`reverse_moves` inverts it (who can move *into* a cell).
* :func:`label_components` labels 4-connected blocks of a boolean mask (union-find with
  pointer jumping, vectorised: a handful of NumPy passes even for a 140 x 500 floor).
* :func:`group_by_block` groups drop/service cells by the obstacle block they touch (chutes;
  optionally not by the border wall).
* :func:`reach` is a frontier BFS, forwards or backwards over ``moves``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DR", "DC", "grid_moves", "reverse_moves", "label_components", "group_by_block", "reach"]

# row / column offsets of the four move directions: 0 east, 1 south, 2 west, 3 north
DR = np.array([0, 1, 0, -1], dtype=np.int64)
DC = np.array([1, 0, -1, 0], dtype=np.int64)


def grid_moves(free: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Moves table of a 2-D grid.

    Parameters
    ----------
    free : bool array (height, width)
        True where a robot may stand.
    allowed : bool array (height * width, 4), optional
        False where the move out of a cell in that direction is forbidden (one-way).

    Returns
    -------
    int32 array (height * width, 4): target cell id, or -1 (off-grid, obstacle, forbidden).
    """
    h, w = free.shape
    n = h * w
    rows, cols = np.divmod(np.arange(n, dtype=np.int64), w)
    flat = free.ravel()
    moves = np.full((n, 4), -1, dtype=np.int32)
    for d in range(4):
        r = rows + DR[d]
        c = cols + DC[d]
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        tgt = np.where(inside, r * w + c, 0)
        ok = inside & flat & flat[tgt]
        if allowed is not None:
            ok &= allowed[:, d]
        moves[ok, d] = tgt[ok]
    return moves


def reverse_moves(moves: np.ndarray) -> np.ndarray:
    """``rev[c, d]`` = the cell whose move in direction ``d`` lands on ``c`` (-1 if none)."""
    n = moves.shape[0]
    rev = np.full((n, 4), -1, dtype=np.int32)
    src = np.arange(n, dtype=np.int32)
    for d in range(4):
        t = moves[:, d]
        ok = t >= 0
        rev[t[ok], d] = src[ok]
    return rev


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 4-connected components of a 2-D boolean mask.

    Returns ``(labels, k)``: int32 labels of shape ``(h * w,)``, ``0..k-1`` on the mask
    numbered in row-major order of each component's first cell, ``-1`` elsewhere.
    """
    h, w = mask.shape
    flat = mask.ravel()
    n = h * w
    parent = np.arange(n, dtype=np.int64)
    ids = np.arange(n, dtype=np.int64).reshape(h, w)
    # edges between horizontally / vertically adjacent mask cells
    hz = mask[:, :-1] & mask[:, 1:]
    vt = mask[:-1, :] & mask[1:, :]
    a = np.concatenate([ids[:, :-1][hz], ids[:-1, :][vt]])
    b = np.concatenate([ids[:, 1:][hz], ids[1:, :][vt]])
    while a.size:
        ra = parent[a]
        rb = parent[b]
        diff = ra != rb
        if not diff.any():
            break
        a, b, ra, rb = a[diff], b[diff], ra[diff], rb[diff]
        hi = np.maximum(ra, rb)
        lo = np.minimum(ra, rb)
        np.minimum.at(parent, hi, lo)      # hook the larger root under the smaller
        while True:                         # pointer jumping to full compression
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    labels = np.full(n, -1, dtype=np.int32)
    roots = parent[flat]
    uniq, inverse = np.unique(roots, return_inverse=True)
    # roots are the smallest cell id of each component: row-major order already
    labels[flat] = inverse.astype(np.int32)
    return labels, int(uniq.size)


def group_by_block(block: np.ndarray, drop: np.ndarray, *, edge_is_wall: bool = False):
    """Group drop cells by the 4-connected block of ``block`` cells they touch.

    Parameters
    ----------
    block, drop : bool arrays (height, width)
    edge_is_wall : bool
        Blocks that reach the grid's edge are the border wall, not chute bodies: no group is
        made for them, and a drop cell that touches only such blocks is an orphan.

    Returns
    -------
    groups : list of (block_label, int32 array of drop cell ids), in block label order,
        only blocks that touch at least one drop cell.
    block_labels : int32 (h * w,) component label of every block cell, -1 elsewhere.
    orphans : int32 array of drop cells that touch no block (no block inside the edge, with
        ``edge_is_wall``).
    """
    h, w = block.shape
    n = h * w
    block_labels, _ = label_components(block)
    labels = block_labels
    if edge_is_wall:
        grid = block_labels.reshape(h, w)
        edge = np.unique(np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]]))
        labels = np.where(np.isin(block_labels, edge[edge >= 0]), -1, block_labels)
    dcells = np.flatnonzero(drop.ravel())
    rows, cols = np.divmod(dcells, w)
    pair_blk = []
    pair_cell = []
    for d in range(4):
        r = rows + DR[d]
        c = cols + DC[d]
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        tgt = np.where(inside, r * w + c, 0)
        lab = np.where(inside, labels[tgt], -1)
        ok = lab >= 0
        pair_blk.append(lab[ok])
        pair_cell.append(dcells[ok])
    blk = np.concatenate(pair_blk).astype(np.int64)
    cel = np.concatenate(pair_cell).astype(np.int64)
    touched = np.zeros(n, dtype=bool)
    touched[cel] = True
    orphans = dcells[~touched[dcells]].astype(np.int32)
    if blk.size == 0:
        return [], block_labels, orphans
    key = np.unique(blk * n + cel)
    blk_s = key // n
    cel_s = (key % n).astype(np.int32)
    cuts = np.flatnonzero(np.diff(blk_s)) + 1
    starts = np.concatenate([[0], cuts])
    groups = [(int(blk_s[s]), part) for s, part in zip(starts, np.split(cel_s, cuts))]
    return groups, block_labels, orphans


#: A front of at most this many cells goes round by round in plain Python (see :func:`reach`).
_NARROW = 16


def reach(moves: np.ndarray, sources, *, backward: bool = False, rev: np.ndarray | None = None):
    """Cells reachable from ``sources`` (forwards) or that can reach them (``backward=True``).

    Returns a bool array of shape ``(n_cells,)``.
    """
    table = moves
    if backward:
        table = reverse_moves(moves) if rev is None else rev
    n = moves.shape[0]
    seen_b = bytearray(n)               # one buffer: NumPy rounds and Python rounds share it
    seen = np.frombuffer(seen_b, dtype=bool)
    front = np.unique(np.asarray(sources, dtype=np.int64))
    seen[front] = True
    # a narrow front (a corridor, a maze: tens of thousands of rounds of a few cells) goes
    # round by round in plain Python, a fraction of the cost of the vector operations
    small = front.tolist() if front.size <= _NARROW else None
    while True:
        if small is not None:
            if not small:
                break
            new = []
            for v in small:
                for u in table[v].tolist():
                    if u >= 0 and not seen_b[u]:
                        seen_b[u] = 1
                        new.append(u)
            if len(new) <= _NARROW:
                small = new
                continue
            front, small = np.array(new, dtype=np.int64), None
        nxt = table[front].ravel()
        nxt = nxt[nxt >= 0]
        nxt = nxt[~seen[nxt]]
        if not nxt.size:
            break
        front = np.unique(nxt)
        seen[front] = True
        if front.size <= _NARROW:
            small = front.tolist()
    return seen.copy()


def char_codes(*, travel: str, obstacle: str, induct: str, drop: str) -> np.ndarray:
    """Byte -> cell type code table for a text grid format (-1 for characters it doesn't know)."""
    from sorter.layout.floor import DROP, INDUCT, OBSTACLE, TRAVEL
    table = np.full(256, -1, dtype=np.int8)
    for chars, code in ((travel, TRAVEL), (obstacle, OBSTACLE), (induct, INDUCT), (drop, DROP)):
        for ch in chars:
            table[ord(ch)] = code
    return table
