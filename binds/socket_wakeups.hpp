#pragma once
// Fewer system calls and event-loop wake-ups per request on Asio's epoll reactor.
//
// ShortReadBuffer: a receive buffer for async_read_some that lets the reactor skip a read bound
// to fail.
//
// Asio (1.74 as 1.81) starts every async read with a recv on the spot, whatever the last one
// found, and parks on epoll only after that recv says EAGAIN. A broker's sockets are almost always
// empty when it starts the next read (the client has its answer to read first; the backend has
// the query to run), so that recv fails once per request: measured, 1 of bindsd's 5.3 syscalls per
// PostgreSQL `SELECT 1` at 16 clients. The reactor can skip it: a read that reports
// `done_and_exhausted` clears its "try at once" flag for the descriptor, and the next epoll event
// sets it again. Stock Asio reports exhausted only on end of stream; with a ShortReadBuffer, a
// read that came back shorter than its buffer does too, because a stream socket's recv returns
// less than asked only when the kernel had no more.
//
// Safe with edge-triggered epoll (what Asio registers): bytes that arrive after that short read
// raise a new event, and the event sets the flag again or completes the parked read.
//
// Only for plain TCP and Unix stream sockets whose reads go through this type: a TLS stream reads
// its socket with buffers of its own and keeps Asio's default.

#include <utility>
#include <boost/asio.hpp>

namespace binds {

struct ShortReadBuffer : boost::asio::mutable_buffer {
  explicit ShortReadBuffer(boost::asio::mutable_buffer b) noexcept : boost::asio::mutable_buffer(b) {}
};

// After a connect, Asio watches the socket for writability (edge-triggered EPOLLOUT) for the rest
// of its life, so every send wakes the event loop once more when the peer's acknowledgement frees
// buffer space: an epoll_wait that finds nothing to do, per statement. Registering the descriptor
// afresh watches input only, until a write must wait for room (then Asio adds EPOLLOUT again).
// Call with no operation pending on the socket.
template <class Socket>
void watch_reads_only(Socket& s, boost::system::error_code& ec) {
  const auto protocol = s.local_endpoint(ec).protocol();
  if (ec) return;
  const auto fd = s.release(ec);
  if (ec) return;
  s.assign(protocol, fd, ec);
}

}  // namespace binds

namespace boost::asio::detail {

// Declared before any async_read_some with a ShortReadBuffer is instantiated: every user includes
// this header, which defines the type.
template <>
inline reactor_op::status reactive_socket_recv_op_base<binds::ShortReadBuffer>::do_perform(reactor_op* base) {
  auto* o = static_cast<reactive_socket_recv_op_base*>(base);
  const bool stream = (o->state_ & socket_ops::stream_oriented) != 0;
  if (!socket_ops::non_blocking_recv1(o->socket_, o->buffers_.data(), o->buffers_.size(), o->flags_, stream, o->ec_,
                                      o->bytes_transferred_))
    return not_done;
  // Also end of stream and errors (nothing transferred): the stock rule.
  if (stream && o->bytes_transferred_ < o->buffers_.size()) return done_and_exhausted;
  return done;
}

}  // namespace boost::asio::detail
