#include "client/client.hpp"

#include <fcntl.h>

#include <algorithm>
#include <charconv>
#include <deque>

namespace binds::client {

namespace asio = boost::asio;
using protocol::Frame;
using protocol::FrameType;

struct Client::Impl {
  asio::io_context io;
  std::optional<asio::ip::tcp::socket> tcp;
  std::optional<asio::local::stream_protocol::socket> unix;
  protocol::FrameDecoder decoder{64 * 1024 * 1024};
  std::uint32_t next_id = 1;
  std::map<std::uint32_t, Reply> partial;    // replies still streaming
  std::map<std::uint32_t, Reply> finished;   // complete replies not yet collected

  void write(const std::string& bytes) {
    boost::system::error_code ec;
    if (tcp) asio::write(*tcp, asio::buffer(bytes), ec);
    else asio::write(*unix, asio::buffer(bytes), ec);
    if (ec) throw ClientError("write to bindsd failed: " + ec.message());
  }
  std::size_t read_some(char* buf, std::size_t n, boost::system::error_code& ec) {
    return tcp ? tcp->read_some(asio::buffer(buf, n), ec) : unix->read_some(asio::buffer(buf, n), ec);
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client::~Client() = default;

Client Client::connect(const std::string& address, const std::string& client_name) {
  auto impl = std::make_unique<Impl>();
  boost::system::error_code ec;
  std::string addr = address;
  bool is_unix = false;
  if (addr.rfind("unix:", 0) == 0) {
    addr = addr.substr(5);
    is_unix = true;
  } else if (addr.rfind("tcp:", 0) == 0) {
    addr = addr.substr(4);
  } else if (addr.find('/') != std::string::npos) {
    is_unix = true;
  }
  if (is_unix) {
    impl->unix.emplace(impl->io);
    impl->unix->connect(asio::local::stream_protocol::endpoint(addr), ec);
    if (ec) throw ClientError("cannot connect to bindsd at unix:" + addr + ": " + ec.message());
  } else {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) throw ClientError("bad address \"" + address + "\" (want host:port or a socket path)");
    std::string host = addr.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    asio::ip::tcp::resolver resolver(impl->io);
    auto eps = resolver.resolve(host, addr.substr(colon + 1), ec);
    if (ec) throw ClientError("cannot resolve " + addr + ": " + ec.message());
    impl->tcp.emplace(impl->io);
    asio::connect(*impl->tcp, eps, ec);
    if (ec) throw ClientError("cannot connect to bindsd at " + addr + ": " + ec.message());
    impl->tcp->set_option(asio::ip::tcp::no_delay(true), ec);
  }
  // A child the application forks (a shell, a database server) must not inherit the connection:
  // it would keep it open after the application closed it, and bindsd would never see the hang-up.
  ::fcntl(impl->unix ? impl->unix->native_handle() : impl->tcp->native_handle(), F_SETFD, FD_CLOEXEC);
  Client c(std::move(impl));
  protocol::Hello hello;
  hello.client = client_name;
  c.impl_->write(protocol::encode_hello(hello));
  Frame f;
  if (!c.read_frame(f)) throw ClientError("bindsd closed the connection during the handshake");
  std::string why;
  if (f.type() == FrameType::error) {
    protocol::ErrorInfo info;
    protocol::decode_error(f.body, info, why);
    throw ServerError(std::move(info));
  }
  if (f.type() != FrameType::hello_ok || !protocol::decode_hello_ok(f.body, c.hello_, why))
    throw ClientError("bad handshake reply from server: " + why);
  // The server promised never to send a body over max_frame (PROTOCOL.md §2): hold it to that.
  if (c.hello_.max_frame > 0) c.impl_->decoder.set_max_body(c.hello_.max_frame);
  return c;
}

bool Client::read_frame(Frame& out) {
  char buf[64 * 1024];
  for (;;) {
    auto st = impl_->decoder.next(out);
    if (st == protocol::FrameDecoder::Status::frame) return true;
    if (st == protocol::FrameDecoder::Status::error) throw ClientError("bad frame from server: " + impl_->decoder.error());
    boost::system::error_code ec;
    std::size_t n = impl_->read_some(buf, sizeof buf, ec);
    if (ec == asio::error::eof || ec == asio::error::connection_reset) return false;
    if (ec) throw ClientError("read from bindsd failed: " + ec.message());
    impl_->decoder.feed(buf, n);
  }
}

void Client::send_raw(const std::string& bytes) { impl_->write(bytes); }

void Client::handle(const Frame& f) {
  std::string why;
  auto id = f.header.request_id;
  auto& r = impl_->partial[id];
  bool ok = true;
  bool final = false;
  switch (f.type()) {
    case FrameType::columns:
      ok = protocol::decode_columns(f.body, r.result.columns, why);
      r.result.has_rows = true;
      break;
    case FrameType::rows: ok = protocol::decode_rows(f.body, r.result.rows, why); break;
    case FrameType::complete:
      ok = protocol::decode_complete(f.body, r.result.complete, why);
      final = true;
      break;
    case FrameType::error: {
      protocol::ErrorInfo info;
      ok = protocol::decode_error(f.body, info, why);
      r.error = std::move(info);
      final = true;
      break;
    }
    case FrameType::pong:
    case FrameType::binds:
      final = true;
      break;
    default: throw ClientError("unexpected frame type from server: " + std::to_string(f.header.type));
  }
  if (!ok) throw ClientError("bad reply from server: " + why);
  if (final) {
    r.final_type = f.type();
    impl_->finished[id] = std::move(r);
    impl_->partial.erase(id);
  }
}

Reply Client::wait(std::uint32_t id) {
  for (;;) {
    auto it = impl_->finished.find(id);
    if (it != impl_->finished.end()) {
      Reply r = std::move(it->second);
      impl_->finished.erase(it);
      return r;
    }
    Frame f;
    if (!read_frame(f)) throw ClientError("bindsd closed the connection");
    if (f.header.request_id == 0 && f.type() == FrameType::error) {
      protocol::ErrorInfo info;
      std::string why;
      protocol::decode_error(f.body, info, why);
      throw ServerError(std::move(info));
    }
    handle(f);
  }
}

std::uint32_t Client::send_query(const std::string& sql, const std::vector<Value>& params,
                                 std::optional<std::string> bind, std::uint32_t timeout_ms, bool in_tx) {
  // An older server would ignore the field and run the statement in autocommit.
  if (in_tx && std::find(hello_.features.begin(), hello_.features.end(), "in_tx") == hello_.features.end())
    throw std::logic_error("this server does not support in_tx (HELLO_OK features)");
  auto id = impl_->next_id++;
  impl_->write(
      protocol::encode_query(id, protocol::QueryRequest{std::move(bind), sql, params, timeout_ms, in_tx}));
  return id;
}

std::uint32_t Client::send_begin(std::optional<std::string> bind, protocol::Isolation isolation, bool read_only) {
  auto id = impl_->next_id++;
  impl_->write(protocol::encode_begin(id, protocol::BeginRequest{std::move(bind), isolation, read_only}));
  return id;
}

std::uint32_t Client::send_end(FrameType type, std::optional<std::string> bind) {
  auto id = impl_->next_id++;
  impl_->write(protocol::encode_end(type, id, bind));
  return id;
}

std::uint32_t Client::send_cancel(std::uint32_t target) {
  auto id = impl_->next_id++;
  impl_->write(protocol::encode_cancel(id, target));
  return id;
}

namespace {
protocol::Complete complete_or_throw(Reply r) {
  if (r.error) throw ServerError(std::move(*r.error));
  return r.result.complete;
}
}  // namespace

protocol::Complete Client::begin(std::optional<std::string> bind, protocol::Isolation isolation, bool read_only) {
  return complete_or_throw(wait(send_begin(std::move(bind), isolation, read_only)));
}
protocol::Complete Client::commit(std::optional<std::string> bind) {
  return complete_or_throw(wait(send_end(FrameType::commit, std::move(bind))));
}
protocol::Complete Client::rollback(std::optional<std::string> bind) {
  return complete_or_throw(wait(send_end(FrameType::rollback, std::move(bind))));
}

std::uint32_t Client::send_ping() {
  auto id = impl_->next_id++;
  impl_->write(protocol::encode_empty(FrameType::ping, id));
  return id;
}

Result Client::query(const std::string& sql, const std::vector<Value>& params,
                     std::optional<std::string> bind) {
  auto r = wait(send_query(sql, params, std::move(bind)));
  if (r.error) throw ServerError(std::move(*r.error));
  return std::move(r.result);
}

protocol::Complete Client::query_stream(const std::string& sql, const std::vector<Value>& params,
                                        std::optional<std::string> bind,
                                        const std::function<void(const std::vector<Column>&)>& on_columns,
                                        const std::function<void(Row&)>& on_row) {
  auto id = send_query(sql, params, std::move(bind));
  std::vector<Row> rows;
  std::string why;
  for (;;) {
    Frame f;
    if (!read_frame(f)) throw ClientError("bindsd closed the connection");
    if (f.header.request_id != id) {
      handle(f);  // another pipelined request's frame
      continue;
    }
    switch (f.type()) {
      case FrameType::columns: {
        std::vector<Column> cols;
        if (!protocol::decode_columns(f.body, cols, why)) throw ClientError(why);
        on_columns(cols);
        break;
      }
      case FrameType::rows:
        rows.clear();
        if (!protocol::decode_rows(f.body, rows, why)) throw ClientError(why);
        for (auto& r : rows) on_row(r);
        break;
      case FrameType::complete: {
        protocol::Complete c;
        if (!protocol::decode_complete(f.body, c, why)) throw ClientError(why);
        return c;
      }
      case FrameType::error: {
        protocol::ErrorInfo info;
        protocol::decode_error(f.body, info, why);
        throw ServerError(std::move(info));
      }
      default: throw ClientError("unexpected frame type " + std::to_string(f.header.type));
    }
  }
}

void Client::ping() {
  auto r = wait(send_ping());
  if (r.error) throw ServerError(std::move(*r.error));
}

// The one reply frame of a request whose body handle() does not keep (BINDS, TABLE); frames of
// other pipelined requests met on the way are handled as usual. An ERROR reply is thrown.
Frame Client::reply_frame(std::uint32_t id) {
  for (;;) {
    Frame f;
    if (!read_frame(f)) throw ClientError("bindsd closed the connection");
    if (f.header.request_id != id) {
      handle(f);
      continue;
    }
    if (f.type() == FrameType::error) {
      protocol::ErrorInfo info;
      std::string why;
      protocol::decode_error(f.body, info, why);
      throw ServerError(std::move(info));
    }
    return f;
  }
}

std::vector<protocol::BindInfo> Client::list_binds() {
  auto id = impl_->next_id++;
  impl_->write(protocol::encode_empty(FrameType::list_binds, id));
  Frame f = reply_frame(id);
  std::vector<protocol::BindInfo> out;
  std::string why;
  if (f.type() != FrameType::binds || !protocol::decode_binds(f.body, out, why))
    throw ClientError("bad LIST_BINDS reply: " + why);
  return out;
}

protocol::Table Client::admin(const std::string& command, std::optional<std::string> bind,
                              std::vector<std::string> args) {
  auto id = impl_->next_id++;
  impl_->write(protocol::encode_admin(id, protocol::AdminRequest{command, std::move(bind), std::move(args)}));
  Frame f = reply_frame(id);
  protocol::Table t;
  std::string why;
  if (f.type() != FrameType::table || !protocol::decode_table(f.body, t, why))
    throw ClientError("bad ADMIN reply: " + why);
  return t;
}

Value parse_param(const std::string& s) {
  auto colon = s.find(':');
  if (colon != std::string::npos) {
    std::string type = s.substr(0, colon);
    std::string v = s.substr(colon + 1);
    if (type == "null") return protocol::Null{};
    if (type == "text") return v;
    if (type == "int") {
      std::int64_t i = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), i);
      if (ec != std::errc() || p != v.data() + v.size()) throw std::invalid_argument("not an int64: " + v);
      return i;
    }
    if (type == "float") {
      try {
        std::size_t used = 0;
        double d = std::stod(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
        return d;
      } catch (...) {
        throw std::invalid_argument("not a float: " + v);
      }
    }
    if (type == "bool") {
      if (v == "true" || v == "1") return true;
      if (v == "false" || v == "0") return false;
      throw std::invalid_argument("not a bool (true/false): " + v);
    }
    if (type == "bytes") {
      if (v.size() % 2) throw std::invalid_argument("bytes: odd number of hex digits");
      protocol::Bytes b;
      for (std::size_t i = 0; i < v.size(); i += 2) {
        unsigned x = 0;
        auto [p, ec] = std::from_chars(v.data() + i, v.data() + i + 2, x, 16);
        if (ec != std::errc() || p != v.data() + i + 2) throw std::invalid_argument("bytes: bad hex: " + v);
        b.data.push_back(static_cast<char>(x));
      }
      return b;
    }
    protocol::Type t;
    if (protocol::type_from_name(type, t) && protocol::is_text_encoded(t)) return protocol::Tagged{t, v};
  }
  // Untyped, an int64 only when written canonically (the text reads back identical: no leading
  // zeros, '+', "-0" or spaces); otherwise text, unchanged, so 007 stays 007.
  std::int64_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (!s.empty() && ec == std::errc() && p == s.data() + s.size() && std::to_string(i) == s) return i;
  return s;
}

}  // namespace binds::client
