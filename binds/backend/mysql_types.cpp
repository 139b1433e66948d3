#include "binds/backend/mysql_types.hpp"

#include <errmsg.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace binds::backend::mysql {

namespace {

using protocol::Type;

constexpr unsigned kBinaryCharset = 63;
// MariaDB's NOT_FIXED_DEC is 39 (31 in MySQL): any value from 31 up means "no fixed decimals".
constexpr unsigned kFloatNotFixed = 31;

std::string_view ext_attr(const MYSQL_FIELD& f, mariadb_field_attr_t which) {
  MARIADB_CONST_STRING s{nullptr, 0};
  if (mariadb_field_attr(&s, &f, which) != 0 || s.str == nullptr) return {};
  return {s.str, s.length};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The names Connector/C++ 1.1 gave (the old driver's db_type), for continuity.
std::string type_name(const MYSQL_FIELD& f) {
  const bool uns = (f.flags & UNSIGNED_FLAG) != 0;
  const bool bin = f.charsetnr == kBinaryCharset;
  auto num = [uns](const char* base) { return uns ? std::string(base) + " UNSIGNED" : std::string(base); };
  if ((f.flags & ENUM_FLAG) != 0) return "ENUM";
  if ((f.flags & SET_FLAG) != 0) return "SET";
  switch (f.type) {
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL: return num("DECIMAL");
    case MYSQL_TYPE_TINY: return num("TINYINT");
    case MYSQL_TYPE_SHORT: return num("SMALLINT");
    case MYSQL_TYPE_INT24: return num("MEDIUMINT");
    case MYSQL_TYPE_LONG: return num("INT");
    case MYSQL_TYPE_LONGLONG: return num("BIGINT");
    case MYSQL_TYPE_FLOAT: return num("FLOAT");
    case MYSQL_TYPE_DOUBLE: return num("DOUBLE");
    case MYSQL_TYPE_NULL: return "NULL";
    case MYSQL_TYPE_TIMESTAMP: return "TIMESTAMP";
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE: return "DATE";
    case MYSQL_TYPE_TIME: return "TIME";
    case MYSQL_TYPE_DATETIME: return "DATETIME";
    case MYSQL_TYPE_YEAR: return "YEAR";
    case MYSQL_TYPE_BIT: return "BIT";
    case MYSQL_TYPE_JSON: return "JSON";
    case MYSQL_TYPE_ENUM: return "ENUM";
    case MYSQL_TYPE_SET: return "SET";
    case MYSQL_TYPE_GEOMETRY: return "GEOMETRY";
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_VAR_STRING: return bin ? "VARBINARY" : "VARCHAR";
    case MYSQL_TYPE_STRING: return bin ? "BINARY" : "CHAR";
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB: return bin ? "BLOB" : "TEXT";
    default: return "UNKNOWN";
  }
}

ValueView decimal_of_u64(std::uint64_t v, Scratch& scratch) {
  auto res = std::to_chars(scratch.buf, scratch.buf + sizeof scratch.buf, v);
  return ValueView::tagged(Type::decimal, std::string_view(scratch.buf, res.ptr - scratch.buf));
}

ValueView from_u64(std::uint64_t v, Scratch& scratch) {
  if (v > static_cast<std::uint64_t>(INT64_MAX)) return decimal_of_u64(v, scratch);
  return ValueView::int64(static_cast<std::int64_t>(v));
}

double parse_double(const char* p, std::size_t n) {
  double d = 0;
  std::from_chars(p, p + n, d);
  return d;
}

// The number the server's text form of a floating-point column denotes: it prints a FLOAT with
// FLT_DIG (6) significant digits and any fixed-decimals column with exactly its decimals, both
// correctly rounded, as printf does.
double as_printed(double v, unsigned decimals, bool single) {
  char buf[400];  // %.30f of DBL_MAX: 309 integer digits + point + 30
  int n;
  if (decimals < kFloatNotFixed) {
    n = std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(decimals), v);
  } else if (single) {
    n = std::snprintf(buf, sizeof buf, "%.6g", v);
  } else {
    return v;
  }
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return v;
  return parse_double(buf, static_cast<std::size_t>(n));
}

unsigned fraction_digits(const ColumnInfo& ci, unsigned long second_part) {
  if (ci.decimals <= 6) return ci.decimals;
  return second_part != 0 ? 6 : 0;
}

}  // namespace

void describe(const MYSQL_FIELD& f, protocol::Column& col, ColumnInfo& ci) {
  col.name.assign(f.name ? f.name : "", f.name ? f.name_length : 0);
  ci = ColumnInfo{};
  ci.decimals = f.decimals;
  const bool uns = (f.flags & UNSIGNED_FLAG) != 0;
  const bool bin = f.charsetnr == kBinaryCharset;
  const std::string_view ext_type = ext_attr(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME);
  const std::string_view format = ext_attr(f, MARIADB_FIELD_ATTR_FORMAT_NAME);
  col.db_type = !ext_type.empty() ? upper(ext_type) : iequals(format, "json") ? "JSON" : type_name(f);
  auto set = [&](Type t, Conv c) {
    col.type = t;
    ci.conv = c;
  };
  switch (f.type) {
    case MYSQL_TYPE_NULL: set(Type::null, Conv::null); break;
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_YEAR: set(Type::int64, Conv::integer); break;
    case MYSQL_TYPE_LONGLONG:
      if (uns) {
        set(Type::decimal, Conv::unsigned64);
      } else {
        set(Type::int64, Conv::integer);
      }
      break;
    case MYSQL_TYPE_BIT: set(f.length >= 64 ? Type::decimal : Type::int64, Conv::bit); break;
    case MYSQL_TYPE_FLOAT: set(Type::float64, Conv::float32); break;
    case MYSQL_TYPE_DOUBLE: set(Type::float64, Conv::float64); break;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL: set(Type::decimal, Conv::decimal); break;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE: set(Type::date, Conv::date); break;
    case MYSQL_TYPE_TIME: set(Type::time, Conv::time); break;
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_TIMESTAMP: set(Type::timestamp, Conv::timestamp); break;
    case MYSQL_TYPE_JSON: set(Type::json, Conv::json); break;
    case MYSQL_TYPE_GEOMETRY: set(Type::bytes, Conv::bytes); break;
    default:
      // Strings, blobs, ENUM, SET and MariaDB's plugin types (UUID, INET6), which travel as strings.
      if (iequals(ext_type, "uuid") && !bin) {
        set(Type::uuid, Conv::uuid);
      } else if (iequals(format, "json") && !bin) {
        set(Type::json, Conv::json);
      } else if (bin && (f.flags & (ENUM_FLAG | SET_FLAG)) == 0) {
        set(Type::bytes, Conv::bytes);
      } else {
        set(Type::text, Conv::text);
      }
      break;
  }
}

ValueView from_text(const ColumnInfo& ci, const char* p, unsigned long n, Scratch& scratch) {
  if (p == nullptr) return ValueView::null();
  const std::string_view s(p, n);
  switch (ci.conv) {
    case Conv::null: return ValueView::null();
    case Conv::integer:
    case Conv::unsigned64: {
      std::int64_t v = 0;
      auto res = std::from_chars(p, p + n, v);
      if (res.ec == std::errc() && res.ptr == p + n) return ValueView::int64(v);
      // Only a BIGINT UNSIGNED above 2^63-1 can miss int64; keep its digits.
      return ValueView::tagged(Type::decimal, s);
    }
    case Conv::bit: return from_bytes(ci, s, scratch);
    case Conv::float32:
    case Conv::float64: return ValueView::float64(parse_double(p, n));
    case Conv::decimal: return ValueView::tagged(Type::decimal, s);
    case Conv::date: return ValueView::tagged(Type::date, s);
    case Conv::time: return ValueView::tagged(Type::time, s);
    case Conv::timestamp: return ValueView::tagged(Type::timestamp, s);
    case Conv::json: return ValueView::tagged(Type::json, s);
    case Conv::uuid: return ValueView::tagged(Type::uuid, s);
    case Conv::bytes: return ValueView::bytes(s);
    case Conv::text: break;
  }
  return ValueView::text(s);
}

ValueView from_int(const ColumnInfo& ci, std::int64_t raw, Scratch& scratch) {
  if (ci.conv == Conv::unsigned64) return from_u64(static_cast<std::uint64_t>(raw), scratch);
  return ValueView::int64(raw);
}

ValueView from_float(const ColumnInfo& ci, float v) {
  return ValueView::float64(as_printed(static_cast<double>(v), ci.decimals, true));
}

ValueView from_double(const ColumnInfo& ci, double v) {
  return ValueView::float64(as_printed(v, ci.decimals, false));
}

ValueView from_temporal(const ColumnInfo& ci, const MYSQL_TIME& t, Scratch& scratch) {
  char* b = scratch.buf;
  const std::size_t cap = sizeof scratch.buf;
  int n = 0;
  switch (ci.conv) {
    case Conv::date:
      n = std::snprintf(b, cap, "%04u-%02u-%02u", t.year, t.month, t.day);
      return ValueView::tagged(Type::date, std::string_view(b, static_cast<std::size_t>(n)));
    case Conv::time:
      // Connector/C folds the days of a TIME into its hours (838:59:59 is the top).
      n = std::snprintf(b, cap, "%s%02u:%02u:%02u", t.neg ? "-" : "", t.hour, t.minute, t.second);
      break;
    default:
      n = std::snprintf(b, cap, "%04u-%02u-%02u %02u:%02u:%02u", t.year, t.month, t.day, t.hour,
                        t.minute, t.second);
      break;
  }
  const unsigned digits = fraction_digits(ci, t.second_part);
  if (digits > 0 && n > 0) {
    char frac[8];
    std::snprintf(frac, sizeof frac, "%06lu", t.second_part % 1000000);
    b[n] = '.';
    std::memcpy(b + n + 1, frac, digits);
    n += 1 + static_cast<int>(digits);
  }
  return ValueView::tagged(ci.conv == Conv::time ? Type::time : Type::timestamp,
                           std::string_view(b, static_cast<std::size_t>(n)));
}

ValueView from_bytes(const ColumnInfo& ci, std::string_view s, Scratch& scratch) {
  switch (ci.conv) {
    case Conv::bit: {
      std::uint64_t v = 0;
      for (unsigned char c : s) v = (v << 8) | c;
      return from_u64(v, scratch);
    }
    case Conv::decimal: return ValueView::tagged(Type::decimal, s);
    case Conv::json: return ValueView::tagged(Type::json, s);
    case Conv::uuid: return ValueView::tagged(Type::uuid, s);
    case Conv::bytes: return ValueView::bytes(s);
    default: return ValueView::text(s);
  }
}

bool is_connection_errno(unsigned n) {
  if (n >= 2000 && n <= 2999) return true;
  switch (n) {
    case 1040:  // ER_CON_COUNT_ERROR
    case 1053:  // ER_SERVER_SHUTDOWN
    case 1152:  // ER_ABORTING_CONNECTION
    case 1153:  // ER_NET_PACKET_TOO_LARGE: the server closes the connection
    case 1154:  // ER_NET_READ_ERROR_FROM_PIPE
    case 1155:  // ER_NET_FCNTL_ERROR
    case 1156:  // ER_NET_PACKETS_OUT_OF_ORDER
    case 1157:  // ER_NET_UNCOMPRESS_ERROR
    case 1158:  // ER_NET_READ_ERROR
    case 1159:  // ER_NET_READ_INTERRUPTED
    case 1160:  // ER_NET_ERROR_ON_WRITE
    case 1161:  // ER_NET_WRITE_INTERRUPTED
    case 1184:  // ER_NEW_ABORTING_CONNECTION
    case 1927:  // ER_CONNECTION_KILLED
    case 4031:  // ER_CLIENT_INTERACTION_TIMEOUT
      return true;
    default:
      return false;
  }
}

BackendError make_error(unsigned number, std::string_view sqlstate, std::string_view message) {
  BackendError e;
  e.message = message.empty() ? std::string("MySQL error ") + std::to_string(number) : std::string(message);
  // Connector/C's own errors carry the placeholder "HY000"; keep it, it is what clients see too.
  e.sqlstate = std::string(sqlstate);
  if (number != 0) e.number = number;
  if (is_connection_errno(number)) {
    e.code = protocol::ErrorCode::backend_unavailable;
    e.connection_broken = true;
  }
  return e;
}

BackendError error_of(MYSQL* m) {
  return make_error(mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
}

BackendError error_of(MYSQL_STMT* stmt) {
  if (mysql_stmt_errno(stmt) != 0) {
    return make_error(mysql_stmt_errno(stmt), mysql_stmt_sqlstate(stmt), mysql_stmt_error(stmt));
  }
  if (stmt->mysql == nullptr) return make_error(CR_SERVER_LOST, "HY000", "the connection to the server is gone");
  return error_of(stmt->mysql);
}

}  // namespace binds::backend::mysql
