#include "server/metrics.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "protocol/errors.hpp"

namespace binds::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Rendering

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[128];
  // Shortest round-trip digits. Fixed notation in the everyday range so bucket bounds read
  // "0.0005" rather than "5e-04": before Prometheus 3 the le label was compared as a string, so
  // a stable, conventional spelling matters for queries across restarts and versions.
  double a = std::fabs(v);
  auto fmt = (a == 0 || (a >= 1e-6 && a < 1e21)) ? std::chars_format::fixed : std::chars_format::general;
  auto r = std::to_chars(buf, buf + sizeof buf, v, fmt);
  return std::string(buf, r.ptr);
}

namespace {

class Exposition {
 public:
  explicit Exposition(std::string& out) : out_(out) {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // fixed texts below, free of backslashes and newlines
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, std::string_view value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t v) {
    sample(name, labels, std::to_string(v));
  }
  void sample(std::string_view name, std::string_view labels, std::int64_t v) {
    sample(name, labels, std::to_string(v));
  }
  void sample(std::string_view name, std::string_view labels, int v) {
    sample(name, labels, std::to_string(v));
  }
  void sample(std::string_view name, std::string_view labels, double v) {
    sample(name, labels, format_value(v));
  }

  void histogram(const std::string& name, const std::string& labels, const Histogram& h) {
    // Buckets are read one by one while writers keep observing, so the total is taken from the
    // buckets themselves rather than from count(): that keeps +Inf == _count, which Prometheus
    // relies on, even under load.
    std::uint64_t cumulative = 0;
    std::string sep = labels.empty() ? "" : ",";
    for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
      cumulative += h.bucket(i);
      sample(name + "_bucket", labels + sep + "le=\"" + format_value(Histogram::kBounds[i]) + "\"", cumulative);
    }
    cumulative += h.bucket(Histogram::kBounds.size());
    sample(name + "_bucket", labels + sep + "le=\"+Inf\"", cumulative);
    sample(name + "_sum", labels, h.sum_seconds());
    sample(name + "_count", labels, cumulative);
  }

 private:
  std::string& out_;
};

std::string label(std::string_view name, std::string_view value) {
  std::string s(name);
  s += "=\"";
  s += escape_label_value(value);
  s += '"';
  return s;
}

std::string bind_label(const BindMetrics& b) { return label("bind", b.key); }

void json_string(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

std::optional<ProcessMetrics> read_process_metrics() {
  // /proc/self/stat: the fields after the command (which may hold spaces and parentheses, so
  // parse from the last ')').
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  // f[0] is field 3 (state): utime = field 14, stime 15, starttime 22, vsize 23, rss 24.
  if (f.size() < 22) return std::nullopt;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  ProcessMetrics p;
  try {
    p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    p.virtual_bytes = std::stod(f[20]);
    p.resident_bytes = std::stod(f[21]) * page;
    // starttime counts clock ticks since boot; boot time is "btime" in /proc/stat.
    std::ifstream st("/proc/stat");
    double btime = 0;
    for (std::string line; std::getline(st, line);)
      if (line.rfind("btime ", 0) == 0) btime = std::stod(line.substr(6));
    p.start_time_seconds = btime + std::stod(f[19]) / ticks;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    p.open_fds += 1;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
    p.max_fds = lim.rlim_cur == RLIM_INFINITY ? 0 : static_cast<double>(lim.rlim_cur);
  return p;
}

std::string render_prometheus(const MetricsSnapshot& s) {
  std::string out;
  out.reserve(4096 + s.binds.size() * 6144);
  Exposition e(out);

  e.family("binds_up", "gauge", "1 while bindsd is running.");
  e.sample("binds_up", "", 1);
  e.family("binds_uptime_seconds", "gauge", "Seconds since bindsd started.");
  e.sample("binds_uptime_seconds", "", s.uptime_seconds);
  e.family("binds_build_info", "gauge", "Always 1; the version of the running bindsd in a label.");
  e.sample("binds_build_info", label("version", s.version), 1);
  if (s.process) {
    // Prometheus client libraries' names and help texts, so dashboards made for them just work.
    const auto& p = *s.process;
    const struct {
      const char *name, *type, *help;
      double value;
    } process[] = {
        {"process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", p.cpu_seconds},
        {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", p.resident_bytes},
        {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", p.virtual_bytes},
        {"process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds},
        {"process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds},
        {"process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
         p.start_time_seconds},
    };
    for (const auto& m : process) {
      e.family(m.name, m.type, m.help);
      e.sample(m.name, "", m.value);
    }
  }
  e.family("binds_clients", "gauge", "Client connections currently open.");
  e.sample("binds_clients", "", s.clients_now);
  e.family("binds_clients_total", "counter", "Client connections accepted.");
  e.sample("binds_clients_total", "", s.clients_total);
  e.family("binds_reloads_total", "counter", "Configuration reloads by result.");
  e.sample("binds_reloads_total", "result=\"ok\"", s.reloads_ok);
  e.sample("binds_reloads_total", "result=\"failed\"", s.reloads_failed);

  // Every sample of a family must be contiguous in the text format, hence family-major loops.
  e.family("binds_backend_reachable", "gauge", "1 if the bind's backend is reachable, 0 while its pool reports it down.");
  for (const auto& b : s.binds)
    e.sample("binds_backend_reachable", bind_label(b) + "," + label("backend", b.backend), b.reachable ? 1 : 0);

  e.family("binds_pool_connections", "gauge",
           "Backend connections by state. open is the total (connecting + idle + in_use + resetting); pinned is part "
           "of in_use; closing ones no longer count.");
  for (const auto& b : s.binds) {
    auto bl = bind_label(b) + ",state=";
    e.sample("binds_pool_connections", bl + "\"open\"", b.pool.open);
    e.sample("binds_pool_connections", bl + "\"idle\"", b.pool.idle);
    e.sample("binds_pool_connections", bl + "\"in_use\"", b.pool.in_use);
    e.sample("binds_pool_connections", bl + "\"pinned\"", b.pool.pinned);
    e.sample("binds_pool_connections", bl + "\"connecting\"", b.pool.connecting);
    e.sample("binds_pool_connections", bl + "\"resetting\"", b.pool.resetting);
    e.sample("binds_pool_connections", bl + "\"closing\"", b.pool.closing);
  }
  e.family("binds_pool_closed_broken_total", "counter",
           "Backend connections closed because they broke, could not be cleaned or held what they should not.");
  for (const auto& b : s.binds) e.sample("binds_pool_closed_broken_total", bind_label(b), b.pool.closed_broken);
  e.family("binds_pool_max", "gauge", "The bind's pool.max: connections it may open at most.");
  for (const auto& b : s.binds) e.sample("binds_pool_max", bind_label(b), b.pool_max);
  e.family("binds_pool_waiting", "gauge", "Requests waiting for a backend connection.");
  for (const auto& b : s.binds) e.sample("binds_pool_waiting", bind_label(b), b.pool.waiting);
  e.family("binds_pool_connects_total", "counter", "Backend connections opened.");
  for (const auto& b : s.binds) e.sample("binds_pool_connects_total", bind_label(b), b.pool.connects);
  e.family("binds_pool_connect_failures_total", "counter", "Backend connection attempts that failed.");
  for (const auto& b : s.binds) e.sample("binds_pool_connect_failures_total", bind_label(b), b.pool.connect_failures);
  e.family("binds_pool_acquire_timeouts_total", "counter", "Requests that timed out waiting for a backend connection.");
  for (const auto& b : s.binds) e.sample("binds_pool_acquire_timeouts_total", bind_label(b), b.pool.acquire_timeouts);

  e.family("binds_queries_total", "counter", "Requests that reached a backend connection.");
  for (const auto& b : s.binds) e.sample("binds_queries_total", bind_label(b), b.stats->queries.load(std::memory_order_relaxed));
  e.family("binds_errors_total", "counter", "Error replies sent to clients, by error code.");
  for (const auto& b : s.binds) {
    for (std::size_t i = 0; i < kErrorCodes; ++i) {
      auto n = b.stats->errors_by_code[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      auto code = protocol::error_code_name(static_cast<protocol::ErrorCode>(i));
      e.sample("binds_errors_total", bind_label(b) + "," + label("code", code), n);
    }
  }
  e.family("binds_pipelined_total", "counter", "Requests sent to the backend behind an unanswered request of the same client.");
  for (const auto& b : s.binds) e.sample("binds_pipelined_total", bind_label(b), b.stats->pipelined.load(std::memory_order_relaxed));
  e.family("binds_session_resets_total", "counter",
           "Session resets sent before a backend connection served another client (see the bind's reset).");
  for (const auto& b : s.binds)
    e.sample("binds_session_resets_total", bind_label(b), b.stats->resets.load(std::memory_order_relaxed));
  e.family("binds_transactions_total", "counter", "Transactions ended by a client's COMMIT or ROLLBACK, by result.");
  for (const auto& b : s.binds) {
    e.sample("binds_transactions_total", bind_label(b) + ",result=\"commit\"", b.stats->commits.load(std::memory_order_relaxed));
    e.sample("binds_transactions_total", bind_label(b) + ",result=\"rollback\"", b.stats->rollbacks.load(std::memory_order_relaxed));
  }
  e.family("binds_bytes_in_total", "counter", "Request bytes received from clients.");
  for (const auto& b : s.binds) e.sample("binds_bytes_in_total", bind_label(b), b.stats->bytes_in.load(std::memory_order_relaxed));
  e.family("binds_bytes_out_total", "counter", "Result bytes sent to clients.");
  for (const auto& b : s.binds) e.sample("binds_bytes_out_total", bind_label(b), b.stats->bytes_out.load(std::memory_order_relaxed));

  e.family("binds_query_duration_seconds", "histogram",
           "Request latency, from leaving the bind's queue to the final reply.");
  for (const auto& b : s.binds) e.histogram("binds_query_duration_seconds", bind_label(b), b.stats->latency);
  e.family("binds_pool_wait_seconds", "histogram", "Time spent waiting for a backend connection.");
  for (const auto& b : s.binds) e.histogram("binds_pool_wait_seconds", bind_label(b), b.stats->pool_wait);
  return out;
}

bool is_ready(const MetricsSnapshot& s) { return s.config_loaded && s.listeners_up; }

std::string render_readiness(const MetricsSnapshot& s) {
  std::string out;
  out += "{\"ready\":";
  out += is_ready(s) ? "true" : "false";
  out += ",\"config_loaded\":";
  out += s.config_loaded ? "true" : "false";
  out += ",\"listeners_up\":";
  out += s.listeners_up ? "true" : "false";
  out += ",\"binds\":[";
  bool first = true;
  for (const auto& b : s.binds) {
    if (!first) out += ',';
    first = false;
    out += "{\"bind\":";
    json_string(out, b.key);
    out += ",\"backend\":";
    json_string(out, b.backend);
    out += ",\"reachable\":";
    out += b.reachable ? "true" : "false";
    out += '}';
  }
  out += "]}\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// HTTP

namespace {

constexpr std::uint32_t kHeaderLimit = 8 * 1024;
// Room for a full header block plus whatever a pipelining client sent after it.
constexpr std::size_t kBufferLimit = 16 * 1024;
constexpr auto kReadTimeout = 10s;
constexpr auto kWriteTimeout = 10s;
// Scrapers and probes need a handful; the cap keeps a misbehaving client from using up the
// daemon's file descriptors, which the broker needs for its own clients and backends.
constexpr std::size_t kMaxConnections = 64;

auto log_failure(const char* what) {
  return [what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("metrics: {} ended with an exception: {}", what, x.what());
    } catch (...) {
      spdlog::error("metrics: {} ended with an unknown exception", what);
    }
  };
}

using Response = http::response<http::string_body>;

Response make_response(http::status status, unsigned version, const char* content_type, std::string body) {
  Response res{status, version};
  res.set(http::field::server, "bindsd");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

bool is_parse_error(const beast::error_code& ec) {
  // end_of_stream and partial_message mean the peer went away, not that it sent nonsense.
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

}  // namespace

struct MetricsServer::State {
  State(asio::io_context& io_, std::function<MetricsSnapshot()> snap)
      : io(io_), snapshot(std::move(snap)), acceptor_strand(asio::make_strand(io_)), acceptor(acceptor_strand) {}

  asio::io_context& io;
  std::function<MetricsSnapshot()> snapshot;
  asio::strand<asio::io_context::executor_type> acceptor_strand;
  tcp::acceptor acceptor;  // used only on acceptor_strand once accepting
  std::atomic<unsigned short> port{0};

  std::mutex mu;  // guards the members below
  bool started = false;
  bool stopping = false;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, std::function<void()>> closers;  // open connections
};

namespace {

using State = MetricsServer::State;

Response handle(State& st, const http::request_parser<http::empty_body>& parser) {
  const auto& req = parser.get();
  unsigned version = req.version() == 10 ? 10 : 11;
  if (req.method() != http::verb::get) {
    auto res = make_response(http::status::method_not_allowed, version, "text/plain", "method not allowed\n");
    res.set(http::field::allow, "GET");
    return res;
  }
  if (!parser.is_done())
    return make_response(http::status::bad_request, version, "text/plain", "request body not accepted\n");

  auto target = std::string_view(req.target().data(), req.target().size());
  auto path = target.substr(0, target.find('?'));
  if (path == "/healthz") return make_response(http::status::ok, version, "text/plain", "ok\n");
  if (path != "/metrics" && path != "/readyz")
    return make_response(http::status::not_found, version, "text/plain", "not found\n");

  MetricsSnapshot snap;
  try {
    snap = st.snapshot();
  } catch (const std::exception& x) {
    spdlog::error("metrics: snapshot failed: {}", x.what());
    return make_response(http::status::internal_server_error, version, "text/plain", "snapshot failed\n");
  } catch (...) {
    spdlog::error("metrics: snapshot failed with an unknown exception");
    return make_response(http::status::internal_server_error, version, "text/plain", "snapshot failed\n");
  }
  if (path == "/metrics")
    return make_response(http::status::ok, version, "text/plain; version=0.0.4; charset=utf-8", render_prometheus(snap));
  // Readiness covers what this process controls: a loaded config and open listeners. A backend
  // that is down does not make bindsd unready: bindsd still serves every other bind, and failing
  // the probe would pull the whole broker out of rotation (or get it restarted) for a problem a
  // restart cannot fix. Per-bind reachability is in the body for whoever wants to alert on it.
  return make_response(is_ready(snap) ? http::status::ok : http::status::service_unavailable, version,
                       "application/json", render_readiness(snap));
}

asio::awaitable<void> serve_connection(std::shared_ptr<State> st, tcp::socket socket) {
  auto ex = socket.get_executor();  // this connection's strand
  auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));

  std::uint64_t id;
  {
    std::lock_guard lock(st->mu);
    if (st->stopping) co_return;
    id = st->next_id++;
    // A weak reference: stop() may run after this coroutine has finished with the stream.
    st->closers[id] = [ex, weak = std::weak_ptr<beast::tcp_stream>(stream)] {
      asio::post(ex, [weak] {
        if (auto s = weak.lock()) {
          beast::error_code ignored;
          s->socket().shutdown(tcp::socket::shutdown_both, ignored);
          s->close();
        }
      });
    };
  }
  struct Unregister {
    State& st;
    std::uint64_t id;
    ~Unregister() {
      std::lock_guard lock(st.mu);
      st.closers.erase(id);
    }
  } unregister{*st, id};

  beast::flat_buffer buffer(kBufferLimit);
  beast::error_code ec;
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(kHeaderLimit);
    stream->expires_after(kReadTimeout);
    // Only the header is read: a request with a body is refused without reading it.
    co_await http::async_read_header(*stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    bool keep_alive = false;
    Response res;
    if (ec) {
      if (!is_parse_error(ec)) break;  // timeout, reset, closed by stop(): nobody to answer
      res = make_response(http::status::bad_request, 11, "text/plain", "bad request\n");
    } else {
      res = handle(*st, parser);
      // An unread body would be parsed as the next request, so a request with one ends the connection.
      keep_alive = parser.get().keep_alive() && parser.is_done();
    }
    res.keep_alive(keep_alive);
    res.prepare_payload();
    stream->expires_after(kWriteTimeout);
    co_await http::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !keep_alive) break;
  }
  stream->socket().shutdown(tcp::socket::shutdown_send, ec);
  stream->close();
}

asio::awaitable<void> accept_loop(std::shared_ptr<State> st) {
  asio::steady_timer backoff(st->acceptor_strand);
  for (;;) {
    beast::error_code ec;
    auto conn_ex = asio::any_io_executor(asio::make_strand(st->io));
    tcp::socket socket = co_await st->acceptor.async_accept(conn_ex, asio::redirect_error(asio::use_awaitable, ec));
    if (!st->acceptor.is_open()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Typically EMFILE: pause rather than spin, and keep the listener alive.
      spdlog::warn("metrics: accept failed: {}", ec.message());
      backoff.expires_after(100ms);
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    {
      std::lock_guard lock(st->mu);
      if (st->stopping) co_return;
      if (st->closers.size() >= kMaxConnections) {
        spdlog::warn("metrics: {} connections open, refusing another", st->closers.size());
        socket.close(ec);
        continue;
      }
    }
    auto ex = socket.get_executor();
    asio::co_spawn(ex, serve_connection(st, std::move(socket)), log_failure("connection"));
  }
}

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, std::function<MetricsSnapshot()> snapshot)
    : state_(std::make_shared<State>(io, std::move(snapshot))) {}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start(const std::string& listen) {
  {
    std::lock_guard lock(state_->mu);
    if (state_->started || state_->stopping) throw std::runtime_error("metrics.listen: the listener was already started");
    state_->started = true;
  }
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("metrics.listen: expected host:port, got \"" + listen + "\"");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  std::string port = listen.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoul(port) > 65535)
    throw std::runtime_error("metrics.listen: bad port in \"" + listen + "\"");

  tcp::resolver resolver(state_->io);
  beast::error_code ec;
  auto results = resolver.resolve(host, port, ec);
  if (ec || results.empty())
    throw std::runtime_error("metrics.listen: cannot resolve \"" + listen + "\": " + ec.message());
  tcp::endpoint ep = *results.begin();
  auto& acc = state_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    acc.close(ignored);
    throw std::runtime_error("metrics.listen: cannot listen on " + listen + ": " + ec.message());
  }
  state_->port = acc.local_endpoint().port();
  spdlog::info("metrics listening on http://{}:{}", ep.address().to_string(), state_->port.load());
  asio::co_spawn(state_->acceptor_strand, accept_loop(state_), log_failure("accept loop"));
}

void MetricsServer::stop() {
  std::vector<std::function<void()>> closers;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopping) return;
    state_->stopping = true;
    for (auto& [id, close] : state_->closers) closers.push_back(close);
  }
  asio::post(state_->acceptor_strand, [st = state_] {
    beast::error_code ignored;
    st->acceptor.close(ignored);
  });
  for (auto& close : closers) close();
}

unsigned short MetricsServer::port() const { return state_->port.load(); }

}  // namespace binds::server
