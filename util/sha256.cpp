#include "util/sha256.hpp"

#include "util/error.hpp"

// OpenSSL's SHA256_* functions, not EVP: they run the same code (the
// SHA-NI or AVX2 assembly, chosen by CPU), but EVP's first use loads the
// default provider and fills OpenSSL's algorithm name tables, ~1.1 ms of CPU
// in every strata process that hashes anything (`strata run` verifies the
// manifest and config it reads), more than the hashing itself. OpenSSL 3
// marks them deprecated; they remain part of its API.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <memory>
#include <utility>

namespace strata {

namespace {
SHA256_CTX* ctx_of(void* p) { return static_cast<SHA256_CTX*>(p); }
} // namespace

Sha256::Sha256() {
    auto ctx = std::make_unique<SHA256_CTX>();
    if (SHA256_Init(ctx.get()) != 1) throw Error("OpenSSL: cannot initialise SHA-256");
    m_ctx = ctx.release();
}

Sha256::~Sha256() {
    delete ctx_of(m_ctx);
}

Sha256::Sha256(Sha256&& o) noexcept : m_ctx(std::exchange(o.m_ctx, nullptr)) {}

Sha256& Sha256::operator=(Sha256&& o) noexcept {
    if (this != &o) {
        delete ctx_of(m_ctx);
        m_ctx = std::exchange(o.m_ctx, nullptr);
    }
    return *this;
}

void Sha256::update(const void* data, std::size_t size) {
    if (size != 0 && SHA256_Update(ctx_of(m_ctx), data, size) != 1) {
        throw Error("OpenSSL: SHA-256 update failed");
    }
}

Sha256::Bytes Sha256::finish() {
    Bytes out{};
    if (SHA256_Final(out.data(), ctx_of(m_ctx)) != 1) {
        throw Error("OpenSSL: SHA-256 final failed");
    }
    return out;
}

std::string Sha256::finish_hex() { return hex(finish()); }

std::string Sha256::hex(const Bytes& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(64);
    for (auto b : bytes) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

std::string Sha256::hex_of(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.finish_hex();
}

} // namespace strata
