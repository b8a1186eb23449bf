"""Where the shipped seed files are: inside the installed package, or the repo's seeds/."""
from __future__ import annotations

from pathlib import Path

__all__ = ["seed_path", "seed_hint", "shared_path"]

_PKG = Path(__file__).resolve().parent


def seed_path(name: str) -> Path:
    """Path of a shipped seed file, e.g. ``seed_path("plan/demo_plan.csv")``."""
    for root in (_PKG / "seeds", _PKG.parent / "seeds"):
        p = root / name
        if p.exists():
            return p
    raise FileNotFoundError(f"seed file {name!r} not found under {_PKG / 'seeds'} or the repo's seeds/")


def seed_hint(path) -> str:
    """For a missing relative ``seeds/...`` path (the docs' examples, run outside the
    repository root): a clause saying where the installed package's copy of that seed file
    is, to append to "file not found"; "" for any other path."""
    p = Path(path)
    if p.is_absolute() or p.parts[:1] != ("seeds",) or len(p.parts) < 2:
        return ""
    try:
        found = seed_path("/".join(p.parts[1:]))
    except (FileNotFoundError, OSError, ValueError):
        return ""
    return (f" here ({Path.cwd()}); seeds/ paths are relative to the repository root, and the "
            f"installed copy of this one is {found}")


def shared_path(*parts: str) -> Path | None:
    """Path into ``../shared`` beside the repository (benchmarks, docs), or None if absent."""
    for root in (Path.cwd() / ".." / "shared", _PKG.parent.parent / "shared"):
        p = root.joinpath(*parts)
        if p.exists():
            return p.resolve()
    return None
