#pragma once
// SQLAlchemy-style database URLs, accepted verbatim from Flask-SQLAlchemy configs.

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace binds {

enum class Backend { postgresql, mysql, sqlite };
std::string_view backend_name(Backend b);  // "postgresql", "mysql", "sqlite"

struct DatabaseUrl {
  Backend backend = Backend::sqlite;
  std::string scheme;  // as written, e.g. "postgresql+psycopg2"
  std::string user;
  std::string password;  // percent-decoded; never log it (use redacted())
  std::string host;
  std::optional<std::uint16_t> port;
  std::string database;  // database name; for SQLite the file path ("" = memory)
  bool sqlite_memory = false;
  std::map<std::string, std::string> options;  // query string, percent-decoded

  // The URL with the password replaced by "***": safe for logs, errors and stats.
  std::string redacted() const;
  bool operator==(const DatabaseUrl&) const = default;
};

struct UrlError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses a URL. Throws UrlError with a message that never contains the password.
// Relative SQLite paths (sqlite:///rel.db) are resolved against base_dir when it is non-empty.
DatabaseUrl parse_url(std::string_view url, std::string_view base_dir = {});

}  // namespace binds
