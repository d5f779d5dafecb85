// Registry authentication: WWW-Authenticate challenges (RFC 7235), and
// credentials stored the way Docker stores them: ~/.docker/config.json (or
// $DOCKER_CONFIG/config.json) with `auths.<registry>.auth` = base64
// "user:password", or a credential helper (`credsStore`, `credHelpers`)
// run as docker-credential-<name>.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::registry {

struct Challenge {
    std::string scheme;                        // lower case: "basic", "bearer"
    std::map<std::string, std::string> params; // keys lower case: realm, service, scope, error
};

// Parses a WWW-Authenticate header value; one header may hold several
// challenges. Throws RegistryError on malformed input.
std::vector<Challenge> parse_www_authenticate(std::string_view header);

struct Credentials {
    std::string username;
    std::string password;
    // An OAuth refresh token stored by `docker login` against some registries
    // (config.json "identitytoken"); used instead of the password.
    std::string identity_token;
    bool operator==(const Credentials&) const = default;
};

// $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json.
std::string docker_config_path();

// The key Docker files a registry's credentials under: "https://index.docker.io/v1/"
// for Docker Hub, the host[:port] otherwise.
std::string credential_key(std::string_view registry);

// Credentials for a registry (host[:port], "docker.io" for Docker Hub) from
// config_path; nullopt when none are stored. Throws naming the file when it
// is not valid JSON or an entry is malformed.
std::optional<Credentials> load_credentials(std::string_view registry,
                                            const std::string& config_path);

// Saves credentials (atomically, mode 0600, keeping every other key of the
// file). Uses the credential helper when the file names one.
void store_credentials(std::string_view registry, const Credentials& creds,
                       const std::string& config_path);

// Removes stored credentials; false when there were none.
bool erase_credentials(std::string_view registry, const std::string& config_path);

} // namespace strata::registry
