#include "runner/terminal.hpp"

#include "util/error.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace strata::runner {

namespace {

constexpr int k_signals[5] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH};
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
        if (::sigaction(k_signals[i], &sa, &m_old[i]) != 0) {
            int e = errno;
            for (int k = 0; k < i; ++k) {
                ::sigaction(k_signals[k], &m_old[k], nullptr);
            }
            g_control.store(nullptr);
            throw SysError("sigaction", e);
        }
    }
}

SignalRouting::~SignalRouting() {
    for (int i = 0; i < 5; ++i) {
        ::sigaction(k_signals[i], &m_old[i], nullptr);
    }
    g_control.store(nullptr);
}

int SignalRouting::last_signal() noexcept {
    return g_last_signal.load();
}

RawTerminal::RawTerminal(int fd) : m_fd(fd) {
    if (fd < 0 || !::isatty(fd)) {
        return;
    }
    if (::tcgetattr(fd, &m_saved) != 0) {
        throw_errno("tcgetattr");
    }
    struct termios raw = m_saved;
    ::cfmakeraw(&raw);
    if (::tcsetattr(fd, TCSADRAIN, &raw) != 0) {
        throw_errno("tcsetattr");
    }
    m_active = true;
}

RawTerminal::~RawTerminal() {
    if (m_active) {
        ::tcsetattr(m_fd, TCSADRAIN, &m_saved);
    }
}

} // namespace strata::runner
