#include "protocol/errors.hpp"

#include <array>

namespace binds::protocol {

namespace {
constexpr std::array<std::string_view, 16> kNames = {
    "PROTOCOL_ERROR", "UNSUPPORTED_VERSION", "UNKNOWN_FRAME_TYPE", "BAD_REQUEST",
    "UNKNOWN_BIND",   "SQL_ERROR",           "BACKEND_UNAVAILABLE", "POOL_TIMEOUT",
    "BUSY",           "SHUTTING_DOWN",       "INTERNAL",            "TX_ABORTED",
    "CANCELLED",      "TIMEOUT",             "TOO_MANY_CLIENTS",    "NOT_IN_TRANSACTION"};
}

std::string_view error_code_name(ErrorCode c) {
  auto i = static_cast<std::size_t>(c);
  return i < kNames.size() ? kNames[i] : "INTERNAL";
}

bool error_code_from_name(std::string_view name, ErrorCode& out) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) {
      out = static_cast<ErrorCode>(i);
      return true;
    }
  }
  return false;
}

}  // namespace binds::protocol
