// The outbox writes a reply's last frame at once when the socket takes it, and must never let that
// shortcut reorder frames, lose the ones the socket did not take, or start a writer it does not
// need. Driven on a real socket pair with the session's callbacks stood in for by recorders.
#include "server/outbox.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using binds::server::Outbox;
using asio::local::stream_protocol;

struct Rig {
  asio::io_context io;
  stream_protocol::socket a{io}, b{io};
  Outbox out{io.get_executor(), 1 << 20};
  int writers_started = 0;
  int kicks_scheduled = 0;

  Rig() {
    asio::local::connect_pair(a, b);
    a.non_blocking(true);
    out.on_start_writer([this] { ++writers_started; });
    out.on_schedule([this] { ++kicks_scheduled; });
    out.on_write_now([this] {
      std::vector<asio::const_buffer> bufs;
      for (const auto& f : out.queued()) bufs.push_back(asio::buffer(f));
      boost::system::error_code ec;
      const std::size_t n = a.write_some(bufs, ec);
      if (!ec && n > 0) out.consumed(n);
    });
  }

  // What the peer has received so far.
  std::string received() {
    std::string got;
    b.non_blocking(true);
    char buf[65536];
    for (;;) {
      boost::system::error_code ec;
      const std::size_t n = b.read_some(asio::buffer(buf), ec);
      if (ec) break;
      got.append(buf, n);
    }
    return got;
  }

  // Stands in for the writer coroutine: takes and "writes" everything queued, in order.
  std::string drain_as_writer() {
    std::string got;
    std::vector<std::string> frames;
    while (out.take(frames)) {
      std::size_t bytes = 0;
      for (const auto& f : frames) {
        got += f;
        bytes += f.size();
      }
      out.written(frames.size(), bytes);
    }
    out.writer_ended();
    return got;
  }
};

TEST(Outbox, AReplysLastFrameGoesOutAtOnceWithTheFramesBeforeIt) {
  Rig r;
  EXPECT_TRUE(r.out.push("columns|"));
  EXPECT_TRUE(r.out.push("rows|"));
  EXPECT_EQ(r.kicks_scheduled, 1);  // one scheduled start for the step, not one per frame
  EXPECT_EQ(r.writers_started, 0);
  EXPECT_TRUE(r.out.push("complete", true));
  EXPECT_EQ(r.received(), "columns|rows|complete");
  EXPECT_TRUE(r.out.queued().empty());
  EXPECT_EQ(r.out.bytes(), 0u);
  r.out.kick();  // the scheduled start finds nothing left to write
  EXPECT_EQ(r.writers_started, 0);
}

TEST(Outbox, FramesLeftWithoutALastOneStartTheWriterWhenTheStepEnds) {
  Rig r;
  r.out.push("rows-1|");
  r.out.push("rows-2|");
  EXPECT_EQ(r.writers_started, 0);
  r.out.kick();
  EXPECT_EQ(r.writers_started, 1);
  EXPECT_TRUE(r.out.writer_active());
  EXPECT_EQ(r.drain_as_writer(), "rows-1|rows-2|");
  EXPECT_EQ(r.received(), "");  // nothing went around the writer
}

TEST(Outbox, ALastFrameNeverOvertakesFramesTheWriterHolds) {
  Rig r;
  r.out.push("first|");
  r.out.kick();
  ASSERT_EQ(r.writers_started, 1);
  std::vector<std::string> held;
  ASSERT_TRUE(r.out.take(held));  // the writer took "first|" and is writing it
  r.out.push("second", true);
  EXPECT_EQ(r.received(), "") << "the last frame went out before the one the writer holds";
  EXPECT_EQ(r.out.queued().size(), 1u);
  r.out.written(held.size(), held[0].size());
  EXPECT_EQ(r.drain_as_writer(), "second");
}

TEST(Outbox, WhatTheSocketDoesNotTakeGoesToTheWriterInOrder) {
  Rig r;
  // A peer that reads nothing: the socket takes only what its buffers hold.
  const std::string big(8 << 20, 'x');
  r.out.push("head|");
  r.out.push(big + "|tail", true);
  EXPECT_EQ(r.writers_started, 1) << "the rest needs the writer (and its write deadline)";
  ASSERT_FALSE(r.out.queued().empty());
  std::string sent = r.received();
  ASSERT_GT(sent.size(), 0u);
  sent += r.drain_as_writer();
  EXPECT_EQ(sent, "head|" + big + "|tail");
  EXPECT_EQ(r.out.bytes(), 0u);
}

TEST(Outbox, AClosedOutboxTakesNothing) {
  Rig r;
  r.out.close();
  EXPECT_FALSE(r.out.push("late", true));
  EXPECT_EQ(r.received(), "");
  EXPECT_EQ(r.writers_started, 0);
}

}  // namespace
