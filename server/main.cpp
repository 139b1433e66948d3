// bindsd: the binds daemon.

#ifdef BINDS_WITH_MIMALLOC
#include <mimalloc.h>
#endif
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "binds/config.hpp"
#include "server/notify.hpp"
#include "server/server.hpp"

namespace {

constexpr const char* kUsage = R"(usage: bindsd [options]
  --config PATH         configuration file (default ./binds.yaml)
  --check-config [PATH] validate the configuration and exit 0 (valid) or 1 (invalid)
  --env-file PATH       read NAME=value lines (systemd EnvironmentFile syntax) into the environment
                        before ${NAME} is expanded: check a config as the unit will run it, e.g.
                        bindsd --env-file /etc/default/bindsd --check-config /etc/binds/binds.yaml
  --listen ADDR         override listen addresses; ADDR is tcp:HOST:PORT or unix:PATH
                        (repeatable; replaces the file's listen section; "tcp:" or "unix:" alone disables one)
  --log-level LEVEL     trace, debug, info (default), warn, error
  --threads N           I/O threads (default 1: one event loop, like PgBouncer; more only when
                        bindsd itself needs more than one core)
  --version             print the version
  --help                this text
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "bindsd: " << msg << "\n" << kUsage;
  std::exit(2);
}

// systemd's EnvironmentFile= syntax, the part packaged configs use: NAME=value per line, blank
// lines and lines starting with # or ; ignored, a value in single or double quotes unquoted.
// Returns an error message, or "" when every line was taken.
std::string load_env_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return path + ": cannot be read: " + std::strerror(errno);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || line[first] == ';') continue;
    const auto eq = line.find('=', first);
    if (eq == std::string::npos) return path + ":" + std::to_string(n) + ": expected NAME=value";
    std::string name = line.substr(first, eq - first);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    std::string value = line.substr(eq + 1);
    const auto vfirst = value.find_first_not_of(" \t");
    value = vfirst == std::string::npos ? "" : value.substr(vfirst);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r')) value.pop_back();
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    const bool valid = !name.empty() && name.find_first_not_of(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
    if (!valid) return path + ":" + std::to_string(n) + ": bad variable name \"" + name + "\"";
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  return "";
}

// systemd sets JOURNAL_STREAM=DEV:INODE when stdout or stderr is connected to the journal. The
// variable is inherited by anything we might be started from, so (as sd-daemon(3) advises) it only
// counts if it names the very stream in question.
bool is_journal_stream(int fd) {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (!env || !*env) return false;
  unsigned long long dev = 0, ino = 0;
  char tail = 0;
  if (std::sscanf(env, "%llu:%llu%c", &dev, &ino, &tail) != 2) return false;
  struct stat st{};
  if (::fstat(fd, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

// journald reads a leading <N> as the syslog priority of the line (sd-daemon.h SD_ERR etc.) and
// stamps its own time, so the journal gets real levels and no duplicated timestamps.
class SyslogPrefix : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    char digit = '6';
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug: digit = '7'; break;
      case spdlog::level::info: digit = '6'; break;
      case spdlog::level::warn: digit = '4'; break;
      case spdlog::level::err: digit = '3'; break;
      case spdlog::level::critical: digit = '2'; break;
      default: break;
    }
    const char prefix[3] = {'<', digit, '>'};
    dest.append(prefix, prefix + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SyslogPrefix>(); }
};

void setup_logging(spdlog::level::level_enum level) {
  spdlog::set_level(level);
  // spdlog's default logger writes to stdout.
  if (is_journal_stream(STDOUT_FILENO)) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<SyslogPrefix>('*').set_pattern("%*%v");
    spdlog::set_formatter(std::move(formatter));
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
}

// Errors that bypass spdlog (they go to stderr before or instead of the daemon running).
std::ostream& error_stream() {
  static const bool journal = is_journal_stream(STDERR_FILENO);
  if (journal) std::cerr << "<3>";
  return std::cerr;
}

}  // namespace

using namespace binds::server;

#ifdef BINDS_WITH_MIMALLOC
// mimalloc 2.0 decommits a page that became free only after a delay, and counts the delay out
// only when a later page is allocated in the same segment. Right for a busy daemon: a page that
// each request empties and the next refills costs nothing. Wrong for one left idle by a burst of
// departing clients: it kept 25-30 MiB of their 37 in two runs of three, however often
// mi_collect() ran. With the delays at 0, freed pages go back at once, but a busy MariaDB bind
// then paid a decommit, a recommit and 4 page faults per request (0.35-0.37x the throughput at
// 3.1-3.4x the CPU per query, bench/ab.sh). So the delays are 0 while the daemon is idle and
// mimalloc's own while it is busy (Server::note_request and its once-a-second tick say which).
namespace mimalloc_delays {

long default_delay = 0;
long default_segment_delay = 0;
long default_extend_delay = 0;

void remember_defaults() {
  default_delay = mi_option_get(mi_option_decommit_delay);
  default_segment_delay = mi_option_get(mi_option_segment_decommit_delay);
  default_extend_delay = mi_option_get(mi_option_decommit_extend_delay);
}

void idle() {
  mi_option_set(mi_option_decommit_delay, 0);
  mi_option_set(mi_option_segment_decommit_delay, 0);
  mi_option_set(mi_option_decommit_extend_delay, 0);
}

// Gives back what this thread freed. Pages freed while the delays were on still wait for a page
// allocation in their segment; with the delays at 0, any free next to them gives them back too.
void release() { mi_collect(true); }

void busy(bool is_busy) {
  if (!is_busy) {
    idle();
    release();
    return;
  }
  mi_option_set(mi_option_decommit_delay, default_delay);
  mi_option_set(mi_option_segment_decommit_delay, default_segment_delay);
  mi_option_set(mi_option_decommit_extend_delay, default_extend_delay);
}

}  // namespace mimalloc_delays
#endif

int main(int argc, char** argv) {
#ifdef BINDS_WITH_MIMALLOC
  mimalloc_delays::remember_defaults();
  mimalloc_delays::idle();
#endif
  std::string config_path = "binds.yaml";
  bool check_only = false;
  std::vector<std::string> listens;
  std::string log_level = "info";
  int threads = 1;

  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= args.size()) usage_error(std::string(name) + " needs a value");
      return args[++i];
    };
    if (a == "--config") config_path = value("--config");
    else if (a == "--check-config") {
      check_only = true;
      if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) config_path = args[++i];
    } else if (a == "--env-file") {
      if (auto why = load_env_file(value("--env-file")); !why.empty()) {
        std::cerr << "bindsd: --env-file " << why << "\n";
        return 1;
      }
    } else if (a == "--listen") listens.push_back(value("--listen"));
    else if (a == "--log-level") log_level = value("--log-level");
    else if (a == "--threads") {
      auto v = value("--threads");
      try {
        threads = std::stoi(v);
      } catch (...) {
        usage_error("--threads: not a number: " + v);
      }
      if (threads < 1 || threads > 64) usage_error("--threads must be between 1 and 64");
    } else if (a == "--version") {
      std::cout << "bindsd 0.1.0 (protocol 1)\n";
      return 0;
    } else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else usage_error("unknown option " + a);
  }

  auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") usage_error("unknown log level " + log_level);
  setup_logging(level);

  // The same loading, validation and command-line overrides at start and at every reload.
  binds::server::ConfigLoader loader = [config_path, listens]() -> std::shared_ptr<const binds::Config> {
    auto loaded = binds::load_config_file(config_path);
    if (listens.empty()) return loaded;
    auto copy = std::make_shared<binds::Config>(*loaded);
    copy->listen = {};
    for (const auto& l : listens) {
      if (l.rfind("tcp:", 0) == 0) copy->listen.tcp = l.substr(4);
      else if (l.rfind("unix:", 0) == 0) copy->listen.unix = l.substr(5);
    }
    return copy;
  };
  for (const auto& l : listens)
    if (l.rfind("tcp:", 0) != 0 && l.rfind("unix:", 0) != 0)
      usage_error("--listen: expected tcp:HOST:PORT or unix:PATH, got " + l);

  std::shared_ptr<const binds::Config> config;
  try {
    config = loader();
  } catch (const std::exception& e) {
    error_stream() << "bindsd: invalid configuration: " << e.what() << "\n";
    notify::status(std::string("invalid configuration: ") + e.what());
    return 1;
  }
  if (check_only) {
    for (const auto& w : config->warnings) error_stream() << "bindsd: warning: " << w << "\n";
    std::cout << config_path << ": OK (" << config->binds.size() << " binds, default "
              << config->default_bind << ")" << (config->warnings.empty() ? "" : ", with warnings") << "\n";
    return 0;
  }
  for (const auto& w : config->warnings) spdlog::warn("config: {}", w);
  if (config->listen.tcp.empty() && config->listen.unix.empty()) usage_error("--listen: nothing to listen on");

  try {
    binds::server::Server server(config, threads, loader);
#ifdef BINDS_WITH_MIMALLOC
    server.set_memory_hooks({.release = mimalloc_delays::release, .busy = mimalloc_delays::busy});
#endif
    notify::Heartbeat heartbeat(server);
    // One strand for both signal sets: the stop handler cancels the SIGHUP wait, and Asio objects
    // must not be used from two threads at once.
    auto signal_strand = boost::asio::make_strand(server.io());
    boost::asio::signal_set signals(signal_strand, SIGINT, SIGTERM);
    // SIGHUP (systemd's ExecReload) re-reads binds.yaml; a bad file keeps the running config.
    boost::asio::signal_set hangup(signal_strand, SIGHUP);
    std::function<void()> wait_hangup = [&] {
      hangup.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        spdlog::info("received SIGHUP: reloading {}", config_path);
        std::string message;
        server.reload(message);
        wait_hangup();
      });
    };
    wait_hangup();
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      spdlog::info("received {}: finishing in-flight requests (grace {} ms); send it again to exit at once",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", config->shutdown_grace.count());
      notify::stopping();
      heartbeat.stop();
      boost::system::error_code ignored;
      hangup.cancel(ignored);
      server.stop();
      // A second signal means "now": no grace, no cleanup.
      signals.async_wait([](boost::system::error_code ec2, int) {
        if (ec2) return;
        spdlog::warn("second stop signal: exiting at once");
        spdlog::shutdown();
        std::_Exit(1);
      });
    });
    server.start();
    spdlog::info("bindsd ready: {} binds, default {}", config->binds.size(), config->default_bind);
    // Listeners are open and the config is loaded: clients can connect from here on.
    notify::ready();
    heartbeat.start();
    server.run();
    spdlog::info("bindsd stopped");
  } catch (const std::exception& e) {
    spdlog::critical("bindsd: {}", e.what());
    notify::status(std::string("start-up failed: ") + e.what());
    return 1;
  }
  return 0;
}
