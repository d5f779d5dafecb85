// strata against Debian's docker-registry (distribution 2.8) on 127.0.0.1,
// through the `strata` binary: push/pull round trips, login with htpasswd
// basic auth, unknown images, cross-repository mounts; and [skopeo] cases
// checking that skopeo and strata read what the other wrote.
//
// Run by CTest behind probe_servers.sh, which reports Skipped when
// docker-registry (or skopeo, for [skopeo]) is not installed.
#include "registry/client.hpp"
#include "registry/transfer.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/registry/image_fixture.hpp"
#include "tests/unit/registry/servers.hpp"
#include "util/base64.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fcntl.h>
#include <thread>

using namespace strata;
using snapshot::Reference;
using snapshot::Store;

namespace {

struct Cli {
    ExitStatus status;
    std::string out;
    std::string err;
};

// Runs the strata binary with its own store and Docker config directory.
Cli strata_cli(const std::vector<std::string>& args, const std::string& docker_config,
               const std::string& stdin_data = {}) {
    TempDir io;
    std::string out_path = io.path() + "/out";
    std::string err_path = io.path() + "/err";
    std::string in_path = io.path() + "/in";
    fs::write_file_atomic(in_path, stdin_data);
    UniqueFd out = fs::open(out_path, O_WRONLY | O_CREAT | O_TRUNC);
    UniqueFd err = fs::open(err_path, O_WRONLY | O_CREAT | O_TRUNC);
    UniqueFd in = fs::open(in_path, O_RDONLY);
    SpawnOptions o;
    o.argv = {test::strata_binary()};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::string_view(*e).starts_with("DOCKER_CONFIG=")) {
            continue;
        }
        env.emplace_back(*e);
    }
    env.push_back("DOCKER_CONFIG=" + docker_config);
    o.env = env;
    o.stdout_fd = out.get();
    o.stderr_fd = err.get();
    o.stdin_fd = in.get();
    Child c = Child::spawn(o);
    ExitStatus st = c.wait();
    return Cli{st, fs::read_file(out_path), fs::read_file(err_path)};
}

std::string run_ok(const std::vector<std::string>& argv) {
    RunResult r = run_capture(argv, true);
    INFO(argv[0] << " " << argv[1] << " " << r.out);
    REQUIRE(r.status.success());
    return r.out;
}

void check_same_blobs(const Store& a, const Store& b, const formats::Descriptor& m) {
    CHECK(test::blob_bytes(a, m.digest) == test::blob_bytes(b, m.digest));
    snapshot::Image img = a.load(m);
    CHECK(test::blob_bytes(a, img.manifest.config.digest) ==
          test::blob_bytes(b, img.manifest.config.digest));
    for (const auto& l : img.manifest.layers) {
        CHECK(test::blob_bytes(a, l.digest) == test::blob_bytes(b, l.digest));
    }
}

} // namespace

TEST_CASE("strata push then strata pull round-trips an image bit for bit", "[docker-registry]") {
    test::DockerRegistry reg;
    TempDir a, b, cfg;
    formats::Descriptor m;
    {
        Store src(a.path());
        m = test::make_image(src, reg.host() + "/team/app:v1", 3, 300000, 11);
    }
    Cli push = strata_cli({"--root", a.path(), "push", reg.host() + "/team/app:v1"}, cfg.path());
    INFO(push.out << push.err);
    REQUIRE(push.status.success());
    CHECK(push.out.find("v1: digest: " + m.digest.str()) != std::string::npos);
    CHECK(push.out.find(": Pushed ") != std::string::npos);

    Cli pull = strata_cli({"--root", b.path(), "pull", reg.host() + "/team/app:v1"}, cfg.path());
    INFO(pull.out << pull.err);
    REQUIRE(pull.status.success());
    CHECK(pull.out.find("Digest: " + m.digest.str()) != std::string::npos);
    Store src(a.path()), dst(b.path());
    check_same_blobs(src, dst, m);
    CHECK(dst.find(Reference::parse(reg.host() + "/team/app:v1"))->manifest.digest == m.digest);

    // The registry lists what was pushed.
    Cli tags = strata_cli({"tags", reg.host() + "/team/app"}, cfg.path());
    CHECK(tags.out == "v1\n");
    Cli cat = strata_cli({"catalog", reg.host()}, cfg.path());
    CHECK(cat.out == "team/app\n");

    // Pushing again uploads nothing; pulling again fetches nothing.
    Cli again = strata_cli({"--root", a.path(), "push", reg.host() + "/team/app:v1"}, cfg.path());
    CHECK(again.out.find("Layer already exists") != std::string::npos);
    CHECK(again.out.find("Pushed") == std::string::npos);
    Cli again_pull = strata_cli({"--root", b.path(), "pull", reg.host() + "/team/app:v1"}, cfg.path());
    CHECK(again_pull.out.find("Image is up to date") != std::string::npos);

    // Pull by digest.
    TempDir c;
    Cli by_digest = strata_cli({"--root", c.path(), "pull", reg.host() + "/team/app@" + m.digest.str()},
                               cfg.path());
    INFO(by_digest.err);
    CHECK(by_digest.status.success());
}

TEST_CASE("push to a second repository mounts the blobs the registry already has",
          "[docker-registry]") {
    test::DockerRegistry reg;
    TempDir a;
    Store s(a.path());
    formats::Descriptor m = test::make_image(s, reg.host() + "/base/app:v1", 2, 100000, 12);
    registry::TransferOptions o;
    registry::push(s, m, Reference::parse(reg.host() + "/base/app:v1"), o);
    registry::PushResult r = registry::push(s, m, Reference::parse(reg.host() + "/derived/app:v1"), o);
    CHECK(r.blobs_mounted == 3);
    CHECK(r.blobs_uploaded == 0);
}

TEST_CASE("chunked uploads are accepted by docker-registry", "[docker-registry]") {
    test::DockerRegistry reg;
    TempDir a, b, cfg;
    {
        Store src(a.path());
        test::make_image(src, reg.host() + "/chunked/app:v1", 2, 700000, 13);
    }
    Cli push = strata_cli({"--root", a.path(), "push", "--chunk-size", "262144",
                           reg.host() + "/chunked/app:v1"},
                          cfg.path());
    INFO(push.err);
    REQUIRE(push.status.success());
    Cli pull = strata_cli({"--root", b.path(), "pull", reg.host() + "/chunked/app:v1"}, cfg.path());
    INFO(pull.err);
    REQUIRE(pull.status.success());
    Store src(a.path()), dst(b.path());
    check_same_blobs(src, dst, src.find(Reference::parse(reg.host() + "/chunked/app:v1"))->manifest);
}

TEST_CASE("an unknown image is a clear error and leaves the store untouched",
          "[docker-registry]") {
    test::DockerRegistry reg;
    TempDir b, cfg;
    Cli pull = strata_cli({"--root", b.path(), "pull", reg.host() + "/no/such:v1"}, cfg.path());
    CHECK(pull.status.code() == 1);
    CHECK(pull.err.find(reg.host() + "/no/such:v1") != std::string::npos);
    CHECK(pull.err.find("manifest unknown") != std::string::npos);
    Store dst(b.path());
    CHECK(dst.images().empty());
}

TEST_CASE("login with htpasswd basic auth: the right password works, a wrong one fails",
          "[docker-registry]") {
    test::DockerRegistry reg("alice", "correct horse");
    TempDir a, b, cfg;
    {
        Store src(a.path());
        test::make_image(src, reg.host() + "/private/app:v1", 1, 10000, 14);
    }
    // Without a login the push is refused, saying how to fix it.
    Cli anon = strata_cli({"--root", a.path(), "push", reg.host() + "/private/app:v1"}, cfg.path());
    CHECK(anon.status.code() == 1);
    CHECK(anon.err.find("unauthorized") != std::string::npos);
    CHECK(anon.err.find("strata login " + reg.host()) != std::string::npos);

    Cli wrong = strata_cli({"login", reg.host(), "-u", "alice", "--password-stdin"}, cfg.path(),
                           "wrong\n");
    CHECK(wrong.status.code() == 1);
    CHECK(wrong.err.find("login to " + reg.host() + " as alice failed") != std::string::npos);
    CHECK_FALSE(fs::exists(cfg.path() + "/config.json"));

    Cli ok = strata_cli({"login", reg.host(), "-u", "alice", "--password-stdin"}, cfg.path(),
                        "correct horse\n");
    INFO(ok.err);
    REQUIRE(ok.status.success());
    CHECK(ok.out.find("Login Succeeded") != std::string::npos);
    auto j = nlohmann::json::parse(fs::read_file(cfg.path() + "/config.json"));
    CHECK(j["auths"][reg.host()]["auth"] == base64_encode("alice:correct horse"));

    Cli push = strata_cli({"--root", a.path(), "push", reg.host() + "/private/app:v1"}, cfg.path());
    INFO(push.err);
    CHECK(push.status.success());
    Cli pull = strata_cli({"--root", b.path(), "pull", reg.host() + "/private/app:v1"}, cfg.path());
    INFO(pull.err);
    CHECK(pull.status.success());

    Cli out = strata_cli({"logout", reg.host()}, cfg.path());
    CHECK(out.status.success());
    Cli again = strata_cli({"logout", reg.host()}, cfg.path());
    CHECK(again.status.code() == 1);
    CHECK(again.err.find("not logged in to " + reg.host()) != std::string::npos);
}

TEST_CASE("an interrupted CLI pull leaves nothing half-written; a second pull completes it",
          "[docker-registry]") {
    test::DockerRegistry reg;
    TempDir a, b, cfg;
    formats::Descriptor m;
    {
        Store src(a.path());
        m = test::make_image(src, reg.host() + "/big/app:v1", 4, 8 * 1024 * 1024, 15);
    }
    REQUIRE(strata_cli({"--root", a.path(), "push", reg.host() + "/big/app:v1"}, cfg.path())
                .status.success());
    // Kill the pull as soon as the first layer is complete.
    TempDir io;
    std::string out_path = io.path() + "/out";
    UniqueFd out = fs::open(out_path, O_WRONLY | O_CREAT | O_TRUNC);
    SpawnOptions o;
    o.argv = {test::strata_binary(), "--root", b.path(), "pull", "-j", "1",
              reg.host() + "/big/app:v1"};
    o.stdout_fd = out.get();
    Child c = Child::spawn(o);
    bool killed = false;
    for (int i = 0; i < 600; ++i) {
        if (fs::read_file(out_path).find("Pull complete") != std::string::npos) {
            c.kill(SIGKILL);
            killed = true;
            break;
        }
        if (c.try_wait()) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    c.wait();
    Reference ref = Reference::parse(reg.host() + "/big/app:v1");
    {
        Store dst(b.path());
        if (killed) {
            CHECK_FALSE(dst.find(ref).has_value());
            CHECK_FALSE(dst.has_blob(m.digest));
        }
        // Whatever is under blobs/ is complete: it hashes to its name.
        CHECK(dst.verify().empty());
    }
    Cli pull = strata_cli({"--root", b.path(), "pull", reg.host() + "/big/app:v1"}, cfg.path());
    INFO(pull.err);
    REQUIRE(pull.status.success());
    if (killed) {
        CHECK(pull.out.find("Already exists") != std::string::npos);
    }
    Store src(a.path()), dst(b.path());
    check_same_blobs(src, dst, m);
}

TEST_CASE("skopeo pulls what strata pushed, bit for bit", "[skopeo]") {
    test::DockerRegistry reg;
    TempDir a, cfg, oci;
    formats::Descriptor m;
    {
        Store src(a.path());
        m = test::make_image(src, reg.host() + "/interop/app:v1", 3, 200000, 21);
    }
    REQUIRE(strata_cli({"--root", a.path(), "push", reg.host() + "/interop/app:v1"}, cfg.path())
                .status.success());
    std::string inspect = run_ok({"skopeo", "inspect", "--raw", "--tls-verify=false",
                                  "docker://" + reg.host() + "/interop/app:v1"});
    CHECK(formats::Digest::of(inspect) == m.digest);
    // skopeo's dir: transport keeps every blob as the registry served it.
    std::string dir = oci.path() + "/dir";
    run_ok({"skopeo", "copy", "--quiet", "--src-tls-verify=false",
            "docker://" + reg.host() + "/interop/app:v1", "dir:" + dir});
    Store src(a.path());
    snapshot::Image img = src.load(m);
    CHECK(fs::read_file(dir + "/manifest.json") == test::blob_bytes(src, m.digest));
    for (const auto& l : img.manifest.layers) {
        CHECK(fs::read_file(dir + "/" + std::string(l.digest.hex())) ==
              test::blob_bytes(src, l.digest));
    }
    CHECK(fs::read_file(dir + "/" + std::string(img.manifest.config.digest.hex())) ==
          test::blob_bytes(src, img.manifest.config.digest));
}

TEST_CASE("strata pulls what skopeo pushed, OCI and Docker schema 2", "[skopeo]") {
    test::DockerRegistry reg;
    TempDir a, b, cfg, oci;
    formats::Descriptor m;
    {
        Store src(a.path());
        m = test::make_image(src, "local/app:v1", 2, 150000, 22);
    }
    // An OCI layout that skopeo reads: the store itself is one.
    std::string layout = "oci:" + a.path() + ":" + std::string("docker.io/local/app:v1");
    for (const char* format : {"oci", "v2s2"}) {
        std::string dest = reg.host() + "/fromskopeo/" + format + ":v1";
        run_ok({"skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--format", format, layout,
                "docker://" + dest});
        std::string raw = run_ok({"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + dest});
        Cli pull = strata_cli({"--root", b.path(), "pull", dest}, cfg.path());
        INFO(format << ": " << pull.err);
        REQUIRE(pull.status.success());
        Store dst(b.path());
        auto rec = dst.find(Reference::parse(dest));
        REQUIRE(rec.has_value());
        CHECK(rec->manifest.digest == formats::Digest::of(raw));
        CHECK(test::blob_bytes(dst, rec->manifest.digest) == raw);
        snapshot::Image got = dst.load(rec->manifest);
        CHECK(got.manifest.layers.size() == 2);
        if (std::string(format) == "v2s2") {
            CHECK(rec->manifest.media_type == "application/vnd.docker.distribution.manifest.v2+json");
            // And back: strata pushes the Docker manifest unchanged.
            Cli push = strata_cli({"--root", b.path(), "push", dest, reg.host() + "/back/v2s2:v1"},
                                  cfg.path());
            INFO(push.err);
            REQUIRE(push.status.success());
            CHECK(formats::Digest::of(run_ok({"skopeo", "inspect", "--raw", "--tls-verify=false",
                                              "docker://" + reg.host() + "/back/v2s2:v1"})) ==
                  rec->manifest.digest);
        }
    }
}
