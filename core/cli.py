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
from typing import Sequence

import numpy as np

from .errors import UserError

EXIT_USER_ERROR = 2
WEIGHTING_ONLY = {"ips", "snips"}  # OPE estimators that need no reward model


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


ENGINE_HELP = ("local (default): pandas/numpy/DuckDB on this machine; spark: the row-wise work on Spark "
               "(same numbers), for logs larger than one machine")


def add_engine_options(parser: argparse.ArgumentParser, choices=("local", "spark"), help: str = ENGINE_HELP) -> None:
    """``--engine`` and ``--spark-master`` (cli-contract.md, section Engines)."""
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", default="local", choices=list(choices), help=help)
    group.add_argument("--spark-master", default="local[*]", metavar="URL",
                       help="Spark master for --engine spark: local[*] (default), local[N], spark://HOST:PORT, "
                       "sc://HOST:PORT (Spark Connect), yarn, k8s://…")


def spark_session(args: argparse.Namespace):
    """The Spark session of ``--spark-master`` (only with ``--engine spark``)."""
    from .engines.spark import session

    return session(args.spark_master)


def add_json_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", dest="json_out", metavar="FILE", help="also write the JSON here")


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
        text_as_missing=getattr(args, "text_as_missing", False), drop_incomplete=getattr(args, "drop_incomplete", False),
        value_unit=getattr(args, "value_unit", None), value_long=getattr(args, "value_long", None),
    )
    log = ExperimentLog.from_frame(frame, cmap, require_value=require_value)
    if log.dropped:
        sys.stderr.write(f"left out {sum(log.dropped.values()):,} incomplete rows: "
                         + ", ".join(f"{arm} {n:,}" for arm, n in log.dropped.items()) + "\n")
    return log


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
    local_only(args, "describe")
    from .io import detect_mapping, pick_control, read_table

    frame = read_table(args.data, str_columns=[args.action] if args.action else ())
    detected = detect_mapping(frame)
    why = {}
    if not args.action:
        if detected["action"] is None:
            raise UserError(f"no action column could be detected: {detected['why']['action']}; name it with --action COL")
        args.action = detected["action"]
        why["action"] = detected["why"]["action"]
        frame = read_table(args.data, str_columns=[args.action])
        detected = detect_mapping(frame)
    if not args.control and args.action in frame.columns:
        counts = frame[args.action].astype("string").value_counts().to_dict()
        args.control, why["control"] = pick_control(sorted(counts), counts)
    for role in ("value", "cost", "propensity", "segment", "time", "id"):
        if getattr(args, role) is None and not (role == "cost" and args.action_cost):
            setattr(args, role, detected.get(role))
    log = log_from_frame(frame, args, require_value=False)
    summary = log.arm_summary().set_index("arm")
    arms = {label: {k: summary.loc[label, k] for k in summary.columns} for label in log.labels}
    return {
        "n_rows": log.n, "labels": list(log.labels), "control": log.control,
        "mapping": log.columns.to_dict(), "features": list(log.features),
        "arms": arms, "fingerprint": log.fingerprint, "data_fingerprint": log.data_fingerprint, "detected_because": why,
    }


def local_only(args: argparse.Namespace, what: str) -> None:
    """Commands without a Spark implementation yet refuse ``--engine spark`` with a clear error."""
    if getattr(args, "engine", "local") == "spark":
        raise UserError(f"{what} has no Spark engine yet; run it with --engine local (on Spark: srm, overlap, readout, "
                        "fit, predict, evaluate, allocate, ope)")


def _mapped_columns(args: argparse.Namespace) -> dict[str, str]:
    roles = ("action", "value", "cost", "propensity", "segment", "time", "id")
    out = {role: getattr(args, role) for role in roles if getattr(args, role, None)}
    for feature in (args.features or "").split(","):
        if feature.strip():
            out[f"feature {feature.strip()!r}"] = feature.strip()
    return out


def cmd_srm(args: argparse.Namespace) -> dict:
    """SRM straight from the file: counts run in DuckDB (or Spark), so the log may exceed memory."""
    from .diagnostics.srm import count_arms, file_columns, propensity_consistency, propensity_consistency_from_sums, srm_from_counts

    spark = spark_session(args) if args.engine == "spark" else None
    if spark is not None:
        from .engines.spark import ROW, read

        frame = read(spark, args.data)  # read once: the counts and the propensity check share it
        columns = [c for c in frame.columns if c != ROW]
    else:
        columns = file_columns(args.data)
    wanted = {**_mapped_columns(args), **({"--by": args.by} if args.by else {})}
    missing = [f"{role} column '{col}'" for role, col in wanted.items() if col not in columns]
    if missing:
        raise UserError(f"{', '.join(missing)} not in the log; columns: {', '.join(columns[:30])}")
    weights = parse_label_floats(args.expected, "--expected") if args.expected else None
    keys = [c for c in dict.fromkeys([args.by, args.time]) if c]
    if spark is not None:
        from .engines.spark import arm_counts

        counts = arm_counts(frame, args.action, keys)
    else:
        counts = count_arms(args.data, args.action, keys)
    if int(counts["n"].sum()) == 0:
        raise UserError(f"file '{args.data}' has a header but no data rows")
    result = srm_from_counts(counts, control=args.control, weights=weights, alpha=args.alpha, by=args.by, time=args.time)
    out = result.to_dict()
    if args.propensity:
        if spark is not None:
            from .engines.spark import mapped_log, propensity_sums

            log = mapped_log(spark, args, frame=frame)
            check = propensity_consistency_from_sums(log.n, log.labels, *propensity_sums(log), args.alpha)
        else:
            log = load_log(args)
            check = propensity_consistency(log.action, log.propensity, log.labels, args.alpha)
        out["propensity_check"] = check.to_dict()
    return out


def cmd_overlap(args: argparse.Namespace) -> dict:
    if args.engine == "spark":
        return _overlap_spark(args)
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


def _overlap_spark(args: argparse.Namespace) -> dict:
    """``overlap`` on Spark: propensity sums and the features' moments per arm there; an
    estimated propensity model is fitted on the driver."""
    from .diagnostics.overlap import estimate_propensities
    from .engines import spark as engine

    if not 0 < args.clip < 1:
        raise UserError(f"--clip must be between 0 and 1 (exclusive), got {args.clip}")
    spark = spark_session(args)
    log = engine.mapped_log(spark, args)
    source = "logged" if log.has_propensity else "estimated"
    if not log.has_propensity or args.check_logged:
        if not log.has_propensity:
            sys.stderr.write("no --propensity given: estimating propensities with cross-fitted LightGBM (on the driver)\n")
        local = log.local(require_value=False)
        matrix = estimate_propensities(local, folds=args.folds, seed=args.seed,
                                       progress=lambda f, msg: sys.stderr.write(f"{msg}\n"))
        log = engine.attach(spark, log, {"_pe": matrix[np.arange(local.n), [local.labels.index(a) for a in local.action]]})
    sums = engine.overlap(log, args.clip, source, bool(args.check_logged and log.has_propensity))
    return {**sums.to_dict(), **engine.balance(log, source).to_dict()}


def cmd_readout(args: argparse.Namespace) -> dict:
    """Per offer: the average effect on value (and cost), CPI, and optionally the CUPED effect."""
    from .diagnostics.readout import readout

    if args.engine == "spark":
        if args.cuped:
            raise UserError("--cuped is not supported by the Spark engine yet; run the CUPED readout with --engine local")
        from .engines import spark as engine

        spark = spark_session(args)
        log = engine.mapped_log(spark, args, require_value=True)
        plain, adjusted, outcomes_of_log = engine.readout(log, args.alpha), None, ("value", "cost")
    else:
        log = load_log(args, require_value=True)
        plain = readout(log, alpha=args.alpha)
        adjusted = readout(log, cuped=args.cuped, alpha=args.alpha).to_dict()["arms"] if args.cuped else None
        outcomes_of_log = ("value", "cost", *(["value_long"] if log.value_long is not None else []))
    out: dict = {}
    for arm, outcomes in plain.to_dict()["arms"].items():
        entry: dict = {}
        for outcome in outcomes_of_log:
            if outcome not in outcomes:
                entry[outcome] = None
                continue
            entry[outcome] = dict(outcomes[outcome])
            cuped = None
            if adjusted is not None:
                row = adjusted[arm][outcome]
                cuped = {k: row[k] for k in ("effect", "se", "ci_low", "ci_high")}
                cuped.update(covariate=args.cuped, variance_reduction=row.get("variance_reduction"))
            entry[outcome]["cuped"] = cuped
        cpi = outcomes.get("cpi")
        entry["cpi"] = None if cpi is None else {k: cpi[k] for k in ("cpi", "se", "ci_low", "ci_high", "defined")}
        out[arm] = entry
    return out


def cmd_design(args: argparse.Namespace) -> dict:
    """Sample size or detectable effect of the next test, per offer against no offer."""
    local_only(args, "design")
    from .design.power import design, design_from_log

    common = dict(mde=args.mde, n=args.n, alpha=args.alpha, power=args.power, ratio=args.ratio, correction=args.correction)
    if args.data:
        if args.baseline_mean is not None or args.baseline_sd is not None or args.baseline_rate is not None:
            raise UserError("give either a log (--data …) or --baseline-sd / --baseline-rate, not both")
        if not (args.action and args.control and args.value):
            raise UserError("a log needs --action, --control and --value to measure the outcome's spread")
        log = load_log(args, require_value=True)
        return design_from_log(log, cuped=args.cuped, arms=args.arms, **common).to_dict()
    if args.cuped:
        raise UserError("--cuped needs a log (--data …) to measure the covariate's correlation")
    if args.baseline_rate is not None and args.baseline_sd is not None:
        raise UserError("give --baseline-sd (means) or --baseline-rate (conversion rates), not both")
    out = design(sd=args.baseline_sd, rate=args.baseline_rate, arms=args.arms or 1, **common).to_dict()
    if args.baseline_mean is not None:
        out["baseline_mean"] = args.baseline_mean
    return out


def cmd_deploy(args: argparse.Namespace) -> dict:
    """An assignment file with holdout, exploration and exact propensities, from an allocation."""
    from .design.deploy import deploy
    from .io import read_table

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


def _progress_to_stderr(every: float = 0.0999):
    state = {"next": 0.0}

    def report(fraction: float, message: str) -> None:
        if fraction >= state["next"] or fraction >= 1.0:
            sys.stderr.write(f"[{fraction:4.0%}] {message}\n")
            state["next"] = fraction + every

    return report


def _write_predictions(ids, predictions, path: str) -> str:
    frame = predictions.copy()
    frame.insert(0, "id", ids)
    try:
        frame.to_csv(path, index=False)
    except OSError as exc:
        raise UserError(f"--predictions-out '{path}' cannot be written: {exc.strerror}") from exc
    return path


def cmd_fit(args: argparse.Namespace) -> dict:
    if args.engine in ("native", "econml"):  # the fitting engine's old option name
        args.fit_engine, args.engine = args.engine, "local"
    from .uplift.model import UpliftModel
    from .uplift.persist import save_model, write_model_file
    from .workspace import Workspace

    candidates = tuple(c.strip() for c in args.candidates.split(",") if c.strip()) if args.candidates else None
    model = UpliftModel(learner=args.learner, folds=args.folds, bagging=args.bagging, by_segment=args.by_segment,
                        seed=args.seed, tuning=args.tuning, backend=args.fit_engine, ranking_scorer=args.ranking_scorer,
                        cpi_max=args.cpi_max,
                        **({"candidates": candidates} if candidates is not None else {}))
    model._validate_params()
    if args.engine == "spark":
        from .engines.spark import FIT_ROWS, driver_sample, read

        spark = spark_session(args)
        n = read(spark, args.data).count()
        if n <= FIT_ROWS:
            log = load_log(args, require_value=True)
        else:
            frame, _ = driver_sample(spark, args.data, FIT_ROWS, seed=args.seed)
            log = log_from_frame(frame, args, require_value=True)
        sys.stderr.write(f"fitting on this machine on {log.n:,} of the log's {n:,} rows"
                         + (" (a fixed sample drawn on Spark)" if log.n < n else "") + "\n")
    else:
        log = load_log(args, require_value=True)
    model.fit(log, progress=_progress_to_stderr())
    for head, info in model.report_.tuning.items():
        sys.stderr.write(f"tuning: {head} head {info['chosen']} (per fold: {', '.join(info['per_fold'])})\n")
    if model.selection_ is not None:
        sys.stderr.write(f"chosen: {model.selection_.reason}\n")
    for note in model.report_.notes:
        sys.stderr.write(f"warning: {note}\n")
    workspace = Workspace()
    model_id = save_model(model, log, workspace)
    out = {**model.report_.to_dict(), "model_id": model_id, "workspace": str(workspace.path)}
    if args.model_out:
        out["model_path"] = str(write_model_file(model_id, workspace, args.model_out))
    if args.predictions_out:
        out["predictions_path"] = _write_predictions(log.ids, model.oof_, args.predictions_out)
    return out


def cmd_predict(args: argparse.Namespace) -> dict:
    from .io import read_table
    from .uplift.persist import read_model_file
    from .workspace import Workspace

    model = read_model_file(args.model, Workspace())
    if args.engine == "spark":
        if args.cold_start:
            raise UserError("--cold-start is not supported by the Spark engine yet; run with --engine local")
        from .engines.spark import score

        n_rows = score(spark_session(args), model, args.data, args.predictions_out)
        return {"learner": model.learner_, "labels": list(model.labels_), "n_rows": n_rows,
                "predictions_path": args.predictions_out}
    frame = read_table(args.data)
    out: dict = {}
    if args.cold_start:
        from .design.cold_start import score_with_cold_start

        if getattr(model, "cold_start_", None) is None:
            raise UserError("this model file carries no segment-level effects for cold starts; fit it again with this version")
        segment, effects = model.cold_start_
        predictions = score_with_cold_start(model, frame, effects, segment)
        out["cold_start"] = int(predictions["cold_start"].sum())
        out["cold_start_reasons"] = {str(k): int(v) for k, v in
                                     predictions.loc[predictions["cold_start"], "cold_start_reason"].value_counts().items()}
    else:
        predictions = model.predict(frame)
    id_column = (getattr(model, "id_column_", None))
    ids = frame[id_column].to_numpy() if id_column and id_column in frame.columns else np.arange(len(frame))
    _write_predictions(ids, predictions, args.predictions_out)
    return {"learner": model.learner_, "labels": list(model.labels_), "n_rows": int(len(frame)),
            "predictions_path": args.predictions_out, **out}


def align_scores(log, scores, source: str):
    """Row-align a scores frame with the log: joined on ``id`` when the log maps an id column,
    else by position (same number of rows)."""
    import pandas as pd

    if log.columns.id and "id" in scores.columns:
        keyed = scores.copy()
        keyed["id"] = keyed["id"].astype(str)
        if keyed["id"].duplicated().any():
            raise UserError(f"{source} has duplicated ids (e.g. {keyed.loc[keyed['id'].duplicated(), 'id'].iloc[0]!r})")
        ids = pd.Series(log.ids).astype(str)
        missing = ~ids.isin(keyed["id"])
        if missing.any():
            raise UserError(f"{source} has no row for {int(missing.sum()):,} ids of the log (e.g. {ids[missing].iloc[0]!r})")
        return keyed.set_index("id").loc[ids].reset_index(drop=True)
    if len(scores) != log.n:
        raise UserError(f"{source} has {len(scores):,} rows but the log has {log.n:,}; give --id so they can be joined on id")
    return scores.reset_index(drop=True)


def cmd_evaluate(args: argparse.Namespace) -> dict:
    import pandas as pd

    from .evaluation import evaluate
    from .io import read_table

    if bool(args.scores) == bool(args.score_column):
        raise UserError("give either --scores CSV or --score-column COL with --treatment L")
    if args.engine == "spark":
        return _evaluate_spark(args)
    log = load_log(args, require_value=True)
    if args.scores:
        scores = align_scores(log, read_table(args.scores, name=args.scores), f"--scores '{args.scores}'")
        arms = [a for a in log.treatments if f"tau_value__{a}" in scores.columns]
        if args.treatment:
            arms = [args.treatment]
    else:
        if not args.treatment:
            raise UserError("--score-column needs --treatment L: the arm the score ranks against the control")
        if args.score_column not in log.frame.columns:
            raise UserError(f"--score-column '{args.score_column}' is not in the log")
        score = pd.to_numeric(log.frame[args.score_column], errors="coerce")
        scores = pd.DataFrame({f"tau_value__{args.treatment}": score.to_numpy(dtype=float)})
        if log.has_cost:
            # one score ranks both curves: the cost curve is ordered by the score itself
            scores[f"tau_cost__{args.treatment}"] = 1.0
        arms = [args.treatment]
    if args.treatment and args.treatment not in log.labels:
        raise UserError(f"--treatment '{args.treatment}' is not an arm of the log; arms: {', '.join(log.labels)}")
    if args.treatment == log.control:
        raise UserError(f"--treatment '{args.treatment}' is the control; name an offer")
    for arm in arms:
        column = f"tau_value__{arm}"
        if column not in scores.columns:
            raise UserError(f"the scores have no column '{column}'")
        bad = pd.to_numeric(scores[column], errors="coerce").isna()
        if bad.any():
            raise UserError(f"score column '{column}' has {int(bad.sum())} missing or non-numeric values (first at row {int(bad.idxmax()) + 1})")
    return _evaluation_output(evaluate(log, scores, n_bins=args.bins, arms=arms))


def _evaluation_output(result) -> dict:
    out = result.to_dict()
    for arm in out:
        out[arm]["weighted"] = result.weighted
    for note in result.notes:
        sys.stderr.write(f"warning: {note}\n")
    return out


def _evaluate_spark(args: argparse.Namespace) -> dict:
    """``evaluate`` on Spark: the log and the scores joined there, every curve from sums per
    distinct score (the local engine's formulas)."""
    from pyspark.sql import functions as F

    from .engines import spark as engine

    spark = spark_session(args)
    log = engine.mapped_log(spark, args, require_value=True, keep=[args.score_column] if args.score_column else ())
    if args.treatment and args.treatment not in log.labels:
        raise UserError(f"--treatment '{args.treatment}' is not an arm of the log; arms: {', '.join(log.labels)}")
    if args.treatment == log.control:
        raise UserError(f"--treatment '{args.treatment}' is the control; name an offer")
    if args.scores:
        frame, columns = engine.scores_frame(spark, log, args.scores)
        arms = [args.treatment] if args.treatment else [a for a in log.treatments if f"tau_value__{a}" in columns]
    else:
        if not args.treatment:
            raise UserError("--score-column needs --treatment L: the arm the score ranks against the control")
        if args.score_column not in log.frame.columns:
            raise UserError(f"--score-column '{args.score_column}' is not in the log")
        frame = log.frame.withColumn(f"tau_value__{args.treatment}", F.col(f"`{args.score_column}`").try_cast("double"))
        columns = [f"tau_value__{args.treatment}"]
        if log.has_cost:
            frame = frame.withColumn(f"tau_cost__{args.treatment}", F.lit(1.0))
            columns.append(f"tau_cost__{args.treatment}")
        arms = [args.treatment]
    for arm in arms:
        if f"tau_value__{arm}" not in columns:
            raise UserError(f"the scores have no column 'tau_value__{arm}'")
    if not arms:
        raise UserError("the scores have no tau_value__<arm> column for any arm of the log; arms: " + ", ".join(log.treatments))
    return _evaluation_output(engine.evaluate(log, frame, columns, arms, args.bins))


def _allocation_setting(args: argparse.Namespace, arms: list[str]) -> dict:
    setting: dict = {"cpi_max": args.cpi_max}
    if args.offer_cost:
        text = args.offer_cost.strip()
        try:
            setting["offer_costs"] = dict.fromkeys(arms, float(text))
        except ValueError:
            setting["offer_costs"] = parse_label_floats(text, "--offer-cost")
        setting["cost_basis"] = "per_send"
    return setting


def _write_allocation_table(table, path: str) -> None:
    try:
        table.to_csv(path, index=False)
    except OSError as exc:
        raise UserError(f"--allocation-out '{path}' cannot be written: {exc.strerror}") from exc


def cmd_allocate(args: argparse.Namespace) -> dict:
    from .decision.allocate import allocate
    from .decision.policy import candidates_for_plan, score_arms
    from .io import read_table

    caps = {k: v for k, v in parse_label_floats(args.cap, "--cap").items()} if args.cap else None
    if args.engine == "spark":
        planned = _allocate_spark(args, caps)
        if isinstance(planned, dict):
            return planned
        scores = planned  # an instance for the exact solver, collected to this machine
    else:
        scores = read_table(args.scores, name=args.scores)
    setting = _allocation_setting(args, score_arms(scores))
    candidates = candidates_for_plan(scores, setting)
    result = allocate(candidates, args.budget, args.control, method=args.method, caps=caps, solver=args.solver)
    out = result.to_dict()
    out["pruned"] = candidates.pruned_counts()
    if args.allocation_out:
        ids = scores["id"].to_numpy() if "id" in scores.columns else np.arange(len(scores))
        table = result.to_frame(ids, candidates)
        if "cold_start" in scores.columns:
            table["cold_start"] = scores["cold_start"].astype(bool).to_numpy()
            out["cold_start"] = int(table["cold_start"].sum())
        _write_allocation_table(table, args.allocation_out)
        out["allocation_path"] = args.allocation_out
    return out


def _allocate_spark(args: argparse.Namespace, caps):
    """``allocate`` on Spark: the fast method's output.  The exact MILP is solved on one machine,
    so for an instance small enough for it (or with caps) the scores table is returned instead,
    collected to the driver, and solved as locally."""
    import time

    from .decision.allocate import AUTO_EXACT_LIMIT, _validate_budget, _validate_caps
    from .decision.policy import score_arms
    from .engines import spark as engine

    start = time.perf_counter()
    spark = spark_session(args)
    scores = engine.read(spark, args.scores)
    arms = score_arms(scores)
    setting = _allocation_setting(args, arms)
    segments, summary = engine.option_segments(scores, setting)
    budget = _validate_budget(args.budget)
    caps = _validate_caps(caps, tuple(arms))
    if args.method == "fast" and caps:
        raise UserError("the fast method does not handle --cap; use --method exact or auto")
    if args.method == "exact" or (args.method == "auto" and (caps or summary.options <= AUTO_EXACT_LIMIT)):
        return engine.to_pandas(scores)
    plan = engine.frontier_plan(segments, summary, budget)
    counts = {args.control: int(plan["counts"][0]), **{a: int(plan["counts"][j + 1]) for j, a in enumerate(arms)}}
    bound = plan["upper_bound"]
    out = {"total_value": plan["total_value"], "total_cost": plan["total_cost"], "counts": counts, "upper_bound": bound,
           "gap": max(0.0, (bound - plan["total_value"]) / bound) if bound > 0 else 0.0, "method": "fast",
           "seconds": time.perf_counter() - start, "budget": budget, "lambda": plan["lambda"], "solver": None,
           "pruned": dict(zip(arms, (int(x) for x in summary.pruned)))}
    if args.allocation_out:
        cold = engine.write_allocation(spark, scores, setting, plan, args.control, args.allocation_out)
        if cold is not None:
            out["cold_start"] = cold
        out["allocation_path"] = args.allocation_out
    return out


def _ope_estimators(args: argparse.Namespace) -> list[str]:
    from .ope.estimators import ESTIMATORS, check_settings

    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()] if args.estimators else list(ESTIMATORS)
    check_settings(estimators, args.alpha, args.bootstrap, args.clip)
    if bool(args.policy) == bool(args.policy_name):
        raise UserError("give either --policy CSV or --policy-name (treat-all:L, no-offer, logging, random)")
    name = args.policy_name
    if name and not (name in ("no-offer", "logging", "random") or name.startswith("treat-all:")):
        raise UserError(f"--policy-name '{name}' is not one of treat-all:L, no-offer, logging, random")
    return estimators


def _ope_output(policy_name: str, n: int, source: str, result, clip) -> dict:
    out = {"n": n, "ess": result.ess, "max_weight": result.max_weight, "propensity_source": source,
           "estimates": {k: v.to_dict() for k, v in result.value.items()}}
    if result.cost is not None:
        out["cost_estimates"] = {k: v.to_dict() for k, v in result.cost.items()}
    out.update(policy=policy_name, clip=clip, share_clipped=result.share_clipped,
               increments={k: v.to_dict() for k, v in result.value_increment.items()})
    if result.cost_increment is not None:
        out["cost_increments"] = {k: v.to_dict() for k, v in result.cost_increment.items()}
    if result.rare_arms:
        sys.stderr.write(f"warning: the policy uses arm(s) {', '.join(result.rare_arms)} that the log rarely tried\n")
    return out


def cmd_ope(args: argparse.Namespace) -> dict:
    from .diagnostics.overlap import estimate_propensities
    from .io import read_table
    from .ope import compare
    from .ope.estimators import reward_models

    estimators = _ope_estimators(args)
    if args.engine == "spark":
        return _ope_spark(args, estimators)
    log = load_log(args, require_value=True)
    matrix = None
    if log.propensity is not None:
        propensity, source = log.propensity, "logged"
    else:
        sys.stderr.write("no --propensity given: estimating propensities with cross-fitted LightGBM\n")
        matrix = estimate_propensities(log, folds=max(args.folds, 2), seed=args.seed)
        propensity = matrix[np.arange(log.n), [log.labels.index(a) for a in log.action]]
        source = "estimated"
    name = args.policy_name
    if args.policy:
        policy = compare.from_frame(log, read_table(args.policy, name=args.policy), name=args.policy)
    elif name == "no-offer":
        policy = compare.no_offer(log)
    elif name == "logging":
        policy = compare.logging_policy(log, propensity, matrix)
    elif name == "random":
        policy = compare.random_policy(log)
    else:
        policy = compare.treat_all(log, name.split(":", 1)[1])
    compare.check_policy(log, policy, propensity)
    if set(estimators) <= WEIGHTING_ONLY:
        # IPS and SNIPS use no reward model: zeros stand in for q̂ and change neither estimate
        q_value = np.zeros((log.n, len(log.labels)))
        q_cost = np.zeros((log.n, len(log.labels))) if log.has_cost else None
    else:
        sys.stderr.write("fitting the cross-fitted reward model(s)\n")
        q_value, q_cost = reward_models(log, folds=args.folds, seed=args.seed)
    result = compare.evaluate_policy(log, policy, propensity, q_value, q_cost, estimators=estimators, clip=args.clip,
                                     tau=args.switch_tau, n_boot=args.bootstrap, alpha=args.alpha, seed=args.seed,
                                     keys=log_keys(log), exact_limit=np.inf if args.exact_bootstrap else None)
    return _ope_output(policy.name, log.n, source, result, args.clip)


def log_keys(log) -> np.ndarray:
    """The counter-based bootstrap's row keys: hashed ids when the log maps an id, else positions."""
    from .engines.keys import row_keys

    return row_keys(ids=log.ids) if log.columns.id else row_keys(positions=np.arange(log.n))


def _ope_spark(args: argparse.Namespace, estimators: list[str]) -> dict:
    """``ope`` on Spark: models are fitted on the driver, the row sums and the bootstrap run on Spark."""
    from .engines import spark as engine

    spark = spark_session(args)
    log = engine.mapped_log(spark, args, require_value=True)
    name = args.policy_name
    if name and name.startswith("treat-all:") and name.split(":", 1)[1] not in log.labels:
        raise UserError(f"treat-all arm '{name.split(':', 1)[1]}' is not in the log; arms: {', '.join(log.labels)}")
    fitted: dict[str, np.ndarray] = {}
    q: dict = {}
    local = None
    k = len(log.labels)
    source = "logged"
    if not log.has_propensity:
        from .diagnostics.overlap import estimate_propensities

        sys.stderr.write("no --propensity given: estimating propensities with cross-fitted LightGBM (on the driver)\n")
        local = log.local()
        matrix = estimate_propensities(local, folds=max(args.folds, 2), seed=args.seed)
        fitted.update({f"_pm__{j}": matrix[:, j] for j in range(k)})
        fitted["_pe"] = matrix[np.arange(local.n), [local.labels.index(a) for a in local.action]]
        q["estimated"] = True
        source = "estimated"
    if not set(estimators) <= WEIGHTING_ONLY:
        from .ope.estimators import reward_models

        sys.stderr.write("fitting the cross-fitted reward model(s) (on the driver)\n")
        local = local or log.local()
        q_value, q_cost = reward_models(local, folds=args.folds, seed=args.seed)
        fitted.update({f"_qv__{j}": q_value[:, j] for j in range(k)})
        if q_cost is not None:
            fitted.update({f"_qc__{j}": q_cost[:, j] for j in range(k)})
        q["fitted"] = True
    if fitted:
        log = engine.attach(spark, log, fitted)
    if args.policy:
        spec = {"kind": "file", "name": args.policy, "frame": engine.policy_frame(spark, log, args.policy)}
        if "_pa" in spec["frame"].columns:
            spec["kind"] = "action"
    elif name.startswith("treat-all:"):
        spec = {"kind": "arm", "index": log.labels.index(name.split(":", 1)[1]), "name": name, "frame": log.frame}
    elif name == "no-offer":
        spec = {"kind": "arm", "index": 0, "name": "no-offer", "frame": log.frame}
    else:
        spec = {"kind": name, "name": name, "frame": log.frame}
    result = engine.ope(args, log, spec, q, estimators)
    return _ope_output(spec["name"], log.n, source, result, args.clip)


def cmd_monitor(args: argparse.Namespace) -> dict:
    local_only(args, "monitor")
    from .io import read_table
    from .monitoring.daily import Pacing, Thresholds, monitor
    from .schema import ColumnMap, ExperimentLog
    from .workspace import Workspace

    out: dict = {}
    if bool(args.data) == bool(args.dataset) and not args.store:
        raise UserError("give the live log as --data PATH (with --time COL) or a stored series as --dataset NAME")
    if args.store and not args.data:
        raise UserError("--store NAME appends the days of --data PATH to a series; give --data")
    mapped = args.action is not None
    if args.data:
        if not (mapped and args.time):
            raise UserError("a live log needs its mapping: --action, --control, --value and --time (the day column)")
        frame = read_table(args.data, str_columns=[args.action])
        log = log_from_frame(frame, args, require_value=True)
        if args.fairness:  # refuse a bad attribute before anything is stored
            from .monitoring.fairness import check_groups

            check_groups(frame, args.fairness)
        if args.store:
            from .monitoring.store import append_days

            workspace = Workspace()
            out["stored"] = append_days(workspace, args.store, frame, args.time, log.columns.to_dict())
            frame = workspace.load_series(args.store)
            log = log_from_frame(frame, args, require_value=True)
    else:
        workspace = Workspace()
        info = workspace.series_info(args.dataset)
        if info is None:
            raise UserError(f"no monitoring series '{args.dataset}' in the workspace; store days with --store NAME first")
        frame = workspace.load_series(args.dataset)
        if mapped:
            log = log_from_frame(frame, args, require_value=True)
        elif info["mapping"]:
            log = ExperimentLog.from_frame(frame, ColumnMap.from_dict(info["mapping"]), require_value=True)
        else:
            raise UserError(f"series '{args.dataset}' has no stored mapping; give --action, --control, --value, --time")
    thresholds = Thresholds(psi_alert=args.psi_alert, calibration_z=args.calibration_z,
                            volume_tolerance=args.volume_tolerance, clip=args.clip, pacing_tolerance=args.pacing_tolerance)
    pacing = None
    if args.budget is not None or args.campaign_days is not None:
        if args.budget is None or args.campaign_days is None:
            raise UserError("pacing needs both --budget and --campaign-days")
        pacing = Pacing(args.budget, args.campaign_days, args.redemption_days)
    reference = read_table(args.reference, name=args.reference) if args.reference else None
    plan = read_table(args.plan, name=args.plan) if args.plan else None
    scores = read_table(args.scores, name=args.scores) if args.scores else None
    result = monitor(log, reference=reference, plan=plan, scores=scores, psi_bins=args.psi_bins,
                     thresholds=thresholds, pacing=pacing)
    out.update(result.to_dict())
    if args.fairness:
        from .monitoring.fairness import audit_log

        out["fairness"] = audit_log(log, args.fairness, scores).to_dict()
    for note in result.notes:
        sys.stderr.write(f"note: {note}\n")
    return out


def cmd_report(args: argparse.Namespace) -> dict:
    import json as _json
    from pathlib import Path

    from .io import read_table
    from .report import build_report
    from .workspace import Workspace

    if bool(args.scenario) == bool(args.config):
        raise UserError("give either --scenario ID (from the workspace) or --config JSON")
    workspace = Workspace()
    if args.scenario:
        record = workspace.get_scenario(args.scenario)
        frame, config, title = workspace.load_dataset(record.dataset_id), record.config, record.name
    else:
        try:
            config = _json.loads(Path(args.config).read_text())
        except FileNotFoundError:
            raise UserError(f"--config '{args.config}' does not exist") from None
        except OSError as exc:  # a folder, no permission…
            raise UserError(f"--config '{args.config}' cannot be read: {exc.strerror}") from None
        except ValueError as exc:
            raise UserError(f"--config '{args.config}' is not valid JSON: {exc}") from None
        if "data" not in config or "mapping" not in config:
            raise UserError("--config needs \"data\" (a log file) and \"mapping\" (the column roles)")
        frame = read_table(config["data"], str_columns=[config["mapping"].get("action", "")])
        title = config.get("title", f"Uplift Studio report: {Path(config['data']).name}")
    text, sections = build_report(frame, config, workspace=workspace, title=title)
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--out '{args.out}' cannot be written: {exc.strerror}") from exc
    return {"path": args.out, "sections": sections, "bytes": len(text.encode()), "title": title}


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
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_describe)

    p = sub.add_parser("srm", help="sample-ratio mismatch: arm counts against the intended split")
    add_log_options(p)
    p.add_argument("--expected", metavar="L=W,...", help="intended split weights per arm (default: equal)")
    p.add_argument("--alpha", type=float, default=0.001, help="alarm when p < alpha (default 0.001)")
    p.add_argument("--by", metavar="COL", help="also test each value of this column (segment, day…)")
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_srm)

    p = sub.add_parser("overlap", help="propensity overlap (ESS, clipping) and covariate balance (SMD)")
    add_log_options(p)
    p.add_argument("--clip", type=float, default=0.01, help="propensity clip ε for share_below_clip (default 0.01)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds when propensities are estimated (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the propensity model")
    p.add_argument("--check-logged", action="store_true", help="also estimate propensities and count rows that disagree with the logged ones")
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_overlap)

    p = sub.add_parser("fit", help="fit an uplift model: value and cost heads for every offer, cross-fitted")
    add_log_options(p, value_required=True)
    p.add_argument("--learner", default="auto", choices=["auto", "s", "t", "x", "dr", "cf", "drm", "cdrm"],
                   help="meta-learner; auto (default) fits S, T, X, DR (and, on small logs, the causal forest) and "
                   "keeps the one with the lowest doubly robust loss on out-of-fold predictions; drm: the direct "
                   "ranking model (one score per offer ranking by value per cost, adds score__<offer>); cdrm: its "
                   "constrained variant (most value with incremental cost per incremental value ≤ --cpi-max)")
    p.add_argument("--ranking-scorer", default="lightgbm", choices=["lightgbm", "linear", "mlp"],
                   help="drm/cdrm: the model behind the score (default lightgbm, custom objective)")
    p.add_argument("--cpi-max", type=float, metavar="X",
                   help="cdrm: the CPI (incremental cost per incremental value) the ranking must keep to "
                   "(default: the median average CPI of the offers that add value)")
    p.add_argument("--candidates", metavar="L1,L2,...", help="learners auto chooses from (default s,t,x,dr,cf)")
    p.add_argument("--tuning", default="auto", choices=["auto", "fixed"],
                   help="auto (default): LightGBM complexity per head and fold from a small search with early "
                   "stopping; fixed: one regularised setting")
    p.add_argument("--fit-engine", default="native", choices=["native", "econml"],
                   help="native (default): binned-once LightGBM engine; econml: EconML's meta-learners (reference)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default 5)")
    p.add_argument("--bagging", type=int, default=0, help="bootstrap refits per fold (default 0 = off)")
    p.add_argument("--by-segment", action="store_true", help="one model per value of --segment")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same predictions)")
    p.add_argument("--model-out", metavar="PATH", help="write the fitted model here (loadable only by this workspace)")
    p.add_argument("--predictions-out", metavar="CSV", help="out-of-fold tau_value__<arm>, tau_cost__<arm> per row")
    add_json_out(p)
    add_engine_options(p, choices=("local", "spark", "native", "econml"),
                       help="local (default) or spark: where the log is read; models are fitted on this machine either "
                       "way (on Spark, on at most 2,000,000 rows: a fixed sample of larger logs); native and econml "
                       "are the old names of --fit-engine")
    p.set_defaults(handler=cmd_fit)

    p = sub.add_parser("predict", help="score new customers with a model written by fit --model-out")
    p.add_argument("--model", required=True, metavar="PATH", help="model file from fit --model-out")
    p.add_argument("--data", required=True, metavar="PATH", help="customers to score (CSV, CSV.GZ or Parquet)")
    p.add_argument("--predictions-out", required=True, metavar="CSV", help="tau_value__<arm>, tau_cost__<arm> per row")
    p.add_argument("--cold-start", action="store_true",
                   help="customers without the model's features or from unseen segments get their segment's readout "
                   "effects (flagged in a cold_start column) instead of an error")
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("evaluate", help="Qini / AUUC / cost curve / calibration of uplift scores, per arm")
    add_log_options(p, value_required=True)
    p.add_argument("--scores", metavar="CSV", help="fit/predict output (row-aligned, or joined on id when --id is given)")
    p.add_argument("--score-column", metavar="COL", help="a score column of the log itself (with --treatment)")
    p.add_argument("--treatment", metavar="L", help="the arm to evaluate against the control")
    p.add_argument("--bins", type=int, default=10, help="calibration bins (default 10)")
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("allocate", help="allocate offers under a budget (and CPI threshold, caps) from predictions")
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
    p.set_defaults(handler=cmd_allocate)

    p = sub.add_parser("ope", help="off-policy value and cost of a policy: IPS, SNIPS, DM, DR, SNDR, Switch-DR")
    add_log_options(p, value_required=True)
    p.add_argument("--policy", metavar="CSV", help="policy file: an action column or prob__<arm> columns (joined on id)")
    p.add_argument("--policy-name", metavar="NAME", help="treat-all:L | no-offer | logging | random")
    p.add_argument("--estimators", metavar="LIST", help="comma list of ips,snips,dm,dr,sndr,switch-dr (default all)")
    p.add_argument("--clip", type=float, help="floor propensities at this value before weighting (default: no clip)")
    p.add_argument("--switch-tau", type=float, default=float("inf"), help="Switch-DR: IPS correction only where w ≤ τ (default ∞)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 − confidence level (default 0.05)")
    p.add_argument("--folds", type=int, default=2, help="cross-fitting folds of the reward model (default 2)")
    p.add_argument("--exact-bootstrap", action="store_true",
                   help="draw every row's Poisson count in every resample even on large logs (by default, above 10^7 "
                   "rows × resamples the sums' normal limit is used: same mean and covariance, much faster)")
    p.add_argument("--seed", type=int, default=0)
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_ope)

    p = sub.add_parser("readout", help="average effect of every offer on value and cost against control, with CPI")
    add_log_options(p, value_required=True)
    p.add_argument("--cuped", metavar="COL", help="pre-period covariate for the CUPED-adjusted effect (optional)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 − confidence level of the intervals (default 0.05)")
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_readout)

    p = sub.add_parser("design", help="customers needed per arm for the next test (or the effect a given size detects)")
    add_log_options(p)
    for option in ("--data", "--action", "--control"):
        p._option_string_actions[option].required = False
    p.add_argument("--baseline-mean", type=float, metavar="M", help="the outcome's mean without an offer (typed in)")
    p.add_argument("--baseline-sd", type=float, metavar="S", help="the outcome's standard deviation (typed in)")
    p.add_argument("--baseline-rate", type=float, metavar="P", help="the conversion rate without an offer (typed in)")
    p.add_argument("--mde", type=float, help="the smallest effect worth detecting (absolute: money, or a rate difference)")
    p.add_argument("--n", type=int, help="customers per treated arm (instead of --mde: the detectable effect is solved)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    p.add_argument("--arms", type=int, help="treated arms sharing one control (default 1, or the log's offers)")
    p.add_argument("--ratio", type=float, default=1.0, help="control size / treated arm size (default 1)")
    p.add_argument("--correction", default="none", help="none | bonferroni (α/arms per comparison); default none")
    p.add_argument("--cuped", metavar="COL", help="pre-period column of the log: reports CUPED's variance factor 1 − ρ²")
    add_json_out(p)
    add_engine_options(p)
    p.set_defaults(handler=cmd_design)

    p = sub.add_parser("deploy", help="send a plan with a holdout and exploration: assignment file with exact propensities")
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
    p.set_defaults(handler=cmd_deploy)

    p = sub.add_parser("report", help="self-contained HTML report of a saved scenario (opens offline)")
    p.add_argument("--scenario", metavar="ID", help="a scenario saved in the workspace")
    p.add_argument("--config", metavar="JSON", help='instead: {"data": PATH, "mapping": {...}, "allocation": {...}, …}')
    p.add_argument("--out", required=True, metavar="HTML", help="where to write the report")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("monitor", help="a live campaign day by day: volume, spend, drift, calibration, alerts")
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
    p.set_defaults(handler=cmd_monitor)

    parser.commands = list(sub.choices)  # for the "no command given" message
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            raise UserError("no command given; choose one of: " + ", ".join(parser.commands))
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
