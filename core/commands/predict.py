"""``predict``: score new customers with a model written by ``fit --model-out``, batch by batch
where they are."""

from __future__ import annotations

import pandas as pd

from ..design.cold_start import score_with_cold_start
from ..errors import UserError
from ..uplift.persist import read_model_file
from ..workspace import Workspace
from .common import add_engine_options, add_json_out, engine_of



def add_arguments(p) -> None:
    p.add_argument("--model", required=True, metavar="PATH", help="model file from fit --model-out")
    p.add_argument("--data", required=True, metavar="PATH", help="customers to score (CSV, CSV.GZ or Parquet)")
    p.add_argument("--predictions-out", required=True, metavar="CSV", help="tau_value__<arm>, tau_cost__<arm> per row")
    p.add_argument("--cold-start", action="store_true",
                   help="customers without the model's features or from unseen segments get their segment's readout "
                   "effects (flagged in a cold_start column) instead of an error")
    add_json_out(p)
    add_engine_options(p)


def run(args) -> dict:
    model = read_model_file(args.model, Workspace())
    if args.cold_start and getattr(model, "cold_start_", None) is None:
        raise UserError("this model file carries no segment-level effects for cold starts; fit it again with this version")
    engine = engine_of(args)
    table = engine.read_table(args.data)
    id_column = getattr(model, "id_column_", None)
    has_id = bool(id_column) and id_column in table.columns

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        frame = batch.reset_index(drop=True)
        if args.cold_start:
            segment, effects = model.cold_start_
            predictions = score_with_cold_start(model, frame, effects, segment)
        else:
            predictions = model.predict(frame)
        ids = batch[id_column] if has_id else pd.Series(batch.index)
        predictions.insert(0, "id", ids.astype(str).to_numpy())
        predictions.index = batch.index
        return predictions

    sample = score(engine.head(table))
    schema = {c: ("string" if c in ("id", "cold_start_reason") else "boolean" if c == "cold_start" else "double")
              for c in sample.columns}
    predictions = engine.map(table, score, schema)
    cold = engine.write_csv(predictions, args.predictions_out, "--predictions-out",
                            count="cold_start" if args.cold_start else None)
    out: dict = {"learner": model.learner_, "labels": list(model.labels_), "n_rows": engine.n_rows(table),
                 "predictions_path": args.predictions_out}
    if args.cold_start:
        out["cold_start"] = cold
        out["cold_start_reasons"] = engine.reduce(
            predictions, lambda b: b.loc[b["cold_start"].astype(bool), "cold_start_reason"].value_counts(),
            lambda a, b: a.add(b, fill_value=0)).astype(int).to_dict()
    return out
