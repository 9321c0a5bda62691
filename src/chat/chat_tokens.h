/* A chat prompt's token ids with each message's token span: what herd_chat_tokenize returns (it is
 * a wrapper over chat_tokenize, so the two cannot drift), plus where each message's header and body
 * are, for training (src/train/data.c masks the loss to assistant bodies).
 *
 * The template's special tokens (chat_rendered's spans) become their ids; every text between two of
 * them — message contents included — is tokenized as plain text, on its own. */
#ifndef HERD_CHAT_TOKENS_H
#define HERD_CHAT_TOKENS_H

#include <stdbool.h>
#include <stdint.h>

#include "../tokenizer/vocab.h"
#include "herd.h"

/* One message's tokens (see chat_msg_place in chat.h for what header and body hold):
 *   [begin, body)  <|start_header_id|> role <|end_header_id|> "\n\n"
 *   [body, end)    content / tool call / tool result, and the closing <|eot_id|> or <|eom_id|>.
 * The header's "\n\n" and the body's first bytes are one plain-text run, so a token could in
 * principle hold bytes of both (the pre-tokenizer splits "\n\n" from trimmed content in every case
 * we know); such a token is counted in the body. Token offsets are the bytes of the tokens' pieces,
 * exact for byte-level BPE (Llama 3); with a SentencePiece vocabulary (which adds a prefix space)
 * the body boundary is approximate. */
typedef struct {
    int64_t begin, body, end;
    bool assistant; /* rendered under the assistant header */
} chat_msg_span;

typedef struct {
    int32_t *ids; /* [n_ids] */
    int64_t n_ids;
    chat_msg_span *msg; /* [n_msg], one per input message, in order */
    size_t n_msg;
} chat_tokens;

/* Renders (chat_render) and tokenizes msgs[0..n). HERD_E_ARG for what the template rejects,
 * HERD_E_UNSUPPORTED when the vocabulary lacks a template token. OUT: *out (chat_tokens_free). */
int chat_tokenize(const herd_vocab *v, const herd_chat_message *msgs, size_t n, const herd_chat_params *p,
                  chat_tokens *out);
void chat_tokens_free(chat_tokens *t);

#endif
