#include "builder/executor.hpp"

#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/image_config.hpp"
#include "formats/tar.hpp"
#include "formats/zstd_chunked.hpp"
#include "runner/user.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/partial_blob.hpp"
#include "snapshot/upper_layer.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/root.hpp"
#include "util/scope.hpp"
#include "util/sha256.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace strata::builder {

using formats::Descriptor;
using formats::Digest;
using formats::ImageConfig;
using namespace detail;

void StageResult::add_layer(const Descriptor& blob, const Digest& diff_id, std::string snapshot) {
    config.diff_ids.push_back(diff_id);
    layers.push_back({blob, std::move(snapshot)});
}

std::vector<std::string> StageResult::lowers() const {
    std::vector<std::string> out;
    out.reserve(layers.size());
    for (const auto& l : layers) {
        out.push_back(l.snapshot);
    }
    return out;
}

std::vector<Descriptor> StageResult::blobs() const {
    std::vector<Descriptor> out;
    out.reserve(layers.size());
    for (const auto& l : layers) {
        out.push_back(l.blob);
    }
    return out;
}

namespace detail {

std::string human_bytes(std::uint64_t n) {
    const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        ++u;
    }
    return u == 0 ? fmt::format("{}B", n) : fmt::format("{:.2f}{}", v, units[u]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        out += (i ? sep : "") + v[i];
    }
    return out;
}

bool exists_in_root(int rootfd, const std::string& path) {
    try {
        open_in_root(rootfd, path, O_PATH | O_NOFOLLOW);
        return true;
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
            return false;
        }
        throw;
    }
}

std::string chomp_tabs(const std::string& s) {
    std::string out;
    bool line_start = true;
    for (char c : s) {
        if (line_start && c == '\t') {
            continue;
        }
        line_start = c == '\n';
        out += c;
    }
    return out;
}

} // namespace detail

namespace {

class NullEvents final : public BuildEvents {
public:
    void step_started(int, const std::string&) override {}
    void step_cached(int) override {}
    void step_running(int, const std::string&) override {}
    void step_output(int, std::string_view) override {}
    void step_note(int, const std::string&) override {}
    void step_done(int, double) override {}
    void step_failed(int, const std::string&, double) override {}
};

// `# syntax=` frontends that are the Dockerfile syntax strata implements
// itself (docker/dockerfile:1, :1.7, :labs, docker.io/..., -upstream).
bool is_builtin_frontend(const std::string& ref) {
    std::string r = ref;
    for (const char* prefix : {"docker.io/", "index.docker.io/"}) {
        if (r.rfind(prefix, 0) == 0) {
            r = r.substr(std::string(prefix).size());
        }
    }
    std::string name = r.substr(0, r.find('@'));
    std::string repo = name.substr(0, name.find(':'));
    return repo == "docker/dockerfile" || repo == "docker/dockerfile-upstream";
}

// Reports the size of a layer blob while it is written (a thread polls the
// blob file: the tar and compression code stays as it is), and once more
// when packing ends.
class PackingProgress {
public:
    PackingProgress(BuildEvents* events, int id, int blob_fd)
        : m_events(events), m_id(id), m_fd(blob_fd) {
        if (m_events != nullptr) {
            m_thread = std::thread([this] {
                std::unique_lock<std::mutex> l(m_mu);
                while (
                    !m_cv.wait_for(l, std::chrono::milliseconds(250), [this] { return m_done; })) {
                    report();
                }
            });
        }
    }
    ~PackingProgress() {
        if (m_events == nullptr) {
            return;
        }
        {
            std::lock_guard<std::mutex> l(m_mu);
            m_done = true;
        }
        m_cv.notify_all();
        m_thread.join();
        report();
    }
    PackingProgress(const PackingProgress&) = delete;
    PackingProgress& operator=(const PackingProgress&) = delete;

private:
    void report() {
        struct stat st;
        if (::fstat(m_fd, &st) == 0) {
            m_events->step_packing(m_id, static_cast<std::uint64_t>(st.st_size));
        }
    }
    BuildEvents* m_events;
    int m_id;
    int m_fd;
    std::thread m_thread;
    std::mutex m_mu;
    std::condition_variable m_cv;
    bool m_done = false;
};

} // namespace

Executor::Executor(snapshot::Store& store, const BuildOptions& opts)
    : m_store(store), m_opts(opts), m_cache(store.cache_dir(), opts.cache_from),
      m_null_events(std::make_unique<NullEvents>()),
      m_events(opts.events ? opts.events : m_null_events.get()) {}

Executor::~Executor() {
    {
        std::lock_guard l(m_prefetch_mu);
        for (auto& t : m_prefetch) {
            t.join();
        }
    }
    wait_background();
    // A build that failed still lets its layers' commits finish (they are
    // the cache of its steps that ran).
    std::lock_guard l(m_commit_mu);
    for (auto& [blob, f] : m_commits) {
        f.wait();
    }
}

void Executor::commit_in_background(const Digest& blob, std::function<void()> commit) {
    std::lock_guard l(m_commit_mu);
    m_commits.emplace_back(blob, std::async(std::launch::async, std::move(commit)).share());
}

std::vector<std::shared_future<void>> Executor::commits_of(const Digest* blob) {
    std::lock_guard l(m_commit_mu);
    std::vector<std::shared_future<void>> pending;
    for (const auto& [d, f] : m_commits) {
        if (blob == nullptr || d == *blob) {
            pending.push_back(f);
        }
    }
    return pending;
}

void Executor::wait_commit(const Digest& blob) {
    for (auto& f : commits_of(&blob)) {
        f.get();
    }
}

void Executor::wait_commits() {
    std::vector<std::shared_future<void>> pending = commits_of(nullptr);
    for (auto& f : pending) {
        f.wait();
    }
    for (auto& f : pending) {
        f.get();
    }
}

void Executor::in_background(std::function<void()> f) {
    std::lock_guard l(m_background_mu);
    m_background.push_back(std::async(std::launch::async, std::move(f)));
}

void Executor::wait_background() {
    std::vector<std::future<void>> running;
    {
        std::lock_guard l(m_background_mu);
        running.swap(m_background);
    }
    for (auto& f : running) {
        f.wait();
    }
}

void Executor::prefetch_previous_toc(const std::string& probe_key) {
    if (probe_key.empty() || m_opts.no_cache || m_opts.compression != formats::Compression::zstd) {
        return;
    }
    std::optional<CacheRecord> prev = m_cache.last_probe_record(probe_key);
    if (!prev || !prev->layer) {
        return;
    }
    formats::Descriptor layer = *prev->layer;
    auto ann = layer.annotations.find(std::string(formats::k_chunked_manifest_checksum_key));
    if (ann == layer.annotations.end() || !m_store.has_blob(layer.digest)) {
        return;
    }
    std::string toc_digest = ann->second;
    std::lock_guard l(m_prefetch_mu);
    m_prefetch.emplace_back([this, layer = std::move(layer), toc_digest = std::move(toc_digest)] {
        try {
            UniqueFd blob = m_store.open_blob(layer.digest);
            formats::read_chunked_toc(blob.get(), static_cast<std::uint64_t>(layer.size),
                                      layer.digest.str(), toc_digest);
        } catch (const std::exception& e) {
            // The step reads it again, and says what is wrong with it.
            STRATA_LOG_DEBUG("reading the TOC of layer {} ahead: {}", layer.digest.str(), e.what());
        }
    });
}

void Executor::load_dockerfile() {
    if (m_opts.context_dir.empty()) {
        throw UsageError("no build context given");
    }
    if (!fs::is_dir(m_opts.context_dir)) {
        throw UsageError("build context " + m_opts.context_dir + " is not a directory");
    }
    m_context_fd = fs::open(m_opts.context_dir, O_RDONLY | O_DIRECTORY);
    m_explain_context =
        m_opts.context_label.empty() ? fs::absolute(m_opts.context_dir) : m_opts.context_label;
    m_dockerfile_path =
        m_opts.dockerfile.empty() ? fs::join(m_opts.context_dir, "Dockerfile") : m_opts.dockerfile;
    if (fs::absolute(m_dockerfile_path).starts_with(fs::absolute(m_opts.context_dir) + "/")) {
        // A Dockerfile in the context that is a symlink: followed inside the
        // context only (one given with -f outside it is the user's choice).
        df::DockerIgnore::check_inside(m_dockerfile_path, m_opts.context_dir, "the Dockerfile");
    }
    std::string text;
    if (m_opts.dockerfile_text) {
        text = *m_opts.dockerfile_text;
    } else {
        try {
            text = fs::read_file(m_dockerfile_path, 16 << 20);
        } catch (const SysError& e) {
            throw Error("cannot read the Dockerfile: " + std::string(e.what()));
        }
    }
    std::string shown =
        m_opts.dockerfile.empty() || m_opts.dockerfile_text ? "Dockerfile" : m_opts.dockerfile;
    m_ast = df::parse(text, shown);
    for (const auto& d : m_ast.directives) {
        if (d.name == "syntax" && !is_builtin_frontend(d.value)) {
            m_warnings.push_back(fmt::format("{}:{}: # syntax={}: strata does not run external "
                                             "frontends; building with its own Dockerfile frontend",
                                             shown, d.line, d.value));
        }
    }
    df::PlanOptions po;
    po.build_args = m_opts.build_args;
    po.target = m_opts.target;
    if (!m_opts.platform.empty()) {
        formats::Platform want = formats::parse_platform(m_opts.platform);
        if (!formats::platform_matches(want, formats::host_platform())) {
            throw UsageError("--platform " + m_opts.platform + ": only the host platform (" +
                             formats::to_string(formats::host_platform()) + ") can be built");
        }
    }
    m_plan = df::plan(m_ast, po);
    if (!m_plan.unused_build_args.empty()) {
        // BuildKit's wording (moby builder/dockerfile/buildargs.go).
        m_warnings.push_back("[Warning] One or more build-args [" +
                             join(m_plan.unused_build_args, " ") + "] were not consumed");
    }
    m_multi_stage = m_plan.stages.size() > 1;
    // A build that copies from the context walks it while the first steps run.
    for (std::size_t i : m_plan.order) {
        for (const auto& ins : m_plan.stages[i].instructions) {
            const auto* cp = std::get_if<df::CopyInstr>(&ins.data);
            if (cp != nullptr && cp->from.empty()) {
                (void)context_index();
                break;
            }
        }
    }
    m_ignore = df::DockerIgnore::load_for(m_opts.context_dir, m_dockerfile_path);
    for (const auto& s : m_opts.secrets) {
        if (!fs::exists(s.path)) {
            throw UsageError("--secret id=" + s.id + ": " + s.path + " does not exist");
        }
    }
}

std::string Executor::stage_prefix(std::size_t stage, int pos, int total) const {
    const df::Stage& s = m_plan.stages[stage];
    std::string label;
    if (m_multi_stage) {
        label = (s.name.empty() ? "stage-" + std::to_string(stage) : s.name) + " ";
    }
    return fmt::format("[{}{}/{}]", label, pos, total);
}

Executor::Step Executor::start_step(std::size_t stage, int pos, int total,
                                    const std::string& text) {
    if (m_opts.cancellation && m_opts.cancellation->cancelled()) {
        throw Cancelled("build cancelled");
    }
    Step s;
    s.id = m_next_step++;
    s.name = stage_prefix(stage, pos, total) + " " + text;
    s.t0 = std::chrono::steady_clock::now();
    // The same step of the same Dockerfile in the same context, build after
    // build: its inputs are compared to explain a miss.
    const df::Stage& sd = m_plan.stages[stage];
    std::string kind = text.substr(0, text.find(' '));
    if (kind == "ONBUILD") {
        std::size_t end = text.find(' ', 8);
        kind += " " + text.substr(8, end == std::string::npos ? std::string::npos : end - 8);
    }
    s.slot = cache_key({"explain-slot/1", m_explain_context, m_ast.file,
                        sd.name.empty() ? "stage-" + std::to_string(stage) : sd.name,
                        std::to_string(pos), kind});
    m_events->step_started(s.id, s.name);
    return s;
}

std::string Executor::history_time(const std::optional<CacheRecord>& rec) const {
    if (m_opts.source_date_epoch) {
        return build_time(m_opts.source_date_epoch);
    }
    if (rec && !rec->created.empty()) {
        return rec->created;
    }
    return build_time(std::nullopt);
}

void Executor::add_history(StageResult& st, const std::string& created_by, bool empty,
                           const std::string& created) {
    formats::History h;
    h.created = created;
    h.created_by = created_by;
    h.comment = "buildkit.dockerfile.v0";
    h.empty_layer = empty;
    st.config.history.push_back(std::move(h));
}

void Executor::shown_step(std::size_t stage, int pos, int total, const std::string& text,
                          const std::function<void(const Step&)>& body) {
    Step step = start_step(stage, pos, total, text);
    try {
        body(step);
    } catch (const std::exception& e) {
        m_events->step_failed(step.id, e.what(), seconds_since(step.t0));
        throw;
    }
    m_events->step_done(step.id, seconds_since(step.t0));
}

void Executor::as_step(const df::Instruction& ins, const std::function<void()>& f) const {
    try {
        f();
    } catch (const StepError&) {
        throw;
    } catch (const Error& e) {
        fail(ins, e.what());
    }
}

void Executor::fail(const df::Instruction& ins, const std::string& message,
                    const std::string& output, int exit_code) const {
    std::string text = ins.original.empty() ? ins.keyword : ins.original;
    throw StepError(fmt::format("{}:{}: {}: {}", ins.loc.file, ins.loc.line, text, message),
                    ins.loc.file, ins.loc.line, text, output, exit_code);
}

std::optional<std::size_t> Executor::stage_by_ref(const std::string& ref,
                                                  std::size_t before) const {
    std::string lower;
    for (char c : ref) {
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (std::size_t i = 0; i < before && i < m_plan.stages.size(); ++i) {
        if (!m_plan.stages[i].name.empty() && m_plan.stages[i].name == lower) {
            return i;
        }
    }
    if (!ref.empty() && ref.find_first_not_of("0123456789") == std::string::npos) {
        std::size_t idx = std::stoul(ref);
        if (idx < before) {
            return idx;
        }
    }
    return std::nullopt;
}

const StageResult& Executor::finished_stage(std::size_t index) {
    std::shared_future<StageResult> f;
    {
        std::lock_guard<std::mutex> l(m_mu);
        f = m_futures.at(index);
    }
    if (!f.valid()) {
        throw Error(fmt::format("internal error: stage {} was not scheduled", index));
    }
    return f.get();
}

StageResult Executor::external_image(const std::string& ref, const std::string& platform) {
    StageResult st;
    st.base_ref = ref;
    if (ref == "scratch") {
        st.config = scratch_config();
        st.key = cache_key({"FROM scratch", formats::to_string(formats::host_platform())});
        st.base_id = "scratch";
        return st;
    }
    std::optional<snapshot::ImageRecord> rec;
    if (m_opts.fetch_always && m_opts.fetch_image) {
        if (auto got = m_opts.fetch_image(ref)) {
            rec = m_store.resolve(*got);
        }
    }
    try {
        if (!rec) {
            rec = m_store.resolve(ref);
        }
    } catch (const Error& e) {
        if (!snapshot::Reference::try_parse(ref)) {
            throw Error("invalid image reference \"" + ref + "\": " + e.what());
        }
        if (m_opts.fetch_image && !m_opts.fetch_always) {
            if (auto got = m_opts.fetch_image(ref)) {
                rec = m_store.resolve(*got);
            }
        }
        if (!rec) {
            throw Error("no such image in the store: " + ref + " (strata pull " + ref +
                        ", or strata bootstrap busybox for the example base)");
        }
    }
    m_store.keep(rec->manifest); // gc leaves the base alone while the build uses it
    snapshot::Image img = m_store.load(rec->manifest);
    // A lazily pulled base (`run --lazy`, `pull --lazy`): the build unpacks
    // its layers, so its pull is completed first.
    if (m_opts.fetch_image && rec->name &&
        std::any_of(img.manifest.layers.begin(), img.manifest.layers.end(), [&](const auto& l) {
            return !m_store.has_blob(l.digest) && snapshot::PartialBlob::exists(m_store, l.digest);
        })) {
        if (auto got = m_opts.fetch_image(rec->name->full())) {
            rec = m_store.resolve(*got);
            m_store.keep(rec->manifest);
            img = m_store.load(rec->manifest);
        }
    }
    if (!platform.empty()) {
        formats::Platform want = formats::parse_platform(platform);
        if (!formats::platform_matches(want, formats::host_platform())) {
            throw Error("FROM --platform=" + platform + ": only the host platform (" +
                        formats::to_string(formats::host_platform()) + ") can be built");
        }
    }
    formats::Platform have;
    have.os = img.config.os;
    have.architecture = img.config.architecture;
    have.variant = img.config.variant;
    if (!have.os.empty() && !formats::platform_matches(formats::host_platform(), have)) {
        STRATA_LOG_WARN("{} is for {}, not the host platform {}", ref, formats::to_string(have),
                        formats::to_string(formats::host_platform()));
    }
    st.config = img.config;
    std::vector<std::string> snapshots = m_store.ensure_snapshots(img);
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        st.layers.push_back({img.manifest.layers[i], std::move(snapshots[i])});
    }
    st.key = cache_key(
        {"FROM", rec->manifest.digest.str(), formats::to_string(formats::host_platform())});
    st.base_id = ref + " " + rec->manifest.digest.str();
    return st;
}

std::vector<std::string> Executor::lowers_for_ref(const std::string& ref, std::size_t stage,
                                                  std::string* key) {
    if (auto idx = stage_by_ref(ref, stage)) {
        const StageResult& r = finished_stage(*idx);
        if (key) {
            *key = r.key;
        }
        return r.lowers();
    }
    StageResult r = external_image(ref, "");
    if (key) {
        *key = r.key;
    }
    return r.lowers();
}

std::vector<std::string> Executor::run_env(const StageResult& st,
                                           const df::StageScope& scope) const {
    std::vector<std::string> env = st.config.config.env;
    for (const auto& [k, v] : scope.args().entries()) {
        if (!get_env(env, k)) {
            env.push_back(k + "=" + v);
        }
    }
    return env;
}

std::vector<std::pair<std::string, std::string>>
Executor::args_in_scope(const StageResult& st, const df::StageScope& scope) const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, v] : scope.args().entries()) {
        auto env = get_env(st.config.config.env, k);
        out.emplace_back(k, env ? *env : v);
    }
    return out;
}

CopyOptions Executor::context_copy_options() const {
    CopyOptions o;
    if (m_ignore) {
        const df::DockerIgnore* ign = &*m_ignore;
        o.excluded = [ign](const std::string& rel, bool) { return ign->excluded(rel); };
        o.may_reinclude = [ign](const std::string& rel) { return ign->may_reinclude_under(rel); };
    }
    return o;
}

bool Executor::restore_snapshot(const Descriptor& layer, const Digest& chain, const Digest& diff_id,
                                const std::vector<std::string>& lowers) {
    if (m_store.has_snapshot(chain)) {
        return true;
    }
    if (!m_store.has_blob(layer.digest)) {
        return false;
    }
    try {
        m_store.ensure_snapshot(layer, diff_id, chain, lowers);
    } catch (const snapshot::CorruptLayer& e) {
        // A record (perhaps imported from a registry) names the blob and the
        // diff ID the image config will carry: the blob must hold them.
        STRATA_LOG_WARN("cached layer {}: not using it: {}", layer.digest.str(), e.what());
        return false;
    }
    return true;
}

StepInputs Executor::step_inputs(const StageResult& st, const std::string& key,
                                 const std::string& instruction, bool with_parent) const {
    StepInputs in;
    in.key = key;
    in.items.emplace_back("instruction", instruction);
    in.items.emplace_back("base", st.base_id);
    in.items.emplace_back("prior", join(st.prior, "\n"));
    if (with_parent) {
        in.items.emplace_back("parent", st.key);
    }
    for (const auto& [k, v] : st.args) {
        in.items.emplace_back("arg " + k, maybe_redact(k, v));
    }
    return in;
}

std::string Executor::maybe_redact(const std::string& name, const std::string& value) const {
    bool secret = looks_secret(name);
    for (const auto& s : m_opts.secrets) {
        secret = secret || strcasecmp(s.id.c_str(), name.c_str()) == 0;
    }
    return secret ? redact(value) : value;
}

namespace {
// The most files a step's listing (explanations of misses) holds.
constexpr std::size_t k_max_listed = 50000;
} // namespace

std::optional<std::map<std::string, std::string>>
Executor::context_listing(const std::vector<std::string>& sources, const CopyOptions& co) {
    // Listed through the context's digest memo: only files whose metadata
    // changed since they were last hashed are read.
    std::map<std::string, std::string> files;
    try {
        CopyOptions lo = co;
        lo.listed = context_listed();
        hash_sources(m_context_fd.get(), sources, lo, &context_index(), &files);
    } catch (const Error& e) {
        STRATA_LOG_DEBUG("listing the context files of a step: {}", e.what());
        return std::nullopt;
    }
    if (files.size() > k_max_listed) {
        return std::nullopt;
    }
    return files;
}

void Executor::layer_step(StageResult& st, const Step& step, LayerStep ls, const Work& work) {
    const std::string& key = ls.key;
    const std::string& created_by = ls.created_by;
    StepInputs& inputs = ls.inputs;
    const ListFiles& list_files = ls.list_files;
    const bool independent = ls.independent;
    // The inputs this step had at its last build, to say why it misses. The
    // files a COPY reads are listed only when they may have changed.
    std::optional<StepInputs> prev = m_cache.last_inputs(step.slot);
    bool files_filled = false;
    auto fill_files = [&] {
        if (files_filled || !list_files) {
            return;
        }
        files_filled = true;
        const std::string* pc = prev ? prev->get("content") : nullptr;
        const std::string* cc = inputs.get("content");
        if (prev && prev->files && pc != nullptr && cc != nullptr && *pc == *cc) {
            inputs.files = prev->files;
        } else {
            inputs.files = list_files();
        }
    };
    // independent (COPY --link): the layer is made over an empty directory,
    // so a record made on another parent chain is valid here too; its
    // snapshot is found, or unpacked from the blob, under this chain's ID.
    std::optional<CacheRecord> rec;
    std::optional<Digest> hit_chain;
    std::string reason;
    if (m_opts.no_cache) {
        reason = "--no-cache";
    } else {
        rec = m_cache.lookup(key);
        if (rec && rec->layer) {
            wait_commit(rec->layer->digest);
            std::vector<Digest> diffs = st.config.diff_ids;
            diffs.push_back(*rec->diff_id);
            hit_chain = formats::chain_id(diffs);
            std::string imported_from;
            if ((!independent && *hit_chain != *rec->chain_id) ||
                !m_cache.ensure_layer(m_store, *rec, &imported_from) ||
                !restore_snapshot(*rec->layer, *hit_chain, *rec->diff_id,
                                  independent ? std::vector<std::string>{} : st.lowers())) {
                rec.reset();
                reason = "the cached layer is no longer in the store";
            } else if (!imported_from.empty()) {
                m_events->step_note(
                    step.id,
                    fmt::format("importing layer {} {} from cache {}", rec->layer->digest.str(),
                                human_bytes(static_cast<std::uint64_t>(rec->layer->size)),
                                imported_from));
            }
        }
        if (!rec && reason.empty()) {
            fill_files();
            reason = explain_miss(prev, inputs, st.first_miss);
            // No earlier build of this step here (another context path): the
            // same instruction on the same parent read other files.
            if (!prev && !ls.probe_key.empty()) {
                auto last = m_cache.last_content(ls.probe_key);
                if (last && *last != ls.content_hash) {
                    reason = "the files it reads changed";
                }
            }
        }
    }
    if (rec) {
        if (!prev || prev->key != key) {
            fill_files();
            m_cache.remember_inputs(step.slot, inputs);
        }
        if (rec->layer) {
            st.add_layer(*rec->layer, *rec->diff_id, m_store.snapshot_dir(*hit_chain));
        }
        add_history(st, created_by, !rec->layer.has_value(), history_time(rec));
        st.key = key;
        m_steps_cached++;
        m_events->step_cached(step.id);
        return;
    }
    m_events->step_running(step.id, reason);
    if (st.first_miss.empty()) {
        st.first_miss = step.name;
    }
    m_steps_run++;
    CacheRecord out;
    out.key = key;
    out.created_by = created_by;
    out.created = build_time(m_opts.source_date_epoch);
    // The same step's previous result on this parent (a COPY whose files
    // changed): its snapshot lends the unchanged files, its layer their
    // compressed frames. Not under --no-cache (a cold build).
    std::optional<CacheRecord> prev_result;
    if (!ls.probe_key.empty() && !m_opts.no_cache) {
        prev_result = m_cache.last_probe_record(ls.probe_key);
        if (prev_result && (!prev_result->layer || !prev_result->chain_id)) {
            prev_result.reset();
        }
    }
    // The blob's commit (fsync and publication), started once the step's
    // own records are written: an fsync of any small file made while the
    // blob's fsync runs waits for that journal commit (0.1-0.2 s here for
    // 280 MB).
    std::function<void()> commit;
    // One attempt at the step; reuse: with the previous result's files.
    auto attempt = [&](bool reuse) {
        auto t_work = std::chrono::steady_clock::now();
        Workspace ws(m_store.tmp_dir(), independent ? std::vector<std::string>{} : st.lowers());
        ws.can_check_contents = m_opts.compression != formats::Compression::zstd;
        if (reuse && prev_result && !independent) {
            std::vector<Digest> diffs = st.config.diff_ids;
            diffs.push_back(*prev_result->diff_id);
            std::string dir = m_store.snapshot_dir(*prev_result->chain_id);
            // The record's chain must be this parent's: the files it holds
            // were copied over these lowers.
            if (formats::chain_id(diffs) == *prev_result->chain_id && fs::exists(dir)) {
                ws.previous_fs = dir;
                ws.previous_layer = prev_result->layer;
            }
        }
        work(ws);
        ws.unmount();
        auto t_pack = std::chrono::steady_clock::now();
        for (const auto& f : ws.after_unmount) {
            f(ws.upper());
        }
        STRATA_LOG_DEBUG("step {}: work after the unmount (links) {:.3f} s", step.id,
                         seconds_since(t_pack));
        formats::TarWriter::Options to;
        to.compression = m_opts.compression;
        to.level = m_opts.compression_level;
        to.clamp_mtime = m_opts.source_date_epoch;
        // The blob is fsynced by its commit in the background (below).
        to.start_writeback = false;
        // zstd layers are zstd:chunked; a COPY that missed because some of
        // its files changed reuses the compressed frames of the unchanged
        // ones from the same step's previous layer.
        to.chunked = true;
        std::optional<Descriptor> previous;
        if (reuse && to.compression == formats::Compression::zstd && prev_result) {
            previous = prev_result->layer;
            wait_commit(previous->digest);
        }
        snapshot::DiffStats stats;
        std::uint64_t reused = 0;
        std::uint64_t linked_taken = 0;
        // The upper directory is made durable while the layer is packed,
        // before the blob's writes are there to be flushed with it (they
        // are fsynced by the blob's own commit, in the background).
        std::future<void> synced =
            std::async(std::launch::async, [dir = ws.upper_path(), linked = &ws.linked_files] {
                // The linked files' data is the previous snapshot's, on disk:
                // their new names are in their directories' fsyncs.
                snapshot::Store::sync_tree(
                    dir, [linked](const std::string& rel) { return linked->count(rel) > 0; });
            });
        std::optional<snapshot::UpperLayer> packed = snapshot::put_upper_layer(
            m_store, ws.upper(), to, &stats,
            [&](int blob_fd, const std::function<void()>& pack) {
                PackingProgress progress(m_events, step.id, blob_fd);
                pack();
            },
            previous ? &*previous : nullptr, &reused,
            ws.content_checks.empty() ? nullptr : &ws.content_checks,
            ws.linked_files.empty() ? nullptr : &ws.linked_files, &linked_taken, true);
        if (packed) {
            commit = std::move(packed->commit);
            const Digest& diff_id = packed->diff_id;
            remember_layer_size(m_store, diff_id, stats.bytes);
            Descriptor layer = packed->layer;
            std::vector<Digest> diffs = st.config.diff_ids;
            diffs.push_back(diff_id);
            Digest chain = formats::chain_id(diffs);
            auto t_adopt = std::chrono::steady_clock::now();
            synced.get();
            m_store.adopt_snapshot(chain, ws.upper_path(), true);
            STRATA_LOG_DEBUG("step {}: work {:.3f} s, pack {:.3f} s, adopt {:.3f} s", step.id,
                             std::chrono::duration<double>(t_pack - t_work).count(),
                             std::chrono::duration<double>(t_adopt - t_pack).count(),
                             seconds_since(t_adopt));
            out.layer = layer;
            out.diff_id = diff_id;
            out.chain_id = chain;
            m_events->step_note(step.id,
                                fmt::format("layer {} {} ({} entries)", layer.digest.str(),
                                            human_bytes(static_cast<std::uint64_t>(layer.size)),
                                            stats.entries));
            if (reused > 0) {
                m_events->step_note(
                    step.id,
                    fmt::format("{} of unchanged files reused from layer {}{}", human_bytes(reused),
                                previous->digest.str(),
                                linked_taken > 0
                                    ? fmt::format(" ({} linked files not read)", linked_taken)
                                    : std::string()));
            }
        }
    };
    try {
        attempt(true);
    } catch (const snapshot::ContentMismatch& e) {
        // A file linked from the previous snapshot is not what the context
        // holds now (same size and times, other bytes): the step again,
        // copying everything.
        STRATA_LOG_WARN("step {}: {}; copying every file", step.id, e.what());
        m_events->step_note(step.id, "a file of the previous build differs: copying every file");
        attempt(false);
    } catch (const formats::LinkedFramesDamaged& e) {
        // The previous layer's frames of a linked file do not decode to it:
        // the step again, copying everything.
        STRATA_LOG_WARN("step {}: {}; copying every file", step.id, e.what());
        m_events->step_note(step.id,
                            "the previous build's layer is damaged: copying every file");
        attempt(false);
    }
    if (out.layer) {
        st.add_layer(*out.layer, *out.diff_id, m_store.snapshot_dir(*out.chain_id));
    }
    add_history(st, created_by, !out.layer.has_value(), history_time(out));
    m_cache.store(out);
    if (!ls.probe_key.empty()) {
        m_cache.remember_content(ls.probe_key, ls.content_hash, key);
    }
    fill_files();
    // The record of the inputs (thousands of files for a COPY) and the
    // context's digest memo (hashed for this step) are written while the
    // next step runs.
    in_background(
        [this, slot = step.slot, in = std::move(inputs)] { m_cache.remember_inputs(slot, in); });
    if (ContextIndex* index = context_index_if_open()) {
        index->save_in_background();
    }
    st.key = key;
    if (commit) {
        commit_in_background(out.layer->digest, std::move(commit));
    }
}

void Executor::do_workdir(StageResult& st, const df::Instruction& ins, const Step& step) {
    bool cmd_set_unused = true;
    std::string created_by = apply_metadata(st.config, ins, cmd_set_unused);
    std::string wd = st.config.config.working_dir;
    if (wd == "/") {
        std::string key = cache_key({st.key, created_by});
        auto rec = m_opts.no_cache ? std::nullopt : m_cache.lookup(key);
        add_history(st, created_by, true, history_time(rec));
        if (!rec) {
            m_cache.store({key, created_by, build_time(m_opts.source_date_epoch), {}, {}, {}});
        }
        st.key = key;
        m_events->step_cached(step.id);
        return;
    }
    std::string user = st.config.config.user;
    std::string key = cache_key({st.key, created_by, "user=" + user});
    LayerStep ls;
    ls.key = key;
    ls.created_by = created_by;
    ls.inputs = step_inputs(st, key, created_by);
    ls.inputs.items.emplace_back("user", user);
    layer_step(st, step, std::move(ls), [&](Workspace& ws) {
        UniqueFd root = fs::open_dir(ws.merged());
        if (exists_in_root(root.get(), wd)) {
            return;
        }
        std::optional<std::pair<uid_t, gid_t>> owner;
        if (!user.empty()) {
            runner::ExecUser u = runner::resolve_user(root.get(), user);
            owner = std::make_pair(u.uid, u.gid);
        }
        // Create each missing component (owned by USER, as BuildKit's
        // mkdir WithUser does).
        std::string cur;
        std::string rest = wd.substr(1);
        std::size_t pos = 0;
        while (pos <= rest.size()) {
            std::size_t slash = rest.find('/', pos);
            std::string comp =
                rest.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
            pos = slash == std::string::npos ? rest.size() + 1 : slash + 1;
            if (comp.empty()) {
                continue;
            }
            cur += "/" + comp;
            if (exists_in_root(root.get(), cur)) {
                continue;
            }
            UniqueFd d = mkdirs_in_root(root.get(), cur, 0755);
            if (owner && ::fchownat(d.get(), "", owner->first, owner->second,
                                    AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
                throw_errno("fchown", cur);
            }
        }
    });
    (void)ins;
}

void Executor::run_instruction(StageResult& st, df::Instruction ins, df::StageScope& scope,
                               bool& cmd_set, std::size_t stage, int pos, int total, bool trigger) {
    df::expand(ins, scope.lookup());
    scope.apply(ins);
    st.args.clear();
    for (const auto& [k, v] : scope.args().entries()) {
        st.args.emplace_back(k, v);
    }
    // The step's name: the instruction as written (BuildKit shows it so).
    std::string text = ins.original.empty() ? df::describe(ins) : ins.original;
    if (trigger) {
        text = "ONBUILD " + text;
    }
    // After the step (a step's own text is not its "prior").
    auto note_prior = ScopeExit([&]() noexcept {
        try {
            st.prior.push_back((trigger ? "ONBUILD " : "") + df::describe(ins));
        } catch (...) {
        }
    });
    if (auto* run = std::get_if<df::RunInstr>(&ins.data)) {
        shown_step(stage, pos, total, text,
                   [&](const Step& step) { do_run(st, ins, *run, scope, step, stage); });
    } else if (auto* cp = std::get_if<df::CopyInstr>(&ins.data)) {
        shown_step(stage, pos, total, text,
                   [&](const Step& step) { do_copy(st, ins, *cp, step, stage); });
    } else if (std::holds_alternative<df::WorkdirInstr>(ins.data)) {
        shown_step(stage, pos, total, text, [&](const Step& step) { do_workdir(st, ins, step); });
    } else if (std::holds_alternative<df::FromInstr>(ins.data)) {
        fail(ins, "FROM cannot be an ONBUILD trigger");
    } else {
        std::string created_by;
        as_step(ins, [&] { created_by = apply_metadata(st.config, ins, cmd_set); });
        std::vector<std::string> parts = {st.key, created_by};
        if (std::holds_alternative<df::ArgInstr>(ins.data)) {
            for (const auto& [k, v] : scope.args().entries()) {
                parts.push_back(k + "=" + v);
            }
        }
        std::string key = cache_key(parts);
        std::optional<CacheRecord> rec = m_opts.no_cache ? std::nullopt : m_cache.lookup(key);
        std::string created = history_time(rec);
        if (!rec) {
            m_cache.store({key, created_by, created, {}, {}, {}});
        }
        add_history(st, created_by, true, created);
        st.key = key;
        m_events->config_instruction(stage, pos, rec.has_value());
    }
}

StageResult Executor::build_stage(std::size_t index) {
    const df::Stage& s = m_plan.stages[index];
    const auto& from = std::get<df::FromInstr>(s.from.data);
    int total = static_cast<int>(s.instructions.size()) + 1;
    std::vector<df::Instruction> triggers;
    StageResult st;
    {
        std::string from_text =
            "FROM " + (from.image == "scratch" ? std::string("scratch") : from.image);
        Step step = start_step(index, 1, total, from_text);
        try {
            if (s.base_stage) {
                st = finished_stage(*s.base_stage);
                triggers = s.triggers;
            } else {
                st = external_image(from.image, from.platform);
                for (const auto& t : st.config.config.on_build) {
                    df::ParseResult tast = df::parse(t + "\n", "ONBUILD trigger of " + from.image);
                    for (const auto& node : tast.root.children) {
                        triggers.push_back(df::to_instruction(node, tast));
                    }
                }
            }
        } catch (const StepError&) {
            m_events->step_failed(step.id, "", seconds_since(step.t0));
            throw;
        } catch (const Error& e) {
            m_events->step_failed(step.id, e.what(), seconds_since(step.t0));
            throw StepError(fmt::format("{}:{}: {}: {}", s.from.loc.file, s.from.loc.line,
                                        s.from.original, e.what()),
                            s.from.loc.file, s.from.loc.line, s.from.original, "", -1);
        }
        m_events->step_done(step.id, seconds_since(step.t0));
    }
    if (!triggers.empty()) {
        total += static_cast<int>(triggers.size());
    }
    st.config.config.on_build.clear();
    if (!triggers.empty()) {
        st.key = cache_key({st.key, "onbuild-triggers-cleared"});
    }
    // BuildKit: a stage's config starts with the host platform's fields.
    formats::Platform host = formats::host_platform();
    st.config.architecture = host.architecture;
    st.config.os = host.os;
    if (st.config.created.empty()) {
        st.config.created = "";
    }

    st.prior.clear();
    df::Env base_env;
    for (const auto& e : st.config.config.env) {
        auto eq = e.find('=');
        base_env.set(e.substr(0, eq), eq == std::string::npos ? "" : e.substr(eq + 1));
    }
    df::StageScope scope(base_env, &m_opts.build_args, &m_plan.global_values);
    bool cmd_set = false;
    int pos = 2;
    auto note_key = [&st](const std::string& before) {
        if (st.key != before) {
            st.cache_keys.push_back(st.key);
        }
    };
    for (const auto& t : triggers) {
        std::string before = st.key;
        run_instruction(st, t, scope, cmd_set, index, pos++, total, true);
        note_key(before);
    }
    for (const auto& ins : s.instructions) {
        std::string before = st.key;
        run_instruction(st, ins, scope, cmd_set, index, pos++, total, false);
        note_key(before);
    }
    return st;
}

ContextIndex& Executor::context_index() {
    std::lock_guard<std::mutex> l(m_context_index_mu);
    if (!m_context_index) {
        struct stat root = fs::fstat(m_context_fd.get());
        std::string id = Sha256::hex_of(
            fmt::format("{}\n{}\n{}", fs::absolute(m_opts.context_dir), root.st_dev, root.st_ino));
        m_context_index =
            std::make_unique<ContextIndex>(m_context_fd.get(), m_opts.context_dir,
                                           m_store.cache_dir() + "/context/" + id + ".digests");
    }
    return *m_context_index;
}

std::string Executor::context_hash(const std::vector<std::string>& sources, const CopyOptions& co,
                                   const std::string& options_signature,
                                   std::optional<std::map<std::string, std::string>>* listing,
                                   const std::function<void()>& before_walk) {
    ContextIndex& index = context_index();
    std::vector<std::string> parts = {"context-hash/2", index.fingerprint(), options_signature};
    parts.insert(parts.end(), sources.begin(), sources.end());
    if (m_ignore) {
        for (const auto& p : m_ignore->patterns()) {
            parts.push_back("ignore " + p);
        }
    }
    std::string probe = cache_key(parts);
    if (auto known = m_cache.last_content(probe)) {
        return *known;
    }
    if (before_walk) {
        before_walk();
    }
    auto t0 = std::chrono::steady_clock::now();
    std::map<std::string, std::string> files;
    CopyOptions lo = co;
    lo.listed = context_listed();
    std::string hash = hash_sources(m_context_fd.get(), sources, lo, &index,
                                    listing != nullptr ? &files : nullptr);
    if (listing != nullptr && files.size() <= k_max_listed) {
        *listing = std::move(files);
    }
    STRATA_LOG_DEBUG("context hash of {} entries: {:.3f} s", index.entries(), seconds_since(t0));
    if (!index.racy()) {
        m_cache.remember_content(probe, hash);
    }
    return hash;
}

ContextIndex* Executor::context_index_if_open() {
    std::lock_guard<std::mutex> l(m_context_index_mu);
    return m_context_index.get();
}

ListedDirs Executor::context_listed() {
    return [index = &context_index()](const std::string& rel) { return index->listed(rel); };
}

BuildResult Executor::run() {
    load_dockerfile();
    {
        std::lock_guard<std::mutex> l(m_mu);
        m_futures.resize(m_plan.stages.size());
    }
    // Each needed stage on its own thread, started in dependency order; a
    // stage waits for the stages it uses (finished_stage) and nothing else.
    std::vector<std::future<void>> done;
    std::vector<std::promise<StageResult>> promises(m_plan.stages.size());
    {
        std::lock_guard<std::mutex> l(m_mu);
        for (std::size_t i : m_plan.order) {
            m_futures[i] = promises[i].get_future().share();
        }
    }
    for (std::size_t i : m_plan.order) {
        done.push_back(std::async(std::launch::async, [this, i, &promises] {
            try {
                promises[i].set_value(build_stage(i));
            } catch (...) {
                promises[i].set_exception(std::current_exception());
            }
        }));
    }
    for (auto& d : done) {
        d.wait();
    }
    // Report the first failure in plan order (a stage that failed only
    // because a stage it needed failed reports the same error).
    for (std::size_t i : m_plan.order) {
        m_futures[i].wait();
    }
    StageResult final_stage;
    std::vector<std::string> all_keys;
    for (std::size_t i : m_plan.order) {
        StageResult r = m_futures[i].get();
        for (const auto& k : r.cache_keys) {
            if (std::find(all_keys.begin(), all_keys.end(), k) == all_keys.end()) {
                all_keys.push_back(k);
            }
        }
        if (i == m_plan.target) {
            final_stage = std::move(r);
        }
    }

    wait_commits();
    // The digest memo of a context hashed for steps that then hit the
    // cache; the records steps left to write.
    if (ContextIndex* index = context_index_if_open()) {
        index->save_in_background();
    }
    wait_background();
    ImageConfig cfg = final_stage.config;
    // --label: on the image config only (no history entry, no cache key), as
    // BuildKit's dockerfile frontend applies it to the target stage.
    for (const auto& [k, v] : m_opts.labels) {
        cfg.config.labels[k] = v;
    }
    cfg.created = m_opts.source_date_epoch ? build_time(m_opts.source_date_epoch)
                                           : (!cfg.history.empty() ? cfg.history.back().created
                                                                   : build_time(std::nullopt));
    BuildResult result;
    result.manifest = m_store.put_image(cfg, final_stage.blobs());
    result.config = cfg;
    result.image_id = Digest::of(formats::to_json(cfg));
    result.layers = final_stage.blobs();
    result.steps_run = m_steps_run;
    result.steps_cached = m_steps_cached;
    result.cache_keys = final_stage.cache_keys;
    result.all_cache_keys = std::move(all_keys);
    result.warnings = m_warnings;
    if (m_opts.tags.empty()) {
        m_store.add_untagged(result.manifest);
    }
    for (const auto& t : m_opts.tags) {
        m_store.set_name(snapshot::Reference::parse(t), result.manifest);
    }
    return result;
}

} // namespace strata::builder
