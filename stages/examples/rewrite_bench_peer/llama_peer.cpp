// The llama.cpp side of `rewrite_bench`: prefill and decode tokens/s of a GGUF through
// llama.cpp's library, measured like the Rust bench (same prompt length, decode length,
// thread count, best of N). llama.cpp's own llama-bench is not shipped in the vendored source
// of the llama-cpp-sys-2 crate, so this stands in for it; see README.md beside it.
//
// usage: llama_peer MODEL.gguf THREADS N_PROMPT N_GEN REPEATS
// prints: "prefill_tok_s decode_tok_s"
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL.gguf THREADS N_PROMPT N_GEN REPEATS\n", argv[0]);
        return 2;
    }
    const int threads = atoi(argv[2]), n_prompt = atoi(argv[3]), n_gen = atoi(argv[4]), reps = atoi(argv[5]);
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "%s: cannot load\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_gen + 16;
    cp.n_batch = n_prompt;
    cp.n_ubatch = n_prompt;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot make a context\n"); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::vector<llama_token> prompt(n_prompt);
    for (int i = 0; i < n_prompt; i++) prompt[i] = (i * 7919 + 13) % n_vocab;
    double best_pp = 1e30, best_tg = 1e30;
    for (int r = 0; r < reps; r++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        auto t0 = std::chrono::steady_clock::now();
        if (llama_decode(ctx, llama_batch_get_one(prompt.data(), n_prompt))) { fprintf(stderr, "decode failed\n"); return 1; }
        llama_synchronize(ctx);
        auto t1 = std::chrono::steady_clock::now();
        llama_token tok = prompt[0];
        for (int i = 0; i < n_gen; i++) {
            if (llama_decode(ctx, llama_batch_get_one(&tok, 1))) { fprintf(stderr, "decode failed\n"); return 1; }
            llama_synchronize(ctx);
        }
        auto t2 = std::chrono::steady_clock::now();
        double pp = std::chrono::duration<double>(t1 - t0).count(), tg = std::chrono::duration<double>(t2 - t1).count();
        if (pp < best_pp) best_pp = pp;
        if (tg < best_tg) best_tg = tg;
    }
    printf("%f %f\n", n_prompt / best_pp, n_gen / best_tg);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
