/* herd serve: an OpenAI- and Llama-Stack-compatible HTTP server over the engine.
 *
 * HTTP is libmicrohttpd with a thread per connection; JSON is jansson. HTTP threads parse and
 * validate a request, tokenize its prompt (the vocabulary is immutable and thread-safe), hand it to
 * the engine and relay the engine's events (streamed as SSE, or collected into one JSON body).
 * They never touch the KV cache or run the model. Routes and shapes: docs/API.md. */
#ifndef HERD_SERVER_H
#define HERD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/engine.h"

typedef struct {
    const char *host;        /* bind address, e.g. "127.0.0.1" (default) or "::1" or "0.0.0.0" */
    int port;                /* 0: any free port (see server_port) */
    const char *api_key;     /* required as "Authorization: Bearer KEY" on all routes but /health; NULL: none */
    size_t max_body;         /* largest request body in bytes */
    const char *model_id;    /* the name clients use in "model" */
    /* herd serve --lora: adapter i answers requests whose "model" is lora_ids[i] (engine adapter i + 1;
     * lora_paths[i] its file, listed in /v1/models as "root"); the base answers model_id or no "model" */
    const char *const *lora_ids;
    const char *const *lora_paths;
    int n_loras;
    int64_t n_ctx_slot;      /* per-request context, for errors and /v1/models */
    int max_connections;
    /* test-only scripted model: generation requests get these outputs in turn (text with special
     * tokens like <|python_tag|> and <|eom_id|>), forced token by token while the model runs */
    const char *const *script;
    int n_script;
    /* --exec-builtin-tools: built-in tools (code_interpreter, brave_search, wolfram_alpha) the server
     * runs itself when a request declares them and the model calls them; the result goes back to the
     * model as an ipython turn, at most max_tool_steps times per request (docs/API.md, docs/TOOLS.md) */
    const char *const *exec_tools;
    int n_exec_tools;
    int max_tool_steps;
    herd_tool_params tool_params;
    /* --guard-model: an engine (continuous batching, its own slots) over a Llama Guard 3 model,
     * borrowed, answering /v1/shields, /v1/safety/run-shield and /v1/moderations under the shield id
     * guard_id; NULL: none. guard_ctx_slot: its slots' context. */
    engine *guard;
    int64_t guard_ctx_slot;
    const char *guard_id;
    /* --shields input,output: chat completions are shielded (docs/LLAMA_GUARD.md): the input shield
     * before generating, the output shield on the answer (streamed text is held until it passes) */
    bool shield_input, shield_output;
    /* --prompt-guard: a Prompt Guard classifier (borrowed) answering /v1/safety/run-shield as the shield
     * prompt_guard_id (promptguard.c; one classification at a time, under a lock waited on for a bounded
     * time); shield_prompt_guard (--shields prompt-guard): it assesses the last message of chat
     * completions before generating, with guard type prompt_guard_jailbreak ? jailbreak : injection */
    herd_classifier *prompt_guard;
    const char *prompt_guard_id;
    bool shield_prompt_guard, prompt_guard_jailbreak;
    /* --data-dir: /v1/files (files.c, kept under DIR/files, uploads up to max_file_bytes) and /v1/batches
     * (batch_routes.c, DIR/batches: run in the background, batch_parallel requests at a time, resumed
     * after a restart); NULL: both routes answer 404 */
    const char *data_dir;
    size_t max_file_bytes;
    int batch_parallel;
    /* --slot-save-path: POST /slots/{id}?action=save|restore|erase reads and writes files in this folder
     * only (slots.c); NULL: those routes answer 501 */
    const char *slot_save_path;
    /* --store DIR: the vector stores of vector_routes.c (a herd_store in DIR); NULL: none */
    const char *store_dir;
    /* --context-policy shift: chat completions leave out their oldest turns to fit (ctx_policy.h); false:
     * stop. A request's "context_policy" overrides it. */
    bool context_shift;
} server_config;

typedef struct server server;

/* Binds and starts serving. HERD_E_IO with the address when it cannot bind. */
int server_start(engine *e, const server_config *cfg, server **out);
int server_port(const server *s);
/* Graceful stop: no new connections or requests (503), waits for in-flight requests to finish,
 * then stops. The engine is left running (the caller frees it). */
void server_shutdown(server *s);

#endif
