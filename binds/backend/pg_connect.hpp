#pragma once
// Opening a PostgreSQL session (TCP or Unix socket, optional TLS, startup, authentication) and
// sending cancel requests, for the PostgreSQL backend. Settings come from the bind's URL the way
// libpq reads them (sslmode, sslrootcert, connect_timeout, options, ...).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "binds/backend/backend.hpp"
#include "binds/backend/pg_stream.hpp"

namespace binds::backend::pg {

enum class SslMode : std::uint8_t { disable, allow, prefer, require, verify_ca, verify_full };

struct Settings {
  std::string host;  // host name or address; for a Unix socket, its directory
  std::uint16_t port = 5432;
  bool unix_socket = false;
  std::string user;
  std::string password;  // never logged, never in an error
  std::string database;
  // Startup parameters besides user and database: application_name, client_encoding, DateStyle,
  // options, and the URL's runtime parameters.
  std::vector<std::pair<std::string, std::string>> parameters;
  SslMode sslmode = SslMode::prefer;
  std::string sslrootcert;  // "" = libpq's default (~/.postgresql/root.crt) where it is needed
  std::string sslcert, sslkey;
  bool sslsni = true;
  std::chrono::milliseconds connect_timeout{10000};

  // `server at "HOST", port N` or `server on socket "PATH"`, for messages.
  std::string describe() const;
  std::string socket_path() const;  // Unix sockets: DIR/.s.PGSQL.PORT
};

// Reads the URL and the bind's options. Returns an error message (never containing the password)
// for settings that cannot work (an unknown sslmode, a bad port or timeout).
std::optional<std::string> parse_settings(const DatabaseUrl& url, const ConnectOptions& options,
                                          Settings& out);

// What a cancel request needs, copied out of the connection so that a cancel in flight depends on
// nothing the connection owns.
struct CancelTarget {
  asio::any_io_executor ex;  // the connection's I/O context
  bool unix_socket = false;
  std::string unix_path;
  tcp::endpoint endpoint;
  std::shared_ptr<asio::ssl::context> tls;  // null: the session is not TLS, nor is the cancel
  std::string sni;                          // "" = send no server name
  std::int32_t pid = 0;
  std::uint32_t secret = 0;
  bool valid() const { return pid != 0 || secret != 0; }
};

// Cancel requests still on their way, shared by a connection and its cancel tasks. A connection
// about to send new statements to an idle server waits for them (with a deadline), so that a late
// cancel can never reach a statement sent after it.
struct CancelTracker {
  std::atomic<int> in_flight{0};
};

// Any thread; never blocks. Sends CancelRequest(pid, secret) on a fresh connection (TLS if the
// session is) from a strand of t.ex, waits for the server to close it (the postmaster has then
// signalled the backend), and gives up after `timeout`. Failures are logged at debug level.
void send_cancel(const CancelTarget& t, std::shared_ptr<CancelTracker> tracker,
                 std::chrono::milliseconds timeout);

struct Session {
  Transport transport;
  Reader reader;
  CancelTarget cancel;
  std::vector<std::pair<std::string, std::string>> parameters;  // ParameterStatus values
  TxStatus tx = TxStatus::idle;
};

struct Established {
  std::optional<Session> session;
  BackendError error;  // when !session: code backend_unavailable
};

// Connects, negotiates TLS, starts up and authenticates, and waits for the first ReadyForQuery,
// within s.connect_timeout. Sockets are created on `ex`; must be awaited on a strand (the
// deadline's timer runs there). Never throws for network or server failures.
asio::awaitable<Established> establish(asio::any_io_executor ex, const Settings& s);

}  // namespace binds::backend::pg
