// Pools seen from the backend's own view: max never exceeded, min kept warm, idle and lifetime
// limits, broken connections replaced, transactions pinned and rolled back.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "client/format.hpp"
#include "harness.hpp"

namespace binds::test {
namespace {

using client::Client;
using client::ServerError;
using protocol::ErrorCode;
using protocol::Value;
using ::testing::HasSubstr;

std::int64_t as_int(const Value& v) { return std::get<std::int64_t>(v); }

// Connections the backend sees from one application_name (PostgreSQL) or one database (MariaDB).
std::int64_t pg_backends(Client& admin, const std::string& app) {
  return as_int(admin
                    .query("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                           {app}, std::string("admin"))
                    .rows.at(0)
                    .at(0));
}

std::int64_t mysql_backends(Client& admin, const std::string& db) {
  return as_int(admin
                    .query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?", {db},
                           std::string("myadmin"))
                    .rows.at(0)
                    .at(0));
}

std::string with_option(const std::string& url, const std::string& opt) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + opt;
}

struct LoadResult {
  int ok = 0, failed = 0;
  std::int64_t peak = 0;  // most backend connections seen at once
};

// 200 clients × 50 queries of `sql` (one int parameter n, expecting 2n back) through bind `conc`,
// while a sampler counts the backend's own view of the bind's connections every 5 ms.
LoadResult run_sampled_load(const Daemon& d, const std::string& sql,
                            const std::function<std::int64_t(Client&)>& backends) {
  std::atomic<int> ok{0}, failed{0};
  std::atomic<bool> done{false};
  std::atomic<std::int64_t> peak{0};
  std::thread sampler([&] {
    auto admin = d.connect();
    while (!done) {
      auto n = backends(admin);
      if (n > peak) peak = n;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::vector<std::thread> clients;
  for (int i = 0; i < 200; ++i) {
    clients.emplace_back([&, i] {
      try {
        auto c = d.connect();
        for (int q = 0; q < 50; ++q) {
          std::int64_t n = i * 100 + q;
          auto r = c.query(sql, {n});
          if (client::value_text(r.rows.at(0).at(0)) == std::to_string(2 * n)) ++ok;
          else ++failed;
        }
      } catch (const std::exception& e) {
        ++failed;
        ADD_FAILURE() << "client " << i << ": " << e.what();
      }
    });
  }
  for (auto& t : clients) t.join();
  done = true;
  sampler.join();
  return {ok.load(), failed.load(), peak.load()};
}

// 200 clients × 50 queries through a bind with max 5: every query succeeds and the backend never
// sees more than 5 connections from it. Sampled from a separate bind while the load runs.
TEST(Pool, TwoHundredClientsShareFiveConnectionsOnPostgres) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("default: conc\nbinds:\n"
           "  conc:\n    url: " + with_option(pg, "application_name=binds_conc") +
           "\n    pool: { max: 5, acquire_timeout: 30s }\n"
           "  admin:\n    url: " + pg + "\n    pool: { max: 1 }\n");
  auto r = run_sampled_load(d, "SELECT $1::bigint * 2, pg_backend_pid()",
                            [](Client& admin) { return pg_backends(admin, "binds_conc"); });
  EXPECT_EQ(r.ok, 200 * 50);
  EXPECT_EQ(r.failed, 0);
  EXPECT_GE(r.peak, 1);
  EXPECT_LE(r.peak, 5) << "backend saw more connections than pool max";
  auto admin = d.connect();
  EXPECT_LE(pg_backends(admin, "binds_conc"), 5);
}

TEST(Pool, TwoHundredClientsShareFiveConnectionsOnMariaDB) {
  BINDS_REQUIRE_URL("BINDS_TEST_MYSQL_URL", my);
  // A database of its own, so PROCESSLIST can tell this bind's connections apart.
  {
    Daemon setup("binds:\n  x: " + my + "\n");
    setup.connect().query("CREATE DATABASE IF NOT EXISTS binds_conc");
  }
  auto slash = my.rfind('/');
  std::string conc_url = my.substr(0, slash) + "/binds_conc";
  Daemon d("default: conc\nbinds:\n"
           "  conc:\n    url: " + conc_url + "\n    pool: { max: 5, acquire_timeout: 30s }\n"
           "  myadmin:\n    url: " + my + "\n    pool: { max: 1 }\n");
  auto r = run_sampled_load(d, "SELECT ? * 2", [](Client& admin) { return mysql_backends(admin, "binds_conc"); });
  EXPECT_EQ(r.ok, 200 * 50);
  EXPECT_GE(r.peak, 1);
  EXPECT_LE(r.peak, 5) << "backend saw more connections than pool max";
}

TEST(Pool, MinIsKeptWarmAndIdleConnectionsAreClosed) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("default: warm\nbinds:\n"
           "  warm:\n    url: " + with_option(pg, "application_name=binds_warm") +
           "\n    pool: { max: 4, min: 2, idle_timeout: 1s }\n"
           "  burst:\n    url: " + with_option(pg, "application_name=binds_burst") +
           "\n    pool: { max: 4, min: 0, idle_timeout: 1s }\n"
           "  admin:\n    url: " + pg + "\n    pool: { max: 1 }\n");
  auto admin = d.connect();
  // min connections open without any request.
  std::int64_t warm = 0;
  for (int i = 0; i < 100 && warm < 2; ++i) {
    warm = pg_backends(admin, "binds_warm");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(warm, 2);
  // Open several burst connections at once (each held by a transaction), then let them idle out.
  {
    std::vector<Client> cs;
    for (int i = 0; i < 3; ++i) {
      cs.push_back(d.connect());
      cs.back().query("BEGIN", {}, std::string("burst"));
    }
    EXPECT_EQ(pg_backends(admin, "binds_burst"), 3);
    for (auto& c : cs) c.query("COMMIT", {}, std::string("burst"));
  }
  std::int64_t left = -1;
  for (int i = 0; i < 60 && left != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    left = pg_backends(admin, "binds_burst");
  }
  EXPECT_EQ(left, 0) << "idle connections were not closed after idle_timeout";
  EXPECT_EQ(pg_backends(admin, "binds_warm"), 2) << "min must survive idle_timeout";
}

TEST(Pool, ConnectionsAreReplacedAfterMaxLifetime) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("binds:\n  db:\n    url: " + pg + "\n    pool: { max: 1, max_lifetime: 1s }\n");
  auto c = d.connect();
  auto pid1 = as_int(c.query("SELECT pg_backend_pid()::bigint").rows.at(0).at(0));
  EXPECT_EQ(as_int(c.query("SELECT pg_backend_pid()::bigint").rows.at(0).at(0)), pid1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  auto pid2 = as_int(c.query("SELECT pg_backend_pid()::bigint").rows.at(0).at(0));
  EXPECT_NE(pid1, pid2);
}

TEST(Pool, BrokenConnectionIsDetectedAndReplaced) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("default: db\nbinds:\n  db:\n    url: " + pg + "\n    pool: { max: 1 }\n"
           "  admin:\n    url: " + pg + "\n    pool: { max: 1 }\n");
  auto c = d.connect();
  auto pid = as_int(c.query("SELECT pg_backend_pid()::bigint").rows.at(0).at(0));
  c.query("SELECT pg_terminate_backend($1::int)", {pid}, std::string("admin"));
  // Right away: the dead connection is noticed either before use (the server's FATAL is already
  // in the socket) or by the statement itself, which then fails with BACKEND_UNAVAILABLE.
  try {
    c.query("SELECT 1");
  } catch (const ServerError& e) {
    EXPECT_EQ(e.info.code, ErrorCode::backend_unavailable) << e.what();
  }
  auto pid2 = as_int(c.query("SELECT pg_backend_pid()::bigint").rows.at(0).at(0));
  EXPECT_NE(pid, pid2);
  // After idling long enough to be validated, a killed connection is replaced invisibly.
  c.query("SELECT pg_terminate_backend($1::int)", {pid2}, std::string("admin"));
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  EXPECT_NE(as_int(c.query("SELECT pg_backend_pid()::bigint").rows.at(0).at(0)), pid2);
}

TEST(Pool, AcquireTimeoutNamesTheBind) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("binds:\n  tiny:\n    url: " + pg + "\n    pool: { max: 1, acquire_timeout: 300ms }\n");
  auto holder = d.connect();
  holder.query("BEGIN");  // pins the only connection
  auto other = d.connect();
  auto t0 = std::chrono::steady_clock::now();
  try {
    other.query("SELECT 1");
    ADD_FAILURE() << "expected POOL_TIMEOUT";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.info.code, ErrorCode::pool_timeout);
    EXPECT_EQ(e.info.bind, "tiny");
    EXPECT_THAT(e.info.message, HasSubstr("tiny"));
  }
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
  holder.query("COMMIT");
  EXPECT_EQ(as_int(other.query("SELECT 1::bigint").rows.at(0).at(0)), 1);
}

struct PinCase {
  const char* name;
  const char* url_var;  // "" = SQLite file
  const char* begin;
};

class Pinning : public ::testing::TestWithParam<PinCase> {};

// A connection inside a transaction stays with its client, in order, and is rolled back if the
// client goes away; nobody else ever sees it mid-transaction.
TEST_P(Pinning, TransactionsPinAndRollBackOnDisconnect) {
  auto tmp = make_temp_dir("pin");
  BINDS_CASE_URL(GetParam().url_var, tmp, url);
  bool pg = std::string(GetParam().name) == "postgresql";
  auto p = [&](int n) { return pg ? "$" + std::to_string(n) : std::string("?"); };
  Daemon d("binds:\n  db:\n    url: " + url + "\n    pool: { max: 1, acquire_timeout: 300ms }\n");
  std::string t = std::string("pin_") + std::to_string(getpid());
  {
    auto c = d.connect();
    c.query("DROP TABLE IF EXISTS " + t);
    c.query("CREATE TABLE " + t + " (v INTEGER)");
  }
  {
    auto a = d.connect();
    auto r = a.query(GetParam().begin);
    EXPECT_TRUE(r.complete.in_transaction);
    r = a.query("INSERT INTO " + t + " VALUES (" + p(1) + ")", {std::int64_t{1}});
    EXPECT_TRUE(r.complete.in_transaction);
    // The only connection is pinned to a: b cannot get it.
    auto b = d.connect();
    EXPECT_EQ(error_code_of([&] { b.query("SELECT 1"); }), ErrorCode::pool_timeout);
    // a disconnects with its transaction open.
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto c = d.connect();
  auto r = c.query("SELECT COUNT(*) FROM " + t);
  EXPECT_EQ(client::value_text(r.rows.at(0).at(0)), "0") << "the abandoned insert was not rolled back";
  EXPECT_FALSE(r.complete.in_transaction);
  // A committed transaction is kept.
  c.query(GetParam().begin);
  c.query("INSERT INTO " + t + " VALUES (" + p(1) + ")", {std::int64_t{2}});
  auto done = c.query("COMMIT");
  EXPECT_FALSE(done.complete.in_transaction);
  EXPECT_EQ(client::value_text(d.connect().query("SELECT COUNT(*) FROM " + t).rows.at(0).at(0)), "1");
  c.query("DROP TABLE " + t);
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Pinning,
                         ::testing::Values(PinCase{"postgresql", "BINDS_TEST_PG_URL", "BEGIN"},
                                           PinCase{"mysql", "BINDS_TEST_MYSQL_URL", "START TRANSACTION"},
                                           PinCase{"sqlite", "", "BEGIN"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Pool, SqliteMemoryDatabaseIsSharedByThePoolsConnections) {
  Daemon d("binds:\n  mem:\n    url: \"sqlite://\"\n    pool: { max: 2 }\n");
  auto a = d.connect();
  a.query("CREATE TABLE shared_t (v INTEGER)");
  a.query("INSERT INTO shared_t VALUES (7)");
  a.query("BEGIN");  // pins connection 1, so b must use connection 2
  a.query("SELECT 1");
  auto b = d.connect();
  auto r = b.query("SELECT v FROM shared_t");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], Value(std::int64_t{7}));
  a.query("ROLLBACK");
}

}  // namespace
}  // namespace binds::test
