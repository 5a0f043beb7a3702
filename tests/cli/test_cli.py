"""The CLI contract: one JSON object on stdout, `error: …` and exit 2 for user errors."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from core.cli import PENDING, main
from tests.conftest import HILLSTROM, ROOT

CONTRACT_COMMANDS = ["simulate", "srm", "overlap", "fit", "predict", "evaluate", "allocate", "ope", "report", "monitor"]


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


@pytest.mark.parametrize("command", sorted(PENDING))
def test_commands_of_later_issues_say_so_and_exit_2(capsys, command):
    code, out, err = call(capsys, command, "--data", "x.csv")
    assert code == 2 and out == ""
    assert err.startswith(f"error: command '{command}'") and "not available" in err


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
