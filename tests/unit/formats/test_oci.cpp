#include "formats/media_types.hpp"
#include "formats/oci.hpp"

#include <catch2/catch.hpp>

using namespace strata::formats;

namespace {

const std::string k_d1 = "sha256:" + std::string(64, '1');
const std::string k_d2 = "sha256:" + std::string(64, '2');
const std::string k_d3 = "sha256:" + std::string(64, '3');

ImageConfig full_config() {
    ImageConfig c;
    c.created = "2024-01-02T03:04:05.123456789Z";
    c.author = "Jane <jane@example.com>";
    c.architecture = "arm64";
    c.variant = "v8";
    c.os = "linux";
    c.config.user = "app:app";
    c.config.exposed_ports = {"80/tcp", "53/udp"};
    c.config.env = {"PATH=/usr/bin:/bin", "A=b=c"};
    c.config.entrypoint = std::vector<std::string>{"/entry.sh"};
    c.config.cmd = std::vector<std::string>{};
    c.config.volumes = {"/data"};
    c.config.working_dir = "/srv";
    c.config.labels = {{"b", "2"}, {"a", "1"}};
    c.config.stop_signal = "SIGTERM";
    c.config.args_escaped = true;
    c.config.healthcheck = Healthcheck{{"CMD-SHELL", "curl -f http://localhost/ || exit 1"},
                                       30000000000,
                                       5000000000,
                                       0,
                                       1000000000,
                                       3};
    c.config.on_build = {"RUN echo hi"};
    c.config.shell = {"/bin/bash", "-c"};
    c.diff_ids = {Digest::parse(k_d1), Digest::parse(k_d2)};
    c.history = {{"2024-01-02T03:04:05Z", "/bin/sh -c #(nop) ADD file:abc in /", "", "", false},
                 {"2024-01-02T03:04:06Z", "ENV A=b=c", "", "buildkit.dockerfile.v0", true}};
    return c;
}

std::string error_of(auto&& f) {
    try {
        f();
    } catch (const FormatError& e) {
        return e.what();
    }
    return "(no error)";
}

std::string manifest_error(const std::string& json) {
    return error_of([&] { parse_manifest(json, "sha256:abc"); });
}
std::string config_error(const std::string& json) {
    return error_of([&] { parse_image_config(json, "c.json"); });
}
std::string index_error(const std::string& json) {
    return error_of([&] { parse_index(json, "index.json"); });
}

std::string layer(const std::string& digest, const std::string& size = "10") {
    return R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + digest +
           R"(","size":)" + size + "}";
}
std::string manifest_with_layers(const std::string& layers) {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
           k_d1 + R"(","size":5},"layers":[)" + layers + "]}";
}

} // namespace

TEST_CASE("image config serialises deterministically in Docker/BuildKit field order", "[oci]") {
    std::string golden =
        R"({"created":"2024-01-02T03:04:05.123456789Z","author":"Jane \u003cjane@example.com\u003e",)"
        R"("architecture":"arm64","variant":"v8","os":"linux","config":{"User":"app:app",)"
        R"("ExposedPorts":{"53/udp":{},"80/tcp":{}},"Env":["PATH=/usr/bin:/bin","A=b=c"],)"
        R"("Entrypoint":["/entry.sh"],"Cmd":[],"Volumes":{"/data":{}},"WorkingDir":"/srv",)"
        R"("Labels":{"a":"1","b":"2"},"StopSignal":"SIGTERM","ArgsEscaped":true,)"
        R"("Healthcheck":{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],)"
        R"("Interval":30000000000,"Timeout":5000000000,"StartInterval":1000000000,"Retries":3},)"
        R"("OnBuild":["RUN echo hi"],"Shell":["/bin/bash","-c"]},"rootfs":{"type":"layers",)"
        R"("diff_ids":[")" +
        k_d1 + R"(",")" + k_d2 +
        R"("]},"history":[{"created":"2024-01-02T03:04:05Z",)"
        R"("created_by":"/bin/sh -c #(nop) ADD file:abc in /"},{"created":"2024-01-02T03:04:06Z",)"
        R"("created_by":"ENV A=b=c","comment":"buildkit.dockerfile.v0","empty_layer":true}]})";
    CHECK(to_json(full_config()) == golden);
    // Round trip: parsing the output gives the same value and the same bytes.
    ImageConfig back = parse_image_config(golden, "golden");
    CHECK(back == full_config());
    CHECK(to_json(back) == golden);
}

TEST_CASE("minimal image config omits empty optional fields", "[oci]") {
    ImageConfig c;
    c.architecture = "amd64";
    c.os = "linux";
    CHECK(
        to_json(c) ==
        R"({"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}})");
    CHECK(parse_image_config(to_json(c), "x") == c);
}

TEST_CASE("null and absent Cmd/Entrypoint stay distinct from empty", "[oci]") {
    auto c = parse_image_config(
        R"({"architecture":"amd64","os":"linux","config":{"Cmd":null,"Entrypoint":[],"Labels":null,"Volumes":null,"OnBuild":null},"rootfs":{"type":"layers","diff_ids":[]}})",
        "x");
    CHECK(!c.config.cmd);
    REQUIRE(c.config.entrypoint);
    CHECK(c.config.entrypoint->empty());
    CHECK(to_json(c).find(R"("Entrypoint":[])") != std::string::npos);
    CHECK(to_json(c).find("Cmd") == std::string::npos);
}

TEST_CASE("manifest and index serialise in OCI field order and round-trip", "[oci]") {
    Manifest m;
    m.media_type = std::string(media::oci_manifest);
    m.config = {std::string(media::oci_config), Digest::parse(k_d1), 123, {}, {}, {}, {}, {}};
    Descriptor l{std::string(media::oci_layer_zstd), Digest::parse(k_d2), 456, {}, {}, {}, {}, {}};
    l.annotations["org.example"] = "x";
    m.layers = {l};
    m.annotations["org.opencontainers.image.created"] = "2024-01-01T00:00:00Z";
    std::string golden =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
        R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        k_d1 +
        R"(","size":123},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd",)"
        R"("digest":")" +
        k_d2 +
        R"(","size":456,"annotations":{"org.example":"x"}}],)"
        R"("annotations":{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}})";
    CHECK(to_json(m) == golden);
    CHECK(parse_manifest(golden, "m") == m);

    Index i;
    i.media_type = std::string(media::oci_index);
    Descriptor md{std::string(media::oci_manifest), Digest::parse(k_d3), 789, {}, {}, {}, {}, {}};
    md.platform = Platform{"arm", "linux", "", {}, "v7"};
    md.annotations["org.opencontainers.image.ref.name"] = "busybox:latest";
    i.manifests = {md};
    std::string igolden =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
        R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
        k_d3 +
        R"(","size":789,"annotations":{"org.opencontainers.image.ref.name":"busybox:latest"},)"
        R"("platform":{"architecture":"arm","os":"linux","variant":"v7"}}]})";
    CHECK(to_json(i) == igolden);
    CHECK(parse_index(igolden, "i") == i);
}

TEST_CASE("manifests with no layers and Docker media types are accepted", "[oci]") {
    auto m = parse_manifest(
        R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
            k_d1 + R"(","size":5},"layers":[]})",
        "m");
    CHECK(m.layers.empty());
    CHECK(m.media_type == media::docker_manifest);
}

TEST_CASE("malformed manifests are rejected naming the field", "[oci]") {
    CHECK(manifest_error(
              manifest_with_layers(layer(k_d2) + "," + layer(k_d3) + "," + layer("sha256:xyz"))) ==
          "manifest sha256:abc: layers[2].digest: invalid digest \"sha256:xyz\": sha256 needs "
          "exactly 64 lowercase hex digits");
    CHECK(manifest_error(manifest_with_layers(layer(k_d2, "-1"))) ==
          "manifest sha256:abc: layers[0].size: negative value -1");
    CHECK(manifest_error(manifest_with_layers(layer(k_d2, "\"10\""))) ==
          "manifest sha256:abc: layers[0].size: expected an integer, got a string");
    CHECK(manifest_error(manifest_with_layers(layer(k_d2, "1.5"))) ==
          "manifest sha256:abc: layers[0].size: expected an integer, got a number with a "
          "fraction or exponent");
    CHECK(manifest_error(manifest_with_layers(layer(k_d2, "99999999999999999999")))
              .find("layers[0].size") != std::string::npos);
    CHECK(manifest_error(manifest_with_layers(layer("sha512:" + std::string(128, 'a')))) ==
          "manifest sha256:abc: layers[0].digest: invalid digest \"sha512:" +
              std::string(100 - 7, 'a') +
              "...\": unsupported algorithm \"sha512\" (only sha256 is supported)");
    // A media type that says "index" on a manifest.
    std::string m = manifest_with_layers(layer(k_d2));
    std::string lying = m;
    lying.replace(lying.find("image.manifest.v1"), 17, "image.index.v1");
    CHECK(manifest_error(lying) ==
          "manifest sha256:abc: mediaType: media type "
          "\"application/vnd.oci.image.index.v1+json\" contradicts the document, which is read "
          "as an image manifest");
    CHECK(manifest_error(R"({"schemaVersion":1,"config":{},"layers":[]})") ==
          "manifest sha256:abc: schemaVersion: unsupported schema version 1 (want 2)");
    CHECK(manifest_error(R"({"schemaVersion":2,"layers":[]})") ==
          "manifest sha256:abc: config: required field is missing");
    CHECK(manifest_error(
              R"({"schemaVersion":2,"config":{"mediaType":"a/b","size":1},"layers":[]})") ==
          "manifest sha256:abc: config.digest: required field is missing");
    CHECK(manifest_error(R"({"schemaVersion":2,"config":{"mediaType":"nosubtype","digest":")" +
                         k_d1 + R"(","size":1},"layers":[]})") ==
          "manifest sha256:abc: config.mediaType: invalid media type \"nosubtype\"");
    CHECK(manifest_error(R"({"schemaVersion":2,"schemaVersion":2})") ==
          "manifest sha256:abc: duplicate key \"schemaVersion\"");
    CHECK(manifest_error("[]") == "manifest sha256:abc: expected an object, got an array");
    CHECK(manifest_error("{").rfind("manifest sha256:abc: invalid JSON", 0) == 0);
    std::string big(k_max_document_size + 1, ' ');
    CHECK(manifest_error(big).find("more than the limit") != std::string::npos);
    CHECK(manifest_error(manifest_with_layers(R"({"mediaType":"a/b","digest":")" + k_d2 +
                                              R"(","size":1,"annotations":{"k":1}})")) ==
          "manifest sha256:abc: layers[0].annotations.k: expected a string, got an integer");
    // "YWJj" is "abc".
    CHECK(manifest_error(manifest_with_layers(R"({"mediaType":"a/b","digest":")" +
                                              Digest::of("abc").str() +
                                              R"(","size":3,"data":"YWJj"})")) == "(no error)");
    CHECK(manifest_error(manifest_with_layers(R"({"mediaType":"a/b","digest":")" + k_d2 +
                                              R"(","size":3,"data":"YWJj"})")) ==
          "manifest sha256:abc: layers[0].data: embedded data (3 bytes, " +
              Digest::of("abc").str() + ") does not match the descriptor's digest and size");
    CHECK(manifest_error(manifest_with_layers(R"({"mediaType":"a/b","digest":")" + k_d2 +
                                              R"(","size":1,"data":"YWJ"})")) ==
          "manifest sha256:abc: layers[0].data: not padded standard base64");
    // CR and LF are skipped, as Go's decoder does; nothing else is.
    CHECK(manifest_error(
              manifest_with_layers(R"({"mediaType":"a/b","digest":")" + Digest::of("abcd").str() +
                                   R"(","size":4,"data":"YWJj\r\nZA=="})")) == "(no error)");
    for (const char* bad : {"YWJj ZA==", "YWJjZA=", "YWJjZA===", "YW=jZA==", "YWJj-A==", "YWJjZ"}) {
        INFO(bad);
        CHECK(manifest_error(manifest_with_layers(R"({"mediaType":"a/b","digest":")" + k_d2 +
                                                  R"(","size":4,"data":")" + bad + R"("})")) ==
              "manifest sha256:abc: layers[0].data: not padded standard base64");
    }
}

TEST_CASE("malformed indexes are rejected naming the field", "[oci]") {
    CHECK(
        index_error(
            R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]})") ==
        "index index.json: mediaType: media type "
        "\"application/vnd.oci.image.manifest.v1+json\" contradicts the document, which is "
        "read as an image index");
    CHECK(index_error(R"({"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":")" + k_d1 +
                      R"(","size":1,"platform":{"os":"linux"}}]})") ==
          "index index.json: manifests[0].platform.architecture: required field is missing");
    CHECK(index_error(R"({"schemaVersion":2,"manifests":{}})") ==
          "index index.json: manifests: expected an array, got an object");
}

TEST_CASE("malformed image configs are rejected naming the field", "[oci]") {
    auto cfg = [](const std::string& inner) {
        return R"({"architecture":"amd64","os":"linux",)" + inner +
               R"(,"rootfs":{"type":"layers","diff_ids":[]}})";
    };
    CHECK(config_error(cfg(R"("config":{"Env":["NOEQUALS"]})")) ==
          "image config c.json: config.Env[0]: environment entry \"NOEQUALS\" is not NAME=VALUE");
    CHECK(config_error(cfg(R"("config":{"ExposedPorts":{"80/tcp":1}})")) ==
          "image config c.json: config.ExposedPorts.80/tcp: expected an object, got an integer");
    CHECK(config_error(cfg(R"("config":{"Healthcheck":{"Interval":-5}})")) ==
          "image config c.json: config.Healthcheck.Interval: negative value -5");
    CHECK(config_error(cfg(R"("created":"yesterday")")) ==
          "image config c.json: created: invalid RFC 3339 date-time \"yesterday\"");
    CHECK(config_error(cfg(R"("history":[{"empty_layer":"yes"}])")) ==
          "image config c.json: history[0].empty_layer: expected a boolean, got a string");
    CHECK(
        config_error(
            R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:short"]}})") ==
        "image config c.json: rootfs.diff_ids[0]: invalid digest \"sha256:short\": sha256 needs "
        "exactly 64 lowercase hex digits");
    CHECK(config_error(
              R"({"architecture":"amd64","os":"linux","rootfs":{"type":"zfs","diff_ids":[]}})") ==
          "image config c.json: rootfs.type: unsupported rootfs type \"zfs\" (want \"layers\")");
    CHECK(config_error(R"({"architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}})") ==
          "image config c.json: os: required field is missing");
}

TEST_CASE("descriptor and layout header parsing", "[oci]") {
    auto d =
        parse_descriptor(R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
                             k_d1 + R"(","size":0,"urls":["https://example.com/x"]})",
                         "d");
    CHECK(d.size == 0);
    CHECK(d.urls.size() == 1);
    CHECK(error_of([&] {
              parse_descriptor(R"({"mediaType":"a/b","digest":")" + k_d1 +
                                   R"(","size":0,"urls":["value"]})",
                               "d");
          }) == "descriptor d: urls[0]: not an absolute URI: \"value\"");
    CHECK_NOTHROW(parse_layout_header(layout_header_json(), "oci-layout"));
    CHECK(error_of([] {
              parse_layout_header(R"({"imageLayoutVersion":"2.0.0"})", "x/oci-layout");
          }) == "oci-layout x/oci-layout: imageLayoutVersion: unsupported image layout version "
                "\"2.0.0\" (want \"1.0.0\")");
    CHECK(descriptor_for("a/b", "hello").digest.str() ==
          "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

TEST_CASE("a document contradicting its descriptor's media type is rejected", "[oci]") {
    Descriptor d = descriptor_for(media::oci_manifest, "{}");
    CHECK_NOTHROW(check_media_type_matches(d, "", "m"));
    CHECK_NOTHROW(check_media_type_matches(d, media::oci_manifest, "m"));
    CHECK(error_of([&] {
              check_media_type_matches(d, media::docker_manifest, "manifest sha256:x");
          }) == "manifest sha256:x: the descriptor says media type "
                "\"application/vnd.oci.image.manifest.v1+json\", the document says "
                "\"application/vnd.docker.distribution.manifest.v2+json\"");
}

TEST_CASE("chain ID follows the image-spec definition", "[oci]") {
    Digest a = Digest::parse(k_d1), b = Digest::parse(k_d2), c = Digest::parse(k_d3);
    CHECK(chain_id({a}) == a);
    Digest ab = Digest::of(k_d1 + " " + k_d2);
    CHECK(chain_id({a, b}) == ab);
    CHECK(chain_id({a, b, c}) == Digest::of(ab.str() + " " + k_d3));
    CHECK_THROWS_AS(chain_id({}), strata::Error);
}

TEST_CASE("platforms", "[oci]") {
    Platform h = host_platform();
    CHECK(h.os == "linux");
    CHECK(!h.architecture.empty());
    CHECK(h.architecture != "x86_64");
    CHECK(to_string(parse_platform("linux/arm/v7")) == "linux/arm/v7");
    CHECK(to_string(parse_platform("linux/x86_64")) == "linux/amd64");
    CHECK(to_string(parse_platform("aarch64")) == "linux/arm64");
    CHECK_THROWS_AS(parse_platform("linux//v7"), strata::UsageError);
    CHECK_THROWS_AS(parse_platform("a/b/c/d"), strata::UsageError);
    CHECK(
        platform_matches(parse_platform("linux/arm64/v8"), Platform{"arm64", "linux", "", {}, ""}));
    CHECK(
        !platform_matches(parse_platform("linux/arm/v7"), Platform{"arm", "linux", "", {}, "v6"}));
    CHECK(
        platform_matches(parse_platform("linux/amd64"), Platform{"amd64", "linux", "", {}, "v3"}));
}
