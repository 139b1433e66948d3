#include "binds/backend/pg_array.hpp"

#include <charconv>
#include <msgpack.hpp>
#include <optional>
#include <vector>

#include "binds/backend/pg_types.hpp"
#include "protocol/messages.hpp"
#include "protocol/utf8.hpp"

namespace binds::backend::pg {
namespace {

using protocol::Type;

struct Sink {
  std::string& out;
  void write(const char* p, std::size_t n) { out.append(p, n); }
};
using Packer = msgpack::packer<Sink>;

void pack_text(Packer& pk, std::string_view s) {
  if (!protocol::is_valid_utf8(s)) {
    const std::string fixed = protocol::repair_utf8(s);
    pk.pack_str(static_cast<std::uint32_t>(fixed.size()));
    pk.pack_str_body(fixed.data(), static_cast<std::uint32_t>(fixed.size()));
    return;
  }
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_element(std::string& out, std::string_view s, Type element) {
  Sink sink{out};
  Packer pk(sink);
  switch (element) {
    case Type::boolean: s == "t" ? pk.pack_true() : pk.pack_false(); return;
    case Type::int64: {
      std::int64_t v = 0;
      auto res = std::from_chars(s.data(), s.data() + s.size(), v);
      if (res.ec == std::errc() && res.ptr == s.data() + s.size()) {
        pk.pack_int64(v);
        return;
      }
      break;
    }
    case Type::float64:
      if (auto d = parse_pg_float(s)) {
        char buf[9];
        protocol::write_float64(*d, buf);
        out.append(buf, sizeof buf);
        return;
      }
      break;
    case Type::bytes: {
      std::string raw(s.size(), '\0');
      if (auto n = decode_bytea(s, raw.data())) {
        pk.pack_bin(static_cast<std::uint32_t>(*n));
        pk.pack_bin_body(raw.data(), static_cast<std::uint32_t>(*n));
        return;
      }
      break;
    }
    default:
      if (protocol::is_text_encoded(element)) {
        const auto code = static_cast<std::int8_t>(static_cast<int>(element) - static_cast<int>(Type::decimal) + 1);
        pk.pack_ext(s.size(), code);
        pk.pack_ext_body(s.data(), static_cast<std::uint32_t>(s.size()));
        return;
      }
      break;
  }
  pack_text(pk, s);  // not what the type promised: the text, rather than nothing
}

class Parser {
 public:
  Parser(std::string_view s, Type element) : s_(s), element_(element) {}

  bool parse(std::string& out) {
    // "[1:3]={...}" (non-default bounds): the bounds are dropped, the values kept.
    if (!s_.empty() && s_[0] == '[') {
      const auto eq = s_.find('=');
      if (eq == std::string_view::npos) return false;
      i_ = eq + 1;
    }
    if (!array(out, 1)) return false;
    skip_space();
    return i_ == s_.size();
  }

 private:
  bool array(std::string& out, int depth) {
    if (depth > protocol::kMaxArrayDepth || i_ >= s_.size() || s_[i_] != '{') return false;
    ++i_;
    std::vector<std::string> items;
    skip_space();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return header(out, 0);
    }
    for (;;) {
      skip_space();
      if (i_ >= s_.size()) return false;
      std::string item;
      if (s_[i_] == '{') {
        if (!array(item, depth + 1)) return false;
      } else if (s_[i_] == '"') {
        ++i_;
        unquoted_.clear();
        while (i_ < s_.size() && s_[i_] != '"') {
          if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
          unquoted_.push_back(s_[i_++]);
        }
        if (i_ >= s_.size()) return false;
        ++i_;
        pack_element(item, unquoted_, element_);
      } else {
        const std::size_t start = i_;
        while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}') ++i_;
        std::string_view token = s_.substr(start, i_ - start);
        while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
        if (token.empty()) return false;
        if (token.size() == 4 && (token == "NULL" || token == "null")) {
          item.push_back(static_cast<char>(0xc0));  // nil
        } else {
          pack_element(item, token, element_);
        }
      }
      items.push_back(std::move(item));
      skip_space();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] != '}') return false;
      ++i_;
      break;
    }
    if (!header(out, items.size())) return false;
    for (const auto& item : items) out += item;
    return true;
  }
  bool header(std::string& out, std::size_t n) {
    Sink sink{out};
    Packer pk(sink);
    pk.pack_array(static_cast<std::uint32_t>(n));
    return true;
  }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  std::string_view s_;
  Type element_;
  std::size_t i_ = 0;
  std::string unquoted_;
};

void quoted(std::string_view text, std::string& out) {
  out.push_back('"');
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

// The leaves' common type: null leaves do not count; kind stays `null` if there is none, and
// becomes `text`-with-mixed when they differ (tracked by `mixed`).
void leaf_types(const protocol::Array& a, Type& kind, bool& mixed) {
  for (const auto& item : a.items) {
    if (const auto* inner = std::get_if<protocol::Array>(&item)) {
      leaf_types(*inner, kind, mixed);
      continue;
    }
    const Type t = protocol::value_type(item);
    if (t == Type::null) continue;
    if (kind == Type::null) {
      kind = t;
    } else if (kind != t) {
      const bool numbers = (kind == Type::int64 || kind == Type::float64) && (t == Type::int64 || t == Type::float64);
      if (numbers) {
        kind = Type::float64;
      } else {
        mixed = true;
      }
    }
  }
}

void literal(const protocol::Array& a, std::string& out) {
  out.push_back('{');
  bool first = true;
  char num[32];
  for (const auto& item : a.items) {
    if (!first) out.push_back(',');
    first = false;
    if (std::holds_alternative<protocol::Null>(item)) {
      out += "NULL";
    } else if (const bool* b = std::get_if<bool>(&item)) {
      out += *b ? "t" : "f";
    } else if (const std::int64_t* i = std::get_if<std::int64_t>(&item)) {
      out.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, *i).ptr - num));
    } else if (const double* d = std::get_if<double>(&item)) {
      out.append(num, format_double(*d, num));
    } else if (const std::string* s = std::get_if<std::string>(&item)) {
      quoted(*s, out);
    } else if (const protocol::Bytes* by = std::get_if<protocol::Bytes>(&item)) {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string hex = "\\x";
      for (unsigned char c : by->data) {
        hex.push_back(kHex[c >> 4]);
        hex.push_back(kHex[c & 15]);
      }
      quoted(hex, out);
    } else if (const protocol::Tagged* t = std::get_if<protocol::Tagged>(&item)) {
      quoted(t->text, out);
    } else if (const protocol::Array* inner = std::get_if<protocol::Array>(&item)) {
      literal(*inner, out);
    }
  }
  out.push_back('}');
}

}  // namespace

bool encode_array_text(std::string_view text, Type element, std::string& out) {
  return Parser(text, element).parse(out);
}

std::uint32_t array_literal(const protocol::Array& a, std::string& out) {
  literal(a, out);
  Type kind = Type::null;
  bool mixed = false;
  leaf_types(a, kind, mixed);
  if (mixed) return 0;
  switch (kind) {
    case Type::boolean: return 1000;
    case Type::bytes: return 1001;
    case Type::text: return 1009;
    case Type::int64: return 1016;
    case Type::float64: return 1022;
    case Type::date: return 1182;
    case Type::time: return 1183;
    case Type::interval: return 1187;
    case Type::decimal: return 1231;
    case Type::uuid: return 2951;
    default: return 0;
  }
}

}  // namespace binds::backend::pg
