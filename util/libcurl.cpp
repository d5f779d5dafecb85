#include "util/libcurl.hpp"

// The definitions below are the real functions, not the type-checking macros.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "util/shared_library.hpp"
#include <cstdarg>

namespace {

struct Api {
    strata::SharedLibrary lib{"libcurl.so.4", "libcurl4"};
    CURLcode (*global_init)(long) = nullptr;
    CURL* (*easy_init)() = nullptr;
    void (*easy_cleanup)(CURL*) = nullptr;
    void (*easy_reset)(CURL*) = nullptr;
    CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
    CURLcode (*easy_perform)(CURL*) = nullptr;
    CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...) = nullptr;
    const char* (*easy_strerror)(CURLcode) = nullptr;
    curl_slist* (*slist_append)(curl_slist*, const char*) = nullptr;
    void (*slist_free_all)(curl_slist*) = nullptr;
    CURLU* (*url)() = nullptr;
    void (*url_cleanup)(CURLU*) = nullptr;
    CURLUcode (*url_set)(CURLU*, CURLUPart, const char*, unsigned int) = nullptr;
    CURLUcode (*url_get)(CURLU*, CURLUPart, char**, unsigned int) = nullptr;
    const char* (*url_strerror)(CURLUcode) = nullptr;
    void (*free)(void*) = nullptr;
};

Api load() {
    Api api;
    // A missing symbol gives the library up: api.lib.error() names it.
    (void)(api.lib.bind(api.global_init, "curl_global_init") &&
           api.lib.bind(api.easy_init, "curl_easy_init") &&
           api.lib.bind(api.easy_cleanup, "curl_easy_cleanup") &&
           api.lib.bind(api.easy_reset, "curl_easy_reset") &&
           api.lib.bind(api.easy_setopt, "curl_easy_setopt") &&
           api.lib.bind(api.easy_perform, "curl_easy_perform") &&
           api.lib.bind(api.easy_getinfo, "curl_easy_getinfo") &&
           api.lib.bind(api.easy_strerror, "curl_easy_strerror") &&
           api.lib.bind(api.slist_append, "curl_slist_append") &&
           api.lib.bind(api.slist_free_all, "curl_slist_free_all") &&
           api.lib.bind(api.url, "curl_url") && api.lib.bind(api.url_cleanup, "curl_url_cleanup") &&
           api.lib.bind(api.url_set, "curl_url_set") && api.lib.bind(api.url_get, "curl_url_get") &&
           api.lib.bind(api.url_strerror, "curl_url_strerror") &&
           api.lib.bind(api.free, "curl_free"));
    return api;
}

// Loaded once, thread-safely (a function-local static); never unloaded.
const Api& api() {
    static const Api loaded = load();
    return loaded;
}

bool loaded() {
    return api().lib.loaded();
}

} // namespace

namespace strata {

std::string libcurl_load_error() {
    return api().lib.error();
}

} // namespace strata

// libcurl's own prototypes put va_start after an enum parameter (CURLoption,
// CURLINFO); the enums are int-sized, which is what libcurl reads as well.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wvarargs"
#endif

extern "C" {

CURLcode curl_global_init(long flags) {
    return loaded() ? api().global_init(flags) : CURLE_FAILED_INIT;
}

CURL* curl_easy_init() {
    return loaded() ? api().easy_init() : nullptr;
}

void curl_easy_cleanup(CURL* curl) {
    if (curl != nullptr) {
        api().easy_cleanup(curl);
    }
}

void curl_easy_reset(CURL* curl) {
    api().easy_reset(curl);
}

// curl_easy_setopt's third argument is a long, an object or function pointer,
// a curl_off_t or a blob pointer, told apart by the option's number range (as
// libcurl itself reads it).
CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT) {
        rc = api().easy_setopt(curl, option, va_arg(ap, long));
    } else if (option >= CURLOPTTYPE_OFF_T && option < CURLOPTTYPE_BLOB) {
        rc = api().easy_setopt(curl, option, va_arg(ap, curl_off_t));
    } else {
        rc = api().easy_setopt(curl, option, va_arg(ap, void*));
    }
    va_end(ap);
    return rc;
}

CURLcode curl_easy_perform(CURL* curl) {
    return api().easy_perform(curl);
}

// Every CURLINFO takes a pointer to where the answer goes.
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
    va_list ap;
    va_start(ap, info);
    CURLcode rc = api().easy_getinfo(curl, info, va_arg(ap, void*));
    va_end(ap);
    return rc;
}

const char* curl_easy_strerror(CURLcode code) {
    return loaded() ? api().easy_strerror(code) : "libcurl is not available";
}

curl_slist* curl_slist_append(curl_slist* list, const char* text) {
    return loaded() ? api().slist_append(list, text) : nullptr;
}

void curl_slist_free_all(curl_slist* list) {
    if (list != nullptr && loaded()) {
        api().slist_free_all(list);
    }
}

// The URL API (curl_url_*): a null handle or CURLUE_OUT_OF_MEMORY, the
// closest code libcurl has, when the library cannot be loaded.
CURLU* curl_url() {
    return loaded() ? api().url() : nullptr;
}

void curl_url_cleanup(CURLU* url) {
    if (url != nullptr) {
        api().url_cleanup(url);
    }
}

CURLUcode curl_url_set(CURLU* url, CURLUPart part, const char* content, unsigned int flags) {
    return loaded() ? api().url_set(url, part, content, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode curl_url_get(CURLU* url, CURLUPart part, char** content, unsigned int flags) {
    return loaded() ? api().url_get(url, part, content, flags) : CURLUE_OUT_OF_MEMORY;
}

const char* curl_url_strerror(CURLUcode code) {
    return loaded() ? api().url_strerror(code) : "libcurl is not available";
}

void curl_free(void* p) {
    if (p != nullptr && loaded()) {
        api().free(p);
    }
}

} // extern "C"
