// The COPY and ADD steps: where the sources come from (the context, another
// stage or image, a heredoc, a URL, a git repository), the cache key over
// what they hold, and the copy into the step's workspace.
#include "builder/executor.hpp"

#include "builder/add_source.hpp"
#include "builder/chmod.hpp"
#include "builder/copy_reuse.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/tempdir.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::builder {

using namespace detail;

namespace {

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
    auto lookup = [&](const std::string& name, const char* file,
                      const char* what) -> std::uint32_t {
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
            std::string line =
                data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
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
        throw Error(
            fmt::format("--chown={}: no {} \"{}\" in the image's {}", spec, what, name, file));
    };
    uid_t uid = lookup(user, "/etc/passwd", "user");
    gid_t gid = group.empty() ? static_cast<gid_t>(uid) : lookup(group, "/etc/group", "group");
    return {uid, gid};
}

} // namespace

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
        fail(ins, "When using " + kw +
                      " with more than one source file, the destination must be a "
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
        view = std::make_unique<RootView>(m_store.tmp_dir(), lowers);
        src_fd = fs::open_dir(view->path());
    }

    CopyOptions co = from_stage ? CopyOptions{} : context_copy_options();
    co.preserve_owner = from_stage;
    co.parents = cp.parents;
    if (!cp.chmod.empty()) {
        as_step(ins, [&] { co.chmod = ChmodSpec::parse(cp.chmod); });
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
        as_step(ins, [&] {
            RootView parent(m_store.tmp_dir(), st.lowers());
            UniqueFd proot = fs::open_dir(parent.path());
            link_owner = resolve_chown(proot.get(), cp.chown);
        });
        parts.push_back(fmt::format("chown-ids={}:{}", link_owner->first, link_owner->second));
    }
    for (const auto& c : cp.contents) {
        parts.push_back("heredoc " + c.path + "=" + c.data);
    }
    // The same step whatever its files hold: the key without the content
    // (--chown stays in: a record made with other owners lends no files).
    std::vector<std::string> probe_parts = parts;
    if (!cp.chown.empty()) {
        probe_parts.push_back("chown=" + cp.chown);
    }
    const std::string probe = from_stage ? "" : cache_key(probe_parts);
    // One context source, nothing else (ADD's URLs and git repositories come
    // only with ADD): its unchanged files may be linked from the step's
    // previous result (builder/copy_reuse.hpp).
    const bool may_reuse =
        !from_stage && !cp.add && local_sources.size() == 1 && cp.contents.empty();
    std::string content;
    // The context's files as the content hash walked them, for the listing
    // that explains a miss (one walk of the context, not two).
    auto listing = std::make_shared<std::optional<std::map<std::string, std::string>>>();
    as_step(ins, [&] {
        if (from_stage) {
            content = "from=" + from_key;
            if (!local_sources.empty()) {
                content += "\n" + hash_sources(src_fd.get(), local_sources, co);
            }
        } else if (!local_sources.empty()) {
            std::string sig =
                fmt::format("copy parents={} excludes={}", cp.parents, join(cp.excludes, "\x1f"));
            // A COPY that may reuse its previous result reads that layer's
            // TOC while the context is hashed, when the context changed.
            std::function<void()> before_walk;
            if (may_reuse) {
                before_walk = [&] { prefetch_previous_toc(probe); };
            }
            content = context_hash(local_sources, co, sig, listing.get(), before_walk);
        }
    });
    std::optional<TempDir> download_dir;
    std::vector<Download> downloads;
    for (const auto& u : urls) {
        if (!download_dir) {
            download_dir.emplace(m_store.tmp_dir(), "add-");
        }
        as_step(ins, [&] { downloads.push_back(fetch_url(u, download_dir->path(), cp.checksum)); });
        content += "\n" + u + "=" + downloads.back().sha256;
    }
    std::vector<GitCheckout> checkouts;
    GitAuth git_auth;
    if (!git_sources.empty()) {
        // Only what the build was given: --ssh default, --secret GIT_AUTH_TOKEN[.<host>].
        for (const auto& a : m_opts.ssh_agents) {
            if (a.id == "default") {
                git_auth.ssh_auth_sock = a.socket;
            }
        }
        for (const auto& sec : m_opts.secrets) {
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
            download_dir.emplace(m_store.tmp_dir(), "add-");
        }
        std::string d = download_dir->path() + "/git-" + std::to_string(checkouts.size());
        fs::mkdirs(d, 0700);
        as_step(ins, [&] { checkouts.push_back(fetch_git(g, d, cp.keep_git_dir, git_auth)); });
        content += "\n" + g + "=" + checkouts.back().commit;
    }
    const std::size_t content_index = parts.size();
    parts.push_back(content);
    if (!cp.chown.empty()) {
        parts.push_back("chown=" + cp.chown);
    }
    std::string key = cache_key(parts);

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

    LayerStep ls;
    ls.key = key;
    ls.created_by = created_by;
    ls.probe_key = probe;
    ls.content_hash = content;
    ls.independent = cp.link;
    StepInputs& inputs = ls.inputs;
    inputs = step_inputs(st, key, df::describe(ins), !cp.link);
    inputs.items.emplace_back("cwd", workdir);
    for (std::size_t i = 3; i < content_index; ++i) {
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
    if (!from_stage && !local_sources.empty()) {
        ls.list_files = [this, local_sources, co, listing] {
            if (*listing) {
                // Taken, not copied (thousands of files); a second call
                // lists the context again.
                auto taken = std::move(*listing);
                listing->reset();
                return taken;
            }
            return context_listing(local_sources, co);
        };
    }
    layer_step(st, step, std::move(ls), [&](Workspace& ws) {
        UniqueFd root = fs::open_dir(ws.merged());
        CopyOptions o = co;
        std::shared_ptr<CopyReuse> reuse;
        if (may_reuse && !ws.previous_fs.empty() && ws.previous_layer) {
            if (auto r =
                    CopyReuse::open(m_store, ws.previous_fs, *ws.previous_layer, &context_index(),
                                    ws.can_check_contents, m_context_fd.get())) {
                reuse = std::make_shared<CopyReuse>(std::move(*r));
                o.defer_content = [reuse](const DeferredFile& f) { return reuse->defer(f); };
                ws.after_unmount.push_back([reuse, this, id = step.id,
                                            wsp = &ws](const std::string& upper) {
                    std::size_t n = reuse->finish(upper, wsp->content_checks, wsp->linked_files);
                    if (n > 0) {
                        m_events->step_note(
                            id,
                            fmt::format("{} unchanged files linked from the previous build", n));
                    }
                });
            }
        }
        if (link_owner) {
            o.uid = link_owner->first;
            o.gid = link_owner->second;
        } else if (!cp.chown.empty()) {
            as_step(ins, [&] {
                auto [uid, gid] = resolve_chown(root.get(), cp.chown);
                o.uid = uid;
                o.gid = gid;
            });
        }
        as_step(ins, [&] {
            int sfd = from_stage ? src_fd.get() : m_context_fd.get();
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
                        extract_archive(f.get(), s, target.get(), m_store.tmp_dir());
                        extracted = true;
                    }
                }
                if (!extracted) {
                    CopyOptions so = o;
                    if (!from_stage) {
                        // The context as its content hash saw it.
                        so.listed = context_listed();
                    }
                    copy_into(sfd, {s}, root.get(), dest, so);
                }
            }
            if (!cp.contents.empty()) {
                TempDir hd(m_store.tmp_dir(), "heredoc-");
                std::vector<std::string> names;
                for (const auto& c : cp.contents) {
                    std::string data = c.chomp ? chomp_tabs(c.data) : c.data;
                    UniqueFd f =
                        fs::open(hd.path() + "/" + c.path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                    fs::write_all(f.get(), data);
                    if (m_opts.source_date_epoch) {
                        struct timespec ts[2] = {{*m_opts.source_date_epoch, 0},
                                                 {*m_opts.source_date_epoch, 0}};
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
        });
    });
}

} // namespace strata::builder
