// A bounded soak: many clients mix transactions, commits, rollbacks, cancels, timeouts and abrupt
// disconnects on all three backends at once. Afterwards, counted in each backend directly (not
// through bindsd): every committed row is there, no rolled-back or abandoned row is, and the
// backends see only idle connections within each pool's max. BINDS_SOAK_SECONDS sets the length.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "client/format.hpp"
#include "direct.hpp"
#include "harness.hpp"

namespace binds::test {
namespace {

using client::Client;
using client::Reply;
using client::ServerError;
using protocol::ErrorCode;
using protocol::Value;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Target {
  std::string bind, url, sleep_sql, p1;
};

struct Ledger {
  std::mutex mu;
  std::set<std::int64_t> committed, discarded;
  std::vector<std::string> unexpected;
  void add(bool commit, const std::vector<std::int64_t>& ids) {
    std::lock_guard lock(mu);
    (commit ? committed : discarded).insert(ids.begin(), ids.end());
  }
  void fail(const std::string& what) {
    std::lock_guard lock(mu);
    if (unexpected.size() < 20) unexpected.push_back(what);
  }
};

TEST(Soak, MixedTrafficLosesNothingAndLeaksNothing) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  BINDS_REQUIRE_URL("BINDS_TEST_MYSQL_URL", my);
  int seconds = env("BINDS_SOAK_SECONDS").empty() ? 30 : std::stoi(env("BINDS_SOAK_SECONDS"));
  auto tmp = make_temp_dir("soak");

  // Own databases, so the backend's view of "our" connections is unambiguous.
  direct(my, "CREATE DATABASE IF NOT EXISTS binds_soak");
  std::string my_soak = my.substr(0, my.rfind('/')) + "/binds_soak";
  std::string pg_soak = pg + "?application_name=binds_soak";
  std::string lite = "sqlite:///" + (tmp / "soak.db").string();
  std::vector<Target> targets = {
      {"pg", pg_soak, "SELECT pg_sleep(5)", "$1"},
      {"my", my_soak, "SELECT SLEEP(5)", "?"},
      {"lite", lite,
       "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT max(x) FROM c",
       "?"}};
  for (auto& t : targets) {
    direct(t.url, "DROP TABLE IF EXISTS soak");
    direct(t.url, "CREATE TABLE soak (id BIGINT PRIMARY KEY, worker INTEGER)");
  }
  Daemon d("default: lite\nbinds:\n"
           "  pg:\n    url: " + pg_soak + "\n    pool: { max: 4, acquire_timeout: 10s }\n"
           "  my:\n    url: " + my_soak + "\n    pool: { max: 4, acquire_timeout: 10s }\n"
           "  lite:\n    url: " + lite + "\n    pool: { max: 4, acquire_timeout: 10s }\n",
           "");

  Ledger ledger;
  std::atomic<int> actions{0};
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  auto worker = [&](int w) {
    std::mt19937 rng(1000 + w);
    std::int64_t next = std::int64_t{w + 1} * 1000000000;
    auto c = std::make_unique<Client>(d.connect());
    while (Clock::now() < deadline) {
      const Target& t = targets[rng() % targets.size()];
      std::string ins = "INSERT INTO soak VALUES (" + t.p1 + ", " + (t.p1 == "?" ? "?" : "$2") + ")";
      std::vector<std::int64_t> ids;
      int action = static_cast<int>(rng() % 6);
      try {
        switch (action) {
          case 0:  // transaction that commits
          case 1: {  // transaction that rolls back
            c->begin(t.bind);
            for (int k = 0; k < 3; ++k) {
              ids.push_back(next++);
              c->query(ins, {ids.back(), std::int64_t{w}}, t.bind);
            }
            if (action == 0) {
              c->commit(t.bind);
              ledger.add(true, ids);
            } else {
              c->rollback(t.bind);
              ledger.add(false, ids);
            }
            break;
          }
          case 2: {  // autocommit insert
            ids.push_back(next++);
            c->query(ins, {ids.back(), std::int64_t{w}}, t.bind);
            ledger.add(true, ids);
            break;
          }
          case 3: {  // cancel a running statement
            auto id = c->send_query(t.sleep_sql, {}, t.bind);
            std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 50));
            auto cid = c->send_cancel(id);
            auto t0 = Clock::now();
            Reply r = c->wait(id);
            c->wait(cid);
            auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
            if ((!r.error || r.error->code != ErrorCode::cancelled))
              ledger.fail("cancel on " + t.bind + " after " + std::to_string(waited) + " ms: " +
                          (r.error ? r.error->message
                                   : "completed with " + (r.result.rows.empty() ? std::string("no row")
                                                                                : client::value_text(r.result.rows[0][0]))));
            break;
          }
          case 4: {  // statement timeout
            auto t0 = Clock::now();
            auto id = c->send_query(t.sleep_sql, {}, t.bind, 50 + rng() % 100);
            Reply r = c->wait(id);
            auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
            if ((!r.error || r.error->code != ErrorCode::timeout))
              ledger.fail("timeout on " + t.bind + " after " + std::to_string(waited) + " ms: " +
                          (r.error ? r.error->message
                                   : "completed with " + (r.result.rows.empty() ? std::string("no row")
                                                                                : client::value_text(r.result.rows[0][0]))));
            break;
          }
          case 5: {  // abrupt disconnect inside a transaction, sometimes mid-statement
            c->begin(t.bind);
            ids.push_back(next++);
            c->query(ins, {ids.back(), std::int64_t{w}}, t.bind);
            ledger.add(false, ids);
            if (rng() % 2) c->send_query(t.sleep_sql, {}, t.bind);
            c = std::make_unique<Client>(d.connect());  // the old one hangs up
            break;
          }
        }
        ++actions;
      } catch (const std::exception& e) {
        ledger.fail(std::string("action ") + std::to_string(action) + " on " + t.bind + ": " + e.what());
        // Whatever state the transaction is in, do not count its rows either way.
        {
          std::lock_guard lock(ledger.mu);
          for (auto id : ids) {
            ledger.committed.erase(id);
            ledger.discarded.erase(id);
          }
        }
        c = std::make_unique<Client>(d.connect());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < 12; ++w) threads.emplace_back(worker, w);
  for (auto& t : threads) t.join();
  std::this_thread::sleep_for(1500ms);  // disconnected sessions finish their rollbacks

  for (const auto& u : ledger.unexpected) ADD_FAILURE() << "unprovoked error: " << u;
  EXPECT_GT(actions, 100) << "the soak did too little to mean anything";
  std::printf("[ figures  ] soak: %d actions in %d s, %zu rows committed, %zu discarded\n", actions.load(), seconds,
              ledger.committed.size(), ledger.discarded.size());

  std::set<std::int64_t> present;
  for (auto& t : targets)
    for (auto& row : direct(t.url, "SELECT id FROM soak")) present.insert(as_int(row.at(0)));
  for (auto id : ledger.committed) EXPECT_TRUE(present.count(id)) << "committed row " << id << " is missing";
  for (auto id : ledger.discarded) EXPECT_FALSE(present.count(id)) << "rolled-back row " << id << " is present";
  EXPECT_EQ(present.size(), ledger.committed.size());

  // The backends' own view: within max, nothing active or inside a transaction.
  auto pg_conns = direct(pg, "SELECT state FROM pg_stat_activity WHERE application_name = 'binds_soak'");
  EXPECT_LE(pg_conns.size(), 4u);
  for (auto& r : pg_conns) EXPECT_EQ(client::value_text(r.at(0)), "idle");
  auto my_conns = direct(my, "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE DB = 'binds_soak'");
  EXPECT_LE(my_conns.size(), 4u);
  for (auto& r : my_conns) EXPECT_EQ(client::value_text(r.at(0)), "Sleep");
  auto my_tx = direct(my,
                      "SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p "
                      "ON t.trx_mysql_thread_id = p.ID WHERE p.DB = 'binds_soak'");
  EXPECT_EQ(as_int(my_tx.at(0).at(0)), 0);

  for (auto& t : targets) direct(t.url, "DROP TABLE soak");
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace
}  // namespace binds::test
