// ShortReadBuffer changes when Asio's reactor tries a socket; what must not change is that every
// byte that arrives, and every end of stream, completes a read. These tests drive the cases where a
// lost edge would hang a read: bytes that arrive after a short read but before the next read
// starts, while it is parked, end of stream after a short read or together with the last bytes (a
// read that trusted a short read alone hung there), and a read that filled its buffer. TCP reads
// use the kernel's hints; Unix reads keep Asio's rule. watch_reads_only must keep writes that have
// to wait for room working.
#include "binds/socket_wakeups.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using asio::ip::tcp;

struct Pair {
  asio::io_context io;
  tcp::socket a{io}, b{io};
  Pair() {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    a.connect(acc.local_endpoint());
    acc.accept(b);
    hints = binds::enable_read_hints(b);
  }
  bool hints = false;
};

// Runs the context until `done` or ten seconds pass (a lost wake-up shows as a timeout).
template <class Pred>
bool run_until(asio::io_context& io, Pred done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_for(std::chrono::milliseconds(20));
  }
  return done();
}

struct Read {
  bool done = false;
  error_code ec;
  std::size_t n = 0;
};

template <class Socket>
void start_read(Socket& s, char* buf, std::size_t size, Read& r, bool hints) {
  r = Read{};
  s.async_read_some(binds::ShortReadBuffer(asio::buffer(buf, size), hints), [&r](error_code ec, std::size_t n) {
    r.done = true;
    r.ec = ec;
    r.n = n;
  });
}

// Starts a read and runs the context until it completes; false if it never does.
template <class Socket>
bool read_once(asio::io_context& io, Socket& s, char* buf, std::size_t size, Read& r, bool hints) {
  start_read(s, buf, size, r, hints);
  return run_until(io, [&] { return r.done; });
}

TEST(ShortReadBuffer, BytesWrittenAfterAShortReadCompleteTheNextRead) {
  Pair p;
  char buf[64];
  Read r;
  asio::write(p.a, asio::buffer(std::string("abc")));
  ASSERT_TRUE(read_once(p.io, p.b, buf, sizeof buf, r, p.hints));
  EXPECT_EQ(r.n, 3u);
  // The socket is drained; these bytes arrive before the next read is even started.
  asio::write(p.a, asio::buffer(std::string("defg")));
  ASSERT_TRUE(read_once(p.io, p.b, buf, sizeof buf, r, p.hints)) << "a read after a short read missed bytes already there";
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(std::string(buf, r.n), "defg");
}

TEST(ShortReadBuffer, AParkedReadCompletesWhenBytesArriveLater) {
  Pair p;
  char buf[64];
  Read r;
  asio::write(p.a, asio::buffer(std::string("x")));
  ASSERT_TRUE(read_once(p.io, p.b, buf, sizeof buf, r, p.hints));
  start_read(p.b, buf, sizeof buf, r, p.hints);
  p.io.restart();
  p.io.poll();
  EXPECT_FALSE(r.done);
  // From another thread while the loop waits in epoll.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    error_code ec;
    asio::write(p.a, asio::buffer(std::string("late")), ec);
  });
  const bool ok = run_until(p.io, [&] { return r.done; });
  writer.join();
  ASSERT_TRUE(ok);
  EXPECT_EQ(std::string(buf, r.n), "late");
}

TEST(ShortReadBuffer, BytesWrittenInsideTheCompletionHandlerAreRead) {
  // The tightest window: the peer's bytes land between the short read and the next read's start,
  // on the same thread, with no trip through epoll in between.
  Pair p;
  char buf[64];
  std::string got;
  int reads = 0;
  std::function<void()> next = [&] {
    p.b.async_read_some(binds::ShortReadBuffer(asio::buffer(buf), p.hints), [&](error_code ec, std::size_t n) {
      if (ec) return;
      got.append(buf, n);
      if (++reads < 100) {
        asio::write(p.a, asio::buffer(std::string("y")));
        next();
      }
    });
  };
  asio::write(p.a, asio::buffer(std::string("y")));
  next();
  ASSERT_TRUE(run_until(p.io, [&] { return reads == 100; })) << "stalled after " << reads << " reads";
  EXPECT_EQ(got, std::string(100, 'y'));
}

TEST(ShortReadBuffer, EndOfStreamAfterAShortReadIsReported) {
  Pair p;
  char buf[64];
  Read r;
  asio::write(p.a, asio::buffer(std::string("last")));
  ASSERT_TRUE(read_once(p.io, p.b, buf, sizeof buf, r, p.hints));
  p.a.close();
  ASSERT_TRUE(read_once(p.io, p.b, buf, sizeof buf, r, p.hints));
  EXPECT_EQ(r.ec, asio::error::eof);
}

TEST(ShortReadBuffer, EndOfStreamThatCameWithTheLastBytesIsReported) {
  // A backend that dies sends its last message and its FIN together (PostgreSQL's quickdie after
  // an immediate shutdown, a client's last request followed by its close): epoll reports both in
  // one edge, the read that takes the bytes comes back short, and no edge follows for the end of
  // stream. The next read must still try the socket, or it waits forever.
  Pair p;
  ASSERT_TRUE(p.hints) << "TCP_INQ refused: the kernel's hints are not tested";
  char buf[64];
  Read r;
  start_read(p.b, buf, sizeof buf, r, p.hints);
  p.io.restart();
  p.io.poll();
  ASSERT_FALSE(r.done);  // parked on epoll, as a read waiting for an answer is
  asio::write(p.a, asio::buffer(std::string("last")));
  p.a.close();
  ASSERT_TRUE(run_until(p.io, [&] { return r.done; }));
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(std::string(buf, r.n), "last");
  ASSERT_TRUE(read_once(p.io, p.b, buf, sizeof buf, r, p.hints)) << "the end of stream that came with the last bytes was lost";
  EXPECT_EQ(r.ec, asio::error::eof);
}

TEST(ShortReadBuffer, AFullReadLeavesTheRestForTheNextRead) {
  Pair p;
  char buf[4];
  Read r;
  asio::write(p.a, asio::buffer(std::string("0123456789")));
  std::string got;
  while (got.size() < 10) {
    ASSERT_TRUE(read_once(p.io, p.b, buf, sizeof buf, r, p.hints)) << "after " << got.size() << " bytes";
    ASSERT_FALSE(r.ec);
    got.append(buf, r.n);
  }
  EXPECT_EQ(got, "0123456789");
}

TEST(ShortReadBuffer, WorksOnUnixStreamSockets) {
  asio::io_context io;
  asio::local::stream_protocol::socket a(io), b(io);
  asio::local::connect_pair(a, b);
  char buf[64];
  Read r;
  for (const std::string msg : {"one", "two", "three"}) {
    asio::write(a, asio::buffer(msg));
    ASSERT_TRUE(read_once(io, b, buf, sizeof buf, r, false));
    EXPECT_EQ(std::string(buf, r.n), msg);
  }
}

TEST(WatchReadsOnly, AWriteThatMustWaitForRoomStillCompletes) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket a(io), b(io);
  bool connected = false;
  a.async_connect(acc.local_endpoint(), [&](error_code ec) { connected = !ec; });
  acc.accept(b);
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  error_code ec;
  binds::watch_reads_only(a, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(a.is_open());

  // More than the kernel buffers hold while the peer reads nothing: the write has to park on
  // writability, which watch_reads_only took away, and must get it back.
  const std::string big(16 << 20, 'z');
  bool written = false;
  asio::async_write(a, asio::buffer(big), [&](error_code e, std::size_t) { written = !e; });
  io.restart();
  io.poll();
  EXPECT_FALSE(written);
  std::thread reader([&] {
    std::string sink(1 << 16, '\0');
    std::size_t total = 0;
    error_code e;
    while (total < big.size() && !e) total += b.read_some(asio::buffer(sink), e);
  });
  const bool ok = run_until(io, [&] { return written; });
  reader.join();
  EXPECT_TRUE(ok) << "a write parked for room never completed";

  // And reads still arrive on the re-registered descriptor.
  char buf[8];
  Read r;
  asio::write(b, asio::buffer(std::string("hi")));
  ASSERT_TRUE(read_once(io, a, buf, sizeof buf, r, false));
  EXPECT_EQ(std::string(buf, r.n), "hi");
}

}  // namespace
