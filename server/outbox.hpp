#pragma once
// A client's outgoing frames: filled by the engine's replies and drained to the socket by the
// session's writer. Everything runs on the session's strand, so there is no lock.
//
// The writer runs only while there is something to write: push() starts it, and take() ends it
// once the queue is empty. An idle client then holds no writer coroutine, no pending wait and no
// queue storage (10,000 idle clients must cost little).
//
// Backpressure: when the unwritten bytes pass `limit`, the engine's backends stop reading results
// (they await room()) and the session stops reading requests, so a client that does not read holds
// about `limit` bytes of the daemon's memory, and its write deadline cuts it off.

#include <utility>
#include <boost/asio.hpp>
#include <functional>
#include <string>
#include <vector>

namespace binds::server {

namespace asio = boost::asio;

class Outbox {
 public:
  // What a queued frame costs beyond its bytes (the string and its deque slot): a flood of tiny
  // frames (PONGs) must hit the limit as surely as a few big ones. bytes() counts it.
  static constexpr std::size_t kFrameOverhead = 64;

  Outbox(asio::any_io_executor strand, std::size_t limit) : room_signal_(strand), limit_(limit) {
    // Set once: waiters only ever wait for a cancel(). Setting the expiry again would cancel the
    // other waiters' waits, and they would cancel ours in turn.
    room_signal_.expires_at(asio::steady_timer::time_point::max());
  }

  // Called (on the strand) when frames arrive and no writer runs; it must start one that calls
  // take() until it returns false.
  void on_start_writer(std::function<void()> f) { start_writer_ = std::move(f); }

  // Never blocks. False if the client is gone.
  bool push(std::string frame) {
    if (closed_) return false;
    bytes_ += frame.size() + kFrameOverhead;
    q_.push_back(std::move(frame));
    if (!writer_active_ && start_writer_) {
      writer_active_ = true;
      start_writer_();
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
      boost::system::error_code ec;
      co_await room_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return !closed_;
  }

  // Writer: the queued frames (into `out`, replacing what it held), or false when there are none:
  // the writer then ends, and the next push() starts another.
  bool take(std::vector<std::string>& out) {
    out.clear();
    if (q_.empty()) {
      writer_active_ = false;
      std::vector<std::string>().swap(q_);  // an idle client keeps no queue storage
      return false;
    }
    out.swap(q_);
    return true;
  }

  bool writer_active() const { return writer_active_; }

  // Writer: it has stopped (take() said there is nothing left, or the socket failed).
  void writer_ended() {
    writer_active_ = false;
    room_signal_.cancel();
  }

  // Waits until no writer runs. Call after close(): nothing starts one again.
  asio::awaitable<void> writer_stopped() {
    while (writer_active_) {
      boost::system::error_code ec;
      co_await room_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
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
    room_signal_.cancel();
  }

  // Drops queued frames as well (the socket is gone, nobody will read them).
  void abort() {
    q_.clear();
    bytes_ = 0;
    close();
  }

 private:
  asio::steady_timer room_signal_;
  const std::size_t limit_;
  std::vector<std::string> q_;  // not a deque: an empty deque still holds a 512-byte block
  std::size_t bytes_ = 0;
  bool closed_ = false;
  bool writer_active_ = false;
  std::function<void()> start_writer_;
};

}  // namespace binds::server
