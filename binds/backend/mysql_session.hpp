#pragma once
// Opening MariaDB sessions without blocking, and KILL QUERY from a side session.

#include <utility>
#include <boost/asio.hpp>
#include <mysql.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "binds/backend/backend.hpp"
#include "binds/backend/mysql_io.hpp"

namespace binds::backend::mysql {

// TLS, from the URL's query options (the names pymysql and mysqlclient accept):
//   ssl=true|false                 TLS required (no certificate check) or off
//   ssl_mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY
//                                  PREFERRED is treated as DISABLED (Connector/C 3.3 has no
//                                  opportunistic TLS); VERIFY_CA and VERIFY_IDENTITY both check
//                                  the certificate chain and the host name
//   ssl_ca, ssl_capath, ssl_cert, ssl_key, ssl_cipher
//                                  files for Connector/C; ssl_ca or ssl_capath alone turns
//                                  certificate checking on, the others alone turn TLS on
//   ssl_verify_cert=true|false     check the server certificate (and host name)
// When TLS is on and the server does not offer it, the connect fails.
struct TlsOptions {
  bool enabled = false;
  bool verify = false;
  std::string ca, capath, cert, key, cipher;
};

struct SessionParams {
  std::string host;         // as configured ("" = 127.0.0.1)
  unsigned port = 3306;
  std::string unix_socket;  // URL option unix_socket: connect there instead of TCP
  std::string user, password, database;
  std::string charset = "utf8mb4";
  std::string program_name = "bindsd";
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{10000};
};

// The session settings of a URL and the bind's options. Returns an error message for an option
// it cannot use.
std::optional<std::string> session_params(const DatabaseUrl& url, const ConnectOptions& options,
                                          SessionParams& out);

// Owns a MYSQL handle. Its destructor closes without ever blocking: a handle still connected is
// shut down first, so the COM_QUIT write inside mysql_close() fails at once instead of waiting.
class Handle {
 public:
  Handle() = default;
  explicit Handle(MYSQL* m) : m_(m) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      m_ = std::exchange(o.m_, nullptr);
    }
    return *this;
  }
  MYSQL* get() const { return m_; }
  explicit operator bool() const { return m_ != nullptr; }
  // The handle was closed by mysql_close_start/_cont (which freed it).
  void forget() { m_ = nullptr; }
  void reset();

 private:
  MYSQL* m_ = nullptr;
};

// A handle with every option set (non-blocking, charset, no reconnect, no LOAD DATA LOCAL,
// connection attributes, TLS); null if Connector/C cannot allocate one.
Handle new_handle(const SessionParams& p);

// Connects `h` (a fresh handle) to `address` (numeric, or the configured host when TLS checks
// the host name, or a Unix socket path) by `deadline`. Errors have code backend_unavailable.
asio::awaitable<std::optional<BackendError>> connect_handle(Socket& sock, Handle& h,
                                                            const SessionParams& p,
                                                            const std::string& address,
                                                            Clock::time_point deadline);

// The addresses to try for p.host, resolved without blocking (Asio's resolver); an IP literal,
// "localhost" and a Unix socket pass through unchanged.
asio::awaitable<std::vector<std::string>> resolve_host(asio::any_io_executor ex,
                                                       const SessionParams& p,
                                                       Clock::time_point deadline,
                                                       std::optional<BackendError>& error);

// Runs one statement that returns no rows (SET, KILL) by `deadline`.
asio::awaitable<std::optional<BackendError>> run_simple(Socket& sock, MYSQL* m, std::string_view sql,
                                                        std::optional<Clock::time_point> deadline);

// Politely ends the session (COM_QUIT) by `deadline`, then frees the handle.
asio::awaitable<void> close_handle(Socket& sock, Handle& h, Clock::time_point deadline);

// The KILL QUERY machinery of one connection. Shared with the side sessions that carry the
// KILLs, so a Connection may be destroyed while one is under way.
//
// Guard against a KILL hitting the wrong statement: MariaDB applies a KILL QUERY before it
// answers it, and clears a KILL QUERY that found the session idle when the next command starts.
// So a KILL is sent only while a statement runs (begin()..end()), and the next statement is not
// sent before every KILL already sent has been answered (quiesce()).
class Canceller : public std::enable_shared_from_this<Canceller> {
 public:
  Canceller(SessionParams params, std::string address, unsigned long thread_id);

  // Any thread. Sends KILL QUERY from a side session if a statement runs; never blocks.
  void cancel();
  // The connection's own KILL (discarding the rest of an abandoned result).
  void cancel_internal() { cancel(); }

  // The connection's coroutine: a statement starts on the server (KILLs are sent on `ex`).
  std::uint64_t begin(asio::any_io_executor ex);
  // Its final reply has been read.
  void end();
  // Waits until no KILL of ours is in flight (settled(): none is, no need to wait).
  bool settled();
  asio::awaitable<void> quiesce();
  // Whether a KILL sent while statement `seq` ran was carried out by the server.
  bool delivered(std::uint64_t seq);
  // The connection is gone or aborted: no more KILLs.
  void close();

  // Deadline of one KILL: connect, KILL QUERY, quit.
  static constexpr std::chrono::milliseconds kKillTimeout{3000};

 private:
  asio::awaitable<void> kill(std::uint64_t seq);
  void finished(std::uint64_t seq, bool ok);

  const SessionParams params_;
  const std::string address_;
  const unsigned long thread_id_;

  std::mutex mu_;
  bool running_ = false;
  bool closed_ = false;
  std::uint64_t seq_ = 0;
  std::uint64_t delivered_seq_ = 0;
  int in_flight_ = 0;
  asio::any_io_executor ex_;
  std::vector<std::shared_ptr<asio::steady_timer>> waiters_;
};

}  // namespace binds::backend::mysql
