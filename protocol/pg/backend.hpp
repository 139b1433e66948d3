#pragma once
// Backend (server -> client) messages of the PostgreSQL v3 protocol: decoders for bindsd's
// PostgreSQL backend, encoders for a PostgreSQL front end. Same contract as frontend.hpp:
// encoders append one whole message to a caller-owned string (or nothing, on error); decoders
// validate the whole body up front and return views into it, so iterating a DataRow or a
// RowDescription afterwards cannot fail and allocates nothing.
//
// All functions are pure and may be called from any thread.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/pg/error.hpp"
#include "protocol/pg/message.hpp"

namespace binds::pgwire {

namespace backend {
inline constexpr char authentication = 'R';
inline constexpr char backend_key_data = 'K';
inline constexpr char bind_complete = '2';
inline constexpr char close_complete = '3';
inline constexpr char command_complete = 'C';
inline constexpr char copy_data = 'd';
inline constexpr char copy_done = 'c';
inline constexpr char copy_in_response = 'G';
inline constexpr char copy_out_response = 'H';
inline constexpr char copy_both_response = 'W';
inline constexpr char data_row = 'D';
inline constexpr char empty_query_response = 'I';
inline constexpr char error_response = 'E';
inline constexpr char function_call_response = 'V';
inline constexpr char negotiate_protocol_version = 'v';
inline constexpr char no_data = 'n';
inline constexpr char notice_response = 'N';
inline constexpr char notification_response = 'A';
inline constexpr char parameter_description = 't';
inline constexpr char parameter_status = 'S';
inline constexpr char parse_complete = '1';
inline constexpr char portal_suspended = 's';
inline constexpr char ready_for_query = 'Z';
inline constexpr char row_description = 'T';
}  // namespace backend

// ---------------------------------------------------------------------------- authentication

enum class AuthKind : std::int32_t {
  ok = 0,
  kerberos_v5 = 2,
  cleartext_password = 3,
  md5_password = 5,
  gss = 7,
  gss_continue = 8,
  sspi = 9,
  sasl = 10,
  sasl_continue = 11,
  sasl_final = 12,
};

using Md5Salt = std::array<unsigned char, 4>;

struct Authentication {
  AuthKind kind = AuthKind::ok;
  Md5Salt md5_salt{};          // md5_password
  StringList sasl_mechanisms;  // sasl; never empty
  std::string_view data;       // sasl_continue, sasl_final, gss_continue
};

// Unknown request codes give bad_value: a client cannot answer them anyway.
Result<Authentication> decode_authentication(const Message& m);

void encode_authentication_ok(std::string& out);
void encode_authentication_cleartext_password(std::string& out);
void encode_authentication_md5_password(std::string& out, const Md5Salt& salt);
// At least one mechanism, none empty (bad_value otherwise).
[[nodiscard]] Error encode_authentication_sasl(std::string& out,
                                               std::span<const std::string_view> mechanisms);
[[nodiscard]] Error encode_authentication_sasl_continue(std::string& out, std::string_view data);
[[nodiscard]] Error encode_authentication_sasl_final(std::string& out, std::string_view data);

// ---------------------------------------------------------------------------- session

struct ParameterStatus {
  std::string_view name;
  std::string_view value;
};

struct BackendKeyData {
  std::int32_t process_id = 0;
  std::uint32_t secret_key = 0;
};

enum class TransactionStatus : char { idle = 'I', in_transaction = 'T', failed = 'E' };

struct ReadyForQuery {
  TransactionStatus status = TransactionStatus::idle;
};

struct NotificationResponse {
  std::int32_t process_id = 0;
  std::string_view channel;
  std::string_view payload;
};

struct NegotiateProtocolVersion {
  std::int32_t newest_minor = 0;    // newest minor version the server supports
  StringList unrecognized_options;  // _pq_.* options it did not recognise
};

Result<ParameterStatus> decode_parameter_status(const Message& m);
// Protocol 3.0 keys only (4 bytes); longer 3.2 keys give trailing_bytes.
Result<BackendKeyData> decode_backend_key_data(const Message& m);
Result<ReadyForQuery> decode_ready_for_query(const Message& m);
Result<NotificationResponse> decode_notification_response(const Message& m);
Result<NegotiateProtocolVersion> decode_negotiate_protocol_version(const Message& m);

[[nodiscard]] Error encode_parameter_status(std::string& out, std::string_view name,
                                            std::string_view value);
void encode_backend_key_data(std::string& out, std::int32_t process_id, std::uint32_t secret_key);
void encode_ready_for_query(std::string& out, TransactionStatus status);
[[nodiscard]] Error encode_notification_response(std::string& out, std::int32_t process_id,
                                                 std::string_view channel,
                                                 std::string_view payload);
[[nodiscard]] Error encode_negotiate_protocol_version(
    std::string& out, std::int32_t newest_minor,
    std::span<const std::string_view> unrecognized_options);

// ---------------------------------------------------------------------------- results

struct ColumnDescription {
  std::string_view name;
  std::uint32_t table_oid = 0;   // 0 if not a table column
  std::int16_t column_attr = 0;  // attribute number, 0 if not a table column
  std::uint32_t type_oid = 0;
  std::int16_t type_size = 0;  // pg_type.typlen; negative = variable width
  std::int32_t type_modifier = -1;
  std::int16_t format = 0;  // 0 text, 1 binary
};

// The fields of a RowDescription, decoded one at a time as they are iterated.
class ColumnList {
 public:
  class iterator {
   public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = ColumnDescription;
    using difference_type = std::ptrdiff_t;
    using reference = const ColumnDescription&;
    using pointer = const ColumnDescription*;

    iterator() = default;
    iterator(const char* p, const char* end) : p_(p), end_(end) { load(); }
    const ColumnDescription& operator*() const { return current_; }
    const ColumnDescription* operator->() const { return &current_; }
    iterator& operator++() {
      p_ = next_;
      load();
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator& o) const { return p_ == o.p_; }

   private:
    void load();

    const char* p_ = nullptr;
    const char* end_ = nullptr;
    const char* next_ = nullptr;
    ColumnDescription current_;
  };

  ColumnList() = default;
  ColumnList(std::string_view region, std::size_t count) : region_(region), count_(count) {}

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  iterator begin() const { return iterator(region_.data(), region_.data() + region_.size()); }
  iterator end() const {
    auto e = region_.data() + region_.size();
    return iterator(e, e);
  }

 private:
  std::string_view region_;
  std::size_t count_ = 0;
};

struct RowDescription {
  ColumnList columns;
};

struct DataRow {
  ValueList values;  // one per column; nullopt = NULL
};

struct ParameterDescription {
  OidList types;
};

struct CommandComplete {
  std::string_view tag;  // "INSERT 0 5", "SELECT 2", "CREATE TABLE", ...
};

// The row count at the end of a command tag: INSERT (after the OID), UPDATE, DELETE, SELECT,
// MERGE, MOVE, FETCH, COPY. nullopt for other tags (CREATE TABLE, BEGIN, ...) and malformed ones.
std::optional<std::uint64_t> command_tag_rows(std::string_view tag);

// CopyInResponse, CopyOutResponse and CopyBothResponse share this layout.
struct CopyResponse {
  std::int8_t format = 0;  // overall: 0 text, 1 binary
  Int16List column_formats;
};

Result<RowDescription> decode_row_description(const Message& m);
Result<DataRow> decode_data_row(const Message& m);
Result<ParameterDescription> decode_parameter_description(const Message& m);
Result<CommandComplete> decode_command_complete(const Message& m);
// Accepts any of 'G', 'H', 'W'; the caller tells them apart by m.type.
Result<CopyResponse> decode_copy_response(const Message& m);

[[nodiscard]] Error encode_row_description(std::string& out,
                                           std::span<const ColumnDescription> columns);
[[nodiscard]] Error encode_data_row(std::string& out,
                                    std::span<const std::optional<std::string_view>> values);
[[nodiscard]] Error encode_parameter_description(std::string& out,
                                                 std::span<const std::uint32_t> types);
[[nodiscard]] Error encode_command_complete(std::string& out, std::string_view tag);
// `type` is backend::copy_in_response, copy_out_response or copy_both_response (else bad_value).
[[nodiscard]] Error encode_copy_response(std::string& out, char type, std::int8_t format,
                                         std::span<const std::int16_t> column_formats);
void encode_parse_complete(std::string& out);
void encode_bind_complete(std::string& out);
void encode_close_complete(std::string& out);
void encode_no_data(std::string& out);
void encode_empty_query_response(std::string& out);
void encode_portal_suspended(std::string& out);

// Writes one DataRow column by column, straight from whatever holds the values, without building
// a list first. finish() patches the count and length; until then `out` holds a partial message.
class DataRowWriter {
 public:
  explicit DataRowWriter(std::string& out);
  DataRowWriter(const DataRowWriter&) = delete;
  DataRowWriter& operator=(const DataRowWriter&) = delete;

  void add(std::string_view value);
  void add_null();
  void add_nullable(const std::optional<std::string_view>& value) {
    value ? add(*value) : add_null();
  }
  // Errors: too_many (> 65535 columns), too_large. On error `out` is restored.
  [[nodiscard]] Error finish();

 private:
  detail::Writer w_;
  std::size_t count_at_;
  std::size_t count_ = 0;
};

// ---------------------------------------------------------------------------- errors and notices

struct NoticeField {
  char code = 0;
  std::string_view value;
};

// Every (code, value) pair of an ErrorResponse or NoticeResponse, in order, including codes this
// codec does not name (the protocol tells clients to ignore those, a proxy may pass them on).
class NoticeFields {
 public:
  class iterator {
   public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = NoticeField;
    using difference_type = std::ptrdiff_t;
    using reference = value_type;

    iterator() = default;
    explicit iterator(const char* p) : p_(p) {}
    NoticeField operator*() const { return {p_[0], std::string_view(p_ + 1)}; }
    iterator& operator++() {
      p_ += 1 + std::strlen(p_ + 1) + 1;
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    const char* p_ = nullptr;
  };

  NoticeFields() = default;
  explicit NoticeFields(std::string_view region) : region_(region) {}

  iterator begin() const { return iterator(region_.data()); }
  iterator end() const { return iterator(region_.data() + region_.size()); }
  bool empty() const { return region_.empty(); }
  // The first value with this code, or "" if absent.
  std::string_view get(char code) const;

 private:
  std::string_view region_;  // the fields, without the final terminator
};

// ErrorResponse / NoticeResponse with the documented fields picked out in one pass. Absent fields
// are empty.
struct Notice {
  std::string_view severity;               // S, localised
  std::string_view severity_nonlocalized;  // V
  std::string_view sqlstate;               // C
  std::string_view message;                // M
  std::string_view detail;                 // D
  std::string_view hint;                   // H
  std::string_view position;               // P
  std::string_view internal_position;      // p
  std::string_view internal_query;         // q
  std::string_view where;                  // W
  std::string_view schema_name;            // s
  std::string_view table_name;             // t
  std::string_view column_name;            // c
  std::string_view data_type_name;         // d
  std::string_view constraint_name;        // n
  std::string_view file;                   // F
  std::string_view line;                   // L
  std::string_view routine;                // R
  NoticeFields fields;                     // all of them, including unknown codes
};

Result<Notice> decode_error_response(const Message& m);
Result<Notice> decode_notice_response(const Message& m);

// Fields are written in the given order; codes must be non-zero (bad_value). The protocol wants
// S, V, C and M in every ErrorResponse.
[[nodiscard]] Error encode_error_response(std::string& out, std::span<const NoticeField> fields);
[[nodiscard]] Error encode_notice_response(std::string& out, std::span<const NoticeField> fields);
// The usual minimal ErrorResponse: S and V set to `severity` (ERROR, FATAL, PANIC), C, M.
[[nodiscard]] Error encode_error_response(std::string& out, std::string_view severity,
                                          std::string_view sqlstate, std::string_view message);

}  // namespace binds::pgwire
