#include "registry/auth.hpp"

#include "registry/http.hpp"
#include "util/atomic_file.hpp"
#include "util/base64.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdlib>
#include <sys/stat.h>

namespace strata::registry {

namespace {

using json = nlohmann::json;

bool is_token_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

// Host part of a credentials key: "https://index.docker.io/v1/" -> "index.docker.io".
std::string key_host(std::string_view key) {
    if (auto p = key.find("://"); p != std::string_view::npos) {
        key.remove_prefix(p + 3);
    }
    if (auto p = key.find('/'); p != std::string_view::npos) {
        key = key.substr(0, p);
    }
    return lower(key);
}

std::string canonical_host(std::string_view registry) {
    std::string h = lower(registry);
    if (h == "docker.io" || h == "registry-1.docker.io" || h == "index.docker.io") {
        return "index.docker.io";
    }
    return h;
}

json read_config(const std::string& path) {
    if (!fs::exists(path)) {
        return json::object();
    }
    std::string text = fs::read_file(path, 16 * 1024 * 1024);
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        throw RegistryError(path + ": not a valid Docker config file (expected a JSON object)");
    }
    return j;
}

void write_config(const std::string& path, const json& j) {
    fs::mkdirs(fs::dirname(path), 0700);
    AtomicFile f(path, 0600);
    f.write(j.dump(1, '\t') + "\n");
    f.commit();
}

// The credential helper for a registry, or empty.
std::string helper_for(const json& config, std::string_view registry) {
    std::string want = canonical_host(registry);
    if (auto it = config.find("credHelpers"); it != config.end() && it->is_object()) {
        for (auto& [k, v] : it->items()) {
            if (canonical_host(key_host(k)) == want && v.is_string()) {
                return v.get<std::string>();
            }
        }
    }
    if (auto it = config.find("credsStore"); it != config.end() && it->is_string()) {
        return it->get<std::string>();
    }
    return {};
}

std::string helper_program(const std::string& helper) {
    std::string prog = "docker-credential-" + helper;
    if (!find_program(prog)) {
        throw RegistryError("credential helper " + prog +
                            " (named in the Docker config) is not in PATH");
    }
    return prog;
}

// Finds the auths entry for a registry: exact key first, then any key whose
// host matches (Docker accepts "host", "https://host", "https://host/v1/").
json::const_iterator find_auth(const json& auths, std::string_view registry) {
    std::string want = canonical_host(registry);
    if (auto it = auths.find(credential_key(registry)); it != auths.end()) {
        return it;
    }
    for (auto it = auths.begin(); it != auths.end(); ++it) {
        if (canonical_host(key_host(it.key())) == want) {
            return it;
        }
    }
    return auths.end();
}

} // namespace

std::vector<Challenge> parse_www_authenticate(std::string_view h) {
    std::vector<Challenge> out;
    size_t i = 0;
    auto skip_ws = [&] {
        while (i < h.size() && (h[i] == ' ' || h[i] == '\t')) {
            ++i;
        }
    };
    auto token = [&] {
        size_t start = i;
        while (i < h.size() && is_token_char(h[i])) {
            ++i;
        }
        return std::string(h.substr(start, i - start));
    };
    auto bad = [&](const std::string& why) {
        return RegistryError("malformed WWW-Authenticate header \"" + std::string(h) +
                             "\": " + why);
    };
    while (true) {
        skip_ws();
        while (i < h.size() && h[i] == ',') {
            ++i;
            skip_ws();
        }
        if (i >= h.size()) {
            break;
        }
        std::string scheme = token();
        if (scheme.empty()) {
            throw bad("expected an auth scheme at offset " + std::to_string(i));
        }
        Challenge ch;
        ch.scheme = lower(scheme);
        // auth-params: name=value pairs separated by commas, until a token
        // that is not followed by '=' (the next challenge's scheme).
        while (true) {
            skip_ws();
            size_t save = i;
            std::string name = token();
            skip_ws();
            if (name.empty() || i >= h.size() || h[i] != '=') {
                i = save;
                break;
            }
            ++i; // '='
            skip_ws();
            std::string value;
            if (i < h.size() && h[i] == '"') {
                ++i;
                bool closed = false;
                while (i < h.size()) {
                    char c = h[i++];
                    if (c == '\\' && i < h.size()) {
                        value += h[i++];
                    } else if (c == '"') {
                        closed = true;
                        break;
                    } else {
                        value += c;
                    }
                }
                if (!closed) {
                    throw bad("unterminated quoted string");
                }
            } else {
                value = token();
            }
            ch.params[lower(name)] = value;
            skip_ws();
            if (i < h.size() && h[i] == ',') {
                ++i;
                continue;
            }
            break;
        }
        out.push_back(std::move(ch));
        skip_ws();
        if (i < h.size() && h[i] != ',' && !is_token_char(h[i])) {
            throw bad(std::string("unexpected character '") + h[i] + "'");
        }
    }
    return out;
}

std::string docker_config_path() {
    if (const char* d = std::getenv("DOCKER_CONFIG"); d != nullptr && *d != '\0') {
        return fs::join(d, "config.json");
    }
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
        throw RegistryError("cannot find the Docker config: set DOCKER_CONFIG or HOME");
    }
    return fs::join(home, ".docker/config.json");
}

std::string credential_key(std::string_view registry) {
    if (canonical_host(registry) == "index.docker.io") {
        return "https://index.docker.io/v1/";
    }
    return std::string(registry);
}

std::optional<Credentials> load_credentials(std::string_view registry,
                                            const std::string& config_path) {
    json config = read_config(config_path);
    if (std::string helper = helper_for(config, registry); !helper.empty()) {
        RunResult r = run_capture({helper_program(helper), "get"}, false, credential_key(registry));
        if (!r.status.success()) {
            // Helpers answer "credentials not found in native keychain" this way.
            return std::nullopt;
        }
        json j = json::parse(r.out, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            throw RegistryError("docker-credential-" + helper + " get: invalid JSON answer");
        }
        Credentials c;
        c.username = j.value("Username", "");
        c.password = j.value("Secret", "");
        if (c.username == "<token>") {
            c.identity_token = c.password;
            c.username.clear();
            c.password.clear();
        }
        return c;
    }
    auto auths = config.find("auths");
    if (auths == config.end() || !auths->is_object()) {
        return std::nullopt;
    }
    auto it = find_auth(*auths, registry);
    if (it == auths->end()) {
        return std::nullopt;
    }
    const json& entry = *it;
    if (!entry.is_object()) {
        throw RegistryError(config_path + ": auths." + it.key() + " is not an object");
    }
    Credentials c;
    if (auto a = entry.find("auth");
        a != entry.end() && a->is_string() && !a->get<std::string>().empty()) {
        auto decoded = base64_decode(a->get<std::string>(), Base64Rules{.allow_unpadded = true});
        if (!decoded) {
            throw RegistryError(config_path + ": auths." + it.key() + ".auth is not valid base64");
        }
        auto colon = decoded->find(':');
        if (colon == std::string::npos) {
            throw RegistryError(config_path + ": auths." + it.key() +
                                ".auth does not decode to \"user:password\"");
        }
        c.username = decoded->substr(0, colon);
        c.password = decoded->substr(colon + 1);
    } else {
        if (auto u = entry.find("username"); u != entry.end() && u->is_string()) {
            c.username = u->get<std::string>();
        }
        if (auto p = entry.find("password"); p != entry.end() && p->is_string()) {
            c.password = p->get<std::string>();
        }
    }
    if (auto t = entry.find("identitytoken"); t != entry.end() && t->is_string()) {
        c.identity_token = t->get<std::string>();
    }
    if (c.username.empty() && c.password.empty() && c.identity_token.empty()) {
        return std::nullopt;
    }
    return c;
}

void store_credentials(std::string_view registry, const Credentials& creds,
                       const std::string& config_path) {
    json config = read_config(config_path);
    if (std::string helper = helper_for(config, registry); !helper.empty()) {
        json in = {{"ServerURL", credential_key(registry)},
                   {"Username", creds.username},
                   {"Secret", creds.password}};
        RunResult r = run_capture({helper_program(helper), "store"}, true, in.dump());
        if (!r.status.success()) {
            throw RegistryError("docker-credential-" + helper + " store " + r.status.describe() +
                                ": " + r.out);
        }
        // Docker records the registry with an empty entry.
        config["auths"][credential_key(registry)] = json::object();
        write_config(config_path, config);
        return;
    }
    if (!config.contains("auths") || !config["auths"].is_object()) {
        config["auths"] = json::object();
    }
    json& auths = config["auths"];
    // Replace any differently spelt key for the same registry.
    for (auto it = find_auth(auths, registry); it != auths.end(); it = find_auth(auths, registry)) {
        auths.erase(it.key());
    }
    json entry = json::object();
    entry["auth"] = base64_encode(creds.username + ":" + creds.password);
    if (!creds.identity_token.empty()) {
        entry["identitytoken"] = creds.identity_token;
    }
    auths[credential_key(registry)] = entry;
    write_config(config_path, config);
}

bool erase_credentials(std::string_view registry, const std::string& config_path) {
    if (!fs::exists(config_path)) {
        return false;
    }
    json config = read_config(config_path);
    bool found = false;
    if (std::string helper = helper_for(config, registry); !helper.empty()) {
        RunResult r =
            run_capture({helper_program(helper), "erase"}, true, credential_key(registry));
        found = r.status.success();
    }
    if (auto a = config.find("auths"); a != config.end() && a->is_object()) {
        for (auto it = find_auth(*a, registry); it != a->end(); it = find_auth(*a, registry)) {
            a->erase(it.key());
            found = true;
        }
    }
    if (found) {
        write_config(config_path, config);
    }
    return found;
}

} // namespace strata::registry
