#include "protocol/pg/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <limits>

namespace binds::pgwire {

namespace {

constexpr std::size_t kNonceBytes = 18;  // as PostgreSQL and libpq: 24 base64 characters
constexpr std::size_t kSaltBytes = 16;   // PostgreSQL's default salt length

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string_view view_of(const ScramKey& k) {
  return {reinterpret_cast<const char*>(k.data()), k.size()};
}

void cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

void cleanse(ScramKey& k) { OPENSSL_cleanse(k.data(), k.size()); }

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 0xF]);
  }
  return out;
}

std::optional<std::string> md5_hex(std::string_view a, std::string_view b) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return std::nullopt;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex(ctx, EVP_md5(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
            EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 16;
  EVP_MD_CTX_free(ctx);
  if (!ok) return std::nullopt;
  return hex(md, 16);
}

bool sha256(std::string_view data, ScramKey& out) {
  unsigned int len = 0;
  return EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) == 1 &&
         len == out.size();
}

bool hmac_sha256(std::string_view key, std::string_view data, ScramKey& out) {
  if (key.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
  unsigned int len = 0;
  return HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes_of(data), data.size(),
              out.data(), &len) != nullptr &&
         len == out.size();
}

// SaltedPassword := Hi(password, salt, i), then ClientKey and ServerKey from it.
bool derive_keys(std::string_view password, std::string_view salt, std::uint32_t iterations,
                 ScramKey& client_key, ScramKey& server_key) {
  if (password.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      salt.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      iterations > static_cast<std::uint32_t>(std::numeric_limits<int>::max())) {
    return false;
  }
  ScramKey salted{};
  bool ok = PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes_of(salt),
                              static_cast<int>(salt.size()), static_cast<int>(iterations),
                              EVP_sha256(), static_cast<int>(salted.size()), salted.data()) == 1 &&
            hmac_sha256(view_of(salted), "Client Key", client_key) &&
            hmac_sha256(view_of(salted), "Server Key", server_key);
  cleanse(salted);
  return ok;
}

std::optional<std::string> random_base64(std::size_t n) {
  unsigned char raw[64];
  if (n > sizeof raw || RAND_bytes(raw, static_cast<int>(n)) != 1) return std::nullopt;
  return detail::base64_encode({reinterpret_cast<const char*>(raw), n});
}

// RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII except ','.
bool printable_nonce(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

bool parse_u32(std::string_view s, std::uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

// Splits a SCRAM message into "x=value" attributes one at a time.
class Attributes {
 public:
  explicit Attributes(std::string_view s) : rest_(s) {}

  bool at_end() const { return done_; }
  // The next attribute; false when there is none or it is not "<letter>=".
  bool next(char& name, std::string_view& value) {
    if (done_) return false;
    const auto comma = rest_.find(',');
    std::string_view attr = rest_.substr(0, comma);
    if (comma == std::string_view::npos) {
      done_ = true;
    } else {
      rest_ = rest_.substr(comma + 1);
    }
    if (attr.size() < 2 || attr[1] != '=') return false;
    const char c = attr[0];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
    name = c;
    value = attr.substr(2);
    return true;
  }
  // Requires the next attribute to be `want`.
  bool expect(char want, std::string_view& value) {
    char name = 0;
    return next(name, value) && name == want;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

void xor_into(ScramKey& a, const ScramKey& b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] ^= b[i];
}

bool decode_key(std::string_view b64, ScramKey& out) {
  auto raw = detail::base64_decode(b64);
  if (!raw || raw->size() != out.size()) return false;
  std::copy(raw->begin(), raw->end(), reinterpret_cast<char*>(out.data()));
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------- base64

namespace detail {

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  auto* p = bytes_of(bytes);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(alphabet[v >> 18]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  if (const std::size_t left = bytes.size() - i; left > 0) {
    std::uint32_t v = std::uint32_t{p[i]} << 16;
    if (left == 2) v |= std::uint32_t{p[i + 1]} << 8;
    out.push_back(alphabet[v >> 18]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(left == 2 ? alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    std::uint32_t v = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (c == '=') {
        // Padding only in the last group, only in its last two places, and only at the end.
        if (!last || j < 2) return std::nullopt;
        ++pad;
        v <<= 6;
        continue;
      }
      if (pad > 0) return std::nullopt;
      int d = value(c);
      if (d < 0) return std::nullopt;
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out.push_back(static_cast<char>(v >> 16));
    if (pad < 2) out.push_back(static_cast<char>(v >> 8));
    if (pad < 1) out.push_back(static_cast<char>(v));
  }
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------- MD5

std::optional<std::string> md5_password_hash(std::string_view user, std::string_view password) {
  auto h = md5_hex(password, user);
  if (!h) return std::nullopt;
  return "md5" + *h;
}

namespace {
std::optional<std::string> md5_salted(std::string_view stored_hex, const Md5Salt& salt) {
  auto h = md5_hex(stored_hex, {reinterpret_cast<const char*>(salt.data()), salt.size()});
  if (!h) return std::nullopt;
  return "md5" + *h;
}
}  // namespace

std::optional<std::string> md5_password_response(std::string_view user, std::string_view password,
                                                 const Md5Salt& salt) {
  auto inner = md5_hex(password, user);
  if (!inner) return std::nullopt;
  auto out = md5_salted(*inner, salt);
  cleanse(*inner);
  return out;
}

bool verify_md5_response(std::string_view stored_hash, const Md5Salt& salt,
                         std::string_view response) {
  if (stored_hash.size() != 35 || stored_hash.substr(0, 3) != "md5") return false;
  auto expected = md5_salted(stored_hash.substr(3), salt);
  if (!expected || response.size() != expected->size()) return false;
  return CRYPTO_memcmp(expected->data(), response.data(), response.size()) == 0;
}

// ---------------------------------------------------------------------------- SCRAM

std::string_view to_string(ScramError e) {
  switch (e) {
    case ScramError::ok:
      return "ok";
    case ScramError::wrong_state:
      return "SCRAM message out of sequence";
    case ScramError::malformed_message:
      return "malformed SCRAM message";
    case ScramError::bad_argument:
      return "invalid SCRAM nonce";
    case ScramError::unsupported_extension:
      return "unsupported mandatory SCRAM extension";
    case ScramError::channel_binding_unsupported:
      return "SCRAM channel binding not supported";
    case ScramError::channel_binding_downgrade:
      return "SCRAM channel binding negotiation error";
    case ScramError::authzid_unsupported:
      return "SCRAM authorization identity not supported";
    case ScramError::nonce_mismatch:
      return "SCRAM nonce mismatch";
    case ScramError::bad_iteration_count:
      return "SCRAM iteration count out of range";
    case ScramError::bad_salt:
      return "invalid SCRAM salt";
    case ScramError::server_error:
      return "SCRAM server reported an error";
    case ScramError::invalid_server_signature:
      return "invalid SCRAM server signature";
    case ScramError::invalid_proof:
      return "SCRAM proof does not match (wrong password)";
    case ScramError::bad_verifier:
      return "invalid SCRAM verifier";
    case ScramError::crypto_failure:
      return "cryptographic operation failed";
  }
  return "unknown SCRAM error";
}

std::optional<ScramVerifier> parse_scram_verifier(std::string_view text) {
  constexpr std::string_view prefix = "SCRAM-SHA-256$";
  if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
  text.remove_prefix(prefix.size());
  const auto colon1 = text.find(':');
  const auto dollar = text.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
    return std::nullopt;
  }
  const auto colon2 = text.find(':', dollar);
  if (colon2 == std::string_view::npos) return std::nullopt;

  ScramVerifier v;
  if (!parse_u32(text.substr(0, colon1), v.iterations) || v.iterations == 0 ||
      v.iterations > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max())) {
    return std::nullopt;
  }
  auto salt = detail::base64_decode(text.substr(colon1 + 1, dollar - colon1 - 1));
  if (!salt || salt->empty()) return std::nullopt;
  v.salt = std::move(*salt);
  if (!decode_key(text.substr(dollar + 1, colon2 - dollar - 1), v.stored_key) ||
      !decode_key(text.substr(colon2 + 1), v.server_key)) {
    return std::nullopt;
  }
  return v;
}

std::string format_scram_verifier(const ScramVerifier& v) {
  std::string out = "SCRAM-SHA-256$";
  out += std::to_string(v.iterations);
  out += ':';
  out += detail::base64_encode(v.salt);
  out += '$';
  out += detail::base64_encode(view_of(v.stored_key));
  out += ':';
  out += detail::base64_encode(view_of(v.server_key));
  return out;
}

std::optional<ScramVerifier> make_scram_verifier(std::string_view password,
                                                 std::uint32_t iterations, std::string_view salt) {
  if (iterations == 0 || iterations > kScramMaxIterations) return std::nullopt;
  ScramVerifier v;
  v.iterations = iterations;
  if (salt.empty()) {
    unsigned char raw[kSaltBytes];
    if (RAND_bytes(raw, sizeof raw) != 1) return std::nullopt;
    v.salt.assign(reinterpret_cast<const char*>(raw), sizeof raw);
  } else {
    v.salt.assign(salt);
  }
  ScramKey client_key{};
  bool ok = derive_keys(password, v.salt, iterations, client_key, v.server_key) &&
            sha256(view_of(client_key), v.stored_key);
  cleanse(client_key);
  if (!ok) return std::nullopt;
  return v;
}

// ---- client

ScramClient::ScramClient(std::string_view password, const Options& options)
    : password_(password), client_nonce_(options.client_nonce), cached_keys_(options.cached_keys) {
  // RFC 5802 saslname: ',' and '=' are escaped.
  for (char c : options.username) {
    if (c == ',') {
      username_ += "=2C";
    } else if (c == '=') {
      username_ += "=3D";
    } else {
      username_ += c;
    }
  }
}

ScramClient::~ScramClient() {
  cleanse(password_);
  cleanse(keys_.client_key);
  cleanse(keys_.server_key);
}

ScramError ScramClient::fail(ScramError e) {
  state_ = State::failed;
  cleanse(password_);
  return e;
}

ScramError ScramClient::client_first(std::string& out) {
  if (state_ != State::initial) return fail(ScramError::wrong_state);
  if (client_nonce_.empty()) {
    auto nonce = random_base64(kNonceBytes);
    if (!nonce) return fail(ScramError::crypto_failure);
    client_nonce_ = std::move(*nonce);
  } else if (!printable_nonce(client_nonce_)) {
    return fail(ScramError::bad_argument);
  }
  client_first_bare_ = "n=" + username_ + ",r=" + client_nonce_;
  out += "n,,";
  out += client_first_bare_;
  state_ = State::first_sent;
  return ScramError::ok;
}

ScramError ScramClient::handle_server_first(std::string_view server_first, std::string& out) {
  if (state_ != State::first_sent) return fail(ScramError::wrong_state);

  Attributes attrs(server_first);
  char name = 0;
  std::string_view nonce, salt_b64, iter_text;
  if (!attrs.next(name, nonce)) return fail(ScramError::malformed_message);
  if (name == 'm') return fail(ScramError::unsupported_extension);
  if (name != 'r') return fail(ScramError::malformed_message);
  if (!attrs.expect('s', salt_b64) || !attrs.expect('i', iter_text)) {
    return fail(ScramError::malformed_message);
  }
  // Later attributes are extensions (RFC 5802 §7), which a client may ignore.

  // The server must extend our nonce; a nonce that merely equals it would let a replayed
  // exchange go unnoticed.
  if (nonce.size() <= client_nonce_.size() ||
      nonce.substr(0, client_nonce_.size()) != client_nonce_ || !printable_nonce(nonce)) {
    return fail(ScramError::nonce_mismatch);
  }
  auto salt = detail::base64_decode(salt_b64);
  if (!salt || salt->empty()) return fail(ScramError::bad_salt);
  std::uint32_t iterations = 0;
  if (!parse_u32(iter_text, iterations) || iterations == 0 || iterations > kScramMaxIterations) {
    return fail(ScramError::bad_iteration_count);
  }

  if (cached_keys_ != nullptr && cached_keys_->iterations == iterations &&
      cached_keys_->salt == *salt) {
    keys_ = *cached_keys_;
  } else {
    keys_.salt = *salt;
    keys_.iterations = iterations;
    if (!derive_keys(password_, keys_.salt, iterations, keys_.client_key, keys_.server_key)) {
      return fail(ScramError::crypto_failure);
    }
  }
  cleanse(password_);  // from here on the keys stand in for it

  ScramKey stored_key{}, proof = keys_.client_key, signature{};
  // "biws" is base64("n,,"): no channel binding, no authzid.
  std::string final_without_proof = "c=biws,r=";
  final_without_proof += nonce;
  auth_message_.reserve(client_first_bare_.size() + server_first.size() +
                        final_without_proof.size() + 2);
  auth_message_ = client_first_bare_;
  auth_message_ += ',';
  auth_message_ += server_first;
  auth_message_ += ',';
  auth_message_ += final_without_proof;
  if (!sha256(view_of(keys_.client_key), stored_key) ||
      !hmac_sha256(view_of(stored_key), auth_message_, signature)) {
    return fail(ScramError::crypto_failure);
  }
  xor_into(proof, signature);

  out += final_without_proof;
  out += ",p=";
  out += detail::base64_encode(view_of(proof));
  cleanse(proof);
  state_ = State::final_sent;
  return ScramError::ok;
}

ScramError ScramClient::handle_server_final(std::string_view server_final) {
  if (state_ != State::final_sent) return fail(ScramError::wrong_state);
  Attributes attrs(server_final);
  char name = 0;
  std::string_view value;
  if (!attrs.next(name, value)) return fail(ScramError::malformed_message);
  if (name == 'e') {
    server_error_.assign(value);
    return fail(ScramError::server_error);
  }
  if (name != 'v') return fail(ScramError::malformed_message);
  ScramKey received{}, expected{};
  if (!decode_key(value, received)) return fail(ScramError::malformed_message);
  if (!hmac_sha256(view_of(keys_.server_key), auth_message_, expected)) {
    return fail(ScramError::crypto_failure);
  }
  if (CRYPTO_memcmp(received.data(), expected.data(), expected.size()) != 0) {
    return fail(ScramError::invalid_server_signature);
  }
  state_ = State::done;
  return ScramError::ok;
}

// ---- server

ScramServer::ScramServer(ScramVerifier verifier, const Options& options)
    : ScramServer(std::move(verifier), options, false) {}

ScramServer::ScramServer(ScramVerifier verifier, const Options& options, bool doomed)
    : doomed_(doomed),
      channel_binding_offered_(options.channel_binding_offered),
      verifier_(std::move(verifier)),
      server_nonce_(options.server_nonce) {}

ScramServer::~ScramServer() {
  cleanse(keys_.client_key);
  cleanse(keys_.server_key);
}

ScramServer ScramServer::doomed(std::string_view username, std::string_view mock_secret,
                                const Options& options) {
  ScramVerifier v;
  v.iterations = kScramDefaultIterations;
  ScramKey digest{};
  std::string seed(username);
  seed += '\0';
  seed += mock_secret;
  // The salt must look like a real one and stay the same for the same user, or repeated probes
  // would reveal that the user does not exist. A failed digest leaves zeros: still a salt.
  (void)sha256(seed, digest);
  cleanse(seed);
  v.salt.assign(reinterpret_cast<const char*>(digest.data()), kSaltBytes);
  return ScramServer(std::move(v), options, true);
}

ScramError ScramServer::fail(ScramError e) {
  state_ = State::failed;
  return e;
}

ScramError ScramServer::handle_client_first(std::string_view client_first, std::string& out) {
  if (state_ != State::initial) return fail(ScramError::wrong_state);

  // gs2-header: cbind-flag "," [authzid] ","
  if (client_first.empty()) return fail(ScramError::malformed_message);
  switch (client_first[0]) {
    case 'n':
      break;
    case 'y':
      if (channel_binding_offered_) return fail(ScramError::channel_binding_downgrade);
      break;
    case 'p':
      return fail(ScramError::channel_binding_unsupported);
    default:
      return fail(ScramError::malformed_message);
  }
  if (client_first.size() < 3 || client_first[1] != ',') return fail(ScramError::malformed_message);
  if (client_first.substr(2, 2) == "a=") return fail(ScramError::authzid_unsupported);
  if (client_first[2] != ',') return fail(ScramError::malformed_message);
  gs2_header_.assign(client_first.substr(0, 3));
  const std::string_view bare = client_first.substr(3);

  Attributes attrs(bare);
  char name = 0;
  std::string_view value, client_nonce;
  if (!attrs.next(name, value)) return fail(ScramError::malformed_message);
  if (name == 'm') return fail(ScramError::unsupported_extension);
  // n= is ignored, as PostgreSQL does: the StartupMessage named the user.
  if (name != 'n') return fail(ScramError::malformed_message);
  if (!attrs.expect('r', client_nonce) || !printable_nonce(client_nonce)) {
    return fail(ScramError::malformed_message);
  }

  if (server_nonce_.empty()) {
    auto nonce = random_base64(kNonceBytes);
    if (!nonce) return fail(ScramError::crypto_failure);
    server_nonce_ = std::move(*nonce);
  } else if (!printable_nonce(server_nonce_)) {
    return fail(ScramError::bad_argument);
  }
  client_first_bare_.assign(bare);
  nonce_.assign(client_nonce);
  nonce_ += server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" + detail::base64_encode(verifier_.salt) +
                  ",i=" + std::to_string(verifier_.iterations);
  out += server_first_;
  state_ = State::first_received;
  return ScramError::ok;
}

ScramError ScramServer::handle_client_final(std::string_view client_final, std::string& out) {
  if (state_ != State::first_received) return fail(ScramError::wrong_state);

  // The proof is the last attribute; what precedes it is signed as-is.
  const auto p = client_final.rfind(",p=");
  if (p == std::string_view::npos) return fail(ScramError::malformed_message);
  const std::string_view without_proof = client_final.substr(0, p);
  ScramKey proof{};
  if (!decode_key(client_final.substr(p + 3), proof)) return fail(ScramError::malformed_message);

  Attributes attrs(without_proof);
  std::string_view binding, nonce;
  if (!attrs.expect('c', binding) || !attrs.expect('r', nonce)) {
    return fail(ScramError::malformed_message);
  }
  // Without channel binding, c= is just the gs2 header echoed back.
  if (binding != detail::base64_encode(gs2_header_)) return fail(ScramError::malformed_message);
  if (nonce != nonce_) return fail(ScramError::nonce_mismatch);

  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message += without_proof;

  ScramKey signature{}, client_key = proof, stored_key{}, server_signature{};
  if (!hmac_sha256(view_of(verifier_.stored_key), auth_message, signature)) {
    return fail(ScramError::crypto_failure);
  }
  // ClientKey = ClientProof XOR ClientSignature; the proof holds iff H(ClientKey) = StoredKey.
  xor_into(client_key, signature);
  if (!sha256(view_of(client_key), stored_key)) return fail(ScramError::crypto_failure);
  const bool match =
      CRYPTO_memcmp(stored_key.data(), verifier_.stored_key.data(), stored_key.size()) == 0;
  if (!match || doomed_) {
    cleanse(client_key);
    return fail(ScramError::invalid_proof);
  }
  if (!hmac_sha256(view_of(verifier_.server_key), auth_message, server_signature)) {
    cleanse(client_key);
    return fail(ScramError::crypto_failure);
  }
  keys_.salt = verifier_.salt;
  keys_.iterations = verifier_.iterations;
  keys_.client_key = client_key;
  keys_.server_key = verifier_.server_key;
  cleanse(client_key);

  out += "v=";
  out += detail::base64_encode(view_of(server_signature));
  state_ = State::done;
  return ScramError::ok;
}

}  // namespace binds::pgwire
