#pragma once
// MySQL/MariaDB result columns and values as protocol types (PROTOCOL.md §5), for both wire
// formats: the text protocol (statements without parameters) and the binary protocol (prepared
// statements). Both produce the same bytes for the same value:
//
//  - integers → int64; a BIGINT UNSIGNED (or BIT(64)) column is typed `decimal`, because a value
//    above 2^63-1 arrives as decimal text; values that fit still arrive as int64.
//  - FLOAT → float64 rounded as the server prints a FLOAT (6 significant digits, or the column's
//    fixed decimals), so the binary protocol's exact float gives what the text protocol gives.
//    DOUBLE → float64 (exact; fixed-decimals DOUBLE(M,D) rounded to D digits like the text form).
//  - DECIMAL → decimal text, as the server sends it (any length, never through a double).
//  - DATE, TIME, DATETIME/TIMESTAMP → date, time, timestamp in the server's own text form:
//    `YYYY-MM-DD`, `[-]HH:MM:SS` (hours up to 838), `YYYY-MM-DD HH:MM:SS`, followed by exactly as
//    many fractional digits as the column declares (DATETIME(6) → always 6, DATETIME(3) → 3,
//    DATETIME → none); where the server declares no precision, 6 digits if the value has a
//    fraction, none otherwise.
//  - BIT(n) → int64 (the bits as an unsigned big-endian number); YEAR → int64.
//  - JSON (MariaDB's JSON alias, reported through the extended metadata format "json") → json;
//    MariaDB's UUID type → uuid; other strings → text, or bytes when their charset is binary
//    (BINARY, VARBINARY, BLOB, GEOMETRY); ENUM, SET, INET6 → text; NULL → null.

#include <mysql.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "binds/backend/backend.hpp"

namespace binds::backend::mysql {

// How a column's values become ValueViews.
enum class Conv : std::uint8_t {
  null,
  integer,     // signed, or unsigned narrower than 64 bits
  unsigned64,  // BIGINT UNSIGNED: int64 when it fits, decimal text above
  bit,
  float32,
  float64,
  decimal,
  date,
  time,
  timestamp,
  json,
  uuid,
  text,
  bytes,
};

struct ColumnInfo {
  Conv conv = Conv::text;
  unsigned decimals = 0;  // fractional digits the server declares (>= 31: not fixed)
};

// Fills the protocol column (name, type, db_type) and the conversion of one result column.
void describe(const MYSQL_FIELD& field, protocol::Column& column, ColumnInfo& info);

// Room for a value the conversion has to render itself (integers above 2^63-1, temporal values
// of the binary protocol): one per column, reused for every row.
struct Scratch {
  char buf[48];
};

// The text protocol's value of one column (data == nullptr: SQL NULL). Views point into `data`
// or `scratch`.
ValueView from_text(const ColumnInfo& ci, const char* data, unsigned long length, Scratch& scratch);

// The binary protocol's values, from the buffers Connector/C fetched them into.
ValueView from_int(const ColumnInfo& ci, std::int64_t raw, Scratch& scratch);
ValueView from_float(const ColumnInfo& ci, float v);
ValueView from_double(const ColumnInfo& ci, double v);
ValueView from_temporal(const ColumnInfo& ci, const MYSQL_TIME& t, Scratch& scratch);
// Strings, DECIMAL, BIT and JSON arrive as bytes in both protocols.
ValueView from_bytes(const ColumnInfo& ci, std::string_view data, Scratch& scratch);

// Errors.
// CR_* client errors (2000-2999) are all about the link to the server; the others are what a
// server says right before it closes the connection (shutdown, KILL, packet too large, network
// errors, idle timeout).
bool is_connection_errno(unsigned n);
constexpr unsigned kQueryInterrupted = 1317;  // ER_QUERY_INTERRUPTED
constexpr unsigned kSortAborted = 1028;       // ER_FILSORT_ABORT: a sort stopped by KILL QUERY
constexpr unsigned kLockDeadlock = 1213;      // ER_LOCK_DEADLOCK: the transaction was rolled back
constexpr unsigned kLockWaitTimeout = 1205;   // ER_LOCK_WAIT_TIMEOUT
constexpr unsigned kLockTableFull = 1206;     // ER_LOCK_TABLE_FULL: the transaction was rolled back
constexpr unsigned kNeedReprepare = 1615;     // ER_NEED_REPREPARE
constexpr unsigned kNewStmtMetadata = 2057;   // CR_NEW_STMT_METADATA (client side)

// A BackendError from an errno, SQLSTATE and message (code and connection_broken by errno).
BackendError make_error(unsigned number, std::string_view sqlstate, std::string_view message);
BackendError error_of(MYSQL* m);
// A statement's error; a fetch leaves its error on the connection only.
BackendError error_of(MYSQL_STMT* stmt);

}  // namespace binds::backend::mysql
