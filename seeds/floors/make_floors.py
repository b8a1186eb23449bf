"""Regenerate the generated floors of this folder: ``python seeds/floors/make_floors.py``.

``oneway_7x16.txt`` and ``queues_11x29.txt`` are hand-made and not rewritten here.
"""
from pathlib import Path

from sorter.layout import lattice_capacity, sortation_floor

HERE = Path(__file__).resolve().parent

FLOORS = {
    "small_12x20.txt": dict(rows=12, cols=20, n_inducts=4, n_chutes=8, seed=1),
    "medium_33x57.txt": dict(rows=33, cols=57, n_inducts=16,
                             n_chutes=lattice_capacity(33, 57), seed=1),
}

if __name__ == "__main__":
    for name, kw in FLOORS.items():
        floor = sortation_floor(**kw)
        (HERE / name).write_text(floor.to_ascii())
        print(name, floor)
