"""``fit``: an uplift model, value and cost heads for every offer, cross-fitted on this machine
(the log is read where it is; above :data:`~core.engines.base.FIT_ROWS` rows a fixed keyed
sample of it is fitted)."""

from __future__ import annotations

from ..uplift.model import UpliftModel
from ..uplift.persist import save_model, write_model_file
from ..workspace import Workspace
from .common import (add_engine_options, add_json_out, add_log_options, engine_of, note, progress_to_stderr, read_log,
                     warn)



def add_arguments(p) -> None:
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


def run(args) -> dict:
    if args.engine in ("native", "econml"):  # the fitting engine's old option name
        args.fit_engine, args.engine = args.engine, "local"
    candidates = tuple(c.strip() for c in args.candidates.split(",") if c.strip()) if args.candidates else None
    model = UpliftModel(learner=args.learner, folds=args.folds, bagging=args.bagging, by_segment=args.by_segment,
                        seed=args.seed, tuning=args.tuning, backend=args.fit_engine, ranking_scorer=args.ranking_scorer,
                        cpi_max=args.cpi_max, **({"candidates": candidates} if candidates is not None else {}))
    model._validate_params()
    engine = engine_of(args)
    source = read_log(engine, args, require_value=True)
    n = engine.n_rows(source)
    log = engine.collect(source, sample_seed=args.seed)
    if log.n < n:
        note(f"fitting on this machine on {log.n:,} of the log's {n:,} rows (a fixed sample drawn where the log is)")
    model.fit(log, progress=progress_to_stderr())
    for head, info in model.report_.tuning.items():
        note(f"tuning: {head} head {info['chosen']} (per fold: {', '.join(info['per_fold'])})")
    if model.selection_ is not None:
        note(f"chosen: {model.selection_.reason}")
    warn(model.report_.notes)
    workspace = Workspace()
    model_id = save_model(model, log, workspace)
    out = {**model.report_.to_dict(), "model_id": model_id, "workspace": str(workspace.path)}
    if args.model_out:
        out["model_path"] = str(write_model_file(model_id, workspace, args.model_out))
    if args.predictions_out:
        predictions = model.oof_.copy()
        predictions.insert(0, "id", log.ids)
        engine.write_csv(predictions, args.predictions_out, "--predictions-out")
        out["predictions_path"] = args.predictions_out
    return out
