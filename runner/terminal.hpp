// Helpers for a command line that runs a container in the foreground
// (`strata run`, `strata build`): routing the caller's signals to a
// runner::Control, and putting the caller's terminal in raw mode for -t.
#pragma once

#include "runner/runner.hpp"

#include <csignal>
#include <termios.h>

namespace strata::runner {

// While alive, SIGINT, SIGTERM, SIGHUP and SIGQUIT cancel the container
// (which ends it and everything in it, then run()/wait() throws Cancelled),
// and SIGWINCH copies the terminal's size to the container's pty. The
// previous handlers come back on destruction. One at a time per process.
class SignalRouting {
public:
    explicit SignalRouting(Control& control);
    SignalRouting(const SignalRouting&) = delete;
    SignalRouting& operator=(const SignalRouting&) = delete;
    ~SignalRouting();

    // The signal that cancelled, or 0.
    static int last_signal() noexcept;

private:
    struct sigaction m_old[5];
};

// While alive, the terminal on fd is in raw mode (no echo, no line editing,
// no signals from ^C: they go to the container's pty as bytes, as with
// `docker run -it`). Does nothing when fd is not a terminal.
class RawTerminal {
public:
    explicit RawTerminal(int fd);
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;
    ~RawTerminal();

    bool active() const noexcept { return m_active; }

private:
    int m_fd;
    bool m_active = false;
    struct termios m_saved {};
};

} // namespace strata::runner
