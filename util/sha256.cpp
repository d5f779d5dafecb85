#include "util/sha256.hpp"

#include "util/error.hpp"

#include <openssl/evp.h>
#include <utility>

namespace strata {

namespace {
EVP_MD_CTX* ctx_of(void* p) { return static_cast<EVP_MD_CTX*>(p); }
} // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_of(ctx_), EVP_sha256(), nullptr) != 1) {
        EVP_MD_CTX_free(ctx_of(ctx_));
        throw Error("OpenSSL: cannot initialise SHA-256");
    }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_of(ctx_)); }

Sha256::Sha256(Sha256&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)) {}

Sha256& Sha256::operator=(Sha256&& o) noexcept {
    if (this != &o) {
        EVP_MD_CTX_free(ctx_of(ctx_));
        ctx_ = std::exchange(o.ctx_, nullptr);
    }
    return *this;
}

void Sha256::update(const void* data, std::size_t size) {
    if (size != 0 && EVP_DigestUpdate(ctx_of(ctx_), data, size) != 1) {
        throw Error("OpenSSL: SHA-256 update failed");
    }
}

Sha256::Bytes Sha256::finish() {
    Bytes out{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_of(ctx_), out.data(), &len) != 1 || len != out.size()) {
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
