#include "formats/image_archive.hpp"

#include "formats/compression.hpp"
#include "formats/json.hpp"
#include "formats/layout.hpp"
#include "formats/media_types.hpp"
#include "formats/tar.hpp"
#include "util/atomic_file.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>

namespace strata::formats {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* k_ref_name = "org.opencontainers.image.ref.name";
constexpr const char* k_containerd_name = "io.containerd.image.name";
// Symlink chains longer than this are treated as loops (Linux's MAXSYMLINKS).
constexpr int k_max_link_hops = 40;

struct ReadArchiveDeleter {
    void operator()(archive* a) const noexcept { archive_read_free(a); }
};
struct WriteArchiveDeleter {
    void operator()(archive* a) const noexcept { archive_write_free(a); }
};
using ReadArchive = std::unique_ptr<archive, ReadArchiveDeleter>;
using WriteArchive = std::unique_ptr<archive, WriteArchiveDeleter>;

std::string archive_err(archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

// Image archives may be compressed as docker load accepts them: gzip, bzip2,
// xz, zstd, each decoded inside libarchive by its library. No other filter
// (some run outside programs on what they are given).
void support_archive_filters(archive* a) {
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_zstd(a);
}

// The name of a compression the first bytes of a file show, when it is one
// strata does not read, for a clear refusal.
std::optional<std::string> foreign_compression(const std::string& path) {
    unsigned char m[8] = {};
    std::size_t n = 0;
    try {
        UniqueFd fd = fs::open(path, O_RDONLY);
        n = fs::read_full(fd.get(), path, m, sizeof m);
    } catch (const Error&) {
        return std::nullopt;
    }
    auto is = [&](std::initializer_list<unsigned char> magic) {
        return n >= magic.size() && std::equal(magic.begin(), magic.end(), m);
    };
    if (is({0x1f, 0x9d})) {
        return "compress (.Z)";
    }
    if (is({0x1f, 0xa0})) {
        return "lzh";
    }
    if (is({0x04, 0x22, 0x4d, 0x18}) || is({0x02, 0x21, 0x4c, 0x18})) {
        return "lz4";
    }
    if (is({0x89, 'L', 'Z', 'O', 0x00})) {
        return "lzop";
    }
    if (is({'G', 'R', 'Z', 'i', 'p', 'I', 'I'})) {
        return "grzip";
    }
    if (is({'L', 'R', 'Z', 'I'})) {
        return "lrzip";
    }
    if (is({'L', 'Z', 'I', 'P'})) {
        return "lzip";
    }
    if (is({0x5d, 0x00, 0x00})) {
        return "lzma";
    }
    if (is({'b', 'e', 'g', 'i', 'n', ' '})) {
        return "uuencode";
    }
    return std::nullopt;
}

[[noreturn]] void refuse_unreadable(const std::string& input, const std::string& what, archive* a) {
    if (auto c = foreign_compression(input)) {
        throw FormatError(input + ": compressed with " + *c +
                          "; image archives are read plain or compressed with gzip, bzip2, xz "
                          "or zstd");
    }
    throw FormatError(input + ": " + what + archive_err(a));
}

// Checks a name taken from an archive entry or from manifest.json and
// returns it cleaned ("./a//b" -> "a/b"). Absolute names and ".." components
// are errors: Docker and the OCI layout only use relative names inside the
// archive.
std::string checked_name(std::string_view raw, const std::string& where) {
    if (raw.empty()) {
        throw FormatError(where + ": empty path");
    }
    if (raw[0] == '/') {
        throw FormatError(where + ": absolute path " + quote_untrusted(raw) +
                          " is not allowed in an image archive");
    }
    std::size_t start = 0;
    while (start <= raw.size()) {
        auto slash = raw.find('/', start);
        std::string_view comp =
            raw.substr(start, slash == std::string_view::npos ? slash : slash - start);
        if (comp == "..") {
            throw FormatError(where + ": path " + quote_untrusted(raw) + " leaves the archive");
        }
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    return clean_path(raw);
}

// The files of an archive or layout directory, by their (clean) names.
class Source {
public:
    virtual ~Source() = default;
    // The path on disk of the regular file `name` refers to (following the
    // archive's links), or nullopt when there is none.
    virtual std::optional<std::string> maybe_file(const std::string& name) const = 0;
    virtual std::string describe() const = 0;

    std::string file(std::string_view raw, const std::string& where) const {
        std::string name = checked_name(raw, where);
        auto p = maybe_file(name);
        if (!p) {
            throw FormatError(where + ": " + quote_untrusted(raw) + " is not in " + describe());
        }
        return *p;
    }
    bool has(const std::string& name) const { return maybe_file(name).has_value(); }
};

class DirSource : public Source {
public:
    explicit DirSource(std::string root) : m_root(std::move(root)) {}
    std::optional<std::string> maybe_file(const std::string& name) const override {
        std::string p = m_root + "/" + name;
        struct stat st {};
        // A layout directory is the user's own: still, only regular files
        // (not symlinks) count as blobs, and no directory on the way (blobs,
        // blobs/sha256) may be a symlink, so nothing outside it is read.
        for (auto slash = name.find('/'); slash != std::string::npos;
             slash = name.find('/', slash + 1)) {
            std::string dir = m_root + "/" + name.substr(0, slash);
            if (::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
                throw FormatError(describe() + ": " + quote_untrusted(name.substr(0, slash)) +
                                  " is a symlink; a layout's directories must be inside it");
            }
        }
        if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
            return std::nullopt;
        }
        return p;
    }
    std::string describe() const override { return "the OCI layout " + m_root; }

private:
    std::string m_root;
};

class ExtractedSource : public Source {
public:
    ExtractedSource(std::string input, std::string work_dir)
        : m_input(std::move(input)), m_work(std::move(work_dir)) {}

    void extract();

    std::optional<std::string> maybe_file(const std::string& start) const override {
        std::string name = start;
        for (int hop = 0; hop <= k_max_link_hops; ++hop) {
            if (auto f = m_files.find(name); f != m_files.end()) {
                return f->second;
            }
            auto l = m_links.find(name);
            if (l == m_links.end()) {
                return std::nullopt;
            }
            name = l->second;
        }
        throw FormatError(m_input + ": " + quote_untrusted(start) + ": too many levels of links");
    }
    std::string describe() const override { return "the archive " + m_input; }

private:
    void extract_file(archive* a, const std::string& name, const std::string& where,
                      std::int64_t size_hint);

    std::string m_input;
    std::string m_work;
    UniqueFd m_work_fd;
    std::map<std::string, std::string> m_files; // name -> path on disk
    std::map<std::string, std::string> m_links; // name -> target name (symlinks, hard links)
};

void ExtractedSource::extract() {
    m_work_fd = fs::open_dir(m_work);
    ReadArchive a(archive_read_new());
    if (!a) {
        throw Error("archive_read_new: out of memory");
    }
    support_archive_filters(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_filename(a.get(), m_input.c_str(), 1 << 16) != ARCHIVE_OK) {
        refuse_unreadable(m_input, "cannot read as a tar archive: ", a.get());
    }
    archive_entry* e = nullptr;
    int count = 0;
    while (true) {
        int r = archive_read_next_header(a.get(), &e);
        if (r == ARCHIVE_EOF) {
            break;
        }
        if (r == ARCHIVE_WARN) {
            // e.g. unknown PAX keywords: the entry itself is fine.
        } else if (r != ARCHIVE_OK) {
            if (count == 0) {
                refuse_unreadable(m_input, "not a tar archive: ", a.get());
            }
            throw FormatError(m_input + ": corrupt tar archive after " + std::to_string(count) +
                              " entries: " + archive_err(a.get()));
        }
        ++count;
        const char* raw = archive_entry_pathname(e);
        if (raw == nullptr) {
            throw FormatError(m_input + ": entry " + std::to_string(count) + " has no name");
        }
        std::string where = m_input + ": entry " + quote_untrusted(raw);
        std::string name = checked_name(raw, where);
        if (name == ".") {
            continue;
        }
        if (const char* hl = archive_entry_hardlink(e)) {
            // Hard link targets are names of earlier entries in the archive.
            std::string target = checked_name(hl, where + " (hard link target)");
            m_files.erase(name);
            m_links[name] = target;
            continue;
        }
        switch (archive_entry_filetype(e)) {
        case AE_IFDIR:
            mkdirs_in_root(m_work_fd.get(), name);
            break;
        case AE_IFREG:
            m_links.erase(name);
            extract_file(a.get(), name, where,
                         archive_entry_size_is_set(e) ? archive_entry_size(e) : -1);
            break;
        case AE_IFLNK: {
            const char* t = archive_entry_symlink(e);
            std::string target = t ? t : "";
            if (target.empty() || target[0] == '/') {
                throw FormatError(where + ": symlink to " + quote_untrusted(target) +
                                  " points outside the archive");
            }
            std::string dir = fs::dirname(name);
            std::string joined = clean_path((dir == "." ? std::string() : dir + "/") + target);
            if (joined == ".." || joined.rfind("../", 0) == 0) {
                throw FormatError(where + ": symlink to " + quote_untrusted(target) +
                                  " points outside the archive");
            }
            m_files.erase(name);
            m_links[name] = joined;
            break;
        }
        default:
            throw FormatError(where + ": unexpected entry type (only files, directories and "
                                      "links belong in an image archive)");
        }
    }
}

void ExtractedSource::extract_file(archive* a, const std::string& name, const std::string& where,
                                   std::int64_t size_hint) {
    // Files are created with open_in_root under the work directory and no
    // links are ever created there, so no name can reach outside it.
    std::string dir = fs::dirname(name);
    UniqueFd parent =
        dir == "." ? dup_cloexec(m_work_fd.get()) : mkdirs_in_root(m_work_fd.get(), dir);
    std::string base = fs::basename(name);
    int fd = ::openat(parent.get(), base.c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw_errno("openat", m_work + "/" + name);
    }
    UniqueFd out(fd);
    const void* buf = nullptr;
    std::size_t size = 0;
    la_int64_t offset = 0;
    while (true) {
        int r = archive_read_data_block(a, &buf, &size, &offset);
        if (r == ARCHIVE_EOF) {
            break;
        }
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            throw FormatError(where + ": " + archive_err(a));
        }
        fs::pwrite_all(out.get(), m_work + "/" + name, buf, size,
                       static_cast<std::uint64_t>(offset));
    }
    // Sparse entries may end in a hole: give the file its full size.
    if (size_hint >= 0 && ::ftruncate(out.get(), size_hint) != 0) {
        throw_errno("ftruncate", m_work + "/" + name);
    }
    out.close();
    m_files[name] = m_work + "/" + name;
}

std::string read_doc(const std::string& path, const std::string& what) {
    struct stat st = fs::lstat(path);
    if (static_cast<std::uint64_t>(st.st_size) > k_max_document_size) {
        throw FormatError(what + ": document is " + std::to_string(st.st_size) +
                          " bytes, more than the limit of " + std::to_string(k_max_document_size));
    }
    return fs::read_file(path, k_max_document_size);
}

// Reads the blob for d from the source and checks its digest.
std::string read_verified_blob(const Source& src, const Descriptor& d, const std::string& where) {
    std::string path = src.file(d.digest.blob_path(), where);
    std::string data = read_doc(path, where);
    Digest actual = Digest::of(data);
    if (actual != d.digest) {
        throw DigestMismatch(where + ": blob " + d.digest.str() + " has digest " + actual.str());
    }
    if (static_cast<std::int64_t>(data.size()) != d.size) {
        throw FormatError(where + ": blob " + d.digest.str() + " is " +
                          std::to_string(data.size()) + " bytes, the descriptor says " +
                          std::to_string(d.size));
    }
    return data;
}

std::string sniff_layer_media_type(const std::string& path) {
    unsigned char magic[4] = {};
    UniqueFd fd = fs::open(path, O_RDONLY);
    std::size_t n = fs::read_full(fd.get(), path, magic, sizeof magic);
    if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        return std::string(media::docker_layer_gzip);
    }
    if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
        return std::string(media::oci_layer_zstd);
    }
    return std::string(media::docker_layer);
}

ArchiveLayer layer_from_descriptor(const Source& src, const Descriptor& d,
                                   const std::string& where) {
    ArchiveLayer l;
    l.path = src.file(d.digest.blob_path(), where);
    struct stat st = fs::lstat(l.path);
    if (st.st_size != d.size) {
        throw FormatError(where + ": layer " + d.digest.str() + " is " +
                          std::to_string(st.st_size) + " bytes, the manifest says " +
                          std::to_string(d.size));
    }
    l.media_type = d.media_type;
    l.descriptor = d;
    return l;
}

// One image from a manifest descriptor of an OCI index; nullopt for an
// artifact (a signature, an SBOM, an attestation: its config is no image config).
std::optional<ArchiveImage> image_from_manifest(const Source& src, const Descriptor& md,
                                                const std::string& where) {
    ArchiveImage img;
    std::string mbytes = read_verified_blob(src, md, where);
    Manifest m = parse_manifest(mbytes, md.digest.str());
    check_media_type_matches(md, m.media_type, where + ": manifest " + md.digest.str());
    if (!is_config_media_type(m.config.media_type)) {
        return std::nullopt;
    }
    img.config = read_verified_blob(src, m.config, "manifest " + md.digest.str() + ": config");
    // Checks the config (and that it is one) before anything is imported.
    parse_image_config(img.config, m.config.digest.str());
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        std::string lw = "manifest " + md.digest.str() + ": layers[" + std::to_string(i) + "]";
        const std::string& mt = m.layers[i].media_type;
        if (is_manifest_media_type(mt) || is_index_media_type(mt) || is_config_media_type(mt)) {
            throw FormatError(where + ": " + lw + " is " + m.layers[i].digest.str() + " of type " +
                              quote_untrusted(mt) + ", not a layer");
        }
        img.layers.push_back(layer_from_descriptor(src, m.layers[i], lw));
    }
    img.manifest = std::move(mbytes);
    return img;
}

std::vector<std::string> names_of(const Descriptor& d) {
    if (auto it = d.annotations.find(k_containerd_name); it != d.annotations.end()) {
        return {it->second};
    }
    if (auto it = d.annotations.find(k_ref_name); it != d.annotations.end()) {
        return {it->second};
    }
    return {};
}

std::vector<ArchiveImage> read_oci(const Source& src, const std::optional<Platform>& want) {
    std::string where_layout = src.describe();
    std::string header = src.file("oci-layout", where_layout);
    parse_layout_header(read_doc(header, where_layout + ": oci-layout"),
                        where_layout + ": oci-layout");
    std::string index_path = src.file("index.json", where_layout);
    Index index = parse_index(read_doc(index_path, where_layout + ": index.json"),
                              where_layout + ": index.json");
    Platform platform = want ? *want : host_platform();
    std::vector<ArchiveImage> images;
    // An image tagged twice appears as two index entries with one digest.
    std::map<Digest, std::size_t> seen;
    for (std::size_t i = 0; i < index.manifests.size(); ++i) {
        const Descriptor& d = index.manifests[i];
        std::string where = where_layout + ": index.json: manifests[" + std::to_string(i) + "]";
        std::optional<Descriptor> chosen;
        if (is_manifest_media_type(d.media_type)) {
            chosen = d;
        } else if (is_index_media_type(d.media_type)) {
            Index nested = parse_index(read_verified_blob(src, d, where), d.digest.str());
            check_media_type_matches(d, nested.media_type, where + ": index " + d.digest.str());
            std::string available;
            for (const auto& nd : nested.manifests) {
                if (is_layer_media_type(nd.media_type)) {
                    throw FormatError(where + ": index " + d.digest.str() + " lists layer " +
                                      nd.digest.str() + "; an index lists manifests");
                }
                if (!is_manifest_media_type(nd.media_type)) {
                    continue;
                }
                if (nd.platform && platform_matches(platform, *nd.platform)) {
                    chosen = nd;
                    break;
                }
                available += (available.empty() ? "" : ", ") +
                             (nd.platform ? to_string(*nd.platform) : std::string("unknown"));
            }
            if (!chosen) {
                throw FormatError(where + ": index " + d.digest.str() + " has no image for " +
                                  to_string(platform) +
                                  " (it has: " + (available.empty() ? "none" : available) + ")");
            }
        } else if (is_layer_media_type(d.media_type) || is_config_media_type(d.media_type)) {
            throw FormatError(where + ": lists " + d.digest.str() + " of type " +
                              quote_untrusted(d.media_type) + "; an index lists manifests");
        } else {
            continue; // artifacts, signatures: not images
        }
        auto names = names_of(d);
        if (auto it = seen.find(chosen->digest); it != seen.end()) {
            auto& existing = images[it->second].names;
            existing.insert(existing.end(), names.begin(), names.end());
            continue;
        }
        auto img = image_from_manifest(src, *chosen, where);
        if (!img) {
            continue;
        }
        img->names = std::move(names);
        seen.emplace(chosen->digest, images.size());
        images.push_back(std::move(*img));
    }
    if (images.empty()) {
        throw FormatError(where_layout + ": index.json lists no images");
    }
    return images;
}

// For Docker 25 archives: the OCI manifest whose config is config_digest.
std::optional<std::pair<std::string, Manifest>> find_oci_manifest(const Source& src,
                                                                  const Digest& config_digest) {
    std::string index_path = src.file("index.json", src.describe());
    Index index = parse_index(read_doc(index_path, "index.json"), "index.json");
    for (const auto& d : index.manifests) {
        if (!is_manifest_media_type(d.media_type)) {
            continue;
        }
        std::string bytes = read_verified_blob(src, d, "index.json");
        Manifest m = parse_manifest(bytes, d.digest.str());
        if (m.config.digest == config_digest) {
            return std::make_pair(std::move(bytes), std::move(m));
        }
    }
    return std::nullopt;
}

std::vector<ArchiveImage> read_docker(const Source& src, const std::string& input) {
    std::string mpath = src.file("manifest.json", input);
    std::string where0 = input + ": manifest.json";
    json doc = parse_json_strict(read_doc(mpath, where0), where0);
    if (!doc.is_array()) {
        throw FormatError(where0 + ": expected an array of images");
    }
    bool has_layout = src.has("oci-layout") && src.has("index.json");
    std::vector<ArchiveImage> images;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const json& e = doc[i];
        std::string where = where0 + ": [" + std::to_string(i) + "]";
        if (!e.is_object()) {
            throw FormatError(where + ": expected an object");
        }
        ArchiveImage img;
        auto cfg = e.find("Config");
        if (cfg == e.end() || !cfg->is_string()) {
            throw FormatError(where + ".Config: expected a string naming the config file");
        }
        std::string cfg_path = src.file(cfg->get<std::string>(), where + ".Config");
        img.config = read_doc(cfg_path, where + ".Config");
        ImageConfig config = parse_image_config(img.config, cfg->get<std::string>());
        if (auto tags = e.find("RepoTags"); tags != e.end() && !tags->is_null()) {
            if (!tags->is_array()) {
                throw FormatError(where + ".RepoTags: expected an array of strings");
            }
            for (std::size_t t = 0; t < tags->size(); ++t) {
                if (!(*tags)[t].is_string()) {
                    throw FormatError(where + ".RepoTags[" + std::to_string(t) +
                                      "]: expected a string");
                }
                img.names.push_back((*tags)[t].get<std::string>());
            }
        }
        auto layers = e.find("Layers");
        if (layers == e.end() || !layers->is_array()) {
            throw FormatError(where + ".Layers: expected an array of layer file names");
        }
        if (layers->size() != config.diff_ids.size()) {
            throw FormatError(where + ".Layers: " + std::to_string(layers->size()) +
                              " layers, but the config has " +
                              std::to_string(config.diff_ids.size()) + " diff IDs");
        }
        std::optional<std::pair<std::string, Manifest>> oci;
        if (has_layout) {
            oci = find_oci_manifest(src, Digest::of(img.config));
            if (oci && oci->second.layers.size() != layers->size()) {
                oci.reset();
            }
        }
        for (std::size_t l = 0; l < layers->size(); ++l) {
            std::string lw = where + ".Layers[" + std::to_string(l) + "]";
            if (!(*layers)[l].is_string()) {
                throw FormatError(lw + ": expected a string");
            }
            ArchiveLayer layer;
            layer.path = src.file((*layers)[l].get<std::string>(), lw);
            if (oci) {
                const Descriptor& d = oci->second.layers[l];
                struct stat st = fs::lstat(layer.path);
                if (st.st_size != d.size) {
                    throw FormatError(lw + ": file is " + std::to_string(st.st_size) +
                                      " bytes, the manifest says " + std::to_string(d.size));
                }
                layer.media_type = d.media_type;
                layer.descriptor = d;
            } else {
                layer.media_type = sniff_layer_media_type(layer.path);
            }
            img.layers.push_back(std::move(layer));
        }
        if (oci) {
            img.manifest = std::move(oci->first);
        }
        images.push_back(std::move(img));
    }
    if (images.empty()) {
        throw FormatError(where0 + ": lists no images");
    }
    return images;
}

// ---- writing -------------------------------------------------------------

class TarOut {
public:
    explicit TarOut(int fd, std::string what) : m_what(std::move(what)) {
        m_a.reset(archive_write_new());
        if (!m_a) {
            throw Error("archive_write_new: out of memory");
        }
        if (archive_write_set_format_pax_restricted(m_a.get()) != ARCHIVE_OK ||
            archive_write_set_bytes_in_last_block(m_a.get(), 1) != ARCHIVE_OK ||
            archive_write_open_fd(m_a.get(), fd) != ARCHIVE_OK) {
            throw Error(m_what + ": " + archive_err(m_a.get()));
        }
    }

    void dir(const std::string& name) {
        if (!m_dirs.insert(name).second) {
            return;
        }
        header(name, AE_IFDIR, 0755, 0);
    }

    void data(const std::string& name, std::string_view bytes) {
        if (!m_files.insert(name).second) {
            return;
        }
        header(name, AE_IFREG, 0644, static_cast<std::int64_t>(bytes.size()));
        write(bytes.data(), bytes.size(), name);
    }

    // Starts a file entry whose content follows through write().
    bool begin_file(const std::string& name, std::int64_t size) {
        if (!m_files.insert(name).second) {
            return false;
        }
        header(name, AE_IFREG, 0644, size);
        return true;
    }

    void write(const void* p, std::size_t n, const std::string& name) {
        const char* c = static_cast<const char*>(p);
        while (n > 0) {
            la_ssize_t w = archive_write_data(m_a.get(), c, n);
            if (w < 0) {
                throw Error(m_what + ": writing " + name + ": " + archive_err(m_a.get()));
            }
            if (w == 0) {
                throw Error(m_what + ": writing " + name + ": more data than the entry's size");
            }
            c += w;
            n -= static_cast<std::size_t>(w);
        }
    }

    void close() {
        if (archive_write_close(m_a.get()) != ARCHIVE_OK) {
            throw Error(m_what + ": " + archive_err(m_a.get()));
        }
    }

private:
    void header(const std::string& name, unsigned type, unsigned mode, std::int64_t size) {
        std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                                   archive_entry_free);
        archive_entry_set_pathname(e.get(), name.c_str());
        archive_entry_set_filetype(e.get(), type);
        archive_entry_set_perm(e.get(), mode);
        archive_entry_set_size(e.get(), size);
        archive_entry_set_mtime(e.get(), 0, 0);
        archive_entry_set_uid(e.get(), 0);
        archive_entry_set_gid(e.get(), 0);
        if (archive_write_header(m_a.get(), e.get()) != ARCHIVE_OK) {
            throw Error(m_what + ": writing " + name + ": " + archive_err(m_a.get()));
        }
    }

    std::string m_what;
    WriteArchive m_a;
    std::set<std::string> m_dirs;
    std::set<std::string> m_files;
};

// Streams a file's bytes to sink, decompressing when decompress is set
// (gzip or zstd, through strata's own decoder: output in bounded pieces
// whatever the ratio), and returns the digest and size of what went out.
template <typename Sink>
std::pair<Digest, std::int64_t> stream_layer(const std::string& path, bool decompress,
                                             Sink&& sink) {
    DigestHasher h;
    std::int64_t total = 0;
    auto out = [&](const void* p, std::size_t n) {
        h.update(p, n);
        sink(p, n);
        total += static_cast<std::int64_t>(n);
    };
    UniqueFd fd = fs::open(path, O_RDONLY);
    std::vector<char> buf(1 << 20);
    std::size_t n = fs::read_full(fd.get(), path, buf.data(), buf.size());
    if (!decompress) {
        while (n > 0) {
            out(buf.data(), n);
            n = fs::read_full(fd.get(), path, buf.data(), buf.size());
        }
        return {h.finish(), total};
    }
    Compression c = detect_compression(buf.data(), n);
    if (c == Compression::none) {
        throw FormatError(path + ": cannot decompress layer: neither gzip nor zstd");
    }
    try {
        auto dec = Decompressor::create(c, out);
        while (n > 0) {
            dec->feed(buf.data(), n);
            n = fs::read_full(fd.get(), path, buf.data(), buf.size());
        }
        dec->finish();
    } catch (const Error& e) {
        throw FormatError(path + ": cannot decompress layer: " + e.what());
    }
    return {h.finish(), total};
}

bool is_compressed_file(const std::string& path) {
    std::string mt = sniff_layer_media_type(path);
    return mt != media::docker_layer;
}

std::string tag_of(const std::string& name) {
    std::string n = name.substr(0, name.find('@'));
    auto colon = n.rfind(':');
    auto slash = n.rfind('/');
    if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
        return "latest";
    }
    return n.substr(colon + 1);
}

std::string make_manifest(const ArchiveWriteImage& img) {
    Manifest m;
    m.media_type = std::string(media::oci_manifest);
    m.config = descriptor_for(media::oci_config, img.config);
    for (const auto& l : img.layers) {
        Descriptor d;
        d.media_type = l.media_type;
        d.digest = l.digest;
        d.size = l.size;
        m.layers.push_back(std::move(d));
    }
    return to_json(m);
}

// The manifest to write for an image in OCI form, checked against the
// image's config and layers so that a mismatch cannot produce a broken
// archive.
std::string manifest_for(const ArchiveWriteImage& img) {
    if (!img.manifest) {
        return make_manifest(img);
    }
    Digest md = Digest::of(*img.manifest);
    Manifest m = parse_manifest(*img.manifest, md.str());
    if (m.config.digest != Digest::of(img.config)) {
        throw Error("manifest " + md.str() + ": config is " + m.config.digest.str() +
                    ", but the config given hashes to " + Digest::of(img.config).str());
    }
    if (m.layers.size() != img.layers.size()) {
        throw Error("manifest " + md.str() + ": has " + std::to_string(m.layers.size()) +
                    " layers, " + std::to_string(img.layers.size()) + " were given");
    }
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        if (m.layers[i].digest != img.layers[i].digest) {
            throw Error("manifest " + md.str() + ": layers[" + std::to_string(i) + "] is " +
                        m.layers[i].digest.str() + ", the file given is " +
                        img.layers[i].digest.str());
        }
    }
    return *img.manifest;
}

void write_docker_to(const std::vector<ArchiveWriteImage>& images, int fd,
                     const std::string& what) {
    TarOut out(fd, what);
    out.dir("blobs");
    out.dir("blobs/sha256");
    ojson manifest_json = ojson::array();
    Index index;
    index.media_type = std::string(media::oci_index);
    std::map<Digest, std::int64_t> layer_sizes; // diff ID -> uncompressed size, once written
    // config digest -> (manifest.json entry, manifest descriptor)
    std::map<Digest, std::pair<std::size_t, Descriptor>> entry_of_config;
    for (const auto& img : images) {
        Manifest m;
        m.media_type = std::string(media::oci_manifest);
        m.config = descriptor_for(media::oci_config, img.config);
        if (auto it = entry_of_config.find(m.config.digest); it != entry_of_config.end()) {
            // The same image under more names: one entry, as docker save does.
            auto& [entry_index, md] = it->second;
            ojson& tags = manifest_json[entry_index]["RepoTags"];
            for (const auto& n : img.names) {
                if (tags.is_null()) {
                    tags = ojson::array();
                }
                tags.push_back(n);
                Descriptor named = md;
                named.annotations[k_containerd_name] = n;
                named.annotations[k_ref_name] = tag_of(n);
                index.manifests.push_back(std::move(named));
            }
            continue;
        }
        ImageConfig cfg = parse_image_config(img.config, m.config.digest.str());
        if (cfg.diff_ids.size() != img.layers.size()) {
            throw Error("image config " + m.config.digest.str() + " has " +
                        std::to_string(cfg.diff_ids.size()) + " diff IDs, " +
                        std::to_string(img.layers.size()) + " layers were given");
        }
        ojson entry = ojson::object();
        entry["Config"] = m.config.digest.blob_path();
        entry["RepoTags"] = img.names.empty() ? ojson(nullptr) : ojson(img.names);
        entry["Layers"] = ojson::array();
        for (std::size_t i = 0; i < img.layers.size(); ++i) {
            const ArchiveWriteLayer& l = img.layers[i];
            if (l.diff_id != cfg.diff_ids[i]) {
                throw Error("layer " + l.digest.str() + ": diff ID " + l.diff_id.str() +
                            " differs from the config's rootfs.diff_ids[" + std::to_string(i) +
                            "] " + cfg.diff_ids[i].str());
            }
            std::string name = l.diff_id.blob_path();
            bool compressed = is_compressed_file(l.path);
            // The tar header needs the size first: for a compressed blob,
            // one pass to measure (and verify), one to write.
            std::int64_t size = 0;
            if (auto known = layer_sizes.find(l.diff_id); known != layer_sizes.end()) {
                size = known->second;
            } else if (l.diff_size) {
                size = *l.diff_size;
            } else if (compressed) {
                auto [d, n] = stream_layer(l.path, true, [](const void*, std::size_t) {});
                if (d != l.diff_id) {
                    throw DigestMismatch("layer " + l.digest.str() + " (" + l.path +
                                         "): uncompressed content has digest " + d.str() +
                                         ", expected diff ID " + l.diff_id.str());
                }
                size = n;
            } else {
                size = fs::lstat(l.path).st_size;
            }
            if (out.begin_file(name, size)) {
                auto [d, n] = stream_layer(l.path, compressed, [&](const void* p, std::size_t k) {
                    out.write(p, k, name);
                });
                if (d != l.diff_id || n != size) {
                    throw DigestMismatch("layer " + l.digest.str() + " (" + l.path +
                                         "): content has digest " + d.str() + " (" +
                                         std::to_string(n) + " bytes), expected diff ID " +
                                         l.diff_id.str() + " (" + std::to_string(size) + " bytes)");
                }
                layer_sizes.emplace(l.diff_id, size);
            }
            Descriptor ld;
            ld.media_type = std::string(media::oci_layer);
            ld.digest = l.diff_id;
            ld.size = size;
            m.layers.push_back(std::move(ld));
            entry["Layers"].push_back(name);
        }
        out.data(m.config.digest.blob_path(), img.config);
        std::string mbytes = to_json(m);
        Descriptor md = descriptor_for(media::oci_manifest, mbytes);
        out.data(md.digest.blob_path(), mbytes);
        if (img.names.empty()) {
            index.manifests.push_back(md);
        }
        for (const auto& n : img.names) {
            Descriptor named = md;
            named.annotations[k_containerd_name] = n;
            named.annotations[k_ref_name] = tag_of(n);
            index.manifests.push_back(std::move(named));
        }
        entry_of_config.emplace(m.config.digest, std::make_pair(manifest_json.size(), md));
        manifest_json.push_back(std::move(entry));
    }
    out.data("index.json", to_json(index));
    out.data("manifest.json", dump_go_style(manifest_json));
    out.data("oci-layout", layout_header_json());
    out.close();
}

void write_oci_to(const std::vector<ArchiveWriteImage>& images, int fd, const std::string& what) {
    TarOut out(fd, what);
    out.dir("blobs");
    out.dir("blobs/sha256");
    Index index;
    index.media_type = std::string(media::oci_index);
    for (const auto& img : images) {
        std::string mbytes = manifest_for(img);
        Manifest m = parse_manifest(mbytes, "manifest");
        for (const auto& l : img.layers) {
            std::string name = l.digest.blob_path();
            if (out.begin_file(name, l.size)) {
                auto [d, n] = stream_layer(
                    l.path, false, [&](const void* p, std::size_t k) { out.write(p, k, name); });
                if (d != l.digest || n != l.size) {
                    throw DigestMismatch("layer " + l.digest.str() + " (" + l.path +
                                         "): content has digest " + d.str() + " (" +
                                         std::to_string(n) + " bytes), expected " + l.digest.str() +
                                         " (" + std::to_string(l.size) + " bytes)");
                }
            }
        }
        out.data(Digest::of(img.config).blob_path(), img.config);
        Descriptor md =
            descriptor_for(m.media_type.empty() ? media::oci_manifest : m.media_type, mbytes);
        out.data(md.digest.blob_path(), mbytes);
        if (img.names.empty()) {
            index.manifests.push_back(md);
        }
        for (const auto& n : img.names) {
            Descriptor named = md;
            named.annotations[k_ref_name] = n;
            index.manifests.push_back(std::move(named));
        }
    }
    out.data("index.json", to_json(index));
    out.data("oci-layout", layout_header_json());
    out.close();
}

template <typename F> void write_atomically(const std::string& out_path, F&& write) {
    AtomicFile f(out_path);
    write(f.fd());
    f.commit();
}

// The compression a layer media type names; nullopt for types that do not
// say (foreign layers).
std::optional<Compression> compression_of_type(std::string_view mt) {
    if (mt == media::oci_layer || mt == media::oci_layer_nd || mt == media::docker_layer) {
        return Compression::none;
    }
    if (mt == media::oci_layer_gzip || mt == media::oci_layer_nd_gzip ||
        mt == media::docker_layer_gzip) {
        return Compression::gzip;
    }
    if (mt == media::oci_layer_zstd || mt == media::oci_layer_nd_zstd) {
        return Compression::zstd;
    }
    return std::nullopt;
}

// Reads every layer of every image once, as an unpack would (TarReader:
// strata's capped decoder and Go's header rules), before anything reaches
// the store: the content's compression must be the one its media type
// names, its digest the descriptor's, its uncompressed digest the config's
// rootfs.diff_ids entry (docker load refuses the same).
void check_layers(const std::vector<ArchiveImage>& images, const std::string& input) {
    std::map<std::string, Digest> diff_id_of; // layer file -> diff ID, once read
    for (const auto& img : images) {
        Digest config_digest = Digest::of(img.config);
        ImageConfig config = parse_image_config(img.config, config_digest.str());
        if (config.diff_ids.size() != img.layers.size()) {
            throw FormatError(input + ": config " + config_digest.str() + " lists " +
                              std::to_string(config.diff_ids.size()) + " diff IDs, the image has " +
                              std::to_string(img.layers.size()) + " layers");
        }
        for (std::size_t i = 0; i < img.layers.size(); ++i) {
            const ArchiveLayer& l = img.layers[i];
            std::string name = input + ": layer " +
                               (l.descriptor ? l.descriptor->digest.str() : fs::basename(l.path));
            auto known = diff_id_of.find(l.path);
            if (known == diff_id_of.end()) {
                UniqueFd fd = fs::open(l.path, O_RDONLY);
                TarReader reader(fd.get(), name);
                auto want = compression_of_type(l.media_type);
                if (want && *want != reader.compression()) {
                    throw FormatError(name + ": the media type " + quote_untrusted(l.media_type) +
                                      " says " + std::string(to_string(*want)) +
                                      ", the content is " +
                                      std::string(to_string(reader.compression())));
                }
                while (reader.next()) {
                }
                LayerDigests d = reader.finish();
                if (l.descriptor && d.blob_digest != l.descriptor->digest) {
                    throw DigestMismatch(name + ": content has digest " + d.blob_digest.str());
                }
                known = diff_id_of.emplace(l.path, d.diff_id).first;
            }
            if (known->second != config.diff_ids[i]) {
                throw FormatError(name + ": uncompressed digest " + known->second.str() +
                                  " differs from the config's rootfs.diff_ids[" +
                                  std::to_string(i) + "] " + config.diff_ids[i].str() +
                                  " (config " + config_digest.str() + ")");
            }
        }
    }
}

} // namespace

std::string_view to_string(ArchiveFormat f) {
    switch (f) {
    case ArchiveFormat::docker_archive:
        return "docker-archive";
    case ArchiveFormat::oci_archive:
        return "oci-archive";
    case ArchiveFormat::oci_layout:
        return "oci";
    }
    return "unknown";
}

namespace {

ArchiveContents read_unchecked(const std::string& input, const std::string& work_dir,
                               const std::optional<Platform>& platform) {
    if (fs::is_dir(input)) {
        DirSource src(input);
        if (src.has("manifest.json") && !src.has("index.json")) {
            return {ArchiveFormat::docker_archive, read_docker(src, input)};
        }
        return {ArchiveFormat::oci_layout, read_oci(src, platform)};
    }
    ExtractedSource src(input, work_dir);
    src.extract();
    if (src.has("manifest.json")) {
        return {ArchiveFormat::docker_archive, read_docker(src, input)};
    }
    if (src.has("oci-layout")) {
        return {ArchiveFormat::oci_archive, read_oci(src, platform)};
    }
    throw FormatError(input +
                      ": not an image archive (it has neither manifest.json nor oci-layout)");
}

} // namespace

ArchiveContents read_image_archive(const std::string& input, const std::string& work_dir,
                                   const std::optional<Platform>& platform) {
    ArchiveContents c = read_unchecked(input, work_dir, platform);
    check_layers(c.images, input);
    return c;
}

ArchiveFormat detect_archive_format(const std::string& input) {
    if (fs::is_dir(input)) {
        return fs::exists(input + "/index.json") || !fs::exists(input + "/manifest.json")
                   ? ArchiveFormat::oci_layout
                   : ArchiveFormat::docker_archive;
    }
    ReadArchive a(archive_read_new());
    if (!a) {
        throw Error("archive_read_new: out of memory");
    }
    support_archive_filters(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_filename(a.get(), input.c_str(), 1 << 16) != ARCHIVE_OK) {
        refuse_unreadable(input, "cannot read as a tar archive: ", a.get());
    }
    archive_entry* e = nullptr;
    bool layout = false;
    int r = 0;
    while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char* p = archive_entry_pathname(e);
        std::string name = p ? clean_path(p) : "";
        if (name == "manifest.json") {
            return ArchiveFormat::docker_archive;
        }
        layout = layout || name == "oci-layout";
    }
    if (r != ARCHIVE_EOF) {
        refuse_unreadable(input, "not a tar archive: ", a.get());
    }
    if (layout) {
        return ArchiveFormat::oci_archive;
    }
    throw FormatError(input +
                      ": not an image archive (it has neither manifest.json nor oci-layout)");
}

void write_docker_archive(const std::vector<ArchiveWriteImage>& images,
                          const std::string& out_path) {
    write_atomically(out_path, [&](int fd) { write_docker_to(images, fd, out_path); });
}
void write_docker_archive(const std::vector<ArchiveWriteImage>& images, int out_fd) {
    write_docker_to(images, out_fd, "docker-archive output");
}
void write_oci_archive(const std::vector<ArchiveWriteImage>& images, const std::string& out_path) {
    write_atomically(out_path, [&](int fd) { write_oci_to(images, fd, out_path); });
}
void write_oci_archive(const std::vector<ArchiveWriteImage>& images, int out_fd) {
    write_oci_to(images, out_fd, "oci-archive output");
}

void write_oci_layout(const std::vector<ArchiveWriteImage>& images, const std::string& dir) {
    OciLayout layout = OciLayout::create(dir);
    Index index = layout.read_index();
    if (index.media_type.empty()) {
        index.media_type = std::string(media::oci_index);
    }
    for (const auto& img : images) {
        std::string mbytes = manifest_for(img);
        Manifest m = parse_manifest(mbytes, "manifest");
        for (const auto& l : img.layers) {
            if (!layout.has_blob(l.digest)) {
                layout.ingest_file(l.path, l.digest, l.size);
            }
        }
        layout.ingest_bytes(img.config, Digest::of(img.config));
        Descriptor md =
            descriptor_for(m.media_type.empty() ? media::oci_manifest : m.media_type, mbytes);
        layout.ingest_bytes(mbytes, md.digest);
        auto add = [&](std::optional<std::string> name) {
            Descriptor d = md;
            if (name) {
                d.annotations[k_ref_name] = *name;
                std::erase_if(index.manifests, [&](const Descriptor& x) {
                    auto it = x.annotations.find(k_ref_name);
                    return it != x.annotations.end() && it->second == *name;
                });
            }
            index.manifests.push_back(std::move(d));
        };
        if (img.names.empty()) {
            add(std::nullopt);
        }
        for (const auto& n : img.names) {
            add(n);
        }
    }
    layout.write_index(index);
}

} // namespace strata::formats
