// Interoperability with skopeo (containers/image), the reference reader and
// writer of docker-archive, oci-archive and OCI layouts besides Docker.
// Tagged [skopeo]: CTest runs these in their own entry behind a probe and
// reports them Skipped when skopeo is not installed.
#include "archive_fixtures.hpp"
#include "formats/image_archive.hpp"
#include "formats/layout.hpp"
#include "tests/support/support.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::formats;

namespace {

std::string skopeo(const std::vector<std::string>& args) {
    REQUIRE(find_program("skopeo"));
    std::vector<std::string> argv = {"skopeo", "--insecure-policy"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_capture(argv, true);
    INFO("skopeo output: " << r.out);
    REQUIRE(r.status.success());
    return r.out;
}

std::string work(const TempDir& t, const std::string& name) {
    std::string w = t.path() + "/" + name;
    fs::mkdirs(w);
    return w;
}

// The image read back has the sample's config and its layers' uncompressed
// contents (whatever compression the tool chose).
void check_same_image(const ArchiveImage& img, const test::SampleImage& s) {
    CHECK(img.config == s.image.config);
    REQUIRE(img.layers.size() == 2);
    std::vector<Digest> want = {Digest::of(s.layer1_tar), Digest::of(s.layer2_tar)};
    for (std::size_t i = 0; i < 2; ++i) {
        std::string bytes = test::read_file(img.layers[i].path);
        if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
            static_cast<unsigned char>(bytes[1]) == 0x8b) {
            bytes = run_capture({"gzip", "-dc"}, false, bytes).out;
        }
        CHECK(Digest::of(bytes) == want[i]);
    }
}

} // namespace

TEST_CASE("skopeo copies strata's OCI layout to a docker-archive strata reads back", "[skopeo]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string layout = t.path() + "/layout";
    write_oci_layout({s.image}, layout);
    skopeo({"copy", "oci:" + layout + ":example.com/app:1.0",
            "docker-archive:" + t.path() + "/x.tar:example.com/app:1.0"});
    auto c = read_image_archive(t.path() + "/x.tar", work(t, "w1"));
    CHECK(c.format == ArchiveFormat::docker_archive);
    REQUIRE(c.images.size() == 1);
    CHECK(c.images[0].names == std::vector<std::string>{"example.com/app:1.0"});
    check_same_image(c.images[0], s);

    // And back: skopeo reads the docker-archive into an oci-archive.
    skopeo({"copy", "docker-archive:" + t.path() + "/x.tar",
            "oci-archive:" + t.path() + "/y.tar:back:2"});
    auto c2 = read_image_archive(t.path() + "/y.tar", work(t, "w2"));
    CHECK(c2.format == ArchiveFormat::oci_archive);
    REQUIRE(c2.images.size() == 1);
    CHECK(c2.images[0].names == std::vector<std::string>{"back:2"});
    check_same_image(c2.images[0], s);
}

TEST_CASE("skopeo reads strata's docker-archive", "[skopeo]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string archive = t.path() + "/d.tar";
    write_docker_archive({s.image}, archive);
    std::string inspect = skopeo({"inspect", "--config", "--raw", "docker-archive:" + archive});
    CHECK(inspect == s.image.config);
    skopeo({"copy", "docker-archive:" + archive, "oci:" + t.path() + "/o:copied"});
    auto c = read_image_archive(t.path() + "/o", work(t, "w"));
    REQUIRE(c.images.size() == 1);
    CHECK(c.images[0].names == std::vector<std::string>{"copied"});
    check_same_image(c.images[0], s);
}

TEST_CASE("skopeo reads strata's oci-archive and OCI layout byte for byte", "[skopeo]") {
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string archive = t.path() + "/o.tar";
    write_oci_archive({s.image}, archive);
    std::string raw =
        skopeo({"inspect", "--raw", "oci-archive:" + archive + ":example.com/app:1.0"});
    Manifest m = parse_manifest(raw, "skopeo output");
    CHECK(m.config.digest == Digest::of(s.image.config));
    CHECK(m.layers.at(1).digest == s.image.layers[1].digest);
    CHECK(m.layers.at(1).media_type == media::oci_layer_gzip);

    // skopeo copies it (digests preserved: it would compress the plain tar
    // layer otherwise) into an OCI layout that strata opens.
    skopeo({"copy", "--preserve-digests", "oci-archive:" + archive + ":example.com/app:1.0",
            "oci:" + t.path() + "/dir:again"});
    OciLayout l = OciLayout::open(t.path() + "/dir");
    auto idx = l.read_index();
    REQUIRE(idx.manifests.size() == 1);
    // Unchanged blobs mean an unchanged manifest digest.
    INFO("strata wrote " << raw << "\nskopeo wrote " << l.read_blob(idx.manifests[0].digest));
    CHECK(idx.manifests[0].digest == Digest::of(raw));
    CHECK(l.read_blob(m.config.digest) == s.image.config);
}

// umoci is a second, independent OCI layout implementation (Go, not
// containers/image). Tagged [umoci]: skipped when it is not installed.
TEST_CASE("umoci unpacks strata's OCI layout and strata reads umoci's repack", "[umoci]") {
    REQUIRE(find_program("umoci"));
    TempDir t;
    auto s = test::sample_image(t.path());
    std::string layout = t.path() + "/layout";
    write_oci_layout({s.image}, layout);
    auto ls = run_capture({"umoci", "ls", "--layout", layout}, true);
    INFO(ls.out);
    REQUIRE(ls.status.success());
    CHECK(ls.out == "example.com/app:1.0\n");
    std::string bundle = t.path() + "/bundle";
    auto r =
        run_capture({"umoci", "unpack", "--image", layout + ":example.com/app:1.0", bundle}, true);
    INFO(r.out);
    REQUIRE(r.status.success());
    CHECK(test::read_file(bundle + "/rootfs/etc/greeting") == "hi\n");
    CHECK(!fs::exists(bundle + "/rootfs/etc/hello")); // removed by layer 2's whiteout

    // umoci adds a layer and a new tag; strata reads the result.
    test::write_file(bundle + "/rootfs/etc/added", "by umoci\n");
    r = run_capture({"umoci", "repack", "--image", layout + ":repacked", bundle}, true);
    INFO(r.out);
    REQUIRE(r.status.success());
    auto c = read_image_archive(layout, work(t, "w"));
    REQUIRE(c.images.size() == 2);
    const ArchiveImage* repacked = nullptr;
    for (const auto& img : c.images) {
        if (img.names == std::vector<std::string>{"repacked"}) {
            repacked = &img;
        }
    }
    REQUIRE(repacked);
    REQUIRE(repacked->layers.size() == 3);
    ImageConfig cfg = parse_image_config(repacked->config, "umoci config");
    CHECK(cfg.diff_ids.size() == 3);
    CHECK(cfg.diff_ids[0] == Digest::of(s.layer1_tar));
}

// Docker itself: `docker load` must accept strata's docker-archive and run
// the image; strata must read what `docker save` writes. Tagged [docker]:
// skipped unless a Docker daemon answers (`docker info`).
TEST_CASE("docker loads and runs strata's docker-archive; strata reads docker save", "[docker]") {
    REQUIRE(find_program("docker"));
    REQUIRE(fs::exists("/bin/busybox"));
    TempDir t;
    auto s = test::sample_image(t.path(), "strata-test/archive:interop");
    // A third, gzip-compressed layer with a static busybox so the image runs.
    std::string bb_tar = test::TarBuilder()
                             .dir("bin")
                             .file("bin/busybox", test::read_file("/bin/busybox"), 0755)
                             .finish();
    std::string bb_gz = test::gzip(bb_tar);
    test::write_file(t.path() + "/l3", bb_gz);
    ImageConfig cfg = parse_image_config(s.image.config, "c");
    cfg.diff_ids.push_back(Digest::of(bb_tar));
    cfg.history.push_back({"2024-05-06T07:08:09Z", "ADD busybox", "", "", false});
    cfg.config.cmd = std::vector<std::string>{"/bin/busybox", "cat", "/etc/greeting"};
    s.image.config = to_json(cfg);
    s.image.layers.push_back({t.path() + "/l3", std::string(media::oci_layer_gzip),
                              Digest::of(bb_gz), static_cast<std::int64_t>(bb_gz.size()),
                              Digest::of(bb_tar)});
    std::string archive = t.path() + "/d.tar";
    write_docker_archive({s.image}, archive);

    auto docker = [](const std::vector<std::string>& args) {
        std::vector<std::string> argv = {"docker"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_capture(argv, true);
        INFO("docker " << args.at(0) << ": " << r.out);
        REQUIRE(r.status.success());
        return r.out;
    };
    std::string loaded = docker({"load", "-i", archive});
    CHECK(loaded.find("strata-test/archive:interop") != std::string::npos);
    // Docker's image ID is the config digest.
    std::string id =
        docker({"image", "inspect", "--format", "{{.Id}}", "strata-test/archive:interop"});
    CHECK(id == Digest::of(s.image.config).str() + "\n");
    CHECK(docker({"run", "--rm", "--network", "none", "strata-test/archive:interop"}) == "hi\n");
    // Layer 2's whiteout removed etc/hello (docker adds hosts, hostname, ...).
    std::string etc = docker({"run", "--rm", "--network", "none", "strata-test/archive:interop",
                              "/bin/busybox", "ls", "/etc"});
    CHECK(etc.find("greeting\n") != std::string::npos);
    CHECK(etc.find("hello") == std::string::npos);

    // And back: docker save (classic or Docker 25 form, depending on the
    // engine) is read by strata with the same config and layer contents.
    docker({"save", "-o", t.path() + "/saved.tar", "strata-test/archive:interop"});
    docker({"rmi", "strata-test/archive:interop"});
    auto c = read_image_archive(t.path() + "/saved.tar", work(t, "w"));
    REQUIRE(c.images.size() == 1);
    CHECK(c.images[0].names == std::vector<std::string>{"strata-test/archive:interop"});
    CHECK(c.images[0].config == s.image.config);
    REQUIRE(c.images[0].layers.size() == 3);
    CHECK(Digest::of(test::read_file(c.images[0].layers[2].path)) == Digest::of(bb_tar));
}

// buildah (containers/image writers, with its symlinked classic layers):
// a busybox image committed by buildah, as docker-archive and oci-archive,
// read by strata with the same files. Tagged [buildah]: skipped without it.
TEST_CASE("strata reads buildah's docker-archive and oci-archive", "[buildah]") {
    REQUIRE(find_program("buildah"));
    REQUIRE(fs::exists("/bin/busybox"));
    TempDir t;
    // Private storage (vfs: no mounts), so nothing touches the machine's.
    std::vector<std::string> b = {"buildah",   "--root",          t.path() + "/root",
                                  "--runroot", t.path() + "/run", "--storage-driver",
                                  "vfs"};
    auto buildah = [&](const std::vector<std::string>& args) {
        auto argv = b;
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_capture(argv, true);
        INFO("buildah " << args.at(0) << ": " << r.out);
        REQUIRE(r.status.success());
        return r.out;
    };
    std::string ctr = buildah({"from", "scratch"});
    ctr.erase(ctr.find_last_not_of('\n') + 1);
    buildah({"copy", ctr, "/bin/busybox", "/bin/busybox"});
    buildah({"config", "--cmd", "[\"/bin/busybox\",\"true\"]", ctr});
    buildah({"commit", "-q", ctr, "docker-archive:" + t.path() + "/b.tar:bb:1"});
    buildah({"commit", "-q", ctr, "oci-archive:" + t.path() + "/o.tar:bb:1"});
    buildah({"rm", ctr});

    std::string busybox = test::read_file("/bin/busybox");
    for (std::string name : {"b.tar", "o.tar"}) {
        INFO(name);
        auto c = read_image_archive(t.path() + "/" + name, work(t, "w-" + name));
        CHECK(c.format ==
              (name == "b.tar" ? ArchiveFormat::docker_archive : ArchiveFormat::oci_archive));
        REQUIRE(c.images.size() == 1);
        const auto& img = c.images[0];
        CHECK(img.names ==
              std::vector<std::string>{name == "b.tar" ? "docker.io/library/bb:1" : "bb:1"});
        ImageConfig cfg = parse_image_config(img.config, "buildah config");
        CHECK(cfg.config.cmd == std::vector<std::string>{"/bin/busybox", "true"});
        REQUIRE(img.layers.size() == 1);
        CHECK(cfg.diff_ids.at(0) == Digest::of(test::read_file(img.layers[0].path)));
        auto r = run_capture({"tar", "-xOf", img.layers[0].path, "bin/busybox"});
        REQUIRE(r.status.success());
        CHECK(r.out == busybox);
    }
}
