#pragma once
// Splits SQL text into statements at ';' the way each backend's own lexer would see it, so a ';'
// inside a string, a quoted identifier, a comment or a PostgreSQL dollar-quoted body does not end
// a statement. Used by the shell for typed lines and for scripts (-f FILE, stdin).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace binds::client {

enum class Dialect { postgresql, mysql, sqlite };
// The dialect of a bind's backend name as `binds list` reports it ("postgresql", "mysql",
// "sqlite"); anything else is read as PostgreSQL, the strictest about what ends a string.
Dialect dialect_of(std::string_view backend) noexcept;

// What is still open at the end of the text.
enum class Open { none, string, identifier, comment, dollar_quote };
const char* open_name(Open o) noexcept;

struct Statement {
  std::string text;       // from its first token to before the ';' (leading comments dropped)
  std::size_t line = 1;   // line of its first token, counting from first_line
};

struct Split {
  std::vector<Statement> statements;  // every statement ended by ';' (empty ones skipped)
  std::size_t rest = 0;               // offset of the unfinished remainder of the text
  bool rest_significant = false;      // the remainder holds more than blanks and comments
  Statement pending;                  // that remainder as a statement (when rest_significant)
  Open open = Open::none;             // a literal or comment the text leaves unterminated
  std::size_t open_line = 0;          // where it began
};

// Dialects: PostgreSQL: '...' (E'...' with backslash escapes), "ident", $tag$...$tag$, -- and
// nested /* */. MariaDB: '...' and "..." with backslash escapes, `ident`, # and "-- " and /* */.
// SQLite: '...', "ident", `ident`, [ident], -- and /* */.
Split split_sql(std::string_view text, Dialect d, std::size_t first_line = 1);

}  // namespace binds::client
