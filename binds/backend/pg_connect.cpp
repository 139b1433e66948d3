#include "binds/backend/pg_connect.hpp"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>

#include "binds/socket_wakeups.hpp"
#include "protocol/pg/auth.hpp"
#include "protocol/pg/backend.hpp"
#include "protocol/pg/frontend.hpp"

// GCC 12 pairs Asio 1.74's recycling allocator for coroutine frames (allocated through
// thread_info_base, freed by awaitable_frame_base's sized delete) as mismatched: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace binds::backend::pg {
namespace {

// libpq connection keywords: they configure the client, so they are never passed to the server
// as runtime parameters. Those this backend implements are read in parse_settings().
constexpr std::string_view kLibpqKeywords[] = {
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding",
    "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode", "requiressl",
    "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode", "sslrootcert", "sslcrl",
    "sslcrldir", "sslsni", "requirepeer", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "krbsrvname", "gsslib", "gssdelegation", "service", "target_session_attrs",
    "load_balance_hosts", "require_auth"};

bool is_libpq_keyword(std::string_view k) {
  return std::find(std::begin(kLibpqKeywords), std::end(kLibpqKeywords), k) !=
         std::end(kLibpqKeywords);
}

// A runtime parameter name PostgreSQL could accept in a startup packet (GUC names, including
// custom "ext.name" ones); anything else is not forwarded.
bool is_parameter_name(std::string_view k) {
  if (k.empty() || !(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

std::optional<SslMode> parse_sslmode(std::string_view v) {
  if (v == "disable") return SslMode::disable;
  if (v == "allow") return SslMode::allow;
  if (v == "prefer") return SslMode::prefer;
  if (v == "require") return SslMode::require;
  if (v == "verify-ca") return SslMode::verify_ca;
  if (v == "verify-full") return SslMode::verify_full;
  return std::nullopt;
}

const std::string* option(const DatabaseUrl& url, const char* key) {
  auto it = url.options.find(key);
  return it == url.options.end() ? nullptr : &it->second;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Wipes buffers that held a password or something derived from it.
void cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

std::shared_ptr<asio::ssl::context> make_tls_context(const Settings& s, std::string& error) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  error_code ec;
  // TLS 1.2 at least, like libpq's default ssl_min_protocol_version.
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  // require with an explicit root certificate verifies the chain, as libpq does when it finds one.
  const bool verify = s.sslmode == SslMode::verify_ca || s.sslmode == SslMode::verify_full ||
                      (s.sslmode == SslMode::require && !s.sslrootcert.empty());
  if (verify) {
    std::string root = s.sslrootcert;
    if (root.empty()) {
      const char* home = std::getenv("HOME");
      root = std::string(home ? home : "") + "/.postgresql/root.crt";
    }
    if (root == "system") {
      ctx->set_default_verify_paths(ec);
    } else {
      std::error_code fs_ec;
      if (!std::filesystem::exists(root, fs_ec)) {
        error = "root certificate file \"" + root +
                "\" does not exist; provide one (sslrootcert) or change sslmode";
        return nullptr;
      }
      ctx->load_verify_file(root, ec);
    }
    if (ec) {
      error = "could not read root certificate file \"" + root + "\": " + ec.message();
      return nullptr;
    }
    ctx->set_verify_mode(asio::ssl::verify_peer, ec);
    if (s.sslmode == SslMode::verify_full) {
      ctx->set_verify_callback(asio::ssl::host_name_verification(s.host), ec);
    }
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
  }
  if (!s.sslcert.empty()) {
    ctx->use_certificate_chain_file(s.sslcert, ec);
    if (ec) {
      error = "could not load client certificate \"" + s.sslcert + "\": " + ec.message();
      return nullptr;
    }
    ctx->use_private_key_file(s.sslkey.empty() ? s.sslcert : s.sslkey, asio::ssl::context::pem, ec);
    if (ec) {
      error = "could not load client key: " + ec.message();
      return nullptr;
    }
  }
  return ctx;
}

void set_sni(tls_stream& st, const Settings& s) {
  if (s.sslsni && !is_ip_literal(s.host)) SSL_set_tlsext_host_name(st.native_handle(), s.host.c_str());
}

struct Failure {
  std::string message;
  std::string sqlstate;
  bool from_server = false;      // an ErrorResponse: another address would say the same
  bool handshake_failed = false;  // TLS negotiation failed (prefer falls back to plain)
};

std::string read_error_text(const error_code& ec) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset) {
    return "server closed the connection unexpectedly";
  }
  return ec.message();
}

// Startup message, authentication, and the parameters up to the first ReadyForQuery.
asio::awaitable<std::optional<Session>> start_session(Transport& t, const Settings& s,
                                                      Failure& fail) {
  Reader reader;
  std::string out;
  error_code ec;

  std::vector<pgwire::StartupParam> extra;
  extra.reserve(s.parameters.size());
  for (const auto& [k, v] : s.parameters) extra.push_back({k, v});
  if (pgwire::encode_startup_message(out, s.user, s.database, extra) != pgwire::Error::ok) {
    fail.message = "user, database or a parameter contains a NUL byte";
    co_return std::nullopt;
  }
  co_await t.write_all(asio::buffer(out), ec);
  if (ec) {
    fail.message = read_error_text(ec);
    co_return std::nullopt;
  }

  std::optional<pgwire::ScramClient> scram;
  // Everything but the transport: `t` stays where the deadline can close it until the end.
  CancelTarget cancel;
  std::vector<std::pair<std::string, std::string>> parameters;
  Transport& tr = t;
  auto need_password = [&] {
    if (!s.password.empty()) return true;
    fail.message = "the server requested password authentication but the URL has no password";
    return false;
  };
  auto send = [&]() -> asio::awaitable<bool> {
    co_await tr.write_all(asio::buffer(out), ec);
    cleanse(out);
    if (ec) fail.message = read_error_text(ec);
    co_return !ec;
  };

  for (;;) {
    pgwire::Message m;
    Reader::Header h;
    const auto f = reader.next(m, h);
    if (f == Reader::Frame::error) {
      fail.message = "invalid message framing from the server during startup";
      co_return std::nullopt;
    }
    if (f == Reader::Frame::partial) {
      if (h.total > (1u << 20)) {
        fail.message = "oversized message from the server during startup";
        co_return std::nullopt;
      }
      auto buf = reader.prepare(h.total);
      const std::size_t n = co_await tr.read_some(asio::buffer(buf.data(), buf.size()), ec);
      if (ec) {
        fail.message = read_error_text(ec);
        co_return std::nullopt;
      }
      reader.commit(n);
      continue;
    }
    out.clear();
    switch (m.type) {
      case pgwire::backend::authentication: {
        auto a = pgwire::decode_authentication(m);
        if (!a) {
          fail.message = "unsupported or malformed authentication request";
          co_return std::nullopt;
        }
        switch (a->kind) {
          case pgwire::AuthKind::ok:
            if (scram && !scram->done()) {
              fail.message = "server accepted SCRAM authentication without proving it knows the password";
              co_return std::nullopt;
            }
            break;
          case pgwire::AuthKind::cleartext_password:
            if (!need_password()) co_return std::nullopt;
            (void)pgwire::encode_password_message(out, s.password);
            if (!co_await send()) co_return std::nullopt;
            break;
          case pgwire::AuthKind::md5_password: {
            if (!need_password()) co_return std::nullopt;
            auto resp = pgwire::md5_password_response(s.user, s.password, a->md5_salt);
            if (!resp) {
              fail.message = "MD5 authentication is not available (the crypto library refuses MD5)";
              co_return std::nullopt;
            }
            (void)pgwire::encode_password_message(out, *resp);
            cleanse(*resp);
            if (!co_await send()) co_return std::nullopt;
            break;
          }
          case pgwire::AuthKind::sasl: {
            if (!a->sasl_mechanisms.contains(pgwire::kScramSha256)) {
              fail.message = "the server offered no SASL mechanism this client supports";
              co_return std::nullopt;
            }
            if (!need_password()) co_return std::nullopt;
            scram.emplace(s.password);
            std::string first;
            if (auto e = scram->client_first(first); e != pgwire::ScramError::ok) {
              fail.message = "SCRAM: " + std::string(pgwire::to_string(e));
              co_return std::nullopt;
            }
            (void)pgwire::encode_sasl_initial_response(out, pgwire::kScramSha256, first);
            if (!co_await send()) co_return std::nullopt;
            break;
          }
          case pgwire::AuthKind::sasl_continue: {
            std::string reply;
            auto e = scram ? scram->handle_server_first(a->data, reply) : pgwire::ScramError::wrong_state;
            if (e != pgwire::ScramError::ok) {
              fail.message = "SCRAM: " + std::string(pgwire::to_string(e));
              co_return std::nullopt;
            }
            (void)pgwire::encode_sasl_response(out, reply);
            cleanse(reply);
            if (!co_await send()) co_return std::nullopt;
            break;
          }
          case pgwire::AuthKind::sasl_final: {
            auto e = scram ? scram->handle_server_final(a->data) : pgwire::ScramError::wrong_state;
            if (e != pgwire::ScramError::ok) {
              fail.message = "SCRAM: " + std::string(pgwire::to_string(e));
              if (e == pgwire::ScramError::server_error) fail.message += ": " + std::string(scram->server_error());
              co_return std::nullopt;
            }
            break;
          }
          default:
            fail.message = "authentication method " + std::to_string(static_cast<int>(a->kind)) +
                           " is not supported (use scram-sha-256, md5, password or trust)";
            co_return std::nullopt;
        }
        break;
      }
      case pgwire::backend::error_response: {
        auto n = pgwire::decode_error_response(m);
        if (!n) {
          fail.message = "malformed error response during startup";
        } else {
          fail.message = std::string(n->severity.empty() ? "FATAL" : n->severity) + ":  " +
                         std::string(n->message);
          fail.sqlstate = std::string(n->sqlstate);
          fail.from_server = true;
        }
        co_return std::nullopt;
      }
      case pgwire::backend::parameter_status: {
        auto p = pgwire::decode_parameter_status(m);
        if (!p) break;
        auto it = std::find_if(parameters.begin(), parameters.end(),
                               [&](const auto& kv) { return kv.first == p->name; });
        if (it == parameters.end()) {
          parameters.emplace_back(std::string(p->name), std::string(p->value));
        } else {
          it->second = std::string(p->value);
        }
        break;
      }
      case pgwire::backend::backend_key_data: {
        auto k = pgwire::decode_backend_key_data(m);
        if (k) {
          cancel.pid = k->process_id;
          cancel.secret = k->secret_key;
        }
        break;
      }
      case pgwire::backend::ready_for_query: {
        auto z = pgwire::decode_ready_for_query(m);
        if (!z) {
          fail.message = "malformed ReadyForQuery during startup";
          co_return std::nullopt;
        }
        const TxStatus tx = z->status == pgwire::TransactionStatus::idle ? TxStatus::idle
                            : z->status == pgwire::TransactionStatus::in_transaction
                                ? TxStatus::in_tx
                                : TxStatus::failed_tx;
        co_return Session{std::move(t), std::move(reader), std::move(cancel), std::move(parameters), tx};
      }
      case pgwire::backend::notice_response:
      case pgwire::backend::negotiate_protocol_version:
        break;
      default:
        fail.message = std::string("unexpected message '") + m.type + "' during startup";
        co_return std::nullopt;
    }
  }
}

asio::awaitable<std::optional<Session>> attempt_tcp(asio::any_io_executor ex, const tcp::endpoint& ep,
                                                    const Settings& s,
                                                    std::shared_ptr<asio::ssl::context> tls,
                                                    bool tls_required, Transport*& current,
                                                    Failure& fail) {
  Transport t{tcp::socket(ex)};
  current = &t;
  error_code ec;
  co_await t.tcp_socket()->async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    fail.message = ec.message();
    co_return std::nullopt;
  }
  // Statements are small and latency-bound: never let Nagle hold one back. Keepalives find a
  // dead peer on an idle pooled connection, as libpq's default keepalives=1 does.
  t.tcp_socket()->set_option(tcp::no_delay(true), ec);
  t.tcp_socket()->set_option(asio::socket_base::keep_alive(true), ec);
  t.set_read_hints(enable_read_hints(*t.tcp_socket()));
  watch_reads_only(*t.tcp_socket(), ec);
  if (ec) {
    fail.message = ec.message();
    co_return std::nullopt;
  }

  if (tls) {
    std::string req;
    pgwire::encode_ssl_request(req);
    co_await t.write_all(asio::buffer(req), ec);
    char answer = 0;
    if (!ec) {
      // Exactly one byte: anything after it must come through TLS (CVE-2021-23222).
      co_await asio::async_read(*t.tcp_socket(), asio::buffer(&answer, 1),
                                asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      fail.message = read_error_text(ec);
      co_return std::nullopt;
    }
    if (answer == 'S') {
      tls_stream& st = t.start_tls(tls);
      set_sni(st, s);
      co_await st.async_handshake(asio::ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        fail.message = "SSL error: " + ec.message();
        fail.handshake_failed = true;
        co_return std::nullopt;
      }
    } else if (answer == 'N') {
      if (tls_required) {
        fail.message = "server does not support SSL, but SSL was required";
        co_return std::nullopt;
      }
    } else {
      fail.message = "received invalid response to SSL negotiation";
      co_return std::nullopt;
    }
  }
  auto session = co_await start_session(t, s, fail);
  if (session) {
    session->cancel.endpoint = ep;
    if (session->transport.is_tls()) {
      session->cancel.tls = std::move(tls);
      if (s.sslsni && !is_ip_literal(s.host)) session->cancel.sni = s.host;
    }
  }
  co_return session;
}

asio::awaitable<std::optional<Session>> attempt_unix(asio::any_io_executor ex, const Settings& s,
                                                     Transport*& current, Failure& fail) {
  Transport t{unix_socket(ex)};
  current = &t;
  error_code ec;
  co_await t.unix_sock()->async_connect(asio::local::stream_protocol::endpoint(s.socket_path()),
                                        asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) watch_reads_only(*t.unix_sock(), ec);
  if (ec) {
    fail.message = ec.message();
    co_return std::nullopt;
  }
  auto session = co_await start_session(t, s, fail);
  if (session) {
    session->cancel.unix_socket = true;
    session->cancel.unix_path = s.socket_path();
  }
  co_return session;
}

asio::awaitable<void> cancel_task(CancelTarget t, std::shared_ptr<CancelTracker> tracker,
                                  std::chrono::milliseconds timeout) {
  struct Done {
    CancelTracker& tracker;
    ~Done() { tracker.in_flight.fetch_sub(1); }
  } done{*tracker};
  const auto strand = co_await asio::this_coro::executor;
  error_code ec;
  std::optional<Transport> tr;
  if (t.unix_socket) {
    tr.emplace(unix_socket(t.ex));
  } else {
    tr.emplace(tcp::socket(t.ex));
  }
  Deadline deadline(strand, timeout, [&tr] { tr->close(); });
  const char* step = "connect";
  if (t.unix_socket) {
    co_await tr->unix_sock()->async_connect(asio::local::stream_protocol::endpoint(t.unix_path),
                                            asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await tr->tcp_socket()->async_connect(t.endpoint, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && t.tls) {
      // The session's key must not cross the network in clear when the session itself is TLS.
      step = "TLS negotiation";
      std::string req;
      pgwire::encode_ssl_request(req);
      co_await tr->write_all(asio::buffer(req), ec);
      char answer = 0;
      if (!ec) {
        co_await asio::async_read(*tr->tcp_socket(), asio::buffer(&answer, 1),
                                  asio::redirect_error(asio::use_awaitable, ec));
      }
      if (!ec && answer != 'S') ec = asio::error::operation_not_supported;
      if (!ec) {
        tls_stream& st = tr->start_tls(t.tls);
        if (!t.sni.empty()) SSL_set_tlsext_host_name(st.native_handle(), t.sni.c_str());
        co_await st.async_handshake(asio::ssl::stream_base::client,
                                    asio::redirect_error(asio::use_awaitable, ec));
      }
    }
  }
  if (!ec) {
    step = "send";
    std::string pkt;
    pgwire::encode_cancel_request(pkt, t.pid, t.secret);
    co_await tr->write_all(asio::buffer(pkt), ec);
  }
  if (!ec) {
    // The postmaster closes the connection once it has signalled the backend: EOF is success.
    step = "wait";
    char sink[64];
    while (!ec) co_await tr->read_some(asio::buffer(sink), ec);
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) ec.clear();
  }
  if (deadline.expired()) {
    spdlog::debug("postgresql cancel request for backend {}: timed out ({})", t.pid, step);
  } else if (ec) {
    spdlog::debug("postgresql cancel request for backend {}: {} failed: {}", t.pid, step, ec.message());
  }
  tr->close();
}

}  // namespace

std::string Settings::socket_path() const { return host + "/.s.PGSQL." + std::to_string(port); }

std::string Settings::describe() const {
  if (unix_socket) return "server on socket \"" + socket_path() + "\"";
  return "server at \"" + host + "\", port " + std::to_string(port);
}

std::optional<std::string> parse_settings(const DatabaseUrl& url, const ConnectOptions& options,
                                          Settings& out) {
  out = Settings{};
  out.host = url.host;
  if (auto* h = option(url, "host")) out.host = *h;
  // libpq's default: the Unix socket in the distribution's socket directory.
  if (out.host.empty()) out.host = "/var/run/postgresql";
  out.unix_socket = out.host.front() == '/';
  if (url.port) out.port = *url.port;
  if (auto* p = option(url, "port")) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(p->data(), p->data() + p->size(), v);
    if (ec != std::errc() || end != p->data() + p->size() || v < 1 || v > 65535) {
      return "invalid port option \"" + *p + "\"";
    }
    out.port = static_cast<std::uint16_t>(v);
  }
  out.user = url.user;
  if (auto* u = option(url, "user")) out.user = *u;
  if (out.user.empty()) {
    const char* login = std::getenv("USER");
    out.user = login && *login ? login : "postgres";
  }
  out.password = url.password;
  if (auto* p = option(url, "password")) out.password = *p;
  out.database = url.database;
  if (auto* d = option(url, "dbname")) out.database = *d;

  if (auto* m = option(url, "sslmode")) {
    auto mode = parse_sslmode(*m);
    if (!mode) return "invalid sslmode \"" + *m + "\" (disable, allow, prefer, require, verify-ca, verify-full)";
    out.sslmode = *mode;
  }
  if (auto* v = option(url, "sslrootcert")) out.sslrootcert = *v;
  if (auto* v = option(url, "sslcert")) out.sslcert = *v;
  if (auto* v = option(url, "sslkey")) out.sslkey = *v;
  if (auto* v = option(url, "sslsni")) out.sslsni = *v != "0";

  out.connect_timeout = options.connect_timeout;
  if (auto* c = option(url, "connect_timeout")) {
    int secs = 0;
    auto [end, ec] = std::from_chars(c->data(), c->data() + c->size(), secs);
    if (ec != std::errc() || end != c->data() + c->size()) {
      return "invalid connect_timeout \"" + *c + "\" (seconds)";
    }
    // libpq reads 0 as "wait forever"; a pool must not, so 0 keeps the bind's timeout.
    if (secs > 0) out.connect_timeout = std::chrono::seconds(secs);
  }

  std::string app = options.application_name.empty() ? "bindsd" : options.application_name;
  if (auto* a = option(url, "application_name")) app = *a;
  out.parameters.emplace_back("application_name", app);
  // Protocol text is UTF-8 whatever the database's encoding; dates must be ISO for the tagged
  // date/timestamp values. client_encoding from the URL is ignored for that reason.
  out.parameters.emplace_back("client_encoding", "UTF8");
  out.parameters.emplace_back("DateStyle", "ISO");
  // Interval values travel as ISO 8601 durations (PROTOCOL.md §5): exact, and readable anywhere.
  out.parameters.emplace_back("IntervalStyle", "iso_8601");
  if (auto* o = option(url, "options")) out.parameters.emplace_back("options", *o);
  for (const auto& [k, v] : url.options) {
    if (is_libpq_keyword(k)) continue;
    if (!is_parameter_name(k)) {
      spdlog::debug("postgresql: URL option \"{}\" is neither a libpq keyword nor a parameter name; ignored", k);
      continue;
    }
    out.parameters.emplace_back(k, v);
  }
  return std::nullopt;
}

void send_cancel(const CancelTarget& t, std::shared_ptr<CancelTracker> tracker,
                 std::chrono::milliseconds timeout) {
  tracker->in_flight.fetch_add(1);
  try {
    asio::co_spawn(asio::make_strand(t.ex), cancel_task(t, tracker, timeout), asio::detached);
  } catch (const std::exception& e) {
    // cancel_task never started, so its guard will not count it down.
    tracker->in_flight.fetch_sub(1);
    spdlog::debug("postgresql cancel request for backend {}: not started: {}", t.pid, e.what());
  }
}

asio::awaitable<Established> establish(asio::any_io_executor ex, const Settings& s) {
  const auto strand = co_await asio::this_coro::executor;
  Established result;
  auto failed = [&](const std::string& why, std::string sqlstate = {}) {
    result.error = BackendError{protocol::ErrorCode::backend_unavailable,
                                "connection to " + s.describe() + " failed: " + why,
                                std::move(sqlstate), std::nullopt, false, false};
    return std::move(result);
  };

  std::shared_ptr<asio::ssl::context> tls;
  if (s.sslmode != SslMode::disable && !s.unix_socket) {
    std::string why;
    tls = make_tls_context(s, why);
    if (!tls) co_return failed(why);
  }

  // One deadline for the whole establishment, name lookup included: it is what the pool waits.
  Transport* current = nullptr;
  tcp::resolver resolver(ex);
  Deadline deadline(strand, s.connect_timeout, [&] {
    resolver.cancel();
    if (current) current->close();
  });
  Failure fail;
  auto finish = [&](std::optional<Session> session) -> Established {
    current = nullptr;
    if (deadline.expired()) return failed("timeout expired");
    if (!session) return failed(fail.message, fail.sqlstate);
    session->cancel.ex = ex;
    result.session = std::move(session);
    return std::move(result);
  };

  if (s.unix_socket) {
    // PostgreSQL does not negotiate TLS on Unix sockets (nor does libpq ask): sslmode is moot.
    auto session = co_await attempt_unix(ex, s, current, fail);
    co_return finish(std::move(session));
  }

  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  const auto addr = asio::ip::make_address(s.host, ec);
  if (!ec) {
    endpoints.emplace_back(addr, s.port);
  } else {
    // Names only: asio resolves on a private thread of its own, which literal addresses avoid.
    auto results = co_await resolver.async_resolve(s.host, std::to_string(s.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (deadline.expired()) co_return failed("timeout expired");
    if (ec) co_return failed("could not translate host name \"" + s.host + "\" to address: " + ec.message());
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }

  std::optional<Session> session;
  for (const auto& ep : endpoints) {
    fail = Failure{};
    switch (s.sslmode) {
      case SslMode::disable:
        session = co_await attempt_tcp(ex, ep, s, nullptr, false, current, fail);
        break;
      case SslMode::allow:
        session = co_await attempt_tcp(ex, ep, s, nullptr, false, current, fail);
        // A server whose pg_hba.conf wants TLS refuses the plain attempt with 28000.
        if (!session && !deadline.expired() && fail.from_server && fail.sqlstate == "28000") {
          spdlog::debug("postgresql {}: plain connection refused, retrying with TLS (sslmode=allow)", s.describe());
          fail = Failure{};
          session = co_await attempt_tcp(ex, ep, s, tls, true, current, fail);
        }
        break;
      case SslMode::prefer:
        session = co_await attempt_tcp(ex, ep, s, tls, false, current, fail);
        if (!session && !deadline.expired() && fail.handshake_failed) {
          spdlog::debug("postgresql {}: TLS handshake failed ({}), retrying without TLS (sslmode=prefer)",
                        s.describe(), fail.message);
          fail = Failure{};
          session = co_await attempt_tcp(ex, ep, s, nullptr, false, current, fail);
        }
        break;
      case SslMode::require:
      case SslMode::verify_ca:
      case SslMode::verify_full:
        session = co_await attempt_tcp(ex, ep, s, tls, true, current, fail);
        break;
    }
    current = nullptr;
    if (session || deadline.expired() || fail.from_server) break;
  }
  co_return finish(std::move(session));
}

}  // namespace binds::backend::pg
