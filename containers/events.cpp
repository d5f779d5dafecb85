// Containers' events (containers/events.hpp).
#include "containers/events.hpp"

namespace strata::containers {

void record_container_event(const std::string& store_root, const std::string& id,
                            const nlohmann::json& config, const std::string& action,
                            std::map<std::string, std::string> extra) {
    std::map<std::string, std::string> attrs;
    try {
        const auto& cc = config.at("Config");
        if (cc.contains("Labels") && cc["Labels"].is_object()) {
            for (const auto& [k, v] : cc["Labels"].items()) {
                if (v.is_string()) {
                    attrs[k] = v.get<std::string>();
                }
            }
        }
        attrs["image"] = cc.value("Image", std::string());
        std::string name = config.value("Name", std::string());
        attrs["name"] = name.starts_with("/") ? name.substr(1) : name;
    } catch (const std::exception&) {
        // a config without those fields: the event still tells what happened
    }
    for (auto& [k, v] : extra) {
        attrs[k] = std::move(v);
    }
    events::record_event(store_root, "container", action, id, std::move(attrs));
}

void record_container_event(const Store& store, const std::string& id, const std::string& action,
                            std::map<std::string, std::string> extra) {
    nlohmann::json config = nlohmann::json::object();
    try {
        config = store.load_config(id);
    } catch (const std::exception&) {
    }
    record_container_event(store.store_root(), id, config, action, std::move(extra));
}

} // namespace strata::containers
