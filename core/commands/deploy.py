"""``deploy``: an assignment file with a holdout, exploration and exact propensities, from an
allocation."""

from __future__ import annotations

from ..design.deploy import deploy
from ..io import read_table
from ..errors import UserError



def add_arguments(p) -> None:
    p.add_argument("--allocation", required=True, metavar="CSV", help="allocate's output (id, action, tau_value, …)")
    p.add_argument("--control", default="control", metavar="LABEL", help="the no-offer label in the allocation (default control)")
    p.add_argument("--holdout", type=float, default=0.05, help="permanent no-offer share (default 0.05)")
    p.add_argument("--explore", type=float, default=0.10, help="randomized share (default 0.10)")
    p.add_argument("--min-propensity", type=float, metavar="P",
                   help="floor on every action's probability (exploration puts P/explore on each, the rest on the plan)")
    p.add_argument("--salt", default="", metavar="S", help="hash salt: a new salt draws new buckets")
    p.add_argument("--offers", metavar="L1,L2,...", help="every offer exploration may send (default: the plan's)")
    p.add_argument("--scores", metavar="CSV", help="tau_value__<offer> per row: the value given up becomes exact")
    p.add_argument("--out", required=True, metavar="CSV", help="assignment: id, action, propensity, bucket")


def run(args) -> dict:
    allocation = read_table(args.allocation, name=args.allocation, str_columns=["action"])
    scores = read_table(args.scores, name=args.scores) if args.scores else None
    offers = [o.strip() for o in args.offers.split(",") if o.strip()] if args.offers else None
    result = deploy(allocation, args.control, holdout=args.holdout, explore=args.explore,
                    min_propensity=args.min_propensity, salt=args.salt, offers=offers, scores=scores)
    try:
        result.to_frame().to_csv(args.out, index=False)
    except OSError as exc:
        raise UserError(f"--out '{args.out}' cannot be written: {exc.strerror}") from exc
    return {**result.to_dict(), "path": args.out}
