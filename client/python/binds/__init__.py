"""binds: a pure-Python DB-API 2.0 (PEP 249) driver for bindsd, and SQLAlchemy dialects
(`postgresql+binds://`, `mysql+binds://`, `sqlite+binds://`).

    import binds
    conn = binds.connect(host="127.0.0.1", port=7878, bind="main")
    # or binds.connect(unix_socket="/run/binds/bindsd.sock", bind="main")
    cur = conn.cursor()
    cur.execute("SELECT %s + 1", (41,))     # %s / %(name)s for PostgreSQL and MySQL, ? for SQLite
    cur.fetchone()                          # (42,)
    cur.execute("SELECT %s::int[], %s::interval", ([1, None], datetime.timedelta(hours=1)))
    cur.fetchone()                          # ([1, None], datetime.timedelta(seconds=3600))
    conn.commit()
"""

from __future__ import annotations

import datetime as _dt
import time as _time

from . import errors
from .dbapi import Connection, Cursor
from .errors import (DatabaseError, DataError, Error, IntegrityError, InterfaceError, InternalError,
                     NotSupportedError, OperationalError, ProgrammingError, Warning)
from .protocol import Json, Tagged

__version__ = "0.1.0"
apilevel = "2.0"
threadsafety = 1        # threads may share the module, not connections
paramstyle = "pyformat"  # %(name)s; %s (format) is accepted too, and ? (qmark) for SQLite binds

# sqlite+binds reads this before connecting (SQLAlchemy's SQLite dialect checks feature levels);
# the dialect replaces it with the server's real version once connected.
sqlite_version_info = (3, 40, 1)
sqlite_version = "3.40.1"


def connect(host: str | None = None, port: int | None = None, bind: str | None = None,
            unix_socket: str | None = None, **kwargs) -> Connection:
    """Open a connection to bindsd for one bind key (None: the server's default bind).

    Keyword options: timeout (seconds per read, None = wait forever), connect_timeout,
    autocommit, isolation_level ('read_committed', ...), read_only, paramstyle ('auto', 'format',
    'pyformat', 'qmark', 'named', 'native'), transactions ('auto', 'frames', 'sql'),
    backend (expected backend: fail if the bind is another engine), decode_json.
    `database` and `socket` are accepted as aliases of `bind` and `unix_socket`; `application_name`
    as an alias of `client_name` (the name bindsd shows in `binds clients` and PostgreSQL in
    pg_stat_activity.application_name).
    """
    if "application_name" in kwargs:
        if "client_name" in kwargs:
            raise TypeError("give application_name or client_name, not both")
        kwargs["client_name"] = str(kwargs.pop("application_name"))
    if bind is None and "database" in kwargs:
        bind = kwargs.pop("database")
    if unix_socket is None and "socket" in kwargs:
        unix_socket = kwargs.pop("socket")
    if port is not None:
        port = int(port)
    return Connection(host, port, bind, unix_socket, **kwargs)


class DBAPITypeObject:
    """Compares equal to every protocol type name (a cursor.description type code) it covers."""

    def __init__(self, *values: str):
        self.values = frozenset(values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DBAPITypeObject):
            return self.values == other.values
        return other in self.values

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.values)

    def __repr__(self) -> str:
        return f"DBAPITypeObject{tuple(sorted(self.values))}"


STRING = DBAPITypeObject("text", "json", "uuid")
BINARY = DBAPITypeObject("bytes")
NUMBER = DBAPITypeObject("int64", "float64", "decimal", "bool")
DATETIME = DBAPITypeObject("date", "time", "timestamp", "interval")  # intervals too, as psycopg2
ROWID = DBAPITypeObject("rowid")  # no protocol type is a row id
BOOLEAN = DBAPITypeObject("bool")
JSON = DBAPITypeObject("json")
UUID = DBAPITypeObject("uuid")
NULLTYPE = DBAPITypeObject("null")
INTERVAL = DBAPITypeObject("interval")  # PostgreSQL intervals, as datetime.timedelta
ARRAY = DBAPITypeObject("array")        # PostgreSQL arrays, as (nested) lists

Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> _dt.date:
    return Date(*_time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:
    return Time(*_time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:
    return Timestamp(*_time.localtime(ticks)[:6])


__all__ = [
    "apilevel", "threadsafety", "paramstyle", "connect", "Connection", "Cursor",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
    "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID", "BOOLEAN", "JSON", "UUID", "INTERVAL", "ARRAY",
    "NULLTYPE", "Date", "Time", "Timestamp", "Binary",
    "DateFromTicks", "TimeFromTicks", "TimestampFromTicks", "Json", "Tagged", "errors",
]
