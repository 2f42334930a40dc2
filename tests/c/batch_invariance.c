/*
 * Whether a model's batched sessions get what they get alone, as the C API reports it.
 *
 *   batch_invariance MODEL_DIR     prints `info: MODEL_INFO_JSON` (gptrt_model_info_json:
 *                                  `batch_invariant`, `batch_dependent_ops`, `batching`)
 *
 * sdk/gptrt-capi/tests/c_api.rs checks it on the demo model (batch-invariant) and on a dynamic
 * int8 graph (not). Ends with `N passed, M failed`.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gptrt.h"

static int passed = 0;
static int failed = 0;

#define OK(call)                                                                                   \
    do {                                                                                           \
        gptrt_status_t got_ = (call);                                                              \
        if (got_ == GPTRT_OK) {                                                                    \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("FAIL %s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call,                  \
                   gptrt_status_name(got_), gptrt_last_error_message());                           \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_status_t status = gptrt_runtime_new(NULL, &runtime);
    if (status == GPTRT_OK) {
        status = gptrt_model_load(runtime, argv[1], &model);
    }
    if (status != GPTRT_OK) {
        fprintf(stderr, "setup failed: %s: %s\n", gptrt_status_name(status), gptrt_last_error_message());
        return 1;
    }
    size_t size = 0;
    /* asks for the size: GPTRT_ERROR_BUFFER_TOO_SMALL */
    gptrt_model_info_json(model, NULL, 0, &size);
    char *info = malloc(size);
    if (info == NULL) {
        return 2;
    }
    OK(gptrt_model_info_json(model, info, size, &size));
    printf("info: %s\n", info);
    free(info);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
