#pragma once
// Typed values as they travel between clients, the broker and backends.
// Six kinds are native MessagePack types; the rest travel as text tagged with their declared type
// (PROTOCOL.md §5), so no precision is lost and no client needs a decimal or date library.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace binds::protocol {

enum class Type : std::uint8_t {
  null = 0,
  boolean,
  int64,
  float64,
  text,
  bytes,
  // Text-encoded types: the value is a string in the canonical form PROTOCOL.md gives.
  decimal,
  date,
  time,
  timestamp,
  json,
  uuid,
  interval,  // ISO 8601 duration text (PROTOCOL.md §5)
  // Not text-encoded: a MessagePack array of element values, nested per dimension.
  array,
};

// Stable wire names ("int64", "timestamp", ...). Unknown name → false.
std::string_view type_name(Type t);
bool type_from_name(std::string_view name, Type& out);
inline bool is_text_encoded(Type t) { return t >= Type::decimal && t <= Type::interval; }

struct Null {
  bool operator==(const Null&) const = default;
};
struct Bytes {
  std::string data;  // raw octets
  bool operator==(const Bytes&) const = default;
};
// decimal/date/time/timestamp/json/uuid/interval: canonical text plus its type.
struct Tagged {
  Type type = Type::text;
  std::string text;
  bool operator==(const Tagged&) const = default;
};

struct Array;
using Value = std::variant<Null, bool, std::int64_t, double, std::string, Bytes, Tagged, Array>;

// An array value (PostgreSQL arrays): elements are Values, an element that is an Array is the next
// dimension. Clients send one as a MessagePack array.
struct Array {
  std::vector<Value> items;
  bool operator==(const Array&) const;
};
inline constexpr int kMaxArrayDepth = 6;  // PostgreSQL's MAXDIM

Type value_type(const Value& v);

struct Column {
  std::string name;
  Type type = Type::text;
  std::string db_type;  // the backend's own type name, e.g. "int4", "VARCHAR", "DECIMAL"
  bool operator==(const Column&) const = default;
};

using Row = std::vector<Value>;

// A value borrowed from someone's buffer (a backend's row, a request being decoded): what rows
// travel as between a backend and a front end, with no heap allocation per value. Valid only as
// long as the buffer it points into.
struct ValueView {
  Type type = Type::null;
  bool b = false;         // boolean
  std::int64_t i = 0;     // int64
  double f = 0;           // float64
  std::string_view s;     // text (UTF-8), bytes (raw octets), the text of decimal..interval, and
                          // for an array its MessagePack encoding, complete (written as is)

  static ValueView null() { return {}; }
  static ValueView boolean(bool v) { return {Type::boolean, v, 0, 0, {}}; }
  static ValueView int64(std::int64_t v) { return {Type::int64, false, v, 0, {}}; }
  static ValueView float64(double v) { return {Type::float64, false, 0, v, {}}; }
  static ValueView text(std::string_view v) { return {Type::text, false, 0, 0, v}; }
  static ValueView bytes(std::string_view v) { return {Type::bytes, false, 0, 0, v}; }
  static ValueView tagged(Type t, std::string_view v) { return {t, false, 0, 0, v}; }
  static ValueView array(std::string_view msgpack) { return {Type::array, false, 0, 0, msgpack}; }
};


}  // namespace binds::protocol
