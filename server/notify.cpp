#include "server/notify.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "server/server.hpp"

namespace binds::server::notify {

namespace {

struct Target {
  sockaddr_un addr{};
  socklen_t len = 0;
};

// systemd sets NOTIFY_SOCKET once before exec and nothing here changes it, so parse it once.
const std::optional<Target>& target() {
  static const std::optional<Target> t = []() -> std::optional<Target> {
    const char* env = std::getenv("NOTIFY_SOCKET");
    if (!env || !*env) return std::nullopt;
    std::string_view path(env);
    Target t;
    t.addr.sun_family = AF_UNIX;
    if (path[0] == '@') {
      // Abstract namespace: the name is the bytes after a leading NUL, not NUL-terminated.
      if (path.size() > sizeof(t.addr.sun_path)) return std::nullopt;
      std::memcpy(t.addr.sun_path, path.data(), path.size());
      t.addr.sun_path[0] = '\0';
      t.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    } else if (path[0] == '/') {
      if (path.size() >= sizeof(t.addr.sun_path)) return std::nullopt;
      std::memcpy(t.addr.sun_path, path.data(), path.size());
      t.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    } else {
      // vsock: and other transports of newer systemd are not used for services on this platform.
      return std::nullopt;
    }
    return t;
  }();
  return t;
}

bool send_with(std::string_view state, int flags) {
  const auto& t = target();
  if (!t) return false;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n;
  do {
    n = ::sendto(fd, state.data(), state.size(), flags | MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&t->addr), t->len);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

}  // namespace

bool enabled() { return target().has_value(); }

bool send(std::string_view state) { return send_with(state, 0); }

bool ready() { return send("READY=1"); }

bool stopping() { return send("STOPPING=1\nSTATUS=stopping"); }

bool status(std::string_view text) {
  std::string flat(text);
  std::replace(flat.begin(), flat.end(), '\n', ' ');
  return send("STATUS=" + flat);
}

bool watchdog() { return send("WATCHDOG=1"); }

bool reloading() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  auto usec = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
  return send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading", usec));
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (!usec || !*usec) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(usec, &end, 10);
  if (errno || *end || v == 0) return std::nullopt;
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid && *pid) {
    // The manager may hand the watchdog to a specific process (e.g. a wrapper's child).
    end = nullptr;
    errno = 0;
    unsigned long long p = std::strtoull(pid, &end, 10);
    if (errno || *end || p != static_cast<unsigned long long>(::getpid())) return std::nullopt;
  }
  return std::chrono::microseconds(std::max<unsigned long long>(v / 2, 1));
}

std::string status_line(std::size_t binds, std::int64_t clients, double queries_per_second,
                        std::uint64_t queries, std::uint64_t errors) {
  return fmt::format("{} bind{}, {} client{}, {:.1f} queries/s ({} queries, {} errors since start)", binds,
                     binds == 1 ? "" : "s", clients, clients == 1 ? "" : "s", queries_per_second, queries,
                     errors);
}

Heartbeat::Heartbeat(Server& server, std::chrono::milliseconds status_every)
    : server_(server),
      strand_(boost::asio::make_strand(server.io())),
      timer_(strand_),
      status_every_(status_every),
      watchdog_every_(watchdog_interval()) {}

Heartbeat::~Heartbeat() = default;

void Heartbeat::start() {
  if (!enabled()) return;
  boost::asio::dispatch(strand_, [this] {
    auto now = std::chrono::steady_clock::now();
    last_rate_at_ = now;
    last_queries_ = server_.engine().counters().queries.load();
    send_status();
    next_status_ = now + status_every_;
    if (watchdog_every_) {
      watchdog();
      next_watchdog_ = now + *watchdog_every_;
    }
    schedule();
  });
}

void Heartbeat::stop() {
  boost::asio::dispatch(strand_, [this] {
    stopped_ = true;
    timer_.cancel();
  });
}

void Heartbeat::schedule() {
  if (stopped_) return;
  auto due = next_status_;
  if (watchdog_every_) due = std::min(due, next_watchdog_);
  timer_.expires_at(due);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    tick();
  });
}

void Heartbeat::tick() {
  auto now = std::chrono::steady_clock::now();
  if (watchdog_every_ && now >= next_watchdog_) {
    // Non-blocking: a wedged service manager must not stall an I/O thread; a dropped ping is
    // exactly what the watchdog exists to notice anyway.
    send_with("WATCHDOG=1", MSG_DONTWAIT);
    // From now, not from the missed deadline, so a stall does not cause a burst of pings.
    next_watchdog_ = now + *watchdog_every_;
  }
  if (now >= next_status_) {
    send_status();
    next_status_ = now + status_every_;
  }
  schedule();
}

void Heartbeat::send_status() {
  auto now = std::chrono::steady_clock::now();
  auto& c = server_.counters();
  auto& ec = server_.engine().counters();
  std::uint64_t q = ec.queries.load();
  double secs = std::chrono::duration<double>(now - last_rate_at_).count();
  double rate = secs > 0.05 ? static_cast<double>(q - last_queries_) / secs : 0.0;
  last_queries_ = q;
  last_rate_at_ = now;
  auto rt = server_.routes();
  std::size_t binds = rt ? rt->pools.size() : 0;
  std::string line = status_line(binds, c.clients_now.load(), rate, q, ec.errors.load());
  // Until a reload succeeds, every heartbeat repeats that the last one failed: `systemctl status`
  // shows the latest STATUS only, and a failed reload must not scroll away after two seconds.
  const std::string failed = server_.last_reload_error();
  if (!failed.empty()) line += "; last reload FAILED, old configuration kept: " + failed;
  std::replace(line.begin(), line.end(), '\n', ' ');
  send_with("STATUS=" + line, MSG_DONTWAIT);
}

}  // namespace binds::server::notify
