// The MySQL/MariaDB backend (binds/backend/mysql.cpp) against a real MariaDB:
// $BINDS_TEST_MYSQL_URL from scripts/testdb.sh (BINDS_ALLOW_NO_DB=1 skips instead of failing).

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <mariadb/mysql.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "binds/backend/mysql_backend.hpp"
#include "binds/url.hpp"
#include "tests/binds/backend_sink.hpp"

namespace binds::protocol {
// Readable failure messages for values.
inline void PrintTo(const Null&, std::ostream* os) { *os << "NULL"; }
inline void PrintTo(const Bytes& b, std::ostream* os) {
  static const char hex[] = "0123456789abcdef";
  *os << "bytes[";
  for (std::size_t i = 0; i < b.data.size() && i < 64; ++i) {
    const auto c = static_cast<unsigned char>(b.data[i]);
    *os << hex[c >> 4] << hex[c & 15];
  }
  *os << (b.data.size() > 64 ? "...]" : "]");
}
inline void PrintTo(const Tagged& t, std::ostream* os) { *os << type_name(t.type) << "'" << t.text << "'"; }
}  // namespace binds::protocol

namespace binds {
namespace {

namespace asio = boost::asio;
using backend::BackendError;
using backend::Connection;
using backend::ConnectOptions;
using backend::Outcome;
using backend::ResultSink;
using backend::Statement;
using backend::TxStatus;
using backend::ValueView;
using protocol::Bytes;
using protocol::Null;
using protocol::Row;
using protocol::Tagged;
using protocol::Type;
using protocol::Value;
using test::CollectSink;
using test::run_sync;
using Clock = std::chrono::steady_clock;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;  // freed memory sits in ASan's quarantine: RSS grows regardless
#else
constexpr bool kAsan = false;
#endif

long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

int open_fds() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

void run_void(asio::io_context& io, asio::awaitable<void> aw) {
  std::exception_ptr ep;
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e) { ep = e; });
  io.restart();
  io.run();
  if (ep) std::rethrow_exception(ep);
}

// Counts rows of (int 1..n, ...) and plays a client whose output is full every `full_every`
// rows; drained() yields to the event loop before saying yes.
struct CountingSink : ResultSink {
  std::int64_t n = 0;
  std::int64_t expected = 1;
  bool in_order = true;
  std::int64_t full_every = 4096;
  std::int64_t next_full = 4096;
  int drains = 0;
  long max_rss = 0;
  void columns(std::span<const protocol::Column>) override {}
  void row(std::span<const ValueView> v) override {
    ++n;
    if (v.empty() || v[0].type != Type::int64 || v[0].i != expected) in_order = false;
    ++expected;
    if (n % 50000 == 0) max_rss = std::max(max_rss, rss_kb());
  }
  bool full() const override { return n >= next_full; }
  asio::awaitable<bool> drained() override {
    ++drains;
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    next_full = n + full_every;
    co_return true;
  }
  std::size_t max_row_bytes() const override { return SIZE_MAX; }
};

class MysqlBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* value = std::getenv("BINDS_TEST_MYSQL_URL");
    if (value == nullptr || *value == '\0') {
      const char* allow = std::getenv("BINDS_ALLOW_NO_DB");
      if (allow != nullptr && std::string(allow) == "1") GTEST_SKIP() << "BINDS_TEST_MYSQL_URL not set";
      FAIL() << "BINDS_TEST_MYSQL_URL is not set: run under scripts/testdb.sh, e.g.\n"
             << "  scripts/testdb.sh start /tmp/db && . /tmp/db/env && build/tests/binds_backend_tests\n"
             << "or set BINDS_ALLOW_NO_DB=1 to skip";
    }
    url_ = parse_url(value);
    static int counter = 0;
    table_ = "mybe_t_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    conn_ = open();
    ASSERT_NE(conn_, nullptr);
  }

  void TearDown() override {
    if (conn_) {
      CollectSink s;
      exec(*conn_, "ROLLBACK", {}, s);
      exec(*conn_, "DROP TABLE IF EXISTS " + table_, {}, s);
      exec(*conn_, "DROP TABLE IF EXISTS " + table_ + "_b", {}, s);
      run_void(io_, conn_->close());
      conn_.reset();
    }
  }

  std::unique_ptr<Connection> open(const DatabaseUrl& url, BackendError* err = nullptr,
                                   ConnectOptions options = {}) {
    auto r = run_sync(io_, backend::connect(io_.get_executor(), url, options));
    if (err) *err = r.error;
    return std::move(r.conn);
  }
  std::unique_ptr<Connection> open() {
    BackendError err;
    auto c = open(url_, &err);
    EXPECT_NE(c, nullptr) << err.message;
    return c;
  }

  Outcome exec(Connection& c, const std::string& sql, const std::vector<Value>& params, ResultSink& sink) {
    return run_sync(io_, c.execute(Statement{sql, params}, sink));
  }

  // Runs a statement that must succeed.
  CollectSink run(const std::string& sql, const std::vector<Value>& params = {}, Outcome* out = nullptr,
                  Connection* on = nullptr) {
    CollectSink s;
    Outcome o = exec(on ? *on : *conn_, sql, params, s);
    EXPECT_FALSE(o.error.has_value()) << "SQL: " << sql << "\nerror: " << (o.error ? o.error->message : "");
    if (out) *out = o;
    return s;
  }

  // Runs a statement that must fail.
  BackendError fail(const std::string& sql, const std::vector<Value>& params = {}, Outcome* out = nullptr) {
    CollectSink s;
    Outcome o = exec(*conn_, sql, params, s);
    EXPECT_TRUE(o.error.has_value()) << "expected an error from: " << sql;
    if (out) *out = o;
    return o.error.value_or(BackendError{});
  }

  Value scalar(const std::string& sql, const std::vector<Value>& params = {}, Connection* on = nullptr) {
    CollectSink s = run(sql, params, nullptr, on);
    if (s.rows.size() != 1 || s.rows[0].empty()) {
      ADD_FAILURE() << sql << ": expected one row";
      return Null{};
    }
    return s.rows[0][0];
  }

  // Runs `aw` while `action` fires after `delay` on the same event loop; took_ms: how long the
  // statement took.
  Outcome run_with(asio::awaitable<Outcome> aw, std::chrono::milliseconds delay, std::function<void()> action,
                   long long* took_ms = nullptr) {
    std::optional<Outcome> out;
    std::exception_ptr ep;
    asio::steady_timer timer(io_, delay);
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) action();
    });
    const auto t0 = Clock::now();
    asio::co_spawn(io_, std::move(aw), [&](std::exception_ptr e, Outcome o) {
      ep = e;
      if (!e) out = std::move(o);
      if (took_ms) *took_ms = ms_since(t0);
      timer.cancel();
    });
    io_.restart();
    io_.run();
    if (ep) std::rethrow_exception(ep);
    return std::move(*out);
  }

  std::int64_t connection_id(Connection& c) {
    Value v = scalar("SELECT CONNECTION_ID()", {}, &c);
    return std::get<std::int64_t>(v);
  }

  backend::mysql::StatementCacheStats stats() { return backend::mysql::statement_cache_stats(*conn_).value(); }

  asio::io_context io_;
  DatabaseUrl url_;
  std::string table_;
  std::unique_ptr<Connection> conn_;
};

void expect_interrupted(const Outcome& o) {
  ASSERT_TRUE(o.error.has_value()) << "the statement was not interrupted";
  EXPECT_TRUE(o.error->interrupted) << o.error->message;
  EXPECT_EQ(o.error->code, protocol::ErrorCode::sql_error) << o.error->message;
  EXPECT_FALSE(o.error->connection_broken) << o.error->message;
  EXPECT_EQ(o.error->number, std::optional<std::int64_t>(1317)) << o.error->message;
}

// ------------------------------------------------------------------ connect

TEST_F(MysqlBackendTest, ConnectsWithTheSessionSettingsItNeeds) {
  EXPECT_EQ(conn_->backend(), Backend::mysql);
  EXPECT_EQ(conn_->max_pipeline(), 1);
  EXPECT_EQ(conn_->outstanding(), 0);
  Outcome o;
  CollectSink c = run("SELECT 1 AS one", {}, &o);
  ASSERT_EQ(c.cols.size(), 1u);
  EXPECT_EQ(c.cols[0].name, "one");
  EXPECT_EQ(c.cols[0].type, Type::int64);
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.rows[0][0], Value(std::int64_t{1}));
  EXPECT_EQ(o.affected, 1);
  EXPECT_EQ(o.row_count, 1);
  EXPECT_EQ(o.tx, TxStatus::idle);
  EXPECT_FALSE(o.session_state_changed);
  EXPECT_EQ(scalar("SELECT @@session.session_track_state_change"), Value(std::int64_t{1}));
  EXPECT_EQ(scalar("SELECT @@character_set_client"), Value(std::string("utf8mb4")));
  EXPECT_EQ(scalar("SELECT @@character_set_results"), Value(std::string("utf8mb4")));
  EXPECT_TRUE(conn_->looks_alive());
  EXPECT_TRUE(run_sync(io_, conn_->ping()));
  // Connection attributes are visible where the server records them.
  if (scalar("SELECT @@performance_schema") == Value(std::int64_t{1})) {
    EXPECT_EQ(scalar("SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs WHERE "
                     "PROCESSLIST_ID = CONNECTION_ID() AND ATTR_NAME = 'program_name'"),
              Value(std::string("bindsd")));
  }
}

TEST_F(MysqlBackendTest, WrongPasswordIsBackendUnavailableWithoutThePassword) {
  DatabaseUrl bad = url_;
  const std::string secret = "pw-Sekr1t-4711";
  bad.password = secret;
  BackendError err;
  auto c = open(bad, &err);
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(err.code, protocol::ErrorCode::backend_unavailable);
  EXPECT_EQ(err.number, std::optional<std::int64_t>(1045));
  EXPECT_EQ(err.sqlstate, "28000");
  EXPECT_NE(err.message.find(url_.user), std::string::npos) << err.message;
  EXPECT_EQ(err.message.find(secret), std::string::npos) << err.message;
}

TEST_F(MysqlBackendTest, UnreachablePortFailsFast) {
  DatabaseUrl bad = url_;
  bad.host = "127.0.0.1";
  bad.port = static_cast<std::uint16_t>(free_port());
  bad.password = "pw-Sekr1t-4711";
  BackendError err;
  const auto t0 = Clock::now();
  auto c = open(bad, &err);
  EXPECT_EQ(c, nullptr);
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_EQ(err.code, protocol::ErrorCode::backend_unavailable);
  EXPECT_FALSE(err.message.empty());
  EXPECT_EQ(err.message.find("pw-Sekr1t-4711"), std::string::npos) << err.message;
  EXPECT_TRUE(err.number == 2002 || err.number == 2003) << err.message;
}

// A server that accepts the TCP connection but never sends its greeting: the deadline holds.
TEST_F(MysqlBackendTest, ConnectTimeoutHoldsAgainstASilentServer) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  DatabaseUrl silent = url_;
  silent.host = "127.0.0.1";
  silent.port = ntohs(a.sin_port);
  ConnectOptions options;
  options.connect_timeout = std::chrono::milliseconds(700);
  BackendError err;
  const auto t0 = Clock::now();
  auto c = open(silent, &err, options);
  const auto took = ms_since(t0);
  ::close(fd);
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(err.code, protocol::ErrorCode::backend_unavailable);
  EXPECT_GE(took, 600);
  EXPECT_LT(took, 2500);
  EXPECT_NE(err.message.find("timed out"), std::string::npos) << err.message;

  // The URL's connect_timeout (seconds) applies too.
  int fd2 = ::socket(AF_INET, SOCK_STREAM, 0);
  a.sin_port = 0;
  ASSERT_EQ(::bind(fd2, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd2, 8), 0);
  ::getsockname(fd2, reinterpret_cast<sockaddr*>(&a), &len);
  silent.port = ntohs(a.sin_port);
  silent.options["connect_timeout"] = "1";
  const auto t1 = Clock::now();
  auto c2 = open(silent, &err);
  const auto took2 = ms_since(t1);
  ::close(fd2);
  EXPECT_EQ(c2, nullptr);
  EXPECT_GE(took2, 900);
  EXPECT_LT(took2, 3000);
}

TEST_F(MysqlBackendTest, TlsRequiredAgainstAServerWithoutTlsFails) {
  if (scalar("SELECT @@have_ssl") == Value(std::string("YES"))) GTEST_SKIP() << "this server offers TLS";
  DatabaseUrl tls = url_;
  tls.options["ssl"] = "true";
  BackendError err;
  auto c = open(tls, &err);
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(err.code, protocol::ErrorCode::backend_unavailable);
  EXPECT_FALSE(err.message.empty());
  DatabaseUrl bad = url_;
  bad.options["ssl_mode"] = "sometimes";
  auto c2 = open(bad, &err);
  EXPECT_EQ(c2, nullptr);
  EXPECT_NE(err.message.find("ssl_mode"), std::string::npos) << err.message;
}

TEST_F(MysqlBackendTest, LoadDataLocalInfileIsRefused) {
  run("CREATE TABLE " + table_ + " (line TEXT)");
  BackendError e = fail("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE " + table_);
  EXPECT_FALSE(e.connection_broken) << e.message;
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM " + table_), Value(std::int64_t{0}));
  EXPECT_EQ(scalar("SELECT 7"), Value(std::int64_t{7}));
}

// ------------------------------------------------------------------ types

TEST_F(MysqlBackendTest, EveryTypeIsTheSameWithAndWithoutParameters) {
  run("CREATE TABLE " + table_ +
      " (id INT AUTO_INCREMENT PRIMARY KEY, c_tiny TINYINT, c_utiny TINYINT UNSIGNED, c_small SMALLINT,"
      " c_medium MEDIUMINT, c_int INT, c_uint INT UNSIGNED, c_big BIGINT, c_ubig BIGINT UNSIGNED,"
      " c_bool BOOLEAN, c_float FLOAT, c_float2 FLOAT(7,3), c_double DOUBLE, c_double2 DOUBLE(12,4),"
      " c_dec DECIMAL(12,4), c_dec65 DECIMAL(65,30), c_date DATE, c_time TIME, c_time3 TIME(3),"
      " c_dt DATETIME, c_dt3 DATETIME(3), c_dt6 DATETIME(6), c_ts6 TIMESTAMP(6) NULL, c_year YEAR,"
      " c_bit BIT(10), c_bit64 BIT(64), c_char CHAR(4), c_varchar VARCHAR(50), c_text TEXT,"
      " c_binary BINARY(3), c_varbinary VARBINARY(10), c_blob LONGBLOB, c_enum ENUM('a','b'),"
      " c_set SET('x','y'), c_json JSON, c_uuid UUID, c_geo GEOMETRY) ENGINE=InnoDB");
  const std::string cols =
      "c_tiny, c_utiny, c_small, c_medium, c_int, c_uint, c_big, c_ubig, c_bool, c_float, c_float2, c_double,"
      " c_double2, c_dec, c_dec65, c_date, c_time, c_time3, c_dt, c_dt3, c_dt6, c_ts6, c_year, c_bit, c_bit64,"
      " c_char, c_varchar, c_text, c_binary, c_varbinary, c_blob, c_enum, c_set, c_json, c_uuid, c_geo";
  // 65 digits: 35 before the point, 30 after.
  const std::string dec65 = "12345678901234567890123456789012345.123456789012345678901234567891";
  const std::string text = "h\xC3\xA9llo \xE2\x98\x83 'single' \"double\" back\\slash \xF0\x9F\x98\x80";
  // Row 1: extremes through a text INSERT.
  run("INSERT INTO " + table_ + " (" + cols +
      ") VALUES (-128, 255, -32768, -8388608, -2147483648, 4294967295, -9223372036854775808,"
      " 18446744073709551615, TRUE, 0.1234567, 1.5, 0.1, 1.0005, -12.3400, '-" + dec65 +
      "', '2024-02-29', '-838:59:59', '-00:00:01.5', '2024-02-29 13:45:00', '2024-02-29 13:45:00.25',"
      " '2024-02-29 13:45:00.25', '2038-01-19 03:14:07.999999', 2024, b'1010101010', b'1111111111111111111111111111111111111111111111111111111111111111',"
      " 'ab', '" + "h\xC3\xA9llo" + "', 'long text', x'00ff10', x'', x'00010203', 'b', 'x,y', '{\"a\": [1, 2.5]}',"
      " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', ST_GeomFromText('POINT(1 2)'))");
  // Row 2: through a prepared INSERT, every parameter type.
  std::vector<Value> p = {std::int64_t{127}, std::int64_t{0}, std::int64_t{32767}, std::int64_t{8388607},
                          std::int64_t{2147483647}, std::int64_t{0}, std::int64_t{9223372036854775807LL},
                          Tagged{Type::decimal, "9223372036854775808"}, false, 16777217.0, -1.001, 1e300,
                          -1234.5678, Tagged{Type::decimal, "99999999.9999"}, Tagged{Type::decimal, dec65},
                          Tagged{Type::date, "0001-01-01"}, Tagged{Type::time, "838:59:59"},
                          Tagged{Type::time, "12:00:00.001"}, Tagged{Type::timestamp, "9999-12-31 23:59:59"},
                          Tagged{Type::timestamp, "2024-02-29 13:45:00"}, Tagged{Type::timestamp, "1970-01-01 00:00:00.000001"},
                          Null{}, std::int64_t{1901}, std::int64_t{1}, std::int64_t{1},
                          std::string(""), text, std::string(1000, 'z'), Bytes{std::string("\0\0\0", 3)},
                          Bytes{std::string("\xff", 1)}, Bytes{std::string("\0\x01\xFF\x80 raw", 8)},
                          std::string("a"), std::string(""), Tagged{Type::json, "[]"},
                          Tagged{Type::uuid, "00000000-0000-0000-0000-000000000000"}, Null{}};
  std::string ph;
  for (std::size_t i = 0; i < p.size(); ++i) ph += i ? ", ?" : "?";
  Outcome ins;
  run("INSERT INTO " + table_ + " (" + cols + ") VALUES (" + ph + ")", p, &ins);
  EXPECT_EQ(ins.affected, 1);
  EXPECT_EQ(ins.last_insert_id, std::optional<std::int64_t>(2));
  // Row 3: NULL everywhere.
  run("INSERT INTO " + table_ + " (id) VALUES (3)");

  CollectSink plain = run("SELECT id, " + cols + " FROM " + table_ + " WHERE id > 0 ORDER BY id");
  CollectSink prep = run("SELECT id, " + cols + " FROM " + table_ + " WHERE id > ? ORDER BY id", {std::int64_t{0}});
  ASSERT_EQ(plain.cols.size(), 37u);
  ASSERT_EQ(plain.rows.size(), 3u);
  ASSERT_EQ(prep.rows.size(), 3u);
  EXPECT_EQ(plain.cols, prep.cols);
  for (std::size_t r = 0; r < 3; ++r) {
    for (std::size_t i = 0; i < plain.cols.size(); ++i) {
      EXPECT_EQ(plain.rows[r][i], prep.rows[r][i]) << "row " << r << " column " << plain.cols[i].name;
    }
  }
  auto col = [&](const std::string& name) {
    for (std::size_t i = 0; i < plain.cols.size(); ++i) {
      if (plain.cols[i].name == name) return i;
    }
    ADD_FAILURE() << "no column " << name;
    return std::size_t{0};
  };
  struct Want {
    const char* name;
    Type type;
    const char* db_type;
    Value v1;
    Value v2;
  };
  const std::vector<Want> want = {
      {"c_tiny", Type::int64, "TINYINT", std::int64_t{-128}, std::int64_t{127}},
      {"c_utiny", Type::int64, "TINYINT UNSIGNED", std::int64_t{255}, std::int64_t{0}},
      {"c_small", Type::int64, "SMALLINT", std::int64_t{-32768}, std::int64_t{32767}},
      {"c_medium", Type::int64, "MEDIUMINT", std::int64_t{-8388608}, std::int64_t{8388607}},
      {"c_int", Type::int64, "INT", std::int64_t{-2147483648LL}, std::int64_t{2147483647}},
      {"c_uint", Type::int64, "INT UNSIGNED", std::int64_t{4294967295LL}, std::int64_t{0}},
      {"c_big", Type::int64, "BIGINT", std::int64_t{INT64_MIN}, std::int64_t{INT64_MAX}},
      {"c_ubig", Type::decimal, "BIGINT UNSIGNED", Tagged{Type::decimal, "18446744073709551615"},
       Tagged{Type::decimal, "9223372036854775808"}},
      {"c_bool", Type::int64, "TINYINT", std::int64_t{1}, std::int64_t{0}},
      {"c_float", Type::float64, "FLOAT", 0.123457, 16777200.0},
      {"c_float2", Type::float64, "FLOAT", 1.5, -1.001},
      {"c_double", Type::float64, "DOUBLE", 0.1, 1e300},
      {"c_double2", Type::float64, "DOUBLE", 1.0005, -1234.5678},
      {"c_dec", Type::decimal, "DECIMAL", Tagged{Type::decimal, "-12.3400"}, Tagged{Type::decimal, "99999999.9999"}},
      {"c_dec65", Type::decimal, "DECIMAL", Tagged{Type::decimal, "-" + dec65}, Tagged{Type::decimal, dec65}},
      {"c_date", Type::date, "DATE", Tagged{Type::date, "2024-02-29"}, Tagged{Type::date, "0001-01-01"}},
      {"c_time", Type::time, "TIME", Tagged{Type::time, "-838:59:59"}, Tagged{Type::time, "838:59:59"}},
      {"c_time3", Type::time, "TIME", Tagged{Type::time, "-00:00:01.500"}, Tagged{Type::time, "12:00:00.001"}},
      {"c_dt", Type::timestamp, "DATETIME", Tagged{Type::timestamp, "2024-02-29 13:45:00"},
       Tagged{Type::timestamp, "9999-12-31 23:59:59"}},
      {"c_dt3", Type::timestamp, "DATETIME", Tagged{Type::timestamp, "2024-02-29 13:45:00.250"},
       Tagged{Type::timestamp, "2024-02-29 13:45:00.000"}},
      {"c_dt6", Type::timestamp, "DATETIME", Tagged{Type::timestamp, "2024-02-29 13:45:00.250000"},
       Tagged{Type::timestamp, "1970-01-01 00:00:00.000001"}},
      {"c_year", Type::int64, "YEAR", std::int64_t{2024}, std::int64_t{1901}},
      {"c_bit", Type::int64, "BIT", std::int64_t{0x2AA}, std::int64_t{1}},
      {"c_bit64", Type::decimal, "BIT", Tagged{Type::decimal, "18446744073709551615"}, std::int64_t{1}},
      {"c_char", Type::text, "CHAR", std::string("ab"), std::string("")},
      {"c_varchar", Type::text, "VARCHAR", std::string("h\xC3\xA9llo"), text},
      {"c_text", Type::text, "TEXT", std::string("long text"), std::string(1000, 'z')},
      {"c_binary", Type::bytes, "BINARY", Bytes{std::string("\0\xff\x10", 3)}, Bytes{std::string("\0\0\0", 3)}},
      {"c_varbinary", Type::bytes, "VARBINARY", Bytes{}, Bytes{std::string("\xff", 1)}},
      {"c_blob", Type::bytes, "BLOB", Bytes{std::string("\0\x01\x02\x03", 4)}, Bytes{std::string("\0\x01\xFF\x80 raw", 8)}},
      {"c_enum", Type::text, "ENUM", std::string("b"), std::string("a")},
      {"c_set", Type::text, "SET", std::string("x,y"), std::string("")},
      {"c_json", Type::json, "JSON", Tagged{Type::json, "{\"a\": [1, 2.5]}"}, Tagged{Type::json, "[]"}},
      {"c_uuid", Type::uuid, "UUID", Tagged{Type::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
       Tagged{Type::uuid, "00000000-0000-0000-0000-000000000000"}},
  };
  for (const Want& w : want) {
    const std::size_t i = col(w.name);
    EXPECT_EQ(plain.cols[i].type, w.type) << w.name;
    EXPECT_EQ(plain.cols[i].db_type, w.db_type) << w.name;
    EXPECT_EQ(plain.rows[0][i], w.v1) << w.name;
    EXPECT_EQ(plain.rows[1][i], w.v2) << w.name;
    EXPECT_EQ(plain.rows[2][i], Value(Null{})) << w.name;
  }
  const std::size_t geo = col("c_geo");
  EXPECT_EQ(plain.cols[geo].type, Type::bytes);
  EXPECT_EQ(plain.cols[geo].db_type, "GEOMETRY");
  ASSERT_TRUE(std::holds_alternative<Bytes>(plain.rows[0][geo]));
  EXPECT_EQ(std::get<Bytes>(plain.rows[0][geo]).data.size(), 25u);  // SRID + WKB point
  const std::size_t ts = col("c_ts6");
  EXPECT_EQ(plain.cols[ts].type, Type::timestamp);
  EXPECT_EQ(plain.cols[ts].db_type, "TIMESTAMP");
  EXPECT_EQ(plain.rows[1][ts], Value(Null{}));
}

TEST_F(MysqlBackendTest, ExpressionsAreTheSameWithAndWithoutParameters) {
  // Values computed by the server, typed by it: the literal in the text form, a parameter bound
  // to the same value in the other.
  const std::vector<std::pair<std::string, Value>> cases = {
      {"CAST(18446744073709551615 AS UNSIGNED)", Tagged{Type::decimal, "18446744073709551615"}},
      {"CAST(5 AS UNSIGNED)", std::int64_t{5}},
      {"-9223372036854775807 - 1", std::int64_t{INT64_MIN}},
      {"CAST('1.1' AS FLOAT)", 1.1},
      {"CAST(16777217 AS FLOAT)", 16777200.0},
      {"CAST(0.000012345678 AS FLOAT)", 1.23457e-05},
      {"CAST(-3.4e38 AS FLOAT)", -3.4e38},
      {"1/3", Tagged{Type::decimal, "0.3333"}},
      {"1e0/3", 1.0 / 3},
      {"CAST(2.2250738585072014e-308 AS DOUBLE)", 2.2250738585072014e-308},
      {"CAST(1.0000000000000002 AS DOUBLE)", 1.0000000000000002},
      {"ROUND(2.5e0, 1)", 2.5},
      {"CAST('-838:59:59' AS TIME)", Tagged{Type::time, "-838:59:59"}},
      {"CAST('-837:59:59.5' AS TIME(6))", Tagged{Type::time, "-837:59:59.500000"}},
      {"CAST('2024-02-29 13:45:00.25' AS DATETIME(6))", Tagged{Type::timestamp, "2024-02-29 13:45:00.250000"}},
      {"CAST('2024-02-29 13:45:00.25' AS DATETIME(2))", Tagged{Type::timestamp, "2024-02-29 13:45:00.25"}},
      {"CAST('2024-02-29' AS DATE)", Tagged{Type::date, "2024-02-29"}},
      {"TIMESTAMP('2024-02-29', '01:02:03.5')", Tagged{Type::timestamp, "2024-02-29 01:02:03.5"}},
      {"TIMESTAMP('2024-02-29', '01:02:03')", Tagged{Type::timestamp, "2024-02-29 01:02:03"}},
      {"ADDTIME(CAST('10:00:00' AS TIME), '01:00:00')", Tagged{Type::time, "11:00:00"}},
      {"CAST(1.5 AS DECIMAL(65,30))", Tagged{Type::decimal, "1.500000000000000000000000000000"}},
      {"JSON_OBJECT('a', 1)", Tagged{Type::json, "{\"a\": 1}"}},
      {"b'1'", Bytes{std::string("\x01", 1)}},
      {"x'00ff'", Bytes{std::string("\0\xff", 2)}},
      {"CAST('ab' AS BINARY)", Bytes{std::string("ab")}},
      {"REPEAT('y', 300)", std::string(300, 'y')},
      {"NULL", Null{}},
      {"CONNECTION_ID() > 0", std::int64_t{1}},
  };
  for (const auto& [expr, want] : cases) {
    CollectSink t = run("SELECT " + expr);
    CollectSink p = run("SELECT " + expr + ", ?", {std::int64_t{0}});
    ASSERT_EQ(t.rows.size(), 1u) << expr;
    ASSERT_EQ(p.rows.size(), 1u) << expr;
    EXPECT_EQ(t.rows[0][0], want) << expr;
    EXPECT_EQ(p.rows[0][0], want) << expr << " (prepared)";
    EXPECT_EQ(t.cols[0].type, p.cols[0].type) << expr;
    EXPECT_EQ(t.cols[0].db_type, p.cols[0].db_type) << expr;
  }
  // The column of a BIGINT UNSIGNED result is not typed int64, even when its value fits.
  CollectSink u = run("SELECT LAST_INSERT_ID()");
  EXPECT_EQ(u.cols[0].type, Type::decimal);
  EXPECT_EQ(u.cols[0].db_type, "BIGINT UNSIGNED");
}

TEST_F(MysqlBackendTest, ParametersKeepTheirTypes) {
  const std::string dec65 = "-12345678901234567890123456789012345.123456789012345678901234567890";
  CollectSink d = run("SELECT ?, ? + 0", {Tagged{Type::decimal, dec65}, Tagged{Type::decimal, "1.10"}});
  ASSERT_EQ(d.rows.size(), 1u);
  EXPECT_EQ(d.rows[0][0], Value(Tagged{Type::decimal, dec65}));
  EXPECT_EQ(d.rows[0][1], Value(Tagged{Type::decimal, "1.10"}));

  // A 300 KiB text parameter (multi-byte characters included) is text in the connection's
  // character set; a bytes parameter is binary.
  std::string big;
  while (big.size() < 300 * 1024) big += "abc\xC3\xA9\xE2\x98\x83\xF0\x9F\x98\x80";
  CollectSink t = run("SELECT ?, CHARSET(?), CHAR_LENGTH(?), ?", {big, big, big, std::int64_t{7}});
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.cols[0].type, Type::text);
  EXPECT_TRUE(t.rows[0][0] == Value(big)) << "the long value came back altered";
  EXPECT_EQ(t.rows[0][1], Value(std::string("utf8mb4")));
  EXPECT_EQ(t.rows[0][3], Value(std::int64_t{7}));
  CollectSink b = run("SELECT ?, CHARSET(?), ?", {Bytes{std::string("\0\xff", 2)}, Bytes{std::string("x")}, true});
  ASSERT_EQ(b.rows.size(), 1u);
  EXPECT_EQ(b.rows[0][0], Value(Bytes{std::string("\0\xff", 2)}));
  EXPECT_EQ(b.rows[0][1], Value(std::string("binary")));
  EXPECT_EQ(b.rows[0][2], Value(std::int64_t{1}));
  CollectSink n = run("SELECT ? IS NULL, ?, ?", {Null{}, 2.5, std::string()});
  ASSERT_EQ(n.rows.size(), 1u);
  EXPECT_EQ(n.rows[0][0], Value(std::int64_t{1}));
  EXPECT_EQ(n.rows[0][1], Value(2.5));
  EXPECT_EQ(n.rows[0][2], Value(std::string()));

  // Longer than one piece of long data, and longer than the server's max_allowed_packet: the
  // first arrives whole, the second fails the statement, not the connection.
  const std::string five_mib(5 << 20, 'q');
  CollectSink l = run("SELECT LENGTH(?), ?, CHARSET(?)", {five_mib, std::int64_t{1}, five_mib});
  ASSERT_EQ(l.rows.size(), 1u);
  EXPECT_EQ(l.rows[0][0], Value(std::int64_t{5 << 20}));
  EXPECT_EQ(l.rows[0][2], Value(std::string("utf8mb4")));
  const std::int64_t max_packet = std::get<std::int64_t>(scalar("SELECT @@max_allowed_packet"));
  const Bytes huge{std::string(static_cast<std::size_t>(max_packet) + (1 << 20), 'h')};
  BackendError too_long = fail("SELECT LENGTH(?)", {huge});
  EXPECT_FALSE(too_long.connection_broken) << too_long.message;
  EXPECT_EQ(scalar("SELECT ?", {std::int64_t{9}}), Value(std::int64_t{9}));

  // Long values in a table, both ways, longer than any buffer the first rows needed.
  run("CREATE TABLE " + table_ + " (id INT PRIMARY KEY, t LONGTEXT, b LONGBLOB, d DECIMAL(65,30))");
  run("INSERT INTO " + table_ + " VALUES (1, 'short', x'00', 1), (2, ?, ?, ?)",
      {big, Bytes{std::string(200000, '\x01')}, Tagged{Type::decimal, dec65}});
  for (bool with_param : {false, true}) {
    CollectSink r = with_param ? run("SELECT t, b, d FROM " + table_ + " WHERE id > ? ORDER BY id", {std::int64_t{0}})
                               : run("SELECT t, b, d FROM " + table_ + " ORDER BY id");
    ASSERT_EQ(r.rows.size(), 2u);
    EXPECT_EQ(r.rows[0][0], Value(std::string("short")));
    EXPECT_TRUE(r.rows[1][0] == Value(big)) << with_param;
    EXPECT_TRUE(r.rows[1][1] == Value(Bytes{std::string(200000, '\x01')})) << with_param;
    EXPECT_EQ(r.rows[1][2], Value(Tagged{Type::decimal, dec65})) << with_param;
  }
}

TEST_F(MysqlBackendTest, ParameterCountMismatchAndSyntaxErrorsAreSqlErrors) {
  BackendError m = fail("SELECT ?, ?", {std::int64_t{1}});
  EXPECT_EQ(m.code, protocol::ErrorCode::sql_error);
  EXPECT_FALSE(m.connection_broken);
  EXPECT_NE(m.message.find("2 placeholders"), std::string::npos) << m.message;
  BackendError s = fail("SELEKT ?", {std::int64_t{1}});
  EXPECT_EQ(s.code, protocol::ErrorCode::sql_error);
  EXPECT_EQ(s.number, std::optional<std::int64_t>(1064));
  EXPECT_EQ(s.sqlstate, "42000");
  BackendError multi = fail("SELECT 1; SELECT 2");
  EXPECT_EQ(multi.number, std::optional<std::int64_t>(1064));
  BackendError missing = fail("SELECT * FROM mybe_no_such_table");
  EXPECT_EQ(missing.number, std::optional<std::int64_t>(1146));
  EXPECT_EQ(missing.sqlstate, "42S02");
  EXPECT_EQ(scalar("SELECT ?", {std::int64_t{3}}), Value(std::int64_t{3}));
}

TEST_F(MysqlBackendTest, SendCopiesTheStatement) {
  std::string sql = "SELECT ?, CONCAT(?, 'x')";
  std::vector<Value> params = {std::int64_t{1}, std::string("a")};
  conn_->send(Statement{sql, params});
  EXPECT_EQ(conn_->outstanding(), 1);
  sql = "SELECT 'changed'";
  params[0] = std::int64_t{2};
  params[1] = std::string("b");
  CollectSink s;
  Outcome o = run_sync(io_, conn_->receive(s));
  ASSERT_FALSE(o.error.has_value()) << o.error->message;
  EXPECT_EQ(conn_->outstanding(), 0);
  ASSERT_EQ(s.rows.size(), 1u);
  EXPECT_EQ(s.rows[0][0], Value(std::int64_t{1}));
  EXPECT_EQ(s.rows[0][1], Value(std::string("ax")));
}

// ------------------------------------------------------------------ outcomes

TEST_F(MysqlBackendTest, InsertIdsAndRowCountsAreWhatADirectClientSees) {
  run("CREATE TABLE " + table_ + " (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
  // The same sequence on a plain blocking client, for the expected values.
  MYSQL* direct = mysql_init(nullptr);
  ASSERT_NE(mysql_real_connect(direct, url_.host.c_str(), url_.user.c_str(), url_.password.c_str(),
                               url_.database.c_str(), url_.port.value_or(3306), nullptr, 0),
            nullptr)
      << mysql_error(direct);
  auto direct_pair = [&](const std::string& sql) {
    EXPECT_EQ(mysql_query(direct, sql.c_str()), 0) << mysql_error(direct);
    MYSQL_RES* r = mysql_store_result(direct);
    if (r == nullptr) return std::make_pair(std::int64_t{-99}, std::int64_t{-99});
    MYSQL_ROW row = mysql_fetch_row(r);
    auto out = std::make_pair(std::int64_t{std::stoll(row[0])}, std::int64_t{std::stoll(row[1])});
    mysql_free_result(r);
    return out;
  };
  run("CREATE TABLE " + table_ + "_b (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
  ASSERT_EQ(mysql_query(direct, ("INSERT INTO " + table_ + "_b (v) VALUES (1), (2), (3)").c_str()), 0);
  const auto want_multi = direct_pair("SELECT LAST_INSERT_ID(), ROW_COUNT()");
  ASSERT_EQ(mysql_query(direct, ("UPDATE " + table_ + "_b SET v = v WHERE id = 1").c_str()), 0);
  const auto want_noop = direct_pair("SELECT LAST_INSERT_ID(), ROW_COUNT()");
  mysql_close(direct);

  auto pair_of = [&](const std::string& sql, const std::vector<Value>& params) {
    CollectSink s = run(sql, params);
    EXPECT_EQ(s.rows.size(), 1u);
    auto num = [](const Value& v) -> std::int64_t {
      if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
      if (const auto* t = std::get_if<Tagged>(&v)) return std::stoll(t->text);
      return -99;
    };
    return std::make_pair(num(s.rows.at(0).at(0)), num(s.rows.at(0).at(1)));
  };
  for (bool with_param : {false, true}) {
    Outcome o;
    if (with_param) {
      run("INSERT INTO " + table_ + " (v) VALUES (?), (?), (?)", {std::int64_t{1}, std::int64_t{2}, std::int64_t{3}}, &o);
    } else {
      run("INSERT INTO " + table_ + " (v) VALUES (1), (2), (3)", {}, &o);
    }
    const std::int64_t first = with_param ? 4 : 1;
    EXPECT_EQ(o.affected, 3);
    // A multi-row INSERT reports the first generated id, like LAST_INSERT_ID().
    EXPECT_EQ(o.last_insert_id, std::optional<std::int64_t>(first));
    EXPECT_EQ(o.tx, TxStatus::idle);
    const auto got = with_param ? pair_of("SELECT LAST_INSERT_ID(), ROW_COUNT(), ?", {std::int64_t{0}})
                                : pair_of("SELECT LAST_INSERT_ID(), ROW_COUNT()", {});
    EXPECT_EQ(got.first, first);
    EXPECT_EQ(got.second, want_multi.second);
    EXPECT_EQ(want_multi, std::make_pair(std::int64_t{1}, std::int64_t{3}));

    // Changed rows, not matched rows; no insert id for an UPDATE.
    Outcome u;
    run("UPDATE " + table_ + " SET v = v WHERE id = ?", {std::int64_t{first}}, &u);
    EXPECT_EQ(u.affected, 0);
    EXPECT_FALSE(u.last_insert_id.has_value());
    const auto after = pair_of("SELECT LAST_INSERT_ID(), ROW_COUNT()", {});
    EXPECT_EQ(after.first, first);
    EXPECT_EQ(after.second, want_noop.second);
    run("UPDATE " + table_ + " SET v = v + 10 WHERE v <= 2", {}, &u);
    EXPECT_EQ(u.affected, 2);
  }
  Outcome s;
  run("SELECT * FROM " + table_, {}, &s);
  EXPECT_EQ(s.affected, 6);
  EXPECT_EQ(s.row_count, 6);
  EXPECT_FALSE(s.last_insert_id.has_value());
  Outcome ddl;
  run("CREATE TABLE " + table_ + "_x (a INT)", {}, &ddl);
  EXPECT_EQ(ddl.affected, 0);
  run("DROP TABLE " + table_ + "_x");
}

TEST_F(MysqlBackendTest, TransactionStatusComesFromTheWire) {
  run("CREATE TABLE " + table_ + " (id INT PRIMARY KEY, v INT) ENGINE=InnoDB");
  Outcome o;
  run("START TRANSACTION", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("INSERT INTO " + table_ + " VALUES (?, 1)", {std::int64_t{1}}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("SELECT * FROM " + table_, {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  fail("SELECT * FROM mybe_no_such_table", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx) << "a failed statement leaves the transaction open";
  run("COMMIT", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  run("BEGIN", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("INSERT INTO " + table_ + " VALUES (2, 2)", {}, &o);
  run("ROLLBACK", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM " + table_), Value(std::int64_t{1}));
  // With autocommit off, a statement opens a transaction (the EOF of a prepared result says so).
  run("SET autocommit = 0", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  EXPECT_TRUE(o.session_state_changed);
  run("SELECT v FROM " + table_ + " WHERE id = ?", {std::int64_t{1}}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("COMMIT", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  // An error packet has no status flags; with autocommit off the failed statement may have
  // opened a transaction, so it is taken to have.
  fail("SELECT * FROM mybe_no_such_table", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("COMMIT", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  run("SET autocommit = 1", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  fail("SELECT * FROM mybe_no_such_table", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
}

TEST_F(MysqlBackendTest, ADeadlockEndsTheVictimsTransaction) {
  run("CREATE TABLE " + table_ + " (id INT PRIMARY KEY, v INT) ENGINE=InnoDB");
  run("INSERT INTO " + table_ + " VALUES (1, 0), (2, 0)");
  auto other = open();
  ASSERT_NE(other, nullptr);
  run("BEGIN");
  run("UPDATE " + table_ + " SET v = 1 WHERE id = 1");
  run("BEGIN", {}, nullptr, other.get());
  run("UPDATE " + table_ + " SET v = 2 WHERE id = 2", {}, nullptr, other.get());
  // Each now waits for the other's row.
  std::optional<Outcome> a, b;
  CollectSink sa, sb;
  const std::string upd2 = "UPDATE " + table_ + " SET v = 1 WHERE id = ?";
  const std::vector<Value> two = {std::int64_t{2}};
  const std::string upd1 = "UPDATE " + table_ + " SET v = 2 WHERE id = 1";
  asio::co_spawn(io_, conn_->execute(Statement{upd2, two}, sa), [&](std::exception_ptr, Outcome o) { a = std::move(o); });
  asio::steady_timer t(io_, std::chrono::milliseconds(200));
  t.async_wait([&](const boost::system::error_code&) {
    asio::co_spawn(io_, other->execute(Statement{upd1, {}}, sb), [&](std::exception_ptr, Outcome o) { b = std::move(o); });
  });
  io_.restart();
  io_.run();
  ASSERT_TRUE(a && b);
  const bool a_victim = a->error.has_value();
  const Outcome& victim = a_victim ? *a : *b;
  const Outcome& survivor = a_victim ? *b : *a;
  ASSERT_TRUE(victim.error.has_value());
  EXPECT_EQ(victim.error->number, std::optional<std::int64_t>(1213)) << victim.error->message;
  EXPECT_EQ(victim.error->sqlstate, "40001");
  EXPECT_EQ(victim.tx, TxStatus::idle) << "InnoDB rolled the victim's transaction back";
  EXPECT_FALSE(survivor.error.has_value()) << survivor.error->message;
  EXPECT_EQ(survivor.tx, TxStatus::in_tx);
  Outcome o;
  run("COMMIT", {}, &o, a_victim ? other.get() : conn_.get());
  EXPECT_EQ(o.tx, TxStatus::idle);
  run("ROLLBACK", {}, &o, a_victim ? conn_.get() : other.get());
  EXPECT_EQ(o.tx, TxStatus::idle);

  // A lock wait timeout rolls back only the statement (innodb_rollback_on_timeout is off).
  ASSERT_EQ(scalar("SELECT @@innodb_rollback_on_timeout"), Value(std::int64_t{0}));
  run("BEGIN");
  run("UPDATE " + table_ + " SET v = 3 WHERE id = 1");
  run("SET SESSION innodb_lock_wait_timeout = 1", {}, nullptr, other.get());
  run("BEGIN", {}, nullptr, other.get());
  run("UPDATE " + table_ + " SET v = 4 WHERE id = 2", {}, nullptr, other.get());
  CollectSink w;
  Outcome timeout = exec(*other, "UPDATE " + table_ + " SET v = 4 WHERE id = ?", {std::int64_t{1}}, w);
  ASSERT_TRUE(timeout.error.has_value());
  EXPECT_EQ(timeout.error->number, std::optional<std::int64_t>(1205));
  EXPECT_EQ(timeout.tx, TxStatus::in_tx);
  run("ROLLBACK", {}, nullptr, other.get());
  run("ROLLBACK");
  run_void(io_, other->close());
}

TEST_F(MysqlBackendTest, AnErrorWhileFetchingKeepsItsSqlstate) {
  for (bool with_param : {false, true}) {
    CountingSink k;
    k.full_every = 1 << 30;
    k.next_full = 1 << 30;
    const std::string sql = std::string("SELECT seq, IF(seq = 50000, (SELECT 1 UNION SELECT 2), seq) FROM seq_1_to_100000") +
                            (with_param ? " WHERE seq > ?" : "");
    Outcome o = exec(*conn_, sql, with_param ? std::vector<Value>{std::int64_t{0}} : std::vector<Value>{}, k);
    ASSERT_TRUE(o.error.has_value()) << "rows: " << k.n;
    EXPECT_EQ(o.error->number, std::optional<std::int64_t>(1242)) << o.error->message;
    EXPECT_EQ(o.error->sqlstate, "21000") << o.error->message;
    EXPECT_EQ(o.error->code, protocol::ErrorCode::sql_error);
    EXPECT_FALSE(o.error->interrupted);
    EXPECT_FALSE(o.error->connection_broken);
    EXPECT_GT(k.n, 0) << "the error should come after some rows";
    EXPECT_LT(k.n, 100000);
    EXPECT_EQ(o.tx, TxStatus::idle);
    EXPECT_EQ(scalar("SELECT 1"), Value(std::int64_t{1}));
    EXPECT_EQ(scalar("SELECT ?", {std::int64_t{2}}), Value(std::int64_t{2}));
  }
}

TEST_F(MysqlBackendTest, SessionStateChangesAreReported) {
  struct Case {
    std::string sql;
    std::vector<Value> params;
    bool changed;
  };
  run("CREATE TABLE " + table_ + " (a INT)");
  const std::vector<Case> cases = {
      {"SELECT 1", {}, false},
      {"SELECT ?", {std::int64_t{1}}, false},
      {"INSERT INTO " + table_ + " VALUES (1)", {}, false},
      {"UPDATE " + table_ + " SET a = ?", {std::int64_t{2}}, false},
      {"SET @x = 1", {}, true},
      {"SET @y = ?", {std::int64_t{1}}, true},
      {"SET SESSION sql_mode = 'ANSI_QUOTES'", {}, true},
      {"SET SESSION wait_timeout = 1234", {}, true},
      {"CREATE TEMPORARY TABLE mybe_tmp (a INT)", {}, true},
      {"PREPARE p FROM 'SELECT 1'", {}, true},
      {"USE " + url_.database, {}, true},
      {"DO 1", {}, false},
  };
  for (const Case& c : cases) {
    Outcome o;
    run(c.sql, c.params, &o);
    EXPECT_EQ(o.session_state_changed, c.changed) << c.sql;
  }
}

// ------------------------------------------------------------------ streaming

TEST_F(MysqlBackendTest, AMillionRowsStreamWithBoundedMemory) {
  for (bool with_param : {false, true}) {
    CountingSink k;
    const long before = rss_kb();
    const auto t0 = Clock::now();
    Outcome o = exec(*conn_, std::string("SELECT seq, MD5(seq) FROM seq_1_to_1000000") + (with_param ? " WHERE seq > ?" : ""),
                     with_param ? std::vector<Value>{std::int64_t{0}} : std::vector<Value>{}, k);
    const auto took = ms_since(t0);
    ASSERT_FALSE(o.error.has_value()) << o.error->message;
    EXPECT_EQ(k.n, 1000000);
    EXPECT_TRUE(k.in_order);
    EXPECT_EQ(o.row_count, 1000000);
    EXPECT_EQ(o.affected, 1000000);
    EXPECT_GE(k.drains, 240);
    const long growth = k.max_rss - before;
    std::cout << "[          ] " << (with_param ? "prepared" : "text") << ": 1,000,000 rows in " << took
              << " ms, RSS before " << before << " kB, max during " << k.max_rss << " kB (growth " << growth
              << " kB)\n";
    if (!kAsan) {
      EXPECT_LT(growth, 4 * 1024);
    }
  }
}

TEST_F(MysqlBackendTest, StoppingMidStreamLeavesTheConnectionUsable) {
  for (bool with_param : {false, true}) {
    CollectSink k;
    k.stop_after_rows = 10;
    const auto t0 = Clock::now();
    Outcome o = exec(*conn_, std::string("SELECT seq, MD5(seq) FROM seq_1_to_1000000") + (with_param ? " WHERE seq > ?" : ""),
                     with_param ? std::vector<Value>{std::int64_t{0}} : std::vector<Value>{}, k);
    const auto took = ms_since(t0);
    EXPECT_FALSE(o.error.has_value()) << o.error->message;
    EXPECT_TRUE(o.stopped);
    EXPECT_EQ(o.row_count, 10);
    EXPECT_EQ(k.rows.size(), 10u);
    std::cout << "[          ] " << (with_param ? "prepared" : "text") << ": stop after 10 of 1,000,000 rows took "
              << took << " ms\n";
    EXPECT_LT(took, 3000);
    EXPECT_EQ(o.tx, TxStatus::idle);
    EXPECT_EQ(scalar("SELECT 2"), Value(std::int64_t{2}));
    EXPECT_EQ(scalar("SELECT ?", {std::int64_t{3}}), Value(std::int64_t{3}));
    EXPECT_TRUE(conn_->looks_alive());
  }
  // A short result abandoned near its end is simply read out.
  CollectSink k;
  k.stop_after_rows = 5;
  Outcome o = exec(*conn_, "SELECT seq FROM seq_1_to_20", {}, k);
  EXPECT_TRUE(o.stopped);
  EXPECT_FALSE(o.error.has_value());
  EXPECT_EQ(scalar("SELECT SLEEP(0.2)"), Value(std::int64_t{0}));
}

TEST_F(MysqlBackendTest, ARowLargerThanTheSinkTakesIsRefused) {
  for (bool with_param : {false, true}) {
    CollectSink k;
    k.max_row = 1000;
    Outcome o = exec(*conn_,
                     std::string("SELECT seq, REPEAT('x', IF(seq = 5, 5000, 10)) FROM seq_1_to_100000") +
                         (with_param ? " WHERE seq > ?" : ""),
                     with_param ? std::vector<Value>{std::int64_t{0}} : std::vector<Value>{}, k);
    ASSERT_TRUE(o.error.has_value());
    EXPECT_TRUE(o.row_too_large);
    EXPECT_EQ(o.error->code, protocol::ErrorCode::bad_request);
    EXPECT_FALSE(o.error->connection_broken);
    EXPECT_EQ(k.rows.size(), 4u);
    EXPECT_EQ(o.row_count, 4);
    EXPECT_EQ(scalar("SELECT 2"), Value(std::int64_t{2}));
    EXPECT_EQ(scalar("SELECT ?", {std::int64_t{3}}), Value(std::int64_t{3}));
  }
}

TEST_F(MysqlBackendTest, CallReturnsItsFirstResultAndStaysInSync) {
  run("DROP PROCEDURE IF EXISTS mybe_proc");
  run("CREATE PROCEDURE mybe_proc(IN n INT) BEGIN SELECT seq FROM seq_1_to_10 WHERE seq <= n; SELECT 'second'; END");
  for (bool with_param : {false, true}) {
    CollectSink s = with_param ? run("CALL mybe_proc(?)", {std::int64_t{3}}) : run("CALL mybe_proc(3)");
    ASSERT_EQ(s.rows.size(), 3u) << with_param;
    EXPECT_EQ(s.rows[2][0], Value(std::int64_t{3}));
    EXPECT_EQ(scalar("SELECT 5"), Value(std::int64_t{5}));
    EXPECT_EQ(scalar("SELECT ?", {std::int64_t{6}}), Value(std::int64_t{6}));
  }
  // A client that stops reading a CALL's rows does not stop the procedure: its later writes land.
  run("CREATE TABLE " + table_ + " (a INT)");
  run("DROP PROCEDURE IF EXISTS mybe_proc2");
  run("CREATE PROCEDURE mybe_proc2() BEGIN SELECT seq FROM seq_1_to_200000; INSERT INTO " + table_ +
      " VALUES (1); END");
  CollectSink k;
  k.stop_after_rows = 10;
  Outcome o = exec(*conn_, "CALL mybe_proc2()", {}, k);
  EXPECT_TRUE(o.stopped);
  EXPECT_FALSE(o.error.has_value()) << o.error->message;
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM " + table_), Value(std::int64_t{1}));
  run("DROP PROCEDURE mybe_proc");
  run("DROP PROCEDURE mybe_proc2");
}

// ------------------------------------------------------------------ cancel, abort

TEST_F(MysqlBackendTest, CancelStopsASleepPromptly) {
  for (bool with_param : {false, true}) {
    CollectSink s;
    long long took = 0;
    const std::string sql = with_param ? "SELECT SLEEP(10), ?" : "SELECT SLEEP(10)";
    const std::vector<Value> params = with_param ? std::vector<Value>{std::int64_t{1}} : std::vector<Value>{};
    Outcome o = run_with(conn_->execute(Statement{sql, params}, s), std::chrono::milliseconds(200),
                         [&] { conn_->cancel(); }, &took);
    std::cout << "[          ] cancelled after 200 ms, the statement returned after " << took << " ms\n";
    expect_interrupted(o);
    EXPECT_LT(took, 1500);
    EXPECT_EQ(o.tx, TxStatus::idle);
    EXPECT_EQ(scalar("SELECT 1"), Value(std::int64_t{1}));
  }
  // From another thread, inside a transaction (which survives it).
  run("BEGIN");
  CollectSink s;
  std::thread t([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    conn_->cancel();
  });
  const auto t0 = Clock::now();
  Outcome o = exec(*conn_, "SELECT SLEEP(10)", {}, s);
  t.join();
  expect_interrupted(o);
  EXPECT_LT(ms_since(t0), 1500);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("ROLLBACK");
}

// BENCHMARK() stopped by KILL QUERY returns 0 without any error: only our record of the KILL
// tells it apart from a completed one.
TEST_F(MysqlBackendTest, ACancelledBenchmarkIsNotAResult) {
  for (bool with_param : {false, true}) {
    CollectSink s;
    long long took = 0;
    const std::string sql = with_param ? "SELECT BENCHMARK(5000000000, MD5(?))" : "SELECT BENCHMARK(5000000000, MD5('x'))";
    const std::vector<Value> params = with_param ? std::vector<Value>{std::string("x")} : std::vector<Value>{};
    Outcome o = run_with(conn_->execute(Statement{sql, params}, s), std::chrono::milliseconds(200),
                         [&] { conn_->cancel(); }, &took);
    expect_interrupted(o);
    EXPECT_LT(took, 2000);
    EXPECT_EQ(scalar("SELECT 1"), Value(std::int64_t{1}));
  }
}

TEST_F(MysqlBackendTest, CancelsAtRandomMomentsNeverYieldAPlainInterruptedResult) {
  std::mt19937 rng(12345);
  int completed = 0, interrupted = 0;
  const int fds = open_fds();
  for (int i = 0; i < 200; ++i) {
    const bool with_param = i % 2 == 1;
    const std::string sql = with_param ? "SELECT SLEEP(0.02 + ?)" : "SELECT SLEEP(0.02)";
    const std::vector<Value> params = with_param ? std::vector<Value>{0.0} : std::vector<Value>{};
    CollectSink s;
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 40)(rng));
    Outcome o = run_with(conn_->execute(Statement{sql, params}, s), delay, [&] { conn_->cancel(); });
    if (!o.error) {
      // SLEEP() returns 1 only when a KILL reached it: that must come back as interrupted.
      ASSERT_EQ(s.rows.size(), 1u);
      EXPECT_EQ(s.rows[0][0], Value(std::int64_t{0})) << "iteration " << i;
      ++completed;
      continue;
    }
    EXPECT_TRUE(o.error->interrupted) << o.error->message;
    EXPECT_EQ(o.error->number, std::optional<std::int64_t>(1317)) << o.error->message;
    ASSERT_FALSE(o.error->connection_broken) << o.error->message;
    ++interrupted;
  }
  std::cout << "[          ] 200 cancels at random moments: " << completed << " completed, " << interrupted
            << " interrupted\n";
  EXPECT_GT(interrupted, 0);
  EXPECT_GT(completed, 0);
  EXPECT_EQ(scalar("SELECT SLEEP(0.1)"), Value(std::int64_t{0}));
  EXPECT_EQ(open_fds(), fds) << "every side connection of a KILL is closed";
}

TEST_F(MysqlBackendTest, ACancelWithNothingRunningDoesNotHitTheNextStatement) {
  conn_->cancel();  // before any statement
  EXPECT_EQ(scalar("SELECT SLEEP(0.3)"), Value(std::int64_t{0}));
  conn_->cancel();  // after one finished
  conn_->cancel();
  EXPECT_EQ(scalar("SELECT SLEEP(0.3), ?", {std::int64_t{1}}), Value(std::int64_t{0}));
  // A cancel that races with the end of its statement never reaches the one after it.
  for (int i = 0; i < 20; ++i) {
    CollectSink s;
    run_with(conn_->execute(Statement{"SELECT SLEEP(0.03)", {}}, s), std::chrono::milliseconds(25 + i % 10),
             [&] { conn_->cancel(); });
    EXPECT_EQ(scalar("SELECT SLEEP(0.1)"), Value(std::int64_t{0})) << "iteration " << i;
  }
  // A connection destroyed while its cancel is under way.
  auto other = open();
  ASSERT_NE(other, nullptr);
  CollectSink s;
  Outcome o = run_with(other->execute(Statement{"SELECT SLEEP(5)", {}}, s), std::chrono::milliseconds(100), [&] {
    other->cancel();
    other->abort();
  });
  EXPECT_TRUE(o.error.has_value());
  other.reset();
  io_.restart();
  io_.run();  // the KILL finishes on its own
}

TEST_F(MysqlBackendTest, AbortEndsAPendingReceiveAtOnce) {
  CollectSink s;
  long long took = 0;
  Outcome o = run_with(conn_->execute(Statement{"SELECT SLEEP(10)", {}}, s), std::chrono::milliseconds(200),
                       [&] { conn_->abort(); }, &took);
  ASSERT_TRUE(o.error.has_value());
  EXPECT_TRUE(o.error->connection_broken);
  EXPECT_EQ(o.error->code, protocol::ErrorCode::backend_unavailable);
  EXPECT_EQ(o.tx, TxStatus::unknown);
  EXPECT_LT(took, 1000);
  EXPECT_FALSE(conn_->looks_alive());
  EXPECT_FALSE(run_sync(io_, conn_->ping()));
  CollectSink s2;
  Outcome again = exec(*conn_, "SELECT 1", {}, s2);
  ASSERT_TRUE(again.error.has_value());
  EXPECT_TRUE(again.error->connection_broken);
  run_void(io_, conn_->close());
  conn_ = open();

  // Aborted while a prepared statement streams.
  CollectSink k;
  Outcome p = run_with(conn_->execute(Statement{"SELECT seq, SLEEP(0.001) FROM seq_1_to_100000 WHERE seq > ?",
                                                std::vector<Value>{std::int64_t{0}}},
                                      k),
                       std::chrono::milliseconds(200), [&] { conn_->abort(); }, &took);
  ASSERT_TRUE(p.error.has_value());
  EXPECT_TRUE(p.error->connection_broken);
  EXPECT_LT(took, 1000);
  conn_.reset();  // destroyed without close(): must not block or leak
  conn_ = open();
}

TEST_F(MysqlBackendTest, AKilledSessionLooksDeadAndBreaks) {
  EXPECT_TRUE(conn_->looks_alive());
  const std::int64_t id = connection_id(*conn_);
  auto killer = open();
  ASSERT_NE(killer, nullptr);
  run("KILL " + std::to_string(id), {}, nullptr, killer.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(conn_->looks_alive());
  CollectSink s;
  Outcome o = exec(*conn_, "SELECT 1", {}, s);
  ASSERT_TRUE(o.error.has_value());
  EXPECT_EQ(o.error->code, protocol::ErrorCode::backend_unavailable) << o.error->message;
  EXPECT_TRUE(o.error->connection_broken);
  EXPECT_EQ(o.tx, TxStatus::unknown);
  run_void(io_, conn_->close());

  // ping() finds it out too.
  conn_ = open();
  run("KILL " + std::to_string(connection_id(*conn_)), {}, nullptr, killer.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(run_sync(io_, conn_->ping()));
  run_void(io_, conn_->close());
  conn_ = open();
  run_void(io_, killer->close());
}

// ------------------------------------------------------------------ reset, statement cache

TEST_F(MysqlBackendTest, ResetClearsTheSession) {
  const std::int64_t id = connection_id(*conn_);
  run("SET @v = 1");
  run("SET SESSION wait_timeout = 123");
  run("SET NAMES latin1");
  run("CREATE TEMPORARY TABLE mybe_tmp (a INT)");
  run("PREPARE p FROM 'SELECT 1'");
  run("SELECT GET_LOCK('mybe_reset_lock', 0)");
  EXPECT_EQ(scalar("SELECT ? + 1", {std::int64_t{1}}), Value(std::int64_t{2}));
  EXPECT_EQ(stats().size, 1u);

  conn_->send_reset();
  CollectSink s;
  Outcome r = run_sync(io_, conn_->receive(s));
  ASSERT_FALSE(r.error.has_value()) << r.error->message;
  EXPECT_EQ(r.tx, TxStatus::idle);
  EXPECT_FALSE(r.session_state_changed);
  EXPECT_EQ(stats().size, 0u);

  EXPECT_EQ(connection_id(*conn_), id) << "the same session, reset";
  EXPECT_EQ(scalar("SELECT @v"), Value(Null{}));
  EXPECT_NE(scalar("SELECT @@SESSION.wait_timeout"), Value(std::int64_t{123}));
  EXPECT_EQ(scalar("SELECT @@character_set_client"), Value(std::string("utf8mb4")));
  EXPECT_EQ(scalar("SELECT @@session.session_track_state_change"), Value(std::int64_t{1}));
  BackendError gone = fail("SELECT * FROM mybe_tmp");
  EXPECT_FALSE(gone.connection_broken);
  fail("EXECUTE p");
  auto other = open();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(scalar("SELECT IS_FREE_LOCK('mybe_reset_lock')", {}, other.get()), Value(std::int64_t{1}));
  run_void(io_, other->close());
  // The statement cache starts over and works.
  const auto misses = stats().misses;
  EXPECT_EQ(scalar("SELECT ? + 1", {std::int64_t{2}}), Value(std::int64_t{3}));
  EXPECT_EQ(stats().misses, misses + 1);
  EXPECT_EQ(scalar("SELECT ? + 1", {std::int64_t{3}}), Value(std::int64_t{4}));
  Outcome o;
  run("SET @x = 1", {}, &o);
  EXPECT_TRUE(o.session_state_changed);
  // A reset also ends an open transaction and works with statements cancelled before.
  run("BEGIN");
  conn_->send_reset();
  r = run_sync(io_, conn_->receive(s));
  ASSERT_FALSE(r.error.has_value());
  EXPECT_EQ(r.tx, TxStatus::idle);

  constexpr int kRounds = 50;
  const auto t0 = Clock::now();
  for (int i = 0; i < kRounds; ++i) {
    run("SET @v = 1");
    conn_->send_reset();
    r = run_sync(io_, conn_->receive(s));
    ASSERT_FALSE(r.error.has_value());
  }
  std::cout << "[          ] a reset takes " << ms_since(t0) * 1000 / kRounds << " us on average\n";
}

TEST_F(MysqlBackendTest, PreparedStatementsAreCachedAndEvicted) {
  const auto s0 = stats();
  EXPECT_EQ(s0.size, 0u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(scalar("SELECT ? * 2", {std::int64_t{i}}), Value(std::int64_t{2 * i}));
  auto s1 = stats();
  EXPECT_EQ(s1.misses, 1u);
  EXPECT_EQ(s1.hits, 4u);
  EXPECT_EQ(s1.size, 1u);
  // Statements without parameters are not prepared.
  run("SELECT 1");
  EXPECT_EQ(stats().misses, 1u);

  auto closes = [&] {
    CollectSink c = run("SHOW SESSION STATUS LIKE 'Com_stmt_close'");
    return std::stoll(std::get<std::string>(c.rows.at(0).at(1)));
  };
  const auto closes0 = closes();
  const int n = static_cast<int>(backend::mysql::kStatementCacheCapacity) + 5;
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(scalar("SELECT ? + " + std::to_string(i), {std::int64_t{1}}), Value(std::int64_t{1 + i}));
  }
  auto s2 = stats();
  EXPECT_EQ(s2.size, backend::mysql::kStatementCacheCapacity);
  EXPECT_EQ(s2.evictions, 6u);  // "SELECT ? * 2" and the five oldest of the loop
  EXPECT_EQ(closes() - closes0, 6);
  // An evicted statement is prepared again; a cached one is a hit.
  EXPECT_EQ(scalar("SELECT ? * 2", {std::int64_t{21}}), Value(std::int64_t{42}));
  EXPECT_EQ(stats().misses, s2.misses + 1);
  const auto hits = stats().hits;
  EXPECT_EQ(scalar("SELECT ? + " + std::to_string(n - 1), {std::int64_t{1}}), Value(std::int64_t{n}));
  EXPECT_EQ(stats().hits, hits + 1);
  // A cached statement whose table changed shape is prepared again.
  run("CREATE TABLE " + table_ + " (a INT)");
  run("INSERT INTO " + table_ + " VALUES (1)");
  CollectSink before = run("SELECT * FROM " + table_ + " WHERE a = ?", {std::int64_t{1}});
  EXPECT_EQ(before.cols.size(), 1u);
  run("ALTER TABLE " + table_ + " ADD COLUMN b INT DEFAULT 7");
  CollectSink after = run("SELECT * FROM " + table_ + " WHERE a = ?", {std::int64_t{1}});
  ASSERT_EQ(after.cols.size(), 2u);
  ASSERT_EQ(after.rows.size(), 1u);
  EXPECT_EQ(after.rows[0][1], Value(std::int64_t{7}));
}

// ------------------------------------------------------------------ measurement

// 100,000 sequential `SELECT 1` through the backend and through the blocking Connector/C API
// (mysql_query + mysql_store_result) on one connection each: throughput and CPU time. Runs when
// BINDS_MYSQL_BENCH is set (its value: the number of statements).
TEST_F(MysqlBackendTest, MicroBenchmarkSelectOne) {
  const char* env = std::getenv("BINDS_MYSQL_BENCH");
  if (env == nullptr) GTEST_SKIP() << "set BINDS_MYSQL_BENCH=100000 to measure";
  const int n = std::max(1, std::atoi(env));
  auto cpu_ms = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000.0 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
  };
  struct Null1 : ResultSink {
    std::int64_t sum = 0;
    void columns(std::span<const protocol::Column>) override {}
    void row(std::span<const ValueView> v) override { sum += v[0].i; }
    bool full() const override { return false; }
    asio::awaitable<bool> drained() override { co_return true; }
    std::size_t max_row_bytes() const override { return SIZE_MAX; }
  } sink;
  const std::string sql = "SELECT 1";
  auto loop = [&]() -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i) {
      Outcome o = co_await conn_->execute(Statement{sql, {}}, sink);
      if (o.error) throw std::runtime_error(o.error->message);
    }
  };
  double c0 = cpu_ms();
  auto t0 = Clock::now();
  run_void(io_, loop());
  const double async_ms = static_cast<double>(ms_since(t0));
  const double async_cpu = cpu_ms() - c0;
  EXPECT_EQ(sink.sum, n);

  MYSQL* m = mysql_init(nullptr);
  ASSERT_NE(mysql_real_connect(m, url_.host.c_str(), url_.user.c_str(), url_.password.c_str(), url_.database.c_str(),
                               url_.port.value_or(3306), nullptr, 0),
            nullptr);
  std::int64_t sum = 0;
  c0 = cpu_ms();
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(mysql_query(m, "SELECT 1"), 0);
    MYSQL_RES* r = mysql_store_result(m);
    MYSQL_ROW row = mysql_fetch_row(r);
    sum += row[0][0] - '0';
    mysql_free_result(r);
  }
  const double blocking_ms = static_cast<double>(ms_since(t0));
  const double blocking_cpu = cpu_ms() - c0;
  mysql_close(m);
  EXPECT_EQ(sum, n);
  std::cout << "[          ] " << n << " x SELECT 1\n"
            << "[          ]   backend (async):     " << static_cast<long>(n * 1000.0 / async_ms) << " qps, CPU "
            << async_cpu << " ms (" << async_cpu * 1000.0 / n << " us/query)\n"
            << "[          ]   Connector/C blocking: " << static_cast<long>(n * 1000.0 / blocking_ms) << " qps, CPU "
            << blocking_cpu << " ms (" << blocking_cpu * 1000.0 / n << " us/query)\n";
}

}  // namespace
}  // namespace binds
