//! A tiny ZIP + XLSX reader for tests: enough to check what `service::xlsx` writes, strictly.
//! The unit tests in `src/service/xlsx.rs` include this file too, so both read alike.

use std::io::Read;

fn u16_at(z: &[u8], at: usize) -> Result<usize, String> {
    z.get(at..at + 2)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        .ok_or_else(|| format!("truncated at {at}"))
}

fn u32_at(z: &[u8], at: usize) -> Result<u32, String> {
    z.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("truncated at {at}"))
}

fn usize_at(z: &[u8], at: usize) -> Result<usize, String> {
    u32_at(z, at).map(|v| v as usize)
}

/// Every entry `(name, inflated bytes)` in central-directory order. Checks each local header
/// against the directory, that sizes and CRC sit in a data descriptor (flag bit 3), that the
/// data inflates to the recorded size and that its CRC-32 matches.
pub fn unzip(z: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let eocd = (0..=z.len().checked_sub(22).ok_or("too short")?)
        .rev()
        .find(|&i| u32_at(z, i) == Ok(0x0605_4b50))
        .ok_or("no end of central directory")?;
    let count = u16_at(z, eocd + 10)?;
    let (cd_size, cd_start) = (usize_at(z, eocd + 12)?, usize_at(z, eocd + 16)?);
    if cd_start + cd_size != eocd {
        return Err(format!("directory {cd_start}+{cd_size} does not end at {eocd}"));
    }
    let mut out = Vec::new();
    let mut at = cd_start;
    for _ in 0..count {
        if u32_at(z, at)? != 0x0201_4b50 {
            return Err(format!("no directory entry at {at}"));
        }
        let flags = u16_at(z, at + 8)?;
        let method = u16_at(z, at + 10)?;
        let crc = u32_at(z, at + 16)?;
        let (csize, size) = (usize_at(z, at + 20)?, usize_at(z, at + 24)?);
        let (nlen, elen, clen) = (u16_at(z, at + 28)?, u16_at(z, at + 30)?, u16_at(z, at + 32)?);
        let local = usize_at(z, at + 42)?;
        let name = z.get(at + 46..at + 46 + nlen).ok_or("truncated name")?;
        let name = String::from_utf8(name.to_vec()).map_err(|e| e.to_string())?;
        at += 46 + nlen + elen + clen;

        if u32_at(z, local)? != 0x0403_4b50 {
            return Err(format!("{name}: no local header at {local}"));
        }
        let lflags = u16_at(z, local + 6)?;
        if flags & 8 == 0 || lflags & 8 == 0 {
            return Err(format!("{name}: flag bit 3 (data descriptor) not set"));
        }
        if u16_at(z, local + 8)? != method || method != 8 {
            return Err(format!("{name}: method {method}, expected deflate (8)"));
        }
        let (lnlen, lelen) = (u16_at(z, local + 26)?, u16_at(z, local + 28)?);
        if z.get(local + 30..local + 30 + lnlen) != Some(name.as_bytes()) {
            return Err(format!("{name}: local header names another file"));
        }
        let start = local + 30 + lnlen + lelen;
        let data = z.get(start..start + csize).ok_or("truncated data")?;
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(data)
            .read_to_end(&mut inflated)
            .map_err(|e| format!("{name}: {e}"))?;
        if inflated.len() != size {
            return Err(format!("{name}: {} bytes, directory says {size}", inflated.len()));
        }
        if crc32fast::hash(&inflated) != crc {
            return Err(format!("{name}: CRC mismatch"));
        }
        let d = start + csize;
        let descriptor =
            (u32_at(z, d)?, u32_at(z, d + 4)?, usize_at(z, d + 8)?, usize_at(z, d + 12)?);
        if descriptor != (0x0807_4b50, crc, csize, size) {
            return Err(format!("{name}: data descriptor {descriptor:?} disagrees"));
        }
        out.push((name, inflated));
    }
    if at != eocd {
        return Err("bytes between the directory and its end record".into());
    }
    Ok(out)
}

/// The value of attribute `name` in the tag text `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    tag[from..].split('"').next()
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        match &rest[i + 1..end] {
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            n if n.starts_with('#') => {
                let code = n[1..].parse::<u32>().ok().and_then(char::from_u32);
                out.push(code.unwrap_or('\u{FFFD}'));
            }
            other => panic!("unknown entity &{other};"),
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// Zero-based column of a cell reference like `AB12`.
fn column(r: &str) -> usize {
    r.chars()
        .take_while(char::is_ascii_uppercase)
        .fold(0, |n, c| n * 26 + (c as usize - 'A' as usize + 1))
        - 1
}

pub struct Book {
    pub entries: Vec<(String, Vec<u8>)>,
    /// `(sheet name, part path)` in workbook order.
    pub sheets: Vec<(String, String)>,
}

impl Book {
    /// Unzips and follows `xl/workbook.xml` and its relationships to the worksheets.
    pub fn parse(bytes: &[u8]) -> Result<Book, String> {
        let entries = unzip(bytes)?;
        let text = |name: &str| {
            entries
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .ok_or(format!("no {name}"))
        };
        let book = text("xl/workbook.xml")?;
        let rels = text("xl/_rels/workbook.xml.rels")?;
        let mut sheets = Vec::new();
        for tag in book.split("<sheet ").skip(1) {
            let tag = format!(" {}", tag.split('>').next().unwrap_or(""));
            let (name, id) = (attr(&tag, "name"), attr(&tag, "r:id"));
            let (Some(name), Some(id)) = (name, id) else { return Err(format!("bad {tag}")) };
            let target = rels
                .split("<Relationship ")
                .map(|r| format!(" {}", r.split('>').next().unwrap_or("")))
                .find(|r| attr(r, "Id") == Some(id))
                .and_then(|r| attr(&r, "Target").map(str::to_string))
                .ok_or(format!("no relationship {id}"))?;
            sheets.push((unescape(name), format!("xl/{target}")));
        }
        Ok(Book { entries, sheets })
    }

    pub fn sheet_names(&self) -> Vec<String> {
        self.sheets.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn part(&self, name: &str) -> String {
        let (_, bytes) = self.entries.iter().find(|(n, _)| n == name).expect("part");
        String::from_utf8(bytes.clone()).expect("UTF-8 part")
    }

    pub fn sheet_xml(&self, sheet: &str) -> String {
        let (_, path) = self.sheets.iter().find(|(n, _)| n == sheet).expect("sheet");
        self.part(path)
    }

    /// The sheet's rows as text: inline strings unescaped, booleans as `true`/`false`,
    /// numbers as written, cells left out as "" (trailing ones dropped).
    pub fn rows(&self, sheet: &str) -> Vec<Vec<String>> {
        let xml = self.sheet_xml(sheet);
        let mut rows = Vec::new();
        for row in xml.split("<row ").skip(1) {
            let row = row.split("</row>").next().unwrap_or("");
            let mut cells: Vec<String> = Vec::new();
            for cell in row.split("<c ").skip(1) {
                let cell = cell.split("</c>").next().unwrap_or("");
                let open = format!(" {}", cell.split('>').next().unwrap_or(""));
                let col = column(attr(&open, "r").expect("cell reference"));
                let inner = |tag: &str| {
                    let from = cell.find(&format!("<{tag}"))?;
                    let from = from + cell[from..].find('>')? + 1;
                    let to = cell[from..].find(&format!("</{tag}>"))?;
                    Some(unescape(&cell[from..from + to]))
                };
                let value = match attr(&open, "t") {
                    Some("inlineStr") => inner("t").unwrap_or_default(),
                    Some("b") => (inner("v").as_deref() == Some("1")).to_string(),
                    _ => inner("v").unwrap_or_default(),
                };
                if cells.len() <= col {
                    cells.resize(col + 1, String::new());
                }
                cells[col] = value;
            }
            rows.push(cells);
        }
        rows
    }
}
