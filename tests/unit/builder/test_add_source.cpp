// ADD's archive detection and URL naming.
#include "builder/add_source.hpp"
#include "formats/tar.hpp"
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
