// A shared library strata loads when it first needs it (dlopen) instead of
// linking it: libraries that map many others (libcurl, libnftables) or that
// are optional (ISA-L, libsubid) would otherwise cost every strata command
// their loading time, or make strata refuse to start without them.
//
// Loaded once by its owner (typically a function-local static, so
// thread-safely) and never unloaded. When the library or one of the symbols
// bound is missing, loaded() is false and error() says why, naming the
// package to install.
#pragma once

#include <string>

namespace strata {

class SharedLibrary {
public:
    // soname: the file dlopen looks for ("libcurl.so.4"); package: the
    // Debian package that provides it, for the message.
    SharedLibrary(const char* soname, const char* package);
    SharedLibrary(SharedLibrary&& other) noexcept;
    SharedLibrary& operator=(SharedLibrary&&) = delete;
    SharedLibrary(const SharedLibrary&) = delete;
    SharedLibrary& operator=(const SharedLibrary&) = delete;
    ~SharedLibrary();

    bool loaded() const noexcept { return m_handle != nullptr; }
    const std::string& error() const noexcept { return m_error; }

    // Points fn at the symbol `name`. A missing symbol closes the library:
    // false, and error() names the symbol. Chain with &&.
    template <typename F> bool bind(F& fn, const char* name) {
        void* sym = symbol(name);
        fn = reinterpret_cast<F>(sym);
        return sym != nullptr;
    }

    // Gives the library up after a setup step of the owner's failed.
    void fail(std::string why);

private:
    void* symbol(const char* name);

    void* m_handle = nullptr;
    std::string m_soname;
    std::string m_error;
};

} // namespace strata
