// Test fixtures for image archives: a tiny ustar writer that can produce
// what libarchive-based writers refuse to (absolute names, "../" names,
// escaping links), and a small real image (config + layers) on disk.
#pragma once

#include "formats/image_archive.hpp"
#include "formats/media_types.hpp"
#include "formats/oci.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <string>

namespace strata::test {

class TarBuilder {
public:
    TarBuilder& file(const std::string& name, const std::string& content, mode_t mode = 0644) {
        header(name, '0', content.size(), "", mode);
        m_out += content;
        m_out.append((512 - content.size() % 512) % 512, '\0');
        return *this;
    }
    TarBuilder& dir(const std::string& name) {
        header(name, '5', 0, "", 0755);
        return *this;
    }
    TarBuilder& symlink(const std::string& name, const std::string& target) {
        header(name, '2', 0, target, 0777);
        return *this;
    }
    TarBuilder& hardlink(const std::string& name, const std::string& target) {
        header(name, '1', 0, target, 0644);
        return *this;
    }
    TarBuilder& fifo(const std::string& name) {
        header(name, '6', 0, "", 0644);
        return *this;
    }
    std::string finish() const { return m_out + std::string(1024, '\0'); }

private:
    void header(const std::string& name, char type, std::size_t size, const std::string& link,
                mode_t mode) {
        REQUIRE(name.size() < 100);
        REQUIRE(link.size() < 100);
        char h[512] = {};
        std::memcpy(h, name.data(), name.size());
        std::snprintf(h + 100, 8, "%07o", static_cast<unsigned>(mode));
        std::snprintf(h + 108, 8, "%07o", 0u);
        std::snprintf(h + 116, 8, "%07o", 0u);
        std::snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(size));
        std::snprintf(h + 136, 12, "%011o", 0u);
        std::memset(h + 148, ' ', 8);
        h[156] = type;
        std::memcpy(h + 157, link.data(), link.size());
        std::memcpy(h + 257, "ustar", 6);
        std::memcpy(h + 263, "00", 2);
        unsigned sum = 0;
        for (unsigned char c : h) {
            sum += c;
        }
        std::snprintf(h + 148, 8, "%06o", sum);
        h[155] = ' ';
        m_out.append(h, 512);
    }
    std::string m_out;
};

inline std::string gzip(const std::string& data) {
    auto r = run_capture({"gzip", "-n", "-c"}, false, data);
    REQUIRE(r.status.success());
    return r.out;
}

// A two-layer image: layer 1 uncompressed, layer 2 gzip-compressed, written
// under dir.
struct SampleImage {
    std::string layer1_tar, layer2_tar;
    formats::ArchiveWriteImage image;
};

inline SampleImage sample_image(const std::string& dir,
                                const std::string& name = "example.com/app:1.0") {
    using namespace strata::formats;
    SampleImage s;
    s.layer1_tar = TarBuilder().dir("etc").file("etc/hello", "hello world\n").finish();
    s.layer2_tar = TarBuilder().file("etc/greeting", "hi\n").file("etc/.wh.hello", "").finish();
    std::string l2gz = gzip(s.layer2_tar);
    fs::write_file_atomic(dir + "/l1", s.layer1_tar);
    fs::write_file_atomic(dir + "/l2", l2gz);
    ImageConfig cfg;
    cfg.created = "2024-05-06T07:08:09Z";
    cfg.architecture = host_platform().architecture;
    cfg.os = "linux";
    cfg.config.env = {"PATH=/usr/bin:/bin"};
    cfg.config.cmd = std::vector<std::string>{"/bin/sh"};
    cfg.diff_ids = {Digest::of(s.layer1_tar), Digest::of(s.layer2_tar)};
    cfg.history = {{"2024-05-06T07:08:09Z", "ADD a", "", "", false},
                   {"2024-05-06T07:08:09Z", "ADD b", "", "", false}};
    s.image.config = to_json(cfg);
    if (!name.empty()) {
        s.image.names = {name};
    }
    s.image.layers = {
        {dir + "/l1", std::string(media::oci_layer), Digest::of(s.layer1_tar),
         static_cast<std::int64_t>(s.layer1_tar.size()), Digest::of(s.layer1_tar)},
        {dir + "/l2", std::string(media::oci_layer_gzip), Digest::of(l2gz),
         static_cast<std::int64_t>(l2gz.size()), Digest::of(s.layer2_tar)},
    };
    return s;
}

} // namespace strata::test
