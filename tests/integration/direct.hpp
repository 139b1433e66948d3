#pragma once
// Reading a backend straight, bypassing bindsd: what tests count to prove what was committed.

#include <stdexcept>
#include <string>
#include <vector>

#include "binds/driver.hpp"
#include "client/format.hpp"

namespace binds::test {

struct Collect : RowSink {
  std::vector<protocol::Row> rows;
  bool columns(std::vector<protocol::Column>) override { return true; }
  bool row(protocol::Row& r) override {
    rows.push_back(r);
    return true;
  }
};

inline std::vector<protocol::Row> direct(const std::string& url, const std::string& sql) {
  BackendError err;
  auto conn = connect(parse_url(url), "direct-check", err);
  if (!conn) throw std::runtime_error("direct connect failed: " + err.message);
  Collect sink;
  ExecResult res;
  if (auto e = conn->execute(sql, {}, sink, res)) throw std::runtime_error(sql + ": " + e->message);
  return sink.rows;
}

inline std::int64_t as_int(const protocol::Value& v) {
  if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
  return std::stoll(client::value_text(v));
}

}  // namespace binds::test
