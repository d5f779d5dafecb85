// ADD's two extras over COPY: fetching http(s) URLs (libcurl) and
// recognising local tar archives (plain, gzip, bzip2, xz or zstd) to
// extract them.
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

// A git repository as BuildKit's ADD recognises one: git://..., git@host:...,
// ssh://..., github.com/..., or an http(s) URL whose path ends in ".git"
// (each optionally followed by "#ref[:subdir]").
bool is_git_url(const std::string& source);

struct GitCheckout {
    std::string root;   // the checked-out tree (or its subdirectory from "#ref:subdir")
    std::string commit; // the commit it is at (for the cache key)
};

// What a build grants git besides the URL (BuildKit's rules): nothing of the
// host user's own (HOME, ~/.gitconfig, ~/.ssh keys, credential helpers, the
// agent in SSH_AUTH_SOCK) reaches git unless given here.
struct GitAuth {
    std::string ssh_auth_sock; // `strata build --ssh default[=SOCKET]`: the agent for ssh URLs
    std::string token;         // `--secret id=GIT_AUTH_TOKEN`: x-access-token for http(s) URLs
    std::string token_host;    // the host that token is for (GIT_AUTH_TOKEN.<host>); empty: any
};

// Clones a git source (is_git_url) into dir with the host's git and checks
// out "#ref" (a branch, tag or commit; default HEAD). Without keep_git_dir
// the .git directory is removed, as BuildKit does. Throws naming the URL
// (and git's own message) when git is missing, the clone fails or the ref
// does not exist. Submodules are not fetched.
// git runs with a scrubbed environment: an empty temporary HOME, no system
// or global config, no credential helper, no prompt, ssh without the user's
// config, identities or known hosts (as BuildKit without known_hosts).
GitCheckout fetch_git(const std::string& source, const std::string& dir, bool keep_git_dir,
                      const GitAuth& auth = {});

// Downloads url into dir (following redirects, failing on HTTP errors). With
// checksum ("sha256:<hex>", "sha384:<hex>" or "sha512:<hex>", as BuildKit
// accepts), a mismatch throws naming the URL and both digests.
Download fetch_url(const std::string& url, const std::string& dir, const std::string& checksum);

// The compression of a local ADD source, by its magic bytes (Docker's
// archive.DetectCompression: gzip, bzip2, xz and zstd).
enum class ArchiveCompression { none, gzip, bzip2, xz, zstd };
ArchiveCompression detect_archive_compression(int fd);

// True when the file at fd (read with pread, its offset untouched) is a tar
// archive, plain or compressed as above: its first 512 bytes after
// decompression are a tar header with a valid checksum, as Docker decides.
// Anything else (including a corrupt compressed stream) is copied as is.
bool is_tar_archive(int fd);

// Extracts the archive at fd under target_dirfd with the layer code's
// confinement (no entry, "../" name or symlink reaches outside the target);
// owners and modes as stored, as Docker's ADD does. name is for messages;
// tmp_dir holds the decompressed stream of bzip2 and xz archives.
void extract_archive(int fd, const std::string& name, int target_dirfd, const std::string& tmp_dir);

} // namespace strata::builder
