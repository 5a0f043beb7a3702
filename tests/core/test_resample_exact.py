"""Issue 24, item 11: keyed resampling's ``bootstrap_sums`` does not depend on how the
resamples are chunked: every chunk size gives, resample by resample, the sums of one chunk,
and replicate b is the keyed Poisson counts of resample b times the rows."""

from __future__ import annotations

import numpy as np
import pytest

from core.resample import bootstrap_sums, poisson_counts, row_keys

N_ROWS, N_BOOT, SEED = 53, 37, 11


def _rows():
    rng = np.random.default_rng(0)
    # integer-valued statistics: every sum is exact in floating point, so equality is exact
    return rng.integers(-50, 50, size=(N_ROWS, 3)).astype(float)


@pytest.mark.parametrize("keys", [np.arange(N_ROWS), row_keys(ids=[f"id-{i}" for i in range(N_ROWS)])],
                         ids=["positions", "hashed-ids"])
@pytest.mark.parametrize("chunk_cells", [1, N_ROWS, 2 * N_ROWS, 5 * N_ROWS + 7, 36 * N_ROWS])
def test_chunked_bootstrap_sums_equal_one_chunk_and_the_counts_by_hand(keys, chunk_cells):
    rows = _rows()
    one = bootstrap_sums(rows, keys, N_BOOT, SEED, chunk_cells=1e12)
    chunked = bootstrap_sums(rows, keys, N_BOOT, SEED, chunk_cells=chunk_cells)
    assert chunked.shape == one.shape == (N_BOOT, 3)
    np.testing.assert_array_equal(chunked, one)
    # by hand, resample by resample: the counts of row i in resample b depend on (key_i, b, seed) only
    for b in range(N_BOOT):
        counts = poisson_counts(keys, [b], SEED)[0]
        hand = [sum(counts[i] * rows[i, j] for i in range(N_ROWS)) for j in range(3)]
        np.testing.assert_array_equal(chunked[b], hand)
    # distinct resamples really differ (a chunk restarting at resample 0 would repeat them)
    assert len({tuple(r) for r in one}) == N_BOOT
