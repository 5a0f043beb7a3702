"""Issue 24, item 13: CLI options change exactly the quantity they name.

- ``readout --alpha 0.1 --cuped COL``: the CUPED interval is effect ± z₀.₉₅·SE (as is the plain one);
- ``monitor --redemption-days R``: the liability sums the last R days' outstanding cost;
- ``monitor --psi-bins N``: PSI over the reference's N quantile bins.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.cli import main


def _run(capsys, *args) -> dict:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


# --- readout --alpha --cuped -----------------------------------------------------------------

def _readout_log(path):
    rng = np.random.default_rng(6)
    n = 120
    arm = np.tile(["ctl", "a"], n // 2)
    x = rng.normal(20.0, 4.0, n)
    y = 3.0 + np.where(arm == "a", 1.2, 0.7) * x + (arm == "a") * 2.0 + rng.normal(0, 3.0, n)
    frame = pd.DataFrame({"arm": arm, "y": y, "x": x})
    frame.to_csv(path, index=False)
    return frame


def _hand_cuped(frame):
    """Per arm: y − θ_a (x − x̄), θ_a the OLS slope within the arm, x̄ the mean of all rows."""
    x_bar = frame["x"].mean()
    out = {}
    for arm, rows in frame.groupby("arm"):
        x, y = rows["x"].to_numpy(), rows["y"].to_numpy()
        theta = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
        adjusted = y - theta * (x - x_bar)
        out[arm] = (adjusted.mean(), adjusted.var(ddof=1) / len(adjusted))
    effect = out["a"][0] - out["ctl"][0]
    return effect, np.sqrt(out["a"][1] + out["ctl"][1])


@pytest.mark.parametrize("alpha", [0.1, 0.01])
def test_readout_alpha_sets_the_cuped_interval(tmp_path, capsys, alpha):
    frame = _readout_log(tmp_path / "log.csv")
    result = _run(capsys, "readout", "--data", tmp_path / "log.csv", "--action", "arm", "--control", "ctl", "--value", "y",
                  "--features", "x", "--cuped", "x", "--alpha", alpha)
    value = result["a"]["value"]
    cuped = value["cuped"]
    z = stats.norm.ppf(1 - alpha / 2)
    effect, se = _hand_cuped(frame)
    assert cuped["covariate"] == "x"
    assert cuped["effect"] == pytest.approx(effect, rel=1e-10)
    assert cuped["se"] == pytest.approx(se, rel=1e-10)
    assert cuped["ci_low"] == pytest.approx(effect - z * se, rel=1e-10)
    assert cuped["ci_high"] == pytest.approx(effect + z * se, rel=1e-10)
    # the plain interval uses the same quantile
    t, c = frame["y"][frame["arm"] == "a"], frame["y"][frame["arm"] == "ctl"]
    plain_se = np.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
    assert value["effect"] == pytest.approx(t.mean() - c.mean(), rel=1e-10)
    assert value["ci_high"] - value["effect"] == pytest.approx(z * plain_se, rel=1e-9)
    assert se < plain_se


# --- monitor --redemption-days --psi-bins ------------------------------------------------------

DAYS = ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04"]


def _monitor_files(tmp_path):
    rng = np.random.default_rng(9)
    per_day = 10
    n = per_day * len(DAYS)
    arm = np.tile(["ctl", "a"], n // 2)
    f = np.round(rng.uniform(0, 110, n), 1)
    f[[3, 17]] = np.nan  # a missing value is its own bin
    f[[5, 25]] = 50.5  # on a quartile edge: bins are right-closed
    live = pd.DataFrame({"cid": [f"u{i}" for i in range(n)], "day": np.repeat(DAYS, per_day), "arm": arm,
                         "y": rng.gamma(2.0, 2.0, n), "spend": np.where(arm == "a", rng.choice([0.0, 2.0, 9.0], n), 0.0), "f": f})
    live.to_csv(tmp_path / "live.csv", index=False)
    scores = pd.DataFrame({"id": live["cid"], "tau_value__a": rng.normal(1, 1, n), "tau_cost__a": rng.uniform(2, 6, n)})
    scores.to_csv(tmp_path / "scores.csv", index=False)
    pd.DataFrame({"f": np.arange(1, 101, dtype=float)}).to_csv(tmp_path / "reference.csv", index=False)
    return live, scores


def _monitor_args(tmp_path, *extra):
    return ["monitor", "--data", tmp_path / "live.csv", "--action", "arm", "--control", "ctl", "--value", "y",
            "--cost", "spend", "--time", "day", "--id", "cid", "--features", "f", "--scores", tmp_path / "scores.csv",
            "--reference", tmp_path / "reference.csv", "--budget", 500, "--campaign-days", 5, *extra]


def _hand_psi(values: np.ndarray, inner_edges: list[float]) -> float:
    """Shares of the reference 1..100 and of ``values`` over (−∞, e1], (e1, e2], …, (ek, ∞) and missing."""
    def shares(v):
        counts = np.zeros(len(inner_edges) + 2)
        for item in v:
            if np.isnan(item):
                counts[-1] += 1
            else:
                counts[sum(item > e for e in inner_edges)] += 1
        return counts / len(v)

    e = np.maximum(shares(np.arange(1, 101, dtype=float)), 1e-4)
    a = np.maximum(shares(values), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def test_monitor_psi_bins_and_redemption_days_change_what_they_name(tmp_path, capsys):
    live, scores = _monitor_files(tmp_path)
    result = _run(capsys, *_monitor_args(tmp_path, "--psi-bins", 4, "--redemption-days", 2))
    default = _run(capsys, *_monitor_args(tmp_path))
    quartiles = [25.75, 50.5, 75.25]  # of 1..100, linear interpolation
    deciles = [10.9, 20.8, 30.7, 40.6, 50.5, 60.4, 70.3, 80.2, 90.1]
    outstanding = np.where(live["arm"] == "a", np.maximum(scores["tau_cost__a"] - live["spend"], 0.0), 0.0)
    per_day = [float(outstanding[(live["day"] == d).to_numpy()].sum()) for d in DAYS]
    for k, day in enumerate(DAYS, start=1):
        values = live.loc[live["day"] == day, "f"].to_numpy()
        four, ten = _hand_psi(values, quartiles), _hand_psi(values, deciles)
        assert result["days"][k - 1]["psi"]["f"] == pytest.approx(four, rel=1e-10), day
        assert default["days"][k - 1]["psi"]["f"] == pytest.approx(ten, rel=1e-10), day
        assert abs(four - ten) > 1e-3
        assert result["days"][k - 1]["pacing"]["liability"] == pytest.approx(sum(per_day[max(0, k - 2):k]), rel=1e-12), day
        assert default["days"][k - 1]["pacing"]["liability"] == pytest.approx(sum(per_day[:k]), rel=1e-12), day
        # nothing else moves with these two options
        assert result["days"][k - 1]["pacing"]["spent"] == default["days"][k - 1]["pacing"]["spent"]
        assert result["days"][k - 1]["calibration"] == default["days"][k - 1]["calibration"]
    assert sum(per_day[1:3]) != pytest.approx(sum(per_day[:3])), "the window matters on day 3"
