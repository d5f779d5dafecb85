// The strata command's allocator is jemalloc (linked when STRATA_JEMALLOC is
// on), set up here: jemalloc reads this string when it starts.
//
// thp:always asks for transparent huge pages on jemalloc's heap (madvise
// MADV_HUGEPAGE, so it also works where the system's THP mode is "madvise";
// where it is "never", nothing changes). A build touches a lot of fresh heap
// (tar entries, TOCs, file lists, buffers; over 100 MB for a rebuild of
// 20,000 files): with 4 KiB pages each first touch is a page fault and each
// later access a page walk, both dear on a virtual machine. narenas:1: one
// arena for every thread (each keeps its own cache of small blocks), so that
// a dozen short-lived threads do not spread over arenas that each start huge
// pages of their own, which the kernel must clear (11% of a rebuild's CPU
// with jemalloc's default of four arenas per CPU; 1-9% with one).
//
// Measured on the one-file rebuild of bench/build.sh (W5: 20,000 files and
// 250 MB; builds of each alternated, medians of 8): glibc's malloc 1.53 s
// (2.24 s of CPU), jemalloc with huge pages 1.30 s (1.88 s), with one arena
// too 1.16 s (1.63 s). The price is memory: a small command's peak resident
// size grows from 11 to 15 MB, the rebuild's from 125 to 142 MB.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "thp:always,metadata_thp:auto,narenas:1";
}
