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

TEST_CASE("skopeo copies strata's OCI layout to a docker-archive strata reads back",
          "[skopeo]") {
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
    std::string raw = skopeo({"inspect", "--raw", "oci-archive:" + archive + ":example.com/app:1.0"});
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
    auto r = run_capture({"umoci", "unpack", "--image", layout + ":example.com/app:1.0", bundle},
                         true);
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
