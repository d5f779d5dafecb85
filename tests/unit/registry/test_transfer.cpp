// pull/push between the store and the Python fake registry: round trips,
// indexes, wrong bytes, retries, and what an interrupted pull leaves behind.
#include "formats/media_types.hpp"
#include "registry/transfer.hpp"
#include "tests/unit/registry/image_fixture.hpp"
#include "tests/unit/registry/servers.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::registry;
using snapshot::Reference;
using snapshot::Store;

namespace {

TransferOptions fast() {
    TransferOptions o;
    o.client.retry.initial_backoff = std::chrono::milliseconds(10);
    o.client.retry.max_backoff = std::chrono::milliseconds(50);
    return o;
}

} // namespace

TEST_CASE("push then pull through the fake registry round-trips every blob", "[transfer]") {
    test::FakeRegistry reg;
    TempDir a, b;
    Store src(a.path());
    formats::Descriptor m = test::make_image(src, "local/app:v1", 3, 70000, 1);
    Reference dest = Reference::parse(reg.host() + "/team/app:v1");
    PushResult pushed = push(src, m, dest, fast());
    CHECK(pushed.blobs_uploaded == 4);
    CHECK(pushed.manifest.digest == m.digest);

    Store dst(b.path());
    PullResult pulled = pull(dst, dest, fast());
    CHECK(pulled.manifest.digest == m.digest);
    CHECK(pulled.blobs_fetched == 4);
    snapshot::Image got = dst.load(dest.full());
    snapshot::Image want = src.load(m);
    REQUIRE(got.manifest.layers.size() == 3);
    CHECK(test::blob_bytes(dst, m.digest) == test::blob_bytes(src, m.digest));
    CHECK(test::blob_bytes(dst, want.manifest.config.digest) ==
          test::blob_bytes(src, want.manifest.config.digest));
    for (const auto& l : want.manifest.layers) {
        CHECK(test::blob_bytes(dst, l.digest) == test::blob_bytes(src, l.digest));
    }
    // Pushing again finds every blob; pulling again fetches nothing.
    PushResult again = push(src, m, dest, fast());
    CHECK(again.blobs_existed == 4);
    CHECK(again.blobs_uploaded == 0);
    CHECK(pull(dst, dest, fast()).blobs_skipped == 4);
    CHECK(test::tmp_entries(dst) == 0);
}

TEST_CASE("pushing to another repository of the same registry mounts the blobs", "[transfer]") {
    test::FakeRegistry reg;
    TempDir a;
    Store s(a.path());
    formats::Descriptor m = test::make_image(s, "local/app:v1", 2, 5000, 2);
    Reference first = Reference::parse(reg.host() + "/base/app:v1");
    push(s, m, first, fast());
    s.set_name(first, m); // as after a pull from there
    PushResult r = push(s, m, Reference::parse(reg.host() + "/other/app:v1"), fast());
    CHECK(r.blobs_mounted == 3);
    CHECK(r.blobs_uploaded == 0);
    CHECK(reg.count("mount=") == 3);
}

TEST_CASE("an index picks the host platform's manifest", "[transfer]") {
    test::FakeRegistry reg;
    TempDir a, b;
    Store src(a.path());
    formats::Descriptor m = test::make_image(src, "local/app:v1", 1, 1000, 3);
    Reference dest = Reference::parse(reg.host() + "/multi/app:v1");
    push(src, m, dest, fast());
    Client c(reg.host(), fast().client);
    formats::Index index;
    index.media_type = formats::media::oci_index;
    formats::Descriptor other = m;
    other.digest = formats::Digest::of("not here");
    other.platform = formats::Platform{"s390x", "linux", "", {}, ""};
    formats::Descriptor mine = m;
    mine.platform = formats::host_platform();
    index.manifests = {other, mine};
    c.put_manifest("multi/app", "multi", std::string(formats::media::oci_index),
                   formats::to_json(index));

    Store dst(b.path());
    Reference ref = Reference::parse(reg.host() + "/multi/app:multi");
    PullResult r = pull(dst, ref, fast());
    CHECK(r.manifest.digest == m.digest);
    CHECK(r.index.has_value());
    CHECK(dst.find(ref).has_value());

    TransferOptions want_arm = fast();
    want_arm.platform = formats::Platform{"riscv64", "linux", "", {}, ""};
    CHECK_THROWS_WITH(pull(dst, ref, want_arm),
                      Catch::Contains("no image for platform linux/riscv64") &&
                          Catch::Contains("linux/s390x"));
}

TEST_CASE("a registry serving wrong bytes leaves nothing in the store", "[transfer]") {
    test::FakeRegistry good;
    test::FakeRegistry bad({"--corrupt-blobs"});
    TempDir a, b;
    Store src(a.path());
    formats::Descriptor m = test::make_image(src, "local/app:v1", 2, 20000, 4);
    Reference ref = Reference::parse(bad.host() + "/app:v1");
    push(src, m, ref, fast());
    Store dst(b.path());
    try {
        pull(dst, ref, fast());
        FAIL("no error");
    } catch (const DigestMismatchError& e) {
        std::string msg = e.what();
        CHECK(msg.find(bad.host() + "/app@sha256:") != std::string::npos);
    }
    CHECK_FALSE(dst.find(ref).has_value());
    snapshot::Image img = src.load(m);
    for (const auto& l : img.manifest.layers) {
        CHECK_FALSE(dst.has_blob(l.digest));
    }
    CHECK_FALSE(dst.has_blob(img.manifest.config.digest));
    CHECK_FALSE(dst.has_blob(m.digest));
    CHECK(test::tmp_entries(dst) == 0);
}

TEST_CASE("a pull through 429 and 503 answers succeeds after retries", "[transfer]") {
    test::FakeRegistry reg({"--flaky", "2"});
    TempDir a, b;
    Store src(a.path());
    formats::Descriptor m = test::make_image(src, "local/app:v1", 2, 3000, 5);
    Reference ref = Reference::parse(reg.host() + "/app:v1");
    push(src, m, ref, fast());
    Store dst(b.path());
    CHECK(pull(dst, ref, fast()).manifest.digest == m.digest);
    CHECK(reg.count(" 429") >= 4);
    CHECK(reg.count(" 503") >= 4);
}

TEST_CASE("an interrupted pull leaves no name and no partial blob, and pulling again completes it",
          "[transfer]") {
    test::FakeRegistry reg;
    TempDir a, b;
    Store src(a.path());
    formats::Descriptor m = test::make_image(src, "local/app:v1", 4, 200000, 6);
    Reference ref = Reference::parse(reg.host() + "/app:v1");
    push(src, m, ref, fast());

    Store dst(b.path());
    TransferOptions o = fast();
    o.jobs = 1;
    int done = 0;
    o.progress = [&](const TransferEvent& e) {
        if (e.kind == TransferEvent::Kind::done && ++done == 2) {
            throw Error("interrupted");
        }
    };
    CHECK_THROWS_WITH(pull(dst, ref, o), "interrupted");
    CHECK_FALSE(dst.find(ref).has_value());
    CHECK_FALSE(dst.has_blob(m.digest));
    CHECK(test::tmp_entries(dst) == 0);

    PullResult r = pull(dst, ref, fast());
    CHECK(r.blobs_skipped == 2);
    CHECK(r.blobs_fetched == 3);
    CHECK(dst.find(ref).has_value());
    CHECK(dst.load(ref.full()).manifest.layers.size() == 4);
}

TEST_CASE("pulling an unknown image names it and changes nothing", "[transfer]") {
    test::FakeRegistry reg;
    TempDir b;
    Store dst(b.path());
    Reference ref = Reference::parse(reg.host() + "/nothing/here:v1");
    CHECK_THROWS_WITH(pull(dst, ref, fast()),
                      Catch::Contains(reg.host() + "/nothing/here:v1") &&
                          Catch::Contains("manifest unknown"));
    CHECK(dst.images().empty());
}
