#pragma once
// Test clients for abuse tests: a raw frame-level client (to send what a well-behaved client never
// would) and a bystander that keeps querying while a test abuses the daemon.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "client/format.hpp"
#include "harness.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace binds::test {

using protocol::Frame;
using protocol::FrameType;

// Keeps one client busy with queries while a test abuses the daemon; every query must succeed.
class Bystander {
 public:
  explicit Bystander(const Daemon& d, std::string bind = "lite") : client_(d.connect()) {
    thread_ = std::thread([this, bind] {
      while (!stop_) {
        try {
          auto r = client_.query("SELECT 40 + 2", {}, bind);
          if (client::value_text(r.rows.at(0).at(0)) == "42") ++ok_;
          else ++bad_;
        } catch (const std::exception& e) {
          ++bad_;
          last_error_ = e.what();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  ~Bystander() { finish(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() const { return ok_; }
  int bad() const { return bad_; }
  std::string last_error() const { return last_error_; }

 private:
  client::Client client_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, bad_{0};
  std::string last_error_;
};


class RawClient {
 public:
  explicit RawClient(const Daemon& d) {
    namespace gen = boost::asio::generic;
    if (d.tcp_port()) {
      sock_.connect(gen::stream_protocol::endpoint(
          boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), d.tcp_port())));
      sock_.set_option(boost::asio::ip::tcp::no_delay(true));  // frames sent in pieces go out at once
    } else {
      sock_.connect(gen::stream_protocol::endpoint(boost::asio::local::stream_protocol::endpoint(d.socket_path())));
    }
  }
  void send(const std::string& b) { boost::asio::write(sock_, boost::asio::buffer(b)); }
  void hello() {
    send(protocol::encode_hello(protocol::Hello{}));
    Frame f;
    ASSERT_TRUE(read(f));
    ASSERT_EQ(f.type(), FrameType::hello_ok);
  }
  // One frame, or false on EOF.
  bool read(Frame& f) {
    for (;;) {
      if (dec_.next(f) == protocol::FrameDecoder::Status::frame) return true;
      char buf[65536];
      boost::system::error_code ec;
      auto n = sock_.read_some(boost::asio::buffer(buf), ec);
      if (ec) return false;
      dec_.feed(buf, n);
    }
  }
  protocol::ErrorInfo read_error(std::uint32_t expect_id) {
    Frame f;
    protocol::ErrorInfo info;
    if (!read(f)) {
      ADD_FAILURE() << "connection closed before an ERROR frame";
      return info;
    }
    EXPECT_EQ(f.type(), FrameType::error);
    EXPECT_EQ(f.header.request_id, expect_id);
    std::string why;
    EXPECT_TRUE(protocol::decode_error(f.body, info, why)) << why;
    return info;
  }
  bool closed_by_server() {
    Frame f;
    return !read(f);
  }
  // Reads (and drops) whatever the server still sends; true if it then closed the connection.
  bool drained_and_closed(int max_frames = 10000000) {
    Frame f;
    for (int i = 0; i < max_frames; ++i)
      if (!read(f)) return true;
    return false;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::generic::stream_protocol::socket sock_{io_};
  protocol::FrameDecoder dec_{1 << 26};
};

inline std::string frame(std::uint8_t type, std::uint32_t id, const std::string& body) {
  std::string out(protocol::kHeaderSize, '\0');
  protocol::encode_header(protocol::FrameHeader{static_cast<std::uint32_t>(body.size()), type, 0, 0, id},
                          reinterpret_cast<unsigned char*>(out.data()));
  return out + body;
}


}  // namespace binds::test
