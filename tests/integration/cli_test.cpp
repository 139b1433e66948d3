// The `binds` CLI as a user runs it: output formats, exit codes, errors on stderr.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "harness.hpp"

namespace binds::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CliRun cli(const std::string& args, const std::string& env_prefix = "") { return run_cli(args, "", env_prefix); }

// Runs the CLI and expects exit status 0 with exactly `out` on stdout.
void expect_output(const std::string& args, const std::string& out, const std::string& env_prefix = "") {
  auto r = cli(args, env_prefix);
  EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
  EXPECT_EQ(r.out, out) << args;
}

// A broken ./binds.yaml used to send the CLI to the packaged socket without a word.
TEST(CliAddress, ABrokenBindsYamlIsReportedNotSilentlySkipped) {
  auto dir = make_temp_dir("cliyaml");
  std::ofstream(dir / "binds.yaml") << "listen: [unclosed\n";
  auto r = cli("ping", "cd " + dir.string() + " && BINDS_ADDR= ");
  EXPECT_THAT(r.err, HasSubstr("./binds.yaml cannot be read"));
  EXPECT_THAT(r.err, HasSubstr("--socket"));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = make_temp_dir("clidb");
    daemon_ = std::make_unique<Daemon>("default: main\nbinds:\n  main: sqlite:///" + (tmp_ / "m.db").string() +
                                       "\n  other: \"sqlite://\"\n");
    sock_ = "--socket " + daemon_->socket_path() + " ";
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

// NULL prints as nothing (psql's default), so it differs from the text 'NULL'.
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
            " 2  |      | \n"
            "(2 rows)\n");
}

// The one-shot table aligns by display width too, whatever the locale (the CLI runs with LANG unset
// here): 日本 takes 4 columns, é written with a combining accent 1; a newline continues in the cell.
TEST_F(Cli, QueryTableAlignsWideTextAndMultiLineValues) {
  auto r = cli(sock_ + "query \"SELECT ? AS a, ? AS b UNION ALL SELECT ?, ?\" \"\xE6\x97\xA5\xE6\x9C\xAC\" x "
                       "\"cafe\xCC\x81\" \"one\ntwo\"",
               "LANG= LC_ALL= ");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            " a    | b\n"
            "------+-----\n"
            " \xE6\x97\xA5\xE6\x9C\xAC | x\n"
            " cafe\xCC\x81 | one+\n"
            "      | two\n"
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
  for (const char* args : {"frobnicate", "query", "query --format xml \"SELECT 1\"", "--host", "query --bind",
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

// An untyped parameter is an int64 only when it is one written canonically (it reads back as the
// same text); anything else goes as text, unchanged. SQLite's typeof() shows what was sent.
TEST_F(Cli, UntypedParameterIsAnIntOnlyInCanonicalForm) {
  for (const char* p : {"12", "0", "-5", "9223372036854775807", "-9223372036854775808"})
    expect_output(sock_ + "query --format csv \"SELECT typeof(?) AS t\" " + p, "t\ninteger\n");
  for (const char* p : {"007", "+7", "-0", "-07", "1e3", "9223372036854775808", "-9223372036854775809",
                        "\" 7\"", "\"7 \"", "0x10"}) {
    auto r = cli(sock_ + "query --format json \"SELECT typeof(?) AS t, ? AS v\" " + p + " " + p);
    EXPECT_EQ(r.rc, 0) << p << ": " << r.err;
    std::string text = p[0] == '"' ? std::string(p + 1, std::strlen(p) - 2) : p;
    EXPECT_THAT(r.out, HasSubstr("\"rows\":[[\"text\",\"" + text + "\"]]")) << p;
  }
  // A typed prefix is the user's choice: int:007 is the int 7, text:12 the text 12.
  expect_output(sock_ + "query --format csv \"SELECT typeof(?) AS t, ? AS v\" int:007 int:007", "t,v\ninteger,7\n");
  expect_output(sock_ + "query --format csv \"SELECT typeof(?) AS t, ? AS v\" text:12 text:12", "t,v\ntext,12\n");
  auto help = cli("--help");
  EXPECT_EQ(help.rc, 0);
  EXPECT_THAT(help.out, HasSubstr("canonical decimal form"));
}

TEST_F(Cli, OptionsAreHonouredAfterTheSql) {
  // --bind after the SQL picks the bind: "other" is an empty in-memory database without users.
  auto other = cli(sock_ + "query \"SELECT count(*) AS n FROM users\" --bind other");
  EXPECT_EQ(other.rc, 1);
  EXPECT_THAT(other.err, HasSubstr("(bind other)"));
  expect_output(sock_ + "query \"SELECT count(*) AS n FROM users\" --bind main --format csv", "n\n0\n");
  auto json = cli(sock_ + "query \"SELECT ? AS v\" 5 --format json");
  EXPECT_EQ(json.rc, 0) << json.err;
  EXPECT_THAT(json.out, ::testing::StartsWith("{\"columns\":[{\"name\":\"v\",\"type\":\"int64\"}],\"rows\":[[5]],"));
  // Short options too, between parameters; -5 is a parameter, not an option.
  expect_output(sock_ + "query \"SELECT ? AS a, ? AS b\" -5 -f csv -b main -6", "a,b\n-5,-6\n");
  // Global options after the command: the address comes from --socket at the end, not $BINDS_ADDR.
  expect_output("query \"SELECT 1 AS one\" -f csv " + sock_, "one\n1\n",
                "BINDS_ADDR=unix:" + (tmp_ / "no.sock").string());
}

TEST_F(Cli, DoubleDashMakesEverythingAfterItAParameter) {
  expect_output(sock_ + "query --format csv \"SELECT ? AS a, ? AS b, ? AS c\" -- --bind -- --format",
                "a,b,c\n--bind,--,--format\n");
  // The SQL itself may come after "--" (a statement that starts with a comment).
  expect_output(sock_ + "query --format csv -- \"--note\nSELECT 1 AS one\"", "one\n1\n");
}

TEST_F(Cli, UnknownOptionAnywhereIsAUsageError) {
  for (const char* args : {"query \"SELECT ?\" --frobnicate", "query \"SELECT ?\" 1 --frobnicate",
                           "query --frobnicate \"SELECT ?\" 1", "--frobnicate query \"SELECT ?\" 1"}) {
    auto r = cli(sock_ + args);
    EXPECT_EQ(r.rc, 2) << args;
    EXPECT_EQ(r.out, "") << args;
    EXPECT_THAT(r.err, HasSubstr("unknown option --frobnicate")) << args;
    EXPECT_THAT(r.err, HasSubstr("usage:")) << args;
  }
  auto missing = cli(sock_ + "query \"SELECT 1\" --bind");
  EXPECT_EQ(missing.rc, 2);
  EXPECT_THAT(missing.err, HasSubstr("--bind needs a value"));
}

// The same rules against a real PostgreSQL bind ($1 placeholders, server-side casts).
class CliPg : public ::testing::Test {
 protected:
  void SetUp() override {
    BINDS_REQUIRE_URL("BINDS_TEST_PG_URL", pg);
    daemon_ = std::make_unique<Daemon>("default: pg\nbinds:\n  pg: \"" + pg + "\"\n  lite: \"sqlite://\"\n");
    sock_ = "--socket " + daemon_->socket_path() + " ";
  }
  std::unique_ptr<Daemon> daemon_;
  std::string sock_;
};

TEST_F(CliPg, TextParameterKeepsItsDigits) {
  for (const char* p : {"007", "+7", "1e3", "-0", "9223372036854775808"})
    expect_output(sock_ + "query --format csv 'SELECT $1::text AS v' " + p, std::string("v\n") + p + "\n");
  // 12 is still an int: server-side arithmetic, and an int64 in the JSON (not "12").
  auto twelve = cli(sock_ + "query --format json 'SELECT $1::int + 1 AS n, $2 AS raw' 12 12");
  EXPECT_EQ(twelve.rc, 0) << twelve.err;
  EXPECT_THAT(twelve.out, HasSubstr("\"rows\":[[13,12]]"));
  expect_output(sock_ + "query --format csv 'SELECT $1::int + 1 AS n' -5", "n\n-4\n");
  expect_output(sock_ + "query --format csv 'SELECT $1::text AS v' int:007", "v\n7\n");
}

TEST_F(CliPg, OptionsAfterTheSqlAndDoubleDash) {
  // sqlite_version() exists only on the SQLite bind: --bind after the SQL must have picked it.
  expect_output(sock_ + "query 'SELECT length(sqlite_version()) > 0 AS ok' --bind lite --format csv", "ok\n1\n");
  auto json = cli(sock_ + "query 'SELECT $1::text AS v' x --format json");
  EXPECT_EQ(json.rc, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"rows\":[[\"x\"]]"));
  expect_output(sock_ + "query -f csv 'SELECT $1::text AS v' -- --bind", "v\n--bind\n");
  auto unknown = cli(sock_ + "query 'SELECT $1::text' --bnid lite");
  EXPECT_EQ(unknown.rc, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown option --bnid"));
}

}  // namespace
}  // namespace binds::test
