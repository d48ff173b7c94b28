/*
 * The bad-input catalogue through the C ABI, as a C program (run under
 * valgrind by tests/c_programs.rs): every case must return its status and
 * a message naming the problem, and the process must survive them all.
 *
 *   bad_inputs MODEL_DIR NAN_MODEL_DIR OVERFLOW_MODEL_DIR HUGE_CONFIG_MODEL_DIR
 *
 * The last three are broken on purpose: NaN weights, finite weights whose
 * prediction overflows, and a config asking for 10^9 hidden channels.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e3relax.h"

static int failures = 0;
static int passes = 0;

static void expect(const char* what, e3relax_status_t status, e3relax_status_t expected, const char* needle) {
    const char* message = e3relax_last_error();
    if (status != expected || strstr(message, needle) == NULL) {
        fprintf(stderr, "FAIL %s: status %d (expected %d), message '%s' (expected '%s')\n", what, (int)status,
                (int)expected, message, needle);
        failures++;
    } else {
        printf("ok   %s: %s\n", what, message);
        passes++;
    }
}

int main(int argc, char** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL_DIR NAN_MODEL_DIR OVERFLOW_MODEL_DIR HUGE_CONFIG_MODEL_DIR\n", argv[0]);
        return 2;
    }
    /* Thread counts are bounded (100000 once started threads until the
       machine ran out of process ids). */
    expect("zero threads", e3relax_set_num_threads(0, 0), E3RELAX_INVALID_ARGUMENT, "threads must be in 1..=1024");
    expect("100000 threads", e3relax_set_num_threads(100000, 0), E3RELAX_INVALID_ARGUMENT, "got 100000");
    expect("too many interop threads", e3relax_set_num_threads(1, E3RELAX_MAX_THREADS + 1), E3RELAX_INVALID_ARGUMENT,
           "interop threads must be in 0..=1024");
    /* Broken model directories: refused at load, with the reason. */
    e3relax_model_t* broken = (e3relax_model_t*)0x1;
    expect("NaN weights", e3relax_load(argv[2], NULL, &broken), E3RELAX_MODEL_ERROR, "holds NaN or infinite values");
    expect("huge config", e3relax_load(argv[4], NULL, &broken), E3RELAX_MODEL_ERROR,
           "hidden_channels must be an even number in 2..=4096");
    if (broken != NULL) {
        fprintf(stderr, "FAIL: broken model handle not NULL\n");
        failures++;
    }
    e3relax_model_t* model = (e3relax_model_t*)0x1;
    expect("missing model", e3relax_load("/nonexistent/model", NULL, &model), E3RELAX_MODEL_ERROR, "not a model directory");
    if (model != NULL) {
        fprintf(stderr, "FAIL: model not reset to NULL\n");
        failures++;
    }
    expect("NULL layer count", e3relax_num_layers(NULL, NULL), E3RELAX_INVALID_ARGUMENT, "model is NULL");
    expect("NULL out handle", e3relax_load(argv[1], NULL, NULL), E3RELAX_INVALID_ARGUMENT, "model is NULL");
    expect("bad options", e3relax_load(argv[1], "{\"unit\": 1}", &model), E3RELAX_INVALID_ARGUMENT, "unknown field");
    expect("truncated options", e3relax_load(argv[1], "{\"device\": ", &model), E3RELAX_INVALID_ARGUMENT, "options_json");
    int32_t cuda = -1;
    e3relax_cuda_device_count(&cuda);
    if (cuda == 0) {
        expect("cuda without GPU", e3relax_load(argv[1], "{\"device\": \"cuda\"}", &model), E3RELAX_DEVICE_ERROR,
               "was requested but");
    }
    if (e3relax_load(argv[1], NULL, &model) != E3RELAX_SUCCESS) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], e3relax_last_error());
        return 1;
    }

    double lattice[3][3] = {{5.1, 0.0, 0.0}, {1.3, 4.7, 0.0}, {-0.8, 0.9, 6.2}};
    double positions[3][3] = {{0.1, 0.2, 0.3}, {2.0, 2.1, 2.2}, {3.5, 1.0, 4.4}};
    int32_t numbers[3] = {8, 12, 14};
    double out_positions[3][3];
    double out_lattice[3][3];

    expect("NULL model", e3relax_predict(NULL, 3, numbers, &positions[0][0], &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_ARGUMENT, "model is NULL");
    expect("NULL numbers", e3relax_predict(model, 3, NULL, &positions[0][0], &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_ARGUMENT, "numbers is NULL");
    expect("NULL positions", e3relax_predict(model, 3, numbers, NULL, &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_ARGUMENT, "positions is NULL");
    expect("NULL lattice", e3relax_predict(model, 3, numbers, &positions[0][0], NULL, NULL, NULL),
           E3RELAX_INVALID_ARGUMENT, "lattice is NULL");
    expect("zero atoms", e3relax_predict(model, 0, numbers, &positions[0][0], &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_ARGUMENT, "natoms must be positive");
    expect("negative atoms", e3relax_predict(model, -2, numbers, &positions[0][0], &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_ARGUMENT, "got -2");

    positions[1][2] = NAN;
    expect("NaN position", e3relax_predict(model, 3, numbers, &positions[0][0], &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_STRUCTURE, "position of atom 2 is not finite");
    positions[1][2] = 2.2;
    lattice[2][1] = INFINITY;
    expect("Inf lattice", e3relax_predict(model, 3, numbers, &positions[0][0], &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_STRUCTURE, "lattice vector 3 is not finite");
    double flat[3][3] = {{4.0, 0.0, 0.0}, {0.0, 4.0, 0.0}, {4.0, 4.0, 0.0}};
    expect("singular lattice", e3relax_predict(model, 3, numbers, &positions[0][0], &flat[0][0], NULL, NULL),
           E3RELAX_INVALID_STRUCTURE, "singular");
    lattice[2][1] = 0.9;
    numbers[2] = 200;
    expect("unknown element", e3relax_predict(model, 3, numbers, &positions[0][0], &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_STRUCTURE, "atom 3 has atomic number 200");
    numbers[2] = 14;
    int32_t natoms[2] = {2, 2};
    int32_t batch_numbers[4] = {8, 12, 14, 0};
    double batch_positions[4][3] = {{0.1, 0.2, 0.3}, {2.0, 2.1, 2.2}, {0.1, 0.2, 0.3}, {2.0, 2.1, 2.2}};
    double batch_lattices[2][3][3] = {{{5.1, 0.0, 0.0}, {1.3, 4.7, 0.0}, {-0.8, 0.9, 6.2}},
                                      {{5.1, 0.0, 0.0}, {1.3, 4.7, 0.0}, {-0.8, 0.9, 6.2}}};
    expect("bad atom in a batch",
           e3relax_predict_batch(model, 2, natoms, batch_numbers, &batch_positions[0][0], &batch_lattices[0][0][0], NULL, NULL),
           E3RELAX_INVALID_STRUCTURE, "structure 1: atom 2 has atomic number 0");
    natoms[1] = -1;
    expect("negative count in a batch",
           e3relax_predict_batch(model, 2, natoms, batch_numbers, &batch_positions[0][0], &batch_lattices[0][0][0], NULL, NULL),
           E3RELAX_INVALID_ARGUMENT, "natoms[1] must be positive");
    /* More atoms than a structure may hold. */
    int32_t too_many = E3RELAX_MAX_ATOMS + 1;
    int32_t* many_numbers = calloc((size_t)too_many, sizeof(int32_t));
    double* many_positions = calloc((size_t)too_many * 3, sizeof(double));
    for (int32_t i = 0; i < too_many; i++) many_numbers[i] = 1;
    expect("too many atoms", e3relax_predict(model, too_many, many_numbers, many_positions, &lattice[0][0], NULL, NULL),
           E3RELAX_INVALID_STRUCTURE, "more than the 20000");
    free(many_numbers);
    free(many_positions);
    /* A model whose prediction overflows: an error, never NaN returned. */
    e3relax_model_t* overflowing = NULL;
    if (e3relax_load(argv[3], NULL, &overflowing) != E3RELAX_SUCCESS) {
        fprintf(stderr, "FAIL cannot load %s: %s\n", argv[3], e3relax_last_error());
        failures++;
    } else {
        out_positions[0][0] = 12345.0;
        expect("overflowing prediction",
               e3relax_predict(overflowing, 3, numbers, &positions[0][0], &lattice[0][0], &out_positions[0][0],
                               &out_lattice[0][0]),
               E3RELAX_MODEL_ERROR, "the model cannot handle this input");
        if (out_positions[0][0] != 12345.0) {
            fprintf(stderr, "FAIL: a failed prediction wrote its output\n");
            failures++;
        }
        e3relax_free(overflowing);
    }
    expect("train NULL", e3relax_train(NULL, 0, NULL, NULL), E3RELAX_INVALID_ARGUMENT, "config_json is NULL");
    expect("train bad JSON", e3relax_train("{", 0, NULL, NULL), E3RELAX_INVALID_ARGUMENT, "training config");

    /* And after all of it, a good call works. */
    if (e3relax_predict(model, 3, numbers, &positions[0][0], &lattice[0][0], &out_positions[0][0], &out_lattice[0][0]) !=
        E3RELAX_SUCCESS) {
        fprintf(stderr, "FAIL good call: %s\n", e3relax_last_error());
        failures++;
    }
    e3relax_free(model);
    e3relax_free(NULL);
    printf("catalogue: %d cases ok, %d failed\n", passes, failures);
    return failures == 0 ? 0 : 1;
}
