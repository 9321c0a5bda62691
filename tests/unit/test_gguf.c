/* GGUF reader and writer: round trip of every value type, tensor placement and alignment, and bad
 * files — every truncation of a valid file, wrong magic, absurd counts and offsets, unknown types,
 * duplicate names — each rejected with an error message, never a crash (also run under ASan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "gguf/gguf.h"
#include "herd.h"
#include "testutil.h"

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

static int fill_pattern(void *user, const char *name, uint8_t *dst, uint64_t n) {
    (void)user;
    (void)name;
    for (uint64_t i = 0; i < n; i++) dst[i] = (uint8_t)(i * 7 + 3);
    return 0;
}

/* Writes a small file with every metadata type and three tensors; returns its path. */
static const char *write_sample(void) {
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama", 5);
    gguf_writer_set_u32(w, "test.u32", 4000000000u);
    gguf_writer_set_i32(w, "test.i32", -123456);
    gguf_writer_set_f32(w, "test.f32", 0.25f);
    gguf_writer_set_bool(w, "test.bool", true);
    gguf_writer_set_str(w, "test.str", "h\0llo", 5); /* embedded NUL survives */
    int32_t arr[5] = {1, -2, 3, -4, 5};
    gguf_writer_set_arr(w, "test.arr_i32", GGUF_T_INT32, arr, 5);
    float farr[3] = {1.5f, -2.5f, 3.5f};
    gguf_writer_set_arr(w, "test.arr_f32", GGUF_T_FLOAT32, farr, 3);
    gguf_str strs[3] = {{"a", 1}, {"", 0}, {"ccc", 3}};
    gguf_writer_set_arr_str(w, "test.arr_str", strs, 3);
    gguf_writer_set_u32(w, "test.replaced", 1);
    gguf_writer_set_u32(w, "test.replaced", 2); /* a key set twice keeps the later value */
    static float t0[33];
    for (int i = 0; i < 33; i++) t0[i] = (float)i;
    int64_t ne0[1] = {33}, ne1[2] = {64, 3}, ne2[2] = {32, 2};
    gguf_writer_add_tensor(w, "t.f32", HERD_TYPE_F32, 1, ne0, t0, NULL, NULL);
    gguf_writer_add_tensor(w, "t.q8", HERD_TYPE_Q8_0, 2, ne1, NULL, fill_pattern, NULL);
    gguf_writer_add_tensor(w, "t.f16", HERD_TYPE_F16, 2, ne2, NULL, fill_pattern, NULL);
    const char *p = tmp_path("sample.gguf");
    int rc = gguf_writer_write(w, p);
    CHECK(rc == 0, "write failed: %s", herd_last_error());
    gguf_writer_free(w);
    return p;
}

static void test_round_trip(const char *path) {
    size_t n;
    uint8_t *b = slurp(path, &n);
    gguf_file g;
    int rc = gguf_parse(b, n, "sample", &g);
    CHECK(rc == 0, "parse failed: %s", herd_last_error());
    if (rc) return;
    CHECK(g.version == 3, "version %u", g.version);
    CHECK(g.n_kv == 10, "n_kv %lld", (long long)g.n_kv);
    int64_t v;
    double f;
    bool bl;
    gguf_str s;
    CHECK(gguf_get_int(&g, "test.u32", &v) && v == 4000000000ll, "u32");
    CHECK(gguf_get_int(&g, "test.i32", &v) && v == -123456, "i32");
    CHECK(gguf_get_float(&g, "test.f32", &f) && f == 0.25, "f32");
    CHECK(gguf_get_bool(&g, "test.bool", &bl) && bl, "bool");
    CHECK(gguf_get_str(&g, "test.str", &s) && s.len == 5 && memcmp(s.ptr, "h\0llo", 5) == 0, "string");
    CHECK(gguf_get_int(&g, "test.replaced", &v) && v == 2, "replaced key kept %lld", (long long)v);
    CHECK(!gguf_get_int(&g, "test.str", &v), "a string is not an int");
    CHECK(!gguf_get_int(&g, "missing", &v), "missing key");
    const gguf_kv *a = gguf_get_arr(&g, "test.arr_i32", GGUF_T_INT32);
    CHECK(a && a->arr_n == 5 && ((const int32_t *)a->raw)[3] == -4, "i32 array");
    const gguf_kv *fa = gguf_get_arr(&g, "test.arr_f32", GGUF_T_FLOAT32);
    CHECK(fa && fa->arr_n == 3, "f32 array");
    const gguf_kv *sa = gguf_get_arr(&g, "test.arr_str", GGUF_T_STRING);
    CHECK(sa && sa->arr_n == 3 && sa->strs[1].len == 0 && sa->strs[2].len == 3 && !memcmp(sa->strs[2].ptr, "ccc", 3),
          "string array");
    CHECK(!gguf_get_arr(&g, "test.arr_i32", GGUF_T_FLOAT32), "array of the wrong element type is not returned");
    const gguf_tensor *t = gguf_find_tensor(&g, "t.f32");
    CHECK(t && t->nbytes == 33 * 4 && ((const float *)t->data)[32] == 32.0f, "tensor f32 data");
    const gguf_tensor *q = gguf_find_tensor(&g, "t.q8");
    CHECK(q && q->nbytes == 3 * 2 * 34 && q->ne[0] == 64 && q->ne[1] == 3 && q->data[5] == (uint8_t)(5 * 7 + 3),
          "tensor q8_0 size/data");
    CHECK(q && (uint64_t)(q->data - b) % g.alignment == 0, "tensor data aligned to %llu", (unsigned long long)g.alignment);
    const gguf_tensor *h = gguf_find_tensor(&g, "t.f16");
    CHECK(h && h->offset % 32 == 0 && h->nbytes == 128, "f16 tensor offset %llu", h ? (unsigned long long)h->offset : 0ull);
    CHECK(!gguf_find_tensor(&g, "nope"), "missing tensor");

    /* copy every kv into a new file and parse it back: identical values */
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < g.n_kv; i++) gguf_writer_copy_kv(w, &g.kv[i]);
    const char *p2 = tmp_path("copy.gguf");
    CHECK(gguf_writer_write(w, p2) == 0, "write copy: %s", herd_last_error());
    gguf_writer_free(w);
    size_t n2;
    uint8_t *b2 = slurp(p2, &n2);
    gguf_file g2;
    CHECK(gguf_parse(b2, n2, "copy", &g2) == 0, "parse copy: %s", herd_last_error());
    CHECK(g2.n_kv == g.n_kv, "copied kv count");
    for (int64_t i = 0; i < g.n_kv && i < g2.n_kv; i++) {
        CHECK(strcmp(g.kv[i].key, g2.kv[i].key) == 0 && g.kv[i].type == g2.kv[i].type, "kv %lld", (long long)i);
    }
    const gguf_kv *sa2 = gguf_get_arr(&g2, "test.arr_str", GGUF_T_STRING);
    CHECK(sa2 && sa2->arr_n == 3 && sa2->strs[2].len == 3, "copied string array");
    gguf_file_clear(&g2);
    free(b2);
    gguf_file_clear(&g);
    free(b);
}

/* Every prefix of a valid file that cuts into its header or tensor data must be rejected cleanly;
 * cutting only the zero padding after the last tensor leaves a valid file. */
static void test_truncations(const char *path) {
    size_t n;
    uint8_t *b = slurp(path, &n);
    gguf_file full;
    CHECK(gguf_parse(b, n, "full", &full) == 0, "full file parses");
    size_t end = 0;
    for (int64_t i = 0; i < full.n_tensors; i++) {
        size_t e = (size_t)(full.tensors[i].data - b) + full.tensors[i].nbytes;
        if (e > end) end = e;
    }
    gguf_file_clear(&full);
    CHECK(end <= n && end + 32 > n, "data ends at %zu of %zu", end, n);
    int rejected = 0;
    for (size_t k = 0; k < end; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact-size copy so ASan sees any overread */
        memcpy(copy, b, k);
        gguf_file g;
        int rc = gguf_parse(copy, k, "truncated", &g);
        if (rc != 0) rejected++;
        else gguf_file_clear(&g);
        free(copy);
    }
    CHECK(rejected == (int)end, "%d of %zu truncations rejected", rejected, end);
    free(b);
}

/* Corrupts one field at a time and checks the message mentions what is wrong. */
static void expect_error(const uint8_t *buf, size_t n, const char *want, const char *what) {
    uint8_t *copy = malloc(n);
    memcpy(copy, buf, n);
    gguf_file g;
    int rc = gguf_parse(copy, n, what, &g);
    CHECK(rc != 0, "%s: accepted", what);
    if (rc == 0) gguf_file_clear(&g);
    else CHECK(strstr(herd_last_error(), want) != NULL, "%s: message '%s' lacks '%s'", what, herd_last_error(), want);
    free(copy);
}

static void test_corruptions(void) {
    /* a minimal file: one string kv, one f32 tensor of 4 elements */
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "k", "v", 1);
    static const float four[4] = {1, 2, 3, 4};
    int64_t ne[1] = {4};
    gguf_writer_add_tensor(w, "tensor.x", HERD_TYPE_F32, 1, ne, four, NULL, NULL);
    const char *p = tmp_path("mini.gguf");
    CHECK(gguf_writer_write(w, p) == 0, "write mini");
    gguf_writer_free(w);
    size_t n;
    uint8_t *b = slurp(p, &n);
    /* layout: magic 0, version 4, n_tensors 8, n_kv 16, key len 24, 'k' 32, type 33, str len 37, 'v' 45,
     * tensor name len 46, name 54..62, n_dims 62, ne 66, type 74, offset 78, then padding to 96 */
    uint8_t *c = malloc(n);
#define MUT(off, val, sz, want, what)                                                                         \
    do {                                                                                                      \
        memcpy(c, b, n);                                                                                      \
        uint64_t v_ = (val);                                                                                  \
        memcpy(c + (off), &v_, (sz));                                                                         \
        expect_error(c, n, want, what);                                                                       \
    } while (0)
    MUT(0, 0x46554748, 4, "wrong magic", "bad magic");
    MUT(4, 1, 4, "version", "version 1");
    MUT(4, 99, 4, "version", "version 99");
    MUT(8, (uint64_t)1 << 60, 8, "tensor count", "huge tensor count");
    MUT(16, (uint64_t)1 << 60, 8, "metadata count", "huge kv count");
    MUT(24, (uint64_t)1 << 62, 8, "runs past the end", "huge key length");
    MUT(33, 77, 4, "invalid value type", "bad value type");
    MUT(37, (uint64_t)-1, 8, "runs past the end", "huge string length");
    MUT(62, 0, 4, "dimensions", "zero dims");
    MUT(62, 9, 4, "dimensions", "nine dims");
    MUT(66, 0, 8, "absurd dimension", "zero extent");
    MUT(66, (uint64_t)1 << 50, 8, "absurd dimension", "huge extent");
    MUT(66, 1 << 20, 8, "beyond the end", "extent past the end");
    MUT(74, 1000, 4, "unknown tensor type", "unknown type id");
    MUT(74, 8, 4, "not a multiple", "q8_0 with a 4-element row");
    MUT(78, 4096, 8, "beyond the end", "offset past the end");
    MUT(78, 3, 8, "not aligned", "misaligned offset");
#undef MUT
    /* the tensor name appears in the unknown-type message */
    memcpy(c, b, n);
    uint32_t bad = 1000;
    memcpy(c + 74, &bad, 4);
    expect_error(c, n, "tensor.x", "message names the tensor");
    free(c);
    free(b);

    /* duplicate keys and tensor names */
    w = gguf_writer_new();
    gguf_writer_set_str(w, "a", "1", 1);
    gguf_writer_add_tensor(w, "dup", HERD_TYPE_F32, 1, ne, four, NULL, NULL);
    gguf_writer_add_tensor(w, "dup", HERD_TYPE_F32, 1, ne, four, NULL, NULL);
    CHECK(gguf_writer_write(w, p) == 0, "write dup");
    gguf_writer_free(w);
    b = slurp(p, &n);
    expect_error(b, n, "duplicate tensor name 'dup'", "duplicate tensor");
    free(b);

    expect_error((const uint8_t *)"", 0, "wrong magic", "empty buffer");
}

static void test_alignment_key(void) {
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 64);
    static const float f[3] = {1, 2, 3};
    int64_t ne[1] = {3};
    gguf_writer_add_tensor(w, "a", HERD_TYPE_F32, 1, ne, f, NULL, NULL);
    gguf_writer_add_tensor(w, "b", HERD_TYPE_F32, 1, ne, f, NULL, NULL);
    const char *p = tmp_path("align.gguf");
    CHECK(gguf_writer_write(w, p) == 0, "write align");
    gguf_writer_free(w);
    size_t n;
    uint8_t *b = slurp(p, &n);
    gguf_file g;
    CHECK(gguf_parse(b, n, "align", &g) == 0, "parse align: %s", herd_last_error());
    CHECK(g.alignment == 64 && g.data_offset % 64 == 0, "alignment 64");
    const gguf_tensor *t = gguf_find_tensor(&g, "b");
    CHECK(t && t->offset == 64 && ((const float *)t->data)[2] == 3.0f, "second tensor at 64");
    gguf_file_clear(&g);
    /* non-power-of-two alignment is rejected */
    uint8_t *c = malloc(n);
    memcpy(c, b, n);
    /* the value follows key "general.alignment" (8 + 17 bytes) and its type (4) after the 24-byte header */
    uint32_t bad = 48;
    memcpy(c + 24 + 8 + 17 + 4, &bad, 4);
    expect_error(c, n, "alignment", "alignment 48");
    free(c);
    free(b);
}

static void test_mapping(const char *path) {
    herd_mapped_file f;
    CHECK(herd_file_map(path, &f) == 0, "map");
    CHECK(f.size > 0 && f.data[0] == 'G', "mapped content");
    herd_file_unmap(&f);
    CHECK(herd_file_map(tmp_path("does-not-exist"), &f) != 0 && strstr(herd_last_error(), "does-not-exist"),
          "missing file named in error: %s", herd_last_error());
    CHECK(herd_file_map(g_dir, &f) != 0 && strstr(herd_last_error(), "directory"), "directory rejected");
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/herd-test-gguf-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char *sample = strdup(write_sample()); /* tmp_path() reuses its buffer */
    test_round_trip(sample);
    test_truncations(sample);
    test_corruptions();
    test_alignment_key();
    test_mapping(sample);
    const char *names[] = {"sample.gguf", "copy.gguf", "mini.gguf", "align.gguf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    rmdir(g_dir);
    free(sample);
    return TU_DONE("test_gguf");
}
