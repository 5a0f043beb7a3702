"""The commands of the headless CLI (cli-contract.md), one module each.

A command module ``core.commands.<name>`` has ``add_arguments(parser)`` (its options) and
``run(options)``, which returns the JSON object the command prints.  It reads rows through one
engine (:func:`core.commands.common.engine_of`) and calls core's domain functions, the same
ones the app and the report call.  :data:`REGISTRY` lists them with their one-line help, in the
order ``--help`` shows them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

REGISTRY = {
    "simulate": "write a simulated campaign log and its ground truth",
    "describe": "validate a log and summarise it per arm (roles not given are auto-detected)",
    "srm": "sample-ratio mismatch: arm counts against the intended split",
    "overlap": "propensity overlap (ESS, clipping) and covariate balance (SMD)",
    "fit": "fit an uplift model: value and cost heads for every offer, cross-fitted",
    "predict": "score new customers with a model written by fit --model-out",
    "evaluate": "Qini / AUUC / cost curve / calibration of uplift scores, per arm",
    "allocate": "allocate offers under a budget (and CPI threshold, caps) from predictions",
    "ope": "off-policy value and cost of a policy: IPS, SNIPS, DM, DR, SNDR, Switch-DR",
    "readout": "average effect of every offer on value and cost against control, with CPI",
    "design": "customers needed per arm for the next test (or the effect a given size detects)",
    "deploy": "send a plan with a holdout and exploration: assignment file with exact propensities",
    "report": "self-contained HTML report of a saved scenario (opens offline)",
    "monitor": "a live campaign day by day: volume, spend, drift, calibration, alerts",
}


def command(name: str) -> ModuleType:
    """The module of command ``name``."""
    # deferred: a command imports pandas, SciPy, LightGBM or Plotly; only the one that runs is loaded
    return importlib.import_module(f"{__name__}.{name}")
