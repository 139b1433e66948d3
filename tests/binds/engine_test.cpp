// The request engine with a scripted backend and no database: what goes on the wire in which order
// when a client pipelines, and what the client is told. The backend answers from a script keyed by
// SQL text (its transaction status after each statement) and logs every send and receive.

#include <gtest/gtest.h>

#include <utility>
#include <boost/asio.hpp>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "binds/engine/engine.hpp"

namespace binds::engine {
namespace {

using backend::Outcome;
using backend::TxStatus;
using protocol::ErrorCode;

struct Script {
  std::vector<std::string> log;                // "send SQL" / "recv SQL" in order
  std::map<std::string, TxStatus> tx_after;    // status after a statement (default: unchanged)
  std::map<std::string, std::string> fails;    // SQL → SQLSTATE of the error it raises
  bool chain = false;                          // the backend chains a BEGIN to its statement
};

class ScriptedConnection final : public backend::Connection {
 public:
  explicit ScriptedConnection(std::shared_ptr<Script> s) : s_(std::move(s)) {}
  Backend backend() const override { return Backend::postgresql; }
  int max_pipeline() const override { return 64; }
  void send(const backend::Statement& st) override {
    s_->log.push_back("send " + std::string(st.sql));
    queued_.emplace_back(st.sql);
  }
  bool send_begin_chained(const backend::Statement& st) override {
    if (!s_->chain) return false;
    s_->log.push_back("send " + std::string(st.sql) + " chained");
    queued_.emplace_back(st.sql);
    chained_.push_back(queued_.size());  // the item after it is in its segment
    return true;
  }
  void send_reset() override {
    s_->log.push_back("send RESET");
    queued_.emplace_back("RESET");
  }
  asio::awaitable<Outcome> receive(backend::ResultSink&) override {
    Outcome out;
    const std::string sql = queued_.front();
    queued_.pop_front();
    for (auto& c : chained_) --c;
    const bool in_failed_segment = skip_next_;
    skip_next_ = false;
    if (in_failed_segment) {
      // PostgreSQL skipped it: the chained BEGIN before it failed.
      s_->log.push_back("skipped " + sql);
      out.error = backend::BackendError{ErrorCode::not_in_transaction, "not run", "", std::nullopt, false, false};
      out.tx = tx_;
      co_return out;
    }
    const bool chained = !chained_.empty() && chained_.front() == 0;
    if (chained) chained_.erase(chained_.begin());
    s_->log.push_back("recv " + sql);
    if (auto it = s_->tx_after.find(sql); it != s_->tx_after.end()) tx_ = it->second;
    if (auto it = s_->fails.find(sql); it != s_->fails.end()) {
      out.error = backend::BackendError{ErrorCode::sql_error, "scripted failure", it->second, std::nullopt, false, false};
      if (tx_ == TxStatus::in_tx) tx_ = TxStatus::failed_tx;  // PostgreSQL's rule
      if (chained) skip_next_ = true;
    }
    out.tx = tx_;
    co_return out;
  }
  int outstanding() const override { return static_cast<int>(queued_.size()); }
  void cancel() override {}
  void abort() override {}
  bool looks_alive() override { return true; }
  asio::awaitable<bool> ping() override { co_return true; }
  asio::awaitable<void> close() override { co_return; }

 private:
  std::shared_ptr<Script> s_;
  std::deque<std::string> queued_;
  std::vector<std::size_t> chained_;  // per chained item: how many items until it is received
  bool skip_next_ = false;
  TxStatus tx_ = TxStatus::idle;
};

struct Reply {
  bool ok = false;
  ErrorCode code = ErrorCode::internal;
  bool in_transaction = false;
};

class RecordingResponder final : public Responder {
 public:
  void columns(std::uint32_t, std::span<const protocol::Column>) override {}
  void row(std::uint32_t, std::span<const backend::ValueView>) override {}
  std::uint64_t complete(std::uint32_t id, const protocol::Complete& done) override {
    replies[id] = Reply{true, ErrorCode::internal, done.in_transaction};
    order.push_back(id);
    return 0;
  }
  std::uint64_t error(std::uint32_t id, const protocol::ErrorInfo& info) override {
    replies[id] = Reply{false, info.code, false};
    order.push_back(id);
    return 0;
  }
  bool full() const override { return false; }
  asio::awaitable<bool> drained(const bool*) override { co_return true; }
  void wake() override {}
  std::size_t max_row_bytes() const override { return SIZE_MAX; }
  std::map<std::uint32_t, Reply> replies;
  std::vector<std::uint32_t> order;
};

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : script_(std::make_shared<Script>()) {
    auto config = std::make_shared<Config>();
    BindConfig bind;
    bind.key = "pg";
    bind.url.backend = Backend::postgresql;
    bind.pool.max = 1;
    bind.pool.acquire_timeout = std::chrono::seconds(5);
    config->default_bind = "pg";
    config->binds.emplace("pg", bind);
    auto s = script_;
    pool::Factory factory = [s](asio::any_io_executor) -> asio::awaitable<backend::ConnectResult> {
      backend::ConnectResult r;
      r.conn = std::make_unique<ScriptedConnection>(s);
      co_return r;
    };
    auto routes = std::make_shared<Routes>();
    routes->config = config;
    routes->pools["pg"] = std::make_shared<pool::Pool>(io_.get_executor(), bind, std::move(factory), nullptr);
    routes_ = routes;
    engine_ = std::make_unique<Engine>(routes);
    session_ = std::make_shared<ClientSession>(*engine_, asio::make_strand(io_), responder_, 1, Limits{});
  }
  ~EngineTest() override {
    asio::co_spawn(io_, session_->close(), asio::detached);
    io_.restart();
    io_.run_for(std::chrono::seconds(2));
    for (auto& [k, p] : routes_->pools) p->stop();
    io_.restart();
    io_.run_for(std::chrono::seconds(1));
  }
  void query(std::uint32_t id, std::string sql, bool in_tx = false) {
    Request r;
    r.id = id;
    r.sql = std::move(sql);
    r.in_tx = in_tx;
    session_->submit(std::move(r));
  }
  void begin_frame(std::uint32_t id) {
    Request r;
    r.id = id;
    r.kind = Kind::begin;
    session_->submit(std::move(r));
  }
  void run() {
    io_.restart();
    io_.run_for(std::chrono::seconds(2));
  }
  // Position of an event in the log (-1 if absent).
  int at(const std::string& event) const {
    for (std::size_t i = 0; i < script_->log.size(); ++i)
      if (script_->log[i] == event) return static_cast<int>(i);
    return -1;
  }

  asio::io_context io_;
  std::shared_ptr<Script> script_;
  std::shared_ptr<const Routes> routes_;
  std::unique_ptr<Engine> engine_;
  RecordingResponder responder_;
  std::shared_ptr<ClientSession> session_;
};

TEST_F(EngineTest, QueuedStatementsArePipelinedButACommitWaitsForWhatPrecedesIt) {
  script_->tx_after = {{"BEGIN", TxStatus::in_tx}, {"COMMIT", TxStatus::idle}};
  query(1, "BEGIN");
  query(2, "INSERT 1");
  query(3, "INSERT 2");
  query(4, "COMMIT");
  run();
  ASSERT_EQ(responder_.order, (std::vector<std::uint32_t>{1, 2, 3, 4}));
  // The inserts went out before BEGIN's answer was read: pipelined.
  EXPECT_LT(at("send INSERT 1"), at("recv BEGIN"));
  EXPECT_LT(at("send INSERT 2"), at("recv BEGIN"));
  // The COMMIT only after the last statement before it was answered.
  EXPECT_GT(at("send COMMIT"), at("recv INSERT 2"));
  EXPECT_TRUE(responder_.replies[4].ok);
  EXPECT_FALSE(responder_.replies[4].in_transaction);
  EXPECT_GT(engine_->stats().get("pg")->pipelined.load(), 0u);
}

TEST_F(EngineTest, AFailedTransactionsCommitIsRefusedAndNeverSent) {
  script_->tx_after = {{"BEGIN", TxStatus::in_tx}, {"ROLLBACK", TxStatus::idle}};
  script_->fails = {{"INSERT dup", "23505"}};
  query(1, "BEGIN");
  query(2, "INSERT dup");
  query(3, "INSERT 3");
  query(4, "COMMIT");
  run();
  ASSERT_EQ(responder_.order.size(), 4u);
  EXPECT_FALSE(responder_.replies[2].ok);
  EXPECT_FALSE(responder_.replies[4].ok);
  EXPECT_EQ(responder_.replies[4].code, ErrorCode::tx_aborted);
  EXPECT_EQ(at("send COMMIT"), -1) << "a COMMIT of a failed transaction reached the backend";
  query(5, "ROLLBACK");
  run();
  EXPECT_TRUE(responder_.replies[5].ok);
  EXPECT_GE(at("send ROLLBACK"), 0);
}

TEST_F(EngineTest, StatementsThatMayEndATransactionAreNeverSentAhead) {
  script_->tx_after = {{"BEGIN", TxStatus::in_tx}, {"END", TxStatus::idle}};
  query(1, "BEGIN");
  query(2, "SELECT 1");
  query(3, "  end");
  query(4, "DO $$ BEGIN COMMIT; END $$");
  query(5, "call p()");
  run();
  ASSERT_EQ(responder_.order.size(), 5u);
  EXPECT_GT(at("send   end"), at("recv SELECT 1"));
  EXPECT_GT(at("send DO $$ BEGIN COMMIT; END $$"), at("recv   end"));
  EXPECT_GT(at("send call p()"), at("recv DO $$ BEGIN COMMIT; END $$"));
}

TEST_F(EngineTest, AStatementForTheTransactionNeverRunsWhenItsBeginFailed) {
  script_->fails = {{"BEGIN", "25006"}};
  begin_frame(1);
  query(2, "INSERT 1", /*in_tx=*/true);
  query(3, "BEGIN");
  query(4, "INSERT 2", /*in_tx=*/true);
  run();
  ASSERT_EQ(responder_.order, (std::vector<std::uint32_t>{1, 2, 3, 4}));
  EXPECT_FALSE(responder_.replies[1].ok);
  EXPECT_EQ(responder_.replies[2].code, ErrorCode::not_in_transaction);
  EXPECT_EQ(responder_.replies[4].code, ErrorCode::not_in_transaction);
  EXPECT_EQ(at("send INSERT 1"), -1) << "ran without the transaction it was sent for";
  EXPECT_EQ(at("send INSERT 2"), -1) << "pipelined behind a BEGIN that then failed";
}

TEST_F(EngineTest, AStatementForTheTransactionWaitsForItsBeginThenPipelinesInsideIt) {
  script_->tx_after = {{"BEGIN", TxStatus::in_tx}, {"COMMIT", TxStatus::idle}};
  query(1, "BEGIN");
  query(2, "INSERT 1", true);
  query(3, "INSERT 2", true);
  query(4, "COMMIT");
  query(5, "INSERT 3", true);
  run();
  ASSERT_EQ(responder_.order, (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));
  for (std::uint32_t id : {1u, 2u, 3u, 4u}) EXPECT_TRUE(responder_.replies[id].ok) << id;
  EXPECT_GT(at("send INSERT 1"), at("recv BEGIN")) << "sent before its BEGIN was known to succeed";
  // Inside the transaction the next one is pipelined as any statement would be.
  EXPECT_LT(at("send INSERT 2"), at("recv INSERT 1"));
  // After the COMMIT no transaction is open: refused, never sent.
  EXPECT_EQ(responder_.replies[5].code, ErrorCode::not_in_transaction);
  EXPECT_EQ(at("send INSERT 3"), -1);
}

TEST_F(EngineTest, AStatementForTheTransactionIsNotPipelinedBehindOneThatMayEndIt) {
  script_->tx_after = {{"BEGIN", TxStatus::in_tx}, {"COMMIT", TxStatus::idle}};
  query(1, "BEGIN");
  run();
  // COMMIT as a plain query runs first; the statement queued behind it must not reach the backend
  // ahead of knowing the transaction ended.
  query(2, "COMMIT");
  query(3, "INSERT 1", true);
  run();
  EXPECT_TRUE(responder_.replies[2].ok);
  EXPECT_EQ(responder_.replies[3].code, ErrorCode::not_in_transaction);
  EXPECT_EQ(at("send INSERT 1"), -1);
}

TEST_F(EngineTest, ABeginIsChainedToTheStatementSentForItsTransaction) {
  script_->chain = true;
  script_->tx_after = {{"BEGIN", TxStatus::in_tx}, {"COMMIT", TxStatus::idle}};
  begin_frame(1);
  query(2, "INSERT 1", true);
  query(3, "COMMIT");
  run();
  ASSERT_EQ(responder_.order, (std::vector<std::uint32_t>{1, 2, 3}));
  for (std::uint32_t id : {1u, 2u, 3u}) EXPECT_TRUE(responder_.replies[id].ok) << id;
  EXPECT_TRUE(responder_.replies[2].in_transaction);
  EXPECT_GE(at("send BEGIN chained"), 0);
  EXPECT_LT(at("send INSERT 1"), at("recv BEGIN")) << "one write for both";
  EXPECT_GT(at("send COMMIT"), at("recv INSERT 1"));

  // The BEGIN fails: its statement is skipped by the backend and answered NOT_IN_TRANSACTION,
  // and nothing is left pinned.
  script_->log.clear();
  script_->fails = {{"BEGIN", "25006"}};
  script_->tx_after.erase("BEGIN");  // a BEGIN that fails opens nothing
  begin_frame(4);
  query(5, "INSERT 2", true);
  query(6, "SELECT 1");
  run();
  ASSERT_EQ(responder_.order, (std::vector<std::uint32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_FALSE(responder_.replies[4].ok);
  EXPECT_EQ(responder_.replies[5].code, ErrorCode::not_in_transaction);
  EXPECT_GE(at("skipped INSERT 2"), 0);
  EXPECT_TRUE(responder_.replies[6].ok);
  EXPECT_FALSE(responder_.replies[6].in_transaction);
  EXPECT_EQ(session_->pinned(), 0);

  // Not chained: a statement without in_tx, or one that may end the transaction.
  script_->log.clear();
  script_->fails.clear();
  script_->tx_after = {{"BEGIN", TxStatus::in_tx}, {"ROLLBACK", TxStatus::idle}};
  begin_frame(7);
  query(8, "INSERT 3");
  query(9, "ROLLBACK");
  run();
  EXPECT_EQ(at("send BEGIN chained"), -1);
  EXPECT_GT(at("send INSERT 3"), at("recv BEGIN"));
}

TEST(ActivitySummary, CollapsesWhitespaceAndCutsOnACharacterBoundary) {
  EXPECT_EQ(Activity::summary("  SELECT\n\t1,\r\n  2  "), "SELECT 1, 2");
  EXPECT_EQ(Activity::summary(""), "");
  const std::string exact(Activity::kSummaryBytes, 'x');
  EXPECT_EQ(Activity::summary(exact), exact) << "nothing cut, nothing added";
  EXPECT_EQ(Activity::summary(exact + "y"), exact + "...");
  // A two-byte character straddling the limit goes whole.
  std::string straddle(Activity::kSummaryBytes - 1, 'x');
  EXPECT_EQ(Activity::summary(straddle + "\xc3\xa9 tail"), straddle + "...");
  // A huge statement is not copied whole to be cut.
  EXPECT_EQ(Activity::summary(std::string(1 << 20, 'z')).size(), Activity::kSummaryBytes + 3);
}

TEST(ActivityTracking, RequestsComeAndGoAndRunningClearsWaiting) {
  Activity a;
  a.begin(7, "db", "SELECT 1");
  a.begin(9, "lite", "BEGIN");
  auto now = a.snapshot();
  ASSERT_EQ(now.size(), 2u);
  EXPECT_TRUE(now[0].waiting);
  a.running(7);
  now = a.snapshot();
  EXPECT_FALSE(now[0].waiting);
  EXPECT_TRUE(now[1].waiting);
  a.end(7);
  now = a.snapshot();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].id, 9u);
  EXPECT_EQ(now[0].bind, "lite");
  a.end(9);
  a.end(9);  // twice: harmless
  EXPECT_TRUE(a.snapshot().empty());
}

}  // namespace
}  // namespace binds::engine
