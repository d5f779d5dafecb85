// Scope guards. ScopeExit always runs its callback; ScopeFail runs it only
// when the scope is left by an exception ("delete the half-written layer").
// Callbacks must not throw.
#pragma once

#include <exception>
#include <utility>

namespace strata {

template <typename F> class [[nodiscard]] ScopeExit {
public:
    explicit ScopeExit(F f) : f_(std::move(f)) {}
    ScopeExit(const ScopeExit&) = delete;
    ScopeExit& operator=(const ScopeExit&) = delete;
    ~ScopeExit() {
        if (active_) {
            f_();
        }
    }
    void dismiss() noexcept { active_ = false; }

private:
    F f_;
    bool active_ = true;
};

template <typename F> class [[nodiscard]] ScopeFail {
public:
    explicit ScopeFail(F f) : f_(std::move(f)), exceptions_(std::uncaught_exceptions()) {}
    ScopeFail(const ScopeFail&) = delete;
    ScopeFail& operator=(const ScopeFail&) = delete;
    ~ScopeFail() {
        if (active_ && std::uncaught_exceptions() > exceptions_) {
            f_();
        }
    }
    void dismiss() noexcept { active_ = false; }

private:
    F f_;
    int exceptions_;
    bool active_ = true;
};

} // namespace strata
