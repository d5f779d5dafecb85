// --env-file, --mount and --add-host as docker reads them.
#include "cli/run_flags.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

using namespace strata::cli;

namespace {
std::optional<std::string> fake_env(const std::string& k) {
    static const std::map<std::string, std::string> env{{"FROM_HOST", "host value"}};
    auto it = env.find(k);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
}
} // namespace

TEST_CASE("env files read as docker's: K=V verbatim, comments, bare names from the caller",
          "[run_flags]") {
    std::string text = "\xEF\xBB\xBF# a comment\n"
                       "A=1\n"
                       "  B=two words  \n"
                       "\n"
                       "   # indented comment\n"
                       "QUOTED=\"kept\"\n"
                       "FROM_HOST\n"
                       "UNSET_HERE\n"
                       "EMPTY=\n"
                       "WIN=crlf\r\n"
                       "EQ=a=b";
    CHECK(parse_env_text(text, "f", fake_env) ==
          std::vector<std::string>{"A=1", "B=two words  ", "QUOTED=\"kept\"",
                                   "FROM_HOST=host value", "EMPTY=", "WIN=crlf", "EQ=a=b"});
    CHECK_THROWS_WITH(parse_env_text("OK=1\nBAD NAME=1\n", "f", fake_env),
                      Catch::Contains("f:2") && Catch::Contains("'BAD NAME' contains whitespaces"));
    CHECK_THROWS_WITH(parse_env_text("=1\n", "f", fake_env), Catch::Contains("no variable name"));
    CHECK_THROWS_WITH(parse_env_text("A=\xff\n", "f", fake_env), Catch::Contains("invalid UTF-8"));
    CHECK_THROWS_AS(parse_env_file("/nonexistent/env", fake_env), strata::UsageError);
}

namespace {
strata::runner::Mount mount_of(std::string_view v) {
    return std::get<strata::runner::Mount>(parse_mount(v));
}
strata::containers::VolumeRequest volume_of(const MountFlag& f) {
    return std::get<strata::containers::VolumeRequest>(f);
}
} // namespace

TEST_CASE("run --mount takes docker's bind, volume and tmpfs syntax", "[run_flags]") {
    auto b = mount_of("type=bind,source=/tmp,target=/data,readonly");
    CHECK(b.type == strata::runner::Mount::Type::bind);
    CHECK(b.source == "/tmp");
    CHECK(b.target == "/data");
    CHECK(b.read_only);
    auto b2 = mount_of("type=bind,src=/tmp,dst=/d,ro=false");
    CHECK(!b2.read_only);
    CHECK(b2.target == "/d");
    auto t = mount_of("type=tmpfs,destination=/scratch,tmpfs-size=64m,tmpfs-mode=1770");
    CHECK(t.type == strata::runner::Mount::Type::tmpfs);
    CHECK(t.target == "/scratch");
    CHECK(t.options == "size=67108864,mode=1770");
    // type=volume is docker's default; no source is an anonymous volume.
    auto v = volume_of(parse_mount("source=myvol,target=/d"));
    CHECK(v.name == "myvol");
    CHECK(v.target == "/d");
    CHECK(!v.read_only);
    CHECK(!v.nocopy);
    auto v2 = volume_of(
        parse_mount("type=volume,target=/"
                    "d,readonly,volume-nocopy,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
                    "volume-opt=o=size=1m,volume-label=a=b"));
    CHECK(v2.name.empty());
    CHECK(v2.read_only);
    CHECK(v2.nocopy);
    REQUIRE(v2.driver_options);
    CHECK(v2.driver_options->at("type") == "tmpfs");
    CHECK(v2.driver_options->at("o") == "size=1m");
    REQUIRE(v2.labels);
    CHECK(v2.labels->at("a") == "b");
    CHECK_THROWS_WITH(parse_mount("type=volume,source=bad/name,target=/d"),
                      Catch::Contains("includes invalid characters for a local volume name"));
    CHECK_THROWS_WITH(parse_mount("type=bind,source=/tmp,target=/d,volume-nocopy"),
                      Catch::Contains("volume options are for type=volume"));
    CHECK_THROWS_WITH(parse_mount("type=bind,source=/tmp"), Catch::Contains("target is required"));
    CHECK_THROWS_WITH(parse_mount("type=bind,source=/no/such/dir,target=/d"),
                      Catch::Contains("bind source path does not exist: /no/such/dir"));
    CHECK_THROWS_WITH(parse_mount("type=tmpfs,source=/x,target=/d"),
                      Catch::Contains("takes no source"));
    CHECK_THROWS_WITH(parse_mount("type=bind,source=/tmp,target=/d,bogus=1"),
                      Catch::Contains("unknown option 'bogus'"));
    CHECK_THROWS_WITH(parse_mount("type=npipe,target=/d"),
                      Catch::Contains("type=npipe is not supported"));
}

TEST_CASE("run -v reads a host path as a bind, a name as a volume, DST alone as anonymous",
          "[run_flags]") {
    auto b = std::get<strata::runner::Mount>(parse_volume_flag("/tmp:/data:ro"));
    CHECK(b.source == "/tmp");
    CHECK(b.target == "/data");
    CHECK(b.read_only);
    auto v = volume_of(parse_volume_flag("data:/var/lib/data:ro,nocopy"));
    CHECK(v.name == "data");
    CHECK(v.target == "/var/lib/data");
    CHECK(v.read_only);
    CHECK(v.nocopy);
    auto a = volume_of(parse_volume_flag("/cache"));
    CHECK(a.name.empty());
    CHECK(a.target == "/cache");
    CHECK_THROWS_WITH(parse_volume_flag("x:/d"), Catch::Contains("volume name is too short"));
    CHECK_THROWS_WITH(
        parse_volume_flag("a b:/d"),
        Catch::Contains("If you intended to pass a host directory, use absolute path"));
    CHECK_THROWS_WITH(parse_volume_flag("data:/d:shared"), Catch::Contains("invalid mode: shared"));
    CHECK_THROWS_WITH(parse_volume_flag("relative"),
                      Catch::Contains("mount path must be absolute"));
    CHECK_THROWS_WITH(parse_volume_flag("data:rel"),
                      Catch::Contains("mount path must be absolute"));
}

TEST_CASE("run --add-host takes NAME:IP and NAME=IP, IPv6 too, and host-gateway",
          "[run_flags]") {
    CHECK(parse_add_host("db:10.0.0.2") == std::pair<std::string, std::string>{"db", "10.0.0.2"});
    CHECK(parse_add_host("db=10.0.0.2") == std::pair<std::string, std::string>{"db", "10.0.0.2"});
    CHECK(parse_add_host("v6:::1") == std::pair<std::string, std::string>{"v6", "::1"});
    CHECK(parse_add_host("v6:[2001:db8::33]") ==
          std::pair<std::string, std::string>{"v6", "2001:db8::33"});
    CHECK_THROWS_WITH(parse_add_host("db:not-an-ip"),
                      Catch::Contains("invalid IP address \"not-an-ip\""));
    CHECK_THROWS_WITH(parse_add_host("db"), Catch::Contains("expected NAME:IP"));
    CHECK_THROWS_WITH(parse_add_host(":1.2.3.4"), Catch::Contains("host name is empty"));
    // Resolved at start to the gateway of the container's network.
    CHECK(parse_add_host("gw:host-gateway") ==
          std::pair<std::string, std::string>{"gw", "host-gateway"});
}

TEST_CASE("resource flags parse as docker's: RAMInBytes, --memory-swap -1, --cpus decimals",
          "[run_flags]") {
    CHECK(parse_memory_bytes("--memory", "32m") == 32 << 20);
    CHECK(parse_memory_bytes("--memory", "1g") == 1LL << 30);
    CHECK(parse_memory_bytes("--memory", "1.5g") == 3LL << 29);
    CHECK(parse_memory_bytes("--memory", "512k") == 512 << 10);
    CHECK(parse_memory_bytes("--memory", "64MiB") == 64 << 20);
    CHECK(parse_memory_bytes("--memory", "1024") == 1024);
    CHECK(parse_memory_bytes("--memory", "1024b") == 1024);
    CHECK_THROWS_WITH(parse_memory_bytes("--memory", "64x"), "--memory: invalid size: '64x'");
    CHECK_THROWS_WITH(parse_memory_bytes("--memory", "-1"), "--memory: invalid size: '-1'");
    CHECK(parse_memory_swap("--memory-swap", "-1") == -1);
    CHECK(parse_memory_swap("--memory-swap", "64m") == 64 << 20);
    CHECK(parse_nano_cpus("--cpus", "1.5") == 1'500'000'000);
    CHECK(parse_nano_cpus("--cpus", "2") == 2'000'000'000);
    CHECK(parse_nano_cpus("--cpus", ".25") == 250'000'000);
    CHECK(parse_nano_cpus("--cpus", "0.000000001") == 1);
    CHECK_THROWS_WITH(
        parse_nano_cpus("--cpus", "0.0000000001"),
        "invalid argument \"0.0000000001\" for \"--cpus\" flag: value is too precise");
    CHECK_THROWS_WITH(parse_nano_cpus("--cpus", "abc"),
                      "invalid argument \"abc\" for \"--cpus\" flag: failed to parse abc as a "
                      "rational number");
}

TEST_CASE("the resource flags fill runner::Resources", "[run_flags]") {
    CLI::App app;
    strata::runner::Resources r;
    add_resource_flags(&app, r);
    std::vector<std::string> args = {"-m",
                                     "64m",
                                     "--memory-swap",
                                     "-1",
                                     "--memory-reservation",
                                     "16m",
                                     "--cpus",
                                     "0.5",
                                     "-c",
                                     "512",
                                     "--cpuset-cpus",
                                     "0-1",
                                     "--cpuset-mems",
                                     "0",
                                     "--pids-limit",
                                     "-1",
                                     "--blkio-weight",
                                     "300",
                                     "--oom-kill-disable"};
    std::reverse(args.begin(), args.end()); // CLI11 takes them in reverse
    app.parse(args);
    CHECK(r.memory == 64 << 20);
    CHECK(r.memory_swap == -1);
    CHECK(r.memory_reservation == 16 << 20);
    CHECK(r.nano_cpus == 500'000'000);
    CHECK(r.cpu_shares == 512);
    CHECK(r.cpuset_cpus == "0-1");
    CHECK(r.cpuset_mems == "0");
    CHECK(r.pids_limit == 0); // -1: unlimited
    CHECK(r.blkio_weight == 300);
    CHECK(r.oom_kill_disable);

    strata::runner::Resources bad;
    CLI::App app2;
    add_resource_flags(&app2, bad);
    std::vector<std::string> args2 = {"lots", "--memory"};
    CHECK_THROWS_WITH(app2.parse(args2), "--memory: invalid size: 'lots'");
}

TEST_CASE("health flags: Docker's HealthConfig and its messages") {
    auto parse = [](std::vector<std::string> args) {
        CLI::App app;
        HealthFlags f;
        add_health_flags(&app, f);
        std::reverse(args.begin(), args.end());
        app.parse(args);
        return f.healthcheck();
    };
    CHECK_FALSE(parse({}));
    auto h = parse(
        {"--health-cmd", "wget -q localhost", "--health-interval", "2s", "--health-retries", "4"});
    REQUIRE(h);
    CHECK(h->test == std::vector<std::string>{"CMD-SHELL", "wget -q localhost"});
    CHECK(h->interval == 2'000'000'000);
    CHECK(h->timeout == 0);
    CHECK(h->retries == 4);
    h = parse({"--health-timeout", "500ms"});
    REQUIRE(h);
    CHECK(h->test.empty());
    CHECK(h->timeout == 500'000'000);
    h = parse({"--no-healthcheck"});
    REQUIRE(h);
    CHECK(h->test == std::vector<std::string>{"NONE"});
    CHECK_THROWS_WITH(parse({"--no-healthcheck", "--health-cmd", "x"}),
                      "--no-healthcheck conflicts with --health-* options");
    CHECK_THROWS_WITH(parse({"--health-retries", "-1"}), "--health-retries cannot be negative");
    CHECK_THROWS_WITH(parse({"--health-interval", "-1s"}), "--health-interval cannot be negative");
    CHECK_THROWS_AS(parse({"--health-interval", "soon"}), strata::UsageError);
}
