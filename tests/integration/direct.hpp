#pragma once
// Reading a backend straight, bypassing bindsd: what tests count to prove what was committed.

#include <utility>
#include <boost/asio.hpp>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "binds/backend/backend.hpp"
#include "client/format.hpp"

namespace binds::test {

struct Collect : backend::ResultSink {
  std::vector<protocol::Row> rows;
  void columns(std::span<const protocol::Column>) override {}
  void row(std::span<const backend::ValueView> values) override {
    protocol::Row r;
    r.reserve(values.size());
    for (const auto& v : values) r.push_back(backend::to_value(v));
    rows.push_back(std::move(r));
  }
  bool full() const override { return false; }
  boost::asio::awaitable<bool> drained() override { co_return true; }
  std::size_t max_row_bytes() const override { return SIZE_MAX; }
};

// One statement on a connection of its own, through the backend library (not through bindsd).
inline std::vector<protocol::Row> direct(const std::string& url, const std::string& sql) {
  namespace asio = boost::asio;
  asio::io_context io;
  const DatabaseUrl parsed = parse_url(url);
  backend::ConnectOptions options;
  options.bind_key = "direct-check";
  options.application_name = "binds-test-direct";
  Collect sink;
  std::optional<std::string> failure;
  auto run = [&]() -> asio::awaitable<void> {
    auto r = co_await backend::connect(io.get_executor(), parsed, options);
    if (!r.conn) {
      failure = "direct connect failed: " + r.error.message;
      co_return;
    }
    const backend::Statement st{sql, {}};
    backend::Outcome o = co_await r.conn->execute(st, sink);
    if (o.error) failure = sql + ": " + o.error->message;
    co_await r.conn->close();
  };
  std::exception_ptr ep;
  asio::co_spawn(io, run(), [&](std::exception_ptr e) { ep = e; });
  io.run();
  if (ep) std::rethrow_exception(ep);
  if (failure) throw std::runtime_error(*failure);
  return std::move(sink.rows);
}

inline std::int64_t as_int(const protocol::Value& v) {
  if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
  return std::stoll(client::value_text(v));
}

}  // namespace binds::test
