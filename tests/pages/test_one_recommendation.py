"""Issue 23, item 4: for the same fitted models the Evaluation page, the report and `evaluate --model`
recommend the same model, because all three rank them with one leaderboard and one stability rule.

The models: a bagged S-learner whose calibration slope is within 0.5–1.5 but whose bootstrap refits rank
customers unstably (rank correlation well below 0.6), and an unbagged T-learner with a higher Qini and a
calibration slope below 0.5.  Without the stability the S-learner is the only well-calibrated model and
wins; with it, no model qualifies and the T-learner's Qini wins.
"""

import contextlib
import io
import json
import re

import pytest

from core.cli import main
from core.evaluation import recommend
from tests.pages.helpers import new_app

SHARED_WORKSPACE = True

MAPPING = {"action": "offer", "control": "no_offer", "value": "revenue", "cost": "incentive_cost",
           "propensity": "propensity", "id": "customer_id", "segment": "lifecycle", "time": "send_date"}
OPTIONS = [f"--{role.replace('_', '-')}={column}" for role, column in MAPPING.items()]
MODELS = {"s": 2, "t": 0}  # learner → bootstrap refits per fold


def cli(*args) -> dict:
    """The command's JSON (its stderr stays with pytest's capture)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main([str(a) for a in args])
    assert code == 0, f"exit {code}"
    return json.loads(printed.getvalue())


@pytest.fixture(scope="module")
def fitted(module_workspace, tmp_path_factory):
    """Two models fitted with `fit --model-out` on a small simulated log, and a scenario naming them."""
    from core.io import read_table
    from core.schema import ColumnMap, ExperimentLog
    from core.workspace import Workspace

    folder = tmp_path_factory.mktemp("one_recommendation")
    data = folder / "log.parquet"
    cli("simulate", "--n", 3000, "--seed", 2, "--out", data)
    files, records = {}, {}
    workspace = Workspace()
    dataset = workspace.save_dataset(read_table(data), "log.parquet", source="upload:log.parquet")
    # the mapping as the Data page keeps it: every role, the features listed
    log = ExperimentLog.from_frame(workspace.load_dataset(dataset.id), ColumnMap.from_dict(MAPPING))
    mapping = {**log.columns.to_dict(), "features": list(log.features)}
    fingerprint = ExperimentLog.from_frame(log.frame, ColumnMap.from_dict(mapping)).fingerprint
    for learner, bagging in MODELS.items():
        files[learner] = folder / f"{learner}.bin"
        fit = cli("fit", "--data", data, *OPTIONS, "--learner", learner, "--folds", 2, "--bagging", bagging,
                  "--model-out", files[learner])
        records[learner] = {"model_id": fit["model_id"], "fingerprint": fingerprint,
                            "params": {"learner": learner, "folds": 2, "bagging": bagging}}
    config = {"mapping": mapping, "models": records}
    scenario = workspace.save_scenario("one recommendation", dataset.id, config)
    return data, files, scenario


def test_page_report_and_cli_recommend_the_same_model(fitted):
    from core.report import build_report
    from core.workspace import Workspace

    data, files, scenario = fitted
    # the Evaluation page
    at = new_app()
    at.query_params["scenario"] = scenario.id
    at.run()
    at.switch_page("pages/4_evaluation.py").run()
    assert not at.exception and not at.error
    board = at.dataframe[0].value.set_index("model")
    assert board.loc["T-learner", "stability"] == "not measured"
    page = at.session_state["current"].config["recommended_model"]
    assert "Recommended: **T-learner**" in at.success[0].value

    # the report, on the same scenario
    workspace = Workspace()
    html, sections = build_report(workspace.load_dataset(scenario.dataset_id), scenario.config, workspace=workspace)
    assert "models" in sections
    [report] = re.findall(r"Recommended: <b>(.*?)</b>", html)
    assert (page, report) == ("t", "T-learner")

    # evaluate --model, on the log the models were fitted on
    result = cli("evaluate", "--data", data, *OPTIONS, "--model", files["s"], "--model", files["t"])
    by_path = {str(path): learner for learner, path in files.items()}
    rows = {by_path[row["model"]]: row for row in result["leaderboard"]}
    assert set(result["models"]) == set(by_path)

    assert by_path[result["recommended"]] == "t"
    assert rows["t"]["recommended"] and rows["t"]["title"] == "T-learner"
    assert "no model is well calibrated" in result["why"] and result["why"] in at.success[0].value
    # the same numbers on the page and in the command's leaderboard
    for learner, title in (("s", "S-learner"), ("t", "T-learner")):
        assert board.loc[title, "Qini (norm.)"] == pytest.approx(rows[learner]["qini"], rel=1e-12)
        assert board.loc[title, "calibration slope · value"] == pytest.approx(rows[learner]["calibration_slope"], rel=1e-12)
    assert board.loc["S-learner", "stability"] == f"{rows['s']['stability']:.2f}"
    # why stability matters here: without it the S-learner, the only model calibrated within 0.5–1.5, would win
    assert 0.5 <= rows["s"]["calibration_slope"] <= 1.5 and rows["s"]["stability"] < 0.6
    assert rows["t"]["calibration_slope"] < 0.5 and rows["t"]["qini"] > rows["s"]["qini"]
    assert recommend({k: {**row, "stability": None} for k, row in rows.items()})[0] == "s"


@pytest.mark.parametrize("change", ["another log", "another mapping"])
def test_evaluate_model_refuses_a_log_it_was_not_fitted_on(fitted, change, tmp_path, capsys):
    data, files, _ = fitted
    options = OPTIONS
    if change == "another log":
        data = tmp_path / "other.parquet"
        assert main(["simulate", "--n", "3000", "--seed", "3", "--out", str(data)]) == 0
    else:
        options = [o for o in OPTIONS if not o.startswith("--segment")]
    capsys.readouterr()
    code = main([str(a) for a in ("evaluate", "--data", data, *options, "--model", files["t"])])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(f"error: model file '{files['t']}' was not fitted on this log with this mapping")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra,message", [
    (["--scores", "oof.csv"], "--model evaluates the models' own out-of-fold predictions; give it without --scores"),
    (["--treatment", "coupon_20"], "--treatment does not apply to --model"),
])
def test_evaluate_model_option_conflicts(fitted, extra, message, capsys):
    data, files, _ = fitted
    code = main([str(a) for a in ("evaluate", "--data", data, *OPTIONS, "--model", files["t"], *extra)])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith(f"error: {message}")
