#!/usr/bin/env python3
"""The Python driver through bindsd against the usual drivers straight to the database.

    . /tmp/DIR/env          # BINDS_TEST_PG_URL / BINDS_TEST_MYSQL_URL from scripts/testdb.sh start DIR
    build-test/py-venv/bin/python bench/python/orm_bench.py [--bindsd PATH] [--rounds 3]
                                                           [--orm-n 1000] [--many-n 5000]

Starts its own bindsd (binds pg and my, default pools) on a temporary Unix socket and TCP port, then
per backend, in interleaved rounds (the contenders' order rotates each round), measures:

  orm   --orm-n ORM objects, each `session.add(obj); session.commit()` (BEGIN, INSERT, COMMIT)
  get   --orm-n ORM point selects, each `with Session() as s: s.get(Item, key)` (BEGIN, SELECT,
        and the rollback when the session closes)
  many  cursor.executemany of --many-n INSERT rows, then commit()
  rt    --orm-n × `SELECT 1` on a DB-API cursor: one round trip, what a hop through bindsd costs
  tx    --orm-n × (INSERT, commit()) on a DB-API cursor: the ORM loop without SQLAlchemy's own work

for `postgresql+binds` vs `postgresql+psycopg2` and `mysql+binds` vs `mysql+pymysql` (both take
the URL as given, TLS included when the server offers it), plus, for `many`, the driver's former
one-round-trip-per-row loop (`binds execute loop`) for reference. Prints medians of the rounds;
asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import orm

REPO = Path(__file__).resolve().parents[2]
BIND_OF = {"postgresql": "pg", "mysql": "my"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bindsd(binary: str, urls: dict, root: Path):
    port = free_port()
    sock = root / "bindsd.sock"
    lines = ["listen:", f"  unix: {sock}", f"  tcp: 127.0.0.1:{port}",
             f"default: {BIND_OF[next(iter(urls))]}", "binds:"]
    lines += [f"  {BIND_OF[b]}: {u}" for b, u in urls.items()]
    (root / "binds.yaml").write_text("\n".join(lines) + "\n")
    log = open(root / "bindsd.log", "ab")
    proc = subprocess.Popen([binary, "--config", str(root / "binds.yaml")], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            sys.exit(f"bindsd exited: {(root / 'bindsd.log').read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit("bindsd did not start listening")
            time.sleep(0.05)


def direct_url(backend: str, url: str) -> str:
    u = urllib.parse.urlsplit(url)
    scheme = "postgresql+psycopg2" if backend == "postgresql" else "mysql+pymysql"
    return urllib.parse.urlunsplit((scheme,) + tuple(u[1:]))


class Base(orm.declarative_base()):
    __abstract__ = True


class Item(Base):
    __tablename__ = "bench_py_item"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(50), nullable=False)
    qty = sa.Column(sa.Integer, nullable=False)


def fresh_table(engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


def run_orm(engine, n: int) -> float:
    fresh_table(engine)
    with orm.Session(engine) as s:
        t0 = time.perf_counter()
        for i in range(n):
            s.add(Item(name=f"item {i}", qty=i))
            s.commit()
        elapsed = time.perf_counter() - t0
        assert s.query(Item).count() == n
    return elapsed


def run_get(engine, n: int) -> float:
    """n point selects by primary key, each in its own short session, as a web request makes one:
    the session's transaction begins with the SELECT and is rolled back when the session closes."""
    fresh_table(engine)
    keys = 100
    with orm.Session(engine) as s:
        s.add_all([Item(id=i, name=f"item {i}", qty=i) for i in range(1, keys + 1)])
        s.commit()
    total = 0
    t0 = time.perf_counter()
    for i in range(n):
        with orm.Session(engine) as s:
            total += s.get(Item, i % keys + 1).qty
    elapsed = time.perf_counter() - t0
    assert total == sum(i % keys + 1 for i in range(n))
    return elapsed


def run_rt(engine, n: int) -> float:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        raw.commit()
        t0 = time.perf_counter()
        for _ in range(n):
            cur.execute("SELECT 1")
            cur.fetchall()
        elapsed = time.perf_counter() - t0
        raw.commit()
    finally:
        raw.close()
    return elapsed


def run_tx(engine, n: int) -> float:
    fresh_table(engine)
    sql = "INSERT INTO bench_py_item (name, qty) VALUES (%s, %s)"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        t0 = time.perf_counter()
        for i in range(n):
            cur.execute(sql, (f"item {i}", i))
            raw.commit()
        elapsed = time.perf_counter() - t0
    finally:
        raw.close()
    return elapsed


def run_many(engine, n: int, serial: bool = False) -> float:
    fresh_table(engine)
    rows = [(i, f"item {i}", i) for i in range(1, n + 1)]  # MySQL makes an id 0 a new one
    sql = "INSERT INTO bench_py_item (id, name, qty) VALUES (%s, %s, %s)"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        t0 = time.perf_counter()
        if serial:
            for r in rows:
                cur.execute(sql, r)
        else:
            cur.executemany(sql, rows)
        raw.commit()
        elapsed = time.perf_counter() - t0
        cur.execute("SELECT count(*) FROM bench_py_item")
        assert cur.fetchone()[0] == n
        raw.commit()
    finally:
        raw.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindsd", default=os.environ.get("BINDSD", str(REPO / "build-test/server/bindsd")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--orm-n", type=int, default=1000)
    ap.add_argument("--many-n", type=int, default=5000)
    args = ap.parse_args()
    urls = {b: os.environ[v] for b, v in (("postgresql", "BINDS_TEST_PG_URL"),
                                            ("mysql", "BINDS_TEST_MYSQL_URL")) if os.environ.get(v)}
    if not urls:
        sys.exit("set BINDS_TEST_PG_URL and/or BINDS_TEST_MYSQL_URL (scripts/testdb.sh start DIR; . DIR/env)")
    root = Path(tempfile.mkdtemp(prefix="binds-orm-bench-"))
    proc, port = start_bindsd(args.bindsd, urls, root)
    try:
        # (backend, workload, contender) -> run(n)
        cases = {}
        engines = []
        for backend, url in urls.items():
            via = sa.create_engine(f"{backend}+binds://127.0.0.1:{port}/{BIND_OF[backend]}?timeout=120")
            direct = sa.create_engine(direct_url(backend, url))
            engines += [via, direct]
            dname = "psycopg2" if backend == "postgresql" else "pymysql"
            cases[(backend, "orm", "binds")] = lambda n, e=via: run_orm(e, n)
            cases[(backend, "orm", dname)] = lambda n, e=direct: run_orm(e, n)
            cases[(backend, "get", "binds")] = lambda n, e=via: run_get(e, n)
            cases[(backend, "get", dname)] = lambda n, e=direct: run_get(e, n)
            cases[(backend, "tx", "binds")] = lambda n, e=via: run_tx(e, n)
            cases[(backend, "tx", dname)] = lambda n, e=direct: run_tx(e, n)
            cases[(backend, "rt", "binds")] = lambda n, e=via: run_rt(e, n)
            cases[(backend, "rt", dname)] = lambda n, e=direct: run_rt(e, n)
            cases[(backend, "many", "binds")] = lambda n, e=via: run_many(e, n)
            cases[(backend, "many", "binds execute loop")] = lambda n, e=via: run_many(e, n, True)
            cases[(backend, "many", dname)] = lambda n, e=direct: run_many(e, n)
        for run in cases.values():  # warm-up: connections, dialect set-up, statement caches
            run(20)
        results = {key: [] for key in cases}
        groups = {}
        for key in cases:
            groups.setdefault(key[:2], []).append(key)
        for r in range(args.rounds):
            for group in groups.values():
                order = group[r % len(group):] + group[:r % len(group)]
                for key in order:
                    results[key].append(cases[key](args.many_n if key[1] == "many" else args.orm_n))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        for e in engines:
            Base.metadata.drop_all(e)
            e.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)

    print(f"\nmedians of {args.rounds} interleaved rounds; orm = {args.orm_n} x (add + commit), "
          f"get = {args.orm_n} x Session.get in a session of its own, "
          f"many = executemany of {args.many_n} rows + commit, tx = {args.orm_n} x (INSERT + commit), "
          f"rt = {args.orm_n} x SELECT 1\n")
    print("| backend | workload | contender | median s | per op µs | ops/s |")
    print("|---|---|---|---:|---:|---:|")
    for (backend, workload, who), times in results.items():
        n = args.many_n if workload == "many" else args.orm_n
        med = statistics.median(times)
        print(f"| {backend} | {workload} | {who} | {med:.3f} | {med / n * 1e6:.0f} | {n / med:,.0f} |")


if __name__ == "__main__":
    main()
