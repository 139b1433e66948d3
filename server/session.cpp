// One client connection = one coroutine on its own strand (reader), plus a writer coroutine and
// one lane coroutine per bind with work queued. Requests of a client to the same bind run in order
// on one lane; different binds run concurrently (PROTOCOL.md §8).

#include <spdlog/spdlog.h>

#include <deque>
#include <map>

#include "binds/pool.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"
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

struct Request {
  std::uint32_t id = 0;
  protocol::QueryRequest query;
  std::string bind;
  std::shared_ptr<Pool> pool;
};

struct Lane {
  std::deque<Request> queue;
  bool running = false;
  Lease pinned;  // set while the backend connection is inside a transaction
};

// Streams a result from a worker thread into the client's outbox in bounded ROWS frames.
class QuerySink final : public RowSink {
 public:
  QuerySink(Outbox& out, std::uint32_t id, const Limits& limits)
      : out_(out), id_(id), limits_(limits) {}

  bool columns(std::vector<protocol::Column> cols) override {
    return alive_ = out_.push_blocking(protocol::encode_columns(id_, cols));
  }
  bool row(protocol::Row& r) override {
    batch_.add(r);
    if (batch_.rows() >= limits_.batch_rows || batch_.bytes() >= limits_.batch_bytes) return flush();
    return true;
  }
  bool flush() {
    if (batch_.rows() == 0) return alive_;
    // The frame body adds a few bytes of map/array headers to the rows.
    if (batch_.bytes() + 32 > limits_.max_frame) {
      too_big_ = true;
      return alive_ = false;
    }
    return alive_ = out_.push_blocking(batch_.finish(id_));
  }
  bool too_big() const { return too_big_; }
  bool client_gone() const { return !alive_ && !too_big_; }

 private:
  Outbox& out_;
  std::uint32_t id_;
  const Limits& limits_;
  protocol::RowBatchWriter batch_;
  bool alive_ = true;
  bool too_big_ = false;
};

// Everything a query needs on the worker thread. Shared with the worker so that nothing it touches
// (least of all the lease) can go away while it runs, even if the session ends meanwhile.
struct Job {
  Job(Outbox& out, std::uint32_t id, const Limits& limits) : sink(out, id, limits) {}
  std::shared_ptr<void> keep;  // the session, whose outbox the sink writes to
  Lease lease;
  Request req;
  QuerySink sink;
  std::optional<BackendError> error;
  ExecResult result;
  TxStatus tx = TxStatus::unknown;
};

template <class Socket>
struct Session {
  Session(Server& srv, Socket sock, std::shared_ptr<const RouteTable> rt)
      : server(srv),
        socket(std::move(sock)),
        outbox(socket.get_executor(), rt->config->limits.client_buffer),
        limits(rt->config->limits),
        lanes_idle(socket.get_executor()),
        writer_done(socket.get_executor()),
        deadline(socket.get_executor()) {}

  Server& server;
  Socket socket;
  Outbox outbox;
  const Limits limits;  // fixed for the connection's lifetime
  std::uint64_t id = 0;
  std::string peer;
  std::map<std::string, Lane> lanes;
  int in_flight = 0;
  int active_lanes = 0;
  bool closing = false;
  bool writer_running = false;
  bool hello_done = false;
  std::string close_reason;
  asio::steady_timer lanes_idle;
  asio::steady_timer writer_done;
  asio::steady_timer deadline;  // handshake deadline, then the drain deadline at close

  // Strand only. Ends the connection: the reader sees the socket close and cleans up.
  void close(std::string reason) {
    if (close_reason.empty()) close_reason = std::move(reason);
    boost::system::error_code ec;
    socket.close(ec);
  }

  void send_error(std::uint32_t req_id, ErrorCode code, std::string message,
                  std::optional<std::string> bind = std::nullopt, std::string sqlstate = {},
                  std::optional<std::int64_t> number = std::nullopt) {
    server.counters().errors++;
    auto level = code == ErrorCode::sql_error ? spdlog::level::info : spdlog::level::warn;
    spdlog::log(level, "client #{} request {}{}: {}{}{}: {}", id, req_id,
                bind ? " bind " + *bind : std::string(), protocol::error_code_name(code),
                sqlstate.empty() ? "" : " ", sqlstate, message);
    outbox.push(protocol::encode_error(
        req_id, ErrorInfo{code, std::move(message), std::move(bind), std::move(sqlstate), number}));
  }
};

template <class Socket>
using SessionPtr = std::shared_ptr<Session<Socket>>;

template <class Socket>
asio::awaitable<void> execute(const SessionPtr<Socket>& s, Lane& lane, Request req) {
  auto job = std::make_shared<Job>(s->outbox, req.id, s->limits);
  job->keep = s;
  job->req = std::move(req);
  auto& pool = *job->req.pool;
  const std::string& bind = job->req.bind;

  if (lane.pinned) {
    job->lease = std::move(lane.pinned);
  } else {
    auto acquired = co_await pool.acquire();
    if (acquired.error) {
      s->send_error(job->req.id, acquired.error->code, acquired.error->message, bind);
      co_return;
    }
    job->lease = std::move(acquired.lease);
  }
  if (s->closing) co_return;  // client went away while we waited; the lease goes straight back

  // Named, and passed by reference: GCC 12 mishandles closures that are temporaries inside a
  // co_await expression (seen as a double resume under ASan). offload() copies it for the worker.
  auto work = [job]() -> int {
    if (auto err = job->lease.validate()) {
      job->error = std::move(err);
      return 0;
    }
    auto& conn = job->lease.conn();
    job->error = conn.execute(job->req.query.sql, job->req.query.params, job->sink, job->result);
    if (!job->error) job->sink.flush();
    job->tx = conn.tx_status();
    return 0;
  };
  co_await pool.run(std::ref(work));

  if (job->error && job->error->connection_broken) job->lease.mark_broken();
  bool in_tx = !(job->error && job->error->connection_broken) &&
               (job->tx == TxStatus::in_tx || job->tx == TxStatus::failed_tx);
  if (in_tx) {
    job->lease.set_pinned(true);
    lane.pinned = std::move(job->lease);
  } else {
    job->lease = Lease();  // back to the pool now, before the client even reads the reply
  }
  s->server.counters().queries++;

  if (job->sink.too_big()) {
    s->send_error(job->req.id, ErrorCode::bad_request,
                  "a result row is larger than max_frame (" + std::to_string(s->limits.max_frame) +
                      " bytes)",
                  bind);
  } else if (job->error) {
    auto& e = *job->error;
    s->send_error(job->req.id, e.code, e.message, bind, e.sqlstate, e.number);
  } else if (!job->sink.client_gone()) {
    protocol::Complete done;
    done.affected = job->result.affected;
    done.row_count = job->result.row_count;
    done.last_insert_id = job->result.last_insert_id;
    done.in_transaction = in_tx;
    s->outbox.push(protocol::encode_complete(job->req.id, done));
  }
}

template <class Socket>
asio::awaitable<void> run_lane(SessionPtr<Socket> s, std::string key) {
  Lane& lane = s->lanes[key];  // std::map nodes are stable
  while (!lane.queue.empty() && !s->closing) {
    Request req = std::move(lane.queue.front());
    lane.queue.pop_front();
    try {
      co_await execute(s, lane, std::move(req));
    } catch (const std::exception& e) {
      s->send_error(req.id, ErrorCode::internal, std::string("internal error: ") + e.what(), key);
    }
    --s->in_flight;
  }
  s->in_flight -= static_cast<int>(lane.queue.size());
  lane.queue.clear();
  lane.running = false;
  if (--s->active_lanes == 0) s->lanes_idle.cancel();
}

template <class Socket>
asio::awaitable<void> run_writer(SessionPtr<Socket> s) {
  std::vector<std::string> frames;
  std::vector<asio::const_buffer> bufs;
  while (co_await s->outbox.take(frames)) {
    bufs.clear();
    std::size_t total = 0;
    for (auto& f : frames) {
      bufs.push_back(asio::buffer(f));
      total += f.size();
    }
    boost::system::error_code ec;
    co_await asio::async_write(s->socket, bufs, asio::redirect_error(asio::use_awaitable, ec));
    s->outbox.written(total);
    if (ec) {
      s->outbox.abort();
      s->close("write failed: " + ec.message());
      break;
    }
  }
  s->writer_running = false;
  s->writer_done.cancel();
}

template <class Socket>
void handle_query(const SessionPtr<Socket>& s, const Frame& f) {
  protocol::QueryRequest q;
  std::string why;
  std::uint32_t id = f.header.request_id;
  if (!protocol::decode_query(f.body, q, why)) {
    s->send_error(id, ErrorCode::bad_request, "bad QUERY: " + why);
    return;
  }
  auto routes = s->server.routes();
  std::string key;
  auto pool = routes->resolve(q.bind, key);
  if (!pool) {
    s->send_error(id, ErrorCode::unknown_bind, "unknown bind \"" + key + "\"", key);
    return;
  }
  if (s->in_flight >= static_cast<int>(s->limits.max_in_flight)) {
    s->send_error(id, ErrorCode::busy,
                  "too many requests in flight on this connection (limit " +
                      std::to_string(s->limits.max_in_flight) + ")",
                  key);
    return;
  }
  ++s->in_flight;
  Lane& lane = s->lanes[key];
  lane.queue.push_back(Request{id, std::move(q), key, std::move(pool)});
  if (!lane.running) {
    lane.running = true;
    ++s->active_lanes;
    asio::co_spawn(s->socket.get_executor(), run_lane(s, key), asio::detached);
  }
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
    s->outbox.push(protocol::encode_hello_ok(protocol::HelloOk{
        protocol::kProtocolVersion, std::string(kServerName), s->limits.max_frame,
        s->limits.batch_rows, routes->config->default_bind}));
    spdlog::debug("client #{}: handshake done ({})", s->id, hello.client);
    return {};
  }
  switch (f.type()) {
    case FrameType::query:
      handle_query(s, f);
      break;
    case FrameType::ping:
      if (!protocol::decode_empty(f.body, why)) {
        s->send_error(id, ErrorCode::bad_request, "bad PING: " + why);
        break;
      }
      s->outbox.push(protocol::encode_empty(FrameType::pong, id));
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
                        bind.url.sqlite_memory ? ":memory:" : bind.url.database,
                        key == routes->config->default_bind});
      }
      s->outbox.push(protocol::encode_binds(id, list));
      break;
    }
    case FrameType::hello:
      s->send_error(id, ErrorCode::bad_request, "HELLO sent twice");
      break;
    default:
      s->send_error(id, ErrorCode::unknown_frame_type,
                    "unknown frame type 0x" + fmt::format("{:02x}", f.header.type));
  }
  return {};
}

template <class Socket>
asio::awaitable<std::string> read_loop(const SessionPtr<Socket>& s) {
  FrameDecoder dec(protocol::kPreHandshakeMaxFrame);
  std::array<char, 16 * 1024> buf;
  Frame f;
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = co_await s->socket.async_read_some(asio::buffer(buf),
                                                       asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!s->close_reason.empty()) co_return s->close_reason;
      if (ec == asio::error::eof) co_return "client closed the connection";
      co_return "read failed: " + ec.message();
    }
    dec.feed(buf.data(), n);
    for (;;) {
      auto st = dec.next(f);
      if (st == FrameDecoder::Status::need_more) break;
      if (st == FrameDecoder::Status::error) {
        s->send_error(0, ErrorCode::protocol_error, dec.error());
        co_return "protocol error: " + dec.error();
      }
      if (auto reason = handle_frame(s, dec, f); !reason.empty()) co_return reason;
    }
    // A client that keeps sending but never reads would make its replies pile up here.
    if (s->outbox.bytes() > 4ull * s->limits.client_buffer + s->limits.max_frame) {
      s->outbox.abort();  // nothing queued will ever be read: drop it and cut the connection
      s->close("client is not reading its responses");
      co_return s->close_reason;
    }
  }
}

template <class Socket>
asio::awaitable<void> session_main(Server& server, Socket socket, std::string peer) {
  auto s = std::make_shared<Session<Socket>>(server, std::move(socket), server.routes());
  s->peer = std::move(peer);
  auto ex = s->socket.get_executor();
  s->id = server.add_session([s, ex] {
    // Unblock workers streaming to this client at once, even if the strand never runs again.
    s->outbox.close();
    asio::post(ex, [s] {
      s->closing = true;
      s->close("server shutting down");
    });
  });
  server.counters().clients_total++;
  server.counters().clients_now++;
  spdlog::info("client #{} connected from {}", s->id, s->peer);

  s->writer_running = true;
  s->writer_done.expires_at(asio::steady_timer::time_point::max());
  asio::co_spawn(ex, run_writer(s), asio::detached);

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

  // Stop taking requests; let queued frames (e.g. a final ERROR) drain; wait for running queries,
  // whose workers see the closed outbox and stop streaming.
  s->closing = true;
  s->outbox.close();
  // A final frame (e.g. the ERROR that explains a protocol error) gets a short while to reach the
  // client; a client that does not read cannot hold the session open past that.
  s->deadline.cancel();
  s->deadline.expires_after(kDrainTimeout);
  s->deadline.async_wait([s](boost::system::error_code ec) {
    if (!ec) s->close("did not read its last replies");
  });
  while (s->active_lanes > 0) {
    s->lanes_idle.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await s->lanes_idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  // Releasing pinned leases makes the pool roll their transactions back before reuse.
  s->lanes.clear();
  while (s->writer_running) {
    boost::system::error_code ec;
    co_await s->writer_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  s->deadline.cancel();
  boost::system::error_code ec;
  s->socket.shutdown(Socket::shutdown_both, ec);
  s->socket.close(ec);
  server.counters().clients_now--;
  server.remove_session(s->id);
  spdlog::info("client #{} disconnected: {}", s->id, reason);
}

}  // namespace

// Plain functions, not coroutines: by-value arguments of a co_await expression are fragile under
// GCC 12 (see execute()), so the socket goes straight into session_main's frame.
asio::awaitable<void> run_session(Server& server, asio::ip::tcp::socket socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  std::string peer = ec ? "tcp:?" : "tcp:" + ep.address().to_string() + ":" + std::to_string(ep.port());
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  return session_main(server, std::move(socket), std::move(peer));
}

asio::awaitable<void> run_session(Server& server, asio::local::stream_protocol::socket socket) {
  return session_main(server, std::move(socket), std::string("unix socket"));
}

}  // namespace binds::server
