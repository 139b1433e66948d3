#pragma once
// PostgreSQL password authentication without I/O: the MD5 hash, and SCRAM-SHA-256 (RFC 5802,
// RFC 7677) state machines for both ends. The caller carries the SASL payloads in
// SASLInitialResponse/SASLResponse and AuthenticationSASLContinue/SASLFinal messages.
//
// Passwords never appear in an error value or in any message these functions produce; derived
// secrets appear only where asked for (hashes and verifiers to store, ScramKeys). Buffers holding
// them are wiped (OPENSSL_cleanse) when no longer needed.
//
// SASLprep: PostgreSQL normalises SCRAM passwords with SASLprep (RFC 4013) and falls back to the
// raw bytes when the password is not valid UTF-8 or contains prohibited characters. For ASCII
// passwords SASLprep is the identity, so here, as in PostgreSQL, the raw bytes are used. Non-ASCII
// passwords are also used as raw bytes: this matches PostgreSQL whenever SASLprep would leave the
// password unchanged (valid UTF-8 already in NFKC form, without non-ASCII spaces, soft hyphens or
// other "mapped to nothing" characters) and whenever PostgreSQL falls back to the raw bytes.
// Otherwise, e.g. a decomposed "é" (e + U+0301) or a no-break space, PostgreSQL hashes the
// normalised form and authentication fails: this codec is stricter than PostgreSQL, never looser.
// Normalise such passwords before passing them in if that matters.
//
// Not thread-safe per object; distinct objects may be used on distinct threads.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/pg/backend.hpp"

namespace binds::pgwire {

// ---------------------------------------------------------------------------- MD5

// What pg_authid stores for an MD5 password: "md5" + hex(md5(password + user)).
// nullopt if the crypto library refuses MD5 (FIPS mode).
std::optional<std::string> md5_password_hash(std::string_view user, std::string_view password);
// What a client sends in its PasswordMessage for AuthenticationMD5Password:
// "md5" + hex(md5(hex(md5(password + user)) + salt)).
std::optional<std::string> md5_password_response(std::string_view user, std::string_view password,
                                                 const Md5Salt& salt);
// Server side: checks a client's response against a stored "md5..." hash, in constant time.
bool verify_md5_response(std::string_view stored_hash, const Md5Salt& salt,
                         std::string_view response);

// ---------------------------------------------------------------------------- SCRAM-SHA-256

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";
inline constexpr std::uint32_t kScramDefaultIterations = 4096;  // PostgreSQL's default
// A client refuses iteration counts above this: the server picks the count and the client pays
// for it in PBKDF2 rounds.
inline constexpr std::uint32_t kScramMaxIterations = 10'000'000;

enum class ScramError : std::uint8_t {
  ok = 0,
  wrong_state,                  // call out of order, or after a failure
  malformed_message,            // does not parse as the expected SCRAM message
  bad_argument,                 // an injected nonce that is not printable ASCII without ','
  unsupported_extension,        // mandatory extension (m=) requested
  channel_binding_unsupported,  // client chose channel binding (p=) — not supported here
  channel_binding_downgrade,    // client said 'y' although the server offered -PLUS
  authzid_unsupported,          // client sent an authorization identity (a=)
  nonce_mismatch,               // nonce does not extend the client's, or differs from the first
  bad_iteration_count,          // outside 1..kScramMaxIterations
  bad_salt,                     // salt empty or not base64
  server_error,                 // server-final carried e=...; see ScramClient::server_error()
  invalid_server_signature,     // the server does not know the password: do not trust it
  invalid_proof,                // the client does not know the password
  bad_verifier,                 // stored verifier does not parse
  crypto_failure,               // OpenSSL refused (RNG or digest unavailable)
};

std::string_view to_string(ScramError e);

using ScramKey = std::array<unsigned char, 32>;

// Everything derived from a password for one salt and iteration count. Whoever holds client_key
// can log in as the user, so treat this like the password itself.
struct ScramKeys {
  std::string salt;  // raw bytes
  std::uint32_t iterations = 0;
  ScramKey client_key{};
  ScramKey server_key{};
};

// What PostgreSQL stores in pg_authid.rolpassword:
// "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>".
struct ScramVerifier {
  std::uint32_t iterations = 0;
  std::string salt;  // raw bytes
  ScramKey stored_key{};
  ScramKey server_key{};
};

std::optional<ScramVerifier> parse_scram_verifier(std::string_view text);
std::string format_scram_verifier(const ScramVerifier& v);
// Derives a verifier from a plain password (see SASLprep above). An empty salt means 16 random
// bytes, as PostgreSQL does. nullopt if iterations is 0 or above kScramMaxIterations, or the
// crypto library fails.
std::optional<ScramVerifier> make_scram_verifier(std::string_view password,
                                                 std::uint32_t iterations = kScramDefaultIterations,
                                                 std::string_view salt = {});

// Client side. Sequence: client_first() -> send as SASLInitialResponse(kScramSha256, data);
// handle_server_first(AuthenticationSASLContinue data) -> send as SASLResponse;
// handle_server_final(AuthenticationSASLFinal data). Only after handle_server_final returns ok
// has the server proved it knows the password; AuthenticationOk before that must be refused.
//
// Channel binding is not implemented: the client always sends the gs2 header "n,,", which is
// correct on plain TCP and means "no channel binding" under TLS.
class ScramClient {
 public:
  struct Options {
    // Sent as n=; PostgreSQL ignores it (the StartupMessage user counts), libpq sends "".
    std::string_view username = {};
    // For tests only: a fixed nonce makes the exchange replayable. Empty = 18 random bytes.
    std::string_view client_nonce = {};
    // Keys from an earlier exchange with the same server: used instead of running PBKDF2 when the
    // server's salt and iteration count match them.
    const ScramKeys* cached_keys = nullptr;
  };

  explicit ScramClient(std::string_view password) : ScramClient(password, Options{}) {}
  ScramClient(std::string_view password, const Options& options);
  ~ScramClient();
  ScramClient(ScramClient&&) = default;
  ScramClient& operator=(ScramClient&&) = default;

  // Appends the client-first-message to `out`.
  [[nodiscard]] ScramError client_first(std::string& out);
  // Appends the client-final-message to `out`.
  [[nodiscard]] ScramError handle_server_first(std::string_view server_first, std::string& out);
  [[nodiscard]] ScramError handle_server_final(std::string_view server_final);

  bool done() const { return state_ == State::done; }
  // The e= value of a failed server-final message (server text, not a secret).
  std::string_view server_error() const { return server_error_; }
  // Valid after handle_server_first returned ok: the keys for this server's salt and iteration
  // count, to pass as Options::cached_keys next time.
  const ScramKeys& keys() const { return keys_; }

 private:
  enum class State : std::uint8_t { initial, first_sent, final_sent, done, failed };

  ScramError fail(ScramError e);

  State state_ = State::initial;
  std::string password_;
  std::string username_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string auth_message_;
  std::string server_error_;
  ScramKeys keys_;
  const ScramKeys* cached_keys_ = nullptr;
};

// Server side. Sequence: handle_client_first(SASLInitialResponse data) -> send as
// AuthenticationSASLContinue; handle_client_final(SASLResponse data) -> on ok send
// AuthenticationSASLFinal with the output, then AuthenticationOk. On invalid_proof send an
// ErrorResponse with SQLSTATE 28P01 and nothing else, as PostgreSQL does.
class ScramServer {
 public:
  struct Options {
    // True when the server advertised SCRAM-SHA-256-PLUS (TLS): a client answering 'y' then
    // signals a downgrade and is refused.
    bool channel_binding_offered = false;
    // For tests only. Empty = 18 random bytes.
    std::string_view server_nonce = {};
  };

  explicit ScramServer(ScramVerifier verifier) : ScramServer(std::move(verifier), Options{}) {}
  ScramServer(ScramVerifier verifier, const Options& options);
  ~ScramServer();
  ScramServer(ScramServer&&) = default;
  ScramServer& operator=(ScramServer&&) = default;

  // For a user that does not exist or has no SCRAM verifier: runs a normal-looking exchange with
  // a salt derived from the user name and `mock_secret` (stable per user, so probing cannot tell
  // users apart) and then fails with invalid_proof.
  static ScramServer doomed(std::string_view username, std::string_view mock_secret,
                            const Options& options);
  static ScramServer doomed(std::string_view username, std::string_view mock_secret) {
    return doomed(username, mock_secret, Options{});
  }

  // Appends the server-first-message to `out`.
  [[nodiscard]] ScramError handle_client_first(std::string_view client_first, std::string& out);
  // Appends the server-final-message to `out` (only on ok).
  [[nodiscard]] ScramError handle_client_final(std::string_view client_final, std::string& out);

  bool done() const { return state_ == State::done; }
  // Valid once done(): the client's keys, recovered from its proof. With them bindsd can log in
  // to a PostgreSQL server that stores the same verifier without knowing the password
  // (ScramClient::Options::cached_keys).
  const ScramKeys& keys() const { return keys_; }

 private:
  enum class State : std::uint8_t { initial, first_received, done, failed };

  ScramServer(ScramVerifier verifier, const Options& options, bool doomed);
  ScramError fail(ScramError e);

  State state_ = State::initial;
  bool doomed_ = false;
  bool channel_binding_offered_ = false;
  ScramVerifier verifier_;
  std::string server_nonce_;
  std::string gs2_header_;
  std::string nonce_;  // client + server
  std::string client_first_bare_;
  std::string server_first_;
  ScramKeys keys_;
};

namespace detail {
// Strict standard base64 with padding, as SCRAM and pg_authid use.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);
}  // namespace detail

}  // namespace binds::pgwire
