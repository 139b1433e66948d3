// The Prometheus renderer and the HTTP metrics/health listener. No database: snapshots are built
// by hand and the HTTP client is plain Asio, so the tests see exactly the bytes on the wire.

#include "server/metrics.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

namespace binds::server {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text))
    if (l == line) return true;
  return false;
}

MetricsSnapshot sample_snapshot() {
  MetricsSnapshot s;
  s.clients_now = 3;
  s.clients_total = 42;
  s.reloads_ok = 2;
  s.reloads_failed = 1;
  s.uptime_seconds = 12.5;

  BindMetrics pg;
  pg.key = "users";
  pg.backend = "postgresql";
  pg.pool.open = 4;
  pg.pool.connecting = 1;
  pg.pool.resetting = 1;
  pg.pool.closing = 2;
  pg.pool.closed_broken = 3;
  pg.pool.idle = 1;
  pg.pool.in_use = 2;
  pg.pool.pinned = 1;
  pg.pool.waiting = 5;
  pg.pool.connects = 7;
  pg.pool.connect_failures = 1;
  pg.pool.acquire_timeouts = 3;
  pg.stats = std::make_shared<BindStats>();
  pg.stats->queries = 100;
  pg.stats->bytes_out = 123456;
  pg.stats->bytes_in = 4321;
  pg.stats->commits = 6;
  pg.stats->resets = 11;
  pg.stats->rollbacks = 2;
  pg.pool_max = 10;
  pg.stats->error(protocol::ErrorCode::sql_error);
  pg.stats->error(protocol::ErrorCode::sql_error);
  pg.stats->error(protocol::ErrorCode::pool_timeout);
  using std::chrono::microseconds;
  pg.stats->latency.observe(microseconds(100));     // le 0.0005
  pg.stats->latency.observe(microseconds(700));     // le 0.001
  pg.stats->latency.observe(microseconds(700));     // le 0.001
  pg.stats->latency.observe(std::chrono::seconds(3));   // le 5
  pg.stats->latency.observe(std::chrono::seconds(60));  // +Inf only
  s.binds.push_back(pg);

  BindMetrics lite;
  lite.key = "cache";
  lite.backend = "sqlite";
  lite.reachable = false;
  lite.stats = std::make_shared<BindStats>();
  s.binds.push_back(lite);
  return s;
}

TEST(RenderPrometheus, ScalarsAndCounters) {
  auto text = render_prometheus(sample_snapshot());
  EXPECT_TRUE(has_line(text, "# HELP binds_up 1 while bindsd is running.")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE binds_up gauge"));
  EXPECT_TRUE(has_line(text, "binds_up 1"));
  EXPECT_TRUE(has_line(text, "binds_uptime_seconds 12.5"));
  EXPECT_TRUE(has_line(text, "binds_clients 3"));
  EXPECT_TRUE(has_line(text, "# TYPE binds_clients_total counter"));
  EXPECT_TRUE(has_line(text, "binds_clients_total 42"));
  EXPECT_TRUE(has_line(text, "binds_reloads_total{result=\"ok\"} 2"));
  EXPECT_TRUE(has_line(text, "binds_reloads_total{result=\"failed\"} 1"));
  EXPECT_TRUE(has_line(text, "# TYPE binds_queries_total counter"));
  EXPECT_TRUE(has_line(text, "binds_queries_total{bind=\"users\"} 100"));
  EXPECT_TRUE(has_line(text, "binds_queries_total{bind=\"cache\"} 0"));
  EXPECT_TRUE(has_line(text, "binds_bytes_out_total{bind=\"users\"} 123456"));
  EXPECT_TRUE(has_line(text, "binds_pool_connects_total{bind=\"users\"} 7"));
  EXPECT_TRUE(has_line(text, "binds_pool_connect_failures_total{bind=\"users\"} 1"));
  EXPECT_TRUE(has_line(text, "binds_pool_acquire_timeouts_total{bind=\"users\"} 3"));
}

TEST(RenderPrometheus, BuildInfoPoolMaxTransactionsBytesIn) {
  auto snap = sample_snapshot();
  snap.version = "9.8.7";
  auto text = render_prometheus(snap);
  EXPECT_TRUE(has_line(text, "# TYPE binds_build_info gauge")) << text;
  EXPECT_TRUE(has_line(text, "binds_build_info{version=\"9.8.7\"} 1"));
  EXPECT_TRUE(has_line(text, "binds_pool_max{bind=\"users\"} 10"));
  EXPECT_TRUE(has_line(text, "binds_pool_max{bind=\"cache\"} 0"));
  EXPECT_TRUE(has_line(text, "# TYPE binds_transactions_total counter"));
  EXPECT_TRUE(has_line(text, "binds_transactions_total{bind=\"users\",result=\"commit\"} 6"));
  EXPECT_TRUE(has_line(text, "binds_transactions_total{bind=\"users\",result=\"rollback\"} 2"));
  EXPECT_TRUE(has_line(text, "binds_bytes_in_total{bind=\"users\"} 4321"));
  EXPECT_TRUE(has_line(text, "# TYPE binds_session_resets_total counter"));
  EXPECT_TRUE(has_line(text, "binds_session_resets_total{bind=\"users\"} 11"));
  EXPECT_TRUE(has_line(text, "binds_session_resets_total{bind=\"cache\"} 0"));
  EXPECT_EQ(text.find("process_"), std::string::npos) << "no process metrics without /proc figures";
}

TEST(RenderPrometheus, ProcessMetricsWithConventionalNames) {
  auto snap = sample_snapshot();
  snap.process = ProcessMetrics{1.5, 2048, 8192, 7, 1024, 1700000000.25};
  auto text = render_prometheus(snap);
  EXPECT_TRUE(has_line(text, "# TYPE process_cpu_seconds_total counter")) << text;
  EXPECT_TRUE(has_line(text, "process_cpu_seconds_total 1.5"));
  EXPECT_TRUE(has_line(text, "process_resident_memory_bytes 2048"));
  EXPECT_TRUE(has_line(text, "process_virtual_memory_bytes 8192"));
  EXPECT_TRUE(has_line(text, "process_open_fds 7"));
  EXPECT_TRUE(has_line(text, "process_max_fds 1024"));
  EXPECT_TRUE(has_line(text, "process_start_time_seconds 1700000000.25"));
}

TEST(ProcessMetrics, ReadFromProcSelfAreThisProcesssOwn) {
  auto p = read_process_metrics();
  ASSERT_TRUE(p);
  EXPECT_GT(p->resident_bytes, 1024 * 1024);
  EXPECT_GE(p->virtual_bytes, p->resident_bytes);
  EXPECT_GE(p->open_fds, 3);  // stdin, stdout, stderr at least
  EXPECT_GE(p->max_fds, p->open_fds);
  EXPECT_GE(p->cpu_seconds, 0);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Started before now and not long ago (a test binary lives for seconds, not hours).
  EXPECT_LE(p->start_time_seconds, now + 1);
  EXPECT_GT(p->start_time_seconds, now - 3600);
  // Burn a little CPU: the counter moves.
  volatile double x = 0;
  for (int i = 0; i < 50'000'000; ++i) x = x + i * 0.5;
  EXPECT_GT(read_process_metrics()->cpu_seconds, p->cpu_seconds);
}

TEST(RenderPrometheus, LabelledGauges) {
  auto text = render_prometheus(sample_snapshot());
  EXPECT_TRUE(has_line(text, "binds_backend_reachable{bind=\"users\",backend=\"postgresql\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "binds_backend_reachable{bind=\"cache\",backend=\"sqlite\"} 0"));
  EXPECT_TRUE(has_line(text, "binds_pool_connections{bind=\"users\",state=\"open\"} 4"));
  EXPECT_TRUE(has_line(text, "binds_pool_connections{bind=\"users\",state=\"idle\"} 1"));
  EXPECT_TRUE(has_line(text, "binds_pool_connections{bind=\"users\",state=\"in_use\"} 2"));
  EXPECT_TRUE(has_line(text, "binds_pool_connections{bind=\"users\",state=\"pinned\"} 1"));
  EXPECT_TRUE(has_line(text, "binds_pool_connections{bind=\"users\",state=\"connecting\"} 1"));
  EXPECT_TRUE(has_line(text, "binds_pool_connections{bind=\"users\",state=\"resetting\"} 1"));
  EXPECT_TRUE(has_line(text, "binds_pool_connections{bind=\"users\",state=\"closing\"} 2"));
  EXPECT_TRUE(has_line(text, "binds_pool_closed_broken_total{bind=\"users\"} 3"));
  EXPECT_TRUE(has_line(text, "binds_pool_waiting{bind=\"users\"} 5"));
}

TEST(RenderPrometheus, ErrorsOnlyForNonZeroCodes) {
  auto text = render_prometheus(sample_snapshot());
  EXPECT_TRUE(has_line(text, "binds_errors_total{bind=\"users\",code=\"SQL_ERROR\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "binds_errors_total{bind=\"users\",code=\"POOL_TIMEOUT\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("code=\"TIMEOUT\"")));
  EXPECT_THAT(text, Not(HasSubstr("binds_errors_total{bind=\"cache\"")));
}

TEST(RenderPrometheus, HistogramBucketsAreCumulativeAndEndWithCount) {
  auto text = render_prometheus(sample_snapshot());
  const std::string b = "binds_query_duration_seconds_bucket{bind=\"users\",le=";
  EXPECT_TRUE(has_line(text, "# TYPE binds_query_duration_seconds histogram"));
  EXPECT_TRUE(has_line(text, b + "\"0.0005\"} 1")) << text;
  EXPECT_TRUE(has_line(text, b + "\"0.001\"} 3"));
  EXPECT_TRUE(has_line(text, b + "\"0.0025\"} 3"));
  EXPECT_TRUE(has_line(text, b + "\"2.5\"} 3"));
  EXPECT_TRUE(has_line(text, b + "\"5\"} 4"));
  EXPECT_TRUE(has_line(text, b + "\"10\"} 4"));
  EXPECT_TRUE(has_line(text, b + "\"+Inf\"} 5"));
  EXPECT_TRUE(has_line(text, "binds_query_duration_seconds_count{bind=\"users\"} 5"));
  EXPECT_TRUE(has_line(text, "binds_query_duration_seconds_sum{bind=\"users\"} 63.0015"));
  EXPECT_TRUE(has_line(text, "binds_pool_wait_seconds_bucket{bind=\"cache\",le=\"+Inf\"} 0"));
  EXPECT_TRUE(has_line(text, "binds_pool_wait_seconds_count{bind=\"cache\"} 0"));

  // Every bucket series of every histogram: non-decreasing, bounds increasing, +Inf last and == _count.
  std::regex bucket_re(R"re(^(\w+)_bucket\{bind="(\w+)",le="([^"]+)"\} (\d+)$)re");
  std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>> series;
  for (const auto& l : lines_of(text)) {
    std::smatch m;
    if (std::regex_match(l, m, bucket_re)) series[m[1].str() + "|" + m[2].str()].emplace_back(m[3], std::stoull(m[4]));
  }
  ASSERT_EQ(series.size(), 4u);
  for (const auto& [name, buckets] : series) {
    ASSERT_EQ(buckets.size(), Histogram::kBounds.size() + 1) << name;
    for (std::size_t i = 1; i < buckets.size(); ++i) {
      EXPECT_GE(buckets[i].second, buckets[i - 1].second) << name;
      if (i + 1 < buckets.size()) {
        EXPECT_GT(std::stod(buckets[i].first), std::stod(buckets[i - 1].first)) << name;
      }
    }
    EXPECT_EQ(buckets.back().first, "+Inf") << name;
    auto family = name.substr(0, name.find('|'));
    auto bind = name.substr(name.find('|') + 1);
    EXPECT_TRUE(has_line(text, family + "_count{bind=\"" + bind + "\"} " + std::to_string(buckets.back().second)))
        << name;
  }
}

TEST(RenderPrometheus, EscapesLabelValues) {
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value(R"(a"b)"), R"(a\"b)");
  EXPECT_EQ(escape_label_value(R"(a\b)"), R"(a\\b)");
  EXPECT_EQ(escape_label_value("a\nb"), R"(a\nb)");
  EXPECT_EQ(escape_label_value("\\\"\n"), R"(\\\"\n)");

  MetricsSnapshot s;
  BindMetrics b;
  b.key = "we\"ird\\key";
  b.backend = "sqlite";
  b.stats = std::make_shared<BindStats>();
  s.binds.push_back(b);
  EXPECT_TRUE(has_line(render_prometheus(s), R"(binds_queries_total{bind="we\"ird\\key"} 0)"));
}

TEST(RenderPrometheus, FormatsValues) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(1), "1");
  EXPECT_EQ(format_value(0.0005), "0.0005");
  EXPECT_EQ(format_value(2.5), "2.5");
  EXPECT_EQ(format_value(1e-9), "1e-09");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(RenderPrometheus, EveryLineIsWellFormed) {
  auto text = render_prometheus(sample_snapshot());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const std::string label = R"([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")";
  std::regex sample_re("^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{" + label + "(," + label + ")*\\})? " +
                       R"(([+-]?[0-9][0-9eE+.\-]*|[+-]Inf|NaN)$)");
  std::regex help_re(R"(^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  std::regex type_re(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::set<std::string> typed;
  std::string current;  // family of the last TYPE line
  for (const auto& l : lines_of(text)) {
    ASSERT_FALSE(l.empty()) << "blank line in exposition";
    std::smatch m;
    if (l.rfind("# HELP ", 0) == 0) {
      EXPECT_TRUE(std::regex_match(l, help_re)) << l;
    } else if (l.rfind("# TYPE ", 0) == 0) {
      ASSERT_TRUE(std::regex_match(l, m, type_re)) << l;
      EXPECT_TRUE(typed.insert(m[1]).second) << "family declared twice: " << l;
      current = m[1];
    } else {
      EXPECT_TRUE(std::regex_match(l, sample_re)) << l;
      // Samples of a family are contiguous: each belongs to the family declared last.
      EXPECT_EQ(l.rfind(current, 0), 0u) << l << " outside its family " << current;
    }
  }
  EXPECT_EQ(typed.size(), 23u);  // process_* families come only with /proc figures
}

TEST(Readiness, BodyListsBindsAndReachability) {
  auto s = sample_snapshot();
  EXPECT_TRUE(is_ready(s));
  EXPECT_EQ(render_readiness(s),
            "{\"ready\":true,\"config_loaded\":true,\"listeners_up\":true,\"binds\":["
            "{\"bind\":\"users\",\"backend\":\"postgresql\",\"reachable\":true},"
            "{\"bind\":\"cache\",\"backend\":\"sqlite\",\"reachable\":false}]}\n");
  s.listeners_up = false;
  EXPECT_FALSE(is_ready(s));
  EXPECT_THAT(render_readiness(s), StartsWith("{\"ready\":false,"));
}

// ---------------------------------------------------------------------------------------------
// HTTP

class MetricsHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_ = sample_snapshot();
    server_ = std::make_unique<MetricsServer>(io_, [this] {
      std::lock_guard lock(mu_);
      return snapshot_;
    });
    server_->start("127.0.0.1:0");
    ASSERT_NE(server_->port(), 0);
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  void TearDown() override {
    server_->stop();
    work_.reset();
    for (auto& t : threads_) t.join();  // returns only once every connection has ended
    server_.reset();
  }

  void set_snapshot(MetricsSnapshot s) {
    std::lock_guard lock(mu_);
    snapshot_ = std::move(s);
  }

  tcp::socket connect() {
    tcp::socket sock(client_io_);
    sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    timeval tv{5, 0};  // a hung server fails the test instead of hanging it
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return sock;
  }
  // Sends raw bytes and reads until the server closes (or 5 s pass).
  std::string exchange(const std::string& raw) {
    auto sock = connect();
    boost::system::error_code ec;
    asio::write(sock, asio::buffer(raw), ec);
    return read_all(sock);
  }
  static std::string read_all(tcp::socket& sock) {
    std::string out;
    char buf[4096];
    for (;;) {
      boost::system::error_code ec;
      auto n = sock.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec) break;
    }
    return out;
  }
  static std::string get(const std::string& path) {
    return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  }
  static std::string body_of(const std::string& response) {
    auto p = response.find("\r\n\r\n");
    return p == std::string::npos ? "" : response.substr(p + 4);
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  asio::io_context client_io_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  MetricsSnapshot snapshot_;
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsHttp, Metrics) {
  auto r = exchange(get("/metrics"));
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_EQ(body_of(r), render_prometheus(sample_snapshot()));
}

TEST_F(MetricsHttp, Healthz) {
  auto r = exchange(get("/healthz"));
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(body_of(r), "ok\n");
}

TEST_F(MetricsHttp, ReadyzReadyEvenWithABackendDown) {
  auto r = exchange(get("/readyz"));
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: application/json"));
  EXPECT_THAT(body_of(r), HasSubstr("{\"bind\":\"cache\",\"backend\":\"sqlite\",\"reachable\":false}"));
}

TEST_F(MetricsHttp, ReadyzNotReady) {
  auto s = sample_snapshot();
  s.config_loaded = false;
  set_snapshot(s);
  auto r = exchange(get("/readyz"));
  EXPECT_THAT(r, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(body_of(r), StartsWith("{\"ready\":false,\"config_loaded\":false,"));

  s.config_loaded = true;
  s.listeners_up = false;
  set_snapshot(s);
  EXPECT_THAT(exchange(get("/readyz")), StartsWith("HTTP/1.1 503 "));
}

TEST_F(MetricsHttp, QueryStringIgnored) {
  EXPECT_THAT(exchange(get("/healthz?verbose=1")), StartsWith("HTTP/1.1 200 "));
}

TEST_F(MetricsHttp, UnknownPathIs404) {
  EXPECT_THAT(exchange(get("/nope")), StartsWith("HTTP/1.1 404 Not Found\r\n"));
}

TEST_F(MetricsHttp, NonGetIs405) {
  auto r = exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(r, HasSubstr("Allow: GET\r\n"));
  // With a body the server answers without reading it, then closes.
  r = exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(r, HasSubstr("Connection: close\r\n"));
}

TEST_F(MetricsHttp, GetWithBodyIs400) {
  auto r = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 400 "));
}

TEST_F(MetricsHttp, OversizedHeaderIs400OrClose) {
  auto r = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n");
  if (!r.empty()) {
    EXPECT_THAT(r, StartsWith("HTTP/1.1 400 "));
  }
  EXPECT_THAT(exchange(get("/healthz")), StartsWith("HTTP/1.1 200 "));
}

TEST_F(MetricsHttp, GarbageClosesAndServerCarriesOn) {
  std::string garbage = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n";  // a TLS ClientHello start
  auto r = exchange(garbage);
  if (!r.empty()) {
    EXPECT_THAT(r, StartsWith("HTTP/1.1 400 "));
  }
  r = exchange("\r\n\r\n\r\nNOT HTTP AT ALL\r\n\r\n");
  if (!r.empty()) {
    EXPECT_THAT(r, StartsWith("HTTP/1.1 400 "));
  }
  EXPECT_THAT(exchange(get("/healthz")), StartsWith("HTTP/1.1 200 "));
}

TEST_F(MetricsHttp, KeepAliveServesSeveralRequests) {
  std::string two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + get("/nope");
  auto r = exchange(two);  // pipelined; the second asks to close
  auto first = r.find("HTTP/1.1 200 OK\r\n");
  auto second = r.find("HTTP/1.1 404 Not Found\r\n");
  EXPECT_EQ(first, 0u) << r;
  EXPECT_NE(second, std::string::npos) << r;

  // One request at a time on the same connection.
  auto sock = connect();
  for (int i = 0; i < 3; ++i) {
    std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    asio::write(sock, asio::buffer(req));
    std::string got;
    char buf[1024];
    while (got.find("ok\n") == std::string::npos) {
      boost::system::error_code ec;
      auto n = sock.read_some(asio::buffer(buf), ec);
      ASSERT_FALSE(ec) << ec.message() << " after " << got;
      got.append(buf, n);
    }
    EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(got, Not(HasSubstr("Connection: close")));
  }
}

TEST_F(MetricsHttp, Http10ClosesByDefault) {
  auto r = exchange("GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.0 200 OK\r\n"));
}

TEST_F(MetricsHttp, SnapshotExceptionIs500) {
  // A second listener whose snapshot throws; it must answer 500 and carry on.
  MetricsServer failing(io_, []() -> MetricsSnapshot { throw std::runtime_error("boom"); });
  failing.start("127.0.0.1:0");
  tcp::socket sock(client_io_);
  sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), failing.port()));
  asio::write(sock, asio::buffer(get("/metrics")));
  EXPECT_THAT(read_all(sock), StartsWith("HTTP/1.1 500 "));
  tcp::socket sock2(client_io_);
  sock2.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), failing.port()));
  asio::write(sock2, asio::buffer(get("/healthz")));
  EXPECT_THAT(read_all(sock2), StartsWith("HTTP/1.1 200 "));
  failing.stop();
}

TEST_F(MetricsHttp, StopClosesIdleConnections) {
  auto sock = connect();
  std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(sock, asio::buffer(req));
  char buf[1024];
  auto n = sock.read_some(asio::buffer(buf));
  ASSERT_THAT(std::string(buf, n), StartsWith("HTTP/1.1 200 "));
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  boost::system::error_code ec;
  sock.read_some(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));  // not the 10 s timeout
  // The acceptor closes on its own strand, possibly just after the connection did.
  bool refused = false;
  for (int i = 0; i < 40 && !refused; ++i) {
    tcp::socket late(client_io_);
    late.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()), ec);
    refused = static_cast<bool>(ec);
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(refused) << "acceptor still open after stop()";
}

TEST(MetricsServerStart, BadListenAddressesThrow) {
  asio::io_context io;
  auto snap = [] { return MetricsSnapshot{}; };
  for (std::string bad : {"nonsense", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", "no.such.host.invalid:9000"}) {
    MetricsServer m(io, snap);
    try {
      m.start(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr("metrics.listen")) << bad;
    }
  }
  MetricsServer first(io, snap);
  first.start("127.0.0.1:0");
  MetricsServer second(io, snap);
  try {
    second.start("127.0.0.1:" + std::to_string(first.port()));
    ADD_FAILURE() << "bound a port already in use";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot listen on"));
  }
}

}  // namespace
}  // namespace binds::server
