// Table rendering of the CLI and the shell: alignment by display width, multi-line cells, NULL.
// No network: results are built by hand.

#include <gtest/gtest.h>

#include <sstream>

#include "client/format.hpp"
#include "client/width.hpp"

namespace binds::client {
namespace {

TEST(DisplayWidth, CountsColumnsNotBytesOrCodePoints) {
  EXPECT_EQ(display_width(""), 0u);
  EXPECT_EQ(display_width("abc"), 3u);
  EXPECT_EQ(display_width("caf\xC3\xA9"), 4u);                 // é precomposed: 1 column
  EXPECT_EQ(display_width("cafe\xCC\x81"), 4u);                // e + U+0301 combining acute: 1 column
  EXPECT_EQ(display_width("\xE6\x97\xA5\xE6\x9C\xAC"), 4u);    // 日本: 2 each
  EXPECT_EQ(display_width("\xED\x95\x9C"), 2u);                // 한 (Hangul syllable)
  EXPECT_EQ(display_width("\xEF\xBC\xA1"), 2u);                // Ａ fullwidth
  EXPECT_EQ(display_width("\xF0\x9F\x98\x80"), 2u);            // 😀 U+1F600
  EXPECT_EQ(display_width("\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"), 4u);  // 👍🏽: thumb + skin tone, 2 each
  EXPECT_EQ(display_width("a\xE2\x80\x8B" "b"), 2u);           // zero-width space
  EXPECT_EQ(display_width("\xE2\x9D\xA4\xEF\xB8\x8F"), 1u);    // ❤ + VS16: the selector adds nothing
  EXPECT_EQ(display_width("\xD7\xA9\xD7\x81"), 1u);            // Hebrew shin + shin dot
}

TEST(DisplayWidth, InvalidUtf8CountsOneColumnPerByte) {
  EXPECT_EQ(display_width("\xFF\xFE"), 2u);
  EXPECT_EQ(display_width("\xE6\x97"), 2u);       // truncated 3-byte sequence
  EXPECT_EQ(display_width("a\x80z"), 3u);         // stray continuation byte
  EXPECT_EQ(display_width("\xF0\x9F\x98"), 3u);   // emoji cut short at the end
}

std::string table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows,
                  bool expanded = false) {
  std::ostringstream os;
  print_table(os, headers, rows, expanded);
  return os.str();
}

TEST(PrintTable, AlignsWideAndCombiningCharactersByDisplayWidth) {
  EXPECT_EQ(table({"name", "n"}, {{"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "1"},  // 日本語: 6 columns
                                  {"cafe\xCC\x81", "2"},                         // café with a combining mark
                                  {"\xF0\x9F\x98\x80!", "3"}}),                  // 😀! : 3 columns
            " name   | n\n"
            "--------+---\n"
            " \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E | 1\n"
            " cafe\xCC\x81   | 2\n"
            " \xF0\x9F\x98\x80!    | 3\n");
}

TEST(PrintTable, MultiLineCellsContinueInsideTheirColumnWithAPlusMark) {
  EXPECT_EQ(table({"a", "b", "c"}, {{"one\ntwo", "x", "p\nq\nr"}, {"z", "", "s"}}),
            " a   | b | c\n"
            "-----+---+---\n"
            " one+| x | p+\n"
            " two |   | q+\n"
            "     |   | r\n"
            " z   |   | s\n");
}

TEST(PrintTable, ExpandedLayoutIsOneRecordBlockPerRow) {
  EXPECT_EQ(table({"id", "name"}, {{"1", "ada"}, {"2", "line1\nline2"}}, true),
            "-[ RECORD 1 ]\n"
            "id   | 1\n"
            "name | ada\n"
            "-[ RECORD 2 ]\n"
            "id   | 2\n"
            "name | line1+\n"
            "     | line2\n");
  // A long column name: the rule marks the column boundary with '+'.
  EXPECT_EQ(table({"a_rather_long_name"}, {{"v"}}, true),
            "-[ RECORD 1 ]------+--\n"
            "a_rather_long_name | v\n");
  EXPECT_EQ(table({"a"}, {}, true), "(0 rows)\n");
}

Result result_with_nulls() {
  Result r;
  r.has_rows = true;
  r.columns = {protocol::Column{"v", protocol::Type::text, ""}, protocol::Column{"n", protocol::Type::int64, ""}};
  r.rows = {{Value(std::string("NULL")), Value(std::int64_t{1})}, {Value(protocol::Null{}), Value(protocol::Null{})}};
  return r;
}

TEST(PrintResult, NullIsEmptyByDefaultSoTheTextNullStaysDistinct) {
  std::ostringstream os;
  print_result(os, result_with_nulls(), Format::table);
  EXPECT_EQ(os.str(),
            " v    | n\n"
            "------+---\n"
            " NULL | 1\n"
            "      | \n"
            "(2 rows)\n");
}

TEST(PrintResult, NullShowsThePsetNullText) {
  std::ostringstream os;
  print_result(os, result_with_nulls(), Format::table, TableStyle{"(null)", false});
  EXPECT_EQ(os.str(),
            " v      | n\n"
            "--------+--------\n"
            " NULL   | 1\n"
            " (null) | (null)\n"
            "(2 rows)\n");
  std::ostringstream x;
  print_result(x, result_with_nulls(), Format::table, TableStyle{"\xE2\x88\x85", true});  // ∅
  EXPECT_EQ(x.str(),
            "-[ RECORD 1 ]\n"
            "v | NULL\n"
            "n | 1\n"
            "-[ RECORD 2 ]\n"
            "v | \xE2\x88\x85\n"
            "n | \xE2\x88\x85\n");
}

}  // namespace
}  // namespace binds::client
