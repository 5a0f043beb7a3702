"""``srm``: sample-ratio mismatch, arm counts against the intended split; counted where the
log is (DuckDB over the file, or Spark), so the log may exceed memory."""

from __future__ import annotations

from ..diagnostics.srm import counts_by_arm, propensity_check, srm_from_counts
from ..errors import UserError
from .common import (add_engine_options, add_json_out, add_log_options, engine_of, mapped_columns, parse_label_floats,
                     read_log)



def add_arguments(p) -> None:
    add_log_options(p)
    p.add_argument("--expected", metavar="L=W,...", help="intended split weights per arm (default: equal)")
    p.add_argument("--alpha", type=float, default=0.001, help="alarm when p < alpha (default 0.001)")
    p.add_argument("--by", metavar="COL", help="also test each value of this column (segment, day…)")
    add_json_out(p)
    add_engine_options(p)


def run(args) -> dict:
    engine = engine_of(args)
    columns = engine.columns(args.data)
    wanted = {**mapped_columns(args), **({"--by": args.by} if args.by else {})}
    missing = [f"{role} column '{col}'" for role, col in wanted.items() if col not in columns]
    if missing:
        raise UserError(f"{', '.join(missing)} not in the log; columns: {', '.join(columns[:30])}")
    weights = parse_label_floats(args.expected, "--expected") if args.expected else None
    keys = [c for c in dict.fromkeys([args.by, args.time]) if c]
    counts = counts_by_arm(engine.counts(args.data, [*keys, args.action]), args.action, keys, columns)
    if int(counts["n"].sum()) == 0:
        raise UserError(f"file '{args.data}' has a header but no data rows")
    result = srm_from_counts(counts, control=args.control, weights=weights, alpha=args.alpha, by=args.by, time=args.time)
    out = result.to_dict()
    if args.propensity:
        out["propensity_check"] = propensity_check(engine, read_log(engine, args), args.alpha).to_dict()
    return out
