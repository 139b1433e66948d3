#pragma once
// A blocking driver (binds/backend/driver.hpp) behind the async contract: each statement runs on a worker
// thread of the caller's choosing and its rows come back in batches, so a result costs one
// hand-off per batch rather than one per row. SQLite, which has no socket to wait on, runs this
// way for good; PostgreSQL and MySQL ran this way until their async backends landed.

#include <utility>
#include <boost/asio.hpp>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "binds/backend/backend.hpp"

namespace binds::backend {

// The CPUs the process's event loops keep busy (bindsd's --threads). Statement threads that run
// at once stay that many below the machine's CPUs: the event loop carries most of a request's CPU,
// and workers woken beside it only take turns with it. On 2 cores with one I/O thread, SQLite point
// selects went 1.03-1.05x in qps at 0.88x CPU per query with one running worker instead of two (a
// statement that runs long still gets a second one from the monitor within a millisecond).
// Call before the first SQLite bind opens.
void reserve_cpus_for_io(unsigned n);

// Threads that run jobs in the order posted, as few at a time as keep the CPUs busy.
//
// asio::thread_pool woke an idle thread for every job: with 8 threads and SQLite point selects
// that was 7 futex calls and 2.5 context switches per statement, a quarter of bindsd's CPU. Here a
// post wakes a sleeping thread only while fewer than `active` threads are running (by default one
// per CPU the I/O threads leave); otherwise the job waits for a running thread to finish its own,
// which a short statement does within microseconds. A long statement must not hold up the rest,
// so a monitor checks every millisecond while jobs wait: if no job was taken since its last look,
// it wakes another thread, up to `threads`. An idle thread sleeps on a wake-up of its own (the one
// that went idle last is woken first, its caches warm).
class JobThreads {
 public:
  // active: how many of the threads run at once; 0: one per CPU not reserved for I/O.
  explicit JobThreads(std::size_t threads, std::size_t active = 0);
  ~JobThreads() { join(); }
  JobThreads(const JobThreads&) = delete;
  JobThreads& operator=(const JobThreads&) = delete;

  template <class F>
  void post(F&& f) {
    push(std::make_unique<Model<std::decay_t<F>>>(std::forward<F>(f)));
  }
  // Runs what is queued, then stops the threads. Idempotent.
  void join();

  // For tests: threads woken by the monitor because the running ones made no progress; threads
  // asleep now.
  std::uint64_t stall_wakes() const;
  std::size_t sleeping() const;

 private:
  struct Job {
    virtual ~Job() = default;
    virtual void run() = 0;
  };
  template <class F>
  struct Model final : Job {
    explicit Model(F f) : f(std::move(f)) {}
    void run() override { f(); }
    F f;
  };
  struct Sleeper;
  void push(std::unique_ptr<Job> job);
  void wake_one_locked();
  void loop();
  void monitor();

  mutable std::mutex mu_;
  std::deque<std::unique_ptr<Job>> jobs_;
  std::vector<Sleeper*> idle_;  // most recently idle last
  std::size_t active_ = 1;
  std::size_t running_ = 0;     // threads not asleep
  std::uint64_t taken_ = 0;     // jobs dequeued so far
  std::uint64_t stall_wakes_ = 0;
  bool monitor_waiting_ = false;  // asleep until a job waits
  std::condition_variable monitor_cv_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::thread monitor_;
};

// Threads for blocking work: statements (`statements`, sized to how many may run at once) and
// cancels (`cancels`: a blocking cancel must never wait behind a statement, nor behind another
// bind's cancel).
struct Workers {
  explicit Workers(std::size_t statement_threads)
      : statements(statement_threads), cancels(1) {}
  ~Workers() {
    statements.join();
    cancels.join();
  }
  JobThreads statements;
  asio::thread_pool cancels;
};

// Opens a connection with the blocking driver of url's backend on one of `workers`' threads.
asio::awaitable<ConnectResult> connect_blocking(const DatabaseUrl& url, const ConnectOptions& options,
                                                std::shared_ptr<Workers> workers);

}  // namespace binds::backend
