"""Counter-based random numbers keyed by row: the same draw for the same row in any engine.

A bootstrap that draws ``rng.poisson(size=(B, n))`` depends on the row order and on drawing
every row in one place.  Here resample ``b`` gives row ``i`` the Poisson(1) count
``F⁻¹(u)``, where ``u`` is a SplitMix64 hash of ``(seed, key_i, b)``: a pure function of the
row's key, so a partition of a Spark job draws exactly the counts the local engine draws for
the same rows, whatever the partitioning or order.

The key of a row is its position in the log (files in name order, rows in file order) or,
when the log maps an id column, a 64-bit hash of the id's text (:func:`row_keys`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SEED_SALT = np.uint64(0xD1B54A32D192ED03)
# Poisson(1) quantiles: P(K ≤ k) for k = 0..19; beyond the last the count is 20 (P < 1e-19)
_POISSON_CDF = stats.poisson.cdf(np.arange(20), 1.0)


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z = z * _MIX1
    z = z ^ (z >> np.uint64(27))
    z = z * _MIX2
    return z ^ (z >> np.uint64(31))


def row_keys(ids=None, positions=None) -> np.ndarray:
    """64-bit keys of rows: a hash of each id's text when ``ids`` is given, else the positions.

    Parameters
    ----------
    ids : array-like, optional
        The log's id column (compared as text, as everywhere else).
    positions : array-like of int, optional
        Row positions in the log (used when there are no ids).
    """
    if ids is not None:
        text = pd.Series(ids).astype(str).to_numpy(dtype=object)
        return pd.util.hash_array(text, categorize=False).astype(np.uint64)
    return np.asarray(positions, dtype=np.int64).astype(np.uint64)


def uniforms(keys: np.ndarray, stream: np.ndarray | int, seed: int) -> np.ndarray:
    """Uniform(0, 1) numbers, one per (stream, key): shape ``(len(stream), len(keys))``."""
    keys = np.asarray(keys, dtype=np.uint64)
    stream = np.atleast_1d(np.asarray(stream, dtype=np.uint64))
    with np.errstate(over="ignore"):
        base = _splitmix(np.uint64(seed) * _SEED_SALT + _GOLDEN)
        z = _splitmix(keys[None, :] * _GOLDEN ^ base)
        z = _splitmix(z + (stream[:, None] + np.uint64(1)) * _MIX2)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def poisson_counts(keys: np.ndarray, resamples: np.ndarray | int, seed: int) -> np.ndarray:
    """Poisson(1) bootstrap counts of the rows ``keys`` in each of ``resamples``:
    ``(len(resamples), len(keys))`` floats, by inversion of the Poisson(1) distribution."""
    u = uniforms(keys, resamples, seed)
    return np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float64)


def bootstrap_sums(stats_rows: np.ndarray, keys: np.ndarray, n_boot: int, seed: int, chunk_cells: float = 2e7) -> np.ndarray:
    """``(n_boot, m)``: the column sums of ``stats_rows`` under each resample's Poisson counts.

    Sums over any split of the rows add up to the sums over all of them, which is what lets a
    distributed engine compute its part per partition.
    """
    stats_rows = np.asarray(stats_rows, dtype=float)
    n, m = stats_rows.shape
    out = np.zeros((n_boot, m))
    if n == 0:
        return out
    step = max(1, int(chunk_cells // n))
    for start in range(0, n_boot, step):
        b = np.arange(start, min(n_boot, start + step))
        out[b] = poisson_counts(keys, b, seed) @ stats_rows
    return out
