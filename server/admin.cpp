// Hot reload and the admin commands (PROTOCOL.md §9).

#include <spdlog/spdlog.h>

#include <limits>
#include <map>
#include <set>

#include "server/notify.hpp"
#include "server/server.hpp"

namespace binds::server {

namespace {

using protocol::ErrorCode;
using protocol::Value;

Value text(std::string s) { return Value(std::move(s)); }
Value num(std::int64_t n) { return Value(n); }

// As binds.yaml spells it ("10m", not "600000ms"); a zero timeout is no timeout.
std::string ms(Millis m) { return m.count() == 0 ? "off" : format_duration(m); }

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "-" : out;
}

// Admin arguments are typed by people: only plain decimal digits, no sign, no spaces, in range.
bool parse_count(const std::string& s, std::uint64_t max, std::uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return out <= max;
}

constexpr Millis kDefaultPauseWait{60000};
constexpr std::uint64_t kMaxPauseWaitSeconds = 3600;

}  // namespace

bool Server::reload(std::string& message) {
  std::lock_guard lock(reload_mu_);
  notify::reloading();
  auto finish = [&](bool ok) {
    (ok ? counters_.reloads_ok : counters_.reloads_failed)++;
    last_reload_error_ = ok ? "" : message;
    notify::ready();
    notify::status(ok ? "reloaded: " + message : "reload failed, old configuration kept: " + message);
    return ok;
  };
  if (!loader_) {
    message = "this server was started without a configuration file to reload";
    spdlog::error("reload failed: {}", message);
    return finish(false);
  }
  std::shared_ptr<const Config> fresh;
  try {
    fresh = loader_();
  } catch (const std::exception& e) {
    message = e.what();
    spdlog::error("reload failed, keeping the running configuration: {}", message);
    return finish(false);
  }
  for (const auto& w : fresh->warnings) spdlog::warn("config: {}", w);
  auto old = routes();
  auto cfg = std::make_shared<Config>(*fresh);
  if (cfg->listen.tcp != old->config->listen.tcp || cfg->listen.unix != old->config->listen.unix) {
    spdlog::warn("reload: listen addresses changed; they take effect at the next restart");
    cfg->listen = old->config->listen;
  }
  if (cfg->metrics_listen != old->config->metrics_listen) {
    spdlog::warn("reload: metrics.listen changed; it takes effect at the next restart");
    cfg->metrics_listen = old->config->metrics_listen;
  }
  auto rt = std::make_shared<RouteTable>();
  rt->config = cfg;
  std::vector<std::string> added, changed, kept, removed;
  std::vector<std::shared_ptr<Pool>> fresh_pools, retired;
  for (const auto& [key, bind] : cfg->binds) {
    auto it = old->pools.find(key);
    if (it != old->pools.end() && it->second->config() == bind) {
      rt->pools[key] = it->second;  // untouched: same pool, same connections
      kept.push_back(key);
      continue;
    }
    auto pool = engine::make_pool(io_.get_executor(), bind);
    rt->pools[key] = pool;
    fresh_pools.push_back(pool);
    if (it != old->pools.end()) {
      changed.push_back(key);
      retired.push_back(it->second);
    } else {
      added.push_back(key);
    }
  }
  for (const auto& [key, pool] : old->pools) {
    if (!cfg->binds.count(key)) {
      removed.push_back(key);
      retired.push_back(pool);
    }
  }
  for (auto& p : fresh_pools) p->start();
  engine_.set_routes(rt);
  // Old pools keep serving what already holds them (queued requests, open transactions) and are
  // cut after drain_timeout.
  for (auto& p : retired) {
    p->retire();
    auto timer = std::make_shared<asio::steady_timer>(io_, cfg->drain_timeout);
    const auto drain_ms = cfg->drain_timeout.count();
    timer->async_wait([this, p, timer, drain_ms](boost::system::error_code) mutable {
      // Open transactions on the old pool end here, not whenever their clients come back.
      {
        std::lock_guard lock(sessions_mu_);
        for (auto& [id, entry] : sessions_)
          if (entry.end_transactions)
            entry.end_transactions(p, "bind " + p->key() + " was changed or removed by a reload and its old pool " +
                                          "drained for " + std::to_string(drain_ms) + " ms (shutdown.drain_timeout)");
      }
      p->stop();
      // A pool may own blocking worker threads (whose destructor joins them): not on an I/O thread.
      asio::post(cancel_pool_, [p = std::move(p)]() mutable { p.reset(); });
    });
  }
  message = "added: " + join(added) + "; changed: " + join(changed) + "; removed: " + join(removed) +
            "; unchanged: " + join(kept);
  spdlog::info("configuration reloaded ({})", message);
  return finish(true);
}

AdminResult Server::admin(const protocol::AdminRequest& req) {
  AdminResult out;
  auto rt = routes();
  auto fail = [&](ErrorCode code, std::string why) {
    out.ok = false;
    out.code = code;
    out.error = std::move(why);
    return out;
  };
  const std::string& cmd = req.command;
  auto& t = out.table;

  if (cmd == "stats") {
    t.columns = {"bind", "backend", "open", "in_use", "idle", "pinned", "waiting", "longest_wait_ms", "queries",
                 "pipelined", "resets", "errors", "bytes_out", "p50_ms", "p99_ms", "state"};
    for (const auto& [key, pool] : rt->pools) {
      auto ps = pool->stats();
      auto st = stats().get(key);
      std::string state = ps.draining ? "draining" : ps.paused ? "paused" : ps.backend_down ? "backend down" : "ok";
      t.rows.push_back({text(key), text(std::string(backend_name(pool->config().url.backend))), num(ps.open),
                        num(ps.in_use), num(ps.idle), num(ps.pinned), num(ps.waiting), num(ps.longest_wait_ms),
                        num(static_cast<std::int64_t>(st->queries.load())),
                        num(static_cast<std::int64_t>(st->pipelined.load())),
                        num(static_cast<std::int64_t>(st->resets.load())),
                        num(static_cast<std::int64_t>(st->errors.load())),
                        num(static_cast<std::int64_t>(st->bytes_out.load())), Value(st->latency.quantile(0.5) * 1000),
                        Value(st->latency.quantile(0.99) * 1000), text(state)});
    }
    return out;
  }
  if ((cmd == "clients" || cmd == "servers" || cmd == "stats" || cmd == "config" || cmd == "reload") &&
      (req.bind || !req.args.empty()))
    return fail(ErrorCode::bad_request, cmd + " takes no arguments");
  if (cmd == "clients") {
    t.columns = {"id",          "name",       "peer",     "connected_s", "binds", "running",
                 "running_ms", "requests", "in_flight"};
    // Which backend connections each client holds, from the pools (pinned = inside a transaction).
    std::map<std::uint64_t, std::vector<std::string>> held;
    for (const auto& [key, pool] : rt->pools)
      for (const auto& slot : pool->slots())
        if (slot.holder) held[slot.holder].push_back(slot.state == pool::SlotState::pinned ? key + " (in tx)" : key);
    std::lock_guard lock(sessions_mu_);
    const auto now = std::chrono::system_clock::now();
    const auto steady_now = std::chrono::steady_clock::now();
    for (const auto& [id, e] : sessions_) {
      auto age = std::chrono::duration_cast<std::chrono::seconds>(now - e.info->connected_at).count();
      std::string running = "-";
      Value running_ms;  // nil: nothing runs
      if (e.info->activity) {
        auto acts = e.info->activity->snapshot();
        if (!acts.empty()) {
          const auto& first = acts.front();  // the oldest
          running = (first.waiting ? "(waiting for " + first.bind + ") " : first.bind + ": ") + first.sql;
          if (acts.size() > 1) running += " (+" + std::to_string(acts.size() - 1) + " more)";
          running_ms = num(std::chrono::duration_cast<std::chrono::milliseconds>(steady_now - first.since).count());
        }
      }
      auto it = held.find(id);
      t.rows.push_back({num(static_cast<std::int64_t>(id)), text(e.info->get_name()), text(e.info->peer), num(age),
                        text(it == held.end() ? "-" : join(it->second)), text(running), running_ms,
                        num(static_cast<std::int64_t>(e.info->requests.load())), num(e.info->in_flight.load())});
    }
    return out;
  }
  if (cmd == "servers") {
    t.columns = {"bind", "backend", "state", "client", "pid", "age_s", "in_state_ms"};
    for (const auto& [key, pool] : rt->pools) {
      const auto backend = std::string(backend_name(pool->config().url.backend));
      for (const auto& slot : pool->slots()) {
        const bool connected = slot.state != pool::SlotState::connecting;
        t.rows.push_back({text(key), text(backend), text(std::string(pool::slot_state_name(slot.state))),
                          slot.holder ? num(static_cast<std::int64_t>(slot.holder)) : text("-"),
                          slot.backend_pid ? num(slot.backend_pid) : text("-"),
                          connected ? num(slot.age_ms / 1000) : Value(), connected ? num(slot.in_state_ms) : Value()});
      }
    }
    return out;
  }
  if (cmd == "kill") {
    std::uint64_t target = 0;
    if (req.bind || req.args.size() != 1)
      return fail(ErrorCode::bad_request, "kill needs exactly one client id (binds clients lists them)");
    if (!parse_count(req.args[0], std::numeric_limits<std::int64_t>::max(), target) || target == 0)
      return fail(ErrorCode::bad_request, "kill: \"" + req.args[0] + "\" is not a client id (a number from binds clients)");
    Kill kill;
    {
      std::lock_guard lock(sessions_mu_);
      auto it = sessions_.find(target);
      if (it == sessions_.end() || !it->second.kill)
        return fail(ErrorCode::bad_request, "kill: no client #" + req.args[0] + " is connected (binds clients lists them)");
      kill = it->second.kill;
    }
    spdlog::warn("admin: kill client #{}", target);
    kill("this connection was ended by an administrator (binds kill " + req.args[0] +
         "); its open transactions are rolled back, nothing of them was committed");
    t.message = "kill " + req.args[0] + ": client disconnected; its transactions are rolled back";
    return out;
  }
  if (cmd == "config") {
    t.columns = {"bind", "url", "max", "min", "acquire_timeout", "idle_timeout", "max_lifetime", "statement_timeout",
                 "idle_in_transaction_timeout", "default"};
    for (const auto& [key, b] : rt->config->binds) {
      t.rows.push_back({text(key), text(b.url.redacted()), num(b.pool.max), num(b.pool.min),
                        text(ms(b.pool.acquire_timeout)), text(ms(b.pool.idle_timeout)), text(ms(b.pool.max_lifetime)),
                        text(ms(b.statement_timeout)), text(ms(b.idle_in_transaction_timeout)),
                        Value(key == rt->config->default_bind)});
    }
    t.message = "config file " + rt->config->source + "; listen tcp=" +
                (rt->config->listen.tcp.empty() ? "-" : rt->config->listen.tcp) +
                " unix=" + (rt->config->listen.unix.empty() ? "-" : rt->config->listen.unix);
    return out;
  }
  if (cmd == "reload") {
    std::string message;
    if (!reload(message)) return fail(ErrorCode::bad_request, "reload failed, old configuration kept: " + message);
    t.message = "reloaded: " + message;
    return out;
  }
  if (cmd == "pause" || cmd == "resume" || cmd == "drain" || cmd == "reconnect") {
    if (!req.bind || req.bind->empty()) return fail(ErrorCode::bad_request, cmd + " needs a bind");
    auto it = rt->pools.find(*req.bind);
    if (it == rt->pools.end()) return fail(ErrorCode::unknown_bind, "unknown bind \"" + *req.bind + "\"");
    if (cmd == "pause" && req.args.size() == 1) {
      const auto& a = req.args[0];
      std::uint64_t seconds = 0;
      if (a == "--wait") {
        out.wait_limit = kDefaultPauseWait;
      } else if (a.rfind("--wait=", 0) == 0 && parse_count(a.substr(7), kMaxPauseWaitSeconds, seconds) && seconds > 0) {
        out.wait_limit = std::chrono::seconds(seconds);
      } else {
        return fail(ErrorCode::bad_request, "pause: unknown argument \"" + a + "\" (--wait or --wait=SECONDS, 1 to " +
                                                std::to_string(kMaxPauseWaitSeconds) + ")");
      }
      out.wait_idle = it->second;
    } else if (!req.args.empty()) {
      return fail(ErrorCode::bad_request, cmd + " takes one bind and no other arguments" +
                                              (cmd == "pause" ? std::string(" but --wait[=SECONDS]") : ""));
    }
    auto& pool = *it->second;
    if (cmd == "pause") pool.pause();
    if (cmd == "resume") pool.resume();
    if (cmd == "drain") pool.drain();
    if (cmd == "reconnect") pool.reconnect();
    spdlog::info("admin: {} {}", cmd, *req.bind);
    t.message = cmd + " " + *req.bind + ": done";
    return out;
  }
  return fail(ErrorCode::bad_request,
              "unknown admin command \"" + cmd +
                  "\" (stats, clients, servers, config, reload, pause, resume, drain, reconnect, kill)");
}

asio::awaitable<void> Server::wait_idle(AdminResult& result) {
  auto pool = std::move(result.wait_idle);
  const auto started = std::chrono::steady_clock::now();
  asio::steady_timer tick(co_await asio::this_coro::executor);
  for (;;) {
    auto ps = pool->stats();
    // in_use counts pinned leases: a client inside a transaction is waited for until it ends it
    // (PgBouncer's PAUSE); resetting ones are rollbacks still running on the backend.
    const int busy = ps.in_use + ps.resetting;
    const auto waited = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
    if (busy == 0) {
      result.table.message = "pause " + pool->key() + ": done; nothing runs on it (waited " +
                             std::to_string(waited.count()) + " ms)";
      co_return;
    }
    if (waited >= result.wait_limit) {
      result.ok = false;
      result.code = ErrorCode::timeout;
      result.error = "pause " + pool->key() + ": " + std::to_string(busy) + " connection(s) still busy (" +
                     std::to_string(ps.pinned) + " inside a transaction) after " + format_duration(result.wait_limit) +
                     "; the bind stays paused (binds resume " + pool->key() + " undoes it)";
      co_return;
    }
    tick.expires_after(std::chrono::milliseconds(20));
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace binds::server
