// libFuzzer target: config.json through model_config_from_json and load_config.
// The work and the checks are in fuzz_entry_points.hpp (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    (void)mlm::fuzz::config_json(data, size);
    return 0;
}
