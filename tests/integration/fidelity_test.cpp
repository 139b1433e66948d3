// What comes back is what went in: values, errors and frames through bindsd compared with what the
// backend holds, on every backend a rule concerns (PostgreSQL, MariaDB, SQLite). One daemon serves
// the suite; frame-size limits get a daemon of their own with a small max_frame.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <msgpack.hpp>
#include <thread>

#include "client/format.hpp"
#include "harness.hpp"
#include "protocol/utf8.hpp"

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
using namespace std::chrono_literals;

enum class Kind { postgresql, mysql, sqlite };

std::string bind_of(Kind k) { return k == Kind::postgresql ? "pg" : k == Kind::mysql ? "my" : "lite"; }
std::string ph(Kind k, int n) { return k == Kind::postgresql ? "$" + std::to_string(n) : "?"; }

// The error a request ends with (fails the test if it completed).
protocol::ErrorInfo error_of(Client& c, const std::string& sql, const std::vector<Value>& params,
                             const std::string& bind, std::uint32_t timeout_ms = 0) {
  auto r = c.wait(c.send_query(sql, params, bind, timeout_ms));
  if (!r.error) {
    ADD_FAILURE() << "expected an error from: " << sql;
    return {};
  }
  return *r.error;
}

class Fidelity : public ::testing::TestWithParam<Kind> {
 public:
  static void SetUpTestSuite() {
    const std::string pg = env("BINDS_TEST_PG_URL"), my = env("BINDS_TEST_MYSQL_URL");
    if (pg.empty() || my.empty()) return;  // SetUp skips or fails
    dir_ = new std::filesystem::path(make_temp_dir("fidelity"));
    daemon_ = new Daemon("default: pg\nbinds:\n  pg: " + pg + "\n  my: " + my + "\n  lite: sqlite:///" +
                         (*dir_ / "lite.db").string() + "\n");
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
    if (dir_) {
      std::error_code ec;
      std::filesystem::remove_all(*dir_, ec);
      delete dir_;
      dir_ = nullptr;
    }
  }

 protected:
  void SetUp() override {
    if (daemon_ == nullptr) {
      if (env("BINDS_ALLOW_NO_DB") == "1") GTEST_SKIP() << "no test database URL";
      FAIL() << "test database URLs not set: run through scripts/test.sh";
    }
    kind_ = GetParam();
    bind_ = bind_of(kind_);
  }
  Kind kind_ = Kind::postgresql;
  std::string bind_;
  static Daemon* daemon_;
  static std::filesystem::path* dir_;
};
Daemon* Fidelity::daemon_ = nullptr;
std::filesystem::path* Fidelity::dir_ = nullptr;

// msgpack-c wrote integral doubles as integers: 1.0 arrived as 1, -0.0 as 0, 1e19 as a uint64.
TEST_P(Fidelity, Float64ValuesAreAlwaysFloats) {
  auto c = daemon_->connect();
  std::string sql;
  switch (kind_) {
    case Kind::postgresql: sql = "SELECT 1.0::float8, '-0'::float8, 1e19::float8, $1::float8"; break;
    case Kind::mysql: sql = "SELECT CAST(1.0 AS DOUBLE), -CAST(0 AS DOUBLE), CAST(1e19 AS DOUBLE), CAST(? AS DOUBLE)"; break;
    case Kind::sqlite: sql = "SELECT 1.0, -0.0, 1e19, CAST(? AS REAL)"; break;
  }
  auto r = c.query(sql, {std::int64_t{42}}, bind_);
  ASSERT_EQ(r.rows.size(), 1u);
  const std::vector<double> want{1.0, -0.0, 1e19, 42.0};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.columns[i].type, Type::float64) << i;
    ASSERT_TRUE(std::holds_alternative<double>(r.rows[0][i])) << "column " << i << " is not a float: "
                                                             << client::value_text(r.rows[0][i]);
    EXPECT_EQ(std::get<double>(r.rows[0][i]), want[i]);
  }
  // MariaDB has no negative zero to give (it prints -0 as 0); the others keep the sign.
  if (kind_ != Kind::mysql) {
    EXPECT_TRUE(std::signbit(std::get<double>(r.rows[0][1])));
  }
}

// SQLite and PostgreSQL read SQL as a C string: "SELECT 1\0; DROP TABLE t" ran SELECT 1.
TEST_P(Fidelity, SqlWithANulByteIsRefusedNotTruncated) {
  auto c = daemon_->connect();
  const std::string sql("SELECT 1\0; SELECT 2", 19);
  auto e = error_of(c, sql, {}, bind_);
  EXPECT_EQ(e.code, ErrorCode::bad_request) << e.message;
  EXPECT_THAT(e.message, HasSubstr("NUL"));
  EXPECT_EQ(client::value_text(c.query("SELECT 3", {}, bind_).rows[0][0]), "3");  // served on
}

// PostgreSQL text cannot hold NUL (it stored "abc" before the engine, refused with a server error
// after); MariaDB and SQLite store the byte, so there it must come back whole.
TEST_P(Fidelity, TextWithANulByteIsRefusedByNameOrKeptWhole) {
  auto c = daemon_->connect();
  const std::string text("abc\0def", 7);
  if (kind_ == Kind::postgresql) {
    auto e = error_of(c, "SELECT $1::text, $2::text", {std::string("fine"), text}, bind_);
    EXPECT_EQ(e.code, ErrorCode::bad_request) << e.message;
    EXPECT_THAT(e.message, HasSubstr("parameter 2"));
    EXPECT_THAT(e.message, HasSubstr("NUL"));
    // As bytes it is fine.
    auto r = c.query("SELECT $1::bytea", {Bytes{text}}, bind_);
    EXPECT_EQ(std::get<Bytes>(r.rows[0][0]).data, text);
    return;
  }
  auto r = c.query("SELECT " + ph(kind_, 1), {text}, bind_);
  ASSERT_TRUE(std::holds_alternative<std::string>(r.rows[0][0]));
  EXPECT_EQ(std::get<std::string>(r.rows[0][0]), text);
}

// Text that is not UTF-8 never leaves bindsd in a msgpack str: a client's is refused by name,
// a backend's is repaired with U+FFFD.
TEST_P(Fidelity, InvalidUtf8IsRefusedOnTheWayInAndRepairedOnTheWayOut) {
  auto c = daemon_->connect();
  // Raw frames: the client library itself repairs what it sends.
  auto raw_query = [&](std::uint32_t id, const std::string& bind, const std::string& param) {
    msgpack::sbuffer b;
    msgpack::packer<msgpack::sbuffer> pk(b);
    pk.pack_map(3);
    pk.pack(std::string("sql"));
    pk.pack("SELECT " + ph(kind_, 1) + ", " + ph(kind_, 2));
    pk.pack(std::string("bind"));
    pk.pack(bind);
    pk.pack(std::string("params"));
    pk.pack_array(2);
    pk.pack(std::string("ok"));
    pk.pack(param);
    protocol::FrameHeader h;
    h.length = static_cast<std::uint32_t>(b.size());
    h.type = static_cast<std::uint8_t>(protocol::FrameType::query);
    h.request_id = id;
    std::string frame(protocol::kHeaderSize, '\0');
    protocol::encode_header(h, reinterpret_cast<unsigned char*>(frame.data()));
    c.send_raw(frame + std::string(b.data(), b.size()));
    return c.wait(id);
  };
  auto e = raw_query(9001, bind_, "\xff\xfe");
  ASSERT_TRUE(e.error.has_value());
  EXPECT_EQ(e.error->code, ErrorCode::bad_request);
  EXPECT_THAT(e.error->message, HasSubstr("parameter 2"));
  EXPECT_THAT(e.error->message, HasSubstr("UTF-8"));
  auto b = raw_query(9002, "us\xe9rs", "fine");
  ASSERT_TRUE(b.error.has_value());
  EXPECT_EQ(b.error->code, ErrorCode::bad_request);
  EXPECT_THAT(b.error->message, HasSubstr("bind"));
  EXPECT_TRUE(protocol::is_valid_utf8(b.error->message));
  EXPECT_EQ(client::value_text(c.query("SELECT 1", {}, bind_).rows[0][0]), "1");
  if (kind_ == Kind::postgresql) return;  // a UTF8 database holds no invalid text to send
  const std::string sql = kind_ == Kind::mysql ? "SELECT CONVERT(x'61ff62' USING utf8mb4) AS t, CAST(x'61ff62' AS CHAR) AS u"
                                               : "SELECT CAST(x'61ff62' AS TEXT) AS t, CAST(x'61ff62' AS TEXT) AS u";
  auto r = c.query(sql, {}, bind_);
  for (std::size_t i = 0; i < r.rows[0].size(); ++i) {
    if (!std::holds_alternative<std::string>(r.rows[0][i])) continue;  // MariaDB may give binary
    const auto& s = std::get<std::string>(r.rows[0][i]);
    EXPECT_TRUE(protocol::is_valid_utf8(s)) << i;
    EXPECT_EQ(s.front(), 'a');
    EXPECT_EQ(s.back(), 'b');
  }
}

// PostgreSQL took values for placeholders the text never used ("SELECT $1" with two values).
TEST_P(Fidelity, MoreValuesThanPlaceholdersIsAnSqlError) {
  auto c = daemon_->connect();
  auto e = error_of(c, "SELECT " + ph(kind_, 1), {std::int64_t{1}, std::int64_t{2}}, bind_);
  EXPECT_EQ(e.code, ErrorCode::sql_error) << e.message;
  EXPECT_EQ(e.sqlstate, "07001");
  EXPECT_THAT(e.message, HasSubstr("1 placeholder but 2 parameters"));
  // Twice: the second time PostgreSQL's statement comes from bindsd's cache.
  EXPECT_EQ(error_of(c, "SELECT " + ph(kind_, 1), {std::int64_t{1}, std::int64_t{2}}, bind_).code,
            ErrorCode::sql_error);
  EXPECT_EQ(error_of(c, "SELECT 1", {std::int64_t{1}}, bind_).code, ErrorCode::sql_error);
  // A placeholder-like sequence inside a literal is not one.
  const std::string lit = kind_ == Kind::postgresql ? "SELECT '$2', $1::int" : "SELECT '?', " + ph(kind_, 1);
  auto r = c.query(lit, {std::int64_t{5}}, bind_);
  EXPECT_EQ(client::value_text(r.rows[0][1]), "5");
}

// §7: a statement stopped by its timeout was sent, so it may have run.
TEST_P(Fidelity, TimeoutSaysTheStatementMayHaveExecuted) {
  auto c = daemon_->connect();
  std::string sql;
  switch (kind_) {
    case Kind::postgresql: sql = "SELECT pg_sleep(5)"; break;
    case Kind::mysql: sql = "SELECT SLEEP(5)"; break;
    case Kind::sqlite:
      sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000000) SELECT count(*) FROM n";
      break;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto e = error_of(c, sql, {}, bind_, 300);
  EXPECT_EQ(e.code, ErrorCode::timeout) << e.message;
  EXPECT_EQ(e.may_have_executed, std::optional<bool>(true));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

// §5 / §4: an empty bind name is not the default bind.
TEST_P(Fidelity, EmptyBindNameIsUnknown) {
  auto c = daemon_->connect();
  auto e = error_of(c, "SELECT 1", {}, "");
  EXPECT_EQ(e.code, ErrorCode::unknown_bind);
}

// ARRAY[1,2,3] came back as the characters "{1,2,3}" and an interval as text; a list parameter
// was refused. Arrays are MessagePack arrays of typed elements; intervals ISO 8601 (ext 7).
TEST_P(Fidelity, ArraysAndIntervalsAreTypedValues) {
  using protocol::Array;
  auto c = daemon_->connect();
  const Value ints = Array{{std::int64_t{1}, std::int64_t{2}, Null{}}};
  if (kind_ != Kind::postgresql) {
    auto e = error_of(c, "SELECT " + ph(kind_, 1), {ints}, bind_);
    EXPECT_EQ(e.code, ErrorCode::bad_request);
    EXPECT_THAT(e.message, HasSubstr("arrays are supported on PostgreSQL binds only"));
    return;
  }
  auto r = c.query(
      "SELECT ARRAY[1,2,NULL], ARRAY['a b', 'c\"d', NULL], ARRAY[[1.5,2],[3,4]]::float8[], '{}'::int[], "
      "ARRAY[1.50]::numeric[], '1 day 2 hours'::interval, '-1 year 2 mons -3 days 04:05:06.5'::interval, "
      "ARRAY['1 day'::interval]",
      {}, "pg");
  const std::vector<std::string> types{"array", "array", "array", "array", "array", "interval", "interval", "array"};
  const std::vector<std::string> db_types{"_int4", "_text", "_float8", "_int4", "_numeric", "interval", "interval", "_interval"};
  for (std::size_t i = 0; i < types.size(); ++i) {
    EXPECT_EQ(protocol::type_name(r.columns[i].type), types[i]) << i;
    EXPECT_EQ(r.columns[i].db_type, db_types[i]) << i;
  }
  const auto& row = r.rows[0];
  EXPECT_EQ(row[0], ints);
  EXPECT_EQ(row[1], Value(Array{{std::string("a b"), std::string("c\"d"), Null{}}}));
  EXPECT_EQ(row[2], Value(Array{{Array{{1.5, 2.0}}, Array{{3.0, 4.0}}}}));
  EXPECT_EQ(row[3], Value(Array{}));
  EXPECT_EQ(row[4], Value(Array{{Tagged{Type::decimal, "1.50"}}}));
  EXPECT_EQ(row[5], Value(Tagged{Type::interval, "P1DT2H"}));
  EXPECT_EQ(row[6], Value(Tagged{Type::interval, "P-10M-3DT4H5M6.5S"}));
  EXPECT_EQ(row[7], Value(Array{{Tagged{Type::interval, "P1D"}}}));

  // As parameters: typed by their elements, or inferred from the context.
  auto p = c.query("SELECT $1::int[], $2, 3 = ANY($3), $4 + interval '1 hour', $5::text[]",
                   {ints, Array{{Array{{1.5, std::int64_t{2}}}}}, Array{{std::int64_t{1}, std::int64_t{3}}},
                    Tagged{Type::interval, "P1DT2.5S"}, Array{{std::string("x,\"y\\"), Null{}}}},
                   "pg");
  EXPECT_EQ(p.rows[0][0], ints);
  EXPECT_EQ(p.rows[0][1], Value(Array{{Array{{1.5, 2.0}}}}));
  EXPECT_EQ(p.rows[0][2], Value(true));
  EXPECT_EQ(p.rows[0][3], Value(Tagged{Type::interval, "P1DT1H2.5S"}));
  EXPECT_EQ(p.rows[0][4], Value(Array{{std::string("x,\"y\\"), Null{}}}));
  // Stored and read back through a table (one transaction: one backend session).
  c.begin("pg");
  c.query("CREATE TEMP TABLE fid_arr (a int[], t text[], iv interval) ON COMMIT DROP", {}, "pg");
  c.query("INSERT INTO fid_arr VALUES ($1, $2, $3)",
          {ints, Array{{std::string("q")}}, Tagged{Type::interval, "PT-1M"}}, "pg");
  auto back = c.query("SELECT a, t, iv FROM fid_arr", {}, "pg");
  EXPECT_EQ(back.rows[0][0], ints);
  EXPECT_EQ(back.rows[0][1], Value(Array{{std::string("q")}}));
  EXPECT_EQ(back.rows[0][2], Value(Tagged{Type::interval, "PT-1M"}));
  c.rollback("pg");
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Fidelity, ::testing::Values(Kind::postgresql, Kind::mysql, Kind::sqlite),
                         [](const auto& info) { return bind_of(info.param); });

// ---- MariaDB: what Connector/C++ corrupted, and the probe statement that clobbered the session ----

class MysqlFidelity : public Fidelity {};

// Connector/C++ read past a 64-byte buffer for DECIMAL(65,30) in prepared results.
TEST_P(MysqlFidelity, LongDecimalsComeBackExactWithAndWithoutParameters) {
  auto c = daemon_->connect();
  const std::string d = "-12345678901234567890123456789012345.123456789012345678901234567891";
  const std::string sql = "SELECT CAST('" + d + "' AS DECIMAL(65,30))";
  for (bool with_param : {false, true}) {
    auto r = with_param ? c.query(sql + ", ?", {std::int64_t{1}}, "my") : c.query(sql, {}, "my");
    ASSERT_TRUE(std::holds_alternative<Tagged>(r.rows[0][0]));
    EXPECT_EQ(std::get<Tagged>(r.rows[0][0]).type, Type::decimal);
    EXPECT_EQ(std::get<Tagged>(r.rows[0][0]).text, d) << "with parameters: " << with_param;
  }
}

// Connector/C++ bound text over 256 KiB as binary.
TEST_P(MysqlFidelity, LongTextParametersAreText) {
  auto c = daemon_->connect();
  const std::string big(300 * 1024, 'x');
  auto r = c.query("SELECT CHARSET(?), ?", {big, big}, "my");
  EXPECT_EQ(client::value_text(r.rows[0][0]), "utf8mb4");
  ASSERT_TRUE(std::holds_alternative<std::string>(r.rows[0][1]));
  EXPECT_EQ(std::get<std::string>(r.rows[0][1]).size(), big.size());
  EXPECT_EQ(r.columns[1].type, Type::text);
}

// Date/time text used to depend on whether the statement had parameters.
TEST_P(MysqlFidelity, DateTimeTextIsTheSameWithAndWithoutParameters) {
  auto c = daemon_->connect();
  const std::string sql =
      "SELECT CAST('2024-01-01 00:00:00.25' AS DATETIME(6)), CAST('-838:59:59' AS TIME), "
      "CAST('12:30:00.5' AS TIME(3)), DATE '2024-02-29'";
  auto plain = c.query(sql, {}, "my");
  auto prepared = c.query(sql + ", ?", {std::int64_t{1}}, "my");
  const std::vector<std::string> want{"2024-01-01 00:00:00.250000", "-838:59:59", "12:30:00.500", "2024-02-29"};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(client::value_text(plain.rows[0][i]), want[i]) << i;
    EXPECT_EQ(client::value_text(prepared.rows[0][i]), want[i]) << i;
    EXPECT_EQ(plain.columns[i].type, prepared.columns[i].type) << i;
  }
}

// A probe statement after each statement made LAST_INSERT_ID() 0 and ROW_COUNT() -1.
TEST_P(MysqlFidelity, SessionFunctionsSeeTheClientsOwnStatements) {
  auto c = daemon_->connect();
  c.query("CREATE TABLE IF NOT EXISTS fid_ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)", {}, "my");
  c.begin("my");  // one connection for the three statements
  auto ins = c.query("INSERT INTO fid_ai (v) VALUES (1), (2), (3)", {}, "my");
  auto r = c.query("SELECT LAST_INSERT_ID(), ROW_COUNT()", {}, "my");
  // As pymysql sees them: the first id of a multi-row insert, and the rows it inserted.
  ASSERT_TRUE(ins.complete.last_insert_id.has_value());
  EXPECT_EQ(client::value_text(r.rows[0][0]), std::to_string(*ins.complete.last_insert_id));
  EXPECT_NE(client::value_text(r.rows[0][0]), "0");
  EXPECT_EQ(client::value_text(r.rows[0][1]), "3");
  c.query("UPDATE fid_ai SET v = v + 1 WHERE id >= ?", {*ins.complete.last_insert_id}, "my");
  auto rc = c.query("SELECT ROW_COUNT()", {}, "my");
  EXPECT_EQ(client::value_text(rc.rows[0][0]), "3");
  auto after_select = c.query("SELECT ROW_COUNT()", {}, "my");
  EXPECT_EQ(client::value_text(after_select.rows[0][0]), "-1");  // a SELECT's own count, as pymysql shows
  c.rollback("my");
}

// Connector/C++ dropped the SQLSTATE of an error raised while rows were being fetched.
TEST_P(MysqlFidelity, AnErrorWhileFetchingKeepsItsSqlstate) {
  auto c = daemon_->connect();
  c.query("CREATE TABLE IF NOT EXISTS fid_outer (k INT)", {}, "my");
  c.query("CREATE TABLE IF NOT EXISTS fid_inner (k INT, v INT)", {}, "my");
  c.query("DELETE FROM fid_outer", {}, "my");
  c.query("DELETE FROM fid_inner", {}, "my");
  c.query("INSERT INTO fid_outer VALUES (1), (2), (3)", {}, "my");
  c.query("INSERT INTO fid_inner VALUES (1, 10), (2, 20), (3, 30), (3, 31)", {}, "my");
  const std::string sql = "SELECT k, (SELECT v FROM fid_inner i WHERE i.k = o.k) FROM fid_outer o ORDER BY k";
  for (bool with_param : {false, true}) {
    auto e = with_param ? error_of(c,
                                   "SELECT k, (SELECT v FROM fid_inner i WHERE i.k = o.k) FROM fid_outer o "
                                   "WHERE k > ? ORDER BY k",
                                   {std::int64_t{0}}, "my")
                        : error_of(c, sql, {}, "my");
    EXPECT_EQ(e.code, ErrorCode::sql_error);
    EXPECT_EQ(e.number, std::optional<std::int64_t>(1242)) << e.message;
    EXPECT_EQ(e.sqlstate, "21000") << "with parameters: " << with_param;
  }
}

// KILL QUERY ends BENCHMARK() with a normal result of 0 and SLEEP() with 1: not results.
TEST_P(MysqlFidelity, AStatementStoppedByTheServerIsNeverReportedAsAResult) {
  auto c = daemon_->connect();
  for (const char* sql : {"SELECT BENCHMARK(2000000000, MD5('x'))", "SELECT SLEEP(10)"}) {
    auto id = c.send_query(sql, {}, "my");
    std::this_thread::sleep_for(300ms);
    c.wait(c.send_cancel(id));
    auto r = c.wait(id);
    ASSERT_TRUE(r.error.has_value()) << sql << " completed with "
                                     << (r.result.rows.empty() ? "no row" : client::value_text(r.result.rows[0][0]));
    EXPECT_EQ(r.error->code, ErrorCode::cancelled) << r.error->message;
    auto t = error_of(c, sql, {}, "my", 300);
    EXPECT_EQ(t.code, ErrorCode::timeout) << sql << ": " << t.message;
  }
}

INSTANTIATE_TEST_SUITE_P(MariaDB, MysqlFidelity, ::testing::Values(Kind::mysql),
                         [](const auto& info) { return bind_of(info.param); });

// ---- Frames: the server never sends one larger than the max_frame it announced ----

class FrameLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string pg = env("BINDS_TEST_PG_URL");
    if (pg.empty()) {
      if (env("BINDS_ALLOW_NO_DB") == "1") GTEST_SKIP() << "no test database URL";
      FAIL() << "test database URLs not set: run through scripts/test.sh";
    }
    // The client enforces the announced max_frame, so an oversized frame fails the read.
    daemon_ = std::make_unique<Daemon>("default: pg\nlimits:\n  max_frame: 65536\n  batch_bytes: 1000000\nbinds:\n  pg: " +
                                       pg + "\n");
  }
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(FrameLimits, ColumnsThatCannotFitAreRefusedAndTheConnectionServesOn) {
  auto c = daemon_->connect();
  ASSERT_EQ(c.server().max_frame, 65536u);
  // Built by the server: the statement itself must fit a frame.
  c.query("DROP TABLE IF EXISTS fid_wide");
  c.query("DO $$BEGIN EXECUTE 'CREATE TABLE fid_wide (' || (SELECT string_agg("
          "'a_rather_long_column_name_to_fill_the_columns_frame_' || i || ' int', ', ') "
          "FROM generate_series(1, 1500) i) || ')'; END$$");
  c.query("INSERT INTO fid_wide (a_rather_long_column_name_to_fill_the_columns_frame_1) VALUES (1)");
  auto e = error_of(c, "SELECT * FROM fid_wide", {}, "pg");
  EXPECT_EQ(e.code, ErrorCode::bad_request);
  EXPECT_THAT(e.message, HasSubstr("max_frame"));
  EXPECT_EQ(client::value_text(c.query("SELECT 7").rows[0][0]), "7");
}

TEST_F(FrameLimits, LongErrorMessagesAreCutToFit) {
  auto c = daemon_->connect();
  auto e = error_of(c, "DO $$BEGIN RAISE EXCEPTION '%', repeat('x', 100000); END$$", {}, "pg");
  EXPECT_EQ(e.code, ErrorCode::sql_error);
  EXPECT_THAT(e.message, HasSubstr("truncated"));
  EXPECT_LE(e.message.size(), 65536u);
  EXPECT_EQ(e.sqlstate, "P0001");
  EXPECT_EQ(client::value_text(c.query("SELECT 8").rows[0][0]), "8");
}

// batch_bytes above max_frame: batches are cut before they outgrow a frame.
TEST_F(FrameLimits, RowBatchesNeverOutgrowAFrame) {
  auto c = daemon_->connect();
  auto r = c.query("SELECT i, repeat('y', 40000) FROM generate_series(1, 5) i");
  ASSERT_EQ(r.rows.size(), 5u);
  for (const auto& row : r.rows) EXPECT_EQ(std::get<std::string>(row[1]).size(), 40000u);
}

// ---- Admission: a refused client is told why ----

TEST(Admission, ClientsOverMaxClientsGetTooManyClientsBeforeTheClose) {
  auto dir = make_temp_dir("admission");
  Daemon d("default: lite\nlimits:\n  max_clients: 1\nbinds:\n  lite: sqlite:///" + (dir / "a.db").string() + "\n");
  // The harness's readiness probe may still be counted for a moment after it hung up.
  std::optional<Client> first;
  for (int attempt = 0; attempt < 50 && !first; ++attempt) {
    try {
      first.emplace(d.connect());
    } catch (const ServerError& e) {
      ASSERT_EQ(e.info.code, ErrorCode::too_many_clients) << e.what();
      std::this_thread::sleep_for(20ms);
    }
  }
  ASSERT_TRUE(first.has_value());
  bool refused = false;
  for (int attempt = 0; attempt < 3 && !refused; ++attempt) {
    try {
      auto second = d.connect();
      second.ping();  // accepted (the first was still being counted): not what we look for
    } catch (const ServerError& e) {
      refused = true;
      EXPECT_EQ(e.info.code, ErrorCode::too_many_clients);
      EXPECT_THAT(e.info.message, HasSubstr("max_clients"));
    }
  }
  EXPECT_TRUE(refused) << "a second client was never refused with an ERROR frame";
  first->ping();  // the admitted client is served on
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace binds::test
