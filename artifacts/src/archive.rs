//! Model archives (`.tar.gz`, as fastembed's older models are published): read as a stream and
//! refused whole at the first entry that could leave the cache entry or fill the disk.
//!
//! A file lands in the entry under its own name: at the archive's top level or in one top-level
//! folder (fastembed's archives hold `<model>/model.onnx`). Refused: absolute paths, `..`, deeper
//! folders, symbolic and hard links, device files and FIFOs, names a cache entry may not hold,
//! the same name twice, more than `MAX_ENTRIES` entries, and more than `max_bytes` of content in
//! all (counted as it is decompressed, so a bomb is stopped at the limit, not after).

use std::io::Read;
use std::path::{Component, Path};

use sightline_core::CoreError;

use crate::files::is_valid_file_name;

/// Entries (files, folders) one archive may hold.
pub const MAX_ENTRIES: usize = 10_000;
const CHUNK: usize = 64 * 1024;

/// What the reader hands on, in order: a file's start, its bytes, its end.
#[derive(Debug, PartialEq, Eq)]
pub enum ArchiveEvent {
    File { name: String, size: u64 },
    Data(Vec<u8>),
    End,
}

fn refused(reason: String) -> CoreError {
    CoreError::SourceBadResponse(format!("refusing the model archive: {reason}"))
}

/// The name a path lands under, or why it may not land.
fn landing_name(path: &Path) -> Result<Option<String>, CoreError> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(refused(format!("{} climbs out with `..`", path.display()))),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(format!("{} is an absolute path", path.display())))
            }
        }
    }
    match parts.as_slice() {
        [] => Ok(None),
        [name] | [_, name] => {
            if !is_valid_file_name(name) {
                return Err(refused(format!("{} is not a name a model file may have", path.display())));
            }
            Ok(Some(name.clone()))
        }
        _ => Err(refused(format!("{} is nested deeper than one folder", path.display()))),
    }
}

/// Reads the gzip-compressed tar in `input`, passing each file to `sink` as events.
pub fn read_tar_gz(
    input: impl Read,
    max_bytes: u64,
    mut sink: impl FnMut(ArchiveEvent) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(input));
    let bad = |e: std::io::Error| refused(format!("unreadable: {e}"));
    let (mut total, mut entries) = (0u64, 0usize);
    let mut names: Vec<String> = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(refused(format!("more than {MAX_ENTRIES} entries")));
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            landing_name(&path)?;
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(refused(format!("{} is a link", path.display())));
        }
        if !kind.is_file() {
            return Err(refused(format!("{} is not a regular file ({kind:?})", path.display())));
        }
        let Some(name) = landing_name(&path)? else { continue };
        if names.contains(&name) {
            return Err(refused(format!("{name} appears twice")));
        }
        let size = entry.size();
        if total.saturating_add(size) > max_bytes {
            return Err(refused(format!("it expands past MAX_MODEL_ARCHIVE_BYTES={max_bytes}")));
        }
        sink(ArchiveEvent::File { name: name.clone(), size })?;
        let mut buffer = vec![0u8; CHUNK];
        let mut read = 0u64;
        loop {
            let n = entry.read(&mut buffer).map_err(bad)?;
            if n == 0 {
                break;
            }
            read += n as u64;
            total += n as u64;
            if total > max_bytes || read > size {
                return Err(refused(format!("it expands past MAX_MODEL_ARCHIVE_BYTES={max_bytes}")));
            }
            sink(ArchiveEvent::Data(buffer[..n].to_vec()))?;
        }
        sink(ArchiveEvent::End)?;
        names.push(name);
    }
    if names.is_empty() {
        return Err(refused("it holds no file".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, size: u64, kind: tar::EntryType) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        // set_path refuses `..` and absolute paths, so the raw name field is written directly.
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_cksum();
        header
    }

    fn archive(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, data, kind) in entries {
            let mut header = header(path, data.len() as u64, *kind);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_link_name("../../etc/passwd").unwrap();
                header.set_size(0);
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            } else {
                builder.append(&header, *data).unwrap();
            }
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn read(bytes: &[u8], max: u64) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        read_tar_gz(bytes, max, |event| {
            match event {
                ArchiveEvent::File { name, .. } => files.push((name, Vec::new())),
                ArchiveEvent::Data(data) => files.last_mut().unwrap().1.extend(data),
                ArchiveEvent::End => {}
            }
            Ok(())
        })?;
        Ok(files)
    }

    #[test]
    fn a_model_folder_lands_flat() {
        use tar::EntryType::{Directory, Regular};
        let bytes = archive(&[
            ("fast-clip/", b"", Directory),
            ("fast-clip/model.onnx", b"weights", Regular),
            ("./fast-clip/config.json", b"{}", Regular),
        ]);
        let files = read(&bytes, 1 << 20).unwrap();
        assert_eq!(files, vec![("model.onnx".into(), b"weights".to_vec()), ("config.json".into(), b"{}".to_vec())]);
    }

    #[test]
    fn hostile_entries_are_refused() {
        use tar::EntryType::{Block, Char, Fifo, Link, Regular, Symlink};
        let cases: [(&str, tar::EntryType, &str); 9] = [
            ("../evil.onnx", Regular, "climbs out"),
            ("m/../../evil.onnx", Regular, "climbs out"),
            ("/etc/evil.onnx", Regular, "absolute"),
            ("a/b/c.onnx", Regular, "deeper"),
            ("m/link.onnx", Symlink, "link"),
            ("m/hard.onnx", Link, "link"),
            ("m/dev", Char, "not a regular file"),
            ("m/disk", Block, "not a regular file"),
            ("m/pipe", Fifo, "not a regular file"),
        ];
        for (path, kind, says) in cases {
            let bytes = archive(&[("m/model.onnx", b"ok", Regular), (path, b"x", kind)]);
            let e = read(&bytes, 1 << 20).unwrap_err().to_string();
            assert!(e.contains(says), "{path}: {e}");
        }
        let twice = archive(&[("a/model.onnx", b"1", Regular), ("b/model.onnx", b"2", Regular)]);
        assert!(read(&twice, 1 << 20).unwrap_err().to_string().contains("twice"));
        let hidden = archive(&[("m/.manifest.json", b"1", Regular)]);
        assert!(read(&hidden, 1 << 20).unwrap_err().to_string().contains("may have"));
        assert!(read(b"not gzip at all", 1 << 20).is_err());
    }

    #[test]
    fn a_bomb_is_stopped_at_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB; the limit is 1 MiB.
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let size = 64u64 << 20;
        builder.append(&header("m/model.onnx", size, tar::EntryType::Regular), std::io::repeat(0).take(size)).unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let mut seen = 0usize;
        let e = read_tar_gz(&bytes[..], 1 << 20, |event| {
            if let ArchiveEvent::Data(d) = event {
                seen += d.len();
            }
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("MAX_MODEL_ARCHIVE_BYTES"), "{e}");
        assert_eq!(seen, 0, "refused from its header, before any byte is handed on");
    }
}
