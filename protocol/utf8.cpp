#include "protocol/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace binds::protocol {
namespace {

// Length of the valid sequence starting at s[i], or 0 if the bytes there are not one. For an
// invalid sequence *bad is set to how many bytes form its maximal invalid prefix (at least 1).
std::size_t sequence(const unsigned char* s, std::size_t n, std::size_t i, std::size_t* bad) {
  const unsigned char c = s[i];
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    *bad = 1;
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char lower = k == 1 ? lo : 0x80, upper = k == 1 ? hi : 0xBF;
    if (i + k >= n || s[i + k] < lower || s[i + k] > upper) {
      *bad = k;
      return 0;
    }
  }
  return len;
}

bool ascii_word(const unsigned char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  return (w & 0x8080808080808080ULL) == 0;
}

}  // namespace

bool is_valid_utf8(std::string_view sv) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const std::size_t n = sv.size();
  std::size_t i = 0;
  while (i < n) {
    // Most text is ASCII: skip it eight bytes at a time.
    if (i + 8 <= n && ascii_word(s + i)) {
      i += 8;
      continue;
    }
    std::size_t bad = 0;
    const std::size_t len = sequence(s, n, i, &bad);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string repair_utf8(std::string_view sv) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const std::size_t n = sv.size();
  std::string out;
  out.reserve(n + 8);
  std::size_t i = 0;
  while (i < n) {
    std::size_t bad = 0;
    const std::size_t len = sequence(s, n, i, &bad);
    if (len == 0) {
      out.append("\xEF\xBF\xBD");
      i += bad;
    } else {
      out.append(sv.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace binds::protocol
