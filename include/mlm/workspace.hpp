// mlm/workspace.hpp — planning a workspace: one function names every buffer, and is run once to
// count the bytes and once to hand out the pointers, so the size and the layout cannot drift.
//
// A plan is a function of a visitor `ws` that calls `ws.take(pointer, count, "name")` for each
// buffer in order (count elements of the pointer's type; a count of 0 gives a null pointer).
// plan_workspace() runs it with a WorkspaceSizer, which only adds up the sizes, grows the arena
// to that many bytes if it is smaller (the only allocation: a batch bigger than any before),
// then runs it again with a WorkspaceBinder, which sets each pointer and checks that it stays
// inside the arena. WorkspaceTable records (name, offset, bytes) instead, for tests and reports.
//
// Every buffer starts on a 64-byte boundary (a cache line, one AVX-512 register) of a base that
// the arena aligns itself. So where the heap happened to put the arena never changes a result:
// Eigen's vectorized sums start at the first aligned element, and the last bits of a sum depend
// on where that is (misaligning the base by 4 to 60 bytes changed the last bits of ~60% of the
// gradients, weights and logits of a two-step run; moving the parameter buffers changed none).
//
//   struct Buffers { float* x; float* rinv; uint8_t* keep; };
//   Buffers b;
//   mlm::detail::WorkspaceArena arena;
//   const std::size_t N = 5, C = 8;
//   const bool dropout = false;
//   mlm::detail::plan_workspace(arena, [&](auto& ws) {
//       ws.take(b.x, N * C, "x");                      // (N, C)
//       ws.take(b.rinv, N, "rinv");                    // (N)
//       ws.take(b.keep, dropout ? N * C : 0, "keep");  // (N, C), null without dropout
//   });
//
// Everything here is in mlm::detail: the engine's internals, not part of the library's promise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mlm {
namespace detail {

constexpr std::size_t workspace_align = 64;  // bytes

inline std::size_t workspace_round_up(std::size_t bytes) {
    return (bytes + workspace_align - 1) / workspace_align * workspace_align;
}

// Bytes that only grow. The base is aligned here, whatever alignment the allocator gives; the
// contents are not kept when it grows (a plan is bound afresh after every growth).
class WorkspaceArena {
public:
    // A base with at least `bytes` usable bytes after it; allocates only when growing.
    std::byte* ensure(std::size_t bytes) {
        if (bytes > capacity()) {
            storage_ = std::vector<std::byte>();  // free the old one first: one arena at a time
            storage_.resize(bytes + workspace_align - 1);
        }
        return base();
    }
    std::size_t capacity() const {
        return storage_.empty() ? 0 : storage_.size() - (workspace_align - 1);
    }
    std::byte* base() {
        const auto raw = reinterpret_cast<std::uintptr_t>(storage_.data());
        return storage_.data() + (workspace_align - raw % workspace_align) % workspace_align;
    }

private:
    std::vector<std::byte> storage_;
};

// The sizing pass: adds up the buffers' sizes, each rounded up to workspace_align.
class WorkspaceSizer {
public:
    template <class U>
    void take(U*& p, std::size_t count, const char* /*name*/) {
        p = nullptr;
        bytes_ += workspace_round_up(count * sizeof(U));
    }
    std::size_t bytes() const { return bytes_; }

private:
    std::size_t bytes_ = 0;
};

// The binding pass: hands out consecutive aligned pieces of [base, base + capacity). A piece
// that would run past the end throws std::logic_error: the plan took another path than when it
// was sized (always checked: it is one comparison per buffer).
class WorkspaceBinder {
public:
    WorkspaceBinder(std::byte* base, std::size_t capacity) : base_(base), capacity_(capacity) {}
    template <class U>
    void take(U*& p, std::size_t count, const char* name) {
        const std::size_t bytes = workspace_round_up(count * sizeof(U));
        if (bytes > capacity_ - used_)
            throw std::logic_error("workspace: buffer \"" + std::string(name) + "\" (" + std::to_string(bytes) +
                                   " bytes at offset " + std::to_string(used_) + ") runs past the end of the " +
                                   std::to_string(capacity_) + "-byte arena");
        p = count == 0 ? nullptr : reinterpret_cast<U*>(base_ + used_);
        used_ += bytes;
    }
    std::size_t used() const { return used_; }

private:
    std::byte* base_;
    std::size_t capacity_;
    std::size_t used_ = 0;
};

// A pass that records the plan as a table, without touching memory: tests and memory reports.
class WorkspaceTable {
public:
    struct Entry {
        std::string name;
        std::size_t offset, bytes;  // bytes as requested (count * element size), before rounding
    };
    template <class U>
    void take(U*& p, std::size_t count, const char* name) {
        p = nullptr;
        entries_.push_back({name, end_, count * sizeof(U)});
        end_ += workspace_round_up(count * sizeof(U));
    }
    const std::vector<Entry>& entries() const { return entries_; }
    std::size_t bytes() const { return end_; }

private:
    std::vector<Entry> entries_;
    std::size_t end_ = 0;
};

// Sizes the plan, grows the arena if needed, binds the plan into it. Returns the bytes used.
template <class Plan>
std::size_t plan_workspace(WorkspaceArena& arena, Plan&& plan) {
    WorkspaceSizer sizer;
    plan(sizer);
    WorkspaceBinder binder(arena.ensure(sizer.bytes()), sizer.bytes());
    plan(binder);
    if (binder.used() != sizer.bytes())
        throw std::logic_error("workspace: the plan bound " + std::to_string(binder.used()) + " bytes but sized " +
                               std::to_string(sizer.bytes()));
    return binder.used();
}

}  // namespace detail
}  // namespace mlm
