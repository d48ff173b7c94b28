// The general lattice <-> LAMMPS restricted box conversion of
// e3relax_lammps.hpp against the obvious checks (run by tests/lammps.rs):
// random lattices, left-handed ones and large tilts included.
#include <cmath>
#include <cstdio>
#include <random>

#include "e3relax_lammps.hpp"

namespace lmp = e3relax::lammps;
using lmp::details::det;
using lmp::details::fractional;

static int failures = 0;
#define CHECK(condition, ...)                         \
    do {                                              \
        if (!(condition)) {                           \
            std::fprintf(stderr, "FAIL: " __VA_ARGS__); \
            std::fprintf(stderr, "\n");               \
            ++failures;                               \
        }                                             \
    } while (0)

// The conversion rounds to 1e-10 Angstrom, so fractional checks allow
// that over the cell's conditioning.
static bool near_integer(double x) { return std::fabs(x - std::round(x)) < 1e-6; }

int main() {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (int trial = 0; trial < 2000; ++trial) {
        lmp::Matrix3 general;
        for (auto& row : general)
            for (auto& v : row) v = 4.0 * uniform(rng);
        for (int c = 0; c < 3; ++c) general[c][c] += (c == 0 ? 5.0 : 4.0);  // mostly well conditioned
        if (trial % 3 == 0) general[2] = {-general[2][0], -general[2][1], -general[2][2]};  // left-handed
        std::vector<lmp::Vector3> positions;
        for (int i = 0; i < 5; ++i) positions.push_back({10 * uniform(rng), 10 * uniform(rng), 10 * uniform(rng)});
        const lmp::Box box = lmp::to_lammps(general, positions);
        const lmp::Matrix3 l = box.lattice();
        // Restricted, right-handed, reduced.
        CHECK(box.lx > 0 && box.ly > 0 && box.lz > 0, "trial %d: not right-handed", trial);
        CHECK(std::fabs(box.xy) <= box.lx / 2 + 1e-12 && std::fabs(box.xz) <= box.lx / 2 + 1e-12 &&
                  std::fabs(box.yz) <= box.ly / 2 + 1e-12,
              "trial %d: tilts not reduced (%g %g %g)", trial, box.xy, box.xz, box.yz);
        // The same lattice: same volume, and each box vector rotated back is
        // an integer combination of the general ones.
        CHECK(std::fabs(std::fabs(det(general)) - det(l)) < 1e-7 * det(l), "trial %d: volume", trial);
        for (const auto& row : l) {
            const lmp::Vector3 back = {box.rotation[0][0] * row[0] + box.rotation[1][0] * row[1] + box.rotation[2][0] * row[2],
                                       box.rotation[0][1] * row[0] + box.rotation[1][1] * row[1] + box.rotation[2][1] * row[2],
                                       box.rotation[0][2] * row[0] + box.rotation[1][2] * row[1] + box.rotation[2][2] * row[2]};
            const lmp::Vector3 f = fractional(general, back);
            CHECK(near_integer(f[0]) && near_integer(f[1]) && near_integer(f[2]), "trial %d: not the same lattice", trial);
        }
        // Atoms: inside the box, and each one a lattice translate of its
        // rotated input position.
        for (std::size_t i = 0; i < positions.size(); ++i) {
            const lmp::Vector3 f = fractional(l, box.positions[i]);
            CHECK(f[0] >= -1e-9 && f[0] < 1 + 1e-9 && f[1] >= -1e-9 && f[1] < 1 + 1e-9 && f[2] >= -1e-9 &&
                      f[2] < 1 + 1e-9,
                  "trial %d: atom %zu outside the box", trial, i);
            const lmp::Vector3& x = positions[i];
            const lmp::Vector3 rotated = {lmp::details::dot(box.rotation[0], x), lmp::details::dot(box.rotation[1], x),
                                          lmp::details::dot(box.rotation[2], x)};
            const lmp::Vector3 shift = fractional(l, lmp::details::minus(box.positions[i], rotated));
            CHECK(near_integer(shift[0]) && near_integer(shift[1]) && near_integer(shift[2]),
                  "trial %d: atom %zu moved by a non-lattice vector", trial, i);
        }
    }
    // A cell already in LAMMPS form with reduced tilts is left as it is.
    const lmp::Box same = lmp::to_lammps({{{4, 0, 0}, {1, 5, 0}, {-1.5, 2, 6}}}, {{{1, 1, 1}}});
    CHECK(same.lx == 4 && same.xy == 1 && same.ly == 5 && same.xz == -1.5 && same.yz == 2 && same.lz == 6, "identity");
    // Types.
    const lmp::TypeMap types("1:Si 2:O,3:8");
    CHECK(types(1) == 14 && types(2) == 8 && types(3) == 8, "type map");
    bool refused = false;
    try {
        lmp::TypeMap("1:Xx");
    } catch (const std::invalid_argument&) {
        refused = true;
    }
    CHECK(refused, "unknown element accepted");
    std::printf("LAMMPS box conversion: %d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
