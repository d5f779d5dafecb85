#include "containers/json_log.hpp"
#include "containers/signal.hpp"
#include "containers/spec.hpp"
#include "containers/store.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <fcntl.h>
#include <set>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::containers;

TEST_CASE("a container is created, found by name, id and unique prefix, listed and removed",
          "[store]") {
    TempDir root;
    Store store(root.path());
    nlohmann::ordered_json config = {{"Config", {{"Image", "busybox"}}}};
    std::string id = store.create(config, "web");
    REQUIRE(id.size() == 64);
    REQUIRE(store.resolve("web") == id);
    REQUIRE(store.resolve("/web") == id);
    REQUIRE(store.resolve(id) == id);
    REQUIRE(store.resolve(id.substr(0, 5)) == id);
    REQUIRE(store.list() == std::vector<std::string>{id});
    auto c = store.load_config(id);
    REQUIRE(c["Name"] == "/web");
    REQUIRE(c["Id"] == id);
    REQUIRE(c["Config"]["Image"] == "busybox");
    State s = store.load_state(id);
    REQUIRE(s.status == "created");
    REQUIRE(s.started_at == k_zero_time);
    REQUIRE(fs::is_dir(store.path(id) + "/upper"));
    REQUIRE(fs::is_dir(store.path(id) + "/work"));
    REQUIRE_THROWS_AS(store.resolve("nosuch"), NoSuchContainer);
    REQUIRE_THROWS_WITH(store.resolve("nosuch"), "No such container: nosuch");
    store.remove(id);
    REQUIRE(store.list().empty());
    REQUIRE_THROWS_AS(store.resolve("web"), NoSuchContainer);
    // The name is free again.
    std::string id2 = store.create(config, "web");
    REQUIRE(store.resolve("web") == id2);
}

TEST_CASE("names are unique with Docker's conflict message, rename frees the old name", "[store]") {
    TempDir root;
    Store store(root.path());
    std::string a = store.create({}, "aa");
    REQUIRE_THROWS_WITH(store.create({}, "aa"),
                        "Conflict. The container name \"/aa\" is already in use by container \"" +
                            a +
                            "\". You have to remove (or rename) that container to be able to "
                            "reuse that name.");
    REQUIRE_THROWS_AS(store.create({}, "bad name"), UsageError);
    std::string b = store.create({}, "bb");
    REQUIRE_THROWS_AS(store.rename(b, "aa"), NameConflict);
    store.rename(a, "cc");
    REQUIRE(store.resolve("cc") == a);
    REQUIRE_THROWS_AS(store.resolve("aa"), NoSuchContainer);
    REQUIRE(store.name(a) == "cc");
    REQUIRE(store.list().size() == 2);
}

TEST_CASE("an ambiguous prefix is refused, a claim left by a killed create is free", "[store]") {
    TempDir root;
    Store store(root.path());
    std::string id1(64, 'a'), id2 = std::string(63, 'a') + "b";
    store.create({{"Id", id1}}, "x1");
    store.create({{"Id", id2}}, "x2");
    REQUIRE_THROWS_WITH(store.resolve("aaaa"), "multiple IDs found with provided prefix: aaaa");
    REQUIRE(store.resolve(id2.substr(0, 64)) == id2);
    // A name claim whose container never came to be.
    REQUIRE(::symlink(std::string(64, 'c').c_str(), (store.dir() + "/names/stale").c_str()) == 0);
    std::string id3 = store.create({}, "stale");
    REQUIRE(store.resolve("stale") == id3);
}

TEST_CASE("concurrent creates lose nothing and never share a name", "[store]") {
    TempDir root;
    Store store(root.path());
    std::vector<std::thread> threads;
    std::vector<std::string> ids(40);
    for (int i = 0; i < 40; ++i) {
        threads.emplace_back([&, i] {
            ids[i] = Store(root.path()).create({}, i % 2 ? "" : "n" + std::to_string(i));
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    REQUIRE(store.list().size() == 40);
    std::set<std::string> names;
    for (const auto& id : ids) {
        names.insert(store.name(id));
    }
    REQUIRE(names.size() == 40);
}

TEST_CASE("a running state whose monitor is gone reads as exited 137", "[store]") {
    TempDir root;
    Store store(root.path());
    std::string id = store.create({}, "rr");
    State s;
    s.status = "running";
    s.pid = 12345;
    s.monitor_pid = 12344;
    {
        Lock l = store.lock(id);
        store.save_state(id, s);
    }
    // A live monitor holds monitor.lock: the state is believed.
    std::string lp = store.path(id) + "/monitor.lock";
    int fd = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX) == 0);
    REQUIRE(store.monitor_alive(id));
    REQUIRE(store.load_state(id).status == "running");
    ::close(fd); // the monitor dies
    REQUIRE_FALSE(store.monitor_alive(id));
    State t = store.load_state(id);
    REQUIRE(t.status == "exited");
    REQUIRE(t.exit_code == 137);
    REQUIRE_FALSE(t.running());
    REQUIRE(t.to_json()["Running"] == false);
    // ... and is written so.
    auto j = nlohmann::json::parse(fs::read_file(store.path(id) + "/state.json"));
    REQUIRE(j["Status"] == "exited");
}

TEST_CASE("restart policies, log options and signals as Docker parses them", "[store]") {
    REQUIRE(parse_restart_policy("no").name == "no");
    REQUIRE(parse_restart_policy("on-failure:2").max_retries == 2);
    REQUIRE(parse_restart_policy("unless-stopped").name == "unless-stopped");
    REQUIRE_THROWS_AS(parse_restart_policy("sometimes"), UsageError);
    REQUIRE_THROWS_AS(parse_restart_policy("always:3"), UsageError);
    REQUIRE_THROWS_AS(parse_restart_policy("on-failure:x"), UsageError);
    auto lo = log_options(parse_log_opts({"max-size=10k", "max-file=3"}));
    REQUIRE(lo.max_size == 10240);
    REQUIRE(lo.max_file == 3);
    REQUIRE_THROWS_WITH(parse_log_opts({"colour=red"}),
                        "unknown log opt 'colour' for json-file log driver");
    REQUIRE_THROWS_AS(parse_log_opts({"max-file=0"}), UsageError);
    REQUIRE(parse_signal("SIGTERM") == SIGTERM);
    REQUIRE(parse_signal("kill") == SIGKILL);
    REQUIRE(parse_signal("9") == 9);
    REQUIRE_THROWS_WITH(parse_signal("NOPE"), "Invalid signal: NOPE");
    REQUIRE(signal_name(SIGINT) == "SIGINT");
}

TEST_CASE("the json-file log: Docker's lines, partial lines, rotation", "[store]") {
    TempDir root;
    std::string path = root.path() + "/c-json.log";
    {
        JsonLog log(path, LogOptions{});
        log.write("stdout", "a<b\nhalf");
        log.write("stderr", "e\"\n");
        log.write("stdout", " line\n");
        log.write("stdout", "bin\xff\n");
        log.flush();
    }
    std::string text = fs::read_file(path);
    std::vector<LogEntry> entries;
    std::size_t start = 0, nl;
    while ((nl = text.find('\n', start)) != std::string::npos) {
        auto e = parse_log_line(std::string_view(text).substr(start, nl - start));
        REQUIRE(e);
        entries.push_back(*e);
        start = nl + 1;
    }
    REQUIRE(entries.size() == 4);
    REQUIRE(entries[3].text == "bin\xef\xbf\xbd\n"); // invalid UTF-8 as U+FFFD, as Go
    REQUIRE(entries[0].text == "a<b\n");
    REQUIRE(entries[0].stream == "stdout");
    REQUIRE(entries[1].text == "e\"\n");
    REQUIRE(entries[1].stream == "stderr");
    REQUIRE(entries[2].text == "half line\n");
    REQUIRE(text.find("a\\u003cb\\n") != std::string::npos);
    REQUIRE(text.rfind("{\"log\":\"a\\u003cb\\n\",\"stream\":\"stdout\",\"time\":\"", 0) == 0);
    {
        JsonLog log(path, LogOptions{300, 2});
        for (int i = 0; i < 50; ++i) {
            log.write("stdout", "line " + std::to_string(i) + "\n");
        }
    }
    REQUIRE(fs::exists(path + ".1"));
    REQUIRE_FALSE(fs::exists(path + ".2"));
    REQUIRE(fs::lstat(path).st_size <= 300);
    REQUIRE(log_files(path) == std::vector<std::string>{path + ".1", path});
}
