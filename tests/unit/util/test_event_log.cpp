// The store's event journal (util/event_log.hpp): dockerd's message shape,
// its filters, the times the docker CLI sends, rotation and following.
#include "util/event_log.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sys/stat.h>
#include <thread>

using namespace strata;
using namespace strata::events;

namespace {

Event container_event(const std::string& action, const std::string& name) {
    return Event{"container", action, std::string(64, 'a'),
                 {{"image", "busybox:latest"}, {"name", name}, {"tier", "web"}}, 0};
}

std::vector<Event> all_events(const std::string& root, EventQuery q = {}) {
    std::vector<Event> out;
    q.since = q.since < 0 ? 0 : q.since; // the whole journal, then stop() ends it
    read_events(
        root, q,
        [&](const Event& e) {
            out.push_back(e);
            return true;
        },
        [] { return true; });
    return out;
}

} // namespace

TEST_CASE("event messages are dockerd's, with the old fields for containers and images") {
    Event e = container_event("die", "c1");
    e.attributes["exitCode"] = "3";
    e.time_nano = 1700000000123456789;
    auto j = e.to_json();
    CHECK(j.dump() ==
          R"({"status":"die","id":")" + std::string(64, 'a') +
              R"(","from":"busybox:latest","Type":"container","Action":"die","Actor":{"ID":")" +
              std::string(64, 'a') +
              R"(","Attributes":{"exitCode":"3","image":"busybox:latest","name":"c1","tier":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789})");
    Event back = Event::from_json(nlohmann::json::parse(j.dump()));
    CHECK(back.attributes == e.attributes);
    CHECK(back.time_nano == e.time_nano);
    Event n{"network", "connect", "n1", {{"name", "net"}}, 5};
    CHECK_FALSE(n.to_json().contains("status"));
    CHECK_FALSE(n.to_json().contains("from"));
}

TEST_CASE("event filters match as dockerd's") {
    Event start = container_event("start", "web1");
    CHECK(EventFilter().matches(start));
    CHECK(EventFilter({"type=container"}).matches(start));
    CHECK_FALSE(EventFilter({"type=image"}).matches(start));
    CHECK(EventFilter({"event=start", "event=die"}).matches(start));
    CHECK_FALSE(EventFilter({"event=die"}).matches(start));
    CHECK(EventFilter({"container=web1"}).matches(start));
    CHECK(EventFilter({"container=web"}).matches(start)); // a prefix, as FuzzyMatch
    CHECK(EventFilter({"container=aaaa"}).matches(start));
    CHECK_FALSE(EventFilter({"container=db"}).matches(start));
    CHECK(EventFilter({"image=busybox"}).matches(start)); // the tag stripped
    CHECK(EventFilter({"image=busybox:latest"}).matches(start));
    CHECK_FALSE(EventFilter({"image=alpine"}).matches(start));
    CHECK(EventFilter({"label=tier"}).matches(start));
    CHECK(EventFilter({"label=tier=web"}).matches(start));
    CHECK_FALSE(EventFilter({"label=tier=db"}).matches(start));
    CHECK_FALSE(EventFilter({"label=tier=web", "label=other"}).matches(start)); // all of them
    CHECK(EventFilter({"scope=local"}).matches(start));
    CHECK_FALSE(EventFilter({"scope=swarm"}).matches(start));
    CHECK_FALSE(EventFilter({"network=n1"}).matches(start));
    CHECK(EventFilter({"nosuch=1"}).matches(start)); // dockerd ignores keys it does not know

    Event exec{"container", "exec_start: sh -c true", "x", {{"name", "c"}}, 0};
    CHECK(EventFilter({"event=exec_start"}).matches(exec));
    CHECK_FALSE(EventFilter({"event=exec_die"}).matches(exec));

    Event tag{"image", "tag", "sha256:" + std::string(64, 'b'), {{"name", "example.com/a/b:v1"}}, 0};
    CHECK(EventFilter({"image=example.com/a/b"}).matches(tag));
    CHECK(EventFilter({"image=sha256:" + std::string(64, 'b')}).matches(tag));
    CHECK_FALSE(EventFilter({"container=c"}).matches(tag));
}

TEST_CASE("times: what the docker CLI sends, and what users type") {
    CHECK(parse_event_time("1700000000") == 1700000000LL * 1000000000LL);
    CHECK(parse_event_time("1700000000.5") == 1700000000LL * 1000000000LL + 500000000);
    CHECK(parse_event_time("1700000000.000000001") == 1700000000LL * 1000000000LL + 1);
    CHECK(parse_event_time("2023-11-14T22:13:20Z") == 1700000000LL * 1000000000LL);
    CHECK(parse_event_time("2023-11-14T23:13:20+01:00") == 1700000000LL * 1000000000LL);
    CHECK_THROWS_AS(parse_event_time("yesterday"), UsageError);
    CHECK_THROWS_AS(parse_event_time("1.2.3"), UsageError);

    const std::int64_t now = 1700000000LL * 1000000000LL + 700000000;
    CHECK(parse_time_argument("10m", now) == (1700000000LL - 600) * 1000000000LL);
    CHECK(parse_time_argument("1h30m", now) == (1700000000LL - 5400) * 1000000000LL);
    CHECK(parse_time_argument("1.5s", now) == 1699999999LL * 1000000000LL);
    CHECK(parse_time_argument("0s", now) == 1700000000LL * 1000000000LL);
    CHECK(parse_time_argument("0", now) == 0);
    CHECK(parse_time_argument("1700000000", now) == 1700000000LL * 1000000000LL);
    CHECK(parse_time_argument("2023-11-14T22:13:20Z", now) == 1700000000LL * 1000000000LL);
    CHECK(parse_time_argument("2023-11-14T22:13:20.25Z", now) ==
          1700000000LL * 1000000000LL + 250000000);
    CHECK(parse_time_argument("2023-11-14T22:13:20-02:00", now) ==
          (1700000000LL + 7200) * 1000000000LL);
    CHECK_THROWS_WITH(parse_time_argument("10 minutes", now),
                      Catch::Contains("failed to parse value as time or duration"));
    CHECK_THROWS_AS(parse_time_argument("10x", now), UsageError);
}

TEST_CASE("the journal: recorded, read back in order, filtered, bounded by since and until") {
    TempDir dir;
    record_event(dir.path(), "container", "create", "c1", {{"name", "one"}});
    record_event(dir.path(), "container", "start", "c1", {{"name", "one"}});
    record_event(dir.path(), "network", "create", "n1", {{"name", "net"}});
    auto got = all_events(dir.path());
    REQUIRE(got.size() == 3);
    CHECK(got[0].action == "create");
    CHECK(got[1].action == "start");
    CHECK(got[2].type == "network");
    CHECK(got[0].time_nano <= got[1].time_nano);

    EventQuery only_net;
    only_net.filter = EventFilter({"type=network"});
    CHECK(all_events(dir.path(), only_net).size() == 1);

    EventQuery later;
    later.since = got[2].time_nano;
    CHECK(all_events(dir.path(), later).size() == 1);

    EventQuery before;
    before.since = 0;
    before.until = got[0].time_nano;
    std::vector<Event> first;
    read_events(
        dir.path(), before,
        [&](const Event& e) {
            first.push_back(e);
            return true;
        },
        [] { return false; });
    CHECK(first.size() == 1);

    // A torn line (a writer killed mid-write) is skipped, not an error.
    std::ofstream(dir.path() + "/events.jsonl", std::ios::app) << "{\"Type\":\"contai";
    CHECK(all_events(dir.path()).size() == 3);
}

TEST_CASE("the journal rotates past 1 MiB and both files are read") {
    TempDir dir;
    std::string big(2000, 'x');
    for (int i = 0; i < 700; ++i) {
        record_event(dir.path(), "container", "start", std::to_string(i), {{"pad", big}});
    }
    CHECK(fs::exists(dir.path() + "/events.jsonl.1"));
    struct stat st {};
    REQUIRE(::stat((dir.path() + "/events.jsonl").c_str(), &st) == 0);
    CHECK(st.st_size < (1 << 20));
    auto got = all_events(dir.path());
    REQUIRE(got.size() == 700);
    for (int i = 0; i < 700; ++i) {
        CHECK(got[static_cast<std::size_t>(i)].actor_id == std::to_string(i));
    }
}

TEST_CASE("following: new events arrive, the filter holds, until ends it") {
    TempDir dir;
    record_event(dir.path(), "container", "create", "old");
    std::vector<std::string> seen;
    std::atomic<bool> done{false};
    EventQuery q; // from now on
    q.filter = EventFilter({"event=start"});
    std::thread reader([&] {
        read_events(
            dir.path(), q,
            [&](const Event& e) {
                seen.push_back(e.actor_id);
                return seen.size() < 2;
            },
            [&] { return done.load(); });
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    record_event(dir.path(), "container", "create", "new");
    record_event(dir.path(), "container", "start", "new");
    record_event(dir.path(), "container", "start", "second");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (seen.size() < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    done = true;
    reader.join();
    CHECK(seen == std::vector<std::string>{"new", "second"});

    // An until a moment ahead ends the stream by itself.
    EventQuery soon;
    soon.until = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count() +
                 300000000;
    auto t0 = std::chrono::steady_clock::now();
    read_events(dir.path(), soon, [](const Event&) { return true; }, [] { return false; });
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
}
