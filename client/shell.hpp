#pragma once
// The interactive `binds` shell (libedit line editing and history) and the script runner behind
// `binds -f FILE` and SQL on stdin. Both read lines the same way: SQL ends at ';' (client/sql_split),
// a line starting with '\' outside a literal is a meta-command (\c, \dt, \x, ...).

#include <iosfwd>
#include <optional>
#include <string>

namespace binds::client {

struct ShellOptions {
  std::string address;
  std::optional<std::string> bind;  // the bind to start on; else the server's default bind
  bool continue_on_error = false;   // scripts: go on after a failing statement
};

// Exit statuses of run_script: every statement succeeded (or \q), some failed under
// --continue-on-error, the connection could not be made, the script stopped at a failure.
inline constexpr int kScriptOk = 0, kScriptHadErrors = 1, kScriptStopped = 3;

// Runs the statements and meta-commands of `in` (named `name` in messages, e.g. "setup.sql" or
// "<stdin>"), printing results to stdout and errors, with their line, to stderr.
int run_script(const ShellOptions& opts, std::istream& in, const std::string& name);

// The interactive shell on the terminal: returns the exit status when the user leaves (\q, Ctrl-D).
// History: $BINDS_HISTFILE, else ~/.binds_history; none when neither can be named or written.
int run_interactive(const ShellOptions& opts);

}  // namespace binds::client
