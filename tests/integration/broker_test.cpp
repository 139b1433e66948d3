// The daemon end to end against real PostgreSQL, MariaDB and SQLite: one conformance matrix run
// on all three backends through bindsd, then pools, pinning, concurrency, streaming and faults.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "harness.hpp"
#include "client/format.hpp"
#include "protocol/messages.hpp"

namespace binds::test {
namespace {

using client::Client;
using client::ServerError;
using protocol::Bytes;
using protocol::ErrorCode;
using protocol::Null;
using protocol::Tagged;
using protocol::Type;
using protocol::Value;
using ::testing::HasSubstr;
using ::testing::Not;

enum class Kind { postgresql, mysql, sqlite };

struct BackendCase {
  Kind kind;
  const char* name;
};

std::string ph(Kind k, int n) { return k == Kind::postgresql ? "$" + std::to_string(n) : "?"; }

std::string unique_table(const char* prefix) {
  static std::atomic<int> n{0};
  return std::string(prefix) + std::to_string(getpid()) + "_" + std::to_string(n++);
}

class Conformance : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    kind_ = GetParam().kind;
    std::string url;
    if (kind_ == Kind::postgresql) url = env("BINDS_TEST_PG_URL");
    if (kind_ == Kind::mysql) url = env("BINDS_TEST_MYSQL_URL");
    if (kind_ != Kind::sqlite && url.empty()) {
      if (env("BINDS_ALLOW_NO_DB") == "1") GTEST_SKIP() << "no test database URL";
      FAIL() << "test database URLs not set: run through scripts/test.sh";
    }
    tmp_ = make_temp_dir("sqlite");
    if (kind_ == Kind::sqlite) url = "sqlite:///" + (tmp_ / "conf.db").string();
    daemon_ = std::make_unique<Daemon>("default: db\nbinds:\n  db: " + url + "\n");
  }
  void TearDown() override {
    daemon_.reset();
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }
  Kind kind_;
  std::filesystem::path tmp_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_P(Conformance, EveryTypeRoundTripsAndErrorsKeepTheConnection) {
  auto c = daemon_->connect();
  const std::string t = unique_table("conf_");
  std::string ddl;
  switch (kind_) {
    case Kind::postgresql:
      ddl = "CREATE TABLE " + t + " (id serial PRIMARY KEY, b boolean, i bigint, f double precision, "
            "s text, y bytea, d numeric(10,3), dt date, tm time, ts timestamp, j jsonb, u uuid)";
      break;
    case Kind::mysql:
      ddl = "CREATE TABLE " + t + " (id int AUTO_INCREMENT PRIMARY KEY, b boolean, i bigint, f double, "
            "s text, y blob, d decimal(10,3), dt date, tm time, ts datetime, j json, u uuid)";
      break;
    case Kind::sqlite:
      ddl = "CREATE TABLE " + t + " (id integer PRIMARY KEY, b bool, i integer, f real, s text, "
            "y blob, d decimal(10,3), dt date, tm time, ts timestamp, j json, u uuid)";
      break;
  }
  c.query(ddl);

  std::string insert = "INSERT INTO " + t + " (b, i, f, s, y, d, dt, tm, ts, j, u) VALUES (";
  for (int i = 1; i <= 11; ++i) insert += (i > 1 ? ", " : "") + ph(kind_, i);
  insert += ")";
  const std::vector<Value> full = {true,
                                   std::int64_t{9007199254740993},
                                   3.5,
                                   std::string("h\xc3\xa9llo"),
                                   Bytes{std::string("\0\x01\xff", 3)},
                                   Tagged{Type::decimal, "12.345"},
                                   Tagged{Type::date, "2024-02-29"},
                                   Tagged{Type::time, "13:45:00"},
                                   Tagged{Type::timestamp, "2024-02-29 13:45:00"},
                                   Tagged{Type::json, "{\"a\": 1}"},
                                   Tagged{Type::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}};
  auto r1 = c.query(insert, full);
  EXPECT_EQ(r1.complete.affected, 1);
  EXPECT_FALSE(r1.has_rows);
  if (kind_ == Kind::postgresql) {
    EXPECT_FALSE(r1.complete.last_insert_id.has_value());
  } else {
    EXPECT_EQ(r1.complete.last_insert_id, 1);
  }

  std::vector<Value> nulls(11, Null{});
  auto r2 = c.query(insert, nulls);
  if (kind_ != Kind::postgresql) {
    EXPECT_EQ(r2.complete.last_insert_id, 2);
  }
  std::vector<Value> empty = nulls;
  empty[3] = std::string("");
  empty[4] = Bytes{""};
  c.query(insert, empty);

  auto rs = c.query("SELECT id, b, i, f, s, y, d, dt, tm, ts, j, u FROM " + t + " ORDER BY id");
  ASSERT_TRUE(rs.has_rows);
  ASSERT_EQ(rs.rows.size(), 3u);
  ASSERT_EQ(rs.columns.size(), 12u);
  EXPECT_EQ(rs.columns[0].name, "id");
  EXPECT_EQ(rs.columns[0].type, Type::int64);
  // MySQL has no boolean type: BOOLEAN is TINYINT(1) and comes back as an integer.
  EXPECT_EQ(rs.columns[1].type, kind_ == Kind::mysql ? Type::int64 : Type::boolean);
  EXPECT_EQ(rs.columns[2].type, Type::int64);
  EXPECT_EQ(rs.columns[3].type, Type::float64);
  EXPECT_EQ(rs.columns[4].type, Type::text);
  EXPECT_EQ(rs.columns[5].type, Type::bytes);
  EXPECT_EQ(rs.columns[6].type, Type::decimal);
  EXPECT_EQ(rs.columns[7].type, Type::date);
  EXPECT_EQ(rs.columns[8].type, Type::time);
  EXPECT_EQ(rs.columns[9].type, Type::timestamp);

  const auto& row = rs.rows[0];
  if (kind_ == Kind::mysql) EXPECT_EQ(row[1], Value(std::int64_t{1}));
  else EXPECT_EQ(row[1], Value(true));
  EXPECT_EQ(row[2], Value(std::int64_t{9007199254740993}));  // above 2^53: no float detour
  EXPECT_EQ(row[3], Value(3.5));
  EXPECT_EQ(row[4], Value(std::string("h\xc3\xa9llo")));
  EXPECT_EQ(row[5], Value(Bytes{std::string("\0\x01\xff", 3)}));
  EXPECT_EQ(row[6], Value(Tagged{Type::decimal, "12.345"}));
  EXPECT_EQ(row[7], Value(Tagged{Type::date, "2024-02-29"}));
  EXPECT_EQ(row[8], Value(Tagged{Type::time, "13:45:00"}));
  EXPECT_EQ(row[9], Value(Tagged{Type::timestamp, "2024-02-29 13:45:00"}));
  // JSON and UUID: text equal up to the backend's normal form.
  EXPECT_EQ(client::value_text(row[10]).find("\"a\""), 1u) << client::value_text(row[10]);
  EXPECT_EQ(client::value_text(row[11]), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  if (kind_ == Kind::postgresql) {
    EXPECT_EQ(rs.columns[10].type, Type::json);
    EXPECT_EQ(rs.columns[11].type, Type::uuid);
  }

  for (std::size_t i = 1; i < 12; ++i)
    EXPECT_TRUE(std::holds_alternative<Null>(rs.rows[1][i])) << "column " << i << " of the NULL row";
  // The empty string and empty bytes are not NULL.
  EXPECT_EQ(rs.rows[2][4], Value(std::string("")));
  EXPECT_EQ(rs.rows[2][5], Value(Bytes{""}));

  auto upd = c.query("UPDATE " + t + " SET s = " + ph(kind_, 1) + " WHERE id >= " + ph(kind_, 2),
                     {std::string("x"), std::int64_t{2}});
  EXPECT_EQ(upd.complete.affected, 2);
  auto del = c.query("DELETE FROM " + t + " WHERE id = " + ph(kind_, 1), {std::int64_t{3}});
  EXPECT_EQ(del.complete.affected, 1);
  auto none = c.query("DELETE FROM " + t + " WHERE id = " + ph(kind_, 1), {std::int64_t{99}});
  EXPECT_EQ(none.complete.affected, 0);
  if (kind_ != Kind::postgresql) {
    EXPECT_FALSE(none.complete.last_insert_id.has_value());
  }

  // An SQL error carries the backend's code, and the same client connection keeps working.
  try {
    c.query("SELECT * FROM no_such_table_here");
    ADD_FAILURE() << "expected an error";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.info.code, ErrorCode::sql_error);
    EXPECT_EQ(e.info.bind, "db");
    switch (kind_) {
      case Kind::postgresql: EXPECT_EQ(e.info.sqlstate, "42P01"); break;
      case Kind::mysql:
        EXPECT_EQ(e.info.number, 1146);
        EXPECT_EQ(e.info.sqlstate, "42S02");
        break;
      case Kind::sqlite: EXPECT_EQ(e.info.number, 1); break;
    }
    EXPECT_THAT(e.info.message, HasSubstr("no_such_table_here"));
  }
  EXPECT_EQ(c.query("SELECT COUNT(*) FROM " + t).rows.at(0).at(0), Value(std::int64_t{2}));

  EXPECT_EQ(error_code_of([&] { c.query("SELECT 1", {}, std::string("nope")); }), ErrorCode::unknown_bind);
  c.ping();
  c.query("DROP TABLE " + t);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Conformance,
                         ::testing::Values(BackendCase{Kind::postgresql, "postgresql"},
                                           BackendCase{Kind::mysql, "mysql"},
                                           BackendCase{Kind::sqlite, "sqlite"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace binds::test
