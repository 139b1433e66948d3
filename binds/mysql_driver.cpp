// MySQL / MariaDB through Connector/C++ 1.1 (JDBC-style API over libmariadb).
//
// Streaming: plain statements use TYPE_FORWARD_ONLY, i.e. mysql_use_result, so rows are read
// from the socket one at a time. Prepared statements (any statement with parameters) cannot be
// streamed with this connector: 1.1 refuses setResultSetType() on them and always stores the
// whole result client-side ("not ready for unbuffered as we need to refetch": its result
// buffers are sized from max_length, which libmariadb only computes for stored results).
// Parameterised queries therefore hold their full result in memory while it is sent.

#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/resultset_metadata.h>
#include <cppconn/statement.h>
#include <mysql_connection.h>
#include <mysql_driver.h>

#include <algorithm>
#include <charconv>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "binds/driver.hpp"

namespace binds {
namespace {

using protocol::Type;
using protocol::Value;

sql::mysql::MySQL_Driver* driver() {
  // get_driver_instance() fills an unguarded static map on its first call.
  static std::once_flag once;
  static sql::mysql::MySQL_Driver* d = nullptr;
  std::call_once(once, [] { d = sql::mysql::get_mysql_driver_instance(); });
  return d;
}

// libmariadb keeps per-thread state that must be set up before and released after a thread
// uses it; pool workers are long-lived, so once per thread is enough.
struct ThreadGuard {
  ThreadGuard() { driver()->threadInit(); }
  ~ThreadGuard() { driver()->threadEnd(); }
};

void ensure_thread() { thread_local ThreadGuard guard; }

bool is_connection_errno(int n) {
  // CR_* client errors (2000-2999) are all about the link to the server; 1053 = server
  // shutdown in progress, 1927 = connection killed (MariaDB).
  return (n >= 2000 && n <= 2999) || n == 1053 || n == 1927;
}

BackendError from_exception(const sql::SQLException& e) {
  BackendError err;
  err.message = e.what();
  if (err.message.empty()) err.message = "MySQL error";
  err.sqlstate = e.getSQLState();
  const int n = e.getErrorCode();
  if (n != 0) err.number = n;
  if (is_connection_errno(n) ||
      dynamic_cast<const sql::InvalidInstanceException*>(&e) != nullptr) {
    err.code = protocol::ErrorCode::backend_unavailable;
    err.connection_broken = true;
  }
  return err;
}

// How one result column becomes protocol values.
enum class Conv { null, integer, bit, real_float, real_double, decimal, text, bytes, tagged };

struct ColumnInfo {
  protocol::Column column;
  Conv conv = Conv::text;
};

bool binary_charset(sql::ResultSetMetaData* m, unsigned i) {
  try {
    return m->getColumnCharset(i) == "binary";
  } catch (const sql::SQLException&) {
    return false;
  }
}

ColumnInfo describe(sql::ResultSetMetaData* m, unsigned i) {
  ColumnInfo ci;
  ci.column.name = m->getColumnLabel(i);
  ci.column.db_type = m->getColumnTypeName(i);
  auto set = [&](Type t, Conv c) {
    ci.column.type = t;
    ci.conv = c;
  };
  switch (m->getColumnType(i)) {
    case sql::DataType::SQLNULL:
      set(Type::null, Conv::null);
      break;
    case sql::DataType::BIT:
      set(Type::int64, Conv::bit);
      break;
    case sql::DataType::TINYINT:  // includes BOOLEAN, which MySQL stores as TINYINT(1)
    case sql::DataType::SMALLINT:
    case sql::DataType::MEDIUMINT:
    case sql::DataType::INTEGER:
    case sql::DataType::BIGINT:
    case sql::DataType::YEAR:
      set(Type::int64, Conv::integer);
      break;
    case sql::DataType::REAL:
      set(Type::float64, Conv::real_float);
      break;
    case sql::DataType::DOUBLE:
      set(Type::float64, Conv::real_double);
      break;
    case sql::DataType::DECIMAL:
    case sql::DataType::NUMERIC:
      set(Type::decimal, Conv::decimal);
      break;
    case sql::DataType::DATE:
      set(Type::date, Conv::tagged);
      break;
    case sql::DataType::TIME:
      set(Type::time, Conv::tagged);
      break;
    case sql::DataType::TIMESTAMP:  // DATETIME and TIMESTAMP
      set(Type::timestamp, Conv::tagged);
      break;
    case sql::DataType::JSON:
      set(Type::json, Conv::tagged);
      break;
    case sql::DataType::BINARY:
    case sql::DataType::VARBINARY:
    case sql::DataType::LONGVARBINARY:
    case sql::DataType::GEOMETRY:
      set(Type::bytes, Conv::bytes);
      break;
    default:
      // CHAR/VARCHAR/TEXT/ENUM/SET. The connector already reports binary strings as *BINARY;
      // the charset check is a second guard for results whose flags it misreads.
      if (binary_charset(m, i)) {
        set(Type::bytes, Conv::bytes);
      } else {
        set(Type::text, Conv::text);
      }
      break;
  }
  return ci;
}

double parse_or(const std::string& s, double fallback) {
  double d = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), d);
  return res.ec == std::errc() && res.ptr == s.data() + s.size() ? d : fallback;
}

Value convert(sql::ResultSet& rs, unsigned i, const ColumnInfo& ci, bool prepared) {
  if (ci.conv == Conv::null || rs.isNull(i)) return protocol::Null{};
  switch (ci.conv) {
    case Conv::integer: {
      std::string s = rs.getString(i);
      std::int64_t v = 0;
      auto res = std::from_chars(s.data(), s.data() + s.size(), v);
      if (res.ec == std::errc() && res.ptr == s.data() + s.size()) return v;
      // BIGINT UNSIGNED above 2^63-1 does not fit the protocol's int64.
      return protocol::Tagged{Type::decimal, std::move(s)};
    }
    case Conv::bit: {
      std::uint64_t v = rs.getUInt64(i);
      if (v > static_cast<std::uint64_t>(INT64_MAX)) {
        return protocol::Tagged{Type::decimal, std::to_string(v)};
      }
      return static_cast<std::int64_t>(v);
    }
    case Conv::real_float:
    case Conv::real_double: {
      if (!prepared) {
        // The text protocol carries the server's shortest round-trip form: parse it exactly
        // (getDouble goes through long double and could round twice).
        std::string s = rs.getString(i);
        return parse_or(s, static_cast<double>(rs.getDouble(i)));
      }
      double d = static_cast<double>(rs.getDouble(i));
      if (ci.conv == Conv::real_float) {
        // A FLOAT column arrives as a 32-bit float; its shortest form (1.1, not
        // 1.100000023841858) matches what the text protocol gives for the same column.
        char buf[32];
        auto res = std::to_chars(buf, buf + sizeof buf, static_cast<float>(d));
        return parse_or(std::string(buf, res.ptr), d);
      }
      return d;
    }
    case Conv::decimal:
      return protocol::Tagged{Type::decimal, rs.getString(i)};
    case Conv::tagged:
      return protocol::Tagged{ci.column.type, rs.getString(i)};
    case Conv::bytes:
      return protocol::Bytes{rs.getString(i)};
    default:
      return std::string(rs.getString(i));
  }
}

// Opens one session. Throws sql::SQLException; returns nullptr (err filled) for a bad option.
// side_timeout > 0 bounds connect, read and write for a short-lived side connection.
std::unique_ptr<sql::Connection> open_session(const DatabaseUrl& url, int side_timeout,
                                              BackendError& err) {
  sql::ConnectOptionsMap opts;
  if (auto it = url.options.find("unix_socket"); it != url.options.end()) {
    opts["hostName"] = sql::SQLString("unix://" + it->second);
  } else {
    std::string host = url.host.empty() ? "127.0.0.1" : url.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6 literal
    opts["hostName"] =
        sql::SQLString("tcp://" + host + ":" + std::to_string(url.port.value_or(3306)));
  }
  opts["userName"] = sql::SQLString(url.user);
  opts["password"] = sql::SQLString(url.password);
  if (!url.database.empty()) opts["schema"] = sql::SQLString(url.database);

  int timeout = 5;
  if (auto it = url.options.find("connect_timeout"); it != url.options.end()) {
    const std::string& v = it->second;
    auto res = std::from_chars(v.data(), v.data() + v.size(), timeout);
    if (res.ec != std::errc() || timeout <= 0) {
      err.message = "invalid connect_timeout option (seconds expected)";
      return nullptr;
    }
  }
  if (side_timeout > 0) {
    timeout = std::min(timeout, side_timeout);
    opts["OPT_READ_TIMEOUT"] = side_timeout;
    opts["OPT_WRITE_TIMEOUT"] = side_timeout;
  }
  opts["OPT_CONNECT_TIMEOUT"] = timeout;
  std::string charset = "utf8mb4";
  if (auto it = url.options.find("charset"); it != url.options.end()) charset = it->second;
  opts["OPT_CHARSET_NAME"] = sql::SQLString(charset);
  // A silent reconnect would drop the session (transaction, variables) behind our back.
  opts["OPT_RECONNECT"] = false;
  // LOAD DATA LOCAL INFILE would let any client read files the daemon can read (its environment
  // with every backend password included, via /proc/self/environ).
  opts["OPT_LOCAL_INFILE"] = 0;

  std::unique_ptr<sql::Connection> conn(driver()->connect(opts));
  if (!conn) err.message = "MySQL connect failed";
  return conn;
}

std::uint64_t connection_id(sql::Connection& conn) {
  std::unique_ptr<sql::Statement> st(conn.createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT CONNECTION_ID()"));
  return rs->next() ? rs->getUInt64(1) : 0;
}

constexpr int kQueryInterrupted = 1317;  // ER_QUERY_INTERRUPTED

// Seconds a cancel may spend on its side connection (connect, then the KILL round trip).
constexpr int kSideTimeout = 2;

// KILL QUERY from a side connection. The server applies it before answering, and kill() waits
// for that answer, so with CancelGate a KILL is done before the next statement is sent. A KILL
// that lands after its statement finished finds the session idle, and MariaDB clears a pending
// KILL QUERY when the next command starts (the driver tests check both).
class MysqlCanceller final : public Canceller {
 public:
  MysqlCanceller(DatabaseUrl url, std::uint64_t id) : url_(std::move(url)), id_(id) {}

  void cancel() override {
    gate.fire([this] { return kill(); });
  }

  // Worker thread, between statements (after a reconnect): the gate orders it before any kill().
  void set_id(std::uint64_t id) { id_ = id; }

  detail::CancelGate gate;

 private:
  bool kill() {
    ensure_thread();
    BackendError err;
    std::unique_ptr<sql::Connection> side = open_session(url_, kSideTimeout, err);
    if (!side) return false;
    std::unique_ptr<sql::Statement> st(side->createStatement());
    st->execute(sql::SQLString("KILL QUERY " + std::to_string(id_)));
    return true;
  }

  const DatabaseUrl url_;
  std::uint64_t id_;
};

class MysqlConnection final : public Connection {
 public:
  MysqlConnection(std::unique_ptr<sql::Connection> conn, const DatabaseUrl& url, std::uint64_t id)
      : conn_(std::move(conn)), url_(url), canceller_(std::make_shared<MysqlCanceller>(url, id)) {}
  ~MysqlConnection() override {
    ensure_thread();
    try {
      conn_.reset();
    } catch (...) {
      // Closing a dead connection may throw; there is nothing left to clean up.
    }
  }

  Backend backend() const override { return Backend::mysql; }

  std::optional<BackendError> execute(std::string_view sql, const std::vector<Value>& params,
                                      RowSink& sink, ExecResult& out) override {
    ensure_thread();
    out = ExecResult{};
    if (broken_) return broken_error();
    if (diagnostics_dirty_) clear_diagnostics();
    std::optional<BackendError> err;
    streamed_ = false;
    canceller_->gate.begin();
    try {
      if (params.empty()) {
        run_plain(sql, sink, out);
      } else {
        run_prepared(sql, params, sink, out);
      }
    } catch (const sql::SQLException& e) {
      err = from_exception(e);
    } catch (const std::exception& e) {
      err = BackendError{protocol::ErrorCode::internal, e.what(), "", std::nullopt, true};
    }
    // Before the probe: a KILL must not be able to reach it.
    const bool cancel_delivered = canceller_->gate.end();
    if (err && err->connection_broken) {
      broken_ = true;
      tx_ = TxStatus::unknown;
      return err;
    }
    // The probe runs after failures too: an error inside a transaction leaves it open.
    std::int64_t error_count = 0;
    std::optional<BackendError> probe_err = probe(err ? nullptr : &out, error_count);
    if (!probe_err && error_count > 0) {
      if (!err && streamed_) err = swallowed_error();
      clear_diagnostics();
    }
    if (err && cancel_delivered && err->number == kQueryInterrupted) err->interrupted = true;
    if (err) return err;
    return probe_err;
  }

  TxStatus tx_status() override { return tx_; }

  std::optional<BackendError> rollback() override {
    ensure_thread();
    if (broken_) return broken_error();
    try {
      std::unique_ptr<sql::Statement> st(conn_->createStatement());
      st->execute("ROLLBACK");
      tx_ = TxStatus::idle;
      return std::nullopt;
    } catch (const sql::SQLException& e) {
      BackendError err = from_exception(e);
      if (err.connection_broken) {
        broken_ = true;
        tx_ = TxStatus::unknown;
      }
      diagnostics_dirty_ = true;
      return err;
    } catch (const std::exception& e) {
      broken_ = true;
      return BackendError{protocol::ErrorCode::internal, e.what(), "", std::nullopt, true};
    }
  }

  std::shared_ptr<Canceller> canceller() override { return canceller_; }

  // Connector/C++ 1.1 has no way to send COM_RESET_CONNECTION or COM_CHANGE_USER: the MYSQL*
  // sits in a private member of an uninstalled class, and its reconnect() is only a ping. No
  // statement sequence clears user variables, prepared statements and temporary tables without
  // knowing their names, so the session is replaced by a new one. Closing first keeps the
  // connection count from exceeding the pool size.
  std::optional<BackendError> reset() override {
    ensure_thread();
    if (broken_) return broken_error();
    if (tx_ != TxStatus::idle) {
      return BackendError{protocol::ErrorCode::internal, "reset() needs an idle connection", "",
                          std::nullopt, false};
    }
    try {
      conn_.reset();
    } catch (...) {
      // The old session is abandoned either way.
    }
    broken_ = true;  // until the new session is up
    tx_ = TxStatus::unknown;
    BackendError err;
    err.code = protocol::ErrorCode::backend_unavailable;
    err.connection_broken = true;
    try {
      conn_ = open_session(url_, 0, err);
      if (!conn_) return err;
      canceller_->set_id(connection_id(*conn_));
    } catch (const sql::SQLException& e) {
      err = from_exception(e);
      err.code = protocol::ErrorCode::backend_unavailable;
      err.connection_broken = true;
      return err;
    } catch (const std::exception& e) {
      err.message = e.what();
      return err;
    }
    broken_ = false;
    tx_ = TxStatus::idle;
    return std::nullopt;
  }

  bool alive() override {
    ensure_thread();
    if (broken_) return false;
    try {
      // isValid() pings the server; with OPT_RECONNECT off a dead link stays dead.
      if (!conn_->isValid()) broken_ = true;
    } catch (...) {
      broken_ = true;
    }
    return !broken_;
  }

 private:
  static BackendError broken_error() {
    return BackendError{protocol::ErrorCode::backend_unavailable,
                        "connection to MySQL server was lost", "", std::nullopt, true};
  }

  // Streams one result set. Destroying the result set afterwards (also after an early stop)
  // reads any rows still on the wire, which keeps the protocol in sync.
  static void stream(sql::ResultSet& rs, bool prepared, RowSink& sink, ExecResult& out) {
    sql::ResultSetMetaData* m = rs.getMetaData();  // owned by rs
    const unsigned n = m->getColumnCount();
    std::vector<ColumnInfo> info;
    std::vector<protocol::Column> cols;
    for (unsigned i = 1; i <= n; ++i) {
      info.push_back(describe(m, i));
      cols.push_back(info.back().column);
    }
    if (!sink.columns(std::move(cols))) {
      out.affected = 0;
      return;
    }
    protocol::Row row;
    while (rs.next()) {
      row.clear();
      row.reserve(n);
      for (unsigned i = 1; i <= n; ++i) row.push_back(convert(rs, i, info[i - 1], prepared));
      ++out.row_count;
      if (!sink.row(row)) break;
    }
    out.affected = out.row_count;
  }

  void run_plain(std::string_view sql, RowSink& sink, ExecResult& out) {
    std::unique_ptr<sql::Statement> st(conn_->createStatement());
    st->setResultSetType(sql::ResultSet::TYPE_FORWARD_ONLY);
    if (st->execute(sql::SQLString(std::string(sql)))) {
      {
        std::unique_ptr<sql::ResultSet> rs(st->getResultSet());
        if (rs) {
          streamed_ = true;
          stream(*rs, false, sink, out);
        }
      }
      // CALL returns further results (at least a final status); unread, they would desync the
      // connection.
      while (st->getMoreResults()) {
        std::unique_ptr<sql::ResultSet> rest(st->getResultSet());
      }
    } else {
      out.affected = static_cast<std::int64_t>(st->getUpdateCount());
    }
  }

  void run_prepared(std::string_view sql, const std::vector<Value>& params, RowSink& sink,
                    ExecResult& out) {
    std::unique_ptr<sql::PreparedStatement> ps(
        conn_->prepareStatement(sql::SQLString(std::string(sql))));
    // setBlob keeps a pointer to the stream until execution.
    std::vector<std::unique_ptr<std::istringstream>> blobs;
    for (std::size_t k = 0; k < params.size(); ++k) {
      const unsigned idx = static_cast<unsigned>(k + 1);
      const Value& v = params[k];
      if (std::holds_alternative<protocol::Null>(v)) {
        ps->setNull(idx, sql::DataType::SQLNULL);
      } else if (const bool* b = std::get_if<bool>(&v)) {
        ps->setBoolean(idx, *b);
      } else if (const std::int64_t* iv = std::get_if<std::int64_t>(&v)) {
        ps->setInt64(idx, *iv);
      } else if (const double* d = std::get_if<double>(&v)) {
        ps->setDouble(idx, *d);
      } else if (const std::string* s = std::get_if<std::string>(&v)) {
        ps->setString(idx, sql::SQLString(*s));
      } else if (const protocol::Bytes* by = std::get_if<protocol::Bytes>(&v)) {
        blobs.push_back(std::make_unique<std::istringstream>(by->data));
        ps->setBlob(idx, blobs.back().get());
      } else if (const protocol::Tagged* t = std::get_if<protocol::Tagged>(&v)) {
        ps->setString(idx, sql::SQLString(t->text));
      }
    }
    sql::ResultSetMetaData* meta = ps->getMetaData();  // known after prepare; owned by ps
    if (meta && meta->getColumnCount() > 0) {
      std::unique_ptr<sql::ResultSet> rs(ps->executeQuery());
      stream(*rs, true, sink, out);
    } else {
      // Connector/C++ 1.1 has no getUpdateCount() for prepared statements.
      out.affected = ps->executeUpdate();
    }
  }

  // One round trip for what the reply to the statement does not expose through this API:
  // the transaction status and the generated id. LAST_INSERT_ID(0) resets the id so a later
  // statement that generates none is not credited with this one's.
  // Connector/C++ 1.1 reads a streamed (mysql_use_result) result with mysql_fetch_row and takes
  // its NULL for the end of the rows without checking for an error: a statement that fails
  // mid-stream (KILL QUERY, a runtime error) looks like a complete, shorter result. The server
  // still holds the error in its diagnostics area, which the table-less probe leaves alone, so
  // the probe reads @@error_count and this fetches the error itself.
  BackendError swallowed_error() {
    BackendError e;
    e.message = "statement failed while its rows were read";
    try {
      std::unique_ptr<sql::Statement> st(conn_->createStatement());
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SHOW ERRORS"));
      if (rs->next()) {  // Level, Code, Message
        e.number = static_cast<std::int64_t>(rs->getUInt(2));
        e.message = rs->getString(3);
      }
    } catch (const sql::SQLException&) {
      // The generic message stands; the error count alone says the result is incomplete.
    }
    if (e.number == kQueryInterrupted) e.sqlstate = "70100";
    return e;
  }

  // A statement without tables leaves the diagnostics area alone, so an error from an earlier
  // statement would still count for a table-less streamed one (SELECT SLEEP(1)). Only statements
  // that use a table clear it; a derived table is enough. Costs a round trip after failures only
  // (and means SHOW ERRORS after a failed statement comes back empty).
  void clear_diagnostics() {
    try {
      std::unique_ptr<sql::Statement> st(conn_->createStatement());
      st->execute("DO (SELECT 1 FROM (SELECT 1) AS binds_clear)");
      diagnostics_dirty_ = false;
    } catch (const sql::SQLException&) {
      diagnostics_dirty_ = true;  // retried before the next statement
    }
  }

  std::optional<BackendError> probe(ExecResult* out, std::int64_t& error_count) {
    // MariaDB clears a KILL QUERY that found the session idle when the next command starts, so
    // the probe should never be interrupted; if a server did not, the KILL is spent on the first
    // attempt and the second one runs.
    for (int attempt = 0;; ++attempt) {
      try {
        return probe_once(out, error_count);
      } catch (const sql::SQLException& e) {
        if (attempt == 0 && e.getErrorCode() == kQueryInterrupted) continue;
        BackendError err = from_exception(e);
        tx_ = TxStatus::unknown;
        // Without a trustworthy transaction status the connection must not be shared.
        err.connection_broken = true;
        err.code = protocol::ErrorCode::backend_unavailable;
        broken_ = true;
        return err;
      }
    }
  }

  std::optional<BackendError> probe_once(ExecResult* out, std::int64_t& error_count) {
    std::unique_ptr<sql::Statement> st(conn_->createStatement());
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
        "SELECT @@in_transaction, LAST_INSERT_ID(), LAST_INSERT_ID(0), @@error_count"));
    if (rs->next()) {
      tx_ = rs->getInt(1) != 0 ? TxStatus::in_tx : TxStatus::idle;
      const std::uint64_t id = rs->getUInt64(2);
      if (out && id != 0) out->last_insert_id = static_cast<std::int64_t>(id);
      error_count = rs->getInt64(4);
    }
    return std::nullopt;
  }

  std::unique_ptr<sql::Connection> conn_;
  const DatabaseUrl url_;
  TxStatus tx_ = TxStatus::idle;
  bool broken_ = false;
  bool streamed_ = false;  // the statement's rows were read with mysql_use_result
  bool diagnostics_dirty_ = false;  // the server may still hold an earlier statement's error
  std::shared_ptr<MysqlCanceller> canceller_;
};

}  // namespace

namespace detail {

std::unique_ptr<Connection> connect_mysql(const DatabaseUrl& url, BackendError& err) {
  ensure_thread();
  err = BackendError{};
  err.code = protocol::ErrorCode::backend_unavailable;
  try {
    std::unique_ptr<sql::Connection> conn = open_session(url, 0, err);
    if (!conn) return nullptr;
    const std::uint64_t id = connection_id(*conn);
    return std::make_unique<MysqlConnection>(std::move(conn), url, id);
  } catch (const sql::SQLException& e) {
    // libmariadb's connect errors name user and host, never the password.
    err.message = e.what();
    err.sqlstate = e.getSQLState();
    if (e.getErrorCode() != 0) err.number = e.getErrorCode();
  } catch (const std::exception& e) {
    err.message = e.what();
  }
  if (err.message.empty()) err.message = "MySQL connect failed";
  return nullptr;
}

}  // namespace detail
}  // namespace binds
