#include "protocol/frame.hpp"

#include <cstring>

namespace binds::protocol {

namespace {
void put32(unsigned char* p, std::uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}
std::uint32_t get32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
}  // namespace

void encode_header(const FrameHeader& h, unsigned char out[kHeaderSize]) {
  put32(out, h.length);
  out[4] = h.type;
  out[5] = h.flags;
  out[6] = static_cast<unsigned char>(h.reserved >> 8);
  out[7] = static_cast<unsigned char>(h.reserved);
  put32(out + 8, h.request_id);
}

FrameHeader decode_header(const unsigned char in[kHeaderSize]) {
  FrameHeader h;
  h.length = get32(in);
  h.type = in[4];
  h.flags = in[5];
  h.reserved = static_cast<std::uint16_t>((in[6] << 8) | in[7]);
  h.request_id = get32(in + 8);
  return h;
}

void FrameDecoder::feed(const void* data, std::size_t size) {
  // Compact lazily so a long pipelined stream does not make the buffer grow without bound.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ > 64 * 1024)) {
    buf_.erase(0, pos_);
    pos_ = 0;
    // One big frame must not leave every idle client holding its buffer.
    if (buf_.empty() && buf_.capacity() > 64 * 1024) std::string().swap(buf_);
  }
  buf_.append(static_cast<const char*>(data), size);
}

FrameDecoder::Status FrameDecoder::next(Frame& out) {
  if (!error_.empty()) return Status::error;
  if (buffered() < kHeaderSize) return Status::need_more;
  auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
  FrameHeader h = decode_header(p);
  if (h.length > max_body_) {
    error_ = "frame body of " + std::to_string(h.length) + " bytes exceeds the limit of " +
             std::to_string(max_body_);
    return Status::error;
  }
  if (h.flags != 0 || h.reserved != 0) {
    error_ = "frame header has non-zero flags/reserved bytes (not a binds v1 stream?)";
    return Status::error;
  }
  if (buffered() < kHeaderSize + h.length) return Status::need_more;
  out.header = h;
  out.body.assign(buf_.data() + pos_ + kHeaderSize, h.length);
  pos_ += kHeaderSize + h.length;
  return Status::frame;
}

}  // namespace binds::protocol
