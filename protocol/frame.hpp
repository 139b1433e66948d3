#pragma once
// Frame layer (PROTOCOL.md §2): a 12-byte big-endian header and a body. Sans-I/O: the decoder is
// fed bytes by whoever owns the socket and hands back whole frames.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace binds::protocol {

enum class FrameType : std::uint8_t {
  hello = 0x01,
  query = 0x02,
  ping = 0x03,
  list_binds = 0x04,
  begin = 0x05,
  commit = 0x06,
  rollback = 0x07,
  cancel = 0x08,
  admin = 0x09,

  hello_ok = 0x81,
  columns = 0x82,
  rows = 0x83,
  complete = 0x84,
  error = 0x85,
  pong = 0x86,
  binds = 0x87,
  table = 0x88,
};

inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::uint32_t kPreHandshakeMaxFrame = 4096;

struct FrameHeader {
  std::uint32_t length = 0;
  std::uint8_t type = 0;  // raw, so unknown types survive decoding and can be answered
  std::uint8_t flags = 0;
  std::uint16_t reserved = 0;
  std::uint32_t request_id = 0;
};

void encode_header(const FrameHeader& h, unsigned char out[kHeaderSize]);
FrameHeader decode_header(const unsigned char in[kHeaderSize]);

struct Frame {
  FrameHeader header;
  std::string body;
  FrameType type() const { return static_cast<FrameType>(header.type); }
};

// Incremental decoder. Usage: feed() whatever arrived, then call next() until it says need_more.
// The body limit is checked on the header alone, before any body byte is buffered.
class FrameDecoder {
 public:
  enum class Status { need_more, frame, error };

  explicit FrameDecoder(std::uint32_t max_body) : max_body_(max_body) {}
  void set_max_body(std::uint32_t max_body) { max_body_ = max_body; }

  void feed(const void* data, std::size_t size);
  Status next(Frame& out);

  const std::string& error() const { return error_; }
  std::size_t buffered() const { return buf_.size() - pos_; }
  // Releases the memory of frames already returned (an idle connection keeps nothing).
  void compact() {
    if (pos_ == buf_.size()) {
      std::string().swap(buf_);
      pos_ = 0;
    }
  }

 private:
  std::uint32_t max_body_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace binds::protocol
