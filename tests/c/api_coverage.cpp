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
    std::vector<int32_t> reported;
    model.on_batch_progress([&](int32_t done, int32_t total) {
        reported.push_back(done);
        CHECK(total == 2);
    });
    const auto batch = model.predict_batch({crystal, crystal});
    CHECK(batch.size() == 2 && batch[1].positions.size() == 3);
    CHECK(!reported.empty() && reported.back() == 2);
    model.on_batch_progress(nullptr);
    model.predict_batch({crystal});
    CHECK(reported.back() == 2);
    // Options for one call: the cell stays, and the handle keeps its own.
    const auto fixed = model.predict_batch({crystal}, "{\"fixed_cell\": true}");
    CHECK(fixed[0].lattice == crystal.lattice && fixed[0].positions != crystal.positions);
    CHECK(model.predict_batch({crystal})[0].lattice == relaxed.lattice);
    bool refused = false;
    try {
        model.predict_batch({crystal}, "{\"fixed_cel\": true}");
    } catch (const e3relax::Error& e) {
        refused = e.status() == E3RELAX_INVALID_ARGUMENT && std::string(e.what()).find("fixed_cel") != std::string::npos;
    }
    CHECK(refused);

    // Frozen atoms: atom 1 on every axis, atom 3 along z. With a variable
    // cell they keep their fractional coordinates; the mask comes back.
    e3relax::Structure frozen = crystal;
    frozen.move_mask = {{{false, false, false}}, {{true, true, true}}, {{true, true, false}}};
    const e3relax::Structure kept = model.predict(frozen);
    CHECK(kept.move_mask.size() == 3 && !kept.move_mask[0][1]);
    // Atom 1 at fractional f: f = x L^-1, so x' = f L' must be its position.
    double frozen_error = 0.0;
    {
        const auto& L = crystal.lattice;
        const auto& Lp = kept.lattice;
        // Solve f L = x for the lower-triangular-free general 3x3 by Cramer's rule.
        const double det = L[0][0] * (L[1][1] * L[2][2] - L[1][2] * L[2][1]) -
                           L[0][1] * (L[1][0] * L[2][2] - L[1][2] * L[2][0]) +
                           L[0][2] * (L[1][0] * L[2][1] - L[1][1] * L[2][0]);
        const auto& x = crystal.positions[0];
        double f[3];
        for (int c = 0; c < 3; ++c) {
            e3relax::Lattice m = L;
            m[c] = x;  // replace row c: f_c = det(L with row c = x) / det(L)
            f[c] = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])) /
                   det;
        }
        for (int a = 0; a < 3; ++a) {
            const double expected = f[0] * Lp[0][a] + f[1] * Lp[1][a] + f[2] * Lp[2][a];
            frozen_error = std::fmax(frozen_error, std::fabs(kept.positions[0][a] - expected));
        }
    }
    CHECK(frozen_error < 1e-10);
    const auto frozen_batch = model.predict_batch({crystal, frozen});
    CHECK(std::fabs(frozen_batch[1].positions[0][2] - kept.positions[0][2]) < 1e-5);
    CHECK(std::fabs(frozen_batch[0].positions[1][0] - relaxed.positions[1][0]) < 1e-5);
    try {
        model.predict_layers(frozen);
        CHECK(false);
    } catch (const e3relax::Error& e) {
        CHECK(e.status() == E3RELAX_INVALID_ARGUMENT);
    }
    // The ensemble's spread.
    e3relax::Model ensemble(model_dir, R"({"uncertainty": true})");
    e3relax::Model::Uncertainty spread;
    const e3relax::Structure mean = ensemble.predict(crystal, spread);
    CHECK(spread.atoms.size() == 3 && spread.atoms[0] > 0.0 && spread.cell > 0.0 && spread.volume > 0.0);
    CHECK(mean.positions.size() == 3);
    try {
        model.predict(crystal, spread);
        CHECK(false);
    } catch (const e3relax::Error& e) {
        CHECK(e.status() == E3RELAX_INVALID_ARGUMENT);
    }
    e3relax::Model fixed_cell(model_dir, R"({"fixed_cell": true})");
    const e3relax::Structure pinned = fixed_cell.predict(frozen);
    CHECK(pinned.positions[0] == crystal.positions[0]);
    CHECK(pinned.positions[2][2] == crystal.positions[2][2]);
    CHECK(pinned.positions[1] != crystal.positions[1]);

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
