// The build executor behind builder::build() (build.hpp), shared by the
// files that hold its steps: executor.cpp (the Dockerfile, the stages, the
// cache lookup of a layer step, WORKDIR and the metadata instructions),
// run_step.cpp (RUN) and copy_step.cpp (COPY and ADD). Not a public
// interface: cli/ calls build().
#pragma once

#include "builder/build.hpp"
#include "builder/cache.hpp"
#include "builder/context_index.hpp"
#include "builder/copy.hpp"
#include "builder/dockerfile/dockerignore.hpp"
#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/plan.hpp"
#include "builder/workspace.hpp"
#include "formats/oci.hpp"
#include "snapshot/store.hpp"
#include "util/fd.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace strata::builder {

namespace df = strata::dockerfile;

// One layer of a stage's image: the blob, and the snapshot directory that
// holds it unpacked (in overlay form) over the layers below.
struct StageLayer {
    formats::Descriptor blob;
    std::string snapshot;
};

// A stage's image so far: its config and layers, and what its steps need to
// compute their cache keys and explain their misses.
struct StageResult {
    formats::ImageConfig config;         // config.diff_ids: one per layer, as layers
    std::vector<StageLayer> layers;      // bottom first
    std::string key;                     // the cache key of the last step
    std::string base_ref;                // what FROM named, for messages
    std::vector<std::string> cache_keys; // of the steps so far (for --cache-to)
    // For explaining misses: the base image ("busybox sha256:..."), the
    // first step that missed in this stage or the stages it is built on, and
    // the stage's instructions so far, expanded (RUN without its build args,
    // which are compared one by one).
    std::string base_id;
    std::string first_miss;
    std::vector<std::string> prior;
    // The build args in scope at the current step (every step's key chains
    // them through the ARG records before it).
    std::vector<std::pair<std::string, std::string>> args;

    // Appends a layer: its blob, its diff ID (to the config) and its snapshot.
    void add_layer(const formats::Descriptor& blob, const formats::Digest& diff_id,
                   std::string snapshot);
    // The snapshot directories, bottom first (Workspace, RootView).
    std::vector<std::string> lowers() const;
    std::vector<formats::Descriptor> blobs() const;
};

namespace detail {

// "1.23MB", as BuildKit's progress shows sizes.
std::string human_bytes(std::uint64_t n);
double seconds_since(std::chrono::steady_clock::time_point t0);
std::string join(const std::vector<std::string>& v, const std::string& sep);
// Whether path exists inside the root (the last component not followed).
bool exists_in_root(int rootfd, const std::string& path);
// A heredoc's text with the tabs that start its lines removed (<<-).
std::string chomp_tabs(const std::string& s);

} // namespace detail

class Executor {
public:
    Executor(snapshot::Store& store, const BuildOptions& opts);
    ~Executor(); // joins the TOC reads ahead and the blobs' commits
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    BuildResult run();

private:
    struct Step {
        int id = 0;
        std::string name;
        std::chrono::steady_clock::time_point t0;
        std::string slot; // where this step's inputs are remembered (StepInputs)
    };
    using ListFiles = std::function<std::optional<std::map<std::string, std::string>>()>;
    using Work = std::function<void(Workspace&)>;

    // A step that makes a layer (RUN, COPY, ADD, WORKDIR), for layer_step.
    struct LayerStep {
        std::string key;
        std::string created_by;
        StepInputs inputs;
        // The content probe of a COPY from the context: the key without the
        // content, and the content hash (to say "the files it reads
        // changed" when there is no earlier build here). Empty: none.
        std::string probe_key;
        std::string content_hash;
        // The files the step reads (COPY from the context), listed only
        // when they may have changed.
        ListFiles list_files;
        // COPY --link: the layer is made over an empty directory, so a
        // record made on another parent chain is valid here too.
        bool independent = false;
    };

    // --- planning and stage scheduling
    void load_dockerfile();
    StageResult build_stage(std::size_t index);
    std::optional<std::size_t> stage_by_ref(const std::string& ref, std::size_t before) const;
    StageResult external_image(const std::string& ref, const std::string& platform);
    const StageResult& finished_stage(std::size_t index);

    // --- steps
    void run_instruction(StageResult& st, df::Instruction ins, df::StageScope& scope, bool& cmd_set,
                         std::size_t stage, int pos, int total, bool trigger);
    Step start_step(std::size_t stage, int pos, int total, const std::string& text);
    // Starts a step, runs body, and reports it done, or failed with what
    // body threw (rethrown).
    void shown_step(std::size_t stage, int pos, int total, const std::string& text,
                    const std::function<void(const Step&)>& body);
    std::string stage_prefix(std::size_t stage, int pos, int total) const;
    std::string history_time(const std::optional<CacheRecord>& rec) const;
    void add_history(StageResult& st, const std::string& created_by, bool empty,
                     const std::string& created);

    // Looks the step's key up, or runs `work` in a workspace over the
    // stage's snapshots and records the result.
    void layer_step(StageResult& st, const Step& step, LayerStep ls, const Work& work);
    // The inputs every step has: instruction, base, the stage's earlier
    // instructions, parent key.
    StepInputs step_inputs(const StageResult& st, const std::string& key,
                           const std::string& instruction, bool with_parent = true) const;
    // A value named like a secret (or a --secret id) is kept as a digest.
    std::string maybe_redact(const std::string& name, const std::string& value) const;
    std::optional<std::map<std::string, std::string>>
    context_listing(const std::vector<std::string>& sources, const CopyOptions& co);
    // The snapshot of a cache hit's layer, unpacked from its blob over lowers
    // when missing; false when the blob is gone or does not hold the layer.
    bool restore_snapshot(const formats::Descriptor& layer, const formats::Digest& chain,
                          const formats::Digest& diff_id, const std::vector<std::string>& lowers);

    void do_run(StageResult& st, const df::Instruction& ins, const df::RunInstr& run,
                const df::StageScope& scope, const Step& step, std::size_t stage);
    void do_copy(StageResult& st, const df::Instruction& ins, const df::CopyInstr& cp,
                 const Step& step, std::size_t stage);
    void do_workdir(StageResult& st, const df::Instruction& ins, const Step& step);

    std::vector<std::string> run_env(const StageResult& st, const df::StageScope& scope) const;
    std::vector<std::pair<std::string, std::string>>
    args_in_scope(const StageResult& st, const df::StageScope& scope) const;
    std::vector<std::string> lowers_for_ref(const std::string& ref, std::size_t stage,
                                            std::string* key);
    CopyOptions context_copy_options() const;
    // hash_sources over the context, remembered under a fingerprint of the
    // whole context's metadata so that an unchanged context is not re-read
    // (builder/context_index.hpp). listing (when given) gets the files
    // with their digests when the context was walked for the hash (not when
    // the hash was remembered): context_listing's result, without a second
    // walk.
    // before_walk: called when the hash is not remembered, before the walk.
    std::string context_hash(const std::vector<std::string>& sources, const CopyOptions& co,
                             const std::string& options_signature,
                             std::optional<std::map<std::string, std::string>>* listing = nullptr,
                             const std::function<void()>& before_walk = {});
    // Reads, on a thread of its own, the zstd:chunked TOC of the layer that
    // the step probed as probe_key last made (read_chunked_toc keeps it): a
    // COPY whose files changed reuses that layer's files and frames, and
    // reads the TOC while its context is still being hashed.
    void prefetch_previous_toc(const std::string& probe_key);
    ContextIndex& context_index();
    ContextIndex* context_index_if_open(); // null when no step used the context
    // CopyOptions::listed for the context: its directories as the context
    // index walked them (one stat of each file per build).
    ListedDirs context_listed();
    // A layer's blob is fsynced and published on a thread of its own while
    // the build goes on (the next step needs only its snapshot and diff ID);
    // whatever reads the blob waits for it: a cache hit on the layer, a
    // step reusing its frames, and the image at the end (wait_commits,
    // which throws the first commit's error).
    void commit_in_background(const formats::Digest& blob, std::function<void()> commit);
    void wait_commit(const formats::Digest& blob);
    void wait_commits();
    // Runs f on a thread of its own: bookkeeping a step leaves behind (its
    // inputs' record, the context's digest memo), done while the next step
    // runs. wait_background() (the end of run(), the destructor) waits for
    // all of it.
    void in_background(std::function<void()> f);
    void wait_background();
    // The commits of blob (nullptr: all), taken under m_commit_mu.
    std::vector<std::shared_future<void>> commits_of(const formats::Digest* blob);

    [[noreturn]] void fail(const df::Instruction& ins, const std::string& message,
                           const std::string& output = {}, int exit_code = -1) const;
    // Runs f; an Error it throws (other than StepError) becomes the step's
    // failure (fail()).
    void as_step(const df::Instruction& ins, const std::function<void()>& f) const;

    snapshot::Store& m_store;
    const BuildOptions& m_opts;
    BuildCache m_cache;
    std::unique_ptr<BuildEvents> m_null_events;
    BuildEvents* m_events;

    std::string m_dockerfile_path;
    df::ParseResult m_ast;
    df::BuildPlan m_plan;
    bool m_multi_stage = false;
    std::optional<df::DockerIgnore> m_ignore;
    UniqueFd m_context_fd;

    std::mutex m_mu; // guards m_futures
    std::atomic<int> m_next_step{1};
    std::atomic<int> m_steps_run{0};
    std::atomic<int> m_steps_cached{0};
    std::vector<std::shared_future<StageResult>> m_futures;
    std::mutex m_context_index_mu; // guards m_context_index
    std::unique_ptr<ContextIndex> m_context_index;
    std::vector<std::string> m_warnings;
    std::string m_explain_context; // the context's absolute path, for step slots
    std::mutex m_prefetch_mu;      // guards m_prefetch
    std::vector<std::thread> m_prefetch;
    std::mutex m_background_mu; // guards m_background
    std::vector<std::future<void>> m_background;
    std::mutex m_commit_mu; // guards m_commits
    std::vector<std::pair<formats::Digest, std::shared_future<void>>> m_commits;
};

} // namespace strata::builder
