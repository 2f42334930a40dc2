/*
 * Tests of the gptrt C API from C: results and every kind of bad call.
 *
 *   capi_test MODEL_DIR MAX_NEW_TOKENS PROMPT...
 *
 * For each prompt prints `generate[i]: IDS` (callback API), `poll[i]: IDS` (poll API),
 * `batched[i]: IDS` (poll API, every session in one gptrt_batcher_t) and, from 8 threads sharing
 * the model, `thread[t]: IDS` for prompt t % count; sdk/gptrt-capi/tests/c_api.rs
 * compares them with the reference. Ends with `N passed, M failed` and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gptrt.h"

static int passed = 0;
static int failed = 0;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            passed++;                                                                      \
        } else {                                                                           \
            failed++;                                                                      \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                    \
            printf(__VA_ARGS__);                                                           \
            printf(" [last error: %s]\n", gptrt_last_error_message());                     \
        }                                                                                  \
    } while (0)

#define EXPECT(call, want)                                                                 \
    do {                                                                                   \
        gptrt_status_t got_ = (call);                                                      \
        CHECK(got_ == (want), "%s returned %s, expected %s", #call, gptrt_status_name(got_), \
              gptrt_status_name(want));                                                    \
    } while (0)

#define OK(call) EXPECT(call, GPTRT_OK)

enum { MAX_IDS = 512, MAX_TEXT = 8192, THREADS = 8 };

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void print_ids(const char *label, size_t index, const uint32_t *ids, size_t count) {
    printf("%s[%zu]:", label, index);
    for (size_t i = 0; i < count; i++) {
        printf(" %u", (unsigned)ids[i]);
    }
    printf("\n");
}

/* ---- the callback API ---- */

typedef struct {
    char text[MAX_TEXT];
    size_t text_len;
    uint32_t ids[MAX_IDS];
    size_t count;
    int stop_at;                  /* return false at this index (-1: never) */
    int cancel_at;                /* call gptrt_session_cancel at this index (-1: never) */
    gptrt_session_t *session;
    int bad_struct_size;
} collected_t;

static bool collect(void *user_data, const gptrt_token_event_t *event) {
    collected_t *c = (collected_t *)user_data;
    if (event->struct_size < sizeof(gptrt_token_event_t) || event->index != c->count ||
        strlen(event->text) != event->text_len) {
        c->bad_struct_size = 1;
    }
    if (c->count < MAX_IDS) {
        c->ids[c->count] = event->token_id;
    }
    c->count++;
    if (c->text_len + event->text_len < MAX_TEXT) {
        memcpy(c->text + c->text_len, event->text, event->text_len);
        c->text_len += event->text_len;
        c->text[c->text_len] = '\0';
    }
    if ((int)event->index == c->cancel_at) {
        gptrt_session_cancel(c->session);
    }
    return (int)event->index != c->stop_at;
}

static gptrt_generation_options_t *greedy_options(size_t max_new_tokens) {
    gptrt_generation_options_t *options = NULL;
    OK(gptrt_generation_options_new(&options));
    OK(gptrt_generation_options_set_max_new_tokens(options, max_new_tokens));
    return options;
}

static void test_generate(gptrt_model_t *model, size_t max_new, int count, char **prompts) {
    gptrt_generation_options_t *options = greedy_options(max_new);
    gptrt_session_t *session = NULL;
    OK(gptrt_session_new(model, &session));
    for (int p = 0; p < count; p++) {
        static collected_t c;
        memset(&c, 0, sizeof c);
        c.stop_at = -1;
        c.cancel_at = -1;
        OK(gptrt_session_generate(session, prompts[p], options, collect, &c));
        uint32_t ids[MAX_IDS];
        size_t n = 0;
        OK(gptrt_session_token_ids(session, ids, MAX_IDS, &n));
        print_ids("generate", (size_t)p, ids, n);
        CHECK(n == c.count && memcmp(ids, c.ids, n * sizeof ids[0]) == 0,
              "prompt %d: streamed ids differ from the result", p);
        CHECK(!c.bad_struct_size, "prompt %d: malformed token events", p);
        static char text[MAX_TEXT];
        size_t size = 0;
        OK(gptrt_session_text(session, text, sizeof text, &size));
        CHECK(size == strlen(text) + 1 && strcmp(text, c.text) == 0,
              "prompt %d: streamed text differs from the result", p);
        gptrt_stop_reason_t reason = 0;
        OK(gptrt_session_stop_reason(session, &reason));
        CHECK(reason == GPTRT_STOP_MAX_NEW_TOKENS || reason == GPTRT_STOP_EOS,
              "prompt %d: stop reason %s", p, gptrt_stop_reason_name(reason));
    }
    gptrt_session_free(session);
    gptrt_generation_options_free(options);
}

/* ---- the poll API: every prompt at once, each on its own session, or (batcher not NULL) all of
 * them stepping together in one batch ---- */

static void test_poll(gptrt_model_t *model, gptrt_batcher_t *batcher, const char *label, size_t max_new, int count,
                      char **prompts) {
    gptrt_generation_options_t *options = greedy_options(max_new);
    gptrt_session_t **sessions = calloc((size_t)count, sizeof *sessions);
    char(*texts)[MAX_TEXT] = calloc((size_t)count, sizeof *texts);
    size_t *lens = calloc((size_t)count, sizeof *lens);
    uint32_t(*ids)[MAX_IDS] = calloc((size_t)count, sizeof *ids);
    size_t *counts = calloc((size_t)count, sizeof *counts);
    int *done = calloc((size_t)count, sizeof *done);
    if (!sessions || !texts || !lens || !ids || !counts || !done) {
        exit(2);
    }
    for (int p = 0; p < count; p++) {
        if (batcher != NULL) {
            OK(gptrt_session_new_batched(batcher, &sessions[p]));
        } else {
            OK(gptrt_session_new(model, &sessions[p]));
        }
        OK(gptrt_session_start(sessions[p], prompts[p], options));
        /* Batched: the first generation runs alone until its first token, so the others join a
         * running batch (continuous batching) rather than all starting together. */
        for (int spin = 0; batcher != NULL && p == 0 && counts[0] == 0 && spin < 10000; spin++) {
            gptrt_session_state_t id_state = GPTRT_SESSION_IDLE;
            size_t got = 0;
            OK(gptrt_session_poll_tokens(sessions[0], ids[0], MAX_IDS, &got, &id_state));
            counts[0] += got;
            sleep_ms(1);
        }
    }
    /* Options are copied at start: freeing them now changes nothing. */
    gptrt_generation_options_free(options);
    int remaining = count;
    for (int spin = 0; remaining > 0 && spin < 60000; spin++) {
        for (int p = 0; p < count; p++) {
            if (done[p]) {
                continue;
            }
            char chunk[7]; /* small on purpose: text must come out whole characters at a time */
            size_t n = 0;
            gptrt_session_state_t state = GPTRT_SESSION_IDLE;
            OK(gptrt_session_poll(sessions[p], chunk, sizeof chunk, &n, &state));
            CHECK(chunk[n] == '\0', "poll: no NUL");
            if (lens[p] + n < MAX_TEXT) {
                memcpy(texts[p] + lens[p], chunk, n);
                lens[p] += n;
            }
            uint32_t some[3];
            size_t got = 0;
            gptrt_session_state_t id_state = GPTRT_SESSION_IDLE;
            OK(gptrt_session_poll_tokens(sessions[p], some, 3, &got, &id_state));
            for (size_t i = 0; i < got && counts[p] < MAX_IDS; i++) {
                ids[p][counts[p]++] = some[i];
            }
            if (state == GPTRT_SESSION_FINISHED && id_state == GPTRT_SESSION_FINISHED) {
                done[p] = 1;
                remaining--;
            }
            CHECK(state != GPTRT_SESSION_FAILED && state != GPTRT_SESSION_IDLE, "poll state %d", (int)state);
        }
        sleep_ms(1);
    }
    CHECK(remaining == 0, "poll: %d generations did not finish", remaining);
    for (int p = 0; p < count; p++) {
        print_ids(label, (size_t)p, ids[p], counts[p]);
        uint32_t final_ids[MAX_IDS];
        size_t n = 0;
        OK(gptrt_session_token_ids(sessions[p], final_ids, MAX_IDS, &n));
        CHECK(n == counts[p] && memcmp(final_ids, ids[p], n * sizeof final_ids[0]) == 0,
              "poll %d: polled ids differ from the result", p);
        static char text[MAX_TEXT];
        size_t size = 0;
        OK(gptrt_session_text(sessions[p], text, sizeof text, &size));
        CHECK(size == lens[p] + 1 && memcmp(text, texts[p], lens[p]) == 0,
              "poll %d: polled text differs from the result", p);
        gptrt_session_free(sessions[p]);
    }
    free(sessions);
    free(texts);
    free(lens);
    free(ids);
    free(counts);
    free(done);
}

/* ---- one model, 8 threads at once ---- */

typedef struct {
    gptrt_model_t *model;
    const char *prompt;
    size_t max_new;
    uint32_t ids[MAX_IDS];
    size_t count;
    gptrt_status_t status;
} worker_t;

/* ---- batched sessions: the poll test again through one batcher, its statistics, its limits ---- */

static unsigned long json_number(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    return at == NULL ? 0 : strtoul(at + strlen(pattern), NULL, 10);
}

static void test_batched(gptrt_model_t *model, size_t max_new, int count, char **prompts) {
    gptrt_batcher_t *batcher = NULL;
    EXPECT(gptrt_batcher_new(NULL, &batcher), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_batcher_new(model, NULL), GPTRT_ERROR_NULL_POINTER);
    OK(gptrt_batcher_new(model, &batcher));
    test_poll(model, batcher, "batched", max_new, count, prompts);

    char stats[512];
    size_t size = 0;
    OK(gptrt_batcher_stats_json(batcher, stats, sizeof stats, &size));
    unsigned long passes = json_number(stats, "forward_passes");
    unsigned long tokens = json_number(stats, "tokens");
    unsigned long rows = json_number(stats, "max_rows");
    printf("batcher stats: %s\n", stats);
    CHECK(json_number(stats, "generations") == (unsigned long)count, "batched: %s", stats);
    /* Stepping together: fewer forward passes than tokens, several rows in one pass. */
    CHECK(count < 2 || (passes < tokens && rows >= 2), "batched sessions did not share passes: %s", stats);
    EXPECT(gptrt_batcher_stats_json(batcher, stats, 4, &size), GPTRT_ERROR_BUFFER_TOO_SMALL);

    /* What a batched generation cannot do is refused when it starts, naming the option. */
    gptrt_session_t *session = NULL;
    OK(gptrt_session_new_batched(batcher, &session));
    gptrt_generation_options_t *options = greedy_options(max_new);
    OK(gptrt_generation_options_set_num_beams(options, 2));
    EXPECT(gptrt_session_start(session, "Hello", options), GPTRT_ERROR_INVALID_OPTION);
    CHECK(strstr(gptrt_last_error_message(), "beam search") != NULL, "message: %s", gptrt_last_error_message());
    OK(gptrt_generation_options_set_num_beams(options, 1));
    /* max_time holds per generation: a limit no forward pass meets stops after the first token. */
    gptrt_generation_options_t *hurried = greedy_options(max_new);
    OK(gptrt_generation_options_set_max_time(hurried, 1e-9));
    OK(gptrt_session_start(session, "Hello", hurried));
    OK(gptrt_session_wait(session));
    gptrt_stop_reason_t timed = GPTRT_STOP_OTHER;
    OK(gptrt_session_stop_reason(session, &timed));
    CHECK(timed == GPTRT_STOP_MAX_TIME, "batched max_time: stop reason %s", gptrt_stop_reason_name(timed));
    gptrt_generation_options_free(hurried);

    /* The session keeps its batcher alive; a cancelled generation stops as cancelled. */
    gptrt_batcher_free(batcher);
    OK(gptrt_generation_options_set_max_new_tokens(options, 100));
    OK(gptrt_session_start(session, "Hello", options));
    OK(gptrt_session_cancel(session));
    OK(gptrt_session_wait(session));
    gptrt_stop_reason_t reason = GPTRT_STOP_OTHER;
    OK(gptrt_session_stop_reason(session, &reason));
    CHECK(reason == GPTRT_STOP_CANCELLED || reason == GPTRT_STOP_MAX_NEW_TOKENS || reason == GPTRT_STOP_CONTEXT_FULL,
          "batched cancel: stop reason %s", gptrt_stop_reason_name(reason));
    OK(gptrt_session_start(session, "Hello", options));
    gptrt_session_free(session); /* freed while running: the batch drops the row */
    gptrt_generation_options_free(options);
}

static void *thread_main(void *arg) {
    worker_t *w = (worker_t *)arg;
    gptrt_session_t *session = NULL;
    gptrt_generation_options_t *options = NULL;
    w->status = gptrt_generation_options_new(&options);
    if (w->status == GPTRT_OK) w->status = gptrt_generation_options_set_int(options, "max_new_tokens", (int64_t)w->max_new);
    if (w->status == GPTRT_OK) w->status = gptrt_session_new(w->model, &session);
    if (w->status == GPTRT_OK) w->status = gptrt_session_generate(session, w->prompt, options, NULL, NULL);
    if (w->status == GPTRT_OK) w->status = gptrt_session_token_ids(session, w->ids, MAX_IDS, &w->count);
    gptrt_session_free(session);
    gptrt_generation_options_free(options);
    return NULL;
}

static void test_threads(gptrt_model_t *model, size_t max_new, int count, char **prompts) {
    static worker_t workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t].model = model;
        workers[t].prompt = prompts[t % count];
        workers[t].max_new = max_new;
        CHECK(pthread_create(&threads[t], NULL, thread_main, &workers[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(workers[t].status == GPTRT_OK, "thread %d: %s", t, gptrt_status_name(workers[t].status));
        print_ids("thread", (size_t)t, workers[t].ids, workers[t].count);
    }
}

/* ---- bad calls: each returns a status, none crashes ---- */

typedef struct {
    gptrt_session_t *session;
} canceller_t;

static void *cancel_main(void *arg) {
    canceller_t *c = (canceller_t *)arg;
    sleep_ms(2);
    gptrt_session_cancel(c->session);
    return NULL;
}

static void test_errors(gptrt_runtime_t *runtime, gptrt_model_t *model, const char *model_dir) {
    char buf[64];
    size_t size = 12345;
    uint32_t ids[MAX_IDS];
    size_t count = 0;
    gptrt_session_state_t state;

    /* Version and names. */
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", GPTRT_VERSION_MAJOR, GPTRT_VERSION_MINOR, GPTRT_VERSION_PATCH);
    CHECK(strcmp(gptrt_version(), version) == 0, "gptrt_version() = %s, header says %s", gptrt_version(), version);
    CHECK(strcmp(gptrt_status_name(GPTRT_ERROR_BUFFER_TOO_SMALL), "GPTRT_ERROR_BUFFER_TOO_SMALL") == 0, "status name");
    CHECK(strcmp(gptrt_status_name(-1), "GPTRT_STATUS_UNKNOWN") == 0, "unknown status name");
    CHECK(strcmp(gptrt_stop_reason_name(GPTRT_STOP_CANCELLED), "cancelled") == 0, "stop reason name");
    CHECK(GPTRT_FEATURE_CPU == 1 && GPTRT_FEATURE_CUDA == 0, "feature macros");
    bool available = false;
    OK(gptrt_execution_provider_available("cpu", &available));
    CHECK(available, "cpu available");
    OK(gptrt_execution_provider_available("cuda", &available));
    CHECK(!available, "cuda not compiled in");
    EXPECT(gptrt_execution_provider_available("quantum", &available), GPTRT_ERROR_INVALID_ARGUMENT);

    /* NULL handles and out-parameters. */
    gptrt_model_t *no_model = NULL;
    EXPECT(gptrt_model_load(NULL, model_dir, &no_model), GPTRT_ERROR_NULL_POINTER);
    CHECK(strstr(gptrt_last_error_message(), "runtime") != NULL, "message names the argument: %s", gptrt_last_error_message());
    CHECK(no_model == NULL, "out-parameter written on failure");
    EXPECT(gptrt_model_load(runtime, NULL, &no_model), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_model_load(runtime, model_dir, NULL), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_runtime_new(NULL, NULL), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_session_new(NULL, NULL), GPTRT_ERROR_NULL_POINTER);
    gptrt_session_t *no_session = NULL;
    EXPECT(gptrt_session_new(NULL, &no_session), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_session_generate(NULL, "x", NULL, NULL, NULL), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_session_start(NULL, "x", NULL), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_session_poll(NULL, buf, sizeof buf, &size, &state), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_session_cancel(NULL), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_session_wait(NULL), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_session_text(NULL, buf, sizeof buf, &size), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_model_context_length(NULL, &size), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_model_context_length(model, NULL), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_generation_options_set_temperature(NULL, 0.5f), GPTRT_ERROR_NULL_POINTER);
    EXPECT(gptrt_tokenizer_encode(NULL, "x", ids, MAX_IDS, &count), GPTRT_ERROR_NULL_POINTER);
    gptrt_runtime_free(NULL);
    gptrt_model_free(NULL);
    gptrt_session_free(NULL);
    gptrt_generation_options_free(NULL);
    gptrt_tokenizer_free(NULL);
    passed++;

    /* The last error is per call: cleared by a success. */
    OK(gptrt_model_context_length(model, &size));
    CHECK(size == 128 && gptrt_last_error_message()[0] == '\0', "context length %zu, message '%s'", size, gptrt_last_error_message());

    /* Runtime options. */
    gptrt_runtime_options_t ro = gptrt_runtime_options_default();
    CHECK(ro.struct_size == sizeof ro && ro.library_path == NULL && ro.intra_threads == 0, "default options");
    gptrt_runtime_t *rt2 = NULL;
    gptrt_runtime_options_t bad = ro;
    bad.struct_size = 0;
    EXPECT(gptrt_runtime_new(&bad, &rt2), GPTRT_ERROR_INVALID_ARGUMENT);
    const char *quantum[] = {"quantum"};
    bad = ro;
    bad.execution_providers = quantum;
    bad.execution_provider_count = 1;
    EXPECT(gptrt_runtime_new(&bad, &rt2), GPTRT_ERROR_INVALID_ARGUMENT);
    const char *cuda_strict[] = {"cuda:strict"};
    bad.execution_providers = cuda_strict;
    OK(gptrt_runtime_new(&bad, &rt2));
    /* Not compiled in: a strict entry fails when the model is loaded; the message says why. */
    EXPECT(gptrt_model_load(rt2, model_dir, &no_model), GPTRT_ERROR_EXECUTION_PROVIDER);
    CHECK(strstr(gptrt_last_error_message(), "cuda") != NULL, "names the feature: %s", gptrt_last_error_message());
    gptrt_runtime_free(rt2);
    rt2 = NULL;
    const char *malformed[] = {"cuda:fast"};
    bad.execution_providers = malformed;
    EXPECT(gptrt_runtime_new(&bad, &rt2), GPTRT_ERROR_INVALID_ARGUMENT);
    bad.execution_providers = NULL;
    EXPECT(gptrt_runtime_new(&bad, &rt2), GPTRT_ERROR_NULL_POINTER);
    bad = ro;
    bad.optimization_level = 99;
    EXPECT(gptrt_runtime_new(&bad, &rt2), GPTRT_ERROR_INVALID_ARGUMENT);
    /* A fallback entry that cannot be used is skipped: CPU runs the model. */
    const char *cuda_then_cpu[] = {"cuda", "cpu"};
    gptrt_runtime_options_t fallback = ro;
    fallback.execution_providers = cuda_then_cpu;
    fallback.execution_provider_count = 2;
    fallback.intra_threads = 1;
    OK(gptrt_runtime_new(&fallback, &rt2));
    gptrt_model_t *fallback_model = NULL;
    OK(gptrt_model_load(rt2, model_dir, &fallback_model));
    const char *provider = NULL;
    OK(gptrt_model_execution_provider(fallback_model, &provider));
    CHECK(provider != NULL && strcmp(provider, "CPUExecutionProvider") == 0, "fell back to the CPU: %s", provider);
    static char info[8192];
    OK(gptrt_model_info_json(fallback_model, info, sizeof info, &size));
    CHECK(strstr(info, "\"provider_skipped\":[{") != NULL, "skip reason reported: %s", info);
    CHECK(strstr(info, "\"kv_cache\":\"host memory\"") != NULL, "KV cache location reported: %s", info);
    gptrt_model_free(fallback_model);
    EXPECT(gptrt_runtime_library_path(rt2, NULL, 0, &size), GPTRT_ERROR_BUFFER_TOO_SMALL);
    CHECK(size > 1, "library path size");
    gptrt_runtime_free(rt2);

    /* Invalid UTF-8 strings. */
    const char bad_utf8[] = {'H', 'i', (char)0xff, (char)0xfe, 0};
    EXPECT(gptrt_model_load(runtime, bad_utf8, &no_model), GPTRT_ERROR_INVALID_UTF8);
    gptrt_session_t *session = NULL;
    OK(gptrt_session_new(model, &session));
    EXPECT(gptrt_session_generate(session, bad_utf8, NULL, NULL, NULL), GPTRT_ERROR_INVALID_UTF8);
    EXPECT(gptrt_session_start(session, bad_utf8, NULL), GPTRT_ERROR_INVALID_UTF8);
    gptrt_tokenizer_t *tokenizer = NULL;
    OK(gptrt_model_tokenizer(model, &tokenizer));
    EXPECT(gptrt_tokenizer_encode(tokenizer, bad_utf8, ids, MAX_IDS, &count), GPTRT_ERROR_INVALID_UTF8);
    gptrt_generation_options_t *options = NULL;
    OK(gptrt_generation_options_new(&options));
    EXPECT(gptrt_generation_options_set_int(options, bad_utf8, 3), GPTRT_ERROR_INVALID_UTF8);

    /* Missing model. Cleaning up before reporting keeps the message. */
    EXPECT(gptrt_model_load(runtime, "/nonexistent/model", &no_model), GPTRT_ERROR_MODEL_FILES);
    CHECK(no_model == NULL, "out-parameter written on failure");
    gptrt_tokenizer_t *spare = NULL;
    gptrt_model_tokenizer(model, &spare);
    EXPECT(gptrt_model_load(runtime, "/nonexistent/model", &no_model), GPTRT_ERROR_MODEL_FILES);
    gptrt_tokenizer_free(spare);
    gptrt_session_free(NULL);
    CHECK(strstr(gptrt_last_error_message(), "/nonexistent/model") != NULL, "free keeps the message: '%s'", gptrt_last_error_message());

    /* Results before any generation. */
    EXPECT(gptrt_session_text(session, buf, sizeof buf, &size), GPTRT_ERROR_INVALID_STATE);
    OK(gptrt_session_state(session, &state));
    CHECK(state == GPTRT_SESSION_IDLE, "idle state");
    size_t len = 99;
    OK(gptrt_session_poll(session, NULL, 0, &len, &state));
    CHECK(len == 0 && state == GPTRT_SESSION_IDLE, "poll idle");
    EXPECT(gptrt_session_poll(session, NULL, 8, &len, &state), GPTRT_ERROR_NULL_POINTER);
    OK(gptrt_session_cancel(session)); /* nothing running: a no-op */
    OK(gptrt_session_wait(session));

    /* Buffers too small: the size needed comes back, the buffer is untouched. */
    OK(gptrt_generation_options_set_max_new_tokens(options, 5));
    OK(gptrt_session_generate(session, "Hello world", options, NULL, NULL));
    memset(buf, 'x', sizeof buf);
    size = 0;
    EXPECT(gptrt_session_text(session, buf, 1, &size), GPTRT_ERROR_BUFFER_TOO_SMALL);
    CHECK(size > 1 && buf[0] == 'x', "too small: size %zu, buffer untouched", size);
    EXPECT(gptrt_session_text(session, NULL, 0, &size), GPTRT_ERROR_BUFFER_TOO_SMALL);
    char *text = malloc(size);
    OK(gptrt_session_text(session, text, size, &size));
    CHECK(strlen(text) + 1 == size, "text size");
    free(text);
    count = 0;
    EXPECT(gptrt_session_token_ids(session, ids, 2, &count), GPTRT_ERROR_BUFFER_TOO_SMALL);
    CHECK(count == 5, "needed 5 ids, got %zu", count);
    EXPECT(gptrt_session_token_ids(session, ids, 5, NULL), GPTRT_ERROR_NULL_POINTER);
    OK(gptrt_session_prompt_token_ids(session, ids, MAX_IDS, &count));
    CHECK(count == 2 && ids[0] == 15496 && ids[1] == 995, "prompt ids");
    EXPECT(gptrt_tokenizer_encode(tokenizer, "Hello world", ids, 1, &count), GPTRT_ERROR_BUFFER_TOO_SMALL);
    CHECK(count == 2, "encode needs 2");
    OK(gptrt_tokenizer_encode(tokenizer, "Hello world", ids, 2, &count));
    CHECK(ids[0] == 15496 && ids[1] == 995, "encode ids");
    EXPECT(gptrt_tokenizer_decode(tokenizer, ids, 2, true, buf, 5, &size), GPTRT_ERROR_BUFFER_TOO_SMALL);
    CHECK(size == 12, "decode needs 12, got %zu", size);
    OK(gptrt_tokenizer_decode(tokenizer, ids, 2, true, buf, sizeof buf, &size));
    CHECK(strcmp(buf, "Hello world") == 0, "decode: %s", buf);
    uint32_t out_of_vocab = 999999;
    EXPECT(gptrt_tokenizer_decode(tokenizer, &out_of_vocab, 1, true, buf, sizeof buf, &size), GPTRT_ERROR_INVALID_TOKEN);
    EXPECT(gptrt_tokenizer_decode(tokenizer, NULL, 3, true, buf, sizeof buf, &size), GPTRT_ERROR_NULL_POINTER);
    gptrt_tokenizer_t *own = NULL;
    OK(gptrt_tokenizer_load(model_dir, &own));
    size_t vocab = 0;
    OK(gptrt_tokenizer_vocab_size(own, &vocab));
    CHECK(vocab == 50257, "vocab %zu", vocab);
    EXPECT(gptrt_tokenizer_load("/nonexistent", &own), GPTRT_ERROR_MODEL_FILES);
    gptrt_tokenizer_free(own);

    /* Options: string keys, types, unknown names, validation. */
    gptrt_generation_options_t *copy_probe = NULL;
    OK(gptrt_generation_options_set_json(options, "stop_strings", "[\"\\n\\n\", \"END\"]"));
    OK(gptrt_generation_options_set_string(options, "early_stopping", "never"));
    OK(gptrt_generation_options_set_bool(options, "early_stopping", true));
    OK(gptrt_generation_options_set_float(options, "top_p", 0.9));
    OK(gptrt_generation_options_set_int(options, "temperature", 1));
    OK(gptrt_generation_options_get_json(options, "top_p", buf, sizeof buf, &size));
    CHECK(strncmp(buf, "0.9", 3) == 0, "top_p = %s", buf);
    OK(gptrt_generation_options_get_json(options, "seed", buf, sizeof buf, &size));
    CHECK(strcmp(buf, "null") == 0, "seed unset = %s", buf);
    EXPECT(gptrt_generation_options_set_int(options, "no_such_option", 1), GPTRT_ERROR_UNKNOWN_OPTION);
    EXPECT(gptrt_generation_options_get_json(options, "no_such_option", buf, sizeof buf, &size), GPTRT_ERROR_UNKNOWN_OPTION);
    EXPECT(gptrt_generation_options_set_json(options, "top_k", "{not json"), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_set_string(options, "max_new_tokens", "many"), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_set_float(options, "temperature", 0.0 / 0.0), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_set_early_stopping(options, 7), GPTRT_ERROR_INVALID_OPTION);
    /* One rule for a value, on every path: the call that receives a bad value fails, and the
       options keep what they had. */
    EXPECT(gptrt_generation_options_set_temperature(options, 0.0f), GPTRT_ERROR_INVALID_OPTION);
    CHECK(strstr(gptrt_last_error_message(), "temperature") != NULL, "message names the field: %s", gptrt_last_error_message());
    EXPECT(gptrt_generation_options_set_temperature(options, 0.0f / 0.0f), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_set_top_p(options, 2.0f), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_set_float(options, "top_p", 2.0), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_set_max_new_tokens(options, 0), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_set_int(options, "max_new_tokens", 0), GPTRT_ERROR_INVALID_OPTION);
    /* A bias that is not a finite 32-bit float would come back from to_json as null. */
    EXPECT(gptrt_generation_options_set_json(options, "sequence_bias", "[[[5], 1e39]]"), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_from_json("{\"sequence_bias\": [[[5], 1e39]]}", &copy_probe), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_generation_options_from_json("{\"top_p\": 2}", &copy_probe), GPTRT_ERROR_INVALID_OPTION);
    OK(gptrt_generation_options_get_json(options, "temperature", buf, sizeof buf, &size));
    CHECK(strcmp(buf, "1.0") == 0, "refused values are not stored: temperature = %s", buf);
    OK(gptrt_generation_options_validate(options));
    /* How fields combine is checked by validate and by every generation. */
    OK(gptrt_generation_options_set_num_beams(options, 2));
    OK(gptrt_generation_options_set_num_return_sequences(options, 3));
    EXPECT(gptrt_generation_options_validate(options), GPTRT_ERROR_INVALID_OPTION);
    CHECK(strstr(gptrt_last_error_message(), "num_return_sequences") != NULL, "message names the field: %s", gptrt_last_error_message());
    EXPECT(gptrt_session_start(session, "Hello", options), GPTRT_ERROR_INVALID_OPTION);
    EXPECT(gptrt_session_generate(session, "Hello", options, NULL, NULL), GPTRT_ERROR_INVALID_OPTION);
    OK(gptrt_generation_options_unset(options, "num_beams"));
    OK(gptrt_generation_options_unset(options, "num_return_sequences"));
    OK(gptrt_generation_options_unset(options, "stop_strings"));
    OK(gptrt_generation_options_validate(options));
    gptrt_generation_options_t *from_json = NULL;
    OK(gptrt_generation_options_from_json("{\"max_new_tokens\": 3, \"transformers_version\": \"4.57\"}", &from_json));
    static char json[4096];
    OK(gptrt_generation_options_to_json(from_json, json, sizeof json, &size));
    CHECK(strstr(json, "\"max_new_tokens\":3") != NULL && size == strlen(json) + 1, "to_json: %s", json);
    gptrt_generation_options_free(from_json);
    from_json = NULL;
    EXPECT(gptrt_generation_options_from_json("{\"guidance_scale\": 2}", &from_json), GPTRT_ERROR_UNKNOWN_OPTION);
    EXPECT(gptrt_generation_options_from_json("[1, 2]", &from_json), GPTRT_ERROR_INVALID_OPTION);
    CHECK(from_json == NULL, "out-parameter written on failure");
    uint32_t seq_ids[] = {1, 2, 3};
    size_t seq_lens[] = {1, 2};
    float biases[] = {-1.0f, 2.0f};
    OK(gptrt_generation_options_set_bad_words_ids(options, seq_ids, seq_lens, 2));
    OK(gptrt_generation_options_set_sequence_bias(options, seq_ids, seq_lens, biases, 2));
    EXPECT(gptrt_generation_options_set_bad_words_ids(options, NULL, seq_lens, 2), GPTRT_ERROR_NULL_POINTER);
    const char *stops[] = {"END"};
    OK(gptrt_generation_options_set_stop_strings(options, stops, 1));
    const char *bad_stops[] = {bad_utf8};
    EXPECT(gptrt_generation_options_set_stop_strings(options, bad_stops, 1), GPTRT_ERROR_INVALID_UTF8);
    gptrt_generation_options_t *copy = NULL;
    OK(gptrt_generation_options_clone(options, &copy));
    OK(gptrt_generation_options_get_json(copy, "stop_strings", buf, sizeof buf, &size));
    CHECK(strcmp(buf, "[\"END\"]") == 0, "clone keeps stop_strings: %s", buf);
    gptrt_generation_options_free(copy);
    OK(gptrt_generation_options_set_num_return_sequences(options, 2));
    OK(gptrt_generation_options_set_do_sample(options, true));
    EXPECT(gptrt_session_start(session, "Hello", options), GPTRT_ERROR_INVALID_OPTION);
    gptrt_generation_options_free(options);

    /* Context overflow: a prompt longer than the window (128 tokens). */
    gptrt_stop_reason_t reason = 0;
    char long_prompt[2048] = "";
    for (int i = 0; i < 200; i++) {
        strcat(long_prompt, " a");
    }
    options = greedy_options(4);
    EXPECT(gptrt_session_generate(session, long_prompt, options, NULL, NULL), GPTRT_ERROR_CONTEXT_OVERFLOW);
    /* The poll API tokenizes on the worker: the failure comes back through the session. */
    OK(gptrt_session_start(session, long_prompt, options));
    EXPECT(gptrt_session_wait(session), GPTRT_ERROR_CONTEXT_OVERFLOW);
    len = 0;
    OK(gptrt_session_poll(session, buf, sizeof buf, &len, &state));
    CHECK(len == 0 && state == GPTRT_SESSION_FAILED, "failed generation polls as FAILED (%d)", (int)state);
    EXPECT(gptrt_session_text(session, buf, sizeof buf, &size), GPTRT_ERROR_CONTEXT_OVERFLOW);
    EXPECT(gptrt_session_stop_reason(session, &reason), GPTRT_ERROR_CONTEXT_OVERFLOW);
    OK(gptrt_generation_options_set_truncate_prompt(options, true));
    OK(gptrt_session_generate(session, long_prompt, options, NULL, NULL));
    gptrt_generation_options_free(options);

    /* Stopping from the callback, and cancelling from inside it. */
    options = greedy_options(20);
    static collected_t c;
    memset(&c, 0, sizeof c);
    c.stop_at = 2;
    c.cancel_at = -1;
    OK(gptrt_session_generate(session, "Once upon a time", options, collect, &c));
    OK(gptrt_session_stop_reason(session, &reason));
    CHECK(reason == GPTRT_STOP_CALLBACK && c.count == 3, "callback stop: %s after %zu", gptrt_stop_reason_name(reason), c.count);
    memset(&c, 0, sizeof c);
    c.stop_at = -1;
    c.cancel_at = 3;
    c.session = session;
    OK(gptrt_session_generate(session, "Once upon a time", options, collect, &c));
    OK(gptrt_session_stop_reason(session, &reason));
    /* The token in progress when the cancel is seen is the last one. */
    CHECK(reason == GPTRT_STOP_CANCELLED && c.count == 5, "cancel in callback: %s after %zu", gptrt_stop_reason_name(reason), c.count);
    /* Cancelling a finished generation changes nothing. */
    OK(gptrt_session_cancel(session));
    OK(gptrt_session_stop_reason(session, &reason));
    CHECK(reason == GPTRT_STOP_CANCELLED, "still cancelled");
    gptrt_generation_options_free(options);

    /* Busy: one generation at a time per session; results only when it is over. */
    options = greedy_options(100);
    OK(gptrt_session_start(session, "Hello", options));
    EXPECT(gptrt_session_start(session, "Hello", options), GPTRT_ERROR_BUSY);
    EXPECT(gptrt_session_generate(session, "Hello", options, NULL, NULL), GPTRT_ERROR_BUSY);
    EXPECT(gptrt_session_text(session, buf, sizeof buf, &size), GPTRT_ERROR_BUSY);
    /* Cancel from another thread, then wait. */
    canceller_t canceller = {session};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, cancel_main, &canceller) == 0, "pthread_create");
    OK(gptrt_session_wait(session));
    pthread_join(thread, NULL);
    OK(gptrt_session_stop_reason(session, &reason));
    CHECK(reason == GPTRT_STOP_CANCELLED || reason == GPTRT_STOP_MAX_NEW_TOKENS, "cancelled from a thread: %s", gptrt_stop_reason_name(reason));
    OK(gptrt_session_state(session, &state));
    CHECK(state == GPTRT_SESSION_FINISHED, "finished after wait");
    OK(gptrt_session_cancel(session));

    /* Freeing a session while it generates cancels it and returns. */
    gptrt_session_t *running = NULL;
    OK(gptrt_session_new(model, &running));
    OK(gptrt_session_start(running, "Hello", options));
    gptrt_session_free(running);
    running = NULL;
    gptrt_generation_options_free(options);

    /* Stale, forged and wrongly typed handles. */
    gptrt_session_t *stale = NULL;
    OK(gptrt_session_new(model, &stale));
    gptrt_session_free(stale);
    EXPECT(gptrt_session_start(stale, "x", NULL), GPTRT_ERROR_INVALID_HANDLE);
    EXPECT(gptrt_session_cancel(stale), GPTRT_ERROR_INVALID_HANDLE);
    gptrt_session_free(stale); /* a second free of the same pointer is ignored */
    stale = NULL;              /* the documented pattern */
    gptrt_session_free(stale);
    EXPECT(gptrt_session_cancel((gptrt_session_t *)(uintptr_t)0x1234), GPTRT_ERROR_INVALID_HANDLE);
    EXPECT(gptrt_session_cancel((const gptrt_session_t *)(const void *)model), GPTRT_ERROR_INVALID_HANDLE);
    CHECK(strstr(gptrt_last_error_message(), "gptrt_model_t") != NULL, "names the real type: %s", gptrt_last_error_message());
    gptrt_model_free((gptrt_model_t *)(void *)session); /* wrong type: ignored */
    OK(gptrt_session_state(session, &state));

    /* A model from bytes in memory (as from a game's archive) runs like the folder's. */
    {
        const char *names[] = {"config.json", "tokenizer.json", "generation_config.json", "model.onnx"};
        unsigned char *data[4] = {NULL, NULL, NULL, NULL};
        size_t sizes[4] = {0, 0, 0, 0};
        for (int f = 0; f < 4; f++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", model_dir, names[f]);
            FILE *file = fopen(path, "rb");
            CHECK(file != NULL, "open %s", path);
            if (file == NULL) {
                continue;
            }
            fseek(file, 0, SEEK_END);
            sizes[f] = (size_t)ftell(file);
            fseek(file, 0, SEEK_SET);
            data[f] = malloc(sizes[f]);
            CHECK(data[f] != NULL && fread(data[f], 1, sizes[f], file) == sizes[f], "read %s", path);
            fclose(file);
        }
        gptrt_model_files_t files;
        memset(&files, 0, sizeof files);
        files.struct_size = sizeof files;
        files.config_json = data[0];
        files.config_json_size = sizes[0];
        files.tokenizer_json = data[1];
        files.tokenizer_json_size = sizes[1];
        files.generation_config_json = data[2];
        files.generation_config_json_size = sizes[2];
        files.graph = data[3];
        files.graph_size = sizes[3];
        gptrt_model_files_t broken = files;
        broken.graph = NULL;
        EXPECT(gptrt_model_load_from_memory(runtime, &broken, &no_model), GPTRT_ERROR_NULL_POINTER);
        static const unsigned char garbage[] = "not an onnx graph";
        broken = files;
        broken.graph = garbage;
        broken.graph_size = sizeof garbage - 1;
        EXPECT(gptrt_model_load_from_memory(runtime, &broken, &no_model), GPTRT_ERROR_ONNX_RUNTIME);
        static const unsigned char config[] = "{\"n_layer\": 2}";
        broken = files;
        broken.config_json = config;
        broken.config_json_size = sizeof config - 1;
        EXPECT(gptrt_model_load_from_memory(runtime, &broken, &no_model), GPTRT_ERROR_MODEL_CONFIG);
        broken.struct_size = 8;
        EXPECT(gptrt_model_load_from_memory(runtime, &broken, &no_model), GPTRT_ERROR_INVALID_ARGUMENT);
        EXPECT(gptrt_model_load_from_memory(runtime, NULL, &no_model), GPTRT_ERROR_NULL_POINTER);
        gptrt_model_t *in_memory = NULL;
        OK(gptrt_model_load_from_memory(runtime, &files, &in_memory));
        for (int f = 0; f < 4; f++) {
            free(data[f]); /* read during the call only */
        }
        gptrt_session_t *memory_session = NULL;
        OK(gptrt_session_new(in_memory, &memory_session));
        options = greedy_options(5);
        OK(gptrt_session_generate(memory_session, "Hello world", options, NULL, NULL));
        OK(gptrt_session_token_ids(memory_session, ids, MAX_IDS, &count));
        const uint32_t hello_world[5] = {8785, 41313, 30423, 28418, 41313}; /* reference.json */
        CHECK(count == 5 && memcmp(ids, hello_world, sizeof hello_world) == 0, "in-memory model ids");
        gptrt_session_free(memory_session);
        gptrt_model_free(in_memory);
        gptrt_generation_options_free(options);

        CHECK(no_model == NULL, "out-parameter written on failure");
    }

    /* A session outlives its model handle. */
    gptrt_model_t *second = NULL;
    OK(gptrt_model_load(runtime, model_dir, &second));
    gptrt_session_t *orphan = NULL;
    OK(gptrt_session_new(second, &orphan));
    gptrt_model_free(second);
    second = NULL;
    OK(gptrt_session_generate(orphan, "Hello", NULL, NULL, NULL));
    gptrt_session_free(orphan);

    gptrt_tokenizer_free(tokenizer);
    gptrt_session_free(session);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR MAX_NEW_TOKENS PROMPT...\n", argv[0]);
        return 2;
    }
    const char *model_dir = argv[1];
    size_t max_new = (size_t)strtoul(argv[2], NULL, 10);
    int count = argc - 3;
    char **prompts = argv + 3;

    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_status_t status = gptrt_runtime_new(NULL, &runtime);
    if (status == GPTRT_OK) {
        status = gptrt_model_load(runtime, model_dir, &model);
    }
    if (status != GPTRT_OK) {
        fprintf(stderr, "setup failed: %s: %s\n", gptrt_status_name(status), gptrt_last_error_message());
        return 1;
    }
    test_generate(model, max_new, count, prompts);
    test_poll(model, NULL, "poll", max_new, count, prompts);
    test_batched(model, max_new, count, prompts);
    test_threads(model, max_new, count, prompts);
    test_errors(runtime, model, model_dir);

    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
