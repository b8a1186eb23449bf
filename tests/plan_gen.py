"""Random sort plans and event streams for the engine tests (seeded NumPy generators)."""
from __future__ import annotations


from sorter.constants import REJECT_REASONS, STATES, STRATEGIES
from sorter.plan import Chute, SortPlan

EVENT_STATES = [s for s in STATES]  # open, full, container_change, blocked, disabled


def random_plan(rng, *, strategy=None):
    """(SortPlan, [Chute]) with 1-10 destination chutes, 0-2 overflow, 1-3 reject chutes."""
    n_dest_chutes = int(rng.integers(1, 11))
    n_over = int(rng.integers(0, 3))
    n_rej = int(rng.integers(1, 4))
    chutes = [Chute(f"C{i}", "destination", int(rng.integers(1, 6))) for i in range(n_dest_chutes)]
    chutes += [Chute(f"O{i}", "overflow", int(rng.integers(1, 6))) for i in range(n_over)]
    chutes += [Chute(f"R{i}", "reject", int(rng.integers(1, 100))) for i in range(n_rej)]
    reject = {r: f"R{int(rng.integers(0, n_rej))}" for r in REJECT_REASONS}
    plan = SortPlan(routes=random_routes(rng, chutes), reject=reject,
                    overflow=tuple(f"O{i}" for i in rng.permutation(n_over)),
                    strategy=strategy or STRATEGIES[int(rng.integers(0, 3))],
                    max_recirculation=int(rng.integers(0, 4)), name="p")
    return plan, chutes


def random_routes(rng, chutes):
    sortable = [c.id for c in chutes if c.kind != "reject"]
    n_dest = int(rng.integers(1, 9))
    routes = {}
    for d in range(n_dest):
        k = int(rng.integers(1, min(4, len(sortable)) + 1))
        routes[f"D{int(rng.integers(0, 12))}"] = tuple(
            sortable[i] for i in rng.choice(len(sortable), k, replace=False))
    return routes


def random_ops(rng, chutes, n_ops):
    """A list of operations: ('scan', dest, recirc, sortable), ('discharged', c, n), ..."""
    ids = [c.id for c in chutes]
    ops = []
    for _ in range(n_ops):
        u = rng.random()
        if u < 0.6:
            v = rng.random()
            dest = None if v < 0.05 else "" if v < 0.08 else f"D{int(rng.integers(0, 14))}"
            ops.append(("scan", dest, int(rng.integers(0, 5)), bool(rng.random() > 0.05)))
        elif u < 0.78:
            ops.append(("discharged", ids[int(rng.integers(0, len(ids)))], int(rng.integers(1, 3))))
        elif u < 0.9:
            ops.append(("set_state", ids[int(rng.integers(0, len(ids)))],
                        EVENT_STATES[int(rng.integers(0, len(EVENT_STATES)))]))
        elif u < 0.97:
            ops.append(("container_changed", ids[int(rng.integers(0, len(ids)))]))
        else:
            ops.append(("switch_plan", random_routes(rng, chutes)))
    return ops


def naive_for(plan, chutes):
    from naive import NaiveSorter
    return NaiveSorter(plan.routes, {c.id: (c.kind, c.capacity) for c in chutes}, plan.reject,
                       plan.overflow, plan.strategy, plan.max_recirculation)


def apply(target, op):
    """Apply one op to a Sorter or NaiveSorter; scans return (chute, reason)."""
    kind = op[0]
    if kind == "scan":
        d = target.assign(op[1], op[2], op[3])
        return tuple(d)
    if kind == "discharged":
        target.discharged(op[1], op[2])
    elif kind == "set_state":
        target.set_state(op[1], op[2])
    elif kind == "container_changed":
        target.container_changed(op[1])
    elif kind == "switch_plan":
        target.switch_plan(op[1])
    return None
