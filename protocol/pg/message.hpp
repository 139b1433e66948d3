#pragma once
// A framed PostgreSQL v3 message and the allocation-free views used by decoded messages.
//
// Every view here points into the buffer the message was framed from: it is valid as long as
// that buffer is unchanged (for MessageDecoder, until the next feed()/prepare()). Views are
// built by decoders that have already validated the whole body, so iterating them cannot fail
// and never reads past the body.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <string_view>

#include "protocol/pg/detail/bytes.hpp"
#include "protocol/pg/error.hpp"

namespace binds::pgwire {

struct Message {
  // Type byte; '\0' for startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest,
  // CancelRequest), which have none.
  char type = '\0';
  // Everything after the length word.
  std::string_view body;
  // The whole message as it arrived (type byte, length word, body), for forwarding untouched.
  std::string_view raw;
};

// Object kinds named by Describe and Close.
enum class ObjectKind : char { statement = 'S', portal = 'P' };

// A validated run of big-endian 16- or 32-bit integers (format codes, type OIDs).
template <class T>
class IntList {
  static_assert(sizeof(T) == 2 || sizeof(T) == 4);

 public:
  class iterator {
   public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using reference = T;

    iterator() = default;
    explicit iterator(const char* p) : p_(p) {}
    T operator*() const { return load(p_); }
    iterator& operator++() {
      p_ += sizeof(T);
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    const char* p_ = nullptr;
  };

  IntList() = default;
  IntList(const char* data, std::size_t count) : data_(data), count_(count) {}

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // Precondition: i < size().
  T operator[](std::size_t i) const { return load(data_ + i * sizeof(T)); }
  iterator begin() const { return iterator(data_); }
  iterator end() const { return iterator(data_ + count_ * sizeof(T)); }

 private:
  static T load(const char* p) {
    if constexpr (sizeof(T) == 2) {
      return static_cast<T>(detail::load_u16(p));
    } else {
      return static_cast<T>(detail::load_u32(p));
    }
  }

  const char* data_ = nullptr;
  std::size_t count_ = 0;
};

using Int16List = IntList<std::int16_t>;
using OidList = IntList<std::uint32_t>;

// Length-prefixed values as in DataRow and Bind: Int32 length (-1 = NULL), then the bytes.
// Yields std::nullopt for NULL.
class ValueList {
 public:
  class iterator {
   public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = std::optional<std::string_view>;
    using difference_type = std::ptrdiff_t;
    using reference = value_type;

    iterator() = default;
    explicit iterator(const char* p) : p_(p) {}
    value_type operator*() const {
      auto n = static_cast<std::int32_t>(detail::load_u32(p_));
      if (n < 0) return std::nullopt;
      return std::string_view(p_ + 4, static_cast<std::size_t>(n));
    }
    iterator& operator++() {
      auto n = static_cast<std::int32_t>(detail::load_u32(p_));
      p_ += 4 + (n < 0 ? 0 : static_cast<std::size_t>(n));
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    const char* p_ = nullptr;
  };

  ValueList() = default;
  ValueList(std::string_view region, std::size_t count) : region_(region), count_(count) {}

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  iterator begin() const { return iterator(region_.data()); }
  iterator end() const { return iterator(region_.data() + region_.size()); }
  // The encoded values exactly as received, for copying them on without decoding.
  std::string_view encoded() const { return region_; }

 private:
  std::string_view region_;
  std::size_t count_ = 0;
};

// A validated run of NUL-terminated strings (SASL mechanisms, unrecognised protocol options).
class StringList {
 public:
  class iterator {
   public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;
    using reference = value_type;

    iterator() = default;
    explicit iterator(const char* p) : p_(p) {}
    std::string_view operator*() const { return std::string_view(p_); }
    iterator& operator++() {
      p_ += std::strlen(p_) + 1;
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    const char* p_ = nullptr;
  };

  StringList() = default;
  StringList(std::string_view region, std::size_t count) : region_(region), count_(count) {}

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  iterator begin() const { return iterator(region_.data()); }
  iterator end() const { return iterator(region_.data() + region_.size()); }
  bool contains(std::string_view s) const {
    for (auto v : *this) {
      if (v == s) return true;
    }
    return false;
  }

 private:
  std::string_view region_;  // every string with its NUL
  std::size_t count_ = 0;
};

}  // namespace binds::pgwire
