/* Group quantization in one pass over the weights, for llmc.quant.group and llmc.quant.search.
 *
 * mlc_rule: MLC's rule. The numpy version (group._quantize_rows and its caller) is its definition;
 * this computes the same bytes, an order of magnitude faster (numpy makes about twenty passes over each
 * tensor): every operation is the IEEE float32 one numpy performs, in the same order.
 * search_groups: llmc's least-squares search (llmc.quant.search describes it). This C is its definition:
 * its sums run in a fixed order (8 float lanes, then the lanes in order into a double).
 * The build turns off FMA contraction and fast-math (setup.py), so the bytes are the same on every
 * x86-64 and ARM machine. Called through ctypes, which releases the GIL, so threads over row ranges run
 * in parallel.
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

/* f16_to_f32 without branches or a table lookup, so that a loop of it vectorizes: the same bits */
static inline float widen_f16(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, magnitude = (uint32_t)(h & 0x7fff) << 13;
    const uint32_t exponent = h & 0x7c00;
    const uint32_t subnormal = bits_of((float)(int32_t)(h & 0x3ff) * 5.9604644775390625e-08f);
    const uint32_t is_subnormal = 0u - (exponent == 0), is_special = 0u - (exponent == 0x7c00);
    const uint32_t normal = ((magnitude | 0x7f800000u) & is_special) | ((magnitude + (112u << 23)) & ~is_special);
    return float_of(sign | (subnormal & is_subnormal) | (normal & ~is_subnormal));
}

/* a group's values (zero past K) as float32, from float16 bits or float32 */
static inline void load_group(const void *src, int src_f16, int64_t at, int width, int group_size, float *values) {
    if (src_f16) {
        const uint16_t *in = (const uint16_t *)src + at;
        for (int i = 0; i < width; i++)
            values[i] = widen_f16(in[i]);
    } else {
        memcpy(values, (const float *)src + at, (size_t)width * 4);
    }
    for (int i = width; i < group_size; i++)
        values[i] = 0.0f;
}

/* a group's signed codes packed into its words (K's padding stored as q = 0), its squared error and
 * squared values added per lane (a group fills whole words: group_size % per_word == 0) */
static inline void store_group(const float *codes, const float *values, float scale, int width, int group_size,
                               int bits, uint32_t *word, double *err_by_lane, double *ref_by_lane) {
    const int per_word = 32 / bits;
    const float fmax_int = (float)((1 << (bits - 1)) - 1);
    uint32_t levels[256];
    for (int i = 0; i < group_size; i++) {
        const float diff = codes[i] * scale - values[i];
        err_by_lane[i] += (double)diff * (double)diff;
        ref_by_lane[i] += (double)values[i] * (double)values[i];
        levels[i] = i < width ? (uint32_t)(codes[i] + fmax_int) : 0;
    }
    for (int w = 0; w < group_size / per_word; w++) {
        uint32_t packed = 0;
        for (int j = 0; j < per_word; j++)
            packed |= levels[w * per_word + j] << (j * bits);
        word[w] = packed;
    }
}

static void add_lanes(const double *err_by_lane, const double *ref_by_lane, int group_size, double *sums) {
    double err = 0.0, ref = 0.0;
    for (int i = 0; i < group_size; i++) {
        err += err_by_lane[i];
        ref += ref_by_lane[i];
    }
    sums[0] += err;
    sums[1] += ref;
}

/* rows [n, k] of float16 bits (src_f16) or float32 values, already in the model dtype's values ->
 * q [n, words] uint32 and scale [n, groups] (float16 bits when model_f16, else float32); sums[0] +=
 * the squared reconstruction error, sums[1] += the squared weights. Returns 0, or -1 on bad shapes.
 * The per-element loops are written without branches so that the compiler vectorizes them. */
/* MLC's rule over rows [n, k]; inlined into mlc_rule with constant sizes for the common shapes, so that
 * the compiler unrolls the per-group loops */
static inline __attribute__((always_inline)) void mlc_rows(
        const void *src, int src_f16, int64_t n, int64_t k, int model_f16, int bits, int group_size, uint32_t *q,
        void *scale_out, double *err_by_lane, double *ref_by_lane) {
    const int per_word = 32 / bits, max_int = (1 << (bits - 1)) - 1;
    const int64_t groups = (k + group_size - 1) / group_size, words = groups * group_size / per_word;
    const float fmax_int = (float)max_int;
    const int32_t top = 2 * max_int;
    const uint32_t round_mask = model_f16 ? 0xffffe000u : 0xffffffffu, round_add = model_f16 ? 0x0fffu : 0u;
    float values[256], codes[256];
    for (int64_t r = 0; r < n; r++) {
        for (int64_t g = 0; g < groups; g++) {
            const int64_t first = g * group_size;
            const int width = k - first < group_size ? (int)(k - first) : group_size;
            load_group(src, src_f16, r * k + first, width, group_size, values);
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
                int32_t level = (int32_t)((float_of(y) + 12582912.0f) - 12582912.0f); /* a whole number */
                level = level < 0 ? 0 : (level > top ? top : level);
                codes[i] = (float)(level - max_int);
            }
            store_group(codes, values, scale, width, group_size, bits, q + r * words + first / per_word,
                        err_by_lane, ref_by_lane);
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* 8-lane vectors where the CPU has them, picked at load time: the same IEEE operations, so the same bytes
 * (x86-64-v3 has FMA, which -ffp-contract=off keeps the compiler from using) */
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
int mlc_rule(const void *src, int src_f16, int64_t n, int64_t k, int model_f16, int bits, int group_size,
             uint32_t *q, void *scale_out, double *sums) {
    const int per_word = 32 / bits;
    if (bits < 2 || bits > 8 || group_size <= 0 || group_size > 256 || group_size % per_word)
        return -1;
    double err_by_lane[256] = {0}, ref_by_lane[256] = {0};
    const int q4 = bits == 4 && group_size == 32 && k % 32 == 0; /* q4f16_1 and q4f32_1 */
    if (q4 && src_f16 && model_f16)
        mlc_rows(src, 1, n, k, 1, 4, 32, q, scale_out, err_by_lane, ref_by_lane);
    else if (q4 && src_f16)
        mlc_rows(src, 1, n, k, 0, 4, 32, q, scale_out, err_by_lane, ref_by_lane);
    else if (q4 && !model_f16)
        mlc_rows(src, 0, n, k, 0, 4, 32, q, scale_out, err_by_lane, ref_by_lane);
    else
        mlc_rows(src, src_f16, n, k, model_f16, bits, group_size, q, scale_out, err_by_lane, ref_by_lane);
    add_lanes(err_by_lane, ref_by_lane, group_size, sums);
    return 0;
}

#define LANES 8

/* sum of a[i] * b[i]: 8 float lanes (vectorized, fixed order), then the lanes in order into a double */
static double dot(const float *a, const float *b, int n) {
    float lane[LANES] = {0};
    for (int i = 0; i < n; i += LANES)
        for (int l = 0; l < LANES; l++)
            lane[l] += a[i + l] * b[i + l];
    double total = 0.0;
    for (int l = 0; l < LANES; l++)
        total += lane[l];
    return total;
}

/* a scale rounded to the stored dtype, as a float32 value */
static float stored(float scale, int model_f16) {
    return model_f16 ? f16_table[f32_to_f16(scale)] : scale;
}

/* codes = clip(round_half_even(x * inv), lo, hi); NaN (0 * inf) goes to lo */
static void codes_for(const float *x, float inv, float lo, float hi, float *codes, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i] * inv;
        v = (v + 12582912.0f) - 12582912.0f; /* exact ties to even for |v| < 2**22; beyond, clipped */
        v = v > lo ? v : lo;
        codes[i] = v < hi ? v : hi;
    }
}

typedef struct {
    const float *weighted, *importance;
    double sxx;
    int n, model_f16;
    float lo, hi;
    float *codes, *best_codes, *scratch;
    float best_scale;
    double best_err;
} Search;

/* judge codes (in s->codes): the least-squares scale rounded to the stored dtype (or a fixed one), and
 * sum importance * (x - scale * codes)^2 = sxx - 2 scale sxl + scale^2 sll; keep them if strictly better */
static void judge(Search *s, int fixed, float fixed_scale) {
    for (int i = 0; i < s->n; i++)
        s->scratch[i] = s->codes[i] * s->importance[i];
    const double sxl = dot(s->weighted, s->codes, s->n), sll = dot(s->codes, s->scratch, s->n);
    const float scale = fixed ? fixed_scale : stored(sll > 0 ? (float)(sxl / sll) : 0.0f, s->model_f16);
    const double sc = scale, err = s->sxx - 2 * sc * sxl + sc * sc * sll;
    if (fixed || err < s->best_err) {
        s->best_err = err;
        s->best_scale = scale;
        memcpy(s->best_codes, s->codes, (size_t)s->n * 4);
    }
}

static float inverse(float scale) {
    return scale != 0.0f ? 1.0f / scale : 0.0f;
}

/* rows [n, k] as mlc_rule takes them; importance: [groups * group_size] weights of each position's
 * squared error (calibration's), or NULL for |w| + the group's RMS; grid: offsets from max_int + 1 where
 * the group's largest-magnitude value may land; rounds of re-rounding against the winner. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
int search_groups(const void *src, int src_f16, int64_t n, int64_t k, int model_f16, int bits, int group_size,
                  const float *importance, const float *grid, int grid_size, int rounds, uint32_t *q,
                  void *scale_out, double *sums) {
    const int per_word = 32 / bits, max_int = (1 << (bits - 1)) - 1;
    if (bits < 2 || bits > 8 || group_size <= 0 || group_size > 256 || group_size % per_word ||
        group_size % LANES)
        return -1;
    const int64_t groups = (k + group_size - 1) / group_size, words = groups * group_size / per_word;
    const float fmax_int = (float)max_int;
    float values[256], weights[256], weighted[256], codes[256], best[256], scratch[256];
    double err_by_lane[256] = {0}, ref_by_lane[256] = {0};
    Search s = {.weighted = weighted, .importance = weights, .n = group_size, .model_f16 = model_f16,
                .lo = -fmax_int, .hi = fmax_int + 1.0f, .codes = codes, .best_codes = best, .scratch = scratch};
    for (int64_t r = 0; r < n; r++) {
        for (int64_t g = 0; g < groups; g++) {
            const int64_t first = g * group_size;
            const int width = k - first < group_size ? (int)(k - first) : group_size;
            load_group(src, src_f16, r * k + first, width, group_size, values);
            if (importance != NULL) {
                memcpy(weights, importance + g * group_size, (size_t)group_size * 4);
            } else {
                const float rms = sqrtf((float)dot(values, values, group_size) / (float)group_size);
                for (int i = 0; i < group_size; i++)
                    weights[i] = fabsf(values[i]) + rms;
            }
            for (int i = 0; i < group_size; i++)
                weighted[i] = values[i] * weights[i];
            s.sxx = dot(weighted, values, group_size);
            float peak = 0.0f, peak_abs = 0.0f; /* the first value of the largest magnitude, signed */
            for (int i = 0; i < group_size; i++) {
                const float a = fabsf(values[i]);
                if (a > peak_abs) {
                    peak_abs = a;
                    peak = values[i];
                }
            }
            /* MLC's rule first: scale max|w| / max_int, codes within +-max_int */
            const float mlc_scale = stored(peak_abs / fmax_int, model_f16);
            codes_for(values, inverse(mlc_scale), -fmax_int, fmax_int, codes, group_size);
            judge(&s, 1, mlc_scale);
            const float inv_peak = inverse(peak);
            for (int c = 0; c < grid_size; c++) {
                codes_for(values, inv_peak * (s.hi + grid[c]), s.lo, s.hi, codes, group_size);
                judge(&s, 0, 0.0f);
            }
            for (int round = 0; round < rounds; round++) { /* codes re-rounded against the winner's scale */
                codes_for(values, inverse(s.best_scale), s.lo, s.hi, codes, group_size);
                judge(&s, 0, 0.0f);
            }
            if (model_f16)
                ((uint16_t *)scale_out)[r * groups + g] = f32_to_f16(s.best_scale);
            else
                ((float *)scale_out)[r * groups + g] = s.best_scale;
            store_group(best, values, s.best_scale, width, group_size, bits, q + r * words + first / per_word,
                        err_by_lane, ref_by_lane);
        }
    }
    add_lanes(err_by_lane, ref_by_lane, group_size, sums);
    return 0;
}

/* A Python extension only so that the build and the installer place it beside its package; the
 * functions above are called through ctypes. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_group", .m_size = -1};

PyMODINIT_FUNC PyInit__group(void) {
    for (uint32_t h = 0; h < 65536; h++)
        f16_table[h] = f16_to_f32((uint16_t)h);
    return PyModule_Create(&module);
}
