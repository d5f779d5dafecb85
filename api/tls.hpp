// TLS for `strata serve`'s TCP listeners, through OpenSSL: the server's
// certificate and key, and client verification against a CA, as dockerd's
// --tlsverify (a client without a certificate that CA signed is refused in
// the handshake). TLS 1.2 or newer, forward-secret AEAD suites only.
//
// A TLS connection is served as a unix one: tls_relay terminates TLS and
// copies the plain bytes to and from one end of a socket pair, whose other
// end the HTTP side serves like any unix socket (hijacked attach and exec
// streams included). Internal to api/.
#pragma once

#include "util/fd.hpp"

#include <functional>
#include <memory>
#include <string>

namespace strata::api {

struct TlsFiles {
    std::string ca_cert; // PEM: the CA that signs the clients' certificates
    std::string cert;    // PEM: the server's certificate (chain)
    std::string key;     // PEM: its private key
};

class TlsContext {
public:
    // Loads and checks the files (throws naming the file that fails: not
    // found, not PEM, a key that does not match the certificate).
    explicit TlsContext(const TlsFiles& files);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    struct Impl;

private:
    friend void tls_relay(const TlsContext&, UniqueFd, UniqueFd,
                          const std::function<void(const std::string&)>&);
    std::unique_ptr<Impl> m_impl;
};

// Handshakes on `network` (a client that sends nothing for 30 seconds, or
// no certificate the CA signed, is dropped and logged), then relays bytes
// both ways between it and `plain` until both directions are closed: the
// client's close is passed on as a half-close of `plain` (the HTTP side
// sees its client gone), the end of `plain` as TLS close_notify.
void tls_relay(const TlsContext& ctx, UniqueFd network, UniqueFd plain,
               const std::function<void(const std::string&)>& log);

} // namespace strata::api
