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
from ..engines.local import LocalEngine
from ..errors import UserError, setting
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


PLAN_ACTION, PLAN_BUCKET, PLAN_P = "__plan_action", "__plan_bucket", "__plan_p"
PREDICTED = "__pred_{head}__{offer}"


def _days(batch) -> tuple[pd.Series, pd.Series]:
    """Each row's day as ``YYYY-MM-DD``, and which rows are not dates."""
    raw = batch.frame[batch.columns.time]
    days = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    return days.dt.strftime("%Y-%m-%d"), days.isna()


def _predictions(batch, offers) -> dict:
    return {(head, offer): pd.to_numeric(batch.frame[PREDICTED.format(head=head, offer=offer)], errors="coerce")
            .to_numpy(dtype=float, na_value=np.nan)
            for head in ("value", "cost") for offer in offers
            if PREDICTED.format(head=head, offer=offer) in batch.frame.columns}


def _bucket(batch) -> np.ndarray | None:
    if "bucket" in batch.frame.columns:
        return batch.frame["bucket"].astype(str).to_numpy()
    if PLAN_BUCKET in batch.frame.columns:
        return batch.frame[PLAN_BUCKET].astype(str).to_numpy()
    return None


def _propensity(batch) -> np.ndarray | None:
    if batch.propensity is not None:
        return batch.propensity
    if PLAN_P in batch.frame.columns:
        return pd.to_numeric(batch.frame[PLAN_P], errors="coerce").to_numpy(dtype=float)
    return None


def _random_weights(batch, bucket, propensity) -> tuple[np.ndarray, np.ndarray]:
    """The randomised rows of the calibration check and their weights (module docstring)."""
    random_rows = np.isin(bucket, EXPLORATION_BUCKETS) if bucket is not None else np.ones(batch.n, dtype=bool)
    weight = 1.0 / propensity if bucket is None and propensity is not None else np.ones(batch.n)
    return random_rows, weight


def day_sums(batch, offers, binnings: dict, clip: float, pacing: bool, means: dict | None = None) -> dict:
    """Monitoring's partial over a batch: per day, every count and sum the day's entry is made
    of (``means`` given: the second pass, each calibration arm's Σw²(y − mean)²)."""
    days, bad = _days(batch)
    out: dict = {"days": {}}
    if means is None and bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        out["bad"] = (int(bad.sum()), int(batch.positions[first]), batch.frame[batch.columns.time].iloc[first])
    day_text = days.to_numpy(dtype=str)
    ordered, day_of_row = np.unique(day_text[~bad.to_numpy()], return_inverse=True) if (~bad).any() else ([], [])
    keep = np.flatnonzero(~bad.to_numpy())
    action = np.asarray(batch.action).astype(str)
    value, cost = batch.value, batch.cost
    predictions = _predictions(batch, offers)
    bucket, propensity = _bucket(batch), _propensity(batch)
    random_rows, weight = _random_weights(batch, bucket, propensity)
    plan_action = batch.frame[PLAN_ACTION].astype(str).to_numpy() if PLAN_ACTION in batch.frame.columns else None
    if means is None and pacing and cost is not None and predictions:
        outstanding = np.zeros(batch.n)
        for offer in offers:
            sent = action == offer
            if ("cost", offer) in predictions:
                outstanding[sent] = np.maximum(np.nan_to_num(predictions[("cost", offer)][sent]) - cost[sent], 0.0)
        outstanding_per_day = np.bincount(day_of_row, weights=outstanding[keep], minlength=len(ordered))
    for k, day in enumerate(map(str, ordered)):
        rows = np.zeros(batch.n, dtype=bool)
        rows[keep[day_of_row == k]] = True
        entry = out["days"].setdefault(day, {})
        if means is None:
            entry["n"] = int(rows.sum())
            entry["counts"] = {label: int(np.sum(action[rows] == label)) for label in batch.labels}
            if cost is not None:
                entry["spend"] = float(cost[rows].sum())
            if bucket is not None:
                entry["buckets"] = {name: int(np.sum(bucket[rows] == name)) for name in ("plan", "explore", "holdout")}
            if plan_action is not None:
                entry["planned"] = {label: int(np.sum(plan_action[rows] == label)) for label in batch.labels}
            entry["bins"] = {f: binning.counts(batch.frame[f][rows]) for f, binning in binnings.items()}
            if propensity is not None:
                p = propensity[rows]
                finite = p[np.isfinite(p)]
                entry["p"] = {"min": float(finite.min()) if len(finite) else np.inf, "finite": len(finite),
                              "below": int(np.sum(finite < clip)),
                              "by_action": {label: (float(np.sum(p[action[rows] == label])), int(np.sum(action[rows] == label)))
                                            for label in batch.labels}}
            if pacing and cost is not None and predictions:
                entry["outstanding"] = float(outstanding_per_day[k])
        for offer in offers:
            if ("value", offer) not in predictions:
                continue
            scored = rows & random_rows & ~np.isnan(predictions[("value", offer)])
            if means is None:
                entry[("predicted", offer)] = (float(predictions[("value", offer)][scored].sum()), int(scored.sum()))
            for head, y in (("value", value), ("cost", cost)):
                if y is None or (head, offer) not in predictions:
                    continue
                if head == "cost" and means is None:
                    entry[("predicted_cost", offer)] = float(predictions[("cost", offer)][scored].sum())
                for side, label in (("t", offer), ("c", batch.control)):
                    mask = scored & (action == label)
                    w = weight[mask]
                    if means is None:
                        entry[(head, offer, side)] = (int(mask.sum()), float(w.sum()), float((w * y[mask]).sum()))
                    else:
                        m = means[(day, head, offer, side)]
                        entry[(head, offer, side)] = float((w**2 * (y[mask] - m) ** 2).sum())
    if means is None and predictions:
        values = [v for (head, _), v in predictions.items() if head == "value"]
        out["unscored"] = bool(np.isnan(np.column_stack(values)).all(axis=1).any()) if values else False
    return out


def _add(a, b):
    """Adds two partials of :func:`day_sums` (nested dicts of counts, sums and pairs)."""
    if isinstance(a, dict):
        return {k: (_add(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k))) for k in dict.fromkeys([*a, *b])}
    if isinstance(a, tuple):
        return tuple(_add(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a + b
    if isinstance(a, bool):
        return a or b
    return a + b


def _merge(a: dict, b: dict) -> dict:
    """Adds two partials of :func:`day_sums`; the smallest propensity and the first bad row are
    the smaller of the two."""
    out = _add(a, b)
    if "bad" in a and "bad" in b:
        first = a["bad"] if a["bad"][1] <= b["bad"][1] else b["bad"]
        out["bad"] = (a["bad"][0] + b["bad"][0], first[1], first[2])
    for day, entry in out["days"].items():
        both = [side["days"][day]["p"]["min"] for side in (a, b) if "p" in side["days"].get(day, {})]
        if len(both) == 2:
            entry["p"]["min"] = min(both)
    return out


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
    return monitor_of(LocalEngine(), with_plan_and_scores(LocalEngine(), log, plan, scores), reference, psi_bins,
                      thresholds, pacing, has_scores=scores is not None)


def with_plan_and_scores(engine, log, plan, scores):
    """The log with the deployment file's action, bucket and propensity and the predictions
    looked up by id (a live log's customers need not all be in them)."""
    if plan is not None:
        wanted = {c: n for c, n in (("action", PLAN_ACTION), ("bucket", PLAN_BUCKET), ("propensity", PLAN_P))
                  if c in plan.columns}
        log = engine.join(log, plan, list(wanted), "deployment file", rename=wanted, lookup=True)
    if scores is not None:
        wanted = {f"tau_{head}__{offer}": PREDICTED.format(head=head, offer=offer)
                  for head in ("value", "cost") for offer in log.treatments if f"tau_{head}__{offer}" in scores.columns}
        log = engine.join(log, scores, list(wanted), "predictions file", rename=wanted, lookup=True)
    return log


def monitor_of(engine, log, reference: pd.DataFrame | None = None, psi_bins: int = 10,
               thresholds: Thresholds | None = None, pacing: Pacing | None = None, has_scores: bool = False) -> Monitoring:
    """:func:`monitor` of a log wherever its rows are, the deployment file and the predictions
    already joined (:func:`with_plan_and_scores`): two passes of :func:`day_sums`, then every
    day's entry and alerts."""
    thresholds = (thresholds or Thresholds()).validate()
    if pacing is not None:
        pacing.validate()
    if not isinstance(psi_bins, (int, np.integer)) or psi_bins < 2:
        raise UserError(f"{setting('psi_bins')} must be a whole number ≥ 2, got {psi_bins!r}")
    if not log.columns.time:
        raise UserError(f"monitoring needs a day column ({setting('time')}): the log is read day by day")
    control, offers, labels = log.control, tuple(log.treatments), tuple(log.labels)
    notes, features, binnings, expected = [], [], {}, {}
    if reference is not None:
        features = [f for f in log.features if f in reference.columns]
        skipped = [f for f in log.features if f not in reference.columns]
        if skipped:
            notes.append(f"feature(s) {', '.join(skipped)} are not in the reference log: no drift measured for them")
        binnings = {f: Binning.from_reference(reference[f], psi_bins) for f in features}
        expected = {f: binnings[f].shares(reference[f]) for f in features}
    paced = pacing is not None

    def partial(means=None):
        return lambda batch: day_sums(batch, offers, binnings, thresholds.clip, paced, means)

    sums = engine.reduce(log, partial(), _merge)
    if "bad" in sums:
        count, _, example = sums["bad"]
        raise UserError(f"day column '{log.columns.time}' has {count} values that are not dates (e.g. {example!r})")
    ordered = sorted(sums["days"])
    means = {(day, head, offer, side): (s[2] / s[1] if s[1] else 0.0) for day in ordered
             for key, s in sums["days"][day].items() if isinstance(key, tuple) and len(key) == 3
             for head, offer, side in [key]}
    squares = engine.reduce(log, partial(means), _merge)["days"] if means else {}
    if not has_scores:
        notes.append("no predictions given: calibration drift and the outstanding liability are not measured")
    elif sums.get("unscored"):
        notes.append("some customers of the log have no prediction: they are left out of the calibration check")
    has_cost = log.columns.cost is not None or bool(log.columns.action_cost)
    out_days, alerts, spent = [], [], 0.0
    outstanding = [sums["days"][day].get("outstanding", 0.0) for day in ordered]
    for k, day in enumerate(ordered, start=1):
        entry_sums = sums["days"][day]
        entry = _day_entry(day, k, entry_sums, squares.get(day, {}), labels, control, offers, has_cost, expected,
                           binnings, thresholds, alerts)
        if pacing is not None and has_cost:
            spent += entry["spend"]
            # offers sent in the last redemption_days days up to day k may still be redeemed
            liability = float(np.sum(outstanding[max(0, k - pacing.redemption_days):k])) if has_scores else None
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


def _day_entry(day, k, s, squares, labels, control, offers, has_cost, expected, binnings, thresholds, alerts) -> dict:
    """One day's entry of the contract's JSON from its sums (alerts appended to ``alerts``)."""
    n, counts = s["n"], s["counts"]
    entry = {"day": day, "n": n, "counts": counts, "spend": s["spend"] if has_cost else None,
             "psi": {}, "calibration": {},  # filled when a reference log / predictions are given
             "shares": {"no_offer": counts[control] / n}}
    if "buckets" in s:
        for name in ("plan", "explore", "holdout"):
            entry["shares"][name] = float(s["buckets"][name] / n)
    if "planned" in s:  # sends against the plan
        volume = {}
        for label in labels:
            expected_n = s["planned"][label]
            volume[label] = {"planned": expected_n, "sent": counts[label]}
            if expected_n >= thresholds.min_rows:
                gap = (counts[label] - expected_n) / expected_n
                if abs(gap) > thresholds.volume_tolerance:
                    alerts.append(Alert(day, "volume", label, gap, thresholds.volume_tolerance,
                                        f"'{label}' sent to {counts[label]:,} customers against {expected_n:,} "
                                        f"planned ({gap:+.0%})"))
        entry["volume"] = volume
    for f, binning in binnings.items():  # feature drift
        value_psi = psi(expected[f], binning.shares_from_counts(s["bins"][f], n))
        entry["psi"][f] = value_psi
        if value_psi >= thresholds.psi_alert:
            alerts.append(Alert(day, "feature_drift", f, value_psi, thresholds.psi_alert,
                                f"feature '{f}' shifted against the training log (PSI {value_psi:.3f}, "
                                f"{psi_band(value_psi)})"))
    if "p" in s and s["p"]["finite"]:  # propensities: overlap of the randomisation
        p = s["p"]
        below = float(p["below"] / p["finite"])
        entry["propensity"] = {"min": p["min"], "share_below_clip": below,
                               "mean_by_action": {label: float(total / count) for label, (total, count) in p["by_action"].items()
                                                  if counts[label]}}
        if below > 0:
            alerts.append(Alert(day, "overlap", "propensity", below, thresholds.clip,
                                f"{below:.1%} of the day's customers were logged with a propensity below "
                                f"{thresholds.clip:g} (lowest {p['min']:.2g}): off-policy estimates lean on few rows"))
    for offer in offers:  # calibration drift on the randomised customers
        if ("value", offer, "t") not in s:
            continue
        predicted_sum, scored = s[("predicted", offer)]
        check = uplift_check_from_sums(s, squares, "value", offer, predicted_sum / scored if scored else float("nan"),
                                       thresholds.calibration_z, thresholds.min_rows)
        if check is None:
            continue
        if has_cost and ("cost", offer, "t") in s:
            check["cost"] = uplift_check_from_sums(s, squares, "cost", offer, s[("predicted_cost", offer)] / scored,
                                                   thresholds.calibration_z, thresholds.min_rows)
        entry["calibration"][offer] = check
        for head, result in (("value", check), ("cost", check.get("cost"))):
            if result and result["alert"]:
                alerts.append(Alert(day, "calibration", f"{offer} · {head}", result["observed"], thresholds.calibration_z,
                                    f"'{offer}' {head} uplift observed {result['observed']:.3g} "
                                    f"(95% CI {result['ci_low']:.3g} to {result['ci_high']:.3g}) against "
                                    f"{result['predicted']:.3g} predicted ({result['z']:+.1f} standard errors)"))
    return entry


def uplift_check_from_sums(s: dict, squares: dict, head: str, offer: str, predicted: float, z_alert: float,
                           min_rows: int, alpha: float = 0.05):
    """:func:`uplift_check` from a day's sums: each arm's rows, Σw, Σw·y and Σw²(y − mean)²."""
    (n_t, w_t, wy_t), (n_c, w_c, wy_c) = s[(head, offer, "t")], s[(head, offer, "c")]
    if n_t < 2 or n_c < 2:
        return None
    mean_t, mean_c = float(wy_t / w_t), float(wy_c / w_c)
    var_t, var_c = float(squares[(head, offer, "t")] / w_t**2), float(squares[(head, offer, "c")] / w_c**2)
    observed, se = mean_t - mean_c, float(np.sqrt(var_t + var_c))
    z = stats.norm.ppf(1 - alpha / 2)
    out = {"predicted": float(predicted), "observed": observed, "ci_low": observed - z * se,
           "ci_high": observed + z * se, "se": se, "n_offer": int(n_t), "n_control": int(n_c)}
    enough = n_t >= min_rows and n_c >= min_rows
    out["z"] = float((observed - out["predicted"]) / se) if se > 0 else 0.0
    out["alert"] = bool(enough and se > 0 and abs(out["z"]) > z_alert)
    return out
