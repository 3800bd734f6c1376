// mlm/hash.hpp — a fast 64-bit hash of bytes, for fingerprints (a tokenizer's model, a corpus, a
// cache file's key). Not cryptographic: it tells versions apart, it does not resist forgery.
//
//   const std::string text = "hello", more = "world";
//   uint64_t h = mlm::detail::hash_bytes(text.data(), text.size());
//   uint64_t both = mlm::detail::hash_bytes(more.data(), more.size(), /*seed=*/h);  // chained
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlm::detail {

// Four interleaved splitmix64 lanes over 8-byte words, folded with the length.
uint64_t hash_bytes(const void* data, std::size_t n, uint64_t seed = 0);

}  // namespace mlm::detail
