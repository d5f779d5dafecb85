// The Docker Engine API endpoints of `strata serve` (cmd_serve.cpp), each
// backed by the functions the matching strata command calls. api/ carries
// the HTTP; these add the routes.
#pragma once

#include "api/http.hpp"
#include "cli/cli.hpp"

#include <cstddef>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

namespace strata::cli::serve {

// A handler of the form f(ctx, request, exchange) as the router's handler.
using ContextHandler = void (*)(Context&, api::Request&, api::Exchange&);
inline auto with_context(Context& ctx, ContextHandler f) {
    return [&ctx, f](api::Request& req, api::Exchange& ex) { f(ctx, req, ex); };
}

// /_ping, /version, /info (system.cpp).
void add_system_routes(api::Router& router, Context& ctx);
// /images/... (images.cpp), with /build, /commit and /system/df.
void add_image_routes(api::Router& router, Context& ctx);
// POST /images/create (pull, import), /images/{name}/push (registry.cpp).
void add_registry_routes(api::Router& router, Context& ctx);
// POST /build (build.cpp).
void add_build_routes(api::Router& router, Context& ctx);
// /containers/... (containers.cpp).
void add_container_routes(api::Router& router, Context& ctx);

// /containers/{id}/top, stats, changes, export, archive, rename, pause,
// unpause, update and /containers/prune (container_ops.cpp).
void add_container_op_routes(api::Router& router, Context& ctx);
// /volumes/... (volumes.cpp).
void add_volume_routes(api::Router& router, Context& ctx);
// /networks/... (networks.cpp).
void add_network_routes(api::Router& router, Context& ctx);

// POST /containers/{id}/attach, hijacked, and /resize (attach.cpp).
void add_attach_routes(api::Router& router, Context& ctx);
// POST /containers/{id}/exec, /exec/{id}/start (hijacked), /exec/{id}/json
// (exec.cpp).
void add_exec_routes(api::Router& router, Context& ctx);
// POST /containers/{id}/start's start (attach.cpp): attaches that came
// first (docker run, docker start -a) get the container's streams from its
// first byte, through a monitor that waits for them as `strata run` does;
// as `strata start` otherwise.
void start_container_attached(Context& ctx, const std::string& id);

// dockerd's detach keys ("ctrl-p,ctrl-q", "ctrl-a,x"): each a single
// character or ctrl-X (X a letter or one of @[\]^_); the bytes they send.
// Empty: dockerd's default ctrl-p,ctrl-q. A bad one is dockerd's 400.
std::string parse_detach_keys(const std::string& text);
// Watches a client's stdin for the detach keys: feed() returns the bytes
// to pass on (a prefix of the keys is held until the next byte shows it is
// not them) and sets detached once they came (what follows is dropped).
struct DetachMatcher {
    std::string keys;
    std::size_t matched = 0;
    bool detached = false;
    std::string feed(std::string_view data);
};

// The status and message dockerd answers for an exception a handler let
// through: 404 "No such image: busybox:latest", 409 for conflicts, 400
// for usage errors, else 500 with the message.
std::pair<int, std::string> classify_error(const std::exception& e);

// dockerd's text for a missing image: the name with its tag made explicit
// ("No such image: busybox:latest"), an ID or digest as given.
std::string no_such_image_message(const std::string& text);

} // namespace strata::cli::serve
