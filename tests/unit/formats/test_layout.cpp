#include "formats/layout.hpp"
#include "formats/media_types.hpp"
#include "tests/support/support.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

using namespace strata;
using namespace strata::formats;

namespace {
std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    REQUIRE(d != nullptr);
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") {
            out.push_back(n);
        }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

template <typename E, typename F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "(no error)";
}
} // namespace

TEST_CASE("OCI layout: create, open, index round trip", "[layout]") {
    TempDir t;
    std::string root = t.path() + "/layout";
    OciLayout l = OciLayout::create(root);
    CHECK(test::read_file(root + "/oci-layout") == R"({"imageLayoutVersion":"1.0.0"})");
    CHECK(
        test::read_file(root + "/index.json") ==
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})");
    CHECK(fs::is_dir(root + "/blobs/sha256"));
    Index idx = l.read_index();
    CHECK(idx.manifests.empty());
    Descriptor d = descriptor_for(media::oci_manifest, "{}");
    d.annotations["org.opencontainers.image.ref.name"] = "app:1";
    idx.manifests.push_back(d);
    l.write_index(idx);
    CHECK(OciLayout::open(root).read_index() == idx);
    // create() on an existing layout keeps its index.
    CHECK(OciLayout::create(root).read_index() == idx);
    // No temporary files are left behind.
    CHECK(list_dir(root) == std::vector<std::string>{"blobs", "index.json", "oci-layout"});
}

TEST_CASE("OCI layout: open rejects directories that are not layouts", "[layout]") {
    TempDir t;
    CHECK(error_of<FormatError>([&] { OciLayout::open(t.path()); }) ==
          "OCI layout " + t.path() + ": no oci-layout file");
    test::write_file(t.path() + "/oci-layout", R"({"imageLayoutVersion":"9"})");
    CHECK(error_of<FormatError>([&] { OciLayout::open(t.path()); }).find("imageLayoutVersion") !=
          std::string::npos);
    CHECK(error_of<FormatError>([&] { OciLayout::open(t.path() + "/missing"); }) ==
          "OCI layout " + t.path() + "/missing: not a directory");
    test::write_file(t.path() + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    auto l = OciLayout::open(t.path());
    CHECK(error_of<Error>([&] { l.read_index(); }).find("index.json") != std::string::npos);
}

TEST_CASE("OCI layout: ingest publishes verified blobs atomically", "[layout]") {
    TempDir t;
    OciLayout l = OciLayout::create(t.path() + "/L");
    std::string tmp = t.path() + "/L/tmp";
    fs::mkdirs(tmp);
    Digest d = l.ingest_bytes("hello", Digest::of("hello"), tmp);
    CHECK(d == Digest::of("hello"));
    CHECK(l.has_blob(d));
    CHECK(test::read_file(l.blob_path(d)) == "hello");
    CHECK(l.read_blob(d) == "hello");
    CHECK(list_dir(tmp).empty());

    // A stream from an fd, with size.
    test::write_file(t.path() + "/src", std::string(3 << 20, 'x'));
    Digest big = Digest::of(std::string(3 << 20, 'x'));
    CHECK(l.ingest_file(t.path() + "/src", big, 3 << 20, tmp) == big);
    CHECK(l.list_blobs() == std::vector<Digest>{std::min(big, d), std::max(big, d)});
}

TEST_CASE("OCI layout: a digest mismatch names both digests and publishes nothing", "[layout]") {
    TempDir t;
    OciLayout l = OciLayout::create(t.path() + "/L");
    std::string tmp = t.path() + "/tmp";
    fs::mkdirs(tmp);
    Digest claimed = Digest::of("expected content");
    std::string e = error_of<DigestMismatch>([&] { l.ingest_bytes("evil", claimed, tmp); });
    CHECK(e == "blob " + claimed.str() + ": digest mismatch: expected " + claimed.str() + ", got " +
                   Digest::of("evil").str() + " (4 bytes)");
    CHECK(!l.has_blob(claimed));
    CHECK(!l.has_blob(Digest::of("evil")));
    CHECK(list_dir(t.path() + "/L/blobs/sha256").empty());
    CHECK(list_dir(tmp).empty());

    // Longer than announced: stops reading, nothing published.
    test::write_file(t.path() + "/src", std::string(5 << 20, 'y'));
    e = error_of<DigestMismatch>([&] { l.ingest_file(t.path() + "/src", std::nullopt, 100, tmp); });
    CHECK(e.find("size mismatch: expected 100 bytes") != std::string::npos);
    CHECK(e.find(t.path() + "/src") != std::string::npos);
    CHECK(list_dir(t.path() + "/L/blobs/sha256").empty());
    CHECK(list_dir(tmp).empty());
}

TEST_CASE("OCI layout: reading a corrupted blob is an error", "[layout]") {
    TempDir t;
    OciLayout l = OciLayout::create(t.path());
    Digest d = l.ingest_bytes("good");
    test::write_file(l.blob_path(d), "bad!");
    CHECK(error_of<DigestMismatch>([&] { l.read_blob(d); }).find("expected " + d.str()) !=
          std::string::npos);
    // Junk in blobs/sha256 is not listed.
    test::write_file(t.path() + "/blobs/sha256/not-a-digest", "");
    CHECK(l.list_blobs() == std::vector<Digest>{d});
    CHECK(!l.maybe_open_blob(Digest::of("absent")));
    CHECK_THROWS_AS(l.open_blob(Digest::of("absent")), SysError);
}

TEST_CASE("OCI layout: BlobWriter for producers that hash themselves", "[layout]") {
    TempDir t;
    OciLayout l = OciLayout::create(t.path());
    {
        BlobWriter w(l, t.path());
        fs::write_all(w.fd(), "raw bytes");
        w.commit_trusted(Digest::of("raw bytes"));
    }
    CHECK(l.read_blob(Digest::of("raw bytes")) == "raw bytes");
    {
        // An abandoned writer leaves nothing.
        BlobWriter w(l, t.path());
        w.write("partial");
    }
    CHECK(list_dir(t.path()) == std::vector<std::string>{"blobs", "index.json", "oci-layout"});
}
