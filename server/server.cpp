#include "server/server.hpp"

#include <spdlog/spdlog.h>
#include <malloc.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>
#include <thread>

#include "binds/backend/blocking.hpp"

namespace binds::server {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void log_exception(std::exception_ptr e, const char* what) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("{} ended with an exception: {}", what, x.what());
  }
}
}  // namespace

Server::Server(std::shared_ptr<const Config> config, int threads, ConfigLoader loader)
    // Hint 1: one thread runs the handlers (others only post), so the scheduler may skip work
    // it needs to share its queue between runners.
    : io_(threads <= 1 ? 1 : BOOST_ASIO_CONCURRENCY_HINT_DEFAULT),
      threads_(std::max(1, threads)),
      loader_(std::move(loader)),
      stop_timer_(io_) {
  backend::reserve_cpus_for_io(static_cast<unsigned>(threads_));
  auto rt = std::make_shared<RouteTable>();
  rt->config = config;
  for (const auto& [key, bind] : config->binds) rt->pools[key] = engine::make_pool(io_.get_executor(), bind);
  engine_.set_routes(std::move(rt));
}

Server::~Server() = default;

void Server::open_tcp(const std::string& addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("listen.tcp: expected host:port, got " + addr);
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string port = addr.substr(colon + 1);
  asio::ip::tcp::resolver resolver(io_);
  boost::system::error_code ec;
  auto results = resolver.resolve(host, port, ec);
  if (ec || results.empty())
    throw std::runtime_error("listen.tcp: cannot resolve " + addr + ": " + ec.message());
  asio::ip::tcp::endpoint ep = *results.begin();
  asio::ip::tcp::acceptor acc(io_);
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("listen.tcp: cannot listen on " + addr + ": " + ec.message());
  tcp_port_ = acc.local_endpoint().port();
  spdlog::info("listening on tcp {}:{}", ep.address().to_string(), tcp_port_);
  tcp_acceptor_.emplace(std::move(acc));
}

void Server::open_unix(const std::string& path) {
  std::error_code fec;
  auto parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, fec);
  if (fs::exists(path)) {
    // A socket file left by a crashed daemon is stale; one that still answers belongs to a live one.
    asio::local::stream_protocol::socket probe(io_);
    boost::system::error_code ec;
    probe.connect(asio::local::stream_protocol::endpoint(path), ec);
    if (!ec) throw std::runtime_error("listen.unix: " + path + " is in use by another process");
    if (!fs::is_socket(path))
      throw std::runtime_error("listen.unix: " + path + " exists and is not a socket");
    fs::remove(path, fec);
  }
  asio::local::stream_protocol::acceptor acc(io_);
  boost::system::error_code ec;
  asio::local::stream_protocol::endpoint ep(path);
  acc.open(ep.protocol(), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("listen.unix: cannot listen on " + path + ": " + ec.message());
  unix_path_ = path;
  spdlog::info("listening on unix {}", path);
  unix_acceptor_.emplace(std::move(acc));
}

// Tells a refused client why before closing, so it reports "too many clients" instead of a bare
// disconnect. The ERROR goes out first (a new socket's buffer has room for it), then the side that
// may have sent HELLO is drained briefly: closing with its bytes unread would reset the connection
// and could destroy the ERROR before the client reads it.
template <class Socket>
static asio::awaitable<void> refuse_client(Socket socket, std::uint32_t max_clients) {
  // Shared with the deadline's handler, which may already be queued when the reads end.
  auto sock = std::make_shared<Socket>(std::move(socket));
  boost::system::error_code ec;
  protocol::ErrorInfo info;
  info.code = protocol::ErrorCode::too_many_clients;
  info.message = "bindsd has " + std::to_string(max_clients) + " clients connected (limits.max_clients); try later";
  const std::string frame = protocol::encode_error(0, info);
  co_await asio::async_write(*sock, asio::buffer(frame), asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) sock->shutdown(asio::socket_base::shutdown_send, ec);
  asio::steady_timer deadline(sock->get_executor(), 500ms);
  deadline.async_wait([sock](boost::system::error_code e) {
    boost::system::error_code ignored;
    if (!e) sock->close(ignored);
  });
  std::array<char, 512> sink;
  while (!ec && sock->is_open())
    co_await sock->async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
  deadline.cancel();
  sock->close(ec);
}

template <class Acceptor>
static asio::awaitable<void> accept_loop(Server& server, Acceptor& acceptor, std::atomic<bool>& stopping) {
  while (!stopping) {
    // One I/O thread runs every handler in turn: a strand would only add its queue, its lock and
    // a heap copy of itself in every pending operation (Asio's type-erased executor cannot hold a
    // strand inline).
    asio::any_io_executor strand = server.threads() == 1 ? asio::any_io_executor(server.io().get_executor())
                                                         : asio::any_io_executor(asio::make_strand(server.io()));
    boost::system::error_code ec;
    auto sock = co_await acceptor.async_accept(strand, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopping || ec == asio::error::operation_aborted) break;
      // EMFILE and friends: back off briefly instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer t(server.io(), 100ms);
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    // Read per connection: a reload changes it for the next client.
    const std::uint32_t max_clients = server.routes()->config->limits.max_clients;
    if (server.counters().clients_now >= static_cast<std::int64_t>(max_clients)) {
      spdlog::warn("refusing a client: {} clients connected (limit)", max_clients);
      asio::co_spawn(strand, refuse_client(std::move(sock), max_clients), asio::detached);
      continue;
    }
    asio::co_spawn(strand, run_session(server, std::move(sock)),
                   [](std::exception_ptr e) { log_exception(e, "client session"); });
  }
}

void Server::start() {
  auto rt = routes();
  if (!rt->config->listen.tcp.empty()) open_tcp(rt->config->listen.tcp);
  if (!rt->config->listen.unix.empty()) open_unix(rt->config->listen.unix);
  for (auto& [key, pool] : rt->pools) {
    pool->start();
    spdlog::info("bind {}: {} (pool max {}, min {})", key, pool->config().url.redacted(),
                 pool->config().pool.max, pool->config().pool.min);
  }
  if (!rt->config->metrics_listen.empty()) {
    metrics_ = std::make_unique<MetricsServer>(io_, [this] { return metrics_snapshot(); });
    metrics_->start(rt->config->metrics_listen);
    spdlog::info("metrics on http://{}/metrics (port {})", rt->config->metrics_listen, metrics_->port());
  }
  listening_ = true;
  if (rt->config->stats_interval.count() > 0) asio::co_spawn(io_, stats_lines(), asio::detached);
  asio::co_spawn(io_, trim_memory(), asio::detached);
  if (tcp_acceptor_)
    asio::co_spawn(io_, accept_loop(*this, *tcp_acceptor_, stopping_),
                   [](std::exception_ptr e) { log_exception(e, "tcp listener"); });
  if (unix_acceptor_)
    asio::co_spawn(io_, accept_loop(*this, *unix_acceptor_, stopping_),
                   [](std::exception_ptr e) { log_exception(e, "unix listener"); });
}

std::uint64_t Server::add_session(std::function<void(bool)> closer, std::shared_ptr<ClientInfo> info,
                                  EndTransactions end_transactions, Kill kill) {
  std::lock_guard lock(sessions_mu_);
  auto id = next_session_++;
  info->id = id;
  sessions_.emplace(id, SessionEntry{std::move(closer), std::move(info), std::move(end_transactions), std::move(kill)});
  if (stopping_) sessions_[id].closer(false);
  return id;
}

void Server::remove_session(std::uint64_t id) {
  std::lock_guard lock(sessions_mu_);
  sessions_.erase(id);
}

void Server::set_allocator_busy(bool busy) {
  std::lock_guard lock(allocator_mu_);
  if (allocator_idle_.load(std::memory_order_relaxed) != busy) return;  // already there
  allocator_idle_.store(!busy, std::memory_order_relaxed);
  if (memory_hooks_.busy) memory_hooks_.busy(busy);
}

asio::awaitable<void> Server::trim_memory() {
  // glibc keeps freed memory in its heaps; after clients leave, give it back (a burst of 10,000
  // clients must not pin its memory for the daemon's life). Cheap, and only after departures.
  asio::steady_timer timer(io_);
  std::int64_t last = counters_.clients_now.load();
  bool left_before = false;
  while (!stopping_) {
    timer.expires_after(1s);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_) break;
    if (!request_seen_.exchange(false, std::memory_order_relaxed)) set_allocator_busy(false);
    const std::int64_t now = counters_.clients_now.load();
    // Once more on the tick after the departures stop: a session counted out may still have
    // been freeing its memory at the first trim.
    const bool left = now < last;
    if (left || left_before) {
      malloc_trim(0);
      if (memory_hooks_.release) memory_hooks_.release();
    }
    left_before = left;
    last = now;
  }
}

asio::awaitable<void> Server::stats_lines() {
  asio::steady_timer timer(io_);
  while (!stopping_) {
    timer.expires_after(routes()->config->stats_interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_ || routes()->config->stats_interval.count() == 0) break;
    for (const auto& b : metrics_snapshot().binds) {
      spdlog::info("stats bind {}: open {} in_use {} idle {} pinned {} waiting {}; queries {} errors {} p50 {}ms p99 {}ms",
                   b.key, b.pool.open, b.pool.in_use, b.pool.idle, b.pool.pinned, b.pool.waiting,
                   b.stats->queries.load(), b.stats->errors.load(), b.stats->latency.quantile(0.5) * 1000,
                   b.stats->latency.quantile(0.99) * 1000);
    }
  }
}

MetricsSnapshot Server::metrics_snapshot() {
  MetricsSnapshot m;
  auto rt = routes();
  for (const auto& [key, pool] : rt->pools) {
    BindMetrics b;
    b.key = key;
    b.backend = std::string(backend_name(pool->config().url.backend));
    b.pool = pool->stats();
    b.pool_max = pool->config().pool.max;
    b.reachable = !b.pool.backend_down;
    b.stats = stats().get(key);
    m.binds.push_back(std::move(b));
  }
  m.clients_now = counters_.clients_now;
  m.clients_total = counters_.clients_total;
  m.reloads_ok = counters_.reloads_ok;
  m.reloads_failed = counters_.reloads_failed;
  m.config_loaded = true;
  m.listeners_up = listening_;
  m.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  m.process = read_process_metrics();
  m.version = BINDS_VERSION;
  return m;
}

void Server::run() {
  std::vector<std::thread> threads;
  for (int i = 1; i < threads_; ++i) threads.emplace_back([this] { io_.run(); });
  io_.run();
  for (auto& t : threads) t.join();
  // Pools go before the io_context they post to; let their last posted handlers run first.
  engine_.set_routes(nullptr);
  io_.restart();
  io_.poll();
}

asio::awaitable<void> Server::drain_and_stop() {
  auto deadline = std::chrono::steady_clock::now() + routes()->config->shutdown_grace;
  for (;;) {
    bool empty;
    {
      std::lock_guard lock(sessions_mu_);
      empty = sessions_.empty();
    }
    if (empty) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("shutdown: cutting clients that did not finish within the grace period");
      {
        std::lock_guard lock(sessions_mu_);
        for (auto& [id, entry] : sessions_) entry.closer(true);
      }
      // Cut sessions roll back and release their connections; give that a moment.
      auto cut = std::chrono::steady_clock::now() + 2s;
      for (;;) {
        {
          std::lock_guard lock(sessions_mu_);
          if (sessions_.empty()) break;
        }
        if (std::chrono::steady_clock::now() >= cut) break;
        stop_timer_.expires_after(20ms);
        boost::system::error_code ec;
        co_await stop_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      break;
    }
    stop_timer_.expires_after(20ms);
    boost::system::error_code ec;
    co_await stop_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  for (auto& [key, pool] : routes()->pools) pool->stop();
  io_.stop();
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  asio::post(io_, [this] {
    spdlog::info("shutting down");
    listening_ = false;  // /readyz turns 503 so load balancers stop sending clients
    if (metrics_) metrics_->stop();
    boost::system::error_code ec;
    if (tcp_acceptor_) tcp_acceptor_->close(ec);
    if (unix_acceptor_) {
      unix_acceptor_->close(ec);
      std::error_code fec;
      fs::remove(unix_path_, fec);
    }
    {
      std::lock_guard lock(sessions_mu_);
      for (auto& [id, entry] : sessions_) entry.closer(false);
    }
    asio::co_spawn(io_, drain_and_stop(), asio::detached);
  });
}

}  // namespace binds::server
