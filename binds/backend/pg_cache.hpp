#pragma once
// The per-connection prepared-statement cache: SQL text and parameter type OIDs → a server-side
// named statement with its result columns, so a repeated statement costs Bind/Execute/Sync only.
// Bounded LRU. Entries that queued statements still use are pinned: they are never evicted, and
// one that must go (a reset, DEALLOCATE ALL) is retired, i.e. unreachable, and freed when the last
// statement using it is done.
//
// The parameter OIDs are part of the key because Parse fixes the parameter types: the same SQL
// with an int64 parameter and then a text one must not share a statement, or the text would be
// parsed as bigint.
//
// Not thread-safe: owned by one connection.

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/value.hpp"

namespace binds::backend::pg {

struct CachedStatement {
  enum class State : std::uint8_t {
    parsing,    // Parse sent; ParseComplete not seen yet (it may still fail)
    parsed,     // exists on the server; its columns are not known yet (Describe not answered)
    described,  // exists, columns known: Bind/Execute/Sync is enough
  };
  std::string key;
  std::string name;
  State state = State::parsing;
  bool returns_rows = false;  // RowDescription (true) or NoData
  std::size_t placeholders = 0;  // highest $n in the text (counted only for statements with values)
  std::vector<protocol::Column> columns;
  int pins = 0;
  bool retired = false;
  std::list<CachedStatement>::iterator self;
};

class StatementCache {
 public:
  static constexpr std::size_t kDefaultCapacity = 256;

  explicit StatementCache(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // The lookup key for a statement, built in a reused buffer: valid until the next make_key().
  std::string_view make_key(std::string_view sql, std::span<const std::uint32_t> oids);

  // The entry for `key` (not retired), marked most recently used; nullptr if absent.
  CachedStatement* find(std::string_view key);

  // A new entry in state parsing. Makes room by evicting the least recently used unpinned
  // entries, calling on_evict(entry) for each before it is freed (the caller closes it on the
  // server). nullptr when nothing can be evicted or the capacity is 0.
  template <class OnEvict>
  CachedStatement* insert(std::string_view key, OnEvict&& on_evict) {
    if (capacity_ == 0) return nullptr;
    while (index_.size() >= capacity_) {
      CachedStatement* victim = lru_victim();
      if (victim == nullptr) return nullptr;
      on_evict(*victim);
      ++evictions_;
      remove(victim);
    }
    return add(key);
  }

  // Makes an entry unreachable (a failed Parse, a statement the server no longer knows).
  void remove(CachedStatement* e);
  // Every entry: the server dropped them all (DISCARD ALL, DEALLOCATE ALL).
  void clear();

  void pin(CachedStatement* e) { ++e->pins; }
  void unpin(CachedStatement* e);

  std::size_t size() const { return index_.size(); }
  std::size_t capacity() const { return capacity_; }
  // Applies to later inserts; entries above it go as they are replaced.
  void set_capacity(std::size_t n) { capacity_ = n; }
  std::uint64_t evictions() const { return evictions_; }

 private:
  CachedStatement* lru_victim();
  CachedStatement* add(std::string_view key);

  std::size_t capacity_;
  std::list<CachedStatement> lru_;      // most recently used first
  std::list<CachedStatement> retired_;  // removed while pinned
  std::unordered_map<std::string_view, std::list<CachedStatement>::iterator> index_;
  std::string key_scratch_;
  std::uint64_t next_name_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace binds::backend::pg
