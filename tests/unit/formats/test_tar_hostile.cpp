// Hostile tar headers, written byte by byte: what Go's archive/tar (Docker's
// reader) refuses, TarReader refuses too, naming the entry or the header.
#include "formats/limits.hpp"
#include "formats/tar.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>

using namespace strata;
using namespace strata::formats;
using Catch::Matchers::Contains;

namespace {

// A 512-byte header block.
struct Header {
    char b[512] = {};

    void put(std::size_t off, std::size_t len, const std::string& v) {
        std::memset(b + off, 0, len);
        std::memcpy(b + off, v.data(), std::min(len, v.size()));
    }
    // An octal field of len bytes: len-1 digits and a NUL.
    void octal(std::size_t off, std::size_t len, std::uint64_t v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(len - 1),
                      static_cast<unsigned long long>(v));
        put(off, len, std::string(buf, len - 1));
    }
    // A base-256 field (GNU): 0x80, then the value big-endian.
    void base256(std::size_t off, std::size_t len, std::uint64_t v) {
        std::memset(b + off, 0, len);
        b[off] = static_cast<char>(0x80);
        for (std::size_t i = 0; i < std::min<std::size_t>(8, len - 1); ++i) {
            b[off + len - 1 - i] = static_cast<char>((v >> (8 * i)) & 0xff);
        }
    }
    void seal() {
        std::memset(b + 148, ' ', 8);
        unsigned sum = 0;
        for (char c : b) {
            sum += static_cast<unsigned char>(c);
        }
        char buf[8];
        std::snprintf(buf, sizeof buf, "%06o", sum);
        std::memcpy(b + 148, buf, 6);
        b[154] = '\0';
        b[155] = ' ';
    }
    std::string bytes() const { return std::string(b, sizeof b); }
};

Header ustar(const std::string& name, char type, std::uint64_t size = 0) {
    Header h;
    h.put(0, 100, name);
    h.octal(100, 8, type == '5' ? 0755 : 0644);
    h.octal(108, 8, 0);
    h.octal(116, 8, 0);
    h.octal(124, 12, size);
    h.octal(136, 12, 1700000000);
    h.b[156] = type;
    h.put(257, 6, std::string("ustar\0", 6));
    h.put(263, 2, "00");
    h.octal(329, 8, 0);
    h.octal(337, 8, 0);
    return h;
}

std::string padded(std::string data) {
    data.resize((data.size() + 511) / 512 * 512, '\0');
    return data;
}

std::string entry(Header h, const std::string& data = "", bool seal = true) {
    if (seal) {
        h.seal();
    }
    return h.bytes() + padded(data);
}

std::string pax_record(const std::string& key, const std::string& value) {
    std::string rec = " " + key + "=" + value + "\n";
    std::size_t n = rec.size() + 1;
    while (std::to_string(n).size() + rec.size() != n) {
        ++n;
    }
    return std::to_string(n) + rec;
}

std::string pax(const std::string& records) {
    return entry(ustar("PaxHeaders/x", 'x', records.size()), records);
}

std::string end() {
    return std::string(1024, '\0');
}

// Reads every entry of a tar stream; returns the names read.
std::vector<std::string> read_all(const std::string& tar) {
    TempDir dir;
    std::string path = dir.path() + "/layer.tar";
    test::write_file(path, tar);
    UniqueFd fd = fs::open(path, O_RDONLY);
    TarReader r(fd.get(), "layer.tar");
    std::vector<std::string> names;
    while (auto e = r.next()) {
        names.push_back(e->path);
        if (e->type == EntryType::file) {
            char buf[4096];
            while (r.read(buf, sizeof buf) > 0) {
            }
        }
    }
    r.finish();
    return names;
}

const std::string k_first = entry(ustar("first", '0', 5), "hello");

} // namespace

TEST_CASE("hostile tar: the raw writer of these tests makes tars TarReader reads") {
    auto names = read_all(k_first + entry(ustar("second", '0', 2), "hi") +
                          pax(pax_record("path", "long/name")) + entry(ustar("x", '5')) + end());
    CHECK(names == std::vector<std::string>{"first", "second", "long/name"});
}

TEST_CASE("hostile tar: numeric fields must be octal or valid base-256") {
    for (auto [what, off, len] : {std::tuple{"mode", 100, 8}, std::tuple{"uid", 108, 8},
                                  std::tuple{"gid", 116, 8}, std::tuple{"size", 124, 12},
                                  std::tuple{"mtime", 136, 12}, std::tuple{"devmajor", 329, 8}}) {
        INFO(what);
        Header h = ustar("second", '0');
        h.put(static_cast<std::size_t>(off), static_cast<std::size_t>(len), "00006x4");
        CHECK_THROWS_WITH(read_all(k_first + entry(h) + end()),
                          Contains(std::string("the ") + what + " field is neither octal") &&
                              Contains("\"second\"") && Contains("after entry \"first\"") &&
                              Contains("offset 1024"));
    }
    // Base-256 beyond 63 bits.
    Header h = ustar("second", '0');
    std::memset(h.b + 124, 0xff, 12);
    h.b[124] = static_cast<char>(0x80);
    CHECK_THROWS_WITH(read_all(k_first + entry(h) + end()),
                      Contains("size field is neither octal nor valid base-256"));
    // A negative size (base-256).
    Header neg = ustar("second", '0');
    std::memset(neg.b + 124, 0xff, 12);
    CHECK_THROWS_WITH(read_all(k_first + entry(neg) + end()), Contains("negative size"));
    // Spaces and NULs around octal digits are fine (as Go).
    Header ok = ustar("second", '0', 0);
    ok.put(124, 12, "   0 \0");
    CHECK(read_all(k_first + entry(ok) + end()).size() == 2);
}

TEST_CASE("hostile tar: a bad checksum names the header and the last good entry") {
    Header h = ustar("second", '0', 2);
    h.seal();
    h.b[0] = 'S'; // changed after sealing
    CHECK_THROWS_WITH(read_all(k_first + entry(h, "hi", false) + end()),
                      Contains("bad header checksum") && Contains("\"Second\"") &&
                          Contains("after entry \"first\"") && Contains("offset 1024"));
    CHECK_THROWS_WITH(read_all(entry(h, "hi", false) + end()),
                      Contains("bad header checksum") && Contains("the first entry"));
}

TEST_CASE("hostile tar: ids above 4294967294, negative or garbage are refused") {
    Header big = ustar("second", '0');
    big.base256(108, 8, 4294967295ULL);
    CHECK_THROWS_WITH(read_all(k_first + entry(big) + end()), Contains("out of range"));
    Header huge = ustar("second", '0');
    huge.base256(116, 8, 1ULL << 40);
    CHECK_THROWS_WITH(read_all(k_first + entry(huge) + end()), Contains("out of range"));
    Header neg = ustar("second", '0');
    std::memset(neg.b + 108, 0xff, 8);
    CHECK_THROWS_WITH(read_all(k_first + entry(neg) + end()), Contains("out of range"));
    for (std::string v : {"4294967295", "-1", "12a", "", "99999999999999999999"}) {
        INFO(v);
        CHECK_THROWS_WITH(
            read_all(k_first + pax(pax_record("uid", v)) + entry(ustar("second", '0')) + end()),
            Contains("is not an id"));
    }
    CHECK(read_all(k_first + pax(pax_record("uid", "4294967294")) + entry(ustar("second", '0')) +
                   end())
              .size() == 2);
}

TEST_CASE("hostile tar: malformed PAX records are refused") {
    auto refused = [](const std::string& records, const std::string& why) {
        INFO(records);
        CHECK_THROWS_WITH(read_all(k_first + pax(records) + entry(ustar("second", '0')) + end()),
                          Contains(why) && Contains("after entry \"first\""));
    };
    refused("30 path=abc\n", "bad length");                 // longer than the header
    refused("99999999999999999999 path=x\n", "bad length"); // huge
    refused("12 path=abc\n"
            "3 a\n",
            "bad length");                     // under 5
    refused("12 pathxabc\n", "not key=value"); // no '='
    refused("11 path=ab\nx", "no length");     // trailing bytes
    refused("12 path=abcd", "does not end where its length says");
    refused(pax_record("path", std::string("a\0b", 3)), "NUL inside the path");
    refused(pax_record("linkpath", std::string("a\0b", 3)), "NUL inside the linkpath");
    refused(pax_record(std::string("SCHILY.xattr.user.a\0b", 21), "v"), "NUL inside the key");
    refused(pax_record("size", "12x"), "bad value");
    refused(pax_record("mtime", "12:30"), "bad value");
    refused(pax_record("GNU.sparse.realsize", "-5"), "bad value");
    // An xattr value may hold NULs (binary capabilities).
    CHECK(read_all(k_first + pax(pax_record("SCHILY.xattr.user.a", std::string("\0\1", 2))) +
                   entry(ustar("second", '0')) + end())
              .size() == 2);
}

TEST_CASE("hostile tar: PAX headers and long names over 1 MiB are refused") {
    std::string big(2 << 20, 'a');
    CHECK_THROWS_WITH(read_all(k_first + entry(ustar("PaxHeaders/second", 'x', big.size()), big) +
                               entry(ustar("second", '0')) + end()),
                      Contains("PAX header of 2097152 bytes, more than the limit of 1048576") &&
                          Contains("after entry \"first\""));
    CHECK_THROWS_WITH(read_all(k_first + entry(ustar("././@LongLink", 'L', big.size()), big) +
                               entry(ustar("second", '0')) + end()),
                      Contains("GNU long name of 2097152 bytes"));
}

TEST_CASE("hostile tar: device numbers the kernel cannot hold are refused") {
    Header major = ustar("dev/x", '3');
    major.octal(329, 8, 4096);
    CHECK_THROWS_WITH(read_all(k_first + entry(major) + end()),
                      Contains("\"dev/x\"") && Contains("beyond what the kernel holds"));
    Header minor = ustar("dev/y", '4');
    minor.octal(337, 8, 1 << 20);
    CHECK_THROWS_WITH(read_all(k_first + entry(minor) + end()),
                      Contains("\"dev/y\"") && Contains("beyond what the kernel holds"));
    Header ok = ustar("dev/z", '3');
    ok.octal(329, 8, 4095);
    ok.octal(337, 8, (1 << 20) - 1);
    CHECK(read_all(k_first + entry(ok) + end()).size() == 2);
}

TEST_CASE("hostile tar: '.', './' and '/' must be directories") {
    for (std::string name : {".", "./", "/"}) {
        INFO(name);
        for (char type : {'0', '2', '3', '6'}) {
            Header h = ustar(name, type);
            if (type == '2') {
                h.put(157, 100, "etc");
            }
            CHECK_THROWS_WITH(read_all(k_first + entry(h) + end()),
                              Contains("names the root but is not a directory"));
        }
        CHECK(read_all(entry(ustar(name, '5')) + k_first + end()).size() == 2);
    }
}

TEST_CASE("hostile tar: entry types a layer cannot hold are refused") {
    for (char type : {'V', 'D', 'M', 'N', 'A'}) {
        INFO(type);
        CHECK_THROWS_WITH(read_all(k_first + entry(ustar("second", type)) + end()),
                          Contains("unsupported entry type"));
    }
}

TEST_CASE("hostile tar: a sparse file's logical size is bounded") {
    // An old GNU sparse entry: 512 bytes of data at offset 0, real size 1 TiB.
    auto sparse = [](std::uint64_t realsize) {
        Header h = ustar("big", 'S', 512);
        h.put(257, 8, std::string("ustar  \0", 8));
        h.octal(386, 12, 0);
        h.octal(398, 12, 512);
        h.base256(483, 12, realsize);
        return k_first + entry(h, std::string(512, 'x')) + end();
    };
    std::uint64_t tib = std::uint64_t{1} << 40;
    CHECK_THROWS_WITH(read_all(sparse(tib)),
                      Contains("\"big\"") && Contains("1099511627776 bytes (sparse)") &&
                          Contains("over the limit of 68719476736") && Contains("--max-file-size"));
    CHECK(read_all(sparse(1 << 20)).size() == 2);
    struct Restore {
        ~Restore() { set_max_file_size(k_default_max_file_size); }
    } restore;
    set_max_file_size(tib);
    CHECK(read_all(sparse(tib)).size() == 2);
}

TEST_CASE("hostile tar: an extended header with no entry after it is refused") {
    CHECK_THROWS_WITH(read_all(k_first + pax(pax_record("path", "x")) + end()),
                      Contains("extended header without the entry"));
}
