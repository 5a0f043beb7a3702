"""Local engine vs Spark local[2] on a large simulated log, in one run.

    .venv/bin/python bench/bench_engines.py                  # 10 million rows (≈ 35 min on 2 cores)
    .venv/bin/python bench/bench_engines.py --rows 1000000   # a quicker look

Steps, each a real CLI command in its own process: SRM, readout, scoring with a fitted model
(``predict``), the allocation frontier (``allocate --method fast``), and OPE with 200 Poisson
resamples drawn per row (``ope --exact-bootstrap``).  For each step and engine: wall-clock
seconds, the peak resident memory of the whole process tree (the Python driver, and for Spark
its JVM and Python workers), and whether the two engines printed the same JSON (floats to 1e-9
relative).  Then the memory-budget check: the OPE step again with every process limited to
``--budget-gb`` of data memory (``RLIMIT_DATA``), where the local engine must fail and Spark
must complete.  Results go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAPPING = ["--action", "offer", "--control", "no_offer"]
OUTCOMES = ["--value", "revenue", "--cost", "incentive_cost", "--propensity", "propensity"]
VOLATILE = {"seconds", "predictions_path", "allocation_path"}


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    parents, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
            parents[int(entry)] = int(fields["PPid"])
            rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            continue
    members, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in members:
                members.add(child)
                frontier.append(child)
    return sum(rss.get(pid, 0) for pid in members)


def run(args: list[str], env: dict, budget: int | None = None) -> dict:
    """One CLI command: exit code, seconds, peak tree RSS, its JSON (or the error line)."""
    def limit():
        if budget:
            resource.setrlimit(resource.RLIMIT_DATA, (budget, budget))

    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    peak = [0]

    def watch():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    seconds = time.perf_counter() - start
    errors = [line for line in err.splitlines() if line.startswith("error:") or "MemoryError" in line]
    return {"code": proc.returncode, "seconds": seconds, "peak_gb": peak[0] / 2**30,
            "json": json.loads(out) if proc.returncode == 0 and out.strip() else None,
            "error": errors[-1] if errors else err.strip().splitlines()[-1:] }


def differences(a, b, path="") -> list:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [(path, "keys")] if set(a) != set(b) else []
        return out + [d for k in set(a) & set(b) - VOLATILE for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")] + \
            ([(path, "length")] if len(a) != len(b) else [])
    if isinstance(a, float) or isinstance(b, float):
        return [] if a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [(path, a, b)]
    return [] if a == b else [(path, a, b)]


def make_log(folder: Path, rows: int, per_file: int = 1_000_000) -> Path:
    """A simulated campaign log as a Parquet folder of ``per_file``-row files (unique ids)."""
    from core.simulate import simulate

    logs = folder / "log"
    if logs.exists():
        return logs
    logs.mkdir(parents=True)
    for k, start in enumerate(range(0, rows, per_file)):
        part = simulate(min(per_file, rows - start), seed=100 + k).log
        part["customer_id"] = part["customer_id"] + start
        part.to_parquet(logs / f"part-{k:04d}.parquet", index=False)
        print(f"  wrote {logs / f'part-{k:04d}.parquet'}", file=sys.stderr)
    return logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--budget-gb", type=float, default=3.0, help="data-memory limit per process for the budget check")
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "uplift-bench-engines"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--steps", default="srm,readout,scoring,frontier,ope",
                        help="comma list of srm, readout, scoring, frontier, ope (frontier reads scoring's output)")
    parser.add_argument("--no-budget-check", action="store_true", help="skip the memory-budget check")
    args = parser.parse_args()
    folder = Path(args.folder) / f"{args.rows}"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "UPLIFT_STUDIO_WORKSPACE": str(folder / "ws.duckdb"),
           "UPLIFT_SPARK_DRIVER_MEMORY": os.environ.get("UPLIFT_SPARK_DRIVER_MEMORY", "1g")}
    print(f"log of {args.rows:,} rows in {folder}", file=sys.stderr)
    logs = make_log(folder, args.rows)
    model = folder / "model.bin"
    if not model.exists():
        from core.simulate import simulate

        sample = folder / "sample.parquet"
        simulate(100_000, seed=1).log.to_parquet(sample, index=False)
        fit = run(["fit", "--data", sample, *MAPPING, *OUTCOMES, "--learner", "t", "--folds", 2, "--tuning", "fixed",
                   "--model-out", model], env)
        assert fit["code"] == 0, fit["error"]
    spark = ["--engine", "spark", "--spark-master", args.master]
    steps = {
        "srm": ["srm", "--data", logs, *MAPPING],
        "readout": ["readout", "--data", logs, *MAPPING, *OUTCOMES],
        "scoring": ["predict", "--model", model, "--data", logs, "--predictions-out", "{pred}"],
        "frontier": ["allocate", "--scores", folder / "pred_local.csv", "--budget", args.rows * 0.2, "--method", "fast",
                     "--control", "no_offer"],
        "ope (200 resamples)": ["ope", "--data", logs, *MAPPING, *OUTCOMES, "--policy-name", "treat-all:coupon_20",
                                "--estimators", "ips,snips", "--bootstrap", 200, "--exact-bootstrap"],
    }
    wanted = {w.strip() for w in args.steps.split(",")}
    rows = []
    for name, command in steps.items():
        if name.split(" ")[0] not in wanted:
            continue
        results = {}
        for engine, extra in (("local", []), ("spark", spark)):
            concrete = [str(c).replace("{pred}", str(folder / f"pred_{engine}.csv")) for c in command]
            results[engine] = run([*concrete, *extra], env)
            r = results[engine]
            print(f"{name:22s} {engine:6s} exit {r['code']} {r['seconds']:8.1f} s  peak {r['peak_gb']:5.2f} GB  {r['error'] if r['code'] else ''}",
                  file=sys.stderr)
        same = None
        if results["local"]["json"] is not None and results["spark"]["json"] is not None:
            same = differences(results["local"]["json"], results["spark"]["json"]) == []
        if name == "scoring" and same:
            import pandas as pd

            a, b = (pd.read_csv(folder / f"pred_{e}.csv") for e in ("local", "spark"))
            same = a.shape == b.shape and bool((a["id"].astype(str) == b["id"].astype(str)).all()) and \
                float(np.abs(a.drop(columns="id").to_numpy() - b.drop(columns="id").to_numpy()).max()) <= 1e-9
        rows.append((name, results, same))
    print("\n| step | local s | local peak GB | Spark local[2] s | Spark peak GB | Spark / local time | same JSON |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, results, same in rows:
        lo, sp = results["local"], results["spark"]
        print(f"| {name} | {lo['seconds']:.1f} | {lo['peak_gb']:.2f} | {sp['seconds']:.1f} | {sp['peak_gb']:.2f} | "
              f"{sp['seconds'] / lo['seconds']:.2f} | {'yes' if same else 'NO' if same is False else 'n/a'} |")
    if args.no_budget_check:
        return
    budget = int(args.budget_gb * 2**30)
    print(f"\nmemory budget {args.budget_gb:g} GB of data memory per process (RLIMIT_DATA), OPE step:")
    for engine, extra in (("local", []), ("spark", spark)):
        r = run([*steps["ope (200 resamples)"], *extra], env, budget=budget)
        print(f"- {engine}: exit {r['code']} after {r['seconds']:.1f} s, peak {r['peak_gb']:.2f} GB"
              + (f" — {r['error']}" if r["code"] else " — completed"))


if __name__ == "__main__":
    main()
