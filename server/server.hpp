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
#include "binds/pool.hpp"

namespace binds::server {

namespace asio = boost::asio;

// An immutable routing snapshot. Reload (later) builds a new one and swaps it in atomically;
// sessions take a snapshot per request, so a request never sees half a config.
struct RouteTable {
  std::shared_ptr<const Config> config;
  std::map<std::string, std::shared_ptr<Pool>> pools;

  // nullopt/empty key → default bind. nullptr if unknown.
  std::shared_ptr<Pool> resolve(const std::optional<std::string>& key, std::string& resolved) const;
};

struct ServerCounters {
  std::atomic<std::uint64_t> clients_total{0};
  std::atomic<std::int64_t> clients_now{0};
  std::atomic<std::uint64_t> queries{0};
  std::atomic<std::uint64_t> errors{0};
};

class Server {
 public:
  // threads: number of Asio I/O threads.
  Server(std::shared_ptr<const Config> config, int threads);
  ~Server();

  // Opens listeners and pools. Throws std::runtime_error with a clear message on failure
  // (address in use, socket path not writable, …).
  void start();
  // Runs the I/O threads until stop() completes. Call once, from main().
  void run();
  // Any thread: stop accepting, close client sessions, close pools, return from run().
  void stop();

  std::shared_ptr<const RouteTable> routes() const { return std::atomic_load(&routes_); }
  ServerCounters& counters() { return counters_; }
  // The TCP port actually bound (useful when the config asked for port 0). 0 if none.
  unsigned short tcp_port() const { return tcp_port_; }
  asio::io_context& io() { return io_; }
  // Threads for backend cancel requests: they block on the network (and on a hung backend), so
  // they get threads of their own, apart from both I/O threads and driver workers.
  asio::thread_pool& cancel_pool() { return cancel_pool_; }

  // Sessions register a closer so stop() can end them.
  std::uint64_t add_session(std::function<void()> closer);
  void remove_session(std::uint64_t id);

 private:
  void open_tcp(const std::string& addr);
  void open_unix(const std::string& path);
  asio::awaitable<void> drain_and_stop();

  asio::io_context io_;
  asio::thread_pool cancel_pool_{2};
  int threads_;
  std::shared_ptr<const RouteTable> routes_;
  ServerCounters counters_;
  unsigned short tcp_port_ = 0;
  std::string unix_path_;
  std::optional<asio::ip::tcp::acceptor> tcp_acceptor_;
  std::optional<asio::local::stream_protocol::acceptor> unix_acceptor_;

  std::mutex sessions_mu_;
  std::map<std::uint64_t, std::function<void()>> sessions_;
  std::uint64_t next_session_ = 1;
  std::atomic<bool> stopping_{false};
  asio::steady_timer stop_timer_;
};

// Runs one client connection to completion (defined in session.cpp).
asio::awaitable<void> run_session(Server& server, asio::ip::tcp::socket socket);
asio::awaitable<void> run_session(Server& server, asio::local::stream_protocol::socket socket);

}  // namespace binds::server
