#include "util/sha256.hpp"
#include "util/sha256_resumable.hpp"

#include "util/error.hpp"

// OpenSSL's SHA256_* functions, not EVP: they run the same code (the
// SHA-NI or AVX2 assembly, chosen by CPU), but EVP's first use loads the
// default provider and fills OpenSSL's algorithm name tables, ~1.1 ms of CPU
// in every strata process that hashes anything (`strata run` verifies the
// manifest and config it reads), more than the hashing itself. OpenSSL 3
// marks them deprecated; they remain part of its API.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstring>
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

ResumableSha256::ResumableSha256() {
    auto ctx = std::make_unique<SHA256_CTX>();
    if (SHA256_Init(ctx.get()) != 1)
        throw Error("OpenSSL: cannot initialise SHA-256");
    m_ctx = ctx.release();
}

ResumableSha256::~ResumableSha256() {
    delete ctx_of(m_ctx);
}

ResumableSha256::ResumableSha256(ResumableSha256&& o) noexcept
    : m_ctx(std::exchange(o.m_ctx, nullptr)) {}

ResumableSha256& ResumableSha256::operator=(ResumableSha256&& o) noexcept {
    if (this != &o) {
        delete ctx_of(m_ctx);
        m_ctx = std::exchange(o.m_ctx, nullptr);
    }
    return *this;
}

void ResumableSha256::update(const void* data, std::size_t size) {
    if (size != 0 && SHA256_Update(ctx_of(m_ctx), data, size) != 1) {
        throw Error("OpenSSL: SHA-256 update failed");
    }
}

std::string ResumableSha256::finish_hex() {
    Sha256::Bytes out{};
    if (SHA256_Final(out.data(), ctx_of(m_ctx)) != 1) {
        throw Error("OpenSSL: SHA-256 final failed");
    }
    return Sha256::hex(out);
}

// state(): "sha256-state1", the eight words big endian, the byte count as
// 8 bytes big endian, then the count % 64 pending bytes.
namespace {
constexpr std::string_view k_state_tag = "sha256-state1";
}

std::string ResumableSha256::state() const {
    const SHA256_CTX* c = ctx_of(m_ctx);
    std::string s(k_state_tag);
    auto put = [&](std::uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i) {
            s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        }
    };
    for (int i = 0; i < 8; ++i) {
        put(c->h[i], 4);
    }
    std::uint64_t bits = (std::uint64_t{c->Nh} << 32) | c->Nl;
    put(bits / 8, 8);
    s.append(reinterpret_cast<const char*>(c->data), c->num);
    return s;
}

std::uint64_t ResumableSha256::state_bytes(std::string_view state) {
    ResumableSha256 h = resume(state);
    const SHA256_CTX* c = ctx_of(h.m_ctx);
    return ((std::uint64_t{c->Nh} << 32) | c->Nl) / 8;
}

ResumableSha256 ResumableSha256::resume(std::string_view state) {
    auto bad = [] { return Error("bad SHA-256 state"); };
    if (state.size() < k_state_tag.size() + 40 ||
        state.substr(0, k_state_tag.size()) != k_state_tag) {
        throw bad();
    }
    const auto* p = reinterpret_cast<const unsigned char*>(state.data() + k_state_tag.size());
    auto get = [&](int bytes) {
        std::uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) {
            v = (v << 8) | *p++;
        }
        return v;
    };
    ResumableSha256 h;
    SHA256_CTX* c = ctx_of(h.m_ctx);
    for (int i = 0; i < 8; ++i) {
        c->h[i] = static_cast<SHA_LONG>(get(4));
    }
    std::uint64_t bytes = get(8);
    std::size_t pending = state.size() - k_state_tag.size() - 40;
    if (bytes % 64 != pending || bytes > (std::uint64_t{1} << 60)) {
        throw bad();
    }
    std::uint64_t bits = bytes * 8;
    c->Nl = static_cast<SHA_LONG>(bits & 0xffffffffu);
    c->Nh = static_cast<SHA_LONG>(bits >> 32);
    std::memcpy(c->data, p, pending);
    c->num = static_cast<unsigned int>(pending);
    return h;
}

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
