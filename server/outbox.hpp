#pragma once
// A client's outgoing frames: filled by the engine's replies and drained to the socket by the
// session's writer. Everything runs on the session's strand, so there is no lock.
//
// Backpressure: when the unwritten bytes pass `limit`, the engine's backends stop reading results
// (they await room()) and the session stops reading requests, so a client that does not read holds
// about `limit` bytes of the daemon's memory, and its write deadline cuts it off.

#include <utility>
#include <boost/asio.hpp>
#include <deque>
#include <string>
#include <vector>

namespace binds::server {

namespace asio = boost::asio;

class Outbox {
 public:
  // What a queued frame costs beyond its bytes (the string and its deque slot): a flood of tiny
  // frames (PONGs) must hit the limit as surely as a few big ones. bytes() counts it.
  static constexpr std::size_t kFrameOverhead = 64;

  Outbox(asio::any_io_executor strand, std::size_t limit) : writer_signal_(strand), room_signal_(strand), limit_(limit) {}

  // Never blocks. False if the client is gone.
  bool push(std::string frame) {
    if (closed_) return false;
    bytes_ += frame.size() + kFrameOverhead;
    q_.push_back(std::move(frame));
    if (writer_waiting_) {
      writer_waiting_ = false;
      writer_signal_.cancel();
    }
    return true;
  }

  std::size_t bytes() const { return bytes_; }
  bool full() const { return bytes_ >= limit_; }
  bool closed() const { return closed_; }

  // Waits until the client has read enough to be under the limit. False once closed, or once
  // *give_up is true (checked at every wake_room_waiters()).
  asio::awaitable<bool> room(const bool* give_up = nullptr) {
    while (!closed_ && bytes_ >= limit_) {
      if (give_up && *give_up) co_return false;
      room_signal_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await room_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return !closed_;
  }

  // Writer: waits for frames; false once closed and drained.
  asio::awaitable<bool> take(std::vector<std::string>& out) {
    for (;;) {
      if (!q_.empty()) {
        out.assign(std::make_move_iterator(q_.begin()), std::make_move_iterator(q_.end()));
        q_.clear();
        co_return true;
      }
      if (closed_) co_return false;
      writer_waiting_ = true;
      writer_signal_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await writer_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // Writer: frames handed out by take() are on the wire; their bytes no longer count.
  void written(std::size_t frames, std::size_t bytes) {
    bytes_ -= std::min(bytes_, bytes + frames * kFrameOverhead);
    if (bytes_ < limit_) room_signal_.cancel();
  }

  // Wakes room() waiters so they look at their give_up flag again.
  void wake_room_waiters() { room_signal_.cancel(); }

  // No more frames; the writer drains what is queued and stops; room() waiters give up.
  void close() {
    closed_ = true;
    writer_signal_.cancel();
    room_signal_.cancel();
  }

  // Drops queued frames as well (the socket is gone, nobody will read them).
  void abort() {
    q_.clear();
    bytes_ = 0;
    close();
  }

 private:
  asio::steady_timer writer_signal_;
  asio::steady_timer room_signal_;
  const std::size_t limit_;
  std::deque<std::string> q_;
  std::size_t bytes_ = 0;
  bool closed_ = false;
  bool writer_waiting_ = false;
};

}  // namespace binds::server
