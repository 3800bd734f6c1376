// libFuzzer target: a safetensors file (header and data) through SafetensorsFile.
// The work and the checks are in fuzz_entry_points.hpp (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    (void)mlm::fuzz::safetensors_file(data, size);
    return 0;
}
