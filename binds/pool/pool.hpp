#pragma once
// A connection pool per bind. The pool does not know who asked: the engine acquires leases for
// any front end the same way. It owns no threads: connects, closes and the rollback of returned
// transactions run as coroutines on the pool's own strand; acquire() and release are called from
// any strand (a mutex guards the bookkeeping; nothing blocks while holding it).
//
// Every pooled connection is in exactly one state (each counted in PoolStats):
//   connecting – being opened; counts against max and the budget.
//   idle       – in idle_, ready to lease.
//   in_use     – leased for a request.
//   pinned     – leased and held by one client across requests: its backend is inside a
//                transaction. Never handed to anyone else until the lease ends.
//   resetting  – returned inside a transaction (client gone): being rolled back before reuse.
//   closing    – being closed (broken, expired, idle too long, drained, pool stopped).
// "broken" is not a resting state: a broken connection goes straight to closing.
//
// Generic over its clock (Boost.MySQL's basic_pool_impl<Conn, Clock> idea): every deadline is
// read from Clock::now() in maintain(), which the real pool runs on a timer and tests call after
// moving a fake clock, so every transition is unit-tested without a database or a real wait.

#include <utility>
#include <boost/asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "binds/backend/backend.hpp"
#include "binds/config.hpp"

namespace binds::pool {

namespace asio = boost::asio;
using backend::BackendError;
using backend::TxStatus;

// How many connections a bind may open now. Local today (the pool's max); later many bindsd
// instances will share one budget per backend, so the pool asks instead of counting itself.
class Budget {
 public:
  virtual ~Budget() = default;
  // Reserves room for one more connection; false = at the limit now.
  virtual bool try_acquire() = 0;
  // Gives back a reservation (the connection closed, or its connect failed).
  virtual void release() = 0;
};

class LocalBudget final : public Budget {
 public:
  explicit LocalBudget(int max) : max_(max) {}
  bool try_acquire() override {
    std::lock_guard lock(mu_);
    if (used_ >= max_) return false;
    ++used_;
    return true;
  }
  void release() override {
    std::lock_guard lock(mu_);
    if (used_ > 0) --used_;
  }
  int used() {
    std::lock_guard lock(mu_);
    return used_;
  }

 private:
  std::mutex mu_;
  int max_;
  int used_ = 0;
};

enum class SlotState { connecting, idle, in_use, pinned, resetting, closing };

template <class Clock>
struct BasicSlot {
  std::unique_ptr<backend::Connection> conn;
  typename Clock::time_point created{};
  typename Clock::time_point last_used{};
  std::uint64_t last_client = 0;  // who used it last: session state is reset when this changes
  bool dirty = false;             // a statement may have left session state behind
  TxStatus tx = TxStatus::idle;   // as of the last statement (the engine keeps it current)
  std::uint64_t generation = 0;   // reconnect() retires every connection of older generations
  SlotState state = SlotState::connecting;
  typename Clock::time_point state_since{};  // for admin views
  // The client whose request holds it now (0 = none); set by the engine, read by admin views.
  std::atomic<std::uint64_t> holder{0};
};

// One backend connection as `binds servers` shows it.
struct SlotInfo {
  SlotState state = SlotState::connecting;
  std::uint64_t holder = 0;         // client id, 0 = none
  std::int64_t backend_pid = 0;     // 0 = none (SQLite) or not connected yet
  std::int64_t age_ms = 0;
  std::int64_t in_state_ms = 0;
};

inline std::string_view slot_state_name(SlotState s);

struct PoolStats {
  int open = 0;  // everything that counts against max: connecting + idle + in use + resetting
  int connecting = 0;
  int idle = 0;
  int in_use = 0;  // incl. pinned
  int pinned = 0;
  int resetting = 0;
  int closing = 0;
  int waiting = 0;
  std::uint64_t connects = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t acquire_timeouts = 0;
  std::uint64_t closed_broken = 0;
  bool backend_down = false;
  bool paused = false;
  bool draining = false;
  bool retired = false;
  std::int64_t longest_wait_ms = 0;  // the oldest request still waiting for a connection
};

template <class Clock>
class BasicPool;

// Lets whoever waits in acquire() give up early (a CANCEL, a client that left or was killed): a
// request held by a paused pool must not keep its client open until resume. Any thread.
class AcquireCanceller {
 public:
  // The acquire (waiting now or later) returns ErrorCode::cancelled instead of waiting on.
  void cancel() {
    std::function<void()> f;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      f = std::move(fn_);
    }
    if (f) f();
  }
  bool cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  // The pool's side: what cancel() does while a wait is on; false if already cancelled.
  bool arm(std::function<void()> f) {
    std::lock_guard lock(mu_);
    if (cancelled_) return false;
    fn_ = std::move(f);
    return true;
  }
  void disarm() {
    std::lock_guard lock(mu_);
    fn_ = nullptr;
  }

 private:
  std::mutex mu_;
  bool cancelled_ = false;
  std::function<void()> fn_;
};

// Exclusive use of one backend connection. Destroying a lease returns the connection to its pool:
// rolled back first if it is still inside a transaction, closed if it broke.
template <class Clock>
class BasicLease {
 public:
  using Slot = BasicSlot<Clock>;
  BasicLease() = default;
  BasicLease(std::shared_ptr<BasicPool<Clock>> pool, std::unique_ptr<Slot> slot)
      : pool_(std::move(pool)), slot_(std::move(slot)) {}
  BasicLease(BasicLease&& o) noexcept = default;
  BasicLease& operator=(BasicLease&& o) noexcept {
    if (this != &o) {
      release();
      pool_ = std::move(o.pool_);
      slot_ = std::move(o.slot_);
      broken_ = o.broken_;
    }
    return *this;
  }
  ~BasicLease() { release(); }

  explicit operator bool() const { return slot_ != nullptr; }
  backend::Connection& conn() { return *slot_->conn; }
  Slot& slot() { return *slot_; }
  BasicPool<Clock>& pool() { return *pool_; }
  const std::shared_ptr<BasicPool<Clock>>& pool_ptr() const { return pool_; }

  // The connection can no longer be trusted: close it instead of reusing it.
  void mark_broken() { broken_ = true; }
  bool broken() const { return broken_; }
  // Pinned leases hold a transaction: counted apart, and never validated or replaced.
  void set_pinned(bool pinned);
  bool pinned() const { return slot_ && slot_->state == SlotState::pinned; }

  // Gives the connection back now (same as destroying the lease).
  void release();

 private:
  std::shared_ptr<BasicPool<Clock>> pool_;
  std::unique_ptr<Slot> slot_;
  bool broken_ = false;
};

template <class Clock>
struct BasicAcquireResult {
  BasicLease<Clock> lease;
  std::optional<BackendError> error;  // pool_timeout, backend_unavailable or shutting_down
};

// Opens one connection on the given executor.
using Factory = std::function<asio::awaitable<backend::ConnectResult>(asio::any_io_executor)>;

template <class Clock>
class BasicPool : public std::enable_shared_from_this<BasicPool<Clock>> {
 public:
  using Slot = BasicSlot<Clock>;
  using Lease = BasicLease<Clock>;
  using AcquireResult = BasicAcquireResult<Clock>;
  using time_point = typename Clock::time_point;

  // ex: where connects, closes and rollbacks run (the pool makes a strand of it).
  // tick: how often the real pool runs maintain(); zero = never (tests call maintain()).
  BasicPool(asio::any_io_executor ex, BindConfig config, Factory factory, std::shared_ptr<Budget> budget,
            std::chrono::milliseconds tick = std::chrono::milliseconds(50));
  ~BasicPool();
  BasicPool(const BasicPool&) = delete;
  BasicPool& operator=(const BasicPool&) = delete;

  void start();  // opens `min` connections and starts maintenance
  void stop();   // fails waiters, closes idle connections; leases still out close when they return

  // Admin controls (any thread).
  // Hand out nothing: requests wait (acquire_timeout does not run out while paused, as PgBouncer's
  // PAUSE holds them); resume undoes it and gives each waiter a fresh acquire_timeout.
  void pause();
  void resume();
  void drain();      // pause, and close every connection as soon as it is idle
  void reconnect();  // replace every connection: idle ones now, busy ones when they return
  void retire();     // the pool left the routing table (reload): serve what holds it, keep nothing

  bool paused() {
    std::lock_guard lock(mu_);
    return paused_;
  }
  const BindConfig& config() const { return config_; }
  const std::string& key() const { return config_.key; }

  // Waits up to acquire_timeout for a connection (while paused: until resume). Returns at once
  // (no suspension) when one is idle. paused_limit bounds a wait that the pool's pause prolongs
  // (the request's own timeout; ErrorCode::timeout); canceller ends the wait early
  // (ErrorCode::cancelled). Any strand.
  asio::awaitable<AcquireResult> acquire(std::optional<typename Clock::duration> paused_limit = std::nullopt,
                                         std::shared_ptr<AcquireCanceller> canceller = nullptr);

  // Deadlines: waiters past acquire_timeout, idle connections past idle_timeout or max_lifetime,
  // reconnect backoff, connections below min. Runs on the tick; tests call it.
  void maintain();

  PoolStats stats();
  // Every connection of the pool now, connects under way included. Any thread.
  std::vector<SlotInfo> slots();

  // For tests: connects begun (including failed ones).
  std::uint64_t connect_attempts() {
    std::lock_guard lock(mu_);
    return connect_attempts_;
  }

 private:
  friend class BasicLease<Clock>;
  struct Waiter;

  void release(std::unique_ptr<Slot> slot, bool broken);
  void cancel_waiter(const std::shared_ptr<Waiter>& w);
  void set_pinned(Slot& slot, bool pinned);
  void maybe_connect_locked();
  asio::awaitable<void> connect_one(std::uint64_t failures_at_start);
  void connect_done(std::unique_ptr<backend::Connection> conn, BackendError err, std::uint64_t failures_at_start);
  void grant_locked(std::unique_ptr<Slot> slot);
  void enter_locked(Slot& slot, SlotState state) {
    slot.state = state;
    slot.state_since = Clock::now();
  }
  void close_slot(std::unique_ptr<Slot> slot);  // lock NOT held
  asio::awaitable<void> rollback_then_release(std::unique_ptr<Slot> slot);
  asio::awaitable<void> ping_then_return(std::unique_ptr<Slot> slot);
  bool expired(const Slot& s, time_point now) const { return now - s.created >= config_.pool.max_lifetime; }
  void schedule_tick();
  BackendError unavailable_error() const;

  using Strand = asio::strand<asio::any_io_executor>;
  Strand strand_;
  const BindConfig config_;
  Factory factory_;
  std::shared_ptr<Budget> budget_;
  std::chrono::milliseconds tick_;
  std::unique_ptr<asio::steady_timer> timer_;

  std::mutex mu_;
  std::deque<std::unique_ptr<Slot>> idle_;  // back = most recently used
  std::deque<std::shared_ptr<Waiter>> waiters_;
  std::set<const Slot*> all_;  // every connected slot, wherever it is (idle_, a lease, closing)
  int connecting_ = 0, in_use_ = 0, pinned_ = 0, resetting_ = 0, closing_ = 0;
  bool stopped_ = false, paused_ = false, draining_ = false, retired_ = false;
  std::uint64_t generation_ = 0;
  bool backend_down_ = false;
  bool pinging_ = false;  // a health-check ping is out (one at a time)
  BackendError last_error_;
  time_point next_connect_{};
  time_point next_health_{};
  std::chrono::milliseconds backoff_{0};
  std::uint64_t connects_ = 0, connect_failures_ = 0, acquire_timeouts_ = 0, closed_broken_ = 0;
  std::uint64_t connect_attempts_ = 0;
};

using Pool = BasicPool<std::chrono::steady_clock>;
using Lease = BasicLease<std::chrono::steady_clock>;
using AcquireResult = BasicAcquireResult<std::chrono::steady_clock>;

}  // namespace binds::pool

#include "binds/pool/pool_impl.hpp"
