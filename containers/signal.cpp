#include "containers/signal.hpp"

#include "util/error.hpp"

#include <array>
#include <cctype>
#include <csignal>
#include <utility>

namespace strata::containers {

namespace {

constexpr std::array<std::pair<const char*, int>, 31> k_signals = {{
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
}};

} // namespace

int parse_signal(std::string_view text) {
    std::string up;
    for (char c : text) {
        up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    if (!up.empty() && up.find_first_not_of("0123456789") == std::string::npos && up.size() < 4) {
        int n = std::stoi(up);
        if (n >= 1 && n <= 64) {
            return n;
        }
    }
    std::string_view name = up;
    if (name.substr(0, 3) == "SIG") {
        name.remove_prefix(3);
    }
    for (const auto& [n, v] : k_signals) {
        if (name == n) {
            return v;
        }
    }
    throw UsageError("Invalid signal: " + std::string(text));
}

std::string signal_name(int sig) {
    for (const auto& [n, v] : k_signals) {
        if (v == sig) {
            return std::string("SIG") + n;
        }
    }
    return std::to_string(sig);
}

} // namespace strata::containers
