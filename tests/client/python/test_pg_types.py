"""PostgreSQL arrays and intervals (protocol types `array` and `interval`, ext 7) through bindsd,
compared with what psycopg2 gives for the same rows on the same server."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import msgpack
import pytest
import sqlalchemy as sa
from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql

import binds
from binds import protocol
from conftest import BIND_OF, PG_URL, need

TD = dt.timedelta

# timedeltas that must survive timedelta -> ext 7 -> PostgreSQL interval -> ext 7 -> timedelta
TIMEDELTAS = [TD(0), TD(days=1, hours=2), TD(days=-1), TD(seconds=-1.5), TD(microseconds=1),
              TD(microseconds=-1), TD(days=-3, hours=5), TD(hours=-1, minutes=-2),
              TD(days=400, seconds=12345, microseconds=678901), TD.max, TD.min]

# interval literals read by both drivers: years, months, signed components, fractions
INTERVALS = ["1 day 2 hours", "1 year 2 mons -3 days 04:05:06.5", "-0.5 seconds", "0",
             "-1 hour -2 min", "1.5 months", "-1 days +23:59:58.5", "123456 hours",
             "-178000 years 3 mons", "00:00:00.000001", "-1 year -1 mon -1 day -00:00:00.000001"]

# array expressions read by both drivers
ARRAYS = [
    "ARRAY[1, 2, NULL]",
    "ARRAY[]::int[]",
    "'{{1,2},{3,NULL}}'::int[]",
    "'[0:1]={7,8}'::int[]",
    "ARRAY[[[1],[2]],[[3],[4]]]",
    "ARRAY[32767, -32768]::int2[]",
    "ARRAY[9223372036854775807, -9223372036854775808]::int8[]",
    "ARRAY[1.5, '-Infinity', 1e300]::float8[]",
    "ARRAY[1.50, -0.001, NULL, 123456789012345678901234567890.5]::numeric[]",
    """ARRAY['a,b', 'q"t', 'back\\slash', '{br}', 'NULL', '', ' sp ', 'ü€', NULL]::text[]""",
    "ARRAY[ARRAY['x', 'y'], ARRAY['z', NULL]]::varchar[]",
    "ARRAY[true, false, NULL]",
    "ARRAY['2024-02-29'::date, NULL]",
    "ARRAY['2024-02-29 13:45:00.25'::timestamp]",
    "ARRAY['13:45:00.25'::time]",
    "ARRAY['1 year'::interval, '-1 days +02:00', '-0.5 seconds', NULL]",
    "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]",
    "ARRAY['\\x00ff'::bytea, '']",
    """ARRAY['{"a": [1, null]}'::jsonb, 'null', NULL]""",
]


# -- helpers ------------------------------------------------------------------------------------------
def norm(v):
    """psycopg2 gives bytea as memoryview; binds as bytes. Everything else must match as is."""
    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        return type(v)(norm(x) for x in v)
    return v


def assert_same(got, want, where=""):
    """Equal values of the same types, recursively (lists of lists, NaN-free)."""
    want = norm(want)
    assert type(got) is type(want), f"{where}: {got!r} ({type(got).__name__}) != {want!r}"
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
        if isinstance(want, Decimal):
            assert str(got) == str(want), f"{where}: {got!r} != {want!r}"


@pytest.fixture
def pg(daemon):
    need("postgresql")
    c = binds.connect("127.0.0.1", daemon.port, BIND_OF["postgresql"], timeout=60)
    yield c
    c.close()


def direct_one(pg_direct, sql, params=None):
    with pg_direct.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def direct_text(pg_direct, sql, params=None):
    """One value as text, with bindsd's IntervalStyle (iso_8601)."""
    with pg_direct.cursor() as cur:
        cur.execute("SET IntervalStyle = iso_8601")
        try:
            cur.execute(sql, params)
            return cur.fetchone()[0]
        finally:
            cur.execute("RESET IntervalStyle")


def binds_one(conn, sql, params=None):
    cur = conn.cursor()
    cur.execute(sql, params)
    row = cur.fetchone()
    desc = cur.description
    cur.close()
    conn.rollback()
    return row, desc


# -- values without a server -----------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("PT0S", TD(0)),
    ("P1Y2M3DT4H5M6.5S", TD(days=365 + 60 + 3, hours=4, minutes=5, seconds=6.5)),
    ("P-1D", TD(days=-1)),
    ("PT-1H-2M", TD(hours=-1, minutes=-2)),
    ("PT-0.5S", TD(seconds=-0.5)),
    ("PT-1.000001S", TD(seconds=-1, microseconds=-1)),
    ("P1Y-2M3DT-4H5M-6.123456S", TD(days=365 - 60 + 3, hours=-4, minutes=5, seconds=-6.123456)),
    ("P-1DT23H59M58.5S", TD(days=-1, seconds=86398.5)),
    ("P2W", TD(days=14)),
    ("PT+1S", TD(seconds=1)),
])
def test_parse_interval(text, want):
    got = protocol.parse_interval(text)
    assert type(got) is TD and got == want
    assert protocol.make_ext_hook()(7, text.encode()) == want


@pytest.mark.parametrize("text", ["P178000000Y", "P-178000000Y", "infinity", "P", "PT", "P1DT",
                                  "1 day", "PT1.5M", "PT1.1234567S"])
def test_unparsable_interval_is_tagged(text):
    got = protocol.parse_interval(text)
    assert got == binds.Tagged("interval", text)
    assert protocol.encode_param(got) == msgpack.ExtType(7, text.encode())


def test_encode_interval_and_array_params():
    enc = protocol.encode_param
    assert enc(TD(days=1, hours=2)) == msgpack.ExtType(7, b"P1DT7200S")
    assert enc(TD(seconds=-1.5)) == msgpack.ExtType(7, b"P-1DT86398.500000S")
    assert enc(TD(microseconds=1), "postgresql") == msgpack.ExtType(7, b"P0DT0.000001S")
    # MySQL and SQLite have no intervals: a timedelta stays a TIME duration there
    assert enc(TD(hours=26, seconds=1.5), "mysql") == msgpack.ExtType(3, b"26:00:01.500000")
    assert enc(-TD(hours=1, microseconds=5), "mysql") == msgpack.ExtType(3, b"-01:00:00.000005")
    assert enc(TD(minutes=1), "sqlite") == msgpack.ExtType(3, b"00:01:00")
    # lists and tuples are arrays; their elements follow the scalar rules, recursively
    u = uuid.UUID(int=7)
    got = enc([1, None, "a", 1.5, True, b"\x00", bytearray(b"b"), Decimal("1.50"),
               dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 1, 2, 3), dt.time(4, 5), u,
               TD(days=2), binds.Json({"a": 1}), 2 ** 70], "postgresql")
    assert got == [1, None, "a", 1.5, True, b"\x00", b"b", msgpack.ExtType(1, b"1.50"),
                   msgpack.ExtType(2, b"2024-02-29"), msgpack.ExtType(4, b"2024-02-29 01:02:03"),
                   msgpack.ExtType(3, b"04:05:00"), msgpack.ExtType(6, str(u).encode()),
                   msgpack.ExtType(7, b"P2DT0S"), msgpack.ExtType(5, b'{"a": 1}'),
                   msgpack.ExtType(1, str(2 ** 70).encode())]
    assert enc(((1, 2), [3, None]), "postgresql") == [[1, 2], [3, None]]
    assert enc([]) == []
    # a round trip through MessagePack and the ext hook gives (nested) lists back
    vals = [[Decimal("-1.5"), None], [TD(seconds=-0.5), dt.date(2024, 1, 1)], [], [[u]]]
    packed = msgpack.packb(enc(vals), use_bin_type=True)
    assert msgpack.unpackb(packed, ext_hook=protocol.make_ext_hook()) == vals


def test_type_objects():
    assert binds.INTERVAL == "interval" and binds.DATETIME == "interval"
    assert binds.ARRAY == "array" and binds.ARRAY != "text" and binds.STRING != "array"
    assert binds.INTERVAL != "time"


# -- the interval text against PostgreSQL itself (no bindsd) -----------------------------------------
def test_interval_texts_agree_with_postgresql(pg_direct):
    # what the driver sends is the interval psycopg2 sends for the same timedelta
    for td in TIMEDELTAS:
        (same,) = direct_one(pg_direct, "SELECT %s::interval::text = %s::text",
                             (protocol.format_interval(td), td))
        assert same, td
    # what PostgreSQL writes with IntervalStyle=iso_8601 parses to psycopg2's timedelta
    isos = [direct_text(pg_direct, "SELECT %s::interval::text", (lit,)) for lit in INTERVALS]
    for lit, iso in zip(INTERVALS, isos):
        (want,) = direct_one(pg_direct, "SELECT %s::interval", (lit,))
        assert_same(protocol.parse_interval(iso), want, f"{lit} = {iso}")


# -- DB-API through bindsd -------------------------------------------------------------------------
def test_select_array_and_interval(pg):
    row, desc = binds_one(pg, "SELECT ARRAY[1,2,NULL], '1 day 2 hours'::interval, "
                              "ARRAY[[1,2],[3,4]], '{}'::text[]")
    assert row == ([1, 2, None], TD(days=1, hours=2), [[1, 2], [3, 4]], [])
    assert type(row[1]) is TD
    assert [d[1] for d in desc] == ["array", "interval", "array", "array"]
    assert desc[0][1] == binds.ARRAY and desc[1][1] == binds.INTERVAL
    assert desc[1][1] == binds.DATETIME


@pytest.mark.parametrize("expr", ARRAYS)
def test_arrays_as_psycopg2_reads_them(pg, pg_direct, expr):
    (got,), desc = binds_one(pg, f"SELECT {expr}")
    (want,) = direct_one(pg_direct, f"SELECT {expr}")
    assert desc[0][1] == "array"
    assert_same(got, want, expr)


@pytest.mark.parametrize("lit", INTERVALS)
def test_intervals_as_psycopg2_reads_them(pg, pg_direct, lit):
    (got,), desc = binds_one(pg, "SELECT %s::interval", (lit,))
    (want,) = direct_one(pg_direct, "SELECT %s::interval", (lit,))
    assert desc[0][1] == "interval"
    assert_same(got, want, lit)


def test_interval_beyond_timedelta_is_tagged(pg):
    (got,), _ = binds_one(pg, "SELECT '178000000 years'::interval")
    assert got == binds.Tagged("interval", "P178000000Y")
    # and goes back as it came
    (back,), _ = binds_one(pg, "SELECT %s::interval = '178000000 years'", (got,))
    assert back is True


def test_timedelta_params(pg, pg_direct):
    for td in TIMEDELTAS:
        (got, typ, text), _ = binds_one(pg, "SELECT %s, pg_typeof(%s)::text, %s::text", (td, td, td))
        assert type(got) is TD and got == td, td
        assert typ == "interval"
        # stored as psycopg2 stores the same timedelta (days and time kept apart)
        assert text == direct_text(pg_direct, "SELECT %s::text", (td,)), td
    (gt, eq), _ = binds_one(pg, "SELECT %s > interval '1 hour', %s = interval '-1.5 seconds'",
                            (TD(hours=1, microseconds=1), TD(seconds=-1.5)))
    assert gt is True and eq is True


@pytest.mark.parametrize("cast,value", [
    ("int[]", [1, 2, None]),
    ("int[]", []),
    ("int[]", (4, 5)),
    ("int[]", [[1, 2], [3, None]]),
    ("bigint[]", [2 ** 63 - 1, -2 ** 63]),
    ("float8[]", [1.5, -0.25, None]),
    ("numeric[]", [Decimal("1.50"), Decimal("-0.001"), None, Decimal("1E+30")]),
    ("text[]", ['a,b', 'q"t', 'back\\slash', '{br}', 'NULL', '', ' sp ', 'ü€', None]),
    ("text[]", [["x", "y"], ["z", None]]),
    ("bool[]", [True, False, None]),
    ("date[]", [dt.date(2024, 2, 29), None]),
    ("timestamp[]", [dt.datetime(2024, 2, 29, 13, 45, 0, 250000)]),
    ("time[]", [dt.time(13, 45, 0, 250000)]),
    ("interval[]", [TD(days=1), TD(seconds=-1.5), None]),
    ("uuid[]", [uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")]),
    ("bytea[]", [b"\x00\xff", b""]),
])
def test_list_params(pg, pg_direct, cast, value):
    (got, text), desc = binds_one(pg, f"SELECT %s::{cast}, %s::{cast}::text", (value, value))
    want = [list(x) if isinstance(x, tuple) else x for x in value]
    if cast == "numeric[]":
        want = [Decimal("1.50"), Decimal("-0.001"), None, Decimal("1000000000000000000000000000000")]
    assert desc[0][1] == "array"
    assert_same(got, want, cast)
    # the array PostgreSQL got is the one psycopg2 sends for the same list
    assert text == direct_text(pg_direct, f"SELECT %s::{cast}::text", (want,))


def test_list_params_untyped(pg):
    (r,), _ = binds_one(pg, "SELECT 3 = ANY(%s)", ([1, 2, 3],))
    assert r is True
    (r,), _ = binds_one(pg, "SELECT cardinality(%s::int[])", ([1, 2, 3],))
    assert r == 3


@pytest.mark.parametrize("backend", ["mysql", "sqlite"])
def test_list_params_refused_elsewhere(daemon, backend):
    need(backend)
    c = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], timeout=60)
    try:
        cur = c.cursor()
        ph = "?" if backend == "sqlite" else "%s"
        with pytest.raises(binds.ProgrammingError) as ei:
            cur.execute(f"SELECT {ph}", ([1, 2],))
        assert ei.value.code == "BAD_REQUEST"
        c.rollback()
        cur.execute(f"SELECT {ph}", (1,))
        assert cur.fetchone() == (1,)
    finally:
        c.close()


def test_mysql_time_duration_param(daemon):
    need("mysql")
    c = binds.connect("127.0.0.1", daemon.port, BIND_OF["mysql"], timeout=60)
    try:
        cur = c.cursor()
        for td in (TD(hours=26, seconds=1.5), -TD(hours=1, microseconds=500000)):
            cur.execute("SELECT CAST(%s AS TIME(6))", (td,))
            assert cur.fetchone() == (td,)
    finally:
        c.close()


# -- SQLAlchemy: postgresql+binds against postgresql+psycopg2 ----------------------------------------
@pytest.fixture(scope="module")
def engines(daemon):
    need("postgresql")
    e = sa.create_engine(daemon.url("postgresql"), future=True)
    p = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg2://", 1), future=True)
    yield e, p
    e.dispose()
    p.dispose()


def pg_types_table(md):
    return sa.Table(
        "sa_pg_types", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ints", postgresql.ARRAY(sa.Integer)),  # PostgreSQL's own ARRAY: contains(), overlap()
        sa.Column("texts", sa.ARRAY(sa.Text)),
        sa.Column("strs", sa.ARRAY(sa.String(20))),
        sa.Column("nums", sa.ARRAY(sa.Numeric(12, 3))),
        sa.Column("grid", sa.ARRAY(sa.Integer, dimensions=2)),
        sa.Column("days", sa.ARRAY(sa.Date)),
        sa.Column("ivs", postgresql.ARRAY(sa.Interval)),
        sa.Column("iv", sa.Interval),
    )


ROWS = [
    dict(ints=[1, 2, None], texts=['a,b', 'q"t', 'back\\slash', '{br}', 'NULL', '', None],
         strs=["x", "ü€"], nums=[Decimal("1.500"), None, Decimal("-0.001")],
         grid=[[1, 2], [3, None]], days=[dt.date(2024, 2, 29)], ivs=[TD(days=1), None],
         iv=TD(days=1, hours=2)),
    dict(ints=[], texts=[], strs=[], nums=[], grid=[], days=[], ivs=[], iv=TD(seconds=-1.5)),
    dict(ints=None, texts=None, strs=None, nums=None, grid=None, days=None, ivs=None, iv=None),
    dict(ints=[2 ** 31 - 1, -2 ** 31], texts=["only"], strs=[None], nums=[Decimal("123456789.125")],
         grid=[[7]], days=[None], ivs=[TD(microseconds=1)], iv=TD(microseconds=1)),
    dict(ints=[2], texts=["b"], strs=["y"], nums=[Decimal("0.000")], grid=[[1, 2, 3], [4, 5, 6]],
         days=[dt.date(1999, 12, 31), dt.date(2000, 1, 1)], ivs=[TD(days=-3, hours=5)],
         iv=TD(days=-3, hours=5)),
]


def test_sqlalchemy_arrays_and_intervals_match_psycopg2(engines):
    e, p = engines
    md = sa.MetaData()
    t = pg_types_table(md)
    md.drop_all(e)
    md.create_all(e)
    # the same rows inserted by each driver: ids 1.. by binds, 101.. by psycopg2
    with e.begin() as c:
        c.execute(t.insert(), [dict(r, id=i + 1) for i, r in enumerate(ROWS)])
    with p.begin() as c:
        c.execute(t.insert(), [dict(r, id=i + 101) for i, r in enumerate(ROWS)])
    try:
        q = sa.select(t).order_by(t.c.id)
        with e.connect() as c:
            via_binds = c.execute(q).all()
        with p.connect() as c:
            via_pg = c.execute(q).all()
            # the server holds the same values whoever inserted them
            names = [n for n in t.columns.keys() if n != "id"]
            row_a, row_b = (", ".join(f"{x}.{n}" for n in names) for x in "ab")
            texts = c.execute(sa.text(
                f"SELECT a.id, ROW({row_a})::text, ROW({row_b})::text FROM sa_pg_types a "
                "JOIN sa_pg_types b ON b.id = a.id + 100 ORDER BY a.id")).all()
        assert [r[0] for r in texts] == list(range(1, len(ROWS) + 1))
        assert all(ra == rb for _, ra, rb in texts), texts
        assert len(via_binds) == len(via_pg) == 2 * len(ROWS)
        for rb, rp in zip(via_binds, via_pg):
            assert rb.id == rp.id
            for col in t.columns.keys():
                assert_same(getattr(rb, col), getattr(rp, col), f"row {rb.id} {col}")
        for r, want in zip(via_binds, ROWS + ROWS):
            for col, v in want.items():
                assert getattr(r, col) == v, (r.id, col)

        # filters: the same ids through both dialects
        filters = [
            t.c.iv > TD(hours=1),
            t.c.iv == TD(seconds=-1.5),
            t.c.iv < TD(0),
            t.c.iv.between(TD(0), TD(days=2)),
            t.c.ints.any(2),
            t.c.texts.any("a,b"),
            t.c.strs.any("ü€"),
            t.c.nums.any(Decimal("-0.001")),
            t.c.ints.contains([1, 2]),
            t.c.ints.contains([]),
            t.c.ints.contained_by([1, 2, 3]),
            t.c.ints.overlap([2, 99]),
            t.c.ints == [],
            t.c.grid == [[1, 2], [3, None]],
            t.c.texts == ['a,b', 'q"t', 'back\\slash', '{br}', 'NULL', '', None],
            t.c.ivs.contains([TD(days=-3, hours=5)]),
            t.c.days.any(dt.date(2000, 1, 1)),
            t.c.ints[1] == 2,
            sa.func.cardinality(t.c.grid) == 6,
        ]
        for f in filters:
            q = sa.select(t.c.id).where(f).order_by(t.c.id)
            with e.connect() as c:
                got = c.execute(q).scalars().all()
            with p.connect() as c:
                want = c.execute(q).scalars().all()
            assert got == want and got, str(f)
        # expressions and literals in the select list
        q = sa.select(t.c.ints[1], t.c.grid[2][1], sa.func.cardinality(t.c.ints),
                      t.c.iv + TD(days=1), sa.func.array_append(t.c.ints, 9),
                      sa.literal([1, None], sa.ARRAY(sa.Integer)), sa.literal(TD(hours=-1), sa.Interval),
                      t.c.ints[1:2]).where(t.c.id == 1)
        with e.connect() as c:
            got = c.execute(q).one()
        with p.connect() as c:
            want = c.execute(q).one()
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"select column {i}")
        # updates
        with e.begin() as c:
            c.execute(t.update().where(t.c.id == 2).values(ints=[5, None], iv=TD(days=-1, microseconds=3),
                                                           grid=[[None]]))
        with e.connect() as c:
            got = c.execute(sa.select(t.c.ints, t.c.iv, t.c.grid).where(t.c.id == 2)).one()
        with p.connect() as c:
            want = c.execute(sa.select(t.c.ints, t.c.iv, t.c.grid).where(t.c.id == 2)).one()
        assert_same(tuple(got), tuple(want))
        assert tuple(got) == ([5, None], TD(days=-1, microseconds=3), [[None]])
        # reflection sees the same types
        cols_b = {c["name"]: repr(c["type"]) for c in inspect(e).get_columns("sa_pg_types")}
        cols_p = {c["name"]: repr(c["type"]) for c in inspect(p).get_columns("sa_pg_types")}
        assert cols_b == cols_p
        assert cols_b["iv"].startswith("INTERVAL") and cols_b["ints"].startswith("ARRAY")
    finally:
        md.drop_all(e)


def test_orm_array_and_interval(engines):
    from sqlalchemy.orm import Session, declarative_base
    e, p = engines
    Base = declarative_base()

    class Job(Base):
        __tablename__ = "sa_pg_jobs"
        id = sa.Column(sa.Integer, primary_key=True)
        tags = sa.Column(sa.ARRAY(sa.String(30)), nullable=False, default=list)
        every = sa.Column(sa.Interval)

    Base.metadata.drop_all(e)
    Base.metadata.create_all(e)
    try:
        with Session(e) as s:
            s.add_all([Job(tags=["nightly", "db"], every=TD(days=1)),
                       Job(tags=[], every=TD(minutes=-5, microseconds=250)),
                       Job(every=None)])
            s.commit()
            assert s.scalars(sa.select(Job.id).where(Job.tags.any("db"))).all() == [1]
            assert s.scalars(sa.select(Job.id).where(Job.every < TD(0))).all() == [2]
            job = s.get(Job, 3)
            assert job.tags == [] and job.every is None
            job.tags = ["x"]
            job.every = TD(weeks=2)
            s.commit()
        with Session(p) as s:
            got = [(j.id, j.tags, j.every) for j in s.scalars(sa.select(Job).order_by(Job.id))]
        assert got == [(1, ["nightly", "db"], TD(days=1)), (2, [], TD(minutes=-5, microseconds=250)),
                       (3, ["x"], TD(days=14))]
    finally:
        Base.metadata.drop_all(e)
