"""``monitor``: a live campaign day by day (volume, spend, drift, calibration, alerts), from a
log file or a series of days stored in the workspace."""

from __future__ import annotations

from ..errors import UserError
from ..io import read_table
from ..monitoring.daily import Pacing, Thresholds, monitor_of, with_plan_and_scores
from ..monitoring.fairness import audit_log, check_groups
from ..monitoring.store import append_days
from ..schema import ColumnMap, ExperimentLog
from ..workspace import Workspace
from .common import add_engine_options, add_json_out, add_log_options, engine_of, mapping_of, note, say_dropped



def add_arguments(p) -> None:
    add_log_options(p, data_required=False, action_required=False)
    p.add_argument("--dataset", metavar="NAME", help="a monitoring series stored in the workspace (instead of --data)")
    p.add_argument("--store", metavar="NAME", help="first append --data's days to this series (a day already stored "
                   "unchanged is skipped; a day stored with other content is refused)")
    p.add_argument("--reference", metavar="PATH", help="the training log: feature drift (PSI) is measured against it")
    p.add_argument("--plan", metavar="CSV", help="deploy's output (id, action, propensity, bucket): sends against the plan")
    p.add_argument("--scores", metavar="CSV", help="predictions for the log's customers (id, tau_value__<offer>, "
                   "tau_cost__<offer>): calibration drift and outstanding liability")
    p.add_argument("--psi-bins", type=int, default=10, help="reference quantile bins per numeric feature (default 10)")
    p.add_argument("--psi-alert", type=float, default=0.25, help="alert at this PSI or above (default 0.25)")
    p.add_argument("--calibration-z", type=float, default=3.0,
                   help="alert when observed and predicted uplift differ by more than this many standard errors (default 3)")
    p.add_argument("--volume-tolerance", type=float, default=0.1,
                   help="alert when an offer's sends differ from the plan by more than this share (default 0.1)")
    p.add_argument("--clip", type=float, default=0.01, help="alert on logged propensities below this (default 0.01)")
    p.add_argument("--budget", type=float, help="campaign budget (with --campaign-days: spend against the pacing plan)")
    p.add_argument("--campaign-days", type=int, help="campaign length in days: the plan spends budget·k/days by day k")
    p.add_argument("--redemption-days", type=int, default=14, help="offers this recent may still be redeemed (default 14)")
    p.add_argument("--pacing-tolerance", type=float, default=0.1,
                   help="alert when spend plus outstanding liability exceeds the pacing plan by this share (default 0.1)")
    p.add_argument("--fairness", metavar="COL", help="fairness audit by this attribute (region, age band, …)")
    add_json_out(p)
    add_engine_options(p)


def _stored_log(engine, args, out: dict):
    """The live log: ``--data`` (first appended to the ``--store`` series when asked), or a
    series stored in the workspace, with the options' mapping or the series' own."""
    mapped = args.action is not None
    if args.data:
        if not (mapped and args.time):
            raise UserError("a live log needs its mapping: --action, --control, --value and --time (the day column)")
        if not args.store:
            return engine.read_log(args.data, mapping_of(args), require_value=True)
        frame = read_table(args.data, str_columns=[args.action])
        mapping = mapping_of(args)
        ExperimentLog.from_frame(frame, mapping, require_value=True)  # refuse a bad log before anything is stored
        if args.fairness:  # refuse a bad attribute before anything is stored
            check_groups(frame, args.fairness)
        workspace = Workspace()
        out["stored"] = append_days(workspace, args.store, frame, args.time, mapping.to_dict())
        return engine.log_of(workspace.load_series(args.store), mapping, require_value=True)
    workspace = Workspace()
    info = workspace.series_info(args.dataset)
    if info is None:
        raise UserError(f"no monitoring series '{args.dataset}' in the workspace; store days with --store NAME first")
    if mapped:
        mapping = mapping_of(args)
    elif info["mapping"]:
        mapping = ColumnMap.from_dict(info["mapping"])
    else:
        raise UserError(f"series '{args.dataset}' has no stored mapping; give --action, --control, --value, --time")
    return engine.log_of(workspace.load_series(args.dataset), mapping, require_value=True)


def run(args) -> dict:
    out: dict = {}
    if bool(args.data) == bool(args.dataset) and not args.store:
        raise UserError("give the live log as --data PATH (with --time COL) or a stored series as --dataset NAME")
    if args.store and not args.data:
        raise UserError("--store NAME appends the days of --data PATH to a series; give --data")
    engine = engine_of(args)
    log = _stored_log(engine, args, out)
    say_dropped(log)
    thresholds = Thresholds(psi_alert=args.psi_alert, calibration_z=args.calibration_z,
                            volume_tolerance=args.volume_tolerance, clip=args.clip, pacing_tolerance=args.pacing_tolerance)
    pacing = None
    if args.budget is not None or args.campaign_days is not None:
        if args.budget is None or args.campaign_days is None:
            raise UserError("pacing needs both --budget and --campaign-days")
        pacing = Pacing(args.budget, args.campaign_days, args.redemption_days)
    reference = read_table(args.reference, name=args.reference) if args.reference else None
    plan = engine.read_table(args.plan) if args.plan else None
    scores = engine.read_table(args.scores) if args.scores else None
    joined = with_plan_and_scores(engine, log, plan, scores)
    result = monitor_of(engine, joined, reference=reference, psi_bins=args.psi_bins, thresholds=thresholds,
                        pacing=pacing, has_scores=scores is not None)
    out.update(result.to_dict())
    if args.fairness:
        out["fairness"] = audit_log(engine.collect(log, why="the fairness audit is computed"), args.fairness,
                                    read_table(args.scores, name=args.scores) if args.scores else None).to_dict()
    for message in result.notes:
        note(f"note: {message}")
    return out
