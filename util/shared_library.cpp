#include "util/shared_library.hpp"

#include <dlfcn.h>
#include <utility>

namespace strata {

SharedLibrary::SharedLibrary(const char* soname, const char* package) : m_soname(soname) {
    m_handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (m_handle == nullptr) {
        const char* e = ::dlerror();
        m_error = "cannot load " + m_soname + " (apt-get install " + package +
                  "): " + (e != nullptr ? e : "dlopen failed");
    }
}

SharedLibrary::SharedLibrary(SharedLibrary&& other) noexcept
    : m_handle(std::exchange(other.m_handle, nullptr)), m_soname(std::move(other.m_soname)),
      m_error(std::move(other.m_error)) {}

// Never unloaded while in use: the symbols bound stay valid for the
// process's life. Only a library given up (fail, missing symbol) is closed,
// and that happens there.
SharedLibrary::~SharedLibrary() = default;

void* SharedLibrary::symbol(const char* name) {
    if (m_handle == nullptr) {
        return nullptr;
    }
    void* sym = ::dlsym(m_handle, name);
    if (sym == nullptr) {
        fail(m_soname + " has no " + name);
    }
    return sym;
}

void SharedLibrary::fail(std::string why) {
    if (m_handle != nullptr) {
        ::dlclose(m_handle);
        m_handle = nullptr;
    }
    m_error = std::move(why);
}

} // namespace strata
