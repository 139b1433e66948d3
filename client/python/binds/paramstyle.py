"""Rewrite DB-API placeholders into the backend's own: `$1, $2, ...` (PostgreSQL) or `?` (MySQL,
SQLite), and bind parameters positionally.

Accepted input styles: `format` (`%s`) and `pyformat` (`%(name)s`) with psycopg2/pymysql rules
(`%%` is a literal `%`, everywhere, because callers such as SQLAlchemy double every percent sign),
`qmark` (`?`, passed through) and `named` (`:name`). Placeholders are only recognised outside
string literals, quoted identifiers, dollar-quoted strings and comments.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, List, Sequence, Tuple

from .errors import ProgrammingError

_NAME = re.compile(r"\(([^)]*)\)s")
_COLON_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _quoted_end(sql: str, i: int, backslash: bool) -> int:
    """Index just past the quoted run starting at sql[i] (a quote character)."""
    q = sql[i]
    n = len(sql)
    j = i + 1
    while j < n:
        c = sql[j]
        if backslash and c == "\\" and q != "`":
            j += 2
            continue
        if c == q:
            if j + 1 < n and sql[j + 1] == q:  # doubled quote
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip(sql: str, i: int, backend: str) -> int:
    """If a literal/identifier/comment starts at i, the index past it; else i."""
    c = sql[i]
    if c == "'" or c == '"' or (c == "`" and backend == "mysql"):
        return _quoted_end(sql, i, backslash=(backend == "mysql"))
    if c == "-" and sql.startswith("--", i):
        j = sql.find("\n", i)
        return len(sql) if j < 0 else j + 1
    if c == "#" and backend == "mysql":
        j = sql.find("\n", i)
        return len(sql) if j < 0 else j + 1
    if c == "/" and sql.startswith("/*", i):
        j = sql.find("*/", i + 2)
        return len(sql) if j < 0 else j + 2
    if c == "$" and backend == "postgresql":
        m = _DOLLAR_TAG.match(sql, i)
        if m and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            tag = m.group(0)
            j = sql.find(tag, m.end())
            return len(sql) if j < 0 else j + len(tag)
    return i


def convert(sql: str, params: Any, backend: str, style: str) -> Tuple[str, List[Any]]:
    """(backend SQL, positional parameter list).

    backend: "postgresql", "mysql" or "sqlite"; style: "format"/"pyformat" (both accepted),
    "qmark", "named" or "native" (no rewriting; params must be a sequence).
    """
    if params is None:
        return sql, []
    if style == "native":
        if isinstance(params, Mapping):
            raise ProgrammingError("native paramstyle takes a sequence of parameters")
        return sql, list(params)
    is_map = isinstance(params, Mapping)
    if not is_map and (isinstance(params, (str, bytes)) or not isinstance(params, Sequence)):
        if hasattr(params, "__iter__") and not isinstance(params, (str, bytes)):
            params = list(params)
        else:
            raise ProgrammingError("parameters must be a sequence or a mapping")
    if style == "qmark":
        if is_map:
            raise ProgrammingError("qmark paramstyle takes a sequence of parameters")
        return sql, list(params)
    # An application runs the same few statements over and over (an ORM always does): the scan
    # is done once per statement text and style, binding is then a lookup per value.
    out_sql, keys, positional = _compile(sql, backend, style, is_map)
    if not is_map:
        if len(params) < positional:
            raise ProgrammingError(f"not enough parameters for the SQL statement ({len(params)} given)")
        if len(params) != positional:
            raise ProgrammingError(
                f"not all parameters were used in the SQL statement ({positional} of {len(params)})")
        return out_sql, list(params)
    values = []
    for name in keys:
        try:
            values.append(params[name])
        except KeyError:
            mark = f":{name}" if style == "named" else f"%({name})s"
            raise ProgrammingError(f"no value for parameter {mark}") from None
    return out_sql, values


@functools.lru_cache(maxsize=512)
def _compile(sql: str, backend: str, style: str, is_map: bool) -> Tuple[str, Tuple[str, ...], int]:
    """(backend SQL, names of the values in order for a mapping, number of positional values).
    Raises ProgrammingError for what no parameters could make right (not cached)."""
    pg = backend == "postgresql"
    out: List[str] = []
    keys: List[str] = []
    names: dict = {}
    n = len(sql)
    i = 0
    start = 0
    count = 0  # values bound so far

    def placeholder() -> str:
        return f"${count}" if pg else "?"

    if style == "named":
        while i < n:
            j = _skip(sql, i, backend)
            if j != i:
                i = j
                continue
            c = sql[i]
            if c == ":" and i + 1 < n and sql[i + 1] == ":":
                i += 2  # PostgreSQL cast
                continue
            if c == ":" and (i == 0 or sql[i - 1] != ":"):
                m = _COLON_NAME.match(sql, i + 1)
                if m:
                    if not is_map:
                        raise ProgrammingError("named paramstyle takes a mapping of parameters")
                    name = m.group(0)
                    out.append(sql[start:i])
                    if pg and name in names:
                        out.append(names[name])
                    else:
                        keys.append(name)
                        count += 1
                        names[name] = placeholder()
                        out.append(names[name])
                    i = start = m.end()
                    continue
            i += 1
        out.append(sql[start:])
        return "".join(out), tuple(keys), 0

    # format / pyformat
    while i < n:
        c = sql[i]
        if c != "%":
            j = _skip(sql, i, backend)
            if j != i:
                # inside a quoted run only "%%" -> "%" applies
                out.append(sql[start:i])
                out.append(sql[i:j].replace("%%", "%"))
                i = start = j
                continue
            i += 1
            continue
        nxt = sql[i + 1] if i + 1 < n else ""
        out.append(sql[start:i])
        if nxt == "%":
            out.append("%")
            i += 2
        elif nxt == "s":
            if is_map:
                raise ProgrammingError("%s placeholder used with a mapping of parameters")
            count += 1
            out.append(placeholder())
            i += 2
        elif nxt == "(":
            m = _NAME.match(sql, i + 1)
            if not m:
                raise ProgrammingError(f"incomplete %(name)s placeholder at offset {i}")
            if not is_map:
                raise ProgrammingError("%(name)s placeholder used with a sequence of parameters")
            name = m.group(1)
            if pg and name in names:
                out.append(names[name])
            else:
                keys.append(name)
                count += 1
                names[name] = placeholder()
                out.append(names[name])
            i = m.end()
        else:
            raise ProgrammingError(
                f"unsupported format character {nxt!r} at offset {i + 1} (write %% for a literal %)")
        start = i
    out.append(sql[start:])
    return "".join(out), tuple(keys), 0 if is_map else count
