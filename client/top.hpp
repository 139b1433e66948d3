#pragma once
// `binds top`: a live terminal view of bindsd (pools and busiest clients), refreshed each second.

#include <string>

namespace binds::client {

// Runs until q (or Ctrl-C); the terminal is restored either way. Returns the process exit code.
int run_top(const std::string& address);

}  // namespace binds::client
