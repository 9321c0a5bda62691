/* Hugging Face formats, piece by piece (the whole path is tests/conformance/hf_dir.sh):
 *
 *   safetensors   a valid header parses (names, dtypes, shapes, data pointers); each kind of bad header
 *                 (length, JSON, offsets, size vs shape, alignment, dtype) is refused naming the tensor
 *   names         every LlamaForCausalLM tensor name maps to GGUF and back; others do not map
 *   config.json   llama3 rope scaling (factor 8 and 32), FP8 quantization_config, eos lists, defaults
 *   rope_freqs    the divisors for factor 8 and 32 against the formula in double precision
 *   tiktoken      merges recovered from ranks tokenize as tiktoken does on a small table
 * Exit status 0 = pass, 1 = fail.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hf_config.h"
#include "formats/hf_dir.h"
#include "formats/safetensors.h"
#include "herd.h"
#include "model/model.h"
#include "testutil.h"
#include "tokenizer/hf_vocab.h"
#include "tokenizer/vocab.h"

/* safetensors bytes: 8-byte length + header + data (8-aligned buffer from malloc) */
static uint8_t *st_make(const char *header, size_t data_bytes, size_t *size) {
    size_t n = strlen(header), padded = (n + 7) / 8 * 8; /* spaces keep the data section 8-aligned */
    *size = 8 + padded + data_bytes;
    uint8_t *b = calloc(1, *size);
    uint64_t len = padded;
    memcpy(b, &len, 8);
    memset(b + 8, ' ', padded);
    memcpy(b + 8, header, n);
    return b;
}

static int st_try(const char *header, size_t data_bytes, st_file *f) {
    size_t size;
    uint8_t *b = st_make(header, data_bytes, &size);
    int rc = st_parse(b, size, "t.safetensors", f);
    if (rc == 0) st_file_clear(f);
    free(b);
    return rc;
}

static void test_safetensors(void) {
    const char *good = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]},"
                       "\"c\":{\"dtype\":\"F8_E4M3\",\"shape\":[4,1],\"data_offsets\":[24,28]}}";
    size_t size;
    uint8_t *buf = st_make(good, 28, &size);
    st_file f;
    int rc = st_parse(buf, size, "t.safetensors", &f);
    CHECK(rc == 0, "valid header: %s", herd_last_error());
    if (rc == 0) {
        const st_tensor *a = st_find(&f, "a"), *c = st_find(&f, "c");
        CHECK(f.n_tensors == 3 && a && c, "3 tensors found");
        CHECK(a && a->type == HERD_TYPE_BF16 && a->n_dims == 2 && a->shape[0] == 2 && a->shape[1] == 3 &&
                  a->nbytes == 12 && a->data == buf + f.data_offset,
              "tensor a");
        CHECK(c && c->type == HERD_TYPE_FP8_E4M3 && c->data == buf + f.data_offset + 24, "tensor c");
        st_file_clear(&f);
    }
    free(buf);
    static const struct {
        const char *header, *want;
        size_t data;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "beyond the end", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", "need 16", 16},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}  ", "not aligned", 8},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", "unknown dtype 'Q4'", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "invalid dimension", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", "invalid data_offsets", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}",
         "absurdly", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "two data_offsets", 8},
        {"{\"a\":[1,2]}", "not an object", 8},
        {"[1,2,3]", "not a JSON object", 8},
        {"{\"a\":", "not valid JSON", 8},
        {"{\"a\":{},\"a\":{}}", "not valid JSON", 8}, /* duplicate names */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_file g;
        rc = st_try(bad[i].header, bad[i].data, &g);
        CHECK(rc != 0 && strstr(herd_last_error(), bad[i].want), "bad header %zu: rc %d, '%s' lacks '%s'", i,
              rc, herd_last_error(), bad[i].want);
    }
    uint8_t tiny[12] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    CHECK(st_parse(tiny, sizeof tiny, "t", &f) != 0 && strstr(herd_last_error(), "does not fit"),
          "header length");
    CHECK(st_parse(tiny, 5, "t", &f) != 0 && strstr(herd_last_error(), "too short"), "5-byte file");
}

static void test_names(void) {
    static const char *const hf[] = {"model.embed_tokens.weight",
                                     "model.norm.weight",
                                     "lm_head.weight",
                                     "model.layers.0.input_layernorm.weight",
                                     "model.layers.12.self_attn.q_proj.weight",
                                     "model.layers.3.self_attn.k_proj.weight",
                                     "model.layers.3.self_attn.v_proj.weight",
                                     "model.layers.125.self_attn.o_proj.weight",
                                     "model.layers.1.post_attention_layernorm.weight",
                                     "model.layers.1.mlp.gate_proj.weight",
                                     "model.layers.1.mlp.up_proj.weight",
                                     "model.layers.1.mlp.down_proj.weight_scale"};
    static const char *const gg[] = {
        "token_embd.weight",      "output_norm.weight",         "output.weight",
        "blk.0.attn_norm.weight", "blk.12.attn_q.weight",       "blk.3.attn_k.weight",
        "blk.3.attn_v.weight",    "blk.125.attn_output.weight", "blk.1.ffn_norm.weight",
        "blk.1.ffn_gate.weight",  "blk.1.ffn_up.weight",        "blk.1.ffn_down.weight_scale"};
    char a[128], b[128];
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
        bool ok = hf_name_to_gguf(hf[i], a, sizeof a) && strcmp(a, gg[i]) == 0 &&
                  hf_name_from_gguf(a, b, sizeof b) && strcmp(b, hf[i]) == 0;
        CHECK(ok, "%s <-> %s (got %s, %s)", hf[i], gg[i], a, b);
    }
    static const char *const no[] = {"model.layers.x.mlp.up_proj.weight",
                                     "model.layers.1.mlp.up_proj.bias",
                                     "model.layers.1.input_layernorm.weight_scale",
                                     "model.layers.1.",
                                     "model.layers.99999999999.mlp.up_proj.weight",
                                     "lm_head.weight_scale",
                                     ""};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK(!hf_name_to_gguf(no[i], a, sizeof a), "'%s' maps", no[i]);
}

static void test_config(void) {
    const char *j =
        "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":2048,\"intermediate_size\":8192,"
        "\"num_hidden_layers\":16,\"num_attention_heads\":32,\"num_key_value_heads\":8,\"head_dim\":64,"
        "\"vocab_size\":128256,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,\"tie_word_embeddings\":true,"
        "\"max_position_embeddings\":131072,\"bos_token_id\":128000,\"eos_token_id\":[128001,128008,128009],"
        "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
        "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
        "\"quantization_config\":{\"quant_method\":\"fbgemm_fp8\",\"activation_scale_ub\":1200.0}}";
    hf_config c;
    int rc = hf_config_parse(j, strlen(j), "config.json", &c);
    CHECK(rc == 0, "Llama 3.2 1B config: %s", herd_last_error());
    CHECK(c.n_embd == 2048 && c.n_layer == 16 && c.n_head == 32 && c.n_head_kv == 8 && c.head_dim == 64 &&
              c.n_ff == 8192 && c.n_vocab == 128256 && c.tie_word_embeddings && c.n_ctx_train == 131072,
          "shape");
    CHECK(c.rope_kind == HF_ROPE_LLAMA3 && c.rope_factor == 32 && c.rope_orig_ctx == 8192, "rope scaling");
    CHECK(c.fp8 && c.fp8_act_ub == 1200.0f, "fbgemm_fp8");
    CHECK(c.bos_id == 128000 && c.n_eos == 3 && c.eos_ids[2] == 128009, "special ids");
    const char *m =
        "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":4,\"vocab_size\":10}";
    rc = hf_config_parse(m, strlen(m), "config.json", &c);
    CHECK(rc == 0 && c.n_head_kv == 4 && c.head_dim == 16 && c.norm_eps == 1e-6 && c.rope_theta == 10000 &&
              c.rope_kind == HF_ROPE_NONE && !c.tie_word_embeddings && c.bos_id == -1,
          "LlamaConfig defaults");
}

static void test_rope_freqs(void) {
    const float factors[] = {8, 32};
    for (int k = 0; k < 2; k++) {
        float f[64];
        model_llama3_rope_freqs(f, 128, 500000.0f, factors[k], 1, 4, 8192);
        double worst = 0;
        int mono = 1;
        for (int i = 0; i < 64; i++) {
            double freq = 1.0 / pow(500000.0, 2.0 * i / 128), wl = 2 * M_PI / freq, want;
            if (wl < 8192 / 4.0)
                want = 1;
            else if (wl > 8192)
                want = factors[k];
            else {
                double s = (8192 / wl - 1) / 3;
                want = 1 / ((1 - s) / factors[k] + s);
            }
            worst = fmax(worst, fabs(f[i] - want) / want);
            if (i && f[i] < f[i - 1]) mono = 0;
        }
        CHECK(worst < 1e-5 && mono && f[0] == 1 && f[63] == factors[k], "factor %g: worst relative %.2e",
              factors[k], worst);
    }
}

/* tiktoken: ranks 0..255 single bytes, then "ab" (256), "abc" (257), "bc" (258); tiktoken's BPE on "abc"
 * merges by lowest rank: (a,b) -> ab (256), then (ab,c) -> abc. On "bcd": (b,c) -> bc. */
static void test_tiktoken(void) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *text = malloc(256 * 16 + 64), *p = text;
    for (int b = 0; b < 256; b++) {
        uint32_t w = (uint32_t)b << 16;
        p += sprintf(p, "%c%c== %d\n", b64[w >> 18], b64[(w >> 12) & 63], b);
    }
    p += sprintf(p, "YWI= 256\nYWJj 257\nYmM= 258\n");
    hf_vocab *hv;
    int rc = hf_vocab_from_tiktoken(text, (size_t)(p - text), "tokenizer.model", 0, &hv);
    CHECK(rc == 0, "tiktoken table: %s", herd_last_error());
    if (rc == 0) {
        herd_vocab *v;
        rc = vocab_load(hf_vocab_meta(hv), "t", &v);
        CHECK(rc == 0, "loads as a vocabulary: %s", herd_last_error());
        if (rc == 0) {
            int32_t *ids;
            int64_t n;
            CHECK(vocab_n_tokens(v) == 259 + 256 && vocab_bos(v) == 259, "259 + 256 special tokens, BOS 259");
            rc = vocab_tokenize(v, "abcbcd<|eot_id|>", 16, true, true, &ids, &n);
            CHECK(rc == 0 && n == 5 && ids[0] == 259 && ids[1] == 257 && ids[2] == 258 && ids[3] == 'd' &&
                      ids[4] == 259 + 9,
                  "abc|bc|d|eot");
            if (rc == 0) free(ids);
            vocab_free(v);
        }
        hf_vocab_free(hv);
    }
    rc = hf_vocab_from_tiktoken("YWI= 3\n", 7, "tokenizer.model", 0, &hv);
    CHECK(rc != 0 && strstr(herd_last_error(), "line 1"), "rank out of order refused");
    free(text);
}

int main(void) {
    test_safetensors();
    test_names();
    test_config();
    test_rope_freqs();
    test_tiktoken();
    return TU_DONE("test_hf");
}
