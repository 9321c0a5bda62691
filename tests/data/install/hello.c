/* A program that uses libherd as an installed library: tests/conformance/install.sh and deb.sh build
 * it with `pkg-config --cflags --libs herd` alone (shared and --static) and run it.
 *   hello                 prints the version, then a failing load's status and error line
 *   hello VOCAB.gguf TEXT  also tokenizes TEXT (BOS as the model asks) and prints the ids as JSON */
#include <herd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("version %s\n", herd_version());
    printf("git %s\n", herd_version_git());

    herd_model *m = NULL;
    int rc = herd_model_load("/nonexistent/herd-install-test.gguf", &m);
    printf("load %d %s\n", rc, herd_last_error());
    if (rc != HERD_E_IO || m) return 1;

    if (argc == 3) {
        if (herd_model_load_vocab(argv[1], &m) != HERD_OK) {
            fprintf(stderr, "hello: %s\n", herd_last_error());
            return 1;
        }
        int32_t *ids;
        int64_t n;
        int flags = herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0;
        if (herd_tokenize(m, argv[2], strlen(argv[2]), flags, &ids, &n) != HERD_OK) {
            fprintf(stderr, "hello: %s\n", herd_last_error());
            herd_model_free(m);
            return 1;
        }
        putchar('[');
        for (int64_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
        free(ids);
        herd_model_free(m);
    }
    return 0;
}
