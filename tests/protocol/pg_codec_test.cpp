// The PostgreSQL wire codec with byte strings alone: framing, every encoder through its decoder,
// and every decoder against truncated, padded and malformed bodies.

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "protocol/pg/pgwire.hpp"
#include "protocol/pg/sql_scan.hpp"

using namespace binds::pgwire;
using namespace std::string_literals;
using std::string_view;

namespace {

// Frames exactly one message from `wire`; the views point into `wire`.
Message frame_one(const std::string& wire, Phase phase = Phase::typed) {
  Message m;
  ReadResult r = read_message(wire, phase, kDefaultMaxMessage, m);
  EXPECT_EQ(r.status, ReadStatus::message) << to_string(r.error);
  EXPECT_EQ(m.raw.size(), wire.size());
  return m;
}

// A body in an allocation of exactly its size, so AddressSanitizer catches a decoder reading
// even one byte past it (a view into a longer std::string would hide that).
class ExactMessage {
 public:
  ExactMessage(char type, string_view body) : buf_(new char[body.size()]) {
    if (!body.empty()) std::memcpy(buf_.get(), body.data(), body.size());
    msg.type = type;
    msg.body = string_view(buf_.get(), body.size());
    msg.raw = msg.body;
  }
  Message msg;

 private:
  std::unique_ptr<char[]> buf_;
};

std::string s(string_view v) { return std::string(v); }

}  // namespace

// ============================================================================ framing

TEST(PgFraming, ExactBytesOfFixedMessages) {
  std::string out;
  encode_ssl_request(out);
  EXPECT_EQ(out, "\x00\x00\x00\x08\x04\xd2\x16\x2f"s);
  out.clear();
  encode_gssenc_request(out);
  EXPECT_EQ(out, "\x00\x00\x00\x08\x04\xd2\x16\x30"s);
  out.clear();
  encode_cancel_request(out, 0x01020304, 0xA0B0C0D0);
  EXPECT_EQ(out, "\x00\x00\x00\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\xa0\xb0\xc0\xd0"s);
  out.clear();
  encode_sync(out);
  encode_flush(out);
  encode_terminate(out);
  EXPECT_EQ(out, "S\0\0\0\4H\0\0\0\4X\0\0\0\4"s);
  out.clear();
  ASSERT_EQ(encode_query(out, "SELECT 1"), Error::ok);
  EXPECT_EQ(out, "Q\0\0\0\x0dSELECT 1\0"s);
  out.clear();
  ASSERT_EQ(encode_startup_message(out, "bob", "db"), Error::ok);
  EXPECT_EQ(out, "\0\0\0\x1e\0\x03\0\0user\0bob\0database\0db\0\0"s);
  out.clear();
  encode_ready_for_query(out, TransactionStatus::in_transaction);
  EXPECT_EQ(out, "Z\0\0\0\x05T"s);
}

TEST(PgFraming, EveryPrefixOfAMessageNeedsMore) {
  std::string wire;
  ASSERT_EQ(encode_query(wire, "SELECT 42"), Error::ok);
  for (std::size_t n = 0; n < wire.size(); ++n) {
    Message m;
    ReadResult r = read_message(string_view(wire).substr(0, n), Phase::typed, 1024, m);
    ASSERT_EQ(r.status, ReadStatus::need_more) << n;
    EXPECT_GT(r.needed, n);
    EXPECT_EQ(r.needed, n < 5 ? 5u : wire.size());
  }
  std::string startup;
  ASSERT_EQ(encode_startup_message(startup, "u", "d"), Error::ok);
  for (std::size_t n = 0; n < startup.size(); ++n) {
    Message m;
    ReadResult r = read_message(string_view(startup).substr(0, n), Phase::startup, 1024, m);
    ASSERT_EQ(r.status, ReadStatus::need_more) << n;
    EXPECT_EQ(r.needed, n < 4 ? 4u : startup.size());
  }
}

TEST(PgFraming, TypedMessageViewsPointIntoTheInput) {
  std::string wire;
  ASSERT_EQ(encode_query(wire, "SELECT 1"), Error::ok);
  encode_sync(wire);
  Message m;
  ReadResult r = read_message(wire, Phase::typed, 1024, m);
  ASSERT_EQ(r.status, ReadStatus::message);
  EXPECT_EQ(m.type, 'Q');
  EXPECT_EQ(m.body, "SELECT 1\0"s);
  EXPECT_EQ(m.raw.data(), wire.data());
  EXPECT_EQ(m.raw.size(), 14u);
  r = read_message(string_view(wire).substr(m.raw.size()), Phase::typed, 1024, m);
  ASSERT_EQ(r.status, ReadStatus::message);
  EXPECT_EQ(m.type, 'S');
  EXPECT_TRUE(m.body.empty());
}

TEST(PgFraming, LengthBelowFourIsAnError) {
  for (std::uint8_t len = 0; len < 4; ++len) {
    std::string wire = "Q\0\0\0"s + static_cast<char>(len);
    Message m;
    ReadResult r = read_message(wire, Phase::typed, 1024, m);
    EXPECT_EQ(r.status, ReadStatus::error);
    EXPECT_EQ(r.error, Error::length_too_small);
  }
  for (std::uint8_t len = 0; len < 8; ++len) {
    std::string wire = "\0\0\0"s + static_cast<char>(len) + "\x04\xd2\x16\x2f"s;
    Message m;
    EXPECT_EQ(read_message(wire, Phase::startup, 1024, m).error, Error::length_too_small);
  }
}

TEST(PgFraming, OversizedLengthIsRejectedFromTheHeaderAlone) {
  Message m;
  // Five bytes: nothing of the body has arrived and the verdict must not wait for it.
  ReadResult r = read_message("D\x7f\xff\xff\xff"s, Phase::typed, 1 << 20, m);
  EXPECT_EQ(r.status, ReadStatus::error);
  EXPECT_EQ(r.error, Error::length_too_large);
  r = read_message("D\xff\xff\xff\xff"s, Phase::typed, kDefaultMaxMessage, m);
  EXPECT_EQ(r.error, Error::length_too_large);
  // The limit is inclusive.
  r = read_message("D\0\0\0\x10"s, Phase::typed, 16, m);
  EXPECT_EQ(r.status, ReadStatus::need_more);
  r = read_message("D\0\0\0\x11"s, Phase::typed, 16, m);
  EXPECT_EQ(r.error, Error::length_too_large);
  // Startup packets are bounded by their own, smaller limit in MessageDecoder.
  MessageDecoder dec(Phase::startup);
  dec.feed("\0\0\x27\x11"s);  // 10001
  EXPECT_EQ(dec.next(m), ReadStatus::error);
  EXPECT_EQ(dec.error(), Error::length_too_large);
  EXPECT_EQ(dec.next(m), ReadStatus::error) << "errors are sticky";
}

TEST(PgFraming, DecoderReassemblesAStreamFedOneByteAtATime) {
  std::string stream;
  encode_ssl_request(stream);
  ASSERT_EQ(encode_startup_message(stream, "alice", "shop"), Error::ok);
  ASSERT_EQ(encode_query(stream, "SELECT 1"), Error::ok);
  ASSERT_EQ(encode_parse(stream, "s1", "SELECT $1", std::vector<std::uint32_t>{23}), Error::ok);
  encode_sync(stream);
  encode_terminate(stream);

  MessageDecoder dec(Phase::startup, 4096);
  std::vector<std::pair<char, std::string>> got;
  for (char c : stream) {
    dec.feed(string_view(&c, 1));
    Message m;
    ReadStatus st;
    while ((st = dec.next(m)) == ReadStatus::message) {
      got.emplace_back(m.type, s(m.body));
      if (m.type == '\0') {
        auto p = decode_startup_packet(m);
        ASSERT_TRUE(p.ok());
        if (p->kind == StartupKind::startup) {
          EXPECT_EQ(p->startup.user(), "alice");
          dec.set_phase(Phase::typed);
        }
      }
    }
    ASSERT_EQ(st, ReadStatus::need_more);
  }
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0].first, '\0');
  EXPECT_EQ(got[1].first, '\0');
  EXPECT_EQ(got[2].first, 'Q');
  EXPECT_EQ(got[3].first, 'P');
  EXPECT_EQ(got[4].first, 'S');
  EXPECT_EQ(got[5].first, 'X');
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(PgFraming, DecoderIsFedInRandomChunksThroughPrepareAndCommit) {
  std::string stream;
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(encode_data_row(stream, std::vector<std::optional<string_view>>{"row", std::nullopt,
                                                                              std::string(i, 'x')}),
              Error::ok);
  }
  std::mt19937 rng(7);
  MessageDecoder dec(Phase::typed, 1 << 16);
  std::size_t at = 0, rows = 0;
  while (at < stream.size()) {
    std::size_t n = std::min<std::size_t>(rng() % 700 + 1, stream.size() - at);
    auto room = dec.prepare(n);
    ASSERT_GE(room.size(), n);
    std::memcpy(room.data(), stream.data() + at, n);
    dec.commit(n);
    at += n;
    Message m;
    while (dec.next(m) == ReadStatus::message) {
      auto row = decode_data_row(m);
      ASSERT_TRUE(row.ok());
      auto it = row->values.begin();
      EXPECT_EQ(*it, "row");
      EXPECT_EQ(*++it, std::nullopt);
      EXPECT_EQ((*++it)->size(), rows);
      ++rows;
    }
    ASSERT_EQ(dec.error(), Error::ok);
  }
  EXPECT_EQ(rows, 300u);
}

TEST(PgFraming, BytesPipelinedBehindAnSslRequestAreVisible) {
  // A client (or a man in the middle) sending data right behind SSLRequest: those bytes were
  // sent in clear text and the server must refuse them rather than read them after the handshake.
  std::string stream;
  encode_ssl_request(stream);
  ASSERT_EQ(encode_query(stream, "SELECT 1"), Error::ok);
  MessageDecoder dec(Phase::startup);
  dec.feed(stream);
  Message m;
  ASSERT_EQ(dec.next(m), ReadStatus::message);
  auto p = decode_startup_packet(m);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, StartupKind::ssl_request);
  EXPECT_EQ(dec.buffered(), 14u);
  EXPECT_EQ(dec.pending().substr(0, 1), "Q");
}

// ============================================================================ startup packets

TEST(PgStartup, StartupMessageParams) {
  std::string wire;
  const StartupParam extra[] = {{"application_name", "binds"}, {"options", "-c x=1"}};
  ASSERT_EQ(encode_startup_message(wire, "u", "db", extra), Error::ok);
  auto p = decode_startup_packet(frame_one(wire, Phase::startup));
  ASSERT_TRUE(p.ok()) << to_string(p.error());
  ASSERT_EQ(p->kind, StartupKind::startup);
  EXPECT_EQ(p->startup.major, 3);
  EXPECT_EQ(p->startup.minor, 0);
  EXPECT_EQ(p->startup.params.size(), 4u);
  EXPECT_EQ(p->startup.user(), "u");
  EXPECT_EQ(p->startup.database(), "db");
  EXPECT_EQ(p->startup.params.find("application_name"), "binds");
  EXPECT_EQ(p->startup.params.find("nope"), std::nullopt);
  std::vector<std::pair<std::string, std::string>> all;
  for (auto [name, value] : p->startup.params) all.emplace_back(name, value);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].first, "options");
  EXPECT_EQ(all[3].second, "-c x=1");

  wire.clear();
  const StartupParam only[] = {{"user", "x"}, {"_pq_.thing", "1"}};
  ASSERT_EQ(encode_startup_message(wire, only, 2), Error::ok);
  p = decode_startup_packet(frame_one(wire, Phase::startup));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->startup.minor, 2);
  EXPECT_EQ(p->startup.database(), std::nullopt);

  // No parameters at all: just the terminator.
  p = decode_startup_packet(frame_one("\0\0\0\x09\0\x03\0\0\0"s, Phase::startup));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->startup.params.empty());
  EXPECT_EQ(p->startup.params.begin(), p->startup.params.end());
}

TEST(PgStartup, SpecialRequests) {
  std::string wire;
  encode_cancel_request(wire, 4242, 0xDEADBEEF);
  auto p = decode_startup_packet(frame_one(wire, Phase::startup));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, StartupKind::cancel_request);
  EXPECT_EQ(p->cancel.process_id, 4242);
  EXPECT_EQ(p->cancel.secret_key, 0xDEADBEEFu);

  wire.clear();
  encode_gssenc_request(wire);
  p = decode_startup_packet(frame_one(wire, Phase::startup));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, StartupKind::gssenc_request);
}

TEST(PgStartup, RejectsOtherProtocolsAndBadLayouts) {
  auto decode = [](const std::string& body) {
    ExactMessage e('\0', body);
    return decode_startup_packet(e.msg).error();
  };
  EXPECT_EQ(decode("\0\x02\0\0user\0x\0\0"s), Error::unsupported_protocol);  // protocol 2.0
  EXPECT_EQ(decode("\0\x04\0\0user\0x\0\0"s), Error::unsupported_protocol);
  EXPECT_EQ(decode("\x04\xd2\x16\x31"s), Error::unsupported_protocol);  // unknown 1234.5681
  EXPECT_EQ(decode("\x04\xd2\x16\x2f\0"s), Error::trailing_bytes);      // SSLRequest + 1
  EXPECT_EQ(decode("\x04\xd2\x16\x2e\0\0\0\1\0\0\0\2\0\0\0\3"s), Error::trailing_bytes);
  EXPECT_EQ(decode("\0\x03\0\0user\0x\0"s), Error::unterminated_string);  // no terminator
  EXPECT_EQ(decode("\0\x03\0\0user\0"s), Error::unterminated_string);     // name, no value
  EXPECT_EQ(decode("\0\x03\0\0\0junk"s), Error::trailing_bytes);
  EXPECT_EQ(decode(""s), Error::truncated);
  Message typed{'Q', "x", "x"};
  EXPECT_EQ(decode_startup_packet(typed).error(), Error::wrong_type);
}

// ============================================================================ round trips

TEST(PgRoundTrip, FrontendAuthentication) {
  std::string w;
  ASSERT_EQ(encode_password_message(w, "md5abc"), Error::ok);
  auto pw = decode_password_message(frame_one(w));
  ASSERT_TRUE(pw.ok());
  EXPECT_EQ(pw->password, "md5abc");

  w.clear();
  ASSERT_EQ(encode_sasl_initial_response(w, kScramSha256, "n,,n=,r=abc"), Error::ok);
  auto init = decode_sasl_initial_response(frame_one(w));
  ASSERT_TRUE(init.ok());
  EXPECT_EQ(init->mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(init->data, "n,,n=,r=abc");

  w.clear();
  ASSERT_EQ(encode_sasl_initial_response(w, "X", std::nullopt), Error::ok);
  init = decode_sasl_initial_response(frame_one(w));
  ASSERT_TRUE(init.ok());
  EXPECT_EQ(init->data, std::nullopt);

  w.clear();
  ASSERT_EQ(encode_sasl_initial_response(w, "X", ""), Error::ok);
  init = decode_sasl_initial_response(frame_one(w));
  ASSERT_TRUE(init.ok());
  EXPECT_EQ(init->data, "");

  w.clear();
  ASSERT_EQ(encode_sasl_response(w, "c=biws,r=x,p=y"), Error::ok);
  auto resp = decode_sasl_response(frame_one(w));
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->data, "c=biws,r=x,p=y");
}

TEST(PgRoundTrip, FrontendExtendedQuery) {
  std::string w;
  const std::uint32_t oids[] = {23, 25, 0};
  ASSERT_EQ(encode_parse(w, "stmt", "SELECT $1, $2, $3", oids), Error::ok);
  auto parse = decode_parse(frame_one(w));
  ASSERT_TRUE(parse.ok());
  EXPECT_EQ(parse->statement, "stmt");
  EXPECT_EQ(parse->sql, "SELECT $1, $2, $3");
  ASSERT_EQ(parse->param_types.size(), 3u);
  EXPECT_EQ(parse->param_types[0], 23u);
  EXPECT_EQ(parse->param_types[1], 25u);
  EXPECT_EQ(std::vector<std::uint32_t>(parse->param_types.begin(), parse->param_types.end()),
            (std::vector<std::uint32_t>{23, 25, 0}));

  w.clear();
  const std::int16_t pf[] = {0, 1, 0};
  const std::optional<string_view> params[] = {"41", string_view("\0\1", 2), std::nullopt, ""};
  const std::int16_t rf[] = {1};
  ASSERT_EQ(encode_bind(w, "portal", "stmt", pf, std::span(params, 4), rf), Error::ok);
  auto bind = decode_bind(frame_one(w));
  ASSERT_TRUE(bind.ok()) << to_string(bind.error());
  EXPECT_EQ(bind->portal, "portal");
  EXPECT_EQ(bind->statement, "stmt");
  ASSERT_EQ(bind->param_formats.size(), 3u);
  EXPECT_EQ(bind->param_formats[1], 1);
  ASSERT_EQ(bind->params.size(), 4u);
  std::vector<std::optional<std::string>> got;
  for (auto v : bind->params) got.push_back(v ? std::optional<std::string>(s(*v)) : std::nullopt);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], "41");
  EXPECT_EQ(got[1], std::string("\0\1", 2));
  EXPECT_EQ(got[2], std::nullopt);
  EXPECT_EQ(got[3], "");
  ASSERT_EQ(bind->result_formats.size(), 1u);
  EXPECT_EQ(bind->result_formats[0], 1);

  w.clear();
  ASSERT_EQ(encode_bind(w, "", "", {}, {}, {}), Error::ok);
  bind = decode_bind(frame_one(w));
  ASSERT_TRUE(bind.ok());
  EXPECT_TRUE(bind->params.empty());
  EXPECT_EQ(bind->params.begin(), bind->params.end());

  w.clear();
  ASSERT_EQ(encode_describe(w, ObjectKind::portal, "p1"), Error::ok);
  auto d = decode_describe(frame_one(w));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, ObjectKind::portal);
  EXPECT_EQ(d->name, "p1");

  w.clear();
  ASSERT_EQ(encode_close(w, ObjectKind::statement, "s1"), Error::ok);
  auto c = decode_close(frame_one(w));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, ObjectKind::statement);
  EXPECT_EQ(c->name, "s1");

  w.clear();
  ASSERT_EQ(encode_execute(w, "p1", 100), Error::ok);
  auto x = decode_execute(frame_one(w));
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->portal, "p1");
  EXPECT_EQ(x->max_rows, 100);

  w.clear();
  ASSERT_EQ(encode_query(w, "SELECT 'é'"), Error::ok);
  auto q = decode_query(frame_one(w));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->sql, "SELECT 'é'");

  for (auto [enc, type] :
       {std::pair{&encode_sync, frontend::sync}, std::pair{&encode_flush, frontend::flush},
        std::pair{&encode_terminate, frontend::terminate},
        std::pair{&encode_copy_done, frontend::copy_done}}) {
    w.clear();
    enc(w);
    EXPECT_EQ(decode_empty(frame_one(w), type), Error::ok);
    EXPECT_EQ(decode_empty(frame_one(w), 'x'), Error::wrong_type);
  }

  w.clear();
  ASSERT_EQ(encode_copy_data(w, "1\t2\n"), Error::ok);
  auto cd = decode_copy_data(frame_one(w));
  ASSERT_TRUE(cd.ok());
  EXPECT_EQ(cd->data, "1\t2\n");
  w.clear();
  ASSERT_EQ(encode_copy_fail(w, "client gave up"), Error::ok);
  auto cf = decode_copy_fail(frame_one(w));
  ASSERT_TRUE(cf.ok());
  EXPECT_EQ(cf->message, "client gave up");
}

TEST(PgRoundTrip, BackendAuthentication) {
  std::string w;
  encode_authentication_ok(w);
  auto a = decode_authentication(frame_one(w));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, AuthKind::ok);

  w.clear();
  encode_authentication_cleartext_password(w);
  a = decode_authentication(frame_one(w));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, AuthKind::cleartext_password);

  w.clear();
  encode_authentication_md5_password(w, Md5Salt{0x01, 0xff, 0x00, 0x7f});
  a = decode_authentication(frame_one(w));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, AuthKind::md5_password);
  EXPECT_EQ(a->md5_salt, (Md5Salt{0x01, 0xff, 0x00, 0x7f}));

  w.clear();
  const string_view mechs[] = {kScramSha256Plus, kScramSha256};
  ASSERT_EQ(encode_authentication_sasl(w, mechs), Error::ok);
  a = decode_authentication(frame_one(w));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, AuthKind::sasl);
  ASSERT_EQ(a->sasl_mechanisms.size(), 2u);
  EXPECT_EQ(*a->sasl_mechanisms.begin(), "SCRAM-SHA-256-PLUS");
  EXPECT_TRUE(a->sasl_mechanisms.contains("SCRAM-SHA-256"));
  EXPECT_FALSE(a->sasl_mechanisms.contains("SCRAM"));

  w.clear();
  ASSERT_EQ(encode_authentication_sasl_continue(w, "r=abc,s=c2FsdA==,i=4096"), Error::ok);
  a = decode_authentication(frame_one(w));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, AuthKind::sasl_continue);
  EXPECT_EQ(a->data, "r=abc,s=c2FsdA==,i=4096");

  w.clear();
  ASSERT_EQ(encode_authentication_sasl_final(w, "v=xyz"), Error::ok);
  a = decode_authentication(frame_one(w));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, AuthKind::sasl_final);
  EXPECT_EQ(a->data, "v=xyz");
}

TEST(PgRoundTrip, BackendSession) {
  std::string w;
  ASSERT_EQ(encode_parameter_status(w, "server_version", "15.8"), Error::ok);
  auto ps = decode_parameter_status(frame_one(w));
  ASSERT_TRUE(ps.ok());
  EXPECT_EQ(ps->name, "server_version");
  EXPECT_EQ(ps->value, "15.8");

  w.clear();
  encode_backend_key_data(w, -7, 0xFFFFFFFF);
  auto k = decode_backend_key_data(frame_one(w));
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->process_id, -7);
  EXPECT_EQ(k->secret_key, 0xFFFFFFFFu);

  for (auto st :
       {TransactionStatus::idle, TransactionStatus::in_transaction, TransactionStatus::failed}) {
    w.clear();
    encode_ready_for_query(w, st);
    auto r = decode_ready_for_query(frame_one(w));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, st);
  }

  w.clear();
  ASSERT_EQ(encode_notification_response(w, 99, "chan", "payload"), Error::ok);
  auto n = decode_notification_response(frame_one(w));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->process_id, 99);
  EXPECT_EQ(n->channel, "chan");
  EXPECT_EQ(n->payload, "payload");

  w.clear();
  const string_view opts[] = {"_pq_.a", "_pq_.b"};
  ASSERT_EQ(encode_negotiate_protocol_version(w, 0, opts), Error::ok);
  auto v = decode_negotiate_protocol_version(frame_one(w));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->newest_minor, 0);
  ASSERT_EQ(v->unrecognized_options.size(), 2u);
  EXPECT_EQ(
      std::vector<string_view>(v->unrecognized_options.begin(), v->unrecognized_options.end()),
      (std::vector<string_view>{"_pq_.a", "_pq_.b"}));

  w.clear();
  ASSERT_EQ(encode_negotiate_protocol_version(w, 1, {}), Error::ok);
  v = decode_negotiate_protocol_version(frame_one(w));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->newest_minor, 1);
  EXPECT_TRUE(v->unrecognized_options.empty());
}

TEST(PgRoundTrip, BackendResults) {
  std::string w;
  const ColumnDescription cols[] = {
      {"id", 16384, 1, 23, 4, -1, 0},
      {"name", 16384, 2, 1043, -1, 68, 1},
      {"", 0, 0, 25, -1, -1, 0},
  };
  ASSERT_EQ(encode_row_description(w, cols), Error::ok);
  auto rd = decode_row_description(frame_one(w));
  ASSERT_TRUE(rd.ok());
  ASSERT_EQ(rd->columns.size(), 3u);
  std::size_t i = 0;
  for (const ColumnDescription& c : rd->columns) {
    EXPECT_EQ(c.name, cols[i].name);
    EXPECT_EQ(c.table_oid, cols[i].table_oid);
    EXPECT_EQ(c.column_attr, cols[i].column_attr);
    EXPECT_EQ(c.type_oid, cols[i].type_oid);
    EXPECT_EQ(c.type_size, cols[i].type_size);
    EXPECT_EQ(c.type_modifier, cols[i].type_modifier);
    EXPECT_EQ(c.format, cols[i].format);
    ++i;
  }
  EXPECT_EQ(i, 3u);
  EXPECT_EQ(rd->columns.begin()->name, "id");

  w.clear();
  ASSERT_EQ(encode_row_description(w, {}), Error::ok);
  rd = decode_row_description(frame_one(w));
  ASSERT_TRUE(rd.ok());
  EXPECT_EQ(rd->columns.begin(), rd->columns.end());

  w.clear();
  const std::optional<string_view> vals[] = {"42", std::nullopt, "", string_view("a\0b", 3)};
  ASSERT_EQ(encode_data_row(w, vals), Error::ok);
  auto dr = decode_data_row(frame_one(w));
  ASSERT_TRUE(dr.ok());
  ASSERT_EQ(dr->values.size(), 4u);
  std::vector<std::optional<string_view>> got(dr->values.begin(), dr->values.end());
  EXPECT_EQ(got, (std::vector<std::optional<string_view>>(std::begin(vals), std::end(vals))));

  // The writer produces the same bytes as the span encoder.
  std::string w2;
  DataRowWriter row(w2);
  row.add("42");
  row.add_null();
  row.add_nullable(std::optional<string_view>(""));
  row.add(string_view("a\0b", 3));
  ASSERT_EQ(row.finish(), Error::ok);
  EXPECT_EQ(w2, w);

  w.clear();
  const std::uint32_t types[] = {23, 25};
  ASSERT_EQ(encode_parameter_description(w, types), Error::ok);
  auto pd = decode_parameter_description(frame_one(w));
  ASSERT_TRUE(pd.ok());
  ASSERT_EQ(pd->types.size(), 2u);
  EXPECT_EQ(pd->types[1], 25u);

  w.clear();
  ASSERT_EQ(encode_command_complete(w, "INSERT 0 5"), Error::ok);
  auto cc = decode_command_complete(frame_one(w));
  ASSERT_TRUE(cc.ok());
  EXPECT_EQ(cc->tag, "INSERT 0 5");
  EXPECT_EQ(command_tag_rows(cc->tag), 5u);

  for (char type :
       {backend::copy_in_response, backend::copy_out_response, backend::copy_both_response}) {
    w.clear();
    const std::int16_t formats[] = {0, 0, 1};
    ASSERT_EQ(encode_copy_response(w, type, 1, formats), Error::ok);
    Message m = frame_one(w);
    EXPECT_EQ(m.type, type);
    auto cr = decode_copy_response(m);
    ASSERT_TRUE(cr.ok());
    EXPECT_EQ(cr->format, 1);
    ASSERT_EQ(cr->column_formats.size(), 3u);
    EXPECT_EQ(cr->column_formats[2], 1);
  }

  using Enc = void (*)(std::string&);
  for (auto [enc, type] : {std::pair<Enc, char>{&encode_parse_complete, backend::parse_complete},
                           {&encode_bind_complete, backend::bind_complete},
                           {&encode_close_complete, backend::close_complete},
                           {&encode_no_data, backend::no_data},
                           {&encode_empty_query_response, backend::empty_query_response},
                           {&encode_portal_suspended, backend::portal_suspended}}) {
    w.clear();
    enc(w);
    EXPECT_EQ(w.size(), 5u);
    EXPECT_EQ(decode_empty(frame_one(w), type), Error::ok);
  }
}

TEST(PgRoundTrip, ErrorAndNoticeFields) {
  std::string w;
  const NoticeField fields[] = {
      {'S', "ERREUR"},
      {'V', "ERROR"},
      {'C', "23505"},
      {'M', "duplicate key"},
      {'D', "Key (id)=(1) already exists."},
      {'H', "hint"},
      {'P', "8"},
      {'p', "3"},
      {'q', "SELECT 1"},
      {'W', "where"},
      {'s', "public"},
      {'t', "t"},
      {'c', "id"},
      {'d', "int4"},
      {'n', "t_pkey"},
      {'F', "nbtinsert.c"},
      {'L', "666"},
      {'R', "_bt_check_unique"},
      {'Z', "a future field"},
      {'C', "second C is ignored by the named view"},
  };
  ASSERT_EQ(encode_error_response(w, fields), Error::ok);
  auto e = decode_error_response(frame_one(w));
  ASSERT_TRUE(e.ok()) << to_string(e.error());
  EXPECT_EQ(e->severity, "ERREUR");
  EXPECT_EQ(e->severity_nonlocalized, "ERROR");
  EXPECT_EQ(e->sqlstate, "23505");
  EXPECT_EQ(e->message, "duplicate key");
  EXPECT_EQ(e->detail, "Key (id)=(1) already exists.");
  EXPECT_EQ(e->hint, "hint");
  EXPECT_EQ(e->position, "8");
  EXPECT_EQ(e->internal_position, "3");
  EXPECT_EQ(e->internal_query, "SELECT 1");
  EXPECT_EQ(e->where, "where");
  EXPECT_EQ(e->schema_name, "public");
  EXPECT_EQ(e->table_name, "t");
  EXPECT_EQ(e->column_name, "id");
  EXPECT_EQ(e->data_type_name, "int4");
  EXPECT_EQ(e->constraint_name, "t_pkey");
  EXPECT_EQ(e->file, "nbtinsert.c");
  EXPECT_EQ(e->line, "666");
  EXPECT_EQ(e->routine, "_bt_check_unique");
  EXPECT_EQ(e->fields.get('Z'), "a future field");
  EXPECT_EQ(e->fields.get('C'), "23505");
  EXPECT_EQ(e->fields.get('Y'), "");
  std::size_t n = 0;
  for (NoticeField f : e->fields) {
    EXPECT_EQ(f.code, fields[n].code);
    EXPECT_EQ(f.value, fields[n].value);
    ++n;
  }
  EXPECT_EQ(n, std::size(fields));

  w.clear();
  ASSERT_EQ(encode_error_response(w, "FATAL", "28P01", "password authentication failed"),
            Error::ok);
  e = decode_error_response(frame_one(w));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->severity, "FATAL");
  EXPECT_EQ(e->sqlstate, "28P01");
  EXPECT_TRUE(e->detail.empty());
  EXPECT_EQ(decode_notice_response(frame_one(w)).error(), Error::wrong_type);

  w.clear();
  const NoticeField notice[] = {{'S', "NOTICE"}, {'M', "hello"}};
  ASSERT_EQ(encode_notice_response(w, notice), Error::ok);
  auto nr = decode_notice_response(frame_one(w));
  ASSERT_TRUE(nr.ok());
  EXPECT_EQ(nr->message, "hello");

  w.clear();
  ASSERT_EQ(encode_notice_response(w, {}), Error::ok);  // just the terminator
  nr = decode_notice_response(frame_one(w));
  ASSERT_TRUE(nr.ok());
  EXPECT_TRUE(nr->fields.empty());
}

TEST(PgCommandTag, RowCounts) {
  EXPECT_EQ(command_tag_rows("INSERT 0 5"), 5u);
  EXPECT_EQ(command_tag_rows("INSERT 16385 1"), 1u);
  EXPECT_EQ(command_tag_rows("UPDATE 3"), 3u);
  EXPECT_EQ(command_tag_rows("DELETE 0"), 0u);
  EXPECT_EQ(command_tag_rows("SELECT 2"), 2u);
  EXPECT_EQ(command_tag_rows("MOVE 1"), 1u);
  EXPECT_EQ(command_tag_rows("FETCH 1"), 1u);
  EXPECT_EQ(command_tag_rows("COPY 7"), 7u);
  EXPECT_EQ(command_tag_rows("MERGE 1"), 1u);
  EXPECT_EQ(command_tag_rows("SELECT 18446744073709551615"), 18446744073709551615u);
  EXPECT_EQ(command_tag_rows("SELECT 18446744073709551616"), std::nullopt);
  EXPECT_EQ(command_tag_rows("CREATE TABLE"), std::nullopt);
  EXPECT_EQ(command_tag_rows("BEGIN"), std::nullopt);
  EXPECT_EQ(command_tag_rows("SELECT"), std::nullopt);
  EXPECT_EQ(command_tag_rows("INSERT 5"), std::nullopt);
  EXPECT_EQ(command_tag_rows("INSERT 0 "), std::nullopt);
  EXPECT_EQ(command_tag_rows("UPDATE -1"), std::nullopt);
  EXPECT_EQ(command_tag_rows("UPDATE 3 "), std::nullopt);
  EXPECT_EQ(command_tag_rows("UPDATE x"), std::nullopt);
  EXPECT_EQ(command_tag_rows("GRANT 5"), std::nullopt);
  EXPECT_EQ(command_tag_rows(""), std::nullopt);
}

// ============================================================================ malformed input

namespace {

struct DecoderCase {
  std::string name;
  Phase phase;
  std::string wire;  // one valid encoded message
  std::function<Error(const Message&)> decode;
  // Body prefixes at least this long, and bodies with extra bytes, may decode: the message ends
  // in free-form data (CopyData, SASL payloads). npos = only the exact body is valid.
  std::size_t free_from = std::string::npos;
};

template <class F>
std::function<Error(const Message&)> err(F f) {
  return [f](const Message& m) { return f(m).error(); };
}

std::function<Error(const Message&)> empty_of(char type) {
  return [type](const Message& m) { return decode_empty(m, type); };
}

std::vector<DecoderCase> all_cases() {
  std::vector<DecoderCase> cases;
  auto add = [&](std::string name, std::string wire, std::function<Error(const Message&)> decode,
                 std::size_t free_from = std::string::npos, Phase phase = Phase::typed) {
    cases.push_back({std::move(name), phase, std::move(wire), std::move(decode), free_from});
  };
  std::string w;
  auto take = [&] { return std::exchange(w, std::string()); };

  // Frontend.
  const StartupParam extra[] = {{"application_name", "t"}};
  (void)encode_startup_message(w, "user", "db", extra);
  add("StartupMessage", take(), err(decode_startup_packet), std::string::npos, Phase::startup);
  encode_ssl_request(w);
  add("SSLRequest", take(), err(decode_startup_packet), std::string::npos, Phase::startup);
  encode_gssenc_request(w);
  add("GSSENCRequest", take(), err(decode_startup_packet), std::string::npos, Phase::startup);
  encode_cancel_request(w, 1, 2);
  add("CancelRequest", take(), err(decode_startup_packet), std::string::npos, Phase::startup);
  (void)encode_password_message(w, "secret");
  add("PasswordMessage", take(), err(decode_password_message));
  (void)encode_sasl_initial_response(w, kScramSha256, "n,,n=,r=abc");
  add("SASLInitialResponse", take(), err(decode_sasl_initial_response));
  (void)encode_sasl_initial_response(w, kScramSha256, std::nullopt);
  add("SASLInitialResponse(-1)", take(), err(decode_sasl_initial_response));
  (void)encode_sasl_response(w, "c=biws");
  add("SASLResponse", take(), err(decode_sasl_response), 0);
  (void)encode_query(w, "SELECT 1");
  add("Query", take(), err(decode_query));
  const std::uint32_t oids[] = {23, 25};
  (void)encode_parse(w, "s", "SELECT $1, $2", oids);
  add("Parse", take(), err(decode_parse));
  const std::int16_t fmts[] = {0, 1};
  const std::optional<string_view> params[] = {"1", std::nullopt, ""};
  (void)encode_bind(w, "p", "s", fmts, params, fmts);
  add("Bind", take(), err(decode_bind));
  (void)encode_describe(w, ObjectKind::statement, "s");
  add("Describe", take(), err(decode_describe));
  (void)encode_execute(w, "p", 5);
  add("Execute", take(), err(decode_execute));
  (void)encode_close(w, ObjectKind::portal, "p");
  add("Close", take(), err(decode_close));
  (void)encode_copy_data(w, "abc");
  add("CopyData", take(), err(decode_copy_data), 0);
  (void)encode_copy_fail(w, "nope");
  add("CopyFail", take(), err(decode_copy_fail));
  encode_sync(w);
  add("Sync", take(), empty_of(frontend::sync));
  encode_flush(w);
  add("Flush", take(), empty_of(frontend::flush));
  encode_terminate(w);
  add("Terminate", take(), empty_of(frontend::terminate));
  encode_copy_done(w);
  add("CopyDone", take(), empty_of(frontend::copy_done));

  // Backend.
  encode_authentication_ok(w);
  add("AuthenticationOk", take(), err(decode_authentication));
  encode_authentication_cleartext_password(w);
  add("AuthenticationCleartextPassword", take(), err(decode_authentication));
  encode_authentication_md5_password(w, {1, 2, 3, 4});
  add("AuthenticationMD5Password", take(), err(decode_authentication));
  const string_view mechs[] = {kScramSha256Plus, kScramSha256};
  (void)encode_authentication_sasl(w, mechs);
  add("AuthenticationSASL", take(), err(decode_authentication));
  (void)encode_authentication_sasl_continue(w, "r=x,s=y,i=1");
  add("AuthenticationSASLContinue", take(), err(decode_authentication), 4);
  (void)encode_authentication_sasl_final(w, "v=z");
  add("AuthenticationSASLFinal", take(), err(decode_authentication), 4);
  (void)encode_parameter_status(w, "TimeZone", "UTC");
  add("ParameterStatus", take(), err(decode_parameter_status));
  encode_backend_key_data(w, 10, 20);
  add("BackendKeyData", take(), err(decode_backend_key_data));
  encode_ready_for_query(w, TransactionStatus::idle);
  add("ReadyForQuery", take(), err(decode_ready_for_query));
  const ColumnDescription cols[] = {{"a", 1, 1, 23, 4, -1, 0}, {"b", 0, 0, 25, -1, -1, 0}};
  (void)encode_row_description(w, cols);
  add("RowDescription", take(), err(decode_row_description));
  const std::optional<string_view> vals[] = {"1", std::nullopt, "xyz", ""};
  (void)encode_data_row(w, vals);
  add("DataRow", take(), err(decode_data_row));
  (void)encode_command_complete(w, "UPDATE 3");
  add("CommandComplete", take(), err(decode_command_complete));
  const NoticeField fields[] = {{'S', "ERROR"}, {'C', "42P01"}, {'M', "no such table"}};
  (void)encode_error_response(w, fields);
  add("ErrorResponse", take(), err(decode_error_response));
  (void)encode_notice_response(w, fields);
  add("NoticeResponse", take(), err(decode_notice_response));
  (void)encode_parameter_description(w, oids);
  add("ParameterDescription", take(), err(decode_parameter_description));
  (void)encode_notification_response(w, 3, "ch", "hi");
  add("NotificationResponse", take(), err(decode_notification_response));
  for (char type :
       {backend::copy_in_response, backend::copy_out_response, backend::copy_both_response}) {
    (void)encode_copy_response(w, type, 0, fmts);
    add(std::string("CopyResponse ") + type, take(), err(decode_copy_response));
  }
  const string_view opts[] = {"_pq_.x"};
  (void)encode_negotiate_protocol_version(w, 0, opts);
  add("NegotiateProtocolVersion", take(), err(decode_negotiate_protocol_version));
  using Enc = void (*)(std::string&);
  for (auto [enc, type] : {std::pair<Enc, char>{&encode_parse_complete, backend::parse_complete},
                           {&encode_bind_complete, backend::bind_complete},
                           {&encode_close_complete, backend::close_complete},
                           {&encode_no_data, backend::no_data},
                           {&encode_empty_query_response, backend::empty_query_response},
                           {&encode_portal_suspended, backend::portal_suspended}}) {
    enc(w);
    add(std::string("empty ") + type, take(), empty_of(type));
  }
  return cases;
}

}  // namespace

TEST(PgMalformed, EveryCaseIsValidAsEncoded) {
  for (const auto& c : all_cases()) {
    Message m = frame_one(c.wire, c.phase);
    ExactMessage e(m.type, m.body);
    EXPECT_EQ(c.decode(e.msg), Error::ok) << c.name;
  }
}

TEST(PgMalformed, EveryPrefixOfEveryMessageNeedsMoreBytes) {
  for (const auto& c : all_cases()) {
    for (std::size_t n = 0; n < c.wire.size(); ++n) {
      // An exact-size copy, so a framer peeking past the prefix would trip ASan.
      std::unique_ptr<char[]> buf(new char[n]);
      if (n > 0) std::memcpy(buf.get(), c.wire.data(), n);
      Message m;
      ReadResult r = read_message(string_view(buf.get(), n), c.phase, kDefaultMaxMessage, m);
      ASSERT_EQ(r.status, ReadStatus::need_more) << c.name << " prefix " << n;
    }
  }
}

TEST(PgMalformed, EveryTruncatedBodyIsAnError) {
  for (const auto& c : all_cases()) {
    Message whole = frame_one(c.wire, c.phase);
    for (std::size_t n = 0; n < whole.body.size(); ++n) {
      ExactMessage e(whole.type, whole.body.substr(0, n));
      Error got = c.decode(e.msg);
      if (n >= c.free_from) continue;
      EXPECT_NE(got, Error::ok) << c.name << " body cut to " << n << " of " << whole.body.size();
    }
  }
}

TEST(PgMalformed, TrailingBytesAreAnError) {
  for (const auto& c : all_cases()) {
    if (c.free_from != std::string::npos) continue;
    Message whole = frame_one(c.wire, c.phase);
    for (string_view extra : {"\0"s, "x"s, "\xff\xff\xff\xff"s}) {
      ExactMessage e(whole.type, s(whole.body) + s(extra));
      EXPECT_NE(c.decode(e.msg), Error::ok) << c.name << " + " << extra.size() << " bytes";
    }
  }
}

TEST(PgMalformed, WrongTypeIsRefused) {
  for (const auto& c : all_cases()) {
    Message whole = frame_one(c.wire, c.phase);
    ExactMessage e(whole.type == '!' ? '?' : '!', whole.body);
    EXPECT_EQ(c.decode(e.msg), Error::wrong_type) << c.name;
  }
}

TEST(PgMalformed, RandomBodiesNeverCrash) {
  // The libFuzzer target goes much further (tests/fuzz/pg_fuzz.cpp); this keeps a cheap version
  // in every test run, with ASan watching the exact-size buffers.
  auto cases = all_cases();
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 20000; ++iter) {
    std::size_t len = rng() % 40;
    std::string body(len, '\0');
    for (auto& ch : body) {
      // Mostly small bytes, so lengths and counts come out small enough to be interesting.
      unsigned r = rng();
      ch = static_cast<char>(r % 4 == 0 ? r >> 8 : r % 4);
    }
    for (const auto& c : cases) {
      Message whole = frame_one(c.wire, c.phase);
      ExactMessage e(whole.type, body);
      (void)c.decode(e.msg);
    }
  }
}

TEST(PgMalformed, SpecificBadFields) {
  auto dec = [](char type, const std::string& body, auto f) {
    ExactMessage e(type, body);
    return f(e.msg).error();
  };
  // DataRow: a column length of -2, or one far past the body.
  EXPECT_EQ(dec('D', "\0\1\xff\xff\xff\xfe"s, decode_data_row), Error::bad_length);
  EXPECT_EQ(dec('D', "\0\1\x7f\xff\xff\xff"s, decode_data_row), Error::truncated);
  EXPECT_EQ(dec('D', "\xff\xff\0\0\0\0"s, decode_data_row), Error::truncated);  // 65535 columns
  EXPECT_EQ(dec('D', "\0\1\xff\xff\xff\xff"s, decode_data_row), Error::ok);     // one NULL
  // Bind: a parameter length of -2; format count larger than the body.
  EXPECT_EQ(dec('B', "\0\0\0\0\0\1\xff\xff\xff\xfe\0\0"s, decode_bind), Error::bad_length);
  EXPECT_EQ(dec('B', "\0\0\x10\0\0\0"s, decode_bind), Error::truncated);
  // ReadyForQuery status outside I/T/E.
  EXPECT_EQ(dec('Z', "X", decode_ready_for_query), Error::bad_value);
  // Describe / Close kind outside S/P.
  EXPECT_EQ(dec('D', "Xname\0"s, decode_describe), Error::bad_value);
  EXPECT_EQ(dec('C', "s\0"s, decode_close), Error::bad_value);
  // Authentication: unknown code, SASL without a mechanism, MD5 with a short salt.
  EXPECT_EQ(dec('R', "\0\0\0\x63"s, decode_authentication), Error::bad_value);
  EXPECT_EQ(dec('R', "\0\0\0\x0a\0"s, decode_authentication), Error::bad_value);
  EXPECT_EQ(dec('R', "\0\0\0\x05\1\2\3"s, decode_authentication), Error::truncated);
  // SASLInitialResponse with length -2 or longer than the rest.
  EXPECT_EQ(dec('p', "M\0\xff\xff\xff\xfe"s, decode_sasl_initial_response), Error::bad_length);
  EXPECT_EQ(dec('p',
                "M\0\0\0\0\x09"s
                "abc"s,
                decode_sasl_initial_response),
            Error::truncated);
  // NegotiateProtocolVersion with a negative or oversized count.
  EXPECT_EQ(dec('v', "\0\0\0\0\xff\xff\xff\xff"s, decode_negotiate_protocol_version),
            Error::bad_length);
  EXPECT_EQ(dec('v',
                "\0\0\0\0\x7f\xff\xff\xff"s
                "a\0"s,
                decode_negotiate_protocol_version),
            Error::unterminated_string);
  // CopyResponse overall format 2.
  EXPECT_EQ(dec('H', "\2\0\0"s, decode_copy_response), Error::bad_value);
  // A string without its NUL.
  EXPECT_EQ(dec('C', "SELECT 1", decode_command_complete), Error::unterminated_string);
  EXPECT_EQ(dec('Q', "", decode_query), Error::unterminated_string);
  // Error fields without the final terminator.
  EXPECT_EQ(dec('E', "SERROR\0"s, decode_error_response), Error::truncated);
  // BackendKeyData with a protocol 3.2 style long key.
  EXPECT_EQ(dec('K', std::string(4 + 32, '\1'), decode_backend_key_data), Error::trailing_bytes);
}

// ============================================================================ encoder errors

TEST(PgEncode, FailedEncodeLeavesTheOutputUntouched) {
  std::string out = "prefix";
  EXPECT_EQ(encode_query(out, string_view("SELECT 1\0; DROP", 15)), Error::embedded_nul);
  EXPECT_EQ(out, "prefix");
  EXPECT_EQ(encode_parse(out, "s", string_view("a\0", 2)), Error::embedded_nul);
  EXPECT_EQ(encode_password_message(out, string_view("pw\0", 3)), Error::embedded_nul);
  EXPECT_EQ(encode_describe(out, static_cast<ObjectKind>('X'), "n"), Error::bad_value);
  EXPECT_EQ(encode_close(out, static_cast<ObjectKind>(0), "n"), Error::bad_value);
  const StartupParam bad[] = {{"", "x"}};
  EXPECT_EQ(encode_startup_message(out, bad), Error::bad_value);
  EXPECT_EQ(encode_authentication_sasl(out, {}), Error::bad_value);
  const string_view empty_mech[] = {""};
  EXPECT_EQ(encode_authentication_sasl(out, empty_mech), Error::bad_value);
  const NoticeField zero_code[] = {{'\0', "x"}};
  EXPECT_EQ(encode_error_response(out, zero_code), Error::bad_value);
  EXPECT_EQ(encode_copy_response(out, 'Q', 0, {}), Error::bad_value);
  EXPECT_EQ(encode_copy_response(out, 'G', 2, {}), Error::bad_value);

  std::vector<std::uint32_t> oids(65536, 23);
  EXPECT_EQ(encode_parse(out, "s", "SELECT", oids), Error::too_many);
  std::vector<std::optional<string_view>> params(65536, std::nullopt);
  EXPECT_EQ(encode_bind(out, "", "", {}, params, {}), Error::too_many);
  EXPECT_EQ(encode_data_row(out, params), Error::too_many);
  EXPECT_EQ(out, "prefix");

  // 65535 is the largest count PostgreSQL accepts, and it round-trips.
  params.pop_back();
  ASSERT_EQ(encode_bind(out, "", "", {}, params, {}), Error::ok);
  Message m;
  ASSERT_EQ(read_message(string_view(out).substr(6), Phase::typed, kDefaultMaxMessage, m).status,
            ReadStatus::message);
  auto b = decode_bind(m);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->params.size(), 65535u);
}

TEST(PgEncode, ErrorTextNamesNoContent) {
  for (int e = 0; e <= static_cast<int>(Error::too_large); ++e) {
    EXPECT_FALSE(to_string(static_cast<Error>(e)).empty());
  }
}

TEST(SqlScan, HighestPlaceholderSkipsLiteralsCommentsAndIdentifiers) {
  using binds::pgwire::highest_placeholder;
  EXPECT_EQ(highest_placeholder("SELECT 1"), 0u);
  EXPECT_EQ(highest_placeholder("SELECT $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT $2, $10, $3"), 10u);
  EXPECT_EQ(highest_placeholder("SELECT '$5', $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT 'it''s $4', $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT E'\\' $4', $2"), 2u);
  EXPECT_EQ(highest_placeholder("SELECT \"col$3\", $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT a$3 FROM t WHERE x = $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT $$ $7 $$, $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT $fn$ $7 $fn$ || $2"), 2u);
  EXPECT_EQ(highest_placeholder("SELECT 1 -- $9\n + $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT /* $9 /* nested $8 */ $7 */ $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT '$1"), 0u);  // unterminated literal
  EXPECT_EQ(highest_placeholder("SELECT $1::int + $1"), 1u);
}
