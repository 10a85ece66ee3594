/* MLC's group-quantization rule in one pass over the weights, for llmc.quant.group.
 *
 * The numpy version (group._quantize_rows and its caller) is the definition; this computes the same
 * bytes, an order of magnitude faster: numpy makes about twenty passes over each tensor, this one.
 * Every operation is the IEEE float32 one numpy performs, in the same order; the build turns off FMA
 * contraction and fast-math (setup.py), so the bytes are the same on every x86-64 and ARM machine.
 * Called through ctypes, which releases the GIL, so threads over row ranges run in parallel.
 */
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static float f16_table[65536]; /* float16 bits -> float32 (exact), filled at import */

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    float out;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent == 0) {
        out = (float)mantissa * 5.9604644775390625e-08f; /* 2**-24: exact for a subnormal */
        return sign ? -out : out;
    } else {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    memcpy(&out, &bits, 4);
    return out;
}

/* float32 -> nearest float16 (ties to even, subnormals, overflow to infinity) -> float32: numpy's astype */
static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, magnitude = x & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (magnitude > 0x7f800000u ? 0x200 : 0));
    if (magnitude >= 0x477ff000u) /* rounds to beyond 65504 */
        return (uint16_t)(sign | 0x7c00);
    if (magnitude < 0x38800000u) { /* below float16's smallest normal: a subnormal or zero */
        if (magnitude < 0x33000000u) /* at most half the smallest subnormal: ties to even give 0 */
            return (uint16_t)sign;
        uint32_t exponent = magnitude >> 23, mantissa = (magnitude & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - exponent; /* 14..24 */
        uint32_t kept = mantissa >> shift, rest = mantissa & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (kept & 1)))
            kept += 1;
        return (uint16_t)(sign | kept);
    }
    uint32_t rounded = magnitude + 0x0fff + ((magnitude >> 13) & 1) - 0x38000000u;
    return (uint16_t)(sign | (rounded >> 13));
}

static inline uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* rows [n, k] of float16 bits (src_f16) or float32 values, already in the model dtype's values ->
 * q [n, words] uint32 and scale [n, groups] (float16 bits when model_f16, else float32); sums[0] +=
 * the squared reconstruction error, sums[1] += the squared weights. Returns 0, or -1 on bad shapes.
 * The per-element loops are written without branches so that the compiler vectorizes them. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* 8-lane vectors where the CPU has them, picked at load time: the same IEEE operations, so the same bytes
 * (x86-64-v3 has FMA, which -ffp-contract=off keeps the compiler from using) */
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
int mlc_rule(const void *src, int src_f16, int64_t n, int64_t k, int model_f16, int bits, int group_size,
             uint32_t *q, void *scale_out, double *sums) {
    const int per_word = 32 / bits, max_int = (1 << (bits - 1)) - 1;
    if (bits < 2 || bits > 8 || group_size <= 0 || group_size > 256 || group_size % per_word)
        return -1;
    const int64_t groups = (k + group_size - 1) / group_size, words = groups * group_size / per_word;
    const float fmax_int = (float)max_int, top = (float)(2 * max_int);
    const uint32_t round_mask = model_f16 ? 0xffffe000u : 0xffffffffu, round_add = model_f16 ? 0x0fffu : 0u;
    float values[256], codes[256];
    uint32_t levels[256];
    double err_by_lane[256] = {0}, ref_by_lane[256] = {0};
    for (int64_t r = 0; r < n; r++) {
        uint32_t *qrow = q + r * words;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t first = g * group_size;
            const int width = k - first < group_size ? (int)(k - first) : group_size;
            if (src_f16) {
                const uint16_t *in = (const uint16_t *)src + r * k + first;
                for (int i = 0; i < width; i++)
                    values[i] = f16_table[in[i]];
            } else {
                memcpy(values, (const float *)src + r * k + first, (size_t)width * 4);
            }
            for (int i = width; i < group_size; i++)
                values[i] = 0.0f;
            uint32_t peak_bits = 0; /* the largest |value|: for non-NaN floats, bit order is value order */
            for (int i = 0; i < group_size; i++) {
                const uint32_t a = bits_of(values[i]) & 0x7fffffffu;
                peak_bits = a > peak_bits ? a : peak_bits;
            }
            float scale = float_of(peak_bits) / fmax_int;
            if (model_f16) {
                const uint16_t h = f32_to_f16(scale);
                ((uint16_t *)scale_out)[r * groups + g] = h;
                scale = f16_table[h];
            } else {
                ((float *)scale_out)[r * groups + g] = scale;
            }
            for (int i = 0; i < group_size; i++) {
                uint32_t x = bits_of(values[i] / scale);
                /* 0/0 in an all-zero group (or v/0 under a scale that underflowed): q = 0, as TIR's
                 * compare-and-select; then group._round_f16's bit rounding where the model is float16 */
                x = (x & 0x7f800000u) == 0x7f800000u ? bits_of(-fmax_int) : x;
                x = (x + round_add + ((x >> 13) & 1u & round_add)) & round_mask;
                uint32_t y = bits_of(float_of(x) + fmax_int);
                y = (y + round_add + ((y >> 13) & 1u & round_add)) & round_mask;
                /* ties to even, as np.round: adding and taking away 1.5 * 2**23 leaves no fraction bits
                 * (y is within [-1, 2 * max_int + 1], far inside the range where this is exact) */
                float level = (float_of(y) + 12582912.0f) - 12582912.0f;
                level = level < 0.0f ? 0.0f : (level > top ? top : level);
                codes[i] = level - fmax_int;
                levels[i] = (uint32_t)level;
            }
            for (int i = 0; i < group_size; i++) {
                const float diff = codes[i] * scale - values[i];
                err_by_lane[i] += (double)diff * (double)diff;
                ref_by_lane[i] += (double)values[i] * (double)values[i];
            }
            for (int i = width; i < group_size; i++)
                levels[i] = 0; /* K's padding is stored as q = 0 */
            uint32_t *word = qrow + first / per_word; /* a group fills whole words: group_size % per_word == 0 */
            for (int w = 0; w < group_size / per_word; w++) {
                uint32_t packed = 0;
                for (int j = 0; j < per_word; j++)
                    packed |= levels[w * per_word + j] << (j * bits);
                word[w] = packed;
            }
        }
    }
    double err = 0.0, ref = 0.0;
    for (int i = 0; i < group_size; i++) {
        err += err_by_lane[i];
        ref += ref_by_lane[i];
    }
    sums[0] += err;
    sums[1] += ref;
    return 0;
}

/* A Python extension only so that the build and the installer place it beside its package; the
 * functions above are called through ctypes. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rule", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__rule(void) {
    for (uint32_t h = 0; h < 65536; h++)
        f16_table[h] = f16_to_f32((uint16_t)h);
    return PyModule_Create(&module);
}
