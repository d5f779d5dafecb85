// Containers' events in the store's journal (util/event_log.hpp), with the
// attributes dockerd gives them.
#pragma once

#include "containers/store.hpp"
#include "util/event_log.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace strata::containers {

// A container's event with dockerd's attributes: its labels, "image" (as
// the container was created from) and "name", and `extra` ("exitCode",
// "signal"...). The config is read from the store; the overload with a
// config is for a container no longer there (destroy).
void record_container_event(const Store& store, const std::string& id, const std::string& action,
                            std::map<std::string, std::string> extra = {});
void record_container_event(const std::string& store_root, const std::string& id,
                            const nlohmann::json& config, const std::string& action,
                            std::map<std::string, std::string> extra = {});

} // namespace strata::containers
