// A fast 64-bit hash of bytes (include/mlm/hash.hpp).
#include <mlm/hash.hpp>

#include <cstring>

#include <mlm/random.hpp>

namespace mlm::detail {

uint64_t hash_bytes(const void* data, std::size_t n, uint64_t seed) {
    const auto* p = static_cast<const unsigned char*>(data);
    // Four independent lanes so the multiply chains overlap; then fold.
    uint64_t h[4] = {mix64(seed ^ 0x243f6a8885a308d3ull), mix64(seed ^ 0x13198a2e03707344ull),
                     mix64(seed ^ 0xa4093822299f31d0ull), mix64(seed ^ 0x082efa98ec4e6c89ull)};
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; ++k) {
            uint64_t w;
            std::memcpy(&w, p + i + 8 * k, 8);
            h[k] = mix64(h[k] ^ w);
        }
    }
    uint64_t tail = 0, r = mix64(h[0] ^ mix64(h[1] ^ mix64(h[2] ^ mix64(h[3]))));
    for (int shift = 0; i < n; ++i, shift += 8) {
        tail |= static_cast<uint64_t>(p[i]) << (shift % 64);
        if (shift % 64 == 56) { r = mix64(r ^ tail); tail = 0; }
    }
    return mix64(r ^ tail ^ static_cast<uint64_t>(n));
}

}  // namespace mlm::detail
