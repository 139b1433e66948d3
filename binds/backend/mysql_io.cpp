#include "binds/backend/mysql_io.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace binds::backend::mysql {

namespace {

using boost::system::error_code;
using Descriptor = asio::posix::stream_descriptor;

// Waits for any of: readable, writable, the timer. The first to fire ends the others; the
// handler gets the MYSQL_WAIT_* bit of the one that fired, or 0 if all were cancelled.
template <class Token>
auto async_wait_any(Descriptor& sd, asio::steady_timer& timer, bool rd, bool wr,
                    std::optional<Clock::time_point> until, Token&& token) {
  return asio::async_initiate<Token, void(int)>(
      [&sd, &timer, rd, wr, until](auto&& handler) {
        using Handler = std::decay_t<decltype(handler)>;
        struct State {
          explicit State(Handler&& h) : handler(std::move(h)) {}
          Handler handler;
          int pending = 0;
          int events = 0;
        };
        auto ex = asio::get_associated_executor(handler, sd.get_executor());
        auto st = std::make_shared<State>(std::move(handler));
        st->pending = (rd ? 1 : 0) + (wr ? 1 : 0) + (until ? 1 : 0);
        auto done = [st, &sd, &timer](int ev) {
          if (ev != 0 && st->events == 0) {
            st->events = ev;
            error_code ignored;
            sd.cancel(ignored);
            timer.cancel();
          }
          if (--st->pending == 0) std::move(st->handler)(st->events);
        };
        auto on = [done](int bit) {
          return [done, bit](const error_code& ec) {
            done(ec == asio::error::operation_aborted ? 0 : bit);
          };
        };
        if (rd) sd.async_wait(Descriptor::wait_read, asio::bind_executor(ex, on(MYSQL_WAIT_READ)));
        if (wr) sd.async_wait(Descriptor::wait_write, asio::bind_executor(ex, on(MYSQL_WAIT_WRITE)));
        if (until) {
          timer.expires_at(*until);
          timer.async_wait(asio::bind_executor(ex, on(MYSQL_WAIT_TIMEOUT)));
        }
      },
      token);
}

}  // namespace

Socket::Socket(asio::any_io_executor ex) : sd_(ex), timer_(ex) {}

Socket::~Socket() { release(); }

void Socket::watch(int fd) {
  release();
  if (fd < 0) return;
  const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return;  // wait() then hands control back at once and the library reports the I/O error
  error_code ec;
  sd_.assign(own, ec);
  if (ec) ::close(own);
}

void Socket::release() {
  if (!sd_.is_open()) return;
  error_code ignored;
  sd_.close(ignored);
}

void Socket::shutdown() {
  if (sd_.is_open()) ::shutdown(sd_.native_handle(), SHUT_RDWR);
}

void Socket::cancel() {
  error_code ignored;
  if (sd_.is_open()) sd_.cancel(ignored);
  timer_.cancel();
}

asio::awaitable<int> Socket::wait(int status, unsigned library_timeout_ms,
                                  std::optional<Clock::time_point> deadline) {
  std::optional<Clock::time_point> until = deadline;
  if ((status & MYSQL_WAIT_TIMEOUT) != 0) {
    const auto lib = Clock::now() + std::chrono::milliseconds(library_timeout_ms);
    if (!until || lib < *until) until = lib;
  }
  bool rd = (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT)) != 0;
  bool wr = (status & MYSQL_WAIT_WRITE) != 0;
  // Nothing to watch (the dup failed, descriptors exhausted): a timeout makes the library give
  // up the call instead of retrying it in a busy loop.
  if (!sd_.is_open()) co_return MYSQL_WAIT_TIMEOUT;
  if (until && *until <= Clock::now()) co_return MYSQL_WAIT_TIMEOUT;
  if (!rd && !wr && !until) co_return 0;
  if (rd != wr && !until) {
    // One direction, no clock (a statement's every read): a plain wait, without the shared state
    // and the cancellations that async_wait_any needs to race three waits.
    error_code ec;
    co_await sd_.async_wait(rd ? Descriptor::wait_read : Descriptor::wait_write,
                            asio::redirect_error(asio::use_awaitable, ec));
    co_return ec ? 0 : (rd ? MYSQL_WAIT_READ : MYSQL_WAIT_WRITE);
  }
  co_return co_await async_wait_any(sd_, timer_, rd, wr, until, asio::use_awaitable);
}

bool Socket::idle_and_open() {
  if (!sd_.is_open()) return false;
  char byte;
  for (;;) {
    const ssize_t n = ::recv(sd_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return false;   // an idle session has nothing to say: an error packet before a close
    if (n == 0) return false;  // EOF
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

}  // namespace binds::backend::mysql
