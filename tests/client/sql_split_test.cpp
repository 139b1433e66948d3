// Statement splitting for the shell and scripts: a ';' ends a statement only outside the literals
// and comments of the bind's dialect. No network.

#include <gtest/gtest.h>

#include "client/sql_split.hpp"

namespace binds::client {
namespace {

std::vector<std::string> texts(const Split& s) {
  std::vector<std::string> out;
  for (const auto& st : s.statements) out.push_back(st.text);
  return out;
}
using V = std::vector<std::string>;

TEST(SqlSplit, SemicolonsEndStatementsAndEmptyOnesAreSkipped) {
  auto s = split_sql("SELECT 1; SELECT 2;\n;  ;SELECT 3", Dialect::postgresql);
  EXPECT_EQ(texts(s), (V{"SELECT 1", "SELECT 2"}));
  EXPECT_TRUE(s.rest_significant);
  EXPECT_EQ(s.pending.text, "SELECT 3");
  EXPECT_EQ(s.pending.line, 2u);
  EXPECT_EQ(s.open, Open::none);
}

TEST(SqlSplit, LinesCountFromFirstLineAndSkipLeadingComments) {
  auto s = split_sql("-- note; not a statement\n\nSELECT\n 1;\n/* x; */ SELECT 2;", Dialect::postgresql, 10);
  ASSERT_EQ(s.statements.size(), 2u);
  EXPECT_EQ(s.statements[0].text, "SELECT\n 1");
  EXPECT_EQ(s.statements[0].line, 12u);
  EXPECT_EQ(s.statements[1].text, "SELECT 2");
  EXPECT_EQ(s.statements[1].line, 14u);
  EXPECT_FALSE(s.rest_significant);
}

TEST(SqlSplit, PostgresqlLiteralsHideSemicolons) {
  EXPECT_EQ(texts(split_sql("SELECT 'a;b', \"c;d\", E'e\\';f', $$g;h$$, $t$i;$$;j$t$; SELECT 2;", Dialect::postgresql)),
            (V{"SELECT 'a;b', \"c;d\", E'e\\';f', $$g;h$$, $t$i;$$;j$t$", "SELECT 2"}));
  // Nested block comments; a standard string's backslash is a plain character.
  EXPECT_EQ(texts(split_sql("SELECT /* a /* b; */ c; */ 1; SELECT 'x\\'; SELECT 3;", Dialect::postgresql)),
            (V{"SELECT /* a /* b; */ c; */ 1", "SELECT 'x\\'", "SELECT 3"}));
  // $1 is a placeholder and a$b$ an identifier, not dollar quotes.
  EXPECT_EQ(texts(split_sql("SELECT $1; SELECT a$b$; SELECT 2;", Dialect::postgresql)),
            (V{"SELECT $1", "SELECT a$b$", "SELECT 2"}));
}

TEST(SqlSplit, MariadbLiteralsAndComments) {
  EXPECT_EQ(texts(split_sql("SELECT 'a\\';b', \"c;d\", `e;f`; # x; y\nSELECT 1--1;\nSELECT 2 -- z;\n;",
                            Dialect::mysql)),
            (V{"SELECT 'a\\';b', \"c;d\", `e;f`", "SELECT 1--1", "SELECT 2 -- z;"}));
}

TEST(SqlSplit, SqliteIdentifiers) {
  EXPECT_EQ(texts(split_sql("SELECT [a;b], `c;d`, \"e;f\", 'g;h'; SELECT 2;", Dialect::sqlite)),
            (V{"SELECT [a;b], `c;d`, \"e;f\", 'g;h'", "SELECT 2"}));
}

TEST(SqlSplit, UnterminatedLiteralsAreReportedWithTheirLine) {
  auto s = split_sql("SELECT 1;\nSELECT 'abc;\n", Dialect::postgresql);
  EXPECT_EQ(texts(s), (V{"SELECT 1"}));
  EXPECT_EQ(s.open, Open::string);
  EXPECT_EQ(s.open_line, 2u);
  EXPECT_EQ(split_sql("SELECT $f$ body;", Dialect::postgresql).open, Open::dollar_quote);
  EXPECT_EQ(split_sql("/* /* */ SELECT 1;", Dialect::postgresql).open, Open::comment);
  EXPECT_EQ(split_sql("/* /* */ SELECT 1;", Dialect::sqlite).open, Open::none);  // no nesting
  EXPECT_EQ(split_sql("SELECT \"x;", Dialect::sqlite).open, Open::identifier);
  EXPECT_EQ(split_sql("SELECT [x;", Dialect::sqlite).open, Open::identifier);
  EXPECT_EQ(split_sql("SELECT 'x\\';", Dialect::mysql).open, Open::string);
  EXPECT_STREQ(open_name(Open::string), "quoted string");
}

TEST(SqlSplit, CommentOnlyRemainderIsNotAStatement) {
  auto s = split_sql("SELECT 1; -- trailing\n/* block */", Dialect::postgresql);
  EXPECT_EQ(texts(s), (V{"SELECT 1"}));
  EXPECT_FALSE(s.rest_significant);
  EXPECT_EQ(s.open, Open::none);
}

TEST(SqlSplit, BinaryJunkNeverReadsOutOfBounds) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919 + 13) % 256));
  for (auto d : {Dialect::postgresql, Dialect::mysql, Dialect::sqlite}) {
    for (std::size_t cut = 0; cut < junk.size(); cut += 97) {
      auto s = split_sql(std::string_view(junk).substr(0, cut), d);
      EXPECT_LE(s.rest, cut);
      for (const auto& st : s.statements) EXPECT_LE(st.text.size(), cut);
    }
  }
  EXPECT_EQ(dialect_of("mysql"), Dialect::mysql);
  EXPECT_EQ(dialect_of("sqlite"), Dialect::sqlite);
  EXPECT_EQ(dialect_of("postgresql"), Dialect::postgresql);
}

}  // namespace
}  // namespace binds::client
