//! The `h1:` hashes go.sum and the checksum database record (golang.org/x/mod/sumdb/dirhash's
//! `Hash1`): of a module zip, and of a go.mod from the sha256 digest the gateway already has.
//!
//! `Hash1` over a list of files is `"h1:" + base64(sha256(summary))`, where the summary has one
//! line `"{sha256 hex}  {name}\n"` per file, sorted by name.

use std::io::{Read, Seek};

use base64::Engine;
use sha2::{Digest, Sha256};

/// Why a zip could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum ZipHashError {
    /// Not a readable zip (or an entry's data is corrupt: the CRC is checked as it is read).
    #[error("unreadable module zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// Reading an entry failed.
    #[error("reading a module zip entry: {0}")]
    Io(#[from] std::io::Error),
    /// dirhash refuses these: the summary is line-based.
    #[error("a module zip entry's name contains a newline")]
    NewlineInName,
    /// Two entries with one name. dirhash would hash the last one's bytes twice, but no valid module
    /// zip has them (the go command refuses such a zip), so it is refused rather than hashed.
    #[error("a module zip has two entries with the same name")]
    DuplicateName,
}

/// dirhash.HashZip: every entry of the zip, sorted by name (as bytes, as Go sorts strings). Each
/// entry is streamed through the digest, never held whole.
pub fn h1_of_zip<R: Read + Seek>(zip: R) -> Result<String, ZipHashError> {
    let mut archive = zip::ZipArchive::new(zip)?;
    if archive.has_duplicate_names() {
        return Err(ZipHashError::DuplicateName);
    }
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let name = archive.by_index_raw(index)?.name_raw().to_vec();
        if name.contains(&b'\n') {
            return Err(ZipHashError::NewlineInName);
        }
        entries.push((name, index));
    }
    entries.sort();

    let mut summary = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    for (name, index) in entries {
        let mut entry = archive.by_index(index)?;
        let mut file = Sha256::new();
        loop {
            let read = entry.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            file.update(&buffer[..read]);
        }
        summary.update(hex::encode(file.finalize()).as_bytes());
        summary.update(b"  ");
        summary.update(&name);
        summary.update(b"\n");
    }
    Ok(h1(summary))
}

/// The go.mod hash (dirhash.Hash1 over the one file `go.mod`) from the file's sha256 digest in hex.
pub fn h1_of_mod_sha256(sha256_hex: &str) -> String {
    let mut summary = Sha256::new();
    // Go writes the digest with %x: lowercase.
    summary.update(sha256_hex.to_ascii_lowercase().as_bytes());
    summary.update(b"  go.mod\n");
    h1(summary)
}

fn h1(summary: Sha256) -> String {
    format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(summary.finalize()))
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;
    use zip::write::SimpleFileOptions;

    // The real go tool's hashes are checked in tests/h1.rs against fixtures it made; these cover
    // what the fixtures cannot (bad zips, odd names).

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// dirhash.Hash1 written out plainly from its definition.
    fn reference_h1(files: &[(&str, &[u8])]) -> String {
        let mut files = files.to_vec();
        files.sort_by_key(|(name, _)| *name);
        let summary: String =
            files.iter().map(|(name, data)| format!("{}  {name}\n", sha256_hex(data))).collect();
        format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes())))
    }

    #[test]
    fn go_mod_hash_is_hash1_of_one_file() {
        let go_mod = b"module example.com/m\n\ngo 1.19\n";
        assert_eq!(h1_of_mod_sha256(&sha256_hex(go_mod)), reference_h1(&[("go.mod", go_mod)]));
        assert_eq!(h1_of_mod_sha256(&sha256_hex(go_mod).to_uppercase()), reference_h1(&[("go.mod", go_mod)]));
    }

    #[test]
    fn refuses_a_newline_in_a_name() {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        writer.start_file("m@v1.0.0/a\nb", SimpleFileOptions::default()).unwrap();
        writer.write_all(b"x").unwrap();
        let zip = writer.finish().unwrap();
        assert!(matches!(h1_of_zip(zip), Err(ZipHashError::NewlineInName)));
    }

    #[test]
    fn refuses_what_is_not_a_zip() {
        assert!(matches!(h1_of_zip(Cursor::new(b"not a zip".to_vec())), Err(ZipHashError::Zip(_))));
        assert!(matches!(h1_of_zip(Cursor::new(Vec::new())), Err(ZipHashError::Zip(_))));
    }

    #[test]
    fn sorts_names_as_bytes() {
        // Go compares bytes: upper case before lower case, and `a.b` before `a/b` (0x2e < 0x2f).
        let files: [(&str, &[u8]); 4] =
            [("m@v1/b", b"2"), ("m@v1/B", b"1"), ("m@v1/a/b", b""), ("m@v1/a.b", b"3")];
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in files {
            writer.start_file(name, SimpleFileOptions::default()).unwrap();
            writer.write_all(data).unwrap();
        }
        let zip = writer.finish().unwrap();
        assert_eq!(h1_of_zip(zip).unwrap(), reference_h1(&files));
    }
}
