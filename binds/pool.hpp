#pragma once
// A connection pool per bind. The pool does not know who asked: sessions of the native protocol
// (and later the PostgreSQL front end) acquire leases from it the same way.
//
// Connection states (each counted in PoolStats):
//   connecting – a worker is opening it; counts against max.
//   idle       – in idle_, ready to lease.
//   in_use     – leased for a request.
//   pinned     – leased and held by one client across requests: its backend is inside a
//                transaction. Never handed to anyone else until the lease ends.
//   closing    – being closed on a worker (broken, expired, idle too long, pool stopped).
//
// Threading: acquire() is called from a coroutine on any strand and waits asynchronously (it holds
// no thread). Blocking driver work runs on the pool's own worker threads (run()).

#include <utility>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "binds/config.hpp"
#include "binds/driver.hpp"
#include "binds/offload.hpp"

namespace binds {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct PooledConn {
  std::unique_ptr<Connection> conn;
  Clock::time_point created;
  Clock::time_point last_used;
  std::uint64_t last_client = 0;  // who used it last: session state is reset when this changes
  bool dirty = false;             // a statement may have left session state (session_state.hpp)
  std::uint64_t generation = 0;   // reconnect() retires every connection of older generations
};

struct PoolStats {
  int open = 0;  // connecting + idle + in use (incl. pinned)
  int connecting = 0;
  int idle = 0;
  int in_use = 0;
  int pinned = 0;
  int waiting = 0;
  std::uint64_t connects = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t acquire_timeouts = 0;
  bool backend_down = false;
  bool paused = false;
  bool draining = false;
  bool retired = false;
  std::int64_t longest_wait_ms = 0;  // the oldest request still waiting for a connection
};

class Pool;

// Exclusive use of one backend connection. Destroying a lease returns the connection to its pool:
// rolled back first if it is still inside a transaction, discarded if it broke.
class Lease {
 public:
  Lease() = default;
  Lease(std::shared_ptr<Pool> pool, std::unique_ptr<PooledConn> pc);
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&& other) noexcept;
  ~Lease();

  explicit operator bool() const { return pc_ != nullptr; }
  Connection& conn() { return *pc_->conn; }
  Pool& pool() { return *pool_; }

  // Worker thread only. Checks a connection that sat idle before it is used, and replaces it with a
  // fresh one if the backend closed it meanwhile. Returns an error if no replacement could be made.
  std::optional<BackendError> validate();
  // Worker thread only. validate(), then, if another client used this connection last, clears the
  // session state that client may have left (Connection::reset) so nothing leaks between clients.
  std::optional<BackendError> prepare_for(std::uint64_t client);
  // The statement about to run may leave session state: reset before another client uses it.
  void mark_dirty() { pc_->dirty = true; }
  // Marks the connection unusable (a statement reported connection_broken).
  void mark_broken() { broken_ = true; }
  // Pinned leases are counted separately; the session sets this from the backend's tx status.
  void set_pinned(bool pinned);
  bool pinned() const { return pinned_; }

 private:
  void release();
  std::shared_ptr<Pool> pool_;
  std::unique_ptr<PooledConn> pc_;
  bool broken_ = false;
  bool pinned_ = false;
};

struct AcquireResult {
  Lease lease;
  std::optional<BackendError> error;  // pool_timeout or backend_unavailable
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  // io runs the maintenance timer; the workers are the pool's own threads.
  Pool(asio::io_context& io, BindConfig config);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void start();  // warm up `min` connections and start maintenance
  void stop();   // close idle connections; leases still out are closed when they come back

  // Admin controls (any thread).
  // pause: hand out no connections (requests wait, up to acquire_timeout); resume undoes it.
  void pause();
  void resume();
  // drain: pause, and close every connection as soon as it is idle, so the backend can be taken
  // down for maintenance; resume undoes it.
  void drain();
  // reconnect: replace every connection: idle ones now, busy ones when they come back.
  void reconnect();
  // retire: the pool left the routing table (reload): serve what is in flight, keep nothing idle.
  void retire();

  const BindConfig& config() const { return config_; }
  const std::string& key() const { return config_.key; }

  // Waits (asynchronously) up to acquire_timeout for a connection.
  asio::awaitable<AcquireResult> acquire();

  // Runs f on one of the pool's worker threads and resumes on the caller's executor.
  template <typename F>
  asio::awaitable<std::invoke_result_t<F&>> run(F f) {
    return offload(workers_.get_executor(), std::move(f));
  }
  // Fire-and-forget on a worker thread. f must not drop the last reference to this pool.
  template <typename F>
  void post(F f) {
    asio::post(workers_, std::move(f));
  }

  PoolStats stats();

  // This bind's own thread for backend cancels: a cancel may block on a hung backend (libpq 15's
  // PQcancel has no timeout), and must never delay another bind's cancel or timeout.
  asio::thread_pool& cancel_workers() { return cancel_workers_; }

 private:
  friend class Lease;
  struct Waiter;

  void release(std::unique_ptr<PooledConn> pc, bool broken);
  // Lock held. Starts connects while there are waiters (or fewer than min) and room below max.
  void maybe_connect_locked(std::unique_lock<std::mutex>& lock);
  void connect_done(std::unique_ptr<Connection> conn, BackendError err);
  void grant_locked(std::unique_ptr<PooledConn> pc);
  void close_async(std::unique_ptr<PooledConn> pc);
  void schedule_maintenance();
  void maintain();
  bool expired(const PooledConn& pc, Clock::time_point now) const;

  asio::io_context& io_;
  const BindConfig config_;
  asio::thread_pool workers_;
  asio::thread_pool cancel_workers_{1};
  asio::steady_timer maintenance_;

  std::mutex mu_;
  std::deque<std::unique_ptr<PooledConn>> idle_;  // back = most recently used
  std::deque<std::shared_ptr<Waiter>> waiters_;
  int open_ = 0;
  int connecting_ = 0;
  int pinned_ = 0;
  bool stopped_ = false;
  bool paused_ = false;
  bool draining_ = false;
  bool retired_ = false;
  std::uint64_t generation_ = 0;
  bool backend_down_ = false;
  BackendError last_error_;
  Clock::time_point next_connect_{};
  std::chrono::milliseconds backoff_{0};
  std::uint64_t connects_ = 0, connect_failures_ = 0, acquire_timeouts_ = 0;
};

}  // namespace binds
