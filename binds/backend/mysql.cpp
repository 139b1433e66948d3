// Placeholder until the async mysql backend lands: every connect fails with a clear error.
#include "binds/backend/backend.hpp"

namespace binds::backend::detail {

asio::awaitable<ConnectResult> connect_mysql(asio::any_io_executor, const DatabaseUrl&, const ConnectOptions&) {
  ConnectResult r;
  r.error.code = protocol::ErrorCode::backend_unavailable;
  r.error.message = "the async mysql backend is not built yet";
  co_return r;
}

}  // namespace binds::backend::detail
