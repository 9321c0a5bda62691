/* POST /slots/{id}?action=save|restore|erase, as llama.cpp's server answers it: a slot's cached tokens and
 * their KV go to / come from a file in --slot-save-path (engine_slot_action, slot_file.h). The filename
 * is a plain name inside that folder: no '/', '\', leading '.', control characters, at most 255 bytes. */
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "http.h"

static bool filename_ok(const char *f) {
    size_t L = strlen(f);
    if (L == 0 || L > 255 || f[0] == '.') return false;
    for (size_t i = 0; i < L; i++) {
        unsigned char c = (unsigned char)f[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return false;
    }
    return true;
}

enum MHD_Result route_slots(http_req *r, const char *id, json_t *body) {
    server *s = r->srv;
    char *end = NULL;
    long slot = strtol(id, &end, 10);
    if (!*id || *end || id[0] == '-' || id[0] == '+' || strlen(id) > 9)
        return http_send_error(r, 400, "invalid_request_error", "id_slot", "invalid_slot",
                               "'%.64s' is not a slot id", id);
    const char *action = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "action");
    int act = !action                      ? -1
              : !strcmp(action, "save")    ? ENGINE_SLOT_SAVE
              : !strcmp(action, "restore") ? ENGINE_SLOT_RESTORE
              : !strcmp(action, "erase")   ? ENGINE_SLOT_ERASE
                                           : -1;
    if (act < 0)
        return http_send_error(r, 400, "invalid_request_error", "action", "invalid_action",
                               "action must be save, restore or erase (?action=...)");
    char *path = NULL;
    const char *fname = NULL;
    if (act != ENGINE_SLOT_ERASE) {
        if (!s->cfg.slot_save_path)
            return http_send_error(r, 501, "not_supported_error", NULL, "not_supported",
                                   "slot save/restore needs the server started with --slot-save-path DIR");
        fname = json_string_value(json_object_get(body, "filename"));
        if (!fname)
            return http_send_error(r, 400, "invalid_request_error", "filename", "invalid_filename",
                                   "'filename' (a string) is required");
        if (!filename_ok(fname))
            return http_send_error(
                r, 400, "invalid_request_error", "filename", "invalid_filename",
                "'filename' must be a plain file name (no '/', '\\', leading '.' or control "
                "characters, at most 255 bytes)");
        path = herd_xmalloc(strlen(s->cfg.slot_save_path) + strlen(fname) + 2);
        sprintf(path, "%s/%s", s->cfg.slot_save_path, fname);
    }
    int64_t n = 0;
    uint64_t bytes = 0;
    double t0 = http_now();
    int rc = engine_slot_action(s->e, (int)slot, act, path, &n, &bytes);
    double ms = (http_now() - t0) * 1e3;
    free(path);
    if (rc != HERD_OK) {
        const char *msg = herd_last_error();
        int status = 400;
        if (strstr(msg, "does not exist"))
            status = 404;
        else if (strstr(msg, "is busy"))
            status = 409;
        else if (rc == HERD_E_IO && act == ENGINE_SLOT_RESTORE && strstr(msg, "cannot open"))
            status = 404;
        else if (rc == HERD_E_IO || rc == HERD_E_NOMEM)
            status = 500;
        return http_send_error(r, status, status >= 500 ? "server_error" : "invalid_request_error", NULL,
                               status == 404   ? "not_found"
                               : status == 409 ? "slot_busy"
                                               : "slot_action_failed",
                               "%s", msg);
    }
    if (act == ENGINE_SLOT_ERASE)
        return http_send_json(r, 200,
                              json_pack("{s:i,s:I}", "id_slot", (int)slot, "n_erased", (json_int_t)n));
    bool save = act == ENGINE_SLOT_SAVE;
    return http_send_json(r, 200,
                          json_pack("{s:i,s:s,s:I,s:I,s:{s:f}}", "id_slot", (int)slot, "filename", fname,
                                    save ? "n_saved" : "n_restored", (json_int_t)n,
                                    save ? "n_written" : "n_read", (json_int_t)bytes, "timings",
                                    save ? "save_ms" : "restore_ms", ms));
}
