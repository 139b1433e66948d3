// binds: command-line client for bindsd.

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/format.hpp"
#include "client/top.hpp"

namespace {

using namespace binds::client;

constexpr const char* kUsage = R"(usage: binds [--host HOST:PORT | --socket PATH] COMMAND ...
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
  pause KEY [--wait[=SECONDS]] hold new requests for a bind until resume (running transactions
                               finish); --wait returns once nothing runs on it (default 60 s max)
  resume KEY                   let held requests through again
  kill CLIENT_ID               disconnect one client; its open transactions are rolled back
  drain KEY                    pause and close the bind's connections as they go idle
  reconnect KEY                replace every connection of a bind
options (--host, --socket, --bind/-b, --format/-f, --help/-h) may come anywhere before "--";
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

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Options may come anywhere before "--" (so after the SQL too); every other word, and every word
  // after "--", is positional: the command, then its arguments. Options start with "--" (or are one
  // of the short forms -b, -f, -h), so a parameter like -5 stays a parameter.
  std::string address;
  std::optional<std::string> bind;
  Format format = Format::table;
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
    } else if (a == "--format" || a == "-f") {
      if (i + 1 >= args.size() || !parse_format(args[i + 1], format))
        usage_error("--format must be table, json or csv");
      ++i;
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
  if (positional.empty()) usage_error("no command given");
  std::string cmd = positional.front();
  std::vector<std::string> rest(positional.begin() + 1, positional.end());
  if (address.empty()) address = default_address();
  if (wait && cmd != "pause") usage_error("--wait is for pause only");

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
      auto binds = client.list_binds();
      if (format == Format::json) {
        std::cout << "[";
        for (std::size_t j = 0; j < binds.size(); ++j)
          std::cout << (j ? "," : "") << "{\"key\":" << json_escape(binds[j].key)
                    << ",\"backend\":" << json_escape(binds[j].backend)
                    << ",\"database\":" << json_escape(binds[j].database)
                    << ",\"default\":" << (binds[j].is_default ? "true" : "false") << "}";
        std::cout << "]\n";
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& b : binds) rows.push_back({b.key, b.backend, b.database, b.is_default ? "yes" : ""});
        print_table(std::cout, {"key", "backend", "database", "default"}, rows);
      }
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
    std::cerr << "binds: " << e.what();
    if (!e.info.sqlstate.empty()) std::cerr << " [SQLSTATE " << e.info.sqlstate << "]";
    if (e.info.number) std::cerr << " [errno " << *e.info.number << "]";
    if (e.info.bind) std::cerr << " (bind " << *e.info.bind << ")";
    std::cerr << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "binds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
