#include "binds/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>

namespace binds {

namespace {

constexpr auto npos = std::string_view::npos;

constexpr std::string_view kAccepted =
    "postgresql, postgres, mysql, mysqldb, mariadb, sqlite "
    "(each optionally with +driver, e.g. postgresql+psycopg2)";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Query options that drivers accept as a password must be hidden as well as the userinfo one.
bool is_secret_option(std::string_view key) {
  const std::string k = lower(key);
  return k == "password" || k == "passwd" || k == "pwd" || k == "sslpassword";
}

// Hides secret options in a raw "k=v&k=v" string without decoding it, so it works on bad input.
std::string redact_query_raw(std::string_view query) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const auto amp = query.find('&', pos);
    const auto seg = query.substr(pos, amp == npos ? npos : amp - pos);
    const auto eq = seg.find('=');
    if (eq != npos && is_secret_option(seg.substr(0, eq))) {
      out.append(seg.substr(0, eq)).append("=***");
    } else {
      out.append(seg);
    }
    if (amp == npos) break;
    out += '&';
    pos = amp + 1;
  }
  return out;
}

// Hides the value of every secret option anywhere in the text (after a '?' or '&'), whatever
// comes before it: on unparseable input the query string cannot be located reliably.
std::string redact_secret_options_anywhere(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    out += c;
    ++i;
    if (c != '?' && c != '&') continue;
    const auto eq = text.find('=', i);
    if (eq == npos) continue;
    const auto key = text.substr(i, eq - i);
    if (key.find_first_of("&?") != npos || !is_secret_option(key)) continue;
    const auto end = text.find('&', eq);
    out.append(key).append("=***");
    i = end == npos ? text.size() : end;
  }
  return out;
}

// Used on input we may not be able to parse, so it cannot rely on the URL being well formed.
// Secret query options are hidden first, wherever they stand; then everything from the first ':'
// after "://" to the LAST '@': that over-redacts strange URLs (an '@' in the query hides the host
// too) but can never show a password, even one containing unescaped '@', '/' or '?'.
std::string redact_raw(std::string_view raw) {
  const std::string masked = redact_secret_options_anywhere(raw);
  const std::string_view url = masked;
  std::size_t start = 0;
  if (const auto p = url.find("://"); p != npos) start = p + 3;
  const std::string_view rest = url.substr(start);
  std::string out(url.substr(0, start));
  std::size_t tail = 0;  // where the unredacted remainder of `rest` starts
  const auto at = rest.rfind('@');
  if (at != npos) {
    const auto colon = rest.find(':');
    if (colon != npos && colon < at) {
      out.append(rest.substr(0, colon)).append(":***");
      tail = at;
    }
  }
  const auto q = rest.find('?', at == npos ? tail : at);
  if (q == npos) return out.append(rest.substr(tail));
  out.append(rest.substr(tail, q + 1 - tail));
  return out.append(redact_query_raw(rest.substr(q + 1)));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Returns nullopt on a malformed escape. %00 is refused because every driver takes these
// values as C strings, where a NUL would silently truncate them.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string percent_encode(std::string_view s, std::string_view unsafe) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '%' || u <= 0x20 || u == 0x7f || unsafe.find(c) != npos) {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<Backend> backend_for(std::string_view dialect) {
  if (dialect == "postgresql" || dialect == "postgres") return Backend::postgresql;
  if (dialect == "mysql" || dialect == "mysqldb" || dialect == "mariadb") return Backend::mysql;
  if (dialect == "sqlite") return Backend::sqlite;
  return std::nullopt;
}

}  // namespace

std::string_view backend_name(Backend b) {
  switch (b) {
    case Backend::postgresql: return "postgresql";
    case Backend::mysql: return "mysql";
    case Backend::sqlite: return "sqlite";
  }
  return "unknown";
}

std::string DatabaseUrl::redacted() const {
  std::string out = scheme + "://";
  if (!user.empty() || !password.empty()) {
    out += percent_encode(user, ":@/?#[]");
    if (!password.empty()) out += ":***";
    out += '@';
  }
  if (host.find(':') != std::string::npos) {
    out += '[' + host + ']';
  } else {
    out += host;
  }
  if (port) out += ':' + std::to_string(*port);
  // For SQLite an absolute path keeps its own leading '/', giving the usual four slashes.
  if (backend == Backend::sqlite ? !sqlite_memory : !database.empty()) {
    out += '/' + percent_encode(database, "?#");
  }
  char sep = '?';
  for (const auto& [k, v] : options) {
    out += sep;
    out += percent_encode(k, "&=+#");
    out += '=';
    out += is_secret_option(k) ? std::string("***") : percent_encode(v, "&=+#");
    sep = '&';
  }
  return out;
}

DatabaseUrl parse_url(std::string_view url, std::string_view base_dir) {
  auto fail = [&](const std::string& why) {
    return UrlError("invalid database URL \"" + redact_raw(url) + "\": " + why);
  };
  if (url.empty()) {
    throw UrlError("empty database URL (expected e.g. postgresql://user:password@host/dbname)");
  }
  if (url.find_first_of(" \t\r\n") != npos) {
    throw fail("contains whitespace (percent-encode it, e.g. %20)");
  }
  const auto sep = url.find("://");
  if (sep == npos) throw fail("missing \"://\" (expected e.g. postgresql://user:password@host/dbname)");

  DatabaseUrl u;
  u.scheme = std::string(url.substr(0, sep));
  const auto plus = u.scheme.find('+');
  const std::string dialect = lower(std::string_view(u.scheme).substr(0, plus));
  if (u.scheme.empty()) throw fail("missing scheme before \"://\" (accepted: " + std::string(kAccepted) + ")");
  const auto backend = backend_for(dialect);
  if (!backend) {
    throw fail("unknown scheme \"" + u.scheme + "\" (accepted: " + std::string(kAccepted) + ")");
  }
  if (plus != std::string::npos && plus + 1 == u.scheme.size()) {
    throw fail("empty driver name after '+' in scheme \"" + u.scheme + "\"");
  }
  u.backend = *backend;

  // Mirrors SQLAlchemy's URL regex: the user name stops at ':' or '/', the password runs to
  // the first '@' after it. Without a password, the last '@' before the host ends the user.
  const std::string_view rest = url.substr(sep + 3);
  std::string_view raw_user, raw_password;
  bool has_password = false;
  std::size_t host_start = 0;
  const auto user_end = rest.find_first_of(":/?");
  if (user_end != npos && rest[user_end] == ':') {
    if (const auto at = rest.find('@', user_end + 1); at != npos) {
      raw_user = rest.substr(0, user_end);
      raw_password = rest.substr(user_end + 1, at - user_end - 1);
      has_password = true;
      host_start = at + 1;
    }
  }
  if (!has_password) {
    const auto region = rest.substr(0, user_end);
    if (const auto at = region.rfind('@'); at != npos) {
      raw_user = region.substr(0, at);
      host_start = at + 1;
    }
  }

  const auto hostport_end = rest.find_first_of("/?", host_start);
  const std::string_view hostport = rest.substr(host_start, hostport_end == npos ? npos : hostport_end - host_start);
  std::string_view port_text;
  bool has_port = false;
  if (!hostport.empty() && hostport.front() == '[') {
    const auto close = hostport.find(']');
    if (close == npos) throw fail("unterminated '[' in IPv6 host");
    u.host = std::string(hostport.substr(1, close - 1));
    if (u.host.empty()) throw fail("empty IPv6 host \"[]\"");
    const auto after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw fail("unexpected characters after IPv6 host (expected ':port')");
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    const auto colon = hostport.find(':');
    u.host = std::string(hostport.substr(0, colon));
    if (colon != npos) {
      port_text = hostport.substr(colon + 1);
      has_port = true;
    }
  }
  if (u.host.find('@') != std::string::npos) {
    throw fail("unexpected '@' in host (percent-encode '@' in the user name or password as %40)");
  }
  if (has_port) {
    if (port_text.empty()) throw fail("empty port after ':'");
    unsigned value = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto [p, ec] = std::from_chars(port_text.data(), end, value);
    if (ec != std::errc{} || p != end || value < 1 || value > 65535) {
      throw fail("port must be a number from 1 to 65535 (got \"" + std::string(port_text) + "\")");
    }
    u.port = static_cast<std::uint16_t>(value);
  }

  std::string_view raw_database, raw_query;
  bool has_query = false;
  if (hostport_end != npos) {
    std::size_t query_start = npos;
    if (rest[hostport_end] == '/') {
      const auto q = rest.find('?', hostport_end + 1);
      raw_database = rest.substr(hostport_end + 1, q == npos ? npos : q - hostport_end - 1);
      query_start = q;
    } else {
      query_start = hostport_end;
    }
    if (query_start != npos) {
      raw_query = rest.substr(query_start + 1);
      has_query = true;
    }
  }

  auto decode = [&](std::string_view s, const char* what, bool plus_is_space = false) {
    auto d = percent_decode(s, plus_is_space);
    if (!d) throw fail(std::string("bad percent escape in ") + what + " (use %XX with two hex digits; %00 is not allowed)");
    return std::move(*d);
  };
  u.user = decode(raw_user, "user name");
  u.password = decode(raw_password, "password");
  u.database = decode(raw_database, "database name");

  if (has_query) {
    std::size_t pos = 0;
    while (pos <= raw_query.size()) {
      const auto amp = raw_query.find('&', pos);
      const auto seg = raw_query.substr(pos, amp == npos ? npos : amp - pos);
      pos = amp == npos ? raw_query.size() + 1 : amp + 1;
      if (seg.empty()) continue;
      const auto eq = seg.find('=');
      std::string key = decode(seg.substr(0, eq), "query option name", true);
      std::string value = eq == npos ? std::string() : decode(seg.substr(eq + 1), "query option value", true);
      if (key.empty()) throw fail("empty option name in query string");
      if (u.options.count(key)) throw fail("duplicate option \"" + key + "\" in query string");
      u.options.emplace(std::move(key), std::move(value));
    }
  }

  if (u.backend == Backend::sqlite) {
    if (!u.host.empty()) {
      throw fail("a sqlite URL has no host (got \"" + u.host +
                 "\"); use sqlite:////absolute/path.db (four slashes) or sqlite:///relative/path.db");
    }
    if (!raw_user.empty() || has_password || has_port) {
      throw fail("a sqlite URL takes no user, password or port; use sqlite:////absolute/path.db or "
                 "sqlite:///relative/path.db");
    }
    if (u.database.empty() || u.database == ":memory:") {
      u.sqlite_memory = true;
      u.database.clear();
    } else if (!base_dir.empty() && std::filesystem::path(u.database).is_relative()) {
      u.database = (std::filesystem::path(base_dir) / u.database).lexically_normal().string();
    }
  }
  return u;
}

}  // namespace binds
