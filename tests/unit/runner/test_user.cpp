#include "runner/user.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <filesystem>

using namespace strata;
using namespace strata::runner;

namespace {

const char* k_passwd = "root:x:0:0:root:/root:/bin/sh\n"
                       "# a comment\n"
                       "broken line\n"
                       "user:x:1000:1000:A User:/home/user:/bin/sh\n"
                       "nohome:x:1001:1001::\n";
const char* k_group = "root:x:0:\n"
                      "wheel:x:10:root\n"
                      "user:x:1000:\n"
                      "extra:x:2000:other,user\n"
                      "more:x:2001:user\n"
                      "dup:x:1000:user\n";

} // namespace

TEST_CASE("an empty user is root with root's groups and home") {
    auto u = resolve_user_from("", k_passwd, k_group);
    CHECK(u.uid == 0);
    CHECK(u.gid == 0);
    CHECK(u.home == "/root");
    CHECK(u.groups == std::vector<gid_t>{0, 10});
}

TEST_CASE("a user name gives its uid, primary group, home and supplementary groups") {
    auto u = resolve_user_from("user", k_passwd, k_group);
    CHECK(u.uid == 1000);
    CHECK(u.gid == 1000);
    CHECK(u.home == "/home/user");
    CHECK(u.name == "user");
    CHECK(u.groups == std::vector<gid_t>{1000, 2000, 2001});
}

TEST_CASE("a numeric uid in passwd is looked up, one that is not is used as is") {
    auto u = resolve_user_from("1000", k_passwd, k_group);
    CHECK(u.gid == 1000);
    CHECK(u.home == "/home/user");
    auto v = resolve_user_from("4242", k_passwd, k_group);
    CHECK(v.uid == 4242);
    CHECK(v.gid == 0);
    CHECK(v.home == "/");
    CHECK(v.groups == std::vector<gid_t>{0});
}

TEST_CASE("user:group takes the group by name or number") {
    auto u = resolve_user_from("user:wheel", k_passwd, k_group);
    CHECK(u.uid == 1000);
    CHECK(u.gid == 10);
    CHECK(u.groups.front() == 10);
    auto v = resolve_user_from("4242:4343", k_passwd, k_group);
    CHECK(v.uid == 4242);
    CHECK(v.gid == 4343);
}

TEST_CASE("a user without a home directory gets /") {
    CHECK(resolve_user_from("nohome", k_passwd, k_group).home == "/");
}

TEST_CASE("unknown names are errors naming them, as Docker's") {
    CHECK_THROWS_WITH(resolve_user_from("ghost", k_passwd, k_group),
                      "unable to find user ghost: no matching entries in passwd file");
    CHECK_THROWS_WITH(resolve_user_from("user:ghosts", k_passwd, k_group),
                      "unable to find group ghosts: no matching entries in group file");
    CHECK_THROWS_AS(resolve_user_from("user:", k_passwd, k_group), Error);
    CHECK_THROWS_AS(resolve_user_from("99999999999", k_passwd, k_group), Error);
}

TEST_CASE("passwd is read inside the root even when /etc is a symlink out of it") {
    TempDir host;
    test::write_file(host.path() + "/passwd", "evil:x:0:0::/:/bin/sh\n");
    TempDir root;
    std::filesystem::create_symlink(host.path(), root.path() + "/etc");
    UniqueFd fd(::open(root.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    // /etc resolves to ROOT/<host path>, which does not exist: no users.
    CHECK_THROWS_WITH(resolve_user(fd.get(), "evil"),
                      "unable to find user evil: no matching entries in passwd file");
    CHECK(resolve_user(fd.get(), "").uid == 0);
}

TEST_CASE("root without a passwd file is uid 0 with home /, as runc does") {
    auto u = resolve_user_from("", "", "");
    CHECK(u.uid == 0);
    CHECK(u.gid == 0);
    CHECK(u.home == "/");
    CHECK(u.groups == std::vector<gid_t>{0});
}
