"""League of Robot Runners 2023 problems: the JSON with its map, agents and tasks files.

Problem JSON keys: ``mapFile``, ``agentFile``, ``taskFile`` (paths relative to the JSON),
``teamSize`` (robots), ``numTasksReveal`` (upcoming errands a robot sees) and
``taskAssignmentStrategy``:

* ``roundrobin``: robot *i* gets errands *i*, *i + n*, *i + 2n*, ... of the task file
  (*n* = teamSize), the file re-read from the top when exhausted (endless); see
  :meth:`LorrProblem.task_for`;
* ``roundrobin_fixed``: robot *i* gets errands *i*, *i + n*, *i + 2n*, ... once each (no
  re-reading: a robot whose errands have run out stays parked and completes nothing more);
* ``greedy``: the next errand of the file goes to whichever robot becomes free first (the
  planner's task module hands them out; each robot holds ``numTasksReveal`` of them and does
  them in order); kept as given.

The map is a MovingAI-style ``.map`` (see :mod:`sorter.layout.movingai`: ``E`` inducts, ``S``
drop cells grouped into chutes). Agents file: first line the count, then one start cell id
(``row * width + col``) per line; tasks file: the count, then one task per line: one errand cell
(2023), or several comma-separated errand cells to visit in order (the 2024 format, e.g. an
``E`` errand then an ``S`` errand). The 2024 JSONs give ``numTasksReveal`` as a multiplier (a
float) and no ``taskAssignmentStrategy``: then ``nearest`` applies to a problem whose
``version`` names 2024 (the 2024 Start-Kit's scheduler), ``roundrobin`` to any other.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sorter.layout._common import fail, parse_int_lines, plain_int, read_text, split_lines
from sorter.layout.floor import OBSTACLE, Floor
from sorter.layout.movingai import load_movingai_map

__all__ = ["LorrProblem", "load_lorr_problem", "load_lorr_map", "load_cell_list", "load_task_list",
           "read_cell_list", "count_comment_lines", "STRATEGIES"]

STRATEGIES = ("roundrobin", "roundrobin_fixed", "greedy", "nearest")


@dataclass(eq=False)
class LorrProblem:
    """A loaded LoRR problem.

    Attributes
    ----------
    floor : Floor
    starts : int32 array (team_size,)
        Start cell of each robot (the first ``teamSize`` lines of the agents file).
    tasks : int32 array (n_errands,)
        Errand cells in file order (a multi-errand task's errands one after another).
    team_size : int
    num_tasks_reveal : int or float
        (a float multiplier in the 2024 files)
    strategy : str
        ``"roundrobin"``, ``"roundrobin_fixed"``, ``"greedy"`` or ``"nearest"`` (the JSON's
        ``taskAssignmentStrategy``;
        without it ``"nearest"`` for a 2024 problem -- ``"version": "2024 LoRR"``, where the
        entrant schedules -- else ``"roundrobin"``; see :class:`sorter.agv.tasks.ErrandTasks`).
    source : str
        The JSON file.
    task_offsets : int64 array (n_tasks + 1,) or None
        Task *j* is ``tasks[task_offsets[j]:task_offsets[j + 1]]``; None when every task is a
        single errand (the 2023 files).
    agents : int32 array (n_listed,) or None
        Every start cell the agents file lists (``starts`` is its first ``team_size``; more
        robots than ``team_size`` start on the next ones). Not checked for repeats past
        ``team_size``.
    agent_file : str or None
        The agents file.
    task_file : str or None
        The tasks file.
    agent_first_line : int
        The file line of agent 0 (after any ``#`` lines and the count line).
    """

    floor: Floor
    starts: np.ndarray
    tasks: np.ndarray
    team_size: int
    num_tasks_reveal: int | float
    strategy: str
    source: str | None = None
    task_offsets: np.ndarray | None = None
    agents: np.ndarray | None = None
    agent_file: str | None = None
    agent_first_line: int = 2
    task_file: str | None = None

    def task_for(self, robot, k):
        """Cell of the ``k``-th errand (0-based) of ``robot`` under round-robin assignment.

        Vectorised over NumPy arrays of robots and ``k``. The task file repeats endlessly.

        Raises
        ------
        InputError
            If the problem's strategy is not ``roundrobin``, or ``robot`` / ``k`` are not
            integers (robots in ``[0, team_size)``, ``k >= 0``).
        """
        if self.strategy != "roundrobin":
            fail(f"task_for needs round-robin assignment, the problem says {self.strategy!r}",
                 path=self.source, field="taskAssignmentStrategy", expected="'roundrobin'")
        if self.task_offsets is not None:
            fail("task_for needs single-errand tasks; this task file has multi-errand tasks",
                 path=self.source, field="taskFile",
                 expected="sorter.agv.tasks.ErrandTasks(..., offsets=task_offsets)")
        r, kk = np.asarray(robot), np.asarray(k)
        for name, v, hi in (("robot", r, self.team_size), ("k", kk, None)):
            # (0.5 was truncated to robot 0, robot -1 or one past the team wrapped round)
            if v.size and (v.dtype == np.bool_ or not np.issubdtype(v.dtype, np.integer)
                           or v.min() < 0 or (hi is not None and v.max() >= hi)):
                fail(f"{name} {robot if name == 'robot' else k!r}", path=self.source, field=name,
                     expected=(f"robot indices in [0, {hi})" if hi is not None
                               else "errand numbers k >= 0 (integers)"))
        idx = r.astype(np.int64) + kk.astype(np.int64) * self.team_size
        return self.tasks[idx % self.tasks.size]


#: Bound of ``numTasksReveal`` (a count per robot, or the 2024 multiplier; files use 1-2).
MAX_TASKS_REVEAL = 1_000_000


def load_lorr_map(path) -> Floor:
    """Load a LoRR ``.map`` (same as :func:`sorter.layout.movingai.load_movingai_map`)."""
    return load_movingai_map(path)


def load_cell_list(path, floor: Floor, *, field: str, min_count: int = 1):
    """Read a LoRR agents / tasks file: a count line, then one cell id per line.

    Leading ``#`` lines are skipped (the 2024 files begin with ``# version for LoRR 2024``).

    Every cell must be a free cell of ``floor``. Returns an int32 array of the listed cells.

    Raises
    ------
    InputError
        Naming file, line and expected form.
    """
    return read_cell_list(path, floor, field=field, min_count=min_count)[0]


def read_cell_list(path, floor: Floor, *, field: str, min_count: int = 1):
    """:func:`load_cell_list`, and the file line of the first cell (for errors that name an
    entry's line).

    Parameters
    ----------
    path : str or Path
        A LoRR agents / tasks file: leading ``#`` lines, a count line, one cell id per line.
    floor : Floor
        Every cell must be a free cell of it.
    field : str
        The field named in errors (``"start"``, ``"task"``).
    min_count : int
        The least count accepted.

    Returns
    -------
    cells : int32 array
        The listed cells.
    first_line : int
        The 1-based file line of ``cells[0]`` (after the ``#`` lines and the count line);
        entry ``i`` is on line ``first_line + i``.

    Raises
    ------
    InputError
        Naming file, line and expected form.

    Examples
    --------
    >>> from sorter.resources import shared_path
    >>> d = shared_path("benchmarks", "lorr2023", "example_instances", "warehouse.domain")
    >>> if d:
    ...     floor = load_lorr_map(d / "maps" / "warehouse_small.map")
    ...     cells, first = read_cell_list(d / "agents" / "warehouse_small_10.agents", floor,
    ...                                   field="start")
    ... else:
    ...     cells, first = [0] * 10, 2
    >>> len(cells), first
    (10, 2)
    """
    p = Path(path)
    lines = split_lines(read_text(p))
    k = count_comment_lines(lines)
    return _cell_list(p, lines[k:], k, floor, field=field, min_count=min_count), k + 2


def count_comment_lines(lines) -> int:
    """Number of leading ``#`` lines of a LoRR agents / tasks file (the 2024 files start with
    ``# version for LoRR 2024``); the count line follows them.

    Parameters
    ----------
    lines : list of str
        The file's lines.

    Returns
    -------
    int

    Examples
    --------
    >>> count_comment_lines(["# version for LoRR 2024", "2", "17", "40"])
    1
    """
    k = 0
    while k < len(lines) and lines[k].lstrip().startswith("#"):
        k += 1
    return k


# the old private names, kept working for callers that still use them
_read_cell_list = read_cell_list
_comment_lines = count_comment_lines


def _check_count(p, lines, k, count, nouns, what, field="count"):
    """The count on line ``k + 1`` must match the lines after it; else an error at the last
    line (too few) or the first extra one (too many). A blank line among them is the error
    named, at its line (was: counted as an entry, "says 2 entries but 3 follow")."""
    body = len(lines) - 1
    if body != count or "" in lines:           # (the scan only then: files of 500,000 lines)
        blank = next((i for i, ln in enumerate(lines[1:]) if not ln.strip()), None)
        if blank is not None:
            fail(f"blank line among the {nouns[1]}", path=p, line=k + blank + 2, field=field,
                 expected=f"{count} {what} with no blank lines between them")
    if body != count:
        fail(f"line {k + 1} says {count} {nouns[int(count != 1)]} but {body} follow", path=p,
             line=k + (min(len(lines), int(count) + 1) if body < count else int(count) + 2),
             field="count", expected=f"{count} {what}")


def _cell_list(p, lines, k, floor, *, field, min_count=1):
    """:func:`load_cell_list` on ``lines`` = the file's lines after ``k`` comment lines."""
    if not lines:
        fail("empty file" if k == 0 else "no count line after the comment lines", path=p,
             line=k + 1, field=field, expected=f"a count on line {k + 1}")
    count = parse_int_lines(lines[:1], first_line=k + 1, path=p, field="count", lo=0,
                            expected="a non-negative count of the lines that follow")[0]
    body = lines[1:]
    _check_count(p, lines, k, count, ("entry", "entries"), "lines of cell ids", field)
    if count < min_count:
        fail(f"{count} entries", path=p, line=k + 1, field="count",
             expected=f"at least {min_count}")
    vals = parse_int_lines(body, first_line=k + 2, path=p, field=field, lo=0, hi=floor.n_cells,
                           expected=f"a cell id row * {floor.width} + col in 0..{floor.n_cells - 1}")
    blocked = np.flatnonzero(floor.cells[vals] == OBSTACLE)
    if blocked.size:
        i = int(blocked[0])
        r, c = floor.rc(vals[i])
        fail(f"cell {int(vals[i])} (row {r}, col {c}) is an obstacle", path=p, line=k + i + 2,
             field=field, expected="a free cell of the map")
    return vals.astype(np.int32)


def load_task_list(path, floor: Floor):
    """Read a LoRR tasks file: a count line, then one task per line (errand cells, comma-separated).

    Leading ``#`` lines are skipped, as in :func:`load_cell_list`.

    Returns
    -------
    errands : int32 array
        Every errand cell, task after task.
    offsets : int64 array (n_tasks + 1,) or None
        Task *j* is ``errands[offsets[j]:offsets[j + 1]]``; None when every line holds one
        errand (then ``errands`` is what :func:`load_cell_list` returns).

    Raises
    ------
    InputError
        Naming file, line and expected form (count, non-integer, an empty errand, a cell off
        the map or on an obstacle).
    TypeError
        If ``floor`` is not a :class:`~sorter.layout.Floor`.
    """
    if not isinstance(floor, Floor):
        raise TypeError(f"floor must be a sorter.layout.Floor (the errands' map), not "
                        f"{type(floor).__name__}")
    p = Path(path)
    text = read_text(p)
    lines = split_lines(text)
    k = count_comment_lines(lines)
    lines = lines[k:]
    if not any("," in ln for ln in lines[1:]):
        return _cell_list(p, lines, k, floor, field="task"), None
    count = parse_int_lines(lines[:1], first_line=k + 1, path=p, field="count", lo=1,
                            expected="a positive count of the task lines that follow")[0]
    body = lines[1:]
    _check_count(p, lines, k, count, ("task", "tasks"), "task lines", "task")
    parts, sizes = [], np.empty(len(body), np.int64)
    for i, ln in enumerate(body):
        f = ln.split(",")
        if any(not x.strip() for x in f):
            fail(f"task {ln.strip()!r} has an empty errand", path=p, line=k + i + 2, field="task",
                 expected="cell ids separated by commas, e.g. '12,345'")
        parts.extend(f)
        sizes[i] = len(f)
    line_of = np.repeat(np.arange(k + 2, k + len(body) + 2), sizes)
    expected = f"cell ids row * {floor.width} + col in 0..{floor.n_cells - 1}, comma-separated"
    try:
        joined = "".join(parts)
        if "_" in joined or not joined.isascii():   # int() reads "1_2" as 12 and "\u0661"
            raise ValueError                          # (Arabic-Indic 1) as 1: no file's numbers
        vals = np.asarray(parts, dtype=np.str_).astype(np.int64)
    except (ValueError, OverflowError):
        for k, x in enumerate(parts):
            try:
                plain_int(x)
            except ValueError:
                fail(f"{x.strip()!r} is not an integer", path=p, line=int(line_of[k]),
                     field="task", expected=expected)
        vals = np.array([max(min(int(x), 2 ** 62), -1) for x in parts], np.int64)
    off = np.flatnonzero((vals < 0) | (vals >= floor.n_cells))
    if off.size:
        k = int(off[0])
        # the number as written (a huge one is clamped in ``vals``)
        fail(f"{parts[k].strip()} is out of range", path=p, line=int(line_of[k]), field="task",
             expected=expected)
    blocked = np.flatnonzero(floor.cells[vals] == OBSTACLE)
    if blocked.size:
        k = int(blocked[0])
        r, c = floor.rc(vals[k])
        fail(f"cell {int(vals[k])} (row {r}, col {c}) is an obstacle", path=p,
             line=int(line_of[k]), field="task", expected="a free cell of the map")
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return vals.astype(np.int32), offsets


def load_lorr_problem(path) -> LorrProblem:
    """Load a League of Robot Runners 2023 problem JSON with its map, agents and tasks.

    Parameters
    ----------
    path : str or Path
        The problem ``.json``.

    Returns
    -------
    LorrProblem

    Raises
    ------
    InputError
        Naming the file (JSON, map, agents or tasks), line and field: malformed JSON, a missing
        or mistyped key, a file that does not exist, fewer agents than ``teamSize``, cells off
        the map or on obstacles, an unknown strategy.

    Examples
    --------
    >>> from sorter.resources import shared_path
    >>> p = shared_path("benchmarks", "lorr2023", "example_instances", "warehouse.domain",
    ...                 "EI23-warehouse_small_10.json")
    >>> prob = load_lorr_problem(p) if p else None
    >>> (prob.team_size, prob.starts.size, prob.strategy) if prob else (10, 10, 'roundrobin')
    (10, 10, 'roundrobin')
    """
    p = Path(path)
    text = read_text(p)
    dups = []

    def pairs(items):           # the json module keeps the last of two equal keys, silently
        seen = set()
        for k, _ in items:
            if k in seen:
                dups.append(k)
            seen.add(k)
        return dict(items)

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:      # '[[[[...' thousands deep: the parser recurses per level
        fail("not valid JSON: arrays or objects nested too deeply", path=p,
             expected="a JSON object of keys and plain values")
    except json.JSONDecodeError as e:
        fail(f"not valid JSON: {e.msg}", path=p, line=e.lineno, column=e.colno,
             expected="a JSON object")
    except ValueError as e:     # a number past int()'s limit (4,301+ digits)
        m = re.search(r"\d{4301,}", text)
        fail(f"not valid JSON: {e}", path=p,
             line=text.count("\n", 0, m.start()) + 1 if m else None,
             expected="a JSON object with numbers of at most 4,300 digits")
    if not isinstance(doc, dict):
        fail("the document is not a JSON object", path=p, line=1, expected="a JSON object {...}")

    def line_of(key, nth=1):
        for i, ln in enumerate(text.split("\n")):
            if f'"{key}"' in ln:
                nth -= 1
                if nth == 0:
                    return i + 1
        return 1

    if dups:
        fail(f"key {dups[0]!r} given twice", path=p, line=line_of(dups[0], 2), field=dups[0],
             expected="each key once (JSON readers differ on which value they keep)")

    def get(key, typ, expected):
        if key not in doc:
            fail(f"missing key {key!r}", path=p, line=1, field=key, expected=expected)
        v = doc[key]
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            fail(f"{v!r} is not an integer", path=p, line=line_of(key), field=key, expected=expected)
        if typ is str and not isinstance(v, str):
            fail(f"{v!r} is not a string", path=p, line=line_of(key), field=key, expected=expected)
        return v

    # a misspelt optional key would silently change the run (round robin instead of the named
    # strategy, one revealed task instead of several): refuse keys that look like one of ours
    known = ("mapFile", "agentFile", "taskFile", "teamSize", "numTasksReveal",
             "taskAssignmentStrategy", "version")
    for key in doc:
        if key not in known:
            near = difflib.get_close_matches(str(key).lower(), [k.lower() for k in known], 1, 0.8)
            if near:
                want = next(k for k in known if k.lower() == near[0])
                fail(f"unknown key {key!r} (did you mean {want!r}?)", path=p,
                     line=line_of(key), field=str(key), expected=", ".join(known))
    map_file = get("mapFile", str, "a path to the .map file, relative to the JSON")
    agent_file = get("agentFile", str, "a path to the .agents file, relative to the JSON")
    task_file = get("taskFile", str, "a path to the .tasks file, relative to the JSON")
    team = get("teamSize", int, "a positive number of robots")
    if team < 1:
        fail(f"teamSize {team}", path=p, line=line_of("teamSize"), field="teamSize",
             expected="a positive number of robots")
    reveal = doc.get("numTasksReveal", 1)
    # (below the task scheduler's own bound, 1e6: 1e18 passed here and was refused later
    # without the file's name)
    if isinstance(reveal, bool) or not isinstance(reveal, (int, float)) \
            or not 0 < reveal < MAX_TASKS_REVEAL:
        fail(f"numTasksReveal {reveal!r}", path=p, line=line_of("numTasksReveal"),
             field="numTasksReveal", expected="a positive number below 1,000,000 (a count, or "
                                              "the 2024 multiplier)")
    if isinstance(reveal, float) and reveal.is_integer():
        reveal = int(reveal)
    # 2024 problems name no strategy (the entrant schedules): our "nearest" scheduler then,
    # as the 2024 Start-Kit's default one; a 2023 problem without the key: round robin
    v2024 = "2024" in str(doc.get("version", ""))
    strategy = doc.get("taskAssignmentStrategy", "nearest" if v2024 else "roundrobin")
    if strategy not in STRATEGIES:
        fail(f"unknown strategy {strategy!r}", path=p, line=line_of("taskAssignmentStrategy"),
             field="taskAssignmentStrategy", expected=" or ".join(repr(s) for s in STRATEGIES))
    files = {}
    for key, rel in (("mapFile", map_file), ("agentFile", agent_file), ("taskFile", task_file)):
        q = (p.parent / rel)
        try:
            exists = q.exists()
            is_file = q.is_file()
        except (OSError, ValueError):       # e.g. an embedded NUL byte in the path
            exists = is_file = False
        if not rel.strip():
            fail(f"{key} is empty", path=p, line=line_of(key), field=key,
                 expected="a path relative to the JSON file")
        if not exists:
            fail(f"file {str(q)!r} does not exist", path=p, line=line_of(key), field=key,
                 expected="a path relative to the JSON file")
        if not is_file:
            fail(f"{str(q)!r} is not a regular file", path=p, line=line_of(key), field=key,
                 expected="a path to a file, relative to the JSON file")
        files[key] = q
    floor = load_movingai_map(files["mapFile"])
    agents, first = read_cell_list(files["agentFile"], floor, field="start")
    if agents.size < team:
        fail(f"{agents.size} agents listed but teamSize is {team}", path=files["agentFile"],
             line=first - 1, field="count", expected=f"at least {team} agents")
    starts = agents[:team]
    uniq, first_idx, counts = np.unique(starts, return_index=True, return_counts=True)
    if (counts > 1).any():
        cell = int(uniq[np.flatnonzero(counts > 1)[0]])
        dup = np.flatnonzero(starts == cell)
        fail(f"robots {int(dup[0])} and {int(dup[1])} both start on cell {cell}",
             path=files["agentFile"], line=first + int(dup[1]), field="start",
             expected="distinct start cells")
    tasks, offsets = load_task_list(files["taskFile"], floor)
    return LorrProblem(floor=floor, starts=np.ascontiguousarray(starts), tasks=tasks,
                       team_size=int(team), num_tasks_reveal=reveal, strategy=strategy,
                       source=str(p), task_offsets=offsets, agents=agents,
                       agent_file=str(files["agentFile"]), agent_first_line=first,
                       task_file=str(files["taskFile"]))
