"""A small client for the binds protocol, version 1, written from protocol/PROTOCOL.md alone.

Self-contained: needs only the standard library and msgpack-python.

    c = Client.unix("/run/bindsd.sock")        # or Client.tcp("127.0.0.1", 7300)
    info = c.hello()                           # HELLO_OK body (dict)
    res = c.query("SELECT ?", params=[1])      # Result(columns, rows, complete)
    c.close()

Lower-level pieces (send_query / send_ping / read_frame / collect) allow pipelining and sending
malformed input on purpose.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

import msgpack

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">IBBHI")  # length, type, flags, reserved, request_id (§2)
HEADER_SIZE = HEADER.size  # 12
PRE_HANDSHAKE_MAX_FRAME = 4096

# §4 frame types
HELLO = 0x01
QUERY = 0x02
PING = 0x03
LIST_BINDS = 0x04
HELLO_OK = 0x81
COLUMNS = 0x82
ROWS = 0x83
COMPLETE = 0x84
ERROR = 0x85
PONG = 0x86
BINDS = 0x87

FRAME_NAMES = {
    HELLO: "HELLO", QUERY: "QUERY", PING: "PING", LIST_BINDS: "LIST_BINDS",
    HELLO_OK: "HELLO_OK", COLUMNS: "COLUMNS", ROWS: "ROWS", COMPLETE: "COMPLETE",
    ERROR: "ERROR", PONG: "PONG", BINDS: "BINDS",
}
FINAL_TYPES = frozenset({COMPLETE, ERROR, PONG, BINDS})

# §5 ext types
EXT_TYPES = {1: "decimal", 2: "date", 3: "time", 4: "timestamp", 5: "json", 6: "uuid", 7: "interval"}
EXT_CODES = {name: code for code, name in EXT_TYPES.items()}


@dataclass(frozen=True)
class Ext:
    """A value carried as a MessagePack ext (§5): protocol type name and its text payload.

    Deliberately not a tuple: msgpack would encode a tuple as an array.
    """

    type: str
    text: str

    def __post_init__(self) -> None:
        if self.type not in EXT_CODES:
            raise ValueError(f"unknown ext type name {self.type!r}")

    def to_msgpack(self) -> msgpack.ExtType:
        return msgpack.ExtType(EXT_CODES[self.type], self.text.encode("utf-8"))


def _ext_hook(code: int, data: bytes) -> Any:
    name = EXT_TYPES.get(code)
    if name is None:
        return msgpack.ExtType(code, data)  # not defined by version 1; hand it back untouched
    return Ext(name, data.decode("utf-8"))


def _default(obj: Any) -> Any:
    if isinstance(obj, Ext):
        return obj.to_msgpack()
    raise TypeError(f"cannot encode {type(obj).__name__} as a protocol value")


def encode_body(body: Dict[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True, default=_default)


def decode_body(data: bytes) -> Any:
    if not data:
        return {}  # §2: a body of length 0 is read as an empty map
    return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False)


def encode_frame(ftype: int, request_id: int, body: bytes = b"", *, flags: int = 0,
                 reserved: int = 0, length: Optional[int] = None) -> bytes:
    """Build a frame; `length` may be forced to lie about the body size (for testing)."""
    n = len(body) if length is None else length
    return HEADER.pack(n, ftype, flags, reserved, request_id) + body


class ProtocolViolation(Exception):
    """The server sent something the spec does not allow."""


class ConnectionClosed(Exception):
    """The server closed the connection (possibly mid-frame)."""


@dataclass
class Frame:
    type: int
    request_id: int
    body: Any
    flags: int = 0
    reserved: int = 0

    @property
    def name(self) -> str:
        return FRAME_NAMES.get(self.type, f"0x{self.type:02x}")

    @property
    def final(self) -> bool:
        return self.type in FINAL_TYPES

    def __repr__(self) -> str:
        return f"Frame({self.name}, id={self.request_id}, body={self.body!r})"


class ServerError(Exception):
    """An ERROR frame (§7) as an exception."""

    def __init__(self, frame: Frame):
        b = frame.body if isinstance(frame.body, dict) else {}
        self.frame = frame
        self.request_id = frame.request_id
        self.code: Optional[str] = b.get("code")
        self.message: Optional[str] = b.get("message")
        self.bind: Optional[str] = b.get("bind")
        self.sqlstate: Optional[str] = b.get("sqlstate")
        self.errno: Optional[int] = b.get("errno")
        super().__init__(f"{self.code}: {self.message} (bind={self.bind!r}, id={self.request_id})")


@dataclass
class Result:
    """Everything received for one request, in order."""

    request_id: int
    frames: List[Frame] = field(default_factory=list)
    columns: Optional[List[Dict[str, Any]]] = None
    rows: List[list] = field(default_factory=list)
    final: Optional[Frame] = None

    @property
    def error(self) -> Optional[ServerError]:
        if self.final is not None and self.final.type == ERROR:
            return ServerError(self.final)
        return None

    @property
    def complete(self) -> Optional[Dict[str, Any]]:
        if self.final is not None and self.final.type == COMPLETE:
            return self.final.body
        return None

    @property
    def column_names(self) -> List[str]:
        return [c["name"] for c in self.columns or []]

    @property
    def column_types(self) -> List[str]:
        return [c["type"] for c in self.columns or []]

    def add(self, f: Frame) -> None:
        if self.final is not None:
            raise ProtocolViolation(f"frame after final response for id {self.request_id}: {f!r}")
        self.frames.append(f)
        if f.type == COLUMNS:
            if self.columns is not None or self.rows:
                raise ProtocolViolation(f"COLUMNS out of order for id {self.request_id}")
            self.columns = list(f.body.get("columns", []))
        elif f.type == ROWS:
            if self.columns is None:
                raise ProtocolViolation(f"ROWS before COLUMNS for id {self.request_id}")
            self.rows.extend(f.body.get("rows", []))
        elif f.type in FINAL_TYPES:
            self.final = f
        else:
            raise ProtocolViolation(f"unexpected frame for id {self.request_id}: {f!r}")

    def raise_for_error(self) -> "Result":
        err = self.error
        if err is not None:
            raise err
        return self


class Client:
    def __init__(self, sock: socket.socket, timeout: float = 10.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self._buf = bytearray()
        self.hello_ok: Optional[Dict[str, Any]] = None
        self.max_frame = PRE_HANDSHAKE_MAX_FRAME
        self._next_id = 1

    # -- connecting -------------------------------------------------------------------------
    @classmethod
    def unix(cls, path: str, timeout: float = 10.0) -> "Client":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s, timeout)

    @classmethod
    def tcp(cls, host: str, port: int, timeout: float = 10.0) -> "Client":
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- raw I/O ----------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, ftype: int, request_id: int, body: Dict[str, Any]) -> None:
        data = encode_body(body)
        self.send_raw(encode_frame(ftype, request_id, data))

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionClosed(
                    f"connection closed with {len(self._buf)} of {n} bytes buffered")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_frame(self) -> Frame:
        length, ftype, flags, reserved, rid = HEADER.unpack(self._recv_exact(HEADER_SIZE))
        body = decode_body(self._recv_exact(length))
        if not isinstance(body, dict):
            raise ProtocolViolation(f"frame body is not a map: {body!r}")
        if self.hello_ok is not None and length > self.max_frame:
            raise ProtocolViolation(f"frame body of {length} bytes exceeds max_frame")
        return Frame(ftype, rid, body, flags, reserved)

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the server has closed: EOF (or reset) arrives with no further data."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self._buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    # -- handshake (§3) --------------------------------------------------------------------------
    def hello(self, versions: Iterable[int] = (PROTOCOL_VERSION,),
              client: str = "spec_client.py/1") -> Dict[str, Any]:
        self.send_frame(HELLO, 0, {"magic": "binds", "versions": list(versions), "client": client})
        f = self.read_frame()
        if f.type == ERROR:
            raise ServerError(f)
        if f.type != HELLO_OK or f.request_id != 0:
            raise ProtocolViolation(f"expected HELLO_OK id 0, got {f!r}")
        self.hello_ok = f.body
        self.max_frame = int(f.body["max_frame"])
        return f.body

    # -- requests (§4) -------------------------------------------------------------------------
    def new_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def send_query(self, request_id: int, sql: str, bind: Optional[str] = None,
                   params: Optional[List[Any]] = None) -> None:
        body: Dict[str, Any] = {"sql": sql}
        if bind is not None:
            body["bind"] = bind
        if params is not None:
            body["params"] = list(params)
        self.send_frame(QUERY, request_id, body)

    def send_ping(self, request_id: int) -> None:
        self.send_frame(PING, request_id, {})

    def send_list_binds(self, request_id: int) -> None:
        self.send_frame(LIST_BINDS, request_id, {})

    def collect(self, request_ids: Iterable[int]) -> Dict[int, Result]:
        """Read frames until every id in request_ids has its final response (§8)."""
        pending = {rid: Result(rid) for rid in request_ids}
        done: Dict[int, Result] = {}
        while pending:
            f = self.read_frame()
            if f.request_id == 0 and f.type == ERROR:
                raise ServerError(f)  # connection-level error
            r = pending.get(f.request_id)
            if r is None:
                raise ProtocolViolation(f"frame for unexpected request id: {f!r}")
            r.add(f)
            if r.final is not None:
                done[f.request_id] = pending.pop(f.request_id)
        return done

    def request(self, request_id: int) -> Result:
        return self.collect([request_id])[request_id]

    # -- conveniences ---------------------------------------------------------------------
    def execute(self, sql: str, bind: Optional[str] = None,
                params: Optional[List[Any]] = None) -> Result:
        """Send one QUERY and return its Result (which may hold an ERROR)."""
        rid = self.new_id()
        self.send_query(rid, sql, bind, params)
        return self.request(rid)

    def query(self, sql: str, bind: Optional[str] = None,
              params: Optional[List[Any]] = None) -> Result:
        """Like execute, but raises ServerError on ERROR."""
        return self.execute(sql, bind, params).raise_for_error()

    def ping(self) -> Frame:
        rid = self.new_id()
        self.send_ping(rid)
        r = self.request(rid).raise_for_error()
        if r.final.type != PONG:
            raise ProtocolViolation(f"expected PONG, got {r.final!r}")
        return r.final

    def list_binds(self) -> List[Dict[str, Any]]:
        rid = self.new_id()
        self.send_list_binds(rid)
        r = self.request(rid).raise_for_error()
        if r.final.type != BINDS:
            raise ProtocolViolation(f"expected BINDS, got {r.final!r}")
        return list(r.final.body["binds"])
