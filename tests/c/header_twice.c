/* gptrt.h included twice, compiled as C11 and as C++17 (-Wall -Wextra -Werror -pedantic): the
 * include guard, the C/C++ compatibility of every declaration, and the macros. */
#include "gptrt.h"
#include "gptrt.h"

#include <stdio.h>

#if GPTRT_FEATURE_CPU != 1 || GPTRT_FEATURE_CUDA != 0
#error "feature macros"
#endif
#if GPTRT_VERSION_NUMBER != GPTRT_VERSION_MAJOR * 10000 + GPTRT_VERSION_MINOR * 100 + GPTRT_VERSION_PATCH
#error "version macros"
#endif

static bool on_token(void *user_data, const gptrt_token_event_t *event) {
    (void)user_data;
    return event->token_id != 0;
}

int main(void) {
    gptrt_runtime_options_t options = gptrt_runtime_options_default();
    gptrt_status_t status = GPTRT_OK;
    gptrt_session_state_t state = GPTRT_SESSION_IDLE;
    gptrt_stop_reason_t reason = GPTRT_STOP_EOS;
    gptrt_optimization_level_t level = GPTRT_OPTIMIZATION_ALL;
    gptrt_early_stopping_t early = GPTRT_EARLY_STOPPING_NEVER;
    gptrt_token_callback_t callback = on_token;
    gptrt_session_t *session = NULL;
    status = gptrt_session_cancel(session);
    printf("%s %s %d %d %d %u %u %zu %d\n", gptrt_version(), gptrt_status_name(status), (int)state, (int)reason,
           (int)(status == GPTRT_ERROR_NULL_POINTER), (unsigned)level, (unsigned)early, options.struct_size,
           callback != NULL);
    return status == GPTRT_ERROR_NULL_POINTER ? 0 : 1;
}
