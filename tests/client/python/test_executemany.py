"""executemany pipelines its statements (no round trip per row), and a BEGIN goes out with the
statement behind it; errors are reported at the statement that failed, the connection in step."""

from __future__ import annotations

import msgpack
import pytest

import binds
from binds import errors
from binds import protocol as P
from binds.dbapi import MAX_IN_FLIGHT, MULTI_ROW_PARAMS
from conftest import BIND_OF, connect_and_run, need

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
        self.in_tx = {}   # request id -> the QUERY's in_tx field (None when absent)
        t = c._t
        send_bytes, send_pipelined, read = t.send_bytes, t.send_pipelined, t.read

        def frames(data):
            self.writes.append([])
            pos = 0
            while pos < len(data):
                length, ftype, _f, _r, rid = P.HEADER.unpack_from(data, pos)
                self.log.append(("send", ftype, rid))
                self.writes[-1].append(ftype)
                if ftype == P.QUERY:
                    body = msgpack.unpackb(data[pos + P.HEADER_SIZE:pos + P.HEADER_SIZE + length])
                    self.in_tx[rid] = body.get("in_tx")
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
    statements = len(sent_queries(rec))
    conn.commit()
    assert ids(conn) == list(range(5000))
    if conn.backend == "mysql":
        # as pymysql does: multi-row INSERTs, MULTI_ROW_PARAMS values each
        assert statements == -(-5000 // (MULTI_ROW_PARAMS // 2))
        return
    # pipelined: many statements in flight at once, never more than the bound
    assert MAX_IN_FLIGHT // 2 < rec.max_unanswered() <= MAX_IN_FLIGHT + 1


def test_executemany_as_multirow_inserts_on_mysql(daemon):
    """MySQL: INSERT ... VALUES goes as multi-row INSERTs in chunks MySQL accepts (at most 65,535
    placeholders each, MULTI_ROW_PARAMS values here), the values still bound; anything else, one
    statement per row."""
    need("mysql")
    c = connect_and_run(daemon, BIND_OF["mysql"], [
        "DROP TABLE IF EXISTS em_multi",
        "CREATE TABLE em_multi (id INT PRIMARY KEY, v VARCHAR(40), n INT NOT NULL DEFAULT 0) ENGINE=InnoDB"])
    try:
        cur = c.cursor()
        rec = Recorder(c)
        rows = [(i, f"it's %s {i}") for i in range(70_000)]
        cur.executemany("insert into em_multi (id, v) values (%s, %s)", rows)
        assert cur.rowcount == 70_000
        assert len(sent_queries(rec)) == -(-70_000 // (MULTI_ROW_PARAMS // 2))
        c.commit()
        cur.execute("SELECT count(*), min(v), max(id) FROM em_multi")
        assert cur.fetchone() == (70_000, "it's %s 0", 69_999)
        c.commit()
        # pyformat with names, and ON DUPLICATE KEY UPDATE after the group
        rec = Recorder(c)
        cur.executemany("INSERT INTO em_multi (id, v) VALUES (%(id)s, %(v)s) "
                        "ON DUPLICATE KEY UPDATE n = n + 1",
                        [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}, {"id": 70_001, "v": "new"}])
        assert len(sent_queries(rec)) == 1
        assert cur.rowcount == 5  # MySQL counts 2 per updated row, 1 per inserted
        c.commit()
        cur.execute("SELECT id, n FROM em_multi WHERE id IN (1, 2, 70001) ORDER BY id")
        assert cur.fetchall() == [(1, 1), (2, 1), (70_001, 0)]
        c.commit()
        # not a plain VALUES list: one statement per row, as before
        rec = Recorder(c)
        cur.executemany("INSERT INTO em_multi (id, v) SELECT %s, %s FROM DUAL", [(80_000, "a"), (80_001, "b")])
        assert len(sent_queries(rec)) == 2 and cur.rowcount == 2
        rec = Recorder(c)
        cur.executemany("INSERT INTO em_multi (id, v) VALUES (%s, CONCAT(%s, '!'))", [(80_002, "a"), (80_003, "b")])
        assert len(sent_queries(rec)) == 2 and cur.rowcount == 2
        # a failing row in a later chunk: its exact index, the rows before it in, nothing after
        cur.execute("DELETE FROM em_multi")
        c.commit()
        cur.execute("INSERT INTO em_multi (id, v) VALUES (40000, 'taken')")
        c.commit()
        with pytest.raises(errors.IntegrityError) as ei:
            cur.executemany("INSERT INTO em_multi (id, v) VALUES (%s, %s)", [(i, "r") for i in range(70_000)])
        assert ei.value.executemany_index == 40_000 and ei.value.errno == 1062
        c.commit()
        cur.execute("SELECT count(*), max(id) FROM em_multi")
        n, top = cur.fetchone()
        assert top <= 40_000 + MAX_IN_FLIGHT and n >= 40_000 + 1  # rows 0..39999, the taken one, a few sent behind
        c.commit()
        cur.execute("DROP TABLE em_multi")
    finally:
        c.close()


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
        # MySQL: one multi-row INSERT, whose LAST_INSERT_ID() is its first row's, as with pymysql
        assert cur.rowcount == 3 and cur.lastrowid == (1 if backend == "mysql" else 3)
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


def sent_queries(rec) -> list:
    return [rid for what, ftype, rid in rec.log if what == "send" and ftype == P.QUERY]


def test_begin_goes_out_with_the_statement_behind_it(conn):
    """BEGIN and the statement that needs it go in one write (one round trip for both), the
    statement marked in_tx, so a BEGIN that failed could not leave it to run on its own."""
    assert conn._in_tx_ok, "bindsd lists in_tx in HELLO_OK features"
    cur = conn.cursor()
    into = {"postgresql": "SELECT 1 INTO TEMP em_into", "mysql": "SELECT 1 INTO @em_x"}.get(conn.backend)
    for sql, params in [(insert_sql(conn), (1, "a")), ("SELECT id FROM em_t ORDER BY id", None),
                        ("/* c */ WITH x AS (SELECT 1) SELECT * FROM x", None)] + ([(into, None)] if into else []):
        rec = Recorder(conn)
        cur.execute(sql, params)
        assert rec.writes[0] == [P.BEGIN, P.QUERY], sql
        assert [rec.in_tx[r] for r in sent_queries(rec)] == [True], sql
        assert conn.in_transaction, sql
        if sql.startswith("INSERT"):
            conn.commit()
        else:
            conn.rollback()
    assert ids(conn) == [1]
    conn.rollback()
    # Inside the transaction nothing more is marked: the flag is for what follows an unanswered BEGIN.
    cur.execute(insert_sql(conn), (2, "b"))
    rec = Recorder(conn)
    cur.execute(insert_sql(conn), (3, "c"))
    assert [rec.in_tx[r] for r in sent_queries(rec)] == [None]
    conn.commit()
    assert ids(conn) == [1, 2, 3]
    conn.rollback()

    # the BEGIN succeeds, the INSERT behind it fails: the INSERT's error, inside the transaction
    with pytest.raises(errors.UniqueViolation) as ei:
        cur.execute(insert_sql(conn), (1, "dup"))
    assert ei.value.code == "SQL_ERROR" and ei.value.executemany_index is None
    assert conn.in_transaction
    conn.rollback()

    # executemany: BEGIN and every statement in one pipeline, each statement marked
    rec = Recorder(conn)
    with pytest.raises(errors.UniqueViolation) as ei:
        cur.executemany(insert_sql(conn), [(1, "dup"), (4, "d")])
    one = conn.backend == "mysql"  # a multi-row INSERT
    assert sent_before_first_read(rec) == [P.BEGIN, P.QUERY] + ([] if one else [P.QUERY])
    first = [rid for what, ftype, rid in rec.log[:len(sent_before_first_read(rec))] if ftype == P.QUERY]
    assert [rec.in_tx[r] for r in first] == [True] * (1 if one else 2)
    assert ei.value.executemany_index == 0
    conn.rollback()
    cur.executemany(insert_sql(conn), [(4, "d"), (5, "e")])
    conn.commit()
    assert ids(conn) == [1, 2, 3, 4, 5]


def test_begin_on_a_server_without_in_tx_waits_before_a_write(conn):
    """Against a bindsd that does not list in_tx (older), only a plain SELECT goes behind an
    unanswered BEGIN: a write waits for BEGIN's answer."""
    conn._in_tx_ok = False  # what _handshake sets for such a server
    cur = conn.cursor()
    cur.execute(insert_sql(conn), (1, "a"))  # the first BEGIN of a connection waits for its answer
    conn.commit()
    rec = Recorder(conn)
    cur.execute("SELECT id FROM em_t ORDER BY id")
    assert rec.writes[0] == [P.BEGIN, P.QUERY]
    assert [rec.in_tx[r] for r in sent_queries(rec)] == [None]  # never sent to such a server
    assert cur.fetchall() == [(1,)] and conn.in_transaction
    conn.rollback()
    rec = Recorder(conn)
    cur.execute(insert_sql(conn), (2, "b"))
    assert sent_before_first_read(rec) == [P.BEGIN]
    conn.rollback()
    rec = Recorder(conn)
    cur.executemany(insert_sql(conn), [(3, "c"), (4, "d")])
    assert sent_before_first_read(rec) == [P.BEGIN]
    assert [rec.in_tx[r] for r in sent_queries(rec)] == [None] * (1 if conn.backend == "mysql" else 2)
    conn.commit()
    assert ids(conn) == [1, 3, 4]


@pytest.fixture
def sqlite_read_committed(daemon):
    """A SQLite connection set to read_committed, which SQLite's BEGIN refuses (BAD_REQUEST)."""
    c = connect_and_run(daemon, "appmeta", ["DROP TABLE IF EXISTS em_iso",
                                            "CREATE TABLE em_iso (id INTEGER PRIMARY KEY)"])
    c.isolation_level = "read_committed"
    yield c
    c.close()


def test_a_refused_begin_leaves_the_statements_behind_it_unrun(sqlite_read_committed):
    """A BEGIN the server refuses (SQLite has no read_committed) went out with the statement
    behind it: BEGIN's error is raised, and the statement, marked in_tx, did not run."""
    c = sqlite_read_committed
    cur = c.cursor()
    rec = Recorder(c)
    with pytest.raises(binds.ProgrammingError) as ei:
        cur.execute("INSERT INTO em_iso VALUES (1)")
    assert ei.value.code == "BAD_REQUEST" and "serializable" in str(ei.value)
    assert rec.writes[0] == [P.BEGIN, P.QUERY]
    assert not c.in_transaction
    with pytest.raises(binds.ProgrammingError) as ei:
        cur.executemany("INSERT INTO em_iso VALUES (?)", [(2,), (3,), (4,)])
    assert ei.value.code == "BAD_REQUEST"
    c.isolation_level = None
    cur.execute("SELECT count(*) FROM em_iso")
    assert cur.fetchone() == (0,)  # nothing ran outside the transaction asked for
    c.rollback()


def test_begin_refused_by_a_server_without_in_tx_is_not_pipelined(sqlite_read_committed):
    """Against an older bindsd: a BEGIN the server refuses is sent alone the first time."""
    c = sqlite_read_committed
    c._in_tx_ok = False
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
    """Against an older bindsd, should a BEGIN sent ahead of a SELECT fail all the same, its error
    is raised after the SELECT's answer was read, and says the SELECT ran outside a transaction;
    a write behind the same kind of BEGIN is never sent before BEGIN's answer, so it never runs."""
    c = sqlite_read_committed
    c._in_tx_ok = False
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
