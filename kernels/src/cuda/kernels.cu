// revoice's DSP kernels, compiled at run time by NVRTC (with --fmad=false, so every
// product and sum rounds exactly as in the CPU twins in kernels/src/*.rs).

__device__ __forceinline__ double sample_at(const float* x, long long n, long long i) {
    return (i >= 0 && i < n) ? (double)x[i] : 0.0;
}

// WSOLA offset search: one block, sequential over frames, threads over candidate offsets.
// Twin: stretch::search_positions. Scores, tie-break (lowest offset wins) and the f64
// sums are the same; the block's argmax reduction gives the same winner as a scan.
// Needs blockDim.x a power of two and blockDim.x * (8 + 4) bytes of dynamic shared memory.
extern "C" __global__ void wsola_search(const float* x, long long n, const long long* nominal,
                                        int frames, int hop, int win, int tol, long long* chosen) {
    extern __shared__ double shared[];
    double* best_score = shared;
    int* best_index = (int*)(shared + blockDim.x);
    __shared__ long long previous;
    if (threadIdx.x == 0) {
        previous = nominal[0];
        chosen[0] = previous;
    }
    __syncthreads();
    const int candidates = 2 * tol + 1;
    for (int k = 1; k < frames; k++) {
        const long long templ = previous + hop;
        const long long base = nominal[k] - tol;
        double mine = __longlong_as_double(0xfff0000000000000ULL);  // -inf
        int mine_index = 0x7fffffff;
        for (int d = threadIdx.x; d < candidates; d += blockDim.x) {
            const long long c = base + d;
            double dot = 0.0, energy = 0.0;
            for (int j = 0; j < win; j++) {
                const double cv = sample_at(x, n, c + j);
                dot += sample_at(x, n, templ + j) * cv;
                energy += cv * cv;
            }
            const double s = dot / sqrt(energy + 1e-12);
            if (s > mine) { mine = s; mine_index = d; }
        }
        best_score[threadIdx.x] = mine;
        best_index[threadIdx.x] = mine_index;
        __syncthreads();
        for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
            if (threadIdx.x < stride) {
                const double s2 = best_score[threadIdx.x + stride];
                const int i2 = best_index[threadIdx.x + stride];
                if (s2 > best_score[threadIdx.x] || (s2 == best_score[threadIdx.x] && i2 < best_index[threadIdx.x])) {
                    best_score[threadIdx.x] = s2;
                    best_index[threadIdx.x] = i2;
                }
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            previous = base + best_index[0];
            chosen[k] = previous;
        }
        __syncthreads();
    }
}

// WSOLA overlap-add: one thread per output sample. Twin: stretch::overlap_add.
extern "C" __global__ void wsola_ola(const float* x, long long n, const long long* chosen, int frames,
                                     int hop, int win, const double* window, float* out, long long out_len) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= out_len) return;
    const long long lo = i + 1 - win;
    const long long first = lo <= 0 ? 0 : (lo + hop - 1) / hop;
    long long last = i / hop;
    if (last > frames - 1) last = frames - 1;
    double num = 0.0, den = 0.0;
    for (long long k = first; k <= last; k++) {
        const long long j = i - k * hop;
        num += window[j] * sample_at(x, n, chosen[k] + j);
        den += window[j];
    }
    out[i] = (float)(num / den);
}

// Polyphase windowed-sinc resampling: one thread per output sample.
// Twin: resample::resample_with (with ResamplePlan::locate).
extern "C" __global__ void resample_poly(const float* x, long long n, const float* table, int taps,
                                         unsigned long long phases, unsigned long long in_rate,
                                         unsigned long long out_rate, float* out, long long out_len) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= out_len) return;
    const unsigned long long pos = (unsigned long long)i * in_rate;
    unsigned long long base = pos / out_rate;
    unsigned long long phase = ((pos % out_rate) * phases + out_rate / 2) / out_rate;
    if (phase == phases) { base += 1; phase = 0; }
    const long long first = (long long)base - taps / 2 + 1;
    const float* row = table + phase * taps;
    double acc = 0.0;
    for (int j = 0; j < taps; j++) {
        const long long s = first + j;
        if (s >= 0 && s < n) acc += (double)row[j] * (double)x[s];
    }
    out[i] = (float)acc;
}

// Mean square of each 400 ms gating block of the K-weighted signal: one thread per block.
// Twin: loudness::block_energies.
extern "C" __global__ void block_energy(const double* y, long long block, long long step,
                                        long long count, double* z) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= count) return;
    const double* p = y + j * step;
    double sum = 0.0;
    for (long long i = 0; i < block; i++) {
        const double v = p[i];
        sum += v * v;
    }
    z[j] = sum / (double)block;
}

// out = a * ga + b * gb, the shorter input padded with zeros. Twin: loudness::mix.
extern "C" __global__ void mix2(const float* a, long long na, float ga, const float* b, long long nb,
                                float gb, float* out, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float va = i < na ? a[i] : 0.0f;
    const float vb = i < nb ? b[i] : 0.0f;
    out[i] = va * ga + vb * gb;
}
