// Requests a client pipelines to a PostgreSQL bind go out to the backend back to back (the engine
// sends the lane's queued requests behind the running one). Whatever the pipelining, each request
// gets exactly the answer it would get alone, in order: errors stay with their own statement,
// a failed transaction cannot be committed, a COMMIT is never sent before the engine knows the
// outcome of what preceded it, and a cancel stops the request it names.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "client/format.hpp"
#include "direct.hpp"
#include "harness.hpp"

namespace binds::test {
namespace {

using client::Client;
using client::Reply;
using protocol::ErrorCode;
using protocol::Value;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string pg_bind(const std::string& url, const std::string& extra = "") {
  return "binds:\n  pg:\n    url: " + url + "\n    pool: { max: 2, acquire_timeout: 10s }\n" + extra;
}

std::string first_cell(const Reply& r) {
  if (r.error) return "error: " + r.error->message;
  if (r.result.rows.empty() || r.result.rows[0].empty()) return "no row";
  return client::value_text(r.result.rows[0][0]);
}

TEST(Pipeline, ManyRequestsAnswerInOrderAndErrorsStayWithTheirStatement) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d(pg_bind(pg));
  auto c = d.connect();
  std::vector<std::uint32_t> ids;
  const int n = 200;
  for (int i = 0; i < n; ++i) {
    if (i % 17 == 5) {
      ids.push_back(c.send_query("SELECT 1/0", {}, std::string("pg")));
    } else {
      ids.push_back(c.send_query("SELECT $1::int8 * 2", {Value(std::int64_t{i})}, std::string("pg")));
    }
  }
  for (int i = 0; i < n; ++i) {
    Reply r = c.wait(ids[i]);
    if (i % 17 == 5) {
      ASSERT_TRUE(r.error) << i;
      EXPECT_EQ(r.error->code, ErrorCode::sql_error) << i;
      EXPECT_EQ(r.error->sqlstate, "22012") << i;
    } else {
      ASSERT_FALSE(r.error) << i << ": " << r.error->message;
      EXPECT_EQ(first_cell(r), std::to_string(2 * i)) << i;
    }
  }
  // They did go out pipelined (the engine counts requests sent behind an unanswered one).
  auto stats = d.connect().admin("stats");
  EXPECT_GT(std::stoll(cell(stats, "pg", "pipelined")), n / 2);
  // The connection is in step afterwards, for this client and the next.
  EXPECT_EQ(scalar(c, "SELECT 41 + 1", std::string("pg")), "42");
  auto other = d.connect();
  EXPECT_EQ(scalar(other, "SELECT 7", std::string("pg")), "7");
}

TEST(Pipeline, AFailedTransactionIsNeverCommittedWhateverWasPipelined) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  direct(pg, "DROP TABLE IF EXISTS binds_pipeline_tx");
  direct(pg, "CREATE TABLE binds_pipeline_tx (id int PRIMARY KEY)");
  Daemon d(pg_bind(pg));
  auto c = d.connect();
  const std::optional<std::string> b("pg");
  // All sent at once: the COMMIT must wait for what precedes it, and is refused.
  std::vector<std::uint32_t> ids = {
      c.send_query("BEGIN", {}, b),
      c.send_query("INSERT INTO binds_pipeline_tx VALUES (1)", {}, b),
      c.send_query("INSERT INTO binds_pipeline_tx VALUES (1)", {}, b),  // duplicate key: the tx fails
      c.send_query("INSERT INTO binds_pipeline_tx VALUES (2)", {}, b),
      c.send_query("COMMIT", {}, b),
  };
  EXPECT_FALSE(c.wait(ids[0]).error);
  EXPECT_FALSE(c.wait(ids[1]).error);
  Reply dup = c.wait(ids[2]);
  ASSERT_TRUE(dup.error);
  EXPECT_EQ(dup.error->sqlstate, "23505");
  Reply after = c.wait(ids[3]);
  ASSERT_TRUE(after.error);
  EXPECT_EQ(after.error->sqlstate, "25P02");
  Reply commit = c.wait(ids[4]);
  ASSERT_TRUE(commit.error) << "a failed transaction was acknowledged as committed";
  EXPECT_EQ(commit.error->code, ErrorCode::tx_aborted);
  EXPECT_FALSE(c.wait(c.send_query("ROLLBACK", {}, b)).error);
  EXPECT_EQ(direct(pg, "SELECT count(*) FROM binds_pipeline_tx").at(0).at(0), Value(std::int64_t{0}));

  // The same pipeline without the error commits both rows.
  ids = {c.send_query("BEGIN", {}, b), c.send_query("INSERT INTO binds_pipeline_tx VALUES (1)", {}, b),
         c.send_query("INSERT INTO binds_pipeline_tx VALUES (2)", {}, b), c.send_query("COMMIT", {}, b)};
  for (auto id : ids) {
    Reply r = c.wait(id);
    EXPECT_FALSE(r.error) << r.error->message;
  }
  EXPECT_EQ(direct(pg, "SELECT count(*) FROM binds_pipeline_tx").at(0).at(0), Value(std::int64_t{2}));
  direct(pg, "DROP TABLE binds_pipeline_tx");
}

TEST(Pipeline, ACancelStopsTheRequestItNamesEvenWhenItWasSentAhead) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d(pg_bind(pg));
  auto c = d.connect();
  const std::optional<std::string> b("pg");
  const auto first = c.send_query("SELECT pg_sleep(0.3)", {}, b);
  const auto named = c.send_query("SELECT pg_sleep(30)", {}, b);  // sent behind the first
  const auto last = c.send_query("SELECT 3", {}, b);
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  const auto cancel = c.send_cancel(named);
  Reply r1 = c.wait(first);
  EXPECT_FALSE(r1.error) << "the cancel reached the request before the one it names: " << r1.error->message;
  Reply r2 = c.wait(named);
  ASSERT_TRUE(r2.error);
  EXPECT_EQ(r2.error->code, ErrorCode::cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  Reply r3 = c.wait(last);
  // A repeated cancel may arrive after the named statement ended; then it names its victim.
  if (r3.error) {
    EXPECT_EQ(r3.error->code, ErrorCode::cancelled);
    EXPECT_THAT(r3.error->message, HasSubstr("earlier request"));
  } else {
    EXPECT_EQ(first_cell(r3), "3");
  }
  c.wait(cancel);
  EXPECT_EQ(scalar(c, "SELECT 5", b), "5");
}

// The backend session dies while a transaction's statements are pipelined on it: nothing of the
// transaction is committed, every request after the death fails, the COMMIT is refused, and the
// bind serves the next transaction on a fresh connection.
TEST(Pipeline, ABackendDyingUnderPipelinedTransactionCommitsNothing) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  direct(pg, "DROP TABLE IF EXISTS binds_pipeline_kill");
  direct(pg, "CREATE TABLE binds_pipeline_kill (id int PRIMARY KEY)");
  Daemon d(pg_bind(pg + "?application_name=binds_pipeline_kill"));
  auto c = d.connect();
  const std::optional<std::string> b("pg");
  std::vector<std::uint32_t> ids = {
      c.send_query("BEGIN", {}, b),
      c.send_query("INSERT INTO binds_pipeline_kill VALUES (1)", {}, b),
      c.send_query("SELECT pg_sleep(2)", {}, b),
      c.send_query("INSERT INTO binds_pipeline_kill VALUES (2)", {}, b),
      c.send_query("COMMIT", {}, b),
  };
  std::this_thread::sleep_for(300ms);
  direct(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'binds_pipeline_kill'");
  EXPECT_FALSE(c.wait(ids[0]).error);
  EXPECT_FALSE(c.wait(ids[1]).error);
  for (int i = 2; i < 5; ++i) {
    Reply r = c.wait(ids[i]);
    ASSERT_TRUE(r.error) << "request " << i << " succeeded after its backend died";
    EXPECT_TRUE(r.error->code == ErrorCode::backend_unavailable || r.error->code == ErrorCode::tx_aborted)
        << i << ": " << r.error->message;
  }
  EXPECT_FALSE(c.wait(c.send_query("ROLLBACK", {}, b)).error);
  EXPECT_EQ(direct(pg, "SELECT count(*) FROM binds_pipeline_kill").at(0).at(0), Value(std::int64_t{0}));
  EXPECT_EQ(scalar(c, "SELECT 9", b), "9");
  direct(pg, "DROP TABLE binds_pipeline_kill");
}

TEST(Pipeline, AClientLeavingWithRequestsOnTheWireLeavesNothingBehind) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  Daemon d("binds:\n  pg:\n    url: " + pg + "\n    pool: { max: 1, acquire_timeout: 10s }\n");
  {
    auto c = d.connect();
    const std::optional<std::string> b("pg");
    c.send_query("SELECT pg_sleep(0.2)", {}, b);
    for (int i = 0; i < 50; ++i) c.send_query("SELECT $1::int8", {Value(std::int64_t{i})}, b);
    std::this_thread::sleep_for(50ms);
  }  // hangs up with answers unread
  // The only connection either comes back in step or is replaced: the next client gets its own
  // answers, never a leftover.
  auto next = d.connect();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(scalar(next, "SELECT " + std::to_string(1000 + i), std::string("pg")), std::to_string(1000 + i));
  }
}

// BEGIN and the statement behind it sent in one write (in_tx, PROTOCOL.md §6.1): a BEGIN that fails
// for a passing cause (here the bind's only connection is held by another client's transaction,
// so it times out waiting) must leave the statement unrun, on every backend. Without in_tx the
// statement would take the connection once it came free and commit on its own.
class BeginAhead : public ::testing::TestWithParam<const char*> {};

TEST_P(BeginAhead, AStatementSentBehindAFailedBeginNeverRuns) {
  auto dir = make_temp_dir("beginahead");
  BINDS_CASE_URL(GetParam(), dir, url);
  const bool pg = std::string(GetParam()) == "BINDS_TEST_PG_URL";
  const std::string t = "binds_begin_ahead_" + std::to_string(getpid());
  Daemon d("binds:\n  db:\n    url: " + url + "\n    pool: { max: 1, acquire_timeout: 300ms }\n");
  const std::optional<std::string> b("db");
  auto holder = d.connect();
  holder.query("DROP TABLE IF EXISTS " + t, {}, b);
  holder.query("CREATE TABLE " + t + " (v INTEGER)", {}, b);
  const std::string insert = "INSERT INTO " + t + " VALUES (" + (pg ? "$1" : "?") + ")";
  holder.begin(b);  // holds the only connection

  auto c = d.connect();
  ASSERT_THAT(c.server().features, ::testing::Contains("in_tx"));
  auto begin = c.send_begin(b);
  auto stmt = c.send_query(insert, {Value(std::int64_t{1})}, b, 0, /*in_tx=*/true);
  auto commit = c.send_end(protocol::FrameType::commit, b);
  // The holder lets go after the BEGIN gave up: the statement would find the connection free.
  Reply r = c.wait(begin);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, ErrorCode::pool_timeout) << r.error->message;
  holder.rollback(b);
  r = c.wait(stmt);
  ASSERT_TRUE(r.error) << "the statement ran without the transaction it was sent for";
  EXPECT_EQ(r.error->code, ErrorCode::not_in_transaction) << r.error->message;
  EXPECT_THAT(r.error->message, HasSubstr("not run"));
  r = c.wait(commit);
  EXPECT_FALSE(r.error);  // nothing open: a no-op
  EXPECT_FALSE(r.result.complete.in_transaction);
  EXPECT_EQ(scalar(c, "SELECT COUNT(*) FROM " + t, b), "0");

  // The same three in one write once the connection is free: one transaction, committed.
  begin = c.send_begin(b);
  stmt = c.send_query(insert, {Value(std::int64_t{2})}, b, 0, true);
  commit = c.send_end(protocol::FrameType::commit, b);
  EXPECT_FALSE(c.wait(begin).error);
  r = c.wait(stmt);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_TRUE(r.result.complete.in_transaction);
  EXPECT_FALSE(c.wait(commit).error);
  EXPECT_EQ(scalar(c, "SELECT COUNT(*) FROM " + t, b), "1");

  // Outside a transaction the flag refuses the statement unrun, and the client goes on.
  r = c.wait(c.send_query(insert, {Value(std::int64_t{3})}, b, 0, true));
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, ErrorCode::not_in_transaction);
  EXPECT_EQ(scalar(c, "SELECT COUNT(*) FROM " + t, b), "1");
  holder.query("DROP TABLE " + t, {}, b);
}

// The backend session dies while it runs the statement sent in one write with its BEGIN (on
// PostgreSQL the two share one Sync segment). Whatever the BEGIN's reply was, the statement's
// transaction is lost, never continued or committed, and the client carries on after ROLLBACK.
TEST_P(BeginAhead, ABackendThatDiesUnderTheStatementSentWithItsBeginCommitsNothing) {
  if (std::string(GetParam()).empty()) GTEST_SKIP() << "SQLite has no backend session to kill";
  auto dir = make_temp_dir("begindeath");
  BINDS_CASE_URL(GetParam(), dir, url);
  const bool pg = std::string(GetParam()) == "BINDS_TEST_PG_URL";
  const std::string t = "binds_begin_death_" + std::to_string(getpid());
  Daemon d("default: db\nbinds:\n  db:\n    url: " + url + "\n    pool: { max: 2 }\n  ctl:\n    url: " + url +
           "\n    pool: { max: 1 }\n");
  const std::optional<std::string> b("db"), ctl_bind("ctl");
  auto ctl = d.connect();
  ctl.query("DROP TABLE IF EXISTS " + t, {}, ctl_bind);
  ctl.query("CREATE TABLE " + t + " (v INTEGER)", {}, ctl_bind);
  const std::string slow_insert = pg ? "INSERT INTO " + t + " SELECT 1 FROM pg_sleep(4)"
                                     : "INSERT INTO " + t + " SELECT 1 FROM (SELECT SLEEP(4)) s";

  auto c = d.connect();
  const auto begin = c.send_begin(b);
  const auto stmt = c.send_query(slow_insert, {}, b, 0, /*in_tx=*/true);
  // Kill the session that runs it, from the other bind.
  const std::string find = pg ? "SELECT pid FROM pg_stat_activity WHERE query LIKE 'INSERT INTO " + t + "%'"
                              : "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO " + t + "%'";
  bool killed = false;
  for (int i = 0; i < 60 && !killed; ++i) {
    auto rows = ctl.query(find, {}, ctl_bind).rows;
    if (rows.empty()) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    const std::string pid = client::value_text(rows.at(0).at(0));
    ctl.query(pg ? "SELECT pg_terminate_backend(" + pid + ")" : "KILL CONNECTION " + pid, {}, ctl_bind);
    killed = true;
  }
  ASSERT_TRUE(killed) << "the statement never showed up on the server";

  const Reply rb = c.wait(begin);
  const Reply rs = c.wait(stmt);
  ASSERT_TRUE(rs.error) << "the statement whose session was killed was answered COMPLETE";
  EXPECT_TRUE(rs.error->code == ErrorCode::backend_unavailable || rs.error->code == ErrorCode::not_in_transaction)
      << rs.error->message;
  std::printf("[ info     ] %s: the BEGIN was %s, the statement: %s\n", pg ? "postgresql" : "mysql",
              rb.error ? "refused" : "acknowledged", protocol::error_code_name(rs.error->code).data());
  if (!rb.error) {
    // The BEGIN was acknowledged: the transaction is lost and refused until ROLLBACK.
    EXPECT_EQ(error_code_of([&] { c.query("SELECT 1", {}, b); }), ErrorCode::tx_aborted);
    EXPECT_EQ(error_code_of([&] { c.commit(b); }), ErrorCode::tx_aborted);
    EXPECT_FALSE(c.rollback(b).in_transaction);
  }
  EXPECT_EQ(scalar(ctl, "SELECT COUNT(*) FROM " + t, ctl_bind), "0") << "the killed statement's row was committed";

  // The client goes on: BEGIN, its statement and COMMIT in one write, committed once.
  const std::string insert = "INSERT INTO " + t + " VALUES (" + (pg ? "$1" : "?") + ")";
  const auto b2 = c.send_begin(b);
  const auto s2 = c.send_query(insert, {Value(std::int64_t{7})}, b, 0, true);
  const auto c2 = c.send_end(protocol::FrameType::commit, b);
  EXPECT_FALSE(c.wait(b2).error);
  const Reply r2 = c.wait(s2);
  EXPECT_FALSE(r2.error) << r2.error->message;
  EXPECT_FALSE(c.wait(c2).error);
  EXPECT_EQ(scalar(ctl, "SELECT COUNT(*) FROM " + t, ctl_bind), "1");
  ctl.query("DROP TABLE " + t, {}, ctl_bind);
}

INSTANTIATE_TEST_SUITE_P(Backends, BeginAhead, ::testing::Values("BINDS_TEST_PG_URL", "BINDS_TEST_MYSQL_URL", ""),
                         [](const auto& info) {
                           std::string v = info.param;
                           return v.empty() ? std::string("sqlite") : v.find("PG") != std::string::npos ? "postgresql" : "mysql";
                         });

}  // namespace
}  // namespace binds::test
