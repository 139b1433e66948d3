// binds_loadgen: one load generator for every contender of the benchmark (bench/run.sh), so they are
// all measured the same way. A single-threaded, level-triggered epoll loop drives N non-blocking
// connections; each keeps D requests in flight (D = 1: request/response, D > 1: pipelined). A
// request's latency runs from the moment it is queued for sending to its final reply; latencies of
// replies that arrive inside the measurement window (after the warm-up) go into a log-linear
// histogram. One line of JSON goes to stdout; diagnostics go to stderr.
//
// Modes:
//   binds  bindsd's native protocol (PROTOCOL.md), encoded and decoded with binds_protocol
//   pq     libpq in non-blocking mode; D > 1 uses pipeline mode (one Sync per query, so each query
//          is its own implicit transaction, like a bindsd request). PostgreSQL or PgBouncer.
//   mysql  MariaDB Connector/C non-blocking API (*_start/*_cont); D must be 1.
//
// Workloads:
//   query   for --duration seconds after --warmup seconds (default)
//   stream  --count sequential runs of a big query on one connection; seconds per stream
//   idle    (binds) open --conns connections, HELLO, hold them, close them; with --watch-pid the
//           server's RSS before, while holding and after closing
//
// Connection set-up is sequential and not measured. The hot path does not allocate in binds mode
// (a pre-encoded QUERY frame is copied and its request id patched); libpq and Connector/C allocate
// their own result objects, as they do for any application.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#if BINDS_LOADGEN_MYSQL
#include <mysql.h>
#endif

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace {

namespace proto = binds::protocol;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "binds_loadgen: %s\n", why.c_str());
  std::exit(2);
}

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// ------------------------------------------------------------------------------------- options

struct Options {
  std::string mode;               // binds | pq | mysql
  std::string addr;               // binds: unix:PATH | tcp:HOST:PORT | HOST:PORT; pq: conninfo/URL;
                                  // mysql: mysql://user:pass@host:port/db
  std::string workload = "query"; // query | stream | idle
  int conns = 1;
  int depth = 1;
  double duration = 5.0;
  double warmup = 1.0;
  int count = 1;                  // stream: number of streams
  bool decode_rows = true;        // stream, binds: decode ROWS bodies as a client would
  std::string query = "SELECT 1";
  std::optional<std::string> bind;
  std::vector<std::string> params;
  double drain_timeout = 10.0;
  double connect_timeout = 10.0;
  int watch_pid = 0;              // idle: report this process's RSS
  double settle = 1.5;            // idle: wait before each RSS reading
  std::string label;
  int max_error_lines = 5;
};

void usage(int code) {
  std::fprintf(code ? stderr : stdout, "%s",
               "usage: binds_loadgen --mode binds|pq|mysql --addr ADDR [options]\n"
               "  --addr ADDR          binds: unix:PATH, tcp:HOST:PORT or HOST:PORT\n"
               "                       pq: a libpq conninfo string or postgresql:// URL\n"
               "                       mysql: mysql://USER:PASSWORD@HOST:PORT/DB\n"
               "  --workload W         query (default), stream or idle\n"
               "  --conns N            connections (default 1)\n"
               "  --depth D            requests in flight per connection (default 1)\n"
               "  --duration S         measured seconds (default 5)\n"
               "  --warmup S           seconds before measuring (default 1)\n"
               "  --count K            stream: sequential streams (default 1)\n"
               "  --no-decode          stream, binds: count frames, do not decode the rows\n"
               "  --query SQL          statement (default \"SELECT 1\")\n"
               "  --param V            a parameter (repeatable); an integer-looking V is sent as int64\n"
               "                       in binds mode, everything goes as text to libpq\n"
               "  --bind KEY           binds: bind key (default: the server's default bind)\n"
               "  --watch-pid PID      idle: report PID's VmRSS before, holding and after\n"
               "  --settle S           idle: seconds to wait before each RSS reading (default 1.5)\n"
               "  --label TEXT         copied into the JSON output\n");
  std::fprintf(code ? stderr : stdout, "mysql mode: %s\n",
               BINDS_LOADGEN_MYSQL ? "available" : "not built (libmariadb-dev was missing)");
  std::exit(code);
}

double parse_double(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(d >= 0)) die(flag + ": not a non-negative number: " + v);
  return d;
}

int parse_int(const std::string& flag, const std::string& v, int min) {
  int out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out < min)
    die(flag + ": not an integer >= " + std::to_string(min) + ": " + v);
  return out;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") usage(0);
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + ": missing value");
      return argv[++i];
    };
    if (a == "--mode") o.mode = value();
    else if (a == "--addr") o.addr = value();
    else if (a == "--workload") o.workload = value();
    else if (a == "--conns") o.conns = parse_int(a, value(), 1);
    else if (a == "--depth") o.depth = parse_int(a, value(), 1);
    else if (a == "--duration") o.duration = parse_double(a, value());
    else if (a == "--warmup") o.warmup = parse_double(a, value());
    else if (a == "--count") o.count = parse_int(a, value(), 1);
    else if (a == "--query") o.query = value();
    else if (a == "--param") o.params.push_back(value());
    else if (a == "--bind") o.bind = value();
    else if (a == "--watch-pid") o.watch_pid = parse_int(a, value(), 1);
    else if (a == "--settle") o.settle = parse_double(a, value());
    else if (a == "--drain-timeout") o.drain_timeout = parse_double(a, value());
    else if (a == "--connect-timeout") o.connect_timeout = parse_double(a, value());
    else if (a == "--label") o.label = value();
    else if (a == "--no-decode") o.decode_rows = false;
    else die("unknown option " + a + " (--help lists them)");
  }
  if (o.mode != "binds" && o.mode != "pq" && o.mode != "mysql") die("--mode must be binds, pq or mysql");
  if (o.addr.empty()) die("--addr is required");
  if (o.workload != "query" && o.workload != "stream" && o.workload != "idle")
    die("--workload must be query, stream or idle");
  if (o.mode == "mysql" && o.depth != 1) die("--mode mysql supports only --depth 1");
  if (o.workload == "idle" && o.mode != "binds") die("--workload idle is for --mode binds");
  if (o.workload == "stream") {
    o.conns = 1;
    o.depth = 1;
    o.warmup = 0;
  }
#if !BINDS_LOADGEN_MYSQL
  if (o.mode == "mysql") die("built without MariaDB Connector/C (libmariadb-dev was missing)");
#endif
  return o;
}

// ------------------------------------------------------------------------------------ histogram

// Log-linear histogram of nanoseconds: exact below 128 ns, then every power of two split into 128
// buckets (under 0.8% relative error). Fixed size, so recording never allocates.
class Histogram {
 public:
  void record(std::int64_t v) {
    if (v < 0) v = 0;
    ++counts_[index(static_cast<std::uint64_t>(v))];
    ++total_;
    sum_ += static_cast<double>(v);
    max_ = std::max(max_, v);
  }
  std::uint64_t total() const { return total_; }
  double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0.0; }
  std::int64_t max() const { return max_; }
  // The value at quantile q (0..1): the midpoint of the bucket holding the ceil(q*n)-th sample.
  double quantile(double q) const {
    if (total_ == 0) return 0.0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return midpoint(i);
    }
    return static_cast<double>(max_);
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr std::uint64_t kSub = 1u << kSubBits;

  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    const int e = 63 - __builtin_clzll(v);  // >= kSubBits
    const int shift = e - kSubBits;
    const std::uint64_t sub = (v >> shift) - kSub;
    return static_cast<std::size_t>((shift + 1) * kSub + sub);
  }
  static double midpoint(std::size_t i) {
    const std::uint64_t b = i / kSub, sub = i % kSub;
    if (b == 0) return static_cast<double>(sub);
    const int shift = static_cast<int>(b) - 1;
    const double low = static_cast<double>((kSub + sub) << shift);
    return low + static_cast<double>((std::uint64_t{1} << shift) - 1) / 2.0;
  }

  std::array<std::uint64_t, (64 - kSubBits + 1) * kSub> counts_{};
  std::uint64_t total_ = 0;
  double sum_ = 0;
  std::int64_t max_ = 0;
};

// ------------------------------------------------------------------------------------------- run

// Fixed-capacity FIFO of the requests in flight on one connection (replies come back in order:
// per bind in bindsd, per connection in libpq and Connector/C).
struct Pending {
  std::uint32_t id = 0;
  std::int64_t sent_ns = 0;
};

class Ring {
 public:
  explicit Ring(int capacity) : slots_(static_cast<std::size_t>(capacity)) {}
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == slots_.size(); }
  std::size_t size() const { return size_; }
  void push(Pending p) {
    slots_[(head_ + size_) % slots_.size()] = p;
    ++size_;
  }
  const Pending& front() const { return slots_[head_]; }
  Pending pop() {
    Pending p = slots_[head_];
    head_ = (head_ + 1) % slots_.size();
    --size_;
    return p;
  }

 private:
  std::vector<Pending> slots_;
  std::size_t head_ = 0, size_ = 0;
};

// State shared by every connection of one run. Single-threaded.
struct Run {
  const Options& opt;
  int epoll_fd = -1;
  std::int64_t measure_start = 0;
  std::int64_t measure_end = std::numeric_limits<std::int64_t>::max();
  bool issuing = true;
  std::int64_t to_issue = -1;  // stream: requests left to issue; -1 = unlimited
  Histogram hist;
  std::uint64_t measured = 0;  // replies inside the window
  std::uint64_t measured_errors = 0;
  std::uint64_t total = 0;     // every final reply, warm-up and drain included
  std::uint64_t errors = 0;
  std::uint64_t rows = 0;
  std::uint64_t in_flight = 0;
  std::vector<double> stream_seconds;
  int error_lines = 0;
  int dead_conns = 0;

  explicit Run(const Options& o) : opt(o) {}

  bool may_issue() {
    if (!issuing) return false;
    if (to_issue == 0) return false;
    if (to_issue > 0) --to_issue;
    return true;
  }
  void on_sent() { ++in_flight; }
  void on_reply(std::int64_t sent_ns, bool ok) {
    const std::int64_t now = now_ns();
    --in_flight;
    ++total;
    if (!ok) ++errors;
    if (now >= measure_start && now < measure_end) {
      ++measured;
      if (!ok) ++measured_errors;
      hist.record(now - sent_ns);
    }
    if (opt.workload == "stream") stream_seconds.push_back(static_cast<double>(now - sent_ns) / 1e9);
  }
  void report_error(const std::string& what) {
    if (error_lines++ < opt.max_error_lines) std::fprintf(stderr, "binds_loadgen: %s\n", what.c_str());
  }
};

class Conn {
 public:
  explicit Conn(Run& run) : run_(run), inflight_(run.opt.depth) {}
  virtual ~Conn() = default;
  // Issue requests until D are in flight (or the run stops issuing), then flush.
  virtual void pump() = 0;
  virtual void on_event(std::uint32_t events) = 0;
  virtual int fd() const = 0;
  bool dead() const { return dead_; }
  std::size_t in_flight() const { return inflight_.size(); }

  void watch(std::uint32_t events) {
    if (registered_ && events == events_) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = this;
    if (epoll_ctl(run_.epoll_fd, registered_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd(), &ev) != 0)
      die(std::string("epoll_ctl: ") + std::strerror(errno));
    registered_ = true;
    events_ = events;
  }
  void unwatch() {
    if (registered_) epoll_ctl(run_.epoll_fd, EPOLL_CTL_DEL, fd(), nullptr);
    registered_ = false;
  }

 protected:
  // The connection broke: its requests in flight count as errors and it takes no more.
  void fail(const std::string& why) {
    if (dead_) return;
    run_.report_error("connection lost: " + why);
    while (!inflight_.empty()) run_.on_reply(inflight_.pop().sent_ns, false);
    dead_ = true;
    ++run_.dead_conns;
    unwatch();
  }
  void finish_one(bool ok) {
    Pending p = inflight_.pop();
    run_.on_reply(p.sent_ns, ok);
  }

  Run& run_;
  Ring inflight_;
  bool dead_ = false;
  bool registered_ = false;
  std::uint32_t events_ = 0;
};

// Waits for fd to become ready for `events` (POLLIN/POLLOUT) during connection set-up.
bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  return r > 0;
}

// ------------------------------------------------------------------------------------ binds mode

int connect_socket(const std::string& addr) {
  std::string a = addr;
  if (a.starts_with("unix:") || (a.find('/') != std::string::npos && !a.starts_with("tcp:"))) {
    if (a.starts_with("unix:")) a = a.substr(5);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (a.size() >= sizeof sa.sun_path) die("unix socket path too long: " + a);
    std::memcpy(sa.sun_path, a.c_str(), a.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      int e = errno;
      ::close(fd);
      die("connect " + addr + ": " + std::strerror(e));
    }
    return fd;
  }
  if (a.starts_with("tcp:")) a = a.substr(4);
  auto colon = a.rfind(':');
  if (colon == std::string::npos) die("address needs a port: " + addr);
  std::string host = a.substr(0, colon), port = a.substr(colon + 1);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    die("resolve " + addr + ": " + gai_strerror(rc));
  int fd = -1;
  std::string err = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    err = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) die("connect " + addr + ": " + err);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die(std::string("write: ") + std::strerror(errno));
    off += static_cast<std::size_t>(n);
  }
}

// One read buffer for the whole (single-threaded) loop.
std::array<char, 256 * 1024> g_read_buf;

class BindsConn final : public Conn {
 public:
  // Connects, does the handshake (blocking, with a deadline), then switches to non-blocking.
  BindsConn(Run& run, const std::string& query_frame) : Conn(run), frame_template_(query_frame) {
    fd_ = connect_socket(run.opt.addr);
    write_all(fd_, proto::encode_hello(proto::Hello{{proto::kProtocolVersion}, "binds_loadgen"}));
    const int timeout_ms = static_cast<int>(run.opt.connect_timeout * 1000);
    proto::Frame f;
    for (;;) {
      auto st = decoder_.next(f);
      if (st == proto::FrameDecoder::Status::error) die("handshake: " + decoder_.error());
      if (st == proto::FrameDecoder::Status::frame) break;
      if (!wait_fd(fd_, POLLIN, timeout_ms)) die("handshake: no HELLO_OK within the connect timeout");
      ssize_t n = ::read(fd_, g_read_buf.data(), g_read_buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) die("handshake: server closed the connection");
      decoder_.feed(g_read_buf.data(), static_cast<std::size_t>(n));
    }
    std::string err;
    if (f.type() == proto::FrameType::error) {
      proto::ErrorInfo e;
      proto::decode_error(f.body, e, err);
      die("handshake refused: " + std::string(proto::error_code_name(e.code)) + ": " + e.message);
    }
    proto::HelloOk ok;
    if (f.type() != proto::FrameType::hello_ok || !proto::decode_hello_ok(f.body, ok, err))
      die("handshake: unexpected reply (" + err + ")");
    decoder_.set_max_body(ok.max_frame);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    out_.reserve(frame_template_.size() * static_cast<std::size_t>(run.opt.depth) + 64);
  }
  ~BindsConn() override {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const override { return fd_; }

  void pump() override {
    if (dead_) return;
    while (!inflight_.full() && run_.may_issue()) {
      const std::uint32_t id = next_id_++;
      if (next_id_ == 0) next_id_ = 1;  // id 0 is for connection-level frames
      const std::size_t at = out_.size();
      out_.append(frame_template_);
      auto* hdr = reinterpret_cast<unsigned char*>(out_.data() + at);
      proto::FrameHeader h = proto::decode_header(hdr);
      h.request_id = id;
      proto::encode_header(h, hdr);
      inflight_.push({id, now_ns()});
      run_.on_sent();
    }
    flush();
  }

  void on_event(std::uint32_t events) override {
    if (events & EPOLLOUT) flush();
    if (dead_) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      for (;;) {
        ssize_t n = ::read(fd_, g_read_buf.data(), g_read_buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) return fail(n == 0 ? "server closed the connection" : std::strerror(errno));
        decoder_.feed(g_read_buf.data(), static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < g_read_buf.size()) break;  // level-triggered: no extra read
      }
      handle_frames();
      pump();
    }
  }

  // Idle workload: close at once.
  void close_now() {
    unwatch();
    ::close(fd_);
    fd_ = -1;
  }

 private:
  void flush() {
    while (out_pos_ < out_.size()) {
      ssize_t n = ::write(fd_, out_.data() + out_pos_, out_.size() - out_pos_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) return fail(std::string("write: ") + std::strerror(errno));
      out_pos_ += static_cast<std::size_t>(n);
    }
    if (out_pos_ == out_.size()) {
      out_.clear();  // keeps its capacity
      out_pos_ = 0;
      watch(EPOLLIN);
    } else {
      watch(EPOLLIN | EPOLLOUT);
    }
  }

  void handle_frames() {
    for (;;) {
      auto st = decoder_.next(frame_);
      if (st == proto::FrameDecoder::Status::need_more) return;
      if (st == proto::FrameDecoder::Status::error) return fail("bad frame: " + decoder_.error());
      const auto type = frame_.type();
      if (type == proto::FrameType::columns) continue;
      if (type == proto::FrameType::rows) {
        // A client has to decode what it streams (as libpq parses rows into its PGresult), so the
        // stream workload decodes each batch unless --no-decode asks for frames only.
        if (run_.opt.workload == "stream" && run_.opt.decode_rows) {
          rows_.clear();
          if (!proto::decode_rows(frame_.body, rows_, err_)) return fail("bad ROWS frame: " + err_);
          decoded_rows_ += rows_.size();
        }
        continue;
      }
      if (type != proto::FrameType::complete && type != proto::FrameType::error)
        return fail("unexpected frame type " + std::to_string(frame_.header.type));
      if (type == proto::FrameType::error && frame_.header.request_id == 0) {
        proto::ErrorInfo e;
        proto::decode_error(frame_.body, e, err_);
        return fail("connection-level ERROR " + std::string(proto::error_code_name(e.code)) + ": " + e.message);
      }
      if (inflight_.empty() || inflight_.front().id != frame_.header.request_id)
        return fail("reply for request " + std::to_string(frame_.header.request_id) + " out of order");
      bool ok = type == proto::FrameType::complete;
      if (ok && run_.opt.workload == "stream") {
        // Decoded only here: in the query workload the reply's type is all the harness needs.
        proto::Complete c;
        if (!proto::decode_complete(frame_.body, c, err_)) return fail("bad COMPLETE frame: " + err_);
        run_.rows += static_cast<std::uint64_t>(c.row_count);
        if (run_.opt.decode_rows && decoded_rows_ != static_cast<std::uint64_t>(c.row_count))
          run_.report_error("decoded " + std::to_string(decoded_rows_) + " rows, COMPLETE says " +
                            std::to_string(c.row_count));
        decoded_rows_ = 0;
      } else if (!ok) {
        proto::ErrorInfo e;
        if (proto::decode_error(frame_.body, e, err_))
          run_.report_error("ERROR " + std::string(proto::error_code_name(e.code)) + ": " + e.message);
      }
      finish_one(ok);
    }
  }

  const std::string& frame_template_;
  int fd_ = -1;
  proto::FrameDecoder decoder_{proto::kPreHandshakeMaxFrame};
  proto::Frame frame_;
  std::string out_;
  std::size_t out_pos_ = 0;
  std::uint32_t next_id_ = 1;
  std::string err_;
  std::vector<proto::Row> rows_;  // stream: one decoded batch, reused
  std::uint64_t decoded_rows_ = 0;
};

std::string make_query_frame(const Options& o) {
  proto::QueryRequest q;
  q.bind = o.bind;
  q.sql = o.query;
  for (const auto& p : o.params) {
    std::int64_t i = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), i);
    if (!p.empty() && ec == std::errc() && end == p.data() + p.size())
      q.params.emplace_back(i);
    else
      q.params.emplace_back(p);
  }
  return proto::encode_query(0, q);  // the id is patched per request
}

// --------------------------------------------------------------------------------------- pq mode

class PqConn final : public Conn {
 public:
  PqConn(Run& run, const std::vector<const char*>& params) : Conn(run), params_(params) {
    pipeline_ = run.opt.depth > 1;
    pg_ = PQconnectStart(run.opt.addr.c_str());
    if (!pg_) die("PQconnectStart: out of memory");
    if (PQstatus(pg_) == CONNECTION_BAD) die(std::string("connect: ") + PQerrorMessage(pg_));
    const int timeout_ms = static_cast<int>(run.opt.connect_timeout * 1000);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
      if (st == PGRES_POLLING_FAILED) die(std::string("connect: ") + PQerrorMessage(pg_));
      if (!wait_fd(PQsocket(pg_), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, timeout_ms))
        die("connect: timed out");
      st = PQconnectPoll(pg_);
    }
    if (PQsetnonblocking(pg_, 1) != 0) die(std::string("PQsetnonblocking: ") + PQerrorMessage(pg_));
    if (pipeline_ && PQenterPipelineMode(pg_) != 1)
      die(std::string("PQenterPipelineMode: ") + PQerrorMessage(pg_));
  }
  ~PqConn() override {
    unwatch();
    PQfinish(pg_);
  }
  int fd() const override { return PQsocket(pg_); }

  void pump() override {
    if (dead_) return;
    bool sent = false;
    while (!inflight_.full() && run_.may_issue()) {
      // Extended protocol, text results. In pipeline mode each query gets its own Sync.
      if (PQsendQueryParams(pg_, run_.opt.query.c_str(), static_cast<int>(params_.size()), nullptr,
                            params_.empty() ? nullptr : params_.data(), nullptr, nullptr, 0) != 1)
        return fail(std::string("PQsendQueryParams: ") + PQerrorMessage(pg_));
      if (pipeline_ && PQpipelineSync(pg_) != 1)
        return fail(std::string("PQpipelineSync: ") + PQerrorMessage(pg_));
      inflight_.push({0, now_ns()});
      run_.on_sent();
      sent = true;
    }
    if (sent || (events_ & EPOLLOUT)) flush();
    else watch(EPOLLIN);
  }

  void on_event(std::uint32_t events) override {
    if (events & EPOLLOUT) flush();
    if (dead_) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      if (PQconsumeInput(pg_) != 1) return fail(std::string("PQconsumeInput: ") + PQerrorMessage(pg_));
      drain_results();
      if (!dead_) pump();
    }
  }

 private:
  void flush() {
    int r = PQflush(pg_);
    if (r < 0) return fail(std::string("PQflush: ") + PQerrorMessage(pg_));
    watch(r == 1 ? EPOLLIN | EPOLLOUT : EPOLLIN);
  }

  void drain_results() {
    int nulls = 0;
    while (!inflight_.empty() && !PQisBusy(pg_)) {
      PGresult* r = PQgetResult(pg_);
      if (!pipeline_) {
        if (!r) {  // the query is over
          finish_one(!failed_);
          failed_ = false;
          continue;
        }
        take(r);
        continue;
      }
      if (!r) {  // end of one query's results; its Sync's result follows
        if (++nulls > 1) break;
        continue;
      }
      nulls = 0;
      if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        finish_one(!failed_);
        failed_ = false;
        continue;
      }
      take(r);
    }
    if (PQstatus(pg_) == CONNECTION_BAD) fail(std::string("connection bad: ") + PQerrorMessage(pg_));
  }

  void take(PGresult* r) {
    switch (PQresultStatus(r)) {
      case PGRES_TUPLES_OK:
      case PGRES_SINGLE_TUPLE: run_.rows += static_cast<std::uint64_t>(PQntuples(r)); break;
      case PGRES_COMMAND_OK: break;
      default:
        failed_ = true;
        run_.report_error(std::string("query failed: ") + PQresStatus(PQresultStatus(r)) + ": " +
                          PQresultErrorMessage(r));
    }
    PQclear(r);
  }

  const std::vector<const char*>& params_;
  PGconn* pg_ = nullptr;
  bool pipeline_ = false;
  bool failed_ = false;
};

// ------------------------------------------------------------------------------------ mysql mode

#if BINDS_LOADGEN_MYSQL
struct MysqlUrl {
  std::string host = "127.0.0.1", user, password, db;
  unsigned port = 3306;
  std::string socket;
};

std::string pct_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

MysqlUrl parse_mysql_url(const std::string& url) {
  MysqlUrl u;
  std::string_view s = url;
  auto scheme = s.find("://");
  if (scheme == std::string_view::npos) die("mysql address must be mysql://USER:PASSWORD@HOST:PORT/DB");
  s.remove_prefix(scheme + 3);
  if (auto q = s.find('?'); q != std::string_view::npos) s = s.substr(0, q);
  if (auto at = s.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = s.substr(0, at);
    s.remove_prefix(at + 1);
    auto colon = cred.find(':');
    u.user = pct_decode(cred.substr(0, colon));
    if (colon != std::string_view::npos) u.password = pct_decode(cred.substr(colon + 1));
  }
  std::string_view hostport = s.substr(0, s.find('/'));
  if (auto slash = s.find('/'); slash != std::string_view::npos) u.db = pct_decode(s.substr(slash + 1));
  if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    u.port = static_cast<unsigned>(parse_int("port", std::string(hostport.substr(colon + 1)), 1));
    hostport = hostport.substr(0, colon);
  }
  if (!hostport.empty()) u.host = std::string(hostport);
  return u;
}

class MysqlConn final : public Conn {
 public:
  MysqlConn(Run& run, const MysqlUrl& u) : Conn(run) {
    my_ = mysql_init(nullptr);
    if (!my_) die("mysql_init failed");
    mysql_options(my_, MYSQL_OPT_NONBLOCK, nullptr);
    MYSQL* ret = nullptr;
    int st = mysql_real_connect_start(&ret, my_, u.host.c_str(), u.user.c_str(), u.password.c_str(),
                                      u.db.empty() ? nullptr : u.db.c_str(), u.port, nullptr, 0);
    const int timeout_ms = static_cast<int>(run.opt.connect_timeout * 1000);
    while (st != 0) {
      short ev = 0;
      if (st & MYSQL_WAIT_READ) ev |= POLLIN;
      if (st & MYSQL_WAIT_WRITE) ev |= POLLOUT;
      int wait_ms = timeout_ms;
      if (st & MYSQL_WAIT_TIMEOUT) wait_ms = static_cast<int>(mysql_get_timeout_value_ms(my_));
      pollfd p{mysql_get_socket(my_), ev, 0};
      int r = ::poll(&p, 1, wait_ms);
      if (r < 0 && errno == EINTR) continue;
      int happened = 0;
      if (r == 0) {
        if (!(st & MYSQL_WAIT_TIMEOUT)) die("mysql connect: timed out");
        happened = MYSQL_WAIT_TIMEOUT;
      } else {
        if (p.revents & POLLIN) happened |= MYSQL_WAIT_READ;
        if (p.revents & POLLOUT) happened |= MYSQL_WAIT_WRITE;
        if (p.revents & (POLLERR | POLLHUP)) happened |= MYSQL_WAIT_EXCEPT | MYSQL_WAIT_READ;
      }
      st = mysql_real_connect_cont(&ret, my_, happened);
    }
    if (!ret) die(std::string("mysql connect: ") + mysql_error(my_));
  }
  ~MysqlConn() override {
    unwatch();
    mysql_close(my_);
  }
  int fd() const override { return static_cast<int>(mysql_get_socket(my_)); }

  void pump() override {
    if (dead_ || state_ != State::idle) return;
    if (!run_.may_issue()) {
      watch(0);
      return;
    }
    inflight_.push({0, now_ns()});
    run_.on_sent();
    state_ = State::querying;
    const auto& q = run_.opt.query;
    step(mysql_real_query_start(&query_ret_, my_, q.data(), q.size()));
  }

  void on_event(std::uint32_t events) override {
    if (dead_ || state_ == State::idle) return;
    int happened = 0;
    if (events & EPOLLIN) happened |= MYSQL_WAIT_READ;
    if (events & EPOLLOUT) happened |= MYSQL_WAIT_WRITE;
    if (events & (EPOLLERR | EPOLLHUP)) happened |= MYSQL_WAIT_EXCEPT | MYSQL_WAIT_READ;
    if (state_ == State::querying) step(mysql_real_query_cont(&query_ret_, my_, happened));
    else step(mysql_store_result_cont(&result_, my_, happened));
  }

 private:
  enum class State { idle, querying, storing };

  // Advances the state machine after a *_start/*_cont call returned `st` (0 = that call is done).
  void step(int st) {
    for (;;) {
      if (st != 0) {
        std::uint32_t ev = 0;
        if (st & MYSQL_WAIT_READ) ev |= EPOLLIN;
        if (st & MYSQL_WAIT_WRITE) ev |= EPOLLOUT;
        watch(ev);
        return;
      }
      if (state_ == State::querying) {
        if (query_ret_ != 0) {
          run_.report_error(std::string("query failed: ") + mysql_error(my_));
          return done(false);
        }
        state_ = State::storing;
        st = mysql_store_result_start(&result_, my_);
        continue;
      }
      // storing
      bool ok = true;
      if (result_) {
        run_.rows += mysql_num_rows(result_);
        mysql_free_result(result_);  // a stored result needs no more I/O
        result_ = nullptr;
      } else if (mysql_field_count(my_) != 0) {
        run_.report_error(std::string("store result failed: ") + mysql_error(my_));
        ok = false;
      }
      return done(ok);
    }
  }

  void done(bool ok) {
    state_ = State::idle;
    finish_one(ok);
    if (mysql_errno(my_) == 2013 || mysql_errno(my_) == 2006) return fail(mysql_error(my_));
    pump();
  }

  MYSQL* my_ = nullptr;
  State state_ = State::idle;
  int query_ret_ = 0;
  MYSQL_RES* result_ = nullptr;
};
#endif

// ---------------------------------------------------------------------------------- /proc probes

long proc_status_kb(int pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.starts_with(key)) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  }
  return -1;
}

void sleep_s(double s) {
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

// ------------------------------------------------------------------------------------------ JSON

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// ------------------------------------------------------------------------------------------ main

int run_idle(const Options& opt) {
  Run run(opt);
  const long before = opt.watch_pid ? proc_status_kb(opt.watch_pid, "VmRSS") : -1;
  const std::string frame;  // no queries are sent
  std::vector<std::unique_ptr<BindsConn>> conns;
  conns.reserve(static_cast<std::size_t>(opt.conns));
  const std::int64_t t0 = now_ns();
  for (int i = 0; i < opt.conns; ++i) conns.push_back(std::make_unique<BindsConn>(run, frame));
  const double connect_s = static_cast<double>(now_ns() - t0) / 1e9;
  sleep_s(opt.settle);
  const long holding = opt.watch_pid ? proc_status_kb(opt.watch_pid, "VmRSS") : -1;
  for (auto& c : conns) c->close_now();
  conns.clear();
  sleep_s(opt.settle);
  const long after = opt.watch_pid ? proc_status_kb(opt.watch_pid, "VmRSS") : -1;
  std::string j = "{\"mode\":\"binds\",\"workload\":\"idle\"";
  if (!opt.label.empty()) j += ",\"label\":" + json_str(opt.label);
  j += ",\"conns\":" + std::to_string(opt.conns) + ",\"connect_s\":" + num(connect_s, 3);
  if (opt.watch_pid) {
    j += ",\"rss_before_kb\":" + std::to_string(before) + ",\"rss_holding_kb\":" + std::to_string(holding) +
         ",\"rss_after_kb\":" + std::to_string(after) + ",\"rss_per_client_bytes\":" +
         num(static_cast<double>(holding - before) * 1024.0 / opt.conns, 0);
  }
  j += "}";
  std::printf("%s\n", j.c_str());
  return 0;
}

int run_load(const Options& opt) {
  Run run(opt);
  run.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (run.epoll_fd < 0) die(std::string("epoll_create1: ") + std::strerror(errno));

  const std::string frame = opt.mode == "binds" ? make_query_frame(opt) : std::string();
  std::vector<const char*> pq_params;
  for (const auto& p : opt.params) pq_params.push_back(p.c_str());
#if BINDS_LOADGEN_MYSQL
  MysqlUrl mysql_url;
  if (opt.mode == "mysql") mysql_url = parse_mysql_url(opt.addr);
#endif

  std::vector<std::unique_ptr<Conn>> conns;
  conns.reserve(static_cast<std::size_t>(opt.conns));
  for (int i = 0; i < opt.conns; ++i) {
    if (opt.mode == "binds") conns.push_back(std::make_unique<BindsConn>(run, frame));
    else if (opt.mode == "pq") conns.push_back(std::make_unique<PqConn>(run, pq_params));
#if BINDS_LOADGEN_MYSQL
    else conns.push_back(std::make_unique<MysqlConn>(run, mysql_url));
#endif
  }

  const std::int64_t start = now_ns();
  if (opt.workload == "stream") {
    run.to_issue = opt.count;
    run.measure_start = start;
  } else {
    run.measure_start = start + static_cast<std::int64_t>(opt.warmup * 1e9);
    run.measure_end = run.measure_start + static_cast<std::int64_t>(opt.duration * 1e9);
  }
  for (auto& c : conns) c->pump();

  std::vector<epoll_event> events(static_cast<std::size_t>(std::min(opt.conns, 1024)));
  std::int64_t drain_deadline = std::numeric_limits<std::int64_t>::max();
  for (;;) {
    const std::int64_t now = now_ns();
    if (run.issuing && now >= run.measure_end) {
      run.issuing = false;
      drain_deadline = now + static_cast<std::int64_t>(opt.drain_timeout * 1e9);
    }
    if (run.in_flight == 0 && (!run.issuing || run.to_issue == 0)) break;
    if (run.dead_conns == opt.conns) break;
    if (now >= drain_deadline) {
      run.report_error("gave up waiting for " + std::to_string(run.in_flight) + " replies");
      break;
    }
    const std::int64_t next = run.issuing ? run.measure_end : drain_deadline;
    const std::int64_t wait_ns = std::max<std::int64_t>(0, next - now);
    const int timeout_ms = wait_ns > 1'000'000'000 ? 1000 : static_cast<int>((wait_ns + 999'999) / 1'000'000);
    int n = epoll_wait(run.epoll_fd, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      die(std::string("epoll_wait: ") + std::strerror(errno));
    }
    for (int i = 0; i < n; ++i) static_cast<Conn*>(events[i].data.ptr)->on_event(events[i].events);
  }
  const std::int64_t end = now_ns();
  conns.clear();
  ::close(run.epoll_fd);

  // ---- report
  std::string j = "{\"mode\":" + json_str(opt.mode) + ",\"workload\":" + json_str(opt.workload);
  if (!opt.label.empty()) j += ",\"label\":" + json_str(opt.label);
  j += ",\"conns\":" + std::to_string(opt.conns) + ",\"depth\":" + std::to_string(opt.depth);
  const auto us = [&](double ns) { return num(ns / 1000.0, 1); };
  if (opt.workload == "stream") {
    auto s = run.stream_seconds;
    std::sort(s.begin(), s.end());
    const double median = s.empty() ? 0.0 : (s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2);
    j += ",\"streams\":" + std::to_string(run.total) + ",\"errors\":" + std::to_string(run.errors) +
         ",\"rows_per_stream\":" + std::to_string(run.total ? run.rows / run.total : 0) +
         ",\"seconds_per_stream\":" + num(median, 3) + ",\"stream_seconds\":[";
    for (std::size_t i = 0; i < run.stream_seconds.size(); ++i)
      j += (i ? "," : "") + num(run.stream_seconds[i], 3);
    j += "]";
    j += ",\"queries\":" + std::to_string(run.measured - run.measured_errors);
    if (opt.mode == "binds") j += std::string(",\"rows_decoded\":") + (opt.decode_rows ? "true" : "false");
  } else {
    const double window_s =
        static_cast<double>(std::min(end, run.measure_end) - std::min(end, run.measure_start)) / 1e9;
    const std::uint64_t ok = run.measured - run.measured_errors;
    j += ",\"warmup_s\":" + num(opt.warmup, 2) + ",\"duration_s\":" + num(window_s, 3) +
         ",\"queries\":" + std::to_string(ok) + ",\"errors\":" + std::to_string(run.errors) +
         ",\"qps\":" + num(window_s > 0 ? static_cast<double>(ok) / window_s : 0.0, 1) +
         ",\"p50_us\":" + us(run.hist.quantile(0.50)) + ",\"p99_us\":" + us(run.hist.quantile(0.99)) +
         ",\"p999_us\":" + us(run.hist.quantile(0.999)) + ",\"mean_us\":" + us(run.hist.mean()) +
         ",\"max_us\":" + us(static_cast<double>(run.hist.max())) +
         ",\"total_queries\":" + std::to_string(run.total - run.errors);
    if (opt.mode != "binds") j += ",\"rows\":" + std::to_string(run.rows);  // binds: not decoded
  }
  j += ",\"dead_conns\":" + std::to_string(run.dead_conns) + "}";
  std::printf("%s\n", j.c_str());
  std::fflush(stdout);
  const bool good = run.errors == 0 && run.dead_conns == 0 && run.measured > 0;
  return good ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  const Options opt = parse_options(argc, argv);
  return opt.workload == "idle" ? run_idle(opt) : run_load(opt);
}
