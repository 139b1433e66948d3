// One client connection = one coroutine on its own strand (reader), plus a writer coroutine and
// one lane coroutine per bind with work queued. Requests of a client to the same bind run in order
// on one lane; different binds run concurrently (PROTOCOL.md §8).
//
// A request's life: queued in its lane → a Job (waiting for a connection, then running on a pool
// worker) → finished. CANCEL, a statement timeout and a client disconnect all stop a request the
// same way (stop_job): queued requests are dropped, running ones are cancelled on the backend.

#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <map>

#include "binds/pool.hpp"
#include "binds/session_state.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"
#include "server/log_limiter.hpp"
#include "server/outbox.hpp"
#include "server/server.hpp"

namespace binds::server {

namespace {

using protocol::ErrorCode;
using protocol::ErrorInfo;
using protocol::Frame;
using protocol::FrameDecoder;
using protocol::FrameType;
using namespace std::chrono_literals;

constexpr auto kHandshakeTimeout = 10s;
constexpr auto kDrainTimeout = 2s;
// After asking the backend to stop a statement, how long to wait for the driver to return before
// answering the client anyway (a hung backend may never return) and writing the connection off.
constexpr auto kAbandonGrace = 2s;
constexpr std::string_view kServerName = "bindsd/0.1.0";

enum class Kind { query, begin, commit, rollback, abort_idle_tx };

struct Request {
  Kind kind = Kind::query;
  std::uint32_t id = 0;
  protocol::QueryRequest query;
  protocol::BeginRequest begin;
  std::string bind;
  std::shared_ptr<Pool> pool;
  std::string abort_reason;  // abort_idle_tx: why the server ends the transaction
};

struct Lane {
  Lane(asio::any_io_executor ex, std::shared_ptr<BindStats> st) : idle_tx_timer(ex), stats(std::move(st)) {}
  std::deque<Request> queue;
  bool running = false;
  Lease pinned;             // set while the backend connection is inside a transaction
  bool tx_aborted = false;  // the server ended the client's transaction; see PROTOCOL.md §6.5
  bool failed_tx = false;   // the pinned transaction has failed (PostgreSQL): it cannot commit
  std::string abort_reason;
  asio::steady_timer idle_tx_timer;
  std::uint64_t idle_epoch = 0;  // a timer firing for an older epoch is stale
  std::shared_ptr<BindStats> stats;  // looked up once per lane, not per request
};

// Streams a result from a worker thread into the client's outbox in bounded ROWS frames.
class QuerySink final : public RowSink {
 public:
  QuerySink(Outbox& out, std::uint32_t id, const Limits& limits)
      : out_(out), id_(id), limits_(limits) {}

  bool columns(std::vector<protocol::Column> cols) override {
    if (muted_) return false;
    if (silent_) return true;
    auto frame = protocol::encode_columns(id_, cols);
    bytes_ += frame.size();
    return alive_ = out_.push_blocking(std::move(frame), &muted_);
  }
  bool row(protocol::Row& r) override {
    if (muted_) return false;
    if (silent_) return true;
    batch_.add(r);
    if (batch_.rows() >= limits_.batch_rows || batch_.bytes() >= limits_.batch_bytes) return flush();
    return true;
  }
  bool flush() {
    if (muted_) return false;
    if (batch_.rows() == 0) return alive_;
    // The frame body adds a few bytes of map/array headers to the rows.
    if (batch_.bytes() + 32 > limits_.max_frame) {
      too_big_ = true;
      return alive_ = false;
    }
    auto frame = batch_.finish(id_);
    bytes_ += frame.size();
    return alive_ = out_.push_blocking(std::move(frame), &muted_);
  }
  std::uint64_t bytes() const { return bytes_; }
  // Internal statements (BEGIN, COMMIT, …) send no rows to the client.
  void set_silent() { silent_ = true; }
  // Any thread. The request was answered already: whatever the driver still produces is dropped.
  void mute() {
    muted_ = true;
    out_.wake_blocked();  // a worker stuck on a client that does not read lets go of its connection
  }
  bool too_big() const { return too_big_; }
  bool client_gone() const { return !alive_ && !too_big_; }

 private:
  Outbox& out_;
  std::uint32_t id_;
  const Limits& limits_;
  protocol::RowBatchWriter batch_;
  bool alive_ = true;
  bool too_big_ = false;
  bool silent_ = false;
  std::atomic<bool> muted_{false};
  std::uint64_t bytes_ = 0;
};

// Everything a request needs on the worker thread. Shared with the worker so nothing it touches
// (least of all the lease) can go away while it runs, even if the session ends meanwhile.
struct Job {
  Job(Outbox& out, std::uint32_t id, const Limits& limits, asio::any_io_executor strand)
      : sink(out, id, limits), done_signal(strand), deadline(strand), retry(strand) {}

  std::shared_ptr<void> keep;  // the session, whose outbox the sink writes to
  std::uint64_t client = 0;
  Lease lease;
  Request req;
  std::vector<std::string> statements;  // what runs; for a QUERY, empty (req.query.sql runs)
  QuerySink sink;
  std::optional<BackendError> error;
  ExecResult result;
  TxStatus tx = TxStatus::unknown;

  // Stop coordination. The worker marks phase under mu; cancels are sent only while phase ==
  // running, and the driver forwards a cancel only while a statement is inside execute() and
  // waits for it before execute() returns, so a late cancel cannot reach another request's
  // statement on the same connection.
  enum class Phase { pending, running, finished };
  std::mutex mu;
  Phase phase = Phase::pending;
  std::shared_ptr<Canceller> canceller;
  std::optional<ErrorCode> stop;  // why the server stopped it: cancelled or timeout
  bool abandoned = false;         // the session stopped waiting for the worker
  bool sent = false;              // the statement reached the backend (may have executed)

  asio::steady_timer done_signal;  // cancelled when the worker is done (or the job abandoned)
  asio::steady_timer deadline;     // statement timeout, then the abandon grace
  asio::steady_timer retry;        // paces repeated cancels (send_cancel)
};

template <class Socket>
struct Session {
  Session(Server& srv, Socket sock, std::shared_ptr<const RouteTable> rt)
      : server(srv),
        socket(std::move(sock)),
        outbox(socket.get_executor(), rt->config->limits.client_buffer),
        limits(rt->config->limits),
        lanes_idle(socket.get_executor()),
        writer_done(socket.get_executor()),
        deadline(socket.get_executor()),
        frame_deadline(socket.get_executor()),
        write_deadline(socket.get_executor()),
        reader_wake(socket.get_executor()) {}

  Server& server;
  Socket socket;
  Outbox outbox;
  const Limits limits;  // fixed for the connection's lifetime
  std::uint64_t id = 0;
  std::string peer;
  std::map<std::string, Lane> lanes;
  std::map<std::uint32_t, std::shared_ptr<Job>> jobs;  // requests taken out of their lane queue
  int in_flight = 0;
  int active_lanes = 0;
  bool closing = false;
  bool draining = false;  // server shutting down: finish what is in flight, then disconnect
  bool local_peer = false;  // Unix socket or loopback TCP: may run admin commands
  std::shared_ptr<ClientInfo> info = std::make_shared<ClientInfo>();
  bool writer_running = false;
  bool hello_done = false;
  std::string close_reason;
  asio::steady_timer lanes_idle;
  asio::steady_timer writer_done;
  asio::steady_timer deadline;  // handshake deadline, then the drain deadline at close
  asio::steady_timer frame_deadline;  // limits.read_timeout for a frame that has begun to arrive
  asio::steady_timer write_deadline;  // limits.write_timeout for each write to the client
  std::uint64_t write_epoch = 0;      // a write_deadline firing for an older write is stale
  asio::steady_timer reader_wake;     // the reader waits on it while the outbox is full
  LogLimiter log_limit;

  Lane& lane(const std::string& key) {
    auto it = lanes.find(key);
    if (it == lanes.end()) it = lanes.emplace(key, Lane(socket.get_executor(), server.stats().get(key))).first;
    return it->second;
  }

  // Strand only. Ends the connection after the replies already queued are written: the reader
  // sees end-of-input and the session drains its outbox before closing.
  void finish(std::string reason) {
    if (close_reason.empty()) close_reason = std::move(reason);
    boost::system::error_code ec;
    socket.shutdown(Socket::shutdown_receive, ec);
  }

  // Strand only. Ends the connection: the reader sees the socket close and cleans up.
  void close(std::string reason) {
    if (close_reason.empty()) close_reason = std::move(reason);
    boost::system::error_code ec;
    socket.close(ec);
  }

  // Strand only. A log line about this client, within its rate limit.
  template <typename... Args>
  void log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) {
    if (!spdlog::should_log(level)) return;
    std::uint64_t suppressed = 0;
    const bool ok = log_limit.allow(LogLimiter::Clock::now(), suppressed);
    if (suppressed) spdlog::warn("client #{}: {} log lines suppressed in the last second (rate limit)", id, suppressed);
    if (ok) spdlog::log(level, format, std::forward<Args>(args)...);
  }

  void send_error(std::uint32_t req_id, ErrorInfo info) {
    server.counters().errors++;
    if (info.bind) server.stats().get(*info.bind)->error(info.code);
    auto level = info.code == ErrorCode::sql_error ? spdlog::level::info : spdlog::level::warn;
    log(level, "client #{} request {}{}: {}{}{}: {}", id, req_id, info.bind ? " bind " + *info.bind : std::string(),
        protocol::error_code_name(info.code), info.sqlstate.empty() ? "" : " ", info.sqlstate, info.message);
    outbox.push(protocol::encode_error(req_id, info));
  }
  void send_error(std::uint32_t req_id, ErrorCode code, std::string message,
                  std::optional<std::string> bind = std::nullopt) {
    ErrorInfo info;
    info.code = code;
    info.message = std::move(message);
    info.bind = std::move(bind);
    send_error(req_id, std::move(info));
  }
  void send_complete(std::uint32_t req_id, std::int64_t affected, bool in_tx) {
    protocol::Complete done;
    done.affected = affected;
    done.in_transaction = in_tx;
    outbox.push(protocol::encode_complete(req_id, done));
  }
};

template <class Socket>
using SessionPtr = std::shared_ptr<Session<Socket>>;

// Sends a cancel for a running job from a cancel thread, and repeats it every 100 ms (from a timer,
// holding no thread meanwhile) until the job is finished: the driver forwards a cancel only while a
// statement is inside execute(), so one sent in the instant before execute() starts is dropped.
// Repeating is safe because a cancel never outlives the statement it was sent for.
void send_cancel(asio::thread_pool& cancel_pool, std::shared_ptr<Job> job, int attempt) {
  asio::post(cancel_pool, [&cancel_pool, job = std::move(job), attempt]() mutable {
    std::shared_ptr<Canceller> canceller;
    {
      std::lock_guard lock(job->mu);
      if (job->phase == Job::Phase::finished || job->abandoned || attempt >= 100) {
        // The last reference must drop on the strand, not on a cancel thread.
        auto strand = job->retry.get_executor();
        asio::post(strand, [job = std::move(job)] {});
        return;
      }
      if (job->phase == Job::Phase::running) canceller = job->canceller;
    }
    if (canceller) canceller->cancel();
    auto strand = job->retry.get_executor();
    asio::post(strand, [&cancel_pool, job = std::move(job), attempt]() mutable {
      job->retry.expires_after(std::chrono::milliseconds(100));
      job->retry.async_wait([&cancel_pool, job, attempt](boost::system::error_code ec) {
        if (!ec) send_cancel(cancel_pool, job, attempt + 1);
      });
    });
  });
}

// Asks a job to stop: a pending job will not start, a running one is cancelled on the backend.
// Strand only. Returns false if the job had already finished or was already stopping.
bool stop_job(const std::shared_ptr<Job>& job, ErrorCode why) {
  {
    std::lock_guard lock(job->mu);
    if (job->phase == Job::Phase::finished || job->stop) return false;
    job->stop = why;
  }
  send_cancel(job->req.pool->cancel_workers(), job, 0);
  // A hung backend may never let the driver return: stop waiting for it after a grace period.
  job->deadline.expires_after(kAbandonGrace);
  job->deadline.async_wait([job](boost::system::error_code ec) {
    if (ec) return;
    {
      std::lock_guard lock(job->mu);
      if (job->phase == Job::Phase::finished) return;
      job->abandoned = true;
    }
    job->sink.mute();
    job->done_signal.cancel();
  });
  return true;
}

std::vector<std::string> begin_statements(Backend backend, const protocol::BeginRequest& b,
                                          std::string& error) {
  using protocol::Isolation;
  static const char* kLevels[] = {"", "READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ",
                                  "SERIALIZABLE"};
  const char* level = kLevels[static_cast<int>(b.isolation)];
  switch (backend) {
    case Backend::postgresql: {
      std::string sql = "BEGIN";
      if (b.isolation != Isolation::backend_default) sql += std::string(" ISOLATION LEVEL ") + level;
      if (b.read_only) sql += " READ ONLY";
      return {sql};
    }
    case Backend::mysql: {
      std::vector<std::string> out;
      // Applies to the next transaction only, so it cannot leak to another client's.
      if (b.isolation != Isolation::backend_default)
        out.push_back(std::string("SET TRANSACTION ISOLATION LEVEL ") + level);
      out.push_back(b.read_only ? "START TRANSACTION READ ONLY" : "START TRANSACTION");
      return out;
    }
    case Backend::sqlite:
      if (b.isolation != Isolation::backend_default && b.isolation != Isolation::serializable) {
        error = "SQLite transactions are always serializable";
        return {};
      }
      return {"BEGIN"};
  }
  return {};
}

template <class Socket>
asio::awaitable<void> execute(const SessionPtr<Socket>& s, Lane& lane, Request req) {
  const auto strand = s->socket.get_executor();
  auto job = std::make_shared<Job>(s->outbox, req.id, s->limits, strand);
  job->keep = s;
  job->client = s->id;
  job->req = std::move(req);
  const std::string bind = job->req.bind;
  const std::uint32_t id = job->req.id;
  const Kind kind = job->req.kind;

  // What the server knows without a backend round trip.
  if (lane.tx_aborted && kind != Kind::abort_idle_tx) {
    // Only a ROLLBACK ends a transaction the client has lost: a COMMIT is refused too and the
    // state stays, so nothing the client meant to run inside it can run in autocommit.
    if (kind == Kind::rollback || (kind == Kind::query && is_transaction_rollback(job->req.query.sql))) {
      lane.tx_aborted = false;
      s->send_complete(id, 0, false);
    } else {
      s->send_error(id, ErrorCode::tx_aborted,
                    "the transaction on bind " + bind + " was rolled back (" + lane.abort_reason +
                        "); nothing was committed; send ROLLBACK to end it",
                    bind);
    }
    co_return;
  }
  // A lost transaction on a bind that a reload removed is answered above without a pool; once
  // rolled back, the bind is simply unknown.
  if (!job->req.pool) {
    s->send_error(id, ErrorCode::unknown_bind, "unknown bind \"" + bind + "\"", bind);
    co_return;
  }
  auto& pool = *job->req.pool;
  if (lane.pinned && lane.failed_tx &&
      (kind == Kind::commit || (kind == Kind::query && is_transaction_commit(job->req.query.sql)))) {
    // PostgreSQL would answer this COMMIT with a ROLLBACK that looks like success: an
    // acknowledged COMMIT must mean committed, so refuse it and keep the transaction for ROLLBACK.
    s->send_error(id, ErrorCode::tx_aborted,
                  "the transaction on bind " + bind +
                      " failed earlier and cannot commit; nothing was committed; send ROLLBACK to end it",
                  bind);
    co_return;
  }
  if ((kind == Kind::commit || kind == Kind::rollback || kind == Kind::abort_idle_tx) && !lane.pinned) {
    if (kind != Kind::abort_idle_tx) s->send_complete(id, 0, false);
    co_return;
  }
  if (kind == Kind::begin) {
    if (lane.pinned) {
      s->send_error(id, ErrorCode::bad_request, "a transaction is already open on bind " + bind, bind);
      co_return;
    }
    std::string why;
    job->statements = begin_statements(pool.config().url.backend, job->req.begin, why);
    if (job->statements.empty()) {
      s->send_error(id, ErrorCode::bad_request, why, bind);
      co_return;
    }
  } else if (kind == Kind::commit) {
    job->statements = {"COMMIT"};
  } else if (kind == Kind::rollback || kind == Kind::abort_idle_tx) {
    job->statements = {"ROLLBACK"};
  }
  if (kind != Kind::query) job->sink.set_silent();

  s->jobs[id] = job;
  const auto& stats = lane.stats;
  const auto started = std::chrono::steady_clock::now();
  bool was_pinned = static_cast<bool>(lane.pinned);
  if (was_pinned) {
    job->lease = std::move(lane.pinned);
  } else {
    auto acquired = co_await pool.acquire();
    stats->pool_wait.observe(std::chrono::steady_clock::now() - started);
    if (acquired.error) {
      s->jobs.erase(id);
      ErrorInfo info;
      info.code = acquired.error->code;
      info.message = acquired.error->message;
      info.bind = bind;
      info.may_have_executed = info.code == ErrorCode::backend_unavailable ? std::optional(false) : std::nullopt;
      s->send_error(id, std::move(info));
      co_return;
    }
    job->lease = std::move(acquired.lease);
  }

  // The statement timeout counts from here: the request has its connection.
  auto timeout = job->req.query.timeout_ms ? std::chrono::milliseconds(job->req.query.timeout_ms)
                                           : pool.config().statement_timeout;
  if (kind == Kind::query && timeout.count() > 0) {
    job->deadline.expires_after(timeout);
    job->deadline.async_wait([s, job](boost::system::error_code ec) {
      if (!ec) stop_job(job, ErrorCode::timeout);
    });
  }

  job->done_signal.expires_at(asio::steady_timer::time_point::max());
  pool.post([job, strand]() mutable {
    {
      std::lock_guard lock(job->mu);
      if (job->stop) job->phase = Job::Phase::finished;
    }
    if (job->phase != Job::Phase::finished) {
      // A pinned connection holds the client's transaction: it is used as it is, never validated
      // and replaced (a fresh connection would run the rest of the transaction in autocommit). If
      // it died, the statement fails and the lane is marked aborted below.
      if (!job->lease.pinned()) job->error = job->lease.prepare_for(job->client);
      if (!job->error) {
        auto backend = job->lease.pool().config().url.backend;
        // BEGIN/COMMIT/ROLLBACK leave nothing behind (MySQL's SET TRANSACTION covers only the
        // transaction that starts right after it).
        if (job->statements.empty() && may_change_session_state(backend, job->req.query.sql))
          job->lease.mark_dirty();
      }
      if (!job->error) {
        auto& conn = job->lease.conn();
        bool go;
        {
          std::lock_guard lock(job->mu);
          go = !job->stop;
          if (go) {
            job->phase = Job::Phase::running;
            job->canceller = conn.canceller();
            job->sent = true;
          }
        }
        if (go) {
          if (job->statements.empty()) {
            job->error = conn.execute(job->req.query.sql, job->req.query.params, job->sink, job->result);
            if (!job->error) job->sink.flush();
          } else {
            for (const auto& sql : job->statements) {
              {
                std::lock_guard lock(job->mu);
                if (job->stop) break;
              }
              job->error = conn.execute(sql, {}, job->sink, job->result);
              if (job->error) break;
            }
          }
        }
        job->tx = conn.tx_status();
      }
      std::lock_guard lock(job->mu);
      if (!job->error && job->stop && job->phase != Job::Phase::running) {
        // Stopped before it started: nothing reached the backend.
        job->error = BackendError{};
        job->error->interrupted = true;
      }
      job->phase = Job::Phase::finished;
      if (job->abandoned) job->lease.mark_broken();
    } else {
      job->error = BackendError{};
      job->error->interrupted = true;
    }
    // Hand the job back to the strand: its last reference must not drop on a worker.
    asio::post(strand, [job = std::move(job)] { job->done_signal.cancel(); });
  });

  for (;;) {
    boost::system::error_code ec;
    co_await job->done_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::lock_guard lock(job->mu);
    if (job->phase == Job::Phase::finished || job->abandoned) break;
    job->done_signal.expires_at(asio::steady_timer::time_point::max());
  }
  job->deadline.cancel();
  s->jobs.erase(id);
  s->server.counters().queries++;
  stats->queries++;
  stats->bytes_out += job->sink.bytes();
  // Latency as the client sees it from the broker: connection wait plus execution.
  stats->latency.observe(std::chrono::steady_clock::now() - started);

  bool abandoned, sent;
  std::optional<ErrorCode> stop;
  {
    std::lock_guard lock(job->mu);
    abandoned = job->abandoned;
    sent = job->sent;
    stop = job->stop;
  }
  auto stop_message = [&](ErrorCode why) {
    return why == ErrorCode::timeout
               ? "statement timeout of " + std::to_string(timeout.count()) + " ms exceeded on bind " + bind
               : "cancelled on request (bind " + bind + ")";
  };

  if (abandoned) {
    // The worker still owns the lease and writes the connection off when the driver returns.
    ErrorInfo info;
    info.code = stop.value_or(ErrorCode::timeout);
    info.message = stop_message(info.code) + "; the backend did not respond to the cancel";
    info.bind = bind;
    info.may_have_executed = sent;
    if (was_pinned || kind == Kind::begin) {
      lane.tx_aborted = true;
      lane.abort_reason = "its backend connection stopped responding";
    }
    if (!s->closing) s->send_error(id, std::move(info));
    co_return;
  }

  bool broken = job->error && job->error->connection_broken;
  if (broken) job->lease.mark_broken();
  // A ROLLBACK whose connection died has done its job: a dead session holds no transaction.
  const bool ends_tx = kind == Kind::rollback || kind == Kind::abort_idle_tx ||
                       (kind == Kind::query && is_transaction_rollback(job->req.query.sql));
  if (was_pinned && broken && ends_tx) job->error.reset();
  bool in_tx = !broken && (job->tx == TxStatus::in_tx || job->tx == TxStatus::failed_tx);
  lane.failed_tx = in_tx && job->tx == TxStatus::failed_tx;
  if (in_tx) {
    job->lease.set_pinned(true);
    lane.pinned = std::move(job->lease);
  } else {
    job->lease = Lease();  // back to the pool now, before the client even reads the reply
  }
  {
    std::int64_t pinned = 0;
    for (const auto& [k, l] : s->lanes) pinned += l.pinned ? 1 : 0;
    s->info->pinned = pinned;
  }
  if (was_pinned && broken && !ends_tx) {
    lane.tx_aborted = true;
    lane.abort_reason = "its backend connection was lost: " + job->error->message;
    spdlog::warn("client #{} bind {}: transaction lost with its backend connection: {}", s->id, bind,
                 job->error->message);
  } else if (was_pinned && !in_tx && job->error && kind != Kind::commit && kind != Kind::rollback &&
             kind != Kind::abort_idle_tx) {
    // The backend ended the transaction because of an error (MySQL rolls the whole transaction
    // back on a deadlock or a lock wait timeout): what the client sends next must not run in
    // autocommit as if it were still inside it.
    lane.tx_aborted = true;
    lane.abort_reason = "the backend rolled it back after an error: " + job->error->message;
  }
  if (kind == Kind::abort_idle_tx) {
    lane.tx_aborted = true;
    lane.abort_reason = !job->req.abort_reason.empty()
                            ? job->req.abort_reason
                            : "idle in transaction for longer than " +
                                  std::to_string(pool.config().idle_in_transaction_timeout.count()) + " ms";
    spdlog::warn("client #{} bind {}: transaction rolled back: {}", s->id, bind, lane.abort_reason);
    co_return;
  }
  if (s->closing) co_return;

  if (job->sink.too_big()) {
    s->send_error(id, ErrorCode::bad_request,
                  "a result row is larger than max_frame (" + std::to_string(s->limits.max_frame) + " bytes)",
                  bind);
  } else if (job->error) {
    auto& e = *job->error;
    ErrorInfo info;
    info.bind = bind;
    if (e.interrupted && stop) {
      info.code = *stop;
      info.message = stop_message(*stop);
      if (*stop == ErrorCode::timeout) info.may_have_executed = false;
    } else {
      info.code = e.code;
      info.message = e.message;
      info.sqlstate = e.sqlstate;
      info.number = e.number;
      if (was_pinned && broken) {
        info.code = ErrorCode::backend_unavailable;
        info.message = "the backend connection holding the transaction on bind " + bind +
                       " was lost (" + e.message + "); the transaction is rolled back; send ROLLBACK";
      }
      if (info.code == ErrorCode::backend_unavailable) info.may_have_executed = sent;
    }
    s->send_error(id, std::move(info));
  } else if (!job->sink.client_gone()) {
    protocol::Complete done;
    done.affected = kind == Kind::query ? job->result.affected : 0;
    done.row_count = job->result.row_count;
    done.last_insert_id = job->result.last_insert_id;
    done.in_transaction = in_tx;
    s->outbox.push(protocol::encode_complete(id, done));
  }
}

template <class Socket>
void arm_idle_tx_timer(const SessionPtr<Socket>& s, const std::string& key, Lane& lane);

template <class Socket>
asio::awaitable<void> run_lane(SessionPtr<Socket> s, std::string key) {
  Lane& lane = s->lanes.at(key);  // std::map nodes are stable
  while (!lane.queue.empty() && !s->closing) {
    Request req = std::move(lane.queue.front());
    lane.queue.pop_front();
    const std::uint32_t id = req.id;
    const bool internal = req.kind == Kind::abort_idle_tx;
    try {
      co_await execute(s, lane, std::move(req));
    } catch (const std::exception& e) {
      s->jobs.erase(id);
      s->send_error(id, ErrorCode::internal, std::string("internal error: ") + e.what(), key);
    }
    if (!internal) {
      --s->in_flight;
      s->info->in_flight = s->in_flight;
    }
    if (s->draining && s->in_flight == 0) s->finish("server shutting down");
  }
  for (const auto& r : lane.queue)
    if (r.kind != Kind::abort_idle_tx) --s->in_flight;
  lane.queue.clear();
  lane.running = false;
  if (!s->closing) arm_idle_tx_timer(s, key, lane);
  if (--s->active_lanes == 0) s->lanes_idle.cancel();
}

template <class Socket>
void start_lane(const SessionPtr<Socket>& s, const std::string& key, Lane& lane) {
  ++lane.idle_epoch;  // activity: any armed idle-in-transaction timer is now stale
  lane.idle_tx_timer.cancel();
  if (lane.running) return;
  lane.running = true;
  ++s->active_lanes;
  asio::co_spawn(s->socket.get_executor(), run_lane(s, key), asio::detached);
}

template <class Socket>
void arm_idle_tx_timer(const SessionPtr<Socket>& s, const std::string& key, Lane& lane) {
  if (!lane.pinned) return;
  auto limit = lane.pinned.pool().config().idle_in_transaction_timeout;
  if (limit.count() <= 0) return;
  auto epoch = ++lane.idle_epoch;
  lane.idle_tx_timer.expires_after(limit);
  lane.idle_tx_timer.async_wait([s, key, epoch](boost::system::error_code ec) {
    if (ec || s->closing) return;
    auto it = s->lanes.find(key);
    if (it == s->lanes.end()) return;
    Lane& lane = it->second;
    if (lane.idle_epoch != epoch || lane.running || !lane.pinned) return;
    Request r;
    r.kind = Kind::abort_idle_tx;
    r.bind = key;
    r.pool = s->server.routes()->pools.count(key) ? s->server.routes()->pools.at(key) : nullptr;
    if (!r.pool) return;
    lane.queue.push_front(std::move(r));
    start_lane(s, key, lane);
  });
}

template <class Socket>
asio::awaitable<void> run_writer(SessionPtr<Socket> s) {
  std::vector<std::string> frames;
  std::vector<asio::const_buffer> bufs;
  while (co_await s->outbox.take(frames)) {
    bufs.clear();
    std::size_t total = 0;
    for (auto& f : frames) {
      bufs.push_back(asio::buffer(f));
      total += f.size();
    }
    boost::system::error_code ec;
    // Each write must make progress within write_timeout: a client that stops reading is cut off
    // (and its requests stopped, its connections returned) instead of holding them forever.
    std::size_t done = 0;
    while (done < total && !ec) {
      const auto epoch = ++s->write_epoch;
      s->write_deadline.expires_after(s->limits.write_timeout);
      s->write_deadline.async_wait([s, epoch](boost::system::error_code tec) {
        if (tec || epoch != s->write_epoch) return;
        s->outbox.abort();
        s->close("did not read its replies for " + std::to_string(s->limits.write_timeout.count()) +
                 " ms (limits.write_timeout)");
      });
      // Skip what is already written.
      std::vector<asio::const_buffer> rest;
      std::size_t skip = done;
      for (const auto& b : bufs) {
        if (skip >= b.size()) {
          skip -= b.size();
          continue;
        }
        rest.push_back(asio::buffer(static_cast<const char*>(b.data()) + skip, b.size() - skip));
        skip = 0;
      }
      const std::size_t n =
          co_await s->socket.async_write_some(rest, asio::redirect_error(asio::use_awaitable, ec));
      ++s->write_epoch;
      s->write_deadline.cancel();
      done += n;
    }
    s->outbox.written(total + frames.size() * Outbox::kFrameOverhead);
    s->reader_wake.cancel();  // the reader may be waiting for room in the outbox
    if (ec) {
      s->outbox.abort();
      s->close("write failed: " + ec.message());
      break;
    }
  }
  s->writer_running = false;
  s->writer_done.cancel();
  s->reader_wake.cancel();
}

// Queues a request on its bind's lane (QUERY, BEGIN, COMMIT, ROLLBACK).
template <class Socket>
void enqueue(const SessionPtr<Socket>& s, Request req, const std::optional<std::string>& wanted) {
  s->info->requests++;
  if (s->draining) {
    s->send_error(req.id, ErrorCode::shutting_down, "the server is shutting down");
    return;
  }
  auto routes = s->server.routes();
  std::string key;
  auto pool = routes->resolve(wanted, key);
  if (!pool) {
    // A bind removed by a reload still serves the transaction this client has open on it.
    auto it = s->lanes.find(key);
    if (it != s->lanes.end() && it->second.pinned) pool = it->second.pinned.pool().shared_from_this();
    // A transaction lost on it is still answered (TX_ABORTED until ROLLBACK), without a pool.
    if (it != s->lanes.end() && it->second.tx_aborted) {
      ++s->in_flight;
      s->info->in_flight = s->in_flight;
      req.bind = key;
      it->second.queue.push_back(std::move(req));
      start_lane(s, key, it->second);
      return;
    }
  }
  if (!pool) {
    s->send_error(req.id, ErrorCode::unknown_bind, "unknown bind \"" + key + "\"", key);
    return;
  }
  if (s->in_flight >= static_cast<int>(s->limits.max_in_flight)) {
    s->send_error(req.id, ErrorCode::busy,
                  "too many requests in flight on this connection (limit " +
                      std::to_string(s->limits.max_in_flight) + ")",
                  key);
    return;
  }
  ++s->in_flight;
  s->info->in_flight = s->in_flight;
  req.bind = key;
  req.pool = std::move(pool);
  Lane& lane = s->lane(key);
  lane.queue.push_back(std::move(req));
  start_lane(s, key, lane);
}

template <class Socket>
void handle_cancel(const SessionPtr<Socket>& s, std::uint32_t id, std::uint32_t target) {
  for (auto& [key, lane] : s->lanes) {
    for (auto it = lane.queue.begin(); it != lane.queue.end(); ++it) {
      if (it->id != target || it->kind == Kind::abort_idle_tx) continue;
      lane.queue.erase(it);
      --s->in_flight;
      s->send_error(target, ErrorCode::cancelled, "cancelled on request before it ran", key);
      s->send_complete(id, 1, false);
      return;
    }
  }
  auto it = s->jobs.find(target);
  bool stopping = it != s->jobs.end() && stop_job(it->second, ErrorCode::cancelled);
  s->send_complete(id, stopping ? 1 : 0, false);
}

// Returns a close reason, or "" to keep going.
template <class Socket>
std::string handle_frame(const SessionPtr<Socket>& s, FrameDecoder& dec, const Frame& f) {
  std::uint32_t id = f.header.request_id;
  std::string why;
  if (!s->hello_done) {
    protocol::Hello hello;
    if (f.type() != FrameType::hello) {
      s->send_error(0, ErrorCode::protocol_error, "expected HELLO as the first frame");
      return "protocol error: first frame was not HELLO";
    }
    if (!protocol::decode_hello(f.body, hello, why)) {
      s->send_error(0, ErrorCode::protocol_error, "bad HELLO: " + why);
      return "protocol error: bad HELLO: " + why;
    }
    bool ok = false;
    for (auto v : hello.versions) ok |= v == protocol::kProtocolVersion;
    if (!ok) {
      s->send_error(0, ErrorCode::unsupported_version, "this server speaks protocol version 1 only");
      return "no shared protocol version";
    }
    s->hello_done = true;
    s->deadline.cancel();
    dec.set_max_body(s->limits.max_frame);
    auto routes = s->server.routes();
    s->outbox.push(protocol::encode_hello_ok(protocol::HelloOk{
        protocol::kProtocolVersion, std::string(kServerName), s->limits.max_frame,
        s->limits.batch_rows, routes->config->default_bind}));
    spdlog::debug("client #{}: handshake done ({})", s->id, hello.client);
    return {};
  }
  spdlog::trace("client #{} request {} frame type 0x{:02x} ({} bytes)", s->id, id, f.header.type, f.body.size());
  switch (f.type()) {
    case FrameType::query: {
      Request r;
      r.id = id;
      if (!protocol::decode_query(f.body, r.query, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad QUERY: " + why);
        break;
      }
      auto wanted = r.query.bind;
      enqueue(s, std::move(r), wanted);
      break;
    }
    case FrameType::begin: {
      Request r;
      r.id = id;
      r.kind = Kind::begin;
      if (!protocol::decode_begin(f.body, r.begin, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad BEGIN: " + why);
        break;
      }
      auto wanted = r.begin.bind;
      enqueue(s, std::move(r), wanted);
      break;
    }
    case FrameType::commit:
    case FrameType::rollback: {
      Request r;
      r.id = id;
      r.kind = f.type() == FrameType::commit ? Kind::commit : Kind::rollback;
      std::optional<std::string> wanted;
      if (!protocol::decode_end(f.body, wanted, why)) {
        s->send_error(id, ErrorCode::bad_request,
                      std::string(f.type() == FrameType::commit ? "bad COMMIT: " : "bad ROLLBACK: ") + why);
        break;
      }
      enqueue(s, std::move(r), wanted);
      break;
    }
    case FrameType::cancel: {
      std::uint32_t target = 0;
      if (!protocol::decode_cancel(f.body, target, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad CANCEL: " + why);
        break;
      }
      handle_cancel(s, id, target);
      break;
    }
    case FrameType::admin: {
      protocol::AdminRequest req;
      if (!protocol::decode_admin(f.body, req, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad ADMIN: " + why);
        break;
      }
      if (!s->local_peer) {
        s->send_error(id, ErrorCode::bad_request,
                      "admin commands are accepted only over the Unix socket or loopback TCP");
        break;
      }
      spdlog::info("client #{}: admin {}{}", s->id, req.command, req.bind ? " " + *req.bind : "");
      auto result = s->server.admin(req);
      if (!result.ok) {
        s->send_error(id, result.code, result.error, req.bind);
        break;
      }
      s->outbox.push(protocol::encode_table(id, result.table));
      break;
    }
    case FrameType::ping:
      if (!protocol::decode_empty(f.body, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad PING: " + why);
        break;
      }
      s->outbox.push(protocol::encode_empty(FrameType::pong, id));
      break;
    case FrameType::list_binds: {
      if (!protocol::decode_empty(f.body, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad LIST_BINDS: " + why);
        break;
      }
      auto routes = s->server.routes();
      std::vector<protocol::BindInfo> list;
      for (const auto& [key, bind] : routes->config->binds) {
        list.push_back({key, std::string(backend_name(bind.url.backend)),
                        bind.url.sqlite_memory ? ":memory:" : bind.url.database,
                        key == routes->config->default_bind});
      }
      s->outbox.push(protocol::encode_binds(id, list));
      break;
    }
    case FrameType::hello:
      s->send_error(id, ErrorCode::bad_request, "HELLO sent twice");
      break;
    default:
      s->send_error(id, ErrorCode::unknown_frame_type,
                    "unknown frame type 0x" + fmt::format("{:02x}", f.header.type));
  }
  return {};
}

template <class Socket>
asio::awaitable<std::string> read_loop(const SessionPtr<Socket>& s) {
  FrameDecoder dec(protocol::kPreHandshakeMaxFrame);
  std::array<char, 16 * 1024> buf;
  Frame f;
  bool partial = false;  // a frame has begun to arrive and its read deadline is armed
  for (;;) {
    // Backpressure: while the client's unread replies fill its buffer, take no more requests from
    // it. The writer wakes us as it drains; write_timeout cuts a client that never reads.
    while (s->outbox.bytes() >= s->limits.client_buffer && s->writer_running && s->close_reason.empty()) {
      s->reader_wake.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code wec;
      co_await s->reader_wake.async_wait(asio::redirect_error(asio::use_awaitable, wec));
    }
    if (!s->close_reason.empty()) co_return s->close_reason;
    boost::system::error_code ec;
    std::size_t n = co_await s->socket.async_read_some(asio::buffer(buf),
                                                       asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!s->close_reason.empty()) co_return s->close_reason;
      if (ec == asio::error::eof) co_return "client closed the connection";
      co_return "read failed: " + ec.message();
    }
    dec.feed(buf.data(), n);
    bool completed = false;
    for (;;) {
      auto st = dec.next(f);
      if (st == FrameDecoder::Status::need_more) break;
      if (st == FrameDecoder::Status::error) {
        s->send_error(0, ErrorCode::protocol_error, dec.error());
        co_return "protocol error: " + dec.error();
      }
      completed = true;
      if (auto reason = handle_frame(s, dec, f); !reason.empty()) co_return reason;
    }
    // Every frame that has begun must arrive in full within read_timeout (after HELLO; before it,
    // the handshake deadline covers everything).
    if (dec.buffered() == 0) {
      if (partial) s->frame_deadline.cancel();
      partial = false;
    } else if (s->hello_done && (!partial || completed)) {
      partial = true;
      s->frame_deadline.expires_after(s->limits.read_timeout);
      s->frame_deadline.async_wait([s](boost::system::error_code ec2) {
        if (!ec2) s->close("a frame did not arrive in full within " + std::to_string(s->limits.read_timeout.count()) +
                           " ms (limits.read_timeout)");
      });
    }
  }
}

template <class Socket>
asio::awaitable<void> session_main(Server& server, Socket socket, std::string peer, bool local) {
  auto s = std::make_shared<Session<Socket>>(server, std::move(socket), server.routes());
  s->peer = std::move(peer);
  s->local_peer = local;
  auto ex = s->socket.get_executor();
  s->info->peer = s->peer;
  s->id = server.add_session(
      [s, ex](bool hard) {
        if (hard) {
          // Unblock workers streaming to this client at once, even if the strand never runs again.
          s->outbox.close();
          asio::post(ex, [s] {
            s->closing = true;
            s->close("server shutting down (grace period over)");
          });
          return;
        }
        asio::post(ex, [s] {
          s->draining = true;
          if (s->in_flight == 0) s->finish("server shutting down");
        });
      },
      s->info,
      [s, ex](std::shared_ptr<Pool> pool, std::string reason) {
        asio::post(ex, [s, pool = std::move(pool), reason = std::move(reason)] {
          if (s->closing) return;
          for (auto& [key, lane] : s->lanes) {
            if (!lane.pinned || &lane.pinned.pool() != pool.get()) continue;
            Request r;
            r.kind = Kind::abort_idle_tx;
            r.bind = key;
            r.pool = pool;
            r.abort_reason = reason;
            lane.queue.push_front(std::move(r));
            start_lane(s, key, lane);
          }
          // A statement still running inside such a transaction is stopped first.
          for (auto& [id, job] : s->jobs)
            if (job->req.pool == pool && job->lease.pinned()) stop_job(job, ErrorCode::cancelled);
        });
      });
  server.counters().clients_total++;
  server.counters().clients_now++;
  spdlog::info("client #{} connected from {}", s->id, s->peer);

  s->writer_running = true;
  s->writer_done.expires_at(asio::steady_timer::time_point::max());
  asio::co_spawn(ex, run_writer(s), asio::detached);

  s->deadline.expires_after(kHandshakeTimeout);
  s->deadline.async_wait([s](boost::system::error_code ec) {
    if (!ec && !s->hello_done) s->close("no HELLO within 10 s");
  });

  std::string reason;
  try {
    reason = co_await read_loop(s);
  } catch (const std::exception& e) {
    reason = std::string("internal error: ") + e.what();
  }

  // Stop taking requests; cancel what runs (a client that left wants nothing more from it); let
  // queued frames (e.g. a final ERROR) drain; wait for the lanes.
  s->closing = true;
  s->outbox.close();
  for (auto& [id, job] : s->jobs) stop_job(job, ErrorCode::cancelled);
  for (auto& [key, lane] : s->lanes) lane.idle_tx_timer.cancel();
  s->frame_deadline.cancel();
  if (auto n = s->log_limit.pending()) spdlog::warn("client #{}: {} log lines suppressed (rate limit)", s->id, n);
  // A client that does not read cannot hold the session open past the drain deadline.
  s->deadline.cancel();
  s->deadline.expires_after(kDrainTimeout);
  s->deadline.async_wait([s](boost::system::error_code ec) {
    if (!ec) s->close("did not read its last replies");
  });
  while (s->active_lanes > 0) {
    s->lanes_idle.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await s->lanes_idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  // Releasing pinned leases makes the pool roll their transactions back before reuse.
  s->lanes.clear();
  while (s->writer_running) {
    boost::system::error_code ec;
    co_await s->writer_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  s->deadline.cancel();
  boost::system::error_code ec;
  s->socket.shutdown(Socket::shutdown_both, ec);
  s->socket.close(ec);
  server.counters().clients_now--;
  server.remove_session(s->id);
  spdlog::info("client #{} disconnected: {}", s->id, reason);
}

}  // namespace

// Plain functions, not coroutines: by-value arguments of a co_await expression are fragile under
// GCC 12 (a closure temporary was seen destroyed twice), so the socket goes straight into
// session_main's frame.
asio::awaitable<void> run_session(Server& server, asio::ip::tcp::socket socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  std::string peer = ec ? "tcp:?" : "tcp:" + ep.address().to_string() + ":" + std::to_string(ep.port());
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  bool local = !ec && ep.address().is_loopback();
  return session_main(server, std::move(socket), std::move(peer), local);
}

asio::awaitable<void> run_session(Server& server, asio::local::stream_protocol::socket socket) {
  return session_main(server, std::move(socket), std::string("unix socket"), true);
}

}  // namespace binds::server
