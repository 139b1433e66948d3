#pragma once
// Integration harness: the real bindsd binary as a child process on a config written to a temp
// folder, and the real test databases of scripts/testdb.sh (URLs from the environment).

#include <gtest/gtest.h>
#include <utility>
#include <boost/asio.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "client/client.hpp"
#include "client/format.hpp"

namespace binds::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The URL of a test server, or "" after recording a failure (or a skip when the developer asked
// for a run without databases with BINDS_ALLOW_NO_DB=1). CI never sets that.
inline std::string db_url(const char* var) {
  return env(var);
}
#define BINDS_REQUIRE_URL(var, out)                                                              \
  std::string out = ::binds::test::db_url(var);                                                  \
  if (out.empty()) {                                                                             \
    if (::binds::test::env("BINDS_ALLOW_NO_DB") == "1") GTEST_SKIP() << var " not set";          \
    FAIL() << var " is not set: run the tests through scripts/test.sh (it starts the databases)"; \
  }

// A loopback TCP port free a moment ago (for a daemon's tcp: listener or its metrics).
inline unsigned short free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

inline fs::path make_temp_dir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("binds-" + tag + "-XXXXXX")).string();
  char* p = mkdtemp(tmpl.data());
  if (!p) throw std::runtime_error("mkdtemp failed");
  return p;
}

// For tests parameterised over backends: the server URL from env var `var`, or, when var is "",
// a SQLite file in dir. Use inside a test body (it may FAIL or SKIP the test).
#define BINDS_CASE_URL(var, dir, out)                                                \
  std::string out;                                                                   \
  if (*(var)) {                                                                      \
    out = ::binds::test::env(var);                                                   \
    if (out.empty()) {                                                               \
      if (::binds::test::env("BINDS_ALLOW_NO_DB") == "1") GTEST_SKIP() << (var);      \
      FAIL() << (var) << " is not set: run the tests through scripts/test.sh";       \
    }                                                                                \
  } else {                                                                           \
    out = "sqlite:///" + ((dir) / "test.db").string();                               \
  }

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs scripts/testdb.sh SUBCOMMAND on the running test databases.
inline void testdb(const std::string& cmd) {
  std::string dir = env("BINDS_TEST_DIR");
  ASSERT_FALSE(dir.empty()) << "BINDS_TEST_DIR not set";
  std::string line = std::string(BINDS_SOURCE_DIR) + "/scripts/testdb.sh " + cmd + " " + dir + " >/dev/null";
  // Not std::system: a database server started here must not inherit this process's descriptors
  // (a daemon connection it held open would never hang up).
  pid_t pid = fork();
  if (pid == 0) {
    closefrom(3);
    execl("/bin/sh", "sh", "-c", line.c_str(), nullptr);
    _exit(127);
  }
  int status = -1;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << line;
}

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;  // memory figures are meaningless under ASan
#else
inline constexpr bool kSanitized = false;
#endif

class Daemon {
 public:
  // binds_yaml: the "binds:" section and anything else; listen is added here.
  explicit Daemon(const std::string& binds_yaml, const std::string& extra_args = "") {
    dir_ = make_temp_dir("daemon");
    socket_ = (dir_ / "bindsd.sock").string();
    // $BINDS_TEST_CLIENTS=tcp: the daemon listens on loopback TCP too and the tests' clients use it.
    // Reads, half-closes and full buffers behave differently there (scripts/test.sh runs the fault
    // tests once that way); tools given --socket keep the Unix socket.
    if (env("BINDS_TEST_CLIENTS") == "tcp") tcp_port_ = free_port();
    config_ = dir_ / "binds.yaml";
    write_config(binds_yaml);
    log_ = dir_ / "bindsd.log";
    start(extra_args);
  }
  ~Daemon() {
    stop();
    // The sanitizer pass runs this same suite on an instrumented daemon: its reports land in the log.
    auto text = log();
    for (const char* marker :
         {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer"})
      if (text.find(marker) != std::string::npos) ADD_FAILURE() << "bindsd sanitizer report:\n" << text;
    std::error_code ec;
    if (env("BINDS_KEEP_TEST_DIRS").empty()) fs::remove_all(dir_, ec);
  }

  void start(const std::string& extra_args = "") {
    // $BINDS_TEST_BINDSD runs the suite against another build (e.g. to show a test fails before a fix).
    std::string bin = env("BINDS_TEST_BINDSD").empty() ? std::string(BINDSD_PATH) : env("BINDS_TEST_BINDSD");
    // $BINDS_TEST_BINDSD_ARGS adds options to every daemon: scripts/test.sh runs the sanitizer pass
    // with --threads 2, so the multi-threaded path (strands) is exercised as well as the default.
    std::string cmd = "exec " + bin + " --config " + config_.string() + " --log-level debug " +
                      env("BINDS_TEST_BINDSD_ARGS") + " " + extra_args + " >>" + log_.string() + " 2>&1";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      try {
        client::Client::connect(address()).ping();
        return;
      } catch (const std::exception&) {
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("bindsd exited at start:\n" + log());
      }
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("bindsd did not answer within 10 s:\n" + log());
  }

  // SIGTERM and wait; returns the exit status (or -1).
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(50ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    ADD_FAILURE() << "bindsd did not stop within 15 s of SIGTERM";
    return -1;
  }

  // Rewrites the config file (same listen section), e.g. before a reload.
  void write_config(const std::string& binds_yaml) {
    std::ofstream(config_) << "listen:\n  unix: " << socket_ << "\n"
                           << (tcp_port_ ? "  tcp: 127.0.0.1:" + std::to_string(tcp_port_) + "\n" : "") << binds_yaml;
  }
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // Waits for the daemon to exit by itself; its exit status, or -1 after the timeout.
  int wait_exit(std::chrono::milliseconds timeout) {
    int status = 0;
    auto until = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0 && std::chrono::steady_clock::now() < until) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
  client::Client connect() const { return client::Client::connect(address()); }
  // Where the tests' clients connect: the Unix socket, or TCP under BINDS_TEST_CLIENTS=tcp.
  std::string address() const {
    return tcp_port_ ? "tcp:127.0.0.1:" + std::to_string(tcp_port_) : "unix:" + socket_;
  }
  const std::string& socket_path() const { return socket_; }
  unsigned short tcp_port() const { return tcp_port_; }  // 0 unless BINDS_TEST_CLIENTS=tcp
  std::string log() const { return read_file(log_); }
  pid_t pid() const { return pid_; }
  const fs::path& dir() const { return dir_; }

  // Peak resident set size of the daemon, in KiB (VmHWM).
  long peak_rss_kib() const { return proc_status_kib("VmHWM:"); }
  long rss_kib() const { return proc_status_kib("VmRSS:"); }

 private:
  long proc_status_kib(const std::string& key) const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
    return -1;
  }
  fs::path dir_, config_, log_;
  std::string socket_;
  unsigned short tcp_port_ = 0;
  pid_t pid_ = -1;
};

// The first value of a one-row result, as text.
inline std::string scalar(client::Client& c, const std::string& sql, std::optional<std::string> bind = std::nullopt,
                          const std::vector<protocol::Value>& params = {}) {
  return client::value_text(c.query(sql, params, std::move(bind)).rows.at(0).at(0));
}

// The `binds` CLI run to completion: exit status, stdout, stderr.
struct CliRun {
  int rc;
  std::string out, err;
};
// Runs `env_prefix binds args` with `input` as stdin (a file: never a terminal). Under the
// sanitizer pass the CLI is instrumented too, and its reports on stderr fail the test.
inline CliRun run_cli(const std::string& args, const std::string& input = "", const std::string& env_prefix = "") {
  auto dir = make_temp_dir("cli");
  std::ofstream(dir / "in", std::ios::binary) << input;
  std::string cmd = env_prefix + " " + BINDS_CLI_PATH + " " + args + " <" + (dir / "in").string() + " >" +
                    (dir / "o").string() + " 2>" + (dir / "e").string();
  int rc = std::system(cmd.c_str());
  CliRun r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(dir / "o"), read_file(dir / "e")};
  std::error_code ec;
  fs::remove_all(dir, ec);
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"})
    if (r.err.find(marker) != std::string::npos) ADD_FAILURE() << "binds " << args << ": sanitizer report:\n" << r.err;
  return r;
}

// Runs bindsd with args to completion (e.g. --check-config); its exit status, output in `output`.
inline int run_bindsd(const std::string& args, std::string& output) {
  auto dir = make_temp_dir("cfgout");
  std::string out = (dir / "out").string();
  int rc = std::system((std::string(BINDSD_PATH) + " " + args + " >" + out + " 2>&1").c_str());
  output = read_file(out);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// One cell of an admin table: the row whose first column is key, the column called name.
inline std::string cell(const protocol::Table& t, const std::string& key, const std::string& name) {
  auto col = std::find(t.columns.begin(), t.columns.end(), name) - t.columns.begin();
  for (const auto& r : t.rows)
    if (client::value_text(r.at(0)) == key) return client::value_text(r.at(static_cast<std::size_t>(col)));
  return "<no row " + key + ">";
}

inline protocol::ErrorCode error_code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const client::ServerError& e) {
    return e.info.code;
  }
  ADD_FAILURE() << "expected a server error";
  return protocol::ErrorCode::internal;
}

}  // namespace binds::test
