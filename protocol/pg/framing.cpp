#include "protocol/pg/framing.hpp"

#include <algorithm>
#include <cstring>

namespace binds::pgwire {

ReadResult read_message(std::string_view in, Phase phase, std::uint32_t max_length, Message& out) {
  // Startup packets have no type byte; their length word counts itself and the request code.
  const std::size_t type_size = phase == Phase::typed ? 1 : 0;
  const std::uint32_t min_length = phase == Phase::typed ? 4 : 8;
  if (in.size() < type_size + 4) return {ReadStatus::need_more, Error::ok, type_size + 4};

  const std::uint32_t length = detail::load_u32(in.data() + type_size);
  if (length < min_length) return {ReadStatus::error, Error::length_too_small, 0};
  if (length > max_length) return {ReadStatus::error, Error::length_too_large, 0};

  const std::size_t total = type_size + std::size_t{length};
  if (in.size() < total) return {ReadStatus::need_more, Error::ok, total};

  out.type = phase == Phase::typed ? in[0] : '\0';
  out.body = in.substr(type_size + 4, length - 4);
  out.raw = in.substr(0, total);
  return {ReadStatus::message, Error::ok, 0};
}

void MessageDecoder::make_room(std::size_t n) {
  if (capacity_ - size_ >= n) return;
  const std::size_t live = size_ - pos_;
  // Slide the live bytes down when that alone frees enough room: a pipelined stream then reuses
  // one buffer instead of growing it.
  if (pos_ > 0 && capacity_ - live >= n) {
    if (live > 0) std::memmove(buf_.get(), buf_.get() + pos_, live);
    pos_ = 0;
    size_ = live;
    return;
  }
  std::size_t capacity = std::max<std::size_t>({capacity_ * 2, live + n, 4096});
  auto grown = std::make_unique_for_overwrite<char[]>(capacity);
  if (live > 0) std::memcpy(grown.get(), buf_.get() + pos_, live);
  buf_ = std::move(grown);
  capacity_ = capacity;
  pos_ = 0;
  size_ = live;
}

void MessageDecoder::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  make_room(bytes.size());
  std::memcpy(buf_.get() + size_, bytes.data(), bytes.size());
  size_ += bytes.size();
}

std::span<char> MessageDecoder::prepare(std::size_t n) {
  make_room(n);
  return {buf_.get() + size_, capacity_ - size_};
}

void MessageDecoder::commit(std::size_t n) { size_ += std::min(n, capacity_ - size_); }

ReadStatus MessageDecoder::next(Message& out) {
  if (error_ != Error::ok) return ReadStatus::error;
  if (pos_ == size_) {
    // Nothing live: restart at the front so the next feed never has to move bytes.
    pos_ = size_ = 0;
    return ReadStatus::need_more;
  }
  const std::uint32_t limit = phase_ == Phase::typed ? max_length_ : max_startup_length_;
  ReadResult r = read_message(pending(), phase_, limit, out);
  if (r.status == ReadStatus::error) error_ = r.error;
  if (r.status == ReadStatus::message) pos_ += out.raw.size();
  return r.status;
}

}  // namespace binds::pgwire
