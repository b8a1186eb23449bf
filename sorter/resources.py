"""Where the shipped seed files are: inside the installed package, or the repo's seeds/."""
from __future__ import annotations

from pathlib import Path

__all__ = ["seed_path", "shared_path"]

_PKG = Path(__file__).resolve().parent


def seed_path(name: str) -> Path:
    """Path of a shipped seed file, e.g. ``seed_path("plan/demo_plan.csv")``."""
    for root in (_PKG / "seeds", _PKG.parent / "seeds"):
        p = root / name
        if p.exists():
            return p
    raise FileNotFoundError(f"seed file {name!r} not found under {_PKG / 'seeds'} or the repo's seeds/")


def shared_path(*parts: str) -> Path | None:
    """Path into ``../shared`` beside the repository (benchmarks, docs), or None if absent."""
    for root in (Path.cwd() / ".." / "shared", _PKG.parent.parent / "shared"):
        p = root.joinpath(*parts)
        if p.exists():
            return p.resolve()
    return None
