// SQLite behind the async contract. SQLite has no socket to wait on, so statements run on a small,
// bounded set of worker threads per database (WAL lets readers run in parallel with the one
// writer) and rows come back in batches (binds/backend/blocking.hpp).

#include <map>
#include <mutex>

#include "binds/backend/blocking.hpp"

namespace binds::backend::detail {

namespace {

// One worker set per database file (or memory database), shared by every connection to it and
// released with the last one.
std::shared_ptr<Workers> workers_for(const std::string& key, int threads) {
  static std::mutex mu;
  static auto* sets = new std::map<std::string, std::weak_ptr<Workers>>;  // never freed: used at exit
  std::lock_guard lock(mu);
  auto& weak = (*sets)[key];
  if (auto w = weak.lock()) return w;
  auto w = std::make_shared<Workers>(static_cast<std::size_t>(std::max(1, threads)));
  weak = w;
  return w;
}

}  // namespace

asio::awaitable<ConnectResult> connect_sqlite(asio::any_io_executor, const DatabaseUrl& url,
                                              const ConnectOptions& options) {
  const std::string key = url.sqlite_memory ? "memory:" + options.bind_key : url.database;
  co_return co_await connect_blocking(url, options, workers_for(key, options.worker_threads));
}

}  // namespace binds::backend::detail
