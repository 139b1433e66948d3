#pragma once
// Whether a statement may leave session state behind on its backend connection (session
// variables, temporary tables, prepared statements, user variables, advisory/user locks, LISTEN,
// WITH HOLD cursors, the current database). Such a connection is reset before another client gets
// it; one that ran only ordinary statements is handed over as it is, which keeps the common path
// free of a reset (MySQL's COM_RESET_CONNECTION, SQLite's temp-schema cleanup). MySQL's session
// tracking also reports changes (Outcome::session_state_changed). PostgreSQL connections are reset
// on every change of client whatever this says (engine.cpp): a DO block or a function can change
// the session without the text showing it.
//
// This reads SQL text, so it over-approximates on purpose: a false positive costs one reset, a
// false negative would leak state. Known blind spot: state changed inside a stored function or
// procedure that the statement calls; binds with such code should set `reset: always`.

#include <string_view>

#include "binds/url.hpp"

namespace binds {

bool may_change_session_state(Backend backend, std::string_view sql);

// Whether sql is a plain ROLLBACK (or PostgreSQL's ABORT) that ends the whole transaction, as
// opposed to ROLLBACK TO SAVEPOINT, ROLLBACK PREPARED or ROLLBACK AND CHAIN. A client whose
// transaction the server has already written off may end it with this statement as with the
// ROLLBACK frame.
bool is_transaction_rollback(std::string_view sql);

// Whether sql is a plain COMMIT (or END) of the whole transaction.
bool is_transaction_commit(std::string_view sql);

// Whether sql may end, commit or prepare the open transaction (COMMIT, END, ROLLBACK, ABORT,
// PREPARE TRANSACTION, or CALL and DO, whose code may commit). Conservative: a statement whose
// first keyword cannot be read counts. The engine never sends such a statement ahead of the
// outcome of the one before it.
bool may_end_transaction(std::string_view sql);

}  // namespace binds
