// Scope guards. ScopeExit always runs its callback; ScopeFail runs it only
// when the scope is left by an exception ("delete the half-written layer").
// Callbacks must not throw.
#pragma once

#include <exception>
#include <utility>

namespace strata {

template <typename F> class [[nodiscard]] ScopeExit {
public:
    explicit ScopeExit(F f) : m_f(std::move(f)) {}
    ScopeExit(const ScopeExit&) = delete;
    ScopeExit& operator=(const ScopeExit&) = delete;
    ~ScopeExit() {
        if (m_active) {
            m_f();
        }
    }
    void dismiss() noexcept { m_active = false; }

private:
    F m_f;
    bool m_active = true;
};

template <typename F> class [[nodiscard]] ScopeFail {
public:
    explicit ScopeFail(F f) : m_f(std::move(f)), m_exceptions(std::uncaught_exceptions()) {}
    ScopeFail(const ScopeFail&) = delete;
    ScopeFail& operator=(const ScopeFail&) = delete;
    ~ScopeFail() {
        if (m_active && std::uncaught_exceptions() > m_exceptions) {
            m_f();
        }
    }
    void dismiss() noexcept { m_active = false; }

private:
    F m_f;
    int m_exceptions;
    bool m_active = true;
};

} // namespace strata
