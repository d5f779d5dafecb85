// The build cache: one record per build step in the store's cache/ directory,
// named by the step's key.
//
// A key chains everything the step's result depends on:
//   key(step) = sha256("strata-build-cache v1" \n parent key \n instruction
//               text after expansion \n the values of the build args and ENV
//               in scope \n a content hash of the files the step reads)
// The first parent is the base: the manifest digest of the FROM image (or
// "scratch") and the platform. Since each key includes its parent's, a
// changed base, instruction, ARG value or context file changes the key of
// that step and of every step after it, and nothing else.
//
// A record (cache/<key hex>.json) holds the step's layer descriptor, diff ID
// and chain ID (absent for a step that changed no file), the history time it
// was first built at (so a rebuild with nothing changed gives the same image
// ID), and the "blobs"/"chain_ids" arrays that `strata gc` keeps alive.
//
// Records can also come from elsewhere (a CacheSource: a build cache
// imported from a registry with --cache-from, builder/remote_cache.hpp).
// Sources are asked only when the store has no record for a key; a record
// found there is copied into cache/, and its layer blob is downloaded only
// when the step that hits is reached (ensure_layer).
#pragma once

#include "formats/digest.hpp"
#include "formats/oci.hpp"
#include "snapshot/store.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace strata::builder {

struct CacheRecord {
    std::string key; // hex
    std::string created_by;
    std::string created; // RFC 3339 history time
    std::optional<formats::Descriptor> layer;
    std::optional<formats::Digest> diff_id;
    std::optional<formats::Digest> chain_id;
};

// A record as JSON (the form cache/<key>.json holds) and back; parsing
// throws naming `what` for a malformed record.
std::string to_json(const CacheRecord& record);
CacheRecord parse_cache_record(std::string_view json, std::string_view what);

// What a step's key was made of, labelled, so that the next build can say
// which input changed when the step misses (explain_miss). Kept per "slot":
// the same step position (context, Dockerfile, stage, step number and
// instruction kind) in cache/explain/<slot>.json, overwritten by each build.
// Labels: "instruction", "base", "prior" (the stage's earlier instructions),
// "parent", "arg NAME", "env NAME", "from", "content", and others shown as
// they are ("user", "cwd", "network", "mount", ...). Values of args and ENV
// named like secrets, or given with --secret ids, are stored as a short
// digest only (redact()).
struct StepInputs {
    std::string key;
    std::vector<std::pair<std::string, std::string>> items;
    // For COPY/ADD from the context: path -> type, mode and content digest
    // of each file read (nullopt when not listed: too many files).
    std::optional<std::map<std::string, std::string>> files;

    const std::string* get(const std::string& label) const;
};
std::string to_json(const StepInputs& inputs);
StepInputs parse_step_inputs(std::string_view json, std::string_view what);

// A value that must not be shown or stored: "<redacted sha256:...>" (a
// short digest, so that a change is still seen).
std::string redact(const std::string& value);
bool is_redacted(const std::string& value);
// BuildKit's SecretsUsedInArgOrEnv rule: a name with a word like password,
// token, secret, key, auth, credential(s), apikey, passwd, pword.
bool looks_secret(const std::string& name);

// Why a step missed, from the inputs it had at its last build (prev; none:
// a new step) and now. earlier_miss names the step of the stage (or of the
// stage it is built on) that missed first, if any.
std::string explain_miss(const std::optional<StepInputs>& prev, const StepInputs& cur,
                         const std::string& earlier_miss);

// Somewhere else to find cache records. Implementations are thread-safe
// (stages build in parallel).
class CacheSource {
public:
    virtual ~CacheSource() = default;
    // For messages: "registry.example/cache:main".
    virtual std::string name() const = 0;
    virtual std::optional<CacheRecord> lookup(const std::string& key) const = 0;
    // Puts the layer blob into the store, verified against its digest;
    // throws on failure.
    virtual void fetch_layer(snapshot::Store& store, const formats::Descriptor& layer) const = 0;
};

// Hashes the parts of a key, each length-prefixed so that no two part lists
// give the same input.
std::string cache_key(const std::vector<std::string>& parts);

class BuildCache {
public:
    explicit BuildCache(std::string dir, std::vector<const CacheSource*> sources = {});

    // The record for key, or nullopt (also for an unreadable record, logged):
    // from cache/, else from the first source that has it (then copied into
    // cache/).
    std::optional<CacheRecord> lookup(const std::string& key) const;
    // Only cache/.
    std::optional<CacheRecord> lookup_local(const std::string& key) const;
    // Makes sure the store has the record's layer blob, downloading it from a
    // source that has the key when it is missing. Returns false when it is
    // not to be had (a failed download is logged as a warning); *from names
    // the source it came from, left empty when the store had it.
    bool ensure_layer(snapshot::Store& store, const CacheRecord& record, std::string* from) const;
    // Writes the record atomically.
    void store(const CacheRecord& record) const;

    // A "probe" record remembers the content hash a step read last time under
    // a key made without it, so that a miss can say "the files it reads
    // changed" instead of "not in the cache".
    // It also keeps the key of that last build's record (key; empty: none),
    // so that a COPY that misses because some files changed can find the
    // previous result of the same step (last_probe_record) and reuse its
    // unchanged files and their compressed frames.
    std::optional<std::string> last_content(const std::string& probe_key) const;
    void remember_content(const std::string& probe_key, const std::string& content_hash,
                          const std::string& key = {}) const;
    std::optional<CacheRecord> last_probe_record(const std::string& probe_key) const;

    // The inputs remembered for a step slot (StepInputs), or nullopt.
    std::optional<StepInputs> last_inputs(const std::string& slot) const;
    void remember_inputs(const std::string& slot, const StepInputs& inputs) const;

    const std::string& dir() const noexcept { return m_dir; }

private:
    std::string m_dir;
    std::vector<const CacheSource*> m_sources;
};

// The uncompressed content size of a layer (the bytes of its regular files,
// as `docker images` and `strata history` count them), remembered per diff
// ID in cache/layer-sizes/: a build records it as it writes the layer,
// `strata images` after reading a layer once.
std::optional<std::uint64_t> known_layer_size(const snapshot::Store& store,
                                              const formats::Digest& diff_id);
// Failures are logged, not thrown: the size is only remembered.
void remember_layer_size(const snapshot::Store& store, const formats::Digest& diff_id,
                         std::uint64_t bytes);

} // namespace strata::builder
