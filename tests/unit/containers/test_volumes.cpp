#include "containers/volumes.hpp"
#include "snapshot/store.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using namespace strata::containers;

TEST_CASE("volume names follow Docker's local driver rule", "[volumes]") {
    CHECK(valid_volume_name("data"));
    CHECK(valid_volume_name("a1"));
    CHECK(valid_volume_name("my_vol.v-2"));
    CHECK_FALSE(valid_volume_name("a"));
    CHECK_FALSE(valid_volume_name(""));
    CHECK_FALSE(valid_volume_name("_data"));
    CHECK_FALSE(valid_volume_name(".hidden"));
    CHECK_FALSE(valid_volume_name("a/b"));
    CHECK_FALSE(valid_volume_name(".."));
    CHECK_FALSE(valid_volume_name("sp ace"));
    CHECK_THROWS_WITH(check_volume_name("x"), Catch::Contains("volume name is too short"));
    CHECK_THROWS_WITH(check_volume_name("../etc"),
                      Catch::Contains("\"../etc\" includes invalid characters for a local volume "
                                      "name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"));
}

TEST_CASE("local driver options are checked as Docker checks them", "[volumes]") {
    CHECK_NOTHROW(check_volume_options({{"type", "tmpfs"}, {"device", "tmpfs"}, {"o", "size=1m"}}));
    CHECK_THROWS_WITH(check_volume_options({{"foo", "1"}}),
                      Catch::Contains("invalid option: \"foo\""));
    CHECK_THROWS_WITH(check_volume_options({{"type", "tmpfs"}}),
                      Catch::Contains("missing required option: \"device\""));
    CHECK_THROWS_WITH(check_volume_options({{"o", "size=1m"}}),
                      Catch::Contains("missing required option"));
}

TEST_CASE("volumes are created, found, listed and removed in the store", "[volumes]") {
    TempDir dir;
    snapshot::Store store(dir.path() + "/store");
    VolumeStore vs(store);
    CHECK(vs.list().empty());
    CHECK_FALSE(fs::exists(dir.path() + "/store/volumes")); // nothing written until a create

    VolumeCreate req;
    req.name = "data";
    req.labels = StringMap{{"k", "v"}};
    req.options = StringMap{};
    auto [v, created] = vs.create(req);
    CHECK(created);
    CHECK(v.name == "data");
    CHECK(v.mountpoint == store.root() + "/volumes/data/_data");
    CHECK(fs::is_dir(v.mountpoint));
    CHECK(fs::exists(store.root() + "/volumes/data/volume.json"));
    CHECK_FALSE(v.anonymous());

    auto j = v.to_json();
    std::vector<std::string> keys;
    for (const auto& [k, val] : j.items()) {
        keys.push_back(k);
    }
    CHECK(keys == std::vector<std::string>{"CreatedAt", "Driver", "Labels", "Mountpoint", "Name",
                                           "Options", "Scope"});
    CHECK(j["Driver"] == "local");
    CHECK(j["Scope"] == "local");
    CHECK(j["Options"].is_object());
    CHECK(j["Labels"]["k"] == "v");

    // Creating it again returns the same volume, its labels unchanged.
    req.labels = StringMap{{"other", "x"}};
    auto [again, created_again] = vs.create(req);
    CHECK_FALSE(created_again);
    CHECK(again.labels == StringMap{{"k", "v"}});
    CHECK(again.created_at == v.created_at);

    VolumeCreate anon;
    auto [a, a_created] = vs.create(anon);
    CHECK(a_created);
    CHECK(a.name.size() == 64);
    CHECK(a.anonymous());
    CHECK(a.to_json()["Labels"][std::string(k_anonymous_volume_label)] == "");
    CHECK(a.to_json()["Options"].is_null());

    auto all = vs.list();
    REQUIRE(all.size() == 2);

    CHECK_THROWS_WITH(vs.get("nosuch"), "get nosuch: no such volume");
    CHECK_THROWS_WITH(vs.remove("nosuch"), "get nosuch: no such volume");
    CHECK_FALSE(vs.remove("nosuch", true));
    CHECK_THROWS_AS(vs.create(VolumeCreate{"a", "local", {}, {}}), UsageError);
    CHECK_THROWS_WITH(vs.create(VolumeCreate{"xx", "nfs-plugin", {}, {}}),
                      Catch::Contains("plugin \"nfs-plugin\" not found"));

    test::write_file(v.mountpoint + "/f", "hello");
    CHECK(vs.size(vs.get("data")) == 5);
    CHECK(vs.remove("data"));
    CHECK_FALSE(vs.maybe_get("data"));
    CHECK_FALSE(fs::exists(store.root() + "/volumes/data"));
    // The store is still an OCI layout (volumes/ is a directory beside it).
    CHECK(fs::exists(store.root() + "/oci-layout"));
    CHECK(fs::exists(store.root() + "/index.json"));
}

TEST_CASE("a volume in use cannot be removed or pruned; a dead user does not count", "[volumes]") {
    TempDir dir;
    snapshot::Store store(dir.path() + "/store");
    VolumeStore vs(store);
    vs.create(VolumeCreate{"busy", "local", std::nullopt, std::nullopt});
    vs.create(VolumeCreate{"", "local", std::nullopt, std::nullopt});
    std::string id(64, 'a');
    {
        VolumeStore::Use use = vs.use("busy", id);
        CHECK(vs.users("busy") == std::vector<std::string>{id});
        CHECK_THROWS_WITH(vs.remove("busy"), "remove busy: volume is in use - [" + id + "]");
        CHECK_THROWS_WITH(vs.remove("busy", true), Catch::Contains("volume is in use"));
        auto r = vs.prune([](const Volume&) { return true; });
        CHECK(r.removed.size() == 1); // the anonymous one, not "busy"
        CHECK(vs.maybe_get("busy"));
    }
    CHECK(vs.users("busy").empty());

    // A use file whose holder died (no flock on it) is stale.
    test::write_file(store.root() + "/volumes/busy/users/" + std::string(64, 'b'), "");
    CHECK(vs.users("busy").empty());
    CHECK_FALSE(fs::exists(store.root() + "/volumes/busy/users/" + std::string(64, 'b')));
    CHECK_THROWS_WITH(vs.use("gone", id), "get gone: no such volume");
    CHECK(vs.remove("busy"));
}

TEST_CASE("prune keeps named volumes unless asked and reports the space", "[volumes]") {
    TempDir dir;
    snapshot::Store store(dir.path() + "/store");
    VolumeStore vs(store);
    auto named = vs.create(VolumeCreate{"keepme", "local", StringMap{}, StringMap{}}).first;
    auto anon = vs.create(VolumeCreate{}).first;
    test::write_file(anon.mountpoint + "/x", std::string(1000, 'x'));
    auto r = vs.prune([](const Volume& v) { return v.anonymous(); });
    CHECK(r.removed == std::vector<std::string>{anon.name});
    CHECK(r.bytes == 1000);
    CHECK(vs.maybe_get("keepme"));
    r = vs.prune([](const Volume&) { return true; });
    CHECK(r.removed == std::vector<std::string>{"keepme"});
    CHECK(vs.list().empty());
}

TEST_CASE("copy_tree keeps types, modes, symlinks and hard links and never follows a link",
          "[volumes]") {
    TempDir dir;
    std::string src = dir.path() + "/src";
    std::string dst = dir.path() + "/dst";
    fs::mkdirs(src + "/sub", 0755);
    fs::mkdirs(dst, 0755);
    test::write_file(src + "/a", "A", 0640);
    test::write_file(src + "/sub/b", "B", 0600);
    REQUIRE(::chmod((src + "/sub").c_str(), 0710) == 0);
    REQUIRE(::link((src + "/a").c_str(), (src + "/sub/a-link").c_str()) == 0);
    REQUIRE(::symlink("/etc/passwd", (src + "/abs").c_str()) == 0);
    REQUIRE(::symlink("../../outside", (src + "/sub/rel").c_str()) == 0);
    REQUIRE(::mkfifo((src + "/fifo").c_str(), 0644) == 0);
    UniqueFd s = fs::open(src, O_RDONLY | O_DIRECTORY);
    UniqueFd d = fs::open(dst, O_RDONLY | O_DIRECTORY);
    copy_tree(s.get(), d.get());
    CHECK(test::dump_tree(src) == test::dump_tree(dst));
    struct stat a = fs::lstat(dst + "/a");
    struct stat al = fs::lstat(dst + "/sub/a-link");
    CHECK(a.st_ino == al.st_ino);
    CHECK(a.st_nlink == 2);
    CHECK(S_ISLNK(fs::lstat(dst + "/abs").st_mode));
    CHECK(S_ISFIFO(fs::lstat(dst + "/fifo").st_mode));
    CHECK((fs::lstat(dst + "/sub").st_mode & 07777) == 0710);
}

TEST_CASE("a volume named in a container record's Mounts is in use, running or not", "[volumes]") {
    TempDir dir;
    snapshot::Store store(dir.path() + "/store");
    VolumeStore vs(store);
    vs.create(VolumeCreate{"kept", "local", std::nullopt, std::nullopt});
    std::string id(64, 'c');
    fs::mkdirs(store.root() + "/containers/" + id, 0700);
    test::write_file(store.root() + "/containers/" + id + "/config.json",
                     R"({"Id":")" + id +
                         R"(","Mounts":[{"Type":"bind","Source":"/x","Destination":"/x"},)"
                         R"({"Type":"volume","Name":"kept","Destination":"/data"}]})");
    fs::mkdirs(store.root() + "/containers/names", 0700); // not a record
    CHECK(vs.users("kept") == std::vector<std::string>{id});
    CHECK_THROWS_WITH(vs.remove("kept"), "remove kept: volume is in use - [" + id + "]");
    CHECK(vs.prune([](const Volume&) { return true; }).removed.empty());
    fs::remove_all(store.root() + "/containers/" + id);
    CHECK(vs.remove("kept"));
}

TEST_CASE("rm -v removes a container's anonymous volumes, never its named ones", "[volumes]") {
    TempDir dir;
    snapshot::Store store(dir.path() + "/store");
    VolumeStore vs(store);
    vs.create(VolumeCreate{"named", "local", std::nullopt, std::nullopt});
    Volume anon = vs.create(VolumeCreate{}).first;
    nlohmann::json config = {{"Mounts",
                              {{{"Type", "volume"}, {"Name", "named"}, {"Destination", "/n"}},
                               {{"Type", "volume"}, {"Name", anon.name}, {"Destination", "/a"}},
                               {{"Type", "bind"}, {"Source", "/tmp"}, {"Destination", "/b"}}}}};
    auto removed = remove_anonymous_volumes(store, config);
    CHECK(removed == std::vector<std::string>{anon.name});
    CHECK(vs.maybe_get("named"));
    CHECK_FALSE(vs.maybe_get(anon.name));
}

TEST_CASE("a container's volumes are listed as docker inspect's Mounts", "[volumes]") {
    TempDir dir;
    snapshot::Store store(dir.path() + "/store");
    VolumeStore vs(store);
    ContainerVolumes cv(vs, std::string(64, 'd'));
    VolumeRequest named;
    named.name = "web";
    named.target = "/srv";
    named.read_only = true;
    VolumeRequest anon;
    anon.target = "/cache";
    cv.attach({named, anon});
    auto points = cv.mount_points();
    REQUIRE(points.size() == 2);
    CHECK(
        points[0].dump() ==
        R"({"Type":"volume","Name":"web","Source":")" + store.root() +
            R"(/volumes/web/_data","Destination":"/srv","Driver":"local","Mode":"ro","RW":false,"Propagation":""})");
    CHECK(points[1]["Name"].get<std::string>().size() == 64);
    CHECK(vs.users("web") == std::vector<std::string>{std::string(64, 'd')});
    auto mounts = cv.mounts();
    CHECK(mounts[0].source == store.root() + "/volumes/web/_data");
    CHECK(mounts[0].read_only);
    cv.remove_anonymous();
    CHECK(vs.list().size() == 1); // the anonymous one went, "web" stays
    CHECK(vs.users("web").empty());
}
