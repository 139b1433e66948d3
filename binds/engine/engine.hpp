#pragma once
// The request engine: everything between a front end and the pools, protocol-neutral. A front end
// (the native protocol today, PostgreSQL's wire protocol next) decodes its frames into Requests,
// hands them to its ClientSession, and encodes what comes back through its Responder.
//
// Per client and bind key a lane runs the client's requests in order (different binds run
// concurrently). The engine pins a connection while its backend is inside a transaction, rolls
// back idle-in-transaction clients, stops requests (CANCEL, statement timeout, client gone,
// reload drain) by cancelling them on the backend and abandoning a backend that does not answer,
// resets session state when a connection changes client, pipelines consecutive statements where
// the backend can, and keeps per-bind statistics.
//
// Threading: a ClientSession and everything it does runs on the front end connection's strand.
// Backend connections are awaited there directly (no thread hop); pools are shared by all.

#include <utility>
#include <boost/asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "binds/backend/backend.hpp"
#include "binds/config.hpp"
#include "binds/engine/stats.hpp"
#include "binds/pool/pool.hpp"
#include "protocol/messages.hpp"

namespace binds::engine {

namespace asio = boost::asio;

// An immutable routing snapshot. A reload builds a new one and swaps it in; a request resolves its
// bind against one snapshot, so it never sees half a config.
struct Routes {
  std::shared_ptr<const Config> config;
  std::map<std::string, std::shared_ptr<pool::Pool>> pools;

  // nullopt → default bind. nullptr if unknown. An empty name is unknown (not the default).
  std::shared_ptr<pool::Pool> resolve(const std::optional<std::string>& key, std::string& resolved) const;
};

// Builds the pool of one bind (its connection factory chooses the backend implementation).
std::shared_ptr<pool::Pool> make_pool(asio::any_io_executor ex, const BindConfig& bind);

struct Counters {
  std::atomic<std::uint64_t> queries{0};
  std::atomic<std::uint64_t> errors{0};
};

// Shared by every client: routes, statistics, counters.
class Engine {
 public:
  explicit Engine(std::shared_ptr<const Routes> routes) : routes_(std::move(routes)) {}
  std::shared_ptr<const Routes> routes() const { return std::atomic_load(&routes_); }
  void set_routes(std::shared_ptr<const Routes> r) { std::atomic_store(&routes_, std::move(r)); }
  StatsRegistry& stats() { return stats_; }
  Counters& counters() { return counters_; }

 private:
  std::shared_ptr<const Routes> routes_;
  StatsRegistry stats_;
  Counters counters_;
};

// How a front end sends replies. All calls come on the client's strand. Rows of a request may
// interleave with other requests' replies (different binds run concurrently).
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void columns(std::uint32_t id, std::span<const protocol::Column> columns) = 0;
  virtual void row(std::uint32_t id, std::span<const backend::ValueView> values) = 0;
  // The final reply of a request; each returns the bytes the request's reply took (for stats).
  virtual std::uint64_t complete(std::uint32_t id, const protocol::Complete& done) = 0;
  virtual std::uint64_t error(std::uint32_t id, const protocol::ErrorInfo& info) = 0;
  // Backpressure (see backend::ResultSink).
  virtual bool full() const = 0;
  // Waits for room; false if the client is gone, or once *give_up is true (the engine sets it when
  // it stops a request, then calls wake(): a request stopped by its timeout must not wait for a
  // client that does not read).
  virtual asio::awaitable<bool> drained(const bool* give_up) = 0;
  virtual void wake() = 0;
  virtual std::size_t max_row_bytes() const = 0;
};

enum class Kind { query, begin, commit, rollback };

// What admin views show of one client's requests now: written on the client's strand, read from
// any thread. Never parameter values; SQL only as a short summary.
class Activity {
 public:
  struct Now {
    std::uint32_t id = 0;
    std::string bind;
    std::string sql;  // summary(): whitespace collapsed, at most kSummaryBytes
    std::chrono::steady_clock::time_point since;
    bool waiting = true;  // for a connection (the pool is busy or paused)
  };
  static constexpr std::size_t kSummaryBytes = 60;
  static std::string summary(std::string_view sql);

  void begin(std::uint32_t id, std::string bind, std::string sql);
  void running(std::uint32_t id);
  void end(std::uint32_t id);
  std::vector<Now> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::vector<Now> now_;
};

struct Request {
  Kind kind = Kind::query;
  std::uint32_t id = 0;
  std::optional<std::string> bind;  // nullopt = the default bind
  std::string sql;                  // query
  std::vector<protocol::Value> params;
  std::uint32_t timeout_ms = 0;     // 0 = the bind's statement_timeout
  // query: run only inside the transaction open on the bind, else refuse it unrun. A client
  // sends a statement right behind its BEGIN with this set, so a BEGIN that fails cannot leave
  // the statement to run (and commit) on its own.
  bool in_tx = false;
  protocol::Isolation isolation = protocol::Isolation::backend_default;  // begin
  bool read_only = false;                                                // begin
  std::size_t wire_bytes = 0;  // the request's size on the wire (binds_bytes_in_total)
};

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  // Create with std::make_shared; the responder must outlive the session's close().
  ClientSession(Engine& engine, asio::any_io_executor strand, Responder& responder, std::uint64_t client_id,
                Limits limits);
  ~ClientSession();

  // Queues a request on its bind's lane, or answers it at once (unknown bind, too many in flight).
  void submit(Request r);
  // Stops request `target` (queued: dropped; running: cancelled on the backend). Returns whether it
  // was still queued or running; its own reply (CANCELLED, or its result if it finished first)
  // follows through the responder.
  bool cancel(std::uint32_t target);
  // Rolls back the transactions this client holds on `pool` (a reload's drain timeout ran out).
  void end_transactions(const std::shared_ptr<pool::Pool>& pool, const std::string& reason);

  // The client's name (HELLO "client"): PostgreSQL shows it as application_name. Strand only.
  void set_client_name(std::string name) { client_name_ = std::move(name); }
  // Where the session records its requests for admin views (the front end's, shared). Strand
  // only, before the first request.
  void set_activity(std::shared_ptr<Activity> a) { activity_ = std::move(a); }

  // Requests queued or running (not counting internal ones).
  int in_flight() const { return in_flight_; }
  // Binds with an open transaction.
  int pinned() const;
  // Called whenever in_flight() drops to zero (the front end's shutdown drain waits for it).
  void on_idle(std::function<void()> f) { on_idle_ = std::move(f); }

  // The client is gone or being cut off: drop what is queued, stop what runs (abandoning a backend
  // that does not answer), roll back open transactions, return every connection. Completes when
  // every lane has ended.
  asio::awaitable<void> close();

 private:
  struct Lane;
  struct Running;

  Lane& lane(const std::string& key);
  void start_lane(const std::string& key, Lane& lane);
  asio::awaitable<void> run_lane(std::string key);
  // `sent`: the request's statement already went out behind an earlier one (prefetch()).
  asio::awaitable<void> execute(Lane& lane, Request req, std::shared_ptr<pool::Pool> pool, bool sent,
                                bool cancel_requested);
  // Sends the lane's next queued requests on `conn` behind the running one, while they qualify.
  // `running_in_tx`: the SQL of the running statement when it runs inside the lane's transaction
  // (it may yet end it), else null.
  void prefetch(Lane& lane, backend::Connection& conn, const std::string* running_in_tx);
  void arm_idle_tx_timer(const std::string& key, Lane& lane);
  void stop(const std::shared_ptr<Running>& r, protocol::ErrorCode why);
  void finished_one(bool internal);
  void send_error(std::uint32_t id, protocol::ErrorInfo info);
  void send_error(std::uint32_t id, protocol::ErrorCode code, std::string message, const std::string& bind);

  Engine& engine_;
  asio::any_io_executor strand_;
  Responder& out_;
  const std::uint64_t client_;
  const Limits limits_;
  std::map<std::string, std::unique_ptr<Lane>> lanes_;
  std::map<std::uint32_t, std::shared_ptr<Running>> running_;  // requests that reached a backend connection
  int in_flight_ = 0;
  int active_lanes_ = 0;
  bool closing_ = false;
  std::function<void()> on_idle_;
  asio::steady_timer lanes_done_;
  std::string client_name_;
  std::shared_ptr<Activity> activity_ = std::make_shared<Activity>();
  // Per-client log rate limit (a client that makes every request fail must not flood the log).
  int log_used_ = 0;
  std::uint64_t log_dropped_ = 0;
  std::chrono::steady_clock::time_point log_window_{};
  bool should_log();
};

}  // namespace binds::engine
