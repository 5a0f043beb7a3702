"""Identification diagnostics: SRM, balance, overlap, and the plain readout.

:func:`srm_light`, :func:`balance_light` and :func:`overlap_light` condense them into the three
lights on top of the Diagnostics page; a red light must be acknowledged before models are fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..format import format_p
from .balance import balance
from .overlap import overlap
from .readout import readout
from .srm import propensity_consistency, srm

GREEN, AMBER, RED = "green", "amber", "red"


@dataclass(frozen=True)
class Light:
    name: str
    status: str
    message: str

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message}


def srm_light(srm_result=None, propensity_check=None) -> Light:
    """Red on an SRM alarm (of the propensity check when one ran, else of the split test)."""
    if propensity_check is not None:
        if propensity_check.alarm:
            worst = min(propensity_check.ratio, key=lambda l: -abs(propensity_check.ratio[l] - 1))
            return Light("SRM", RED, f"Arm counts do not fit the logged propensities ({format_p(propensity_check.p_value)}); "
                                     f"'{worst}' is at {propensity_check.ratio[worst]:.1%} of its expected weight. "
                                     "Rows may be missing or propensities logged wrongly.")
        return Light("SRM", GREEN, f"Arm counts fit the logged propensities ({format_p(propensity_check.p_value)}).")
    o = srm_result.overall
    if o.alarm:
        return Light("SRM", RED, f"Sample-ratio mismatch ({format_p(o.p_value)} < {srm_result.alpha:g}): '{o.worst_arm}' is "
                                 f"{o.worst_direction}-represented, {o.worst_observed_share:.2%} observed vs "
                                 f"{o.worst_expected_share:.2%} intended.")
    alarms = [k for k, g in srm_result.by.items() if g.alarm] + [k for k, g in srm_result.days.items() if g.alarm]
    if alarms:
        return Light("SRM", AMBER, f"No overall mismatch ({format_p(o.p_value)}), but {len(alarms)} group(s) alarm: "
                                   + ", ".join(map(str, alarms[:5])))
    return Light("SRM", GREEN, f"Arm counts fit the intended split ({format_p(o.p_value)}).")


def balance_light(balance_result, weighted: bool = True, threshold: float = 0.1, red_above: float = 0.25) -> Light:
    """On the weighted SMDs when ``weighted`` and they exist (a targeted log is imbalanced by
    design; weighting by its logged propensities must restore balance), else on the raw ones."""
    weighted = balance_result.max_abs_smd_weighted if weighted else None
    value = weighted if weighted is not None else balance_result.max_abs_smd
    which = "after inverse-propensity weighting" if weighted is not None else "between arms"
    flagged = balance_result.flagged(weighted is not None)
    if value > red_above:
        return Light("Balance", RED, f"Largest |SMD| {which} is {value:.2f} (> {red_above}): "
                                     f"{flagged.iloc[0]['feature']} in '{flagged.iloc[0]['arm']}'. Randomisation or weighting is broken.")
    if value > threshold:
        return Light("Balance", AMBER, f"{len(flagged)} feature/arm pair(s) with |SMD| > {threshold} {which}; largest {value:.2f}.")
    return Light("Balance", GREEN, f"All |SMD| ≤ {threshold} {which} (largest {value:.3f}).")


def overlap_light(overlap_result, min_ess_ratio: float = 0.3) -> Light:
    share = overlap_result.share_below_clip
    ratios = overlap_result.ess_ratio
    worst = min(ratios, key=ratios.get)
    source = "logged" if overlap_result.propensity_source == "logged" else "estimated"
    if share > 0.05 or ratios[worst] < 0.1:
        return Light("Overlap", RED, f"{share:.1%} of rows have a {source} propensity below {overlap_result.clip:g}; "
                                     f"ESS of '{worst}' is {ratios[worst]:.0%} of its rows. Some customers were almost never sent some offers.")
    if share > 0 or ratios[worst] < min_ess_ratio:
        return Light("Overlap", AMBER, f"{share:.2%} of rows below the clip {overlap_result.clip:g}; smallest ESS ratio "
                                       f"{ratios[worst]:.0%} ('{worst}', {source} propensities).")
    return Light("Overlap", GREEN, f"No {source} propensity below {overlap_result.clip:g}; smallest ESS ratio {ratios[worst]:.0%} ('{worst}').")


DEFAULT_SETTINGS = {"split_mode": "equal", "alpha": 0.001, "clip": 0.01}


def run_diagnostics(log, settings: dict, estimated=None) -> dict:
    """Every diagnostic of ``log`` under the Diagnostics page's ``settings``, and its lights.

    One composition for the page, the report and anyone else: SRM (overall, ``by``, per day),
    the propensity check when the split is "propensity" and propensities are logged, overlap
    (logged, or ``estimated`` n × arms), balance (raw and weighted), the readout (weighted only
    by logged propensities: without them the log is read as randomised) and the three lights.
    """
    settings = {**DEFAULT_SETTINGS, **settings}
    srm_result = srm(log.frame, log.columns.action, control=log.control, weights=settings.get("weights"),
                     alpha=settings["alpha"], by=settings.get("by"), time=log.columns.time)
    check = None
    if log.propensity is not None and settings.get("split_mode") == "propensity":
        check = propensity_consistency(log.action, log.propensity, log.labels, settings["alpha"])
    overlap_result = overlap(log, clip=settings["clip"], estimated=estimated)
    balance_result = balance(log, overlap_result.propensity)
    lights = [srm_light(srm_result, check), balance_light(balance_result, weighted=log.columns.propensity is not None),
              overlap_light(overlap_result)]
    return {"srm": srm_result, "propensity_check": check, "overlap": overlap_result, "balance": balance_result,
            "readout": readout(log, cuped=settings.get("cuped")), "lights": lights}
