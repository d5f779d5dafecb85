#include "formats/layout.hpp"

#include "util/atomic_file.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace strata::formats {

namespace {

std::string mismatch_text(const std::string& what, const Digest& expected, const Digest& actual,
                          std::uint64_t size) {
    return what + ": digest mismatch: expected " + expected.str() + ", got " + actual.str() + " (" +
           std::to_string(size) + " bytes)";
}

} // namespace

// ---- BlobWriter --------------------------------------------------------------

BlobWriter::BlobWriter(const OciLayout& layout, const std::string& tmp_dir)
    : m_root(layout.root()),
      m_file(AtomicFile::in_dir(tmp_dir.empty() ? layout.root() : tmp_dir, ".strata-blob")) {}

void BlobWriter::write(const void* data, std::size_t size) {
    m_hasher.update(data, size);
    m_file.write(std::string_view(static_cast<const char*>(data), size));
    m_size += size;
}

Digest BlobWriter::commit(const std::optional<Digest>& expected,
                          std::optional<std::int64_t> expected_size) {
    Digest actual = m_hasher.finish();
    if (expected && *expected != actual) {
        throw DigestMismatch(mismatch_text("blob " + expected->str(), *expected, actual, m_size));
    }
    if (expected_size && static_cast<std::uint64_t>(*expected_size) != m_size) {
        throw DigestMismatch("blob " + actual.str() + ": size mismatch: expected " +
                             std::to_string(*expected_size) + " bytes, got " +
                             std::to_string(m_size));
    }
    publish(actual);
    return actual;
}

void BlobWriter::commit_trusted(const Digest& digest) {
    publish(digest);
}

void BlobWriter::publish(const Digest& digest) {
    std::string dest = m_root + "/" + digest.blob_path();
    // A blob already present under this digest is replaced by identical,
    // verified bytes: rename is atomic, readers see one or the other.
    m_file.commit_as(dest);
    fs::fsync_dir(fs::dirname(dest));
}

// ---- OciLayout ---------------------------------------------------------------

OciLayout OciLayout::open(const std::string& root) {
    if (!fs::is_dir(root)) {
        throw FormatError("OCI layout " + root + ": not a directory");
    }
    std::string header_path = root + "/oci-layout";
    if (!fs::exists(header_path)) {
        throw FormatError("OCI layout " + root + ": no oci-layout file");
    }
    parse_layout_header(fs::read_file(header_path, 4096), header_path);
    return OciLayout(root);
}

OciLayout OciLayout::create(const std::string& root) {
    fs::mkdirs(root + "/blobs/sha256");
    std::string header_path = root + "/oci-layout";
    if (!fs::exists(header_path)) {
        fs::write_file_atomic(header_path, layout_header_json());
    }
    OciLayout layout = open(root);
    if (!fs::exists(layout.index_path())) {
        Index empty;
        empty.media_type = "application/vnd.oci.image.index.v1+json";
        layout.write_index(empty);
    }
    return layout;
}

bool OciLayout::has_blob(const Digest& d) const {
    struct stat st {};
    return ::lstat(blob_path(d).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<UniqueFd> OciLayout::maybe_open_blob(const Digest& d) const {
    std::string p = blob_path(d);
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            return std::nullopt;
        }
        throw_errno("open", p);
    }
    return UniqueFd(fd);
}

UniqueFd OciLayout::open_blob(const Digest& d) const {
    return fs::open(blob_path(d), O_RDONLY | O_NOFOLLOW);
}

std::string OciLayout::read_blob(const Digest& d, std::size_t max_size) const {
    std::string data = fs::read_file(blob_path(d), max_size);
    Digest actual = Digest::of(data);
    if (actual != d) {
        throw DigestMismatch(mismatch_text(blob_path(d), d, actual, data.size()));
    }
    return data;
}

std::vector<Digest> OciLayout::list_blobs() const {
    std::string dir = m_root + "/blobs/sha256";
    std::vector<Digest> out;
    UniqueFd fd = fs::open_dir(dir);
    DIR* dp = ::fdopendir(fd.get());
    if (dp == nullptr) {
        throw_errno("opendir", dir);
    }
    (void)fd.release(); // owned by dp now
    errno = 0;
    while (struct dirent* e = ::readdir(dp)) {
        if (auto dg = Digest::try_parse(std::string("sha256:") + e->d_name)) {
            out.push_back(*dg);
        }
    }
    int err = errno;
    ::closedir(dp);
    if (err != 0) {
        throw SysError("readdir", dir, err);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Index OciLayout::read_index() const {
    std::string p = index_path();
    return parse_index(fs::read_file(p, k_max_document_size + 1), p);
}

void OciLayout::write_index(const Index& index) const {
    AtomicFile f(index_path());
    f.write(to_json(index));
    f.commit();
    fs::fsync_dir(m_root);
}

Digest OciLayout::ingest(int in_fd, const std::optional<Digest>& expected,
                         std::optional<std::int64_t> expected_size,
                         const std::string& tmp_dir) const {
    BlobWriter w(*this, tmp_dir);
    std::vector<char> buf(1 << 20);
    while (true) {
        ssize_t n = ::read(in_fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("read", expected ? "blob " + expected->str() : std::string("blob input"));
        }
        if (n == 0) {
            break;
        }
        w.write(buf.data(), static_cast<std::size_t>(n));
        if (expected_size && w.size() > static_cast<std::uint64_t>(*expected_size)) {
            throw DigestMismatch("blob " + (expected ? expected->str() : std::string("input")) +
                                 ": size mismatch: expected " + std::to_string(*expected_size) +
                                 " bytes, got more");
        }
    }
    return w.commit(expected, expected_size);
}

Digest OciLayout::ingest_bytes(std::string_view data, const std::optional<Digest>& expected,
                               const std::string& tmp_dir) const {
    BlobWriter w(*this, tmp_dir);
    w.write(data);
    return w.commit(expected);
}

Digest OciLayout::ingest_file(const std::string& path, const std::optional<Digest>& expected,
                              std::optional<std::int64_t> expected_size,
                              const std::string& tmp_dir) const {
    UniqueFd fd = fs::open(path, O_RDONLY);
    try {
        return ingest(fd.get(), expected, expected_size, tmp_dir);
    } catch (const DigestMismatch& e) {
        throw DigestMismatch(path + ": " + e.what());
    }
}

} // namespace strata::formats
