/* What the API's own files may see of a herd_context beyond include/herd.h (context_api.c owns it). */
#ifndef HERD_API_CONTEXT_H
#define HERD_API_CONTEXT_H

#include "../model/forward.h"
#include "herd.h"

/* The context's forward state (borrowed; lives as long as c). */
forward_state *api_context_forward(herd_context *c);

#endif
