#include "binds/url.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace binds {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Returns the message of the UrlError that parsing must throw.
std::string url_error(std::string_view url, std::string_view base_dir = {}) {
  try {
    parse_url(url, base_dir);
  } catch (const UrlError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UrlError for " << url;
  return {};
}

TEST(BackendName, AllBackends) {
  EXPECT_EQ(backend_name(Backend::postgresql), "postgresql");
  EXPECT_EQ(backend_name(Backend::mysql), "mysql");
  EXPECT_EQ(backend_name(Backend::sqlite), "sqlite");
}

// The seed configuration from the Flask-SQLAlchemy "Multiple Databases with Binds" docs.
TEST(ParseUrl, FlaskSqlalchemyDocsSeed) {
  auto main = parse_url("sqlite:////tmp/test.db");
  EXPECT_EQ(main.backend, Backend::sqlite);
  EXPECT_EQ(main.database, "/tmp/test.db");
  EXPECT_FALSE(main.sqlite_memory);

  auto pg = parse_url("postgres://localhost/main");
  EXPECT_EQ(pg.backend, Backend::postgresql);
  EXPECT_EQ(pg.scheme, "postgres");
  EXPECT_EQ(pg.host, "localhost");
  EXPECT_EQ(pg.database, "main");
  EXPECT_FALSE(pg.port);
  EXPECT_EQ(pg.user, "");

  auto my = parse_url("mysqldb://localhost/users");
  EXPECT_EQ(my.backend, Backend::mysql);
  EXPECT_EQ(my.host, "localhost");
  EXPECT_EQ(my.database, "users");

  auto meta = parse_url("sqlite:////path/to/appmeta.db");
  EXPECT_EQ(meta.backend, Backend::sqlite);
  EXPECT_EQ(meta.database, "/path/to/appmeta.db");
}

TEST(ParseUrl, PostgresqlFull) {
  auto u = parse_url("postgresql://app:secret@db.example.com:5433/main");
  EXPECT_EQ(u.backend, Backend::postgresql);
  EXPECT_EQ(u.scheme, "postgresql");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "secret");
  EXPECT_EQ(u.host, "db.example.com");
  ASSERT_TRUE(u.port);
  EXPECT_EQ(*u.port, 5433);
  EXPECT_EQ(u.database, "main");
  EXPECT_TRUE(u.options.empty());
}

TEST(ParseUrl, DriverSuffixIgnored) {
  struct Case {
    const char* url;
    Backend backend;
  };
  for (const auto& c : std::vector<Case>{
           {"postgresql+psycopg2://u@h/d", Backend::postgresql},
           {"postgresql+asyncpg://u@h/d", Backend::postgresql},
           {"postgres+psycopg://u@h/d", Backend::postgresql},
           {"mysql://u@h/d", Backend::mysql},
           {"mysql+pymysql://u@h/d", Backend::mysql},
           {"mysql+mysqldb://u@h/d", Backend::mysql},
           {"mariadb://u@h/d", Backend::mysql},
           {"mariadb+mariadbconnector://u@h/d", Backend::mysql},
           {"sqlite+pysqlite:////x/y.db", Backend::sqlite},
       }) {
    SCOPED_TRACE(c.url);
    auto u = parse_url(c.url);
    EXPECT_EQ(u.backend, c.backend);
    EXPECT_EQ(u.scheme, std::string(c.url).substr(0, std::string(c.url).find("://")));
  }
}

TEST(ParseUrl, SchemeIsCaseInsensitive) {
  EXPECT_EQ(parse_url("PostgreSQL://h/d").backend, Backend::postgresql);
}

TEST(ParseUrl, PgOrMysqlWithoutDatabaseIsAllowed) {
  auto pg = parse_url("postgresql://app@localhost");
  EXPECT_EQ(pg.database, "");
  EXPECT_EQ(pg.host, "localhost");
  auto my = parse_url("mysql://root@localhost:3306/");
  EXPECT_EQ(my.database, "");
  EXPECT_EQ(*my.port, 3306);
}

TEST(ParseUrl, PgUnixSocketViaHostOption) {
  auto u = parse_url("postgresql://app@/main?host=/var/run/postgresql");
  EXPECT_EQ(u.host, "");
  EXPECT_EQ(u.database, "main");
  EXPECT_EQ(u.options.at("host"), "/var/run/postgresql");
}

TEST(ParseUrl, MysqlUnixSocketOption) {
  auto u = parse_url("mysql+pymysql://app:pw@localhost/users?unix_socket=/run/mysqld/mysqld.sock&charset=utf8mb4");
  EXPECT_EQ(u.options.at("unix_socket"), "/run/mysqld/mysqld.sock");
  EXPECT_EQ(u.options.at("charset"), "utf8mb4");
  EXPECT_EQ(u.options.size(), 2u);
}

TEST(ParseUrl, PercentDecoding) {
  auto u = parse_url("postgresql://us%65r:p%40ss@h/my%20db");
  EXPECT_EQ(u.user, "user");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.database, "my db");
}

TEST(ParseUrl, PasswordMayContainUnescapedSlashColonQuestion) {
  // SQLAlchemy's password group is [^@]*: everything up to the first '@'.
  auto u = parse_url("postgresql://app:a/b:c?d@h:5432/db");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "a/b:c?d");
  EXPECT_EQ(u.host, "h");
  EXPECT_EQ(*u.port, 5432);
  EXPECT_EQ(u.database, "db");
}

TEST(ParseUrl, EmptyPassword) {
  auto u = parse_url("mysql://root:@localhost/x");
  EXPECT_EQ(u.user, "root");
  EXPECT_EQ(u.password, "");
}

TEST(ParseUrl, Ipv6Host) {
  auto u = parse_url("postgresql://app:pw@[::1]:5432/main");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(*u.port, 5432);
  EXPECT_EQ(u.database, "main");
  auto v = parse_url("mysql://[2001:db8::7]/d");
  EXPECT_EQ(v.host, "2001:db8::7");
  EXPECT_FALSE(v.port);
}

TEST(ParseUrl, PortRange) {
  EXPECT_EQ(*parse_url("postgresql://h:1/d").port, 1);
  EXPECT_EQ(*parse_url("postgresql://h:65535/d").port, 65535);
}

TEST(ParseUrl, QueryOptions) {
  auto u = parse_url("postgresql://h/d?sslmode=require&connect_timeout=3&application_name=my+app%21&flag");
  EXPECT_EQ(u.options.at("sslmode"), "require");
  EXPECT_EQ(u.options.at("connect_timeout"), "3");
  EXPECT_EQ(u.options.at("application_name"), "my app!");
  EXPECT_EQ(u.options.at("flag"), "");
  EXPECT_EQ(u.options.size(), 4u);
  // Options directly after the host, without a database.
  auto v = parse_url("postgresql://h?sslmode=disable");
  EXPECT_EQ(v.database, "");
  EXPECT_EQ(v.options.at("sslmode"), "disable");
}

TEST(ParseUrl, SqliteAbsolute) {
  auto u = parse_url("sqlite:////var/lib/binds/appmeta.db", "/ignored");
  EXPECT_EQ(u.database, "/var/lib/binds/appmeta.db");
  EXPECT_FALSE(u.sqlite_memory);
  EXPECT_EQ(u.host, "");
}

TEST(ParseUrl, SqliteRelative) {
  EXPECT_EQ(parse_url("sqlite:///relative.db").database, "relative.db");
  EXPECT_EQ(parse_url("sqlite:///relative.db", "/etc/binds").database, "/etc/binds/relative.db");
  EXPECT_EQ(parse_url("sqlite:///./data/x.db", "/etc/binds/").database, "/etc/binds/data/x.db");
  EXPECT_EQ(parse_url("sqlite:///../x.db", "/etc/binds").database, "/etc/x.db");
}

TEST(ParseUrl, SqliteMemory) {
  for (const char* s : {"sqlite://", "sqlite:///:memory:", "sqlite:///", "sqlite+pysqlite://"}) {
    SCOPED_TRACE(s);
    auto u = parse_url(s, "/base");
    EXPECT_TRUE(u.sqlite_memory);
    EXPECT_EQ(u.database, "");
  }
}

TEST(ParseUrl, SqliteOptions) {
  auto u = parse_url("sqlite:////tmp/a.db?mode=ro&timeout=5");
  EXPECT_EQ(u.database, "/tmp/a.db");
  EXPECT_EQ(u.options.at("mode"), "ro");
  EXPECT_EQ(u.options.at("timeout"), "5");
}

TEST(Redacted, HidesPassword) {
  auto u = parse_url("postgresql+psycopg2://app:s3cr%40t@db:5432/main?sslmode=require");
  EXPECT_EQ(u.redacted(), "postgresql+psycopg2://app:***@db:5432/main?sslmode=require");
  EXPECT_THAT(u.redacted(), Not(HasSubstr("s3cr")));
}

TEST(Redacted, NoPasswordShowsNone) {
  EXPECT_EQ(parse_url("mysql://users@localhost/users").redacted(), "mysql://users@localhost/users");
  EXPECT_EQ(parse_url("postgres://localhost/main").redacted(), "postgres://localhost/main");
}

TEST(Redacted, Ipv6AndSqlite) {
  EXPECT_EQ(parse_url("postgresql://u:pw@[::1]:5432/d").redacted(), "postgresql://u:***@[::1]:5432/d");
  EXPECT_EQ(parse_url("sqlite:////tmp/test.db").redacted(), "sqlite:////tmp/test.db");
  EXPECT_EQ(parse_url("sqlite:///:memory:").redacted(), "sqlite://");
  EXPECT_EQ(parse_url("sqlite:///x.db", "/base").redacted(), "sqlite:////base/x.db");
}

TEST(Redacted, HidesPasswordOption) {
  auto u = parse_url("postgresql://h/d?password=hunter2&sslmode=require");
  EXPECT_EQ(u.options.at("password"), "hunter2");
  EXPECT_THAT(u.redacted(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(u.redacted(), HasSubstr("password=***"));
}

// redacted() is itself a valid URL that parses back to the same thing, minus the password.
TEST(Redacted, RoundTrips) {
  for (const char* s : {"postgresql://a%3Ab:pw@h:1/my%20db?x=1&y=a%26b", "mysql://[::1]/d", "sqlite:////a/b.db?mode=ro",
                        "mariadb://u@h", "postgresql://h?sslmode=disable"}) {
    SCOPED_TRACE(s);
    auto u = parse_url(s);
    auto r = parse_url(u.redacted());
    if (!u.password.empty()) u.password = "***";
    EXPECT_EQ(r, u);
  }
}

// ---- errors ----

struct BadUrl {
  const char* url;
  const char* expect;  // substring of the message
};

class UrlErrors : public ::testing::TestWithParam<BadUrl> {};

TEST_P(UrlErrors, RejectsWithoutLeakingPassword) {
  const auto& p = GetParam();
  const std::string msg = url_error(p.url);
  EXPECT_THAT(msg, HasSubstr(p.expect));
  // Every password in these cases contains "hunter2".
  EXPECT_THAT(msg, Not(HasSubstr("hunter2")));
  EXPECT_THAT(msg, Not(HasSubstr("hunter%32")));
}

INSTANTIATE_TEST_SUITE_P(
    All, UrlErrors,
    ::testing::Values(
        BadUrl{"", "empty database URL"},
        BadUrl{"localhost/main", "missing \"://\""},
        BadUrl{"app:hunter2@localhost/main", "missing \"://\""},
        BadUrl{"postgresql:/app:hunter2@localhost/main", "missing \"://\""},
        BadUrl{"://app:hunter2@h/d", "missing scheme"},
        BadUrl{"oracle://app:hunter2@h/d", "unknown scheme \"oracle\""},
        BadUrl{"oracle://app:hunter2@h/d", "accepted: postgresql, postgres, mysql, mysqldb, mariadb, sqlite"},
        BadUrl{"mssql+pyodbc://app:hunter2@h/d", "unknown scheme \"mssql+pyodbc\""},
        BadUrl{"postgresql+://app:hunter2@h/d", "empty driver name"},
        BadUrl{"postgresql://app:hunter2@h:0/d", "port must be a number from 1 to 65535 (got \"0\")"},
        BadUrl{"postgresql://app:hunter2@h:65536/d", "port must be a number from 1 to 65535"},
        BadUrl{"postgresql://app:hunter2@h:99999999999999999999/d", "port must be a number from 1 to 65535"},
        BadUrl{"postgresql://app:hunter2@h:54x/d", "port must be a number from 1 to 65535"},
        BadUrl{"postgresql://app:hunter2@h:-1/d", "port must be a number from 1 to 65535"},
        BadUrl{"postgresql://app:hunter2@h:/d", "empty port"},
        BadUrl{"postgresql://app:hunter2@[::1/d", "unterminated '['"},
        BadUrl{"postgresql://app:hunter2@[]:5432/d", "empty IPv6 host"},
        BadUrl{"postgresql://app:hunter2@[::1]x/d", "unexpected characters after IPv6 host"},
        BadUrl{"postgresql://app:hunter2%4@h/d", "bad percent escape in password"},
        BadUrl{"postgresql://app:hunter2%zz@h/d", "bad percent escape in password"},
        BadUrl{"postgresql://app:hunter2%00@h/d", "bad percent escape in password"},
        BadUrl{"postgresql://a%g0:hunter2@h/d", "bad percent escape in user name"},
        BadUrl{"postgresql://app:hunter2@h/d%", "bad percent escape in database name"},
        BadUrl{"postgresql://app:hunter2@h/d?x=%4", "bad percent escape in query option value"},
        BadUrl{"postgresql://app:hunter2@h/d?x%=1", "bad percent escape in query option name"},
        BadUrl{"postgresql://app:hunter2@h/d?a=1&a=2", "duplicate option \"a\""},
        BadUrl{"postgresql://app:hunter2@h/d?=1", "empty option name"},
        BadUrl{"postgresql://h/d?password=hunter2&password=x", "duplicate option"},
        BadUrl{"postgresql://h/d?password=hunter2&x=%zz", "bad percent escape"},
        // A later ':'…'@' in the query string once made the userinfo mask start after the password.
        BadUrl{"postgresql://h/d?password=hunter2&x=a:b@c&y=%zz", "bad percent escape"},
        BadUrl{"postgresql://h:1/d?password=hunter2&x=%zz&z=a:b@c", "bad percent escape"},
        BadUrl{"mysql://u@h/d?PWD=hunter2&x=q:r@s&a=1&a=2", "duplicate option"},
        BadUrl{"postgresql://h/d?sslpassword=hunter2:x@y&x=%zz", "bad percent escape"},
        BadUrl{"oracle://h/d?x=1&password=hunter2@h:w", "unknown scheme"},
        BadUrl{"postgresql://u:hunter2@h/d?password=hunter2&x=1:2@3&q=%", "bad percent escape"},
        // An unescaped '@' in the password: the host would contain '@'.
        BadUrl{"postgresql://app:hun@ter2@h/d", "unexpected '@' in host"},
        BadUrl{"postgresql://app:x@hunter2@h/d", "percent-encode '@'"},
        BadUrl{"postgresql://app:hunter2 @h/d", "whitespace"},
        BadUrl{"sqlite://host/x.db", "a sqlite URL has no host (got \"host\")"},
        BadUrl{"sqlite://app:hunter2@host/x.db", "a sqlite URL has no host"},
        BadUrl{"sqlite://app:hunter2@/x.db", "takes no user, password or port"},
        BadUrl{"sqlite://:5/x.db", "takes no user, password or port"}));

TEST(UrlErrors, QuotesRedactedInput) {
  const std::string msg = url_error("postgresql://app:hunter2@h:0/main");
  EXPECT_THAT(msg, HasSubstr("\"postgresql://app:***@h:0/main\""));
}

TEST(UrlErrors, UnknownSchemeWithoutPasswordQuotesInput) {
  EXPECT_THAT(url_error("db2://h/d"), HasSubstr("\"db2://h/d\""));
}

}  // namespace
}  // namespace binds
