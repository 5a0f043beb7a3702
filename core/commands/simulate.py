"""``simulate``: write a simulated campaign log and its ground truth."""

from __future__ import annotations

from ..simulate import simulate, write_simulation
from .common import parse_label_floats



def add_arguments(p) -> None:
    p.add_argument("--n", type=int, default=50_000, help="customers (default 50000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--out", required=True, metavar="PATH", help="log file: .parquet, .csv or .csv.gz; truth goes to PATH.truth.parquet")
    p.add_argument("--srm-drop", metavar="L=SHARE,...", help="drop this share of arm L's rows (inject a sample-ratio mismatch)")
    p.add_argument("--poor-overlap", action="store_true", help="near-deterministic logging policy with little exploration")


def run(args) -> dict:
    drops = parse_label_floats(args.srm_drop, "--srm-drop") if args.srm_drop else None
    sim = simulate(args.n, args.seed, srm_drop=drops, poor_overlap=args.poor_overlap)
    return write_simulation(sim, args.out)
