/*
 * e3relax C++ API: a header-only RAII wrapper over the C API in e3relax.h.
 * C++14. Errors are thrown as e3relax::Error (status + message).
 *
 * Conventions as in e3relax.h: Angstrom (or Bohr with {"length_unit":
 * "bohr"}), lattice rows are lattice vectors, Cartesian positions (or
 * fractional with {"coordinates": "fractional"}), atomic numbers.
 *
 *   e3relax::Model model("models/default");
 *   e3relax::Structure relaxed = model.predict(structure);
 */
#ifndef E3RELAX_HPP
#define E3RELAX_HPP

#include <array>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "e3relax.h"

namespace e3relax {

/// An error reported by the library: the status code and its message.
class Error : public std::runtime_error {
public:
    Error(e3relax_status_t status, const std::string& message) : std::runtime_error(message), status_(status) {}

    /// The failure class (E3RELAX_INVALID_STRUCTURE, E3RELAX_MODEL_ERROR, ...).
    e3relax_status_t status() const noexcept { return status_; }

private:
    e3relax_status_t status_;
};

namespace details {
/// The loaded library must speak the ABI this header was written for;
/// checked before any other call.
inline void check_abi() {
    if (e3relax_abi_version() != E3RELAX_ABI_VERSION) {
        throw Error(E3RELAX_INVALID_ARGUMENT,
                    "libe3relax has ABI version " + std::to_string(e3relax_abi_version()) +
                        " but e3relax.hpp was written for " + std::to_string(E3RELAX_ABI_VERSION));
    }
}

inline void check(e3relax_status_t status) {
    if (status != E3RELAX_SUCCESS) {
        throw Error(status, e3relax_last_error());
    }
}
}  // namespace details

/// The library version ("0.1.0").
inline std::string version() { return e3relax_version(); }

/// The C ABI version of the loaded library.
inline int32_t abi_version() { return e3relax_abi_version(); }

/// The libtorch version the library was built against ("2.11.0").
inline std::string torch_version() { return e3relax_torch_version(); }

/// Sets libtorch's intra-op (and, once per process, inter-op) threads.
inline void set_num_threads(int32_t threads, int32_t interop_threads = 0) {
    details::check_abi();
    details::check(e3relax_set_num_threads(threads, interop_threads));
}

/// Usable CUDA devices (0 without CUDA).
inline int32_t cuda_device_count() {
    details::check_abi();
    int32_t count = 0;
    details::check(e3relax_cuda_device_count(&count));
    return count;
}

/// Trains or fine-tunes a model as `e3relax train` does. `config_json` is
/// the training configuration; `progress` (optional) receives each event
/// as JSON ({"event": "round", ...}) and returns true to stop the run after
/// a round (its checkpoint is kept; resume = true continues it). An
/// exception thrown by `progress` stops the run and is rethrown here.
inline void train(const std::string& config_json, bool resume = false,
                  const std::function<bool(const std::string&)>& progress = nullptr) {
    details::check_abi();
    struct Context {
        const std::function<bool(const std::string&)>* progress;
        std::exception_ptr error;
    } context{&progress, nullptr};
    auto forward = [](const char* json, void* user_data) -> int32_t {
        auto* ctx = static_cast<Context*>(user_data);
        if (ctx->error) return 1;
        try {
            return (*ctx->progress)(json) ? 1 : 0;
        } catch (...) {
            ctx->error = std::current_exception();
            return 1;
        }
    };
    e3relax_status_t status = e3relax_train(config_json.c_str(), resume ? 1 : 0,
                                            progress ? +forward : nullptr, &context);
    if (context.error) std::rethrow_exception(context.error);
    details::check(status);
}

using Vector3 = std::array<double, 3>;
using Lattice = std::array<Vector3, 3>;

/// What the flags of a move mask refer to.
enum class MaskAxes : int32_t {
    cartesian = E3RELAX_AXES_CARTESIAN,  ///< x, y, z (ASE, Quantum ESPRESSO, LAMMPS)
    lattice = E3RELAX_AXES_LATTICE,      ///< lattice vectors: fractional coordinates (VASP)
};

/// Per-axis move flags of one atom: true = may move, false = frozen.
using MoveFlags = std::array<bool, 3>;

/// A crystal: lattice rows are lattice vectors. `move_mask` is empty (every
/// atom free) or holds one MoveFlags per atom; frozen coordinates come back
/// as given (fixed cell) or with the atom's fractional coordinates kept
/// (variable cell).
struct Structure {
    std::vector<int32_t> numbers;
    std::vector<Vector3> positions;
    Lattice lattice;
    std::vector<MoveFlags> move_mask{};
    MaskAxes mask_axes = MaskAxes::cartesian;
};

namespace details {
/// A Structure's move mask as the C ABI's int32 flags (empty: none).
inline std::vector<int32_t> mask_flags(const Structure& s) {
    std::vector<int32_t> flags;
    if (s.move_mask.empty()) return flags;
    if (s.move_mask.size() != s.numbers.size()) {
        throw Error(E3RELAX_INVALID_ARGUMENT, "move_mask and numbers have different lengths");
    }
    for (const auto& atom : s.move_mask) {
        for (bool may_move : atom) flags.push_back(may_move ? 1 : 0);
    }
    return flags;
}
}  // namespace details

/// A loaded model. Move-only; one Model may be used from several threads.
class Model {
public:
    /// Loads a model directory ("" for the shipped default model);
    /// `options_json` as for e3relax_load, e.g.
    /// R"({"device": "cpu", "length_unit": "bohr"})".
    explicit Model(const std::string& path = "", const std::string& options_json = "") {
        details::check_abi();
        details::check(e3relax_load(path.c_str(), options_json.c_str(), &model_));
    }

    ~Model() { e3relax_free(model_); }

    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    Model(Model&& other) noexcept : model_(other.model_), progress_(std::move(other.progress_)) {
        other.model_ = nullptr;
    }

    Model& operator=(Model&& other) noexcept {
        if (this != &other) {
            e3relax_free(model_);
            model_ = other.model_;
            progress_ = std::move(other.progress_);
            other.model_ = nullptr;
        }
        return *this;
    }

    /// Calls `callback(done, total)` after each batch of predict_batch (an
    /// empty function removes it). It must not throw (it is called from C).
    void on_batch_progress(std::function<void(int32_t, int32_t)> callback) {
        if (!callback) {
            details::check(e3relax_set_predict_progress(model_, nullptr, nullptr));
            progress_.reset();
            return;
        }
        auto owned = std::unique_ptr<std::function<void(int32_t, int32_t)>>(
            new std::function<void(int32_t, int32_t)>(std::move(callback)));
        details::check(e3relax_set_predict_progress(model_, &Model::forward_progress, owned.get()));
        progress_ = std::move(owned);
    }

    /// Raw arrays: numbers[natoms], positions[natoms][3], lattice[3][3];
    /// outputs may be nullptr when not wanted.
    void predict(int32_t natoms, const int32_t* numbers, const double* positions, const double* lattice,
                 double* out_positions, double* out_lattice) const {
        details::check(e3relax_predict(model_, natoms, numbers, positions, lattice, out_positions, out_lattice));
    }

    /// std::vector / std::array arrays.
    void predict(const std::vector<int32_t>& numbers, const std::vector<Vector3>& positions, const Lattice& lattice,
                 std::vector<Vector3>& out_positions, Lattice& out_lattice) const {
        if (numbers.size() != positions.size()) {
            throw Error(E3RELAX_INVALID_ARGUMENT, "numbers and positions have different lengths");
        }
        out_positions.resize(positions.size());
        predict(static_cast<int32_t>(numbers.size()), numbers.data(), positions.data()->data(), lattice.data()->data(),
                out_positions.data()->data(), out_lattice.data()->data());
    }

    /// Raw arrays with frozen coordinates: move_mask[natoms][3] (1 = may
    /// move, 0 = frozen; nullptr = all free), axes as `mask_axes`.
    void predict_frozen(int32_t natoms, const int32_t* numbers, const double* positions, const double* lattice,
                        const int32_t* move_mask, MaskAxes mask_axes, double* out_positions,
                        double* out_lattice) const {
        details::check(e3relax_predict_frozen(model_, natoms, numbers, positions, lattice, move_mask,
                                              static_cast<int32_t>(mask_axes), out_positions, out_lattice));
    }

    /// The spread of an ensemble's predictions for one crystal.
    struct Uncertainty {
        std::vector<double> atoms;  ///< per atom, in the model's length unit
        double cell = 0.0;          ///< spread of the cell strain
        double volume = 0.0;        ///< spread of the volume (length unit cubed)
    };

    /// The ensemble's mean prediction and its spread (load the model with
    /// R"({"uncertainty": true})" from a directory with ensemble.json).
    Structure predict(const Structure& structure, Uncertainty& uncertainty) const {
        if (structure.numbers.size() != structure.positions.size()) {
            throw Error(E3RELAX_INVALID_ARGUMENT, "numbers and positions have different lengths");
        }
        Structure out = structure;
        std::vector<int32_t> flags = details::mask_flags(structure);
        uncertainty.atoms.assign(structure.numbers.size(), 0.0);
        details::check(e3relax_predict_uncertainty(
            model_, static_cast<int32_t>(structure.numbers.size()), structure.numbers.data(),
            structure.positions.data()->data(), structure.lattice.data()->data(),
            flags.empty() ? nullptr : flags.data(), static_cast<int32_t>(structure.mask_axes),
            out.positions.data()->data(), out.lattice.data()->data(), uncertainty.atoms.data(), &uncertainty.cell,
            &uncertainty.volume));
        return out;
    }

    /// One structure in, the relaxed structure out (its move mask honoured
    /// and carried over).
    Structure predict(const Structure& structure) const {
        if (structure.numbers.size() != structure.positions.size()) {
            throw Error(E3RELAX_INVALID_ARGUMENT, "numbers and positions have different lengths");
        }
        Structure out = structure;
        std::vector<int32_t> flags = details::mask_flags(structure);
        predict_frozen(static_cast<int32_t>(structure.numbers.size()), structure.numbers.data(),
                       structure.positions.data()->data(), structure.lattice.data()->data(),
                       flags.empty() ? nullptr : flags.data(), structure.mask_axes, out.positions.data()->data(),
                       out.lattice.data()->data());
        return out;
    }

    /// Many structures of different sizes in one call. `options_json` may
    /// change the handle's settings for this call only (`fixed_cell`,
    /// `batch_size`, `symmetry_tolerance`, `trust`, `surface_trust`,
    /// `line_search`; see
    /// e3relax_predict_with); every layer's structure comes from
    /// predict_layers.
    std::vector<Structure> predict_batch(const std::vector<Structure>& structures,
                                         const std::string& options_json = "") const {
        if (options_json.find("\"layers\"") != std::string::npos) {
            throw Error(E3RELAX_INVALID_ARGUMENT, "predict_batch returns one structure each: use predict_layers for layers");
        }
        std::vector<int32_t> natoms, numbers, flags;
        std::vector<double> positions, lattices;
        bool any_mask = false;
        for (const auto& s : structures) any_mask = any_mask || !s.move_mask.empty();
        for (const auto& s : structures) {
            if (s.numbers.size() != s.positions.size()) {
                throw Error(E3RELAX_INVALID_ARGUMENT, "numbers and positions have different lengths");
            }
            if (any_mask && s.mask_axes != structures.front().mask_axes) {
                throw Error(E3RELAX_INVALID_ARGUMENT, "the structures of one batch must share mask_axes");
            }
            if (any_mask) {
                std::vector<int32_t> own = details::mask_flags(s);
                if (own.empty()) own.assign(3 * s.numbers.size(), 1);
                flags.insert(flags.end(), own.begin(), own.end());
            }
            natoms.push_back(static_cast<int32_t>(s.numbers.size()));
            numbers.insert(numbers.end(), s.numbers.begin(), s.numbers.end());
            for (const auto& p : s.positions) positions.insert(positions.end(), p.begin(), p.end());
            for (const auto& row : s.lattice) lattices.insert(lattices.end(), row.begin(), row.end());
        }
        std::vector<double> out_positions(positions.size()), out_lattices(lattices.size());
        MaskAxes axes = structures.empty() ? MaskAxes::cartesian : structures.front().mask_axes;
        details::check(e3relax_predict_with(
            model_, options_json.c_str(), static_cast<int32_t>(structures.size()), natoms.data(), numbers.data(),
            positions.data(), lattices.data(), any_mask ? flags.data() : nullptr, static_cast<int32_t>(axes),
            out_positions.data(), out_lattices.data(), nullptr, nullptr, nullptr));
        std::vector<Structure> result(structures.size());
        size_t atom = 0;
        for (size_t k = 0; k < structures.size(); ++k) {
            result[k].numbers = structures[k].numbers;
            result[k].move_mask = structures[k].move_mask;
            result[k].mask_axes = structures[k].mask_axes;
            for (size_t i = 0; i < structures[k].numbers.size(); ++i, ++atom) {
                result[k].positions.push_back({out_positions[3 * atom], out_positions[3 * atom + 1], out_positions[3 * atom + 2]});
            }
            for (size_t r = 0; r < 3; ++r) {
                result[k].lattice[r] = {out_lattices[9 * k + 3 * r], out_lattices[9 * k + 3 * r + 1], out_lattices[9 * k + 3 * r + 2]};
            }
        }
        return result;
    }

    /// Layers of the network (structures predict_layers returns).
    int32_t num_layers() const {
        int32_t layers = 0;
        details::check(e3relax_num_layers(model_, &layers));
        return layers;
    }

    /// The structure after every layer (the last is predict's answer).
    std::vector<Structure> predict_layers(const Structure& structure) const {
        if (structure.numbers.size() != structure.positions.size()) {
            throw Error(E3RELAX_INVALID_ARGUMENT, "numbers and positions have different lengths");
        }
        if (!structure.move_mask.empty()) {
            throw Error(E3RELAX_INVALID_ARGUMENT,
                        "predict_layers does not take a move mask (the layers' structures are the raw network "
                        "output); use predict for frozen atoms");
        }
        const size_t natoms = structure.numbers.size();
        const size_t layers = static_cast<size_t>(num_layers());
        std::vector<double> positions(layers * natoms * 3), lattices(layers * 9);
        details::check(e3relax_predict_layers(model_, static_cast<int32_t>(natoms), structure.numbers.data(),
                                              structure.positions.data()->data(), structure.lattice.data()->data(),
                                              positions.data(), lattices.data()));
        std::vector<Structure> result(layers);
        for (size_t t = 0; t < layers; ++t) {
            result[t].numbers = structure.numbers;
            for (size_t i = 0; i < natoms; ++i) {
                const double* p = &positions[(t * natoms + i) * 3];
                result[t].positions.push_back({p[0], p[1], p[2]});
            }
            for (size_t r = 0; r < 3; ++r) {
                const double* l = &lattices[t * 9 + 3 * r];
                result[t].lattice[r] = {l[0], l[1], l[2]};
            }
        }
        return result;
    }

    /// The C handle (owned by this object).
    const e3relax_model_t* get() const noexcept { return model_; }

private:
    static void forward_progress(int32_t done, int32_t total, void* user_data) {
        (*static_cast<std::function<void(int32_t, int32_t)>*>(user_data))(done, total);
    }

    e3relax_model_t* model_ = nullptr;
    /// The progress callback's owner (a stable address across moves).
    std::unique_ptr<std::function<void(int32_t, int32_t)>> progress_;
};

}  // namespace e3relax

#endif  // E3RELAX_HPP
