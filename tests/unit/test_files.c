/* The server's file store and multipart parser (src/server/files.c): uploads split into their parts
 * (quoted and bare boundaries, a part with no filename, binary data with CR/LF inside), malformed bodies
 * refused with a reason; files created, read back, listed newest first and by purpose, deleted; ids that are
 * not the store's (paths) refused; what a crash leaves (a .data without .json, a temporary) removed when the
 * store opens, and files kept across a reopen. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/files.h"
#include "testutil.h"

static int parse(const char *ct, const char *body, size_t n, multipart_part **p, int *np, char *msg) {
    return multipart_parse(ct, body, n, 4, p, np, msg, 300);
}

static void test_multipart(void) {
    static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.jsonl\"\r\n"
                               "Content-Type: application/octet-stream\r\n\r\nline1\r\n--Xy\nline2\0x\r\n--XyZ--\r\n";
    multipart_part *p;
    int np;
    char msg[300];
    CHECK(parse("multipart/form-data; boundary=XyZ", body, sizeof body - 1, &p, &np, msg) == 0, "%s", msg);
    CHECK(np == 2, "%d parts", np);
    if (np == 2) {
        CHECK(!strcmp(p[0].name, "purpose") && !p[0].filename && p[0].len == 5 && !memcmp(p[0].data, "batch", 5),
              "purpose part");
        CHECK(!strcmp(p[1].name, "file") && !strcmp(p[1].filename, "a b.jsonl"), "file part names");
        static const char want[] = "line1\r\n--Xy\nline2\0x";
        CHECK(p[1].len == sizeof want - 1 && !memcmp(p[1].data, want, sizeof want - 1), "file bytes (%zu)", p[1].len);
        multipart_free(p, np);
    }
    static const char q[] = "--a=b\r\nContent-Disposition: form-data; name=x\r\n\r\n\r\n--a=b--";
    CHECK(parse("multipart/form-data; charset=utf-8; boundary=\"a=b\"", q, sizeof q - 1, &p, &np, msg) == 0, "%s", msg);
    CHECK(np == 1 && p[0].len == 0 && !strcmp(p[0].name, "x"), "quoted boundary, empty part");
    if (np) multipart_free(p, np);
    struct {
        const char *ct, *body, *why;
    } bad[] = {
        {"application/json", "{}", "multipart/form-data"},
        {"multipart/form-data", "--x\r\n", "boundary"},
        {"multipart/form-data; boundary=x", "junk", "does not start"},
        {"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
         "closing boundary"},
        {"multipart/form-data; boundary=x", "--x\r\nContent-Type: text/plain\r\n\r\nv\r\n--x--", "no Content-Disposition"},
        {"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=a", "end of headers"},
        {"multipart/form-data; boundary=x",
         "--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n"
         "--x\r\nContent-Disposition: form-data; name=c\r\n\r\n3\r\n--x\r\nContent-Disposition: form-data; name=d\r\n\r\n4\r\n"
         "--x\r\nContent-Disposition: form-data; name=e\r\n\r\n5\r\n--x--",
         "more than 4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        msg[0] = 0;
        int rc = parse(bad[i].ct, bad[i].body, strlen(bad[i].body), &p, &np, msg);
        CHECK(rc == -1 && strstr(msg, bad[i].why), "bad body %zu: rc %d, '%s'", i, rc, msg);
    }
}

static void test_store(void) {
    char dir[] = "/tmp/herd-test-files-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    files_store *fs;
    CHECK(files_store_open(dir, 1000, &fs) == 0, "open");
    json_t *a, *b;
    CHECK(files_create(fs, "batch", "in.jsonl", "hello\n", 6, &a) == 0, "create a");
    sleep(1); /* created_at in seconds: b is newer */
    CHECK(files_create(fs, "user_data", "n.txt", "x", 1, &b) == 0, "create b");
    const char *ida = json_string_value(json_object_get(a, "id")), *idb = json_string_value(json_object_get(b, "id"));
    CHECK(files_id_valid(ida) && files_id_valid(idb) && strcmp(ida, idb), "ids %s %s", ida, idb);
    CHECK(json_integer_value(json_object_get(a, "bytes")) == 6, "bytes");
    char path[4200];
    CHECK(files_path(fs, ida, path, sizeof path) == 0, "path");
    FILE *f = fopen(path, "rb");
    char buf[16] = {0};
    CHECK(f && fread(buf, 1, sizeof buf, f) == 6 && !memcmp(buf, "hello\n", 6), "content");
    if (f) fclose(f);
    json_t *l = files_list(fs, NULL);
    CHECK(json_array_size(l) == 2 && !strcmp(json_string_value(json_object_get(json_array_get(l, 0), "id")), idb),
          "list: newest first");
    json_decref(l);
    l = files_list(fs, "batch");
    CHECK(json_array_size(l) == 1, "list by purpose");
    json_decref(l);
    const char *bad_ids[] = {"../../etc/passwd", "file-", "file-0123456789abcdef0123456", "file-0123456789ABCDEF01234567",
                             "file-0123456789abcdef01234567/../x"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        CHECK(!files_id_valid(bad_ids[i]) && !files_get(fs, bad_ids[i]) && files_path(fs, bad_ids[i], path, sizeof path) != 0,
              "id '%s' refused", bad_ids[i]);
    }
    CHECK(!files_get(fs, "file-000000000000000000000000"), "unknown id");
    /* what a crash leaves: a .data without its .json, a temporary */
    char junk[4300];
    snprintf(junk, sizeof junk, "%s/files/file-111111111111111111111111.data", dir);
    f = fopen(junk, "wb");
    if (f) fclose(f);
    snprintf(junk, sizeof junk, "%s/files/%s.json.tmp99.1", dir, ida);
    f = fopen(junk, "wb");
    if (f) fclose(f);
    files_store_close(fs);
    CHECK(files_store_open(dir, 1000, &fs) == 0, "reopen");
    l = files_list(fs, NULL);
    CHECK(json_array_size(l) == 2, "files survive a reopen");
    json_decref(l);
    char d2[4300];
    snprintf(d2, sizeof d2, "%s/files", dir);
    DIR *d = opendir(d2);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) n += de->d_name[0] != '.';
    if (d) closedir(d);
    CHECK(n == 4, "leftovers removed: %d entries", n);
    CHECK(files_delete(fs, ida) == 0 && !files_get(fs, ida) && files_delete(fs, ida) == -1, "delete");
    CHECK(files_path(fs, ida, path, sizeof path) != 0, "deleted: no path");
    json_decref(a), json_decref(b);
    files_store_close(fs);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void) {
    test_multipart();
    test_store();
    return TU_DONE("test_files");
}
