"""PEP 249 connection and cursor over the binds protocol."""

from __future__ import annotations

import json
import re
import select
import socket
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Optional, Tuple

from . import protocol as P
from .errors import (DatabaseError, Error, InterfaceError, NotSupportedError, OperationalError,
                     ProgrammingError, from_error_body)
from .paramstyle import convert

CLIENT_NAME = "binds-python/0.1.0"

# executemany: statements sent ahead of their answers, at most (bindsd answers BUSY beyond 1024)
MAX_IN_FLIGHT = 256

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_INTO = re.compile(r"\binto\b", re.I)


def _is_plain_select(sql: str) -> bool:
    """A statement that reads only: SELECT first (after comments), no INTO (SELECT ... INTO
    creates a table on PostgreSQL). A SELECT calling a function that writes is not told apart."""
    rest = sql[_LEADING_COMMENTS.match(sql).end():]
    return rest[:6].lower() == "select" and not rest[6:7].isalnum() and not _INTO.search(rest)

# pymysql's rule for an executemany it may send as one multi-row INSERT: INSERT/REPLACE ... VALUES
# with a single group holding only placeholders, optionally ON DUPLICATE KEY UPDATE after it.
_INSERT_VALUES = re.compile(
    r"\s*((?:INSERT|REPLACE)\b.+\bVALUES?\s*)"
    r"(\(\s*(?:%s|%\([^()]+\)s)\s*(?:,\s*(?:%s|%\([^()]+\)s)\s*)*\))"
    r"(\s*(?:ON\s+DUPLICATE\b.*)?);?\s*\Z", re.I | re.S)
_PLACEHOLDER = re.compile(r"%[s(]")
# Values per multi-row INSERT (MySQL allows 65,535 placeholders). Measured on 5,000 rows of three
# values: chunks of 3,000 values took 25 ms, as pymysql did; one statement of 15,000 took 28-50 ms
# (the server prepares a large statement slowly), chunks of 300 took 35 ms.
MULTI_ROW_PARAMS = 3000
MULTI_ROW_MAX_BYTES = 1 << 20    # one multi-row statement's frame, at most (pymysql: 1 MB of SQL)

ISOLATION_LEVELS = ("read_uncommitted", "read_committed", "repeatable_read", "serializable")
_SQL_ISOLATION = {name: name.replace("_", " ").upper() for name in ISOLATION_LEVELS}


def _norm_isolation(level: Optional[str]) -> Optional[str]:
    if level is None:
        return None
    norm = str(level).strip().lower().replace(" ", "_").replace("-", "_")
    if norm not in ISOLATION_LEVELS:
        raise ProgrammingError(f"unknown isolation level {level!r}; use one of {', '.join(ISOLATION_LEVELS)}")
    return norm


class _Stream:
    """The frames of one QUERY not yet read from the socket."""

    __slots__ = ("rid", "cursor", "done")

    def __init__(self, rid: int, cursor: "Cursor"):
        self.rid = rid
        self.cursor = cursor
        self.done = False


class _Pipeline:
    """The statements of one executemany sent ahead of their answers. They go to one bind, whose
    requests run and are answered in the order sent (PROTOCOL.md §8)."""

    BEGIN = -1  # index of a BEGIN sent ahead of the first statement

    def __init__(self, conn: "Connection"):
        self.conn = conn
        self.inflight: Deque[Tuple[int, int]] = deque()  # (request id, index) in order sent
        self.out = bytearray()  # frames not yet written
        self.total = 0
        self.counted = False
        self.last_id: Optional[int] = None
        self.error: Optional[Error] = None  # of the first statement that failed
        self.begin_failed = False

    def add(self, rid: int, frame: bytes, index: int) -> None:
        self.out += frame
        self.inflight.append((rid, index))
        if len(self.out) >= 65536:
            self.flush()

    def send(self, body: Dict[str, Any], index: int) -> None:
        rid = self.conn._new_id()
        self.add(rid, P.Transport.frame(P.QUERY, rid, body), index)

    def flush(self) -> None:
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            self.conn._send_bytes(data, pipelined=True)

    def read_down_to(self, n: int) -> None:
        while len(self.inflight) > n:
            self.read_one()

    def abandon_if_unanswered(self) -> None:
        """Interrupted (KeyboardInterrupt, a timeout) with answers still due: the connection is
        out of step with the server and must not be used again."""
        if self.inflight:
            self.conn._abandon(f"interrupted with {len(self.inflight)} statements unanswered")

    def read_one(self) -> None:
        """Read the whole answer of the oldest request in flight."""
        self.flush()
        conn = self.conn
        rid, index = self.inflight[0]
        rows = False
        while True:
            ftype, body = conn._read_for(rid)
            if ftype in P.FINAL_TYPES:
                break
            if ftype == P.COLUMNS:
                rows = True
            elif ftype != P.ROWS:
                raise conn._lost(ConnectionError(
                    f"protocol violation: frame 0x{ftype:02x} in a query result"))
        self.inflight.popleft()
        if index == self.BEGIN:
            if ftype == P.COMPLETE:
                conn._begin_done(body)
                return
            conn._begin_ok = None
            self.begin_failed = True
        elif self.begin_failed and self.error is not None:
            conn._note_unbegun(self.error, ftype, body)
            self.begin_failed = False
        if ftype == P.COMPLETE:
            conn._tx_open = bool(body.get("in_transaction", conn._tx_open))
            n = body.get("row_count" if rows else "affected")
            if n is not None and n >= 0:
                self.total += int(n)
                self.counted = True
            if body.get("last_insert_id") is not None:
                self.last_id = body["last_insert_id"]
        elif ftype == P.ERROR:
            if body.get("code") == "TX_ABORTED":
                conn._tx_open = True  # a ROLLBACK is needed to leave the aborted state
            if self.error is None:
                self.error = conn._error(body)
                if index != self.BEGIN:
                    self.error.executemany_index = index
        else:
            raise conn._lost(ConnectionError(f"protocol violation: frame 0x{ftype:02x} in a query result"))


class Connection:
    """One connection to bindsd, bound to one bind key. Not safe to share between threads."""

    # PEP 249 optional extension: exceptions as connection attributes
    from .errors import (DataError, IntegrityError, InternalError, Warning)  # noqa: E402
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    OperationalError = OperationalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, host: Optional[str] = None, port: Optional[int] = None, bind: Optional[str] = None,
                 unix_socket: Optional[str] = None, *, timeout: Optional[float] = None,
                 connect_timeout: Optional[float] = 10.0, autocommit: bool = False,
                 isolation_level: Optional[str] = None, read_only: bool = False,
                 paramstyle: str = "auto", transactions: str = "auto",
                 backend: Optional[str] = None, decode_json: bool = True,
                 client_name: str = CLIENT_NAME):
        if transactions not in ("auto", "frames", "sql"):
            raise ProgrammingError("transactions must be 'auto', 'frames' or 'sql'")
        if paramstyle not in ("auto", "format", "pyformat", "qmark", "named", "native"):
            raise ProgrammingError(f"unknown paramstyle {paramstyle!r}")
        self._closed = True
        self._was_lost = False
        self._autocommit = bool(autocommit)
        self._isolation = _norm_isolation(isolation_level)
        self.read_only = bool(read_only)
        self._tx_open = False
        self._tx_mode = transactions          # "auto" becomes "frames" or "sql" on first BEGIN
        self._begin_ok: Optional[tuple] = None  # _begin_key() of the last BEGIN that succeeded
        self._cancel_supported: Optional[bool] = None
        self._pending_cancels: set = set()
        self._active: Optional[_Stream] = None
        self._next_id = 1
        self.timeout = timeout
        loads = json.loads if decode_json else None
        try:
            self._t = P.Transport.open(host, port, unix_socket, connect_timeout, timeout,
                                       P.make_ext_hook(loads))
        except OSError as e:
            where = unix_socket or f"{host or '127.0.0.1'}:{port or 7878}"
            raise OperationalError(f"cannot connect to bindsd at {where}: {e}", disconnect=True) from e
        self._closed = False
        try:
            self._handshake(client_name)
            self._pick_bind(bind, backend)
        except BaseException:
            self._t.close()
            self._closed = True
            raise
        self.paramstyle = paramstyle
        if paramstyle == "auto":
            self.paramstyle = "qmark" if self.backend == "sqlite" else "pyformat"

    # -- connection set-up ---------------------------------------------------------------------
    def _handshake(self, client_name: str) -> None:
        self._send(P.HELLO, 0, {"magic": "binds", "versions": [P.PROTOCOL_VERSION],
                                "client": client_name})
        ftype, _rid, body = self._read()
        if ftype == P.ERROR:
            raise InterfaceError(f"bindsd refused the handshake: {body.get('code')}: {body.get('message')}",
                                 code=body.get("code"))
        if ftype != P.HELLO_OK:
            raise InterfaceError(f"expected HELLO_OK from bindsd, got frame type 0x{ftype:02x}")
        self.hello = body
        self.server_version = body.get("server")
        self._t.max_frame = int(body.get("max_frame") or P.PRE_HANDSHAKE_MAX_FRAME)
        # A server that ties a statement to its transaction (QUERY in_tx, PROTOCOL.md §6.1) lets
        # BEGIN go out with the statement behind it; it also has BEGIN frames.
        self._in_tx_ok = "in_tx" in (body.get("features") or ())
        if self._in_tx_ok and self._tx_mode == "auto":
            self._tx_mode = "frames"

    def _pick_bind(self, bind: Optional[str], backend: Optional[str]) -> None:
        rid = self._new_id()
        self._send(P.LIST_BINDS, rid, {})
        ftype, body = self._wait_final(rid)
        if ftype != P.BINDS:
            raise self._error(body)
        binds = {b.get("key"): b for b in body.get("binds", [])}
        key = bind or self.hello.get("default_bind")
        if key not in binds:
            known = ", ".join(sorted(str(k) for k in binds)) or "none"
            raise OperationalError(f"bindsd has no bind {key!r} (configured binds: {known})",
                                   code="UNKNOWN_BIND", bind=key)
        info = binds[key]
        self.bind: str = key
        self.backend: str = info.get("backend")
        self.database: Optional[str] = info.get("database")
        if backend is not None and backend != self.backend:
            raise InterfaceError(
                f"bind {key!r} on bindsd is a {self.backend} database, not {backend}: "
                f"use the {self.backend}+binds:// URL scheme for it", bind=key)

    # -- low-level I/O ---------------------------------------------------------------------------
    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < 0xFFFFFFFF else 1
        return rid

    def _lost(self, e: BaseException) -> OperationalError:
        self._was_lost = True
        self._t.close()
        self._closed = True
        self._active = None
        self._tx_open = False
        if isinstance(e, socket.timeout):
            msg = f"no answer from bindsd within {self.timeout}s; connection closed"
        else:
            msg = f"connection to bindsd lost: {e}"
        return OperationalError(msg, code="CONNECTION_LOST", bind=getattr(self, "bind", None),
                                disconnect=True)

    def _send(self, ftype: int, rid: int, body: Dict[str, Any]) -> None:
        try:
            self._t.send(ftype, rid, body)
        except (P.ConnectionLost, OSError) as e:
            raise self._lost(e) from e

    def _send_bytes(self, data: bytes, pipelined: bool = False) -> None:
        try:
            if pipelined:
                self._t.send_pipelined(data)
            else:
                self._t.send_bytes(data)
        except (P.ConnectionLost, OSError) as e:
            raise self._lost(e) from e

    def _abandon(self, why: str) -> None:
        """Close a connection left out of step with the server (answers to requests still to
        come, e.g. after a KeyboardInterrupt): bindsd rolls back what it had open."""
        if not self._closed:
            self._lost(ConnectionError(why))

    def _read(self):
        try:
            return self._t.read()
        except (P.ConnectionLost, OSError) as e:
            raise self._lost(e) from e

    def _read_for(self, rid: int):
        """Next frame of request rid, skipping answers to our CANCEL requests."""
        while True:
            ftype, frid, body = self._read()
            if frid == rid:
                return ftype, body
            if frid in self._pending_cancels:
                if ftype in P.FINAL_TYPES:
                    self._pending_cancels.discard(frid)
                    if ftype == P.ERROR and body.get("code") == "UNKNOWN_FRAME_TYPE":
                        self._cancel_supported = False
                    elif ftype == P.COMPLETE:
                        self._cancel_supported = True
                continue
            if frid == 0 and ftype == P.ERROR:
                err = self._error(body)
                self._lost(ConnectionError(str(err)))
                err.disconnect = True
                raise err
            raise self._lost(ConnectionError(f"protocol violation: frame 0x{ftype:02x} for unexpected "
                                             f"request id {frid} (waiting for {rid})"))

    def _wait_final(self, rid: int):
        while True:
            ftype, body = self._read_for(rid)
            if ftype in P.FINAL_TYPES:
                return ftype, body

    def _error(self, body: Dict[str, Any]) -> Error:
        return from_error_body(body, getattr(self, "backend", None))

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("connection is closed", disconnect=True)

    def _simple(self, ftype: int, body: Dict[str, Any]) -> Dict[str, Any]:
        """Send a request answered by one final frame; return COMPLETE's body or raise."""
        self._finish_active()
        rid = self._new_id()
        self._send(ftype, rid, body)
        rtype, rbody = self._wait_final(rid)
        if rtype == P.ERROR:
            raise self._error(rbody)
        return rbody

    # -- the one request whose result is being streamed ----------------------------------------
    def _finish_active(self) -> None:
        """Before another request: read the rest of the streaming result into its cursor."""
        s = self._active
        if s is not None:
            s.cursor._buffer_rest()

    def _discard_active(self) -> None:
        s = self._active
        if s is None or s.done:
            self._active = None
            return
        # CANCEL only outside a transaction: a cancelled statement aborts a PostgreSQL transaction
        # (and SQLite's interrupt rolls a writing one back), which closing a cursor must not do
        if self._cancel_supported is not False and not self._tx_open:
            cid = self._new_id()
            self._pending_cancels.add(cid)
            self._send(P.CANCEL, cid, {"target": s.rid})
        try:
            while True:
                ftype, body = self._read_for(s.rid)
                if ftype in P.FINAL_TYPES:
                    if ftype == P.COMPLETE:
                        self._tx_open = bool(body.get("in_transaction", self._tx_open))
                    break
        finally:
            s.done = True
            self._active = None

    # -- transactions ------------------------------------------------------------------------------
    def _needs_begin(self) -> bool:
        return not self._autocommit and not self._tx_open

    def _begin_key(self) -> tuple:
        return (self._tx_mode, self._isolation, self.read_only)

    def _begin_request(self) -> Tuple[int, Dict[str, Any]]:
        """The request that opens a transaction: a BEGIN frame, or SQL for servers without them."""
        if self._tx_mode in ("auto", "frames"):
            body: Dict[str, Any] = {"bind": self.bind}
            if self._isolation:
                body["isolation"] = self._isolation
            if self.read_only:
                body["read_only"] = True
            return P.BEGIN, body
        return P.QUERY, {"sql": self._begin_sql(), "bind": self.bind}

    def _ensure_tx(self) -> None:
        """Open the transaction the next statement needs, waiting for BEGIN's answer."""
        if not self._needs_begin():
            return
        self._begin_ok = None
        ftype, body = self._begin_request()
        try:
            c = self._simple(ftype, body)
        except NotSupportedError as e:
            if ftype != P.BEGIN or self._tx_mode != "auto" or e.code != "UNKNOWN_FRAME_TYPE":
                raise
            self._tx_mode = "sql"
            ftype, body = self._begin_request()
            c = self._simple(ftype, body)
        if ftype == P.BEGIN:
            self._tx_mode = "frames"
        self._begin_done(c)

    def _begin_done(self, body: Dict[str, Any]) -> None:
        self._tx_open = bool(body.get("in_transaction", True))
        self._begin_ok = self._begin_key()

    def _begin_ahead(self, sql: str) -> Optional[Tuple[int, bytes]]:
        """Before a statement: open the transaction it needs. Returns (request id, frame) of a
        BEGIN to send without waiting for its answer, in one write with the statement right
        behind it (one round trip for both; _settle_begin reads BEGIN's answer), or None when
        the statement needs no BEGIN or one was run here and answered.

        On a server that knows `in_tx` every statement goes behind an unanswered BEGIN, marked
        in_tx: if that BEGIN fails, bindsd answers the statement NOT_IN_TRANSACTION without
        running it. On older servers, only a plain SELECT goes behind an unanswered BEGIN. Should that BEGIN fail for a passing
        cause (pool timeout, backend unreachable) while the statement then succeeds, the statement
        ran outside any transaction, and bindsd runs a client's requests to a bind independently
        (PROTOCOL.md §8): for a write that would be an effect committed that the application
        believes failed, and may retry. Writes wait for BEGIN's answer until the protocol can tie
        a statement to the transaction it was sent for.

        BEGIN goes ahead unanswered only once a BEGIN of the same kind (mode, isolation, read only)
        has succeeded on this connection: one the server refuses outright (an isolation level the
        backend lacks) would let the statement behind it run outside any transaction. What remains
        is a BEGIN failing for a passing cause (pool timeout, backend unreachable) while the
        statement behind it then succeeds; _settle_begin says so in the error it raises."""
        if not self._needs_begin():
            return None
        if not self._in_tx_ok and (self._begin_ok != self._begin_key() or not _is_plain_select(sql)):
            self._ensure_tx()
            return None
        ftype, body = self._begin_request()
        rid = self._new_id()
        return rid, P.Transport.frame(ftype, rid, body)

    def _settle_begin(self, begin_rid: int, stmt_rid: int) -> None:
        """Read the answer to a BEGIN sent ahead of statement stmt_rid. If BEGIN failed, read the
        statement's answer too, so the connection stays in step, and raise BEGIN's error."""
        ftype, body = self._wait_final(begin_rid)
        if ftype == P.COMPLETE:
            self._begin_done(body)
            return
        self._begin_ok = None
        if ftype != P.ERROR:
            raise self._lost(ConnectionError(f"protocol violation: frame 0x{ftype:02x} answers BEGIN"))
        err = self._error(body)
        ftype, body = self._wait_final(stmt_rid)
        self._note_unbegun(err, ftype, body)
        raise err

    def _note_unbegun(self, err: Error, ftype: int, body: Dict[str, Any]) -> None:
        """The statement sent behind a BEGIN that failed (err) has been answered: if it ran, it
        ran without a transaction, and err says so."""
        if ftype == P.COMPLETE:
            self._tx_open = bool(body.get("in_transaction", False))
            err.message += (" (BEGIN failed; the statement sent right behind it then ran without a"
                            " transaction and completed: its effects are committed)")
        elif ftype == P.ERROR and body.get("code") == "TX_ABORTED":
            self._tx_open = True

    def _begin_sql(self) -> str:
        if self.backend == "postgresql":
            sql = "BEGIN"
            if self._isolation:
                sql += " ISOLATION LEVEL " + _SQL_ISOLATION[self._isolation]
            if self.read_only:
                sql += " READ ONLY"
            return sql
        if self.backend == "mysql":
            # an isolation level would need a separate SET TRANSACTION, which may run on
            # another pooled connection: only the BEGIN frame carries it
            return "START TRANSACTION READ ONLY" if self.read_only else "START TRANSACTION"
        return "BEGIN"

    def _end_tx(self, ftype: int, sql: str) -> None:
        self._check_open()
        self._finish_active()
        if not self._tx_open:
            return
        try:
            if self._tx_mode == "frames":
                c = self._simple(ftype, {"bind": self.bind})
            else:
                c = self._simple(P.QUERY, {"sql": sql, "bind": self.bind})
            self._tx_open = bool(c.get("in_transaction", False))
        except Error:
            # A failed COMMIT leaves the transaction for rollback() to end: bindsd refuses every
            # request of a lost transaction until ROLLBACK (PROTOCOL.md §6.5). A lost connection
            # has nothing left to end: bindsd rolled back when it went.
            if ftype == P.ROLLBACK or self._closed:
                self._tx_open = False
            raise

    @property
    def transactions(self) -> str:
        """How transactions are opened: 'frames' (BEGIN/COMMIT/ROLLBACK requests), 'sql' (plain SQL
        statements, for servers without them), or 'auto' until the first transaction decided."""
        return self._tx_mode

    @property
    def in_transaction(self) -> bool:
        return self._tx_open

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        value = bool(value)
        if value and not self._autocommit and self._tx_open:
            self.commit()
        self._autocommit = value

    @property
    def isolation_level(self) -> Optional[str]:
        return self._isolation

    @isolation_level.setter
    def isolation_level(self, value: Optional[str]) -> None:
        self._isolation = _norm_isolation(value)

    # -- PEP 249 -----------------------------------------------------------------------------------
    def commit(self) -> None:
        self._end_tx(P.COMMIT, "COMMIT")

    def rollback(self) -> None:
        # A connection lost to bindsd has nothing left to roll back: the server rolls back the
        # transactions of a client that disconnects (§6.4), so the outcome is the one asked for.
        if self._closed and self._was_lost:
            return
        try:
            self._end_tx(P.ROLLBACK, "ROLLBACK")
        except OperationalError as e:
            if not e.disconnect:
                raise

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._active is not None:
                self._discard_active()
            if self._tx_open:
                self.rollback()
        except Error:
            pass
        finally:
            self._t.close()
            self._closed = True
            self._active = None
            self._tx_open = False

    @property
    def closed(self) -> bool:
        return self._closed

    def cursor(self) -> "Cursor":
        self._check_open()
        return Cursor(self)

    def ping(self) -> None:
        self._check_open()
        rid = self._new_id()
        self._send(P.PING, rid, {})
        # PONG is answered at once, even while a result streams: read frames until it arrives
        while True:
            if self._active is not None:
                self._finish_active()
            ftype, body = self._read_for(rid)
            if ftype in P.FINAL_TYPES:
                if ftype != P.PONG:
                    raise self._error(body)
                return

    def is_alive(self) -> bool:
        """A local check, no round trip: False when bindsd has closed this connection (restart,
        shutdown) or it was closed here. An idle connection has nothing to read; EOF or a reset
        means the server is gone."""
        if self._closed:
            return False
        if self._active is not None or self._t._pos < len(self._t._buf):
            return True  # mid-result: data is expected
        sock = self._t.sock
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return True  # idle, as it should be
            old = sock.gettimeout()
            sock.settimeout(0)  # (a socket with a timeout would wait in recv despite MSG_DONTWAIT)
            try:
                data = sock.recv(1, socket.MSG_PEEK)
            finally:
                sock.settimeout(old)
        except (BlockingIOError, InterruptedError):
            return True
        except (OSError, ValueError):
            return False
        if not data:
            return False
        return True  # unsolicited bytes (e.g. a connection-level ERROR): let the next read see them

    def cancel(self, cursor: Optional["Cursor"] = None) -> None:
        """Cancel the result being streamed (of `cursor`, or whichever is active)."""
        s = self._active
        if s is not None and (cursor is None or s.cursor is cursor):
            self._discard_active()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self._t.close()
        except Exception:
            pass


class Cursor:
    arraysize = 1

    def __init__(self, connection: Connection):
        self.connection = connection
        self.arraysize = 1
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        self.description: Optional[List[tuple]] = None
        self.rowcount = -1
        self.lastrowid: Optional[int] = None
        self.rownumber: Optional[int] = None
        self._batch: List[list] = []
        self._pos = 0
        self._stream: Optional[_Stream] = None
        self._extra: List[List[list]] = []   # buffered batches when another request came first
        self._pending_error: Optional[Error] = None
        self._executed = False
        self.in_transaction: Optional[bool] = None

    # -- executing ---------------------------------------------------------------------------------
    def _check(self) -> Connection:
        if self._closed:
            raise InterfaceError("cursor is closed")
        self.connection._check_open()
        return self.connection

    def _release(self) -> None:
        conn = self.connection
        if self._stream is not None and conn._active is self._stream:
            conn._discard_active()
        self._stream = None

    def _start(self, operation: Any) -> Connection:
        conn = self._check()
        self._release()
        self._reset()
        if not isinstance(operation, str):
            raise ProgrammingError("the SQL statement must be a str")
        self._executed = True
        return conn

    @staticmethod
    def _query_body(conn: Connection, operation: str, parameters: Any) -> Dict[str, Any]:
        sql, values = convert(operation, parameters, conn.backend, conn.paramstyle)
        try:
            params = [P.encode_param(v, conn.backend) for v in values]
        except TypeError as e:
            raise ProgrammingError(str(e)) from None
        body: Dict[str, Any] = {"sql": sql, "bind": conn.bind}
        if params:
            body["params"] = params
        return body

    def execute(self, operation: str, parameters: Any = None) -> "Cursor":
        conn = self._start(operation)
        body = self._query_body(conn, operation, parameters)
        conn._finish_active()
        begin = conn._begin_ahead(operation)
        if begin is not None and conn._in_tx_ok:
            body["in_tx"] = True
        rid = conn._new_id()
        frame = P.Transport.frame(P.QUERY, rid, body)
        if begin is None:
            conn._send_bytes(frame)
        else:
            try:
                conn._send_bytes(begin[1] + frame)
                conn._settle_begin(begin[0], rid)
            except Error:
                raise
            except BaseException:
                conn._abandon("interrupted between BEGIN and its statement")
                raise
        stream = _Stream(rid, self)
        conn._active = stream
        self._stream = stream
        try:
            ftype, fbody = conn._read_for(rid)
        except BaseException:
            conn._active = None
            raise
        if ftype == P.COLUMNS:
            cols = fbody.get("columns", [])
            self.description = [(c.get("name"), c.get("type"), None, None, None, None, None)
                                for c in cols]
            self.rownumber = 0
            # as psycopg2 does, raise at execute() an error that ends the result before any row
            # (a lock not available, a statement timeout): wait for the first rows or the end
            self._read_batch()
            return self
        self._finish(ftype, fbody)
        if self._pending_error is not None:
            err, self._pending_error = self._pending_error, None
            raise err
        return self

    def _finish(self, ftype: int, body: Dict[str, Any]) -> None:
        conn = self.connection
        s = self._stream
        if s is not None:
            s.done = True
            if conn._active is s:
                conn._active = None
        if ftype == P.COMPLETE:
            self.in_transaction = bool(body.get("in_transaction", False))
            conn._tx_open = self.in_transaction
            if self.description is not None:
                self.rowcount = int(body.get("row_count", body.get("affected", -1)))
            else:
                self.rowcount = int(body.get("affected", -1))
            self.lastrowid = body.get("last_insert_id")
        elif ftype == P.ERROR:
            self._pending_error = conn._error(body)
            if body.get("code") == "TX_ABORTED":
                conn._tx_open = True  # a ROLLBACK is needed to leave the aborted state
        else:
            raise conn._lost(ConnectionError(f"protocol violation: frame 0x{ftype:02x} in a query result"))

    def _read_batch(self) -> bool:
        """Read frames until rows arrive or the result ends; False at the end."""
        s = self._stream
        if self._extra:
            self._batch = self._extra.pop(0)
            self._pos = 0
            return True
        if s is None or s.done:
            if self._pending_error is not None:
                err, self._pending_error = self._pending_error, None
                raise err
            return False
        conn = self.connection
        while True:
            ftype, body = conn._read_for(s.rid)
            if ftype == P.ROWS:
                rows = body.get("rows", [])
                if rows:
                    self._batch = rows
                    self._pos = 0
                    return True
                continue
            if ftype in P.FINAL_TYPES:
                self._finish(ftype, body)
                if self._pending_error is not None:
                    err, self._pending_error = self._pending_error, None
                    raise err
                return False
            raise conn._lost(ConnectionError(f"protocol violation: frame 0x{ftype:02x} in a query result"))

    def _buffer_rest(self) -> None:
        """Another request is about to use the connection: read the rest of this result now."""
        s = self._stream
        if s is None or s.done:
            return
        conn = self.connection
        pending = [self._batch[self._pos:]] if self._pos < len(self._batch) else []
        self._batch, self._pos = [], 0
        while True:
            ftype, body = conn._read_for(s.rid)
            if ftype == P.ROWS:
                if body.get("rows"):
                    pending.append(body["rows"])
                continue
            self._finish(ftype, body)
            break
        self._extra.extend(pending)

    def executemany(self, operation: str, seq_of_parameters: Iterable[Any]) -> "Cursor":
        """Run operation once per set of parameters, pipelined: the statements go to bindsd
        without waiting for each answer (at most MAX_IN_FLIGHT unanswered at a time), so the
        whole batch costs about one round trip, not one per row. rowcount is the total of the
        rows each statement affected; rows a statement returns are discarded.

        If a statement fails, its error is raised once every statement sent has been answered
        (the connection stays usable), with `executemany_index` the 0-based position of its
        parameters in the sequence; no statement is sent after a failure is seen. This differs
        from psycopg2, whose executemany stops at the failing statement: here the statements
        already sent behind it (up to MAX_IN_FLIGHT) have run as well. In a transaction (the
        default) that is harmless on PostgreSQL, which refuses every later statement of a failed
        transaction (SQLSTATE 25P02), and on MySQL/SQLite it is undone by the rollback() that
        normally follows the error; but do not commit() after a failed executemany expecting
        only the rows before the failure. In autocommit mode the statements after the failing
        one may have taken effect, each on its own.

        A transaction the batch needs is opened by a BEGIN sent right ahead of the first
        statement. On a server that knows `in_tx` the statements follow it at once, each marked
        in_tx, so should the BEGIN fail none of them runs; on older servers BEGIN's answer is
        read before any other statement goes out.
        """
        conn = self._start(operation)
        conn._finish_active()
        if conn.backend == "mysql" and conn.paramstyle in ("format", "pyformat"):
            m = _INSERT_VALUES.match(operation)
            if m and not _PLACEHOLDER.search((m.group(1) + m.group(3)).replace("%%", "")):
                return self._executemany_multirow(conn, operation, m, seq_of_parameters)
        return self._executemany_each(conn, operation, seq_of_parameters)

    def _executemany_each(self, conn: Connection, operation: str, seq_of_parameters: Iterable[Any],
                          first_index: int = 0) -> "Cursor":
        """One statement per set of parameters, pipelined; indexes in errors count from first_index."""
        pipe = _Pipeline(conn)
        in_tx = False  # the batch follows a BEGIN sent ahead: its statements are tied to it
        failure: Optional[BaseException] = None
        try:
            try:
                for index, params in enumerate(seq_of_parameters, first_index):
                    if pipe.error is not None:
                        break
                    try:
                        body = self._query_body(conn, operation, params)
                    except Error as e:
                        e.executemany_index = index
                        raise
                    if index == first_index and conn._needs_begin():
                        begin = conn._begin_ahead(operation)
                        if begin is not None:
                            pipe.add(begin[0], begin[1], _Pipeline.BEGIN)
                            if conn._in_tx_ok:
                                in_tx = True
                            else:
                                pipe.send(body, index)
                                pipe.read_one()  # BEGIN's answer, before more statements go out
                                continue
                    if in_tx:
                        body["in_tx"] = True
                    pipe.send(body, index)
                    if len(pipe.inflight) >= MAX_IN_FLIGHT:
                        pipe.read_down_to(MAX_IN_FLIGHT // 2)
            except Exception as e:  # iterating or converting the parameters, or a BEGIN, failed
                if conn._closed:
                    raise
                failure = e
            pipe.read_down_to(0)
        except Error:
            raise
        except BaseException:
            pipe.abandon_if_unanswered()
            raise
        self.in_transaction = conn._tx_open
        if pipe.error is not None:
            raise pipe.error
        if failure is not None:
            raise failure
        self.rowcount = pipe.total if pipe.counted else -1
        self.lastrowid = pipe.last_id
        return self


    def _executemany_multirow(self, conn: Connection, operation: str, m: "re.Match",
                              seq_of_parameters: Iterable[Any]) -> "Cursor":
        """MySQL: an INSERT ... VALUES executemany sent as multi-row INSERTs, as pymysql does (one
        statement per chunk of rows instead of one per row; the values stay bound parameters).

        A chunk that fails is undone by the server as a whole (InnoDB rolls back the statement);
        its rows are then sent again one statement each, so the error carries the exact row's
        executemany_index and the rows before it are in, as with one statement per row. Nothing
        is sent after that. On a table of a non-transactional engine (MyISAM) the rows a failed
        chunk inserted before its error stay, and the row-by-row retry then reports a duplicate
        of one of them instead."""
        prefix, suffix = convert(m.group(1), (), "mysql", "format")[0], convert(m.group(3), (), "mysql", "format")[0]
        group = m.group(2)
        total, counted, last_id = 0, False, None
        rows: List[Any] = []
        sql_parts: List[str] = []
        values: List[Any] = []
        failure: Optional[BaseException] = None
        index = 0
        it = iter(seq_of_parameters)
        while True:
            # Gather one chunk: as many rows as fit MySQL's placeholder limit and the byte budget.
            chunk_start = index
            rows, sql_parts, values = [], [], []
            size = len(prefix) + len(suffix)
            try:  # (a chunk's last row may pass MULTI_ROW_PARAMS: 65,535 is far)
                for params in it:
                    try:
                        g_sql, g_values = convert(group, params, "mysql", conn.paramstyle)
                        encoded = [P.encode_param(v, "mysql") for v in g_values]
                    except TypeError as e:
                        err = ProgrammingError(str(e))
                        err.executemany_index = index
                        raise err from None
                    except Error as e:
                        e.executemany_index = index
                        raise
                    rows.append(params)
                    sql_parts.append(g_sql)
                    values.extend(encoded)
                    index += 1
                    size += len(g_sql) + 1
                    for v in g_values:
                        size += len(v) if isinstance(v, (str, bytes)) else 9
                    if len(values) >= MULTI_ROW_PARAMS or size >= MULTI_ROW_MAX_BYTES:
                        break
            except Exception as e:  # iterating or converting the parameters failed: send what came before
                failure = e
            if not rows:
                break
            body: Dict[str, Any] = {"sql": prefix + ",".join(sql_parts) + suffix, "bind": conn.bind}
            if values:
                body["params"] = values
            pipe = _Pipeline(conn)
            try:
                if conn._needs_begin():
                    begin = conn._begin_ahead(operation)
                    if begin is not None:
                        pipe.add(begin[0], begin[1], _Pipeline.BEGIN)
                        if conn._in_tx_ok:
                            body["in_tx"] = True
                        else:
                            pipe.read_one()
                if pipe.error is None:
                    pipe.send(body, chunk_start)
                pipe.read_down_to(0)
            except Error:
                raise
            except BaseException:
                pipe.abandon_if_unanswered()
                raise
            err = pipe.error
            if err is not None and err.executemany_index is not None and err.code == "SQL_ERROR":
                # Which row? Send the chunk again one row per statement: that error is exact.
                try:
                    self._executemany_each(conn, operation, rows, chunk_start)
                except Error as again:
                    if again.code == "TX_ABORTED" or again.executemany_index is None:
                        raise err from None  # the chunk's own error says more
                    raise
                # One by one they all went in: the chunk failed as a whole only (too large a
                # packet for the server, say).
                pipe.total, pipe.counted, pipe.last_id = max(self.rowcount, 0), self.rowcount >= 0, self.lastrowid
            elif err is not None:
                raise err
            total += pipe.total
            counted = counted or pipe.counted
            if pipe.last_id is not None:
                last_id = pipe.last_id
            if failure is not None:
                break
        self.in_transaction = conn._tx_open
        if failure is not None:
            raise failure
        self.rowcount = total if counted else -1
        self.lastrowid = last_id
        return self

    # -- fetching -------------------------------------------------------------------------------------
    def _check_result(self) -> None:
        if self._closed:
            raise InterfaceError("cursor is closed")
        if not self._executed:
            raise ProgrammingError("no statement was executed")
        if self.description is None:
            raise ProgrammingError("the last statement returned no rows")

    def fetchone(self) -> Optional[tuple]:
        self._check_result()
        if self._pos >= len(self._batch) and not self._read_batch():
            return None
        row = self._batch[self._pos]
        self._pos += 1
        self.rownumber += 1
        return tuple(row)

    def fetchmany(self, size: Optional[int] = None) -> List[tuple]:
        self._check_result()
        n = self.arraysize if size is None else size
        out: List[tuple] = []
        while len(out) < n:
            if self._pos >= len(self._batch) and not self._read_batch():
                break
            take = self._batch[self._pos: self._pos + (n - len(out))]
            self._pos += len(take)
            out.extend(tuple(r) for r in take)
        self.rownumber += len(out)
        return out

    def fetchall(self) -> List[tuple]:
        self._check_result()
        out: List[tuple] = []
        while True:
            if self._pos >= len(self._batch) and not self._read_batch():
                break
            out.extend(tuple(r) for r in self._batch[self._pos:])
            self._pos = len(self._batch)
        self.rownumber += len(out)
        return out

    def __iter__(self) -> "Cursor":
        return self

    def __next__(self) -> tuple:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    # -- the rest of PEP 249 -------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        try:
            if not self.connection._closed:
                self._release()
        finally:
            self._closed = True
            self._batch, self._extra = [], []

    @property
    def closed(self) -> bool:
        return self._closed

    def setinputsizes(self, *sizes: Any, **kw: Any) -> None:
        pass

    def setoutputsize(self, size: int, column: Optional[int] = None) -> None:
        pass

    def callproc(self, procname: str, parameters: Any = None) -> Any:
        raise NotSupportedError("callproc is not supported; use execute('CALL ...')")

    def nextset(self) -> None:
        return None

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
