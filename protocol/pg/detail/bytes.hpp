#pragma once
// Internal: bounds-checked big-endian reading and length-patching writing. Not part of the API;
// the public headers include it only for the inline iterators over validated bodies.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "protocol/pg/error.hpp"

namespace binds::pgwire::detail {

inline std::uint16_t load_u16(const char* p) {
  auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<std::uint16_t>((u[0] << 8) | u[1]);
}

inline std::uint32_t load_u32(const char* p) {
  auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}

inline void store_u32(char* p, std::uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

// A message without a body: five fixed bytes, no Writer needed.
inline void append_empty(std::string& out, char type) {
  const char m[5] = {type, 0, 0, 0, 4};
  out.append(m, sizeof m);
}

// Cursor over one message body. The first failure sticks: later reads return zeros and empty
// views, so a decoder can read every field and check once at the end.
class Reader {
 public:
  explicit Reader(std::string_view body) : p_(body.data()), end_(body.data() + body.size()) {}

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  const char* position() const { return p_; }
  bool failed() const { return error_ != Error::ok; }
  Error error() const { return error_; }

  void fail(Error e) {
    if (error_ == Error::ok) error_ = e;
    p_ = end_;
  }

  std::uint8_t u8() {
    if (remaining() < 1) {
      fail(Error::truncated);
      return 0;
    }
    return static_cast<std::uint8_t>(*p_++);
  }
  std::uint16_t u16() {
    if (remaining() < 2) {
      fail(Error::truncated);
      return 0;
    }
    auto v = load_u16(p_);
    p_ += 2;
    return v;
  }
  std::int16_t i16() { return static_cast<std::int16_t>(u16()); }
  std::uint32_t u32() {
    if (remaining() < 4) {
      fail(Error::truncated);
      return 0;
    }
    auto v = load_u32(p_);
    p_ += 4;
    return v;
  }
  std::int32_t i32() { return static_cast<std::int32_t>(u32()); }

  std::string_view bytes(std::size_t n) {
    if (remaining() < n) {
      fail(Error::truncated);
      return {};
    }
    std::string_view v(p_, n);
    p_ += n;
    return v;
  }

  // A NUL-terminated string; the terminator is consumed but not returned.
  std::string_view cstr() {
    // remaining() == 0 is checked first: p_ may be null for an empty body, and memchr's pointer
    // must not be null even when the size is 0.
    auto* nul =
        remaining() == 0 ? nullptr : static_cast<const char*>(std::memchr(p_, '\0', remaining()));
    if (nul == nullptr) {
      fail(Error::unterminated_string);
      return {};
    }
    std::string_view v(p_, static_cast<std::size_t>(nul - p_));
    p_ = nul + 1;
    return v;
  }

  std::string_view rest() {
    std::string_view v(p_, remaining());
    p_ = end_;
    return v;
  }

  // The verdict for a message that must be consumed exactly.
  Error finish() const {
    if (error_ != Error::ok) return error_;
    return p_ == end_ ? Error::ok : Error::trailing_bytes;
  }

 private:
  const char* p_;
  const char* end_;
  Error error_ = Error::ok;
};

// Appends one message to a caller-owned string: type byte (none for startup packets), a length
// placeholder patched by finish(). On any error finish() truncates `out` back to where this
// message started, so a failed encode never leaves half a message to be sent.
class Writer {
 public:
  Writer(std::string& out, char type) : out_(out), start_(out.size()) {
    if (type != '\0') out_.push_back(type);
    length_at_ = out_.size();
    out_.append(4, '\0');
  }

  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    out_.append(b, 2);
  }
  void i16(std::int16_t v) { u16(static_cast<std::uint16_t>(v)); }
  void u32(std::uint32_t v) {
    char b[4];
    store_u32(b, v);
    out_.append(b, 4);
  }
  void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
  void bytes(std::string_view v) {
    if (!v.empty()) out_.append(v.data(), v.size());
  }

  // A string field cannot hold NUL: the peer would end the field early and read the rest of the
  // value as the next fields.
  void cstr(std::string_view v) {
    if (!v.empty() && std::memchr(v.data(), '\0', v.size()) != nullptr) {
      return fail(Error::embedded_nul);
    }
    bytes(v);
    out_.push_back('\0');
  }

  // A 16-bit count; PostgreSQL reads these unsigned (up to 65535 parameters).
  void count16(std::size_t n) {
    if (n > std::numeric_limits<std::uint16_t>::max()) return fail(Error::too_many);
    u16(static_cast<std::uint16_t>(n));
  }

  // Reserve a 16-bit count to patch later (DataRow written column by column).
  std::size_t reserve_u16() {
    out_.append(2, '\0');
    return out_.size() - 2;
  }
  void patch_u16(std::size_t at, std::uint16_t v) {
    out_[at] = static_cast<char>(v >> 8);
    out_[at + 1] = static_cast<char>(v);
  }

  void fail(Error e) {
    if (error_ == Error::ok) error_ = e;
  }
  bool failed() const { return error_ != Error::ok; }

  Error finish() {
    if (error_ == Error::ok) {
      std::size_t length = out_.size() - length_at_;
      if (length > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
        error_ = Error::too_large;
      } else {
        store_u32(out_.data() + length_at_, static_cast<std::uint32_t>(length));
        return Error::ok;
      }
    }
    out_.resize(start_);
    return error_;
  }

 private:
  std::string& out_;
  std::size_t start_;
  std::size_t length_at_ = 0;
  Error error_ = Error::ok;
};

}  // namespace binds::pgwire::detail
