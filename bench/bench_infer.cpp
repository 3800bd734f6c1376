// bench_infer — inference speed of mlm::MaskedLM: predict_mask latency and fill-mask throughput.
//
//   bench_infer --make-checkpoint DIR --tokenizer tok.model [--seed 0]
//       writes an untrained reference-size model (config.json, model.safetensors,
//       tokenizer.model) for the speed measurements; its weights are N(0, 0.02) from --seed.
//   bench_infer --checkpoint DIR --predict "a sentence" [--position P] [--threads 1]
//               [--calls 300] [--warmup 30] [--json FILE]
//       predict_mask(sentence, position P) --calls times after --warmup untimed calls; reports the
//       median, min and max latency of one call, and the process CPU time per call. Each call tokenizes, masks, runs the encoder,
//       takes the softmax of the masked row and the top 5, and decodes the texts.
//   bench_infer --checkpoint DIR --fill-mask TEXTS.txt [--threads 2] [--mode parallel|sequential|batched]
//               [--repeats 3] [--json FILE]
//       fill_mask(text, top_k 5) for every line of TEXTS.txt (each holding [MASK]); one untimed
//       pass, then --repeats timed passes; reports sentences/s of the median pass. --mode
//       sequential calls fill_mask for one text after the other (each call may use --threads
//       threads inside); parallel runs --threads callers at once on one MaskedLM (its const
//       members are thread-safe; each call then runs on its caller's thread); batched makes one
//       fill_mask(texts) call, which packs the texts into shared forward passes (--threads inside).
// --json also records the token ids and the top-1 ids, which bench/compare_torch.py compares with
// the PyTorch side's.
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <mlm/masked_lm.hpp>

#include "bench_common.hpp"

using bench::Clock;
using bench::seconds_since;

namespace {

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot read " + path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(f, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

std::string ids_json(const std::vector<int32_t>& ids) {
    std::string s = "[";
    for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
    return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
    std::string make_dir, tokenizer_path, checkpoint, sentence, texts_path, json_path, mode = "parallel";
    int position = -1, threads = 1, calls = 300, warmup = 30, repeats = 3;
    uint64_t seed = 0;
    bool predict = false;
    for (int i = 1; i < argc; i += 2) {
        const std::string k = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "option %s needs a value\n", argv[i]);
            return 2;
        }
        const char* v = argv[i + 1];
        if (k == "--make-checkpoint") make_dir = v;
        else if (k == "--tokenizer") tokenizer_path = v;
        else if (k == "--seed") seed = std::strtoull(v, nullptr, 10);
        else if (k == "--checkpoint") checkpoint = v;
        else if (k == "--predict") sentence = v, predict = true;
        else if (k == "--position") position = std::atoi(v);
        else if (k == "--fill-mask") texts_path = v;
        else if (k == "--mode") mode = v;
        else if (k == "--threads") threads = std::atoi(v);
        else if (k == "--calls") calls = std::atoi(v);
        else if (k == "--warmup") warmup = std::atoi(v);
        else if (k == "--repeats") repeats = std::atoi(v);
        else if (k == "--json") json_path = v;
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }

    if (!make_dir.empty()) {
        mlm::Tokenizer tokenizer = mlm::Tokenizer::load(tokenizer_path);
        mlm::ModelConfig config;  // the reference model
        config.vocab_size = tokenizer.vocab_size();
        mlm::MaskedLM(config, std::move(tokenizer), seed).save(make_dir);
        std::printf("wrote an untrained reference-size model to %s\n", make_dir.c_str());
        return 0;
    }
    if (checkpoint.empty() || (predict == !texts_path.empty()) || calls < 1 || repeats < 1) {
        std::fprintf(stderr, "give --checkpoint DIR and one of --predict TEXT or --fill-mask FILE\n");
        return 2;
    }
    mlm::set_num_threads(threads);
    const mlm::MaskedLM lm = mlm::MaskedLM::load(checkpoint);
    bench::JsonObject j;
    j.str("program", "bench_infer").integer("threads", threads);

    if (predict) {
        mlm::MaskPrediction p;
        for (int c = 0; c < warmup; ++c) p = lm.predict_mask(sentence, 0, position);
        std::vector<double> ms;
        ms.reserve(static_cast<std::size_t>(calls));
        const std::clock_t cpu0 = std::clock();
        for (int c = 0; c < calls; ++c) {
            const auto t0 = Clock::now();
            p = lm.predict_mask(sentence, 0, position);
            ms.push_back(seconds_since(t0) * 1e3);
        }
        const double cpu_ms = 1e3 * static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC / calls;
        const bench::Stat s = bench::stat(ms);
        std::printf("%s", mlm::format_prediction(p).c_str());
        std::printf("predict_mask, %zu tokens, %d thread(s): median %.3f ms (min %.3f, max %.3f) over %d calls; "
                    "%.3f ms of CPU time per call\n", p.input_ids.size(), threads, s.median, s.min, s.max, calls, cpu_ms);
        std::vector<int32_t> top;
        for (const auto& t : p.top_k) top.push_back(t.id);
        j.str("what", "predict_mask")
            .integer("calls", calls)
            .integer("warmup", warmup)
            .integer("num_tokens", static_cast<long long>(p.input_ids.size()))
            .integer("position", p.position)
            .raw("input_ids", ids_json(p.input_ids))
            .raw("top_ids", ids_json(top))
            .str("masked_text", p.masked_text)
            .str("predicted_text", p.predicted_text)
            .stat("latency_ms", s)
            .num("cpu_ms_per_call", cpu_ms);
    } else {
        const std::vector<std::string> texts = read_lines(texts_path);
        const int n = static_cast<int>(texts.size());
        const bool parallel = mode == "parallel", batched = mode == "batched";
        if (!parallel && !batched && mode != "sequential") {
            std::fprintf(stderr, "--mode is batched, sequential or parallel\n");
            return 2;
        }
        std::vector<std::vector<std::vector<mlm::FillMaskCandidate>>> results(static_cast<std::size_t>(n));
        auto pass = [&] {
            const auto t0 = Clock::now();
            if (batched) {
                results = lm.fill_mask(texts, 5);
            } else if (parallel) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
                for (int i = 0; i < n; ++i) results[static_cast<std::size_t>(i)] = lm.fill_mask(texts[i], 5);
            } else {
                for (int i = 0; i < n; ++i) results[static_cast<std::size_t>(i)] = lm.fill_mask(texts[i], 5);
            }
            return seconds_since(t0);
        };
        pass();  // warm-up: sizes the workspaces
        std::vector<double> rate, cpu_rate;
        for (int r = 0; r < repeats; ++r) {
            const std::clock_t cpu0 = std::clock();
            rate.push_back(n / pass());
            cpu_rate.push_back(n / (static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC));
        }
        const bench::Stat s = bench::stat(rate);
        std::printf("fill-mask, %d texts, %s, %d thread(s): median %.1f sentences/s (min %.1f, max %.1f) over %d "
                    "passes\n", n, mode.c_str(), threads, s.median, s.min, s.max, repeats);
        std::string ids = "[", top1 = "[";
        long tokens = 0;
        for (int i = 0; i < n; ++i) {
            const std::vector<int32_t> enc = lm.encode(texts[i]);
            tokens += static_cast<long>(enc.size());
            ids += (i ? "," : "") + ids_json(enc);
            std::vector<int32_t> best;
            for (const auto& per_mask : results[static_cast<std::size_t>(i)]) best.push_back(per_mask.front().token);
            top1 += (i ? "," : "") + ids_json(best);
        }
        j.str("what", "fill_mask")
            .str("mode", mode)
            .integer("texts", n)
            .integer("tokens", tokens)
            .integer("repeats", repeats)
            .array("sentences_per_s", rate)
            .stat("sentences_per_s_stat", s)
            .array("sentences_per_cpu_s", cpu_rate)
            .raw("input_ids", ids + "]")
            .raw("top1_ids", top1 + "]");
    }
    j.integer("peak_rss_kib", bench::proc_status_kib("VmHWM"));
    if (!json_path.empty()) j.write(json_path);
}
