#pragma once
// The transport and framing layer of the PostgreSQL backend: a byte stream (TCP, a Unix socket or
// TLS over TCP) and a bounded read buffer that finds PostgreSQL message boundaries. This layer
// knows where messages start and end and how long they are, never what they mean, so a future
// PostgreSQL front end can forward messages through it (Reader hands out each message's raw bytes,
// or its header first for one too big to hold); postgresql.cpp interprets them.
//
// Threading: a Transport and a Reader belong to one connection and are used by one coroutine at a
// time, whatever its executor. Nothing here locks.

#include <utility>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "protocol/pg/framing.hpp"

namespace binds::backend::pg {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol::socket;
using tls_stream = asio::ssl::stream<tcp::socket>;
using error_code = boost::system::error_code;

// One of three byte streams behind the same calls. The read/write calls return the socket
// operation's own awaitable (no coroutine frame of their own), so the hot path pays nothing for
// the indirection; completions resume the awaiting coroutine on its executor.
class Transport {
 public:
  // Plain sockets go into non-blocking mode at the first write_now()/read_now(); asynchronous
  // operations are unaffected by it.
  explicit Transport(tcp::socket s) : tcp_(std::move(s)) {}
  explicit Transport(unix_socket s) : unix_(std::move(s)) {}
  Transport(Transport&&) = default;
  Transport& operator=(Transport&&) = default;

  // Wraps the TCP socket in TLS (after the server accepted an SSLRequest); the handshake is the
  // caller's. `ctx` stays alive as long as the stream.
  tls_stream& start_tls(std::shared_ptr<asio::ssl::context> ctx);

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer b, error_code& ec);
  asio::awaitable<std::size_t> write_all(asio::const_buffer b, error_code& ec);

  // Plain sockets: one non-blocking attempt (ec = would_block if the kernel has no room or no
  // bytes). The common case then costs a system call instead of a trip through the scheduler.
  // TLS: always would_block (records need the stream's asynchronous machinery).
  std::size_t write_now(asio::const_buffer b, error_code& ec);
  std::size_t read_now(asio::mutable_buffer b, error_code& ec);
  // Any stream, idle connections only: reads what has arrived without waiting. On TLS it decrypts
  // whole records (a partial one stays buffered in the stream for the next read); it is not for
  // the hot path, where the record machinery is left to the asynchronous reads.
  std::size_t read_available(asio::mutable_buffer b, error_code& ec);

  // Closes at once; pending operations complete with operation_aborted. Idempotent.
  void close();
  bool is_open() const;
  bool is_tls() const { return tls_ != nullptr; }
  bool is_unix() const { return unix_.has_value(); }
  // The plain socket underneath, for connecting and socket options (nullptr if not of that kind).
  tcp::socket* tcp_socket() { return tls_ ? &tls_->next_layer() : (tcp_ ? &*tcp_ : nullptr); }
  unix_socket* unix_sock() { return unix_ ? &*unix_ : nullptr; }
  // -1 when closed.
  int native_handle();
  asio::any_io_executor get_executor();
  // The TCP socket reports what each read leaves (binds/socket_wakeups.hpp): reads then skip the
  // recv that would only find the socket empty.
  void set_read_hints(bool on) { read_hints_ = on; }

 private:
  bool read_hints_ = false;
  std::optional<tcp::socket> tcp_;
  std::optional<unix_socket> unix_;
  std::shared_ptr<asio::ssl::context> tls_ctx_;
  std::unique_ptr<tls_stream> tls_;
};

// The read side's buffer and framer. Memory stays bounded whatever the result size: the buffer is
// `chunk` bytes and grows only when the caller asks it to hold one message bigger than that (the
// caller decides which messages deserve it); a message it refuses is skipped as it arrives
// (skip()), never held. shrink() returns to `chunk` once the big message is gone.
class Reader {
 public:
  static constexpr std::size_t kDefaultChunk = 64 * 1024;

  explicit Reader(std::size_t chunk = kDefaultChunk);
  Reader(Reader&&) = default;
  Reader& operator=(Reader&&) = default;

  enum class Frame : std::uint8_t {
    message,  // `m` is the next whole message, already consumed; views valid until prepare()
    partial,  // more bytes needed; if the header is in, type/total describe the message
    error,    // a length word below the protocol minimum: the stream cannot be resynchronised
  };
  struct Header {
    char type = 0;
    std::size_t total = 0;  // type byte + length word + body; 0 while the header is incomplete
  };
  Frame next(pgwire::Message& m, Header& partial);

  // Drops the message whose header is at the front (total bytes), now and as it arrives.
  void skip(std::size_t total);
  std::size_t skipping() const { return skip_left_; }

  // Room to read into. `hold` is the size of a message the caller wants to hold whole (0 = none
  // bigger than the buffer): the buffer grows to fit it.
  std::span<char> prepare(std::size_t hold = 0);
  void commit(std::size_t n);

  std::size_t buffered() const { return end_ - begin_; }
  std::string_view pending() const { return {buf_.get() + begin_, end_ - begin_}; }
  std::size_t capacity() const { return cap_; }
  // Back to `chunk` bytes if a big message made the buffer grow and it no longer needs the room.
  void shrink();

 private:
  void reallocate(std::size_t cap);

  std::size_t chunk_;
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;  // first unconsumed byte
  std::size_t end_ = 0;    // end of received bytes
  std::size_t skip_left_ = 0;
};

// A timer that runs `on_expire` (typically: close the socket an operation waits on) unless it is
// destroyed first. Must be created and destroyed on the executor its handler runs on (a strand of
// the coroutine using it), so the handler never races the coroutine; after destruction the
// handler does nothing even if it was already queued.
class Deadline {
 public:
  Deadline(const asio::any_io_executor& ex, std::chrono::steady_clock::duration after,
           std::function<void()> on_expire);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  bool expired() const { return state_->expired; }

 private:
  struct State {
    bool armed = true;
    bool expired = false;
    std::function<void()> on_expire;
  };
  std::shared_ptr<State> state_;
  asio::steady_timer timer_;
};

}  // namespace binds::backend::pg
