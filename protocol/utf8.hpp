#pragma once
// UTF-8 checks for every msgpack str the broker sends or accepts (PROTOCOL.md §5: a str is always
// valid UTF-8). Backends can hand over text that is not (SQLite stores any bytes as TEXT, MariaDB
// casts binary to CHAR, error messages echo what they were given), so text is checked at the edge.

#include <string>
#include <string_view>

namespace binds::protocol {

// Well-formed UTF-8 as RFC 3629 defines it: no overlongs, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s) noexcept;

// s with each maximal invalid subsequence replaced by U+FFFD (the Unicode "best practice" that
// Python's errors="replace" and WHATWG decoders follow), so a reader sees where bytes were lost.
std::string repair_utf8(std::string_view s);

}  // namespace binds::protocol
