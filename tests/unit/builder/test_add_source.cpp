// ADD's archive detection and URL naming.
#include "builder/add_source.hpp"
#include "formats/tar.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>

using namespace strata;
using namespace strata::builder;

namespace {

std::string write_tar(const std::string& path, formats::Compression c) {
    UniqueFd fd = fs::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    formats::TarWriter::Options o;
    o.compression = c;
    formats::TarWriter w(fd.get(), o);
    formats::TarEntry e;
    e.path = "hello.txt";
    e.size = 5;
    w.add_data(e, "hello");
    w.finish();
    return path;
}

bool detect(const std::string& path) {
    UniqueFd fd = fs::open(path, O_RDONLY);
    return is_tar_archive(fd.get());
}

} // namespace

TEST_CASE("ADD recognises plain, gzip and zstd tar archives and nothing else") {
    TempDir dir;
    CHECK(detect(write_tar(dir.path() + "/a.tar", formats::Compression::none)));
    CHECK(detect(write_tar(dir.path() + "/a.tar.gz", formats::Compression::gzip)));
    CHECK(detect(write_tar(dir.path() + "/a.tar.zst", formats::Compression::zstd)));

    fs::write_file_atomic(dir.path() + "/empty", "");
    CHECK_FALSE(detect(dir.path() + "/empty"));
    fs::write_file_atomic(dir.path() + "/text", std::string(2000, 'x'));
    CHECK_FALSE(detect(dir.path() + "/text"));
    // A gzip stream that is not a tar stays a file (Docker copies it as is).
    {
        UniqueFd fd = fs::open(dir.path() + "/text.gz", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        auto comp = formats::Compressor::create(formats::Compression::gzip, [&](const void* d, std::size_t n) {
            fs::write_all(fd.get(), d, n);
        });
        std::string data(4096, 'y');
        comp->write(data.data(), data.size());
        comp->finish();
    }
    CHECK_FALSE(detect(dir.path() + "/text.gz"));
}

TEST_CASE("ADD tells URLs from paths") {
    CHECK(is_url("https://example.com/a.tar.gz"));
    CHECK(is_url("http://example.com"));
    CHECK_FALSE(is_url("httpfile"));
    CHECK_FALSE(is_url("./https://x"));
}

namespace {

// The file compressed by an external program (bzip2, xz).
std::string compress_with(const std::string& program, const std::string& in, const std::string& out) {
    auto r = run_capture({program, "-c", in});
    REQUIRE(r.status.success());
    fs::write_file_atomic(out, r.out);
    return out;
}

} // namespace

TEST_CASE("ADD recognises bzip2 and xz tar archives, and compressed non-tars stay files") {
    TempDir dir;
    std::string tar = write_tar(dir.path() + "/a.tar", formats::Compression::none);
    std::string bz = compress_with("bzip2", tar, dir.path() + "/a.tar.bz2");
    std::string xz = compress_with("xz", tar, dir.path() + "/a.tar.xz");
    {
        UniqueFd fd = fs::open(bz, O_RDONLY);
        CHECK(detect_archive_compression(fd.get()) == ArchiveCompression::bzip2);
    }
    {
        UniqueFd fd = fs::open(xz, O_RDONLY);
        CHECK(detect_archive_compression(fd.get()) == ArchiveCompression::xz);
    }
    CHECK(detect(bz));
    CHECK(detect(xz));
    fs::write_file_atomic(dir.path() + "/text", std::string(3000, 'z'));
    CHECK_FALSE(detect(compress_with("bzip2", dir.path() + "/text", dir.path() + "/t.bz2")));
    CHECK_FALSE(detect(compress_with("xz", dir.path() + "/text", dir.path() + "/t.xz")));
    // Magic bytes with garbage behind them: not an archive, no exception.
    fs::write_file_atomic(dir.path() + "/fake.bz2", "BZh91AY&SY garbage garbage");
    CHECK_FALSE(detect(dir.path() + "/fake.bz2"));

    for (const std::string& a : {tar, bz, xz}) {
        TempDir out;
        UniqueFd src = fs::open(a, O_RDONLY);
        UniqueFd target = fs::open_dir(out.path());
        extract_archive(src.get(), a, target.get(), dir.path());
        CHECK(fs::read_file(out.path() + "/hello.txt") == "hello");
    }
}

TEST_CASE("ADD keeps hostile xz archives inside their destination") {
    TempDir dir;
    std::string tar = dir.path() + "/evil.tar";
    {
        UniqueFd fd = fs::open(tar, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        formats::TarWriter w(fd.get(), formats::TarWriter::Options{});
        formats::TarEntry link;
        link.path = "up";
        link.type = formats::EntryType::symlink;
        link.linkname = "../../../../..";
        w.add(link);
        formats::TarEntry e;
        e.path = "up/escaped.txt";
        e.size = 1;
        w.add_data(e, "x");
        formats::TarEntry dots;
        dots.path = "../dotdot.txt";
        dots.size = 1;
        w.add_data(dots, "x");
        w.finish();
    }
    std::string xz = compress_with("xz", tar, dir.path() + "/evil.tar.xz");
    TempDir out;
    fs::mkdirs(out.path() + "/dest", 0755);
    UniqueFd src = fs::open(xz, O_RDONLY);
    UniqueFd target = fs::open_dir(out.path() + "/dest");
    try {
        extract_archive(src.get(), "evil.tar.xz", target.get(), dir.path());
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("evil.tar.xz") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(out.path() + "/dotdot.txt"));
    CHECK_FALSE(fs::exists(out.path() + "/escaped.txt"));
    CHECK_FALSE(fs::exists("/escaped.txt"));
}

TEST_CASE("ADD tells git repositories from other URLs as BuildKit does") {
    CHECK(is_git_url("git@github.com:moby/buildkit.git"));
    CHECK(is_git_url("git://example.com/repo"));
    CHECK(is_git_url("ssh://git@example.com/repo"));
    CHECK(is_git_url("github.com/moby/buildkit"));
    CHECK(is_git_url("https://github.com/moby/buildkit.git"));
    CHECK(is_git_url("https://github.com/moby/buildkit.git#v0.10.1"));
    CHECK(is_git_url("https://github.com/moby/buildkit.git#main:docs"));
    CHECK_FALSE(is_git_url("https://example.com/a.tar.gz"));
    CHECK_FALSE(is_git_url("https://example.com/file.git.txt"));
    CHECK_FALSE(is_git_url("src.git"));
}
