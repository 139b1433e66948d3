"""A Flask-SQLAlchemy app whose three binds all go through bindsd: the default bind on PostgreSQL,
`users` on MariaDB, `appmeta` on SQLite."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import exc

from conftest import need

db = SQLAlchemy()


class Post(db.Model):  # default bind: PostgreSQL
    __tablename__ = "flask_posts"
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(100), nullable=False)
    amount = db.Column(db.Numeric(10, 2))
    created = db.Column(db.DateTime, nullable=False)
    user_id = db.Column(db.Integer, nullable=False)  # a row of another database: no foreign key


class User(db.Model):
    __bind_key__ = "users"  # MariaDB
    __tablename__ = "flask_users"
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(100), unique=True, nullable=False)
    profile = db.Column(db.JSON)


class Meta(db.Model):
    __bind_key__ = "appmeta"  # SQLite
    __tablename__ = "flask_meta"
    id = db.Column(db.Integer, primary_key=True)
    key = db.Column(db.String(50), unique=True, nullable=False)
    value = db.Column(db.Text)


def create_app(daemon, restart_hook=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"postgresql+binds://127.0.0.1:{daemon.port}/main"
    app.config["SQLALCHEMY_BINDS"] = {
        "users": f"mysql+binds://127.0.0.1:{daemon.port}/users",
        "appmeta": f"sqlite+binds:///appmeta?socket={daemon.sock_path}",
    }
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 2, "max_overflow": 2}
    db.init_app(app)

    @app.post("/signup")
    def signup():
        body = request.get_json()
        user = User(email=body["email"], profile={"langs": body.get("langs", [])})
        db.session.add(user)
        db.session.flush()  # MariaDB AUTO_INCREMENT id via lastrowid
        post = Post(title=f"hello from {user.email}", amount=Decimal(body.get("amount", "0")),
                    created=dt.datetime(2024, 2, 29, 12, 0, 0), user_id=user.id)
        db.session.add(post)
        counter = db.session.execute(db.select(Meta).filter_by(key="signups")).scalar_one_or_none()
        if counter is None:
            counter = Meta(key="signups", value="0")
            db.session.add(counter)
        counter.value = str(int(counter.value) + 1)
        db.session.flush()
        if body.get("restart") and restart_hook is not None:
            # all three binds hold uncommitted work in open transactions now
            restart_hook()
        db.session.commit()
        return jsonify(user_id=user.id, post_id=post.id, signups=int(counter.value))

    @app.get("/summary")
    def summary():
        users = db.session.execute(db.select(User).order_by(User.id)).scalars().all()
        posts = db.session.execute(db.select(Post).order_by(Post.id)).scalars().all()
        counter = db.session.execute(db.select(Meta).filter_by(key="signups")).scalar_one_or_none()
        return jsonify(users=[[u.id, u.email, u.profile] for u in users],
                       posts=[[p.title, str(p.amount), p.created.isoformat(), p.user_id] for p in posts],
                       signups=int(counter.value) if counter else 0)

    @app.errorhandler(exc.IntegrityError)
    def integrity(e):
        db.session.rollback()
        return jsonify(error="conflict", detail=str(e.orig)), 409

    @app.errorhandler(exc.OperationalError)
    @app.errorhandler(exc.InterfaceError)
    def unavailable(e):
        db.session.rollback()
        return jsonify(error="database unavailable", detail=str(e.orig)), 503

    return app


@pytest.fixture
def app(daemon):
    need("postgresql")
    need("mysql")
    holder = {}
    app = create_app(daemon, restart_hook=lambda: holder["restart"]())
    holder["restart"] = daemon.restart
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.drop_all()
        for e in db.engines.values():
            e.dispose()


def test_one_request_writes_all_three_binds(app):
    with app.app_context():
        engines = db.engines
        assert {k: e.dialect.name for k, e in engines.items()} == {
            None: "postgresql", "users": "mysql", "appmeta": "sqlite"}
        assert all(e.dialect.driver == "binds" for e in engines.values())
    c = app.test_client()
    r = c.post("/signup", json={"email": "ada@example.com", "langs": ["en", "fr"], "amount": "12.50"})
    assert r.status_code == 200, r.get_data(as_text=True)
    first = r.get_json()
    assert first["signups"] == 1 and first["user_id"] >= 1 and first["post_id"] >= 1
    r = c.post("/signup", json={"email": "bob@example.com", "amount": "0.25"})
    assert r.status_code == 200 and r.get_json()["signups"] == 2
    assert r.get_json()["user_id"] == first["user_id"] + 1
    # unique email on MariaDB: 409, and nothing of that request is kept on any bind
    r = c.post("/signup", json={"email": "ada@example.com"})
    assert r.status_code == 409 and "1062" in r.get_json()["detail"]
    s = c.get("/summary").get_json()
    assert s["users"] == [[first["user_id"], "ada@example.com", {"langs": ["en", "fr"]}],
                          [first["user_id"] + 1, "bob@example.com", {"langs": []}]]
    assert s["posts"] == [["hello from ada@example.com", "12.50", "2024-02-29T12:00:00", first["user_id"]],
                          ["hello from bob@example.com", "0.25", "2024-02-29T12:00:00", first["user_id"] + 1]]
    assert s["signups"] == 2
    # the data really is in the three databases
    with app.app_context():
        assert db.session.execute(db.text("SELECT count(*) FROM flask_posts")).scalar() == 2
        assert db.session.execute(db.text("SELECT current_database()")).scalar() == "bindstest"
        users = db.session.get_bind(mapper=User.__mapper__)
        with users.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM flask_users").scalar() == 2
        meta = db.engines["appmeta"]
        with meta.connect() as conn:
            assert conn.exec_driver_sql("SELECT value FROM flask_meta WHERE key = 'signups'").scalar() == "2"


def test_restart_while_app_runs(app, daemon):
    c = app.test_client()
    r = c.post("/signup", json={"email": "first@example.com"})
    assert r.status_code == 200, r.get_data(as_text=True)
    # bindsd restarts between requests: pooled connections are dead; the checkout check replaces them
    daemon.restart()
    r = c.post("/signup", json={"email": "second@example.com"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["signups"] == 2
    # bindsd restarts in the middle of a request (all three binds written, nothing committed yet):
    # that request fails cleanly and nothing of it is kept anywhere; the next one succeeds
    r = c.post("/signup", json={"email": "third@example.com", "restart": True})
    assert r.status_code == 503, r.get_data(as_text=True)
    assert r.get_json()["error"] == "database unavailable"
    assert "bindsd" in r.get_json()["detail"]
    r = c.post("/signup", json={"email": "fourth@example.com"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["signups"] == 3
    s = c.get("/summary").get_json()
    assert [u[1] for u in s["users"]] == ["first@example.com", "second@example.com", "fourth@example.com"]
    assert len(s["posts"]) == 3 and s["signups"] == 3
