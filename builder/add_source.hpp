// ADD's two extras over COPY: fetching http(s) URLs (libcurl) and
// recognising local tar archives (plain, gzip or zstd) to extract them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace strata::builder {

struct Download {
    std::string file_name; // from the URL path ("index.html" when it has none)
    std::string path;      // where it was saved
    std::string sha256;    // "sha256:<hex>" of the content
    std::optional<std::int64_t> mtime; // Last-Modified, when the server sent it
};

bool is_url(const std::string& source);

// Downloads url into dir (following redirects, failing on HTTP errors). With
// checksum ("sha256:<hex>"), a mismatch throws naming both digests.
Download fetch_url(const std::string& url, const std::string& dir, const std::string& checksum);

// True when the file at fd (read from offset 0 with pread) is a tar archive,
// possibly gzip or zstd compressed: its first 512 bytes after decompression
// are a tar header with a valid checksum, as Docker's detection decides.
bool is_tar_archive(int fd);

} // namespace strata::builder
