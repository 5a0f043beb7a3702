import gzip

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.io import detect_mapping, read_table, write_table
from tests.conftest import HILLSTROM, SHARED


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_round_trip_every_format(tmp_path, sim_small, suffix):
    path = write_table(sim_small.log, tmp_path / f"log{suffix}")
    back = read_table(path, str_columns=["offer"])
    assert list(back.columns) == list(sim_small.log.columns)
    assert len(back) == len(sim_small.log)
    np.testing.assert_allclose(back["revenue"], sim_small.log["revenue"])
    assert (back["offer"].astype(str) == sim_small.log["offer"]).all()
    assert (back["lifecycle"].astype(str) == sim_small.log["lifecycle"]).all()


def test_format_is_read_from_content_not_name(tmp_path, sim_small):
    parquet = tmp_path / "log.parquet"
    write_table(sim_small.log, parquet)
    renamed = tmp_path / "really_parquet.csv"
    renamed.write_bytes(parquet.read_bytes())
    assert len(read_table(renamed)) == len(sim_small.log)
    from_bytes = read_table(parquet.read_bytes(), name="upload.parquet")
    assert len(from_bytes) == len(sim_small.log)


def test_hillstrom_loads_with_known_counts():
    frame = read_table(HILLSTROM, str_columns=["segment"])
    assert frame.shape == (64000, 12)
    counts = frame["segment"].value_counts().to_dict()
    assert counts == {"Womens E-Mail": 21387, "Mens E-Mail": 21307, "No E-Mail": 21306}
    visit = frame.groupby("segment")["visit"].mean()
    assert visit["Mens E-Mail"] == pytest.approx(0.1828, abs=5e-5)
    assert visit["No E-Mail"] == pytest.approx(0.1062, abs=5e-5)


def test_shipped_hillstrom_is_the_original_file():
    original = SHARED / "hillstrom" / "Kevin_Hillstrom_MineThatData_E-MailAnalytics_DataMiningChallenge_2008.03.20.csv"
    if not original.exists():
        pytest.skip("../shared/data is not beside this checkout")
    assert gzip.decompress(HILLSTROM.read_bytes()) == original.read_bytes()


def test_semicolon_delimiter_and_labels_kept_as_written(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("arm;y\n1;2.5\n1.0;3\n0;1\n")
    frame = read_table(path, str_columns=["arm"])
    assert frame["arm"].tolist() == ["1", "1.0", "0"]
    assert frame["y"].tolist() == [2.5, 3.0, 1.0]


def test_gzip_output_is_byte_stable(tmp_path, sim_small):
    a = write_table(sim_small.log.head(50), tmp_path / "a.csv.gz").read_bytes()
    b = write_table(sim_small.log.head(50), tmp_path / "b.csv.gz").read_bytes()
    assert a == b


BAD_FILES = [
    ("empty file", b"", r"is empty \(0 bytes\)"),
    ("blank lines", b"\n\n  \n", r"has no content"),
    ("binary garbage", bytes(range(256)) * 4, r"not a CSV or Parquet file"),
    ("corrupt parquet", b"PAR1" + b"\x13" * 200, r"looks like Parquet but could not be read"),
    ("header only", b"arm,value\n", r"has a header but no data rows"),
    ("damaged gzip", b"\x1f\x8b\x08\x00garbage", r"damaged gzip"),
    ("ragged csv", b"a,b\n1,2\n3,4,5,6\n",
     r"could not be read as a table: line 3 has 4 values but the header names 2 columns \(values separated by ','\)"),
    ("unclosed quote", b'a,b\n1,"2\n3,4\n', r"a quoted value is never closed"),
    ("duplicated header", b"a,a\n1,2\n", r"duplicated column names: a;"),
]


@pytest.mark.parametrize("label,content,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_get_clear_messages(label, content, message):
    with pytest.raises(UserError, match=message):
        read_table(content, name="upload.csv")


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(UserError, match=r"does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(UserError, match=r"is a folder"):
        read_table(tmp_path)


def test_upload_over_the_size_limit_is_refused_before_parsing():
    content = b"arm,value\n" + b"a,1\n" * 1000
    with pytest.raises(UserError, match=r"above the upload limit of 1\.0 KB"):
        read_table(content, name="big.csv", max_bytes=1024)
    assert len(read_table(content, name="ok.csv", max_bytes=len(content))) == 1000


def test_write_table_refuses_unknown_suffix(tmp_path, sim_small):
    with pytest.raises(UserError, match=r"must end in \.parquet, \.csv or \.csv\.gz"):
        write_table(sim_small.log, tmp_path / "log.xlsx")


# --- auto-detection ---------------------------------------------------------------------------

def test_detects_simulator_roles(sim_small):
    m = detect_mapping(sim_small.log)
    assert (m["action"], m["control"]) == ("offer", "no_offer")
    assert (m["value"], m["cost"], m["propensity"]) == ("revenue", "incentive_cost", "propensity")
    assert (m["segment"], m["time"], m["id"]) == ("lifecycle", "send_date", "customer_id")
    assert set(m["features"]) == {"tenure_months", "orders_12m", "avg_order_value", "days_since_last_order",
                                  "email_engagement", "channel", "region", "age", "pre_revenue"}


def test_detects_hillstrom_roles_and_keeps_outcomes_out_of_features(hillstrom_frame):
    m = detect_mapping(hillstrom_frame)
    assert (m["action"], m["control"], m["value"]) == ("segment", "No E-Mail", "spend")
    assert m["propensity"] is None and m["cost"] is None
    assert set(m["excluded_features"]) == {"visit", "conversion"}
    assert "visit" not in m["features"] and "history" in m["features"]


def test_detects_starbucks_and_criteo_traps():
    starbucks = SHARED / "starbucks_promo" / "training.csv"
    criteo = SHARED / "criteo_uplift_slice1k" / "criteo-uplift-v2.1_first1000.csv"
    if not starbucks.exists():
        pytest.skip("../shared/data is not beside this checkout")
    m = detect_mapping(read_table(starbucks, str_columns=["Promotion"]))
    assert (m["action"], m["control"], m["value"], m["id"]) == ("Promotion", "No", "purchase", "ID")
    m = detect_mapping(read_table(criteo, str_columns=["treatment"]))
    assert (m["action"], m["control"]) == ("treatment", "0")
    assert "exposure" in m["excluded_features"] and "exposure" not in m["features"]


def _cash_field_experiment(n=2480, seed=0):
    """Like a cash-incentive field experiment: village number first (124 values), household id,
    a single-valued survey source, the arm without an arm-like name, outcome and baseline."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"village": np.repeat(np.arange(1, 125), n // 124), "hhid": np.arange(10_001, 10_001 + n),
                         "source": "baseline_survey", "transfer": rng.choice(["control", "lump_sum", "monthly"], n),
                         "consumption": rng.gamma(2, 50, n).round(2), "baseline_consumption": rng.gamma(2, 50, n).round(2)})


def test_an_id_a_village_number_or_a_single_valued_column_is_never_the_arm():
    frame = _cash_field_experiment()
    m = detect_mapping(frame)
    assert (m["action"], m["control"]) == ("transfer", "control")
    assert "holds the no-offer-like label 'control'" in m["why"]["action"]
    unnamed = frame.assign(transfer=np.where(frame["transfer"] == "control", "A", "B"))
    m = detect_mapping(unnamed)
    assert m["action"] is None and "choose the column that holds the arm" in m["why"]["action"]
    from core.io import arm_column_problem

    assert arm_column_problem(frame, "village") == "'village' has 124 distinct values; an arm column has a handful (at most 20)"
    assert arm_column_problem(frame, "source") == "'source' has 1 distinct value; an arm column needs at least 2"
    rare = frame.assign(group=["x"] * 3 + ["y"] * (len(frame) - 3))
    assert arm_column_problem(rare, "group") == "'group' value 'x' has only 3 rows; every arm of an experiment is logged for many customers"
    assert detect_mapping(rare)["action"] == "transfer", "a named column with a 3-row level is passed over"


def test_job_training_experiment_and_the_control_label():
    rng = np.random.default_rng(1)
    n = 700
    frame = pd.DataFrame({"age": rng.integers(17, 55, n), "educ": rng.integers(3, 16, n), "black": rng.integers(0, 2, n),
                          "treat": rng.choice([1, 0], n, p=[0.6, 0.4]), "re78": rng.gamma(1, 5000, n)})
    m = detect_mapping(frame)
    assert (m["action"], m["control"]) == ("treat", "0"), "the control is the label named 0, not the common 1"
    assert m["why"]["control"] == "'0' is named like a no-offer arm"
    from core.io import pick_control

    assert pick_control(["A", "B", "C"], {"A": 30, "B": 50, "C": 20}) == (
        "B", "no label is named like none / control / 0 / no, so the most common one, 'B', is taken")
    assert pick_control(["Yes", "No"], {"Yes": 90, "No": 10})[0] == "No"


def test_detection_returns_none_when_nothing_fits():
    frame = pd.DataFrame({"x1": np.arange(10.0), "x2": np.arange(10.0) * 2})
    m = detect_mapping(frame)
    assert m["action"] is None and m["control"] is None
