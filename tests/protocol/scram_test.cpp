// SCRAM-SHA-256 and MD5 password authentication, without a network: RFC 7677's test vector,
// verifiers produced by a real PostgreSQL 15, and client <-> server exchanges.

#include <gtest/gtest.h>

#include <string>

#include "protocol/pg/auth.hpp"

using namespace binds::pgwire;
using std::string_view;

namespace {

// RFC 7677 §3.
constexpr string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr string_view kRfcServerNoncePart = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
constexpr string_view kRfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";

// Produced by PostgreSQL 15 (CREATE ROLE ... PASSWORD 'pencil' with scram-sha-256).
constexpr string_view kPgVerifierPencil =
    "SCRAM-SHA-256$4096:lwt7B+xirQK2TI6srPsD7w==$2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJLoHTw=:"
    "Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=";

ScramVerifier verifier_for(string_view password, std::uint32_t iterations = 4096) {
  auto v = make_scram_verifier(password, iterations);
  EXPECT_TRUE(v.has_value());
  return v.value_or(ScramVerifier{});
}

struct Exchange {
  ScramError client_first = ScramError::ok;
  ScramError server_first = ScramError::ok;
  ScramError client_final = ScramError::ok;
  ScramError server_final = ScramError::ok;
  ScramError client_verify = ScramError::ok;
};

// Runs a whole exchange, stopping at the first failure.
Exchange run(ScramClient& client, ScramServer& server) {
  Exchange x;
  std::string c1, s1, c2, s2;
  if ((x.client_first = client.client_first(c1)) != ScramError::ok) return x;
  if ((x.server_first = server.handle_client_first(c1, s1)) != ScramError::ok) return x;
  if ((x.client_final = client.handle_server_first(s1, c2)) != ScramError::ok) return x;
  if ((x.server_final = server.handle_client_final(c2, s2)) != ScramError::ok) return x;
  x.client_verify = client.handle_server_final(s2);
  return x;
}

}  // namespace

TEST(Scram, Rfc7677ClientVector) {
  ScramClient client("pencil", {.username = "user", .client_nonce = kRfcClientNonce});
  std::string first;
  ASSERT_EQ(client.client_first(first), ScramError::ok);
  EXPECT_EQ(first, kRfcClientFirst);
  std::string final_msg;
  ASSERT_EQ(client.handle_server_first(kRfcServerFirst, final_msg), ScramError::ok);
  EXPECT_EQ(final_msg, kRfcClientFinal);
  EXPECT_FALSE(client.done());
  ASSERT_EQ(client.handle_server_final(kRfcServerFinal), ScramError::ok);
  EXPECT_TRUE(client.done());
}

TEST(Scram, Rfc7677ServerVector) {
  auto salt = detail::base64_decode(kRfcSalt);
  ASSERT_TRUE(salt);
  auto v = make_scram_verifier("pencil", 4096, *salt);
  ASSERT_TRUE(v);
  ScramServer server(*v, {.server_nonce = kRfcServerNoncePart});
  std::string first;
  ASSERT_EQ(server.handle_client_first(kRfcClientFirst, first), ScramError::ok);
  EXPECT_EQ(first, kRfcServerFirst);
  std::string final_msg;
  ASSERT_EQ(server.handle_client_final(kRfcClientFinal, final_msg), ScramError::ok);
  EXPECT_EQ(final_msg, kRfcServerFinal);
  EXPECT_TRUE(server.done());
}

TEST(Scram, VerifierMatchesPostgresql) {
  auto parsed = parse_scram_verifier(kPgVerifierPencil);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->iterations, 4096u);
  EXPECT_EQ(parsed->salt.size(), 16u);
  EXPECT_EQ(format_scram_verifier(*parsed), kPgVerifierPencil);
  auto ours = make_scram_verifier("pencil", parsed->iterations, parsed->salt);
  ASSERT_TRUE(ours);
  EXPECT_EQ(format_scram_verifier(*ours), kPgVerifierPencil);
}

TEST(Scram, NonAsciiPasswordsAreRawBytesAsDocumented) {
  // PostgreSQL 15 for U&'p\00E4ssword' (precomposed ä): SASLprep leaves it unchanged, so the raw
  // bytes agree.
  auto composed = parse_scram_verifier(
      "SCRAM-SHA-256$4096:WthclenvGmBwwzJbsn29Iw==$dKb5UtuNuG7K7aiP5qZTSsnYdzgdHhhM6KOOnmbXeqg=:"
      "DS+Xn61NSgbPOynY3IqycKcNLS6dMC/PUKtVwZwC+9w=");
  ASSERT_TRUE(composed);
  auto ours = make_scram_verifier("p\xC3\xA4ssword", 4096, composed->salt);
  ASSERT_TRUE(ours);
  EXPECT_EQ(ours->stored_key, composed->stored_key);
  EXPECT_EQ(ours->server_key, composed->server_key);

  // PostgreSQL 15 for U&'pa\0308ssword' (a + combining diaeresis): SASLprep's NFKC step composes
  // it, which this codec does not do. The divergence refuses the login; it never admits one.
  auto decomposed = parse_scram_verifier(
      "SCRAM-SHA-256$4096:bJXTlkb+SvqWkfC65Ljw/A==$cKCimrJlDY6nTlwyi7h4ENlBs0wdUxykrV1El5JwrZ8=:"
      "IolOSHm3E70eti9VXB7vElq8ezJ+SR6R8vHdIsJ/zYo=");
  ASSERT_TRUE(decomposed);
  auto raw = make_scram_verifier("pa\xCC\x88ssword", 4096, decomposed->salt);
  ASSERT_TRUE(raw);
  EXPECT_NE(raw->stored_key, decomposed->stored_key);
  auto normalised = make_scram_verifier("p\xC3\xA4ssword", 4096, decomposed->salt);
  ASSERT_TRUE(normalised);
  EXPECT_EQ(normalised->stored_key, decomposed->stored_key);
}

TEST(Scram, BadVerifiersAreRefused) {
  const std::string good(kPgVerifierPencil);
  EXPECT_TRUE(parse_scram_verifier(good));
  for (string_view bad : {
           "",
           "md5c86057a50b97c3a1213a26d1608eb36a",
           "SCRAM-SHA-1$4096:lwt7B+xirQK2TI6srPsD7w==$a:b",
           "SCRAM-SHA-256$",
           "SCRAM-SHA-256$0:lwt7B+xirQK2TI6srPsD7w==$2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJLoHTw=:"
           "Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=",
           "SCRAM-SHA-256$-1:lwt7B+xirQK2TI6srPsD7w==$2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJLoHTw=:"
           "Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=",
           "SCRAM-SHA-256$99999999999:lwt7B+xirQK2TI6srPsD7w==$"
           "2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJ"
           "LoHTw=:Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=",
           "SCRAM-SHA-256$4096:$2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJLoHTw=:"
           "Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=",
           "SCRAM-SHA-256$4096:lwt7B+xirQK2TI6srPsD7w==$"
           "2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJLoHTw=",
           "SCRAM-SHA-256$4096:lwt7B+xirQK2TI6srPsD7w==$AAAA:"
           "Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=",
           "SCRAM-SHA-256$4096:lwt7B+xirQK2TI6srPsD7w=$2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJLoHTw="
           ":"
           "Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=",
           "SCRAM-SHA-256$4096:lwt7B+xirQK2TI6srPsD7w==$"
           "2PSm9YmpDhoqqs5mRC9ME38ccT3LJ17UvlsLGJLoHTw=:"
           "Vp0ylt5fjBzbKeQLZ0Z7Ii3T3j4EXMAhh1AS7L6+UHU=x",
       }) {
    EXPECT_FALSE(parse_scram_verifier(bad)) << bad;
  }
  // The truncation of a good verifier at every length never parses and never crashes.
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(parse_scram_verifier(good.substr(0, n))) << n;
  }
}

TEST(Scram, ClientAndServerAgreeOnTheRightPassword) {
  ScramServer server(verifier_for("correct horse"));
  ScramClient client("correct horse");
  Exchange x = run(client, server);
  EXPECT_EQ(x.server_final, ScramError::ok);
  EXPECT_EQ(x.client_verify, ScramError::ok);
  EXPECT_TRUE(client.done());
  EXPECT_TRUE(server.done());
}

TEST(Scram, WrongPasswordIsRefusedByTheServer) {
  ScramServer server(verifier_for("correct horse"));
  ScramClient client("battery staple");
  Exchange x = run(client, server);
  EXPECT_EQ(x.client_final, ScramError::ok);
  EXPECT_EQ(x.server_final, ScramError::invalid_proof);
  EXPECT_FALSE(server.done());
  // The server is finished with this exchange.
  std::string out;
  EXPECT_EQ(server.handle_client_final("c=biws,r=x,p=AAAA", out), ScramError::wrong_state);
  EXPECT_TRUE(out.empty());
}

TEST(Scram, ClientRefusesAServerThatDoesNotKnowThePassword) {
  // A server holding a verifier for another password computes a wrong signature even when it
  // accepts the proof blindly: the client must notice.
  auto real = verifier_for("secret");
  auto fake = verifier_for("something else");
  fake.salt = real.salt;
  fake.iterations = real.iterations;
  fake.stored_key = real.stored_key;  // lets the proof pass
  ScramServer server(fake);
  ScramClient client("secret");
  Exchange x = run(client, server);
  EXPECT_EQ(x.server_final, ScramError::ok);
  EXPECT_EQ(x.client_verify, ScramError::invalid_server_signature);
  EXPECT_FALSE(client.done());
}

TEST(Scram, ServerFirstMessageChecks) {
  auto client_after_first = [] {
    auto c = std::make_unique<ScramClient>("pencil", ScramClient::Options{.client_nonce = "abc"});
    std::string first;
    EXPECT_EQ(c->client_first(first), ScramError::ok);
    return c;
  };
  struct Case {
    string_view server_first;
    ScramError want;
  };
  const Case cases[] = {
      {"r=xyzdef,s=QUJD,i=4096", ScramError::nonce_mismatch},    // not our nonce
      {"r=abc,s=QUJD,i=4096", ScramError::nonce_mismatch},       // server added nothing
      {"r=ab,s=QUJD,i=4096", ScramError::nonce_mismatch},        // shorter
      {"r=abcd\x01,s=QUJD,i=4096", ScramError::nonce_mismatch},  // not printable
      {"r=abcdef,s=QUJD,i=0", ScramError::bad_iteration_count},
      {"r=abcdef,s=QUJD,i=10000001", ScramError::bad_iteration_count},
      {"r=abcdef,s=QUJD,i=-1", ScramError::bad_iteration_count},
      {"r=abcdef,s=QUJD,i=4096x", ScramError::bad_iteration_count},
      {"r=abcdef,s=QUJD,i=", ScramError::bad_iteration_count},
      {"r=abcdef,s=QUJD,i=99999999999999999999", ScramError::bad_iteration_count},
      {"r=abcdef,s=,i=4096", ScramError::bad_salt},
      {"r=abcdef,s=QUJ,i=4096", ScramError::bad_salt},
      {"r=abcdef,s=Q*JD,i=4096", ScramError::bad_salt},
      {"m=ext,r=abcdef,s=QUJD,i=4096", ScramError::unsupported_extension},
      {"r=abcdef,i=4096,s=QUJD", ScramError::malformed_message},
      {"r=abcdef,s=QUJD", ScramError::malformed_message},
      {"", ScramError::malformed_message},
      {"garbage", ScramError::malformed_message},
      {"e=other-error", ScramError::malformed_message},
  };
  for (const auto& c : cases) {
    auto client = client_after_first();
    std::string out;
    EXPECT_EQ(client->handle_server_first(c.server_first, out), c.want) << c.server_first;
    EXPECT_TRUE(out.empty());
    // A failed client stays failed.
    EXPECT_EQ(client->handle_server_final("v=AAAA"), ScramError::wrong_state);
  }
  // Iterations at the bounds are accepted (1 is weak but PostgreSQL allows it), and unknown
  // trailing extensions are ignored.
  for (string_view ok : {"r=abcdef,s=QUJD,i=1", "r=abcdef,s=QUJD,i=1,x=future"}) {
    auto client = client_after_first();
    std::string out;
    EXPECT_EQ(client->handle_server_first(ok, out), ScramError::ok) << ok;
  }
}

TEST(Scram, ServerFinalMessageChecks) {
  for (auto [final_msg, want] : std::initializer_list<std::pair<string_view, ScramError>>{
           {kRfcServerFinal, ScramError::ok},
           {"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", ScramError::invalid_server_signature},
           {"v=AAAA", ScramError::malformed_message},
           {"v=", ScramError::malformed_message},
           {"e=invalid-proof", ScramError::server_error},
           {"x=1", ScramError::malformed_message},
           {"", ScramError::malformed_message},
       }) {
    ScramClient client("pencil", {.username = "user", .client_nonce = kRfcClientNonce});
    std::string out;
    ASSERT_EQ(client.client_first(out), ScramError::ok);
    ASSERT_EQ(client.handle_server_first(kRfcServerFirst, out), ScramError::ok);
    EXPECT_EQ(client.handle_server_final(final_msg), want) << final_msg;
    if (want == ScramError::server_error) {
      EXPECT_EQ(client.server_error(), "invalid-proof");
    }
  }
}

TEST(Scram, ClientCallsOutOfOrder) {
  ScramClient client("pw");
  std::string out;
  EXPECT_EQ(client.handle_server_first("r=a,s=QUJD,i=1", out), ScramError::wrong_state);
  ScramClient twice("pw");
  ASSERT_EQ(twice.client_first(out), ScramError::ok);
  EXPECT_EQ(twice.client_first(out), ScramError::wrong_state);
  ScramClient bad_nonce("pw", {.client_nonce = "has,comma"});
  EXPECT_EQ(bad_nonce.client_first(out), ScramError::bad_argument);
}

TEST(Scram, UsernameIsEscaped) {
  ScramClient client("pw", {.username = "a=b,c", .client_nonce = "n"});
  std::string out;
  ASSERT_EQ(client.client_first(out), ScramError::ok);
  EXPECT_EQ(out, "n,,n=a=3Db=2Cc,r=n");
}

TEST(Scram, ServerClientFirstChecks) {
  struct Case {
    string_view client_first;
    ScramError want;
    bool plus_offered = false;
  };
  const Case cases[] = {
      {"n,,n=,r=abc", ScramError::ok},
      {"y,,n=,r=abc", ScramError::ok},
      {"n,,n=user,r=abc,x=ext", ScramError::ok},
      {"y,,n=,r=abc", ScramError::channel_binding_downgrade, true},
      {"p=tls-server-end-point,,n=,r=abc", ScramError::channel_binding_unsupported},
      {"n,a=admin,n=,r=abc", ScramError::authzid_unsupported},
      {"n,,m=ext,n=,r=abc", ScramError::unsupported_extension},
      {"n,,n=,r=", ScramError::malformed_message},
      {"n,,n=,r=a\x7f", ScramError::malformed_message},
      {"n,,r=abc", ScramError::malformed_message},
      {"n,,n=", ScramError::malformed_message},
      {"n,,", ScramError::malformed_message},
      {"n,", ScramError::malformed_message},
      {"n", ScramError::malformed_message},
      {"", ScramError::malformed_message},
      {"x,,n=,r=abc", ScramError::malformed_message},
      {"nn,n=,r=abc", ScramError::malformed_message},
  };
  for (const auto& c : cases) {
    ScramServer server(verifier_for("pw", 1), {.channel_binding_offered = c.plus_offered});
    std::string out;
    EXPECT_EQ(server.handle_client_first(c.client_first, out), c.want) << c.client_first;
    EXPECT_EQ(out.empty(), c.want != ScramError::ok);
  }
}

TEST(Scram, ServerClientFinalChecks) {
  const auto v = verifier_for("pw", 1);
  auto server_after_first = [&] {
    auto s = std::make_unique<ScramServer>(v, ScramServer::Options{.server_nonce = "SRV"});
    std::string out;
    EXPECT_EQ(s->handle_client_first("n,,n=,r=CLI", out), ScramError::ok);
    EXPECT_EQ(out, "r=CLISRV,s=" + detail::base64_encode(v.salt) + ",i=1");
    return s;
  };
  const std::string proof = "p=" + detail::base64_encode(std::string(32, 'x'));
  struct Case {
    std::string client_final;
    ScramError want;
  };
  const Case cases[] = {
      {"c=biws,r=CLISRV," + proof, ScramError::invalid_proof},  // well-formed, wrong proof
      {"c=biws,r=CLISRV,x=ext," + proof, ScramError::invalid_proof},
      {"c=eSws,r=CLISRV," + proof, ScramError::malformed_message},  // "y,," but client sent n
      {"c=biws,r=CLISRVX," + proof, ScramError::nonce_mismatch},
      {"c=biws,r=CLI," + proof, ScramError::nonce_mismatch},
      {"c=biws,r=CLISRV,p=AAAA", ScramError::malformed_message},
      {"c=biws,r=CLISRV", ScramError::malformed_message},
      {"r=CLISRV,c=biws," + proof, ScramError::malformed_message},
      {"c=biws," + proof, ScramError::malformed_message},
      {"", ScramError::malformed_message},
      {",p=", ScramError::malformed_message},
  };
  for (const auto& c : cases) {
    auto server = server_after_first();
    std::string out;
    EXPECT_EQ(server->handle_client_final(c.client_final, out), c.want) << c.client_final;
    EXPECT_TRUE(out.empty());
  }
}

TEST(Scram, DoomedServerLooksNormalAndAlwaysFails) {
  std::string a, b;
  auto s1 = ScramServer::doomed("ghost", "mock-secret");
  auto s2 = ScramServer::doomed("ghost", "mock-secret", {.server_nonce = "Z"});
  ASSERT_EQ(s1.handle_client_first("n,,n=,r=abc", a), ScramError::ok);
  ASSERT_EQ(s2.handle_client_first("n,,n=,r=abc", b), ScramError::ok);
  // Same salt for the same user on every attempt.
  EXPECT_EQ(a.substr(a.find(",s=")), b.substr(b.find(",s=")));
  auto s3 = ScramServer::doomed("other", "mock-secret");
  std::string c;
  ASSERT_EQ(s3.handle_client_first("n,,n=,r=abc", c), ScramError::ok);
  EXPECT_NE(a.substr(a.find(",s=")), c.substr(c.find(",s=")));

  // Even a client that happens to hold keys for that salt cannot get in.
  auto doomed = ScramServer::doomed("ghost", "mock-secret");
  ScramClient client("anything");
  EXPECT_EQ(run(client, doomed).server_final, ScramError::invalid_proof);
}

TEST(Scram, CachedKeysSkipThePasswordAndMustMatchTheSalt) {
  ScramServer server(verifier_for("pw"));
  ScramClient first("pw");
  ASSERT_EQ(run(first, server).client_verify, ScramError::ok);
  const ScramKeys keys = first.keys();
  EXPECT_EQ(keys.iterations, 4096u);

  // With matching cached keys the password is not used at all.
  ScramServer again(verifier_for("pw"));  // new random salt: keys do not match, password used
  ScramClient wrong_pw_with_keys("not-pw", {.cached_keys = &keys});
  EXPECT_EQ(run(wrong_pw_with_keys, again).server_final, ScramError::invalid_proof);

  auto same = make_scram_verifier("pw", keys.iterations, keys.salt);
  ASSERT_TRUE(same);
  ScramServer same_salt(*same);
  ScramClient cached("not-pw", {.cached_keys = &keys});
  Exchange x = run(cached, same_salt);
  EXPECT_EQ(x.server_final, ScramError::ok);
  EXPECT_EQ(x.client_verify, ScramError::ok);
}

TEST(Scram, ServerRecoversTheClientKeyForPassThrough) {
  // A front end authenticates a client, then logs in to a PostgreSQL server holding the same
  // verifier with the recovered keys and no password.
  auto v = make_scram_verifier("pass-through", 4096);
  ASSERT_TRUE(v);
  ScramServer front(*v);
  ScramClient app("pass-through");
  ASSERT_EQ(run(app, front).client_verify, ScramError::ok);
  ScramKeys recovered = front.keys();

  ScramServer real_pg(*v);
  ScramClient proxy("", {.cached_keys = &recovered});
  Exchange x = run(proxy, real_pg);
  EXPECT_EQ(x.server_final, ScramError::ok);
  EXPECT_EQ(x.client_verify, ScramError::ok);
}

TEST(Scram, VerifierIterationBounds) {
  EXPECT_FALSE(make_scram_verifier("pw", 0));
  EXPECT_FALSE(make_scram_verifier("pw", kScramMaxIterations + 1));
  auto v = make_scram_verifier("pw", 1);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->salt.size(), 16u);
  auto back = parse_scram_verifier(format_scram_verifier(*v));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->salt, v->salt);
  EXPECT_EQ(back->stored_key, v->stored_key);
  EXPECT_EQ(back->server_key, v->server_key);
  EXPECT_EQ(back->iterations, 1u);
}

TEST(Scram, ErrorTextNeverContainsThePassword) {
  const std::string password = "hunter2-very-secret";
  ScramClient client(password);
  std::string out;
  ASSERT_EQ(client.client_first(out), ScramError::ok);
  EXPECT_EQ(out.find(password), std::string::npos);
  ScramError e =
      client.handle_server_first("r=" + out.substr(out.find("r=") + 2) + "X,s=QUJD,i=1", out);
  EXPECT_EQ(e, ScramError::ok);
  EXPECT_EQ(out.find(password), std::string::npos);
  for (int i = 0; i <= static_cast<int>(ScramError::crypto_failure); ++i) {
    string_view text = to_string(static_cast<ScramError>(i));
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.find(password), string_view::npos);
  }
}

TEST(Base64, StrictDecoding) {
  EXPECT_EQ(detail::base64_encode(""), "");
  EXPECT_EQ(detail::base64_encode("f"), "Zg==");
  EXPECT_EQ(detail::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(detail::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(detail::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(detail::base64_encode("n,,"), "biws");
  EXPECT_EQ(detail::base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(detail::base64_decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(detail::base64_decode(""), "");
  for (string_view bad :
       {"Zg", "Zg=", "Z===", "====", "Zg==Zg==", "Zm9v\n", "Zm 9", "Zm=v", "Z=g="}) {
    EXPECT_FALSE(detail::base64_decode(bad)) << bad;
  }
}

TEST(Md5, PasswordHashAndResponse) {
  // Checked against PostgreSQL 15: ALTER ROLE pgwire_vec PASSWORD 'pencil' with md5 stores this.
  EXPECT_EQ(md5_password_hash("pgwire_vec", "pencil"), "md5c86057a50b97c3a1213a26d1608eb36a");
  const Md5Salt salt{1, 2, 3, 4};
  auto response = md5_password_response("binds", "binds-secret", salt);
  ASSERT_TRUE(response);
  EXPECT_EQ(*response, "md5577cbffb0667e373619a5a1695ef2c12");
  auto stored = md5_password_hash("binds", "binds-secret");
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, "md5763da9561234a0bb568a537b39f17084");
  EXPECT_TRUE(verify_md5_response(*stored, salt, *response));
  EXPECT_FALSE(verify_md5_response(*stored, Md5Salt{1, 2, 3, 5}, *response));
  EXPECT_FALSE(verify_md5_response(*stored, salt, response->substr(1)));
  EXPECT_FALSE(verify_md5_response("md5short", salt, *response));
  EXPECT_FALSE(verify_md5_response("", salt, ""));
}
