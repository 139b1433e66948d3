#include "binds/backend/pg_cache.hpp"

namespace binds::backend::pg {

std::string_view StatementCache::make_key(std::string_view sql, std::span<const std::uint32_t> oids) {
  // Count and OIDs first, so "SELECT $1" with no parameters and with one never collide, then the
  // SQL; fixed-width fields keep the encoding unambiguous.
  key_scratch_.clear();
  const std::size_t n = oids.size();
  key_scratch_.push_back(static_cast<char>(n >> 8));
  key_scratch_.push_back(static_cast<char>(n));
  for (std::uint32_t oid : oids) {
    const char b[4] = {static_cast<char>(oid >> 24), static_cast<char>(oid >> 16),
                       static_cast<char>(oid >> 8), static_cast<char>(oid)};
    key_scratch_.append(b, 4);
  }
  key_scratch_.append(sql);
  return key_scratch_;
}

CachedStatement* StatementCache::find(std::string_view key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

CachedStatement* StatementCache::lru_victim() {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    if (it->pins == 0) return &*it;
  }
  return nullptr;
}

CachedStatement* StatementCache::add(std::string_view key) {
  lru_.emplace_front();
  CachedStatement& e = lru_.front();
  e.self = lru_.begin();
  e.key = std::string(key);
  e.name = "_binds_s" + std::to_string(++next_name_);
  index_.emplace(std::string_view(e.key), e.self);
  return &e;
}

void StatementCache::remove(CachedStatement* e) {
  if (e->retired) return;
  index_.erase(std::string_view(e->key));
  if (e->pins > 0) {
    e->retired = true;
    retired_.splice(retired_.end(), lru_, e->self);
  } else {
    lru_.erase(e->self);
  }
}

void StatementCache::clear() {
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    remove(&*it);
    it = next;
  }
}

void StatementCache::unpin(CachedStatement* e) {
  if (--e->pins == 0 && e->retired) retired_.erase(e->self);
}

}  // namespace binds::backend::pg
