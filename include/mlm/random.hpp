// mlm/random.hpp — explicit, seeded random sources.
//
// Every random choice in mlm comes from one of two sources, never from a global:
//   - Rng: a small sequential generator (xoshiro256**) with a visible state that a checkpoint
//     can save and restore (initialisation, shuffling);
//   - counter-based draws: `random_u64(seed, a, b, c)` hashes a key to 64 random bits, so a draw
//     depends only on *what* it is for (seed, epoch, sample, position...), not on the order in
//     which threads reach it. Dropout masks and the masking collator use these, which makes them
//     identical for any thread count and batch composition.
//
//   mlm::Rng rng(42);
//   double u = rng.uniform();                        // [0, 1)
//   float z = rng.normal();                          // N(0, 1)
//   uint64_t bits = mlm::random_u64(seed, epoch, sample_index, position);
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace mlm {

// splitmix64's finaliser: a bijective 64-bit mixer with good avalanche.
inline uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// 64 random bits for the key (seed, a, b, c).
inline uint64_t random_u64(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
    uint64_t h = mix64(seed ^ 0x6a09e667f3bcc908ull);
    h = mix64(h ^ a);
    h = mix64(h ^ (b + 0x3c6ef372fe94f82bull));
    return mix64(h ^ (c + 0xa54ff53a5f1d36f1ull));
}

// Uniform double in [0, 1) from 64 random bits (the top 53).
inline double bits_to_unit(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

class Rng {
public:
    using State = std::array<uint64_t, 4>;

    explicit Rng(uint64_t seed = 0) { reseed(seed); }

    void reseed(uint64_t seed) {
        uint64_t x = seed;
        for (auto& s : state_) s = mix64(x++);
    }

    uint64_t next_u64() {
        const uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    double uniform() { return bits_to_unit(next_u64()); }

    // Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method).
    uint64_t below(uint64_t n) {
        uint64_t x = next_u64();
        __uint128_t m = static_cast<__uint128_t>(x) * n;
        uint64_t low = static_cast<uint64_t>(m);
        if (low < n) {
            const uint64_t threshold = -n % n;
            while (low < threshold) {
                x = next_u64();
                m = static_cast<__uint128_t>(x) * n;
                low = static_cast<uint64_t>(m);
            }
        }
        return static_cast<uint64_t>(m >> 64);
    }

    // Standard normal (Box-Muller; one draw per call, the pair's second value is discarded so
    // the state stays a pure function of the number of calls).
    double normal() {
        double u1 = uniform();
        const double u2 = uniform();
        if (u1 < 1e-300) u1 = 1e-300;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

    const State& state() const { return state_; }
    void set_state(const State& s) { state_ = s; }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    State state_{};
};

}  // namespace mlm
