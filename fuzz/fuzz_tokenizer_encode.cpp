// libFuzzer target: text through Tokenizer::encode (with [MASK] splicing), decode and the pieces.
// The work and the checks are in fuzz_entry_points.hpp (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    (void)mlm::fuzz::tokenizer_encode(data, size);
    return 0;
}
