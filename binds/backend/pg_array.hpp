#pragma once
// PostgreSQL arrays in text form, both ways: a result value ({1,2,NULL}, {{"a b",c}}) becomes the
// MessagePack array the protocol sends (PROTOCOL.md §5), and an array parameter becomes an array
// literal PostgreSQL parses. Pure functions; no I/O.

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/value.hpp"

namespace binds::backend::pg {

// Appends the MessagePack encoding of array text to `out`, elements typed as `element` (int64,
// float64, text, decimal, ...). A "[1:3]=" lower-bound prefix is skipped, as psycopg2 does.
// False if the text is not an array literal (out is then unspecified).
bool encode_array_text(std::string_view text, protocol::Type element, std::string& out);

// Appends the array literal of `a` to `out` and returns the array type's OID to declare: the
// elements' common type (int8[], float8[], text[], bool[], bytea[], numeric[], date[], time[],
// uuid[], interval[]), or 0 to let the server infer it from the context (mixed or no values,
// timestamps whose zone PostgreSQL must decide, json).
std::uint32_t array_literal(const protocol::Array& a, std::string& out);

}  // namespace binds::backend::pg
