// Signal names as Docker takes them (--stop-signal, kill -s, STOPSIGNAL):
// "SIGKILL", "KILL", "kill" or "9".
#pragma once

#include <string>
#include <string_view>

namespace strata::containers {

// Throws UsageError("Invalid signal: X") as Docker does.
int parse_signal(std::string_view text);
// "SIGTERM" for 15; the number for an unnamed one.
std::string signal_name(int sig);

} // namespace strata::containers
