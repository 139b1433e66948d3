"""PEP 249 connection and cursor over the binds protocol."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence

from . import protocol as P
from .errors import (DatabaseError, Error, InterfaceError, NotSupportedError, OperationalError,
                     ProgrammingError, from_error_body)
from .paramstyle import convert

CLIENT_NAME = "binds-python/0.1.0"

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
    def _ensure_tx(self) -> None:
        if self._autocommit or self._tx_open:
            return
        if self._tx_mode in ("auto", "frames"):
            body: Dict[str, Any] = {"bind": self.bind}
            if self._isolation:
                body["isolation"] = self._isolation
            if self.read_only:
                body["read_only"] = True
            try:
                c = self._simple(P.BEGIN, body)
            except NotSupportedError as e:
                if self._tx_mode != "auto" or e.code != "UNKNOWN_FRAME_TYPE":
                    raise
                self._tx_mode = "sql"
            else:
                self._tx_mode = "frames"
                self._tx_open = bool(c.get("in_transaction", True))
                return
        c = self._simple(P.QUERY, {"sql": self._begin_sql(), "bind": self.bind})
        self._tx_open = bool(c.get("in_transaction", True))

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

    def execute(self, operation: str, parameters: Any = None) -> "Cursor":
        conn = self._check()
        self._release()
        self._reset()
        if not isinstance(operation, str):
            raise ProgrammingError("the SQL statement must be a str")
        self._executed = True
        sql, values = convert(operation, parameters, conn.backend, conn.paramstyle)
        try:
            params = [P.encode_param(v, conn.backend) for v in values]
        except TypeError as e:
            raise ProgrammingError(str(e)) from None
        conn._finish_active()
        conn._ensure_tx()
        rid = conn._new_id()
        body: Dict[str, Any] = {"sql": sql, "bind": conn.bind}
        if params:
            body["params"] = params
        conn._send(P.QUERY, rid, body)
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

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> "Cursor":
        total = 0
        counted = False
        last_id = None
        for params in seq_of_parameters:
            self.execute(operation, params)
            if self.description is not None:
                self._release()
            if self.rowcount >= 0:
                total += self.rowcount
                counted = True
            if self.lastrowid is not None:
                last_id = self.lastrowid
        self.description = None
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
