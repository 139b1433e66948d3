// Operating bindsd: hot reload under load, admin commands, graceful and forced shutdown (issue 5).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
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
using ::testing::Not;
using namespace std::chrono_literals;

// Column `name` of the admin table row whose first cell is `key`.
TEST(Reload, BindsComeAndGoWhileAnUnchangedBindServesWithoutAFailure) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  auto tmp = make_temp_dir("reload");
  auto lite = [&](const char* name) { return "sqlite:///" + (tmp / name).string(); };
  std::string steady = "  steady:\n    url: " + pg + "\n    pool: { max: 1 }\n";
  Daemon d("default: steady\nbinds:\n" + steady + "  changing: " + lite("c.db") + "\n  leaving: " + lite("l.db") +
           "\n");
  auto c = d.connect();
  auto pid = scalar(c, "SELECT pg_backend_pid()");
  // A transaction open on the bind that will be removed.
  auto holder = d.connect();
  holder.begin(std::string("leaving"));
  holder.query("CREATE TABLE IF NOT EXISTS t (v INTEGER)", {}, std::string("leaving"));

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int i = 0; i < 4; ++i) {
    load.emplace_back([&] {
      auto lc = d.connect();
      while (!stop) {
        try {
          if (scalar(lc, "SELECT 1") == "1") ++ok;
        } catch (const std::exception& e) {
          ++failed;
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  std::this_thread::sleep_for(200ms);
  d.write_config("default: steady\nbinds:\n" + steady + "  changing:\n    url: " + lite("c.db") +
                 "\n    pool: { max: 3 }\n  arriving: " + lite("a.db") + "\n");
  auto result = c.admin("reload");
  EXPECT_THAT(result.message, HasSubstr("added: arriving"));
  EXPECT_THAT(result.message, HasSubstr("changed: changing"));
  EXPECT_THAT(result.message, HasSubstr("removed: leaving"));
  EXPECT_THAT(result.message, HasSubstr("unchanged: steady"));
  std::this_thread::sleep_for(200ms);

  EXPECT_EQ(scalar(c, "SELECT 2", std::string("arriving")), "2");  // added: serves at once
  EXPECT_EQ(scalar(c, "SELECT 3", std::string("changing")), "3");
  EXPECT_EQ(error_code_of([&] { c.query("SELECT 1", {}, std::string("leaving")); }), ErrorCode::unknown_bind);
  // The open transaction on the removed bind finishes on its old pool.
  holder.query("INSERT INTO t VALUES (1)", {}, std::string("leaving"));
  EXPECT_FALSE(holder.commit(std::string("leaving")).in_transaction);

  // SIGHUP does the same; a broken file is refused and the running config stays.
  d.write_config("default: steady\nbinds:\n" + steady + "  arriving:\n    url: " + lite("a.db") +
                 "\n    pool: { max: 0 }\n");
  d.signal(SIGHUP);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(scalar(c, "SELECT 4", std::string("changing")), "4");  // still there: reload refused
  try {
    c.admin("reload");
    ADD_FAILURE() << "a broken config was accepted";
  } catch (const ServerError& e) {
    EXPECT_THAT(e.info.message, HasSubstr("binds.arriving.pool.max"));
  }
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_GT(ok, 100);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(scalar(c, "SELECT pg_backend_pid()"), pid) << "the unchanged bind's connection was replaced";
  EXPECT_THAT(d.log(), HasSubstr("reload failed, keeping the running configuration"));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

TEST(Admin, StatsClientsConfigPauseResumeReconnectDrain) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("default: db\nbinds:\n  db:\n    url: " + pg + "?application_name=binds_admin\n"
           "    pool: { max: 2, acquire_timeout: 500ms }\n  other: \"sqlite://\"\n");
  auto c = d.connect();
  for (int i = 0; i < 5; ++i) scalar(c, "SELECT 1");
  EXPECT_EQ(error_code_of([&] { c.query("SELEC"); }), ErrorCode::sql_error);

  auto stats = c.admin("stats");
  EXPECT_EQ(cell(stats, "db", "backend"), "postgresql");
  EXPECT_EQ(cell(stats, "db", "queries"), "6");
  EXPECT_EQ(cell(stats, "db", "errors"), "1");
  EXPECT_EQ(cell(stats, "db", "open"), "1");
  EXPECT_EQ(cell(stats, "db", "state"), "ok");

  auto clients = c.admin("clients");
  EXPECT_GE(clients.rows.size(), 1u);

  auto config = c.admin("config");
  EXPECT_THAT(cell(config, "db", "url"), HasSubstr("***"));
  EXPECT_THAT(cell(config, "db", "url"), Not(HasSubstr("binds-secret")));
  // Durations as binds.yaml spells them, not as milliseconds.
  EXPECT_EQ(cell(config, "db", "acquire_timeout"), "500ms");
  EXPECT_EQ(cell(config, "db", "idle_in_transaction_timeout"), "5m");
  EXPECT_EQ(cell(config, "db", "statement_timeout"), "off");

  auto pid = scalar(c, "SELECT pg_backend_pid()");
  c.admin("reconnect", std::string("db"));
  EXPECT_NE(scalar(c, "SELECT pg_backend_pid()"), pid);

  c.admin("pause", std::string("db"));
  EXPECT_EQ(cell(c.admin("stats"), "db", "state"), "paused");
  // Held past acquire_timeout (500ms): only the request's own timeout ends the wait.
  auto held = c.wait(c.send_query("SELECT 1", {}, std::nullopt, 1000));
  ASSERT_TRUE(held.error) << "a paused bind served";
  EXPECT_EQ(held.error->code, ErrorCode::timeout);
  EXPECT_THAT(held.error->message, HasSubstr("paused"));
  EXPECT_EQ(scalar(c, "SELECT 1", std::string("other")), "1");  // other binds unaffected
  // A request waiting on a paused bind goes through when it resumes.
  auto id = c.send_query("SELECT 42");
  std::this_thread::sleep_for(100ms);
  c.admin("resume", std::string("db"));
  EXPECT_EQ(client::value_text(c.wait(id).result.rows.at(0).at(0)), "42");

  c.admin("drain", std::string("db"));
  EXPECT_EQ(cell(c.admin("stats"), "db", "open"), "0");
  c.admin("resume", std::string("db"));
  EXPECT_EQ(scalar(c, "SELECT 5"), "5");

  EXPECT_EQ(error_code_of([&] { c.admin("pause", std::string("nope")); }), ErrorCode::unknown_bind);
  EXPECT_EQ(error_code_of([&] { c.admin("frobnicate"); }), ErrorCode::bad_request);
  EXPECT_EQ(error_code_of([&] { c.admin("pause"); }), ErrorCode::bad_request);
}

TEST(Admin, CliPrintsTablesAndJson) {
  auto tmp = make_temp_dir("admcli");
  Daemon d("binds:\n  m: sqlite:///" + (tmp / "m.db").string() + "\n");
  std::string sock = d.socket_path();
  auto run = [&](const std::string& args) {
    auto out = tmp / "out";
    int rc = std::system((std::string(BINDS_CLI_PATH) + " --socket " + sock + " " + args + " >" + out.string() +
                          " 2>&1")
                             .c_str());
    return std::make_pair(WEXITSTATUS(rc), read_file(out));
  };
  auto [rc, out] = run("stats");
  EXPECT_EQ(rc, 0);
  EXPECT_THAT(out, HasSubstr(" bind | backend |"));
  std::tie(rc, out) = run("config --format json");
  EXPECT_EQ(rc, 0);
  EXPECT_THAT(out, HasSubstr("\"bind\":\"m\""));
  std::tie(rc, out) = run("pause");
  EXPECT_EQ(rc, 2);
  std::tie(rc, out) = run("pause nope");
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("UNKNOWN_BIND"));
  std::tie(rc, out) = run("reload");
  EXPECT_EQ(rc, 0);
  EXPECT_THAT(out, HasSubstr("unchanged: m"));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

TEST(Shutdown, SigtermLetsInFlightRequestsFinishAndASecondOneExitsAtOnce) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  {
    Daemon d("binds:\n  db: " + pg + "\nshutdown: { grace: 5s }\n");
    auto c = d.connect();
    auto id = c.send_query("SELECT pg_sleep(1)");
    std::this_thread::sleep_for(200ms);
    d.signal(SIGTERM);
    auto r = c.wait(id);
    EXPECT_FALSE(r.error.has_value()) << r.error->message;  // finished, not cut
    EXPECT_EQ(d.wait_exit(5s), 0);
  }
  {
    Daemon d("binds:\n  db: " + pg + "\nshutdown: { grace: 30s }\n");
    auto c = d.connect();
    c.send_query("SELECT pg_sleep(20)");
    std::this_thread::sleep_for(200ms);
    d.signal(SIGTERM);
    std::this_thread::sleep_for(200ms);
    auto t0 = std::chrono::steady_clock::now();
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait_exit(3s), 1);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
}

}  // namespace
}  // namespace binds::test

namespace binds::test {
namespace {

// Minimal HTTP GET over loopback; returns status line + body.
std::string http_get(unsigned short port, const std::string& path) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(req));
  std::string out;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    auto n = s.read_some(boost::asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

double metric(const std::string& text, const std::string& series) {
  auto p = text.find("\n" + series + " ");
  if (p == std::string::npos) return -1;
  return std::stod(text.substr(p + series.size() + 2));
}

TEST(Metrics, CountersMoveWithRealTraffic) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  auto port = free_port();
  Daemon d("default: db\nbinds:\n  db: " + pg + "\nmetrics:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n");
  auto before = http_get(port, "/metrics");
  ASSERT_THAT(before, HasSubstr("200 OK"));
  double q0 = std::max(0.0, metric(before, "binds_queries_total{bind=\"db\"}"));
  auto c = d.connect();
  for (int i = 0; i < 7; ++i) c.query("SELECT 1");
  EXPECT_EQ(error_code_of([&] { c.query("SELEC"); }), ErrorCode::sql_error);
  auto after = http_get(port, "/metrics");
  EXPECT_EQ(metric(after, "binds_queries_total{bind=\"db\"}"), q0 + 8);
  EXPECT_EQ(metric(after, "binds_errors_total{bind=\"db\",code=\"SQL_ERROR\"}"), 1);
  EXPECT_GE(metric(after, "binds_query_duration_seconds_count{bind=\"db\"}"), 8);
  EXPECT_EQ(metric(after, "binds_clients"), 1);
  EXPECT_THAT(after, Not(HasSubstr("binds-secret")));
  EXPECT_THAT(http_get(port, "/healthz"), HasSubstr("200 OK"));
  EXPECT_THAT(http_get(port, "/readyz"), HasSubstr("200 OK"));
  c.admin("reload");
  EXPECT_EQ(metric(http_get(port, "/metrics"), "binds_reloads_total{result=\"ok\"}"), 1);
}

TEST(Metrics, LiveOutputIsCleanUnderPromtoolAndCountsTransactionsAndBytesIn) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  ASSERT_EQ(std::system("command -v promtool >/dev/null"), 0)
      << "promtool is missing: bash scripts/install-deps.sh --test (package prometheus)";
  auto port = free_port();
  auto tmp = make_temp_dir("promtool");
  Daemon d("default: db\nbinds:\n  db: " + pg + "\n  lite: sqlite:///" + (tmp / "l.db").string() +
           "\nmetrics:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n");
  auto c = d.connect();
  c.begin();
  c.query("SELECT 1");
  c.commit();
  c.begin();
  c.query("SELECT 2");
  c.rollback();
  c.query("SELECT 3", {}, std::string("lite"));
  EXPECT_EQ(error_code_of([&] { c.query("SELEC"); }), ErrorCode::sql_error);
  auto response = http_get(port, "/metrics");
  ASSERT_THAT(response, HasSubstr("200 OK"));
  auto body = response.substr(response.find("\r\n\r\n") + 4);
  EXPECT_EQ(metric(body, "binds_transactions_total{bind=\"db\",result=\"commit\"}"), 1);
  EXPECT_EQ(metric(body, "binds_transactions_total{bind=\"db\",result=\"rollback\"}"), 1);
  EXPECT_GT(metric(body, "binds_bytes_in_total{bind=\"db\"}"), 50);
  EXPECT_GT(metric(body, "binds_bytes_in_total{bind=\"lite\"}"), 10);
  EXPECT_EQ(metric(body, "binds_pool_max{bind=\"db\"}"), 10);
  EXPECT_EQ(metric(body, "binds_build_info{version=\"0.1.0\"}"), 1);
  EXPECT_GT(metric(body, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(metric(body, "process_open_fds"), 3);
  EXPECT_GT(metric(body, "process_start_time_seconds"), 1.7e9);
  // promtool reads the exposition on stdin; errors and lint findings go to its output.
  auto file = tmp / "metrics.txt";
  std::ofstream(file) << body;
  auto out = tmp / "promtool.out";
  int rc = std::system(("promtool check metrics <" + file.string() + " >" + out.string() + " 2>&1").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 0) << read_file(out);
  EXPECT_EQ(read_file(out), "") << "promtool lint findings";
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace
}  // namespace binds::test

namespace binds::test {
namespace {

TEST(StatsLine, PeriodicPerBindLineWhenConfigured) {
  auto tmp = make_temp_dir("statsline");
  Daemon d("binds:\n  m: sqlite:///" + (tmp / "m.db").string() + "\nstats_interval: 200ms\n");
  d.connect().query("SELECT 1");
  std::this_thread::sleep_for(600ms);
  EXPECT_THAT(d.log(), HasSubstr("stats bind m: open"));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace
}  // namespace binds::test
