#pragma once
// A blocking driver (binds/backend/driver.hpp) behind the async contract: each statement runs on a worker
// thread of the caller's choosing and its rows come back in batches, so a result costs one
// hand-off per batch rather than one per row. SQLite, which has no socket to wait on, runs this
// way for good; PostgreSQL and MySQL ran this way until their async backends landed.

#include <utility>
#include <boost/asio.hpp>
#include <memory>

#include "binds/backend/backend.hpp"

namespace binds::backend {

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
  asio::thread_pool statements;
  asio::thread_pool cancels;
};

// Opens a connection with the blocking driver of url's backend on one of `workers`' threads.
asio::awaitable<ConnectResult> connect_blocking(const DatabaseUrl& url, const ConnectOptions& options,
                                                std::shared_ptr<Workers> workers);

}  // namespace binds::backend
