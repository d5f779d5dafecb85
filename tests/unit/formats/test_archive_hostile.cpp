// Image archives and layouts that docker load refuses: strata refuses them
// before anything reaches a store, naming the layer, digest or file.
#include "archive_fixtures.hpp"
#include "formats/image_archive.hpp"
#include "formats/json.hpp"
#include "formats/layout.hpp"
#include "tests/support/support.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <catch2/catch.hpp>

#include <filesystem>

using namespace strata;
using namespace strata::formats;
using Catch::Matchers::Contains;
using strata::test::TarBuilder;

namespace {

std::string work(const TempDir& t) {
    std::string w = t.path() + "/work";
    fs::mkdirs(w);
    return w;
}

std::string blob(const std::string& c) {
    return Digest::of(c).blob_path();
}

struct Layer {
    std::string stored;     // the blob's bytes
    std::string media_type; // what the manifest says
    std::string tar;        // uncompressed, for the diff ID
};

// An OCI archive of one image; the config's diff IDs are the layers' unless
// given.
std::string oci_archive(const std::vector<Layer>& layers,
                        std::optional<std::vector<Digest>> diff_ids = std::nullopt,
                        std::function<void(Index&, TarBuilder&)> change = {}) {
    ImageConfig c;
    c.architecture = host_platform().architecture;
    c.os = "linux";
    for (const auto& l : layers) {
        c.diff_ids.push_back(Digest::of(l.tar));
    }
    if (diff_ids) {
        c.diff_ids = *diff_ids;
    }
    std::string cfg = to_json(c);
    Manifest m;
    m.media_type = std::string(media::oci_manifest);
    m.config = descriptor_for(media::oci_config, cfg);
    TarBuilder tb;
    for (const auto& l : layers) {
        m.layers.push_back(descriptor_for(l.media_type, l.stored));
        tb.file(blob(l.stored), l.stored);
    }
    std::string mb = to_json(m);
    Index idx;
    idx.manifests = {descriptor_for(media::oci_manifest, mb)};
    tb.file(blob(mb), mb).file(blob(cfg), cfg).file("oci-layout", layout_header_json());
    if (change) {
        change(idx, tb);
    }
    tb.file("index.json", to_json(idx));
    return tb.finish();
}

// Compresses data with a libarchive write filter (as a raw stream).
std::string compress_with(int (*add_filter)(archive*), const std::string& data) {
    archive* a = archive_write_new();
    REQUIRE(a != nullptr);
    std::string out;
    REQUIRE(add_filter(a) == ARCHIVE_OK);
    REQUIRE(archive_write_set_format_raw(a) == ARCHIVE_OK);
    REQUIRE(archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK);
    std::vector<char> buf(data.size() * 2 + 65536);
    std::size_t used = 0;
    REQUIRE(archive_write_open_memory(a, buf.data(), buf.size(), &used) == ARCHIVE_OK);
    archive_entry* e = archive_entry_new();
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    REQUIRE(archive_write_header(a, e) == ARCHIVE_OK);
    REQUIRE(archive_write_data(a, data.data(), data.size()) ==
            static_cast<la_ssize_t>(data.size()));
    archive_entry_free(e);
    REQUIRE(archive_write_close(a) == ARCHIVE_OK);
    archive_write_free(a);
    return std::string(buf.data(), used);
}

} // namespace

TEST_CASE("hostile archives: compression other than gzip, bzip2, xz, zstd is refused by name",
          "[archive][hostile]") {
    TempDir t;
    std::string tar = TarBuilder().file("oci-layout", layout_header_json()).finish();
    std::string in = t.path() + "/in.tar.Z";
    test::write_file(in, compress_with(archive_write_add_filter_compress, tar));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)),
                      Contains(in + ": compressed with compress (.Z)") &&
                          Contains("gzip, bzip2, xz or zstd"));
    CHECK_THROWS_WITH(detect_archive_format(in), Contains("compressed with compress (.Z)"));
    std::string lz = t.path() + "/in.tar.lz4";
    test::write_file(lz, compress_with(archive_write_add_filter_lz4, tar));
    CHECK_THROWS_WITH(read_image_archive(lz, work(t)), Contains(lz + ": compressed with lz4"));
    // The four named filters still read.
    for (auto f : {archive_write_add_filter_gzip, archive_write_add_filter_bzip2,
                   archive_write_add_filter_xz, archive_write_add_filter_zstd}) {
        std::string ok = t.path() + "/ok.tar.x";
        std::string layer = TarBuilder().file("a", "1").finish();
        test::write_file(
            ok, compress_with(f, oci_archive({{layer, std::string(media::oci_layer), layer}})));
        CHECK(read_image_archive(ok, work(t)).images.size() == 1);
    }
}

TEST_CASE("hostile archives: diff IDs must be the layers' uncompressed digests",
          "[archive][hostile]") {
    TempDir t;
    std::string l1 = TarBuilder().file("a", "1").finish();
    std::string l2 = TarBuilder().file("b", "2").finish();
    std::string gz = test::gzip(l2);
    std::string in = t.path() + "/in.tar";
    test::write_file(in, oci_archive({{l1, std::string(media::oci_layer), l1},
                                      {gz, std::string(media::oci_layer_gzip), l2}},
                                     std::vector<Digest>{Digest::of(l1), Digest::of(l1)}));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)),
                      Contains("layer " + Digest::of(gz).str()) &&
                          Contains("uncompressed digest " + Digest::of(l2).str()) &&
                          Contains("rootfs.diff_ids[1] " + Digest::of(l1).str()));
    test::write_file(in, oci_archive({{l1, std::string(media::oci_layer), l1}},
                                     std::vector<Digest>{Digest::of(l1), Digest::of(l2)}));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)), Contains("lists 2 diff IDs"));
}

TEST_CASE("hostile archives: a media type must name the content's compression",
          "[archive][hostile]") {
    TempDir t;
    std::string l = TarBuilder().file("a", "1").finish();
    std::string gz = test::gzip(l);
    std::string in = t.path() + "/in.tar";
    test::write_file(in, oci_archive({{l, std::string(media::oci_layer_gzip), l}}));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)), Contains("layer " + Digest::of(l).str()) &&
                                                           Contains("says gzip") &&
                                                           Contains("content is none"));
    test::write_file(in, oci_archive({{gz, std::string(media::oci_layer), l}}));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)), Contains("layer " + Digest::of(gz).str()) &&
                                                           Contains("says none") &&
                                                           Contains("content is gzip"));
    test::write_file(in, oci_archive({{gz, std::string(media::oci_layer_zstd), l}}));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)), Contains("says zstd"));
}

TEST_CASE("hostile archives: a layer with a hostile tar header is refused at load",
          "[archive][hostile]") {
    TempDir t;
    std::string l = TarBuilder().file("a", "1").file("b", "2").finish();
    l[512 + 512] ^= 1; // the second header's name, after its checksum was computed
    std::string in = t.path() + "/in.tar";
    test::write_file(in, oci_archive({{l, std::string(media::oci_layer), l}}));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)), Contains("layer " + Digest::of(l).str()) &&
                                                           Contains("bad header checksum") &&
                                                           Contains("after entry \"a\""));
}

TEST_CASE("hostile archives: an index that lists layers, a manifest that lists manifests",
          "[archive][hostile]") {
    TempDir t;
    std::string l = TarBuilder().file("a", "1").finish();
    std::string in = t.path() + "/in.tar";
    test::write_file(in,
                     oci_archive({{l, std::string(media::oci_layer), l}}, std::nullopt,
                                 [&](Index& idx, TarBuilder&) {
                                     idx.manifests.push_back(descriptor_for(media::oci_layer, l));
                                 }));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)),
                      Contains("index.json: manifests[1]: lists " + Digest::of(l).str()) &&
                          Contains("an index lists manifests"));
    // A manifest whose layers name a manifest.
    std::string inner = to_json(Manifest{});
    test::write_file(in, oci_archive({{inner, std::string(media::oci_manifest), inner}}));
    CHECK_THROWS_WITH(read_image_archive(in, work(t)),
                      Contains("layers[0] is " + Digest::of(inner).str()) &&
                          Contains("not a layer"));
}

TEST_CASE("hostile archives: an OCI layout whose blobs directory is a symlink is refused",
          "[archive][hostile]") {
    TempDir t;
    std::string l = TarBuilder().file("a", "1").finish();
    std::string in = t.path() + "/in.tar";
    test::write_file(in, oci_archive({{l, std::string(media::oci_layer), l}}));
    // Unpack it as a layout directory whose blobs live elsewhere.
    std::string layout = t.path() + "/layout";
    std::string elsewhere = t.path() + "/elsewhere";
    fs::mkdirs(layout);
    fs::mkdirs(elsewhere);
    REQUIRE(run_capture({"tar", "-xf", in, "-C", elsewhere}).status.success());
    for (std::string f : {"oci-layout", "index.json"}) {
        std::filesystem::rename(elsewhere + "/" + f, layout + "/" + f);
    }
    std::filesystem::create_directory_symlink(elsewhere + "/blobs", layout + "/blobs");
    CHECK_THROWS_WITH(read_image_archive(layout, work(t)), Contains("\"blobs\" is a symlink"));
    std::filesystem::remove(layout + "/blobs");
    fs::mkdirs(layout + "/blobs");
    std::filesystem::create_directory_symlink(elsewhere + "/blobs/sha256",
                                              layout + "/blobs/sha256");
    CHECK_THROWS_WITH(read_image_archive(layout, work(t)),
                      Contains("\"blobs/sha256\" is a symlink"));
}
