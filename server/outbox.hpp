#pragma once
// A client's outgoing frame queue: the bounded queue between driver worker threads (which produce
// result frames) and the session's writer coroutine (which drains them to the socket).
// A worker that finds the queue full blocks until the client reads, which stalls only that query:
// the daemon's memory per client stays near `limit`.

#include <utility>
#include <boost/asio.hpp>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace binds::server {

namespace asio = boost::asio;

class Outbox {
 public:
  // What a queued frame costs beyond its bytes (the string and its deque slot): a flood of tiny
  // frames (PONGs) must hit the limit as surely as a few big ones. bytes() counts it.
  static constexpr std::size_t kFrameOverhead = 64;

  Outbox(asio::any_io_executor strand, std::size_t limit) : signal_(strand), limit_(limit) {}

  // Worker threads only (may block). False if the client is gone, or if `give_up` became true
  // while waiting (the request was abandoned; see wake_blocked()).
  bool push_blocking(std::string frame, const std::atomic<bool>* give_up = nullptr) {
    std::unique_lock lock(mu_);
    space_.wait(lock, [&] { return closed_ || bytes_ < limit_ || (give_up && give_up->load()); });
    if (closed_ || (give_up && give_up->load())) return false;
    enqueue_locked(std::move(frame));
    return true;
  }

  // Any thread: re-checks every blocked push_blocking() (after its give_up flag was set).
  void wake_blocked() {
    { std::lock_guard lock(mu_); }
    space_.notify_all();
  }

  // Session strand only: never blocks. For small control frames (COMPLETE, ERROR, PONG, …), which
  // must not wait behind a full queue. Returns false if the client is gone.
  bool push(std::string frame) {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    enqueue_locked(std::move(frame));
    return true;
  }

  std::size_t bytes() {
    std::lock_guard lock(mu_);
    return bytes_;
  }

  // Writer side, on the strand. Waits for frames; false once closed and drained.
  asio::awaitable<bool> take(std::vector<std::string>& out) {
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (!q_.empty()) {
          out.assign(std::make_move_iterator(q_.begin()), std::make_move_iterator(q_.end()));
          q_.clear();
          writer_waiting_ = false;
          co_return true;
        }
        if (closed_) co_return false;
        writer_waiting_ = true;
        signal_.expires_at(asio::steady_timer::time_point::max());
      }
      boost::system::error_code ec;
      co_await signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // Writer side: the frames handed out by take() are on the wire; their bytes no longer count.
  void written(std::size_t n) {
    {
      std::lock_guard lock(mu_);
      bytes_ -= std::min(bytes_, n);
    }
    space_.notify_all();
  }

  // Any thread. Wakes blocked workers (they see false) and the writer (it drains and stops).
  void close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      wake_writer_locked();
    }
    space_.notify_all();
  }

  // Drops queued frames as well (the socket is gone, nobody will read them).
  void abort() {
    {
      std::lock_guard lock(mu_);
      q_.clear();
      bytes_ = 0;
    }
    close();
  }

 private:
  void enqueue_locked(std::string frame) {
    bytes_ += frame.size() + kFrameOverhead;
    q_.push_back(std::move(frame));
    wake_writer_locked();
  }
  void wake_writer_locked() {
    if (!writer_waiting_) return;
    writer_waiting_ = false;
    // The timer belongs to the strand; cancel it there (Asio timers are not thread-safe).
    asio::post(signal_.get_executor(), [this] { signal_.cancel(); });
  }

  asio::steady_timer signal_;
  const std::size_t limit_;
  std::mutex mu_;
  std::condition_variable space_;
  std::deque<std::string> q_;
  std::size_t bytes_ = 0;
  bool closed_ = false;
  bool writer_waiting_ = false;
};

}  // namespace binds::server
