#pragma once
// BasicPool's implementation (a template: instantiated for the steady clock and for tests' fake
// clocks). Included by pool.hpp only.

#include <algorithm>
#include <string>

namespace binds::pool {

namespace detail {
inline constexpr std::chrono::milliseconds kBackoffFirst{250};
inline constexpr std::chrono::milliseconds kBackoffMax{5000};
// An idle connection unused for longer than this is checked (without a round trip) before it is
// leased: a backend that closed it meanwhile left an EOF or a FATAL message on the socket.
inline constexpr std::chrono::milliseconds kCheckAfterIdle{1000};
// How often maintain() checks idle connections and probes a bind that is down.
inline constexpr std::chrono::milliseconds kHealthInterval{2000};
// A returned transaction gets this long to roll back before its connection is written off.
inline constexpr std::chrono::milliseconds kRollbackDeadline{5000};
// An idle connection unused this long is pinged (one round trip, at most one per bind and health
// interval): a backend that stopped answering (frozen, a dead network path) shows no EOF, so only
// a round trip tells. No answer within kPingDeadline marks the bind down.
inline constexpr std::chrono::milliseconds kPingAfterIdle{5000};
inline constexpr std::chrono::milliseconds kPingDeadline{3000};

inline BackendError make_error(protocol::ErrorCode code, std::string message) {
  BackendError e;
  e.code = code;
  e.message = std::move(message);
  return e;
}
}  // namespace detail

template <class Clock>
struct BasicPool<Clock>::Waiter : std::enable_shared_from_this<BasicPool<Clock>::Waiter> {
  explicit Waiter(asio::any_io_executor ex) : signal(std::move(ex)) {}
  // Only a wake-up signal: it never expires by itself (deadlines are Clock's, in maintain()).
  asio::steady_timer signal;
  std::unique_ptr<Slot> granted;
  std::optional<BackendError> failed;
  bool done = false;
  time_point since{};
  time_point deadline{};
  // The bind was down at some point of this wait: running out of time then is the backend's doing,
  // not a pool too small for its load, and the error must say so (BACKEND_UNAVAILABLE, not
  // POOL_TIMEOUT), even when the backend came back and its first connections are still opening.
  bool saw_outage = false;
  std::optional<time_point> paused_limit;  // the request's own timeout, applied while paused

  // Lock held. Wakes the waiting coroutine on its own executor (timers are not thread-safe); the
  // waiter runs on a strand, so this cannot overtake its async_wait.
  void wake() {
    done = true;
    asio::post(signal.get_executor(), [self = this->shared_from_this()] { self->signal.cancel(); });
  }
};

// ---- Lease ----

template <class Clock>
void BasicLease<Clock>::set_pinned(bool pinned) {
  if (slot_) pool_->set_pinned(*slot_, pinned);
}

template <class Clock>
void BasicLease<Clock>::release() {
  if (!slot_) return;
  auto pool = std::move(pool_);
  pool->release(std::move(slot_), broken_);
  broken_ = false;
}

// ---- Pool ----

template <class Clock>
BasicPool<Clock>::BasicPool(asio::any_io_executor ex, BindConfig config, Factory factory,
                            std::shared_ptr<Budget> budget, std::chrono::milliseconds tick)
    : strand_(asio::make_strand(ex)),
      config_(std::move(config)),
      factory_(std::move(factory)),
      budget_(budget ? std::move(budget) : std::make_shared<LocalBudget>(config_.pool.max)),
      tick_(tick) {}

template <class Clock>
BasicPool<Clock>::~BasicPool() = default;

template <class Clock>
void BasicPool<Clock>::start() {
  {
    std::lock_guard lock(mu_);
    maybe_connect_locked();
  }
  if (tick_.count() > 0) {
    timer_ = std::make_unique<asio::steady_timer>(strand_);
    schedule_tick();
  }
}

template <class Clock>
void BasicPool<Clock>::schedule_tick() {
  // Faster while someone waits (their deadlines), slow otherwise: an idle daemon stays quiet.
  std::chrono::milliseconds next;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    next = waiters_.empty() ? tick_ * 5 : tick_;
  }
  timer_->expires_after(next);
  timer_->async_wait([weak = this->weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    self->maintain();
    self->schedule_tick();
  });
}

template <class Clock>
void BasicPool<Clock>::stop() {
  std::deque<std::unique_ptr<Slot>> idle;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    idle.swap(idle_);
    for (auto& w : waiters_) {
      w->failed = detail::make_error(protocol::ErrorCode::shutting_down, "bind " + config_.key + " is shutting down");
      w->wake();
    }
    waiters_.clear();
  }
  if (timer_) asio::post(strand_, [self = this->shared_from_this()] { self->timer_->cancel(); });
  for (auto& s : idle) close_slot(std::move(s));
}

template <class Clock>
void BasicPool<Clock>::pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
}

template <class Clock>
void BasicPool<Clock>::resume() {
  std::lock_guard lock(mu_);
  paused_ = false;
  draining_ = false;
  // They waited for the administrator, not for a connection: acquire_timeout starts over.
  const auto now = Clock::now();
  for (auto& w : waiters_) w->deadline = std::max(w->deadline, now + config_.pool.acquire_timeout);
  while (!waiters_.empty() && !idle_.empty()) {
    auto s = std::move(idle_.back());
    idle_.pop_back();
    grant_locked(std::move(s));
  }
  maybe_connect_locked();
}

template <class Clock>
void BasicPool<Clock>::drain() {
  std::deque<std::unique_ptr<Slot>> idle;
  {
    std::lock_guard lock(mu_);
    paused_ = true;
    draining_ = true;
    idle.swap(idle_);
  }
  for (auto& s : idle) close_slot(std::move(s));
}

template <class Clock>
void BasicPool<Clock>::reconnect() {
  std::deque<std::unique_ptr<Slot>> idle;
  {
    std::lock_guard lock(mu_);
    ++generation_;
    idle.swap(idle_);
  }
  for (auto& s : idle) close_slot(std::move(s));
  std::lock_guard lock(mu_);
  maybe_connect_locked();  // back up to min with fresh connections
}

template <class Clock>
void BasicPool<Clock>::retire() {
  std::deque<std::unique_ptr<Slot>> idle;
  {
    std::lock_guard lock(mu_);
    retired_ = true;
    idle.swap(idle_);
  }
  for (auto& s : idle) close_slot(std::move(s));
}

template <class Clock>
PoolStats BasicPool<Clock>::stats() {
  std::lock_guard lock(mu_);
  PoolStats s;
  s.connecting = connecting_;
  s.idle = static_cast<int>(idle_.size());
  s.in_use = in_use_;
  s.pinned = pinned_;
  s.resetting = resetting_;
  s.closing = closing_;
  s.open = connecting_ + s.idle + in_use_ + resetting_;
  s.waiting = static_cast<int>(waiters_.size());
  s.connects = connects_;
  s.connect_failures = connect_failures_;
  s.acquire_timeouts = acquire_timeouts_;
  s.closed_broken = closed_broken_;
  s.backend_down = backend_down_;
  s.paused = paused_;
  s.draining = draining_;
  s.retired = retired_;
  if (!waiters_.empty())
    s.longest_wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - waiters_.front()->since).count();
  return s;
}

inline std::string_view slot_state_name(SlotState s) {
  switch (s) {
    case SlotState::connecting: return "connecting";
    case SlotState::idle: return "idle";
    case SlotState::in_use: return "in use";
    case SlotState::pinned: return "pinned";
    case SlotState::resetting: return "resetting";
    case SlotState::closing: return "closing";
  }
  return "?";
}

template <class Clock>
std::vector<SlotInfo> BasicPool<Clock>::slots() {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::vector<SlotInfo> out;
  for (const Slot* s : all_) {
    SlotInfo i;
    i.state = s->state;
    i.holder = (s->state == SlotState::in_use || s->state == SlotState::pinned) ? s->holder.load() : 0;
    i.backend_pid = s->conn ? s->conn->backend_pid() : 0;
    i.age_ms = ms(now - s->created);
    i.in_state_ms = ms(now - s->state_since);
    out.push_back(i);
  }
  for (int n = 0; n < connecting_; ++n) out.push_back(SlotInfo{});
  return out;
}

template <class Clock>
BackendError BasicPool<Clock>::unavailable_error() const {
  return detail::make_error(protocol::ErrorCode::backend_unavailable,
                            "bind " + config_.key + ": backend unavailable: " + last_error_.message);
}

template <class Clock>
asio::awaitable<typename BasicPool<Clock>::AcquireResult> BasicPool<Clock>::acquire(
    std::optional<typename Clock::duration> paused_limit, std::shared_ptr<AcquireCanceller> canceller) {
  const auto ex = co_await asio::this_coro::executor;
  for (;;) {
    std::unique_ptr<Slot> slot;
    std::shared_ptr<Waiter> waiter;
    std::vector<std::unique_ptr<Slot>> stale;  // not a deque: an empty one allocates two blocks
    {
      std::lock_guard lock(mu_);
      if (stopped_) {
        co_return AcquireResult{
            {}, detail::make_error(protocol::ErrorCode::shutting_down, "bind " + config_.key + " is shutting down")};
      }
      const auto now = Clock::now();
      while (!paused_ && !idle_.empty()) {
        auto s = std::move(idle_.back());
        idle_.pop_back();
        if (expired(*s, now) || s->generation != generation_) {
          stale.push_back(std::move(s));
          continue;
        }
        slot = std::move(s);
        enter_locked(*slot, SlotState::in_use);
        ++in_use_;
        break;
      }
      if (!slot) {
        waiter = std::make_shared<Waiter>(ex);
        waiter->since = now;
        waiter->deadline = now + config_.pool.acquire_timeout;
        waiter->saw_outage = backend_down_;
        if (paused_limit) waiter->paused_limit = now + *paused_limit;
        waiter->signal.expires_at(asio::steady_timer::time_point::max());
        waiters_.push_back(waiter);
        maybe_connect_locked();
      }
    }
    for (auto& s : stale) close_slot(std::move(s));
    if (waiter) {
      if (canceller && !canceller->arm([weak = this->weak_from_this(), w = std::weak_ptr<Waiter>(waiter)] {
            auto self = weak.lock();
            auto waiter = w.lock();
            if (self && waiter) self->cancel_waiter(waiter);
          })) {
        cancel_waiter(waiter);
      }
      struct Disarm {
        AcquireCanceller* c;
        ~Disarm() {
          if (c) c->disarm();
        }
      } disarm{canceller.get()};
      boost::system::error_code ec;
      while (true) {
        {
          std::lock_guard lock(mu_);
          if (waiter->done) break;
        }
        co_await waiter->signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      std::lock_guard lock(mu_);
      if (waiter->failed) co_return AcquireResult{{}, std::move(waiter->failed)};
      slot = std::move(waiter->granted);  // grant_locked counted it in_use
    }
    // A connection that sat idle may have been closed by the backend meanwhile (restart,
    // pg_terminate_backend, its own idle timeout): find out without a round trip.
    if (Clock::now() - slot->last_used >= detail::kCheckAfterIdle && !slot->conn->looks_alive()) {
      {
        std::lock_guard lock(mu_);
        --in_use_;
        ++closed_broken_;
      }
      close_slot(std::move(slot));
      continue;
    }
    co_return AcquireResult{Lease(this->shared_from_this(), std::move(slot)), std::nullopt};
  }
}

template <class Clock>
void BasicPool<Clock>::cancel_waiter(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  if (w->done) return;
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w), waiters_.end());
  w->failed = detail::make_error(protocol::ErrorCode::cancelled,
                                 "bind " + config_.key + ": stopped while waiting for a connection");
  w->wake();
}

template <class Clock>
void BasicPool<Clock>::set_pinned(Slot& slot, bool pinned) {
  std::lock_guard lock(mu_);
  if (pinned && slot.state == SlotState::in_use) {
    enter_locked(slot, SlotState::pinned);
    ++pinned_;
  } else if (!pinned && slot.state == SlotState::pinned) {
    enter_locked(slot, SlotState::in_use);
    --pinned_;
  }
}

template <class Clock>
void BasicPool<Clock>::release(std::unique_ptr<Slot> slot, bool broken) {
  std::unique_ptr<Slot> to_close;
  {
    std::lock_guard lock(mu_);
    slot->holder = 0;
    if (slot->state == SlotState::pinned) --pinned_;
    if (slot->state == SlotState::pinned || slot->state == SlotState::in_use) --in_use_;
    const auto now = Clock::now();
    // Unread results (a pipeline its holder abandoned) would answer the next holder's statements.
    if (broken || slot->tx == TxStatus::unknown || slot->conn->outstanding() > 0 ||
        slot->conn->wants_replacement()) {
      ++closed_broken_;
      to_close = std::move(slot);
    } else if (slot->tx != TxStatus::idle) {
      // Never hand a connection inside a transaction to anyone: roll back first.
      enter_locked(*slot, SlotState::resetting);
      ++resetting_;
      asio::co_spawn(strand_, rollback_then_release(std::move(slot)), asio::detached);
      return;
    } else if (stopped_ || draining_ || expired(*slot, now) || slot->generation != generation_ ||
               (retired_ && waiters_.empty())) {
      to_close = std::move(slot);
    } else {
      slot->last_used = now;
      grant_locked(std::move(slot));
      return;
    }
  }
  close_slot(std::move(to_close));
}

template <class Clock>
asio::awaitable<void> BasicPool<Clock>::rollback_then_release(std::unique_ptr<Slot> slot) {
  auto self = this->shared_from_this();
  // A hung backend must not hold the connection forever: abort it after the deadline (on this
  // strand, where the receive runs).
  asio::steady_timer deadline(strand_, detail::kRollbackDeadline);
  auto* conn = slot->conn.get();
  // An expiry already queued when the rollback ends must not abort the connection once it is
  // back in the pool.
  auto done = std::make_shared<bool>(false);
  deadline.async_wait([conn, done](boost::system::error_code ec) {
    if (!ec && !*done) conn->abort();
  });
  backend::DiscardSink sink;
  const backend::Statement rollback{"ROLLBACK", {}};
  auto out = co_await conn->execute(rollback, sink);
  *done = true;
  deadline.cancel();
  bool ok = !out.error && out.tx == TxStatus::idle;
  {
    std::lock_guard lock(mu_);
    --resetting_;
    enter_locked(*slot, SlotState::in_use);  // release() accounts it like a returned lease
    ++in_use_;
  }
  slot->tx = ok ? TxStatus::idle : TxStatus::unknown;
  release(std::move(slot), !ok);
}

template <class Clock>
asio::awaitable<void> BasicPool<Clock>::ping_then_return(std::unique_ptr<Slot> slot) {
  auto self = this->shared_from_this();
  asio::steady_timer deadline(strand_, detail::kPingDeadline);
  auto* conn = slot->conn.get();
  // Shared with the handler: an expiry already queued when the ping ends must neither touch this
  // frame nor abort a connection that is back in the pool (or closed) by then.
  struct Ping {
    bool done = false;
    bool timed_out = false;
  };
  auto ping = std::make_shared<Ping>();
  deadline.async_wait([conn, ping](boost::system::error_code ec) {
    if (ec || ping->done) return;
    ping->timed_out = true;
    conn->abort();
  });
  bool ok = false;
  try {
    ok = co_await conn->ping();
  } catch (const std::exception&) {
    ok = false;
  }
  ping->done = true;
  deadline.cancel();
  const bool timed_out = ping->timed_out;
  std::unique_ptr<Slot> to_close;
  {
    std::lock_guard lock(mu_);
    --resetting_;
    pinging_ = false;
    if (!ok) {
      ++closed_broken_;
      backend_down_ = true;
      for (auto& w : waiters_) w->saw_outage = true;
      last_error_ = detail::make_error(
          protocol::ErrorCode::backend_unavailable,
          timed_out ? "health check: no answer within " + std::to_string(detail::kPingDeadline.count()) + "ms"
                    : "health check: the connection failed");
      to_close = std::move(slot);
    } else if (stopped_ || draining_ || retired_ || expired(*slot, Clock::now()) || slot->generation != generation_) {
      to_close = std::move(slot);
    } else if (!paused_ && !waiters_.empty()) {
      grant_locked(std::move(slot));
    } else {
      // Back where it was: the ping is not a use (idle_timeout still counts from the last one).
      enter_locked(*slot, SlotState::idle);
      idle_.push_front(std::move(slot));
    }
  }
  if (to_close) close_slot(std::move(to_close));
}

template <class Clock>
void BasicPool<Clock>::grant_locked(std::unique_ptr<Slot> slot) {
  if (!paused_ && !draining_ && !waiters_.empty()) {
    auto w = std::move(waiters_.front());
    waiters_.pop_front();
    enter_locked(*slot, SlotState::in_use);
    ++in_use_;
    w->granted = std::move(slot);
    w->wake();
    return;
  }
  enter_locked(*slot, SlotState::idle);
  idle_.push_back(std::move(slot));
}

template <class Clock>
void BasicPool<Clock>::close_slot(std::unique_ptr<Slot> slot) {
  {
    std::lock_guard lock(mu_);
    enter_locked(*slot, SlotState::closing);
    ++closing_;
  }
  asio::co_spawn(
      strand_,
      [self = this->shared_from_this(), slot = std::move(slot)]() mutable -> asio::awaitable<void> {
        try {
          co_await slot->conn->close();
        } catch (const std::exception&) {
          // Closing is best effort: the socket goes with the connection object anyway.
        }
        {
          std::lock_guard lock(self->mu_);
          self->all_.erase(slot.get());
        }
        slot.reset();
        self->budget_->release();
        std::lock_guard lock(self->mu_);
        --self->closing_;
        self->maybe_connect_locked();
      },
      asio::detached);
}

template <class Clock>
void BasicPool<Clock>::maybe_connect_locked() {
  if (stopped_ || paused_ || draining_) return;
  if (Clock::now() < next_connect_) return;  // backing off; maintain() retries when it ends
  const int open = connecting_ + static_cast<int>(idle_.size()) + in_use_ + resetting_;
  int wanted = static_cast<int>(waiters_.size()) - connecting_;
  if (!retired_) wanted = std::max(wanted, config_.pool.min - open);
  // While the backend is down, probe with one connect at a time instead of a thundering herd.
  if (backend_down_) wanted = std::min(wanted, 1 - connecting_);
  for (; wanted > 0 && budget_->try_acquire(); --wanted) {
    ++connecting_;
    ++connect_attempts_;
    asio::co_spawn(strand_, connect_one(connect_failures_), asio::detached);
  }
}

template <class Clock>
asio::awaitable<void> BasicPool<Clock>::connect_one(std::uint64_t failures_at_start) {
  auto self = this->shared_from_this();
  backend::ConnectResult r;
  try {
    r = co_await factory_(strand_);
  } catch (const std::exception& e) {
    r.error = detail::make_error(protocol::ErrorCode::backend_unavailable, e.what());
  }
  connect_done(std::move(r.conn), std::move(r.error), failures_at_start);
}

template <class Clock>
void BasicPool<Clock>::connect_done(std::unique_ptr<backend::Connection> conn, BackendError err,
                                    std::uint64_t failures_at_start) {
  std::unique_lock lock(mu_);
  --connecting_;
  if (!conn) {
    budget_->release();
    // Connects that were already in flight when another one failed (a crash breaks every
    // connection at once and each waiter's reconnect fails) are one piece of news, not several:
    // only a failure since the last one doubles the backoff. Counting each made four failures in a
    // millisecond wait 2 s, longer than the restart that followed.
    const bool news = failures_at_start == connect_failures_;
    ++connect_failures_;
    if (backoff_.count() == 0) {
      backoff_ = detail::kBackoffFirst;
    } else if (news) {
      backoff_ = std::min(backoff_ * 2, detail::kBackoffMax);
    }
    next_connect_ = Clock::now() + backoff_;
    if (err.code != protocol::ErrorCode::backend_unavailable) err.code = protocol::ErrorCode::backend_unavailable;
    backend_down_ = true;
    last_error_ = err;
    for (auto& w : waiters_) w->saw_outage = true;
    // Nobody will be able to serve these waiters soon: tell them now rather than at their timeout.
    const int open = connecting_ + static_cast<int>(idle_.size()) + in_use_ + resetting_;
    if (open == 0) {
      for (auto& w : waiters_) {
        w->failed = unavailable_error();
        w->wake();
      }
      waiters_.clear();
    }
    return;
  }
  ++connects_;
  backend_down_ = false;
  backoff_ = std::chrono::milliseconds(0);
  auto slot = std::make_unique<Slot>();
  slot->conn = std::move(conn);
  slot->created = slot->last_used = Clock::now();
  slot->generation = generation_;
  all_.insert(slot.get());
  if (stopped_ || draining_) {
    lock.unlock();
    close_slot(std::move(slot));
    return;
  }
  grant_locked(std::move(slot));
  maybe_connect_locked();
}

template <class Clock>
void BasicPool<Clock>::maintain() {
  std::deque<std::unique_ptr<Slot>> to_close;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    const auto now = Clock::now();
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      auto& w = *it;
      // A paused bind holds its requests until resume (PgBouncer's PAUSE); only a request's own
      // timeout ends the wait.
      if (paused_ && w->paused_limit && now >= *w->paused_limit) {
        w->failed = detail::make_error(
            protocol::ErrorCode::timeout,
            "bind " + config_.key + " is paused by an administrator and the request's timeout ran out after " +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - w->since).count()) +
                " ms of waiting; nothing was run");
        w->wake();
        it = waiters_.erase(it);
        continue;
      }
      if (paused_ || now < w->deadline) {
        ++it;
        continue;
      }
      ++acquire_timeouts_;
      const int open = connecting_ + static_cast<int>(idle_.size()) + in_use_ + resetting_;
      const auto wait_ms = std::to_string(config_.pool.acquire_timeout.count());
      if (backend_down_ && open - connecting_ == 0) {
        w->failed = unavailable_error();
      } else if (w->saw_outage) {
        w->failed = detail::make_error(protocol::ErrorCode::backend_unavailable,
                                       "bind " + config_.key + ": backend unavailable: no connection within " +
                                           wait_ms + "ms of an outage (" +
                                           (backend_down_ ? "still down" : "reconnecting") +
                                           "); last error: " + last_error_.message);
      } else {
        w->failed = detail::make_error(protocol::ErrorCode::pool_timeout,
                                       "bind " + config_.key + ": no connection free within " + wait_ms +
                                           "ms (pool max " + std::to_string(config_.pool.max) + ")");
      }
      w->wake();
      it = waiters_.erase(it);
    }
    // Oldest-used connections sit at the front; retire them first.
    int open = connecting_ + static_cast<int>(idle_.size()) + in_use_ + resetting_;
    for (auto it = idle_.begin(); it != idle_.end();) {
      const bool too_idle = now - (*it)->last_used >= config_.pool.idle_timeout && open > config_.pool.min;
      if (too_idle || expired(**it, now) || draining_ || retired_ || (*it)->generation != generation_) {
        to_close.push_back(std::move(*it));
        it = idle_.erase(it);
        --open;
      } else {
        ++it;
      }
    }
    // Reachability comes from the pool itself, not from the last request (stats, /readyz,
    // binds_backend_reachable): every kHealthInterval, idle connections the backend closed are
    // closed here, and a pool that is down, or left with nothing open by that, probes with one
    // connect. A probe that succeeds stays as an idle connection (idle_timeout closes it).
    if (now >= next_health_) {
      next_health_ = now + detail::kHealthInterval;
      bool found_dead = false;
      for (auto it = idle_.begin(); it != idle_.end();) {
        if (now - (*it)->last_used >= detail::kCheckAfterIdle && !(*it)->conn->looks_alive()) {
          to_close.push_back(std::move(*it));
          it = idle_.erase(it);
          ++closed_broken_;
          --open;
          found_dead = true;
        } else {
          ++it;
        }
      }
      // A backend can stop answering without closing anything: ping the longest-idle connection.
      if (!backend_down_ && !pinging_ && !paused_ && !draining_ &&
          !retired_ && !idle_.empty() && now - idle_.front()->last_used >= detail::kPingAfterIdle &&
          idle_.front()->conn->backend() != Backend::sqlite) {  // nothing between: SQLite is in-process
        auto slot = std::move(idle_.front());
        idle_.pop_front();
        enter_locked(*slot, SlotState::resetting);  // the pool's own work on it, like a rollback
        ++resetting_;
        pinging_ = true;
        asio::co_spawn(strand_, ping_then_return(std::move(slot)), asio::detached);
      }
      const bool probe = backend_down_ || (found_dead && open == 0);
      if (probe && connecting_ == 0 && !paused_ && !draining_ && !retired_ && now >= next_connect_ &&
          budget_->try_acquire()) {
        ++connecting_;
        ++connect_attempts_;
        asio::co_spawn(strand_, connect_one(connect_failures_), asio::detached);
      }
    }
    maybe_connect_locked();
  }
  for (auto& s : to_close) close_slot(std::move(s));
}

}  // namespace binds::pool
