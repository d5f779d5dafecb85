// strata build's work as plain functions, for `strata build` (cmd_build.cpp)
// and the API server's POST /build (cli/serve/build.cpp) alike: the options
// given to builder::build, a context read as a stream (a tar or a
// Dockerfile), and the pulling of FROM images the store lacks.
#pragma once

#include "builder/build.hpp"
#include "snapshot/store.hpp"

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace strata::cli {

// What `strata build` takes that shapes the image (its flags, less those of
// the command line's own output: progress, iidfile, explain-cache, -o).
struct BuildSettings {
    std::vector<std::string> tags;
    std::vector<std::string> build_args; // K=V, or K: the value from the environment
    std::string target;
    bool no_cache = false;
    std::string network = "none";
    std::vector<std::string> secrets;
    std::vector<std::string> ssh;
    std::vector<std::string> allow; // --allow entitlements
    std::string compression = "gzip";
    std::vector<std::string> labels; // K=V
    std::string platform;
    std::string pull = "missing"; // always, missing, never (true/false as docker's)
    bool tls_verify = true;
};

// Fills everything of `o` but the context, the Dockerfile, the events and
// the fetching of images from `s`. Throws UsageError naming the flag.
void apply_build_settings(const BuildSettings& s, builder::BuildOptions& o);

// The pull policy of --pull: "always", "missing" or "never" (true and false
// read as docker build's --pull). Throws UsageError otherwise.
std::string pull_policy(const std::string& pull);

// A context given as a stream (`strata build -`, the body of POST /build),
// already in a seekable file `fd`: a tar (any compression) is extracted
// safely into `dir` (builder::extract_archive: nothing is written outside
// it) and `file` names the Dockerfile inside it (default "Dockerfile");
// anything else is the Dockerfile itself, with an empty context. `label`
// names the stream in errors ("-", "the request's body").
void context_from_stream(snapshot::Store& store, int fd, const std::string& file,
                         const std::string& dir, const std::string& label,
                         builder::BuildOptions& o);

// FROM and COPY --from images the store lacks (or every one, with --pull
// always) pulled as `strata pull` pulls them; each reference once per build,
// whichever stage asks first. `message` gets "pulling REF" and "pulled REF
// DIGEST (...)" lines.
class BaseImageFetcher {
public:
    BaseImageFetcher(snapshot::Store& store, const std::string& pull_policy, bool tls_verify,
                     std::function<void(const std::string&)> message);
    // Sets o.fetch_image and o.fetch_always; `this` must outlive the build.
    void install(builder::BuildOptions& o);

private:
    snapshot::Store& m_store;
    std::string m_policy;
    bool m_tls_verify;
    std::function<void(const std::string&)> m_message;
    std::mutex m_mu;
    std::map<std::string, std::string> m_pulled;
};

} // namespace strata::cli
