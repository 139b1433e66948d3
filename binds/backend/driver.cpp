#include "binds/backend/driver.hpp"

#include <exception>

namespace binds {

std::unique_ptr<Connection> connect(const DatabaseUrl& url, const std::string& bind_key,
                                    BackendError& err, const ConnectOptions& options) {
  // The drivers catch their own exceptions; this is the last line of defence (bad_alloc, a
  // driver bug) so that nothing escapes into a pool worker.
  try {
    if (url.backend == Backend::sqlite) return detail::connect_sqlite(url, bind_key, options, err);
    // PostgreSQL and MySQL have asynchronous backends (postgresql.cpp, mysql.cpp) and no
    // blocking driver.
    err = BackendError{protocol::ErrorCode::internal, "no blocking driver for this backend", "", std::nullopt, false};
  } catch (const std::exception& e) {
    err = BackendError{protocol::ErrorCode::backend_unavailable, e.what(), "", std::nullopt, false};
  } catch (...) {
    err = BackendError{protocol::ErrorCode::backend_unavailable, "unknown error while connecting",
                       "", std::nullopt, false};
  }
  return nullptr;
}

namespace detail {

void CancelGate::begin() {
  std::lock_guard<std::mutex> lock(mutex_);
  running_ = true;
  delivered_ = false;
}

bool CancelGate::end() {
  std::unique_lock<std::mutex> lock(mutex_);
  running_ = false;
  idle_.wait(lock, [this] { return in_flight_ == 0; });
  return delivered_;
}

}  // namespace detail
}  // namespace binds
