// libcurl, loaded when first used.
//
// Debian's libcurl links some thirty libraries (Kerberos, LDAP, GnuTLS,
// nghttp2, ...). Linked at build time, the dynamic loader maps and relocates
// all of them at every start of strata — about 5 ms of CPU, more than the
// whole of `strata run` spends in its own code. So strata does not link
// libcurl: util/libcurl.cpp defines the few libcurl entry points strata calls
// (curl_global_init, curl_easy_*, curl_slist_*, and the URL API: curl_url_*,
// curl_free) and forwards each to the real library, which it dlopen()s
// ("libcurl.so.4", the soname of Debian's libcurl4) on the first call. Code
// keeps including <curl/curl.h> and calling libcurl as usual. When the
// library cannot be loaded, the entry points fail the way libcurl does
// (CURLE_FAILED_INIT, a null handle) and libcurl_load_error() says why.
#pragma once

#include <string>

namespace strata {

// Empty when libcurl is loaded (or not tried yet), else dlopen's message.
std::string libcurl_load_error();

} // namespace strata
