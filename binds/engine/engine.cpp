#include "binds/engine/engine.hpp"

#include <spdlog/spdlog.h>

#include "binds/session_state.hpp"

namespace binds::engine {

using backend::Outcome;
using backend::TxStatus;
using protocol::ErrorCode;
using protocol::ErrorInfo;
using namespace std::chrono_literals;

namespace {

// After asking the backend to stop a statement, how long to wait for it before answering the client
// anyway and writing the connection off (a hung backend may never answer).
constexpr auto kAbandonGrace = 2s;
constexpr int kLogBurstPerSecond = 20;

std::vector<std::string> begin_statements(Backend backend, protocol::Isolation iso, bool read_only,
                                          std::string& error) {
  using protocol::Isolation;
  static const char* kLevels[] = {"", "READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"};
  const char* level = kLevels[static_cast<int>(iso)];
  switch (backend) {
    case Backend::postgresql: {
      std::string sql = "BEGIN";
      if (iso != Isolation::backend_default) sql += std::string(" ISOLATION LEVEL ") + level;
      if (read_only) sql += " READ ONLY";
      return {sql};
    }
    case Backend::mysql: {
      std::vector<std::string> out;
      // Applies to the next transaction only, so it cannot leak to another client's.
      if (iso != Isolation::backend_default) out.push_back(std::string("SET TRANSACTION ISOLATION LEVEL ") + level);
      out.push_back(read_only ? "START TRANSACTION READ ONLY" : "START TRANSACTION");
      return out;
    }
    case Backend::sqlite:
      if (iso != Isolation::backend_default && iso != Isolation::serializable) {
        error = "SQLite transactions are always serializable";
        return {};
      }
      return {"BEGIN"};
  }
  return {};
}

// One request's rows, forwarded to the front end under the request's id.
class RequestSink final : public backend::ResultSink {
 public:
  RequestSink(Responder& out, std::uint32_t id, const bool& stopping) : out_(out), id_(id), stopping_(stopping) {}
  void columns(std::span<const protocol::Column> c) override { out_.columns(id_, c); }
  void row(std::span<const backend::ValueView> v) override { out_.row(id_, v); }
  bool full() const override { return out_.full(); }
  asio::awaitable<bool> drained() override { return out_.drained(&stopping_); }
  std::size_t max_row_bytes() const override { return out_.max_row_bytes(); }

 private:
  Responder& out_;
  std::uint32_t id_;
  const bool& stopping_;
};

}  // namespace

std::shared_ptr<pool::Pool> Routes::resolve(const std::optional<std::string>& key, std::string& resolved) const {
  resolved = key ? *key : config->default_bind;
  auto it = pools.find(resolved);
  return it == pools.end() ? nullptr : it->second;
}

std::shared_ptr<pool::Pool> make_pool(asio::any_io_executor ex, const BindConfig& bind) {
  backend::ConnectOptions options;
  options.bind_key = bind.key;
  // Who opened the session, as the backend shows it: MariaDB keeps connection attributes for the
  // session's life (per-client names cannot follow a pooled connection there); PostgreSQL starts
  // with it and then shows each client's own name (send_client_name).
  options.application_name = "bindsd:" + bind.key;
  options.sqlite_attach_dir = bind.attach_dir;
  options.worker_threads = std::min(bind.pool.max, 8);
  // Connections open on the executor of whoever asked the pool (a client's strand); their I/O then
  // runs on whichever strand awaits them, so a query crosses no thread.
  pool::Factory factory = [url = bind.url, options](asio::any_io_executor ex) {
    return backend::connect(ex, url, options);
  };
  return std::make_shared<pool::Pool>(ex, bind, std::move(factory), nullptr);
}

// ---- Activity ----

std::string Activity::summary(std::string_view sql) {
  std::string out;
  bool space = false;
  for (char c : sql) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
    if (out.size() > kSummaryBytes) break;
  }
  if (out.size() <= kSummaryBytes) return out;
  // Cut on a character boundary (never half a UTF-8 sequence), and say it was cut.
  std::size_t cut = kSummaryBytes;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out + "...";
}

void Activity::begin(std::uint32_t id, std::string bind, std::string sql) {
  std::lock_guard lock(mu_);
  now_.push_back(Now{id, std::move(bind), std::move(sql), std::chrono::steady_clock::now(), true});
}

void Activity::running(std::uint32_t id) {
  std::lock_guard lock(mu_);
  for (auto& n : now_)
    if (n.id == id) n.waiting = false;
}

void Activity::end(std::uint32_t id) {
  std::lock_guard lock(mu_);
  std::erase_if(now_, [id](const Now& n) { return n.id == id; });
}

std::vector<Activity::Now> Activity::snapshot() const {
  std::lock_guard lock(mu_);
  return now_;
}

// ---- ClientSession ----

struct ClientSession::Running {
  explicit Running(asio::any_io_executor e) : ex(std::move(e)) {}
  std::uint32_t id = 0;
  backend::Connection* conn = nullptr;
  std::optional<ErrorCode> stop;  // why the server stopped it: cancelled or timeout
  bool stopping = false;          // stop is set: its rows are no longer waited on
  bool abandoned = false;         // the backend did not answer the cancel: the connection was aborted
  bool done = false;
  // Its connection still runs the reset (or the client's name) sent ahead of its statement. A
  // PostgreSQL cancel sent now would stop the reset, and the statement behind it would then run
  // on a connection already given up as broken: the cancel waits until the reset has answered.
  bool preparing = false;
  // The timers are made when first needed: most statements have neither a timeout nor a cancel,
  // and two timers made and destroyed per request showed in profiles (each looks up its service
  // under a lock and copies the type-erased executor).
  asio::any_io_executor ex;
  std::optional<asio::steady_timer> deadline_timer;  // statement timeout, then the abandon grace
  std::optional<asio::steady_timer> retry_timer;     // paces repeated cancels
  asio::steady_timer& deadline() {
    if (!deadline_timer) deadline_timer.emplace(ex);
    return *deadline_timer;
  }
  asio::steady_timer& retry() {
    if (!retry_timer) retry_timer.emplace(ex);
    return *retry_timer;
  }
  void cancel_timers() {
    if (deadline_timer) deadline_timer->cancel();
    if (retry_timer) retry_timer->cancel();
  }
  std::shared_ptr<std::function<void()>> repeat;  // the repeating cancel (held while it may fire)
  // Ends its wait for a connection (a paused bind holds requests until resume).
  std::shared_ptr<pool::AcquireCanceller> acquiring = std::make_shared<pool::AcquireCanceller>();
};

struct ClientSession::Lane {
  Lane(asio::any_io_executor ex, std::shared_ptr<BindStats> st) : idle_tx_timer(std::move(ex)), stats(std::move(st)) {}
  struct Queued {
    Request req;
    std::shared_ptr<pool::Pool> pool;
    bool internal = false;     // the server's own rollback of the client's transaction
    std::string abort_reason;  // internal: why
    bool sent = false;         // pipelined: already on the lane's connection (prefetch())
    bool cancel_requested = false;  // a CANCEL came while it was sent and not yet running
  };
  std::deque<Queued> queue;
  bool running = false;
  pool::Lease lease;        // held while the lane works, and between requests while pinned
  bool tx_aborted = false;  // the transaction was lost; refuse everything until ROLLBACK
  std::string abort_reason;
  bool failed_tx = false;   // the pinned transaction failed (PostgreSQL): it cannot commit
  asio::steady_timer idle_tx_timer;
  std::uint64_t idle_epoch = 0;  // a timer firing for an older epoch is stale
  std::shared_ptr<BindStats> stats;
  std::shared_ptr<Running> current;
  bool pinned() const { return lease && lease.pinned(); }
};

ClientSession::ClientSession(Engine& engine, asio::any_io_executor strand, Responder& responder,
                             std::uint64_t client_id, Limits limits)
    : engine_(engine), strand_(std::move(strand)), out_(responder), client_(client_id), limits_(limits),
      lanes_done_(strand_) {}

ClientSession::~ClientSession() = default;

int ClientSession::pinned() const {
  int n = 0;
  for (const auto& [k, l] : lanes_) n += l->pinned() ? 1 : 0;
  return n;
}

bool ClientSession::should_log() {
  auto now = std::chrono::steady_clock::now();
  if (now - log_window_ >= 1s) {
    if (log_dropped_)
      spdlog::warn("client #{}: {} log lines suppressed in the last second (rate limit)", client_, log_dropped_);
    log_dropped_ = 0;
    log_used_ = 0;
    log_window_ = now;
  }
  if (log_used_ < kLogBurstPerSecond) {
    ++log_used_;
    return true;
  }
  ++log_dropped_;
  return false;
}

void ClientSession::send_error(std::uint32_t id, ErrorInfo info) {
  engine_.counters().errors++;
  std::shared_ptr<BindStats> st;
  if (info.bind) {
    st = engine_.stats().get(*info.bind);
    st->error(info.code);
  }
  auto level = info.code == ErrorCode::sql_error ? spdlog::level::info : spdlog::level::warn;
  if (spdlog::should_log(level) && should_log()) {
    spdlog::log(level, "client #{} request {}{}: {}{}{}: {}", client_, id, info.bind ? " bind " + *info.bind : "",
                protocol::error_code_name(info.code), info.sqlstate.empty() ? "" : " ", info.sqlstate, info.message);
  }
  auto bytes = out_.error(id, info);
  if (st) st->bytes_out += bytes;
}

void ClientSession::send_error(std::uint32_t id, ErrorCode code, std::string message, const std::string& bind) {
  ErrorInfo info;
  info.code = code;
  info.message = std::move(message);
  info.bind = bind;
  send_error(id, std::move(info));
}

ClientSession::Lane& ClientSession::lane(const std::string& key) {
  auto it = lanes_.find(key);
  if (it == lanes_.end())
    it = lanes_.emplace(key, std::make_unique<Lane>(strand_, engine_.stats().get(key))).first;
  return *it->second;
}

void ClientSession::submit(Request r) {
  auto routes = engine_.routes();
  std::string key;
  auto pool = routes->resolve(r.bind, key);
  auto it = lanes_.find(key);
  if (!pool && it != lanes_.end()) {
    // A bind removed by a reload still serves the transaction this client has open on it, and a
    // transaction lost on it is still answered (TX_ABORTED until ROLLBACK).
    if (it->second->pinned()) pool = it->second->lease.pool_ptr();
  }
  if (!pool && !(it != lanes_.end() && it->second->tx_aborted)) {
    send_error(r.id, ErrorCode::unknown_bind, "unknown bind \"" + key + "\"", key);
    return;
  }
  if (in_flight_ >= static_cast<int>(limits_.max_in_flight)) {
    send_error(r.id, ErrorCode::busy,
               "too many requests in flight on this connection (limit " + std::to_string(limits_.max_in_flight) + ")",
               key);
    return;
  }
  ++in_flight_;
  r.bind = key;
  Lane& l = lane(key);
  l.stats->bytes_in.fetch_add(r.wire_bytes, std::memory_order_relaxed);
  l.queue.push_back(Lane::Queued{std::move(r), std::move(pool), false, {}});
  start_lane(key, l);
}

void ClientSession::start_lane(const std::string& key, Lane& l) {
  ++l.idle_epoch;  // activity: any armed idle-in-transaction timer is now stale
  l.idle_tx_timer.cancel();
  if (l.running) return;
  l.running = true;
  ++active_lanes_;
  asio::co_spawn(strand_, run_lane(key), [self = shared_from_this(), key](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("client #{} bind {}: lane ended with an exception: {}", self->client_, key, x.what());
    }
  });
}

void ClientSession::finished_one(bool internal) {
  if (internal) return;
  --in_flight_;
  if (in_flight_ == 0 && on_idle_) on_idle_();
}

asio::awaitable<void> ClientSession::run_lane(std::string key) {
  auto self = shared_from_this();
  Lane& l = *lanes_.at(key);
  while (!l.queue.empty() && !closing_) {
    auto q = std::move(l.queue.front());
    l.queue.pop_front();
    const bool internal = q.internal;
    const auto id = q.req.id;
    try {
      if (internal) {
        // The server's own rollback of an idle (or drained) transaction.
        if (l.pinned()) {
          const backend::Statement rollback{"ROLLBACK", {}};
          backend::DiscardSink discard;
          // A backend that does not answer is written off rather than waited for.
          asio::steady_timer deadline(strand_, kAbandonGrace);
          auto* conn = &l.lease.conn();
          // An expiry already queued when the rollback ends must not abort a connection that
          // has gone back to the pool by then.
          auto done = std::make_shared<bool>(false);
          deadline.async_wait([conn, done](boost::system::error_code ec) {
            if (!ec && !*done) conn->abort();
          });
          auto out = co_await conn->execute(rollback, discard);
          *done = true;
          deadline.cancel();
          l.lease.slot().tx = out.error ? TxStatus::unknown : out.tx;
          if (out.error) l.lease.mark_broken();
          l.lease.set_pinned(false);
          l.lease.release();
          l.tx_aborted = true;
          l.failed_tx = false;
          l.abort_reason = q.abort_reason;
          spdlog::warn("client #{} bind {}: transaction rolled back: {}", client_, key, l.abort_reason);
        }
      } else {
        co_await execute(l, std::move(q.req), std::move(q.pool), q.sent, q.cancel_requested);
      }
    } catch (const std::exception& e) {
      // A bug, not a backend error: the connection's state is unknown.
      if (l.lease) l.lease.mark_broken();
      l.lease.release();
      send_error(id, ErrorCode::internal, std::string("internal error: ") + e.what(), key);
    }
    finished_one(internal);
  }
  for (const auto& q : l.queue) finished_one(q.internal);
  l.queue.clear();
  // Requests pipelined on the connection and then dropped (the client left) leave results nobody
  // reads: the pool closes such a connection instead of reusing it.
  if (l.lease && l.lease.conn().outstanding() > 0) l.lease.release();
  l.running = false;
  if (!closing_) arm_idle_tx_timer(key, l);
  if (--active_lanes_ == 0) lanes_done_.cancel();
}

void ClientSession::arm_idle_tx_timer(const std::string& key, Lane& l) {
  if (!l.pinned()) return;
  auto limit = l.lease.pool().config().idle_in_transaction_timeout;
  if (limit.count() <= 0) return;
  auto epoch = ++l.idle_epoch;
  l.idle_tx_timer.expires_after(limit);
  l.idle_tx_timer.async_wait([self = shared_from_this(), key, epoch, limit](boost::system::error_code ec) {
    if (ec || self->closing_) return;
    auto it = self->lanes_.find(key);
    if (it == self->lanes_.end()) return;
    Lane& l = *it->second;
    if (l.idle_epoch != epoch || l.running || !l.pinned()) return;
    Lane::Queued q;
    q.internal = true;
    q.req.bind = key;
    q.abort_reason = "idle in transaction for longer than " + std::to_string(limit.count()) + " ms";
    l.queue.push_front(std::move(q));
    self->start_lane(key, l);
  });
}

void ClientSession::end_transactions(const std::shared_ptr<pool::Pool>& pool, const std::string& reason) {
  if (closing_) return;
  for (auto& [key, lp] : lanes_) {
    Lane& l = *lp;
    if (!l.pinned() || &l.lease.pool() != pool.get()) continue;
    Lane::Queued q;
    q.internal = true;
    q.req.bind = key;
    q.abort_reason = reason;
    l.queue.push_front(std::move(q));
    // A statement still running inside the transaction is stopped first.
    if (l.current) stop(l.current, ErrorCode::cancelled);
    start_lane(key, l);
  }
}

bool ClientSession::cancel(std::uint32_t target) {
  for (auto& [key, lp] : lanes_) {
    Lane& l = *lp;
    for (auto it = l.queue.begin(); it != l.queue.end(); ++it) {
      if (it->internal || it->req.id != target) continue;
      if (it->sent) {
        // On the wire already: it is cancelled on the backend once it is the one running.
        if (it->cancel_requested) return false;
        it->cancel_requested = true;
        return true;
      }
      l.queue.erase(it);
      send_error(target, ErrorCode::cancelled, "cancelled on request before it ran", key);
      finished_one(false);
      return true;
    }
  }
  auto it = running_.find(target);
  if (it == running_.end() || it->second->stop) return false;
  stop(it->second, ErrorCode::cancelled);
  return true;
}

void ClientSession::stop(const std::shared_ptr<Running>& r, ErrorCode why) {
  if (r->stop || r->done) return;
  r->stop = why;
  r->stopping = true;
  out_.wake();  // its rows may be waiting for a client that does not read
  // Still waiting for a connection: the wait ends now, and execute() runs nothing.
  if (!r->conn) {
    r->acquiring->cancel();
    return;
  }
  // A backend forwards a cancel only while a statement runs, so one sent in the instant before the
  // statement starts is dropped: repeat it until the statement ends (a cancel never outlives the
  // statement it was sent for, so repeating is safe).
  auto again = std::make_shared<std::function<void()>>();
  *again = [r, weak = std::weak_ptr<std::function<void()>>(again)] {
    if (r->done || r->abandoned) return;
    if (!r->preparing) r->conn->cancel();
    r->retry().expires_after(100ms);
    r->retry().async_wait([r, weak](boost::system::error_code ec) {
      auto f = weak.lock();
      if (!ec && f) (*f)();
    });
  };
  r->repeat = again;
  (*again)();
  // A hung backend may never answer the cancel: stop waiting for it after a grace period.
  r->deadline().expires_after(kAbandonGrace);
  r->deadline().async_wait([r](boost::system::error_code ec) {
    if (ec || r->done) return;
    r->abandoned = true;
    if (r->conn) r->conn->abort();
  });
}

void ClientSession::prefetch(Lane& l, backend::Connection& conn, const std::string* running_in_tx) {
  // PostgreSQL alone: with a Sync after each statement its answers to pipelined statements are
  // exactly those of the same statements sent one by one (an error fails only its own statement,
  // or the open transaction block, as it would anyway). MySQL ends a transaction on a deadlock,
  // after which pipelined statements would run in autocommit.
  if (!l.lease || conn.backend() != Backend::postgresql || conn.max_pipeline() <= 1 || l.tx_aborted) return;
  const auto& config = l.lease.pool().config();
  // A timeout's cancel could reach a statement pipelined behind the one it was meant for.
  if (config.statement_timeout.count() > 0) return;
  for (auto& q : l.queue) {
    if (conn.outstanding() >= conn.max_pipeline()) break;
    if (q.sent) continue;
    if (q.internal || q.req.kind != Kind::query || q.req.timeout_ms != 0 || q.cancel_requested ||
        q.pool != l.lease.pool_ptr() || may_end_transaction(q.req.sql)) {
      break;  // in order: nothing passes a request that must wait
    }
    // A statement meant for the open transaction goes out only while one is sure to be open when
    // it arrives: not behind the BEGIN that may yet fail, nor behind a statement that may end it.
    if (q.req.in_tx && (!l.pinned() || !running_in_tx || may_end_transaction(*running_in_tx))) break;
    conn.send(backend::Statement{q.req.sql, q.req.params});
    q.sent = true;
    l.stats->pipelined++;
    if (may_change_session_state(Backend::postgresql, q.req.sql)) l.lease.slot().dirty = true;
  }
}

asio::awaitable<void> ClientSession::execute(Lane& l, Request req, std::shared_ptr<pool::Pool> pool_ptr,
                                             bool sent, bool cancel_requested) {
  const std::string bind = *req.bind;
  const std::uint32_t id = req.id;
  const Kind kind = req.kind;

  if (sent && !l.lease) {
    // Its connection was lost (and written off) while an earlier request ran.
    ErrorInfo info;
    info.bind = bind;
    if (l.tx_aborted) {
      info.code = ErrorCode::tx_aborted;
      info.message = "the transaction on bind " + bind + " was rolled back (" + l.abort_reason +
                     "); nothing was committed; send ROLLBACK to end it";
    } else {
      info.code = ErrorCode::backend_unavailable;
      info.message = "bind " + bind + ": the backend connection was lost while this pipelined request waited";
      info.may_have_executed = true;
    }
    send_error(id, std::move(info));
    co_return;
  }

  // What the engine knows without a backend round trip (a request already sent is past that).
  if (!sent && l.tx_aborted) {
    // Only a ROLLBACK ends a transaction the client has lost: a COMMIT is refused too and the
    // state stays, so nothing the client meant to run inside it can run in autocommit.
    if (kind == Kind::rollback || (kind == Kind::query && is_transaction_rollback(req.sql))) {
      l.tx_aborted = false;
      out_.complete(id, protocol::Complete{0, 0, std::nullopt, false});
    } else {
      send_error(id, ErrorCode::tx_aborted,
                 "the transaction on bind " + bind + " was rolled back (" + l.abort_reason +
                     "); nothing was committed; send ROLLBACK to end it",
                 bind);
    }
    co_return;
  }
  if (!sent && kind == Kind::query && req.in_tx && !l.pinned()) {
    send_error(id, ErrorCode::not_in_transaction,
               "not run: no transaction is open on bind " + bind +
                   " (the statement was sent for one; the BEGIN before it failed or its transaction ended)",
               bind);
    co_return;
  }
  if (!sent && !pool_ptr && !l.pinned()) {
    send_error(id, ErrorCode::unknown_bind, "unknown bind \"" + bind + "\"", bind);
    co_return;
  }
  if (!sent && l.pinned() && l.failed_tx && (kind == Kind::commit || (kind == Kind::query && is_transaction_commit(req.sql)))) {
    // PostgreSQL would answer this COMMIT with a ROLLBACK that looks like success: an
    // acknowledged COMMIT must mean committed, so refuse it and keep the transaction for ROLLBACK.
    send_error(id, ErrorCode::tx_aborted,
               "the transaction on bind " + bind + " failed earlier and cannot commit; nothing was committed; "
                                                   "send ROLLBACK to end it",
               bind);
    co_return;
  }
  if (!sent && (kind == Kind::commit || kind == Kind::rollback) && !l.pinned()) {
    out_.complete(id, protocol::Complete{0, 0, std::nullopt, false});
    co_return;
  }
  // A lease kept between requests comes from the pool that served the previous one; a reload may
  // have replaced the bind's pool since.
  if (!sent && l.lease && !l.pinned() && l.lease.pool_ptr() != pool_ptr) l.lease.release();
  // A paused bind holds new requests: a client with more queued must not keep running on the
  // connection it holds between them (only a transaction keeps its connection through a pause).
  if (!sent && l.lease && !l.pinned() && l.lease.pool().paused()) l.lease.release();
  pool::Pool& pool = l.lease ? l.lease.pool() : *pool_ptr;
  std::vector<std::string> statements;
  if (kind == Kind::begin) {
    if (l.pinned()) {
      send_error(id, ErrorCode::bad_request, "a transaction is already open on bind " + bind, bind);
      co_return;
    }
    std::string why;
    statements = begin_statements(pool.config().url.backend, req.isolation, req.read_only, why);
    if (statements.empty()) {
      send_error(id, ErrorCode::bad_request, why, bind);
      co_return;
    }
  } else if (kind == Kind::commit) {
    statements = {"COMMIT"};
  } else if (kind == Kind::rollback) {
    statements = {"ROLLBACK"};
  }

  auto& stats = *l.stats;
  const auto started = std::chrono::steady_clock::now();
  const bool was_pinned = l.pinned();
  // Registered before it waits for a connection: a CANCEL (or a client leaving) while it waits
  // must keep it from running at all.
  auto run = std::make_shared<Running>(strand_);
  run->id = id;
  l.current = run;
  running_[id] = run;
  activity_->begin(id, bind,
                   kind == Kind::query    ? Activity::summary(req.sql)
                   : kind == Kind::begin  ? "BEGIN"
                   : kind == Kind::commit ? "COMMIT"
                                          : "ROLLBACK");
  struct Unregister {
    ClientSession* self;
    Lane& l;
    std::uint32_t id;
    ~Unregister() {
      self->running_.erase(id);
      self->activity_->end(id);
      l.current.reset();
    }
  } unregister{this, l, id};
  if (!l.lease) {
    std::optional<std::chrono::steady_clock::duration> paused_limit;
    if (req.timeout_ms) paused_limit = std::chrono::milliseconds(req.timeout_ms);
    auto acquired = co_await pool.acquire(paused_limit, run->acquiring);
    stats.pool_wait.observe(std::chrono::steady_clock::now() - started);
    if (run->stop) {
      // Stopped while it waited: nothing reached the backend.
      if (acquired.lease) acquired.lease.release();
      run->done = true;
      if (!closing_) {
        send_error(id, *run->stop,
                   *run->stop == ErrorCode::timeout ? "statement timeout exceeded on bind " + bind + " before it started"
                                                    : "cancelled on request before it ran (bind " + bind + ")",
                   bind);
      }
      co_return;
    }
    if (acquired.error) {
      ErrorInfo info;
      info.code = acquired.error->code;
      info.message = acquired.error->message;
      info.bind = bind;
      if (info.code == ErrorCode::backend_unavailable || info.code == ErrorCode::timeout) info.may_have_executed = false;
      send_error(id, std::move(info));
      co_return;
    }
    l.lease = std::move(acquired.lease);
  }
  auto& slot = l.lease.slot();
  auto& conn = l.lease.conn();
  const Backend backend = pool.config().url.backend;

  // A connection that changes client is reset first, in the same write as the first statement
  // where the backend pipelines. On PostgreSQL any statement may have changed the session without
  // the SQL text showing it (a DO block, a function setting search_path), so it always resets.
  bool reset = false;
  // Only when the connection comes to this client: within its own session (a transaction, or a
  // SET application_name of its own) the client's choices stand.
  const bool arriving = !sent && !was_pinned && slot.last_client != client_;
  if (!sent && !was_pinned && slot.last_client != 0 && slot.last_client != client_) {
    const auto policy = pool.config().reset;
    reset = slot.dirty || policy == ResetPolicy::always ||
            (policy == ResetPolicy::automatic && backend == Backend::postgresql);
  }
  slot.last_client = client_;
  slot.holder = client_;
  activity_->running(id);
  if (reset) slot.dirty = false;
  if (!sent && kind == Kind::query && may_change_session_state(backend, req.sql)) slot.dirty = true;

  run->conn = &conn;
  run->preparing = reset || arriving;
  if (cancel_requested) stop(run, ErrorCode::cancelled);
  const auto timeout =
      req.timeout_ms ? std::chrono::milliseconds(req.timeout_ms) : pool.config().statement_timeout;
  if (kind == Kind::query && timeout.count() > 0) {
    run->deadline().expires_after(timeout);
    run->deadline().async_wait([self = shared_from_this(), run](boost::system::error_code ec) {
      if (!ec && !run->done) self->stop(run, ErrorCode::timeout);
    });
  }

  // The operations in order; each waits for a free pipeline slot.
  std::vector<backend::Statement> ops;
  if (kind == Kind::query) {
    ops.push_back(backend::Statement{req.sql, req.params});
  } else {
    for (const auto& s : statements) ops.push_back(backend::Statement{s, {}});
  }
  RequestSink sink(out_, id, run->stopping);
  backend::DiscardSink discard;
  backend::ResultSink& result_sink = kind == Kind::query ? static_cast<backend::ResultSink&>(sink) : discard;
  Outcome out;
  bool reset_failed = false;
  {
    const int window = std::max(1, conn.max_pipeline());
    std::size_t next = sent ? ops.size() : 0;
    int pending_reset = 0;
    if (reset) {
      conn.send_reset();
      pending_reset = 1;
      stats.resets.fetch_add(1, std::memory_order_relaxed);
    }
    // The client's name as application_name (PgBouncer's tracked parameters): queued only when
    // the session shows another one, in the same write as the statement.
    // An application_name fixed in the bind's URL is the operator's choice and stays.
    if (arriving && !client_name_.empty() && !pool.config().url.options.count("application_name") &&
        conn.send_client_name(client_name_))
      ++pending_reset;
    // A BEGIN with the statement sent for its transaction right behind (QUERY in_tx): both in one
    // write where the backend can make the statement depend on the BEGIN (skipped if it fails).
    if (kind == Kind::begin && ops.size() == 1 && !run->stop && !l.queue.empty() &&
        pool.config().statement_timeout.count() == 0) {
      auto& q = l.queue.front();
      if (!q.sent && !q.internal && q.req.kind == Kind::query && q.req.in_tx && q.req.timeout_ms == 0 &&
          !q.cancel_requested && q.pool == l.lease.pool_ptr() && !may_end_transaction(q.req.sql) &&
          conn.send_begin_chained(ops[0])) {
        next = 1;
        conn.send(backend::Statement{q.req.sql, q.req.params});
        q.sent = true;
        l.stats->pipelined++;
        if (may_change_session_state(backend, q.req.sql)) slot.dirty = true;
      }
    }
    while (next < ops.size() && conn.outstanding() < window) conn.send(ops[next++]);
    if (kind == Kind::query && timeout.count() == 0 && !run->stop)
      prefetch(l, conn, was_pinned ? &req.sql : nullptr);
    for (; pending_reset > 0; --pending_reset) {
      auto r = co_await conn.receive(discard);
      if (r.error && !reset_failed) {
        reset_failed = true;
        out = std::move(r);
      }
    }
    run->preparing = false;
    // A cancel or timeout held back by the reset goes out now (then repeats until the statement ends).
    if (run->stop && run->repeat && !reset_failed && !run->abandoned) (*run->repeat)();
    for (std::size_t done = 0; done < ops.size() && !reset_failed; ++done) {
      while (next < ops.size() && conn.outstanding() < window) conn.send(ops[next++]);
      out = co_await conn.receive(result_sink);
      if (out.error || out.stopped || run->stop) {
        // Later statements of this request (a BEGIN's second one) are not worth running; drain
        // them so the connection stays in step (later requests pipelined behind keep theirs).
        for (std::size_t rest = done + 1; rest < next; ++rest) co_await conn.receive(discard);
        break;
      }
    }
  }
  run->done = true;
  run->cancel_timers();
  run->repeat.reset();
  engine_.counters().queries++;
  stats.queries++;
  stats.latency.observe(std::chrono::steady_clock::now() - started);

  const bool abandoned = run->abandoned;
  const auto stop = run->stop;
  auto stop_message = [&](ErrorCode why) {
    return why == ErrorCode::timeout
               ? "statement timeout of " + std::to_string(timeout.count()) + " ms exceeded on bind " + bind
               : "cancelled on request (bind " + bind + ")";
  };

  if (reset_failed) {
    // A connection whose state could not be cleared must not serve anyone else.
    l.lease.mark_broken();
    l.lease.release();
    ErrorInfo info;
    info.code = ErrorCode::backend_unavailable;
    info.message = "bind " + bind + ": could not reset the session: " + out.error->message;
    info.bind = bind;
    info.may_have_executed = false;
    send_error(id, std::move(info));
    co_return;
  }

  if (abandoned) {
    l.lease.mark_broken();
    l.lease.release();
    ErrorInfo info;
    info.code = stop.value_or(ErrorCode::timeout);
    info.message = stop_message(info.code) + "; the backend did not respond to the cancel";
    info.bind = bind;
    info.may_have_executed = true;
    if (was_pinned || kind == Kind::begin) {
      l.tx_aborted = true;
      l.failed_tx = false;
      l.abort_reason = "its backend connection stopped responding";
    }
    if (!closing_) send_error(id, std::move(info));
    co_return;
  }

  const bool broken = out.error && out.error->connection_broken;
  if (broken) l.lease.mark_broken();
  // A ROLLBACK whose connection died has done its job: a dead session holds no transaction.
  const bool ends_tx = kind == Kind::rollback || (kind == Kind::query && is_transaction_rollback(req.sql));
  if (was_pinned && broken && ends_tx) out.error.reset();
  if (out.session_state_changed) slot.dirty = true;
  slot.tx = broken ? TxStatus::unknown : out.tx;
  const bool in_tx = !broken && (out.tx == TxStatus::in_tx || out.tx == TxStatus::failed_tx);
  l.failed_tx = in_tx && out.tx == TxStatus::failed_tx;
  if (was_pinned && !in_tx && !out.error) {
    const bool committed = kind == Kind::commit || (kind == Kind::query && is_transaction_commit(req.sql));
    (committed ? stats.commits : stats.rollbacks).fetch_add(1, std::memory_order_relaxed);
  }
  l.lease.set_pinned(in_tx);
  // Back to the pool before the client reads the reply (a broken one to be closed at once).
  if (broken || (!in_tx && l.queue.empty())) l.lease.release();

  if (was_pinned && broken && !ends_tx) {
    l.tx_aborted = true;
    l.abort_reason = "its backend connection was lost: " + out.error->message;
    spdlog::warn("client #{} bind {}: transaction lost with its backend connection: {}", client_, bind,
                 out.error->message);
  } else if (was_pinned && !in_tx && out.error && kind != Kind::commit && kind != Kind::rollback) {
    // The backend ended the transaction because of an error (MySQL rolls the whole transaction
    // back on a deadlock or a lock wait timeout): what the client sends next must not run in
    // autocommit as if it were still inside it.
    l.tx_aborted = true;
    l.abort_reason = "the backend rolled it back after an error: " + out.error->message;
  }
  if (closing_) co_return;

  if (out.stopped && !out.error) {
    // Stopped by its timeout or a cancel while its rows waited for the client: say so.
    if (stop) {
      ErrorInfo info;
      info.bind = bind;
      info.code = *stop;
      info.message = stop_message(*stop);
      info.may_have_executed = true;
      send_error(id, std::move(info));
    }
    co_return;  // otherwise the client is gone: nobody to answer
  }
  if (out.error) {
    auto& e = *out.error;
    ErrorInfo info;
    info.bind = bind;
    if (e.interrupted && stop) {
      info.code = *stop;
      info.message = stop_message(*stop);
      info.may_have_executed = *stop == ErrorCode::timeout ? std::optional(true) : std::nullopt;
    } else if (e.interrupted) {
      // A cancel meant for an earlier request of this client, pipelined ahead of this one, reached
      // the backend after that request had finished.
      info.code = ErrorCode::cancelled;
      info.message = "cancelled on bind " + bind + " by a cancel of an earlier request pipelined ahead of it";
    } else {
      info.code = e.code;
      info.message = e.message;
      info.sqlstate = e.sqlstate;
      info.number = e.number;
      if (was_pinned && broken) {
        info.code = ErrorCode::backend_unavailable;
        info.message = "the backend connection holding the transaction on bind " + bind + " was lost (" +
                       e.message + "); the transaction is rolled back; send ROLLBACK";
      }
      if (info.code == ErrorCode::backend_unavailable) info.may_have_executed = true;
    }
    send_error(id, std::move(info));
    co_return;
  }
  protocol::Complete done;
  done.affected = kind == Kind::query ? out.affected : 0;
  done.row_count = out.row_count;
  done.last_insert_id = out.last_insert_id;
  done.in_transaction = in_tx;
  stats.bytes_out += out_.complete(id, done);
}

asio::awaitable<void> ClientSession::close() {
  auto self = shared_from_this();
  closing_ = true;
  // Drop what is queued; stop what runs (a client that left wants nothing more from it).
  for (auto& [key, lp] : lanes_) {
    for (const auto& q : lp->queue) finished_one(q.internal);
    lp->queue.clear();
    lp->idle_tx_timer.cancel();
    if (lp->current) stop(lp->current, ErrorCode::cancelled);
  }
  while (active_lanes_ > 0) {
    lanes_done_.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await lanes_done_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  // Releasing pinned leases makes the pool roll their transactions back before reuse.
  lanes_.clear();
}

}  // namespace binds::engine
