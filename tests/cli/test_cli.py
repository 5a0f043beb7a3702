"""The CLI contract: one JSON object on stdout, `error: …` and exit 2 for user errors."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.cli import main
from tests.conftest import HILLSTROM, ROOT

CONTRACT_COMMANDS = ["simulate", "srm", "overlap", "fit", "predict", "evaluate", "allocate", "ope", "readout", "design", "deploy",
                     "report", "monitor"]


def run_cli(*args):
    """The real entry point, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def call(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_contract_command():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in CONTRACT_COMMANDS:
        assert f"    {command} " in proc.stdout, command


def test_simulate_as_in_the_contract(tmp_path):
    out = tmp_path / "x.parquet"
    proc = run_cli("simulate", "--n", 1000, "--seed", 0, "--out", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= {"rows", "arms", "path", "truth_path"}
    assert result["rows"] == 1000 and result["arms"][0] == "no_offer"
    assert len(pd.read_parquet(out)) == 1000
    assert len(pd.read_parquet(result["truth_path"])) == 1000
    assert proc.stdout.count("\n") == 1, "exactly one JSON object"


def test_unknown_mapped_column_exits_2_naming_it(tmp_path):
    proc = run_cli("describe", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail", "--value", "revenue_total")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "value column 'revenue_total' is not in the file" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["simulate", "--n", "abc", "--out", "x.parquet"], r"^error: argument --n: invalid int value: 'abc'"),
    (["simulate", "--out", "x.parquet", "--bogus"], r"^error: unrecognized arguments: --bogus"),
    (["simulate", "--n", "1000"], r"^error: the following arguments are required: --out"),
    (["simulate", "--n", "1000", "--out", "x.xlsx"], r"^error: output 'x.xlsx' must end in"),
    (["simulate", "--n", "1000", "--out", "x.csv", "--srm-drop", "coupon_20"], r"^error: --srm-drop entry 'coupon_20' is not of the form"),
    (["describe", "--data", "missing.csv"], r"^error: file 'missing.csv' does not exist"),
    (["describe", "--data", HILLSTROM, "--action", "segment", "--control", "Nobody"], r"^error: .*control label 'Nobody' is not an arm of 'segment'"),
    (["describe", "--data", HILLSTROM, "--action", "nope", "--control", "x"], r"^error: .*action column 'nope' is not in the file"),
    (["describe", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail", "--action-cost", "Mens E-Mail=abc"],
     r"^error: --action-cost amount 'abc' for arm 'Mens E-Mail' is not a number"),
    (["nonsense"], r"^error: argument COMMAND: invalid choice: 'nonsense'"),
    ([], r"^error: no command given"),
])
def test_user_errors_exit_2_with_one_error_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = call(capsys, *args)
    assert code == 2
    assert out == ""
    last = err.strip().splitlines()[-1]
    assert pytest.importorskip("re").search(message, last), last
    assert "Traceback" not in err


def test_describe_matches_pandas_on_hillstrom(capsys, tmp_path, hillstrom_frame):
    json_out = tmp_path / "summary.json"
    code, out, err = call(capsys, "describe", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail",
                          "--value", "visit", "--action-cost", "Mens E-Mail=0.1,Womens E-Mail=0.1", "--out", json_out)
    assert code == 0, err
    result = json.loads(out)
    assert json.loads(json_out.read_text()) == result
    assert result["labels"] == ["No E-Mail", "Mens E-Mail", "Womens E-Mail"]
    grouped = hillstrom_frame.groupby("segment")["visit"]
    for arm, stats in result["arms"].items():
        assert stats["n"] == grouped.size()[arm]
        assert stats["mean_value"] == pytest.approx(grouped.mean()[arm], rel=1e-12)
        assert stats["mean_cost"] == pytest.approx(0.0 if arm == "No E-Mail" else 0.1, abs=1e-15)
    assert "visit" not in result["features"] and "spend" in result["features"], "default features: every unmapped column"


def test_describe_auto_detects_the_simulator(capsys, tmp_path):
    path = tmp_path / "log.csv.gz"
    assert call(capsys, "simulate", "--n", 500, "--seed", 1, "--out", path)[0] == 0
    code, out, err = call(capsys, "describe", "--data", path)
    assert code == 0, err
    result = json.loads(out)
    assert result["mapping"]["action"] == "offer" and result["control"] == "no_offer"
    assert result["mapping"]["propensity"] == "propensity" and result["mapping"]["cost"] == "incentive_cost"
    assert sum(a["n"] for a in result["arms"].values()) == 500


def test_one_json_object_with_nan_as_null(capsys, tmp_path):
    import numpy as np

    from core.cli import emit

    target = tmp_path / "out.json"
    emit({"a": float("nan"), "b": np.float64(np.inf), "c": np.int64(3), "d": [np.nan, 1.5], "e": np.bool_(True)}, str(target))
    out = capsys.readouterr().out
    expected = {"a": None, "b": None, "c": 3, "d": [None, 1.5], "e": True}
    assert json.loads(out) == expected and json.loads(target.read_text()) == expected


# --- srm and overlap ---------------------------------------------------------------------------

HILL = ["--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail"]


def test_srm_json_follows_the_contract(capsys, hillstrom_frame):
    from scipy import stats

    code, out, err = call(capsys, "srm", *HILL, "--by", "channel")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"chi2", "dof", "p_value", "alarm", "observed", "expected", "by"}
    counts = hillstrom_frame["segment"].value_counts()
    reference = stats.chisquare([counts[l] for l in result["observed"]])
    assert result["chi2"] == pytest.approx(reference.statistic) and result["p_value"] == pytest.approx(reference.pvalue)
    assert result["dof"] == 2 and result["alarm"] is False
    assert result["observed"] == {l: int(counts[l]) for l in result["observed"]}
    assert set(result["by"]) == {"Phone", "Web", "Multichannel"}
    assert set(result["by"]["Web"]) >= {"n", "chi2", "p_value", "alarm"}


def test_srm_expected_weights_and_alpha(capsys):
    code, out, err = call(capsys, "srm", *HILL, "--expected", "No E-Mail=1,Mens E-Mail=1,Womens E-Mail=2", "--alpha", "0.01")
    assert code == 0, err
    result = json.loads(out)
    assert result["expected"]["Womens E-Mail"] == pytest.approx(32000.0)
    assert result["alarm"] is True and result["p_value"] < 1e-100


def test_srm_on_the_simulator_with_propensity_check(capsys, tmp_path):
    path = tmp_path / "srm.parquet"
    call(capsys, "simulate", "--n", 20000, "--seed", 3, "--out", path, "--srm-drop", "coupon_20=0.25")
    code, out, err = call(capsys, "srm", "--data", path, "--action", "offer", "--control", "no_offer",
                          "--propensity", "propensity", "--time", "send_date")
    assert code == 0, err
    result = json.loads(out)
    assert result["propensity_check"]["alarm"] is True
    assert len(result["days"]) == 14 and len(result["cumulative"]) == 14


@pytest.mark.parametrize("extra,message", [
    (["--expected", "Mens E-Mail=1,Nobody=2"], r"--expected names arm\(s\) 'Nobody'"),
    (["--expected", "No E-Mail=1,Mens E-Mail=0,Womens E-Mail=1"], r"--expected weight for arm 'Mens E-Mail' must be a positive number"),
    (["--expected", "No E-Mail=a"], r"--expected value 'a' for 'No E-Mail' is not a number"),
    (["--by", "history"], r"--by column 'history' has 34,833 distinct values"),
    (["--by", "nope"], r"--by column 'nope' not in the log"),
    (["--value", "nope"], r"value column 'nope' not in the log"),
    (["--alpha", "2"], r"--alpha must be between 0 and 1"),
])
def test_srm_bad_inputs_exit_2(capsys, extra, message):
    import re

    code, out, err = call(capsys, "srm", *HILL, *extra)
    assert code == 2 and out == ""
    assert re.search(message, err) and err.startswith("error: ")


def test_srm_on_a_log_with_one_arm(capsys, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("arm,y\nc,1\nc,2\n")
    code, out, err = call(capsys, "srm", "--data", path, "--action", "arm", "--control", "c")
    assert code == 2 and "the log has 1 arm (c); an SRM check needs at least 2" in err


def test_overlap_json_follows_the_contract(capsys, tmp_path):
    path = tmp_path / "ov.parquet"
    call(capsys, "simulate", "--n", 3000, "--seed", 9, "--out", path)
    code, out, err = call(capsys, "overlap", "--data", path, "--action", "offer", "--control", "no_offer",
                          "--value", "revenue", "--propensity", "propensity",
                          "--features", "tenure_months,email_engagement,channel")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"propensity_source", "clip", "share_below_clip", "min_propensity", "ess", "max_abs_smd", "smd"}
    assert result["propensity_source"] == "logged" and result["clip"] == 0.01
    assert set(result["smd"]) == {"tenure_months", "email_engagement", "channel_app", "channel_store", "channel_web"}
    assert set(result["smd"]["tenure_months"]) == {"coupon_20", "free_shipping", "pct10_off"}
    frame = pd.read_parquet(path)
    rows = frame["offer"] == "coupon_20"
    w = 1 / frame.loc[rows, "propensity"]
    assert result["ess"]["coupon_20"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert result["max_abs_smd"] == pytest.approx(max(abs(v) for f in result["smd"].values() for v in f.values()))


def test_overlap_estimates_missing_propensities_and_says_so(capsys):
    code, out, err = call(capsys, "overlap", *HILL, "--features", "recency,history,channel", "--folds", "2")
    assert code == 0, err
    result = json.loads(out)
    assert result["propensity_source"] == "estimated"
    assert "estimating propensities" in err
    assert all(0.1 < v < 0.34 for v in result["min_propensity"].values()), result["min_propensity"]
    assert result["share_below_clip"] == 0.0


# --- fit and predict -------------------------------------------------------------------------

SIM_OPTIONS = ["--action", "offer", "--control", "no_offer", "--value", "revenue", "--cost", "incentive_cost",
               "--propensity", "propensity", "--id", "customer_id", "--segment", "lifecycle", "--time", "send_date"]


@pytest.fixture(scope="module")
def fitted_files(tmp_path_factory):
    """A real fit through the entry point, in its own workspace."""
    import os

    folder = tmp_path_factory.mktemp("fit")
    env = {**os.environ, "UPLIFT_STUDIO_WORKSPACE": str(folder / "ws.duckdb")}
    data = folder / "log.parquet"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True, env=env)

    assert run("simulate", "--n", 3000, "--seed", 2, "--out", data).returncode == 0
    proc = run("fit", "--data", data, *SIM_OPTIONS, "--learner", "t", "--folds", 2,
               "--model-out", folder / "model.bin", "--predictions-out", folder / "oof.csv")
    return folder, data, proc, run


def test_fit_follows_the_contract(fitted_files):
    folder, data, proc, _ = fitted_files
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= {"learner", "labels", "n_rows", "seconds"}
    assert result["learner"] == "t" and result["n_rows"] == 3000 and result["labels"][0] == "no_offer"
    oof = pd.read_csv(folder / "oof.csv")
    arms = ["coupon_20", "free_shipping", "pct10_off"]
    assert list(oof.columns) == ["id"] + [f"tau_value__{a}" for a in arms] + [f"tau_cost__{a}" for a in arms]
    assert oof["id"].tolist() == pd.read_parquet(data)["customer_id"].tolist()
    assert "fold 2/2" in proc.stderr, "progress goes to stderr"


def test_fit_drm_adds_score_columns_and_evaluate_ranks_by_them(fitted_files, tmp_path):
    folder, data, _, run = fitted_files
    proc = run("fit", "--data", data, *SIM_OPTIONS, "--learner", "drm", "--ranking-scorer", "linear", "--folds", 2,
               "--model-out", tmp_path / "drm.bin", "--predictions-out", tmp_path / "drm.csv")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["learner"] == "drm" and result["ranking"]["scorer"] == "linear"
    assert len(result["ranking"]["fits"]["coupon_20"]) == 2
    arms = ["coupon_20", "free_shipping", "pct10_off"]
    oof = pd.read_csv(tmp_path / "drm.csv")
    assert list(oof.columns) == (["id"] + [f"tau_value__{a}" for a in arms] + [f"tau_cost__{a}" for a in arms]
                                 + [f"score__{a}" for a in arms])
    proc = run("evaluate", "--data", data, *SIM_OPTIONS, "--scores", tmp_path / "drm.csv")
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads(proc.stdout)
    from core.evaluation.curves import aucc, qini_auc_score

    log = pd.read_parquet(data)
    rows = log["offer"].isin(["coupon_20", "no_offer"]).to_numpy()
    t = (log["offer"][rows] == "coupon_20").astype(int).to_numpy()
    w = 1 / log["propensity"].to_numpy()[rows]
    score = oof["score__coupon_20"].to_numpy()[rows]
    assert evaluated["coupon_20"]["qini_normalized"] == pytest.approx(qini_auc_score(log["revenue"].to_numpy()[rows], score, t, w))
    assert evaluated["coupon_20"]["aucc"] == pytest.approx(
        aucc(log["revenue"].to_numpy()[rows], log["incentive_cost"].to_numpy()[rows], score, t, w))
    proc = run("predict", "--model", tmp_path / "drm.bin", "--data", data, "--predictions-out", tmp_path / "p.csv")
    assert proc.returncode == 0, proc.stderr
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == list(oof.columns)


@pytest.mark.parametrize("extra,message", [
    (["--learner", "drm", "--cost", ""], "no cost is mapped"),
    (["--learner", "x", "--cpi-max", "0.5"], "needs --learner cdrm"),
    (["--learner", "cdrm", "--cpi-max", "-1"], "--cpi-max must be a positive number"),
])
def test_ranking_fit_errors_exit_2(fitted_files, extra, message):
    _, data, _, run = fitted_files
    options = list(SIM_OPTIONS)
    if "--cost" in extra:
        i = options.index("--cost")
        del options[i:i + 2]
        extra = [e for e in extra if e not in ("--cost", "")]
    proc = run("fit", "--data", data, *options, *extra, "--folds", 2)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr


def test_predict_scores_new_customers(fitted_files, tmp_path):
    folder, data, _, run = fitted_files
    fresh = tmp_path / "fresh.csv"
    simulate_fresh = run("simulate", "--n", 500, "--seed", 77, "--out", fresh)
    assert simulate_fresh.returncode == 0
    proc = run("predict", "--model", folder / "model.bin", "--data", fresh, "--predictions-out", tmp_path / "p.csv")
    assert proc.returncode == 0, proc.stderr
    predicted = pd.read_csv(tmp_path / "p.csv")
    assert len(predicted) == 500 and predicted["id"].tolist() == pd.read_csv(fresh)["customer_id"].tolist()
    assert json.loads(proc.stdout)["n_rows"] == 500


def test_predict_with_a_missing_feature_exits_2_naming_it(fitted_files, tmp_path):
    folder, data, _, run = fitted_files
    partial = tmp_path / "partial.csv"
    pd.read_parquet(data).drop(columns=["email_engagement"]).to_csv(partial, index=False)
    proc = run("predict", "--model", folder / "model.bin", "--data", partial, "--predictions-out", tmp_path / "p.csv")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: feature column(s) 'email_engagement' missing from the data to score")


def test_predict_cold_start_and_the_allocation_flag(fitted_files, tmp_path):
    """Issue 14, item 3: new customers from an unseen segment or without features get their
    segment's readout effects, flagged in the predictions and the allocation file."""
    folder, data, _, run = fitted_files
    fresh = pd.read_parquet(data).head(200).copy()
    fresh.loc[:9, "lifecycle"] = "vip"
    feature_columns = [c for c in fresh.columns if c not in ("customer_id", "offer", "propensity", "revenue",
                                                             "incentive_cost", "lifecycle", "send_date")]
    fresh.loc[10:14, feature_columns] = np.nan
    path = tmp_path / "fresh.csv"
    fresh.to_csv(path, index=False)
    proc = run("predict", "--model", folder / "model.bin", "--data", path, "--predictions-out", tmp_path / "p.csv")
    assert proc.returncode == 0 and "cold_start" not in pd.read_csv(tmp_path / "p.csv").columns
    proc = run("predict", "--model", folder / "model.bin", "--data", path, "--predictions-out", tmp_path / "p.csv",
               "--cold-start")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cold_start"] == 15
    assert result["cold_start_reasons"] == {"segment not seen in the training log": 10, "every model feature empty": 5}
    predicted = pd.read_csv(tmp_path / "p.csv")
    assert predicted["cold_start"].tolist() == [True] * 15 + [False] * 185
    assert predicted.loc[:9, "tau_value__coupon_20"].nunique() == 1, "one segment-level effect for the unseen segment"
    proc = run("allocate", "--scores", tmp_path / "p.csv", "--budget", 100, "--control", "no_offer",
               "--allocation-out", tmp_path / "plan.csv")
    assert proc.returncode == 0, proc.stderr
    plan = pd.read_csv(tmp_path / "plan.csv")
    assert plan["cold_start"].tolist() == predicted["cold_start"].tolist()
    assert json.loads(proc.stdout)["cold_start"] == 15


def test_predict_refuses_a_model_from_elsewhere(fitted_files, tmp_path):
    folder, data, _, _ = fitted_files
    proc = run_cli("predict", "--model", folder / "model.bin", "--data", data, "--predictions-out", tmp_path / "p.csv")
    assert proc.returncode == 2 and "refusing to load it" in proc.stderr


def test_fit_auto_reports_the_choice_and_the_saved_model_predicts_with_it(fitted_files, tmp_path):
    """`--learner auto` (the default) prints the chosen learner, its settings, every candidate's
    criterion value; the model file then predicts with exactly that learner and configuration."""
    from core.uplift.persist import read_model_file
    from core.workspace import Workspace

    folder, data, _, run = fitted_files
    proc = run("fit", "--data", data, *SIM_OPTIONS, "--folds", 2, "--model-out", tmp_path / "auto.bin",
               "--predictions-out", tmp_path / "auto.csv")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["learner"] == "auto" and result["criterion"] == "dr_loss"
    chosen = result["chosen"]["learner"]
    scores = {c["learner"]: c["score"] for c in result["candidates"]}
    assert set(scores) == {"s", "t", "x", "dr"} and chosen in scores
    assert "cf" in result["skipped"], "the causal forest is skipped above its row limit, with the reason"
    best = min(scores.values())
    chosen_row = next(c for c in result["candidates"] if c["learner"] == chosen)
    assert scores[chosen] == best or chosen_row["gap_se"] <= 1.0, "the best, or a near-tie broken by stability"
    assert set(result["chosen"]["params"]) == {"value", "cost"}
    assert result["chosen"]["params"]["value"]["num_leaves"] in (7, 15, 31)
    assert result["tuning"]["value"]["chosen"] in ("regularised", "balanced", "flexible")
    assert f"chosen: " in proc.stderr and "tuning" in proc.stderr

    env_ws = Workspace(folder / "ws.duckdb")
    model = read_model_file(tmp_path / "auto.bin", env_ws)
    assert model.learner == "auto" and model.learner_ == chosen
    fold_models = [m for bag in model.models_[("value", "all")] for m in bag]
    assert {m.learner for m in fold_models} == {chosen}
    assert [m.head_fit.config for m in fold_models] == result["tuning"]["value"]["per_fold"]
    oof = pd.read_csv(tmp_path / "auto.csv")
    np.testing.assert_allclose(oof.drop(columns="id").to_numpy(), model.oof_.to_numpy(), rtol=1e-6)
    predicted = run("predict", "--model", tmp_path / "auto.bin", "--data", data, "--predictions-out", tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["learner"] == chosen
    frame = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(frame.drop(columns="id").to_numpy(),
                               model.predict(pd.read_parquet(data)).to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("extra,message", [
    (["--learner", "rf"], r"argument --learner: invalid choice: 'rf'"),
    (["--folds", "1"], r"--folds must be a whole number ≥ 2, got 1"),
    (["--candidates", "x,forest"], r"--candidates 'forest': choose from s, t, x, dr, cf"),
    (["--tuning", "grid"], r"argument --tuning: invalid choice: 'grid'"),
])
def test_fit_bad_options_exit_2(capsys, extra, message):
    import re

    code, out, err = call(capsys, "fit", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail",
                          "--value", "visit", *extra)
    assert code == 2 and re.search(message, err), err


def test_fit_needs_a_value_column(capsys):
    code, out, err = call(capsys, "fit", "--data", HILLSTROM, "--action", "segment", "--control", "No E-Mail")
    assert code == 2 and "--value" in err


# --- evaluate ----------------------------------------------------------------------------------

def test_evaluate_scores_follow_the_contract(fitted_files, capsys):
    folder, data, _, _ = fitted_files
    code, out, err = call(capsys, "evaluate", "--data", data, *SIM_OPTIONS, "--scores", folder / "oof.csv")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"coupon_20", "free_shipping", "pct10_off"}
    arm = result["coupon_20"]
    assert set(arm) >= {"qini_normalized", "auuc_normalized", "qini_coefficient", "aucc", "calibration"}
    assert len(arm["calibration"]) == 10
    assert set(arm["calibration"][0]) >= {"bin", "n", "predicted", "observed", "ci_low", "ci_high"}
    assert arm["weighted"] is True


def test_evaluate_score_column_matches_scikit_uplift(capsys, hillstrom_frame):
    sklift = pytest.importorskip("sklift.metrics")
    code, out, err = call(capsys, "evaluate", *HILL, "--value", "visit", "--score-column", "history",
                          "--treatment", "Mens E-Mail")
    assert code == 0, err
    result = json.loads(out)["Mens E-Mail"]
    rows = hillstrom_frame[hillstrom_frame["segment"].isin(["Mens E-Mail", "No E-Mail"])]
    y, t, s = rows["visit"], (rows["segment"] == "Mens E-Mail").astype(int), rows["history"]
    assert result["qini_normalized"] == pytest.approx(sklift.qini_auc_score(y, s, t), abs=1e-12)
    assert result["auuc_normalized"] == pytest.approx(sklift.uplift_auc_score(y, s, t), abs=1e-12)
    assert "aucc" not in result, "no cost mapped, no cost curve"


def test_evaluate_joins_on_id_when_rows_are_shuffled(fitted_files, capsys, tmp_path):
    folder, data, _, _ = fitted_files
    shuffled = tmp_path / "shuffled.csv"
    pd.read_csv(folder / "oof.csv").sample(frac=1.0, random_state=1).to_csv(shuffled, index=False)
    a = call(capsys, "evaluate", "--data", data, *SIM_OPTIONS, "--scores", folder / "oof.csv")[1]
    b = call(capsys, "evaluate", "--data", data, *SIM_OPTIONS, "--scores", shuffled)[1]
    assert json.loads(a)["pct10_off"]["qini_normalized"] == pytest.approx(json.loads(b)["pct10_off"]["qini_normalized"])


@pytest.mark.parametrize("extra,message", [
    (["--score-column", "history", "--treatment", "Nobody"], r"--treatment 'Nobody' is not an arm of the log"),
    (["--score-column", "history"], r"--score-column needs --treatment L"),
    (["--score-column", "nope", "--treatment", "Mens E-Mail"], r"--score-column 'nope' is not in the log"),
    (["--score-column", "history", "--treatment", "No E-Mail"], r"--treatment 'No E-Mail' is the control"),
    ([], r"give either --scores CSV or --score-column COL"),
])
def test_evaluate_bad_inputs_exit_2(capsys, extra, message):
    import re

    code, out, err = call(capsys, "evaluate", *HILL, "--value", "visit", *extra)
    assert code == 2 and re.search(message, err), err


def test_evaluate_rejects_scores_with_nan(fitted_files, capsys, tmp_path):
    folder, data, _, _ = fitted_files
    broken = tmp_path / "nan.csv"
    frame = pd.read_csv(folder / "oof.csv")
    frame.loc[5, "tau_value__pct10_off"] = None
    frame.to_csv(broken, index=False)
    code, out, err = call(capsys, "evaluate", "--data", data, *SIM_OPTIONS, "--scores", broken)
    assert code == 2 and "score column 'tau_value__pct10_off' has 1 missing or non-numeric values" in err


# --- allocate ------------------------------------------------------------------------------------

def test_allocate_follows_the_contract(fitted_files, capsys, tmp_path):
    folder, _, _, _ = fitted_files
    out_csv = tmp_path / "allocation.csv"
    code, out, err = call(capsys, "allocate", "--scores", folder / "oof.csv", "--budget", 1500, "--control", "no_offer",
                          "--allocation-out", out_csv)
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"total_value", "total_cost", "counts", "upper_bound", "gap", "method", "seconds"}
    assert result["method"] == "exact" and result["total_cost"] <= 1500
    assert sum(result["counts"].values()) == 3000 and "no_offer" in result["counts"]
    plan = pd.read_csv(out_csv)
    assert list(plan.columns)[:5] == ["id", "action", "tau_value", "tau_cost", "score"]
    assert plan["tau_value"].sum() == pytest.approx(result["total_value"])
    assert plan["tau_cost"].sum() == pytest.approx(result["total_cost"])
    assert result["gap"] == pytest.approx((result["upper_bound"] - result["total_value"]) / result["upper_bound"])
    assert (plan.loc[plan["action"] == "no_offer", "tau_value"] == 0).all()
    oof = pd.read_csv(folder / "oof.csv").set_index("id")
    picked = plan[plan["action"] != "no_offer"]
    assert all(oof.loc[r.id, f"tau_value__{r.action}"] == pytest.approx(r.tau_value) for r in picked.head(50).itertuples())


def test_allocate_fast_and_caps(fitted_files, capsys):
    folder, _, _, _ = fitted_files
    code, out, _ = call(capsys, "allocate", "--scores", folder / "oof.csv", "--budget", 1500, "--method", "fast")
    fast = json.loads(out)
    assert code == 0 and fast["method"] == "fast" and fast["total_cost"] <= 1500 and fast["gap"] < 1e-3
    code, out, _ = call(capsys, "allocate", "--scores", folder / "oof.csv", "--budget", 1500, "--cap", "coupon_20=10")
    capped = json.loads(out)
    assert code == 0 and capped["counts"]["coupon_20"] <= 10


@pytest.mark.parametrize("extra,message", [
    (["--budget", "-5"], r"--budget must be a finite number ≥ 0, got -5"),
    (["--budget", "10", "--cap", "vip=3"], r"--cap names offer\(s\) 'vip'"),
    (["--budget", "abc"], r"argument --budget: invalid float value: 'abc'"),
])
def test_allocate_bad_inputs_exit_2(fitted_files, capsys, extra, message):
    import re

    folder, _, _, _ = fitted_files
    code, out, err = call(capsys, "allocate", "--scores", folder / "oof.csv", *extra)
    assert code == 2 and re.search(message, err), err


def test_allocate_needs_cost_columns(capsys, tmp_path):
    path = tmp_path / "value_only.csv"
    pd.DataFrame({"id": [1, 2], "tau_value__a": [1.0, 2.0]}).to_csv(path, index=False)
    code, out, err = call(capsys, "allocate", "--scores", path, "--budget", 1)
    assert code == 2 and "the scores lack column(s) tau_cost__a" in err


def test_allocate_without_cost_by_offer_count_or_cost_per_send(capsys, tmp_path):
    """A log without cost gives predictions with empty tau_cost (issue 13, item 1)."""
    path = tmp_path / "no_cost.csv"
    pd.DataFrame({"id": [11, 12, 13, 14, 15], "tau_value__a": [0.05, 0.30, -0.1, 0.20, 0.01],
                  "tau_value__b": [0.10, 0.25, 0.02, 0.01, 0.0], "tau_cost__a": np.nan, "tau_cost__b": np.nan}).to_csv(path, index=False)
    code, _, err = call(capsys, "allocate", "--scores", path, "--budget", 2)
    assert code == 2 and "the predictions have no cost for a, b" in err and "cost per offer sent" in err
    out_csv = tmp_path / "plan.csv"
    code, out, err = call(capsys, "allocate", "--scores", path, "--budget", 2, "--offer-cost", 1, "--allocation-out", out_csv)
    assert code == 0, err
    result = json.loads(out)
    # at most two offers: the two largest effects (0.30 for 12 with a, 0.20 for 14 with a)
    plan = pd.read_csv(out_csv).set_index("id")
    assert list(plan.index[plan["action"] != "control"]) == [12, 14]
    assert result["total_value"] == pytest.approx(0.50) and result["total_cost"] == pytest.approx(2.0)
    # money per send: a costs 3, b costs 1; with a budget of 4 the best is 14 → a (0.20) and 12 → b (0.25),
    # better than 12 → a (0.30) with 11 → b (0.10), or b for four customers (0.38)
    code, out, err = call(capsys, "allocate", "--scores", path, "--budget", 4, "--offer-cost", "a=3,b=1",
                          "--allocation-out", out_csv)
    assert code == 0, err
    plan = pd.read_csv(out_csv).set_index("id")
    assert json.loads(out)["total_value"] == pytest.approx(0.45)
    assert plan.loc[14, "action"] == "a" and plan.loc[12, "action"] == "b" and plan.loc[14, "tau_cost"] == 3.0
    code, _, err = call(capsys, "allocate", "--scores", path, "--budget", 4, "--offer-cost", "a=3")
    assert code == 2 and "no cost per offer sent for b" in err


# --- ope ----------------------------------------------------------------------------------------

def test_ope_follows_the_contract(fitted_files, capsys):
    folder, data, _, _ = fitted_files
    code, out, err = call(capsys, "ope", "--data", data, *SIM_OPTIONS, "--policy-name", "treat-all:coupon_20",
                          "--bootstrap", 200, "--seed", 3)
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"n", "ess", "max_weight", "propensity_source", "estimates", "cost_estimates"}
    assert result["propensity_source"] == "logged" and result["n"] == 3000
    assert set(result["estimates"]) == {"ips", "snips", "dm", "dr", "sndr", "switch-dr"}
    assert set(result["estimates"]["ips"]) >= {"value", "ci_low", "ci_high"}
    frame = pd.read_parquet(data)
    coupon = frame["offer"] == "coupon_20"
    assert result["estimates"]["ips"]["value"] == pytest.approx((frame.loc[coupon, "revenue"] / frame.loc[coupon, "propensity"]).sum() / 3000)
    w = np.where(coupon, 1 / frame["propensity"], 0.0)
    assert result["ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert result["max_weight"] == pytest.approx(w.max())


def test_ope_weighting_estimators_alone_fit_no_reward_model(fitted_files, capsys):
    """IPS and SNIPS need no q̂: asked for alone, no reward model is fitted, and every number
    (estimates, intervals, increments, ESS) equals the full run's."""
    folder, data, _, _ = fitted_files
    common = ["ope", "--data", data, *SIM_OPTIONS, "--policy-name", "treat-all:coupon_20", "--bootstrap", 200, "--seed", 3]
    code, out, err = call(capsys, *common, "--estimators", "ips,snips")
    assert code == 0, err
    assert "reward model" not in err
    alone = json.loads(out)
    code, out, err = call(capsys, *common)
    assert code == 0 and "fitting the cross-fitted reward model" in err
    full = json.loads(out)
    assert set(alone["estimates"]) == {"ips", "snips"}
    for key in ("estimates", "cost_estimates", "increments", "cost_increments"):
        for name in ("ips", "snips"):
            assert alone[key][name] == pytest.approx(full[key][name]), (key, name)
    assert alone["ess"] == pytest.approx(full["ess"])


def test_ope_policy_file_and_estimated_propensities(capsys, tmp_path, hillstrom_frame):
    policy = tmp_path / "policy.csv"
    pd.DataFrame({"action": np.where(hillstrom_frame["womens"] == 1, "Womens E-Mail", "Mens E-Mail")}).to_csv(policy, index=False)
    code, out, err = call(capsys, "ope", *HILL, "--value", "visit", "--features", "recency,history,womens,channel",
                          "--policy", policy, "--estimators", "ips,dr", "--bootstrap", 100, "--folds", 2)
    assert code == 0, err
    result = json.loads(out)
    assert result["propensity_source"] == "estimated" and "estimating propensities" in err
    assert set(result["estimates"]) == {"ips", "dr"}


@pytest.mark.parametrize("extra,message", [
    (["--policy-name", "treat-all:Nobody"], r"treat-all arm 'Nobody' is not in the log"),
    (["--policy-name", "greedy"], r"--policy-name 'greedy' is not one of"),
    (["--policy-name", "no-offer", "--estimators", "ips,ipw"], r"--estimators names 'ipw'"),
    (["--policy-name", "no-offer", "--clip", "2"], r"--clip must be between 0 and 1"),
    ([], r"give either --policy CSV or --policy-name"),
])
def test_ope_bad_inputs_exit_2(capsys, tmp_path, extra, message):
    import re

    data = tmp_path / "h.csv"
    pd.read_csv(HILLSTROM).assign(p=1 / 3).to_csv(data, index=False)
    code, out, err = call(capsys, "ope", "--data", data, "--action", "segment", "--control", "No E-Mail", "--value", "visit",
                          "--propensity", "p", "--features", "recency,history", "--bootstrap", 50, *extra)
    assert code == 2 and re.search(message, err), err


def test_ope_policy_file_missing_ids_and_bad_probabilities(fitted_files, capsys, tmp_path):
    folder, data, _, _ = fitted_files
    ids = pd.read_parquet(data)["customer_id"]
    missing = tmp_path / "missing.csv"
    pd.DataFrame({"id": ids[10:], "action": "no_offer"}).to_csv(missing, index=False)
    code, _, err = call(capsys, "ope", "--data", data, *SIM_OPTIONS, "--policy", missing, "--bootstrap", 50)
    assert code == 2 and "the policy file has no row for 10 customers of the log" in err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": ids, "prob__no_offer": 0.5, "prob__coupon_20": 0.3}).to_csv(bad, index=False)
    code, _, err = call(capsys, "ope", "--data", data, *SIM_OPTIONS, "--policy", bad, "--bootstrap", 50)
    assert code == 2 and "probabilities of row 1 sum to 0.8, not 1" in err


# --- readout -----------------------------------------------------------------------------------

def _readout_frame(weighted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    n = 600
    arm = rng.choice(["none", "coupon", "mail"], n)
    pre = rng.gamma(2.0, 10.0, n)
    value = 0.5 * pre + rng.normal(0, 5, n) + np.select([arm == "coupon", arm == "mail"], [3.0, 1.0], 0.0)
    cost = np.where(arm == "coupon", rng.choice([0.0, 5.0], n), 0.0)
    p = rng.uniform(0.2, 0.5, n) if weighted else np.full(n, 1 / 3)
    return pd.DataFrame({"arm": arm, "pre": pre, "value": value, "cost": cost, "p": p})


def test_readout_as_in_the_contract_against_a_hand_computation(capsys, tmp_path):
    frame = _readout_frame(weighted=False)
    data = tmp_path / "log.csv"
    frame.to_csv(data, index=False)
    code, out, err = call(capsys, "readout", "--data", data, "--action", "arm", "--control", "none",
                          "--value", "value", "--cost", "cost", "--cuped", "pre")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"coupon", "mail"}
    assert set(result["coupon"]) == {"value", "cost", "cpi"}
    control = frame[frame["arm"] == "none"]
    for arm in ("coupon", "mail"):
        rows = frame[frame["arm"] == arm]
        value = result[arm]["value"]
        effect = rows["value"].mean() - control["value"].mean()
        se = np.sqrt(rows["value"].var() / len(rows) + control["value"].var() / len(control))
        assert value["effect"] == pytest.approx(effect, rel=1e-10)
        assert value["se"] == pytest.approx(se, rel=1e-10)
        z = stats.norm.ppf(0.975)
        assert value["ci_low"] == pytest.approx(effect - z * se, abs=1e-9)
        assert value["ci_high"] == pytest.approx(effect + z * se, abs=1e-9)
        assert value["p_value"] == pytest.approx(2 * stats.norm.sf(abs(effect) / se), rel=1e-9)
        assert value["control_mean"] == pytest.approx(control["value"].mean())
        # CUPED: per-arm OLS slope on the pre-period column, centred on its overall mean
        adjusted = {}
        for name, group in (("arm", rows), ("control", control)):
            slope = np.polyfit(group["pre"], group["value"], 1)[0]
            adjusted[name] = group["value"] - slope * (group["pre"] - frame["pre"].mean())
        cuped_effect = adjusted["arm"].mean() - adjusted["control"].mean()
        cuped_se = np.sqrt(adjusted["arm"].var() / len(rows) + adjusted["control"].var() / len(control))
        assert value["cuped"]["covariate"] == "pre"
        assert value["cuped"]["effect"] == pytest.approx(cuped_effect, rel=1e-8)
        assert value["cuped"]["se"] == pytest.approx(cuped_se, rel=1e-8)
        assert value["cuped"]["se"] < value["se"]
    coupon = frame[frame["arm"] == "coupon"]
    dv = coupon["value"].mean() - control["value"].mean()
    assert result["coupon"]["cpi"]["cpi"] == pytest.approx(coupon["cost"].mean() / dv, rel=1e-10)
    assert result["mail"]["cpi"]["cpi"] == 0.0


def test_readout_weights_by_the_mapped_propensity_and_needs_no_cost(capsys, tmp_path):
    frame = _readout_frame(weighted=True)
    data = tmp_path / "log.parquet"
    frame.to_parquet(data)
    code, out, err = call(capsys, "readout", "--data", data, "--action", "arm", "--control", "none",
                          "--value", "value", "--propensity", "p")
    assert code == 0, err
    result = json.loads(out)
    for arm in ("coupon", "mail"):
        rows = frame[frame["arm"] == arm]
        assert result[arm]["value"]["arm_mean"] == pytest.approx(np.average(rows["value"], weights=1 / rows["p"]), rel=1e-10)
        assert result[arm]["cost"] is None and result[arm]["cpi"] is None
        assert result[arm]["value"]["cuped"] is None
    code, _, err = call(capsys, "readout", "--data", data, "--action", "arm", "--control", "none", "--value", "value",
                        "--cuped", "missing")
    assert code == 2 and "CUPED covariate 'missing' is not in the log" in err


# --- report ------------------------------------------------------------------------------------

def test_report_from_a_config_opens_offline(capsys, tmp_path):
    from core.diagnostics.readout import readout

    config = {"data": str(HILLSTROM), "mapping": {"action": "segment", "control": "No E-Mail", "value": "visit",
                                                  "features": ["recency", "history", "channel"]}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "report.html"
    code, stdout, err = call(capsys, "report", "--config", tmp_path / "config.json", "--out", out)
    assert code == 0, err
    assert json.loads(stdout)["sections"] == ["data", "diagnostics"]
    text = out.read_text()
    assert 'src="http' not in text and "<link" not in text, "no external scripts or stylesheets"
    from core.io import read_table
    from core.schema import ColumnMap, ExperimentLog

    log = ExperimentLog.from_frame(read_table(HILLSTROM, str_columns=["segment"]), ColumnMap.from_dict(config["mapping"]))
    effect = readout(log).effects.query("arm == 'Mens E-Mail'")["effect"].iloc[0]
    from core.format import format_number

    assert f"<td>{format_number(effect)}</td>" in text
    # no clipped axis labels: every axis of every chart makes room for its labels (issue 13, item 14)
    import re

    layouts = [json.loads(m) for m in re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*\[.*?\],\s*(\{.*?\}),\s*\{"displaylogo"', text, re.S)]
    axes = [v for layout in layouts for k, v in layout.items() if re.fullmatch(r"[xy]axis\d*", k)]
    assert len(layouts) >= 2 and len(axes) >= 4
    assert all(axis.get("automargin") is True for axis in axes)
    assert "e+0" not in re.sub(r"<script.*?</script>", "", text, flags=re.S), "no scientific notation in the tables"


@pytest.mark.parametrize("args,message", [
    (["--out", "r.html"], r"give either --scenario ID"),
    (["--scenario", "sc_nope", "--out", "r.html"], r"scenario 'sc_nope' is not in the workspace"),
    (["--config", "missing.json", "--out", "r.html"], r"--config 'missing.json' does not exist"),
])
def test_report_bad_inputs(capsys, tmp_path, monkeypatch, args, message):
    import re

    monkeypatch.chdir(tmp_path)
    code, _, err = call(capsys, "report", *args)
    assert code == 2 and re.search(message, err), err


@pytest.mark.parametrize("command", ["srm", "describe", "overlap", "fit", "evaluate", "ope"])
def test_a_folder_or_a_header_without_rows_is_named_in_every_command(capsys, tmp_path, command):
    """Every command that reads a log names the file and what is wrong with it (issue 13, item 17):
    `srm` counts in DuckDB straight from the file and used to fail as an internal error on a folder."""
    header_only = tmp_path / "header.csv"
    header_only.write_text("offer,revenue\n")
    mapping = ["--action", "offer", "--control", "no_offer", "--value", "revenue"]
    extra = {"evaluate": ["--score-column", "revenue", "--treatment", "coupon"], "ope": ["--policy-name", "no-offer"]}
    empty = tmp_path / "empty"
    empty.mkdir()
    for data, message in ((empty, f"'{empty}' is a folder; expected a CSV, CSV.GZ or Parquet file, or a folder of Parquet files"),
                          (tmp_path, f"file '{header_only}' in folder '{tmp_path}' is not Parquet; a folder or pattern must hold Parquet files only"),
                          (header_only, f"file '{header_only}' has a header but no data rows")):
        code, out, err = call(capsys, command, "--data", data, *mapping, *extra.get(command, []))
        assert code == 2 and out == "", err
        assert err.startswith("error: ") and message in err, err


@pytest.mark.parametrize("args,message", [
    (["report", "--config", "{dir}", "--out", "{dir}/r.html"], "--config '{dir}' cannot be read: Is a directory"),
    (["predict", "--model", "{dir}", "--data", "{dir}/x.csv", "--predictions-out", "{dir}/p.csv"],
     "model file '{dir}' is a folder; expected a file written by fit --model-out"),
    (["allocate", "--scores", "{dir}", "--budget", "10"], "'{dir}' is a folder; expected a CSV, CSV.GZ or Parquet file, or a folder of Parquet files"),
])
def test_other_file_options_name_a_folder(capsys, tmp_path, args, message):
    code, out, err = call(capsys, *[a.format(dir=tmp_path) for a in args])
    assert code == 2 and err.startswith("error: ") and message.format(dir=tmp_path) in err, err


def test_incomplete_rows_can_be_left_out_from_the_cli(capsys, tmp_path):
    frame = pd.DataFrame({"arm": ["a", "b"] * 50, "y": [1.0] * 100})
    frame["y"] = frame["y"].astype(object)
    frame.loc[[0, 1, 3], "y"] = ["unknown", None, "?"]
    data = tmp_path / "messy.csv"
    frame.to_csv(data, index=False)
    code, _, err = call(capsys, "describe", "--data", data, "--action", "arm", "--control", "a", "--value", "y")
    assert code == 2 and "value column 'y' has 2 non-numeric values (row 1: 'unknown', row 4: '?')" in err
    code, out, err = call(capsys, "describe", "--data", data, "--action", "arm", "--control", "a", "--value", "y",
                          "--text-as-missing", "--drop-incomplete")
    assert code == 0, err
    assert json.loads(out)["n_rows"] == 97
    assert "left out 3 incomplete rows: a 1, b 2" in err


# --- design and deploy (issue 14) ----------------------------------------------------------------

@pytest.mark.parametrize("args,expected", [
    (["--baseline-sd", 10, "--mde", 0.5], dict(effect_size=0.05, alpha=0.05, ratio=1.0)),
    (["--baseline-sd", 25, "--mde", 1.2, "--arms", 3, "--correction", "bonferroni", "--power", 0.9],
     dict(effect_size=1.2 / 25, alpha=0.05 / 3, power=0.9, ratio=1.0)),
    (["--baseline-sd", 4, "--mde", 0.3, "--ratio", 2.5, "--alpha", 0.01], dict(effect_size=0.3 / 4, alpha=0.01, ratio=2.5)),
    (["--baseline-rate", 0.0076, "--mde", 0.0095], dict(rate=(0.0076, 0.0095), alpha=0.05, ratio=1.0)),
])
def test_design_follows_the_contract_and_statsmodels(capsys, args, expected):
    import math

    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    code, out, err = call(capsys, "design", *args)
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"n_per_arm", "n_control", "n_total", "mde", "power", "alpha", "alpha_per_test", "sd",
                           "effect_size", "test"}
    assert result["test"] == "two-sided z"
    es = expected.get("effect_size") or proportion_effectsize(sum(expected["rate"]), expected["rate"][0])
    n = NormalIndPower().solve_power(es, nobs1=None, alpha=expected["alpha"], power=expected.get("power", 0.8),
                                     ratio=expected["ratio"])
    assert result["effect_size"] == pytest.approx(es, rel=1e-9)
    assert result["alpha_per_test"] == pytest.approx(expected["alpha"])
    assert result["n_per_arm"] == math.ceil(n) and result["n_control"] == math.ceil(n * expected["ratio"])


def test_design_from_a_log_with_cuped(capsys):
    code, out, err = call(capsys, "design", "--data", ROOT / "data" / "sample_campaign.parquet", "--action", "offer",
                          "--control", "no_offer", "--value", "revenue", "--mde", 2, "--cuped", "pre_revenue")
    assert code == 0, err
    result = json.loads(out)
    assert result["arms"] == 3 and 0 < result["cuped_variance_factor"] < 1
    assert result["n_per_arm_cuped"] < result["n_per_arm"]


@pytest.mark.parametrize("args,message", [
    (["--baseline-sd", 10], r"give exactly one of --mde"),
    (["--mde", 1], r"give the outcome's spread"),
    (["--baseline-sd", 10, "--baseline-rate", 0.1, "--mde", 0.01], r"not both"),
    (["--baseline-sd", 10, "--mde", 1, "--power", 2], r"--power must be between 0 and 1, got 2.0"),
])
def test_design_bad_inputs_exit_2(capsys, args, message):
    import re

    code, _, err = call(capsys, "design", *args)
    assert code == 2 and err.startswith("error:") and re.search(message, err), err


def test_deploy_follows_the_contract(capsys, tmp_path):
    rng = np.random.default_rng(0)
    allocation = pd.DataFrame({"id": np.arange(1, 3001), "action": rng.choice(["control", "a", "b"], 3000),
                               "tau_value": rng.uniform(0, 1, 3000)})
    path, out_csv = tmp_path / "allocation.csv", tmp_path / "assignment.csv"
    allocation.to_csv(path, index=False)
    code, out, err = call(capsys, "deploy", "--allocation", path, "--holdout", 0.05, "--explore", 0.15,
                          "--min-propensity", 0.02, "--salt", "s1", "--out", out_csv)
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"n", "counts", "buckets", "min_propensity", "expected_value_loss"}
    assignment = pd.read_csv(out_csv)
    assert list(assignment.columns) == ["id", "action", "propensity", "bucket"]
    assert result["n"] == 3000 and sum(result["buckets"].values()) == 3000
    assert result["min_propensity"] == pytest.approx(assignment["propensity"].min()) and result["min_propensity"] >= 0.02
    assert set(assignment["bucket"]) == {"plan", "explore", "holdout"}
    # the same file and salt give the same assignment
    call(capsys, "deploy", "--allocation", path, "--holdout", 0.05, "--explore", 0.15, "--min-propensity", 0.02,
         "--salt", "s1", "--out", tmp_path / "again.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again.csv"), assignment)


@pytest.mark.parametrize("args,message", [
    (["--holdout", 1.2], r"--holdout must be a share in \[0, 1\), got 1.2"),
    (["--holdout", 0.6, "--explore", 0.4], r"add up to 1"),
    (["--explore", 0.03, "--min-propensity", 0.02], r"--min-propensity 0.02 cannot be met with 2 actions"),
])
def test_deploy_bad_inputs_exit_2(capsys, tmp_path, args, message):
    import re

    path = tmp_path / "allocation.csv"
    pd.DataFrame({"id": [1, 2, 3], "action": ["control", "a", "a"]}).to_csv(path, index=False)
    code, _, err = call(capsys, "deploy", "--allocation", path, "--out", tmp_path / "x.csv", *args)
    assert code == 2 and re.search(message, err), err


def test_deploy_needs_ids(capsys, tmp_path):
    path = tmp_path / "allocation.csv"
    pd.DataFrame({"action": ["control", "a"]}).to_csv(path, index=False)
    code, _, err = call(capsys, "deploy", "--allocation", path, "--out", tmp_path / "x.csv")
    assert code == 2 and "the allocation has no 'id' column" in err


def test_evaluate_and_readout_give_the_long_horizon(fitted_files, capsys, tmp_path):
    folder, data, _, _ = fitted_files
    frame = pd.read_parquet(data)
    frame["revenue_12m"] = 2.0 * frame["revenue"]
    path = tmp_path / "with_12m.parquet"
    frame.to_parquet(path)
    code, out, err = call(capsys, "evaluate", "--data", path, *SIM_OPTIONS, "--value-long", "revenue_12m",
                          "--scores", folder / "oof.csv")
    assert code == 0, err
    result = json.loads(out)
    for arm in ("coupon_20", "free_shipping", "pct10_off"):
        horizon = result[arm]["horizon_ratio"]
        assert horizon["overall"]["ratio"] == pytest.approx(2.0)
        assert [b["ratio"] for b in horizon["bins"]] == pytest.approx([2.0] * 5)
    code, out, err = call(capsys, "readout", "--data", path, *SIM_OPTIONS, "--value-long", "revenue_12m")
    assert code == 0, err
    readout = json.loads(out)["coupon_20"]
    assert readout["value_long"]["effect"] == pytest.approx(2 * readout["value"]["effect"])


# --- monitor -------------------------------------------------------------------------------------

MONITOR_MAP = ["--action", "offer", "--control", "no_offer", "--value", "revenue", "--cost", "incentive_cost",
               "--time", "send_date", "--id", "customer_id", "--propensity", "propensity",
               "--features", "lifecycle,email_engagement,region,age"]


@pytest.fixture(scope="module")
def live_files(tmp_path_factory):
    import os

    from core.simulate import simulate_live

    folder = tmp_path_factory.mktemp("live")
    env = {**os.environ, "UPLIFT_STUDIO_WORKSPACE": str(folder / "ws.duckdb")}
    live = simulate_live(days=5, per_day=2000, seed=3, drift_day=4)
    live.log.to_csv(folder / "live.csv", index=False)
    live.log[live.log["send_date"] <= "2026-11-03"].to_csv(folder / "first.csv", index=False)
    live.scores.to_csv(folder / "scores.csv", index=False)
    live.plan.to_csv(folder / "plan.csv", index=False)
    live.reference.to_csv(folder / "reference.csv", index=False)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "core", "monitor", *map(str, args)], cwd=ROOT, capture_output=True,
                              text=True, env=env)

    return folder, live, run


def test_monitor_follows_the_contract_and_stores_days_idempotently(live_files):
    folder, live, run = live_files
    first = run("--data", folder / "first.csv", *MONITOR_MAP, "--store", "spring")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stored"]["added"] == ["2026-11-02", "2026-11-03"]
    args = ["--data", folder / "live.csv", *MONITOR_MAP, "--store", "spring", "--reference", folder / "reference.csv",
            "--plan", folder / "plan.csv", "--scores", folder / "scores.csv", "--psi-bins", 10]
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["stored"]["added"] == ["2026-11-04", "2026-11-05", "2026-11-06"]
    assert result["stored"]["unchanged"] == ["2026-11-02", "2026-11-03"]
    day = result["days"][0]
    assert {"day", "n", "counts", "spend", "psi", "calibration"} <= set(day)
    assert day["n"] == 2000 and sum(day["counts"].values()) == 2000
    assert set(day["psi"]) == {"lifecycle", "email_engagement", "region", "age"}
    assert {"predicted", "observed", "ci_low", "ci_high"} <= set(day["calibration"]["coupon_20"])
    rows = live.log[live.log["send_date"] == "2026-11-02"]
    assert day["spend"] == pytest.approx(rows["incentive_cost"].sum())
    from core.monitoring.drift import feature_psi

    assert day["psi"]["age"] == pytest.approx(feature_psi(live.reference["age"], rows["age"]))
    drift = [a for a in result["alerts"] if a["kind"] == "feature_drift"]
    assert {a["day"] for a in drift} == {"2026-11-05", "2026-11-06"} and {a["subject"] for a in drift} == {"email_engagement"}
    assert {"day", "kind", "subject", "value", "threshold", "message"} == set(drift[0])
    again = run(*args)
    assert again.returncode == 0
    repeated = json.loads(again.stdout)
    assert repeated["stored"]["added"] == [] and repeated["days"] == result["days"], "the same file twice changes nothing"
    stored = run("--dataset", "spring", "--reference", folder / "reference.csv")
    assert stored.returncode == 0, stored.stderr
    assert [d["n"] for d in json.loads(stored.stdout)["days"]] == [2000] * 5


def test_monitor_fairness_audit(live_files):
    folder, _, run = live_files
    proc = run("--data", folder / "live.csv", *MONITOR_MAP, "--scores", folder / "scores.csv", "--fairness", "region")
    assert proc.returncode == 0, proc.stderr
    fairness = json.loads(proc.stdout)["fairness"]
    assert fairness["attribute"] == "region" and len(fairness["groups"]) == 4
    assert {"offer_rate_ratio", "offer_rate_ratio_low", "spend_per_customer", "benefit_per_customer",
            "eligible_offer_rate_ratio"} <= set(fairness["groups"][0])


@pytest.mark.parametrize("change,message", [
    ("changed", "already stored in series 'spring' with different content: 2026-11-02"),
    ("future", "dated in the future"),
    ("no_value", "value column 'revenue' is not in the file"),
    ("one_group", "attribute 'channel' has a single group"),
    ("no_day", "needs its mapping"),
])
def test_monitor_bad_inputs_exit_2_and_alter_nothing(live_files, tmp_path, monkeypatch, capsys, change, message):
    folder, live, _ = live_files
    monkeypatch.setenv("UPLIFT_STUDIO_WORKSPACE", str(tmp_path / "ws.duckdb"))

    def run(*args):  # in-process: the entry point's behaviour without a new interpreter per call
        code, out, err = call(capsys, "monitor", *args)
        return subprocess.CompletedProcess(args, code, out, err)

    assert run("--data", folder / "first.csv", *MONITOR_MAP, "--store", "spring").returncode == 0
    before = run("--dataset", "spring").stdout
    frame = live.log.copy()
    args = list(MONITOR_MAP)
    if change == "changed":
        frame.loc[0, "revenue"] += 1
    elif change == "future":
        frame["send_date"] = "2099-12-31"
    elif change == "no_value":
        frame = frame.drop(columns="revenue")
    elif change == "one_group":
        frame["channel"] = "web"
        args += ["--fairness", "channel"]
    else:
        args = args[:args.index("--time")] + args[args.index("--time") + 2:]
    frame.to_csv(tmp_path / "bad.csv", index=False)
    proc = run("--data", tmp_path / "bad.csv", *args, "--store", "spring")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert run("--dataset", "spring").stdout == before
