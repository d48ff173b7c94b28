// Pre-relax a LAMMPS system with e3relax, then minimise it with LAMMPS
// (fix box/relax tri) from the input and from the prediction.
//
//   lammps_prerelax MODEL_DIR INPUT.lmp TYPEMAP [START] [FROZEN_GROUP]
//
// INPUT.lmp builds the system (a triclinic box, `atom_modify map array`)
// and sets the potential; TYPEMAP names each LAMMPS type's element
// ("1:Si"); MODEL_DIR "" is the shipped model. START is `both` (default),
// `input`, `e3relax`, `input-converted` (the input read back and written
// through the box conversion) or `input-rotated` (the same, after an
// arbitrary rotation: it must minimise identically to `input-converted`).
// Prints, per start, the minimiser iterations, the energy per atom and the
// volume. FROZEN_GROUP (a group the input defines) is held fixed: e3relax
// freezes its atoms (they keep their fractional coordinates, as `fix
// box/relax` keeps them when it rescales the box) and every minimisation
// holds them with `fix setforce 0 0 0`; the e3relax start then also prints
// the largest change of a frozen atom's fractional coordinates.
#include <lammps/library.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "e3relax.hpp"
#include "e3relax_lammps.hpp"

namespace lmp = e3relax::lammps;

namespace {

struct Result {
    long iterations;
    double energy_per_atom, volume, seconds;
};

/// One LAMMPS instance, quiet; LAMMPS errors become exceptions.
class Lammps {
public:
    Lammps() {
        const char* args[] = {"lmp", "-log", "none", "-screen", "none", "-nocite"};
        handle_ = lammps_open_no_mpi(6, const_cast<char**>(args), nullptr);
        if (handle_ == nullptr) throw std::runtime_error("LAMMPS did not start");
    }
    ~Lammps() { lammps_close(handle_); }
    Lammps(const Lammps&) = delete;
    Lammps& operator=(const Lammps&) = delete;

    void command(const std::string& line) {
        lammps_command(handle_, const_cast<char*>(line.c_str()));
        check(line);
    }
    void file(const std::string& path) {
        lammps_file(handle_, const_cast<char*>(path.c_str()));
        check(path);
    }
    void* get() const { return handle_; }

private:
    void check(const std::string& what) {
        if (lammps_has_error(handle_)) {
            char message[1024];
            lammps_get_last_error_message(handle_, message, sizeof message);
            throw std::runtime_error("LAMMPS (" + what + "): " + message);
        }
    }
    void* handle_;
};

/// The LAMMPS box and atoms as a general lattice and Cartesian positions.
void read_system(Lammps& lammps, lmp::Matrix3& lattice, std::vector<lmp::Vector3>& positions, std::vector<int>& types) {
    double lo[3], hi[3], xy, yz, xz;
    int periodic[3], changed;
    lammps_extract_box(lammps.get(), lo, hi, &xy, &yz, &xz, periodic, &changed);
    lattice = lmp::lattice_of(lo, hi, xy, yz, xz);
    const int natoms = static_cast<int>(lammps_get_natoms(lammps.get()));
    std::vector<double> x(3 * natoms);
    types.assign(natoms, 0);
    lammps_gather_atoms(lammps.get(), const_cast<char*>("x"), 1, 3, x.data());
    lammps_gather_atoms(lammps.get(), const_cast<char*>("type"), 0, 1, types.data());
    positions.resize(natoms);
    for (int i = 0; i < natoms; ++i) positions[i] = {x[3 * i] - lo[0], x[3 * i + 1] - lo[1], x[3 * i + 2] - lo[2]};
}

/// Writes a general lattice and positions into LAMMPS through the
/// restricted-box conversion.
void write_system(Lammps& lammps, const lmp::Matrix3& lattice, const std::vector<lmp::Vector3>& positions) {
    const lmp::Box box = lmp::to_lammps(lattice, positions);
    char line[512];
    std::snprintf(line, sizeof line,
                  "change_box all x final 0 %.17g y final 0 %.17g z final 0 %.17g xy final %.17g xz final %.17g "
                  "yz final %.17g units box",
                  box.lx, box.ly, box.lz, box.xy, box.xz, box.yz);
    lammps.command(line);
    std::vector<double> x;
    for (const auto& p : box.positions) x.insert(x.end(), p.begin(), p.end());
    lammps_scatter_atoms(lammps.get(), const_cast<char*>("x"), 1, 3, x.data());
}

/// Which atoms (in atom-id order, as lammps_gather_atoms returns them)
/// belong to the LAMMPS group `name`.
std::vector<bool> group_members(Lammps& lammps, const std::string& name) {
    int index = -1;
    char buffer[256];
    for (int k = 0; k < lammps_id_count(lammps.get(), "group"); ++k) {
        if (lammps_id_name(lammps.get(), "group", k, buffer, sizeof buffer) && name == buffer) index = k;
    }
    if (index < 0) throw std::runtime_error("no LAMMPS group named " + name);
    const int natoms = static_cast<int>(lammps_get_natoms(lammps.get()));
    std::vector<int> mask(natoms);
    lammps_gather_atoms(lammps.get(), const_cast<char*>("mask"), 0, 1, mask.data());
    std::vector<bool> members(natoms);
    for (int i = 0; i < natoms; ++i) members[i] = (mask[i] >> index) & 1;
    return members;
}

/// Fractional coordinates of Cartesian positions in a lattice (rows).
std::vector<lmp::Vector3> fractional(const lmp::Matrix3& l, const std::vector<lmp::Vector3>& positions) {
    const double det = l[0][0] * (l[1][1] * l[2][2] - l[1][2] * l[2][1]) -
                       l[0][1] * (l[1][0] * l[2][2] - l[1][2] * l[2][0]) +
                       l[0][2] * (l[1][0] * l[2][1] - l[1][1] * l[2][0]);
    std::vector<lmp::Vector3> out;
    for (const auto& x : positions) {
        lmp::Vector3 f;
        for (int c = 0; c < 3; ++c) {
            lmp::Matrix3 m = l;
            m[c] = x;  // Cramer's rule for f L = x: row c replaced by x
            f[c] = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])) /
                   det;
        }
        out.push_back(f);
    }
    return out;
}

Result minimise(Lammps& lammps, const std::string& frozen_group) {
    const auto start = std::chrono::steady_clock::now();
    if (!frozen_group.empty()) lammps.command("fix freeze " + frozen_group + " setforce 0.0 0.0 0.0");
    lammps.command("reset_timestep 0");
    lammps.command("thermo_modify norm no");
    lammps.command("min_style cg");
    // fix box/relax measures strain against the cell it starts from, so a
    // second minimisation from the first one's end finishes the job (the
    // usual LAMMPS recipe); iterations are counted over both.
    for (int round = 0; round < 2; ++round) {
        lammps.command("fix relax all box/relax tri 0.0 vmax 0.001");
        lammps.command("minimize 0.0 1.0e-8 10000 100000");
        lammps.command("unfix relax");
    }
    Result r;
    r.iterations = static_cast<long>(*static_cast<int64_t*>(lammps_extract_global(lammps.get(), "ntimestep")));
    r.energy_per_atom = lammps_get_thermo(lammps.get(), "pe") / lammps_get_natoms(lammps.get());
    r.volume = lammps_get_thermo(lammps.get(), "vol");
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

Result run(const std::string& start, const std::string& model_dir, const std::string& input,
           const lmp::TypeMap& type_map, const std::string& frozen_group, double& e3relax_seconds) {
    Lammps lammps;
    lammps.file(input);
    auto minimise = [&](Lammps& l) { return ::minimise(l, frozen_group); };
    if (start == "input") return minimise(lammps);
    lmp::Matrix3 lattice;
    std::vector<lmp::Vector3> positions;
    std::vector<int> types;
    read_system(lammps, lattice, positions, types);
    if (start == "input-converted") {
        write_system(lammps, lattice, positions);
        return minimise(lammps);
    }
    if (start == "input-rotated") {
        // An arbitrary rotation (about (1, 2, 3) by 0.7 rad) of the input.
        const double c = std::cos(0.7), s = std::sin(0.7), n = std::sqrt(14.0);
        const double u[3] = {1 / n, 2 / n, 3 / n};
        lmp::Matrix3 rot;
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
                const double k = (i == j ? c : 0.0) + (1 - c) * u[i] * u[j];
                const int m = 3 - i - j;  // the third index, for the cross-product term
                const double sign = (i == j) ? 0.0 : (((j - i + 3) % 3 == 1) ? -1.0 : 1.0);
                rot[i][j] = k + sign * s * u[m % 3];
            }
        auto apply = [&](const lmp::Vector3& v) {
            return lmp::Vector3{rot[0][0] * v[0] + rot[0][1] * v[1] + rot[0][2] * v[2],
                                rot[1][0] * v[0] + rot[1][1] * v[1] + rot[1][2] * v[2],
                                rot[2][0] * v[0] + rot[2][1] * v[1] + rot[2][2] * v[2]};
        };
        for (auto& row : lattice) row = apply(row);
        for (auto& p : positions) p = apply(p);
        write_system(lammps, lattice, positions);
        return minimise(lammps);
    }
    // start == "e3relax": predict, then write the prediction back.
    const auto t0 = std::chrono::steady_clock::now();
    e3relax::Model model(model_dir);
    e3relax::Structure structure;
    for (std::size_t i = 0; i < positions.size(); ++i) {
        structure.numbers.push_back(type_map(types[i]));
        structure.positions.push_back(positions[i]);
    }
    structure.lattice = lattice;
    std::vector<bool> frozen;
    if (!frozen_group.empty()) {
        frozen = group_members(lammps, frozen_group);
        for (bool f : frozen) structure.move_mask.push_back({{!f, !f, !f}});
    }
    const e3relax::Structure predicted = model.predict(structure);
    e3relax_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!frozen.empty()) {
        const auto before = fractional(lattice, positions), after = fractional(predicted.lattice, predicted.positions);
        double largest = 0.0;
        std::size_t count = 0;
        for (std::size_t i = 0; i < frozen.size(); ++i) {
            if (!frozen[i]) continue;
            ++count;
            for (int k = 0; k < 3; ++k) largest = std::fmax(largest, std::fabs(after[i][k] - before[i][k]));
        }
        std::fprintf(stderr, "frozen group %s: %zu atoms, largest fractional change %.3e\n", frozen_group.c_str(),
                     count, largest);
    }
    write_system(lammps, predicted.lattice, predicted.positions);
    return minimise(lammps);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr,
                     "usage: %s MODEL_DIR INPUT.lmp TYPEMAP [both|input|e3relax|input-converted|input-rotated] "
                     "[FROZEN_GROUP]\n",
                     argv[0]);
        return 2;
    }
    const std::string model_dir = argv[1], input = argv[2];
    const std::string which = argc > 4 ? argv[4] : "both";
    const std::string frozen_group = argc > 5 ? argv[5] : "";
    try {
        const lmp::TypeMap type_map(argv[3]);
        std::vector<std::string> starts;
        if (which == "both") {
            starts = {"input", "e3relax"};
        } else {
            starts = {which};
        }
        std::printf("%-14s %10s %16s %12s %9s\n", "start", "iterations", "energy (eV/atom)", "volume (A^3)",
                    "time (s)");
        for (const auto& start : starts) {
            double e3relax_seconds = 0.0;
            const Result r = run(start, model_dir, input, type_map, frozen_group, e3relax_seconds);
            std::printf("%-14s %10ld %16.10f %12.4f %9.3f\n", start.c_str(), r.iterations, r.energy_per_atom, r.volume,
                        r.seconds + e3relax_seconds);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lammps_prerelax: %s\n", e.what());
        return 1;
    }
    return 0;
}
