#include "protocol/pg/error.hpp"

namespace binds::pgwire {

std::string_view to_string(Error e) {
  switch (e) {
    case Error::ok:
      return "ok";
    case Error::length_too_small:
      return "message length below the protocol minimum";
    case Error::length_too_large:
      return "message length exceeds the limit";
    case Error::unsupported_protocol:
      return "unsupported protocol version or request code";
    case Error::wrong_type:
      return "message of an unexpected type";
    case Error::truncated:
      return "message body ends inside a field";
    case Error::trailing_bytes:
      return "unexpected bytes after the last field";
    case Error::unterminated_string:
      return "string field without its terminating NUL";
    case Error::bad_length:
      return "invalid length or count field";
    case Error::bad_value:
      return "field value out of range";
    case Error::embedded_nul:
      return "string field contains a NUL byte";
    case Error::too_many:
      return "too many items for a 16-bit count";
    case Error::too_large:
      return "message exceeds the 32-bit length limit";
  }
  return "unknown error";
}

}  // namespace binds::pgwire
