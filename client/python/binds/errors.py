"""PEP 249 exceptions and their mapping from broker codes, SQLSTATEs and backend error numbers.

As `psycopg2.errors`, this module also has one class per PostgreSQL SQLSTATE (`UniqueViolation`,
`ForeignKeyViolation`, `QueryCanceled`, `SyntaxError`, ...), each a subclass of the PEP 249 class
psycopg2 uses for it, and `lookup(sqlstate)`. PostgreSQL errors are raised as these classes, so
`except errors.UniqueViolation` and `except IntegrityError` both catch a duplicate key. MySQL/MariaDB
and SQLite errors that mean the same thing are raised as the same classes (a MySQL 1062 duplicate
entry is a `UniqueViolation`, SQLite's SQLITE_CONSTRAINT_UNIQUE too), keeping the backend's own
`sqlstate` and `errno`. The broker's `CANCELLED` and `TIMEOUT` are `QueryCanceled`
(an OperationalError), as psycopg2 raises for a statement_timeout or a cancel.

MySQL/MariaDB SQL errors have `args == (errno, message)`, as pymysql's do; `str(e)` adds the broker
code, SQLSTATE and bind to the message.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .sqlstates import TABLE as _SQLSTATE_TABLE


class Warning(Exception):  # noqa: A001 - the name is fixed by PEP 249
    pass


class Error(Exception):
    """Base of all driver errors. Carries the broker's ERROR body when there was one.

    `executemany_index`: for an error raised by executemany, the 0-based position in its sequence
    of parameters of the statement that failed (None otherwise).
    """

    executemany_index: Optional[int] = None

    def __init__(self, message: str = "", *, code: Optional[str] = None, sqlstate: Optional[str] = None,
                 errno: Optional[int] = None, bind: Optional[str] = None,
                 may_have_executed: Optional[bool] = None, disconnect: bool = False):
        super().__init__(message)
        self.message = message
        self.code = code
        self.sqlstate = sqlstate
        self.errno = errno
        self.bind = bind
        self.may_have_executed = may_have_executed
        self.disconnect = disconnect  # the connection to bindsd is gone

    @property
    def pgcode(self) -> Optional[str]:
        return self.sqlstate

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.insert(0, f"{self.code}:")
        extra = []
        if self.sqlstate:
            extra.append(f"sqlstate {self.sqlstate}")
        if self.errno is not None:
            extra.append(f"errno {self.errno}")
        if self.bind:
            extra.append(f"bind {self.bind}")
        if self.executemany_index is not None:
            extra.append(f"executemany index {self.executemany_index}")
        s = " ".join(p for p in parts if p)
        return f"{s} [{', '.join(extra)}]" if extra else s

    def __reduce__(self):
        # args may be pymysql's (errno, message), which __init__ does not take: rebuild from state
        return _rebuild_error, (type(self), self.args, self.__dict__.copy())


def _rebuild_error(cls: type, args: tuple, state: Dict[str, Any]) -> Error:
    e = cls.__new__(cls)
    Exception.__init__(e, *args)
    e.__dict__.update(state)
    return e


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class TransactionRollbackError(OperationalError):
    """SQLSTATE class 40 (serialization failure, deadlock), as psycopg2.extensions has it."""


class QueryCanceledError(OperationalError):
    """A cancelled statement, as psycopg2.extensions has it: base of QueryCanceled (57014)."""


BROKER_CODES = {
    "PROTOCOL_ERROR": InterfaceError,
    "UNSUPPORTED_VERSION": InterfaceError,
    "UNKNOWN_FRAME_TYPE": NotSupportedError,
    "BAD_REQUEST": ProgrammingError,
    "UNKNOWN_BIND": OperationalError,
    "BACKEND_UNAVAILABLE": OperationalError,
    "POOL_TIMEOUT": OperationalError,
    "BUSY": OperationalError,
    "TX_ABORTED": OperationalError,
    "NOT_IN_TRANSACTION": OperationalError,
    "CANCELLED": OperationalError,
    "TIMEOUT": OperationalError,
    "SHUTTING_DOWN": OperationalError,
    "TOO_MANY_CLIENTS": OperationalError,
    "INTERNAL": InternalError,
}

# SQLSTATE class (first two characters) -> exception, as psycopg2 does it for a code it has no
# class for
SQLSTATE_CLASSES = {
    "0A": NotSupportedError,
    "08": OperationalError,
    "20": ProgrammingError,
    "21": ProgrammingError,
    "22": DataError,
    "23": IntegrityError,
    "24": InternalError,
    "25": InternalError,
    "26": OperationalError,
    "27": OperationalError,
    "28": OperationalError,
    "2B": InternalError,
    "2D": InternalError,
    "2F": InternalError,
    "34": OperationalError,
    "38": InternalError,
    "39": InternalError,
    "3B": InternalError,
    "3D": ProgrammingError,
    "3F": ProgrammingError,
    "40": TransactionRollbackError,
    "42": ProgrammingError,
    "44": ProgrammingError,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
    "F0": OperationalError,
    "HV": OperationalError,
    "P0": InternalError,
    "XX": InternalError,
}

# MySQL / MariaDB error numbers (the SQLSTATE of many of them is the generic HY000)
MYSQL_ERRNOS: Dict[int, type] = {}
for _n in (1022, 1048, 1052, 1062, 1169, 1216, 1217, 1364, 1451, 1452, 1557, 1586, 1761, 1762,
           1859, 3819, 4025):
    MYSQL_ERRNOS[_n] = IntegrityError
for _n in (1007, 1008, 1044, 1049, 1050, 1051, 1054, 1060, 1061, 1064, 1066, 1067, 1068, 1070,
           1071, 1072, 1091, 1102, 1103, 1109, 1110, 1112, 1113, 1115, 1146, 1149, 1166, 1171,
           1172, 1176, 1177, 1222, 1241, 1242, 1247, 1248, 1329, 1630, 1064):
    MYSQL_ERRNOS[_n] = ProgrammingError
for _n in (1139, 1264, 1265, 1292, 1366, 1367, 1406, 1416, 1690, 1918):
    MYSQL_ERRNOS[_n] = DataError
for _n in (1205, 1213, 1040, 1043, 1045, 1053, 1927, 1317, 3024, 1969):
    MYSQL_ERRNOS[_n] = OperationalError
for _n in (1105, 1235, 1178, 1289):
    MYSQL_ERRNOS[_n] = NotSupportedError

# SQLite primary result codes (extended code & 0xff)
SQLITE_PRIMARY = {
    1: ProgrammingError,     # SQLITE_ERROR: syntax errors, no such table/column, ...
    2: InternalError,        # SQLITE_INTERNAL
    3: OperationalError,     # SQLITE_PERM
    4: OperationalError,     # SQLITE_ABORT
    5: OperationalError,     # SQLITE_BUSY
    6: OperationalError,     # SQLITE_LOCKED
    7: OperationalError,     # SQLITE_NOMEM
    8: OperationalError,     # SQLITE_READONLY
    9: OperationalError,     # SQLITE_INTERRUPT
    10: OperationalError,    # SQLITE_IOERR
    11: DatabaseError,       # SQLITE_CORRUPT
    13: OperationalError,    # SQLITE_FULL
    14: OperationalError,    # SQLITE_CANTOPEN
    15: OperationalError,    # SQLITE_PROTOCOL
    17: OperationalError,    # SQLITE_SCHEMA
    18: DataError,           # SQLITE_TOOBIG
    19: IntegrityError,      # SQLITE_CONSTRAINT (2067 unique, 1555 primary key, 787 foreign key...)
    20: DataError,           # SQLITE_MISMATCH
    21: InterfaceError,      # SQLITE_MISUSE
    23: OperationalError,    # SQLITE_AUTH
    25: ProgrammingError,    # SQLITE_RANGE (bind index)
    26: DatabaseError,       # SQLITE_NOTADB
}


# -- one class per SQLSTATE, as psycopg2.errors -----------------------------------------------------
_BASES = {c.__name__: c for c in (DatabaseError, DataError, OperationalError, IntegrityError,
                                  InternalError, ProgrammingError, NotSupportedError,
                                  TransactionRollbackError, QueryCanceledError)}
_BY_SQLSTATE: Dict[str, type] = {}


def _make_classes() -> None:
    # module globals, as psycopg2.errors has them (SyntaxError and SystemError shadow the builtins
    # here, as they do there)
    namespace = globals()
    for line in _SQLSTATE_TABLE.split("\n"):
        if not line:
            continue
        sqlstate, name, base = line.split()
        cls = type(name, (_BASES[base],), {"__module__": __name__, "__qualname__": name,
                                          "__doc__": f"SQLSTATE {sqlstate}"})
        namespace[name] = cls
        _BY_SQLSTATE[sqlstate] = cls


_make_classes()


def lookup(code: str) -> type:
    """The exception class of a SQLSTATE, as psycopg2.errors.lookup (KeyError when it has none)."""
    return _BY_SQLSTATE[code]


QueryCanceled = lookup("57014")

# MySQL / MariaDB error numbers that mean what a PostgreSQL SQLSTATE means: raised as its class
# (when that class is a subclass of the PEP 249 class the number maps to, which a test checks)
MYSQL_AS_SQLSTATE = {
    1022: "23505", 1062: "23505", 1169: "23505", 1586: "23505",  # duplicate key
    1216: "23503", 1217: "23503", 1451: "23503", 1452: "23503",  # foreign key
    1048: "23502",                                               # column cannot be null
    3819: "23514", 4025: "23514",                                # check constraint (MySQL, MariaDB)
    1213: "40P01",                                               # deadlock
    1205: "55P03",                                               # lock wait timeout
    1317: "57014", 1969: "57014", 3024: "57014",                 # interrupted, statement time limits
    1051: "42P01", 1146: "42P01",                                # unknown table
    1054: "42703",                                               # unknown column
    1064: "42601", 1149: "42601",                                # syntax error
    1050: "42P07", 1061: "42P07",                                # table / index name exists
    1060: "42701",                                               # duplicate column name
    1365: "22012",                                               # division by zero
    1264: "22003", 1690: "22003",                                # out of range
    1406: "22001",                                               # data too long
    1366: "22P02",                                               # incorrect value for the type
    1049: "3D000",                                               # unknown database
    1044: "42501", 1142: "42501", 1143: "42501",                 # access denied
}

# SQLite extended result codes likewise
SQLITE_AS_SQLSTATE = {
    1555: "23505", 2067: "23505",  # SQLITE_CONSTRAINT_PRIMARYKEY, _UNIQUE
    787: "23503",                  # SQLITE_CONSTRAINT_FOREIGNKEY
    1299: "23502",                 # SQLITE_CONSTRAINT_NOTNULL
    275: "23514",                  # SQLITE_CONSTRAINT_CHECK
    5: "55P03", 6: "55P03",        # SQLITE_BUSY, SQLITE_LOCKED
    9: "57014",                    # SQLITE_INTERRUPT
}


def _pep249_class(backend: Optional[str], sqlstate: Optional[str], errno: Optional[int]) -> type:
    if backend == "sqlite" and errno is not None:
        return SQLITE_PRIMARY.get(errno & 0xFF, DatabaseError)
    if backend == "mysql" and errno is not None and errno in MYSQL_ERRNOS:
        return MYSQL_ERRNOS[errno]
    if sqlstate and len(sqlstate) == 5 and sqlstate[:2] not in ("HY", "00", "01"):
        cls = SQLSTATE_CLASSES.get(sqlstate[:2].upper())
        if cls is not None:
            return cls
    if backend is None and errno is not None:
        # unknown backend: SQLite constraint codes are distinctive enough
        if errno & 0xFF == 19 and errno < 4096:
            return IntegrityError
    if backend == "mysql" and errno is not None and 2000 <= errno < 3000:
        return OperationalError  # client library errors: connection lost etc.
    return DatabaseError


def classify_sql_error(backend: Optional[str], sqlstate: Optional[str], errno: Optional[int]) -> type:
    """The exception class for an SQL_ERROR from the given backend."""
    if backend in ("postgresql", None) and sqlstate in _BY_SQLSTATE:
        return _BY_SQLSTATE[sqlstate]
    base = _pep249_class(backend, sqlstate, errno)
    specific = None
    if backend == "mysql" and errno is not None:
        specific = _BY_SQLSTATE.get(MYSQL_AS_SQLSTATE.get(errno, ""))
    elif backend == "sqlite" and errno is not None:
        specific = _BY_SQLSTATE.get(SQLITE_AS_SQLSTATE.get(errno, ""))
    return specific if specific is not None and issubclass(specific, base) else base


def from_error_body(body: Dict[str, Any], backend: Optional[str]) -> Error:
    code = body.get("code")
    message = body.get("message") or ""
    sqlstate = body.get("sqlstate")
    errno = body.get("errno")
    if code == "SQL_ERROR":
        cls = classify_sql_error(backend, sqlstate, errno)
    elif code in ("CANCELLED", "TIMEOUT"):
        cls = QueryCanceled
        if sqlstate is None and backend == "postgresql":
            sqlstate = "57014"  # what PostgreSQL reports for the cancel bindsd sent it
    else:
        cls = BROKER_CODES.get(code, DatabaseError)
    e = cls(message, code=code, sqlstate=sqlstate, errno=errno, bind=body.get("bind"),
            may_have_executed=body.get("may_have_executed"))
    if code == "SQL_ERROR" and backend == "mysql" and errno is not None:
        e.args = (errno, message)  # pymysql's convention
    return e
