// Build cache keys and records.
#include "builder/cache.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace strata;
using namespace strata::builder;

TEST_CASE("Cache keys depend on every part and on where parts split") {
    std::string k = cache_key({"parent", "RUN make"});
    CHECK(k.size() == 64);
    CHECK(k == cache_key({"parent", "RUN make"}));
    CHECK(k != cache_key({"parent", "RUN make "}));
    CHECK(k != cache_key({"parent2", "RUN make"}));
    CHECK(cache_key({"ab", "c"}) != cache_key({"a", "bc"}));
    CHECK(cache_key({"a\n", "b"}) != cache_key({"a", "\nb"}));
}

TEST_CASE("A cache record round-trips and names what gc must keep") {
    TempDir dir;
    BuildCache cache(dir.path() + "/cache");
    std::string key = cache_key({"x"});
    CHECK_FALSE(cache.lookup(key).has_value());

    CacheRecord r;
    r.key = key;
    r.created_by = "RUN true # buildkit";
    r.created = "2024-01-01T00:00:00Z";
    formats::Descriptor layer;
    layer.media_type = "application/vnd.oci.image.layer.v1.tar+zstd";
    layer.digest = formats::Digest::of("layer");
    layer.size = 5;
    r.layer = layer;
    r.diff_id = formats::Digest::of("diff");
    r.chain_id = formats::Digest::of("chain");
    cache.store(r);

    auto got = cache.lookup(key);
    REQUIRE(got.has_value());
    CHECK(got->created == r.created);
    CHECK(got->created_by == r.created_by);
    REQUIRE(got->layer.has_value());
    CHECK(*got->layer == layer);
    CHECK(*got->diff_id == *r.diff_id);
    CHECK(*got->chain_id == *r.chain_id);

    auto j = nlohmann::json::parse(fs::read_file(dir.path() + "/cache/" + key + ".json"));
    CHECK(j["blobs"] == nlohmann::json::array({layer.digest.str()}));
    CHECK(j["chain_ids"] == nlohmann::json::array({r.chain_id->str()}));

    CacheRecord empty{cache_key({"y"}), "ENV A=b", "2024-01-01T00:00:00Z", {}, {}, {}};
    cache.store(empty);
    auto e = cache.lookup(empty.key);
    REQUIRE(e.has_value());
    CHECK_FALSE(e->layer.has_value());
}

TEST_CASE("An unreadable or mismatched cache record is a miss, not an error") {
    TempDir dir;
    BuildCache cache(dir.path());
    std::string key = cache_key({"z"});
    fs::write_file_atomic(dir.path() + "/" + key + ".json", "{not json");
    CHECK_FALSE(cache.lookup(key).has_value());
    fs::write_file_atomic(dir.path() + "/" + key + ".json",
                          "{\"key\":\"" + cache_key({"other"}) + "\",\"layer\":null}");
    CHECK_FALSE(cache.lookup(key).has_value());
}

TEST_CASE("Probe records remember the content a step read") {
    TempDir dir;
    BuildCache cache(dir.path());
    CHECK_FALSE(cache.last_content("p").has_value());
    cache.remember_content("p", "sha256:abc");
    CHECK(cache.last_content("p").value() == "sha256:abc");
}
