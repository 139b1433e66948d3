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
// sets it again.
//
// When may a read say it drained the socket? Not merely because it came back short: a peer that
// sends its last bytes and closes (PostgreSQL killing its backends on a crash, a client that sends
// a request and half-closes) raises one epoll edge for both, the short read takes the bytes, and
// no edge follows for the end of stream, so the next read would wait forever. (This project did
// that until a crashed PostgreSQL hung the statements running on it over plain TCP.) The kernel
// says it outright on TCP: with TCP_INQ on, each recvmsg reports how much is left, and counts a
// received FIN as something left. So a read says "drained" only when the kernel said 0.
//
// Safe with edge-triggered epoll (what Asio registers): bytes or a FIN that arrive after that
// read raise a new event, and the event sets the flag again or completes the parked read.
//
// TCP sockets with enable_read_hints() on only. Unix sockets have no such report and keep Asio's
// rule (a ShortReadBuffer without hints behaves exactly like a plain buffer), as does a TLS stream,
// which reads its socket with buffers of its own.

#include <utility>
#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace binds {

struct ShortReadBuffer : boost::asio::mutable_buffer {
  // hints: the socket is TCP with enable_read_hints() on.
  ShortReadBuffer(boost::asio::mutable_buffer b, bool hints) noexcept : boost::asio::mutable_buffer(b), hints(hints) {}
  bool hints;
};

// Asks the kernel to report, with every recvmsg, how much input is left (TCP_INQ, Linux 4.18).
// False where it cannot (then reads must not use the hints).
template <class Socket>
bool enable_read_hints(Socket& s) {
  const int on = 1;
  return ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_INQ, &on, sizeof on) == 0;
}

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
  if (!o->buffers_.hints || !stream) {
    // Asio's own rule: exhausted only at end of stream.
    if (!socket_ops::non_blocking_recv1(o->socket_, o->buffers_.data(), o->buffers_.size(), o->flags_, stream,
                                        o->ec_, o->bytes_transferred_))
      return not_done;
    return (stream && o->bytes_transferred_ == 0) ? done_and_exhausted : done;
  }
  iovec iov{o->buffers_.data(), o->buffers_.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  for (;;) {
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(o->socket_, &msg, o->flags_);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      o->ec_ = boost::system::error_code(errno, boost::asio::error::get_system_category());
      o->bytes_transferred_ = 0;
      return done;
    }
    o->ec_ = boost::system::error_code();
    o->bytes_transferred_ = static_cast<std::size_t>(n);
    if (n == 0) {
      if (o->buffers_.size() == 0) return done;  // a zero-byte read proves nothing
      o->ec_ = boost::asio::error::eof;
      return done_and_exhausted;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_TCP && c->cmsg_type == TCP_CM_INQ && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int left = 0;
        std::memcpy(&left, CMSG_DATA(c), sizeof left);
        if (left == 0) return done_and_exhausted;  // nothing left, not even a FIN
      }
    }
    return done;
  }
}

}  // namespace boost::asio::detail
