#include "client/shell.hpp"

#include <histedit.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <vector>

#include "client/client.hpp"
#include "client/format.hpp"
#include "client/sql_split.hpp"

namespace binds::client {
namespace {

constexpr const char* kHelp = R"(meta-commands (a line that starts with '\'):
  \c BIND           use another bind for the next statements
  \l                list the binds
  \dt               tables of the current bind
  \d [TABLE]        columns of TABLE (schema.table on PostgreSQL); without TABLE, as \dt
  \x [on|off]       expanded output: one "-[ RECORD n ]-" block per row
  \timing [on|off]  print how long each statement took
  \pset null TEXT   how NULL is shown (empty by default)
  \q                quit (Ctrl-D too)
  \?                this help
SQL runs when a ';' ends it, outside quotes, comments and dollar quotes; Ctrl-C drops the input.
)";

// The catalog queries behind \dt and \d, per backend. Each takes the table name as parameter 1
// (and, on PostgreSQL, an optional schema as parameter 2).
struct Catalog {
  const char* tables;
  const char* columns;
};
Catalog catalog_for(Dialect d) {
  switch (d) {
    case Dialect::postgresql:
      return {"SELECT table_schema AS \"schema\", table_name AS \"name\", lower(table_type) AS \"type\" "
              "FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
              "ORDER BY 1, 2",
              "SELECT column_name AS \"column\", data_type AS \"type\", is_nullable AS \"nullable\", "
              "column_default AS \"default\" FROM information_schema.columns "
              "WHERE table_name = $1 AND (CASE WHEN $2::text IS NULL "
              "THEN table_schema = ANY (current_schemas(false)) ELSE table_schema = $2::text END) "
              "ORDER BY table_schema, ordinal_position"};
    case Dialect::mysql:
      return {"SELECT table_name AS `name`, lower(table_type) AS `type` FROM information_schema.tables "
              "WHERE table_schema = DATABASE() ORDER BY 1",
              "SELECT column_name AS `column`, column_type AS `type`, is_nullable AS `nullable`, "
              "column_default AS `default` FROM information_schema.columns "
              "WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? ORDER BY ordinal_position"};
    case Dialect::sqlite:
      return {"SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
              "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
              "SELECT name AS \"column\", type AS \"type\", CASE WHEN \"notnull\" THEN 'NO' ELSE 'YES' END "
              "AS \"nullable\", dflt_value AS \"default\" FROM pragma_table_info(?)"};
  }
  return {"", ""};
}

bool blank_line(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

// Words of a meta-command line; 'single quotes' keep blanks ('' is a quote), as psql reads them.
bool meta_words(std::string_view line, std::vector<std::string>& out, std::string& error) {
  std::size_t i = 0;
  while (true) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i >= line.size()) return true;
    std::string word;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
      if (line[i] != '\'') {
        word += line[i++];
        continue;
      }
      for (++i;; ++i) {
        if (i >= line.size()) {
          error = "unterminated quoted string in meta-command";
          return false;
        }
        if (line[i] == '\'') {
          if (i + 1 < line.size() && line[i + 1] == '\'') {
            word += '\'';
            ++i;
          } else {
            ++i;
            break;
          }
        } else {
          word += line[i];
        }
      }
    }
    out.push_back(std::move(word));
  }
}

// Ctrl-C in the interactive shell: our handler, installed without SA_RESTART, makes el_gets return
// with EINTR (the shell drops the input) and a blocking read of a running statement fail (the
// shell closes that connection, which ends the statement's session on bindsd, and reconnects).
// Scripts keep SIGINT's default action.
volatile sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

class SigintInterrupts {
 public:
  SigintInterrupts() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintInterrupts() { sigaction(SIGINT, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

// One shell session: the connection, the current bind, display settings, and the input read so
// far that no ';' has ended yet. Scripts and the terminal feed it lines.
class Session {
 public:
  Session(const ShellOptions& opts, std::string name, bool interactive)
      : opts_(opts), name_(std::move(name)), interactive_(interactive) {}

  // Connects and picks the starting bind; false (reported) when that fails.
  bool start() {
    try {
      refresh_binds();
    } catch (const ServerError& e) {
      std::cerr << "binds: " << error_text(e) << "\n";
      return false;
    } catch (const std::exception& e) {
      std::cerr << "binds: " << e.what() << "\n";
      return false;
    }
    if (opts_.bind) {
      if (!find_bind(*opts_.bind)) {
        std::cerr << "binds: unknown bind \"" << *opts_.bind << "\" (" << bind_keys() << ")\n";
        return false;
      }
      bind_ = *opts_.bind;
    } else {
      for (const auto& b : binds_)
        if (b.is_default) bind_ = b.key;
    }
    return true;
  }

  // Feeds one input line (without its '\n'). False when the session should end: \q, or a
  // failure in a script that stops on errors.
  bool feed(std::string_view line) {
    ++line_no_;
    if (buffer_.empty()) buffer_line_ = line_no_;
    auto first = line.find_first_not_of(" \t");
    if (first != std::string_view::npos && line[first] == '\\' &&
        split_sql(buffer_, dialect(), buffer_line_).open == Open::none) {
      const bool ok = meta(line.substr(first + 1));
      if (quit_) return false;
      return ok || !stops_on_error();
    }
    buffer_.append(line).push_back('\n');
    // A line without ';' cannot end a statement: skip the scan (a long function body in a script
    // would otherwise be rescanned at every line).
    if (line.find(';') == std::string_view::npos) return true;
    return run_complete();
  }

  // The end of the input: an unterminated literal is an error; an unended statement runs (as
  // psql does with a last statement that lacks its ';').
  bool finish() {
    const Split s = split_sql(buffer_, dialect(), buffer_line_);
    buffer_.clear();
    if (s.open != Open::none) {
      failed("unterminated " + std::string(open_name(s.open)) + " (opened on line " +
                 std::to_string(s.open_line) + ") at end of input",
             line_no_);
      return false;
    }
    if (s.rest_significant) return run_sql(s.pending) || !stops_on_error();
    return true;
  }

  void clear_input() { buffer_.clear(); }
  bool input_pending() const {
    if (buffer_.empty()) return false;
    const Split s = split_sql(buffer_, dialect(), buffer_line_);
    return s.open != Open::none || s.rest_significant;
  }
  std::string prompt() const {
    return (bind_.empty() ? std::string("binds") : bind_) + (input_pending() ? "-> " : "=> ");
  }
  int failures() const { return failures_; }
  bool stopped() const { return stopped_; }

 private:
  bool stops_on_error() const { return !interactive_ && !opts_.continue_on_error; }

  bool run_complete() {
    Split s = split_sql(buffer_, dialect(), buffer_line_);
    for (const auto& st : s.statements) {
      if (!run_sql(st) && stops_on_error()) {
        buffer_.clear();
        return false;
      }
    }
    if (s.open == Open::none && !s.rest_significant) {
      buffer_.clear();
    } else {
      for (std::size_t i = 0; i < s.rest; ++i) buffer_line_ += buffer_[i] == '\n';
      buffer_.erase(0, s.rest);
    }
    return true;
  }

  Client& client() {
    if (!client_) client_.emplace(Client::connect(opts_.address, "binds-shell/" BINDS_VERSION));
    return *client_;
  }
  void refresh_binds() { binds_ = client().list_binds(); }
  const protocol::BindInfo* find_bind(const std::string& key) const {
    for (const auto& b : binds_)
      if (b.key == key) return &b;
    return nullptr;
  }
  std::string bind_keys() const {
    std::string keys = "binds:";
    for (const auto& b : binds_) keys += " " + b.key;
    return binds_.empty() ? "no binds" : keys;
  }
  Dialect dialect() const {
    const auto* b = find_bind(bind_);
    return b ? dialect_of(b->backend) : Dialect::postgresql;
  }
  std::optional<std::string> bind_arg() const {
    return bind_.empty() ? std::nullopt : std::optional<std::string>(bind_);
  }

  std::string where(std::size_t line) const {
    return interactive_ ? std::string() : name_ + ":" + std::to_string(line) + ": ";
  }
  void failed(const std::string& message, std::size_t line) {
    ++failures_;
    std::cerr << "binds: " << where(line) << message << "\n";
    if (stops_on_error()) {
      stopped_ = true;
      std::cerr << "binds: stopped at line " << line << " of " << name_
                << " (--continue-on-error runs the rest)\n";
    }
  }
  void report(const std::exception& e, std::size_t line) {
    if (auto* se = dynamic_cast<const ServerError*>(&e)) return failed(error_text(*se), line);
    // The connection is gone (bindsd restarted, a network cut, Ctrl-C cut a read short): the next
    // statement reconnects.
    if (dynamic_cast<const ClientError*>(&e)) {
      client_.reset();
      if (g_interrupted) {
        std::cerr << "\n";  // after the terminal's "^C"
        return failed("interrupted by Ctrl-C: the connection to bindsd was closed, which ends the statement "
                      "(and any open transaction); the next statement reconnects",
                      line);
      }
    }
    failed(e.what(), line);
  }

  // Runs `sql` on the current bind and prints its result; false after reporting a failure.
  bool query(const std::string& sql, const std::vector<Value>& params, std::size_t line, Result* out = nullptr) {
    std::cout.flush();
    g_interrupted = 0;
    try {
      auto t0 = std::chrono::steady_clock::now();
      Result r = client().query(sql, params, bind_arg());
      auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (out) {
        *out = std::move(r);
      } else {
        print_result(std::cout, r, Format::table, style_);
      }
      if (timing_) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "Time: %.3f ms\n", ms);
        std::cout << buf;
      }
      std::cout.flush();
      return true;
    } catch (const std::exception& e) {
      std::cout.flush();
      report(e, line);
      return false;
    }
  }
  bool run_sql(const Statement& st) { return query(st.text, {}, st.line); }

  bool on_off(const std::vector<std::string>& args, bool& flag, const char* what) {
    if (args.size() > 2 || (args.size() == 2 && args[1] != "on" && args[1] != "off")) {
      failed("\\" + args[0] + " takes on or off", line_no_);
      return false;
    }
    flag = args.size() == 2 ? args[1] == "on" : !flag;
    std::cout << what << " is " << (flag ? "on" : "off") << ".\n";
    return true;
  }

  // A meta-command (the line after its '\'); false after reporting a failure.
  bool meta(std::string_view text) {
    std::vector<std::string> args;
    std::string error;
    if (!meta_words(text, args, error)) {
      failed(error, line_no_);
      return false;
    }
    if (args.empty()) {
      failed("empty meta-command; try \\? for help", line_no_);
      return false;
    }
    const std::string& cmd = args[0];
    if (cmd == "q") {
      quit_ = true;
      return true;
    }
    if (cmd == "?") {
      std::cout << kHelp;
      return true;
    }
    if (cmd == "x") return on_off(args, style_.expanded, "Expanded display");
    if (cmd == "timing") return on_off(args, timing_, "Timing");
    if (cmd == "pset") {
      if (args.size() < 2 || args[1] != "null" || args.size() > 3) {
        failed("\\pset supports only: \\pset null TEXT", line_no_);
        return false;
      }
      style_.null_text = args.size() == 3 ? args[2] : "";
      std::cout << "Null display is \"" << style_.null_text << "\".\n";
      return true;
    }
    try {
      if (cmd == "l") {
        if (args.size() != 1) return too_many(cmd);
        refresh_binds();
        print_binds(std::cout, binds_, Format::table);
        return true;
      }
      if (cmd == "c") {
        if (args.size() != 2) {
          failed("\\c needs one bind key (" + bind_keys() + ")", line_no_);
          return false;
        }
        refresh_binds();
        const auto* b = find_bind(args[1]);
        if (!b) {
          failed("unknown bind \"" + args[1] + "\" (" + bind_keys() + "); still on \"" + bind_ + "\"", line_no_);
          return false;
        }
        bind_ = b->key;
        std::cout << "You are now on bind \"" << b->key << "\" (" << b->backend << ", " << b->database << ").\n";
        return true;
      }
      if (cmd == "dt" || (cmd == "d" && args.size() == 1)) {
        if (args.size() != 1) return too_many(cmd);
        Result r;
        if (!query(catalog_for(dialect()).tables, {}, line_no_, &r)) return false;
        if (r.rows.empty()) std::cout << "Did not find any tables.\n";
        else print_result(std::cout, r, Format::table, style_);
        return true;
      }
      if (cmd == "d") {
        if (args.size() != 2) return too_many(cmd);
        return describe(args[1]);
      }
    } catch (const std::exception& e) {
      report(e, line_no_);
      return false;
    }
    failed("invalid command \\" + cmd + "; try \\? for help", line_no_);
    return false;
  }
  bool too_many(const std::string& cmd) {
    failed("too many arguments to \\" + cmd, line_no_);
    return false;
  }

  bool describe(const std::string& name) {
    const Dialect d = dialect();
    Value schema = protocol::Null{};
    std::string table = name;
    if (auto dot = name.find('.'); dot != std::string::npos && d != Dialect::sqlite) {
      schema = name.substr(0, dot);
      table = name.substr(dot + 1);
    }
    std::vector<Value> params;
    if (d == Dialect::postgresql) params = {table, schema};
    else if (d == Dialect::mysql) params = {schema, table};
    else params = {table};
    Result r;
    if (!query(catalog_for(d).columns, params, line_no_, &r)) return false;
    if (r.rows.empty()) {
      failed("did not find a table named \"" + name + "\" on bind \"" + bind_ + "\"", line_no_);
      return false;
    }
    std::cout << "Table \"" << name << "\"\n";
    print_result(std::cout, r, Format::table, style_);
    return true;
  }

  const ShellOptions& opts_;
  std::string name_;
  bool interactive_;
  std::optional<Client> client_;
  std::vector<protocol::BindInfo> binds_;
  std::string bind_;
  TableStyle style_;
  bool timing_ = false;
  bool quit_ = false, stopped_ = false;
  int failures_ = 0;
  std::string buffer_;             // input not yet ended by ';'
  std::size_t buffer_line_ = 1;    // line number of buffer_'s first line
  std::size_t line_no_ = 0;
};

// --- the terminal -----------------------------------------------------------------------------

std::string history_path() {
  if (const char* f = std::getenv("BINDS_HISTFILE")) return f;  // "" turns history off
  const char* home = std::getenv("HOME");
  if (!home || !*home) return "";
  return std::string(home) + "/.binds_history";
}

const char* prompt_of(EditLine* el) {
  void* data = nullptr;
  el_get(el, EL_CLIENTDATA, &data);
  return static_cast<const std::string*>(data)->c_str();
}

}  // namespace

int run_script(const ShellOptions& opts, std::istream& in, const std::string& name) {
  Session s(opts, name, false);
  if (!s.start()) return kScriptStopped;
  std::string line;
  bool go_on = true;
  while (go_on && std::getline(in, line)) go_on = s.feed(line);
  if (go_on) s.finish();
  if (s.stopped()) return kScriptStopped;
  return s.failures() ? kScriptHadErrors : kScriptOk;
}

int run_interactive(const ShellOptions& opts) {
  // libedit decodes typed UTF-8 only under a UTF-8 LC_CTYPE; LANG is often unset (ssh, su).
  if (!std::setlocale(LC_CTYPE, "") || MB_CUR_MAX == 1) std::setlocale(LC_CTYPE, "C.UTF-8");

  Session s(opts, "", true);
  if (!s.start()) return 1;
  std::cout << "binds " BINDS_VERSION " shell; \\? for help, \\q to quit.\n";

  EditLine* el = el_init("binds", stdin, stdout, stderr);
  if (!el) {
    std::cerr << "binds: cannot set up line editing on this terminal\n";
    return 1;
  }
  HistEvent ev;
  History* hist = history_init();
  history(hist, &ev, H_SETSIZE, 2000);
  history(hist, &ev, H_SETUNIQUE, 1);
  const std::string hist_file = history_path();
  if (!hist_file.empty()) history(hist, &ev, H_LOAD, hist_file.c_str());  // a missing file is a first run
  std::string prompt;
  el_set(el, EL_EDITOR, "emacs");
  el_set(el, EL_SIGNAL, 1);
  el_set(el, EL_HIST, history, hist);
  el_set(el, EL_CLIENTDATA, &prompt);
  el_set(el, EL_PROMPT, prompt_of);
  el_source(el, nullptr);  // ~/.editrc, as other libedit programs do

  bool history_warned = false;
  SigintInterrupts sigint;
  while (true) {
    // A Ctrl-C that cut a write to the terminal short leaves the stream failed: clear it.
    std::cout.clear();
    std::clearerr(stdout);
    prompt = s.prompt();
    int count = 0;
    const char* got;
    g_interrupted = 0;
    got = el_gets(el, &count);
    if (!got) {
      if (g_interrupted || (count < 0 && errno == EINTR)) {
        std::cout << "^C\n";
        s.clear_input();
        el_reset(el);
        continue;
      }
      std::cout << "\n";  // Ctrl-D: leave on a fresh line
      break;
    }
    std::string line(got, static_cast<std::size_t>(count));
    if (!line.empty() && line.back() == '\n') line.pop_back();
    if (!blank_line(line)) {
      history(hist, &ev, H_ENTER, line.c_str());
      // Saved at every line, so a shell that is killed keeps what was typed.
      if (!hist_file.empty() && history(hist, &ev, H_SAVE, hist_file.c_str()) < 0 && !history_warned) {
        std::cerr << "binds: cannot write the history file " << hist_file << " (history is kept for this session)\n";
        history_warned = true;
      }
    }
    if (!s.feed(line)) break;
  }
  history_end(hist);
  el_end(el);
  return 0;
}

}  // namespace binds::client
