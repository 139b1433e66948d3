"""PEP 249 exceptions and their mapping from broker codes, SQLSTATEs and backend error numbers."""

from __future__ import annotations

from typing import Any, Dict, Optional


class Warning(Exception):  # noqa: A001 - the name is fixed by PEP 249
    pass


class Error(Exception):
    """Base of all driver errors. Carries the broker's ERROR body when there was one."""

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
        s = " ".join(p for p in parts if p)
        return f"{s} [{', '.join(extra)}]" if extra else s


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
    "CANCELLED": OperationalError,
    "TIMEOUT": OperationalError,
    "SHUTTING_DOWN": OperationalError,
    "TOO_MANY_CLIENTS": OperationalError,
    "INTERNAL": InternalError,
}

# SQLSTATE class (first two characters) -> exception, as psycopg2 does it
SQLSTATE_CLASSES = {
    "0A": NotSupportedError,
    "08": OperationalError,
    "20": ProgrammingError,
    "21": ProgrammingError,
    "22": DataError,
    "23": IntegrityError,
    "24": InternalError,
    "25": InternalError,
    "26": InternalError,
    "27": InternalError,
    "28": OperationalError,
    "2B": InternalError,
    "2D": InternalError,
    "2F": InternalError,
    "34": InternalError,
    "38": InternalError,
    "39": InternalError,
    "3B": InternalError,
    "3D": ProgrammingError,
    "3F": ProgrammingError,
    "40": OperationalError,
    "42": ProgrammingError,
    "44": ProgrammingError,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
    "F0": InternalError,
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


def classify_sql_error(backend: Optional[str], sqlstate: Optional[str], errno: Optional[int]) -> type:
    """The exception class for an SQL_ERROR from the given backend."""
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


def from_error_body(body: Dict[str, Any], backend: Optional[str]) -> Error:
    code = body.get("code")
    message = body.get("message") or ""
    sqlstate = body.get("sqlstate")
    errno = body.get("errno")
    if code == "SQL_ERROR":
        cls = classify_sql_error(backend, sqlstate, errno)
    else:
        cls = BROKER_CODES.get(code, DatabaseError)
    return cls(message, code=code, sqlstate=sqlstate, errno=errno, bind=body.get("bind"),
               may_have_executed=body.get("may_have_executed"))
