"""DB-API 2.0 conformance of the binds driver on PostgreSQL, MariaDB and SQLite through bindsd."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest

import binds
from conftest import BIND_OF, need

TABLES = {
    "postgresql": ("CREATE TABLE {t} (id SERIAL PRIMARY KEY, i BIGINT, f DOUBLE PRECISION, s TEXT, "
                   "b BYTEA, d NUMERIC(20,6), dt DATE, tm TIME, ts TIMESTAMP, u UUID, bo BOOLEAN, "
                   "j JSON)"),
    "mysql": ("CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, i BIGINT, f DOUBLE, s TEXT, "
              "b BLOB, d DECIMAL(20,6), dt DATE, tm TIME(6), ts DATETIME(6), u CHAR(36), "
              "bo BOOLEAN, j JSON)"),
    "sqlite": ("CREATE TABLE {t} (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, "
               "d DECIMAL(20,6), dt DATE, tm TIME, ts DATETIME, u TEXT, bo BOOLEAN, j JSON)"),
}


def ph(conn, n):
    return ", ".join(["?" if conn.backend == "sqlite" else "%s"] * n)


def fresh(conn, name, backend):
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    cur.execute(TABLES[backend].format(t=name))
    conn.commit()
    return cur


# -- module ------------------------------------------------------------------------------------------
def test_module_globals():
    assert binds.apilevel == "2.0"
    assert binds.threadsafety == 1
    assert binds.paramstyle == "pyformat"
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
                 "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                 "NotSupportedError"):
        assert issubclass(getattr(binds, name), Exception)
    assert issubclass(binds.InterfaceError, binds.Error)
    assert issubclass(binds.DatabaseError, binds.Error)
    for name in ("DataError", "OperationalError", "IntegrityError", "InternalError",
                 "ProgrammingError", "NotSupportedError"):
        assert issubclass(getattr(binds, name), binds.DatabaseError)
    assert not issubclass(binds.Warning, binds.Error)


def test_type_objects_and_constructors():
    assert binds.NUMBER == "int64" and binds.NUMBER == "decimal" and binds.NUMBER != "text"
    assert binds.STRING == "text" and binds.BINARY == "bytes"
    assert binds.DATETIME == "timestamp" and binds.DATETIME == "date" and binds.DATETIME != "int64"
    assert binds.ROWID != "int64"
    assert binds.Date(2024, 2, 29) == dt.date(2024, 2, 29)
    assert binds.Time(13, 45, 1) == dt.time(13, 45, 1)
    assert binds.Timestamp(2024, 2, 29, 1, 2, 3) == dt.datetime(2024, 2, 29, 1, 2, 3)
    assert binds.Binary(b"\x00\x01") == b"\x00\x01"
    assert isinstance(binds.DateFromTicks(0), dt.date)
    assert isinstance(binds.TimeFromTicks(0), dt.time)
    assert isinstance(binds.TimestampFromTicks(0), dt.datetime)


# -- connecting ----------------------------------------------------------------------------------------
def test_connect_unix_and_tcp(daemon, backend):
    c1 = binds.connect(unix_socket=daemon.sock_path, bind=BIND_OF[backend])
    c2 = binds.connect("127.0.0.1", daemon.port, database=BIND_OF[backend])
    for c in (c1, c2):
        assert c.backend == backend and c.bind == BIND_OF[backend]
        cur = c.cursor()
        cur.execute("SELECT 40 + 2")
        assert cur.fetchone() == (42,)
        c.close()
        assert c.closed
        with pytest.raises(binds.InterfaceError):
            c.cursor()


def test_wrong_backend_and_unknown_bind(daemon, backend):
    other = "sqlite" if backend != "sqlite" else "postgresql"
    with pytest.raises(binds.InterfaceError) as ei:
        binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], backend=other)
    assert f"is a {backend} database, not {other}" in str(ei.value)
    with pytest.raises(binds.OperationalError) as ei:
        binds.connect("127.0.0.1", daemon.port, "no_such_bind")
    assert "no_such_bind" in str(ei.value)


def test_connect_refused():
    port = __import__("conftest").free_port()
    with pytest.raises(binds.OperationalError) as ei:
        binds.connect("127.0.0.1", port, "main", connect_timeout=2)
    assert ei.value.disconnect


# -- values --------------------------------------------------------------------------------------------
def test_type_round_trip(dbapi_conn, backend):
    conn = dbapi_conn
    cur = fresh(conn, "py_types", backend)
    u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    row = (-(2 ** 62), 3.25, "héllo ✓ 'quoted' %s", b"\x00\x01\xff", Decimal("-12.340000"),
           dt.date(2024, 2, 29), dt.time(13, 45, 0, 250000), dt.datetime(2024, 2, 29, 13, 45, 1, 500000),
           u, True, binds.Json({"a": [1, 2, None], "b": "x"}))
    cur.execute(f"INSERT INTO py_types (i, f, s, b, d, dt, tm, ts, u, bo, j) VALUES ({ph(conn, 11)})", row)
    assert cur.rowcount == 1
    cur.execute(f"INSERT INTO py_types (i, s) VALUES ({ph(conn, 2)})", (None, ""))
    conn.commit()
    cur.execute("SELECT i, f, s, b, d, dt, tm, ts, u, bo, j FROM py_types ORDER BY id")
    names = [d[0] for d in cur.description]
    assert names == ["i", "f", "s", "b", "d", "dt", "tm", "ts", "u", "bo", "j"]
    types = [d[1] for d in cur.description]
    assert types[0] == binds.NUMBER and types[1] == binds.NUMBER and types[2] == binds.STRING
    assert types[3] == binds.BINARY and types[4] == binds.NUMBER
    assert types[5] == binds.DATETIME and types[6] == binds.DATETIME and types[7] == binds.DATETIME
    r1, r2 = cur.fetchall()
    assert r1[0] == -(2 ** 62) and isinstance(r1[0], int)
    assert r1[1] == 3.25 and isinstance(r1[1], float)
    assert r1[2] == "héllo ✓ 'quoted' %s"
    assert r1[3] == b"\x00\x01\xff" and isinstance(r1[3], bytes)
    assert r1[4] == Decimal("-12.34") and isinstance(r1[4], Decimal)
    assert r1[5] == dt.date(2024, 2, 29)
    assert r1[6] == dt.time(13, 45, 0, 250000)
    assert r1[7] == dt.datetime(2024, 2, 29, 13, 45, 1, 500000)
    if backend == "postgresql":
        assert r1[8] == u and isinstance(r1[8], uuid.UUID)
        assert r1[9] is True
        assert r1[10] == {"a": [1, 2, None], "b": "x"}
    elif backend == "mysql":
        assert r1[8] == str(u)
        assert r1[9] == 1  # TINYINT(1)
        # MariaDB's JSON is LONGTEXT marked format=json in its column metadata: a json column.
        assert r1[10] == {"a": [1, 2, None], "b": "x"}
    else:
        assert r1[8] == str(u)
        assert r1[9] in (True, 1)
        assert r1[10] == {"a": [1, 2, None], "b": "x"}
    # NULL vs empty string
    assert r2[0] is None and r2[2] == "" and r2[3] is None and r2[4] is None


def test_scalar_params_echo(dbapi_conn, backend):
    cur = dbapi_conn.cursor()
    p = "?" if backend == "sqlite" else "%s"
    for v in (None, 0, 2 ** 63 - 1, -(2 ** 63), 1.5, "", "x", b"", b"\x00"):
        cur.execute(f"SELECT {p}" if backend != "postgresql" or v is not None else "SELECT %s::text", (v,))
        got = cur.fetchone()[0]
        assert got == v and type(got) is type(v), (v, got)
    cur.execute(f"SELECT {p} AS a", (True,))
    assert cur.fetchone()[0] in (True, 1)


def test_large_int_and_special_decimal(dbapi_conn, backend):
    if backend != "postgresql":
        pytest.skip("NUMERIC of arbitrary size: PostgreSQL")
    cur = dbapi_conn.cursor()
    cur.execute("SELECT %s::numeric, %s::numeric, 'infinity'::date, 'NaN'::numeric",
                (2 ** 70, Decimal("1E-30")))
    big, small, inf, nan = cur.fetchone()
    assert big == Decimal(2 ** 70) and small == Decimal("1E-30")
    assert isinstance(inf, binds.Tagged) and inf.text == "infinity"
    assert nan.is_nan()


# -- cursor behaviour --------------------------------------------------------------------------------
def test_fetch_methods_and_description(dbapi_conn, backend):
    conn = dbapi_conn
    cur = fresh(conn, "py_fetch", backend)
    cur.executemany(f"INSERT INTO py_fetch (i, s) VALUES ({ph(conn, 2)})",
                    [(n, f"row{n}") for n in range(10)])
    assert cur.rowcount == 10
    conn.commit()
    with pytest.raises(binds.ProgrammingError):
        cur.fetchone()  # the last statement returned no rows
    cur.execute("SELECT i, s FROM py_fetch ORDER BY i")
    assert cur.description[0][0] == "i" and len(cur.description[0]) == 7
    assert cur.fetchone() == (0, "row0")
    assert cur.arraysize == 1 and cur.fetchmany() == [(1, "row1")]
    cur.arraysize = 3
    assert cur.fetchmany() == [(2, "row2"), (3, "row3"), (4, "row4")]
    assert cur.fetchmany(2) == [(5, "row5"), (6, "row6")]
    assert [r for r in cur] == [(7, "row7"), (8, "row8"), (9, "row9")]
    assert cur.fetchone() is None and cur.fetchall() == [] and cur.fetchmany(5) == []
    assert cur.rowcount == 10
    cur.execute(f"UPDATE py_fetch SET s = {ph(conn, 1)} WHERE i >= {ph(conn, 1)}", ("big", 5))
    assert cur.rowcount == 5 and cur.description is None
    cur.execute(f"DELETE FROM py_fetch WHERE i < {ph(conn, 1)}", (3,))
    assert cur.rowcount == 3
    conn.commit()
    cur.execute("SELECT count(*) FROM py_fetch WHERE s = 'big'")
    assert cur.fetchall() == [(5,)]
    cur.close()
    with pytest.raises(binds.InterfaceError):
        cur.execute("SELECT 1")


def test_lastrowid_and_returning(dbapi_conn, backend):
    conn = dbapi_conn
    cur = fresh(conn, "py_ids", backend)
    if backend == "postgresql":
        cur.execute("INSERT INTO py_ids (s) VALUES (%s) RETURNING id", ("a",))
        first = cur.fetchone()[0]
        cur.execute("INSERT INTO py_ids (s) VALUES (%s) RETURNING id", ("b",))
        assert cur.fetchone()[0] == first + 1
        assert cur.lastrowid is None
    else:
        cur.execute(f"INSERT INTO py_ids (s) VALUES ({ph(conn, 1)})", ("a",))
        first = cur.lastrowid
        assert isinstance(first, int) and first >= 1
        cur.execute(f"INSERT INTO py_ids (s) VALUES ({ph(conn, 1)})", ("b",))
        assert cur.lastrowid == first + 1
        cur.execute("SELECT 1")
        assert cur.lastrowid is None
    conn.commit()


def test_two_cursors_interleaved(dbapi_conn, backend):
    """A second statement while the first result is still streaming: the first stays readable."""
    conn = dbapi_conn
    c1, c2 = conn.cursor(), conn.cursor()
    gen = {"postgresql": "SELECT g FROM generate_series(1, 3000) AS g",
           "mysql": "SELECT seq FROM seq_1_to_3000",
           "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) "
                     "SELECT x FROM c"}[backend]
    c1.execute(gen)
    assert c1.fetchone() == (1,)
    c2.execute("SELECT 7")
    assert c2.fetchall() == [(7,)]
    rest = c1.fetchall()
    assert len(rest) == 2999 and rest[-1] == (3000,)
    # closing a half-read cursor leaves the connection usable
    c1.execute(gen)
    assert c1.fetchmany(10)[-1] == (10,)
    c1.close()
    c2.execute("SELECT 8")
    assert c2.fetchone() == (8,)


# -- errors ------------------------------------------------------------------------------------------
def test_integrity_error_unique(dbapi_conn, backend):
    conn = dbapi_conn
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS py_uniq")
    cur.execute("CREATE TABLE py_uniq (id INTEGER PRIMARY KEY, email VARCHAR(100) UNIQUE)")
    conn.commit()
    p = ph(conn, 2)
    cur.execute(f"INSERT INTO py_uniq (id, email) VALUES ({p})", (1, "a@x"))
    conn.commit()
    with pytest.raises(binds.IntegrityError) as ei:
        cur.execute(f"INSERT INTO py_uniq (id, email) VALUES ({p})", (2, "a@x"))
    e = ei.value
    assert e.code == "SQL_ERROR" and e.bind == BIND_OF[backend]
    if backend == "postgresql":
        assert e.sqlstate == "23505"
    elif backend == "mysql":
        assert e.errno == 1062 and e.sqlstate == "23000"
    else:
        assert e.errno == 2067
    conn.rollback()
    with pytest.raises(binds.IntegrityError) as ei:
        cur.execute(f"INSERT INTO py_uniq (id, email) VALUES ({p})", (1, "b@x"))  # primary key
    conn.rollback()
    cur.execute("SELECT count(*) FROM py_uniq")
    assert cur.fetchone() == (1,)


def test_programming_errors(dbapi_conn, backend):
    cur = dbapi_conn.cursor()
    with pytest.raises(binds.ProgrammingError) as ei:
        cur.execute("SELEC 1")
    assert ei.value.code == "SQL_ERROR"
    dbapi_conn.rollback()
    with pytest.raises(binds.ProgrammingError):
        cur.execute("SELECT * FROM py_no_such_table")
    dbapi_conn.rollback()
    with pytest.raises(binds.ProgrammingError):
        cur.execute("SELECT %s" if backend != "sqlite" else "SELECT ?", (1, 2))  # too many params
    with pytest.raises(binds.ProgrammingError):
        cur.execute("SELECT %s" if backend != "sqlite" else "SELECT ?", (object(),))
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)


# -- transactions --------------------------------------------------------------------------------------
def test_implicit_transaction_commit_rollback_close(daemon, backend):
    need(backend)
    bind = BIND_OF[backend]
    a = binds.connect("127.0.0.1", daemon.port, bind, timeout=60)
    cur = fresh(a, "py_tx", backend)
    p = ph(a, 1)
    assert not a.in_transaction
    cur.execute(f"INSERT INTO py_tx (i) VALUES ({p})", (1,))
    assert a.in_transaction
    assert a.transactions == "frames"  # BEGIN/COMMIT/ROLLBACK requests (§6.5), not SQL text
    a.rollback()
    assert not a.in_transaction
    cur.execute(f"INSERT INTO py_tx (i) VALUES ({p})", (2,))
    a.commit()
    cur.execute(f"INSERT INTO py_tx (i) VALUES ({p})", (3,))
    a.close()  # not committed: rolled back
    b = binds.connect("127.0.0.1", daemon.port, bind, timeout=60)
    bc = b.cursor()
    bc.execute("SELECT i FROM py_tx ORDER BY i")
    assert bc.fetchall() == [(2,)]
    # context manager commits on success, rolls back on error
    with b:
        bc.execute(f"INSERT INTO py_tx (i) VALUES ({p})", (4,))
    with pytest.raises(ZeroDivisionError):
        with b:
            bc.execute(f"INSERT INTO py_tx (i) VALUES ({p})", (5,))
            1 / 0
    bc.execute("SELECT i FROM py_tx ORDER BY i")
    assert bc.fetchall() == [(2,), (4,)]
    b.commit()
    # autocommit: each statement stands alone
    b.autocommit = True
    bc.execute(f"INSERT INTO py_tx (i) VALUES ({p})", (6,))
    assert not b.in_transaction
    b.rollback()
    bc.execute("SELECT max(i) FROM py_tx")
    assert bc.fetchone() == (6,)
    b.close()


def test_uncommitted_is_invisible_to_others(daemon, backend):
    need(backend)
    if backend == "sqlite":
        pytest.skip("SQLite readers see the last committed state too, but a writer blocks writers")
    bind = BIND_OF[backend]
    a = binds.connect("127.0.0.1", daemon.port, bind, timeout=60)
    b = binds.connect("127.0.0.1", daemon.port, bind, timeout=60, autocommit=True)
    cur = fresh(a, "py_iso", backend)
    cur.execute(f"INSERT INTO py_iso (i) VALUES ({ph(a, 1)})", (1,))
    bc = b.cursor()
    bc.execute("SELECT count(*) FROM py_iso")
    assert bc.fetchone() == (0,)
    a.commit()
    bc.execute("SELECT count(*) FROM py_iso")
    assert bc.fetchone() == (1,)
    a.close()
    b.close()


def test_isolation_and_read_only(daemon, backend):
    need(backend)
    if backend == "sqlite":
        c = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], isolation_level="serializable")
    else:
        c = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], isolation_level="repeatable read",
                          read_only=True)
    cur = c.cursor()
    if backend == "postgresql":
        cur.execute("SHOW transaction_isolation")
        assert cur.fetchone() == ("repeatable read",)
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone() == ("on",)
    else:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    assert c.in_transaction
    if backend != "sqlite":  # SQLite ignores read_only (§6.5)
        w = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], autocommit=True)
        fresh(w, "py_ro", backend)
        w.close()
        with pytest.raises(binds.DatabaseError):
            cur.execute("INSERT INTO py_ro (i) VALUES (1)")
    c.rollback()
    assert not c.in_transaction
    c.close()


def test_bindsd_restart_mid_transaction(daemon, backend):
    conn = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], timeout=60)
    cur = fresh(conn, "py_restart", backend)
    cur.execute(f"INSERT INTO py_restart (i) VALUES ({ph(conn, 1)})", (1,))
    assert conn.in_transaction
    daemon.restart()
    assert not conn.is_alive()
    with pytest.raises(binds.OperationalError) as ei:
        cur.execute("SELECT 1")
    assert ei.value.disconnect and "bindsd" in str(ei.value)
    conn.rollback()  # nothing to roll back any more: the server did it; no error
    with pytest.raises(binds.InterfaceError):
        conn.cursor()
    conn.close()
    c2 = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], timeout=60)
    k = c2.cursor()
    k.execute("SELECT count(*) FROM py_restart")
    assert k.fetchone() == (0,)
    c2.close()


@pytest.mark.parametrize("sql_mode", [False, True])
def test_commit_raises_when_the_backend_session_died(daemon, backend, sql_mode):
    """The backend session holding the transaction dies while the client idles: nothing of it may be
    committed, and commit() must raise (as psycopg2 does), not return as if it had committed."""
    if backend == "sqlite":
        pytest.skip("a SQLite session cannot be killed from outside")
    opts = {"transactions": "sql"} if sql_mode else {}
    conn = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], timeout=60, **opts)
    cur = fresh(conn, "py_lost", backend)
    conn.commit()
    cur.execute(f"INSERT INTO py_lost (i) VALUES ({ph(conn, 1)})", (1,))
    assert conn.in_transaction
    cur.execute("SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()")
    pid = cur.fetchone()[0]
    killer = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], autocommit=True)
    killer.cursor().execute(f"SELECT pg_terminate_backend({int(pid)})" if backend == "postgresql"
                            else f"KILL CONNECTION {int(pid)}")
    killer.close()
    time.sleep(2.5)  # past the pool's idle-validation threshold, where the old bug struck
    with pytest.raises(binds.OperationalError):
        cur.execute(f"INSERT INTO py_lost (i) VALUES ({ph(conn, 1)})", (2,))
    with pytest.raises(binds.OperationalError):
        conn.commit()
    assert conn.in_transaction  # still needs a rollback
    conn.rollback()
    assert not conn.in_transaction
    cur.execute("SELECT count(*) FROM py_lost")
    assert cur.fetchone() == (0,)
    conn.rollback()
    conn.close()


def test_application_name_reaches_postgresql_and_clashes_with_client_name(daemon):
    need("postgresql")
    sql = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
    with binds.connect("127.0.0.1", daemon.port, BIND_OF["postgresql"], timeout=60,
                       application_name="py-report-job", autocommit=True) as c:
        cur = c.cursor()
        cur.execute(sql)
        assert cur.fetchone()[0] == "py-report-job"
    with pytest.raises(TypeError):
        binds.connect("127.0.0.1", daemon.port, BIND_OF["postgresql"], application_name="a", client_name="b")
