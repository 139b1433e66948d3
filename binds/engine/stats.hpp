#pragma once
// Per-bind traffic statistics shared by the sessions (writers, any thread) and the admin and
// metrics views (readers). Lock-free counters; a bind's stats survive reloads that keep the bind.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "protocol/errors.hpp"

namespace binds::engine {

// Cumulative histogram with fixed bucket bounds (seconds), Prometheus style.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,    0.25,  0.5,    1,     2.5,   5,     10};
  void observe(std::chrono::nanoseconds d) {
    double s = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < kBounds.size() && s > kBounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);  // i == size: the +Inf bucket
    sum_ns_.fetch_add(static_cast<std::uint64_t>(d.count()), std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  // Non-cumulative count of bucket i (i == kBounds.size() is +Inf).
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_seconds() const { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9; }
  // Upper bound of the bucket holding quantile q (0 < q <= 1); 0 when empty. Coarse by design.
  double quantile(double q) const {
    std::uint64_t total = count();
    if (total == 0) return 0;
    auto want = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.5);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBounds.size(); ++i) {
      seen += bucket(i);
      if (seen >= want) return kBounds[i];
    }
    return kBounds.back() * 2;  // beyond the last bound
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
  std::atomic<std::uint64_t> count_{0};
};

inline constexpr std::size_t kErrorCodes = static_cast<std::size_t>(protocol::ErrorCode::not_in_transaction) + 1;

struct BindStats {
  std::atomic<std::uint64_t> queries{0};  // requests that reached a backend connection
  std::atomic<std::uint64_t> errors{0};
  std::array<std::atomic<std::uint64_t>, kErrorCodes> errors_by_code{};
  std::atomic<std::uint64_t> bytes_out{0};  // result bytes sent to clients
  std::atomic<std::uint64_t> pipelined{0};  // requests sent behind an unanswered one of their client
  std::atomic<std::uint64_t> resets{0};     // session resets before a connection's next client
  std::atomic<std::uint64_t> bytes_in{0};   // request frame bytes received from clients
  std::atomic<std::uint64_t> commits{0};    // transactions a client's COMMIT ended
  std::atomic<std::uint64_t> rollbacks{0};  // transactions a client's ROLLBACK ended
  Histogram latency;    // from taking the request off the lane queue to its final reply
  Histogram pool_wait;  // time spent waiting for a connection
  void error(protocol::ErrorCode c) {
    errors.fetch_add(1, std::memory_order_relaxed);
    auto i = static_cast<std::size_t>(c);
    if (i < kErrorCodes) errors_by_code[i].fetch_add(1, std::memory_order_relaxed);
  }
};

// Bind key → stats. Entries are never removed while the daemon runs (a re-added bind continues
// its counters, which Prometheus prefers to resets).
class StatsRegistry {
 public:
  std::shared_ptr<BindStats> get(const std::string& key) {
    std::lock_guard lock(mu_);
    auto& p = by_bind_[key];
    if (!p) p = std::make_shared<BindStats>();
    return p;
  }
  std::map<std::string, std::shared_ptr<BindStats>> all() {
    std::lock_guard lock(mu_);
    return by_bind_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<BindStats>> by_bind_;
};

}  // namespace binds::engine
