// The strata command's allocator is jemalloc (linked when STRATA_JEMALLOC is
// on), set up here: jemalloc reads this string when it starts.
//
// thp:always asks for transparent huge pages on jemalloc's heap (madvise
// MADV_HUGEPAGE, so it also works where the system's THP mode is "madvise";
// where it is "never", nothing changes). A build touches a lot of fresh heap
// (tar entries, TOCs, file lists, buffers; over 100 MB for a rebuild of
// 20,000 files): with 4 KiB pages each first touch is a page fault and each
// later access a page walk, both dear on a virtual machine. Measured on the
// one-file rebuild of bench/build.sh (W5: 20,000 files and 250 MB; builds
// of each alternated, medians of 6): glibc's malloc 1.52 s (2.23 s of CPU),
// jemalloc 1.48 s, jemalloc with huge pages 1.35 s (1.91 s of CPU). The
// price is memory: a small command's peak resident size grows from about
// 10 to 16 MB, the rebuild's from 125 to 171 MB.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "thp:always,metadata_thp:auto";
}
