"""Step 1 · Data: open a sample or upload a log, map its columns, check it, save a scenario."""

import numpy as np
import streamlit as st

from core.charts import arm_summary_figure
from core.datasets import SAMPLES
from core.engines import cluster_configured, configured as engine_setting
from core.errors import UserError
from core.format import format_p
import ui
from ui import cached, state
from ui.widgets import mapping_editor, show_error, table

ui.page_setup()

ws = cached.workspace()
problem = state.restore_from_url(ws)
cur = state.current()

st.title("Data")
st.caption("Open the experiment log: one row per customer, the offer they were sent, and what happened next.")
if problem:
    st.warning(problem)

_, master = engine_setting()
cluster = cluster_configured()
SOURCES = ["Sample data", "Upload a file", "Saved scenario"] + (["Parquet path (Spark)"] if cluster else [])
# Widget state is dropped when the user visits another page: start from what is loaded.
start = (2 if cur.scenario_id else 3 if cluster and (cur.source or "").startswith("spark:")
         else 1 if (cur.source or "").startswith("upload:") else 0)
source = st.radio("Start from", SOURCES, horizontal=True, key="data_source", index=start)

if source == "Sample data":
    keys = list(SAMPLES)
    default_key = cur.source.split(":", 1)[1] if cur.source and cur.source.startswith("sample:") else keys[0]
    key = st.selectbox("Sample", keys, index=keys.index(default_key) if default_key in keys else 0,
                       format_func=lambda k: SAMPLES[k].title)
    st.caption(SAMPLES[key].description)
    try:
        dataset_id = cached.sample_dataset_id(key, str(ws.path))
    except UserError as exc:
        show_error(exc)
        st.stop()
    sample = SAMPLES[key]
    state.set_dataset(dataset_id, sample.title, f"sample:{key}", sample.mapping)

elif source == "Upload a file":
    limit_mb = cached.upload_limit_bytes() // (1024 * 1024)
    upload = st.file_uploader(
        f"Experiment log (CSV, CSV.GZ or Parquet, up to {limit_mb} MB)", type=["csv", "gz", "parquet"],
        help="One row per customer and decision. Your file is stored in the workspace as soon as it is read.")
    if upload is None:
        if cur.dataset_id is None or not (cur.source or "").startswith("upload:"):
            st.info("Choose a file to continue. Nothing has changed in your saved scenarios.")
            st.stop()
    else:
        known = st.session_state.get("upload_ids", {})
        if upload.file_id not in known:
            try:
                dataset_id, _ = cached.store_upload(upload.getvalue(), upload.name)
            except UserError as exc:
                show_error(exc, f"'{upload.name}' cannot be used")
                st.caption("Your saved scenarios are untouched.")
                st.stop()
            known[upload.file_id] = dataset_id
            st.session_state["upload_ids"] = known
        dataset_id = known[upload.file_id]
        detected = cached.detected_mapping(dataset_id, str(ws.path))
        state.set_dataset(dataset_id, upload.name, f"upload:{upload.name}",
                          {k: v for k, v in detected.items() if k not in ("excluded_features", "why")})

elif source == "Parquet path (Spark)":
    st.caption(f"The Spark engine is configured (master `{master}`): read a log where the cluster keeps it instead of "
               "uploading it. A Parquet file, a folder of Parquet files or a glob pattern; every file needs the same columns.")
    known = st.session_state.setdefault("cluster_logs", {})
    default_path = cur.source.split(":", 1)[1] if (cur.source or "").startswith("spark:") else ""
    st.session_state.setdefault("cluster_path", default_path)
    path = st.text_input("Parquet path", key="cluster_path", placeholder="/data/campaigns/spring/*.parquet",
                         help="Read by the Spark engine where it runs: a local, mounted or shared path.")
    if st.button("Read on Spark", type="primary", disabled=not path.strip()):
        try:
            with st.spinner("Reading the log on Spark…"):
                known[path.strip()] = cached.store_cluster_log(path.strip())
        except UserError as exc:
            show_error(exc, f"'{path.strip()}' cannot be used")
            st.caption("Your saved scenarios are untouched.")
            st.stop()
    if path.strip() not in known:
        if cur.dataset_id is None or not (cur.source or "").startswith("spark:"):
            st.info("Type the path and press **Read on Spark** to continue.")
            st.stop()
    else:
        dataset_id, n_total, n_kept = known[path.strip()]
        if n_kept < n_total:
            st.info(f"The log has {n_total:,} rows. Models are fitted on one machine, so this app works on a fixed sample "
                    f"of {n_kept:,} rows (the same every time). For every row, run the headless commands with "
                    f"`--engine spark --spark-master {master}`: SRM, readout, scoring, evaluation, allocation and OPE.")
        else:
            st.success(f"Read {n_total:,} rows on Spark; all of them fit on this machine.")
        detected = cached.detected_mapping(dataset_id, str(ws.path))
        state.set_dataset(dataset_id, path.strip().rstrip("/").rsplit("/", 1)[-1], f"spark:{path.strip()}",
                          {k: v for k, v in detected.items() if k not in ("excluded_features", "why")})

else:
    scenarios = ws.list_scenarios()
    if not scenarios:
        st.info("No saved scenarios yet. Open a sample or upload a file, then save it below.")
        st.stop()
    ids = [s.id for s in scenarios]
    names = {s.id: f"{s.name} · {s.config.get('dataset_name', s.dataset_id)} · saved {s.updated_at:%Y-%m-%d %H:%M}" for s in scenarios}
    chosen = st.selectbox("Scenario", ids, index=ids.index(cur.scenario_id) if cur.scenario_id in ids else 0,
                          format_func=names.get)
    if chosen != cur.scenario_id:
        state.open_scenario(ws, chosen)
        st.rerun()
    with st.expander("Manage saved scenarios"):
        record = next(s for s in scenarios if s.id == chosen)
        new_name = st.text_input("Name", value=record.name, key=f"rename_{chosen}")
        m1, m2, m3 = st.columns(3)
        if m1.button("Rename", disabled=new_name.strip() in ("", record.name)):
            ws.rename_scenario(chosen, new_name)
            cur.scenario_name = new_name.strip()
            st.rerun()
        if m2.button("Duplicate", help="A copy with the same data, mapping and choices, opened at once."):
            state.open_scenario(ws, ws.duplicate_scenario(chosen).id)
            st.rerun()
        sure = m3.checkbox("Yes, delete it", key=f"confirm_delete_{chosen}")
        if m3.button("Delete", disabled=not sure, help="Deletes the saved scenario; its dataset stays in the workspace."):
            ws.delete_scenario(chosen)
            state.forget_scenario()
            st.rerun()

cur = state.current()
frame = cached.dataset_frame(cur.dataset_id, str(ws.path))
detected = cached.detected_mapping(cur.dataset_id, str(ws.path))

st.subheader(cur.dataset_name or "Dataset")
st.caption(f"{len(frame):,} rows × {frame.shape[1]} columns · workspace id `{cur.dataset_id}`")
with st.expander("Preview (first 200 rows)", expanded=False):
    st.dataframe(frame.head(200), hide_index=True)

st.subheader("Column roles")
st.caption("Pre-filled by auto-detection. Change anything that is wrong.")
mapping = mapping_editor(frame, cur.mapping or detected, detected, key=f"map_{cur.dataset_id}_{cur.revision}")
state.set_mapping(mapping)

try:
    log = cached.experiment_log(cur.dataset_id, mapping)
except UserError as exc:
    show_error(exc)
    st.stop()

st.success(f"The log fits the mapping: {log.n:,} customers, {len(log.labels)} arms, "
           f"control '{log.control}', {len(log.features)} features.", icon=":material/check_circle:")
if not log.columns.propensity:
    st.info("No logged propensity: later steps estimate it from the features and say so.")
if log.dropped:
    from core.diagnostics.srm import dropped_rows_check

    kept = dict(zip(*np.unique(log.action, return_counts=True)))
    check = dropped_rows_check({str(k): int(v) for k, v in kept.items()}, log.dropped)
    rates = ", ".join(f"{arm} {rate:.1%}" for arm, rate in check["rate"].items())
    text = (f"{sum(log.dropped.values()):,} incomplete rows are left out of the analysis (the file keeps them). "
            f"Share left out per arm: {rates}.")
    if check["p_value"] < 0.001:
        st.warning(text + f" Rows went missing unevenly across arms (χ² = {check['chi2']:.1f}, {format_p(check['p_value'])}): "
                   "the kept rows may no longer be comparable — check the SRM light in step 2.", icon=":material/warning:")
    else:
        st.info(text + f" The drop is even across arms (χ² test, {format_p(check['p_value'])}); step 2 re-checks the "
                "split on the rows kept.", icon=":material/info:")

st.subheader("Per-arm summary")
summary = log.arm_summary()
table(summary, column_config={"share": st.column_config.NumberColumn(format="percent")})
st.plotly_chart(arm_summary_figure(summary))
st.download_button("Download per-arm summary (CSV)", summary.to_csv(index=False).encode(),
                   file_name="arm_summary.csv", mime="text/csv")

st.subheader("Save as a scenario")
with st.form("save_scenario"):
    name = st.text_input("Scenario name", value=cur.scenario_name or f"{cur.dataset_name} analysis",
                         help="Saved in the workspace with the mapping; reopen it later from the link or the list.")
    saved = st.form_submit_button("Save scenario", type="primary")
if saved:
    try:
        scenario_id = state.save_scenario(ws, name)
    except UserError as exc:
        show_error(exc)
    else:
        st.success(f"Saved scenario '{name}'. Its link: `?scenario={scenario_id}`", icon=":material/save:")
