// libFuzzer target: a plain, gzip or xz text file through LineReader and read_lines.
// The work and the checks are in fuzz_entry_points.hpp (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    (void)mlm::fuzz::text_reader(data, size);
    return 0;
}
