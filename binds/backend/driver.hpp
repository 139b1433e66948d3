#pragma once
// The blocking driver interface, which SQLite alone still uses (sqlite3 has no socket to wait on):
// blocking.hpp runs it on worker threads behind the async contract. PostgreSQL and MySQL once had
// drivers here too (libpq, Connector/C++); they now have asynchronous backends of their own.
// Driver exceptions never cross this interface: every failure is a BackendError value.
//
// Threading: a Connection is used by one thread at a time (the pool guarantees it) and every call
// may block, so callers run them on a pool worker thread, never on an Asio I/O thread.

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "binds/backend/backend.hpp"
#include "binds/url.hpp"
#include "protocol/errors.hpp"
#include "protocol/value.hpp"

namespace binds {

// The async contract's error value: the blocking driver's errors cross over unchanged.
using BackendError = backend::BackendError;

// Receives a result as it streams. Called on the worker thread that runs execute().
// Returning false asks the driver to stop fetching (the client went away or the request was
// abandoned); execute() then returns promptly and leaves the connection usable.
class RowSink {
 public:
  virtual ~RowSink() = default;
  virtual bool columns(std::vector<protocol::Column> columns) = 0;
  virtual bool row(protocol::Row& row) = 0;  // the row may be moved from
};

struct ExecResult {
  std::int64_t affected = 0;   // DML: affected rows; queries: rows returned
  std::int64_t row_count = 0;  // rows passed to the sink
  std::optional<std::int64_t> last_insert_id;
};

// Stops the statement currently running on one connection. Thread-safe: called from any thread
// while execute() runs on another. May block (network round trip): never call it on an I/O thread.
// Cancelling when nothing runs is harmless.
class Canceller {
 public:
  virtual ~Canceller() = default;
  virtual void cancel() = 0;
};

enum class TxStatus {
  idle,       // autocommit: safe to hand to another client
  in_tx,      // inside a transaction block
  failed_tx,  // inside a transaction that has failed (PostgreSQL): needs ROLLBACK
  unknown,    // status could not be read (connection broken)
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Backend backend() const = 0;

  // Runs one statement with positional parameters bound by the driver.
  // Returns nothing on success (out filled), or the error.
  virtual std::optional<BackendError> execute(std::string_view sql,
                                              const std::vector<protocol::Value>& params,
                                              RowSink& sink, ExecResult& out) = 0;

  // The backend's transaction status as of the last statement (cheap: no round trip where the
  // backend reports it with every reply).
  virtual TxStatus tx_status() = 0;

  // Ends any open transaction. Used before a connection goes back to the pool.
  virtual std::optional<BackendError> rollback() = 0;

  // Cheap liveness check used before reusing an idle connection (may do a round trip).
  virtual bool alive() = 0;

  // The canceller for this connection (same object for the connection's lifetime); valid as long
  // as the shared_ptr is held, even after the Connection is destroyed (then cancel() does nothing).
  virtual std::shared_ptr<Canceller> canceller() = 0;

  // Clears session state a client may have left (session variables, temporary tables, prepared
  // statements, user variables, advisory/user locks) so the next client finds a fresh session.
  // Only called when tx_status() is idle. Worker thread only.
  virtual std::optional<BackendError> reset() = 0;
};

// Per-bind settings a connection needs besides its URL.
struct ConnectOptions {
  std::string sqlite_attach_dir;  // canonical folder ATTACH may open files in; "" = none
};

// Opens a connection. On failure returns nullptr and fills err (code backend_unavailable).
// bind_key is used for SQLite memory databases, which are shared per bind.
std::unique_ptr<Connection> connect(const DatabaseUrl& url, const std::string& bind_key,
                                    BackendError& err, const ConnectOptions& options = {});

namespace detail {

// Confines a cancel to the statement that runs when cancel() is called. A backend cancel only
// goes out while a statement runs, and the statement's end() waits for any cancel still on its
// way, so the next statement cannot start before an earlier cancel has been processed by the
// server. A cancel that the server processes while the connection sits idle is discarded by both
// PostgreSQL and MariaDB, so a late cancel never hits a later statement.
class CancelGate {
 public:
  // Worker thread: brackets one statement. end() returns whether a cancel was delivered while the
  // statement ran (it may still have completed first).
  void begin();
  bool end();

  // Any thread: calls send() (returns whether the cancel reached the backend) if a statement is
  // running; otherwise does nothing. The connection outlives send() because end() waits for it.
  template <class Send>
  void fire(Send&& send) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!running_) return;
      ++in_flight_;
    }
    bool delivered = false;
    try {
      delivered = send();
    } catch (...) {
      // A cancel is best effort; the statement then runs to its end.
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --in_flight_;
      if (delivered) delivered_ = true;
    }
    idle_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  bool running_ = false;
  bool delivered_ = false;
  int in_flight_ = 0;
};

// One statement inside the gate. An exception from run() becomes an internal error (the connection
// broken or not, as the driver knows); an error is marked interrupted only when the backend
// reported an interruption (is_interrupt) and one of our cancels reached it during the statement,
// so a client's own statement_timeout is not mistaken for our cancel.
template <class Run, class IsInterrupt>
std::optional<BackendError> run_gated(CancelGate& gate, bool broken_on_exception, Run&& run,
                                      IsInterrupt&& is_interrupt) {
  std::optional<BackendError> err;
  gate.begin();
  try {
    err = run();
  } catch (const std::exception& e) {
    err = BackendError{protocol::ErrorCode::internal, e.what(), "", std::nullopt, broken_on_exception};
  }
  const bool cancel_delivered = gate.end();
  if (err && cancel_delivered && is_interrupt(*err)) err->interrupted = true;
  return err;
}

std::unique_ptr<Connection> connect_sqlite(const DatabaseUrl&, const std::string& bind_key,
                                           const ConnectOptions&, BackendError&);
}  // namespace detail

}  // namespace binds
