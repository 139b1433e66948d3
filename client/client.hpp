#pragma once
// Blocking C++ client for protocol v1 (used by the `binds` CLI, tests and benchmarks).
// A Client is not thread-safe: use one per thread. Errors from the server are thrown as
// ServerError (with the broker code and backend details); transport failures as ClientError.

#include <utility>
#include <boost/asio.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace binds::client {

using protocol::Column;
using protocol::Row;
using protocol::Value;

struct ClientError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ServerError : std::runtime_error {
  explicit ServerError(protocol::ErrorInfo i)
      : std::runtime_error(std::string(protocol::error_code_name(i.code)) + ": " + i.message),
        info(std::move(i)) {}
  protocol::ErrorInfo info;
};

struct Result {
  std::vector<Column> columns;
  std::vector<Row> rows;
  protocol::Complete complete;
  bool has_rows = false;  // a COLUMNS frame came (the statement returns rows)
};

// One response of a pipelined request: either a result or an error.
struct Reply {
  Result result;
  std::optional<protocol::ErrorInfo> error;
  protocol::FrameType final_type = protocol::FrameType::complete;
};

class Client {
 public:
  // address: "unix:/path", "tcp:host:port", "host:port", or a path containing '/'.
  static Client connect(const std::string& address, const std::string& client_name = "binds-cpp");
  Client(Client&&) noexcept;
  ~Client();

  const protocol::HelloOk& server() const { return hello_; }

  Result query(const std::string& sql, const std::vector<Value>& params = {},
               std::optional<std::string> bind = std::nullopt);
  // Streams rows to on_row instead of collecting them; returns the completion.
  protocol::Complete query_stream(const std::string& sql, const std::vector<Value>& params,
                                  std::optional<std::string> bind,
                                  const std::function<void(const std::vector<Column>&)>& on_columns,
                                  const std::function<void(Row&)>& on_row);
  void ping();
  std::vector<protocol::BindInfo> list_binds();
  // An admin command (stats, clients, config, reload, pause/resume/drain/reconnect KEY).
  protocol::Table admin(const std::string& command, std::optional<std::string> bind = std::nullopt,
                        std::vector<std::string> args = {});

  // Explicit transactions (PROTOCOL.md §6.5). Each returns the completion; errors throw.
  protocol::Complete begin(std::optional<std::string> bind = std::nullopt,
                           protocol::Isolation isolation = protocol::Isolation::backend_default,
                           bool read_only = false);
  protocol::Complete commit(std::optional<std::string> bind = std::nullopt);
  protocol::Complete rollback(std::optional<std::string> bind = std::nullopt);

  // Pipelining: send requests, then collect their replies in any order. `in_tx`: the statement
  // runs only inside the transaction open on its bind (send it right behind send_begin: should
  // that BEGIN fail, it is answered NOT_IN_TRANSACTION unrun). Only for servers whose
  // server().features list "in_tx"; throws std::logic_error otherwise.
  std::uint32_t send_query(const std::string& sql, const std::vector<Value>& params = {},
                           std::optional<std::string> bind = std::nullopt, std::uint32_t timeout_ms = 0,
                           bool in_tx = false);
  std::uint32_t send_begin(std::optional<std::string> bind = std::nullopt,
                           protocol::Isolation isolation = protocol::Isolation::backend_default,
                           bool read_only = false);
  std::uint32_t send_end(protocol::FrameType commit_or_rollback, std::optional<std::string> bind = std::nullopt);
  // Asks the server to stop request `target`; the reply to the returned id says whether it was found.
  std::uint32_t send_cancel(std::uint32_t target);
  std::uint32_t send_ping();
  Reply wait(std::uint32_t id);

  // Raw access for tests of malformed input.
  void send_raw(const std::string& bytes);
  // Reads one frame; false on EOF.
  bool read_frame(protocol::Frame& out);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  void handle(const protocol::Frame& f);
  protocol::Frame reply_frame(std::uint32_t id);
  std::unique_ptr<Impl> impl_;
  protocol::HelloOk hello_;
};

// Parses a CLI-style parameter: "42" → int64 (only the canonical form: "007" stays text), "null:" → NULL, "text:42" → text, "float:1.5",
// "bool:true", "bytes:DEADBEEF" (hex), "decimal:1.50", "date:…", "time:…", "timestamp:…",
// "json:…", "uuid:…"; anything else → text. Throws std::invalid_argument on a bad typed value.
Value parse_param(const std::string& s);

}  // namespace binds::client
