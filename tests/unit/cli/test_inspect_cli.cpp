// End-to-end checks of history, layers, ls, cat, cp, diff and analyze on
// images with known answers, written into a store with real layer blobs
// (gzip, zstd and uncompressed) and read back through the strata binary.
#include "formats/compression.hpp"
#include "formats/image_archive.hpp"
#include "formats/media_types.hpp"
#include "formats/tar.hpp"
#include "snapshot/store.hpp"
#include "tests/support/support.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using formats::Compression;
using formats::EntryType;
using formats::TarEntry;

namespace {

struct In {
    TarEntry e;
    std::string data;
};

In f(std::string path, std::string data, std::uint32_t mode = 0644) {
    TarEntry e;
    e.path = std::move(path);
    e.type = EntryType::file;
    e.size = data.size();
    e.mode = mode;
    e.mtime_sec = 1700000000;
    return {e, std::move(data)};
}
In d(std::string path, std::uint32_t mode = 0755) {
    TarEntry e;
    e.path = std::move(path);
    e.type = EntryType::dir;
    e.mode = mode;
    e.mtime_sec = 1700000000;
    return {e, {}};
}
In wh(std::string path) { return f(std::move(path), ""); }
In link(std::string path, std::string target, EntryType type) {
    TarEntry e;
    e.path = std::move(path);
    e.type = type;
    e.linkname = std::move(target);
    e.mode = type == EntryType::symlink ? 0777 : 0644;
    e.mtime_sec = 1700000000;
    return {e, {}};
}

struct Built {
    formats::Descriptor desc;
    formats::Digest diff_id;
};

Built put_layer(snapshot::Store& store, const std::vector<In>& entries, Compression c) {
    auto blob = store.new_blob();
    formats::TarWriter::Options o;
    o.compression = c;
    formats::TarWriter w(blob.fd(), o);
    for (const auto& in : entries) {
        w.add_data(in.e, in.data);
    }
    auto digests = w.finish();
    blob.commit_trusted(digests.blob_digest);
    formats::Descriptor desc;
    desc.media_type = std::string(formats::oci_layer_media_type(c));
    desc.digest = digests.blob_digest;
    desc.size = static_cast<std::int64_t>(digests.blob_size);
    return {desc, digests.diff_id};
}

std::string rep(char c, std::size_t n) { return std::string(n, c); }

struct Fixture {
    TempDir tmp;
    std::string root = tmp.path() + "/store";

    Fixture() {
        snapshot::Store store(root);
        // L1 (gzip): a/ a/f(100) a/g(50) d/ d/x(10) d/y(20) h(30) s -> a/f
        // L2 (zstd): a/f(200), a/g deleted, h chmod 0755 (same bytes)
        // L3 (none): a/f(300), d opaque with d/z(5), a/hl hard link to a/f
        std::vector<Built> layers;
        layers.push_back(put_layer(store,
                                   {d("a"), f("a/f", rep('1', 100)), f("a/g", rep('g', 50)), d("d"),
                                    f("d/x", rep('x', 10)), f("d/y", rep('y', 20)),
                                    f("h", rep('h', 30)), link("s", "a/f", EntryType::symlink)},
                                   Compression::gzip));
        layers.push_back(put_layer(
            store, {d("a"), f("a/f", rep('2', 200)), wh("a/.wh.g"), f("h", rep('h', 30), 0755)},
            Compression::zstd));
        layers.push_back(put_layer(store,
                                   {f("a/f", rep('3', 300)), d("d"), wh("d/.wh..wh..opq"),
                                    f("d/z", rep('z', 5)), link("a/hl", "a/f", EntryType::hardlink)},
                                   Compression::none));
        formats::ImageConfig config;
        config.architecture = "amd64";
        config.os = "linux";
        config.created = "2024-01-01T00:00:00Z";
        config.config.env = {"PATH=/usr/bin", "MODE=one"};
        config.config.cmd = std::vector<std::string>{"sh"};
        std::vector<formats::Descriptor> descs;
        for (const auto& l : layers) {
            config.diff_ids.push_back(l.diff_id);
            descs.push_back(l.desc);
        }
        config.history = {
            {"2024-01-01T00:00:00Z", "COPY a d h s /", "", "", false},
            {"2024-01-01T00:00:01Z", "ENV MODE=one", "", "", true},
            {"2024-01-01T00:00:02Z", "RUN rewrite a/f; rm a/g; chmod +x h", "", "", false},
            {"2024-01-01T00:00:03Z", "RUN rewrite a/f; make d opaque; ln a/f a/hl", "", "", false},
        };
        store.set_name(snapshot::Reference::parse("known:1"), store.put_image(config, descs));
        // known:2 differs in config and in one file.
        auto config2 = config;
        config2.config.env = {"PATH=/usr/bin", "MODE=two"};
        config2.config.labels = {{"org.example", "yes"}};
        config2.created = "2025-01-01T00:00:00Z";
        auto extra = put_layer(store, {f("h", rep('H', 31), 0755)}, Compression::gzip);
        config2.diff_ids.push_back(extra.diff_id);
        config2.history.push_back({"2025-01-01T00:00:00Z", "RUN edit h", "", "", false});
        auto descs2 = descs;
        descs2.push_back(extra.desc);
        store.set_name(snapshot::Reference::parse("known:2"), store.put_image(config2, descs2));
    }

    RunResult run(std::vector<std::string> args, bool capture_stderr = false) {
        std::vector<std::string> argv{test::strata_binary(), "--root", root};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_capture(argv, capture_stderr);
    }
    std::string ok(std::vector<std::string> args) {
        auto r = run(std::move(args));
        INFO(r.out);
        REQUIRE(r.status.success());
        return r.out;
    }
};

} // namespace

TEST_CASE("ls shows the tree after each layer", "[inspect_cli]") {
    Fixture fx;
    CHECK(fx.ok({"ls", "-R", "known:1@1"}) == "/a\n/a/f\n/a/g\n/d\n/d/x\n/d/y\n/h\n/s\n");
    CHECK(fx.ok({"ls", "-R", "known:1@2"}) == "/a\n/a/f\n/d\n/d/x\n/d/y\n/h\n/s\n");
    CHECK(fx.ok({"ls", "-R", "known:1"}) == "/a\n/a/f\n/a/hl\n/d\n/d/z\n/h\n/s\n");
    CHECK(fx.ok({"ls", "known:1", "/a"}) == "f\nhl\n");
    CHECK(fx.ok({"ls", "known:1@0"}) == "");
    auto l = fx.ok({"ls", "-l", "known:1", "/"});
    CHECK_THAT(l, Catch::Contains("-rwxr-xr-x     0/0             30 2023-11-14 22:13 h\n"));
    CHECK_THAT(l, Catch::Contains("lrwxrwxrwx     0/0              0 2023-11-14 22:13 s -> a/f\n"));
    auto j = nlohmann::json::parse(fx.ok({"ls", "--format", "json", "known:1", "/a/hl"}));
    REQUIRE(j.size() == 1);
    CHECK(j[0]["path"] == "/a/hl");
    CHECK(j[0]["size"] == 300);
    CHECK(j[0]["layer"] == 3);
    auto bad = fx.run({"ls", "known:1@4"}, true);
    CHECK(bad.status.code() == 2);
    CHECK_THAT(bad.out, Catch::Contains("has 3 layers"));
    auto missing = fx.run({"ls", "known:1", "/nope"}, true);
    CHECK(missing.status.code() == 1);
    CHECK_THAT(missing.out, Catch::Contains("/nope: no such file or directory"));
}

TEST_CASE("cat reads the final version of a file from the layer that holds it", "[inspect_cli]") {
    Fixture fx;
    CHECK(fx.ok({"cat", "known:1", "/a/f"}) == rep('3', 300));
    CHECK(fx.ok({"cat", "known:1@1", "a/f"}) == rep('1', 100));
    CHECK(fx.ok({"cat", "known:1@2", "/a/f"}) == rep('2', 200));
    CHECK(fx.ok({"cat", "known:1", "/a/hl"}) == rep('3', 300)); // hard link
    CHECK(fx.ok({"cat", "known:1", "/s"}) == rep('3', 300));    // symlink followed
    CHECK(fx.ok({"cat", "known:1", "/d/z"}) == "zzzzz");
    auto gone = fx.run({"cat", "known:1", "/a/g"}, true);
    CHECK(gone.status.code() == 1);
    CHECK_THAT(gone.out, Catch::Contains("/a/g: no such file"));
    auto dir = fx.run({"cat", "known:1", "/d"}, true);
    CHECK_THAT(dir.out, Catch::Contains("is a directory"));
}

TEST_CASE("cp copies a file or a subtree out of an image", "[inspect_cli]") {
    Fixture fx;
    TempDir out;
    fx.ok({"cp", "known:1:/a", out.path()});
    CHECK(test::read_file(out.path() + "/a/f") == rep('3', 300));
    CHECK(test::read_file(out.path() + "/a/hl") == rep('3', 300));
    struct stat s1 {}, s2 {};
    REQUIRE(::stat((out.path() + "/a/f").c_str(), &s1) == 0);
    REQUIRE(::stat((out.path() + "/a/hl").c_str(), &s2) == 0);
    CHECK(s1.st_ino == s2.st_ino); // the hard link stays a hard link
    CHECK(s1.st_mtime == 1700000000);
    fx.ok({"cp", "known:1@1:/h", out.path() + "/h-copy"});
    REQUIRE(::stat((out.path() + "/h-copy").c_str(), &s1) == 0);
    CHECK((s1.st_mode & 07777) == 0644);
    fx.ok({"cp", "known:1:/h", out.path() + "/h-final"});
    REQUIRE(::stat((out.path() + "/h-final").c_str(), &s1) == 0);
    CHECK((s1.st_mode & 07777) == 0755);
    fx.ok({"cp", "known:1:/s", out.path()});
    char buf[64] = {};
    REQUIRE(::readlink((out.path() + "/s").c_str(), buf, sizeof buf - 1) == 3);
    CHECK(std::string(buf) == "a/f");
    fx.ok({"cp", "known:1:/", out.path() + "/root"});
    CHECK(test::dump_tree(out.path() + "/root").find("d/z") != std::string::npos);
    auto bad = fx.run({"cp", "known:1:/a", out.path() + "/missing/dir/"}, true);
    CHECK(bad.status.code() == 1);
    auto onto_file = fx.run({"cp", "known:1:/a", out.path() + "/h-copy"}, true);
    CHECK(onto_file.status.code() == 1);
    CHECK_THAT(onto_file.out, Catch::Contains("is not a directory"));
}

TEST_CASE("cp IMAGE:PATH - writes a tar to stdout, as docker cp", "[inspect_cli]") {
    Fixture fx;
    TempDir out;
    std::string tar = fx.ok({"cp", "known:1:/a", "-"});
    CHECK_FALSE(fs::exists("-")); // never a file named "-"
    test::write_file(out.path() + "/a.tar", tar);
    auto fd = fs::open(out.path() + "/a.tar", O_RDONLY | O_CLOEXEC);
    formats::TarReader reader(fd.get(), "a.tar");
    std::map<std::string, formats::TarEntry> entries;
    std::string f_content;
    while (auto e = reader.next()) {
        if (e->path == "a/f") {
            f_content.resize(e->size);
            REQUIRE(reader.read(f_content.data(), f_content.size()) == f_content.size());
        }
        entries[e->path] = *e;
    }
    REQUIRE(entries.count("a") == 1);
    CHECK(entries["a"].type == formats::EntryType::dir);
    REQUIRE(entries.count("a/f") == 1);
    CHECK(entries["a/f"].type == formats::EntryType::file);
    CHECK(entries["a/f"].mtime_sec == 1700000000);
    CHECK(f_content == rep('3', 300));
    // The hard link stays a hard link to the first path written.
    REQUIRE(entries.count("a/hl") == 1);
    CHECK(entries["a/hl"].type == formats::EntryType::hardlink);
    CHECK(entries["a/hl"].linkname == "a/f");
    // A single file: one entry named by its base name.
    std::string one = fx.ok({"cp", "known:1:/h", "-"});
    test::write_file(out.path() + "/h.tar", one);
    auto hfd = fs::open(out.path() + "/h.tar", O_RDONLY | O_CLOEXEC);
    formats::TarReader hreader(hfd.get(), "h.tar");
    auto h = hreader.next();
    REQUIRE(h);
    CHECK(h->path == "h");
    CHECK((h->mode & 07777) == 0755);
    CHECK_FALSE(hreader.next());
}

TEST_CASE("cp stays inside the destination even through symlinks already there",
          "[inspect_cli]") {
    Fixture fx;
    TempDir out;
    TempDir outside;
    fs::mkdirs(out.path() + "/dest");
    REQUIRE(::symlink(outside.path().c_str(), (out.path() + "/dest/a").c_str()) == 0);
    fx.ok({"cp", "known:1:/a", out.path() + "/dest"});
    CHECK(test::dump_tree(outside.path()) == "");
    // The link was resolved inside dest: "/tmp/strata-XXX" became dest/tmp/strata-XXX.
    CHECK(test::read_file(out.path() + "/dest" + outside.path() + "/f") == rep('3', 300));
}

TEST_CASE("history and layers describe each layer", "[inspect_cli]") {
    Fixture fx;
    auto h = nlohmann::json::parse(fx.ok({"history", "--format", "json", "known:1"}));
    REQUIRE(h.size() == 4);
    CHECK(h[0]["created_by"] == "RUN rewrite a/f; make d opaque; ln a/f a/hl"); // newest first
    CHECK(h[0]["size"] == 305);
    CHECK(h[2]["empty_layer"] == true);
    CHECK(h[2]["layer"] == "");
    CHECK(h[3]["size"] == 210);
    auto table = fx.ok({"history", "known:1"});
    CHECK_THAT(table, Catch::Contains("CREATED BY"));
    CHECK_THAT(table, Catch::Contains("<empty>"));

    auto l = nlohmann::json::parse(fx.ok({"layers", "--format", "json", "known:1"}));
    REQUIRE(l.size() == 3);
    CHECK(l[0]["compression"] == "gzip");
    CHECK(l[1]["compression"] == "zstd");
    CHECK(l[2]["compression"] == "none");
    CHECK(l[0]["added"] == 8);
    CHECK(l[1]["added"] == 0);
    CHECK(l[1]["changed"] == 2);
    CHECK(l[1]["removed"] == 1);
    CHECK(l[2]["added"] == 2);
    CHECK(l[2]["changed"] == 1);
    CHECK(l[2]["removed"] == 2);
    CHECK(l[2]["created_by"] == "RUN rewrite a/f; make d opaque; ln a/f a/hl");
    CHECK(l[2]["compressed_size"] == l[2]["uncompressed_size"]);
}

TEST_CASE("analyze reports dive's figures and --ci fails on thresholds", "[inspect_cli]") {
    Fixture fx;
    auto j = nlohmann::json::parse(fx.ok({"analyze", "--format", "json", "known:1"}));
    CHECK(j["image"]["sizeBytes"] == 210 + 230 + 305);
    CHECK(j["image"]["inefficientBytes"] == 600 + 50 + 60);
    CHECK(j["image"]["efficiencyScore"].get<double>() == Approx(165.0 / 745.0));
    CHECK(j["image"]["userWastedPercent"].get<double>() == Approx(710.0 / 535.0));
    CHECK(j["image"]["hiddenBytes"] == 410);
    CHECK(j["image"]["fileReference"][0]["file"] == "/a/f");
    CHECK(j["layer"][0]["hiddenBytes"] == 210);

    auto ci = fx.run({"analyze", "--ci", "known:1"}, true);
    CHECK(ci.status.code() == 1);
    CHECK_THAT(ci.out, Catch::Contains("FAIL: lowestEfficiency"));
    CHECK_THAT(ci.out, Catch::Contains("2 of 2 rules failed"));
    auto pass = fx.run({"analyze", "--ci", "--lowest-efficiency", "0.2",
                        "--highest-user-wasted-percent", "disabled", "--highest-wasted-bytes",
                        "1kB", "known:1"},
                       true);
    CHECK(pass.status.code() == 0);
    auto bytes = fx.run({"analyze", "--ci", "--lowest-efficiency", "0.2",
                         "--highest-user-wasted-percent", "2", "--highest-wasted-bytes", "700",
                         "known:1"},
                        true);
    CHECK(bytes.status.code() == 1);
    CHECK_THAT(bytes.out, Catch::Contains("highestWastedBytes"));
}

TEST_CASE("diff exits 0 when equal, 1 when different and 2 on trouble", "[inspect_cli]") {
    Fixture fx;
    auto same = fx.run({"diff", "known:1", "known:1"});
    CHECK(same.status.code() == 0);
    CHECK(same.out == "");

    auto d = fx.run({"diff", "known:1", "known:2"});
    CHECK(d.status.code() == 1);
    CHECK_THAT(d.out, Catch::Contains("M /h: content (30B -> 31B)"));
    CHECK_THAT(d.out, Catch::Contains("C Env[MODE]: \"one\" -> \"two\""));
    CHECK_THAT(d.out, Catch::Contains("C Labels[org.example]: (absent) -> \"yes\""));
    CHECK_THAT(d.out, Catch::Contains("C Created:"));
    auto sem = fx.run({"diff", "--semantic", "known:1", "known:2"});
    CHECK(sem.status.code() == 1);
    CHECK_THAT(sem.out, !Catch::Contains("Created"));
    CHECK_THAT(sem.out, !Catch::Contains("History"));

    // Layers: layer 2 against layer 3, as stored.
    auto layers = fx.run({"diff", "--semantic", "known:1@2", "known:1@3"});
    CHECK(layers.status.code() == 1);
    CHECK(layers.out == "D /a\n"
                        "D /a/.wh.g (0B)\n"
                        "M /a/f: content (200B -> 300B)\n"
                        "A /a/hl\n"
                        "A /d\n"
                        "A /d/.wh..wh..opq (0B)\n"
                        "A /d/z (5B)\n"
                        "D /h (30B)\n"
                        "4 added, 3 removed, 1 modified, 0 config differences\n");
    // The merged trees after layers 1 and 2: the chmod-only change and the deletion.
    auto merged = fx.run({"diff", "--semantic", "--merged", "known:1@1", "known:1@2"});
    CHECK(merged.out == "M /a/f: content (100B -> 200B)\n"
                        "D /a/g (50B)\n"
                        "M /h: mode (0644 -> 0755)\n"
                        "0 added, 1 removed, 2 modified, 0 config differences\n");

    auto j = nlohmann::json::parse(fx.run({"diff", "--format", "json", "known:1", "known:2"}).out);
    CHECK(j["equal"] == false);
    REQUIRE(j["files"].size() == 1);
    CHECK(j["files"][0]["what"] == nlohmann::json::array({"content"}));

    auto trouble = fx.run({"diff", "known:1", "no-such-image"}, true);
    CHECK(trouble.status.code() == 2);
    CHECK_THAT(trouble.out, Catch::Contains("no such image"));
}

// Root: the copy keeps uid 0 only when strata runs as root.
TEST_CASE("an image compares equal to the directory cp makes of it", "[inspect_cli][root]") {
    Fixture fx;
    TempDir out;
    fx.ok({"cp", "-a", "known:1:/", out.path() + "/rootfs"});
    auto dir = fx.run({"diff", "--semantic", "known:1", out.path() + "/rootfs"});
    CHECK(dir.out == "");
    CHECK(dir.status.code() == 0);
    test::write_file(out.path() + "/rootfs/d/z", "zzzzZ");
    auto changed = fx.run({"diff", "--semantic", "known:1", out.path() + "/rootfs"});
    CHECK(changed.status.code() == 1);
    CHECK_THAT(changed.out, Catch::StartsWith("M /d/z: content (5B)\n"));
}

TEST_CASE("images loaded from an OCI archive and a docker-archive are inspected alike",
          "[inspect_cli]") {
    TempDir tmp;
    // Two layers (zstd, gzip): a file rewritten, another deleted.
    auto write_layer = [&](const std::string& name, const std::vector<In>& entries, Compression c) {
        auto path = tmp.path() + "/" + name;
        auto fd = fs::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        formats::TarWriter::Options o;
        o.compression = c;
        formats::TarWriter w(fd.get(), o);
        for (const auto& in : entries) {
            w.add_data(in.e, in.data);
        }
        auto dg = w.finish();
        return formats::ArchiveWriteLayer{path, std::string(formats::oci_layer_media_type(c)),
                                          dg.blob_digest, static_cast<std::int64_t>(dg.blob_size),
                                          dg.diff_id};
    };
    std::vector<formats::ArchiveWriteLayer> layers{
        write_layer("l1", {d("etc"), f("etc/big", rep('b', 1000)), f("etc/keep", "keep")},
                    Compression::zstd),
        write_layer("l2", {d("etc"), wh("etc/.wh.big"), f("etc/keep", "kept")}, Compression::gzip)};
    formats::ImageConfig config;
    config.architecture = formats::host_platform().architecture;
    config.os = "linux";
    for (const auto& l : layers) {
        config.diff_ids.push_back(l.diff_id);
    }
    config.history = {{"", "ADD etc /etc", "", "", false}, {"", "RUN rm /etc/big", "", "", false}};
    formats::ArchiveWriteImage image{{"archived:1"}, formats::to_json(config), std::nullopt, layers};
    formats::write_oci_archive({image}, tmp.path() + "/oci.tar");
    formats::write_docker_archive({image}, tmp.path() + "/docker.tar");

    for (const std::string kind : {"oci", "docker"}) {
        INFO(kind);
        std::string root = tmp.path() + "/store-" + kind;
        auto strata = [&](std::vector<std::string> args) {
            std::vector<std::string> argv{test::strata_binary(), "--root", root};
            argv.insert(argv.end(), args.begin(), args.end());
            auto r = run_capture(argv);
            REQUIRE(r.status.success());
            return r.out;
        };
        strata({"load", "-q", "-i", tmp.path() + "/" + kind + ".tar"});
        CHECK(strata({"ls", "-R", "archived:1"}) == "/etc\n/etc/keep\n");
        CHECK(strata({"ls", "-R", "archived:1@1"}) == "/etc\n/etc/big\n/etc/keep\n");
        CHECK(strata({"cat", "archived:1", "/etc/keep"}) == "kept");
        CHECK(strata({"cat", "archived:1@1", "/etc/big"}) == rep('b', 1000));
        auto j = nlohmann::json::parse(strata({"analyze", "--format", "json", "archived:1"}));
        CHECK(j["image"]["inefficientBytes"] == 1000 + 4 + 4);
        CHECK(j["image"]["hiddenBytes"] == 1004);
        auto l = nlohmann::json::parse(strata({"layers", "--format", "json", "archived:1"}));
        REQUIRE(l.size() == 2);
        CHECK(l[1]["removed"] == 1);
        CHECK(l[1]["changed"] == 1);
        CHECK(l[0]["diff_id"] == layers[0].diff_id.str());
    }
}
