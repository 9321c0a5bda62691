/* Hugging Face directories: config, shard discovery and mapping, tensor renaming; see hf_dir.h. */
#include "hf_dir.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/log.h"
#include "herd.h"

#define INDEX_MAX_BYTES ((size_t)64 << 20)

/* ---- names ----------------------------------------------------------------------------------- */

static const struct {
    const char *hf, *gguf;
} k_global[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

/* per layer: "model.layers.N." + hf  <->  "blk.N." + gguf; the projections may carry "_scale" */
static const struct {
    const char *hf, *gguf;
    bool scaled;
} k_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", false},
    {"self_attn.q_proj.weight", "attn_q.weight", true},
    {"self_attn.k_proj.weight", "attn_k.weight", true},
    {"self_attn.v_proj.weight", "attn_v.weight", true},
    {"self_attn.o_proj.weight", "attn_output.weight", true},
    {"post_attention_layernorm.weight", "ffn_norm.weight", false},
    {"mlp.gate_proj.weight", "ffn_gate.weight", true},
    {"mlp.up_proj.weight", "ffn_up.weight", true},
    {"mlp.down_proj.weight", "ffn_down.weight", true},
};

/* Parses "<prefix>N." at s; returns the rest and sets *layer, or NULL. */
static const char *layer_prefix(const char *s, const char *prefix, long *layer) {
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0) return NULL;
    s += pl;
    if (*s < '0' || *s > '9') return NULL;
    long n = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        n = n * 10 + (*s - '0');
        if (n > 1000000) return NULL;
    }
    if (*s != '.') return NULL;
    *layer = n;
    return s + 1;
}

static bool map_name(const char *in, char *out, size_t cap, bool to_gguf) {
    for (size_t i = 0; i < sizeof k_global / sizeof k_global[0]; i++)
        if (strcmp(in, to_gguf ? k_global[i].hf : k_global[i].gguf) == 0) {
            snprintf(out, cap, "%s", to_gguf ? k_global[i].gguf : k_global[i].hf);
            return true;
        }
    long l;
    const char *rest = layer_prefix(in, to_gguf ? "model.layers." : "blk.", &l);
    if (!rest) return false;
    for (size_t i = 0; i < sizeof k_layer / sizeof k_layer[0]; i++) {
        const char *from = to_gguf ? k_layer[i].hf : k_layer[i].gguf,
                   *to = to_gguf ? k_layer[i].gguf : k_layer[i].hf;
        size_t fl = strlen(from);
        if (strncmp(rest, from, fl) != 0) continue;
        const char *suffix = rest + fl;
        if (*suffix && !(k_layer[i].scaled && strcmp(suffix, "_scale") == 0)) continue;
        snprintf(out, cap, "%s%ld.%s%s", to_gguf ? "blk." : "model.layers.", l, to, suffix);
        return true;
    }
    return false;
}

bool hf_name_to_gguf(const char *hf, char *out, size_t cap) {
    return map_name(hf, out, cap, true);
}

bool hf_name_from_gguf(const char *gguf, char *out, size_t cap) {
    return map_name(gguf, out, cap, false);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- directory ------------------------------------------------------------------------------- */

bool hf_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int open_shard(hf_dir *d, const char *file) {
    char path[4096];
    if (strchr(file, '/') || strcmp(file, "..") == 0 || strcmp(file, ".") == 0)
        return herd_err(HERD_E_FORMAT, "hf: %s: shard name '%.200s' is not a file name in the directory",
                        d->dir, file);
    snprintf(path, sizeof path, "%s/%s", d->dir, file);
    d->shards = herd_xrealloc(d->shards, (size_t)(d->n_shards + 1) * sizeof *d->shards);
    hf_shard *s = &d->shards[d->n_shards];
    memset(s, 0, sizeof *s);
    int rc = herd_file_map(path, &s->map);
    if (rc) return rc;
    d->n_shards++;
    d->total_bytes += s->map.size;
    return st_parse(s->map.data, s->map.size, path, &s->st);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.safetensors in the directory, in name order. */
static int open_all_shards(hf_dir *d) {
    DIR *dp = opendir(d->dir);
    if (!dp) return herd_err(HERD_E_IO, "hf: cannot list '%s': %s", d->dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (!ends_with(e->d_name, ".safetensors") || e->d_name[0] == '.') continue;
        names = herd_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = herd_xstrndup(e->d_name, strlen(e->d_name));
    }
    closedir(dp);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = HERD_OK;
    for (size_t i = 0; i < n && !rc; i++) rc = open_shard(d, names[i]);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* The shards model.safetensors.index.json names, each once, in order of first mention; then every
 * tensor of its weight_map must be in the file it names. */
static int open_indexed_shards(hf_dir *d, const char *index_path) {
    char *text;
    size_t len;
    int rc = herd_file_read_all(index_path, INDEX_MAX_BYTES, &text, &len);
    if (rc) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return herd_err(HERD_E_FORMAT, "hf: %s is not valid JSON (line %d, column %d): %s", index_path,
                        jerr.line, jerr.column, jerr.text);
    json_t *wm = json_object_get(root, "weight_map");
    const char *key;
    json_t *val;
    if (!json_is_object(wm)) {
        rc = herd_err(HERD_E_FORMAT, "hf: %s has no 'weight_map' object", index_path);
        goto done;
    }
    json_object_foreach(wm, key, val) {
        const char *file = json_string_value(val);
        if (!file) {
            rc = herd_err(HERD_E_FORMAT, "hf: %s: tensor '%.200s' maps to a non-string", index_path, key);
            goto done;
        }
        bool seen = false;
        for (int i = 0; i < d->n_shards && !seen; i++) {
            const char *p = d->shards[i].map.path, *slash = strrchr(p, '/');
            seen = strcmp(slash ? slash + 1 : p, file) == 0;
        }
        if (!seen && (rc = open_shard(d, file))) {
            if (rc == HERD_E_IO) {
                char why[512];
                snprintf(why, sizeof why, "%s", herd_last_error());
                rc = herd_err(HERD_E_IO,
                              "hf: %s lists tensor '%.200s' in shard '%.200s', which is missing (%s)",
                              index_path, key, file, why);
            }
            goto done;
        }
    }
    json_object_foreach(wm, key, val) {
        const char *file = json_string_value(val);
        bool found = false;
        for (int i = 0; i < d->n_shards && !found; i++) {
            const char *p = d->shards[i].map.path, *slash = strrchr(p, '/');
            if (strcmp(slash ? slash + 1 : p, file) == 0) found = st_find(&d->shards[i].st, key) != NULL;
        }
        if (!found) {
            rc =
                herd_err(HERD_E_FORMAT, "hf: %s lists tensor '%.200s' in '%.200s', which does not contain it",
                         index_path, key, file);
            goto done;
        }
    }
done:
    json_decref(root);
    return rc;
}

int hf_dir_open(const char *dir, hf_dir **out) {
    *out = NULL;
    hf_dir *d = herd_xcalloc(1, sizeof *d);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    d->dir = herd_xstrndup(dir, n);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", d->dir);
    struct stat st;
    int rc;
    if (stat(path, &st) != 0) {
        rc = herd_err(HERD_E_IO,
                      "'%s' is a directory, but not a Hugging Face model directory (no config.json)", d->dir);
        goto fail;
    }
    if ((rc = hf_config_load(d->dir, &d->cfg))) goto fail;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", d->dir);
    rc = stat(path, &st) == 0 ? open_indexed_shards(d, path) : open_all_shards(d);
    if (rc) goto fail;
    *out = d;
    return HERD_OK;
fail:
    hf_dir_free(d);
    return rc;
}

void hf_dir_free(hf_dir *d) {
    if (!d) return;
    for (int i = 0; i < d->n_shards; i++) {
        st_file_clear(&d->shards[i].st);
        herd_file_unmap(&d->shards[i].map);
    }
    free(d->shards);
    free(d->dir);
    free(d);
}

int hf_dir_tensors(const hf_dir *d, tensor_table *tt) {
    char name[256];
    for (int s = 0; s < d->n_shards; s++) {
        const hf_shard *sh = &d->shards[s];
        for (int64_t i = 0; i < sh->st.n_tensors; i++) {
            const st_tensor *t = &sh->st.tensors[i];
            if (ends_with(t->name, ".rotary_emb.inv_freq") || ends_with(t->name, ".input_scale_ub")) continue;
            if (!hf_name_to_gguf(t->name, name, sizeof name))
                return herd_err(HERD_E_FORMAT,
                                "hf: %s: tensor '%.200s' is not part of a LlamaForCausalLM checkpoint",
                                sh->map.path, t->name);
            long layer;
            if (layer_prefix(name, "blk.", &layer) && layer >= d->cfg.n_layer)
                return herd_err(HERD_E_FORMAT,
                                "hf: %s: tensor '%.200s' is in layer %ld, but config.json has %lld layers",
                                sh->map.path, t->name, layer, (long long)d->cfg.n_layer);
            const tensor_ref *dup = tensor_table_find(tt, name);
            if (dup)
                return herd_err(HERD_E_FORMAT, "hf: tensor '%.200s' appears in both %s and %s", t->name,
                                dup->file, sh->map.path);
            if (t->n_dims > GGUF_MAX_DIMS)
                return herd_err(HERD_E_FORMAT, "hf: %s: tensor '%.200s' has %d dimensions", sh->map.path,
                                t->name, t->n_dims);
            tensor_ref *r = tensor_table_add(tt, name);
            r->src_name = t->name;
            r->file = sh->map.path;
            r->dtype = t->dtype;
            r->type = t->type;
            r->n_dims = t->n_dims;
            r->row_major = true;
            for (int k = 0; k < t->n_dims; k++) r->ne[k] = t->shape[t->n_dims - 1 - k];
            r->data = t->data;
            r->nbytes = t->nbytes;
        }
    }
    return HERD_OK;
}
