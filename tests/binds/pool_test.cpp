// The pool with a fake clock and fake connections: every state transition, deadline, backoff and
// admin control, in microseconds, with no database and no real wait.

#include <gtest/gtest.h>

#include <utility>
#include <boost/asio.hpp>
#include <deque>
#include <memory>

#include "binds/pool/pool.hpp"

namespace binds::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using backend::BackendError;
using backend::Outcome;
using backend::TxStatus;
using protocol::ErrorCode;

struct FakeClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<FakeClock>;
  static constexpr bool is_steady = true;
  static time_point now() { return current; }
  static void advance(duration d) { current += d; }
  static inline time_point current{std::chrono::hours(1)};
};

using Pool = pool::BasicPool<FakeClock>;

// What the fake backend did, shared by every connection of one test.
struct Backend {
  int opened = 0;
  int closed = 0;
  int live = 0;  // open and not closed
  std::vector<std::string> statements;
  bool fail_connect = false;
  // How many more connects complete at once; the ones after wait in `held` until cancelled (a
  // backend slow to accept). Negative: no limit.
  int prompt_connects = -1;
  std::vector<std::shared_ptr<boost::asio::steady_timer>> held;
  bool rollback_fails = false;
  int pings = 0;
};

class FakeConnection final : public backend::Connection {
 public:
  explicit FakeConnection(std::shared_ptr<Backend> b) : b_(std::move(b)) {
    id = ++b_->opened;
    ++b_->live;
  }
  ~FakeConnection() override {
    if (!closed_) --b_->live;
  }
  binds::Backend backend() const override { return binds::Backend::postgresql; }
  int max_pipeline() const override { return 1; }
  void send(const backend::Statement& st) override { queued_.emplace_back(st.sql); }
  void send_reset() override { queued_.emplace_back("RESET"); }
  asio::awaitable<Outcome> receive(backend::ResultSink&) override {
    Outcome out;
    std::string sql = queued_.front();
    queued_.pop_front();
    b_->statements.push_back(sql);
    out.tx = TxStatus::idle;
    if (sql == "ROLLBACK" && b_->rollback_fails) {
      out.error = BackendError{ErrorCode::backend_unavailable, "gone", "", std::nullopt, true, false};
      out.tx = TxStatus::unknown;
    }
    co_return out;
  }
  int outstanding() const override { return static_cast<int>(queued_.size()); }
  void cancel() override {}
  void abort() override {}
  bool looks_alive() override { return alive; }
  bool wants_replacement() const override { return bloated; }
  asio::awaitable<bool> ping() override {
    ++b_->pings;
    co_return alive && answers;
  }
  asio::awaitable<void> close() override {
    ++b_->closed;
    --b_->live;
    closed_ = true;
    co_return;
  }
  bool alive = true;
  bool answers = true;  // false: open (looks alive) but no answer to a round trip, as if frozen
  bool bloated = false;  // holds memory only closing returns
  int id = 0;  // the how-many-th connection opened (addresses get reused)

 private:
  std::shared_ptr<Backend> b_;
  std::deque<std::string> queued_;
  bool closed_ = false;
};

class PoolTest : public ::testing::Test {
 protected:
  std::shared_ptr<Pool> make(int max, int min = 0, std::shared_ptr<pool::Budget> budget = nullptr) {
    BindConfig cfg;
    cfg.key = "k";
    cfg.pool.max = max;
    cfg.pool.min = min;
    cfg.pool.acquire_timeout = 5s;
    cfg.pool.idle_timeout = 60s;
    cfg.pool.max_lifetime = 3600s;
    auto b = backend_;
    auto factory = [b](asio::any_io_executor ex) -> asio::awaitable<backend::ConnectResult> {
      backend::ConnectResult r;
      if (b->prompt_connects == 0) {
        auto t = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
        b->held.push_back(t);
        boost::system::error_code ec;
        co_await t->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      } else if (b->prompt_connects > 0) {
        --b->prompt_connects;
      }
      if (b->fail_connect) {
        r.error.code = ErrorCode::backend_unavailable;
        r.error.message = "connection refused";
      } else {
        r.conn = std::make_unique<FakeConnection>(b);
      }
      co_return r;
    };
    auto p = std::make_shared<Pool>(io_.get_executor(), cfg, factory, std::move(budget), 0ms);
    return p;
  }
  // Runs everything that is ready (no real time passes).
  void settle() {
    io_.restart();
    io_.poll();
  }
  // Starts an acquire; its result lands in the returned slot when it completes.
  std::shared_ptr<std::optional<pool::BasicAcquireResult<FakeClock>>> acquire(
      const std::shared_ptr<Pool>& p, std::optional<FakeClock::duration> paused_limit = std::nullopt,
      std::shared_ptr<pool::AcquireCanceller> canceller = nullptr) {
    auto out = std::make_shared<std::optional<pool::BasicAcquireResult<FakeClock>>>();
    asio::co_spawn(asio::make_strand(io_), p->acquire(paused_limit, std::move(canceller)),
                   [out](std::exception_ptr e, auto r) {
      if (e) std::rethrow_exception(e);
      *out = std::move(r);
    });
    settle();
    return out;
  }
  asio::io_context io_;
  std::shared_ptr<Backend> backend_ = std::make_shared<Backend>();
};

TEST_F(PoolTest, WarmsUpToMinAndLeasesIdleConnections) {
  auto p = make(4, 2);
  p->start();
  EXPECT_EQ(p->stats().connecting, 2);
  settle();
  auto s = p->stats();
  EXPECT_EQ(s.idle, 2);
  EXPECT_EQ(s.open, 2);
  EXPECT_EQ(s.connects, 2u);
  auto a = acquire(p);
  ASSERT_TRUE(*a && (*a)->lease);
  EXPECT_EQ(p->stats().in_use, 1);
  EXPECT_EQ(p->stats().idle, 1);
  (*a)->lease.release();
  EXPECT_EQ(p->stats().in_use, 0);
  EXPECT_EQ(p->stats().idle, 2);
  EXPECT_EQ(backend_->opened, 2);
}

TEST_F(PoolTest, WaitsAtMaxAndIsGrantedOnRelease) {
  auto p = make(1);
  p->start();
  auto a = acquire(p);
  ASSERT_TRUE((*a)->lease);
  auto b = acquire(p);
  EXPECT_FALSE(*b) << "the second acquire must wait: max 1";
  EXPECT_EQ(p->stats().waiting, 1);
  (*a)->lease.release();
  settle();
  ASSERT_TRUE(*b);
  EXPECT_TRUE((*b)->lease);
  EXPECT_EQ(backend_->opened, 1) << "the released connection is handed over, not a new one";
}

TEST_F(PoolTest, AcquireTimesOutOnTheClock) {
  auto p = make(1);
  p->start();
  auto a = acquire(p);
  auto b = acquire(p);
  FakeClock::advance(4900ms);
  p->maintain();
  settle();
  EXPECT_FALSE(*b);
  FakeClock::advance(200ms);
  p->maintain();
  settle();
  ASSERT_TRUE(*b);
  ASSERT_TRUE((*b)->error);
  EXPECT_EQ((*b)->error->code, ErrorCode::pool_timeout);
  EXPECT_NE((*b)->error->message.find("pool max 1"), std::string::npos);
  EXPECT_EQ(p->stats().acquire_timeouts, 1u);
  EXPECT_EQ(p->stats().waiting, 0);
}

TEST_F(PoolTest, BackendDownFailsWaitersAtOnceAndBacksOff) {
  backend_->fail_connect = true;
  auto p = make(4);
  p->start();
  auto a = acquire(p);
  ASSERT_TRUE(*a);
  ASSERT_TRUE((*a)->error);
  EXPECT_EQ((*a)->error->code, ErrorCode::backend_unavailable);
  EXPECT_NE((*a)->error->message.find("connection refused"), std::string::npos);
  EXPECT_TRUE(p->stats().backend_down);
  const auto attempts = p->connect_attempts();
  // Backing off: 250 ms, then 500, 1000, … up to 5 s; no connect before the backoff ends.
  auto b = acquire(p);
  EXPECT_EQ(p->connect_attempts(), attempts) << "connect retried during the backoff";
  FakeClock::advance(260ms);
  p->maintain();
  settle();
  EXPECT_EQ(p->connect_attempts(), attempts + 1);
  ASSERT_TRUE(*b);
  EXPECT_EQ((*b)->error->code, ErrorCode::backend_unavailable);
  FakeClock::advance(300ms);  // backoff is now 500 ms
  p->maintain();
  settle();
  EXPECT_EQ(p->connect_attempts(), attempts + 1);
  for (int i = 0; i < 10; ++i) {
    FakeClock::advance(6s);
    auto c = acquire(p);
    p->maintain();
    settle();
  }
  // The backend returns: the next probe succeeds and the bind is up again.
  backend_->fail_connect = false;
  FakeClock::advance(6s);
  p->maintain();
  settle();
  auto d = acquire(p);
  ASSERT_TRUE(*d);
  EXPECT_TRUE((*d)->lease);
  EXPECT_FALSE(p->stats().backend_down);
}

// The backend comes back while requests wait: the first connection serves the oldest waiter and
// the next ones are still opening when a later waiter's time runs out. That waiter met an outage,
// not a pool too small for its load, and must hear BACKEND_UNAVAILABLE (a crash test saw
// POOL_TIMEOUT here, which sends people to raise pool max).
TEST_F(PoolTest, AWaitThatMetAnOutageEndsAsBackendUnavailableNotPoolTimeout) {
  backend_->fail_connect = true;
  auto p = make(4);
  p->start();
  auto first = acquire(p);
  ASSERT_TRUE(*first && (*first)->error);
  auto b = acquire(p);  // backing off: both wait
  auto c = acquire(p);
  EXPECT_FALSE(*b);
  EXPECT_FALSE(*c);
  backend_->fail_connect = false;
  backend_->prompt_connects = 1;  // the probe gets through; the connects after it are slow
  FakeClock::advance(300ms);
  p->maintain();
  settle();
  ASSERT_TRUE(*b);
  EXPECT_TRUE((*b)->lease);
  EXPECT_FALSE(p->stats().backend_down);
  EXPECT_FALSE(*c);
  EXPECT_EQ(p->stats().connecting, 1);
  FakeClock::advance(5s);
  p->maintain();
  settle();
  ASSERT_TRUE(*c);
  ASSERT_TRUE((*c)->error);
  EXPECT_EQ((*c)->error->code, ErrorCode::backend_unavailable) << (*c)->error->message;
  EXPECT_NE((*c)->error->message.find("reconnecting"), std::string::npos) << (*c)->error->message;
  EXPECT_NE((*c)->error->message.find("connection refused"), std::string::npos) << (*c)->error->message;
  // A wait that began once the bind was up again is the pool's own: POOL_TIMEOUT.
  backend_->prompt_connects = -1;
  for (auto& t : backend_->held) t->cancel();
  settle();
  std::vector<decltype(c)> busy;
  for (int i = 0; i < 3; ++i) busy.push_back(acquire(p));
  for (auto& r : busy) ASSERT_TRUE(*r && (*r)->lease);
  auto late = acquire(p);  // all four in use
  EXPECT_FALSE(*late);
  FakeClock::advance(6s);
  p->maintain();
  settle();
  ASSERT_TRUE(*late && (*late)->error);
  EXPECT_EQ((*late)->error->code, ErrorCode::pool_timeout) << (*late)->error->message;
}

// A crash breaks every connection at once, and every waiter's reconnect fails within a
// millisecond: one outage, so one step of backoff. Doubling per failure made the pool wait 2 s
// before its first retry, longer than the backend's restart.
TEST_F(PoolTest, ConnectsFailingTogetherBackOffOnce) {
  auto p = make(4);
  p->start();
  backend_->prompt_connects = 0;
  std::vector<std::shared_ptr<std::optional<pool::BasicAcquireResult<FakeClock>>>> w;
  for (int i = 0; i < 4; ++i) w.push_back(acquire(p));
  EXPECT_EQ(p->stats().connecting, 4);
  backend_->fail_connect = true;
  backend_->prompt_connects = -1;
  for (auto& t : backend_->held) t->cancel();
  settle();
  for (auto& r : w) ASSERT_TRUE(*r && (*r)->error && (*r)->error->code == ErrorCode::backend_unavailable);
  const auto attempts = p->connect_attempts();
  auto again = acquire(p);
  EXPECT_EQ(p->connect_attempts(), attempts) << "retried inside the backoff";
  FakeClock::advance(300ms);
  p->maintain();
  settle();
  EXPECT_EQ(p->connect_attempts(), attempts + 1) << "four failures together backed off more than once";
  ASSERT_TRUE(*again && (*again)->error);
  // Failures one after another still double: 250 ms, then 500.
  FakeClock::advance(300ms);
  auto third = acquire(p);
  p->maintain();
  settle();
  EXPECT_EQ(p->connect_attempts(), attempts + 1);
  FakeClock::advance(250ms);
  p->maintain();
  settle();
  EXPECT_EQ(p->connect_attempts(), attempts + 2);
}

TEST_F(PoolTest, OneProbeAtATimeWhileTheBackendIsDown) {
  backend_->fail_connect = true;
  auto p = make(8);
  p->start();
  auto first = acquire(p);  // fails, marks the backend down
  FakeClock::advance(300ms);
  std::vector<decltype(first)> waiting;
  backend_->fail_connect = false;
  for (int i = 0; i < 5; ++i) waiting.push_back(acquire(p));
  // Only one connect may be in flight while the bind is down (no thundering herd).
  EXPECT_LE(p->stats().connecting, 1);
}

TEST_F(PoolTest, IdleTimeoutClosesAboveMinOnly) {
  auto p = make(4, 1);
  p->start();
  settle();
  auto a = acquire(p);
  auto b = acquire(p);
  (*a)->lease.release();
  (*b)->lease.release();
  EXPECT_EQ(p->stats().idle, 2);
  FakeClock::advance(61s);
  p->maintain();
  settle();
  EXPECT_EQ(p->stats().idle, 1) << "min stays open";
  EXPECT_EQ(backend_->closed, 1);
}

TEST_F(PoolTest, MaxLifetimeRetiresIdleAndReturningConnections) {
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  auto b = acquire(p);
  (*b)->lease.release();
  FakeClock::advance(3601s);
  p->maintain();
  settle();
  EXPECT_EQ(p->stats().idle, 0);
  (*a)->lease.release();  // too old to keep
  settle();
  EXPECT_EQ(backend_->closed, 2);
  EXPECT_EQ(backend_->live, 0);
}

TEST_F(PoolTest, PinnedConnectionsAreCountedAndRolledBackWhenReturned) {
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  (*a)->lease.slot().tx = TxStatus::in_tx;
  (*a)->lease.set_pinned(true);
  EXPECT_EQ(p->stats().pinned, 1);
  EXPECT_EQ(p->stats().in_use, 1);
  (*a)->lease.release();  // the client went away inside its transaction
  settle();
  ASSERT_FALSE(backend_->statements.empty());
  EXPECT_EQ(backend_->statements.back(), "ROLLBACK");
  auto s = p->stats();
  EXPECT_EQ(s.pinned, 0);
  EXPECT_EQ(s.resetting, 0);
  EXPECT_EQ(s.idle, 1) << "rolled back, then reusable";
}

TEST_F(PoolTest, SlotsListEveryConnectionWithStateHolderAndTimes) {
  auto p = make(3);
  p->start();
  EXPECT_TRUE(p->slots().empty());
  auto a = acquire(p);
  auto b = acquire(p);
  (*a)->lease.slot().holder = 7;
  (*b)->lease.slot().holder = 9;
  (*b)->lease.slot().tx = TxStatus::in_tx;
  (*b)->lease.set_pinned(true);
  FakeClock::advance(1500ms);
  auto find = [&](pool::SlotState st) {
    for (const auto& s : p->slots())
      if (s.state == st) return std::optional<pool::SlotInfo>(s);
    return std::optional<pool::SlotInfo>();
  };
  auto slots = p->slots();
  ASSERT_EQ(slots.size(), 2u);
  auto in_use = find(pool::SlotState::in_use);
  auto pinned = find(pool::SlotState::pinned);
  ASSERT_TRUE(in_use && pinned);
  EXPECT_EQ(in_use->holder, 7u);
  EXPECT_EQ(pinned->holder, 9u);
  EXPECT_EQ(in_use->age_ms, 1500);
  EXPECT_EQ(pinned->in_state_ms, 1500);
  EXPECT_EQ(pinned->backend_pid, 0) << "the fake backend has no pid";
  // Returned: idle, nobody's, and its time in state starts over.
  (*a)->lease.release();
  FakeClock::advance(200ms);
  auto idle = find(pool::SlotState::idle);
  ASSERT_TRUE(idle);
  EXPECT_EQ(idle->holder, 0u);
  EXPECT_EQ(idle->in_state_ms, 200);
  EXPECT_EQ(idle->age_ms, 1700);
  // A connect under way is listed too, before it has a connection.
  auto warming = make(2, 1);
  warming->start();
  auto w = warming->slots();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].state, pool::SlotState::connecting);
  EXPECT_EQ(pool::slot_state_name(w[0].state), "connecting");
  settle();
  ASSERT_EQ(warming->slots().size(), 1u);
  EXPECT_EQ(warming->slots()[0].state, pool::SlotState::idle);
  // A connection closed leaves the list.
  p->drain();
  (*b)->lease.release();  // rolled back, then closed by the drain
  settle();
  EXPECT_TRUE(p->slots().empty()) << "drained: every connection closed and unlisted";
  EXPECT_EQ(backend_->live, static_cast<int>(warming->slots().size()));
}

TEST_F(PoolTest, AFailedRollbackWritesTheConnectionOff) {
  backend_->rollback_fails = true;
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  (*a)->lease.slot().tx = TxStatus::failed_tx;
  (*a)->lease.release();
  settle();
  EXPECT_EQ(p->stats().idle, 0);
  EXPECT_EQ(backend_->closed, 1);
  EXPECT_EQ(p->stats().closed_broken, 1u);
}

TEST_F(PoolTest, BrokenConnectionsAreClosedAndMinRestored) {
  auto p = make(3, 1);
  p->start();
  settle();
  auto a = acquire(p);
  (*a)->lease.mark_broken();
  (*a)->lease.release();
  settle();
  EXPECT_EQ(backend_->closed, 1);
  EXPECT_EQ(p->stats().closed_broken, 1u);
  EXPECT_EQ(p->stats().idle, 1) << "a fresh connection replaces it to keep min";
  EXPECT_EQ(backend_->opened, 2);
}

TEST_F(PoolTest, UnreadResultsOrHeldMemoryCloseAConnectionOnRelease) {
  auto p = make(2);
  auto a = acquire(p);
  static_cast<FakeConnection&>((*a)->lease.conn()).bloated = true;
  (*a)->lease.release();
  settle();
  EXPECT_EQ(backend_->closed, 1) << "a connection holding a huge buffer was kept idle";
  auto b = acquire(p);
  backend::Statement st{"SELECT 1", {}};
  (*b)->lease.conn().send(st);  // sent, never received: its answer would reach the next holder
  (*b)->lease.release();
  settle();
  EXPECT_EQ(backend_->closed, 2);
  EXPECT_EQ(p->stats().idle, 0);
}

TEST_F(PoolTest, AnIdleConnectionTheBackendClosedIsNotLeased) {
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  auto* fake = static_cast<FakeConnection*>(&(*a)->lease.conn());
  const int old_id = fake->id;
  (*a)->lease.release();
  fake->alive = false;
  FakeClock::advance(2s);
  auto b = acquire(p);
  settle();
  ASSERT_TRUE(*b);
  ASSERT_TRUE((*b)->lease);
  EXPECT_NE(static_cast<FakeConnection&>((*b)->lease.conn()).id, old_id);
  EXPECT_EQ(backend_->opened, 2);
  EXPECT_EQ(p->stats().closed_broken, 1u);
}

// Reachability recovers from a background probe, not from the next request.
TEST_F(PoolTest, ADownBindIsProbedWithoutRequestsAndComesBackUp) {
  backend_->fail_connect = true;
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  ASSERT_TRUE((*a)->error);
  EXPECT_TRUE(p->stats().backend_down);
  const auto attempts = p->connect_attempts();
  FakeClock::advance(3s);  // past the backoff and a health interval; nobody waits
  p->maintain();
  settle();
  EXPECT_EQ(p->connect_attempts(), attempts + 1) << "no probe while nobody asked";
  EXPECT_TRUE(p->stats().backend_down);
  backend_->fail_connect = false;
  FakeClock::advance(6s);
  p->maintain();
  settle();
  EXPECT_FALSE(p->stats().backend_down) << "the backend returned but the pool still says down";
  EXPECT_EQ(p->stats().idle, 1);  // the probe's connection serves the next request
}

// A backend that closed every idle connection (restart, crash) is noticed without a request.
TEST_F(PoolTest, IdleConnectionsTheBackendClosedAreFoundAndTheBackendProbed) {
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  auto* fake = static_cast<FakeConnection*>(&(*a)->lease.conn());
  (*a)->lease.release();
  settle();
  fake->alive = false;
  backend_->fail_connect = true;  // and it is not back yet
  FakeClock::advance(3s);
  p->maintain();
  settle();
  EXPECT_EQ(p->stats().closed_broken, 1u);
  EXPECT_EQ(p->stats().idle, 0);
  EXPECT_TRUE(p->stats().backend_down) << "all connections dead and no connect works: down";
}

// A backend that stops answering closes nothing: only a round trip finds it. The longest-idle
// connection is pinged; one that answers goes back as it was (the ping is no use: idle_timeout
// still counts), one that does not is closed and the bind reported down until a probe connects.
TEST_F(PoolTest, AnIdleConnectionIsPingedAndOneThatDoesNotAnswerMarksTheBindDown) {
  auto p = make(2, 1);
  p->start();
  settle();
  auto a = acquire(p);
  auto* fake = static_cast<FakeConnection*>(&(*a)->lease.conn());
  (*a)->lease.release();
  settle();
  FakeClock::advance(3s);  // idle, but not long enough for a ping
  p->maintain();
  settle();
  EXPECT_EQ(backend_->pings, 0);
  FakeClock::advance(3s);
  p->maintain();
  settle();
  EXPECT_EQ(backend_->pings, 1);
  EXPECT_FALSE(p->stats().backend_down);
  EXPECT_EQ(p->stats().idle, 1);
  EXPECT_EQ(p->stats().resetting, 0);
  fake->answers = false;
  backend_->fail_connect = true;  // and nothing new connects either
  FakeClock::advance(3s);
  p->maintain();
  settle();
  EXPECT_EQ(backend_->pings, 2);
  EXPECT_TRUE(p->stats().backend_down) << "a connection that no longer answers, yet the bind shows ok";
  EXPECT_EQ(p->stats().closed_broken, 1u);
  EXPECT_EQ(p->stats().idle, 0);
  backend_->fail_connect = false;
  FakeClock::advance(6s);
  p->maintain();
  settle();
  EXPECT_FALSE(p->stats().backend_down) << "the probe connected but the pool still says down";
}

TEST_F(PoolTest, APingDoesNotKeepAConnectionFromItsIdleTimeout) {
  auto p = make(2, 0);
  p->start();
  auto a = acquire(p);
  (*a)->lease.release();
  settle();
  for (int i = 0; i < 31; ++i) {  // 62 s of ticks, pinged along the way
    FakeClock::advance(2s);
    p->maintain();
    settle();
  }
  EXPECT_GT(backend_->pings, 0);
  EXPECT_EQ(p->stats().idle, 0) << "idle 62 s with idle_timeout 60 s, kept open by its pings";
}

TEST_F(PoolTest, PauseHoldsRequestsPastAcquireTimeoutUntilResume) {
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  (*a)->lease.release();
  p->pause();
  auto b = acquire(p);
  EXPECT_FALSE(*b);
  for (int i = 0; i < 10; ++i) {  // 10 minutes, far past acquire_timeout (5 s)
    FakeClock::advance(60s);
    p->maintain();
    settle();
  }
  EXPECT_FALSE(*b) << "a paused pool holds its waiters; it does not fail them";
  EXPECT_EQ(p->stats().waiting, 1);
  EXPECT_EQ(p->stats().acquire_timeouts, 0u);
  auto c = acquire(p);
  EXPECT_FALSE(*c);
  p->resume();
  settle();
  ASSERT_TRUE(*b);
  EXPECT_TRUE((*b)->lease);
  ASSERT_TRUE(*c);
  EXPECT_TRUE((*c)->lease);
}

TEST_F(PoolTest, ResumeStartsAcquireTimeoutOver) {
  auto p = make(1);
  p->start();
  auto a = acquire(p);  // holds the only connection
  ASSERT_TRUE((*a)->lease);
  p->pause();
  auto b = acquire(p);
  FakeClock::advance(30s);
  p->maintain();
  p->resume();
  FakeClock::advance(4900ms);
  p->maintain();
  settle();
  EXPECT_FALSE(*b) << "the time paused does not count against acquire_timeout";
  FakeClock::advance(200ms);
  p->maintain();
  settle();
  ASSERT_TRUE(*b);
  ASSERT_TRUE((*b)->error);
  EXPECT_EQ((*b)->error->code, ErrorCode::pool_timeout);
}

TEST_F(PoolTest, RequestTimeoutStillEndsAPausedWait) {
  auto p = make(2);
  p->start();
  p->pause();
  auto b = acquire(p, 2s);
  auto c = acquire(p);  // no timeout of its own: waits on
  FakeClock::advance(1900ms);
  p->maintain();
  settle();
  EXPECT_FALSE(*b);
  FakeClock::advance(200ms);
  p->maintain();
  settle();
  ASSERT_TRUE(*b);
  ASSERT_TRUE((*b)->error);
  EXPECT_EQ((*b)->error->code, ErrorCode::timeout);
  EXPECT_NE((*b)->error->message.find("paused"), std::string::npos);
  EXPECT_FALSE(*c);
  EXPECT_EQ(p->stats().waiting, 1);
}

TEST_F(PoolTest, CancellerEndsAWaitAndAnEarlierCancelPreventsOne) {
  auto p = make(2);
  p->start();
  p->pause();
  auto cancel = std::make_shared<pool::AcquireCanceller>();
  auto b = acquire(p, std::nullopt, cancel);
  EXPECT_FALSE(*b);
  cancel->cancel();
  settle();
  ASSERT_TRUE(*b);
  ASSERT_TRUE((*b)->error);
  EXPECT_EQ((*b)->error->code, ErrorCode::cancelled);
  EXPECT_EQ(p->stats().waiting, 0);
  auto c = acquire(p, std::nullopt, cancel);  // already cancelled
  ASSERT_TRUE(*c);
  EXPECT_EQ((*c)->error->code, ErrorCode::cancelled);
  p->resume();
  settle();
  auto d = acquire(p, std::nullopt, std::make_shared<pool::AcquireCanceller>());
  ASSERT_TRUE(*d);
  EXPECT_TRUE((*d)->lease) << "a canceller that is never used changes nothing";
}

TEST_F(PoolTest, DrainClosesIdleAndConnectionsAsTheyReturn) {
  auto p = make(3);
  p->start();
  auto a = acquire(p);
  auto b = acquire(p);
  (*b)->lease.release();
  p->drain();
  settle();
  EXPECT_EQ(p->stats().idle, 0);
  EXPECT_TRUE(p->stats().draining);
  (*a)->lease.release();
  settle();
  EXPECT_EQ(backend_->live, 0);
}

TEST_F(PoolTest, ReconnectReplacesEveryConnection) {
  auto p = make(3, 1);
  p->start();
  settle();
  auto a = acquire(p);
  const int old_id = static_cast<FakeConnection&>((*a)->lease.conn()).id;
  auto b = acquire(p);
  (*b)->lease.release();
  p->reconnect();
  settle();
  (*a)->lease.release();  // an old generation: closed on return
  settle();
  auto c = acquire(p);
  ASSERT_TRUE((*c)->lease);
  EXPECT_NE(static_cast<FakeConnection&>((*c)->lease.conn()).id, old_id);
  EXPECT_EQ(backend_->closed, 2);
}

TEST_F(PoolTest, RetireKeepsNothingIdle) {
  auto p = make(2);
  p->start();
  auto a = acquire(p);
  p->retire();
  (*a)->lease.release();
  settle();
  EXPECT_EQ(p->stats().idle, 0);
  EXPECT_EQ(backend_->live, 0);
}

TEST_F(PoolTest, StopFailsWaitersAndClosesIdle) {
  auto p = make(1);
  p->start();
  auto a = acquire(p);
  auto b = acquire(p);
  p->stop();
  settle();
  ASSERT_TRUE(*b);
  EXPECT_EQ((*b)->error->code, ErrorCode::shutting_down);
  (*a)->lease.release();
  settle();
  EXPECT_EQ(backend_->live, 0);
  auto c = acquire(p);
  EXPECT_EQ((*c)->error->code, ErrorCode::shutting_down);
}

TEST_F(PoolTest, ABudgetSharedByTwoPoolsBoundsTheirSum) {
  auto budget = std::make_shared<pool::LocalBudget>(3);
  auto p1 = make(3, 0, budget);
  auto p2 = make(3, 0, budget);
  p1->start();
  p2->start();
  auto a = acquire(p1);
  auto b = acquire(p1);
  auto c = acquire(p2);
  auto d = acquire(p2);  // the budget is spent: waits
  EXPECT_TRUE((*a)->lease && (*b)->lease && (*c)->lease);
  EXPECT_FALSE(*d);
  EXPECT_EQ(budget->used(), 3);
  (*a)->lease.mark_broken();
  (*a)->lease.release();  // frees budget once closed
  settle();
  p2->maintain();
  settle();
  ASSERT_TRUE(*d);
  EXPECT_TRUE((*d)->lease);
  EXPECT_EQ(budget->used(), 3);
}

}  // namespace
}  // namespace binds::test
