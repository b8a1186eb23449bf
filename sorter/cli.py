"""The ``sorter`` command: one entry point, one subcommand per capability.

Each subcommand lives in ``sorter/commands/<name>.py`` with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (numba, matplotlib)
happen inside ``run`` so that ``sorter --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# name -> (module, one-line help)
COMMANDS = {
    "run": ("sorter.commands.run", "simulate a sorting shift (built-in default scenario without arguments)"),
    "assign": ("sorter.commands.assign", "replay a scan/chute event stream through the chute engine"),
    "mapf": ("sorter.commands.mapf", "plan a lifelong multi-robot run on a grid floor (PIBT)"),
    "serve": ("sorter.commands.serve", "run the scan-decision service (TCP telegrams, journal, recovery)"),
    "loadgen": ("sorter.commands.loadgen", "drive a running service and report scans/s and latency"),
    "journal": ("sorter.commands.journal", "export or summarise a service journal (audit trail)"),
    "sweep": ("sorter.commands.sweep", "capacity sweep: a scenario over varied settings x seeds (local pool or Dask)"),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; an option's help that does not state its default
    gets it appended (``(default: 1000)``), unless it is off / unset by default."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if ("default" in text or d is None or d is False or d is argparse.SUPPRESS
                or not action.option_strings or (isinstance(d, (list, tuple)) and not d)):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sorter",
        description="sorter: chute assignment, robot-floor path planning and sorter simulation.",
        epilog="examples:\n  sorter run\n  sorter run seeds/scenarios/peak.toml --seed 7 --json\n"
               "  sorter assign --plan seeds/plan/demo_plan.csv --chutes seeds/plan/demo_chutes.toml \\\n"
               "      --events seeds/plan/demo_events.csv --out decisions.csv\n\n"
               "`sorter COMMAND --help` explains each command with an example.",
        formatter_class=_Formatter,
    )
    from sorter import __version__
    parser.add_argument("--version", action="version", version=f"sorter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=_Formatter)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except ValueError as exc:          # user input: one clear line, no traceback
        print(f"sorter {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except MemoryError:                # an input bigger than this machine holds: one line
        print(f"sorter {args.command}: error: out of memory (an input bigger than this machine "
              "holds? `sorter COMMAND --help` gives the limits; smaller floors, fleets, shifts "
              "or sweeps run)", file=sys.stderr)
        return 2
    except BrokenPipeError:            # `sorter run | head`: the reader left; exit quietly
        import os
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:             # (after BrokenPipeError) a file or socket it could not use
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"sorter {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
