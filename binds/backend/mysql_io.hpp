#pragma once
// Driving MariaDB Connector/C's non-blocking API from Asio coroutines.
//
// Every Connector/C call that may block has a `_start` and a `_cont` form: they return the
// MYSQL_WAIT_* bits the library waits for (0 = finished), and the library resumes from where it
// stopped when `_cont` is called with the bits that became ready. Socket waits here go through a
// dup() of the library's socket: Connector/C closes its own descriptor whenever a connection fails
// (end_server), and a reactor registration on that number would then be stale or, once the number
// is reused by another connection's socket, would deregister the wrong socket. Our dup keeps the
// socket alive and registered under a number nobody else closes.
//
// Threading: a Socket belongs to one connection and is used from one coroutine at a time.

#include <utility>
#include <boost/asio.hpp>
#include <mysql.h>

#include <chrono>
#include <optional>

namespace binds::backend::mysql {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

class Socket {
 public:
  explicit Socket(asio::any_io_executor ex);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Starts watching Connector/C's socket `fd` (through a dup). A negative fd stops watching.
  void watch(int fd);
  // Stops watching and closes the dup (Connector/C's own descriptor is untouched).
  void release();
  bool watching() const { return sd_.is_open(); }

  // shutdown(SHUT_RDWR): every pending and later read or write on the socket fails at once, so
  // a suspended Connector/C call observes a dead connection when it is resumed.
  void shutdown();
  // Ends a pending wait() early (it returns 0).
  void cancel();

  // Waits until one of the MYSQL_WAIT_* bits in `status` is ready, the library's own timeout
  // (`library_timeout_ms`, when status has MYSQL_WAIT_TIMEOUT) or `deadline` passes. Returns the
  // bits to hand to `_cont`: MYSQL_WAIT_TIMEOUT when a timeout passed (the library then fails
  // the call), 0 when cancelled.
  asio::awaitable<int> wait(int status, unsigned library_timeout_ms,
                            std::optional<Clock::time_point> deadline);

  // Non-blocking peek: false if the peer closed the socket or sent something unasked.
  bool idle_and_open();

 private:
  asio::posix::stream_descriptor sd_;
  asio::steady_timer timer_;
};

// Runs one non-blocking Connector/C call to its end. `start()` and `cont(events)` wrap the
// `_start`/`_cont` pair and return its status. `rewatch`: the call may replace the socket (a
// connect tries one address after another), so it is looked up again before every wait.
// After the call, a socket Connector/C has closed (a failed connection) is released.
template <class Start, class Cont>
asio::awaitable<void> drive(Socket& sock, MYSQL* m, Start start, Cont cont,
                            std::optional<Clock::time_point> deadline = std::nullopt,
                            bool rewatch = false) {
  int status = start();
  while (status != 0) {
    if (rewatch || !sock.watching()) sock.watch(mysql_get_socket(m));
    const unsigned library_timeout =
        (status & MYSQL_WAIT_TIMEOUT) != 0 ? mysql_get_timeout_value_ms(m) : 0;
    int events = co_await sock.wait(status, library_timeout, deadline);
    // Cancelled (abort()): let the library retry its I/O, which then fails on the shut-down
    // socket, so it unwinds its own state instead of being left suspended.
    if (events == 0) events = status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT);
    status = cont(events);
  }
  if (mysql_get_socket(m) < 0) sock.release();
}

}  // namespace binds::backend::mysql
