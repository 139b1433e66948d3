#pragma once
// The systemd service-manager notification protocol (sd_notify), spoken directly so bindsd needs
// neither libsystemd nor systemd at run time: every call is a no-op when $NOTIFY_SOCKET is unset.

// Boost 1.74 asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace binds::server {

class Server;

namespace notify {

// True when $NOTIFY_SOCKET names a socket we can talk to.
bool enabled();

// Sends one datagram of newline-separated KEY=VALUE assignments. False when notification is
// disabled or the send failed; callers ignore failures because the service manager going away
// must never take the daemon down with it.
bool send(std::string_view state);

bool ready();                          // READY=1
bool stopping();                       // STOPPING=1
bool status(std::string_view text);    // STATUS=text (newlines are flattened)
bool watchdog();                       // WATCHDOG=1
// For hot reload, which is not wired yet: call reloading() before re-reading the config and
// ready() once the new one is serving (or the old one was kept). MONOTONIC_USEC is included
// because systemd >= 253 (Type=notify-reload) requires it alongside RELOADING=1.
bool reloading();

// Half of $WATCHDOG_USEC when the watchdog is armed for this process ($WATCHDOG_PID unset or equal
// to our pid), as sd_watchdog_enabled() decides; nullopt otherwise. Half, so that one late tick
// does not trip the watchdog.
std::optional<std::chrono::microseconds> watchdog_interval();

// The STATUS summary: binds, clients, query rate and totals.
std::string status_line(std::size_t binds, std::int64_t clients, double queries_per_second,
                        std::uint64_t queries, std::uint64_t errors);

// Periodic STATUS and WATCHDOG=1 on the server's io_context. Ticks run on their own strand so
// stop() may be called from any thread (the signal handler runs on an arbitrary I/O thread).
// stop() cancels the timer, so it holds no work once shutdown starts.
class Heartbeat {
 public:
  explicit Heartbeat(Server& server,
                     std::chrono::milliseconds status_every = std::chrono::milliseconds(2000));
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Sends the first STATUS at once, then keeps ticking. Does nothing when notification is off.
  void start();
  void stop();

 private:
  void schedule();
  void tick();
  void send_status();

  Server& server_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds status_every_;
  std::optional<std::chrono::microseconds> watchdog_every_;
  std::chrono::steady_clock::time_point next_status_{}, next_watchdog_{}, last_rate_at_{};
  std::uint64_t last_queries_ = 0;
  bool stopped_ = false;
};

}  // namespace notify
}  // namespace binds::server
