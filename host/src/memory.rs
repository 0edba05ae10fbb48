//! What a door remembers of the chunks (Fluent Bit) or bodies (`serve`) it has not finished:
//! the core's [`Ledger`], and with a state folder the same entries on disk, one small file a
//! chunk, written (and fsynced) each time something of the chunk is stored, removed when the
//! chunk is done. A crash and restart of the agent re-sends nothing the service stored, except
//! what was stored between the service's answer and the write (the one window left).
//!
//! Bounded: at most `capacity` chunks in memory and on disk; past it the one touched longest ago
//! is forgotten, counted and logged (its records, if sent again, may be stored twice).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _, Result};
use kinesis_output::front::ledger::{key_hex, Entry, Key, Ledger, DEFAULT_MAX_BYTES};

/// The file name ending of an entry on disk.
const SUFFIX: &str = ".ledger";

/// The chunks being remembered.
pub struct Memory {
    ledger: Mutex<Ledger>,
    capacity: usize,
    dir: Option<PathBuf>,
    /// Keys whose chunk is being shipped right now.
    busy: Mutex<HashSet<Key>>,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

/// The SHA-256 of `parts`, each preceded by its length: the core's `ledger::key_of`, with the
/// CPU's SHA instructions.
pub fn key_of(parts: &[&[u8]]) -> Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Memory {
    /// Remember at most `capacity` chunks, in memory only (`dir` `None`) or also in `dir`
    /// (created if missing). `log` hears of evictions and of files that cannot be used.
    pub fn open(dir: Option<&Path>, capacity: usize, log: Box<dyn Fn(&str) + Send + Sync>) -> Result<Memory> {
        let memory = Memory {
            ledger: Mutex::new(Ledger::new(capacity, DEFAULT_MAX_BYTES)),
            capacity,
            dir: dir.map(Path::to_path_buf),
            busy: Mutex::new(HashSet::new()),
            log,
        };
        if let Some(dir) = &memory.dir {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            // Writable, or say so now rather than at the first retry.
            let probe = dir.join(".kinesis-output-probe");
            File::create(&probe)
                .and_then(|_| fs::remove_file(&probe))
                .with_context(|| format!("{} is not writable", dir.display()))?;
            memory.trim_disk(capacity);
        }
        Ok(memory)
    }

    /// The entries on disk, oldest first, beyond `capacity` removed.
    fn trim_disk(&self, capacity: usize) {
        let Some(dir) = &self.dir else { return };
        let Ok(listing) = fs::read_dir(dir) else { return };
        let mut files: Vec<(SystemTime, PathBuf)> = listing
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
            .map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH);
                (modified, e.path())
            })
            .collect();
        if files.len() <= capacity {
            return;
        }
        files.sort();
        let excess = files.len() - capacity;
        for (_, path) in files.into_iter().take(excess) {
            let _ = fs::remove_file(path);
        }
        self.ledger.lock().expect("not poisoned").evicted += excess as u64;
        (self.log)(&format!(
            "state_dir held more than {capacity} chunks: the {excess} oldest were forgotten (their records, if sent again, may be stored twice)"
        ));
    }

    fn path(&self, key: &Key) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}{SUFFIX}", key_hex(key))))
    }

    /// Mark `key` busy; false when it already was (another chunk with the same bytes is being
    /// shipped right now: it must not share this one's memory).
    pub fn claim(&self, key: &Key) -> bool {
        self.busy.lock().expect("not poisoned").insert(*key)
    }

    pub fn release(&self, key: &Key) {
        self.busy.lock().expect("not poisoned").remove(key);
    }

    /// What is remembered of `key`: from memory, else from disk.
    pub fn recall(&self, key: &Key) -> Option<Entry> {
        if let Some(entry) = self.ledger.lock().expect("not poisoned").get(key) {
            return Some(entry.clone());
        }
        let path = self.path(key)?;
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                (self.log)(&format!("state_dir: {}: {e}", path.display()));
                return None;
            }
        };
        match Entry::parse(&text) {
            Ok(entry) => Some(entry),
            Err(e) => {
                (self.log)(&format!(
                    "state_dir: {} is not readable ({e}); the chunk is shipped as new",
                    path.display()
                ));
                None
            }
        }
    }

    /// Remember `entry` for `key`, on disk too (synced before returning).
    pub fn keep(&self, key: &Key, entry: &Entry) {
        let evicted = self.ledger.lock().expect("not poisoned").put(*key, entry.clone());
        for old in &evicted {
            if let Some(path) = self.path(old) {
                let _ = fs::remove_file(path);
            }
        }
        if !evicted.is_empty() {
            (self.log)(&format!(
                "more than {} chunks (or {} MiB) remembered: the {} touched longest ago were forgotten (their records, if sent again, may be stored twice)",
                self.capacity,
                DEFAULT_MAX_BYTES >> 20,
                evicted.len()
            ));
        }
        if let Some(path) = self.path(key) {
            if let Err(e) = write_synced(&path, entry.to_text().as_bytes()) {
                (self.log)(&format!("state_dir: {}: {e:#}", path.display()));
            }
        }
    }

    /// Forget `key` (its chunk is done).
    pub fn forget(&self, key: &Key) {
        self.ledger.lock().expect("not poisoned").remove(key);
        if let Some(path) = self.path(key) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => (self.log)(&format!("state_dir: {}: {e}", path.display())),
            }
        }
    }

    /// Chunks remembered in memory now, and how many were evicted so far.
    pub fn counts(&self) -> (usize, u64) {
        let ledger = self.ledger.lock().expect("not poisoned");
        (ledger.len(), ledger.evicted)
    }
}

/// Write `bytes` to `path` so that after a crash the file holds either its old or its new
/// content: a temporary file, synced, renamed over it, and the folder synced.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| anyhow!("no folder"))?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kinesis-memory-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn entries_survive_a_restart_and_are_forgotten_when_done() {
        let dir = temp("restart");
        let key = key_of(&[b"tag", b"chunk bytes"]);
        let mut entry = Entry::new(3, 100);
        entry.settled.insert(1);
        entry.stored = 1;
        {
            let m = Memory::open(Some(&dir), 10, Box::new(|_| {})).unwrap();
            assert_eq!(m.recall(&key), None);
            m.keep(&key, &entry);
        }
        let m = Memory::open(Some(&dir), 10, Box::new(|_| {})).unwrap();
        assert_eq!(m.recall(&key), Some(entry));
        m.forget(&key);
        assert_eq!(m.recall(&key), None);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "nothing left on disk");
        // The core's key, computed faster.
        let parts: [&[u8]; 2] = [b"kube.web", b"\x92\x01\x80"];
        assert_eq!(key_of(&parts), kinesis_output::front::ledger::key_of(&parts));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn memory_and_disk_are_bounded_and_evictions_are_told() {
        let dir = temp("bounded");
        let told = Arc::new(StdMutex::new(Vec::<String>::new()));
        let t = told.clone();
        let m = Memory::open(
            Some(&dir),
            2,
            Box::new(move |s| t.lock().unwrap().push(s.to_string())),
        )
        .unwrap();
        for b in 0..3u8 {
            m.keep(&[b; 32], &Entry::new(1, 0));
        }
        assert_eq!(m.counts(), (2, 1));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        assert!(m.recall(&[0; 32]).is_none(), "the oldest was forgotten");
        assert!(
            told.lock().unwrap()[0].contains("forgotten"),
            "{:?}",
            told.lock().unwrap()
        );
        // A damaged file is told and ignored.
        fs::write(dir.join(format!("{}{SUFFIX}", key_hex(&[9; 32]))), "garbage").unwrap();
        assert!(m.recall(&[9; 32]).is_none());
        assert!(told.lock().unwrap().iter().any(|s| s.contains("not readable")));
        // Reopened with a smaller bound, the oldest files go.
        drop(m);
        let m = Memory::open(Some(&dir), 1, Box::new(|_| {})).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(m.counts().1, 2);
        // Busy keys: a second claim fails until released.
        assert!(m.claim(&[1; 32]) && !m.claim(&[1; 32]));
        m.release(&[1; 32]);
        assert!(m.claim(&[1; 32]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_dir_that_cannot_be_written_is_an_error_at_open() {
        let file = temp("not-a-dir");
        fs::write(&file, "x").unwrap();
        assert!(Memory::open(Some(&file), 10, Box::new(|_| {})).is_err());
        fs::remove_file(&file).unwrap();
    }
}
