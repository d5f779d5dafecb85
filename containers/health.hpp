// HEALTHCHECK for detached containers, as Docker's daemon runs it
// (daemon/health.go): a probe exec'd in the container every Interval
// (StartInterval while it is starting within StartPeriod), killed after
// Timeout; a success makes it "healthy", Retries failures in a row
// "unhealthy" (failures within StartPeriod, before a first success, do not
// count). State.Health keeps Status, FailingStreak and the last 5 results.
//
//   auto cfg = containers::effective_healthcheck(config["Config"]["Healthcheck"]);
//   if (cfg) {
//       containers::HealthChecker health(*cfg, containers::exec_spec_for(run_spec, pid),
//                                        started, [&](const json& h) { /* into state.json */ });
//       ...                          // the checker's thread probes until destroyed
//   }
#pragma once

#include "containers/monitor.hpp"
#include "formats/oci.hpp"
#include "runner/exec.hpp"
#include "runner/runner.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace strata::containers {

using Nanos = std::chrono::nanoseconds;

// A health check with Docker's defaults applied.
struct HealthConfig {
    std::vector<std::string> argv; // the probe: CMD's arguments, or /bin/sh -c for CMD-SHELL
    Nanos interval = std::chrono::seconds(30);
    Nanos timeout = std::chrono::seconds(30);
    Nanos start_period{0};
    Nanos start_interval = std::chrono::seconds(5);
    int retries = 3;
};

// The run flags' check over the image's, as Docker merges them (daemon
// merge()): a field the container leaves unset (empty Test, zero duration
// or retries) takes the image's.
formats::Healthcheck merge_healthcheck(const std::optional<formats::Healthcheck>& image,
                                       const std::optional<formats::Healthcheck>& run);

// Docker's JSON (Config.Healthcheck) <-> formats::Healthcheck.
nlohmann::ordered_json healthcheck_to_json(const formats::Healthcheck& h);
std::optional<formats::Healthcheck> healthcheck_from_json(const nlohmann::json& j);

// The check to run, or nullopt for none (no Test, or ["NONE"]). Throws
// Error for a Test Docker refuses (unknown kind, CMD-SHELL without exactly
// one command, an interval below 1ms).
std::optional<HealthConfig> effective_healthcheck(const formats::Healthcheck& h);

// A Go duration as Go prints it ("30s", "1m30s", "500ms").
std::string go_duration_text(Nanos d);

// The exec base for a container started from run (its env, user, working
// directory, hostname and Security) whose PID 1 is pid.
runner::ExecSpec exec_spec_for(const runner::RunSpec& run, pid_t pid);

// One probe's result (Docker's HealthcheckResult).
struct HealthResult {
    std::string start; // RFC 3339 with nanoseconds, UTC
    std::string end;
    int exit_code = 0;  // -1: could not run, or timed out
    std::string output; // stdout and stderr, at most 4096 bytes
};

// Docker's Health object.
struct Health {
    std::string status = "starting"; // starting|healthy|unhealthy
    int failing_streak = 0;
    std::vector<HealthResult> log; // the last 5

    nlohmann::ordered_json to_json() const;
    static Health from_json(const nlohmann::json& j);
};

// ps's STATUS suffix for a running container's State.Health: " (healthy)",
// " (unhealthy)", " (health: starting)"; "" without a health check.
std::string health_status_suffix(const nlohmann::json& health);

// Runs one probe in the container (exec base + cfg.argv) with cfg.timeout.
HealthResult run_probe(const HealthConfig& cfg, const runner::ExecSpec& base);

// Folds one result into health as Docker's handleProbeResult does.
// in_start_period: the probe began within StartPeriod of the start.
void apply_result(Health& health, HealthResult result, const HealthConfig& cfg,
                  bool in_start_period);

// Probes on a thread of its own from construction ("starting" is recorded
// at once) until destroyed; record gets the new Health after each probe.
// record runs on that thread; an exception from it is logged, not fatal.
class HealthChecker {
public:
    using Record = std::function<void(const nlohmann::ordered_json& health)>;
    HealthChecker(HealthConfig cfg, runner::ExecSpec base,
                  std::chrono::steady_clock::time_point started, Record record);
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;
    ~HealthChecker();

    Health health() const;

private:
    void loop();

    HealthConfig m_cfg;
    runner::ExecSpec m_base;
    std::chrono::steady_clock::time_point m_started;
    Record m_record;
    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_stop = false;
    Health m_health;
    std::thread m_thread;
};

// The monitor's hook (containers/monitor.hpp): on each tick while the
// container runs, a HealthChecker for its current PID 1 when its
// Config.Healthcheck asks for one (a new one after each restart), recording
// State.Health under the container's lock; stopped when the container exits.
// Chains any on_tick/on_exit already in hooks.
void add_health_hooks(MonitorHooks& hooks);

} // namespace strata::containers
