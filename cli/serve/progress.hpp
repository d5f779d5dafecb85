// dockerd's JSON progress messages for pull and push (POST /images/create,
// /images/{name}/push), from strata's transfer events; pure functions, so
// that their shapes are unit-tested (tests/unit/cli/test_serve_progress.cpp).
#pragma once

#include "registry/auth.hpp"
#include "registry/transfer.hpp"
#include "snapshot/reference.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace strata::cli::serve {

// {"errorDetail":{"message":M},"error":M}: an error after the stream began.
nlohmann::ordered_json error_message(const std::string& message);

// The X-Registry-Auth header: base64url (padded or not) of {"username",
// "password", "auth" (base64 "user:password"), "identitytoken"}. nullopt
// when it holds no credentials or does not decode (dockerd then pulls
// without: the stored login is used, as strata pull does).
std::optional<registry::Credentials> registry_auth(const std::string& header);

// fromImage and tag as one reference: the tag parameter, a tag or a digest,
// replaces a tag given in fromImage.
std::string pull_reference_text(const std::string& from_image, const std::string& tag);

// A pull's messages for one transfer event: {"status":"Pulling from
// library/busybox","id":"latest"} once the manifest is known, then per layer
// "Pulling fs layer", "Download complete" and "Pull complete", or "Already
// exists" (the config blob is not shown, as dockerd).
std::vector<nlohmann::ordered_json> pull_progress(const registry::TransferEvent& e,
                                                  const snapshot::Reference& ref);

// dockerd's 404 text for a manifest the registry does not have:
// "manifest for 127.0.0.1:5000/app:1 not found: manifest unknown: manifest
// unknown" (the registry's error code and message, from strata's error).
std::string manifest_not_found_message(const snapshot::Reference& ref, const std::string& error);

// A push's messages for one event: "Layer already exists", "Mounted from
// REPO", "Pushed".
std::vector<nlohmann::ordered_json> push_progress(const registry::TransferEvent& e);

// The end of a push: "TAG: digest: sha256:... size: N" and the aux message
// {"progressDetail":{},"aux":{"Tag":..,"Digest":..,"Size":..}}.
std::vector<nlohmann::ordered_json> push_result(const snapshot::Reference& dest,
                                                const registry::PushResult& r);

} // namespace strata::cli::serve

namespace strata::cli::serve {

// POST /commit's body (a container Config: Cmd, Entrypoint, Env, Labels,
// WorkingDir, User, ExposedPorts, Volumes, StopSignal, OnBuild) as the
// Dockerfile instructions docker commit --change takes, applied before the
// changes parameter (dockerd's BuildFromConfig order). A field strata
// cannot set on an image, given a value other than its zero, is a
// UsageError naming it.
std::vector<std::string> config_changes(const nlohmann::json& config);

} // namespace strata::cli::serve
