"""The Spark engine prints the local engine's JSON (floats equal to 1e-9 relative), on the
simulator and on Hillstrom, and refuses bad inputs with exit 2.

PySpark runs in local mode (``local[2]``, one JVM for the whole module).  CI installs Java when
it is missing (``.ci/run``) and sets ``UPLIFT_REQUIRE_SPARK=1``, so these tests never skip there.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from tests.conftest import HILLSTROM

if not (shutil.which("java") or os.environ.get("JAVA_HOME")) and not os.environ.get("UPLIFT_REQUIRE_SPARK"):
    pytest.skip("no Java runtime: the Spark engine's tests need one (CI installs it)", allow_module_level=True)
pytest.importorskip("pyspark")
os.environ.setdefault("UPLIFT_SPARK_PARTITIONS", "4")  # small logs: fewer, fuller partitions (still several)

SPARK = ["--engine", "spark", "--spark-master", "local[2]"]
SIM = ["--action", "offer", "--control", "no_offer", "--value", "revenue", "--cost", "incentive_cost",
       "--propensity", "propensity"]
HILL = ["--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail", "--value", "spend",
        "--action-cost", "Mens E-Mail=0.5,Womens E-Mail=0.4"]
VOLATILE = {"seconds", "allocation_path"}
SHARED_WORKSPACE = True  # the module's fitted model loads in every test (see tests/conftest.py)


def run(capsys, *args) -> tuple[int, dict | None, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def differences(a, b, path="") -> list:
    """Where two JSON objects differ: keys, lengths, text, or floats beyond 1e-9 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [(path, "keys", sorted(set(a) ^ set(b)))] if set(a) != set(b) else []
        return out + [d for k in set(a) & set(b) - VOLATILE for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        out = [(path, "length", len(a), len(b))] if len(a) != len(b) else []
        return out + [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        same = a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return [] if same else [(path, a, b)]
    return [] if a == b else [(path, a, b)]


def same_json(capsys, *args) -> dict:
    """Run a command with each engine; assert both print the same JSON; return it."""
    code_local, local, err_local = run(capsys, *args)
    assert code_local == 0, err_local
    code_spark, spark, err_spark = run(capsys, *args, *SPARK)
    assert code_spark == 0, err_spark
    assert differences(local, spark) == []
    return local


@pytest.fixture(scope="module")
def sim(tmp_path_factory, module_workspace):
    """A simulated log as a Parquet folder of three files (several Spark partitions) and a T-learner's
    out-of-fold predictions of it."""
    from core.simulate import simulate

    folder = tmp_path_factory.mktemp("spark_sim")
    frame = simulate(3000, seed=21).log
    logs = folder / "log"
    logs.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(logs / f"part-{i}.parquet", index=False)
    code = main(["fit", "--data", str(logs), *SIM, "--learner", "t", "--folds", "2", "--tuning", "fixed",
                 "--predictions-out", str(folder / "oof.csv"), "--model-out", str(folder / "model.bin")])
    assert code == 0
    yield {"folder": folder, "log": logs, "frame": frame, "scores": folder / "oof.csv", "model": folder / "model.bin"}
    from core.engines.spark.session import stop_sessions

    stop_sessions()


def test_srm_counts_on_spark_equal_the_local_ones(capsys, sim):
    out = same_json(capsys, "srm", "--data", sim["log"], *SIM, "--by", "lifecycle")
    assert sum(out["observed"].values()) == 3000
    assert set(out["propensity_check"]) >= {"chi2", "p_value"}


def test_overlap_and_balance_on_spark_equal_the_local_ones(capsys, sim):
    out = same_json(capsys, "overlap", "--data", sim["log"], *SIM, "--id", "customer_id", "--segment", "lifecycle",
                    "--time", "send_date", "--check-logged", "--folds", 2)
    assert out["propensity_source"] == "logged" and "disagreement_rows" in out
    assert {"channel_app", "tenure_months", "age"} <= set(out["smd"]) and "smd_weighted" in out


def test_readout_on_spark_equals_the_local_one(capsys, sim):
    out = same_json(capsys, "readout", "--data", sim["log"], *SIM)
    assert out["coupon_20"]["cpi"]["cpi"] == pytest.approx(out["coupon_20"]["cost"]["effect"] / out["coupon_20"]["value"]["effect"])
    cuped = same_json(capsys, "readout", "--data", sim["log"], *SIM, "--cuped", "pre_revenue", "--alpha", "0.1")
    assert cuped["coupon_20"]["value"]["cuped"]["se"] < cuped["coupon_20"]["value"]["se"]  # the covariate helps


def test_monitor_on_spark_equals_the_local_one(capsys, sim):
    plan, scores = sim["folder"] / "plan.csv", sim["folder"] / "scores_by_id.csv"
    ids = sim["frame"]["customer_id"]
    pd.DataFrame({"id": ids, "action": sim["frame"]["offer"], "bucket": "plan"}).to_csv(plan, index=False)
    pd.read_csv(sim["scores"]).assign(id=ids).to_csv(scores, index=False)
    out = same_json(capsys, "monitor", "--data", sim["log"], *SIM, "--segment", "lifecycle", "--time", "send_date",
                    "--id", "customer_id", "--scores", scores, "--plan", plan, "--reference", sim["log"] / "part-0.parquet",
                    "--budget", "5000", "--campaign-days", "14")
    assert len(out["days"]) == sim["frame"]["send_date"].nunique() and out["days"][0]["psi"] and out["days"][0]["pacing"]


def test_ope_with_bootstrap_intervals_on_spark_equals_the_local_engine(capsys, sim):
    out = same_json(capsys, "ope", "--data", sim["log"], *SIM, "--policy-name", "treat-all:coupon_20",
                    "--bootstrap", 200, "--seed", 4)
    assert set(out["estimates"]) == {"ips", "snips", "dm", "dr", "sndr", "switch-dr"}
    assert out["estimates"]["dr"]["ci_low"] < out["estimates"]["dr"]["value"] < out["estimates"]["dr"]["ci_high"]
    same_json(capsys, "ope", "--data", sim["log"], *SIM, "--policy-name", "logging", "--estimators", "ips,snips",
              "--clip", 0.05, "--bootstrap", 100)


def test_ope_of_a_policy_file_joined_on_id_is_the_same_on_spark(capsys, sim):
    frame = sim["frame"]
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), len(frame))
    policy = pd.DataFrame({"id": frame["customer_id"], **{f"prob__{a}": probs[:, j] for j, a in
                           enumerate(["no_offer", "pct10_off", "free_shipping", "coupon_20"])}})
    path = sim["folder"] / "policy.csv"
    policy.sample(frac=1.0, random_state=2).to_csv(path, index=False)  # joined on id, not by position
    out = same_json(capsys, "ope", "--data", sim["log"], *SIM, "--id", "customer_id", "--policy", path,
                    "--estimators", "ips,snips", "--bootstrap", 150)
    assert out["policy"] == str(path)


def test_evaluate_on_spark_equals_the_local_engine(capsys, sim):
    out = same_json(capsys, "evaluate", "--data", sim["log"], *SIM, "--scores", sim["scores"])
    assert set(out) == {"pct10_off", "free_shipping", "coupon_20"}
    assert len(out["coupon_20"]["calibration"]) == 10 and "aucc" in out["coupon_20"]


@pytest.mark.parametrize("budget", [300.0, 2500.0])
def test_allocate_fast_frontier_on_spark_equals_the_local_one(capsys, sim, budget):
    local_csv, spark_csv = sim["folder"] / "local.csv", sim["folder"] / "spark.csv"
    args = ["allocate", "--scores", sim["scores"], "--budget", budget, "--method", "fast", "--control", "no_offer"]
    code, local, err = run(capsys, *args, "--allocation-out", local_csv)
    assert code == 0, err
    code, spark, err = run(capsys, *args, "--allocation-out", spark_csv, *SPARK)
    assert code == 0, err
    assert differences(local, spark) == [] and local["method"] == "fast"
    a, b = pd.read_csv(local_csv), pd.read_csv(spark_csv)
    pd.testing.assert_frame_equal(a[["id", "action", "reason"]], b[["id", "action", "reason"]])
    np.testing.assert_allclose(b["score"], a["score"], rtol=1e-9, atol=1e-12)
    assert local["total_cost"] <= budget


def test_allocate_exact_and_per_send_costs_on_spark_equal_the_local_ones(capsys, sim):
    out = same_json(capsys, "allocate", "--scores", sim["scores"], "--budget", 500, "--control", "no_offer")
    assert out["method"] == "exact"
    out = same_json(capsys, "allocate", "--scores", sim["scores"], "--budget", 400, "--offer-cost", 1, "--method", "fast",
                    "--control", "no_offer")
    assert sum(v for k, v in out["counts"].items() if k != "no_offer") <= 400


def test_scoring_on_spark_writes_the_local_predictions(capsys, sim):
    local_csv, spark_csv = sim["folder"] / "pred_local.csv", sim["folder"] / "pred_spark.csv"
    args = ["predict", "--model", sim["model"], "--data", sim["log"]]
    code, local, err = run(capsys, *args, "--predictions-out", local_csv)
    assert code == 0, err
    code, spark, err = run(capsys, *args, "--predictions-out", spark_csv, *SPARK)
    assert code == 0, err
    assert spark["n_rows"] == local["n_rows"] == 3000 and spark["labels"] == local["labels"]
    a, b = pd.read_csv(local_csv), pd.read_csv(spark_csv)
    assert list(a.columns) == list(b.columns) and a.columns[0] == "id"
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


@pytest.fixture(scope="module")
def hillstrom_scores(tmp_path_factory):
    """Scores for Hillstrom's customers with many ties (two decimals), as a model would give."""
    rng = np.random.default_rng(5)
    n = 64_000
    scores = pd.DataFrame({"tau_value__Mens E-Mail": np.round(rng.normal(0.8, 1.0, n), 2),
                           "tau_value__Womens E-Mail": np.round(rng.normal(0.4, 1.0, n), 2),
                           "tau_cost__Mens E-Mail": 0.5, "tau_cost__Womens E-Mail": 0.4})
    path = tmp_path_factory.mktemp("hillstrom") / "scores.csv"
    scores.to_csv(path, index=False)
    return path


def test_hillstrom_srm_ope_evaluate_allocate_are_the_same_on_spark(capsys, sim, hillstrom_scores):
    out = same_json(capsys, "srm", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail", "--by", "channel")
    assert sum(out["observed"].values()) == 64_000
    out = same_json(capsys, "overlap", *HILL, "--folds", 2)
    assert out["propensity_source"] == "estimated" and "history_segment_1) $0 - $100" in out["smd"]
    out = same_json(capsys, "readout", *HILL)
    assert out["Womens E-Mail"]["cost"]["effect"] == pytest.approx(0.4)
    out = same_json(capsys, "ope", *HILL, "--policy-name", "treat-all:Womens E-Mail", "--estimators", "ips,snips",
                    "--bootstrap", 100)
    assert out["propensity_source"] == "estimated"
    out = same_json(capsys, "evaluate", *HILL, "--scores", hillstrom_scores)
    assert set(out) == {"Mens E-Mail", "Womens E-Mail"}
    out = same_json(capsys, "allocate", "--scores", hillstrom_scores, "--budget", 3000, "--control", "No E-Mail")
    assert out["method"] == "fast"  # 64,000 customers × 2 offers is beyond the exact solver's size


def test_an_unreachable_master_is_a_clear_error(capsys):
    code, _, err = run(capsys, "srm", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail",
                       "--engine", "spark", "--spark-master", "spark://127.0.0.1:9")
    assert code == 2
    assert err.startswith("error: --spark-master 'spark://127.0.0.1:9' cannot be reached (127.0.0.1:9: "), err
    code, _, err = run(capsys, "srm", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail",
                       "--engine", "spark", "--spark-master", "mesos://x")
    assert code == 2 and "is not a Spark master URL" in err, err


@pytest.mark.parametrize("engine", [[], SPARK])
def test_parquet_files_with_different_schemas_are_refused_naming_the_file(capsys, tmp_path, engine):
    folder = tmp_path / "days"
    folder.mkdir()
    pd.DataFrame({"offer": ["a", "b"], "revenue": [1.0, 2.0]}).to_parquet(folder / "day1.parquet")
    pd.DataFrame({"offer": ["a", "b"], "revenue": ["1", "2"]}).to_parquet(folder / "day2.parquet")
    code, _, err = run(capsys, "srm", "--data", folder, "--action", "offer", "--control", "a", *engine)
    assert code == 2
    assert err.startswith(f"error: file '{folder / 'day2.parquet'}' in folder '{folder}' has a different schema from "
                          f"'{folder / 'day1.parquet'}': 'revenue' is string, not double"), err
    code, _, err = run(capsys, "srm", "--data", tmp_path / "nothing-*.parquet", "--action", "offer", "--control", "a", *engine)
    assert code == 2 and "matches no file" in err, err


def test_data_page_reads_a_parquet_path_on_spark_and_says_when_it_samples(sim, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core.engines import base, open_engine
    from tests.conftest import ROOT

    monkeypatch.setenv("UPLIFT_ENGINE", "spark")
    monkeypatch.setenv("UPLIFT_SPARK_MASTER", "local[2]")
    monkeypatch.setattr(base, "FIT_ROWS", 1000)  # the app keeps at most this many rows on one machine
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    radio = [r for r in at.radio if r.label == "Start from"][0]
    assert "Parquet path (Spark)" in radio.options
    radio.set_value("Parquet path (Spark)").run()
    [t for t in at.text_input if t.label == "Parquet path"][0].set_value(str(sim["log"])).run()
    [b for b in at.button if b.label == "Read on Spark"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    info = " ".join(i.value for i in at.info)
    assert "The log has 3,000 rows" in info and "--engine spark --spark-master local[2]" in info
    kept = int(info.split("a fixed sample of ")[1].split(" rows")[0].replace(",", ""))
    assert abs(kept - 1000) < 4 * np.sqrt(3000 * (1 / 3) * (2 / 3))  # Binomial(3000, 1/3) rows kept
    frame, n = open_engine("spark", "local[2]").sample_frame(str(sim["log"]), 1000)
    assert n == 3000 and len(frame) == kept  # the same sample every time
    pd.testing.assert_frame_equal(frame, sim["frame"].loc[sim["frame"]["customer_id"].isin(frame["customer_id"])]
                                  .reset_index(drop=True), check_dtype=False)
    # a path that is not Parquet is refused in the page, naming it
    [t for t in at.text_input if t.label == "Parquet path"][0].set_value(str(sim["scores"])).run()
    [b for b in at.button if b.label == "Read on Spark"][0].click().run()
    assert "is not a Parquet file, folder or pattern" in " ".join(e.value for e in at.error)


def test_fit_on_spark_reads_there_and_fits_on_this_machine(capsys, sim, monkeypatch):
    from core.engines import base

    args = ["fit", "--data", sim["log"], *SIM, "--learner", "t", "--folds", 2, "--tuning", "fixed"]
    code, local, err = run(capsys, *args, "--predictions-out", sim["folder"] / "fit_local.csv")
    assert code == 0, err
    code, spark, err = run(capsys, *args, "--predictions-out", sim["folder"] / "fit_spark.csv", *SPARK)
    assert code == 0, err
    assert "fitting on this machine" not in err and "sample" not in err  # every row, as locally
    assert spark["n_rows"] == local["n_rows"] == 3000
    pd.testing.assert_frame_equal(pd.read_csv(sim["folder"] / "fit_local.csv"), pd.read_csv(sim["folder"] / "fit_spark.csv"))
    monkeypatch.setattr(base, "FIT_ROWS", 1200)
    code, sampled, err = run(capsys, *args, *SPARK)
    assert code == 0, err
    assert "of the log's 3,000 rows (a fixed sample drawn where the log is)" in err
    assert abs(sampled["n_rows"] - 1200) < 4 * np.sqrt(3000 * 0.4 * 0.6)


@pytest.mark.parametrize("command,extra", [("describe", []), ("design", ["--mde", "0.5"])])
def test_commands_that_summarise_on_this_machine_print_the_local_json_on_spark(capsys, command, extra):
    out = same_json(capsys, command, "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail",
                    "--value", "spend", *extra)
    assert out["n_rows" if command == "describe" else "n_control"] > 0
