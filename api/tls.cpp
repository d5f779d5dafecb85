// TLS termination for strata serve (api/tls.hpp), with OpenSSL.
#include "api/tls.hpp"

#include "util/error.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <vector>

namespace strata::api {

namespace {

// OpenSSL's error queue as one line ("error:0A000086:SSL routines::certificate
// verify failed"), emptied.
std::string ssl_errors() {
    std::string out;
    while (unsigned long e = ::ERR_get_error()) {
        char buf[256];
        ::ERR_error_string_n(e, buf, sizeof buf);
        out += (out.empty() ? "" : "; ") + std::string(buf);
    }
    return out.empty() ? "unknown TLS error" : out;
}

std::string peer_name(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return "a client";
    }
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        return std::string(host) + ":" + std::to_string(port);
    }
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        return "[" + std::string(host) + "]:" + std::to_string(port);
    }
    return "a client";
}

void set_timeouts(int fd, int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// After a refused handshake: OpenSSL has sent its alert, but the client
// (TLS 1.3 finishes its side first) may already have sent its request. A
// close with those bytes unread makes the kernel answer with a reset, and
// the client reports "connection reset by peer" instead of the alert
// ("tls: bad certificate"), or nothing at all. So: half-close, read what
// the client still sends until it closes (for up to a second), then close.
void close_after_alert(int fd) {
    ::shutdown(fd, SHUT_WR);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    char sink[4096];
    std::size_t drained = 0;
    while (drained < (std::size_t{1} << 20)) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            return;
        }
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return;
        }
        ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            return; // the client closed (or reset): nothing more to wait for
        }
        drained += static_cast<std::size_t>(n);
    }
}

bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

struct SslFree {
    void operator()(SSL* s) const { ::SSL_free(s); }
};

} // namespace

struct TlsContext::Impl {
    SSL_CTX* ctx = nullptr;
};

TlsContext::TlsContext(const TlsFiles& files) : m_impl(std::make_unique<Impl>()) {
    m_impl->ctx = ::SSL_CTX_new(::TLS_server_method());
    if (m_impl->ctx == nullptr) {
        throw Error("TLS: " + ssl_errors());
    }
    SSL_CTX* ctx = m_impl->ctx;
    // dockerd's tlsconfig.ServerDefault: TLS 1.2 at least; of its suites the
    // forward-secret AEAD ones (TLS 1.3's are all of that kind).
    ::SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    ::SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                   "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                   "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    ::SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    auto check_readable = [](const std::string& what, const std::string& path) {
        if (path.empty()) {
            throw UsageError("--" + what + " is required with --tlsverify");
        }
        if (::access(path.c_str(), R_OK) != 0) {
            throw SysError("open", path, errno);
        }
    };
    check_readable("tlscert", files.cert);
    check_readable("tlskey", files.key);
    check_readable("tlscacert", files.ca_cert);
    if (::SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) {
        throw Error(files.cert + ": not a PEM certificate: " + ssl_errors());
    }
    if (::SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        bool mismatch = ERR_GET_REASON(::ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        throw Error(files.key +
                    (mismatch ? ": the key does not match the certificate " + files.cert
                              : std::string(": not a PEM private key")) +
                    ": " + ssl_errors());
    }
    if (::SSL_CTX_check_private_key(ctx) != 1) {
        throw Error(files.key + ": the key does not match the certificate " + files.cert + ": " +
                    ssl_errors());
    }
    if (::SSL_CTX_load_verify_locations(ctx, files.ca_cert.c_str(), nullptr) != 1) {
        throw Error(files.ca_cert + ": no PEM CA certificate: " + ssl_errors());
    }
    // The CA's names are offered to the client (Go picks its certificate by them).
    STACK_OF(X509_NAME)* names = ::SSL_load_client_CA_file(files.ca_cert.c_str());
    if (names == nullptr) {
        throw Error(files.ca_cert + ": no PEM CA certificate: " + ssl_errors());
    }
    ::SSL_CTX_set_client_CA_list(ctx, names);
    // --tlsverify: tls.RequireAndVerifyClientCert.
    ::SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
}

TlsContext::~TlsContext() {
    if (m_impl && m_impl->ctx) {
        ::SSL_CTX_free(m_impl->ctx);
    }
}

void tls_relay(const TlsContext& ctx, UniqueFd network, UniqueFd plain,
               const std::function<void(const std::string&)>& log) {
    std::unique_ptr<SSL, SslFree> ssl(::SSL_new(ctx.m_impl->ctx));
    if (!ssl || ::SSL_set_fd(ssl.get(), network.get()) != 1) {
        log("TLS: " + ssl_errors());
        return;
    }
    // A client that stalls the handshake is dropped; once it is done the
    // connection may idle as long as the client wants (docker logs -f).
    set_timeouts(network.get(), 30);
    ::ERR_clear_error();
    if (::SSL_accept(ssl.get()) != 1) {
        log("TLS handshake with " + peer_name(network.get()) + " failed: " + ssl_errors());
        close_after_alert(network.get());
        return;
    }
    set_timeouts(network.get(), 0);

    std::vector<char> buf(64 * 1024);
    bool client_open = true; // the client may still send
    bool plain_open = true;  // the HTTP side may still answer
    while (plain_open) {
        bool from_client = false;
        bool from_plain = false;
        if (client_open && ::SSL_pending(ssl.get()) > 0) {
            from_client = true;
        } else {
            pollfd p[2] = {{network.get(), static_cast<short>(client_open ? POLLIN : 0), 0},
                           {plain.get(), POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                break;
            }
            from_client = client_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
            from_plain = (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
        }
        if (from_client) {
            int n = ::SSL_read(ssl.get(), buf.data(), static_cast<int>(buf.size()));
            if (n > 0) {
                if (!write_all(plain.get(), buf.data(), static_cast<std::size_t>(n))) {
                    break; // the HTTP side closed
                }
            } else {
                // close_notify, a reset or a broken record: the client is
                // gone; the HTTP side may still finish what it writes.
                ::ERR_clear_error();
                client_open = false;
                ::shutdown(plain.get(), SHUT_WR);
            }
        }
        if (from_plain) {
            ssize_t n = ::read(plain.get(), buf.data(), buf.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                plain_open = false;
                break;
            }
            if (::SSL_write(ssl.get(), buf.data(), static_cast<int>(n)) <= 0) {
                ::ERR_clear_error();
                break; // the client is gone
            }
        }
    }
    if (client_open) {
        ::SSL_shutdown(ssl.get()); // close_notify
    }
    ::ERR_clear_error();
}

} // namespace strata::api
