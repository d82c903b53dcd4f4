//! A small streaming XLSX (Office Open XML) writer for exports.
//!
//! The output goes to any `Write`, including one that cannot seek (an HTTP body), so every ZIP
//! entry is written with a data descriptor (general-purpose flag bit 3): sizes and CRC follow
//! the data instead of being patched into the local header. Worksheets are deflated row by
//! row; the parts that list the sheets are written by `finish`, once the sheets are known.
//! Strings are inline (`t="inlineStr"`): a shared-strings table would have to be held in
//! memory until the end.

use std::fmt::Write as _;
use std::io::{self, Write};

pub use super::cell::Cell;
use super::zip::ZipWriter;

pub const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Rows per worksheet in Excel, the header included.
const EXCEL_MAX_ROWS: u32 = 1_048_576;
/// Columns per worksheet in Excel (A..XFD).
const EXCEL_MAX_COLS: usize = 16_384;
/// Excel refuses longer cell texts.
const EXCEL_MAX_CELL_CHARS: usize = 32_767;
/// Sheet names: at most 31 characters, none of these.
const SHEET_NAME_MAX: usize = 31;
const SHEET_NAME_FORBIDDEN: &[char] = &['[', ']', ':', '*', '?', '/', '\\'];
/// Every header column gets this width, so the date-time cells show instead of `#####`.
const COLUMN_WIDTH: u32 = 20;
/// Style 1 in `styles.xml`: `yyyy-mm-dd hh:mm:ss`.
const DATE_STYLE_ATTR: &str = r#" s="1""#;
/// The worksheet being written.
struct Sheet {
    /// The name given to `begin_sheet`; continuation sheets are named after it.
    base: String,
    header: Vec<String>,
    /// The continuation number: 1 for the first sheet of `base`, then 2, 3...
    part: u32,
    rows: u32,
}

pub struct XlsxWriter<W: Write> {
    zip: ZipWriter<W>,
    sheet: Option<Sheet>,
    /// Names of the sheets written, in order; sheet N is `xl/worksheets/sheetN.xml`.
    sheets: Vec<String>,
    max_rows: u32,
    /// Reused for each row's XML.
    xml: String,
}

impl<W: Write> XlsxWriter<W> {
    pub fn new(out: W) -> Self {
        XlsxWriter {
            zip: ZipWriter::new(out),
            sheet: None,
            sheets: Vec::new(),
            max_rows: EXCEL_MAX_ROWS,
            xml: String::new(),
        }
    }

    /// Lowers the rows-per-sheet limit so tests can see the rollover without a million rows.
    #[cfg(test)]
    fn with_max_rows(mut self, rows: u32) -> Self {
        self.max_rows = rows.max(2);
        self
    }

    /// Starts a worksheet whose first row is `header`. When more rows come than a sheet holds,
    /// they continue on `name (2)`, `name (3)`... with the header repeated.
    pub fn begin_sheet<S: AsRef<str>>(&mut self, name: &str, header: &[S]) -> io::Result<()> {
        self.end_sheet()?;
        let header: Vec<String> = header.iter().map(|h| h.as_ref().to_string()).collect();
        self.start_sheet(name.to_string(), header, 1)
    }

    /// Starts part `part` of the sheet named after `base`, writing its header row.
    fn start_sheet(&mut self, base: String, header: Vec<String>, part: u32) -> io::Result<()> {
        let name = sheet_name(&base, part);
        if self.sheets.iter().any(|s| s.to_lowercase() == name.to_lowercase()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("two sheets named {name:?}"),
            ));
        }
        if header.len() > EXCEL_MAX_COLS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many columns"));
        }
        self.sheets.push(name);
        self.start_entry(format!("xl/worksheets/sheet{}.xml", self.sheets.len()))?;
        let mut xml = String::from(concat!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
            "\n",
            r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#
        ));
        if !header.is_empty() {
            // Keep the header in view while scrolling, and make the columns wide enough.
            let _ = write!(
                xml,
                concat!(
                    r#"<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" "#,
                    r#"topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#,
                    r#"</sheetView></sheetViews><cols><col min="1" max="{}" width="{}" "#,
                    r#"customWidth="1"/></cols>"#
                ),
                header.len(),
                COLUMN_WIDTH
            );
        }
        xml.push_str("<sheetData>");
        self.write_entry(xml.as_bytes())?;
        let cells: Vec<Cell> = header.iter().map(|h| Cell::text(h.as_str())).collect();
        self.sheet = Some(Sheet { base, header: header.clone(), part, rows: 0 });
        if !cells.is_empty() {
            self.write_row(&cells)?;
        }
        Ok(())
    }

    /// Appends a row to the current sheet, moving to a continuation sheet when it is full.
    pub fn row(&mut self, cells: &[Cell]) -> io::Result<()> {
        let Some(sheet) = &self.sheet else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "row outside a sheet"));
        };
        if sheet.rows >= self.max_rows {
            let (base, header, part) = (sheet.base.clone(), sheet.header.clone(), sheet.part + 1);
            self.end_sheet()?;
            self.start_sheet(base, header, part)?;
        }
        self.write_row(cells)
    }

    fn write_row(&mut self, cells: &[Cell]) -> io::Result<()> {
        if cells.len() > EXCEL_MAX_COLS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many columns"));
        }
        let Some(sheet) = &mut self.sheet else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "row outside a sheet"));
        };
        sheet.rows += 1;
        let r = sheet.rows;
        let mut xml = std::mem::take(&mut self.xml);
        xml.clear();
        let _ = write!(xml, r#"<row r="{r}">"#);
        for (i, cell) in cells.iter().enumerate() {
            let serial = match cell {
                Cell::Time(ms) => excel_serial(*ms),
                _ => None,
            };
            let attrs = match cell {
                Cell::Text(_) | Cell::Uuid(_) | Cell::Json(_) | Cell::UuidList(_) => {
                    r#" t="inlineStr""#
                }
                Cell::Number(v) if v.is_finite() => "",
                Cell::Int(_) => "",
                Cell::Bool(_) => r#" t="b""#,
                Cell::Time(_) if serial.is_some() => DATE_STYLE_ATTR,
                // Every cell carries its reference, so an empty one can simply be left out.
                _ => continue,
            };
            xml.push_str(r#"<c r=""#);
            column_name(&mut xml, i);
            let _ = write!(xml, r#"{r}"{attrs}>"#);
            match cell {
                Cell::Text(_) | Cell::Uuid(_) | Cell::Json(_) | Cell::UuidList(_) => {
                    let text = cell.as_text().unwrap_or_default();
                    let s = truncate_chars(&text, EXCEL_MAX_CELL_CHARS);
                    let ws = [' ', '\t', '\n', '\r'];
                    if s.starts_with(ws) || s.ends_with(ws) {
                        xml.push_str(r#"<is><t xml:space="preserve">"#);
                    } else {
                        xml.push_str("<is><t>");
                    }
                    push_escaped(&mut xml, s);
                    xml.push_str("</t></is>");
                }
                Cell::Number(v) => {
                    let _ = write!(xml, "<v>{v}</v>");
                }
                Cell::Int(v) => {
                    let _ = write!(xml, "<v>{v}</v>");
                }
                Cell::Bool(b) => {
                    let _ = write!(xml, "<v>{}</v>", u8::from(*b));
                }
                Cell::Time(_) => {
                    let _ = write!(xml, "<v>{}</v>", serial.unwrap_or_default());
                }
                Cell::Empty => {}
            }
            xml.push_str("</c>");
        }
        xml.push_str("</row>");
        let written = self.write_entry(xml.as_bytes());
        self.xml = xml;
        written
    }

    /// Ends the current sheet; `begin_sheet` and `finish` do it too.
    pub fn end_sheet(&mut self) -> io::Result<()> {
        if self.sheet.take().is_some() {
            self.write_entry(b"</sheetData></worksheet>")?;
            self.end_entry()?;
        }
        Ok(())
    }

    /// Writes the parts that list the sheets and the ZIP central directory; hands back the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_sheet()?;
        if self.sheets.is_empty() {
            // A workbook must have a sheet to open at all.
            self.begin_sheet::<&str>("Sheet1", &[])?;
            self.end_sheet()?;
        }
        let n = self.sheets.len();
        let mut types = String::from(concat!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
            "\n",
            r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">"#,
            r#"<Default Extension="rels" "#,
            r#"ContentType="application/vnd.openxmlformats-package.relationships+xml"/>"#,
            r#"<Default Extension="xml" ContentType="application/xml"/>"#,
            r#"<Override PartName="/xl/workbook.xml" ContentType="application/"#,
            r#"vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>"#,
            r#"<Override PartName="/xl/styles.xml" ContentType="application/"#,
            r#"vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>"#,
        ));
        let mut book = String::from(concat!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
            "\n",
            r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" "#,
            r#"xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">"#,
            r#"<bookViews><workbookView/></bookViews><sheets>"#,
        ));
        let mut rels = String::from(concat!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
            "\n",
            r#"<Relationships "#,
            r#"xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
        ));
        for (i, name) in self.sheets.iter().enumerate() {
            let n = i + 1;
            let _ = write!(
                types,
                concat!(
                    r#"<Override PartName="/xl/worksheets/sheet{}.xml" ContentType="application/"#,
                    r#"vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
                ),
                n
            );
            book.push_str(r#"<sheet name=""#);
            push_escaped(&mut book, name);
            let _ = write!(book, r#"" sheetId="{n}" r:id="rId{n}"/>"#);
            let _ = write!(
                rels,
                concat!(
                    r#"<Relationship Id="rId{}" Type="http://schemas.openxmlformats.org/"#,
                    r#"officeDocument/2006/relationships/worksheet" "#,
                    r#"Target="worksheets/sheet{}.xml"/>"#
                ),
                n, n
            );
        }
        types.push_str("</Types>");
        book.push_str("</sheets></workbook>");
        let _ = write!(
            rels,
            concat!(
                r#"<Relationship Id="rId{}" Type="http://schemas.openxmlformats.org/"#,
                r#"officeDocument/2006/relationships/styles" Target="styles.xml"/>"#,
                "</Relationships>"
            ),
            n + 1
        );
        self.part("[Content_Types].xml", &types)?;
        self.part("_rels/.rels", ROOT_RELS)?;
        self.part("xl/workbook.xml", &book)?;
        self.part("xl/_rels/workbook.xml.rels", &rels)?;
        self.part("xl/styles.xml", STYLES)?;
        self.zip.finish()
    }

    fn part(&mut self, name: &str, text: &str) -> io::Result<()> {
        self.start_entry(name.to_string())?;
        self.write_entry(text.as_bytes())?;
        self.end_entry()
    }

    fn start_entry(&mut self, name: String) -> io::Result<()> {
        self.zip.start_entry(name)
    }

    fn write_entry(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.zip.write_entry(bytes)
    }

    fn end_entry(&mut self) -> io::Result<()> {
        self.zip.end_entry()
    }
}

/// A sheet name Excel accepts: forbidden characters become `_`, at most 31 characters with
/// room kept for the ` (N)` of a continuation sheet.
fn sheet_name(name: &str, part: u32) -> String {
    let suffix = if part > 1 { format!(" ({part})") } else { String::new() };
    let room = SHEET_NAME_MAX - suffix.len();
    let clean: String = name
        .chars()
        .map(|c| if SHEET_NAME_FORBIDDEN.contains(&c) || c.is_control() { '_' } else { c })
        .take(room)
        .collect();
    // Excel also refuses a name that starts or ends with an apostrophe.
    let clean = clean.trim_matches('\'');
    let clean = if clean.is_empty() { "Sheet" } else { clean };
    format!("{clean}{suffix}")
}

/// `A`, `B`, ... `Z`, `AA`, ... for a zero-based column index.
fn column_name(out: &mut String, index: usize) {
    let mut letters = [0u8; 3];
    let mut n = 0;
    let mut i = index + 1;
    while i > 0 && n < letters.len() {
        i -= 1;
        letters[n] = b'A' + (i % 26) as u8;
        n += 1;
        i /= 26;
    }
    for &l in letters[..n].iter().rev() {
        out.push(char::from(l));
    }
}

/// Milliseconds since 1970 as an Excel serial date (days since 1899-12-30). Excel cannot show
/// dates before 1900-03-01 (its fictional 1900-02-29 breaks the mapping) or after 9999.
fn excel_serial(ms: i64) -> Option<f64> {
    let serial = ms as f64 / 86_400_000.0 + 25_569.0;
    (61.0..2_958_466.0).contains(&serial).then_some(serial)
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Escapes text for XML content and attribute values, dropping the characters XML 1.0 cannot
/// carry at all (not even as references): most C0 controls, U+FFFE and U+FFFF.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // A literal CR would be read back as LF.
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

const ROOT_RELS: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    "\n",
    r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    r#"<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/"#,
    r#"relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
);

/// The minimum Excel accepts, plus style 1: the date-time format of `Cell::Time`.
const STYLES: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    "\n",
    r#"<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#,
    r#"<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>"#,
    r#"<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>"#,
    r#"<fills count="2"><fill><patternFill patternType="none"/></fill>"#,
    r#"<fill><patternFill patternType="gray125"/></fill></fills>"#,
    r#"<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>"#,
    r#"<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>"#,
    r#"</cellStyleXfs><cellXfs count="2">"#,
    r#"<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>"#,
    r#"<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" "#,
    r#"applyNumberFormat="1"/></cellXfs>"#,
    r#"<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>"#,
    r#"</styleSheet>"#
);

/// The reader the end-to-end tests use too: one ZIP/XLSX reader for both.
#[cfg(test)]
#[path = "../../../tests/common/xlsx_read.rs"]
mod xlsx_read;

#[cfg(test)]
mod tests {
    use super::xlsx_read::{Book, unzip};
    use super::*;

    fn book(w: XlsxWriter<Vec<u8>>) -> Book {
        let bytes = w.finish().expect("finish");
        Book::parse(&bytes).expect("a readable workbook")
    }

    #[test]
    fn cells_come_back_with_their_types_and_escaping() {
        let mut w = XlsxWriter::new(Vec::new());
        w.begin_sheet("data", &["text", "num", "int", "bool", "time", "empty", "nan"]).unwrap();
        w.row(&[
            Cell::text(r#"<a href="x">&'"#),
            Cell::Number(0.25),
            Cell::Int(-42),
            Cell::Bool(true),
            Cell::Time(1_704_110_400_000), // 2024-01-01T12:00:00Z
            Cell::Empty,
            Cell::Number(f64::NAN),
        ])
        .unwrap();
        w.row(&[
            Cell::text("bell\u{7}\u{FFFF} tab\tcr\r"),
            Cell::Number(f64::INFINITY),
            Cell::Int(0),
            Cell::Bool(false),
            Cell::Time(0),
            Cell::text("last"),
        ])
        .unwrap();
        w.end_sheet().unwrap();
        let b = book(w);
        assert_eq!(b.sheet_names(), ["data"]);
        let rows = b.rows("data");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], ["text", "num", "int", "bool", "time", "empty", "nan"]);
        assert_eq!(rows[1], [r#"<a href="x">&'"#, "0.25", "-42", "true", "45292.5"]);
        // Forbidden characters are gone; an empty cell in the middle keeps later cells in place.
        assert_eq!(rows[2], ["bell tab\tcr\r", "", "0", "false", "25569", "last"]);
        let xml = b.sheet_xml("data");
        assert!(xml.contains(r#"<c r="E2" s="1"><v>45292.5</v></c>"#), "{xml}");
        assert!(xml.contains("&lt;a href=&quot;x&quot;&gt;&amp;'"), "{xml}");
        assert!(xml.contains(r#"<t xml:space="preserve">bell"#), "{xml}");
        for empty in ["F2", "G2", "B3"] {
            assert!(!xml.contains(&format!(r#"r="{empty}""#)), "{empty} is left out: {xml}");
        }
        let styles = b.part("xl/styles.xml");
        assert!(styles.contains(r#"formatCode="yyyy-mm-dd hh:mm:ss""#));
    }

    #[test]
    fn every_part_is_there_with_data_descriptors_and_good_crcs() {
        let mut w = XlsxWriter::new(Vec::new());
        w.begin_sheet("one", &["a"]).unwrap();
        for i in 0..5000 {
            w.row(&[Cell::Int(i)]).unwrap();
        }
        w.begin_sheet("two", &["b"]).unwrap();
        let bytes = w.finish().unwrap();
        // `unzip` checks every CRC and both the descriptor and directory sizes.
        let entries = unzip(&bytes).expect("valid zip");
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        for part in [
            "[Content_Types].xml",
            "_rels/.rels",
            "xl/workbook.xml",
            "xl/_rels/workbook.xml.rels",
            "xl/styles.xml",
            "xl/worksheets/sheet1.xml",
            "xl/worksheets/sheet2.xml",
        ] {
            assert!(names.contains(&part), "{part} missing from {names:?}");
        }
        assert_eq!(names.len(), 7);
        let sheet1 = &entries.iter().find(|(n, _)| n == "xl/worksheets/sheet1.xml").unwrap().1;
        assert!(String::from_utf8_lossy(sheet1).contains(r#"<row r="5001"><c r="A5001"><v>4999"#));
        let types = Book::parse(&bytes).unwrap().part("[Content_Types].xml");
        assert_eq!(types.matches("worksheet+xml").count(), 2);
    }

    #[test]
    fn full_sheets_continue_on_numbered_sheets_with_the_header() {
        let mut w = XlsxWriter::new(Vec::new()).with_max_rows(3);
        w.begin_sheet("assignments", &["user", "n"]).unwrap();
        for i in 0..5 {
            w.row(&[Cell::text(format!("u{i}")), Cell::Int(i)]).unwrap();
        }
        w.end_sheet().unwrap();
        w.begin_sheet("summary", &["arm"]).unwrap();
        w.row(&[Cell::text("A")]).unwrap();
        let b = book(w);
        assert_eq!(
            b.sheet_names(),
            ["assignments", "assignments (2)", "assignments (3)", "summary"]
        );
        assert_eq!(b.rows("assignments"), [vec!["user", "n"], vec!["u0", "0"], vec!["u1", "1"]]);
        assert_eq!(
            b.rows("assignments (2)"),
            [vec!["user", "n"], vec!["u2", "2"], vec!["u3", "3"]]
        );
        assert_eq!(b.rows("assignments (3)"), [vec!["user", "n"], vec!["u4", "4"]]);
        assert_eq!(b.rows("summary"), [vec!["arm"], vec!["A"]]);
    }

    #[test]
    fn sheet_names_are_ones_excel_accepts() {
        assert_eq!(sheet_name("a[b]:c*d?e/f\\g", 1), "a_b__c_d_e_f_g");
        let long = "x".repeat(40);
        assert_eq!(sheet_name(&long, 1).chars().count(), 31);
        assert_eq!(sheet_name(&long, 12), format!("{} (12)", "x".repeat(26)));
        assert_eq!(sheet_name("'quoted'", 1), "quoted");
        assert_eq!(sheet_name("", 1), "Sheet");
        let mut w = XlsxWriter::new(Vec::new());
        w.begin_sheet::<&str>("Data", &[]).unwrap();
        assert!(w.begin_sheet::<&str>("data", &[]).is_err(), "names are unique ignoring case");
    }

    #[test]
    fn column_names_and_serial_dates() {
        let name = |i| {
            let mut s = String::new();
            column_name(&mut s, i);
            s
        };
        assert_eq!(
            [name(0), name(25), name(26), name(701), name(702)],
            ["A", "Z", "AA", "ZZ", "AAA"]
        );
        assert_eq!(name(EXCEL_MAX_COLS - 1), "XFD");
        assert_eq!(excel_serial(0), Some(25_569.0));
        assert_eq!(excel_serial(-2_208_988_800_000), None, "1900-01-01 is before Excel's range");
    }

    #[test]
    fn a_failing_sink_fails_the_writer() {
        struct Gone;
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = XlsxWriter::new(Gone);
        assert!(w.begin_sheet("s", &["h"]).is_err());
    }
}
