/*
 * Relax a crystal with e3relax from C.
 *
 *   relax_c MODEL_DIR INPUT [bohr]
 *
 * INPUT is POSCAR-like: a comment line, three lattice rows (row i = lattice
 * vector i), the number of atoms, then one "Z x y z" line per atom
 * (Cartesian). With "bohr" the numbers are in Bohr and so is the output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e3relax.h"

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR INPUT [bohr]\n", argv[0]);
        return 2;
    }
    const char* unit = (argc > 3 && strcmp(argv[3], "bohr") == 0) ? "bohr" : "angstrom";

    FILE* file = fopen(argv[2], "r");
    if (file == NULL) {
        fprintf(stderr, "cannot open %s\n", argv[2]);
        return 1;
    }
    char comment[512];
    double lattice[3][3];
    int natoms = 0;
    if (fgets(comment, sizeof comment, file) == NULL) {
        fprintf(stderr, "%s: empty file\n", argv[2]);
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        if (fscanf(file, "%lf %lf %lf", &lattice[i][0], &lattice[i][1], &lattice[i][2]) != 3) {
            fprintf(stderr, "%s: bad lattice row %d\n", argv[2], i + 1);
            return 1;
        }
    }
    if (fscanf(file, "%d", &natoms) != 1 || natoms <= 0) {
        fprintf(stderr, "%s: bad atom count\n", argv[2]);
        return 1;
    }
    int32_t* numbers = malloc(sizeof(int32_t) * (size_t)natoms);
    double(*positions)[3] = malloc(sizeof(double[3]) * (size_t)natoms);
    double(*relaxed)[3] = malloc(sizeof(double[3]) * (size_t)natoms);
    for (int i = 0; i < natoms; i++) {
        if (fscanf(file, "%d %lf %lf %lf", &numbers[i], &positions[i][0], &positions[i][1], &positions[i][2]) != 4) {
            fprintf(stderr, "%s: bad line for atom %d\n", argv[2], i + 1);
            return 1;
        }
    }
    fclose(file);

    char options[128];
    snprintf(options, sizeof options, "{\"length_unit\": \"%s\"}", unit);
    e3relax_model_t* model = NULL;
    if (e3relax_load(argv[1], options, &model) != E3RELAX_SUCCESS) {
        fprintf(stderr, "e3relax: %s\n", e3relax_last_error());
        return 1;
    }
    double new_lattice[3][3];
    e3relax_status_t status =
        e3relax_predict(model, natoms, numbers, &positions[0][0], &lattice[0][0], &relaxed[0][0], &new_lattice[0][0]);
    if (status != E3RELAX_SUCCESS) {
        fprintf(stderr, "e3relax: %s\n", e3relax_last_error());
        e3relax_free(model);
        return 1;
    }
    printf("relaxed by e3relax %s (%s)\n", e3relax_version(), unit);
    for (int i = 0; i < 3; i++) {
        printf("%.17g %.17g %.17g\n", new_lattice[i][0], new_lattice[i][1], new_lattice[i][2]);
    }
    printf("%d\n", natoms);
    for (int i = 0; i < natoms; i++) {
        printf("%d %.17g %.17g %.17g\n", numbers[i], relaxed[i][0], relaxed[i][1], relaxed[i][2]);
    }
    e3relax_free(model);
    free(numbers);
    free(positions);
    free(relaxed);
    return 0;
}
