// Test fixtures that run registries on 127.0.0.1: the Python fake registry
// (fake_registry.py, with switches for misbehaviour) and Debian's
// docker-registry (open or with htpasswd basic auth). Each owns its process
// (a Child, killed and reaped on destruction) and its temporary directory.
#pragma once

#include "util/child.hpp"
#include "util/tempdir.hpp"

#include <string>
#include <vector>

namespace strata::test {

class FakeRegistry {
public:
    explicit FakeRegistry(const std::vector<std::string>& flags = {});
    ~FakeRegistry();
    // "127.0.0.1:PORT"
    const std::string& host() const { return m_host; }
    // The request log: one "METHOD PATH STATUS" line per request.
    std::string requests() const;
    int count(const std::string& needle) const;

private:
    TempDir m_dir;
    Child m_child;
    std::string m_host;
};

class DockerRegistry {
public:
    // With htpasswd_user set, the registry requires basic auth for that user.
    explicit DockerRegistry(const std::string& htpasswd_user = {},
                            const std::string& htpasswd_password = {});
    ~DockerRegistry();
    const std::string& host() const { return m_host; }
    const std::string& storage() const { return m_storage; }
    static bool available();

private:
    TempDir m_dir;
    Child m_child;
    std::string m_host;
    std::string m_storage;
};

// Waits until host:port accepts TCP connections (bounded).
void wait_for_port(int port, const std::string& what);
int free_port();

} // namespace strata::test
