#include "binds/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace binds {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using namespace std::chrono_literals;

const std::string kDir = std::string(BINDS_TEST_DATA) + "/configs";
// Every secret below starts with "Sup3r" so one assertion catches any leak, encoded or not.
constexpr const char* kPassword = "Sup3r$ecret@pw/x%41:?";
constexpr const char* kLeakMarker = "Sup3r";

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("MAIN_PASSWORD", "Sup3r-s3cr@t/p:w%zz", 1);
    setenv("BINDS_TEST_PASSWORD", kPassword, 1);
    setenv("BINDS_TEST_DEFAULT_BIND", "mem", 1);
    setenv("BINDS_TEST_POOL_MAX", "7", 1);
    unsetenv("BINDS_TEST_UNSET_VARIABLE");
  }

  static std::string error_of(const std::string& file) {
    try {
      load_config_file(kDir + "/" + file);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << file << " loaded without error";
    return {};
  }
  static std::string text_error(const std::string& text, const std::string& path = "/etc/binds/binds.yaml") {
    try {
      load_config_text(text, path);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "loaded without error:\n" << text;
    return {};
  }
};

TEST_F(ConfigTest, DocumentedExample) {
  auto cfg = load_config_file(kDir + "/good-example.yaml");
  EXPECT_EQ(cfg->source, kDir + "/good-example.yaml");
  EXPECT_EQ(cfg->listen.tcp, "127.0.0.1:7878");
  const auto dir = std::filesystem::absolute(kDir).lexically_normal();
  EXPECT_EQ(cfg->listen.unix, (dir / "run/bindsd.sock").string());
  EXPECT_EQ(cfg->default_bind, "main");
  EXPECT_EQ(cfg->limits.max_frame, 16u * 1024 * 1024);
  EXPECT_EQ(cfg->limits.batch_rows, 1000u);
  EXPECT_EQ(cfg->limits.batch_bytes, Limits{}.batch_bytes);
  ASSERT_EQ(cfg->binds.size(), 3u);

  const BindConfig* main = cfg->find("main");
  ASSERT_TRUE(main);
  EXPECT_EQ(main->key, "main");
  EXPECT_EQ(main->url.backend, Backend::postgresql);
  EXPECT_EQ(main->url.user, "app");
  // Expanded into the user:password part, the variable is taken literally, whatever it holds.
  EXPECT_EQ(main->url.password, "Sup3r-s3cr@t/p:w%zz");
  EXPECT_EQ(main->url.host, "localhost");
  EXPECT_EQ(*main->url.port, 5432);
  EXPECT_EQ(main->url.database, "main");
  EXPECT_EQ(main->pool.max, 20);
  EXPECT_EQ(main->pool.min, 2);
  EXPECT_EQ(main->pool.acquire_timeout, 5s);
  EXPECT_EQ(main->pool.idle_timeout, 10min);
  EXPECT_EQ(main->pool.max_lifetime, 1h);
  EXPECT_THAT(main->url.redacted(), Not(HasSubstr(kLeakMarker)));

  const BindConfig* users = cfg->find("users");
  ASSERT_TRUE(users);
  EXPECT_EQ(users->url.backend, Backend::mysql);
  EXPECT_EQ(users->url.user, "users");
  EXPECT_EQ(users->url.password, "");
  EXPECT_EQ(users->url.database, "users");
  EXPECT_EQ(users->pool, PoolSettings{});

  const BindConfig* appmeta = cfg->find("appmeta");
  ASSERT_TRUE(appmeta);
  EXPECT_EQ(appmeta->url.backend, Backend::sqlite);
  EXPECT_EQ(appmeta->url.database, "/var/lib/binds/appmeta.db");
  EXPECT_EQ(cfg->find("nope"), nullptr);
}

TEST_F(ConfigTest, FlaskSqlalchemyDocsSeed) {
  auto cfg = load_config_file(kDir + "/good-flask-seed.yaml");
  EXPECT_EQ(cfg->default_bind, "main");
  EXPECT_EQ(cfg->listen.tcp, "127.0.0.1:0");
  EXPECT_EQ(cfg->listen.unix, "");
  EXPECT_EQ(cfg->find("main")->url.backend, Backend::sqlite);
  EXPECT_EQ(cfg->find("main")->url.database, "/tmp/test.db");
  EXPECT_EQ(cfg->find("meta")->url.backend, Backend::postgresql);
  EXPECT_EQ(cfg->find("meta")->url.host, "localhost");
  EXPECT_EQ(cfg->find("meta")->url.database, "main");
  EXPECT_EQ(cfg->find("users")->url.backend, Backend::mysql);
  EXPECT_EQ(cfg->find("users")->url.database, "users");
  EXPECT_EQ(cfg->find("appmeta")->url.database, "/path/to/appmeta.db");
}

TEST_F(ConfigTest, SingleBindIsDefaultAndRelativePathsResolve) {
  auto cfg = load_config_file(kDir + "/good-single.yaml");
  const auto dir = std::filesystem::absolute(kDir).lexically_normal();
  EXPECT_EQ(cfg->default_bind, "only");
  EXPECT_EQ(cfg->listen.tcp, "");  // `tcp:` left empty
  EXPECT_EQ(cfg->listen.unix, (dir / "bindsd.sock").string());
  const auto& url = cfg->find("only")->url;
  EXPECT_EQ(url.database, (dir / "data/only.db").string());
  EXPECT_EQ(url.options.at("mode"), "rwc");
}

TEST_F(ConfigTest, FullFeatured) {
  auto cfg = load_config_file(kDir + "/good-full.yaml");
  EXPECT_EQ(cfg->listen.tcp, "[::1]:0");
  EXPECT_EQ(cfg->listen.unix, "/tmp/binds-test.sock");
  EXPECT_EQ(cfg->default_bind, "mem");
  EXPECT_EQ(cfg->limits.max_frame, 4096u);
  EXPECT_EQ(cfg->limits.batch_rows, 1u);
  EXPECT_EQ(cfg->limits.batch_bytes, 65536u);
  EXPECT_EQ(cfg->limits.client_buffer, 2097152u);
  EXPECT_EQ(cfg->limits.max_in_flight, 64u);
  EXPECT_EQ(cfg->limits.max_clients, 3u);

  const auto* pg = cfg->find("pg.main-1");
  ASSERT_TRUE(pg);
  EXPECT_EQ(pg->url.password, kPassword);
  EXPECT_EQ(pg->url.host, "::1");
  EXPECT_EQ(*pg->url.port, 5433);
  EXPECT_EQ(pg->url.options.at("sslmode"), "require");
  EXPECT_EQ(pg->url.options.at("connect_timeout"), "3");
  EXPECT_EQ(pg->pool.max, 7);
  EXPECT_EQ(pg->pool.min, 0);
  EXPECT_EQ(pg->pool.acquire_timeout, 500ms);
  EXPECT_EQ(pg->pool.idle_timeout, 30s);
  EXPECT_EQ(pg->pool.max_lifetime, 24h);

  const auto* maria = cfg->find("maria");
  ASSERT_TRUE(maria);
  EXPECT_EQ(maria->url.backend, Backend::mysql);
  EXPECT_EQ(maria->url.password, "$dollar");  // $$ is a literal $
  EXPECT_EQ(maria->url.options.at("unix_socket"), "/run/mysqld/mysqld.sock");

  EXPECT_TRUE(cfg->find("mem")->url.sqlite_memory);
}

struct Bad {
  const char* file;
  int line;
  const char* path;  // "" when the message has no key path
  const char* expect;
};

class BadConfig : public ConfigTest, public ::testing::WithParamInterface<Bad> {};

TEST_P(BadConfig, FailsWithLocationAndNoSecrets) {
  const Bad& b = GetParam();
  const std::string msg = error_of(b.file);
  std::string where = std::string(b.file) + ":" + std::to_string(b.line) + ": ";
  if (*b.path) where += std::string(b.path) + ": ";
  EXPECT_THAT(msg, StartsWith(kDir + "/" + b.file + ":"));
  EXPECT_THAT(msg, HasSubstr(where));
  EXPECT_THAT(msg, HasSubstr(b.expect));
  EXPECT_THAT(msg, Not(HasSubstr(kLeakMarker)));
}

INSTANTIATE_TEST_SUITE_P(
    Files, BadConfig,
    ::testing::Values(
        Bad{"bad-unknown-top-key.yaml", 5, "lisen", "unknown key (allowed: listen, default, binds, limits, metrics, shutdown, stats_interval)"},
        Bad{"bad-unknown-pool-key.yaml", 7, "binds.main.pool.maxx",
            "unknown key (allowed: max, min, acquire_timeout, idle_timeout, max_lifetime)"},
        Bad{"bad-url-port.yaml", 6, "binds.main.url", "port must be a number from 1 to 65535 (got \"99999\")"},
        Bad{"bad-url-scheme.yaml", 3, "binds.main", "unknown scheme \"oracle\""},
        Bad{"bad-url-no-scheme.yaml", 3, "binds.main", "missing \"://\""},
        Bad{"bad-sqlite-host.yaml", 3, "binds.appmeta", "a sqlite URL has no host"},
        Bad{"bad-duration.yaml", 5, "binds.main.pool.acquire_timeout",
            "bad duration \"5x\" (use e.g. 500ms, 5s, 10m, 1h)"},
        Bad{"bad-negative-duration.yaml", 6, "binds.main.pool.idle_timeout", "must not be negative"},
        Bad{"bad-zero-duration.yaml", 6, "binds.main.pool.max_lifetime", "must be > 0"},
        Bad{"bad-min-gt-max.yaml", 6, "binds.main.pool.min", "must be <= max (got min 30, max 20)"},
        Bad{"bad-min-gt-default-max.yaml", 7, "binds.main.pool.min", "must be <= max (got min 11, max 10)"},
        Bad{"bad-default.yaml", 5, "default", "no bind named \"nope\" (have: main, users)"},
        Bad{"bad-missing-default.yaml", 1, "default", "required when there is more than one bind"},
        Bad{"bad-unset-env.yaml", 5, "binds.users.url", "environment variable BINDS_TEST_UNSET_VARIABLE is not set"},
        Bad{"bad-env-syntax.yaml", 3, "binds.main", "unterminated ${"},
        Bad{"bad-binds-not-map.yaml", 3, "binds", "must be a map (got a list)"},
        Bad{"bad-binds-missing.yaml", 1, "binds", "missing"},
        Bad{"bad-pool-max-zero.yaml", 8, "binds.users.pool.max", "must be >= 1 (got 0)"},
        Bad{"bad-pool-max-huge.yaml", 5, "binds.main.pool.max", "must be <= 10000"},
        Bad{"bad-yaml-syntax.yaml", 4, "", "YAML syntax error"},
        Bad{"bad-empty-binds.yaml", 2, "binds", "must define at least one bind"},
        Bad{"bad-bind-key-chars.yaml", 5, "binds.users/v2", "bad bind name \"users/v2\""},
        Bad{"bad-bind-key-space.yaml", 3, "binds.my bind", "bad bind name"},
        Bad{"bad-duplicate-bind.yaml", 4, "binds.main", "duplicate key"},
        Bad{"bad-bind-no-url.yaml", 4, "binds.main.url", "missing"},
        Bad{"bad-bind-unknown-key.yaml", 4, "binds.main.uri", "unknown key (allowed: url, pool, statement_timeout, idle_in_transaction_timeout, reset, attach_dir)"},
        Bad{"bad-bind-null.yaml", 3, "binds.main", "must be a database URL or a map with url and pool"},
        Bad{"bad-no-listen.yaml", 1, "listen", "missing"},
        Bad{"bad-listen-empty.yaml", 4, "listen", "give at least one of listen.tcp and listen.unix"},
        Bad{"bad-listen-tcp.yaml", 4, "listen.tcp", "expected host:port"},
        Bad{"bad-listen-port.yaml", 4, "listen.tcp", "port must be a number from 0 to 65535"},
        Bad{"bad-max-frame.yaml", 6, "limits.max_frame", "must be >= 4096 (got 100)"},
        Bad{"bad-limit-not-int.yaml", 5, "limits.batch_rows", "must be an integer (got \"lots\")"},
        Bad{"bad-limit-unknown.yaml", 5, "limits.max_rows", "unknown key (allowed: max_frame, batch_rows"},
        Bad{"bad-empty.yaml", 1, "", "config is empty"},
        Bad{"bad-not-map.yaml", 1, "", "config must be a map"},
        Bad{"bad-default-secret.yaml", 5, "default", "no bind named \"***\""}),
    [](const auto& info) {
      std::string name = info.param.file;
      name = name.substr(4, name.size() - 9);  // strip "bad-" and ".yaml"
      for (char& c : name) {
        if (c == '-') c = '_';
      }
      return name;
    });

TEST_F(ConfigTest, MissingFile) {
  const std::string msg = error_of("does-not-exist.yaml");
  EXPECT_THAT(msg, HasSubstr("does-not-exist.yaml: cannot read config file: No such file or directory"));
}

TEST_F(ConfigTest, DirectoryIsNotAFile) {
  try {
    load_config_file(kDir);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("is a directory"));
  }
}

TEST_F(ConfigTest, TextUsesPathForMessagesAndRelativePaths) {
  auto cfg = load_config_text("listen: { unix: s.sock }\nbinds: { x: 'sqlite:///x.db' }\n", "/srv/app/binds.yaml");
  EXPECT_EQ(cfg->source, "/srv/app/binds.yaml");
  EXPECT_EQ(cfg->listen.unix, "/srv/app/s.sock");
  EXPECT_EQ(cfg->find("x")->url.database, "/srv/app/x.db");
  EXPECT_THAT(text_error("binds: { x: 'sqlite://' }\n", "/srv/app/binds.yaml"),
              StartsWith("/srv/app/binds.yaml:1: listen: missing"));
}

TEST_F(ConfigTest, EnvExpansion) {
  setenv("BINDS_TEST_HOST", "127.0.0.1", 1);
  setenv("BINDS_TEST_URL", "postgresql://u:p%40ss@h/d", 1);
  auto cfg = load_config_text("listen: { tcp: '${BINDS_TEST_HOST}:0' }\nbinds: { a: '${BINDS_TEST_URL}' }\n",
                              "/etc/binds/x.yaml");
  EXPECT_EQ(cfg->listen.tcp, "127.0.0.1:0");
  // A whole URL from the environment is used verbatim (it is already URL-encoded).
  EXPECT_EQ(cfg->find("a")->url.password, "p@ss");
  // Outside the user:password part values are inserted as they are.
  setenv("BINDS_TEST_DB", "my%20db", 1);
  EXPECT_EQ(load_config_text("listen: { tcp: 'h:1' }\nbinds: { a: 'postgresql://h/${BINDS_TEST_DB}' }\n", "x.yaml")
                ->find("a")
                ->url.database,
            "my db");
  // Set but empty is fine.
  setenv("BINDS_TEST_EMPTY", "", 1);
  EXPECT_EQ(load_config_text("listen: { tcp: 'h:1' }\nbinds: { a: 'mysql://u:${BINDS_TEST_EMPTY}@h/d' }\n", "x.yaml")
                ->find("a")
                ->url.password,
            "");
  // A lone $ stays.
  EXPECT_EQ(load_config_text("listen: { tcp: 'h:1' }\nbinds: { a: 'mysql://u:a$b@h/d' }\n", "x.yaml")
                ->find("a")
                ->url.password,
            "a$b");
}

TEST_F(ConfigTest, EnvErrors) {
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'mysql://u:${}@h/d' }\n"),
              HasSubstr("binds.yaml:2: binds.a: bad environment variable name"));
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'mysql://u:${1A}@h/d' }\n"),
              HasSubstr("bad environment variable name"));
  EXPECT_THAT(text_error("listen:\n  tcp: '${BINDS_TEST_UNSET_VARIABLE}:1'\nbinds: { a: sqlite:// }\n"),
              HasSubstr("binds.yaml:2: listen.tcp: environment variable BINDS_TEST_UNSET_VARIABLE is not set"));
}

// Passwords that reach the URL through the environment never show up, whatever breaks.
TEST_F(ConfigTest, EnvPasswordsNeverLeak) {
  for (const char* url : {
           "postgresql://app:${BINDS_TEST_PASSWORD}@h:0/d",
           "postgresql://app:${BINDS_TEST_PASSWORD}@h/d?a=1&a=2",
           "postgresql://app:${BINDS_TEST_PASSWORD}@h/d%zz",
           "postgresql://app:${BINDS_TEST_PASSWORD}@[::1/d",
           "oracle://app:${BINDS_TEST_PASSWORD}@h/d",
           "sqlite://app:${BINDS_TEST_PASSWORD}@/x.db",
           "postgresql//app:${BINDS_TEST_PASSWORD}@h/d",
       }) {
    SCOPED_TRACE(url);
    const std::string msg =
        text_error(std::string("listen: { tcp: 'h:1' }\nbinds:\n  a:\n    url: '") + url + "'\n    pool: { max: 0 }\n");
    EXPECT_THAT(msg, HasSubstr("binds.yaml:4: binds.a.url: "));
    EXPECT_THAT(msg, Not(HasSubstr(kLeakMarker)));
  }
  // The pool error comes after a good URL: nothing of the password either.
  const std::string msg = text_error(
      "listen: { tcp: 'h:1' }\nbinds:\n  a:\n    url: 'postgresql://app:${BINDS_TEST_PASSWORD}@h/d'\n    pool: { max: 0 }\n");
  EXPECT_THAT(msg, HasSubstr("binds.yaml:5: binds.a.pool.max: must be >= 1 (got 0)"));
  EXPECT_THAT(msg, Not(HasSubstr(kLeakMarker)));
}

TEST_F(ConfigTest, ListenForms) {
  auto ok = [](const std::string& tcp) {
    return load_config_text("listen: { tcp: '" + tcp + "' }\nbinds: { a: 'sqlite://' }\n", "x.yaml")->listen.tcp;
  };
  EXPECT_EQ(ok("0.0.0.0:65535"), "0.0.0.0:65535");
  EXPECT_EQ(ok("localhost:0"), "localhost:0");
  EXPECT_EQ(ok("[::]:7878"), "[::]:7878");
  for (const char* bad : {":7878", "[::1]", "[::1]7878", "::1:7878", "h:", "h:x", "h:-1", "h:123456"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(text_error(std::string("listen: { tcp: '") + bad + "' }\nbinds: { a: 'sqlite://' }\n"),
                HasSubstr("binds.yaml:1: listen.tcp: "));
  }
  EXPECT_THAT(text_error("listen: { unix: '' }\nbinds: { a: 'sqlite://' }\n"), HasSubstr("listen.unix: must not be empty"));
  EXPECT_THAT(text_error("listen: { unix: '/" + std::string(200, 'x') + "' }\nbinds: { a: 'sqlite://' }\n"),
              HasSubstr("listen.unix: socket path"));
  EXPECT_THAT(text_error("listen: [a]\nbinds: { a: 'sqlite://' }\n"), HasSubstr("binds.yaml:1: listen: must be a map"));
  EXPECT_THAT(text_error("listen: { tcp: [1] }\nbinds: { a: 'sqlite://' }\n"),
              HasSubstr("listen.tcp: must be a string (got a list)"));
}

TEST_F(ConfigTest, LimitsBounds) {
  auto frame = [](const std::string& v) {
    return load_config_text("listen: { tcp: 'h:1' }\nbinds: { a: 'sqlite://' }\nlimits: { max_frame: " + v + " }\n",
                            "x.yaml")
        ->limits.max_frame;
  };
  EXPECT_EQ(frame("4096"), 4096u);
  EXPECT_EQ(frame("1073741824"), 1u << 30);
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'sqlite://' }\nlimits: { max_frame: 1073741825 }\n"),
              HasSubstr("limits.max_frame: must be <= 1073741824"));
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'sqlite://' }\nlimits: { max_clients: 0 }\n"),
              HasSubstr("limits.max_clients: must be >= 1 (got 0)"));
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'sqlite://' }\nlimits: { batch_bytes: -5 }\n"),
              HasSubstr("limits.batch_bytes: must be >= 1 (got -5)"));
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'sqlite://' }\nlimits: { batch_bytes: 4294967296 }\n"),
              HasSubstr("limits.batch_bytes: must be <= 4294967295"));
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'sqlite://' }\nlimits: { batch_rows: 1.5 }\n"),
              HasSubstr("limits.batch_rows: must be an integer"));
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: 'sqlite://' }\nlimits: 5\n"),
              HasSubstr("limits: must be a map (got a scalar)"));
}

TEST_F(ConfigTest, ResetPolicies) {
  auto policy = [](const std::string& v) {
    return load_config_text("listen: { tcp: 'h:1' }\nbinds: { a: { url: 'postgresql://h/d'" + v + " } }\n", "x.yaml")
        ->find("a")
        ->reset;
  };
  EXPECT_EQ(policy(""), ResetPolicy::automatic);
  EXPECT_EQ(policy(", reset: auto"), ResetPolicy::automatic);
  EXPECT_EQ(policy(", reset: always"), ResetPolicy::always);
  EXPECT_EQ(policy(", reset: seen"), ResetPolicy::seen);
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: { url: 'postgresql://h/d', reset: never } }\n"),
              HasSubstr("binds.a.reset: must be auto, always or seen (got \"never\")"));
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds: { a: { url: 'postgresql://h/d', reset: [seen] } }\n"),
              HasSubstr("binds.a.reset"));
}

TEST_F(ConfigTest, NonStringKeyRejected) {
  EXPECT_THAT(text_error("listen: { tcp: 'h:1' }\nbinds:\n  ? [a, b]\n  : sqlite://\n"),
              HasSubstr("binds.yaml:3: binds: keys must be plain strings"));
}

TEST(ParseDuration, Valid) {
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("5s"), 5s);
  EXPECT_EQ(parse_duration("10m"), 10min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("1d"), 24h);
  EXPECT_EQ(parse_duration("30"), 30s);
  EXPECT_EQ(parse_duration("0"), 0ms);
  EXPECT_EQ(parse_duration("36500d"), 36500 * 24h);
}

TEST(FormatDuration, AsPeopleWriteItAndReadsBack) {
  EXPECT_EQ(format_duration(600000ms), "10m");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(5min), "5m");
  EXPECT_EQ(format_duration(2h), "2h");
  EXPECT_EQ(format_duration(48h), "2d");
  EXPECT_EQ(format_duration(0ms), "0");
  for (Millis d : {Millis(1), Millis(999), Millis(61000), Millis(3600000), Millis(86400001)})
    EXPECT_EQ(parse_duration(format_duration(d)), d) << d.count();
}

TEST(ParseDuration, Invalid) {
  struct Case {
    const char* in;
    const char* expect;
  };
  for (const auto& c : {Case{"", "bad duration \"\" (use e.g. 500ms, 5s, 10m, 1h)"},
                        Case{"5x", "bad duration \"5x\" (use e.g. 500ms, 5s, 10m, 1h)"},
                        Case{"s", "use e.g."},
                        Case{"1.5s", "use e.g."},
                        Case{"5 s", "use e.g."},
                        Case{" 5s", "use e.g."},
                        Case{"5sec", "use e.g."},
                        Case{"5S", "use e.g."},
                        Case{"+5s", "use e.g."},
                        Case{"-5s", "bad duration \"-5s\": must not be negative"},
                        Case{"36501d", "too large"},
                        Case{"99999999999999999999999ms", "too large"},
                        Case{"9223372036854775807h", "too large"}}) {
    SCOPED_TRACE(c.in);
    try {
      parse_duration(c.in);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(c.expect));
    }
  }
}

}  // namespace
}  // namespace binds

TEST(ConfigTimeouts, StatementAndIdleInTransactionTimeoutsPerBind) {
  auto cfg = binds::load_config_text(
      "listen: {unix: /tmp/x.sock}\n"
      "default: a\n"
      "binds:\n"
      "  a:\n    url: sqlite://\n    statement_timeout: 30s\n    idle_in_transaction_timeout: off\n"
      "  b: sqlite://\n",
      "/etc/binds/binds.yaml");
  EXPECT_EQ(cfg->find("a")->statement_timeout, std::chrono::seconds(30));
  EXPECT_EQ(cfg->find("a")->idle_in_transaction_timeout.count(), 0);
  EXPECT_EQ(cfg->find("b")->statement_timeout.count(), 0);  // no limit unless asked
  EXPECT_EQ(cfg->find("b")->idle_in_transaction_timeout, std::chrono::minutes(5));
  try {
    binds::load_config_text("listen: {unix: /tmp/x.sock}\nbinds:\n  a:\n    url: sqlite://\n    statement_timeout: soon\n",
                            "/etc/binds/binds.yaml");
    ADD_FAILURE() << "bad duration accepted";
  } catch (const binds::ConfigError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("binds.yaml:5: binds.a.statement_timeout"));
  }
}
