#include "builder/build.hpp"

#include "builder/add_source.hpp"
#include "builder/cache.hpp"
#include "builder/context_index.hpp"
#include "builder/copy.hpp"
#include "builder/dockerfile/dockerignore.hpp"
#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/dockerfile/plan.hpp"
#include "builder/dockerfile/text.hpp"
#include "builder/image_config.hpp"
#include "builder/ssh_agent.hpp"
#include "builder/workspace.hpp"
#include "formats/media_types.hpp"
#include "formats/tar.hpp"
#include "runner/runner.hpp"
#include "runner/user.hpp"
#include "snapshot/layer_apply.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/upper_layer.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/root.hpp"
#include "util/scope.hpp"
#include "util/sha256.hpp"
#include "util/tempdir.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <dirent.h>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <fcntl.h>
#include <future>
#include <limits.h>
#include <strings.h>
#include <mutex>
#include <map>
#include <sys/file.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace strata::builder {

namespace df = strata::dockerfile;
using formats::Descriptor;
using formats::Digest;
using formats::ImageConfig;

std::string build_time(const std::optional<std::int64_t>& source_date_epoch) {
    std::time_t t = source_date_epoch ? static_cast<std::time_t>(*source_date_epoch) : std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

void Cancellation::cancel() noexcept {
    flag_ = true;
    std::lock_guard<std::mutex> l(mu_);
    for (auto* c : running_) {
        c->cancel();
    }
}

void Cancellation::add(runner::Control* c) {
    std::lock_guard<std::mutex> l(mu_);
    running_.insert(c);
    if (flag_) {
        c->cancel();
    }
}

void Cancellation::remove(runner::Control* c) {
    std::lock_guard<std::mutex> l(mu_);
    running_.erase(c);
}

namespace {

// Output kept for a failing RUN's report (the whole of it, up to this much).
constexpr std::size_t kMaxKeptOutput = 64u << 20;

struct StageResult {
    ImageConfig config;
    std::vector<Descriptor> layers;
    std::vector<std::string> lowers; // snapshot dirs, bottom first
    std::string key;                 // the cache key of the last step
    std::string base_ref;            // what FROM named, for messages
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
};

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

// Mount points the runner creates in the root when they are missing; like
// BuildKit's mount stub cleaner, empty ones are removed after the step so
// they do not end up in the layer, the mtimes of their parent directories
// are put back, and parents that overlayfs copied up only for the stubs are
// dropped from the upper directory (prune_upper, after unmounting).
class MountStubs {
public:
    MountStubs(int rootfd, const std::vector<std::string>& targets) : rootfd_(rootfd) {
        for (const auto& t : targets) {
            std::string p = clean_path("/" + t);
            if (p == "/" || exists_in_root(rootfd, p)) {
                continue;
            }
            // The topmost missing component: everything below it is ours.
            std::string top = p;
            while (true) {
                std::string parent = fs::dirname(top);
                if (parent == "/" || parent.empty() || exists_in_root(rootfd, parent)) {
                    break;
                }
                top = parent;
            }
            stubs_.push_back({p, top});
            for (std::string a = fs::dirname(top); a != "/" && !a.empty(); a = fs::dirname(a)) {
                if (parents_.count(a) == 0) {
                    try {
                        UniqueFd fd = open_in_root(rootfd, a, O_PATH | O_NOFOLLOW);
                        parents_[a] = fs::fstat(fd.get());
                    } catch (const Error&) {
                    }
                }
            }
        }
    }

    // While the overlay is still mounted.
    void clean() {
        for (auto it = stubs_.rbegin(); it != stubs_.rend(); ++it) {
            std::string p = it->path;
            while (true) {
                if (!remove_if_empty(p) || p == it->top) {
                    break;
                }
                p = fs::dirname(p);
            }
        }
        for (const auto& [path, st] : parents_) {
            try {
                ParentRef ref = open_parent_in_root(rootfd_, path);
                struct timespec ts[2] = {st.st_atim, st.st_mtim};
                ::utimensat(ref.dir.get(), ref.name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
            } catch (const Error&) {
            }
        }
    }

    // After unmounting: an empty, non-opaque copied-up parent whose metadata
    // is what the lower layers have is no change at all.
    void prune_upper(const std::string& upper) {
        for (auto it = parents_.rbegin(); it != parents_.rend(); ++it) {
            std::string p = upper + it->first;
            struct stat st;
            if (::lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
                continue;
            }
            const struct stat& was = it->second;
            if (st.st_mode != was.st_mode || st.st_uid != was.st_uid || st.st_gid != was.st_gid ||
                st.st_mtim.tv_sec != was.st_mtim.tv_sec || st.st_mtim.tv_nsec != was.st_mtim.tv_nsec) {
                continue;
            }
            char v[8];
            if (::lgetxattr(p.c_str(), "trusted.overlay.opaque", v, sizeof v) > 0) {
                continue;
            }
            ::rmdir(p.c_str()); // fails (and keeps it) when it is not empty
        }
    }

private:
    bool remove_if_empty(const std::string& path) {
        try {
            ParentRef ref = open_parent_in_root(rootfd_, path);
            struct stat st;
            if (::fstatat(ref.dir.get(), ref.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                return errno == ENOENT;
            }
            if (S_ISDIR(st.st_mode)) {
                return ::unlinkat(ref.dir.get(), ref.name.c_str(), AT_REMOVEDIR) == 0;
            }
            if (S_ISREG(st.st_mode) && st.st_size == 0) {
                return ::unlinkat(ref.dir.get(), ref.name.c_str(), 0) == 0;
            }
        } catch (const Error&) {
        }
        return false;
    }

    struct Stub {
        std::string path;
        std::string top;
    };
    int rootfd_;
    std::vector<Stub> stubs_;
    std::map<std::string, struct stat> parents_; // sorted: parents before children
};

// Resolves COPY --chown's user and group against the destination's own
// /etc/passwd and /etc/group. Docker: a user without a group uses the same
// numeric id as the gid.
std::pair<uid_t, gid_t> resolve_chown(int rootfd, const std::string& spec) {
    std::string user = spec;
    std::string group;
    if (auto colon = spec.find(':'); colon != std::string::npos) {
        user = spec.substr(0, colon);
        group = spec.substr(colon + 1);
    }
    auto read = [&](const char* file) -> std::string {
        try {
            UniqueFd fd = open_in_root(rootfd, file, O_RDONLY);
            return fs::read_fd(fd.get(), 4 << 20);
        } catch (const SysError&) {
            return {};
        }
    };
    // An id is 0 to 4294967294 ((uid_t)-1 means "no change" to chown), never
    // wrapped: --chown=4294967296 is refused, as BuildKit refuses it.
    auto parse_id = [](const std::string& text) -> std::optional<std::uint32_t> {
        if (text.empty() || text.size() > 10 ||
            text.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        std::uint64_t v = std::stoull(text);
        if (v > 0xFFFFFFFEull) {
            return std::nullopt;
        }
        return static_cast<std::uint32_t>(v);
    };
    auto lookup = [&](const std::string& name, const char* file, const char* what) -> std::uint32_t {
        if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
            if (auto id = parse_id(name)) {
                return *id;
            }
            throw Error(fmt::format("--chown={}: {} id {} out of range (0 to 4294967294)", spec,
                                    what, name));
        }
        std::string data = read(file);
        std::size_t pos = 0;
        while (pos < data.size()) {
            std::size_t nl = data.find('\n', pos);
            std::string line = data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            pos = nl == std::string::npos ? data.size() : nl + 1;
            auto c1 = line.find(':');
            if (c1 == std::string::npos || line.substr(0, c1) != name) {
                continue;
            }
            auto c2 = line.find(':', c1 + 1);
            auto c3 = c2 == std::string::npos ? c2 : line.find(':', c2 + 1);
            if (c3 == std::string::npos) {
                continue;
            }
            if (auto id = parse_id(line.substr(c2 + 1, c3 - c2 - 1))) {
                return *id;
            }
            continue; // a malformed line is skipped, as glibc does
        }
        throw Error(fmt::format("--chown={}: no {} \"{}\" in the image's {}", spec, what, name, file));
    };
    uid_t uid = lookup(user, "/etc/passwd", "user");
    gid_t gid = group.empty() ? static_cast<gid_t>(uid) : lookup(group, "/etc/group", "group");
    return {uid, gid};
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

// The canonical host path of a path inside root (symlinks resolved inside it).
std::string host_path_in_root(int rootfd, const std::string& path) {
    UniqueFd fd = open_in_root(rootfd, path, O_PATH);
    char buf[PATH_MAX];
    std::string link = "/proc/self/fd/" + std::to_string(fd.get());
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n < 0) {
        throw_errno("readlink", link);
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

// Reports the size of a layer blob while it is written (a thread polls the
// blob file: the tar and compression code stays as it is), and once more
// when packing ends.
class PackingProgress {
public:
    PackingProgress(BuildEvents* events, int id, int blob_fd) : events_(events), id_(id), fd_(blob_fd) {
        if (events_ != nullptr) {
            thread_ = std::thread([this] {
                std::unique_lock<std::mutex> l(mu_);
                while (!cv_.wait_for(l, std::chrono::milliseconds(250), [this] { return done_; })) {
                    report();
                }
            });
        }
    }
    ~PackingProgress() {
        if (events_ == nullptr) {
            return;
        }
        {
            std::lock_guard<std::mutex> l(mu_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
        report();
    }
    PackingProgress(const PackingProgress&) = delete;
    PackingProgress& operator=(const PackingProgress&) = delete;

private:
    void report() {
        struct stat st;
        if (::fstat(fd_, &st) == 0) {
            events_->step_packing(id_, static_cast<std::uint64_t>(st.st_size));
        }
    }
    BuildEvents* events_;
    int id_;
    int fd_;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
};

class Executor {
public:
    Executor(snapshot::Store& store, const BuildOptions& opts)
        : store_(store), opts_(opts), cache_(store.cache_dir(), opts.cache_from),
          events_(opts.events ? opts.events : &null_events_) {}

    BuildResult run();

private:
    struct Step {
        int id = 0;
        std::string name;
        std::chrono::steady_clock::time_point t0;
        std::string slot; // where this step's inputs are remembered (StepInputs)
    };
    using ListFiles = std::function<std::optional<std::map<std::string, std::string>>()>;

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
    std::string stage_prefix(std::size_t stage, int pos, int total) const;
    std::string history_time(const std::optional<CacheRecord>& rec) const;
    void add_history(StageResult& st, const std::string& created_by, bool empty,
                     const std::string& created);

    // A step that makes a layer: looks the key up, or runs `work` in a
    // workspace over the stage's snapshots and records the result.
    using Work = std::function<void(Workspace&)>;
    void layer_step(StageResult& st, const Step& step, const std::string& key,
                    const std::string& probe_key, const std::string& content_hash,
                    const std::string& created_by, StepInputs inputs, const ListFiles& list_files,
                    const Work& work, bool step_shown, bool independent = false);
    // The inputs every step has: instruction, base, the stage's earlier
    // instructions, parent key.
    StepInputs step_inputs(const StageResult& st, const std::string& key,
                           const std::string& instruction, bool with_parent = true) const;
    // A value named like a secret (or a --secret id) is kept as a digest.
    std::string maybe_redact(const std::string& name, const std::string& value) const;
    std::optional<std::map<std::string, std::string>>
    context_listing(const std::vector<std::string>& sources, const CopyOptions& co);
    bool restore_snapshot(const Descriptor& layer, const Digest& chain, const Digest& diff_id);

    void do_run(StageResult& st, const df::Instruction& ins, const df::RunInstr& run,
                const df::StageScope& scope, const Step& step, std::size_t stage);
    void do_copy(StageResult& st, const df::Instruction& ins, const df::CopyInstr& cp,
                 const Step& step, std::size_t stage);
    void do_workdir(StageResult& st, const df::Instruction& ins, const Step& step);

    std::vector<std::string> run_env(const StageResult& st, const df::StageScope& scope) const;
    std::vector<std::pair<std::string, std::string>> args_in_scope(const StageResult& st,
                                                                   const df::StageScope& scope) const;
    std::vector<std::string> lowers_for_ref(const std::string& ref, std::size_t stage,
                                            std::string* key);
    CopyOptions context_copy_options() const;
    // hash_sources over the context, remembered under a fingerprint of the
    // whole context's metadata so that an unchanged context is not re-read
    // (builder/context_index.hpp).
    std::string context_hash(const std::vector<std::string>& sources, const CopyOptions& co,
                             const std::string& options_signature);
    ContextIndex& context_index();

    [[noreturn]] void fail(const df::Instruction& ins, const std::string& message,
                           const std::string& output = {}, int exit_code = -1) const;

    snapshot::Store& store_;
    const BuildOptions& opts_;
    BuildCache cache_;
    NullEvents null_events_;
    BuildEvents* events_;

    std::string dockerfile_path_;
    df::ParseResult ast_;
    df::BuildPlan plan_;
    bool multi_stage_ = false;
    std::optional<df::DockerIgnore> ignore_;
    UniqueFd context_fd_;

    std::mutex mu_;
    std::atomic<int> next_step_{1};
    std::atomic<int> steps_run_{0};
    std::atomic<int> steps_cached_{0};
    std::vector<std::shared_future<StageResult>> futures_;
    std::mutex context_index_mu_;
    std::unique_ptr<ContextIndex> context_index_;
    std::vector<std::string> warnings_;
    std::string explain_context_; // the context's absolute path, for step slots
};

void Executor::load_dockerfile() {
    if (opts_.context_dir.empty()) {
        throw UsageError("no build context given");
    }
    if (!fs::is_dir(opts_.context_dir)) {
        throw UsageError("build context " + opts_.context_dir + " is not a directory");
    }
    context_fd_ = fs::open(opts_.context_dir, O_RDONLY | O_DIRECTORY);
    explain_context_ = opts_.context_label.empty() ? fs::absolute(opts_.context_dir) : opts_.context_label;
    dockerfile_path_ = opts_.dockerfile.empty() ? fs::join(opts_.context_dir, "Dockerfile") : opts_.dockerfile;
    if (fs::absolute(dockerfile_path_).starts_with(fs::absolute(opts_.context_dir) + "/")) {
        // A Dockerfile in the context that is a symlink: followed inside the
        // context only (one given with -f outside it is the user's choice).
        df::DockerIgnore::check_inside(dockerfile_path_, opts_.context_dir, "the Dockerfile");
    }
    std::string text;
    if (opts_.dockerfile_text) {
        text = *opts_.dockerfile_text;
    } else {
        try {
            text = fs::read_file(dockerfile_path_, 16 << 20);
        } catch (const SysError& e) {
            throw Error("cannot read the Dockerfile: " + std::string(e.what()));
        }
    }
    std::string shown =
        opts_.dockerfile.empty() || opts_.dockerfile_text ? "Dockerfile" : opts_.dockerfile;
    ast_ = df::parse(text, shown);
    for (const auto& d : ast_.directives) {
        if (d.name == "syntax" && !is_builtin_frontend(d.value)) {
            warnings_.push_back(fmt::format("{}:{}: # syntax={}: strata does not run external "
                                            "frontends; building with its own Dockerfile frontend",
                                            shown, d.line, d.value));
        }
    }
    df::PlanOptions po;
    po.build_args = opts_.build_args;
    po.target = opts_.target;
    if (!opts_.platform.empty()) {
        formats::Platform want = formats::parse_platform(opts_.platform);
        if (!formats::platform_matches(want, formats::host_platform())) {
            throw UsageError("--platform " + opts_.platform + ": only the host platform (" +
                             formats::to_string(formats::host_platform()) + ") can be built");
        }
    }
    plan_ = df::plan(ast_, po);
    if (!plan_.unused_build_args.empty()) {
        // BuildKit's wording (moby builder/dockerfile/buildargs.go).
        warnings_.push_back("[Warning] One or more build-args [" +
                            join(plan_.unused_build_args, " ") + "] were not consumed");
    }
    multi_stage_ = plan_.stages.size() > 1;
    // A build that copies from the context walks it while the first steps run.
    for (std::size_t i : plan_.order) {
        for (const auto& ins : plan_.stages[i].instructions) {
            const auto* cp = std::get_if<df::CopyInstr>(&ins.data);
            if (cp != nullptr && cp->from.empty()) {
                (void)context_index();
                break;
            }
        }
    }
    ignore_ = df::DockerIgnore::load_for(opts_.context_dir, dockerfile_path_);
    for (const auto& s : opts_.secrets) {
        if (!fs::exists(s.path)) {
            throw UsageError("--secret id=" + s.id + ": " + s.path + " does not exist");
        }
    }
}

std::string Executor::stage_prefix(std::size_t stage, int pos, int total) const {
    const df::Stage& s = plan_.stages[stage];
    std::string label;
    if (multi_stage_) {
        label = (s.name.empty() ? "stage-" + std::to_string(stage) : s.name) + " ";
    }
    return fmt::format("[{}{}/{}]", label, pos, total);
}

Executor::Step Executor::start_step(std::size_t stage, int pos, int total, const std::string& text) {
    if (opts_.cancellation && opts_.cancellation->cancelled()) {
        throw Cancelled("build cancelled");
    }
    Step s;
    s.id = next_step_++;
    s.name = stage_prefix(stage, pos, total) + " " + text;
    s.t0 = std::chrono::steady_clock::now();
    // The same step of the same Dockerfile in the same context, build after
    // build: its inputs are compared to explain a miss.
    const df::Stage& sd = plan_.stages[stage];
    std::string kind = text.substr(0, text.find(' '));
    if (kind == "ONBUILD") {
        std::size_t end = text.find(' ', 8);
        kind += " " + text.substr(8, end == std::string::npos ? std::string::npos : end - 8);
    }
    s.slot = cache_key({"explain-slot/1", explain_context_, ast_.file,
                        sd.name.empty() ? "stage-" + std::to_string(stage) : sd.name,
                        std::to_string(pos), kind});
    events_->step_started(s.id, s.name);
    return s;
}

std::string Executor::history_time(const std::optional<CacheRecord>& rec) const {
    if (opts_.source_date_epoch) {
        return build_time(opts_.source_date_epoch);
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

void Executor::fail(const df::Instruction& ins, const std::string& message, const std::string& output,
                    int exit_code) const {
    std::string text = ins.original.empty() ? ins.keyword : ins.original;
    throw StepError(fmt::format("{}:{}: {}: {}", ins.loc.file, ins.loc.line, text, message),
                    ins.loc.file, ins.loc.line, text, output, exit_code);
}

std::optional<std::size_t> Executor::stage_by_ref(const std::string& ref, std::size_t before) const {
    std::string lower;
    for (char c : ref) {
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (std::size_t i = 0; i < before && i < plan_.stages.size(); ++i) {
        if (!plan_.stages[i].name.empty() && plan_.stages[i].name == lower) {
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
        std::lock_guard<std::mutex> l(mu_);
        f = futures_.at(index);
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
    if (opts_.fetch_always && opts_.fetch_image) {
        if (auto got = opts_.fetch_image(ref)) {
            rec = store_.resolve(*got);
        }
    }
    try {
        if (!rec) {
            rec = store_.resolve(ref);
        }
    } catch (const Error& e) {
        if (!snapshot::Reference::try_parse(ref)) {
            throw Error("invalid image reference \"" + ref + "\": " + e.what());
        }
        if (opts_.fetch_image && !opts_.fetch_always) {
            if (auto got = opts_.fetch_image(ref)) {
                rec = store_.resolve(*got);
            }
        }
        if (!rec) {
            throw Error("no such image in the store: " + ref + " (strata pull " + ref +
                        ", or strata bootstrap busybox for the example base)");
        }
    }
    store_.keep(rec->manifest); // gc leaves the base alone while the build uses it
    snapshot::Image img = store_.load(rec->manifest);
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
    st.layers = img.manifest.layers;
    st.lowers = store_.ensure_snapshots(img);
    st.key = cache_key({"FROM", rec->manifest.digest.str(), formats::to_string(formats::host_platform())});
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
        return r.lowers;
    }
    StageResult r = external_image(ref, "");
    if (key) {
        *key = r.key;
    }
    return r.lowers;
}

std::vector<std::string> Executor::run_env(const StageResult& st, const df::StageScope& scope) const {
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
    if (ignore_) {
        const df::DockerIgnore* ign = &*ignore_;
        o.excluded = [ign](const std::string& rel, bool) { return ign->excluded(rel); };
        o.may_reinclude = [ign](const std::string& rel) { return ign->may_reinclude_under(rel); };
    }
    return o;
}

bool Executor::restore_snapshot(const Descriptor& layer, const Digest& chain, const Digest& diff_id) {
    if (store_.has_snapshot(chain)) {
        return true;
    }
    if (!store_.has_blob(layer.digest)) {
        return false;
    }
    TempDir work(store_.tmp_dir(), "unpack-");
    std::string fsdir = work.path() + "/fs";
    fs::mkdirs(fsdir, 0755);
    UniqueFd blob = store_.open_blob(layer.digest);
    snapshot::ApplyOptions ao;
    ao.mode = snapshot::WhiteoutMode::overlay;
    ao.layer_name = layer.digest.str();
    snapshot::ApplyStats applied = snapshot::apply_layer(blob.get(), fsdir, ao);
    // A record (perhaps imported from a registry) names the diff ID the
    // image config will carry: it must be what the layer holds.
    if (!applied.digests || applied.digests->diff_id != diff_id) {
        STRATA_LOG_WARN("cached layer {} holds {}, not the recorded diff ID {}: not using it",
                        layer.digest.str(),
                        applied.digests ? applied.digests->diff_id.str() : std::string("unknown content"),
                        diff_id.str());
        return false;
    }
    store_.adopt_snapshot(chain, fsdir);
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
    for (const auto& s : opts_.secrets) {
        secret = secret || strcasecmp(s.id.c_str(), name.c_str()) == 0;
    }
    return secret ? redact(value) : value;
}

std::optional<std::map<std::string, std::string>>
Executor::context_listing(const std::vector<std::string>& sources, const CopyOptions& co) {
    // Listed through the context's digest memo: only files whose metadata
    // changed since they were last hashed are read.
    constexpr std::size_t kMaxListed = 50000;
    std::map<std::string, std::string> files;
    try {
        hash_sources(context_fd_.get(), sources, co, &context_index(), &files);
    } catch (const Error& e) {
        STRATA_LOG_DEBUG("listing the context files of a step: {}", e.what());
        return std::nullopt;
    }
    if (files.size() > kMaxListed) {
        return std::nullopt;
    }
    return files;
}

void Executor::layer_step(StageResult& st, const Step& step, const std::string& key,
                          const std::string& probe_key, const std::string& content_hash,
                          const std::string& created_by, StepInputs inputs,
                          const ListFiles& list_files, const Work& work, bool step_shown,
                          bool independent) {
    // The inputs this step had at its last build, to say why it misses. The
    // files a COPY reads are listed only when they may have changed.
    std::optional<StepInputs> prev = cache_.last_inputs(step.slot);
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
    if (opts_.no_cache) {
        reason = "--no-cache";
    } else {
        rec = cache_.lookup(key);
        if (rec && rec->layer) {
            std::vector<Digest> diffs = st.config.diff_ids;
            diffs.push_back(*rec->diff_id);
            hit_chain = formats::chain_id(diffs);
            std::string imported_from;
            if ((!independent && *hit_chain != *rec->chain_id) ||
                !cache_.ensure_layer(store_, *rec, &imported_from) ||
                !restore_snapshot(*rec->layer, *hit_chain, *rec->diff_id)) {
                rec.reset();
                reason = "the cached layer is no longer in the store";
            } else if (!imported_from.empty() && step_shown) {
                events_->step_note(step.id, fmt::format("importing layer {} {} from cache {}",
                                                        rec->layer->digest.str(),
                                                        human_bytes(static_cast<std::uint64_t>(rec->layer->size)),
                                                        imported_from));
            }
        }
        if (!rec && reason.empty()) {
            fill_files();
            reason = explain_miss(prev, inputs, st.first_miss);
            // No earlier build of this step here (another context path): the
            // same instruction on the same parent read other files.
            if (!prev && !probe_key.empty()) {
                auto last = cache_.last_content(probe_key);
                if (last && *last != content_hash) {
                    reason = "the files it reads changed";
                }
            }
        }
    }
    if (rec) {
        if (!prev || prev->key != key) {
            fill_files();
            cache_.remember_inputs(step.slot, inputs);
        }
        if (rec->layer) {
            st.config.diff_ids.push_back(*rec->diff_id);
            st.layers.push_back(*rec->layer);
            st.lowers.push_back(store_.snapshot_dir(*hit_chain));
        }
        add_history(st, created_by, !rec->layer.has_value(), history_time(rec));
        st.key = key;
        steps_cached_++;
        if (step_shown) {
            events_->step_cached(step.id);
        }
        return;
    }
    if (step_shown) {
        events_->step_running(step.id, reason);
    }
    if (st.first_miss.empty()) {
        st.first_miss = step.name;
    }
    steps_run_++;
    CacheRecord out;
    out.key = key;
    out.created_by = created_by;
    out.created = build_time(opts_.source_date_epoch);
    {
        auto t_work = std::chrono::steady_clock::now();
        Workspace ws(store_.tmp_dir(), independent ? std::vector<std::string>{} : st.lowers);
        work(ws);
        ws.unmount();
        auto t_pack = std::chrono::steady_clock::now();
        for (const auto& f : ws.after_unmount) {
            f(ws.upper());
        }
        formats::TarWriter::Options to;
        to.compression = opts_.compression;
        to.level = opts_.compression_level;
        to.clamp_mtime = opts_.source_date_epoch;
        snapshot::DiffStats stats;
        std::optional<snapshot::UpperLayer> packed = snapshot::put_upper_layer(
            store_, ws.upper(), to, &stats, [&](int blob_fd, const std::function<void()>& pack) {
                PackingProgress progress(step_shown ? events_ : nullptr, step.id, blob_fd);
                pack();
            });
        if (packed) {
            const Digest& diff_id = packed->diff_id;
            remember_layer_size(store_, diff_id, stats.bytes);
            Descriptor layer = packed->layer;
            std::vector<Digest> diffs = st.config.diff_ids;
            diffs.push_back(diff_id);
            Digest chain = formats::chain_id(diffs);
            auto t_adopt = std::chrono::steady_clock::now();
            store_.adopt_snapshot(chain, ws.upper_path());
            STRATA_LOG_DEBUG("step {}: work {:.3f} s, pack {:.3f} s, adopt {:.3f} s", step.id,
                             std::chrono::duration<double>(t_pack - t_work).count(),
                             std::chrono::duration<double>(t_adopt - t_pack).count(), seconds_since(t_adopt));
            out.layer = layer;
            out.diff_id = diff_id;
            out.chain_id = chain;
            if (step_shown) {
                events_->step_note(step.id, fmt::format("layer {} {} ({} entries)", layer.digest.str(),
                                                        human_bytes(static_cast<std::uint64_t>(layer.size)),
                                                        stats.entries));
            }
        }
    }
    if (out.layer) {
        st.config.diff_ids.push_back(*out.diff_id);
        st.layers.push_back(*out.layer);
        st.lowers.push_back(store_.snapshot_dir(*out.chain_id));
    }
    add_history(st, created_by, !out.layer.has_value(), history_time(out));
    cache_.store(out);
    if (!probe_key.empty()) {
        cache_.remember_content(probe_key, content_hash);
    }
    fill_files();
    cache_.remember_inputs(step.slot, inputs);
    st.key = key;
}

void Executor::do_workdir(StageResult& st, const df::Instruction& ins, const Step& step) {
    bool cmd_set_unused = true;
    std::string created_by = apply_metadata(st.config, ins, cmd_set_unused);
    std::string wd = st.config.config.working_dir;
    if (wd == "/") {
        std::string key = cache_key({st.key, created_by});
        auto rec = opts_.no_cache ? std::nullopt : cache_.lookup(key);
        add_history(st, created_by, true, history_time(rec));
        if (!rec) {
            cache_.store({key, created_by, build_time(opts_.source_date_epoch), {}, {}, {}});
        }
        st.key = key;
        events_->step_cached(step.id);
        return;
    }
    std::string user = st.config.config.user;
    std::string key = cache_key({st.key, created_by, "user=" + user});
    StepInputs inputs = step_inputs(st, key, created_by);
    inputs.items.emplace_back("user", user);
    layer_step(st, step, key, "", "", created_by, std::move(inputs), {},
               [&](Workspace& ws) {
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
                       std::string comp = rest.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
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
               },
               true);
    (void)ins;
}

void Executor::do_run(StageResult& st, const df::Instruction& ins, const df::RunInstr& run,
                      const df::StageScope& scope, const Step& step, std::size_t stage) {
    // BuildKit's entitlements: a Dockerfile may not give itself the host's
    // network or a privileged step; the one who runs the build grants them.
    bool insecure = run.security == "insecure";
    if (insecure && !opts_.allow_security_insecure) {
        fail(ins, "security.insecure is not allowed (grant it with strata build --allow "
                  "security.insecure)");
    }
    if (run.network == "host" && !opts_.allow_network_host && opts_.network != Network::host) {
        fail(ins, "network.host is not allowed (grant it with strata build --allow network.host)");
    }
    std::vector<std::string> argv = run_argv(st.config, run);
    // A RUN that is a single heredoc runs it as a script file (BuildKit mounts
    // it at /dev/pipes/<name> and hands the path to the shell).
    std::optional<df::Heredoc> script;
    if (run.heredocs.size() == 1 && run.cmd.shell_form && !run.cmd.args.empty()) {
        std::string a = std::string(df::text::trim_space(run.cmd.args[0]));
        const auto& h = run.heredocs[0];
        for (const std::string& form : {"<<" + h.name, "<<-" + h.name, "<<'" + h.name + "'",
                                        "<<-'" + h.name + "'", "<<\"" + h.name + "\"",
                                        "<<-\"" + h.name + "\""}) {
            if (a == form) {
                script = h;
            }
        }
        if (script) {
            argv = effective_shell(st.config);
            argv.push_back("/dev/pipes/" + h.name);
        }
    }
    std::vector<std::string> env = run_env(st, scope);
    std::string created_by = run_history(argv, args_in_scope(st, scope)) + " # buildkit";
    std::string workdir = st.config.config.working_dir.empty() ? "/" : st.config.config.working_dir;
    std::string network = run.network == "default"
                              ? (opts_.network == Network::host ? "host" : "none")
                              : run.network;

    // Key: the argv, the environment, user, workdir, the mounts and what the
    // bind mounts read.
    std::vector<std::string> parts = {st.key, "RUN", join(argv, "\x1f"), join(env, "\x1f"),
                                      "user=" + st.config.config.user, "cwd=" + workdir,
                                      "network=" + network};
    if (script) {
        parts.push_back("script=" + (script->chomp ? chomp_tabs(script->content) : script->content));
    }
    if (insecure) {
        parts.push_back("security=insecure");
    }
    for (const auto& m : run.mounts) {
        parts.push_back("mount=" + m.raw);
        if (m.type == df::Mount::Type::Bind) {
            if (m.from.empty()) {
                std::string src = m.source.empty() ? "." : m.source;
                parts.push_back(context_hash({src}, context_copy_options(), "bind"));
            } else {
                std::string k;
                lowers_for_ref(m.from, stage, &k);
                parts.push_back("from=" + k);
            }
        } else if (m.type == df::Mount::Type::Ssh) {
            bool given = std::any_of(opts_.ssh_agents.begin(), opts_.ssh_agents.end(),
                                     [&](const SshAgent& a) { return a.id == m.id; });
            if (!given && m.required) {
                fail(ins, "ssh agent \"" + m.id + "\" is required but was not given (strata build --ssh " +
                              m.id + "[=SOCKET], or SSH_AUTH_SOCK)");
            }
        }
    }
    std::string key = cache_key(parts);

    StepInputs inputs = step_inputs(st, key, join(argv, " "));
    for (const auto& e : st.config.config.env) {
        auto eq = e.find('=');
        std::string k = e.substr(0, eq);
        inputs.items.emplace_back("env " + k,
                                  maybe_redact(k, eq == std::string::npos ? "" : e.substr(eq + 1)));
    }
    inputs.items.emplace_back("user", st.config.config.user);
    inputs.items.emplace_back("cwd", workdir);
    inputs.items.emplace_back("network", network);
    if (script) {
        inputs.items.emplace_back("script",
                                  script->chomp ? chomp_tabs(script->content) : script->content);
    }
    {
        // parts after argv, env, user, cwd, network (and the script): the
        // mounts and what their sources hold.
        std::string mounts;
        std::string mounted_content;
        for (std::size_t i = 7 + (script ? 1 : 0); i < parts.size(); ++i) {
            (parts[i].rfind("mount=", 0) == 0 ? mounts : mounted_content) += parts[i] + "\n";
        }
        if (!mounts.empty()) {
            inputs.items.emplace_back("mounts", mounts);
        }
        if (!mounted_content.empty()) {
            inputs.items.emplace_back("content", mounted_content);
        }
    }

    layer_step(st, step, key, "", "", created_by, std::move(inputs), {}, [&](Workspace& ws) {
        runner::RunSpec spec;
        spec.rootfs = ws.merged();
        spec.argv = argv;
        spec.env = env;
        spec.cwd = workdir;
        spec.user = st.config.config.user;
        spec.hostname = "buildkitsandbox";
        spec.network = network == "host" ? runner::Network::host : runner::Network::none;
        spec.security.privileged = insecure;

        TempDir scratch(store_.tmp_dir(), "run-");
        std::vector<std::unique_ptr<RootView>> views;
        std::vector<std::unique_ptr<UniqueFd>> locks;
        std::vector<std::unique_ptr<AgentProxy>> agents; // after scratch: stop before it goes
        int ssh_count = 0;
        std::vector<std::string> targets = {"/proc", "/dev", "/sys", "/etc/hosts",
                                            "/etc/resolv.conf", "/etc/hostname"};
        if (script) {
            std::string dir = scratch.path() + "/pipes";
            fs::mkdirs(dir, 0755);
            std::string data = script->chomp ? chomp_tabs(script->content) : script->content;
            UniqueFd f = fs::open(dir + "/" + script->name, O_WRONLY | O_CREAT | O_TRUNC, 0755);
            fs::write_all(f.get(), data);
            f.close();
            spec.mounts.push_back({runner::Mount::Type::bind, dir + "/" + script->name,
                                   "/dev/pipes/" + script->name, true, ""});
        }
        for (const auto& m : run.mounts) {
            std::string target = m.target;
            if (!target.empty() && target[0] != '/') {
                target = clean_path(workdir + "/" + target);
            }
            switch (m.type) {
            case df::Mount::Type::Cache: {
                std::string id = m.id.empty() ? target : m.id;
                std::string dir = store_.root() + "/cache-mounts/" + Sha256::hex_of(id);
                if (!fs::is_dir(dir)) {
                    fs::mkdirs(dir, 0755);
                    if (::chmod(dir.c_str(), m.mode.value_or(0755)) != 0) {
                        throw_errno("chmod", dir);
                    }
                    if (::chown(dir.c_str(), m.uid.value_or(0), m.gid.value_or(0)) != 0) {
                        throw_errno("chown", dir);
                    }
                }
                if (m.sharing == df::Mount::Sharing::Locked) {
                    auto fd = std::make_unique<UniqueFd>(fs::open(dir + ".lock", O_RDWR | O_CREAT, 0600));
                    while (::flock(fd->get(), LOCK_EX) != 0) {
                        if (errno != EINTR) {
                            throw_errno("flock", dir + ".lock");
                        }
                    }
                    locks.push_back(std::move(fd));
                }
                spec.mounts.push_back({runner::Mount::Type::cache, dir, target, false, ""});
                break;
            }
            case df::Mount::Type::Tmpfs: {
                std::string o = "mode=1777";
                if (m.size) {
                    o += ",size=" + std::to_string(*m.size);
                }
                spec.mounts.push_back({runner::Mount::Type::tmpfs, "", target, false, o});
                break;
            }
            case df::Mount::Type::Bind: {
                std::string src_host;
                std::string src = m.source.empty() ? "/" : m.source;
                if (m.from.empty()) {
                    src_host = host_path_in_root(context_fd_.get(), src);
                } else {
                    auto lowers = lowers_for_ref(m.from, stage, nullptr);
                    views.push_back(std::make_unique<RootView>(store_.tmp_dir(), lowers));
                    UniqueFd vfd = fs::open_dir(views.back()->path());
                    src_host = host_path_in_root(vfd.get(), src);
                }
                if (!m.read_only) {
                    // rw: writes are discarded after the step, never reach the source.
                    std::string copy = scratch.path() + "/bind-" + std::to_string(spec.mounts.size());
                    struct stat sst = fs::lstat(src_host);
                    UniqueFd sfd = fs::open_dir(fs::dirname(src_host));
                    if (S_ISDIR(sst.st_mode)) {
                        fs::mkdirs(copy, 0755);
                        UniqueFd dfd = fs::open_dir(copy);
                        UniqueFd srcfd = fs::open_dir(src_host);
                        CopyOptions co;
                        co.preserve_owner = true;
                        copy_into(srcfd.get(), {"."}, dfd.get(), "/", co);
                    } else {
                        fs::mkdirs(copy, 0755);
                        UniqueFd dfd = fs::open_dir(copy);
                        CopyOptions co;
                        co.preserve_owner = true;
                        copy_into(sfd.get(), {fs::basename(src_host)}, dfd.get(), "/f", co);
                        copy += "/f";
                    }
                    src_host = copy;
                }
                spec.mounts.push_back({runner::Mount::Type::bind, src_host, target, m.read_only, ""});
                break;
            }
            case df::Mount::Type::Secret: {
                std::string id = m.id.empty() ? fs::basename(target) : m.id;
                const Secret* found = nullptr;
                for (const auto& s : opts_.secrets) {
                    if (s.id == id) {
                        found = &s;
                    }
                }
                if (!found) {
                    if (m.required) {
                        fail(ins, "secret " + id + " is required but was not given (--secret id=" + id +
                                      ",src=PATH)");
                    }
                    break;
                }
                if (!m.env.empty()) {
                    spec.env.push_back(m.env + "=" + fs::read_file(found->path, 1 << 20));
                }
                if (m.env.empty() || !m.target.empty()) {
                    std::string t = target.empty() ? "/run/secrets/" + id : target;
                    // A private copy with the mode asked for (default 0400).
                    std::string copy = scratch.path() + "/secret-" + std::to_string(spec.mounts.size());
                    UniqueFd f = fs::open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0400);
                    fs::write_all(f.get(), fs::read_file(found->path, 64 << 20));
                    if (::fchmod(f.get(), m.mode.value_or(0400)) != 0 ||
                        ::fchown(f.get(), m.uid.value_or(0), m.gid.value_or(0)) != 0) {
                        throw_errno("fchmod/fchown", copy);
                    }
                    f.close();
                    spec.mounts.push_back({runner::Mount::Type::bind, copy, t, true, ""});
                    targets.push_back(t);
                }
                break;
            }
            case df::Mount::Type::Ssh: {
                const SshAgent* agent = nullptr;
                for (const auto& a : opts_.ssh_agents) {
                    if (a.id == m.id) {
                        agent = &a;
                    }
                }
                if (agent == nullptr) {
                    break; // not required (checked above): BuildKit skips the mount
                }
                if (target.empty()) {
                    target = fmt::format("/run/buildkit/ssh_agent.{}", ssh_count);
                }
                ++ssh_count;
                std::string sock = scratch.path() + "/ssh-" + std::to_string(spec.mounts.size());
                try {
                    agents.push_back(std::make_unique<AgentProxy>(sock, agent->socket,
                                                                  m.mode.value_or(0600), m.uid.value_or(0),
                                                                  m.gid.value_or(0)));
                } catch (const Error& e) {
                    fail(ins, "--mount=type=ssh,id=" + m.id + ": " + e.what());
                }
                spec.mounts.push_back({runner::Mount::Type::bind, sock, target, false, ""});
                if (!get_env(spec.env, "SSH_AUTH_SOCK")) {
                    spec.env.push_back("SSH_AUTH_SOCK=" + target);
                }
                break;
            }
            }
            if (!target.empty()) {
                targets.push_back(target);
            }
        }

        UniqueFd rootfd = fs::open_dir(ws.merged());
        auto stubs = std::make_shared<MountStubs>(rootfd.get(), targets);
        ws.after_unmount.push_back([stubs](const std::string& upper) { stubs->prune_upper(upper); });

        Pipe out = Pipe::create();
        spec.stdout_fd = out.write.get();
        spec.stderr_fd = out.write.get();
        std::string kept;
        std::thread reader([&] {
            char buf[16384];
            while (true) {
                ssize_t n = ::read(out.read.get(), buf, sizeof buf);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    break;
                }
                std::string_view chunk(buf, static_cast<std::size_t>(n));
                if (kept.size() < kMaxKeptOutput) {
                    kept.append(chunk.substr(0, kMaxKeptOutput - kept.size()));
                }
                events_->step_output(step.id, chunk);
            }
        });
        auto join_reader = ScopeExit([&] {
            out.write.reset();
            if (reader.joinable()) {
                reader.join();
            }
        });
        std::optional<ExitStatus> status;
        std::string start_error;
        int start_code = -1;
        runner::Control control;
        if (opts_.cancellation) {
            opts_.cancellation->add(&control);
        }
        auto unregister = ScopeExit([&] {
            if (opts_.cancellation) {
                opts_.cancellation->remove(&control);
            }
        });
        try {
            status = runner::run(spec, &control);
        } catch (const runner::Cancelled&) {
            throw Cancelled("build cancelled");
        } catch (const runner::StartError& e) {
            start_error = e.what();
            start_code = e.exit_code();
        }
        out.write.reset();
        reader.join();
        std::string cmdline = join(argv, " ");
        if (!start_error.empty()) {
            fail(ins, fmt::format("process {} could not start: {}", df::text::go_quote(cmdline), start_error), kept,
                 start_code);
        }
        if (!status->success()) {
            int code = status->exited() ? status->code() : status->shell_code();
            fail(ins,
                 fmt::format("process {} did not complete successfully: {}", df::text::go_quote(cmdline),
                             status->exited() ? fmt::format("exit code: {}", code) : status->describe()),
                 kept, code);
        }
        stubs->clean();
    }, true);
}

void Executor::do_copy(StageResult& st, const df::Instruction& ins, const df::CopyInstr& cp,
                       const Step& step, std::size_t stage) {
    const std::string kw = cp.add ? "ADD" : "COPY";
    std::string workdir = st.config.config.working_dir.empty() ? "/" : st.config.config.working_dir;
    std::string dest = cp.dest;
    bool dest_dir = dest.back() == '/' || dest == "." || dest == "..";
    if (dest[0] != '/') {
        dest = clean_path(workdir + "/" + dest);
    } else {
        dest = clean_path(dest);
    }
    if (dest_dir && dest.back() != '/') {
        dest += "/";
    }
    std::size_t n_sources = cp.sources.size() + cp.contents.size();
    if (n_sources > 1 && dest.back() != '/') {
        // Docker: several sources need a directory destination ending in '/'.
        fail(ins, "When using " + kw + " with more than one source file, the destination must be a "
                  "directory and end with a /");
    }

    // Where the sources come from.
    std::unique_ptr<RootView> view;
    std::optional<TempDir> heredoc_dir;
    UniqueFd src_fd;
    std::string from_key;
    bool from_stage = !cp.from.empty();
    if (from_stage) {
        auto lowers = lowers_for_ref(cp.from, stage, &from_key);
        view = std::make_unique<RootView>(store_.tmp_dir(), lowers);
        src_fd = fs::open_dir(view->path());
    }

    CopyOptions co = from_stage ? CopyOptions{} : context_copy_options();
    co.preserve_owner = from_stage;
    co.parents = cp.parents;
    if (!cp.chmod.empty()) {
        try {
            co.chmod = ChmodSpec::parse(cp.chmod);
        } catch (const Error& e) {
            fail(ins, e.what());
        }
    }
    if (!cp.excludes.empty()) {
        // --exclude patterns are relative to each source (BuildKit filters
        // the copy of each source with them), matched against the path and
        // its parents.
        auto base = co.excluded;
        std::vector<std::string> pats;
        for (const auto& p : cp.excludes) {
            pats.push_back(clean_path(p));
        }
        std::vector<std::string> prefixes = {""};
        for (const auto& src : cp.sources) {
            std::string c = clean_path(src);
            while (!c.empty() && c[0] == '/') {
                c.erase(0, 1);
            }
            if (!c.empty() && c != "." && !has_wildcard(c)) {
                prefixes.push_back(c + "/");
            }
        }
        co.excluded = [base, pats, prefixes](const std::string& rel, bool is_dir) {
            if (base && base(rel, is_dir)) {
                return true;
            }
            for (const auto& pre : prefixes) {
                if (rel.compare(0, pre.size(), pre) != 0) {
                    continue;
                }
                std::string p = rel.substr(pre.size());
                while (!p.empty() && p != ".") {
                    for (const auto& pat : pats) {
                        if (path_match(pat, p)) {
                            return true;
                        }
                    }
                    auto slash = p.rfind('/');
                    if (slash == std::string::npos) {
                        break;
                    }
                    p.resize(slash);
                }
            }
            return false;
        };
    }

    // What the step reads, for the key.
    std::vector<std::string> local_sources;
    std::vector<std::string> urls;
    std::vector<std::string> git_sources;
    for (const auto& s : cp.sources) {
        if (cp.add && is_git_url(s)) {
            git_sources.push_back(s);
        } else if (cp.add && is_url(s)) {
            urls.push_back(s);
        } else {
            local_sources.push_back(s);
        }
    }
    // COPY --link: the key leaves out the parent chain (the layer does not
    // depend on it); --chown names are resolved against the parent's
    // /etc/passwd and /etc/group, and the ids they give are in the key.
    std::vector<std::string> parts = {cp.link ? std::string("link") : st.key, df::describe(ins),
                                      "cwd=" + workdir};
    std::optional<std::pair<uid_t, gid_t>> link_owner;
    if (cp.link && !cp.chown.empty()) {
        try {
            RootView parent(store_.tmp_dir(), st.lowers);
            UniqueFd proot = fs::open_dir(parent.path());
            link_owner = resolve_chown(proot.get(), cp.chown);
        } catch (const StepError&) {
            throw;
        } catch (const Error& e) {
            fail(ins, e.what());
        }
        parts.push_back(fmt::format("chown-ids={}:{}", link_owner->first, link_owner->second));
    }
    for (const auto& c : cp.contents) {
        parts.push_back("heredoc " + c.path + "=" + c.data);
    }
    std::string content;
    try {
        if (from_stage) {
            content = "from=" + from_key;
            if (!local_sources.empty()) {
                content += "\n" + hash_sources(src_fd.get(), local_sources, co);
            }
        } else if (!local_sources.empty()) {
            std::string sig = fmt::format("copy parents={} excludes={}", cp.parents,
                                          join(cp.excludes, "\x1f"));
            content = context_hash(local_sources, co, sig);
        }
    } catch (const StepError&) {
        throw;
    } catch (const Error& e) {
        fail(ins, e.what());
    }
    std::optional<TempDir> download_dir;
    std::vector<Download> downloads;
    for (const auto& u : urls) {
        if (!download_dir) {
            download_dir.emplace(store_.tmp_dir(), "add-");
        }
        try {
            downloads.push_back(fetch_url(u, download_dir->path(), cp.checksum));
        } catch (const Error& e) {
            fail(ins, e.what());
        }
        content += "\n" + u + "=" + downloads.back().sha256;
    }
    std::vector<GitCheckout> checkouts;
    GitAuth git_auth;
    if (!git_sources.empty()) {
        // Only what the build was given: --ssh default, --secret GIT_AUTH_TOKEN[.<host>].
        for (const auto& a : opts_.ssh_agents) {
            if (a.id == "default") {
                git_auth.ssh_auth_sock = a.socket;
            }
        }
        for (const auto& sec : opts_.secrets) {
            if (sec.id == "GIT_AUTH_TOKEN" || sec.id.rfind("GIT_AUTH_TOKEN.", 0) == 0) {
                git_auth.token = fs::read_file(sec.path, 64 * 1024);
                while (!git_auth.token.empty() &&
                       (git_auth.token.back() == '\n' || git_auth.token.back() == '\r')) {
                    git_auth.token.pop_back();
                }
                git_auth.token_host = sec.id.size() > 15 ? sec.id.substr(15) : "";
            }
        }
    }
    for (const auto& g : git_sources) {
        if (!download_dir) {
            download_dir.emplace(store_.tmp_dir(), "add-");
        }
        std::string d = download_dir->path() + "/git-" + std::to_string(checkouts.size());
        fs::mkdirs(d, 0700);
        try {
            checkouts.push_back(fetch_git(g, d, cp.keep_git_dir, git_auth));
        } catch (const Error& e) {
            fail(ins, e.what());
        }
        content += "\n" + g + "=" + checkouts.back().commit;
    }
    parts.push_back(content);
    if (!cp.chown.empty()) {
        parts.push_back("chown=" + cp.chown);
    }
    std::string key = cache_key(parts);
    std::vector<std::string> probe_parts = parts;
    probe_parts.pop_back();
    std::string probe = from_stage ? "" : cache_key(probe_parts);

    // BuildKit's history text: "COPY a b /dest/ # buildkit".
    std::string created_by = kw;
    if (!cp.from.empty()) {
        created_by += " --from=" + cp.from;
    }
    for (const auto& s : cp.sources) {
        created_by += " " + s;
    }
    for (const auto& c : cp.contents) {
        created_by += " " + c.path;
    }
    created_by += " " + cp.dest + " # buildkit";

    StepInputs inputs = step_inputs(st, key, df::describe(ins), !cp.link);
    inputs.items.emplace_back("cwd", workdir);
    std::size_t content_at = parts.size() - 1 - (cp.chown.empty() ? 0 : 1);
    for (std::size_t i = 3; i < content_at; ++i) {
        // chown ids (--link) and heredoc contents
        auto eq = parts[i].find('=');
        inputs.items.emplace_back(parts[i].substr(0, eq),
                                  eq == std::string::npos ? "" : parts[i].substr(eq + 1));
    }
    if (!cp.chown.empty()) {
        inputs.items.emplace_back("chown", cp.chown);
    }
    if (from_stage) {
        inputs.items.emplace_back("from", cp.from + " " + from_key);
    }
    inputs.items.emplace_back("content", content);
    ListFiles list_files;
    if (!from_stage && !local_sources.empty()) {
        list_files = [this, local_sources, co] { return context_listing(local_sources, co); };
    }
    layer_step(st, step, key, probe, content, created_by, std::move(inputs), list_files, [&](Workspace& ws) {
        UniqueFd root = fs::open_dir(ws.merged());
        CopyOptions o = co;
        if (link_owner) {
            o.uid = link_owner->first;
            o.gid = link_owner->second;
        } else if (!cp.chown.empty()) {
            try {
                auto [uid, gid] = resolve_chown(root.get(), cp.chown);
                o.uid = uid;
                o.gid = gid;
            } catch (const Error& e) {
                fail(ins, e.what());
            }
        }
        try {
            int sfd = from_stage ? src_fd.get() : context_fd_.get();
            for (const auto& s : local_sources) {
                bool extracted = false;
                if (cp.add && !from_stage && cp.unpack.value_or(true) && !has_wildcard(s)) {
                    UniqueFd f;
                    try {
                        f = open_in_root(sfd, s, O_RDONLY);
                    } catch (const SysError&) {
                    }
                    if (f && S_ISREG(fs::fstat(f.get()).st_mode) && is_tar_archive(f.get())) {
                        std::string d = dest.back() == '/' ? dest : dest + "/";
                        UniqueFd target = mkdirs_in_root(root.get(), d, 0755);
                        extract_archive(f.get(), s, target.get(), store_.tmp_dir());
                        extracted = true;
                    }
                }
                if (!extracted) {
                    copy_into(sfd, {s}, root.get(), dest, o);
                }
            }
            if (!cp.contents.empty()) {
                TempDir hd(store_.tmp_dir(), "heredoc-");
                std::vector<std::string> names;
                for (const auto& c : cp.contents) {
                    std::string data = c.chomp ? chomp_tabs(c.data) : c.data;
                    UniqueFd f = fs::open(hd.path() + "/" + c.path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                    fs::write_all(f.get(), data);
                    if (opts_.source_date_epoch) {
                        struct timespec ts[2] = {{*opts_.source_date_epoch, 0}, {*opts_.source_date_epoch, 0}};
                        ::futimens(f.get(), ts);
                    }
                    f.close();
                    names.push_back(c.path);
                }
                UniqueFd hfd = fs::open_dir(hd.path());
                CopyOptions ho = o;
                ho.excluded = {};
                ho.may_reinclude = {};
                copy_into(hfd.get(), names, root.get(), dest, ho);
            }
            for (const auto& g : checkouts) {
                // A repository's tree goes into the destination directory.
                UniqueFd gfd = fs::open_dir(g.root);
                CopyOptions go = o;
                go.excluded = {};
                go.may_reinclude = {};
                copy_into(gfd.get(), {"."}, root.get(), dest, go);
            }
            for (const auto& d : downloads) {
                std::string file_dest = dest.back() == '/' ? dest + d.file_name : dest;
                UniqueFd dfd = fs::open_dir(fs::dirname(d.path));
                if (d.mtime) {
                    struct timespec ts[2] = {{*d.mtime, 0}, {*d.mtime, 0}};
                    ::utimensat(dfd.get(), d.file_name.c_str(), ts, 0);
                }
                CopyOptions uo = o;
                uo.excluded = {};
                uo.may_reinclude = {};
                copy_into(dfd.get(), {d.file_name}, root.get(), file_dest, uo);
            }
        } catch (const StepError&) {
            throw;
        } catch (const Error& e) {
            fail(ins, e.what());
        }
    }, true, cp.link);
}

void Executor::run_instruction(StageResult& st, df::Instruction ins, df::StageScope& scope,
                               bool& cmd_set, std::size_t stage, int pos, int total, bool trigger) {
    try {
        df::expand(ins, scope.lookup());
    } catch (const df::DockerfileError&) {
        throw;
    }
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
        Step step = start_step(stage, pos, total, text);
        try {
            do_run(st, ins, *run, scope, step, stage);
        } catch (const std::exception& e) {
            events_->step_failed(step.id, e.what(), seconds_since(step.t0));
            throw;
        }
        events_->step_done(step.id, seconds_since(step.t0));
    } else if (auto* cp = std::get_if<df::CopyInstr>(&ins.data)) {
        Step step = start_step(stage, pos, total, text);
        try {
            do_copy(st, ins, *cp, step, stage);
        } catch (const std::exception& e) {
            events_->step_failed(step.id, e.what(), seconds_since(step.t0));
            throw;
        }
        events_->step_done(step.id, seconds_since(step.t0));
    } else if (std::holds_alternative<df::WorkdirInstr>(ins.data)) {
        Step step = start_step(stage, pos, total, text);
        try {
            do_workdir(st, ins, step);
        } catch (const std::exception& e) {
            events_->step_failed(step.id, e.what(), seconds_since(step.t0));
            throw;
        }
        events_->step_done(step.id, seconds_since(step.t0));
    } else if (std::holds_alternative<df::FromInstr>(ins.data)) {
        fail(ins, "FROM cannot be an ONBUILD trigger");
    } else {
        std::string created_by;
        try {
            created_by = apply_metadata(st.config, ins, cmd_set);
        } catch (const StepError&) {
            throw;
        } catch (const Error& e) {
            fail(ins, e.what());
        }
        std::vector<std::string> parts = {st.key, created_by};
        if (std::holds_alternative<df::ArgInstr>(ins.data)) {
            for (const auto& [k, v] : scope.args().entries()) {
                parts.push_back(k + "=" + v);
            }
        }
        std::string key = cache_key(parts);
        std::optional<CacheRecord> rec = opts_.no_cache ? std::nullopt : cache_.lookup(key);
        std::string created = history_time(rec);
        if (!rec) {
            cache_.store({key, created_by, created, {}, {}, {}});
        }
        add_history(st, created_by, true, created);
        st.key = key;
    }
}

StageResult Executor::build_stage(std::size_t index) {
    const df::Stage& s = plan_.stages[index];
    const auto& from = std::get<df::FromInstr>(s.from.data);
    int total = static_cast<int>(s.instructions.size()) + 1;
    std::vector<df::Instruction> triggers;
    StageResult st;
    {
        std::string from_text = "FROM " + (from.image == "scratch" ? std::string("scratch") : from.image);
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
            events_->step_failed(step.id, "", seconds_since(step.t0));
            throw;
        } catch (const Error& e) {
            events_->step_failed(step.id, e.what(), seconds_since(step.t0));
            throw StepError(fmt::format("{}:{}: {}: {}", s.from.loc.file, s.from.loc.line,
                                        s.from.original, e.what()),
                            s.from.loc.file, s.from.loc.line, s.from.original, "", -1);
        }
        events_->step_done(step.id, seconds_since(step.t0));
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
    df::StageScope scope(base_env, &opts_.build_args, &plan_.global_values);
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
    std::lock_guard<std::mutex> l(context_index_mu_);
    if (!context_index_) {
        struct stat root = fs::fstat(context_fd_.get());
        std::string id = Sha256::hex_of(fmt::format("{}\n{}\n{}", fs::absolute(opts_.context_dir),
                                                    root.st_dev, root.st_ino));
        context_index_ = std::make_unique<ContextIndex>(
            context_fd_.get(), opts_.context_dir, store_.cache_dir() + "/context/" + id + ".digests");
    }
    return *context_index_;
}

std::string Executor::context_hash(const std::vector<std::string>& sources, const CopyOptions& co,
                                   const std::string& options_signature) {
    ContextIndex& index = context_index();
    std::vector<std::string> parts = {"context-hash/2", index.fingerprint(), options_signature};
    parts.insert(parts.end(), sources.begin(), sources.end());
    if (ignore_) {
        for (const auto& p : ignore_->patterns()) {
            parts.push_back("ignore " + p);
        }
    }
    std::string probe = cache_key(parts);
    if (auto known = cache_.last_content(probe)) {
        return *known;
    }
    auto t0 = std::chrono::steady_clock::now();
    std::string hash = hash_sources(context_fd_.get(), sources, co, &index);
    index.save();
    STRATA_LOG_DEBUG("context hash of {} entries: {:.3f} s", index.entries(), seconds_since(t0));
    if (!index.racy()) {
        cache_.remember_content(probe, hash);
    }
    return hash;
}

BuildResult Executor::run() {
    load_dockerfile();
    {
        std::lock_guard<std::mutex> l(mu_);
        futures_.resize(plan_.stages.size());
    }
    // Each needed stage on its own thread, started in dependency order; a
    // stage waits for the stages it uses (finished_stage) and nothing else.
    std::vector<std::future<void>> done;
    std::vector<std::promise<StageResult>> promises(plan_.stages.size());
    {
        std::lock_guard<std::mutex> l(mu_);
        for (std::size_t i : plan_.order) {
            futures_[i] = promises[i].get_future().share();
        }
    }
    for (std::size_t i : plan_.order) {
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
    for (std::size_t i : plan_.order) {
        futures_[i].wait();
    }
    StageResult final_stage;
    std::vector<std::string> all_keys;
    for (std::size_t i : plan_.order) {
        try {
            StageResult r = futures_[i].get();
            for (const auto& k : r.cache_keys) {
                if (std::find(all_keys.begin(), all_keys.end(), k) == all_keys.end()) {
                    all_keys.push_back(k);
                }
            }
            if (i == plan_.target) {
                final_stage = std::move(r);
            }
        } catch (...) {
            throw;
        }
    }

    ImageConfig cfg = final_stage.config;
    // --label: on the image config only (no history entry, no cache key), as
    // BuildKit's dockerfile frontend applies it to the target stage.
    for (const auto& [k, v] : opts_.labels) {
        cfg.config.labels[k] = v;
    }
    cfg.created = opts_.source_date_epoch ? build_time(opts_.source_date_epoch)
                  : (!cfg.history.empty() ? cfg.history.back().created : build_time(std::nullopt));
    BuildResult result;
    result.manifest = store_.put_image(cfg, final_stage.layers);
    result.config = cfg;
    result.image_id = Digest::of(formats::to_json(cfg));
    result.layers = final_stage.layers;
    result.steps_run = steps_run_;
    result.steps_cached = steps_cached_;
    result.cache_keys = final_stage.cache_keys;
    result.all_cache_keys = std::move(all_keys);
    result.warnings = warnings_;
    if (opts_.tags.empty()) {
        store_.add_untagged(result.manifest);
    }
    for (const auto& t : opts_.tags) {
        store_.set_name(snapshot::Reference::parse(t), result.manifest);
    }
    return result;
}

} // namespace

BuildResult build(snapshot::Store& store, const BuildOptions& opts) {
    Executor ex(store, opts);
    return ex.run();
}

} // namespace strata::builder
