// Every function of the C API through the C++ wrapper (run by
// tests/c_programs.rs):
//   api_coverage MODEL_DIR DATA_DIR WORK_DIR
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "e3relax.hpp"

static int failures = 0;
#define CHECK(condition)                                                      \
    do {                                                                      \
        if (!(condition)) {                                                   \
            std::fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #condition); \
            ++failures;                                                       \
        }                                                                     \
    } while (0)

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL_DIR DATA_DIR WORK_DIR\n", argv[0]);
        return 2;
    }
    const std::string model_dir = argv[1], data = argv[2], work = argv[3];
    CHECK(e3relax::version() == E3RELAX_VERSION);
    CHECK(e3relax::abi_version() == E3RELAX_ABI_VERSION);
    CHECK(e3relax::torch_version() == E3RELAX_TORCH_VERSION);
    CHECK(e3relax::cuda_device_count() >= 0);
    e3relax::set_num_threads(1);
    try {
        e3relax::set_num_threads(100000);
        CHECK(false);
    } catch (const e3relax::Error& e) {
        CHECK(e.status() == E3RELAX_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("1..=1024") != std::string::npos);
    }

    e3relax::Model model(model_dir);
    e3relax::Structure crystal{{8, 12, 14},
                               {{{0.1, 0.2, 0.3}}, {{2.0, 2.1, 2.2}}, {{3.5, 1.0, 4.4}}},
                               {{{{5.1, 0.0, 0.0}}, {{1.3, 4.7, 0.0}}, {{-0.8, 0.9, 6.2}}}}};
    const e3relax::Structure relaxed = model.predict(crystal);
    const auto layers = model.predict_layers(crystal);
    CHECK(static_cast<int32_t>(layers.size()) == model.num_layers());
    double difference = 0.0;
    for (size_t i = 0; i < crystal.numbers.size(); ++i)
        for (size_t a = 0; a < 3; ++a)
            difference = std::fmax(difference, std::fabs(layers.back().positions[i][a] - relaxed.positions[i][a]));
    CHECK(difference < 1e-12);
    const auto batch = model.predict_batch({crystal, crystal});
    CHECK(batch.size() == 2 && batch[1].positions.size() == 3);

    // The shipped default model ("" path).
    e3relax::Model shipped;
    CHECK(shipped.num_layers() == 4);

    // Training: every round reported; returning true stops after the first
    // round, whose checkpoint a resume continues; an exception thrown by the
    // callback stops the run and reaches the caller.
    const std::string config = std::string(R"({"data": [")") + data + R"("], "output": ")" + work +
                               R"(/run", "max_epochs": 3, "batch_size": 8, "validation_fraction": 0.25,
        "model": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "rbf_cutoff": 30.0,
                  "envelope_exponent": 5, "num_elements": 118, "graph_radius": 5.0, "max_neighbors": 16}})";
    int rounds = 0;
    e3relax::train(config, false, [&](const std::string& event) {
        if (event.find("\"event\":\"round\"") != std::string::npos) ++rounds;
        return rounds >= 1;
    });
    CHECK(rounds == 1);
    int more = 0;
    e3relax::train(config, true, [&](const std::string& event) {
        if (event.find("\"event\":\"round\"") != std::string::npos) ++more;
        return false;
    });
    CHECK(more == 2);
    try {
        std::string thrown = config;
        thrown.replace(thrown.find("/run\""), 4, "/thrown");
        e3relax::train(thrown, false,
                       [](const std::string&) -> bool { throw std::runtime_error("stop from the callback"); });
        CHECK(false);
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "stop from the callback");
    }
    try {
        e3relax::train("{", false);
        CHECK(false);
    } catch (const e3relax::Error& e) {
        CHECK(e.status() == E3RELAX_INVALID_ARGUMENT);
    }
    std::printf("C++ API coverage: %d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
