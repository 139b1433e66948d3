#pragma once
// The daemon: listeners, the router (bind key → pool) and the set of live client sessions.

#include <utility>
#include <boost/asio.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "binds/config.hpp"
#include "binds/engine/engine.hpp"
#include "protocol/messages.hpp"
#include "server/metrics.hpp"
#include "server/stats.hpp"

namespace binds::server {

namespace asio = boost::asio;

// The routing snapshot lives in the engine; reload swaps it.
using RouteTable = engine::Routes;
using pool::Pool;

struct ServerCounters {
  std::atomic<std::uint64_t> clients_total{0};
  std::atomic<std::int64_t> clients_now{0};
  std::atomic<std::uint64_t> reloads_ok{0};
  std::atomic<std::uint64_t> reloads_failed{0};
};

// What `binds clients` shows of one client connection. Written by its session, read by admin.
struct ClientInfo {
  std::uint64_t id = 0;
  std::string peer;
  std::shared_ptr<engine::Activity> activity;  // its requests now (set before the session registers)
  void set_name(std::string n) {
    std::lock_guard lock(mu);
    name = std::move(n);
  }
  std::string get_name() const {
    std::lock_guard lock(mu);
    return name;
  }
  std::chrono::system_clock::time_point connected_at = std::chrono::system_clock::now();
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::int64_t> pinned{0};  // binds with an open transaction

 private:
  mutable std::mutex mu;
  std::string name;  // HELLO "client"
};

// Loads and validates the configuration (the file plus command-line overrides); throws ConfigError.
using ConfigLoader = std::function<std::shared_ptr<const Config>()>;

struct AdminResult {
  bool ok = true;
  protocol::ErrorCode code = protocol::ErrorCode::bad_request;  // when !ok
  std::string error;
  protocol::Table table;
  // pause --wait: the reply is sent once this pool runs nothing (Server::wait_idle).
  std::shared_ptr<Pool> wait_idle;
  Millis wait_limit{0};
};

class Server {
 public:
  // threads: number of Asio I/O threads.
  Server(std::shared_ptr<const Config> config, int threads, ConfigLoader loader = nullptr);
  ~Server();

  // Opens listeners and pools. Throws std::runtime_error with a clear message on failure
  // (address in use, socket path not writable, …).
  void start();
  // Runs the I/O threads until stop() completes. Call once, from main().
  void run();
  // Any thread: stop accepting, close client sessions, close pools, return from run().
  void stop();

  std::shared_ptr<const RouteTable> routes() const { return engine_.routes(); }
  engine::Engine& engine() { return engine_; }
  ServerCounters& counters() { return counters_; }
  // The TCP port actually bound (useful when the config asked for port 0). 0 if none.
  unsigned short tcp_port() const { return tcp_port_; }
  asio::io_context& io() { return io_; }
  int threads() const { return threads_; }
  // Allocator hooks (bindsd's main() sets them when linked with mimalloc): `busy(true)` at the
  // first request after an idle spell (note_request), `busy(false)` from a once-a-second tick after
  // a second without requests; `release()` with malloc_trim(0) once clients have left.
  // An allocator that gives freed pages back at once is right for an idle daemon and wrong for a
  // busy one (a page emptied and refilled by every request pays two system calls and the page
  // faults each time); one that delays it is the reverse.
  struct MemoryHooks {
    void (*release)() = nullptr;
    void (*busy)(bool) = nullptr;
  };
  void set_memory_hooks(MemoryHooks hooks) { memory_hooks_ = hooks; }
  // Every front end calls this as a request arrives: the allocator must be in its busy mode
  // before the request allocates, not up to a second later (a burst after an idle spell ran at a
  // third of its throughput). Two relaxed loads per request. The mode is checked on every request,
  // not only on the first since the tick: with several I/O threads the tick can switch to idle
  // just after a request found the mode busy, and the requests after it must switch back.
  void note_request() {
    if (allocator_idle_.load(std::memory_order_relaxed)) set_allocator_busy(true);
    if (!request_seen_.load(std::memory_order_relaxed)) request_seen_.store(true, std::memory_order_relaxed);
  }
  // Threads for backend cancel requests: they block on the network (and on a hung backend), so
  // they get threads of their own, apart from both I/O threads and driver workers.
  asio::thread_pool& cancel_pool() { return cancel_pool_; }

  // Sessions register a closer so stop() can end them, and what admin may show of them.
  // closer(false): finish in-flight requests, then disconnect; closer(true): disconnect now.
  // end_transactions(pool, reason): roll back the session's transactions held on `pool` (a
  // reload's drain_timeout ran out for it); any thread.
  using EndTransactions = std::function<void(std::shared_ptr<Pool>, std::string reason)>;
  // kill(message): `binds kill`: tell the client why, then end the session as if it had left
  // (running statements cancelled, transactions rolled back); any thread.
  using Kill = std::function<void(std::string message)>;
  std::uint64_t add_session(std::function<void(bool hard)> closer, std::shared_ptr<ClientInfo> info,
                            EndTransactions end_transactions = {}, Kill kill = {});
  void remove_session(std::uint64_t id);

  StatsRegistry& stats() { return engine_.stats(); }
  // What /metrics and /readyz show. Any thread.
  MetricsSnapshot metrics_snapshot();
  // The port of the metrics listener (0 if none); for tests that configured port 0.
  unsigned short metrics_port() const { return metrics_ ? metrics_->port() : 0; }

  // Re-reads the configuration; on success swaps in a new routing table (unchanged binds keep
  // their pools, removed/changed binds drain their old pools). On failure the running config stays
  // and the reason is returned. Any thread; reloads are serialized.
  bool reload(std::string& message);
  // Runs an admin command (PROTOCOL.md §9). Strand/IO thread of the caller.
  AdminResult admin(const protocol::AdminRequest& req);
  // pause --wait's second half: completes once result.wait_idle runs no statement and holds no
  // transaction, or with a TIMEOUT error after result.wait_limit (the bind stays paused).
  asio::awaitable<void> wait_idle(AdminResult& result);
  std::string last_reload_error() const {
    std::lock_guard lock(reload_mu_);
    return last_reload_error_;
  }

 private:
  void open_tcp(const std::string& addr);
  void open_unix(const std::string& path);
  asio::awaitable<void> drain_and_stop();
  asio::awaitable<void> stats_lines();  // the optional periodic stats log line
  asio::awaitable<void> trim_memory();  // returns freed memory to the system after clients leave

  asio::io_context io_;
  asio::thread_pool cancel_pool_{2};
  int threads_;
  MemoryHooks memory_hooks_;
  std::mutex allocator_mu_;                 // orders the switches when several threads make them
  std::atomic<bool> allocator_idle_{true};  // the daemon starts idle
  std::atomic<bool> request_seen_{false};  // since the last tick; the tick clears it
  void set_allocator_busy(bool busy);
  engine::Engine engine_{nullptr};
  ServerCounters counters_;
  unsigned short tcp_port_ = 0;
  std::string unix_path_;
  std::optional<asio::ip::tcp::acceptor> tcp_acceptor_;
  std::optional<asio::local::stream_protocol::acceptor> unix_acceptor_;

  ConfigLoader loader_;
  mutable std::mutex reload_mu_;
  std::string last_reload_error_;

  struct SessionEntry {
    std::function<void(bool)> closer;
    std::shared_ptr<ClientInfo> info;
    EndTransactions end_transactions;
    Kill kill;
  };
  std::mutex sessions_mu_;
  std::map<std::uint64_t, SessionEntry> sessions_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<bool> listening_{false};
  std::unique_ptr<MetricsServer> metrics_;  // declared after io_: destroyed before it
  std::uint64_t next_session_ = 1;
  std::atomic<bool> stopping_{false};
  asio::steady_timer stop_timer_;
};

// Runs one client connection to completion (defined in session.cpp).
asio::awaitable<void> run_session(Server& server, asio::ip::tcp::socket socket);
asio::awaitable<void> run_session(Server& server, asio::local::stream_protocol::socket socket);

}  // namespace binds::server
