/*
 * e3relax C++ helper for LAMMPS: a general lattice to LAMMPS' restricted
 * triclinic box and back, and LAMMPS atom types to atomic numbers.
 * Header-only, C++14, needs no LAMMPS header (it works on plain arrays, so
 * it can be tested without LAMMPS and used with any way of talking to it).
 *
 * LAMMPS keeps a restricted triclinic box: a = (lx, 0, 0), b = (xy, ly, 0),
 * c = (xz, yz, lz) with lx, ly, lz > 0 (right-handed) and the tilts within
 * half a box length (|xy| <= lx/2, |xz| <= lx/2, |yz| <= ly/2). e3relax's
 * prediction is rotation-equivariant, so its lattice is a general one:
 * `to_lammps` rotates it into that form, flips a left-handed cell (c -> -c:
 * the same lattice), reduces the tilts (adding whole lattice vectors: the
 * same lattice again), and maps positions with the same rotation, wrapped
 * into the new box.
 *
 *   auto box = e3relax::lammps::to_lammps(lattice, positions);
 *   // change_box all x final 0 box.lx y final 0 box.ly ... units box,
 *   // then scatter box.positions as "x".
 */
#ifndef E3RELAX_LAMMPS_HPP
#define E3RELAX_LAMMPS_HPP

#include <array>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace e3relax {
namespace lammps {

using Vector3 = std::array<double, 3>;
/// Rows are lattice vectors.
using Matrix3 = std::array<Vector3, 3>;

/// A restricted triclinic box (origin at 0) with the atoms in it.
struct Box {
    double lx = 0, ly = 0, lz = 0, xy = 0, xz = 0, yz = 0;
    /// Positions in the box's frame, wrapped into it.
    std::vector<Vector3> positions;
    /// The rotation applied: x_box = rotation * x_general (columns act on
    /// column vectors); its transpose maps box vectors back.
    Matrix3 rotation{};

    /// The box's lattice, rows a, b, c.
    Matrix3 lattice() const { return {{{lx, 0, 0}, {xy, ly, 0}, {xz, yz, lz}}}; }
};

namespace details {
inline double dot(const Vector3& u, const Vector3& v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; }
inline Vector3 cross(const Vector3& u, const Vector3& v) {
    return {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
}
inline double norm(const Vector3& u) { return std::sqrt(dot(u, u)); }
inline Vector3 scaled(const Vector3& u, double s) { return {u[0] * s, u[1] * s, u[2] * s}; }
inline Vector3 minus(const Vector3& u, const Vector3& v) { return {u[0] - v[0], u[1] - v[1], u[2] - v[2]}; }
inline double det(const Matrix3& m) { return dot(m[0], cross(m[1], m[2])); }

/// Fractional coordinates of x in the lattice with rows a, b, c.
inline Vector3 fractional(const Matrix3& lattice, const Vector3& x) {
    const double volume = det(lattice);
    const Vector3 bc = cross(lattice[1], lattice[2]), ca = cross(lattice[2], lattice[0]),
                  ab = cross(lattice[0], lattice[1]);
    return {dot(x, bc) / volume, dot(x, ca) / volume, dot(x, ab) / volume};
}
}  // namespace details

/// Rounds to a grid of 1e-10 Angstrom: a rotated copy of a crystal, which
/// differs in the last bits after the rotation, then usually gives a
/// bit-identical box, so LAMMPS' minimiser takes the identical path.
inline double snap(double x) { return std::round(x * 1e10) / 1e10; }

/// The restricted triclinic box of a general lattice (rows), with the
/// positions (Cartesian, general frame) carried into it. Box lengths, tilts
/// and positions are rounded to 1e-10 Angstrom (see `snap`).
inline Box to_lammps(const Matrix3& general, const std::vector<Vector3>& positions) {
    using namespace details;
    Matrix3 l = general;
    if (!(std::fabs(det(l)) > 1e-12 * norm(l[0]) * norm(l[1]) * norm(l[2]))) {
        throw std::invalid_argument("e3relax::lammps::to_lammps: the lattice is singular");
    }
    // Right-handed: c -> -c spans the same lattice.
    if (det(l) < 0) l[2] = scaled(l[2], -1.0);
    // An orthonormal frame: x along a, y in the ab plane, z = x cross y.
    const Vector3 ex = scaled(l[0], 1.0 / norm(l[0]));
    Vector3 ey = minus(l[1], scaled(ex, dot(l[1], ex)));
    ey = scaled(ey, 1.0 / norm(ey));
    const Vector3 ez = cross(ex, ey);
    Box box;
    box.rotation = {ex, ey, ez};
    auto rotate = [&](const Vector3& v) { return Vector3{dot(ex, v), dot(ey, v), dot(ez, v)}; };
    Matrix3 r = {rotate(l[0]), rotate(l[1]), rotate(l[2])};
    // Tilt reduction with whole lattice vectors (yz first: it moves xz).
    r[2] = minus(r[2], scaled(r[1], std::round(r[2][1] / r[1][1])));
    r[2] = minus(r[2], scaled(r[0], std::round(r[2][0] / r[0][0])));
    r[1] = minus(r[1], scaled(r[0], std::round(r[1][0] / r[0][0])));
    box.lx = snap(r[0][0]);
    box.xy = snap(r[1][0]);
    box.ly = snap(r[1][1]);
    box.xz = snap(r[2][0]);
    box.yz = snap(r[2][1]);
    box.lz = snap(r[2][2]);
    const Matrix3 lattice = box.lattice();
    box.positions.reserve(positions.size());
    for (const auto& x : positions) {
        Vector3 f = fractional(lattice, rotate(x));
        for (double& v : f) {
            v -= std::floor(v);
            if (v >= 1.0) v = 0.0;  // -1e-17 wraps to 1.0 in floating point
        }
        box.positions.push_back({snap(f[0] * lattice[0][0] + f[1] * lattice[1][0] + f[2] * lattice[2][0]),
                                 snap(f[1] * lattice[1][1] + f[2] * lattice[2][1]), snap(f[2] * lattice[2][2])});
    }
    return box;
}

/// A LAMMPS box (as lammps_extract_box gives it: boxlo, boxhi, xy, yz, xz)
/// as a lattice, rows a, b, c.
inline Matrix3 lattice_of(const double boxlo[3], const double boxhi[3], double xy, double yz, double xz) {
    return {{{boxhi[0] - boxlo[0], 0, 0}, {xy, boxhi[1] - boxlo[1], 0}, {xz, yz, boxhi[2] - boxlo[2]}}};
}

/// Atomic numbers of LAMMPS atom types from a map such as "1:Si 2:O"
/// (type:symbol or type:Z). The error names an unknown symbol or a missing
/// type.
class TypeMap {
public:
    explicit TypeMap(const std::string& spec) {
        std::size_t start = 0;
        while (start < spec.size()) {
            std::size_t end = spec.find_first_of(" ,", start);
            if (end == std::string::npos) end = spec.size();
            const std::string item = spec.substr(start, end - start);
            start = end + 1;
            if (item.empty()) continue;
            const std::size_t colon = item.find(':');
            if (colon == std::string::npos) throw std::invalid_argument("type map entry '" + item + "' is not TYPE:ELEMENT");
            const int type = std::stoi(item.substr(0, colon));
            const std::string element = item.substr(colon + 1);
            const int z = std::isdigit(static_cast<unsigned char>(element[0])) ? std::stoi(element) : number_of(element);
            if (z < 1 || z > 118) throw std::invalid_argument("type map: '" + element + "' is not an element");
            z_[type] = z;
        }
    }

    /// The atomic number of a LAMMPS type.
    int operator()(int type) const {
        const auto found = z_.find(type);
        if (found == z_.end()) throw std::invalid_argument("type map: no element for LAMMPS type " + std::to_string(type));
        return found->second;
    }

private:
    static int number_of(const std::string& symbol) {
        static const char* symbols[] = {
            "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",  "S",  "Cl",
            "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se",
            "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb",
            "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er",
            "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At",
            "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No",
            "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
        for (int z = 1; z <= 118; ++z) {
            if (symbol == symbols[z - 1]) return z;
        }
        return 0;
    }

    std::map<int, int> z_;
};

}  // namespace lammps
}  // namespace e3relax

#endif  // E3RELAX_LAMMPS_HPP
