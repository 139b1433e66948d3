#include "client/format.hpp"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include "client/width.hpp"

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

namespace {
std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> out;
  for (std::size_t pos = 0;;) {
    auto nl = s.find('\n', pos);
    if (nl == std::string_view::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, nl - pos));
    pos = nl + 1;
  }
}
std::size_t max_line_width(std::string_view s) {
  std::size_t w = 0;
  for (auto l : split_lines(s)) w = std::max(w, display_width(l));
  return w;
}
void pad(std::ostream& os, std::size_t n) {
  for (; n; --n) os << ' ';
}

// psql's \x layout: a "-[ RECORD n ]" rule sized to the widest line, then "name | value" lines.
void print_expanded(std::ostream& os, const std::vector<std::string>& headers,
                    const std::vector<std::vector<std::string>>& rows) {
  std::size_t name_w = 0, value_w = 0;
  for (const auto& h : headers) name_w = std::max(name_w, max_line_width(h));
  for (const auto& r : rows)
    for (const auto& c : r) value_w = std::max(value_w, max_line_width(c));
  if (rows.empty()) {
    os << "(0 rows)\n";
    return;
  }
  for (std::size_t n = 0; n < rows.size(); ++n) {
    std::string rule = "-[ RECORD " + std::to_string(n + 1) + " ]";
    if (rule.size() <= name_w) rule += std::string(name_w + 1 - rule.size(), '-') + "+";
    if (rule.size() < name_w + 3 + value_w) rule += std::string(name_w + 3 + value_w - rule.size(), '-');
    os << rule << "\n";
    for (std::size_t i = 0; i < headers.size(); ++i) {
      auto values = split_lines(i < rows[n].size() ? std::string_view(rows[n][i]) : std::string_view());
      for (std::size_t k = 0; k < values.size(); ++k) {
        std::string_view name = k == 0 ? std::string_view(headers[i]) : std::string_view();
        os << name;
        pad(os, name_w - display_width(name));
        os << " | " << values[k];
        if (k + 1 < values.size()) {
          pad(os, value_w - display_width(values[k]));
          os << '+';
        }
        os << "\n";
      }
    }
  }
}
}  // namespace

void print_table(std::ostream& os, const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows, bool expanded) {
  if (expanded) return print_expanded(os, headers, rows);
  std::vector<std::size_t> w(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) w[i] = max_line_width(headers[i]);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], max_line_width(r[i]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::vector<std::vector<std::string_view>> lines(w.size());
    std::size_t height = 1;
    for (std::size_t i = 0; i < w.size(); ++i) {
      lines[i] = split_lines(i < cells.size() ? std::string_view(cells[i]) : std::string_view());
      height = std::max(height, lines[i].size());
    }
    for (std::size_t k = 0; k < height; ++k) {
      for (std::size_t i = 0; i < w.size(); ++i) {
        std::string_view text = k < lines[i].size() ? lines[i][k] : std::string_view();
        const bool more = k + 1 < lines[i].size();
        os << (i ? "| " : " ") << text;
        // The last column is not padded (no trailing blanks) unless it carries the '+' mark.
        if (i + 1 < w.size() || more) pad(os, w[i] - display_width(text));
        if (more) os << '+';
        else if (i + 1 < w.size()) os << ' ';
      }
      os << "\n";
    }
  };
  line(headers);
  for (std::size_t i = 0; i < w.size(); ++i) os << (i ? "-+-" : "-") << std::string(w[i], '-');
  os << "-\n";
  for (const auto& r : rows) line(r);
}

namespace {
std::vector<std::vector<std::string>> cell_texts(const std::vector<Row>& rows, const TableStyle& style) {
  std::vector<std::vector<std::string>> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    std::vector<std::string> cells;
    for (const auto& v : row)
      cells.push_back(std::holds_alternative<protocol::Null>(v) ? style.null_text : value_text(v));
    out.push_back(std::move(cells));
  }
  return out;
}
}  // namespace

void print_binds(std::ostream& os, const std::vector<protocol::BindInfo>& binds, Format f) {
  if (f == Format::json) {
    os << "[";
    for (std::size_t j = 0; j < binds.size(); ++j)
      os << (j ? "," : "") << "{\"key\":" << json_escape(binds[j].key) << ",\"backend\":" << json_escape(binds[j].backend)
         << ",\"database\":" << json_escape(binds[j].database)
         << ",\"default\":" << (binds[j].is_default ? "true" : "false") << "}";
    os << "]\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : binds) rows.push_back({b.key, b.backend, b.database, b.is_default ? "yes" : ""});
  print_table(os, {"key", "backend", "database", "default"}, rows);
}

std::string error_text(const ServerError& e) {
  std::string out = e.what();
  if (!e.info.sqlstate.empty()) out += " [SQLSTATE " + e.info.sqlstate + "]";
  if (e.info.number) out += " [errno " + std::to_string(*e.info.number) + "]";
  if (e.info.bind) out += " (bind " + *e.info.bind + ")";
  return out;
}

void print_admin_table(std::ostream& os, const protocol::Table& t, Format f, const TableStyle& style) {
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
      print_table(os, t.columns, cell_texts(t.rows, style), style.expanded);
    }
  }
  if (!t.message.empty()) os << t.message << "\n";
}

void print_result(std::ostream& os, const Result& r, Format f, const TableStyle& style) {
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
  print_table(os, headers, cell_texts(r.rows, style), style.expanded);
  if (style.expanded) return;  // psql's \x has no row-count footer (it says "(0 rows)" itself)
  os << "(" << r.rows.size() << " row" << (r.rows.size() == 1 ? "" : "s") << ")\n";
}

}  // namespace binds::client
