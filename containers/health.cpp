#include "containers/health.hpp"

#include "containers/spec.hpp"
#include "containers/store.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/go_time.hpp"
#include "util/log.hpp"

#include <atomic>
#include <csignal>
#include <ctime>
#include <memory>
#include <sys/mman.h>
#include <unistd.h>

namespace strata::containers {

namespace {

constexpr std::size_t k_max_output = 4096; // Docker's maxOutputLen
constexpr std::size_t k_max_log = 5;       // Docker's maxLogEntries

std::string now_text() {
    return format_go_time(unix_nanos_now(), TimeZoneStyle::utc, TimeFraction::trimmed);
}

Nanos or_default(std::int64_t ns, Nanos def) {
    return ns > 0 ? Nanos(ns) : def;
}

} // namespace

formats::Healthcheck merge_healthcheck(const std::optional<formats::Healthcheck>& image,
                                       const std::optional<formats::Healthcheck>& run) {
    if (!run) {
        return image.value_or(formats::Healthcheck{});
    }
    formats::Healthcheck h = *run;
    if (image) {
        if (h.test.empty()) {
            h.test = image->test;
        }
        if (h.interval == 0) {
            h.interval = image->interval;
        }
        if (h.timeout == 0) {
            h.timeout = image->timeout;
        }
        if (h.start_period == 0) {
            h.start_period = image->start_period;
        }
        if (h.start_interval == 0) {
            h.start_interval = image->start_interval;
        }
        if (h.retries == 0) {
            h.retries = image->retries;
        }
    }
    return h;
}

nlohmann::ordered_json healthcheck_to_json(const formats::Healthcheck& h) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    if (!h.test.empty()) {
        j["Test"] = h.test;
    }
    if (h.interval != 0) {
        j["Interval"] = h.interval;
    }
    if (h.timeout != 0) {
        j["Timeout"] = h.timeout;
    }
    if (h.start_period != 0) {
        j["StartPeriod"] = h.start_period;
    }
    if (h.start_interval != 0) {
        j["StartInterval"] = h.start_interval;
    }
    if (h.retries != 0) {
        j["Retries"] = h.retries;
    }
    return j;
}

std::optional<formats::Healthcheck> healthcheck_from_json(const nlohmann::json& j) {
    if (j.is_null()) {
        return std::nullopt;
    }
    if (!j.is_object()) {
        throw Error("Healthcheck: expected an object");
    }
    formats::Healthcheck h;
    try {
        if (auto it = j.find("Test"); it != j.end() && !it->is_null()) {
            h.test = it->get<std::vector<std::string>>();
        }
        auto num = [&](const char* key) -> std::int64_t {
            auto it = j.find(key);
            return it == j.end() || it->is_null() ? 0 : it->get<std::int64_t>();
        };
        h.interval = num("Interval");
        h.timeout = num("Timeout");
        h.start_period = num("StartPeriod");
        h.start_interval = num("StartInterval");
        h.retries = static_cast<int>(num("Retries"));
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("Healthcheck: ") + e.what());
    }
    return h;
}

std::optional<HealthConfig> effective_healthcheck(const formats::Healthcheck& h) {
    if (h.test.empty() || h.test[0] == "NONE") {
        return std::nullopt;
    }
    HealthConfig cfg;
    const std::string& kind = h.test[0];
    if (kind == "CMD") {
        cfg.argv.assign(h.test.begin() + 1, h.test.end());
    } else if (kind == "CMD-SHELL") {
        if (h.test.size() != 2) {
            throw Error("Healthcheck: CMD-SHELL takes exactly one command");
        }
        cfg.argv = {"/bin/sh", "-c", h.test[1]};
    } else {
        throw Error("Healthcheck: unknown type \"" + kind + "\" (expected NONE, CMD or CMD-SHELL)");
    }
    if (cfg.argv.empty()) {
        throw Error("Healthcheck: CMD without a command");
    }
    const std::int64_t ms = 1000000;
    for (auto [v, name] :
         {std::pair{h.interval, "Interval"}, std::pair{h.timeout, "Timeout"},
          std::pair{h.start_period, "StartPeriod"}, std::pair{h.start_interval, "StartInterval"}}) {
        if (v < 0 || (v != 0 && v < ms)) {
            throw Error(std::string(name) + " in Healthcheck cannot be less than 1ms");
        }
    }
    if (h.retries < 0) {
        throw Error("Retries in Healthcheck cannot be negative");
    }
    cfg.interval = or_default(h.interval, cfg.interval);
    cfg.timeout = or_default(h.timeout, cfg.timeout);
    cfg.start_period = or_default(h.start_period, cfg.start_period);
    cfg.start_interval = or_default(h.start_interval, cfg.start_interval);
    cfg.retries = h.retries > 0 ? h.retries : cfg.retries;
    return cfg;
}

std::string go_duration_text(Nanos d) {
    std::int64_t ns = d.count();
    if (ns == 0) {
        return "0s";
    }
    std::string sign = ns < 0 ? "-" : "";
    std::uint64_t u = static_cast<std::uint64_t>(ns < 0 ? -ns : ns);
    auto frac = [](std::uint64_t v, std::uint64_t unit) {
        std::string s = std::to_string(v / unit);
        std::uint64_t rest = v % unit;
        if (rest != 0) {
            std::string f = std::to_string(rest);
            f.insert(0, std::to_string(unit).size() - 1 - f.size(), '0');
            while (f.back() == '0') {
                f.pop_back();
            }
            s += "." + f;
        }
        return s;
    };
    if (u < 1000) {
        return sign + std::to_string(u) + "ns";
    }
    if (u < 1000000) {
        return sign + frac(u, 1000) + "µs";
    }
    if (u < 1000000000) {
        return sign + frac(u, 1000000) + "ms";
    }
    std::uint64_t secs_ns = u % 60000000000ULL;
    std::uint64_t mins = u / 60000000000ULL;
    std::string out = sign;
    if (mins >= 60) {
        out += std::to_string(mins / 60) + "h";
        out += std::to_string(mins % 60) + "m";
    } else if (mins > 0) {
        out += std::to_string(mins) + "m";
    }
    return out + frac(secs_ns, 1000000000) + "s";
}

runner::ExecSpec exec_spec_for(const runner::RunSpec& run, pid_t pid) {
    runner::ExecSpec e;
    e.pid = pid;
    e.env = run.env;
    e.user = run.user;
    e.cwd = run.cwd;
    e.hostname = run.hostname;
    e.security = run.security;
    return e;
}

nlohmann::ordered_json Health::to_json() const {
    nlohmann::ordered_json j;
    j["Status"] = status;
    j["FailingStreak"] = failing_streak;
    nlohmann::ordered_json entries = nlohmann::ordered_json::array();
    for (const auto& r : log) {
        nlohmann::ordered_json e;
        e["Start"] = r.start;
        e["End"] = r.end;
        e["ExitCode"] = r.exit_code;
        e["Output"] = r.output;
        entries.push_back(std::move(e));
    }
    j["Log"] = std::move(entries);
    return j;
}

Health Health::from_json(const nlohmann::json& j) {
    Health h;
    if (!j.is_object()) {
        return h;
    }
    h.status = j.value("Status", std::string("starting"));
    h.failing_streak = j.value("FailingStreak", 0);
    if (auto it = j.find("Log"); it != j.end() && it->is_array()) {
        for (const auto& e : *it) {
            h.log.push_back(HealthResult{e.value("Start", std::string()),
                                         e.value("End", std::string()), e.value("ExitCode", 0),
                                         e.value("Output", std::string())});
        }
    }
    return h;
}

std::string health_status_suffix(const nlohmann::json& health) {
    if (!health.is_object() || !health.contains("Status")) {
        return {};
    }
    std::string s = health.value("Status", std::string());
    if (s.empty()) {
        return {};
    }
    return s == "starting" ? " (health: starting)" : " (" + s + ")";
}

HealthResult run_probe(const HealthConfig& cfg, const runner::ExecSpec& base) {
    HealthResult r;
    r.start = now_text();
    UniqueFd out(::memfd_create("health-output", MFD_CLOEXEC));
    if (!out) {
        throw_errno("memfd_create", "health check output");
    }
    runner::ExecSpec spec = base;
    spec.argv = cfg.argv;
    spec.tty = false;
    spec.detach = false;
    spec.stdin_fd = -1;
    spec.stdout_fd = out.get();
    spec.stderr_fd = out.get();
    try {
        runner::Exec e = runner::Exec::start(spec);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.timeout);
        std::optional<ExitStatus> st = e.wait_for(ms);
        if (!st) {
            e.kill(SIGKILL);
            e.wait();
            r.exit_code = -1;
            r.output = "Health check exceeded timeout (" + go_duration_text(cfg.timeout) + ")";
            r.end = now_text();
            return r;
        }
        r.exit_code = st->exited() ? st->code() : 128 + st->signal();
    } catch (const Error& e) {
        r.exit_code = -1;
        r.output = e.what();
        r.end = now_text();
        return r;
    }
    r.end = now_text();
    ::lseek(out.get(), 0, SEEK_SET);
    r.output = fs::read_fd(out.get(), "the health check's output", k_max_output);
    if (r.output.size() > k_max_output) {
        r.output.resize(k_max_output);
    }
    return r;
}

void apply_result(Health& health, HealthResult result, const HealthConfig& cfg,
                  bool in_start_period) {
    const bool ok = result.exit_code == 0;
    health.log.push_back(std::move(result));
    if (health.log.size() > k_max_log) {
        health.log.erase(health.log.begin(),
                         health.log.begin() + static_cast<long>(health.log.size() - k_max_log));
    }
    if (ok) {
        health.failing_streak = 0;
        health.status = "healthy";
        return;
    }
    // A failure within the start period, before any success, does not count.
    if (health.status == "starting" && in_start_period) {
        return;
    }
    ++health.failing_streak;
    if (health.failing_streak >= cfg.retries) {
        health.status = "unhealthy";
    }
}

HealthChecker::HealthChecker(HealthConfig cfg, runner::ExecSpec base,
                             std::chrono::steady_clock::time_point started, Record record)
    : m_cfg(std::move(cfg)), m_base(std::move(base)), m_started(started),
      m_record(std::move(record)) {
    try {
        m_record(m_health.to_json());
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("health check: recording the state: {}", e.what());
    }
    m_thread = std::thread([this] { loop(); });
}

HealthChecker::~HealthChecker() {
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

Health HealthChecker::health() const {
    std::lock_guard lock(m_mutex);
    return m_health;
}

void HealthChecker::loop() {
    while (true) {
        Nanos wait;
        {
            std::lock_guard lock(m_mutex);
            bool in_start = std::chrono::steady_clock::now() - m_started < m_cfg.start_period;
            wait =
                in_start && m_health.status == "starting" ? m_cfg.start_interval : m_cfg.interval;
        }
        {
            std::unique_lock lock(m_mutex);
            if (m_wake.wait_for(lock, wait, [this] { return m_stop; })) {
                return;
            }
        }
        auto began = std::chrono::steady_clock::now();
        HealthResult r;
        try {
            r = run_probe(m_cfg, m_base);
        } catch (const std::exception& e) {
            r.start = r.end = now_text();
            r.exit_code = -1;
            r.output = e.what();
        }
        nlohmann::ordered_json snapshot;
        {
            std::lock_guard lock(m_mutex);
            if (m_stop) {
                return;
            }
            apply_result(m_health, std::move(r), m_cfg, began - m_started < m_cfg.start_period);
            snapshot = m_health.to_json();
        }
        try {
            m_record(snapshot);
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("health check: recording the state: {}", e.what());
        }
    }
}

namespace {

struct HealthHookState {
    std::mutex mutex; // the checker and checked_pid (never held around the store's lock)
    int checked_pid = 0;
    std::unique_ptr<HealthChecker> checker;
    std::atomic<int> live_pid{0}; // the PID 1 results are recorded for
};

} // namespace

void add_health_hooks(MonitorHooks& hooks) {
    auto st = std::make_shared<HealthHookState>();
    auto previous_tick = hooks.on_tick;
    auto previous_exit = hooks.on_exit;
    if (hooks.tick_interval.count() == 0 || hooks.tick_interval > std::chrono::milliseconds(100)) {
        hooks.tick_interval = std::chrono::milliseconds(100);
    }
    hooks.on_tick = [st, previous_tick](const Store& store, const std::string& id, int pid) {
        if (previous_tick) {
            previous_tick(store, id, pid);
        }
        std::unique_ptr<HealthChecker> old;
        {
            std::lock_guard lock(st->mutex);
            if (pid <= 0 || pid == st->checked_pid) {
                return;
            }
            st->checked_pid = pid;
            old = std::move(st->checker);
        }
        old.reset(); // joins the previous run's thread (its records are ignored)
        try {
            auto config = store.load_config(id);
            auto hc =
                healthcheck_from_json(config.at("Config").value("Healthcheck", nlohmann::json()));
            std::optional<HealthConfig> cfg = hc ? effective_healthcheck(*hc) : std::nullopt;
            if (!cfg) {
                return;
            }
            runner::RunSpec run = spec_from_json(config.at("StrataSpec"));
            st->live_pid = pid;
            auto record = [st, pid, store, id](const nlohmann::ordered_json& health) {
                if (st->live_pid != pid) {
                    return;
                }
                Lock l = store.lock(id);
                State s = store.load_state(id);
                if (s.pid != pid) {
                    return;
                }
                s.health = health;
                store.save_state(id, s);
            };
            auto checker = std::make_unique<HealthChecker>(
                *cfg, exec_spec_for(run, pid), std::chrono::steady_clock::now(), record);
            std::lock_guard lock(st->mutex);
            st->checker = std::move(checker);
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("health check of container {}: {}", id, e.what());
        }
    };
    hooks.on_exit = [st, previous_exit](const Store& store, const std::string& id, State& state) {
        st->live_pid = 0; // under the container's lock: no join here
        if (previous_exit) {
            previous_exit(store, id, state);
        }
    };
}

} // namespace strata::containers
