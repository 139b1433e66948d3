#pragma once
// Introspection of a PostgreSQL backend connection, for tests and diagnostics: counters of what
// went on the wire and the statement cache's state. Call on the connection's executor (or when
// nothing is awaited), like every Connection operation except cancel().

#include <cstddef>
#include <cstdint>
#include <optional>

#include "binds/backend/backend.hpp"

namespace binds::backend::pg {

struct ConnectionStats {
  std::uint64_t parses = 0;    // Parse messages sent (named or unnamed)
  std::uint64_t binds = 0;     // statements executed (Bind messages)
  std::uint64_t closes = 0;    // Close messages for evicted statements
  std::uint64_t writes = 0;    // socket writes of queued statements
  std::uint64_t cancels = 0;   // cancel requests started (cancel() and internal ones)
  std::size_t cached_statements = 0;
  std::size_t cache_capacity = 0;
  std::uint64_t cache_evictions = 0;
  std::size_t read_buffer_capacity = 0;
  std::int32_t backend_pid = 0;
  bool tls = false;
};

// nullopt if `c` is not a connection of this backend.
std::optional<ConnectionStats> stats(const Connection& c);
// Sets the statement cache's capacity (0 disables caching). false if `c` is not ours.
bool set_statement_cache_capacity(Connection& c, std::size_t capacity);

}  // namespace binds::backend::pg
