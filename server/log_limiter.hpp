#pragma once
// Per-client log rate limit: a client that makes the server log an error per request (a flood of
// bad frames, a loop of failing statements) must not flood the journal. Each client may produce a
// burst of lines per second; the rest are counted and reported in one line when the next window
// opens. One limiter per client connection, used on that connection's strand only.

#include <chrono>
#include <cstdint>

namespace binds::server {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimiter(int burst_per_second = 20) : burst_(burst_per_second) {}

  // Whether to log a line now. When a new window opens after suppression, `suppressed` tells how
  // many lines were dropped in the last one (the caller logs that first), else 0.
  bool allow(Clock::time_point now, std::uint64_t& suppressed) {
    suppressed = 0;
    if (now - window_start_ >= std::chrono::seconds(1)) {
      suppressed = dropped_;
      dropped_ = 0;
      used_ = 0;
      window_start_ = now;
    }
    if (used_ < burst_) {
      ++used_;
      return true;
    }
    ++dropped_;
    return false;
  }
  // Lines dropped in the current window (reported at disconnect).
  std::uint64_t pending() const { return dropped_; }

 private:
  int burst_;
  int used_ = 0;
  std::uint64_t dropped_ = 0;
  Clock::time_point window_start_{};
};

}  // namespace binds::server
