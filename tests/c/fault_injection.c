/*
 * Fault injection through the C API: load every damaged model folder named on the command line in
 * ONE process, and generate 2 tokens from each that loads. Driven by sdk/gptrt-capi/tests/faults.rs,
 * which makes the folders (tests/faults/damage.rs) and checks each line.
 *
 *   fault_injection DIR...
 *
 * Prints one line per folder, `DIR<TAB>load STATUS<TAB>MESSAGE`, then for a folder that loaded
 * `DIR<TAB>generate STATUS<TAB>MESSAGE`, and last `survived N`: the process outlived them all.
 */
#include <stdio.h>

#include "gptrt.h"

static void report(const char *dir, const char *what, gptrt_status_t status) {
    printf("%s\t%s %s\t%s\n", dir, what, gptrt_status_name(status),
           status == GPTRT_OK ? "" : gptrt_last_error_message());
    fflush(stdout);
}

int main(int argc, char **argv) {
    gptrt_runtime_t *runtime = NULL;
    gptrt_status_t status = gptrt_runtime_new(NULL, &runtime);
    if (status != GPTRT_OK) {
        fprintf(stderr, "gptrt_runtime_new: %s\n", gptrt_last_error_message());
        return 2;
    }
    int survived = 0;
    for (int i = 1; i < argc; i++) {
        gptrt_model_t *model = NULL;
        status = gptrt_model_load(runtime, argv[i], &model);
        report(argv[i], "load", status);
        if (status == GPTRT_OK) {
            gptrt_generation_options_t *options = NULL;
            gptrt_session_t *session = NULL;
            status = gptrt_generation_options_from_model(model, &options);
            if (status == GPTRT_OK) {
                status = gptrt_generation_options_set_max_new_tokens(options, 2);
            }
            if (status == GPTRT_OK) {
                status = gptrt_session_new(model, &session);
            }
            if (status == GPTRT_OK) {
                status = gptrt_session_generate(session, "Once upon a time", options, NULL, NULL);
            }
            report(argv[i], "generate", status);
            gptrt_session_free(session);
            gptrt_generation_options_free(options);
        }
        gptrt_model_free(model);
        survived++;
    }
    gptrt_runtime_free(runtime);
    printf("survived %d\n", survived);
    return 0;
}
