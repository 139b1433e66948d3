"""executemany pipelines its statements (no round trip per row), and a BEGIN goes out with the
statement behind it; errors are reported at the statement that failed, the connection in step."""

from __future__ import annotations

import pytest

import binds
from binds import errors
from binds import protocol as P
from binds.dbapi import MAX_IN_FLIGHT
from conftest import BIND_OF, connect_and_run

DDL = {
    "postgresql": "CREATE TABLE {t} (id INT PRIMARY KEY, v TEXT NOT NULL)",
    "mysql": "CREATE TABLE {t} (id INT PRIMARY KEY, v TEXT NOT NULL) ENGINE=InnoDB",
    "sqlite": "CREATE TABLE {t} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
}


@pytest.fixture
def conn(daemon, backend):
    c = connect_and_run(daemon, BIND_OF[backend], ["DROP TABLE IF EXISTS em_t",
                                                   DDL[backend].format(t="em_t")])
    yield c
    if not c.closed:
        c.rollback()
        c.cursor().execute("DROP TABLE IF EXISTS em_t")
        c.commit()
        c.close()


def insert_sql(c) -> str:
    p = "?" if c.backend == "sqlite" else "%s"
    return f"INSERT INTO em_t (id, v) VALUES ({p}, {p})"


def ids(c) -> list:
    cur = c.cursor()
    cur.execute("SELECT id FROM em_t ORDER BY id")
    return [r[0] for r in cur.fetchall()]


class Recorder:
    """Records the frames a connection sends and reads, in order."""

    def __init__(self, c):
        self.log = []     # ("send" | "read", frame type, request id)
        self.writes = []  # the frame types of each write to the socket
        t = c._t
        send_bytes, send_pipelined, read = t.send_bytes, t.send_pipelined, t.read

        def frames(data):
            self.writes.append([])
            pos = 0
            while pos < len(data):
                length, ftype, _f, _r, rid = P.HEADER.unpack_from(data, pos)
                self.log.append(("send", ftype, rid))
                self.writes[-1].append(ftype)
                pos += P.HEADER_SIZE + length

        def rec_send_bytes(data):
            frames(data)
            return send_bytes(data)

        def rec_send_pipelined(data):
            frames(data)
            return send_pipelined(data)

        def rec_read():
            ftype, rid, body = read()
            self.log.append(("read", ftype, rid))
            return ftype, rid, body

        t.send_bytes, t.send_pipelined, t.read = rec_send_bytes, rec_send_pipelined, rec_read

    def max_unanswered(self) -> int:
        """The most requests sent and not yet answered at any time."""
        open_, most = set(), 0
        for what, ftype, rid in self.log:
            if what == "send":
                open_.add(rid)
                most = max(most, len(open_))
            elif ftype in P.FINAL_TYPES:
                open_.discard(rid)
        return most


def test_executemany_5000_rows(conn):
    rec = Recorder(conn)
    cur = conn.cursor()
    cur.executemany(insert_sql(conn), ((i, f"v{i}") for i in range(5000)))  # a generator is fine
    assert cur.rowcount == 5000 and cur.description is None
    conn.commit()
    assert ids(conn) == list(range(5000))
    # pipelined: many statements in flight at once, never more than the bound
    assert MAX_IN_FLIGHT // 2 < rec.max_unanswered() <= MAX_IN_FLIGHT + 1


def test_executemany_third_row_fails(conn):
    cur = conn.cursor()
    cur.execute(insert_sql(conn), (3, "existing"))
    conn.commit()
    rows = [(1, "a"), (2, "b"), (3, "dup"), (4, "d"), (5, "e")]
    with pytest.raises(binds.IntegrityError) as ei:
        cur.executemany(insert_sql(conn), rows)
    e = ei.value
    assert type(e) is errors.UniqueViolation  # the third row's error, not 25P02 of the later ones
    assert e.executemany_index == 2 and "executemany index 2" in str(e)
    assert cur.rowcount == -1
    conn.rollback()
    # in step with the server: usable at once
    assert ids(conn) == [3]
    cur.executemany(insert_sql(conn), [(1, "a"), (2, "b")])
    assert cur.rowcount == 2
    conn.commit()
    assert ids(conn) == [1, 2, 3]


def test_executemany_failure_in_autocommit(conn):
    """What the docstring says: in autocommit the statements sent behind the failing one ran."""
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(insert_sql(conn), (3, "existing"))
    with pytest.raises(errors.UniqueViolation) as ei:
        cur.executemany(insert_sql(conn), [(1, "a"), (2, "b"), (3, "dup"), (4, "d"), (5, "e")])
    assert ei.value.executemany_index == 2
    assert ids(conn) == [1, 2, 3, 4, 5]


def test_executemany_stops_sending_after_a_failure(conn):
    """Once a failure has been read, the rest of the parameters are not sent."""
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(insert_sql(conn), (2, "existing"))
    n = MAX_IN_FLIGHT * 4
    with pytest.raises(errors.UniqueViolation) as ei:
        cur.executemany(insert_sql(conn), [(i, "x") for i in range(n)])
    assert ei.value.executemany_index == 2
    got = ids(conn)
    assert got[:3] == [0, 1, 2] and len(got) <= MAX_IN_FLIGHT + 1


def test_executemany_bad_parameters_and_failing_iterator(conn):
    cur = conn.cursor()
    with pytest.raises(binds.ProgrammingError) as ei:
        cur.executemany(insert_sql(conn), [(1, "a"), (2, "b"), (3, object())])
    assert ei.value.executemany_index == 2 and "executemany index 2" in str(ei.value)
    conn.rollback()

    def rows():
        yield (1, "a")
        yield (2, "b")
        raise ValueError("no more")

    with pytest.raises(ValueError, match="no more"):
        cur.executemany(insert_sql(conn), rows())
    assert conn.in_transaction
    conn.commit()  # the statements sent were answered: the connection is in step
    assert ids(conn) == [1, 2]


def test_executemany_empty_and_returning_rows(conn):
    cur = conn.cursor()
    cur.executemany(insert_sql(conn), [])
    assert cur.rowcount == -1 and not conn.in_transaction  # nothing sent, not even BEGIN
    p = "?" if conn.backend == "sqlite" else "%s"
    cur.executemany(f"SELECT {p}", [(i,) for i in range(10)])
    assert cur.rowcount == 10 and cur.description is None
    conn.rollback()


def test_executemany_large_requests_and_answers(conn):
    """Requests and answers far beyond bindsd's client buffer (1 MiB) and the socket buffers:
    answers are taken in while requests are written, so neither side waits for the other."""
    big = "x" * 40_000
    p = "?" if conn.backend == "sqlite" else "%s"
    cur = conn.cursor()
    cur.executemany(f"SELECT {p}", [(big,)] * 600)  # 24 MB each way
    assert cur.rowcount == 600
    cur.executemany(insert_sql(conn), [(i, big) for i in range(300)])
    assert cur.rowcount == 300
    conn.commit()
    assert len(ids(conn)) == 300


def test_executemany_lastrowid(daemon, backend):
    if backend == "postgresql":
        pytest.skip("PostgreSQL has no last_insert_id")
    c = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], timeout=60, autocommit=True)
    try:
        cur = c.cursor()
        cur.execute("DROP TABLE IF EXISTS em_auto")
        auto = "INTEGER PRIMARY KEY" if backend == "sqlite" else "INT AUTO_INCREMENT PRIMARY KEY"
        cur.execute(f"CREATE TABLE em_auto (id {auto}, v TEXT)")
        p = "?" if backend == "sqlite" else "%s"
        cur.executemany(f"INSERT INTO em_auto (v) VALUES ({p})", [("a",), ("b",), ("c",)])
        assert cur.rowcount == 3 and cur.lastrowid == 3
        cur.execute("DROP TABLE em_auto")
    finally:
        c.close()


# -- BEGIN sent with the statement behind it -----------------------------------------------------
def sent_before_first_read(rec) -> list:
    out = []
    for what, ftype, _rid in rec.log:
        if what == "read":
            break
        out.append(ftype)
    return out


def test_begin_pipelined_only_with_a_select(conn):
    cur = conn.cursor()
    cur.execute(insert_sql(conn), (1, "a"))  # the first BEGIN of a connection waits for its answer
    conn.commit()
    rec = Recorder(conn)
    # A read goes in one write with its BEGIN: one round trip for both.
    cur.execute("SELECT id FROM em_t ORDER BY id")
    assert sent_before_first_read(rec) == [P.BEGIN, P.QUERY]
    assert rec.writes[0] == [P.BEGIN, P.QUERY]
    assert cur.fetchall() == [(1,)] and conn.in_transaction
    conn.rollback()

    # A write waits for BEGIN's answer: had BEGIN failed, it must not run outside the transaction.
    rec.log.clear()
    cur.execute(insert_sql(conn), (2, "b"))
    assert sent_before_first_read(rec) == [P.BEGIN]
    assert cur.rowcount == 1 and conn.in_transaction
    conn.commit()
    assert ids(conn) == [1, 2]
    conn.rollback()
    # Not plain reads: a WITH (it may hold a write) and SELECT ... INTO.
    into = {"postgresql": "SELECT 1 INTO TEMP em_into", "mysql": "SELECT 1 INTO @em_x"}.get(conn.backend)
    for sql in ["/* c */ WITH x AS (SELECT 1) SELECT * FROM x"] + ([into] if into else []):
        rec.log.clear()
        cur.execute(sql)
        assert sent_before_first_read(rec) == [P.BEGIN], sql
        conn.rollback()

    # the BEGIN succeeds, the INSERT behind it fails: the INSERT's error, inside the transaction
    rec.log.clear()
    with pytest.raises(errors.UniqueViolation) as ei:
        cur.execute(insert_sql(conn), (1, "dup"))
    assert ei.value.code == "SQL_ERROR" and ei.value.executemany_index is None
    assert conn.in_transaction
    conn.rollback()
    assert ids(conn) == [1, 2]
    conn.rollback()

    # executemany of writes: BEGIN answered first, then the statements pipelined
    rec.log.clear()
    with pytest.raises(errors.UniqueViolation) as ei:
        cur.executemany(insert_sql(conn), [(1, "dup"), (3, "c")])
    assert sent_before_first_read(rec) == [P.BEGIN]
    assert ei.value.executemany_index == 0
    conn.rollback()
    cur.executemany(insert_sql(conn), [(3, "c"), (4, "d")])
    conn.commit()
    assert ids(conn) == [1, 2, 3, 4]


@pytest.fixture
def sqlite_read_committed(daemon):
    """A SQLite connection set to read_committed, which SQLite's BEGIN refuses (BAD_REQUEST)."""
    c = connect_and_run(daemon, "appmeta", ["DROP TABLE IF EXISTS em_iso",
                                            "CREATE TABLE em_iso (id INTEGER PRIMARY KEY)"])
    c.isolation_level = "read_committed"
    yield c
    c.close()


def test_begin_refused_is_not_pipelined(sqlite_read_committed):
    """A BEGIN the server refuses is sent alone: nothing runs outside the transaction the
    application asked for."""
    c = sqlite_read_committed
    cur = c.cursor()
    rec = Recorder(c)
    with pytest.raises(binds.ProgrammingError):
        cur.execute("INSERT INTO em_iso VALUES (1)")
    assert sent_before_first_read(rec) == [P.BEGIN]
    with pytest.raises(binds.ProgrammingError):
        cur.executemany("INSERT INTO em_iso VALUES (?)", [(1,), (2,)])
    c.isolation_level = None
    cur.execute("SELECT count(*) FROM em_iso")
    assert cur.fetchone() == (0,)
    c.rollback()


def test_pipelined_begin_that_fails_says_what_ran(sqlite_read_committed):
    """Should a BEGIN sent ahead of a SELECT fail all the same, its error is raised after the
    SELECT's answer was read, and says the SELECT ran outside a transaction; a write behind the
    same kind of BEGIN is never sent before BEGIN's answer, so it never runs."""
    c = sqlite_read_committed
    cur = c.cursor()
    c._begin_ok = c._begin_key()  # as if such a BEGIN had succeeded before: it goes ahead
    with pytest.raises(binds.ProgrammingError) as ei:
        cur.execute("SELECT count(*) FROM em_iso")
    assert ei.value.code == "BAD_REQUEST" and "ran without a transaction" in str(ei.value)
    assert not c.in_transaction
    c._begin_ok = c._begin_key()
    with pytest.raises(binds.ProgrammingError) as ei:
        cur.execute("INSERT INTO em_iso VALUES (1)")
    assert "ran without a transaction" not in str(ei.value)
    c._begin_ok = c._begin_key()
    with pytest.raises(binds.ProgrammingError) as ei:
        cur.executemany("INSERT INTO em_iso VALUES (?)", [(2,), (3,), (4,)])
    assert "ran without a transaction" not in str(ei.value)
    c.isolation_level = None
    cur.execute("SELECT id FROM em_iso ORDER BY id")
    assert cur.fetchall() == []  # no write ran outside the transaction asked for
    c.rollback()
