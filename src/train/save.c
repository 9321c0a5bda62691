/* See save.h. */
#include "save.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../base/strbuf.h"
#include "../gguf/gguf.h"
#include "../kernels/kernels.h"

typedef struct {
    const tparam *p;
    int type;
} fill_item;

static int fill_param(void *user, const char *name, uint8_t *dst, uint64_t nbytes) {
    const fill_item *it = user;
    const kernel_type_ops *o = kernels_type_isa(it->type, KERNEL_ISA_REF);
    const int64_t n_in = it->p->ne[0], rows = it->p->ne[1], rb = kernels_row_bytes(it->type, n_in);
    if ((uint64_t)(rb * rows) != nbytes) return herd_err(HERD_E_FORMAT, "train: tensor '%s' has an unexpected size", name);
    for (int64_t r = 0; r < rows; r++) o->from_f32(it->p->w + r * n_in, dst + r * rb, n_in);
    return HERD_OK;
}

int train_save_full_gguf(const herd_model *base, const tparam *params, int n, const char *path) {
    if (base->hf) return herd_err(HERD_E_UNSUPPORTED, "train: full fine-tuning writes GGUF files from a GGUF base; convert the directory with `herd convert` first");
    const gguf_file *g = &base->gguf;
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < g->n_kv; i++) gguf_writer_copy_kv(w, &g->kv[i]);
    fill_item *items = herd_xcalloc((size_t)g->n_tensors, sizeof *items);
    int rc = HERD_OK;
    for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
        const gguf_tensor *t = &g->tensors[i];
        const tparam *p = NULL;
        for (int j = 0; j < n && !p; j++)
            if (!strcmp(params[j].name, t->name)) p = &params[j];
        if (!p) {
            rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL);
            continue;
        }
        items[i] = (fill_item){p, p->ne[1] == 1 && t->n_dims == 1 ? t->type : p->src_type};
        const kernel_type_ops *o = kernels_type_isa(items[i].type, KERNEL_ISA_REF);
        if (!o || !o->from_f32)
            rc = herd_err(HERD_E_UNSUPPORTED, "train: cannot write tensor '%s' as %s", t->name, herd_type_name(items[i].type));
        else
            rc = gguf_writer_add_tensor(w, t->name, items[i].type, t->n_dims, t->ne, NULL, fill_param, &items[i]);
    }
    if (!rc) {
        char *tmp = herd_file_temp_name(path);
        rc = herd_file_commit(tmp, path, gguf_writer_write(w, tmp));
        free(tmp);
    }
    gguf_writer_free(w);
    free(items);
    return rc;
}

void train_history_add(train_history *h, int64_t step, double loss, double val) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->step = herd_xrealloc(h->step, (size_t)h->cap * sizeof *h->step);
        h->loss = herd_xrealloc(h->loss, (size_t)h->cap * sizeof *h->loss);
        h->val = herd_xrealloc(h->val, (size_t)h->cap * sizeof *h->val);
    }
    h->step[h->n] = step, h->loss[h->n] = loss, h->val[h->n] = val;
    h->n++;
}

void train_history_free(train_history *h) {
    free(h->step), free(h->loss), free(h->val);
    memset(h, 0, sizeof *h);
}

/* a polyline of the finite (step, y) points */
static void svg_line(strbuf *sb, const train_history *h, const double *y, double x0, double x1, double y0, double y1,
                     const char *color) {
    strbuf_printf(sb, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (int64_t i = 0; i < h->n; i++) {
        if (!isfinite(y[i])) continue;
        double px = 60 + 560 * (x1 > x0 ? ((double)h->step[i] - x0) / (x1 - x0) : 0.5);
        double py = 340 - 300 * (y1 > y0 ? (y[i] - y0) / (y1 - y0) : 0.5);
        strbuf_printf(sb, "%.1f,%.1f ", px, py);
    }
    strbuf_printf(sb, "\"/>\n");
}

int train_save_svg(const train_history *h, const char *path, const char *title) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    bool any_val = false;
    for (int64_t i = 0; i < h->n; i++) {
        x0 = fmin(x0, (double)h->step[i]), x1 = fmax(x1, (double)h->step[i]);
        const double v[2] = {h->loss[i], h->val[i]};
        for (int k = 0; k < 2; k++)
            if (isfinite(v[k])) y0 = fmin(y0, v[k]), y1 = fmax(y1, v[k]);
        if (isfinite(h->val[i])) any_val = true;
    }
    if (!(y1 >= y0)) y0 = 0, y1 = 1;
    if (!(x1 >= x0)) x0 = 0, x1 = 1;
    strbuf sb = {0};
    strbuf_printf(&sb, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"380\" font-family=\"sans-serif\" font-size=\"12\">\n");
    strbuf_printf(&sb, "<rect width=\"640\" height=\"380\" fill=\"white\"/>\n<text x=\"320\" y=\"20\" text-anchor=\"middle\">");
    for (const char *c = title; *c; c++) { /* escape for XML */
        if (*c == '<') strbuf_printf(&sb, "&lt;");
        else if (*c == '&') strbuf_printf(&sb, "&amp;");
        else if (*c == '>') strbuf_printf(&sb, "&gt;");
        else strbuf_printf(&sb, "%c", *c);
    }
    strbuf_printf(&sb, "</text>\n<line x1=\"60\" y1=\"340\" x2=\"620\" y2=\"340\" stroke=\"black\"/>\n"
                       "<line x1=\"60\" y1=\"40\" x2=\"60\" y2=\"340\" stroke=\"black\"/>\n");
    strbuf_printf(&sb, "<text x=\"55\" y=\"44\" text-anchor=\"end\">%.4g</text>\n<text x=\"55\" y=\"340\" text-anchor=\"end\">%.4g</text>\n", y1, y0);
    strbuf_printf(&sb, "<text x=\"60\" y=\"356\">step %.0f</text>\n<text x=\"620\" y=\"356\" text-anchor=\"end\">step %.0f</text>\n", x0, x1);
    svg_line(&sb, h, h->loss, x0, x1, y0, y1, "#1f77b4");
    strbuf_printf(&sb, "<text x=\"480\" y=\"374\" fill=\"#1f77b4\">train loss</text>\n");
    if (any_val) {
        svg_line(&sb, h, h->val, x0, x1, y0, y1, "#d62728");
        strbuf_printf(&sb, "<text x=\"560\" y=\"374\" fill=\"#d62728\">val loss</text>\n");
    }
    strbuf_printf(&sb, "</svg>\n");
    const void *part = sb.p;
    int rc = herd_file_write_atomic(path, &part, &sb.n, 1);
    strbuf_free(&sb);
    return rc;
}
