#pragma once
// The optional HTTP listener for Prometheus (/metrics) and for probes (/healthz, /readyz).
// Self-contained: it knows nothing of the Server; the daemon hands it a function that builds a
// MetricsSnapshot at scrape time, so this file never touches pools or routes directly.

#include <utility>
#include <boost/asio.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "binds/pool/pool.hpp"
#include "server/stats.hpp"

namespace binds::server {

struct BindMetrics {           // one bind, as the server sees it at scrape time
  std::string key, backend;    // backend: "postgresql" | "mysql" | "sqlite"
  pool::PoolStats pool;
  int pool_max = 0;
  bool reachable = true;       // false while the pool reports backend_down
  std::shared_ptr<BindStats> stats;  // never null
};

// The process itself, from /proc/self (Prometheus' conventional process_* metrics).
struct ProcessMetrics {
  double cpu_seconds = 0;       // user + system
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;           // the soft RLIMIT_NOFILE
  double start_time_seconds = 0;  // since the Unix epoch
};
// Reads /proc/self; nullopt where /proc cannot be read.
std::optional<ProcessMetrics> read_process_metrics();

struct MetricsSnapshot {
  std::vector<BindMetrics> binds;
  std::optional<ProcessMetrics> process;
  std::string version;  // binds_build_info
  std::int64_t clients_now = 0;
  std::uint64_t clients_total = 0, reloads_ok = 0, reloads_failed = 0;
  bool config_loaded = true, listeners_up = true;
  double uptime_seconds = 0;
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const MetricsSnapshot& s);

// A label value escaped for the text format (backslash, double quote, newline), without quotes.
std::string escape_label_value(std::string_view v);

// A sample value as the text format wants it: integers without a fraction, "+Inf", "-Inf", "NaN".
std::string format_value(double v);

// The /readyz body: {"ready":…,"config_loaded":…,"listeners_up":…,"binds":[{"bind":…,
// "backend":…,"reachable":…},…]}.
std::string render_readiness(const MetricsSnapshot& s);
bool is_ready(const MetricsSnapshot& s);

// HTTP/1.1 on Boost.Beast, one coroutine per connection on the given io_context (which may be run
// by several threads: each connection and the acceptor live on strands of their own).
//   GET /metrics → 200 text/plain; version=0.0.4
//   GET /healthz → 200 "ok"
//   GET /readyz  → 200 or 503 with render_readiness()
//   other paths → 404; other methods → 405; malformed or oversized requests → 400 and close.
// The snapshot function may be called concurrently from several I/O threads; if it throws, the
// request gets a 500 and the listener carries on. Destroy the MetricsServer before its
// io_context: connections still open then end when the io_context next runs or is destroyed.
class MetricsServer {
 public:
  MetricsServer(boost::asio::io_context& io, std::function<MetricsSnapshot()> snapshot);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds host:port ("127.0.0.1:9187", "[::1]:0", "localhost:9187"; port 0 = any) and starts
  // accepting. Throws std::runtime_error with a clear message on failure.
  void start(const std::string& listen);
  // Closes the acceptor and every open connection. Any thread; idempotent. The closing happens on
  // the io_context, so it takes effect once that runs.
  void stop();
  unsigned short port() const;  // the bound port; 0 before start()

  struct State;  // shared with the connection coroutines, which may outlive this object

 private:
  std::shared_ptr<State> state_;
};

}  // namespace binds::server
