// HEALTHCHECK: Docker's merge of run flags over the image, its defaults,
// and the state machine of daemon/health.go.
#include "containers/health.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::containers;
using namespace std::chrono_literals;

namespace {

HealthResult result(int code) {
    return HealthResult{"s", "e", code, "out"};
}

} // namespace

TEST_CASE("the run flags' health check is merged over the image's field by field") {
    formats::Healthcheck image{{"CMD-SHELL", "curl -f localhost"}, 10'000'000'000, 0, 0, 0, 5};
    formats::Healthcheck run{{}, 0, 2'000'000'000, 0, 0, 0};
    auto h = merge_healthcheck(image, run);
    CHECK(h.test == image.test);
    CHECK(h.interval == 10'000'000'000);
    CHECK(h.timeout == 2'000'000'000);
    CHECK(h.retries == 5);
    CHECK(merge_healthcheck(std::nullopt, std::nullopt).test.empty());
    CHECK(merge_healthcheck(image, formats::Healthcheck{{"NONE"}}).test ==
          std::vector<std::string>{"NONE"});
    auto j = healthcheck_to_json(h);
    CHECK(j["Interval"] == 10'000'000'000);
    CHECK(healthcheck_from_json(j) == h);
    CHECK_FALSE(healthcheck_from_json(nullptr));
}

TEST_CASE("Docker's defaults: 30s interval and timeout, no start period, 3 retries") {
    auto cfg = effective_healthcheck(formats::Healthcheck{{"CMD-SHELL", "exit 0"}});
    REQUIRE(cfg);
    CHECK(cfg->argv == std::vector<std::string>{"/bin/sh", "-c", "exit 0"});
    CHECK(cfg->interval == 30s);
    CHECK(cfg->timeout == 30s);
    CHECK(cfg->start_period == 0s);
    CHECK(cfg->retries == 3);
    cfg = effective_healthcheck(formats::Healthcheck{{"CMD", "/bin/check", "-v"}, 1'000'000'000});
    REQUIRE(cfg);
    CHECK(cfg->argv == std::vector<std::string>{"/bin/check", "-v"});
    CHECK(cfg->interval == 1s);
    CHECK_FALSE(effective_healthcheck(formats::Healthcheck{{"NONE"}}));
    CHECK_FALSE(effective_healthcheck(formats::Healthcheck{}));
    CHECK_THROWS_WITH(effective_healthcheck(formats::Healthcheck{{"BOGUS", "x"}}),
                      Catch::Contains("unknown type"));
    CHECK_THROWS_WITH(effective_healthcheck(formats::Healthcheck{{"CMD", "x"}, 10}),
                      Catch::Contains("Interval in Healthcheck cannot be less than 1ms"));
}

TEST_CASE("Go's duration text") {
    CHECK(go_duration_text(30s) == "30s");
    CHECK(go_duration_text(90s) == "1m30s");
    CHECK(go_duration_text(500ms) == "500ms");
    CHECK(go_duration_text(1500ms) == "1.5s");
    CHECK(go_duration_text(3600s) == "1h0m0s");
}

TEST_CASE("healthy after a success, unhealthy after Retries failures in a row") {
    HealthConfig cfg;
    cfg.retries = 2;
    Health h;
    CHECK(h.status == "starting");
    apply_result(h, result(1), cfg, false);
    CHECK(h.status == "starting");
    CHECK(h.failing_streak == 1);
    apply_result(h, result(0), cfg, false);
    CHECK(h.status == "healthy");
    CHECK(h.failing_streak == 0);
    apply_result(h, result(1), cfg, false);
    CHECK(h.status == "healthy");
    apply_result(h, result(-1), cfg, false);
    CHECK(h.status == "unhealthy");
    CHECK(h.failing_streak == 2);
    for (int i = 0; i < 5; ++i) {
        apply_result(h, result(10 + i), cfg, false);
    }
    REQUIRE(h.log.size() == 5);
    CHECK(h.log.front().exit_code == 10);
    auto j = h.to_json();
    CHECK(j["Status"] == "unhealthy");
    CHECK(j["Log"].size() == 5);
    CHECK(Health::from_json(j).log.back().exit_code == 14);
}

TEST_CASE("failures within the start period do not count before a first success") {
    HealthConfig cfg;
    cfg.retries = 1;
    Health h;
    apply_result(h, result(1), cfg, true);
    CHECK(h.status == "starting");
    CHECK(h.failing_streak == 0);
    apply_result(h, result(0), cfg, true);
    apply_result(h, result(1), cfg, true);
    CHECK(h.status == "unhealthy");
}

TEST_CASE("ps shows the health after Up") {
    Health h;
    CHECK(health_status_suffix(h.to_json()) == " (health: starting)");
    h.status = "healthy";
    CHECK(health_status_suffix(h.to_json()) == " (healthy)");
    h.status = "unhealthy";
    CHECK(health_status_suffix(h.to_json()) == " (unhealthy)");
    CHECK(health_status_suffix(nullptr).empty());
}
