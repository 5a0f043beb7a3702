"""``evaluate``: Qini, AUUC, cost curve and calibration of predictions, per offer."""

from __future__ import annotations

import json

from ..errors import UserError
from ..evaluation import evaluate
from ..evaluation.arms import evaluate_of
from ..evaluation.leaderboard import leaderboard
from ..joins import scores_messages
from ..uplift.names import model_title
from ..uplift.persist import model_file_id, read_model_file
from ..workspace import Workspace
from .common import add_engine_options, add_json_out, add_log_options, engine_of, read_log, warn

PREDICTIONS = ("tau_value__", "tau_cost__", "score__")


def add_arguments(p) -> None:
    add_log_options(p, value_required=True)
    p.add_argument("--scores", metavar="CSV", help="fit/predict output (row-aligned, or joined on id when --id is given)")
    p.add_argument("--score-column", metavar="COL", help="a score column of the log itself (with --treatment)")
    p.add_argument("--treatment", metavar="L", help="the arm to evaluate against the control")
    p.add_argument("--model", action="append", metavar="PATH",
                   help="instead of scores: a model file from fit --model-out (repeatable), evaluated on its out-of-fold "
                   "predictions on the log it was fitted on, with the leaderboard and the recommended model as the "
                   "Evaluation page shows them")
    p.add_argument("--bins", type=int, default=10, help="calibration bins (default 10)")
    add_json_out(p)
    add_engine_options(p)


def run(args) -> dict:
    if args.model:
        return run_models(args)
    if bool(args.scores) == bool(args.score_column):
        raise UserError("give either --scores CSV or --score-column COL with --treatment L")
    engine = engine_of(args)
    log = read_log(engine, args, require_value=True, keep=[args.score_column] if args.score_column else ())
    if args.scores:
        table = engine.read_table(args.scores)
        wanted = [c for c in table.columns if str(c).startswith(PREDICTIONS)]
        log = engine.join(log, table, wanted, scores_messages(f"--scores '{args.scores}'"))
        arms = [args.treatment] if args.treatment else [a for a in log.treatments if f"tau_value__{a}" in wanted]
    else:
        if not args.treatment:
            raise UserError("--score-column needs --treatment L: the arm the score ranks against the control")
        if args.score_column not in log.frame.columns:
            raise UserError(f"--score-column '{args.score_column}' is not in the log")
        wanted, arms = [], [args.treatment]
    if args.treatment and args.treatment not in log.labels:
        raise UserError(f"--treatment '{args.treatment}' is not an arm of the log; arms: {', '.join(log.labels)}")
    if args.treatment == log.control:
        raise UserError(f"--treatment '{args.treatment}' is the control; name an offer")
    if args.scores:
        for arm in arms:
            if f"tau_value__{arm}" not in wanted:
                raise UserError(f"the scores have no column 'tau_value__{arm}'")
        if not arms:
            raise UserError("the scores have no tau_value__<arm> column for any arm of the log; arms: " + ", ".join(log.treatments))
    result = evaluate_of(engine, log, arms, n_bins=args.bins, score_column=args.score_column)
    warn(result.notes)
    return per_arm(result)


def per_arm(result) -> dict:
    """The per-offer JSON of an evaluation (cli-contract.md, evaluate)."""
    out = result.to_dict()
    for arm in out:
        out[arm]["weighted"] = result.weighted
    return out


def run_models(args) -> dict:
    """``evaluate --model``: each fitted model's out-of-fold predictions on the log it was fitted on,
    evaluated per offer as the Evaluation page does, with the page's leaderboard and recommendation."""
    if args.scores or args.score_column:
        raise UserError("--model evaluates the models' own out-of-fold predictions; give it without --scores or --score-column")
    if args.treatment:
        raise UserError("--treatment does not apply to --model: the leaderboard averages every offer, as the Evaluation "
                        "page does")
    engine = engine_of(args)
    log = engine.collect(read_log(engine, args, require_value=True),
                         why="evaluate --model compares the log with the models' out-of-fold predictions")
    workspace = Workspace()
    evaluations, models = {}, {}
    for path in dict.fromkeys(args.model):
        model = read_model_file(path, workspace)
        if not _fitted_on(path, workspace, log):
            raise UserError(f"model file '{path}' was not fitted on this log with this mapping (its fingerprint differs), so "
                            "it has no out-of-fold predictions for it; give the --data and mapping options it was fitted "
                            "with, or score this log with predict and evaluate the predictions with --scores")
        models[path] = model
        evaluations[path] = evaluate(log, model.oof_, n_bins=args.bins)
        warn(f"{path}: {note}" for note in evaluations[path].notes)
    board = leaderboard(evaluations, models, titles={path: model_title(m.learner, m) for path, m in models.items()})
    return {"models": {path: per_arm(result) for path, result in evaluations.items()}, **board.to_dict()}


def _fitted_on(path, workspace, log) -> bool:
    """Whether the model in file ``path`` was fitted on ``log``: its workspace record names the same
    data fingerprint and mapping (together, the log's fingerprint)."""
    model_id = model_file_id(path)
    records = workspace.list_models(log.data_fingerprint)
    record = records[records["id"] == model_id]
    if record.empty:
        return False
    mapping = json.loads(record["params"].iloc[0]).get("mapping")
    return json.dumps(mapping, sort_keys=True, default=str) == json.dumps(log.columns.to_dict(), sort_keys=True, default=str)
