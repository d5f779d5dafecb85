#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/scope.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

using namespace strata;

TEST_CASE("UniqueFd closes its descriptor when destroyed") {
    int raw;
    {
        Pipe p = Pipe::create();
        raw = p.read.get();
        REQUIRE(::fcntl(raw, F_GETFD) >= 0);
        CHECK((::fcntl(raw, F_GETFD) & FD_CLOEXEC) != 0);
    }
    CHECK(::fcntl(raw, F_GETFD) == -1);
}

TEST_CASE("UniqueFd moves ownership and release gives it up") {
    Pipe p = Pipe::create();
    UniqueFd a = std::move(p.read);
    CHECK_FALSE(p.read);
    CHECK(a);
    int raw = a.release();
    CHECK_FALSE(a);
    CHECK(::fcntl(raw, F_GETFD) >= 0);
    ::close(raw);
}

TEST_CASE("ScopeFail runs only while unwinding, ScopeExit always") {
    int exit_runs = 0, fail_runs = 0;
    {
        ScopeExit e([&] { exit_runs++; });
        ScopeFail f([&] { fail_runs++; });
    }
    CHECK(exit_runs == 1);
    CHECK(fail_runs == 0);
    try {
        ScopeFail f([&] { fail_runs++; });
        throw Error("boom");
    } catch (const Error&) {
    }
    CHECK(fail_runs == 1);
    {
        ScopeExit e([&] { exit_runs++; });
        e.dismiss();
    }
    CHECK(exit_runs == 1);
}

TEST_CASE("SysError names the operation, the path and the errno text") {
    SysError e("open", "/no/such", ENOENT);
    CHECK(std::string(e.what()) == "open /no/such: No such file or directory");
    CHECK(e.error_code() == ENOENT);
    Error wrapped = Error("inner").with_context("layer sha256:ab");
    CHECK(std::string(wrapped.what()) == "layer sha256:ab: inner");
}
