#include "tensor_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "herd.h"

tensor_ref *tensor_table_add(tensor_table *tt, const char *name) {
    if (tt->n == tt->cap) {
        tt->cap = tt->cap ? tt->cap * 2 : 64;
        tt->t = herd_xrealloc(tt->t, (size_t)tt->cap * sizeof *tt->t);
    }
    tensor_ref *r = &tt->t[tt->n++];
    memset(r, 0, sizeof *r);
    r->name = herd_xstrndup(name, strlen(name));
    r->src_name = r->name;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) r->ne[d] = 1;
    return r;
}

void tensor_table_from_gguf(tensor_table *tt, const gguf_file *g, const char *path) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *gt = &g->tensors[i];
        tensor_ref *r = tensor_table_add(tt, gt->name);
        r->file = path;
        r->dtype = herd_type_name(gt->type);
        r->type = gt->type;
        r->n_dims = gt->n_dims;
        memcpy(r->ne, gt->ne, sizeof r->ne);
        r->data = gt->data;
        r->nbytes = gt->nbytes;
    }
}

void tensor_table_clear(tensor_table *tt) {
    for (int64_t i = 0; i < tt->n; i++) free(tt->t[i].name);
    free(tt->t);
    memset(tt, 0, sizeof *tt);
}

const tensor_ref *tensor_table_find(const tensor_table *tt, const char *name) {
    for (int64_t i = 0; i < tt->n; i++)
        if (strcmp(tt->t[i].name, name) == 0) return &tt->t[i];
    return NULL;
}

static void format_dims(const int64_t *ne, int n, bool row_major, char *buf, size_t cap) {
    size_t at = 0;
    buf[0] = 0;
    for (int d = 0; d < n && at < cap; d++) {
        int64_t v = row_major ? ne[n - 1 - d] : ne[d];
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "[", (long long)v);
    }
    if (at < cap) snprintf(buf + at, cap - at, n ? "]" : "[]");
}

void tensor_ref_shape(const tensor_ref *t, char *buf, size_t cap) {
    format_dims(t->ne, t->n_dims, t->row_major, buf, cap);
}

void tensor_ref_shape_of(const tensor_ref *t, int64_t n_in, int64_t n_out, char *buf, size_t cap) {
    int64_t ne[2] = {n_in, n_out};
    format_dims(ne, n_out == 1 && t->n_dims < 2 ? 1 : 2, t->row_major, buf, cap);
}
