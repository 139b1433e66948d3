#pragma once
// Result rendering for the CLI: aligned tables, JSON lines-free arrays, CSV (RFC 4180).

#include <ostream>
#include <string>

#include "client/client.hpp"

namespace binds::client {

enum class Format { table, json, csv };
bool parse_format(const std::string& s, Format& out);

// How tables look (psql's \pset): NULL shows as null_text (empty by default, so it differs from
// the text 'NULL'); expanded prints one "-[ RECORD n ]-" block per row, a column per line.
struct TableStyle {
  std::string null_text;
  bool expanded = false;
};

// Text of one value; NULL → "NULL" (tables use TableStyle::null_text instead).
std::string value_text(const Value& v);
std::string json_escape(const std::string& s);

void print_result(std::ostream& os, const Result& r, Format f, const TableStyle& style = {});
// An admin reply: aligned table (then its message), JSON or CSV.
void print_admin_table(std::ostream& os, const protocol::Table& t, Format f, const TableStyle& style = {});
// Generic aligned table of strings, aligned by display width (client/width.hpp); a cell with
// newlines spans lines, each but its last marked with '+' as psql does.
void print_table(std::ostream& os, const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows, bool expanded = false);
// The binds of `binds list` and the shell's \l: table or JSON.
void print_binds(std::ostream& os, const std::vector<protocol::BindInfo>& binds, Format f);
// A server error as the CLI shows it: "CODE: message [SQLSTATE s] [errno n] (bind k)".
std::string error_text(const ServerError& e);

}  // namespace binds::client
