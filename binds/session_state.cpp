#include "binds/session_state.hpp"

#include <array>
#include <cctype>
#include <initializer_list>
#include <string>

namespace binds {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The first keyword from position i, skipping whitespace, comments and opening parentheses;
// i is left just after it.
std::string next_word(const std::string& s, std::size_t& i) {
  for (;;) {
    while (i < s.size() && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == '(')) ++i;
    if (s.compare(i, 2, "--") == 0) {
      i = s.find('\n', i);
      if (i == std::string::npos) {
        i = s.size();
        return {};
      }
      continue;
    }
    if (s.compare(i, 2, "/*") == 0) {
      i = s.find("*/", i);
      if (i == std::string::npos) {
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
  std::string w = s.substr(i, j - i);
  i = j;
  return w;
}

std::string first_word(const std::string& s) {
  std::size_t i = 0;
  return next_word(s, i);
}

}  // namespace

bool may_change_session_state(Backend backend, std::string_view sql) {
  const std::string s = upper(sql);
  const std::string first = first_word(s);
  // Statements that exist to change session state.
  // DO: a PostgreSQL code block (or MariaDB's DO expr) can change anything a function can.
  static constexpr std::array<std::string_view, 16> kLeading = {
      "SET",  "RESET",   "PREPARE", "DEALLOCATE", "LISTEN", "DECLARE", "LOAD",   "USE",
      "LOCK", "HANDLER", "DISCARD", "CALL",       "ATTACH", "DETACH",  "PRAGMA", "DO"};
  for (auto w : kLeading)
    if (first == w) return true;
  // Anywhere in the text: temporary objects, session-level functions, user variables.
  static constexpr std::array<std::string_view, 7> kAnywhere = {
      "TEMP", "SET_CONFIG", "ADVISORY_LOCK", "GET_LOCK", "WITH HOLD", "SESSION", "DBLINK"};
  for (auto w : kAnywhere)
    if (s.find(w) != std::string::npos) return true;
  // MySQL user variables (@x) and variable assignment in SELECT; PostgreSQL has no '@' variables
  // but '@' is an operator there (abs, geometry), so only MySQL looks at it.
  if (backend == Backend::mysql && s.find('@') != std::string::npos) {
    // @@in_transaction-style system variable reads do not change anything.
    for (std::size_t p = s.find('@'); p != std::string::npos; p = s.find('@', p + 2)) {
      if (p + 1 < s.size() && s[p + 1] == '@') continue;
      return true;
    }
  }
  return false;
}

namespace {
// sql is one of the words in `leading`, optionally followed by WORK or TRANSACTION and a ';'.
bool is_bare_tx_end(std::string_view sql, std::initializer_list<std::string_view> leading) {
  const std::string s = upper(sql);
  std::size_t i = 0;
  const std::string first = next_word(s, i);
  bool match = false;
  for (auto l : leading) match |= first == l;
  if (!match) return false;
  std::string w = next_word(s, i);
  if (w == "WORK" || w == "TRANSACTION") w = next_word(s, i);
  if (!w.empty()) return false;  // TO SAVEPOINT, PREPARED, AND CHAIN, …
  // Only a statement terminator may follow.
  while (i < s.size() && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == ';')) ++i;
  return i == s.size();
}
}  // namespace

bool is_transaction_rollback(std::string_view sql) { return is_bare_tx_end(sql, {"ROLLBACK", "ABORT"}); }

bool is_transaction_commit(std::string_view sql) { return is_bare_tx_end(sql, {"COMMIT", "END"}); }

bool may_end_transaction(std::string_view sql) {
  const std::string first = first_word(upper(sql));
  return first.empty() || first == "COMMIT" || first == "END" || first == "ROLLBACK" || first == "ABORT" ||
         first == "PREPARE" || first == "CALL" || first == "DO";
}

}  // namespace binds
