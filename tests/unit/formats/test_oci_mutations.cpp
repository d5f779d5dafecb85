// Robustness: byte-level mutations of real documents must either parse or
// fail with FormatError; no other exception (a leaked nlohmann type_error,
// std::out_of_range) and no crash. Deterministic (fixed seed).
#include "formats/oci.hpp"
#include "tests/support/support.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace strata::formats;

namespace {

std::string cases() {
    return strata::test::source_dir() + "/tests/data/oci-image-spec/cases/";
}

// Returns how many mutants were rejected with FormatError.
template <typename F> int mutate_and_parse(const std::string& original, F&& parse) {
    int rejected = 0;
    std::mt19937 rng(12345);
    const std::string alphabet = "{}[]\",:0123456789-.eE truefalsnul\\/abcdefABCDEF\x01\xff";
    for (int round = 0; round < 3000; ++round) {
        std::string doc = original;
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits && !doc.empty(); ++e) {
            std::size_t pos = rng() % doc.size();
            switch (rng() % 3) {
            case 0:
                doc[pos] = alphabet[rng() % alphabet.size()];
                break;
            case 1:
                doc.erase(pos, 1 + rng() % 8);
                break;
            default:
                doc.insert(pos, 1, alphabet[rng() % alphabet.size()]);
                break;
            }
        }
        try {
            parse(doc);
        } catch (const FormatError&) {
            ++rejected;
        } catch (const std::exception& e) {
            FAIL("unexpected " << typeid(e).name() << ": " << e.what() << "\nfor: " << doc);
        }
    }
    // Most mutants break the JSON or a field; a few (inside strings) parse.
    CHECK(rejected > 1500);
    CHECK(rejected < 3000);
    return rejected;
}

} // namespace

TEST_CASE("mutated manifests, indexes and configs fail only with FormatError", "[oci][mutation]") {
    std::string manifest =
        strata::test::read_file(cases() + "docker-compat/manifest-00.docker.json");
    std::string index = strata::test::read_file(cases() + "docker-compat/index-00.docker.json");
    std::string config = strata::test::read_file(cases() + "docker-compat/config-01.docker.json");
    std::string spec_manifest =
        strata::test::read_file(cases() + "spec-examples/manifest-00-manifest.json");
    // The originals parse.
    REQUIRE_NOTHROW(parse_manifest(manifest, "m"));
    REQUIRE_NOTHROW(parse_index(index, "i"));
    REQUIRE_NOTHROW(parse_image_config(config, "c"));
    mutate_and_parse(manifest, [](const std::string& d) { parse_manifest(d, "m"); });
    mutate_and_parse(spec_manifest, [](const std::string& d) { parse_manifest(d, "m"); });
    mutate_and_parse(index, [](const std::string& d) { parse_index(d, "i"); });
    mutate_and_parse(config, [](const std::string& d) { parse_image_config(d, "c"); });
    mutate_and_parse(
        manifest, [](const std::string& d) { validate_document(DocumentKind::manifest, d, "m"); });
    mutate_and_parse(config,
                     [](const std::string& d) { validate_document(DocumentKind::config, d, "c"); });
}
