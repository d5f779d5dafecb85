// The build executor: a Dockerfile and a context directory -> an image in the
// store, with BuildKit's semantics (DESIGN.md "A build, step by step").
//
//   builder::BuildOptions o;
//   o.context_dir = "."; o.tags = {"app:1"};
//   builder::BuildResult r = builder::build(store, o);   // throws on failure
//
// - Stages: dockerfile::plan() decides which stages the target needs; each
//   runs on its own thread as soon as the stages it depends on are done.
// - Steps: RUN, COPY, ADD and WORKDIR work in a fresh upper directory over a
//   kernel overlay of the parent's snapshots (store tmp/); the upper
//   directory is written as the layer and then adopted as the new snapshot.
//   Other instructions change only the config (history empty_layer: true).
// - Cache: builder/cache.hpp. A hit reuses the recorded layer; nothing runs.
// - A failing step throws StepError; nothing is named in the store (the
//   blobs and snapshots of steps that did finish stay cached).
#pragma once

#include "builder/cache.hpp"
#include "formats/compression.hpp"
#include "formats/oci.hpp"
#include "snapshot/store.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::runner {
class Control;
}

namespace strata::builder {

// Stops a running build from another thread (the CLI's signal thread): the
// running RUN steps are killed, no new step starts, and build() throws
// Cancelled after every mount and temporary directory is cleaned up.
class Cancellation {
public:
    void cancel() noexcept;
    bool cancelled() const noexcept { return m_flag.load(); }
    // For the executor: RUN steps register their runner while it runs.
    void add(runner::Control* c);
    void remove(runner::Control* c);

private:
    std::mutex m_mu;
    std::set<runner::Control*> m_running;
    std::atomic<bool> m_flag{false};
};

class Cancelled : public Error {
public:
    using Error::Error;
};

// Receives progress from the executor. Stages build on several threads: an
// implementation must serialise its own output. Step ids are 1-based and
// unique within a build.
class BuildEvents {
public:
    virtual ~BuildEvents() = default;
    // A step begins: "[stage-1 2/5] RUN make" (the stage name is left out when
    // the Dockerfile has a single stage).
    virtual void step_started(int id, const std::string& name) = 0;
    // The step is taken from the cache.
    virtual void step_cached(int id) = 0;
    // The step will run, and why it was not in the cache.
    virtual void step_running(int id, const std::string& reason) = 0;
    // Output of the step's process (stdout and stderr, as they come).
    virtual void step_output(int id, std::string_view data) = 0;
    // A note about the step ("writing layer sha256:... 1.2MB").
    virtual void step_note(int id, const std::string& note) = 0;
    // Bytes of the layer blob written so far while the step's layer is
    // packed (several times a second, and once at the end). Optional.
    virtual void step_packing(int id, std::uint64_t bytes) { (void)id, (void)bytes; }
    virtual void step_done(int id, double seconds) = 0;
    // An instruction that is not a step of its own (ENV, LABEL, CMD, ARG,
    // ...: it changes only the config) was applied: stage (index in the
    // Dockerfile), its position in the stage as step names count it (FROM is
    // 1), and whether the cache had its record. Optional.
    virtual void config_instruction(std::size_t stage, int pos, bool cached) {
        (void)stage, (void)pos, (void)cached;
    }
    virtual void step_failed(int id, const std::string& message, double seconds) = 0;
};

struct Secret {
    std::string id;
    std::string path;
};

// --ssh ID[=SOCKET]: an ssh agent socket for RUN --mount=type=ssh,id=ID.
struct SshAgent {
    std::string id;     // "default" unless given
    std::string socket; // host path of the agent socket
};

enum class Network { none, host };

struct BuildOptions {
    std::string context_dir;
    std::string dockerfile;                        // default: <context>/Dockerfile
    // The Dockerfile's text (strata build -f -, or a Dockerfile given as the
    // context on stdin): used instead of reading `dockerfile`.
    std::optional<std::string> dockerfile_text;
    std::map<std::string, std::string> labels;     // --label: set on the image config
    // How to recognise the context from build to build when explaining cache
    // misses (default: its absolute path; "-" for a context read from stdin).
    std::string context_label;
    std::vector<std::string> tags;                 // names to give the image
    std::map<std::string, std::string> build_args; // --build-arg
    std::string target;                            // --target; empty: the last stage
    bool no_cache = false;
    Network network = Network::none;               // RUN's default network
    std::vector<Secret> secrets;
    std::vector<SshAgent> ssh_agents; // --ssh
    // --allow: BuildKit's entitlements. RUN --network=host needs network.host
    // (or the build-wide --network host, as docker build grants it);
    // RUN --security=insecure needs security.insecure and runs privileged.
    bool allow_network_host = false;
    bool allow_security_insecure = false;
    formats::Compression compression = formats::Compression::gzip;
    int compression_level = 0;
    // SOURCE_DATE_EPOCH: history and config times, and layer mtimes clamped.
    std::optional<std::int64_t> source_date_epoch;
    std::string platform; // --platform: only the host platform can be built
    // Called for a FROM/--from image that the store does not have. Returns
    // the text to resolve in the store afterwards (e.g. after a pull), or
    // nullopt: the build then fails naming the image.
    std::function<std::optional<std::string>(const std::string& reference)> fetch_image;
    // --pull always: fetch_image is called for every FROM/--from image, even
    // one the store has (it re-resolves the tag at the registry).
    bool fetch_always = false;
    // --cache-from: asked on a miss in the store's own cache, in order.
    std::vector<const CacheSource*> cache_from;
    BuildEvents* events = nullptr;
    Cancellation* cancellation = nullptr;
};

struct BuildResult {
    formats::Descriptor manifest;
    formats::ImageConfig config;
    formats::Digest image_id = formats::Digest::of(""); // the config digest
    std::vector<formats::Descriptor> layers;
    int steps_run = 0;
    int steps_cached = 0;
    // The cache keys of the steps, in order, whose records make the image:
    // the target stage's (and the stages it is FROM), for --cache-to
    // mode=min; and those of every stage built, for mode=max.
    std::vector<std::string> cache_keys;
    std::vector<std::string> all_cache_keys;
    // What BuildKit prints as warnings after a build: build args no needed
    // stage consumed, a `# syntax=` frontend that strata does not run.
    std::vector<std::string> warnings;
};

// A build step failed. what() reads
//   "Dockerfile:7: RUN make: process "/bin/sh -c make" did not complete
//    successfully: exit code: 2"
class StepError : public Error {
public:
    StepError(const std::string& what, std::string file, int line, std::string instruction,
              std::string output, int exit_code)
        : Error(what), m_file(std::move(file)), m_line(line), m_instruction(std::move(instruction)),
          m_output(std::move(output)), m_exit_code(exit_code) {}
    const std::string& file() const noexcept { return m_file; }
    int line() const noexcept { return m_line; }
    const std::string& instruction() const noexcept { return m_instruction; }
    // The process's whole output (RUN only).
    const std::string& output() const noexcept { return m_output; }
    int exit_code() const noexcept { return m_exit_code; } // -1 when not a process

private:
    std::string m_file;
    int m_line;
    std::string m_instruction;
    std::string m_output;
    int m_exit_code;
};

BuildResult build(snapshot::Store& store, const BuildOptions& opts);

// The current time as RFC 3339 (UTC, seconds), or the epoch when set.
std::string build_time(const std::optional<std::int64_t>& source_date_epoch);

} // namespace strata::builder
