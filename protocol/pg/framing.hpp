#pragma once
// Framing of the PostgreSQL v3 byte stream. Sans-I/O: whoever owns the socket hands bytes in and
// gets whole messages (as views) back.
//
// Two phases. A server first sees untyped startup packets (Int32 length, Int32 code, payload):
// StartupMessage, SSLRequest, GSSENCRequest or CancelRequest; the caller switches to the typed
// phase once it has accepted a StartupMessage. Everything else, in both directions, is typed:
// Byte1 type, Int32 length (counting itself, not the type byte), body.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "protocol/pg/error.hpp"
#include "protocol/pg/message.hpp"

namespace binds::pgwire {

enum class Phase : std::uint8_t { startup, typed };

// PostgreSQL refuses startup packets above 10000 bytes (MAX_STARTUP_PACKET_LENGTH).
inline constexpr std::uint32_t kMaxStartupPacket = 10000;
// About PostgreSQL's own ceiling for one message (MaxAllocSize, 1 GB - 1). Callers should pass a
// tighter limit where they know one.
inline constexpr std::uint32_t kDefaultMaxMessage = 0x3FFFFFFF;

enum class ReadStatus : std::uint8_t { need_more, message, error };

struct ReadResult {
  ReadStatus status = ReadStatus::need_more;
  Error error = Error::ok;  // set when status == error
  // For need_more: the total input size (from the start of `in`) at which another call can make
  // progress, i.e. the header size until the header is complete, then header + body. Lets a
  // proxy size its next read or forward a large body in pieces.
  std::size_t needed = 0;
};

// Frames the message at the start of `in`. On `message`, `out` refers into `in` and
// out.raw.size() bytes are consumed; on `need_more`, nothing is. `max_length` bounds the length
// word and is checked as soon as the header is complete, before any body byte is needed.
// Stateless and thread-safe.
ReadResult read_message(std::string_view in, Phase phase, std::uint32_t max_length, Message& out);

// Header size of each phase: type byte + length word, or length word + request code.
inline constexpr std::size_t header_size(Phase phase) { return phase == Phase::typed ? 5 : 8; }

// A buffering decoder for callers that do not keep their own buffer. Feed bytes (or read into
// prepare()/commit()), then call next() until it says need_more. Messages returned by next() are
// views into the decoder's buffer, valid until the next feed() or prepare(). After an error the
// stream cannot be resynchronised and every later next() repeats it.
//
// Not thread-safe; one per connection direction.
class MessageDecoder {
 public:
  explicit MessageDecoder(Phase phase = Phase::typed, std::uint32_t max_length = kDefaultMaxMessage,
                          std::uint32_t max_startup_length = kMaxStartupPacket)
      : phase_(phase), max_length_(max_length), max_startup_length_(max_startup_length) {}

  Phase phase() const { return phase_; }
  // Takes effect at the next message: call it after handling the StartupMessage.
  void set_phase(Phase phase) { phase_ = phase; }
  void set_max_length(std::uint32_t max_length) { max_length_ = max_length; }

  void feed(std::string_view bytes);
  // Room for at least `n` more bytes at the end of the buffer, to receive into directly;
  // commit(k) then appends the first k of them.
  std::span<char> prepare(std::size_t n);
  void commit(std::size_t n);

  ReadStatus next(Message& out);

  Error error() const { return error_; }
  // Bytes received but not yet returned as messages. After an SSLRequest or GSSENCRequest this
  // must be zero before the handshake starts: bytes sent ahead of it arrived in clear text and
  // must not be treated as part of the encrypted session (CVE-2021-23214).
  std::size_t buffered() const { return size_ - pos_; }
  std::string_view pending() const { return {buf_.get() + pos_, size_ - pos_}; }

 private:
  void make_room(std::size_t n);

  Phase phase_;
  std::uint32_t max_length_;
  std::uint32_t max_startup_length_;
  // A plain array rather than std::string: growing it must not zero-fill space that a socket read
  // is about to overwrite.
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t pos_ = 0;   // start of the first unreturned byte
  std::size_t size_ = 0;  // end of received bytes
  Error error_ = Error::ok;
};

}  // namespace binds::pgwire
