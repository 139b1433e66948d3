#pragma once
// Error values of the PostgreSQL wire codec, and the Result every decoder returns. Errors are
// small enums, not strings, so a malformed message costs no allocation on the data path; the
// caller turns them into text (to_string) when it logs or disconnects.

#include <cassert>
#include <cstdint>
#include <string_view>
#include <utility>

namespace binds::pgwire {

enum class Error : std::uint8_t {
  ok = 0,
  // Framing: the stream cannot be resynchronised after these; drop the connection.
  length_too_small,      // length word below the protocol minimum (4, or 8 for startup packets)
  length_too_large,      // length word above the configured maximum
  unsupported_protocol,  // startup packet with a major version other than 3 or an unknown code
  // Message bodies.
  wrong_type,           // the decoder was handed a message of another type
  truncated,            // a field runs past the end of the body
  trailing_bytes,       // bytes left after the last field
  unterminated_string,  // a string field without its NUL
  bad_length,           // a value length below -1, or a negative count
  bad_value,            // a field outside its domain (status byte, 'S'/'P', auth code, ...)
  // Encoding.
  embedded_nul,  // a string field contains NUL, which the protocol cannot carry
  too_many,      // more items than a 16-bit count holds
  too_large,     // the message would exceed the 32-bit length word
};

// Static text, never containing message contents (so never a password).
std::string_view to_string(Error e);

// A decoded value or an Error. The value is default-constructed when there is an error, so
// T must be default-constructible (every message struct here is: they hold views).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}
  Result(Error error) : error_(error) { assert(error != Error::ok); }

  bool ok() const { return error_ == Error::ok; }
  explicit operator bool() const { return ok(); }
  Error error() const { return error_; }

  // Precondition: ok().
  const T& value() const& {
    assert(ok());
    return value_;
  }
  T& value() & {
    assert(ok());
    return value_;
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  T value_{};
  Error error_ = Error::ok;
};

}  // namespace binds::pgwire
