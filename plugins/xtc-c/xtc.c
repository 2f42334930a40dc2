/* XTC ("exclude top choices") as a gptrt sampler plugin in plain C11, with nothing but
 * include/gptrt_plugin.h. Definition (p-e-w, text-generation-webui PR #6335, 2024): with probability
 * `probability`, remove every token whose probability is at least `threshold`, except the least
 * likely of them, so the model's most predictable choices give way to other plausible ones.
 * Config: {"threshold": 0.1, "probability": 0.5, "seed": 1} (a minimal JSON reader below). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gptrt_plugin.h"

typedef struct {
    float threshold;
    float probability;
    uint64_t seed, state;
} xtc_t;

static double config_number(const char *json, const char *key, double fallback) {
    const char *at = json ? strstr(json, key) : NULL;
    if (!at) return fallback;
    at = strchr(at, ':');
    return at ? strtod(at + 1, NULL) : fallback;
}

static float next_unit(xtc_t *x) { /* SplitMix64 */
    uint64_t z = (x->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (float)((z ^ (z >> 31)) >> 40) / 16777216.0f;
}

static int32_t xtc_create(const GptrtHostApi *host, const char *config, void **out) {
    xtc_t *x;
    (void)host;
    if (!out) return GPTRT_PLUGIN_INVALID_ARGUMENT;
    x = malloc(sizeof *x);
    if (!x) return GPTRT_PLUGIN_ERROR;
    x->threshold = (float)config_number(config, "\"threshold\"", 0.1);
    x->probability = (float)config_number(config, "\"probability\"", 0.5);
    x->seed = x->state = (uint64_t)config_number(config, "\"seed\"", 1);
    *out = x;
    return GPTRT_PLUGIN_OK;
}

static void xtc_destroy(void *self) { free(self); }

static void xtc_reset(void *self) { xtc_t *x = self; x->state = x->seed; }

static int cmp_desc(const void *a, const void *b) {
    float la = ((const GptrtCandidate *)a)->logit, lb = ((const GptrtCandidate *)b)->logit;
    return (la < lb) - (la > lb);
}

static int32_t xtc_apply(void *self, GptrtCandidates *c, const GptrtSamplerContext *ctx) {
    xtc_t *x = self;
    size_t i, above = 0;
    float max, sum = 0.0f;
    (void)ctx;
    if (!x || !c || c->size == 0) return GPTRT_PLUGIN_INVALID_ARGUMENT;
    if (next_unit(x) >= x->probability) return GPTRT_PLUGIN_OK;
    qsort(c->data, c->size, sizeof *c->data, cmp_desc);
    max = c->data[0].logit;
    for (i = 0; i < c->size; i++) sum += expf(c->data[i].logit - max);
    for (i = 0; i < c->size; i++) {
        if (expf(c->data[i].logit - max) / sum < x->threshold) break;
        above++;
    }
    if (above >= 2) { /* drop all but the least likely of the top choices */
        memmove(c->data, c->data + above - 1, (c->size - above + 1) * sizeof *c->data);
        c->size -= above - 1;
    }
    c->sorted = true;
    c->probs_valid = false;
    return GPTRT_PLUGIN_OK;
}

static const GptrtSamplerVtable VTABLE = {
    sizeof(GptrtSamplerVtable), xtc_create, xtc_destroy, xtc_reset, xtc_apply, NULL, NULL,
    GPTRT_SAMPLER_STAGE_WARPER,
};

static const GptrtPluginDescriptor DESCRIPTOR = {
    sizeof(GptrtPluginDescriptor), {GPTRT_PLUGIN_ABI_MAJOR, GPTRT_PLUGIN_ABI_MINOR},
    "org.gptrt.xtc", "XTC (exclude top choices)", "1.0.0",
    "Sometimes removes the most likely tokens above a threshold, keeping the least likely of them",
    GPTRT_PLUGIN_KIND_SAMPLER, &VTABLE,
};

static const GptrtPluginDescriptor *get_plugin(size_t index) { return index == 0 ? &DESCRIPTOR : NULL; }

static const GptrtPluginEntry ENTRY = {
    sizeof(GptrtPluginEntry), {GPTRT_PLUGIN_ABI_MAJOR, GPTRT_PLUGIN_ABI_MINOR}, 1, get_plugin,
};

GPTRT_PLUGIN_EXPORT const GptrtPluginEntry *gptrt_plugin_entry(void) { return &ENTRY; }
