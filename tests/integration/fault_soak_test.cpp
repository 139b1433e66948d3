// Fault-injection soak (issue 9): clients commit uniquely numbered two-row transactions on a
// PostgreSQL and a MariaDB bind while the test crashes, kills, freezes, stops and restarts the
// servers, terminates their sessions, reloads bindsd, and clients hang up mid-transaction.
// Afterwards, counted in the backends directly: every acknowledged COMMIT is there in full, no row
// of a rolled-back, refused or abandoned transaction is, a transaction whose COMMIT outcome is
// unknown is all or nothing, and nothing is left pinned or open. BINDS_FAULT_SOAK_SECONDS sets the
// length (default 25).

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "client/format.hpp"
#include "direct.hpp"
#include "harness.hpp"

namespace binds::test {
namespace {

using client::Client;
using client::ClientError;
using client::ServerError;
using protocol::ErrorCode;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

enum class Outcome { committed, absent, unknown };

struct Ledger {
  std::mutex mu;
  std::map<std::pair<int, int>, Outcome> tx;  // (worker, seq) → what the client was told
  std::map<std::string, int> errors;         // error code → count, for the figures line
  void set(int w, int seq, Outcome o) {
    std::lock_guard lock(mu);
    tx[{w, seq}] = o;
  }
  void error(const std::string& code) {
    std::lock_guard lock(mu);
    ++errors[code];
  }
};

struct Target {
  std::string bind, url, p;  // p: placeholders for (worker, seq, part)
};

TEST(FaultSoak, EveryAcknowledgedCommitSurvivesEveryFault) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  BINDS_REQUIRE_URL("BINDS_TEST_MYSQL_URL", my);
  const int seconds = env("BINDS_FAULT_SOAK_SECONDS").empty() ? 25 : std::stoi(env("BINDS_FAULT_SOAK_SECONDS"));

  direct(my, "CREATE DATABASE IF NOT EXISTS binds_fsoak");
  const std::string my_soak = my.substr(0, my.rfind('/')) + "/binds_fsoak";
  const std::string pg_soak = pg + "?application_name=binds_fsoak";
  std::vector<Target> targets = {{"pg", pg_soak, "$1, $2, $3"}, {"my", my_soak, "?, ?, ?"}};
  for (auto& t : targets) {
    direct(t.url, "DROP TABLE IF EXISTS fsoak");
    direct(t.url, "CREATE TABLE fsoak (worker INTEGER, seq INTEGER, part CHAR(1))");
  }

  auto config = [&](int max) {
    std::string pool = "    pool: { max: " + std::to_string(max) + ", acquire_timeout: 2s }\n"
                       "    statement_timeout: 3s\n";
    return "default: pg\nshutdown: { drain_timeout: 2s }\nbinds:\n  pg:\n    url: " + pg_soak + "\n" + pool +
           "  my:\n    url: " + my_soak + "\n" + pool;
  };
  Daemon d(config(4));

  // Whatever happens, the servers are running and thawed for the tests after this one.
  struct Heal {
    ~Heal() {
      std::string dir = env("BINDS_TEST_DIR");
      std::string s = std::string(BINDS_SOURCE_DIR) + "/scripts/testdb.sh";
      for (const char* cmd : {"thaw-pg", "thaw-mysql"}) (void)std::system((s + " " + cmd + " " + dir + " >/dev/null 2>&1").c_str());
      (void)std::system(("pg_isready -q -h 127.0.0.1 -p " + env("BINDS_TEST_PG_PORT") + " || " + s + " start-pg " + dir +
                         " >/dev/null 2>&1").c_str());
      (void)std::system(("mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P " + env("BINDS_TEST_MYSQL_PORT") +
                         " -uroot --connect-timeout=1 ping >/dev/null 2>&1 || " + s + " start-mysql " + dir +
                         " >/dev/null 2>&1").c_str());
    }
  } heal;

  Ledger ledger;
  std::atomic<bool> stop{false};
  auto worker = [&](int w) {
    const Target& t = targets[w % targets.size()];
    std::mt19937 rng(7000 + w);
    std::unique_ptr<Client> c;
    const std::string ins = "INSERT INTO fsoak VALUES (" + t.p + ")";
    for (int seq = 1; !stop; ++seq) {
      if (!c) {
        try {
          c = std::make_unique<Client>(d.connect());
        } catch (const std::exception&) {
          std::this_thread::sleep_for(100ms);
          continue;
        }
      }
      const int action = static_cast<int>(rng() % 10);  // 0-5 commit, 6-7 rollback, 8-9 hang up
      bool commit_sent = false;
      try {
        c->begin(t.bind);
        c->query(ins, {std::int64_t{w}, std::int64_t{seq}, std::string("a")}, t.bind);
        // Faults strike between steps; now and then the client idles past the pool's idle-check
        // threshold (2 s), where a dead pinned connection was once silently replaced.
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 6 == 0 ? 2100 + rng() % 500 : rng() % 40));
        c->query(ins, {std::int64_t{w}, std::int64_t{seq}, std::string("b")}, t.bind);
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
        if (action <= 5) {
          commit_sent = true;
          c->commit(t.bind);
          ledger.set(w, seq, Outcome::committed);
        } else if (action <= 7) {
          c->rollback(t.bind);
          ledger.set(w, seq, Outcome::absent);
        } else {
          ledger.set(w, seq, Outcome::absent);
          c.reset();  // hangs up inside the transaction: bindsd must roll it back
        }
      } catch (const ServerError& e) {
        ledger.error(std::string(protocol::error_code_name(e.info.code)));
        // A refused COMMIT (TX_ABORTED) never reached the backend; any other COMMIT failure may
        // have committed. Nothing before the COMMIT may ever be committed.
        bool refused = e.info.code == ErrorCode::tx_aborted;
        ledger.set(w, seq, commit_sent && !refused ? Outcome::unknown : Outcome::absent);
        try {
          c->rollback(t.bind);
        } catch (const std::exception&) {
          c.reset();
        }
      } catch (const ClientError& e) {
        ledger.error("client connection lost");
        ledger.set(w, seq, commit_sent ? Outcome::unknown : Outcome::absent);
        c.reset();
      }
    }
  };

  std::atomic<int> faults{0};
  auto faulter = [&] {
    std::mt19937 rng(99);
    int max = 4;
    auto pause = [&](std::chrono::milliseconds ms) {
      for (auto until = Clock::now() + ms; Clock::now() < until && !stop;) std::this_thread::sleep_for(20ms);
    };
    for (int round = 0; !stop; ++round) {
      pause(std::chrono::milliseconds(600 + rng() % 600));
      if (stop) break;
      switch (round % 8) {
        case 0: testdb("crash-pg"); pause(300ms); testdb("start-pg"); break;
        case 1: testdb("kill-mysql"); pause(300ms); testdb("start-mysql"); break;
        case 2: testdb("freeze-pg"); pause(1500ms); testdb("thaw-pg"); break;
        case 3: testdb("freeze-mysql"); pause(1500ms); testdb("thaw-mysql"); break;
        case 4:
          direct(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'binds_fsoak'");
          break;
        case 5:
          for (auto& r : direct(my, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'binds_fsoak'")) {
            try {
              direct(my, "KILL CONNECTION " + client::value_text(r.at(0)));
            } catch (const std::exception&) {  // already gone
            }
          }
          break;
        case 6:  // a changed pool: new connections for new work, the old pool drains
          max = max == 4 ? 5 : 4;
          d.write_config(config(max));
          d.signal(SIGHUP);
          break;
        case 7: testdb("stop-pg"); pause(300ms); testdb("start-pg"); break;
      }
      ++faults;
    }
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < 6; ++w) threads.emplace_back(worker, w);
  std::thread f(faulter);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  f.join();
  for (auto& t : threads) t.join();

  // Nothing left pinned or in use once the clients are gone (disconnect rollbacks take a moment).
  auto admin = d.connect();
  std::string pinned, in_use;
  for (int i = 0; i < 100; ++i) {
    auto stats = admin.admin("stats");
    pinned = cell(stats, "pg", "pinned") + "/" + cell(stats, "my", "pinned");
    in_use = cell(stats, "pg", "in_use") + "/" + cell(stats, "my", "in_use");
    if (pinned == "0/0" && in_use == "0/0") break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(pinned, "0/0") << "connections still pinned after every client left";
  EXPECT_EQ(in_use, "0/0") << "connections still in use after every client left";

  // Counted in the backends.
  std::map<std::string, int> counts;  // outcome name → transactions
  for (std::size_t ti = 0; ti < targets.size(); ++ti) {
    const auto& t = targets[ti];
    std::map<std::pair<int, int>, std::string> parts;
    for (auto& r : direct(t.url, "SELECT worker, seq, part FROM fsoak"))
      parts[{static_cast<int>(as_int(r.at(0))), static_cast<int>(as_int(r.at(1)))}] += client::value_text(r.at(2));
    int committed = 0;
    std::lock_guard lock(ledger.mu);
    for (auto& [key, outcome] : ledger.tx) {
      if (static_cast<std::size_t>(key.first) % targets.size() != ti) continue;
      auto it = parts.find(key);
      std::string got = it == parts.end() ? "" : it->second;
      std::sort(got.begin(), got.end());
      std::string what = t.bind + " tx " + std::to_string(key.first) + "/" + std::to_string(key.second);
      switch (outcome) {
        case Outcome::committed:
          ++committed;
          EXPECT_EQ(got, "ab") << what << ": acknowledged COMMIT, rows in the backend: '" << got << "'";
          break;
        case Outcome::absent:
          EXPECT_EQ(got, "") << what << ": never committed, rows in the backend: '" << got << "'";
          break;
        case Outcome::unknown:
          EXPECT_TRUE(got.empty() || got == "ab") << what << ": half a transaction: '" << got << "'";
          break;
      }
      ++counts[t.bind + (outcome == Outcome::committed ? " committed" : outcome == Outcome::absent ? " absent" : " unknown")];
      if (it != parts.end()) parts.erase(it);
    }
    EXPECT_TRUE(parts.empty()) << t.bind << ": " << parts.size() << " transactions in the backend that no client ran";
    EXPECT_GE(committed, 20) << t.bind << ": too few commits for the soak to mean anything";
  }
  EXPECT_GE(faults, 8) << "too few faults injected";

  // The backends' own view: nothing inside a transaction.
  auto pg_tx = direct(pg, "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'binds_fsoak' AND state LIKE 'idle in%'");
  EXPECT_EQ(as_int(pg_tx.at(0).at(0)), 0);
  auto my_tx = direct(my,
                      "SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p "
                      "ON t.trx_mysql_thread_id = p.ID WHERE p.DB = 'binds_fsoak'");
  EXPECT_EQ(as_int(my_tx.at(0).at(0)), 0);

  std::string figures;
  for (auto& [k, n] : counts) figures += " " + k + "=" + std::to_string(n);
  for (auto& [k, n] : ledger.errors) figures += " " + k + "=" + std::to_string(n);
  std::printf("[ figures  ] fault soak: %d faults in %d s;%s\n", faults.load(), seconds, figures.c_str());
  for (auto& t : targets) direct(t.url, "DROP TABLE fsoak");
}

}  // namespace
}  // namespace binds::test
