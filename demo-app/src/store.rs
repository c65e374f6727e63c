//! The document's durable history: an append-only log of collaboration updates.
//!
//! Each record is a little-endian `u32` length and the update's bytes. An append is
//! `fsync`ed before it is acknowledged or relayed, so an acknowledged update survives a crash
//! or a restart. A record cut short by a crash mid-write is dropped when the log is opened
//! (it was never acknowledged) and the file is truncated back to the last whole record.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest update stored: what the relay accepts (a keystroke's change is ~100 bytes).
pub const MAX_UPDATE: usize = crate::document::MAX_CHANGE_BYTES;

/// The log, with every record also held in memory for pages that join late.
pub struct UpdateLog {
    file: File,
    path: PathBuf,
    records: Vec<Vec<u8>>,
}

impl UpdateLog {
    /// Open (or create) the log at `path` and read its records.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, whole) = parse(&bytes);
        if whole < bytes.len() {
            eprintln!(
                "demo-app: dropping {} bytes of an incomplete record at the end of {}",
                bytes.len() - whole,
                path.display()
            );
            file.set_len(whole as u64)?;
            file.seek(SeekFrom::End(0))?;
            file.sync_all()?;
        }
        Ok(Self { file, path: path.to_path_buf(), records })
    }

    /// Append one update and make it durable; returns its sequence number (1-based).
    pub fn append(&mut self, update: &[u8]) -> io::Result<u64> {
        if update.len() > MAX_UPDATE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("update of {} bytes exceeds {MAX_UPDATE}", update.len()),
            ));
        }
        let mut record = Vec::with_capacity(update.len() + 4);
        record.extend_from_slice(&(update.len() as u32).to_le_bytes());
        record.extend_from_slice(update);
        self.file.write_all(&record)?;
        self.file.sync_data()?;
        self.records.push(update.to_vec());
        Ok(self.records.len() as u64)
    }

    /// Keep only the records whose index `keep` accepts: the log is rewritten to a new file
    /// that replaces it atomically (a crash leaves the old log or the new one, whole).
    pub fn retain(&mut self, keep: impl Fn(usize) -> bool) -> io::Result<()> {
        let records: Vec<Vec<u8>> = std::mem::take(&mut self.records)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, r)| r)
            .collect();
        let tmp = self.path.with_extension("log.tmp");
        let mut file = File::create(&tmp)?;
        for record in &records {
            file.write_all(&(record.len() as u32).to_le_bytes())?;
            file.write_all(record)?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.records = records;
        Ok(())
    }

    /// Every update so far, oldest first.
    pub fn records(&self) -> &[Vec<u8>] {
        &self.records
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The whole records in `bytes`, and how many bytes they span.
fn parse(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(len) = bytes.get(at..at + 4).map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize) {
        let Some(record) = bytes.get(at + 4..at + 4 + len) else { break };
        records.push(record.to_vec());
        at += 4 + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_updates_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("updates.log");
        let mut log = UpdateLog::open(&path).unwrap();
        assert_eq!(log.append(b"first").unwrap(), 1);
        assert_eq!(log.append(b"").unwrap(), 2);
        assert_eq!(log.append(&[0, 255, 7]).unwrap(), 3);
        drop(log);
        let log = UpdateLog::open(&path).unwrap();
        assert_eq!(log.records(), [b"first".to_vec(), vec![], vec![0, 255, 7]]);
    }

    #[test]
    fn a_record_cut_short_by_a_crash_is_dropped_and_appending_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("updates.log");
        let mut log = UpdateLog::open(&path).unwrap();
        log.append(b"kept").unwrap();
        drop(log);
        // A crash in the middle of writing a 10-byte record: its length and 3 bytes made it.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&10u32.to_le_bytes()).unwrap();
        file.write_all(b"abc").unwrap();
        drop(file);
        let mut log = UpdateLog::open(&path).unwrap();
        assert_eq!(log.records(), [b"kept".to_vec()]);
        log.append(b"next").unwrap();
        drop(log);
        assert_eq!(UpdateLog::open(&path).unwrap().records(), [b"kept".to_vec(), b"next".to_vec()]);
    }

    #[test]
    fn retaining_rewrites_the_log_without_the_dropped_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("updates.log");
        let mut log = UpdateLog::open(&path).unwrap();
        for r in [b"a", b"b", b"c"] {
            log.append(r).unwrap();
        }
        log.retain(|i| i != 1).unwrap();
        log.append(b"d").unwrap();
        drop(log);
        assert_eq!(UpdateLog::open(&path).unwrap().records(), [b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
    }

    #[test]
    fn oversize_updates_are_refused_and_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("updates.log");
        let mut log = UpdateLog::open(&path).unwrap();
        assert!(log.append(&vec![0; MAX_UPDATE + 1]).is_err());
        assert!(UpdateLog::open(&path).unwrap().records().is_empty());
    }
}
