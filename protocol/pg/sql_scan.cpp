#include "protocol/pg/sql_scan.hpp"

namespace binds::pgwire {
namespace {

bool ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool digit(char c) { return c >= '0' && c <= '9'; }
bool ident_char(char c) { return ident_start(c) || digit(c) || c == '$'; }

// Index just past the literal that opens at i (a quote character q), or n if it never closes.
std::size_t skip_quoted(std::string_view s, std::size_t i, char q, bool backslash_escapes) {
  const std::size_t n = s.size();
  for (++i; i < n; ++i) {
    if (backslash_escapes && s[i] == '\\') {
      ++i;
    } else if (s[i] == q) {
      if (i + 1 < n && s[i + 1] == q) {
        ++i;  // doubled quote
      } else {
        return i + 1;
      }
    }
  }
  return n;
}

}  // namespace

std::size_t highest_placeholder(std::string_view s) noexcept {
  const std::size_t n = s.size();
  std::size_t highest = 0;
  std::size_t i = 0;
  while (i < n) {
    const char c = s[i];
    if (c == '\'') {
      i = skip_quoted(s, i, '\'', false);
    } else if (c == '"') {
      i = skip_quoted(s, i, '"', false);
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      int depth = 0;
      while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else if (c == '$') {
      std::size_t j = i + 1;
      if (j < n && digit(s[j])) {
        std::size_t value = 0;
        for (; j < n && digit(s[j]); ++j)
          if (value < 1000000) value = value * 10 + static_cast<std::size_t>(s[j] - '0');
        if (value > highest) highest = value;
        i = j;
        continue;
      }
      // $tag$ ... $tag$ (tag may be empty): the body is opaque.
      while (j < n && (ident_start(s[j]) || digit(s[j]))) ++j;
      if (j < n && s[j] == '$') {
        const std::string_view tag = s.substr(i, j - i + 1);
        const std::size_t end = s.find(tag, j + 1);
        i = end == std::string_view::npos ? n : end + tag.size();
      } else {
        ++i;
      }
    } else if (ident_start(c)) {
      const std::size_t start = i;
      while (i < n && ident_char(s[i])) ++i;
      // E'...' (and e'...') is an escape string: backslashes escape the quote.
      if (i - start == 1 && (c == 'E' || c == 'e') && i < n && s[i] == '\'') i = skip_quoted(s, i, '\'', true);
    } else if (digit(c)) {
      // A number such as 1e5 or 12abc is not an identifier start, but "$" cannot follow it
      // as a placeholder either; consuming the run keeps 1$2 from reading as $2.
      while (i < n && ident_char(s[i])) ++i;
    } else {
      ++i;
    }
  }
  return highest;
}

}  // namespace binds::pgwire
