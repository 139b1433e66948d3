"""SQLAlchemy dialects that speak to bindsd: `postgresql+binds`, `mysql+binds`, `sqlite+binds`.

Each subclasses SQLAlchemy's own dialect for its engine, so the SQL SQLAlchemy writes is the SQL
that engine runs; only the transport is bindsd's protocol. URLs:

    postgresql+binds://HOST:PORT/BIND            (port defaults to 7878)
    mysql+binds:///BIND?socket=/run/binds/bindsd.sock
    sqlite+binds://127.0.0.1:7878/BIND?timeout=30

Query options: socket, timeout, connect_timeout, transactions (auto/frames/sql).
"""

from __future__ import annotations

import datetime
import decimal
import re

from sqlalchemy import processors
from sqlalchemy import sql
from sqlalchemy.engine import reflection
from sqlalchemy import types as sqltypes
from sqlalchemy import util
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.mysql.types import TIME as _MySQLTIME
from sqlalchemy.dialects.postgresql.array import ARRAY as _PGARRAYBase
from sqlalchemy.dialects.postgresql.base import PGDialect, PGExecutionContext
from sqlalchemy.dialects.postgresql.base import _ColonCast
from sqlalchemy.dialects.postgresql.base import UUID as _PGUUIDBase
from sqlalchemy.dialects.sqlite.base import DATE as _SQLiteDATE
from sqlalchemy.dialects.sqlite.base import DATETIME as _SQLiteDATETIME
from sqlalchemy.dialects.sqlite.base import TIME as _SQLiteTIME
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

_DEFAULT_ISOLATION = {"postgresql": "READ COMMITTED", "mysql": "REPEATABLE READ",
                      "sqlite": "SERIALIZABLE"}


def _dbapi_conn(connection):
    # a ConnectionFairy or a DB-API connection
    return getattr(connection, "dbapi_connection", connection)


# -- types ------------------------------------------------------------------------------------------
class _BindsNumeric(sqltypes.Numeric):
    """The driver returns Decimal for decimal columns and float for float columns; convert to what
    the SQLAlchemy type asks for, whatever arrived."""

    def bind_processor(self, dialect):
        return None

    def result_processor(self, dialect, coltype):
        if self.asdecimal:
            to_dec = processors.to_decimal_processor_factory(
                decimal.Decimal, self._effective_decimal_return_scale)

            def process(value):
                if value is None or isinstance(value, decimal.Decimal):
                    return value
                if isinstance(value, float):
                    return to_dec(value)
                return decimal.Decimal(str(value))
        else:
            def process(value):
                if value is None or isinstance(value, float):
                    return value
                return float(value)
        return process


class _BindsFloat(_BindsNumeric, sqltypes.Float):
    pass


class _BindsPGUUID(_PGUUIDBase):
    def bind_processor(self, dialect):
        return None  # str and uuid.UUID both travel (as text / the protocol's uuid type)

    def result_processor(self, dialect, coltype):
        if self.as_uuid:
            return None
        return lambda v: None if v is None else str(v)


class _BindsPGARRAY(_PGARRAYBase):
    """Arrays travel as protocol arrays and arrive as (nested) lists. A parameter is cast to the
    column's array type, as psycopg2's dialect does: an empty list or a list of int64 (bigint)
    elements then still matches an integer[] column, e.g. in `col.contains([...])`."""

    def bind_expression(self, bindvalue):
        return _ColonCast(bindvalue, self)


class _BindsMySQLTime(_MySQLTIME):
    def result_processor(self, dialect, coltype):
        base = super().result_processor(dialect, coltype)

        def process(value):
            if value is None or isinstance(value, datetime.time):
                return value
            return base(value)
        return process


def _passthrough(base_cls, py_types):
    """An SQLite date/time type that keeps values the driver already parsed."""

    class T(base_cls):
        def result_processor(self, dialect, coltype):
            base = base_cls.result_processor(self, dialect, coltype)

            def process(value):
                if value is None or isinstance(value, py_types):
                    return value
                return base(value) if base else value
            return process

    T.__name__ = "_Binds" + base_cls.__name__
    return T


_BindsSQLiteDATETIME = _passthrough(_SQLiteDATETIME, (datetime.datetime,))
_BindsSQLiteDATE = _passthrough(_SQLiteDATE, (datetime.date,))
_BindsSQLiteTIME = _passthrough(_SQLiteTIME, (datetime.time,))


# -- shared behaviour ------------------------------------------------------------------------------
class _BindsMixin:
    driver = "binds"
    supports_statement_cache = True
    supports_server_side_cursors = False
    supports_unicode_statements = True
    supports_unicode_binds = True
    description_encoding = None
    binds_backend = None  # set by each dialect

    @classmethod
    def dbapi(cls):
        import binds
        return binds

    @classmethod
    def import_dbapi(cls):  # SQLAlchemy 2.0 name
        import binds
        return binds

    def create_connect_args(self, url):
        opts = url.translate_connect_args(username="user", database="bind")
        opts.pop("user", None)
        opts.pop("password", None)  # bindsd has no client auth in protocol v1
        query = dict(url.query)
        if "socket" in query:
            opts["unix_socket"] = query.pop("socket")
            opts.pop("host", None)
            opts.pop("port", None)
        if "port" in opts:
            opts["port"] = int(opts["port"])
        for key in ("timeout", "connect_timeout"):
            if key in query:
                opts[key] = float(query.pop(key))
        for key in ("transactions",):
            if key in query:
                opts[key] = query.pop(key)
        # the backend's charset is bindsd's business (binds.yaml); Flask-SQLAlchemy adds one for MySQL
        query.pop("charset", None)
        if query:
            raise ValueError(f"unknown {self.name}+binds URL option(s): {', '.join(sorted(query))}")
        opts["backend"] = self.binds_backend
        opts["decode_json"] = False  # SQLAlchemy's own JSON type deserializes
        opts["paramstyle"] = "qmark" if self.paramstyle == "qmark" else (
            "named" if self.paramstyle == "named" else "pyformat")
        return ([], opts)

    @classmethod
    def engine_created(cls, engine):
        # bindsd restarts close every client connection: check pooled connections on checkout
        # (a local, non-blocking socket check, no round trip) so a restart costs no failed request
        # when the app is idle; pool_pre_ping=True additionally sends a PING
        from sqlalchemy import event, exc

        @event.listens_for(engine.pool, "checkout")
        def _binds_checkout(dbapi_connection, connection_record, connection_proxy):
            if not dbapi_connection.is_alive():
                raise exc.DisconnectionError("bindsd closed the connection (restart?)")

    def is_disconnect(self, e, connection, cursor):
        import binds
        if isinstance(e, binds.Error):
            return bool(getattr(e, "disconnect", False))
        return False

    def do_begin(self, dbapi_connection):
        pass  # the driver begins lazily before the first statement (PEP 249)

    def do_commit(self, dbapi_connection):
        dbapi_connection.commit()

    def do_rollback(self, dbapi_connection):
        dbapi_connection.rollback()

    def do_close(self, dbapi_connection):
        dbapi_connection.close()

    def do_ping(self, dbapi_connection):
        dbapi_connection.ping()
        return True

    # isolation: carried by each BEGIN request, never by session state (bindsd pools the backend
    # connections, so session settings would not stick)
    def set_isolation_level(self, connection, level):
        conn = _dbapi_conn(connection)
        level = level.replace("_", " ").upper()
        if level == "AUTOCOMMIT":
            conn.autocommit = True
            return
        if level not in self._isolation_lookup:
            from sqlalchemy import exc
            raise exc.ArgumentError(
                "Invalid value '%s' for isolation_level. Valid isolation levels for %s are %s "
                "or AUTOCOMMIT" % (level, self.name, ", ".join(sorted(self._isolation_lookup))))
        conn.autocommit = False
        conn.isolation_level = None if level == _DEFAULT_ISOLATION[self.binds_backend] else level

    def get_isolation_level(self, connection):
        conn = _dbapi_conn(connection)
        if conn.autocommit:
            return "AUTOCOMMIT"
        if conn.isolation_level:
            return conn.isolation_level.replace("_", " ").upper()
        return _DEFAULT_ISOLATION[self.binds_backend]

    def get_default_isolation_level(self, dbapi_conn):
        return _DEFAULT_ISOLATION[self.binds_backend]

    def reset_isolation_level(self, dbapi_conn):
        conn = _dbapi_conn(dbapi_conn)
        conn.autocommit = False
        conn.isolation_level = None

    def set_readonly(self, connection, value):
        _dbapi_conn(connection).read_only = bool(value)

    def get_readonly(self, connection):
        return _dbapi_conn(connection).read_only

    def on_connect(self):
        level = self.isolation_level

        if level is None:
            return None

        def connect(conn):
            self.set_isolation_level(conn, level)
        return connect


# -- PostgreSQL ----------------------------------------------------------------------------------
class PGExecutionContext_binds(PGExecutionContext):
    pass


class PGDialect_binds(_BindsMixin, PGDialect):
    supports_statement_cache = True  # SQLAlchemy reads it from each class itself
    binds_backend = "postgresql"
    default_paramstyle = "format"
    supports_sane_multi_rowcount = True
    execution_ctx_cls = PGExecutionContext_binds
    _isolation_lookup = set(PGDialect._isolation_lookup)

    colspecs = util.update_copy(
        PGDialect.colspecs,
        {
            sqltypes.Numeric: _BindsNumeric,
            sqltypes.Float: _BindsFloat,
            _PGUUIDBase: _BindsPGUUID,
            sqltypes.ARRAY: _BindsPGARRAY,
            # sqltypes.Interval is PGDialect's INTERVAL: timedelta both ways, no processing
        },
    )

    def set_deferrable(self, connection, value):
        raise NotImplementedError("DEFERRABLE is not supported by postgresql+binds")

    @reflection.cache
    def get_unique_constraints(self, connection, table_name, schema=None, **kw):
        # SQLAlchemy's own query reads pg_constraint.conkey as an array, which a bindsd without
        # protocol arrays sends as text: unnest it on the server instead, which works with both
        table_oid = self.get_table_oid(connection, table_name, schema, info_cache=kw.get("info_cache"))
        rows = connection.execute(
            sql.text(
                "SELECT cons.conname AS name, a.attname AS col_name, "
                "array_position(cons.conkey, a.attnum) AS pos "
                "FROM pg_catalog.pg_constraint cons JOIN pg_catalog.pg_attribute a "
                "ON a.attrelid = cons.conrelid AND a.attnum = ANY(cons.conkey) "
                "WHERE cons.conrelid = :table_oid AND cons.contype = 'u' ORDER BY name, pos"
            ).columns(name=sqltypes.Unicode, col_name=sqltypes.Unicode),
            dict(table_oid=table_oid),
        ).fetchall()
        out = {}
        for name, col, _pos in rows:
            out.setdefault(name, []).append(col)
        return [{"name": n, "column_names": cols} for n, cols in out.items()]

    def get_deferrable(self, connection):
        return False


# -- MySQL / MariaDB ---------------------------------------------------------------------------------
class MySQLDialect_binds(_BindsMixin, MySQLDialect):
    supports_statement_cache = True  # SQLAlchemy reads it from each class itself
    binds_backend = "mysql"
    default_paramstyle = "format"
    # bindsd reports MySQL's *changed* rows as `affected` (no CLIENT_FOUND_ROWS), so an UPDATE
    # that matches a row without changing it counts 0: rowcounts cannot confirm matches
    supports_sane_rowcount = False
    supports_sane_multi_rowcount = False
    supports_native_decimal = True  # DECIMAL columns arrive as Decimal
    _isolation_lookup = set(MySQLDialect._isolation_lookup)

    colspecs = util.update_copy(
        MySQLDialect.colspecs,
        {
            sqltypes.Time: _BindsMySQLTime,
            _MySQLTIME: _BindsMySQLTime,
        },
    )

    def _detect_charset(self, connection):
        return "utf8mb4"

    def _extract_error_code(self, exception):
        return getattr(exception, "errno", None)

    def _set_isolation_level(self, connection, level):
        self.set_isolation_level(connection, level)


# -- SQLite ------------------------------------------------------------------------------------------
class SQLiteDialect_binds(_BindsMixin, SQLiteDialect):
    supports_statement_cache = True  # SQLAlchemy reads it from each class itself
    binds_backend = "sqlite"
    default_paramstyle = "qmark"
    _isolation_lookup = util.immutabledict({"READ UNCOMMITTED": 1, "SERIALIZABLE": 0})

    colspecs = util.update_copy(
        SQLiteDialect.colspecs,
        {
            sqltypes.DateTime: _BindsSQLiteDATETIME,
            sqltypes.Date: _BindsSQLiteDATE,
            sqltypes.Time: _BindsSQLiteTIME,
        },
    )

    def __init__(self, **kwargs):
        # the module's paramstyle is pyformat; SQLite's own reflection SQL is written with "?"
        kwargs.setdefault("paramstyle", "qmark")
        super().__init__(**kwargs)

    def _get_server_version_info(self, connection):
        cur = _dbapi_conn(connection.connection).cursor()
        try:
            cur.execute("SELECT sqlite_version()")
            text = cur.fetchone()[0]
        finally:
            cur.close()
        version = tuple(int(x) for x in re.findall(r"\d+", text)[:3])
        return version

    def set_isolation_level(self, connection, level):
        conn = _dbapi_conn(connection)
        level = level.replace("_", " ").upper()
        if level == "AUTOCOMMIT":
            conn.autocommit = True
            return
        if level not in self._isolation_lookup:
            from sqlalchemy import exc
            raise exc.ArgumentError(
                "Invalid value '%s' for isolation_level. Valid isolation levels for sqlite are "
                "SERIALIZABLE, READ UNCOMMITTED or AUTOCOMMIT" % level)
        conn.autocommit = False
        conn.isolation_level = None  # SQLite transactions are serializable


dialect = PGDialect_binds
