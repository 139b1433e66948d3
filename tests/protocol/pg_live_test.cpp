// The PostgreSQL codec against real peers, over blocking loopback sockets:
//  - a PostgreSQL 15 server ($BINDS_TEST_PG_URL, started by scripts/testdb.sh) driven by our
//    frontend encoders, backend decoders and SCRAM client;
//  - libpq driven against a tiny server thread built from our backend encoders, frontend
//    decoders and SCRAM server.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "protocol/pg/pgwire.hpp"

using namespace binds::pgwire;
using std::string_view;

namespace {

struct PgUrl {
  std::string user, password, host, database;
  int port = 5432;
};

// postgresql://user:password@host:port/database; enough for the URL testdb.sh writes.
std::optional<PgUrl> parse_url(std::string url) {
  const std::string scheme = "postgresql://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  url.erase(0, scheme.size());
  PgUrl u;
  auto at = url.rfind('@');
  auto slash = url.find('/', at == std::string::npos ? 0 : at);
  if (at == std::string::npos || slash == std::string::npos) return std::nullopt;
  std::string cred = url.substr(0, at), hostport = url.substr(at + 1, slash - at - 1);
  u.database = url.substr(slash + 1);
  auto colon = cred.find(':');
  u.user = cred.substr(0, colon);
  if (colon != std::string::npos) u.password = cred.substr(colon + 1);
  auto pc = hostport.rfind(':');
  u.host = hostport.substr(0, pc);
  if (pc != std::string::npos) u.port = std::stoi(hostport.substr(pc + 1));
  return u;
}

// The URL, or a test failure (a skip only with BINDS_ALLOW_NO_DB=1): a run without the database
// must not look like a pass.
#define REQUIRE_PG_URL(var)                                                                     \
  const char* raw_url_ = std::getenv("BINDS_TEST_PG_URL");                                      \
  if (raw_url_ == nullptr || *raw_url_ == '\0') {                                               \
    const char* allow = std::getenv("BINDS_ALLOW_NO_DB");                                       \
    if (allow != nullptr && std::string(allow) == "1")                                          \
      GTEST_SKIP() << "BINDS_TEST_PG_URL not set";                                              \
    FAIL() << "BINDS_TEST_PG_URL is not set: run under scripts/testdb.sh (source its env file)" \
              " or set BINDS_ALLOW_NO_DB=1 to skip";                                            \
  }                                                                                             \
  auto var##_opt = parse_url(raw_url_);                                                         \
  ASSERT_TRUE(var##_opt) << "cannot parse BINDS_TEST_PG_URL";                                   \
  const PgUrl var = *var##_opt

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

  static Socket connect_to(const std::string& host, int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    Socket s(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
      throw std::runtime_error("bad host " + host);
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("connect to " + host + ":" + std::to_string(port) + " failed");
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
  }

  void send_all(string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Reads what is available into `dec`, waiting up to `timeout`. False on EOF or timeout.
  bool receive(MessageDecoder& dec, std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    auto room = dec.prepare(16384);
    ssize_t n = ::recv(fd_, room.data(), room.size(), 0);
    if (n <= 0) return false;
    dec.commit(static_cast<std::size_t>(n));
    return true;
  }

 private:
  int fd_;
};

// A message copied out of the decoder, so it outlives the next read.
struct Owned {
  char type = 0;
  std::string body;
  Message view() const { return Message{type, body, body}; }
};

class Peer {
 public:
  explicit Peer(Socket s, Phase phase = Phase::typed) : sock_(std::move(s)), dec_(phase, 1 << 20) {}

  Socket& socket() { return sock_; }
  MessageDecoder& decoder() { return dec_; }
  void send(string_view bytes) { sock_.send_all(bytes); }

  // The next message; type '\0' with body "EOF" or "timeout" when none comes.
  Owned next(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    for (;;) {
      Message m;
      ReadStatus st = dec_.next(m);
      if (st == ReadStatus::message) return Owned{m.type, std::string(m.body)};
      if (st == ReadStatus::error)
        return Owned{'\0', "framing error: " + std::string(to_string(dec_.error()))};
      if (!sock_.receive(dec_, timeout)) return Owned{'\0', "EOF or timeout"};
    }
  }

 private:
  Socket sock_;
  MessageDecoder dec_;
};

std::string describe(const Owned& m) {
  if (m.type == backend::error_response) {
    auto e = decode_error_response(m.view());
    if (e) return "ErrorResponse " + std::string(e->sqlstate) + ": " + std::string(e->message);
  }
  if (m.type == '\0') return m.body;
  return std::string("message '") + m.type + "'";
}

#define EXPECT_TYPE(msg, t) ASSERT_EQ((msg).type, (t)) << describe(msg)

struct Session {
  std::unique_ptr<Peer> peer;
  BackendKeyData key;
  std::vector<std::pair<std::string, std::string>> params;
};

// Startup and SCRAM authentication. Returns the ErrorResponse instead when the server refuses.
Owned log_in(Session& s, const PgUrl& url, string_view password) {
  s.peer = std::make_unique<Peer>(Socket::connect_to(url.host, url.port));
  std::string out;
  const StartupParam extra[] = {{"application_name", "binds_pgwire_live"}};
  if (encode_startup_message(out, url.user, url.database, extra) != Error::ok) {
    return Owned{'\0', "encode startup"};
  }
  s.peer->send(out);

  Owned m = s.peer->next();
  if (m.type != backend::authentication) return m;
  auto auth = decode_authentication(m.view());
  if (!auth || auth->kind != AuthKind::sasl || !auth->sasl_mechanisms.contains(kScramSha256)) {
    return Owned{'\0', "expected AuthenticationSASL with SCRAM-SHA-256"};
  }
  ScramClient scram(password);
  std::string data;
  if (scram.client_first(data) != ScramError::ok) return Owned{'\0', "client_first"};
  out.clear();
  if (encode_sasl_initial_response(out, kScramSha256, data) != Error::ok) return {'\0', "encode"};
  s.peer->send(out);

  m = s.peer->next();
  if (m.type != backend::authentication) return m;
  auto cont = decode_authentication(m.view());
  if (!cont || cont->kind != AuthKind::sasl_continue) return Owned{'\0', "expected SASLContinue"};
  data.clear();
  if (ScramError e = scram.handle_server_first(cont->data, data); e != ScramError::ok) {
    return Owned{'\0', "server-first: " + std::string(to_string(e))};
  }
  out.clear();
  if (encode_sasl_response(out, data) != Error::ok) return Owned{'\0', "encode"};
  s.peer->send(out);

  m = s.peer->next();
  if (m.type != backend::authentication) return m;  // ErrorResponse for a wrong password
  auto fin = decode_authentication(m.view());
  if (!fin || fin->kind != AuthKind::sasl_final) return Owned{'\0', "expected SASLFinal"};
  if (ScramError e = scram.handle_server_final(fin->data); e != ScramError::ok) {
    return Owned{'\0', "server-final: " + std::string(to_string(e))};
  }
  m = s.peer->next();
  auto ok = decode_authentication(m.view());
  if (!ok || ok->kind != AuthKind::ok) return Owned{'\0', "expected AuthenticationOk"};

  for (;;) {
    m = s.peer->next();
    if (m.type == backend::parameter_status) {
      auto p = decode_parameter_status(m.view());
      if (!p) return Owned{'\0', "bad ParameterStatus"};
      s.params.emplace_back(p->name, p->value);
    } else if (m.type == backend::backend_key_data) {
      auto k = decode_backend_key_data(m.view());
      if (!k) return Owned{'\0', "bad BackendKeyData"};
      s.key = *k;
    } else {
      return m;  // ReadyForQuery, or whatever went wrong
    }
  }
}

std::string param(const Session& s, string_view name) {
  for (auto& [k, v] : s.params) {
    if (k == name) return v;
  }
  return {};
}

TransactionStatus expect_ready(Peer& p) {
  Owned m = p.next();
  auto r = decode_ready_for_query(m.view());
  EXPECT_TRUE(r.ok()) << describe(m);
  return r ? r->status : TransactionStatus::failed;
}

}  // namespace

// ============================================================================ real PostgreSQL

TEST(PgLive, StartupScramExtendedAndSimpleQueries) {
  REQUIRE_PG_URL(url);
  Session s;
  Owned ready = log_in(s, url, url.password);
  ASSERT_EQ(ready.type, backend::ready_for_query) << describe(ready);
  auto rfq = decode_ready_for_query(ready.view());
  ASSERT_TRUE(rfq);
  EXPECT_EQ(rfq->status, TransactionStatus::idle);
  EXPECT_EQ(param(s, "server_version").substr(0, 3), "15.");
  EXPECT_EQ(param(s, "application_name"), "binds_pgwire_live");
  EXPECT_NE(s.key.process_id, 0);
  Peer& pg = *s.peer;

  // Extended protocol, pipelined in one write.
  std::string out;
  ASSERT_EQ(encode_parse(out, "", "SELECT $1::int + 1, 'x'::text, NULL"), Error::ok);
  const std::optional<string_view> params[] = {"41"};
  ASSERT_EQ(encode_bind(out, "", "", {}, params, {}), Error::ok);
  ASSERT_EQ(encode_describe(out, ObjectKind::portal, ""), Error::ok);
  ASSERT_EQ(encode_execute(out, "", 0), Error::ok);
  encode_sync(out);
  pg.send(out);

  Owned m = pg.next();
  EXPECT_TYPE(m, backend::parse_complete);
  EXPECT_EQ(decode_empty(m.view(), backend::parse_complete), Error::ok);
  m = pg.next();
  EXPECT_TYPE(m, backend::bind_complete);
  m = pg.next();
  EXPECT_TYPE(m, backend::row_description);
  auto rd = decode_row_description(m.view());
  ASSERT_TRUE(rd) << to_string(rd.error());
  ASSERT_EQ(rd->columns.size(), 3u);
  std::vector<ColumnDescription> cols(rd->columns.begin(), rd->columns.end());
  EXPECT_EQ(cols[0].name, "?column?");
  EXPECT_EQ(cols[0].type_oid, 23u);  // int4
  EXPECT_EQ(cols[0].type_size, 4);
  EXPECT_EQ(cols[0].table_oid, 0u);
  EXPECT_EQ(cols[1].name, "text");
  EXPECT_EQ(cols[1].type_oid, 25u);  // text
  EXPECT_EQ(cols[1].type_size, -1);
  EXPECT_EQ(cols[2].type_oid, 25u);  // an untyped NULL resolves to text
  for (auto& c : cols) EXPECT_EQ(c.format, 0);
  m = pg.next();
  EXPECT_TYPE(m, backend::data_row);
  auto row = decode_data_row(m.view());
  ASSERT_TRUE(row);
  std::vector<std::optional<string_view>> values(row->values.begin(), row->values.end());
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values[0], "42");
  EXPECT_EQ(values[1], "x");
  EXPECT_EQ(values[2], std::nullopt);
  m = pg.next();
  EXPECT_TYPE(m, backend::command_complete);
  auto cc = decode_command_complete(m.view());
  ASSERT_TRUE(cc);
  EXPECT_EQ(cc->tag, "SELECT 1");
  EXPECT_EQ(command_tag_rows(cc->tag), 1u);
  EXPECT_EQ(expect_ready(pg), TransactionStatus::idle);

  // A binary result column.
  out.clear();
  ASSERT_EQ(encode_parse(out, "s_bin", "SELECT $1::int4", std::vector<std::uint32_t>{23}),
            Error::ok);
  const std::int16_t binary[] = {1};
  const std::optional<string_view> bin_param[] = {string_view("\0\0\1\0", 4)};  // 256
  ASSERT_EQ(encode_bind(out, "", "s_bin", binary, bin_param, binary), Error::ok);
  ASSERT_EQ(encode_execute(out, "", 0), Error::ok);
  ASSERT_EQ(encode_close(out, ObjectKind::statement, "s_bin"), Error::ok);
  encode_sync(out);
  pg.send(out);
  EXPECT_TYPE(pg.next(), backend::parse_complete);
  EXPECT_TYPE(pg.next(), backend::bind_complete);
  m = pg.next();
  EXPECT_TYPE(m, backend::data_row);
  row = decode_data_row(m.view());
  ASSERT_TRUE(row);
  EXPECT_EQ(*row->values.begin(), string_view("\0\0\1\0", 4));
  EXPECT_TYPE(pg.next(), backend::command_complete);
  EXPECT_TYPE(pg.next(), backend::close_complete);
  EXPECT_EQ(expect_ready(pg), TransactionStatus::idle);

  // Simple protocol: several statements, their tags and row counts, and transaction status.
  out.clear();
  ASSERT_EQ(encode_query(out,
                         "BEGIN; CREATE TEMP TABLE t(i int); INSERT INTO t VALUES (1),(2),(3); "
                         "UPDATE t SET i = i + 10 WHERE i > 1; SELECT i FROM t ORDER BY i"),
            Error::ok);
  pg.send(out);
  std::vector<std::string> tags;
  std::vector<std::string> cells;
  for (;;) {
    m = pg.next();
    if (m.type == backend::command_complete) {
      tags.emplace_back(decode_command_complete(m.view())->tag);
    } else if (m.type == backend::data_row) {
      auto r = decode_data_row(m.view());
      ASSERT_TRUE(r);
      cells.emplace_back(**r->values.begin());
    } else if (m.type == backend::row_description) {
      ASSERT_TRUE(decode_row_description(m.view()));
    } else {
      break;
    }
  }
  EXPECT_TYPE(m, backend::ready_for_query);
  EXPECT_EQ(decode_ready_for_query(m.view())->status, TransactionStatus::in_transaction);
  EXPECT_EQ(tags, (std::vector<std::string>{"BEGIN", "CREATE TABLE", "INSERT 0 3", "UPDATE 2",
                                            "SELECT 3"}));
  EXPECT_EQ(command_tag_rows(tags[2]), 3u);
  EXPECT_EQ(command_tag_rows(tags[3]), 2u);
  EXPECT_EQ(cells, (std::vector<std::string>{"1", "12", "13"}));

  // An error inside the transaction: ErrorResponse fields, then status E; ROLLBACK returns to I.
  out.clear();
  ASSERT_EQ(encode_query(out, "SELECT * FROM no_such_table"), Error::ok);
  pg.send(out);
  m = pg.next();
  EXPECT_TYPE(m, backend::error_response);
  auto err = decode_error_response(m.view());
  ASSERT_TRUE(err);
  EXPECT_EQ(err->sqlstate, "42P01");
  EXPECT_EQ(err->severity_nonlocalized, "ERROR");
  EXPECT_NE(err->message.find("no_such_table"), string_view::npos);
  EXPECT_EQ(err->position, "15");
  EXPECT_FALSE(err->file.empty());
  EXPECT_FALSE(err->routine.empty());
  EXPECT_EQ(expect_ready(pg), TransactionStatus::failed);
  out.clear();
  ASSERT_EQ(encode_query(out, "ROLLBACK"), Error::ok);
  pg.send(out);
  EXPECT_TYPE(pg.next(), backend::command_complete);
  EXPECT_EQ(expect_ready(pg), TransactionStatus::idle);

  // An empty query and a notice.
  out.clear();
  ASSERT_EQ(encode_query(out, ""), Error::ok);
  ASSERT_EQ(encode_query(out, "DO $$BEGIN RAISE NOTICE 'hello %', 7; END$$"), Error::ok);
  pg.send(out);
  EXPECT_TYPE(pg.next(), backend::empty_query_response);
  EXPECT_EQ(expect_ready(pg), TransactionStatus::idle);
  m = pg.next();
  EXPECT_TYPE(m, backend::notice_response);
  auto notice = decode_notice_response(m.view());
  ASSERT_TRUE(notice);
  EXPECT_EQ(notice->message, "hello 7");
  EXPECT_EQ(notice->sqlstate, "00000");
  EXPECT_TYPE(pg.next(), backend::command_complete);
  EXPECT_EQ(expect_ready(pg), TransactionStatus::idle);

  // COPY OUT is recognised.
  out.clear();
  ASSERT_EQ(encode_query(out, "COPY (SELECT 1, 2) TO STDOUT"), Error::ok);
  pg.send(out);
  m = pg.next();
  EXPECT_TYPE(m, backend::copy_out_response);
  auto copy = decode_copy_response(m.view());
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->column_formats.size(), 2u);
  m = pg.next();
  EXPECT_TYPE(m, backend::copy_data);
  EXPECT_EQ(decode_copy_data(m.view())->data, "1\t2\n");
  EXPECT_TYPE(pg.next(), backend::copy_done);
  m = pg.next();
  EXPECT_EQ(decode_command_complete(m.view())->tag, "COPY 1");
  EXPECT_EQ(expect_ready(pg), TransactionStatus::idle);

  out.clear();
  encode_terminate(out);
  pg.send(out);
  EXPECT_EQ(pg.next().type, '\0');  // the server closes
}

TEST(PgLive, WrongPasswordIs28P01) {
  REQUIRE_PG_URL(url);
  Session s;
  Owned m = log_in(s, url, "definitely-not-" + url.password);
  EXPECT_TYPE(m, backend::error_response);
  auto e = decode_error_response(m.view());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->sqlstate, "28P01");
  EXPECT_EQ(e->severity_nonlocalized, "FATAL");
  EXPECT_EQ(std::string(e->message).find("definitely-not"), std::string::npos);
}

TEST(PgLive, CancelRequestStopsASleep) {
  REQUIRE_PG_URL(url);
  Session s;
  Owned ready = log_in(s, url, url.password);
  ASSERT_EQ(ready.type, backend::ready_for_query) << describe(ready);
  Peer& pg = *s.peer;

  std::string out;
  ASSERT_EQ(encode_query(out, "SELECT pg_sleep(10)"), Error::ok);
  const auto start = std::chrono::steady_clock::now();
  pg.send(out);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  Peer canceller(Socket::connect_to(url.host, url.port));
  out.clear();
  encode_cancel_request(out, s.key.process_id, s.key.secret_key);
  canceller.send(out);
  // The server answers a CancelRequest by closing the connection, nothing else.
  EXPECT_EQ(canceller.next(std::chrono::seconds(5)).type, '\0');

  Owned m = pg.next();
  // The RowDescription went out before execution started; the cancel interrupts the sleep.
  if (m.type == backend::row_description) m = pg.next();
  EXPECT_TYPE(m, backend::error_response);
  auto e = decode_error_response(m.view());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->sqlstate, "57014");
  EXPECT_EQ(expect_ready(pg), TransactionStatus::idle);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// ============================================================================ libpq against us

namespace {

// One connection of a minimal PostgreSQL server: SCRAM with `verifier`, then simple queries
// answered with one text row echoing the SQL, and extended queries echoing the first parameter.
void serve_one(int listen_fd, ScramVerifier verifier, std::string& failure) {
  auto fail = [&](std::string why) { failure = std::move(why); };
  int fd = ::accept(listen_fd, nullptr, nullptr);
  if (fd < 0) return fail("accept failed");
  Peer client(Socket(fd), Phase::startup);
  std::string out;

  Owned m;
  for (;;) {
    m = client.next();
    if (m.type != '\0' || m.body.size() < 4) return fail("expected a startup packet: " + m.body);
    Message framed{'\0', m.body, m.body};
    auto p = decode_startup_packet(framed);
    if (!p) return fail("startup packet: " + std::string(to_string(p.error())));
    if (p->kind == StartupKind::startup) {
      if (p->startup.user() != "app") return fail("unexpected user");
      if (p->startup.database() != "appdb") return fail("unexpected database");
      break;
    }
    if (p->kind != StartupKind::ssl_request && p->kind != StartupKind::gssenc_request) {
      return fail("unexpected startup packet kind");
    }
    client.send("N");  // no encryption; the client follows with a StartupMessage
  }
  client.decoder().set_phase(Phase::typed);

  const string_view mechs[] = {kScramSha256};
  (void)encode_authentication_sasl(out, mechs);
  client.send(std::exchange(out, {}));

  ScramServer scram(std::move(verifier));
  m = client.next();
  auto init = decode_sasl_initial_response(m.view());
  if (!init || init->mechanism != kScramSha256 || !init->data) return fail("SASLInitialResponse");
  std::string data;
  if (scram.handle_client_first(*init->data, data) != ScramError::ok) return fail("client-first");
  (void)encode_authentication_sasl_continue(out, data);
  client.send(std::exchange(out, {}));

  m = client.next();
  auto resp = decode_sasl_response(m.view());
  if (!resp) return fail("SASLResponse");
  data.clear();
  ScramError verdict = scram.handle_client_final(resp->data, data);
  if (verdict == ScramError::invalid_proof) {
    const NoticeField fields[] = {{'S', "FATAL"},
                                  {'V', "FATAL"},
                                  {'C', "28P01"},
                                  {'M', "password authentication failed for user \"app\""}};
    (void)encode_error_response(out, fields);
    client.send(out);
    return;
  }
  if (verdict != ScramError::ok) return fail("client-final: " + std::string(to_string(verdict)));
  (void)encode_authentication_sasl_final(out, data);
  encode_authentication_ok(out);
  for (auto [k, v] : {std::pair{"server_version", "15.0"},
                      {"server_encoding", "UTF8"},
                      {"client_encoding", "UTF8"},
                      {"DateStyle", "ISO, MDY"},
                      {"integer_datetimes", "on"},
                      {"standard_conforming_strings", "on"}}) {
    (void)encode_parameter_status(out, k, v);
  }
  encode_backend_key_data(out, 4242, 0x12345678);
  encode_ready_for_query(out, TransactionStatus::idle);
  client.send(std::exchange(out, {}));

  std::string echo;
  const ColumnDescription col[] = {{"echo", 0, 0, 25, -1, -1, 0}};
  for (;;) {
    m = client.next();
    switch (m.type) {
      case frontend::query: {
        auto q = decode_query(m.view());
        if (!q) return fail("Query");
        (void)encode_row_description(out, col);
        const std::optional<string_view> v[] = {q->sql};
        (void)encode_data_row(out, v);
        (void)encode_command_complete(out, "SELECT 1");
        encode_ready_for_query(out, TransactionStatus::idle);
        client.send(std::exchange(out, {}));
        break;
      }
      case frontend::parse: {
        auto p = decode_parse(m.view());
        if (!p) return fail("Parse");
        encode_parse_complete(out);
        break;
      }
      case frontend::bind: {
        auto b = decode_bind(m.view());
        if (!b || b->params.size() != 1) return fail("Bind");
        auto first = *b->params.begin();
        echo = first ? std::string(*first) : "(null)";
        encode_bind_complete(out);
        break;
      }
      case frontend::describe: {
        auto d = decode_describe(m.view());
        if (!d || d->kind != ObjectKind::portal) return fail("Describe");
        (void)encode_row_description(out, col);
        break;
      }
      case frontend::execute: {
        auto x = decode_execute(m.view());
        if (!x) return fail("Execute");
        const std::optional<string_view> v[] = {echo};
        (void)encode_data_row(out, v);
        (void)encode_command_complete(out, "SELECT 1");
        break;
      }
      case frontend::sync:
        if (decode_empty(m.view(), frontend::sync) != Error::ok) return fail("Sync");
        encode_ready_for_query(out, TransactionStatus::idle);
        client.send(std::exchange(out, {}));
        break;
      case frontend::terminate:
        return;
      default:
        return fail("unexpected message: " + describe(m));
    }
  }
}

struct FakeServer {
  int fd = -1;
  int port = 0;
  std::string failure;
  std::thread thread;

  explicit FakeServer(ScramVerifier v) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on loopback");
    }
    port = ntohs(addr.sin_port);
    thread =
        std::thread([this, v = std::move(v)]() mutable { serve_one(fd, std::move(v), failure); });
  }
  ~FakeServer() {
    if (thread.joinable()) thread.join();
    ::close(fd);
  }
  std::string conninfo(string_view password) const {
    return "host=127.0.0.1 port=" + std::to_string(port) +
           " user=app dbname=appdb password=" + std::string(password) +
           " sslmode=disable gssencmode=disable connect_timeout=10";
  }
};

}  // namespace

TEST(PgLibpq, ConnectsAuthenticatesAndQueriesThroughOurServerCodec) {
  auto v = make_scram_verifier("app-pw");
  ASSERT_TRUE(v);
  FakeServer server(*v);
  PGconn* conn = PQconnectdb(server.conninfo("app-pw").c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  EXPECT_EQ(PQbackendPID(conn), 4242);
  EXPECT_STREQ(PQparameterStatus(conn, "server_version"), "15.0");

  PGresult* r = PQexec(conn, "SELECT 'simple'");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQerrorMessage(conn);
  EXPECT_STREQ(PQfname(r, 0), "echo");
  EXPECT_STREQ(PQgetvalue(r, 0, 0), "SELECT 'simple'");
  PQclear(r);

  const char* values[] = {"extended ✓"};
  r = PQexecParams(conn, "SELECT $1", 1, nullptr, values, nullptr, nullptr, 0);
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQerrorMessage(conn);
  EXPECT_STREQ(PQgetvalue(r, 0, 0), "extended ✓");
  PQclear(r);
  PQfinish(conn);
  server.thread.join();
  EXPECT_EQ(server.failure, "");
}

TEST(PgLibpq, WrongPasswordIsRefusedByOurServerCodec) {
  auto v = make_scram_verifier("app-pw");
  ASSERT_TRUE(v);
  FakeServer server(*v);
  PGconn* conn = PQconnectdb(server.conninfo("wrong").c_str());
  EXPECT_EQ(PQstatus(conn), CONNECTION_BAD);
  EXPECT_NE(std::string(PQerrorMessage(conn)).find("password authentication failed"),
            std::string::npos)
      << PQerrorMessage(conn);
  PQfinish(conn);
  server.thread.join();
  EXPECT_EQ(server.failure, "");
}
