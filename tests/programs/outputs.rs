//! What `e3relax relax` and `convert` write, and what they never do:
//! replace a symlink or a device, overwrite an input unasked, or leave a
//! partial set of outputs behind.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{random_crystal, small_config, small_model};

fn e3relax<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_e3relax"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

struct Setup {
    dir: tempfile::TempDir,
    model: PathBuf,
    input: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    small_model(&small_config(), 3).save(&model).unwrap();
    let input = dir.path().join("in.vasp");
    e3relax::io::write_file(&input, &[random_crystal(1, 4)], None).unwrap();
    Setup { dir, model, input }
}

impl Setup {
    fn relax(&self, input: &Path, output: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = vec![
            "relax".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            output.as_os_str(),
            "--model".as_ref(),
            self.model.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| OsStr::new(*a)));
        e3relax(&args)
    }
}

#[test]
fn an_input_is_never_overwritten_unasked() {
    let t = setup();
    let before = std::fs::read(&t.input).unwrap();
    let link = t.dir.path().join("link.vasp");
    std::os::unix::fs::symlink(&t.input, &link).unwrap();
    for output in [&t.input, &link] {
        let out = t.relax(&t.input, output, &[]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("is the input") && stderr(&out).contains("--overwrite-input"),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read(&t.input).unwrap(), before);
    }
    // The trajectory may not be the input either, and the main output is
    // not written when it is refused.
    let out_path = t.dir.path().join("out.vasp");
    let out = t.relax(
        &t.input,
        &out_path,
        &["--trajectory", t.input.to_str().unwrap()],
    );
    assert!(!out.status.success() && !out_path.exists());
    // Asked explicitly: allowed.
    let out = t.relax(&t.input, &t.input, &["--overwrite-input"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(std::fs::read(&t.input).unwrap(), before);
    // convert refuses the same way.
    let out = e3relax(&["convert", t.input.to_str().unwrap(), link.to_str().unwrap()]);
    assert!(stderr(&out).contains("is the input"), "{}", stderr(&out));
}

#[test]
fn symlinks_are_written_through_and_stdout_is_streamed() {
    let t = setup();
    let target = t.dir.path().join("target.extxyz");
    let link = t.dir.path().join("link.extxyz");
    std::os::unix::fs::symlink("target.extxyz", &link).unwrap();
    let out = t.relax(&t.input, &link, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let written = e3relax::io::read_file(&target, None).unwrap();
    assert_eq!(written.len(), 1);

    let out = t.relax(&t.input, Path::new("-"), &["--format", "extxyz"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let streamed = e3relax::io::parse(
        &String::from_utf8(out.stdout).unwrap(),
        e3relax::io::Format::ExtXyz,
    )
    .unwrap();
    assert_eq!(streamed[0].positions, written[0].positions);
    assert!(!t.dir.path().join("-").exists());
    let out = t.relax(&t.input, Path::new("-"), &[]);
    assert!(stderr(&out).contains("use --format"), "{}", stderr(&out));

    // Devices are written, not replaced; a full one is an error, and the
    // other outputs of the run do not appear.
    let out = t.relax(&t.input, Path::new("/dev/null"), &["--format", "extxyz"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let main = t.dir.path().join("main.extxyz");
    let full = t.dir.path().join("full.extxyz");
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    let out = t.relax(&t.input, &main, &["--trajectory", full.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
    assert!(!main.exists());
}

#[test]
fn folder_mode_is_all_or_nothing_and_names_outputs_by_format() {
    let t = setup();
    let inputs = t.dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    e3relax::io::write_file(&inputs.join("a.vasp"), &[random_crystal(2, 3)], None).unwrap();
    e3relax::io::write_file(
        &inputs.join("b.extxyz"),
        &[random_crystal(3, 5), random_crystal(4, 2)],
        None,
    )
    .unwrap();
    // A name that is not UTF-8 is relaxed like any other.
    let odd = inputs.join(OsStr::from_bytes(b"c\xe9.cif"));
    e3relax::io::write_file(&odd, &[random_crystal(5, 3)], None).unwrap();

    // b.extxyz holds two frames, which POSCAR cannot: the run fails on
    // the second file, and nothing is left behind.
    let results = t.dir.path().join("results");
    let out = t.relax(&inputs, &results, &["--format", "poscar"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("POSCAR holds one structure"),
        "{}",
        stderr(&out)
    );
    assert!(!results.exists(), "{:?}", entries(t.dir.path()));

    // A failing trajectory: neither the folder nor its files appear.
    let full = t.dir.path().join("full.extxyz");
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    let out = t.relax(&inputs, &results, &["--trajectory", full.to_str().unwrap()]);
    assert!(!out.status.success() && !results.exists());
    // An existing folder keeps only what it had.
    std::fs::create_dir(&results).unwrap();
    std::fs::write(results.join("keep.txt"), "mine").unwrap();
    let out = t.relax(&inputs, &results, &["--trajectory", full.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(entries(&results), ["keep.txt"]);

    // Outputs are named by their format, so that they read back.
    let out = t.relax(&inputs, &results, &["--format", "extxyz"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        entries(&results),
        ["a.extxyz", "b.extxyz", "c\u{fffd}.extxyz", "keep.txt"]
    );
    for name in ["a.extxyz", "b.extxyz"] {
        assert!(e3relax::io::read_file(results.join(name), None).is_ok());
    }
    // Without --format every file keeps its name and format.
    let same = t.dir.path().join("same");
    let out = t.relax(&inputs, &same, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(same.join(OsStr::from_bytes(b"c\xe9.cif")).is_file());
    assert_eq!(
        e3relax::io::read_file(same.join("b.extxyz"), None)
            .unwrap()
            .len(),
        2
    );
    // Two inputs that would land on one output name: refused up front.
    e3relax::io::write_file(&inputs.join("a.cif"), &[random_crystal(6, 3)], None).unwrap();
    let clash = t.dir.path().join("clash");
    let out = t.relax(&inputs, &clash, &["--format", "extxyz"]);
    assert!(
        stderr(&out).contains("would both be written to"),
        "{}",
        stderr(&out)
    );
    assert!(!clash.exists());
}

/// Issue 23.10: SIGTERM while the outputs are staged leaves nothing (no
/// folder, no temporary file); during the commit it leaves everything.
#[test]
fn a_terminated_run_leaves_nothing_or_everything() {
    let t = setup();
    let mut count = 200;
    loop {
        let inputs = t.dir.path().join(format!("inputs-{count}"));
        std::fs::create_dir(&inputs).unwrap();
        for k in 0..count {
            let name = inputs.join(format!("s{k:04}.vasp"));
            e3relax::io::write_file(&name, &[random_crystal(k as u64, 2)], None).unwrap();
        }
        let results = t.dir.path().join(format!("results-{count}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_e3relax"))
            .args(["relax".as_ref(), inputs.as_os_str(), "-o".as_ref()])
            .arg(&results)
            .arg("--model")
            .arg(&t.model)
            .arg("--quiet")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Waits for the first temporary file, then terminates the run.
        let mut signalled = false;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(300) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let staging = std::fs::read_dir(&results).is_ok_and(|mut d| {
                d.any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            });
            if staging {
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                signalled = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let status = child.wait().unwrap();
        if !signalled {
            assert!(status.success());
            assert!(count < 3200, "never caught the run while it staged");
            count *= 2;
            continue;
        }
        use std::os::unix::process::ExitStatusExt;
        if status.success() {
            // The signal came after the last rename.
            assert_eq!(entries(&results).len(), count);
        } else {
            assert_eq!(status.signal(), Some(libc::SIGTERM));
            if results.exists() {
                // Terminated during the commit: every output, no temporary.
                let names = entries(&results);
                assert_eq!(names.len(), count, "{:?}", &names[..names.len().min(5)]);
                assert!(names.iter().all(|n| !n.ends_with(".tmp")));
            }
        }
        break;
    }

    // A run killed outright (SIGKILL) leaves temporaries: the next run that
    // writes the same output removes them, and no one else's.
    let output = t.dir.path().join("out.vasp");
    let stale = t.dir.path().join(".out.vasp.Xy12Zw.tmp");
    let other = t.dir.path().join(".other.vasp.Xy12Zw.tmp");
    std::fs::write(&stale, "left by a kill").unwrap();
    std::fs::write(&other, "not ours").unwrap();
    let out = t.relax(&t.input, &output, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(output.is_file() && !stale.exists() && other.exists());
}
