// binds: command-line client for bindsd.

#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <charconv>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/format.hpp"
#include "client/shell.hpp"
#include "client/top.hpp"

namespace {

using namespace binds::client;

constexpr const char* kUsage = R"(usage: binds [--host HOST:PORT | --socket PATH] [COMMAND ...]
       binds [--bind KEY] [-f FILE | --file FILE] [--continue-on-error]    (the shell)
without a command (or with "shell"): an interactive shell when stdin is a terminal (\? in it
  for help; history in $BINDS_HISTFILE, else ~/.binds_history), else the SQL script on stdin.
  -f/--file FILE runs FILE instead. Scripts: statements end at ';' (outside quotes, comments and
  dollar quotes), meta-commands (\c BIND, \dt, \d TABLE, \x, \pset null TEXT, \timing) work; the
  first failing statement stops the script with exit status 3 and its line on stderr, unless
  --continue-on-error (then the exit status is 1 if any statement failed).
  --version                    print the version
commands:
  query [--bind KEY] [--format table|json|csv] SQL [PARAM...]
        run one statement; placeholders are the backend's own ($1 for PostgreSQL, ? otherwise).
        PARAM: an int64 in canonical decimal form (42, -5; not 007, +7, -0, 1e3) is sent as an int,
               anything else as text, unchanged; or typed: null: int:7 float:1.5 bool:true
               text:42 bytes:DEADBEEF decimal:1.50 date:2024-01-31 time:12:00:00
               timestamp:2024-01-31T12:00:00 json:{"a":1} uuid:...
  list [--format table|json]   list the binds (no credentials)
  ping                         check that bindsd answers
  stats | clients | servers | config
                               admin views (Unix socket or loopback only), --format table|json:
                               clients: who is connected, what each runs now and holds;
                               servers: every backend connection, its state, client and pid
  top                          live view of pools and busiest clients, each second (q quits)
  reload                       re-read binds.yaml (a bad file keeps the running configuration)
  pause KEY [--wait[=SECONDS]]
                               hold new requests for a bind until resume (running transactions
                               finish); --wait returns once nothing runs on it (default 60 s max)
  resume KEY                   let held requests through again
  kill CLIENT_ID               disconnect one client; its open transactions are rolled back
  drain KEY                    pause and close the bind's connections as they go idle
  reconnect KEY                replace every connection of a bind
  shell                        the shell or script runner, as without a command
options (--host, --socket, --bind/-b, --format/-f, --help/-h) may come anywhere before "--";
  -f is --format for query, list and the admin views, --file for the shell;
  every word after "--" is an argument (binds query 'SELECT $1' -- --bind); -5 is an argument.
address: --host/--socket, else $BINDS_ADDR (unix:PATH, tcp:HOST:PORT or HOST:PORT),
         else listen.unix (or listen.tcp) of ./binds.yaml, else /run/binds/bindsd.sock
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "binds: " << msg << "\n" << kUsage;
  std::exit(2);
}

std::string default_address() {
  if (const char* a = std::getenv("BINDS_ADDR"); a && *a) return a;
  namespace fs = std::filesystem;
  try {
    if (fs::exists("binds.yaml")) {
      YAML::Node n = YAML::LoadFile("binds.yaml");
      if (n["listen"] && n["listen"]["unix"]) {
        fs::path p = n["listen"]["unix"].as<std::string>();
        if (p.is_relative()) p = fs::absolute("binds.yaml").parent_path() / p;
        return "unix:" + p.lexically_normal().string();
      }
      if (n["listen"] && n["listen"]["tcp"]) return "tcp:" + n["listen"]["tcp"].as<std::string>();
    }
  } catch (const std::exception& e) {
    // A file the user meant to point us somewhere: say why it did not, rather than silently
    // talking to another daemon.
    std::cerr << "binds: warning: ./binds.yaml cannot be read (" << e.what()
              << "); using unix:/run/binds/bindsd.sock (give --socket or --host)\n";
  }
  return "unix:/run/binds/bindsd.sock";
}

// The shell: a script from FILE, the terminal, or a script piped to stdin.
int shell(const ShellOptions& opts, const std::optional<std::string>& file) {
  if (file) {
    std::ifstream in(*file, std::ios::binary);
    if (!in) {
      std::cerr << "binds: cannot read " << *file << ": " << std::strerror(errno) << "\n";
      return 1;
    }
    return run_script(opts, in, *file);
  }
  if (isatty(STDIN_FILENO)) return run_interactive(opts);
  return run_script(opts, std::cin, "<stdin>");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Options may come anywhere before "--" (so after the SQL too); every other word, and every word
  // after "--", is positional: the command, then its arguments. Options start with "--" (or are one
  // of the short forms -b, -f, -h), so a parameter like -5 stays a parameter.
  std::string address;
  std::optional<std::string> bind;
  Format format = Format::table;
  bool format_given = false;
  // -f is --format for commands that print a result and --file for the shell: which one is
  // known only once the command is (options may come before it).
  std::optional<std::string> dash_f, file;
  bool continue_on_error = false;
  std::optional<std::string> wait;  // pause --wait[=SECONDS]
  std::vector<std::string> positional;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "--") {
      positional.insert(positional.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    } else if (a == "--host" || a == "--socket") {
      address = (a == "--host" ? "tcp:" : "unix:") + value();
    } else if (a == "--bind" || a == "-b") {
      bind = value();
    } else if (a == "--format") {
      if (i + 1 >= args.size() || !parse_format(args[i + 1], format))
        usage_error("--format must be table, json or csv");
      format_given = true;
      ++i;
    } else if (a == "-f") {
      dash_f = value();
    } else if (a == "--file") {
      file = value();
    } else if (a == "--continue-on-error") {
      continue_on_error = true;
    } else if (a == "--version") {
      std::cout << "binds " BINDS_VERSION "\n";
      return 0;
    } else if (a == "--wait" || a.rfind("--wait=", 0) == 0) {
      wait = a;
    } else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a.rfind("--", 0) == 0) {
      usage_error("unknown option " + a + " (use -- before an argument that starts with --)");
    } else {
      positional.push_back(a);
    }
  }
  std::string cmd = positional.empty() ? "shell" : positional.front();
  std::vector<std::string> rest(positional.begin() + (positional.empty() ? 0 : 1), positional.end());
  if (cmd == "shell") {
    if (!rest.empty()) usage_error("shell takes no arguments (SQL goes on stdin or in -f FILE)");
    if (format_given) usage_error("--format is for query, list and the admin views, not the shell");
    if (dash_f && file) usage_error("give one script: -f and --file both name one");
    if (dash_f) file = dash_f;
  } else {
    if (file || continue_on_error) usage_error("--file and --continue-on-error are for the shell (no command)");
    if (dash_f && !parse_format(*dash_f, format)) usage_error("--format must be table, json or csv");
  }
  if (address.empty()) address = default_address();
  if (wait && cmd != "pause") usage_error("--wait is for pause only");
  if (cmd == "shell") return shell(ShellOptions{address, bind, continue_on_error}, file);

  try {
    if (cmd == "query") {
      if (rest.empty()) usage_error("query needs SQL");
      std::vector<Value> params;
      for (std::size_t j = 1; j < rest.size(); ++j) {
        try {
          params.push_back(parse_param(rest[j]));
        } catch (const std::invalid_argument& e) {
          usage_error("parameter " + std::to_string(j) + ": " + e.what());
        }
      }
      auto client = Client::connect(address, "binds-cli/0.1.0");
      auto result = client.query(rest[0], params, bind);
      print_result(std::cout, result, format);
    } else if (cmd == "list") {
      if (!rest.empty()) usage_error("list takes no arguments");
      auto client = Client::connect(address, "binds-cli/0.1.0");
      print_binds(std::cout, client.list_binds(), format);
    } else if (cmd == "ping") {
      if (!rest.empty()) usage_error("ping takes no arguments");
      auto client = Client::connect(address, "binds-cli/0.1.0");
      client.ping();
      std::cout << "ok (" << client.server().server << ", protocol " << client.server().version << ")\n";
    } else if (cmd == "top") {
      if (!rest.empty()) usage_error("top takes no arguments");
      return binds::client::run_top(address);
    } else if (cmd == "kill") {
      if (rest.size() != 1) usage_error("kill needs exactly one client id (binds clients lists them)");
      auto client = Client::connect(address, "binds-cli/0.1.0");
      print_admin_table(std::cout, client.admin(cmd, std::nullopt, {rest[0]}), format);
    } else if (cmd == "stats" || cmd == "clients" || cmd == "servers" || cmd == "config" || cmd == "reload" ||
               cmd == "pause" || cmd == "resume" || cmd == "drain" || cmd == "reconnect") {
      bool needs_key = cmd == "pause" || cmd == "resume" || cmd == "drain" || cmd == "reconnect";
      if (needs_key && rest.size() != 1) usage_error(cmd + " needs exactly one bind key");
      if (!needs_key && !rest.empty()) usage_error(cmd + " takes no arguments");
      auto client = Client::connect(address, "binds-cli/0.1.0");
      std::vector<std::string> extra;
      if (wait) extra.push_back(*wait);
      auto table = client.admin(cmd, needs_key ? std::optional<std::string>(rest[0]) : std::nullopt, extra);
      print_admin_table(std::cout, table, format);
    } else {
      usage_error("unknown command " + cmd);
    }
  } catch (const ServerError& e) {
    std::cerr << "binds: " << error_text(e) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "binds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
