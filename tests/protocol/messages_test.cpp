#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <msgpack.hpp>

#include "protocol/messages.hpp"
#include "protocol/utf8.hpp"

using namespace binds::protocol;

namespace {
Frame decode_one(const std::string& bytes) {
  FrameDecoder dec(1 << 20);
  dec.feed(bytes.data(), bytes.size());
  Frame f;
  EXPECT_EQ(dec.next(f), FrameDecoder::Status::frame);
  return f;
}
std::string body_of(const msgpack::sbuffer& b) { return std::string(b.data(), b.size()); }
}  // namespace

TEST(Messages, QueryRoundTripKeepsEveryValueType) {
  QueryRequest q;
  q.bind = "users";
  q.sql = "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
  q.params = {Null{},
              true,
              std::int64_t{-9223372036854775807LL - 1},
              3.25,
              std::string(""),
              Bytes{std::string("\0\xff", 2)},
              Tagged{Type::decimal, "12.340"},
              Tagged{Type::uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}};
  auto f = decode_one(encode_query(42, q));
  EXPECT_EQ(f.type(), FrameType::query);
  EXPECT_EQ(f.header.request_id, 42u);
  QueryRequest back;
  std::string why;
  ASSERT_TRUE(decode_query(f.body, back, why)) << why;
  EXPECT_EQ(back.bind, q.bind);
  EXPECT_EQ(back.sql, q.sql);
  EXPECT_EQ(back.params, q.params);
  // NULL and the empty string stay distinct.
  EXPECT_TRUE(std::holds_alternative<Null>(back.params[0]));
  EXPECT_TRUE(std::holds_alternative<std::string>(back.params[4]));
}

TEST(Messages, AdminArgsRoundTripAndGarbageIsRefused) {
  AdminRequest req{"kill", std::nullopt, {"42"}};
  auto f = decode_one(encode_admin(3, req));
  AdminRequest back;
  std::string why;
  ASSERT_TRUE(decode_admin(f.body, back, why)) << why;
  EXPECT_EQ(back.command, "kill");
  EXPECT_FALSE(back.bind);
  EXPECT_EQ(back.args, std::vector<std::string>{"42"});
  // No args: the key is left out, and old servers' requests decode as before.
  f = decode_one(encode_admin(4, AdminRequest{"pause", std::string("db"), {}}));
  ASSERT_TRUE(decode_admin(f.body, back, why)) << why;
  EXPECT_EQ(back.bind, std::optional<std::string>("db"));
  EXPECT_TRUE(back.args.empty());
  auto body = [](auto fill) {
    msgpack::sbuffer b;
    msgpack::packer<msgpack::sbuffer> pk(b);
    pk.pack_map(2);
    pk.pack(std::string("command"));
    pk.pack(std::string("kill"));
    pk.pack(std::string("args"));
    fill(pk);
    return body_of(b);
  };
  EXPECT_FALSE(decode_admin(body([](auto& pk) { pk.pack(std::string("42")); }), back, why));
  EXPECT_NE(why.find("args"), std::string::npos);
  EXPECT_FALSE(decode_admin(body([](auto& pk) {
                              pk.pack_array(1);
                              pk.pack(42);
                            }),
                            back, why));
  EXPECT_FALSE(decode_admin(body([](auto& pk) {
                              pk.pack_array(1);
                              pk.pack(std::string("\xff"));
                            }),
                            back, why));
  EXPECT_NE(why.find("UTF-8"), std::string::npos);
}

TEST(Messages, AbsentBindMeansDefault) {
  auto f = decode_one(encode_query(1, QueryRequest{std::nullopt, "SELECT 1", {}}));
  QueryRequest back;
  std::string why;
  ASSERT_TRUE(decode_query(f.body, back, why)) << why;
  EXPECT_FALSE(back.bind.has_value());
}

TEST(Messages, UnsupportedParameterTypesAreNamed) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  pk.pack_map(2);
  pk.pack(std::string("sql"));
  pk.pack(std::string("SELECT ?"));
  pk.pack(std::string("params"));
  pk.pack_array(2);
  pk.pack(1);
  pk.pack_map(0);  // a map is no value type
  QueryRequest q;
  std::string why;
  EXPECT_FALSE(decode_query(body_of(b), q, why));
  EXPECT_NE(why.find("parameter 2"), std::string::npos) << why;
  EXPECT_NE(why.find("map"), std::string::npos) << why;
}

TEST(Messages, InTxRoundTripsAndOnlyABooleanIsAccepted) {
  QueryRequest q;
  q.sql = "INSERT INTO t VALUES (1)";
  q.in_tx = true;
  QueryRequest back;
  std::string why;
  ASSERT_TRUE(decode_query(decode_one(encode_query(3, q)).body, back, why)) << why;
  EXPECT_TRUE(back.in_tx);
  q.in_tx = false;
  back.in_tx = true;  // a reused request must not keep the last one's flag
  ASSERT_TRUE(decode_query(decode_one(encode_query(4, q)).body, back, why)) << why;
  EXPECT_FALSE(back.in_tx);
  for (int garbage = 0; garbage < 2; ++garbage) {
    msgpack::sbuffer b;
    msgpack::packer<msgpack::sbuffer> pk(b);
    pk.pack_map(2);
    pk.pack(std::string("sql"));
    pk.pack(std::string("SELECT 1"));
    pk.pack(std::string("in_tx"));
    if (garbage == 0) pk.pack(1);
    else pk.pack(std::string("true"));
    EXPECT_FALSE(decode_query(body_of(b), back, why));
    EXPECT_NE(why.find("in_tx"), std::string::npos) << why;
  }
}

TEST(Messages, IntegerAboveInt64IsRejected) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  pk.pack_map(2);
  pk.pack(std::string("sql"));
  pk.pack(std::string("SELECT ?"));
  pk.pack(std::string("params"));
  pk.pack_array(1);
  pk.pack_uint64(std::numeric_limits<std::uint64_t>::max());
  QueryRequest q;
  std::string why;
  EXPECT_FALSE(decode_query(body_of(b), q, why));
  EXPECT_NE(why.find("64-bit"), std::string::npos) << why;
}

TEST(Messages, MissingSqlAndNonMapBodiesAreErrors) {
  QueryRequest q;
  std::string why;
  EXPECT_FALSE(decode_query(std::string("\x81\xa4" "bind" "\xa1" "x", 8), q, why));
  EXPECT_NE(why.find("missing \"sql\""), std::string::npos) << why;
  EXPECT_FALSE(decode_query(std::string("\x93\x01\x02\x03", 4), q, why));
  EXPECT_NE(why.find("not a MessagePack map"), std::string::npos) << why;
  EXPECT_FALSE(decode_query(std::string("\xc1", 1), q, why));  // 0xc1 is never valid
  EXPECT_NE(why.find("invalid MessagePack"), std::string::npos) << why;
  EXPECT_FALSE(decode_query(std::string("\x80\x80", 2), q, why));
  EXPECT_NE(why.find("trailing"), std::string::npos) << why;
}

TEST(Messages, HostileArrayLengthDoesNotAllocate) {
  // array32 claiming 4 billion elements inside a 10-byte body.
  std::string body("\x81\xa6params\xdd\xff\xff\xff\xff", 13);
  QueryRequest q;
  std::string why;
  EXPECT_FALSE(decode_query(body, q, why));
}

TEST(Messages, HelloRequiresMagicAndVersions) {
  Hello h;
  h.client = "test";
  auto f = decode_one(encode_hello(h));
  Hello back;
  std::string why;
  ASSERT_TRUE(decode_hello(f.body, back, why)) << why;
  EXPECT_EQ(back.versions, std::vector<std::int64_t>{1});
  EXPECT_EQ(back.client, "test");
  EXPECT_FALSE(decode_hello(std::string("\x81\xa5magic\xa3" "foo", 11), back, why));
  EXPECT_NE(why.find("magic"), std::string::npos);
}

TEST(Messages, ResponsesRoundTrip) {
  std::string why;
  std::vector<Column> cols{{"id", Type::int64, "int4"}, {"at", Type::timestamp, "timestamptz"}};
  std::vector<Column> cols_back;
  ASSERT_TRUE(decode_columns(decode_one(encode_columns(5, cols)).body, cols_back, why)) << why;
  EXPECT_EQ(cols_back, cols);

  RowBatchWriter w;
  w.add(Row{std::int64_t{1}, Tagged{Type::timestamp, "2024-01-01 00:00:00+00"}});
  w.add(Row{Null{}, std::string("")});
  EXPECT_EQ(w.rows(), 2u);
  std::vector<Row> rows;
  ASSERT_TRUE(decode_rows(decode_one(w.finish(5)).body, rows, why)) << why;
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][1], (Value{Tagged{Type::timestamp, "2024-01-01 00:00:00+00"}}));
  EXPECT_TRUE(std::holds_alternative<Null>(rows[1][0]));
  EXPECT_EQ(w.rows(), 0u);

  Complete c{3, 0, 17, true};
  Complete c_back;
  ASSERT_TRUE(decode_complete(decode_one(encode_complete(5, c)).body, c_back, why)) << why;
  EXPECT_EQ(c_back.affected, 3);
  EXPECT_EQ(c_back.last_insert_id, 17);
  EXPECT_TRUE(c_back.in_transaction);

  ErrorInfo e{ErrorCode::sql_error, "relation does not exist", "main", "42P01", std::nullopt, true};
  ErrorInfo e_back;
  ASSERT_TRUE(decode_error(decode_one(encode_error(5, e)).body, e_back, why)) << why;
  EXPECT_EQ(e_back.code, ErrorCode::sql_error);
  EXPECT_EQ(e_back.sqlstate, "42P01");
  EXPECT_EQ(e_back.bind, "main");
  EXPECT_EQ(e_back.may_have_executed, true);
  EXPECT_EQ(error_code_name(e_back.code), "SQL_ERROR");

  HelloOk ok{1, "bindsd/x", 1024, 100, "main", {"in_tx", "later"}};
  HelloOk ok_back;
  ASSERT_TRUE(decode_hello_ok(decode_one(encode_hello_ok(ok)).body, ok_back, why)) << why;
  EXPECT_EQ(ok_back.max_frame, 1024u);
  EXPECT_EQ(ok_back.default_bind, "main");
  EXPECT_EQ(ok_back.features, ok.features);
  ok.features.clear();  // an older server's HELLO_OK: no key at all
  ok_back.features = {"stale"};
  ASSERT_TRUE(decode_hello_ok(decode_one(encode_hello_ok(ok)).body, ok_back, why)) << why;
  EXPECT_TRUE(ok_back.features.empty());

  std::vector<BindInfo> b{{"main", "postgresql", "app", true}};
  std::vector<BindInfo> b_back;
  ASSERT_TRUE(decode_binds(decode_one(encode_binds(5, b)).body, b_back, why)) << why;
  ASSERT_EQ(b_back.size(), 1u);
  EXPECT_TRUE(b_back[0].is_default);
}

TEST(Messages, FloatSpecialsSurvive) {
  RowBatchWriter w;
  w.add(Row{std::numeric_limits<double>::infinity(), std::nan("")});
  std::vector<Row> rows;
  std::string why;
  ASSERT_TRUE(decode_rows(decode_one(w.finish(1)).body, rows, why));
  EXPECT_TRUE(std::isinf(std::get<double>(rows[0][0])));
  EXPECT_TRUE(std::isnan(std::get<double>(rows[0][1])));
}

TEST(Messages, ErrorCodeNamesAreStable) {
  for (auto [c, n] : std::vector<std::pair<ErrorCode, std::string>>{
           {ErrorCode::unknown_bind, "UNKNOWN_BIND"},
           {ErrorCode::backend_unavailable, "BACKEND_UNAVAILABLE"},
           {ErrorCode::pool_timeout, "POOL_TIMEOUT"},
           {ErrorCode::protocol_error, "PROTOCOL_ERROR"}}) {
    EXPECT_EQ(error_code_name(c), n);
    ErrorCode back;
    ASSERT_TRUE(error_code_from_name(n, back));
    EXPECT_EQ(back, c);
  }
}

// msgpack-c packs an integral double as an integer; a float64 column must hold float 64 values.
TEST(Messages, Float64IsAlwaysAMsgpackFloat64) {
  for (double d : {1.0, -0.0, 0.0, 1e19, -5.0, 3.25}) {
    RowBatchWriter w;
    w.add(Row{d});
    const ValueView view = ValueView::float64(d);
    w.add(std::span<const ValueView>(&view, 1));
    const Frame f = decode_one(w.finish(1));
    msgpack::object_handle oh = msgpack::unpack(f.body.data(), f.body.size());
    const auto& rows = oh.get().via.map.ptr[0].val.via.array;
    ASSERT_EQ(rows.size, 2u);
    for (std::uint32_t r = 0; r < 2; ++r) {
      const msgpack::object& v = rows.ptr[r].via.array.ptr[0];
      ASSERT_EQ(v.type, msgpack::type::FLOAT64) << d;
      EXPECT_EQ(std::signbit(v.via.f64), std::signbit(d));
      EXPECT_EQ(v.via.f64, d);
    }
    // 0xcb + 8 bytes, big-endian, exactly as the msgpack spec writes float 64.
    EXPECT_NE(f.body.find('\xcb'), std::string::npos);
  }
}

TEST(Utf8, ValidationFollowsRfc3629) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii text longer than eight bytes"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("abcdefgh\xc3"));       // truncated after an ASCII run
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));           // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));       // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));   // above U+10FFFF
  EXPECT_EQ(repair_utf8("a\xff" "b"), "a\xef\xbf\xbd" "b");
  // A truncated sequence is one replacement, as Python's errors="replace" gives.
  EXPECT_EQ(repair_utf8("\xe6\x97" "x"), "\xef\xbf\xbd" "x");
  EXPECT_EQ(repair_utf8("caf\xc3\xa9"), "caf\xc3\xa9");
}

TEST(Utf8, EveryStrTheBrokerSendsIsValid) {
  ErrorInfo e{ErrorCode::unknown_bind, "unknown bind \"\xff\xfe\"", "\xc3", "", std::nullopt, false};
  const Frame f = decode_one(encode_error(3, e));
  ErrorInfo back;
  std::string why;
  ASSERT_TRUE(decode_error(f.body, back, why)) << why;
  EXPECT_EQ(back.message, "unknown bind \"\xef\xbf\xbd\xef\xbf\xbd\"");
  EXPECT_EQ(back.bind, "\xef\xbf\xbd");

  RowBatchWriter w;
  w.add(Row{std::string("ok\x80")});
  std::vector<Row> rows;
  ASSERT_TRUE(decode_rows(decode_one(w.finish(1)).body, rows, why));
  EXPECT_EQ(std::get<std::string>(rows[0][0]), "ok\xef\xbf\xbd");
}

TEST(Messages, TextThatIsNotUtf8AndSqlWithNulAreRefusedByName) {
  auto query_body = [](auto&& fill) {
    msgpack::sbuffer b;
    msgpack::packer<msgpack::sbuffer> pk(b);
    fill(pk);
    return std::string(b.data(), b.size());
  };
  QueryRequest q;
  std::string why;
  const std::string nul_sql = query_body([](auto& pk) {
    pk.pack_map(1);
    pk.pack(std::string("sql"));
    pk.pack(std::string("SELECT 1\0; DROP TABLE t", 24));
  });
  EXPECT_FALSE(decode_query(nul_sql, q, why));
  EXPECT_NE(why.find("NUL"), std::string::npos) << why;

  const std::string bad_param = query_body([](auto& pk) {
    pk.pack_map(2);
    pk.pack(std::string("sql"));
    pk.pack(std::string("SELECT ?, ?"));
    pk.pack(std::string("params"));
    pk.pack_array(2);
    pk.pack(std::string("fine"));
    pk.pack(std::string("\xff\xfe"));
  });
  EXPECT_FALSE(decode_query(bad_param, q, why));
  EXPECT_NE(why.find("parameter 2"), std::string::npos) << why;
  EXPECT_NE(why.find("UTF-8"), std::string::npos) << why;

  const std::string bad_bind = query_body([](auto& pk) {
    pk.pack_map(2);
    pk.pack(std::string("sql"));
    pk.pack(std::string("SELECT 1"));
    pk.pack(std::string("bind"));
    pk.pack(std::string("us\xe9rs"));
  });
  EXPECT_FALSE(decode_query(bad_bind, q, why));
  EXPECT_NE(why.find("\"bind\" is not valid UTF-8"), std::string::npos) << why;
}

TEST(Messages, ErrorsAreCutToFitMaxFrame) {
  ErrorInfo e{ErrorCode::sql_error, std::string(100000, 'x') + "\xc3\xa9", "main", "42601", std::nullopt, false};
  for (std::size_t max : {4096u, 65536u}) {
    const std::string f = encode_error_within(7, e, max);
    EXPECT_LE(f.size() - kHeaderSize, max);
    ErrorInfo back;
    std::string why;
    ASSERT_TRUE(decode_error(decode_one(f).body, back, why)) << why;
    EXPECT_NE(back.message.find("truncated"), std::string::npos);
    EXPECT_TRUE(is_valid_utf8(back.message));
    EXPECT_EQ(back.sqlstate, "42601");
  }
  // A bind name echoed from a request near max_frame is cut too.
  ErrorInfo unknown{ErrorCode::unknown_bind, "unknown bind", std::string(60000, 'b'), "", std::nullopt, false};
  EXPECT_LE(encode_error_within(1, unknown, 4096).size() - kHeaderSize, 4096u);
  // What fits is untouched.
  ErrorInfo fine{ErrorCode::sql_error, "short", "main", "", std::nullopt, false};
  EXPECT_EQ(encode_error_within(1, fine, 4096), encode_error(1, fine));
}

TEST(Messages, RowBatchCutBeforeItsLastRow) {
  RowBatchWriter w;
  w.add(Row{std::string("first")});
  const std::size_t start = w.bytes();
  w.add(Row{std::string("second")});
  std::vector<Row> rows;
  std::string why;
  ASSERT_TRUE(decode_rows(decode_one(w.finish_all_but_last(2, start)).body, rows, why)) << why;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(rows[0][0]), "first");
  EXPECT_EQ(w.rows(), 1u);
  rows.clear();
  ASSERT_TRUE(decode_rows(decode_one(w.finish(2)).body, rows, why)) << why;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(rows[0][0]), "second");
}
