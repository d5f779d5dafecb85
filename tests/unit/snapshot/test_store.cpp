#include "formats/media_types.hpp"
#include "snapshot/store.hpp"
#include "snapshot/upper_layer.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::snapshot;
using formats::Digest;

namespace {

std::size_t count_entries(const std::string& dir) {
    std::size_t n = 0;
    for (const auto& line : {test::dump_tree(dir)}) {
        for (char c : line) {
            n += c == '\n';
        }
    }
    return n;
}

// A tiny image whose only layer is an arbitrary (not really tar) blob.
formats::Descriptor make_image(Store& store, const std::string& layer_bytes) {
    Digest layer = store.put_blob(layer_bytes);
    formats::Descriptor ld;
    ld.media_type = formats::media::oci_layer;
    ld.digest = layer;
    ld.size = static_cast<std::int64_t>(layer_bytes.size());
    formats::ImageConfig config;
    config.architecture = "amd64";
    config.os = "linux";
    config.diff_ids = {layer};
    config.config.cmd = std::vector<std::string>{"sh"};
    return store.put_image(config, {ld});
}

} // namespace

TEST_CASE("a new store is an OCI image layout") {
    TempDir t;
    Store store(t.path() + "/store");
    auto layout = nlohmann::json::parse(fs::read_file(t.path() + "/store/oci-layout"));
    CHECK(layout["imageLayoutVersion"] == "1.0.0");
    auto index = nlohmann::json::parse(fs::read_file(t.path() + "/store/index.json"));
    CHECK(index["schemaVersion"] == 2);
    CHECK(index["manifests"].empty());
    CHECK(fs::is_dir(t.path() + "/store/blobs/sha256"));
}

TEST_CASE("blobs are stored under their digest and checked when read") {
    TempDir t;
    Store store(t.path());
    Digest d = store.put_blob("hello");
    CHECK(d.str() == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    CHECK(store.read_blob(d) == "hello");
    test::write_file(store.blob_path(d), "hellO");
    CHECK_THROWS_WITH(store.read_blob(d), Catch::Contains(d.str()) && Catch::Contains("corrupt"));
    auto problems = store.verify();
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0].what, Catch::Contains(d.str()));
}

TEST_CASE("a blob whose bytes do not match the expected digest is not published") {
    TempDir t;
    Store store(t.path());
    Digest expected = Digest::of("the real content");
    {
        BlobWriter w = store.new_blob();
        w.write("tampered", 8);
        CHECK_THROWS_WITH(w.commit(expected), Catch::Contains(expected.str()) &&
                                                  Catch::Contains(Digest::of("tampered").str()));
    }
    CHECK_FALSE(store.has_blob(expected));
    CHECK_FALSE(store.has_blob(Digest::of("tampered")));
    CHECK(count_entries(t.path() + "/tmp") == 0);
}

TEST_CASE("names resolve by tag, full name, image ID and ID prefix") {
    TempDir t;
    Store store(t.path());
    auto m = make_image(store, "layer-a");
    store.set_name(Reference::parse("app:1"), m);
    Image img = store.load(m);
    CHECK(store.resolve("app:1").manifest.digest == m.digest);
    CHECK(store.resolve("docker.io/library/app:1").manifest.digest == m.digest);
    CHECK(store.resolve(img.id().str()).manifest.digest == m.digest);
    CHECK(store.resolve(img.id().short_id()).manifest.digest == m.digest);
    CHECK_THROWS_WITH(store.resolve("app:2"), "no such image: app:2");
    auto index = nlohmann::json::parse(fs::read_file(t.path() + "/index.json"));
    REQUIRE(index["manifests"].size() == 1);
    CHECK(index["manifests"][0]["annotations"][std::string(k_ref_name_annotation)] ==
          "docker.io/library/app:1");

    // Re-pointing a name replaces it; removing it leaves the store without it.
    auto m2 = make_image(store, "layer-b");
    store.set_name(Reference::parse("app:1"), m2);
    CHECK(store.resolve("app:1").manifest.digest == m2.digest);
    CHECK(store.images().size() == 1);
    CHECK(store.remove_name(Reference::parse("app:1")));
    CHECK_FALSE(store.remove_name(Reference::parse("app:1")));
    CHECK(store.images().empty());
}

TEST_CASE("naming a manifest that is not in the store fails and changes nothing") {
    TempDir t;
    Store store(t.path());
    formats::Descriptor ghost;
    ghost.media_type = formats::media::oci_manifest;
    ghost.digest = Digest::of("not stored");
    ghost.size = 10;
    std::string before = fs::read_file(t.path() + "/index.json");
    CHECK_THROWS_WITH(store.set_name(Reference::parse("ghost"), ghost),
                      Catch::Contains(ghost.digest.str()));
    CHECK(fs::read_file(t.path() + "/index.json") == before);
}

TEST_CASE("a manifest pointing at a missing blob is reported by load and verify") {
    TempDir t;
    Store store(t.path());
    auto m = make_image(store, "layer-c");
    store.set_name(Reference::parse("broken"), m);
    Image img = store.load(m);
    fs::remove_all(store.blob_path(img.manifest.config.digest));
    CHECK_THROWS_WITH(store.load(m), Catch::Contains(img.manifest.config.digest.str()) &&
                                         Catch::Contains("missing"));
    CHECK_FALSE(store.verify().empty());
}

TEST_CASE("gc removes what no image reaches and keeps the rest") {
    TempDir t;
    Store store(t.path());
    auto keep = make_image(store, "kept layer");
    store.set_name(Reference::parse("keep"), keep);
    auto drop = make_image(store, "dropped layer");
    store.set_name(Reference::parse("drop"), drop);
    Image kept = store.load(keep);
    Image dropped = store.load(drop);
    store.remove_name(Reference::parse("drop"));
    // gc keeps what changed at or after its start on the kernel's coarse
    // clock (someone else's work in progress): let one tick (at most 10 ms)
    // pass, as between two strata commands.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto r = store.gc();
    CHECK(r.blobs_removed == 3); // manifest, config, layer
    CHECK(store.has_blob(keep.digest));
    CHECK(store.has_blob(kept.manifest.layers[0].digest));
    CHECK_FALSE(store.has_blob(drop.digest));
    CHECK_FALSE(store.has_blob(dropped.manifest.layers[0].digest));
    CHECK(store.verify().empty());
}

TEST_CASE("an upper directory's layer committed later is in the store only once committed") {
    TempDir t;
    Store store(t.path() + "/store");
    std::string upper = t.path() + "/upper";
    fs::mkdirs(upper + "/etc");
    test::write_file(upper + "/etc/motd", "hello\n");
    formats::TarWriter::Options to;
    to.compression = formats::Compression::zstd;
    to.chunked = true;
    to.start_writeback = false;
    auto count_tmp = [&] { return count_entries(store.tmp_dir()); };
    std::size_t tmp_before = count_tmp();

    // Committed: the blob is there under its digest, and holds the layer.
    auto later = put_upper_layer(store, upper, to, nullptr, {}, nullptr, nullptr, nullptr, nullptr,
                                 nullptr, true);
    REQUIRE(later);
    REQUIRE(later->commit);
    CHECK_FALSE(store.has_blob(later->layer.digest));
    CHECK(count_tmp() == tmp_before + 1); // the blob being written
    later->commit();
    CHECK(store.has_blob(later->layer.digest));
    CHECK(Digest::of(store.read_blob(later->layer.digest)) == later->layer.digest);
    CHECK(count_tmp() == tmp_before);
    // The same layer committed at once has the same digest and no commit.
    auto now = put_upper_layer(store, upper, to);
    REQUIRE(now);
    CHECK_FALSE(now->commit);
    CHECK(now->layer.digest == later->layer.digest);
    CHECK(now->diff_id == later->diff_id);

    // Never committed: nothing published, nothing left behind.
    test::write_file(upper + "/etc/motd", "other\n");
    auto dropped = put_upper_layer(store, upper, to, nullptr, {}, nullptr, nullptr, nullptr,
                                   nullptr, nullptr, true);
    REQUIRE(dropped);
    formats::Digest digest = dropped->layer.digest;
    CHECK(digest != later->layer.digest);
    dropped.reset();
    CHECK_FALSE(store.has_blob(digest));
    CHECK(count_tmp() == tmp_before);
}

TEST_CASE("sync_tree asks about every regular file by its path in the tree, and no other entry") {
    // The names it is asked about must be the paths of a COPY's linked files
    // (LinkedFiles: "data/a.bin"): a file it is told is on disk is not
    // fsynced, every other one is.
    TempDir t;
    std::string root = t.path() + "/upper";
    fs::mkdirs(root + "/data/sub/deeper", 0755);
    fs::mkdirs(root + "/empty", 0755);
    fs::write_file_atomic(root + "/top.txt", "t");
    fs::write_file_atomic(root + "/data/a.bin", "a");
    fs::write_file_atomic(root + "/data/sub/b.bin", "b");
    fs::write_file_atomic(root + "/data/sub/deeper/c.bin", "c");
    REQUIRE(::symlink("a.bin", (root + "/data/link").c_str()) == 0);
    REQUIRE(::mkfifo((root + "/data/fifo").c_str(), 0600) == 0);
    std::set<std::string> asked;
    Store::sync_tree(root, [&](const std::string& rel) {
        asked.insert(rel);
        return rel == "data/a.bin";
    });
    CHECK(asked == std::set<std::string>{"top.txt", "data/a.bin", "data/sub/b.bin",
                                         "data/sub/deeper/c.bin"});
    // More files than it fsyncs one by one: the rest by one syncfs, no error.
    fs::mkdirs(root + "/many", 0755);
    for (int i = 0; i < 300; ++i) {
        fs::write_file_atomic(root + "/many/f" + std::to_string(i), "x");
    }
    asked.clear();
    Store::sync_tree(root, [&](const std::string& rel) {
        asked.insert(rel);
        return false;
    });
    CHECK(asked.size() > 256);
    CHECK(asked.size() < 305);
    // A tree that is not there is named.
    try {
        Store::sync_tree(root + "/missing", {});
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find(root + "/missing") != std::string::npos);
    }
}
