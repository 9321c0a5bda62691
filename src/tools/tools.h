/* The built-in tools herd executes (herd_builtin_tool_run, see herd.h and docs/TOOLS.md). Each
 * returns the text of the ipython message the model is given (caller frees); a tool that fails says
 * so in that text. */
#ifndef HERD_TOOLS_TOOLS_H
#define HERD_TOOLS_TOOLS_H

#include "herd.h"

/* {"query": ..., "top_k": [{"title", "url", "description"}, ...]} or {"error": ...} */
char *tool_brave_search(const char *query, const herd_tool_params *p);
/* {"query": ..., "pods": [{"title", "text"}, ...]} or {"error": ...} */
char *tool_wolfram_alpha(const char *query, const herd_tool_params *p);
/* {"error": "<tool>: <message>"} */
char *tool_error_json(const char *tool, const char *msg);

#endif
