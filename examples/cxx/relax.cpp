// Relax a crystal with e3relax from C++.
//
//   relax_cxx MODEL_DIR INPUT [bohr]
//
// INPUT is POSCAR-like: a comment line, three lattice rows (row i = lattice
// vector i), the number of atoms, then one "Z x y z" line per atom
// (Cartesian). With "bohr" the numbers are in Bohr and so is the output.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "e3relax.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " MODEL_DIR INPUT [bohr]\n";
        return 2;
    }
    const bool bohr = argc > 3 && std::string(argv[3]) == "bohr";
    std::ifstream input(argv[2]);
    std::string comment;
    if (!input || !std::getline(input, comment)) {
        std::cerr << "cannot read " << argv[2] << "\n";
        return 1;
    }
    e3relax::Structure structure;
    for (auto& row : structure.lattice) input >> row[0] >> row[1] >> row[2];
    int natoms = 0;
    input >> natoms;
    for (int i = 0; i < natoms; ++i) {
        int32_t z;
        e3relax::Vector3 p;
        input >> z >> p[0] >> p[1] >> p[2];
        structure.numbers.push_back(z);
        structure.positions.push_back(p);
    }
    if (!input) {
        std::cerr << argv[2] << ": malformed input\n";
        return 1;
    }
    try {
        e3relax::Model model(argv[1], bohr ? R"({"length_unit": "bohr"})" : "");
        const e3relax::Structure relaxed = model.predict(structure);
        std::printf("relaxed by e3relax %s (%s)\n", e3relax::version().c_str(), bohr ? "bohr" : "angstrom");
        for (const auto& row : relaxed.lattice) std::printf("%.17g %.17g %.17g\n", row[0], row[1], row[2]);
        std::printf("%zu\n", relaxed.numbers.size());
        for (size_t i = 0; i < relaxed.numbers.size(); ++i) {
            const auto& p = relaxed.positions[i];
            std::printf("%d %.17g %.17g %.17g\n", relaxed.numbers[i], p[0], p[1], p[2]);
        }
    } catch (const e3relax::Error& e) {
        std::cerr << "e3relax: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
