// Hostile layers: each must be rejected with a message naming the layer and
// the entry, and must leave everything outside the target as it was.
#include "layer_test_util.hpp"
#include "snapshot/layer_apply.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using namespace strata::test;
using formats::TarEntry;
using snapshot::WhiteoutMode;

namespace {

struct World {
    TempDir top;
    std::string outside = top.path() + "/outside";
    std::string target = top.path() + "/target";
    std::string layer = top.path() + "/layer.tar";
    World() {
        write_file(outside + "/sentinel", "untouched");
        write_file(outside + "/dir/file", "untouched too");
        fs::mkdirs(target);
    }
    std::string outside_dump() const { return dump_tree(outside, true); }
};

std::string host_passwd_state() {
    struct stat st = fs::lstat("/etc/passwd");
    return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + ":" +
           std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_nlink) + ":" +
           std::to_string(st.st_ino);
}

// Applies entries (built with the world's paths) in both modes and checks
// the rejection and that nothing outside the target changed.
void expect_rejected(const std::function<std::vector<LayerEntry>(const World&)>& make,
                     const std::string& entry, const std::string& why) {
    for (auto mode : {WhiteoutMode::flatten, WhiteoutMode::overlay}) {
        INFO((mode == WhiteoutMode::flatten ? "flatten" : "overlay") << " mode, entry " << entry);
        World w;
        write_layer(w.layer, make(w));
        std::string before = w.outside_dump();
        std::string passwd = host_passwd_state();
        try {
            apply(w.layer, w.target, mode, /*userxattr=*/true);
            FAIL("the layer was applied");
        } catch (const Error& e) {
            std::string msg = e.what();
            CHECK_THAT(msg, Catch::Contains("layer layer.tar"));
            CHECK_THAT(msg, Catch::Contains("entry \"" + entry + "\""));
            CHECK_THAT(msg, Catch::Contains(why));
        }
        CHECK(w.outside_dump() == before);
        CHECK(host_passwd_state() == passwd);
        // Nothing appeared next to the target either.
        CHECK(dump_tree(w.top.path()).find("/evil") == std::string::npos);
        std::string listing = dump_tree(w.top.path());
        CHECK(listing.find("\n/x") == std::string::npos);
    }
}

} // namespace

TEST_CASE("hostile: ../ in names is rejected") {
    expect_rejected([](const World&) { return std::vector<LayerEntry>{{file_entry("../evil"), "x"}}; },
                    "../evil", "\"..\" component");
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{dir_entry("a"), ""}, {file_entry("a/../../evil"), "x"}};
        },
        "a/../../evil", "\"..\" component");
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{file_entry("../outside/sentinel"), "pwned"}};
        },
        "../outside/sentinel", "\"..\" component");
}

TEST_CASE("hostile: writing through an absolute symlink is rejected") {
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{symlink_entry("link", "/etc"), ""},
                                           {file_entry("link/passwd"), "pwned"}};
        },
        "link/passwd", "absolute symlink");
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("esc", w.outside), ""},
                                           {file_entry("esc/sentinel"), "pwned"}};
        },
        "esc/sentinel", "absolute symlink");
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("esc", w.outside), ""},
                                           {dir_entry("esc/dir/sub"), ""}};
        },
        "esc/dir/sub", "absolute symlink");
}

TEST_CASE("hostile: writing through a symlink that leaves the root is rejected") {
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{symlink_entry("rel", "../outside"), ""},
                                           {file_entry("rel/sentinel"), "pwned"}};
        },
        "rel/sentinel", "leaves the root");
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{dir_entry("a"), ""},
                                           {symlink_entry("a/up", "../../../../.."), ""},
                                           {file_entry("a/up/outside/sentinel"), "pwned"}};
        },
        "a/up/outside/sentinel", "leaves the root");
    // A relative link to an absolute one is checked link by link.
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("abs", w.outside), ""},
                                           {symlink_entry("hop", "abs"), ""},
                                           {file_entry("hop/sentinel"), "pwned"}};
        },
        "hop/sentinel", "absolute symlink");
}

TEST_CASE("hostile: hard links to files outside the root are rejected") {
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{hardlink_entry("hl", "../outside/sentinel"), ""}};
        },
        "hl", "\"..\" component");
    // An absolute target is taken inside the root, where it does not exist.
    expect_rejected(
        [](const World&) { return std::vector<LayerEntry>{{hardlink_entry("hl", "/etc/passwd"), ""}}; },
        "hl", "does not exist");
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("l", w.outside), ""},
                                           {hardlink_entry("hl", "l/sentinel"), ""}};
        },
        "hl", "absolute symlink");
}

TEST_CASE("hostile: bad whiteout names are rejected") {
    expect_rejected([](const World&) { return std::vector<LayerEntry>{{file_entry(".wh.."), ""}}; },
                    ".wh..", "bad whiteout name");
    expect_rejected([](const World&) { return std::vector<LayerEntry>{{file_entry("d/.wh..."), ""}}; },
                    "d/.wh...", "bad whiteout name");
    expect_rejected([](const World&) { return std::vector<LayerEntry>{{file_entry(".wh."), ""}}; },
                    ".wh.", "bad whiteout name");
}

TEST_CASE("hostile: whiteouts and opaque markers through escaping symlinks are rejected") {
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("l", w.outside), ""},
                                           {file_entry("l/.wh.sentinel"), ""}};
        },
        "l/.wh.sentinel", "absolute symlink");
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("l", w.outside), ""},
                                           {file_entry("l/.wh..wh..opq"), ""}};
        },
        "l/.wh..wh..opq", "absolute symlink");
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{symlink_entry("l", "../outside"), ""},
                                           {file_entry("l/.wh..wh..opq"), ""}};
        },
        "l/.wh..wh..opq", "leaves the root");
}

TEST_CASE("hostile: entries over symlinks replace the link and stay inside") {
    for (auto mode : {WhiteoutMode::flatten, WhiteoutMode::overlay}) {
        World w;
        std::string before = w.outside_dump();
        write_layer(w.layer, {
                                 {symlink_entry("l", w.outside + "/sentinel"), ""},
                                 {file_entry("l"), "replaced"},
                                 {symlink_entry("d", w.outside), ""},
                                 {dir_entry("d"), ""},
                                 {file_entry("d/sentinel"), "inside"},
                                 {file_entry("/abs/file"), "leading slash"},
                             });
        apply(w.layer, w.target, mode, true);
        CHECK(fs::read_file(w.target + "/l") == "replaced");
        CHECK(fs::read_file(w.target + "/d/sentinel") == "inside");
        CHECK(fs::read_file(w.target + "/abs/file") == "leading slash");
        CHECK(w.outside_dump() == before);
    }
}

TEST_CASE("hostile: an existing absolute symlink in the target is not written through") {
    World w;
    REQUIRE(::symlink(w.outside.c_str(), (w.target + "/lower-link").c_str()) == 0);
    std::string before = w.outside_dump();
    write_layer(w.layer, {{file_entry("lower-link/sentinel"), "pwned"}});
    CHECK_THROWS_WITH(apply(w.layer, w.target, WhiteoutMode::flatten),
                      Catch::Contains("lower-link/sentinel") &&
                          Catch::Contains("absolute symlink"));
    write_layer(w.layer, {{file_entry(".wh.lower-link"), ""}});
    apply(w.layer, w.target, WhiteoutMode::flatten); // removes the link, not its target
    CHECK_FALSE(fs::exists(w.target + "/lower-link"));
    CHECK(w.outside_dump() == before);
}

TEST_CASE("hostile: truncated compressed layers are rejected naming the codec") {
    for (auto c : {formats::Compression::gzip, formats::Compression::zstd}) {
        World w;
        std::vector<LayerEntry> es;
        for (int i = 0; i < 50; ++i) {
            std::string content(20000, static_cast<char>('a' + i % 26));
            content += std::to_string(i * 7919);
            es.push_back({file_entry("f" + std::to_string(i)), content});
        }
        write_layer(w.layer, es, c);
        std::string bytes = fs::read_file(w.layer);
        fs::write_file_atomic(w.layer, bytes.substr(0, bytes.size() / 2));
        std::string codec(formats::to_string(c));
        CHECK_THROWS_WITH(apply(w.layer, w.target, WhiteoutMode::flatten),
                          Catch::Contains("unexpected end of " + codec + " stream") &&
                              Catch::Contains("layer.tar"));
    }
}
