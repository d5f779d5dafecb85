#include "builder/add_source.hpp"

#include "formats/compression.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/libcurl.hpp"
#include "util/sha256.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <vector>

namespace strata::builder {

bool is_url(const std::string& source) {
    return source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0;
}

namespace {

struct Sink {
    int fd = -1;
    Sha256 hash;
    bool failed = false;
    int err = 0;
};

// libcurl callback: no exception may cross it.
extern "C" size_t write_cb(char* data, size_t size, size_t n, void* user) {
    auto* s = static_cast<Sink*>(user);
    size_t total = size * n;
    std::size_t off = 0;
    while (off < total) {
        ssize_t w = ::write(s->fd, data + off, total - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            s->failed = true;
            s->err = errno;
            return 0;
        }
        off += static_cast<std::size_t>(w);
    }
    s->hash.update(data, total);
    return total;
}

std::string url_file_name(const std::string& url) {
    std::string rest = url.substr(url.find("://") + 3);
    for (char stop : {'?', '#'}) {
        if (auto p = rest.find(stop); p != std::string::npos) {
            rest.resize(p);
        }
    }
    auto slash = rest.find('/');
    if (slash == std::string::npos) {
        return "index.html";
    }
    std::string path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') {
        path.pop_back();
    }
    std::string base = path.substr(path.rfind('/') + 1);
    if (base.empty() || base == "." || base == "..") {
        return "index.html";
    }
    return base;
}

void curl_init_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

} // namespace

Download fetch_url(const std::string& url, const std::string& dir, const std::string& checksum) {
    curl_init_once();
    Download d;
    d.file_name = url_file_name(url);
    d.path = dir + "/" + d.file_name;
    UniqueFd out = fs::open(d.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    Sink sink;
    sink.fd = out.get();
    CURL* c = curl_easy_init();
    if (c == nullptr) {
        throw Error("ADD " + url + ": cannot initialise libcurl" +
                    (libcurl_load_error().empty() ? "" : ": " + libcurl_load_error()));
    }
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(c);
    long filetime = -1;
    curl_easy_getinfo(c, CURLINFO_FILETIME, &filetime);
    curl_easy_cleanup(c);
    if (sink.failed) {
        throw SysError("write", d.path, sink.err);
    }
    if (rc != CURLE_OK) {
        throw Error("ADD " + url + ": " + (errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc)));
    }
    out.close();
    d.sha256 = "sha256:" + sink.hash.finish_hex();
    if (filetime >= 0) {
        d.mtime = filetime;
    }
    if (!checksum.empty()) {
        if (checksum.rfind("sha256:", 0) != 0) {
            throw Error("ADD --checksum=" + checksum + ": only sha256 checksums are supported");
        }
        if (checksum != d.sha256) {
            throw Error("ADD " + url + ": checksum mismatch: expected " + checksum + ", got " +
                        d.sha256);
        }
    }
    return d;
}

bool is_tar_archive(int fd) {
    unsigned char head[16];
    ssize_t n = ::pread(fd, head, sizeof head, 0);
    if (n <= 0) {
        return false;
    }
    formats::Compression comp = formats::detect_compression(head, static_cast<std::size_t>(n));
    std::string block;
    try {
        std::unique_ptr<formats::Decompressor> dec;
        if (comp != formats::Compression::none) {
            dec = formats::Decompressor::create(comp, [&](const void* data, std::size_t size) {
                if (block.size() < 512) {
                    block.append(static_cast<const char*>(data),
                                 std::min(size, 512 - block.size()));
                }
            });
        }
        std::vector<char> buf(64 * 1024);
        off_t off = 0;
        while (block.size() < 512 && off < (64 << 20)) {
            ssize_t r = ::pread(fd, buf.data(), buf.size(), off);
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return false;
            }
            if (r == 0) {
                break;
            }
            off += r;
            if (dec) {
                dec->feed(buf.data(), static_cast<std::size_t>(r));
            } else {
                block.append(buf.data(), std::min<std::size_t>(static_cast<std::size_t>(r),
                                                               512 - block.size()));
            }
        }
    } catch (const std::exception&) {
        return false;
    }
    if (block.size() < 512) {
        return false;
    }
    // The header checksum: the sum of all bytes with the checksum field
    // (offset 148, 8 bytes) counted as spaces, stored as octal.
    unsigned long sum = 0;
    for (std::size_t i = 0; i < 512; ++i) {
        sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(block[i]);
    }
    std::string field = block.substr(148, 8);
    std::size_t start = field.find_first_of("01234567");
    if (start == std::string::npos) {
        return false;
    }
    unsigned long stored = 0;
    for (std::size_t i = start; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i) {
        stored = stored * 8 + static_cast<unsigned long>(field[i] - '0');
    }
    return stored == sum;
}

} // namespace strata::builder
