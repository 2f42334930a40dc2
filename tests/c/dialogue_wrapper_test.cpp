// The C++ wrapper's dialogue methods (include/gptrt.hpp): persona, prefill, fork, turns polled and
// synchronous, counts, save/restore and a refused damaged state. Compiled with -std=c++17 -Wall
// -Wextra -Werror -pedantic by sdk/gptrt-capi/tests/dialogue.rs.
//
//   dialogue_wrapper_test MODEL_DIR
//
// Ends with `N passed, M failed`, exits 1 on any failure.
#include "gptrt.hpp"

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
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

std::vector<uint32_t> poll_turn(gptrt::Session &session) {
    std::vector<uint32_t> ids;
    std::string text;
    while (session.poll_tokens(ids) == GPTRT_SESSION_RUNNING || session.poll(text) == GPTRT_SESSION_RUNNING) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return ids;
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL_DIR\n";
        return 2;
    }
    try {
        gptrt::Runtime runtime;
        gptrt::Model model(runtime, argv[1]);
        gptrt::GenerationOptions options;
        options.max_new_tokens(5);

        gptrt::Session persona(model);
        size_t persona_tokens = persona.append_text("A blacksmith of few words.");
        check(persona.prefill() == persona_tokens, "prefill");
        gptrt::Session npc = persona.fork();
        check(npc.context_counts().cached == persona_tokens, "fork copies the cache");

        size_t added = npc.append_text("\nUser: hello\nBot:");
        std::vector<uint32_t> transcript = npc.context_tokens();
        npc.start_turn(options);
        std::vector<uint32_t> reply = poll_turn(npc);
        check(npc.context_counts().tokens_run == added + reply.size() - 1, "the turn ran only its line");

        gptrt::Session fresh(model);
        check(fresh.set_tokens(transcript) == 0, "set_tokens on a fresh session");
        fresh.generate_turn(options);
        check(fresh.token_ids() == reply, "turn-by-turn equals one pass");

        std::vector<uint8_t> saved = npc.save(GPTRT_SAVED_KV_F32);
        npc.append_text("\nUser: a sword?\nBot:");
        size_t streamed = 0;
        npc.generate_turn(options, [&](const gptrt::Token &) {
            ++streamed;
            return true;
        });
        std::vector<uint32_t> direct = npc.token_ids();
        check(streamed == direct.size(), "streamed tokens");

        gptrt::Session restored(model);
        restored.restore(saved);
        restored.append_text("\nUser: a sword?\nBot:");
        restored.generate_turn(options);
        check(restored.token_ids() == direct, "restore + continue equals continuing");

        saved[saved.size() / 2] ^= 1;
        try {
            restored.restore(saved);
            check(false, "a damaged state was accepted");
        } catch (const gptrt::Error &error) {
            check(error.status() == GPTRT_ERROR_SAVED_STATE, std::string("damaged: ") + error.what());
        }
        size_t before = restored.context_counts().length;
        restored.rewind(persona_tokens);
        check(restored.context_counts().length == persona_tokens && before > persona_tokens, "rewind");
    } catch (const gptrt::Error &error) {
        std::cout << "FAIL: exception: " << error.what() << '\n';
        ++failed;
    }
    std::cout << passed << " passed, " << failed << " failed\n";
    return failed == 0 ? 0 : 1;
}
