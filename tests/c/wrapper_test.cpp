// Tests of the C++ wrapper (include/gptrt.hpp), compiled with -std=c++17 -Wall -Wextra -Werror
// -pedantic. It also includes gptrt.h and gptrt.hpp twice.
//
//   wrapper_test MODEL_DIR MAX_NEW_TOKENS PROMPT...
//
// Prints `cpp_generate[i]: IDS`, `cpp_poll[i]: IDS` and `cpp_batched[i]: IDS` per prompt (compared
// with the reference by sdk/gptrt-capi/tests/c_api.rs), ends with `N passed, M failed`, exits 1 on any failure.
#include "gptrt.h"
#include "gptrt.hpp"
#include "gptrt.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

int passed = 0;
int failed = 0;

void check(bool ok, const std::string &what) {
    if (ok) {
        ++passed;
    } else {
        ++failed;
        std::cout << "FAIL: " << what << '\n';
    }
}

// Run `body`, which must throw gptrt::Error with `status`.
template <typename F>
void expect_error(gptrt_status_t status, const std::string &what, F &&body) {
    try {
        body();
        check(false, what + ": no exception");
    } catch (const gptrt::Error &error) {
        check(error.status() == status, what + ": " + error.what());
    }
}

void print_ids(const std::string &label, size_t index, const std::vector<uint32_t> &ids) {
    std::cout << label << '[' << index << "]:";
    for (uint32_t id : ids) {
        std::cout << ' ' << id;
    }
    std::cout << '\n';
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        std::cerr << "usage: " << argv[0] << " MODEL_DIR MAX_NEW_TOKENS PROMPT...\n";
        return 2;
    }
    const std::string model_dir = argv[1];
    const size_t max_new = std::stoul(argv[2]);
    std::vector<std::string> prompts(argv + 3, argv + argc);

    try {
        check(gptrt::version() == gptrt_version(), "version");
        check(gptrt::execution_provider_available("cpu"), "cpu available");

        gptrt::RuntimeOptions runtime_options;
        runtime_options.execution_providers = {"cuda", "cpu"};
        gptrt::Runtime runtime(runtime_options);
        check(!runtime.library_path().empty(), "library path");
        gptrt::Model model(runtime, model_dir);
        check(model.context_length() == 128 && model.vocab_size() == 50257, "model sizes");
        check(model.execution_provider() == "CPUExecutionProvider", "provider: " + model.execution_provider());
        check(model.info_json().find("\"layout\"") != std::string::npos, "info json");

        gptrt::GenerationOptions options;
        options.max_new_tokens(max_new);

        // The callback API, and the results.
        gptrt::Session session(model);
        for (size_t p = 0; p < prompts.size(); ++p) {
            std::string streamed;
            std::vector<uint32_t> streamed_ids;
            session.generate(prompts[p], options, [&](const gptrt::Token &token) {
                streamed += token.text;
                streamed_ids.push_back(token.id);
                return true;
            });
            print_ids("cpp_generate", p, session.token_ids());
            check(session.token_ids() == streamed_ids, "streamed ids");
            check(session.text() == streamed, "streamed text");
            check(session.stop_reason() == GPTRT_STOP_MAX_NEW_TOKENS || session.stop_reason() == GPTRT_STOP_EOS,
                  "stop reason");
            check(session.result_json().find("\"token_ids\"") != std::string::npos, "result json");
        }

        // The poll API, every prompt at once: each on its own session, then all in one batcher.
        gptrt::Batcher batcher(model);
        for (bool batched : {false, true}) {
            std::vector<gptrt::Session> sessions;
            for (const std::string &prompt : prompts) {
                if (batched) {
                    sessions.emplace_back(batcher);
                } else {
                    sessions.emplace_back(model); // move-only RAII handles live in containers
                }
                sessions.back().start(prompt, options);
            }
            for (size_t p = 0; p < sessions.size(); ++p) {
                std::vector<uint32_t> ids;
                std::string text;
                gptrt_session_state_t text_state = GPTRT_SESSION_RUNNING, id_state = GPTRT_SESSION_RUNNING;
                for (int spin = 0; spin < 60000 && (text_state == GPTRT_SESSION_RUNNING || id_state == GPTRT_SESSION_RUNNING); ++spin) {
                    text_state = sessions[p].poll(text);
                    id_state = sessions[p].poll_tokens(ids);
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
                check(text_state == GPTRT_SESSION_FINISHED && id_state == GPTRT_SESSION_FINISHED, "poll finished");
                print_ids(batched ? "cpp_batched" : "cpp_poll", p, ids);
                check(ids == sessions[p].token_ids() && text == sessions[p].text(), "polled output equals the result");
            }
        }
        check(batcher.stats_json().find("\"generations\":" + std::to_string(prompts.size())) != std::string::npos,
              "batcher stats");

        // A model from bytes in memory.
        {
            auto slurp = [&](const char *name) {
                std::ifstream file(model_dir + "/" + name, std::ios::binary);
                return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
            };
            std::string config = slurp("config.json"), tokenizer_json = slurp("tokenizer.json"), graph = slurp("model.onnx");
            gptrt_model_files_t files{};
            files.struct_size = sizeof files;
            files.config_json = reinterpret_cast<const uint8_t *>(config.data());
            files.config_json_size = config.size();
            files.tokenizer_json = reinterpret_cast<const uint8_t *>(tokenizer_json.data());
            files.tokenizer_json_size = tokenizer_json.size();
            files.graph = reinterpret_cast<const uint8_t *>(graph.data());
            files.graph_size = graph.size();
            gptrt::Model in_memory = gptrt::Model::from_memory(runtime, files);
            gptrt::Session memory_session(in_memory);
            memory_session.generate(prompts[0], options);
            gptrt::Session file_session(model);
            file_session.generate(prompts[0], options);
            check(memory_session.token_ids() == file_session.token_ids(), "in-memory model equals the folder's");
            files.graph = nullptr;
            expect_error(GPTRT_ERROR_NULL_POINTER, "no graph", [&] { gptrt::Model::from_memory(runtime, files); });
        }

        // Tokenizer round trip.
        gptrt::Tokenizer tokenizer(model);
        std::vector<uint32_t> hello = tokenizer.encode("Hello world");
        check(hello == std::vector<uint32_t>({15496, 995}), "encode");
        check(tokenizer.decode(hello) == "Hello world", "decode");
        gptrt::Tokenizer own = gptrt::Tokenizer::load(model_dir);
        check(own.vocab_size() == 50257, "tokenizer alone");
        std::string long_text(3000, 'x'); // larger than the wrapper's first buffer
        check(tokenizer.decode(tokenizer.encode(long_text)) == long_text, "long round trip");

        // Options: copies are independent; names and types are checked.
        gptrt::GenerationOptions copy = options;
        copy.max_new_tokens(3).do_sample(true).top_k(5).seed(7).stop_strings({"\n"}).set_float("top_p", 0.5);
        check(options.get_json("max_new_tokens") == std::to_string(max_new), "original unchanged");
        check(copy.get_json("max_new_tokens") == "3" && copy.get_json("top_p") == "0.5", "copy changed");
        gptrt::GenerationOptions parsed = gptrt::GenerationOptions::from_json(copy.to_json());
        check(parsed.to_json() == copy.to_json(), "json round trip");
        expect_error(GPTRT_ERROR_UNKNOWN_OPTION, "unknown option", [&] { copy.set_int("no_such", 1); });
        expect_error(GPTRT_ERROR_INVALID_OPTION, "bad type", [&] { copy.set_string("top_k", "many"); });
        // A bad value fails the call that sets it and leaves the options as they were.
        const std::string temperature_before = copy.get_json("temperature");
        expect_error(GPTRT_ERROR_INVALID_OPTION, "set time", [&] { copy.temperature(-1.0f); });
        check(copy.get_json("temperature") == temperature_before, "a refused value is not stored");
        // How fields combine is checked once all are set.
        copy.set_int("num_beams", 2).set_int("num_return_sequences", 3);
        expect_error(GPTRT_ERROR_INVALID_OPTION, "validate", [&] { copy.validate(); });
        expect_error(GPTRT_ERROR_INVALID_OPTION, "generate validates", [&] { session.generate("Hi", copy); });

        // Sampling with a seed repeats.
        gptrt::GenerationOptions sampled;
        sampled.max_new_tokens(8).do_sample(true).seed(42);
        session.generate("Once upon a time", sampled);
        std::vector<uint32_t> first = session.token_ids();
        session.generate("Once upon a time", sampled);
        check(first == session.token_ids() && first.size() == 8, "seeded sampling repeats");

        // An exception thrown by the callback stops generation and comes back here.
        int seen = 0;
        try {
            session.generate("Hello", options, [&](const gptrt::Token &) -> bool {
                if (++seen == 2) {
                    throw std::runtime_error("from the callback");
                }
                return true;
            });
            check(false, "callback exception lost");
        } catch (const std::runtime_error &error) {
            check(std::string(error.what()) == "from the callback" && seen == 2, "callback exception");
        }
        check(session.stop_reason() == GPTRT_STOP_CALLBACK, "stopped by the callback");
        session.generate("Hello", options); // still usable

        // A std::string with a NUL inside is refused, not cut short at the NUL.
        const std::string with_nul("abc\0def", 7);
        expect_error(GPTRT_ERROR_INVALID_ARGUMENT, "NUL in a prompt", [&] { session.generate(with_nul, options); });
        expect_error(GPTRT_ERROR_INVALID_ARGUMENT, "NUL in text to encode", [&] { (void)tokenizer.encode(with_nul); });
        expect_error(GPTRT_ERROR_INVALID_ARGUMENT, "NUL in a stop string", [&] { copy.stop_strings({with_nul}); });

        // Errors are exceptions with the status.
        expect_error(GPTRT_ERROR_MODEL_FILES, "missing model", [&] { gptrt::Model missing(runtime, "/nonexistent"); });
        gptrt::Session fresh(model);
        expect_error(GPTRT_ERROR_INVALID_STATE, "no result yet", [&] { (void)fresh.text(); });
        fresh.cancel(); // nothing running: fine
        gptrt::Session moved = std::move(fresh);
        check(moved.get() != nullptr && fresh.get() == nullptr, "move");
        moved.start("Hello", options);
        expect_error(GPTRT_ERROR_BUSY, "busy", [&] { moved.start("Hello", options); });
        moved.wait();
        check(moved.state() == GPTRT_SESSION_FINISHED, "finished");
    } catch (const std::exception &error) {
        check(false, std::string("unexpected exception: ") + error.what());
    }

    std::cout << passed << " passed, " << failed << " failed\n";
    return failed == 0 ? 0 : 1;
}
