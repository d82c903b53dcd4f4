//! A streaming ZIP writer (deflate, no ZIP64) shared by the XLSX export and the WordPress
//! plugin download, so the format is written in one place and no zip crate is needed.
//!
//! The output goes to any `Write`, including one that cannot seek (an HTTP body), so every
//! entry is written with a data descriptor (general-purpose flag bit 3): sizes and CRC follow
//! the data instead of being patched into the local header.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::DeflateEncoder;

/// Deflate output is moved to the sink once this much has accumulated.
const DRAIN_BYTES: usize = 32 * 1024;
/// The MS-DOS date of every entry, 1980-01-01 00:00: the earliest it can say, and a fixed one
/// keeps the output reproducible.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;
/// Flag bit 3: CRC and sizes are in the data descriptor after the data.
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const METHOD_DEFLATE: u16 = 8;
const VERSION_NEEDED: u16 = 20;

/// A finished entry, for the central directory.
struct Entry {
    name: String,
    crc: u32,
    compressed: u32,
    size: u32,
    offset: u32,
}

/// The entry being written.
struct Open {
    name: String,
    offset: u64,
    enc: DeflateEncoder<Vec<u8>>,
    crc: crc32fast::Hasher,
    size: u64,
    compressed: u64,
}

pub struct ZipWriter<W: Write> {
    out: W,
    /// Bytes written to `out` so far: the offsets the central directory needs.
    pos: u64,
    entries: Vec<Entry>,
    open: Option<Open>,
}

impl<W: Write> ZipWriter<W> {
    pub fn new(out: W) -> Self {
        ZipWriter { out, pos: 0, entries: Vec::new(), open: None }
    }

    /// One whole entry.
    pub fn file(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.start_entry(name.to_string())?;
        self.write_entry(bytes)?;
        self.end_entry()
    }

    /// Writes the central directory and hands back the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_entry()?;
        self.central_directory()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// The local file header: CRC and sizes are zero here and come in the data descriptor.
    pub fn start_entry(&mut self, name: String) -> io::Result<()> {
        let mut h = Vec::with_capacity(30 + name.len());
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
        h.extend_from_slice(&FLAG_DESCRIPTOR.to_le_bytes());
        h.extend_from_slice(&METHOD_DEFLATE.to_le_bytes());
        h.extend_from_slice(&DOS_TIME.to_le_bytes());
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&[0; 12]); // CRC, compressed size, size
        h.extend_from_slice(&u16_len(name.len())?.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        h.extend_from_slice(name.as_bytes());
        let offset = self.pos;
        self.put(&h)?;
        // Level 1: a sheet of a million rows would otherwise take seconds of a server core,
        // and repetitive XML shrinks well even so.
        let enc = DeflateEncoder::new(Vec::with_capacity(DRAIN_BYTES * 2), Compression::fast());
        self.open =
            Some(Open { name, offset, enc, crc: crc32fast::Hasher::new(), size: 0, compressed: 0 });
        Ok(())
    }

    pub fn write_entry(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(open) = &mut self.open else {
            return Err(io::Error::other("no open zip entry"));
        };
        open.crc.update(bytes);
        open.size += bytes.len() as u64;
        open.enc.write_all(bytes)?;
        if open.enc.get_ref().len() >= DRAIN_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    /// Moves the compressed bytes so far to the sink.
    fn drain(&mut self) -> io::Result<()> {
        let Some(open) = &mut self.open else { return Ok(()) };
        let done = std::mem::take(open.enc.get_mut());
        open.compressed += done.len() as u64;
        self.put(&done)?;
        // Hand the allocation back for the next block.
        if let Some(open) = &mut self.open {
            let mut done = done;
            done.clear();
            *open.enc.get_mut() = done;
        }
        Ok(())
    }

    pub fn end_entry(&mut self) -> io::Result<()> {
        if let Some(open) = &mut self.open {
            open.enc.try_finish()?;
        }
        self.drain()?;
        let Some(open) = self.open.take() else { return Ok(()) };
        let crc = open.crc.finalize();
        let (compressed, size) = (zip32(open.compressed)?, zip32(open.size)?);
        let mut d = Vec::with_capacity(16);
        d.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        d.extend_from_slice(&crc.to_le_bytes());
        d.extend_from_slice(&compressed.to_le_bytes());
        d.extend_from_slice(&size.to_le_bytes());
        self.put(&d)?;
        let offset = zip32(open.offset)?;
        self.entries.push(Entry { name: open.name, crc, compressed, size, offset });
        Ok(())
    }

    fn central_directory(&mut self) -> io::Result<()> {
        let start = self.pos;
        let mut cd = Vec::new();
        for e in &self.entries {
            cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            cd.extend_from_slice(&VERSION_NEEDED.to_le_bytes()); // made by: MS-DOS, 2.0
            cd.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
            cd.extend_from_slice(&FLAG_DESCRIPTOR.to_le_bytes());
            cd.extend_from_slice(&METHOD_DEFLATE.to_le_bytes());
            cd.extend_from_slice(&DOS_TIME.to_le_bytes());
            cd.extend_from_slice(&DOS_DATE.to_le_bytes());
            cd.extend_from_slice(&e.crc.to_le_bytes());
            cd.extend_from_slice(&e.compressed.to_le_bytes());
            cd.extend_from_slice(&e.size.to_le_bytes());
            cd.extend_from_slice(&u16_len(e.name.len())?.to_le_bytes());
            // Extra and comment lengths, disk number, internal and external attributes.
            cd.extend_from_slice(&[0; 12]);
            cd.extend_from_slice(&e.offset.to_le_bytes());
            cd.extend_from_slice(e.name.as_bytes());
        }
        let count = u16_len(self.entries.len())?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&[0; 4]); // this disk, the directory's disk
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&zip32(cd.len() as u64)?.to_le_bytes());
        end.extend_from_slice(&zip32(start)?.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes()); // comment length
        self.put(&cd)?;
        self.put(&end)
    }
}

/// Sizes and offsets must fit the classic ZIP fields (ZIP64 is not written): failing beats a
/// file whose directory points to the wrong place.
fn zip32(v: u64) -> io::Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|&v| v != u32::MAX)
        .ok_or_else(|| io::Error::other("zip larger than 4 GiB (ZIP64 is not supported)"))
}

fn u16_len(n: usize) -> io::Result<u16> {
    u16::try_from(n).map_err(|_| io::Error::other("zip field too long"))
}
