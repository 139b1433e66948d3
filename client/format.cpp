#include "client/format.hpp"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace binds::client {

bool parse_format(const std::string& s, Format& out) {
  if (s == "table") out = Format::table;
  else if (s == "json") out = Format::json;
  else if (s == "csv") out = Format::csv;
  else return false;
  return true;
}

namespace {
std::string hex(const std::string& data) {
  static const char* d = "0123456789abcdef";
  std::string out = "\\x";
  for (unsigned char c : data) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}
std::string float_text(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  std::ostringstream os;
  os << std::setprecision(17) << d;
  // Prefer the shortest form that reads back the same.
  for (int p = 1; p <= 17; ++p) {
    std::ostringstream t;
    t << std::setprecision(p) << d;
    if (std::stod(t.str()) == d) return t.str();
  }
  return os.str();
}
// Display width in terminal columns: count UTF-8 code points, not bytes.
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += "\"\"";
    else out.push_back(c);
  }
  return out + "\"";
}
}  // namespace

std::string value_text(const Value& v) {
  struct V {
    std::string operator()(const protocol::Null&) const { return "NULL"; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return float_text(d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const protocol::Bytes& b) const { return hex(b.data); }
    std::string operator()(const protocol::Tagged& t) const { return t.text; }
    // PostgreSQL's own array spelling: {1,2,NULL}, {{1,2},{3,4}}, {"a b","c"}.
    std::string operator()(const protocol::Array& a) const {
      std::string out = "{";
      for (std::size_t i = 0; i < a.items.size(); ++i) {
        if (i) out += ',';
        const Value& item = a.items[i];
        std::string text = std::visit(*this, item);
        const bool quote = std::holds_alternative<std::string>(item) || std::holds_alternative<protocol::Tagged>(item);
        if (!quote) {
          out += text;
          continue;
        }
        out += '"';
        for (char c : text) {
          if (c == '"' || c == '\\') out += '\\';
          out += c;
        }
        out += '"';
      }
      return out + "}";
    }
  };
  return std::visit(V{}, v);
}

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out + "\"";
}

namespace {
std::string json_value(const Value& v) {
  if (std::holds_alternative<protocol::Null>(v)) return "null";
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) {
    if (!std::isfinite(*d)) return json_escape(float_text(*d));
    return float_text(*d);
  }
  if (auto* t = std::get_if<protocol::Tagged>(&v); t && t->type == protocol::Type::json) return t->text;
  if (auto* a = std::get_if<protocol::Array>(&v)) {
    std::string out = "[";
    for (std::size_t i = 0; i < a->items.size(); ++i) out += (i ? "," : "") + json_value(a->items[i]);
    return out + "]";
  }
  return json_escape(value_text(v));
}
}  // namespace

void print_table(std::ostream& os, const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) w[i] = width(headers[i]);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < w.size(); ++i) {
      const std::string& c = i < cells.size() ? cells[i] : std::string();
      os << (i ? " | " : " ") << c;
      if (i + 1 < w.size()) os << std::string(w[i] - width(c), ' ');
    }
    os << "\n";
  };
  line(headers);
  for (std::size_t i = 0; i < w.size(); ++i) os << (i ? "-+-" : "-") << std::string(w[i], '-');
  os << "-\n";
  for (const auto& r : rows) line(r);
}

void print_admin_table(std::ostream& os, const protocol::Table& t, Format f) {
  Result r;
  r.has_rows = !t.columns.empty();
  for (const auto& c : t.columns) r.columns.push_back(protocol::Column{c, protocol::Type::text, ""});
  r.rows = t.rows;
  if (f == Format::json) {
    os << "{\"message\":" << json_escape(t.message) << ",\"rows\":[";
    for (std::size_t i = 0; i < t.rows.size(); ++i) {
      os << (i ? "," : "") << "{";
      for (std::size_t j = 0; j < t.columns.size() && j < t.rows[i].size(); ++j)
        os << (j ? "," : "") << json_escape(t.columns[j]) << ":" << json_value(t.rows[i][j]);
      os << "}";
    }
    os << "]}\n";
    return;
  }
  if (r.has_rows) {
    if (f == Format::csv) {
      print_result(os, r, f);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& row : t.rows) {
        std::vector<std::string> cells;
        for (const auto& v : row) cells.push_back(value_text(v));
        rows.push_back(std::move(cells));
      }
      print_table(os, t.columns, rows);
    }
  }
  if (!t.message.empty()) os << t.message << "\n";
}

void print_result(std::ostream& os, const Result& r, Format f) {
  const auto& c = r.complete;
  if (f == Format::json) {
    os << "{";
    if (r.has_rows) {
      os << "\"columns\":[";
      for (std::size_t i = 0; i < r.columns.size(); ++i)
        os << (i ? "," : "") << "{\"name\":" << json_escape(r.columns[i].name) << ",\"type\":\""
           << protocol::type_name(r.columns[i].type) << "\"}";
      os << "],\"rows\":[";
      for (std::size_t i = 0; i < r.rows.size(); ++i) {
        os << (i ? "," : "") << "[";
        for (std::size_t j = 0; j < r.rows[i].size(); ++j) os << (j ? "," : "") << json_value(r.rows[i][j]);
        os << "]";
      }
      os << "],";
    }
    os << "\"affected\":" << c.affected << ",\"last_insert_id\":"
       << (c.last_insert_id ? std::to_string(*c.last_insert_id) : "null") << "}\n";
    return;
  }
  if (f == Format::csv) {
    if (!r.has_rows) {
      os << "affected,last_insert_id\n" << c.affected << ","
         << (c.last_insert_id ? std::to_string(*c.last_insert_id) : "") << "\n";
      return;
    }
    for (std::size_t i = 0; i < r.columns.size(); ++i) os << (i ? "," : "") << csv_field(r.columns[i].name);
    os << "\n";
    for (const auto& row : r.rows) {
      for (std::size_t j = 0; j < row.size(); ++j) {
        // CSV cannot tell NULL from '' unless NULL is an unquoted empty field and '' is quoted.
        if (j) os << ",";
        if (std::holds_alternative<protocol::Null>(row[j])) continue;
        auto t = value_text(row[j]);
        os << (t.empty() ? "\"\"" : csv_field(t));
      }
      os << "\n";
    }
    return;
  }
  if (!r.has_rows) {
    os << c.affected << " row" << (c.affected == 1 ? "" : "s") << " affected";
    if (c.last_insert_id) os << ", last insert id " << *c.last_insert_id;
    os << "\n";
    return;
  }
  std::vector<std::string> headers;
  for (const auto& col : r.columns) headers.push_back(col.name);
  std::vector<std::vector<std::string>> rows;
  rows.reserve(r.rows.size());
  for (const auto& row : r.rows) {
    std::vector<std::string> cells;
    for (const auto& v : row) cells.push_back(value_text(v));
    rows.push_back(std::move(cells));
  }
  print_table(os, headers, rows);
  os << "(" << r.rows.size() << " row" << (r.rows.size() == 1 ? "" : "s") << ")\n";
}

}  // namespace binds::client
