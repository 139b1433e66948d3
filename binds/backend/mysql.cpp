// MySQL / MariaDB on MariaDB Connector/C's non-blocking API (mysql_*_start / mysql_*_cont).
//
// A connection's I/O runs on the coroutine that awaits it: Connector/C suspends inside its own
// call when the socket would block, returns the events it waits for, and Socket (mysql_io.hpp)
// waits for them on the connection's executor. No thread ever blocks, none is started.
//
// Statements without parameters use the text protocol (mysql_real_query + mysql_use_result);
// statements with parameters are prepared (binary protocol) through a per-connection LRU cache.
// Both stream their rows one at a time, unbuffered, with the same value conversions
// (mysql_types.hpp). Outcomes come from the wire: affected rows, insert id and status flags from
// the OK/EOF packets, session state changes from session tracking; no probe statement follows a
// statement, so LAST_INSERT_ID(), ROW_COUNT() and the diagnostics area stay what the client's
// own statement left.

#include <utility>
#include <boost/asio.hpp>
#include <errmsg.h>
#include <mysql.h>
#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "binds/backend/backend.hpp"
#include "binds/backend/mysql_backend.hpp"
#include "binds/backend/mysql_io.hpp"
#include "binds/backend/mysql_session.hpp"
#include "binds/backend/mysql_types.hpp"

// GCC 12 takes Asio 1.74's recycling allocator for coroutine frames (allocated through
// thread_info_base, freed by awaitable_frame_base's sized delete) for a mismatched pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace binds::backend {
namespace mysql {
namespace {

using protocol::ErrorCode;
using protocol::Value;

// Rows (or bytes) of an abandoned result read and dropped before a KILL QUERY is sent to cut it
// short: a result that ends soon costs less to read than a side connection.
constexpr std::size_t kDiscardRowsBeforeKill = 1000;
constexpr std::size_t kDiscardBytesBeforeKill = 256 * 1024;
// Result buffers grown past this for a long value are given back after the statement.
constexpr std::size_t kKeepBufferBytes = 1 << 20;
constexpr std::size_t kInitialBufferBytes = 256;
constexpr std::chrono::milliseconds kCloseTimeout{1000};
constexpr unsigned long kLongDataThreshold = 1 << 20;
constexpr unsigned long kLongDataChunk = 1 << 20;

BackendError internal_error(std::string message) {
  BackendError e;
  e.code = ErrorCode::internal;
  e.message = std::move(message);
  return e;
}

BackendError broken_error(std::string message) {
  BackendError e;
  e.code = ErrorCode::backend_unavailable;
  e.message = std::move(message);
  e.connection_broken = true;
  return e;
}

BackendError interrupted_error() {
  BackendError e = make_error(kQueryInterrupted, "70100", "Query execution was interrupted");
  e.interrupted = true;
  return e;
}

// Where a result column is fetched to in the binary protocol.
enum class Slot : std::uint8_t { none, integer, float32, float64, temporal, bytes };

struct ResultSlot {
  Slot kind = Slot::none;
  std::int64_t i = 0;
  float f = 0;
  double d = 0;
  MYSQL_TIME t{};
  std::unique_ptr<char[]> buf;
  unsigned long cap = 0;
  unsigned long length = 0;
  my_bool is_null = 0;
  my_bool error = 0;  // truncated: the value is longer than cap
};

struct ParamSlot {
  std::int64_t i = 0;
  double d = 0;
  signed char tiny = 0;
};

// Reading an abandoned result to its end (the sink stopped, or a row was too large).
struct Discard {
  bool active = false;
  // Not while a CALL runs (more results follow): a KILL would stop the rest of the procedure,
  // whose writes the client may count on.
  bool may_kill = true;
  bool kill_sent = false;
  std::size_t rows = 0;
  std::size_t bytes = 0;
};

class MysqlConnection final : public Connection {
 public:
  MysqlConnection(SessionParams params, std::string address, Handle h, std::unique_ptr<Socket> sock)
      : params_(std::move(params)),
        address_(std::move(address)),
        h_(std::move(h)),
        sock_(std::move(sock)) {}

  ~MysqlConnection() override {
    if (canceller_) canceller_->close();
    // Closing the handle detaches the prepared statements (no I/O is left to them), then they
    // are freed.
    h_.reset();
    free_statements();
    sock_->release();
  }

  // Session settings every connection needs, on a fresh session and after each reset, in one
  // round trip: session tracking reports user variables, temporary tables, prepared statements
  // and SET SESSION in OK packets; the reset restores the server's default character set.
  std::string setup_sql() const {
    return "SET NAMES " + params_.charset + ", SESSION session_track_state_change = ON";
  }

  asio::awaitable<std::optional<BackendError>> setup(Clock::time_point deadline) {
    MYSQL* m = h_.get();
    sock_->watch(mysql_get_socket(m));
    if (auto e = co_await run_simple(*sock_, m, setup_sql(), deadline)) co_return e;
    // Whether a lock wait timeout rolls back the whole transaction (a server start-up option):
    // the error packet does not say, and the transaction status must be right after it.
    {
      std::optional<BackendError> err;
      auto v = co_await scalar("SELECT @@innodb_rollback_on_timeout", deadline, err);
      // A server without InnoDB has no such variable: then nothing rolls back on a timeout.
      if (err && err->connection_broken) co_return err;
      rollback_on_timeout_ = v && (*v == "1" || *v == "ON");
    }
    server_status_ = m->server_status;
    thread_id_ = static_cast<std::int64_t>(mysql_thread_id(m));
    canceller_ = std::make_shared<Canceller>(params_, address_, mysql_thread_id(m));
    co_return std::nullopt;
  }

  Backend backend() const override { return Backend::mysql; }
  std::int64_t backend_pid() const override { return thread_id_; }
  int max_pipeline() const override { return 1; }

  void send(const Statement& statement) override {
    Pending p;
    p.sql.assign(statement.sql);
    p.params.assign(statement.params.begin(), statement.params.end());
    queue_.push_back(std::move(p));
  }

  void send_reset() override {
    Pending p;
    p.reset = true;
    queue_.push_back(std::move(p));
  }

  int outstanding() const override { return static_cast<int>(queue_.size()); }

  asio::awaitable<Outcome> receive(ResultSink& sink) override {
    Outcome out;
    if (queue_.empty()) {
      out.error = internal_error("receive() without a statement sent");
      co_return out;
    }
    Pending item = std::move(queue_.front());
    queue_.pop_front();
    if (broken_) {
      out.error = broken_error(aborted_ ? "the connection was aborted" : "the connection to MySQL is broken");
      out.tx = TxStatus::unknown;
      co_return out;
    }
    try {
      out = co_await run(item, sink);
    } catch (const std::exception& e) {
      // A bug or bad_alloc: the session's state is unknown, so it is written off.
      mark_broken();
      out = Outcome{};
      out.error = internal_error(std::string("mysql backend: ") + e.what());
      out.error->connection_broken = true;
    }
    if (out.error && out.error->connection_broken) {
      mark_broken();
      out.tx = TxStatus::unknown;
    }
    co_return out;
  }

  void cancel() override {
    if (canceller_) canceller_->cancel();
  }

  void abort() override {
    aborted_ = true;
    mark_broken();
    if (sock_->watching()) {
      sock_->shutdown();
    } else if (MYSQL* m = h_.get(); m != nullptr && mysql_get_socket(m) >= 0) {
      ::shutdown(mysql_get_socket(m), SHUT_RDWR);
    }
    sock_->cancel();
  }

  bool wants_replacement() const override {
    // Connector/C grows its packet buffer to the largest packet read and keeps it for the
    // connection's life (100 MB for a 100 MB row): only closing the connection gives it back.
    const MYSQL* m = h_.get();
    return m != nullptr && m->net.max_packet > kKeepBufferBytes;
  }

  bool looks_alive() override {
    if (broken_ || !h_) return false;
    if (!sock_->watching()) sock_->watch(mysql_get_socket(h_.get()));
    return sock_->idle_and_open();
  }

  asio::awaitable<bool> ping() override {
    if (broken_ || !h_) co_return false;
    MYSQL* m = h_.get();
    int rc = 0;
    co_await drive(
        *sock_, m, [&] { return mysql_ping_start(&rc, m); }, [&](int ev) { return mysql_ping_cont(&rc, m, ev); },
        Clock::now() + params_.connect_timeout);
    if (rc != 0) {
      mark_broken();
      co_return false;
    }
    server_status_ = m->server_status;
    co_return true;
  }

  asio::awaitable<void> close() override {
    if (canceller_) canceller_->close();
    if (h_ && !broken_) {
      co_await close_handle(*sock_, h_, Clock::now() + kCloseTimeout);
    }
    h_.reset();
    free_statements();
    sock_->release();
    broken_ = true;
  }

  StatementCacheStats cache_stats() const {
    StatementCacheStats s = stats_;
    s.size = lru_.size();
    return s;
  }

 private:
  struct Pending {
    bool reset = false;
    std::string sql;
    std::vector<Value> params;
  };

  struct CachedStatement {
    std::string sql;
    MYSQL_STMT* stmt = nullptr;
  };

  std::string mysql_error_text() const { return h_ ? mysql_error(h_.get()) : "no connection"; }

  void mark_broken() {
    broken_ = true;
    if (canceller_) canceller_->close();
  }

  // ------------------------------------------------------------ one statement

  asio::awaitable<Outcome> run(const Pending& item, ResultSink& sink) {
    Outcome out;
    // A KILL sent for the previous statement must have landed before this one starts.
    if (!canceller_->settled()) co_await canceller_->quiesce();
    if (aborted_) {
      out.error = broken_error("the connection was aborted");
      co_return out;
    }
    if (item.reset) co_return co_await run_reset();
    if (auto refused = refuse_array_params(item.params, "MySQL")) {
      out.error = std::move(refused);
      out.tx = tx_from_status();
      co_return out;
    }

    const auto seq = canceller_->begin(co_await asio::this_coro::executor);
    bool result_set = false;
    if (item.params.empty()) {
      co_await run_text(item.sql, sink, out, result_set);
    } else {
      co_await run_prepared(item, sink, out, result_set);
    }
    canceller_->end();
    if (!canceller_->settled()) co_await canceller_->quiesce();
    const bool killed = canceller_->delivered(seq);

    if (out.error && out.error->connection_broken) co_return out;
    if (aborted_) {
      out.error = broken_error("the connection was aborted");
      co_return out;
    }
    if (killed && !out.stopped && !out.row_too_large) {
      if (out.error && (out.error->number == kQueryInterrupted || out.error->number == kSortAborted)) {
        out.error->interrupted = true;
      } else if (!out.error && result_set) {
        // KILL QUERY stops some functions without an error (BENCHMARK() returns 0, MariaDB's
        // SLEEP() in some versions returns 1): a result whose statement our KILL reached is not
        // a result. OK packets are trusted: a write that reports success has happened.
        out.error = interrupted_error();
        out.row_count = 0;
        out.affected = 0;
      }
    }
    if (out.error && !out.row_too_large) {
      out.tx = tx_after_error(out.error->number.value_or(0));
      out.last_insert_id.reset();
      out.session_state_changed = false;
    } else {
      out.tx = tx_from_status();
    }
    co_return out;
  }

  TxStatus tx_from_status() const {
    return (server_status_ & SERVER_STATUS_IN_TRANS) != 0 ? TxStatus::in_tx : TxStatus::idle;
  }

  // An error packet carries no status flags, so the status is derived: MySQL keeps the
  // transaction open after a failed statement, except after a deadlock, a full lock table and
  // (with innodb_rollback_on_timeout) a lock wait timeout, which roll it back. With autocommit
  // off, the failed statement may itself have opened one: assume it did (a pinned connection is
  // the safe mistake; the next statement's status corrects it).
  TxStatus tx_after_error(std::int64_t number) {
    if (number == kLockDeadlock || number == kLockTableFull ||
        (number == kLockWaitTimeout && rollback_on_timeout_)) {
      server_status_ &= ~static_cast<unsigned>(SERVER_STATUS_IN_TRANS);
      return TxStatus::idle;
    }
    if ((server_status_ & SERVER_STATUS_IN_TRANS) != 0) return TxStatus::in_tx;
    if ((server_status_ & SERVER_STATUS_AUTOCOMMIT) == 0) return TxStatus::in_tx;
    return TxStatus::idle;
  }

  // The OK packet just read: what it says about session state.
  void note_session_state(Outcome& out) {
    MYSQL* m = h_.get();
    if ((m->server_status & SERVER_SESSION_STATE_CHANGED) != 0) out.session_state_changed = true;
    const char* data = nullptr;
    std::size_t len = 0;
    for (auto type : {SESSION_TRACK_STATE_CHANGE, SESSION_TRACK_SYSTEM_VARIABLES, SESSION_TRACK_SCHEMA}) {
      if (mysql_session_track_get_first(m, type, &data, &len) == 0) out.session_state_changed = true;
    }
  }

  void set_error(Outcome& out, BackendError e) {
    // A row_too_large error stands, unless the connection broke meanwhile.
    if (out.error && !e.connection_broken) return;
    out.error = std::move(e);
  }

  // An error read while rows were being discarded is the KILL's doing or no longer of interest,
  // unless the connection broke.
  void stream_error(Outcome& out, BackendError e, const Discard& d) {
    if (d.active && !e.connection_broken) return;
    set_error(out, std::move(e));
  }

  void row_too_large(Outcome& out, std::size_t bytes, std::size_t limit) {
    out.row_too_large = true;
    BackendError e;
    e.code = ErrorCode::bad_request;
    e.message = "a result row of " + std::to_string(bytes) + " bytes is larger than the limit of " +
                std::to_string(limit) + " bytes";
    out.error = std::move(e);
  }

  void discard_row(Discard& d, std::size_t bytes) {
    ++d.rows;
    d.bytes += bytes;
    if (d.may_kill && !d.kill_sent && (d.rows > kDiscardRowsBeforeKill || d.bytes > kDiscardBytesBeforeKill)) {
      d.kill_sent = true;
      canceller_->cancel_internal();
    }
  }

  void prepare_columns(const MYSQL_FIELD* fields, unsigned n) {
    cols_.resize(n);
    infos_.resize(n);
    for (unsigned i = 0; i < n; ++i) describe(fields[i], cols_[i], infos_[i]);
    values_.resize(n);
    scratch_.resize(n);
  }

  // ------------------------------------------------------------ text protocol

  asio::awaitable<void> run_text(const std::string& sql, ResultSink& sink, Outcome& out, bool& result_set) {
    MYSQL* m = h_.get();
    // mysql_real_query sends the query and at once tries to read the answer, which cannot be there
    // yet: one failed recv() per statement. Sending, waiting for the answer here, then reading it
    // saves that call.
    int err = 0;
    co_await drive(
        *sock_, m, [&] { return mysql_send_query_start(&err, m, sql.data(), static_cast<unsigned long>(sql.size())); },
        [&](int ev) { return mysql_send_query_cont(&err, m, ev); });
    my_bool failed = err != 0;
    if (!failed) {
      // Cancelled or not, the read below decides: on a shut-down socket it fails at once.
      if (sock_->watching()) co_await sock_->wait(MYSQL_WAIT_READ, 0, std::nullopt);
      co_await drive(
          *sock_, m, [&] { return mysql_read_query_result_start(&failed, m); },
          [&](int ev) { return mysql_read_query_result_cont(&failed, m, ev); });
    }
    if (failed) {
      set_error(out, error_of(m));
      co_return;
    }
    // A CALL returns several results: the first result set goes to the sink, later ones are read
    // and dropped (they must be read to keep the session in sync), the final OK gives the status.
    for (;;) {
      if (mysql_field_count(m) > 0) {
        const bool deliver = !result_set;
        result_set = true;
        const bool ended_ok = co_await stream_text(sink, out, deliver);
        if (out.error && (!out.row_too_large || out.error->connection_broken)) co_return;
        if (!ended_ok) co_return;
      } else {
        server_status_ = m->server_status;
        if (!result_set) {
          out.affected = static_cast<std::int64_t>(mysql_affected_rows(m));
          if (const auto id = mysql_insert_id(m); id != 0) out.last_insert_id = static_cast<std::int64_t>(id);
        }
        note_session_state(out);
      }
      if (!mysql_more_results(m)) break;
      int rc = 0;
      co_await drive(
          *sock_, m, [&] { return mysql_next_result_start(&rc, m); },
          [&](int ev) { return mysql_next_result_cont(&rc, m, ev); });
      if (rc > 0) {
        set_error(out, error_of(m));
        co_return;
      }
      if (rc < 0) break;
    }
  }

  // Returns false when the result ended with an error instead of its EOF packet (nothing follows
  // an error; asking for more results then would wait for a packet that never comes).
  asio::awaitable<bool> stream_text(ResultSink& sink, Outcome& out, bool deliver) {
    MYSQL* m = h_.get();
    MYSQL_RES* res = mysql_use_result(m);
    if (res == nullptr) {
      set_error(out, error_of(m));
      co_return false;
    }
    // Freed when the rows have been read to their end (or error), so without any I/O; on an
    // exception the socket is cut first, so mysql_free_result()'s skipping of the rest fails at
    // once instead of blocking.
    bool finished = false;
    struct Free {
      MYSQL_RES* res;
      Socket& sock;
      bool& finished;
      ~Free() {
        if (!finished) sock.shutdown();
        mysql_free_result(res);
      }
    } free_res{res, *sock_, finished};

    const unsigned n = mysql_num_fields(res);
    bool ended_ok = true;
    Discard d;
    d.active = !deliver;
    d.may_kill = deliver && (m->server_status & SERVER_MORE_RESULTS_EXIST) == 0;
    if (deliver) {
      prepare_columns(mysql_fetch_fields(res), n);
      sink.columns(cols_);
    }
    const std::size_t limit = sink.max_row_bytes();
    for (;;) {
      MYSQL_ROW row = nullptr;
      co_await drive(
          *sock_, m, [&] { return mysql_fetch_row_start(&row, res); },
          [&](int ev) { return mysql_fetch_row_cont(&row, res, ev); });
      if (row == nullptr) {
        // The end of the rows, or an error raised while producing them (it keeps its SQLSTATE).
        if (mysql_errno(m) != 0) {
          stream_error(out, error_of(m), d);
          ended_ok = false;
        }
        break;
      }
      const unsigned long* len = mysql_fetch_lengths(res);
      std::size_t bytes = 0;
      for (unsigned i = 0; i < n; ++i) bytes += len[i];
      if (d.active) {
        discard_row(d, bytes);
        continue;
      }
      // Connector/C has read the whole row into its network buffer by now; refusing it here
      // keeps it out of the sink and out of the client's output.
      if (bytes > limit) {
        row_too_large(out, bytes, limit);
        d.active = true;
        continue;
      }
      for (unsigned i = 0; i < n; ++i) values_[i] = from_text(infos_[i], row[i], len[i], scratch_[i]);
      sink.row(values_);
      ++out.row_count;
      // Backpressure: while the client cannot take more, the rows wait in the socket.
      if (sink.full()) {
        const bool more = co_await sink.drained();
        if (!more) {
          out.stopped = true;
          d.active = true;
        }
      }
    }
    finished = true;
    if (ended_ok) server_status_ = m->server_status;
    if (deliver) out.affected = out.row_count;
    co_return ended_ok;
  }

  // ------------------------------------------------------------ binary protocol

  asio::awaitable<void> run_prepared(const Pending& item, ResultSink& sink, Outcome& out, bool& result_set) {
    MYSQL* m = h_.get();
    MYSQL_STMT* stmt = nullptr;
    for (int attempt = 0;; ++attempt) {
      stmt = co_await statement(item.sql, out);
      if (stmt == nullptr) co_return;
      const unsigned long want = mysql_stmt_param_count(stmt);
      if (want != item.params.size()) {
        out.error = placeholder_mismatch(want, item.params.size());
        co_return;
      }
      bind_params(item.params);
      if (mysql_stmt_bind_param(stmt, pbinds_.data()) != 0) {
        set_error(out, error_of(stmt));
        co_return;
      }
      if (!co_await send_long_data(stmt, out)) co_return;
      int err = 0;
      co_await drive(
          *sock_, m, [&] { return mysql_stmt_execute_start(&err, stmt); },
          [&](int ev) { return mysql_stmt_execute_cont(&err, stmt, ev); });
      if (err == 0) break;
      BackendError e = error_of(stmt);
      // The table behind a cached statement changed shape: prepare it again, once.
      if (attempt == 0 && (e.number == kNeedReprepare || e.number == kNewStmtMetadata)) {
        co_await evict(item.sql);
        if (broken_) {
          set_error(out, broken_error("closing a stale prepared statement failed: " + mysql_error_text()));
          co_return;
        }
        continue;
      }
      set_error(out, std::move(e));
      co_return;
    }

    for (;;) {
      if (mysql_stmt_field_count(stmt) > 0) {
        const bool deliver = !result_set;
        result_set = true;
        const bool ended_ok = co_await stream_binary(stmt, sink, out, deliver);
        if (out.error && (!out.row_too_large || out.error->connection_broken)) co_return;
        if (!ended_ok) co_return;
      } else {
        server_status_ = m->server_status;
        if (!result_set) {
          out.affected = static_cast<std::int64_t>(mysql_stmt_affected_rows(stmt));
          if (const auto id = mysql_stmt_insert_id(stmt); id != 0) out.last_insert_id = static_cast<std::int64_t>(id);
        }
        note_session_state(out);
      }
      if (!mysql_stmt_more_results(stmt)) break;
      int rc = 0;
      co_await drive(
          *sock_, m, [&] { return mysql_stmt_next_result_start(&rc, stmt); },
          [&](int ev) { return mysql_stmt_next_result_cont(&rc, stmt, ev); });
      if (rc > 0) {
        set_error(out, error_of(stmt));
        co_return;
      }
      if (rc < 0) break;
    }
  }

  // Long text and bytes parameters go ahead in pieces (COM_STMT_SEND_LONG_DATA) instead of
  // inside COM_STMT_EXECUTE: no packet then exceeds the server's max_allowed_packet, so a
  // parameter the server finds too long fails the statement instead of the connection, and
  // Connector/C does not copy it into one execute buffer of its full size.
  asio::awaitable<bool> send_long_data(MYSQL_STMT* stmt, Outcome& out) {
    MYSQL* m = h_.get();
    for (std::size_t k = 0; k < pbinds_.size(); ++k) {
      const MYSQL_BIND& b = pbinds_[k];
      if ((b.buffer_type != MYSQL_TYPE_STRING && b.buffer_type != MYSQL_TYPE_LONG_BLOB) ||
          b.buffer_length < kLongDataThreshold) {
        continue;
      }
      const char* data = static_cast<const char*>(b.buffer);
      for (unsigned long off = 0; off < b.buffer_length; off += kLongDataChunk) {
        const unsigned long len = std::min<unsigned long>(kLongDataChunk, b.buffer_length - off);
        my_bool rc = 0;
        co_await drive(
            *sock_, m,
            [&] { return mysql_stmt_send_long_data_start(&rc, stmt, static_cast<unsigned>(k), data + off, len); },
            [&](int ev) { return mysql_stmt_send_long_data_cont(&rc, stmt, ev); });
        if (rc != 0) {
          set_error(out, error_of(stmt));
          co_return false;
        }
      }
    }
    co_return true;
  }

  void bind_params(const std::vector<Value>& params) {
    pbinds_.assign(params.size(), MYSQL_BIND{});
    pslots_.assign(params.size(), ParamSlot{});
    for (std::size_t k = 0; k < params.size(); ++k) {
      MYSQL_BIND& b = pbinds_[k];
      ParamSlot& s = pslots_[k];
      const Value& v = params[k];
      if (std::holds_alternative<protocol::Null>(v)) {
        b.buffer_type = MYSQL_TYPE_NULL;
      } else if (const bool* x = std::get_if<bool>(&v)) {
        s.tiny = *x ? 1 : 0;
        b.buffer_type = MYSQL_TYPE_TINY;
        b.buffer = &s.tiny;
      } else if (const std::int64_t* i = std::get_if<std::int64_t>(&v)) {
        s.i = *i;
        b.buffer_type = MYSQL_TYPE_LONGLONG;
        b.buffer = &s.i;
      } else if (const double* d = std::get_if<double>(&v)) {
        s.d = *d;
        b.buffer_type = MYSQL_TYPE_DOUBLE;
        b.buffer = &s.d;
      } else if (const std::string* t = std::get_if<std::string>(&v)) {
        // Text in the connection's character set (character_set_client), never as binary.
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = const_cast<char*>(t->data());
        b.buffer_length = static_cast<unsigned long>(t->size());
      } else if (const protocol::Bytes* by = std::get_if<protocol::Bytes>(&v)) {
        b.buffer_type = MYSQL_TYPE_LONG_BLOB;  // the server takes blob parameters as binary
        b.buffer = const_cast<char*>(by->data.data());
        b.buffer_length = static_cast<unsigned long>(by->data.size());
      } else if (const protocol::Tagged* tg = std::get_if<protocol::Tagged>(&v)) {
        // A decimal stays exact as a DECIMAL parameter; the rest convert from text on the server.
        b.buffer_type = tg->type == protocol::Type::decimal ? MYSQL_TYPE_NEWDECIMAL : MYSQL_TYPE_STRING;
        b.buffer = const_cast<char*>(tg->text.data());
        b.buffer_length = static_cast<unsigned long>(tg->text.size());
      }
    }
  }

  void bind_results(const MYSQL_FIELD* fields, unsigned n) {
    slots_.resize(n);
    rbinds_.assign(n, MYSQL_BIND{});
    for (unsigned i = 0; i < n; ++i) {
      ResultSlot& s = slots_[i];
      MYSQL_BIND& b = rbinds_[i];
      b.is_null = &s.is_null;
      b.length = &s.length;
      b.error = &s.error;
      switch (infos_[i].conv) {
        case Conv::null: s.kind = Slot::none; b.buffer_type = MYSQL_TYPE_NULL; break;
        case Conv::integer:
        case Conv::unsigned64:
          s.kind = Slot::integer;
          b.buffer_type = MYSQL_TYPE_LONGLONG;
          b.buffer = &s.i;
          b.is_unsigned = (fields[i].flags & UNSIGNED_FLAG) != 0;
          break;
        case Conv::float32:
          s.kind = Slot::float32;
          b.buffer_type = MYSQL_TYPE_FLOAT;
          b.buffer = &s.f;
          break;
        case Conv::float64:
          s.kind = Slot::float64;
          b.buffer_type = MYSQL_TYPE_DOUBLE;
          b.buffer = &s.d;
          break;
        case Conv::date:
        case Conv::time:
        case Conv::timestamp:
          s.kind = Slot::temporal;
          b.buffer_type = infos_[i].conv == Conv::date   ? MYSQL_TYPE_DATE
                          : infos_[i].conv == Conv::time ? MYSQL_TYPE_TIME
                                                         : MYSQL_TYPE_DATETIME;
          b.buffer = &s.t;
          break;
        default: {
          // Strings, DECIMAL, BIT, JSON: the raw bytes. Start small; a longer value grows the
          // buffer to its length (mysql_stmt_fetch_column), which later rows then reuse.
          s.kind = Slot::bytes;
          if (!s.buf) {
            const unsigned long want = std::clamp<unsigned long>(fields[i].length + 1, 16, kInitialBufferBytes);
            s.buf = std::make_unique<char[]>(want);
            s.cap = want;
          }
          b.buffer_type = MYSQL_TYPE_BLOB;
          b.buffer = s.buf.get();
          b.buffer_length = s.cap;
          break;
        }
      }
    }
  }

  // Returns false when the result ended with an error (see stream_text).
  asio::awaitable<bool> stream_binary(MYSQL_STMT* stmt, ResultSink& sink, Outcome& out, bool deliver) {
    MYSQL* m = h_.get();
    const unsigned n = mysql_stmt_field_count(stmt);
    const MYSQL_FIELD* fields = mariadb_stmt_fetch_fields(stmt);
    bool ended_ok = true;
    Discard d;
    d.active = !deliver;
    d.may_kill = deliver && (m->server_status & SERVER_MORE_RESULTS_EXIST) == 0;
    if (deliver) {
      prepare_columns(fields, n);
      bind_results(fields, n);
      if (mysql_stmt_bind_result(stmt, rbinds_.data()) != 0) {
        set_error(out, error_of(stmt));
        // The rows are still on the wire: read them so the session stays in sync.
        d.active = true;
      } else {
        sink.columns(cols_);
      }
    }
    // Unbound (a later result of a CALL, or binding failed), fetching only walks the rows.
    const std::size_t limit = sink.max_row_bytes();
    for (;;) {
      int rc = 0;
      co_await drive(
          *sock_, m, [&] { return mysql_stmt_fetch_start(&rc, stmt); },
          [&](int ev) { return mysql_stmt_fetch_cont(&rc, stmt, ev); });
      if (rc == MYSQL_NO_DATA) {
        note_eof_status(m);
        break;
      }
      if (rc != 0 && rc != MYSQL_DATA_TRUNCATED) {
        stream_error(out, error_of(stmt), d);
        ended_ok = false;
        break;
      }
      if (d.active) {
        std::size_t bytes = 0;
        if (deliver && !out.error) {
          for (unsigned i = 0; i < n; ++i) bytes += slots_[i].is_null ? 0 : value_bytes(slots_[i]);
        }
        discard_row(d, bytes);
        continue;
      }
      std::size_t bytes = 0;
      for (unsigned i = 0; i < n; ++i) bytes += slots_[i].is_null ? 0 : value_bytes(slots_[i]);
      // The whole row is in Connector/C's network buffer; a long value has not been copied out
      // of it yet, and is not when the row is refused.
      if (bytes > limit) {
        row_too_large(out, bytes, limit);
        d.active = true;
        continue;
      }
      bool rebind = false;
      for (unsigned i = 0; i < n; ++i) {
        ResultSlot& s = slots_[i];
        if (s.kind != Slot::bytes || s.is_null || !s.error) continue;
        grow(s, s.length);
        MYSQL_BIND col = rbinds_[i];
        col.buffer = s.buf.get();
        col.buffer_length = s.cap;
        if (mysql_stmt_fetch_column(stmt, &col, i, 0) != 0) {
          set_error(out, error_of(stmt));
          d.active = true;
          break;
        }
        rbinds_[i].buffer = s.buf.get();
        rbinds_[i].buffer_length = s.cap;
        rebind = true;
      }
      if (d.active) continue;
      for (unsigned i = 0; i < n; ++i) values_[i] = binary_value(i);
      sink.row(values_);
      // Only now: rebinding resets the row position mysql_stmt_fetch_column reads from.
      if (rebind && mysql_stmt_bind_result(stmt, rbinds_.data()) != 0) {
        set_error(out, error_of(stmt));
        d.active = true;
        continue;
      }
      ++out.row_count;
      if (sink.full()) {
        const bool more = co_await sink.drained();
        if (!more) {
          out.stopped = true;
          d.active = true;
        }
      }
    }
    if (deliver) out.affected = out.row_count;
    shrink_buffers();
    co_return ended_ok;
  }

  static std::size_t value_bytes(const ResultSlot& s) {
    switch (s.kind) {
      case Slot::none: return 0;
      case Slot::bytes: return s.length;
      case Slot::temporal: return 12;
      default: return 8;
    }
  }

  static void grow(ResultSlot& s, unsigned long need) {
    if (need + 1 <= s.cap) return;
    const unsigned long cap = std::max<unsigned long>(need + 1, s.cap * 2);
    s.buf = std::make_unique<char[]>(cap);
    s.cap = cap;
  }

  void shrink_buffers() {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      ResultSlot& s = slots_[i];
      if (s.cap > kKeepBufferBytes) {
        s.buf.reset();
        s.cap = 0;
      }
    }
  }

  ValueView binary_value(unsigned i) {
    const ResultSlot& s = slots_[i];
    const ColumnInfo& ci = infos_[i];
    if (s.is_null) return ValueView::null();
    switch (s.kind) {
      case Slot::none: return ValueView::null();
      case Slot::integer: return from_int(ci, s.i, scratch_[i]);
      case Slot::float32: return from_float(ci, s.f);
      case Slot::float64: return from_double(ci, s.d);
      case Slot::temporal: return from_temporal(ci, s.t, scratch_[i]);
      case Slot::bytes: break;
    }
    return from_bytes(ci, std::string_view(s.buf.get(), s.length), scratch_[i]);
  }

  // Connector/C does not take the status flags from the EOF packet that ends an unbuffered
  // prepared result (stmt_unbuffered_fetch); they are read from the packet, which is still in
  // the network buffer, and given back to the library for its own checks (more results).
  void note_eof_status(MYSQL* m) {
    const unsigned char* p = m->net.read_pos;
    if (p == nullptr || p[0] != 254) return;
    const unsigned status = static_cast<unsigned>(p[3]) | (static_cast<unsigned>(p[4]) << 8);
    server_status_ = status;
    m->server_status = status;
  }

  // ------------------------------------------------------------ statement cache

  // The prepared statement for `sql`, from the cache or prepared now; null with out.error set.
  asio::awaitable<MYSQL_STMT*> statement(const std::string& sql, Outcome& out) {
    if (auto it = index_.find(sql); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      co_return it->second->stmt;
    }
    MYSQL* m = h_.get();
    MYSQL_STMT* stmt = mysql_stmt_init(m);
    if (stmt == nullptr) {
      set_error(out, error_of(m));
      co_return nullptr;
    }
    int err = 0;
    co_await drive(
        *sock_, m,
        [&] { return mysql_stmt_prepare_start(&err, stmt, sql.data(), static_cast<unsigned long>(sql.size())); },
        [&](int ev) { return mysql_stmt_prepare_cont(&err, stmt, ev); });
    if (err != 0) {
      set_error(out, error_of(stmt));
      // Never prepared on the server: closing it only frees memory.
      mysql_stmt_close(stmt);
      co_return nullptr;
    }
    ++stats_.misses;
    lru_.push_front(CachedStatement{sql, stmt});
    index_.emplace(lru_.front().sql, lru_.begin());
    while (lru_.size() > kStatementCacheCapacity) {
      CachedStatement& victim = lru_.back();
      index_.erase(victim.sql);
      MYSQL_STMT* old = victim.stmt;
      lru_.pop_back();
      ++stats_.evictions;
      co_await close_statement(old);
      if (broken_) {
        set_error(out, broken_error("closing a prepared statement failed: " + mysql_error_text()));
        co_return nullptr;
      }
    }
    co_return stmt;
  }

  asio::awaitable<void> evict(const std::string& sql) {
    auto it = index_.find(sql);
    if (it == index_.end()) co_return;
    MYSQL_STMT* stmt = it->second->stmt;
    lru_.erase(it->second);
    index_.erase(it);
    ++stats_.evictions;
    co_await close_statement(stmt);
  }

  // COM_STMT_CLOSE has no reply, but the library first reads any rows still pending for the
  // statement, so it goes through the non-blocking API too.
  asio::awaitable<void> close_statement(MYSQL_STMT* stmt) {
    MYSQL* m = h_.get();
    my_bool rc = 0;
    co_await drive(
        *sock_, m, [&] { return mysql_stmt_close_start(&rc, stmt); },
        [&](int ev) { return mysql_stmt_close_cont(&rc, stmt, ev); });
    if (rc != 0 && is_connection_errno(mysql_errno(m))) mark_broken();
  }

  // Frees every cached statement without any I/O: only once the handle has been closed or reset,
  // which detached them (the server has dropped them already).
  void free_statements() {
    for (auto& c : lru_) mysql_stmt_close(c.stmt);
    lru_.clear();
    index_.clear();
  }

  // ------------------------------------------------------------ reset

  asio::awaitable<Outcome> run_reset() {
    Outcome out;
    MYSQL* m = h_.get();
    int rc = 0;
    // COM_RESET_CONNECTION: session variables, user variables, temporary tables, prepared
    // statements, user locks, an open transaction: all gone; the session id stays.
    co_await drive(
        *sock_, m, [&] { return mysql_reset_connection_start(&rc, m); },
        [&](int ev) { return mysql_reset_connection_cont(&rc, m, ev); });
    if (rc != 0) {
      out.error = error_of(m);
      // A half-reset session must not serve another client.
      out.error->connection_broken = true;
      out.error->code = ErrorCode::backend_unavailable;
      co_return out;
    }
    free_statements();
    if (auto e = co_await run_simple(*sock_, m, setup_sql(), std::nullopt)) {
      out.error = std::move(*e);
      out.error->connection_broken = true;
      out.error->code = ErrorCode::backend_unavailable;
      co_return out;
    }
    server_status_ = m->server_status;
    out.tx = tx_from_status();
    co_return out;
  }

  // The first value of a query (setup only); nullopt with `error` set when it fails.
  asio::awaitable<std::optional<std::string>> scalar(const std::string& sql, Clock::time_point deadline,
                                                     std::optional<BackendError>& error) {
    MYSQL* m = h_.get();
    int err = 0;
    co_await drive(
        *sock_, m,
        [&] { return mysql_real_query_start(&err, m, sql.data(), static_cast<unsigned long>(sql.size())); },
        [&](int ev) { return mysql_real_query_cont(&err, m, ev); }, deadline);
    if (err != 0) {
      error = error_of(m);
      co_return std::nullopt;
    }
    if (mysql_field_count(m) == 0) co_return std::nullopt;
    MYSQL_RES* res = mysql_use_result(m);
    if (res == nullptr) {
      error = error_of(m);
      co_return std::nullopt;
    }
    std::optional<std::string> value;
    for (;;) {
      MYSQL_ROW row = nullptr;
      co_await drive(
          *sock_, m, [&] { return mysql_fetch_row_start(&row, res); },
          [&](int ev) { return mysql_fetch_row_cont(&row, res, ev); }, deadline);
      if (row == nullptr) break;
      if (!value && row[0] != nullptr) value.emplace(row[0], mysql_fetch_lengths(res)[0]);
    }
    if (mysql_errno(m) != 0) error = error_of(m);
    mysql_free_result(res);  // at the end of the rows: no I/O
    if (error) co_return std::nullopt;
    co_return value;
  }

  const SessionParams params_;
  const std::string address_;
  Handle h_;
  std::unique_ptr<Socket> sock_;
  std::shared_ptr<Canceller> canceller_;
  std::int64_t thread_id_ = 0;
  std::deque<Pending> queue_;
  bool broken_ = false;
  bool aborted_ = false;
  bool rollback_on_timeout_ = false;
  unsigned server_status_ = SERVER_STATUS_AUTOCOMMIT;

  // Prepared statements, most recently used first.
  std::list<CachedStatement> lru_;
  std::unordered_map<std::string_view, std::list<CachedStatement>::iterator> index_;
  StatementCacheStats stats_;

  // The current result's columns and row, reused from row to row and statement to statement.
  std::vector<protocol::Column> cols_;
  std::vector<ColumnInfo> infos_;
  std::vector<ValueView> values_;
  std::vector<Scratch> scratch_;
  std::vector<ResultSlot> slots_;
  std::vector<MYSQL_BIND> rbinds_;
  std::vector<MYSQL_BIND> pbinds_;
  std::vector<ParamSlot> pslots_;
};

}  // namespace

std::optional<StatementCacheStats> statement_cache_stats(const Connection& conn) {
  if (const auto* c = dynamic_cast<const MysqlConnection*>(&conn)) return c->cache_stats();
  return std::nullopt;
}

}  // namespace mysql

namespace detail {

asio::awaitable<ConnectResult> connect_mysql(asio::any_io_executor ex, const DatabaseUrl& url,
                                             const ConnectOptions& options) {
  using namespace mysql;
  ConnectResult r;
  r.error.code = ErrorCode::backend_unavailable;
  SessionParams p;
  if (auto bad = session_params(url, options, p)) {
    r.error.message = *bad;
    co_return r;
  }
  const auto deadline = Clock::now() + p.connect_timeout;
  std::optional<BackendError> err;
  const std::vector<std::string> addresses = co_await resolve_host(ex, p, deadline, err);
  for (std::size_t k = 0; k < addresses.size() && !err.has_value() && !r.conn; ++k) {
    auto sock = std::make_unique<Socket>(ex);
    Handle h = new_handle(p);
    if (!h) {
      err = BackendError{ErrorCode::backend_unavailable, "cannot allocate a MySQL handle", "", std::nullopt, false, false};
      break;
    }
    err = co_await connect_handle(*sock, h, p, addresses[k], deadline);
    if (err) {
      // Refused or unreachable: the next address of the name may answer.
      const bool next = (err->number == CR_CONNECTION_ERROR || err->number == CR_CONN_HOST_ERROR) &&
                        k + 1 < addresses.size() && Clock::now() < deadline;
      if (next) err.reset();
      continue;
    }
    auto conn = std::make_unique<MysqlConnection>(p, addresses[k], std::move(h), std::move(sock));
    if (auto e = co_await conn->setup(deadline)) {
      err = std::move(e);
      err->code = ErrorCode::backend_unavailable;
      err->connection_broken = false;
      break;
    }
    r.conn = std::move(conn);
  }
  if (!r.conn) {
    if (err) r.error = std::move(*err);
    if (r.error.message.empty()) r.error.message = "MySQL connect failed";
    r.error.code = ErrorCode::backend_unavailable;
  }
  co_return r;
}

}  // namespace detail
}  // namespace binds::backend
