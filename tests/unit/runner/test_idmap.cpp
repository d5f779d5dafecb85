// The rootless id map: parsing /etc/subuid and /etc/subgid, and the maps
// built from them (no privileges needed).
#include "runner/idmap.hpp"
#include "runner/subid.hpp"
#include "util/fs.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <pwd.h>
#include <set>
#include <unistd.h>

using namespace strata::runner;

TEST_CASE("subordinate ranges are found by user name or numeric id, in file order") {
    const char* file = "# comment\n"
                       "alice:100000:65536\n"
                       "bob:165536:65536\n"
                       "1001:300000:10\n"
                       "alice:500000:1000\n"
                       "alice:bad:10\n"
                       "alice:1:\n"
                       "alice:600000:0\n"
                       "alice\n";
    auto a = subordinate_ranges(file, "alice", 1000);
    REQUIRE(a.size() == 2);
    CHECK(a[0].start == 100000);
    CHECK(a[0].count == 65536);
    CHECK(a[1].start == 500000);
    CHECK(a[1].count == 1000);
    auto b = subordinate_ranges(file, "", 1001);
    REQUIRE(b.size() == 1);
    CHECK(b[0].start == 300000);
    CHECK(subordinate_ranges(file, "carol", 1002).empty());
    CHECK(subordinate_ranges("", "alice", 1000).empty());
    // A prefix of a name is not the name.
    CHECK(subordinate_ranges("alicex:1:2\n", "alice", 7).empty());
}

namespace {

bool same(const std::vector<IdRange>& a, const std::vector<IdRange>& b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].start != b[i].start || a[i].count != b[i].count) {
            return false;
        }
    }
    return true;
}

} // namespace

TEST_CASE("libsubid grants every owner in /etc/subuid and /etc/subgid what the files say") {
    // libsubid4 is a test dependency (install-deps.sh); uidmap depends on it.
    INFO(libsubid_load_error());
    REQUIRE(libsubid_load_error().empty());
    for (auto kind : {SubidKind::uid, SubidKind::gid}) {
        const char* path = kind == SubidKind::uid ? "/etc/subuid" : "/etc/subgid";
        std::string content = ::access(path, F_OK) == 0 ? strata::fs::read_file(path) : "";
        std::set<std::string> owners{"root", "0"};
        for (std::size_t i = 0; i < content.size();) {
            std::size_t nl = content.find('\n', i);
            std::string line = content.substr(i, nl == std::string::npos ? nl : nl - i);
            i = nl == std::string::npos ? content.size() : nl + 1;
            if (!line.empty() && line[0] != '#' && line.find(':') != std::string::npos) {
                owners.insert(line.substr(0, line.find(':')));
            }
        }
        for (const auto& owner : owners) {
            INFO(path << " owner " << owner);
            auto from_library = libsubid_ranges(kind, owner);
            if (content.empty()) {
                continue; // no file: libsubid's "files" source fails, the parser grants nothing
            }
            REQUIRE(from_library.has_value());
            // The parser matches the name and the uid behind it, as libsubid does.
            std::string name;
            std::uint32_t id = 0xffffffffu;
            if (const passwd* pw = ::getpwnam(owner.c_str());
                pw != nullptr && owner.find_first_not_of("0123456789") != std::string::npos) {
                name = owner;
                id = pw->pw_uid;
            } else if (owner.find_first_not_of("0123456789") == std::string::npos) {
                id = static_cast<std::uint32_t>(std::stoul(owner));
            } else {
                name = owner;
            }
            CHECK(same(*from_library, subordinate_ranges(content, name, id)));
        }
    }
}

TEST_CASE("libsubid leaves no descriptor a container would inherit") {
    auto inheritable = [] {
        std::set<int> out;
        for (int fd = 0; fd < 1024; ++fd) {
            int flags = ::fcntl(fd, F_GETFD);
            if (flags >= 0 && (flags & FD_CLOEXEC) == 0) {
                out.insert(fd);
            }
        }
        return out;
    };
    auto before = inheritable();
    (void)libsubid_ranges(SubidKind::uid, "root");
    (void)libsubid_ranges(SubidKind::gid, "root");
    CHECK(inheritable() == before);
}

TEST_CASE("the files are read when libsubid is absent or fails, never when it answers") {
    const char* file = "alice:100000:65536\n1000:300000:10\n";
    auto from_file = choose_subordinate_ranges(std::nullopt, file, "alice", 1000);
    CHECK(same(from_file, {{100000, 65536}, {300000, 10}}));
    // libsubid's answer stands, also when it grants nothing (an nsswitch
    // source that knows the user better than the local files).
    CHECK(same(choose_subordinate_ranges(std::vector<IdRange>{{700000, 5}}, file, "alice", 1000),
               {{700000, 5}}));
    CHECK(choose_subordinate_ranges(std::vector<IdRange>{}, file, "alice", 1000).empty());
    CHECK(choose_subordinate_ranges(std::nullopt, "", "alice", 1000).empty());
}

TEST_CASE("the full map puts the caller at 0 and the ranges from 1 on, as podman") {
    auto m = make_id_map(1000, 1000, {{100000, 65536}, {500000, 1000}}, {{200000, 65536}},
                         "/usr/bin/newuidmap", "/usr/bin/newgidmap");
    CHECK(m.full());
    CHECK(id_map_text(m.uid) == "0 1000 1\n1 100000 65536\n65537 500000 1000\n");
    CHECK(id_map_text(m.gid) == "0 1000 1\n1 200000 65536\n");
    CHECK(m.uid_count() == 66537);
    CHECK(m.gid_count() == 65537);
}

TEST_CASE("without ranges or helpers only the caller's own ids are mapped, at 0") {
    for (auto m : {make_id_map(1000, 100, {}, {{200000, 10}}, "a", "b"),
                   make_id_map(1000, 100, {{100000, 10}}, {}, "a", "b"),
                   make_id_map(1000, 100, {{100000, 10}}, {{200000, 10}}, "", "b"),
                   make_id_map(1000, 100, {{100000, 10}}, {{200000, 10}}, "a", "")}) {
        CHECK_FALSE(m.full());
        CHECK(id_map_text(m.uid) == "0 1000 1\n");
        CHECK(id_map_text(m.gid) == "0 100 1\n");
        CHECK(m.uid_count() == 1);
    }
}
