#pragma once
// Message bodies (PROTOCOL.md §3–§7): MessagePack maps with string keys. Encoders return whole
// frames (header + body) ready to write; decoders take a frame body and report errors as text so
// the caller can answer PROTOCOL_ERROR / BAD_REQUEST with the reason.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/errors.hpp"
#include "protocol/frame.hpp"
#include "protocol/value.hpp"

namespace binds::protocol {

inline constexpr int kProtocolVersion = 1;

struct Hello {
  std::vector<std::int64_t> versions{kProtocolVersion};
  std::string client;
};

struct HelloOk {
  int version = kProtocolVersion;
  std::string server;
  std::uint32_t max_frame = 0;
  std::uint32_t batch_rows = 0;
  std::string default_bind;
  // Optional request fields and behaviours this server knows (§3), e.g. "in_tx".
  std::vector<std::string> features;
};

struct QueryRequest {
  std::optional<std::string> bind;
  std::string sql;
  std::vector<Value> params;
  std::uint32_t timeout_ms = 0;  // 0 = the bind's statement_timeout
  // Runs only inside the transaction open on its bind; refused unrun without one (§6.5).
  bool in_tx = false;
};

enum class Isolation { backend_default, read_uncommitted, read_committed, repeatable_read, serializable };

// BEGIN (§6.5). COMMIT and ROLLBACK carry only the bind.
struct BeginRequest {
  std::optional<std::string> bind;
  Isolation isolation = Isolation::backend_default;
  bool read_only = false;
};

struct BindInfo {
  std::string key;
  std::string backend;
  std::string database;
  bool is_default = false;
};

struct Complete {
  std::int64_t affected = 0;
  std::int64_t row_count = 0;
  std::optional<std::int64_t> last_insert_id;
  bool in_transaction = false;
};

struct ErrorInfo {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  std::optional<std::string> bind;
  std::string sqlstate;                // "" = none
  std::optional<std::int64_t> number;  // backend error number
  std::optional<bool> may_have_executed;
};

// ADMIN (§4.1): a command, its optional bind argument and further arguments (kill's client id,
// pause's "--wait").
struct AdminRequest {
  std::string command;
  std::optional<std::string> bind;
  std::vector<std::string> args;
};

// TABLE: the reply to ADMIN, a generic table so any client can print it.
struct Table {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  std::string message;  // one line for humans, e.g. "reloaded: 1 added, 0 removed"
};

// --- encoders: whole frames ---
std::string encode_hello(const Hello& m);
std::string encode_hello_ok(const HelloOk& m);
std::string encode_query(std::uint32_t id, const QueryRequest& m);
std::string encode_begin(std::uint32_t id, const BeginRequest& m);
// COMMIT or ROLLBACK.
std::string encode_end(FrameType type, std::uint32_t id, const std::optional<std::string>& bind);
std::string encode_cancel(std::uint32_t id, std::uint32_t target);
std::string encode_admin(std::uint32_t id, const AdminRequest& m);
std::string encode_table(std::uint32_t id, const Table& m);
std::string encode_empty(FrameType type, std::uint32_t id);  // PING, LIST_BINDS, PONG
std::string encode_columns(std::uint32_t id, std::span<const Column> columns);
std::string encode_complete(std::uint32_t id, const Complete& m);
std::string encode_error(std::uint32_t id, const ErrorInfo& m);
std::string encode_binds(std::uint32_t id, const std::vector<BindInfo>& binds);

// Accumulates rows into one ROWS frame without building an intermediate object tree.
class RowBatchWriter {
 public:
  void add(const Row& row);
  void add(std::span<const ValueView> row);
  std::size_t rows() const { return rows_; }
  std::size_t bytes() const { return buf_.size(); }
  // Returns the frame and resets the writer for the next batch.
  std::string finish(std::uint32_t id);
  // Returns a frame of every row but the last (which began at byte `last_row_start`, the bytes()
  // before its add) and keeps that row as the start of the next batch: how a batch that grew past
  // max_frame is cut without re-encoding anything.
  std::string finish_all_but_last(std::uint32_t id, std::size_t last_row_start);

 private:
  std::string buf_;
  std::size_t rows_ = 0;
};

// --- decoders: false + error text on malformed input ---
// An ERROR frame whose body fits max_frame: an overlong message (a backend echoing a 100 KB
// statement) is cut at a UTF-8 boundary and says so.
std::string encode_error_within(std::uint32_t id, ErrorInfo info, std::size_t max_frame);

// The 9 bytes of a MessagePack float 64 (0xcb, big-endian IEEE 754). msgpack-c's pack_double
// writes an integral double as an integer; every float64 the server sends uses this instead.
void write_float64(double d, char out[9]);

// One value from its MessagePack encoding (an array's ValueView holds one).
bool decode_packed_value(std::string_view packed, Value& out, std::string& error);

bool decode_hello(const std::string& body, Hello& out, std::string& error);
bool decode_hello_ok(const std::string& body, HelloOk& out, std::string& error);
bool decode_query(const std::string& body, QueryRequest& out, std::string& error);
bool decode_begin(const std::string& body, BeginRequest& out, std::string& error);
// COMMIT / ROLLBACK body: the optional bind.
bool decode_end(const std::string& body, std::optional<std::string>& bind, std::string& error);
bool decode_cancel(const std::string& body, std::uint32_t& target, std::string& error);
bool decode_admin(const std::string& body, AdminRequest& out, std::string& error);
bool decode_table(const std::string& body, Table& out, std::string& error);
bool decode_columns(const std::string& body, std::vector<Column>& out, std::string& error);
// Appends the batch's rows to out.
bool decode_rows(const std::string& body, std::vector<Row>& out, std::string& error);
bool decode_complete(const std::string& body, Complete& out, std::string& error);
bool decode_error(const std::string& body, ErrorInfo& out, std::string& error);
bool decode_binds(const std::string& body, std::vector<BindInfo>& out, std::string& error);
// Checks that a body is a map (PING, LIST_BINDS, PONG bodies carry nothing else in v1).
bool decode_empty(const std::string& body, std::string& error);

}  // namespace binds::protocol
