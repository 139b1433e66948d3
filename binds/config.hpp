#pragma once
// binds.yaml: YAML → plain structs → validated, immutable snapshot.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "binds/url.hpp"

namespace binds {

using Millis = std::chrono::milliseconds;

struct PoolSettings {
  int max = 10;
  int min = 0;
  Millis acquire_timeout{5000};
  Millis idle_timeout{10 * 60 * 1000};
  Millis max_lifetime{60 * 60 * 1000};
  bool operator==(const PoolSettings&) const = default;
};

// automatic: after statements that may have left state, as far as bindsd can see (the SQL text, the
//   backend's reports), and always on PostgreSQL, where a function can change the session unseen.
// always: every time (for code that changes state inside functions on MariaDB too).
// seen: only after a change bindsd sees, on PostgreSQL too: what PgBouncer's transaction pooling
//   offers (it resets nothing), for the throughput and the prepared statements that survive.
enum class ResetPolicy { automatic, always, seen };

struct BindConfig {
  std::string key;
  DatabaseUrl url;
  PoolSettings pool;
  Millis statement_timeout{0};                       // 0 = no limit
  Millis idle_in_transaction_timeout{5 * 60 * 1000};  // 0 = no limit
  // When a connection that changes client has its session state reset (binds/session_state.hpp).
  ResetPolicy reset = ResetPolicy::automatic;
  // SQLite only: the folder (canonical) whose files ATTACH and VACUUM INTO may open; "" = none.
  std::string attach_dir;
  bool operator==(const BindConfig&) const = default;
};

struct ListenConfig {
  std::string tcp;   // "host:port"; empty = no TCP listener
  std::string unix;  // socket path; empty = no Unix listener
};

struct Limits {
  std::uint32_t max_frame = 16 * 1024 * 1024;
  std::uint32_t batch_rows = 500;
  std::uint32_t batch_bytes = 256 * 1024;     // a ROWS frame is closed once its body passes this
  std::uint32_t client_buffer = 1024 * 1024;  // per-client outgoing bytes before a query stalls
  std::uint32_t max_in_flight = 1024;         // requests per client connection
  std::uint32_t max_clients = 10000;
  // A frame whose header has arrived must arrive in full within this (a slow-loris client
  // otherwise holds its buffer forever).
  Millis read_timeout{30000};
  // A client that leaves its replies unread this long (its output full, nothing written) is
  // disconnected: its requests stop and its backend connections go back to the pool.
  Millis write_timeout{30000};
};

struct Config {
  std::string source;  // file path it was read from, for messages
  ListenConfig listen;
  std::string default_bind;
  std::map<std::string, BindConfig> binds;
  Limits limits;
  std::string metrics_listen;       // "host:port" of the HTTP /metrics listener; empty = off
  Millis shutdown_grace{10000};      // SIGTERM: how long in-flight requests may take to finish
  Millis drain_timeout{30000};       // reload: how long a removed/changed bind's old pool may drain
  Millis stats_interval{0};          // periodic per-bind stats log line; 0 = off
  // Valid but doubtful settings, each "FILE:LINE: KEY.PATH: why"; logged at start and reload and
  // printed by --check-config.
  std::vector<std::string> warnings;

  const BindConfig* find(const std::string& key) const {
    auto it = binds.find(key);
    return it == binds.end() ? nullptr : &it->second;
  }
};

// Every validation failure: "FILE:LINE: KEY.PATH: what is wrong". Never contains a password.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads and validates a file. ${NAME} is expanded from the environment (unset → error).
// Relative paths (Unix socket, SQLite files) resolve against the config file's folder.
std::shared_ptr<const Config> load_config_file(const std::string& path);
// Same, from text (path used in messages and to resolve relative paths).
std::shared_ptr<const Config> load_config_text(const std::string& text, const std::string& path);

// "500ms", "5s", "10m", "1h", "1d"; a bare integer is seconds. Throws std::invalid_argument.
Millis parse_duration(const std::string& s);

// The way people write it in binds.yaml: the largest unit that divides it exactly (600000 ms →
// "10m", 90 s → "90s", 1500 ms → "1500ms"); 0 → "0". parse_duration reads it back unchanged.
std::string format_duration(Millis d);

}  // namespace binds
