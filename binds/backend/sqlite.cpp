// Placeholder until the async sqlite backend lands: every connect fails with a clear error.
#include "binds/backend/backend.hpp"

namespace binds::backend::detail {

asio::awaitable<ConnectResult> connect_sqlite(asio::any_io_executor, const DatabaseUrl&, const ConnectOptions&) {
  ConnectResult r;
  r.error.code = protocol::ErrorCode::backend_unavailable;
  r.error.message = "the async sqlite backend is not built yet";
  co_return r;
}

}  // namespace binds::backend::detail
