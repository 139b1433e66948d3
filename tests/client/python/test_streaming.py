"""Results stream: iterating a million-row cursor keeps the client's memory bounded."""

from __future__ import annotations

import time
import tracemalloc

import pytest

import binds
from conftest import BIND_OF, need

MILLION = {
    "postgresql": "SELECT g, 'row ' || g FROM generate_series(1, 1000000) AS g",
    "mysql": "SELECT seq, CONCAT('row ', seq) FROM seq_1_to_1000000",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) "
              "SELECT x, 'row ' || x FROM c",
}


@pytest.mark.parametrize("backend_name", ["postgresql", "mysql", "sqlite"])
def test_million_rows_bounded_memory(daemon, backend_name, record_property):
    need(backend_name)
    conn = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend_name], timeout=120)
    cur = conn.cursor()
    tracemalloc.start()
    try:
        t0 = time.monotonic()
        cur.execute(MILLION[backend_name])
        n = 0
        total = 0
        for i, s in cur:
            n += 1
            total += i
            assert s == f"row {i}" if n % 99991 == 0 else True
        elapsed = time.monotonic() - t0
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 1_000_000 and total == 1_000_000 * 1_000_001 // 2
    assert cur.rowcount == 1_000_000
    # a million (int, str) tuples alone would take > 100 MB; one ROWS batch is a few hundred KB
    print(f"\n{backend_name}: 1,000,000 rows in {elapsed:.1f}s, tracemalloc peak {peak / 1e6:.2f} MB")
    record_property("peak_bytes", peak)
    assert peak < 8_000_000, f"peak {peak} bytes"
    conn.close()


def test_close_half_read_result_outside_transaction(daemon):
    """Closing a cursor part-way through a large result (autocommit) cancels the rest; the
    connection stays usable and answers quickly."""
    conn = binds.connect("127.0.0.1", daemon.port, "appmeta", timeout=60, autocommit=True)
    cur = conn.cursor()
    cur.execute(MILLION["sqlite"])
    assert cur.fetchmany(5) == [(1, "row 1"), (2, "row 2"), (3, "row 3"), (4, "row 4"), (5, "row 5")]
    t0 = time.monotonic()
    cur.close()
    cur = conn.cursor()
    cur.execute("SELECT 12")
    assert cur.fetchone() == (12,)
    assert time.monotonic() - t0 < 30
    conn.close()
