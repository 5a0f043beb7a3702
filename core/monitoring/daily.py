"""A live campaign day by day: volume against the plan, spend against the pacing plan, the
no-offer / holdout / exploration shares, realised against predicted uplift on the randomised
customers (calibration drift), feature drift against the training log (PSI), the logged
propensities, and the alerts those raise under thresholds the user sets.

Calibration drift.  On each day and for each offer L, the randomised customers are those of the
``explore`` and ``holdout`` buckets when the log (or the deployment file) has a bucket column —
both are random samples of the audience, so plain means compare the arms — and otherwise every
customer, weighted by 1/propensity when propensities are logged (Hájek means).  The observed
uplift is mean(y | L) − mean(y | no offer) with the standard error of two independent means; the
predicted uplift is the mean of the model's τ for L over the same customers.  An alert fires when
|observed − predicted| > z·SE (``calibration_z``, default 3), only when both arms have at least
``min_rows`` customers that day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..diagnostics.readout import hajek_difference
from ..errors import UserError
from .drift import BANDS, Binning, psi, psi_band

EXPLORATION_BUCKETS = ("explore", "holdout")


@dataclass(frozen=True)
class Thresholds:
    """When an alert fires (every one can be set by the user)."""

    psi_alert: float = BANDS[1]  # PSI at or above: a major shift
    calibration_z: float = 3.0  # |observed − predicted| above this many standard errors
    volume_tolerance: float = 0.1  # sends differing from the plan by more than this share
    clip: float = 0.01  # logged propensities below this
    pacing_tolerance: float = 0.1  # cumulative spend (with liability) above the pacing plan by this share
    min_rows: int = 100  # fewest customers per arm and day for a calibration or volume check

    def validate(self) -> "Thresholds":
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise UserError(f"alert threshold {name} must be a number ≥ 0, got {value!r}")
        return self


@dataclass(frozen=True)
class Pacing:
    """The budget and how it is meant to be spent."""

    budget: float
    days: int  # the campaign's length: the plan spends budget·k/days by day k
    redemption_days: int = 14  # offers younger than this may still be redeemed (outstanding liability)

    def validate(self) -> "Pacing":
        if not (np.isfinite(self.budget) and self.budget > 0):
            raise UserError(f"the budget must be a positive number, got {self.budget!r}")
        if not (isinstance(self.days, (int, np.integer)) and self.days >= 1):
            raise UserError(f"the campaign length must be a whole number of days ≥ 1, got {self.days!r}")
        return self


@dataclass(frozen=True)
class Alert:
    day: str
    kind: str
    subject: str
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Monitoring:
    """Per-day metrics (``days``, the contract's JSON per day) and the alerts."""

    days: list[dict]
    alerts: list[Alert]
    offers: tuple[str, ...]
    features: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"days": self.days, "alerts": [a.to_dict() for a in self.alerts], "notes": self.notes}

    def alerts_frame(self) -> pd.DataFrame:
        return pd.DataFrame([a.to_dict() for a in self.alerts],
                            columns=["day", "kind", "subject", "value", "threshold", "message"])

    def series(self, key: str) -> pd.DataFrame:
        """One per-day metric as a table: rows = days, columns = offers or features."""
        rows = {d["day"]: {k: (v["observed"] if isinstance(v, dict) and "observed" in v else v)
                           for k, v in (d.get(key) or {}).items()} for d in self.days}
        return pd.DataFrame.from_dict(rows, orient="index")

    def calibration_frame(self, head: str = "value") -> pd.DataFrame:
        """Long table: day, offer, predicted, observed, ci_low, ci_high (of ``head``)."""
        rows = []
        for d in self.days:
            for offer, cal in d.get("calibration", {}).items():
                entry = cal if head == "value" else cal.get("cost")
                if entry:
                    rows.append({"day": d["day"], "offer": offer, **{k: entry[k] for k in
                                                                    ("predicted", "observed", "ci_low", "ci_high", "n_offer", "n_control")}})
        return pd.DataFrame(rows, columns=["day", "offer", "predicted", "observed", "ci_low", "ci_high", "n_offer", "n_control"])


def uplift_check(y, action, offer, control, weight, predicted, z_alert: float, min_rows: int, alpha: float = 0.05):
    """Observed uplift of ``offer`` with its interval, the mean prediction, and whether they
    disagree by more than ``z_alert`` standard errors (``None`` when too few rows)."""
    t, c = action == offer, action == control
    if t.sum() < 2 or c.sum() < 2:
        return None
    observed, se = hajek_difference(y, weight, t, c, small_sample=False)
    z = stats.norm.ppf(1 - alpha / 2)
    out = {"predicted": float(np.mean(predicted)), "observed": observed, "ci_low": observed - z * se,
           "ci_high": observed + z * se, "se": se, "n_offer": int(t.sum()), "n_control": int(c.sum())}
    enough = t.sum() >= min_rows and c.sum() >= min_rows
    out["z"] = float((observed - out["predicted"]) / se) if se > 0 else 0.0
    out["alert"] = bool(enough and se > 0 and abs(out["z"]) > z_alert)
    return out


def _days(log) -> pd.Series:
    if not log.columns.time:
        raise UserError("monitoring needs a day column (--time COL): the log is read day by day")
    days = pd.to_datetime(log.frame[log.columns.time], errors="coerce", format="ISO8601")
    if days.isna().any():
        bad = log.frame[log.columns.time][days.isna()].iloc[0]
        raise UserError(f"day column '{log.columns.time}' has {int(days.isna().sum())} values that are not dates "
                        f"(e.g. {bad!r})")
    return days.dt.strftime("%Y-%m-%d")


def join_on_id(log, table: pd.DataFrame | None, what: str) -> pd.DataFrame | None:
    """``table`` (keyed by ``id``) row-aligned with the log, or None."""
    if table is None:
        return None
    if "id" not in table.columns:
        raise UserError(f"the {what} has no 'id' column to join on")
    if not log.columns.id:
        raise UserError(f"the log maps no id column (--id), so the {what} cannot be joined to it")
    keyed = table.drop_duplicates("id")
    # object-dtype keys: hashing them is much faster than pandas' Arrow strings
    keyed.index = pd.Index(keyed["id"].astype(str).to_numpy(dtype=object))
    ids = pd.Index(np.asarray(log.ids).astype(str).astype(object))
    if (keyed.index.get_indexer(ids) < 0).all():
        raise UserError(f"no id of the log is in the {what} (e.g. {ids[0]!r})")
    return keyed.reindex(ids).reset_index(drop=True)


def monitor(log, reference: pd.DataFrame | None = None, plan: pd.DataFrame | None = None,
            scores: pd.DataFrame | None = None, psi_bins: int = 10, thresholds: Thresholds | None = None,
            pacing: Pacing | None = None) -> Monitoring:
    """Every day's metrics and alerts of a live log.

    Parameters
    ----------
    log : core.schema.ExperimentLog
        The live log, all days so far; its time column gives the day.
    reference : DataFrame, optional
        The training log: feature drift (PSI per mapped feature present in both).
    plan : DataFrame, optional
        ``deploy``'s output (``id``, ``action``, ``propensity``, ``bucket``): sends against
        the plan, the buckets, and the propensities when the log has none.
    scores : DataFrame, optional
        ``id`` and ``tau_value__<offer>`` (``tau_cost__<offer>``): the model's predictions for
        the log's customers, for calibration drift and the outstanding liability.
    psi_bins : int
    thresholds : Thresholds
    pacing : Pacing, optional
    """
    thresholds = (thresholds or Thresholds()).validate()
    if pacing is not None:
        pacing.validate()
    if not isinstance(psi_bins, (int, np.integer)) or psi_bins < 2:
        raise UserError(f"--psi-bins must be a whole number ≥ 2, got {psi_bins!r}")
    days = _days(log)
    action = np.asarray(log.action).astype(str)
    control = log.control
    offers = tuple(log.treatments)
    value, cost = log.value, log.cost
    planned = join_on_id(log, plan, "deployment file")
    predicted = join_on_id(log, scores, "predictions file")
    plan_action = planned["action"].astype(str).to_numpy() if planned is not None and "action" in planned.columns else None
    predictions = {} if predicted is None else {
        (head, offer): predicted[f"tau_{head}__{offer}"].to_numpy(dtype=float)
        for head in ("value", "cost") for offer in offers if f"tau_{head}__{offer}" in predicted.columns}
    notes = []
    bucket = None
    if "bucket" in log.frame.columns:
        bucket = log.frame["bucket"].astype(str).to_numpy()
    elif planned is not None and "bucket" in planned.columns:
        bucket = planned["bucket"].astype(str).to_numpy()
    propensity = log.propensity
    if propensity is None and planned is not None and "propensity" in planned.columns:
        propensity = pd.to_numeric(planned["propensity"], errors="coerce").to_numpy(dtype=float)
    features = []
    binnings = {}
    if reference is not None:
        features = [f for f in log.features if f in reference.columns]
        skipped = [f for f in log.features if f not in reference.columns]
        if skipped:
            notes.append(f"feature(s) {', '.join(skipped)} are not in the reference log: no drift measured for them")
        binnings = {f: Binning.from_reference(reference[f], psi_bins) for f in features}
        expected = {f: binnings[f].shares(reference[f]) for f in features}
    if predicted is None:
        notes.append("no predictions given: calibration drift and the outstanding liability are not measured")
    elif np.isnan(np.column_stack([v for (head, _), v in predictions.items() if head == "value"])).all(axis=1).any():
        notes.append("some customers of the log have no prediction: they are left out of the calibration check")

    out_days, alerts = [], []
    spent = 0.0
    ordered, day_of_row = np.unique(days.to_numpy(dtype=str), return_inverse=True)
    if pacing is not None and cost is not None and predicted is not None:
        # what each offer sent may still cost: its predicted cost less what it has cost so far
        outstanding = np.zeros(log.n)
        for offer in offers:
            sent = action == offer
            if ("cost", offer) in predictions:
                outstanding[sent] = np.maximum(np.nan_to_num(predictions[("cost", offer)][sent]) - cost[sent], 0.0)
        outstanding_per_day = np.bincount(day_of_row, weights=outstanding, minlength=len(ordered))
    for k, day in enumerate(map(str, ordered), start=1):
        rows = day_of_row == k - 1
        n = int(rows.sum())
        counts = {label: int(np.sum(action[rows] == label)) for label in log.labels}
        entry = {"day": day, "n": n, "counts": counts,
                 "spend": float(cost[rows].sum()) if cost is not None else None,
                 "psi": {}, "calibration": {},  # filled when a reference log / predictions are given
                 "shares": {"no_offer": counts[control] / n}}
        if bucket is not None:
            for name in ("plan", "explore", "holdout"):
                entry["shares"][name] = float(np.mean(bucket[rows] == name))
        # sends against the plan
        if plan_action is not None:
            volume = {}
            for label in log.labels:
                expected_n = int(np.sum(plan_action[rows] == label))
                volume[label] = {"planned": expected_n, "sent": counts[label]}
                if expected_n >= thresholds.min_rows:
                    gap = (counts[label] - expected_n) / expected_n
                    if abs(gap) > thresholds.volume_tolerance:
                        alerts.append(Alert(day, "volume", label, gap, thresholds.volume_tolerance,
                                            f"'{label}' sent to {counts[label]:,} customers against {expected_n:,} "
                                            f"planned ({gap:+.0%})"))
            entry["volume"] = volume
        # feature drift
        if binnings:
            for f in features:
                value_psi = psi(expected[f], binnings[f].shares(log.frame[f][rows]))
                entry["psi"][f] = value_psi
                if value_psi >= thresholds.psi_alert:
                    alerts.append(Alert(day, "feature_drift", f, value_psi, thresholds.psi_alert,
                                        f"feature '{f}' shifted against the training log (PSI {value_psi:.3f}, "
                                        f"{psi_band(value_psi)})"))
        # propensities: overlap of the randomisation
        if propensity is not None:
            p = propensity[rows]
            p = p[np.isfinite(p)]
            if len(p):
                below = float(np.mean(p < thresholds.clip))
                entry["propensity"] = {"min": float(p.min()), "share_below_clip": below,
                                       "mean_by_action": {label: float(np.mean(propensity[rows][action[rows] == label]))
                                                          for label in log.labels if counts[label]}}
                if below > 0:
                    alerts.append(Alert(day, "overlap", "propensity", below, thresholds.clip,
                                        f"{below:.1%} of the day's customers were logged with a propensity below "
                                        f"{thresholds.clip:g} (lowest {p.min():.2g}): off-policy estimates lean on few rows"))
        # calibration drift on the randomised customers
        if predicted is not None:
            random_rows = rows & (np.isin(bucket, EXPLORATION_BUCKETS) if bucket is not None else True)
            weight = (1.0 / propensity if bucket is None and propensity is not None else np.ones(log.n))
            for offer in offers:
                if ("value", offer) not in predictions:
                    continue
                scored = random_rows & ~np.isnan(predictions[("value", offer)])
                check = uplift_check(value[scored], action[scored], offer, control, weight[scored],
                                     predictions[("value", offer)][scored], thresholds.calibration_z, thresholds.min_rows)
                if check is None:
                    continue
                if cost is not None and ("cost", offer) in predictions:
                    check["cost"] = uplift_check(cost[scored], action[scored], offer, control, weight[scored],
                                                 predictions[("cost", offer)][scored], thresholds.calibration_z,
                                                 thresholds.min_rows)
                entry["calibration"][offer] = check
                for head, result in (("value", check), ("cost", check.get("cost"))):
                    if result and result["alert"]:
                        alerts.append(Alert(day, "calibration", f"{offer} · {head}", result["observed"], thresholds.calibration_z,
                                            f"'{offer}' {head} uplift observed {result['observed']:.3g} "
                                            f"(95% CI {result['ci_low']:.3g} to {result['ci_high']:.3g}) against "
                                            f"{result['predicted']:.3g} predicted ({result['z']:+.1f} standard errors)"))
        # spend against the pacing plan
        if pacing is not None and cost is not None:
            spent += entry["spend"]
            # offers sent in the last redemption_days days up to day k may still be redeemed
            liability = (float(outstanding_per_day[max(0, k - pacing.redemption_days):k].sum())
                         if predicted is not None else None)
            planned_spend = pacing.budget * min(k, pacing.days) / pacing.days
            committed = spent + (liability or 0.0)
            entry["pacing"] = {"spent": spent, "liability": liability, "planned": planned_spend,
                               "remaining": pacing.budget - committed}
            if committed > planned_spend * (1 + thresholds.pacing_tolerance):
                alerts.append(Alert(day, "pacing", "budget", committed / planned_spend - 1, thresholds.pacing_tolerance,
                                    f"spent {spent:,.0f}" + (f" plus {liability:,.0f} outstanding" if liability else "")
                                    + f" against {planned_spend:,.0f} planned by day {k} of {pacing.days} "
                                    f"({committed / planned_spend - 1:+.0%})"))
        out_days.append(entry)
    return Monitoring(out_days, alerts, offers, tuple(features), notes)

