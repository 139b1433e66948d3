#include "binds/backend/mysql_session.hpp"

#include "binds/backend/mysql_types.hpp"

#include <errmsg.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace binds::backend::mysql {

namespace {

using boost::system::error_code;

bool parse_bool(std::string_view v, bool& out) {
  std::string s(v);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "1" || s == "true" || s == "yes" || s == "on") {
    out = true;
    return true;
  }
  if (s == "0" || s == "false" || s == "no" || s == "off") {
    out = false;
    return true;
  }
  return false;
}

const std::string* option(const DatabaseUrl& url, const char* name) {
  auto it = url.options.find(name);
  return it == url.options.end() ? nullptr : &it->second;
}

// Charset names end up in SET NAMES: letters, digits and '_' only.
bool valid_charset(std::string_view s) {
  return !s.empty() && s.size() <= 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

BackendError unavailable(std::string message) {
  BackendError e;
  e.code = protocol::ErrorCode::backend_unavailable;
  e.message = std::move(message);
  return e;
}

}  // namespace

std::optional<std::string> session_params(const DatabaseUrl& url, const ConnectOptions& options,
                                          SessionParams& p) {
  p = SessionParams{};
  p.host = url.host.empty() ? "127.0.0.1" : url.host;
  p.port = url.port.value_or(3306);
  p.user = url.user;
  p.password = url.password;
  p.database = url.database;
  if (!options.application_name.empty()) p.program_name = options.application_name;
  p.connect_timeout = options.connect_timeout;
  if (const auto* v = option(url, "connect_timeout")) {
    int seconds = 0;
    auto res = std::from_chars(v->data(), v->data() + v->size(), seconds);
    if (res.ec != std::errc() || res.ptr != v->data() + v->size() || seconds <= 0) {
      return "invalid connect_timeout option (seconds expected)";
    }
    p.connect_timeout = std::chrono::seconds(seconds);
  }
  if (p.connect_timeout <= std::chrono::milliseconds(0)) p.connect_timeout = std::chrono::seconds(10);
  if (const auto* v = option(url, "charset")) {
    if (!valid_charset(*v)) return "invalid charset option";
    p.charset = *v;
  }
  if (const auto* v = option(url, "unix_socket")) p.unix_socket = *v;

  TlsOptions& t = p.tls;
  auto file = [&](const char* name, std::string& into) {
    if (const auto* v = option(url, name); v && !v->empty()) {
      into = *v;
      t.enabled = true;
    }
  };
  file("ssl_ca", t.ca);
  file("ssl_capath", t.capath);
  file("ssl_cert", t.cert);
  file("ssl_key", t.key);
  file("ssl_cipher", t.cipher);
  if (!t.ca.empty() || !t.capath.empty()) t.verify = true;
  if (const auto* v = option(url, "ssl")) {
    bool on = false;
    if (!parse_bool(*v, on)) return "invalid ssl option (true or false expected)";
    t.enabled = on;
    if (!on) t.verify = false;
  }
  if (const auto* v = option(url, "ssl_verify_cert")) {
    bool on = false;
    if (!parse_bool(*v, on)) return "invalid ssl_verify_cert option (true or false expected)";
    t.verify = on;
    if (on) t.enabled = true;
  }
  if (const auto* v = option(url, "ssl_mode")) {
    std::string m(*v);
    for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (m == "DISABLED" || m == "PREFERRED") {
      t.enabled = t.verify = false;
    } else if (m == "REQUIRED") {
      t.enabled = true;
      t.verify = false;
    } else if (m == "VERIFY_CA" || m == "VERIFY_IDENTITY") {
      t.enabled = t.verify = true;
    } else {
      return "invalid ssl_mode option";
    }
  }
  return std::nullopt;
}

void Handle::reset() {
  if (m_ == nullptr) return;
  // Politely if the COM_QUIT can go out at once; otherwise cut the connection first, after which
  // every read and write of the library fails immediately.
  int status = mysql_close_start(m_);
  if (status != 0) {
    const int fd = mysql_get_socket(m_);
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    for (int round = 0; status != 0; ++round) {
      const int ev = round < 8 ? (status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT))
                               : MYSQL_WAIT_TIMEOUT;
      status = mysql_close_cont(m_, ev != 0 ? ev : MYSQL_WAIT_TIMEOUT);
    }
  }
  m_ = nullptr;
}

Handle new_handle(const SessionParams& p) {
  Handle h(mysql_init(nullptr));
  MYSQL* m = h.get();
  if (m == nullptr) return h;
  // The library runs each call on a stack of its own; TLS needs more than the 60 KiB default.
  const std::size_t stack = p.tls.enabled ? 256 * 1024 : 0;
  mysql_optionsv(m, MYSQL_OPT_NONBLOCK, &stack);
  const auto secs = std::chrono::ceil<std::chrono::seconds>(p.connect_timeout).count();
  const unsigned timeout = static_cast<unsigned>(std::clamp<long long>(secs, 1, 3600));
  mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  // A silent reconnect would drop the session (transaction, variables) behind our back.
  const my_bool no = 0;
  mysql_optionsv(m, MYSQL_OPT_RECONNECT, &no);
  // LOAD DATA LOCAL INFILE would let any client read files the daemon can read (its environment,
  // with every backend password, via /proc/self/environ).
  const unsigned int local_infile = 0;
  mysql_optionsv(m, MYSQL_OPT_LOCAL_INFILE, &local_infile);
  mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, p.charset.c_str());
  // "localhost" would otherwise mean the Unix socket to Connector/C.
  const unsigned protocol = p.unix_socket.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
  mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &protocol);
  mysql_optionsv(m, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", p.program_name.c_str());
  if (p.tls.enabled) {
    auto str = [m](mysql_option o, const std::string& v) {
      if (!v.empty()) mysql_optionsv(m, o, v.c_str());
    };
    str(MYSQL_OPT_SSL_CA, p.tls.ca);
    str(MYSQL_OPT_SSL_CAPATH, p.tls.capath);
    str(MYSQL_OPT_SSL_CERT, p.tls.cert);
    str(MYSQL_OPT_SSL_KEY, p.tls.key);
    str(MYSQL_OPT_SSL_CIPHER, p.tls.cipher);
    const my_bool yes = 1;
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &yes);
    const my_bool verify = p.tls.verify ? 1 : 0;
    mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
  }
  return h;
}

asio::awaitable<std::vector<std::string>> resolve_host(asio::any_io_executor ex,
                                                       const SessionParams& p,
                                                       Clock::time_point deadline,
                                                       std::optional<BackendError>& error) {
  std::vector<std::string> out;
  error_code ec;
  asio::ip::make_address(p.host, ec);
  // The host name must reach Connector/C itself when it checks the certificate against it (its
  // own lookup then blocks this thread for the lookup's duration; see the report).
  if (!p.unix_socket.empty() || !ec || p.host == "localhost" || p.tls.verify) {
    out.push_back(p.unix_socket.empty() ? p.host : p.unix_socket);
    co_return out;
  }
  asio::ip::tcp::resolver resolver(ex);
  asio::steady_timer timer(ex, deadline);
  bool timed_out = false;
  timer.async_wait([&](const error_code& e) {
    if (!e) {
      timed_out = true;
      resolver.cancel();
    }
  });
  auto results = co_await resolver.async_resolve(p.host, std::to_string(p.port),
                                                 asio::redirect_error(asio::use_awaitable, ec));
  timer.cancel();
  if (ec) {
    error = unavailable("cannot resolve MySQL host '" + p.host + "': " +
                        (timed_out ? std::string("timed out") : ec.message()));
    co_return out;
  }
  for (const auto& r : results) {
    std::string a = r.endpoint().address().to_string();
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
  }
  if (out.empty()) error = unavailable("MySQL host '" + p.host + "' has no address");
  co_return out;
}

asio::awaitable<std::optional<BackendError>> connect_handle(Socket& sock, Handle& h,
                                                            const SessionParams& p,
                                                            const std::string& address,
                                                            Clock::time_point deadline) {
  MYSQL* m = h.get();
  MYSQL* ret = nullptr;
  const bool via_socket = !p.unix_socket.empty();
  const char* db = p.database.empty() ? nullptr : p.database.c_str();
  // No CLIENT_FOUND_ROWS: affected rows count changed rows, as the protocol promises.
  co_await drive(
      sock, m,
      [&] {
        return mysql_real_connect_start(&ret, m, via_socket ? nullptr : address.c_str(), p.user.c_str(),
                                        p.password.c_str(), db, via_socket ? 0 : p.port,
                                        via_socket ? address.c_str() : nullptr, 0);
      },
      [&](int ev) { return mysql_real_connect_cont(&ret, m, ev); }, deadline, /*rewatch=*/true);
  if (ret != nullptr) {
    // Connector/C 3.3 falls back to plain text when the server offers no TLS (it refuses only
    // when it also checks the certificate): a URL that asks for TLS gets TLS or no connection,
    // whoever stripped the offer.
    if (p.tls.enabled && mysql_get_ssl_cipher(m) == nullptr) {
      co_return unavailable("TLS is required (URL ssl options) but the MySQL server at " + address +
                            " does not offer it");
    }
    co_return std::nullopt;
  }
  // libmariadb's connect errors name user and host, never the password.
  BackendError e = error_of(m);
  e.code = protocol::ErrorCode::backend_unavailable;
  e.connection_broken = false;
  if (Clock::now() >= deadline) {
    e.message = "connect timed out after " + std::to_string(p.connect_timeout.count()) + " ms (" +
                e.message + ")";
  }
  co_return e;
}

asio::awaitable<std::optional<BackendError>> run_simple(Socket& sock, MYSQL* m, std::string_view sql,
                                                        std::optional<Clock::time_point> deadline) {
  int err = 0;
  co_await drive(
      sock, m, [&] { return mysql_real_query_start(&err, m, sql.data(), static_cast<unsigned long>(sql.size())); },
      [&](int ev) { return mysql_real_query_cont(&err, m, ev); }, deadline);
  if (err != 0) co_return error_of(m);
  if (mysql_field_count(m) != 0) {
    // Not used with statements that return rows; drain one anyway so the session stays in sync.
    MYSQL_RES* res = mysql_use_result(m);
    if (res != nullptr) {
      co_await drive(
          sock, m, [&] { return mysql_free_result_start(res); },
          [&](int ev) { return mysql_free_result_cont(res, ev); }, deadline);
    }
  }
  co_return std::nullopt;
}

asio::awaitable<void> close_handle(Socket& sock, Handle& h, Clock::time_point deadline) {
  MYSQL* m = h.get();
  if (m == nullptr) co_return;
  // Not drive(): the handle is freed when the call finishes, so nothing may look at it after.
  int status = mysql_close_start(m);
  while (status != 0) {
    if (!sock.watching()) sock.watch(mysql_get_socket(m));
    const unsigned library_timeout = (status & MYSQL_WAIT_TIMEOUT) != 0 ? mysql_get_timeout_value_ms(m) : 0;
    int events = co_await sock.wait(status, library_timeout, deadline);
    if (events == 0) events = status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT);
    status = mysql_close_cont(m, events);
  }
  h.forget();
  sock.release();
}

// ---------------------------------------------------------------- Canceller

Canceller::Canceller(SessionParams params, std::string address, unsigned long thread_id)
    : params_(std::move(params)), address_(std::move(address)), thread_id_(thread_id) {}

std::uint64_t Canceller::begin(asio::any_io_executor ex) {
  std::lock_guard lock(mu_);
  running_ = true;
  ex_ = std::move(ex);
  return ++seq_;
}

void Canceller::end() {
  std::lock_guard lock(mu_);
  running_ = false;
}

bool Canceller::delivered(std::uint64_t seq) {
  std::lock_guard lock(mu_);
  return delivered_seq_ == seq;
}

void Canceller::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  running_ = false;
}

void Canceller::cancel() {
  std::uint64_t seq = 0;
  asio::any_io_executor ex;
  {
    std::lock_guard lock(mu_);
    if (!running_ || closed_) return;
    // One KILL at a time per connection: the engine repeats its cancel until the statement ends,
    // and a storm of side connections each sending KILL QUERY to one thread stalls MariaDB itself
    // (seen: KILL QUERY waiting 9 s while new connections timed out in the handshake).
    if (in_flight_ > 0) return;
    seq = seq_;
    ex = ex_;
    ++in_flight_;
  }
  auto self = shared_from_this();
  asio::co_spawn(ex, kill(seq), [self, seq](std::exception_ptr e) {
    if (!e) return;
    // kill() reports its own end; an exception (bad_alloc) skipped that.
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::debug("mysql cancel: KILL QUERY failed: {}", x.what());
    } catch (...) {
    }
    self->finished(seq, false);
  });
}

asio::awaitable<void> Canceller::kill(std::uint64_t seq) {
  const auto deadline = Clock::now() + kKillTimeout;
  auto ex = co_await asio::this_coro::executor;
  Socket sock(ex);
  Handle h = new_handle(params_);
  bool ok = false;
  std::string why;
  if (!h) {
    why = "out of memory";
  } else if (auto err = co_await connect_handle(sock, h, params_, address_, deadline)) {
    why = err->message;
  } else {
    const std::string sql = "KILL QUERY " + std::to_string(thread_id_);
    if (auto qerr = co_await run_simple(sock, h.get(), sql, deadline)) {
      why = qerr->message;
    } else {
      ok = true;
    }
    co_await close_handle(sock, h, Clock::now() + std::chrono::milliseconds(500));
  }
  if (!ok) spdlog::debug("mysql cancel of session {}: KILL QUERY failed: {}", thread_id_, why);
  finished(seq, ok);
}

void Canceller::finished(std::uint64_t seq, bool ok) {
  std::vector<std::shared_ptr<asio::steady_timer>> wake;
  {
    std::lock_guard lock(mu_);
    if (ok) delivered_seq_ = std::max(delivered_seq_, seq);
    if (--in_flight_ == 0) wake.swap(waiters_);
  }
  for (auto& t : wake) {
    // A past expiry ends a pending wait and also one that has not started yet.
    asio::post(t->get_executor(), [t] { t->expires_at(asio::steady_timer::time_point::min()); });
  }
}

bool Canceller::settled() {
  std::lock_guard lock(mu_);
  return in_flight_ == 0;
}

asio::awaitable<void> Canceller::quiesce() {
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    // Every KILL gives up by its deadline; the expiry only bounds a lost wake-up.
    auto timer = std::make_shared<asio::steady_timer>(ex, kKillTimeout + std::chrono::seconds(1));
    {
      std::lock_guard lock(mu_);
      if (in_flight_ == 0) co_return;
      waiters_.push_back(timer);
    }
    error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace binds::backend::mysql
