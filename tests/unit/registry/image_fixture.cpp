#include "tests/unit/registry/image_fixture.hpp"

#include "formats/media_types.hpp"
#include "util/fs.hpp"

#include <cstdio>
#include <cstring>
#include <dirent.h>

namespace strata::test {

std::string make_tar_layer(const std::string& file_name, std::size_t size, unsigned seed) {
    std::string header(512, '\0');
    auto put = [&](std::size_t off, const std::string& s) { std::memcpy(&header[off], s.data(), s.size()); };
    auto octal = [](std::uint64_t v, int width) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%0*llo", width - 1, static_cast<unsigned long long>(v));
        return std::string(buf);
    };
    put(0, file_name);
    put(100, octal(0644, 8));
    put(108, octal(0, 8));
    put(116, octal(0, 8));
    put(124, octal(size, 12));
    put(136, octal(1700000000, 12));
    put(148, "        ");
    header[156] = '0';
    put(257, std::string("ustar\0", 6));
    put(263, "00");
    unsigned sum = 0;
    for (unsigned char c : header) {
        sum += c;
    }
    put(148, octal(sum, 7));
    header[155] = ' ';
    std::string out = header;
    out.reserve(512 + size + 512 + 1024);
    unsigned x = seed * 2654435761u + 1;
    for (std::size_t i = 0; i < size; ++i) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out += static_cast<char>(x);
    }
    out.append((512 - size % 512) % 512, '\0');
    out.append(1024, '\0');
    return out;
}

formats::Descriptor make_image(snapshot::Store& store, const std::string& name, int layers,
                               std::size_t layer_size, unsigned seed) {
    formats::ImageConfig config;
    config.architecture = formats::host_platform().architecture;
    config.os = "linux";
    config.created = "2026-01-01T00:00:00Z";
    config.config.cmd = std::vector<std::string>{"/bin/sh"};
    std::vector<formats::Descriptor> descs;
    for (int i = 0; i < layers; ++i) {
        std::string tar = make_tar_layer("file" + std::to_string(i), layer_size + static_cast<std::size_t>(i),
                                         seed * 100 + static_cast<unsigned>(i));
        formats::Descriptor d;
        d.media_type = formats::media::oci_layer;
        d.digest = store.put_blob(tar);
        d.size = static_cast<std::int64_t>(tar.size());
        descs.push_back(d);
        config.diff_ids.push_back(d.digest);
        formats::History h;
        h.created = config.created;
        h.created_by = "layer " + std::to_string(i);
        config.history.push_back(h);
    }
    formats::Descriptor m = store.put_image(config, descs);
    store.set_name(snapshot::Reference::parse(name), m);
    return m;
}

std::string blob_bytes(const snapshot::Store& store, const formats::Digest& d) {
    return fs::read_file(store.blob_path(d));
}

int tmp_entries(const snapshot::Store& store) {
    std::string dir = store.tmp_dir();
    if (!fs::is_dir(dir)) {
        return 0;
    }
    int n = 0;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return 0;
    }
    while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
            ++n;
        }
    }
    ::closedir(d);
    return n;
}

} // namespace strata::test
