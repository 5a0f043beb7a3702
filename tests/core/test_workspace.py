import pandas as pd
import pytest

from core.errors import UserError
from core.workspace import Workspace, default_path


def test_default_path_follows_the_environment(isolated_workspace):
    assert default_path() == isolated_workspace
    Workspace()
    assert isolated_workspace.exists()


def test_dataset_round_trip_survives_reopening(tmp_path, sim_small):
    path = tmp_path / "ws.duckdb"
    record = Workspace(path).save_dataset(sim_small.log, "campaign", source="sample:campaign")
    del record  # the connection is closed after every call; reopen from scratch
    ws = Workspace(path)
    [listed] = ws.list_datasets()
    assert listed.name == "campaign" and listed.n_rows == len(sim_small.log)
    back = ws.load_dataset(listed.id)
    pd.testing.assert_frame_equal(back, sim_small.log, check_dtype=False)
    assert back["offer"].tolist() == sim_small.log["offer"].tolist()


def test_same_content_is_stored_once(tmp_path, sim_small):
    ws = Workspace(tmp_path / "ws.duckdb")
    a = ws.save_dataset(sim_small.log, "first")
    b = ws.save_dataset(sim_small.log.copy(), "second name, same content")
    assert a.id == b.id and len(ws.list_datasets()) == 1
    c = ws.save_dataset(sim_small.log.head(100), "subset")
    assert c.id != a.id and len(ws.list_datasets()) == 2


def test_scenario_save_update_rename_duplicate_delete(tmp_path, sim_small):
    path = tmp_path / "ws.duckdb"
    ws = Workspace(path)
    ds = ws.save_dataset(sim_small.log, "campaign")
    config = {"mapping": {"action": "offer", "control": "no_offer", "value": "revenue"}, "budget": 1000.0}
    sc = ws.save_scenario("Q1 plan", ds.id, config)
    reopened = Workspace(path).get_scenario(sc.id)
    assert reopened.config == config and reopened.name == "Q1 plan" and reopened.dataset_id == ds.id

    updated = ws.save_scenario("Q1 plan", ds.id, {**config, "budget": 2000.0}, scenario_id=sc.id)
    assert updated.id == sc.id and updated.config["budget"] == 2000.0
    assert updated.created_at == sc.created_at and updated.updated_at >= sc.updated_at

    renamed = ws.rename_scenario(sc.id, "Q1 plan v2")
    assert renamed.name == "Q1 plan v2" and renamed.config["budget"] == 2000.0
    copy = ws.duplicate_scenario(sc.id)
    assert copy.id != sc.id and copy.name == "Q1 plan v2 (copy)" and copy.config == renamed.config
    assert {s.id for s in ws.list_scenarios()} == {sc.id, copy.id}

    with pytest.raises(UserError, match=r"used by scenario\(s\)"):
        ws.delete_dataset(ds.id)
    ws.delete_scenario(sc.id)
    ws.delete_scenario(copy.id)
    assert ws.list_scenarios() == []
    ws.delete_dataset(ds.id)
    assert ws.list_datasets() == []
    with pytest.raises(UserError, match=r"scenario 'sc_missing' is not in the workspace"):
        Workspace(path).get_scenario("sc_missing")


def test_scenario_needs_a_name_and_a_stored_dataset(tmp_path, sim_small):
    ws = Workspace(tmp_path / "ws.duckdb")
    ds = ws.save_dataset(sim_small.log, "campaign")
    with pytest.raises(UserError, match=r"a scenario needs a name"):
        ws.save_scenario("  ", ds.id, {})
    with pytest.raises(UserError, match=r"dataset 'ds_0000000000000000' is not in the workspace"):
        ws.save_scenario("x", "ds_0000000000000000", {})


def test_runs_are_recorded(tmp_path):
    ws = Workspace(tmp_path / "ws.duckdb")
    run_id = ws.record_run("srm", {"alpha": 0.001}, {"p_value": 0.5}, scenario_id="sc_1")
    runs = ws.list_runs(scenario_id="sc_1")
    assert runs["id"].tolist() == [run_id] and runs["kind"].tolist() == ["srm"]
    assert ws.list_runs(kind="fit").empty


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"cannot create the workspace folder"):
        Workspace(blocker / "sub" / "ws.duckdb")


class _Payload:
    """Unpickling this writes a marker file: proof that a payload was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_tampered_model_payload_in_the_workspace_fails_its_signature(tmp_path):
    """Someone with write access to the DuckDB file swaps a model's payload (and even its stored
    digest): loading refuses before unpickling anything."""
    import hashlib
    import pickle

    import duckdb

    from core.uplift.persist import load_model

    ws = Workspace(tmp_path / "ws.duckdb")
    genuine = pickle.dumps({"a": "model"})
    model_id, digest = ws.save_model(genuine, dataset_fingerprint="f", learner="x", params={}, metrics={}, seconds=1.0)
    assert load_model(model_id, ws) == {"a": "model"}

    marker = tmp_path / "unpickled.txt"
    evil = pickle.dumps(_Payload(marker))
    with duckdb.connect(str(ws.path)) as con:
        con.execute("UPDATE models SET payload = ? WHERE id = ?", [evil, model_id])
    with pytest.raises(UserError, match=rf"model '{model_id}' fails its signature check; refusing to load it"):
        load_model(model_id, ws)
    # a digest recomputed without the workspace's secret key does not help
    with duckdb.connect(str(ws.path)) as con:
        con.execute("UPDATE models SET digest = ? WHERE id = ?", [hashlib.sha256(evil).hexdigest(), model_id])
    with pytest.raises(UserError, match=r"fails its signature check"):
        load_model(model_id, ws)
    assert not marker.exists(), "the tampered payload was never unpickled"
