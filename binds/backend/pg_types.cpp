#include "binds/backend/pg_types.hpp"

#include "binds/backend/pg_array.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace binds::backend::pg {
namespace {

using protocol::Type;

struct OidInfo {
  std::uint32_t oid;
  const char* name;
  Type type;
  std::uint32_t element = 0;  // arrays: the element type's OID
};

// Display names as libpq-based drivers gave them, so columns keep their names. Enough for the
// common types without a catalog round trip per result; others are text named "oid:<n>".
constexpr OidInfo kOids[] = {
    {16, "bool", Type::boolean},        {17, "bytea", Type::bytes},
    {18, "char", Type::text},           {19, "name", Type::text},
    {20, "int8", Type::int64},          {21, "int2", Type::int64},
    {23, "int4", Type::int64},          {25, "text", Type::text},
    {26, "oid", Type::int64},           {114, "json", Type::json},
    {142, "xml", Type::text},           {700, "float4", Type::float64},
    {701, "float8", Type::float64},     {790, "money", Type::text},
    {869, "inet", Type::text},          {650, "cidr", Type::text},
    {829, "macaddr", Type::text},       {1042, "bpchar", Type::text},
    {1043, "varchar", Type::text},      {1082, "date", Type::date},
    {1083, "time", Type::time},         {1114, "timestamp", Type::timestamp},
    {1184, "timestamptz", Type::timestamp}, {1186, "interval", Type::interval},
    {1266, "timetz", Type::time},       {1560, "bit", Type::text},
    {1562, "varbit", Type::text},       {1700, "numeric", Type::decimal},
    {2249, "record", Type::text},       {2950, "uuid", Type::uuid},
    {3802, "jsonb", Type::json},        {705, "unknown", Type::text},
    {2278, "void", Type::text},
    // Arrays of the scalar types above: MessagePack arrays of their element values.
    {1000, "_bool", Type::array, 16},   {1001, "_bytea", Type::array, 17},
    {1002, "_char", Type::array, 18},   {1003, "_name", Type::array, 19},
    {1005, "_int2", Type::array, 21},   {1007, "_int4", Type::array, 23},
    {1009, "_text", Type::array, 25},   {1014, "_bpchar", Type::array, 1042},
    {1015, "_varchar", Type::array, 1043}, {1016, "_int8", Type::array, 20},
    {1021, "_float4", Type::array, 700}, {1022, "_float8", Type::array, 701},
    {1028, "_oid", Type::array, 26},    {1115, "_timestamp", Type::array, 1114},
    {1182, "_date", Type::array, 1082}, {1183, "_time", Type::array, 1083},
    {1185, "_timestamptz", Type::array, 1184}, {1187, "_interval", Type::array, 1186},
    {1231, "_numeric", Type::array, 1700}, {1270, "_timetz", Type::array, 1266},
    {199, "_json", Type::array, 114},   {2951, "_uuid", Type::array, 2950},
    {3807, "_jsonb", Type::array, 3802},
};

const OidInfo* info_of(std::uint32_t oid) {
  for (const auto& info : kOids)
    if (info.oid == oid) return &info;
  return nullptr;
}

// The element type of an array column, from the name column_of() gave it.
Type element_type(std::string_view db_type) {
  for (const auto& info : kOids) {
    if (info.type == Type::array && db_type == info.name) {
      const OidInfo* e = info_of(info.element);
      return e ? e->type : Type::text;
    }
  }
  return Type::text;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

ValueView parse_int(std::string_view s) {
  std::int64_t v = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec == std::errc() && res.ptr == s.data() + s.size()) return ValueView::int64(v);
  return ValueView::text(s);  // out of range (an oid above 2^63 cannot be, but be safe)
}

ValueView parse_float(std::string_view s) {
  const auto d = parse_pg_float(s);
  return d ? ValueView::float64(*d) : ValueView::text(s);
}

}  // namespace

protocol::Column column_of(const pgwire::ColumnDescription& d) {
  protocol::Column c;
  c.name = std::string(d.name);
  if (const OidInfo* info = info_of(d.type_oid)) {
    c.type = info->type;
    c.db_type = info->name;
    return c;
  }
  c.type = Type::text;
  c.db_type = "oid:" + std::to_string(d.type_oid);
  return c;
}

std::vector<protocol::Column> columns_of(const pgwire::RowDescription& rd) {
  std::vector<protocol::Column> cols;
  cols.reserve(rd.columns.size());
  for (const auto& d : rd.columns) cols.push_back(column_of(d));
  return cols;
}

std::optional<std::size_t> decode_bytea(std::string_view in, char* out) {
  std::size_t n = 0;
  if (in.size() >= 2 && in[0] == '\\' && in[1] == 'x') {
    const std::size_t digits = in.size() - 2;
    if (digits % 2 != 0) return std::nullopt;
    const char* p = in.data() + 2;
    for (std::size_t i = 0; i < digits; i += 2) {
      const int hi = hex_value(p[i]);
      const int lo = hex_value(p[i + 1]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out[n++] = static_cast<char>((hi << 4) | lo);
    }
    return n;
  }
  // bytea_output = escape: "\\" is a backslash, "\ooo" an octal byte, anything else itself.
  for (std::size_t i = 0; i < in.size();) {
    if (in[i] != '\\') {
      out[n++] = in[i++];
    } else if (i + 1 < in.size() && in[i + 1] == '\\') {
      out[n++] = '\\';
      i += 2;
    } else if (i + 3 < in.size() && in[i + 1] >= '0' && in[i + 1] <= '3' && in[i + 2] >= '0' &&
               in[i + 2] <= '7' && in[i + 3] >= '0' && in[i + 3] <= '7') {
      out[n++] = static_cast<char>(((in[i + 1] - '0') << 6) | ((in[i + 2] - '0') << 3) |
                                   (in[i + 3] - '0'));
      i += 4;
    } else {
      return std::nullopt;
    }
  }
  return n;
}

char* RowConverter::scratch(std::size_t need) {
  if (need > scratch_cap_) {
    scratch_ = std::make_unique_for_overwrite<char[]>(need);
    scratch_cap_ = need;
  }
  return scratch_.get();
}

void RowConverter::release_if_above(std::size_t bytes) {
  if (scratch_cap_ > bytes) {
    scratch_.reset();
    scratch_cap_ = 0;
  }
  if (values_.capacity() > 4096) std::vector<ValueView>().swap(values_);
  for (auto& a : arrays_)
    if (a.capacity() > bytes) std::string().swap(a);
}

std::optional<std::span<const ValueView>> RowConverter::convert(
    const pgwire::DataRow& row, std::span<const protocol::Column> columns) {
  const std::size_t n = columns.size();
  if (row.values.size() != n) return std::nullopt;
  values_.resize(n);

  // Hex bytea decodes to half its text (escape format to at most its text), so the text sizes
  // bound the scratch; one allocation up front keeps every view into it stable.
  std::size_t bytes_need = 0;
  {
    std::size_t i = 0;
    for (auto v : row.values) {
      if (v && columns[i].type == Type::bytes) bytes_need += v->size();
      ++i;
    }
  }
  char* out = bytes_need > 0 ? scratch(bytes_need) : nullptr;

  std::size_t i = 0;
  for (auto v : row.values) {
    ValueView& dst = values_[i];
    const Type t = columns[i].type;
    ++i;
    if (!v) {
      dst = ValueView::null();
      continue;
    }
    const std::string_view s = *v;
    switch (t) {
      case Type::boolean: dst = ValueView::boolean(s == "t"); break;
      case Type::int64: dst = parse_int(s); break;
      case Type::float64: dst = parse_float(s); break;
      case Type::bytes: {
        auto len = decode_bytea(s, out);
        if (!len) {
          dst = ValueView::text(s);  // not bytea text after all; better the text than nothing
        } else {
          dst = ValueView::bytes(std::string_view(out, *len));
          out += *len;
        }
        break;
      }
      case Type::decimal:
      case Type::date:
      case Type::time:
      case Type::timestamp:
      case Type::json:
      case Type::uuid:
      case Type::interval: dst = ValueView::tagged(t, s); break;
      case Type::array: {
        if (arrays_.size() < n) arrays_.resize(n);
        std::string& packed = arrays_[i - 1];
        packed.clear();
        if (encode_array_text(s, element_type(columns[i - 1].db_type), packed)) {
          dst = ValueView::array(packed);
        } else {
          dst = ValueView::text(s);  // not array text after all; better the text than nothing
        }
        break;
      }
      default: dst = ValueView::text(s); break;
    }
  }
  return std::span<const ValueView>(values_.data(), n);
}

std::optional<double> parse_pg_float(std::string_view s) {
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s == "Infinity") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  double d = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), d);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size()) return std::nullopt;
  return d;
}

std::size_t format_double(double d, char* out) {
  auto put = [&](std::string_view s) {
    std::memcpy(out, s.data(), s.size());
    return s.size();
  };
  if (std::isnan(d)) return put("NaN");
  if (std::isinf(d)) return put(d > 0 ? "Infinity" : "-Infinity");
  auto res = std::to_chars(out, out + 32, d);
  return static_cast<std::size_t>(res.ptr - out);
}

void ParamEncoder::encode(std::span<const protocol::Value> params) {
  const std::size_t n = params.size();
  oids_.assign(n, 0);
  values_.assign(n, std::nullopt);
  formats_.clear();
  // Sized before any view into it is taken: the views must not move.
  if (numbers_.size() < n * 32) numbers_.resize(n * 32);
  bool any_binary = false;
  for (std::size_t i = 0; i < n; ++i) {
    const protocol::Value& v = params[i];
    char* num = numbers_.data() + i * 32;
    if (std::holds_alternative<protocol::Null>(v)) continue;  // OID 0: NULL of any type
    if (const bool* b = std::get_if<bool>(&v)) {
      values_[i] = *b ? std::string_view("t") : std::string_view("f");
      oids_[i] = kBoolOid;
    } else if (const std::int64_t* iv = std::get_if<std::int64_t>(&v)) {
      auto res = std::to_chars(num, num + 32, *iv);
      values_[i] = std::string_view(num, static_cast<std::size_t>(res.ptr - num));
      oids_[i] = kInt8Oid;
    } else if (const double* d = std::get_if<double>(&v)) {
      values_[i] = std::string_view(num, format_double(*d, num));
      oids_[i] = kFloat8Oid;
    } else if (const std::string* s = std::get_if<std::string>(&v)) {
      values_[i] = std::string_view(*s);  // OID 0: the server infers the type, like a literal
    } else if (const protocol::Bytes* by = std::get_if<protocol::Bytes>(&v)) {
      values_[i] = std::string_view(by->data);
      oids_[i] = kByteaOid;
      any_binary = true;
    } else if (const protocol::Tagged* t = std::get_if<protocol::Tagged>(&v)) {
      values_[i] = std::string_view(t->text);  // the column's type converts the text
      // An interval's ISO 8601 text reads as text in an untyped context: declare it.
      if (t->type == protocol::Type::interval) oids_[i] = kIntervalOid;
    } else if (const protocol::Array* a = std::get_if<protocol::Array>(&v)) {
      if (arrays_.size() < n) arrays_.resize(n);
      arrays_[i].clear();
      oids_[i] = array_literal(*a, arrays_[i]);
      values_[i] = std::string_view(arrays_[i]);
    }
  }
  if (any_binary) {
    // Binary bytea: no escaping, embedded NULs survive; everything else stays text.
    formats_.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      if (oids_[i] == kByteaOid) formats_[i] = 1;
    }
  }
}

}  // namespace binds::backend::pg
