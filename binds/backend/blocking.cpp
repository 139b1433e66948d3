#include "binds/backend/blocking.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

#include "binds/backend/driver.hpp"

namespace binds::backend {

// ---------------------------------------------------------------------------- JobThreads

struct JobThreads::Sleeper {
  std::condition_variable cv;
  bool woken = false;
};

namespace {
std::atomic<unsigned> io_cpus{0};
}  // namespace

void reserve_cpus_for_io(unsigned n) { io_cpus.store(n, std::memory_order_relaxed); }

JobThreads::JobThreads(std::size_t threads, std::size_t active) {
  threads = std::max<std::size_t>(1, threads);
  if (active == 0) {
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    const unsigned io = io_cpus.load(std::memory_order_relaxed);
    active = cpus > io ? cpus - io : 1;
  }
  active_ = std::min(active, threads);
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  monitor_ = std::thread([this] { monitor(); });
}

void JobThreads::wake_one_locked() {
  Sleeper* s = idle_.back();
  idle_.pop_back();
  s->woken = true;
  ++running_;
  s->cv.notify_one();
}

void JobThreads::push(std::unique_ptr<Job> job) {
  std::lock_guard lock(mu_);
  jobs_.push_back(std::move(job));
  if (!idle_.empty() && running_ < active_) {
    wake_one_locked();
  } else if (monitor_waiting_) {
    // Left to the running threads: the monitor watches that they get to it.
    monitor_waiting_ = false;
    monitor_cv_.notify_one();
  }
}

void JobThreads::loop() {
  std::unique_lock lock(mu_);
  ++running_;
  for (;;) {
    if (!jobs_.empty()) {
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      ++taken_;
      lock.unlock();
      job->run();
      job.reset();  // what it holds goes before the lock is taken again
      lock.lock();
      continue;
    }
    if (stopping_) {
      --running_;
      return;
    }
    Sleeper me;
    idle_.push_back(&me);
    --running_;
    me.cv.wait(lock, [&] { return me.woken || stopping_; });
    if (!me.woken) {
      std::erase(idle_, &me);
      ++running_;
    }
  }
}

void JobThreads::monitor() {
  std::unique_lock lock(mu_);
  std::uint64_t seen = taken_;
  while (!stopping_) {
    if (jobs_.empty()) {
      monitor_waiting_ = true;
      monitor_cv_.wait(lock, [&] { return !monitor_waiting_ || stopping_; });
      monitor_waiting_ = false;
      seen = taken_;
      continue;
    }
    monitor_cv_.wait_for(lock, std::chrono::milliseconds(1));
    if (!jobs_.empty() && taken_ == seen && !idle_.empty()) {
      ++stall_wakes_;
      wake_one_locked();
    }
    seen = taken_;
  }
}

std::uint64_t JobThreads::stall_wakes() const {
  std::lock_guard lock(mu_);
  return stall_wakes_;
}

std::size_t JobThreads::sleeping() const {
  std::lock_guard lock(mu_);
  return idle_.size();
}

void JobThreads::join() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (Sleeper* s : idle_) s->cv.notify_one();
    monitor_cv_.notify_one();
  }
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  if (monitor_.joinable()) monitor_.join();
}

namespace {

// Wakes a coroutine suspended in Exchange::wait(): its completion handler, run on the handler's
// own executor. Holds no I/O object, so an Exchange may die on any thread.
struct Waker {
  virtual ~Waker() = default;
  // On an I/O thread: runs the handler (inline when its executor allows).
  virtual void resume() = 0;
};

// Wake-ups that workers hand to one io_context, resumed in batches. A worker's completion posted
// on its own lands behind the event loop's own turn, so the I/O thread ran one epoll_wait per
// statement between them; here a burst of completions costs one post, and the wake-ups that come
// while it waits join it (profiled: about 0.7 epoll_wait per SQLite statement on the I/O thread).
class WakeInbox final : public asio::execution_context::service {
 public:
  using key_type = WakeInbox;
  static inline asio::execution_context::id id;

  explicit WakeInbox(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  // Any thread. `ex`: the waker's executor, where a new batch is posted (with one I/O thread, the
  // io_context's own; with a strand, the others are then dispatched from inside it, which posts).
  void push(std::unique_ptr<Waker> w, const asio::any_io_executor& ex) {
    bool post = false;
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(w));
      // After shutdown nothing runs: the handler waits to be destroyed with the context.
      post = !scheduled_ && !shut_;
      scheduled_ = true;
    }
    if (post) asio::post(ex, [this] { drain(); });
  }

 private:
  // The batch is the drain's own: with several I/O threads, the next drain (posted as soon as
  // scheduled_ is cleared) may run on another thread while this one still resumes its batch.
  void drain() {
    std::vector<std::unique_ptr<Waker>> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(items_);
      scheduled_ = false;
    }
    for (auto& w : batch) w->resume();
  }
  void shutdown() override {
    std::vector<std::unique_ptr<Waker>> dead;
    std::lock_guard lock(mu_);
    shut_ = true;
    dead.swap(items_);
  }

  std::mutex mu_;
  std::vector<std::unique_ptr<Waker>> items_;
  bool scheduled_ = false;
  bool shut_ = false;
};

template <class Handler>
struct HandlerWaker final : Waker {
  explicit HandlerWaker(Handler h)
      : handler(std::move(h)),
        executor(asio::get_associated_executor(handler)),
        inbox(&asio::use_service<WakeInbox>(asio::query(executor, asio::execution::context))) {}
  void resume() override { asio::dispatch(executor, std::move(handler)); }
  Handler handler;
  asio::any_io_executor executor;
  WakeInbox* inbox;
};

// Hands a waker to its context's inbox.
void wake(std::unique_ptr<Waker> w, WakeInbox& inbox, const asio::any_io_executor& ex) {
  inbox.push(std::move(w), ex);
}

// What a worker hands back to the awaiting coroutine: batches of rows, then the end.
struct Exchange {
  struct Batch {
    std::optional<std::vector<protocol::Column>> columns;
    std::vector<protocol::Row> rows;
  };

  // Worker side.
  // Rows held for the consumer before the worker waits: bounds memory per statement.
  static constexpr std::size_t kMaxQueuedBytes = 1 << 20;

  void push(Batch b, std::size_t bytes) {
    std::unique_lock lock(mu);
    queued_bytes += bytes;
    batches.push_back({std::move(b), bytes});
    wake_locked();
    space.wait(lock, [&] { return queued_bytes < kMaxQueuedBytes || stop || aborted; });
  }
  // The last batch (may be empty) and the end under one lock and one wake-up: a small result
  // costs the consumer a single hand-off. It does not wait for room: the statement is over.
  void finish(Batch last, std::size_t bytes, std::optional<binds::BackendError> e, binds::ExecResult r,
              binds::TxStatus t) {
    std::lock_guard lock(mu);
    if (last.columns || !last.rows.empty()) {
      queued_bytes += bytes;
      batches.push_back({std::move(last), bytes});
    }
    error = std::move(e);
    result = r;
    tx = t;
    done = true;
    wake_locked();
  }
  bool stopped() {
    std::lock_guard lock(mu);
    return stop || aborted;
  }
  bool was_aborted() {
    std::lock_guard lock(mu);
    return aborted;
  }

  // Consumer side (the coroutine's executor).
  bool take(std::deque<std::pair<Batch, std::size_t>>& out, bool& finished) {
    std::lock_guard lock(mu);
    out.swap(batches);
    finished = done && out.empty();
    return !out.empty() || done || aborted;
  }
  // Suspends until the worker has something (or the exchange was aborted).
  asio::awaitable<void> wait() {
    co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
        [this](auto handler) {
          std::unique_lock lock(mu);
          if (!batches.empty() || done || aborted) {
            lock.unlock();
            auto w = std::make_unique<HandlerWaker<decltype(handler)>>(std::move(handler));
            auto& inbox_now = *w->inbox;
            auto ex = w->executor;
            wake(std::move(w), inbox_now, ex);
            return;
          }
          auto w = std::make_unique<HandlerWaker<decltype(handler)>>(std::move(handler));
          inbox = w->inbox;
          inbox_executor = w->executor;
          waker = std::move(w);
        },
        asio::use_awaitable);
  }
  void consumed(std::size_t bytes) {
    {
      std::lock_guard lock(mu);
      queued_bytes -= std::min(queued_bytes, bytes);
    }
    space.notify_all();
  }
  void set_stop() {
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    space.notify_all();
  }

  void wake_locked() {
    if (waker) wake(std::move(waker), *inbox, inbox_executor);
  }

  std::mutex mu;
  std::condition_variable space;
  std::unique_ptr<Waker> waker;  // set while the consumer waits
  WakeInbox* inbox = nullptr;    // where waker goes to be resumed
  asio::any_io_executor inbox_executor;
  std::deque<std::pair<Batch, std::size_t>> batches;
  std::size_t queued_bytes = 0;
  bool stop = false;     // the consumer wants no more rows
  bool aborted = false;  // the consumer gave up waiting (abort())
  bool done = false;
  std::optional<binds::BackendError> error;
  binds::ExecResult result;
  binds::TxStatus tx = binds::TxStatus::unknown;
};

std::size_t value_bytes(const protocol::Value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return s->size() + 8;
  if (auto* b = std::get_if<protocol::Bytes>(&v)) return b->data.size() + 8;
  if (auto* t = std::get_if<protocol::Tagged>(&v)) return t->text.size() + 8;
  return 9;
}

// Worker side of one statement: rows go into batches, a batch goes to the consumer when it is
// big enough or the statement ends.
class BatchingSink final : public binds::RowSink {
 public:
  BatchingSink(Exchange& x, std::size_t max_row) : x_(x), max_row_(max_row) {}
  bool columns(std::vector<protocol::Column> cols) override {
    batch_.columns = std::move(cols);
    return !x_.stopped();
  }
  bool row(protocol::Row& r) override {
    std::size_t n = 0;
    for (const auto& v : r) n += value_bytes(v);
    if (n > max_row_) {
      too_large_ = true;
      return false;
    }
    batch_.rows.push_back(std::move(r));
    bytes_ += n;
    if (batch_.rows.size() >= 256 || bytes_ >= 64 * 1024) flush();
    return !x_.stopped();
  }
  void flush() {
    if (!batch_.columns && batch_.rows.empty()) return;
    x_.push(std::move(batch_), bytes_);
    batch_ = {};
    bytes_ = 0;
  }
  // What is not flushed yet, for Exchange::finish().
  std::pair<Exchange::Batch, std::size_t> take() {
    std::pair<Exchange::Batch, std::size_t> out{std::move(batch_), bytes_};
    batch_ = {};
    bytes_ = 0;
    return out;
  }
  bool too_large() const { return too_large_; }

 private:
  Exchange& x_;
  std::size_t max_row_;
  Exchange::Batch batch_;
  std::size_t bytes_ = 0;
  bool too_large_ = false;
};

TxStatus convert(binds::TxStatus t) {
  switch (t) {
    case binds::TxStatus::idle: return TxStatus::idle;
    case binds::TxStatus::in_tx: return TxStatus::in_tx;
    case binds::TxStatus::failed_tx: return TxStatus::failed_tx;
    case binds::TxStatus::unknown: return TxStatus::unknown;
  }
  return TxStatus::unknown;
}

// Runs f on the workers and resumes on the awaiting coroutine's executor.
template <class F>
asio::awaitable<std::invoke_result_t<F&>> on_worker(JobThreads& pool, F f) {
  using R = std::invoke_result_t<F&>;
  auto initiate = [&pool, f = std::move(f)](auto handler) mutable {
    pool.post([handler = std::move(handler), f = std::move(f)]() mutable {
      R r = f();
      auto ex = asio::get_associated_executor(handler);
      asio::post(ex, [handler = std::move(handler), r = std::move(r)]() mutable { handler(std::move(r)); });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(R)>(std::move(initiate),
                                                                                 asio::use_awaitable);
}

class BlockingConnection final : public Connection {
 public:
  BlockingConnection(std::unique_ptr<binds::Connection> conn, std::shared_ptr<Workers> workers, Backend backend)
      : shared_(std::make_shared<Shared>()), workers_(std::move(workers)), backend_(backend) {
    shared_->canceller = conn->canceller();
    shared_->conn = std::move(conn);
  }
  ~BlockingConnection() override { release_driver(); }

  Backend backend() const override { return backend_; }
  int max_pipeline() const override { return 1; }

  void send(const Statement& st) override {
    queue_.push_back(Op{false, std::string(st.sql), {st.params.begin(), st.params.end()}});
  }
  void send_reset() override { queue_.push_back(Op{true, {}, {}}); }
  int outstanding() const override { return static_cast<int>(queue_.size()); }

  asio::awaitable<Outcome> receive(ResultSink& sink) override {
    Outcome out;
    Op op = std::move(queue_.front());
    queue_.pop_front();
    if (broken_) {
      out.error = BackendError{protocol::ErrorCode::backend_unavailable, "the connection was aborted", "",
                               std::nullopt, true, false};
      co_return out;
    }
    auto x = std::make_shared<Exchange>();
    set_current(x);
    const std::size_t max_row = sink.max_row_bytes();
    shared_->busy = true;
    workers_->statements.post([shared = shared_, x, op = std::move(op), max_row]() mutable {
      std::optional<binds::BackendError> err;
      binds::ExecResult result;
      binds::TxStatus tx = binds::TxStatus::unknown;
      bool too_large = false;
      std::pair<Exchange::Batch, std::size_t> last;
      if (!shared->conn) {
        err = binds::BackendError{protocol::ErrorCode::backend_unavailable, "the connection is closed", "",
                                  std::nullopt, true, false};
      } else if (x->was_aborted()) {
        // Given up on before a worker was free to start it: it must not run now, unseen.
        err = binds::BackendError{protocol::ErrorCode::backend_unavailable, "abandoned before it started", "",
                                  std::nullopt, true, false};
      } else {
        BatchingSink rows(*x, max_row);
        if (op.reset) {
          err = shared->conn->reset();
        } else {
          {
            std::lock_guard lock(shared->cancel_mu);
            shared->cancellable = x.get();
          }
          err = shared->conn->execute(op.sql, op.params, rows, result);
          {
            std::lock_guard lock(shared->cancel_mu);
            shared->cancellable = nullptr;
          }
          too_large = rows.too_large();
          if (!too_large) last = rows.take();
        }
        tx = shared->conn->tx_status();
      }
      if (too_large && !err) {
        err = binds::BackendError{protocol::ErrorCode::bad_request, "row too large", "", std::nullopt, false, false};
      }
      x->finish(std::move(last.first), last.second, std::move(err), result, tx);
      shared->busy = false;
    });

    std::deque<std::pair<Exchange::Batch, std::size_t>> batches;
    std::vector<ValueView> views;
    bool stopped = false;
    for (;;) {
      bool finished = false;
      if (!x->take(batches, finished)) {
        co_await x->wait();
        continue;
      }
      if (x->was_aborted()) break;
      for (auto& [batch, bytes] : batches) {
        if (!stopped) {
          if (batch.columns) sink.columns(*batch.columns);
          for (auto& r : batch.rows) {
            views.clear();
            for (const auto& v : r) views.push_back(view_of(v));
            sink.row(views);
            ++out.row_count;
          }
        }
        x->consumed(bytes);
        if (!stopped && sink.full() && !co_await sink.drained()) {
          stopped = true;
          x->set_stop();
        }
      }
      batches.clear();
      if (finished) break;
    }
    set_current(nullptr);
    if (x->was_aborted()) {
      broken_ = true;
      out.error = BackendError{protocol::ErrorCode::backend_unavailable, "the backend did not respond; connection aborted",
                               "", std::nullopt, true, false};
      out.tx = TxStatus::unknown;
      co_return out;
    }
    out.stopped = stopped;
    out.tx = convert(x->tx);
    out.affected = x->result.affected;
    out.last_insert_id = x->result.last_insert_id;
    if (x->error) {
      if (x->error->code == protocol::ErrorCode::bad_request && x->error->message == "row too large") {
        out.row_too_large = true;
        out.error = BackendError{protocol::ErrorCode::bad_request,
                                 "a result row is larger than the largest frame a client accepts (" +
                                     std::to_string(max_row) + " bytes)",
                                 "", std::nullopt, false, false};
      } else if (!(stopped && !x->error->connection_broken)) {
        out.error = *x->error;
      }
      if (out.error && out.error->connection_broken) broken_ = true;
    }
    co_return out;
  }

  void cancel() override {
    auto x = get_current();
    if (!x || !shared_) return;
    // The drivers' cancellers may block (a network round trip): they run on the cancel thread.
    asio::post(workers_->cancels, [shared = shared_, x] {
      std::lock_guard lock(shared->cancel_mu);
      if (shared->cancellable == x.get()) shared->canceller->cancel();
    });
  }

  void abort() override {
    broken_ = true;
    if (auto x = get_current()) {
      {
        std::lock_guard lock(x->mu);
        x->aborted = true;
        x->wake_locked();
      }
      x->space.notify_all();
    }
    // A SQLite statement stops at once; a hung network driver returns when it returns.
    cancel();
  }

  bool looks_alive() override {
    if (broken_) return false;
    // MySQL's blocking check is a round trip: leave it to the statement.
    if (backend_ == Backend::mysql) return true;
    return shared_->conn && shared_->conn->alive();
  }

  asio::awaitable<bool> ping() override {
    if (broken_) co_return false;
    // Named, not a temporary inside the co_await: GCC 12 destroys such closures twice.
    auto check = [shared = shared_] { return shared->conn && shared->conn->alive(); };
    co_return co_await on_worker(workers_->statements, std::move(check));
  }

  asio::awaitable<void> close() override {
    release_driver();
    co_return;
  }

 private:
  struct Shared {
    std::unique_ptr<binds::Connection> conn;  // used on worker threads only
    std::shared_ptr<binds::Canceller> canceller;
    std::atomic<bool> busy{false};            // a statement job holds it
    // Which statement may be cancelled: a cancel is for one exchange, and fires only while that
    // exchange's statement is the one on the connection (a late cancel must never reach the next
    // client's statement). Held across the cancel itself, so the next statement cannot start
    // underneath it.
    std::mutex cancel_mu;
    const Exchange* cancellable = nullptr;
  };
  struct Op {
    bool reset = false;
    std::string sql;
    std::vector<protocol::Value> params;
  };

  static ValueView view_of(const protocol::Value& v) {
    using protocol::Type;
    return std::visit(
        [](const auto& x) -> ValueView {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, protocol::Null>) return ValueView::null();
          else if constexpr (std::is_same_v<T, bool>) return ValueView::boolean(x);
          else if constexpr (std::is_same_v<T, std::int64_t>) return ValueView::int64(x);
          else if constexpr (std::is_same_v<T, double>) return ValueView::float64(x);
          else if constexpr (std::is_same_v<T, std::string>) return ValueView::text(x);
          else if constexpr (std::is_same_v<T, protocol::Bytes>) return ValueView::bytes(x.data);
          else if constexpr (std::is_same_v<T, protocol::Tagged>) return ValueView::tagged(x.type, x.text);
          else return ValueView::null();  // an Array: SQLite has none to return
        },
        v);
  }

  // Closing may block (a terminate message to a dead peer): on a worker, never here. A statement
  // still running (after abort()) holds the driver itself and closes it when it ends: closing it
  // from another worker meanwhile would pull the database out from under it.
  void release_driver() {
    if (!shared_) return;
    if (shared_->busy.load()) {
      shared_.reset();
      return;
    }
    workers_->statements.post([shared = std::move(shared_)]() mutable { shared->conn.reset(); });
  }

  std::shared_ptr<Shared> shared_;
  std::shared_ptr<Workers> workers_;
  Backend backend_;
  std::deque<Op> queue_;
  // The exchange running now: cancel() reads it from any thread.
  void set_current(const std::shared_ptr<Exchange>& x) {
    std::lock_guard lock(current_mu_);
    current_ = x;
  }
  std::shared_ptr<Exchange> get_current() {
    std::lock_guard lock(current_mu_);
    return current_.lock();
  }
  std::mutex current_mu_;
  std::weak_ptr<Exchange> current_;
  bool broken_ = false;
};

}  // namespace

asio::awaitable<ConnectResult> connect_blocking(const DatabaseUrl& url, const ConnectOptions& options,
                                                std::shared_ptr<Workers> workers) {
  struct Opened {
    std::unique_ptr<binds::Connection> conn;
    binds::BackendError err;
  };
  // Named, not a temporary inside the co_await: GCC 12 destroys such closures twice.
  auto open = [url, options] {
    Opened o;
    o.conn = binds::connect(url, options.bind_key, o.err, binds::ConnectOptions{options.sqlite_attach_dir});
    return o;
  };
  auto opened = co_await on_worker(workers->statements, std::move(open));
  ConnectResult r;
  if (!opened.conn) {
    r.error = opened.err;
    r.error.code = protocol::ErrorCode::backend_unavailable;
    co_return r;
  }
  r.conn = std::make_unique<BlockingConnection>(std::move(opened.conn), std::move(workers), url.backend);
  co_return r;
}

}  // namespace binds::backend
