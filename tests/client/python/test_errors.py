"""binds.errors: psycopg2-style exception classes by SQLSTATE, raised for real errors through bindsd
and compared with what psycopg2 and pymysql raise for the same statements on the same servers."""

from __future__ import annotations

import pickle
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

import binds
from binds import errors
from conftest import BIND_OF, MYSQL_URL, PG_URL, Daemon, connect_and_run, need

# the classes the issue names, with the PEP 249 class psycopg2 gives each
NAMED = {
    "UniqueViolation": binds.IntegrityError, "ForeignKeyViolation": binds.IntegrityError,
    "NotNullViolation": binds.IntegrityError, "CheckViolation": binds.IntegrityError,
    "QueryCanceled": binds.OperationalError, "DeadlockDetected": binds.OperationalError,
    "SerializationFailure": binds.OperationalError, "UndefinedTable": binds.ProgrammingError,
    "UndefinedColumn": binds.ProgrammingError, "SyntaxError": binds.ProgrammingError,
    "DivisionByZero": binds.DataError, "InvalidTextRepresentation": binds.DataError,
    "LockNotAvailable": binds.OperationalError, "InFailedSqlTransaction": binds.InternalError,
}


# -- the table -------------------------------------------------------------------------------------
def test_named_classes_and_lookup():
    for name, base in NAMED.items():
        cls = getattr(errors, name)
        assert issubclass(cls, base) and issubclass(cls, binds.DatabaseError), name
        assert cls.__module__ == "binds.errors" and cls.__name__ == name
    assert errors.lookup("23505") is errors.UniqueViolation
    assert errors.lookup("57014") is errors.QueryCanceled
    assert issubclass(errors.QueryCanceled, errors.QueryCanceledError)
    assert issubclass(errors.DeadlockDetected, errors.TransactionRollbackError)
    assert errors.SyntaxError is not SyntaxError  # the module's own, as in psycopg2.errors
    with pytest.raises(KeyError):
        errors.lookup("99999")
    from binds.errors import UniqueViolation  # importable by name too
    assert UniqueViolation is errors.UniqueViolation


def test_table_matches_psycopg2():
    """Every SQLSTATE psycopg2.errors has a class for: same name, same PEP 249 class."""
    psycopg2 = pytest.importorskip("psycopg2")
    import psycopg2.errorcodes
    import psycopg2.errors
    pep249 = ("IntegrityError", "DataError", "OperationalError", "ProgrammingError", "InternalError",
              "NotSupportedError", "DatabaseError", "TransactionRollbackError", "QueryCanceledError")
    codes = {v for v in vars(psycopg2.errorcodes).values() if isinstance(v, str) and len(v) == 5}
    seen = 0
    for code in sorted(codes):
        try:
            theirs = psycopg2.errors.lookup(code)
        except KeyError:
            continue
        ours = errors.lookup(code)
        assert ours.__name__ == theirs.__name__, code
        bases = lambda c: [k.__name__ for k in c.__mro__ if k.__name__ in pep249]  # noqa: E731
        assert bases(ours) == bases(theirs), code
        seen += 1
    for prefix in ("22", "23", "25", "40", "42", "53", "55", "57"):
        assert any(c.startswith(prefix) for c in errors._BY_SQLSTATE), prefix
    assert seen == len(errors._BY_SQLSTATE) >= 250


def test_mysql_and_sqlite_numbers_map_to_their_classes():
    """Each MySQL/SQLite number mapped to a SQLSTATE's class gets it: the class is a subclass of
    the PEP 249 class the number had before (so no except clause stops catching it)."""
    mysql_sqlstate = {1142: "42000", 1143: "42000", 1365: "22012"}
    for errno, code in errors.MYSQL_AS_SQLSTATE.items():
        cls = errors.classify_sql_error("mysql", mysql_sqlstate.get(errno, "HY000"), errno)
        assert cls is errors.lookup(code), errno
    for errno, code in errors.SQLITE_AS_SQLSTATE.items():
        assert errors.classify_sql_error("sqlite", None, errno) is errors.lookup(code), errno


def test_pickle_keeps_class_args_and_attributes():
    e = errors.from_error_body({"code": "SQL_ERROR", "message": "Duplicate entry '1'", "errno": 1062,
                                "sqlstate": "23000", "bind": "users"}, "mysql")
    e.executemany_index = 4
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is errors.UniqueViolation and e2.args == (1062, "Duplicate entry '1'")
    assert (e2.errno, e2.sqlstate, e2.bind, e2.executemany_index) == (1062, "23000", "users", 4)
    assert str(e2) == str(e)
    p = errors.from_error_body({"code": "TIMEOUT", "message": "m", "bind": "main"}, "postgresql")
    p2 = pickle.loads(pickle.dumps(p))
    assert type(p2) is errors.QueryCanceled and p2.pgcode == "57014" and p2.code == "TIMEOUT"


# -- PostgreSQL: real errors, as psycopg2 raises them ------------------------------------------------
PG_SETUP = [
    "DROP TABLE IF EXISTS err_child",
    "DROP TABLE IF EXISTS err_parent",
    "CREATE TABLE err_parent (id INT PRIMARY KEY, n INT NOT NULL CHECK (n >= 0))",
    "CREATE TABLE err_child (id INT PRIMARY KEY, parent INT REFERENCES err_parent (id))",
    "INSERT INTO err_parent VALUES (1, 1)",
]

PG_CASES = [
    ("INSERT INTO err_parent VALUES (1, 5)", "UniqueViolation"),
    ("INSERT INTO err_child VALUES (1, 42)", "ForeignKeyViolation"),
    ("INSERT INTO err_parent VALUES (2, NULL)", "NotNullViolation"),
    ("INSERT INTO err_parent VALUES (2, -1)", "CheckViolation"),
    ("SELECT 1 / 0", "DivisionByZero"),
    ("SELECT * FROM err_no_such_table", "UndefinedTable"),
    ("SELECT no_such_column FROM err_parent", "UndefinedColumn"),
    ("SELEC 1", "SyntaxError"),
    ("SELECT 'abc'::int", "InvalidTextRepresentation"),
    ("SELECT 1 FROM err_parent WHERE id = 1 AND pg_sleep(5) IS NULL", "QueryCanceled"),
]


def with_tables(daemon, backend):
    """A binds connection to the backend's bind, its err_ tables freshly made."""
    need(backend)
    c = connect_and_run(daemon, BIND_OF[backend], PG_SETUP if backend == "postgresql" else MYSQL_SETUP)
    yield c
    c.close()


@pytest.fixture
def pg(daemon):
    yield from with_tables(daemon, "postgresql")


def caught_as(run, mod) -> str:
    """Which clause of a psycopg2-style except ladder catches what run() raises."""
    try:
        run()
    except mod.errors.UniqueViolation:
        return "unique"
    except (mod.errors.ForeignKeyViolation, mod.errors.NotNullViolation, mod.errors.CheckViolation):
        return "constraint"
    except mod.errors.QueryCanceled:
        return "cancelled"
    except mod.IntegrityError:
        return "integrity"
    except mod.DataError:
        return "data"
    except mod.ProgrammingError:
        return "programming"
    except mod.OperationalError:
        return "operational"
    return "nothing"


@pytest.mark.parametrize("sql,name", PG_CASES, ids=[n for _, n in PG_CASES])
def test_pg_errors_as_psycopg2(pg, pg_direct, sql, name):
    import psycopg2
    import psycopg2.errors  # noqa: F401
    # the statement runs in a transaction whose statement_timeout cancels the slow one
    pg_direct.autocommit = False
    cur = pg.cursor()
    dcur = pg_direct.cursor()
    got = {}
    for who, conn, c in (("binds", pg, cur), ("psycopg2", pg_direct, dcur)):
        c.execute("SET LOCAL statement_timeout = '200ms'")
        mod = binds if who == "binds" else psycopg2
        try:
            c.execute(sql)
        except mod.Error as e:
            got[who] = e
        conn.rollback()
        c.execute("SET LOCAL statement_timeout = '200ms'")
        got[who + "-ladder"] = caught_as(lambda: c.execute(sql), mod)
        conn.rollback()
    pg_direct.autocommit = True
    ours, theirs = got["binds"], got["psycopg2"]
    assert type(ours).__name__ == type(theirs).__name__ == name
    assert type(ours) is getattr(errors, name) and isinstance(ours, NAMED[name])
    assert ours.pgcode == ours.sqlstate == theirs.pgcode
    assert got["binds-ladder"] == got["psycopg2-ladder"] != "nothing"
    assert ours.code == "SQL_ERROR" and ours.args == (ours.message,)
    assert ours.message in str(ours) and ours.sqlstate in str(ours)
    cur.execute("SELECT 1")  # usable after the error
    assert cur.fetchone() == (1,)


def test_pg_in_failed_transaction(pg):
    cur = pg.cursor()
    with pytest.raises(errors.UniqueViolation):
        cur.execute("INSERT INTO err_parent VALUES (1, 1)")
    with pytest.raises(errors.InFailedSqlTransaction) as ei:
        cur.execute("SELECT 1")
    assert isinstance(ei.value, binds.InternalError) and ei.value.pgcode == "25P02"
    pg.rollback()


def test_pg_lock_not_available_and_serialization_failure(daemon, pg):
    other = binds.connect("127.0.0.1", daemon.port, BIND_OF["postgresql"], timeout=60)
    try:
        ocur = other.cursor()
        ocur.execute("SELECT n FROM err_parent WHERE id = 1 FOR UPDATE")
        cur = pg.cursor()
        with pytest.raises(errors.LockNotAvailable) as ei:
            cur.execute("SELECT n FROM err_parent WHERE id = 1 FOR UPDATE NOWAIT")
        assert isinstance(ei.value, binds.OperationalError) and ei.value.pgcode == "55P03"
        pg.rollback()
        other.rollback()

        pg.isolation_level = "repeatable_read"
        cur.execute("SELECT n FROM err_parent WHERE id = 1")  # the snapshot
        ocur.execute("UPDATE err_parent SET n = n + 1 WHERE id = 1")
        other.commit()
        with pytest.raises(errors.SerializationFailure) as ei:
            cur.execute("UPDATE err_parent SET n = n + 1 WHERE id = 1")
        assert isinstance(ei.value, errors.TransactionRollbackError)
        assert isinstance(ei.value, binds.OperationalError) and ei.value.pgcode == "40001"
        pg.rollback()
    finally:
        other.close()


def test_pg_deadlock_detected(daemon, pg):
    a, b = pg, binds.connect("127.0.0.1", daemon.port, BIND_OF["postgresql"], timeout=60)
    try:
        cur_a, cur_b = a.cursor(), b.cursor()
        cur_a.execute("INSERT INTO err_parent VALUES (2, 2)")
        a.commit()
        cur_a.execute("UPDATE err_parent SET n = 10 WHERE id = 1")
        cur_b.execute("UPDATE err_parent SET n = 20 WHERE id = 2")
        outcome = {}

        def a_waits():
            try:
                cur_a.execute("UPDATE err_parent SET n = 11 WHERE id = 2")
                outcome["a"] = None
            except binds.Error as e:
                outcome["a"] = e

        t = threading.Thread(target=a_waits)
        t.start()
        try:
            cur_b.execute("UPDATE err_parent SET n = 21 WHERE id = 1")
            outcome["b"] = None
        except binds.Error as e:
            outcome["b"] = e
        t.join(30)
        assert not t.is_alive()
        failed = [e for e in outcome.values() if e is not None]
        assert len(failed) == 1, outcome
        assert type(failed[0]) is errors.DeadlockDetected and failed[0].pgcode == "40P01"
        assert isinstance(failed[0], errors.TransactionRollbackError)
        a.rollback()
        b.rollback()
    finally:
        b.close()


# -- the broker's TIMEOUT: QueryCanceled on every backend -------------------------------------------
@pytest.fixture(scope="module")
def slow_daemon():
    """A bindsd whose binds have a statement_timeout: bindsd cancels and answers TIMEOUT."""
    extra = []
    for key, url in (("pgslow", PG_URL), ("myslow", MYSQL_URL)):
        if url:
            extra += [f"  {key}:", f"    url: {url}", "    statement_timeout: 300ms"]
    root = Path(tempfile.mkdtemp(prefix="binds-py-slow-"))
    d = Daemon(root, tuple(extra))
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("bind,sql", [("pgslow", "SELECT pg_sleep(5)"), ("myslow", "SELECT SLEEP(5)")])
def test_broker_timeout_is_query_canceled(slow_daemon, bind, sql):
    need("postgresql" if bind == "pgslow" else "mysql")
    c = binds.connect("127.0.0.1", slow_daemon.port, bind, timeout=60)
    try:
        cur = c.cursor()
        for autocommit in (True, False):
            c.autocommit = autocommit
            try:
                cur.execute(sql)
            except errors.QueryCanceled as e:  # as psycopg2's, also an OperationalError
                assert isinstance(e, binds.OperationalError) and isinstance(e, errors.QueryCanceledError)
                assert e.code == "TIMEOUT" and e.may_have_executed is True
                assert e.pgcode == ("57014" if bind == "pgslow" else None)
            else:
                pytest.fail("no timeout")
            c.rollback()
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
            c.rollback()
    finally:
        c.close()


# -- MySQL: pymysql's (errno, message) -------------------------------------------------------------
MYSQL_SETUP = [
    "DROP TABLE IF EXISTS err_child",
    "DROP TABLE IF EXISTS err_parent",
    "CREATE TABLE err_parent (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE err_child (id INT PRIMARY KEY, parent INT, "
    "FOREIGN KEY (parent) REFERENCES err_parent (id)) ENGINE=InnoDB",
    "INSERT INTO err_parent VALUES (1, 1)",
]

MYSQL_CASES = [
    ("INSERT INTO err_parent VALUES (1, 5)", "UniqueViolation", "IntegrityError", 1062),
    ("INSERT INTO err_child VALUES (1, 42)", "ForeignKeyViolation", "IntegrityError", 1452),
    ("INSERT INTO err_parent VALUES (2, NULL)", "NotNullViolation", "IntegrityError", 1048),
    ("SELECT * FROM err_no_such_table", "UndefinedTable", "ProgrammingError", 1146),
    ("SELEC 1", "SyntaxError", "ProgrammingError", 1064),
]


@pytest.fixture
def my(daemon):
    yield from with_tables(daemon, "mysql")


@pytest.mark.parametrize("sql,name,pep249,errno", MYSQL_CASES, ids=[c[1] for c in MYSQL_CASES])
def test_mysql_errors_as_pymysql(my, mysql_direct, sql, name, pep249, errno):
    import pymysql
    with pytest.raises(pymysql.Error) as direct:
        with mysql_direct.cursor() as dcur:
            dcur.execute(sql)
    with pytest.raises(binds.Error) as ei:
        my.cursor().execute(sql)
    my.rollback()
    e, theirs = ei.value, direct.value
    assert type(theirs).__name__ == pep249
    assert type(e) is getattr(errors, name) and isinstance(e, getattr(binds, pep249))
    assert e.args == theirs.args and e.args[0] == errno == e.errno
    assert e.args[1] == e.message and e.message in str(e) and str(errno) in str(e)


def test_sqlalchemy_wraps_them(daemon, backend):
    """sqlalchemy.exc.IntegrityError with .orig ours, for execute and executemany."""
    need(backend)
    engine = sa.create_engine(daemon.url(backend))
    md = sa.MetaData()
    t = sa.Table("err_sa", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("s", sa.String(20), nullable=False))
    try:
        md.drop_all(engine)
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(t.insert(), {"id": 1, "s": "a"})
        with pytest.raises(sa.exc.IntegrityError) as ei:
            with engine.begin() as conn:
                conn.execute(t.insert(), {"id": 1, "s": "dup"})
        orig = ei.value.orig
        assert type(orig) is errors.UniqueViolation and isinstance(orig, binds.IntegrityError)
        assert orig.message in str(ei.value)
        if backend == "mysql":
            assert orig.args == (1062, orig.message) and orig.message.startswith("Duplicate entry")
        elif backend == "postgresql":
            assert orig.pgcode == "23505"
        with pytest.raises(sa.exc.IntegrityError) as ei:
            with engine.begin() as conn:
                conn.execute(t.insert(), [{"id": 2, "s": "b"}, {"id": 3, "s": "c"}, {"id": 1, "s": "d"},
                                          {"id": 4, "s": "e"}])
        assert type(ei.value.orig) is errors.UniqueViolation and ei.value.orig.executemany_index == 2
        assert "executemany index 2" in str(ei.value)
        with pytest.raises(sa.exc.ProgrammingError) as ei:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT * FROM err_no_such_table"))
        assert type(ei.value.orig) is errors.UndefinedTable or backend == "sqlite"
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() == 1
    finally:
        md.drop_all(engine)
        engine.dispose()
