#pragma once
// What the MySQL/MariaDB backend exposes besides the Connection contract: its prepared-statement
// cache, for tests and diagnostics.
//
// Statements with parameters run as prepared statements; each connection keeps the last
// kStatementCacheCapacity of them, keyed by SQL text, and closes the least recently used one
// (COM_STMT_CLOSE) when a new one needs room. A reset (COM_RESET_CONNECTION) empties it.

#include <cstddef>
#include <cstdint>
#include <optional>

#include "binds/backend/backend.hpp"

namespace binds::backend::mysql {

constexpr std::size_t kStatementCacheCapacity = 128;

struct StatementCacheStats {
  std::uint64_t hits = 0;       // executions that reused a prepared statement
  std::uint64_t misses = 0;     // prepares
  std::uint64_t evictions = 0;  // statements closed to make room
  std::size_t size = 0;         // statements prepared now
};

// The cache counters of a MySQL connection; nullopt for another backend's. Same thread rules as
// the connection's other operations.
std::optional<StatementCacheStats> statement_cache_stats(const Connection& conn);

}  // namespace binds::backend::mysql
