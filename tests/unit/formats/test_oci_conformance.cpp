// Runs strata's OCI validation over the image-spec's own test documents
// (tests/data/oci-image-spec, see /work/shared/conformance/README.md section
// 3) and checks that it decides valid/invalid as upstream does, for the
// reason upstream does.
#include "formats/oci.hpp"
#include "tests/support/support.hpp"
#include "util/sha256.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

using namespace strata::formats;

namespace {

struct Row {
    std::string path, media_type, expect, rejected_by, sha256;
};

std::string data_dir() {
    return strata::test::source_dir() + "/tests/data/oci-image-spec/cases";
}

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, '\t')) {
        out.push_back(f);
    }
    return out;
}

std::vector<Row> manifest_rows() {
    std::ifstream in(data_dir() + "/MANIFEST.tsv");
    REQUIRE(in);
    std::vector<Row> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        auto f = split_tabs(line);
        REQUIRE(f.size() >= 5);
        rows.push_back({f[0], f[1], f[2], f[3], f[4]});
    }
    return rows;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
    for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
        s.replace(pos, from.size(), to);
    }
}

// Which words strata's error must contain for each upstream reason.
std::string reason_marker(const std::string& rejected_by) {
    if (rejected_by == "json-syntax") {
        return "invalid JSON";
    }
    if (rejected_by == "typed-decode") {
        return "base64";
    }
    if (rejected_by == "digest-algorithm") {
        return "wrong length or case";
    }
    if (rejected_by == "env-rule") {
        return "NAME=VALUE";
    }
    if (rejected_by == "schema-format") {
        return "not an absolute URI";
    }
    return "";
}

} // namespace

TEST_CASE("OCI image-spec conformance: strata agrees with upstream on all 81 documents",
          "[oci][conformance]") {
    auto rows = manifest_rows();
    REQUIRE(rows.size() == 81);
    int valid = 0, invalid = 0;
    for (const auto& row : rows) {
        INFO("document " << row.path << " (" << row.media_type << "), upstream says "
                         << row.expect);
        std::string text = strata::test::read_file(data_dir() + "/" + row.path);
        if (row.path.rfind("docker-compat/", 0) == 0) {
            CHECK(strata::Sha256::hex_of(text) == row.sha256.substr(row.sha256.find(':') + 1));
            replace_all(text, "application/vnd.docker.distribution.manifest.list.v2+json",
                        "application/vnd.oci.image.index.v1+json");
            replace_all(text, "application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.oci.image.manifest.v1+json");
            replace_all(text, "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "application/vnd.oci.image.layer.v1.tar+gzip");
            replace_all(text, "application/vnd.docker.container.image.v1+json",
                        "application/vnd.oci.image.config.v1+json");
        }
        auto kind = document_kind_for(row.media_type);
        REQUIRE(kind);
        std::string error;
        try {
            validate_document(*kind, text, row.path);
        } catch (const FormatError& e) {
            error = e.what();
        }
        INFO("strata says: " << (error.empty() ? "valid" : error));
        if (row.expect == "valid") {
            ++valid;
            CHECK(error.empty());
        } else {
            ++invalid;
            REQUIRE(row.expect == "invalid");
            CHECK(!error.empty());
            // Errors name the document.
            CHECK(error.find(row.path) != std::string::npos);
            std::string marker = reason_marker(row.rejected_by);
            if (!marker.empty()) {
                CHECK(error.find(marker) != std::string::npos);
            }
        }
    }
    CHECK(valid == 41);
    CHECK(invalid == 40);
}

TEST_CASE("strata's own parsers read the real-world documents of the conformance set",
          "[oci][conformance]") {
    // Docker Hub documents and the spec's examples that use sha256 digests
    // are what strata meets in practice: its stricter parsers must take them.
    for (std::string name :
         {"docker-compat/index-00.docker.json", "docker-compat/manifest-00.docker.json",
          "docker-compat/config-00.docker.json", "docker-compat/config-01.docker.json",
          "spec-examples/manifest-00-manifest.json",
          "spec-examples/image-index-00-image-index.json",
          "spec-examples/config-00-image-json.json"}) {
        INFO(name);
        std::string text = strata::test::read_file(data_dir() + "/" + name);
        if (name.find("index") != std::string::npos) {
            CHECK_NOTHROW(parse_index(text, name));
        } else if (name.find("manifest") != std::string::npos) {
            CHECK_NOTHROW(parse_manifest(text, name));
        } else {
            CHECK_NOTHROW(parse_image_config(text, name));
        }
    }
    auto cfg = parse_image_config(
        strata::test::read_file(data_dir() + "/docker-compat/config-01.docker.json"), "c");
    CHECK(cfg.architecture == "amd64");
    CHECK(!cfg.config.cmd); // "Cmd": null stays absent, not empty
    CHECK(cfg.config.env.size() == 1);
    CHECK(!cfg.diff_ids.empty());
}
