"""What the commands share: the log mapping options (cli-contract.md), the engine options, the
JSON ``--out`` option, and small readers of option values."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..engines import open_engine
from ..engines.base import Engine
from ..errors import UserError
from ..schema import ColumnMap, parse_action_cost

ENGINE_HELP = ("local (default): pandas/numpy/DuckDB on this machine; spark: the row-wise work on Spark "
               "(same numbers), for logs larger than one machine")


def add_log_options(parser: argparse.ArgumentParser, value_required: bool = False, action_required: bool = True,
                    data_required: bool = True) -> None:
    """The log mapping options shared by every command that reads a log."""
    group = parser.add_argument_group("log mapping")
    group.add_argument("--data", required=data_required, metavar="PATH", help="CSV, CSV.GZ or Parquet log")
    group.add_argument("--action", required=action_required, metavar="COL", help="logged action/arm column")
    group.add_argument("--control", required=action_required, metavar="LABEL", help="the no-offer arm's label")
    group.add_argument("--value", required=value_required, metavar="COL", help="value outcome column")
    group.add_argument("--cost", metavar="COL", help="realised cost column")
    group.add_argument("--action-cost", metavar="L=AMT,...", help="constant cost per unit of each arm (control costs 0)")
    group.add_argument("--propensity", metavar="COL", help="logged probability of the logged action")
    group.add_argument("--features", metavar="C1,C2,...", help="model features (default: every unmapped column)")
    group.add_argument("--segment", metavar="COL", help="lifecycle/segment column")
    group.add_argument("--time", metavar="COL", help="decision day/timestamp column")
    group.add_argument("--id", metavar="COL", help="unit id column (default: row order)")
    group.add_argument("--value-long", metavar="COL",
                       help="a longer-horizon value column (models rank on --value; plans are also given in this unit)")
    group.add_argument("--value-unit", type=float, metavar="X",
                       help="money per unit of --value (e.g. what one conversion of a 0/1 outcome is worth)")
    group.add_argument("--text-as-missing", action="store_true",
                       help="text in the value, cost or propensity column counts as missing instead of an error")
    group.add_argument("--drop-incomplete", action="store_true",
                       help="leave out rows with a missing arm, value, cost or propensity (counted per arm on stderr)")


def add_engine_options(parser: argparse.ArgumentParser, choices=("local", "spark"), help: str = ENGINE_HELP) -> None:
    """``--engine`` and ``--spark-master`` (cli-contract.md, section Engines)."""
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", default="local", choices=list(choices), help=help)
    group.add_argument("--spark-master", default="local[*]", metavar="URL",
                       help="Spark master for --engine spark: local[*] (default), local[N], spark://HOST:PORT, "
                       "sc://HOST:PORT (Spark Connect), yarn, k8s://…")


def add_json_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", dest="json_out", metavar="FILE", help="also write the JSON here")


def engine_of(args: argparse.Namespace) -> Engine:
    """The engine the options name (opened once per command)."""
    return open_engine(args.engine, args.spark_master)


def mapping_of(args: argparse.Namespace) -> ColumnMap:
    """The column mapping the log options describe."""
    features = None
    if args.features:
        features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    return ColumnMap(
        action=args.action, control=args.control, value=args.value, cost=args.cost,
        action_cost=parse_action_cost(args.action_cost) if args.action_cost else None,
        propensity=args.propensity, features=features, segment=args.segment, time=args.time, id=args.id,
        text_as_missing=getattr(args, "text_as_missing", False), drop_incomplete=getattr(args, "drop_incomplete", False),
        value_unit=getattr(args, "value_unit", None), value_long=getattr(args, "value_long", None),
    )


def say_dropped(log) -> None:
    """Tell stderr how many incomplete rows were left out, per arm."""
    dropped = getattr(log, "dropped", None)
    if dropped:
        sys.stderr.write(f"left out {sum(dropped.values()):,} incomplete rows: "
                         + ", ".join(f"{arm} {n:,}" for arm, n in dropped.items()) + "\n")


def read_log(engine: Engine, args: argparse.Namespace, require_value: bool = False, keep=()):
    """``--data`` read by ``engine`` and checked against the mapping options."""
    log = engine.read_log(args.data, mapping_of(args), require_value=require_value, keep=keep)
    say_dropped(log)
    return log


def mapped_columns(args: argparse.Namespace) -> dict[str, str]:
    """The columns the mapping options name, by what they are for."""
    roles = ("action", "value", "cost", "propensity", "segment", "time", "id")
    out = {role: getattr(args, role) for role in roles if getattr(args, role, None)}
    for feature in (args.features or "").split(","):
        if feature.strip():
            out[f"feature {feature.strip()!r}"] = feature.strip()
    return out


def parse_label_floats(text: str, option: str) -> dict[str, float]:
    """Parse ``L=X,...`` option values into a dict, naming the bad entry."""
    out: dict[str, float] = {}
    for part in [p for p in (text or "").split(",") if p.strip()]:
        if "=" not in part:
            raise UserError(f"{option} entry '{part}' is not of the form LABEL=NUMBER")
        label, number = part.rsplit("=", 1)
        try:
            out[label.strip()] = float(number)
        except ValueError:
            raise UserError(f"{option} value '{number}' for '{label.strip()}' is not a number") from None
    return out


def progress_to_stderr(every: float = 0.0999) -> Callable[[float, str], None]:
    """A progress callback printing ``[ 40%] message`` lines, about every ``every`` of the work."""
    state = {"next": 0.0}

    def report(fraction: float, message: str) -> None:
        if fraction >= state["next"] or fraction >= 1.0:
            sys.stderr.write(f"[{fraction:4.0%}] {message}\n")
            state["next"] = fraction + every

    return report


def note(message: str) -> None:
    """One line of progress on stderr."""
    sys.stderr.write(message + "\n")


def warn(messages) -> None:
    """Warnings on stderr, one ``warning: …`` line each."""
    for message in messages:
        sys.stderr.write(f"warning: {message}\n")
