#include "inspect_fixture.hpp"

#include "snapshot/tree_diff.hpp"
#include "tests/support/support.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using namespace strata::snapshot;

namespace {

// "A path", "D path", "M path what,what" lines.
std::string show(const std::vector<FileChange>& changes) {
    std::string out;
    for (const auto& c : changes) {
        out += c.change == ChangeType::added ? "A " : c.change == ChangeType::removed ? "D " : "M ";
        out += c.path;
        for (std::size_t i = 0; i < c.what.size(); ++i) {
            out += (i ? "," : " ") + c.what[i];
        }
        out += "\n";
    }
    return out;
}

DiffOptions semantic() { return DiffOptions{true}; }

} // namespace

TEST_CASE("diff between layers of the reference image", "[tree_diff]") {
    auto idx = test::reference_image();
    auto l1 = listing_of(MergedTree(idx, 1));
    auto l2 = listing_of(MergedTree(idx, 2));
    auto l3 = listing_of(MergedTree(idx, 3));
    CHECK(show(diff_listings(l1, l2, semantic())) == "M a/f content\nD a/g\nM h mode\n");
    CHECK(show(diff_listings(l2, l3, semantic())) ==
          "M a/f content\nA a/hl\nD d/x\nD d/y\nA d/z\n");
    CHECK(diff_listings(l3, l3, DiffOptions{}).empty());
    // The hard link reads as the file it points at.
    auto hl = std::find_if(l3.entries.begin(), l3.entries.end(),
                           [](const auto& e) { return e.first == "a/hl"; });
    REQUIRE(hl != l3.entries.end());
    CHECK(hl->second.type == formats::EntryType::file);
    CHECK(hl->second.size == 300);
    CHECK(hl->second.content == test::content("f3"));
}

TEST_CASE("diff sees owner, symlink target, xattrs and mtime changes", "[tree_diff]") {
    auto make = [](std::uint32_t uid, std::string target, std::string xval, std::int64_t mtime) {
        LayerIndex idx(LayerIndex::Options{true});
        auto f = test::file("f", 3);
        f.uid = uid;
        f.mtime_sec = mtime;
        f.xattrs["user.k"] = xval;
        test::add_layer(idx, "L", {{f, "same"}, {test::symlink("s", std::move(target))}});
        return listing_of(MergedTree(idx, 1));
    };
    auto base = make(0, "t1", "v", 100);
    CHECK(diff_listings(base, make(0, "t1", "v", 100), DiffOptions{}).empty());
    CHECK(show(diff_listings(base, make(1000, "t1", "v", 100), DiffOptions{})) == "M f owner\n");
    CHECK(show(diff_listings(base, make(0, "t2", "v", 100), DiffOptions{})) == "M s symlink\n");
    CHECK(show(diff_listings(base, make(0, "t1", "w", 100), DiffOptions{})) == "M f xattrs\n");
    CHECK(show(diff_listings(base, make(0, "t1", "v", 200), DiffOptions{})) == "M f mtime\n");
    CHECK(diff_listings(base, make(0, "t1", "v", 200), semantic()).empty());
}

TEST_CASE("a single layer lists whiteouts and opaque markers as stored", "[tree_diff]") {
    auto idx = test::reference_image();
    auto l = listing_of_layer(idx, 2);
    std::string names;
    for (const auto& [p, m] : l.entries) {
        names += p + "\n";
    }
    CHECK(names == "a/f\na/hl\nd/.wh..wh..opq\nd/z\n");
    CHECK(show(diff_listings(listing_of_layer(idx, 1), l, semantic())) ==
          "D a/.wh.g\nM a/f content\nA a/hl\nA d/.wh..wh..opq\nA d/z\nD h\n");
}

TEST_CASE("a directory compares equal to the image it holds", "[tree_diff]") {
    TempDir tmp;
    const auto root = tmp.path();
    test::write_file(root + "/etc/conf", "hello", 0644);
    test::write_file(root + "/bin/tool", "#!/bin/sh\n", 0755);
    REQUIRE(::symlink("../bin/tool", (root + "/etc/link").c_str()) == 0);
    REQUIRE(::chmod((root + "/etc").c_str(), 0755) == 0);
    REQUIRE(::chmod((root + "/bin").c_str(), 0755) == 0);

    auto entry = [&](formats::TarEntry e) {
        e.uid = ::getuid();
        e.gid = ::getgid();
        return e;
    };
    LayerIndex idx(LayerIndex::Options{true});
    test::add_layer(idx, "L", {{entry(test::dir("bin"))}, {entry(test::file("bin/tool", 10, 0755)), "#!/bin/sh\n"},
                               {entry(test::dir("etc"))}, {entry(test::file("etc/conf", 5)), "hello"},
                               {entry(test::symlink("etc/link", "../bin/tool"))}});
    auto image = listing_of(MergedTree(idx, 1));
    auto disk = listing_of_directory(root);
    CHECK(show(diff_listings(image, disk, semantic())) == "");

    test::write_file(root + "/etc/conf", "hellO", 0644);
    REQUIRE(::chmod((root + "/bin/tool").c_str(), 0700) == 0);
    test::write_file(root + "/new", "", 0644);
    CHECK(show(diff_listings(image, listing_of_directory(root), semantic())) ==
          "M bin/tool mode\nM etc/conf content\nA new\n");
}

TEST_CASE("config differences name the field and key", "[tree_diff]") {
    formats::ImageConfig a;
    a.config.env = {"PATH=/usr/bin", "A=1"};
    a.config.cmd = std::vector<std::string>{"sh"};
    a.config.labels = {{"k", "v"}};
    a.config.exposed_ports = {"80/tcp"};
    a.config.working_dir = "/app";
    a.created = "2024-01-01T00:00:00Z";
    auto b = a;
    CHECK(diff_configs(a, b, DiffOptions{}).empty());
    b.config.env = {"PATH=/usr/bin", "A=2", "B=3"};
    b.config.cmd = std::vector<std::string>{"sh", "-c", "x"};
    b.config.labels = {};
    b.config.exposed_ports = {"80/tcp", "443/tcp"};
    b.config.working_dir = "/srv";
    b.created = "2025-01-01T00:00:00Z";
    std::string out;
    for (const auto& c : diff_configs(a, b, DiffOptions{})) {
        out += c.field + ": " + c.a.value_or("-") + " => " + c.b.value_or("-") + "\n";
    }
    CHECK(out == "WorkingDir: /app => /srv\n"
                 "Env[A]: 1 => 2\n"
                 "Env[B]: - => 3\n"
                 "Cmd: [\"sh\"] => [\"sh\",\"-c\",\"x\"]\n"
                 "Labels[k]: v => -\n"
                 "ExposedPorts[443/tcp]: - => present\n"
                 "Created: 2024-01-01T00:00:00Z => 2025-01-01T00:00:00Z\n");
    CHECK(diff_configs(a, b, semantic()).size() == 6); // no Created
}
