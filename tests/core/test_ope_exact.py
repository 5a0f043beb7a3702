"""Issue 24, item 12: OPE intervals at a chosen alpha are the alpha/2 and 1 − alpha/2
percentiles of replicates built from the keyed Poisson counts, and a bootstrap of fewer than 2
resamples is refused (``ope --bootstrap 1`` exits 2 with an ``error:`` line)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.ope.estimators import ESTIMATORS, estimate
from core.resample import poisson_counts

N, B, SEED = 120, 400, 7


def _bandit(seed: int = 1):
    rng = np.random.default_rng(seed)
    p = rng.choice([0.04, 0.2, 0.5], N)
    y = rng.gamma(2.0, 2.0, N)
    pi_logged = rng.uniform(0, 1, N)
    q_logged = y + rng.normal(0, 1.0, N)
    q_policy = rng.uniform(2.0, 6.0, N)
    return y, p, pi_logged, q_logged, q_policy


def _hand_replicates(y, p, pi_logged, q_logged, q_policy, clip, tau):
    w = pi_logged / np.maximum(p, clip)
    k = poisson_counts(np.arange(N), np.arange(B), SEED)  # B × N counts, keyed by row position
    n_b = k.sum(axis=1)  # Σ k per resample
    dm = (k @ q_policy) / n_b
    correction = k @ (w * (y - q_logged))
    return {"ips": (k @ (w * y)) / n_b,
            "snips": (k @ (w * y)) / (k @ w),
            "dm": dm,
            "dr": dm + correction / n_b,
            "sndr": dm + correction / (k @ w),
            "switch-dr": dm + (k @ (w * (y - q_logged) * (w <= tau))) / n_b}


@pytest.mark.parametrize("alpha", [0.1, 0.05])
def test_interval_bounds_are_the_percentiles_of_the_keyed_poisson_replicates(alpha):
    data = _bandit()
    clip, tau = 0.1, 4.0
    result = estimate(*data, clip=clip, tau=tau, n_boot=B, alpha=alpha, seed=SEED)
    reps = _hand_replicates(*data, clip=clip, tau=tau)
    assert result.share_clipped == pytest.approx(np.mean(data[1] < clip), rel=1e-15)
    for name in ESTIMATORS:
        e = result.estimates[name]
        assert e.ci_low == pytest.approx(np.percentile(reps[name], 100 * alpha / 2), rel=1e-10), name
        assert e.ci_high == pytest.approx(np.percentile(reps[name], 100 * (1 - alpha / 2)), rel=1e-10), name
        assert e.se == pytest.approx(np.std(reps[name], ddof=1), rel=1e-10), name
    if alpha == 0.1:  # the 90% interval is strictly inside the 95% one on these replicates
        assert result.estimates["ips"].ci_low > np.percentile(reps["ips"], 2.5)


def _log_csv(path):
    rng = np.random.default_rng(3)
    n = 90
    arm = np.tile(["ctl", "a", "b"], n // 3)
    frame = pd.DataFrame({"arm": arm, "y": rng.gamma(2.0, 3.0, n) + (arm == "a"), "p": rng.choice([0.25, 1 / 3, 0.4], n)})
    frame.to_csv(path, index=False)
    return frame


def _ope(path, *extra):
    return ["ope", "--data", str(path), "--action", "arm", "--control", "ctl", "--value", "y", "--propensity", "p",
            "--estimators", "ips,snips", "--policy-name", "treat-all:a", *map(str, extra)]


def test_ope_cli_refuses_a_single_resample_and_uses_alpha(tmp_path, capsys):
    frame = _log_csv(tmp_path / "log.csv")
    assert main(_ope(tmp_path / "log.csv", "--bootstrap", 1)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "--bootstrap" in err and "got 1" in err
    # 2 resamples is the smallest bootstrap accepted
    assert main(_ope(tmp_path / "log.csv", "--bootstrap", 2)) == 0
    capsys.readouterr()
    # --alpha 0.1: the 5th and 95th percentiles of replicates keyed by row position (no --id)
    assert main(_ope(tmp_path / "log.csv", "--bootstrap", 300, "--alpha", 0.1, "--seed", 4)) == 0
    result = json.loads(capsys.readouterr().out)
    w = (frame["arm"] == "a").to_numpy() / frame["p"].to_numpy()
    y = frame["y"].to_numpy()
    k = poisson_counts(np.arange(len(frame)), np.arange(300), 4)
    ips = (k @ (w * y)) / k.sum(axis=1)
    snips = (k @ (w * y)) / (k @ w)
    for name, reps in (("ips", ips), ("snips", snips)):
        got = result["estimates"][name]
        assert got["ci_low"] == pytest.approx(np.percentile(reps, 5), rel=1e-10), name
        assert got["ci_high"] == pytest.approx(np.percentile(reps, 95), rel=1e-10), name
    assert result["estimates"]["ips"]["value"] == pytest.approx(np.mean(w * y), rel=1e-12)
