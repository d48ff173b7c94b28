/*
 * e3relax inside an MPI code, in C: the two ways a parallel code uses it.
 *
 *   mpirun -np N relax_mpi_c MODEL_DIR INPUT
 *
 * INPUT as for examples/c/relax.c (Å). Every rank calls
 * e3relax_set_num_threads(1, 0) before loading: ranks that share a node
 * must not each start one libtorch thread per core.
 *
 * 1. Rank 0 loads the model and predicts; the result is broadcast (a code
 *    whose geometry lives on every rank but is updated by one).
 * 2. Every rank loads its own handle and predicts its own structure (here:
 *    the input shifted rigidly by 0.1 x rank of its first lattice vector,
 *    whose prediction is rank 0's shifted by 0.1 x rank of the *predicted*
 *    first lattice vector: a prediction keeps the mean fractional
 *    coordinate); rank 0 gathers and checks them.
 *
 * Rank 0 prints the prediction as examples/c/relax.c does, then one line
 * per rank with its largest difference from the shifted broadcast result.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "e3relax.h"

static void fail(const char* what) {
    fprintf(stderr, "%s: %s\n", what, e3relax_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 3) {
        if (rank == 0) fprintf(stderr, "usage: %s MODEL_DIR INPUT\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    if (e3relax_set_num_threads(1, 0) != E3RELAX_SUCCESS) fail("e3relax_set_num_threads");

    /* Rank 0 reads the input and predicts it. */
    int natoms = 0;
    double lattice[3][3], new_lattice[3][3];
    int32_t* numbers = NULL;
    double* positions = NULL;
    double* relaxed = NULL;
    if (rank == 0) {
        FILE* file = fopen(argv[2], "r");
        char comment[512];
        if (file == NULL || fgets(comment, sizeof comment, file) == NULL) {
            fprintf(stderr, "cannot read %s\n", argv[2]);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (int i = 0; i < 3; i++)
            if (fscanf(file, "%lf %lf %lf", &lattice[i][0], &lattice[i][1], &lattice[i][2]) != 3) {
                fprintf(stderr, "%s: bad lattice row %d\n", argv[2], i + 1);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
        if (fscanf(file, "%d", &natoms) != 1 || natoms <= 0) {
            fprintf(stderr, "%s: bad atom count\n", argv[2]);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        numbers = malloc(sizeof(int32_t) * (size_t)natoms);
        positions = malloc(sizeof(double) * 3 * (size_t)natoms);
        relaxed = malloc(sizeof(double) * 3 * (size_t)natoms);
        for (int i = 0; i < natoms; i++)
            if (fscanf(file, "%d %lf %lf %lf", &numbers[i], &positions[3 * i], &positions[3 * i + 1],
                       &positions[3 * i + 2]) != 4) {
                fprintf(stderr, "%s: bad line for atom %d\n", argv[2], i + 1);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
        fclose(file);
        e3relax_model_t* model = NULL;
        if (e3relax_load(argv[1], NULL, &model) != E3RELAX_SUCCESS) fail("e3relax_load");
        if (e3relax_predict(model, natoms, numbers, positions, &lattice[0][0], relaxed, &new_lattice[0][0]) !=
            E3RELAX_SUCCESS)
            fail("e3relax_predict");
        e3relax_free(model);
    }

    /* 1. Everyone gets rank 0's input and prediction. */
    MPI_Bcast(&natoms, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank != 0) {
        numbers = malloc(sizeof(int32_t) * (size_t)natoms);
        positions = malloc(sizeof(double) * 3 * (size_t)natoms);
        relaxed = malloc(sizeof(double) * 3 * (size_t)natoms);
    }
    MPI_Bcast(numbers, natoms, MPI_INT32_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(positions, 3 * natoms, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&lattice[0][0], 9, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(relaxed, 3 * natoms, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&new_lattice[0][0], 9, MPI_DOUBLE, 0, MPI_COMM_WORLD);

    /* 2. Every rank predicts its own structure with its own handle. */
    double shift = 0.1 * rank; /* of the first lattice vector */
    double* mine = malloc(sizeof(double) * 3 * (size_t)natoms);
    double* mine_relaxed = malloc(sizeof(double) * 3 * (size_t)natoms);
    double mine_lattice[3][3];
    for (int i = 0; i < 3 * natoms; i++) mine[i] = positions[i] + shift * lattice[0][i % 3];
    e3relax_model_t* own = NULL;
    if (e3relax_load(argv[1], NULL, &own) != E3RELAX_SUCCESS) fail("e3relax_load");
    if (e3relax_predict(own, natoms, numbers, mine, &lattice[0][0], mine_relaxed, &mine_lattice[0][0]) !=
        E3RELAX_SUCCESS)
        fail("e3relax_predict");
    e3relax_free(own);
    double difference = 0.0;
    for (int i = 0; i < 3 * natoms; i++) {
        double expected = relaxed[i] + shift * new_lattice[0][i % 3];
        difference = fmax(difference, fabs(mine_relaxed[i] - expected));
    }
    for (int i = 0; i < 9; i++)
        difference = fmax(difference, fabs((&mine_lattice[0][0])[i] - (&new_lattice[0][0])[i]));
    double* differences = rank == 0 ? malloc(sizeof(double) * (size_t)size) : NULL;
    MPI_Gather(&difference, 1, MPI_DOUBLE, differences, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);

    if (rank == 0) {
        printf("relaxed by e3relax %s (angstrom)\n", e3relax_version());
        for (int i = 0; i < 3; i++) printf("%.17g %.17g %.17g\n", new_lattice[i][0], new_lattice[i][1], new_lattice[i][2]);
        printf("%d\n", natoms);
        for (int i = 0; i < natoms; i++)
            printf("%d %.17g %.17g %.17g\n", numbers[i], relaxed[3 * i], relaxed[3 * i + 1], relaxed[3 * i + 2]);
        for (int r = 0; r < size; r++) printf("rank %d of %d: largest difference %.3g\n", r, size, differences[r]);
        free(differences);
    }
    free(numbers);
    free(positions);
    free(relaxed);
    free(mine);
    free(mine_relaxed);
    MPI_Finalize();
    return 0;
}
