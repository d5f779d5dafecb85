#include "builder/add_source.hpp"

#include "formats/compression.hpp"
#include "util/error.hpp"
#include "util/base64.hpp"
#include "util/fd.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"
#include "util/libcurl.hpp"
#include "util/root.hpp"
#include "util/sha256.hpp"
#include "formats/tar.hpp"
#include "snapshot/layer_apply.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <vector>

namespace strata::builder {

bool is_url(const std::string& source) {
    return source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0;
}

namespace {

// The host path of path inside root, resolved with root's confinement.
std::string host_path_of(int rootfd, const std::string& path, const std::string& source) {
    UniqueFd fd;
    try {
        fd = open_in_root(rootfd, path, O_PATH | O_DIRECTORY);
    } catch (const SysError&) {
        throw Error("ADD " + source + ": no directory \"" + path + "\" in the repository");
    }
    std::string link = "/proc/self/fd/" + std::to_string(fd.get());
    char buf[4096];
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n < 0) {
        throw_errno("readlink", link);
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

} // namespace

bool is_git_url(const std::string& source) {
    for (const char* p : {"git://", "git@", "ssh://", "github.com/"}) {
        if (source.rfind(p, 0) == 0) {
            return true;
        }
    }
    if (!is_url(source)) {
        return false;
    }
    std::string path = source.substr(0, source.find('#'));
    path = path.substr(0, path.find('?'));
    while (!path.empty() && path.back() == '/') {
        path.pop_back();
    }
    return path.size() > 4 && path.compare(path.size() - 4, 4, ".git") == 0;
}

namespace {

// The host of a URL ("https://h:1/x" -> "h"), empty when there is none.
std::string url_host(const std::string& url) {
    auto scheme = url.find("://");
    if (scheme == std::string::npos) {
        return "";
    }
    std::string rest = url.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    rest = rest.substr(rest.find('@') + 1);
    return rest.substr(0, rest.find(':'));
}

// Runs git with its output captured and no terminal prompts; returns the
// exit status and the output (stdout and stderr). A Dockerfile is untrusted:
// git must not fetch with the builder's identity, so it gets an environment
// of its own (home is an empty directory) instead of the caller's, and only
// the credentials the build was given (auth). Config values travel in
// GIT_CONFIG_* variables, not on the command line other users can read.
std::pair<ExitStatus, std::string> run_git(const std::vector<std::string>& args,
                                           const std::string& home, const std::string& url,
                                           const GitAuth& auth) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        for (const char* keep : {"PATH=", "LANG=", "LC_ALL=", "TZ=", "http_proxy=", "https_proxy=",
                                 "no_proxy=", "HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY="}) {
            if (std::strncmp(*e, keep, std::strlen(keep)) == 0) {
                env.emplace_back(*e);
            }
        }
    }
    env.emplace_back("HOME=" + home);
    env.emplace_back("XDG_CONFIG_HOME=" + home + "/.config");
    env.emplace_back("GIT_TERMINAL_PROMPT=0");
    env.emplace_back("GIT_CONFIG_NOSYSTEM=1");
    env.emplace_back("GIT_CONFIG_GLOBAL=/dev/null");
    env.emplace_back("GIT_ASKPASS=/bin/false");
    env.emplace_back("SSH_ASKPASS=/bin/false");
    // ssh: no user config, no default identities (~/.ssh of the passwd home,
    // which HOME does not change), no known hosts; only the agent --ssh gave.
    env.emplace_back(
        "GIT_SSH_COMMAND=ssh -F /dev/null -o IdentityFile=none -o IdentitiesOnly=yes "
        "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o BatchMode=yes");
    if (!auth.ssh_auth_sock.empty()) {
        env.emplace_back("SSH_AUTH_SOCK=" + auth.ssh_auth_sock);
    }
    std::vector<std::pair<std::string, std::string>> config = {
        {"credential.helper", ""},
        {"advice.detachedHead", "false"},
        {"protocol.file.allow", "never"},
    };
    std::string host = url_host(url);
    if (!auth.token.empty() && (url.rfind("https://", 0) == 0 || url.rfind("http://", 0) == 0) &&
        (auth.token_host.empty() || auth.token_host == host)) {
        // As BuildKit sends GIT_AUTH_TOKEN.
        config.emplace_back("http." + url + ".extraheader",
                            "Authorization: basic " +
                                base64_encode("x-access-token:" + auth.token));
    }
    env.emplace_back("GIT_CONFIG_COUNT=" + std::to_string(config.size()));
    for (std::size_t i = 0; i < config.size(); ++i) {
        env.emplace_back("GIT_CONFIG_KEY_" + std::to_string(i) + "=" + config[i].first);
        env.emplace_back("GIT_CONFIG_VALUE_" + std::to_string(i) + "=" + config[i].second);
    }
    Pipe out = Pipe::create();
    UniqueFd devnull = fs::open("/dev/null", O_RDONLY);
    SpawnOptions so;
    so.argv = {"git"};
    so.argv.insert(so.argv.end(), args.begin(), args.end());
    so.env = env;
    so.stdin_fd = devnull.get();
    so.stdout_fd = out.write.get();
    so.stderr_fd = out.write.get();
    Child c = Child::spawn(so);
    out.write.reset();
    std::string text = fs::read_fd(out.read.get(), 1 << 20);
    return {c.wait(), text};
}

std::string first_line(const std::string& s) {
    std::string t = s.substr(0, s.find('\n'));
    return t.empty() ? s : t;
}

} // namespace

GitCheckout fetch_git(const std::string& source, const std::string& dir, bool keep_git_dir,
                      const GitAuth& auth) {
    std::string url = source.substr(0, source.find('#'));
    std::string fragment = source.find('#') == std::string::npos ? "" : source.substr(source.find('#') + 1);
    std::string ref = fragment.substr(0, fragment.find(':'));
    std::string subdir = fragment.find(':') == std::string::npos ? "" : fragment.substr(fragment.find(':') + 1);
    if (url.rfind("github.com/", 0) == 0) {
        url = "https://" + url;
    }
    if (!find_program("git")) {
        throw Error("ADD " + source + ": git sources need the git program, which is not installed");
    }
    std::string repo = dir + "/repo";
    std::string home = dir + "/home";
    fs::mkdirs(home, 0700);
    auto git = [&](const std::vector<std::string>& args) { return run_git(args, home, url, auth); };
    auto [st, out] = git({"clone", "--quiet", "--no-checkout", "--", url, repo});
    if (!st.success()) {
        throw Error("ADD " + source + ": git clone " + url + " failed: " + first_line(out));
    }
    std::string commit;
    std::vector<std::string> candidates;
    if (ref.empty()) {
        candidates = {"HEAD"};
    } else {
        candidates = {"refs/remotes/origin/" + ref, "refs/tags/" + ref, ref};
    }
    for (const auto& c : candidates) {
        auto [rs, rout] = git({"-C", repo, "rev-parse", "--verify", "--quiet", c + "^{commit}"});
        if (rs.success()) {
            commit = rout.substr(0, rout.find('\n'));
            break;
        }
    }
    if (commit.empty()) {
        throw Error("ADD " + source + ": no branch, tag or commit \"" + (ref.empty() ? "HEAD" : ref) +
                    "\" in " + url);
    }
    auto [cs, cout] = git({"-C", repo, "checkout", "--quiet", "--detach", commit});
    if (!cs.success()) {
        throw Error("ADD " + source + ": git checkout " + commit + " failed: " + first_line(cout));
    }
    if (!keep_git_dir) {
        fs::remove_all(repo + "/.git");
    }
    GitCheckout g;
    g.commit = commit;
    g.root = repo;
    if (!subdir.empty()) {
        UniqueFd rfd = fs::open_dir(repo);
        g.root = host_path_of(rfd.get(), subdir, source);
    }
    return g;
}

namespace {

// An --checksum digest other than SHA-256 (sha384, sha512, as BuildKit
// accepts), with OpenSSL's EVP interface: only ADD of a URL with such a
// checksum pays for its initialisation.
class EvpHash {
public:
    explicit EvpHash(const EVP_MD* md) : m_ctx(EVP_MD_CTX_new()) {
        if (m_ctx == nullptr || EVP_DigestInit_ex(m_ctx, md, nullptr) != 1) {
            EVP_MD_CTX_free(m_ctx);
            throw Error("cannot initialise OpenSSL's digest " + std::string(EVP_MD_get0_name(md)));
        }
    }
    ~EvpHash() { EVP_MD_CTX_free(m_ctx); }
    EvpHash(const EvpHash&) = delete;
    EvpHash& operator=(const EvpHash&) = delete;
    // noexcept: called from the libcurl callback.
    bool update(const void* data, std::size_t n) noexcept {
        return EVP_DigestUpdate(m_ctx, data, n) == 1;
    }
    std::string finish_hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(m_ctx, md, &len) != 1) {
            throw Error("OpenSSL digest failed");
        }
        static const char* hex = "0123456789abcdef";
        std::string out;
        for (unsigned int i = 0; i < len; ++i) {
            out += hex[md[i] >> 4];
            out += hex[md[i] & 15];
        }
        return out;
    }

private:
    EVP_MD_CTX* m_ctx;
};

struct Sink {
    int fd = -1;
    Sha256 hash;
    EvpHash* extra = nullptr; // the --checksum algorithm when not sha256
    bool failed = false;
    int err = 0;
};

// libcurl callback: no exception may cross it.
extern "C" size_t write_cb(char* data, size_t size, size_t n, void* user) {
    auto* s = static_cast<Sink*>(user);
    size_t total = size * n;
    std::size_t off = 0;
    while (off < total) {
        ssize_t w = ::write(s->fd, data + off, total - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            s->failed = true;
            s->err = errno;
            return 0;
        }
        off += static_cast<std::size_t>(w);
    }
    s->hash.update(data, total);
    if (s->extra != nullptr && !s->extra->update(data, total)) {
        return 0;
    }
    return total;
}

std::string url_file_name(const std::string& url) {
    std::string rest = url.substr(url.find("://") + 3);
    for (char stop : {'?', '#'}) {
        if (auto p = rest.find(stop); p != std::string::npos) {
            rest.resize(p);
        }
    }
    auto slash = rest.find('/');
    if (slash == std::string::npos) {
        return "index.html";
    }
    std::string path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') {
        path.pop_back();
    }
    std::string base = path.substr(path.rfind('/') + 1);
    if (base.empty() || base == "." || base == "..") {
        return "index.html";
    }
    return base;
}

void curl_init_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

} // namespace

Download fetch_url(const std::string& url, const std::string& dir, const std::string& checksum) {
    // The checksum's algorithm, known before anything is downloaded.
    std::string algorithm;
    const EVP_MD* md = nullptr;
    if (!checksum.empty()) {
        algorithm = checksum.substr(0, checksum.find(':'));
        if (algorithm == "sha384") {
            md = EVP_sha384();
        } else if (algorithm == "sha512") {
            md = EVP_sha512();
        } else if (algorithm != "sha256") {
            throw Error("ADD --checksum=" + checksum + ": unsupported digest algorithm \"" + algorithm +
                        "\" (sha256, sha384 or sha512)");
        }
    }
    std::optional<EvpHash> extra;
    if (md != nullptr) {
        extra.emplace(md);
    }
    curl_init_once();
    Download d;
    d.file_name = url_file_name(url);
    d.path = dir + "/" + d.file_name;
    UniqueFd out = fs::open(d.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    Sink sink;
    sink.fd = out.get();
    sink.extra = extra ? &*extra : nullptr;
    CURL* c = curl_easy_init();
    if (c == nullptr) {
        throw Error("ADD " + url + ": cannot initialise libcurl" +
                    (libcurl_load_error().empty() ? "" : ": " + libcurl_load_error()));
    }
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(c);
    long filetime = -1;
    curl_easy_getinfo(c, CURLINFO_FILETIME, &filetime);
    curl_easy_cleanup(c);
    if (sink.failed) {
        throw SysError("write", d.path, sink.err);
    }
    if (rc != CURLE_OK) {
        throw Error("ADD " + url + ": " + (errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc)));
    }
    out.close();
    d.sha256 = "sha256:" + sink.hash.finish_hex();
    if (filetime >= 0) {
        d.mtime = filetime;
    }
    if (!checksum.empty()) {
        std::string actual = extra ? algorithm + ":" + extra->finish_hex() : d.sha256;
        if (checksum != actual) {
            throw Error("ADD " + url + ": digest mismatch: expected " + checksum + ", got " + actual);
        }
    }
    return d;
}

ArchiveCompression detect_archive_compression(int fd) {
    unsigned char h[8] = {0};
    ssize_t n;
    do {
        n = ::pread(fd, h, sizeof h, 0);
    } while (n < 0 && errno == EINTR);
    if (n >= 3 && h[0] == 'B' && h[1] == 'Z' && h[2] == 'h') {
        return ArchiveCompression::bzip2;
    }
    if (n >= 6 && std::memcmp(h, "\xFD" "7zXZ\0", 6) == 0) {
        return ArchiveCompression::xz;
    }
    if (n >= 3 && h[0] == 0x1f && h[1] == 0x8b && h[2] == 0x08) {
        return ArchiveCompression::gzip;
    }
    if (n >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd) {
        return ArchiveCompression::zstd;
    }
    return ArchiveCompression::none;
}

namespace {

// libarchive's raw reader over a file: decompresses any of the filters
// above, reading from fd with pread (the offset of fd is left alone).
class RawDecompressor {
public:
    explicit RawDecompressor(int fd, const std::string& name) : m_fd(fd), m_name(name) {
        m_a = archive_read_new();
        if (m_a == nullptr) {
            throw Error("libarchive: out of memory");
        }
        // Only the filters ADD recognises (filter_all would also bid with
        // filters that run external programs).
        archive_read_support_filter_gzip(m_a);
        archive_read_support_filter_bzip2(m_a);
        archive_read_support_filter_xz(m_a);
        archive_read_support_filter_zstd(m_a);
        archive_read_support_format_raw(m_a);
        if (archive_read_open(m_a, this, nullptr, &RawDecompressor::read_cb, nullptr) !=
            ARCHIVE_OK) {
            std::string msg = m_name + ": " + err();
            archive_read_free(m_a);
            m_a = nullptr;
            throw Error(msg);
        }
        archive_entry* e = nullptr;
        if (archive_read_next_header(m_a, &e) != ARCHIVE_OK) {
            std::string msg = m_name + ": " + err();
            archive_read_free(m_a);
            m_a = nullptr;
            throw Error(msg);
        }
    }
    ~RawDecompressor() {
        if (m_a != nullptr) {
            archive_read_free(m_a);
        }
    }
    RawDecompressor(const RawDecompressor&) = delete;
    RawDecompressor& operator=(const RawDecompressor&) = delete;

    // Decompressed bytes; 0 at the end. Throws on corrupt input.
    std::size_t read(void* buf, std::size_t size) {
        la_ssize_t r = archive_read_data(m_a, buf, size);
        if (r < 0) {
            throw Error(m_name + ": decompressing: " + err());
        }
        return static_cast<std::size_t>(r);
    }

private:
    std::string err() const {
        const char* m = archive_error_string(m_a);
        return m != nullptr ? m : "unknown libarchive error";
    }
    // A C callback: no exception may cross it.
    static la_ssize_t read_cb(struct archive* a, void* self, const void** out) {
        auto* d = static_cast<RawDecompressor*>(self);
        ssize_t n;
        do {
            n = ::pread(d->m_fd, d->m_buf, sizeof d->m_buf, d->m_off);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            archive_set_error(a, errno, "read: %s", std::strerror(errno));
            return -1;
        }
        d->m_off += n;
        *out = d->m_buf;
        return n;
    }

    int m_fd;
    std::string m_name;
    struct archive* m_a = nullptr;
    off_t m_off = 0;
    char m_buf[64 * 1024];
};

bool tar_header_checksum_ok(const std::string& block) {
    // The header checksum: the sum of all bytes with the checksum field
    // (offset 148, 8 bytes) counted as spaces, stored as octal.
    unsigned long sum = 0;
    for (std::size_t i = 0; i < 512; ++i) {
        sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(block[i]);
    }
    std::string field = block.substr(148, 8);
    std::size_t start = field.find_first_of("01234567");
    if (start == std::string::npos) {
        return false;
    }
    unsigned long stored = 0;
    for (std::size_t i = start; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i) {
        stored = stored * 8 + static_cast<unsigned long>(field[i] - '0');
    }
    return stored == sum;
}

} // namespace

bool is_tar_archive(int fd) {
    std::string block(512, '\0');
    std::size_t got = 0;
    try {
        if (detect_archive_compression(fd) == ArchiveCompression::none) {
            while (got < 512) {
                ssize_t r = ::pread(fd, block.data() + got, 512 - got, static_cast<off_t>(got));
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                if (r <= 0) {
                    break;
                }
                got += static_cast<std::size_t>(r);
            }
        } else {
            RawDecompressor dec(fd, "archive");
            while (got < 512) {
                std::size_t r = dec.read(block.data() + got, 512 - got);
                if (r == 0) {
                    break;
                }
                got += r;
            }
        }
    } catch (const std::exception&) {
        return false; // not a readable compressed stream: copied as is
    }
    return got == 512 && tar_header_checksum_ok(block);
}

void extract_archive(int fd, const std::string& name, int target_dirfd, const std::string& tmp_dir) {
    snapshot::ApplyOptions ao;
    ao.mode = snapshot::WhiteoutMode::flatten;
    ao.preserve_owner = true;
    ao.layer_name = name;
    ArchiveCompression comp = detect_archive_compression(fd);
    if (comp == ArchiveCompression::bzip2 || comp == ArchiveCompression::xz) {
        // formats::TarReader reads plain, gzip and zstd streams: the others
        // are decompressed to an unlinked temporary file first.
        UniqueFd plain(::open(tmp_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
        if (!plain) {
            throw_errno("open O_TMPFILE", tmp_dir);
        }
        RawDecompressor dec(fd, name);
        std::vector<char> buf(256 * 1024);
        while (std::size_t n = dec.read(buf.data(), buf.size())) {
            fs::write_all(plain.get(), std::string_view(buf.data(), n));
        }
        if (::lseek(plain.get(), 0, SEEK_SET) != 0) {
            throw_errno("lseek", name);
        }
        formats::TarReader reader(plain.get(), name);
        snapshot::apply_entries(reader, target_dirfd, ao);
        reader.finish();
        return;
    }
    if (::lseek(fd, 0, SEEK_SET) != 0) {
        throw_errno("lseek", name);
    }
    formats::TarReader reader(fd, name);
    snapshot::apply_entries(reader, target_dirfd, ao);
    reader.finish();
}

} // namespace strata::builder
