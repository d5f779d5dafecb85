// Streaming SHA-256 with OpenSSL (its SHA256_* functions; see sha256.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace strata {

class Sha256 {
public:
    using Bytes = std::array<std::uint8_t, 32>;

    Sha256();
    ~Sha256();
    Sha256(Sha256&& o) noexcept;
    Sha256& operator=(Sha256&& o) noexcept;
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, std::size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    // Finishes the hash; the object may not be updated afterwards.
    Bytes finish();
    // Finishes and returns 64 lowercase hex characters.
    std::string finish_hex();

    static std::string hex(const Bytes& bytes);
    static std::string hex_of(std::string_view data);

private:
    void* m_ctx;
};

} // namespace strata
