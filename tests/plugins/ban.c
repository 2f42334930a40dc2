/* Test fixture: a plain-C sampler plugin that bans one token (config {"token": N}) by setting its
 * logit to -inf, built from include/gptrt_plugin.h alone, as a new user would write it.
 *   default:          ABI 1.2, declares GPTRT_SAMPLER_STAGE_PROCESSOR.
 *   -DBAN_ABI_1_1:    built as a 1.1 plugin: minor 1 and a vtable that ends before `stage`.
 *   -DBAN_BAD_STAGE:  ABI 1.2 with a stage value no header defines.
 *   -DBAN_SHORT_VTABLE: ABI 1.2 with the 1.1 vtable size (it lacks the `stage` it promises). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gptrt_plugin.h"

#ifdef BAN_ABI_1_1
#define BAN_MINOR 1
#define BAN_VTABLE_SIZE offsetof(GptrtSamplerVtable, stage)
#elif defined(BAN_SHORT_VTABLE)
#define BAN_MINOR GPTRT_PLUGIN_ABI_MINOR
#define BAN_VTABLE_SIZE offsetof(GptrtSamplerVtable, stage)
#else
#define BAN_MINOR GPTRT_PLUGIN_ABI_MINOR
#define BAN_VTABLE_SIZE sizeof(GptrtSamplerVtable)
#endif

#ifdef BAN_BAD_STAGE
#define BAN_STAGE 7
#else
#define BAN_STAGE GPTRT_SAMPLER_STAGE_PROCESSOR
#endif

static int32_t ban_create(const GptrtHostApi *host, const char *config, void **out) {
    const char *at = config ? strstr(config, "\"token\"") : NULL;
    uint32_t *token;
    (void)host;
    if (!out || !at || !(at = strchr(at, ':'))) return GPTRT_PLUGIN_INVALID_ARGUMENT;
    token = malloc(sizeof *token);
    if (!token) return GPTRT_PLUGIN_ERROR;
    *token = (uint32_t)strtoul(at + 1, NULL, 10);
    *out = token;
    return GPTRT_PLUGIN_OK;
}

static void ban_destroy(void *self) { free(self); }

static int32_t ban_apply(void *self, GptrtCandidates *c, const GptrtSamplerContext *ctx) {
    size_t i;
    (void)ctx;
    for (i = 0; i < c->size; i++) {
        if (c->data[i].id == *(const uint32_t *)self) c->data[i].logit = -HUGE_VALF;
    }
    c->probs_valid = false;
    return GPTRT_PLUGIN_OK;
}

#ifdef BAN_ABI_1_1
static const GptrtSamplerVtable VTABLE = {
    BAN_VTABLE_SIZE, ban_create, ban_destroy, NULL, ban_apply, NULL, NULL, 0,
};
#else
static const GptrtSamplerVtable VTABLE = {
    BAN_VTABLE_SIZE, ban_create, ban_destroy, NULL, ban_apply, NULL, NULL, BAN_STAGE,
};
#endif

static const GptrtPluginDescriptor DESCRIPTOR = {
    sizeof(GptrtPluginDescriptor), {GPTRT_PLUGIN_ABI_MAJOR, BAN_MINOR},
    "org.gptrt.test.ban", "Ban one token", "1.0.0", "Sets one token's logit to -inf",
    GPTRT_PLUGIN_KIND_SAMPLER, &VTABLE,
};

static const GptrtPluginDescriptor *get_plugin(size_t index) { return index == 0 ? &DESCRIPTOR : NULL; }

static const GptrtPluginEntry ENTRY = {
    sizeof(GptrtPluginEntry), {GPTRT_PLUGIN_ABI_MAJOR, BAN_MINOR}, 1, get_plugin,
};

GPTRT_PLUGIN_EXPORT const GptrtPluginEntry *gptrt_plugin_entry(void) { return &ENTRY; }
