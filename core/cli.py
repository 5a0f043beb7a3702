"""The headless CLI (``python -m core …``): parse → one core call → one JSON object.

A public interface: names and JSON keys follow ``cli-contract.md``.  User errors print one
``error: …`` line on stderr and exit 2; a bug prints ``error: internal …`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from typing import Callable, Sequence

import numpy as np

from .errors import UserError

EXIT_USER_ERROR = 2

# Commands whose issue has not landed yet: listed in --help, refuse with exit 2 until then.
PENDING = {
    "fit": "fit uplift models (value and cost heads)",
    "predict": "score new customers with a saved model",
    "evaluate": "Qini / AUUC / cost curve / calibration of scores",
    "allocate": "budget-constrained offer allocation",
    "ope": "off-policy evaluation of candidate policies",
    "report": "self-contained HTML report of a scenario",
    "monitor": "monitoring summary and alerts",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the contract's error line: ``error: …`` and exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        raise UserError(f"{message} (see '{self.prog} --help')")


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj


def emit(result: dict, out: str | None = None) -> None:
    """Print ``result`` as one JSON object (NaN → null), and write it to ``out`` when given."""
    text = json.dumps(_json_safe(result), allow_nan=False)
    if out:
        try:
            with open(out, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        except OSError as exc:
            raise UserError(f"--out '{out}' cannot be written: {exc.strerror}") from exc
    sys.stdout.write(text + "\n")


def add_log_options(parser: argparse.ArgumentParser, value_required: bool = False, action_required: bool = True) -> None:
    """The log mapping options shared by every command that reads a log."""
    group = parser.add_argument_group("log mapping")
    group.add_argument("--data", required=True, metavar="PATH", help="CSV, CSV.GZ or Parquet log")
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


def load_log(args: argparse.Namespace, require_value: bool = False):
    """Read ``--data`` and validate it against the mapping options."""
    from .io import read_table

    return log_from_frame(read_table(args.data, str_columns=[args.action]), args, require_value)


def log_from_frame(frame, args: argparse.Namespace, require_value: bool = False):
    """Validate an already-read frame against the mapping options."""
    from .schema import ColumnMap, ExperimentLog, parse_action_cost

    features = None
    if args.features:
        features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    cmap = ColumnMap(
        action=args.action, control=args.control, value=args.value, cost=args.cost,
        action_cost=parse_action_cost(args.action_cost) if args.action_cost else None,
        propensity=args.propensity, features=features, segment=args.segment, time=args.time, id=args.id,
    )
    return ExperimentLog.from_frame(frame, cmap, require_value=require_value)


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


# --- commands -------------------------------------------------------------------------------

def cmd_simulate(args: argparse.Namespace) -> dict:
    from .simulate import simulate, write_simulation

    drops = parse_label_floats(args.srm_drop, "--srm-drop") if args.srm_drop else None
    sim = simulate(args.n, args.seed, srm_drop=drops, poor_overlap=args.poor_overlap)
    return write_simulation(sim, args.out)


def cmd_describe(args: argparse.Namespace) -> dict:
    """Validate a log and summarise it per arm (the Data page's table); auto-detect roles
    that are not given."""
    from .io import detect_mapping, read_table

    frame = read_table(args.data, str_columns=[args.action] if args.action else ())
    detected = detect_mapping(frame)
    if not args.action:
        if detected["action"] is None:
            raise UserError("no action column could be detected; name it with --action COL")
        args.action = detected["action"]
        frame = read_table(args.data, str_columns=[args.action])
        detected = detect_mapping(frame)
    if not args.control:
        if detected["action"] != args.action or detected["control"] is None:
            labels = sorted(frame[args.action].dropna().astype(str).unique())[:20] if args.action in frame else []
            raise UserError(f"no control label could be detected in '{args.action}'; name it with --control LABEL (arms: {', '.join(labels)})")
        args.control = detected["control"]
    for role in ("value", "cost", "propensity", "segment", "time", "id"):
        if getattr(args, role) is None and not (role == "cost" and args.action_cost):
            setattr(args, role, detected.get(role))
    log = log_from_frame(frame, args, require_value=False)
    summary = log.arm_summary().set_index("arm")
    arms = {label: {k: summary.loc[label, k] for k in summary.columns} for label in log.labels}
    return {
        "n_rows": log.n, "labels": list(log.labels), "control": log.control,
        "mapping": log.columns.to_dict(), "features": list(log.features),
        "arms": arms, "fingerprint": log.fingerprint, "data_fingerprint": log.data_fingerprint,
    }


def _mapped_columns(args: argparse.Namespace) -> dict[str, str]:
    roles = ("action", "value", "cost", "propensity", "segment", "time", "id")
    out = {role: getattr(args, role) for role in roles if getattr(args, role, None)}
    for feature in (args.features or "").split(","):
        if feature.strip():
            out[f"feature {feature.strip()!r}"] = feature.strip()
    return out


def cmd_srm(args: argparse.Namespace) -> dict:
    """SRM straight from the file: counts run in DuckDB, so the log may exceed memory."""
    from .diagnostics.srm import file_columns, propensity_consistency, srm_from_counts, count_arms

    columns = file_columns(args.data)
    wanted = {**_mapped_columns(args), **({"--by": args.by} if args.by else {})}
    missing = [f"{role} column '{col}'" for role, col in wanted.items() if col not in columns]
    if missing:
        raise UserError(f"{', '.join(missing)} not in the log; columns: {', '.join(columns[:30])}")
    weights = parse_label_floats(args.expected, "--expected") if args.expected else None
    keys = [c for c in dict.fromkeys([args.by, args.time]) if c]
    counts = count_arms(args.data, args.action, keys)
    result = srm_from_counts(counts, control=args.control, weights=weights, alpha=args.alpha, by=args.by, time=args.time)
    out = result.to_dict()
    if args.propensity:
        log = load_log(args)
        out["propensity_check"] = propensity_consistency(log.action, log.propensity, log.labels, args.alpha).to_dict()
    return out


def cmd_overlap(args: argparse.Namespace) -> dict:
    from .diagnostics.balance import balance
    from .diagnostics.overlap import estimate_propensities, overlap

    log = load_log(args)
    estimated = None
    if log.propensity is None or args.check_logged:
        if log.propensity is None:
            sys.stderr.write("no --propensity given: estimating propensities with cross-fitted LightGBM\n")
        estimated = estimate_propensities(log, folds=args.folds, seed=args.seed,
                                          progress=lambda f, msg: sys.stderr.write(f"{msg}\n"))
    result = overlap(log, clip=args.clip, estimated=estimated)
    bal = balance(log, result.propensity)
    return {**result.to_dict(), **bal.to_dict()}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m core",
        description="Uplift Studio, headless: every number the app shows, reproducible from a terminal. "
        "Each command prints one JSON object on stdout.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    p = sub.add_parser("simulate", help="write a simulated campaign log and its ground truth")
    p.add_argument("--n", type=int, default=50_000, help="customers (default 50000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--out", required=True, metavar="PATH", help="log file: .parquet, .csv or .csv.gz; truth goes to PATH.truth.parquet")
    p.add_argument("--srm-drop", metavar="L=SHARE,...", help="drop this share of arm L's rows (inject a sample-ratio mismatch)")
    p.add_argument("--poor-overlap", action="store_true", help="near-deterministic logging policy with little exploration")
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("describe", help="validate a log and summarise it per arm (roles not given are auto-detected)")
    add_log_options(p, action_required=False)
    p.add_argument("--out", dest="json_out", metavar="FILE", help="also write the JSON here")
    p.set_defaults(handler=cmd_describe)

    p = sub.add_parser("srm", help="sample-ratio mismatch: arm counts against the intended split")
    add_log_options(p)
    p.add_argument("--expected", metavar="L=W,...", help="intended split weights per arm (default: equal)")
    p.add_argument("--alpha", type=float, default=0.001, help="alarm when p < alpha (default 0.001)")
    p.add_argument("--by", metavar="COL", help="also test each value of this column (segment, day…)")
    p.add_argument("--out", dest="json_out", metavar="FILE", help="also write the JSON here")
    p.set_defaults(handler=cmd_srm)

    p = sub.add_parser("overlap", help="propensity overlap (ESS, clipping) and covariate balance (SMD)")
    add_log_options(p)
    p.add_argument("--clip", type=float, default=0.01, help="propensity clip ε for share_below_clip (default 0.01)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds when propensities are estimated (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the propensity model")
    p.add_argument("--check-logged", action="store_true", help="also estimate propensities and count rows that disagree with the logged ones")
    p.add_argument("--out", dest="json_out", metavar="FILE", help="also write the JSON here")
    p.set_defaults(handler=cmd_overlap)

    for name, summary in PENDING.items():
        p = sub.add_parser(name, help=f"{summary} (not available yet)")
        p.set_defaults(handler=_pending(name, summary), pending=True)
    return parser


def _pending(name: str, summary: str) -> Callable[[argparse.Namespace], dict]:
    def handler(args: argparse.Namespace) -> dict:
        raise UserError(f"command '{name}' ({summary}) is not available in this version yet")

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            raise UserError("no command given; choose one of: " + ", ".join(["simulate", "describe", "srm", "overlap", *PENDING]))
        if unknown and not getattr(args, "pending", False):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        result = args.handler(args)
        emit(result, getattr(args, "json_out", None))
        return 0
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # a bug, not a user error: say so, keep the traceback on request
        if os.environ.get("UPLIFT_STUDIO_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"error: internal failure ({type(exc).__name__}: {exc}); set UPLIFT_STUDIO_DEBUG=1 for the traceback\n")
        return 1
