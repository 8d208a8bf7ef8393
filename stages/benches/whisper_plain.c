/* The whisper.cpp peer for stt_bench: what whisper.cpp's own CLI does, built from the
 * same vendored whisper.cpp (whisper-rs-sys's static libraries) with the same threads.
 * The CLI's source (examples/cli) is not vendored in the crate, so this is its core:
 * read a 16 kHz mono 16-bit WAV, run whisper_full with the library's greedy defaults on
 * the whole file (no VAD, full 30 s windows), print the text and the time.
 *
 * usage: whisper_plain MODEL.bin INPUT.wav THREADS [LANG]
 * build: stages/benches/build_whisper_plain.sh */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include "whisper.h"

static void quiet(enum ggml_log_level level, const char * text, void * user) { (void) level; (void) text; (void) user; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char ** argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s MODEL INPUT.wav THREADS [LANG]\n", argv[0]); return 2; }
    whisper_log_set(quiet, NULL);
    FILE * f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END); long size = ftell(f); fseek(f, 0, SEEK_SET);
    unsigned char * buf = malloc(size);
    if (fread(buf, 1, size, f) != (size_t) size) { fprintf(stderr, "short read\n"); return 1; }
    fclose(f);
    /* Find the "fmt " and "data" chunks. */
    long pos = 12; int channels = 0, rate = 0, bits = 0; long data = -1, data_len = 0;
    while (pos + 8 <= size) {
        uint32_t len = buf[pos+4] | buf[pos+5] << 8 | buf[pos+6] << 16 | (uint32_t) buf[pos+7] << 24;
        if (!memcmp(buf + pos, "fmt ", 4)) {
            channels = buf[pos+10] | buf[pos+11] << 8;
            rate = buf[pos+12] | buf[pos+13] << 8 | buf[pos+14] << 16;
            bits = buf[pos+22] | buf[pos+23] << 8;
        } else if (!memcmp(buf + pos, "data", 4)) { data = pos + 8; data_len = len; break; }
        pos += 8 + len + (len & 1);
    }
    if (data < 0 || channels != 1 || rate != 16000 || bits != 16) {
        fprintf(stderr, "%s: need 16 kHz mono 16-bit PCM WAV\n", argv[2]); return 1;
    }
    if (data + data_len > size) data_len = size - data;
    int n = data_len / 2;
    float * pcm = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) pcm[i] = (int16_t) (buf[data + 2*i] | buf[data + 2*i + 1] << 8) / 32768.0f;

    double t0 = now();
    struct whisper_context_params cparams = whisper_context_default_params();
    struct whisper_context * ctx = whisper_init_from_file_with_params(argv[1], cparams);
    if (!ctx) { fprintf(stderr, "%s: cannot load\n", argv[1]); return 1; }
    double t1 = now();
    struct whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    p.n_threads = atoi(argv[3]);
    p.language = argc > 4 ? argv[4] : "en";
    p.print_progress = false; p.print_realtime = false; p.print_timestamps = false; p.print_special = false;
    if (whisper_full(ctx, p, pcm, n) != 0) { fprintf(stderr, "whisper_full failed\n"); return 1; }
    double t2 = now();
    printf("load_s=%.3f transcribe_s=%.3f audio_s=%.3f\n", t1 - t0, t2 - t1, n / 16000.0);
    for (int i = 0; i < whisper_full_n_segments(ctx); i++) printf("%s\n", whisper_full_get_segment_text(ctx, i));
    whisper_free(ctx);
    return 0;
}
