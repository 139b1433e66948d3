// bindsd: the binds daemon.

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "binds/config.hpp"
#include "server/server.hpp"

namespace {

constexpr const char* kUsage = R"(usage: bindsd [options]
  --config PATH         configuration file (default ./binds.yaml)
  --check-config [PATH] validate the configuration and exit 0 (valid) or 1 (invalid)
  --listen ADDR         override listen addresses; ADDR is tcp:HOST:PORT or unix:PATH
                        (repeatable; replaces the file's listen section; "tcp:" or "unix:" alone disables one)
  --log-level LEVEL     trace, debug, info (default), warn, error
  --threads N           I/O threads (default 2)
  --version             print the version
  --help                this text
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "bindsd: " << msg << "\n" << kUsage;
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "binds.yaml";
  bool check_only = false;
  std::vector<std::string> listens;
  std::string log_level = "info";
  int threads = 2;

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
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");

  std::shared_ptr<const binds::Config> config;
  try {
    config = binds::load_config_file(config_path);
  } catch (const std::exception& e) {
    std::cerr << "bindsd: invalid configuration: " << e.what() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << config_path << ": OK (" << config->binds.size() << " binds, default "
              << config->default_bind << ")\n";
    return 0;
  }
  if (!listens.empty()) {
    auto copy = std::make_shared<binds::Config>(*config);
    copy->listen = {};
    for (const auto& l : listens) {
      if (l.rfind("tcp:", 0) == 0) copy->listen.tcp = l.substr(4);
      else if (l.rfind("unix:", 0) == 0) copy->listen.unix = l.substr(5);
      else usage_error("--listen: expected tcp:HOST:PORT or unix:PATH, got " + l);
    }
    if (copy->listen.tcp.empty() && copy->listen.unix.empty()) usage_error("--listen: nothing to listen on");
    config = copy;
  }

  try {
    binds::server::Server server(config, threads);
    boost::asio::signal_set signals(server.io(), SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      spdlog::info("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
      server.stop();
    });
    server.start();
    spdlog::info("bindsd ready: {} binds, default {}", config->binds.size(), config->default_bind);
    server.run();
    spdlog::info("bindsd stopped");
  } catch (const std::exception& e) {
    spdlog::critical("bindsd: {}", e.what());
    return 1;
  }
  return 0;
}
