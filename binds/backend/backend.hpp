#pragma once
// The backend contract: one interface in front of PostgreSQL, MySQL/MariaDB and SQLite that never
// blocks a thread. PostgreSQL and MySQL drive their sockets from the coroutine that awaits them
// (the engine runs on the client's strand, so a query crosses no thread); SQLite, which has no
// socket, hands statements to worker threads of its own and resumes the awaiting coroutine.
//
// Threading: a Connection is used by one coroutine at a time (whoever holds its pool lease); its
// operations may be awaited from different executors over its life, never concurrently.
// cancel() and abort() are the exceptions, see there.
//
// Errors are values: nothing here throws across the interface (a bug may; the caller writes the
// connection off then).

#include <utility>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "binds/url.hpp"
#include "protocol/errors.hpp"
#include "protocol/value.hpp"

namespace binds::backend {

namespace asio = boost::asio;

struct BackendError {
  protocol::ErrorCode code = protocol::ErrorCode::sql_error;
  std::string message;   // the backend's text; never contains a password
  std::string sqlstate;  // "" when the backend gave none
  std::optional<std::int64_t> number;  // MySQL errno, SQLite extended code
  // The connection can no longer be trusted (socket closed, protocol desync, aborted): the pool
  // discards it instead of reusing it.
  bool connection_broken = false;
  // The statement stopped because cancel() reached it (code stays sql_error): the engine reports
  // CANCELLED or TIMEOUT instead of the backend's text. Set only when the backend reported an
  // interruption and a cancel of ours was delivered while the statement ran.
  bool interrupted = false;
};

enum class TxStatus {
  idle,       // autocommit: safe to hand to another client
  in_tx,      // inside a transaction block
  failed_tx,  // inside a transaction that has failed (PostgreSQL): needs ROLLBACK
  unknown,    // status could not be read (connection broken)
};

// One value of a result row, borrowed from the backend's buffers (protocol/value.hpp).
using protocol::ValueView;

// The owning protocol::Value of a view (for tests and slow paths; allocates).
protocol::Value to_value(const ValueView& v);

// Receives one statement's result as it streams. Called on the executor that awaits receive().
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  // The statement returns rows with these columns; called once, before any row. The span may be
  // a backend's cached copy: the sink must not keep it past the call.
  virtual void columns(std::span<const protocol::Column> columns) = 0;
  // One row; the sink encodes it at once (it keeps no view).
  virtual void row(std::span<const ValueView> values) = 0;
  // The client's output is over its limit: the backend stops reading the result and awaits
  // drained() (its socket then stalls the backend, which is the point: memory stays bounded).
  virtual bool full() const = 0;
  // Waits until the client has room again. false: stop (the client is gone or the request was
  // abandoned); the backend then discards the rest of the result (cheaply if it can, e.g. with a
  // cancel), leaves the connection usable, and sets Outcome::stopped.
  virtual asio::awaitable<bool> drained() = 0;
  // Largest row the sink can take, in bytes as the backend measures them (the row's wire size).
  // A bigger row is refused without being held in memory where the backend allows it
  // (PostgreSQL: the DataRow header gives its size first): the statement then ends with an error
  // (code bad_request) and Outcome::row_too_large, and the connection stays usable.
  virtual std::size_t max_row_bytes() const = 0;
};

// A sink that drops everything (internal statements: BEGIN, COMMIT, resets).
class DiscardSink final : public ResultSink {
 public:
  void columns(std::span<const protocol::Column>) override {}
  void row(std::span<const ValueView>) override {}
  bool full() const override { return false; }
  asio::awaitable<bool> drained() override { co_return true; }
  std::size_t max_row_bytes() const override { return SIZE_MAX; }
};

struct Statement {
  std::string_view sql;
  std::span<const protocol::Value> params;  // positional, bound by the backend, never spliced
};

// The same refusal on every backend when the values given do not match the statement's
// placeholders (PROTOCOL.md §6.1): SQL_ERROR, SQLSTATE 07001 (wrong number of parameters).
BackendError placeholder_mismatch(std::size_t placeholders, std::size_t given);

// Arrays are PostgreSQL's: MySQL and SQLite refuse an array parameter by its position
// (BAD_REQUEST) rather than bind something else in its place.
std::optional<BackendError> refuse_array_params(std::span<const protocol::Value> params, std::string_view backend);

struct Outcome {
  std::optional<BackendError> error;
  std::int64_t affected = 0;   // DML: affected rows (MySQL: changed rows); queries: rows returned
  std::int64_t row_count = 0;  // rows passed to the sink
  std::optional<std::int64_t> last_insert_id;
  // The transaction status after the statement, from the wire (PostgreSQL ReadyForQuery, MySQL's
  // OK/EOF status flags, sqlite3_get_autocommit): never from an extra statement.
  TxStatus tx = TxStatus::unknown;
  // The backend said the statement changed session state (MySQL session tracking, a PostgreSQL
  // ParameterStatus): the connection must be reset before another client uses it.
  bool session_state_changed = false;
  // The sink asked to stop (drained() returned false): the result is incomplete.
  bool stopped = false;
  // A row was larger than ResultSink::max_row_bytes(): it was not delivered and the rest of the
  // result was discarded; error is set too (code bad_request).
  bool row_too_large = false;
};

// Per-bind settings a connection needs besides its URL.
struct ConnectOptions {
  std::string bind_key;           // SQLite memory databases are shared per bind
  std::string sqlite_attach_dir;  // canonical folder ATTACH may open files in; "" = none
  std::chrono::milliseconds connect_timeout{10000};
  std::string application_name;   // reported to the backend where it has one ("" = bindsd)
  int worker_threads = 4;         // SQLite: threads that run this database's statements
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Backend backend() const = 0;

  // How many statements may be sent before the first result is read (1 = no pipelining).
  virtual int max_pipeline() const = 0;

  // Queues a statement; it goes out (with everything queued before it) at the next receive().
  // The statement's text and parameters are copied or encoded at once: the caller's buffers may
  // change after send() returns.
  virtual void send(const Statement& statement) = 0;
  // Queues a BEGIN whose answer travels with the statement queued right after it (which the
  // caller must queue at once): should the BEGIN fail, the backend skips that statement, whose
  // receive() then answers NOT_IN_TRANSACTION, unrun. So the two can go out in one write and cost
  // one round trip without the statement ever running outside the transaction. Returns false
  // (queuing nothing) where the backend cannot do this; then send the BEGIN alone.
  virtual bool send_begin_chained(const Statement& begin) {
    (void)begin;
    return false;
  }
  // Queues a reset of session state (session variables, temporary tables, prepared statements,
  // user variables, advisory/user locks, LISTEN, WITH HOLD cursors) so the next client finds a
  // fresh session; its outcome comes from receive() like a statement's. Only when idle (tx idle).
  virtual void send_reset() = 0;
  // Flushes what was sent and reads the outcome of the oldest unanswered statement (or reset),
  // streaming its rows into `sink`.
  virtual asio::awaitable<Outcome> receive(ResultSink& sink) = 0;
  // Statements (and resets) sent and not yet received.
  virtual int outstanding() const = 0;

  // send() + receive().
  asio::awaitable<Outcome> execute(const Statement& statement, ResultSink& sink) {
    send(statement);
    return receive(sink);
  }

  // Any thread, any time. Asks the backend to stop the statement it runs now (PostgreSQL
  // CancelRequest, MySQL KILL QUERY from a side connection, sqlite3_interrupt) without blocking
  // the caller and without waiting behind any other connection's cancel; gives up after a
  // deadline. Does nothing if no statement runs. With several statements pipelined, it may stop
  // the one that runs when it arrives, which the engine accounts for.
  virtual void cancel() = 0;

  // On the executor that awaits receive(), or when nothing is awaited. Closes the connection at
  // once: a pending receive() completes with connection_broken. For a backend that stopped
  // answering.
  virtual void abort() = 0;

  // Cheap, non-blocking check before reusing a connection that sat idle: false if the backend is
  // known to have closed it (EOF or a FATAL message waiting on the socket).
  virtual bool looks_alive() = 0;
  // The connection holds memory it cannot give back (a driver buffer grown by one huge row or
  // statement): the pool closes it when it is released instead of keeping it idle.
  virtual bool wants_replacement() const { return false; }

  // The backend's own id for this session (PostgreSQL BackendKeyData pid, MariaDB thread id);
  // 0 where there is none (SQLite). For admin views; any thread (fixed once connected).
  virtual std::int64_t backend_pid() const { return 0; }
  // Queues the statement that makes the backend show `name` as this session's client
  // (PostgreSQL application_name), only when the session does not show it already; its outcome
  // comes from receive() like a statement's. Returns whether anything was queued. Backends without
  // a per-session client name queue nothing.
  virtual bool send_client_name(std::string_view name) {
    (void)name;
    return false;
  }

  // A round trip (only when looks_alive() cannot tell, e.g. after long idleness).
  virtual asio::awaitable<bool> ping() = 0;

  // Politely ends the session (Terminate / COM_QUIT) within a short deadline, then closes.
  virtual asio::awaitable<void> close() = 0;
};

struct ConnectResult {
  std::unique_ptr<Connection> conn;
  BackendError error;  // when conn is null; code backend_unavailable
};

// Opens a connection; its socket belongs to `ex`'s execution context. Never throws.
asio::awaitable<ConnectResult> connect(asio::any_io_executor ex, const DatabaseUrl& url,
                                       const ConnectOptions& options);

namespace detail {
asio::awaitable<ConnectResult> connect_postgresql(asio::any_io_executor ex, const DatabaseUrl& url,
                                                  const ConnectOptions& options);
asio::awaitable<ConnectResult> connect_mysql(asio::any_io_executor ex, const DatabaseUrl& url,
                                             const ConnectOptions& options);
asio::awaitable<ConnectResult> connect_sqlite(asio::any_io_executor ex, const DatabaseUrl& url,
                                              const ConnectOptions& options);
}  // namespace detail

}  // namespace binds::backend
