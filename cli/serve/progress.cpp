// dockerd's pull and push progress messages (progress.hpp).
#include "cli/serve/progress.hpp"

#include "util/base64.hpp"
#include "util/error.hpp"

#include <algorithm>

namespace strata::cli::serve {

using nlohmann::ordered_json;

ordered_json error_message(const std::string& message) {
    return {{"errorDetail", {{"message", message}}}, {"error", message}};
}

std::optional<registry::Credentials> registry_auth(const std::string& header) {
    std::string text = header;
    std::replace(text.begin(), text.end(), '-', '+');
    std::replace(text.begin(), text.end(), '_', '/');
    auto json = base64_decode(text, Base64Rules{false, true});
    if (!json) {
        return std::nullopt;
    }
    nlohmann::json j = nlohmann::json::parse(*json, nullptr, false);
    if (!j.is_object()) {
        return std::nullopt;
    }
    auto str = [&](const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    registry::Credentials c{str("username"), str("password"), str("identitytoken")};
    if (c.username.empty() && c.password.empty()) {
        if (auto auth = base64_decode(str("auth"), Base64Rules{false, true})) {
            auto colon = auth->find(':');
            if (colon != std::string::npos) {
                c.username = auth->substr(0, colon);
                c.password = auth->substr(colon + 1);
            }
        }
    }
    if (c.username.empty() && c.password.empty() && c.identity_token.empty()) {
        return std::nullopt;
    }
    return c;
}

std::string pull_reference_text(const std::string& from_image, const std::string& tag) {
    if (tag.empty()) {
        return from_image;
    }
    std::string name = from_image.substr(0, from_image.find('@'));
    auto slash = name.rfind('/');
    auto colon = name.rfind(':');
    if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
        name.resize(colon); // fromImage's own tag: the parameter replaces it
    }
    return name + (tag.starts_with("sha256:") ? "@" : ":") + tag;
}

std::vector<ordered_json> pull_progress(const registry::TransferEvent& e,
                                        const snapshot::Reference& ref) {
    using Kind = registry::TransferEvent::Kind;
    if (e.kind == Kind::resolved) {
        return {{{"status", "Pulling from " + ref.path()},
                 {"id", ref.digest() ? ref.digest()->str() : ref.tag()}}};
    }
    if (e.config) {
        return {};
    }
    auto msg = [&](const char* status) {
        return ordered_json{{"status", status},
                            {"progressDetail", ordered_json::object()},
                            {"id", e.digest.short_id()}};
    };
    switch (e.kind) {
    case Kind::skipped:
        return {msg("Already exists")};
    case Kind::fetching:
        return {msg("Pulling fs layer")};
    case Kind::done:
    case Kind::completed: // the rest of a lazily pulled layer
        return {msg("Download complete"), msg("Pull complete")};
    default:
        return {};
    }
}

std::string manifest_not_found_message(const snapshot::Reference& ref, const std::string& error) {
    std::string reason = error;
    // strata's text ends with the registry's "[CODE: message]".
    auto open = error.rfind('[');
    if (open != std::string::npos && error.ends_with("]")) {
        std::string inner = error.substr(open + 1, error.size() - open - 2);
        auto colon = inner.find(": ");
        if (colon != std::string::npos) {
            std::string code = inner.substr(0, colon);
            std::string words;
            for (char ch : code) {
                words += ch == '_'
                             ? ' '
                             : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            }
            reason = words + ": " + inner.substr(colon + 2);
        }
    }
    return "manifest for " + ref.familiar() + " not found: " + reason;
}

std::vector<ordered_json> push_progress(const registry::TransferEvent& e) {
    using Kind = registry::TransferEvent::Kind;
    auto msg = [&](const std::string& status) {
        return ordered_json{{"status", status},
                            {"progressDetail", ordered_json::object()},
                            {"id", e.digest.short_id()}};
    };
    switch (e.kind) {
    case Kind::exists:
        return {msg("Layer already exists")};
    case Kind::mounted:
        return {msg("Mounted from " + e.from)};
    case Kind::done:
        return {msg("Pushed")};
    default:
        return {};
    }
}

std::vector<ordered_json> push_result(const snapshot::Reference& dest,
                                      const registry::PushResult& r) {
    std::string tag = dest.digest() ? dest.digest()->str() : dest.tag();
    std::string digest = r.manifest.digest.str();
    return {{{"status", tag + ": digest: " + digest + " size: " + std::to_string(r.manifest.size)}},
            {{"progressDetail", ordered_json::object()},
             {"aux", {{"Tag", tag}, {"Digest", digest}, {"Size", r.manifest.size}}}}};
}

} // namespace strata::cli::serve

namespace strata::cli::serve {

std::vector<std::string> config_changes(const nlohmann::json& config) {
    std::vector<std::string> out;
    if (config.is_null()) {
        return out;
    }
    if (!config.is_object()) {
        throw UsageError("the commit's config must be a JSON object");
    }
    auto quoted = [](const std::string& s) { return nlohmann::json(s).dump(); };
    for (const auto& [key, v] : config.items()) {
        if (v.is_null() || (v.is_string() && v.get<std::string>().empty()) ||
            (v.is_boolean() && !v.get<bool>()) || (v.is_number() && v == 0) ||
            ((v.is_array() || v.is_object()) && v.empty())) {
            continue; // a zero value asks nothing
        }
        if (key == "Cmd" || key == "Entrypoint") {
            if (!v.is_array()) {
                throw UsageError("commit config " + key + ": expected an array of strings");
            }
            out.push_back(std::string(key == "Cmd" ? "CMD " : "ENTRYPOINT ") + v.dump());
        } else if (key == "Env") {
            for (const auto& e : v) {
                std::string kv = e.get<std::string>();
                auto eq = kv.find('=');
                if (eq == 0 || eq == std::string::npos) {
                    throw UsageError("commit config Env: \"" + kv + "\" is not KEY=VALUE");
                }
                out.push_back("ENV " + kv.substr(0, eq) + "=" + quoted(kv.substr(eq + 1)));
            }
        } else if (key == "Labels") {
            for (const auto& [k, lv] : v.items()) {
                out.push_back("LABEL " + quoted(k) + "=" + quoted(lv.get<std::string>()));
            }
        } else if (key == "WorkingDir") {
            out.push_back("WORKDIR " + v.get<std::string>());
        } else if (key == "User") {
            out.push_back("USER " + v.get<std::string>());
        } else if (key == "StopSignal") {
            out.push_back("STOPSIGNAL " + v.get<std::string>());
        } else if (key == "ExposedPorts") {
            for (const auto& [port, unused] : v.items()) {
                (void)unused;
                out.push_back("EXPOSE " + port);
            }
        } else if (key == "Volumes") {
            nlohmann::json paths = nlohmann::json::array();
            for (const auto& [path, unused] : v.items()) {
                (void)unused;
                paths.push_back(path);
            }
            out.push_back("VOLUME " + paths.dump());
        } else if (key == "OnBuild") {
            for (const auto& t : v) {
                out.push_back("ONBUILD " + t.get<std::string>());
            }
        } else if (key == "Hostname" || key == "Domainname" || key == "AttachStdin" ||
                   key == "AttachStdout" || key == "AttachStderr" || key == "Tty" ||
                   key == "OpenStdin" || key == "StdinOnce" || key == "Image" ||
                   key == "NetworkDisabled" || key == "MacAddress") {
            continue; // container settings an image does not keep (dockerd drops them too)
        } else {
            throw UsageError("commit config " + key + ": not supported by strata commit");
        }
    }
    return out;
}

} // namespace strata::cli::serve
