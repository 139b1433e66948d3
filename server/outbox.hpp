#pragma once
// A client's outgoing frames: filled by the engine's replies and drained to the socket by the
// session's writer. Everything runs on the session's strand, so there is no lock.
//
// The writer runs only while there is something to write, and take() ends it once the queue is
// empty. An idle client then holds no writer coroutine, no pending wait and no queue storage
// (10,000 idle clients must cost little).
//
// A reply's last frame is written at once (push(frame, true)) when the socket takes it: most
// replies are a few small frames made in one step, and writing them there costs one send instead
// of a writer coroutine, a write completion and a deadline armed and cancelled (profiled at about
// a third of the daemon's user CPU per request). Other frames (rows of a streaming result, a
// result's columns) are left for the writer, which starts after the current step, so frames made
// together still go out in one write.
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

  // Called (on the strand) to start a writer that calls take() until it returns false.
  void on_start_writer(std::function<void()> f) { start_writer_ = std::move(f); }
  // Called (on the strand) when frames wait and no writer runs: it must call kick() on the
  // strand after the current step (a post). Without it, push() starts the writer at once.
  void on_schedule(std::function<void()> f) { schedule_ = std::move(f); }
  // Called (on the strand) to write queued() to the socket without waiting; it reports what went
  // out through consumed(). Without it, every frame goes through the writer.
  void on_write_now(std::function<void()> f) { write_now_ = std::move(f); }

  // Never blocks. False if the client is gone. `last`: the frame ends a reply (write it now if
  // the socket takes it).
  bool push(std::string frame, bool last = false) {
    if (closed_) return false;
    bytes_ += frame.size() + kFrameOverhead;
    q_.push_back(std::move(frame));
    // Never past frames the writer holds: they would go out after this one.
    if (last && !writing_ && write_now_) {
      write_now_();
      if (q_.empty()) return true;
    }
    if (writer_active_ || !start_writer_) return true;
    if (last || !schedule_) {
      writer_active_ = true;
      start_writer_();
    } else if (!kick_pending_) {
      kick_pending_ = true;
      schedule_();
    }
    return true;
  }

  // The scheduled start of the writer (see on_schedule).
  void kick() {
    kick_pending_ = false;
    if (writer_active_ || q_.empty() || !start_writer_) return;
    writer_active_ = true;
    start_writer_();
  }

  // For write_now: the queued frames, oldest first, and how many of their bytes went out.
  const std::vector<std::string>& queued() const { return q_; }
  void consumed(std::size_t n) {
    std::size_t frames = 0;
    const std::size_t sent = n;
    while (n > 0 && frames < q_.size() && n >= q_[frames].size()) n -= q_[frames++].size();
    q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(frames));
    if (n > 0 && !q_.empty()) q_.front().erase(0, n);  // a partial write: rare, the writer does the rest
    bytes_ -= std::min(bytes_, sent + frames * kFrameOverhead);
    if (bytes_ < limit_ && waiters_ > 0) room_signal_.cancel();
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
      ++waiters_;
      co_await room_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      --waiters_;
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
    writing_ = true;
    return true;
  }

  bool writer_active() const { return writer_active_; }

  // Writer: it has stopped (take() said there is nothing left, or the socket failed).
  void writer_ended() {
    writer_active_ = false;
    writing_ = false;
    room_signal_.cancel();
  }

  // Waits until no writer runs. Call after close(): nothing starts one again.
  asio::awaitable<void> writer_stopped() {
    while (writer_active_) {
      boost::system::error_code ec;
      ++waiters_;
      co_await room_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      --waiters_;
    }
  }

  // Writer: frames handed out by take() are on the wire; their bytes no longer count.
  void written(std::size_t frames, std::size_t bytes) {
    writing_ = false;
    bytes_ -= std::min(bytes_, bytes + frames * kFrameOverhead);
    if (bytes_ < limit_ && waiters_ > 0) room_signal_.cancel();
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
  bool writing_ = false;       // the writer holds frames take() gave it, not all written yet
  bool kick_pending_ = false;  // schedule_() was called and its kick() has not run
  int waiters_ = 0;            // coroutines waiting on room_signal_
  std::function<void()> start_writer_;
  std::function<void()> schedule_;
  std::function<void()> write_now_;
};

}  // namespace binds::server
