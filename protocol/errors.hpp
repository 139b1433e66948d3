#pragma once
// Stable broker error codes (PROTOCOL.md §7). Names are part of the wire contract.

#include <string_view>

namespace binds::protocol {

enum class ErrorCode {
  protocol_error,
  unsupported_version,
  unknown_frame_type,
  bad_request,
  unknown_bind,
  sql_error,
  backend_unavailable,
  pool_timeout,
  busy,
  shutting_down,
  internal,
  tx_aborted,
  cancelled,
  timeout,
  too_many_clients,
  not_in_transaction,
};

std::string_view error_code_name(ErrorCode c);  // "SQL_ERROR", ...
bool error_code_from_name(std::string_view name, ErrorCode& out);

}  // namespace binds::protocol
