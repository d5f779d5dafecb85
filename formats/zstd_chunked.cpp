// zstd:chunked: see zstd_chunked.hpp for the layout. Facts taken from
// containers/storage (pkg/chunked/internal/minimal/compression.go and
// pkg/chunked/compressor/compressor.go): the footer is a 64-byte skippable
// frame (magic 0x184D2A50) holding, little endian u64s, the TOC's offset,
// compressed and uncompressed lengths, the manifest type (1), the tar-split's
// offset and lengths (0 here), then the 8 bytes "GNUlInUx"; the TOC itself
// sits in a skippable frame of its own, zstd-compressed, and its sha256 is the
// manifest-checksum annotation; the manifest-position annotation is
// "<offset>:<compressed>:<uncompressed>:1". A file's content starts a new
// frame; the header of the next entry (and the content's tar padding) starts
// another; a "reg" entry's endOffset is the end of its last chunk's frames,
// "chunk" entries carry only their name, offset, chunkOffset and chunkSize.
//
// Writing: the calling thread renders the tar (TarRenderer), hands it to a
// thread that hashes it (diff ID), and cuts it into pieces (header runs,
// content chunks) gathered into jobs of about 1 MiB; workers compress each
// piece as its own frame (or check and reuse a previous layer's frames); one
// output thread writes the jobs in order, and one hash thread, behind it,
// hashes the blob and each file's content and notes every piece's offset for
// the TOC.
#include "formats/zstd_chunked.hpp"

#include "formats/json.hpp"
#include "formats/zstd_frames.hpp"

#include "util/base64.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/mapped_file.hpp"
#include "util/sha256_resumable.hpp"
#include "util/text.hpp"

#include <nlohmann/json.hpp>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <utility>

namespace strata::formats {

namespace {

constexpr std::uint32_t k_skippable_magic = 0x184D2A50;
constexpr char k_footer_magic[8] = {'G', 'N', 'U', 'l', 'I', 'n', 'U', 'x'};
constexpr std::size_t k_footer_data = 64;
constexpr std::size_t k_footer_frame = 8 + k_footer_data;
static_assert(k_footer_frame == k_chunked_footer_frame);
// The largest TOC read: containers/storage refuses 150 MiB; a parsed JSON
// document costs several times its text, so strata stops at 64 MiB (about
// 200,000 entries).
constexpr std::uint64_t k_max_toc = std::uint64_t{64} << 20;
// The largest piece of content read_chunked_range decodes: a chunk written by
// strata is at most 1 MiB, containers/storage's rolling-checksum chunks are
// 64 KiB on average; whole small files are single chunks.
constexpr std::uint64_t k_max_range_output = std::uint64_t{256} << 20;
constexpr std::size_t k_job_bytes = 1 << 20;
constexpr std::size_t k_iov_max = IOV_MAX;

std::uint64_t le64(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | p[i];
    }
    return v;
}
std::uint32_t le32(const unsigned char* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
           std::uint32_t{p[3]} << 24;
}
void put_le64(std::string& s, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
        s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
}
void put_le32(std::string& s, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
}

void pread_all(int fd, void* buf, std::size_t size, std::uint64_t off, std::string_view what) {
    std::size_t got = fs::pread_full(fd, what, buf, size, off);
    if (got != size) {
        throw Error(std::string(what) + ": unexpected end of blob at offset " +
                    std::to_string(off + got));
    }
}

struct DCtx {
    ZSTD_DCtx* c = ZSTD_createDCtx();
    DCtx() {
        if (c == nullptr) {
            throw Error("zstd: out of memory");
        }
    }
    ~DCtx() { ZSTD_freeDCtx(c); }
    DCtx(const DCtx&) = delete;
    DCtx& operator=(const DCtx&) = delete;
};

struct CCtx {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    CCtx() {
        if (c == nullptr) {
            throw Error("zstd: out of memory");
        }
    }
    ~CCtx() { ZSTD_freeCCtx(c); }
    CCtx(const CCtx&) = delete;
    CCtx& operator=(const CCtx&) = delete;
};

// Decodes `in` (whole zstd frames) into exactly `expected` bytes appended to
// out; false when the frames are damaged, incomplete, or give another size.
bool decode_exact(ZSTD_DCtx* d, const char* in, std::size_t in_size, std::uint64_t expected,
                  std::string& out) {
    ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
    std::size_t base = out.size();
    ZSTD_inBuffer ib{in, in_size, 0};
    std::size_t last = 1;
    while (ib.pos < ib.size) {
        std::size_t have = out.size() - base;
        // Grow with the output actually produced, never to a size read from
        // the input: one byte of room past `expected` shows an overlong frame.
        std::size_t room = static_cast<std::size_t>(
            std::min<std::uint64_t>(expected - std::min<std::uint64_t>(have, expected), 1 << 20) +
            1);
        out.resize(base + have + room);
        ZSTD_outBuffer ob{out.data() + base + have, room, 0};
        last = ZSTD_decompressStream(d, &ob, &ib);
        out.resize(base + have + ob.pos);
        if (ZSTD_isError(last) || out.size() - base > expected) {
            out.resize(base);
            return false;
        }
    }
    // Flush what the decoder may still hold.
    while (last != 0) {
        std::size_t have = out.size() - base;
        out.resize(base + have + 1 + 4096);
        ZSTD_outBuffer ob{out.data() + base + have, 1 + 4096, 0};
        ZSTD_inBuffer none{nullptr, 0, 0};
        last = ZSTD_decompressStream(d, &ob, &none);
        out.resize(base + have + ob.pos);
        if (ZSTD_isError(last) || out.size() - base > expected || (ob.pos == 0 && last != 0)) {
            out.resize(base);
            return false;
        }
    }
    if (out.size() - base != expected) {
        out.resize(base);
        return false;
    }
    return true;
}

// A TOC name: cleaned of leading "./" and "/"; refused when empty, with "..",
// or with a NUL.
std::string clean_toc_name(std::string_view raw, std::string_view what, std::size_t index) {
    auto bad = [&](const char* why) -> Error {
        return Error(std::string(what) + ": zstd:chunked TOC entry " + std::to_string(index) +
                     " has an unsafe name \"" + std::string(raw.substr(0, 200)) + "\": " + why);
    };
    if (raw.find('\0') != std::string_view::npos) {
        throw bad("it contains a NUL byte");
    }
    std::string out;
    std::size_t i = 0;
    while (i <= raw.size()) {
        std::size_t j = raw.find('/', i);
        if (j == std::string_view::npos) {
            j = raw.size();
        }
        std::string_view part = raw.substr(i, j - i);
        if (part == "..") {
            throw bad("it has a \"..\" component");
        }
        if (!part.empty() && part != ".") {
            if (!out.empty()) {
                out += '/';
            }
            out += part;
        }
        i = j + 1;
    }
    if (out.empty()) {
        throw bad("it names the root");
    }
    return out;
}

// days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
}

// Appends Go's time.Time JSON form (RFC 3339, nanoseconds without trailing
// zeros, UTC) as a JSON string. False (nothing appended) for years Go
// refuses to marshal (outside 0..9999).
bool append_json_time(std::string& out, std::int64_t sec, std::uint32_t nsec) {
    std::int64_t days = sec / 86400;
    std::int64_t rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    std::int64_t y = 0;
    unsigned m = 0, d = 0;
    civil_from_days(days, y, m, d);
    if (y < 0 || y > 9999) {
        return false;
    }
    // "YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ", quoted: written digit by digit (a
    // TOC holds one per entry; snprintf was a tenth of its rendering).
    char buf[40];
    char* p = buf;
    auto digits = [&p](std::uint64_t v, int n) {
        for (int i = n - 1; i >= 0; --i) {
            p[i] = static_cast<char>('0' + v % 10);
            v /= 10;
        }
        p += n;
    };
    *p++ = '"';
    digits(static_cast<std::uint64_t>(y), 4);
    *p++ = '-';
    digits(m, 2);
    *p++ = '-';
    digits(d, 2);
    *p++ = 'T';
    digits(static_cast<std::uint64_t>(rem / 3600), 2);
    *p++ = ':';
    digits(static_cast<std::uint64_t>(rem / 60 % 60), 2);
    *p++ = ':';
    digits(static_cast<std::uint64_t>(rem % 60), 2);
    if (nsec != 0) {
        *p++ = '.';
        digits(nsec, 9);
        while (p[-1] == '0') {
            --p;
        }
    }
    *p++ = 'Z';
    *p++ = '"';
    out.append(buf, static_cast<std::size_t>(p - buf));
    return true;
}

bool parse_time(std::string_view t, std::int64_t& sec, std::uint32_t& nsec) {
    auto num = [&](std::size_t pos, std::size_t len, unsigned& v) {
        if (pos + len > t.size()) {
            return false;
        }
        v = 0;
        for (std::size_t i = pos; i < pos + len; ++i) {
            if (t[i] < '0' || t[i] > '9') {
                return false;
            }
            v = v * 10 + static_cast<unsigned>(t[i] - '0');
        }
        return true;
    };
    unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (!num(0, 4, y) || t.size() < 20 || t[4] != '-' || !num(5, 2, mo) || t[7] != '-' ||
        !num(8, 2, d) || (t[10] != 'T' && t[10] != 't') || !num(11, 2, h) || t[13] != ':' ||
        !num(14, 2, mi) || t[16] != ':' || !num(17, 2, s)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
        return false;
    }
    std::size_t p = 19;
    nsec = 0;
    if (p < t.size() && t[p] == '.') {
        ++p;
        unsigned digits = 0;
        while (p < t.size() && t[p] >= '0' && t[p] <= '9') {
            if (digits < 9) {
                nsec = nsec * 10 + static_cast<std::uint32_t>(t[p] - '0');
                ++digits;
            }
            ++p;
        }
        if (digits == 0) {
            return false;
        }
        for (; digits < 9; ++digits) {
            nsec *= 10;
        }
    }
    std::int64_t offset = 0;
    if (p < t.size() && (t[p] == 'Z' || t[p] == 'z') && p + 1 == t.size()) {
        offset = 0;
    } else if (p + 6 == t.size() && (t[p] == '+' || t[p] == '-') && t[p + 3] == ':') {
        unsigned oh = 0, om = 0;
        if (!num(p + 1, 2, oh) || !num(p + 4, 2, om) || oh > 23 || om > 59) {
            return false;
        }
        offset = (static_cast<std::int64_t>(oh) * 60 + om) * 60 * (t[p] == '-' ? -1 : 1);
    } else {
        return false;
    }
    sec = days_from_civil(y, mo, d) * 86400 + static_cast<std::int64_t>(h) * 3600 + mi * 60 + s -
          offset;
    return true;
}

std::string_view type_name(EntryType t) {
    switch (t) {
    case EntryType::file:
        return "reg";
    case EntryType::dir:
        return "dir";
    case EntryType::symlink:
        return "symlink";
    case EntryType::hardlink:
        return "hardlink";
    case EntryType::chardev:
        return "char";
    case EntryType::blockdev:
        return "block";
    case EntryType::fifo:
        return "fifo";
    }
    return "reg";
}

bool known_type(std::string_view t) {
    return t == "reg" || t == "dir" || t == "symlink" || t == "hardlink" || t == "char" ||
           t == "block" || t == "fifo" || t == "chunk";
}

// One TOC entry's fields as the JSON gives them, before they are checked
// (a later duplicate key replaces an earlier one, as in a JSON object).
struct RawField {
    enum Kind : std::uint8_t { absent, null, string, unsigned_number, other } kind = absent;
    std::string text;
    std::uint64_t number = 0;
};
enum TocField : std::uint8_t {
    f_type,
    f_name,
    f_link_name,
    f_mode,
    f_uid,
    f_gid,
    f_size,
    f_dev_major,
    f_dev_minor,
    f_modtime,
    f_digest,
    f_chunk_digest,
    f_offset,
    f_end_offset,
    f_chunk_offset,
    f_chunk_size,
    f_count,
    f_xattrs = f_count,
    f_unknown
};
constexpr std::array<std::string_view, f_count> k_toc_fields = {
    "type",   "name",      "linkName",    "mode",     "uid",    "gid",
    "size",   "devMajor",  "devMinor",    "modtime",  "digest", "chunkDigest",
    "offset", "endOffset", "chunkOffset", "chunkSize"};

TocField toc_field(std::string_view key) {
    if (key == "xattrs") {
        return f_xattrs;
    }
    for (std::size_t i = 0; i < k_toc_fields.size(); ++i) {
        if (k_toc_fields[i] == key) {
            return static_cast<TocField>(i);
        }
    }
    return f_unknown;
}

// A TOC entry's own fault (the reader adds where it is).
struct EntryProblem : Error {
    using Error::Error;
};

struct RawEntry {
    std::array<RawField, f_count> fields;
    RawField::Kind xattrs_kind = RawField::absent; // null, other, or string: an object
    // name -> value; nullopt: a value that is not a string.
    std::map<std::string, std::optional<std::string>> xattrs;
};

// Checks one entry's fields, in the order the TOC's readers depend on
// them; throws Error (why, without the entry's place).
ChunkedEntry toc_entry(RawEntry& r, std::uint64_t content_end, std::string_view what,
                       std::size_t index) {
    auto str = [&](TocField f) -> std::string {
        RawField& v = r.fields[f];
        if (v.kind == RawField::absent || v.kind == RawField::null) {
            return {};
        }
        if (v.kind != RawField::string) {
            throw EntryProblem("\"" + std::string(k_toc_fields[f]) + "\" is not a string");
        }
        return std::move(v.text);
    };
    auto u64 = [&](TocField f, std::uint64_t max) -> std::uint64_t {
        const RawField& v = r.fields[f];
        if (v.kind == RawField::absent || v.kind == RawField::null) {
            return 0;
        }
        if (v.kind != RawField::unsigned_number) {
            throw EntryProblem("\"" + std::string(k_toc_fields[f]) +
                               "\" is not a non-negative integer");
        }
        if (v.number > max) {
            throw EntryProblem("\"" + std::string(k_toc_fields[f]) +
                               "\" is out of range: " + std::to_string(v.number));
        }
        return v.number;
    };
    ChunkedEntry e;
    e.type = str(f_type);
    if (!known_type(e.type)) {
        throw EntryProblem("unknown type \"" + e.type.substr(0, 50) + "\"");
    }
    e.name = clean_toc_name(str(f_name), what, index);
    e.link_name = str(f_link_name);
    if (e.link_name.find('\0') != std::string::npos) {
        throw EntryProblem("linkName contains a NUL byte");
    }
    if (e.type == "hardlink") {
        e.link_name = clean_toc_name(e.link_name, what, index);
    }
    e.mode = static_cast<std::uint32_t>(u64(f_mode, 0777777) & 07777);
    e.uid = static_cast<std::uint32_t>(u64(f_uid, 4294967294u));
    e.gid = static_cast<std::uint32_t>(u64(f_gid, 4294967294u));
    e.size = u64(f_size, std::uint64_t{1} << 62);
    e.devmajor = static_cast<std::uint32_t>(u64(f_dev_major, 0xfff));
    e.devminor = static_cast<std::uint32_t>(u64(f_dev_minor, 0xfffff));
    std::string mtime = str(f_modtime);
    if (!mtime.empty() && !parse_time(mtime, e.mtime_sec, e.mtime_nsec)) {
        throw EntryProblem("bad modtime \"" + mtime.substr(0, 50) + "\"");
    }
    if (r.xattrs_kind == RawField::other) {
        throw EntryProblem("\"xattrs\" is not an object");
    }
    for (auto& [k, v] : r.xattrs) {
        if (!v) {
            throw EntryProblem("xattr " + k.substr(0, 100) + " is not a string");
        }
        auto decoded = base64_decode(*v);
        if (!decoded) {
            throw EntryProblem("xattr " + k.substr(0, 100) + " is not base64");
        }
        e.xattrs[k] = std::move(*decoded);
    }
    e.digest = str(f_digest);
    if (!e.digest.empty() && !Digest::try_parse(e.digest)) {
        throw EntryProblem("bad digest \"" + e.digest.substr(0, 80) + "\"");
    }
    e.chunk_digest = str(f_chunk_digest);
    if (!e.chunk_digest.empty() && !Digest::try_parse(e.chunk_digest)) {
        throw EntryProblem("bad chunkDigest \"" + e.chunk_digest.substr(0, 80) + "\"");
    }
    e.offset = u64(f_offset, content_end);
    e.end_offset = u64(f_end_offset, content_end);
    e.chunk_offset = u64(f_chunk_offset, std::uint64_t{1} << 62);
    e.chunk_size = u64(f_chunk_size, std::uint64_t{1} << 62);
    return e;
}

// The TOC read as events (nlohmann's SAX interface) straight into entries:
// no document tree of 20,000 objects built and taken apart again (that was
// most of the 0.1 s a rebuild spent reading its previous layer's TOC). What
// it accepts and the errors it gives are those of reading the tree: the
// JSON's syntax first, then the document's shape, then the first bad entry.
class TocReader {
public:
    TocReader(std::uint64_t content_end, std::string_view what)
        : m_content_end(content_end), m_what(what) {}

    ChunkedToc take(std::string_view json_text) {
        auto fail = [&](const std::string& why) -> Error {
            return Error(std::string(m_what) + ": bad zstd:chunked TOC: " + why);
        };
        // One entry is some 200-350 bytes of JSON: room for all of them at
        // once (growing the vector moves every entry, into fresh pages).
        m_toc.entries.reserve(json_text.size() / 200 + 16);
        nlohmann::json::sax_parse(json_text, this);
        if (m_syntax) {
            throw fail("invalid JSON: " + *m_syntax);
        }
        if (!m_object) {
            throw fail("not a JSON object");
        }
        if (!m_version_ok) {
            throw fail("version is not 1");
        }
        if (!m_entries_array) {
            throw fail("no \"entries\" array");
        }
        if (m_entry_error) {
            throw Error(*m_entry_error);
        }
        return std::move(m_toc);
    }

    // nlohmann::json_sax
    using json = nlohmann::json;
    bool null() { return scalar(RawField::null, {}, 0); }
    bool boolean(bool) { return scalar(RawField::other, {}, 0); }
    bool number_integer(json::number_integer_t) { return scalar(RawField::other, {}, 0); }
    bool number_unsigned(json::number_unsigned_t v) {
        return scalar(RawField::unsigned_number, {}, v);
    }
    bool number_float(json::number_float_t, const json::string_t&) {
        return scalar(RawField::other, {}, 0);
    }
    bool string(json::string_t& v) { return scalar(RawField::string, &v, 0); }
    bool binary(json::binary_t&) { return scalar(RawField::other, {}, 0); }
    bool key(json::string_t& k) {
        m_key = std::move(k);
        return true;
    }
    bool start_object(std::size_t) { return start(true); }
    bool start_array(std::size_t) { return start(false); }
    bool end_object() { return end(); }
    bool end_array() { return end(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
        m_syntax = ex.what();
        return false;
    }

private:
    enum class Level : std::uint8_t { top, entries, entry, xattrs, skipped };

    bool scalar(RawField::Kind kind, json::string_t* text, std::uint64_t number) {
        if (m_levels.empty()) {
            return true; // a document that is not an object
        }
        switch (m_levels.back()) {
        case Level::top:
            if (m_key == "version") {
                m_version_ok = kind == RawField::unsigned_number && number == 1;
            } else if (m_key == "entries") {
                entries_begin(false);
            }
            break;
        case Level::entries:
            entry_failed("not an object");
            ++m_index;
            break;
        case Level::entry:
            if (TocField f = toc_field(m_key); f < f_count) {
                RawField& field = m_raw.fields[f];
                field.kind = kind;
                field.number = number;
                if (text != nullptr) {
                    field.text = std::move(*text);
                }
            } else if (f == f_xattrs) {
                m_raw.xattrs_kind = kind == RawField::null ? RawField::null : RawField::other;
                m_raw.xattrs.clear();
            }
            break;
        case Level::xattrs:
            if (text != nullptr) {
                m_raw.xattrs[m_key] = std::move(*text);
            } else {
                m_raw.xattrs[m_key] = std::nullopt;
            }
            break;
        case Level::skipped:
            break;
        }
        return true;
    }

    bool start(bool object) {
        Level level = Level::skipped;
        if (m_levels.empty()) {
            m_object = object;
            level = object ? Level::top : Level::skipped;
        } else {
            switch (m_levels.back()) {
            case Level::top:
                if (m_key == "version") {
                    m_version_ok = false;
                } else if (m_key == "entries") {
                    entries_begin(!object);
                    level = object ? Level::skipped : Level::entries;
                }
                break;
            case Level::entries:
                if (object) {
                    m_raw = RawEntry{};
                    level = Level::entry;
                } else {
                    entry_failed("not an object");
                    ++m_index;
                }
                break;
            case Level::entry:
                if (TocField f = toc_field(m_key); f < f_count) {
                    m_raw.fields[f].kind = RawField::other;
                } else if (f == f_xattrs) {
                    m_raw.xattrs_kind = object ? RawField::string : RawField::other;
                    m_raw.xattrs.clear();
                    level = object ? Level::xattrs : Level::skipped;
                }
                break;
            case Level::xattrs:
                m_raw.xattrs[m_key] = std::nullopt;
                break;
            case Level::skipped:
                break;
            }
        }
        m_levels.push_back(level);
        return true;
    }

    bool end() {
        Level level = m_levels.back();
        m_levels.pop_back();
        if (level == Level::entry) {
            if (!m_entry_error) {
                try {
                    m_toc.entries.push_back(toc_entry(m_raw, m_content_end, m_what, m_index));
                } catch (const EntryProblem& e) {
                    entry_failed(e.what());
                } catch (const Error& e) {
                    m_entry_error = e.what(); // an unsafe name: its own message
                }
            }
            ++m_index;
        }
        return true;
    }

    // "entries" again: the last one counts, as in a JSON object.
    void entries_begin(bool array) {
        m_entries_array = array;
        m_toc.entries.clear();
        m_entry_error.reset();
        m_index = 0;
    }
    void entry_failed(const std::string& why) {
        if (!m_entry_error) {
            m_entry_error = std::string(m_what) + ": bad zstd:chunked TOC: entry " +
                            std::to_string(m_index) + ": " + why;
        }
    }

    std::uint64_t m_content_end;
    std::string_view m_what;
    std::vector<Level> m_levels;
    std::string m_key;
    RawEntry m_raw;
    std::size_t m_index = 0;
    bool m_object = false;
    bool m_version_ok = false;
    bool m_entries_array = false;
    std::optional<std::string> m_entry_error;
    std::optional<std::string> m_syntax;
    ChunkedToc m_toc;
};

// Parses and checks a TOC document; throws naming `what`.
ChunkedToc parse_toc(std::string_view json_text, std::uint64_t content_end, std::string_view what) {
    auto fail = [&](const std::string& why) -> Error {
        return Error(std::string(what) + ": bad zstd:chunked TOC: " + why);
    };
    ChunkedToc toc = TocReader(content_end, what).take(json_text);
    // Chunks: a reg entry followed by its chunk entries. Give every piece its
    // own [offset, end_offset) and chunk bounds, and check that the chunks
    // tile the file and that their frames follow each other in the blob.
    std::uint64_t prev_end = 0;
    for (std::size_t i = 0; i < toc.entries.size(); ++i) {
        ChunkedEntry& e = toc.entries[i];
        auto efail = [&](const std::string& why) {
            return fail("entry " + std::to_string(i) + " (" + e.name + "): " + why);
        };
        if (e.type == "chunk") {
            throw efail("a chunk entry that follows no regular file");
        }
        if (e.type != "reg") {
            e.offset = e.end_offset = e.chunk_offset = e.chunk_size = 0;
            e.digest.clear();
            e.chunk_digest.clear();
            continue;
        }
        std::size_t n = 1;
        while (i + n < toc.entries.size() && toc.entries[i + n].type == "chunk") {
            if (toc.entries[i + n].name != e.name) {
                throw efail("chunk entry " + std::to_string(i + n) + " names another file");
            }
            ++n;
        }
        if (e.size == 0) {
            if (n > 1) {
                throw efail("an empty file with chunks");
            }
            e.offset = e.end_offset = e.chunk_offset = e.chunk_size = 0;
            continue;
        }
        const std::uint64_t file_end = e.end_offset;
        if (n == 1) {
            if (e.chunk_offset != 0 || (e.chunk_size != 0 && e.chunk_size != e.size)) {
                throw efail("chunk bounds that do not cover the file");
            }
            e.chunk_size = e.size;
        }
        std::uint64_t want_chunk_offset = 0;
        for (std::size_t k = 0; k < n; ++k) {
            ChunkedEntry& c = toc.entries[i + k];
            if (c.chunk_offset != want_chunk_offset) {
                throw efail("chunk " + std::to_string(k) + " starts at " +
                            std::to_string(c.chunk_offset) + ", not " +
                            std::to_string(want_chunk_offset));
            }
            if (c.chunk_size == 0 && k + 1 == n && n > 1) {
                c.chunk_size = e.size - c.chunk_offset; // the last chunk may omit its size
            }
            if (c.chunk_size == 0 || c.chunk_size > e.size - c.chunk_offset) {
                throw efail("chunk " + std::to_string(k) + " has a bad size");
            }
            want_chunk_offset += c.chunk_size;
            std::uint64_t end = k + 1 < n ? toc.entries[i + k + 1].offset : file_end;
            if (c.offset < prev_end || end <= c.offset || end > content_end) {
                throw efail("chunk " + std::to_string(k) + " has bad offsets " +
                            std::to_string(c.offset) + ".." + std::to_string(end));
            }
            c.end_offset = end;
            prev_end = end;
            if (k > 0) {
                c.size = e.size;
                c.mode = e.mode;
                c.uid = e.uid;
                c.gid = e.gid;
            }
        }
        if (want_chunk_offset != e.size) {
            throw efail("chunks cover " + std::to_string(want_chunk_offset) + " of " +
                        std::to_string(e.size) + " bytes");
        }
        i += n - 1;
    }
    return toc;
}

} // namespace

namespace {

// The TOCs this process parsed last, by what the parse depends on (the TOC's
// bytes, named by their digest, and where the content ends): a rebuild's
// COPY reads the previous layer's TOC twice (which files it may link, then
// the layer writer's frames), and parsing a TOC of 20,000 files takes about
// 0.1 s.
class TocMemo {
public:
    // The TOC parsed under key, waiting while another thread parses it (a
    // build reads its previous layer's TOC ahead, while the context is
    // hashed). nullptr: none, and the caller parses it now (add() or
    // abandon() follows).
    std::shared_ptr<const ChunkedToc> find_or_claim(const std::string& key) {
        std::unique_lock lk(m_mu);
        m_cv.wait(lk, [&] { return m_parsing.count(key) == 0; });
        for (const auto& [k, toc] : m_last) {
            if (k == key) {
                return toc;
            }
        }
        m_parsing.insert(key);
        return nullptr;
    }
    void add(const std::string& key, std::shared_ptr<const ChunkedToc> toc) {
        std::lock_guard lk(m_mu);
        m_parsing.erase(key);
        m_last.emplace_front(key, std::move(toc));
        if (m_last.size() > 4) {
            m_last.pop_back();
        }
        m_cv.notify_all();
    }
    void abandon(const std::string& key) {
        std::lock_guard lk(m_mu);
        m_parsing.erase(key);
        m_cv.notify_all();
    }

private:
    std::mutex m_mu;
    std::condition_variable m_cv;
    std::set<std::string> m_parsing;
    std::deque<std::pair<std::string, std::shared_ptr<const ChunkedToc>>> m_last;
};

TocMemo& toc_memo() {
    static TocMemo memo;
    return memo;
}

} // namespace

std::shared_ptr<const ChunkedToc> read_chunked_toc(int blob_fd, std::uint64_t blob_size,
                                                   std::string_view what,
                                                   std::string_view expected_digest) {
    if (blob_size < k_footer_frame + 8) {
        return nullptr;
    }
    unsigned char footer[k_footer_frame];
    pread_all(blob_fd, footer, sizeof footer, blob_size - k_footer_frame, what);
    if (le32(footer) != k_skippable_magic || le32(footer + 4) != k_footer_data ||
        std::memcmp(footer + 8 + 56, k_footer_magic, 8) != 0) {
        return nullptr;
    }
    auto fail = [&](const std::string& why) {
        return Error(std::string(what) + ": bad zstd:chunked footer: " + why);
    };
    const unsigned char* f = footer + 8;
    const std::uint64_t offset = le64(f), length = le64(f + 8), raw_length = le64(f + 16),
                        type = le64(f + 24);
    const std::uint64_t footer_start = blob_size - k_footer_frame;
    if (type != 1) {
        throw fail("manifest type " + std::to_string(type) + " (only 1 is known)");
    }
    if (length == 0 || length > k_max_toc || raw_length == 0 || raw_length > k_max_toc) {
        throw fail("TOC sizes " + std::to_string(length) + "/" + std::to_string(raw_length) +
                   " out of range (at most " + std::to_string(k_max_toc) + ")");
    }
    if (offset < 8 || offset > footer_start || length > footer_start - offset) {
        throw fail("TOC at " + std::to_string(offset) + "+" + std::to_string(length) +
                   " lies outside the blob (" + std::to_string(blob_size) + " bytes)");
    }
    unsigned char frame_head[8];
    pread_all(blob_fd, frame_head, 8, offset - 8, what);
    if ((le32(frame_head) & 0xFFFFFFF0u) != k_skippable_magic || le32(frame_head + 4) < length) {
        throw fail("the TOC at " + std::to_string(offset) + " is not in a skippable frame");
    }
    std::string compressed(static_cast<std::size_t>(length), '\0');
    pread_all(blob_fd, compressed.data(), compressed.size(), offset, what);
    std::string digest = Digest::of(compressed).str();
    if (!expected_digest.empty() && digest != expected_digest) {
        throw Error(std::string(what) + ": zstd:chunked TOC digest " + digest +
                    " does not match the layer's annotation " + std::string(expected_digest));
    }
    std::string key = digest + " " + std::to_string(offset) + " " + std::to_string(raw_length);
    if (auto known = toc_memo().find_or_claim(key)) {
        return known;
    }
    struct Claim {
        const std::string& key;
        bool kept = false;
        ~Claim() {
            if (!kept) {
                toc_memo().abandon(key);
            }
        }
    } claim{key};
    DCtx d;
    std::string json;
    // Room for the size the footer gives (at most k_max_toc, checked above;
    // pages are only touched as the output fills them): growing the string
    // a MiB at a time moved it into fresh pages again and again, a third of
    // the read of a TOC of 20,000 entries.
    json.reserve(static_cast<std::size_t>(raw_length) + 1);
    if (!decode_exact(d.c, compressed.data(), compressed.size(), raw_length, json)) {
        throw fail("the TOC does not decompress to its " + std::to_string(raw_length) + " bytes");
    }
    auto toc = std::make_shared<ChunkedToc>(parse_toc(json, offset - 8, what));
    toc->digest = std::move(digest);
    toc_memo().add(key, toc);
    claim.kept = true;
    return toc;
}

std::string read_chunked_range(int blob_fd, std::uint64_t offset, std::uint64_t end_offset,
                               std::uint64_t expected_size, std::string_view what) {
    auto fail = [&](const std::string& why) {
        return Error(std::string(what) + ": zstd:chunked range " + std::to_string(offset) + ".." +
                     std::to_string(end_offset) + ": " + why);
    };
    if (end_offset < offset) {
        throw fail("ends before it starts");
    }
    if (expected_size > k_max_range_output) {
        throw fail("claims " + std::to_string(expected_size) + " bytes, more than the " +
                   std::to_string(k_max_range_output) + " a chunk may hold");
    }
    if (end_offset == offset) {
        if (expected_size != 0) {
            throw fail("is empty but should hold " + std::to_string(expected_size) + " bytes");
        }
        return {};
    }
    struct stat st {};
    if (::fstat(blob_fd, &st) != 0) {
        throw SysError("fstat", std::string(what), errno);
    }
    if (end_offset > static_cast<std::uint64_t>(st.st_size)) {
        throw fail("lies past the end of the blob (" + std::to_string(st.st_size) + " bytes)");
    }
    // A lazy image reads a chunk per file: the decoder and the input buffer
    // are the thread's own and kept (a fresh context and a zeroed 1 MiB
    // buffer per chunk were a third of a cold read's time), and the output
    // is sized once.
    thread_local DCtx d;
    thread_local std::vector<char> in;
    ZSTD_DCtx_reset(d.c, ZSTD_reset_session_and_parameters);
    std::string out;
    out.reserve(static_cast<std::size_t>(expected_size) + 1);
    in.resize(static_cast<std::size_t>(
        std::max<std::uint64_t>(in.size(), std::min<std::uint64_t>(end_offset - offset, 1 << 20))));
    std::uint64_t pos = offset;
    std::size_t last = 1;
    while (pos < end_offset) {
        std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(end_offset - pos, in.size()));
        pread_all(blob_fd, in.data(), n, pos, what);
        pos += n;
        ZSTD_inBuffer ib{in.data(), n, 0};
        while (ib.pos < ib.size) {
            std::size_t have = out.size();
            std::size_t room = static_cast<std::size_t>(
                std::min<std::uint64_t>(
                    expected_size - std::min<std::uint64_t>(have, expected_size), 1 << 20) +
                1);
            out.resize(have + room);
            ZSTD_outBuffer ob{out.data() + have, room, 0};
            last = ZSTD_decompressStream(d.c, &ob, &ib);
            out.resize(have + ob.pos);
            if (ZSTD_isError(last)) {
                throw fail(std::string("zstd: ") + ZSTD_getErrorName(last));
            }
            if (out.size() > expected_size) {
                throw fail("holds more than the expected " + std::to_string(expected_size) +
                           " bytes");
            }
        }
    }
    while (last != 0) {
        std::size_t have = out.size();
        out.resize(have + 4097);
        ZSTD_outBuffer ob{out.data() + have, 4097, 0};
        ZSTD_inBuffer none{nullptr, 0, 0};
        last = ZSTD_decompressStream(d.c, &ob, &none);
        out.resize(have + ob.pos);
        if (ZSTD_isError(last)) {
            throw fail(std::string("zstd: ") + ZSTD_getErrorName(last));
        }
        if (out.size() > expected_size) {
            throw fail("holds more than the expected " + std::to_string(expected_size) + " bytes");
        }
        if (ob.pos == 0 && last != 0) {
            throw fail("ends inside a zstd frame");
        }
    }
    if (out.size() != expected_size) {
        throw fail("holds " + std::to_string(out.size()) + " bytes, not " +
                   std::to_string(expected_size));
    }
    return out;
}

std::map<std::string, std::string> chunked_annotations(const ChunkedLayerInfo& info) {
    if (info.toc_digest.empty()) {
        return {};
    }
    return {{std::string(k_chunked_manifest_checksum_key), info.toc_digest},
            {std::string(k_chunked_manifest_position_key),
             std::to_string(info.toc_offset) + ":" + std::to_string(info.toc_size) + ":" +
                 std::to_string(info.toc_raw_size) + ":1"}};
}

namespace {

std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

std::optional<std::string> from_hex(std::string_view hex) {
    auto val = [](char c) -> int {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    if (hex.size() % 2 != 0) {
        return std::nullopt;
    }
    std::string out(hex.size() / 2, '\0');
    for (std::size_t i = 0; i < out.size(); ++i) {
        int hi = val(hex[2 * i]), lo = val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out[i] = static_cast<char>(hi << 4 | lo);
    }
    return out;
}

nlohmann::json checkpoints_array(const std::vector<HashCheckpoint>& checkpoints) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& c : checkpoints) {
        a.push_back({c.tar_offset, c.blob_offset, to_hex(c.diff_state), to_hex(c.blob_state)});
    }
    return a;
}

} // namespace

// {"blob", "size", "checkpoints": [[tar offset, blob offset, diff state,
// blob state (hex)], ...], "check": sha256 of the checkpoints array's text}:
// the check catches a damaged file, whose states would otherwise give wrong
// digests without any sign.
std::string checkpoints_document(const std::vector<HashCheckpoint>& checkpoints, const Digest& blob,
                                 std::uint64_t blob_size) {
    nlohmann::json a = checkpoints_array(checkpoints);
    nlohmann::json doc;
    doc["blob"] = blob.str();
    doc["size"] = blob_size;
    doc["check"] = Digest::of(a.dump()).str();
    doc["checkpoints"] = std::move(a);
    return doc.dump() + "\n";
}

std::optional<std::vector<HashCheckpoint>>
parse_checkpoints_document(std::string_view text, const Digest& blob, std::uint64_t blob_size) {
    auto doc = nlohmann::json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("blob") ||
        !doc["blob"].is_string() || doc["blob"].get<std::string>() != blob.str() ||
        !doc.contains("size") || !doc["size"].is_number_unsigned() ||
        doc["size"].get<std::uint64_t>() != blob_size || !doc.contains("checkpoints") ||
        !doc["checkpoints"].is_array() || !doc.contains("check") || !doc["check"].is_string()) {
        return std::nullopt;
    }
    std::vector<HashCheckpoint> out;
    std::uint64_t prev_tar = 0, prev_blob = 0;
    for (const auto& c : doc["checkpoints"]) {
        if (!c.is_array() || c.size() != 4 || !c[0].is_number_unsigned() ||
            !c[1].is_number_unsigned() || !c[2].is_string() || !c[3].is_string()) {
            return std::nullopt;
        }
        HashCheckpoint h;
        h.tar_offset = c[0].get<std::uint64_t>();
        h.blob_offset = c[1].get<std::uint64_t>();
        auto d = from_hex(c[2].get<std::string>());
        auto b = from_hex(c[3].get<std::string>());
        if (!d || !b || h.tar_offset <= prev_tar || h.blob_offset <= prev_blob ||
            h.blob_offset > blob_size) {
            return std::nullopt;
        }
        h.diff_state = std::move(*d);
        h.blob_state = std::move(*b);
        try {
            // Well formed, and at the offsets they claim.
            if (ResumableSha256::state_bytes(h.diff_state) != h.tar_offset ||
                ResumableSha256::state_bytes(h.blob_state) != h.blob_offset ||
                ResumableSha256::resume(h.diff_state).state() != h.diff_state ||
                ResumableSha256::resume(h.blob_state).state() != h.blob_state) {
                return std::nullopt;
            }
        } catch (const Error&) {
            return std::nullopt;
        }
        prev_tar = h.tar_offset;
        prev_blob = h.blob_offset;
        out.push_back(std::move(h));
    }
    if (Digest::of(checkpoints_array(out).dump()).str() != doc["check"].get<std::string>()) {
        return std::nullopt;
    }
    return out;
}

// ------------------------------------------------------------------ writer

namespace {

// A byte buffer that is not zeroed when sized (every byte is written before
// it is read): zero-filling hundreds of MB of chunks costs as much as hashing
// them.
class Buf {
public:
    Buf() = default;
    Buf(Buf&& o) noexcept
        : m_p(std::move(o.m_p)), m_n(std::exchange(o.m_n, 0)), m_cap(std::exchange(o.m_cap, 0)) {}
    Buf& operator=(Buf&& o) noexcept {
        m_p = std::move(o.m_p);
        m_n = std::exchange(o.m_n, 0);
        m_cap = std::exchange(o.m_cap, 0);
        return *this;
    }
    void alloc(std::size_t n) {
        if (n > m_cap) {
            m_p.reset(new char[n]);
            m_cap = n;
        }
        m_n = n;
    }
    void shrink(std::size_t n) { m_n = std::min(n, m_n); }
    void assign(std::string_view s) {
        alloc(s.size());
        std::memcpy(m_p.get(), s.data(), s.size());
    }
    void reset() {
        m_p.reset();
        m_n = m_cap = 0;
    }
    char* data() noexcept { return m_p.get(); }
    const char* data() const noexcept { return m_p.get(); }
    std::size_t size() const noexcept { return m_n; }
    bool empty() const noexcept { return m_n == 0; }
    std::size_t capacity() const noexcept { return m_cap; }

private:
    std::unique_ptr<char[]> m_p;
    std::size_t m_n = 0, m_cap = 0;
};

// Whether the zstd frames `in` decode to exactly `want`, decoding into a
// small scratch buffer (never more than want's size is produced).
bool frames_equal(ZSTD_DCtx* d, std::string_view in, const Buf& want, std::vector<char>& scratch) {
    scratch.resize(256 << 10);
    std::optional<std::uint64_t> n = decode_runs(
        d, in.data(), in.size(), want.size(),
        [&](std::size_t* room) {
            *room = scratch.size();
            return scratch.data();
        },
        [&, pos = std::size_t{0}](const char* at, std::size_t k) mutable {
            bool same = std::memcmp(at, want.data() + pos, k) == 0;
            pos += k;
            return same;
        });
    return n == want.size();
}

// What a linked file's frames that do not decode to its content throw.
LinkedFramesDamaged linked_frames_damaged(const std::string& old_what, const std::string& path) {
    return LinkedFramesDamaged(old_what + ": the frames of " + path +
                               " do not decode to its content");
}

// One piece of the tar: a run of header bytes, or one chunk of a file.
struct Piece {
    Buf input;                    // uncompressed bytes (none for a linked file's chunk)
    std::size_t tar_size = 0;     // how many bytes of the tar the piece is
    Buf old_frames;               // a previous layer's frames that may hold the same bytes
    // A header run's: those frames in the previous blob's mapping (the
    // worker compares them there, and copies them when they hold the run).
    std::string_view old_header;
    std::size_t entry = SIZE_MAX; // the TOC entry whose range this piece is (content only)
    std::size_t reg = SIZE_MAX;   // the file's reg entry (content only)
    bool content = false;
    bool first_chunk = false, last_chunk = false;
    // A linked file's chunk (ChunkedWriter::add_linked): the previous
    // layer's frames in its mapping, known to hold the chunk's bytes (the
    // tar's hash thread or the calling thread decodes and hashes them);
    // written as they are, neither compressed nor compared. `mapped` says
    // where they are in the old blob; the output thread reads them into
    // its job's buffer (`read`), from where they are written and hashed.
    const char* mapped = nullptr;
    std::size_t mapped_size = 0;
    const char* read = nullptr;
    std::string known_digest; // last chunk of a linked file: the file's digest
    // A hash checkpoint at this piece's start: the hash thread adds the
    // blob's hash state there, finish() the tar's (TarHashThread::mark).
    bool checkpoint = false;
    std::uint64_t tar_offset = 0;
    // Set by the worker.
    Buf output;
    bool reused = false;

    const char* out_data() const noexcept {
        return read != nullptr ? read : mapped != nullptr ? mapped : output.data();
    }
    std::size_t out_size() const noexcept {
        return mapped != nullptr ? mapped_size : output.size();
    }
};

struct Job {
    std::vector<Piece> pieces;
    std::size_t bytes = 0; // what its pieces hold or point to: a job is cut at k_job_bytes
    std::size_t owned = 0; // what its buffers hold (a linked file's mapped frames are not)
    bool done = false;
    Buf linked; // the output thread's read of its linked frames (Piece::read)
};

} // namespace

// The tar's SHA-256 (the diff ID) on a thread of its own: the calling thread
// hands it the tar in blocks, in order, and goes on rendering while they are
// hashed (hashing 280 MB took the calling thread 0.19 s, most of what it did
// for a layer made mostly of a previous layer's frames). Blocks come from a
// small pool: the calling thread waits when all are queued.
class TarHashThread {
public:
    static constexpr std::size_t k_block = 256 << 10;
    static constexpr std::size_t k_blocks = 8;
    // The content a block's frames may hold: a block of big files' frames
    // holds little else, and the calling thread goes on past them.
    static constexpr std::size_t k_frames_bytes = 64 << 20;

    TarHashThread() {
        for (std::size_t i = 0; i < k_blocks; ++i) {
            m_blocks[i].data = std::make_unique<char[]>(k_block);
            m_free.push_back(&m_blocks[i]);
        }
        m_thread = std::thread([this] { run(); });
    }
    TarHashThread(const TarHashThread&) = delete;
    TarHashThread& operator=(const TarHashThread&) = delete;
    ~TarHashThread() { join(); }

    // Calling thread: where up to *room bytes may be written (then commit).
    char* space(std::size_t* room) {
        if (m_cur == nullptr) {
            m_cur = take_free();
        }
        *room = k_block - m_cur->used;
        return m_cur->data.get() + m_cur->used;
    }
    void commit(std::size_t n) {
        m_cur->used += n;
        if (m_cur->used == k_block) {
            hand_over(false);
        }
    }
    void update(const void* data, std::size_t n) {
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            std::size_t room = 0;
            char* at = space(&room);
            std::size_t k = std::min(room, n);
            std::memcpy(at, p, k);
            commit(k);
            p += k;
            n -= k;
        }
    }
    // A linked file's chunk as the previous layer's frames: the thread
    // decodes them in their place in the stream and hashes the bytes, which
    // must be exactly tar_size (else finish() throws LinkedFramesDamaged,
    // "<*what>: the frames of <path> do not decode to its content"). The
    // frames stay readable until finish().
    void frames(const char* data, std::size_t size, std::size_t tar_size, const std::string* what,
                std::string path) {
        if (m_cur == nullptr) {
            m_cur = take_free();
        }
        m_cur->frames.push_back(Frames{m_cur->used, data, size, tar_size, what, std::move(path)});
        m_frames_pending.fetch_add(1, std::memory_order_relaxed);
        m_cur_frames_bytes += tar_size;
        if (m_cur->frames.size() >= 512 || m_cur_frames_bytes >= k_frames_bytes) {
            hand_over(false);
        }
    }
    // The frames given are read from fd, mapped at base, rather than
    // through the mapping.
    void read_frames_from(int fd, const char* base) {
        m_source_fd = fd;
        m_source = base;
    }
    // Frames given and not decoded yet; the end of the last frames decoded.
    std::size_t frames_pending() const { return m_frames_pending.load(std::memory_order_acquire); }
    const char* frames_done() const { return m_frames_done.load(std::memory_order_acquire); }

    // The hash's state after the bytes given so far is to be kept.
    void mark() {
        if (m_cur == nullptr) {
            m_cur = take_free();
        }
        hand_over(true);
    }

    // The digest (hex); states gets the marked states, by tar offset.
    std::string finish(std::map<std::uint64_t, std::string>& states) {
        if (m_cur != nullptr) {
            hand_over(false);
        }
        join();
        if (m_error) {
            std::rethrow_exception(m_error);
        }
        states = std::move(m_states);
        return m_hash.finish_hex();
    }

private:
    struct Frames {
        std::size_t at; // where in the block's bytes their content goes
        const char* data;
        std::size_t size;
        std::size_t tar_size;
        const std::string* what;
        std::string path;
    };
    struct Block {
        std::unique_ptr<char[]> data;
        std::size_t used = 0;
        bool mark = false;
        std::vector<Frames> frames;
    };

    Block* take_free() {
        std::unique_lock lk(m_mu);
        m_cv_free.wait(lk, [&] { return !m_free.empty(); });
        Block* b = m_free.back();
        m_free.pop_back();
        b->used = 0;
        b->mark = false;
        b->frames.clear();
        return b;
    }
    void hand_over(bool mark) {
        m_cur->mark = mark;
        m_cur_frames_bytes = 0;
        std::lock_guard lk(m_mu);
        m_queue.push_back(m_cur);
        m_cur = nullptr;
        m_cv_work.notify_one();
    }
    void join() {
        {
            std::lock_guard lk(m_mu);
            m_closing = true;
            m_cv_work.notify_one();
        }
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }
    void run() noexcept {
        std::uint64_t hashed = 0;
        while (true) {
            Block* b = nullptr;
            {
                std::unique_lock lk(m_mu);
                m_cv_work.wait(lk, [&] { return m_closing || !m_queue.empty(); });
                if (m_queue.empty()) {
                    return;
                }
                b = m_queue.front();
                m_queue.pop_front();
            }
            try {
                read_span(*b);
                std::size_t pos = 0;
                for (const Frames& f : b->frames) {
                    if (!m_error) {
                        m_hash.update(b->data.get() + pos, f.at - pos);
                        try {
                            decode(f);
                        } catch (...) {
                            m_error = std::current_exception(); // the hash is of no use now
                        }
                    }
                    hashed += f.at - pos + f.tar_size;
                    pos = f.at;
                    m_frames_done.store(f.data + f.size, std::memory_order_release);
                    m_frames_pending.fetch_sub(1, std::memory_order_release);
                }
                m_hash.update(b->data.get() + pos, b->used - pos);
                hashed += b->used - pos;
                if (b->mark) {
                    m_states[hashed] = m_hash.state();
                }
            } catch (...) {
                if (!m_error) {
                    m_error = std::current_exception();
                }
            }
            std::lock_guard lk(m_mu);
            m_free.push_back(b);
            m_cv_free.notify_one();
        }
    }

    // The thread: hashes f's content, read from the old blob (see
    // ChunkedWriter's read_linked for why not through its mapping), raw
    // blocks where they lie in that read, the rest decoded.
    void decode(const Frames& f) {
        const char* in = f.data;
        if (m_span_begin != nullptr && f.data >= m_span_begin && f.data + f.size <= m_span_end) {
            in = m_span.data() + (f.data - m_span_begin);
        } else if (m_source_fd >= 0) {
            m_read.resize(std::max(m_read.size(), f.size));
            pread_all(m_source_fd, m_read.data(), f.size,
                      static_cast<std::uint64_t>(f.data - m_source), *f.what);
            in = m_read.data();
        }
        bool ok = frame_content_runs(m_dctx.c, in, f.size, f.tar_size, m_scratch,
                                     [&](const char* at, std::size_t n) { m_hash.update(at, n); });
        if (!ok) {
            throw linked_frames_damaged(*f.what, f.path);
        }
    }

    // The thread: a block's frames close together (small files' frames,
    // between their headers' frames) read in one pread into m_span, up to
    // k_max_span bytes (a block of big files' frames is read frame by frame
    // into one reused buffer: fresh memory costs more than the reads).
    static constexpr std::size_t k_max_span = 4 << 20;
    void read_span(const Block& b) {
        m_span_begin = nullptr;
        if (m_source_fd < 0 || b.frames.empty()) {
            return;
        }
        const char* lo = b.frames.front().data;
        const char* hi = lo;
        std::size_t sum = 0;
        for (const Frames& f : b.frames) {
            lo = std::min(lo, f.data);
            hi = std::max(hi, f.data + f.size);
            sum += f.size;
        }
        auto span = static_cast<std::size_t>(hi - lo);
        if (b.frames.size() < 2 || span > k_max_span || span > sum + sum / 2 + (1 << 20)) {
            return; // one frame, big ones, or far apart: read one by one
        }
        try {
            m_span.resize(std::max(m_span.size(), span));
            pread_all(m_source_fd, m_span.data(), span, static_cast<std::uint64_t>(lo - m_source),
                      *b.frames.front().what);
            m_span_begin = lo;
            m_span_end = hi;
        } catch (const Error&) {
            // Read one by one, where the failure is the frame's.
        }
    }

    Block m_blocks[k_blocks];
    Block* m_cur = nullptr;             // calling thread
    std::size_t m_cur_frames_bytes = 0; // calling thread: decoded bytes of m_cur's frames
    std::atomic<std::size_t> m_frames_pending{0};
    std::atomic<const char*> m_frames_done{nullptr};
    DCtx m_dctx;                       // the thread's
    std::vector<char> m_scratch;       // the thread's
    std::vector<char> m_read;          // the thread's
    std::vector<char> m_span;          // the thread's (read_span)
    const char* m_span_begin = nullptr;
    const char* m_span_end = nullptr;
    int m_source_fd = -1; // set before the first frames
    const char* m_source = nullptr;
    std::mutex m_mu;
    std::condition_variable m_cv_work, m_cv_free;
    std::deque<Block*> m_queue;
    std::vector<Block*> m_free;
    bool m_closing = false;
    // The thread's, read by finish() after the join.
    ResumableSha256 m_hash;
    std::map<std::uint64_t, std::string> m_states;
    std::exception_ptr m_error;
    std::thread m_thread;
};

struct ChunkedWriter::Impl {
    Options opts;
    int out_fd = -1;
    int level = ZSTD_CLEVEL_DEFAULT;
    std::unique_ptr<TarRenderer> renderer;
    TarHashThread tar_hash; // the diff ID's
    bool prehashed = false; // calling thread: the bytes rendered are in tar_hash already
    std::uint64_t diff_size = 0;
    std::string header_run;        // calling thread: tar bytes since the last content
    Job cur;                       // calling thread: the job being gathered
    std::vector<ChunkedEntry> toc; // entries; offsets filled by the hash thread
    // Whether the TOC can say every entry: its names are JSON strings, which
    // hold UTF-8 only (a name of other bytes would be read back as another
    // name): false, the layer has no TOC.
    bool toc_faithful = true;
    bool finished = false;

    // Reuse source.
    int old_fd = -1;
    // The old blob, when it can be mapped: Piece::mapped says where a linked
    // chunk's frames are; the threads read them with pread (read_linked,
    // TarHashThread::read_frames_from), which costs less than the mapping.
    MappedFile old_map;
    std::string old_what;
    // name -> the old file's pieces (reg then chunks): entries of the old
    // TOC, which outlives the writer (reuse_from).
    struct OldFile {
        std::uint64_t size = 0;
        std::string_view digest; // of the whole content, as the TOC gives it
        std::vector<const ChunkedEntry*> pieces;
    };
    DCtx linked_dctx; // calling thread: decodes linked files' frames
    std::unordered_map<std::string_view, OldFile> old_files;

    // Workers, the output thread (writes the frames in order) and the hash
    // thread (hashes what the output thread wrote, in order, and keeps the
    // books): the two SHA-256 passes and the copy into the blob are on two
    // threads, not one after the other. mu guards the queues, stop, error.
    std::mutex mu;
    std::condition_variable cv_work, cv_done, cv_room, cv_hash;
    std::deque<std::shared_ptr<Job>> queue;   // not yet taken by a worker
    std::deque<std::shared_ptr<Job>> pending; // in order, for the output thread
    std::deque<std::shared_ptr<Job>> written; // in order, for the hash thread
    std::size_t in_flight_owned = 0;          // the owned bytes of pending and written jobs
    bool closing = false;
    bool output_done = false;
    bool stop = false;
    std::exception_ptr error;
    std::vector<std::thread> workers;
    std::thread output, hasher;
    std::size_t max_pending = 4;

    // Buffers of k_pool_buf bytes handed back by the hash thread, so that
    // chunks do not fault in fresh pages (pool_mu guards pool).
    static constexpr std::size_t k_pool_buf = k_chunked_chunk_size + (64 << 10);
    std::mutex pool_mu;
    std::vector<Buf> pool;

    Buf take(std::size_t n) {
        Buf b;
        if (n <= k_pool_buf) {
            std::lock_guard lk(pool_mu);
            if (!pool.empty()) {
                b = std::move(pool.back());
                pool.pop_back();
            }
        }
        if (b.capacity() == 0 && n <= k_pool_buf && n >= (64 << 10)) {
            b.alloc(k_pool_buf);
        }
        b.alloc(n);
        return b;
    }
    void give(Buf& b) {
        if (b.capacity() == k_pool_buf) {
            std::lock_guard lk(pool_mu);
            if (pool.size() < 64) {
                pool.push_back(std::move(b));
            }
        }
        b.reset();
    }

    // Hash checkpoints. The calling thread hands the tar to tar_hash (the
    // diff ID) and marks a piece every k_checkpoint_interval bytes; the hash
    // thread hashes the blob and completes those checkpoints. With the
    // previous layer's checkpoints (resume), the hash thread does not hash
    // the blob while it is the old blob byte for byte (same): it only keeps
    // the pieces since the last old checkpoint it passed (window), and at
    // the first difference goes on from that checkpoint's blob state over
    // the window's bytes. (The diff ID is always hashed whole, in order as
    // the tar is rendered: so linked files' jobs need not keep their bytes,
    // and the walk runs ahead of the output over them.)
    bool resume = false;
    std::vector<HashCheckpoint> old_checkpoints;
    std::uint64_t last_checkpoint_tar = 0;   // calling thread
    std::vector<HashCheckpoint> checkpoints; // hash thread
    bool same = true;
    std::uint64_t tar_pos = 0; // hash thread (resume): tar bytes so far
    std::size_t next_old = 0;  // old_checkpoints not yet passed
    const HashCheckpoint* passed = nullptr;
    std::vector<std::shared_ptr<Job>> window;
    std::size_t window_first = 0; // the first piece of window.front() past `passed`
    std::uint64_t window_bytes = 0;
    static constexpr std::uint64_t k_max_window = std::uint64_t{64} << 20;
    std::uint64_t hashed_from = 0;

    // Hash thread (resume): hashes piece i of job (or, while the blob is
    // still the old blob's, checks that it is and keeps it).
    void hash_resumed(const std::shared_ptr<Job>& job, std::size_t i) {
        Piece& p = job->pieces[i];
        if (same) {
            while (next_old < old_checkpoints.size() &&
                   old_checkpoints[next_old].blob_offset < blob_size) {
                ++next_old;
            }
            if (next_old < old_checkpoints.size() &&
                old_checkpoints[next_old].blob_offset == blob_size &&
                old_checkpoints[next_old].tar_offset == tar_pos) {
                passed = &old_checkpoints[next_old++];
                // The pieces before it will not be hashed: let them go.
                std::shared_ptr<Job> cur = window.back();
                window.assign(1, cur);
                window_first = i;
                window_bytes = 0;
            }
            window_bytes += p.out_size();
            const char* old_bytes = old_map.data() + blob_size;
            bool equal =
                blob_size + p.out_size() <= old_map.size() &&
                (p.mapped == old_bytes || std::memcmp(p.out_data(), old_bytes, p.out_size()) == 0);
            // Equal, and no more than k_max_window bytes kept: a previous
            // layer whose checkpoints are far apart (or never at this
            // writer's piece boundaries) costs memory only up to there.
            if (equal && window_bytes <= k_max_window) {
                tar_pos += p.tar_size;
                return;
            }
            hash_window(job.get(), i);
        }
        blob_hasher.update(p.out_data(), p.out_size());
        tar_pos += p.tar_size;
    }

    // Hash thread: the checkpoint piece p, at blob_size, completed with the
    // blob's hash state there. While the blob is still the old one's (not
    // hashed), that state is the old checkpoint's at the same place, if
    // there is one.
    void complete_checkpoint(const Piece& p) {
        if (!resume || !same) {
            checkpoints.push_back(HashCheckpoint{p.tar_offset, blob_size, {}, blob_hasher.state()});
            return;
        }
        auto it = std::lower_bound(
            old_checkpoints.begin(), old_checkpoints.end(), blob_size,
            [](const HashCheckpoint& c, std::uint64_t off) { return c.blob_offset < off; });
        if (it != old_checkpoints.end() && it->blob_offset == blob_size &&
            it->tar_offset == p.tar_offset) {
            checkpoints.push_back(
                HashCheckpoint{p.tar_offset, blob_size, {}, it->blob_state});
        }
    }

    // The blob stops being the old blob's at piece `stop` of job `upto`
    // (nullptr: at the end): the blob's hash from the last checkpoint passed
    // (or from the start) over the window's pieces before it.
    void hash_window(const Job* upto, std::size_t stop) {
        if (passed != nullptr) {
            blob_hasher = ResumableSha256::resume(passed->blob_state);
            hashed_from = passed->blob_offset;
        }
        for (std::size_t w = 0; w < window.size(); ++w) {
            Job* j = window[w].get();
            std::size_t first = w == 0 ? window_first : 0;
            std::size_t end = j == upto ? stop : j->pieces.size();
            for (std::size_t k = first; k < end; ++k) {
                const Piece& q = j->pieces[k];
                blob_hasher.update(q.out_data(), q.out_size());
            }
            if (j == upto) {
                break;
            }
        }
        window.clear();
        same = false;
    }

    // Hash thread only (read by finish() after join).
    ResumableSha256 blob_hasher;
    std::uint64_t blob_size = 0;
    std::uint64_t write_started = 0; // writeback asked for [0, write_started)
    DigestHasher file_hasher;
    std::uint64_t reused_bytes = 0, reused_files = 0, reused_headers = 0;
    bool file_all_reused = true;
    // Where each content piece went, and each file's digest: applied to the
    // TOC by finish() after the threads are joined (the calling thread keeps
    // appending to the TOC meanwhile, so the hash thread never touches it).
    struct Placed {
        std::size_t entry;
        std::uint64_t offset, end_offset;
    };
    std::vector<Placed> placed;
    std::vector<std::pair<std::size_t, std::string>> file_digests;

    void record_error(std::exception_ptr e) {
        std::lock_guard lk(mu);
        if (!error) {
            error = e;
        }
        stop = true;
        cv_work.notify_all();
        cv_done.notify_all();
        cv_room.notify_all();
        cv_hash.notify_all();
    }

    void rethrow_if_failed() {
        std::lock_guard lk(mu);
        if (error) {
            std::rethrow_exception(error);
        }
    }

    void run_worker() noexcept {
        try {
            CCtx c;
            DCtx d;
            if (ZSTD_isError(ZSTD_CCtx_setParameter(c.c, ZSTD_c_compressionLevel, level)) ||
                ZSTD_isError(ZSTD_CCtx_setParameter(c.c, ZSTD_c_checksumFlag, 1))) {
                throw Error("zstd: cannot set the compression level " + std::to_string(level));
            }
            std::vector<char> scratch;
            while (true) {
                std::shared_ptr<Job> job;
                {
                    std::unique_lock lk(mu);
                    cv_work.wait(lk, [&] { return stop || closing || !queue.empty(); });
                    if (stop || queue.empty()) {
                        return;
                    }
                    job = std::move(queue.front());
                    queue.pop_front();
                }
                for (Piece& p : job->pieces) {
                    if (p.mapped != nullptr) {
                        p.reused = true;
                        continue;
                    }
                    if (!p.old_header.empty() &&
                        frames_equal(d.c, p.old_header, p.input, scratch)) {
                        p.output.assign(p.old_header);
                        p.reused = true;
                        give(p.input);
                        continue;
                    }
                    if (!p.old_frames.empty() &&
                        frames_equal(d.c,
                                     std::string_view(p.old_frames.data(), p.old_frames.size()),
                                     p.input, scratch)) {
                        p.output = std::move(p.old_frames);
                        p.reused = true;
                        continue;
                    }
                    give(p.old_frames);
                    p.output = take(ZSTD_compressBound(p.input.size()));
                    std::size_t n = ZSTD_compress2(c.c, p.output.data(), p.output.size(),
                                                   p.input.data(), p.input.size());
                    if (ZSTD_isError(n)) {
                        throw Error(std::string("zstd: ") + ZSTD_getErrorName(n));
                    }
                    p.output.shrink(n);
                    if (!p.content) {
                        give(p.input); // header bytes are not needed past here
                    }
                }
                std::lock_guard lk(mu);
                job->done = true;
                cv_done.notify_all();
            }
        } catch (...) {
            record_error(std::current_exception());
        }
    }

    void run_output() noexcept {
        try {
            std::uint64_t out_size = 0;
            while (true) {
                std::shared_ptr<Job> job;
                {
                    std::unique_lock lk(mu);
                    cv_done.wait(lk, [&] {
                        return stop || (!pending.empty() && pending.front()->done) ||
                               (closing && pending.empty());
                    });
                    if (stop || pending.empty()) {
                        output_done = true;
                        cv_hash.notify_all();
                        return;
                    }
                    job = std::move(pending.front());
                    pending.pop_front();
                }
                read_linked(*job);
                // The job's frames in one system call (a job holds hundreds
                // of small files' frames).
                write_pieces(job->pieces);
                // Start the writeback of what is written so far, so that
                // the blob's fsync (the store's) finds little left to
                // write. Errors (a pipe, a filesystem without it) are of no
                // consequence.
                for (const Piece& p : job->pieces) {
                    out_size += p.out_size();
                }
                if (opts.start_writeback && out_size - write_started >= (8 << 20)) {
                    ::sync_file_range(out_fd, static_cast<off_t>(write_started),
                                      static_cast<off_t>(out_size - write_started),
                                      SYNC_FILE_RANGE_WRITE);
                    write_started = out_size;
                }
                std::lock_guard lk(mu);
                written.push_back(std::move(job));
                cv_hash.notify_all();
            }
        } catch (...) {
            record_error(std::current_exception());
            std::lock_guard lk(mu);
            output_done = true;
            cv_hash.notify_all();
        }
    }

    // Hash thread: the written jobs in order: both hashes (or the check
    // that the blob is still the old one's), the TOC offsets, the files'
    // digests; then the buffers go back to the pool.
    void run_hash() noexcept {
        try {
            while (true) {
                std::shared_ptr<Job> job;
                {
                    std::unique_lock lk(mu);
                    cv_hash.wait(lk, [&] { return stop || !written.empty() || output_done; });
                    if (stop || written.empty()) {
                        return;
                    }
                    job = std::move(written.front());
                    written.pop_front();
                    in_flight_owned -= job->owned;
                    cv_room.notify_all();
                }
                if (resume && same) {
                    window.push_back(job);
                }
                for (std::size_t i = 0; i < job->pieces.size(); ++i) {
                    Piece& p = job->pieces[i];
                    std::uint64_t start = blob_size;
                    if (p.checkpoint) {
                        complete_checkpoint(p);
                    }
                    if (resume) {
                        hash_resumed(job, i);
                    } else {
                        blob_hasher.update(p.out_data(), p.out_size());
                    }
                    blob_size += p.out_size();
                    // While the blob is the old one's, the window keeps its
                    // pieces' bytes for hashing.
                    const bool keep = resume && same;
                    if (!p.content) {
                        reused_headers += p.reused ? 1 : 0;
                        if (!keep) {
                            give(p.output);
                            give(p.input);
                        }
                        continue;
                    }
                    placed.push_back(Placed{p.entry, start, blob_size});
                    if (p.first_chunk) {
                        file_hasher = DigestHasher();
                        file_all_reused = true;
                    }
                    if (p.mapped == nullptr) {
                        file_hasher.update(p.input.data(), p.input.size());
                    }
                    file_all_reused = file_all_reused && p.reused;
                    if (p.reused) {
                        reused_bytes += p.tar_size;
                    }
                    if (!keep) {
                        give(p.output);
                        give(p.input);
                    }
                    if (p.last_chunk) {
                        file_digests.emplace_back(p.reg, p.mapped != nullptr
                                                             ? std::move(p.known_digest)
                                                             : file_hasher.finish().str());
                        if (file_all_reused) {
                            ++reused_files;
                        }
                    }
                }
                drop_old_behind(*job);
                std::size_t read = job->linked.size();
                if (read > 0) {
                    if (!(resume && same)) {
                        give_linked(job->linked);
                    }
                    std::lock_guard lk(mu);
                    linked_buffered -= read;
                    cv_room.notify_all();
                }
            }
        } catch (...) {
            record_error(std::current_exception());
        }
    }

    // Output thread: the job's linked frames read from the old blob into
    // job.linked (frames close together in one read), and each piece's
    // `read` pointed there. Through the blob's mapping instead, the write
    // and the blob's hash cost 3x more here (a virtual machine's page
    // walks: 0.17 s against 0.06 s to write 280 MB, 0.30 s against 0.20 s
    // to hash it). Waits while k_max_linked bytes read are not hashed yet.
    static constexpr std::uint64_t k_read_gap = 64 << 10;
    static constexpr std::size_t k_max_linked = 8 << 20;
    std::size_t linked_buffered = 0; // mu: read by the output thread, not yet hashed
    void read_linked(Job& job) {
        if (old_map.data() == nullptr) {
            return;
        }
        struct Run {
            std::uint64_t lo, hi;
            std::size_t at;
        };
        std::vector<Run> runs;
        std::vector<std::size_t> run_of(job.pieces.size());
        std::size_t total = 0;
        for (std::size_t i = 0; i < job.pieces.size(); ++i) {
            const Piece& p = job.pieces[i];
            if (p.mapped == nullptr) {
                continue;
            }
            auto off = static_cast<std::uint64_t>(p.mapped - old_map.data());
            if (!runs.empty() && off >= runs.back().hi && off - runs.back().hi <= k_read_gap) {
                total += static_cast<std::size_t>(off + p.mapped_size - runs.back().hi);
                runs.back().hi = off + p.mapped_size;
            } else {
                runs.push_back(Run{off, off + p.mapped_size, total});
                total += p.mapped_size;
            }
            run_of[i] = runs.size() - 1;
        }
        if (total == 0) {
            return;
        }
        {
            std::unique_lock lk(mu);
            cv_room.wait(lk, [&] {
                return stop || linked_buffered == 0 || linked_buffered + total <= k_max_linked;
            });
            if (stop) {
                return;
            }
            linked_buffered += total;
        }
        job.linked = take_linked(total);
        for (const Run& r : runs) {
            pread_all(old_fd, job.linked.data() + r.at, static_cast<std::size_t>(r.hi - r.lo), r.lo,
                      old_what);
        }
        for (std::size_t i = 0; i < job.pieces.size(); ++i) {
            Piece& p = job.pieces[i];
            if (p.mapped != nullptr) {
                const Run& r = runs[run_of[i]];
                p.read = job.linked.data() + r.at +
                         (static_cast<std::uint64_t>(p.mapped - old_map.data()) - r.lo);
            }
        }
    }
    // Buffers for read_linked, kept for the next jobs (pool_mu).
    std::vector<Buf> linked_pool;
    Buf take_linked(std::size_t n) {
        Buf b;
        {
            std::lock_guard lk(pool_mu);
            if (!linked_pool.empty()) {
                b = std::move(linked_pool.back());
                linked_pool.pop_back();
            }
        }
        b.alloc(n);
        return b;
    }
    void give_linked(Buf& b) {
        std::lock_guard lk(pool_mu);
        if (linked_pool.size() < 64) {
            linked_pool.push_back(std::move(b));
        }
        b.reset();
    }

    // Hash thread, after a job: the old blob's pages that the written and
    // hashed jobs took their linked frames from are given back (unmapped,
    // dropped from the page cache), every k_drop_step bytes. The old blob is
    // read once, in order, to make the new one; keeping both cached would
    // make every page of the new blob's page cache a fresh page of memory,
    // which costs more than the copy into it (several times more in a
    // virtual machine whose free memory goes back to the host). Freed this
    // way, the new blob's writes take the old blob's pages. Not while the
    // resume window may still hash those bytes.
    static constexpr std::uint64_t k_drop_step = std::uint64_t{8} << 20;
    std::uint64_t old_dropped = 0; // hash thread: the old blob given back below this
    std::uint64_t old_taken = 0;   // hash thread: the end of the old frames taken so far
    void drop_old_behind(const Job& job) {
        if (old_map.data() == nullptr) {
            return;
        }
        for (const Piece& p : job.pieces) {
            if (p.mapped != nullptr) {
                old_taken = std::max<std::uint64_t>(
                    old_taken,
                    static_cast<std::uint64_t>(p.mapped - old_map.data()) + p.mapped_size);
            }
        }
        std::uint64_t upto = old_taken;
        if (tar_hash.frames_pending() > 0) {
            // Not past the frames the tar's hash thread decodes behind.
            const char* done = tar_hash.frames_done();
            upto = done == nullptr ? 0
                                   : std::min<std::uint64_t>(
                                         upto, static_cast<std::uint64_t>(done - old_map.data()));
        }
        if ((resume && same) || upto < old_dropped + k_drop_step) {
            return;
        }
        old_map.drop(old_fd, old_dropped, upto - old_dropped);
        old_dropped = upto;
    }

    // Output thread: writes the pieces' output in order, with writev.
    void write_pieces(const std::vector<Piece>& pieces) {
        std::vector<struct iovec> iov;
        iov.reserve(std::min<std::size_t>(pieces.size(), k_iov_max));
        std::size_t i = 0;
        while (i < pieces.size()) {
            iov.clear();
            for (; i < pieces.size() && iov.size() < k_iov_max; ++i) {
                if (pieces[i].out_size() != 0) {
                    iov.push_back({const_cast<char*>(pieces[i].out_data()), pieces[i].out_size()});
                }
            }
            std::size_t k = 0;
            while (k < iov.size()) {
                ssize_t n = ::writev(out_fd, iov.data() + k, static_cast<int>(iov.size() - k));
                if (n < 0) {
                    if (errno == EINTR) {
                        continue;
                    }
                    throw SysError("write",
                                   opts.out_name.empty() ? fs::fd_name(out_fd) : opts.out_name,
                                   errno);
                }
                if (n == 0) {
                    throw Error("write " + opts.out_name + ": no progress");
                }
                auto left = static_cast<std::size_t>(n);
                while (k < iov.size() && left >= iov[k].iov_len) {
                    left -= iov[k].iov_len;
                    ++k;
                }
                if (left > 0) {
                    iov[k].iov_base = static_cast<char*>(iov[k].iov_base) + left;
                    iov[k].iov_len -= left;
                }
            }
        }
    }

    // Calling thread: hands the gathered job to the workers, waiting while
    // the jobs in flight hold max_pending jobs' worth of buffers. Jobs of
    // linked files' frames hold none: up to k_max_jobs of them may wait for
    // the output, while this thread goes on over the files after them.
    static constexpr std::size_t k_max_jobs = 4096;
    // Pieces a job has room for at first (a job of small files has hundreds).
    static constexpr std::size_t k_job_pieces = 256;
    void submit() {
        if (cur.pieces.empty()) {
            return;
        }
        auto job = std::make_shared<Job>(std::move(cur));
        cur = Job{};
        cur.pieces.reserve(k_job_pieces);
        std::unique_lock lk(mu);
        cv_room.wait(lk, [&] {
            std::size_t jobs = pending.size() + written.size();
            return stop || jobs == 0 ||
                   (jobs < k_max_jobs &&
                    in_flight_owned + job->owned <= max_pending * k_job_bytes);
        });
        if (error) {
            std::rethrow_exception(error);
        }
        in_flight_owned += job->owned;
        queue.push_back(job);
        pending.push_back(job);
        cv_work.notify_one();
    }

    void add_piece(Piece p) {
        if (p.tar_size == 0) {
            p.tar_size = p.input.size();
        }
        std::size_t owned = p.input.size() + p.old_frames.size();
        cur.owned += owned;
        cur.bytes += owned + p.mapped_size;
        cur.pieces.push_back(std::move(p));
        if (cur.bytes >= k_job_bytes) {
            submit();
        }
    }

    // old: the previous layer's frames that held the same run there, when
    // the run sits between two linked files that were neighbours there too
    // (the worker compares, and takes them when they decode to the run).
    void flush_header_run(std::string_view old = {}) {
        if (header_run.empty()) {
            return;
        }
        Piece p;
        p.input.assign(header_run);
        p.old_header = old;
        header_run.clear();
        add_piece(std::move(p));
    }
    // Calling thread: where the last content piece's frames end in the old
    // blob, when that piece is a linked file's (UINT64_MAX otherwise).
    std::uint64_t last_old_end = UINT64_MAX;
    static constexpr std::uint64_t k_max_old_header = 64 << 10;

    // The previous layer's frames for this chunk of `name`, or "".
    Buf old_frames_for(std::string_view name, std::uint64_t size, std::uint64_t chunk_offset,
                       std::uint64_t chunk_size) {
        if (old_fd < 0) {
            return {};
        }
        auto it = old_files.find(name);
        if (it == old_files.end() || it->second.size != size) {
            return {};
        }
        for (const ChunkedEntry* e : it->second.pieces) {
            const ChunkedEntry& c = *e;
            if (c.chunk_offset == chunk_offset && c.chunk_size == chunk_size) {
                std::uint64_t len = c.end_offset - c.offset;
                // Incompressible data grows a little in zstd; anything far
                // larger is not worth reading.
                if (len == 0 || len > chunk_size + chunk_size / 8 + 4096) {
                    return {};
                }
                Buf frames = take(static_cast<std::size_t>(len));
                if (old_map.data() != nullptr && c.end_offset <= old_map.size()) {
                    std::memcpy(frames.data(), old_map.data() + c.offset, frames.size());
                } else {
                    pread_all(old_fd, frames.data(), frames.size(), c.offset, old_what);
                }
                return frames;
            }
        }
        return {};
    }

    // The content pieces of a linked file of `size` bytes: the previous
    // layer's frames for `name`, cut where this writer cuts. Empty when the
    // previous layer cannot give them all (no mapping, another size or cut,
    // no digest): the caller reads the file instead. The frames are decoded
    // (for the diff ID) as the tar is rendered: see hash_linked.
    std::vector<Piece> linked_pieces(std::string_view name, std::uint64_t size) {
        std::vector<Piece> out;
        if (old_map.data() == nullptr) {
            return out;
        }
        auto it = old_files.find(name);
        if (it == old_files.end() || it->second.size != size || it->second.digest.empty()) {
            return out;
        }
        std::uint64_t chunk_offset = 0;
        for (const ChunkedEntry* e : it->second.pieces) {
            const ChunkedEntry& c = *e;
            std::uint64_t n = std::min<std::uint64_t>(size - chunk_offset, k_chunked_chunk_size);
            std::uint64_t len = c.end_offset - c.offset;
            if (chunk_offset >= size || c.chunk_offset != chunk_offset || c.chunk_size != n ||
                len == 0 || c.end_offset > old_map.size() || len > n + n / 8 + 4096) {
                return {};
            }
            Piece p;
            p.mapped = old_map.data() + c.offset;
            p.mapped_size = static_cast<std::size_t>(len);
            p.tar_size = static_cast<std::size_t>(n);
            out.push_back(std::move(p));
            chunk_offset += n;
        }
        if (chunk_offset != size) {
            return {};
        }
        out.back().known_digest = std::string(it->second.digest);
        return out;
    }

    // Calling thread: decodes a linked chunk's frames, a block at a time,
    // straight into the tar's hash. Throws LinkedFramesDamaged when they do
    // not decode, with their checksums, to exactly the chunk's size. A
    // small chunk's frames are handed to the hash thread instead (which
    // throws the same from finish()): big ones are decoded here, where the
    // hash thread, busy hashing them, would wait.
    static constexpr std::size_t k_linked_on_hash_thread = 64 << 10;
    void hash_linked(const Piece& p, const std::string& path) {
        // Small files' frames, and frames that hardly compress (mostly raw
        // blocks, which the hash thread hashes where they lie in the old
        // blob: frame_content_runs), go to the tar's hash thread: small
        // files leave it idle while this thread walks them, and this thread
        // goes on to the next files while it hashes big ones. Other frames
        // are decoded here, beside the hash thread's SHA-256.
        if (p.tar_size <= k_linked_on_hash_thread ||
            p.mapped_size + p.tar_size / 16 >= p.tar_size) {
            tar_hash.frames(p.mapped, p.mapped_size, p.tar_size, &old_what, path);
            // The renderer only counts bytes it is told are hashed already
            // (any bytes do).
            static const char zeros[k_linked_on_hash_thread] = {};
            prehashed = true;
            for (std::size_t left = p.tar_size; left > 0;) {
                std::size_t n = std::min(left, sizeof zeros);
                renderer->data(zeros, n);
                left -= n;
            }
            prehashed = false;
            return;
        }
        std::optional<std::uint64_t> n = decode_runs(
            linked_dctx.c, p.mapped, p.mapped_size, p.tar_size,
            [&](std::size_t* room) { return tar_hash.space(room); },
            [&](const char* at, std::size_t k) {
                prehashed = true;
                renderer->data(at, k);
                prehashed = false;
                tar_hash.commit(k);
                return true;
            });
        if (n != p.tar_size) {
            throw linked_frames_damaged(old_what, path);
        }
    }

    void add_entry(const TarEntry& entry, const std::function<std::size_t(void*, std::size_t)>& src,
                   std::vector<Piece>* linked = nullptr) {
        if (finished) {
            throw Error("zstd:chunked writer: add after finish");
        }
        rethrow_if_failed();
        ChunkedEntry e;
        e.type = std::string(type_name(entry.type));
        e.name = entry.path;
        e.link_name = entry.linkname;
        e.mode = entry.mode & 07777;
        e.uid = entry.uid;
        e.gid = entry.gid;
        e.size = entry.type == EntryType::file ? entry.size : 0;
        e.mtime_sec = entry.mtime_sec;
        e.mtime_nsec = entry.mtime_nsec;
        if (opts.clamp_mtime && (e.mtime_sec > *opts.clamp_mtime ||
                                 (e.mtime_sec == *opts.clamp_mtime && e.mtime_nsec > 0))) {
            e.mtime_sec = *opts.clamp_mtime;
            e.mtime_nsec = 0;
        }
        e.devmajor = entry.devmajor;
        e.devminor = entry.devminor;
        e.xattrs = entry.xattrs;
        auto utf8 = [](const std::string& x) {
            return text::find_invalid_utf8_or_nul(x) == std::string::npos;
        };
        if (toc_faithful &&
            (!utf8(e.name) || !utf8(e.link_name) ||
             !std::all_of(e.xattrs.begin(), e.xattrs.end(),
                          [&](const auto& kv) { return utf8(kv.first); }))) {
            toc_faithful = false;
        }
        renderer->header(entry);
        std::size_t reg_index = toc.size();
        const bool has_content = e.type == "reg" && e.size != 0;
        const std::uint64_t size = e.size;
        toc.push_back(std::move(e));
        if (!has_content) {
            return;
        }
        // The header run before a linked file that followed the same linked
        // file in the previous layer: the previous layer's frames between
        // the two may hold it (they do unless a header in it changed).
        std::string_view old_run;
        if (linked != nullptr && !linked->empty() && linked->front().mapped != nullptr &&
            last_old_end != UINT64_MAX) {
            auto at = static_cast<std::uint64_t>(linked->front().mapped - old_map.data());
            if (at > last_old_end && at - last_old_end <= k_max_old_header) {
                old_run = std::string_view(old_map.data() + last_old_end,
                                           static_cast<std::size_t>(at - last_old_end));
            }
        }
        flush_header_run(old_run);
        last_old_end = UINT64_MAX;
        if (linked != nullptr && !linked->empty() && linked->back().mapped != nullptr) {
            last_old_end = static_cast<std::uint64_t>(linked->back().mapped - old_map.data()) +
                           linked->back().mapped_size;
        }
        std::uint64_t left = size;
        std::uint64_t chunk_offset = 0;
        std::size_t next_linked = 0;
        while (left > 0) {
            std::uint64_t n = std::min<std::uint64_t>(left, k_chunked_chunk_size);
            Piece p;
            if (linked != nullptr) {
                p = std::move((*linked)[next_linked++]);
            } else {
                p.input = take(static_cast<std::size_t>(n));
                p.tar_size = static_cast<std::size_t>(n);
            }
            p.content = true;
            std::size_t got = linked != nullptr ? static_cast<std::size_t>(n) : 0;
            while (got < n) {
                std::size_t r = src(p.input.data() + got, static_cast<std::size_t>(n) - got);
                if (r == 0) {
                    throw Error("writing tar entry " + entry.path +
                                ": file shrank while being read (" +
                                std::to_string(size - left + got) + " of " + std::to_string(size) +
                                " bytes)");
                }
                got += r;
            }
            if (diff_size - last_checkpoint_tar >= k_checkpoint_interval) {
                // diff_size is where this piece starts in the tar.
                p.checkpoint = true;
                p.tar_offset = diff_size;
                tar_hash.mark();
                last_checkpoint_tar = diff_size;
            }
            if (p.mapped != nullptr) {
                hash_linked(p, entry.path); // the frames are written as they are
            } else {
                renderer->data(p.input.data(), p.input.size());
            }
            p.reg = reg_index;
            if (chunk_offset == 0) {
                p.entry = reg_index;
                p.first_chunk = true;
                toc[reg_index].chunk_offset = 0;
                toc[reg_index].chunk_size = n;
            } else {
                ChunkedEntry c;
                c.type = "chunk";
                c.name = toc[reg_index].name;
                c.chunk_offset = chunk_offset;
                c.chunk_size = n;
                p.entry = toc.size();
                toc.push_back(std::move(c));
            }
            if (linked == nullptr) {
                p.old_frames = old_frames_for(toc[reg_index].name, size, chunk_offset, n);
            }
            left -= n;
            chunk_offset += n;
            p.last_chunk = left == 0;
            add_piece(std::move(p));
        }
    }

    // The TOC, as containers/storage writes it, and the footer, after the
    // frames (the threads joined); info gets where they are.
    // Appends TOC entry i's JSON object, with the keys in the order
    // nlohmann's dump() of the same document gives them.
    void render_toc_entry(std::string& json, std::size_t i) const {
        const ChunkedEntry& e = toc[i];
        json += R"({"type":)";
        append_json_string(json, e.type);
        json += R"(,"name":)";
        append_json_string(json, e.name);
        auto num = [&](const char* key, std::uint64_t v) {
            json += ",\"";
            json += key;
            json += "\":";
            char digits[24];
            auto r = std::to_chars(digits, digits + sizeof digits, v);
            json.append(digits, static_cast<std::size_t>(r.ptr - digits));
        };
        auto str = [&](const char* key, std::string_view v) {
            json += ",\"";
            json += key;
            json += "\":";
            append_json_string(json, v);
        };
        if (e.type == "chunk") {
            num("offset", e.offset);
            num("endOffset", e.end_offset);
            num("chunkSize", e.chunk_size);
            num("chunkOffset", e.chunk_offset);
            json += '}';
            return;
        }
        if (!e.link_name.empty()) {
            str("linkName", e.link_name);
        }
        if (e.mode != 0) {
            num("mode", e.mode);
        }
        if (e.size != 0) {
            num("size", e.size);
        }
        if (e.uid != 0) {
            num("uid", e.uid);
        }
        if (e.gid != 0) {
            num("gid", e.gid);
        }
        std::size_t before_time = json.size();
        json += R"(,"modtime":)";
        if (!append_json_time(json, e.mtime_sec, e.mtime_nsec)) {
            json.resize(before_time);
        }
        if (e.devmajor != 0) {
            num("devMajor", e.devmajor);
        }
        if (e.devminor != 0) {
            num("devMinor", e.devminor);
        }
        if (!e.xattrs.empty()) {
            json += R"(,"xattrs":{)";
            bool first = true;
            for (const auto& [k, v] : e.xattrs) {
                if (!first) {
                    json += ',';
                }
                first = false;
                append_json_string(json, k);
                json += ':';
                append_json_string(json, base64_encode(v));
            }
            json += '}';
        }
        if (!e.digest.empty()) {
            str("digest", e.digest);
        }
        if (e.type == "reg" && e.size != 0) {
            num("offset", e.offset);
            // A reg entry's endOffset is the end of the file's last chunk.
            std::uint64_t end = e.end_offset;
            for (std::size_t k = i + 1; k < toc.size() && toc[k].type == "chunk"; ++k) {
                end = toc[k].end_offset;
            }
            num("endOffset", end);
            if (e.chunk_size != e.size) {
                num("chunkSize", e.chunk_size);
            }
        }
        json += '}';
    }

    // The TOC, written by hand as nlohmann's dump() writes the same document
    // (ordered keys, no spaces, UTF-8 as is; through a JSON tree a TOC of
    // 40,000 entries took 40 ms, after the last frame), a MiB at a time into
    // one zstd frame, compressed on a thread of its own while the next MiB is
    // rendered (Debian's static libzstd has no worker threads of its own).
    void write_toc(ChunkedLayerInfo& info) {
        constexpr std::size_t k_piece = std::size_t{1} << 20;
        CCtx cc;
        if (std::size_t r = ZSTD_CCtx_setParameter(cc.c, ZSTD_c_compressionLevel, level);
            ZSTD_isError(r)) {
            throw Error(std::string("zstd: ") + ZSTD_getErrorName(r));
        }
        // The skippable frame's 8-byte header (its size patched in below),
        // the compressed TOC, the footer.
        std::string tail(8, '\0');
        tail.reserve(toc.size() * 24 + 4096);
        std::uint64_t raw_size = 0;
        // Rendered pieces wait in `full` (at most two); compressed ones go
        // back through `spare` to be rendered into again.
        std::mutex qmu;
        std::condition_variable qcv;
        std::deque<std::string> full, spare;
        bool rendered = false;
        std::exception_ptr failed;
        // Started with the second piece: a TOC of one piece (under a MiB of
        // JSON, most layers) is compressed on this thread.
        std::thread compressor;
        bool threaded = false;
        auto compress_pieces = [&] {
            try {
                Buf out = take(ZSTD_CStreamOutSize());
                for (;;) {
                    std::string piece;
                    bool last = false;
                    {
                        std::unique_lock lk(qmu);
                        qcv.wait(lk, [&] { return !full.empty() || rendered; });
                        if (full.empty()) {
                            break;
                        }
                        piece = std::move(full.front());
                        full.pop_front();
                        last = rendered && full.empty();
                    }
                    const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
                    ZSTD_inBuffer in{piece.data(), piece.size(), 0};
                    std::size_t left = 0;
                    do {
                        ZSTD_outBuffer o{out.data(), out.size(), 0};
                        left = ZSTD_compressStream2(cc.c, &o, &in, mode);
                        if (ZSTD_isError(left)) {
                            throw Error(std::string("zstd: ") + ZSTD_getErrorName(left));
                        }
                        tail.append(out.data(), o.pos);
                    } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
                    raw_size += piece.size();
                    piece.clear();
                    std::lock_guard lk(qmu);
                    spare.push_back(std::move(piece));
                    qcv.notify_all();
                    if (last) {
                        break;
                    }
                }
                give(out);
            } catch (...) {
                std::lock_guard lk(qmu);
                failed = std::current_exception();
                qcv.notify_all();
            }
        };
        // Hands the piece over (waiting while two are queued) and takes an
        // empty one; done: the last piece.
        std::string json;
        auto hand_over = [&](bool done) {
            std::unique_lock lk(qmu);
            qcv.wait(lk, [&] { return full.size() < 2 || failed; });
            full.push_back(std::move(json));
            rendered = done;
            if (!spare.empty()) {
                json = std::move(spare.front());
                spare.pop_front();
            } else {
                json = std::string();
            }
            qcv.notify_all();
            if (!done && !threaded) {
                lk.unlock();
                compressor = std::thread(compress_pieces);
                threaded = true;
            }
            return !failed;
        };
        struct Join {
            std::thread& t;
            std::mutex& mu;
            std::condition_variable& cv;
            bool& rendered;
            ~Join() {
                {
                    std::lock_guard lk(mu);
                    rendered = true;
                    cv.notify_all();
                }
                if (t.joinable()) {
                    t.join();
                }
            }
        };
        {
            Join join{compressor, qmu, qcv, rendered};
            json.reserve(k_piece + 64 * 1024);
            json += R"({"version":1,"entries":[)";
            for (std::size_t i = 0; i < toc.size(); ++i) {
                if (i > 0) {
                    json += ',';
                }
                render_toc_entry(json, i);
                if (json.size() >= k_piece) {
                    if (!hand_over(false)) {
                        break;
                    }
                    json.reserve(k_piece + 64 * 1024);
                }
            }
            json += "]}";
            hand_over(true);
        }
        if (!threaded && !failed) {
            compress_pieces(); // one piece: here
        }
        if (failed) {
            std::rethrow_exception(failed);
        }
        const std::size_t toc_bytes = tail.size() - 8;
        std::string head;
        put_le32(head, k_skippable_magic);
        put_le32(head, static_cast<std::uint32_t>(toc_bytes));
        tail.replace(0, 8, head);
        info.toc_offset = blob_size + 8;
        info.toc_size = toc_bytes;
        info.toc_raw_size = raw_size;
        info.toc_digest = Digest::of(std::string_view(tail).substr(8)).str();
        put_le32(tail, k_skippable_magic);
        put_le32(tail, k_footer_data);
        put_le64(tail, info.toc_offset);
        put_le64(tail, info.toc_size);
        put_le64(tail, info.toc_raw_size);
        put_le64(tail, 1);
        put_le64(tail, 0);
        put_le64(tail, 0);
        put_le64(tail, 0);
        tail.append(k_footer_magic, 8);
        fs::write_all(out_fd, opts.out_name, tail.data(), tail.size());
        blob_hasher.update(tail.data(), tail.size());
        blob_size += tail.size();
    }

    void start_threads() {
        unsigned t = opts.threads > 0 ? static_cast<unsigned>(opts.threads)
                                      : std::max(1u, std::thread::hardware_concurrency());
        max_pending = 2 * t + 2;
        for (unsigned i = 0; i < t; ++i) {
            workers.emplace_back([this] { run_worker(); });
        }
        output = std::thread([this] { run_output(); });
        hasher = std::thread([this] { run_hash(); });
    }

    void join_threads() {
        {
            std::lock_guard lk(mu);
            closing = true;
            cv_work.notify_all();
            cv_done.notify_all();
        }
        for (auto& w : workers) {
            if (w.joinable()) {
                w.join();
            }
        }
        if (output.joinable()) {
            output.join();
        }
        if (hasher.joinable()) {
            hasher.join();
        }
    }
};

ChunkedWriter::ChunkedWriter(int out_fd, Options opts) : m_impl(std::make_unique<Impl>()) {
    Impl& impl = *m_impl;
    impl.opts = std::move(opts);
    impl.out_fd = out_fd;
    if (impl.opts.level != 0) {
        impl.level = impl.opts.level;
    }
    if (impl.opts.out_name.empty()) {
        impl.opts.out_name = "/proc/self/fd/" + std::to_string(out_fd);
    }
    Impl* p = &impl;
    impl.renderer = std::make_unique<TarRenderer>(
        [p](const void* data, std::size_t size, bool in_content) {
            if (!p->prehashed) {
                p->tar_hash.update(data, size);
            }
            p->diff_size += size;
            if (!in_content) {
                p->header_run.append(static_cast<const char*>(data), size);
            }
        },
        impl.opts.clamp_mtime);
    impl.start_threads();
}

ChunkedWriter::~ChunkedWriter() {
    if (m_impl) {
        {
            std::lock_guard lk(m_impl->mu);
            m_impl->stop = true;
        }
        m_impl->cv_room.notify_all();
        m_impl->join_threads();
    }
}

void ChunkedWriter::reuse_from(int old_blob_fd, const ChunkedToc& old_toc, std::string what,
                               std::vector<HashCheckpoint> checkpoints) {
    Impl& impl = *m_impl;
    if (impl.diff_size != 0) {
        throw Error("zstd:chunked writer: reuse_from after the first entry");
    }
    impl.old_fd = old_blob_fd;
    impl.old_map.map(old_blob_fd);
    if (impl.old_map.data() != nullptr) {
        impl.tar_hash.read_frames_from(old_blob_fd, impl.old_map.data());
    }
    // Going on from the old checkpoints compares the new blob with the
    // mapped old one; without a mapping, everything is hashed.
    impl.resume = impl.old_map.data() != nullptr && !checkpoints.empty();
    if (impl.resume) {
        impl.old_checkpoints = std::move(checkpoints);
    }
    impl.old_what = std::move(what);
    impl.old_files.clear();
    impl.old_files.reserve(old_toc.entries.size());
    // The new layer has about as many entries as the old one.
    impl.toc.reserve(old_toc.entries.size() + 16);
    for (const ChunkedEntry& e : old_toc.entries) {
        if (e.type == "reg" && e.size > 0) {
            auto& f = impl.old_files[e.name];
            f.size = e.size;
            f.digest = e.digest;
            f.pieces.assign(1, &e);
        } else if (e.type == "chunk") {
            auto it = impl.old_files.find(e.name);
            if (it != impl.old_files.end()) {
                it->second.pieces.push_back(&e);
            }
        }
    }
}

void ChunkedWriter::add(const TarEntry& entry, int content_fd) {
    if (entry.type == EntryType::file && entry.size > 0 && content_fd < 0) {
        throw Error("writing tar entry " + entry.path + ": no content given");
    }
    m_impl->add_entry(entry, [&](void* buf, std::size_t size) -> std::size_t {
        while (true) {
            ssize_t n = ::read(content_fd, buf, size);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw SysError("read", entry.path, errno);
            }
            return static_cast<std::size_t>(n);
        }
    });
}

bool ChunkedWriter::add_linked(const TarEntry& entry) {
    if (entry.type != EntryType::file || entry.size == 0) {
        return false;
    }
    std::vector<Piece> pieces = m_impl->linked_pieces(entry.path, entry.size);
    if (pieces.empty()) {
        return false;
    }
    m_impl->add_entry(
        entry, [](void*, std::size_t) -> std::size_t { return 0; }, &pieces);
    return true;
}

void ChunkedWriter::add_data(const TarEntry& entry, std::string_view content) {
    TarEntry e = entry;
    if (e.type == EntryType::file) {
        e.size = content.size();
    }
    std::size_t pos = 0;
    m_impl->add_entry(e, [&](void* buf, std::size_t size) -> std::size_t {
        std::size_t n = std::min(size, content.size() - pos);
        std::memcpy(buf, content.data() + pos, n);
        pos += n;
        return n;
    });
}

ChunkedLayerInfo ChunkedWriter::finish() {
    Impl& impl = *m_impl;
    if (impl.finished) {
        throw Error("zstd:chunked writer: finish called twice");
    }
    impl.finished = true;
    impl.renderer->finish();
    impl.flush_header_run();
    impl.submit();
    impl.join_threads();
    impl.rethrow_if_failed();
    if (impl.resume && impl.same) {
        // The whole blob so far is the old one's first bytes.
        impl.hash_window(nullptr, 0);
    }
    for (const auto& pl : impl.placed) {
        impl.toc[pl.entry].offset = pl.offset;
        impl.toc[pl.entry].end_offset = pl.end_offset;
    }
    for (auto& [reg, digest] : impl.file_digests) {
        impl.toc[reg].digest = std::move(digest);
    }
    ChunkedLayerInfo info;
    if (impl.toc_faithful) {
        impl.write_toc(info);
    }

    std::map<std::uint64_t, std::string> diff_states;
    info.digests.diff_id = Digest::from_hex(impl.tar_hash.finish(diff_states));
    info.digests.diff_size = impl.diff_size;
    info.digests.blob_digest = Digest::from_hex(impl.blob_hasher.finish_hex());
    info.digests.blob_size = impl.blob_size;
    info.reused_bytes = impl.reused_bytes;
    info.reused_files = impl.reused_files;
    info.reused_headers = impl.reused_headers;
    // The checkpoints' tar hash states, as the hash thread kept them (one
    // missing would be a checkpoint of no use: left out).
    for (auto& c : impl.checkpoints) {
        if (auto it = diff_states.find(c.tar_offset); it != diff_states.end()) {
            c.diff_state = std::move(it->second);
            info.checkpoints.push_back(std::move(c));
        }
    }
    info.hashed_from = impl.hashed_from;
    return info;
}

} // namespace strata::formats
