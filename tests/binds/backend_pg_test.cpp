// The async PostgreSQL backend (binds/backend/postgresql.cpp) against a real PostgreSQL:
// $BINDS_TEST_PG_URL from scripts/testdb.sh (the test fails without it unless BINDS_ALLOW_NO_DB=1).
//
// TLS tests need a second server with ssl=on: set BINDS_TEST_PG_TLS_URL (its URL, without
// sslmode) and BINDS_TEST_PG_TLS_ROOT (the self-signed certificate it serves, issued for the
// address 127.0.0.1 only), e.g.
//   openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=binds-test
//     -addext "subjectAltName=IP:127.0.0.1" -keyout server.key -out server.crt
//   initdb ...; postgres -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key ...
// Without them those tests are skipped. BINDS_PG_BENCH=1 runs the micro-benchmark against libpq.

#include <gtest/gtest.h>
#include <postgresql/libpq-fe.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "binds/backend/pg_array.hpp"
#include "binds/backend/pg_connection.hpp"
#include "protocol/messages.hpp"
#include "tests/binds/backend_sink.hpp"

namespace binds::test {
namespace {

namespace asio = boost::asio;
using backend::Connection;
using backend::ConnectOptions;
using backend::Outcome;
using backend::Statement;
using backend::TxStatus;
using protocol::Bytes;
using protocol::Null;
using protocol::Tagged;
using protocol::Type;
using protocol::Value;
using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// run_sync for awaitable<void> (close()).
void run_void(asio::io_context& io, asio::awaitable<void> aw) {
  run_sync(io, [](asio::awaitable<void> a) -> asio::awaitable<int> {
    co_await std::move(a);
    co_return 0;
  }(std::move(aw)));
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

// Counts rows without keeping them; checks that the first column counts up from 1; claims to be
// full every `full_every` rows (a client that reads in bursts) and optionally gives up.
class CountingSink : public backend::ResultSink {
 public:
  std::int64_t rows = 0;
  std::int64_t since_drain = 0;
  std::int64_t full_every = std::numeric_limits<std::int64_t>::max();
  std::int64_t give_up_after = std::numeric_limits<std::int64_t>::max();
  std::size_t max_row = SIZE_MAX;
  int drained_calls = 0;
  bool in_order = true;
  bool got_columns = false;

  void columns(std::span<const protocol::Column>) override { got_columns = true; }
  void row(std::span<const backend::ValueView> v) override {
    ++rows;
    ++since_drain;
    if (!v.empty() && v[0].type == Type::int64 && v[0].i != rows) in_order = false;
  }
  bool full() const override { return since_drain >= full_every || rows >= give_up_after; }
  asio::awaitable<bool> drained() override {
    ++drained_calls;
    // A real client drains asynchronously: let other work run first.
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    since_drain = 0;
    co_return rows < give_up_after;
  }
  std::size_t max_row_bytes() const override { return max_row; }
};

class PgBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_text_ = env("BINDS_TEST_PG_URL");
    if (url_text_.empty()) {
      if (env("BINDS_ALLOW_NO_DB") == "1") GTEST_SKIP() << "BINDS_TEST_PG_URL not set";
      FAIL() << "BINDS_TEST_PG_URL is not set (run scripts/testdb.sh, or BINDS_ALLOW_NO_DB=1)";
    }
    url_ = parse_url(url_text_);
    conn_ = open(url_);
    ASSERT_TRUE(conn_);
    table_ = "binds_pgbe_" + std::to_string(::getpid());
  }

  void TearDown() override {
    if (!table_.empty() && conn_ && conn_->looks_alive()) {
      CollectSink s;
      run_sync(io_, conn_->execute({"DROP TABLE IF EXISTS " + table_, {}}, s));
    }
  }

  backend::ConnectResult connect(const DatabaseUrl& url, ConnectOptions options = {}) {
    return run_sync(io_, backend::connect(io_.get_executor(), url, options));
  }

  std::unique_ptr<Connection> open(const DatabaseUrl& url) {
    auto r = connect(url);
    EXPECT_TRUE(r.conn) << r.error.message;
    return std::move(r.conn);
  }

  Outcome exec(Connection& c, const std::string& sql, const std::vector<Value>& params,
               backend::ResultSink& sink) {
    return run_sync(io_, c.execute({sql, params}, sink));
  }

  // A statement that must succeed; its rows.
  CollectSink run(const std::string& sql, const std::vector<Value>& params = {},
                  Outcome* outcome = nullptr, Connection* c = nullptr) {
    CollectSink s;
    Outcome o = exec(c ? *c : *conn_, sql, params, s);
    EXPECT_FALSE(o.error) << "SQL: " << sql << "\nerror: " << (o.error ? o.error->message : "");
    if (outcome) *outcome = o;
    return s;
  }

  // A statement that must fail; its error.
  backend::BackendError fail(const std::string& sql, const std::vector<Value>& params = {},
                             Connection* c = nullptr) {
    CollectSink s;
    Outcome o = exec(c ? *c : *conn_, sql, params, s);
    EXPECT_TRUE(o.error) << "expected an error from: " << sql;
    return o.error.value_or(backend::BackendError{});
  }

  Value scalar(const std::string& sql, const std::vector<Value>& params = {}, Connection* c = nullptr) {
    CollectSink s = run(sql, params, nullptr, c);
    if (s.rows.size() != 1 || s.rows[0].size() != 1) {
      ADD_FAILURE() << "expected one value from " << sql;
      return Null{};
    }
    return s.rows[0][0];
  }

  backend::pg::ConnectionStats stats(const Connection& c) {
    auto s = backend::pg::stats(c);
    EXPECT_TRUE(s.has_value());
    return s.value_or(backend::pg::ConnectionStats{});
  }

  // Runs `body` on the test's io_context with `side` scheduled after `delay` on the same executor.
  template <class Side>
  Outcome exec_with(Connection& c, const std::string& sql, std::chrono::milliseconds delay, Side side) {
    asio::steady_timer timer(io_, delay);
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) side();
    });
    CollectSink s;
    Outcome o = exec(c, sql, {}, s);
    timer.cancel();
    io_.restart();
    io_.poll();
    return o;
  }

  asio::io_context io_;
  std::string url_text_;
  DatabaseUrl url_;
  std::unique_ptr<Connection> conn_;
  std::string table_;
};

// ---------------------------------------------------------------------------- connecting

TEST_F(PgBackendTest, ConnectsWithScramAndRunsAStatement) {
  EXPECT_EQ(conn_->backend(), Backend::postgresql);
  EXPECT_GE(conn_->max_pipeline(), 32);
  auto st = stats(*conn_);
  EXPECT_GT(st.backend_pid, 0);
  // sslmode=prefer: TLS where the server offers it (scripts/testdb.sh turns ssl on unless told not to).
  EXPECT_EQ(st.tls, !env("BINDS_TEST_PG_TLS_URL").empty());
  EXPECT_EQ(scalar("SELECT pg_backend_pid()"), Value(std::int64_t{st.backend_pid}));
  EXPECT_EQ(scalar("SHOW application_name"), Value(std::string("bindsd")));
  EXPECT_EQ(scalar("SHOW client_encoding"), Value(std::string("UTF8")));
  EXPECT_EQ(scalar("SHOW DateStyle").index(), Value(std::string()).index());
  EXPECT_EQ(std::get<std::string>(scalar("SHOW DateStyle")).substr(0, 3), "ISO");
  // The server's own record of how we authenticated.
  EXPECT_EQ(scalar("SELECT (SELECT rolpassword FROM pg_authid WHERE rolname = current_user) LIKE 'SCRAM-SHA-256$%'"),
            Value(true));
}

TEST_F(PgBackendTest, ApplicationNameAndRuntimeParametersFromOptionsAndUrl) {
  ConnectOptions o;
  o.application_name = "from-options";
  auto r = connect(url_, o);
  ASSERT_TRUE(r.conn) << r.error.message;
  EXPECT_EQ(scalar("SHOW application_name", {}, r.conn.get()), Value(std::string("from-options")));

  DatabaseUrl u = url_;
  u.options["application_name"] = "from-url";
  u.options["search_path"] = "pg_catalog";             // a runtime parameter: passed on
  u.options["options"] = "-c statement_timeout=4321";  // libpq's options keyword
  u.options["keepalives"] = "1";                       // a libpq keyword: not passed on
  auto c = open(u);
  ASSERT_TRUE(c);
  EXPECT_EQ(scalar("SHOW application_name", {}, c.get()), Value(std::string("from-url")));
  EXPECT_EQ(scalar("SHOW search_path", {}, c.get()), Value(std::string("pg_catalog")));
  EXPECT_EQ(scalar("SHOW statement_timeout", {}, c.get()), Value(std::string("4321ms")));
}

TEST_F(PgBackendTest, WrongPasswordIs28P01WithoutThePassword) {
  DatabaseUrl u = url_;
  u.password = "wrong-secret-xyzzy";
  const auto t0 = Clock::now();
  auto r = connect(u);
  ASSERT_FALSE(r.conn);
  EXPECT_EQ(r.error.code, protocol::ErrorCode::backend_unavailable);
  EXPECT_EQ(r.error.sqlstate, "28P01");
  EXPECT_NE(r.error.message.find("password authentication failed"), std::string::npos) << r.error.message;
  EXPECT_EQ(r.error.message.find("wrong-secret-xyzzy"), std::string::npos) << r.error.message;
  EXPECT_EQ(r.error.message.find(url_.password), std::string::npos) << r.error.message;
  EXPECT_LT(ms_since(t0), 5000);
}

TEST_F(PgBackendTest, UnknownDatabaseAndSettingsErrors) {
  DatabaseUrl u = url_;
  u.database = "binds_no_such_db";
  auto r = connect(u);
  ASSERT_FALSE(r.conn);
  EXPECT_EQ(r.error.code, protocol::ErrorCode::backend_unavailable);
  EXPECT_EQ(r.error.sqlstate, "3D000");

  u = url_;
  u.options["sslmode"] = "sometimes";
  r = connect(u);
  ASSERT_FALSE(r.conn);
  EXPECT_NE(r.error.message.find("sslmode"), std::string::npos);

  // verify-full needs a root certificate; the default one does not exist here.
  u = url_;
  u.options["sslmode"] = "verify-full";
  u.options["sslrootcert"] = "/nonexistent/root.crt";
  r = connect(u);
  ASSERT_FALSE(r.conn);
  EXPECT_NE(r.error.message.find("root certificate"), std::string::npos) << r.error.message;

  // require against a server without TLS: one that declines the SSLRequest ('N').
  asio::ip::tcp::acceptor plain(io_, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket peer(io_);
  std::array<char, 8> ssl_request{};
  plain.async_accept(peer, [&](const boost::system::error_code& ec) {
    if (ec) return;
    asio::async_read(peer, asio::buffer(ssl_request), [&](const boost::system::error_code& ec2, std::size_t) {
      if (!ec2) asio::async_write(peer, asio::buffer("N", 1), [](const boost::system::error_code&, std::size_t) {});
    });
  });
  u = url_;
  u.port = plain.local_endpoint().port();
  u.options["sslmode"] = "require";
  r = connect(u);
  ASSERT_FALSE(r.conn);
  EXPECT_NE(r.error.message.find("does not support SSL"), std::string::npos) << r.error.message;
}

TEST_F(PgBackendTest, UnreachablePortFailsQuickly) {
  // A port that was just free: nothing listens there.
  asio::ip::tcp::acceptor probe(io_, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = probe.local_endpoint().port();
  probe.close();
  DatabaseUrl u = url_;
  u.port = port;
  const auto t0 = Clock::now();
  auto r = connect(u);
  ASSERT_FALSE(r.conn);
  EXPECT_EQ(r.error.code, protocol::ErrorCode::backend_unavailable);
  EXPECT_NE(r.error.message.find("127.0.0.1"), std::string::npos) << r.error.message;
  EXPECT_LT(ms_since(t0), 1000);
}

TEST_F(PgBackendTest, ConnectTimeoutBoundsASilentServer) {
  // Accepts connections and never says a word.
  asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket accepted(io_);
  silent.async_accept(accepted, [](const boost::system::error_code&) {});
  DatabaseUrl u = url_;
  u.port = silent.local_endpoint().port();
  u.options["sslmode"] = "disable";
  ConnectOptions o;
  o.connect_timeout = std::chrono::milliseconds(300);
  auto t0 = Clock::now();
  auto r = connect(u, o);
  ASSERT_FALSE(r.conn);
  EXPECT_NE(r.error.message.find("timeout"), std::string::npos) << r.error.message;
  EXPECT_GE(ms_since(t0), 250);
  EXPECT_LT(ms_since(t0), 1500);

  // The URL's connect_timeout (seconds) overrides the bind's; with TLS negotiation pending too.
  u.options["connect_timeout"] = "1";
  u.options["sslmode"] = "prefer";
  o.connect_timeout = std::chrono::milliseconds(60000);
  accepted.close();
  silent.async_accept(accepted, [](const boost::system::error_code&) {});
  t0 = Clock::now();
  r = connect(u, o);
  ASSERT_FALSE(r.conn);
  EXPECT_NE(r.error.message.find("timeout"), std::string::npos) << r.error.message;
  EXPECT_GE(ms_since(t0), 900);
  EXPECT_LT(ms_since(t0), 2500);
}

TEST_F(PgBackendTest, UnixSocket) {
  const std::string dir = env("BINDS_TEST_DIR");
  if (dir.empty()) GTEST_SKIP() << "BINDS_TEST_DIR not set (scripts/testdb.sh's folder)";
  DatabaseUrl u = url_;
  u.options["host"] = dir + "/pg";
  auto c = open(u);
  ASSERT_TRUE(c);
  // Over a Unix socket the server reports no client address.
  EXPECT_EQ(scalar("SELECT inet_client_addr() IS NULL", {}, c.get()), Value(true));
  // Cancel goes to the same socket.
  auto t0 = Clock::now();
  Outcome o = exec_with(*c, "SELECT pg_sleep(10)", std::chrono::milliseconds(200), [&] { c->cancel(); });
  ASSERT_TRUE(o.error);
  EXPECT_TRUE(o.error->interrupted);
  EXPECT_LT(ms_since(t0), 3000);
}

// ---------------------------------------------------------------------------- values

TEST_F(PgBackendTest, RoundTripsEveryTypeLikeTheLibpqDriver) {
  // The same table, values and expectations as driver_test.cpp's RoundTripsEveryTypeIncludingNullAndEmpty.
  run("CREATE TABLE " + table_ +
      " (id serial PRIMARY KEY, c_bool boolean, c_int bigint, c_float double precision,"
      " c_text text, c_bytes bytea, c_dec numeric(12,4), c_date date, c_time time,"
      " c_ts timestamp, c_json json, c_uuid uuid)");
  const std::string insert = "INSERT INTO " + table_ +
                             " (c_bool, c_int, c_float, c_text, c_bytes, c_dec, c_date, c_time, c_ts,"
                             " c_json, c_uuid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
  const std::string text = "h\xC3\xA9llo \xE2\x98\x83 'single' \"double\" back\\slash";
  const Bytes bytes{std::string("\0\x01\xFF\x80 raw", 8)};
  const std::int64_t big = -9007199254740993;
  std::vector<Value> full = {true,
                             big,
                             0.1,
                             text,
                             bytes,
                             Tagged{Type::decimal, "-12.3400"},
                             Tagged{Type::date, "2024-02-29"},
                             Tagged{Type::time, "13:45:00"},
                             Tagged{Type::timestamp, "2024-02-29 13:45:00.25"},
                             Tagged{Type::json, R"({"a": [1, 2.5, "x"]})"},
                             Tagged{Type::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}};
  std::vector<Value> empty(11, Null{});
  empty[3] = std::string();
  empty[4] = Bytes{};
  const std::vector<Value> nulls(11, Null{});

  Outcome o;
  run(insert, full, &o);
  EXPECT_EQ(o.affected, 1);
  EXPECT_FALSE(o.last_insert_id);
  run(insert, empty, &o);
  EXPECT_EQ(o.affected, 1);
  run(insert, nulls, &o);
  EXPECT_EQ(o.affected, 1);

  CollectSink c = run("SELECT id, c_bool, c_int, c_float, c_text, c_bytes, c_dec, c_date, c_time, "
                      "c_ts, c_json, c_uuid FROM " + table_ + " ORDER BY id",
                      {}, &o);
  EXPECT_EQ(o.affected, 3);
  EXPECT_EQ(o.row_count, 3);
  ASSERT_TRUE(c.got_columns);
  ASSERT_EQ(c.cols.size(), 12u);
  ASSERT_EQ(c.rows.size(), 3u);
  const Type want_types[] = {Type::int64, Type::boolean, Type::int64, Type::float64,
                             Type::text,  Type::bytes,   Type::decimal, Type::date,
                             Type::time,  Type::timestamp, Type::json,  Type::uuid};
  const char* names[] = {"id", "c_bool", "c_int", "c_float", "c_text", "c_bytes",
                         "c_dec", "c_date", "c_time", "c_ts", "c_json", "c_uuid"};
  const char* db_types[] = {"int4", "bool", "int8", "float8", "text", "bytea",
                            "numeric", "date", "time", "timestamp", "json", "uuid"};
  for (std::size_t i = 0; i < 12; ++i) {
    EXPECT_EQ(c.cols[i].name, names[i]);
    EXPECT_EQ(c.cols[i].type, want_types[i]) << names[i];
    EXPECT_EQ(c.cols[i].db_type, db_types[i]) << names[i];
  }
  const protocol::Row& a = c.rows[0];
  EXPECT_EQ(a[0], Value(std::int64_t{1}));
  EXPECT_EQ(a[1], Value(true));
  EXPECT_EQ(a[2], Value(big));
  EXPECT_EQ(a[3], Value(0.1));
  EXPECT_EQ(a[4], Value(text));
  EXPECT_EQ(a[5], Value(bytes));
  EXPECT_EQ(a[6], Value(Tagged{Type::decimal, "-12.3400"}));
  EXPECT_EQ(a[7], Value(Tagged{Type::date, "2024-02-29"}));
  EXPECT_EQ(a[8], Value(Tagged{Type::time, "13:45:00"}));
  EXPECT_EQ(a[9], Value(Tagged{Type::timestamp, "2024-02-29 13:45:00.25"}));
  EXPECT_EQ(a[10], Value(Tagged{Type::json, R"({"a": [1, 2.5, "x"]})"}));
  EXPECT_EQ(a[11], Value(Tagged{Type::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}));
  const protocol::Row& b = c.rows[1];
  EXPECT_EQ(b[4], Value(std::string()));
  EXPECT_EQ(b[5], Value(Bytes{}));
  for (std::size_t i : {1u, 2u, 3u, 6u, 7u, 8u, 9u, 10u, 11u}) EXPECT_EQ(b[i], Value(Null{})) << names[i];
  for (std::size_t i = 1; i < 12; ++i) EXPECT_EQ(c.rows[2][i], Value(Null{})) << names[i];

  CollectSink where = run("SELECT id FROM " + table_ + " WHERE c_text = $1", {std::string()});
  ASSERT_EQ(where.rows.size(), 1u);
  EXPECT_EQ(where.rows[0][0], Value(std::int64_t{2}));
}

TEST_F(PgBackendTest, OtherResultTypes) {
  CollectSink c = run(
      "SELECT 1::int2, 2::int4, 3::oid, 1.5::float4, 'c'::char, 'n'::name, 'v'::varchar, 'b'::bpchar,"
      " '2024-02-29 13:45:00+00'::timestamptz, '13:45:00+02'::timetz, '{\"a\":1}'::jsonb,"
      " '1 day'::interval, ARRAY[1,2]::int4[], 'NaN'::float8, '-Infinity'::float8, 12.5::money,"
      " '10.0.0.1'::inet, point(1,2), NULL::int8, '\\x00ff'::bytea");
  ASSERT_EQ(c.rows.size(), 1u);
  const auto& r = c.rows[0];
  EXPECT_EQ(r[0], Value(std::int64_t{1}));
  EXPECT_EQ(r[1], Value(std::int64_t{2}));
  EXPECT_EQ(r[2], Value(std::int64_t{3}));
  EXPECT_EQ(r[3], Value(1.5));
  EXPECT_EQ(r[4], Value(std::string("c")));
  EXPECT_EQ(r[5], Value(std::string("n")));
  EXPECT_EQ(r[6], Value(std::string("v")));
  EXPECT_EQ(r[7], Value(std::string("b")));
  EXPECT_EQ(c.cols[8].db_type, "timestamptz");
  ASSERT_TRUE(std::holds_alternative<Tagged>(r[8]));
  EXPECT_EQ(std::get<Tagged>(r[8]).type, Type::timestamp);
  EXPECT_EQ(std::get<Tagged>(r[8]).text.substr(0, 10), "2024-02-29");
  EXPECT_EQ(r[9], Value(Tagged{Type::time, "13:45:00+02"}));
  EXPECT_EQ(r[10], Value(Tagged{Type::json, "{\"a\": 1}"}));
  EXPECT_EQ(r[11], Value(Tagged{Type::interval, "P1D"}));  // IntervalStyle iso_8601, set at connect
  EXPECT_EQ(c.cols[11].db_type, "interval");
  EXPECT_EQ(r[12], Value(protocol::Array{{std::int64_t{1}, std::int64_t{2}}}));
  EXPECT_EQ(c.cols[12].db_type, "_int4");
  ASSERT_TRUE(std::holds_alternative<double>(r[13]));
  EXPECT_TRUE(std::isnan(std::get<double>(r[13])));
  EXPECT_EQ(r[14], Value(-std::numeric_limits<double>::infinity()));
  EXPECT_EQ(c.cols[15].db_type, "money");
  EXPECT_EQ(r[16], Value(std::string("10.0.0.1")));
  EXPECT_EQ(r[17], Value(std::string("(1,2)")));
  EXPECT_EQ(c.cols[17].db_type, "oid:600");  // point: outside the table, named by OID
  EXPECT_EQ(c.cols[17].type, Type::text);
  EXPECT_EQ(r[18], Value(Null{}));
  EXPECT_EQ(r[19], Value(Bytes{std::string("\0\xff", 2)}));

  // bytea_output = escape is decoded too.
  run("SET bytea_output = escape");
  EXPECT_EQ(scalar("SELECT '\\x005c41ff'::bytea"), Value(Bytes{std::string("\0\\A\xff", 4)}));
  run("RESET bytea_output");
}

TEST_F(PgBackendTest, ParametersOfEveryType) {
  const Bytes bytes{std::string("\0nul\xff", 5)};
  std::vector<Value> params = {true,
                               std::numeric_limits<std::int64_t>::min(),
                               0.1,
                               std::string("t\xC3\xA9xt"),
                               bytes,
                               Tagged{Type::decimal, "12345678901234567890.000001"},
                               Tagged{Type::date, "2024-02-29"},
                               Tagged{Type::time, "13:45:00.25"},
                               Tagged{Type::timestamp, "2024-02-29 13:45:00"},
                               Tagged{Type::json, "[1,2]"},
                               Tagged{Type::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
                               Null{},
                               std::numeric_limits<std::int64_t>::max(),
                               -1e300};
  CollectSink c = run("SELECT $1, $2, $3, $4, $5, $6::numeric, $7::date, $8::time, $9::timestamp,"
                      " $10::jsonb, $11::uuid, $12::int8, $13, $14, $12::int8 IS NULL",
                      params);
  ASSERT_EQ(c.rows.size(), 1u);
  const auto& r = c.rows[0];
  EXPECT_EQ(r[0], Value(true));
  EXPECT_EQ(r[1], Value(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(r[2], Value(0.1));
  EXPECT_EQ(r[3], Value(std::string("t\xC3\xA9xt")));
  EXPECT_EQ(r[4], Value(bytes));
  EXPECT_EQ(r[5], Value(Tagged{Type::decimal, "12345678901234567890.000001"}));
  EXPECT_EQ(r[6], Value(Tagged{Type::date, "2024-02-29"}));
  EXPECT_EQ(r[7], Value(Tagged{Type::time, "13:45:00.25"}));
  EXPECT_EQ(r[8], Value(Tagged{Type::timestamp, "2024-02-29 13:45:00"}));
  EXPECT_EQ(r[9], Value(Tagged{Type::json, "[1, 2]"}));
  EXPECT_EQ(r[10], Value(Tagged{Type::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}));
  EXPECT_EQ(r[11], Value(Null{}));
  EXPECT_EQ(r[12], Value(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(r[13], Value(-1e300));
  EXPECT_EQ(r[14], Value(true));
  EXPECT_EQ(c.cols[3].db_type, "text");  // an untyped text parameter, inferred as text
  EXPECT_EQ(c.cols[4].db_type, "bytea");
  EXPECT_EQ(c.cols[0].db_type, "bool");

  // Floats PostgreSQL spells out; text parameters fill columns of other types, like literals.
  CollectSink f = run("SELECT $1::float8, $2::float8, $3::float8 = 'Infinity', $4::int4 + 1, $5::bool",
                      {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::infinity(),
                       std::numeric_limits<double>::infinity(), std::string("41"), std::string("yes")});
  ASSERT_EQ(f.rows.size(), 1u);
  EXPECT_TRUE(std::isnan(std::get<double>(f.rows[0][0])));
  EXPECT_EQ(f.rows[0][1], Value(-std::numeric_limits<double>::infinity()));
  EXPECT_EQ(f.rows[0][2], Value(true));
  EXPECT_EQ(f.rows[0][3], Value(std::int64_t{42}));
  EXPECT_EQ(f.rows[0][4], Value(true));
}

// Too few values: PostgreSQL's own error. Too many: the backend's (PostgreSQL would accept them).
TEST_F(PgBackendTest, WrongParameterCountIsPostgresqlsOwnError) {
  auto e = fail("SELECT $1::int8 + $2::int8", {std::int64_t{1}});
  EXPECT_EQ(e.code, protocol::ErrorCode::sql_error);
  EXPECT_EQ(e.sqlstate, "08P01");
  EXPECT_NE(e.message.find("bind message supplies 1 parameters"), std::string::npos) << e.message;
  EXPECT_FALSE(e.connection_broken);
  // No parameters at all for a statement that has one.
  e = fail("SELECT $1::int8");
  EXPECT_EQ(e.sqlstate, "08P01");
  // An extra parameter is refused before anything is sent.
  e = fail("SELECT $1::int8", {std::int64_t{1}, std::string("x")});
  EXPECT_EQ(e.sqlstate, "07001");
  EXPECT_EQ(e.message, "the statement has 1 placeholder but 2 parameters were given");
  EXPECT_EQ(scalar("SELECT $1::int8 + $2::int8", {std::int64_t{1}, std::int64_t{2}}), Value(std::int64_t{3}));
}

TEST_F(PgBackendTest, ErrorsCarrySqlstateAndTheConnectionSurvives) {
  auto e = fail("SELECT * FROM binds_no_such_table_xyz");
  EXPECT_EQ(e.code, protocol::ErrorCode::sql_error);
  EXPECT_EQ(e.sqlstate, "42P01");
  EXPECT_NE(e.message.find("binds_no_such_table_xyz"), std::string::npos) << e.message;
  EXPECT_FALSE(e.connection_broken);
  EXPECT_FALSE(e.interrupted);
  EXPECT_EQ(fail("SELEKT $1", {std::int64_t{1}}).sqlstate, "42601");
  EXPECT_EQ(fail("SELECT 1; SELECT 2").sqlstate, "42601");  // one statement per request
  EXPECT_EQ(fail("SELECT 1/0").sqlstate, "22012");
  // Rows, then an error: the sink saw the rows, the outcome is the error.
  CollectSink s;
  Outcome o = exec(*conn_, "SELECT 1 / (3 - g) FROM generate_series(1, 5) g", {}, s);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->sqlstate, "22012");
  EXPECT_EQ(o.tx, TxStatus::idle);
  // An empty statement is not an error.
  Outcome empty;
  run("", {}, &empty);
  EXPECT_EQ(empty.affected, 0);
  EXPECT_EQ(scalar("SELECT 7"), Value(std::int64_t{7}));
  EXPECT_TRUE(conn_->looks_alive());
}

TEST_F(PgBackendTest, AffectedRows) {
  Outcome o;
  run("CREATE TABLE " + table_ + " (id serial PRIMARY KEY, v int)", {}, &o);
  EXPECT_EQ(o.affected, 0);
  for (int i = 1; i <= 3; ++i) {
    run("INSERT INTO " + table_ + " (v) VALUES ($1)", {std::int64_t{i * 10}}, &o);
    EXPECT_EQ(o.affected, 1);
  }
  run("UPDATE " + table_ + " SET v = v + 1 WHERE v >= $1", {std::int64_t{20}}, &o);
  EXPECT_EQ(o.affected, 2);
  run("DELETE FROM " + table_ + " WHERE v > 1000", {}, &o);
  EXPECT_EQ(o.affected, 0);
  CollectSink ret = run("INSERT INTO " + table_ + " (v) VALUES ($1) RETURNING id", {std::int64_t{5}}, &o);
  ASSERT_EQ(ret.rows.size(), 1u);
  EXPECT_EQ(ret.rows[0][0], Value(std::int64_t{4}));
  EXPECT_EQ(o.affected, 1);
  EXPECT_EQ(o.row_count, 1);
  CollectSink sel = run("SELECT v FROM " + table_ + " ORDER BY v", {}, &o);
  EXPECT_EQ(o.affected, 4);
  EXPECT_EQ(o.row_count, 4);
  // A statement without a result set gives no columns.
  CollectSink ddl = run("CREATE INDEX ON " + table_ + " (v)");
  EXPECT_FALSE(ddl.got_columns);
  // Zero rows still give columns.
  CollectSink none = run("SELECT v FROM " + table_ + " WHERE false");
  EXPECT_TRUE(none.got_columns);
  EXPECT_TRUE(none.rows.empty());
}

TEST_F(PgBackendTest, CopyIsRefusedAndTheConnectionSurvives) {
  run("CREATE TABLE " + table_ + " (v int)");
  auto e = fail("COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT");
  EXPECT_NE(e.message.find("COPY"), std::string::npos);
  EXPECT_FALSE(e.connection_broken);
  EXPECT_EQ(scalar("SELECT 1"), Value(std::int64_t{1}));
  e = fail("COPY " + table_ + " FROM STDIN");
  EXPECT_NE(e.message.find("COPY"), std::string::npos);
  EXPECT_FALSE(e.connection_broken);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table_), Value(std::int64_t{0}));
}

// ---------------------------------------------------------------------------- streaming

TEST_F(PgBackendTest, StreamsAMillionRowsInBoundedMemory) {
  // Warm up buffers and the statement cache, then measure.
  {
    CountingSink warm;
    exec(*conn_, "SELECT g, 'row-' || g FROM generate_series(1, 10000) g", {}, warm);
  }
  const std::size_t before = rss_bytes();
  CountingSink s;
  s.full_every = 3000;
  const auto t0 = Clock::now();
  Outcome o = exec(*conn_, "SELECT g, 'row-' || g FROM generate_series(1, 1000000) g", {}, s);
  const double ms = ms_since(t0);
  const std::size_t after = rss_bytes();
  ASSERT_FALSE(o.error) << o.error->message;
  EXPECT_EQ(s.rows, 1000000);
  EXPECT_TRUE(s.in_order);
  EXPECT_EQ(o.row_count, 1000000);
  EXPECT_EQ(o.affected, 1000000);
  EXPECT_GT(s.drained_calls, 100);
  const double grew_mib = (static_cast<double>(after) - static_cast<double>(before)) / (1 << 20);
  // Under ASan freed memory sits in its quarantine, so RSS says nothing there; the buffer's
  // capacity below is the structural check that holds everywhere.
  if (!kAsan) {
    EXPECT_LT(grew_mib, 4.0) << "RSS grew while streaming";
  }
  EXPECT_EQ(stats(*conn_).read_buffer_capacity, 64u * 1024);
  std::printf("[ stream ] 1,000,000 rows in %.0f ms, RSS %+.2f MiB, %d drains\n", ms, grew_mib, s.drained_calls);

  // The same with a parameter.
  CountingSink p;
  o = exec(*conn_, "SELECT g, 'row-' || g FROM generate_series(1, 100000) g WHERE g > $1", {std::int64_t{0}}, p);
  ASSERT_FALSE(o.error);
  EXPECT_EQ(p.rows, 100000);
  EXPECT_TRUE(p.in_order);
}

TEST_F(PgBackendTest, SinkThatStopsEndsTheResultAndKeepsTheConnection) {
  CountingSink s;
  s.full_every = 1000;
  s.give_up_after = 5000;
  const auto t0 = Clock::now();
  // In the select list the series streams (in FROM it would be materialised first).
  Outcome o = exec(*conn_, "SELECT generate_series(1, 50000000)", {}, s);
  const double ms = ms_since(t0);
  EXPECT_FALSE(o.error) << o.error->message;
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.row_count, s.rows);
  EXPECT_GE(s.rows, 5000);
  EXPECT_LT(s.rows, 10000);
  EXPECT_EQ(o.affected, o.row_count);
  EXPECT_EQ(o.tx, TxStatus::idle);
  // The server was told to stop: 50M rows would take far longer.
  EXPECT_LT(ms, 3000);
  EXPECT_EQ(stats(*conn_).cancels, 1u);
  // Usable, and no late cancel reaches the next statement.
  run("SELECT pg_sleep(0.2)");
  EXPECT_EQ(scalar("SELECT 2"), Value(std::int64_t{2}));

  // Inside a transaction there is no cancel (it would abort the transaction): the rest is read
  // and dropped, and the transaction stays usable.
  run("BEGIN");
  CountingSink t;
  t.full_every = 100;
  t.give_up_after = 200;
  o = exec(*conn_, "SELECT g FROM generate_series(1, 200000) g", {}, t);
  EXPECT_FALSE(o.error);
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  EXPECT_EQ(scalar("SELECT 3"), Value(std::int64_t{3}));
  run("COMMIT");
  EXPECT_EQ(stats(*conn_).cancels, 1u);
}

TEST_F(PgBackendTest, RowLargerThanTheSinkTakesIsRefusedWithoutBufferingIt) {
  run("SELECT 1");
  const std::size_t before = rss_bytes();
  CountingSink s;
  s.max_row = 1 << 20;
  Outcome o = exec(*conn_, "SELECT g, repeat('x', 10 * 1024 * 1024) FROM generate_series(1, 3) g", {}, s);
  const std::size_t after = rss_bytes();
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->code, protocol::ErrorCode::bad_request);
  EXPECT_NE(o.error->message.find("larger than the limit"), std::string::npos) << o.error->message;
  EXPECT_FALSE(o.error->connection_broken);
  EXPECT_TRUE(o.row_too_large);
  EXPECT_EQ(s.rows, 0);
  EXPECT_EQ(o.tx, TxStatus::idle);
  const double grew_mib = (static_cast<double>(after) - static_cast<double>(before)) / (1 << 20);
  if (!kAsan) {
    EXPECT_LT(grew_mib, 5.0) << "the 10 MB row was buffered";
  }
  EXPECT_EQ(stats(*conn_).read_buffer_capacity, 64u * 1024);
  EXPECT_EQ(scalar("SELECT 'still here'"), Value(std::string("still here")));

  // Small rows before it are delivered; the limit counts the row's wire size.
  CountingSink m;
  m.max_row = 64 * 1024;
  o = exec(*conn_, "SELECT g, repeat('y', CASE WHEN g = 3 THEN 100000 ELSE 10 END) FROM generate_series(1, 5) g", {}, m);
  ASSERT_TRUE(o.error);
  EXPECT_TRUE(o.row_too_large);
  EXPECT_EQ(m.rows, 2);
  EXPECT_EQ(o.row_count, 2);

  // A big row within the limit is held whole, and the buffer shrinks back afterwards.
  CollectSink big;
  o = exec(*conn_, "SELECT repeat('z', 5 * 1024 * 1024)", {}, big);
  ASSERT_FALSE(o.error);
  ASSERT_EQ(big.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(big.rows[0][0]).size(), 5u * 1024 * 1024);
  EXPECT_EQ(stats(*conn_).read_buffer_capacity, 64u * 1024);
}

// ---------------------------------------------------------------------------- pipelining

TEST_F(PgBackendTest, PipelinedStatementsAnswerInOrderInOneWrite) {
  run("SELECT 1");
  const auto writes0 = stats(*conn_).writes;
  std::vector<std::vector<Value>> params(32);
  for (int i = 0; i < 32; ++i) {
    params[i] = {std::int64_t{i}};
    if (i == 16) {
      conn_->send({"SELECT 1/0", {}});
    } else {
      conn_->send({"SELECT $1::int8 * 2", params[i]});
    }
  }
  EXPECT_EQ(conn_->outstanding(), 32);
  for (int i = 0; i < 32; ++i) {
    CollectSink s;
    Outcome o = run_sync(io_, conn_->receive(s));
    if (i == 16) {
      ASSERT_TRUE(o.error);
      EXPECT_EQ(o.error->sqlstate, "22012");
    } else {
      ASSERT_FALSE(o.error) << i << ": " << o.error->message;
      ASSERT_EQ(s.rows.size(), 1u);
      EXPECT_EQ(s.rows[0][0], Value(std::int64_t{2 * i})) << i;
    }
    EXPECT_EQ(o.tx, TxStatus::idle);
  }
  EXPECT_EQ(conn_->outstanding(), 0);
  EXPECT_EQ(stats(*conn_).writes, writes0 + 1) << "32 statements, one write";

  // Again: now the statement is cached and the pipeline is Bind/Execute/Sync only.
  const auto parses0 = stats(*conn_).parses;
  for (int i = 0; i < 32; ++i) conn_->send({"SELECT $1::int8 * 2", params[i]});
  for (int i = 0; i < 32; ++i) {
    CollectSink s;
    Outcome o = run_sync(io_, conn_->receive(s));
    ASSERT_FALSE(o.error);
    EXPECT_EQ(s.rows.at(0).at(0), Value(std::int64_t{2 * i}));
  }
  EXPECT_EQ(stats(*conn_).parses, parses0);
}

TEST_F(PgBackendTest, BigStatementBehindABigResultDoesNotDeadlock) {
  // Written in one go, the 8 MB INSERT would wait for the server to read it while the server
  // waits for us to read the 40 MB result ahead of it. Only what socket buffers hold without
  // anyone reading goes behind a statement in the same write; the rest waits its turn.
  run("CREATE TABLE " + table_ + " (b bytea)");
  const std::vector<Value> big = {Bytes{std::string(8u << 20, 'q')}};
  const auto w0 = stats(*conn_).writes;
  conn_->send({"SELECT g, repeat('r', 100) FROM generate_series(1, 300000) g", {}});
  conn_->send({"INSERT INTO " + table_ + " VALUES ($1)", big});
  conn_->send({"SELECT length(b) FROM " + table_, {}});
  CountingSink rows;
  Outcome o = run_sync(io_, conn_->receive(rows));
  ASSERT_FALSE(o.error);
  EXPECT_EQ(rows.rows, 300000);
  EXPECT_EQ(stats(*conn_).writes, w0 + 1);
  CollectSink ins, len;
  o = run_sync(io_, conn_->receive(ins));
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.affected, 1);
  EXPECT_EQ(stats(*conn_).writes, w0 + 2);
  o = run_sync(io_, conn_->receive(len));
  ASSERT_FALSE(o.error);
  EXPECT_EQ(len.rows.at(0).at(0), Value(std::int64_t{8 << 20}));
  EXPECT_EQ(stats(*conn_).writes, w0 + 2);
}

TEST_F(PgBackendTest, PipelineInsideATransactionFollowsPostgresqlSemantics) {
  run("CREATE TABLE " + table_ + " (v int)");
  const std::string ins = "INSERT INTO " + table_ + " (v) VALUES ($1)";
  std::vector<Value> one = {std::int64_t{1}}, two = {std::int64_t{2}};
  conn_->send({"BEGIN", {}});
  conn_->send({ins, one});
  conn_->send({"SELECT 1/0", {}});
  conn_->send({ins, two});
  conn_->send({"COMMIT", {}});
  conn_->send({"SELECT count(*) FROM " + table_, {}});
  std::vector<Outcome> out;
  std::vector<CollectSink> sinks(6);
  for (int i = 0; i < 6; ++i) out.push_back(run_sync(io_, conn_->receive(sinks[i])));
  EXPECT_FALSE(out[0].error);
  EXPECT_EQ(out[0].tx, TxStatus::in_tx);
  EXPECT_FALSE(out[1].error);
  EXPECT_EQ(out[1].tx, TxStatus::in_tx);
  ASSERT_TRUE(out[2].error);
  EXPECT_EQ(out[2].tx, TxStatus::failed_tx);
  ASSERT_TRUE(out[3].error);
  EXPECT_EQ(out[3].error->sqlstate, "25P02");
  EXPECT_EQ(out[3].tx, TxStatus::failed_tx);
  EXPECT_FALSE(out[4].error);  // COMMIT of a failed transaction rolls back
  EXPECT_EQ(out[4].tx, TxStatus::idle);
  EXPECT_EQ(sinks[5].rows.at(0).at(0), Value(std::int64_t{0}));
}

// send_begin_chained: the statement behind a chained BEGIN is in the BEGIN's Sync segment, so it
// runs only if the BEGIN did (issue 12: BEGIN and the first statement in one round trip).
TEST_F(PgBackendTest, AChainedBeginAndItsStatementGoInOneWriteAndTheStatementRunsOnlyIfBeginDid) {
  run("CREATE TABLE " + table_ + " (v int)");
  const std::string ins = "INSERT INTO " + table_ + " (v) VALUES ($1)";
  const std::vector<Value> one = {std::int64_t{1}}, two = {std::int64_t{2}}, three = {std::int64_t{3}};
  const auto w0 = stats(*conn_).writes;
  ASSERT_TRUE(conn_->send_begin_chained({"BEGIN", {}}));
  conn_->send({ins, one});
  CollectSink a, b;
  Outcome begin = run_sync(io_, conn_->receive(a));
  Outcome insert = run_sync(io_, conn_->receive(b));
  EXPECT_FALSE(begin.error);
  EXPECT_EQ(begin.tx, TxStatus::in_tx);
  ASSERT_FALSE(insert.error) << insert.error->message;
  EXPECT_EQ(insert.affected, 1);
  EXPECT_EQ(insert.tx, TxStatus::in_tx);
  EXPECT_EQ(stats(*conn_).writes, w0 + 1) << "one write for both";
  run("COMMIT");

  // A "BEGIN" that fails (any statement can be chained; a failing one stands in for a BEGIN the
  // server refuses): the statement behind it is skipped by the server, not run in autocommit.
  ASSERT_TRUE(conn_->send_begin_chained({"SELECT 1/0", {}}));
  conn_->send({ins, two});
  Outcome bad = run_sync(io_, conn_->receive(a));
  Outcome skipped = run_sync(io_, conn_->receive(b));
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->sqlstate, "22012");
  ASSERT_TRUE(skipped.error) << "affected " << skipped.affected << " tx " << static_cast<int>(skipped.tx)
                             << " bad.tx " << static_cast<int>(bad.tx);
  EXPECT_EQ(skipped.error->code, protocol::ErrorCode::not_in_transaction);
  EXPECT_FALSE(skipped.error->connection_broken);
  EXPECT_EQ(skipped.tx, TxStatus::idle);
  // A Parse that fails (unknown syntax) skips it too, and the same text later parses afresh.
  ASSERT_TRUE(conn_->send_begin_chained({"BEGN", {}}));
  conn_->send({ins, two});
  EXPECT_EQ(run_sync(io_, conn_->receive(a)).error.value_or(backend::BackendError{}).sqlstate, "42601");
  EXPECT_EQ(run_sync(io_, conn_->receive(b)).error.value_or(backend::BackendError{}).code,
            protocol::ErrorCode::not_in_transaction);
  // In step afterwards, the cached INSERT included.
  run(ins, three);
  EXPECT_EQ(scalar("SELECT string_agg(v::text, ',' ORDER BY v) FROM " + table_), Value(std::string("1,3")));

  // A statement refused before the wire (a NUL in its text) leaves the BEGIN to end its own
  // segment: it runs as if sent alone, and nothing waits for a Sync that never comes.
  ASSERT_TRUE(conn_->send_begin_chained({"BEGIN", {}}));
  conn_->send({std::string("SELECT '\0'", 10), {}});
  begin = run_sync(io_, conn_->receive(a));
  EXPECT_FALSE(begin.error);
  EXPECT_EQ(begin.tx, TxStatus::in_tx);
  EXPECT_EQ(run_sync(io_, conn_->receive(b)).error.value_or(backend::BackendError{}).code,
            protocol::ErrorCode::bad_request);
  run("ROLLBACK");
  // Nothing queued behind it at all: the same.
  ASSERT_TRUE(conn_->send_begin_chained({"BEGIN", {}}));
  begin = run_sync(io_, conn_->receive(a));
  EXPECT_FALSE(begin.error);
  EXPECT_EQ(begin.tx, TxStatus::in_tx);
  run("ROLLBACK");
  // What cannot be chained is refused up front, and nothing is queued.
  EXPECT_FALSE(conn_->send_begin_chained({"BEGIN", one}));
  EXPECT_EQ(conn_->outstanding(), 0);
  EXPECT_EQ(scalar("SELECT 5"), Value(std::int64_t{5}));
}

TEST_F(PgBackendTest, TransactionStatusFromReadyForQuery) {
  Outcome o;
  run("SELECT 1", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  run("BEGIN", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("SELECT 1", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  CollectSink s;
  o = exec(*conn_, "SELECT * FROM binds_no_such_table_xyz", {}, s);
  EXPECT_TRUE(o.error);
  EXPECT_EQ(o.tx, TxStatus::failed_tx);
  o = exec(*conn_, "SELECT 1", {}, s);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->sqlstate, "25P02");
  EXPECT_EQ(o.tx, TxStatus::failed_tx);
  run("ROLLBACK", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
  run("BEGIN", {}, &o);
  run("SAVEPOINT a", {}, &o);
  o = exec(*conn_, "SELECT 1/0", {}, s);
  EXPECT_EQ(o.tx, TxStatus::failed_tx);
  run("ROLLBACK TO SAVEPOINT a", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::in_tx);
  run("COMMIT", {}, &o);
  EXPECT_EQ(o.tx, TxStatus::idle);
}

// ---------------------------------------------------------------------------- cancel, abort, liveness

TEST_F(PgBackendTest, CancelStopsARunningStatement) {
  const auto t0 = Clock::now();
  Outcome o = exec_with(*conn_, "SELECT pg_sleep(10)", std::chrono::milliseconds(200), [&] { conn_->cancel(); });
  const double ms = ms_since(t0);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->code, protocol::ErrorCode::sql_error);
  EXPECT_EQ(o.error->sqlstate, "57014");
  EXPECT_TRUE(o.error->interrupted);
  EXPECT_FALSE(o.error->connection_broken);
  EXPECT_LT(ms, 2000);
  EXPECT_EQ(o.tx, TxStatus::idle);
  EXPECT_EQ(scalar("SELECT 1"), Value(std::int64_t{1}));

  // From another thread, as the engine's timers may.
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    conn_->cancel();
  });
  CollectSink s;
  o = exec(*conn_, "SELECT pg_sleep(10)", {}, s);
  canceller.join();
  ASSERT_TRUE(o.error);
  EXPECT_TRUE(o.error->interrupted);
}

TEST_F(PgBackendTest, ClientsOwnStatementTimeoutIsNotOurInterruption) {
  run("SET statement_timeout = '100ms'");
  auto e = fail("SELECT pg_sleep(2)");
  EXPECT_EQ(e.sqlstate, "57014");
  EXPECT_FALSE(e.interrupted);
  run("RESET statement_timeout");
}

TEST_F(PgBackendTest, CancelWithNothingRunningHasNoEffect) {
  conn_->cancel();
  EXPECT_EQ(stats(*conn_).cancels, 0u);
  Outcome o;
  run("SELECT pg_sleep(0.3)", {}, &o);
  EXPECT_FALSE(o.error);
  // Sent but not yet flushed: nothing runs at the server, so nothing to cancel.
  conn_->send({"SELECT pg_sleep(0.2)", {}});
  conn_->cancel();
  CollectSink s;
  o = run_sync(io_, conn_->receive(s));
  EXPECT_FALSE(o.error);

  // A cancel racing the end of its statement never reaches the next one.
  for (int i = 0; i < 15; ++i) {
    o = exec_with(*conn_, "SELECT pg_sleep(0.02)", std::chrono::milliseconds(i * 2), [&] { conn_->cancel(); });
    if (o.error) {
      EXPECT_TRUE(o.error->interrupted);
    }
    run("SELECT pg_sleep(0.05)", {}, &o);
    EXPECT_FALSE(o.error) << "iteration " << i;
  }
}

TEST_F(PgBackendTest, AbortEndsAPendingReceiveAtOnce) {
  const auto t0 = Clock::now();
  Outcome o = exec_with(*conn_, "SELECT pg_sleep(10)", std::chrono::milliseconds(200), [&] { conn_->abort(); });
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->code, protocol::ErrorCode::backend_unavailable);
  EXPECT_TRUE(o.error->connection_broken);
  EXPECT_EQ(o.tx, TxStatus::unknown);
  EXPECT_LT(ms_since(t0), 1000);
  EXPECT_FALSE(conn_->looks_alive());
  EXPECT_FALSE(run_sync(io_, conn_->ping()));
  CollectSink s;
  o = exec(*conn_, "SELECT 1", {}, s);
  ASSERT_TRUE(o.error);
  EXPECT_TRUE(o.error->connection_broken);
  run_void(io_, conn_->close());
  conn_.reset();
}

TEST_F(PgBackendTest, LooksAliveSeesATerminatedSession) {
  auto victim = open(url_);
  ASSERT_TRUE(victim);
  const auto pid = stats(*victim).backend_pid;
  EXPECT_TRUE(victim->looks_alive());
  EXPECT_TRUE(run_sync(io_, victim->ping()));

  // An idle LISTENer receiving a notification is still alive.
  run("LISTEN binds_pgbe_channel", {}, nullptr, victim.get());
  run("NOTIFY binds_pgbe_channel, 'hello'");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(victim->looks_alive());
  EXPECT_EQ(scalar("SELECT 5", {}, victim.get()), Value(std::int64_t{5}));

  EXPECT_EQ(scalar("SELECT pg_terminate_backend($1::int4)", {std::int64_t{pid}}), Value(true));
  bool alive = true;
  for (int i = 0; i < 50 && alive; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    alive = victim->looks_alive();
  }
  EXPECT_FALSE(alive);
  EXPECT_FALSE(run_sync(io_, victim->ping()));

  // A session killed while a statement waits: the FATAL ends it as broken.
  auto second = open(url_);
  ASSERT_TRUE(second);
  const auto pid2 = stats(*second).backend_pid;
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    asio::io_context io2;
    auto r = run_sync(io2, backend::connect(io2.get_executor(), url_, {}));
    ASSERT_TRUE(r.conn);
    CollectSink s;
    std::vector<Value> p = {std::int64_t{pid2}};
    run_sync(io2, r.conn->execute({"SELECT pg_terminate_backend($1::int4)", p}, s));
    run_void(io2, r.conn->close());
  });
  CollectSink s;
  Outcome o = exec(*second, "SELECT pg_sleep(10)", {}, s);
  killer.join();
  ASSERT_TRUE(o.error);
  EXPECT_TRUE(o.error->connection_broken);
  EXPECT_EQ(o.error->code, protocol::ErrorCode::backend_unavailable);
  EXPECT_EQ(o.error->sqlstate, "57P01");
}

TEST_F(PgBackendTest, PingAndClose) {
  EXPECT_TRUE(run_sync(io_, conn_->ping()));
  Outcome o;
  run("BEGIN", {}, &o);
  EXPECT_TRUE(run_sync(io_, conn_->ping()));
  run("ROLLBACK");
  const auto t0 = Clock::now();
  run_void(io_, conn_->close());
  EXPECT_LT(ms_since(t0), 1500);
  EXPECT_FALSE(conn_->looks_alive());
  conn_.reset();
}

// ---------------------------------------------------------------------------- reset and cache

TEST_F(PgBackendTest, ResetClearsSessionStateInTheSameWriteAsTheNextStatement) {
  Outcome o;
  run("SELECT 1", {}, &o);
  EXPECT_FALSE(o.session_state_changed);
  run("SET application_name = 'changed'", {}, &o);
  EXPECT_TRUE(o.session_state_changed);
  run("SET TIME ZONE 'America/New_York'", {}, &o);
  EXPECT_TRUE(o.session_state_changed);
  run("SET TIME ZONE 'America/New_York'", {}, &o);
  EXPECT_FALSE(o.session_state_changed) << "the same value again changes nothing";
  run("SET search_path = pg_catalog");
  run("CREATE TEMP TABLE binds_reset_tmp (x int)");
  run("PREPARE binds_reset_stmt AS SELECT 1");
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_prepared_statements WHERE name = 'binds_reset_stmt'"),
            Value(std::int64_t{1}));

  const auto before = stats(*conn_);
  conn_->send_reset();
  conn_->send({"SHOW application_name", {}});
  CollectSink r, show;
  o = run_sync(io_, conn_->receive(r));
  EXPECT_FALSE(o.error) << o.error->message;
  EXPECT_EQ(o.tx, TxStatus::idle);
  EXPECT_FALSE(o.session_state_changed);
  o = run_sync(io_, conn_->receive(show));
  ASSERT_FALSE(o.error);
  EXPECT_EQ(show.rows.at(0).at(0), Value(std::string("bindsd")));
  EXPECT_EQ(stats(*conn_).writes, before.writes + 1) << "the reset costs no round trip of its own";

  EXPECT_EQ(scalar("SELECT count(*) FROM pg_prepared_statements WHERE name = 'binds_reset_stmt'"),
            Value(std::int64_t{0}));
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_class WHERE relname = 'binds_reset_tmp'"), Value(std::int64_t{0}));
  EXPECT_NE(scalar("SHOW search_path"), Value(std::string("pg_catalog")));
  EXPECT_NE(scalar("SHOW TimeZone"), Value(std::string("America/New_York")));

  // "SELECT 1" was cached before the reset: it is parsed again, not bound to a dropped statement.
  const auto parses = stats(*conn_).parses;
  EXPECT_EQ(scalar("SELECT 1"), Value(std::int64_t{1}));
  EXPECT_EQ(stats(*conn_).parses, parses + 1);
  EXPECT_EQ(scalar("SELECT 1"), Value(std::int64_t{1}));
  EXPECT_EQ(stats(*conn_).parses, parses + 1);
}

TEST_F(PgBackendTest, RepeatedStatementsUseTheServerSidePreparedStatement) {
  const std::string sql = "SELECT $1::int8 + 1 AS next";
  const auto p0 = stats(*conn_).parses;
  CollectSink a = run(sql, {std::int64_t{1}});
  EXPECT_EQ(stats(*conn_).parses, p0 + 1);
  CollectSink b = run(sql, {std::int64_t{2}});
  EXPECT_EQ(stats(*conn_).parses, p0 + 1) << "second time: Bind/Execute/Sync only";
  EXPECT_EQ(b.rows.at(0).at(0), Value(std::int64_t{3}));
  ASSERT_EQ(b.cols.size(), 1u);
  EXPECT_EQ(b.cols[0].name, "next");
  EXPECT_EQ(b.cols[0].type, Type::int64);
  EXPECT_EQ(b.cols[0].db_type, "int8");
  // The server's view: one named statement with our text and parameter type.
  CollectSink ps = run("SELECT name, parameter_types::text FROM pg_prepared_statements WHERE statement = $1",
                       {sql});
  ASSERT_EQ(ps.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(ps.rows[0][0]).rfind("_binds_s", 0), 0u);
  EXPECT_EQ(ps.rows[0][1], Value(std::string("{bigint}")));

  // (That query was parsed too.) The same text with a text parameter is another statement: the
  // type is part of it.
  const auto p1 = stats(*conn_).parses;
  EXPECT_EQ(p1, p0 + 2);
  EXPECT_EQ(scalar(sql, {std::string("41")}), Value(std::int64_t{42}));
  EXPECT_EQ(stats(*conn_).parses, p1 + 1);

  // A failed Parse is not cached; a failed Bind leaves a statement that still works.
  const auto cached = stats(*conn_).cached_statements;
  fail("SELEKT 1");
  fail("SELEKT 1");
  EXPECT_EQ(stats(*conn_).parses, p1 + 3);
  EXPECT_EQ(stats(*conn_).cached_statements, cached);
  EXPECT_EQ(fail(sql, {std::string("not a number")}).sqlstate, "22P02");
  CollectSink c = run(sql, {std::string("9")});
  EXPECT_EQ(c.rows.at(0).at(0), Value(std::int64_t{10}));
  EXPECT_TRUE(c.got_columns);
  EXPECT_EQ(stats(*conn_).parses, p1 + 3);
  // First use with a failing Bind: the statement exists but its columns are unknown until a
  // later run describes it.
  const std::string sql2 = "SELECT $1::int8 * 10 AS tenfold";
  EXPECT_EQ(fail(sql2, {std::string("x")}).sqlstate, "22P02");
  CollectSink d = run(sql2, {std::string("4")});
  ASSERT_EQ(d.cols.size(), 1u);
  EXPECT_EQ(d.cols[0].name, "tenfold");
  EXPECT_EQ(d.rows.at(0).at(0), Value(std::int64_t{40}));
  EXPECT_EQ(stats(*conn_).parses, p1 + 4);
  CollectSink d2 = run(sql2, {std::string("5")});
  EXPECT_EQ(d2.cols.size(), 1u);
  EXPECT_EQ(d2.rows.at(0).at(0), Value(std::int64_t{50}));
  EXPECT_EQ(stats(*conn_).parses, p1 + 4);

  // The client's own DEALLOCATE ALL drops our statements too; we notice from its tag.
  run("DEALLOCATE ALL");
  EXPECT_EQ(scalar(sql, {std::int64_t{5}}), Value(std::int64_t{6}));
  EXPECT_EQ(stats(*conn_).parses, p1 + 6);

  // The client's DISCARD ALL too.
  run("DISCARD ALL");
  EXPECT_EQ(stats(*conn_).cached_statements, 0u);
  EXPECT_EQ(scalar(sql, {std::int64_t{6}}), Value(std::int64_t{7}));

  // A client that deallocates one of ours by name (no tag tells us): the Bind fails with 26000
  // and the statement is parsed again, unseen by the client.
  CollectSink name = run("SELECT name FROM pg_prepared_statements WHERE statement = $1", {sql});
  ASSERT_EQ(name.rows.size(), 1u);
  run("DEALLOCATE " + std::get<std::string>(name.rows[0][0]));
  EXPECT_EQ(scalar(sql, {std::int64_t{7}}), Value(std::int64_t{8}));
  EXPECT_EQ(scalar(sql, {std::int64_t{8}}), Value(std::int64_t{9}));
}

TEST_F(PgBackendTest, AStaleCachedPlanIsParsedAgainTransparentlyOutsideATransaction) {
  // A table whose columns change under a cached SELECT *: PostgreSQL refuses the stale plan
  // ("cached plan must not change result type"); outside a transaction the statement is run
  // again, parsed afresh, and the client never sees the error.
  const std::string sel = "SELECT * FROM " + table_ + " WHERE a >= $1";
  run("CREATE TABLE " + table_ + " (a int)");
  run("INSERT INTO " + table_ + " VALUES (1)");
  EXPECT_EQ(run(sel, {std::int64_t{0}}).cols.size(), 1u);
  run("ALTER TABLE " + table_ + " ADD COLUMN b int DEFAULT 7");
  CollectSink again = run(sel, {std::int64_t{0}});
  ASSERT_EQ(again.cols.size(), 2u);
  EXPECT_EQ(again.cols[1].name, "b");
  ASSERT_EQ(again.rows.size(), 1u);
  EXPECT_EQ(again.rows[0][1], Value(std::int64_t{7}));
  EXPECT_EQ(run(sel, {std::int64_t{0}}).cols.size(), 2u);

  // Inside a transaction the failed Bind has aborted it: the error is the client's to see.
  run("ALTER TABLE " + table_ + " ADD COLUMN c int");
  run("BEGIN");
  CollectSink s;
  Outcome o = exec(*conn_, sel, {std::int64_t{0}}, s);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->sqlstate, "0A000");
  EXPECT_EQ(o.tx, TxStatus::failed_tx);
  run("ROLLBACK");
  EXPECT_EQ(run(sel, {std::int64_t{0}}).cols.size(), 3u);
}

TEST_F(PgBackendTest, StatementCacheEvictsLeastRecentlyUsedAndClosesThem) {
  ASSERT_TRUE(backend::pg::set_statement_cache_capacity(*conn_, 4));
  const auto s0 = stats(*conn_);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(scalar("SELECT " + std::to_string(i)), Value(std::int64_t{i}));
  }
  auto s1 = stats(*conn_);
  EXPECT_EQ(s1.cached_statements, 4u);
  EXPECT_EQ(s1.cache_evictions - s0.cache_evictions, 6u + s0.cached_statements);
  EXPECT_EQ(s1.closes - s0.closes, s1.cache_evictions - s0.cache_evictions);
  // On the server too (the counting statement is one of the four).
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_binds\\_s%'"),
            Value(std::int64_t{4}));
  // The most recent ones are still cached, the oldest are not.
  const auto p = stats(*conn_).parses;
  scalar("SELECT 9");
  EXPECT_EQ(stats(*conn_).parses, p);
  scalar("SELECT 0");
  EXPECT_EQ(stats(*conn_).parses, p + 1);

  // Capacity 0: nothing is cached, every statement is parsed unnamed.
  ASSERT_TRUE(backend::pg::set_statement_cache_capacity(*conn_, 0));
  run("DEALLOCATE ALL");
  const auto q = stats(*conn_).parses;
  scalar("SELECT 9");
  scalar("SELECT 9");
  EXPECT_EQ(stats(*conn_).parses, q + 2);
  EXPECT_EQ(stats(*conn_).cached_statements, 0u);
}

// ---------------------------------------------------------------------------- TLS

class PgTlsTest : public PgBackendTest {
 protected:
  void SetUp() override {
    PgBackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    tls_url_text_ = env("BINDS_TEST_PG_TLS_URL");
    root_ = env("BINDS_TEST_PG_TLS_ROOT");
    if (tls_url_text_.empty() || root_.empty()) {
      GTEST_SKIP() << "BINDS_TEST_PG_TLS_URL / BINDS_TEST_PG_TLS_ROOT not set (a server with ssl=on)";
    }
    tls_url_ = parse_url(tls_url_text_);
  }
  DatabaseUrl with(std::initializer_list<std::pair<const char*, std::string>> opts) {
    DatabaseUrl u = tls_url_;
    for (const auto& [k, v] : opts) u.options[k] = v;
    return u;
  }
  std::string tls_url_text_, root_;
  DatabaseUrl tls_url_;
};

TEST_F(PgTlsTest, SslModes) {
  for (const char* mode : {"prefer", "require"}) {
    auto c = open(with({{"sslmode", mode}}));
    ASSERT_TRUE(c) << mode;
    EXPECT_TRUE(stats(*c).tls) << mode;
    EXPECT_EQ(scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", {}, c.get()), Value(true));
  }
  auto plain = open(with({{"sslmode", "disable"}}));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(stats(*plain).tls);
  EXPECT_EQ(scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", {}, plain.get()), Value(false));

  // verify-full: the certificate is for 127.0.0.1 and signed by the root we trust.
  auto full = open(with({{"sslmode", "verify-full"}, {"sslrootcert", root_}}));
  ASSERT_TRUE(full);
  EXPECT_TRUE(stats(*full).tls);
  auto ca = open(with({{"sslmode", "verify-ca"}, {"sslrootcert", root_}}));
  ASSERT_TRUE(ca);

  // verify-full against a root that did not sign it: refused.
  auto r = connect(with({{"sslmode", "verify-full"}, {"sslrootcert", "/etc/ssl/certs/ca-certificates.crt"}}));
  EXPECT_FALSE(r.conn);
  EXPECT_NE(r.error.message.find("certificate verify failed"), std::string::npos) << r.error.message;
  // verify-full with a name the certificate does not carry (it names the address only), while
  // verify-ca, which checks the chain alone, accepts it.
  DatabaseUrl wrong = with({{"sslmode", "verify-full"}, {"sslrootcert", root_}});
  wrong.host = "localhost";
  r = connect(wrong);
  EXPECT_FALSE(r.conn);
  wrong.options["sslmode"] = "verify-ca";
  r = connect(wrong);
  EXPECT_TRUE(r.conn) << r.error.message;
}

TEST_F(PgTlsTest, QueriesAndCancelOverTls) {
  auto c = open(with({{"sslmode", "require"}}));
  ASSERT_TRUE(c);
  CountingSink s;
  Outcome o = exec(*c, "SELECT g, repeat('t', 100) FROM generate_series(1, 200000) g", {}, s);
  ASSERT_FALSE(o.error);
  EXPECT_EQ(s.rows, 200000);
  const auto t0 = Clock::now();
  o = exec_with(*c, "SELECT pg_sleep(10)", std::chrono::milliseconds(200), [&] { c->cancel(); });
  ASSERT_TRUE(o.error);
  EXPECT_TRUE(o.error->interrupted);
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_TRUE(c->looks_alive());
  EXPECT_TRUE(run_sync(io_, c->ping()));
  run_void(io_, c->close());
}

// ---------------------------------------------------------------------------- micro-benchmark

class NullSink : public backend::ResultSink {
 public:
  void columns(std::span<const protocol::Column>) override {}
  void row(std::span<const backend::ValueView> v) override { sum += v[0].i; }
  bool full() const override { return false; }
  asio::awaitable<bool> drained() override { co_return true; }
  std::size_t max_row_bytes() const override { return SIZE_MAX; }
  std::int64_t sum = 0;
};

TEST_F(PgBackendTest, MicroBenchmarkAgainstLibpq) {
  if (env("BINDS_PG_BENCH") != "1") GTEST_SKIP() << "set BINDS_PG_BENCH=1";
  const int n = 100000;
  auto report = [&](const char* what, double wall_ms, double cpu_s) {
    std::printf("[ bench ] %-34s %8.0f q/s  %6.2f us CPU/query  (%.0f ms wall)\n", what,
                n / (wall_ms / 1000), cpu_s * 1e6 / n, wall_ms);
  };

  // This backend, one statement at a time.
  NullSink sink;
  auto t0 = Clock::now();
  double c0 = cpu_seconds();
  run_sync(io_, [&]() -> asio::awaitable<int> {
    for (int i = 0; i < n; ++i) co_await conn_->execute({"SELECT 1", {}}, sink);
    co_return 0;
  }());
  report("binds backend, sequential", ms_since(t0), cpu_seconds() - c0);
  EXPECT_EQ(sink.sum, n);

  // This backend, 32 in flight.
  sink.sum = 0;
  t0 = Clock::now();
  c0 = cpu_seconds();
  run_sync(io_, [&]() -> asio::awaitable<int> {
    int sent = 0;
    for (; sent < 32; ++sent) conn_->send({"SELECT 1", {}});
    for (int got = 0; got < n; ++got) {
      co_await conn_->receive(sink);
      if (sent < n) {
        conn_->send({"SELECT 1", {}});
        ++sent;
      }
    }
    co_return 0;
  }());
  report("binds backend, pipeline depth 32", ms_since(t0), cpu_seconds() - c0);
  EXPECT_EQ(sink.sum, n);

  // With a parameter (Bind carries a value).
  sink.sum = 0;
  t0 = Clock::now();
  c0 = cpu_seconds();
  std::vector<Value> one = {std::int64_t{1}};
  run_sync(io_, [&]() -> asio::awaitable<int> {
    for (int i = 0; i < n; ++i) co_await conn_->execute({"SELECT $1::int8", one}, sink);
    co_return 0;
  }());
  report("binds backend, sequential, 1 param", ms_since(t0), cpu_seconds() - c0);

  // libpq, the same loops.
  PGconn* pq = PQconnectdb((url_text_ + "?sslmode=disable").c_str());
  ASSERT_EQ(PQstatus(pq), CONNECTION_OK) << PQerrorMessage(pq);
  t0 = Clock::now();
  c0 = cpu_seconds();
  long sum = 0;
  for (int i = 0; i < n; ++i) {
    PGresult* r = PQexecParams(pq, "SELECT 1", 0, nullptr, nullptr, nullptr, nullptr, 0);
    sum += std::atol(PQgetvalue(r, 0, 0));
    PQclear(r);
  }
  report("libpq PQexecParams, sequential", ms_since(t0), cpu_seconds() - c0);
  EXPECT_EQ(sum, n);

  ASSERT_EQ(PQenterPipelineMode(pq), 1);
  t0 = Clock::now();
  c0 = cpu_seconds();
  sum = 0;
  int sent = 0, got = 0;
  auto send_one = [&] {
    PQsendQueryParams(pq, "SELECT 1", 0, nullptr, nullptr, nullptr, nullptr, 0);
    PQpipelineSync(pq);
    ++sent;
  };
  while (sent < 32) send_one();
  PQflush(pq);
  while (got < n) {
    // Results of one statement: its tuples result, a null, then the sync marker.
    PGresult* r = PQgetResult(pq);
    if (r == nullptr) continue;
    const auto st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
      sum += std::atol(PQgetvalue(r, 0, 0));
    } else if (st == PGRES_PIPELINE_SYNC) {
      ++got;
      if (sent < n) {
        send_one();
        PQflush(pq);
      }
    }
    PQclear(r);
  }
  report("libpq pipeline mode, depth 32", ms_since(t0), cpu_seconds() - c0);
  EXPECT_EQ(sum, n);
  PQfinish(pq);
}

// Array text as PostgreSQL writes it, into the protocol's MessagePack arrays (no server needed).
protocol::Value array_of(std::string_view text, protocol::Type element) {
  std::string packed;
  EXPECT_TRUE(backend::pg::encode_array_text(text, element, packed)) << text;
  protocol::Value v;
  std::string why;
  EXPECT_TRUE(protocol::decode_packed_value(packed, v, why)) << why;
  return v;
}

TEST(PgArrayText, NestedQuotedNullsEscapesAndBounds) {
  using protocol::Array;
  using protocol::Null;
  using protocol::Tagged;
  using protocol::Type;
  using protocol::Value;
  EXPECT_EQ(array_of("{1,2,NULL}", Type::int64), Value(Array{{std::int64_t{1}, std::int64_t{2}, Null{}}}));
  EXPECT_EQ(array_of("{}", Type::int64), Value(Array{}));
  EXPECT_EQ(array_of("{{1,2},{3,4}}", Type::int64),
            Value(Array{{Array{{std::int64_t{1}, std::int64_t{2}}}, Array{{std::int64_t{3}, std::int64_t{4}}}}}));
  EXPECT_EQ(array_of(R"({"a b","c\"d",NULL,"NULL",plain})", Type::text),
            Value(Array{{std::string("a b"), std::string("c\"d"), Null{}, std::string("NULL"), std::string("plain")}}));
  EXPECT_EQ(array_of("[0:1]={7,8}", Type::int64), Value(Array{{std::int64_t{7}, std::int64_t{8}}}));
  EXPECT_EQ(array_of("{1.50,NaN}", Type::decimal),
            Value(Array{{Tagged{Type::decimal, "1.50"}, Tagged{Type::decimal, "NaN"}}}));
  EXPECT_EQ(array_of("{1,2.5}", Type::float64), Value(Array{{1.0, 2.5}}));
  EXPECT_EQ(array_of(R"({"\\x00ff"})", Type::bytes), Value(Array{{protocol::Bytes{std::string("\0\xff", 2)}}}));
  EXPECT_EQ(array_of("{t,f}", Type::boolean), Value(Array{{true, false}}));
  std::string out;
  for (const char* bad : {"", "1,2", "{1,2", "{1,,2}", "{\"open}", "{1} trailing", "{{{{{{{1}}}}}}}"})
    EXPECT_FALSE(backend::pg::encode_array_text(bad, Type::int64, out)) << bad;
}

TEST(PgArrayText, ParametersBecomeLiteralsOfTheElementsType) {
  using protocol::Array;
  using protocol::Null;
  using protocol::Type;
  std::string lit;
  EXPECT_EQ(backend::pg::array_literal(Array{{std::int64_t{1}, Null{}, std::int64_t{-3}}}, lit), 1016u);
  EXPECT_EQ(lit, "{1,NULL,-3}");
  lit.clear();
  EXPECT_EQ(backend::pg::array_literal(Array{{std::string("a\"b"), std::string("c\\d,e")}}, lit), 1009u);
  EXPECT_EQ(lit, R"({"a\"b","c\\d,e"})");
  lit.clear();
  EXPECT_EQ(backend::pg::array_literal(Array{{Array{{1.5, std::int64_t{2}}}, Array{{3.0, 4.0}}}}, lit), 1022u);
  EXPECT_EQ(lit, "{{1.5,2},{3,4}}");
  lit.clear();
  EXPECT_EQ(backend::pg::array_literal(Array{{std::int64_t{1}, std::string("x")}}, lit), 0u);  // mixed: inferred
  lit.clear();
  EXPECT_EQ(backend::pg::array_literal(Array{}, lit), 0u);
  EXPECT_EQ(lit, "{}");
}

}  // namespace
}  // namespace binds::test
