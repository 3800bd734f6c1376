// Workspace plans (workspace.hpp, and the training and inference plans of encoder.hpp): one
// function sizes and binds, so the pieces tile the arena exactly, each 64-byte aligned, never
// overlapping; a binding pass that runs past the end throws; the header's example compiles.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <mlm/encoder.hpp>
#include <mlm/workspace.hpp>

namespace {

bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % mlm::detail::workspace_align == 0; }

mlm::ModelConfig small_config() {
    mlm::ModelConfig c;
    c.vocab_size = 37;
    c.dim = 12;
    c.n_heads = 3;
    c.n_layers = 2;
    c.ffn_mult = 2;
    c.max_len = 9;
    return c;
}

// Sequences of lengths 7, 1, 3 (N = 11, odd on purpose: unpadded buffers would misalign).
mlm::Batch odd_batch(bool labels) {
    mlm::Batch b;
    const int32_t none = -100;
    b.add_sequence({5, 2, 9, 12, 3, 16, 4}, {none, labels ? 7 : none, none, none, labels ? 4 : none, none, none});
    b.add_sequence({11}, {labels ? 11 : none});
    b.add_sequence({2, 6, 6}, {none, none, labels ? 6 : none});
    return b;
}

// The table's pieces lie one after the other from offset 0, each on a 64-byte boundary, none
// overlapping, and end at `bytes`.
void check_tiling(const mlm::detail::WorkspaceTable& table) {
    std::size_t end = 0;
    for (const auto& e : table.entries()) {
        CAPTURE(e.name);
        CHECK(e.offset % mlm::detail::workspace_align == 0);
        CHECK(e.offset == end);
        end = e.offset + mlm::detail::workspace_round_up(e.bytes);
    }
    CHECK(end == table.bytes());
}

std::size_t bytes_of(const mlm::detail::WorkspaceTable& table, const std::string& name) {
    for (const auto& e : table.entries())
        if (e.name == name) return e.bytes;
    FAIL("no buffer named " << name);
    return 0;
}

}  // namespace

TEST_CASE("the example of workspace.hpp") {
    struct Buffers { float* x; float* rinv; uint8_t* keep; };
    Buffers b;
    mlm::detail::WorkspaceArena arena;
    const std::size_t N = 5, C = 8;
    const bool dropout = false;
    mlm::detail::plan_workspace(arena, [&](auto& ws) {
        ws.take(b.x, N * C, "x");                      // (N, C)
        ws.take(b.rinv, N, "rinv");                    // (N)
        ws.take(b.keep, dropout ? N * C : 0, "keep");  // (N, C), null without dropout
    });
    CHECK(b.x == reinterpret_cast<float*>(arena.base()));
    CHECK(b.rinv == reinterpret_cast<float*>(arena.base() + 192));  // 160 bytes rounded up to 192
    CHECK(b.keep == nullptr);
    CHECK(arena.capacity() == 192 + 64);
}

TEST_CASE("a binding pass that runs past the end of its arena throws") {
    alignas(64) std::byte buf[256];
    mlm::detail::WorkspaceBinder binder(buf, 256);
    float* a = nullptr;
    float* b = nullptr;
    binder.take(a, 32, "a");  // 128 bytes
    CHECK(a == reinterpret_cast<float*>(buf));
    CHECK_THROWS_WITH_AS(binder.take(b, 33, "b"), doctest::Contains("\"b\""), std::logic_error);
    CHECK(b == nullptr);
    binder.take(b, 32, "b");  // exactly to the end
    CHECK(b == reinterpret_cast<float*>(buf + 128));
    CHECK(binder.used() == 256);

    // a plan that asks for more when binding than when sizing (the drift one function prevents)
    mlm::detail::WorkspaceArena arena;
    int pass = 0;
    auto drifting = [&](auto& ws) {
        float* x = nullptr;
        ws.take(x, pass++ == 0 ? 16 : 17, "x");
    };
    CHECK_THROWS_WITH_AS(mlm::detail::plan_workspace(arena, drifting), doctest::Contains("runs past the end"),
                         std::logic_error);
    // and one that asks for less
    pass = 0;
    auto shrinking = [&](auto& ws) {
        float* x = nullptr;
        ws.take(x, pass++ == 0 ? 32 : 16, "x");
    };
    CHECK_THROWS_WITH_AS(mlm::detail::plan_workspace(arena, shrinking), doctest::Contains("sized"),
                         std::logic_error);
}

TEST_CASE("the arena aligns its base itself, wherever the heap puts it") {
    // Arenas made between allocations of every size from 1 to 64 bytes land at many addresses
    // modulo 64; the base is aligned all the same.
    std::vector<std::unique_ptr<char[]>> junk;
    std::vector<mlm::detail::WorkspaceArena> arenas(64);
    for (std::size_t i = 0; i < arenas.size(); ++i) {
        junk.emplace_back(new char[i + 1]);
        std::byte* base = arenas[i].ensure(1000 + i);
        CHECK(aligned(base));
        CHECK(arenas[i].capacity() >= 1000 + i);
    }
    // a copy aligns its own storage
    mlm::detail::WorkspaceArena copy = arenas[3];
    CHECK(aligned(copy.base()));
    CHECK(copy.capacity() >= 1003);
    // growing reallocates; asking for less does not
    mlm::detail::WorkspaceArena a;
    std::byte* first = a.ensure(4096);
    CHECK(a.ensure(100) == first);
    CHECK(a.capacity() == 4096);
    a.ensure(8192);
    CHECK(a.capacity() == 8192);
    CHECK(aligned(a.base()));
}

TEST_CASE("the training plan tiles its arena: every buffer aligned, none overlapping, sizes from the batch") {
    const mlm::ModelConfig c = small_config();
    const std::size_t C = c.dim, F = c.ffn_dim(), V = c.vocab_size, H = c.n_heads;
    for (bool drop : {false, true}) {
        for (bool labels : {true, false}) {
            CAPTURE(drop);
            CAPTURE(labels);
            const mlm::Batch batch = odd_batch(labels);
            mlm::detail::BatchDims d = mlm::detail::batch_dims(batch, c);
            d.dropout = drop;
            d.threads = 2;
            CHECK(d.N == 11);
            CHECK(d.B == 3);
            CHECK(d.M == (labels ? 4u : 0u));
            CHECK(d.P == H * (49 + 1 + 9));
            CHECK(d.L == 7);

            mlm::detail::TrainingBuffers<float> b{};
            mlm::detail::WorkspaceTable table;
            mlm::detail::plan_training_workspace(table, b, c, d);
            check_tiling(table);
            mlm::detail::WorkspaceSizer sizer;
            mlm::detail::plan_training_workspace(sizer, b, c, d);
            CHECK(sizer.bytes() == table.bytes());

            // 3 buffers before the layers, 14 per layer, 14 after
            CHECK(table.entries().size() == 3 + 14 * static_cast<std::size_t>(c.n_layers) + 14);
            CHECK(bytes_of(table, "prob_offsets") == (d.B + 1) * sizeof(int64_t));
            CHECK(bytes_of(table, "probs") == d.P * sizeof(float));
            CHECK(bytes_of(table, "keep_ff1") == (drop ? d.N * F : 0));
            CHECK(bytes_of(table, "head_vocab") == d.M * V * sizeof(float));
            CHECK(bytes_of(table, "dqkv") == d.N * 3 * C * sizeof(float));
            CHECK(bytes_of(table, "attn_scratch") == 2 * 7 * 7 * sizeof(float));

            // bound into an arena: each pointer where the table says, aligned, the layers chained
            mlm::detail::WorkspaceArena arena;
            mlm::detail::plan_workspace(arena, [&](auto& ws) { mlm::detail::plan_training_workspace(ws, b, c, d); });
            const std::byte* base = arena.base();
            CHECK(aligned(base));
            CHECK(reinterpret_cast<const std::byte*>(b.xs[0]) == base + table.entries()[1].offset);
            CHECK(reinterpret_cast<const std::byte*>(b.dqkv) ==
                  base + std::find_if(table.entries().begin(), table.entries().end(),
                                      [](const auto& e) { return e.name == "dqkv"; })->offset);
            for (int l = 0; l < c.n_layers; ++l) {
                const auto& a = b.layers[l];
                CHECK(a.x_in == b.xs[l]);
                CHECK(a.x_out == b.xs[l + 1]);
                for (const void* p : {static_cast<const void*>(a.rinv1), static_cast<const void*>(a.n1),
                                      static_cast<const void*>(a.qkv), static_cast<const void*>(a.probs),
                                      static_cast<const void*>(a.ff_act), static_cast<const void*>(a.x_out)})
                    CHECK(aligned(p));
                CHECK((a.keep_attn != nullptr) == drop);
                CHECK((a.keep_ff1 != nullptr) == drop);
            }
            CHECK((b.keep_emb != nullptr) == drop);
            CHECK((b.head_vocab != nullptr) == labels);
        }
    }
}

TEST_CASE("the inference plan tiles its arena; its layer view shares the buffers it names") {
    const mlm::ModelConfig c = small_config();
    const mlm::Batch batch = odd_batch(true);
    mlm::detail::BatchDims d = mlm::detail::batch_dims(batch, c);
    d.R = 3;
    mlm::detail::InferenceBuffers<double> b{};
    mlm::detail::WorkspaceTable table;
    mlm::detail::plan_inference_workspace(table, b, c, d);
    check_tiling(table);
    std::set<std::string> names;
    for (const auto& e : table.entries()) names.insert(e.name);
    CHECK(names.size() == table.entries().size());
    CHECK(bytes_of(table, "head_x") == 3 * c.dim * sizeof(double));

    mlm::detail::WorkspaceArena arena;
    mlm::detail::plan_workspace(arena, [&](auto& ws) { mlm::detail::plan_inference_workspace(ws, b, c, d); });
    const mlm::LayerActivations<double> a = b.layer();
    CHECK(a.x_in == b.residual);
    CHECK(a.x_out == b.residual);
    CHECK(a.n1 == b.normed);
    CHECK(a.n2 == b.normed);
    CHECK(a.ff_pre == b.ff_hidden);
    CHECK(a.ff_act == b.ff_hidden);
    CHECK(a.keep_attn == nullptr);
    for (const void* p : {static_cast<const void*>(b.residual), static_cast<const void*>(b.rinv),
                          static_cast<const void*>(b.normed), static_cast<const void*>(b.probs),
                          static_cast<const void*>(b.x_mid), static_cast<const void*>(b.head_h)})
        CHECK(aligned(p));
}

TEST_CASE("a model's workspace grows for a bigger batch only, and results do not depend on which arena") {
    // Two copies of one model, one of which first trained on a bigger batch (so its arena is
    // larger and elsewhere), give the same bits on the same batch.
    mlm::ModelConfig c = small_config();
    c.dropout = 0.2f;
    mlm::Encoder<float> a(c, 3);
    mlm::Encoder<float> b(a);
    mlm::Batch big;
    for (int s = 0; s < 6; ++s) big.add_sequence({3, 4, 5, 6, 7, 8, 9, 10, 11}, {-100, 4, -100, 6, -100, -100, 9, -100, 11});
    b.forward(big, {true, 1});
    const std::size_t grown = b.workspace_bytes();
    CHECK(grown > 0);

    const mlm::Batch batch = odd_batch(true);
    a.zero_grad();
    b.zero_grad();
    const float la = a.forward(batch, {true, 5});
    a.backward();
    const float lb = b.forward(batch, {true, 5});
    b.backward();
    CHECK(b.workspace_bytes() == grown);
    CHECK(a.workspace_bytes() < grown);
    CHECK(la == lb);
    CHECK(std::equal(a.gradients(), a.gradients() + a.num_parameters(), b.gradients()));
}
