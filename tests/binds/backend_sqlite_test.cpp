// The SQLite backend behind the async contract: statements on the database's worker threads, rows
// handed back in batches, backpressure, cancel and abort.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "backend_sink.hpp"

namespace binds::test {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using backend::Outcome;
using backend::Statement;
using backend::TxStatus;
using protocol::Value;
using namespace std::chrono_literals;

constexpr const char* kSlow =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT max(x) FROM c";

class SqliteBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/binds-sqlite-be-XXXXXX";
    dir_ = mkdtemp(tmpl);
    url_ = parse_url("sqlite:///" + (dir_ / "t.db").string());
    options_.bind_key = "t";
    auto r = run_sync(io_, backend::connect(io_.get_executor(), url_, options_));
    ASSERT_TRUE(r.conn) << r.error.message;
    conn_ = std::move(r.conn);
  }
  void TearDown() override {
    conn_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // n more connections to the same database (fatal failure if one cannot be opened).
  void open_more(int n, std::vector<std::unique_ptr<backend::Connection>>& conns) {
    for (int i = 0; i < n; ++i) {
      auto r = run_sync(io_, backend::connect(io_.get_executor(), url_, options_));
      ASSERT_TRUE(r.conn) << r.error.message;
      conns.push_back(std::move(r.conn));
    }
  }
  Outcome exec(const std::string& sql, std::vector<Value> params = {}, backend::ResultSink* sink = nullptr) {
    CollectSink local;
    auto& s = sink ? *sink : local;
    return run_sync(io_, conn_->execute(Statement{sql, params}, s));
  }
  asio::io_context io_;
  fs::path dir_;
  DatabaseUrl url_;
  backend::ConnectOptions options_;
  std::unique_ptr<backend::Connection> conn_;
};

TEST_F(SqliteBackend, TypesParametersAndOutcomes) {
  ASSERT_FALSE(exec("CREATE TABLE t (i INTEGER PRIMARY KEY, r REAL, s TEXT, b BLOB)").error);
  auto ins = exec("INSERT INTO t (r, s, b) VALUES (?, ?, ?)",
                  {1.5, std::string("héllo"), protocol::Bytes{std::string("\x00\xff", 2)}});
  ASSERT_FALSE(ins.error) << ins.error->message;
  EXPECT_EQ(ins.affected, 1);
  EXPECT_EQ(ins.last_insert_id, 1);
  EXPECT_EQ(ins.tx, TxStatus::idle);
  CollectSink sink;
  auto sel = exec("SELECT i, r, s, b, NULL FROM t WHERE i = ?", {std::int64_t{1}}, &sink);
  ASSERT_FALSE(sel.error);
  ASSERT_EQ(sink.rows.size(), 1u);
  EXPECT_EQ(sink.cols.size(), 5u);
  EXPECT_EQ(sink.rows[0][0], Value(std::int64_t{1}));
  EXPECT_EQ(sink.rows[0][1], Value(1.5));
  EXPECT_EQ(sink.rows[0][2], Value(std::string("héllo")));
  EXPECT_EQ(sink.rows[0][3], Value(protocol::Bytes{std::string("\x00\xff", 2)}));
  EXPECT_EQ(sink.rows[0][4], Value(protocol::Null{}));
  EXPECT_EQ(sel.row_count, 1);
  auto bad = exec("SELEC 1");
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->code, protocol::ErrorCode::sql_error);
  EXPECT_FALSE(bad.error->connection_broken);
}

TEST_F(SqliteBackend, TransactionStatusComesFromTheBackend) {
  EXPECT_EQ(exec("BEGIN").tx, TxStatus::in_tx);
  EXPECT_EQ(exec("SELECT 1").tx, TxStatus::in_tx);
  EXPECT_EQ(exec("ROLLBACK").tx, TxStatus::idle);
}

TEST_F(SqliteBackend, LargeResultsStreamInBatchesWithBackpressure) {
  CollectSink sink;
  sink.stop_after_rows = SIZE_MAX;
  struct Throttle : CollectSink {
    mutable int calls = 0;
    bool full() const override { return ++calls % 3 == 0; }
  } throttled;
  auto out = exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT x FROM c",
                  {}, &throttled);
  ASSERT_FALSE(out.error);
  EXPECT_EQ(throttled.rows.size(), 100000u);
  EXPECT_EQ(out.row_count, 100000);
  EXPECT_GT(throttled.drained_calls, 0);
  EXPECT_EQ(throttled.rows.back()[0], Value(std::int64_t{100000}));
}

TEST_F(SqliteBackend, ASinkThatStopsEndsTheResultAndKeepsTheConnection) {
  CollectSink sink;
  sink.stop_after_rows = 1000;
  auto out = exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT x FROM c",
                  {}, &sink);
  EXPECT_TRUE(out.stopped);
  EXPECT_FALSE(out.error);
  EXPECT_LT(sink.rows.size(), 5000u);
  CollectSink again;
  EXPECT_FALSE(exec("SELECT 2", {}, &again).error);
  EXPECT_EQ(again.rows.at(0)[0], Value(std::int64_t{2}));
}

TEST_F(SqliteBackend, ARowOverTheLimitIsRefused) {
  CollectSink sink;
  sink.max_row = 1000;
  auto out = exec("SELECT zeroblob(5000)", {}, &sink);
  ASSERT_TRUE(out.error);
  EXPECT_TRUE(out.row_too_large);
  EXPECT_TRUE(sink.rows.empty());
  EXPECT_FALSE(exec("SELECT 1").error);
}

TEST_F(SqliteBackend, CancelStopsARunningStatementPromptly) {
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    conn_->cancel();
  });
  auto t0 = std::chrono::steady_clock::now();
  auto out = exec(kSlow);
  canceller.join();
  ASSERT_TRUE(out.error);
  EXPECT_TRUE(out.error->interrupted);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  // A cancel when nothing runs does not touch the next statement.
  conn_->cancel();
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(exec("SELECT 1").error);
}

TEST_F(SqliteBackend, LongStatementsOnEveryRunningThreadDoNotHoldUpAPointSelect) {
  // As many scans as the database runs at once before it brings in another thread, each on a
  // connection of its own, then a point select on one more.
  const int busy = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options_.worker_threads = busy + 2;
  std::vector<std::unique_ptr<backend::Connection>> conns;
  ASSERT_NO_FATAL_FAILURE(open_more(busy + 1, conns));
  int slow_done = 0;
  std::vector<std::unique_ptr<CollectSink>> sinks;
  for (int i = 0; i < busy; ++i) {
    sinks.push_back(std::make_unique<CollectSink>());
    asio::co_spawn(io_, conns[i]->execute(Statement{kSlow, {}}, *sinks.back()),
                   [&](std::exception_ptr, Outcome) { ++slow_done; });
  }
  const auto started = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - started < 200ms) {  // the scans start
    io_.restart();
    io_.run_for(10ms);
  }
  CollectSink fast_sink;
  bool fast_done = false;
  Outcome fast;
  const auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(io_, conns[busy]->execute(Statement{"SELECT 42", {}}, fast_sink), [&](std::exception_ptr, Outcome o) {
    fast = std::move(o);
    fast_done = true;
  });
  auto run_for = [&](auto d) {
    io_.restart();  // run_sync() ran it dry
    io_.run_for(d);
  };
  while (!fast_done && std::chrono::steady_clock::now() - t0 < 5s) run_for(10ms);
  const auto took = std::chrono::steady_clock::now() - t0;
  for (int i = 0; i < busy; ++i) conns[i]->cancel();
  while (slow_done < busy && std::chrono::steady_clock::now() - t0 < 15s) run_for(10ms);
  ASSERT_TRUE(fast_done) << "a point select waited behind " << busy << " long statements";
  EXPECT_FALSE(fast.error);
  EXPECT_LT(took, 2s);  // a stall is noticed within milliseconds; the rest is a loaded machine's slack
  EXPECT_EQ(slow_done, busy);
}

// Statements that finish while the event loop is busy elsewhere come back in one posted handler,
// not one each: on a loaded daemon every posted completion cost the I/O thread a turn of its own
// (an epoll_wait) between them.
TEST_F(SqliteBackend, StatementsThatFinishWhileTheLoopIsBusyAreResumedTogether) {
  constexpr int kStatements = 8;
  std::vector<std::unique_ptr<backend::Connection>> conns;
  ASSERT_NO_FATAL_FAILURE(open_more(kStatements, conns));
  std::vector<std::unique_ptr<CollectSink>> sinks;
  int done = 0, failed = 0;
  for (auto& c : conns) {
    sinks.push_back(std::make_unique<CollectSink>());
    // Long enough (milliseconds) to end only once the loop has stepped away.
    const char* sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000) SELECT max(x) FROM c";
    asio::co_spawn(io_, c->execute(Statement{sql, {}}, *sinks.back()), [&](std::exception_ptr e, Outcome o) {
      ++done;
      if (e || o.error) ++failed;
    });
  }
  io_.restart();
  io_.poll();  // every statement is handed to the workers; the loop then stays away
  ASSERT_EQ(done, 0) << "the statements finished before the loop stepped away; nothing to measure";
  std::this_thread::sleep_for(3s);  // the workers finish all of them meanwhile (ThreadSanitizer: ~0.1 s each)
  io_.restart();
  const std::size_t handlers = io_.poll();
  EXPECT_EQ(done, kStatements);
  EXPECT_EQ(failed, 0);
  EXPECT_LT(handlers, static_cast<std::size_t>(kStatements)) << "one handler per finished statement";
  for (auto& sink : sinks) ASSERT_EQ(sink->rows.size(), 1u);
}

// As bindsd runs with --threads 2: each client on a strand, the event loop run by two threads. The
// hand-back's batches then drain on either thread at once; a batch shared between drains was
// swapped under the one still resuming it, and a waiting statement was resumed twice.
TEST_F(SqliteBackend, StatementsOnStrandsOfTwoIoThreadsAllComeBackOnce) {
  constexpr int kConns = 8;
  constexpr int kRounds = 150;
  std::vector<std::unique_ptr<backend::Connection>> conns;
  ASSERT_NO_FATAL_FAILURE(open_more(kConns, conns));
  std::atomic<int> ok{0}, wrong{0}, finished{0};
  // No captures: a coroutine's frame keeps its parameters, not the lambda object that made it.
  auto loop = [](backend::Connection& conn, int i, std::atomic<int>& ok, std::atomic<int>& wrong)
      -> asio::awaitable<void> {
    for (int r = 0; r < kRounds; ++r) {
      CollectSink sink;
      const std::vector<Value> params{std::int64_t{i * 1000 + r}};
      Outcome o = co_await conn.execute(Statement{"SELECT ?", params}, sink);
      if (!o.error && sink.rows.size() == 1 && sink.rows[0].at(0) == Value(std::int64_t{i * 1000 + r}))
        ++ok;
      else
        ++wrong;
    }
  };
  for (int i = 0; i < kConns; ++i) {
    asio::co_spawn(asio::make_strand(io_), loop(*conns[i], i, ok, wrong), [&](std::exception_ptr e) {
      if (e) ++wrong;
      ++finished;
    });
  }
  io_.restart();
  std::exception_ptr other_thread;
  std::thread second([&] {
    try {
      io_.run();
    } catch (...) {
      other_thread = std::current_exception();
    }
  });
  EXPECT_NO_THROW(io_.run());
  second.join();
  EXPECT_FALSE(other_thread) << "the event loop threw on the second thread";
  EXPECT_EQ(finished.load(), kConns);
  EXPECT_EQ(ok.load(), kConns * kRounds);
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(SqliteBackend, AbortEndsAWaitAtOnceAndWritesTheConnectionOff) {
  asio::steady_timer t(io_, 200ms);
  t.async_wait([&](boost::system::error_code) { conn_->abort(); });
  auto out = exec(kSlow);
  ASSERT_TRUE(out.error);
  EXPECT_TRUE(out.error->connection_broken);
  EXPECT_FALSE(conn_->looks_alive());
}

TEST_F(SqliteBackend, ResetDropsTemporaryObjects) {
  ASSERT_FALSE(exec("CREATE TEMP TABLE tt (a)").error);
  conn_->send_reset();
  CollectSink discard;
  auto r = run_sync(io_, conn_->receive(discard));
  ASSERT_FALSE(r.error);
  auto out = exec("SELECT * FROM tt");
  ASSERT_TRUE(out.error);
}

TEST_F(SqliteBackend, AttachingAFileIsRefused) {
  auto out = exec("ATTACH '" + (dir_ / "other.db").string() + "' AS o");
  ASSERT_TRUE(out.error);
  EXPECT_NE(out.error->message.find("not authorized"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "other.db"));
}

}  // namespace
}  // namespace binds::test
