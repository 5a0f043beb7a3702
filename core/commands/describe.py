"""``describe``: validate a log and summarise it per arm (the Data page's table); roles that
are not given are detected."""

from __future__ import annotations

from ..errors import UserError
from ..io import detect_mapping, pick_control
from ..schema import ExperimentLog
from .common import add_engine_options, add_json_out, add_log_options, engine_of, mapping_of, say_dropped



def add_arguments(p) -> None:
    add_log_options(p, action_required=False)
    add_json_out(p)
    add_engine_options(p)


def run(args) -> dict:
    engine = engine_of(args)

    frame = engine.frame(args.data, text_columns=[args.action] if args.action else [])
    detected = detect_mapping(frame)
    why = {}
    if not args.action:
        if detected["action"] is None:
            raise UserError(f"no action column could be detected: {detected['why']['action']}; name it with --action COL")
        args.action = detected["action"]
        why["action"] = detected["why"]["action"]
        frame = engine.frame(args.data, text_columns=[args.action])
        detected = detect_mapping(frame)
    if not args.control and args.action in frame.columns:
        counts = frame[args.action].astype("string").value_counts().to_dict()
        args.control, why["control"] = pick_control(sorted(counts), counts)
    for role in ("value", "cost", "propensity", "segment", "time", "id"):
        if getattr(args, role) is None and not (role == "cost" and args.action_cost):
            setattr(args, role, detected.get(role))
    log = ExperimentLog.from_frame(frame, mapping_of(args), require_value=False)
    say_dropped(log)
    summary = log.arm_summary().set_index("arm")
    arms = {label: {k: summary.loc[label, k] for k in summary.columns} for label in log.labels}
    return {
        "n_rows": log.n, "labels": list(log.labels), "control": log.control,
        "mapping": log.columns.to_dict(), "features": list(log.features),
        "arms": arms, "fingerprint": log.fingerprint, "data_fingerprint": log.data_fingerprint, "detected_because": why,
    }
