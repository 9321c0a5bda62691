/* Document text for retrieval: HTML to plain text, file type by extension, PDF through pdftotext,
 * and the token windows a document is cut into. Pure functions over buffers (no model, no I/O except
 * rag_text_load's read of one file / one pdftotext run). */
#ifndef HERD_RAG_TEXT_H
#define HERD_RAG_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { RAG_TEXT_PLAIN, RAG_TEXT_MARKDOWN, RAG_TEXT_HTML, RAG_TEXT_PDF } rag_text_kind;

/* By extension (.txt .text .md .markdown .html .htm .xhtml .pdf, case-insensitive); -1: not one of these. */
int rag_text_kind_of(const char *path);

/* The text of an HTML document: tags removed (block tags such as <p>, <br>, <li>, <h1> become line
 * breaks), <script>, <style>, <head>'s <title> kept, comments and <!...> dropped, entities decoded
 * (&amp; &lt; &gt; &quot; &apos; &nbsp; and numeric &#N; &#xH; as UTF-8; an unknown entity stays as
 * written, NUL bytes dropped), runs of blank space folded to one space and of blank lines to one empty line. Never reads
 * past len; any input gives a result. OUT: *out (caller frees, NUL-terminated), *out_len. */
void rag_html_to_text(const char *html, size_t len, char **out, size_t *out_len);

/* Reads path as text of kind (PDF: `pdftotext -layout -enc UTF-8 path -`; a clear error if pdftotext is
 * absent). 0 ok with *out (caller frees) and *out_len; negative with the error logged (herd_err). */
int rag_text_load(const char *path, int kind, char **out, size_t *out_len);

/* The windows of a document of n tokens: size tokens each, starting every size - overlap tokens, the
 * last one ending at n (0 <= overlap < size). OUT: *starts, *ends (caller frees), returns the count. */
int64_t rag_chunk_windows(int64_t n, int64_t size, int64_t overlap, int64_t **starts, int64_t **ends);

#endif
