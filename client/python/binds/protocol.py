"""Wire level of the binds protocol, version 1 (protocol/PROTOCOL.md): frames, bodies, values.

Sans-I/O except for `Transport`, a blocking socket with a read buffer.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import re
import select
import socket
import struct
import uuid
from typing import Any, Dict, Optional, Tuple

import msgpack

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">IBBHI")  # length, type, flags, reserved, request_id (§2)
HEADER_SIZE = HEADER.size
PRE_HANDSHAKE_MAX_FRAME = 4096

HELLO, QUERY, PING, LIST_BINDS, BEGIN, COMMIT, ROLLBACK, CANCEL = range(0x01, 0x09)
HELLO_OK, COLUMNS, ROWS, COMPLETE, ERROR, PONG, BINDS = range(0x81, 0x88)
FINAL_TYPES = frozenset({COMPLETE, ERROR, PONG, BINDS})

EXT_DECIMAL, EXT_DATE, EXT_TIME, EXT_TIMESTAMP, EXT_JSON, EXT_UUID, EXT_INTERVAL = range(1, 8)
EXT_CODES = {"decimal": EXT_DECIMAL, "date": EXT_DATE, "time": EXT_TIME, "timestamp": EXT_TIMESTAMP,
             "json": EXT_JSON, "uuid": EXT_UUID, "interval": EXT_INTERVAL}


class Json:
    """A parameter sent as the protocol's `json` type (ext 5).

    Wraps either JSON text (`Json.text('{"a": 1}')`) or a Python object (`Json({"a": 1})`).
    """

    __slots__ = ("obj", "_text")

    def __init__(self, obj: Any, dumps=json.dumps):
        self.obj = obj
        self._text = None if obj is None else dumps(obj)

    @classmethod
    def text(cls, text: str) -> "Json":
        j = cls(None)
        j._text = text
        return j

    def dumps(self) -> str:
        return "null" if self._text is None else self._text

    def __repr__(self) -> str:
        return f"Json({self.dumps()})"


class Tagged:
    """A value of an ext type whose text could not be parsed into a Python object (e.g. PostgreSQL
    `infinity` dates, MySQL zero dates, intervals beyond `timedelta`'s range): kept as its protocol
    type name and text. Sent as a parameter, it goes back as the same ext type and text."""

    __slots__ = ("type", "text")

    def __init__(self, type_: str, text: str):
        self.type = type_
        self.text = text

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Tagged) and (self.type, self.text) == (other.type, other.text)

    def __hash__(self) -> int:
        return hash((self.type, self.text))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Tagged({self.type!r}, {self.text!r})"


INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _ext(code: int, text: str) -> msgpack.ExtType:
    return msgpack.ExtType(code, text.encode("utf-8"))


def format_interval(td: _dt.timedelta) -> str:
    """A timedelta as an ISO 8601 duration PostgreSQL reads: days (may be negative) and seconds,
    the way psycopg2 sends it ('-1 days 86398.500000 seconds'), e.g. `P-1DT86398.500000S`."""
    text = f"P{td.days}DT{td.seconds}"
    if td.microseconds:
        text += f".{td.microseconds:06d}"
    return text + "S"


def _format_duration_time(td: _dt.timedelta) -> str:
    """A timedelta as a MySQL TIME duration, `[-]HH:MM:SS[.ffffff]`."""
    us = (td.days * 86400 + td.seconds) * 1000000 + td.microseconds
    sign = "-" if us < 0 else ""
    secs, frac = divmod(abs(us), 1000000)
    text = f"{sign}{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    return text + f".{frac:06d}" if frac else text


def encode_param(v: Any, backend: Optional[str] = None) -> Any:
    """A Python value as a protocol value (§5).

    backend: the bind's backend, when known. A timedelta is an `interval` (ext 7) except for MySQL
    and SQLite, which have no intervals: there it is a `time` duration (MySQL TIME holds
    -838:59:59 .. 838:59:59). A list or tuple is an array whose elements follow the same rules
    (nested lists for multi-dimensional arrays); only PostgreSQL binds take arrays.
    """
    if v is None or isinstance(v, (bool, str, float)):
        return v
    if isinstance(v, int):
        if INT64_MIN <= v <= INT64_MAX:
            return int(v)
        return _ext(EXT_DECIMAL, str(int(v)))  # too wide for int64: the backend parses it
    if isinstance(v, (list, tuple)):
        return [encode_param(x, backend) for x in v]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, decimal.Decimal):
        if v.is_nan():
            return _ext(EXT_DECIMAL, "NaN")
        if v.is_infinite():
            return _ext(EXT_DECIMAL, "Infinity" if v > 0 else "-Infinity")
        return _ext(EXT_DECIMAL, format(v, "f"))
    if isinstance(v, _dt.datetime):
        return _ext(EXT_TIMESTAMP, v.isoformat(sep=" "))
    if isinstance(v, _dt.date):
        return _ext(EXT_DATE, v.isoformat())
    if isinstance(v, _dt.time):
        return _ext(EXT_TIME, v.isoformat())
    if isinstance(v, _dt.timedelta):
        if backend in ("mysql", "sqlite"):
            return _ext(EXT_TIME, _format_duration_time(v))
        return _ext(EXT_INTERVAL, format_interval(v))
    if isinstance(v, uuid.UUID):
        return _ext(EXT_UUID, str(v))
    if isinstance(v, Json):
        return _ext(EXT_JSON, v.dumps())
    if isinstance(v, Tagged):
        return _ext(EXT_CODES[v.type], v.text)
    raise TypeError(f"cannot send a value of type {type(v).__name__} to bindsd")


def _parse_time(text: str) -> Any:
    try:
        return _dt.time.fromisoformat(text)
    except ValueError:
        pass
    # MySQL TIME is a duration: -838:59:59 .. 838:59:59
    neg = text.startswith("-")
    body = text[1:] if neg else text
    try:
        hms, _, frac = body.partition(".")
        h, m, s = (int(x) for x in hms.split(":"))
        us = int((frac + "000000")[:6]) if frac else 0
    except ValueError:
        return Tagged("time", text)
    td = _dt.timedelta(hours=h, minutes=m, seconds=s, microseconds=us)
    return -td if neg else td


def _parse_timestamp(text: str) -> Any:
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return Tagged("timestamp", text)  # infinity, zero dates, BC dates, years > 9999


def _parse_date(text: str) -> Any:
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        return Tagged("date", text)


def _parse_decimal(text: str) -> Any:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        return Tagged("decimal", text)


def _parse_uuid(text: str) -> Any:
    try:
        return uuid.UUID(text)
    except ValueError:
        return Tagged("uuid", text)


# An ISO 8601 duration as PostgreSQL writes it with IntervalStyle=iso_8601: every component optional
# and signed on its own, fractions only on seconds (e.g. P1Y2M-3DT4H5M6.5S, PT-0.5S, PT0S)
_INTERVAL = re.compile(
    r"P(?:([+-]?\d+)Y)?(?:([+-]?\d+)M)?(?:([+-]?\d+)W)?(?:([+-]?\d+)D)?"
    r"(?:T(?:([+-]?\d+)H)?(?:([+-]?\d+)M)?(?:([+-]?)(\d+)(?:\.(\d{1,6}))?S)?)?")


def parse_interval(text: str) -> Any:
    """An interval as a timedelta, as psycopg2 reads one: a year is 365 days, a month 30 days."""
    m = _INTERVAL.fullmatch(text)
    if m is None or text == "P" or text.endswith("T"):
        return Tagged("interval", text)
    y, mo, w, d, h, mi, sec_sign, sec, frac = m.groups()
    years, months, weeks, days, hours, minutes = (int(x) if x else 0 for x in (y, mo, w, d, h, mi))
    us = int(sec or 0) * 1000000 + int((frac or "").ljust(6, "0"))
    try:
        return _dt.timedelta(days=years * 365 + months * 30 + weeks * 7 + days, hours=hours,
                             minutes=minutes, microseconds=-us if sec_sign == "-" else us)
    except OverflowError:
        return Tagged("interval", text)  # beyond timedelta's +-999999999 days


def make_ext_hook(json_loads=json.loads):
    parsers = {
        EXT_DECIMAL: _parse_decimal,
        EXT_DATE: _parse_date,
        EXT_TIME: _parse_time,
        EXT_TIMESTAMP: _parse_timestamp,
        EXT_JSON: json_loads if json_loads is not None else (lambda t: t),
        EXT_UUID: _parse_uuid,
        EXT_INTERVAL: parse_interval,
    }

    def hook(code: int, data: bytes) -> Any:
        p = parsers.get(code)
        if p is None:
            return msgpack.ExtType(code, data)
        return p(data.decode("utf-8"))

    return hook


def encode_body(body: Dict[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _wait_io(sock: socket.socket, timeout: Optional[float]) -> Tuple[bool, bool]:
    """Wait until sock can be read or written: (readable, writable), both False on timeout."""
    if not hasattr(select, "poll"):
        readable, writable, _ = select.select([sock], [sock], [], timeout)
        return bool(readable), bool(writable)
    poller = select.poll()  # not select(): it fails for descriptors past FD_SETSIZE
    poller.register(sock, select.POLLIN | select.POLLOUT)
    events = poller.poll(None if timeout is None else timeout * 1000)
    mask = events[0][1] if events else 0
    return bool(mask & (select.POLLIN | select.POLLHUP | select.POLLERR)), bool(mask & select.POLLOUT)


class ConnectionLost(Exception):
    """The socket broke or the server closed it."""


class Transport:
    """A blocking socket speaking frames."""

    def __init__(self, sock: socket.socket, ext_hook):
        self.sock = sock
        self._buf = bytearray()
        self._pos = 0
        self.ext_hook = ext_hook
        self.max_frame = PRE_HANDSHAKE_MAX_FRAME

    @classmethod
    def open(cls, host: Optional[str], port: Optional[int], unix_socket: Optional[str],
             connect_timeout: Optional[float], timeout: Optional[float], ext_hook) -> "Transport":
        if unix_socket:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(connect_timeout)
            try:
                s.connect(unix_socket)
            except BaseException:
                s.close()
                raise
        else:
            s = socket.create_connection((host or "127.0.0.1", port or 7878), timeout=connect_timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        return cls(s, ext_hook)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def frame(ftype: int, request_id: int, body: Dict[str, Any]) -> bytes:
        data = encode_body(body)
        return HEADER.pack(len(data), ftype, 0, 0, request_id) + data

    def send(self, ftype: int, request_id: int, body: Dict[str, Any]) -> None:
        self.send_bytes(self.frame(ftype, request_id, body))

    def send_bytes(self, data: bytes) -> None:
        """Write whole frames (one or more) and wait until they are written."""
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost(f"sending to bindsd failed: {e}") from e

    def send_pipelined(self, data: bytes) -> None:
        """Write frames while taking in what the server sends meanwhile (kept for read()).

        For many requests sent ahead of their replies: bindsd takes no more requests from a client
        while the client's unread replies fill its buffer (limits.client_buffer), so a plain
        blocking write of requests could wait forever for a server waiting for us to read."""
        sock = self.sock
        timeout = sock.gettimeout()
        view = memoryview(data)
        try:
            while view:
                readable, writable = _wait_io(sock, timeout)
                if not readable and not writable:
                    raise socket.timeout("timed out")
                if readable:
                    chunk = sock.recv(262144)
                    if not chunk:
                        raise ConnectionLost("bindsd closed the connection")
                    if self._pos:
                        del self._buf[: self._pos]
                        self._pos = 0
                    self._buf += chunk
                if writable:
                    try:
                        view = view[sock.send(view[:65536], _MSG_DONTWAIT):]
                    except (BlockingIOError, InterruptedError):
                        pass
        except socket.timeout:
            raise
        except OSError as e:
            raise ConnectionLost(f"sending to bindsd failed: {e}") from e

    def _fill(self, n: int) -> None:
        while len(self._buf) - self._pos < n:
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            try:
                chunk = self.sock.recv(max(262144, n - len(self._buf)))
            except socket.timeout:
                raise
            except OSError as e:
                raise ConnectionLost(f"reading from bindsd failed: {e}") from e
            if not chunk:
                raise ConnectionLost("bindsd closed the connection")
            self._buf += chunk

    def read(self) -> Tuple[int, int, Dict[str, Any]]:
        """One frame: (type, request_id, body)."""
        self._fill(HEADER_SIZE)
        length, ftype, _flags, _res, rid = HEADER.unpack_from(self._buf, self._pos)
        self._pos += HEADER_SIZE
        self._fill(length)
        data = memoryview(self._buf)[self._pos: self._pos + length]
        try:
            body = (msgpack.unpackb(data, raw=False, ext_hook=self.ext_hook, strict_map_key=False)
                    if length else {})
        finally:
            data.release()
        self._pos += length
        if not isinstance(body, dict):
            raise ConnectionLost(f"protocol violation: frame body is not a map ({type(body).__name__})")
        return ftype, rid, body
