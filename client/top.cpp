// `binds top`: plain ANSI escapes on the alternate screen, raw keyboard input through termios.
// Rates (queries per second) come from the difference of two successive `stats` replies.

#include "client/top.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/format.hpp"

namespace binds::client {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// Raw, unechoed input and the alternate screen for the object's lifetime; restored by the
// destructor on every way out (q, Ctrl-C, a lost connection: the exception unwinds through it).
class Terminal {
 public:
  Terminal() {
    if (tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      have_saved_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);  // alternate screen, hide the cursor
    std::fflush(stdout);
  }
  ~Terminal() {
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
    if (have_saved_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  static void size(int& cols, int& rows) {
    winsize ws{};
    cols = 80;
    rows = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      cols = ws.ws_col;
      rows = ws.ws_row;
    }
  }

 private:
  termios saved_{};
  bool have_saved_ = false;
};

// Column by name, so a server that adds columns does not break the view.
struct Named {
  const protocol::Table& t;
  std::string get(const protocol::Row& row, const std::string& col) const {
    for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i)
      if (t.columns[i] == col) return value_text(row[i]);
    return "";
  }
  double num(const protocol::Row& row, const std::string& col) const {
    try {
      return std::stod(get(row, col));
    } catch (const std::exception&) {
      return 0;
    }
  }
};

std::string fit(std::string s, std::size_t width) {
  if (s.size() > width) s.resize(width);
  return s;
}

std::string pad(const std::string& s, std::size_t w, bool right = false) {
  if (s.size() >= w) return s.substr(0, w);
  return right ? std::string(w - s.size(), ' ') + s : s + std::string(w - s.size(), ' ');
}

std::string fixed(double v, int decimals) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(decimals);
  o << v;
  return o.str();
}

}  // namespace

int run_top(const std::string& address) {
  if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
    std::cerr << "binds: top needs a terminal (use binds stats / binds clients --format json in scripts)\n";
    return 2;
  }
  auto client = Client::connect(address, "binds-top/0.1.0");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  Terminal term;

  using Clock = std::chrono::steady_clock;
  std::map<std::string, double> prev_queries;
  std::map<std::string, double> prev_requests;
  Clock::time_point prev_at{};
  while (!g_stop) {
    const auto now = Clock::now();
    auto stats = client.admin("stats");
    auto clients = client.admin("clients");
    const double dt = prev_at == Clock::time_point{} ? 0 : std::chrono::duration<double>(now - prev_at).count();
    prev_at = now;

    int cols = 0, rows = 0;
    Terminal::size(cols, rows);
    const auto width = static_cast<std::size_t>(std::max(cols, 20));
    std::vector<std::string> lines;
    std::time_t wall = std::time(nullptr);
    char clock[16];
    std::strftime(clock, sizeof clock, "%H:%M:%S", std::localtime(&wall));
    lines.push_back("binds top - " + address + " - " + clock + " - " + client.server().server + "   (q quits)");
    lines.push_back("");
    // Pools: the bind column takes what the fixed columns leave.
    Named st{stats};
    const std::size_t fixed_w = 7 * 8 + 10 + 13;
    const std::size_t bind_w = width > fixed_w + 8 ? std::min<std::size_t>(width - fixed_w, 32) : 8;
    lines.push_back(pad("bind", bind_w) + pad("open", 7, true) + " " + pad("in_use", 7, true) + " " +
                    pad("pinned", 7, true) + " " + pad("waiting", 7, true) + " " + pad("qps", 9, true) + " " +
                    pad("p99_ms", 9, true) + "  state");
    for (const auto& row : stats.rows) {
      const auto bind = st.get(row, "bind");
      const double q = st.num(row, "queries");
      std::string qps = "-";
      if (dt > 0 && prev_queries.count(bind)) qps = fixed(std::max(0.0, q - prev_queries[bind]) / dt, 1);
      prev_queries[bind] = q;
      lines.push_back(pad(bind, bind_w) + pad(st.get(row, "open"), 7, true) + " " +
                      pad(st.get(row, "in_use"), 7, true) + " " + pad(st.get(row, "pinned"), 7, true) + " " +
                      pad(st.get(row, "waiting"), 7, true) + " " + pad(qps, 9, true) + " " +
                      pad(fixed(st.num(row, "p99_ms"), 1), 9, true) + "  " + st.get(row, "state"));
    }
    lines.push_back("");
    // Busiest clients: most requests in the last interval, then most in flight.
    Named cl{clients};
    struct Busy {
      std::string id, name, binds, running, running_ms;
      double rate = 0, in_flight = 0;
    };
    std::vector<Busy> busy;
    std::map<std::string, double> seen;
    for (const auto& row : clients.rows) {
      Busy b;
      b.id = cl.get(row, "id");
      b.name = cl.get(row, "name");
      b.binds = cl.get(row, "binds");
      b.running = cl.get(row, "running");
      b.running_ms = cl.get(row, "running_ms");
      if (b.running_ms == "NULL") b.running_ms = "-";
      b.in_flight = cl.num(row, "in_flight");
      const double req = cl.num(row, "requests");
      if (dt > 0 && prev_requests.count(b.id)) b.rate = std::max(0.0, req - prev_requests[b.id]) / dt;
      seen[b.id] = req;
      busy.push_back(std::move(b));
    }
    prev_requests = std::move(seen);
    std::stable_sort(busy.begin(), busy.end(), [](const Busy& a, const Busy& b) {
      return a.rate != b.rate ? a.rate > b.rate : a.in_flight > b.in_flight;
    });
    lines.push_back("clients: " + std::to_string(busy.size()) + " connected, busiest first");
    lines.push_back(pad("id", 6, true) + " " + pad("name", 16) + " " + pad("req/s", 8, true) + " " +
                    pad("in_fl", 5, true) + " " + pad("run_ms", 8, true) + "  " + pad("holds", 14) + " running");
    for (const auto& b : busy) {
      lines.push_back(pad(b.id, 6, true) + " " + pad(b.name, 16) + " " + pad(fixed(b.rate, 1), 8, true) + " " +
                      pad(fixed(b.in_flight, 0), 5, true) + " " + pad(b.running_ms, 8, true) + "  " +
                      pad(b.binds, 14) + " " + b.running);
    }
    // One write per frame: home, each line cut to the width and cleared to its end, then the rest
    // of the screen cleared (a shrinking list leaves nothing behind).
    std::string frame = "\x1b[H";
    const auto max_lines = static_cast<std::size_t>(std::max(rows, 1));
    for (std::size_t i = 0; i < lines.size() && i < max_lines; ++i) {
      frame += fit(lines[i], width) + "\x1b[K";
      if (i + 1 < max_lines) frame += "\r\n";
    }
    frame += "\x1b[J";
    std::fwrite(frame.data(), 1, frame.size(), stdout);
    std::fflush(stdout);

    // Wait out the second, answering keys at once.
    const auto next = now + std::chrono::seconds(1);
    while (!g_stop) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{STDIN_FILENO, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) > 0) {
        char c = 0;
        if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) return 0;
      }
    }
  }
  return 0;
}

}  // namespace binds::client
