// gptrt.hpp: a header-only C++17 wrapper over the gptrt C API (gptrt.h).
//
// RAII handles (move-only; freed in the destructor), exceptions (gptrt::Error carries the status
// and the message) and standard types (std::string, std::vector). Link exactly as for C: the
// wrapper adds no symbols of its own.
//
//   gptrt::Runtime runtime;                                   // ONNX Runtime, default options
//   gptrt::Model model(runtime, "models/fixtures/tiny-random-gpt2/single");
//   gptrt::Session session(model);
//   gptrt::GenerationOptions options(model);                  // the folder's generation_config.json
//   options.max_new_tokens(32);
//   session.generate("Once upon a time", options, [](const gptrt::Token &token) {
//       std::cout << token.text << std::flush;
//       return true;                                          // false stops
//   });
//   std::vector<uint32_t> ids = session.token_ids();
//
// Threading is the C API's: every class may be used from several threads as the C functions they
// call document (a Model is shared by any number of Sessions on any threads).
#ifndef GPTRT_HPP
#define GPTRT_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "gptrt.h"

namespace gptrt {

// A failed gptrt call: the C status and gptrt's message.
class Error : public std::runtime_error {
public:
    Error(gptrt_status_t status, const std::string &message)
        : std::runtime_error(std::string(gptrt_status_name(status)) + ": " + message), status_(status) {}

    // The C API's status code.
    gptrt_status_t status() const noexcept { return status_; }

private:
    gptrt_status_t status_;
};

namespace detail {

// Throw gptrt::Error for anything but GPTRT_OK, with this thread's last-error message.
inline void check(gptrt_status_t status) {
    if (status != GPTRT_OK) {
        throw Error(status, gptrt_last_error_message());
    }
}

// The C string of a std::string for a C call. A std::string may hold NUL bytes, where a C string
// would silently end: refuse it instead of passing a shortened text.
inline const char *c_str(const std::string &text, const char *what) {
    const std::string::size_type nul = text.find('\0');
    if (nul != std::string::npos) {
        throw Error(GPTRT_ERROR_INVALID_ARGUMENT,
                    std::string(what) + " contains a NUL byte at offset " + std::to_string(nul) +
                        " (the C API takes NUL-terminated text, which would end there)");
    }
    return text.c_str();
}

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *handle) const noexcept { Free(handle); }
};

template <typename T, void (*Free)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

// Call fn(buffer, capacity, &size) until the text fits (it may grow between calls).
template <typename Fn>
std::string read_text(Fn &&fn) {
    std::string text(256, '\0');
    for (;;) {
        size_t size = 0;
        gptrt_status_t status = fn(&text[0], text.size(), &size);
        if (status == GPTRT_OK) {
            text.resize(size == 0 ? 0 : size - 1); // drop the NUL
            return text;
        }
        if (status != GPTRT_ERROR_BUFFER_TOO_SMALL) {
            check(status);
        }
        text.assign(size, '\0');
    }
}

// Call fn(ids, capacity, &count) until the ids fit.
template <typename Fn>
std::vector<uint32_t> read_ids(Fn &&fn) {
    std::vector<uint32_t> ids(64);
    for (;;) {
        size_t count = 0;
        gptrt_status_t status = fn(ids.data(), ids.size(), &count);
        if (status == GPTRT_OK) {
            ids.resize(count);
            return ids;
        }
        if (status != GPTRT_ERROR_BUFFER_TOO_SMALL) {
            check(status);
        }
        ids.assign(count, 0);
    }
}

} // namespace detail

// The library's version ("MAJOR.MINOR.PATCH").
inline std::string version() { return gptrt_version(); }

// Whether an execution provider ("cpu", "cuda", ...) is compiled into the library.
inline bool execution_provider_available(const std::string &name) {
    bool available = false;
    detail::check(gptrt_execution_provider_available(detail::c_str(name, "name"), &available));
    return available;
}

// Options for Runtime; empty/zero fields mean the C API's defaults.
struct RuntimeOptions {
    std::string library_path;                     // empty: search (see gptrt_runtime_options_t)
    std::vector<std::string> execution_providers; // in priority order; empty: CPU
    uint32_t intra_threads = 0;                   // 0: one per core
    uint32_t inter_threads = 0;
    gptrt_optimization_level_t optimization_level = GPTRT_OPTIMIZATION_DEFAULT;
};

// The ONNX Runtime environment (gptrt_runtime_t).
class Runtime {
public:
    explicit Runtime(const RuntimeOptions &options = RuntimeOptions()) {
        gptrt_runtime_options_t c = gptrt_runtime_options_default();
        if (!options.library_path.empty()) {
            c.library_path = detail::c_str(options.library_path, "library_path");
        }
        std::vector<const char *> providers;
        for (const std::string &name : options.execution_providers) {
            providers.push_back(detail::c_str(name, "execution provider"));
        }
        c.execution_providers = providers.empty() ? nullptr : providers.data();
        c.execution_provider_count = providers.size();
        c.intra_threads = options.intra_threads;
        c.inter_threads = options.inter_threads;
        c.optimization_level = options.optimization_level;
        gptrt_runtime_t *handle = nullptr;
        detail::check(gptrt_runtime_new(&c, &handle));
        handle_.reset(handle);
    }

    // The ONNX Runtime library in use.
    std::string library_path() const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_runtime_library_path(handle_.get(), buffer, capacity, size);
        });
    }

    gptrt_runtime_t *get() const noexcept { return handle_.get(); }

private:
    detail::Handle<gptrt_runtime_t, gptrt_runtime_free> handle_;
};

// A loaded model (gptrt_model_t), shared by any number of sessions and threads.
class Model {
public:
    Model(const Runtime &runtime, const std::string &path) {
        gptrt_model_t *handle = nullptr;
        detail::check(gptrt_model_load(runtime.get(), detail::c_str(path, "path"), &handle));
        handle_.reset(handle);
    }

    // A model from its files' bytes (see gptrt_model_files_t); the bytes are read during the call.
    static Model from_memory(const Runtime &runtime, const gptrt_model_files_t &files) {
        gptrt_model_t *handle = nullptr;
        detail::check(gptrt_model_load_from_memory(runtime.get(), &files, &handle));
        return Model(handle);
    }

    size_t context_length() const {
        size_t tokens = 0;
        detail::check(gptrt_model_context_length(handle_.get(), &tokens));
        return tokens;
    }

    size_t vocab_size() const {
        size_t size = 0;
        detail::check(gptrt_model_vocab_size(handle_.get(), &size));
        return size;
    }

    // "single", "merged", "split" or "no-past".
    std::string layout() const {
        const char *layout = nullptr;
        detail::check(gptrt_model_layout(handle_.get(), &layout));
        return layout;
    }

    // The execution provider the model's graphs run on (ONNX Runtime's name).
    std::string execution_provider() const {
        const char *name = nullptr;
        detail::check(gptrt_model_execution_provider(handle_.get(), &name));
        return name;
    }

    // dir, layout, provider, config, generation_config and graphs, as JSON.
    std::string info_json() const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_model_info_json(handle_.get(), buffer, capacity, size);
        });
    }

    gptrt_model_t *get() const noexcept { return handle_.get(); }

private:
    explicit Model(gptrt_model_t *handle) : handle_(handle) {}
    detail::Handle<gptrt_model_t, gptrt_model_free> handle_;
};

// GPT-2's tokenizer (gptrt_tokenizer_t).
class Tokenizer {
public:
    // The model's tokenizer.
    explicit Tokenizer(const Model &model) {
        gptrt_tokenizer_t *handle = nullptr;
        detail::check(gptrt_model_tokenizer(model.get(), &handle));
        handle_.reset(handle);
    }

    // A tokenizer alone, from a folder with tokenizer.json (or vocab.json + merges.txt).
    static Tokenizer load(const std::string &dir) {
        gptrt_tokenizer_t *handle = nullptr;
        detail::check(gptrt_tokenizer_load(detail::c_str(dir, "dir"), &handle));
        return Tokenizer(handle);
    }

    std::vector<uint32_t> encode(const std::string &text) const {
        return detail::read_ids([&](uint32_t *ids, size_t capacity, size_t *count) {
            return gptrt_tokenizer_encode(handle_.get(), detail::c_str(text, "text"), ids, capacity, count);
        });
    }

    std::string decode(const std::vector<uint32_t> &ids, bool skip_special_tokens = true) const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_tokenizer_decode(handle_.get(), ids.data(), ids.size(), skip_special_tokens,
                                          buffer, capacity, size);
        });
    }

    size_t vocab_size() const {
        size_t size = 0;
        detail::check(gptrt_tokenizer_vocab_size(handle_.get(), &size));
        return size;
    }

    gptrt_tokenizer_t *get() const noexcept { return handle_.get(); }

private:
    explicit Tokenizer(gptrt_tokenizer_t *handle) : handle_(handle) {}
    detail::Handle<gptrt_tokenizer_t, gptrt_tokenizer_free> handle_;
};

// Generation settings with Hugging Face GenerationConfig names (gptrt_generation_options_t).
// Setters return *this so they chain; each throws gptrt::Error on a bad name or type.
class GenerationOptions {
public:
    // Hugging Face's defaults.
    GenerationOptions() {
        gptrt_generation_options_t *handle = nullptr;
        detail::check(gptrt_generation_options_new(&handle));
        handle_.reset(handle);
    }

    // The model folder's generation_config.json.
    explicit GenerationOptions(const Model &model) {
        gptrt_generation_options_t *handle = nullptr;
        detail::check(gptrt_generation_options_from_model(model.get(), &handle));
        handle_.reset(handle);
    }

    // From a generation_config.json-style object.
    static GenerationOptions from_json(const std::string &json) {
        gptrt_generation_options_t *handle = nullptr;
        detail::check(gptrt_generation_options_from_json(detail::c_str(json, "json"), &handle));
        return GenerationOptions(handle);
    }

    GenerationOptions(const GenerationOptions &other) {
        gptrt_generation_options_t *handle = nullptr;
        detail::check(gptrt_generation_options_clone(other.get(), &handle));
        handle_.reset(handle);
    }
    GenerationOptions &operator=(const GenerationOptions &other) {
        if (this != &other) {
            GenerationOptions copy(other);
            handle_ = std::move(copy.handle_);
        }
        return *this;
    }
    GenerationOptions(GenerationOptions &&) noexcept = default;
    GenerationOptions &operator=(GenerationOptions &&) noexcept = default;

    // Any field by name.
    GenerationOptions &set_json(const std::string &key, const std::string &json) {
        detail::check(gptrt_generation_options_set_json(get(), detail::c_str(key, "key"), detail::c_str(json, "json")));
        return *this;
    }
    GenerationOptions &set_int(const std::string &key, int64_t value) {
        detail::check(gptrt_generation_options_set_int(get(), detail::c_str(key, "key"), value));
        return *this;
    }
    GenerationOptions &set_float(const std::string &key, double value) {
        detail::check(gptrt_generation_options_set_float(get(), detail::c_str(key, "key"), value));
        return *this;
    }
    GenerationOptions &set_bool(const std::string &key, bool value) {
        detail::check(gptrt_generation_options_set_bool(get(), detail::c_str(key, "key"), value));
        return *this;
    }
    GenerationOptions &set_string(const std::string &key, const std::string &value) {
        detail::check(gptrt_generation_options_set_string(get(), detail::c_str(key, "key"), detail::c_str(value, "value")));
        return *this;
    }
    GenerationOptions &unset(const std::string &key) {
        detail::check(gptrt_generation_options_unset(get(), detail::c_str(key, "key")));
        return *this;
    }
    // One field as JSON ("null" when unset).
    std::string get_json(const std::string &key) const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_generation_options_get_json(get(), detail::c_str(key, "key"), buffer, capacity, size);
        });
    }
    std::string to_json() const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_generation_options_to_json(get(), buffer, capacity, size);
        });
    }
    // Throws gptrt::Error (GPTRT_ERROR_INVALID_OPTION) naming the first bad field.
    void validate() const { detail::check(gptrt_generation_options_validate(get())); }

    // The most used fields, typed (every field is reachable through the setters above).
    GenerationOptions &max_new_tokens(size_t value) {
        detail::check(gptrt_generation_options_set_max_new_tokens(get(), value));
        return *this;
    }
    GenerationOptions &do_sample(bool value) {
        detail::check(gptrt_generation_options_set_do_sample(get(), value));
        return *this;
    }
    GenerationOptions &temperature(float value) {
        detail::check(gptrt_generation_options_set_temperature(get(), value));
        return *this;
    }
    GenerationOptions &top_k(size_t value) {
        detail::check(gptrt_generation_options_set_top_k(get(), value));
        return *this;
    }
    GenerationOptions &top_p(float value) {
        detail::check(gptrt_generation_options_set_top_p(get(), value));
        return *this;
    }
    GenerationOptions &repetition_penalty(float value) {
        detail::check(gptrt_generation_options_set_repetition_penalty(get(), value));
        return *this;
    }
    GenerationOptions &seed(uint64_t value) {
        detail::check(gptrt_generation_options_set_seed(get(), value));
        return *this;
    }
    GenerationOptions &stop_strings(const std::vector<std::string> &strings) {
        std::vector<const char *> pointers;
        for (const std::string &s : strings) {
            pointers.push_back(detail::c_str(s, "stop string"));
        }
        detail::check(gptrt_generation_options_set_stop_strings(get(), pointers.data(), pointers.size()));
        return *this;
    }
    GenerationOptions &eos_token_id(const std::vector<uint32_t> &ids) {
        detail::check(gptrt_generation_options_set_eos_token_id(get(), ids.data(), ids.size()));
        return *this;
    }

    gptrt_generation_options_t *get() const noexcept { return handle_.get(); }

private:
    explicit GenerationOptions(gptrt_generation_options_t *handle) : handle_(handle) {}
    detail::Handle<gptrt_generation_options_t, gptrt_generation_options_free> handle_;
};

// One generated token, as the streaming callback sees it. `text` is valid during the call only.
struct Token {
    uint32_t id;
    std::string_view text;
    size_t index;
};

// Many sessions, one forward pass per step (gptrt_batcher_t): sessions made from it generate
// together (max_time and logprobs per generation). Beam search and plugin samplers need a
// session of their own.
class Batcher {
public:
    explicit Batcher(const Model &model) {
        gptrt_batcher_t *handle = nullptr;
        detail::check(gptrt_batcher_new(model.get(), &handle));
        handle_.reset(handle);
    }

    // forward_passes, tokens, generations, max_rows, mean_rows_per_pass (a JSON object).
    std::string stats_json() const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_batcher_stats_json(handle_.get(), buffer, capacity, size);
        });
    }

    gptrt_batcher_t *get() const noexcept { return handle_.get(); }

private:
    detail::Handle<gptrt_batcher_t, gptrt_batcher_free> handle_;
};

// One sequence in flight (gptrt_session_t): generate with a callback, or start + poll.
class Session {
public:
    explicit Session(const Model &model) {
        gptrt_session_t *handle = nullptr;
        detail::check(gptrt_session_new(model.get(), &handle));
        handle_.reset(handle);
    }

    // A session whose started generations step together with the batcher's other sessions.
    explicit Session(const Batcher &batcher) {
        gptrt_session_t *handle = nullptr;
        detail::check(gptrt_session_new_batched(batcher.get(), &handle));
        handle_.reset(handle);
    }

    // Generate on this thread with the model's defaults / with options.
    void generate(const std::string &prompt) { run(prompt, nullptr, nullptr, nullptr); }
    void generate(const std::string &prompt, const GenerationOptions &options) {
        run(prompt, options.get(), nullptr, nullptr);
    }

    // Generate on this thread, calling on_token(const gptrt::Token &) -> bool for each token
    // (false stops). An exception thrown by on_token stops generation and is rethrown here.
    template <typename F, typename = std::enable_if_t<std::is_invocable_r_v<bool, F &, const Token &>>>
    void generate(const std::string &prompt, F &&on_token) {
        generate_with(prompt, nullptr, on_token);
    }
    template <typename F, typename = std::enable_if_t<std::is_invocable_r_v<bool, F &, const Token &>>>
    void generate(const std::string &prompt, const GenerationOptions &options, F &&on_token) {
        generate_with(prompt, options.get(), on_token);
    }

    // Constrain later generations with the grammar plugin (org.gptrt.grammar, loaded in `host`):
    // kind "json_schema" (text: a JSON Schema), "regex" or "grammar" (Lark). A schema or grammar
    // the plugin rejects throws here, before any generation.
    void constrain(gptrt_plugin_host_t *host, const std::string &kind, const std::string &text) {
        detail::check(gptrt_session_constrain(get(), host, detail::c_str(kind, "kind"), detail::c_str(text, "text")));
    }

    // Put plugin sampler `id` in the chain at `stage` ("processor", "warper", "selector"; empty:
    // the plugin's own), with `config_json` (empty: none).
    void add_sampler(gptrt_plugin_host_t *host, const std::string &id, const std::string &stage = "",
                     const std::string &config_json = "") {
        detail::check(gptrt_session_add_sampler_at(
            get(), host, detail::c_str(id, "id"), stage.empty() ? nullptr : detail::c_str(stage, "stage"),
            config_json.empty() ? nullptr : detail::c_str(config_json, "config_json")));
    }

    // Start on a worker thread and return at once; then poll() each frame.
    void start(const std::string &prompt) { detail::check(gptrt_session_start(get(), detail::c_str(prompt, "prompt"), nullptr)); }
    void start(const std::string &prompt, const GenerationOptions &options) {
        detail::check(gptrt_session_start(get(), detail::c_str(prompt, "prompt"), options.get()));
    }

    // Append the text that is ready to `out` without waiting; returns the state
    // (GPTRT_SESSION_FINISHED once the generation ended and all its text was taken).
    gptrt_session_state_t poll(std::string &out) {
        char chunk[1024];
        gptrt_session_state_t state = GPTRT_SESSION_IDLE;
        size_t len = 0;
        do {
            detail::check(gptrt_session_poll(get(), chunk, sizeof chunk, &len, &state));
            out.append(chunk, len);
        } while (len + 1 >= sizeof chunk - 4); // the chunk was full: take more
        return state;
    }

    // Append the token ids that are ready to `out` without waiting; returns the state.
    gptrt_session_state_t poll_tokens(std::vector<uint32_t> &out) {
        uint32_t chunk[256];
        gptrt_session_state_t state = GPTRT_SESSION_IDLE;
        size_t count = 0;
        do {
            detail::check(gptrt_session_poll_tokens(get(), chunk, 256, &count, &state));
            out.insert(out.end(), chunk, chunk + count);
        } while (count == 256);
        return state;
    }

    gptrt_session_state_t state() const {
        gptrt_session_state_t state = GPTRT_SESSION_IDLE;
        detail::check(gptrt_session_state(get(), &state));
        return state;
    }

    // Stop the running generation (from any thread); a no-op when none runs.
    void cancel() const { detail::check(gptrt_session_cancel(get())); }

    // Block until the generation ends; rethrows its error as gptrt::Error.
    void wait() const { detail::check(gptrt_session_wait(get())); }

    // The last generation's results.
    std::string text() const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_session_text(get(), buffer, capacity, size);
        });
    }
    std::vector<uint32_t> token_ids() const {
        return detail::read_ids([&](uint32_t *ids, size_t capacity, size_t *count) {
            return gptrt_session_token_ids(get(), ids, capacity, count);
        });
    }
    std::vector<uint32_t> prompt_token_ids() const {
        return detail::read_ids([&](uint32_t *ids, size_t capacity, size_t *count) {
            return gptrt_session_prompt_token_ids(get(), ids, capacity, count);
        });
    }
    gptrt_stop_reason_t stop_reason() const {
        gptrt_stop_reason_t reason = GPTRT_STOP_OTHER;
        detail::check(gptrt_session_stop_reason(get(), &reason));
        return reason;
    }
    std::string result_json() const {
        return detail::read_text([&](char *buffer, size_t capacity, size_t *size) {
            return gptrt_session_result_json(get(), buffer, capacity, size);
        });
    }

    // ---- dialogue: the session keeps its sequence and KV cache across turns ----

    // Append text (tokenized on its own) or token ids; nothing runs until the next turn or
    // prefill(). append_text returns the number of tokens added.
    size_t append_text(const std::string &text) {
        size_t count = 0;
        detail::check(gptrt_session_append_text(get(), detail::c_str(text, "text"), &count));
        return count;
    }
    void append_tokens(const std::vector<uint32_t> &ids) {
        detail::check(gptrt_session_append_tokens(get(), ids.data(), ids.size()));
    }
    // Run the appended tokens now (a persona before forking NPCs); returns how many ran.
    size_t prefill() {
        size_t count = 0;
        detail::check(gptrt_session_prefill(get(), &count));
        return count;
    }
    // Continue the sequence on the worker (or in the batcher); poll() as after start().
    void start_turn() { detail::check(gptrt_session_start_turn(get(), nullptr)); }
    void start_turn(const GenerationOptions &options) { detail::check(gptrt_session_start_turn(get(), options.get())); }
    // Continue the sequence on this thread.
    void generate_turn() { detail::check(gptrt_session_generate_turn(get(), nullptr, nullptr, nullptr)); }
    void generate_turn(const GenerationOptions &options) {
        detail::check(gptrt_session_generate_turn(get(), options.get(), nullptr, nullptr));
    }
    template <typename F, typename = std::enable_if_t<std::is_invocable_r_v<bool, F &, const Token &>>>
    void generate_turn(const GenerationOptions &options, F &&on_token) {
        CallbackState<F> state{&on_token, nullptr};
        detail::check(gptrt_session_generate_turn(get(), options.get(), &Session::trampoline<F>, &state));
        if (state.error) {
            std::rethrow_exception(state.error);
        }
    }
    // Cut the sequence back to `length` tokens (the cache too; nothing runs again).
    void rewind(size_t length) { detail::check(gptrt_session_rewind(get(), length)); }
    // Make the sequence `ids`, keeping the longest common prefix; returns its length.
    size_t set_tokens(const std::vector<uint32_t> &ids) {
        size_t kept = 0;
        detail::check(gptrt_session_set_tokens(get(), ids.data(), ids.size(), &kept));
        return kept;
    }
    // The whole sequence.
    std::vector<uint32_t> context_tokens() const {
        return detail::read_ids([&](uint32_t *ids, size_t capacity, size_t *count) {
            return gptrt_session_context_tokens(get(), ids, capacity, count);
        });
    }
    struct ContextCounts {
        size_t length;      // tokens in the sequence
        size_t cached;      // of which in the KV cache
        uint64_t tokens_run; // positions the model ran for the sequence so far
    };
    ContextCounts context_counts() const {
        ContextCounts counts{0, 0, 0};
        detail::check(gptrt_session_context_counts(get(), &counts.length, &counts.cached, &counts.tokens_run));
        return counts;
    }
    // A new session with a copy of the sequence, cache and random state (nothing runs again).
    Session fork() const {
        gptrt_session_t *handle = nullptr;
        detail::check(gptrt_session_fork(get(), &handle));
        return Session(handle);
    }
    void reseed(uint64_t seed) { detail::check(gptrt_session_reseed(get(), seed)); }
    // The saved state (docs/saved-sessions.md); kv: GPTRT_SAVED_KV_NONE, _F32 or _F16.
    std::vector<uint8_t> save(gptrt_saved_kv_t kv = GPTRT_SAVED_KV_NONE) const {
        size_t size = 0;
        gptrt_status_t status = gptrt_session_save(get(), kv, nullptr, 0, &size);
        if (status != GPTRT_ERROR_BUFFER_TOO_SMALL) {
            detail::check(status);
        }
        std::vector<uint8_t> bytes(size);
        detail::check(gptrt_session_save(get(), kv, bytes.data(), bytes.size(), &size));
        bytes.resize(size);
        return bytes;
    }
    void restore(const std::vector<uint8_t> &bytes) {
        detail::check(gptrt_session_restore(get(), bytes.data(), bytes.size()));
    }

    gptrt_session_t *get() const noexcept { return handle_.get(); }

private:
    template <typename F>
    struct CallbackState {
        F *on_token;
        std::exception_ptr error;
    };

    template <typename F>
    static bool trampoline(void *user_data, const gptrt_token_event_t *event) noexcept {
        auto *state = static_cast<CallbackState<F> *>(user_data);
        try {
            return (*state->on_token)(Token{event->token_id, std::string_view(event->text, event->text_len), event->index});
        } catch (...) {
            state->error = std::current_exception(); // never let it unwind through C
            return false;
        }
    }

    template <typename F>
    void generate_with(const std::string &prompt, const gptrt_generation_options_t *options, F &on_token) {
        CallbackState<F> state{&on_token, nullptr};
        run(prompt, options, &Session::trampoline<F>, &state);
        if (state.error) {
            std::rethrow_exception(state.error);
        }
    }

    void run(const std::string &prompt, const gptrt_generation_options_t *options, gptrt_token_callback_t callback,
             void *user_data) {
        gptrt_status_t status = gptrt_session_generate(get(), detail::c_str(prompt, "prompt"), options, callback, user_data);
        detail::check(status);
    }

    explicit Session(gptrt_session_t *adopted) { handle_.reset(adopted); }

    detail::Handle<gptrt_session_t, gptrt_session_free> handle_;
};

// A set of loaded plugin libraries (gptrt_plugin_host_t); an empty allowlist path loads any.
class PluginHost {
public:
    explicit PluginHost(const std::string &allowlist_path = "") {
        gptrt_plugin_host_t *handle = nullptr;
        detail::check(gptrt_plugin_host_new(
            allowlist_path.empty() ? nullptr : detail::c_str(allowlist_path, "allowlist_path"), &handle));
        handle_.reset(handle);
    }

    // Load (and check) a plugin library.
    void load(const std::string &path) {
        detail::check(gptrt_plugin_host_load(handle_.get(), detail::c_str(path, "path")));
    }

    gptrt_plugin_host_t *get() const noexcept { return handle_.get(); }

private:
    detail::Handle<gptrt_plugin_host_t, gptrt_plugin_host_free> handle_;
};

// A task-head plugin instance over a model (gptrt_task_head_t): configured once, when made (a
// trained head's files are read then), and run on many inputs, JSON in and JSON out.
class TaskHead {
public:
    TaskHead(const PluginHost &host, const Model &model, const std::string &id,
             const std::string &config_json = "") {
        gptrt_task_head_t *handle = nullptr;
        detail::check(gptrt_task_head_new(host.get(), model.get(), detail::c_str(id, "id"),
                                          config_json.empty() ? nullptr : detail::c_str(config_json, "config_json"),
                                          &handle));
        handle_.reset(handle);
    }

    std::string run(const std::string &input_json) const {
        char *output = nullptr;
        detail::check(gptrt_task_head_call(handle_.get(), detail::c_str(input_json, "input_json"), &output));
        return take(output);
    }

    // run(), with the text the task head writes as it works (a dialogue's reply, piece by piece)
    // passed to `on_text(std::string_view) -> bool`; return false to ask it to stop early.
    template <typename F, typename = std::enable_if_t<std::is_invocable_r_v<bool, F &, std::string_view>>>
    std::string run(const std::string &input_json, F &&on_text) const {
        using Fn = std::remove_reference_t<F>; // F is L& for a named callable
        TextState<Fn> state{&on_text, nullptr};
        char *output = nullptr;
        gptrt_status_t status = gptrt_task_head_call_streaming(
            handle_.get(), detail::c_str(input_json, "input_json"), &TaskHead::text_trampoline<Fn>, &state, &output);
        if (state.error) {
            if (status == GPTRT_OK) {
                gptrt_string_free(output);
            }
            std::rethrow_exception(state.error);
        }
        detail::check(status);
        return take(output);
    }

    gptrt_task_head_t *get() const noexcept { return handle_.get(); }

private:
    template <typename F>
    struct TextState {
        F *on_text;
        std::exception_ptr error;
    };

    template <typename F>
    static bool text_trampoline(void *user_data, const char *text, size_t len) noexcept {
        auto *state = static_cast<TextState<F> *>(user_data);
        try {
            return (*state->on_text)(std::string_view(text, len));
        } catch (...) {
            state->error = std::current_exception(); // never let it unwind through C
            return false;
        }
    }

    static std::string take(char *output) {
        std::string text(output);
        gptrt_string_free(output);
        return text;
    }

    detail::Handle<gptrt_task_head_t, gptrt_task_head_free> handle_;
};

} // namespace gptrt

#endif // GPTRT_HPP
