// strata build's options, stream contexts and FROM pulls (cli/build.hpp).
#include "cli/build.hpp"
#include "cli/common.hpp"

#include "builder/add_source.hpp"
#include "builder/ssh_agent.hpp"
#include "formats/compression.hpp"
#include "registry/transfer.hpp"
#include "snapshot/reference.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>

namespace strata::cli {

namespace {

// --ssh default|ID[=SOCKET] as docker build takes it; no socket means
// $SSH_AUTH_SOCK. Key files (which BuildKit loads into an agent of its own)
// are refused: strata forwards agent sockets only.
builder::SshAgent parse_ssh_flag(const std::string& s) {
    builder::SshAgent agent;
    auto eq = s.find('=');
    agent.id = s.substr(0, eq);
    std::string path = eq == std::string::npos ? "" : s.substr(eq + 1);
    if (agent.id.empty()) {
        throw UsageError("--ssh " + s + ": expected default|ID[=SOCKET]");
    }
    if (path.empty()) {
        const char* env = std::getenv("SSH_AUTH_SOCK");
        if (env == nullptr || *env == '\0') {
            throw UsageError("--ssh " + s + ": no socket given and SSH_AUTH_SOCK is not set");
        }
        path = env;
    }
    if (path.find(',') != std::string::npos || !builder::is_socket(path)) {
        throw UsageError("--ssh " + s + ": " + path +
                         " is not an ssh agent socket (strata forwards agent sockets only; load "
                         "keys with ssh-add and pass the agent's socket)");
    }
    agent.socket = path;
    return agent;
}

} // namespace

std::string pull_policy(const std::string& pull) {
    std::string p = pull == "true" ? "always" : pull == "false" ? "missing" : pull;
    if (p != "always" && p != "missing" && p != "never") {
        throw UsageError("--pull must be always, missing or never, not \"" + pull + "\"");
    }
    return p;
}

void apply_build_settings(const BuildSettings& a, builder::BuildOptions& o) {
    for (const auto& kv : a.labels) {
        auto eq = kv.find('=');
        if (eq == 0) {
            throw UsageError("--label " + kv + ": expected KEY=VALUE");
        }
        o.labels[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    o.tags = a.tags;
    for (const auto& t : a.tags) {
        snapshot::Reference::parse(t); // fail before building
    }
    for (const auto& kv : a.build_args) {
        auto eq = kv.find('=');
        if (eq == std::string::npos) {
            // Docker: --build-arg NAME takes the value from the environment.
            if (const char* v = std::getenv(kv.c_str())) {
                o.build_args[kv] = v;
            }
            continue;
        }
        o.build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    o.target = a.target;
    o.no_cache = a.no_cache;
    if (a.network == "none" || a.network == "default") {
        o.network = builder::Network::none;
    } else if (a.network == "host") {
        o.network = builder::Network::host;
    } else {
        throw UsageError("--network must be none or host, not \"" + a.network + "\"");
    }
    for (const auto& s : a.secrets) {
        builder::Secret sec;
        std::size_t pos = 0;
        while (pos <= s.size()) {
            std::size_t comma = s.find(',', pos);
            std::string f =
                s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            pos = comma == std::string::npos ? s.size() + 1 : comma + 1;
            auto eq = f.find('=');
            std::string k = f.substr(0, eq);
            std::string v = eq == std::string::npos ? "" : f.substr(eq + 1);
            if (k == "id") {
                sec.id = v;
            } else if (k == "src" || k == "source") {
                sec.path = v;
            } else if (k == "type" && v == "file") {
            } else {
                throw UsageError("--secret " + s + ": expected id=ID,src=PATH");
            }
        }
        if (sec.id.empty() || sec.path.empty()) {
            throw UsageError("--secret " + s + ": expected id=ID,src=PATH");
        }
        o.secrets.push_back(sec);
    }
    for (const auto& e : a.allow) {
        if (e == "network.host") {
            o.allow_network_host = true;
        } else if (e == "security.insecure") {
            o.allow_security_insecure = true;
        } else {
            throw UsageError("invalid entitlement: " + e +
                             " (strata build --allow takes network.host or security.insecure)");
        }
    }
    for (const auto& s : a.ssh) {
        o.ssh_agents.push_back(parse_ssh_flag(s));
    }
    o.compression = formats::parse_compression(a.compression);
    o.source_date_epoch = source_date_epoch();
    o.platform = a.platform;
}

void context_from_stream(snapshot::Store& store, int fd, const std::string& file,
                         const std::string& dir, const std::string& label,
                         builder::BuildOptions& o) {
    o.context_dir = dir;
    if (builder::is_tar_archive(fd)) {
        UniqueFd dirfd = fs::open_dir(dir);
        builder::extract_archive(fd, "the build context (" + label + ")", dirfd.get(),
                                 store.tmp_dir());
        std::string name = clean_path(file.empty() ? "Dockerfile" : file);
        if (name == "." || name == ".." || name.starts_with("../") || name.starts_with("/")) {
            throw UsageError("the Dockerfile (" + file + ") must be within the build context");
        }
        o.dockerfile = fs::join(dir, name);
        // Read inside the context only: a Dockerfile that is a symlink to a
        // file of the host is resolved in the context, as a COPY source is.
        UniqueFd df;
        try {
            df = open_in_root(dirfd.get(), name, O_RDONLY | O_CLOEXEC);
        } catch (const SysError& e) {
            if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
                throw Error("Cannot locate specified Dockerfile: " + name);
            }
            throw;
        }
        struct stat st = fs::fstat(df.get());
        if (!S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
            throw Error("the Dockerfile " + name + " in the build context (" + label +
                        ") is not a file of at most 16 MiB");
        }
        std::string text(static_cast<std::size_t>(st.st_size), '\0');
        text.resize(fs::read_full(df.get(), o.dockerfile, text.data(), text.size()));
        o.dockerfile_text = std::move(text);
        return;
    }
    if (!file.empty()) {
        throw UsageError("-f " + file + ": with a Dockerfile on " + label +
                         " as the context, there is no context to find it in");
    }
    struct stat st = fs::fstat(fd);
    if (st.st_size > (16 << 20)) {
        throw Error(label + ": neither a tar archive nor a Dockerfile (over 16 MiB)");
    }
    if (::lseek(fd, 0, SEEK_SET) != 0) {
        throw_errno("lseek", label);
    }
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    text.resize(fs::read_full(fd, label, text.data(), text.size()));
    o.dockerfile_text = std::move(text);
    o.dockerfile = fs::join(dir, "Dockerfile");
}

BaseImageFetcher::BaseImageFetcher(snapshot::Store& store, const std::string& pull_policy,
                                   bool tls_verify, std::function<void(const std::string&)> message)
    : m_store(store), m_policy(pull_policy), m_tls_verify(tls_verify),
      m_message(std::move(message)) {}

void BaseImageFetcher::install(builder::BuildOptions& o) {
    if (m_policy == "never") {
        o.fetch_image = [](const std::string& text) -> std::optional<std::string> {
            throw Error("image " + text +
                        " is not in the store, and --pull never does not pull it "
                        "(strata pull " +
                        text + " first)");
        };
        return;
    }
    o.fetch_always = m_policy == "always";
    bool always = o.fetch_always;
    o.fetch_image = [this, always](const std::string& text) -> std::optional<std::string> {
        std::optional<snapshot::Reference> ref = snapshot::Reference::try_parse(text);
        if (!ref) {
            return std::nullopt; // an image ID: only the store can have it
        }
        std::lock_guard<std::mutex> l(m_mu);
        if (auto it = m_pulled.find(text); it != m_pulled.end()) {
            return it->second;
        }
        m_message("pulling " + ref->full());
        registry::TransferOptions t;
        t.client = registry::client_options_for(ref->domain(), m_tls_verify);
        auto p0 = std::chrono::steady_clock::now();
        registry::PullResult r;
        try {
            r = registry::pull(m_store, *ref, t);
        } catch (const Error& e) {
            if (always) {
                throw Error("--pull always: pulling " + ref->full() + " failed: " + e.what());
            }
            throw Error("no such image in the store: " + text + ", and pulling " + ref->full() +
                        " failed: " + e.what());
        }
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count();
        m_message(fmt::format("pulled {} {} ({} blobs fetched, {} already present, {:.1f}s)",
                              ref->full(), r.manifest.digest.str(), r.blobs_fetched,
                              r.blobs_skipped, secs));
        // The manifest digest: the tag may move while the build runs.
        m_pulled[text] = r.manifest.digest.str();
        return m_pulled[text];
    };
}

} // namespace strata::cli
