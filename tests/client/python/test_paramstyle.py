"""Placeholder rewriting (no server needed) and error classification."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import msgpack
import pytest

import binds
from binds import errors, protocol
from binds.paramstyle import convert


def test_format_to_dollar():
    assert convert("SELECT %s, %s", (1, "a"), "postgresql", "pyformat") == ("SELECT $1, $2", [1, "a"])
    assert convert("SELECT %s", [None], "mysql", "format") == ("SELECT ?", [None])


def test_pyformat_names_reuse():
    sql, vals = convert("SELECT %(a)s, %(b)s, %(a)s", {"a": 1, "b": 2}, "postgresql", "pyformat")
    assert (sql, vals) == ("SELECT $1, $2, $1", [1, 2])
    sql, vals = convert("SELECT %(a)s, %(b)s, %(a)s", {"a": 1, "b": 2}, "mysql", "pyformat")
    assert (sql, vals) == ("SELECT ?, ?, ?", [1, 2, 1])


def test_percent_and_literals():
    sql, vals = convert("SELECT 'a%%b', '%s', x %% 2, %s -- %s\n", (5,), "postgresql", "format")
    assert sql == "SELECT 'a%b', '%s', x % 2, $1 -- %s\n" and vals == [5]
    sql, _ = convert("SELECT \"we%%ird\", `x`, 'it''s %%', 'b\\'s' FROM t WHERE a = %s", (1,),
                     "mysql", "format")
    assert sql == "SELECT \"we%ird\", `x`, 'it''s %', 'b\\'s' FROM t WHERE a = ?"
    sql, _ = convert("SELECT $$ %s $$, $tag$ %% $tag$, /* %s */ %s::int", (1,), "postgresql", "format")
    assert sql == "SELECT $$ %s $$, $tag$ % $tag$, /* %s */ $1::int"


def test_none_params_means_no_rewriting():
    assert convert("SELECT '%%' %s", None, "postgresql", "format") == ("SELECT '%%' %s", [])


def test_qmark_and_named():
    assert convert("SELECT ?, '?'", (1,), "sqlite", "qmark") == ("SELECT ?, '?'", [1])
    assert convert("SELECT :a, ':b', :a", {"a": 3}, "sqlite", "named") == ("SELECT ?, ':b', ?", [3, 3])
    assert convert("SELECT :a::int", {"a": 3}, "postgresql", "named") == ("SELECT $1::int", [3])


@pytest.mark.parametrize("sql,params", [
    ("SELECT %s, %s", (1,)),
    ("SELECT %s", (1, 2)),
    ("SELECT %(a)s", {"b": 1}),
    ("SELECT %(a)s", (1,)),
    ("SELECT %s", {"a": 1}),
    ("SELECT %d", (1,)),
])
def test_bad_placeholders(sql, params):
    with pytest.raises(binds.ProgrammingError):
        convert(sql, params, "postgresql", "pyformat")


def test_value_encoding_round_trip():
    hook = protocol.make_ext_hook()
    vals = [Decimal("-12.3400"), dt.date(2024, 2, 29), dt.time(13, 45, 0, 250000),
            dt.datetime(2024, 2, 29, 13, 45, 0, 250000), uuid.UUID(int=7)]
    packed = msgpack.packb([protocol.encode_param(v) for v in vals], use_bin_type=True)
    assert msgpack.unpackb(packed, ext_hook=hook) == vals
    assert protocol.encode_param(Decimal("1E+3")) == msgpack.ExtType(1, b"1000")
    assert protocol.encode_param(2 ** 64) == msgpack.ExtType(1, str(2 ** 64).encode())
    assert protocol.encode_param(binds.Json([1])) == msgpack.ExtType(5, b"[1]")
    # MySQL TIME durations and PostgreSQL infinity
    assert hook(3, b"-838:59:59") == -dt.timedelta(hours=838, minutes=59, seconds=59)
    assert hook(4, b"infinity") == binds.Tagged("timestamp", "infinity")
    assert hook(4, b"2024-02-29 13:45:00.25+00") == dt.datetime(
        2024, 2, 29, 13, 45, 0, 250000, tzinfo=dt.timezone.utc)
    with pytest.raises(TypeError):
        protocol.encode_param({"a": 1})


@pytest.mark.parametrize("backend,sqlstate,errno,cls,specific", [
    ("postgresql", "23505", None, binds.IntegrityError, "UniqueViolation"),
    ("postgresql", "23503", None, binds.IntegrityError, "ForeignKeyViolation"),
    ("postgresql", "42601", None, binds.ProgrammingError, "SyntaxError"),
    ("postgresql", "42P01", None, binds.ProgrammingError, "UndefinedTable"),
    ("postgresql", "22012", None, binds.DataError, "DivisionByZero"),
    ("postgresql", "40001", None, binds.OperationalError, "SerializationFailure"),
    ("postgresql", "0A000", None, binds.NotSupportedError, "FeatureNotSupported"),
    ("postgresql", "23999", None, binds.IntegrityError, "IntegrityError"),  # no class: by prefix
    ("mysql", "23000", 1062, binds.IntegrityError, "UniqueViolation"),
    ("mysql", "23000", 1452, binds.IntegrityError, "ForeignKeyViolation"),
    ("mysql", "23000", 1048, binds.IntegrityError, "NotNullViolation"),
    ("mysql", "HY000", 1364, binds.IntegrityError, "IntegrityError"),
    ("mysql", "42000", 1064, binds.ProgrammingError, "SyntaxError"),
    ("mysql", "42S02", 1146, binds.ProgrammingError, "UndefinedTable"),
    ("mysql", "22001", 1406, binds.DataError, "StringDataRightTruncation"),
    ("mysql", "40001", 1213, binds.OperationalError, "DeadlockDetected"),
    ("sqlite", None, 2067, binds.IntegrityError, "UniqueViolation"),
    ("sqlite", None, 1555, binds.IntegrityError, "UniqueViolation"),
    ("sqlite", None, 787, binds.IntegrityError, "ForeignKeyViolation"),
    ("sqlite", None, 19, binds.IntegrityError, "IntegrityError"),
    ("sqlite", None, 1, binds.ProgrammingError, "ProgrammingError"),
    ("sqlite", None, 5, binds.OperationalError, "LockNotAvailable"),
])
def test_sql_error_classes(backend, sqlstate, errno, cls, specific):
    e = errors.from_error_body({"code": "SQL_ERROR", "message": "m", "sqlstate": sqlstate,
                                "errno": errno, "bind": "b"}, backend)
    assert isinstance(e, cls) and type(e) is getattr(errors, specific)
    assert e.sqlstate == sqlstate and e.errno == errno and e.bind == "b"
    # pymysql's convention on MySQL: args == (errno, message)
    assert e.args == ((errno, "m") if backend == "mysql" else ("m",))


@pytest.mark.parametrize("code,cls", [
    ("BACKEND_UNAVAILABLE", binds.OperationalError), ("POOL_TIMEOUT", binds.OperationalError),
    ("TIMEOUT", errors.QueryCanceled), ("CANCELLED", errors.QueryCanceled),
    ("TX_ABORTED", binds.OperationalError), ("BAD_REQUEST", binds.ProgrammingError),
    ("UNKNOWN_BIND", binds.OperationalError), ("INTERNAL", binds.InternalError),
    ("UNKNOWN_FRAME_TYPE", binds.NotSupportedError), ("PROTOCOL_ERROR", binds.InterfaceError),
])
def test_broker_codes(code, cls):
    e = errors.from_error_body({"code": code, "message": "m", "may_have_executed": True}, "postgresql")
    assert type(e) is cls and e.code == code and e.may_have_executed is True
