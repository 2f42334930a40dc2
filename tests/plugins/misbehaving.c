/* Misbehaving sampler plugins: one source, one fault per -D flag. The host must turn each into an
 * error naming the plugin and stay usable. Built by sdk/gptrt/tests/plugins.rs. */
/* nanosleep and access (FAULT_SLOW, FAULT_BLOCKS). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>

#include "gptrt_plugin.h"

/* -DPLUGIN_ID="..." tells builds of this file apart once loaded. */
#ifndef PLUGIN_ID
#define PLUGIN_ID "org.gptrt.test.misbehaving"
#endif

/* -DMARKER_FILE="/path": the library's constructor creates that file, so a test can see whether
 * the loader ran any of this library's code at all (a constructor runs inside dlopen, before the
 * host can check anything). */
#if defined(FAULT_SLOW) || defined(FAULT_BLOCKS)
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static void nap(long ms) {
    struct timespec t;
    t.tv_sec = ms / 1000;
    t.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&t, NULL);
}
#endif

#if defined(MARKER_FILE)
#include <stdio.h>
__attribute__((constructor)) static void mark_loaded(void) {
    FILE *marker = fopen(MARKER_FILE, "w");
    if (marker) fclose(marker);
}
#endif

static int32_t create(const GptrtHostApi *host, const char *config, void **out) {
    (void)host;
    (void)config;
    *out = malloc(1);
    return *out ? GPTRT_PLUGIN_OK : GPTRT_PLUGIN_ERROR;
}

static void destroy(void *self) { free(self); }

static const char *last_error(void *self) {
    (void)self;
    return "deliberately broken";
}

#if !defined(FAULT_NULL_SLOT)
static int32_t apply(void *self, GptrtCandidates *c, const GptrtSamplerContext *ctx) {
    (void)self;
#if defined(FAULT_BAD_TOKEN)
    c->data[0].id = (uint32_t)(ctx->vocab_size + 7);
#elif defined(FAULT_NAN_LOGITS)
    (void)ctx;
    c->data[1].logit = nanf("");
#elif defined(FAULT_FAILS)
    (void)ctx;
    (void)c;
    return GPTRT_PLUGIN_ERROR;
#elif defined(FAULT_GROWS)
    (void)ctx;
    c->size += 1;
#elif defined(FAULT_BAD_SELECTION)
    (void)ctx;
    c->selected = (int64_t)c->size;
#elif defined(FAULT_SLOW)
    /* Every call takes 300 ms: longer than the max_time the tests give. */
    (void)ctx;
    (void)c;
    nap(300);
#elif defined(FAULT_BLOCKS)
    /* Stuck in apply: note the call in CALLS_FILE (-D, a path), then wait until RELEASE_FILE
     * exists. No host can preempt this; it must not hang with it. */
    (void)ctx;
    (void)c;
    {
        FILE *calls = fopen(CALLS_FILE, "a");
        if (calls) {
            fputs("apply\n", calls);
            fclose(calls);
        }
    }
    while (access(RELEASE_FILE, F_OK) != 0) nap(5);
#else
    (void)ctx;
    (void)c;
#endif
    return GPTRT_PLUGIN_OK;
}
#endif

static const GptrtSamplerVtable VTABLE = {
    sizeof(GptrtSamplerVtable), create, destroy, NULL,
#if defined(FAULT_NULL_SLOT)
    NULL,
#else
    apply,
#endif
    NULL, last_error, GPTRT_SAMPLER_STAGE_DEFAULT,
};

static const GptrtPluginDescriptor DESCRIPTOR = {
#if defined(FAULT_SMALL_STRUCT)
    sizeof(size_t) + sizeof(GptrtAbiVersion),
#else
    sizeof(GptrtPluginDescriptor),
#endif
    {GPTRT_PLUGIN_ABI_MAJOR, GPTRT_PLUGIN_ABI_MINOR},
    PLUGIN_ID, "Misbehaving", "0.0.1", NULL, GPTRT_PLUGIN_KIND_SAMPLER, &VTABLE,
};

static const GptrtPluginDescriptor *get_plugin(size_t index) { return index == 0 ? &DESCRIPTOR : NULL; }

static const GptrtPluginEntry ENTRY = {
    sizeof(GptrtPluginEntry),
#if defined(FAULT_WRONG_ABI)
    {GPTRT_PLUGIN_ABI_MAJOR + 1, 0},
#else
    {GPTRT_PLUGIN_ABI_MAJOR, GPTRT_PLUGIN_ABI_MINOR},
#endif
    1, get_plugin,
};

#if defined(FAULT_NO_ENTRY)
GPTRT_PLUGIN_EXPORT const GptrtPluginEntry *not_the_entry(void) { return &ENTRY; }
#else
GPTRT_PLUGIN_EXPORT const GptrtPluginEntry *gptrt_plugin_entry(void) { return &ENTRY; }
#endif
