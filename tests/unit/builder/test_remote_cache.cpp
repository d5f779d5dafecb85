// The registry build cache (builder/remote_cache.hpp) against the fake
// registry: export and import round trip, lazy and verified layer download,
// and the refusals (corrupt layer bytes, an image that is not a cache).
#include "builder/cache.hpp"
#include "builder/remote_cache.hpp"
#include "registry/transfer.hpp"
#include "tests/unit/registry/image_fixture.hpp"
#include "tests/unit/registry/servers.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using builder::BuildCache;
using builder::CacheRecord;
using snapshot::Reference;
using snapshot::Store;

namespace {

registry::TransferOptions fast() {
    registry::TransferOptions o;
    o.client.retry.initial_backoff = std::chrono::milliseconds(10);
    o.client.retry.max_backoff = std::chrono::milliseconds(50);
    return o;
}

// Two records in src's cache: a step with a layer and one without.
std::vector<CacheRecord> make_records(Store& src) {
    std::string tar = test::make_tar_layer("f.bin", 50000, 9);
    formats::Digest d = src.put_blob(tar);
    CacheRecord with;
    with.key = builder::cache_key({"parent", "RUN make"});
    with.created_by = "RUN /bin/sh -c make # buildkit";
    with.created = "2026-11-29T10:00:00Z";
    formats::Descriptor layer;
    layer.media_type = "application/vnd.oci.image.layer.v1.tar";
    layer.digest = d;
    layer.size = static_cast<std::int64_t>(tar.size());
    with.layer = layer;
    with.diff_id = d; // uncompressed: the diff ID is the blob digest
    with.chain_id = formats::chain_id({d});
    CacheRecord without;
    without.key = builder::cache_key({with.key, "ENV A=1"});
    without.created_by = "ENV A=1";
    without.created = "2026-11-29T10:00:01Z";
    BuildCache cache(src.cache_dir());
    cache.store(with);
    cache.store(without);
    return {with, without};
}

} // namespace

TEST_CASE("a build cache exported to a registry is imported record by record, layers on demand",
          "[remote-cache]") {
    test::FakeRegistry reg;
    TempDir a, b;
    Store src(a.path());
    auto recs = make_records(src);
    BuildCache src_cache(src.cache_dir());
    Reference ref = Reference::parse(reg.host() + "/cache/app:1");
    builder::CacheExport ex =
        builder::export_cache(src, src_cache, {recs[0].key, recs[1].key, "0000"}, ref, fast());
    CHECK(ex.records == 2);
    CHECK(ex.layers == 1);
    CHECK(ex.push.blobs_uploaded == 2); // the config and the layer

    builder::RegistryCacheSource source(ref, fast().client);
    CHECK(source.records() == 2);
    CHECK(source.manifest_digest() == ex.manifest);
    CHECK_FALSE(source.lookup(builder::cache_key({"other"})).has_value());
    int gets_before = reg.count("GET /v2/cache/app/blobs/" + recs[0].layer->digest.str());

    Store dst(b.path());
    BuildCache cache(dst.cache_dir(), {&source});
    auto got = cache.lookup(recs[0].key);
    REQUIRE(got.has_value());
    CHECK(got->created == recs[0].created);
    CHECK(got->layer->digest == recs[0].layer->digest);
    CHECK(*got->diff_id == *recs[0].diff_id);
    // The record is copied into the store's cache; the layer is not fetched yet.
    CHECK(cache.lookup_local(recs[0].key).has_value());
    CHECK_FALSE(dst.has_blob(recs[0].layer->digest));
    CHECK(reg.count("GET /v2/cache/app/blobs/" + recs[0].layer->digest.str()) == gets_before);
    std::string from;
    CHECK(cache.ensure_layer(dst, *got, &from));
    CHECK(from == ref.domain() + "/cache/app:1");
    CHECK(test::blob_bytes(dst, recs[0].layer->digest) == test::blob_bytes(src, recs[0].layer->digest));
    // Present now: nothing more to fetch.
    from.clear();
    CHECK(cache.ensure_layer(dst, *got, &from));
    CHECK(from.empty());

    auto meta = cache.lookup(recs[1].key);
    REQUIRE(meta.has_value());
    CHECK_FALSE(meta->layer.has_value());
    CHECK(meta->created_by == "ENV A=1");
    CHECK(test::tmp_entries(dst) == 0);
}

TEST_CASE("a cache layer whose bytes do not match its digest is not used and leaves nothing",
          "[remote-cache]") {
    test::FakeRegistry reg({"--corrupt-blobs-over", "10000"});
    TempDir a, b;
    Store src(a.path());
    auto recs = make_records(src);
    Reference ref = Reference::parse(reg.host() + "/cache/app:1");
    builder::export_cache(src, BuildCache(src.cache_dir()), {recs[0].key}, ref, fast());
    builder::RegistryCacheSource source(ref, fast().client); // the config is small: intact
    Store dst(b.path());
    BuildCache cache(dst.cache_dir(), {&source});
    auto got = cache.lookup(recs[0].key);
    REQUIRE(got.has_value());
    CHECK_THROWS_WITH(source.fetch_layer(dst, *got->layer),
                      Catch::Contains(recs[0].layer->digest.str()));
    CHECK_FALSE(cache.ensure_layer(dst, *got, nullptr));
    CHECK_FALSE(dst.has_blob(recs[0].layer->digest));
    CHECK(test::tmp_entries(dst) == 0);
}

TEST_CASE("an image, a missing tag and a corrupt config are not taken for a build cache",
          "[remote-cache]") {
    test::FakeRegistry reg;
    TempDir a;
    Store src(a.path());
    formats::Descriptor m = test::make_image(src, "local/app:v1", 1, 1000, 3);
    Reference img = Reference::parse(reg.host() + "/app:v1");
    registry::push(src, m, img, fast());
    CHECK_THROWS_WITH(builder::RegistryCacheSource(img, fast().client),
                      Catch::Contains("is not a strata build cache") &&
                          Catch::Contains("application/vnd.oci.image.config.v1+json"));
    CHECK_THROWS_AS(builder::RegistryCacheSource(Reference::parse(reg.host() + "/nothing:1"),
                                                 fast().client),
                    registry::NotFoundError);

    test::FakeRegistry bad({"--corrupt-blobs"});
    auto recs = make_records(src);
    Reference ref = Reference::parse(bad.host() + "/cache/app:1");
    builder::export_cache(src, BuildCache(src.cache_dir()), {recs[0].key}, ref, fast());
    CHECK_THROWS_AS(builder::RegistryCacheSource(ref, fast().client), registry::DigestMismatchError);
}
