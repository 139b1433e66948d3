#include <gtest/gtest.h>

#include <random>

#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

using namespace binds::protocol;

TEST(Frame, HeaderRoundTripIsBigEndian) {
  FrameHeader h{0x01020304, 0x82, 0, 0, 0xA0B0C0D0};
  unsigned char buf[kHeaderSize];
  encode_header(h, buf);
  EXPECT_EQ(buf[0], 0x01);
  EXPECT_EQ(buf[3], 0x04);
  EXPECT_EQ(buf[4], 0x82);
  EXPECT_EQ(buf[8], 0xA0);
  EXPECT_EQ(buf[11], 0xD0);
  auto back = decode_header(buf);
  EXPECT_EQ(back.length, h.length);
  EXPECT_EQ(back.type, h.type);
  EXPECT_EQ(back.request_id, h.request_id);
}

TEST(Frame, DecoderReassemblesFramesFedOneByteAtATime) {
  std::string stream = encode_empty(FrameType::ping, 7) + encode_query(8, QueryRequest{"b", "SELECT 1", {}});
  FrameDecoder dec(1024);
  std::vector<Frame> got;
  for (char c : stream) {
    dec.feed(&c, 1);
    Frame f;
    while (dec.next(f) == FrameDecoder::Status::frame) got.push_back(f);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].type(), FrameType::ping);
  EXPECT_EQ(got[0].header.request_id, 7u);
  EXPECT_EQ(got[1].type(), FrameType::query);
  EXPECT_EQ(got[1].header.request_id, 8u);
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(Frame, OversizedLengthIsRejectedFromTheHeaderAlone) {
  unsigned char hdr[kHeaderSize];
  encode_header(FrameHeader{0xFFFFFFF0u, 0x02, 0, 0, 1}, hdr);
  FrameDecoder dec(4096);
  dec.feed(hdr, sizeof hdr);  // no body bytes at all: the decision must not wait for them
  Frame f;
  ASSERT_EQ(dec.next(f), FrameDecoder::Status::error);
  EXPECT_NE(dec.error().find("exceeds the limit of 4096"), std::string::npos) << dec.error();
  EXPECT_LT(dec.buffered(), 64u);
}

TEST(Frame, TruncatedFrameWaitsForMore) {
  std::string f = encode_query(3, QueryRequest{std::nullopt, "SELECT 1", {1, 2}});
  FrameDecoder dec(4096);
  dec.feed(f.data(), f.size() - 1);
  Frame out;
  EXPECT_EQ(dec.next(out), FrameDecoder::Status::need_more);
  dec.feed(f.data() + f.size() - 1, 1);
  EXPECT_EQ(dec.next(out), FrameDecoder::Status::frame);
}

TEST(Frame, NonZeroReservedBitsAreAProtocolError) {
  unsigned char hdr[kHeaderSize];
  encode_header(FrameHeader{0, 0x03, 0x40, 0, 1}, hdr);
  FrameDecoder dec(4096);
  dec.feed(hdr, sizeof hdr);
  Frame f;
  EXPECT_EQ(dec.next(f), FrameDecoder::Status::error);
  EXPECT_NE(dec.error().find("flags"), std::string::npos);
}

// Random bytes must end in need_more or a clean error, never a crash or a huge allocation.
TEST(Frame, RandomBytesNeverCrashTheDecoder) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 2000; ++round) {
    std::string junk(rng() % 200, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    FrameDecoder dec(4096);
    dec.feed(junk.data(), junk.size());
    Frame f;
    for (int i = 0; i < 50; ++i) {
      auto st = dec.next(f);
      if (st != FrameDecoder::Status::frame) break;
      EXPECT_LE(f.body.size(), 4096u);
      // Bodies of random frames go through every decoder; they must fail cleanly or succeed.
      std::string why;
      QueryRequest q;
      Hello h;
      std::vector<Row> rows;
      (void)decode_query(f.body, q, why);
      (void)decode_hello(f.body, h, why);
      (void)decode_rows(f.body, rows, why);
    }
  }
}
