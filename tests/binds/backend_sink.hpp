#pragma once
// A ResultSink for backend tests: collects rows as owning protocol::Values, and can simulate a
// client that stops reading (full() until released) or goes away (drained() returns false).

#include <utility>
#include <boost/asio.hpp>
#include <vector>

#include "binds/backend/backend.hpp"

namespace binds::test {

class CollectSink : public backend::ResultSink {
 public:
  std::vector<protocol::Column> cols;
  std::vector<protocol::Row> rows;
  bool got_columns = false;
  // Simulation knobs.
  std::size_t max_row = SIZE_MAX;
  std::size_t stop_after_rows = SIZE_MAX;  // drained() returns false once this many rows arrived
  int drained_calls = 0;

  void columns(std::span<const protocol::Column> c) override {
    got_columns = true;
    cols.assign(c.begin(), c.end());
  }
  void row(std::span<const backend::ValueView> values) override {
    protocol::Row r;
    r.reserve(values.size());
    for (const auto& v : values) r.push_back(backend::to_value(v));
    rows.push_back(std::move(r));
  }
  bool full() const override { return rows.size() >= stop_after_rows; }
  boost::asio::awaitable<bool> drained() override {
    ++drained_calls;
    co_return rows.size() < stop_after_rows;
  }
  std::size_t max_row_bytes() const override { return max_row; }
};

// Runs a coroutine to completion on a fresh io_context (tests only).
template <class T>
T run_sync(boost::asio::io_context& io, boost::asio::awaitable<T> aw) {
  std::optional<T> out;
  std::exception_ptr ep;
  boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T v) {
    ep = e;
    if (!e) out = std::move(v);
  });
  io.restart();
  io.run();
  if (ep) std::rethrow_exception(ep);
  return std::move(*out);
}

}  // namespace binds::test
