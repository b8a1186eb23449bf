"""Guidance for PIBT: soft one-way lanes generated for a floor ("crisscross" highways).

Every horizontal corridor gets a preferred direction (east or west), alternating from one
corridor row to the next, and every vertical corridor likewise (south / north). A move against
its lane costs ``1 + penalty`` instead of 1; distance tables are then weighted shortest paths
(:class:`sorter.agv.distance.DistanceTables` with ``costs``), and PIBT follows them. Robots keep
right-of-way lanes, so head-on meetings in single-width corridors -- the main source of waiting
at high density -- become rare, while every move stays allowed (the lanes are soft).

This is the hand-designed "crisscross" guidance graph used as a baseline by Zhang et al.
("Guidance Graph Optimization for Lifelong Multi-Agent Path Finding", IJCAI 2024) and the
highways of Cohen et al. (SoCS 2015), and the static part of the traffic-flow guidance of Chen et
al. (AAAI 2024).

Docks (rotation model): where induct cells line a row or column every other cell (the ``E.E.E``
border rows of LoRR ``sortation_large``), moves along that line into an induct cost an extra
``dock_penalty`` (:func:`dock_mask`): through traffic keeps off the line and robots enter an
induct from the side, instead of stopping and turning at it in a through lane.

Corridor detection: a cell belongs to a horizontal corridor if its maximal free run along the
row is at least ``min_run`` cells; a row is a corridor row if at least ``min_share`` of its free
cells do. Corridor rows are numbered top to bottom and alternate east / west (two adjacent
corridor rows form a two-lane road); columns likewise alternate south / north.

Carriageways (``carriageway=k``): where several corridor rows lie side by side (an open band,
such as the five open rows along the ``E`` border of LoRR ``sortation_large``), alternating
every row makes every lane change a move into the opposite traffic. With ``k > 1`` each run of
``m`` adjacent corridor rows is cut into groups of ``min(k, ceil(m / 2))`` rows that share a
direction -- a two-way road of multi-lane carriageways -- while isolated corridor rows (streets
between blocks) still alternate one by one. Columns likewise. Used with the rotation model,
where a robot changing lane must stop and turn: 4 there (MR23-I-06 +13%, I-10 +11% over 5,000
steps, ``bench/RESULTS.md``); 1 (every row alternates) elsewhere.
"""
from __future__ import annotations

import numpy as np

from sorter.errors import InputError

__all__ = ["lane_costs", "lane_directions", "dock_mask"]


def _runs(free):
    """Length of the maximal run of True containing each cell, along axis 1."""
    h, w = free.shape
    out = np.zeros((h, w), np.int64)
    for r in range(h):
        row = free[r]
        c = 0
        while c < w:
            if not row[c]:
                c += 1
                continue
            e = c
            while e < w and row[e]:
                e += 1
            out[r, c:e] = e - c
            c = e
    return out


def _group_index(corr, carriageway):
    """Direction group of every line: corridor lines are numbered in order, except that a run
    of ``m`` adjacent corridor lines is cut into groups of ``min(carriageway, ceil(m / 2))``
    lines sharing one number; lines between corridors follow the last group (0 before any).

    Examples
    --------
    >>> _group_index(np.array([1, 1, 1, 1, 1, 1, 0, 1, 0, 1], bool), 3).tolist()
    [0, 0, 0, 1, 1, 1, 1, 2, 2, 3]
    >>> _group_index(np.array([1, 1, 1, 1, 1, 1, 0, 1, 0, 1], bool), 1).tolist()
    [0, 1, 2, 3, 4, 5, 5, 6, 6, 7]
    """
    out = np.zeros(corr.size, np.int64)
    gid = -1
    r = 0
    while r < corr.size:
        if not corr[r]:
            out[r] = max(gid, 0)
            r += 1
            continue
        e = r
        while e < corr.size and corr[e]:
            e += 1
        g = max(1, min(carriageway, (e - r + 1) // 2))
        for k in range(e - r):
            if k % g == 0:
                gid += 1
            out[r + k] = gid
        r = e
    return out


def lane_directions(floor, *, min_run=3, min_share=0.5, carriageway=1):
    """Preferred horizontal and vertical direction of every cell.

    ``carriageway``: at most this many adjacent corridor lines share a direction (see the
    module docstring); 1 = every corridor line alternates.

    Returns
    -------
    (hdir, vdir) : int8 arrays (n_cells,)
        ``hdir``: 0 east / 2 west; ``vdir``: 1 south / 3 north (direction codes of the floor).

    Examples
    --------
    >>> from sorter.layout import Floor
    >>> f = Floor.from_ascii("\\n".join(["....."] * 6))
    >>> h1, _ = lane_directions(f)
    >>> h3, _ = lane_directions(f, carriageway=3)
    >>> h1[::5].tolist(), h3[::5].tolist()     # one cell per row: 0 east, 2 west
    ([0, 2, 0, 2, 0, 2], [0, 0, 0, 2, 2, 2])
    """
    if (isinstance(carriageway, bool) or not isinstance(carriageway, (int, np.integer))
            or not 1 <= carriageway <= 64):
        raise InputError(f"carriageway {carriageway}", field="carriageway",
                         expected="an integer 1..64")
    free = (floor.cells != 0).reshape(floor.height, floor.width)
    hrun = _runs(free)
    vrun = _runs(free.T).T
    hcorr = ((hrun >= min_run).sum(1) >= min_share * np.maximum(1, free.sum(1))) & free.any(1)
    vcorr = ((vrun >= min_run).sum(0) >= min_share * np.maximum(1, free.sum(0))) & free.any(0)
    if carriageway == 1:
        hk = np.cumsum(hcorr) - 1        # corridor-row index (rows between corridors follow the last)
        vk = np.cumsum(vcorr) - 1
    else:
        hk = _group_index(hcorr, int(carriageway))
        vk = _group_index(vcorr, int(carriageway))
    hdir = np.where(hk % 2 == 0, 0, 2).astype(np.int8)          # east, west, east, ...
    vdir = np.where(vk % 2 == 0, 1, 3).astype(np.int8)          # south, north, ...
    H = np.repeat(hdir[:, None], floor.width, axis=1).ravel()
    V = np.repeat(vdir[None, :], floor.height, axis=0).ravel()
    return H, V


def dock_mask(floor):
    """Moves that run along a line of induct cells, into one of them (int bool (n_cells, 4)).

    An induct cell ``c`` with another induct two cells away along an axis (``E.E.E`` on a
    border row) is a *dock*: moves into it along that axis pass through the line of docks,
    where robots stop and turn.

    Examples
    --------
    >>> from sorter.layout import Floor
    >>> f = Floor.from_ascii("I.I\\n...")
    >>> dock_mask(f)[f.cell(0, 1)].tolist(), dock_mask(f)[f.cell(1, 0)].tolist()
    ([True, False, True, False], [False, False, False, False])
    """
    h, w = floor.height, floor.width
    ind = (np.asarray(floor.cells) == 2).reshape(h, w)
    m = np.asarray(floor.moves)
    out = np.zeros((floor.n_cells, 4), np.bool_)
    p = np.zeros((h + 4, w + 4), np.bool_)
    p[2:-2, 2:-2] = ind
    horiz = (ind & (p[2:-2, :-4] | p[2:-2, 4:])).ravel()     # an induct two cells left / right
    vert = (ind & (p[:-4, 2:-2] | p[4:, 2:-2])).ravel()      # ... two cells up / down
    src, d = np.nonzero(m >= 0)
    tgt = m[src, d]
    along = np.where(d % 2 == 0, horiz[tgt], vert[tgt])
    out[src[along], d[along]] = True
    return out


def lane_costs(floor, penalty=2, *, dock_penalty=0, **kw):
    """Cost of every move: 1 with the lane, ``1 + penalty`` against it.

    Parameters
    ----------
    floor : Floor
        Needs ``height``, ``width``, ``cells`` and ``moves``.
    penalty : int
        Extra cost of a move against its lane (0 = no guidance).
    dock_penalty : int
        Extra cost of a move along a line of induct cells into one of them (:func:`dock_mask`),
        so that through traffic keeps off the ``E.E.E`` border rows of LoRR maps and robots
        enter an induct from the side (used with the rotation model; 0 = off).

    Returns
    -------
    numpy.ndarray
        uint8 (n_cells, 4), aligned with ``floor.moves``; one-way moves (whose reverse the floor
        forbids) and forbidden moves cost 1: the floor's own directions are kept.

    Examples
    --------
    >>> from sorter.layout import Floor
    >>> f = Floor.from_ascii("...\\n...")
    >>> lane_costs(f, 2)[f.cell(0, 1)].tolist()      # row 0 runs east, column 1 runs north
    [1, 3, 3, 1]
    """
    if int(penalty) != penalty or not 0 <= penalty <= 200:
        raise InputError(f"lane penalty {penalty}", field="penalty", expected="an integer 0..200")
    if not hasattr(floor, "width"):
        raise InputError("lanes need a Floor (with height and width)", field="floor",
                         expected="a sorter.layout.Floor")
    H, V = lane_directions(floor, **kw)
    cost = np.ones((floor.n_cells, 4), np.uint8)
    opp_h = (H + 2) % 4
    opp_v = (V + 2) % 4
    idx = np.arange(floor.n_cells)
    cost[idx, opp_h] += np.uint8(penalty)
    cost[idx, opp_v] += np.uint8(penalty)
    # one-way moves are the floor's own design: only two-way moves get a lane preference
    m = np.asarray(floor.moves)
    src, d = np.nonzero(m >= 0)
    back = m[m[src, d], (d + 2) % 4]
    one_way = back != src
    cost[src[one_way], d[one_way]] = 1
    if dock_penalty:
        if int(dock_penalty) != dock_penalty or not 0 <= dock_penalty <= 50:
            raise InputError(f"dock penalty {dock_penalty}", field="dock_penalty",
                             expected="an integer 0..50")
        cost[dock_mask(floor)] += np.uint8(dock_penalty)
    return cost
