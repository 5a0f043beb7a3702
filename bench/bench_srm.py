"""SRM by segment × day on a 10-million-row log: DuckDB counting vs a pandas groupby.

Both paths produce the same counts and the same tests; the script checks that, then prints
wall times and the ratio (pandas / DuckDB), from a Parquet file and from a frame in memory.

    .venv/bin/python bench/bench_srm.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.diagnostics.srm import count_arms, srm_from_counts  # noqa: E402

ARMS = np.array(["no_offer", "pct10_off", "free_shipping", "coupon_20"])
SEGMENTS = np.array(["new", "active", "lapsed", "dormant"])


def make_log(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-01-01", periods=30).strftime("%Y-%m-%d").to_numpy()
    return pd.DataFrame({
        "offer": ARMS[rng.integers(0, 4, rows)],
        "lifecycle": SEGMENTS[rng.integers(0, 4, rows)],
        "send_date": days[rng.integers(0, 30, rows)],
        "revenue": rng.exponential(20.0, rows).round(2),
    })


def timed(fn, repeat: int = 3):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def pandas_counts(frame: pd.DataFrame) -> pd.DataFrame:
    counts = frame.groupby(["lifecycle", "send_date", "offer"], observed=True).size().rename("n").reset_index()
    return counts.rename(columns={"offer": "arm"})


def tests_from(counts: pd.DataFrame):
    # one test per segment × day cell: the grouping key is the pair
    keyed = counts.assign(cell=counts["lifecycle"].astype(str) + " × " + counts["send_date"].astype(str))
    return srm_from_counts(keyed[["cell", "arm", "n"]], control="no_offer", by="cell")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    frame = make_log(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        frame.to_parquet(path, index=False)
        size_mb = path.stat().st_size / 1e6

        t_duck_file, duck = timed(lambda: tests_from(count_arms(path, "offer", ["lifecycle", "send_date"])))
        t_pandas_file, pand = timed(lambda: tests_from(pandas_counts(pd.read_parquet(path, columns=["offer", "lifecycle", "send_date"]))))
        t_duck_mem, duck_mem = timed(lambda: tests_from(count_arms(frame, "offer", ["lifecycle", "send_date"])))
        t_pandas_mem, _ = timed(lambda: tests_from(pandas_counts(frame)))

        tracemalloc.start()
        count_arms(path, "offer", ["lifecycle", "send_date"])
        duck_peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        tracemalloc.start()
        pandas_counts(pd.read_parquet(path, columns=["offer", "lifecycle", "send_date"]))
        pandas_peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()

    assert duck.overall.chi2 == pand.overall.chi2 or abs(duck.overall.chi2 - pand.overall.chi2) < 1e-9
    assert {k: g.chi2 for k, g in duck.by.items()} == {k: g.chi2 for k, g in duck_mem.by.items()}
    assert len(duck.by) == 4 * 30
    print(f"rows: {args.rows:,}  parquet: {size_mb:.0f} MB  cells tested: {len(duck.by)}")
    print(f"from file : duckdb {t_duck_file:.3f} s | pandas read+groupby {t_pandas_file:.3f} s | ratio pandas/duckdb {t_pandas_file / t_duck_file:.1f}x")
    print(f"in memory : duckdb {t_duck_mem:.3f} s | pandas groupby {t_pandas_mem:.3f} s | ratio pandas/duckdb {t_pandas_mem / t_duck_mem:.1f}x")
    print(f"python-heap peak while counting from file: duckdb {duck_peak:.0f} MB | pandas {pandas_peak:.0f} MB")


if __name__ == "__main__":
    main()
