#pragma once
// Lexical facts about PostgreSQL SQL text that the broker needs without a parser.

#include <cstddef>
#include <string_view>

namespace binds::pgwire {

// The highest $n placeholder the text refers to (0 if none), skipping string literals (standard
// and E'' escape strings), quoted identifiers, dollar-quoted bodies, and -- and nested /* */
// comments, and treating "$" inside an identifier (a$1) as part of it, as PostgreSQL's lexer does.
// PostgreSQL itself cannot tell: a Parse that declares more parameter types than the text uses
// creates a statement that silently accepts the extra values.
std::size_t highest_placeholder(std::string_view sql) noexcept;

}  // namespace binds::pgwire
