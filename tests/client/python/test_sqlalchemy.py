"""SQLAlchemy Core and ORM through postgresql+binds, mysql+binds and sqlite+binds."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import exc, inspect
from sqlalchemy.orm import Session, declarative_base, relationship

import binds


@pytest.fixture
def engine(daemon, backend):
    e = sa.create_engine(daemon.url(backend), future=True)
    yield e
    e.dispose()


def make_tables(prefix):
    md = sa.MetaData()
    items = sa.Table(
        f"{prefix}_items", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50), nullable=False, unique=True),
        sa.Column("price", sa.Numeric(12, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("created", sa.DateTime),
        sa.Column("day", sa.Date),
        sa.Column("at", sa.Time),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("doc", sa.JSON),
        sa.Column("flag", sa.Boolean),
        sa.Column("note", sa.Text),
    )
    return md, items


def test_entry_points_resolve(daemon):
    for backend, cls in (("postgresql", "PGDialect_binds"), ("mysql", "MySQLDialect_binds"),
                         ("sqlite", "SQLiteDialect_binds")):
        url = sa.engine.make_url(daemon.url(backend))
        dialect_cls = url.get_dialect()
        assert dialect_cls.__name__ == cls and dialect_cls.driver == "binds"


def test_core_crud_types_reflection(engine, backend):
    md, items = make_tables("sa_core")
    md.drop_all(engine)
    md.create_all(engine)
    created = dt.datetime(2024, 2, 29, 13, 45, 1)
    with engine.begin() as conn:
        r = conn.execute(items.insert(), dict(
            name="ada", price=Decimal("12.50"), ratio=0.25, created=created, day=dt.date(2024, 2, 29),
            at=dt.time(8, 30), blob=b"\x00\xffbin", doc={"k": [1, "two", None]}, flag=True, note=""))
        first_id = r.inserted_primary_key[0]
        assert isinstance(first_id, int) and first_id >= 1
        r = conn.execute(items.insert(), dict(name="bob", note=None, flag=False))
        assert r.inserted_primary_key[0] == first_id + 1
        conn.execute(items.insert(), [dict(name=f"many{i}", price=Decimal(i)) for i in range(5)])
    with engine.connect() as conn:
        row = conn.execute(sa.select(items).where(items.c.id == first_id)).one()
        assert row.name == "ada"
        assert row.price == Decimal("12.50") and isinstance(row.price, Decimal)
        assert row.ratio == 0.25
        assert row.created == created
        assert row.day == dt.date(2024, 2, 29)
        assert row.at == dt.time(8, 30)
        assert row.blob == b"\x00\xffbin"
        assert row.doc == {"k": [1, "two", None]}
        assert row.flag is True
        assert row.note == ""
        bob = conn.execute(sa.select(items.c.note, items.c.flag).where(items.c.name == "bob")).one()
        assert bob.note is None and bob.flag is False
        assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 7
        assert conn.execute(sa.select(items.c.name).where(items.c.name.like("many%"))
                            .order_by(items.c.name)).scalars().all() == [f"many{i}" for i in range(5)]
    with engine.begin() as conn:
        r = conn.execute(items.update().where(items.c.name.like("many%")).values(ratio=1.5))
        assert r.rowcount == 5
        r = conn.execute(items.delete().where(items.c.name == "many0"))
        assert r.rowcount == 1
    # rollback
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(items.delete())
        assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 0
        trans.rollback()
        assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 6
    # unique constraint
    with pytest.raises(exc.IntegrityError) as ei:
        with engine.begin() as conn:
            conn.execute(items.insert(), dict(name="ada"))
    assert isinstance(ei.value.orig, binds.IntegrityError)
    # text() with a literal percent sign and a bound parameter
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT name FROM sa_core_items WHERE name LIKE 'a%' AND id = :i"),
                           {"i": first_id}).scalar()
        assert got == "ada"
    # reflection
    insp = inspect(engine)
    assert "sa_core_items" in insp.get_table_names()
    cols = {c["name"]: c for c in insp.get_columns("sa_core_items")}
    assert set(cols) == {"id", "name", "price", "ratio", "created", "day", "at", "blob", "doc",
                         "flag", "note"}
    assert isinstance(cols["name"]["type"], sa.String) and cols["name"]["type"].length == 50
    assert cols["name"]["nullable"] is False
    assert isinstance(cols["price"]["type"], sa.Numeric)
    assert insp.get_pk_constraint("sa_core_items")["constrained_columns"] == ["id"]
    uniques = insp.get_unique_constraints("sa_core_items") + [
        i for i in insp.get_indexes("sa_core_items") if i.get("unique")]
    assert any(u["column_names"] == ["name"] for u in uniques)
    reflected = sa.Table("sa_core_items", sa.MetaData(), autoload_with=engine)
    assert [c.name for c in reflected.primary_key] == ["id"]
    md.drop_all(engine)
    assert "sa_core_items" not in inspect(engine).get_table_names()


def test_server_version_and_isolation(engine, backend):
    with engine.connect() as conn:
        v = engine.dialect.server_version_info
        assert isinstance(v, tuple) and v[0] >= 3
        if backend == "postgresql":
            assert v[0] == 15
        elif backend == "mysql":
            assert engine.dialect.is_mariadb and v[:2] == (10, 11)
        assert conn.get_isolation_level() == {"postgresql": "READ COMMITTED",
                                               "mysql": "REPEATABLE READ",
                                               "sqlite": "SERIALIZABLE"}[backend]
    if backend == "postgresql":
        e2 = engine.execution_options(isolation_level="SERIALIZABLE")
        with e2.connect() as conn:
            assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == "serializable"
    ac = engine.execution_options(isolation_level="AUTOCOMMIT")
    with ac.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is True
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        assert not conn.connection.dbapi_connection.in_transaction


def test_orm_session(engine, backend):
    Base = declarative_base()

    class Author(Base):
        __tablename__ = "sa_orm_author"
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.String(40), unique=True, nullable=False)
        books = relationship("Book", back_populates="author", cascade="all, delete-orphan",
                             order_by="Book.id")

    class Book(Base):
        __tablename__ = "sa_orm_book"
        id = sa.Column(sa.Integer, primary_key=True)
        title = sa.Column(sa.String(80), nullable=False)
        price = sa.Column(sa.Numeric(8, 2))
        published = sa.Column(sa.DateTime, default=lambda: dt.datetime(2020, 1, 2, 3, 4, 5))
        author_id = sa.Column(sa.ForeignKey("sa_orm_author.id"), nullable=False)
        author = relationship(Author, back_populates="books")

    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        a = Author(name="Le Guin", books=[Book(title="Earthsea", price=Decimal("9.99")),
                                          Book(title="Dispossessed")])
        s.add(a)
        s.commit()
        assert a.id is not None and [b.id for b in a.books] == sorted(b.id for b in a.books)
        aid = a.id
    with Session(engine) as s:
        a = s.get(Author, aid)
        assert [b.title for b in a.books] == ["Earthsea", "Dispossessed"]
        assert a.books[0].price == Decimal("9.99")
        assert a.books[1].published == dt.datetime(2020, 1, 2, 3, 4, 5)
        a.books[1].title = "The Dispossessed"
        s.commit()
        assert s.scalar(sa.select(Book.title).where(Book.id == a.books[1].id)) == "The Dispossessed"
        # rollback discards
        s.add(Book(title="Never", author=a))
        s.flush()
        assert s.scalar(sa.select(sa.func.count(Book.id))) == 3
        s.rollback()
        assert s.scalar(sa.select(sa.func.count(Book.id))) == 2
        # unique violation through the ORM
        s.add(Author(name="Le Guin"))
        with pytest.raises(exc.IntegrityError):
            s.commit()
        s.rollback()
        # delete with cascade
        s.delete(s.get(Author, aid))
        s.commit()
        assert s.scalar(sa.select(sa.func.count(Book.id))) == 0
    Base.metadata.drop_all(engine)


def test_pg_uuid_jsonb(daemon):
    from conftest import need
    need("postgresql")
    from sqlalchemy.dialects import postgresql as pg
    e = sa.create_engine(daemon.url("postgresql"), future=True)
    md = sa.MetaData()
    t = sa.Table("sa_pg_extra", md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("u", pg.UUID(as_uuid=True)), sa.Column("us", pg.UUID()),
                 sa.Column("j", pg.JSONB), sa.Column("tags", sa.String(20)))
    md.drop_all(e)
    md.create_all(e)
    u = uuid.uuid4()
    with e.begin() as c:
        c.execute(t.insert(), dict(u=u, us=str(u), j={"a": {"b": 1}}, tags="x"))
    with e.connect() as c:
        row = c.execute(sa.select(t)).one()
        assert row.u == u and row.us == str(u) and row.j == {"a": {"b": 1}}
        assert c.execute(sa.select(t.c.j["a"]["b"].astext)).scalar() == "1"
        assert c.execute(sa.select(t.c.id).where(t.c.j.contains({"a": {"b": 1}}))).scalar() == row.id
    md.drop_all(e)
    e.dispose()
