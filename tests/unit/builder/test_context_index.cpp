#include "builder/context_index.hpp"
#include "builder/copy.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using namespace strata::builder;

namespace {

struct Context {
    TempDir dir;
    TempDir cache;
    UniqueFd fd;
    Context() {
        test::write_file(dir.path() + "/a.txt", "alpha", 0644);
        test::write_file(dir.path() + "/d/b.txt", "bravo", 0644);
        test::write_file(dir.path() + "/d/e/c.bin", std::string(100000, 'c'), 0600);
        fd = fs::open_dir(dir.path());
    }
    std::string memo_file() const { return cache.path() + "/ctx.digests"; }
    // A fresh index, as a new build makes one. Window 0: files written before
    // it are not racy (the tests do not wait two seconds).
    std::unique_ptr<ContextIndex> index(std::int64_t window = 0) const {
        return std::make_unique<ContextIndex>(fd.get(), dir.path(), memo_file(), window);
    }
    std::string fingerprint() const { return index()->fingerprint(); }
};

// Counts what hash_sources had to read.
struct Counting final : FileDigestMemo {
    FileDigestMemo& inner;
    int learned = 0;
    explicit Counting(FileDigestMemo& m) : inner(m) {}
    std::optional<std::string> find(const std::string& rel, const struct stat& st) override {
        return inner.find(rel, st);
    }
    void learn(const std::string& rel, const struct stat& st, const std::string& digest) override {
        learned++;
        inner.learn(rel, st, digest);
    }
};

// Rewrites a file in place with content of the same size and puts its mtime
// back: only the ctime tells.
void rewrite_same_size(const std::string& path, const std::string& content) {
    ::usleep(20000); // past a coarse timestamp tick
    struct stat before = fs::lstat(path);
    UniqueFd f = fs::open(path, O_WRONLY);
    REQUIRE(::pwrite(f.get(), content.data(), content.size(), 0) == static_cast<ssize_t>(content.size()));
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    REQUIRE(::futimens(f.get(), ts) == 0);
}

} // namespace

TEST_CASE("the context fingerprint sees every metadata change and nothing else") {
    Context c;
    std::string fp = c.fingerprint();
    CHECK(c.fingerprint() == fp);
    CHECK(fp.size() == 64);

    SECTION("an in-place edit of the same size with the mtime put back") {
        rewrite_same_size(c.dir.path() + "/d/b.txt", "BRAVO");
        CHECK(c.fingerprint() != fp);
    }
    SECTION("an append deep down") {
        test::write_file(c.dir.path() + "/d/e/c.bin", std::string(100001, 'c'), 0600);
        CHECK(c.fingerprint() != fp);
    }
    SECTION("a mode change") {
        REQUIRE(::chmod((c.dir.path() + "/a.txt").c_str(), 0600) == 0);
        CHECK(c.fingerprint() != fp);
    }
    SECTION("a rename") {
        REQUIRE(::rename((c.dir.path() + "/d/b.txt").c_str(), (c.dir.path() + "/d/b2.txt").c_str()) == 0);
        CHECK(c.fingerprint() != fp);
    }
    SECTION("a new empty directory") {
        fs::mkdirs(c.dir.path() + "/d/e/new", 0755);
        CHECK(c.fingerprint() != fp);
    }
}

TEST_CASE("an unreadable context directory fails the fingerprint, naming it") {
    Context c;
    auto idx = std::make_unique<ContextIndex>(-1, "/nowhere", c.memo_file(), 0);
    CHECK_THROWS_WITH(idx->fingerprint(), Catch::Contains("/nowhere"));
}

TEST_CASE("files just changed are racy: their digests and the fingerprint are not remembered") {
    Context c;
    auto idx = c.index(ContextIndex::k_racy_window_ns);
    CHECK(idx->racy());
    Counting count(*idx);
    hash_sources(c.fd.get(), {"."}, {}, &count);
    CHECK(count.learned == 3);
    idx->save();
    auto again = c.index(ContextIndex::k_racy_window_ns);
    Counting count2(*again);
    hash_sources(c.fd.get(), {"."}, {}, &count2);
    CHECK(count2.learned == 3);
    CHECK_FALSE(c.index(0)->racy());
}

TEST_CASE("the digest memo reads only the files whose lstat changed") {
    Context c;
    std::string h1;
    {
        auto idx = c.index();
        Counting count(*idx);
        h1 = hash_sources(c.fd.get(), {"."}, {}, &count);
        CHECK(count.learned == 3);
        idx->save();
    }
    {
        auto idx = c.index();
        Counting count(*idx);
        CHECK(hash_sources(c.fd.get(), {"."}, {}, &count) == h1);
        CHECK(count.learned == 0);
        // A single file source is looked up too.
        hash_sources(c.fd.get(), {"d/b.txt"}, {}, &count);
        CHECK(count.learned == 0);
    }
    rewrite_same_size(c.dir.path() + "/d/b.txt", "BRAVO");
    std::string h2;
    {
        auto idx = c.index();
        Counting count(*idx);
        h2 = hash_sources(c.fd.get(), {"."}, {}, &count);
        CHECK(count.learned == 1);
        CHECK(h2 != h1);
        idx->save();
    }
    // Back to the first content: the same hash as the first time.
    rewrite_same_size(c.dir.path() + "/d/b.txt", "bravo");
    {
        auto idx = c.index();
        CHECK(hash_sources(c.fd.get(), {"."}, {}, idx.get()) == h1);
    }
    // Without a memo the value differs (contents, not digests, are hashed)
    // but is just as content-determined.
    CHECK(hash_sources(c.fd.get(), {"."}, {}) != h1);
}

TEST_CASE("a damaged digest memo is ignored, not trusted") {
    Context c;
    {
        auto idx = c.index();
        hash_sources(c.fd.get(), {"."}, {}, idx.get());
        idx->save();
    }
    std::string data = fs::read_file(c.memo_file());
    SECTION("a flipped digest character") {
        std::size_t at = data.find('\n') + 1;
        data[at] = data[at] == '0' ? '1' : '0';
    }
    SECTION("truncated") {
        data.resize(data.size() / 2);
    }
    SECTION("garbage") {
        data = "not a memo\n";
    }
    fs::write_file_atomic(c.memo_file(), data);
    auto idx = c.index();
    Counting count(*idx);
    hash_sources(c.fd.get(), {"."}, {}, &count);
    CHECK(count.learned == 3);
}

TEST_CASE("the hash and the copy see the context as the index walked it") {
    Context c;
    auto idx = c.index();
    CopyOptions listed;
    listed.listed = [&](const std::string& rel) { return idx->listed(rel); };

    // The walk's entries, sorted, with their lstat; "." and "" are the root.
    const std::vector<ListedEntry>* root = idx->listed(".");
    REQUIRE(root != nullptr);
    CHECK(idx->listed("") == root);
    std::vector<std::string> names;
    for (const auto& e : *root) {
        names.push_back(e.name);
    }
    CHECK(names == std::vector<std::string>{"a.txt", "d"});
    CHECK(S_ISDIR((*root)[1].st.st_mode));
    CHECK((*root)[0].st.st_ino == fs::lstat(c.dir.path() + "/a.txt").st_ino);
    const std::vector<ListedEntry>* e = idx->listed("d/e");
    REQUIRE(e != nullptr);
    REQUIRE(e->size() == 1);
    CHECK((*e)[0].name == "c.bin");
    CHECK((*e)[0].st.st_size == 100000);
    CHECK(idx->listed("d/e/c.bin") == nullptr);
    CHECK(idx->listed("nope") == nullptr);

    // Nothing changed: the listing gives what reading the directories gives.
    std::string h = hash_sources(c.fd.get(), {"."}, listed, idx.get());
    CHECK(hash_sources(c.fd.get(), {"."}, {}, idx.get()) == h);

    // A file made after the walk is neither hashed nor copied: both see the
    // context as it was walked (as BuildKit sees the context it was sent).
    test::write_file(c.dir.path() + "/d/late.txt", "late", 0644);
    CHECK(hash_sources(c.fd.get(), {"."}, listed, idx.get()) == h);
    CHECK(hash_sources(c.fd.get(), {"."}, {}, idx.get()) != h);
    TempDir out;
    UniqueFd dest = fs::open_dir(out.path());
    copy_into(c.fd.get(), {"."}, dest.get(), "/ctx/", listed);
    CHECK(fs::exists(out.path() + "/ctx/d/e/c.bin"));
    CHECK(test::read_file(out.path() + "/ctx/d/b.txt") == "bravo");
    CHECK_FALSE(fs::exists(out.path() + "/ctx/d/late.txt"));

    // A directory the walk did not see is read as it is now.
    test::write_file(c.dir.path() + "/new/x.txt", "x", 0644);
    TempDir out2;
    UniqueFd dest2 = fs::open_dir(out2.path());
    copy_into(c.fd.get(), {"d", "new"}, dest2.get(), "/n/", listed);
    CHECK(fs::exists(out2.path() + "/n/x.txt"));
    CHECK(fs::exists(out2.path() + "/n/b.txt"));
    CHECK_FALSE(fs::exists(out2.path() + "/n/late.txt"));
}
