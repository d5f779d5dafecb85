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

TEST_CASE("SysError names the operation, the quoted path and the errno text") {
    SysError e("open", "/no/such", ENOENT);
    CHECK(std::string(e.what()) == "open \"/no/such\": No such file or directory");
    CHECK(e.error_code() == ENOENT);
    CHECK(std::string(SysError("pipe2", EMFILE).what()) == "pipe2: Too many open files");
    // Quotes, control bytes and invalid UTF-8 in a name are escaped as Go's %q does.
    CHECK(std::string(SysError("open", "/a \"b\"\n\xff", ENOENT).what()) ==
          "open \"/a \\\"b\\\"\\n\\xff\": No such file or directory");
}

TEST_CASE("a context frame keeps the exception's type, op, path and errno") {
    try {
        with_context("layer sha256:ab", [] { throw SysError("read", "/x/y", EIO); });
        FAIL("no exception");
    } catch (const SysError& e) {
        CHECK(std::string(e.what()) == "layer sha256:ab: read \"/x/y\": Input/output error");
        CHECK(e.op() == "read");
        CHECK(e.path() == "/x/y");
        CHECK(e.error_code() == EIO);
    }
    try {
        with_context("outer", [] { with_context("inner", [] { throw UsageError("bad flag"); }); });
        FAIL("no exception");
    } catch (const UsageError& e) {
        CHECK(std::string(e.what()) == "outer: inner: bad flag");
    }
    // A value comes back unchanged when nothing throws.
    CHECK(with_context("unused", [] { return 7; }) == 7);
}

// An error of a module above util, caught by its own type.
class CodedError : public Error {
public:
    CodedError(const std::string& what, int code) : Error(what), m_code(code) {}
    int code() const noexcept { return m_code; }

private:
    int m_code;
};

TEST_CASE("a subclass with its own fields passes through context frames whole") {
    try {
        with_context("step 3", [] { throw CodedError("not found", 127); });
        FAIL("no exception");
    } catch (const CodedError& e) {
        CHECK(e.code() == 127);
        CHECK(std::string(e.what()) == "step 3: not found");
    } catch (const std::exception& e) {
        FAIL("caught as another type: " << e.what());
    }
}
