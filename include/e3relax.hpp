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
inline void check(e3relax_status_t status) {
    if (status != E3RELAX_SUCCESS) {
        throw Error(status, e3relax_last_error());
    }
}
}  // namespace details

/// The library version ("0.1.0").
inline std::string version() { return e3relax_version(); }

/// Sets libtorch's intra-op (and, once per process, inter-op) threads.
inline void set_num_threads(int32_t threads, int32_t interop_threads = 0) {
    details::check(e3relax_set_num_threads(threads, interop_threads));
}

using Vector3 = std::array<double, 3>;
using Lattice = std::array<Vector3, 3>;

/// A crystal: lattice rows are lattice vectors.
struct Structure {
    std::vector<int32_t> numbers;
    std::vector<Vector3> positions;
    Lattice lattice;
};

/// A loaded model. Move-only; one Model may be used from several threads.
class Model {
public:
    /// Loads a model directory; `options_json` as for e3relax_load, e.g.
    /// R"({"device": "cpu", "length_unit": "bohr"})".
    explicit Model(const std::string& path, const std::string& options_json = "") {
        details::check(e3relax_load(path.c_str(), options_json.c_str(), &model_));
        if (e3relax_abi_version() != E3RELAX_ABI_VERSION) {
            e3relax_free(model_);
            model_ = nullptr;
            throw Error(E3RELAX_INVALID_ARGUMENT, "e3relax.hpp was written for another ABI version of libe3relax");
        }
    }

    ~Model() { e3relax_free(model_); }

    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    Model(Model&& other) noexcept : model_(other.model_) { other.model_ = nullptr; }

    Model& operator=(Model&& other) noexcept {
        if (this != &other) {
            e3relax_free(model_);
            model_ = other.model_;
            other.model_ = nullptr;
        }
        return *this;
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

    /// One structure in, the relaxed structure out.
    Structure predict(const Structure& structure) const {
        Structure out;
        out.numbers = structure.numbers;
        predict(structure.numbers, structure.positions, structure.lattice, out.positions, out.lattice);
        return out;
    }

    /// Many structures of different sizes in one call.
    std::vector<Structure> predict_batch(const std::vector<Structure>& structures) const {
        std::vector<int32_t> natoms, numbers;
        std::vector<double> positions, lattices;
        for (const auto& s : structures) {
            if (s.numbers.size() != s.positions.size()) {
                throw Error(E3RELAX_INVALID_ARGUMENT, "numbers and positions have different lengths");
            }
            natoms.push_back(static_cast<int32_t>(s.numbers.size()));
            numbers.insert(numbers.end(), s.numbers.begin(), s.numbers.end());
            for (const auto& p : s.positions) positions.insert(positions.end(), p.begin(), p.end());
            for (const auto& row : s.lattice) lattices.insert(lattices.end(), row.begin(), row.end());
        }
        std::vector<double> out_positions(positions.size()), out_lattices(lattices.size());
        details::check(e3relax_predict_batch(model_, static_cast<int32_t>(structures.size()), natoms.data(),
                                             numbers.data(), positions.data(), lattices.data(), out_positions.data(),
                                             out_lattices.data()));
        std::vector<Structure> result(structures.size());
        size_t atom = 0;
        for (size_t k = 0; k < structures.size(); ++k) {
            result[k].numbers = structures[k].numbers;
            for (size_t i = 0; i < structures[k].numbers.size(); ++i, ++atom) {
                result[k].positions.push_back({out_positions[3 * atom], out_positions[3 * atom + 1], out_positions[3 * atom + 2]});
            }
            for (size_t r = 0; r < 3; ++r) {
                result[k].lattice[r] = {out_lattices[9 * k + 3 * r], out_lattices[9 * k + 3 * r + 1], out_lattices[9 * k + 3 * r + 2]};
            }
        }
        return result;
    }

    /// The C handle (owned by this object).
    const e3relax_model_t* get() const noexcept { return model_; }

private:
    e3relax_model_t* model_ = nullptr;
};

}  // namespace e3relax

#endif  // E3RELAX_HPP
