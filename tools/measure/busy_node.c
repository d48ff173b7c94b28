/*
 * Latency of a small prediction through the C ABI, as an MPI rank on a
 * full node sees it. Used by tools/measure/busy_node.sh (a measurement, not a test).
 *
 *   busy_node MODEL_DIR THREADS CALLS
 *
 * THREADS = 0 keeps the library's default policy; otherwise
 * e3relax_set_num_threads(THREADS, 0) is called first. Prints the median
 * and the slowest of CALLS predictions of a 7-atom crystal, in ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "e3relax.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR THREADS CALLS\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]);
    int calls = atoi(argv[3]);
    if (calls < 1) {
        fprintf(stderr, "CALLS must be at least 1\n");
        return 2;
    }
    if (threads > 0 && e3relax_set_num_threads(threads, 0) != E3RELAX_SUCCESS) {
        fprintf(stderr, "e3relax: %s\n", e3relax_last_error());
        return 1;
    }
    e3relax_model_t* model = NULL;
    if (e3relax_load(argv[1], NULL, &model) != E3RELAX_SUCCESS) {
        fprintf(stderr, "e3relax: %s\n", e3relax_last_error());
        return 1;
    }
    /* A 7-atom perovskite-like cell (SrTiO3 plus an interstitial H). */
    const double lattice[3][3] = {{3.905, 0, 0}, {0, 3.905, 0}, {0, 0, 3.905}};
    const int32_t numbers[7] = {38, 22, 8, 8, 8, 1, 1};
    const double positions[7][3] = {{0, 0, 0},          {1.9525, 1.9525, 1.9525}, {1.9525, 1.9525, 0},
                                    {1.9525, 0, 1.9525}, {0, 1.9525, 1.9525},      {0.9, 0.9, 3.0},
                                    {3.0, 0.9, 0.9}};
    double out_positions[7][3], out_lattice[3][3];
    double* times = malloc(sizeof(double) * (size_t)calls);
    for (int k = -3; k < calls; k++) {
        double start = now_ms();
        if (e3relax_predict(model, 7, numbers, &positions[0][0], &lattice[0][0], &out_positions[0][0],
                            &out_lattice[0][0]) != E3RELAX_SUCCESS) {
            fprintf(stderr, "e3relax: %s\n", e3relax_last_error());
            return 1;
        }
        if (k >= 0) times[k] = now_ms() - start;
    }
    qsort(times, (size_t)calls, sizeof(double), by_value);
    printf("median %.2f ms, slowest %.2f ms over %d calls\n", times[calls / 2], times[calls - 1], calls);
    free(times);
    e3relax_free(model);
    return 0;
}
