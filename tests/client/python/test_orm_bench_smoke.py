"""A seconds-long run of bench/python/orm_bench.py, so the Python benchmark keeps working.

It asserts that every contender of every workload produced a figure, not what the figures are:
timings belong to the benchmark, not to the suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ALLOW_NO_DB, BINDSD, MYSQL_URL, PG_URL, ROOT


def test_orm_bench_reports_every_contender_of_every_workload():
    if not (PG_URL and MYSQL_URL):
        if ALLOW_NO_DB:
            pytest.skip("the benchmark compares against PostgreSQL and MariaDB")
        pytest.fail("BINDS_TEST_PG_URL and BINDS_TEST_MYSQL_URL are needed (scripts/testdb.sh)")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "python" / "orm_bench.py"), "--bindsd", BINDSD,
         "--rounds", "1", "--orm-n", "5", "--many-n", "20"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"[0-9.]+", cells[3]):
            rows[tuple(cells[:3])] = float(cells[3])
    expected = []
    for backend, direct in (("postgresql", "psycopg2"), ("mysql", "pymysql")):
        for workload in ("orm", "get", "tx", "rt", "many"):
            expected += [(backend, workload, "binds"), (backend, workload, direct)]
        expected.append((backend, "many", "binds execute loop"))
    missing = [k for k in expected if k not in rows]
    assert not missing, f"no figure for {missing}:\n{out.stdout}"
