/* Bounded HTTP GET (see http.h). */
#include "http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/strbuf.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    strbuf buf;
    size_t max;
    int too_large;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
    sink *s = user;
    size_t len = size * n;
    if (s->buf.n + len > s->max) {
        s->too_large = 1;
        return 0; /* aborts the transfer */
    }
    strbuf_put(&s->buf, p, len);
    return len;
}

int http_get(const char *url, const char *const *headers, double timeout_s, size_t max_bytes,
             http_response *out, char *err, size_t errcap) {
    memset(out, 0, sizeof *out);
    pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errcap, "cannot start an HTTP request (libcurl)");
        return -1;
    }
    struct curl_slist *hl = NULL;
    for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    sink s = {.max = max_bytes};
    char cerr[CURL_ERROR_SIZE] = "";
    long total_ms = (long)(timeout_s * 1000), connect_ms = total_ms < 5000 ? total_ms : 5000;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "herd");
    CURLcode rc = curl_easy_perform(c);
    int ret = 0;
    if (rc != CURLE_OK) {
        if (s.too_large)
            snprintf(err, errcap, "the response is larger than %zu bytes", max_bytes);
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            snprintf(err, errcap, "no response within %.0f s", timeout_s);
        else
            snprintf(err, errcap, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
        free(s.buf.p);
        ret = -1;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = s.buf.p ? s.buf.p : strdup("");
        out->len = s.buf.n;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return ret;
}

void http_response_free(http_response *r) {
    free(r->body);
    r->body = NULL;
}

char *http_escape(const char *s) {
    pthread_once(&curl_once, curl_init_once);
    char *e = curl_easy_escape(NULL, s, 0);
    char *o = strdup(e ? e : "");
    curl_free(e);
    return o;
}
