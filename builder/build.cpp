#include "builder/build.hpp"

#include "builder/executor.hpp"
#include "runner/runner.hpp"

#include <ctime>

namespace strata::builder {

std::string build_time(const std::optional<std::int64_t>& source_date_epoch) {
    std::time_t t =
        source_date_epoch ? static_cast<std::time_t>(*source_date_epoch) : std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

void Cancellation::cancel() noexcept {
    m_flag = true;
    std::lock_guard<std::mutex> l(m_mu);
    for (auto* c : m_running) {
        c->cancel();
    }
}

void Cancellation::add(runner::Control* c) {
    std::lock_guard<std::mutex> l(m_mu);
    m_running.insert(c);
    if (m_flag) {
        c->cancel();
    }
}

void Cancellation::remove(runner::Control* c) {
    std::lock_guard<std::mutex> l(m_mu);
    m_running.erase(c);
}

BuildResult build(snapshot::Store& store, const BuildOptions& opts) {
    Executor ex(store, opts);
    return ex.run();
}

} // namespace strata::builder
