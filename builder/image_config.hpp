// What each Dockerfile instruction does to the image config, and the history
// entry it records, as BuildKit's dockerfile2llb writes them:
//
//   ENV A=b C=d        Env updated in place, history "ENV A=b C=d"
//   LABEL k=v          Labels,   "LABEL k=v"
//   USER u             User,     "USER u"
//   CMD / ENTRYPOINT   Cmd / Entrypoint (shell form: SHELL + command), history
//                      "CMD [\"/bin/sh\" \"-c\" \"x\"]" (Go's %q of the argv);
//                      ENTRYPOINT clears a Cmd inherited from the base image
//   EXPOSE 80          ExposedPorts "80/tcp" (ranges expanded), "EXPOSE 80"
//   VOLUME /a /b       Volumes, "VOLUME [/a /b]" (Go's %v)
//   STOPSIGNAL s       StopSignal, "STOPSIGNAL s"
//   HEALTHCHECK ...    Healthcheck, "HEALTHCHECK &{[...] \"30s\" ...}" (Go's %q)
//   SHELL [..]         Shell, "SHELL [/bin/bash -c]"
//   ONBUILD x          OnBuild += "x", "ONBUILD x"
//   MAINTAINER n       Author, "MAINTAINER n"
//   ARG A=b            nothing in the config, "ARG A=b"
//   WORKDIR p          WorkingDir (relative to the previous one), "WORKDIR /abs"
//
// These history entries are empty_layer: true; RUN, COPY and ADD entries
// ("RUN /bin/sh -c x # buildkit") carry a layer unless the step changed
// nothing (BuildKit drops empty layers the same way).
#pragma once

#include "builder/dockerfile/instructions.hpp"
#include "formats/oci.hpp"
#include "runner/runner.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::builder {

inline constexpr const char* k_default_path_env =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The config of `FROM scratch` (BuildKit's emptyImage): the host platform,
// PATH set, WorkingDir "/".
formats::ImageConfig scratch_config();

// The shell of the stage (config.Shell, or /bin/sh -c).
std::vector<std::string> effective_shell(const formats::ImageConfig& cfg);

// Applies a metadata instruction (everything but FROM, RUN, COPY, ADD) to the
// config and returns the history text. `cmd_set` tracks whether CMD was set in
// this stage (ENTRYPOINT clears an inherited Cmd only).
std::string apply_metadata(formats::ImageConfig& cfg, const dockerfile::Instruction& ins,
                           bool& cmd_set);

// The absolute working directory a WORKDIR sets (relative paths join the
// current WorkingDir; cleaned).
std::string resolve_workdir(const formats::ImageConfig& cfg, const std::string& path);

// Sets or replaces NAME in a "K=V" list, keeping its position.
void set_env(std::vector<std::string>& env, const std::string& name, const std::string& value);
std::optional<std::string> get_env(const std::vector<std::string>& env, const std::string& name);

// The argv a RUN runs (shell form: SHELL + command; heredocs joined as BuildKit
// passes them to the shell). Heredoc scripts with a shebang are handled by the
// executor; this returns the shell form for them.
std::vector<std::string> run_argv(const formats::ImageConfig& cfg, const dockerfile::RunInstr& run);

// "RUN |2 A=1 B=2 /bin/sh -c echo hi" (without the " # buildkit" suffix):
// BuildKit's runCommandString, the declared ARGs with their values first.
std::string run_history(const std::vector<std::string>& argv,
                        const std::vector<std::pair<std::string, std::string>>& args_in_scope);

// What `docker run` and `docker create` change of the image's config for
// the container's process (the Engine API's create body carries the same).
struct RunOverrides {
    // --entrypoint: replaces the image's Entrypoint and drops its Cmd; ""
    // leaves no entrypoint (Docker's `--entrypoint ""`). nullopt: the image's.
    std::optional<std::string> entrypoint;
    // IMAGE [COMMAND [ARG...]]: replaces the image's Cmd when not empty.
    std::vector<std::string> command;
    std::string workdir; // -w; empty: the image's WorkingDir, or "/"
    std::string user;    // -u; empty: the image's User
};

// The process a container of an image with config `cfg` runs, as Docker
// resolves it: argv (Entrypoint + Cmd, with the overrides), env (the image's
// Env; override_env sets the flags' over it), cwd and user. The other fields
// keep RunSpec's defaults (rootfs unset). Throws UsageError when neither the
// image nor the overrides give a command.
runner::RunSpec image_run_spec(const formats::ImageConfig& cfg, const RunOverrides& o);

// Sets each "K=V" of `overrides` in env, in order: the first entry named K
// is replaced where it stands, else the variable is appended (moby's
// ReplaceOrAppendEnvValues); an entry without '=' removes K. Never throws.
void override_env(std::vector<std::string>& env, const std::vector<std::string>& overrides);

// Go's %q of a []string: ["a" "b"].
std::string go_quote_list(const std::vector<std::string>& v);
// Go's time.Duration.String() of nanoseconds ("1m30s", "500ms", "0s").
std::string go_duration(std::int64_t ns);

} // namespace strata::builder
