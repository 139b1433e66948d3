// SQLite through the C API. SQLite is dynamically typed: a column's protocol type comes from its
// declared type, while each value is converted from the storage class it actually has.

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "binds/backend/driver.hpp"

namespace binds {
namespace {

using protocol::Type;
using protocol::Value;

BackendError sqlite_error(sqlite3* db, protocol::ErrorCode code = protocol::ErrorCode::sql_error) {
  BackendError e;
  e.code = code;
  e.message = db ? sqlite3_errmsg(db) : "cannot allocate SQLite connection";
  if (db) e.number = sqlite3_extended_errcode(db);
  return e;
}

std::string upper(const char* s) {
  std::string u = s ? s : "";
  for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

// Declared type → protocol type, in the spirit of SQLite's own affinity rules (substring
// matches, first rule wins). false = the name says nothing we recognise.
bool type_from_decl(const std::string& d, Type& t) {
  auto has = [&](const char* s) { return d.find(s) != std::string::npos; };
  if (d.empty()) return false;
  if (has("BOOL")) t = Type::boolean;
  else if (has("INT")) t = Type::int64;
  else if (has("UUID")) t = Type::uuid;
  else if (has("JSON")) t = Type::json;
  else if (has("TIMESTAMP") || has("DATETIME")) t = Type::timestamp;
  else if (has("DATE")) t = Type::date;
  else if (has("TIME")) t = Type::time;
  else if (has("CHAR") || has("CLOB") || has("TEXT")) t = Type::text;
  else if (has("BLOB")) t = Type::bytes;
  else if (has("REAL") || has("FLOA") || has("DOUB")) t = Type::float64;
  else if (has("NUMERIC") || has("DECIMAL")) t = Type::decimal;
  else return false;
  return true;
}

Type type_from_storage(int storage) {
  switch (storage) {
    case SQLITE_INTEGER:
      return Type::int64;
    case SQLITE_FLOAT:
      return Type::float64;
    case SQLITE_BLOB:
      return Type::bytes;
    default:
      return Type::text;
  }
}

std::string format_double(double d) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, res.ptr);
}

Value convert(sqlite3_stmt* st, int col, Type type) {
  switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL:
      return protocol::Null{};
    case SQLITE_INTEGER: {
      std::int64_t v = sqlite3_column_int64(st, col);
      if (type == Type::boolean) return v != 0;
      if (type == Type::float64) return static_cast<double>(v);
      if (type == Type::decimal) return protocol::Tagged{Type::decimal, std::to_string(v)};
      return v;
    }
    case SQLITE_FLOAT: {
      double d = sqlite3_column_double(st, col);
      if (type == Type::decimal) return protocol::Tagged{Type::decimal, format_double(d)};
      return d;
    }
    case SQLITE_BLOB: {
      const void* p = sqlite3_column_blob(st, col);
      int n = sqlite3_column_bytes(st, col);
      return protocol::Bytes{std::string(static_cast<const char*>(p), static_cast<std::size_t>(n))};
    }
    default: {
      const unsigned char* p = sqlite3_column_text(st, col);
      int n = sqlite3_column_bytes(st, col);
      std::string s(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
      if (protocol::is_text_encoded(type)) return protocol::Tagged{type, std::move(s)};
      return s;
    }
  }
}

// Is the statement an INSERT/REPLACE? Only those report a rowid: an UPDATE leaves the previous
// statement's rowid in sqlite3_last_insert_rowid, which must not be reported again.
bool is_insert(std::string_view sql) {
  std::size_t i = 0;
  for (;;) {
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    if (sql.substr(i, 2) == "--") {
      i = sql.find('\n', i);
      if (i == std::string_view::npos) return false;
    } else if (sql.substr(i, 2) == "/*") {
      i = sql.find("*/", i + 2);
      if (i == std::string_view::npos) return false;
      i += 2;
    } else {
      break;
    }
  }
  std::string word;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]))) {
    word += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  }
  return word == "INSERT" || word == "REPLACE";
}

struct StmtGuard {
  sqlite3_stmt* st = nullptr;
  ~StmtGuard() { sqlite3_finalize(st); }
};

// sqlite3_interrupt is safe from any thread as long as the handle stays open; the gate only lets
// it through while a statement runs, and the connection cannot close during one.
class SqliteCanceller final : public Canceller {
 public:
  explicit SqliteCanceller(sqlite3* db) : db_(db) {}
  void cancel() override {
    gate.fire([this] {
      sqlite3_interrupt(db_);
      return true;
    });
  }
  detail::CancelGate gate;

 private:
  sqlite3* const db_;
};

bool is_interrupt(int code) { return (code & 0xff) == SQLITE_INTERRUPT; }

// Double quotes make any name a valid identifier; embedded quotes are doubled.
std::string quote_ident(const std::string& name) {
  std::string q = "\"";
  for (char c : name) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

// Clients must not reach files outside their database: ATTACH (and VACUUM INTO, which attaches
// its target) may name only a temporary database, or a file inside the bind's attach_dir.
struct AttachPolicy {
  std::string allowed_dir;  // canonical; empty = no file may be attached
  std::string denied;       // the last file refused, for the error message
};

bool inside_dir(const std::string& dir, const std::string& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target = fs::weakly_canonical(fs::absolute(file, ec), ec);
  if (ec) return false;
  const fs::path rel = target.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != ".." && rel.is_relative();
}

int authorize(void* ctx, int action, const char* a1, const char*, const char*, const char*) {
  if (action != SQLITE_ATTACH) return SQLITE_OK;
  auto* policy = static_cast<AttachPolicy*>(ctx);
  const std::string file = a1 ? a1 : "";
  // "" is a private temporary database (plain VACUUM uses one); ":memory:" touches no file.
  if (file.empty() || file == ":memory:") return SQLITE_OK;
  // URI filenames can carry options (vfs, mode) and other paths: never from a client.
  if (file.rfind("file:", 0) != 0 && !policy->allowed_dir.empty() && inside_dir(policy->allowed_dir, file))
    return SQLITE_OK;
  policy->denied = file;
  return SQLITE_DENY;
}

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(sqlite3* db, int busy_ms, std::string attach_dir)
      : db_(db), busy_ms_(busy_ms), canceller_(std::make_shared<SqliteCanceller>(db)) {
    attach_.allowed_dir = std::move(attach_dir);
    sqlite3_set_authorizer(db_, authorize, &attach_);
    // Defensive mode refuses what could corrupt the file from SQL (writable_schema, raw page
    // writes); no client has a use for those through a broker.
    sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  }
  ~SqliteConnection() override {
    clear_statement_cache();  // close_v2 would otherwise keep the database open for them
    sqlite3_close_v2(db_);
  }

  Backend backend() const override { return Backend::sqlite; }

  std::optional<BackendError> execute(std::string_view sql, const std::vector<Value>& params,
                                      RowSink& sink, ExecResult& out) override {
    attach_.denied.clear();
    auto err = detail::run_gated(
        canceller_->gate, /*broken_on_exception=*/false, [&] { return execute_impl(sql, params, sink, out); },
        [](const BackendError& e) { return e.number && is_interrupt(static_cast<int>(*e.number)); });
    if (err && err->number && (*err->number & 0xff) == SQLITE_AUTH && !attach_.denied.empty()) {
      err->message = "not authorized: ATTACH and VACUUM INTO may not open \"" + attach_.denied + "\"" +
                     (attach_.allowed_dir.empty() ? std::string(" (this bind allows no attached files; see attach_dir)")
                                                  : " (only files inside " + attach_.allowed_dir + ")");
    }
    return err;
  }

  TxStatus tx_status() override {
    return sqlite3_get_autocommit(db_) ? TxStatus::idle : TxStatus::in_tx;
  }

  std::optional<BackendError> rollback() override {
    if (sqlite3_get_autocommit(db_)) return std::nullopt;
    if (sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return sqlite_error(db_);
    }
    return std::nullopt;
  }

  std::shared_ptr<Canceller> canceller() override { return canceller_; }

  // A SQLite connection's own state: the temp schema, attached databases and pragmas. The temp
  // objects and attachments go; of the pragmas only those set at open are restored (reopening
  // instead would reset all of them, but closing the last connection of a WAL database
  // checkpoints and deletes its WAL: far dearer than these few statements).
  std::optional<BackendError> reset() override {
    if (!sqlite3_get_autocommit(db_)) {
      return BackendError{protocol::ErrorCode::internal, "reset() needs an idle connection", "",
                          std::nullopt, false};
    }
    clear_statement_cache();
    std::vector<std::string> drops;
    // Triggers and indexes on temp tables go with their table; the type order drops views
    // before the tables they may read.
    if (!collect(
            "SELECT type, name FROM temp.sqlite_master WHERE type IN ('view', 'table', 'trigger')"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type = 'table'",
            [&](sqlite3_stmt* st) {
              const std::string type = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
              const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
              drops.push_back("DROP " + upper(type.c_str()) + " IF EXISTS temp." +
                              quote_ident(name));
            })) {
      return sqlite_error(db_);
    }
    if (!collect("PRAGMA database_list", [&](sqlite3_stmt* st) {
          const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
          if (name != "main" && name != "temp") drops.push_back("DETACH " + quote_ident(name));
        })) {
      return sqlite_error(db_);
    }
    for (const std::string& sql : drops) {
      if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return sqlite_error(db_);
      }
    }
    sqlite3_busy_timeout(db_, busy_ms_);
    if (sqlite3_exec(db_, "PRAGMA foreign_keys=ON", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return sqlite_error(db_);
    }
    return std::nullopt;
  }

  bool alive() override { return db_ != nullptr; }

 private:
  std::optional<BackendError> execute_impl(std::string_view sql, const std::vector<Value>& params,
                                           RowSink& sink, ExecResult& out) {
    out = ExecResult{};
    if (auto refused = backend::refuse_array_params(params, "SQLite")) return refused;
    CachedStmt g{*this, sql, take_cached(sql)};
    const char* tail = nullptr;
    const bool fresh = g.st == nullptr;
    if (fresh && sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &g.st, &tail) !=
        SQLITE_OK) {
      return sqlite_error(db_);
    }
    if (!g.st) return std::nullopt;  // only whitespace or comments

    // Running only the first statement of several would silently drop the rest.
    const char* end = sql.data() + sql.size();
    if (fresh && tail && tail < end) {
      StmtGuard rest;
      int rc = sqlite3_prepare_v2(db_, tail, static_cast<int>(end - tail), &rest.st, nullptr);
      if (rc != SQLITE_OK || rest.st) {
        return BackendError{protocol::ErrorCode::sql_error,
                            "multiple statements are not supported; send one statement per query",
                            "", SQLITE_MISUSE, false};
      }
    }

    const int expected = sqlite3_bind_parameter_count(g.st);
    if (expected != static_cast<int>(params.size())) {
      BackendError e = backend::placeholder_mismatch(static_cast<std::size_t>(expected), params.size());
      e.number = SQLITE_RANGE;
      return e;
    }
    for (int i = 0; i < expected; ++i) {
      const Value& v = params[static_cast<std::size_t>(i)];
      int rc = SQLITE_OK;
      const int idx = i + 1;
      if (std::holds_alternative<protocol::Null>(v)) {
        rc = sqlite3_bind_null(g.st, idx);
      } else if (const bool* b = std::get_if<bool>(&v)) {
        rc = sqlite3_bind_int64(g.st, idx, *b ? 1 : 0);
      } else if (const std::int64_t* iv = std::get_if<std::int64_t>(&v)) {
        rc = sqlite3_bind_int64(g.st, idx, *iv);
      } else if (const double* d = std::get_if<double>(&v)) {
        rc = sqlite3_bind_double(g.st, idx, *d);
      } else if (const std::string* s = std::get_if<std::string>(&v)) {
        rc = sqlite3_bind_text64(g.st, idx, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      } else if (const protocol::Bytes* by = std::get_if<protocol::Bytes>(&v)) {
        // A zero-length blob needs a non-null pointer, or SQLite binds NULL instead.
        static const char empty = 0;
        rc = sqlite3_bind_blob64(g.st, idx, by->data.empty() ? &empty : by->data.data(),
                                 by->data.size(), SQLITE_TRANSIENT);
      } else if (const protocol::Tagged* t = std::get_if<protocol::Tagged>(&v)) {
        rc = sqlite3_bind_text64(g.st, idx, t->text.data(), t->text.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
      }
      if (rc != SQLITE_OK) return sqlite_error(db_);
    }

    const bool readonly = sqlite3_stmt_readonly(g.st) != 0;
    const sqlite3_int64 total_before = sqlite3_total_changes64(db_);
    // The columns are read after the first step: a cached statement whose schema changed is
    // prepared again inside sqlite3_step (a `SELECT *` then has the new columns).
    int ncols = 0;
    std::vector<Type> types;
    std::vector<bool> known;
    std::vector<protocol::Column> cols;
    auto describe = [&] {
      ncols = sqlite3_column_count(g.st);
      types.assign(static_cast<std::size_t>(ncols), Type::text);
      known.assign(static_cast<std::size_t>(ncols), false);
      for (int c = 0; c < ncols; ++c) {
        protocol::Column col;
        const char* name = sqlite3_column_name(g.st, c);
        col.name = name ? name : "";
        const char* decl = sqlite3_column_decltype(g.st, c);
        col.db_type = decl ? decl : "";
        known[c] = type_from_decl(upper(decl), types[c]);
        cols.push_back(std::move(col));
      }
    };

    bool columns_sent = false;
    auto send_columns = [&](bool have_row) {
      columns_sent = true;
      for (int c = 0; c < ncols; ++c) {
        // Expressions have no declared type: the first value's storage class is the best hint.
        if (!known[c] && have_row) types[c] = type_from_storage(sqlite3_column_type(g.st, c));
        cols[c].type = types[c];
      }
      return sink.columns(std::move(cols));
    };

    bool stopped = false;
    protocol::Row row;
    bool described = false;
    for (;;) {
      int rc = sqlite3_step(g.st);
      if (!described && (rc == SQLITE_ROW || rc == SQLITE_DONE)) {
        describe();
        described = true;
      }
      if (rc == SQLITE_ROW) {
        if (!columns_sent && !send_columns(true)) {
          stopped = true;
          break;
        }
        row.clear();
        row.reserve(static_cast<std::size_t>(ncols));
        for (int c = 0; c < ncols; ++c) row.push_back(convert(g.st, c, types[c]));
        ++out.row_count;
        if (!sink.row(row)) {
          stopped = true;
          break;
        }
      } else if (rc == SQLITE_DONE) {
        break;
      } else {
        BackendError e = sqlite_error(db_);
        sqlite3_reset(g.st);
        return e;
      }
    }
    if (ncols > 0 && !columns_sent && !stopped) sink.columns(std::move(cols));
    // Resetting ends the statement now, releasing its read lock, instead of at finalize.
    sqlite3_reset(g.st);

    if (readonly) {
      out.affected = out.row_count;
    } else {
      // sqlite3_changes keeps the previous DML's count across DDL; a moving total tells whether
      // this statement changed anything at all.
      const bool changed = sqlite3_total_changes64(db_) != total_before;
      out.affected = changed ? sqlite3_changes64(db_) : 0;
      if (changed && out.affected > 0 && is_insert(sql)) {
        out.last_insert_id = sqlite3_last_insert_rowid(db_);
      }
    }
    return std::nullopt;
  }

  // Prepared statements by SQL text, least recently used first: a repeated statement skips
  // sqlite3_prepare (parsing and planning cost more than a point select itself).
  static constexpr std::size_t kStatementCache = 64;
  struct Entry {
    std::string sql;
    sqlite3_stmt* st;
  };
  std::vector<Entry> cache_;

  sqlite3_stmt* take_cached(std::string_view sql) {
    for (std::size_t i = cache_.size(); i-- > 0;) {
      if (cache_[i].sql == sql) {
        sqlite3_stmt* st = cache_[i].st;
        cache_.erase(cache_.begin() + static_cast<std::ptrdiff_t>(i));
        return st;
      }
    }
    return nullptr;
  }
  void give_back(std::string_view sql, sqlite3_stmt* st) {
    // Reset ends the statement (and its read lock); the bindings go so no value outlives its request.
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (cache_.size() >= kStatementCache) {
      sqlite3_finalize(cache_.front().st);
      cache_.erase(cache_.begin());
    }
    cache_.push_back(Entry{std::string(sql), st});
  }
  void clear_statement_cache() {
    for (auto& e : cache_) sqlite3_finalize(e.st);
    cache_.clear();
  }
  // One statement of execute_impl(): back to the cache afterwards, whatever happened.
  struct CachedStmt {
    SqliteConnection& conn;
    std::string_view sql;
    sqlite3_stmt* st;
    ~CachedStmt() {
      if (st) conn.give_back(sql, st);
    }
  };

  template <class OnRow>
  bool collect(const char* sql, OnRow on_row) {
    StmtGuard g;
    if (sqlite3_prepare_v2(db_, sql, -1, &g.st, nullptr) != SQLITE_OK) return false;
    int rc;
    while ((rc = sqlite3_step(g.st)) == SQLITE_ROW) on_row(g.st);
    return rc == SQLITE_DONE;
  }

  sqlite3* db_;
  int busy_ms_;
  AttachPolicy attach_;
  std::shared_ptr<SqliteCanceller> canceller_;
};

std::string uri_escape(const std::string& s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// A memdb database lives as long as one connection to it is open. The pool closes idle
// connections, so one keeper connection per bind stays open for the life of the process.
std::mutex g_keepers_mutex;
std::map<std::string, sqlite3*>* g_keepers = new std::map<std::string, sqlite3*>;  // never freed

constexpr int kOpenFlags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;

bool open_db(const std::string& name, int flags, sqlite3*& db, BackendError& err) {
  db = nullptr;
  if (sqlite3_open_v2(name.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    err = sqlite_error(db, protocol::ErrorCode::backend_unavailable);
    sqlite3_close_v2(db);
    db = nullptr;
    return false;
  }
  sqlite3_extended_result_codes(db, 1);
  return true;
}

}  // namespace

namespace detail {

std::unique_ptr<Connection> connect_sqlite(const DatabaseUrl& url, const std::string& bind_key,
                                           const ConnectOptions& options, BackendError& err) {
  int busy_ms = 5000;
  if (auto it = url.options.find("busy_timeout"); it != url.options.end()) {
    const std::string& v = it->second;
    auto res = std::from_chars(v.data(), v.data() + v.size(), busy_ms);
    if (res.ec != std::errc() || res.ptr != v.data() + v.size() || busy_ms < 0) {
      err = BackendError{protocol::ErrorCode::backend_unavailable,
                         "invalid busy_timeout option (milliseconds expected)", "", std::nullopt,
                         false};
      return nullptr;
    }
  }

  sqlite3* db = nullptr;
  if (url.sqlite_memory) {
    // memdb names starting with '/' are shared by all connections of the process.
    const std::string name = "file:/binds-mem-" + uri_escape(bind_key) + "?vfs=memdb";
    const int flags = kOpenFlags | SQLITE_OPEN_URI;
    {
      std::lock_guard<std::mutex> lock(g_keepers_mutex);
      if (!g_keepers->count(bind_key)) {
        sqlite3* keeper = nullptr;
        if (!open_db(name, flags, keeper, err)) return nullptr;
        (*g_keepers)[bind_key] = keeper;
      }
    }
    if (!open_db(name, flags, db, err)) return nullptr;
  } else {
    if (!open_db(url.database, kOpenFlags, db, err)) return nullptr;
  }
  std::unique_ptr<Connection> conn = std::make_unique<SqliteConnection>(db, busy_ms, options.sqlite_attach_dir);

  sqlite3_busy_timeout(db, busy_ms);
  if (!url.sqlite_memory) {
    // WAL lets readers run while one connection writes. It fails on read-only media; the
    // database still works with its rollback journal then, so the result is ignored.
    sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  }
  // Opening is lazy: reading the schema version catches "not a database" and unreadable files
  // now rather than at the first query.
  if (sqlite3_exec(db, "PRAGMA foreign_keys=ON; PRAGMA schema_version", nullptr, nullptr,
                   nullptr) != SQLITE_OK) {
    err = sqlite_error(db, protocol::ErrorCode::backend_unavailable);
    return nullptr;
  }
  return conn;
}

}  // namespace detail
}  // namespace binds
