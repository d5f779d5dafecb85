// The build executor (builder/executor.hpp through builder::build): stages,
// metadata steps, the cache, events and errors. Steps that make a layer
// mount an overlay and are tagged [overlay] (their own CTest entry, skipped
// without root and overlayfs).
#include "builder/build.hpp"
#include "builder/mount_stubs.hpp"
#include "formats/compression.hpp"
#include "snapshot/store.hpp"
#include "tests/support/support.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using namespace strata::builder;

namespace {

// Every event, one line each, in the order they came.
class RecordingEvents final : public BuildEvents {
public:
    void step_started(int id, const std::string& name) override { add(id, "started " + name); }
    void step_cached(int id) override { add(id, "cached"); }
    void step_running(int id, const std::string& reason) override { add(id, "running " + reason); }
    void step_output(int id, std::string_view data) override {
        add(id, "output " + std::string(data));
    }
    void step_note(int id, const std::string& note) override { add(id, "note " + note); }
    void step_done(int id, double) override { add(id, "done"); }
    void step_failed(int id, const std::string& message, double) override {
        add(id, "failed " + message);
    }

    std::vector<std::string> lines() {
        std::lock_guard<std::mutex> l(m_mu);
        return m_lines;
    }
    // The events of one step, without its id.
    std::vector<std::string> of(int id) {
        std::lock_guard<std::mutex> l(m_mu);
        std::vector<std::string> out;
        std::string prefix = std::to_string(id) + " ";
        for (const auto& line : m_lines) {
            if (line.rfind(prefix, 0) == 0) {
                out.push_back(line.substr(prefix.size()));
            }
        }
        return out;
    }

private:
    void add(int id, const std::string& what) {
        std::lock_guard<std::mutex> l(m_mu);
        m_lines.push_back(std::to_string(id) + " " + what);
    }
    std::mutex m_mu;
    std::vector<std::string> m_lines;
};

struct Fixture {
    TempDir dir;
    std::string context = dir.path() + "/context";
    snapshot::Store store{dir.path() + "/store"};
    RecordingEvents events;

    Fixture() { fs::mkdirs(context, 0755); }

    BuildOptions options(const std::string& dockerfile) {
        test::write_file(context + "/Dockerfile", dockerfile);
        BuildOptions o;
        o.context_dir = context;
        o.source_date_epoch = 1700000000;
        o.events = &events;
        return o;
    }
};

std::vector<std::string> created_by(const formats::ImageConfig& c) {
    std::vector<std::string> out;
    for (const auto& h : c.history) {
        out.push_back(h.created_by + (h.empty_layer ? " (empty)" : ""));
    }
    return out;
}

} // namespace

TEST_CASE("Metadata instructions set the config and add empty history entries") {
    Fixture f;
    BuildOptions o = f.options("FROM scratch\n"
                               "ENV A=1 B=two\n"
                               "LABEL org.example.x=y\n"
                               "WORKDIR /\n"
                               "CMD [\"run\", \"$A\"]\n");
    o.tags = {"meta:1"};
    BuildResult r = build(f.store, o);
    CHECK(r.layers.empty());
    CHECK(r.config.diff_ids.empty());
    CHECK(r.config.config.env ==
          std::vector<std::string>{
              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "B=two"});
    CHECK(r.config.config.labels.at("org.example.x") == "y");
    CHECK(r.config.config.cmd == std::vector<std::string>{"run", "$A"});
    REQUIRE(r.config.history.size() == 4);
    CHECK(r.config.history[3].created_by.rfind("CMD [", 0) == 0);
    r.config.history.pop_back();
    CHECK(created_by(r.config) == std::vector<std::string>{
                                      "ENV A=1 B=two (empty)",
                                      "LABEL org.example.x=y (empty)",
                                      "WORKDIR / (empty)",
                                  });
    for (const auto& h : r.config.history) {
        CHECK(h.created == "2023-11-14T22:13:20Z"); // SOURCE_DATE_EPOCH
        CHECK(h.comment == "buildkit.dockerfile.v0");
    }
    CHECK(r.config.created == "2023-11-14T22:13:20Z");
    CHECK(r.image_id == f.store.load(r.manifest).manifest.config.digest);
    CHECK(f.store.resolve("meta:1").manifest == r.manifest);
}

TEST_CASE("A second build takes every step from the cache and makes the same image") {
    Fixture f;
    std::string dockerfile = "FROM scratch\nARG V=1\nENV V=$V\nLABEL a=b\n";
    BuildResult first = build(f.store, f.options(dockerfile));
    CHECK(first.steps_cached == 0);
    CHECK(first.cache_keys.size() == 3);

    BuildResult second = build(f.store, f.options(dockerfile));
    CHECK(second.image_id == first.image_id);
    CHECK(second.manifest == first.manifest);
    CHECK(second.cache_keys == first.cache_keys);

    // A build arg changes the key of the ARG step and of every step after it.
    BuildOptions o = f.options(dockerfile);
    o.build_args = {{"V", "2"}};
    BuildResult third = build(f.store, o);
    CHECK(third.image_id != first.image_id);
    REQUIRE(third.cache_keys.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(third.cache_keys[i] != first.cache_keys[i]);
    }
    CHECK(third.config.config.env ==
          std::vector<std::string>{
              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "V=2"});
}

TEST_CASE("Each step reports started, then done, under ids in Dockerfile order") {
    Fixture f;
    build(f.store, f.options("FROM scratch\nENV A=1\nWORKDIR /\n"));
    auto lines = f.events.lines();
    REQUIRE(lines.size() >= 3);
    CHECK(f.events.of(1) == std::vector<std::string>{"started [1/3] FROM scratch", "done"});
    // ENV is no step of its own: only FROM and the steps that run are shown.
    CHECK(f.events.of(2) == std::vector<std::string>{"started [3/3] WORKDIR /", "cached", "done"});
    CHECK(f.events.of(3).empty());
}

TEST_CASE("A failing step throws StepError naming the Dockerfile line and reports it failed") {
    Fixture f;
    BuildOptions o = f.options("FROM scratch\nENV A=1\nCOPY nothere /x\n");
    try {
        build(f.store, o);
        FAIL("the build succeeded");
    } catch (const StepError& e) {
        CHECK(e.file() == "Dockerfile");
        CHECK(e.line() == 3);
        CHECK(e.instruction() == "COPY nothere /x");
        CHECK(e.exit_code() == -1);
        CHECK(std::string(e.what()).rfind("Dockerfile:3: COPY nothere /x: ", 0) == 0);
    }
    auto copy = f.events.of(2);
    REQUIRE(copy.size() == 2);
    CHECK(copy[0] == "started [3/3] COPY nothere /x");
    CHECK(copy[1].rfind("failed Dockerfile:3: COPY nothere /x: ", 0) == 0);
}

TEST_CASE("A FROM of an image the store lacks fails at the FROM line") {
    Fixture f;
    try {
        build(f.store, f.options("FROM example.invalid/none:1\nENV A=1\n"));
        FAIL("the build succeeded");
    } catch (const StepError& e) {
        CHECK(e.line() == 1);
        CHECK(std::string(e.what()).find("no such image in the store: example.invalid/none:1") !=
              std::string::npos);
    }
    CHECK(f.events.of(1).back().rfind("failed ", 0) == 0);
}

TEST_CASE("build --target builds the stages the target needs, and its config only") {
    Fixture f;
    BuildOptions o = f.options("FROM scratch AS base\nENV FROM_BASE=1\n"
                               "FROM scratch AS other\nENV OTHER=1\n"
                               "FROM base AS final\nENV FINAL=1\n");
    o.target = "final";
    BuildResult r = build(f.store, o);
    CHECK(r.config.config.env ==
          std::vector<std::string>{
              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FROM_BASE=1",
              "FINAL=1"});
    for (const auto& line : f.events.lines()) {
        CHECK(line.find("other") == std::string::npos);
    }
    // mode=max keys: every stage built (base and final), min: the target's chain.
    CHECK(r.all_cache_keys.size() == 2);
    CHECK(r.cache_keys.size() == 2);
}

TEST_CASE("Unused build args and external syntax frontends are warned about") {
    Fixture f;
    BuildOptions o = f.options("# syntax=example.com/frontend:1\nFROM scratch\nARG USED\n");
    o.build_args = {{"USED", "1"}, {"UNUSED", "2"}};
    BuildResult r = build(f.store, o);
    REQUIRE(r.warnings.size() == 2);
    CHECK(r.warnings[0].find("# syntax=example.com/frontend:1") != std::string::npos);
    CHECK(r.warnings[1] == "[Warning] One or more build-args [UNUSED] were not consumed");
}

TEST_CASE("build --label goes on the image config only, not in the history or the cache key") {
    Fixture f;
    BuildResult plain = build(f.store, f.options("FROM scratch\nENV A=1\n"));
    BuildOptions o = f.options("FROM scratch\nENV A=1\n");
    o.labels = {{"l", "v"}};
    BuildResult labelled = build(f.store, o);
    CHECK(labelled.config.config.labels.at("l") == "v");
    CHECK(labelled.config.history.size() == plain.config.history.size());
    CHECK(labelled.cache_keys == plain.cache_keys);
    CHECK(labelled.image_id != plain.image_id);
}

TEST_CASE("Mount stubs: parents get their times back, and unchanged copied-up ones go") {
    TempDir dir;
    std::string root = dir.path() + "/root";
    std::string upper = dir.path() + "/upper";
    fs::mkdirs(root + "/etc", 0755);
    fs::mkdirs(upper + "/etc", 0755);
    fs::mkdirs(upper + "/kept", 0755);
    test::write_file(upper + "/kept/file", "x");
    struct timespec old[2] = {{1000, 0}, {2000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (root + "/etc").c_str(), old, 0) == 0);
    REQUIRE(::utimensat(AT_FDCWD, (upper + "/etc").c_str(), old, 0) == 0);

    runner::CreatedMountPoints created;
    created.paths = {"/etc/hosts"};
    created.parents.emplace_back("/etc", fs::lstat(root + "/etc"));
    created.parents.emplace_back("/kept", fs::lstat(upper + "/kept"));
    // The runner made /etc/hosts (and removed it): /etc's mtime moved.
    test::write_file(root + "/etc/hosts", "");
    REQUIRE(::unlink((root + "/etc/hosts").c_str()) == 0);
    REQUIRE(fs::lstat(root + "/etc").st_mtim.tv_sec != 2000);

    UniqueFd rootfd = fs::open_dir(root);
    MountStubs stubs(rootfd.get(), created);
    stubs.restore_times();
    CHECK(fs::lstat(root + "/etc").st_mtim.tv_sec == 2000);
    CHECK(fs::lstat(root + "/etc").st_atim.tv_sec == 1000);

    stubs.prune_upper(upper);
    CHECK_FALSE(fs::exists(upper + "/etc")); // empty, as it was: no change
    CHECK(fs::exists(upper + "/kept/file")); // not empty: kept
}

TEST_CASE("COPY makes one layer per step, its blob, diff ID and snapshot in step", "[overlay]") {
    Fixture f;
    test::write_file(f.context + "/a", "a\n");
    test::write_file(f.context + "/b", "b\n");
    std::string dockerfile = "FROM scratch\nCOPY a /a\nENV X=1\nCOPY b /b\n";
    BuildResult r = build(f.store, f.options(dockerfile));
    REQUIRE(r.layers.size() == 2);
    REQUIRE(r.config.diff_ids.size() == 2);
    CHECK(r.steps_run == 2);
    snapshot::Image img = f.store.load(r.manifest);
    CHECK(img.manifest.layers == r.layers);
    auto chains = img.chain_ids();
    CHECK(test::read_file(f.store.snapshot_dir(chains[0]) + "/a") == "a\n");
    CHECK(test::read_file(f.store.snapshot_dir(chains[1]) + "/b") == "b\n");
    CHECK_FALSE(fs::exists(f.store.snapshot_dir(chains[1]) + "/a"));

    BuildResult again = build(f.store, f.options(dockerfile));
    CHECK(again.steps_run == 0);
    CHECK(again.steps_cached == 2);
    CHECK(again.manifest == r.manifest);
}

TEST_CASE("A cache hit whose snapshot is gone unpacks it from the blob; a damaged blob is rebuilt",
          "[overlay]") {
    Fixture f;
    test::write_file(f.context + "/a", "a\n");
    std::string dockerfile = "FROM scratch\nCOPY a /a\n";
    BuildResult r = build(f.store, f.options(dockerfile));
    REQUIRE(r.layers.size() == 1);
    snapshot::Image img = f.store.load(r.manifest);
    formats::Digest chain = img.chain_ids()[0];

    REQUIRE(f.store.remove_snapshot(chain));
    BuildResult restored = build(f.store, f.options(dockerfile));
    CHECK(restored.steps_run == 0);
    CHECK(restored.steps_cached == 1);
    CHECK(test::read_file(f.store.snapshot_dir(chain) + "/a") == "a\n");

    // The blob no longer hashes to its digest, though it holds the same
    // tar (uncompressed now, so the diff ID still matches): the step runs
    // again instead of unpacking a blob that is not what its digest says.
    REQUIRE(f.store.remove_snapshot(chain));
    std::string blob = f.store.blob_path(r.layers[0].digest);
    std::string gz = test::read_file(blob);
    std::string tar;
    auto gunzip = formats::Decompressor::create(
        formats::Compression::gzip,
        [&](const void* d, std::size_t n) { tar.append(static_cast<const char*>(d), n); });
    gunzip->feed(gz.data(), gz.size());
    gunzip->finish();
    REQUIRE(formats::Digest::of(tar) == r.config.diff_ids[0]);
    ::chmod(blob.c_str(), 0644);
    test::write_file(blob, tar);
    BuildResult rebuilt = build(f.store, f.options(dockerfile));
    CHECK(rebuilt.steps_run == 1);
    CHECK(rebuilt.manifest == r.manifest);
    CHECK(test::read_file(f.store.snapshot_dir(chain) + "/a") == "a\n");
}
