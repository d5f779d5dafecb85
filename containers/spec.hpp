// The resolved runner::RunSpec of a container, kept in config.json as
// "StrataSpec" at create time, so that the monitor starts the container
// without reading the image's config again (DESIGN.md: containers never
// include builder). rootfs and the stdio fds are not kept: the monitor sets
// them. Engineers adding RunSpec fields (resources, cgroup_name...) add them
// to both functions.
#pragma once

#include "runner/runner.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::containers {

nlohmann::ordered_json spec_to_json(const runner::RunSpec& spec);
// Throws Error naming the field for a malformed document.
runner::RunSpec spec_from_json(const nlohmann::json& j);

} // namespace strata::containers

namespace strata::containers {

// --restart no|on-failure[:N]|always|unless-stopped (HostConfig.RestartPolicy).
struct RestartPolicy {
    std::string name = "no";
    int max_retries = 0; // on-failure only; 0: no limit
};
// Throws UsageError with Docker's messages.
RestartPolicy parse_restart_policy(std::string_view text);

// json-file's --log-opt max-size / max-file (HostConfig.LogConfig.Config).
struct LogOptions {
    std::uint64_t max_size = 0; // 0: no rotation
    int max_file = 1;
};
// "max-size=10m" items into LogConfig.Config; throws UsageError with Docker's
// messages for unknown keys and bad values.
nlohmann::ordered_json parse_log_opts(const std::vector<std::string>& items);
LogOptions log_options(const nlohmann::json& log_config_config);

} // namespace strata::containers
