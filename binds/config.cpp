#include "binds/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>

namespace binds {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDurationHint = "(use e.g. 500ms, 5s, 10m, 1h)";
// sockaddr_un::sun_path is 108 bytes on Linux, including the terminating NUL.
constexpr std::size_t kMaxUnixPath = 107;

// A YAML value together with where it sits, so every check can report FILE:LINE: key.path.
struct Item {
  std::string path;
  YAML::Node node;
  int line = 1;  // 1-based
};

struct Entry {
  std::string key;
  int key_line;
  Item value;
};

class Reader {
 public:
  Reader(std::string file, std::string base_dir) : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  [[noreturn]] void fail(int line, const std::string& path, const std::string& msg) const {
    std::string out = file_ + ':' + std::to_string(line) + ": ";
    if (!path.empty()) out += path + ": ";
    out += msg;
    // Defence in depth: a password that reached an unexpected place (say, `default: ${PW}`)
    // must still not be printed.
    for (const auto& s : secrets_) {
      for (auto pos = out.find(s); pos != std::string::npos; pos = out.find(s, pos + 3)) out.replace(pos, s.size(), "***");
    }
    throw ConfigError(out);
  }
  [[noreturn]] void fail(const Item& it, const std::string& msg) const { fail(it.line, it.path, msg); }

  void warn(const Item& it, const std::string& msg) {
    warnings_.push_back(file_ + ':' + std::to_string(it.line) + ": " + (it.path.empty() ? "" : it.path + ": ") + msg);
  }
  std::vector<std::string> take_warnings() { return std::move(warnings_); }

  const std::string& base_dir() const { return base_dir_; }

  static int line_of(const YAML::Node& node, int fallback) {
    // yaml-cpp marks an empty value (`key:`) at the following line, so trust the key instead.
    if (!node || node.IsNull() || node.Mark().is_null()) return fallback;
    return node.Mark().line + 1;
  }

  static std::string kind(const YAML::Node& n) {
    if (!n || n.IsNull()) return "nothing";
    if (n.IsMap()) return "a map";
    if (n.IsSequence()) return "a list";
    return "a scalar";
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
  }

  // The map's entries in file order. An empty `allowed` accepts any key (used for binds).
  std::vector<Entry> entries(const Item& map, const std::vector<std::string>& allowed) const {
    if (!map.node.IsMap()) fail(map, "must be a map (got " + kind(map.node) + ")");
    std::vector<Entry> out;
    std::set<std::string> seen;
    for (auto it = map.node.begin(); it != map.node.end(); ++it) {
      const int key_line = line_of(it->first, map.line);
      if (!it->first.IsScalar()) fail(key_line, map.path, "keys must be plain strings (got " + kind(it->first) + ")");
      const std::string key = it->first.Scalar();
      const std::string path = map.path.empty() ? key : map.path + '.' + key;
      // yaml-cpp keeps duplicate keys and lookups would silently pick one of them.
      if (!seen.insert(key).second) fail(key_line, path, "duplicate key");
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        fail(key_line, path, "unknown key (allowed: " + join(allowed) + ")");
      }
      out.push_back(Entry{key, key_line, Item{path, it->second, line_of(it->second, key_line)}});
    }
    return out;
  }

  static const Entry* find(const std::vector<Entry>& entries, std::string_view key) {
    for (const auto& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }

  // A scalar with ${NAME} expanded. In a URL's user:password part the expanded text is
  // percent-encoded, so a password from the environment may hold any character ('@', '/',
  // '%'...) without breaking the URL or leaking its tail into error messages.
  std::string str(const Item& it, bool is_url = false) {
    if (!it.node.IsScalar()) fail(it, "must be a string (got " + kind(it.node) + ")");
    const std::string& raw = it.node.Scalar();
    std::size_t userinfo_end = 0;
    if (is_url) {
      if (const auto sep = raw.find("://"); sep != std::string::npos) {
        const auto auth_end = raw.find_first_of("/?", sep + 3);
        const auto at = raw.substr(0, auth_end).rfind('@');
        if (at != std::string::npos && at > sep) userinfo_end = at;
      }
    }
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '$') {
        out += raw[i];
        continue;
      }
      if (i + 1 < raw.size() && raw[i + 1] == '$') {
        out += '$';
        ++i;
        continue;
      }
      if (i + 1 >= raw.size() || raw[i + 1] != '{') {
        out += '$';
        continue;
      }
      const auto close = raw.find('}', i + 2);
      if (close == std::string::npos) fail(it, "unterminated ${ (write $$ for a literal $)");
      const std::string name = raw.substr(i + 2, close - i - 2);
      const bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                         std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
      if (!valid) fail(it, "bad environment variable name in ${" + name + "} (use letters, digits and _)");
      const char* value = std::getenv(name.c_str());
      if (!value) fail(it, "environment variable " + name + " is not set");
      if (i < userinfo_end) {
        if (std::strlen(value) >= 3) secrets_.emplace_back(value);
        out += encode_all(value);
      } else {
        out += value;
      }
      i = close;
    }
    return out;
  }

  // Integers are read from the expanded text so `max: ${POOL_MAX}` works too.
  long long integer(const Item& it, long long min, long long max) {
    const std::string s = str(it);
    long long v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || p != s.data() + s.size() || (ec != std::errc{} && ec != std::errc::result_out_of_range)) {
      fail(it, "must be an integer (got \"" + s + "\")");
    }
    // Beyond long long: report it like any other out-of-bounds value.
    const bool huge = ec == std::errc::result_out_of_range;
    if (huge && s[0] == '-') v = min - 1;
    if (huge && s[0] != '-') v = max + 1;
    if (v < min) fail(it, "must be >= " + std::to_string(min) + " (got " + s + ")");
    if (v > max) fail(it, "must be <= " + std::to_string(max) + " (got " + s + ")");
    return v;
  }

  Millis duration(const Item& it) {
    const std::string s = str(it);
    Millis d{};
    try {
      d = parse_duration(s);
    } catch (const std::invalid_argument& e) {
      fail(it, e.what());
    }
    if (d.count() <= 0) fail(it, "must be > 0 (got \"" + s + "\")");
    return d;
  }

  // Like duration(), but "0" or "off" turns the limit off (0 ms).
  Millis duration_or_off(const Item& it) {
    const std::string s = str(it);
    if (s == "0" || s == "off") return Millis{0};
    return duration(it);
  }

  std::string resolve(const std::string& p) const {
    if (fs::path(p).is_absolute()) return p;
    return (fs::path(base_dir_) / p).lexically_normal().string();
  }

 private:
  std::vector<std::string> warnings_;
  static std::string encode_all(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        out += '%';
        out += kHex[u >> 4];
        out += kHex[u & 0xf];
      }
    }
    return out;
  }

  std::string file_;
  std::string base_dir_;
  std::vector<std::string> secrets_;
};

bool valid_bind_key(const std::string& k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// "host:port" or "[v6]:port"; port 0 lets the OS choose (tests rely on it).
std::string check_tcp(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return "expected [ipv6]:port (got \"" + s + "\")";
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return "expected host:port (got \"" + s + "\")";
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string::npos) return "IPv6 addresses need brackets, e.g. [::1]:7878 (got \"" + s + "\")";
  }
  if (host.empty()) return "missing host in \"" + s + "\" (e.g. 127.0.0.1:7878 or [::1]:7878)";
  if (!all_digits(port) || port.size() > 5 || std::stoi(port) > 65535) {
    return "port must be a number from 0 to 65535 (got \"" + port + "\")";
  }
  return {};
}

PoolSettings read_pool(Reader& r, const Item& item) {
  PoolSettings pool;
  const auto es = r.entries(item, {"max", "min", "acquire_timeout", "idle_timeout", "max_lifetime"});
  const Item* min_item = nullptr;
  for (const auto& e : es) {
    if (e.key == "max") {
      pool.max = static_cast<int>(r.integer(e.value, 1, 10000));
    } else if (e.key == "min") {
      pool.min = static_cast<int>(r.integer(e.value, 0, 10000));
      min_item = &e.value;
    } else if (e.key == "acquire_timeout") {
      pool.acquire_timeout = r.duration(e.value);
    } else if (e.key == "idle_timeout") {
      pool.idle_timeout = r.duration(e.value);
    } else if (e.key == "max_lifetime") {
      pool.max_lifetime = r.duration(e.value);
    }
  }
  if (pool.min > pool.max) {
    const Item& at = min_item ? *min_item : item;
    r.fail(at.line, item.path + ".min",
           "must be <= max (got min " + std::to_string(pool.min) + ", max " + std::to_string(pool.max) + ")");
  }
  return pool;
}

void read_url(Reader& r, const Item& item, BindConfig& b) {
  const std::string url = r.str(item, /*is_url=*/true);
  try {
    b.url = parse_url(url, r.base_dir());
  } catch (const UrlError& err) {
    r.fail(item, err.what());
  }
  // sqlite:///rel.db is relative to the config folder; one that climbs out of it is legal but
  // rarely meant (a file the daemon may write anywhere it can reach).
  if (b.url.backend == Backend::sqlite && !b.url.sqlite_memory && !r.base_dir().empty()) {
    // sqlite:///rel.db is relative, sqlite:////abs.db absolute.
    const auto sep = url.find("://");
    const std::string_view path = std::string_view(url).substr(sep == std::string::npos ? url.size() : sep + 3);
    const bool relative = path.size() > 1 && path[0] == '/' && path[1] != '/';
    const fs::path rel = fs::path(b.url.database).lexically_normal().lexically_relative(r.base_dir());
    if (relative && (rel.empty() || *rel.begin() == "..")) {
      r.warn(item, "the SQLite file " + b.url.database +
                       " is outside the config folder (the relative path climbs out of " + r.base_dir() + ")");
    }
  }
}

BindConfig read_bind(Reader& r, const Entry& e) {
  BindConfig b;
  b.key = e.key;
  if (!valid_bind_key(e.key)) {
    r.fail(e.key_line, e.value.path,
           "bad bind name \"" + e.key + "\" (use letters, digits, '_', '.' and '-')");
  }
  if (e.value.node.IsMap()) {
    const auto es =
        r.entries(e.value, {"url", "pool", "statement_timeout", "idle_in_transaction_timeout", "reset", "attach_dir"});
    const Entry* url = Reader::find(es, "url");
    if (!url) r.fail(e.value.line, e.value.path + ".url", "missing (each bind needs a database URL)");
    read_url(r, url->value, b);
    if (const Entry* pool = Reader::find(es, "pool")) b.pool = read_pool(r, pool->value);
    if (const Entry* st = Reader::find(es, "statement_timeout")) b.statement_timeout = r.duration_or_off(st->value);
    if (const Entry* it = Reader::find(es, "idle_in_transaction_timeout"))
      b.idle_in_transaction_timeout = r.duration_or_off(it->value);
    if (const Entry* rs = Reader::find(es, "reset")) {
      const std::string v = r.str(rs->value);
      if (v == "auto") b.reset = ResetPolicy::automatic;
      else if (v == "always") b.reset = ResetPolicy::always;
      else if (v == "seen") b.reset = ResetPolicy::seen;
      else r.fail(rs->value, "must be auto, always or seen (got \"" + v + "\")");
    }
    if (const Entry* ad = Reader::find(es, "attach_dir")) {
      if (b.url.backend != Backend::sqlite) r.fail(ad->value, "only SQLite binds attach files");
      std::error_code ec;
      const fs::path dir = fs::weakly_canonical(r.resolve(r.str(ad->value)), ec);
      if (ec || !fs::is_directory(dir, ec)) r.fail(ad->value, "no such folder: " + r.resolve(r.str(ad->value)));
      b.attach_dir = dir.string();
    }
    return b;
  }
  if (!e.value.node.IsScalar()) {
    r.fail(e.value, "must be a database URL or a map with url and pool (got " + Reader::kind(e.value.node) + ")");
  }
  read_url(r, e.value, b);
  return b;
}

void read_listen(Reader& r, const Item& item, ListenConfig& out) {
  for (const auto& e : r.entries(item, {"tcp", "unix"})) {
    if (e.value.node.IsNull()) continue;  // `tcp:` left empty reads as "not configured"
    const std::string v = r.str(e.value);
    if (v.empty()) r.fail(e.value, "must not be empty");
    if (e.key == "tcp") {
      if (auto why = check_tcp(v); !why.empty()) r.fail(e.value, why);
      out.tcp = v;
    } else {
      out.unix = r.resolve(v);
      if (out.unix.size() > kMaxUnixPath) {
        r.fail(e.value, "socket path \"" + out.unix + "\" is too long (" + std::to_string(out.unix.size()) +
                            " bytes, at most " + std::to_string(kMaxUnixPath) + ")");
      }
    }
  }
  if (out.tcp.empty() && out.unix.empty()) r.fail(item, "give at least one of listen.tcp and listen.unix");
}

void read_limits(Reader& r, const Item& item, Limits& out) {
  constexpr long long u32 = std::numeric_limits<std::uint32_t>::max();
  for (const auto& e : r.entries(item, {"max_frame", "batch_rows", "batch_bytes", "client_buffer", "max_in_flight",
                                        "max_clients", "read_timeout", "write_timeout"})) {
    if (e.key == "read_timeout" || e.key == "write_timeout") {
      const Millis d = r.duration(e.value);
      if (d.count() < 100) r.fail(e.value, "must be at least 100ms");
      (e.key == "read_timeout" ? out.read_timeout : out.write_timeout) = d;
    } else if (e.key == "max_frame") {
      out.max_frame = static_cast<std::uint32_t>(r.integer(e.value, 4096, 1LL << 30));
    } else {
      const auto v = static_cast<std::uint32_t>(r.integer(e.value, 1, u32));
      if (e.key == "batch_rows") out.batch_rows = v;
      if (e.key == "batch_bytes") out.batch_bytes = v;
      if (e.key == "client_buffer") out.client_buffer = v;
      if (e.key == "max_in_flight") out.max_in_flight = v;
      if (e.key == "max_clients") out.max_clients = v;
    }
  }
}

}  // namespace

std::string format_duration(Millis d) {
  const auto n = d.count();
  if (n == 0) return "0";
  struct Unit {
    std::int64_t ms;
    const char* suffix;
  };
  for (const Unit u : {Unit{86400000, "d"}, Unit{3600000, "h"}, Unit{60000, "m"}, Unit{1000, "s"}})
    if (n % u.ms == 0) return std::to_string(n / u.ms) + u.suffix;
  return std::to_string(n) + "ms";
}

Millis parse_duration(const std::string& s) {
  const auto bad = [&](std::string_view why) {
    return std::invalid_argument("bad duration \"" + s + "\"" + std::string(why));
  };
  if (!s.empty() && s[0] == '-') throw bad(": must not be negative");
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits == 0) throw bad(" " + std::string(kDurationHint));
  const std::string_view unit = std::string_view(s).substr(digits);
  std::int64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m") scale = 60 * 1000;
  else if (unit == "h") scale = 60 * 60 * 1000;
  else if (unit == "d") scale = 24 * 60 * 60 * 1000;
  else throw bad(" " + std::string(kDurationHint));
  // Capped well below what std::chrono can add to steady_clock::now() in nanoseconds.
  constexpr std::int64_t kMaxMs = 36500LL * 24 * 60 * 60 * 1000;
  std::int64_t n = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + digits, n);
  if (ec != std::errc{} || n > kMaxMs / scale) throw bad(": too large (at most 36500d)");
  return Millis{n * scale};
}

std::shared_ptr<const Config> load_config_text(const std::string& text, const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  const std::string base_dir = ec ? std::string() : abs.lexically_normal().parent_path().string();
  Reader r(path, base_dir);

  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    r.fail(e.mark.is_null() ? 1 : e.mark.line + 1, "", "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    r.fail(e.mark.is_null() ? 1 : e.mark.line + 1, "", std::string("YAML error: ") + e.msg);
  }
  if (!root || root.IsNull()) r.fail(1, "", "config is empty (expected a map with listen and binds)");
  const Item top{"", root, Reader::line_of(root, 1)};
  if (!root.IsMap()) r.fail(top, "config must be a map with listen and binds (got " + Reader::kind(root) + ")");

  auto cfg = std::make_shared<Config>();
  cfg->source = path;
  const auto es = r.entries(top, {"listen", "default", "binds", "limits", "metrics", "shutdown", "stats_interval"});

  // Binds come first so their passwords are known to fail()'s scrubbing for everything after.
  const Entry* binds = Reader::find(es, "binds");
  if (!binds) r.fail(top.line, "binds", "missing (define at least one bind)");
  const auto bind_entries = r.entries(binds->value, {});
  if (bind_entries.empty()) r.fail(binds->value, "must define at least one bind");
  for (const auto& e : bind_entries) cfg->binds.emplace(e.key, read_bind(r, e));

  const Entry* listen = Reader::find(es, "listen");
  if (!listen) r.fail(top.line, "listen", "missing (give listen.tcp and/or listen.unix)");
  read_listen(r, listen->value, cfg->listen);

  if (const Entry* limits = Reader::find(es, "limits")) read_limits(r, limits->value, cfg->limits);
  if (const Entry* m = Reader::find(es, "metrics")) {
    for (const auto& e : r.entries(m->value, {"listen"})) {
      const std::string v = r.str(e.value);
      if (auto why = check_tcp(v); !why.empty()) r.fail(e.value, why);
      cfg->metrics_listen = v;
    }
  }
  if (const Entry* sd = Reader::find(es, "shutdown")) {
    for (const auto& e : r.entries(sd->value, {"grace", "drain_timeout"})) {
      if (e.key == "grace") cfg->shutdown_grace = r.duration(e.value);
      else cfg->drain_timeout = r.duration(e.value);
    }
  }
  if (const Entry* si = Reader::find(es, "stats_interval")) cfg->stats_interval = r.duration_or_off(si->value);

  std::vector<std::string> names;
  for (const auto& [k, b] : cfg->binds) names.push_back(k);
  if (const Entry* def = Reader::find(es, "default")) {
    cfg->default_bind = r.str(def->value);
    if (!cfg->find(cfg->default_bind)) {
      r.fail(def->value, "no bind named \"" + cfg->default_bind + "\" (have: " + Reader::join(names) + ")");
    }
  } else if (cfg->binds.size() == 1) {
    cfg->default_bind = cfg->binds.begin()->first;
  } else {
    r.fail(top.line, "default", "missing; required when there is more than one bind (have: " + Reader::join(names) + ")");
  }
  cfg->warnings = r.take_warnings();
  return cfg;
}

std::shared_ptr<const Config> load_config_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw ConfigError(path + ": cannot read config file: is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read config file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read config file: read error");
  return load_config_text(text.str(), path);
}

}  // namespace binds
