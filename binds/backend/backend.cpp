#include "binds/backend/backend.hpp"

#include <exception>

#include "protocol/messages.hpp"

namespace binds::backend {

BackendError placeholder_mismatch(std::size_t placeholders, std::size_t given) {
  BackendError e;
  e.code = protocol::ErrorCode::sql_error;
  e.sqlstate = "07001";
  e.message = "the statement has " + std::to_string(placeholders) + " placeholder" +
              (placeholders == 1 ? "" : "s") + " but " + std::to_string(given) + " parameter" +
              (given == 1 ? " was" : "s were") + " given";
  return e;
}

std::optional<BackendError> refuse_array_params(std::span<const protocol::Value> params, std::string_view backend) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!std::holds_alternative<protocol::Array>(params[i])) continue;
    BackendError e;
    e.code = protocol::ErrorCode::bad_request;
    e.message = "parameter " + std::to_string(i + 1) + ": arrays are supported on PostgreSQL binds only, not " +
                std::string(backend);
    return e;
  }
  return std::nullopt;
}

protocol::Value to_value(const ValueView& v) {
  using protocol::Type;
  switch (v.type) {
    case Type::null: return protocol::Null{};
    case Type::boolean: return v.b;
    case Type::int64: return v.i;
    case Type::float64: return v.f;
    case Type::text: return std::string(v.s);
    case Type::bytes: return protocol::Bytes{std::string(v.s)};
    case Type::array: {
      protocol::Value out;
      std::string why;
      if (!protocol::decode_packed_value(v.s, out, why)) return protocol::Null{};  // our own encoding: cannot fail
      return out;
    }
    default: return protocol::Tagged{v.type, std::string(v.s)};
  }
}

asio::awaitable<ConnectResult> connect(asio::any_io_executor ex, const DatabaseUrl& url,
                                       const ConnectOptions& options) {
  // The backends return errors as values; this is the last line of defence (bad_alloc, a bug)
  // so that nothing escapes into the pool.
  try {
    switch (url.backend) {
      case Backend::postgresql: co_return co_await detail::connect_postgresql(ex, url, options);
      case Backend::mysql: co_return co_await detail::connect_mysql(ex, url, options);
      case Backend::sqlite: co_return co_await detail::connect_sqlite(ex, url, options);
    }
  } catch (const std::exception& e) {
    ConnectResult r;
    r.error = BackendError{protocol::ErrorCode::backend_unavailable, e.what(), "", std::nullopt, false, false};
    co_return r;
  }
  ConnectResult r;
  r.error = BackendError{protocol::ErrorCode::internal, "unknown backend", "", std::nullopt, false, false};
  co_return r;
}

}  // namespace binds::backend
