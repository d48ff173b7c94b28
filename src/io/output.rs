//! Writing outputs so that a failed run never leaves a half-written or
//! partly replaced result behind.
//!
//! Every file of one run is first *staged*: written in full to a temporary
//! file next to its destination (created exclusively, with an unpredictable
//! name, and synced to disk). Only when all of them are staged does
//! [`StagedWrites::commit`] rename them into place, so either every output
//! of the run appears or none does. Two kinds of destination are not
//! renamed over:
//! * a symbolic link is followed, and its target is what gets replaced (the
//!   link stays a link);
//! * an existing file that is not a regular file (`/dev/stdout`, a FIFO, a
//!   terminal) is written directly, and `-` means standard output. These
//!   are written at commit time, before any rename, so that a failing
//!   device (`/dev/full`) still leaves nothing renamed.
//!
//! Termination: a program that calls [`clean_up_on_termination`] (the CLI
//! does) keeps that promise under SIGTERM, SIGINT and SIGHUP too. A signal
//! during staging removes every temporary file and every folder the run
//! created, then ends the process by the same signal; a signal during a
//! commit waits for the commit to finish (everything is in place), then
//! ends it. A run killed outright (SIGKILL) leaves its temporary files: the
//! next run that writes the same outputs removes them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// What the runs of this process have on disk that is not committed yet:
/// their temporary files and the folders they created. A signal handler
/// thread removes them on termination (see [`clean_up_on_termination`]).
#[derive(Default)]
struct Uncommitted {
    /// Temporary files, each with how many stagings hold it.
    temporaries: BTreeMap<PathBuf, usize>,
    /// Folders created for outputs, in creation order (outermost first).
    folders: Vec<PathBuf>,
}

static UNCOMMITTED: Mutex<Uncommitted> = Mutex::new(Uncommitted {
    temporaries: BTreeMap::new(),
    folders: Vec::new(),
});

fn uncommitted() -> MutexGuard<'static, Uncommitted> {
    UNCOMMITTED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The write end of the pipe the signal handler writes the signal to.
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_termination_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::SeqCst);
    let byte = signal as u8;
    // SAFETY: write(2) is async-signal-safe; the byte is on the stack.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// Makes SIGTERM, SIGINT and SIGHUP keep the all-or-nothing promise of
/// outputs for this process (once; for programs, not libraries: it sets
/// the process's handlers). On such a signal a thread waits for a commit
/// in progress to finish, removes the uncommitted temporary files and the
/// folders runs created, and ends the process by the same signal.
pub fn clean_up_on_termination() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        SIGNAL_PIPE.store(fds[1], std::sync::atomic::Ordering::SeqCst);
        let reader = fds[0];
        let spawned = std::thread::Builder::new()
            .name("e3relax-signals".into())
            .spawn(move || {
                let mut byte = 0u8;
                // SAFETY: a blocking read of one byte into a stack variable.
                while unsafe { libc::read(reader, (&mut byte as *mut u8).cast(), 1) } != 1 {}
                terminate(byte as libc::c_int);
            });
        if spawned.is_err() {
            return;
        }
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: installs a handler that only writes to a pipe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_termination_signal as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

/// Removes what is not committed (after a commit in progress, which holds
/// the lock) and ends the process by `signal`. The lock stays held: no run
/// stages anything after this.
fn terminate(signal: libc::c_int) -> ! {
    let state = uncommitted();
    for temporary in state.temporaries.keys() {
        let _ = fs::remove_file(temporary);
    }
    for folder in state.folders.iter().rev() {
        let _ = fs::remove_dir(folder);
    }
    // SAFETY: back to the default action, then the same signal: the
    // process ends as it would have without the handler.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    std::process::exit(128 + signal);
}

/// Removes the temporary files a killed run left for `destination`
/// (`.<name>.<random>.tmp` beside it): those whose `flock` can be taken,
/// because no live run (this one or another process) holds them.
fn remove_stale_temporaries(folder: &Path, destination: &Path) {
    let Some(name) = destination.file_name() else {
        return;
    };
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name.as_encoded_bytes());
    prefix.push(b'.');
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let bytes = file_name.as_encoded_bytes();
        // tempfile's random part: 6 characters, no dot.
        let stale = bytes.len() == prefix.len() + 6 + TEMPORARY_SUFFIX.len()
            && bytes.starts_with(&prefix)
            && is_temporary_name(&file_name)
            && !bytes[prefix.len()..prefix.len() + 6].contains(&b'.');
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) && unowned(&entry.path()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether no live run holds the temporary file at `path` (its `flock` can
/// be taken now).
fn unowned(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock on a descriptor of a file opened here; the lock goes
    // with `file`.
    unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        ) == 0
    }
}

/// The name that means standard output.
pub const STDOUT: &str = "-";

/// Temporary files are `.<name>.<random><suffix>` next to their
/// destination: hidden, and recognisable for clean-up after a kill.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// Whether a folder entry's name is one of this module's temporary files.
pub fn is_temporary_name(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b".") && name.ends_with(TEMPORARY_SUFFIX.as_bytes())
}

/// Removes the temporary files a killed run left in `folder` (not
/// recursive); returns how many.
pub fn remove_temporary_files(folder: &Path) -> usize {
    let Ok(entries) = fs::read_dir(folder) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| is_temporary_name(&e.file_name()) && e.path().is_file())
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Follows symbolic links (up to 40, as the kernel does) to the path that
/// would really be written. A dangling link resolves to its missing target.
pub fn resolve_destination(path: &Path) -> Result<PathBuf> {
    let shown = path.display().to_string();
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&current).map_err(|e| Error::io(&shown, e))?;
                current = if target.is_absolute() {
                    target
                } else {
                    current.parent().unwrap_or(Path::new(".")).join(target)
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::InvalidArgument(format!(
        "{shown}: too many levels of symbolic links"
    )))
}

/// Whether two paths name the same existing file (after links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The permission bits a newly created file gets: `0666` less the
/// process's umask (read from `/proc`, since setting it to read it back
/// would race with other threads), or those of the file being replaced.
fn new_file_mode(destination: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(destination) {
        return meta.permissions().mode() & 0o7777;
    }
    let umask = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022);
    0o666 & !umask
}

/// A temporary file known to the termination clean-up: removed (and
/// forgotten) when dropped, forgotten once renamed into place.
struct Registered(Option<tempfile::TempPath>);

impl std::ops::Deref for Registered {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.as_deref().expect("a registered temporary file")
    }
}

impl Registered {
    /// Renames the file to `destination`; `state` is the locked registry.
    /// On failure the file comes back (dropped later, outside the lock).
    fn persist(
        mut self,
        destination: &Path,
        state: &mut Uncommitted,
    ) -> std::result::Result<(), (Registered, std::io::Error)> {
        let temporary = self.0.take().expect("a registered temporary file");
        let path = temporary.to_path_buf();
        match temporary.persist(destination) {
            Ok(()) => {
                forget_temporary(state, &path);
                Ok(())
            }
            Err(e) => Err((Registered(Some(e.path)), e.error)),
        }
    }
}

fn forget_temporary(state: &mut Uncommitted, path: &Path) {
    if let Some(count) = state.temporaries.get_mut(path) {
        *count -= 1;
        if *count == 0 {
            state.temporaries.remove(path);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(temporary) = self.0.take() {
            let path = temporary.to_path_buf();
            // Removed first, forgotten after: a signal in between only
            // removes a file that is gone already.
            drop(temporary);
            forget_temporary(&mut uncommitted(), &path);
        }
    }
}

enum Staged {
    /// A complete temporary file waiting to be renamed over `destination`.
    Renamed {
        temporary: Registered,
        destination: PathBuf,
        shown: String,
        /// The temporary file, open and `flock`ed for as long as this run
        /// may still rename it: another run takes a temporary whose lock it
        /// can get for one a killed run left behind.
        _lock: fs::File,
    },
    /// Bytes for standard output or an existing non-regular file.
    Direct {
        destination: Option<PathBuf>,
        bytes: Vec<u8>,
        shown: String,
    },
}

/// Outputs of one run, staged and then committed all together.
/// Dropping it without [`commit`](Self::commit) removes every temporary
/// file and every folder it created.
#[derive(Default)]
pub struct StagedWrites {
    staged: Vec<Staged>,
    created_folders: Vec<PathBuf>,
    destinations: Vec<PathBuf>,
}

impl StagedWrites {
    /// Nothing staged yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `folder` (and missing parents) for outputs; a folder this
    /// creates is removed again if the run is not committed.
    pub fn create_folder(&mut self, folder: &Path) -> Result<()> {
        let shown = folder.display().to_string();
        let mut missing = Vec::new();
        let mut probe = Some(folder);
        while let Some(p) = probe.filter(|p| !p.as_os_str().is_empty()) {
            if fs::symlink_metadata(p).is_ok() {
                break;
            }
            missing.push(p.to_path_buf());
            probe = p.parent();
        }
        // Innermost last, so that dropping removes children before parents.
        missing.reverse();
        let mut state = uncommitted();
        let created = fs::create_dir_all(folder);
        // Registered even when creation failed half-way: whatever exists
        // of them is this run's.
        state.folders.extend(missing.iter().cloned());
        drop(state);
        self.created_folders.extend(missing);
        created.map_err(|e| Error::io(&shown, e))?;
        if !fs::metadata(folder).map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Error::InvalidArgument(format!("{shown}: not a folder")));
        }
        Ok(())
    }

    /// Stages `bytes` for `path` (`-` for standard output). The file is
    /// complete and on disk when this returns; it appears at `path` only on
    /// commit.
    pub fn stage(&mut self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        let shown = path.display().to_string();
        if path.as_os_str() == STDOUT {
            self.staged.push(Staged::Direct {
                destination: None,
                bytes,
                shown,
            });
            return Ok(());
        }
        let destination = resolve_destination(path)?;
        // The same path, or (for existing files) the same inode.
        if self
            .destinations
            .iter()
            .any(|d| d == &destination || same_file(d, &destination))
        {
            return Err(Error::InvalidArgument(format!(
                "{shown}: the same file is written twice in this run"
            )));
        }
        self.destinations.push(destination.clone());
        match fs::metadata(&destination) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::InvalidArgument(format!(
                    "{shown}: is a folder, not a file"
                )))
            }
            Ok(meta) if !meta.is_file() => {
                self.staged.push(Staged::Direct {
                    destination: Some(destination),
                    bytes,
                    shown,
                });
                return Ok(());
            }
            _ => {}
        }
        self.stage_regular(destination, shown, |file, _| file.write_all(&bytes))
    }

    /// Stages a file that a library writes by path (libtorch's safetensors
    /// writer): `write` gets the temporary file's path and must write the
    /// whole content there. `path` must be (or become) a regular file.
    pub fn stage_with(
        &mut self,
        path: &Path,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let shown = path.display().to_string();
        let destination = resolve_destination(path)?;
        if fs::metadata(&destination).is_ok_and(|m| !m.is_file()) {
            return Err(Error::InvalidArgument(format!(
                "{shown}: not a regular file"
            )));
        }
        let mut failure = None;
        let named = shown.clone();
        self.stage_regular(destination, shown, |_, temporary| {
            if let Err(e) = write(temporary) {
                // An I/O error names the file being written, not its
                // hidden temporary.
                failure = Some(match e {
                    Error::Io { path, source } if Path::new(&path) == temporary => {
                        Error::io(named, source)
                    }
                    other => other,
                });
                return Err(std::io::Error::other("write failed"));
            }
            Ok(())
        })
        .map_err(|e| failure.take().unwrap_or(e))
    }

    /// Creates the exclusive temporary file next to `destination`, lets
    /// `fill` write it (through the handle or by path), syncs it and
    /// queues the rename.
    fn stage_regular(
        &mut self,
        destination: PathBuf,
        shown: String,
        fill: impl FnOnce(&mut fs::File, &Path) -> std::io::Result<()>,
    ) -> Result<()> {
        let folder = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut prefix = OsString::from(".");
        prefix.push(destination.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{shown}: does not end in a file name"))
        })?);
        prefix.push(".");
        let mode = new_file_mode(&destination);
        remove_stale_temporaries(folder, &destination);
        let mut state = uncommitted();
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(TEMPORARY_SUFFIX)
            .tempfile_in(folder)
            .map_err(|e| Error::io(&shown, e))?;
        let (mut handle, temporary) = file.into_parts();
        // Held until this run is done with the file (the kernel drops it
        // when the process dies, however it dies).
        // SAFETY: flock on a descriptor this function owns.
        unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&handle),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        *state
            .temporaries
            .entry(temporary.to_path_buf())
            .or_default() += 1;
        drop(state);
        let temporary = Registered(Some(temporary));
        let written = (|| {
            use std::os::unix::fs::PermissionsExt;
            fill(&mut handle, &temporary)?;
            // Whatever wrote by path, the data is synced through a fresh
            // handle on the same file.
            let synced = fs::OpenOptions::new().write(true).open(&*temporary)?;
            synced.set_permissions(fs::Permissions::from_mode(mode))?;
            synced.sync_all()
        })();
        written.map_err(|e| Error::io(&shown, e))?;
        self.staged.push(Staged::Renamed {
            temporary,
            destination,
            shown,
            _lock: handle,
        });
        Ok(())
    }

    /// Puts every staged output in place: direct writes first (they are the
    /// ones that can still fail), then the renames, then the folders' own
    /// entries are synced.
    pub fn commit(mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let (renamed, direct): (Vec<_>, Vec<_>) = staged
            .into_iter()
            .partition(|s| matches!(s, Staged::Renamed { .. }));
        for item in direct {
            if let Staged::Direct {
                destination,
                bytes,
                shown,
            } = item
            {
                let result = match &destination {
                    None => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&bytes).and_then(|_| out.flush())
                    }
                    Some(path) => fs::OpenOptions::new()
                        .write(true)
                        .open(path)
                        .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.flush())),
                };
                result.map_err(|e| Error::io(&shown, e))?;
            }
        }
        let mut folders = Vec::new();
        // The renames under the lock: a termination signal waits for all
        // of them. Files that were not renamed are dropped (removed) after
        // the lock is released.
        let mut state = uncommitted();
        let mut failure = None;
        let mut left = Vec::new();
        for item in renamed {
            if let Staged::Renamed {
                temporary,
                destination,
                shown,
                ..
            } = item
            {
                if failure.is_some() {
                    left.push(temporary);
                    continue;
                }
                match temporary.persist(&destination, &mut state) {
                    Ok(()) => {
                        if let Some(folder) = destination.parent() {
                            folders.push(folder.to_path_buf());
                        }
                    }
                    Err((temporary, e)) => {
                        left.push(temporary);
                        failure = Some(Error::io(&shown, e));
                    }
                }
            }
        }
        if failure.is_none() {
            // The folders hold committed outputs now: nobody removes them.
            for folder in self.created_folders.drain(..) {
                forget_folder(&mut state, &folder);
            }
        }
        drop(state);
        drop(left);
        if let Some(e) = failure {
            return Err(e);
        }
        folders.sort();
        folders.dedup();
        for folder in folders {
            // Makes the renames themselves durable; a folder that cannot be
            // opened for syncing (some network file systems) is no error.
            let folder = if folder.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                folder
            };
            if let Ok(dir) = fs::File::open(&folder) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

fn forget_folder(state: &mut Uncommitted, folder: &Path) {
    if let Some(k) = state.folders.iter().position(|f| f == folder) {
        state.folders.remove(k);
    }
}

impl Drop for StagedWrites {
    fn drop(&mut self) {
        // Temporary files remove themselves (Registered); folders this run
        // created go too, innermost first, if they are empty by now.
        self.staged.clear();
        for folder in self.created_folders.iter().rev() {
            let _ = fs::remove_dir(folder);
        }
        let mut state = uncommitted();
        for folder in &self.created_folders {
            forget_folder(&mut state, folder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn nothing_appears_before_commit_and_nothing_stays_after_a_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut writes = StagedWrites::new();
        writes
            .stage(&dir.path().join("a.xyz"), b"a".to_vec())
            .unwrap();
        writes
            .stage(&dir.path().join("b.xyz"), b"b".to_vec())
            .unwrap();
        assert!(!dir.path().join("a.xyz").exists());
        drop(writes);
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));

        let mut writes = StagedWrites::new();
        writes
            .stage(&dir.path().join("a.xyz"), b"a".to_vec())
            .unwrap();
        writes.commit().unwrap();
        assert_eq!(entries(dir.path()), ["a.xyz"]);
        assert_eq!(fs::read(dir.path().join("a.xyz")).unwrap(), b"a");
    }

    #[test]
    fn symlinks_are_followed_and_stay_links() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.xyz");
        fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.xyz");
        std::os::unix::fs::symlink("real.xyz", &link).unwrap();
        let mut writes = StagedWrites::new();
        writes.stage(&link, b"new".to_vec()).unwrap();
        writes.commit().unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");

        // A dangling link creates its target.
        let dangling = dir.path().join("dangling.xyz");
        std::os::unix::fs::symlink("made.xyz", &dangling).unwrap();
        let mut writes = StagedWrites::new();
        writes.stage(&dangling, b"x".to_vec()).unwrap();
        writes.commit().unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("made.xyz")).unwrap(),
            "x"
        );
    }

    #[test]
    fn devices_are_written_not_replaced_and_a_full_one_fails_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut writes = StagedWrites::new();
        writes
            .stage(&dir.path().join("a.xyz"), b"a".to_vec())
            .unwrap();
        writes
            .stage(Path::new("/dev/null"), b"gone".to_vec())
            .unwrap();
        writes.commit().unwrap();
        assert!(!fs::metadata("/dev/null").unwrap().file_type().is_file());

        let mut writes = StagedWrites::new();
        writes
            .stage(&dir.path().join("b.xyz"), b"b".to_vec())
            .unwrap();
        writes.stage(Path::new("/dev/full"), b"x".to_vec()).unwrap();
        let e = writes.commit().unwrap_err().to_string();
        assert!(e.contains("/dev/full"), "{e}");
        // The regular output was not renamed into place either.
        assert_eq!(entries(dir.path()), ["a.xyz"]);
    }

    #[test]
    fn temporary_names_are_unpredictable_and_modes_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut first = StagedWrites::new();
        first.stage(&dir.path().join("a.xyz"), vec![]).unwrap();
        let mut second = StagedWrites::new();
        second.stage(&dir.path().join("a.xyz"), vec![]).unwrap();
        let names = entries(dir.path());
        assert_eq!(names.len(), 2);
        assert_ne!(names[0], names[1]);
        assert!(names.iter().all(|n| n.starts_with(".a.xyz.")), "{names:?}");
        drop(second);
        first.commit().unwrap();
        let mode = fs::metadata(dir.path().join("a.xyz"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, new_file_mode(&dir.path().join("none")));
        assert_ne!(mode & 0o444, 0, "readable by its owner at least");
    }

    #[test]
    fn created_folders_go_when_the_run_fails_and_duplicates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/deeper");
        let mut writes = StagedWrites::new();
        writes.create_folder(&out).unwrap();
        writes.stage(&out.join("a.xyz"), b"a".to_vec()).unwrap();
        let e = writes
            .stage(&out.join("./a.xyz"), b"b".to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("written twice"), "{e}");
        drop(writes);
        assert!(entries(dir.path()).is_empty());
        let e = StagedWrites::new()
            .stage(dir.path(), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a folder"), "{e}");
    }
}
