// libFuzzer target: model.safetensors of a checkpoint through load_model_params and load_tensors.
// The work and the checks are in fuzz_entry_points.hpp (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    (void)mlm::fuzz::checkpoint_model(data, size);
    return 0;
}
