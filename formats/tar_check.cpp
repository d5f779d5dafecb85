#include "formats/tar_check.hpp"

#include "formats/json.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

namespace strata::formats {

namespace {

constexpr std::uint64_t k_block = 512;
constexpr std::uint32_t k_max_id = 0xFFFFFFFEu; // (uid_t)-1 means "no change" to chown

std::uint64_t padded(std::uint64_t n) {
    return (n + k_block - 1) / k_block * k_block;
}

std::string_view field(const char* block, std::size_t off, std::size_t len) {
    return std::string_view(block + off, len);
}

// A string field: up to the first NUL.
std::string cstr(std::string_view f) {
    auto nul = f.find('\0');
    return std::string(f.substr(0, nul));
}

// Go's parseNumeric: base-256 when the top bit is set (two's complement,
// at most 63 bits), otherwise octal padded with spaces and NULs.
std::optional<std::int64_t> parse_numeric(std::string_view b) {
    if (!b.empty() && (static_cast<unsigned char>(b[0]) & 0x80) != 0) {
        unsigned char inv = (static_cast<unsigned char>(b[0]) & 0x40) != 0 ? 0xff : 0;
        std::uint64_t x = 0;
        for (std::size_t i = 0; i < b.size(); ++i) {
            unsigned char c = static_cast<unsigned char>(b[i]) ^ inv;
            if (i == 0) {
                c &= 0x7f;
            }
            if ((x >> 56) > 0) {
                return std::nullopt;
            }
            x = x << 8 | c;
        }
        if ((x >> 63) > 0) {
            return std::nullopt;
        }
        auto v = static_cast<std::int64_t>(x);
        return inv == 0xff ? ~v : v;
    }
    std::size_t s = 0;
    std::size_t e = b.size();
    while (s < e && (b[s] == ' ' || b[s] == '\0')) {
        ++s;
    }
    while (e > s && (b[e - 1] == ' ' || b[e - 1] == '\0')) {
        --e;
    }
    b = b.substr(s, e - s);
    b = b.substr(0, b.find('\0'));
    if (b.empty()) {
        return 0;
    }
    std::uint64_t x = 0;
    for (char c : b) {
        if (c < '0' || c > '7' || (x >> 61) > 0) {
            return std::nullopt;
        }
        x = x << 3 | static_cast<std::uint64_t>(c - '0');
    }
    if ((x >> 63) > 0) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(x);
}

// A PAX decimal: digits only (with an optional sign when allowed).
std::optional<std::uint64_t> parse_decimal(std::string_view v) {
    if (v.empty() || v.size() > 19) {
        return std::nullopt;
    }
    std::uint64_t x = 0;
    for (char c : v) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        x = x * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return x;
}

// Go's parsePAXTime: [-+]seconds[.digits].
bool valid_pax_time(std::string_view v) {
    auto dot = v.find('.');
    std::string_view secs = v.substr(0, dot);
    if (!secs.empty() && (secs[0] == '-' || secs[0] == '+')) {
        secs.remove_prefix(1);
    }
    if (!parse_decimal(secs)) {
        return false;
    }
    if (dot == std::string_view::npos) {
        return true;
    }
    std::string_view frac = v.substr(dot + 1);
    return std::all_of(frac.begin(), frac.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool valid_sparse_map(std::string_view v) {
    while (true) {
        auto comma = v.find(',');
        if (!parse_decimal(v.substr(0, comma))) {
            return false;
        }
        if (comma == std::string_view::npos) {
            return true;
        }
        v.remove_prefix(comma + 1);
    }
}

// ".", "./", "/", ".//." ...: the root of the layer.
bool names_root(std::string_view p) {
    for (;;) {
        if (!p.empty() && p[0] == '/') {
            p.remove_prefix(1);
        } else if (p.size() >= 2 && p[0] == '.' && p[1] == '/') {
            p.remove_prefix(2);
        } else {
            break;
        }
    }
    return p.empty() || p == ".";
}

bool is_zero_block(const char* b) {
    for (std::size_t i = 0; i < k_block; ++i) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

} // namespace

void TarHeaderCheck::fail(const std::string& what) const {
    std::string at = m_name + ": tar header at offset " + std::to_string(m_block_at);
    if (!m_header_name.empty()) {
        at += " (" + quote_untrusted(m_header_name) + ")";
    }
    at +=
        m_last_name.empty() ? ", the first entry" : ", after entry " + quote_untrusted(m_last_name);
    throw FormatError(at + ": " + what);
}

void TarHeaderCheck::feed(const char* data, std::size_t size) {
    while (size > 0 && m_state != State::done) {
        if (m_state == State::skip) {
            std::uint64_t n = std::min<std::uint64_t>(m_skip, size);
            m_skip -= n;
            data += n;
            size -= static_cast<std::size_t>(n);
            m_offset += n;
            if (m_skip == 0) {
                m_state = State::header;
            }
            continue;
        }
        if (m_state == State::special) {
            std::uint64_t n = std::min<std::uint64_t>(m_special_left, size);
            m_special.append(data, static_cast<std::size_t>(n));
            m_special_left -= n;
            data += n;
            size -= static_cast<std::size_t>(n);
            m_offset += n;
            if (m_special_left == 0) {
                special_done();
            }
            continue;
        }
        // A header or a GNU sparse extension block, assembled whole.
        if (m_block_len == 0) {
            m_block_at = m_offset;
        }
        std::size_t n = std::min<std::size_t>(k_block - m_block_len, size);
        std::memcpy(m_block + m_block_len, data, n);
        m_block_len += n;
        data += n;
        size -= n;
        m_offset += n;
        if (m_block_len == k_block) {
            m_block_len = 0;
            if (m_state == State::header) {
                header_block();
            } else {
                sparse_ext_block();
            }
        }
    }
    m_offset += size; // after the end of the archive: padding, never read as entries
}

void TarHeaderCheck::header_block() {
    const char* b = m_block;
    m_header_name.clear();
    if (is_zero_block(b)) {
        if (m_in_entry) {
            fail("extended header without the entry it describes");
        }
        // libarchive, like Go, ends the archive here; what follows is padding.
        m_state = State::done;
        return;
    }
    bool ustar = field(b, 257, 6) == std::string_view("ustar\0", 6);
    bool gnu = field(b, 257, 8) == std::string_view("ustar  \0", 8);
    m_header_name = cstr(field(b, 0, 100));
    if (ustar) {
        std::string prefix = cstr(field(b, 345, 155));
        if (!prefix.empty()) {
            m_header_name = prefix + "/" + m_header_name;
        }
    }
    if (!m_pax_path.empty()) {
        m_header_name = m_pax_path;
    } else if (!m_long_name.empty()) {
        m_header_name = m_long_name;
    }
    auto chksum = parse_numeric(field(b, 148, 8));
    std::int64_t unsigned_sum = 0;
    std::int64_t signed_sum = 0;
    for (std::size_t i = 0; i < k_block; ++i) {
        bool in_field = i >= 148 && i < 156;
        unsigned_sum += in_field ? ' ' : static_cast<unsigned char>(b[i]);
        signed_sum += in_field ? ' ' : static_cast<signed char>(b[i]);
    }
    if (!chksum || (*chksum != unsigned_sum && *chksum != signed_sum)) {
        fail("bad header checksum (not a tar header, or a damaged one)");
    }
    struct Numeric {
        const char* what;
        std::size_t off;
        std::size_t len;
    };
    auto number = [&](const Numeric& f) {
        auto v = parse_numeric(field(b, f.off, f.len));
        if (!v) {
            fail(std::string("the ") + f.what + " field is neither octal nor valid base-256: " +
                 quote_untrusted(std::string(field(b, f.off, f.len))));
        }
        return *v;
    };
    std::int64_t mode = number({"mode", 100, 8});
    std::int64_t uid = number({"uid", 108, 8});
    std::int64_t gid = number({"gid", 116, 8});
    std::int64_t size = number({"size", 124, 12});
    number({"mtime", 136, 12});
    if (ustar || gnu) {
        number({"devmajor", 329, 8});
        number({"devminor", 337, 8});
    }
    if (mode < 0 || mode > 07777777) {
        fail("mode " + std::to_string(mode) + " out of range");
    }
    if (uid < 0 || uid > k_max_id || gid < 0 || gid > k_max_id) {
        fail("uid/gid " + std::to_string(uid) + ":" + std::to_string(gid) +
             " out of range (0 to 4294967294)");
    }
    if (size < 0) {
        fail("negative size " + std::to_string(size));
    }
    char type = b[156];
    auto usize = static_cast<std::uint64_t>(size);
    switch (type) {
    case 'x':
    case 'g':
    case 'L':
    case 'K':
        if (usize > k_max_special_size) {
            fail(std::string(type == 'x' || type == 'g' ? "PAX header" : "GNU long name") + " of " +
                 std::to_string(usize) + " bytes, more than the limit of " +
                 std::to_string(k_max_special_size));
        }
        if (!m_in_entry) {
            m_in_entry = true;
            m_entry_start = m_block_at;
        }
        m_special_type = type;
        m_special.clear();
        m_special_left = usize;
        m_special_pad = padded(usize) - usize;
        m_state = State::special;
        if (usize == 0) {
            special_done();
        }
        return;
    case '0':
    case '\0':
    case '7':
    case 'S':
        break;
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
        // Header-only types: no data follows, whatever the size field says
        // (as Go's reader).
        usize = 0;
        m_pax_has_size = false;
        break;
    default:
        fail("unsupported entry type " + quote_untrusted(std::string(1, type)));
    }
    if (type != '5' && names_root(m_header_name) &&
        !(type == '\0' && !m_header_name.empty() && m_header_name.back() == '/')) {
        // libarchive makes some of these directories; Go's reader does not,
        // and Docker then fails to replace the root with a file.
        fail("names the root but is not a directory");
    }
    if (m_pax_has_size) {
        usize = m_pax_size;
    }
    if (type == 'S') {
        // GNU sparse map: four entries here, more in extension blocks.
        for (std::size_t i = 0; i < 4; ++i) {
            number({"sparse offset", 386 + i * 24, 12});
            number({"sparse length", 398 + i * 24, 12});
        }
        if (number({"sparse real size", 483, 12}) < 0) {
            fail("negative sparse real size");
        }
    }
    m_starts.push_back(m_in_entry ? m_entry_start : m_block_at);
    m_last_name = m_header_name;
    m_header_name.clear();
    m_in_entry = false;
    m_pax_has_size = false;
    m_pax_path.clear();
    m_long_name.clear();
    if (type == 'S' && b[482] != 0) {
        m_data_after_ext = padded(usize);
        m_state = State::sparse_ext;
        return;
    }
    m_skip = padded(usize);
    m_state = m_skip > 0 ? State::skip : State::header;
}

void TarHeaderCheck::sparse_ext_block() {
    m_header_name = m_last_name;
    for (std::size_t i = 0; i < 21; ++i) {
        for (std::size_t off : {i * 24, i * 24 + 12}) {
            if (!parse_numeric(field(m_block, off, 12))) {
                fail("GNU sparse extension: a field is neither octal nor valid base-256");
            }
        }
    }
    m_header_name.clear();
    if (m_block[504] != 0) {
        return;
    }
    m_skip = m_data_after_ext;
    m_state = m_skip > 0 ? State::skip : State::header;
}

void TarHeaderCheck::special_done() {
    if (m_special_type == 'x' || m_special_type == 'g') {
        parse_pax(m_special_type == 'g');
    } else if (m_special_type == 'L') {
        m_long_name = cstr(m_special);
    }
    m_special.clear();
    m_skip = m_special_pad;
    m_state = m_skip > 0 ? State::skip : State::header;
}

// Go's parsePAX / parsePAXRecord / validPAXRecord, and the values Go's
// mergePAX parses.
void TarHeaderCheck::parse_pax(bool global) {
    std::string_view s = m_special;
    std::size_t at = 0;
    while (!s.empty()) {
        std::string where = "PAX record at byte " + std::to_string(at) + " of the extended header";
        auto sp = s.find(' ');
        if (sp == std::string_view::npos) {
            fail(where + ": no length");
        }
        auto n = parse_decimal(s.substr(0, sp));
        if (!n || *n < 5 || *n > s.size() || *n <= sp + 1) {
            fail(where + ": bad length " + quote_untrusted(std::string(s.substr(0, sp))) + " (" +
                 std::to_string(s.size()) + " bytes left)");
        }
        std::string_view rec = s.substr(sp + 1, *n - sp - 2);
        if (s[*n - 1] != '\n') {
            fail(where + ": the record does not end where its length says");
        }
        auto eq = rec.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            fail(where + ": not key=value");
        }
        std::string_view k = rec.substr(0, eq);
        std::string_view v = rec.substr(eq + 1);
        bool nul_in_value = v.find('\0') != std::string_view::npos;
        if (k == "path" || k == "linkpath" || k == "uname" || k == "gname") {
            if (nul_in_value) {
                fail(where + ": NUL inside the " + std::string(k));
            }
        } else if (k.find('\0') != std::string_view::npos) {
            fail(where + ": NUL inside the key " + quote_untrusted(std::string(k)));
        }
        auto bad_value = [&] {
            fail(where + ": bad value " + quote_untrusted(std::string(v)) + " for " +
                 std::string(k));
        };
        if (k == "uid" || k == "gid") {
            auto id = parse_decimal(v);
            if (!id || *id > k_max_id) {
                fail(where + ": " + std::string(k) + " " + quote_untrusted(std::string(v)) +
                     " is not an id from 0 to 4294967294");
            }
        } else if (k == "size") {
            auto sz = parse_decimal(v);
            if (!sz || *sz > static_cast<std::uint64_t>(INT64_MAX)) {
                bad_value();
            }
            if (!global) {
                m_pax_has_size = true;
                m_pax_size = *sz;
            }
        } else if (k == "mtime" || k == "atime" || k == "ctime") {
            if (!valid_pax_time(v)) {
                bad_value();
            }
        } else if (k == "GNU.sparse.size" || k == "GNU.sparse.realsize" ||
                   k == "GNU.sparse.numblocks" || k == "GNU.sparse.offset" ||
                   k == "GNU.sparse.numbytes" || k == "GNU.sparse.major" ||
                   k == "GNU.sparse.minor" || k == "SCHILY.devmajor" || k == "SCHILY.devminor") {
            if (!parse_decimal(v)) {
                bad_value();
            }
        } else if (k == "GNU.sparse.map") {
            if (!v.empty() && !valid_sparse_map(v)) {
                bad_value();
            }
        } else if (k == "path" && !global) {
            m_pax_path = std::string(v);
        }
        at += *n;
        s.remove_prefix(*n);
    }
}

void TarHeaderCheck::check_entry_start(std::uint64_t pos) {
    if (m_starts.empty() || m_starts.front() != pos) {
        m_block_at = pos;
        m_header_name.clear();
        fail("the tar stream is ambiguous (libarchive reads an entry here that Go's reader "
             "does not)");
    }
    m_starts.pop_front();
}

} // namespace strata::formats
