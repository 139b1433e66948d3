// Faults from every side: a backend that goes away and comes back, garbage from clients, bad
// configuration files, secrets that must never be printed, and results too big to hold.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "client/format.hpp"
#include "harness.hpp"
#include "raw_client.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace binds::test {
namespace {

using client::Client;
using client::ServerError;
using protocol::ErrorCode;
using protocol::Frame;
using protocol::FrameType;
using protocol::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

std::string lite_bind(const fs::path& dir) { return "  lite: sqlite:///" + (dir / "lite.db").string() + "\n"; }

// A bind's reachability column in `binds stats` ("ok", "backend down").
std::string bind_state(Client& c, const std::string& bind) {
  auto t = c.admin("stats");
  for (const auto& row : t.rows)
    if (client::value_text(row[0]) == bind) return client::value_text(row.back());
  return "?";
}

// Polls bind_state every 100 ms for up to `seconds`.
bool wait_for_state(Client& c, const std::string& bind, const std::string& want, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (bind_state(c, bind) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// ---- a backend that goes away ----

// Stops the test MariaDB; whatever happens after, it comes back for the tests that follow.
struct MysqlStopped {
  bool stopped = true;
  MysqlStopped() { testdb("stop-mysql"); }
  ~MysqlStopped() {
    if (stopped) testdb("start-mysql");
  }
  MysqlStopped(const MysqlStopped&) = delete;
  MysqlStopped& operator=(const MysqlStopped&) = delete;
};

// Reachability in stats comes from the pool's own checks: it turns "backend down" when MariaDB stops
// and "ok" when it returns, with no request sent to the bind in between.
TEST(Faults, ReachabilityFollowsTheBackendWithoutRequests) {
  BINDS_REQUIRE_URL("BINDS_TEST_MYSQL_URL", my);
  auto tmp = make_temp_dir("reach");
  Daemon d("default: lite\nbinds:\n  my: " + my + "\n" + lite_bind(tmp));
  auto c = d.connect();
  ASSERT_EQ(client::value_text(c.query("SELECT 1", {}, std::string("my")).rows.at(0).at(0)), "1");
  auto state = [&] { return bind_state(c, "my"); };
  auto wait_for = [&](const std::string& want) { return wait_for_state(c, "my", want, 10); };
  MysqlStopped restart;
  EXPECT_TRUE(wait_for("backend down")) << "still " << state() << " 10 s after MariaDB stopped";
  testdb("start-mysql");
  restart.stopped = false;
  EXPECT_TRUE(wait_for("ok")) << "still " << state() << " 10 s after MariaDB returned";
  EXPECT_EQ(client::value_text(c.query("SELECT 2", {}, std::string("my")).rows.at(0).at(0)), "2");
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
}

// A backend that stops answering without closing anything (SIGSTOP: sockets stay open, no EOF)
// is found by the pool's ping of an idle connection: stats, /readyz and binds_backend_reachable
// say "backend down" within seconds, with no request sent, and "ok" once it answers again.
TEST(Faults, AFrozenBackendIsReportedDownWithoutRequests) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  auto tmp = make_temp_dir("frozen");
  Daemon d("default: lite\nbinds:\n  pg:\n    url: " + pg + "?connect_timeout=2\n    pool: { min: 1 }\n" +
           lite_bind(tmp));
  auto c = d.connect();
  ASSERT_EQ(client::value_text(c.query("SELECT 1", {}, std::string("pg")).rows.at(0).at(0)), "1");
  auto state = [&] { return bind_state(c, "pg"); };
  auto wait_for = [&](const std::string& want, int seconds) { return wait_for_state(c, "pg", want, seconds); };
  ASSERT_EQ(state(), "ok");
  {
    struct Thaw {
      bool frozen = true;
      ~Thaw() {
        if (frozen) testdb("thaw-pg");
      }
    } thaw;
    testdb("freeze-pg");
    // idle 5 s before a ping, a tick every 2 s, 3 s for the answer: down within ~10 s
    EXPECT_TRUE(wait_for("backend down", 20)) << "still " << state() << " 20 s after PostgreSQL froze";
    // The other binds are served meanwhile.
    EXPECT_EQ(client::value_text(c.query("SELECT 3", {}, std::string("lite")).rows.at(0).at(0)), "3");
    testdb("thaw-pg");
    thaw.frozen = false;
  }
  EXPECT_TRUE(wait_for("ok", 20)) << "still " << state() << " 20 s after PostgreSQL thawed";
  EXPECT_EQ(client::value_text(c.query("SELECT 2", {}, std::string("pg")).rows.at(0).at(0)), "2");
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
}

TEST(Faults, MariaDBDownOnlyFailsItsOwnBindAndRecoversWithoutRestart) {
  BINDS_REQUIRE_URL("BINDS_TEST_MYSQL_URL", my);
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  auto tmp = make_temp_dir("down");
  Daemon d("default: lite\nbinds:\n"
           "  my:\n    url: " + my + "\n    pool: { max: 3, acquire_timeout: 2s }\n"
           "  pg: " + pg + "\n" + lite_bind(tmp));
  auto c = d.connect();
  ASSERT_EQ(client::value_text(c.query("SELECT 1", {}, std::string("my")).rows.at(0).at(0)), "1");

  MysqlStopped restart;

  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    try {
      c.query("SELECT 1", {}, std::string("my"));
      ADD_FAILURE() << "query on a stopped MariaDB succeeded";
    } catch (const ServerError& e) {
      EXPECT_EQ(e.info.code, ErrorCode::backend_unavailable) << e.what();
      EXPECT_EQ(e.info.bind, "my");
      EXPECT_THAT(e.info.message, Not(HasSubstr("binds-secret")));
    }
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(2500)) << "not answered within acquire_timeout";
    // The other binds are untouched, on the same client connection.
    EXPECT_EQ(client::value_text(c.query("SELECT 1", {}, std::string("pg")).rows.at(0).at(0)), "1");
    EXPECT_EQ(client::value_text(c.query("SELECT 1", {}, std::string("lite")).rows.at(0).at(0)), "1");
  }

  testdb("start-mysql");
  restart.stopped = false;
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    try {
      back = client::value_text(c.query("SELECT 2", {}, std::string("my")).rows.at(0).at(0)) == "2";
    } catch (const ServerError& e) {
      EXPECT_EQ(e.info.code, ErrorCode::backend_unavailable) << e.what();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  EXPECT_TRUE(back) << "the MySQL bind did not recover after MariaDB came back";
  EXPECT_THAT(d.log(), Not(HasSubstr("binds-secret")));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

// ---- garbage from clients ----

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = make_temp_dir("bad");
    daemon_ = std::make_unique<Daemon>("default: lite\nbinds:\n" + lite_bind(tmp_));
    bystander_ = std::make_unique<Bystander>(*daemon_);
  }
  void TearDown() override {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bystander_->finish();
    EXPECT_GT(bystander_->ok(), 0);
    EXPECT_EQ(bystander_->bad(), 0) << bystander_->last_error();
    // And a brand-new client is still served.
    EXPECT_EQ(client::value_text(daemon_->connect().query("SELECT 7").rows.at(0).at(0)), "7");
    bystander_.reset();
    daemon_.reset();
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  fs::path tmp_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Bystander> bystander_;
};

TEST_F(BadInput, RandomBytesBeforeTheHandshake) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    RawClient r(*daemon_);
    std::string junk(64 + rng() % 512, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    r.send(junk);
    EXPECT_TRUE(r.closed_by_server() || r.closed_by_server());
  }
  EXPECT_THAT(daemon_->log(), HasSubstr("protocol error"));
}

TEST_F(BadInput, FirstFrameMustBeHello) {
  RawClient r(*daemon_);
  r.send(protocol::encode_empty(FrameType::ping, 1));
  auto e = r.read_error(0);
  EXPECT_EQ(e.code, ErrorCode::protocol_error);
  EXPECT_THAT(e.message, HasSubstr("HELLO"));
  EXPECT_TRUE(r.closed_by_server());
}

TEST_F(BadInput, UnsupportedVersionIsRefused) {
  RawClient r(*daemon_);
  protocol::Hello h;
  h.versions = {2, 3};
  r.send(protocol::encode_hello(h));
  EXPECT_EQ(r.read_error(0).code, ErrorCode::unsupported_version);
  EXPECT_TRUE(r.closed_by_server());
}

TEST_F(BadInput, TruncatedFrameThenHangUp) {
  {
    RawClient r(*daemon_);
    r.hello();
    auto q = protocol::encode_query(5, protocol::QueryRequest{std::nullopt, "SELECT 1", {}});
    r.send(q.substr(0, q.size() - 3));
  }  // closes mid-frame
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_THAT(daemon_->log(), HasSubstr("client closed the connection"));
}

TEST_F(BadInput, OversizedLengthPrefixIsRejectedBeforeAllocation) {
  long before = daemon_->rss_kib();
  RawClient r(*daemon_);
  r.hello();
  std::string hdr(protocol::kHeaderSize, '\0');
  protocol::encode_header(protocol::FrameHeader{0xFFFFFFF0u, 0x02, 0, 0, 9},
                          reinterpret_cast<unsigned char*>(hdr.data()));
  r.send(hdr);
  auto e = r.read_error(0);
  EXPECT_EQ(e.code, ErrorCode::protocol_error);
  EXPECT_THAT(e.message, HasSubstr("exceeds the limit"));
  EXPECT_TRUE(r.closed_by_server());
  if (!kSanitized) {
    EXPECT_LT(daemon_->rss_kib() - before, 16 * 1024);
  }
}

TEST_F(BadInput, UnknownFrameTypeKeepsTheConnection) {
  RawClient r(*daemon_);
  r.hello();
  r.send(frame(0x50, 3, std::string("\x80", 1)));
  auto e = r.read_error(3);
  EXPECT_EQ(e.code, ErrorCode::unknown_frame_type);
  EXPECT_THAT(e.message, HasSubstr("0x50"));
  r.send(protocol::encode_empty(FrameType::ping, 4));
  Frame f;
  ASSERT_TRUE(r.read(f));
  EXPECT_EQ(f.type(), FrameType::pong);
  EXPECT_EQ(f.header.request_id, 4u);
}

TEST_F(BadInput, InvalidMessagePackIsABadRequest) {
  RawClient r(*daemon_);
  r.hello();
  r.send(frame(0x02, 11, std::string("\xc1\xc1\xc1", 3)));
  auto e = r.read_error(11);
  EXPECT_EQ(e.code, ErrorCode::bad_request);
  EXPECT_THAT(e.message, HasSubstr("MessagePack"));
  r.send(frame(0x02, 12, std::string("\xa3" "abc", 4)));  // a string, not a map
  EXPECT_EQ(r.read_error(12).code, ErrorCode::bad_request);
  r.send(protocol::encode_empty(FrameType::ping, 13));
  Frame f;
  ASSERT_TRUE(r.read(f));
  EXPECT_EQ(f.type(), FrameType::pong);
}

TEST_F(BadInput, UnsupportedParameterTypeNamesThePosition) {
  RawClient r(*daemon_);
  r.hello();
  // {"sql": "SELECT ?", "params": [1, {}]}
  std::string body("\x82\xa3sql\xa8SELECT ?\xa6params\x92\x01\x80", 24);
  r.send(frame(0x02, 21, body));
  auto e = r.read_error(21);
  EXPECT_EQ(e.code, ErrorCode::bad_request);
  EXPECT_THAT(e.message, HasSubstr("parameter 2"));
  // Same connection still runs queries.
  r.send(protocol::encode_query(22, protocol::QueryRequest{std::nullopt, "SELECT 1", {}}));
  Frame f;
  ASSERT_TRUE(r.read(f));
  EXPECT_EQ(f.type(), FrameType::columns);
}

// ---- configuration ----

struct BadConfigCase {
  const char* name;
  const char* yaml;
  const char* expect;  // substring of the error
};

class BadConfig : public ::testing::TestWithParam<BadConfigCase> {};


TEST_P(BadConfig, RefusedWithFileLineAndKey) {
  auto dir = make_temp_dir("cfg");
  auto path = dir / "binds.yaml";
  std::ofstream(path) << GetParam().yaml;
  std::string out;
  EXPECT_EQ(run_bindsd("--config " + path.string(), out), 1) << out;
  EXPECT_THAT(out, HasSubstr("binds.yaml:")) << out;
  EXPECT_THAT(out, HasSubstr(GetParam().expect)) << out;
  EXPECT_THAT(out, Not(HasSubstr("s3cret"))) << "password leaked: " << out;
  EXPECT_EQ(run_bindsd("--check-config " + path.string(), out), 1) << out;
  EXPECT_THAT(out, HasSubstr(GetParam().expect)) << out;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, BadConfig,
    ::testing::Values(
        BadConfigCase{"unknown_key", "listen: {unix: /tmp/x.sock}\nbinds:\n  a: sqlite://\nbogus: 1\n", "bogus"},
        BadConfigCase{"unknown_pool_key",
                      "listen: {unix: /tmp/x.sock}\nbinds:\n  a:\n    url: sqlite://\n    pool: { maxx: 3 }\n",
                      "binds.a.pool.maxx"},
        BadConfigCase{"bad_scheme", "listen: {unix: /tmp/x.sock}\nbinds:\n  a: oracle://u:s3cret@h/db\n",
                      "binds.a"},
        BadConfigCase{"bad_url", "listen: {unix: /tmp/x.sock}\nbinds:\n  a: postgresql://u:s3cret@h:99999/db\n",
                      "binds.a"},
        BadConfigCase{"bad_duration",
                      "listen: {unix: /tmp/x.sock}\nbinds:\n  a:\n    url: sqlite://\n    pool: { acquire_timeout: 5x }\n",
                      "binds.a.pool.acquire_timeout"},
        BadConfigCase{"min_over_max",
                      "listen: {unix: /tmp/x.sock}\nbinds:\n  a:\n    url: sqlite://\n    pool: { max: 2, min: 3 }\n",
                      "binds.a.pool"},
        BadConfigCase{"default_unknown",
                      "listen: {unix: /tmp/x.sock}\ndefault: nope\nbinds:\n  a: sqlite://\n  b: sqlite://\n",
                      "default"},
        BadConfigCase{"yaml_syntax", "listen: {unix: /tmp/x.sock\nbinds: [\n", "YAML"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Config, CheckConfigAcceptsTheShippedDefault) {
  std::string out;
  EXPECT_EQ(run_bindsd("--check-config " + std::string(BINDS_SOURCE_DIR) + "/binds.yaml", out), 0) << out;
  EXPECT_THAT(out, HasSubstr("OK"));
}

TEST(Config, BadCommandLineIsAUsageError) {
  std::string out;
  EXPECT_EQ(run_bindsd("--frobnicate", out), 2);
  EXPECT_THAT(out, HasSubstr("unknown option --frobnicate"));
  EXPECT_EQ(run_bindsd("--threads zero", out), 2);
  EXPECT_EQ(run_bindsd("--config", out), 2);
  EXPECT_EQ(run_bindsd("--config /nonexistent/binds.yaml", out), 1);
  EXPECT_THAT(out, HasSubstr("/nonexistent/binds.yaml"));
}

// ---- secrets ----

TEST(Secrets, PasswordsNeverReachLogsErrorsOrListings) {
  // Nothing listens on port 1: every connect fails, and every failure must stay password-free.
  setenv("BINDS_TEST_SECRET", "hunter2-s3cret", 1);
  auto tmp = make_temp_dir("secret");
  Daemon d("default: lite\nbinds:\n"
           "  pgdown:\n    url: postgresql://app:${BINDS_TEST_SECRET}@127.0.0.1:1/app\n"
           "    pool: { acquire_timeout: 1s }\n"
           "  mydown:\n    url: mysql://app:hunter2-s3cret@127.0.0.1:1/app\n    pool: { acquire_timeout: 1s }\n" +
           lite_bind(tmp));
  auto c = d.connect();
  for (const char* bind : {"pgdown", "mydown"}) {
    try {
      c.query("SELECT 1", {}, std::string(bind));
      ADD_FAILURE() << "connect to port 1 succeeded?";
    } catch (const ServerError& e) {
      EXPECT_EQ(e.info.code, ErrorCode::backend_unavailable);
      EXPECT_THAT(e.info.message, Not(HasSubstr("hunter2")));
    }
  }
  for (const auto& b : c.list_binds()) {
    EXPECT_THAT(b.database, Not(HasSubstr("hunter2")));
    EXPECT_THAT(b.key, Not(HasSubstr("hunter2")));
  }
  d.stop();
  auto log = d.log();
  EXPECT_THAT(log, HasSubstr("***"));  // the redacted URL is logged at start
  EXPECT_THAT(log, Not(HasSubstr("hunter2")));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

// ---- big results ----

struct StreamCase {
  const char* name;
  const char* url_var;
  const char* sql;
};

class Streaming : public ::testing::TestWithParam<StreamCase> {};

// A million rows go through; the daemon's peak RSS grows by a bounded amount (the client buffer
// plus driver buffers), not with the result size. The figures are printed for the record.
TEST_P(Streaming, MillionRowsWithBoundedDaemonMemory) {
  auto tmp = make_temp_dir("stream");
  BINDS_CASE_URL(GetParam().url_var, tmp, url);
  Daemon d("binds:\n  db: " + url + "\n");
  auto c = d.connect();
  c.query("SELECT 1");
  long before = d.peak_rss_kib();
  std::int64_t rows = 0, sum = 0;
  auto done = c.query_stream(
      GetParam().sql, {}, std::nullopt, [](const std::vector<protocol::Column>& cols) { EXPECT_EQ(cols.size(), 2u); },
      [&](protocol::Row& r) {
        ++rows;
        sum += std::get<std::int64_t>(r.at(0));
      });
  long after = d.peak_rss_kib();
  EXPECT_EQ(rows, 1000000);
  EXPECT_EQ(done.row_count, 1000000);
  EXPECT_EQ(sum, 500000500000LL);
  std::printf("[ figures  ] %s: 1,000,000 rows; bindsd peak RSS %ld KiB before, %ld KiB after (+%ld KiB)\n",
              GetParam().name, before, after, after - before);
  if (!kSanitized) {
    EXPECT_LT(after - before, 64 * 1024) << "daemon memory grew with the result size";
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

INSTANTIATE_TEST_SUITE_P(
    AllBackends, Streaming,
    ::testing::Values(
        StreamCase{"postgresql", "BINDS_TEST_PG_URL",
                   "SELECT g::bigint, md5(g::text) FROM generate_series(1, 1000000) g"},
        StreamCase{"mysql", "BINDS_TEST_MYSQL_URL", "SELECT seq, MD5(seq) FROM seq_1_to_1000000"},
        StreamCase{"sqlite", "",
                   "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 1000000) "
                   "SELECT x, hex(randomblob(16)) FROM g"}),
    [](const auto& info) { return std::string(info.param.name); });

// A client that stops reading a big result stalls only its own query: memory stays bounded and
// other clients keep their latency.
TEST(Backpressure, StalledReaderStallsOnlyItself) {
  BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
  auto tmp = make_temp_dir("stall");
  Daemon d("default: pg\nbinds:\n  pg: " + pg + "\n" + lite_bind(tmp));
  long before = d.peak_rss_kib();
  RawClient slow(d);
  slow.hello();
  slow.send(protocol::encode_query(
      1, protocol::QueryRequest{std::nullopt, "SELECT g, repeat('x', 200) FROM generate_series(1, 2000000) g", {}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // never read
  auto c = d.connect();
  for (int i = 0; i < 20; ++i) {
    auto t0 = Clock::now();
    EXPECT_EQ(client::value_text(c.query("SELECT 1").rows.at(0).at(0)), "1");
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(500));
  }
  long after = d.peak_rss_kib();
  std::printf("[ figures  ] stalled reader: bindsd peak RSS %ld KiB before, %ld KiB after (+%ld KiB)\n", before,
              after, after - before);
  if (!kSanitized) {
    EXPECT_LT(after - before, 32 * 1024);
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace
}  // namespace binds::test
