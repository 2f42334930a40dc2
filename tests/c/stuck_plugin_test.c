/* A plugin stuck in apply must not hang the host: start a generation whose sampler plugin never
 * returns (tests/plugins/misbehaving.c built with -DFAULT_BLOCKS), wait until the plugin is inside
 * apply, then cancel and free the session. gptrt_session_free must return (detaching the worker);
 * the model, host and runtime are freed after it as a program would.
 * Usage: stuck_plugin_test MODEL_DIR STUCK_PLUGIN_LIBRARY CALLS_FILE */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "gptrt.h"

#define CHECK(call)                                                                        \
    do {                                                                                   \
        gptrt_status_t status_ = (call);                                                   \
        if (status_ != GPTRT_OK) {                                                         \
            fprintf(stderr, "%s: %s: %s\n", #call, gptrt_status_name(status_),             \
                    gptrt_last_error_message());                                           \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

int main(int argc, char **argv) {
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_plugin_host_t *host = NULL;
    gptrt_session_t *session = NULL;
    struct timespec nap = {0, 5000000L};

    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR STUCK_PLUGIN CALLS_FILE\n", argv[0]);
        return 2;
    }
    CHECK(gptrt_runtime_new(NULL, &runtime));
    CHECK(gptrt_model_load(runtime, argv[1], &model));
    CHECK(gptrt_plugin_host_new(NULL, &host));
    CHECK(gptrt_plugin_host_load(host, argv[2]));
    CHECK(gptrt_session_new(model, &session));
    CHECK(gptrt_session_add_sampler(session, host, "org.gptrt.test.misbehaving", NULL));
    CHECK(gptrt_session_start(session, "Hello world", NULL));
    /* The plugin notes each call before it blocks: once the file exists, the worker is stuck. */
    while (access(argv[3], F_OK) != 0) nanosleep(&nap, NULL);
    printf("stuck in apply\n");
    fflush(stdout);
    CHECK(gptrt_session_cancel(session));
    gptrt_session_free(session);
    printf("session freed\n");
    fflush(stdout);
    gptrt_plugin_host_free(host);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    printf("done\n");
    return 0;
}
