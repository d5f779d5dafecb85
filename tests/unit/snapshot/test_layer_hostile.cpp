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
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{file_entry("../evil"), "x"}};
        },
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

// Docker (containerd's applier) applies a layer over the image's root as if
// chrooted there: a symlink on an entry's path is followed inside the root, an
// absolute target starts at the root and ".." stops at it. The entry lands
// inside; nothing outside changes.
void expect_confined(const std::function<std::vector<LayerEntry>(const World&)>& make,
                     const std::function<std::string(const World&)>& landed,
                     const std::string& content) {
    for (auto mode : {WhiteoutMode::flatten, WhiteoutMode::overlay}) {
        INFO((mode == WhiteoutMode::flatten ? "flatten" : "overlay") << " mode");
        World w;
        write_layer(w.layer, make(w));
        std::string before = w.outside_dump();
        std::string passwd = host_passwd_state();
        apply(w.layer, w.target, mode, /*userxattr=*/true);
        CHECK(fs::read_file(w.target + "/" + landed(w)) == content);
        CHECK(w.outside_dump() == before);
        CHECK(host_passwd_state() == passwd);
    }
}

TEST_CASE("hostile: writing through an absolute symlink lands inside the root") {
    expect_confined(
        [](const World&) {
            return std::vector<LayerEntry>{{dir_entry("etc"), ""},
                                           {symlink_entry("link", "/etc"), ""},
                                           {file_entry("link/passwd"), "pwned"}};
        },
        [](const World&) { return std::string("etc/passwd"); }, "pwned");
    expect_confined(
        [](const World& w) {
            return std::vector<LayerEntry>{{dir_entry(w.outside.substr(1)), ""},
                                           {symlink_entry("esc", w.outside), ""},
                                           {file_entry("esc/sentinel"), "pwned"}};
        },
        [](const World& w) { return w.outside.substr(1) + "/sentinel"; }, "pwned");
    // A link whose target does not exist in the root: Docker's MkdirAll fails.
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("esc", w.outside), ""},
                                           {dir_entry("esc/dir/sub"), ""}};
        },
        "esc/dir/sub", "whose target does not exist");
}

TEST_CASE("hostile: a symlink that leaves the root stops at the root") {
    expect_confined(
        [](const World&) {
            return std::vector<LayerEntry>{{dir_entry("outside"), ""},
                                           {symlink_entry("rel", "../outside"), ""},
                                           {file_entry("rel/sentinel"), "pwned"}};
        },
        [](const World&) { return std::string("outside/sentinel"); }, "pwned");
    expect_confined(
        [](const World&) {
            return std::vector<LayerEntry>{{dir_entry("a"), ""},
                                           {dir_entry("outside"), ""},
                                           {symlink_entry("a/up", "../../../../.."), ""},
                                           {file_entry("a/up/outside/sentinel"), "pwned"}};
        },
        [](const World&) { return std::string("outside/sentinel"); }, "pwned");
    // A relative link to an absolute one is followed link by link.
    expect_confined(
        [](const World& w) {
            return std::vector<LayerEntry>{{dir_entry(w.outside.substr(1)), ""},
                                           {symlink_entry("abs", w.outside), ""},
                                           {symlink_entry("hop", "abs"), ""},
                                           {file_entry("hop/sentinel"), "pwned"}};
        },
        [](const World& w) { return w.outside.substr(1) + "/sentinel"; }, "pwned");
}

TEST_CASE("hostile: hard links to files outside the root are rejected") {
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{hardlink_entry("hl", "../outside/sentinel"), ""}};
        },
        "hl", "\"..\" component");
    // An absolute target is taken inside the root, where it does not exist.
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{hardlink_entry("hl", "/etc/passwd"), ""}};
        },
        "hl", "does not exist");
    expect_rejected(
        [](const World& w) {
            return std::vector<LayerEntry>{{symlink_entry("l", w.outside), ""},
                                           {hardlink_entry("hl", "l/sentinel"), ""}};
        },
        "hl", "does not exist");
}

TEST_CASE("hostile: bad whiteout names are rejected") {
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{file_entry(".wh.."), ""}};
        },
        ".wh..", "bad whiteout name");
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{file_entry("d/.wh..."), ""}};
        },
        "d/.wh...", "bad whiteout name");
    expect_rejected(
        [](const World&) {
            return std::vector<LayerEntry>{{file_entry(".wh."), ""}};
        },
        ".wh.", "bad whiteout name");
}

TEST_CASE("hostile: whiteouts and opaque markers through escaping symlinks stay inside") {
    for (auto mode : {WhiteoutMode::flatten, WhiteoutMode::overlay}) {
        for (std::string link : {std::string("ABS"), std::string("../outside")}) {
            for (std::string marker : {std::string(".wh.sentinel"), std::string(".wh..wh..opq")}) {
                INFO(int(mode) << " " << link << " " << marker);
                World w;
                std::string target = link == "ABS" ? w.outside : link;
                write_layer(w.layer,
                            {{symlink_entry("l", target), ""}, {file_entry("l/" + marker), ""}});
                std::string before = w.outside_dump();
                try {
                    apply(w.layer, w.target, mode, true);
                } catch (const Error& e) {
                    // The link's target is not in the root: refused as Docker's MkdirAll.
                    CHECK_THAT(e.what(), Catch::Contains("whose target does not exist"));
                }
                CHECK(w.outside_dump() == before);
            }
        }
    }
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

TEST_CASE("hostile: an existing absolute symlink in the target is followed inside it") {
    World w;
    REQUIRE(::symlink(w.outside.c_str(), (w.target + "/lower-link").c_str()) == 0);
    std::string before = w.outside_dump();
    write_layer(w.layer, {{file_entry("lower-link/sentinel"), "pwned"}});
    CHECK_THROWS_WITH(apply(w.layer, w.target, WhiteoutMode::flatten),
                      Catch::Contains("lower-link/sentinel") &&
                          Catch::Contains("whose target does not exist"));
    fs::mkdirs(w.target + w.outside);
    apply(w.layer, w.target, WhiteoutMode::flatten);
    CHECK(fs::read_file(w.target + w.outside + "/sentinel") == "pwned");
    CHECK(w.outside_dump() == before);
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
