#pragma once
// Frontend (client -> server) messages of the PostgreSQL v3 protocol: encoders for bindsd's
// PostgreSQL backend, decoders for a PostgreSQL front end. Sans-I/O and allocation-free:
// encoders append one whole message to a caller-owned string (or nothing, on error); decoders
// validate the whole body and return views into it.
//
// All functions are pure and may be called from any thread.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/pg/error.hpp"
#include "protocol/pg/message.hpp"

namespace binds::pgwire {

namespace frontend {
inline constexpr char bind = 'B';
inline constexpr char close = 'C';
inline constexpr char copy_data = 'd';
inline constexpr char copy_done = 'c';
inline constexpr char copy_fail = 'f';
inline constexpr char describe = 'D';
inline constexpr char execute = 'E';
inline constexpr char flush = 'H';
inline constexpr char function_call = 'F';
inline constexpr char parse = 'P';
// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse all use 'p'; only the
// authentication request the server sent tells them apart.
inline constexpr char password = 'p';
inline constexpr char query = 'Q';
inline constexpr char sync = 'S';
inline constexpr char terminate = 'X';
}  // namespace frontend

// Request codes of startup packets.
inline constexpr std::uint32_t kProtocolVersion3 = 3u << 16;  // 196608, version 3.0
inline constexpr std::uint32_t kCancelRequestCode = 80877102;
inline constexpr std::uint32_t kSslRequestCode = 80877103;
inline constexpr std::uint32_t kGssEncRequestCode = 80877104;

// ---------------------------------------------------------------------------- startup phase

struct StartupParam {
  std::string_view name;
  std::string_view value;
};

// The name/value pairs of a StartupMessage (user, database, options, application_name,
// replication, _pq_.* protocol options, any GUC).
class StartupParams {
 public:
  class iterator {
   public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = StartupParam;
    using difference_type = std::ptrdiff_t;
    using reference = value_type;

    iterator() = default;
    explicit iterator(const char* p) : p_(p) {}
    StartupParam operator*() const {
      std::string_view name(p_);
      return {name, std::string_view(p_ + name.size() + 1)};
    }
    iterator& operator++();
    iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    const char* p_ = nullptr;
  };

  StartupParams() = default;
  StartupParams(std::string_view region, std::size_t count) : region_(region), count_(count) {}

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  iterator begin() const { return iterator(region_.data()); }
  iterator end() const { return iterator(region_.data() + region_.size()); }
  // The value of the last occurrence of `name` (PostgreSQL lets a later one win).
  std::optional<std::string_view> find(std::string_view name) const;

 private:
  std::string_view region_;  // the pairs, without the final terminator
  std::size_t count_ = 0;
};

enum class StartupKind : std::uint8_t { startup, ssl_request, gssenc_request, cancel_request };

struct StartupMessage {
  std::uint16_t major = 3;
  // A minor version above 0 asks for protocol extensions: a server that does not know them
  // answers with NegotiateProtocolVersion.
  std::uint16_t minor = 0;
  StartupParams params;

  std::optional<std::string_view> user() const { return params.find("user"); }
  // PostgreSQL defaults the database to the user name when absent.
  std::optional<std::string_view> database() const { return params.find("database"); }
};

struct CancelRequest {
  std::int32_t process_id = 0;
  std::uint32_t secret_key = 0;
};

struct StartupPacket {
  StartupKind kind = StartupKind::startup;
  StartupMessage startup;  // kind == startup
  CancelRequest cancel;    // kind == cancel_request
};

// Decodes a packet framed in Phase::startup (type '\0'). Protocol 3.x only: 2.0 and unknown
// request codes give unsupported_protocol. CancelRequest must carry the 4-byte key of 3.0.
Result<StartupPacket> decode_startup_packet(const Message& m);

// Empty names are refused (bad_value): an empty name ends the list on the wire.
[[nodiscard]] Error encode_startup_message(std::string& out, std::span<const StartupParam> params,
                                           std::uint16_t minor_version = 0);
// user and database first, then `extra` (application_name, options, ...). An empty database is
// left out, so the server defaults it to the user name.
[[nodiscard]] Error encode_startup_message(std::string& out, std::string_view user,
                                           std::string_view database,
                                           std::span<const StartupParam> extra = {});
void encode_ssl_request(std::string& out);
void encode_gssenc_request(std::string& out);
void encode_cancel_request(std::string& out, std::int32_t process_id, std::uint32_t secret_key);

// ---------------------------------------------------------------------------- authentication

struct PasswordMessage {
  std::string_view password;  // cleartext, or "md5..." for MD5 authentication
};

struct SaslInitialResponse {
  std::string_view mechanism;
  std::optional<std::string_view> data;  // nullopt when the client sent length -1
};

// Also the layout of GSSResponse.
struct SaslResponse {
  std::string_view data;
};

Result<PasswordMessage> decode_password_message(const Message& m);
Result<SaslInitialResponse> decode_sasl_initial_response(const Message& m);
Result<SaslResponse> decode_sasl_response(const Message& m);

[[nodiscard]] Error encode_password_message(std::string& out, std::string_view password);
[[nodiscard]] Error encode_sasl_initial_response(std::string& out, std::string_view mechanism,
                                                 std::optional<std::string_view> data);
[[nodiscard]] Error encode_sasl_response(std::string& out, std::string_view data);

// ---------------------------------------------------------------------------- queries

struct Query {
  std::string_view sql;
};

struct Parse {
  std::string_view statement;  // "" = the unnamed statement
  std::string_view sql;
  OidList param_types;  // 0 = let the server infer
};

struct Bind {
  std::string_view portal;  // "" = the unnamed portal
  std::string_view statement;
  // 0 entries: all text; 1: applies to every parameter; else one per parameter.
  Int16List param_formats;
  ValueList params;
  Int16List result_formats;  // same convention, for result columns
};

struct Describe {
  ObjectKind kind = ObjectKind::statement;
  std::string_view name;
};

struct Execute {
  std::string_view portal;
  std::int32_t max_rows = 0;  // 0 (or negative, for PostgreSQL) = no limit
};

struct Close {
  ObjectKind kind = ObjectKind::statement;
  std::string_view name;
};

// CopyData has the same layout in both directions.
struct CopyData {
  std::string_view data;
};

struct CopyFail {
  std::string_view message;
};

Result<Query> decode_query(const Message& m);
Result<Parse> decode_parse(const Message& m);
Result<Bind> decode_bind(const Message& m);
Result<Describe> decode_describe(const Message& m);
Result<Execute> decode_execute(const Message& m);
Result<Close> decode_close(const Message& m);
Result<CopyData> decode_copy_data(const Message& m);
Result<CopyFail> decode_copy_fail(const Message& m);

// For messages without a body, either direction (Sync, Flush, Terminate, CopyDone,
// ParseComplete, BindComplete, CloseComplete, NoData, EmptyQueryResponse, PortalSuspended):
// checks the type and that the body is empty.
[[nodiscard]] Error decode_empty(const Message& m, char type);

[[nodiscard]] Error encode_query(std::string& out, std::string_view sql);
[[nodiscard]] Error encode_parse(std::string& out, std::string_view statement, std::string_view sql,
                                 std::span<const std::uint32_t> param_types = {});
[[nodiscard]] Error encode_bind(std::string& out, std::string_view portal,
                                std::string_view statement,
                                std::span<const std::int16_t> param_formats,
                                std::span<const std::optional<std::string_view>> params,
                                std::span<const std::int16_t> result_formats);
[[nodiscard]] Error encode_describe(std::string& out, ObjectKind kind, std::string_view name);
[[nodiscard]] Error encode_execute(std::string& out, std::string_view portal,
                                   std::int32_t max_rows = 0);
[[nodiscard]] Error encode_close(std::string& out, ObjectKind kind, std::string_view name);
void encode_sync(std::string& out);
void encode_flush(std::string& out);
void encode_terminate(std::string& out);
[[nodiscard]] Error encode_copy_data(std::string& out, std::string_view data);
void encode_copy_done(std::string& out);
[[nodiscard]] Error encode_copy_fail(std::string& out, std::string_view message);

}  // namespace binds::pgwire
