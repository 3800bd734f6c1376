// After the first step at the largest batch, a training step and an inference call allocate no
// heap memory. Every malloc of the process is counted by wrapping glibc's allocator (operator new,
// Eigen's aligned_malloc, std::vector and libgomp all end up here).
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <vector>

#include <mlm/encoder.hpp>
#include <mlm/optimizer.hpp>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MLM_COUNT_MALLOC 0  // the sanitizers own malloc
#elif defined(__GLIBC__)
#define MLM_COUNT_MALLOC 1
#else
#define MLM_COUNT_MALLOC 0
#endif

// Declared in every build so that the test compiles; it only counts where MLM_COUNT_MALLOC is 1.
static std::atomic<long> g_mallocs{0};

#if MLM_COUNT_MALLOC
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) {
    g_mallocs.fetch_add(1, std::memory_order_relaxed);
    return __libc_malloc(n);
}
void* calloc(size_t n, size_t s) {
    g_mallocs.fetch_add(1, std::memory_order_relaxed);
    return __libc_calloc(n, s);
}
void* realloc(void* p, size_t n) {
    g_mallocs.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
    g_mallocs.fetch_add(1, std::memory_order_relaxed);
    return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
    g_mallocs.fetch_add(1, std::memory_order_relaxed);
    return __libc_memalign(a, n);
}
int posix_memalign(void** p, size_t a, size_t n) {
    g_mallocs.fetch_add(1, std::memory_order_relaxed);
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;  // ENOMEM
}
}
#endif

namespace {

mlm::Batch make_batch(int sequences, int length, int vocab, uint64_t seed) {
    mlm::Rng rng(seed);
    mlm::Batch b;
    for (int s = 0; s < sequences; ++s) {
        const int L = 1 + static_cast<int>(rng.below(length));
        std::vector<int32_t> ids(L), labels(L, -100);
        for (int i = 0; i < L; ++i) {
            ids[i] = 3 + static_cast<int>(rng.below(vocab - 3));
            if (rng.uniform() < 0.2) labels[i] = ids[i];
        }
        b.add_sequence(ids, labels);
    }
    return b;
}

}  // namespace

// With one OpenMP thread libgomp would allocate a team for every parallel region: the loops must
// then stay out of OpenMP altogether. Both thread counts are checked.
void check_no_allocation(int threads);

TEST_CASE("a training step and an inference call allocate nothing once warmed up, 2 threads") {
    check_no_allocation(2);
}

TEST_CASE("the same with 1 thread") { check_no_allocation(1); }

void check_no_allocation(int threads) {
    const int saved_threads = mlm::max_threads();
    mlm::set_num_threads(threads);
    struct Restore {
        int n;
        ~Restore() { mlm::set_num_threads(n); }
    } restore{saved_threads};
    // Without counting (sanitizer or non-glibc builds) the steps still run: under ASan they check
    // the reuse of a workspace sized for a bigger batch, and its growth.
    if (!MLM_COUNT_MALLOC) MESSAGE("malloc counting is unavailable in this build (sanitizer or non-glibc)");
    mlm::ModelConfig c;
    c.vocab_size = 500;
    c.dim = 64;
    c.n_heads = 4;
    c.n_layers = 2;
    c.max_len = 64;
    mlm::Encoder<float> model(c, 1);
    mlm::Adam<float> adam(model.layout());
    const mlm::Batch big = make_batch(40, 64, c.vocab_size, 1);
    const mlm::Batch small = make_batch(25, 40, c.vocab_size, 2);
    std::vector<int32_t> rows(small.num_tokens());
    for (int i = 0; i < small.num_tokens(); ++i) rows[i] = i;
    std::vector<float> logits(static_cast<std::size_t>(small.num_tokens()) * c.vocab_size);
    mlm::InferenceWorkspace<float> ws;

    auto step = [&](const mlm::Batch& b, uint64_t key) {
        model.zero_grad();
        model.forward(b, {true, key});
        model.backward();
        mlm::clip_grad_norm(model.gradients(), model.num_parameters(), 1.0);
        adam.step(model.parameters(), model.gradients(), 1e-3, 0.9);
    };
    step(big, 1);  // sizes the workspace
    model.logits(logits.data(), big, rows.data(), small.num_tokens(), ws);

    const long before = g_mallocs.load();
    for (int s = 0; s < 3; ++s) {
        step(small, 10 + s);
        step(big, 20 + s);
        model.logits(logits.data(), small, rows.data(), small.num_tokens(), ws);
    }
    const long after = g_mallocs.load();
    if (MLM_COUNT_MALLOC) CHECK(after - before == 0);

    // the counter does count: a fresh bigger batch must grow the workspace
    const mlm::Batch bigger = make_batch(80, 64, c.vocab_size, 3);
    step(bigger, 30);
    if (MLM_COUNT_MALLOC) CHECK(g_mallocs.load() > after);
}
