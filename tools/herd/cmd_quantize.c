/* herd quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--pure] [-q]   (TYPE FP8: herd_convert)
 * Progress on stderr (tensor i/N, percent of the file, MB/s of input), then a per-tensor error table
 * (NMSE of the written weights against the input's) and the worst tensors on stdout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
    bool tty;
    int64_t last_tensor;
    double last_draw;
} bar_state;

static void progress(const herd_quantize_progress *p, void *user) {
    bar_state *b = user;
    if (p->warning) {
        if (b->tty) fputs("\r\033[K", stderr);
        fprintf(stderr, "herd quantize: warning: %s: %s\n", p->name, p->warning);
    }
    bool done = p->bytes_done == p->bytes_total;
    /* a terminal gets a redrawn line (at most ~10 times a second); a pipe or log one line per tensor */
    if (b->tty ? (p->seconds - b->last_draw < 0.1 && !done) : p->tensor == b->last_tensor) return;
    b->last_draw = p->seconds;
    b->last_tensor = p->tensor;
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1;
    char bar[21];
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(stderr, "%s[%4lld/%lld] [%s] %3.0f%% %7.1f MB/s  %-32s %s -> %s%s", b->tty ? "\r\033[K" : "",
            (long long)p->tensor + 1, (long long)p->n_tensors, bar, 100 * frac,
            p->seconds > 0 ? (double)p->bytes_done / p->seconds * 1e-6 : 0.0, p->name, herd_type_name(p->type_in),
            herd_type_name(p->type_out), b->tty ? "" : "\n");
    if (b->tty && done) fputc('\n', stderr);
}

static int by_nmse_desc(const void *a, const void *b) {
    const herd_quantize_tensor *x = *(const herd_quantize_tensor *const *)a, *y = *(const herd_quantize_tensor *const *)b;
    double u = isnan(x->nmse) ? -1 : x->nmse, v = isnan(y->nmse) ? -1 : y->nmse;
    return (u < v) - (u > v);
}

static void summary(const herd_quantize_result *r, bool quiet) {
    int64_t nq = 0;
    for (int64_t i = 0; i < r->n_tensors; i++) nq += r->tensors[i].quantized;
    if (!quiet) {
        printf("%-36s %-6s %-6s %12s %12s\n", "tensor", "from", "to", "elements", "NMSE");
        for (int64_t i = 0; i < r->n_tensors; i++) {
            const herd_quantize_tensor *t = &r->tensors[i];
            if (!t->quantized) continue;
            printf("%-36s %-6s %-6s %12lld %12.4e%s\n", t->name, herd_type_name(t->type_in), herd_type_name(t->type_out),
                   (long long)t->n_elements, t->nmse, t->requantized ? "  (requantized)" : t->fallback ? "  (fallback)" : t->imatrix ? "  (imatrix)" : "");
        }
    }
    /* per output type: the element-weighted mean NMSE */
    printf("\nper type (mean NMSE, weighted by elements):\n");
    for (int pass = 0; pass < 64; pass++) {
        double s = 0;
        int64_t n = 0, k = 0;
        for (int64_t i = 0; i < r->n_tensors; i++) {
            const herd_quantize_tensor *t = &r->tensors[i];
            if (!t->quantized || t->type_out != pass || isnan(t->nmse)) continue;
            s += t->nmse * (double)t->n_elements;
            n += t->n_elements;
            k++;
        }
        if (k) printf("  %-6s %4lld tensors %12lld elements  NMSE %.4e\n", herd_type_name(pass), (long long)k,
                      (long long)n, s / (double)n);
    }
    const herd_quantize_tensor **v = malloc((size_t)(nq ? nq : 1) * sizeof *v);
    int64_t k = 0;
    for (int64_t i = 0; i < r->n_tensors; i++)
        if (r->tensors[i].quantized) v[k++] = &r->tensors[i];
    qsort(v, (size_t)k, sizeof *v, by_nmse_desc);
    printf("worst tensors:\n");
    for (int64_t i = 0; i < k && i < 5; i++)
        printf("  %-36s %-6s NMSE %.4e\n", v[i]->name, herd_type_name(v[i]->type_out), v[i]->nmse);
    free(v);
    printf("%lld of %lld tensors quantized, %.1f MiB -> %.1f MiB (%.2fx) in %.1f s\n", (long long)nq,
           (long long)r->n_tensors, (double)r->bytes_in / 1048576.0, (double)r->bytes_out / 1048576.0,
           r->bytes_out ? (double)r->bytes_in / (double)r->bytes_out : 0.0, r->seconds);
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    int64_t threads = 0;
    bool quiet = false;
    herd_quantize_params p = herd_quantize_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-t")) {
            if (!cli_i64("quantize", argc, argv, &i, 1, 4096, &threads)) return 1;
        } else if (!strcmp(a, "--pure")) p.pure = true;
        else if (!strcmp(a, "--imatrix")) {
            if (!cli_str("quantize", argc, argv, &i, &p.imatrix)) return 1;
        }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return cli_help("quantize");
        } else if (a[0] == '-' && a[1]) return cli_fail("quantize", "unknown option '%s'", a);
        else if (npos < 3) pos[npos++] = a;
        else return cli_fail("quantize", "unexpected argument '%s'", a);
    }
    if (npos < 3) return cli_fail("quantize", "usage: herd quantize IN.gguf OUT.gguf TYPE [-t THREADS]");
    p.n_threads = (int)threads;
    if (!strcasecmp(pos[2], "fp8")) {
        /* Meta's rowwise FP8 is a conversion of its own (herd_convert: which tensors, scales, the
         * activation bound, the extension key); the same result as `herd convert IN OUT --type fp8` */
        herd_convert_params cp = {HERD_TYPE_FP8_E4M3, 0};
        if (herd_convert(pos[0], pos[1], &cp) != HERD_OK) return cli_fail_lib("quantize");
        printf("wrote %s: FFN weights of every layer but the first and the last in FP8 (E4M3, per-row scales)\n",
               pos[1]);
        return 0;
    }
    bar_state bs = {isatty(2) != 0, -1, -1};
    p.progress = progress;
    p.user = &bs;
    herd_quantize_result r;
    if (herd_quantize_model(pos[0], pos[1], pos[2], &p, &r) != HERD_OK) {
        if (bs.tty && bs.last_tensor >= 0) fputc('\n', stderr);
        return cli_fail_lib("quantize");
    }
    summary(&r, quiet);
    herd_quantize_result_free(&r);
    return 0;
}
