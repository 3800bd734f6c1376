// Internal: what a Trainer holds besides its position (include/mlm/trainer.hpp), shared by
// trainer.cpp (construction, checkpoints, resume) and trainer_loop.cpp (the loop).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include <mlm/threads.hpp>
#include <mlm/trainer.hpp>

namespace mlm {

struct Trainer::Impl {
    std::unique_ptr<Encoder<float>> model;
    std::unique_ptr<Adam<float>> adam;
    std::optional<LrSchedule> schedule;
    std::unique_ptr<MaskingCollator> collator;
    std::unique_ptr<Batcher> batcher;
    TokenizedCorpus train_data, valid_data;
    bool has_data = false;
    uint64_t train_fingerprint = 0, valid_fingerprint = 0;
    std::vector<Batch> micro;                        // the batches of one step, reused
    std::vector<std::vector<std::size_t>> plan;      // the current epoch's batches
    int64_t plan_epoch = -1;
    EvalMetrics last_eval;
    bool resumed = false;

    const std::vector<std::vector<std::size_t>>& plan_for(int64_t epoch) {
        if (plan_epoch != epoch) {
            plan = batcher->epoch_batches(static_cast<uint64_t>(epoch));
            plan_epoch = epoch;
        }
        return plan;
    }
};

// The trainer's thread count, when it sets one (0: leave the current setting).
inline void set_trainer_threads(int threads) {
    if (threads > 0) set_num_threads(threads);
}

}  // namespace mlm
