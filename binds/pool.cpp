#include "binds/pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace binds {

using protocol::ErrorCode;
using namespace std::chrono_literals;

namespace {
constexpr auto kMaintenanceTick = 200ms;
constexpr auto kBackoffFirst = 250ms;
constexpr auto kBackoffMax = 5000ms;
// An idle connection unused for longer than this is checked before it is leased.
constexpr auto kValidateAfterIdle = 2s;

BackendError make_error(ErrorCode code, std::string message) {
  BackendError e;
  e.code = code;
  e.message = std::move(message);
  return e;
}
}  // namespace

struct Pool::Waiter : std::enable_shared_from_this<Pool::Waiter> {
  explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  std::unique_ptr<PooledConn> granted;
  std::optional<BackendError> failed;
  bool done = false;
  Clock::time_point since = Clock::now();

  // Lock held. Wakes the waiting coroutine on its own executor (timers are not thread-safe).
  void wake() {
    done = true;
    asio::post(timer.get_executor(), [self = shared_from_this()] { self->timer.cancel(); });
  }
};

// ---- Lease ----

Lease::Lease(std::shared_ptr<Pool> pool, std::unique_ptr<PooledConn> pc)
    : pool_(std::move(pool)), pc_(std::move(pc)) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::move(other.pool_);
    pc_ = std::move(other.pc_);
    broken_ = other.broken_;
    pinned_ = other.pinned_;
    other.pinned_ = false;
  }
  return *this;
}

Lease::~Lease() { release(); }

void Lease::release() {
  if (!pc_) return;
  set_pinned(false);
  pool_->release(std::move(pc_), broken_);
  pool_.reset();
}

void Lease::set_pinned(bool pinned) {
  if (pinned == pinned_ || !pool_) return;
  pinned_ = pinned;
  std::lock_guard lock(pool_->mu_);
  pool_->pinned_ += pinned ? 1 : -1;
}

std::optional<BackendError> Lease::validate() {
  // Replacing a connection that holds a transaction would continue the transaction in autocommit.
  if (pinned_) return std::nullopt;
  auto now = Clock::now();
  if (now - pc_->last_used < kValidateAfterIdle || pc_->conn->alive()) {
    pc_->last_used = now;
    return std::nullopt;
  }
  spdlog::info("bind {}: idle connection found dead; reconnecting", pool_->key());
  BackendError err;
  auto fresh = connect(pool_->config().url, pool_->key(), err, ConnectOptions{pool_->config().attach_dir});
  if (!fresh) {
    broken_ = true;
    return err;
  }
  pc_->conn = std::move(fresh);
  pc_->created = pc_->last_used = now;
  pc_->last_client = 0;  // a fresh session has nothing to reset
  pc_->dirty = false;
  return std::nullopt;
}

std::optional<BackendError> Lease::prepare_for(std::uint64_t client) {
  if (auto err = validate()) return err;
  bool switched = pc_->last_client != 0 && pc_->last_client != client;
  // On PostgreSQL any statement may run code that changes the session (a DO block or a function
  // setting search_path, a trigger creating a temp table), and the backend does not report it:
  // reading SQL text cannot see it, so every client change resets.
  const bool always = pool_->config().reset_always || pool_->config().url.backend == Backend::postgresql;
  if (switched && (pc_->dirty || always)) {
    pc_->dirty = false;
    if (auto err = pc_->conn->reset()) {
      // A connection whose state could not be cleared must not serve anyone else.
      broken_ = true;
      err->code = ErrorCode::backend_unavailable;
      err->message = "bind " + pool_->key() + ": could not reset the session: " + err->message;
      return err;
    }
  }
  pc_->last_client = client;
  return std::nullopt;
}

// ---- Pool ----

Pool::Pool(asio::io_context& io, BindConfig config)
    : io_(io),
      config_(std::move(config)),
      // One worker per connection that may exist, plus one for connects and closes so those never
      // wait behind a long-running query.
      workers_(static_cast<std::size_t>(config_.pool.max) + 1),
      maintenance_(io) {}

Pool::~Pool() {
  workers_.stop();
  workers_.join();
  cancel_workers_.stop();
  cancel_workers_.join();
}

void Pool::start() {
  {
    std::unique_lock lock(mu_);
    maybe_connect_locked(lock);
  }
  schedule_maintenance();
}

void Pool::stop() {
  std::deque<std::unique_ptr<PooledConn>> idle;
  std::deque<std::shared_ptr<Waiter>> waiters;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    idle.swap(idle_);
    waiters.swap(waiters_);
    for (auto& w : waiters) {
      w->failed = make_error(ErrorCode::shutting_down, "bind " + config_.key + " is shutting down");
      w->wake();
    }
  }
  asio::post(io_, [self = shared_from_this()] { self->maintenance_.cancel(); });
  for (auto& pc : idle) close_async(std::move(pc));
}

void Pool::pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
}

void Pool::resume() {
  std::deque<std::unique_ptr<PooledConn>> idle;
  std::unique_lock lock(mu_);
  paused_ = false;
  draining_ = false;
  while (!waiters_.empty() && !idle_.empty()) {
    auto pc = std::move(idle_.back());
    idle_.pop_back();
    grant_locked(std::move(pc));
  }
  maybe_connect_locked(lock);
}

void Pool::drain() {
  std::deque<std::unique_ptr<PooledConn>> idle;
  {
    std::lock_guard lock(mu_);
    paused_ = true;
    draining_ = true;
    idle.swap(idle_);
    open_ -= static_cast<int>(idle.size());
  }
  for (auto& pc : idle) close_async(std::move(pc));
}

void Pool::reconnect() {
  std::deque<std::unique_ptr<PooledConn>> idle;
  {
    std::unique_lock lock(mu_);
    ++generation_;
    idle.swap(idle_);
    open_ -= static_cast<int>(idle.size());
    maybe_connect_locked(lock);  // back up to min with fresh connections
  }
  for (auto& pc : idle) close_async(std::move(pc));
}

void Pool::retire() {
  std::deque<std::unique_ptr<PooledConn>> idle;
  {
    std::lock_guard lock(mu_);
    retired_ = true;
    idle.swap(idle_);
    open_ -= static_cast<int>(idle.size());
  }
  for (auto& pc : idle) close_async(std::move(pc));
}

PoolStats Pool::stats() {
  std::lock_guard lock(mu_);
  PoolStats s;
  s.open = open_;
  s.connecting = connecting_;
  s.idle = static_cast<int>(idle_.size());
  s.in_use = open_ - connecting_ - s.idle;
  s.pinned = pinned_;
  s.waiting = static_cast<int>(waiters_.size());
  s.connects = connects_;
  s.connect_failures = connect_failures_;
  s.acquire_timeouts = acquire_timeouts_;
  s.backend_down = backend_down_;
  s.paused = paused_;
  s.draining = draining_;
  s.retired = retired_;
  if (!waiters_.empty())
    s.longest_wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - waiters_.front()->since).count();
  return s;
}

bool Pool::expired(const PooledConn& pc, Clock::time_point now) const {
  return now - pc.created >= config_.pool.max_lifetime;
}

asio::awaitable<AcquireResult> Pool::acquire() {
  auto ex = co_await asio::this_coro::executor;
  auto waiter = std::make_shared<Waiter>(ex);
  {
    std::unique_lock lock(mu_);
    if (stopped_) {
      co_return AcquireResult{
          {}, make_error(ErrorCode::shutting_down, "bind " + config_.key + " is shutting down")};
    }
    auto now = Clock::now();
    while (!paused_ && !idle_.empty()) {
      auto pc = std::move(idle_.back());
      idle_.pop_back();
      if (expired(*pc, now) || pc->generation != generation_) {
        --open_;
        close_async(std::move(pc));
        continue;
      }
      co_return AcquireResult{Lease(shared_from_this(), std::move(pc)), std::nullopt};
    }
    waiters_.push_back(waiter);
    maybe_connect_locked(lock);
    if (!waiter->done) waiter->timer.expires_after(config_.pool.acquire_timeout);
  }
  if (!waiter->done) {
    boost::system::error_code ec;
    co_await waiter->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  std::unique_lock lock(mu_);
  if (waiter->granted) co_return AcquireResult{Lease(shared_from_this(), std::move(waiter->granted)), {}};
  if (waiter->failed) co_return AcquireResult{{}, std::move(waiter->failed)};
  // Timed out: nobody granted or failed us, so we are still queued.
  waiter->done = true;
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), waiter), waiters_.end());
  ++acquire_timeouts_;
  BackendError err;
  if (backend_down_ && open_ - connecting_ == 0) {
    err.code = ErrorCode::backend_unavailable;
    err.message = "bind " + config_.key + ": backend unavailable: " + last_error_.message;
  } else if (paused_) {
    err.code = ErrorCode::pool_timeout;
    err.message = "bind " + config_.key + " is paused by an administrator (waited " +
                  std::to_string(config_.pool.acquire_timeout.count()) + "ms)";
  } else {
    err.code = ErrorCode::pool_timeout;
    err.message = "bind " + config_.key + ": no connection free within " +
                  std::to_string(config_.pool.acquire_timeout.count()) + "ms (pool max " +
                  std::to_string(config_.pool.max) + ")";
  }
  co_return AcquireResult{{}, std::move(err)};
}

void Pool::maybe_connect_locked(std::unique_lock<std::mutex>&) {
  if (stopped_ || paused_) return;
  auto now = Clock::now();
  if (now < next_connect_) return;  // backing off; maintenance retries when it ends
  // While the backend is down, probe with one connect at a time instead of a thundering herd.
  int wanted = static_cast<int>(waiters_.size()) - connecting_;
  if (!retired_) wanted = std::max(wanted, config_.pool.min - open_);
  if (backend_down_) wanted = std::min(wanted, 1 - connecting_);
  for (; wanted > 0 && open_ < config_.pool.max; --wanted) {
    ++open_;
    ++connecting_;
    asio::post(workers_, [self = shared_from_this()] {
      BackendError err;
      auto conn = connect(self->config_.url, self->config_.key, err, ConnectOptions{self->config_.attach_dir});
      self->connect_done(std::move(conn), std::move(err));
      // The last reference must not die on a worker thread: ~Pool joins the workers.
      asio::post(self->io_, [self] {});
    });
  }
}

void Pool::connect_done(std::unique_ptr<Connection> conn, BackendError err) {
  std::unique_lock lock(mu_);
  --connecting_;
  if (!conn) {
    --open_;
    ++connect_failures_;
    backoff_ = backoff_.count() == 0 ? std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffFirst)
                                     : std::min<std::chrono::milliseconds>(backoff_ * 2, kBackoffMax);
    next_connect_ = Clock::now() + backoff_;
    if (!backend_down_ || err.message != last_error_.message)
      spdlog::error("bind {}: cannot connect to {}: {} (retrying in {}ms)", config_.key,
                    config_.url.redacted(), err.message, backoff_.count());
    backend_down_ = true;
    last_error_ = err;
    // Nobody will be able to serve these waiters soon: tell them now rather than at their timeout.
    if (open_ - connecting_ == 0) {
      for (auto& w : waiters_) {
        w->failed = make_error(ErrorCode::backend_unavailable,
                                 "bind " + config_.key + ": backend unavailable: " + err.message);
        w->wake();
      }
      waiters_.clear();
    }
    return;
  }
  ++connects_;
  if (backend_down_) spdlog::info("bind {}: backend reachable again", config_.key);
  backend_down_ = false;
  backoff_ = std::chrono::milliseconds(0);
  auto pc = std::make_unique<PooledConn>();
  pc->conn = std::move(conn);
  pc->created = pc->last_used = Clock::now();
  pc->generation = generation_;
  if (stopped_) {
    --open_;
    lock.unlock();
    close_async(std::move(pc));
    return;
  }
  grant_locked(std::move(pc));
  maybe_connect_locked(lock);
}

void Pool::grant_locked(std::unique_ptr<PooledConn> pc) {
  if (!paused_ && !waiters_.empty()) {
    auto w = std::move(waiters_.front());
    waiters_.pop_front();
    w->granted = std::move(pc);
    w->wake();
    return;
  }
  idle_.push_back(std::move(pc));
}

void Pool::release(std::unique_ptr<PooledConn> pc, bool broken) {
  auto tx = broken ? TxStatus::unknown : pc->conn->tx_status();
  if (!broken && tx != TxStatus::idle && tx != TxStatus::unknown) {
    // Never hand a connection inside a transaction to another client: roll back first, on a worker.
    asio::post(workers_, [self = shared_from_this(), pc = std::move(pc)]() mutable {
      auto err = pc->conn->rollback();
      if (err) spdlog::warn("bind {}: rollback before reuse failed: {}", self->key(), err->message);
      bool still = err || pc->conn->tx_status() != TxStatus::idle;
      self->release(std::move(pc), still);
      asio::post(self->io_, [self] {});
    });
    return;
  }
  std::unique_lock lock(mu_);
  auto now = Clock::now();
  bool keep_idle = !draining_ && !(retired_ && waiters_.empty());
  if (broken || tx == TxStatus::unknown || stopped_ || expired(*pc, now) || pc->generation != generation_ ||
      !keep_idle) {
    --open_;
    lock.unlock();
    close_async(std::move(pc));
    lock.lock();
    maybe_connect_locked(lock);
    return;
  }
  pc->last_used = now;
  grant_locked(std::move(pc));
}

void Pool::close_async(std::unique_ptr<PooledConn> pc) {
  // Closing sends a terminate message and may block on a dead peer: keep it off the caller.
  asio::post(workers_, [pc = std::move(pc)]() mutable { pc.reset(); });
}

void Pool::schedule_maintenance() {
  maintenance_.expires_after(kMaintenanceTick);
  maintenance_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    self->maintain();
    self->schedule_maintenance();
  });
}

void Pool::maintain() {
  std::deque<std::unique_ptr<PooledConn>> to_close;
  {
    std::unique_lock lock(mu_);
    if (stopped_) return;
    auto now = Clock::now();
    // Oldest-used connections sit at the front; retire them first.
    for (auto it = idle_.begin(); it != idle_.end();) {
      bool too_idle = now - (*it)->last_used >= config_.pool.idle_timeout && open_ > config_.pool.min;
      if (too_idle || expired(**it, now) || draining_ || retired_ || (*it)->generation != generation_) {
        to_close.push_back(std::move(*it));
        it = idle_.erase(it);
        --open_;
      } else {
        ++it;
      }
    }
    maybe_connect_locked(lock);
  }
  for (auto& pc : to_close) close_async(std::move(pc));
}

}  // namespace binds
