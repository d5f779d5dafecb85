// strata-bench-run: starts one command in a container with the runner, as
// `strata run --rm` will, and exits with its status. With -n N it runs the
// command N times in this one process and prints each run's wall time in
// seconds (the runner's own cost, without process start-up).
//
//   strata-bench-run [-n N] [--init] ROOTFS CMD...
#include "runner/runner.hpp"
#include "util/error.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    int runs = 0;
    bool init = false;
    int i = 1;
    for (; i < argc; ++i) {
        if (std::strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            runs = std::atoi(argv[++i]);
        } else if (std::strcmp(argv[i], "--init") == 0) {
            init = true;
        } else {
            break;
        }
    }
    if (argc - i < 2) {
        std::fprintf(stderr, "usage: strata-bench-run [-n N] [--init] ROOTFS CMD...\n");
        return 2;
    }
    strata::runner::RunSpec spec;
    spec.rootfs = argv[i];
    spec.argv.assign(argv + i + 1, argv + argc);
    spec.init = init;
    spec.hostname = "bench";
    try {
        if (runs <= 0) {
            return strata::runner::run(spec).shell_code();
        }
        for (int k = 0; k < runs; ++k) {
            auto t0 = std::chrono::steady_clock::now();
            auto st = strata::runner::run(spec);
            auto t1 = std::chrono::steady_clock::now();
            if (!st.success()) {
                std::fprintf(stderr, "run %d: %s\n", k, st.describe().c_str());
                return 1;
            }
            std::printf("%.6f\n", std::chrono::duration<double>(t1 - t0).count());
        }
        return 0;
    } catch (const strata::runner::StartError& e) {
        std::fprintf(stderr, "strata-bench-run: %s\n", e.what());
        return e.exit_code();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "strata-bench-run: %s\n", e.what());
        return 125;
    }
}
