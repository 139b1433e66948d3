// The native protocol's front end: one client connection = one coroutine on its own strand that
// decodes frames (protocol/), hands requests to the engine (binds/engine/) and encodes what comes
// back, plus a writer coroutine that drains the client's outbox to its socket. Transactions,
// pinning, cancels, timeouts and resets are the engine's; this file knows only frames.

#include <spdlog/spdlog.h>

#include <array>
#include <map>

#include "binds/engine/engine.hpp"
#include "binds/socket_wakeups.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"
#include "server/log_limiter.hpp"
#include "server/outbox.hpp"
#include "server/server.hpp"

namespace binds::server {

namespace {

using protocol::ErrorCode;
using protocol::ErrorInfo;
using protocol::Frame;
using protocol::FrameDecoder;
using protocol::FrameType;
using namespace std::chrono_literals;

constexpr auto kHandshakeTimeout = 10s;
constexpr auto kDrainTimeout = 2s;
constexpr std::string_view kServerName = "bindsd/0.1.0";
// A ROWS frame's body adds a few bytes of map and array headers to its rows.
constexpr std::size_t kRowsOverhead = 32;

// Encodes the engine's replies as frames into the client's outbox, batching each request's rows
// into ROWS frames of at most batch_rows rows / about batch_bytes bytes.
class NativeResponder final : public engine::Responder {
 public:
  NativeResponder(Outbox& out, const Limits& limits, ClientInfo& info) : out_(out), limits_(limits), info_(info) {}

  void columns(std::uint32_t id, std::span<const protocol::Column> cols) override {
    auto& p = pending_[id];
    flush(id, p);
    auto frame = protocol::encode_columns(id, cols);
    if (frame.size() - protocol::kHeaderSize > limits_.max_frame) {
      // No frame may exceed max_frame and a COLUMNS frame cannot be split: the result is refused
      // whole (its rows are read and dropped), never sent in part.
      ErrorInfo e;
      e.code = protocol::ErrorCode::bad_request;
      e.message = "the result's " + std::to_string(cols.size()) + " column descriptions take " +
                  std::to_string(frame.size() - protocol::kHeaderSize) + " bytes, more than max_frame (" +
                  std::to_string(limits_.max_frame) + "); select fewer columns";
      e.may_have_executed = true;
      p.refused = std::move(e);
      return;
    }
    p.bytes += frame.size();
    out_.push(std::move(frame));
  }
  void row(std::uint32_t id, std::span<const protocol::ValueView> values) override {
    auto& p = pending_[id];
    if (p.refused) return;
    const std::size_t start = p.batch.bytes();
    p.batch.add(values);
    // Each row fits max_frame (max_row_bytes), but the batch is cut before it would not.
    if (p.batch.rows() > 1 && p.batch.bytes() + kRowsOverhead > limits_.max_frame) {
      auto frame = p.batch.finish_all_but_last(id, start);
      p.bytes += frame.size();
      out_.push(std::move(frame));
    }
    if (p.batch.rows() >= limits_.batch_rows || p.batch.bytes() >= limits_.batch_bytes) flush(id, p);
  }
  std::uint64_t complete(std::uint32_t id, const protocol::Complete& done) override {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second.refused) {
      const ErrorInfo refused = std::move(*it->second.refused);
      return error(id, refused);
    }
    auto bytes = finish(id);
    auto frame = protocol::encode_complete(id, done);
    bytes += frame.size();
    out_.push(std::move(frame), true);
    return bytes;
  }
  std::uint64_t error(std::uint32_t id, const ErrorInfo& info) override {
    auto bytes = finish(id);
    auto frame = protocol::encode_error_within(id, info, limits_.max_frame);
    bytes += frame.size();
    out_.push(std::move(frame), true);
    return bytes;
  }
  bool full() const override { return out_.full(); }
  asio::awaitable<bool> drained(const bool* give_up) override { return out_.room(give_up); }
  void wake() override { out_.wake_room_waiters(); }
  std::size_t max_row_bytes() const override {
    return limits_.max_frame > kRowsOverhead ? limits_.max_frame - kRowsOverhead : 0;
  }

 private:
  struct Pending {
    protocol::RowBatchWriter batch;
    std::uint64_t bytes = 0;
    std::optional<ErrorInfo> refused;  // the result cannot be sent: its rows are dropped
  };
  void flush(std::uint32_t id, Pending& p) {
    if (p.batch.rows() == 0) return;
    auto frame = p.batch.finish(id);
    p.bytes += frame.size();
    out_.push(std::move(frame));
  }
  std::uint64_t finish(std::uint32_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return 0;
    flush(id, it->second);
    auto bytes = it->second.bytes;
    pending_.erase(it);
    return bytes;
  }

  Outbox& out_;
  const Limits& limits_;
  ClientInfo& info_;
  std::map<std::uint32_t, Pending> pending_;  // requests with rows on their way
};

template <class Socket>
struct Session : std::enable_shared_from_this<Session<Socket>> {
  Session(Server& srv, Socket sock, std::shared_ptr<const RouteTable> rt)
      : server(srv),
        socket(std::move(sock)),
        limits(rt->config->limits),
        outbox(socket.get_executor(), limits.client_buffer),
        responder(outbox, limits, *info),
        deadline(socket.get_executor()),
        frame_deadline(socket.get_executor()),
        write_deadline(socket.get_executor()) {}

  Server& server;
  Socket socket;
  const Limits limits;  // fixed for the connection's lifetime
  std::shared_ptr<ClientInfo> info = std::make_shared<ClientInfo>();
  Outbox outbox;
  NativeResponder responder;
  std::shared_ptr<engine::ClientSession> engine;
  std::uint64_t id = 0;
  std::string peer;
  bool draining = false;    // server shutting down: finish what is in flight, then disconnect
  bool local_peer = false;  // Unix socket or loopback TCP: may run admin commands
  bool hello_done = false;
  bool read_hints = false;  // TCP with enable_read_hints() on (binds/socket_wakeups.hpp)
  std::string close_reason;
  bool closing = false;  // close_reason is set: stop waiting for room in the outbox
  asio::steady_timer deadline;        // handshake deadline, then the drain deadline at close
  asio::steady_timer frame_deadline;  // limits.read_timeout for a frame that has begun to arrive
  asio::steady_timer write_deadline;  // limits.write_timeout for each write to the client
  std::array<char, 256> small_read;   // see read_buffer()
  std::uint64_t write_epoch = 0;      // a write_deadline firing for an older write is stale
  LogLimiter log_limit;

  // Strand only. Ends the connection after the replies already queued are written: the reader
  // sees end-of-input and the session drains its outbox before closing.
  void finish(std::string reason) {
    if (close_reason.empty()) close_reason = std::move(reason);
    closing = true;
    outbox.wake_room_waiters();  // a reader waiting for room sees close_reason
    boost::system::error_code ec;
    socket.shutdown(Socket::shutdown_receive, ec);
  }

  // Strand only. Ends the connection: the reader sees the socket close and cleans up.
  void close(std::string reason) {
    if (close_reason.empty()) close_reason = std::move(reason);
    closing = true;
    outbox.wake_room_waiters();  // a reader waiting for room sees close_reason
    boost::system::error_code ec;
    socket.close(ec);
  }

  // Errors the front end answers itself (bad frames, handshake): rate-limited in the log.
  void send_error(std::uint32_t req_id, ErrorCode code, std::string message,
                  std::optional<std::string> bind = std::nullopt) {
    std::uint64_t suppressed = 0;
    const bool ok = log_limit.allow(LogLimiter::Clock::now(), suppressed);
    if (suppressed) spdlog::warn("client #{}: {} log lines suppressed in the last second (rate limit)", id, suppressed);
    if (ok) spdlog::warn("client #{} request {}: {}: {}", id, req_id, protocol::error_code_name(code), message);
    ErrorInfo info;
    info.code = code;
    info.message = std::move(message);
    info.bind = std::move(bind);
    outbox.push(protocol::encode_error_within(req_id, std::move(info), limits.max_frame), true);
  }
  void send_complete(std::uint32_t req_id, std::int64_t affected) {
    protocol::Complete done;
    done.affected = affected;
    outbox.push(protocol::encode_complete(req_id, done), true);
  }

  // Strand only (Outbox::on_write_now). Writes the queued frames if the socket takes them now;
  // what it does not take (or an error) is left to the writer, with its deadline and error path.
  void write_now() {
    // A client with more requests in flight (pipelining) has more replies coming: the writer,
    // which runs after this step, sends them together (one write per reply cost pipelined
    // clients a third of their throughput).
    if (engine && engine->in_flight() > 1) return;
    const auto& q = outbox.queued();
    thread_local std::vector<asio::const_buffer> bufs;  // no suspension in here: one per thread is enough
    bufs.clear();
    for (const auto& f : q) bufs.push_back(asio::buffer(f));
    boost::system::error_code ec;
    const std::size_t n = socket.write_some(bufs, ec);  // the socket is non-blocking
    bufs.clear();
    if (!ec && n > 0) outbox.consumed(n);
  }
  void refresh_info() {
    if (!engine) return;
    info->in_flight = engine->in_flight();
    info->pinned = engine->pinned();
  }

  // The engine's side of the client, made at its first request: a client that connects and waits
  // (an application's pool kept warm) costs no lanes, timers or callbacks until it asks for work.
  engine::ClientSession& requests() {
    if (!engine) {
      engine = std::make_shared<engine::ClientSession>(server.engine(), socket.get_executor(), responder, id, limits);
      engine->set_activity(info->activity);
      if (hello_done) engine->set_client_name(info->get_name());
      engine->on_idle([w = this->weak_from_this()] {
        auto s = w.lock();
        if (!s) return;
        s->refresh_info();
        if (s->draining) s->finish("server shutting down");
      });
    }
    return *engine;
  }
};

template <class Socket>
using SessionPtr = std::shared_ptr<Session<Socket>>;

template <class Socket>
asio::awaitable<void> run_writer(SessionPtr<Socket> s) {
  std::vector<std::string> frames;
  std::vector<asio::const_buffer> bufs, rest;
  while (s->outbox.take(frames)) {
    bufs.clear();
    std::size_t total = 0;
    for (auto& f : frames) {
      bufs.push_back(asio::buffer(f));
      total += f.size();
    }
    boost::system::error_code ec;
    // Each write must make progress within write_timeout: a client that stops reading is cut off
    // (and its requests stopped, its connections returned) instead of holding them forever.
    std::size_t done = 0;
    while (done < total && !ec) {
      const auto epoch = ++s->write_epoch;
      s->write_deadline.expires_after(s->limits.write_timeout);
      s->write_deadline.async_wait([s, epoch](boost::system::error_code tec) {
        if (tec || epoch != s->write_epoch) return;
        s->outbox.abort();
        s->close("did not read its replies for " + std::to_string(s->limits.write_timeout.count()) +
                 " ms (limits.write_timeout)");
      });
      rest.clear();
      std::size_t skip = done;
      for (const auto& b : bufs) {
        if (skip >= b.size()) {
          skip -= b.size();
          continue;
        }
        rest.push_back(asio::buffer(static_cast<const char*>(b.data()) + skip, b.size() - skip));
        skip = 0;
      }
      const std::size_t n = co_await s->socket.async_write_some(rest, asio::redirect_error(asio::use_awaitable, ec));
      ++s->write_epoch;
      s->write_deadline.cancel();
      done += n;
    }
    s->outbox.written(frames.size(), total);  // wakes whoever waits for room, the reader too
    if (ec) {
      s->outbox.abort();
      s->close("write failed: " + ec.message());
      break;
    }
  }
  s->outbox.writer_ended();
}

template <class Socket>
void submit(const SessionPtr<Socket>& s, engine::Request r) {
  s->info->requests++;
  s->server.note_request();
  if (s->draining) {
    s->send_error(r.id, ErrorCode::shutting_down, "the server is shutting down");
    return;
  }
  s->requests().submit(std::move(r));
  s->refresh_info();
}

template <class Socket>
asio::awaitable<void> admin_wait(SessionPtr<Socket> s, std::uint32_t id, std::optional<std::string> bind,
                                 AdminResult result) {
  co_await s->server.wait_idle(result);
  if (!result.ok) {
    s->send_error(id, result.code, result.error, bind);
    co_return;
  }
  s->outbox.push(protocol::encode_table(id, result.table));
}

// Returns a close reason, or "" to keep going.
template <class Socket>
std::string handle_frame(const SessionPtr<Socket>& s, FrameDecoder& dec, const Frame& f) {
  std::uint32_t id = f.header.request_id;
  std::string why;
  if (!s->hello_done) {
    protocol::Hello hello;
    if (f.type() != FrameType::hello) {
      s->send_error(0, ErrorCode::protocol_error, "expected HELLO as the first frame");
      return "protocol error: first frame was not HELLO";
    }
    if (!protocol::decode_hello(f.body, hello, why)) {
      s->send_error(0, ErrorCode::protocol_error, "bad HELLO: " + why);
      return "protocol error: bad HELLO: " + why;
    }
    bool ok = false;
    for (auto v : hello.versions) ok |= v == protocol::kProtocolVersion;
    if (!ok) {
      s->send_error(0, ErrorCode::unsupported_version, "this server speaks protocol version 1 only");
      return "no shared protocol version";
    }
    s->hello_done = true;
    s->deadline.cancel();
    dec.set_max_body(s->limits.max_frame);
    auto routes = s->server.routes();
    s->outbox.push(protocol::encode_hello_ok(protocol::HelloOk{protocol::kProtocolVersion, std::string(kServerName),
                                                               s->limits.max_frame, s->limits.batch_rows,
                                                               routes->config->default_bind,
                                                               {"in_tx"}}));
    s->info->set_name(hello.client);
    if (s->engine) s->engine->set_client_name(hello.client);  // else when it is made
    spdlog::debug("client #{}: handshake done ({})", s->id, hello.client);
    return {};
  }
  spdlog::trace("client #{} request {} frame type 0x{:02x} ({} bytes)", s->id, id, f.header.type, f.body.size());
  switch (f.type()) {
    case FrameType::query: {
      protocol::QueryRequest q;
      if (!protocol::decode_query(f.body, q, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad QUERY: " + why);
        break;
      }
      engine::Request r;
      r.id = id;
      r.bind = std::move(q.bind);
      r.sql = std::move(q.sql);
      r.params = std::move(q.params);
      r.timeout_ms = q.timeout_ms;
      r.in_tx = q.in_tx;
      r.wire_bytes = protocol::kHeaderSize + f.body.size();
      submit(s, std::move(r));
      break;
    }
    case FrameType::begin: {
      protocol::BeginRequest b;
      if (!protocol::decode_begin(f.body, b, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad BEGIN: " + why);
        break;
      }
      engine::Request r;
      r.id = id;
      r.kind = engine::Kind::begin;
      r.bind = std::move(b.bind);
      r.isolation = b.isolation;
      r.read_only = b.read_only;
      r.wire_bytes = protocol::kHeaderSize + f.body.size();
      submit(s, std::move(r));
      break;
    }
    case FrameType::commit:
    case FrameType::rollback: {
      std::optional<std::string> wanted;
      if (!protocol::decode_end(f.body, wanted, why)) {
        s->send_error(id, ErrorCode::bad_request,
                      std::string(f.type() == FrameType::commit ? "bad COMMIT: " : "bad ROLLBACK: ") + why);
        break;
      }
      engine::Request r;
      r.id = id;
      r.kind = f.type() == FrameType::commit ? engine::Kind::commit : engine::Kind::rollback;
      r.bind = std::move(wanted);
      r.wire_bytes = protocol::kHeaderSize + f.body.size();
      submit(s, std::move(r));
      break;
    }
    case FrameType::cancel: {
      std::uint32_t target = 0;
      if (!protocol::decode_cancel(f.body, target, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad CANCEL: " + why);
        break;
      }
      // Answered at once, without waiting behind other requests (PROTOCOL.md §6.6).
      const bool found = s->engine && s->engine->cancel(target);
      s->send_complete(id, found ? 1 : 0);
      s->refresh_info();
      break;
    }
    case FrameType::admin: {
      protocol::AdminRequest req;
      if (!protocol::decode_admin(f.body, req, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad ADMIN: " + why);
        break;
      }
      if (!s->local_peer) {
        s->send_error(id, ErrorCode::bad_request, "admin commands are accepted only over the Unix socket or loopback TCP");
        break;
      }
      spdlog::info("client #{}: admin {}{}", s->id, req.command, req.bind ? " " + *req.bind : "");
      auto result = s->server.admin(req);
      if (result.ok && result.wait_idle) {
        // pause --wait: answered later; the connection goes on meanwhile.
        asio::co_spawn(s->socket.get_executor(), admin_wait(s, id, req.bind, std::move(result)), asio::detached);
        break;
      }
      if (!result.ok) {
        s->send_error(id, result.code, result.error, req.bind);
        break;
      }
      s->outbox.push(protocol::encode_table(id, result.table));
      break;
    }
    case FrameType::ping:
      if (!protocol::decode_empty(f.body, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad PING: " + why);
        break;
      }
      s->outbox.push(protocol::encode_empty(FrameType::pong, id), true);
      break;
    case FrameType::list_binds: {
      if (!protocol::decode_empty(f.body, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad LIST_BINDS: " + why);
        break;
      }
      auto routes = s->server.routes();
      std::vector<protocol::BindInfo> list;
      for (const auto& [key, bind] : routes->config->binds) {
        list.push_back({key, std::string(backend_name(bind.url.backend)),
                        bind.url.sqlite_memory ? ":memory:" : bind.url.database, key == routes->config->default_bind});
      }
      s->outbox.push(protocol::encode_binds(id, list));
      break;
    }
    case FrameType::hello:
      s->send_error(id, ErrorCode::bad_request, "HELLO sent twice");
      break;
    default:
      s->send_error(id, ErrorCode::unknown_frame_type, "unknown frame type 0x" + fmt::format("{:02x}", f.header.type));
  }
  return {};
}

// A client's reads go into its small buffer (Session::small_read, what a request usually takes),
// through Asio's own read: it parks on the descriptor epoll already watches, where waiting for
// readiness would re-arm it (an epoll_ctl per request); on TCP a ShortReadBuffer keeps it from
// first trying a socket the kernel said is drained (binds/socket_wakeups.hpp). What does not fit is
// read at once into one
// big buffer per I/O thread, so an idle client holds only the small one (10,000 idle clients must
// cost little). A function, not a thread_local named inside the coroutine: a coroutine may resume
// on another thread, and the compiler may keep the address it computed before the suspension.
[[gnu::noinline]] asio::mutable_buffer read_buffer() {
  static thread_local std::array<char, 64 * 1024> buf;
  return asio::buffer(buf);
}

template <class Socket>
asio::awaitable<std::string> read_loop(const SessionPtr<Socket>& s) {
  FrameDecoder dec(protocol::kPreHandshakeMaxFrame);
  Frame f;
  bool partial = false;  // a frame has begun to arrive and its read deadline is armed
  for (;;) {
    // Backpressure: while the client's unread replies fill its buffer, take no more requests from
    // it. The writer wakes us as it drains; write_timeout cuts a client that never reads.
    if (s->outbox.full() && s->close_reason.empty()) co_await s->outbox.room(&s->closing);
    if (!s->close_reason.empty()) co_return s->close_reason;
    boost::system::error_code ec;
    const std::size_t n =
        co_await s->socket.async_read_some(ShortReadBuffer(asio::buffer(s->small_read), s->read_hints),
                                           asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      dec.feed(s->small_read.data(), n);
      // A full small buffer: more is waiting (a big frame, or many), taken at once through the
      // thread's big buffer, one buffer's worth per turn: the frames read are handled (and the
      // outbox checked for room) before more is read. End-of-input found here is left for the
      // next read to report, after the frames already read are handled.
      if (n == s->small_read.size()) {
        auto buf = read_buffer();
        const std::size_t m = s->socket.read_some(buf, ec);
        if (!ec) {
          dec.feed(buf.data(), m);
        } else if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::eof) {
          ec.clear();
        }
      }
    }
    if (ec) {
      if (!s->close_reason.empty()) co_return s->close_reason;
      if (ec == asio::error::eof) co_return "client closed the connection";
      co_return "read failed: " + ec.message();
    }
    bool completed = false;
    for (;;) {
      auto st = dec.next(f);
      if (st == FrameDecoder::Status::need_more) break;
      if (st == FrameDecoder::Status::error) {
        s->send_error(0, ErrorCode::protocol_error, dec.error());
        co_return "protocol error: " + dec.error();
      }
      completed = true;
      if (auto reason = handle_frame(s, dec, f); !reason.empty()) co_return reason;
    }
    if (f.body.capacity() > 4096) std::string().swap(f.body);  // a big frame's memory goes with it
    // Every frame that has begun must arrive in full within read_timeout (after HELLO; before it,
    // the handshake deadline covers everything).
    if (dec.buffered() == 0) {
      dec.compact();
      if (partial) s->frame_deadline.cancel();
      partial = false;
    } else if (s->hello_done && (!partial || completed)) {
      partial = true;
      s->frame_deadline.expires_after(s->limits.read_timeout);
      s->frame_deadline.async_wait([s](boost::system::error_code ec2) {
        if (!ec2)
          s->close("a frame did not arrive in full within " + std::to_string(s->limits.read_timeout.count()) +
                   " ms (limits.read_timeout)");
      });
    }
  }
}

template <class Socket>
asio::awaitable<void> session_main(Server& server, Socket socket, std::string peer, bool local, bool read_hints) {
  auto s = std::make_shared<Session<Socket>>(server, std::move(socket), server.routes());
  s->peer = std::move(peer);
  s->local_peer = local;
  s->read_hints = read_hints;
  s->info->peer = s->peer;
  s->info->activity = std::make_shared<engine::Activity>();
  s->id = server.add_session(
      // Only `s` captured (not the executor too): these live as long as the client, 10,000 idle
      // clients hold 10,000 of each.
      [s](bool hard) {
        asio::post(s->socket.get_executor(), [s, hard] {
          if (hard) {
            s->outbox.close();
            s->close("server shutting down (grace period over)");
            return;
          }
          s->draining = true;
          if (!s->engine || s->engine->in_flight() == 0) s->finish("server shutting down");
        });
      },
      s->info,
      [s](std::shared_ptr<Pool> pool, std::string reason) {
        asio::post(s->socket.get_executor(), [s, pool = std::move(pool), reason = std::move(reason)] {
          if (s->engine) s->engine->end_transactions(pool, reason);
        });
      },
      [s](std::string message) {
        asio::post(s->socket.get_executor(), [s, message = std::move(message)] {
          // Connection-level (request id 0), then the session ends as if the client had left:
          // what runs is cancelled, open transactions roll back before their connections return.
          ErrorInfo info;
          info.code = ErrorCode::cancelled;
          info.message = std::move(message);
          s->outbox.push(protocol::encode_error_within(0, std::move(info), s->limits.max_frame));
          s->finish("killed by an administrator");
        });
      });
  server.counters().clients_total++;
  server.counters().clients_now++;
  spdlog::info("client #{} connected from {}", s->id, s->peer);

  {
    // Reads are read_some() after async_wait(): the socket must not block if the data went away.
    boost::system::error_code nec;
    s->socket.non_blocking(true, nec);
  }
  // The writer runs while there are frames to write (Outbox), started by the first of them.
  // A plain pointer keeps the callback inside std::function's own storage; the outbox is the
  // session's, so the session is alive whenever it calls.
  s->outbox.on_start_writer([raw = s.get()] {
    asio::co_spawn(raw->socket.get_executor(), run_writer(raw->shared_from_this()), asio::detached);
  });
  s->outbox.on_schedule([raw = s.get()] {
    asio::post(raw->socket.get_executor(), [s = raw->shared_from_this()] { s->outbox.kick(); });
  });
  s->outbox.on_write_now([raw = s.get()] { raw->write_now(); });

  s->deadline.expires_after(kHandshakeTimeout);
  s->deadline.async_wait([s](boost::system::error_code ec) {
    if (!ec && !s->hello_done) s->close("no HELLO within 10 s");
  });

  std::string reason;
  try {
    reason = co_await read_loop(s);
  } catch (const std::exception& e) {
    reason = std::string("internal error: ") + e.what();
  }
  s->frame_deadline.cancel();
  if (auto n = s->log_limit.pending()) spdlog::warn("client #{}: {} log lines suppressed (rate limit)", s->id, n);

  // A client that does not read cannot hold the session open past the drain deadline.
  s->deadline.cancel();
  s->deadline.expires_after(kDrainTimeout);
  s->deadline.async_wait([s](boost::system::error_code ec) {
    if (!ec) s->close("did not read its last replies");
  });
  // Stop what runs (a client that left wants nothing more from it), roll back, return connections.
  if (s->engine) co_await s->engine->close();
  s->outbox.close();
  co_await s->outbox.writer_stopped();
  s->deadline.cancel();
  boost::system::error_code ec;
  s->socket.shutdown(Socket::shutdown_both, ec);
  s->socket.close(ec);
  if (s->engine) s->engine->on_idle(nullptr);
  server.counters().clients_now--;
  server.remove_session(s->id);
  spdlog::info("client #{} disconnected: {}", s->id, reason);
}

}  // namespace

// Plain functions, not coroutines: by-value arguments of a co_await expression are fragile under
// GCC 12 (a closure temporary was seen destroyed twice), so the socket goes straight into
// session_main's frame.
asio::awaitable<void> run_session(Server& server, asio::ip::tcp::socket socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  std::string peer = ec ? "tcp:?" : "tcp:" + ep.address().to_string() + ":" + std::to_string(ep.port());
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  bool local = !ec && ep.address().is_loopback();
  const bool hints = enable_read_hints(socket);
  return session_main(server, std::move(socket), std::move(peer), local, hints);
}

asio::awaitable<void> run_session(Server& server, asio::local::stream_protocol::socket socket) {
  return session_main(server, std::move(socket), std::string("unix socket"), true, false);
}

}  // namespace binds::server
