#include "client/sql_split.hpp"

#include <algorithm>

namespace binds::client {

Dialect dialect_of(std::string_view backend) noexcept {
  if (backend == "mysql" || backend == "mariadb") return Dialect::mysql;
  if (backend == "sqlite") return Dialect::sqlite;
  return Dialect::postgresql;
}

const char* open_name(Open o) noexcept {
  switch (o) {
    case Open::none: return "nothing";
    case Open::string: return "quoted string";
    case Open::identifier: return "quoted identifier";
    case Open::comment: return "/* comment";
    case Open::dollar_quote: return "dollar-quoted string";
  }
  return "?";
}

namespace {

bool ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool digit(char c) { return c >= '0' && c <= '9'; }
bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Splitter {
 public:
  Splitter(std::string_view s, Dialect d, std::size_t first_line) : s_(s), d_(d), first_line_(first_line) {
    for (std::size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n') newlines_.push_back(i);
  }

  Split run() {
    const std::size_t n = s_.size();
    std::size_t i = 0;
    while (i < n && out_.open == Open::none) {
      const char c = s_[i];
      if (blank(c)) {
        ++i;
      } else if (c == ';') {
        finish(i);
        ++i;
        out_.rest = i;
      } else if (line_comment_at(i)) {
        while (i < n && s_[i] != '\n') ++i;
      } else if (c == '/' && i + 1 < n && s_[i + 1] == '*') {
        i = skip_block_comment(i);
      } else {
        mark(i);
        i = skip_token(i);
      }
    }
    if (start_ != npos) {
      out_.rest_significant = true;
      out_.pending = statement(start_, n);
    }
    return std::move(out_);
  }

 private:
  static constexpr std::size_t npos = std::string_view::npos;

  std::size_t line_of(std::size_t pos) const {
    return first_line_ + static_cast<std::size_t>(std::lower_bound(newlines_.begin(), newlines_.end(), pos) -
                                                  newlines_.begin());
  }
  void mark(std::size_t i) {
    if (start_ == npos) start_ = i;
  }
  Statement statement(std::size_t from, std::size_t to) const {
    std::string_view body = s_.substr(from, to - from);
    while (!body.empty() && blank(body.back())) body.remove_suffix(1);
    return Statement{std::string(body), line_of(from)};
  }
  void finish(std::size_t semicolon) {
    if (start_ != npos) out_.statements.push_back(statement(start_, semicolon));
    start_ = npos;
  }
  void unterminated(Open what, std::size_t at) {
    out_.open = what;
    out_.open_line = line_of(at);
  }

  bool line_comment_at(std::size_t i) const {
    const std::size_t n = s_.size();
    if (s_[i] == '#') return d_ == Dialect::mysql;
    if (s_[i] != '-' || i + 1 >= n || s_[i + 1] != '-') return false;
    // MariaDB reads "--" as a comment only when a blank (or the end) follows: 1--1 is arithmetic.
    return d_ != Dialect::mysql || i + 2 >= n || blank(s_[i + 2]);
  }

  std::size_t skip_block_comment(std::size_t i) {
    const std::size_t n = s_.size(), open = i;
    int depth = 0;
    while (i < n) {
      if (s_[i] == '/' && i + 1 < n && s_[i + 1] == '*') {
        // Only PostgreSQL nests block comments.
        depth = d_ == Dialect::postgresql ? depth + 1 : 1;
        i += 2;
      } else if (s_[i] == '*' && i + 1 < n && s_[i + 1] == '/') {
        i += 2;
        if (--depth == 0) return i;
      } else {
        ++i;
      }
    }
    unterminated(Open::comment, open);
    return n;
  }

  // Past the literal opening at i with quote character `close`; doubled close characters stay
  // inside, and so does a backslash-escaped one when `backslash`.
  std::size_t skip_quoted(std::size_t i, char close, bool backslash, Open kind) {
    const std::size_t n = s_.size(), open = i;
    for (++i; i < n; ++i) {
      if (backslash && s_[i] == '\\') {
        ++i;
      } else if (s_[i] == close) {
        if (close != ']' && i + 1 < n && s_[i + 1] == close) ++i;
        else return i + 1;
      }
    }
    unterminated(kind, open);
    return n;
  }

  std::size_t skip_token(std::size_t i) {
    const std::size_t n = s_.size();
    const char c = s_[i];
    const bool mysql = d_ == Dialect::mysql;
    if (c == '\'') return (skip_quoted(i, '\'', mysql, Open::string));
    if (c == '"') return (skip_quoted(i, '"', mysql, mysql ? Open::string : Open::identifier));
    if (c == '`' && d_ != Dialect::postgresql) return (skip_quoted(i, '`', false, Open::identifier));
    if (c == '[' && d_ == Dialect::sqlite) return (skip_quoted(i, ']', false, Open::identifier));
    if (c == '$' && d_ == Dialect::postgresql) {
      // $tag$ ... $tag$ (the tag may be empty); $1 is a placeholder.
      std::size_t j = i + 1;
      while (j < n && (ident_start(s_[j]) || (j > i + 1 && digit(s_[j])))) ++j;
      if (j < n && s_[j] == '$') {
        const std::string_view tag = s_.substr(i, j - i + 1);
        const std::size_t close = s_.find(tag, j + 1);
        if (close == npos) {
          unterminated(Open::dollar_quote, i);
          return n;
        }
        return (close + tag.size());
      }
      return i + 1;
    }
    if (ident_start(c) || digit(c)) {
      const std::size_t start = i;
      // "$" belongs to an identifier (a$b$ is a name, not a dollar quote).
      while (i < n && (ident_start(s_[i]) || digit(s_[i]) || s_[i] == '$')) ++i;
      // PostgreSQL's E'...' is an escape string: backslashes escape the quote.
      if (d_ == Dialect::postgresql && i - start == 1 && (c == 'E' || c == 'e') && i < n && s_[i] == '\'')
        return (skip_quoted(i, '\'', true, Open::string));
      return (i);
    }
    return i + 1;
  }

  std::string_view s_;
  Dialect d_;
  std::size_t first_line_;
  std::vector<std::size_t> newlines_;
  std::size_t start_ = npos;
  Split out_;
};

}  // namespace

Split split_sql(std::string_view text, Dialect d, std::size_t first_line) {
  return Splitter(text, d, first_line).run();
}

}  // namespace binds::client
