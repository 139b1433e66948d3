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
  // A code block can do whatever a function can; reset: seen relies on seeing it.
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "DO $$ BEGIN PERFORM f(); END $$"));
  EXPECT_TRUE(may_change_session_state(Backend::postgresql, "  do language plpgsql 'BEGIN NULL; END'"));
  EXPECT_FALSE(may_change_session_state(Backend::postgresql, "SELECT done FROM t"));
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

TEST(SessionState, PlainRollbackIsRecognised) {
  using binds::is_transaction_rollback;
  for (const char* sql : {"ROLLBACK", "rollback;", "  ROLLBACK WORK ; ", "/* x */ Rollback Transaction",
                          "ABORT", "-- c\nabort work"})
    EXPECT_TRUE(is_transaction_rollback(sql)) << sql;
  for (const char* sql : {"ROLLBACK TO SAVEPOINT a", "ROLLBACK WORK TO a", "ROLLBACK PREPARED 'x'",
                          "ROLLBACK AND CHAIN", "ROLLBACK; INSERT INTO t VALUES (1)", "COMMIT",
                          "SELECT 1", "", "-- ROLLBACK", "/* unterminated", "ROLLBACKS"})
    EXPECT_FALSE(is_transaction_rollback(sql)) << sql;
}

TEST(SessionState, PlainCommitIsRecognised) {
  using binds::is_transaction_commit;
  for (const char* sql : {"COMMIT", "commit work;", "END", "End Transaction"}) EXPECT_TRUE(is_transaction_commit(sql)) << sql;
  for (const char* sql : {"COMMIT AND CHAIN", "COMMIT PREPARED 'x'", "ROLLBACK", "COMMITTED", "END IF"})
    EXPECT_FALSE(is_transaction_commit(sql)) << sql;
}

namespace binds {
namespace {

TEST(MayEndTransaction, TransactionEndingAndUnreadableStatementsCount) {
  for (const char* sql : {"COMMIT", "  end", "rollback to savepoint a", "ABORT", "PREPARE TRANSACTION 'x'",
                          "call p()", "DO $$ BEGIN COMMIT; END $$", "/* c */ COMMIT", "", "  ;"}) {
    EXPECT_TRUE(may_end_transaction(sql)) << sql;
  }
  for (const char* sql : {"SELECT 1", "insert into t values (1)", "-- note\nUPDATE t SET a = 1", "(SELECT 1)",
                          "WITH x AS (SELECT 1) SELECT * FROM x", "BEGIN"}) {
    EXPECT_FALSE(may_end_transaction(sql)) << sql;
  }
}

}  // namespace
}  // namespace binds
