#include "archive_fixtures.hpp"
#include "formats/image_archive.hpp"
#include "formats/json.hpp"
#include "formats/layout.hpp"
#include "tests/support/support.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <zstd.h>

#include <filesystem>
#include <random>

using namespace strata;
using namespace strata::formats;
using strata::test::TarBuilder;

namespace {

template <typename E = FormatError, typename F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "(no error)";
}

std::string work(const TempDir& t) {
    std::string w = t.path() + "/work";
    fs::mkdirs(w);
    return w;
}

// Lists a tar with libarchive-independent means (GNU tar is always present).
std::string tar_list(const std::string& path) {
    auto r = run_capture({"tar", "-tvf", path});
    REQUIRE(r.status.success());
    return r.out;
}

std::string config_for(const std::vector<std::string>& layer_tars) {
    ImageConfig c;
    c.architecture = "amd64";
    c.os = "linux";
    for (const auto& l : layer_tars) {
        c.diff_ids.push_back(Digest::of(l));
    }
    return to_json(c);
}

} // namespace

TEST_CASE("docker-archive: writer output reads back (Docker 25 form)", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string out = t.path() + "/img.tar";
    write_docker_archive({s.image}, out);
    std::string listing = tar_list(out);
    CHECK(listing.find("manifest.json") != std::string::npos);
    CHECK(listing.find("oci-layout") != std::string::npos);
    CHECK(listing.find("index.json") != std::string::npos);
    CHECK(listing.find("blobs/sha256/" + std::string(Digest::of(s.layer2_tar).hex())) !=
          std::string::npos);
    CHECK(detect_archive_format(out) == ArchiveFormat::docker_archive);

    auto c = read_image_archive(out, work(t));
    CHECK(c.format == ArchiveFormat::docker_archive);
    REQUIRE(c.images.size() == 1);
    const auto& img = c.images[0];
    CHECK(img.names == std::vector<std::string>{"example.com/app:1.0"});
    CHECK(img.config == s.image.config);
    REQUIRE(img.manifest);
    REQUIRE(img.layers.size() == 2);
    // Layers come out uncompressed, named by diff ID, with the OCI tar type.
    CHECK(test::read_file(img.layers[0].path) == s.layer1_tar);
    CHECK(test::read_file(img.layers[1].path) == s.layer2_tar);
    CHECK(img.layers[1].media_type == media::oci_layer);
    REQUIRE(img.layers[1].descriptor);
    CHECK(img.layers[1].descriptor->digest == Digest::of(s.layer2_tar));
    Manifest m = parse_manifest(*img.manifest, "m");
    CHECK(m.config.digest == Digest::of(s.image.config));

    // manifest.json is what docker load reads.
    auto mj = nlohmann::json::parse(test::read_file(work(t) + "/manifest.json"));
    CHECK(mj[0]["Config"] == Digest::of(s.image.config).blob_path());
    CHECK(mj[0]["RepoTags"][0] == "example.com/app:1.0");
    CHECK(mj[0]["Layers"][1] == Digest::of(s.layer2_tar).blob_path());
    auto idx = parse_index(test::read_file(work(t) + "/index.json"), "i");
    CHECK(idx.manifests.at(0).annotations.at("org.opencontainers.image.ref.name") == "1.0");
    CHECK(idx.manifests.at(0).annotations.at("io.containerd.image.name") == "example.com/app:1.0");
}

TEST_CASE("docker-archive: writing is deterministic", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    write_docker_archive({s.image}, t.path() + "/a.tar");
    write_docker_archive({s.image}, t.path() + "/b.tar");
    CHECK(test::read_file(t.path() + "/a.tar") == test::read_file(t.path() + "/b.tar"));
}

TEST_CASE("oci-archive: writer output reads back with blobs unchanged", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    auto second = s.image;
    second.names = {"other:tag"};
    std::string out = t.path() + "/img.tar";
    write_oci_archive({s.image, second}, out);
    CHECK(detect_archive_format(out) == ArchiveFormat::oci_archive);
    auto c = read_image_archive(out, work(t));
    CHECK(c.format == ArchiveFormat::oci_archive);
    REQUIRE(c.images.size() == 1); // the same manifest under two names
    const auto& img = c.images[0];
    CHECK(img.names == std::vector<std::string>{"example.com/app:1.0", "other:tag"});
    CHECK(img.config == s.image.config);
    REQUIRE(img.layers.size() == 2);
    CHECK(img.layers[1].media_type == media::oci_layer_gzip);
    CHECK(Digest::of(test::read_file(img.layers[1].path)) == s.image.layers[1].digest);
}

TEST_CASE("OCI layout directory: write and read", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string dir = t.path() + "/layout";
    write_oci_layout({s.image}, dir);
    // Writing again under the same name replaces the index entry.
    write_oci_layout({s.image}, dir);
    CHECK(OciLayout::open(dir).read_index().manifests.size() == 1);
    CHECK(detect_archive_format(dir) == ArchiveFormat::oci_layout);
    auto c = read_image_archive(dir, work(t));
    CHECK(c.format == ArchiveFormat::oci_layout);
    REQUIRE(c.images.size() == 1);
    CHECK(c.images[0].layers[0].path == dir + "/" + s.image.layers[0].digest.blob_path());
}

TEST_CASE("docker-archive: classic form with layer symlinks", "[archive]") {
    TempDir t;
    std::string layer = TarBuilder().file("a", "1").finish();
    std::string cfg = config_for({layer, layer});
    std::string cfg_name = std::string(Digest::of(cfg).hex()) + ".json";
    std::string mj =
        R"([{"Config":")" + cfg_name +
        R"(","RepoTags":["busybox:latest","busybox:1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}])";
    std::string tar = TarBuilder()
                          .dir("aaa")
                          .file("aaa/layer.tar", layer)
                          .file("aaa/VERSION", "1.0")
                          .dir("bbb")
                          .symlink("bbb/layer.tar", "../aaa/layer.tar")
                          .file(cfg_name, cfg)
                          .file("manifest.json", mj)
                          .file("repositories", "{}")
                          .finish();
    test::write_file(t.path() + "/classic.tar", tar);
    auto c = read_image_archive(t.path() + "/classic.tar", work(t));
    REQUIRE(c.images.size() == 1);
    CHECK(c.images[0].names == std::vector<std::string>{"busybox:latest", "busybox:1"});
    CHECK(!c.images[0].manifest);
    REQUIRE(c.images[0].layers.size() == 2);
    CHECK(c.images[0].layers[0].path == c.images[0].layers[1].path);
    CHECK(c.images[0].layers[0].media_type == media::docker_layer);
    CHECK(test::read_file(c.images[0].layers[1].path) == layer);

    // Also when the whole archive is gzip-compressed (docker save | gzip).
    test::write_file(t.path() + "/classic.tar.gz", test::gzip(tar));
    TempDir t2;
    auto c2 = read_image_archive(t.path() + "/classic.tar.gz", work(t2));
    CHECK(c2.images.at(0).config == cfg);
}

TEST_CASE("hostile archives are rejected naming the entry, and nothing escapes",
          "[archive][hostile]") {
    TempDir t;
    std::string layer = TarBuilder().file("a", "1").finish();
    std::string cfg = config_for({layer});
    auto attempt = [&](const std::string& tar) {
        test::write_file(t.path() + "/in.tar", tar);
        std::string w = t.path() + "/w";
        fs::remove_all(w);
        fs::mkdirs(w);
        return error_of([&] { read_image_archive(t.path() + "/in.tar", w); });
    };
    std::string archive = t.path() + "/in.tar";

    SECTION("../ in manifest.json Layers") {
        std::string e = attempt(
            TarBuilder()
                .file("c.json", cfg)
                .file("manifest.json", R"([{"Config":"c.json","Layers":["../../etc/passwd"]}])")
                .finish());
        CHECK(e == archive + ": manifest.json: [0].Layers[0]: path \"../../etc/passwd\" leaves "
                             "the archive");
    }
    SECTION("../ in manifest.json Config") {
        std::string e =
            attempt(TarBuilder()
                        .file("manifest.json", R"([{"Config":"x/../../c.json","Layers":[]}])")
                        .finish());
        CHECK(e == archive + ": manifest.json: [0].Config: path \"x/../../c.json\" leaves the "
                             "archive");
    }
    SECTION("absolute path in manifest.json") {
        std::string e =
            attempt(TarBuilder()
                        .file("c.json", cfg)
                        .file("manifest.json", R"([{"Config":"c.json","Layers":["/etc/passwd"]}])")
                        .finish());
        CHECK(e == archive + ": manifest.json: [0].Layers[0]: absolute path \"/etc/passwd\" is "
                             "not allowed in an image archive");
    }
    SECTION("absolute entry name") {
        std::string e = attempt(TarBuilder().file("/tmp/strata-evil", "x").finish());
        CHECK(e == archive + ": entry \"/tmp/strata-evil\": absolute path \"/tmp/strata-evil\" "
                             "is not allowed in an image archive");
        CHECK(!fs::exists("/tmp/strata-evil"));
    }
    SECTION("../ entry name") {
        std::string e = attempt(TarBuilder().file("a/../../evil", "x").finish());
        CHECK(e == archive + ": entry \"a/../../evil\": path \"a/../../evil\" leaves the archive");
        CHECK(!fs::exists(t.path() + "/evil"));
    }
    SECTION("symlink escaping the archive, then a write through it") {
        std::string e =
            attempt(TarBuilder().symlink("link", "../../..").file("link/evil", "x").finish());
        CHECK(e == archive + ": entry \"link\": symlink to \"../../..\" points outside the "
                             "archive");
    }
    SECTION("absolute symlink") {
        std::string e = attempt(TarBuilder().symlink("layer.tar", "/etc/passwd").finish());
        CHECK(e == archive + ": entry \"layer.tar\": symlink to \"/etc/passwd\" points outside "
                             "the archive");
    }
    SECTION("hard link to outside") {
        std::string e = attempt(TarBuilder().hardlink("h", "../outside").finish());
        CHECK(e == archive + ": entry \"h\" (hard link target): path \"../outside\" leaves the "
                             "archive");
    }
    SECTION("device or fifo entry") {
        std::string e = attempt(TarBuilder().fifo("p").finish());
        CHECK(e.find("entry \"p\": unexpected entry type") != std::string::npos);
    }
    SECTION("manifest.json names a missing file") {
        std::string e = attempt(
            TarBuilder()
                .file("c.json", cfg)
                .file("manifest.json", R"([{"Config":"c.json","Layers":["nope/layer.tar"]}])")
                .finish());
        CHECK(e == archive +
                       ": manifest.json: [0].Layers[0]: \"nope/layer.tar\" is not in the "
                       "archive " +
                       archive);
    }
    SECTION("layer count differs from the config") {
        std::string e = attempt(
            TarBuilder()
                .file("c.json", cfg)
                .file("l.tar", layer)
                .file("manifest.json", R"([{"Config":"c.json","Layers":["l.tar","l.tar"]}])")
                .finish());
        CHECK(e ==
              archive + ": manifest.json: [0].Layers: 2 layers, but the config has 1 diff IDs");
    }
    SECTION("symlink loop") {
        std::string e =
            attempt(TarBuilder()
                        .file("c.json", cfg)
                        .symlink("a", "b")
                        .symlink("b", "a")
                        .file("manifest.json", R"([{"Config":"c.json","Layers":["a"]}])")
                        .finish());
        CHECK(e.find("too many levels of links") != std::string::npos);
    }
    SECTION("not an archive") {
        std::string e = attempt("this is not a tar file at all, not even close......");
        CHECK(e.find(archive + ": ") == 0);
    }
    SECTION("neither docker nor OCI") {
        std::string e = attempt(TarBuilder().file("README", "hi").finish());
        CHECK(e ==
              archive + ": not an image archive (it has neither manifest.json nor oci-layout)");
    }
    // Nothing was created next to the work directory.
    auto listing = run_capture({"ls", "-A", t.path()}).out;
    CHECK((listing == "in.tar\nw\n"));
}

TEST_CASE("OCI archives with blobs that do not match their digests are rejected",
          "[archive][hostile]") {
    TempDir t;
    std::string layer = TarBuilder().file("a", "1").finish();
    std::string cfg = config_for({layer});
    Manifest m;
    m.media_type = std::string(media::oci_manifest);
    m.config = descriptor_for(media::oci_config, cfg);
    m.layers = {descriptor_for(media::oci_layer, layer)};
    std::string mb = to_json(m);
    Index idx;
    idx.manifests = {descriptor_for(media::oci_manifest, mb)};
    auto blob = [](const std::string& c) { return Digest::of(c).blob_path(); };
    auto build = [&](const std::string& cfg_content, const std::string& layer_content) {
        return TarBuilder()
            .file("oci-layout", layout_header_json())
            .file("index.json", to_json(idx))
            .file(blob(mb), mb)
            .file(blob(cfg), cfg_content)
            .file(blob(layer), layer_content)
            .finish();
    };
    std::string archive = t.path() + "/in.tar";
    test::write_file(archive, build(cfg, layer));
    CHECK(read_image_archive(archive, work(t)).images.size() == 1);

    std::string bad_cfg = cfg;
    bad_cfg[bad_cfg.size() - 2] = ' ';
    test::write_file(archive, build(bad_cfg, layer));
    TempDir t2;
    std::string e = error_of<DigestMismatch>([&] { read_image_archive(archive, work(t2)); });
    CHECK(e.find("config: blob " + m.config.digest.str() + " has digest " +
                 Digest::of(bad_cfg).str()) != std::string::npos);

    test::write_file(archive, build(cfg, layer + "extra"));
    TempDir t3;
    e = error_of([&] { read_image_archive(archive, work(t3)); });
    CHECK(e.find("layers[0]: layer " + m.layers[0].digest.str() + " is " +
                 std::to_string(layer.size() + 5) + " bytes, the manifest says " +
                 std::to_string(layer.size())) != std::string::npos);
}

TEST_CASE("OCI index with several platforms: the host's image is chosen", "[archive]") {
    TempDir t;
    std::string layer = TarBuilder().file("a", "1").finish();
    std::string cfg = config_for({layer});
    Manifest m;
    m.media_type = std::string(media::oci_manifest);
    m.config = descriptor_for(media::oci_config, cfg);
    m.layers = {descriptor_for(media::oci_layer, layer)};
    std::string mb = to_json(m);
    Descriptor host = descriptor_for(media::oci_manifest, mb);
    host.platform = host_platform();
    Descriptor other = descriptor_for(media::oci_manifest, "{}");
    other.platform = Platform{"s390x", "linux", "", {}, ""};
    Index nested;
    nested.media_type = std::string(media::oci_index);
    nested.manifests = {other, host};
    std::string nb = to_json(nested);
    Index top;
    top.media_type = std::string(media::oci_index);
    top.manifests = {descriptor_for(media::oci_index, nb)};
    top.manifests[0].annotations["org.opencontainers.image.ref.name"] = "multi:1";
    std::string dir = t.path() + "/layout";
    OciLayout l = OciLayout::create(dir);
    for (const auto& b : {nb, mb, cfg, layer}) {
        l.ingest_bytes(b);
    }
    l.write_index(top);
    auto c = read_image_archive(dir, work(t));
    REQUIRE(c.images.size() == 1);
    CHECK(c.images[0].names == std::vector<std::string>{"multi:1"});
    CHECK(*c.images[0].manifest == mb);
    std::string e = error_of([&] {
        read_image_archive(dir, work(t), Platform{"riscv64", "linux", "", {}, ""});
    });
    CHECK(e.find("has no image for linux/riscv64 (it has: linux/s390x, " +
                 to_string(host_platform()) + ")") != std::string::npos);
}

TEST_CASE("archive writers refuse layers that do not match and leave no output",
          "[archive][hostile]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    auto bad = s.image;
    // The gzip blob's uncompressed content is not what diff_id says.
    bad.layers[1].diff_id = Digest::of("something else");
    std::string out = t.path() + "/out.tar";
    std::string e = error_of<Error>([&] { write_docker_archive({bad}, out); });
    CHECK(e.find("differs from the config's rootfs.diff_ids[1]") != std::string::npos);
    CHECK(!fs::exists(out));

    // Config and layers agree, but the blob on disk was changed.
    test::write_file(t.path() + "/l2", test::gzip("tampered"));
    e = error_of<DigestMismatch>([&] { write_docker_archive({s.image}, out); });
    CHECK(e.find("layer " + s.image.layers[1].digest.str()) != std::string::npos);
    CHECK(e.find("expected diff ID " + s.image.layers[1].diff_id.str()) != std::string::npos);
    CHECK(!fs::exists(out));
    e = error_of<DigestMismatch>([&] { write_oci_archive({s.image}, out); });
    CHECK(e.find("expected " + s.image.layers[1].digest.str()) != std::string::npos);
    CHECK(!fs::exists(out));
    auto listing = run_capture({"ls", "-A", t.path()}).out;
    CHECK((listing == "l1\nl2\n"));
}

TEST_CASE("artifacts in an OCI index are not taken for images", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string dir = t.path() + "/layout";
    write_oci_layout({s.image}, dir);
    OciLayout l = OciLayout::create(dir);
    // A signature-like artifact: empty config, one blob layer.
    Manifest art;
    art.media_type = std::string(media::oci_manifest);
    art.artifact_type = "application/vnd.example.signature";
    art.config = descriptor_for(media::oci_empty, "{}");
    art.layers = {descriptor_for("application/octet-stream", "sig")};
    l.ingest_bytes("{}");
    l.ingest_bytes("sig");
    std::string ab = to_json(art);
    l.ingest_bytes(ab);
    Index idx = l.read_index();
    idx.manifests.push_back(descriptor_for(media::oci_manifest, ab));
    l.write_index(idx);
    auto c = read_image_archive(dir, work(t));
    REQUIRE(c.images.size() == 1);
    CHECK(c.images[0].config == s.image.config);
}

TEST_CASE("docker-archive: one entry per image, shared layers written once", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    auto alias = s.image;
    alias.names = {"alias:2"};
    // A second image sharing layer 1.
    auto other = s.image;
    other.names = {"other:1"};
    other.layers.pop_back();
    ImageConfig oc = parse_image_config(s.image.config, "c");
    oc.diff_ids.pop_back();
    oc.history.pop_back();
    other.config = to_json(oc);
    std::string out = t.path() + "/multi.tar";
    write_docker_archive({s.image, alias, other}, out);
    std::string listing = tar_list(out);
    std::string l1 = "blobs/sha256/" + std::string(Digest::of(s.layer1_tar).hex());
    CHECK(listing.find(l1) != std::string::npos);
    CHECK(listing.find(l1, listing.find(l1) + 1) == std::string::npos);
    auto c = read_image_archive(out, work(t));
    REQUIRE(c.images.size() == 2);
    CHECK(c.images[0].names == std::vector<std::string>{"example.com/app:1.0", "alias:2"});
    CHECK(c.images[1].names == std::vector<std::string>{"other:1"});
    CHECK(c.images[1].layers.at(0).path == c.images[0].layers.at(0).path);
    auto idx = parse_index(test::read_file(work(t) + "/index.json"), "i");
    CHECK(idx.manifests.size() == 3);
}

TEST_CASE("OCI archives: missing blobs and lying media types are rejected", "[archive][hostile]") {
    TempDir t;
    std::string layer = TarBuilder().file("a", "1").finish();
    std::string cfg = config_for({layer});
    Manifest m;
    m.media_type = std::string(media::oci_manifest);
    m.config = descriptor_for(media::oci_config, cfg);
    m.layers = {descriptor_for(media::oci_layer, layer)};
    std::string mb = to_json(m);
    auto blob = [](const std::string& c) { return Digest::of(c).blob_path(); };
    std::string archive = t.path() + "/in.tar";

    SECTION("a manifest pointing at a missing layer blob") {
        Index idx;
        idx.manifests = {descriptor_for(media::oci_manifest, mb)};
        test::write_file(archive, TarBuilder()
                                      .file("oci-layout", layout_header_json())
                                      .file("index.json", to_json(idx))
                                      .file(blob(mb), mb)
                                      .file(blob(cfg), cfg)
                                      .finish());
        std::string e = error_of([&] { read_image_archive(archive, work(t)); });
        CHECK(e == "manifest " + Digest::of(mb).str() + ": layers[0]: \"" + blob(layer) +
                       "\" is not in the archive " + archive);
    }
    SECTION("an index entry saying Docker manifest for an OCI manifest") {
        Index idx;
        idx.manifests = {descriptor_for(media::docker_manifest, mb)};
        test::write_file(archive, TarBuilder()
                                      .file("oci-layout", layout_header_json())
                                      .file("index.json", to_json(idx))
                                      .file(blob(mb), mb)
                                      .file(blob(cfg), cfg)
                                      .file(blob(layer), layer)
                                      .finish());
        std::string e = error_of([&] { read_image_archive(archive, work(t)); });
        CHECK(e.find("the descriptor says media type "
                     "\"application/vnd.docker.distribution.manifest.v2+json\", the document "
                     "says \"application/vnd.oci.image.manifest.v1+json\"") != std::string::npos);
    }
}

TEST_CASE("docker-archive: zstd layers are written decompressed", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string z(ZSTD_compressBound(s.layer2_tar.size()), '\0');
    std::size_t n = ZSTD_compress(z.data(), z.size(), s.layer2_tar.data(), s.layer2_tar.size(), 3);
    REQUIRE(!ZSTD_isError(n));
    z.resize(n);
    test::write_file(t.path() + "/l2", z);
    s.image.layers[1].media_type = std::string(media::oci_layer_zstd);
    s.image.layers[1].digest = Digest::of(z);
    s.image.layers[1].size = static_cast<std::int64_t>(z.size());
    write_docker_archive({s.image}, t.path() + "/z.tar");
    auto c = read_image_archive(t.path() + "/z.tar", work(t));
    CHECK(test::read_file(c.images.at(0).layers.at(1).path) == s.layer2_tar);
    // The oci-archive keeps the zstd blob as it is.
    write_oci_archive({s.image}, t.path() + "/o.tar");
    TempDir t2;
    auto o = read_image_archive(t.path() + "/o.tar", work(t2));
    CHECK(test::read_file(o.images.at(0).layers.at(1).path) == z);
    CHECK(o.images.at(0).layers.at(1).media_type == media::oci_layer_zstd);
}

TEST_CASE("mutated manifest.json and index.json fail only with strata errors",
          "[archive][mutation]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string out = t.path() + "/img.tar";
    write_docker_archive({s.image}, out);
    std::string w0 = work(t);
    read_image_archive(out, w0);
    std::string mj = test::read_file(w0 + "/manifest.json");
    std::string ij = test::read_file(w0 + "/index.json");
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(w0)) {
        if (e.is_regular_file()) {
            std::string name = e.path().string().substr(w0.size() + 1);
            files.emplace_back(name, test::read_file(e.path().string()));
        }
    }
    REQUIRE(files.size() == 7); // 2 layers, config, manifest, 3 top-level files
    std::mt19937 rng(777);
    const std::string alphabet = "{}[]\",:./09az \\";
    int rejected = 0;
    for (int round = 0; round < 300; ++round) {
        std::string m = mj, i = ij;
        std::string& victim = round % 2 ? m : i;
        std::size_t pos = rng() % victim.size();
        victim[pos] = alphabet[rng() % alphabet.size()];
        // The archive again, with the mutated documents.
        TarBuilder b;
        for (const auto& [name, content] : files) {
            b.file(name, name == "manifest.json" ? m : name == "index.json" ? i : content);
        }
        std::string tarfile = t.path() + "/m.tar";
        test::write_file(tarfile, b.finish());
        std::string w = t.path() + "/w" + std::to_string(round);
        fs::mkdirs(w);
        try {
            read_image_archive(tarfile, w);
        } catch (const strata::Error&) {
            ++rejected;
        } catch (const std::exception& e) {
            FAIL("unexpected exception: " << e.what() << "\nmanifest.json: " << m
                                          << "\nindex.json: " << i);
        }
        fs::remove_all(w);
    }
    CHECK(rejected > 100);
}

TEST_CASE("docker-archive: a known diff size saves a pass and is still checked", "[archive]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    s.image.layers[1].diff_size = static_cast<std::int64_t>(s.layer2_tar.size());
    write_docker_archive({s.image}, t.path() + "/ok.tar");
    auto c = read_image_archive(t.path() + "/ok.tar", work(t));
    CHECK(test::read_file(c.images.at(0).layers.at(1).path) == s.layer2_tar);

    for (std::int64_t wrong : {std::int64_t(512), std::int64_t(s.layer2_tar.size() + 512)}) {
        s.image.layers[1].diff_size = wrong;
        std::string out = t.path() + "/bad.tar";
        std::string e = error_of<strata::Error>([&] { write_docker_archive({s.image}, out); });
        INFO(e);
        CHECK(e.find(std::string(s.image.layers[1].diff_id.hex())) != std::string::npos);
        CHECK(!fs::exists(out));
    }
}
