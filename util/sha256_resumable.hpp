// SHA-256 whose state can be saved and taken up again later, in another
// process (a zstd:chunked layer's hash checkpoints): the same OpenSSL
// functions as Sha256 (sha256.cpp), apart so that the many users of
// Sha256 do not depend on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata {

class ResumableSha256 {
public:
    ResumableSha256();
    ~ResumableSha256();
    ResumableSha256(ResumableSha256&& o) noexcept;
    ResumableSha256& operator=(ResumableSha256&& o) noexcept;
    ResumableSha256(const ResumableSha256&) = delete;
    ResumableSha256& operator=(const ResumableSha256&) = delete;

    void update(const void* data, std::size_t size);
    // Finishes the hash: 64 lowercase hex characters. No update afterwards.
    std::string finish_hex();

    // The state after the bytes hashed so far: the eight chaining words,
    // the byte count and the bytes of the incomplete block, as a byte
    // string of its own format (not OpenSSL's struct). resume() takes such
    // a string back; it and state_bytes() (how many bytes it says were
    // hashed) throw for one that is not well formed.
    std::string state() const;
    static ResumableSha256 resume(std::string_view state);
    static std::uint64_t state_bytes(std::string_view state);

private:
    void* m_ctx;
};

} // namespace strata
