#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <msgpack.hpp>

#include "protocol/messages.hpp"

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

  HelloOk ok{1, "bindsd/x", 1024, 100, "main"};
  HelloOk ok_back;
  ASSERT_TRUE(decode_hello_ok(decode_one(encode_hello_ok(ok)).body, ok_back, why)) << why;
  EXPECT_EQ(ok_back.max_frame, 1024u);
  EXPECT_EQ(ok_back.default_bind, "main");

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
