#pragma once
// PostgreSQL types and values for the backend: OID → protocol type and display name, text-format
// result values → ValueView without a heap allocation per value, and protocol::Value parameters →
// Bind values with the type OIDs the libpq driver used. Pure functions and per-connection
// scratch; no I/O.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "binds/backend/backend.hpp"
#include "protocol/pg/backend.hpp"

namespace binds::backend::pg {

inline constexpr std::uint32_t kBoolOid = 16;
inline constexpr std::uint32_t kByteaOid = 17;
inline constexpr std::uint32_t kInt8Oid = 20;
inline constexpr std::uint32_t kFloat8Oid = 701;
inline constexpr std::uint32_t kIntervalOid = 1186;

// The protocol column of one RowDescription field (name, protocol type, db_type as the libpq
// driver named them: "int4", "numeric", ... or "oid:<n>" for types outside the table).
protocol::Column column_of(const pgwire::ColumnDescription& d);
// All columns of a RowDescription.
std::vector<protocol::Column> columns_of(const pgwire::RowDescription& rd);

// Converts DataRows to views. Holds the per-connection scratch (decoded bytea, the view array),
// reused from row to row, so a row costs no allocation once the scratch has grown to the widest
// row seen. The views returned are valid until the next convert() or release().
class RowConverter {
 public:
  // nullopt: the row does not match the columns (a protocol desync).
  std::optional<std::span<const ValueView>> convert(const pgwire::DataRow& row,
                                                    std::span<const protocol::Column> columns);
  // Frees scratch that a very wide row made large.
  void release_if_above(std::size_t bytes);

 private:
  char* scratch(std::size_t need);

  std::vector<ValueView> values_;
  std::vector<std::string> arrays_;  // per column: the MessagePack of an array value
  std::unique_ptr<char[]> scratch_;
  std::size_t scratch_cap_ = 0;
};

// Decodes bytea text output (hex "\x..." or the old escape format) into `out`, which has room for
// at least in.size() bytes. Returns the decoded length, or nullopt if the text is malformed.
std::optional<std::size_t> decode_bytea(std::string_view in, char* out);

// Encodes parameters for Bind. The views in values() point into this object (numbers) or into
// the caller's Values (text, bytes), so both must outlive the encode_bind() call that uses them.
class ParamEncoder {
 public:
  // Fills oids(), formats(), values() for `params`.
  void encode(std::span<const protocol::Value> params);
  std::span<const std::uint32_t> oids() const { return oids_; }
  // Empty when every parameter is text (the Bind then says "all text" in two bytes).
  std::span<const std::int16_t> formats() const { return formats_; }
  std::span<const std::optional<std::string_view>> values() const { return values_; }

 private:
  std::vector<std::uint32_t> oids_;
  std::vector<std::int16_t> formats_;
  std::vector<std::optional<std::string_view>> values_;
  std::vector<char> numbers_;  // text of int64/float64 parameters, 32 bytes per parameter
  std::vector<std::string> arrays_;  // array literals, per parameter
};

// A float4/float8 in PostgreSQL's text output (NaN and the infinities spelled its way); nullopt
// if the text is not one.
std::optional<double> parse_pg_float(std::string_view s);

// Shortest text that reads back as the same double; PostgreSQL's spellings of NaN and infinities.
std::size_t format_double(double d, char* out /* >= 32 bytes */);

}  // namespace binds::backend::pg
