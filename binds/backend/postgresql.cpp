// The PostgreSQL backend on the project's own wire codec (protocol/pg): statements go out through
// the extended protocol, pipelined, with a per-connection prepared-statement cache; results stream
// into the sink as DataRows arrive, converted in place. Layers: pg_stream (bytes and message
// framing), pg_connect (session start-up, cancel requests), pg_types (values), pg_cache
// (statements), and here the interpretation of each statement's messages.
//
// Threading: as backend.hpp says. The socket belongs to the connect() executor's context; every
// operation completes on the executor of the coroutine awaiting it. Only cancel() may run on
// another thread: it reads atomics and immutable members, and its request runs on a strand of its
// own holding copies, so it outlives the connection safely.

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

#include "binds/backend/backend.hpp"
#include "binds/backend/pg_cache.hpp"
#include "binds/backend/pg_connect.hpp"
#include "binds/backend/pg_connection.hpp"
#include "binds/backend/pg_stream.hpp"
#include "protocol/pg/sql_scan.hpp"
#include "binds/backend/pg_types.hpp"
#include "protocol/pg/backend.hpp"
#include "protocol/pg/frontend.hpp"

// GCC 12 pairs Asio 1.74's recycling allocator for coroutine frames (allocated through
// thread_info_base, freed by awaitable_frame_base's sized delete) as mismatched: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace binds::backend {
namespace pg {
namespace {

constexpr int kMaxPipeline = 64;
// Past the first statement, one write carries at most this much: the server reads our input only
// between statements, so a big write behind a statement whose result fills the socket could
// deadlock both sides. Socket buffers (and PostgreSQL's) hold this much without anyone reading.
constexpr std::size_t kMaxPipelinedWrite = 64 * 1024;
// Messages other than DataRow (RowDescription, errors, notices) are held whole up to this size.
constexpr std::size_t kMaxOtherMessage = 16u << 20;
// Buffers grown past this by one big row or statement are given back afterwards.
constexpr std::size_t kKeepBuffer = 1u << 20;
constexpr auto kCancelTimeout = std::chrono::milliseconds(3000);
constexpr auto kCloseTimeout = std::chrono::milliseconds(1000);
constexpr std::string_view kQueryCanceled = "57014";
// A FIFO that keeps its storage: std::deque allocates and frees blocks as it slides.
template <class T>
class Ring {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  // Precondition: i < size(). References are invalidated by push_back.
  T& operator[](std::size_t i) { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  T& front() { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  void pop_back() {
    back() = T{};
    --size_;
  }
  void push_back(T v) {
    if (size_ == buf_.size()) grow();
    ++size_;
    (*this)[size_ - 1] = std::move(v);
  }
  void pop_front() {
    buf_[head_] = T{};
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }

 private:
  void grow() {
    std::vector<T> bigger(std::max<std::size_t>(16, buf_.size() * 2));
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move((*this)[i]);
    buf_.swap(bigger);
    head_ = 0;
  }
  std::vector<T> buf_;  // power-of-two size
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// A statement (or reset, or ping) sent and not yet received.
struct Pending {
  enum class Kind : std::uint8_t { statement, reset, ping };
  Kind kind = Kind::statement;
  CachedStatement* entry = nullptr;  // pinned while pending
  bool parse_named = false;          // its Parse creates `entry` on the server
  bool describe = false;             // Describe(portal) sent: RowDescription or NoData comes
  bool written = false;
  bool on_wire = false;              // counted in on_wire_
  bool chained = false;              // no Sync after it: the next item ends its segment
  std::size_t bytes = 0;             // its messages, kept in out_ until it is answered
  std::uint64_t cancel_stamp = 0;    // cancel_seq_ when it was written
  std::optional<BackendError> local_error;  // refused before reaching the wire
};

// Per-receive state of the statement being read.
struct ReadState {
  std::span<const protocol::Column> columns;
  bool columns_known = false;
  bool bound = false;       // BindComplete seen: later errors are the statement's own
  bool completed = false;   // CommandComplete, EmptyQueryResponse or ErrorResponse seen
  bool discarding = false;  // rows are dropped (sink stopped, row too large, COPY)
  bool stopped = false;
  bool cancel_sent = false;
  bool stale_plan = false;  // Bind of a cached statement failed: gone (26000) or stale (0A000)
  bool retried = false;
  std::size_t max_row = SIZE_MAX;
};

enum class Step : std::uint8_t { more, done, broken, copy_in, retry };

std::string read_error_text(const error_code& ec) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::ssl::error::stream_truncated) {
    return "server closed the connection unexpectedly";
  }
  return ec.message();
}

TxStatus tx_of(pgwire::TransactionStatus s) {
  switch (s) {
    case pgwire::TransactionStatus::idle: return TxStatus::idle;
    case pgwire::TransactionStatus::in_transaction: return TxStatus::in_tx;
    case pgwire::TransactionStatus::failed: return TxStatus::failed_tx;
  }
  return TxStatus::unknown;
}

BackendError make_error(protocol::ErrorCode code, std::string message, std::string sqlstate = {}) {
  return BackendError{code, std::move(message), std::move(sqlstate), std::nullopt, false, false};
}

class PgConnection final : public Connection {
 public:
  explicit PgConnection(Session&& s)
      : transport_(std::move(s.transport)),
        reader_(std::move(s.reader)),
        target_(std::move(s.cancel)),
        tracker_(std::make_shared<CancelTracker>()),
        parameters_(std::move(s.parameters)),
        tx_(s.tx) {
    for (const auto& [name, value] : parameters_)
      if (name == "application_name") startup_app_ = app_now_ = value;
  }

  ~PgConnection() override {
    // Best effort and never blocking (a destructor cannot await): the server then logs a clean
    // disconnect instead of a reset. TLS would need a write operation; those just close.
    if (!broken_ && transport_.is_open() && !transport_.is_tls()) {
      static constexpr char kTerminate[5] = {'X', 0, 0, 0, 4};
      (void)::send(transport_.native_handle(), kTerminate, sizeof kTerminate, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    transport_.close();
  }

  Backend backend() const override { return Backend::postgresql; }
  int max_pipeline() const override { return kMaxPipeline; }
  int outstanding() const override { return static_cast<int>(pending_.size()); }

  void send(const Statement& statement) override;
  bool send_begin_chained(const Statement& begin) override;
  void send_reset() override;
  bool send_client_name(std::string_view name) override;
  std::int64_t backend_pid() const override { return target_.pid; }
  asio::awaitable<Outcome> receive(ResultSink& sink) override;
  void cancel() override;
  void abort() override;
  bool looks_alive() override;
  asio::awaitable<bool> ping() override;
  asio::awaitable<void> close() override;

  ConnectionStats stats() const {
    ConnectionStats s = stats_;
    s.cancels = cancels_.load();
    s.cached_statements = cache_.size();
    s.cache_capacity = cache_.capacity();
    s.cache_evictions = cache_.evictions();
    s.read_buffer_capacity = reader_.capacity();
    s.backend_pid = target_.pid;
    s.tls = transport_.is_tls();
    return s;
  }
  void set_cache_capacity(std::size_t n) { cache_.set_capacity(n); }

 private:
  void push(Pending&& p) {
    // A statement refused before the wire cannot end the segment of a BEGIN chained to it.
    if (p.local_error) unchain_last();
    pending_.push_back(std::move(p));
    ++unwritten_;
  }
  void pop();
  void unchain_last();
  std::size_t plan_write();
  asio::awaitable<void> wait_for_cancels();
  asio::awaitable<void> terminate();
  Step handle(const pgwire::Message& m, ReadState& st, ResultSink& sink, Outcome& out);
  void row_too_large(std::size_t size, ReadState& st, Outcome& out);
  void stop(ReadState& st, Outcome& out);
  void maybe_cancel_internally(ReadState& st);
  void note_parameter(const pgwire::Message& m, Outcome* out);
  Step protocol_error(const char* what);
  void set_broken(std::string message, std::string sqlstate = {});
  bool retry_bytes(std::string& again);
  bool drain_idle_messages();

  Transport transport_;
  Reader reader_;
  const CancelTarget target_;
  const std::shared_ptr<CancelTracker> tracker_;
  std::vector<std::pair<std::string, std::string>> parameters_;
  // application_name as the start-up packet set it (DISCARD ALL returns to it), and as the session
  // will have it once everything queued has run (PgBouncer's tracked parameters).
  std::string startup_app_, app_now_;
  TxStatus tx_;

  StatementCache cache_;
  ParamEncoder params_;
  RowConverter rows_;
  std::vector<protocol::Column> unnamed_columns_;
  // The messages of every pending item, in order: [out_head_, out_sent_) written and unanswered
  // (kept so that a statement can be sent again, see retry_bytes()), [out_sent_, end) unwritten.
  std::string out_;
  std::size_t out_head_ = 0;
  std::size_t out_sent_ = 0;
  Ring<Pending> pending_;
  std::size_t unwritten_ = 0;

  // Read by cancel() on any thread.
  std::atomic<int> on_wire_{0};
  std::atomic<std::uint64_t> cancel_seq_{0};
  std::atomic<std::uint64_t> cancels_{0};
  std::atomic<bool> closed_{false};

  bool broken_ = false;
  BackendError broken_error_;
  ConnectionStats stats_;
  bool chain_ = false;           // send(): leave out the Sync (send_begin_chained)
  bool segment_failed_ = false;  // a chained statement failed: the server skips to the next Sync
};

void PgConnection::send(const Statement& statement) {
  Pending p;
  if (broken_) {
    p.local_error = broken_error_;
    return push(std::move(p));
  }
  // Checked up front so that encoding below cannot fail half way through the cache's bookkeeping.
  if (statement.params.size() > 65535) {
    p.local_error = make_error(protocol::ErrorCode::bad_request,
                               "PostgreSQL takes at most 65535 parameters per statement");
    return push(std::move(p));
  }
  if (statement.sql.find('\0') != std::string_view::npos) {
    p.local_error = make_error(protocol::ErrorCode::bad_request, "the SQL text contains a NUL byte");
    return push(std::move(p));
  }
  // PostgreSQL text cannot hold U+0000; it would refuse the value, but a client is better told
  // which parameter and what to do (psycopg2 refuses it before sending, too).
  for (std::size_t i = 0; i < statement.params.size(); ++i) {
    const auto* text = std::get_if<std::string>(&statement.params[i]);
    if (text && text->find('\0') != std::string::npos) {
      p.local_error = make_error(protocol::ErrorCode::bad_request,
                                 "parameter " + std::to_string(i + 1) +
                                     ": PostgreSQL text cannot contain a NUL byte (send it as bytes)");
      return push(std::move(p));
    }
  }
  params_.encode(statement.params);
  const std::string_view key = cache_.make_key(statement.sql, params_.oids());
  const std::size_t start = out_.size();
  CachedStatement* e = cache_.find(key);
  // PostgreSQL accepts values for parameters the text never uses (their types are declared in
  // the Parse): a miscounted call must fail as it does on the other backends (PROTOCOL.md §6.1).
  const std::size_t placeholders =
      e ? e->placeholders : statement.params.empty() ? 0 : pgwire::highest_placeholder(statement.sql);
  if (statement.params.size() > placeholders) {
    p.local_error = placeholder_mismatch(placeholders, statement.params.size());
    return push(std::move(p));
  }
  std::string_view name;  // "" = the unnamed statement
  pgwire::Error err = pgwire::Error::ok;
  if (e == nullptr) {
    e = cache_.insert(key, [this](const CachedStatement& victim) {
      // Before this statement's Parse, in the same write: no round trip of its own.
      (void)pgwire::encode_close(out_, pgwire::ObjectKind::statement, victim.name);
      ++stats_.closes;
    });
    if (e) {
      p.parse_named = true;
      name = e->name;
      e->placeholders = placeholders;
    }
    p.describe = true;
    err = pgwire::encode_parse(out_, name, statement.sql, params_.oids());
    ++stats_.parses;
  } else if (e->state == CachedStatement::State::parsing) {
    // The same statement is queued ahead and its Parse may yet fail: this one parses its own.
    e = nullptr;
    p.describe = true;
    err = pgwire::encode_parse(out_, "", statement.sql, params_.oids());
    ++stats_.parses;
  } else {
    name = e->name;
    p.describe = e->state == CachedStatement::State::parsed;
  }
  if (e) {
    p.entry = e;
    cache_.pin(e);
  }
  if (err == pgwire::Error::ok) {
    err = pgwire::encode_bind(out_, "", name, params_.formats(), params_.values(), {});
  }
  if (err == pgwire::Error::ok && p.describe) {
    err = pgwire::encode_describe(out_, pgwire::ObjectKind::portal, "");
  }
  if (err == pgwire::Error::ok) err = pgwire::encode_execute(out_, "", 0);
  if (err == pgwire::Error::ok) {
    if (chain_) {
      p.chained = true;
    } else {
      pgwire::encode_sync(out_);
    }
    ++stats_.binds;
  } else {
    out_.resize(start);
    if (p.entry) {
      cache_.unpin(p.entry);
      if (p.parse_named) cache_.remove(p.entry);
    }
    p.entry = nullptr;
    p.parse_named = false;
    p.local_error = make_error(protocol::ErrorCode::bad_request,
                               "statement cannot be sent to PostgreSQL: " +
                                   std::string(pgwire::to_string(err)));
  }
  p.bytes = out_.size() - start;
  push(std::move(p));
}

bool PgConnection::send_begin_chained(const Statement& begin) {
  // Only what cannot be refused before the wire (a refused BEGIN would leave its follower to run).
  if (broken_ || !begin.params.empty() || begin.sql.find('\0') != std::string_view::npos) return false;
  chain_ = true;
  send(begin);
  chain_ = false;
  if (pending_.back().local_error) {
    pending_.pop_back();
    --unwritten_;
    return false;
  }
  return true;
}

void PgConnection::unchain_last() {
  if (pending_.empty() || !pending_.back().chained || pending_.back().written) return;
  // Nothing follows it: it ends its own segment after all. Its bytes are the last in out_.
  const std::size_t before = out_.size();
  pgwire::encode_sync(out_);
  pending_.back().bytes += out_.size() - before;
  pending_.back().chained = false;
}

void PgConnection::send_reset() {
  unchain_last();
  Pending p;
  p.kind = Pending::Kind::reset;
  if (broken_) {
    p.local_error = broken_error_;
    return push(std::move(p));
  }
  // DISCARD ALL drops every prepared statement; statements queued before it keep their (pinned)
  // entries, later ones parse afresh.
  cache_.clear();
  app_now_ = startup_app_;
  // A simple query in the same write as whatever follows: the reset costs no round trip of its own.
  const std::size_t start = out_.size();
  (void)pgwire::encode_query(out_, "DISCARD ALL");
  p.bytes = out_.size() - start;
  push(std::move(p));
}

void PgConnection::pop() {
  Pending& p = pending_.front();
  if (p.entry) cache_.unpin(p.entry);
  if (p.on_wire) on_wire_.fetch_sub(1);
  if (!p.written) --unwritten_;
  out_head_ += p.bytes;
  pending_.pop_front();
  if (pending_.empty()) {
    out_.clear();
    out_head_ = out_sent_ = 0;
  } else if (out_head_ > kMaxPipelinedWrite && out_head_ > out_.size() / 2) {
    // Drop answered bytes now and then, not at every answer: a big unwritten statement behind
    // a long pipeline would otherwise move once per answer.
    out_.erase(0, out_head_);
    out_sent_ -= out_head_;
    out_head_ = 0;
  }
}

std::size_t PgConnection::plan_write() {
  std::size_t cut = 0;
  std::size_t behind = 0;  // bytes behind a statement the server may be answering meanwhile
  const std::size_t first = pending_.size() - unwritten_;
  bool server_idle = on_wire_.load() == 0;
  const std::uint64_t stamp = cancel_seq_.load();
  std::size_t i = first;
  bool glued = false;  // the previous item is chained: the server answers it only at this one's Sync
  for (; i < pending_.size(); ++i) {
    Pending& p = pending_[i];
    if (!server_idle) {
      if (!glued && behind + p.bytes > kMaxPipelinedWrite) break;
      behind += p.bytes;
    }
    glued = p.chained;
    cut += p.bytes;
    p.written = true;
    p.cancel_stamp = stamp;
    if (p.bytes > 0 && !p.local_error) {
      p.on_wire = true;
      on_wire_.fetch_add(1);
    }
    // The server consumes the first statement whole before it answers anything, so only what
    // follows it is bounded.
    server_idle = false;
  }
  unwritten_ -= i - first;
  return cut;
}

asio::awaitable<void> PgConnection::wait_for_cancels() {
  // Rare (a cancel raced the end of its statement): poll rather than build a cross-thread signal.
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto until = std::chrono::steady_clock::now() + kCancelTimeout + std::chrono::milliseconds(500);
  while (tracker_->in_flight.load() > 0 && std::chrono::steady_clock::now() < until) {
    timer.expires_after(std::chrono::milliseconds(1));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void PgConnection::set_broken(std::string message, std::string sqlstate) {
  if (broken_) return;
  broken_ = true;
  broken_error_ = make_error(protocol::ErrorCode::backend_unavailable, std::move(message), std::move(sqlstate));
  broken_error_.connection_broken = true;
  closed_.store(true);
  transport_.close();
  // Nothing queued will be written now; receive() answers each pending item with the error.
  out_.clear();
  out_head_ = out_sent_ = 0;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    pending_[i].written = true;
    pending_[i].bytes = 0;
  }
  unwritten_ = 0;
}

Step PgConnection::protocol_error(const char* what) {
  set_broken(std::string("protocol error from the server: ") + what);
  return Step::broken;
}

bool PgConnection::send_client_name(std::string_view name) {
  // What PostgreSQL itself would keep of it (pg_clean_ascii, NAMEDATALEN): printable ASCII, 63
  // bytes; so an unchanged name compares equal to what the session reports and costs nothing.
  std::string clean;
  for (char c : name.substr(0, 63)) clean += (c >= 32 && c <= 126) ? c : '?';
  if (broken_ || clean == app_now_) return false;
  app_now_ = clean;
  // An E'' literal means the same whatever standard_conforming_strings says.
  std::string sql = "SET application_name = E'";
  for (char c : clean) {
    if (c == '\\' || c == '\'') sql += '\\';
    sql += c;
  }
  sql += "'";
  unchain_last();
  Pending p;
  // Answered like a reset: its ParameterStatus is the point, not session state to clean up.
  p.kind = Pending::Kind::reset;
  const std::size_t start = out_.size();
  (void)pgwire::encode_query(out_, sql);
  p.bytes = out_.size() - start;
  push(std::move(p));
  return true;
}

void PgConnection::note_parameter(const pgwire::Message& m, Outcome* out) {
  auto p = pgwire::decode_parameter_status(m);
  if (!p) return;
  if (p->name == "application_name") app_now_.assign(p->value);
  for (auto& [name, value] : parameters_) {
    if (name == p->name) {
      if (value == p->value) return;
      value.assign(p->value);
      if (out) out->session_state_changed = true;
      return;
    }
  }
  parameters_.emplace_back(std::string(p->name), std::string(p->value));
  if (out) out->session_state_changed = true;
}

void PgConnection::maybe_cancel_internally(ReadState& st) {
  // Only when this statement alone is at the server (a cancel must not reach the next one) and
  // outside a transaction block (a cancel would abort the client's transaction; there the rest
  // is read and dropped instead). wait_for_cancels() keeps it from outliving the statement.
  if (st.cancel_sent || st.completed || on_wire_.load() != 1 || tx_ != TxStatus::idle ||
      !target_.valid()) {
    return;
  }
  st.cancel_sent = true;
  cancels_.fetch_add(1);
  send_cancel(target_, tracker_, kCancelTimeout);
}

void PgConnection::row_too_large(std::size_t size, ReadState& st, Outcome& out) {
  out.row_too_large = true;
  if (!out.error) {
    out.error = make_error(protocol::ErrorCode::bad_request,
                           "a result row of " + std::to_string(size) +
                               " bytes is larger than the limit of " + std::to_string(st.max_row) +
                               " bytes");
  }
  st.discarding = true;
  maybe_cancel_internally(st);
}

void PgConnection::stop(ReadState& st, Outcome& out) {
  st.stopped = true;
  st.discarding = true;
  out.stopped = true;
  maybe_cancel_internally(st);
}

// The front statement again, for the unnamed statement: Parse from its cache key (parameter OIDs
// and SQL), Bind with the values of the Bind it was sent with (still in out_). Rare: allocates.
bool PgConnection::retry_bytes(std::string& again) {
  Pending& p = pending_.front();
  if (!p.entry) return false;
  const std::string_view key = p.entry->key;
  if (key.size() < 2) return false;
  const std::size_t n = (std::size_t{static_cast<unsigned char>(key[0])} << 8) | static_cast<unsigned char>(key[1]);
  if (key.size() < 2 + 4 * n) return false;
  std::vector<std::uint32_t> oids(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto* b = reinterpret_cast<const unsigned char*>(key.data() + 2 + 4 * i);
    oids[i] = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  }
  const std::string_view sql = key.substr(2 + 4 * n);
  std::string_view sent(out_.data() + out_head_, p.bytes);
  while (!sent.empty()) {
    pgwire::Message m;
    const auto r = pgwire::read_message(sent, pgwire::Phase::typed, pgwire::kDefaultMaxMessage, m);
    if (r.status != pgwire::ReadStatus::message) return false;
    sent.remove_prefix(m.raw.size());
    if (m.type != pgwire::frontend::bind) continue;
    auto bind = pgwire::decode_bind(m);
    if (!bind) return false;
    const std::vector<std::optional<std::string_view>> values(bind->params.begin(), bind->params.end());
    const std::vector<std::int16_t> formats(bind->param_formats.begin(), bind->param_formats.end());
    if (pgwire::encode_parse(again, "", sql, oids) != pgwire::Error::ok ||
        pgwire::encode_bind(again, "", "", formats, values, {}) != pgwire::Error::ok ||
        pgwire::encode_describe(again, pgwire::ObjectKind::portal, "") != pgwire::Error::ok ||
        pgwire::encode_execute(again, "", 0) != pgwire::Error::ok) {
      return false;
    }
    pgwire::encode_sync(again);
    ++stats_.parses;
    // From here on it is an unnamed statement; the entry (already removed) goes with its pin.
    cache_.unpin(p.entry);
    p.entry = nullptr;
    p.parse_named = false;
    p.describe = true;
    return true;
  }
  return false;
}

Step PgConnection::handle(const pgwire::Message& m, ReadState& st, ResultSink& sink, Outcome& out) {
  namespace be = pgwire::backend;
  Pending& p = pending_.front();
  switch (m.type) {
    case be::data_row: {
      if (st.discarding) return Step::more;
      if (m.raw.size() > st.max_row) {
        row_too_large(m.raw.size(), st, out);
        return Step::more;
      }
      if (!st.columns_known) return protocol_error("DataRow without RowDescription");
      auto row = pgwire::decode_data_row(m);
      if (!row) return protocol_error("malformed DataRow");
      auto values = rows_.convert(*row, st.columns);
      if (!values) return protocol_error("DataRow does not match its RowDescription");
      sink.row(*values);
      ++out.row_count;
      return Step::more;
    }
    case be::parse_complete:
      if (p.parse_named && p.entry->state == CachedStatement::State::parsing) {
        p.entry->state = CachedStatement::State::parsed;
      }
      return Step::more;
    case be::bind_complete:
      st.bound = true;
      if (p.entry && !p.describe && p.entry->returns_rows) {
        st.columns = p.entry->columns;
        st.columns_known = true;
        if (!st.discarding) sink.columns(st.columns);
      }
      return Step::more;
    case be::row_description: {
      auto rd = pgwire::decode_row_description(m);
      if (!rd) return protocol_error("malformed RowDescription");
      if (p.entry && p.describe) {
        p.entry->columns = columns_of(*rd);
        p.entry->returns_rows = true;
        p.entry->state = CachedStatement::State::described;
        st.columns = p.entry->columns;
      } else {
        unnamed_columns_ = columns_of(*rd);
        st.columns = unnamed_columns_;
      }
      st.columns_known = true;
      if (!st.discarding) sink.columns(st.columns);
      return Step::more;
    }
    case be::no_data:
      if (p.entry && p.describe) {
        p.entry->columns.clear();
        p.entry->returns_rows = false;
        p.entry->state = CachedStatement::State::described;
      }
      return Step::more;
    case be::command_complete: {
      auto cc = pgwire::decode_command_complete(m);
      if (!cc) return protocol_error("malformed CommandComplete");
      st.completed = true;
      out.affected = static_cast<std::int64_t>(pgwire::command_tag_rows(cc->tag).value_or(0));
      // The client's own DISCARD ALL / DEALLOCATE ALL dropped our statements too.
      if (p.kind == Pending::Kind::statement && (cc->tag == "DISCARD ALL" || cc->tag == "DEALLOCATE ALL")) {
        cache_.clear();
      }
      if (p.chained) {
        // No ReadyForQuery comes before the next item's Sync: a BEGIN that completed opened the
        // transaction.
        if (cc->tag == "BEGIN" || cc->tag == "START TRANSACTION") out.tx = TxStatus::in_tx;
        return Step::done;
      }
      return Step::more;
    }
    case be::empty_query_response:
      st.completed = true;
      return Step::more;
    case be::close_complete:
    case be::portal_suspended:
    case be::notice_response:
    case be::notification_response:
    case be::copy_done:
    case be::copy_data:  // COPY TO STDOUT, refused below; its data is dropped
      return Step::more;
    case be::parameter_status:
      // A reset's own ParameterStatus (values back to their start-up settings) is the point of it.
      note_parameter(m, p.kind == Pending::Kind::statement ? &out : nullptr);
      return Step::more;
    case be::error_response: {
      auto n = pgwire::decode_error_response(m);
      if (!n) return protocol_error("malformed ErrorResponse");
      const std::string_view severity = n->severity_nonlocalized.empty() ? n->severity : n->severity_nonlocalized;
      if (severity == "FATAL" || severity == "PANIC") {
        set_broken(std::string(n->message), std::string(n->sqlstate));
        return Step::broken;
      }
      st.completed = true;
      if (p.chained) {
        // The server now skips everything up to the next Sync: the item after this one is not run.
        segment_failed_ = true;
        if (p.parse_named && p.entry->state == CachedStatement::State::parsing) cache_.remove(p.entry);
        if (p.entry && !p.parse_named && !st.bound && (n->sqlstate == "26000" || n->sqlstate == "0A000")) {
          cache_.remove(p.entry);
        }
        out.error = make_error(protocol::ErrorCode::sql_error, n->message.empty() ? "unknown PostgreSQL error"
                                                                                  : std::string(n->message),
                               std::string(n->sqlstate));
        out.error->interrupted = n->sqlstate == kQueryCanceled && cancel_seq_.load() > p.cancel_stamp;
        return Step::done;
      }
      if (p.entry && !p.parse_named && !st.bound) {
        // Our statement is gone (the client deallocated it: then likely all of them) or its
        // result type changed under it ("cached plan must not change result type").
        if (n->sqlstate == "26000") {
          cache_.clear();
          st.stale_plan = true;
        } else if (n->sqlstate == "0A000") {
          cache_.remove(p.entry);
          st.stale_plan = true;
        }
      }
      // Once the sink stopped, the rest (our own cancel's 57014 included) is not the client's.
      if (st.stopped || out.error) return Step::more;
      BackendError e = make_error(protocol::ErrorCode::sql_error, std::string(n->message),
                                  std::string(n->sqlstate));
      if (n->message.empty()) e.message = "unknown PostgreSQL error";
      // A 57014 without a cancel of ours is the client's own statement_timeout.
      e.interrupted = n->sqlstate == kQueryCanceled && cancel_seq_.load() > p.cancel_stamp;
      out.error = std::move(e);
      return Step::more;
    }
    case be::copy_in_response:
      return Step::copy_in;
    case be::copy_out_response:
      if (!out.error) {
        out.error = make_error(protocol::ErrorCode::sql_error, "COPY is not supported through binds");
      }
      st.discarding = true;
      return Step::more;
    case be::copy_both_response:
      set_broken("replication (COPY BOTH) is not supported through binds");
      return Step::broken;
    case be::ready_for_query: {
      auto z = pgwire::decode_ready_for_query(m);
      if (!z) return protocol_error("malformed ReadyForQuery");
      if (p.chained) return protocol_error("ReadyForQuery before the end of a chained statement's segment");
      tx_ = tx_of(z->status);
      out.tx = tx_;
      // No ParseComplete: the Parse failed (or was skipped after an error), so nothing exists on
      // the server under that name.
      if (p.parse_named && p.entry->state == CachedStatement::State::parsing) cache_.remove(p.entry);
      // A stale cached plan is our doing, not the client's: outside a transaction (where the
      // failed Bind changed nothing) and with nothing pipelined behind (which would then run
      // first), the statement runs again, parsed afresh.
      if (st.stale_plan && !st.retried && tx_ == TxStatus::idle && on_wire_.load() == 1) return Step::retry;
      return Step::done;
    }
    default:
      return protocol_error("unexpected message type");
  }
}

asio::awaitable<Outcome> PgConnection::receive(ResultSink& sink) {
  Outcome out;
  out.tx = tx_;
  if (pending_.empty()) {
    out.error = make_error(protocol::ErrorCode::internal, "receive() without a statement sent");
    co_return out;
  }
  if (pending_.front().local_error) {
    out.error = std::move(pending_.front().local_error);
    pop();
    co_return out;
  }
  // Behind a chained BEGIN that failed, the server skipped this item: only the ReadyForQuery of
  // its Sync comes.
  const bool skipped = segment_failed_ && !broken_;

  error_code ec;
  if (!broken_ && unwritten_ > 0) {
    unchain_last();
    if (on_wire_.load() == 0 && tracker_->in_flight.load() > 0) co_await wait_for_cancels();
    const std::size_t cut = plan_write();
    if (cut > 0) {
      // One write for everything that may go now: the pipeline's whole point. The kernel nearly
      // always takes it at once; only the rest (if any) waits.
      const char* from = out_.data() + out_sent_;
      std::size_t done = transport_.write_now(asio::buffer(from, cut), ec);
      if (ec == asio::error::would_block) ec.clear();
      if (!ec && done < cut) {
        done += co_await transport_.write_all(asio::buffer(from + done, cut - done), ec);
      }
      ++stats_.writes;
      if (ec) {
        set_broken(read_error_text(ec));
      } else {
        out_sent_ += cut;
      }
    }
  }

  ReadState st;
  st.max_row = sink.max_row_bytes();
  while (!broken_) {
    pgwire::Message m;
    Reader::Header h;
    const auto f = reader_.next(m, h);
    if (f == Reader::Frame::message) {
      const Step step = handle(m, st, sink, out);
      if (step == Step::more) continue;
      if (step == Step::done || step == Step::broken) break;
      if (step == Step::retry) {
        std::string again;
        if (!retry_bytes(again)) break;
        const std::size_t max_row = st.max_row;
        st = ReadState{};
        st.max_row = max_row;
        st.retried = true;
        out = Outcome{};
        out.tx = tx_;
        std::size_t done = transport_.write_now(asio::buffer(again), ec);
        if (ec == asio::error::would_block) ec.clear();
        if (!ec && done < again.size()) {
          co_await transport_.write_all(asio::buffer(again.data() + done, again.size() - done), ec);
        }
        ++stats_.writes;
        if (ec) set_broken(read_error_text(ec));
        continue;
      }
      // COPY FROM STDIN: the server ignores Sync until the copy ends, so answer CopyFail + Sync.
      // With statements pipelined behind, their messages were already taken as copy data.
      if (on_wire_.load() > 1) {
        set_broken("COPY FROM STDIN is not supported through binds (statements pipelined behind it were lost)");
        break;
      }
      if (!out.error) {
        out.error = make_error(protocol::ErrorCode::sql_error, "COPY FROM STDIN is not supported through binds");
      }
      st.discarding = true;
      std::string fail;
      (void)pgwire::encode_copy_fail(fail, "COPY FROM STDIN is not supported through binds");
      pgwire::encode_sync(fail);
      co_await transport_.write_all(asio::buffer(fail), ec);
      if (ec) set_broken(read_error_text(ec));
      continue;
    }
    if (f == Reader::Frame::error) {
      protocol_error("invalid message length");
      break;
    }

    // An incomplete message: decide from its header whether to hold it, skip it, or give up.
    std::size_t hold = 0;
    if (h.total > 0) {
      if (h.type == pgwire::backend::data_row) {
        if (st.discarding || h.total > st.max_row) {
          if (!st.discarding) row_too_large(h.total, st, out);
          reader_.skip(h.total);
          continue;
        }
        hold = h.total;
      } else if (h.type == pgwire::backend::copy_data) {
        reader_.skip(h.total);
        continue;
      } else if (h.total > kMaxOtherMessage) {
        protocol_error("oversized message");
        break;
      } else {
        hold = h.total;
      }
    }
    // Backpressure once per socket read: a client that cannot keep up stalls this socket.
    if (!st.discarding && sink.full()) {
      if (!co_await sink.drained()) stop(st, out);
    }
    auto buf = reader_.prepare(hold);
    // Asio's own read, not readiness then a read of ours: it tries the socket at once unless the
    // kernel said the last read drained it (Transport reads TCP with a ShortReadBuffer), and
    // otherwise parks on the descriptor it already watches. One recv per answer; waiting for
    // readiness instead re-arms epoll (an epoll_ctl) each time, and a read of ours first mostly
    // finds nothing.
    const std::size_t n = co_await transport_.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec) {
      set_broken(read_error_text(ec));
      break;
    }
    reader_.commit(n);
  }

  if (broken_) {
    out.error = broken_error_;
    out.tx = TxStatus::unknown;
  } else if (skipped) {
    segment_failed_ = false;
    out = Outcome{};
    out.tx = tx_;
    out.error = make_error(protocol::ErrorCode::not_in_transaction,
                           "not run: the BEGIN sent ahead of it failed, so no transaction was open");
  }
  if (out.stopped) out.affected = out.row_count;
  pop();
  if (reader_.capacity() > Reader::kDefaultChunk) reader_.shrink();
  rows_.release_if_above(kKeepBuffer);
  if (out_.empty() && out_.capacity() > kKeepBuffer) std::string().swap(out_);
  co_return out;
}

void PgConnection::cancel() {
  if (closed_.load() || !target_.valid() || on_wire_.load() == 0) return;
  // One cancel request at a time: the engine repeats its cancel until the statement ends, and a
  // storm of cancel connections (each one a forked process on the server) helps nobody.
  if (tracker_->in_flight.load() > 0) return;
  // Counted before the request leaves, so every statement already written sees it.
  cancel_seq_.fetch_add(1);
  cancels_.fetch_add(1);
  send_cancel(target_, tracker_, kCancelTimeout);
}

void PgConnection::abort() { set_broken("connection aborted"); }

bool PgConnection::drain_idle_messages() {
  for (;;) {
    pgwire::Message m;
    Reader::Header h;
    const auto f = reader_.next(m, h);
    if (f == Reader::Frame::partial) return true;
    if (f == Reader::Frame::error) {
      protocol_error("invalid message length");
      return false;
    }
    switch (m.type) {
      case pgwire::backend::error_response: {
        // pg_terminate_backend, idle_session_timeout, idle_in_transaction_session_timeout, a
        // shutdown: a FATAL, then the server closes.
        auto n = pgwire::decode_error_response(m);
        set_broken(n ? std::string(n->message) : "error on an idle connection",
                   n ? std::string(n->sqlstate) : std::string());
        return false;
      }
      case pgwire::backend::notice_response:
      case pgwire::backend::notification_response:
        break;
      case pgwire::backend::parameter_status:
        note_parameter(m, nullptr);
        break;
      default:
        protocol_error("unexpected message on an idle connection");
        return false;
    }
  }
}

bool PgConnection::looks_alive() {
  if (broken_ || !transport_.is_open()) return false;
  if (!pending_.empty()) return true;  // in use: only receive() can tell
  if (!drain_idle_messages()) return false;
  // TLS included: a LISTENer's notifications arrive on idle sessions and must not look fatal.
  for (int i = 0; i < 16; ++i) {
    auto buf = reader_.prepare();
    error_code ec;
    const std::size_t n = transport_.read_available(asio::buffer(buf.data(), buf.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::interrupted) {
      if (n > 0) reader_.commit(n);
      return n > 0 ? drain_idle_messages() : true;
    }
    if (ec) {
      set_broken(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                     ? std::string("server closed the connection")
                     : "connection error: " + ec.message());
      return false;
    }
    reader_.commit(n);
    if (!drain_idle_messages()) return false;
  }
  return true;
}

asio::awaitable<bool> PgConnection::ping() {
  // Answered in order, so it only means something on an idle connection.
  if (broken_ || !pending_.empty()) co_return !broken_;
  Pending p;
  p.kind = Pending::Kind::ping;
  const std::size_t start = out_.size();
  pgwire::encode_sync(out_);
  p.bytes = out_.size() - start;
  push(std::move(p));
  DiscardSink sink;
  Outcome o = co_await receive(sink);
  co_return !o.error;
}

asio::awaitable<void> PgConnection::terminate() {
  Deadline deadline(co_await asio::this_coro::executor, kCloseTimeout, [this] { transport_.close(); });
  std::string msg;
  pgwire::encode_terminate(msg);
  error_code ec;
  co_await transport_.write_all(asio::buffer(msg), ec);
}

asio::awaitable<void> PgConnection::close() {
  if (!broken_ && transport_.is_open()) {
    // On a strand of our own so the deadline's timer never races the write.
    co_await asio::co_spawn(asio::make_strand(transport_.get_executor()), terminate(), asio::use_awaitable);
  }
  set_broken("connection closed");
}

}  // namespace

std::optional<ConnectionStats> stats(const Connection& c) {
  auto* pc = dynamic_cast<const PgConnection*>(&c);
  if (!pc) return std::nullopt;
  return pc->stats();
}

bool set_statement_cache_capacity(Connection& c, std::size_t capacity) {
  auto* pc = dynamic_cast<PgConnection*>(&c);
  if (!pc) return false;
  pc->set_cache_capacity(capacity);
  return true;
}

}  // namespace pg

namespace detail {

asio::awaitable<ConnectResult> connect_postgresql(asio::any_io_executor ex, const DatabaseUrl& url,
                                                  const ConnectOptions& options) {
  ConnectResult r;
  pg::Settings s;
  if (auto why = pg::parse_settings(url, options, s)) {
    r.error = pg::make_error(protocol::ErrorCode::backend_unavailable, "PostgreSQL settings: " + *why);
    co_return r;
  }
  // Establishment runs on a strand of its own: its deadline closes the socket from a timer, which
  // must not race the coroutine whatever executor the caller awaits on.
  pg::Established e =
      co_await asio::co_spawn(asio::make_strand(ex), pg::establish(ex, s), asio::use_awaitable);
  if (!e.session) {
    r.error = std::move(e.error);
    co_return r;
  }
  r.conn = std::make_unique<pg::PgConnection>(std::move(*e.session));
  co_return r;
}

}  // namespace detail
}  // namespace binds::backend
