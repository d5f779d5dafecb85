// A strict check of the raw tar headers of a layer, run over the
// uncompressed stream in front of libarchive (which gives no access to the
// raw header and accepts what Go's archive/tar, Docker's reader, refuses).
// It follows Go's reader: header checksums, numeric fields (octal or
// base-256, never garbage), PAX records ("%d key=value\n", no NUL in
// path/linkpath/uname/gname values or other keys), PAX headers and GNU long
// names of at most 1 MiB, and only the entry types a layer can hold.
//
// TarReader feeds it every block it hands libarchive and, for each header
// libarchive returns, checks that an entry the check has seen starts at that
// offset: the two readers never disagree on where entries are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace strata::formats {

class TarHeaderCheck {
public:
    // PAX extended headers and GNU long names: at most this many bytes (as
    // Go's archive/tar, maxSpecialFileSize).
    static constexpr std::uint64_t k_max_special_size = 1 << 20;

    // name: the layer, for messages.
    explicit TarHeaderCheck(std::string name) : m_name(std::move(name)) {}

    // The next bytes of the uncompressed tar stream. Throws FormatError
    // naming the header's offset, its name and the last good entry.
    void feed(const char* data, std::size_t size);
    // libarchive returned an entry whose first header is at offset pos.
    void check_entry_start(std::uint64_t pos);

private:
    enum class State { header, special, sparse_ext, skip, done };

    void header_block();
    void sparse_ext_block();
    void special_done();
    void parse_pax(bool global);
    [[noreturn]] void fail(const std::string& what) const;

    std::string m_name;
    State m_state = State::header;
    std::uint64_t m_offset = 0;   // bytes fed so far
    std::uint64_t m_block_at = 0; // offset of the block being assembled
    char m_block[512];
    std::size_t m_block_len = 0;
    std::uint64_t m_skip = 0; // data and padding left to skip
    std::string m_special;    // PAX or long name data being collected
    std::uint64_t m_special_left = 0;
    std::uint64_t m_special_pad = 0;
    char m_special_type = 0;
    std::uint64_t m_data_after_ext = 0; // GNU sparse: data after the extension blocks
    // Prefix headers (PAX, long names) seen for the entry to come.
    bool m_in_entry = false;
    std::uint64_t m_entry_start = 0;
    bool m_pax_has_size = false;
    std::uint64_t m_pax_size = 0;
    std::string m_pax_path;
    std::string m_long_name;
    std::string m_header_name;          // of the header being checked
    std::string m_last_name;            // the last good entry
    std::deque<std::uint64_t> m_starts; // entries seen, not yet returned by libarchive
};

} // namespace strata::formats
