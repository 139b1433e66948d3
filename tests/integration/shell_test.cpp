// The shell's script mode as a user runs it: `binds -f FILE` and SQL piped to stdin, against a
// real bindsd and real databases. Exit statuses, where errors are reported, meta-commands.
// (tests/client/shell_tty.py drives the interactive shell in a terminal.)

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "harness.hpp"

namespace binds::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CliRun shell(const std::string& args, const std::string& input, const std::string& env_prefix = "") {
  return run_cli(args, input, env_prefix);
}

class Shell : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = make_temp_dir("shelldb");
    daemon_ = std::make_unique<Daemon>("default: main\nbinds:\n  main: sqlite:///" + (tmp_ / "m.db").string() +
                                       "\n  other: \"sqlite:///" + (tmp_ / "o.db").string() + "\"\n");
    sock_ = "--socket " + daemon_->socket_path() + " ";
  }
  void TearDown() override {
    daemon_.reset();
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  std::string count(const std::string& table, const std::string& bind = "main") {
    auto c = daemon_->connect();
    return scalar(c, "SELECT count(*) FROM " + table, bind);
  }
  fs::path tmp_;
  std::unique_ptr<Daemon> daemon_;
  std::string sock_;
};

TEST_F(Shell, StdinScriptRunsStatementsSplitAtSemicolons) {
  auto r = shell(sock_, R"(CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
-- a comment; with a semicolon
INSERT INTO t (v) VALUES ('a;b'), ('it''s; fine'),
  (NULL);  /* trailing ; comment */
SELECT id, v
  FROM t
  ORDER BY id;
SELECT 'no semicolon at the end' AS last)");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "0 rows affected\n"
            "3 rows affected, last insert id 3\n"
            " id | v\n"
            "----+------------\n"
            " 1  | a;b\n"
            " 2  | it's; fine\n"
            " 3  | \n"
            "(3 rows)\n"
            " last\n"
            "-------------------------\n"
            " no semicolon at the end\n"
            "(1 row)\n");
}

TEST_F(Shell, ScriptStopsAtTheFirstErrorNamingItsLine) {
  auto path = tmp_ / "setup.sql";
  std::ofstream(path) << "CREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1);\n\nINSERT INTO\n  nope VALUES (2);\n"
                         "INSERT INTO t VALUES (3);\n";
  for (const std::string how : {"-f ", "--file "}) {
    auto r = shell(sock_ + how + path.string(), "");
    EXPECT_EQ(r.rc, 3) << how;
    EXPECT_THAT(r.err, HasSubstr(path.string() + ":4: SQL_ERROR"));
    EXPECT_THAT(r.err, HasSubstr("no such table: nope"));
    EXPECT_THAT(r.err, HasSubstr("stopped at line 4 of " + path.string()));
    EXPECT_EQ(count("t"), "1") << "the statement after the failure must not run";
    auto c = daemon_->connect();
    c.query("DROP TABLE t");
  }
  // The same script on stdin is named <stdin>.
  auto r = shell(sock_, read_file(path));
  EXPECT_EQ(r.rc, 3);
  EXPECT_THAT(r.err, HasSubstr("<stdin>:4: SQL_ERROR"));
}

TEST_F(Shell, ContinueOnErrorRunsTheRestAndExitsOne) {
  auto r = shell(sock_ + "--continue-on-error",
                 "CREATE TABLE t (x INTEGER);\nSELEC 1;\nINSERT INTO t VALUES (1);\nINSERT INTO nope VALUES (1);\n"
                 "INSERT INTO t VALUES (2);\n");
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("<stdin>:2: SQL_ERROR"));
  EXPECT_THAT(r.err, HasSubstr("<stdin>:4: SQL_ERROR"));
  EXPECT_THAT(r.err, Not(HasSubstr("stopped")));
  EXPECT_EQ(count("t"), "2");
}

TEST_F(Shell, MetaCommandsWorkInScripts) {
  auto r = shell(sock_, R"(CREATE TABLE t (id INTEGER, v TEXT);
INSERT INTO t VALUES (1, NULL), (2, 'NULL');
\pset null '(nil)'
SELECT * FROM t ORDER BY id;
\x on
SELECT * FROM t ORDER BY id;
\x
\timing on
SELECT 1 AS one;
\timing off
\c other
CREATE TABLE elsewhere (y INTEGER);
\dt
\c main
\d t
\l
\q
SELECT 'never runs';
)");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Null display is \"(nil)\".\n"
                               " id | v\n"
                               "----+-------\n"
                               " 1  | (nil)\n"
                               " 2  | NULL\n"));
  EXPECT_THAT(r.out, HasSubstr("Expanded display is on.\n"
                               "-[ RECORD 1 ]\n"
                               "id | 1\n"
                               "v  | (nil)\n"
                               "-[ RECORD 2 ]\n"
                               "id | 2\n"
                               "v  | NULL\n"
                               "Expanded display is off.\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\\(1 row\\)\nTime: [0-9]+\\.[0-9]{3} ms\nTiming is off\\."));
  EXPECT_THAT(r.out, HasSubstr("You are now on bind \"other\""));
  EXPECT_THAT(r.out, HasSubstr(" elsewhere | table\n"));
  EXPECT_THAT(r.out, HasSubstr("Table \"t\"\n column | type    | nullable | default\n"));
  EXPECT_THAT(r.out, HasSubstr(" key   | backend | database"));
  EXPECT_THAT(r.out, Not(HasSubstr("never runs")));
  EXPECT_EQ(count("elsewhere", "other"), "0");
}

TEST_F(Shell, DescribeOnSqlite) {
  auto r = shell(sock_, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x');\n"
                        "CREATE VIEW v AS SELECT 1;\n\\dt\n\\d users\n");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(" name  | type\n"
                               "-------+-------\n"
                               " users | table\n"
                               " v     | view\n"));
  EXPECT_THAT(r.out, HasSubstr("Table \"users\"\n"
                               " column | type    | nullable | default\n"
                               "--------+---------+----------+---------\n"
                               " id     | INTEGER | YES      | \n"
                               " name   | TEXT    | NO       | 'x'\n"));
}

// Every garbage input gets a clear error and a non-zero exit, never a crash.
TEST_F(Shell, GarbageGetsClearErrors) {
  struct Case {
    std::string input, message;
  };
  for (const Case& c : std::vector<Case>{
           {"\\frobnicate\n", "<stdin>:1: invalid command \\frobnicate; try \\? for help"},
           {"SELECT 1;\n\\c\n", "<stdin>:2: \\c needs one bind key (binds: main other)"},
           {"\\c nope\n", "<stdin>:1: unknown bind \"nope\" (binds: main other); still on \"main\""},
           {"\\d missing_table\n", "<stdin>:1: did not find a table named \"missing_table\" on bind \"main\""},
           {"SELECT 1;\nSELECT 'abc;\nSELECT 2;\n",
            "<stdin>:3: unterminated quoted string (opened on line 2) at end of input"},
           {"SELECT 1 /* never closed;\n", "unterminated /* comment (opened on line 1)"},
           {"\\x maybe\n", "\\x takes on or off"},
           {"\\pset border 2\n", "\\pset supports only: \\pset null TEXT"},
           {"\\pset null 'open\n", "unterminated quoted string in meta-command"},
           {"\\\n", "empty meta-command"},
           {"\\dt extra\n", "too many arguments to \\dt"},
       }) {
    auto r = shell(sock_, c.input);
    EXPECT_EQ(r.rc, 3) << c.input;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.input;
  }
  // Binary junk: whatever the server makes of it, an error with a line, exit 3, no crash.
  std::string junk;
  for (int i = 0; i < 3000; ++i) junk.push_back(static_cast<char>((i * 7919 + 13) % 256));
  junk += ";\n";
  auto r = shell(sock_, junk);
  EXPECT_EQ(r.rc, 3);
  EXPECT_THAT(r.err, ::testing::ContainsRegex("binds: <stdin>:[0-9]+: "));
  // A daemon that is not there: a connection error, exit 3 like any failure to start.
  auto down = shell("--socket " + (tmp_ / "none.sock").string(), "SELECT 1;\n");
  EXPECT_EQ(down.rc, 3);
  EXPECT_THAT(down.err, HasSubstr("cannot connect"));
  auto bad_bind = shell(sock_ + "--bind nope", "SELECT 1;\n");
  EXPECT_EQ(bad_bind.rc, 3);
  EXPECT_THAT(bad_bind.err, HasSubstr("unknown bind \"nope\""));
  auto missing = shell(sock_ + "-f " + (tmp_ / "missing.sql").string(), "");
  EXPECT_EQ(missing.rc, 1);
  EXPECT_THAT(missing.err, HasSubstr("cannot read"));
}

TEST_F(Shell, OptionsAndVersion) {
  auto v = shell("--version", "");
  EXPECT_EQ(v.rc, 0);
  EXPECT_THAT(v.out, ::testing::MatchesRegex("binds [0-9]+\\.[0-9]+\\.[0-9]+\n"));
  for (const char* args : {"shell extra", "--format csv", "-f a.sql --file b.sql", "--file x.sql query 'SELECT 1'",
                           "--continue-on-error list", "query -f xml 'SELECT 1'"}) {
    auto r = shell(sock_ + args, "");
    EXPECT_EQ(r.rc, 2) << args;
    EXPECT_THAT(r.err, HasSubstr("usage:")) << args;
  }
  // "binds shell" is the same as no command; --bind picks the starting bind.
  auto r = shell(sock_ + "shell --bind other", "CREATE TABLE o (x INTEGER);\nINSERT INTO o VALUES (1);\n");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(count("o", "other"), "1");
}

// \dt and \d against the server backends, with their own catalogs.
class ShellCatalog : public ::testing::TestWithParam<const char*> {};

TEST_P(ShellCatalog, ListsTablesAndDescribesColumns) {
  auto dir = make_temp_dir("shellcat");
  BINDS_CASE_URL(GetParam(), dir, url);
  Daemon daemon("default: db\nbinds:\n  db: \"" + url + "\"\n");
  const std::string sock = "--socket " + daemon.socket_path() + " ";
  const std::string table = "shell_cat_" + std::to_string(getpid());
  auto r = shell(sock, "DROP TABLE IF EXISTS " + table + ";\nCREATE TABLE " + table +
                           " (id INTEGER NOT NULL, label VARCHAR(20) DEFAULT 'x', note TEXT);\n\\dt\n\\d " + table +
                           "\n\\d " + table + "_missing\n");
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex(" " + table + " +\\| (base table|table)"));
  EXPECT_THAT(r.out, HasSubstr("Table \"" + table + "\"\n"));
  // Each backend's own spelling of the types and defaults.
  EXPECT_THAT(r.out, ::testing::ContainsRegex(" id +\\| (integer|INTEGER|int\\(11\\)) +\\| NO "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(
                         " label +\\| (character varying|varchar\\(20\\)|VARCHAR\\(20\\)) +\\| YES +\\| 'x'"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(" note +\\| (text|TEXT) +\\| YES "));
  EXPECT_THAT(r.err, HasSubstr(":5: did not find a table named \"" + table + "_missing\""));
  auto cleanup = shell(sock, "DROP TABLE " + table + ";\n");
  EXPECT_EQ(cleanup.rc, 0) << cleanup.err;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// BEGIN and ROLLBACK are statements like any other: the transaction is the server's, across
// the script's statements, on every backend.
TEST_P(ShellCatalog, TransactionsAreStatements) {
  auto dir = make_temp_dir("shelltx");
  BINDS_CASE_URL(GetParam(), dir, url);
  Daemon daemon("default: db\nbinds:\n  db: \"" + url + "\"\n");
  const std::string table = "shell_tx_" + std::to_string(getpid());
  auto r = run_cli("--socket " + daemon.socket_path(),
                   "DROP TABLE IF EXISTS " + table + ";\nCREATE TABLE " + table + " (x INTEGER);\nBEGIN;\nINSERT INTO " +
                       table + " VALUES (1);\nSELECT count(*) AS inside FROM " + table + ";\nROLLBACK;\n"
                       "SELECT count(*) AS after_rollback FROM " + table + ";\nDROP TABLE " + table + ";\n");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(" inside\n--------\n 1\n"));
  EXPECT_THAT(r.out, HasSubstr(" after_rollback\n----------------\n 0\n"));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

INSTANTIATE_TEST_SUITE_P(Backends, ShellCatalog, ::testing::Values("BINDS_TEST_PG_URL", "BINDS_TEST_MYSQL_URL", ""),
                         [](const auto& info) {
                           std::string v = info.param;
                           return v.empty() ? std::string("sqlite") : v.find("PG") != std::string::npos ? "pg" : "mysql";
                         });

}  // namespace
}  // namespace binds::test
