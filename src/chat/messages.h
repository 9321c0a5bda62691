/* OpenAI chat messages (JSON) -> herd_chat_message, shared by `herd format` and the server.
 *
 * Accepts [{"role", "content", "tool_calls", "tool_call_id", "name"}, ...]: role system / developer
 * (as system) / user / assistant / tool / ipython; content a string, null (an assistant message with
 * tool_calls) or an array of {"type": "text", "text"} parts (concatenated); tool_calls
 * [{"type": "function", "function": {"name", "arguments": JSON text or an object}}] — exactly one per
 * message, as the Llama 3.1 template renders. */
#ifndef HERD_CHAT_MESSAGES_H
#define HERD_CHAT_MESSAGES_H

#include <jansson.h>
#include <stddef.h>

#include "herd.h"

typedef struct {
    herd_chat_message *msgs;
    size_t n;
    char **owned;        /* strings the messages point to */
    size_t n_owned;
} chat_messages;

/* 0 ok; HERD_E_ARG with "messages[i]..." in the message (and *param-worthy text) otherwise. */
int chat_messages_from_json(const json_t *arr, chat_messages *out);
void chat_messages_free(chat_messages *m);
/* Appends a message (the strings are copied): the turns of an agent loop. */
void chat_messages_push(chat_messages *m, const char *role, const char *content, const char *tool_name,
                        const char *tool_arguments);

#endif
