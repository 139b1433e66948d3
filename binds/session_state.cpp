#include "binds/session_state.hpp"

#include <array>
#include <cctype>
#include <initializer_list>
#include <string>

namespace binds {

namespace {

// Everything here reads the statement as it came, without an upper-cased copy: these checks run on
// every statement, and the copy was a heap allocation for any statement over 15 bytes.

// ASCII only, inline: keywords are ASCII, and std::toupper is a call through the locale per byte.
char up(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - ('a' - 'A')) : c; }

// a equals `upper_b` (already in upper case), ignoring case.
bool ieq(std::string_view a, std::string_view upper_b) {
  if (a.size() != upper_b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (up(a[k]) != upper_b[k]) return false;
  return true;
}

// s contains `upper_w` (already in upper case), ignoring case.
bool icontains(std::string_view s, std::string_view upper_w) {
  if (upper_w.empty()) return true;
  if (s.size() < upper_w.size()) return false;
  for (std::size_t p = 0; p + upper_w.size() <= s.size(); ++p)
    if (up(s[p]) == upper_w[0] && ieq(s.substr(p, upper_w.size()), upper_w)) return true;
  return false;
}

// The first keyword from position i, skipping whitespace, comments and opening parentheses;
// i is left just after it.
std::string_view next_word(std::string_view s, std::size_t& i) {
  for (;;) {
    while (i < s.size() && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == '(')) ++i;
    if (s.substr(i, 2) == "--") {
      i = s.find('\n', i);
      if (i == std::string_view::npos) {
        i = s.size();
        return {};
      }
      continue;
    }
    if (s.substr(i, 2) == "/*") {
      i = s.find("*/", i);
      if (i == std::string_view::npos) {
        i = s.size();
        return {};
      }
      i += 2;
      continue;
    }
    break;
  }
  std::size_t j = i;
  while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
  std::string_view w = s.substr(i, j - i);
  i = j;
  return w;
}

std::string_view first_word(std::string_view s) {
  std::size_t i = 0;
  return next_word(s, i);
}

}  // namespace

bool may_change_session_state(Backend backend, std::string_view sql) {
  const std::string_view s = sql;
  const std::string_view first = first_word(s);
  // Statements that exist to change session state.
  // DO: a PostgreSQL code block (or MariaDB's DO expr) can change anything a function can.
  static constexpr std::array<std::string_view, 16> kLeading = {
      "SET",  "RESET",   "PREPARE", "DEALLOCATE", "LISTEN", "DECLARE", "LOAD",   "USE",
      "LOCK", "HANDLER", "DISCARD", "CALL",       "ATTACH", "DETACH",  "PRAGMA", "DO"};
  for (auto w : kLeading)
    if (ieq(first, w)) return true;
  // Anywhere in the text: temporary objects, session-level functions, user variables.
  static constexpr std::array<std::string_view, 7> kAnywhere = {
      "TEMP", "SET_CONFIG", "ADVISORY_LOCK", "GET_LOCK", "WITH HOLD", "SESSION", "DBLINK"};
  for (auto w : kAnywhere)
    if (icontains(s, w)) return true;
  // MySQL user variables (@x) and variable assignment in SELECT; PostgreSQL has no '@' variables
  // but '@' is an operator there (abs, geometry), so only MySQL looks at it.
  if (backend == Backend::mysql && s.find('@') != std::string_view::npos) {
    // @@in_transaction-style system variable reads do not change anything.
    for (std::size_t p = s.find('@'); p != std::string_view::npos; p = s.find('@', p + 2)) {
      if (p + 1 < s.size() && s[p + 1] == '@') continue;
      return true;
    }
  }
  return false;
}

namespace {
// sql is one of the words in `leading`, optionally followed by WORK or TRANSACTION and a ';'.
bool is_bare_tx_end(std::string_view sql, std::initializer_list<std::string_view> leading) {
  const std::string_view s = sql;
  std::size_t i = 0;
  const std::string_view first = next_word(s, i);
  bool match = false;
  for (auto l : leading) match |= ieq(first, l);
  if (!match) return false;
  std::string_view w = next_word(s, i);
  if (ieq(w, "WORK") || ieq(w, "TRANSACTION")) w = next_word(s, i);
  if (!w.empty()) return false;  // TO SAVEPOINT, PREPARED, AND CHAIN, …
  // Only a statement terminator may follow.
  while (i < s.size() && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == ';')) ++i;
  return i == s.size();
}
}  // namespace

bool is_transaction_rollback(std::string_view sql) { return is_bare_tx_end(sql, {"ROLLBACK", "ABORT"}); }

bool is_transaction_commit(std::string_view sql) { return is_bare_tx_end(sql, {"COMMIT", "END"}); }

bool may_end_transaction(std::string_view sql) {
  const std::string_view first = first_word(sql);
  return first.empty() || ieq(first, "COMMIT") || ieq(first, "END") || ieq(first, "ROLLBACK") || ieq(first, "ABORT") ||
         ieq(first, "PREPARE") || ieq(first, "CALL") || ieq(first, "DO");
}

}  // namespace binds
