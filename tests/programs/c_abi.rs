//! The C ABI called as C code calls it: the bad-input catalogue (each case
//! returns its status and a message naming the problem; the process
//! survives), units and coordinates, batches, and threads.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use crate::common::c_api::*;
use crate::common::c_decl::e3relax_status_t::*;
use crate::common::c_decl::*;
use crate::common::*;
use e3relax::relax::Relaxer;

struct Fixture {
    _dir: tempfile::TempDir,
    path: CString,
    crystal: e3relax::Structure,
    expected: e3relax::Structure,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(&small_config(), 31);
    model.save(dir.path()).unwrap();
    let crystal = random_crystal(8, 6);
    let expected = Relaxer::from_model(model).relax(&crystal).unwrap();
    let path = CString::new(dir.path().to_str().unwrap()).unwrap();
    Fixture {
        _dir: dir,
        path,
        crystal,
        expected,
    }
}

#[test]
fn predictions_match_the_rust_api_in_angstrom_bohr_and_fractional() {
    let f = fixture();
    let (numbers, positions, lattice) = arrays(&f.crystal);
    let (status, model) = load(&f.path, None);
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let (status, pos, lat) = predict(model, &numbers, &positions, &lattice);
    assert_eq!(status, E3RELAX_SUCCESS);
    let want_pos: Vec<f64> = f.expected.positions.iter().flatten().copied().collect();
    let want_lat: Vec<f64> = f.expected.lattice.iter().flatten().copied().collect();
    let close = |a: &[f64], b: &[f64], tol: f64| a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol);
    // e3relax_load sets its default thread count (1) for the process: the
    // expected answer may have been computed with another (f32 sums in
    // another order).
    assert!(close(&pos, &want_pos, 1e-5) && close(&lat, &want_lat, 1e-5));

    // Every layer's structure; the last is the prediction.
    let mut layers = 0;
    assert_eq!(
        unsafe { e3relax_num_layers(model, &mut layers) },
        E3RELAX_SUCCESS
    );
    let n = numbers.len();
    let mut all_pos = vec![0.0; layers as usize * n * 3];
    let mut all_lat = vec![0.0; layers as usize * 9];
    let status = unsafe {
        e3relax_predict_layers(
            model,
            n as i32,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
            all_pos.as_mut_ptr(),
            all_lat.as_mut_ptr(),
        )
    };
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let last = layers as usize - 1;
    assert!(close(&all_pos[last * n * 3..], &pos, 1e-12));
    assert!(close(&all_lat[last * 9..], &lat, 1e-12));
    assert!(
        !close(&all_pos[..n * 3], &pos, 1e-9),
        "layer 1 is not the answer"
    );
    let status = unsafe {
        e3relax_predict_layers(
            model,
            n as i32,
            numbers.as_ptr(),
            null(),
            lattice.as_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, E3RELAX_INVALID_ARGUMENT);
    assert!(last_error().contains("positions is NULL"));

    let bohr = 0.529177210903;
    let (status, model_bohr) = load(&f.path, Some(r#"{"length_unit": "bohr"}"#));
    assert_eq!(status, E3RELAX_SUCCESS);
    let in_bohr = |v: &[f64]| v.iter().map(|x| x / bohr).collect::<Vec<_>>();
    let (status, pos_b, lat_b) = predict(
        model_bohr,
        &numbers,
        &in_bohr(&positions),
        &in_bohr(&lattice),
    );
    assert_eq!(status, E3RELAX_SUCCESS);
    assert!(close(&pos_b, &in_bohr(&want_pos), 1e-5) && close(&lat_b, &in_bohr(&want_lat), 1e-5));

    let (status, model_frac) = load(&f.path, Some(r#"{"coordinates": "fractional"}"#));
    assert_eq!(status, E3RELAX_SUCCESS);
    let frac: Vec<f64> = f
        .crystal
        .fractional_positions()
        .iter()
        .flatten()
        .copied()
        .collect();
    let (status, pos_f, _) = predict(model_frac, &numbers, &frac, &lattice);
    assert_eq!(status, E3RELAX_SUCCESS);
    let want_frac: Vec<f64> = f
        .expected
        .fractional_positions()
        .iter()
        .flatten()
        .copied()
        .collect();
    assert!(close(&pos_f, &want_frac, 1e-6));

    // Outputs not wanted: NULL is fine.
    let status = unsafe {
        e3relax_predict(
            model,
            numbers.len() as i32,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, E3RELAX_SUCCESS);
    unsafe {
        for m in [model, model_bohr, model_frac] {
            assert_eq!(e3relax_free(m), E3RELAX_SUCCESS);
        }
        assert_eq!(e3relax_free(null_mut()), E3RELAX_SUCCESS);
    }
}

#[test]
fn batch_of_mixed_sizes_equals_single_calls() {
    let f = fixture();
    let (_, model) = load(&f.path, None);
    let crystals = [
        random_crystal(1, 3),
        random_crystal(2, 7),
        random_crystal(3, 5),
    ];
    let mut natoms = Vec::new();
    let (mut numbers, mut positions, mut lattices) = (Vec::new(), Vec::new(), Vec::new());
    for c in &crystals {
        let (n, p, l) = arrays(c);
        natoms.push(n.len() as i32);
        numbers.extend(n);
        positions.extend(p);
        lattices.extend(l);
    }
    let mut out_pos = vec![0.0; positions.len()];
    let mut out_lat = vec![0.0; lattices.len()];
    let status = unsafe {
        e3relax_predict_batch(
            model,
            3,
            natoms.as_ptr(),
            numbers.as_ptr(),
            positions.as_ptr(),
            lattices.as_ptr(),
            out_pos.as_mut_ptr(),
            out_lat.as_mut_ptr(),
        )
    };
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let mut first = 0;
    for (k, c) in crystals.iter().enumerate() {
        let (n, p, l) = arrays(c);
        let (_, pos, lat) = predict(model, &n, &p, &l);
        assert!(pos
            .iter()
            .zip(&out_pos[3 * first..])
            .all(|(a, b)| (a - b).abs() < 1e-5));
        assert!(lat
            .iter()
            .zip(&out_lat[9 * k..])
            .all(|(a, b)| (a - b).abs() < 1e-5));
        first += n.len();
    }
    // A bad structure in the middle is named by its index.
    numbers[4] = 0;
    let status = unsafe {
        e3relax_predict_batch(
            model,
            3,
            natoms.as_ptr(),
            numbers.as_ptr(),
            positions.as_ptr(),
            lattices.as_ptr(),
            out_pos.as_mut_ptr(),
            out_lat.as_mut_ptr(),
        )
    };
    assert_eq!(status, E3RELAX_INVALID_STRUCTURE);
    assert!(
        last_error().contains("structure 1: atom 2 has atomic number 0"),
        "{}",
        last_error()
    );
    unsafe { e3relax_free(model) };
}

#[test]
fn bad_input_catalogue() {
    let f = fixture();
    let (numbers, positions, lattice) = arrays(&f.crystal);
    let (_, model) = load(&f.path, None);
    let n = numbers.len() as i32;
    let out = vec![0.0; positions.len()];
    let out_lat = [0.0; 9];
    let call = |model: *const e3relax_model_t,
                n: i32,
                z: *const i32,
                p: *const f64,
                l: *const f64| unsafe {
        e3relax_predict(
            model,
            n,
            z,
            p,
            l,
            out.as_ptr() as *mut f64,
            out_lat.as_ptr() as *mut f64,
        )
    };
    let expect = |status: e3relax_status_t, code: e3relax_status_t, needle: &str| {
        assert_eq!(status, code, "{}", last_error());
        assert!(
            last_error().contains(needle),
            "'{needle}' not in '{}'",
            last_error()
        );
    };
    // NULL pointers, each named.
    expect(
        call(
            null(),
            n,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
        ),
        E3RELAX_INVALID_ARGUMENT,
        "model is NULL",
    );
    expect(
        call(model, n, null(), positions.as_ptr(), lattice.as_ptr()),
        E3RELAX_INVALID_ARGUMENT,
        "numbers is NULL",
    );
    expect(
        call(model, n, numbers.as_ptr(), null(), lattice.as_ptr()),
        E3RELAX_INVALID_ARGUMENT,
        "positions is NULL",
    );
    expect(
        call(model, n, numbers.as_ptr(), positions.as_ptr(), null()),
        E3RELAX_INVALID_ARGUMENT,
        "lattice is NULL",
    );
    // Counts.
    expect(
        call(
            model,
            0,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
        ),
        E3RELAX_INVALID_ARGUMENT,
        "natoms must be positive, got 0",
    );
    expect(
        call(
            model,
            -5,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
        ),
        E3RELAX_INVALID_ARGUMENT,
        "got -5",
    );
    // NaN / Inf.
    let mut bad = positions.clone();
    bad[4] = f64::NAN;
    expect(
        call(model, n, numbers.as_ptr(), bad.as_ptr(), lattice.as_ptr()),
        E3RELAX_INVALID_STRUCTURE,
        "position of atom 2 is not finite",
    );
    let mut bad_lat = lattice.clone();
    bad_lat[8] = f64::INFINITY;
    expect(
        call(
            model,
            n,
            numbers.as_ptr(),
            positions.as_ptr(),
            bad_lat.as_ptr(),
        ),
        E3RELAX_INVALID_STRUCTURE,
        "lattice vector 3 is not finite",
    );
    // Singular lattice.
    let flat = [4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0];
    expect(
        call(
            model,
            n,
            numbers.as_ptr(),
            positions.as_ptr(),
            flat.as_ptr(),
        ),
        E3RELAX_INVALID_STRUCTURE,
        "singular",
    );
    // Unknown atomic numbers (the table holds 0..117).
    for z in [0, -3, 118, 1000] {
        let mut zs = numbers.clone();
        zs[1] = z;
        expect(
            call(model, n, zs.as_ptr(), positions.as_ptr(), lattice.as_ptr()),
            E3RELAX_INVALID_STRUCTURE,
            &format!("atom 2 has atomic number {z}"),
        );
    }
    // Overlapping atoms.
    let mut overlap = positions.clone();
    overlap[3..6].copy_from_slice(&positions[0..3]);
    expect(
        call(
            model,
            n,
            numbers.as_ptr(),
            overlap.as_ptr(),
            lattice.as_ptr(),
        ),
        E3RELAX_INVALID_STRUCTURE,
        "atoms 1 and 2",
    );

    // Loading: missing, truncated, foreign files; wrong options; CUDA without a GPU.
    let dir = tempfile::tempdir().unwrap();
    let missing = CString::new(dir.path().join("nope").to_str().unwrap()).unwrap();
    let (status, handle) = load(&missing, None);
    assert!(handle.is_null());
    expect(status, E3RELAX_MODEL_ERROR, "not a model directory");
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let src = std::path::Path::new(f.path.to_str().unwrap());
    std::fs::copy(src.join("config.json"), copy.join("config.json")).unwrap();
    let weights = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(
        copy.join("model.safetensors"),
        &weights[..weights.len() / 3],
    )
    .unwrap();
    let copy_c = CString::new(copy.to_str().unwrap()).unwrap();
    let (status, handle) = load(&copy_c, None);
    assert!(handle.is_null());
    expect(
        status,
        E3RELAX_MODEL_ERROR,
        "not a readable safetensors file",
    );
    std::fs::write(
        copy.join("model.safetensors"),
        b"\x89PNG\r\n\x1a\n not weights",
    )
    .unwrap();
    expect(
        load(&copy_c, None).0,
        E3RELAX_MODEL_ERROR,
        "not a readable safetensors file",
    );
    std::fs::write(copy.join("config.json"), b"{ not json").unwrap();
    expect(load(&copy_c, None).0, E3RELAX_MODEL_ERROR, "config");
    expect(
        load(&f.path, Some("{\"length_unit\": \"furlong\"}")).0,
        E3RELAX_INVALID_ARGUMENT,
        "furlong",
    );
    expect(
        load(&f.path, Some("{\"devcie\": \"cpu\"}")).0,
        E3RELAX_INVALID_ARGUMENT,
        "unknown field `devcie`",
    );
    expect(
        load(&f.path, Some("[1, 2")).0,
        E3RELAX_INVALID_ARGUMENT,
        "options_json",
    );
    // Issue 23.7: a bad value names its option, not a line and column.
    for (options, needle) in [
        (
            "{\"device\": \"cpu\", \"fixed_cell\": false, \"batch_size\": -1}",
            "options_json: batch_size: invalid value: integer `-1`",
        ),
        (
            "{\"symmetry_tolerance\": \"tight\"}",
            "options_json: symmetry_tolerance: invalid type: string",
        ),
        (
            "{\"fixed_cell\": 1}",
            "options_json: fixed_cell: invalid type",
        ),
    ] {
        let (status, _) = load(&f.path, Some(options));
        expect(status, E3RELAX_INVALID_ARGUMENT, needle);
        assert!(!last_error().contains("column"), "{}", last_error());
    }
    if !e3relax::runtime::cuda_available() {
        expect(
            load(&f.path, Some("{\"device\": \"cuda\"}")).0,
            E3RELAX_DEVICE_ERROR,
            "cuda:0 was requested but",
        );
    }
    // NULL or empty path: the shipped default model.
    for path in [null(), c"".as_ptr(), c"  ".as_ptr()] {
        let mut shipped = null_mut();
        let status = unsafe { e3relax_load(path, null(), &mut shipped) };
        assert_eq!(status, E3RELAX_SUCCESS);
        let mut layers = 0;
        assert_eq!(
            unsafe { e3relax_num_layers(shipped, &mut layers) },
            E3RELAX_SUCCESS
        );
        assert_eq!(layers, 4);
        unsafe { e3relax_free(shipped) };
    }
    let status = unsafe { e3relax_load(f.path.as_ptr(), null(), null_mut()) };
    expect(status, E3RELAX_INVALID_ARGUMENT, "model is NULL");
    let bad_utf8 = [0xffu8, 0xfe, 0];
    let status =
        unsafe { e3relax_load(bad_utf8.as_ptr() as *const c_char, null(), &mut null_mut()) };
    expect(status, E3RELAX_INVALID_ARGUMENT, "not valid UTF-8");
    // Other entry points.
    expect(
        e3relax_set_num_threads(0, 0),
        E3RELAX_INVALID_ARGUMENT,
        "threads must be in 1..=1024, got 0",
    );
    // Once started libgomp threads one by one until pids ran out.
    expect(
        e3relax_set_num_threads(100_000, 0),
        E3RELAX_INVALID_ARGUMENT,
        "threads must be in 1..=1024, got 100000",
    );
    expect(
        e3relax_set_num_threads(1, -3),
        E3RELAX_INVALID_ARGUMENT,
        "interop threads must be in 0..=1024",
    );
    expect(
        e3relax_set_num_threads(1, 5000),
        E3RELAX_INVALID_ARGUMENT,
        "interop threads must be in 0..=1024",
    );
    expect(
        unsafe { e3relax_cuda_device_count(null_mut()) },
        E3RELAX_INVALID_ARGUMENT,
        "count is NULL",
    );
    expect(
        unsafe { e3relax_train(null(), 0, None, null_mut()) },
        E3RELAX_INVALID_ARGUMENT,
        "config_json is NULL",
    );
    let bad_train = CString::new("{\"data\": []}").unwrap();
    expect(
        unsafe { e3relax_train(bad_train.as_ptr(), 0, None, null_mut()) },
        E3RELAX_INVALID_ARGUMENT,
        "no training data",
    );

    // After all that, the handle still works.
    let (status, _, _) = predict(model, &numbers, &positions, &lattice);
    assert_eq!(status, E3RELAX_SUCCESS);
    unsafe { e3relax_free(model) };
    let version = unsafe { CStr::from_ptr(e3relax_version()) }
        .to_str()
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(e3relax_abi_version(), 4);
    assert_eq!(
        unsafe { CStr::from_ptr(e3relax_torch_version()) }
            .to_str()
            .unwrap(),
        "2.11.0"
    );
}

/// The limits the header states are the ones the library enforces.
#[test]
fn header_limits_are_the_enforced_ones() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/e3relax.h")).unwrap();
    let define = |name: &str| -> String {
        header
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} not in the header"))
            .trim()
            .trim_matches('"')
            .to_string()
    };
    assert_eq!(
        define("E3RELAX_MAX_THREADS"),
        e3relax::runtime::MAX_THREADS.to_string()
    );
    assert_eq!(
        define("E3RELAX_MAX_ATOMS"),
        e3relax::structure::MAX_ATOMS.to_string()
    );
    assert_eq!(
        define("E3RELAX_MAX_TEXT_BYTES"),
        e3relax::io::MAX_TEXT_BYTES.to_string()
    );
    assert_eq!(
        define("E3RELAX_ABI_VERSION"),
        e3relax::ABI_VERSION.to_string()
    );
    assert_eq!(define("E3RELAX_VERSION"), env!("CARGO_PKG_VERSION"));
    // The move-mask axes src/ffi accepts (0 and 1, see the frozen test).
    assert_eq!(define("E3RELAX_AXES_CARTESIAN"), "0");
    assert_eq!(define("E3RELAX_AXES_LATTICE"), "1");
    assert_eq!(
        define("E3RELAX_TORCH_VERSION"),
        e3relax::runtime::LIBTORCH_VERSION
    );
    // The Fortran module's constant is the one hand-written copy.
    let fortran = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bindings/fortran/e3relax.f90"
    ))
    .unwrap();
    let fortran_abi = fortran
        .lines()
        .find_map(|l| l.split("E3RELAX_FORTRAN_ABI_VERSION = ").nth(1))
        .expect("E3RELAX_FORTRAN_ABI_VERSION in the Fortran module");
    assert_eq!(fortran_abi.trim(), e3relax::ABI_VERSION.to_string());
    // A structure over the atom limit is refused with that message.
    let n = e3relax::structure::MAX_ATOMS + 1;
    let big = e3relax::Structure::new_unchecked(
        [[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [0.0, 0.0, 1000.0]],
        (0..n)
            .map(|i| {
                [
                    (i % 100) as f64 * 9.0,
                    (i / 100 % 100) as f64 * 9.0,
                    (i / 10000) as f64 * 9.0,
                ]
            })
            .collect(),
        vec![1; n],
    );
    let e = big.validate().unwrap_err().to_string();
    assert!(e.contains("20001 atoms: more than the 20000"), "{e}");
}

#[test]
fn eight_threads_on_one_handle_and_on_separate_handles_match_serial() {
    let f = fixture();
    let crystals: Vec<_> = (0..8)
        .map(|k| random_crystal(50 + k, 3 + k as usize))
        .collect();
    let (_, shared) = load(&f.path, None);
    let serial: Vec<(Vec<f64>, Vec<f64>)> = crystals
        .iter()
        .map(|c| {
            let (n, p, l) = arrays(c);
            let (status, pos, lat) = predict(shared, &n, &p, &l);
            assert_eq!(status, E3RELAX_SUCCESS);
            (pos, lat)
        })
        .collect();
    struct Handle(*mut e3relax_model_t);
    unsafe impl Send for Handle {}
    unsafe impl Sync for Handle {}
    let shared = Handle(shared);
    for separate in [false, true] {
        std::thread::scope(|scope| {
            let threads: Vec<_> = crystals
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    let shared = &shared;
                    let path = &f.path;
                    scope.spawn(move || {
                        let own = if separate {
                            load(path, None).1
                        } else {
                            shared.0
                        };
                        let (n, p, l) = arrays(c);
                        let mut results = Vec::new();
                        for _ in 0..3 {
                            let (status, pos, lat) = predict(own, &n, &p, &l);
                            assert_eq!(status, E3RELAX_SUCCESS, "thread {k}: {}", last_error());
                            results.push((pos, lat));
                        }
                        if separate {
                            unsafe { e3relax_free(own) };
                        }
                        results
                    })
                })
                .collect();
            for (k, t) in threads.into_iter().enumerate() {
                for (pos, lat) in t.join().unwrap() {
                    assert_eq!(
                        pos, serial[k].0,
                        "thread {k} (separate handles: {separate})"
                    );
                    assert_eq!(lat, serial[k].1);
                }
            }
        });
    }
    unsafe { e3relax_free(shared.0) };
}

#[test]
fn train_through_the_c_abi_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pairs/bulk-small");
    let config = format!(
        r#"{{"data": [{:?}], "output": {:?}, "max_epochs": 2, "batch_size": 8, "lr": 0.001, "validation_fraction": 0.25,
            "model": {{"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "rbf_cutoff": 30.0, "envelope_exponent": 5,
                      "num_elements": 118, "graph_radius": 5.0, "max_neighbors": 16}}}}"#,
        data,
        dir.path().join("run")
    );
    /// Collects the events; asks to stop at the round named by the first
    /// entry (a number), if any.
    unsafe extern "C" fn collect(json: *const c_char, user: *mut std::ffi::c_void) -> i32 {
        let events = &mut *(user as *mut Vec<String>);
        let stop_after: usize = events[0].parse().unwrap_or(usize::MAX);
        events.push(CStr::from_ptr(json).to_string_lossy().into_owned());
        let rounds = events
            .iter()
            .filter(|e| e.contains("\"event\":\"round\""))
            .count();
        i32::from(rounds >= stop_after)
    }
    let train_with = |config: &str, resume: i32, stop_after: &str| {
        let mut events: Vec<String> = vec![stop_after.to_string()];
        let c = CString::new(config).unwrap();
        let status = unsafe {
            e3relax_train(
                c.as_ptr(),
                resume,
                Some(collect),
                &mut events as *mut Vec<String> as *mut std::ffi::c_void,
            )
        };
        (status, events)
    };
    let (status, events) = train_with(&config, 0, "never");
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let rounds = |events: &[String]| {
        events
            .iter()
            .filter(|e| e.contains("\"event\":\"round\""))
            .count()
    };
    assert_eq!(rounds(&events), 2);
    assert!(events.last().unwrap().contains("\"event\":\"done\""));
    assert!(events
        .last()
        .unwrap()
        .contains("\"stopped_by_caller\":false"));
    // The callback stops a run through its return value: after the first
    // round of five, with that round committed; a resume finishes it.
    let stopped = config
        .replace("\"max_epochs\": 2", "\"max_epochs\": 5")
        .replace("run\"", "stopped\"");
    let (status, events) = train_with(&stopped, 0, "1");
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    assert_eq!(rounds(&events), 1);
    let done = events.last().unwrap();
    assert!(
        done.contains("\"stopped_by_caller\":true") && done.contains("\"epochs\":1"),
        "{done}"
    );
    let (status, events) = train_with(&stopped, 1, "never");
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    assert_eq!(rounds(&events), 4);
    assert!(dir.path().join("run/best/model.safetensors").is_file());
}

/// `e3relax_predict_frozen`: one prediction with a move mask through the C
/// ABI, fixed cell and variable cell, single and batched.
fn predict_frozen(
    model: *const e3relax_model_t,
    numbers: &[i32],
    positions: &[f64],
    lattice: &[f64],
    mask: &[i32],
    axes: i32,
) -> (e3relax_status_t, Vec<f64>, Vec<f64>) {
    let mut out_pos = vec![0.0; positions.len()];
    let mut out_lat = vec![0.0; 9];
    let status = unsafe {
        e3relax_predict_frozen(
            model,
            numbers.len() as i32,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
            mask.as_ptr(),
            axes,
            out_pos.as_mut_ptr(),
            out_lat.as_mut_ptr(),
        )
    };
    (status, out_pos, out_lat)
}

#[test]
fn frozen_atoms_stay_put_through_the_c_abi() {
    let f = fixture();
    let (numbers, positions, lattice) = arrays(&f.crystal);
    let n = numbers.len();
    // Atoms 1 and 3 frozen, atom 2 frozen along z only.
    let mut mask = vec![1; 3 * n];
    mask[0..3].fill(0);
    mask[6..9].fill(0);
    mask[5] = 0;
    let (status, fixed) = load(&f.path, Some(r#"{"fixed_cell": true}"#));
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let (status, pos, lat) = predict_frozen(fixed, &numbers, &positions, &lattice, &mask, 0);
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    assert_eq!(lat, lattice);
    for k in 0..3 * n {
        if mask[k] == 0 {
            assert_eq!(pos[k].to_bits(), positions[k].to_bits(), "coordinate {k}");
        }
    }
    let (_, free, _) = predict(fixed, &numbers, &positions, &lattice);
    assert!(
        (free[0] - positions[0]).abs() > 1e-6,
        "the model moves atom 1 when free"
    );
    assert!(
        (pos[3] - positions[3]).abs() > 1e-6,
        "free atoms still move"
    );
    // NULL mask: the plain prediction.
    let mut none = vec![0.0; 3 * n];
    let status = unsafe {
        e3relax_predict_frozen(
            fixed,
            n as i32,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
            null(),
            0,
            none.as_mut_ptr(),
            null_mut(),
        )
    };
    assert_eq!(status, E3RELAX_SUCCESS);
    assert_eq!(none, free);
    // Axes other than 0 and 1 are refused, naming the argument.
    let (status, _, _) = predict_frozen(fixed, &numbers, &positions, &lattice, &mask, 7);
    assert_eq!(status, E3RELAX_INVALID_ARGUMENT);
    assert!(last_error().contains("mask_axes"), "{}", last_error());
    unsafe { e3relax_free(fixed) };

    // Variable cell: frozen atoms keep their fractional coordinates.
    let (status, model) = load(&f.path, None);
    assert_eq!(status, E3RELAX_SUCCESS);
    let all_frozen_rows: Vec<i32> = (0..3 * n).map(|k| i32::from(k >= 9)).collect();
    for axes in [0, 1] {
        let (status, pos, lat) = predict_frozen(
            model,
            &numbers,
            &positions,
            &lattice,
            &all_frozen_rows,
            axes,
        );
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
        let lat: [[f64; 3]; 3] = [0, 1, 2].map(|r| [lat[3 * r], lat[3 * r + 1], lat[3 * r + 2]]);
        let out = e3relax::Structure::new(
            lat,
            pos.chunks(3).map(|c| [c[0], c[1], c[2]]).collect(),
            f.crystal.numbers.clone(),
        )
        .unwrap();
        let before = f.crystal.fractional_positions();
        let after = out.fractional_positions();
        for i in 0..3 {
            for k in 0..3 {
                assert!(
                    (before[i][k] - after[i][k]).abs() < 1e-12,
                    "atom {i}, axes {axes}"
                );
            }
        }
        // Batched: the same answer for the same structure twice.
        let counts = [n as i32, n as i32];
        let numbers2 = [numbers.clone(), numbers.clone()].concat();
        let positions2 = [positions.clone(), positions.clone()].concat();
        let lattices2 = [lattice.clone(), lattice.clone()].concat();
        let masks2 = [vec![1; 3 * n], all_frozen_rows.clone()].concat();
        let mut out_pos = vec![0.0; 6 * n];
        let status = unsafe {
            e3relax_predict_batch_frozen(
                model,
                2,
                counts.as_ptr(),
                numbers2.as_ptr(),
                positions2.as_ptr(),
                lattices2.as_ptr(),
                masks2.as_ptr(),
                axes,
                out_pos.as_mut_ptr(),
                null_mut(),
            )
        };
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(close(&out_pos[3 * n..], &pos));
        let (_, free, _) = predict(model, &numbers, &positions, &lattice);
        assert!(close(&out_pos[..3 * n], &free));
    }
    unsafe { e3relax_free(model) };
}

#[test]
fn batched_predictions_report_progress_to_the_callback() {
    unsafe extern "C" fn record(done: i32, total: i32, user_data: *mut std::ffi::c_void) {
        let calls = unsafe { &mut *(user_data as *mut Vec<(i32, i32)>) };
        calls.push((done, total));
    }
    let f = fixture();
    let (numbers, positions, lattice) = arrays(&f.crystal);
    let n = numbers.len();
    let (status, model) = load(&f.path, Some(r#"{"batch_size": 2}"#));
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let mut calls: Vec<(i32, i32)> = Vec::new();
    let user_data = &mut calls as *mut Vec<(i32, i32)> as *mut std::ffi::c_void;
    assert_eq!(
        unsafe { e3relax_set_predict_progress(model, Some(record), user_data) },
        E3RELAX_SUCCESS
    );
    let batch = |model| {
        let counts = [n as i32; 5];
        let mut out = vec![0.0; 15 * n];
        let status = unsafe {
            e3relax_predict_batch(
                model,
                5,
                counts.as_ptr(),
                numbers.repeat(5).as_ptr(),
                positions.repeat(5).as_ptr(),
                lattice.repeat(5).as_ptr(),
                out.as_mut_ptr(),
                null_mut(),
            )
        };
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    };
    batch(model);
    assert_eq!(calls, [(2, 5), (4, 5), (5, 5)]);
    // Removed: no more calls.
    assert_eq!(
        unsafe { e3relax_set_predict_progress(model, None, null_mut()) },
        E3RELAX_SUCCESS
    );
    batch(model);
    assert_eq!(calls.len(), 3);
    assert_eq!(
        unsafe { e3relax_set_predict_progress(null_mut(), Some(record), null_mut()) },
        E3RELAX_INVALID_ARGUMENT
    );
    unsafe { e3relax_free(model) };
}

/// Issue 23.15: model files must be regular files: a FIFO `config.json`
/// is refused at once (it used to block the loader forever), a
/// `model.safetensors` linked to `/dev/zero` is refused as what it is.
#[test]
fn model_files_must_be_regular_files() {
    let f = fixture();
    let src = std::path::PathBuf::from(f.path.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    // Loads in a thread: a loader that blocks fails the test instead of
    // hanging it.
    let load_in_thread = |model: &std::path::Path| {
        let path = CString::new(model.to_str().unwrap()).unwrap();
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (status, handle) = load(&path, None);
            if !handle.is_null() {
                unsafe { e3relax_free(handle) };
            }
            let _ = send.send((status, last_error()));
        });
        receive
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the loader blocked")
    };

    let fifo = dir.path().join("fifo-config");
    std::fs::create_dir(&fifo).unwrap();
    std::fs::copy(
        src.join("model.safetensors"),
        fifo.join("model.safetensors"),
    )
    .unwrap();
    let name = CString::new(fifo.join("config.json").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    let (status, message) = load_in_thread(&fifo);
    assert_eq!(status, E3RELAX_IO_ERROR, "{message}");
    assert!(
        message.contains("config.json: not a regular file (a FIFO)"),
        "{message}"
    );

    let zero = dir.path().join("zero-weights");
    std::fs::create_dir(&zero).unwrap();
    std::fs::copy(src.join("config.json"), zero.join("config.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("model.safetensors")).unwrap();
    let (status, message) = load_in_thread(&zero);
    assert_eq!(status, E3RELAX_MODEL_ERROR, "{message}");
    assert!(
        message.contains("model.safetensors: not a regular file (a character device)"),
        "{message}"
    );
}

#[test]
fn ensemble_uncertainty_through_the_c_abi() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config().invariant();
    small_model(&config, 41).save(dir.path()).unwrap();
    small_model(&config, 42)
        .save(&dir.path().join("members/b"))
        .unwrap();
    std::fs::write(
        dir.path().join("ensemble.json"),
        r#"{"members": ["members/b"]}"#,
    )
    .unwrap();
    let path = CString::new(dir.path().to_str().unwrap()).unwrap();
    let crystal = random_crystal(8, 6);
    let expected = Relaxer::load_ensemble(dir.path(), e3relax::DeviceRequest::Cpu)
        .unwrap()
        .relax_many(std::slice::from_ref(&crystal), &Default::default())
        .unwrap()
        .remove(0);
    let (numbers, positions, lattice) = arrays(&crystal);
    let n = numbers.len();
    let run = |model: *const e3relax_model_t, mask: Option<&Vec<i32>>| {
        let mut pos = vec![0.0; 3 * n];
        let mut atoms = vec![0.0; n];
        let (mut cell, mut volume) = (0.0, 0.0);
        let status = unsafe {
            e3relax_predict_uncertainty(
                model,
                n as i32,
                numbers.as_ptr(),
                positions.as_ptr(),
                lattice.as_ptr(),
                mask.map_or(null(), |m: &Vec<i32>| m.as_ptr()),
                0,
                pos.as_mut_ptr(),
                null_mut(),
                atoms.as_mut_ptr(),
                &mut cell,
                &mut volume,
            )
        };
        (status, pos, atoms, cell, volume)
    };
    // A handle without the ensemble says how to get one.
    let (status, single) = load(&path, None);
    assert_eq!(status, E3RELAX_SUCCESS);
    assert_eq!(run(single, None).0, E3RELAX_INVALID_ARGUMENT);
    assert!(last_error().contains("uncertainty"), "{}", last_error());
    unsafe { e3relax_free(single) };
    let (status, model) = load(&path, Some(r#"{"uncertainty": true}"#));
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let (status, pos, atoms, cell, volume) = run(model, None);
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    // With the first atom frozen, its fractional coordinates stay.
    let mut frozen = vec![1; 3 * n];
    frozen[..3].fill(0);
    let (status, kept, _, _, _) = run(model, Some(&frozen));
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let mut out_lattice = vec![0.0; 9];
    let status = unsafe {
        e3relax_predict_uncertainty(
            model,
            n as i32,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
            frozen.as_ptr(),
            0,
            null_mut(),
            out_lattice.as_mut_ptr(),
            null_mut(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, E3RELAX_SUCCESS);
    let l: [[f64; 3]; 3] = [0, 1, 2].map(|r| {
        [
            out_lattice[3 * r],
            out_lattice[3 * r + 1],
            out_lattice[3 * r + 2],
        ]
    });
    let out = e3relax::Structure::new(
        l,
        kept.chunks(3).map(|c| [c[0], c[1], c[2]]).collect(),
        crystal.numbers.clone(),
    )
    .unwrap();
    let (f0, f1) = (
        crystal.fractional_positions()[0],
        out.fractional_positions()[0],
    );
    assert!(
        (0..3).all(|k| (f0[k] - f1[k]).abs() < 1e-12),
        "{f0:?} {f1:?}"
    );
    let u = expected.uncertainty.unwrap();
    assert!(atoms
        .iter()
        .zip(&u.atoms)
        .all(|(a, b)| (a - b).abs() < 1e-5));
    assert!(atoms.iter().all(|&a| a > 0.0));
    assert!((cell - u.cell).abs() < 1e-5 && (volume - u.volume).abs() < 1e-3);
    let want: Vec<f64> = expected
        .relaxed
        .positions
        .iter()
        .flatten()
        .copied()
        .collect();
    assert!(pos.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    unsafe { e3relax_free(model) };
    // Bohr: lengths scale, the strain spread does not.
    let (_, bohr) = load(
        &path,
        Some(r#"{"uncertainty": true, "length_unit": "bohr"}"#),
    );
    let to_bohr = 1.0 / 0.529177210903;
    let scaled: Vec<f64> = positions.iter().map(|x| x * to_bohr).collect();
    let scaled_lattice: Vec<f64> = lattice.iter().map(|x| x * to_bohr).collect();
    let mut atoms_bohr = vec![0.0; n];
    let mut cell_bohr = 0.0;
    let status = unsafe {
        e3relax_predict_uncertainty(
            bohr,
            n as i32,
            numbers.as_ptr(),
            scaled.as_ptr(),
            scaled_lattice.as_ptr(),
            null(),
            0,
            null_mut(),
            null_mut(),
            atoms_bohr.as_mut_ptr(),
            &mut cell_bohr,
            null_mut(),
        )
    };
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    assert!((atoms_bohr[0] - atoms[0] * to_bohr).abs() < 1e-4);
    assert!((cell_bohr - cell).abs() < 1e-5);
    unsafe { e3relax_free(bohr) };
    // A bad trust option names itself.
    let (status, _) = load(&path, Some(r#"{"trust": [0.1, -1]}"#));
    assert_eq!(status, E3RELAX_INVALID_ARGUMENT);
    assert!(last_error().contains("trust"), "{}", last_error());
}

/// The surface trust through the C ABI: refused by name without the
/// energy-surface heads or their measured scales; with scales far above
/// anything the heads say, the input comes back; with tiny ones, the raw
/// prediction.
#[test]
fn surface_trust_through_the_c_abi() {
    let f = fixture();
    let (status, _) = load(&f.path, Some(r#"{"surface_trust": 1}"#));
    assert_ne!(status, E3RELAX_SUCCESS);
    assert!(last_error().contains("surface_heads"), "{}", last_error());
    let (status, _) = load(&f.path, Some(r#"{"surface_trust": 0}"#));
    assert_eq!(status, E3RELAX_INVALID_ARGUMENT);
    assert!(last_error().contains("surface_trust"), "{}", last_error());

    let dir = tempfile::tempdir().unwrap();
    let config = e3relax::ModelConfig {
        surface_heads: true,
        ..small_config()
    };
    let model = small_model(&config, 5);
    model.save(dir.path()).unwrap();
    let raw = Relaxer::from_model(model).relax(&f.crystal).unwrap();
    let path = CString::new(dir.path().to_str().unwrap()).unwrap();
    let (status, _) = load(&path, Some(r#"{"surface_trust": 1}"#));
    assert_ne!(status, E3RELAX_SUCCESS);
    assert!(
        last_error().contains("surface_trust.json"),
        "{}",
        last_error()
    );
    let (numbers, positions, lattice) = arrays(&f.crystal);
    let flat = |s: &e3relax::Structure| -> (Vec<f64>, Vec<f64>) {
        (
            s.positions.iter().flatten().copied().collect(),
            s.lattice.iter().flatten().copied().collect(),
        )
    };
    for (scale, expected) in [(1e12, &f.crystal), (1e-12, &raw)] {
        std::fs::write(
            dir.path().join("surface_trust.json"),
            format!(r#"{{"force": {scale}, "virial": {scale}, "structures": 1, "data": []}}"#),
        )
        .unwrap();
        let (status, model) = load(&path, Some(r#"{"surface_trust": 1}"#));
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
        let (status, pos, lat) = predict(model, &numbers, &positions, &lattice);
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
        let (want_pos, want_lat) = flat(expected);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(
            close(&pos, &want_pos) && close(&lat, &want_lat),
            "scale {scale}"
        );
        unsafe { e3relax_free(model) };
    }
    // A model whose scales name a default uses it unless the caller says
    // otherwise (null: the raw prediction).
    std::fs::write(
        dir.path().join("surface_trust.json"),
        r#"{"force": 1e12, "virial": 1e12, "structures": 1, "data": [], "default": 1}"#,
    )
    .unwrap();
    let (input_pos, input_lat) = flat(&f.crystal);
    let (raw_pos, raw_lat) = flat(&raw);
    for (options, want_pos, want_lat) in [
        (None, &input_pos, &input_lat),
        (Some(r#"{"surface_trust": null}"#), &raw_pos, &raw_lat),
    ] {
        let (status, model) = load(&path, options);
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
        let (status, pos, lat) = predict(model, &numbers, &positions, &lattice);
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(
            close(&pos, want_pos) && close(&lat, want_lat),
            "{options:?}"
        );
        unsafe { e3relax_free(model) };
    }
}

/// The line search through the C ABI: refused by name for a model without
/// energy-surface heads; with heads, the handle's prediction is the Rust
/// library's.
#[test]
fn line_search_through_the_c_abi() {
    let f = fixture();
    let (status, _) = load(&f.path, Some(r#"{"line_search": true}"#));
    assert_eq!(status, E3RELAX_INVALID_ARGUMENT);
    assert!(last_error().contains("surface_heads"), "{}", last_error());

    let dir = tempfile::tempdir().unwrap();
    let config = e3relax::ModelConfig {
        surface_heads: true,
        ..small_config()
    };
    let model = small_model(&config, 5);
    model.save(dir.path()).unwrap();
    let options = e3relax::RelaxOptions {
        line_search: true,
        ..Default::default()
    };
    let expected = Relaxer::from_model(model)
        .relax_many(std::slice::from_ref(&f.crystal), &options)
        .unwrap()
        .remove(0)
        .relaxed;
    let path = CString::new(dir.path().to_str().unwrap()).unwrap();
    let (status, model) = load(&path, Some(r#"{"line_search": true}"#));
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let (numbers, positions, lattice) = arrays(&f.crystal);
    let (status, pos, lat) = predict(model, &numbers, &positions, &lattice);
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let want_pos: Vec<f64> = expected.positions.iter().flatten().copied().collect();
    let want_lat: Vec<f64> = expected.lattice.iter().flatten().copied().collect();
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
    assert!(close(&pos, &want_pos) && close(&lat, &want_lat));
    unsafe { e3relax_free(model) };
}

/// `e3relax_predict_with`: settings for one call on a handle that keeps
/// its own, every layer in one call, and bad combinations refused by name.
#[test]
fn options_per_call() {
    let f = fixture();
    let (numbers, positions, lattice) = arrays(&f.crystal);
    let (status, model) = load(&f.path, None);
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    let n = numbers.len();
    let call =
        |options: Option<&str>, out_pos: &mut [f64], out_lat: &mut [f64], mask: *const i32| {
            let options = options.map(|o| CString::new(o).unwrap());
            unsafe {
                e3relax_predict_with(
                    model,
                    options.as_ref().map_or(null(), |o| o.as_ptr()),
                    1,
                    &(n as i32),
                    numbers.as_ptr(),
                    positions.as_ptr(),
                    lattice.as_ptr(),
                    mask,
                    0,
                    out_pos.as_mut_ptr(),
                    out_lat.as_mut_ptr(),
                    null_mut(),
                    null_mut(),
                    null_mut(),
                )
            }
        };
    let (status, want_pos, want_lat) = predict(model, &numbers, &positions, &lattice);
    assert_eq!(status, E3RELAX_SUCCESS);
    // No options: the handle's settings, bit for bit.
    let (mut pos, mut lat) = (vec![0.0; 3 * n], vec![0.0; 9]);
    for options in [None, Some(""), Some("{}")] {
        assert_eq!(call(options, &mut pos, &mut lat, null()), E3RELAX_SUCCESS);
        assert_eq!((&pos, &lat), (&want_pos, &want_lat));
    }
    // A fixed cell for this call only.
    let status = call(Some(r#"{"fixed_cell": true}"#), &mut pos, &mut lat, null());
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    assert_eq!(lat, lattice);
    assert_ne!(pos, positions);
    let (_, again_pos, again_lat) = predict(model, &numbers, &positions, &lattice);
    assert_eq!((again_pos, again_lat), (want_pos.clone(), want_lat.clone()));
    // Raw output (no symmetrisation) and a trust policy are accepted.
    for options in [
        r#"{"symmetry_tolerance": null}"#,
        r#"{"trust": [0.05, 0.1]}"#,
    ] {
        assert_eq!(
            call(Some(options), &mut pos, &mut lat, null()),
            E3RELAX_SUCCESS
        );
    }
    // Every layer: the last is the prediction.
    let mut layers = 0;
    assert_eq!(
        unsafe { e3relax_num_layers(model, &mut layers) },
        E3RELAX_SUCCESS
    );
    let layers = layers as usize;
    let (mut all_pos, mut all_lat) = (vec![0.0; layers * 3 * n], vec![0.0; layers * 9]);
    let status = call(
        Some(r#"{"layers": true}"#),
        &mut all_pos,
        &mut all_lat,
        null(),
    );
    assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
    assert_eq!(&all_pos[(layers - 1) * 3 * n..], &want_pos[..]);
    assert_eq!(&all_lat[(layers - 1) * 9..], &want_lat[..]);
    // Refused, by name: an unknown key, a bad value, layers with a mask,
    // uncertainty without an ensemble.
    let mask = vec![1; 3 * n];
    for (options, mask, named) in [
        (r#"{"fixed_cel": true}"#, null(), "fixed_cel"),
        (r#"{"batch_size": 0}"#, null(), "batch_size"),
        (r#"{"symmetry_tolerance": 2}"#, null(), "symmetry_tolerance"),
        (r#"{"surface_trust": 1}"#, null(), "surface_heads"),
        (r#"{"layers": true}"#, mask.as_ptr(), "layers"),
        ("[1]", null(), "options_json"),
    ] {
        let status = call(Some(options), &mut all_pos, &mut all_lat, mask);
        assert_ne!(status, E3RELAX_SUCCESS, "{options}");
        assert!(last_error().contains(named), "{options}: {}", last_error());
    }
    let mut spread = vec![0.0; n];
    let status = unsafe {
        e3relax_predict_with(
            model,
            null(),
            1,
            &(n as i32),
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
            null(),
            0,
            pos.as_mut_ptr(),
            lat.as_mut_ptr(),
            spread.as_mut_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, E3RELAX_INVALID_ARGUMENT);
    assert!(last_error().contains("ensemble"), "{}", last_error());
    unsafe { e3relax_free(model) };
}
