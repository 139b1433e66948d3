// Admin views and controls of issue 12: clients/servers, kill, pause that holds requests (and
// pause --wait), per-client application_name on PostgreSQL, against the real daemon and databases.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <regex>
#include <thread>

#include "client/format.hpp"
#include "direct.hpp"
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

std::string col(const protocol::Table& t, const protocol::Row& r, const std::string& name) {
  auto i = std::find(t.columns.begin(), t.columns.end(), name) - t.columns.begin();
  if (static_cast<std::size_t>(i) >= r.size()) return "<no column " + name + ">";
  return client::value_text(r.at(static_cast<std::size_t>(i)));
}

// The `clients` row of the client that said `name` in its HELLO.
std::optional<protocol::Row> client_row(const protocol::Table& t, const std::string& name) {
  for (const auto& r : t.rows)
    if (col(t, r, "name") == name) return r;
  return std::nullopt;
}

std::string client_id(Client& admin, const std::string& name) {
  auto t = admin.admin("clients");
  auto r = client_row(t, name);
  return r ? col(t, *r, "id") : "<no client " + name + ">";
}

// Polls until `pred` holds (a loaded machine is slow, not wrong); false after `limit`.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

int run_cli(const Daemon& d, const std::string& args, std::string& out) {
  auto file = d.dir() / "cli.out";
  int rc = std::system((std::string(BINDS_CLI_PATH) + " --socket " + d.socket_path() + " " + args + " >" +
                        file.string() + " 2>&1")
                           .c_str());
  out = read_file(file);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(AdminPause, HoldsRequestsUntilResumeAndWaitWaitsForTransactions) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("default: db\nbinds:\n  db:\n    url: " + pg + "\n    pool: { max: 2, acquire_timeout: 1s }\n");
  auto admin = d.connect();
  auto holder = Client::connect(d.address(), "holder");
  holder.begin();
  EXPECT_EQ(scalar(holder, "SELECT 1"), "1");

  // pause --wait answers only once the open transaction has ended.
  auto waiter = d.connect();
  auto paused = std::async(std::launch::async, [&] { return waiter.admin("pause", std::string("db"), {"--wait"}); });
  ASSERT_TRUE(eventually([&] { return cell(admin.admin("stats"), "db", "state") == "paused"; }));
  auto held = Client::connect(d.address(), "held");
  auto id = held.send_query("SELECT 42");
  std::this_thread::sleep_for(2500ms);  // more than twice acquire_timeout (slow connects under ASan need 1 s)
  EXPECT_EQ(paused.wait_for(0ms), std::future_status::timeout) << "pause --wait returned inside a transaction";
  EXPECT_EQ(cell(admin.admin("stats"), "db", "waiting"), "1") << "the request must be held, not failed";
  // The transaction goes on through the pause, and its end lets pause --wait return.
  EXPECT_EQ(scalar(holder, "SELECT 2"), "2");
  holder.commit();
  ASSERT_EQ(paused.wait_for(10s), std::future_status::ready);
  EXPECT_THAT(paused.get().message, HasSubstr("nothing runs on it"));
  EXPECT_EQ(cell(admin.admin("stats"), "db", "waiting"), "1");

  // A request's own timeout still ends a paused wait; nothing ran.
  auto timed = Client::connect(d.address(), "timed");
  auto timed_reply = timed.wait(timed.send_query("SELECT 7", {}, std::nullopt, 300));
  ASSERT_TRUE(timed_reply.error) << "a paused bind served";
  EXPECT_EQ(timed_reply.error->code, ErrorCode::timeout);
  EXPECT_THAT(timed_reply.error->message, HasSubstr("paused"));
  EXPECT_EQ(timed_reply.error->may_have_executed, std::optional<bool>(false));

  // A client killed while its request is held leaves at once; the pause does not keep it.
  auto doomed = Client::connect(d.address(), "doomed");
  auto doomed_id = doomed.send_query("SELECT 9");
  ASSERT_TRUE(eventually([&] { return cell(admin.admin("stats"), "db", "waiting") == "2"; }));
  admin.admin("kill", std::nullopt, {client_id(admin, "doomed")});
  EXPECT_EQ(error_code_of([&] { doomed.wait(doomed_id); }), ErrorCode::cancelled);
  ASSERT_TRUE(eventually([&] { return !client_row(admin.admin("clients"), "doomed"); }, 3s));
  EXPECT_EQ(cell(admin.admin("stats"), "db", "waiting"), "1");

  admin.admin("resume", std::string("db"));
  auto reply = held.wait(id);
  ASSERT_FALSE(reply.error) << reply.error->message;
  EXPECT_EQ(client::value_text(reply.result.rows.at(0).at(0)), "42");

  // --wait is bounded: a transaction that stays open makes it fail (the bind stays paused).
  holder.begin();
  scalar(holder, "SELECT 3");
  auto t0 = std::chrono::steady_clock::now();
  try {
    admin.admin("pause", std::string("db"), {"--wait=1"});
    ADD_FAILURE() << "pause --wait=1 returned with a transaction open";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.info.code, ErrorCode::timeout);
    EXPECT_THAT(e.info.message, HasSubstr("inside a transaction"));
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_EQ(cell(admin.admin("stats"), "db", "state"), "paused");
  holder.rollback();
  admin.admin("resume", std::string("db"));
  EXPECT_EQ(scalar(held, "SELECT 5"), "5");

  // Garbage.
  for (const char* bad : {"--wait=abc", "--wait=0", "--wait=-1", "--wait=3601", "--wait=", "extra", "--waitx"})
    EXPECT_EQ(error_code_of([&] { admin.admin("pause", std::string("db"), {bad}); }), ErrorCode::bad_request) << bad;
  EXPECT_EQ(error_code_of([&] { admin.admin("pause", std::string("db"), {"--wait", "--wait"}); }),
            ErrorCode::bad_request);
  EXPECT_EQ(error_code_of([&] { admin.admin("resume", std::string("db"), {"--wait"}); }), ErrorCode::bad_request);
  EXPECT_EQ(error_code_of([&] { admin.admin("pause", std::string("nope"), {"--wait"}); }), ErrorCode::unknown_bind);
  EXPECT_EQ(cell(admin.admin("stats"), "db", "state"), "ok") << "a refused pause paused nothing";
  std::string out;
  EXPECT_EQ(run_cli(d, "resume db --wait", out), 2) << out;
  EXPECT_EQ(run_cli(d, "pause nope --wait", out), 1) << out;
  EXPECT_THAT(out, HasSubstr("UNKNOWN_BIND"));
  EXPECT_EQ(run_cli(d, "pause db --wait=2", out), 0) << out;
  EXPECT_THAT(out, HasSubstr("nothing runs on it"));
  EXPECT_EQ(run_cli(d, "resume db", out), 0) << out;
}

TEST(AdminViews, ClientsAndServersShowWhoHoldsWhatAndNeverParameters) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  auto tmp = make_temp_dir("views");
  Daemon d("default: db\nbinds:\n  db:\n    url: " + pg + "\n    pool: { max: 3 }\n  lite: sqlite:///" +
           (tmp / "l.db").string() + "\n");
  auto admin = d.connect();
  auto alice = Client::connect(d.address(), "alice");
  alice.begin();
  const auto alice_pid = scalar(alice, "SELECT pg_backend_pid()");
  auto bob = Client::connect(d.address(), "bob");
  const std::string long_sql = "SELECT pg_sleep(1.5), $1::text AS the_parameter_is_not_shown, 'padding padding'";
  auto sleeping = bob.send_query(long_sql, {Value(std::string("s3cret-param-value"))});
  auto carol = Client::connect(d.address(), "carol");
  scalar(carol, "SELECT 1", std::string("lite"));

  protocol::Table clients;
  ASSERT_TRUE(eventually([&] {
    clients = admin.admin("clients");
    auto b = client_row(clients, "bob");
    return b && col(clients, *b, "running").rfind("db: ", 0) == 0;
  }));
  auto a = client_row(clients, "alice");
  auto b = client_row(clients, "bob");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(col(clients, *a, "binds"), "db (in tx)");
  EXPECT_EQ(col(clients, *a, "running"), "-");
  EXPECT_EQ(col(clients, *b, "binds"), "db");
  EXPECT_THAT(col(clients, *b, "running"), HasSubstr("db: SELECT pg_sleep(1.5), $1::text"));
  EXPECT_THAT(col(clients, *b, "running"), HasSubstr("..."));
  EXPECT_LE(col(clients, *b, "running").size(), 4 + 60 + 3u);
  EXPECT_GE(std::stoll(col(clients, *b, "running_ms")), 0);
  EXPECT_EQ(col(clients, *b, "requests"), "1");
  EXPECT_THAT(col(clients, *a, "peer"), HasSubstr(d.tcp_port() ? "tcp:127.0.0.1:" : "unix"));

  auto servers = admin.admin("servers");
  bool saw_pinned = false, saw_busy = false, saw_lite = false;
  for (const auto& r : servers.rows) {
    const auto state = col(servers, r, "state");
    if (col(servers, r, "bind") == "lite") {
      saw_lite = true;
      EXPECT_EQ(col(servers, r, "pid"), "-");
      EXPECT_EQ(state, "idle");
      continue;
    }
    if (state == "pinned") {
      saw_pinned = true;
      EXPECT_EQ(col(servers, r, "client"), col(clients, *a, "id"));
      EXPECT_EQ(col(servers, r, "pid"), alice_pid);
    } else if (state == "in use") {
      saw_busy = true;
      EXPECT_EQ(col(servers, r, "client"), col(clients, *b, "id"));
      EXPECT_GT(std::stoll(col(servers, r, "pid")), 0);
    }
  }
  EXPECT_TRUE(saw_pinned && saw_busy && saw_lite);

  // Neither view, in either format, ever shows a parameter value.
  std::string out;
  for (const char* view : {"clients", "servers", "clients --format json", "servers --format json"}) {
    EXPECT_EQ(run_cli(d, view, out), 0) << out;
    EXPECT_THAT(out, Not(HasSubstr("s3cret"))) << view;
  }
  EXPECT_EQ(run_cli(d, "clients --format json", out), 0);
  EXPECT_THAT(out, HasSubstr("\"name\":\"alice\""));
  EXPECT_EQ(run_cli(d, "servers --format json", out), 0);
  EXPECT_THAT(out, HasSubstr("\"state\":\"pinned\""));
  EXPECT_THAT(out, HasSubstr("\"pid\":" + alice_pid));

  auto done = bob.wait(sleeping);
  EXPECT_FALSE(done.error);
  alice.rollback();
  clients = admin.admin("clients");
  EXPECT_EQ(col(clients, *client_row(clients, "alice"), "binds"), "-");
  EXPECT_EQ(col(clients, *client_row(clients, "bob"), "running"), "-");

  // Garbage.
  EXPECT_EQ(error_code_of([&] { admin.admin("clients", std::nullopt, {"x"}); }), ErrorCode::bad_request);
  EXPECT_EQ(error_code_of([&] { admin.admin("servers", std::string("db")); }), ErrorCode::bad_request);
  EXPECT_EQ(run_cli(d, "servers extra", out), 2);
  EXPECT_EQ(run_cli(d, "clients --wait", out), 2);
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

class AdminKill : public ::testing::TestWithParam<const char*> {};

TEST_P(AdminKill, RollsBackTheVictimsTransactionAndSparesOthers) {
  const bool pg = std::string(GetParam()) == "postgresql";
  const char* var = pg ? "BINDS_TEST_PG_URL" : "BINDS_TEST_MYSQL_URL";
  const std::string url = env(var);
  if (url.empty()) {
    if (env("BINDS_ALLOW_NO_DB") == "1") GTEST_SKIP() << var << " not set";
    FAIL() << var << " is not set: run the tests through scripts/test.sh";
  }
  Daemon d("default: db\nbinds:\n  db:\n    url: " + url + "\n    pool: { max: 3 }\n");
  const std::string table = std::string("kill_") + GetParam() + std::to_string(getpid());
  auto admin = d.connect();
  admin.query("DROP TABLE IF EXISTS " + table);
  admin.query("CREATE TABLE " + table + " (v INTEGER)");

  auto other = Client::connect(d.address(), "bystander");
  auto victim = Client::connect(d.address(), "victim");
  victim.begin();
  victim.query("INSERT INTO " + table + " VALUES (1)");
  other.begin();
  other.query("INSERT INTO " + table + " VALUES (2)");

  // Killed while a statement of its transaction runs: that is cancelled too.
  const auto sleeping = victim.send_query(pg ? "SELECT pg_sleep(5)" : "SELECT SLEEP(5)");
  const auto id = client_id(admin, "victim");
  ASSERT_TRUE(eventually([&] {
    auto t = admin.admin("clients");
    auto r = client_row(t, "victim");
    if (!r) return false;
    auto running = col(t, *r, "running");
    return running.find("SLEEP") != std::string::npos || running.find("sleep") != std::string::npos;
  }));
  const auto t0 = std::chrono::steady_clock::now();
  auto reply = admin.admin("kill", std::nullopt, {id});
  EXPECT_THAT(reply.message, HasSubstr("kill " + id));
  // The victim reads why (its running request gets no answer of its own).
  try {
    victim.wait(sleeping);
    ADD_FAILURE() << "a killed client was answered";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.info.code, ErrorCode::cancelled);
    EXPECT_THAT(e.info.message, HasSubstr("ended by an administrator"));
  } catch (const client::ClientError& e) {
    ADD_FAILURE() << "the killed client got no ERROR frame: " << e.what();
  }
  ASSERT_TRUE(eventually([&] { return !client_row(admin.admin("clients"), "victim"); }));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s) << "the running statement was not cancelled";
  // The bystander's transaction is untouched and commits.
  other.query("INSERT INTO " + table + " VALUES (4)");
  other.commit();
  // Only after the rollback finished is the connection back: wait for nothing to be resetting.
  ASSERT_TRUE(eventually([&] {
    auto s = admin.admin("servers");
    for (const auto& r : s.rows)
      if (col(s, r, "state") != "idle") return false;
    return true;
  }));
  EXPECT_EQ(client::value_text(direct(url, "SELECT COUNT(*) FROM " + table).at(0).at(0)), "2");
  EXPECT_EQ(client::value_text(direct(url, "SELECT COUNT(*) FROM " + table + " WHERE v IN (1, 3)").at(0).at(0)), "0")
      << "a killed client's uncommitted INSERT became visible";
  EXPECT_EQ(scalar(other, "SELECT COUNT(*) FROM " + table), "2");

  // Garbage.
  for (const char* bad : {"abc", "-1", "0", "1.5", " 1", "99999999999999999999", ""})
    EXPECT_EQ(error_code_of([&] { admin.admin("kill", std::nullopt, {bad}); }), ErrorCode::bad_request) << bad;
  try {
    admin.admin("kill", std::nullopt, {id});  // gone now
    ADD_FAILURE() << "killing a client that left succeeded";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.info.code, ErrorCode::bad_request);
    EXPECT_THAT(e.info.message, HasSubstr("no client #" + id));
  }
  EXPECT_EQ(error_code_of([&] { admin.admin("kill"); }), ErrorCode::bad_request);
  EXPECT_EQ(error_code_of([&] { admin.admin("kill", std::nullopt, {"1", "2"}); }), ErrorCode::bad_request);
  EXPECT_EQ(error_code_of([&] { admin.admin("kill", std::string("db"), {"1"}); }), ErrorCode::bad_request);
  std::string out;
  EXPECT_EQ(run_cli(d, "kill", out), 2);
  EXPECT_EQ(run_cli(d, "kill 1 2", out), 2);
  EXPECT_EQ(run_cli(d, "kill nope", out), 1);
  EXPECT_THAT(out, HasSubstr("not a client id"));
  EXPECT_EQ(scalar(other, "SELECT 1"), "1");
  admin.query("DROP TABLE " + table);
}

INSTANTIATE_TEST_SUITE_P(Backends, AdminKill, ::testing::Values("postgresql", "mysql"));

TEST(ApplicationName, EachClientsNameReachesPostgresqlOnASharedConnection) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("default: db\nbinds:\n  db:\n    url: " + pg + "\n    pool: { max: 1 }\n");
  const std::string sql = "SELECT application_name, pg_backend_pid() FROM pg_stat_activity WHERE pid = pg_backend_pid()";
  auto alice = Client::connect(d.address(), "app-alice");
  auto bob = Client::connect(d.address(), "app-bob");
  auto quoted = Client::connect(d.address(), "o'brien\\x");
  auto accented = Client::connect(d.address(), "caf\xc3\xa9");
  std::string pid;
  for (int round = 0; round < 3; ++round) {
    for (auto [c, want] : {std::pair<Client*, std::string>{&alice, "app-alice"}, {&bob, "app-bob"},
                           {&quoted, "o'brien\\x"}, {&accented, "caf??"}}) {
      auto r = c->query(sql);
      EXPECT_EQ(client::value_text(r.rows.at(0).at(0)), want);
      // One pooled connection serves them all (pool max 1).
      if (pid.empty()) pid = client::value_text(r.rows.at(0).at(1));
      EXPECT_EQ(client::value_text(r.rows.at(0).at(1)), pid);
    }
  }
  // Inside a transaction too, and a client's own SET stays its business until the next client.
  alice.begin();
  EXPECT_EQ(scalar(alice, "SELECT current_setting('application_name')"), "app-alice");
  alice.query("SET application_name = 'renamed'");
  EXPECT_EQ(scalar(alice, "SELECT current_setting('application_name')"), "renamed");
  alice.commit();
  EXPECT_EQ(scalar(bob, "SELECT current_setting('application_name')"), "app-bob");
  EXPECT_EQ(scalar(alice, "SELECT current_setting('application_name')"), "app-alice");
}

TEST(ApplicationName, MariadbShowsBindsdAndTheBindKey) {
  BINDS_REQUIRE_URL("BINDS_TEST_MYSQL_URL", my);
  Daemon d("default: my\nbinds:\n  my: " + my + "\n");
  auto c = Client::connect(d.address(), "app-alice");
  // Connection attributes are visible only where the server records them.
  if (scalar(c, "SELECT @@performance_schema") != "1")
    GTEST_SKIP() << "this MariaDB runs without performance_schema: connection attributes are not visible";
  EXPECT_EQ(scalar(c, "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs "
                      "WHERE PROCESSLIST_ID = CONNECTION_ID() AND ATTR_NAME = 'program_name'"),
            "bindsd:my");
}

}  // namespace
}  // namespace binds::test

namespace binds::test {
namespace {

// `binds top` in a real terminal: a detached tmux session, polled until the text appears (a
// loaded machine, or an ASan build, is slow to draw).
class Tmux {
 public:
  explicit Tmux(const fs::path& dir) : socket_((dir / "tmux.sock").string()) {}
  ~Tmux() { run("kill-server"); }
  int run(const std::string& args, std::string* out = nullptr) const {
    auto file = out ? socket_ + ".out" : std::string("/dev/null");
    int rc = std::system(("tmux -S " + socket_ + " " + args + " >" + file + " 2>&1").c_str());
    if (out) *out = read_file(file);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string screen(const std::string& session) const {
    std::string out;
    run("capture-pane -p -t " + session, &out);
    return out;
  }
  bool wait_for(const std::string& session, const std::function<bool(const std::string&)>& pred,
                std::string& last, std::chrono::seconds limit = 30s) const {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      last = screen(session);
      if (pred(last)) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

 private:
  std::string socket_;
};

TEST(Top, LiveViewShowsPoolsAndClientsQuitsOnQAndCtrlCRestoringTheTerminal) {
  ASSERT_EQ(std::system("command -v tmux >/dev/null"), 0) << "tmux is missing: bash scripts/install-deps.sh --test";
  auto tmp = make_temp_dir("top");
  Daemon d("default: lite\nbinds:\n  lite: sqlite:///" + (tmp / "l.db").string() + "\n");
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    auto c = Client::connect(d.address(), "busy-app");
    while (!stop) c.query("SELECT 1");
  });
  Tmux tmux(tmp);
  // After top exits, the shell prints its status and the terminal modes it was left in.
  const std::string cmd = std::string(BINDS_CLI_PATH) + " --socket " + d.socket_path() +
                          " top; echo TOP-EXITED rc=\\$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon "
                          "-e echo -e -echo | tr '\\n' ' '; echo; sleep 60";
  for (const char* how : {"q", "C-c"}) {
    const std::string session = std::string("top") + (how[0] == 'q' ? "q" : "c");
    ASSERT_EQ(tmux.run("new-session -d -s " + session + " -x 120 -y 30 \"" + cmd + "\""), 0);
    std::string screen;
    // The second refresh has a rate: qps of the busy bind above zero.
    const std::regex qps(R"(\nlite +\d+ +\d+ +\d+ +\d+ +([0-9.]+))");
    ASSERT_TRUE(tmux.wait_for(session, [&](const std::string& s) {
      std::smatch m;
      return std::regex_search(s, m, qps) && std::stod(m[1]) > 0 && s.find("busy-app") != std::string::npos;
    }, screen)) << screen;
    EXPECT_THAT(screen, HasSubstr("binds top"));
    EXPECT_THAT(screen, HasSubstr("(q quits)"));
    EXPECT_THAT(screen, HasSubstr("p99_ms"));
    EXPECT_THAT(screen, HasSubstr("clients:"));
    // Narrow the terminal: lines are cut to the width, not wrapped.
    tmux.run("resize-window -t " + session + " -x 40 -y 30");
    ASSERT_TRUE(tmux.wait_for(session, [&](const std::string& s) {
      return s.find("binds top") != std::string::npos && s.find("(q quits)") == std::string::npos;
    }, screen)) << screen;
    tmux.run("send-keys -t " + session + " " + how);
    ASSERT_TRUE(tmux.wait_for(session, [](const std::string& s) { return s.find("TOP-EXITED") != std::string::npos; },
                              screen))
        << screen;
    EXPECT_THAT(screen, HasSubstr("TOP-EXITED rc=0"));
    EXPECT_THAT(screen, Not(HasSubstr("binds top"))) << "the alternate screen was not left";
    ASSERT_TRUE(tmux.wait_for(session, [](const std::string& s) { return s.find("icanon") != std::string::npos; },
                              screen));
    EXPECT_THAT(screen, HasSubstr("icanon echo"));
    EXPECT_THAT(screen, Not(HasSubstr("-icanon")));
    EXPECT_THAT(screen, Not(HasSubstr("-echo")));
  }
  stop = true;
  traffic.join();
  // Garbage: top takes no arguments, and refuses to draw without a terminal.
  std::string out;
  EXPECT_EQ(run_cli(d, "top extra", out), 2);
  EXPECT_EQ(run_cli(d, "top", out), 2) << out;  // stdout is a file here
  EXPECT_THAT(out, HasSubstr("needs a terminal"));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace
}  // namespace binds::test
