"""``allocate``: offers under a budget (and a CPI limit, caps) from predictions.  A scores table
that fits on one machine is solved there (every method, caps); a larger one gets the fast plan
made by batches where it is (:mod:`core.decision.frontier_plan`)."""

from __future__ import annotations

from ..decision.allocate import allocate, validate_budget, validate_caps
from ..decision.frontier_plan import fast_plan
from ..decision.policy import candidates_for_plan
from ..engines.base import fit_rows
from ..errors import UserError
from .common import add_engine_options, add_json_out, engine_of, parse_label_floats



def add_arguments(p) -> None:
    p.add_argument("--scores", required=True, metavar="CSV", help="fit/predict output: id, tau_value__<arm>, tau_cost__<arm>")
    p.add_argument("--budget", required=True, type=float, help="total expected incremental cost allowed")
    p.add_argument("--cpi-max", type=float, help="drop offers whose cost per incremental value τc/τv exceeds this")
    p.add_argument("--cap", metavar="L=N,...", help="at most N customers get offer L")
    p.add_argument("--offer-cost", metavar="L=AMT,...|AMT",
                   help="a fixed cost per offer sent, replacing the predicted tau_cost (for a log without cost); "
                   "one number for every offer; --offer-cost 1 makes --budget a number of offers")
    p.add_argument("--method", default="auto", choices=["auto", "exact", "fast"], help="solver (default auto)")
    p.add_argument("--solver", default="cbc", choices=["cbc", "highs"], help="MILP engine for exact (default cbc)")
    p.add_argument("--control", default="control", metavar="LABEL", help="label written for customers with no offer")
    p.add_argument("--allocation-out", metavar="CSV", help="one row per customer: id, action, tau_value, tau_cost, score")
    add_json_out(p)
    add_engine_options(p)


def setting_of(args, arms: list[str]) -> dict:
    """The allocation setting the options describe (as the Allocation page saves it)."""
    setting: dict = {"cpi_max": args.cpi_max}
    if args.offer_cost:
        text = args.offer_cost.strip()
        try:
            setting["offer_costs"] = dict.fromkeys(arms, float(text))
        except ValueError:
            setting["offer_costs"] = parse_label_floats(text, "--offer-cost")
        setting["cost_basis"] = "per_send"
    return setting


def run(args) -> dict:
    engine = engine_of(args)
    scores = engine.read_table(args.scores)
    arms = [c[len("tau_value__"):] for c in scores.columns if str(c).startswith("tau_value__")]
    setting = setting_of(args, arms)
    budget = validate_budget(args.budget)
    caps = validate_caps(parse_label_floats(args.cap, "--cap") if args.cap else None, tuple(arms))
    if args.method == "fast" and caps:
        raise UserError("the fast method does not handle --cap; use --method exact or auto")
    one_machine = fit_rows()  # larger scores tables get the fast plan made by batches
    if engine.n_rows(scores) > one_machine:
        if args.method == "exact" or caps:
            raise UserError(f"the exact solver (and --cap) runs on one machine, on at most {one_machine:,} customers; "
                            "use --method fast without --cap on larger scores tables")
        plan = fast_plan(engine, scores, setting, budget, args.control)
        out = plan.result
        if args.allocation_out:
            table = plan.rows()
            has_cold = "cold_start" in table.columns
            cold = engine.write_csv(table, args.allocation_out, "--allocation-out", count="cold_start" if has_cold else None)
            if has_cold:
                out["cold_start"] = cold
            out["allocation_path"] = args.allocation_out
        return out
    frame = engine.frame(args.scores)
    candidates = candidates_for_plan(frame, setting)
    result = allocate(candidates, budget, args.control, method=args.method, caps=caps, solver=args.solver)
    out = result.to_dict()
    out["pruned"] = candidates.pruned_counts()
    if args.allocation_out:
        ids = frame["id"].to_numpy() if "id" in frame.columns else frame.index.to_numpy()
        table = result.to_frame(ids, candidates)
        if "cold_start" in frame.columns:
            table["cold_start"] = frame["cold_start"].astype(bool).to_numpy()
            out["cold_start"] = int(table["cold_start"].sum())
        engine.write_csv(table, args.allocation_out, "--allocation-out")
        out["allocation_path"] = args.allocation_out
    return out
