// MaskingCollator: selection statistics, replacement split, determinism, whole words, layouts.
#include <doctest/doctest.h>

#include <mlm/collator.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace {

// A synthetic vocab: 0 [UNK], 1 [PAD], 2 [MASK], 3-4 other control pieces, 5.. ordinary; ids
// divisible by 3 start a word ("▁..."), the others continue one.
mlm::VocabInfo synthetic_vocab(int V = 1000) {
    mlm::VocabInfo v;
    v.vocab_size = V;
    v.unk_id = 0;
    v.pad_id = 1;
    v.mask_id = 2;
    v.is_special.assign(V, 0);
    v.word_start.assign(V, 0);
    for (int id : {1, 2, 3, 4}) v.is_special[id] = 1;
    for (int id = 5; id < V; ++id) v.word_start[id] = id % 3 == 0;
    return v;
}

// Sequences of ordinary ids with some [UNK] and control ids mixed in.
std::vector<std::vector<int32_t>> random_sequences(int count, int V, uint64_t seed) {
    mlm::Rng rng(seed);
    std::vector<std::vector<int32_t>> seqs(count);
    for (auto& s : seqs) {
        const int n = 1 + static_cast<int>(rng.below(64));
        for (int i = 0; i < n; ++i) {
            const double u = rng.uniform();
            s.push_back(u < 0.03 ? 0 : u < 0.06 ? static_cast<int32_t>(1 + rng.below(4))
                                             : static_cast<int32_t>(5 + rng.below(V - 5)));
        }
    }
    return seqs;
}

std::vector<uint64_t> iota_indices(std::size_t n, uint64_t start = 0) {
    std::vector<uint64_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = start + i;
    return v;
}

}  // namespace

TEST_CASE("the original's masking: 15% of ordinary tokens, all replaced by [MASK], -100 elsewhere") {
    const auto vocab = synthetic_vocab();
    mlm::MaskingCollator collator(vocab, {}, 7);
    const auto seqs = random_sequences(12000, vocab.vocab_size, 1);
    long selectable = 0, selected = 0, unk_selected = 0;
    for (std::size_t k = 0; k < seqs.size(); ++k) {
        const auto& s = seqs[k];
        std::vector<int32_t> ids(s.size()), labels(s.size());
        const int n_sel = collator.mask_sequence(s.data(), static_cast<int>(s.size()), 0, k, ids.data(), labels.data());
        int counted = 0;
        for (std::size_t i = 0; i < s.size(); ++i) {
            const bool special = vocab.is_special[s[i]];
            selectable += !special;
            if (labels[i] == mlm::ignore_label) {
                CHECK_MESSAGE(ids[i] == s[i], "an unselected token must stay as it was");
                continue;
            }
            ++counted;
            REQUIRE_FALSE(special);  // never pad, mask or another control id
            CHECK(labels[i] == s[i]);
            CHECK(ids[i] == vocab.mask_id);
            unk_selected += s[i] == vocab.unk_id;
        }
        CHECK(n_sel == counted);
        selected += counted;
    }
    const double fraction = static_cast<double>(selected) / selectable;
    CHECK(selectable > 300000);
    CHECK(std::abs(fraction - 0.15) < 0.005);
    CHECK(unk_selected > 0);  // [UNK] can be a target
}

TEST_CASE("BERT's 80/10/10 split") {
    const auto vocab = synthetic_vocab();
    mlm::MaskingCollator collator(vocab, mlm::MaskingOptions::bert(), 3);
    const auto seqs = random_sequences(12000, vocab.vocab_size, 2);
    long selected = 0, masked = 0, randomized = 0, kept = 0;
    for (std::size_t k = 0; k < seqs.size(); ++k) {
        const auto& s = seqs[k];
        std::vector<int32_t> ids(s.size()), labels(s.size());
        collator.mask_sequence(s.data(), static_cast<int>(s.size()), 5, k, ids.data(), labels.data());
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (labels[i] == mlm::ignore_label) continue;
            ++selected;
            if (ids[i] == vocab.mask_id) ++masked;
            else if (ids[i] == s[i]) ++kept;
            else {
                ++randomized;
                CHECK_FALSE(vocab.is_special[ids[i]]);  // random ids are ordinary ids
                CHECK(ids[i] != vocab.unk_id);
            }
        }
    }
    CHECK(selected > 40000);
    CHECK(std::abs(static_cast<double>(masked) / selected - 0.8) < 0.01);
    CHECK(std::abs(static_cast<double>(randomized) / selected - 0.1) < 0.01);
    CHECK(std::abs(static_cast<double>(kept) / selected - 0.1) < 0.01);
}

TEST_CASE("masks depend on (seed, epoch, sample index) only, not on the batch") {
    const auto vocab = synthetic_vocab();
    mlm::MaskingCollator collator(vocab, mlm::MaskingOptions::bert(), 11);
    const auto seqs = random_sequences(50, vocab.vocab_size, 3);

    mlm::Batch all;
    collator.collate(seqs, iota_indices(seqs.size()), 2, all);
    // sequence 7 alone, and in a different batch at a different place
    mlm::Batch alone, mixed;
    collator.collate({seqs[7]}, {7}, 2, alone);
    collator.collate({seqs[30], seqs[7], seqs[3]}, {30, 7, 3}, 2, mixed);
    auto slice = [](const mlm::Batch& b, int k) {
        return std::vector<int32_t>(b.tokens.begin() + b.offsets[k], b.tokens.begin() + b.offsets[k + 1]);
    };
    CHECK(slice(alone, 0) == slice(all, 7));
    CHECK(slice(mixed, 1) == slice(all, 7));
    CHECK(slice(mixed, 0) == slice(all, 30));
    CHECK(slice(mixed, 2) == slice(all, 3));

    // the same again is the same; another epoch or seed is different
    mlm::Batch again, other_epoch, other_seed;
    collator.collate(seqs, iota_indices(seqs.size()), 2, again);
    collator.collate(seqs, iota_indices(seqs.size()), 3, other_epoch);
    mlm::MaskingCollator(vocab, mlm::MaskingOptions::bert(), 12).collate(seqs, iota_indices(seqs.size()), 2, other_seed);
    CHECK(again.tokens == all.tokens);
    CHECK(again.target_rows == all.target_rows);
    CHECK(other_epoch.target_rows != all.target_rows);
    CHECK(other_seed.target_rows != all.target_rows);

    // packed targets are consistent with the tokens
    REQUIRE(all.num_sequences() == 50);
    REQUIRE(all.target_rows.size() == all.target_ids.size());
    for (std::size_t t = 0; t < all.target_rows.size(); ++t) {
        CHECK(all.target_ids[t] >= 0);
        if (t) CHECK(all.target_rows[t] > all.target_rows[t - 1]);
    }
}

TEST_CASE("padded [B, T] output matches the packed batch") {
    const auto vocab = synthetic_vocab();
    mlm::MaskingCollator collator(vocab, {}, 5);
    const auto seqs = random_sequences(20, vocab.vocab_size, 4);
    const auto indices = iota_indices(seqs.size(), 1000);
    mlm::Batch packed;
    collator.collate(seqs, indices, 0, packed);

    const auto longest = collator.collate_padded(seqs, indices, 0);
    int T = 0;
    for (const auto& s : seqs) T = std::max<int>(T, static_cast<int>(s.size()));
    CHECK(longest.batch_size == 20);
    CHECK(longest.seq_len == T);

    const auto fixed = collator.collate_padded(seqs, indices, 0, 128);
    CHECK(fixed.seq_len == 128);
    REQUIRE(fixed.input_ids.size() == 20u * 128u);
    for (int b = 0; b < 20; ++b)
        for (int t = static_cast<int>(seqs[b].size()); t < 128; ++t) {
            CHECK(fixed.input_ids[b * 128 + t] == vocab.pad_id);
            CHECK(fixed.labels[b * 128 + t] == mlm::ignore_label);
        }
    // from_padded cannot take sequences holding pad ids in the middle; compare row by row instead
    for (int b = 0; b < 20; ++b)
        for (int t = 0; t < static_cast<int>(seqs[b].size()); ++t) {
            CHECK(fixed.input_ids[b * 128 + t] == packed.tokens[packed.offsets[b] + t]);
            CHECK(longest.input_ids[b * T + t] == packed.tokens[packed.offsets[b] + t]);
        }
    long labelled = 0;
    for (int32_t l : fixed.labels) labelled += l != mlm::ignore_label;
    CHECK(labelled == packed.num_targets());

    // a pad-free batch round-trips through the engine's from_padded
    std::vector<std::vector<int32_t>> clean = {{5, 6, 7, 8, 9, 10}, {11, 12}, {13, 14, 15}};
    const auto p = collator.collate_padded(clean, {0, 1, 2}, 0);
    mlm::Batch direct;
    collator.collate(clean, {0, 1, 2}, 0, direct);
    const auto via = p.to_packed(vocab.pad_id);
    CHECK(via.tokens == direct.tokens);
    CHECK(via.target_rows == direct.target_rows);
    CHECK(via.target_ids == direct.target_ids);

    CHECK_THROWS_AS(collator.collate_padded(seqs, indices, 0, 3), std::invalid_argument);
}

TEST_CASE("whole-word masking takes every piece of a word together") {
    const auto vocab = synthetic_vocab();
    mlm::MaskingOptions options;
    options.whole_word = true;
    mlm::MaskingCollator collator(vocab, options, 9);
    // words: [6 7 8] [9] [12 13] [3=control] [14 16] [unk 0] [15 17 19 20]: 14 continues after a control
    const std::vector<int32_t> s = {6, 7, 8, 9, 12, 13, 3, 14, 16, 0, 15, 17, 19, 20};
    const std::vector<std::vector<int>> words = {{0, 1, 2}, {3}, {4, 5}, {7, 8}, {9}, {10, 11, 12, 13}};
    std::vector<long> word_hits(words.size(), 0);
    const int samples = 20000;
    for (int k = 0; k < samples; ++k) {
        std::vector<int32_t> ids(s.size()), labels(s.size());
        collator.mask_sequence(s.data(), static_cast<int>(s.size()), 0, k, ids.data(), labels.data());
        CHECK(labels[6] == mlm::ignore_label);
        for (std::size_t w = 0; w < words.size(); ++w) {
            const bool first = labels[words[w][0]] != mlm::ignore_label;
            for (int i : words[w]) REQUIRE((labels[i] != mlm::ignore_label) == first);
            word_hits[w] += first;
        }
    }
    for (long hits : word_hits) CHECK(std::abs(static_cast<double>(hits) / samples - 0.15) < 0.015);

    // with a real tokenizer's table: "▁" starts words
    mlm::VocabInfo real = synthetic_vocab(10);
    real.word_start = {0, 0, 0, 0, 0, 1, 0, 0, 1, 0};  // 5 "▁un" 6 "believ" 7 "able" 8 "▁story" 9 "."
    options.mask_probability = 1.0;
    mlm::MaskingCollator all(real, options, 1);
    const std::vector<int32_t> sentence = {5, 6, 7, 8, 9};
    std::vector<int32_t> ids(5), labels(5);
    CHECK(all.mask_sequence(sentence.data(), 5, 0, 0, ids.data(), labels.data()) == 5);
    CHECK(ids == std::vector<int32_t>(5, 2));
}

TEST_CASE("at least one target per sequence, when asked") {
    const auto vocab = synthetic_vocab();
    const auto seqs = random_sequences(3000, vocab.vocab_size, 6);
    mlm::MaskingOptions options;
    mlm::MaskingCollator plain(vocab, options, 2);
    options.at_least_one = true;
    mlm::MaskingCollator atleast(vocab, options, 2);
    int empty_plain = 0;
    for (std::size_t k = 0; k < seqs.size(); ++k) {
        const auto& s = seqs[k];
        const bool any_selectable = std::any_of(s.begin(), s.end(), [&](int32_t id) { return !vocab.is_special[id]; });
        std::vector<int32_t> a(s.size()), la(s.size()), b(s.size()), lb(s.size());
        const int na = plain.mask_sequence(s.data(), static_cast<int>(s.size()), 0, k, a.data(), la.data());
        const int nb = atleast.mask_sequence(s.data(), static_cast<int>(s.size()), 0, k, b.data(), lb.data());
        empty_plain += na == 0;
        CHECK(nb >= (any_selectable ? 1 : 0));
        if (na > 0) CHECK(lb == la);  // only sequences with nothing selected change
        else if (any_selectable) CHECK(nb == 1);
    }
    CHECK(empty_plain > 100);  // the default allows sequences without targets

    mlm::MaskingCollator exactly_one(vocab, mlm::MaskingOptions::single_mask(), 2);
    std::vector<long> position_hits(4, 0);
    const std::vector<int32_t> four = {10, 11, 12, 13};
    for (int k = 0; k < 8000; ++k) {
        std::vector<int32_t> ids(4), labels(4);
        REQUIRE(exactly_one.mask_sequence(four.data(), 4, 0, k, ids.data(), labels.data()) == 1);
        for (int i = 0; i < 4; ++i) position_hits[i] += labels[i] != mlm::ignore_label;
    }
    for (long hits : position_hits) CHECK(std::abs(hits / 8000.0 - 0.25) < 0.02);  // uniform
    const std::vector<int32_t> s = {1, 2, 3};  // nothing selectable: no target, no error
    std::vector<int32_t> ids(3), labels(3);
    CHECK(exactly_one.mask_sequence(s.data(), 3, 0, 0, ids.data(), labels.data()) == 0);
    CHECK(ids == s);
}

TEST_CASE("bad input") {
    const auto vocab = synthetic_vocab();
    mlm::MaskingCollator collator(vocab);
    const std::vector<int32_t> s = {5, 1000};
    std::vector<int32_t> ids(2), labels(2);
    CHECK_THROWS_AS(collator.mask_sequence(s.data(), 2, 0, 0, ids.data(), labels.data()), std::out_of_range);
    mlm::Batch batch;
    using Seqs = std::vector<std::vector<int32_t>>;
    using Indices = std::vector<uint64_t>;
    CHECK_THROWS_AS(collator.collate(Seqs{{}}, Indices{0}, 0, batch), std::invalid_argument);
    CHECK_THROWS_AS(collator.collate(Seqs{{5}}, Indices{0, 1}, 0, batch), std::invalid_argument);
    mlm::MaskingOptions bad;
    bad.mask_probability = 1.5;
    CHECK_THROWS_AS((mlm::MaskingCollator{vocab, bad}), std::invalid_argument);
    bad = {};
    bad.mask_fraction = 0.9;
    bad.random_fraction = 0.2;
    CHECK_THROWS_AS((mlm::MaskingCollator{vocab, bad}), std::invalid_argument);
    mlm::VocabInfo short_tables = vocab;
    short_tables.word_start.pop_back();
    CHECK_THROWS_AS(mlm::MaskingCollator{short_tables}, std::invalid_argument);
}
