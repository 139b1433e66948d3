#include "binds/session_state.hpp"

#include <gtest/gtest.h>

using binds::Backend;
using binds::may_change_session_state;

TEST(SessionState, OrdinaryStatementsLeaveNothing) {
  for (auto b : {Backend::postgresql, Backend::mysql, Backend::sqlite}) {
    EXPECT_FALSE(may_change_session_state(b, "SELECT 1"));
    EXPECT_FALSE(may_change_session_state(b, "  select * from users where id = ?"));
    EXPECT_FALSE(may_change_session_state(b, "UPDATE users SET name = 'x' WHERE id = 1"));
    EXPECT_FALSE(may_change_session_state(b, "INSERT INTO t (a) VALUES (1)"));
    EXPECT_FALSE(may_change_session_state(b, "DELETE FROM t OFFSET"));
  }
  EXPECT_FALSE(may_change_session_state(Backend::mysql, "SELECT @@in_transaction"));
  EXPECT_FALSE(may_change_session_state(Backend::postgresql, "SELECT @ -5"));  // abs operator
}

TEST(SessionState, StateChangingStatementsAreCaught) {
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "SET search_path TO x"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "  /* c */ -- x\n set application_name = 'a'"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "CREATE TEMP TABLE t (a int)"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "create temporary table t (a int)"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "PREPARE p AS SELECT 1"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "SELECT set_config('a.b', '1', false)"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "SELECT pg_advisory_lock(1)"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "LISTEN ch"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "DECLARE c CURSOR WITH HOLD FOR SELECT 1"));
  EXPECT_TRUE(may_change_session_state(Backend::mysql, "SET @v = 1"));
  EXPECT_TRUE(may_change_session_state(Backend::mysql, "SELECT @v := id FROM t"));
  EXPECT_TRUE(may_change_session_state(Backend::mysql, "SELECT id INTO @v FROM t"));
  EXPECT_TRUE(may_change_session_state(Backend::mysql, "USE other"));
  EXPECT_TRUE(may_change_session_state(Backend::mysql, "SELECT GET_LOCK('x', 1)"));
  EXPECT_TRUE(may_change_session_state(Backend::mysql, "CALL proc()"));
  EXPECT_TRUE(may_change_session_state(Backend::sqlite, "ATTACH DATABASE 'x' AS y"));
  EXPECT_TRUE(may_change_session_state(Backend::sqlite, "PRAGMA foreign_keys = OFF"));
  EXPECT_TRUE(may_change_session_state(Backend::sqlite, "CREATE TEMP VIEW v AS SELECT 1"));
}
