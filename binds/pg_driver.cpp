// PostgreSQL through libpq. Results are requested in text format and streamed with single-row
// mode, so a result of any size passes through with one row in memory at a time.

#include <libpq-fe.h>
#include <poll.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "binds/driver.hpp"

namespace binds {
namespace {

using protocol::Type;
using protocol::Value;

// Type OIDs from pg_type.h; stable across PostgreSQL versions.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kFloat8Oid = 701;

struct OidInfo {
  Oid oid;
  const char* name;
  Type type;
};

// Enough for display names of the common types without a catalog round trip per result.
constexpr OidInfo kOids[] = {
    {16, "bool", Type::boolean},        {17, "bytea", Type::bytes},
    {18, "char", Type::text},           {19, "name", Type::text},
    {20, "int8", Type::int64},          {21, "int2", Type::int64},
    {23, "int4", Type::int64},          {25, "text", Type::text},
    {26, "oid", Type::int64},           {114, "json", Type::json},
    {142, "xml", Type::text},           {700, "float4", Type::float64},
    {701, "float8", Type::float64},     {790, "money", Type::text},
    {869, "inet", Type::text},          {650, "cidr", Type::text},
    {829, "macaddr", Type::text},       {1042, "bpchar", Type::text},
    {1043, "varchar", Type::text},      {1082, "date", Type::date},
    {1083, "time", Type::time},         {1114, "timestamp", Type::timestamp},
    {1184, "timestamptz", Type::timestamp}, {1186, "interval", Type::text},
    {1266, "timetz", Type::time},       {1560, "bit", Type::text},
    {1562, "varbit", Type::text},       {1700, "numeric", Type::decimal},
    {2249, "record", Type::text},       {2950, "uuid", Type::uuid},
    {3802, "jsonb", Type::json},        {705, "unknown", Type::text},
    {1007, "_int4", Type::text},        {1009, "_text", Type::text},
    {1016, "_int8", Type::text},        {2278, "void", Type::text},
};

protocol::Column column_of(const PGresult* r, int i) {
  protocol::Column c;
  const char* name = PQfname(r, i);
  c.name = name ? name : "";
  Oid oid = PQftype(r, i);
  c.type = Type::text;
  c.db_type = "oid:" + std::to_string(oid);
  for (const auto& info : kOids) {
    if (info.oid == oid) {
      c.type = info.type;
      c.db_type = info.name;
      break;
    }
  }
  return c;
}

std::string format_double(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  // Shortest text that reads back as the same double: no precision lost, no noise digits.
  auto res = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, res.ptr);
}

Value parse_double(std::string_view s) {
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s == "Infinity") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  double d = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), d);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size()) return std::string(s);
  return d;
}

Value convert(const PGresult* r, int row, int col, Type type) {
  if (PQgetisnull(r, row, col)) return protocol::Null{};
  const char* p = PQgetvalue(r, row, col);
  std::string_view s(p, static_cast<std::size_t>(PQgetlength(r, row, col)));
  switch (type) {
    case Type::boolean:
      return s == "t";
    case Type::int64: {
      std::int64_t v = 0;
      auto res = std::from_chars(s.data(), s.data() + s.size(), v);
      if (res.ec == std::errc() && res.ptr == s.data() + s.size()) return v;
      return std::string(s);
    }
    case Type::float64:
      return parse_double(s);
    case Type::bytes: {
      std::size_t n = 0;
      unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(p), &n);
      if (!raw) throw std::bad_alloc();
      protocol::Bytes b{std::string(reinterpret_cast<const char*>(raw), n)};
      PQfreemem(raw);
      return b;
    }
    case Type::decimal:
    case Type::date:
    case Type::time:
    case Type::timestamp:
    case Type::json:
    case Type::uuid:
      return protocol::Tagged{type, std::string(s)};
    default:
      return std::string(s);
  }
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void ignore_notice(void*, const char*) {}

// The PGcancel copies what a cancel request needs (address, backend pid and key) and is independent
// of the PGconn, so it can live on with the canceller after the connection is gone; the gate keeps
// it from being used then.
//
// PQcancel blocks until the postmaster closes the cancel connection, i.e. until it has signalled
// the backend; that wait is what lets CancelGate guarantee a cancel never outlives its statement.
// libpq 15 offers no timeout for it (PQcancelCreate with connect_timeout arrives in libpq 17), and
// no socket option would help against a SIGSTOPped server: its kernel still accepts the connection
// and acknowledges the packet. Such a cancel returns when the server resumes.
class PgCanceller final : public Canceller {
 public:
  explicit PgCanceller(PGcancel* c) : cancel_(c) {}
  ~PgCanceller() override { PQfreeCancel(cancel_); }

  void cancel() override {
    gate.fire([this] { return send(); });
  }

  // For the worker thread's own use while its statement runs (a sink that stops early).
  bool send() {
    if (!cancel_) return false;  // libpq could not allocate one: cancel is best effort
    char errbuf[256];
    return PQcancel(cancel_, errbuf, sizeof errbuf) == 1;
  }

  detail::CancelGate gate;

 private:
  PGcancel* const cancel_;
};

constexpr const char* kQueryCanceled = "57014";

class PgConnection final : public Connection {
 public:
  explicit PgConnection(PGconn* conn)
      : conn_(conn), canceller_(std::make_shared<PgCanceller>(PQgetCancel(conn))) {
    // Notices (e.g. "there is no transaction in progress") would go to stderr otherwise.
    PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
  }
  ~PgConnection() override { PQfinish(conn_); }

  Backend backend() const override { return Backend::postgresql; }

  std::optional<BackendError> execute(std::string_view sql, const std::vector<Value>& params,
                                      RowSink& sink, ExecResult& out) override {
    // An exception leaves whatever was in flight half way: the connection state is unknown.
    return detail::run_gated(
        canceller_->gate, /*broken_on_exception=*/true, [&] { return execute_impl(sql, params, sink, out); },
        [](const BackendError& e) { return e.sqlstate == kQueryCanceled; });
  }

  TxStatus tx_status() override {
    switch (PQtransactionStatus(conn_)) {
      case PQTRANS_IDLE:
        return TxStatus::idle;
      case PQTRANS_INTRANS:
        return TxStatus::in_tx;
      case PQTRANS_INERROR:
        return TxStatus::failed_tx;
      default:
        return TxStatus::unknown;
    }
  }

  std::optional<BackendError> rollback() override {
    PGTransactionStatusType st = PQtransactionStatus(conn_);
    if (st == PQTRANS_IDLE) return std::nullopt;
    if (st != PQTRANS_INTRANS && st != PQTRANS_INERROR) {
      return BackendError{protocol::ErrorCode::backend_unavailable,
                          "connection is not in a state that allows ROLLBACK", "", std::nullopt,
                          true};
    }
    PGresult* r = PQexec(conn_, "ROLLBACK");
    std::optional<BackendError> err;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) err = error_from(r);
    PQclear(r);
    return err;
  }

  std::shared_ptr<Canceller> canceller() override { return canceller_; }

  // DISCARD ALL covers session parameters (back to the connection's start-up values, so
  // application_name and client_encoding stay), temporary tables, prepared statements, cursors,
  // LISTEN registrations, advisory locks and cached plans. It refuses to run in a transaction.
  std::optional<BackendError> reset() override {
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      return BackendError{protocol::ErrorCode::internal, "reset() needs an idle connection", "",
                          std::nullopt, false};
    }
    PGresult* r = PQexec(conn_, "DISCARD ALL");
    std::optional<BackendError> err;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) err = error_from(r);
    PQclear(r);
    return err;
  }

  bool alive() override {
    if (PQstatus(conn_) != CONNECTION_OK) return false;
    int fd = PQsocket(conn_);
    if (fd < 0) return false;
    // An idle connection has nothing to read unless the server closed it (EOF) or sent a FATAL
    // before closing (admin shutdown, idle timeout). Consuming that input updates PQstatus; the
    // FATAL and the EOF may need separate reads, hence the loop.
    for (int i = 0; i < 8 && PQstatus(conn_) == CONNECTION_OK; ++i) {
      pollfd pfd{fd, POLLIN, 0};
      int n = ::poll(&pfd, 1, 0);
      if (n < 0) return false;
      if (n == 0) break;
      if (pfd.revents & (POLLERR | POLLNVAL)) return false;
      if (!PQconsumeInput(conn_)) return false;
    }
    return PQstatus(conn_) == CONNECTION_OK;
  }

 private:
  BackendError error_from(const PGresult* r) const {
    BackendError e;
    e.code = protocol::ErrorCode::sql_error;
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    if (state) e.sqlstate = state;
    if (primary) {
      e.message = primary;
    } else {
      // Client-side failures (lost connection) carry no fields, only the connection's message.
      const char* m = r ? PQresultErrorMessage(r) : "";
      e.message = trim(m && *m ? m : PQerrorMessage(conn_));
    }
    if (e.message.empty()) e.message = "unknown PostgreSQL error";
    if (PQstatus(conn_) == CONNECTION_BAD) {
      e.code = protocol::ErrorCode::backend_unavailable;
      e.connection_broken = true;
    }
    return e;
  }

  BackendError connection_error() const {
    BackendError e;
    e.message = trim(PQerrorMessage(conn_));
    if (e.message.empty()) e.message = "PostgreSQL connection error";
    if (PQstatus(conn_) == CONNECTION_BAD) {
      e.code = protocol::ErrorCode::backend_unavailable;
      e.connection_broken = true;
    }
    return e;
  }

  std::optional<BackendError> execute_impl(std::string_view sql, const std::vector<Value>& params,
                                           RowSink& sink, ExecResult& out) {
    out = ExecResult{};
    const std::size_t n = params.size();
    std::vector<std::string> storage(n);  // sized once: values[] points into it
    std::vector<const char*> values(n, nullptr);
    std::vector<int> lengths(n, 0);
    std::vector<int> formats(n, 0);
    std::vector<Oid> types(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const Value& v = params[i];
      if (std::holds_alternative<protocol::Null>(v)) continue;
      if (const bool* b = std::get_if<bool>(&v)) {
        storage[i] = *b ? "t" : "f";
        types[i] = kBoolOid;
      } else if (const std::int64_t* iv = std::get_if<std::int64_t>(&v)) {
        storage[i] = std::to_string(*iv);
        types[i] = kInt8Oid;
      } else if (const double* d = std::get_if<double>(&v)) {
        storage[i] = format_double(*d);
        types[i] = kFloat8Oid;
      } else if (const std::string* s = std::get_if<std::string>(&v)) {
        storage[i] = *s;  // OID 0: the server infers the type from the context, like a literal
      } else if (const protocol::Bytes* by = std::get_if<protocol::Bytes>(&v)) {
        storage[i] = by->data;
        types[i] = kByteaOid;
        formats[i] = 1;  // binary: no escaping, embedded NULs survive
      } else if (const protocol::Tagged* t = std::get_if<protocol::Tagged>(&v)) {
        storage[i] = t->text;
      }
      values[i] = storage[i].data();
      lengths[i] = static_cast<int>(storage[i].size());
    }

    const std::string query(sql);  // libpq wants a NUL-terminated string
    if (!PQsendQueryParams(conn_, query.c_str(), static_cast<int>(n), types.data(), values.data(),
                           lengths.data(), formats.data(), 0)) {
      return connection_error();
    }
    // Failure here only means the whole result arrives at once; still correct.
    PQsetSingleRowMode(conn_);

    std::optional<BackendError> err;
    bool columns_sent = false;
    std::vector<Type> col_types;

    auto send_columns = [&](const PGresult* r) {
      columns_sent = true;
      const int nf = PQnfields(r);
      std::vector<protocol::Column> cols;
      cols.reserve(static_cast<std::size_t>(nf));
      col_types.clear();
      for (int c = 0; c < nf; ++c) {
        cols.push_back(column_of(r, c));
        col_types.push_back(cols.back().type);
      }
      if (!sink.columns(std::move(cols))) stop();
    };
    auto send_rows = [&](const PGresult* r) {
      const int nt = PQntuples(r);
      const int nf = PQnfields(r);
      protocol::Row row;
      for (int t = 0; t < nt && !stopped_; ++t) {
        row.clear();
        row.reserve(static_cast<std::size_t>(nf));
        for (int c = 0; c < nf; ++c) row.push_back(convert(r, t, c, col_types[c]));
        ++out.row_count;
        if (!sink.row(row)) stop();
      }
    };

    // Once the sink asked to stop, everything still coming is read and discarded.
    stopped_ = false;
    while (PGresult* r = PQgetResult(conn_)) {
      switch (PQresultStatus(r)) {
        case PGRES_SINGLE_TUPLE:
          if (!stopped_) {
            if (!columns_sent) send_columns(r);
            if (!stopped_) send_rows(r);
          }
          break;
        case PGRES_TUPLES_OK:
          // Ends a single-row-mode result (zero rows) or holds the whole result otherwise.
          if (!stopped_) {
            if (!columns_sent) send_columns(r);
            if (!stopped_) send_rows(r);
            out.affected = cmd_tuples(r, out.row_count);
          }
          break;
        case PGRES_COMMAND_OK:
          out.affected = cmd_tuples(r, 0);
          break;
        case PGRES_EMPTY_QUERY:
          break;
        case PGRES_COPY_OUT: {
          // COPY streams outside the row protocol; read it to the end to stay in sync.
          char* buf = nullptr;
          while (PQgetCopyData(conn_, &buf, 0) > 0) PQfreemem(buf);
          if (!err) err = BackendError{protocol::ErrorCode::sql_error,
                                       "COPY is not supported through binds", "", std::nullopt,
                                       false};
          break;
        }
        case PGRES_COPY_IN:
          PQputCopyEnd(conn_, "COPY is not supported through binds");
          break;
        default:
          // After our own cancel the server reports 57014; that is not the client's error.
          if (!err && !stopped_) err = error_from(r);
          break;
      }
      PQclear(r);
      if (PQstatus(conn_) == CONNECTION_BAD) break;
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
      BackendError e = connection_error();
      if (err) e.message = err->message;
      return e;
    }
    if (stopped_) out.affected = out.row_count;
    if (err) return err;
    return std::nullopt;
  }

  // Cancelling makes the server stop producing rows; the remaining results are still read (and
  // discarded) by the caller's loop so the connection ends up idle and reusable.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    canceller_->send();  // best effort: draining works without it, only slower
  }

  static std::int64_t cmd_tuples(PGresult* r, std::int64_t fallback) {
    const char* s = PQcmdTuples(r);
    if (!s || !*s) return fallback;
    std::int64_t v = 0;
    auto res = std::from_chars(s, s + std::strlen(s), v);
    return res.ec == std::errc() ? v : fallback;
  }

  PGconn* conn_;
  bool stopped_ = false;
  std::shared_ptr<PgCanceller> canceller_;
};

}  // namespace

namespace detail {

std::unique_ptr<Connection> connect_postgresql(const DatabaseUrl& url, BackendError& err) {
  std::vector<std::pair<std::string, std::string>> kv;
  auto set = [&](const std::string& k, const std::string& v) {
    for (auto& p : kv) {
      if (p.first == k) {
        p.second = v;
        return;
      }
    }
    kv.emplace_back(k, v);
  };
  if (!url.host.empty()) set("host", url.host);
  if (url.port) set("port", std::to_string(*url.port));
  if (!url.user.empty()) set("user", url.user);
  if (!url.password.empty()) set("password", url.password);
  if (!url.database.empty()) set("dbname", url.database);
  set("connect_timeout", "5");
  set("application_name", "bindsd");
  set("client_encoding", "UTF8");  // protocol text is UTF-8 whatever the server's encoding
  // URL query options are libpq keywords (sslmode, connect_timeout, ...) and override defaults.
  for (const auto& [k, v] : url.options) set(k, v);

  std::vector<const char*> keys, vals;
  for (const auto& [k, v] : kv) {
    keys.push_back(k.c_str());
    vals.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  vals.push_back(nullptr);

  PGconn* conn = PQconnectdbParams(keys.data(), vals.data(), 0);
  if (!conn) {
    err = BackendError{protocol::ErrorCode::backend_unavailable, "out of memory", "", std::nullopt,
                       false};
    return nullptr;
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's connect errors name host, port and user but never the password.
    err = BackendError{protocol::ErrorCode::backend_unavailable, trim(PQerrorMessage(conn)), "",
                       std::nullopt, false};
    PQfinish(conn);
    return nullptr;
  }
  return std::make_unique<PgConnection>(conn);
}

}  // namespace detail
}  // namespace binds
