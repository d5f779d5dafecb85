#include "runner/terminal.hpp"

#include "util/error.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace strata::runner {

namespace {

constexpr int kSignals[5] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH};
std::atomic<Control*> g_control{nullptr};
std::atomic<int> g_last_signal{0};

void on_signal(int sig) {
    Control* c = g_control.load();
    if (c == nullptr) {
        return;
    }
    if (sig == SIGWINCH) {
        c->window_changed();
    } else {
        g_last_signal.store(sig);
        c->cancel();
    }
}

} // namespace

SignalRouting::SignalRouting(Control& control) {
    Control* expected = nullptr;
    if (!g_control.compare_exchange_strong(expected, &control)) {
        throw Error("signals are already routed to another container");
    }
    g_last_signal.store(0);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 5; ++i) {
        if (::sigaction(kSignals[i], &sa, &old_[i]) != 0) {
            int e = errno;
            for (int k = 0; k < i; ++k) {
                ::sigaction(kSignals[k], &old_[k], nullptr);
            }
            g_control.store(nullptr);
            throw SysError("sigaction", e);
        }
    }
}

SignalRouting::~SignalRouting() {
    for (int i = 0; i < 5; ++i) {
        ::sigaction(kSignals[i], &old_[i], nullptr);
    }
    g_control.store(nullptr);
}

int SignalRouting::last_signal() noexcept {
    return g_last_signal.load();
}

RawTerminal::RawTerminal(int fd) : fd_(fd) {
    if (fd < 0 || !::isatty(fd)) {
        return;
    }
    if (::tcgetattr(fd, &saved_) != 0) {
        throw_errno("tcgetattr");
    }
    struct termios raw = saved_;
    ::cfmakeraw(&raw);
    if (::tcsetattr(fd, TCSADRAIN, &raw) != 0) {
        throw_errno("tcsetattr");
    }
    active_ = true;
}

RawTerminal::~RawTerminal() {
    if (active_) {
        ::tcsetattr(fd_, TCSADRAIN, &saved_);
    }
}

} // namespace strata::runner
