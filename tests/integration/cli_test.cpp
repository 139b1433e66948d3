// The `binds` CLI as a user runs it: output formats, exit codes, errors on stderr.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness.hpp"

namespace binds::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Run {
  int rc;
  std::string out, err;
};

Run cli(const std::string& args, const std::string& env_prefix = "") {
  auto dir = make_temp_dir("cli");
  std::string cmd = env_prefix + " " + BINDS_CLI_PATH + " " + args + " >" + (dir / "o").string() + " 2>" +
                    (dir / "e").string();
  int rc = std::system(cmd.c_str());
  Run r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(dir / "o"), read_file(dir / "e")};
  std::error_code ec;
  fs::remove_all(dir, ec);
  return r;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = make_temp_dir("clidb");
    daemon_ = std::make_unique<Daemon>("default: main\nbinds:\n  main: sqlite:///" + (tmp_ / "m.db").string() +
                                       "\n  other: \"sqlite://\"\n");
    sock_ = "--socket " + daemon_->address().substr(5) + " ";
    ASSERT_EQ(cli(sock_ + "query \"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL)\"").rc, 0);
  }
  void TearDown() override {
    daemon_.reset();
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  fs::path tmp_;
  std::unique_ptr<Daemon> daemon_;
  std::string sock_;
};

TEST_F(Cli, QueryPrintsAnAlignedTableWithNull) {
  auto ins = cli(sock_ + "query \"INSERT INTO users (name, score) VALUES (?, ?)\" ada float:2.5");
  EXPECT_EQ(ins.rc, 0) << ins.err;
  EXPECT_THAT(ins.out, HasSubstr("1 row affected, last insert id 1"));
  EXPECT_EQ(cli(sock_ + "query \"INSERT INTO users (name) VALUES (?)\" null:").rc, 0);
  auto r = cli(sock_ + "query --bind main \"SELECT id, name, score FROM users WHERE id >= ? ORDER BY id\" 1");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            " id | name | score\n"
            "----+------+-------\n"
            " 1  | ada  | 2.5\n"
            " 2  | NULL | NULL\n"
            "(2 rows)\n");
}

TEST_F(Cli, JsonAndCsvKeepNullApartFromEmpty) {
  cli(sock_ + "query \"INSERT INTO users (name) VALUES (?)\" text:");
  cli(sock_ + "query \"INSERT INTO users (name) VALUES (?)\" null:");
  auto j = cli(sock_ + "query --format json \"SELECT name FROM users ORDER BY id\"");
  EXPECT_EQ(j.rc, 0);
  EXPECT_THAT(j.out, HasSubstr("\"rows\":[[\"\"],[null]]"));
  auto c = cli(sock_ + "query --format csv \"SELECT name FROM users ORDER BY id\"");
  EXPECT_EQ(c.out, "name\n\"\"\n\n");
}

TEST_F(Cli, ErrorsGoToStderrWithNonZeroExit) {
  auto r = cli(sock_ + "query \"SELEC nope\"");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("SQL_ERROR"));
  EXPECT_THAT(r.err, HasSubstr("bind main"));
  auto u = cli(sock_ + "query --bind nope \"SELECT 1\"");
  EXPECT_EQ(u.rc, 1);
  EXPECT_THAT(u.err, HasSubstr("UNKNOWN_BIND"));
}

TEST_F(Cli, BadArgumentsAreUsageErrors) {
  for (const char* args : {"", "frobnicate", "query", "query --format xml \"SELECT 1\"", "--host", "query --bind",
                           "query \"SELECT ?\" int:abc", "query \"SELECT ?\" bytes:abc", "ping extra"}) {
    auto r = cli(sock_ + args);
    EXPECT_EQ(r.rc, 2) << args;
    EXPECT_THAT(r.err, HasSubstr("usage:")) << args;
  }
}

TEST_F(Cli, ListPingAndAddressFromEnvironment) {
  auto l = cli(sock_ + "list");
  EXPECT_EQ(l.rc, 0);
  EXPECT_THAT(l.out, HasSubstr(" main "));
  EXPECT_THAT(l.out, HasSubstr(":memory:"));
  auto p = cli("ping", "BINDS_ADDR=" + daemon_->address());
  EXPECT_EQ(p.rc, 0) << p.err;
  EXPECT_THAT(p.out, HasSubstr("ok"));
  auto down = cli("ping", "BINDS_ADDR=unix:" + (tmp_ / "nothing.sock").string());
  EXPECT_EQ(down.rc, 1);
  EXPECT_THAT(down.err, HasSubstr("cannot connect"));
}

}  // namespace
}  // namespace binds::test
