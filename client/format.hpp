#pragma once
// Result rendering for the CLI: aligned tables, JSON lines-free arrays, CSV (RFC 4180).

#include <ostream>
#include <string>

#include "client/client.hpp"

namespace binds::client {

enum class Format { table, json, csv };
bool parse_format(const std::string& s, Format& out);

// Text of one value for table/CSV output. NULL → "NULL" in tables, empty in CSV.
std::string value_text(const Value& v);
std::string json_escape(const std::string& s);

void print_result(std::ostream& os, const Result& r, Format f);
// An admin reply: aligned table (then its message), JSON or CSV.
void print_admin_table(std::ostream& os, const protocol::Table& t, Format f);
// Generic aligned table of strings (used for `binds list` too).
void print_table(std::ostream& os, const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows);

}  // namespace binds::client
